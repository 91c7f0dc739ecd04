//! Where `.crate` files are kept: the [`Storage`] trait, one file per backend (`fs.rs`: a
//! folder, `s3.rs`: an S3-compatible bucket), and [`open`], the one place that picks the
//! backend from the configuration.
//!
//! The trait is async, because two of its callers are: downloads stream an object to the
//! client as it arrives, and `/ready` bounds its probe with a deadline. The third caller, the
//! publish, stores the file inside its database transaction, which runs on the blocking pool;
//! it waits for the upload with [`put_blocking`] (`Handle::block_on` on the blocking thread:
//! the runtime's own threads keep driving the I/O meanwhile). Uploading there, after the
//! version row is inserted and before the commit, is what keeps a publish atomic: a concurrent
//! publish of the same version waits on that row before it uploads anything, so it can never
//! overwrite the winner's object, and an upload that fails rolls the version back.

mod fs;
mod s3;

use std::io;
use std::sync::Arc;

use actix_web::web::Bytes;
use anyhow::Context;
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use thiserror::Error;
use url::Url;

use crate::config::StorageConfig;

pub use self::fs::{FsStorage, STALE_TEMP_FILE_AGE};
pub use self::s3::S3Storage;

pub type StorageResult<T> = Result<T, StorageError>;

/// Why a storage call failed. What a client is told is decided in `errors.rs`: a full
/// storage is 507, an unavailable one 503, anything else a logged 500.
#[derive(Debug, Error)]
pub enum StorageError {
    /// No room left (a full disk or an exhausted quota).
    #[error("the storage is full: {0}")]
    Full(#[source] io::Error),
    /// The storage did not answer in time, or refused (network, credentials, a missing bucket).
    #[error("the storage is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("invalid storage key `{0}`")]
    InvalidKey(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl StorageError {
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StorageError::Unavailable(cause.into())
    }
}

/// An object being read: its size, and its bytes as they arrive.
pub struct Object {
    pub size: u64,
    pub stream: BoxStream<'static, StorageResult<Bytes>>,
}

impl Object {
    /// Reads the whole object into memory (for small objects and tests; downloads stream).
    pub async fn read_all(self) -> StorageResult<Vec<u8>> {
        let capacity = usize::try_from(self.size).unwrap_or(0);
        self.stream
            .try_fold(Vec::with_capacity(capacity), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
    }
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Stores `bytes` under `key`, atomically: a reader sees the old object or the new one,
    /// and a failure or a crash leaves no partly written object under `key`.
    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<()>;

    /// The object under `key`, streamed, or `None` when there is none.
    async fn open(&self, key: &str) -> StorageResult<Option<Object>>;

    /// Removes the object; an absent object is fine.
    async fn delete(&self, key: &str) -> StorageResult<()>;

    /// Where clients may fetch the object themselves (a presigned URL), when the backend is
    /// configured to hand them out; `None`: stream it with [`Storage::open`]. The object's
    /// existence is not checked.
    async fn download_url(&self, _key: &str) -> StorageResult<Option<Url>> {
        Ok(None)
    }

    /// For `/ready`: the storage answers and can be used (a folder that can be listed and
    /// written to; a bucket that can be listed with these credentials).
    async fn check(&self) -> StorageResult<()>;
}

/// Opens the storage the configuration names. Nothing is contacted yet: an object store that
/// is down at start makes `/ready` fail, not the start.
pub fn open(config: &StorageConfig) -> anyhow::Result<Arc<dyn Storage>> {
    match config {
        StorageConfig::Fs { dir } => {
            let storage = FsStorage::new(dir)
                .with_context(|| format!("cannot create the storage folder {}", dir.display()))?;
            match storage.remove_stale_temp_files(STALE_TEMP_FILE_AGE) {
                Ok(0) => {}
                Ok(files) => {
                    tracing::info!(files, "removed temporary files a crash left in storage")
                }
                Err(error) => tracing::warn!(%error, "cannot clean temporary files from storage"),
            }
            Ok(Arc::new(storage))
        }
        StorageConfig::S3(s3) => Ok(Arc::new(
            S3Storage::new(s3).context("cannot set up the object storage")?,
        )),
    }
}

/// Stores an object from a thread of the blocking pool (see the module's documentation),
/// waiting for the upload to finish.
pub fn put_blocking(storage: &dyn Storage, key: &str, bytes: Bytes) -> StorageResult<()> {
    let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    handle.block_on(storage.put(key, bytes))
}

/// The storage key of a crate file. `canonical` is the crate's canonical name, so keys never
/// differ only by case or `-`/`_`.
pub fn crate_key(canonical: &str, name: &str, version: &str) -> String {
    format!("crates/{canonical}/{name}-{version}.crate")
}

/// A key is a relative path of plain names: no empty, `.` or `..` segment, no backslash or
/// NUL, so that it names the same object in a folder and in a bucket and cannot escape either.
fn check_key(key: &str) -> StorageResult<()> {
    let valid = !key.is_empty()
        && !key.contains(['\\', '\0'])
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.to_owned()))
    }
}

/// Maps a stream's items into the storage's error type, boxed.
fn boxed<S, E>(stream: S, error: fn(E) -> StorageError) -> BoxStream<'static, StorageResult<Bytes>>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: 'static,
{
    stream.map(move |item| item.map_err(error)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_paths_of_plain_names() {
        for good in [
            "crates/foo/foo-1.0.0.crate",
            "crates/foo_bar/Foo-bar-1.0.0+build.5.crate",
            "x",
        ] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../escape",
            "a/../../b",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
        ] {
            assert!(
                matches!(check_key(bad), Err(StorageError::InvalidKey(_))),
                "{bad:?}"
            );
        }
    }
}
