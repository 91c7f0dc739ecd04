use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::api_tokens;
use crate::tokens::{self, CrateScope, EndpointScope};

#[derive(Queryable, Selectable, Identifiable, Debug, Clone)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    #[diesel(deserialize_as = String)]
    pub token_hash: Redacted,
    pub endpoint_scopes: Option<String>,
    pub crate_scopes: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

/// A stored hash that is never printed.
#[derive(Clone)]
pub struct Redacted(#[expect(dead_code, reason = "kept only to be never shown")] String);

impl From<String> for Redacted {
    fn from(value: String) -> Self {
        Redacted(value)
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Insertable, Debug)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub endpoint_scopes: Option<String>,
    pub crate_scopes: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

impl NewApiToken<'_> {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<ApiToken> {
        diesel::insert_into(api_tokens::table)
            .values(self)
            .execute(conn)?;
        api_tokens::table
            .filter(api_tokens::token_hash.eq(self.token_hash))
            .select(ApiToken::as_select())
            .first(conn)
    }
}

impl ApiToken {
    pub fn by_hash(conn: &mut DbConn, hash: &str) -> QueryResult<Option<ApiToken>> {
        api_tokens::table
            .filter(api_tokens::token_hash.eq(hash))
            .select(ApiToken::as_select())
            .first(conn)
            .optional()
    }

    pub fn for_user(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<ApiToken>> {
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .order(api_tokens::created_at.desc())
            .select(ApiToken::as_select())
            .load(conn)
    }

    pub fn touch(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QueryResult<()> {
        diesel::update(api_tokens::table.find(id))
            .set(api_tokens::last_used_at.eq(now))
            .execute(conn)?;
        Ok(())
    }

    /// Revokes the token; returns false if there was no live token with that id.
    pub fn revoke(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QueryResult<bool> {
        let updated = diesel::update(
            api_tokens::table
                .find(id)
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(now))
        .execute(conn)?;
        Ok(updated == 1)
    }

    pub fn is_live(&self, now: NaiveDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| exp > now)
    }

    pub fn endpoint_scopes(&self) -> Option<Vec<EndpointScope>> {
        tokens::parse_endpoint_scopes(self.endpoint_scopes.as_deref())
    }

    pub fn crate_scopes(&self) -> Option<Vec<CrateScope>> {
        tokens::parse_crate_scopes(self.crate_scopes.as_deref())
    }
}
