//! A fake OIDC identity provider speaking the real protocols, for tests.
//!
//! [`FakeIdp::start`] serves on a random loopback port, on its own thread with its own actix
//! runtime (so it works under `#[tokio::test]` and `#[actix_web::test]` alike):
//!
//! - `GET /.well-known/openid-configuration`: `issuer` is the server's own base URL;
//! - `GET /.well-known/jwks`: the RSA public keys (`kid`, `n`, `e`, `alg: RS256`, `use: sig`);
//! - `GET /_apis/idtoken?audience=…` with `Authorization: Bearer <request token>`: answers
//!   `{"value": "<jwt>"}` like GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`.
//!
//! Tokens are signed RS256 with real 2048-bit keys. Key generation is slow in debug builds, so a
//! few keys are generated once per process and shared; each instance gives them its own `kid`s.
//! Knobs make it misbehave: [`FakeIdp::set_down`], [`FakeIdp::set_broken_jwks`],
//! [`FakeIdp::rotate_key`]; [`FakeIdp::jwks_fetches`] counts key-set downloads.

// A support module: each test uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

/// Which CI platform the fake imitates (shapes the default claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
}

/// Defaults of [`FakeIdp::github_claims`].
pub const GITHUB_OWNER: &str = "octo-org";
pub const GITHUB_OWNER_ID: i64 = 65;
pub const GITHUB_REPO: &str = "widget";
pub const GITHUB_WORKFLOW: &str = "release.yml";
pub const GITHUB_ACTOR: &str = "octocat";
pub const GITHUB_RUN_ID: i64 = 4_242_424_242;

/// Defaults of [`FakeIdp::gitlab_claims`].
pub const GITLAB_NAMESPACE: &str = "acme";
pub const GITLAB_NAMESPACE_ID: i64 = 72;
pub const GITLAB_PROJECT: &str = "widget";
pub const GITLAB_CI_CONFIG: &str = ".gitlab-ci.yml";
pub const GITLAB_USER: &str = "gitlab-user";
pub const GITLAB_JOB_ID: i64 = 302;

pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
pub const LIFETIME_SECONDS: i64 = 300;

const SHARED_KEYS: usize = 3;
static KEYS: [OnceLock<RsaPrivateKey>; SHARED_KEYS] =
    [OnceLock::new(), OnceLock::new(), OnceLock::new()];
static INSTANCES: AtomicUsize = AtomicUsize::new(0);

fn shared_key(index: usize) -> &'static RsaPrivateKey {
    KEYS[index % SHARED_KEYS].get_or_init(|| {
        RsaPrivateKey::new(&mut Rng, 2048).expect("generating an RSA key for the fake IdP")
    })
}

/// `rsa` 0.9 wants a `rand_core` 0.6 RNG; this one draws from `rand` 0.9's thread RNG (a CSPRNG).
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

struct SigningKey {
    kid: String,
    private: &'static RsaPrivateKey,
    encoding: EncodingKey,
}

impl SigningKey {
    fn new(kid: String, private: &'static RsaPrivateKey) -> SigningKey {
        let pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .expect("encoding the fake IdP's key as PEM");
        let encoding =
            EncodingKey::from_rsa_pem(pem.as_bytes()).expect("loading the fake IdP's key");
        SigningKey {
            kid,
            private,
            encoding,
        }
    }

    fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }
}

struct State {
    provider: Provider,
    issuer: String,
    instance: usize,
    /// Published keys; the last one signs.
    keys: Mutex<Vec<SigningKey>>,
    rotations: AtomicUsize,
    down: AtomicBool,
    broken_jwks: AtomicBool,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    request_token: String,
    id_token_overrides: Mutex<Value>,
    /// GitHub REST API accounts (`GET /users/{login}`): lowercased login → numeric id.
    accounts: Mutex<HashMap<String, i64>>,
    /// When each GitHub Actions ID-token request was answered.
    id_token_requests: Mutex<Vec<std::time::SystemTime>>,
}

impl State {
    fn keys(&self) -> MutexGuard<'_, Vec<SigningKey>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current_kid(&self) -> String {
        self.keys()
            .last()
            .map(|key| key.kid.clone())
            .expect("the fake IdP has a key")
    }

    fn mint_for_request(&self, audience: &str) -> String {
        let overrides = self
            .id_token_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.sign(&self.claims(audience, overrides))
    }

    /// Signs `claims` with RS256 and the current `kid`.
    fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({ "alg": "RS256", "typ": "JWT", "kid": self.current_kid() }),
            claims,
        )
    }

    /// Signs with RS256 and the current key, whatever `header` says (for hostile headers).
    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!("{}.{}", segment(header), segment(claims));
        let keys = self.keys();
        let key = keys.last().expect("the fake IdP has a key");
        let signature =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, Algorithm::RS256)
                .expect("signing with the fake IdP's key");
        format!("{signing_input}.{signature}")
    }

    /// Claims shaped like a GitHub Actions ID token for `octo-org/widget`'s `release.yml`, run on
    /// a tag push, with a fresh `jti` and `iat`/`nbf` now, `exp` in 5 minutes. Keys of
    /// `overrides` replace the defaults; a `null` removes the claim.
    fn github_claims(&self, audience: &str, overrides: Value) -> Value {
        let now = chrono::Utc::now().timestamp();
        let repository = format!("{GITHUB_OWNER}/{GITHUB_REPO}");
        let git_ref = "refs/tags/v1.0.0";
        let workflow_ref = format!("{repository}/.github/workflows/{GITHUB_WORKFLOW}@{git_ref}");
        let claims = json!({
            "jti": new_jti(),
            "sub": format!("repo:{repository}:ref:{git_ref}"),
            "aud": audience,
            "ref": git_ref,
            "sha": SHA,
            "repository": repository,
            "repository_owner": GITHUB_OWNER,
            "repository_owner_id": GITHUB_OWNER_ID.to_string(),
            "repository_visibility": "public",
            "repository_id": "74",
            "actor_id": "583231",
            "actor": GITHUB_ACTOR,
            "workflow": "Release",
            "head_ref": "",
            "base_ref": "",
            "event_name": "push",
            "ref_protected": "false",
            "ref_type": "tag",
            "workflow_ref": workflow_ref,
            "workflow_sha": SHA,
            "job_workflow_ref": workflow_ref,
            "job_workflow_sha": SHA,
            "run_id": GITHUB_RUN_ID.to_string(),
            "run_number": "7",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
            "iss": self.issuer.as_str(),
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECONDS,
        });
        merge(claims, overrides)
    }

    /// Claims shaped like a GitLab CI ID token for `acme/widget`'s `.gitlab-ci.yml`, run on a
    /// tag, with a fresh `jti` and `iat`/`nbf` now, `exp` in 5 minutes. Keys of `overrides`
    /// replace the defaults; a `null` removes the claim.
    fn gitlab_claims(&self, audience: &str, overrides: Value) -> Value {
        let now = chrono::Utc::now().timestamp();
        let project_path = format!("{GITLAB_NAMESPACE}/{GITLAB_PROJECT}");
        let claims = json!({
            "namespace_id": GITLAB_NAMESPACE_ID.to_string(),
            "namespace_path": GITLAB_NAMESPACE,
            "project_id": "20",
            "project_path": project_path,
            "user_id": "1",
            "user_login": GITLAB_USER,
            "user_email": "gitlab-user@example.com",
            "user_access_level": "maintainer",
            "pipeline_id": "574",
            "pipeline_source": "push",
            "job_id": GITLAB_JOB_ID.to_string(),
            "ref": "v1.0.0",
            "ref_type": "tag",
            "ref_path": "refs/tags/v1.0.0",
            "ref_protected": "true",
            "runner_id": 1,
            "runner_environment": "gitlab-hosted",
            "sha": SHA,
            "project_visibility": "public",
            "ci_config_ref_uri": self.gitlab_ci_config_ref_uri(&project_path, GITLAB_CI_CONFIG),
            "ci_config_sha": SHA,
            "jti": new_jti(),
            "iss": self.issuer.as_str(),
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECONDS,
            "sub": format!("project_path:{project_path}:ref_type:tag:ref:v1.0.0"),
            "aud": audience,
        });
        merge(claims, overrides)
    }

    /// `ci_config_ref_uri` as GitLab writes it: `host/group/project//path@refs/tags/v1.0.0`.
    fn gitlab_ci_config_ref_uri(&self, project_path: &str, config_path: &str) -> String {
        let host = self.issuer.as_str().trim_start_matches("http://");
        format!("{host}/{project_path}//{config_path}@refs/tags/v1.0.0")
    }

    /// The default claims of this provider's kind.
    fn claims(&self, audience: &str, overrides: Value) -> Value {
        match self.provider {
            Provider::GitHub => self.github_claims(audience, overrides),
            Provider::GitLab => self.gitlab_claims(audience, overrides),
        }
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
    /// Starts a fake provider on `127.0.0.1:0`. Callable from any context, async or not.
    pub fn start(provider: Provider) -> FakeIdp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake IdP");
        let port = listener.local_addr().expect("fake IdP address").port();
        let instance = INSTANCES.fetch_add(1, Ordering::SeqCst);
        let first = SigningKey::new(format!("fake-{instance}-0"), shared_key(instance));
        let state = Arc::new(State {
            provider,
            issuer: format!("http://127.0.0.1:{port}"),
            instance,
            keys: Mutex::new(vec![first]),
            rotations: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            broken_jwks: AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            request_token: format!("fake-request-token-{:032x}", rand::random::<u128>()),
            id_token_overrides: Mutex::new(json!({})),
            accounts: Mutex::new(HashMap::from([(
                GITHUB_OWNER.to_lowercase(),
                GITHUB_OWNER_ID,
            )])),
            id_token_requests: Mutex::new(Vec::new()),
        });

        let (sender, receiver) = std::sync::mpsc::channel();
        let server_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name(format!("fake-idp-{instance}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let data = web::Data::from(server_state);
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .route(
                                "/.well-known/openid-configuration",
                                web::get().to(discovery),
                            )
                            .route("/.well-known/jwks", web::get().to(jwks))
                            .route("/_apis/idtoken", web::get().to(id_token))
                            .route("/users/{login}", web::get().to(github_user))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("serving the fake IdP")
                    .run();
                    sender
                        .send(server.handle())
                        .expect("handing over the fake IdP's handle");
                    server.await.expect("running the fake IdP");
                });
            })
            .expect("spawning the fake IdP's thread");
        let handle = receiver.recv().expect("the fake IdP did not start");
        FakeIdp { state, handle }
    }

    /// The GitHub REST API answers `GET /users/{login}` with this id (a re-created account
    /// gets a new one).
    pub fn set_account(&self, login: &str, id: i64) {
        self.accounts().insert(login.to_lowercase(), id);
    }

    pub fn remove_account(&self, login: &str) {
        self.accounts().remove(&login.to_lowercase());
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        self.state
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The times at which the GitHub Actions ID-token endpoint minted a token.
    pub fn id_token_requests(&self) -> Vec<std::time::SystemTime> {
        self.state
            .id_token_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn provider(&self) -> Provider {
        self.state.provider
    }

    /// `http://127.0.0.1:PORT`, the `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The `kid` that [`FakeIdp::sign`] uses now.
    pub fn current_kid(&self) -> String {
        self.state.current_kid()
    }

    /// The current signing key's public half as PEM (SPKI), e.g. for HMAC key-confusion attacks.
    pub fn public_key_pem(&self) -> String {
        let keys = self.state.keys();
        let key = keys.last().expect("the fake IdP has a key");
        key.private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encoding the public key")
    }

    /// The published key set, as served.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.state.keys().iter().map(SigningKey::jwk).collect::<Vec<_>>() })
    }

    /// Signs `claims` with RS256 and the current `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.state.sign(claims)
    }

    /// Signs with RS256 and the current key, whatever `header` says (for hostile headers).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.state.sign_with_header(header, claims)
    }

    /// Claims shaped like a GitHub Actions ID token for `octo-org/widget`'s `release.yml`, run on
    /// a tag push, with a fresh `jti` and `iat`/`nbf` now, `exp` in 5 minutes. Keys of
    /// `overrides` replace the defaults; a `null` removes the claim.
    pub fn github_claims(&self, audience: &str, overrides: Value) -> Value {
        self.state.github_claims(audience, overrides)
    }

    /// Claims shaped like a GitLab CI ID token for `acme/widget`'s `.gitlab-ci.yml`, run on a
    /// tag, with a fresh `jti` and `iat`/`nbf` now, `exp` in 5 minutes. Keys of `overrides`
    /// replace the defaults; a `null` removes the claim.
    pub fn gitlab_claims(&self, audience: &str, overrides: Value) -> Value {
        self.state.gitlab_claims(audience, overrides)
    }

    /// `ci_config_ref_uri` as GitLab writes it: `host/group/project//path@refs/tags/v1.0.0`.
    pub fn gitlab_ci_config_ref_uri(&self, project_path: &str, config_path: &str) -> String {
        self.state
            .gitlab_ci_config_ref_uri(project_path, config_path)
    }

    /// The default claims of this provider's kind.
    pub fn claims(&self, audience: &str, overrides: Value) -> Value {
        self.state.claims(audience, overrides)
    }

    /// Answer HTTP 500 to discovery and key-set requests.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Serve something that is not a key set at the JWKS URL.
    pub fn set_broken_jwks(&self, broken: bool) {
        self.state.broken_jwks.store(broken, Ordering::SeqCst);
    }

    /// Publishes a new key (the old one stays published, as real providers do) and signs with it
    /// from now on. Returns the new `kid`.
    pub fn rotate_key(&self) -> String {
        let rotation = self.state.rotations.fetch_add(1, Ordering::SeqCst) + 1;
        let kid = format!("fake-{}-{rotation}", self.state.instance);
        let key = SigningKey::new(kid.clone(), shared_key(self.state.instance + rotation));
        self.state.keys().push(key);
        kid
    }

    /// How many times the key set was requested.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was requested.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Like GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`: append `&audience=…`.
    pub fn id_token_request_url(&self) -> String {
        format!("{}/_apis/idtoken?api-version=2.0", self.issuer())
    }

    /// Like GitHub's `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub fn id_token_request_token(&self) -> &str {
        &self.state.request_token
    }

    /// Claims to override in tokens minted by the ID-token request endpoint.
    pub fn set_id_token_overrides(&self, overrides: Value) {
        *self
            .state
            .id_token_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = overrides;
    }
}

/// A token with the given header and claims and no signature (for `alg: none`).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", segment(header), segment(claims))
}

/// base64url of the JSON of `value`, as in a JWT.
pub fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn new_jti() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn merge(claims: Value, overrides: Value) -> Value {
    let Value::Object(mut claims) = claims else {
        return claims;
    };
    if let Value::Object(overrides) = overrides {
        for (key, value) in overrides {
            if value.is_null() {
                claims.remove(&key);
            } else {
                claims.insert(key, value);
            }
        }
    }
    Value::Object(claims)
}

async fn discovery(state: web::Data<State>) -> HttpResponse {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().body("the fake IdP is down");
    }
    HttpResponse::Ok().json(json!({
        "issuer": state.issuer,
        "jwks_uri": format!("{}/.well-known/jwks", state.issuer),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf"],
    }))
}

async fn jwks(state: web::Data<State>) -> HttpResponse {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().body("the fake IdP is down");
    }
    if state.broken_jwks.load(Ordering::SeqCst) {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"keys\": [this is not json");
    }
    let keys: Vec<Value> = state.keys().iter().map(SigningKey::jwk).collect();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

async fn id_token(
    state: web::Data<State>,
    request: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let expected = format!("Bearer {}", state.request_token);
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == expected);
    if !authorized {
        return HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" }));
    }
    let audience = query
        .get("audience")
        .cloned()
        .unwrap_or_else(|| format!("https://github.com/{GITHUB_OWNER}"));
    state
        .id_token_requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(std::time::SystemTime::now());
    HttpResponse::Ok().json(json!({ "value": state.mint_for_request(&audience) }))
}

/// GitHub's `GET /users/{login}`: `{"login", "id"}` or 404.
async fn github_user(state: web::Data<State>, path: web::Path<String>) -> HttpResponse {
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().finish();
    }
    let login = path.into_inner();
    let id = state
        .accounts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&login.to_lowercase())
        .copied();
    match id {
        Some(id) => {
            HttpResponse::Ok().json(json!({ "login": login, "id": id, "type": "Organization" }))
        }
        None => HttpResponse::NotFound().json(json!({ "message": "Not Found" })),
    }
}
