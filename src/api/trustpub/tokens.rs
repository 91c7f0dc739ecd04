//! `POST|PUT /api/v1/trusted_publishing/tokens`: exchange a CI ID token for a short-lived
//! publish token; `DELETE`: revoke it.
//!
//! The walk-through: verify the ID token (signature, issuer, audience, times, `jti` present),
//! then in one transaction find the publisher configs of its repository or project, match
//! them, mark the `jti` used (the primary key makes exactly one of two racing requests win,
//! across every instance on the database), mint the token and write the audit log. A failed
//! match rolls back before the `jti` is used, so a fixed config can be retried with the same
//! ID token.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::auth::RawToken;
use crate::db::DbConn;
use crate::errors::{AppResult, bad_request, forbidden, internal, service_unavailable};
use crate::metrics::{ExchangeReason as Reason, UNKNOWN_PROVIDER};
use crate::models::audit::{self, Actor};
use crate::models::now;
use crate::models::trustpub_token::{self, MintedThrough, NewTrustpubToken};
use crate::tokens;
use crate::trustpub::provider::Provider;
use crate::trustpub::providers::with_claims;
use crate::trustpub::{Match, Published, VerifiedIdentity};

#[derive(Deserialize)]
pub struct ExchangeBody {
    jwt: String,
}

pub async fn exchange(
    app: web::Data<App>,
    req: HttpRequest,
    body: web::Json<ExchangeBody>,
) -> AppResult<HttpResponse> {
    app.limiter.check_exchange_address(&app.db, &req).await?;
    let identity = app.verifier.verify(&body.jwt).await.map_err(|e| {
        app.metrics
            .exchange_refused(UNKNOWN_PROVIDER, Reason::of_verify(&e));
        if e.is_unavailable() {
            service_unavailable(e)
        } else {
            bad_request(e)
        }
    })?;
    let ttl = chrono::Duration::from_std(app.config.trustpub.token_ttl).map_err(internal)?;
    let (token, hash) = tokens::generate(tokens::TRUSTPUB_TOKEN_PREFIX);
    let provider = identity.provider().as_str();
    let (metrics, limiter) = (app.metrics.clone(), app.limiter.clone());
    let crates = app
        .db
        .transaction(move |conn| {
            let now = now();
            let matches = match_configs(conn, &identity)
                .inspect_err(|e| metrics.exchange_refused_by(provider, e, Reason::NoMatch))?;
            limiter.check_exchange_publishers(conn, provider, matches.iter().map(|m| m.publisher_id))?;
            let jti_hash = jti_hash(identity.issuer(), identity.jti());
            let replay_until = identity.replay_window_ends_at().naive_utc();
            if !trustpub_token::claim_jti(conn, &jti_hash, replay_until)? {
                metrics.exchange_refused(provider, Reason::Replay);
                return Err(bad_request(
                    "this ID token has already been exchanged; each ID token can be used once. Request a fresh ID token from your CI platform",
                ));
            }
            with_claims!(&identity.claims, P, claims => {
                for m in &matches {
                    P::record_use(conn, m.publisher_id, claims)?;
                }
            });
            let publisher = identity.data();
            let published_by = identity.published_by();
            let through: Vec<MintedThrough> = matches
                .iter()
                .map(|m| MintedThrough {
                    crate_id: m.crate_id,
                    provider: identity.provider(),
                    config_id: m.publisher_id,
                })
                .collect();
            let token_id = NewTrustpubToken {
                token_hash: &hash,
                actor: &published_by,
                publisher: serde_json::to_string(&publisher)?,
                created_at: now,
                expires_at: now + ttl,
            }
            .insert(conn, &through)?;
            let actor = Actor { name: published_by.clone(), user_id: None };
            for m in &matches {
                let mut detail = Published {
                    data: publisher.clone(),
                    config_id: Some(m.publisher_id),
                }
                .to_json();
                detail["token_id"] = json!(token_id);
                detail["expires_at"] = json!((now + ttl).and_utc());
                audit::record(conn, m.crate_id, &actor, "trustpub_exchange", detail, now)?;
            }
            Ok(matches.into_iter().map(|m| m.crate_name).collect::<Vec<_>>())
        })
        .await
        .inspect_err(|e| app.metrics.exchange_error_if_server(provider, e))?;
    app.metrics.exchange_ok(provider);
    tracing::info!(crates = ?crates, "trusted publishing token minted");
    Ok(HttpResponse::Ok().json(json!({ "token": token })))
}

/// The configs that accept the identity, through its provider's table and matcher.
fn match_configs(conn: &mut DbConn, identity: &VerifiedIdentity) -> AppResult<Vec<Match>> {
    let matches = with_claims!(&identity.claims, P, claims => {
        let candidates = P::candidates(conn, claims)?;
        P::match_configs(claims, &candidates).map_err(bad_request)?
    });
    if matches.is_empty() {
        // The matchers explain a miss; an empty success would be a bug, and must not mint.
        return Err(bad_request(format!(
            "No Trusted Publishing config matches {}",
            identity.claims.subject()
        )));
    }
    Ok(matches)
}

/// The `jti` is remembered per issuer, hashed so its length is fixed.
fn jti_hash(issuer: &str, jti: &str) -> String {
    hex::encode(Sha256::digest(format!("{issuer}\n{jti}").as_bytes()))
}

/// `DELETE /api/v1/trusted_publishing/tokens`: revokes the token in `Authorization`.
pub async fn revoke(app: web::Data<App>, req: HttpRequest) -> AppResult<HttpResponse> {
    let raw = RawToken::from_request(&req)?;
    if !raw.is_trustpub() {
        return Err(bad_request(
            "only Trusted Publishing tokens (wharf_tp_…) are revoked here; revoke API tokens in the token settings",
        ));
    }
    let hash = raw.hash();
    let revoked = app
        .db
        .run(move |conn| Ok(trustpub_token::revoke(conn, &hash)?))
        .await?;
    if revoked {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(forbidden(
            "the Trusted Publishing token is invalid, revoked or expired",
        ))
    }
}
