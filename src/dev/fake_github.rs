//! A fake GitHub for development and tests, on loopback only. One server plays every part of
//! GitHub that Wharf talks to, speaking the real protocols:
//!
//! - OAuth: `GET /login/oauth/authorize` shows a form to pick any login (no password);
//!   `POST /login/oauth/access_token` checks the client credentials, the code, the redirect URI
//!   and the PKCE verifier (S256), and answers an access token;
//! - REST API: `GET /user`, `GET /user/emails` (with that token) and `GET /users/{login}` (the
//!   numeric-ID look-up of a repository owner);
//! - GitHub Actions OIDC: the issuer is `<base>/_services/token` (shaped like a GitHub
//!   Enterprise Server issuer, so that run links point back at this fake), with
//!   `/.well-known/openid-configuration` and a JWKS of a real RSA key; ID tokens shaped like
//!   GitHub Actions' are minted at `/_dev/id-token` (an HTML form) and
//!   `POST /_dev/id-token.json` (JSON);
//! - `/{owner}/{repo}/actions/runs/{id}/attempts/{n}`: a stand-in page for the run links.
//!
//! Accounts get stable ids: those added with [`FakeGitHub::add_account`], else one derived
//! from the login. Nothing here is secret: it is for trying Wharf, never for production.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use askama::Template;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::LineEnding;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The OAuth client the fake accepts unless told otherwise.
pub const DEV_CLIENT_ID: &str = "wharf-dev-client";
pub const DEV_CLIENT_SECRET: &str = "wharf-dev-secret-not-a-real-secret";
/// The path of the OIDC issuer under the fake's base URL.
pub const ISSUER_PATH: &str = "/_services/token";
/// Lifetime of minted ID tokens.
const ID_TOKEN_SECONDS: i64 = 300;

/// How to start a [`FakeGitHub`].
#[derive(Clone, Debug)]
pub struct FakeGitHubOptions {
    /// Must be a loopback address; port 0 picks a free port.
    pub bind: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
}

impl Default for FakeGitHubOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: DEV_CLIENT_ID.to_owned(),
            client_secret: DEV_CLIENT_SECRET.to_owned(),
        }
    }
}

struct PendingCode {
    login: String,
    redirect_uri: String,
    code_challenge: String,
}

struct State {
    base_url: String,
    client_id: String,
    client_secret: String,
    kid: String,
    encoding_key: EncodingKey,
    jwk: Value,
    /// lowercased login → (login, id)
    accounts: Mutex<HashMap<String, (String, i64)>>,
    codes: Mutex<HashMap<String, PendingCode>>,
    /// access token → login
    access_tokens: Mutex<HashMap<String, String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn issuer(&self) -> String {
        format!("{}{ISSUER_PATH}", self.base_url)
    }

    /// The account of `login`, created with a stable id on first use.
    fn account(&self, login: &str) -> (String, i64) {
        let mut accounts = lock(&self.accounts);
        accounts
            .entry(login.to_lowercase())
            .or_insert_with(|| (login.to_owned(), derived_id(login)))
            .clone()
    }

    fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding_key)?)
    }
}

/// A stable id from the login: 10 000 000 + (hash mod 90 000 000).
fn derived_id(login: &str) -> i64 {
    let digest = Sha256::digest(login.to_lowercase().as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    10_000_000 + i64::try_from(u64::from_be_bytes(bytes) % 90_000_000).unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::rng(), buffer.as_mut_slice());
    hex::encode(buffer)
}

/// `rsa` 0.9 wants a `rand_core` 0.6 RNG; this one draws from `rand`'s thread RNG (a CSPRNG).
struct Rng;

impl rsa::rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        rand::random()
    }
    fn next_u64(&mut self) -> u64 {
        rand::random()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        rand::fill(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Rng {}

/// A running fake GitHub; stopped when dropped.
pub struct FakeGitHub {
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        // The server's thread ends by itself once stopped.
        drop(self.thread.take());
    }
}

/// What the caller of `/_dev/id-token.json` may choose; everything has a default.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IdTokenRequest {
    /// The `aud` claim: the registry's audience (its host and port).
    pub audience: String,
    /// `owner/name`
    pub repository: Option<String>,
    /// The workflow file name in `.github/workflows/`.
    pub workflow: Option<String>,
    pub actor: Option<String>,
    pub environment: Option<String>,
    pub event_name: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub run_id: Option<i64>,
    pub sha: Option<String>,
}

impl FakeGitHub {
    /// Starts the fake on `options.bind`, which must be a loopback address. Works from any
    /// context (it runs its own actix system on its own thread).
    pub fn start(options: FakeGitHubOptions) -> anyhow::Result<FakeGitHub> {
        if !options.bind.ip().is_loopback() {
            bail!(
                "the fake GitHub only listens on a loopback address (127.0.0.1 or [::1]), not {}",
                options.bind
            );
        }
        let listener = TcpListener::bind(options.bind)
            .with_context(|| format!("cannot listen on {}", options.bind))?;
        let address = listener.local_addr()?;
        let base_url = format!("http://{address}");
        let private = RsaPrivateKey::new(&mut Rng, 2048).context("generating an RSA key")?;
        let pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .context("encoding the RSA key")?;
        let encoding_key = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let kid = format!("fake-github-{}", random_hex(4));
        let public = private.to_public_key();
        let jwk = json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        let state = Arc::new(State {
            base_url,
            client_id: options.client_id,
            client_secret: options.client_secret,
            kid,
            encoding_key,
            jwk,
            accounts: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
        });

        let (sender, receiver) = std::sync::mpsc::channel();
        let server_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("fake-github".to_owned())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let data = web::Data::from(server_state);
                    let server = HttpServer::new(move || {
                        App::new().app_data(data.clone()).configure(routes)
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
                                tracing::error!(error = %e, "the fake GitHub failed");
                            }
                        }
                        Err(e) => drop(sender.send(Err(e))),
                    }
                });
            })
            .context("cannot start the fake GitHub's thread")?;
        let handle = receiver
            .recv()
            .context("the fake GitHub did not start")?
            .context("the fake GitHub cannot serve")?;
        Ok(FakeGitHub {
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: both `WHARF_GITHUB_URL` and `WHARF_GITHUB_API_URL`.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The GitHub Actions OIDC issuer (`WHARF_TRUSTPUB_GITHUB_ISSUER`).
    pub fn issuer(&self) -> String {
        self.state.issuer()
    }

    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }

    /// Gives `login` the GitHub id `id` (for users and for repository owners).
    pub fn add_account(&self, login: &str, id: i64) {
        lock(&self.state.accounts).insert(login.to_lowercase(), (login.to_owned(), id));
    }

    /// The id `login` has (or gets) on this fake.
    pub fn account_id(&self, login: &str) -> i64 {
        self.state.account(login).1
    }

    /// Mints a GitHub Actions ID token (see [`github_actions_claims`]).
    pub fn mint_id_token(&self, request: &IdTokenRequest) -> anyhow::Result<String> {
        let claims = github_actions_claims(&self.state, request);
        self.state.sign(&claims)
    }
}

/// Claims shaped like a GitHub Actions ID token, for a tag push by default.
fn github_actions_claims(state: &State, request: &IdTokenRequest) -> Value {
    let non_empty = |value: &Option<String>, default: &str| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
            .to_owned()
    };
    let repository = non_empty(&request.repository, "octo-org/widget");
    let (owner, _) = repository
        .split_once('/')
        .unwrap_or((repository.as_str(), ""));
    let (owner, owner_id) = state.account(owner);
    let actor = non_empty(&request.actor, "octocat");
    let (actor, actor_id) = state.account(&actor);
    let workflow = non_empty(&request.workflow, "release.yml");
    let git_ref = non_empty(&request.git_ref, "refs/tags/v1.0.0");
    let sha = non_empty(&request.sha, &random_hex(20));
    let event_name = non_empty(&request.event_name, "push");
    let workflow_ref = format!("{repository}/.github/workflows/{workflow}@{git_ref}");
    let run_id = request
        .run_id
        .unwrap_or_else(|| 1_000_000 + i64::from(rand::random::<u32>() % 9_000_000));
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "jti": random_hex(16),
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "aud": request.audience,
        "ref": git_ref,
        "ref_type": if git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
        "sha": sha,
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": owner_id.to_string(),
        "repository_id": derived_id(&repository).to_string(),
        "repository_visibility": "public",
        "actor": actor,
        "actor_id": actor_id.to_string(),
        "workflow": workflow.trim_end_matches(".yml").trim_end_matches(".yaml"),
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": sha,
        "event_name": event_name,
        "run_id": run_id.to_string(),
        "run_number": "1",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "iss": state.issuer(),
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_SECONDS,
    });
    if let Some(environment) = request
        .environment
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        claims["environment"] = json!(environment);
    }
    claims
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/login/oauth/authorize", web::get().to(authorize_page))
        .route("/login/oauth/authorize", web::post().to(authorize))
        .route("/login/oauth/access_token", web::post().to(access_token))
        .route("/user", web::get().to(user))
        .route("/user/emails", web::get().to(user_emails))
        .route("/users/{login}", web::get().to(account))
        .route(
            "/_services/token/.well-known/openid-configuration",
            web::get().to(discovery),
        )
        .route("/_services/token/.well-known/jwks", web::get().to(jwks))
        .route("/_dev/id-token", web::get().to(id_token_page))
        .route("/_dev/id-token", web::post().to(id_token_form))
        .route("/_dev/id-token.json", web::post().to(id_token_json))
        .route(
            "/{owner}/{repo}/actions/runs/{run}/attempts/{attempt}",
            web::get().to(run_page),
        );
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({ "error": error, "error_description": description }))
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Fake GitHub</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}label{display:block;font-weight:600;margin-top:.8rem}input{font:inherit;padding:.3rem;width:100%}button{font:inherit;margin-top:1rem;padding:.4rem 1rem}pre{white-space:pre-wrap;word-break:break-all;background:#f4f4f4;padding:.6rem}.note{background:#fff8c5;padding:.5rem .8rem;border:1px solid #d4a72c}</style></head><body>
<p class="note">Fake GitHub for Wharf development: no passwords, nothing here is real.</p>
{{ body|safe }}
</body></html>"#
)]
struct FakePage {
    body: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Sign in to {{ client_id }}</h1>
<p>Pick any GitHub login: the fake signs you in as that user (and creates it if needed).</p>
<form method="post" action="/login/oauth/authorize">
<input type="hidden" name="client_id" value="{{ client_id }}">
<input type="hidden" name="redirect_uri" value="{{ redirect_uri }}">
<input type="hidden" name="state" value="{{ state }}">
<input type="hidden" name="code_challenge" value="{{ code_challenge }}">
<label for="login">GitHub login</label>
<input id="login" name="login" value="octocat" required>
<button type="submit" id="authorize">Authorize</button>
</form>"#
)]
struct AuthorizeForm {
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
}

fn page(body: impl Template) -> HttpResponse {
    match body.render().and_then(|body| FakePage { body }.render()) {
        Ok(page) => html(page),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Fake GitHub</h1>
<ul>
<li>OAuth: <code>{{ base }}/login/oauth/authorize</code> (client id <code>{{ client_id }}</code>)</li>
<li>REST API: <code>{{ base }}/user</code>, <code>{{ base }}/users/LOGIN</code></li>
<li>GitHub Actions OIDC issuer: <code>{{ issuer }}</code></li>
<li><a href="/_dev/id-token">Mint a GitHub Actions ID token</a></li>
</ul>"#
)]
struct IndexPage {
    base: String,
    client_id: String,
    issuer: String,
}

async fn index(state: web::Data<State>) -> HttpResponse {
    page(IndexPage {
        base: state.base_url.clone(),
        client_id: state.client_id.clone(),
        issuer: state.issuer(),
    })
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// Only loopback redirect URIs: the fake serves local trials and tests.
fn loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && crate::config::is_loopback(&u))
}

async fn authorize_page(
    state: web::Data<State>,
    query: web::Query<AuthorizeQuery>,
) -> HttpResponse {
    let query = query.into_inner();
    if query.client_id != state.client_id {
        return oauth_error(400, "invalid_client", "unknown client_id");
    }
    let Some(redirect_uri) = query.redirect_uri.filter(|u| loopback_redirect(u)) else {
        return oauth_error(
            400,
            "invalid_request",
            "redirect_uri must be a loopback URL",
        );
    };
    if query.code_challenge_method.as_deref() != Some("S256") || query.code_challenge.is_none() {
        return oauth_error(400, "invalid_request", "PKCE with S256 is required");
    }
    page(AuthorizeForm {
        client_id: query.client_id,
        redirect_uri,
        state: query.state.unwrap_or_default(),
        code_challenge: query.code_challenge.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct AuthorizeBody {
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
    login: String,
}

async fn authorize(state: web::Data<State>, form: web::Form<AuthorizeBody>) -> HttpResponse {
    let form = form.into_inner();
    let login = form.login.trim();
    if form.client_id != state.client_id || !loopback_redirect(&form.redirect_uri) {
        return oauth_error(400, "invalid_request", "bad client or redirect_uri");
    }
    if !crate::models::user::valid_login(login) {
        return oauth_error(
            400,
            "invalid_request",
            "a GitHub login has letters, digits and single hyphens",
        );
    }
    let (login, _) = state.account(login);
    let code = random_hex(16);
    lock(&state.codes).insert(
        code.clone(),
        PendingCode {
            login,
            redirect_uri: form.redirect_uri.clone(),
            code_challenge: form.code_challenge,
        },
    );
    let mut target = match url::Url::parse(&form.redirect_uri) {
        Ok(url) => url,
        Err(_) => return oauth_error(400, "invalid_request", "bad redirect_uri"),
    };
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &form.state);
    HttpResponse::Found()
        .insert_header((header::LOCATION, target.to_string()))
        .finish()
}

#[derive(Deserialize)]
struct TokenBody {
    code: String,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Client credentials from HTTP Basic auth (what the `oauth2` crate sends) or the form.
fn client_credentials(req: &HttpRequest, body: &TokenBody) -> Option<(String, String)> {
    if let Some(basic) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((unescape(id)?, unescape(secret)?));
    }
    Some((body.client_id.clone()?, body.client_secret.clone()?))
}

async fn access_token(
    state: web::Data<State>,
    req: HttpRequest,
    form: web::Form<TokenBody>,
) -> HttpResponse {
    let form = form.into_inner();
    match client_credentials(&req, &form) {
        Some((id, secret)) if id == state.client_id && secret == state.client_secret => {}
        _ => return oauth_error(401, "invalid_client", "bad client credentials"),
    }
    let Some(pending) = lock(&state.codes).remove(&form.code) else {
        return oauth_error(400, "bad_verification_code", "unknown or used code");
    };
    if form.redirect_uri.as_deref() != Some(pending.redirect_uri.as_str()) {
        return oauth_error(400, "redirect_uri_mismatch", "redirect_uri differs");
    }
    let verifier = form.code_verifier.unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != pending.code_challenge {
        return oauth_error(400, "invalid_grant", "the PKCE verifier does not match");
    }
    let token = format!("gho_fake{}", random_hex(16));
    lock(&state.access_tokens).insert(token.clone(), pending.login);
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "token_type": "bearer",
        "scope": "read:user,user:email",
    }))
}

fn bearer_login(state: &State, req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))?;
    lock(&state.access_tokens).get(token).cloned()
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" }))
}

async fn user(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let Some(login) = bearer_login(&state, &req) else {
        return unauthorized();
    };
    let (login, id) = state.account(&login);
    HttpResponse::Ok().json(json!({
        "login": login,
        "id": id,
        "name": format!("{login} (fake)"),
        "avatar_url": null,
        "email": null,
        "type": "User",
    }))
}

async fn user_emails(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let Some(login) = bearer_login(&state, &req) else {
        return unauthorized();
    };
    HttpResponse::Ok().json(json!([
        { "email": format!("{}@users.noreply.example", login.to_lowercase()), "primary": true, "verified": true }
    ]))
}

async fn account(state: web::Data<State>, path: web::Path<String>) -> HttpResponse {
    let login = path.into_inner();
    if !crate::models::user::valid_login(&login) {
        return HttpResponse::NotFound().json(json!({ "message": "Not Found" }));
    }
    let (login, id) = state.account(&login);
    HttpResponse::Ok().json(json!({ "login": login, "id": id, "type": "User" }))
}

async fn discovery(state: web::Data<State>) -> HttpResponse {
    let issuer = state.issuer();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks"),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "repository", "workflow_ref", "actor"],
    }))
}

async fn jwks(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "keys": [state.jwk] }))
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Mint a GitHub Actions ID token</h1>
<p>The token is signed by this fake's issuer <code>{{ issuer }}</code>; exchange it at the registry's <code>POST /api/v1/trusted_publishing/tokens</code>.</p>
<form method="post" action="/_dev/id-token">
<label for="audience">Audience (the registry's host and port)</label><input id="audience" name="audience" value="{{ audience }}" required>
<label for="repository">Repository (owner/name)</label><input id="repository" name="repository" value="{{ repository }}" required>
<label for="workflow">Workflow file name</label><input id="workflow" name="workflow" value="{{ workflow }}" required>
<label for="actor">Actor</label><input id="actor" name="actor" value="{{ actor }}" required>
<label for="environment">Environment (optional)</label><input id="environment" name="environment" value="{{ environment }}">
<button type="submit" id="mint">Mint ID token</button>
</form>
{% if !token.is_empty() %}
<h2>ID token</h2>
<pre id="id-token">{{ token }}</pre>
<h2>Exchange it</h2>
<pre>curl -s -X POST -H 'Content-Type: application/json' \
  -d '{"jwt":"{{ token }}"}' \
  {{ registry }}/api/v1/trusted_publishing/tokens</pre>
{% endif %}"#
)]
struct IdTokenPage {
    issuer: String,
    audience: String,
    repository: String,
    workflow: String,
    actor: String,
    environment: String,
    token: String,
    registry: String,
}

#[derive(Deserialize, Default)]
struct IdTokenQuery {
    audience: Option<String>,
}

async fn id_token_page(state: web::Data<State>, query: web::Query<IdTokenQuery>) -> HttpResponse {
    let audience = query.into_inner().audience.unwrap_or_default();
    page(IdTokenPage {
        issuer: state.issuer(),
        registry: format!("http://{audience}"),
        audience,
        repository: "octo-org/widget".to_owned(),
        workflow: "release.yml".to_owned(),
        actor: "octocat".to_owned(),
        environment: String::new(),
        token: String::new(),
    })
}

async fn id_token_form(state: web::Data<State>, form: web::Form<IdTokenRequest>) -> HttpResponse {
    let request = form.into_inner();
    let token = match state.sign(&github_actions_claims(&state, &request)) {
        Ok(token) => token,
        Err(e) => return HttpResponse::InternalServerError().body(e.to_string()),
    };
    page(IdTokenPage {
        issuer: state.issuer(),
        registry: format!("http://{}", request.audience),
        audience: request.audience,
        repository: request.repository.unwrap_or_default(),
        workflow: request.workflow.unwrap_or_default(),
        actor: request.actor.unwrap_or_default(),
        environment: request.environment.unwrap_or_default(),
        token,
    })
}

/// `POST /_dev/id-token.json` with an [`IdTokenRequest`] → `{"value": "<jwt>"}` (the shape of
/// GitHub's ID-token request endpoint).
async fn id_token_json(state: web::Data<State>, body: web::Json<IdTokenRequest>) -> HttpResponse {
    match state.sign(&github_actions_claims(&state, &body)) {
        Ok(token) => HttpResponse::Ok().json(json!({ "value": token })),
        Err(e) => HttpResponse::InternalServerError().json(json!({ "message": e.to_string() })),
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Workflow run {{ run }} (attempt {{ attempt }})</h1>
<p>Repository <strong>{{ owner }}/{{ repo }}</strong>. This is the fake GitHub's stand-in for a GitHub Actions run page.</p>"#
)]
struct RunPage {
    owner: String,
    repo: String,
    run: String,
    attempt: String,
}

async fn run_page(path: web::Path<(String, String, String, String)>) -> HttpResponse {
    let (owner, repo, run, attempt) = path.into_inner();
    page(RunPage {
        owner,
        repo,
        run,
        attempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_refuses_to_listen_beyond_loopback() {
        let options = FakeGitHubOptions {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            ..FakeGitHubOptions::default()
        };
        assert!(FakeGitHub::start(options).is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_case_blind() {
        assert_eq!(derived_id("Octo-Org"), derived_id("octo-org"));
        assert_ne!(derived_id("octo-org"), derived_id("octocat"));
        assert!(derived_id("x") >= 10_000_000);
    }
}
