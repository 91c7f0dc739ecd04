//! One fake identity provider for development mode and the tests, on loopback only, speaking
//! each CI platform's real protocol with real RSA keys and signed JWTs.
//!
//! A [`FakeIdp`] is one HTTP server (its own thread and actix runtime, so it starts from any
//! context) that hosts one OIDC issuer per [`Provider`] under a path prefix, as a real
//! self-hosted instance has one:
//!
//! | provider | issuer | key set (from discovery's `jwks_uri`) | more |
//! | --- | --- | --- | --- |
//! | GitHub Actions | `{base}/_services/token` (GitHub Enterprise Server's shape) | `{issuer}/.well-known/jwks` | OAuth, REST API, ID-token request endpoint, run pages: [`github`] |
//! | GitLab CI | `{base}/gitlab` (a self-managed GitLab's relative URL root) | `{issuer}/oauth/discovery/keys` | job pages: [`gitlab`] |
//! | Buildkite | `{base}/buildkite` | `{issuer}/.well-known/jwks` | Agent API, build pages: [`buildkite`] |
//!
//! Discovery is always `{issuer}/.well-known/openid-configuration`. Run, job and build links
//! derived from these issuers lead back to the fake. Each issuer has its own keys
//! ([`keys`]), rotation, and knobs ([`Issuer`]): downtime, a broken key set, counters of
//! discovery and key-set fetches, the times its CI endpoint minted tokens, and claims to
//! override in those tokens. The `FakeIdp` methods named like the `Issuer` ones act on the
//! *primary* issuer, the provider the fake was started for; [`FakeIdp::issuer_of`] reaches the
//! others.
//!
//! Claim builders ([`FakeIdp::github_claims`], [`FakeIdp::gitlab_claims`],
//! [`FakeIdp::buildkite_claims`]) give each platform's real claims for a default run, job or
//! build, with overrides. GitHub accounts follow an [`AccountPolicy`]: development mode
//! creates them on demand, the tests list them, so an unknown owner is a 404 as on GitHub.
//! [`pages`] has the development-mode forms that mint ID tokens by hand.
//!
//! Nothing here is secret: it is for trying Wharf and for tests, never for production.

pub mod accounts;
pub mod buildkite;
pub mod claims;
pub mod github;
pub mod gitlab;
pub mod issuer;
pub mod keys;
pub mod pages;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use actix_web::{App, HttpServer, web};
use anyhow::{Context, bail};
use serde_json::Value;

pub use self::accounts::{Account, AccountPolicy};
pub use self::buildkite::{
    BUILDKITE_AGENT_ID, BUILDKITE_BRANCH, BUILDKITE_BUILD_NUMBER, BUILDKITE_JOB_ID,
    BUILDKITE_ORGANIZATION, BUILDKITE_ORGANIZATION_ID, BUILDKITE_PIPELINE, BUILDKITE_PIPELINE_ID,
    BUILDKITE_STEP_KEY, BuildkiteJob,
};
pub use self::claims::{LIFETIME_SECONDS, SHA};
pub use self::github::{
    CLIENT_ID, CLIENT_SECRET, GITHUB_ACTOR, GITHUB_ACTOR_ID, GITHUB_OWNER, GITHUB_OWNER_ID,
    GITHUB_REPO, GITHUB_RUN_ID, GITHUB_WORKFLOW, GitHubRun,
};
pub use self::gitlab::{
    GITLAB_CI_CONFIG, GITLAB_JOB_ID, GITLAB_NAMESPACE, GITLAB_NAMESPACE_ID, GITLAB_PROJECT,
    GITLAB_USER, GitLabJob,
};
pub use self::issuer::Issuer;
pub use self::keys::{segment, unsigned};

/// A CI platform whose issuer the fake hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    Buildkite,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::GitHub, Provider::GitLab, Provider::Buildkite];

    pub fn slug(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Buildkite => "buildkite",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Provider::GitHub => "GitHub Actions",
            Provider::GitLab => "GitLab CI",
            Provider::Buildkite => "Buildkite",
        }
    }

    /// The issuer's path under the fake's base URL.
    pub fn issuer_path(self) -> &'static str {
        match self {
            Provider::GitHub => "/_services/token",
            Provider::GitLab => "/gitlab",
            Provider::Buildkite => "/buildkite",
        }
    }

    /// The key set's path under the issuer, where the real platform has it.
    pub fn jwks_path(self) -> &'static str {
        match self {
            Provider::GitHub | Provider::Buildkite => "/.well-known/jwks",
            Provider::GitLab => "/oauth/discovery/keys",
        }
    }

    /// `claims_supported` of the discovery document.
    fn claims_supported(self) -> &'static [&'static str] {
        match self {
            Provider::GitHub => &[
                "sub",
                "aud",
                "exp",
                "iat",
                "iss",
                "jti",
                "nbf",
                "ref",
                "sha",
                "repository",
                "repository_id",
                "repository_owner",
                "repository_owner_id",
                "run_id",
                "run_number",
                "run_attempt",
                "actor",
                "actor_id",
                "workflow",
                "workflow_ref",
                "workflow_sha",
                "job_workflow_ref",
                "job_workflow_sha",
                "event_name",
                "environment",
                "runner_environment",
            ],
            Provider::GitLab => &[
                "sub",
                "aud",
                "exp",
                "iat",
                "iss",
                "jti",
                "nbf",
                "namespace_id",
                "namespace_path",
                "project_id",
                "project_path",
                "user_id",
                "user_login",
                "pipeline_id",
                "job_id",
                "ref",
                "ref_type",
                "ref_path",
                "environment",
                "sha",
                "ci_config_ref_uri",
                "ci_config_sha",
                "runner_id",
                "runner_environment",
            ],
            Provider::Buildkite => &[
                "sub",
                "aud",
                "exp",
                "iat",
                "iss",
                "jti",
                "nbf",
                "organization_slug",
                "organization_id",
                "pipeline_slug",
                "pipeline_id",
                "build_number",
                "build_branch",
                "build_tag",
                "build_commit",
                "step_key",
                "job_id",
                "agent_id",
                "build_source",
                "runner_environment",
            ],
        }
    }

    fn index(self) -> usize {
        match self {
            Provider::GitHub => 0,
            Provider::GitLab => 1,
            Provider::Buildkite => 2,
        }
    }
}

/// How to start a [`FakeIdp`].
#[derive(Debug, Clone)]
pub struct FakeIdpOptions {
    /// Must be a loopback address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The issuer that [`FakeIdp::issuer`], [`FakeIdp::sign`], [`FakeIdp::claims`] and the
    /// knobs act on.
    pub primary: Provider,
    pub accounts: AccountPolicy,
    /// The OAuth client it accepts.
    pub client_id: String,
    pub client_secret: String,
}

impl FakeIdpOptions {
    /// What the tests use: any free port on 127.0.0.1, listed accounts.
    pub fn for_tests(primary: Provider) -> FakeIdpOptions {
        FakeIdpOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            primary,
            accounts: AccountPolicy::Listed,
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
        }
    }

    /// What development mode uses: `port` on 127.0.0.1 (0: any), accounts on demand.
    pub fn for_dev(port: u16) -> FakeIdpOptions {
        FakeIdpOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            accounts: AccountPolicy::OnDemand,
            ..FakeIdpOptions::for_tests(Provider::GitHub)
        }
    }
}

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

/// What the handlers share.
pub(crate) struct State {
    base_url: String,
    primary: Provider,
    issuers: [Issuer; 3],
    accounts: accounts::Accounts,
    github: github::GitHubState,
    buildkite: buildkite::AgentState,
}

impl State {
    fn issuer(&self, provider: Provider) -> &Issuer {
        &self.issuers[provider.index()]
    }

    fn github_api_url(&self) -> String {
        format!("{}{}", self.base_url, github::API_PATH)
    }

    fn id_token_request_url(&self) -> String {
        format!(
            "{}{}?api-version=2.0",
            self.base_url,
            github::ID_TOKEN_REQUEST_PATH
        )
    }

    fn buildkite_agent_endpoint(&self) -> String {
        format!(
            "{}{}",
            self.issuer(Provider::Buildkite).url(),
            buildkite::AGENT_API_PATH
        )
    }
}

/// A running fake identity provider; stopped when dropped.
pub struct FakeIdp {
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        // Sends the stop command now; the server's thread ends by itself.
        drop(self.handle.stop(false));
    }
}

impl FakeIdp {
    /// Starts a fake for the tests ([`FakeIdpOptions::for_tests`]) whose primary issuer is
    /// `primary`.
    ///
    /// # Panics
    ///
    /// If it cannot start (no free port, no thread); tests have nothing better to do.
    pub fn start(primary: Provider) -> FakeIdp {
        FakeIdp::start_with(FakeIdpOptions::for_tests(primary))
            .expect("starting the fake identity provider")
    }

    /// Starts a fake on `options.bind`, which must be a loopback address. Works from any
    /// context (it runs its own actix system on its own thread).
    pub fn start_with(options: FakeIdpOptions) -> anyhow::Result<FakeIdp> {
        if !options.bind.ip().is_loopback() {
            bail!(
                "the fake identity provider only listens on a loopback address (127.0.0.1 or [::1]), not {}",
                options.bind
            );
        }
        let listener = TcpListener::bind(options.bind)
            .with_context(|| format!("cannot listen on {}", options.bind))?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let slots = Arc::new(keys::Slots::default());
        let [github_issuer, gitlab_issuer, buildkite_issuer] = Provider::ALL
            .map(|provider| Issuer::new(provider, &base_url, instance, Arc::clone(&slots)));
        let state = Arc::new(State {
            primary: options.primary,
            issuers: [github_issuer?, gitlab_issuer?, buildkite_issuer?],
            accounts: accounts::Accounts::new(
                options.accounts,
                &[
                    (GITHUB_OWNER, GITHUB_OWNER_ID),
                    (GITHUB_ACTOR, GITHUB_ACTOR_ID),
                ],
            ),
            github: github::GitHubState::new(options.client_id, options.client_secret),
            buildkite: buildkite::AgentState::new(),
            base_url,
        });
        let handle = serve(listener, Arc::clone(&state), instance)?;
        Ok(FakeIdp { state, handle })
    }

    /// `http://127.0.0.1:PORT`: GitHub's web and OAuth (`WHARF_GITHUB_URL`).
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The provider whose issuer the shortcuts below act on.
    pub fn primary(&self) -> Provider {
        self.state.primary
    }

    /// The issuer of `provider`.
    pub fn issuer_of(&self, provider: Provider) -> &Issuer {
        self.state.issuer(provider)
    }

    fn primary_issuer(&self) -> &Issuer {
        self.state.issuer(self.state.primary)
    }

    // -----------------------------------------------------------------------------------------
    // The primary issuer

    /// The primary issuer's URL, the `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        self.primary_issuer().url()
    }

    /// The `kid` that [`FakeIdp::sign`] uses now.
    pub fn current_kid(&self) -> String {
        self.primary_issuer().current_kid()
    }

    /// The current signing key's public half as PEM (SPKI), e.g. for HMAC key-confusion attacks.
    pub fn public_key_pem(&self) -> String {
        self.primary_issuer().public_key_pem()
    }

    /// The published key set, as served.
    pub fn jwks(&self) -> Value {
        self.primary_issuer().jwks()
    }

    /// Signs `claims` with RS256 and the primary issuer's current `kid`.
    ///
    /// # Panics
    ///
    /// If RSA signing fails, which a valid key does not.
    pub fn sign(&self, claims: &Value) -> String {
        self.primary_issuer().sign(claims)
    }

    /// Signs with RS256 and the current key, whatever `header` says (for hostile headers).
    ///
    /// # Panics
    ///
    /// If RSA signing fails, which a valid key does not.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.primary_issuer().sign_with_header(header, claims)
    }

    /// Publishes a new key (the old ones stay published, as real providers do) and signs with
    /// it from now on. Returns the new `kid`.
    ///
    /// # Panics
    ///
    /// If the new key cannot be generated.
    pub fn rotate_key(&self) -> String {
        self.primary_issuer()
            .rotate_key()
            .expect("generating a key for the fake issuer")
    }

    /// Answer HTTP 500 to discovery and key-set requests (for GitHub, to its REST API too).
    pub fn set_down(&self, down: bool) {
        self.primary_issuer().set_down(down);
    }

    /// Serve something that is not a key set at the JWKS URL.
    pub fn set_broken_jwks(&self, broken: bool) {
        self.primary_issuer().set_broken_jwks(broken);
    }

    /// How many times the key set was requested.
    pub fn jwks_fetches(&self) -> usize {
        self.primary_issuer().jwks_fetches()
    }

    /// How many times the discovery document was requested.
    pub fn discovery_fetches(&self) -> usize {
        self.primary_issuer().discovery_fetches()
    }

    /// When the primary provider's CI endpoint (GitHub's ID-token request endpoint, Buildkite's
    /// Agent API) minted a token.
    pub fn id_token_requests(&self) -> Vec<SystemTime> {
        self.primary_issuer().token_requests()
    }

    /// Claims to override in the tokens that the primary provider's CI endpoint mints.
    pub fn set_id_token_overrides(&self, overrides: Value) {
        self.primary_issuer().set_token_overrides(overrides);
    }

    /// The default claims of the primary provider (see the builders below).
    pub fn claims(&self, audience: &str, overrides: Value) -> Value {
        match self.state.primary {
            Provider::GitHub => self.github_claims(audience, overrides),
            Provider::GitLab => self.gitlab_claims(audience, overrides),
            Provider::Buildkite => self.buildkite_claims(audience, overrides),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Claims

    /// Claims shaped like a GitHub Actions ID token of this fake's GitHub issuer for
    /// `octo-org/widget`'s `release.yml`, run on a tag push (see [`github::Run`]), with a fresh
    /// `jti` and `iat`/`nbf` now, `exp` in 5 minutes. Keys of `overrides` replace the defaults;
    /// a `null` removes the claim.
    pub fn github_claims(&self, audience: &str, overrides: Value) -> Value {
        github::default_claims(&self.state, audience, overrides)
    }

    /// The claims of a GitHub Actions run described field by field.
    pub fn github_run_claims(&self, audience: &str, run: &github::Run) -> Value {
        run.claims(&self.state, audience)
    }

    /// Claims shaped like a GitLab CI ID token of this fake's GitLab issuer for `acme/widget`'s
    /// `.gitlab-ci.yml`, run for a tag (see [`gitlab::Job`]), with a fresh `jti` and
    /// `iat`/`nbf` now, `exp` in 5 minutes. Keys of `overrides` replace the defaults; a `null`
    /// removes the claim.
    pub fn gitlab_claims(&self, audience: &str, overrides: Value) -> Value {
        gitlab::default_claims(&self.state, audience, overrides)
    }

    /// The claims of a GitLab CI job described field by field.
    pub fn gitlab_job_claims(&self, audience: &str, job: &gitlab::Job) -> Value {
        job.claims(&self.state, audience)
    }

    /// `ci_config_ref_uri` as this fake's GitLab writes it for the default ref:
    /// `127.0.0.1:PORT/gitlab/{project_path}//{config_path}@refs/tags/v1.0.0`.
    pub fn gitlab_ci_config_ref_uri(&self, project_path: &str, config_path: &str) -> String {
        gitlab::ci_config_ref_uri(
            self.state.issuer(Provider::GitLab).url(),
            project_path,
            config_path,
            &gitlab::Job::default().ref_path(),
        )
    }

    /// Claims shaped like a Buildkite ID token of this fake's Buildkite issuer for step
    /// `publish` of build 42 of `acme/widget` on branch `main` (see [`buildkite::Job`]),
    /// without the optional `organization_id` and `pipeline_id`, with a fresh `jti` and
    /// `iat`/`nbf` now, `exp` in 5 minutes. Keys of `overrides` replace the defaults; a `null`
    /// removes the claim (to keep `step_key` or `build_tag` as `null`, use
    /// [`FakeIdp::buildkite_job_claims`]).
    pub fn buildkite_claims(&self, audience: &str, overrides: Value) -> Value {
        buildkite::default_claims(&self.state, audience, overrides)
    }

    /// The claims of a Buildkite job described field by field, valid for 5 minutes.
    pub fn buildkite_job_claims(&self, audience: &str, job: &buildkite::Job) -> Value {
        job.claims(&self.state, audience, LIFETIME_SECONDS)
    }

    // -----------------------------------------------------------------------------------------
    // GitHub

    /// The OAuth client it accepts (`WHARF_GITHUB_CLIENT_ID`).
    pub fn client_id(&self) -> &str {
        &self.state.github.client_id
    }

    /// `WHARF_GITHUB_CLIENT_SECRET`.
    pub fn client_secret(&self) -> &str {
        &self.state.github.client_secret
    }

    /// The REST API (`WHARF_GITHUB_API_URL`): `{base}/api/v3`, as on GitHub Enterprise Server.
    pub fn api_url(&self) -> String {
        self.state.github_api_url()
    }

    /// Like GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`: append `&audience=…`.
    pub fn id_token_request_url(&self) -> String {
        self.state.id_token_request_url()
    }

    /// Like GitHub's `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub fn id_token_request_token(&self) -> &str {
        &self.state.github.request_token
    }

    /// The GitHub account `login` (a user or organization) has the numeric ID `id` from now on
    /// (a deleted and re-created account gets a new one; a renamed one keeps its ID).
    pub fn set_account(&self, login: &str, id: i64) {
        self.state.accounts.set(login, id);
    }

    /// Makes `login` a member of the GitHub organisation `org` in state `membership`
    /// (`Some("active")` or `Some("pending")`), or no member (`None`), as
    /// `GET /user/memberships/orgs/{org}` answers from now on.
    pub fn set_org_membership(&self, org: &str, login: &str, membership: Option<&str>) {
        self.state.github.set_membership(org, login, membership);
    }

    /// Forgets the account `login` (see [`AccountPolicy`] for what that means on demand).
    pub fn remove_account(&self, login: &str) {
        self.state.accounts.remove(login);
    }

    /// The ID of the account `login`, if it exists.
    pub fn account_id(&self, login: &str) -> Option<i64> {
        self.state.accounts.find(login).map(|account| account.id)
    }

    // -----------------------------------------------------------------------------------------
    // Buildkite

    /// `BUILDKITE_AGENT_ENDPOINT`: `{buildkite issuer}/v3` (Buildkite's is
    /// `https://agent.buildkite.com/v3`).
    pub fn buildkite_agent_endpoint(&self) -> String {
        self.state.buildkite_agent_endpoint()
    }

    /// `BUILDKITE_AGENT_ACCESS_TOKEN`.
    pub fn buildkite_agent_access_token(&self) -> &str {
        &self.state.buildkite.access_token
    }

    /// `BUILDKITE_JOB_ID`: the job the fake's agent runs.
    pub fn buildkite_job_id(&self) -> &str {
        &self.state.buildkite.job_id
    }
}

/// Serves the fake on its own thread, with its own actix system; answers the server's handle
/// once it listens.
fn serve(
    listener: TcpListener,
    state: Arc<State>,
    instance: usize,
) -> anyhow::Result<actix_web::dev::ServerHandle> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("fake-idp-{instance}"))
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::from(state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .configure(issuer::routes)
                        .configure(github::routes)
                        .configure(gitlab::routes)
                        .configure(buildkite::routes)
                        .configure(pages::routes)
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .map(HttpServer::run);
                match server {
                    Ok(server) => {
                        if sender.send(Ok(server.handle())).is_ok()
                            && let Err(e) = server.await
                        {
                            tracing::error!(error = %e, "the fake identity provider failed");
                        }
                    }
                    Err(e) => drop(sender.send(Err(e))),
                }
            });
        })
        .context("cannot start the fake identity provider's thread")?;
    receiver
        .recv()
        .context("the fake identity provider did not start")?
        .context("the fake identity provider cannot serve")
}

/// What the fake's own tests share: checking a token as a relying party would.
#[cfg(test)]
pub(crate) mod testing {
    use anyhow::Context;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::Value;

    /// Verifies `jwt` the way a relying party does with nothing but the issuer's URL:
    /// discovery → `jwks_uri` → the key of the token's `kid` → RS256. Answers the claims.
    pub async fn verify(issuer: &str, jwt: &str) -> anyhow::Result<Value> {
        let http = reqwest::Client::new();
        let discovery: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(discovery["issuer"] == issuer, "discovery: {discovery}");
        let jwks_uri = discovery["jwks_uri"].as_str().context("no jwks_uri")?;
        let jwks: Value = http
            .get(jwks_uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let kid = jsonwebtoken::decode_header(jwt)?
            .kid
            .context("the token has no kid")?;
        let jwk = jwks["keys"]
            .as_array()
            .context("no keys")?
            .iter()
            .find(|key| key["kid"] == kid.as_str())
            .with_context(|| format!("the issuer does not publish {kid}"))?;
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().context("no n")?,
            jwk["e"].as_str().context("no e")?,
        )?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "jti", "nbf", "sub"]);
        Ok(jsonwebtoken::decode::<Value>(jwt, &key, &validation)?.claims)
    }
}
