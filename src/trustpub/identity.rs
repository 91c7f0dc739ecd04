//! What a verified ID token says about the CI job that sent it.

use chrono::{DateTime, Utc};

use super::github::{self, GitHubClaims};
use super::gitlab::{self, GitLabClaims};
use super::verify::jti_forgettable_from;

/// The CI platform that issued a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
}

impl Provider {
    /// The stable lower-case name used in the API and the database: `github` or `gitlab`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::GitHub => "GitHub Actions",
            Provider::GitLab => "GitLab CI",
        })
    }
}

/// A token whose signature, issuer, audience, times and `jti` have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedIdentity {
    GitHub(GitHubClaims),
    GitLab(GitLabClaims),
}

impl VerifiedIdentity {
    pub fn provider(&self) -> Provider {
        match self {
            VerifiedIdentity::GitHub(_) => Provider::GitHub,
            VerifiedIdentity::GitLab(_) => Provider::GitLab,
        }
    }

    /// The token's unique ID, to be remembered until [`Self::replay_window_ends_at`].
    pub fn jti(&self) -> &str {
        match self {
            VerifiedIdentity::GitHub(c) => &c.jti,
            VerifiedIdentity::GitLab(c) => &c.jti,
        }
    }

    pub fn issuer(&self) -> &str {
        match self {
            VerifiedIdentity::GitHub(c) => &c.iss,
            VerifiedIdentity::GitLab(c) => &c.iss,
        }
    }

    pub fn issued_at(&self) -> DateTime<Utc> {
        timestamp(match self {
            VerifiedIdentity::GitHub(c) => c.iat,
            VerifiedIdentity::GitLab(c) => c.iat,
        })
    }

    /// The token's `exp`.
    pub fn expires_at(&self) -> DateTime<Utc> {
        timestamp(match self {
            VerifiedIdentity::GitHub(c) => c.exp,
            VerifiedIdentity::GitLab(c) => c.exp,
        })
    }

    /// Until when the token's `jti` must be remembered: strictly past the last instant at which
    /// the token verifies (see [`super::verify::jti_forgettable_from`]). Store it and delete the
    /// `jti` only when this instant is at or before the clean-up's `now`.
    pub fn replay_window_ends_at(&self) -> DateTime<Utc> {
        jti_forgettable_from(match self {
            VerifiedIdentity::GitHub(c) => c.exp,
            VerifiedIdentity::GitLab(c) => c.exp,
        })
    }

    /// Who started the run: GitHub `actor`, GitLab `user_login`. Recorded as `published_by`.
    pub fn actor(&self) -> &str {
        match self {
            VerifiedIdentity::GitHub(c) => &c.actor,
            VerifiedIdentity::GitLab(c) => &c.user_login,
        }
    }

    /// GitHub `repository` (`owner/name`), GitLab `project_path` (`group/sub/project`).
    pub fn repository(&self) -> &str {
        match self {
            VerifiedIdentity::GitHub(c) => &c.repository,
            VerifiedIdentity::GitLab(c) => &c.project_path,
        }
    }

    /// The workflow file (GitHub: file name from `workflow_ref`) or CI config path (GitLab: from
    /// `ci_config_ref_uri`); `None` when the claim has an unexpected shape.
    pub fn workflow(&self) -> Option<&str> {
        match self {
            VerifiedIdentity::GitHub(c) => github::workflow_filename(&c.workflow_ref),
            VerifiedIdentity::GitLab(c) => gitlab::ci_config_path(&c.ci_config_ref_uri),
        }
    }

    pub fn environment(&self) -> Option<&str> {
        match self {
            VerifiedIdentity::GitHub(c) => c.environment.as_deref(),
            VerifiedIdentity::GitLab(c) => c.environment.as_deref(),
        }
    }

    /// GitHub `run_id`, GitLab `job_id`.
    pub fn run_id(&self) -> i64 {
        match self {
            VerifiedIdentity::GitHub(c) => c.run_id,
            VerifiedIdentity::GitLab(c) => c.job_id,
        }
    }

    /// The commit that was built.
    pub fn sha(&self) -> &str {
        match self {
            VerifiedIdentity::GitHub(c) => &c.sha,
            VerifiedIdentity::GitLab(c) => &c.sha,
        }
    }

    /// The git ref that was built (GitHub `refs/tags/v1`, GitLab `v1`).
    pub fn git_ref(&self) -> &str {
        match self {
            VerifiedIdentity::GitHub(c) => &c.git_ref,
            VerifiedIdentity::GitLab(c) => &c.git_ref,
        }
    }

    /// A link to the run (GitHub) or job (GitLab) that published.
    pub fn run_url(&self) -> String {
        match self {
            VerifiedIdentity::GitHub(c) => c.run_url(),
            VerifiedIdentity::GitLab(c) => c.job_url(),
        }
    }
}

fn timestamp(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Serde helpers for the shapes claims come in.
pub(crate) mod de {
    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrNumber {
        String(String),
        Integer(i64),
        Other(serde::de::IgnoredAny),
    }

    /// An ID that the platforms send as a string of digits (`"123"`); a JSON integer is accepted
    /// too.
    pub fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        match StringOrNumber::deserialize(deserializer)? {
            StringOrNumber::String(s) => s
                .parse()
                .map_err(|_| D::Error::custom("expected an ID made of digits")),
            StringOrNumber::Integer(i) => Ok(i),
            StringOrNumber::Other(_) => Err(D::Error::custom("expected an integer ID")),
        }
    }

    pub fn optional_id<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        match Option::<StringOrNumber>::deserialize(deserializer)? {
            None => Ok(None),
            Some(StringOrNumber::String(s)) if s.is_empty() => Ok(None),
            Some(StringOrNumber::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom("expected an ID made of digits")),
            Some(StringOrNumber::Integer(i)) => Ok(Some(i)),
            Some(StringOrNumber::Other(_)) => Err(D::Error::custom("expected an integer ID")),
        }
    }

    /// A JWT NumericDate: seconds since the epoch, possibly fractional.
    pub fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        super::super::verify::numeric_date(&value)
            .ok_or_else(|| D::Error::custom("expected a NumericDate"))
    }

    pub fn optional_numeric_date<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            None => Ok(None),
            Some(value) => super::super::verify::numeric_date(&value)
                .map(Some)
                .ok_or_else(|| D::Error::custom("expected a NumericDate")),
        }
    }

    /// An optional string where `""` means absent (GitHub sends `"head_ref": ""`, and an empty
    /// environment is no environment).
    pub fn non_empty<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
    }
}
