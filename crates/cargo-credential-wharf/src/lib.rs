//! A cargo credential provider for Wharf's Trusted Publishing.
//!
//! Cargo starts this program once per credential request (`--cargo-plugin`, one JSON line in,
//! one JSON line out; see cargo's credential-provider protocol). What it answers:
//!
//! - `get` / `publish` inside GitHub Actions, GitLab CI or Buildkite: it obtains the job's OIDC
//!   ID token (on Buildkite from `buildkite-agent oidc request-token`),
//!   exchanges it at the registry (`POST {api}/api/v1/trusted_publishing/tokens`) and hands the
//!   short-lived token to cargo with `cache: never` and `operation_independent: false`, so cargo
//!   uses it for this one upload only.
//! - `get` / `read` inside CI: a placeholder that is not a credential. `cargo publish` asks for a
//!   read token before it builds the package and fails if none comes back; the placeholder is
//!   never sent during a publish to a registry that does not require authentication for reads.
//! - Any other `get` (yank, owners), and everything outside CI: `not-found`, so cargo tries the
//!   next provider; the reason goes to stderr, which cargo shows to the user.
//! - `logout`: revokes every token this provider minted and still remembers.
//!
//! Tokens it mints are remembered in a small state file ([`state`]) and revoked on the next
//! invocation, because cargo has no hook that runs after an upload.
//!
//! Nothing here ever prints a token or an ID token.

pub mod ci;
pub mod options;
pub mod provider;
pub mod registry;
pub mod state;

pub use ci::Environment;
pub use provider::WharfCredential;

/// Prefix of every line this provider writes to stderr, so users can tell it apart from cargo.
pub(crate) const NOTE_PREFIX: &str = "cargo-credential-wharf";

/// Writes a note for the user. Stdout belongs to the protocol; stderr is shown by cargo.
pub(crate) fn note(message: &str) {
    eprintln!("{NOTE_PREFIX}: {message}");
}
