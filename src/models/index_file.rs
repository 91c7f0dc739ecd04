//! The sparse-index file of each crate, rendered inside the transaction that changes its
//! versions, so that every instance serves the same file and a version is in the index
//! exactly when it is committed.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::Version;
use crate::db::DbConn;
use crate::registry::index::{FeatureMap, IndexDependency, IndexLine, render_index_file};
use crate::schema::{crates, index_files};

#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = index_files)]
pub struct IndexFile {
    pub crate_id: i64,
    pub content: String,
    pub etag: String,
    pub updated_at: NaiveDateTime,
}

impl IndexFile {
    /// The crate's name and its index file's ETag, without the file.
    pub fn etag_by_canonical(
        conn: &mut DbConn,
        canonical: &str,
    ) -> QueryResult<Option<(String, String)>> {
        index_files::table
            .inner_join(crates::table)
            .filter(crates::canonical_name.eq(canonical))
            .select((crates::name, index_files::etag))
            .first(conn)
            .optional()
    }

    /// The index file of the crate whose canonical name is `canonical`, with the crate's name.
    pub fn by_canonical(
        conn: &mut DbConn,
        canonical: &str,
    ) -> QueryResult<Option<(String, IndexFile)>> {
        index_files::table
            .inner_join(crates::table)
            .filter(crates::canonical_name.eq(canonical))
            .select((crates::name, IndexFile::as_select()))
            .first(conn)
            .optional()
    }
}

/// Renders the crate's index file from its versions and stores it.
pub fn rebuild(
    conn: &mut DbConn,
    crate_id: i64,
    crate_name: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let content = render(conn, crate_id, crate_name)?;
    let etag = etag_of(&content);
    let updated = diesel::update(index_files::table.find(crate_id))
        .set((
            index_files::content.eq(&content),
            index_files::etag.eq(&etag),
            index_files::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(index_files::table)
            .values((
                index_files::crate_id.eq(crate_id),
                index_files::content.eq(&content),
                index_files::etag.eq(&etag),
                index_files::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The crate's index file as its versions in the database make it (what [`rebuild`] stores).
pub fn render(conn: &mut DbConn, crate_id: i64, crate_name: &str) -> QueryResult<String> {
    let versions = Version::for_crate(conn, crate_id)?;
    let lines = versions
        .iter()
        .map(|v| index_line(crate_name, v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    Ok(render_index_file(&lines))
}

/// The `ETag` of an index file with this content.
pub fn etag_of(content: &str) -> String {
    format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(content.as_bytes()))[..32]
    )
}

fn index_line(crate_name: &str, v: &Version) -> Result<IndexLine, serde_json::Error> {
    use serde::de::Error as _;
    let deps: Vec<IndexDependency> = serde_json::from_str(&v.deps)?;
    let features2: FeatureMap = serde_json::from_str(&v.features2)?;
    Ok(IndexLine {
        name: crate_name.to_owned(),
        vers: semver::Version::parse(&v.num).map_err(serde_json::Error::custom)?,
        deps,
        cksum: v.checksum.clone(),
        features: serde_json::from_str(&v.features)?,
        v: if features2.is_empty() { 1 } else { 2 },
        features2,
        yanked: v.yanked,
        links: v.links.clone(),
        rust_version: v.rust_version.clone(),
        pubtime: Some(v.created_at.and_utc()),
    })
}
