//! Tokens minted by the Trusted Publishing exchange: hashed, short-lived, scoped to crates.
//!
//! A token row holds the CI identity; `trustpub_token_crates` links it to each crate it may
//! publish, one row per publisher config that matched the ID token. Removing a config revokes
//! the rows of that config, and an owner revokes a token's rows of their crate: a token may
//! publish a crate only while every row linking it to that crate is unrevoked. A token left
//! without any crate is refused for everything. Revoked rows stay until the token expires, so
//! that a refused publish can say who revoked it and why.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::{trustpub_token_crates, trustpub_tokens, trustpub_used_jtis};
use crate::trustpub::{ProviderKind, TrustpubData};

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_tokens)]
pub struct NewTrustpubToken<'a> {
    pub token_hash: &'a str,
    pub actor: &'a str,
    /// [`TrustpubData`] as JSON: the CI identity recorded on each publish.
    pub publisher: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A publisher config that matched the ID token the token was minted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintedThrough {
    pub crate_id: i64,
    pub provider: ProviderKind,
    pub config_id: i64,
}

impl NewTrustpubToken<'_> {
    /// Inserts the token and its links to the configs it was minted through; returns its id.
    pub fn insert(&self, conn: &mut DbConn, through: &[MintedThrough]) -> QueryResult<i64> {
        diesel::insert_into(trustpub_tokens::table)
            .values(self)
            .execute(conn)?;
        let token_id = trustpub_tokens::table
            .filter(trustpub_tokens::token_hash.eq(self.token_hash))
            .select(trustpub_tokens::id)
            .first(conn)?;
        for link in through {
            diesel::insert_into(trustpub_token_crates::table)
                .values((
                    trustpub_token_crates::token_id.eq(token_id),
                    trustpub_token_crates::crate_id.eq(link.crate_id),
                    trustpub_token_crates::provider.eq(link.provider.as_str()),
                    trustpub_token_crates::config_id.eq(link.config_id),
                ))
                .execute(conn)?;
        }
        Ok(token_id)
    }
}

/// Why a token lost a crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBecause {
    /// An owner removed the publisher config the token was minted through.
    PublisherRemoved,
    /// An owner revoked the token on the crate's settings page.
    OwnerRevoked,
}

impl RevokedBecause {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokedBecause::PublisherRemoved => "publisher_removed",
            RevokedBecause::OwnerRevoked => "owner_revoked",
        }
    }

    fn parse(text: Option<&str>) -> RevokedBecause {
        match text {
            Some("owner_revoked") => RevokedBecause::OwnerRevoked,
            _ => RevokedBecause::PublisherRemoved,
        }
    }
}

/// When, by whom and why a token lost a crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub at: NaiveDateTime,
    pub by: String,
    pub because: RevokedBecause,
}

impl std::fmt::Display for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.because {
            RevokedBecause::PublisherRemoved => {
                "the trusted publisher it was minted through was removed"
            }
            RevokedBecause::OwnerRevoked => "an owner revoked it on the crate's settings page",
        };
        write!(
            f,
            "it was revoked by {} at {} ({why})",
            self.by,
            self.at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// What a token may do with one crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateGrant {
    /// The config recorded on a publish (the lowest id, if several configs of the crate
    /// matched).
    pub config_id: i64,
    /// Set once any config it was minted through for this crate was removed, or an owner
    /// revoked it: the token may no longer publish the crate.
    pub revoked: Option<Revocation>,
}

#[derive(Queryable, Debug)]
struct LinkRow {
    crate_id: i64,
    config_id: i64,
    revoked_at: Option<NaiveDateTime>,
    revoked_by: Option<String>,
    revoked_because: Option<String>,
}

/// The grants of a token, per crate, from its link rows.
fn grants(rows: Vec<LinkRow>) -> BTreeMap<i64, CrateGrant> {
    let mut grants: BTreeMap<i64, CrateGrant> = BTreeMap::new();
    for row in rows {
        let revoked = row.revoked_at.map(|at| Revocation {
            at,
            by: row.revoked_by.unwrap_or_default(),
            because: RevokedBecause::parse(row.revoked_because.as_deref()),
        });
        let grant = grants.entry(row.crate_id).or_insert(CrateGrant {
            config_id: row.config_id,
            revoked: None,
        });
        grant.config_id = grant.config_id.min(row.config_id);
        // Any revoked link revokes the crate; the first revocation is the one reported.
        if let Some(revoked) = revoked
            && grant.revoked.as_ref().is_none_or(|r| revoked.at < r.at)
        {
            grant.revoked = Some(revoked);
        }
    }
    grants
}

/// A live (unexpired) token: its CI identity and what it may do with each crate.
#[derive(Debug)]
pub struct LiveToken {
    pub id: i64,
    pub actor: String,
    pub expires_at: NaiveDateTime,
    pub publisher: TrustpubData,
    /// By crate id; a crate whose grant is revoked is still listed, with why.
    pub crates: BTreeMap<i64, CrateGrant>,
}

/// Why a live token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LiveTokenError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("the token's stored publisher record cannot be read: {0}")]
    Record(#[from] serde_json::Error),
}

/// The unexpired token whose secret hashes to `token_hash`, if there is one. Deleted and
/// expired tokens are `None` alike.
pub fn live_by_hash(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<LiveToken>, LiveTokenError> {
    let row: Option<(i64, String, String, NaiveDateTime)> = trustpub_tokens::table
        .filter(trustpub_tokens::token_hash.eq(token_hash))
        .filter(trustpub_tokens::expires_at.gt(now))
        .select((
            trustpub_tokens::id,
            trustpub_tokens::actor,
            trustpub_tokens::publisher,
            trustpub_tokens::expires_at,
        ))
        .first(conn)
        .optional()?;
    let Some((id, actor, publisher, expires_at)) = row else {
        return Ok(None);
    };
    let links = trustpub_token_crates::table
        .filter(trustpub_token_crates::token_id.eq(id))
        .select((
            trustpub_token_crates::crate_id,
            trustpub_token_crates::config_id,
            trustpub_token_crates::revoked_at,
            trustpub_token_crates::revoked_by,
            trustpub_token_crates::revoked_because,
        ));
    let rows: Vec<LinkRow> = match conn {
        // Read committed: lock the rows, so that a publish and a revocation of the same token
        // happen one after the other. A revocation that commits first is seen here; one that
        // comes later waits for this transaction (and so for the publish) to end.
        DbConn::Pg(pg) => links.for_share().load(pg)?,
        // SQLite write transactions hold the database's write lock already.
        DbConn::Sqlite(_) => links.load(conn)?,
    };
    Ok(Some(LiveToken {
        id,
        actor,
        expires_at,
        publisher: serde_json::from_str(&publisher)?,
        crates: grants(rows),
    }))
}

/// Revokes (deletes) the token with this hash; true if it existed.
pub fn revoke(conn: &mut DbConn, token_hash: &str) -> QueryResult<bool> {
    let ids = trustpub_tokens::table
        .filter(trustpub_tokens::token_hash.eq(token_hash))
        .select(trustpub_tokens::id);
    diesel::delete(
        trustpub_token_crates::table.filter(trustpub_token_crates::token_id.eq_any(ids)),
    )
    .execute(conn)?;
    Ok(
        diesel::delete(trustpub_tokens::table.filter(trustpub_tokens::token_hash.eq(token_hash)))
            .execute(conn)?
            > 0,
    )
}

/// Revokes every unexpired token minted through the config `config_id` of `provider`, for the
/// config's crate; returns how many tokens lost it.
pub fn revoke_minted_through(
    conn: &mut DbConn,
    provider: ProviderKind,
    config_id: i64,
    by: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let unexpired = trustpub_tokens::table
        .filter(trustpub_tokens::expires_at.gt(now))
        .select(trustpub_tokens::id);
    diesel::update(
        trustpub_token_crates::table
            .filter(trustpub_token_crates::provider.eq(provider.as_str()))
            .filter(trustpub_token_crates::config_id.eq(config_id))
            .filter(trustpub_token_crates::revoked_at.is_null())
            .filter(trustpub_token_crates::token_id.eq_any(unexpired)),
    )
    .set(revocation(by, RevokedBecause::PublisherRemoved, now))
    .execute(conn)
}

/// Revokes the token `token_id` for `crate_id` (an owner's incident response); returns false
/// if it had nothing left to revoke there.
pub fn revoke_for_crate(
    conn: &mut DbConn,
    token_id: i64,
    crate_id: i64,
    by: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let revoked = diesel::update(
        trustpub_token_crates::table
            .filter(trustpub_token_crates::token_id.eq(token_id))
            .filter(trustpub_token_crates::crate_id.eq(crate_id))
            .filter(trustpub_token_crates::revoked_at.is_null()),
    )
    .set(revocation(by, RevokedBecause::OwnerRevoked, now))
    .execute(conn)?;
    Ok(revoked > 0)
}

type RevocationColumns<'a> = (
    diesel::dsl::Eq<trustpub_token_crates::revoked_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<trustpub_token_crates::revoked_by, Option<&'a str>>,
    diesel::dsl::Eq<trustpub_token_crates::revoked_because, Option<&'static str>>,
);

fn revocation(by: &str, because: RevokedBecause, now: NaiveDateTime) -> RevocationColumns<'_> {
    (
        trustpub_token_crates::revoked_at.eq(Some(now)),
        trustpub_token_crates::revoked_by.eq(Some(by)),
        trustpub_token_crates::revoked_because.eq(Some(because.as_str())),
    )
}

/// An unexpired token that may still publish a crate, as its owners see it.
#[derive(Debug, Clone)]
pub struct ExchangedToken {
    pub id: i64,
    pub actor: String,
    /// The CI identity (repository, workflow, run URL…); `None` if the stored record is not
    /// readable.
    pub publisher: Option<TrustpubData>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl ExchangedToken {
    /// The link to the CI run, job or build that exchanged the ID token.
    pub fn run_url(&self) -> Option<&str> {
        self.publisher.as_ref()?.safe_run_url()
    }

    /// Which publisher minted it: `octo-org/widget (release.yml)`.
    pub fn workflow(&self) -> String {
        self.publisher
            .as_ref()
            .map(|p| p.record().summary())
            .unwrap_or_default()
    }
}

/// The unexpired tokens that may still publish `crate_id`, oldest first.
pub fn live_for_crate(
    conn: &mut DbConn,
    crate_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Vec<ExchangedToken>> {
    type Row = (
        i64,
        String,
        String,
        NaiveDateTime,
        NaiveDateTime,
        Option<NaiveDateTime>,
    );
    let rows: Vec<Row> = trustpub_token_crates::table
        .inner_join(trustpub_tokens::table)
        .filter(trustpub_token_crates::crate_id.eq(crate_id))
        .filter(trustpub_tokens::expires_at.gt(now))
        .order(trustpub_tokens::id.asc())
        .select((
            trustpub_tokens::id,
            trustpub_tokens::actor,
            trustpub_tokens::publisher,
            trustpub_tokens::created_at,
            trustpub_tokens::expires_at,
            trustpub_token_crates::revoked_at,
        ))
        .load(conn)?;
    let revoked: Vec<i64> = rows
        .iter()
        .filter(|row| row.5.is_some())
        .map(|row| row.0)
        .collect();
    let mut tokens: Vec<ExchangedToken> = Vec::new();
    for (id, actor, publisher, created_at, expires_at, _) in rows {
        if revoked.contains(&id) || tokens.last().is_some_and(|t| t.id == id) {
            continue;
        }
        tokens.push(ExchangedToken {
            id,
            actor,
            publisher: serde_json::from_str(&publisher)
                .inspect_err(|e| tracing::warn!(error = %e, "unreadable Trusted Publishing record"))
                .ok(),
            created_at,
            expires_at,
        });
    }
    Ok(tokens)
}

/// How many unexpired tokens the config `config_id` of `provider` would revoke if removed.
pub fn live_count_minted_through(
    conn: &mut DbConn,
    provider: ProviderKind,
    config_id: i64,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    trustpub_token_crates::table
        .inner_join(trustpub_tokens::table)
        .filter(trustpub_token_crates::provider.eq(provider.as_str()))
        .filter(trustpub_token_crates::config_id.eq(config_id))
        .filter(trustpub_token_crates::revoked_at.is_null())
        .filter(trustpub_tokens::expires_at.gt(now))
        .count()
        .get_result(conn)
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

/// Deletes expired tokens (with their crate links), and `jti`s whose ID token can no longer
/// verify: a `jti` is deleted once its `expires_at` (`VerifiedIdentity::replay_window_ends_at`)
/// is at or before `now`, which is after the last instant its token is accepted
/// (`trustpub::refused_from`), so no token whose `jti` was forgotten can be presented again.
/// Returns how many rows.
pub fn clean_up(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    let expired = trustpub_tokens::table
        .filter(trustpub_tokens::expires_at.le(now))
        .select(trustpub_tokens::id);
    diesel::delete(
        trustpub_token_crates::table.filter(trustpub_token_crates::token_id.eq_any(expired)),
    )
    .execute(conn)?;
    let tokens = diesel::delete(trustpub_tokens::table.filter(trustpub_tokens::expires_at.le(now)))
        .execute(conn)?;
    let jtis =
        diesel::delete(trustpub_used_jtis::table.filter(trustpub_used_jtis::expires_at.le(now)))
            .execute(conn)?;
    Ok(tokens + jtis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(seconds, 0)
            .unwrap_or_default()
            .naive_utc()
    }

    fn row(crate_id: i64, config_id: i64, revoked: Option<(i64, &str)>) -> LinkRow {
        LinkRow {
            crate_id,
            config_id,
            revoked_at: revoked.map(|(t, _)| at(t)),
            revoked_by: revoked.map(|(_, by)| by.to_owned()),
            revoked_because: revoked.map(|(_, why)| why.to_owned()),
        }
    }

    #[test]
    fn a_crate_is_revoked_when_any_config_it_was_minted_through_is() {
        let grants = grants(vec![
            row(1, 7, None),
            row(1, 5, Some((20, "publisher_removed"))),
            row(2, 9, None),
            row(3, 4, Some((30, "owner_revoked"))),
            row(3, 3, Some((10, "publisher_removed"))),
        ]);
        assert_eq!(grants[&1].config_id, 5);
        assert_eq!(
            grants[&1].revoked.as_ref().map(|r| r.because),
            Some(RevokedBecause::PublisherRemoved)
        );
        assert_eq!(grants[&2].revoked, None);
        // The first revocation is reported.
        assert_eq!(grants[&3].revoked.as_ref().map(|r| r.at), Some(at(10)));
    }
}
