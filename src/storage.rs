//! Where `.crate` files are kept. A small interface so that an object store (S3-compatible)
//! can stand beside the file system later; calls are synchronous and made from the blocking
//! pool, inside the database transaction that records the version (see `api::crates::publish`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub trait Storage: Send + Sync {
    /// Stores `bytes` under `key`, atomically: a reader sees the old object or the new one,
    /// and a crash leaves no partly written object under `key`.
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// The object under `key`, or `None`.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Removes the object; absent objects are fine.
    fn delete(&self, key: &str) -> io::Result<()>;
}

/// The storage key of a crate file. `canonical` is the crate's canonical name, so keys never
/// differ only by case or `-`/`_`.
pub fn crate_key(canonical: &str, name: &str, version: &str) -> String {
    format!("crates/{canonical}/{name}-{version}.crate")
}

/// Files under one folder; every write goes to a temporary file that is synced and renamed.
pub struct FsStorage {
    root: PathBuf,
}

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

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        let relative = Path::new(key);
        let safe = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid storage key",
            ));
        }
        Ok(self.root.join(relative))
    }
}

impl Storage for FsStorage {
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid storage key"))?;
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        // Make the rename itself durable.
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_are_replaced_whole() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path())?;
        let key = crate_key("foo_bar", "Foo-bar", "1.0.0");
        assert_eq!(storage.get(&key)?, None);
        storage.put(&key, b"one")?;
        storage.put(&key, b"two")?;
        assert_eq!(storage.get(&key)?.as_deref(), Some(&b"two"[..]));
        storage.delete(&key)?;
        storage.delete(&key)?;
        assert_eq!(storage.get(&key)?, None);
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

    #[test]
    fn keys_cannot_escape_the_root() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path())?;
        assert!(storage.put("../escape", b"x").is_err());
        assert!(storage.put("/etc/passwd", b"x").is_err());
        assert!(storage.get("a/../../b").is_err());
        Ok(())
    }
}
