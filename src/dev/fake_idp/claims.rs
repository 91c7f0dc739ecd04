//! What the claim builders of every provider share: overrides, identifiers, the clock.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A commit SHA the default claims of every provider name.
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// Lifetime of minted ID tokens unless a request asks for another (5 minutes, as the real
/// platforms do by default).
pub const LIFETIME_SECONDS: i64 = 300;

/// `claims` with the keys of `overrides` replaced; a `null` override removes the claim.
pub fn merge(claims: Value, overrides: Value) -> Value {
    let Value::Object(mut claims) = claims else {
        return claims;
    };
    if let Value::Object(overrides) = overrides {
        for (key, value) in overrides {
            if value.is_null() {
                claims.remove(&key);
            } else {
                claims.insert(key, value);
            }
        }
    }
    Value::Object(claims)
}

/// A random version 4 UUID (`jti`s, Buildkite's job IDs).
pub fn random_uuid() -> String {
    uuid_from(rand::random::<[u8; 16]>())
}

/// A UUID that always comes out the same for the same `kind` and `name` (ASCII case ignored):
/// Buildkite's organization and pipeline IDs of names the fake has not been told about.
pub fn stable_uuid(kind: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{kind}:{}", name.to_ascii_lowercase()).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid_from(bytes)
}

fn uuid_from(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A numeric ID that always comes out the same for the same `kind` and `name` (ASCII case
/// ignored), between 10 000 000 and 99 999 999: the GitHub account, repository and GitLab
/// namespace IDs of names the fake has not been told about.
pub fn stable_id(kind: &str, name: &str) -> i64 {
    let digest = Sha256::digest(format!("{kind}:{}", name.to_ascii_lowercase()).as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let spread = u64::from_be_bytes(bytes) % 90_000_000;
    10_000_000 + i64::try_from(spread).unwrap_or(0)
}

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(buffer.as_mut_slice());
    hex::encode(buffer)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The trimmed value, or `default` when it is missing or blank (empty form fields).
pub fn or_default(value: &Option<String>, default: &str) -> String {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
        .to_owned()
}

/// The trimmed value, `None` when it is missing or blank.
pub fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The trimmed value parsed as an integer, `default` when missing or blank; an error that
/// names the field otherwise.
pub fn integer_or(value: &Option<String>, default: i64, field: &str) -> Result<i64, String> {
    match given(value) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("`{field}` must be a whole number, not `{text}`")),
    }
}

/// Accepts a JSON string or integer (or a form's text) as `Option<String>`.
pub fn string_or_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Integer(i64),
    }
    Ok(
        Option::<Raw>::deserialize(deserializer)?.map(|raw| match raw {
            Raw::Text(text) => text,
            Raw::Integer(number) => number.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_replace_add_and_remove_claims() {
        let merged = merge(
            json!({ "a": 1, "b": 2, "c": 3 }),
            json!({ "a": 10, "c": null, "d": 4 }),
        );
        assert_eq!(merged, json!({ "a": 10, "b": 2, "d": 4 }));
    }

    #[test]
    fn uuids_have_the_version_4_shape() {
        for uuid in [random_uuid(), stable_uuid("org", "acme")] {
            assert_eq!(uuid.len(), 36);
            assert_eq!(uuid.as_bytes()[14], b'4', "{uuid}");
            assert!(
                matches!(uuid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
                "{uuid}"
            );
        }
        assert_ne!(random_uuid(), random_uuid());
    }

    #[test]
    fn stable_ids_ignore_ascii_case_and_differ_by_kind_and_name() {
        assert_eq!(
            stable_id("account", "Octo-Org"),
            stable_id("account", "octo-org")
        );
        assert_ne!(
            stable_id("account", "octo-org"),
            stable_id("account", "octocat")
        );
        assert_ne!(stable_id("account", "acme"), stable_id("namespace", "acme"));
        assert!((10_000_000..100_000_000).contains(&stable_id("account", "x")));
        assert_eq!(stable_uuid("org", "ACME"), stable_uuid("org", "acme"));
    }
}
