//! `wharf admin check`: whether the storage and the index agree with the database — after a
//! restore, a migration between storages, or whenever an operator wants to know.
//!
//! Every version's `.crate` file must exist in storage with the size and SHA-256 the database
//! recorded at publish (the `cksum` cargo verifies); every crate's index file must be exactly
//! what its versions render to, with a matching `ETag`. Versions and crates are read in
//! batches and each file is hashed as it streams, so memory stays bounded however large the
//! registry is; a few files are read at once.

use std::fmt;

use diesel::prelude::*;
use futures_util::{StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};

use crate::db::Database;
use crate::errors::DisplayChain;
use crate::models::index_file;
use crate::schema::{crates, versions};
use crate::storage::{Storage, StorageError, crate_key};

/// Rows read from the database at once.
const BATCH: i64 = 200;
/// Files read from storage at once.
const PARALLEL_READS: usize = 8;

/// One thing that is wrong, about one version or one crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `name version` or the crate's name.
    pub subject: String,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.detail)
    }
}

/// What was checked, and how many problems were found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub versions: u64,
    pub index_files: u64,
    pub problems: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {} version(s) and {} crate index file(s): ",
            self.versions, self.index_files
        )?;
        match self.problems {
            0 => f.write_str("no problems"),
            1 => f.write_str("1 problem"),
            n => write!(f, "{n} problems"),
        }
    }
}

/// Checks everything, reporting each problem to `report` as it is found. An error means the
/// check could not finish (the database or the storage cannot be reached), not that it found
/// problems.
pub async fn run(
    db: &Database,
    storage: &dyn Storage,
    mut report: impl FnMut(&Problem),
) -> anyhow::Result<Summary> {
    if let Err(error) = storage.check().await {
        anyhow::bail!(
            "the crate storage cannot be reached, so nothing was checked: {}",
            DisplayChain(&error)
        );
    }
    let mut summary = Summary::default();

    let mut after = 0;
    loop {
        let batch = db
            .run(move |conn| Ok(stored_versions(conn, after)?))
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the versions: {e:?}"))?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let results: Vec<Option<Problem>> = stream::iter(batch)
            .map(|version| check_file(storage, version))
            .buffered(PARALLEL_READS)
            .try_collect()
            .await?;
        for result in results {
            summary.versions += 1;
            if let Some(problem) = result {
                summary.problems += 1;
                report(&problem);
            }
        }
    }

    let mut after = 0;
    loop {
        let (last, checked, problems) = db
            .run(move |conn| Ok(check_index_files(conn, after)?))
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the index files: {e:?}"))?;
        let Some(last) = last else { break };
        after = last;
        summary.index_files += checked;
        for problem in &problems {
            summary.problems += 1;
            report(problem);
        }
    }
    Ok(summary)
}

#[derive(Debug)]
struct StoredVersion {
    id: i64,
    name: String,
    canonical_name: String,
    num: String,
    checksum: String,
    crate_size: i64,
}

fn stored_versions(conn: &mut crate::db::DbConn, after: i64) -> QueryResult<Vec<StoredVersion>> {
    let rows: Vec<(i64, String, String, String, String, i64)> = versions::table
        .inner_join(crates::table)
        .filter(versions::id.gt(after))
        .order(versions::id.asc())
        .limit(BATCH)
        .select((
            versions::id,
            crates::name,
            crates::canonical_name,
            versions::num,
            versions::checksum,
            versions::crate_size,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, name, canonical_name, num, checksum, crate_size)| StoredVersion {
                id,
                name,
                canonical_name,
                num,
                checksum,
                crate_size,
            },
        )
        .collect())
}

/// The version's file, hashed as it streams. A storage that fails meanwhile stops the check.
async fn check_file(
    storage: &dyn Storage,
    version: StoredVersion,
) -> anyhow::Result<Option<Problem>> {
    let key = crate_key(&version.canonical_name, &version.name, &version.num);
    let problem = |detail: String| {
        Some(Problem {
            subject: format!("{} {}", version.name, version.num),
            detail,
        })
    };
    let unreadable = |error: StorageError| {
        anyhow::anyhow!(
            "cannot read {key} from the crate storage, so the check stopped: {}",
            DisplayChain(&error)
        )
    };
    let Some(object) = storage.open(&key).await.map_err(unreadable)? else {
        return Ok(problem(format!(
            "the .crate file is missing from storage ({key}); restore it from a backup of the storage"
        )));
    };
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut chunks = object.stream;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != version.checksum || i64::try_from(size).ok() != Some(version.crate_size) {
        return Ok(problem(format!(
            "the .crate file in storage ({key}) has SHA-256 {actual} and {size} bytes, but the version was published with SHA-256 {} and {} bytes; restore the file from a backup of the storage",
            version.checksum, version.crate_size
        )));
    }
    Ok(None)
}

/// Checks the index files of a batch of crates: (the last crate id, how many were checked,
/// the problems).
fn check_index_files(
    conn: &mut crate::db::DbConn,
    after: i64,
) -> QueryResult<(Option<i64>, u64, Vec<Problem>)> {
    let batch: Vec<(i64, String)> = crates::table
        .filter(crates::id.gt(after))
        .order(crates::id.asc())
        .limit(BATCH)
        .select((crates::id, crates::name))
        .load(conn)?;
    let last = batch.last().map(|(id, ..)| *id);
    let mut problems = Vec::new();
    let mut checked = 0;
    let fix = "publishing, yanking or unyanking any version of the crate renders it again";
    for (crate_id, name) in batch {
        let lines = index_file::render_lines(conn, crate_id, &name, None)?;
        let expected: String = lines.iter().map(|(_, line)| line.as_str()).collect();
        let mut problem = |detail: String| {
            problems.push(Problem {
                subject: name.clone(),
                detail,
            })
        };
        let Some(stored) = index_file::stored(conn, crate_id)?.filter(|s| !s.chunks.is_empty())
        else {
            if !expected.is_empty() {
                problem(format!(
                    "the crate has no index file, so cargo cannot see its {} version(s); {fix}",
                    lines.len()
                ));
            }
            continue;
        };
        checked += 1;
        let content = stored.content();
        if content != expected {
            problem(format!(
                "the index file differs from the crate's versions in the database ({}); {fix}",
                first_difference(&content, &expected)
            ));
        } else if !stored.etag_matches() {
            problem(format!(
                "the index file's ETag {} does not match its content, so caches may keep an old file; {fix}",
                stored.etag
            ));
        } else if let Some(wrong) = stored.chunk_problem(&lines) {
            problem(format!(
                "the index file's chunks are out of step with its versions ({wrong}), so a yank could render the wrong lines; {fix}"
            ));
        }
    }
    Ok((last, checked, problems))
}

/// Where two index files part: the first line that differs.
fn first_difference(stored: &str, expected: &str) -> String {
    let mut stored_lines = stored.lines();
    let mut expected_lines = expected.lines();
    let mut line = 1;
    loop {
        match (stored_lines.next(), expected_lines.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (Some(_), Some(_)) => return format!("line {line} differs"),
            (Some(_), None) => return format!("line {line} is extra"),
            (None, Some(_)) => return format!("line {line} is missing"),
            (None, None) => return "the line endings differ".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_named_by_line() {
        assert_eq!(first_difference("a\nb\n", "a\nc\n"), "line 2 differs");
        assert_eq!(first_difference("a\nb\n", "a\n"), "line 2 is extra");
        assert_eq!(first_difference("a\n", "a\nb\n"), "line 2 is missing");
        assert_eq!(first_difference("a\n", "a"), "the line endings differ");
    }

    #[test]
    fn the_summary_counts_what_was_checked() {
        let summary = Summary {
            versions: 3,
            index_files: 2,
            problems: 1,
        };
        assert_eq!(
            summary.to_string(),
            "checked 3 version(s) and 2 crate index file(s): 1 problem"
        );
    }
}
