//! Discovery and caching of the issuers' signing keys.
//!
//! For each configured issuer (and only those: the cache is a fixed map built from the settings,
//! so a token cannot make it grow) the keys are fetched from
//! `<iss>/.well-known/openid-configuration` → `jwks_uri` and kept for [`KEYS_TTL_SECONDS`].
//! A `kid` that is not in a fresh key set triggers at most one refetch per issuer per
//! [`REFETCH_INTERVAL_SECONDS`], so hostile tokens with made-up key IDs cannot turn the registry
//! into a load generator against the identity provider. A discovery document or key set that
//! cannot be fetched or parsed is [`VerifyError::Unavailable`]: the token is neither accepted nor
//! blamed. Keys are never taken from the token itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use url::Url;

use super::errors::{VerifyError, shorten};

/// How long a fetched key set is used before it is fetched again.
pub const KEYS_TTL_SECONDS: i64 = 60 * 60;
/// The shortest interval between two fetches caused by an unknown `kid`.
pub const REFETCH_INTERVAL_SECONDS: i64 = 60;
/// Timeout of each discovery or key-set request, body included.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery document or key set read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted in a key set, in bytes (2048 bits).
const MIN_MODULUS_BYTES: usize = 256;

/// Signing keys of the configured issuers.
pub struct KeyCache {
    http: reqwest::Client,
    issuers: HashMap<String, Mutex<IssuerKeys>>,
}

/// An issuer's RSA public key, decoded once when the key set is fetched and shared by every
/// verification that uses it.
#[derive(Debug, PartialEq, Eq)]
pub struct RsaKey {
    /// The modulus, big-endian.
    pub n: Vec<u8>,
    /// The public exponent, big-endian.
    pub e: Vec<u8>,
}

impl RsaKey {
    /// Whether `signature` is a valid RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of
    /// `message` by this key. Moduli of 2048 to 8192 bits only.
    pub fn verifies_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::RsaPublicKeyComponents {
            n: self.n.as_slice(),
            e: self.e.as_slice(),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            signature,
        )
        .is_ok()
    }
}

#[derive(Default)]
struct IssuerKeys {
    keys: HashMap<String, Arc<RsaKey>>,
    /// When the key set in `keys` was fetched.
    fetched_at: Option<DateTime<Utc>>,
    /// When a fetch was last tried, successful or not.
    attempted_at: Option<DateTime<Utc>>,
}

impl IssuerKeys {
    fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        self.fetched_at
            .is_some_and(|at| at <= now && now - at < TimeDelta::seconds(KEYS_TTL_SECONDS))
    }

    fn may_refetch(&self, now: DateTime<Utc>) -> bool {
        self.attempted_at.is_none_or(|at| {
            // A clock that went backwards must not block refetches for long.
            now < at || now - at >= TimeDelta::seconds(REFETCH_INTERVAL_SECONDS)
        })
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache for exactly these issuers.
    pub fn new(http: reqwest::Client, issuers: impl IntoIterator<Item = String>) -> Self {
        let issuers = issuers
            .into_iter()
            .map(|issuer| (issuer, Mutex::new(IssuerKeys::default())))
            .collect();
        KeyCache { http, issuers }
    }

    /// The key `kid` of `issuer`, fetching or refetching the issuer's key set when needed.
    ///
    /// `now` drives the cache's clock (it is the verifier's clock, injectable in tests).
    pub async fn key(
        &self,
        issuer: &str,
        kid: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<RsaKey>, VerifyError> {
        let Some(slot) = self.issuers.get(issuer) else {
            return Err(VerifyError::invalid(format!(
                "The ID token's issuer `{}` is not trusted by this registry.",
                shorten(issuer)
            )));
        };
        // Held across the fetch: concurrent requests for the same issuer wait for one fetch
        // instead of each starting their own.
        let mut state = slot.lock().await;
        if !state.is_fresh(now) {
            self.refresh(issuer, &mut state, now).await?;
        } else if !state.keys.contains_key(kid) && state.may_refetch(now) {
            tracing::debug!(
                trustpub.issuer = issuer,
                "unknown key ID, refetching the key set"
            );
            self.refresh(issuer, &mut state, now).await?;
        }
        state.keys.get(kid).cloned().ok_or_else(|| {
            VerifyError::invalid(format!(
                "The ID token was signed with key `{}`, which the issuer `{issuer}` does not \
                 publish. Request a fresh token; if the issuer rotated its keys a moment ago, \
                 try again in a minute.",
                shorten(kid)
            ))
        })
    }

    async fn refresh(
        &self,
        issuer: &str,
        state: &mut IssuerKeys,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        state.attempted_at = Some(now);
        match fetch_keys(&self.http, issuer).await {
            Ok(keys) => {
                tracing::debug!(
                    trustpub.issuer = issuer,
                    trustpub.keys = keys.len(),
                    "fetched the issuer's key set"
                );
                state.keys = keys;
                state.fetched_at = Some(now);
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(
                    trustpub.issuer = issuer,
                    error = %reason,
                    "could not fetch the issuer's key set"
                );
                Err(VerifyError::Unavailable(format!(
                    "Could not fetch the signing keys of the identity provider `{issuer}` \
                     ({reason}), so the ID token cannot be checked now. Try again later."
                )))
            }
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Discovers and fetches the issuer's key set. The error is a short reason for messages and logs.
async fn fetch_keys(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<HashMap<String, Arc<RsaKey>>, String> {
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let discovery: Discovery = get_json(http, &discovery_url).await?;
    if discovery.issuer != issuer {
        return Err(format!(
            "the discovery document names the issuer `{}`",
            shorten(&discovery.issuer)
        ));
    }
    let jwks_uri = Url::parse(&discovery.jwks_uri)
        .map_err(|_| "the discovery document has an invalid `jwks_uri`".to_owned())?;
    let secure = match jwks_uri.scheme() {
        "https" => true,
        "http" => is_loopback(&jwks_uri),
        _ => false,
    };
    if !secure {
        return Err("the discovery document's `jwks_uri` is not an https URL".to_owned());
    }

    let key_set: RawKeySet = get_json(http, jwks_uri.as_str()).await?;
    let mut keys = HashMap::new();
    for raw in key_set.keys {
        // Keys of other types or uses are skipped, not fatal: issuers may publish several.
        let Ok(key) = serde_json::from_value::<RawKey>(raw) else {
            continue;
        };
        if key.kty != "RSA"
            || key.alg.as_deref().is_some_and(|alg| alg != "RS256")
            || key.key_use.as_deref().is_some_and(|u| u != "sig")
        {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (key.kid, key.n, key.e) else {
            continue;
        };
        let (Ok(n), Ok(e)) = (
            URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')),
            URL_SAFE_NO_PAD.decode(e.trim_end_matches('=')),
        ) else {
            tracing::warn!(
                trustpub.issuer = issuer,
                trustpub.kid = %shorten(&kid),
                "ignoring an RSA key with invalid components"
            );
            continue;
        };
        let significant = n.iter().skip_while(|&&b| b == 0).count();
        if significant < MIN_MODULUS_BYTES {
            tracing::warn!(
                trustpub.issuer = issuer,
                trustpub.kid = %shorten(&kid),
                "ignoring an RSA key shorter than 2048 bits"
            );
            continue;
        }
        keys.insert(kid, Arc::new(RsaKey { n, e }));
    }
    if keys.is_empty() {
        return Err("the key set has no usable RS256 key".to_owned());
    }
    Ok(keys)
}

/// GET a JSON document with a timeout and a body size limit.
async fn get_json<T: DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, String> {
    let mut response = http
        .get(url)
        .timeout(HTTP_TIMEOUT)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{url} could not be reached: {}", describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {}", status.as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(format!("{url} sent more than {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {url} failed: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("{url} sent more than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| format!("{url} did not send the expected JSON"))
}

fn describe(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
