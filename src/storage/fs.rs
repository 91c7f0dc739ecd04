//! The file-system backend: `.crate` files under one folder (`WHARF_STORAGE_DIR`), which
//! several instances may share (NFS and the like). Every write goes to a temporary file that is
//! synced and renamed. The file-system calls block, so the async methods run them on the
//! blocking pool; reads stream the file in chunks.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use actix_web::web::Bytes;
use async_trait::async_trait;

use super::{Object, Storage, StorageError, StorageResult, boxed, check_key};

/// Files under one folder; every write goes to a temporary file that is synced and renamed.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
}

/// The size of the chunks a download is read in.
const READ_CHUNK: usize = 64 * 1024;

/// The prefix of the temporary files that [`FsStorage::put`] writes before renaming them.
const TEMP_PREFIX: &str = ".tmp-";

/// How old a temporary file must be before [`FsStorage::remove_stale_temp_files`] deletes it.
/// At start this process writes nothing yet, but other instances sharing the storage folder
/// may be writing right now, and a file they are writing is at most seconds old (each write
/// touches it); one an hour old was left by a crash.
pub const STALE_TEMP_FILE_AGE: Duration = Duration::from_secs(60 * 60);

impl FsStorage {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Deletes the temporary files anywhere under the root that were last written more than
    /// `min_age` ago (left by a crash between writing and renaming); returns how many. A file
    /// that cannot be examined or deleted is logged and skipped.
    pub fn remove_stale_temp_files(&self, min_age: Duration) -> io::Result<usize> {
        let cutoff = SystemTime::now()
            .checked_sub(min_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0;
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                // `file_type` does not follow symbolic links: links are neither walked nor removed.
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                    continue;
                }
                let is_temp = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with(TEMP_PREFIX));
                if !kind.is_file() || !is_temp {
                    continue;
                }
                let path = entry.path();
                let stale = entry
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .map(|modified| modified < cutoff);
                match stale.and_then(|stale| {
                    if stale {
                        fs::remove_file(&path).map(|()| true)
                    } else {
                        Ok(false)
                    }
                }) {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    // Another instance may have removed it first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "cannot remove a stale temporary file"
                    ),
                }
            }
        }
        Ok(removed)
    }

    fn path(&self, key: &str) -> StorageResult<PathBuf> {
        check_key(key)?;
        let relative = Path::new(key);
        // `check_key` already refuses what could leave the root; this holds on every platform.
        if !relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(StorageError::InvalidKey(key.to_owned()));
        }
        Ok(self.root.join(relative))
    }

    fn put_now(&self, key: &str, bytes: &[u8]) -> StorageResult<()> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| StorageError::InvalidKey(key.to_owned()))?;
        let write = || -> io::Result<()> {
            fs::create_dir_all(dir)?;
            let mut tmp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(dir)?;
            tmp.write_all(bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map_err(|e| e.error)?;
            // Make the rename itself durable.
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(io_error)
    }

    fn delete_now(&self, key: &str) -> StorageResult<()> {
        match fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    /// The root can be listed, and a file can be created in it (and is removed again).
    fn check_now(&self) -> StorageResult<()> {
        let listed = fs::read_dir(&self.root)?;
        drop(listed);
        let probe = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.root)
            .map_err(io_error)?;
        probe.close()?;
        Ok(())
    }

    /// Runs a blocking file-system call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(FsStorage) -> StorageResult<T> + Send + 'static,
    ) -> StorageResult<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || call(this))
            .await
            .map_err(io::Error::other)?
    }
}

/// A full disk or an exhausted quota is [`StorageError::Full`].
fn io_error(error: io::Error) -> StorageError {
    if matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) {
        StorageError::Full(error)
    } else {
        StorageError::Io(error)
    }
}

#[async_trait]
impl Storage for FsStorage {
    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<()> {
        let key = key.to_owned();
        self.blocking(move |this| this.put_now(&key, &bytes)).await
    }

    async fn open(&self, key: &str) -> StorageResult<Option<Object>> {
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK);
        Ok(Some(Object {
            size,
            stream: boxed(stream, StorageError::Io),
        }))
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let key = key.to_owned();
        self.blocking(move |this| this.delete_now(&key)).await
    }

    async fn check(&self) -> StorageResult<()> {
        self.blocking(|this| this.check_now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::crate_key;

    async fn read(storage: &FsStorage, key: &str) -> StorageResult<Option<Vec<u8>>> {
        match storage.open(key).await? {
            Some(object) => Ok(Some(object.read_all().await?)),
            None => Ok(None),
        }
    }

    #[tokio::test]
    async fn objects_round_trip_and_are_replaced_whole() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path())?;
        let key = crate_key("foo_bar", "Foo-bar", "1.0.0");
        assert_eq!(read(&storage, &key).await?, None);
        storage.put(&key, Bytes::from_static(b"one")).await?;
        storage.put(&key, Bytes::from_static(b"two")).await?;
        assert_eq!(read(&storage, &key).await?.as_deref(), Some(&b"two"[..]));
        storage.delete(&key).await?;
        storage.delete(&key).await?;
        assert_eq!(read(&storage, &key).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn large_objects_are_streamed_in_chunks() -> anyhow::Result<()> {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path())?;
        let bytes: Vec<u8> = (0..READ_CHUNK * 3 + 5).map(|i| (i % 251) as u8).collect();
        storage.put("big", Bytes::from(bytes.clone())).await?;
        let object = storage.open("big").await?.expect("stored");
        assert_eq!(object.size, bytes.len() as u64);
        let chunks: Vec<Bytes> = object
            .stream
            .map(|chunk| chunk.expect("read"))
            .collect()
            .await;
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= READ_CHUNK));
        assert_eq!(chunks.concat(), bytes);
        Ok(())
    }

    #[tokio::test]
    async fn the_check_needs_a_folder_that_can_be_written() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path().join("crates"))?;
        storage.check().await?;
        assert_eq!(
            fs::read_dir(dir.path().join("crates"))?.count(),
            0,
            "the probe file is removed"
        );
        fs::remove_dir(dir.path().join("crates"))?;
        assert!(storage.check().await.is_err(), "a missing folder");
        fs::write(dir.path().join("crates"), b"a file")?;
        assert!(storage.check().await.is_err(), "a file, not a folder");
        Ok(())
    }

    #[test]
    fn only_stale_temporary_files_are_removed() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path())?;
        let nested = dir.path().join("crates/foo");
        fs::create_dir_all(&nested)?;
        let old = SystemTime::now() - Duration::from_secs(7200);
        for (path, modified) in [
            (nested.join(".tmp-old"), old),
            (dir.path().join(".tmp-old-at-root"), old),
            (
                nested.join(".tmp-new"),
                SystemTime::now() - Duration::from_secs(60),
            ),
            (nested.join("foo-1.0.0.crate"), old),
            (nested.join("x.tmp-old"), old),
        ] {
            fs::File::create(&path)?.set_modified(modified)?;
        }
        fs::create_dir(nested.join(".tmp-dir"))?;
        #[cfg(unix)]
        std::os::unix::fs::symlink(nested.join("foo-1.0.0.crate"), nested.join(".tmp-link"))?;

        assert_eq!(storage.remove_stale_temp_files(STALE_TEMP_FILE_AGE)?, 2);

        let mut left: Vec<String> = fs::read_dir(&nested)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        left.sort();
        let mut expected = vec![".tmp-dir", ".tmp-new", "foo-1.0.0.crate", "x.tmp-old"];
        #[cfg(unix)]
        expected.insert(1, ".tmp-link");
        assert_eq!(left, expected);
        assert!(!dir.path().join(".tmp-old-at-root").exists());
        assert_eq!(
            storage.remove_stale_temp_files(Duration::ZERO)?,
            1,
            ".tmp-new"
        );
        Ok(())
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path().join("root"))?;
        let x = || Bytes::from_static(b"x");
        assert!(storage.put("../escape", x()).await.is_err());
        assert!(storage.put("/etc/passwd", x()).await.is_err());
        assert!(storage.open("a/../../b").await.is_err());
        assert!(storage.delete("../root").await.is_err());
        assert!(!dir.path().join("escape").exists());
        Ok(())
    }
}
