//! Hot `.crate` files in memory (`WHARF_DOWNLOAD_CACHE_SIZE`), so that the downloads a CI fleet
//! repeats are answered on the actix worker without a database query or a storage read. A
//! published file never changes and a version is never deleted, so an entry needs no
//! invalidation; it only makes room for others. Files over [`MAX_CACHED_FILE`] are streamed
//! from storage as before, and presigned-URL downloads are never cached.

use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;

use super::lru::ByteLru;

/// The largest file kept (larger ones are streamed every time).
pub const MAX_CACHED_FILE: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct CachedDownload {
    /// `name-version.crate`, for `Content-Disposition`.
    pub file_name: String,
    pub bytes: Bytes,
}

pub struct DownloadCache {
    entries: Mutex<ByteLru<Arc<CachedDownload>>>,
    capacity: u64,
}

impl DownloadCache {
    /// A cache of at most `capacity` bytes; 0 turns it off.
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Mutex::new(ByteLru::new(capacity)),
            capacity,
        }
    }

    /// Whether a file of `size` bytes would be kept.
    pub fn would_keep(&self, size: u64) -> bool {
        size <= MAX_CACHED_FILE && size <= self.capacity / 4
    }

    /// The key of a download request: the crate name and version exactly as requested.
    pub fn key(name: &str, num: &str) -> String {
        format!("{name}\n{num}")
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedDownload>> {
        if self.capacity == 0 {
            return None;
        }
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
    }

    pub fn insert(&self, key: String, file: Arc<CachedDownload>) {
        if !self.would_keep(file.bytes.len() as u64) {
            return;
        }
        let bytes = (file.bytes.len() + file.file_name.len()) as u64;
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, file, bytes);
    }

    pub fn used_bytes(&self) -> u64 {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .used()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn file(len: usize) -> Arc<CachedDownload> {
        Arc::new(CachedDownload {
            file_name: "a-1.0.0.crate".into(),
            bytes: Bytes::from(vec![7; len]),
        })
    }

    #[test]
    fn small_files_are_kept_large_ones_and_a_disabled_cache_keep_nothing() {
        let cache = DownloadCache::new(4 * MAX_CACHED_FILE);
        cache.insert(DownloadCache::key("a", "1.0.0"), file(1000));
        assert_eq!(cache.get("a\n1.0.0").unwrap().bytes.len(), 1000);
        cache.insert(
            DownloadCache::key("b", "1.0.0"),
            file(MAX_CACHED_FILE as usize + 1),
        );
        assert!(cache.get("b\n1.0.0").is_none());
        assert!(cache.used_bytes() <= 4 * MAX_CACHED_FILE);

        let off = DownloadCache::new(0);
        off.insert(DownloadCache::key("a", "1.0.0"), file(10));
        assert!(off.get("a\n1.0.0").is_none());
    }
}
