use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::{crate_owners, crates};

#[derive(Queryable, Selectable, Identifiable, Debug, Clone)]
#[diesel(table_name = crates)]
pub struct Crate {
    pub id: i64,
    pub name: String,
    pub canonical_name: String,
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub documentation: Option<String>,
    pub repository: Option<String>,
    pub keywords: String,
    pub categories: String,
    pub trustpub_only: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// See [`crate::models::version::max_version`]; `None` until a publish, yank or unyank
    /// records it.
    pub max_version: Option<String>,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = crates)]
pub struct NewCrate<'a> {
    pub name: &'a str,
    pub canonical_name: &'a str,
    pub description: Option<&'a str>,
    pub homepage: Option<&'a str>,
    pub documentation: Option<&'a str>,
    pub repository: Option<&'a str>,
    pub keywords: String,
    pub categories: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl NewCrate<'_> {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<Crate> {
        diesel::insert_into(crates::table)
            .values(self)
            .execute(conn)?;
        Crate::by_canonical(conn, self.canonical_name)?.ok_or(diesel::result::Error::NotFound)
    }
}

/// Canonical form of a crate name: lower case, `-` as `_`.
pub fn canonical_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// A crate looked up by a name that names none, or a failed query.
#[derive(Debug, thiserror::Error)]
pub enum FindCrateError {
    #[error("crate `{0}` does not exist")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// The crate named `name` (any spelling), or [`FindCrateError::NotFound`] naming it as asked.
pub fn find_crate(conn: &mut DbConn, name: &str) -> Result<Crate, FindCrateError> {
    Crate::by_name(conn, name)?.ok_or_else(|| FindCrateError::NotFound(name.to_owned()))
}

/// One page of search results: each crate with its `max_version`, and the total count.
pub type SearchPage = (Vec<(Crate, Option<String>)>, i64);

impl Crate {
    /// Locks the crate's row until the transaction ends (PostgreSQL `FOR NO KEY UPDATE`, which
    /// leaves foreign-key checks of other transactions alone), so that transactions which
    /// check the crate's trusted publishers before adding one (the limit, duplicates) take
    /// turns. SQLite's write transactions take turns anyway.
    pub fn lock(conn: &mut DbConn, id: i64) -> QueryResult<()> {
        if let DbConn::Pg(pg) = conn {
            crates::table
                .find(id)
                .select(crates::id)
                .for_no_key_update()
                .first::<i64>(pg)?;
        }
        Ok(())
    }

    pub fn set_max_version(conn: &mut DbConn, id: i64, max: Option<&str>) -> QueryResult<()> {
        diesel::update(crates::table.find(id))
            .set(crates::max_version.eq(max))
            .execute(conn)?;
        Ok(())
    }

    pub fn by_canonical(conn: &mut DbConn, canonical: &str) -> QueryResult<Option<Crate>> {
        crates::table
            .filter(crates::canonical_name.eq(canonical))
            .select(Crate::as_select())
            .first(conn)
            .optional()
    }

    /// Finds a crate by any spelling of its name (case, `-`/`_`).
    pub fn by_name(conn: &mut DbConn, name: &str) -> QueryResult<Option<Crate>> {
        Self::by_canonical(conn, &canonical_name(name))
    }

    pub fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<Crate> {
        crates::table
            .find(id)
            .select(Crate::as_select())
            .first(conn)
    }

    pub fn is_owner(conn: &mut DbConn, crate_id: i64, user_id: i64) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            crate_owners::table
                .filter(crate_owners::crate_id.eq(crate_id))
                .filter(crate_owners::user_id.eq(user_id)),
        ))
        .get_result(conn)
    }

    pub fn set_trustpub_only(conn: &mut DbConn, id: i64, value: bool) -> QueryResult<()> {
        diesel::update(crates::table.find(id))
            .set(crates::trustpub_only.eq(value))
            .execute(conn)?;
        Ok(())
    }

    /// Crates whose name contains `query` (on canonical names) or whose description does,
    /// exact matches first, then by name. Returns one page and the total.
    pub fn search(
        conn: &mut DbConn,
        query: &str,
        offset: i64,
        limit: i64,
    ) -> QueryResult<SearchPage> {
        let canonical = canonical_name(query.trim());
        let escaped = canonical
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let text_pattern = format!(
            "%{}%",
            query
                .trim()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let filter = crates::canonical_name
            .like(pattern.clone())
            .escape('\\')
            .or(crates::description.like(text_pattern.clone()).escape('\\'));
        let total: i64 = crates::table.filter(filter).count().get_result(conn)?;
        let filter = crates::canonical_name
            .like(pattern)
            .escape('\\')
            .or(crates::description.like(text_pattern).escape('\\'));
        let page: Vec<Crate> = crates::table
            .filter(filter)
            .order((
                crates::canonical_name.ne(&canonical),
                crates::canonical_name.asc(),
            ))
            .offset(offset)
            .limit(limit)
            .select(Crate::as_select())
            .load(conn)?;
        let mut out = Vec::with_capacity(page.len());
        for krate in page {
            let max = super::version::max_version(conn, krate.id)?;
            out.push((krate, max));
        }
        Ok((out, total))
    }

    pub fn touch(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QueryResult<()> {
        diesel::update(crates::table.find(id))
            .set(crates::updated_at.eq(now))
            .execute(conn)?;
        Ok(())
    }
}
