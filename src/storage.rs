//! Where `.crate` files are kept. A small interface so that an object store (S3-compatible)
//! can stand beside the file system later; calls are synchronous and made from the blocking
//! pool, inside the database transaction that records the version (see `api::crates::publish`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

impl FsStorage {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self { root })
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
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
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
    fn keys_cannot_escape_the_root() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path())?;
        assert!(storage.put("../escape", b"x").is_err());
        assert!(storage.put("/etc/passwd", b"x").is_err());
        assert!(storage.get("a/../../b").is_err());
        Ok(())
    }
}
