//! What a verified ID token says: the standard claims the verifier checked, and the
//! provider's own claims, typed.

use chrono::{DateTime, Utc};

use super::providers::{Claims, ProviderKind, TrustpubData};
use super::verify::jti_forgettable_from;

/// A token whose signature, issuer, audience, times and `jti` have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The token's `iss`: one of the provider's configured issuers.
    pub issuer: String,
    pub jti: String,
    pub exp: i64,
    pub iat: i64,
    pub claims: Claims,
}

impl VerifiedIdentity {
    pub fn provider(&self) -> ProviderKind {
        self.claims.kind()
    }

    /// The token's unique ID, to be remembered until [`Self::replay_window_ends_at`].
    pub fn jti(&self) -> &str {
        &self.jti
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn issued_at(&self) -> DateTime<Utc> {
        timestamp(self.iat)
    }

    /// The token's `exp`.
    pub fn expires_at(&self) -> DateTime<Utc> {
        timestamp(self.exp)
    }

    /// Until when the token's `jti` must be remembered: strictly past the last instant at which
    /// the token verifies (see [`super::verify::jti_forgettable_from`]). Store it and delete the
    /// `jti` only when this instant is at or before the clean-up's `now`.
    pub fn replay_window_ends_at(&self) -> DateTime<Utc> {
        jti_forgettable_from(self.exp)
    }

    /// `published_by`: GitHub `actor`, GitLab `user_login`, Buildkite `organization/pipeline`.
    pub fn published_by(&self) -> String {
        self.claims.published_by()
    }

    /// What an exchange of this token records.
    pub fn data(&self) -> TrustpubData {
        self.claims.data()
    }
}

fn timestamp(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
