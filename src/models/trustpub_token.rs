//! Tokens minted by the Trusted Publishing exchange: hashed, short-lived, scoped to crates.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::auth::{RawToken, TrustpubAuth};
use crate::db::DbConn;
use crate::errors::{AppResult, forbidden};
use crate::schema::{trustpub_tokens, trustpub_used_jtis};

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_tokens)]
pub struct NewTrustpubToken<'a> {
    pub token_hash: &'a str,
    /// Comma-separated crate ids.
    pub crate_ids: String,
    pub actor: &'a str,
    /// JSON: the CI identity recorded on each publish.
    pub publisher: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl NewTrustpubToken<'_> {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<()> {
        diesel::insert_into(trustpub_tokens::table)
            .values(self)
            .execute(conn)?;
        Ok(())
    }
}

/// Resolves a `wharf_tp_` token; expired and revoked (deleted) tokens are refused alike.
pub fn resolve(conn: &mut DbConn, raw: &RawToken, now: NaiveDateTime) -> AppResult<TrustpubAuth> {
    let row: Option<(i64, String, String, String)> = trustpub_tokens::table
        .filter(trustpub_tokens::token_hash.eq(raw.hash()))
        .filter(trustpub_tokens::expires_at.gt(now))
        .select((
            trustpub_tokens::id,
            trustpub_tokens::crate_ids,
            trustpub_tokens::actor,
            trustpub_tokens::publisher,
        ))
        .first(conn)
        .optional()?;
    let (token_id, crate_ids, actor, publisher) = row.ok_or_else(|| {
        forbidden("the Trusted Publishing token is invalid, revoked or expired; exchange a new ID token for a fresh one")
    })?;
    Ok(TrustpubAuth {
        token_id,
        crate_ids: crate_ids
            .split(',')
            .filter_map(|id| id.parse().ok())
            .collect(),
        publisher: serde_json::from_str(&publisher)?,
        actor,
    })
}

/// Revokes (deletes) the token with this hash; true if it existed.
pub fn revoke(conn: &mut DbConn, token_hash: &str) -> QueryResult<bool> {
    Ok(
        diesel::delete(trustpub_tokens::table.filter(trustpub_tokens::token_hash.eq(token_hash)))
            .execute(conn)?
            > 0,
    )
}

/// Marks an ID token's `jti` as used. Returns false if it was used before (on any instance
/// sharing the database): the primary key makes the first insert win, even under a race.
pub fn claim_jti(
    conn: &mut DbConn,
    jti_hash: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    match diesel::insert_into(trustpub_used_jtis::table)
        .values((
            trustpub_used_jtis::jti_hash.eq(jti_hash),
            trustpub_used_jtis::expires_at.eq(expires_at),
        ))
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(e) if crate::db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes expired tokens, and `jti`s whose ID token can no longer verify: a `jti` is deleted
/// once its `expires_at` (`VerifiedIdentity::replay_window_ends_at`) is at or before `now`,
/// which is after the last instant its token is accepted (`trustpub::refused_from`), so no
/// token whose `jti` was forgotten can be presented again. Returns how many rows.
pub fn clean_up(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    let tokens = diesel::delete(trustpub_tokens::table.filter(trustpub_tokens::expires_at.le(now)))
        .execute(conn)?;
    let jtis =
        diesel::delete(trustpub_used_jtis::table.filter(trustpub_used_jtis::expires_at.le(now)))
            .execute(conn)?;
    Ok(tokens + jtis)
}

/// The publisher details for one crate: the shared fields plus the config that matched it.
pub fn publisher_for_crate(publisher: &serde_json::Value, crate_id: i64) -> serde_json::Value {
    let mut detail = publisher.clone();
    let config_id = publisher["config_ids"][crate_id.to_string()].clone();
    if let Some(object) = detail.as_object_mut() {
        object.remove("config_ids");
        object.insert("config_id".to_owned(), config_id);
    }
    detail
}
