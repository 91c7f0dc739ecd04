//! Read credentials remembered for a few seconds, so that a private registry's hot path (cargo
//! fetching index files, each request carrying its token) does not cost a database query per
//! request.
//!
//! Only tokens that resolved as live are remembered, by the SHA-256 of the token (the database
//! keeps it hex-encoded), for at most [`TOKEN_CACHE_TTL`] and never past the token's own expiry. So a token
//! revoked or expired elsewhere stops reading within that bound on every instance; the instance
//! that revokes a token forgets everything at once ([`TokenCache::clear`], called by every
//! revocation), and a look-up that was already under way when it did so is not remembered (the
//! generation it started at is gone), so it cannot put the revoked token back. The cache holds at most [`TOKEN_CACHE_ENTRIES`] tokens: when full, it starts
//! afresh, which costs one query per token.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

/// The SHA-256 of a token.
pub type TokenDigest = [u8; 32];

/// How long a resolved token is believed without asking the database again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most tokens remembered at once.
pub const TOKEN_CACHE_ENTRIES: usize = 10_000;

#[derive(Clone, Copy)]
struct Entry {
    /// When the database last said the token is live.
    checked: Instant,
    /// The token's own expiry (`None`: it does not expire).
    expires_at: Option<NaiveDateTime>,
}

pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<TokenDigest, Entry>>,
    /// Incremented by every [`TokenCache::clear`] (under the write lock).
    generation: AtomicU64,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(TOKEN_CACHE_TTL, TOKEN_CACHE_ENTRIES)
    }
}

impl TokenCache {
    pub fn new(ttl: Duration, capacity: usize) -> TokenCache {
        TokenCache {
            ttl,
            capacity,
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// True when the token with this hash was found live less than the TTL ago and has not
    /// expired since.
    pub fn is_live(&self, token_hash: &TokenDigest, now: NaiveDateTime) -> bool {
        let entries = match self.entries.read() {
            Ok(entries) => entries,
            // A panic while holding the lock: believe nothing.
            Err(_) => return false,
        };
        entries.get(token_hash).is_some_and(|entry| {
            entry.checked.elapsed() < self.ttl && entry.expires_at.is_none_or(|exp| exp > now)
        })
    }

    /// Taken before a look-up in the database, and handed to [`TokenCache::remember`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers that the database found the token live in a look-up that started at
    /// `generation`; forgotten at once if the cache was cleared since.
    pub fn remember(
        &self,
        token_hash: TokenDigest,
        expires_at: Option<NaiveDateTime>,
        generation: u64,
    ) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(&token_hash) {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.checked.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            token_hash,
            Entry {
                checked: Instant::now(),
                expires_at,
            },
        );
    }

    /// Forgets every token: called on this instance whenever a token is revoked, so that the
    /// revocation holds here at once.
    pub fn clear(&self) {
        let mut entries = match self.entries.write() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn digest(name: &str) -> TokenDigest {
        let mut digest = [0; 32];
        digest[..name.len()].copy_from_slice(name.as_bytes());
        digest
    }

    fn now() -> NaiveDateTime {
        chrono::Utc::now().naive_utc()
    }

    #[test]
    fn a_remembered_token_is_believed_until_the_ttl_or_its_expiry() {
        let cache = TokenCache::new(Duration::from_millis(200), 10);
        assert!(!cache.is_live(&digest("a"), now()));
        cache.remember(digest("a"), None, 0);
        cache.remember(digest("b"), Some(now() + TimeDelta::seconds(60)), 0);
        cache.remember(digest("c"), Some(now() - TimeDelta::seconds(1)), 0);
        assert!(cache.is_live(&digest("a"), now()));
        assert!(cache.is_live(&digest("b"), now()));
        assert!(
            !cache.is_live(&digest("c"), now()),
            "expired: refused at once"
        );
        assert!(!cache.is_live(&digest("b"), now() + TimeDelta::seconds(61)));
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            !cache.is_live(&digest("a"), now()),
            "older than the TTL: asked again"
        );
    }

    #[test]
    fn clearing_forgets_everything_and_the_size_is_bounded() {
        let cache = TokenCache::new(Duration::from_secs(5), 3);
        for hash in ["a", "b", "c"] {
            cache.remember(digest(hash), None, 0);
        }
        assert_eq!(cache.len(), 3);
        cache.remember(digest("d"), None, 0);
        assert!(cache.len() <= 3);
        assert!(cache.is_live(&digest("d"), now()));
        cache.clear();
        assert!(cache.is_empty());
        assert!(!cache.is_live(&digest("d"), now()));
    }

    #[test]
    fn a_look_up_that_started_before_a_clear_is_not_remembered() {
        let cache = TokenCache::new(Duration::from_secs(5), 10);
        let before = cache.generation();
        cache.clear();
        cache.remember(digest("revoked"), None, before);
        assert!(!cache.is_live(&digest("revoked"), now()));
        cache.remember(digest("fresh"), None, cache.generation());
        assert!(cache.is_live(&digest("fresh"), now()));
    }
}
