//! Errors of ID-token verification and publisher matching.
//!
//! Every `Display` is the complete message for the user (it ends up in cargo's
//! `{"errors":[{"detail"}]}`), so it says what was wrong and what to do. No message ever
//! contains the JWT itself; values taken from a token are shortened before they are shown.

/// Why an ID token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is malformed, hostile, signed with the wrong key, expired, meant for another
    /// audience, or comes from a context that is never trusted. The client must fix its request:
    /// HTTP 400.
    #[error("{0}")]
    InvalidToken(String),
    /// The issuer's discovery document or key set could not be fetched or parsed, so the token
    /// can be neither accepted nor refused. Try again later: HTTP 503.
    #[error("{0}")]
    Unavailable(String),
}

impl VerifyError {
    /// `true` when the failure is on the identity provider's side (answer 503 "try again"),
    /// `false` when the token itself was refused (answer 400).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VerifyError::Unavailable(_))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        VerifyError::InvalidToken(message.into())
    }
}

/// Why a verified identity matched no Trusted Publishing config. Always HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// No config at all names the token's repository (GitHub) or project (GitLab).
    #[error("{0}")]
    NoConfig(String),
    /// Configs exist for the repository or project, but a field differs; the message says which
    /// field and what the configs expect.
    #[error("{0}")]
    Mismatch(String),
    /// A claim needed for matching has an unusable shape (e.g. a `workflow_ref` that names no
    /// workflow file).
    #[error("{0}")]
    InvalidClaim(String),
}

/// Shortens a value taken from a token before it is quoted in a message, so that a hostile token
/// cannot fill an error response or a log line.
pub(crate) fn shorten(value: &str) -> String {
    const MAX: usize = 100;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(MAX).collect();
        short.push('…');
        short
    }
}
