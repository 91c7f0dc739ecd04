//! Crate names: what is allowed, when two names are the same crate, and where a crate lives in the
//! sparse index.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::quote_input;

/// The longest crate name accepted (as on crates.io).
pub const MAX_NAME_LENGTH: usize = 64;

/// Names that can never be published, in canonical form (see [`CrateName::canonical`]): the
/// standard library's crates and the device names Windows refuses as file names.
const RESERVED_NAMES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
];

/// Why a string is not an acceptable crate name. The message quotes the (shortened, escaped)
/// input and says what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("the crate name is empty; crate names must be 1 to 64 characters long")]
    Empty,
    #[error(
        "invalid crate name `{name}`: crate names must be at most 64 characters long, this one has {len}"
    )]
    TooLong { name: String, len: usize },
    #[error("invalid crate name `{name}`: crate names must start with an ASCII letter")]
    InvalidStart { name: String },
    #[error(
        "invalid crate name `{name}`: the character `{ch}` is not allowed; crate names may contain only ASCII letters, digits, `-` and `_`"
    )]
    InvalidChar { name: String, ch: String },
    #[error("the crate name `{name}` is reserved and cannot be used; please choose another name")]
    Reserved { name: String },
}

/// A crate name that passed every rule, kept as it was published (e.g. `Foo_bar`).
///
/// Equality is on the exact spelling; use [`CrateName::canonical`] to find the crate a name
/// collides with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CrateName(String);

impl CrateName {
    /// Validates a name for a crate to be published: syntax, length and the reserved list.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        check_syntax(name, false)?;
        let canonical = canonical_form(name);
        if RESERVED_NAMES.contains(&canonical.as_str()) {
            return Err(NameError::Reserved {
                name: quote_input(name),
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name exactly as published.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two names are compared in: lowercase, with `-` replaced by `_`. Names with the
    /// same canonical form are the same crate.
    pub fn canonical(&self) -> String {
        canonical_form(&self.0)
    }

    /// The crate's file in cargo's sparse index, relative to the index root (e.g. `se/rd/serde`).
    pub fn index_path(&self) -> String {
        index_path_for(&self.0.to_ascii_lowercase())
    }
}

impl fmt::Display for CrateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CrateName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for CrateName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CrateName {
    type Error = NameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CrateName> for String {
    fn from(value: CrateName) -> Self {
        value.0
    }
}

/// Checks the name of a dependency's package. The syntax rules are those of [`CrateName`], but
/// the reserved list does not apply: it guards new publishes, and a dependency may come from
/// another registry.
pub fn validate_dependency_name(name: &str) -> Result<(), NameError> {
    check_syntax(name, false)
}

/// Checks the name a dependency is renamed to in `Cargo.toml` (`foo = { package = "bar" }`).
/// Cargo also allows a leading `_` there.
pub fn validate_dependency_rename(name: &str) -> Result<(), NameError> {
    check_syntax(name, true)
}

/// Given the part of an index URL after `/index/` (e.g. `se/rd/serde`), returns the requested
/// crate name, lowercased, if the prefix directories are the right ones for it.
pub fn index_path_matches(path: &str) -> Option<String> {
    let path = path.to_ascii_lowercase();
    let name = path.rsplit('/').next()?;
    check_syntax(name, false).ok()?;
    (index_path_for(name) == path).then(|| name.to_owned())
}

fn canonical_form(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// Cargo's layout: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`. `name` must be lowercase ASCII.
fn index_path_for(name: &str) -> String {
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

fn check_syntax(name: &str, allow_leading_underscore: bool) -> Result<(), NameError> {
    let Some(first) = name.chars().next() else {
        return Err(NameError::Empty);
    };
    let len = name.chars().count();
    if len > MAX_NAME_LENGTH {
        return Err(NameError::TooLong {
            name: quote_input(name),
            len,
        });
    }
    if !(first.is_ascii_alphabetic() || (allow_leading_underscore && first == '_')) {
        if !is_name_char(first) {
            return Err(NameError::InvalidChar {
                name: quote_input(name),
                ch: first.escape_debug().to_string(),
            });
        }
        return Err(NameError::InvalidStart {
            name: quote_input(name),
        });
    }
    if let Some(ch) = name.chars().find(|&c| !is_name_char(c)) {
        return Err(NameError::InvalidChar {
            name: quote_input(name),
            ch: ch.escape_debug().to_string(),
        });
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted_as_written() {
        for name in ["serde", "a", "Foo_bar", "tokio-util", "x86", "A1-b_2"] {
            let parsed = CrateName::parse(name).expect(name);
            assert_eq!(parsed.as_str(), name);
            assert_eq!(parsed.to_string(), name);
        }
    }

    #[test]
    fn names_must_start_with_an_ascii_letter() {
        let err = CrateName::parse("1abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid crate name `1abc`: crate names must start with an ASCII letter"
        );
        assert!(matches!(
            CrateName::parse("_abc"),
            Err(NameError::InvalidStart { .. })
        ));
        assert!(matches!(
            CrateName::parse("-abc"),
            Err(NameError::InvalidStart { .. })
        ));
    }

    #[test]
    fn names_with_other_characters_are_refused() {
        for name in [
            "foo.bar", "foo bar", "foo/bar", "café", "foo+bar", "ünicode",
        ] {
            let err = CrateName::parse(name).unwrap_err();
            assert!(
                matches!(err, NameError::InvalidChar { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains("may contain only ASCII letters"));
        }
        let err = CrateName::parse("foo.bar").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid crate name `foo.bar`: the character `.` is not allowed; crate names may contain only ASCII letters, digits, `-` and `_`"
        );
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(CrateName::parse(""), Err(NameError::Empty));
    }

    #[test]
    fn names_longer_than_64_characters_are_refused() {
        let ok = "a".repeat(64);
        assert!(CrateName::parse(&ok).is_ok());
        let long = "a".repeat(65);
        let err = CrateName::parse(&long).unwrap_err();
        assert!(matches!(err, NameError::TooLong { len: 65, .. }));
        assert!(err.to_string().contains("at most 64 characters"));
    }

    #[test]
    fn reserved_names_are_refused_in_any_spelling() {
        for name in [
            "std",
            "STD",
            "core",
            "alloc",
            "proc_macro",
            "proc-macro",
            "Proc-Macro",
            "test",
            "con",
            "Nul",
            "aux",
            "prn",
            "com1",
            "COM9",
            "lpt5",
        ] {
            let err = CrateName::parse(name).unwrap_err();
            assert!(matches!(err, NameError::Reserved { .. }), "{name}");
        }
        assert!(CrateName::parse("com10").is_ok());
        assert!(CrateName::parse("stdx").is_ok());
        assert!(
            CrateName::parse("core")
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }

    #[test]
    fn names_differing_by_case_or_dash_share_a_canonical_form() {
        let a = CrateName::parse("Foo-Bar").unwrap();
        let b = CrateName::parse("foo_bar").unwrap();
        assert_eq!(a.canonical(), "foo_bar");
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a, b);
    }

    #[test]
    fn index_paths_follow_cargos_layout() {
        let path = |n: &str| CrateName::parse(n).unwrap().index_path();
        assert_eq!(path("a"), "1/a");
        assert_eq!(path("ab"), "2/ab");
        assert_eq!(path("abc"), "3/a/abc");
        assert_eq!(path("Abc"), "3/a/abc");
        assert_eq!(path("serde"), "se/rd/serde");
        assert_eq!(path("Foo_Bar"), "fo/o_/foo_bar");
        assert_eq!(path("abcd"), "ab/cd/abcd");
    }

    #[test]
    fn index_paths_are_recognised_only_with_the_right_prefix() {
        assert_eq!(index_path_matches("se/rd/serde").as_deref(), Some("serde"));
        assert_eq!(index_path_matches("1/a").as_deref(), Some("a"));
        assert_eq!(index_path_matches("2/ab").as_deref(), Some("ab"));
        assert_eq!(index_path_matches("3/a/abc").as_deref(), Some("abc"));
        assert_eq!(index_path_matches("Se/Rd/Serde").as_deref(), Some("serde"));
        assert_eq!(
            index_path_matches("fo/o_/foo_bar").as_deref(),
            Some("foo_bar")
        );

        for bad in [
            "",
            "serde",
            "se/rd/",
            "xx/rd/serde",
            "se/rd/serde/",
            "/se/rd/serde",
            "se/rd/../serde",
            "3/b/abc",
            "2/abc",
            "1/ab",
            "3/abc",
            "se/rd/se rde",
            "config.json",
            "a/b/c/d",
        ] {
            assert_eq!(index_path_matches(bad), None, "{bad}");
        }
    }

    #[test]
    fn dependency_names_skip_the_reserved_list_and_renames_may_start_with_underscore() {
        assert!(validate_dependency_name("core").is_ok());
        assert!(validate_dependency_name("_foo").is_err());
        assert!(validate_dependency_rename("_foo").is_ok());
        assert!(validate_dependency_rename("foo.bar").is_err());
        assert!(validate_dependency_rename("1foo").is_err());
    }

    #[test]
    fn crate_names_round_trip_through_serde_and_are_validated() {
        let name: CrateName = serde_json::from_str("\"Foo_bar\"").unwrap();
        assert_eq!(name.as_str(), "Foo_bar");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"Foo_bar\"");
        assert!(serde_json::from_str::<CrateName>("\"1foo\"").is_err());
    }

    #[test]
    fn hostile_names_are_shortened_in_messages() {
        let long = format!("a{}", "\u{7}".repeat(500));
        let msg = CrateName::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 500, "{msg}");
        assert!(!msg.contains('\u{7}'));
    }
}
