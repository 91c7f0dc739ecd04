use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::versions;

#[derive(Queryable, Selectable, Identifiable, Debug, Clone)]
#[diesel(table_name = versions)]
pub struct Version {
    pub id: i64,
    pub crate_id: i64,
    pub num: String,
    pub num_no_build: String,
    pub checksum: String,
    pub crate_size: i64,
    pub yanked: bool,
    pub license: Option<String>,
    pub description: Option<String>,
    pub rust_version: Option<String>,
    pub links: Option<String>,
    /// JSON object: feature → values (the index's `features`).
    pub features: String,
    /// JSON object: features using `dep:` / `?/` syntax (the index's `features2`).
    pub features2: String,
    /// JSON array of index dependencies.
    pub deps: String,
    /// The user's login, or for Trusted Publishing the CI actor.
    pub published_by: String,
    pub published_by_user_id: Option<i64>,
    /// JSON with the Trusted Publishing details, for versions published that way.
    pub trustpub: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = versions)]
pub struct NewVersion<'a> {
    pub crate_id: i64,
    pub num: &'a str,
    pub num_no_build: &'a str,
    pub checksum: &'a str,
    pub crate_size: i64,
    pub license: Option<&'a str>,
    pub description: Option<&'a str>,
    pub rust_version: Option<&'a str>,
    pub links: Option<&'a str>,
    pub features: &'a str,
    pub features2: &'a str,
    pub deps: &'a str,
    pub readme: Option<&'a str>,
    pub published_by: &'a str,
    pub published_by_user_id: Option<i64>,
    pub trustpub: Option<&'a str>,
    pub created_at: NaiveDateTime,
}

impl NewVersion<'_> {
    /// Inserts the version. A unique violation means this version (ignoring build metadata)
    /// exists already; the caller turns it into a clear error.
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<Version> {
        diesel::insert_into(versions::table)
            .values(self)
            .execute(conn)?;
        versions::table
            .filter(versions::crate_id.eq(self.crate_id))
            .filter(versions::num_no_build.eq(self.num_no_build))
            .select(Version::as_select())
            .first(conn)
    }
}

impl Version {
    /// Every version of a crate, oldest first.
    pub fn for_crate(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<Version>> {
        versions::table
            .filter(versions::crate_id.eq(crate_id))
            .order(versions::id.asc())
            .select(Version::as_select())
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, crate_id: i64, num: &str) -> QueryResult<Option<Version>> {
        versions::table
            .filter(versions::crate_id.eq(crate_id))
            .filter(versions::num.eq(num))
            .select(Version::as_select())
            .first(conn)
            .optional()
    }

    /// The version with the same number ignoring build metadata, if any.
    pub fn find_no_build(
        conn: &mut DbConn,
        crate_id: i64,
        num_no_build: &str,
    ) -> QueryResult<Option<Version>> {
        versions::table
            .filter(versions::crate_id.eq(crate_id))
            .filter(versions::num_no_build.eq(num_no_build))
            .select(Version::as_select())
            .first(conn)
            .optional()
    }

    pub fn set_yanked(conn: &mut DbConn, id: i64, yanked: bool) -> QueryResult<()> {
        diesel::update(versions::table.find(id))
            .set(versions::yanked.eq(yanked))
            .execute(conn)?;
        Ok(())
    }

    pub fn readme(conn: &mut DbConn, id: i64) -> QueryResult<Option<String>> {
        versions::table
            .find(id)
            .select(versions::readme)
            .first(conn)
    }

    pub fn semver(&self) -> Option<semver::Version> {
        semver::Version::parse(&self.num).ok()
    }

    /// Recently published versions across all crates, newest first.
    pub fn recent(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<Version>> {
        versions::table
            .order(versions::id.desc())
            .limit(limit)
            .select(Version::as_select())
            .load(conn)
    }
}

/// The highest non-yanked version of a crate (highest of all if every one is yanked), as
/// crates.io's `max_version` is.
pub fn max_version(conn: &mut DbConn, crate_id: i64) -> QueryResult<Option<String>> {
    let nums: Vec<(String, bool)> = versions::table
        .filter(versions::crate_id.eq(crate_id))
        .select((versions::num, versions::yanked))
        .load(conn)?;
    Ok(pick_max_version(&nums))
}

pub fn pick_max_version(nums: &[(String, bool)]) -> Option<String> {
    let parsed = || {
        nums.iter()
            .filter_map(|(n, yanked)| semver::Version::parse(n).ok().map(|v| (v, *yanked)))
    };
    parsed()
        .filter(|(_, yanked)| !yanked)
        .map(|(v, _)| v)
        .max()
        .or_else(|| parsed().map(|(v, _)| v).max())
        .map(|v| v.to_string())
}
