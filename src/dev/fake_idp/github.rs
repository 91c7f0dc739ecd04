//! GitHub: OAuth login, the REST API, and GitHub Actions (its OIDC issuer, ID-token request
//! endpoint and claims), shaped like a GitHub Enterprise Server at the fake's base URL.
//!
//! - `GET /login/oauth/authorize` shows a form to pick any login (no password);
//!   `POST /login/oauth/access_token` checks the client credentials (HTTP Basic, as the `oauth2`
//!   crate sends them, or form fields), the code, the redirect URI and the PKCE verifier (S256),
//!   and answers a bearer token;
//! - REST API under `/api/v3` (as on GitHub Enterprise Server): `GET /user` and
//!   `GET /user/emails` with that token, `GET /users/{login}` (404 for an account that does not
//!   exist: see [`AccountPolicy`](super::AccountPolicy));
//! - GitHub Actions' issuer is `{base}/_services/token`, GitHub Enterprise Server's shape, so
//!   run links (`{base}/{owner}/{repo}/actions/runs/{id}/attempts/{n}`) lead back to the fake,
//!   which answers them with a stand-in page;
//! - the ID-token request endpoint works as `ACTIONS_ID_TOKEN_REQUEST_URL` does in a job:
//!   `GET {url}&audience=…` with `Authorization: Bearer {ACTIONS_ID_TOKEN_REQUEST_TOKEN}`
//!   answers `{"value": "<jwt>"}`; without `audience`, the token's `aud` is the owner's URL, as
//!   on GitHub.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::claims::{
    LIFETIME_SECONDS, SHA, given, integer_or, merge, now, or_default, random_hex, random_uuid,
    stable_id, string_or_integer,
};
use super::keys::lock;
use super::pages::{html_page, oauth_error};
use super::{Provider, State};

/// The OAuth client the fake accepts unless told otherwise.
pub const CLIENT_ID: &str = "wharf-dev-client";
pub const CLIENT_SECRET: &str = "wharf-dev-secret-not-a-real-secret";
/// Where the REST API lives under the base URL (`WHARF_GITHUB_API_URL`).
pub const API_PATH: &str = "/api/v3";
/// Where the ID-token request endpoint lives under the base URL.
pub const ID_TOKEN_REQUEST_PATH: &str = "/_services/pipelines/_apis/idtoken";

/// Defaults of [`GitHubRun`], and accounts every fake starts with.
pub const GITHUB_OWNER: &str = "octo-org";
pub const GITHUB_OWNER_ID: i64 = 65;
pub const GITHUB_REPO: &str = "widget";
pub const GITHUB_REPOSITORY_ID: i64 = 74;
pub const GITHUB_WORKFLOW: &str = "release.yml";
pub const GITHUB_ACTOR: &str = "octocat";
pub const GITHUB_ACTOR_ID: i64 = 583_231;
pub const GITHUB_REF: &str = "refs/tags/v1.0.0";
pub const GITHUB_RUN_ID: i64 = 4_242_424_242;
pub const GITHUB_RUN_NUMBER: i64 = 7;

/// A GitHub Actions run to mint an ID token for. Missing or blank fields take the defaults
/// (`octo-org/widget`'s `release.yml`, run by `octocat` on a `push` of tag `v1.0.0`). Accepted
/// as a form and as JSON (where `run_id` may also be a number).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GitHubRun {
    /// `owner/name`.
    pub repository: Option<String>,
    /// The workflow's file name in `.github/workflows/`.
    pub workflow: Option<String>,
    pub actor: Option<String>,
    pub environment: Option<String>,
    pub event_name: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(deserialize_with = "string_or_integer")]
    pub run_id: Option<String>,
    #[serde(deserialize_with = "string_or_integer")]
    pub run_attempt: Option<String>,
    pub sha: Option<String>,
}

impl GitHubRun {
    /// The run, with defaults filled in; an error naming the field that is not valid.
    pub fn resolve(&self) -> Result<Run, String> {
        let defaults = Run::default();
        let repository = or_default(&self.repository, &defaults.repository);
        if !repository.split_once('/').is_some_and(|(owner, name)| {
            !owner.is_empty() && !name.is_empty() && !name.contains('/')
        }) {
            return Err(format!(
                "`repository` must be `owner/name`, not `{repository}`"
            ));
        }
        Ok(Run {
            repository,
            workflow: or_default(&self.workflow, &defaults.workflow),
            actor: or_default(&self.actor, &defaults.actor),
            environment: given(&self.environment),
            event_name: or_default(&self.event_name, &defaults.event_name),
            git_ref: or_default(&self.git_ref, &defaults.git_ref),
            run_id: integer_or(&self.run_id, defaults.run_id, "run_id")?,
            run_attempt: integer_or(&self.run_attempt, defaults.run_attempt, "run_attempt")?,
            sha: or_default(&self.sha, &defaults.sha),
        })
    }
}

/// A resolved [`GitHubRun`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// `owner/name`.
    pub repository: String,
    pub workflow: String,
    pub actor: String,
    pub environment: Option<String>,
    pub event_name: String,
    pub git_ref: String,
    pub run_id: i64,
    pub run_attempt: i64,
    pub sha: String,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            repository: format!("{GITHUB_OWNER}/{GITHUB_REPO}"),
            workflow: GITHUB_WORKFLOW.to_owned(),
            actor: GITHUB_ACTOR.to_owned(),
            environment: None,
            event_name: "push".to_owned(),
            git_ref: GITHUB_REF.to_owned(),
            run_id: GITHUB_RUN_ID,
            run_attempt: 1,
            sha: SHA.to_owned(),
        }
    }
}

impl Run {
    /// The claims of a GitHub Actions ID token for this run, with a fresh `jti` and `iat`/`nbf`
    /// now, `exp` in 5 minutes. Owner and actor IDs are those of the fake's accounts.
    pub(crate) fn claims(&self, state: &State, audience: &str) -> Value {
        let repository = &self.repository;
        let owner = repository
            .split_once('/')
            .map_or(repository.as_str(), |(owner, _)| owner);
        let repository_id =
            if repository.eq_ignore_ascii_case(&format!("{GITHUB_OWNER}/{GITHUB_REPO}")) {
                GITHUB_REPOSITORY_ID
            } else {
                stable_id("github-repository", repository)
            };
        let git_ref = &self.git_ref;
        let workflow_ref = format!("{repository}/.github/workflows/{}@{git_ref}", self.workflow);
        let now = now();
        let mut claims = json!({
            "jti": random_uuid(),
            "sub": format!("repo:{repository}:ref:{git_ref}"),
            "aud": audience,
            "ref": git_ref,
            "sha": self.sha,
            "repository": repository,
            "repository_owner": owner,
            "repository_owner_id": state.accounts.id_in_claims(owner).to_string(),
            "repository_visibility": "public",
            "repository_id": repository_id.to_string(),
            "actor_id": state.accounts.id_in_claims(&self.actor).to_string(),
            "actor": self.actor,
            "workflow": display_name(&self.workflow),
            "head_ref": "",
            "base_ref": "",
            "event_name": self.event_name,
            "ref_protected": "false",
            "ref_type": if git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
            "workflow_ref": workflow_ref,
            "workflow_sha": self.sha,
            "job_workflow_ref": workflow_ref,
            "job_workflow_sha": self.sha,
            "run_id": self.run_id.to_string(),
            "run_number": GITHUB_RUN_NUMBER.to_string(),
            "run_attempt": self.run_attempt.to_string(),
            "runner_environment": "github-hosted",
            "iss": state.issuer(Provider::GitHub).url(),
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECONDS,
        });
        if let Some(environment) = &self.environment {
            claims["environment"] = json!(environment);
        }
        claims
    }
}

/// A workflow's display name from its file name: `release.yml` → `Release`.
fn display_name(workflow: &str) -> String {
    let stem = workflow.trim_end_matches(".yml").trim_end_matches(".yaml");
    let mut chars = stem.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The default run's claims merged with `overrides` (a `null` removes a claim).
pub(crate) fn default_claims(state: &State, audience: &str, overrides: Value) -> Value {
    merge(Run::default().claims(state, audience), overrides)
}

/// OAuth codes, access tokens and the ID-token request token of one fake.
pub(crate) struct GitHubState {
    pub client_id: String,
    pub client_secret: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub request_token: String,
    codes: Mutex<HashMap<String, PendingCode>>,
    /// Access token → lowercased login.
    access_tokens: Mutex<HashMap<String, String>>,
    /// Access token → the scopes granted (space-separated, as requested).
    token_scopes: Mutex<HashMap<String, String>>,
    /// Lowercased organisation → lowercased login → membership state (`active`, `pending`).
    org_members: Mutex<HashMap<String, HashMap<String, String>>>,
}

impl GitHubState {
    pub(crate) fn new(client_id: String, client_secret: String) -> GitHubState {
        GitHubState {
            client_id,
            client_secret,
            request_token: format!("fake-request-token-{}", random_hex(16)),
            codes: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            token_scopes: Mutex::new(HashMap::new()),
            org_members: Mutex::new(HashMap::new()),
        }
    }

    /// `login`'s membership of `org` from now on: `Some("active")`, `Some("pending")`, or none.
    pub(crate) fn set_membership(&self, org: &str, login: &str, membership: Option<&str>) {
        let mut orgs = lock(&self.org_members);
        let members = orgs.entry(org.to_ascii_lowercase()).or_default();
        match membership {
            Some(state) => members.insert(login.to_ascii_lowercase(), state.to_owned()),
            None => members.remove(&login.to_ascii_lowercase()),
        };
    }
}

struct PendingCode {
    login: String,
    scope: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login/oauth/authorize", web::get().to(authorize_page))
        .route("/login/oauth/authorize", web::post().to(authorize))
        .route("/login/oauth/access_token", web::post().to(access_token))
        .route(&format!("{API_PATH}/user"), web::get().to(user))
        .route(
            &format!("{API_PATH}/user/emails"),
            web::get().to(user_emails),
        )
        .route(
            &format!("{API_PATH}/users/{{login}}"),
            web::get().to(account),
        )
        .route(
            &format!("{API_PATH}/user/memberships/orgs/{{org}}"),
            web::get().to(org_membership),
        )
        .route(ID_TOKEN_REQUEST_PATH, web::get().to(id_token_request))
        .route(
            "/{owner}/{repo}/actions/runs/{run}/attempts/{attempt}",
            web::get().to(run_page),
        );
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Sign in to {{ client_id }}</h1>
<p>Pick any GitHub login: the fake signs you in as that user (and signs it up if needed).</p>
<form method="post" action="/login/oauth/authorize">
<input type="hidden" name="client_id" value="{{ client_id }}">
<input type="hidden" name="redirect_uri" value="{{ redirect_uri }}">
<input type="hidden" name="state" value="{{ state }}">
<input type="hidden" name="code_challenge" value="{{ code_challenge }}">
<input type="hidden" name="scope" value="{{ scope }}">
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
    scope: String,
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
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
    if query.client_id != state.github.client_id {
        return oauth_error(400, "invalid_client", "unknown client_id");
    }
    let Some(redirect_uri) = query.redirect_uri.filter(|u| loopback_redirect(u)) else {
        return oauth_error(
            400,
            "invalid_request",
            "redirect_uri must be a loopback URL",
        );
    };
    let Some(code_challenge) = query
        .code_challenge
        .filter(|_| query.code_challenge_method.as_deref() == Some("S256"))
    else {
        return oauth_error(400, "invalid_request", "PKCE with S256 is required");
    };
    html_page(&AuthorizeForm {
        client_id: query.client_id,
        redirect_uri,
        state: query.state.unwrap_or_default(),
        code_challenge,
        scope: query.scope.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct AuthorizeBody {
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
    login: String,
    #[serde(default)]
    scope: String,
}

async fn authorize(state: web::Data<State>, form: web::Form<AuthorizeBody>) -> HttpResponse {
    let form = form.into_inner();
    let login = form.login.trim();
    if form.client_id != state.github.client_id {
        return oauth_error(400, "invalid_client", "unknown client_id");
    }
    let Some(mut target) = url::Url::parse(&form.redirect_uri)
        .ok()
        .filter(|_| loopback_redirect(&form.redirect_uri))
    else {
        return oauth_error(
            400,
            "invalid_request",
            "redirect_uri must be a loopback URL",
        );
    };
    if !crate::models::user::valid_login(login) {
        return oauth_error(
            400,
            "invalid_request",
            "a GitHub login has letters, digits and single hyphens",
        );
    }
    let account = state.accounts.sign_in(login);
    let code = random_hex(16);
    lock(&state.github.codes).insert(
        code.clone(),
        PendingCode {
            login: account.login,
            scope: form.scope,
            client_id: form.client_id,
            redirect_uri: form.redirect_uri,
            code_challenge: form.code_challenge,
        },
    );
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

/// The S256 PKCE challenge of `verifier`: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn access_token(
    state: web::Data<State>,
    req: HttpRequest,
    form: web::Form<TokenBody>,
) -> HttpResponse {
    let form = form.into_inner();
    let github = &state.github;
    let client_id = match client_credentials(&req, &form) {
        Some((id, secret)) if id == github.client_id && secret == github.client_secret => id,
        _ => return oauth_error(401, "invalid_client", "bad client credentials"),
    };
    // A code is used once, whatever the outcome.
    let Some(pending) = lock(&github.codes).remove(&form.code) else {
        return oauth_error(400, "bad_verification_code", "unknown or used code");
    };
    if pending.client_id != client_id {
        return oauth_error(400, "bad_verification_code", "the code is another client's");
    }
    if form.redirect_uri.as_deref() != Some(pending.redirect_uri.as_str()) {
        return oauth_error(400, "redirect_uri_mismatch", "redirect_uri differs");
    }
    let verifier = form.code_verifier.unwrap_or_default();
    if pkce_challenge(&verifier) != pending.code_challenge {
        return oauth_error(400, "invalid_grant", "the PKCE verifier does not match");
    }
    let token = format!("gho_fake{}", random_hex(16));
    lock(&github.access_tokens).insert(token.clone(), pending.login.to_ascii_lowercase());
    let scopes: Vec<&str> = pending.scope.split_whitespace().collect();
    lock(&github.token_scopes).insert(token.clone(), scopes.join(" "));
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "token_type": "bearer",
        "scope": scopes.join(","),
    }))
}

/// The account whose access token the request carries.
fn bearer_account(state: &State, req: &HttpRequest) -> Option<super::Account> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))?;
    let login = lock(&state.github.access_tokens).get(token).cloned()?;
    state.accounts.find(&login)
}

fn bad_credentials() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" }))
}

fn unavailable() -> HttpResponse {
    HttpResponse::InternalServerError().json(json!({ "message": "Server Error" }))
}

async fn user(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    if state.issuer(Provider::GitHub).is_down() {
        return unavailable();
    }
    let Some(account) = bearer_account(&state, &req) else {
        return bad_credentials();
    };
    HttpResponse::Ok().json(json!({
        "login": account.login,
        "id": account.id,
        "name": format!("{} (fake)", account.login),
        "avatar_url": null,
        "email": null,
        "type": "User",
    }))
}

async fn user_emails(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    if state.issuer(Provider::GitHub).is_down() {
        return unavailable();
    }
    let Some(account) = bearer_account(&state, &req) else {
        return bad_credentials();
    };
    HttpResponse::Ok().json(json!([{
        "email": format!("{}@users.noreply.example", account.login.to_ascii_lowercase()),
        "primary": true,
        "verified": true,
        "visibility": "private",
    }]))
}

/// `GET /user/memberships/orgs/{org}`: the token's user's membership of `org`, as GitHub answers
/// it: 403 without the `read:org` scope, 404 for a non-member, else the membership and its
/// `state`.
async fn org_membership(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    if state.issuer(Provider::GitHub).is_down() {
        return unavailable();
    }
    let Some(account) = bearer_account(&state, &req) else {
        return bad_credentials();
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .unwrap_or_default();
    let may_read_orgs = lock(&state.github.token_scopes)
        .get(token)
        .is_some_and(|scopes| {
            scopes
                .split(' ')
                .any(|s| s == "read:org" || s == "admin:org")
        });
    if !may_read_orgs {
        return HttpResponse::Forbidden().json(json!({
            "message": "You need at least read:org scope or user scope to list your organization memberships.",
        }));
    }
    let org = path.into_inner();
    let membership = lock(&state.github.org_members)
        .get(&org.to_ascii_lowercase())
        .and_then(|members| members.get(&account.login.to_ascii_lowercase()).cloned());
    match membership {
        Some(membership) => HttpResponse::Ok().json(json!({
            "state": membership,
            "role": "member",
            "organization": { "login": org },
            "user": { "login": account.login, "id": account.id },
        })),
        None => HttpResponse::NotFound().json(json!({ "message": "Not Found" })),
    }
}

/// `GET /users/{login}`: the account, or 404 as on GitHub.
async fn account(state: web::Data<State>, path: web::Path<String>) -> HttpResponse {
    if state.issuer(Provider::GitHub).is_down() {
        return unavailable();
    }
    match state.accounts.find(&path.into_inner()) {
        Some(account) => HttpResponse::Ok().json(json!({
            "login": account.login,
            "id": account.id,
            "type": "User",
        })),
        None => HttpResponse::NotFound().json(json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/users/users#get-a-user",
        })),
    }
}

/// `GET {ACTIONS_ID_TOKEN_REQUEST_URL}&audience=…` with the request token as a bearer token.
async fn id_token_request(
    state: web::Data<State>,
    request: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let expected = format!("Bearer {}", state.github.request_token);
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == expected);
    if !authorized {
        return HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" }));
    }
    let issuer = state.issuer(Provider::GitHub);
    let audience = query
        .get("audience")
        .cloned()
        .unwrap_or_else(|| format!("{}/{GITHUB_OWNER}", state.base_url));
    let claims = default_claims(&state, &audience, issuer.token_overrides());
    match issuer.try_sign(&claims) {
        Ok(jwt) => {
            issuer.record_token_request();
            HttpResponse::Ok().json(json!({ "value": jwt }))
        }
        Err(e) => HttpResponse::InternalServerError().json(json!({ "message": e.to_string() })),
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Workflow run {{ run }} (attempt {{ attempt }})</h1>
<p>Repository <strong>{{ owner }}/{{ repo }}</strong>. This is the fake's stand-in for a GitHub Actions run page.</p>"#
)]
struct RunPage {
    owner: String,
    repo: String,
    run: String,
    attempt: String,
}

async fn run_page(path: web::Path<(String, String, String, String)>) -> HttpResponse {
    let (owner, repo, run, attempt) = path.into_inner();
    html_page(&RunPage {
        owner,
        repo,
        run,
        attempt,
    })
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::redirect::Policy;

    use super::super::testing::verify;
    use super::super::{FakeIdp, FakeIdpOptions, Provider};
    use super::*;

    const REDIRECT: &str = "http://127.0.0.1:9/login/github/callback";

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap_or_default()
    }

    /// Signs `login` in through the authorize form with `challenge`; answers the code.
    async fn authorize(idp: &FakeIdp, login: &str, challenge: &str) -> anyhow::Result<String> {
        let answer = client()
            .post(format!("{}/login/oauth/authorize", idp.base_url()))
            .form(&[
                ("client_id", idp.client_id()),
                ("redirect_uri", REDIRECT),
                ("state", "xyz"),
                ("code_challenge", challenge),
                ("login", login),
            ])
            .send()
            .await?;
        anyhow::ensure!(answer.status() == StatusCode::FOUND, "{}", answer.status());
        let location = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let location = url::Url::parse(location)?;
        assert!(location.as_str().starts_with(REDIRECT));
        let pairs: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs.get("state").map(String::as_str), Some("xyz"));
        pairs
            .get("code")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no code"))
    }

    async fn exchange(
        idp: &FakeIdp,
        code: &str,
        secret: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = client()
            .post(format!("{}/login/oauth/access_token", idp.base_url()))
            .basic_auth(idp.client_id(), Some(secret))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    #[tokio::test]
    async fn the_token_endpoint_checks_client_code_redirect_uri_and_pkce_verifier()
    -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitHub);
        let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
        let challenge = pkce_challenge(verifier);
        let secret = idp.client_secret().to_owned();

        let code = authorize(&idp, "alice", &challenge).await?;
        let (status, body) = exchange(&idp, &code, &secret, REDIRECT, "another-verifier").await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
        );
        let (status, body) = exchange(&idp, &code, &secret, REDIRECT, verifier).await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("bad_verification_code")),
            "a code is used once, even by a failed attempt"
        );

        let code = authorize(&idp, "alice", &challenge).await?;
        let (status, body) = exchange(
            &idp,
            &code,
            &secret,
            "http://127.0.0.1:9/elsewhere",
            verifier,
        )
        .await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("redirect_uri_mismatch"))
        );

        let code = authorize(&idp, "alice", &challenge).await?;
        let (status, body) = exchange(&idp, &code, "not-the-secret", REDIRECT, verifier).await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::UNAUTHORIZED, &json!("invalid_client"))
        );

        let code = authorize(&idp, "Alice", &challenge).await?;
        let (status, body) = exchange(&idp, &code, &secret, REDIRECT, verifier).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["access_token"].as_str().unwrap_or_default();
        let user: Value = client()
            .get(format!("{}/user", idp.api_url()))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(
            user["login"], "alice",
            "logins ignore case; the account keeps its spelling"
        );
        assert_eq!(user["id"], json!(idp.account_id("alice")));
        let emails: Value = client()
            .get(format!("{}/user/emails", idp.api_url()))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(emails[0]["email"], "alice@users.noreply.example");
        let anonymous = client()
            .get(format!("{}/user", idp.api_url()))
            .send()
            .await?;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        Ok(())
    }

    #[tokio::test]
    async fn the_authorize_page_wants_pkce_s256_and_a_loopback_redirect() -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitHub);
        let page = |query: Vec<(&'static str, String)>| {
            let request = client()
                .get(format!("{}/login/oauth/authorize", idp.base_url()))
                .query(&query);
            async move { anyhow::Ok(request.send().await?.status()) }
        };
        let good = vec![
            ("client_id", idp.client_id().to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_challenge", pkce_challenge("v")),
            ("code_challenge_method", "S256".to_owned()),
        ];
        assert_eq!(page(good.clone()).await?, StatusCode::OK);
        let mut plain = good.clone();
        plain[3].1 = "plain".to_owned();
        assert_eq!(page(plain).await?, StatusCode::BAD_REQUEST);
        let mut remote = good.clone();
        remote[1].1 = "https://example.com/callback".to_owned();
        assert_eq!(page(remote).await?, StatusCode::BAD_REQUEST);
        let mut stranger = good;
        stranger[0].1 = "someone-else".to_owned();
        assert_eq!(page(stranger).await?, StatusCode::BAD_REQUEST);
        Ok(())
    }

    #[tokio::test]
    async fn unknown_accounts_are_404_unless_accounts_are_made_on_demand() -> anyhow::Result<()> {
        let listed = FakeIdp::start(Provider::GitHub);
        let on_demand = FakeIdp::start_with(FakeIdpOptions::for_dev(0))?;
        let lookup = |idp: &FakeIdp, login: &str| {
            let request = client().get(format!("{}/users/{login}", idp.api_url()));
            async move {
                let response = request.send().await?;
                anyhow::Ok((response.status(), response.json::<Value>().await?))
            }
        };

        let (status, body) = lookup(&listed, "octo-org").await?;
        assert_eq!(
            (status, &body["id"]),
            (StatusCode::OK, &json!(GITHUB_OWNER_ID))
        );
        let (status, body) = lookup(&listed, "ghost-owner").await?;
        assert_eq!(
            (status, &body["message"]),
            (StatusCode::NOT_FOUND, &json!("Not Found"))
        );
        listed.set_account("ghost-owner", 777);
        assert_eq!(lookup(&listed, "Ghost-Owner").await?.1["id"], 777);
        listed.remove_account("ghost-owner");
        assert_eq!(
            lookup(&listed, "ghost-owner").await?.0,
            StatusCode::NOT_FOUND
        );

        let (status, body) = lookup(&on_demand, "ghost-owner").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], json!(on_demand.account_id("ghost-owner")));
        assert_eq!(
            lookup(&on_demand, "not--valid").await?.0,
            StatusCode::NOT_FOUND
        );

        listed.set_down(true);
        assert_eq!(
            lookup(&listed, "octo-org").await?.0,
            StatusCode::INTERNAL_SERVER_ERROR,
            "GitHub down takes its REST API down too"
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_id_token_request_endpoint_wants_the_request_token_and_mints_for_the_audience()
    -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitHub);
        let url = format!("{}&audience=wharf.test", idp.id_token_request_url());
        assert!(url.contains("?api-version=2.0&audience="));

        let anonymous = client().get(&url).send().await?;
        let wrong = client().get(&url).bearer_auth("guess").send().await?;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(idp.id_token_requests().is_empty());

        idp.set_id_token_overrides(json!({ "environment": "release", "head_ref": null }));
        let answer: Value = client()
            .get(&url)
            .bearer_auth(idp.id_token_request_token())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let claims = verify(idp.issuer(), answer["value"].as_str().unwrap_or_default()).await?;
        assert_eq!(claims["aud"], "wharf.test");
        assert_eq!(claims["repository"], "octo-org/widget");
        assert_eq!(claims["repository_owner_id"], GITHUB_OWNER_ID.to_string());
        assert_eq!(claims["environment"], "release");
        assert!(claims.get("head_ref").is_none());
        assert_eq!(idp.id_token_requests().len(), 1);

        let without_audience: Value = client()
            .get(idp.id_token_request_url())
            .bearer_auth(idp.id_token_request_token())
            .send()
            .await?
            .json()
            .await?;
        let claims = verify(
            idp.issuer(),
            without_audience["value"].as_str().unwrap_or_default(),
        )
        .await?;
        assert_eq!(claims["aud"], format!("{}/octo-org", idp.base_url()));
        Ok(())
    }

    #[test]
    fn a_run_is_resolved_with_defaults_and_bad_fields_are_named() {
        let run = GitHubRun {
            repository: Some(" someone/thing ".to_owned()),
            run_id: Some(String::new()),
            ..GitHubRun::default()
        }
        .resolve();
        assert_eq!(
            run.as_ref().map(|r| (r.repository.as_str(), r.run_id)),
            Ok(("someone/thing", GITHUB_RUN_ID))
        );
        let bad_repository = GitHubRun {
            repository: Some("no-slash".to_owned()),
            ..GitHubRun::default()
        };
        assert!(
            bad_repository
                .resolve()
                .is_err_and(|e| e.contains("`repository`"))
        );
        let bad_run = GitHubRun {
            run_id: Some("12x".to_owned()),
            ..GitHubRun::default()
        };
        assert!(bad_run.resolve().is_err_and(|e| e.contains("`run_id`")));
        assert_eq!(display_name("release.yml"), "Release");
        assert_eq!(display_name("ci/publish.yaml"), "Ci/publish");
    }
}
