//! Where the browser goes after a login: `next`, taken from the query string or the page that
//! needed the login, is followed only when it is a plain path on this site.

/// Where to go when `next` is missing or not safe to follow.
pub const DEFAULT_NEXT: &str = "/me";

/// The longest `next` followed.
const MAX_LEN: usize = 2048;

/// `next` when it is a plain path on this site, else [`DEFAULT_NEXT`].
///
/// Browsers are lenient with a `Location`: they drop tabs and newlines anywhere, and leading
/// spaces and control characters, read `\` as `/`, and resolve `.` segments, so `/\t/host`
/// or `/.//host` can become `//host`, another site. Rather than list what is dangerous, this
/// accepts only what a path of this site is made of:
///
/// - it starts with one `/`; the path has ASCII letters, digits and `-._~/`, the query
///   (after the first `?`) also `=&+?`;
/// - `%` only as `%XX` escaping a printable character other than `/`, `\`, `.` and `%` (or a
///   byte of a UTF-8 character), so no escape hides a separator or a control character;
/// - no `//` anywhere, no `.` or `..` segment, at most 2048 bytes.
pub fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| is_local_path(n))
        .unwrap_or(DEFAULT_NEXT)
        .to_owned()
}

fn is_local_path(next: &str) -> bool {
    let bytes = next.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.len() > MAX_LEN || next.contains("//") {
        return false;
    }
    let (path, query) = match next.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (next, None),
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/');
    let in_query = |b: u8| plain(b) || matches!(b, b'=' | b'&' | b'+' | b'?');
    path.split('/')
        .all(|segment| segment != "." && segment != "..")
        && only(path.as_bytes(), plain)
        && query.is_none_or(|q| only(q.as_bytes(), in_query))
}

/// True when every byte passes `allowed` or is a harmless `%XX` escape.
fn only(text: &[u8], allowed: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let escaped = text
                .get(i + 1..i + 3)
                .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            match escaped {
                Some(b) if harmless_escape(b) => i += 3,
                _ => return false,
            }
        } else if allowed(text[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// What a `%XX` may stand for: printable ASCII (space included) except separators and `%`,
/// or a byte of a multi-byte UTF-8 character. Never a control character.
fn harmless_escape(b: u8) -> bool {
    match b {
        b'/' | b'\\' | b'.' | b'%' => false,
        0x20..=0x7e | 0x80..=0xff => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_on_this_site_are_followed() {
        let kept = [
            "/",
            "/me",
            "/settings/tokens",
            "/crates/x/settings",
            "/crates/my-crate_2/history",
            "/crates/x/settings/github/12/remove",
            "/search?q=serde+json&page=2",
            "/search?q=a%20b",
            "/search?q=caf%C3%A9",
            "/crates/x~y.z",
        ];
        for next in kept {
            assert_eq!(safe_next(Some(next)), next, "{next:?} should be followed");
        }
    }

    #[test]
    fn anything_that_could_leave_the_site_falls_back_to_the_dashboard() {
        let long = format!("/{}", "a".repeat(2100));
        let refused = [
            "",
            "me",
            "https://evil.example",
            "http:/evil.example",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "\\\\evil.example",
            // browsers strip tabs and newlines anywhere, and leading spaces and controls
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "\u{0}//evil.example",
            "/\u{0}/evil.example",
            "/\u{7f}/evil.example",
            "/\u{b}/evil.example",
            "/\u{c}/evil.example",
            // encoded forms of the same
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%0D/evil.example",
            "/%2f/evil.example",
            "/%2F%2Fevil.example",
            "%2f%2fevil.example",
            "/%5cevil.example",
            "/%5C/evil.example",
            "/%00/evil.example",
            "/%25%32%66/evil.example",
            "/%2e%2e/me",
            // malformed escapes
            "/%",
            "/%2",
            "/%zz",
            "/%+9",
            // dot segments and doubled slashes after normalisation
            "/.//evil.example",
            "/./evil.example",
            "/../evil.example",
            "/crates/../me",
            "/crates/.",
            "/me//x",
            "/search?next=//evil.example",
            // characters a path of this site never has
            "/@evil.example",
            "/a:b",
            "/me#//evil.example",
            "/ evil",
            "/caf\u{e9}",
            "/\u{3000}/evil.example",
            "/\u{ff0f}\u{ff0f}evil.example",
            &long,
        ];
        for next in refused {
            assert_eq!(
                safe_next(Some(next)),
                DEFAULT_NEXT,
                "{next:?} must not be followed"
            );
        }
        assert_eq!(safe_next(None), DEFAULT_NEXT);
    }
}
