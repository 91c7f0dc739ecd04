//! Index files served from memory: the rendered bytes and `ETag` of recently requested crates,
//! in an LRU bounded by bytes (`WHARF_INDEX_CACHE_SIZE`). A hit is answered on the actix worker
//! without the blocking pool or a database connection.
//!
//! Staying right when the index changes:
//! - the request that publishes, yanks or unyanks drops the crate's entry after its commit,
//!   so its own instance never serves the old file once the change is acknowledged;
//! - every instance runs a [`watcher`] that learns of changes committed through any other
//!   instance (or `wharf admin`) within a second: PostgreSQL `LISTEN wharf_index` (the change
//!   sends `pg_notify` inside its transaction), or on SQLite a poll of the `change_seq` that
//!   every change of an index file increases. When the watcher loses its connection it clears
//!   the whole cache, since changes may have passed unseen meanwhile;
//! - a file read from the database is stored only if no invalidation happened since the read
//!   began (a generation counter), so a read racing a publish cannot store the old file.

pub mod downloads;
mod lru;
pub mod watcher;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::web::Bytes;

use self::lru::ByteLru;

/// One crate's index file as served.
#[derive(Debug)]
pub struct CachedIndex {
    /// The crate's name as published (the request path must be its lowercase form).
    pub crate_name: String,
    pub etag: String,
    pub content: Bytes,
}

pub struct IndexCache {
    entries: Mutex<ByteLru<Arc<CachedIndex>>>,
    /// Increased by every invalidation; see [`IndexCache::insert`].
    generation: AtomicU64,
    enabled: bool,
}

impl IndexCache {
    /// A cache of at most `capacity` bytes; 0 turns it off.
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Mutex::new(ByteLru::new(capacity)),
            generation: AtomicU64::new(0),
            enabled: capacity > 0,
        }
    }

    fn entries(&self) -> MutexGuard<'_, ByteLru<Arc<CachedIndex>>> {
        // A panic while holding the lock leaves a map that is still consistent enough to use.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached file of the crate with this canonical name.
    pub fn get(&self, canonical: &str) -> Option<Arc<CachedIndex>> {
        if !self.enabled {
            return None;
        }
        self.entries().get(canonical)
    }

    /// Take this before reading a file from the database, and hand it to [`Self::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores a file read from the database, unless an invalidation happened since
    /// `generation` was taken (the file read may then be older than the change).
    pub fn insert(&self, canonical: &str, file: Arc<CachedIndex>, generation: u64) {
        if !self.enabled {
            return;
        }
        let mut entries = self.entries();
        // Invalidations bump the generation while holding the lock, so this check is exact.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let bytes = (file.content.len() + file.crate_name.len() + file.etag.len()) as u64;
        entries.insert(canonical.to_owned(), file, bytes);
    }

    /// Drops the crate's entry: its index file changed.
    pub fn invalidate(&self, canonical: &str) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(canonical);
    }

    /// Drops every entry: changes may have been missed.
    pub fn clear(&self) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Bytes held now (for tests and diagnostics).
    pub fn used_bytes(&self) -> u64 {
        self.entries().used()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn file(content: &str) -> Arc<CachedIndex> {
        Arc::new(CachedIndex {
            crate_name: "foo".into(),
            etag: "\"e\"".into(),
            content: Bytes::copy_from_slice(content.as_bytes()),
        })
    }

    #[test]
    fn a_file_read_before_an_invalidation_is_not_stored() {
        let cache = IndexCache::new(1 << 20);
        let generation = cache.generation();
        cache.invalidate("foo");
        cache.insert("foo", file("old"), generation);
        assert!(cache.get("foo").is_none());

        let generation = cache.generation();
        cache.insert("foo", file("new"), generation);
        assert_eq!(&cache.get("foo").unwrap().content[..], b"new");
        cache.invalidate("foo");
        assert!(cache.get("foo").is_none());
    }

    #[test]
    fn clear_drops_everything_and_a_zero_size_cache_holds_nothing() {
        let cache = IndexCache::new(1 << 20);
        cache.insert("a", file("a"), cache.generation());
        cache.insert("b", file("b"), cache.generation());
        cache.clear();
        assert!(cache.get("a").is_none() && cache.get("b").is_none());
        assert_eq!(cache.used_bytes(), 0);

        let off = IndexCache::new(0);
        off.insert("a", file("a"), off.generation());
        assert!(off.get("a").is_none());
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let cache = IndexCache::new(10_000);
        for i in 0..100 {
            cache.insert(
                &format!("c{i}"),
                file(&"x".repeat(1000)),
                cache.generation(),
            );
            assert!(cache.used_bytes() <= 10_000);
        }
        assert!(cache.get("c99").is_some());
        assert!(cache.get("c0").is_none());
    }
}
