//! The answers to cargo's requests.

use anyhow::anyhow;
use cargo_credential::{
    Action, CacheControl, Credential, CredentialResponse, Error, Operation, RegistryInfo, Secret,
};
use url::Url;

use crate::ci::{Detection, Environment, IdTokenSource};
use crate::note;
use crate::options::Options;
use crate::registry::{self, Revocation};
use crate::state::{MintedToken, TokenStore, fingerprint};

/// What the provider answers to `read` inside CI for an open registry. Not a credential: `cargo
/// publish` insists on a read token before it builds the package, but never sends it to a
/// registry that does not require authentication for reads, and cargo does not cache it.
pub const READ_PLACEHOLDER: &str = "cargo-credential-wharf-has-no-read-token";

/// The credential provider.
#[derive(Debug, Clone)]
pub struct WharfCredential {
    env: Environment,
}

impl WharfCredential {
    pub fn new(env: Environment) -> Self {
        Self { env }
    }

    pub fn from_process_env() -> Self {
        Self::new(Environment::from_process())
    }

    fn store(&self) -> TokenStore {
        TokenStore::for_environment(&self.env)
    }

    /// `get` / `publish`: a token from the Trusted Publishing exchange, for this upload only
    /// (cargo does not cache it). A token this cargo command already holds is used again: one
    /// exchanged to read a private registry, one exchanged for an earlier crate of the same
    /// `cargo publish --workspace`, or the one GitLab's single ID token was exchanged for.
    fn publish(
        &self,
        registry: &RegistryInfo<'_>,
        options: &Options,
        config_url: &Url,
        crate_name: &str,
        version: &str,
    ) -> Result<CredentialResponse, Error> {
        let source = match self.env.detect(options) {
            Detection::Available(source) => source,
            Detection::Unavailable(reason) => {
                note(&format!(
                    "{reason}; no Trusted Publishing token for {}",
                    display(registry)
                ));
                return Err(Error::NotFound);
            }
            Detection::NotInCi => {
                note(&format!(
                    "not running in GitHub Actions, GitLab CI or Buildkite, so there is no ID \
                     token to exchange for {}; cargo will try its other credential providers",
                    display(registry)
                ));
                return Err(Error::NotFound);
            }
        };

        let http = registry::http_client()?;
        let api = registry::api_base(&http, config_url)?;
        let audience = self.audience(options, &api)?;

        // GitLab gives a job one ID token, and the registry accepts each ID token once: a second
        // publish in the same job (`cargo publish --workspace`, or two `cargo publish` commands)
        // reuses the token minted from it, which is still live because it is kept out of the
        // sweep below.
        let single_id_token = single_id_token(&source);
        let mut remembered = self.sweep(&http, single_id_token.as_deref());
        if let Some(earlier) = self.reusable(&remembered, &api, single_id_token.as_deref()) {
            note(&format!(
                "reusing the Trusted Publishing token this job already exchanged, to publish \
                 {crate_name}@{version}"
            ));
            return Ok(single_use(earlier.token.clone()));
        }

        let token = self.mint(&http, &source, &audience, &api, &mut remembered)?;
        note(&format!(
            "exchanged {} for a Trusted Publishing token to publish {crate_name}@{version}; it \
             is revoked by the provider's next run or by `cargo logout`",
            source.describe(&audience)
        ));
        Ok(single_use(token))
    }

    /// `get` / `read` inside CI. For a private registry (`"auth-required": true` in its
    /// `config.json`), a Trusted Publishing token that cargo keeps for the rest of this command
    /// (`cache: session`): one exchange per cargo command, so that `cargo publish` can resolve
    /// private dependencies for its verification build and `cargo build` can fetch them; later
    /// commands revoke it. For an open registry, a placeholder (see [`READ_PLACEHOLDER`]). If
    /// no token can be had, `not-found`, so cargo tries its other providers (an API token in
    /// `CARGO_REGISTRIES_<NAME>_TOKEN`). Outside CI, `not-found`.
    fn read(
        &self,
        registry: &RegistryInfo<'_>,
        options: &Options,
        config_url: &Url,
    ) -> Result<CredentialResponse, Error> {
        let source = match self.env.detect(options) {
            Detection::Available(source) => source,
            Detection::Unavailable(reason) => {
                note(&format!(
                    "{reason}; no Trusted Publishing token for {}",
                    display(registry)
                ));
                return Err(Error::NotFound);
            }
            Detection::NotInCi => {
                note(&format!(
                    "not running in GitHub Actions, GitLab CI or Buildkite: no Trusted \
                     Publishing token for {}",
                    display(registry)
                ));
                return Err(Error::NotFound);
            }
        };
        let http = registry::http_client()?;
        // A new cargo command may have started: tokens minted for earlier ones are done.
        let single_id_token = single_id_token(&source);
        let mut remembered = self.sweep(&http, single_id_token.as_deref());
        let config = registry::registry_config(&http, config_url)?;
        if !config.auth_required {
            return Ok(single_use(Secret::from(READ_PLACEHOLDER.to_owned())));
        }
        if let Some(earlier) = self.reusable(&remembered, &config.api, single_id_token.as_deref()) {
            return Ok(for_this_command(earlier.token.clone()));
        }
        let audience = self.audience(options, &config.api)?;
        match self.mint(&http, &source, &audience, &config.api, &mut remembered) {
            Ok(token) => {
                note(&format!(
                    "exchanged {} for a Trusted Publishing token to read {}; cargo keeps it \
                     for this command, and the provider's next run revokes it",
                    source.describe(&audience),
                    display(registry)
                ));
                Ok(for_this_command(token))
            }
            Err(error) => {
                note(&format!(
                    "{error}; no Trusted Publishing token to read {}, so cargo will try its \
                     other credential providers",
                    display(registry)
                ));
                Err(Error::NotFound)
            }
        }
    }

    /// The `aud` to ask the ID token for.
    fn audience(&self, options: &Options, api: &Url) -> Result<String, Error> {
        Ok(
            match options
                .audience
                .as_deref()
                .or(self.env.var("WHARF_AUDIENCE"))
            {
                Some(audience) => audience.to_owned(),
                None => registry::default_audience(api)?,
            },
        )
    }

    /// A live token for `api` that this cargo command minted, or that GitLab's single ID token
    /// (`single_id_token`) was exchanged for.
    fn reusable<'a>(
        &self,
        remembered: &'a [MintedToken],
        api: &Url,
        single_id_token: Option<&str>,
    ) -> Option<&'a MintedToken> {
        remembered
            .iter()
            .filter(|minted| minted.api == api.as_str())
            .find(|minted| {
                single_id_token.is_some_and(|id| minted.id_token_sha256 == id)
                    || self.this_command(minted)
            })
    }

    /// True when `minted` was minted for the cargo command this provider runs for.
    fn this_command(&self, minted: &MintedToken) -> bool {
        minted.invocation.is_some() && minted.invocation.as_deref() == self.env.invocation()
    }

    /// Exchanges a fresh ID token at `api` and remembers the new token (to revoke it later).
    fn mint(
        &self,
        http: &reqwest::blocking::Client,
        source: &IdTokenSource,
        audience: &str,
        api: &Url,
        remembered: &mut Vec<MintedToken>,
    ) -> Result<Secret<String>, Error> {
        let jwt = source.id_token(http, audience)?;
        let token = registry::exchange(http, api, jwt.as_deref())?;
        remembered.push(MintedToken {
            api: api.to_string(),
            token: token.clone(),
            id_token_sha256: fingerprint(jwt.as_deref()),
            invocation: self.env.invocation().map(str::to_owned),
        });
        if let Err(error) = self.store().save(remembered) {
            note(&format!(
                "{error:#}; the new token cannot be revoked by this provider and stays valid \
                 until it expires"
            ));
        }
        Ok(token)
    }

    /// `logout`: revoke everything remembered.
    fn logout(&self) -> Result<CredentialResponse, Error> {
        let store = self.store();
        let remembered = store.load()?;
        if remembered.is_empty() {
            return Err(Error::NotFound);
        }
        let http = registry::http_client()?;
        let (revoked, still_live) = revoke_all(&http, remembered, |_| false);
        store.save(&still_live)?;
        if !still_live.is_empty() {
            return Err(anyhow!(
                "{} Trusted Publishing token(s) could not be revoked (see above); run \
                 `cargo logout` again, or let them expire",
                still_live.len()
            )
            .into());
        }
        note(&format!(
            "revoked {revoked} Trusted Publishing token(s) at the registry"
        ));
        Ok(CredentialResponse::Logout)
    }

    /// Revokes remembered tokens, except those of this cargo command and those exchanged for
    /// the ID token `keep`, and returns what is left to remember. Problems are reported on stderr, never fatal: a token that
    /// cannot be revoked now is kept and tried again next time.
    fn sweep(&self, http: &reqwest::blocking::Client, keep: Option<&str>) -> Vec<MintedToken> {
        let store = self.store();
        let remembered = match store.load() {
            Ok(remembered) => remembered,
            Err(error) => {
                note(&format!("{error:#}; starting a new one"));
                Vec::new()
            }
        };
        if remembered.is_empty() {
            return remembered;
        }
        let (revoked, still_live) = revoke_all(http, remembered, |minted| {
            Some(minted.id_token_sha256.as_str()) == keep || self.this_command(minted)
        });
        if revoked > 0 {
            note(&format!(
                "revoked {revoked} Trusted Publishing token(s) minted by an earlier run"
            ));
        }
        if let Err(error) = store.save(&still_live) {
            note(&format!("{error:#}"));
        }
        still_live
    }
}

/// Revokes each token that `keep` does not keep; returns how many were revoked and the tokens
/// that remain live (kept, or not revocable right now).
fn revoke_all(
    http: &reqwest::blocking::Client,
    tokens: Vec<MintedToken>,
    keep: impl Fn(&MintedToken) -> bool,
) -> (usize, Vec<MintedToken>) {
    let mut revoked = 0;
    let mut still_live = Vec::new();
    for minted in tokens {
        if keep(&minted) {
            still_live.push(minted);
            continue;
        }
        let outcome = Url::parse(&minted.api)
            .map_err(anyhow::Error::from)
            .and_then(|api| registry::revoke(http, &api, minted.token.as_deref()));
        match outcome {
            Ok(Revocation::Revoked) => revoked += 1,
            Ok(Revocation::Refused(detail)) => note(&format!(
                "{} did not revoke an earlier token ({detail}); it is no longer valid there, \
                 so it is forgotten",
                minted.api
            )),
            Err(error) => {
                note(&format!(
                    "could not revoke an earlier token at {}: {error:#}; will try again",
                    minted.api
                ));
                still_live.push(minted);
            }
        }
    }
    (revoked, still_live)
}

/// GitLab's one ID token per job, which the registry accepts once: its fingerprint.
fn single_id_token(source: &IdTokenSource) -> Option<String> {
    match source {
        IdTokenSource::GitLabCi { jwt, .. } => Some(fingerprint(jwt.as_deref())),
        IdTokenSource::GitHubActions { .. } | IdTokenSource::Buildkite { .. } => None,
    }
}

/// A read token cargo keeps for the rest of this command (and uses for reads only).
fn for_this_command(token: Secret<String>) -> CredentialResponse {
    CredentialResponse::Get {
        token,
        cache: CacheControl::Session,
        operation_independent: false,
    }
}

/// A token cargo must use for this one request: never cached, and not for other operations.
fn single_use(token: Secret<String>) -> CredentialResponse {
    CredentialResponse::Get {
        token,
        cache: CacheControl::Never,
        operation_independent: false,
    }
}

fn display(registry: &RegistryInfo<'_>) -> String {
    match registry.name {
        Some(name) => format!("registry `{name}`"),
        None => format!("registry `{}`", registry.index_url),
    }
}

fn operation_name(operation: &Operation<'_>) -> &'static str {
    match operation {
        Operation::Read => "read",
        Operation::Publish { .. } => "publish",
        Operation::Yank { .. } => "yank",
        Operation::Unyank { .. } => "unyank",
        Operation::Owners { .. } => "owners",
        _ => "this operation",
    }
}

impl Credential for WharfCredential {
    fn perform(
        &self,
        registry: &RegistryInfo<'_>,
        action: &Action<'_>,
        args: &[&str],
    ) -> Result<CredentialResponse, Error> {
        let options = Options::parse(args)?;
        match action {
            Action::Get(operation) => {
                let Some(config_url) = registry::config_json_url(registry.index_url)? else {
                    note(&format!(
                        "{} does not use a sparse index (`sparse+https://…`), so its API \
                         cannot be found",
                        display(registry)
                    ));
                    return Err(Error::UrlNotSupported);
                };
                match operation {
                    Operation::Publish { name, vers, .. } => {
                        self.publish(registry, &options, &config_url, name, vers)
                    }
                    Operation::Read => self.read(registry, &options, &config_url),
                    other => {
                        note(&format!(
                            "Trusted Publishing tokens can only publish new versions; no token \
                             for `{}` on {}",
                            operation_name(other),
                            display(registry)
                        ));
                        Err(Error::NotFound)
                    }
                }
            }
            Action::Logout => self.logout(),
            Action::Login(_) => {
                note(
                    "Trusted Publishing needs no login: in CI the token is obtained when cargo \
                     publishes",
                );
                Err(Error::OperationNotSupported)
            }
            _ => Err(Error::OperationNotSupported),
        }
    }
}
