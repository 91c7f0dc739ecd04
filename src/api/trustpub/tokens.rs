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
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::auth::RawToken;
use crate::db::DbConn;
use crate::errors::{AppError, AppResult, bad_request, forbidden, internal, service_unavailable};
use crate::metrics::{ExchangeReason as Reason, UNKNOWN_PROVIDER};
use crate::models::audit::{self, Actor};
use crate::models::now;
use crate::models::pending_config;
use crate::models::trustpub_token::{self, MintedThrough, NewTrustpubToken};
use crate::services::pending;
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
    // Every attempt counts against its client address: a minted token's in the exchange
    // transaction, a failed one's on its own (over the limit, its answer is 429).
    let address = app.limiter.exchange_address(&req);
    let identity = match app.verifier.verify(&body.jwt).await {
        Ok(identity) => identity,
        Err(e) => {
            app.limiter
                .count_failed_exchange(&app.db, address, true)
                .await?;
            app.metrics
                .exchange_refused(UNKNOWN_PROVIDER, Reason::of_verify(&e));
            return Err(if e.is_unavailable() {
                service_unavailable(e)
            } else {
                bad_request(e)
            });
        }
    };
    let ttl = chrono::Duration::from_std(app.config.trustpub.token_ttl).map_err(internal)?;
    let (token, hash) = tokens::generate(tokens::TRUSTPUB_TOKEN_PREFIX);
    let provider = identity.provider().as_str();
    let (metrics, limiter) = (app.metrics.clone(), app.limiter.clone());
    let counted = address.clone();
    let result = app
        .db
        .grouped_transaction(move |conn| {
            limiter.check_exchange_address(conn, counted.as_ref())?;
            let now = now();
            let matches = match_configs(conn, &identity, now)
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
            // Matches of pending configs (negative ids) have no crate yet: the token may
            // create it; what they capture on first use is captured when the crate is created.
            let (pending, matches): (Vec<Match>, Vec<Match>) = matches
                .into_iter()
                .partition(|m| pending::row_id(m.publisher_id).is_some());
            let pending_rows: Vec<i64> =
                pending.iter().filter_map(|m| pending::row_id(m.publisher_id)).collect();
            pending::check_unambiguous(conn, &pending_rows, now)
                .inspect_err(|e| metrics.exchange_refused_by(provider, e, Reason::NoMatch))?;
            let claims_json = with_claims!(&identity.claims, P, claims => {
                for m in &matches {
                    P::record_use(conn, m.publisher_id, claims)?;
                }
                serde_json::to_string(claims)?
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
            for m in &pending {
                if let Some(row_id) = pending::row_id(m.publisher_id) {
                    pending_config::link_token(conn, token_id, row_id, &claims_json)?;
                }
            }
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
            Ok(matches
                .into_iter()
                .chain(pending)
                .map(|m| m.crate_name)
                .collect::<Vec<_>>())
        })
        .await
        .inspect_err(|e| app.metrics.exchange_error_if_server(provider, e));
    let crates = match result {
        Ok(crates) => crates,
        // Refused by the address limit: counted already.
        Err(e @ AppError::TooManyRequests { .. }) => return Err(e),
        Err(e) => {
            // The rollback took the attempt's count back; the refusal itself was counted in
            // the metrics, so a count that goes over the limit only refuses the next attempt.
            if let Err(count) = app
                .limiter
                .count_failed_exchange(&app.db, address, false)
                .await
                && !matches!(count, AppError::TooManyRequests { .. })
            {
                tracing::warn!(error = ?count, "a failed exchange could not be counted against its address");
            }
            return Err(e);
        }
    };
    app.metrics.exchange_ok(provider);
    tracing::info!(crates = ?crates, "trusted publishing token minted");
    Ok(HttpResponse::Ok().json(json!({ "token": token })))
}

/// The configs that accept the identity, through its provider's table and matcher: ordinary
/// ones, and pending ones (whose matches carry negative ids) for crates that do not exist
/// yet. A token that matches nothing but void pending configs is told so.
fn match_configs(
    conn: &mut DbConn,
    identity: &VerifiedIdentity,
    now: NaiveDateTime,
) -> AppResult<Vec<Match>> {
    let matches = with_claims!(&identity.claims, P, claims => {
        let mut candidates = P::candidates(conn, claims)?;
        let pending = pending::candidates::<P>(conn, now)?;
        candidates.extend(pending.live);
        match P::match_configs(claims, &candidates) {
            Ok(matches) => matches,
            Err(error) => {
                let void = P::match_configs(claims, &pending.void).unwrap_or_default();
                if void.is_empty() {
                    return Err(bad_request(error));
                }
                let names: Vec<String> = void.into_iter().map(|m| m.crate_name).collect();
                return Err(bad_request(pending::void_message(
                    &identity.claims.subject(),
                    &names,
                )));
            }
        }
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
    // A write: grouped with the exchanges, so on SQLite it takes its turn with them rather
    // than polling the write lock.
    let revoked = app
        .db
        .grouped_transaction(move |conn| Ok(trustpub_token::revoke(conn, &hash)?))
        .await?;
    app.token_cache.clear();
    if revoked {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(forbidden(
            "the Trusted Publishing token is invalid, revoked or expired",
        ))
    }
}
