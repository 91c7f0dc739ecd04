//! Pending publishers: trusted publisher configs of any provider for a crate that does not
//! exist yet (`trustpub_pending_configs`), and the exchanged tokens minted through them
//! (`trustpub_token_pending`). The provider's fields are kept as JSON; the rules (who may add
//! one, how many, when one is void, how it becomes an ordinary config) are in
//! `services::pending`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::{crates, trustpub_pending_configs, trustpub_token_pending};

/// A pending config, as stored.
#[derive(Queryable, Selectable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = trustpub_pending_configs)]
pub struct PendingConfig {
    pub id: i64,
    /// The provider's `KIND`.
    pub provider: String,
    pub crate_name: String,
    pub canonical_name: String,
    /// The provider's input, as JSON.
    pub config: String,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_pending_configs)]
pub struct NewPendingConfig<'a> {
    pub provider: &'a str,
    pub crate_name: &'a str,
    pub canonical_name: &'a str,
    pub config: &'a str,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl NewPendingConfig<'_> {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<PendingConfig> {
        diesel::insert_into(trustpub_pending_configs::table)
            .values(self)
            .execute(conn)?;
        trustpub_pending_configs::table
            .filter(trustpub_pending_configs::created_by.eq(self.created_by))
            .order(trustpub_pending_configs::id.desc())
            .select(PendingConfig::as_select())
            .first(conn)
    }
}

/// A pending config with whether a crate of its name exists now (which makes it void).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWithState {
    pub pending: PendingConfig,
    pub void: bool,
}

fn with_state(conn: &mut DbConn, rows: Vec<PendingConfig>) -> QueryResult<Vec<PendingWithState>> {
    let names: Vec<&str> = rows.iter().map(|p| p.canonical_name.as_str()).collect();
    let existing: Vec<String> = crates::table
        .filter(crates::canonical_name.eq_any(&names))
        .select(crates::canonical_name)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|pending| PendingWithState {
            void: existing.contains(&pending.canonical_name),
            pending,
        })
        .collect())
}

/// The unexpired pending configs of `provider`, with their state (for matching an ID token).
pub fn unexpired_of_provider(
    conn: &mut DbConn,
    provider: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<PendingWithState>> {
    let rows = trustpub_pending_configs::table
        .filter(trustpub_pending_configs::provider.eq(provider))
        .filter(trustpub_pending_configs::expires_at.gt(now))
        .order(trustpub_pending_configs::id.asc())
        .select(PendingConfig::as_select())
        .load(conn)?;
    with_state(conn, rows)
}

/// The unexpired pending configs `user_id` created, oldest first, with their state.
pub fn unexpired_of_user(
    conn: &mut DbConn,
    user_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Vec<PendingWithState>> {
    let rows = trustpub_pending_configs::table
        .filter(trustpub_pending_configs::created_by.eq(user_id))
        .filter(trustpub_pending_configs::expires_at.gt(now))
        .order(trustpub_pending_configs::id.asc())
        .select(PendingConfig::as_select())
        .load(conn)?;
    with_state(conn, rows)
}

/// The unexpired pending config `id`, if there is one.
pub fn unexpired_by_id(
    conn: &mut DbConn,
    id: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<PendingConfig>> {
    trustpub_pending_configs::table
        .find(id)
        .filter(trustpub_pending_configs::expires_at.gt(now))
        .select(PendingConfig::as_select())
        .first(conn)
        .optional()
}

/// Deletes the pending config `id` (and with it the links of tokens minted through it).
pub fn delete(conn: &mut DbConn, id: i64) -> QueryResult<()> {
    diesel::delete(trustpub_token_pending::table.filter(trustpub_token_pending::pending_id.eq(id)))
        .execute(conn)?;
    diesel::delete(trustpub_pending_configs::table.find(id)).execute(conn)?;
    Ok(())
}

/// Links a freshly minted token to a pending config it was minted through, with the ID
/// token's claims as JSON.
pub fn link_token(
    conn: &mut DbConn,
    token_id: i64,
    pending_id: i64,
    claims: &str,
) -> QueryResult<()> {
    diesel::insert_into(trustpub_token_pending::table)
        .values((
            trustpub_token_pending::token_id.eq(token_id),
            trustpub_token_pending::pending_id.eq(pending_id),
            trustpub_token_pending::claims.eq(claims),
        ))
        .execute(conn)?;
    Ok(())
}

/// A pending config a token was minted through, with the claims of that exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingGrant {
    pub pending: PendingConfig,
    pub claims: String,
}

/// The unexpired pending configs the token `token_id` was minted through. On PostgreSQL the
/// rows are locked (`FOR SHARE`), so that a publish through one and its removal happen one
/// after the other.
pub fn grants_of_token(
    conn: &mut DbConn,
    token_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Vec<PendingGrant>> {
    let query = trustpub_token_pending::table
        .inner_join(trustpub_pending_configs::table)
        .filter(trustpub_token_pending::token_id.eq(token_id))
        .filter(trustpub_pending_configs::expires_at.gt(now))
        .order(trustpub_pending_configs::id.asc())
        .select((
            trustpub_pending_configs::all_columns,
            trustpub_token_pending::claims,
        ));
    let rows: Vec<(PendingConfig, String)> = match conn {
        DbConn::Pg(pg) => query.for_share().load(pg)?,
        // SQLite write transactions hold the database's write lock already.
        DbConn::Sqlite(_) => query.load(conn)?,
    };
    Ok(rows
        .into_iter()
        .map(|(pending, claims)| PendingGrant { pending, claims })
        .collect())
}

/// Deletes expired pending configs (with the links of tokens minted through them); returns
/// how many.
pub fn clean_up(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    let expired = trustpub_pending_configs::table
        .filter(trustpub_pending_configs::expires_at.le(now))
        .select(trustpub_pending_configs::id);
    diesel::delete(
        trustpub_token_pending::table.filter(trustpub_token_pending::pending_id.eq_any(expired)),
    )
    .execute(conn)?;
    diesel::delete(
        trustpub_pending_configs::table.filter(trustpub_pending_configs::expires_at.le(now)),
    )
    .execute(conn)
}
