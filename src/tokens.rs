//! API tokens: generation, hashing, endpoint scopes and crate scopes (as crates.io has them).
//!
//! A token is shown once; only its SHA-256 is stored, and tokens are found by that hash, so
//! no comparison ever touches the secret itself.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of API tokens created by users and the admin CLI.
pub const API_TOKEN_PREFIX: &str = "wharf_";
/// Prefix of tokens minted by the Trusted Publishing exchange. Never a prefix of an API token,
/// whose random part is hex.
pub const TRUSTPUB_TOKEN_PREFIX: &str = "wharf_tp_";

/// A new random token (256 bits) with `prefix`, and the hash to store.
pub fn generate(prefix: &str) -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", hex::encode(bytes));
    let hash = hash(&token);
    (token, hash)
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointScope {
    PublishNew,
    PublishUpdate,
    Yank,
    ChangeOwners,
    TrustedPublishing,
}

impl EndpointScope {
    pub const ALL: [EndpointScope; 5] = [
        EndpointScope::PublishNew,
        EndpointScope::PublishUpdate,
        EndpointScope::Yank,
        EndpointScope::ChangeOwners,
        EndpointScope::TrustedPublishing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointScope::PublishNew => "publish-new",
            EndpointScope::PublishUpdate => "publish-update",
            EndpointScope::Yank => "yank",
            EndpointScope::ChangeOwners => "change-owners",
            EndpointScope::TrustedPublishing => "trusted-publishing",
        }
    }
}

impl fmt::Display for EndpointScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndpointScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown token scope `{s}` (known scopes: {})",
                    known.join(", ")
                )
            })
    }
}

/// A crate-name pattern: a crate name, optionally ending in `*` to match every crate whose
/// name starts with the rest. Compared on canonical names (case and `-`/`_` folded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrateScope(String);

impl CrateScope {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, crate_name: &str) -> bool {
        let name = canonical(crate_name);
        match self.0.strip_suffix('*') {
            Some(prefix) => name.starts_with(&canonical(prefix)),
            None => name == canonical(&self.0),
        }
    }
}

impl FromStr for CrateScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_suffix('*').unwrap_or(s);
        let valid_chars = body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if body.is_empty() || s.len() > 65 || !valid_chars {
            return Err(format!(
                "invalid crate scope `{s}`: use a crate name, optionally ending in `*` (e.g. `serde` or `serde-*`)"
            ));
        }
        Ok(CrateScope(s.to_owned()))
    }
}

fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// Scopes are stored as comma-separated lists; `None` means "no restriction".
pub fn join_scopes<T: AsRef<str>>(items: &[T]) -> Option<String> {
    (!items.is_empty()).then(|| {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(",")
    })
}

pub fn parse_endpoint_scopes(stored: Option<&str>) -> Option<Vec<EndpointScope>> {
    stored.map(|s| s.split(',').filter_map(|s| s.parse().ok()).collect())
}

pub fn parse_crate_scopes(stored: Option<&str>) -> Option<Vec<CrateScope>> {
    stored.map(|s| s.split(',').filter_map(|s| s.parse().ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_prefix_and_hash_stably() {
        let (token, hash) = generate(API_TOKEN_PREFIX);
        assert!(token.starts_with("wharf_"));
        assert!(!token.starts_with(TRUSTPUB_TOKEN_PREFIX));
        assert_eq!(token.len(), 6 + 64);
        assert_eq!(super::hash(&token), hash);
        assert_ne!(generate(API_TOKEN_PREFIX).0, token);
    }

    #[test]
    fn crate_scopes_fold_case_and_separators() -> Result<(), String> {
        let exact: CrateScope = "foo-bar".parse()?;
        assert!(exact.matches("Foo_Bar"));
        assert!(!exact.matches("foo-bar-baz"));
        let prefix: CrateScope = "foo-*".parse()?;
        assert!(prefix.matches("foo_core"));
        assert!(!prefix.matches("foobar"));
        assert!("*".parse::<CrateScope>().is_err());
        assert!("a*b".parse::<CrateScope>().is_err());
        Ok(())
    }

    #[test]
    fn endpoint_scopes_parse_by_their_crates_io_names() {
        assert_eq!("publish-new".parse(), Ok(EndpointScope::PublishNew));
        assert!("publish".parse::<EndpointScope>().is_err());
        let stored = join_scopes(&["yank", "change-owners"]);
        assert_eq!(
            parse_endpoint_scopes(stored.as_deref()),
            Some(vec![EndpointScope::Yank, EndpointScope::ChangeOwners])
        );
    }
}
