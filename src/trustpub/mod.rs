//! Trusted Publishing: verifying CI identity tokens and matching them to publisher configs.
//!
//! A CI job (GitHub Actions or GitLab CI) sends the OIDC ID token its platform minted for it; the
//! registry exchanges it for a short-lived publish token. This module holds the part of that
//! exchange that is not HTTP and not the database:
//!
//! - [`Verifier::verify`] checks the token: shape and size, header (`RS256` only, `kid`
//!   required, never a key from the token), a configured issuer, the issuer's published keys
//!   (discovered through `/.well-known/openid-configuration`, cached per issuer in [`jwks`]),
//!   the signature, then the claims (`aud`, `exp`, `iat`, `nbf`, `jti`, and for GitHub the
//!   refused `event_name`s). It returns a typed [`VerifiedIdentity`].
//! - [`github::match_publishers`] and [`gitlab::match_publishers`] compare a verified identity
//!   with the crate's configs and say precisely which field differed when nothing matches.
//!
//! Single use of `jti` is the caller's job (it needs the database): remember
//! [`VerifiedIdentity::jti`] until [`VerifiedIdentity::replay_window_ends_at`].
//!
//! No actix and no diesel here: the handlers convert requests and rows into these plain types.

pub mod errors;
pub mod github;
pub mod gitlab;
mod identity;
pub mod jwks;
mod verify;

pub use errors::{MatchError, VerifyError};
pub use github::{GitHubClaims, GitHubPublisher};
pub use gitlab::{GitLabClaims, GitLabPublisher};
pub use identity::{Provider, VerifiedIdentity};
pub use verify::{
    JTI_MARGIN_SECONDS, LEEWAY_SECONDS, MAX_TOKEN_BYTES, TrustpubSettings, Verifier,
    jti_forgettable_from, refused_from,
};

/// A publisher config that accepted a verified identity: the exchanged token may publish new
/// versions of `crate_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub publisher_id: i64,
    pub crate_id: i64,
    pub crate_name: String,
    /// GitLab only: the config had no namespace ID yet; store this one so that a re-created
    /// group or user of the same name is not trusted later.
    pub capture_namespace_id: Option<i64>,
}

/// Compares a configured environment with the token's. No configured environment (or an empty
/// one) accepts any environment and none; otherwise the names must be equal ignoring ASCII
/// case. Only ASCII: under Unicode rules `\u{212A}8s` (a Kelvin sign) would equal
/// `k8s`, so a look-alike name could pass for the configured one.
pub(crate) fn environment_mismatch(
    configured: Option<&str>,
    claimed: Option<&str>,
) -> Option<String> {
    let expected = configured.filter(|e| !e.is_empty())?;
    match claimed {
        Some(claimed) if claimed.eq_ignore_ascii_case(expected) => None,
        _ => Some(expected.to_owned()),
    }
}

/// Formats distinct expected values as "`a`", "`a` or `b`" … (duplicates ignoring ASCII case
/// removed).
pub(crate) fn one_of(values: &[String]) -> String {
    let mut distinct: Vec<&String> = Vec::new();
    for value in values {
        if !distinct.iter().any(|d| d.eq_ignore_ascii_case(value)) {
            distinct.push(value);
        }
    }
    distinct
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Distinct numbers as "456" or "456, 789".
pub(crate) fn list_ids(ids: &[i64]) -> String {
    let mut distinct: Vec<i64> = Vec::new();
    for id in ids {
        if !distinct.contains(id) {
            distinct.push(*id);
        }
    }
    distinct
        .iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The environment part of a mismatch message.
pub(crate) fn environment_message(claimed: Option<&str>, expected: &[String]) -> String {
    let distinct = one_of(expected);
    let config = if distinct.contains(" or ") {
        "the configs expect"
    } else {
        "the config expects"
    };
    match claimed {
        Some(env) => format!(
            "the token has environment `{}`, but {config} {distinct}",
            errors::shorten(env)
        ),
        None => format!("the token has no environment, but {config} {distinct}"),
    }
}

/// Joins the parts of a mismatch message into one sentence list ending with a full stop.
pub(crate) fn join_parts(prefix: String, parts: Vec<String>) -> String {
    let mut message = prefix;
    message.push_str(&parts.join("; "));
    if !message.ends_with('.') {
        message.push('.');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Letters that fold to ASCII ones under Unicode rules but are other characters.
    const LOOK_ALIKES: [(&str, &str); 6] = [
        ("k", "\u{212A}"), // KELVIN SIGN: lower-cases to `k`
        ("s", "\u{17F}"),  // LATIN SMALL LETTER LONG S: upper-cases to `S`
        ("i", "\u{131}"),  // LATIN SMALL LETTER DOTLESS I: upper-cases to `I`
        ("i", "\u{130}"),  // LATIN CAPITAL LETTER I WITH DOT ABOVE: lower-cases to `i̇`
        ("a", "\u{212B}"), // ANGSTROM SIGN: lower-cases to `å`, not `a`
        ("w", "\u{2126}"), // OHM SIGN: lower-cases to `ω`, not `w`
    ];

    #[test]
    fn environments_fold_ascii_case_only() {
        // (configured, claimed, accepted)
        let mut cases: Vec<(String, String, bool)> = vec![
            ("k8s".into(), "K8S".into(), true),
            ("Release".into(), "release".into(), true),
            ("prod-é".into(), "prod-é".into(), true),
            // Unicode case pairs are not folded: ASCII only.
            ("prod-é".into(), "PROD-É".into(), false),
            ("\u{e5}".into(), "\u{212B}".into(), false),
            ("\u{3c9}".into(), "\u{2126}".into(), false),
        ];
        for (ascii, look_alike) in LOOK_ALIKES {
            let configured = format!("{ascii}8s-release");
            let claimed = configured.replacen(ascii, look_alike, 1);
            cases.push((configured.clone(), claimed.clone(), false));
            cases.push((configured.to_ascii_uppercase(), claimed, false));
        }
        for (configured, claimed, accepted) in cases {
            assert_eq!(
                environment_mismatch(Some(&configured), Some(&claimed)).is_none(),
                accepted,
                "configured {configured:?}, claimed {claimed:?}"
            );
        }
    }

    #[test]
    fn expected_values_are_listed_once_per_ascii_case() {
        let values = ["k8s".to_owned(), "K8S".to_owned(), "\u{212A}8s".to_owned()];
        assert_eq!(one_of(&values), "`k8s` or `\u{212A}8s`");
    }
}
