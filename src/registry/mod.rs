//! The registry's domain rules, with no HTTP or database in sight.
//!
//! - [`crate_name`]: the validated [`CrateName`](crate_name::CrateName) newtype, its canonical
//!   (collision) form and its sparse-index path.
//! - [`publish`]: cargo's publish wire format (`PUT /api/v1/crates/new`) and the metadata rules a
//!   new version must satisfy.
//! - [`tarball`]: the checks a `.crate` file must pass before it is stored (paths, links, a
//!   bounded unpacked size, a `Cargo.toml` that agrees with the metadata).
//! - [`index`]: the JSON lines of cargo's sparse index.
//!
//! Every error type here renders, through `Display`, the complete message meant for the user; the
//! API layer returns it verbatim as `{"errors":[{"detail": …}]}` with status 400.

pub mod crate_name;
pub mod index;
pub mod publish;
pub mod tarball;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test helpers; a failed unwrap is a failed test"
)]
pub(crate) mod test_support;

/// Formats a byte count in binary units with one decimal, e.g. `10.0 MiB`, for error messages.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Precision loss is irrelevant for a one-decimal display.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Shortens and escapes user input before it is echoed in an error message, so a hostile value
/// cannot flood the response or smuggle control characters into it.
pub(crate) fn quote_input(input: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out: String = input
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if input.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_formatted_in_binary_units() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1.0 KiB");
        assert_eq!(format_size(10 * 1024 * 1024), "10.0 MiB");
        assert_eq!(format_size(1536 * 1024 * 1024), "1.5 GiB");
    }

    #[test]
    fn long_or_hostile_input_is_shortened_and_escaped() {
        assert_eq!(quote_input("abc"), "abc");
        assert_eq!(quote_input("a\nb"), "a\\nb");
        let long = "x".repeat(200);
        let quoted = quote_input(&long);
        assert!(quoted.ends_with('…'));
        assert_eq!(quoted.chars().count(), 81);
    }
}
