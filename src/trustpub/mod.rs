//! Trusted Publishing: verifying CI identity tokens and matching them to publisher configs.
//!
//! A CI job (GitHub Actions, GitLab CI, Buildkite…) sends the OIDC ID token its platform minted for it; the
//! registry exchanges it for a short-lived publish token. This module holds the part of that
//! exchange that is not HTTP:
//!
//! - [`Verifier::verify`] checks the token: shape and size, header
//!   (`RS256` only, `kid` required, never a key from the token), a configured issuer, the issuer's
//!   published keys (discovered through `/.well-known/openid-configuration`, cached per issuer in
//!   [`jwks`]), the signature, then the claims (`aud`, `exp`, `iat`, `nbf`, `jti`, and for GitHub
//!   the refused `event_name`s). It returns a typed [`VerifiedIdentity`].
//! - Each CI provider is one file implementing [`Provider`] (`github.rs`, `gitlab.rs`, …),
//!   listed once in [`providers`]: its claims, how they are matched against its configs (saying
//!   precisely which field differed when nothing matches), its record ([`TrustpubData`]), its
//!   config fields and its config table. Adding a provider adds such a file, one line in the
//!   registry, a migration for its table, and docs.
//!
//! Single use of `jti` is the caller's job (it needs the database): remember
//! [`VerifiedIdentity::jti`] until [`VerifiedIdentity::replay_window_ends_at`].
//!
//! No actix here; the database is touched only by each provider's config-table functions.
//! Matching is pure.

pub mod buildkite;
pub mod claims;
pub mod errors;
pub mod github;
pub mod gitlab;
mod identity;
pub mod jwks;
pub mod provider;
pub mod providers;
pub mod record;
mod verify;

pub use errors::{MatchError, VerifyError};
pub use github::{GitHub, GitHubClaims, GitHubConfig};
pub use gitlab::{GitLab, GitLabClaims, GitLabConfig};
pub use identity::VerifiedIdentity;
pub use provider::{Candidate, FieldError, Match, Provider};
pub use providers::{Claims, ProviderKind, TrustpubData};
pub use record::{Published, Record};
pub use verify::{
    JTI_MARGIN_SECONDS, LEEWAY_SECONDS, MAX_TOKEN_BYTES, TrustpubSettings, Verifier,
    jti_forgettable_from, refused_from,
};
