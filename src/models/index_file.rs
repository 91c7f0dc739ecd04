//! The sparse-index file of each crate, rendered inside the transaction that changes its
//! versions, so that every instance serves the same file and a version is in the index
//! exactly when it is committed.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::{Crate, Version};
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

/// Renders the crate's index file from all its versions and stores it (for yank and unyank,
/// which change a line in the middle), and tells the other instances.
pub fn rebuild(conn: &mut DbConn, krate: &Crate, now: NaiveDateTime) -> QueryResult<()> {
    let content = render(conn, krate.id, &krate.name)?;
    let etag = etag_of(&content);
    let updated = diesel::update(index_files::table.find(krate.id))
        .set((
            index_files::content.eq(&content),
            index_files::etag.eq(&etag),
            index_files::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(index_files::table)
            .values((
                index_files::crate_id.eq(krate.id),
                index_files::content.eq(&content),
                index_files::etag.eq(&etag),
                index_files::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    announce(conn, krate)
}

/// Adds a freshly published version's line at the end of the crate's index file, whatever its
/// length: the stored file is extended in the database and the `ETag` is carried on from the
/// previous one (see [`etag_of`]), so no other version is read. `version` must be the crate's
/// newest row, as [`render`] lists versions in the order they were published.
pub fn append(
    conn: &mut DbConn,
    krate: &Crate,
    version: &Version,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let stored: Option<String> = index_files::table
        .find(krate.id)
        .select(index_files::etag)
        .first(conn)
        .optional()?;
    // A crate's first file, or one whose ETag predates the chained form, is rendered whole.
    let Some(previous) = stored.as_deref().and_then(chain_state) else {
        return rebuild(conn, krate, now);
    };
    let mut line = index_line(&krate.name, version)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?
        .to_json();
    line.push('\n');
    let etag = format_etag(chain(previous, &line));
    diesel::update(index_files::table.find(krate.id))
        .set((
            index_files::content.eq(index_files::content.concat(&line)),
            index_files::etag.eq(&etag),
            index_files::updated_at.eq(now),
        ))
        .execute(conn)?;
    announce(conn, krate)
}

/// Lets every instance know, at commit, that the crate's index file changed (see
/// [`crate::index_cache::watcher`]).
fn announce(conn: &mut DbConn, krate: &Crate) -> QueryResult<()> {
    use diesel::sql_types::{BigInt, Text};
    match conn {
        DbConn::Pg(pg) => diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(crate::index_cache::watcher::CHANNEL)
            .bind::<Text, _>(&krate.canonical_name)
            .execute(pg)?,
        DbConn::Sqlite(sqlite) => diesel::sql_query(
            "UPDATE index_files SET change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM index_files) WHERE crate_id = ?",
        )
        .bind::<BigInt, _>(krate.id)
        .execute(sqlite)?,
    };
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

/// The `ETag` of an index file with this content: a hash chained over its lines, so that
/// appending a line needs only the previous `ETag` and the line (`"l-` and 32 hex digits).
pub fn etag_of(content: &str) -> String {
    format_etag(content.split_inclusive('\n').fold([0; 16], chain))
}

/// The `ETag` index files had before it was chained (a hash of the whole file); such an
/// `ETag` stays valid until the file next changes.
pub fn legacy_etag_of(content: &str) -> String {
    format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(content.as_bytes()))[..32]
    )
}

fn chain(state: [u8; 16], line: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(state)
        .chain_update(line.as_bytes())
        .finalize();
    let mut next = [0; 16];
    next.copy_from_slice(&digest[..16]);
    next
}

fn format_etag(state: [u8; 16]) -> String {
    format!("\"l-{}\"", hex::encode(state))
}

/// The chain state in an `ETag` made by [`etag_of`]; `None` for any other `ETag`.
fn chain_state(etag: &str) -> Option<[u8; 16]> {
    let hex_digits = etag.strip_prefix("\"l-")?.strip_suffix('"')?;
    let mut state = [0; 16];
    hex::decode_to_slice(hex_digits, &mut state).ok()?;
    Some(state)
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

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn the_etag_of_a_file_is_carried_on_line_by_line() {
        let one = "{\"vers\":\"1.0.0\"}\n";
        let two = "{\"vers\":\"1.0.1\"}\n";
        let whole = etag_of(&format!("{one}{two}"));
        let appended = format_etag(chain(chain_state(&etag_of(one)).unwrap(), two));
        assert_eq!(whole, appended);
        assert_ne!(etag_of(one), whole);
        assert_ne!(etag_of(&format!("{two}{one}")), whole, "order matters");
        assert!(whole.starts_with("\"l-") && whole.len() == 36, "{whole}");
    }

    #[test]
    fn legacy_etags_are_not_taken_for_chained_ones() {
        assert_eq!(chain_state(&legacy_etag_of("x\n")), None);
        assert_eq!(chain_state("\"l-zz\""), None);
        assert!(chain_state(&etag_of("")).is_some());
    }
}
