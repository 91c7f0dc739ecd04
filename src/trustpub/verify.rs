//! Verification of an ID token, in the order docs/ARCHITECTURE.md's exchange walk-through
//! describes.
//!
//! Everything that can be refused without the network is refused first: size and shape, the
//! header (`RS256` only, `kid` required, no key material in the token) and the issuer, which is
//! read from the unverified payload only to choose among the configured issuers. Only then are
//! the issuer's keys looked up ([`KeyCache`]), the signature checked, and the claims validated
//! against `now`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use std::collections::BTreeMap;

use super::claims::numeric_date;
use super::errors::{VerifyError, shorten};
use super::identity::VerifiedIdentity;
use super::jwks::KeyCache;
use super::providers::{Claims, ProviderKind};

/// Tokens larger than this are refused unread.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: i64 = 60;
/// How much longer than its ID token can verify a used `jti` is remembered, so that instances
/// sharing the database whose clocks differ by up to this much still agree.
pub const JTI_MARGIN_SECONDS: i64 = 60;

/// The first instant at which an ID token whose `exp` is `exp` is refused as expired:
/// `exp + LEEWAY_SECONDS + 1 s`. Before it (`now` in whole seconds at most `exp` plus the
/// leeway) the token verifies; from it on it never does.
///
/// Verification compares `now` with this instant, and the memory of used `jti`s is derived from
/// it ([`jti_forgettable_from`]), so the two boundaries cannot drift apart.
pub fn refused_from(exp: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(exp.saturating_add(LEEWAY_SECONDS + 1), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The first instant at which the used `jti` of an ID token whose `exp` is `exp` may be
/// forgotten: [`refused_from`] plus [`JTI_MARGIN_SECONDS`]. The clean-up deletes a `jti` only
/// when this instant is at or before its `now`; any later presentation of the token is then at
/// or after [`refused_from`] (even on an instance whose clock is up to the margin behind), so
/// it is refused as expired and cannot be replayed.
pub fn jti_forgettable_from(exp: i64) -> DateTime<Utc> {
    refused_from(exp)
        .checked_add_signed(chrono::TimeDelta::seconds(JTI_MARGIN_SECONDS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
/// Longest `kid` and `jti` accepted.
const MAX_ID_LEN: usize = 256;

/// Which tokens are trusted. Issuers are compared exactly with the token's `iss` (a trailing `/`
/// in the settings is ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustpubSettings {
    /// The `aud` that tokens must carry, alone.
    pub audience: String,
    /// The trusted issuers of each provider.
    pub issuers: BTreeMap<ProviderKind, Vec<String>>,
}

impl TrustpubSettings {
    pub fn new(audience: impl Into<String>) -> TrustpubSettings {
        TrustpubSettings {
            audience: audience.into(),
            issuers: BTreeMap::new(),
        }
    }

    /// Adds trusted issuers of `kind`.
    pub fn trust(mut self, kind: ProviderKind, issuers: &[impl AsRef<str>]) -> TrustpubSettings {
        self.issuers
            .entry(kind)
            .or_default()
            .extend(issuers.iter().map(|i| i.as_ref().to_owned()));
        self
    }

    /// The trusted issuers of `kind`.
    pub fn issuers_of(&self, kind: ProviderKind) -> &[String] {
        self.issuers.get(&kind).map_or(&[], Vec::as_slice)
    }
}

/// Verifies ID tokens. Build one per process and share it (`Arc`): it holds the key cache.
#[derive(Debug)]
pub struct Verifier {
    settings: TrustpubSettings,
    keys: KeyCache,
}

impl Verifier {
    pub fn new(http: reqwest::Client, settings: TrustpubSettings) -> Verifier {
        let settings = TrustpubSettings {
            audience: settings.audience,
            issuers: settings
                .issuers
                .into_iter()
                .map(|(kind, issuers)| {
                    let issuers = issuers
                        .iter()
                        .map(|issuer| issuer.trim_end_matches('/').to_owned())
                        .collect();
                    (kind, issuers)
                })
                .collect(),
        };
        let issuers: Vec<String> = settings.issuers.values().flatten().cloned().collect();
        Verifier {
            keys: KeyCache::new(http, issuers),
            settings,
        }
    }

    pub fn settings(&self) -> &TrustpubSettings {
        &self.settings
    }

    /// Verifies `jwt` now. See [`Verifier::verify_at`].
    pub async fn verify(&self, jwt: &str) -> Result<VerifiedIdentity, VerifyError> {
        self.verify_at(jwt, Utc::now()).await
    }

    /// Verifies `jwt` as of `now` (which also drives the key cache's clock).
    ///
    /// Errors are [`VerifyError::InvalidToken`] (400) or, when the issuer's keys cannot be
    /// fetched, [`VerifyError::Unavailable`] (503). `jti` single use is left to the caller.
    pub async fn verify_at(
        &self,
        jwt: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedIdentity, VerifyError> {
        let segments = split(jwt)?;
        let header = decode_segment(segments.header, "header")?;
        let kid = check_header(&header)?;
        let claims = decode_segment(segments.payload, "payload")?;

        // Unverified: used only to choose among the configured issuers.
        let issuer = match claims.get("iss") {
            Some(Value::String(iss)) => iss.as_str(),
            _ => {
                return Err(VerifyError::invalid(
                    "The ID token has no `iss` (issuer) claim.",
                ));
            }
        };
        let provider = self.provider_for(issuer)?;
        if segments.signature.is_empty() {
            return Err(VerifyError::invalid("The ID token has no signature."));
        }

        let key = self.keys.key(issuer, kid, now).await?;
        let message = &jwt[..segments.header.len() + 1 + segments.payload.len()];
        let signature = URL_SAFE_NO_PAD
            .decode(segments.signature)
            .map_err(|_| bad_signature(kid))?;
        if !key.verifies_rs256(message.as_bytes(), &signature) {
            return Err(bad_signature(kid));
        }

        self.check_claims(&claims, issuer, now)?;
        let standard = |name: &str| claims.get(name).and_then(numeric_date).unwrap_or_default();
        let (exp, iat) = (standard("exp"), standard("iat"));
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let issuer = issuer.to_owned();
        let claims = Claims::parse(provider, Value::Object(claims))?;
        Ok(VerifiedIdentity {
            issuer,
            jti,
            exp,
            iat,
            claims,
        })
    }

    /// The provider whose configured issuers include `issuer`. An issuer configured for two
    /// providers is refused at start (`Config`), so the first is the only one.
    fn provider_for(&self, issuer: &str) -> Result<ProviderKind, VerifyError> {
        if let Some((kind, _)) = self
            .settings
            .issuers
            .iter()
            .find(|(_, issuers)| issuers.iter().any(|i| i == issuer))
        {
            return Ok(*kind);
        }
        let trusted = self
            .settings
            .issuers
            .values()
            .flatten()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(VerifyError::invalid(format!(
            "The ID token's issuer `{}` is not trusted by this registry; trusted issuers are \
             {trusted}.",
            shorten(issuer)
        )))
    }

    /// The standard claims, on the verified payload.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        issuer: &str,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(VerifyError::invalid(
                "The ID token's issuer changed while verifying.",
            ));
        }

        let audience = &self.settings.audience;
        match claims.get("aud") {
            Some(Value::String(aud)) if aud == audience => {}
            Some(Value::String(aud)) => {
                return Err(VerifyError::invalid(format!(
                    "The ID token's audience (`aud`) is `{}`, but this registry expects \
                     `{audience}`. Request the token with the audience `{audience}`.",
                    shorten(aud)
                )));
            }
            Some(Value::Array(_)) => {
                return Err(VerifyError::invalid(format!(
                    "The ID token has a list of audiences; this registry requires the single \
                     audience `{audience}`. Request the token with only that audience."
                )));
            }
            _ => {
                return Err(VerifyError::invalid(format!(
                    "The ID token has no audience (`aud`) claim; this registry requires \
                     `{audience}`."
                )));
            }
        }

        let now_ts = now.timestamp();
        let exp = required_date(claims, "exp", "expiry")?;
        let iat = required_date(claims, "iat", "issued-at")?;
        let nbf = match claims.get("nbf") {
            None => None,
            Some(value) => Some(numeric_date(value).ok_or_else(|| {
                VerifyError::invalid("The ID token's `nbf` claim is not a NumericDate.")
            })?),
        };
        if now >= refused_from(exp) {
            return Err(VerifyError::invalid(format!(
                "The ID token expired at {}. ID tokens are short-lived: request a fresh one \
                 right before the exchange.",
                show_time(exp)
            )));
        }
        if let Some(nbf) = nbf
            && nbf > now_ts.saturating_add(LEEWAY_SECONDS)
        {
            return Err(VerifyError::invalid(format!(
                "The ID token is not valid before {}; check the clocks of the registry and the \
                 identity provider.",
                show_time(nbf)
            )));
        }
        if iat > now_ts.saturating_add(LEEWAY_SECONDS) {
            return Err(VerifyError::invalid(format!(
                "The ID token was issued in the future ({}); check the clocks of the registry \
                 and the identity provider.",
                show_time(iat)
            )));
        }

        match claims.get("jti") {
            Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_ID_LEN => Ok(()),
            Some(Value::String(jti)) if !jti.is_empty() => Err(VerifyError::invalid(
                "The ID token's `jti` (token ID) is too long.",
            )),
            _ => Err(VerifyError::invalid(
                "The ID token has no `jti` (token ID) claim, which is needed to refuse replayed \
                 tokens.",
            )),
        }
    }
}

struct Segments<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(jwt: &str) -> Result<Segments<'_>, VerifyError> {
    if jwt.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::invalid(format!(
            "The ID token is larger than {} KiB; it cannot be an ID token from a CI platform.",
            MAX_TOKEN_BYTES / 1024
        )));
    }
    let not_a_jwt = || {
        VerifyError::invalid(
            "The ID token is not a JWT: expected three base64url segments separated by dots.",
        )
    };
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_a_jwt());
    };
    let is_base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if header.is_empty()
        || payload.is_empty()
        || !is_base64url(header)
        || !is_base64url(payload)
        || !is_base64url(signature)
    {
        return Err(not_a_jwt());
    }
    Ok(Segments {
        header,
        payload,
        signature,
    })
}

fn decode_segment(segment: &str, what: &str) -> Result<Map<String, Value>, VerifyError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        VerifyError::invalid(format!("The ID token's {what} is not valid base64url."))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|_| VerifyError::invalid(format!("The ID token's {what} is not a JSON object.")))
}

/// Checks the JOSE header and returns the `kid`.
fn check_header(header: &Map<String, Value>) -> Result<&str, VerifyError> {
    for embedded in ["jwk", "jku", "x5u", "x5c"] {
        if header.contains_key(embedded) {
            return Err(VerifyError::invalid(format!(
                "The ID token's header carries `{embedded}`: keys and key locations given by a \
                 token are never trusted; the signing key must come from the issuer's published \
                 key set."
            )));
        }
    }
    if header.contains_key("crit") {
        return Err(VerifyError::invalid(
            "The ID token's header lists critical extensions (`crit`), which this registry does \
             not support.",
        ));
    }
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(alg)) if alg.eq_ignore_ascii_case("none") => {
            return Err(VerifyError::invalid(
                "The ID token is unsigned (`alg` is `none`); only RS256-signed tokens are \
                 accepted.",
            ));
        }
        Some(Value::String(alg)) if alg.to_ascii_uppercase().starts_with("HS") => {
            return Err(VerifyError::invalid(format!(
                "The ID token is signed with the HMAC algorithm `{}`; shared-secret signatures \
                 are refused, only RS256 is accepted.",
                shorten(alg)
            )));
        }
        Some(Value::String(alg)) => {
            return Err(VerifyError::invalid(format!(
                "The ID token's signing algorithm `{}` is not supported; only RS256 is accepted.",
                shorten(alg)
            )));
        }
        _ => {
            return Err(VerifyError::invalid(
                "The ID token's header has no `alg`; only RS256-signed tokens are accepted.",
            ));
        }
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_ID_LEN => Ok(kid),
        _ => Err(VerifyError::invalid(
            "The ID token's header has no valid `kid` (key ID), which is needed to find the \
             issuer's signing key.",
        )),
    }
}

fn bad_signature(kid: &str) -> VerifyError {
    VerifyError::invalid(format!(
        "The ID token's signature does not verify with the issuer's key `{}`.",
        shorten(kid)
    ))
}

fn required_date(
    claims: &Map<String, Value>,
    name: &str,
    meaning: &str,
) -> Result<i64, VerifyError> {
    let value = claims.get(name).ok_or_else(|| {
        VerifyError::invalid(format!("The ID token has no `{name}` ({meaning}) claim."))
    })?;
    numeric_date(value).ok_or_else(|| {
        VerifyError::invalid(format!(
            "The ID token's `{name}` claim is not a NumericDate."
        ))
    })
}

fn show_time(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_forgettable_only_after_its_token_is_refused() {
        for exp in [0, 1_700_000_000, i64::from(i32::MAX)] {
            let refused = refused_from(exp);
            // Accepted while `now` in whole seconds is at most exp + leeway.
            assert_eq!(refused.timestamp(), exp + LEEWAY_SECONDS + 1);
            assert_eq!(refused.timestamp_subsec_nanos(), 0);
            assert!(jti_forgettable_from(exp) > refused);
            assert_eq!(
                (jti_forgettable_from(exp) - refused).num_seconds(),
                JTI_MARGIN_SECONDS
            );
        }
        // Dates at the end of the range saturate rather than wrap.
        let last = DateTime::<Utc>::MAX_UTC.timestamp();
        assert_eq!(refused_from(last), DateTime::<Utc>::MAX_UTC);
        assert_eq!(jti_forgettable_from(last), DateTime::<Utc>::MAX_UTC);
    }
}
