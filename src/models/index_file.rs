//! The sparse-index file of each crate, rendered inside the transaction that changes its
//! versions, so that every instance serves the same file and a version is in the index
//! exactly when it is committed.
//!
//! A file is stored in chunks (`index_chunks`) of consecutive lines, each at most
//! [`CHUNK_BYTES`] long unless a single line is longer: a publish appends its line to the last
//! chunk or starts a new one, so what it writes does not grow with the crate's history, and a
//! yank or unyank renders only the chunk that holds its version's line. The `ETag` (kept in
//! `index_files`) is a hash over the chunks' digests, each a hash chained over the chunk's
//! lines, so an append needs only the last chunk's digest and the others' digests.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::{Crate, Version};
use crate::db::DbConn;
use crate::registry::index::{FeatureMap, IndexDependency, IndexLine};
use crate::schema::{crates, index_chunks, index_files, versions};

/// The size a chunk may grow to by appends; a line that does not fit starts the next chunk.
pub const CHUNK_BYTES: usize = 16 * 1024;

/// An index file as stored: its `ETag` and its content, the chunks joined.
#[derive(Debug)]
pub struct IndexFile {
    pub content: String,
    pub etag: String,
}

impl IndexFile {
    /// The index file of the crate whose canonical name is `canonical`, with the crate's name.
    /// One statement, so the `ETag` and the chunks are read from the same snapshot.
    pub fn by_canonical(
        conn: &mut DbConn,
        canonical: &str,
    ) -> QueryResult<Option<(String, IndexFile)>> {
        let rows: Vec<(String, String, String)> = crates::table
            .inner_join(index_files::table)
            .inner_join(index_chunks::table)
            .filter(crates::canonical_name.eq(canonical))
            .order(index_chunks::seq.asc())
            .select((crates::name, index_files::etag, index_chunks::content))
            .load(conn)?;
        let mut rows = rows.into_iter();
        let Some((name, etag, mut content)) = rows.next() else {
            return Ok(None);
        };
        for (_, _, chunk) in rows {
            content.push_str(&chunk);
        }
        Ok(Some((name, IndexFile { content, etag })))
    }
}

/// A crate's stored file as `wharf admin check` compares it: the `ETag` and the chunks in order.
#[derive(Debug)]
pub struct StoredChunks {
    pub etag: String,
    pub chunks: Vec<StoredChunk>,
}

#[derive(Queryable, Debug)]
pub struct StoredChunk {
    pub first_version_id: i64,
    pub last_version_id: i64,
    pub digest: String,
    pub content: String,
}

impl StoredChunks {
    /// The whole file.
    pub fn content(&self) -> String {
        self.chunks.iter().map(|c| c.content.as_str()).collect()
    }

    /// Whether the `ETag` is the one the content makes: chunked (from the chunks as stored), or,
    /// for a file carried over from before chunks and not changed since, one of the earlier forms.
    pub fn etag_matches(&self) -> bool {
        let content = self.content();
        self.etag == etag_of_chunks(self.chunks.iter().map(|c| c.content.as_str()))
            || self.etag == etag_of(&content)
            || self.etag == legacy_etag_of(&content)
    }

    /// Whether each chunk holds exactly the lines of its versions (`lines`: the crate's
    /// versions' ids and lines in order) and has the right digest; a chunk carried over from
    /// before chunks (empty digest) must be the whole file. `None` when they do, else what is
    /// wrong.
    pub fn chunk_problem(&self, lines: &[(i64, String)]) -> Option<String> {
        let carried = self.chunks.iter().any(|c| c.digest.is_empty());
        if carried {
            return (self.chunks.len() != 1).then(|| {
                "a chunk carried over from before chunked files is not the only one".to_owned()
            });
        }
        let mut rest = lines;
        for (seq, chunk) in self.chunks.iter().enumerate() {
            let count = rest
                .iter()
                .take_while(|(id, _)| *id >= chunk.first_version_id && *id <= chunk.last_version_id)
                .count();
            let (own, after) = rest.split_at(count);
            rest = after;
            let starts_right = own
                .first()
                .is_some_and(|(id, _)| *id == chunk.first_version_id);
            let ends_right = own
                .last()
                .is_some_and(|(id, _)| *id == chunk.last_version_id);
            let rendered: String = own.iter().map(|(_, line)| line.as_str()).collect();
            if !starts_right || !ends_right || rendered != chunk.content {
                return Some(format!(
                    "chunk {seq} does not hold the lines of versions {} to {}",
                    chunk.first_version_id, chunk.last_version_id
                ));
            }
            if chunk.digest != hex::encode(digest_of(&chunk.content)) {
                return Some(format!("chunk {seq} has a wrong digest"));
            }
        }
        None
    }
}

/// The crate's stored file, `None` when it has none.
pub fn stored(conn: &mut DbConn, crate_id: i64) -> QueryResult<Option<StoredChunks>> {
    let Some(etag) = index_files::table
        .find(crate_id)
        .select(index_files::etag)
        .first::<String>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let chunks = index_chunks::table
        .filter(index_chunks::crate_id.eq(crate_id))
        .order(index_chunks::seq.asc())
        .select((
            index_chunks::first_version_id,
            index_chunks::last_version_id,
            index_chunks::digest,
            index_chunks::content,
        ))
        .load(conn)?;
    Ok(Some(StoredChunks { etag, chunks }))
}

/// Renders the crate's index file from all its versions and stores it in fresh chunks (for a
/// crate's first file, and for one carried over from before chunks), and tells the other
/// instances.
pub fn rebuild(conn: &mut DbConn, krate: &Crate, now: NaiveDateTime) -> QueryResult<()> {
    let lines = render_lines(conn, krate.id, &krate.name, None)?;
    let mut chunks: Vec<NewChunk> = Vec::new();
    for (id, line) in lines {
        match chunks.last_mut() {
            Some(chunk) if chunk.content.len() + line.len() <= CHUNK_BYTES => {
                chunk.last_version_id = id;
                chunk.content.push_str(&line);
            }
            _ => chunks.push(NewChunk {
                first_version_id: id,
                last_version_id: id,
                content: line,
            }),
        }
    }
    let digests: Vec<[u8; 16]> = chunks.iter().map(|c| digest_of(&c.content)).collect();
    diesel::delete(index_chunks::table.filter(index_chunks::crate_id.eq(krate.id)))
        .execute(conn)?;
    // One statement per chunk (few: a 10,000-version file has about 130); a rebuild is rare.
    for (seq, (chunk, digest)) in chunks.iter().zip(&digests).enumerate() {
        diesel::insert_into(index_chunks::table)
            .values((
                index_chunks::crate_id.eq(krate.id),
                index_chunks::seq.eq(i32::try_from(seq).unwrap_or(i32::MAX)),
                index_chunks::first_version_id.eq(chunk.first_version_id),
                index_chunks::last_version_id.eq(chunk.last_version_id),
                index_chunks::size.eq(size_of(&chunk.content)),
                index_chunks::digest.eq(hex::encode(digest)),
                index_chunks::content.eq(&chunk.content),
            ))
            .execute(conn)?;
    }
    store_etag(conn, krate, &combine(digests), now)
}

struct NewChunk {
    first_version_id: i64,
    last_version_id: i64,
    content: String,
}

/// Renders again the chunk holding the line of `version_id` (after a yank or unyank changed
/// it), and the `ETag`; a file carried over from before chunks is rebuilt whole.
pub fn rerender(
    conn: &mut DbConn,
    krate: &Crate,
    version_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let heads = chunk_heads(conn, krate.id)?;
    let Some(head) = heads.iter().find(|h| {
        !h.digest.is_empty() && h.first_version_id <= version_id && version_id <= h.last_version_id
    }) else {
        return rebuild(conn, krate, now);
    };
    if heads.iter().any(|h| h.digest.is_empty()) {
        return rebuild(conn, krate, now);
    }
    let content: String = render_lines(
        conn,
        krate.id,
        &krate.name,
        Some((head.first_version_id, head.last_version_id)),
    )?
    .into_iter()
    .map(|(_, line)| line)
    .collect();
    let digest = digest_of(&content);
    diesel::update(index_chunks::table.find((krate.id, head.seq)))
        .set((
            index_chunks::size.eq(size_of(&content)),
            index_chunks::digest.eq(hex::encode(digest)),
            index_chunks::content.eq(&content),
        ))
        .execute(conn)?;
    let digests = heads
        .iter()
        .map(|h| {
            if h.seq == head.seq {
                Some(digest)
            } else {
                parse_digest(&h.digest)
            }
        })
        .collect::<Option<Vec<_>>>();
    match digests {
        Some(digests) => store_etag(conn, krate, &combine(digests), now),
        None => rebuild(conn, krate, now),
    }
}

/// Adds a freshly published version's line at the end of the crate's index file, whatever its
/// length: the line is appended to the last chunk, or starts a new one when the last is full,
/// and the `ETag` is made from the chunks' digests (see [`combine`]), so neither another
/// version nor another chunk's content is read. `version` must be the crate's newest row, as
/// files list versions in the order they were published.
pub fn append(
    conn: &mut DbConn,
    krate: &Crate,
    version: &Version,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let heads = chunk_heads(conn, krate.id)?;
    let digests = heads
        .iter()
        .map(|h| parse_digest(&h.digest))
        .collect::<Option<Vec<_>>>();
    // A crate's first file, or one carried over from before chunks, is rendered whole.
    let (Some(last), Some(mut digests)) = (heads.last(), digests) else {
        return rebuild(conn, krate, now);
    };
    if version.id <= last.last_version_id {
        return rebuild(conn, krate, now);
    }
    let mut line = index_line(&krate.name, version)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?
        .to_json();
    line.push('\n');
    let fits = usize::try_from(last.size)
        .unwrap_or(usize::MAX)
        .saturating_add(line.len())
        <= CHUNK_BYTES;
    if fits {
        let digest = chain(digests.pop().unwrap_or_default(), line.as_bytes());
        digests.push(digest);
        diesel::update(index_chunks::table.find((krate.id, last.seq)))
            .set((
                index_chunks::last_version_id.eq(version.id),
                index_chunks::size.eq(index_chunks::size + size_of(&line)),
                index_chunks::digest.eq(hex::encode(digest)),
                index_chunks::content.eq(index_chunks::content.concat(&line)),
            ))
            .execute(conn)?;
    } else {
        let digest = digest_of(&line);
        digests.push(digest);
        diesel::insert_into(index_chunks::table)
            .values((
                index_chunks::crate_id.eq(krate.id),
                index_chunks::seq.eq(last.seq.saturating_add(1)),
                index_chunks::first_version_id.eq(version.id),
                index_chunks::last_version_id.eq(version.id),
                index_chunks::size.eq(size_of(&line)),
                index_chunks::digest.eq(hex::encode(digest)),
                index_chunks::content.eq(&line),
            ))
            .execute(conn)?;
    }
    store_etag(conn, krate, &combine(digests), now)
}

/// What a publish or yank reads of the chunks: everything but the content.
#[derive(Queryable, Debug)]
struct ChunkHead {
    seq: i32,
    first_version_id: i64,
    last_version_id: i64,
    size: i64,
    digest: String,
}

fn chunk_heads(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<ChunkHead>> {
    index_chunks::table
        .filter(index_chunks::crate_id.eq(crate_id))
        .order(index_chunks::seq.asc())
        .select((
            index_chunks::seq,
            index_chunks::first_version_id,
            index_chunks::last_version_id,
            index_chunks::size,
            index_chunks::digest,
        ))
        .load(conn)
}

/// Stores the file's `ETag` (creating the crate's row the first time) and tells the other
/// instances.
fn store_etag(conn: &mut DbConn, krate: &Crate, etag: &str, now: NaiveDateTime) -> QueryResult<()> {
    let updated = diesel::update(index_files::table.find(krate.id))
        .set((index_files::etag.eq(etag), index_files::updated_at.eq(now)))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(index_files::table)
            .values((
                index_files::crate_id.eq(krate.id),
                index_files::etag.eq(etag),
                index_files::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    announce(conn, krate)
}

fn size_of(text: &str) -> i64 {
    i64::try_from(text.len()).unwrap_or(i64::MAX)
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
    Ok(render_lines(conn, crate_id, crate_name, None)?
        .into_iter()
        .map(|(_, line)| line)
        .collect())
}

/// The lines (`\n` included) of the crate's versions, with their ids, in the order they were
/// published; only those with ids in `range` (inclusive) when given.
pub fn render_lines(
    conn: &mut DbConn,
    crate_id: i64,
    crate_name: &str,
    range: Option<(i64, i64)>,
) -> QueryResult<Vec<(i64, String)>> {
    let versions = match range {
        None => Version::for_crate(conn, crate_id)?,
        Some((first, last)) => versions::table
            .filter(versions::crate_id.eq(crate_id))
            .filter(versions::id.between(first, last))
            .order(versions::id.asc())
            .select(Version::as_select())
            .load(conn)?,
    };
    versions
        .iter()
        .map(|v| {
            let mut line = index_line(crate_name, v)?.to_json();
            line.push('\n');
            Ok((v.id, line))
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
}

/// The `ETag` of an index file stored in these chunks (`"c-` and 32 hex digits): a hash over
/// the chunks' digests, see [`combine`].
pub fn etag_of_chunks<'a>(chunks: impl IntoIterator<Item = &'a str>) -> String {
    combine(chunks.into_iter().map(digest_of))
}

/// The `ETag` of a file from its chunks' digests, in order.
fn combine(digests: impl IntoIterator<Item = [u8; 16]>) -> String {
    let state = digests
        .into_iter()
        .fold([0; 16], |state, digest| chain(state, &digest));
    format!("\"c-{}\"", hex::encode(state))
}

/// A chunk's digest: a hash chained over its lines, so appending a line needs only the
/// previous digest and the line.
fn digest_of(chunk: &str) -> [u8; 16] {
    chunk
        .split_inclusive('\n')
        .fold([0; 16], |state, line| chain(state, line.as_bytes()))
}

fn parse_digest(hex_digits: &str) -> Option<[u8; 16]> {
    let mut digest = [0; 16];
    hex::decode_to_slice(hex_digits, &mut digest).ok()?;
    Some(digest)
}

/// The `ETag` files had before they were stored in chunks (`"l-…"`, a hash chained over the
/// whole file's lines); such an `ETag` stays valid until the file next changes.
pub fn etag_of(content: &str) -> String {
    format!("\"l-{}\"", hex::encode(digest_of(content)))
}

/// The `ETag` index files had before it was chained (a hash of the whole file); such an
/// `ETag` stays valid until the file next changes.
pub fn legacy_etag_of(content: &str) -> String {
    format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(content.as_bytes()))[..32]
    )
}

fn chain(state: [u8; 16], bytes: &[u8]) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(state)
        .chain_update(bytes)
        .finalize();
    let mut next = [0; 16];
    next.copy_from_slice(&digest[..16]);
    next
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
    fn a_chunk_digest_is_carried_on_line_by_line() {
        let one = "{\"vers\":\"1.0.0\"}\n";
        let two = "{\"vers\":\"1.0.1\"}\n";
        let whole = digest_of(&format!("{one}{two}"));
        assert_eq!(chain(digest_of(one), two.as_bytes()), whole);
        assert_ne!(digest_of(one), whole);
        assert_ne!(digest_of(&format!("{two}{one}")), whole, "order matters");
    }

    #[test]
    fn the_etag_depends_on_every_chunk_and_their_order() {
        let (a, b) = ("{\"vers\":\"1.0.0\"}\n", "{\"vers\":\"1.0.1\"}\n");
        let etag = etag_of_chunks([a, b]);
        assert!(etag.starts_with("\"c-") && etag.len() == 36, "{etag}");
        assert_eq!(etag, combine([digest_of(a), digest_of(b)]));
        assert_ne!(etag, etag_of_chunks([b, a]));
        assert_ne!(etag, etag_of_chunks([a]));
        assert_ne!(etag, etag_of(&format!("{a}{b}")), "the forms differ");
        assert_ne!(etag_of(a), legacy_etag_of(a));
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = digest_of("x\n");
        assert_eq!(parse_digest(&hex::encode(digest)), Some(digest));
        assert_eq!(parse_digest(""), None);
        assert_eq!(parse_digest("zz"), None);
    }
}
