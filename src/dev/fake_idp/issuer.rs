//! One OIDC issuer of the fake: its URL, key set, discovery document and JWKS, and the knobs
//! that make it misbehave (downtime, a broken key set) or report what it was asked.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::keys::{KeySet, Slots, lock};
use super::{Provider, State};

/// A running issuer. [`FakeIdp`](super::FakeIdp) hosts one per [`Provider`].
pub struct Issuer {
    provider: Provider,
    url: String,
    keys: KeySet,
    /// The key-pool slots of the fake's issuers, shared so that rotations pick unused ones.
    slots: Arc<Slots>,
    down: AtomicBool,
    broken_jwks: AtomicBool,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
    /// When the provider's CI endpoint minted a token (GitHub's ID-token request endpoint,
    /// Buildkite's Agent API).
    token_requests: Mutex<Vec<SystemTime>>,
    /// Claims merged into every token that endpoint mints.
    token_overrides: Mutex<Value>,
}

impl Issuer {
    pub(crate) fn new(
        provider: Provider,
        base_url: &str,
        instance: usize,
        slots: Arc<Slots>,
    ) -> anyhow::Result<Issuer> {
        Ok(Issuer {
            provider,
            url: format!("{base_url}{}", provider.issuer_path()),
            keys: KeySet::new(format!("fake-{}-{instance}", provider.slug()), &slots)?,
            slots,
            down: AtomicBool::new(false),
            broken_jwks: AtomicBool::new(false),
            discovery_fetches: AtomicUsize::new(0),
            jwks_fetches: AtomicUsize::new(0),
            token_requests: Mutex::new(Vec::new()),
            token_overrides: Mutex::new(json!({})),
        })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The issuer URL: the `iss` of its tokens and what a registry is configured to trust.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the discovery document says the key set is, at the path the real platform uses.
    pub fn jwks_url(&self) -> String {
        format!("{}{}", self.url, self.provider.jwks_path())
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The `kid` that signs now.
    pub fn current_kid(&self) -> String {
        self.keys.current_kid()
    }

    /// The signing key's public half as PEM (SPKI), e.g. for HMAC key-confusion attacks.
    pub fn public_key_pem(&self) -> String {
        self.keys.public_key_pem()
    }

    /// The published key set, as served.
    pub fn jwks(&self) -> Value {
        self.keys.jwks()
    }

    /// Signs `claims` with RS256 under the current `kid`.
    pub fn try_sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.keys.sign(claims)
    }

    /// [`Issuer::try_sign`] for tests.
    ///
    /// # Panics
    ///
    /// If RSA signing fails, which a valid key does not.
    pub fn sign(&self, claims: &Value) -> String {
        self.try_sign(claims)
            .expect("signing with the fake issuer's RSA key")
    }

    /// Signs with RS256 and the current key, whatever `header` says (for hostile headers).
    ///
    /// # Panics
    ///
    /// If RSA signing fails, which a valid key does not.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.keys
            .sign_with_header(header, claims)
            .expect("signing with the fake issuer's RSA key")
    }

    /// Publishes a new key (the old ones stay published, as real providers do) and signs with
    /// it from now on. Returns the new `kid`.
    pub fn rotate_key(&self) -> anyhow::Result<String> {
        self.keys.rotate(&self.slots)
    }

    /// Answer HTTP 500 to discovery and key-set requests (for GitHub, to its REST API too).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Serve something that is not a key set at the JWKS URL.
    pub fn set_broken_jwks(&self, broken: bool) {
        self.broken_jwks.store(broken, Ordering::SeqCst);
    }

    /// How many times the key set was requested.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was requested.
    pub fn discovery_fetches(&self) -> usize {
        self.discovery_fetches.load(Ordering::SeqCst)
    }

    /// When the provider's CI endpoint minted a token, oldest first.
    pub fn token_requests(&self) -> Vec<SystemTime> {
        lock(&self.token_requests).clone()
    }

    pub(crate) fn record_token_request(&self) {
        lock(&self.token_requests).push(SystemTime::now());
    }

    /// Claims merged into the tokens the provider's CI endpoint mints from now on (a `null`
    /// removes a claim).
    pub fn set_token_overrides(&self, overrides: Value) {
        *lock(&self.token_overrides) = overrides;
    }

    pub(crate) fn token_overrides(&self) -> Value {
        lock(&self.token_overrides).clone()
    }

    /// The OpenID Connect discovery document.
    pub fn discovery_document(&self) -> Value {
        json!({
            "issuer": self.url,
            "jwks_uri": self.jwks_url(),
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
            "claims_supported": self.provider.claims_supported(),
        })
    }
}

/// `GET {issuer}/.well-known/openid-configuration` and the key set, for every issuer.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    for provider in Provider::ALL {
        let discovery_path = format!(
            "{}/.well-known/openid-configuration",
            provider.issuer_path()
        );
        let jwks_path = format!("{}{}", provider.issuer_path(), provider.jwks_path());
        cfg.route(
            &discovery_path,
            web::get().to(move |state: web::Data<State>| discovery(state, provider)),
        )
        .route(
            &jwks_path,
            web::get().to(move |state: web::Data<State>| jwks(state, provider)),
        );
    }
}

async fn discovery(state: web::Data<State>, provider: Provider) -> HttpResponse {
    let issuer = state.issuer(provider);
    issuer.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if issuer.is_down() {
        return HttpResponse::InternalServerError().body("the fake issuer is down");
    }
    HttpResponse::Ok().json(issuer.discovery_document())
}

async fn jwks(state: web::Data<State>, provider: Provider) -> HttpResponse {
    let issuer = state.issuer(provider);
    issuer.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if issuer.is_down() {
        return HttpResponse::InternalServerError().body("the fake issuer is down");
    }
    if issuer.broken_jwks.load(Ordering::SeqCst) {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"keys\": [this is not json");
    }
    HttpResponse::Ok().json(issuer.jwks())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::verify;
    use super::super::{FakeIdp, Provider};

    async fn get(url: &str) -> anyhow::Result<(u16, String)> {
        let response = reqwest::get(url).await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    #[tokio::test]
    async fn each_issuer_serves_discovery_and_its_keys_at_the_platforms_paths() -> anyhow::Result<()>
    {
        let idp = FakeIdp::start(Provider::GitHub);
        let base = idp.base_url().to_owned();
        let expected = [
            (Provider::GitHub, "/_services/token", "/.well-known/jwks"),
            (Provider::GitLab, "/gitlab", "/oauth/discovery/keys"),
            (Provider::Buildkite, "/buildkite", "/.well-known/jwks"),
        ];
        let mut moduli = Vec::new();
        for (provider, path, jwks_path) in expected {
            let issuer = idp.issuer_of(provider);
            assert_eq!(issuer.url(), format!("{base}{path}"));
            let (status, body) = get(&format!(
                "{}/.well-known/openid-configuration",
                issuer.url()
            ))
            .await?;
            assert_eq!(status, 200);
            let discovery: serde_json::Value = serde_json::from_str(&body)?;
            assert_eq!(discovery["issuer"], issuer.url());
            assert_eq!(
                discovery["jwks_uri"],
                format!("{}{jwks_path}", issuer.url())
            );
            let (status, body) = get(&format!("{}{jwks_path}", issuer.url())).await?;
            assert_eq!(status, 200);
            let jwks: serde_json::Value = serde_json::from_str(&body)?;
            assert_eq!(jwks["keys"][0]["kid"], issuer.current_kid());
            assert!(
                issuer
                    .current_kid()
                    .starts_with(&format!("fake-{}-", provider.slug())),
                "{}",
                issuer.current_kid()
            );
            moduli.push(jwks["keys"][0]["n"].clone());
            let jwt = issuer.sign(&json!({
                "iss": issuer.url(), "sub": "s", "jti": "j", "iat": 1, "nbf": 1,
                "exp": 4_000_000_000_i64,
            }));
            verify(issuer.url(), &jwt).await?;
        }
        let distinct: std::collections::HashSet<String> =
            moduli.iter().map(ToString::to_string).collect();
        assert_eq!(distinct.len(), 3, "every issuer has its own key");
        Ok(())
    }

    #[tokio::test]
    async fn knobs_take_one_issuer_down_or_break_its_key_set_and_fetches_are_counted()
    -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitLab);
        let gitlab = idp.issuer_of(Provider::GitLab);
        let discovery = format!("{}/.well-known/openid-configuration", gitlab.url());
        let jwks = gitlab.jwks_url();

        idp.set_down(true);
        assert_eq!(get(&discovery).await?.0, 500);
        assert_eq!(get(&jwks).await?.0, 500);
        let github = idp.issuer_of(Provider::GitHub);
        assert_eq!(
            get(&format!(
                "{}/.well-known/openid-configuration",
                github.url()
            ))
            .await?
            .0,
            200,
            "the other issuers stay up"
        );
        idp.set_down(false);
        idp.set_broken_jwks(true);
        let (status, body) = get(&jwks).await?;
        assert_eq!(status, 200);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
        idp.set_broken_jwks(false);
        let (status, body) = get(&jwks).await?;
        assert_eq!(status, 200);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());

        assert_eq!(idp.discovery_fetches(), 1);
        assert_eq!(idp.jwks_fetches(), 3);
        assert_eq!(github.discovery_fetches(), 1);
        assert_eq!(github.jwks_fetches(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_rotated_key_signs_while_the_old_one_stays_published() -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitHub);
        let claims = idp.github_claims("wharf.test", json!({}));
        let before = idp.sign(&claims);
        let old_kid = idp.current_kid();

        let new_kid = idp.rotate_key();
        let after = idp.sign(&claims);

        assert_ne!(old_kid, new_kid);
        assert_eq!(idp.current_kid(), new_kid);
        assert_eq!(idp.jwks()["keys"].as_array().map(Vec::len), Some(2));
        verify(idp.issuer(), &before).await?;
        verify(idp.issuer(), &after).await?;
        let header = jsonwebtoken::decode_header(&after)?;
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
        Ok(())
    }
}
