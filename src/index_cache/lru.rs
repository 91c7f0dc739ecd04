//! A least-recently-used map bounded by the bytes of its values, not by their count.

use std::collections::{BTreeMap, HashMap};

/// What an entry costs besides its own bytes (key, map slots, bookkeeping).
const ENTRY_OVERHEAD: u64 = 96;

pub struct ByteLru<V> {
    capacity: u64,
    used: u64,
    tick: u64,
    entries: HashMap<String, Slot<V>>,
    /// Last use → key; the first entry is the least recently used.
    order: BTreeMap<u64, String>,
}

struct Slot<V> {
    value: V,
    cost: u64,
    used_at: u64,
}

impl<V: Clone> ByteLru<V> {
    /// A map that holds at most `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The value under `key`, which becomes the most recently used.
    pub fn get(&mut self, key: &str) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.entries.get_mut(key)?;
        let key = self.order.remove(&slot.used_at)?;
        slot.used_at = tick;
        self.order.insert(tick, key);
        Some(slot.value.clone())
    }

    /// Stores `value` costing `bytes`, dropping the least recently used entries until it fits.
    /// A value larger than the whole map is not stored (and any older value under `key` goes).
    pub fn insert(&mut self, key: String, value: V, bytes: u64) {
        self.remove(&key);
        let cost = bytes + key.len() as u64 + ENTRY_OVERHEAD;
        if cost > self.capacity {
            return;
        }
        while self.used + cost > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.entries.remove(&oldest) {
                self.used -= slot.cost;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(
            key,
            Slot {
                value,
                cost,
                used_at: self.tick,
            },
        );
        self.used += cost;
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(slot) = self.entries.remove(key) {
            self.order.remove(&slot.used_at);
            self.used -= slot.cost;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.used = 0;
    }

    /// The bytes the entries cost now.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
impl<V> ByteLru<V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(bytes: u64, key: &str) -> u64 {
        bytes + key.len() as u64 + ENTRY_OVERHEAD
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut lru = ByteLru::new(3 * cost(100, "a"));
        lru.insert("a".into(), 1, 100);
        lru.insert("b".into(), 2, 100);
        lru.insert("c".into(), 3, 100);
        assert_eq!(lru.get("a"), Some(1));

        lru.insert("d".into(), 4, 100);

        assert_eq!(lru.get("b"), None, "b was the least recently used");
        assert_eq!(lru.get("a"), Some(1));
        assert_eq!(lru.get("c"), Some(3));
        assert_eq!(lru.get("d"), Some(4));
        assert_eq!(lru.len(), 3);
    }

    #[test]
    fn the_bound_is_in_bytes_whatever_the_count() {
        let capacity = 10_000;
        let mut lru = ByteLru::new(capacity);
        for i in 0..1000 {
            lru.insert(format!("k{i}"), i, 1 + (i % 7) * 300);
            assert!(lru.used() <= capacity, "{} > {capacity}", lru.used());
        }
        assert!(lru.len() < 1000);
        // One large value pushes out as many small ones as it needs.
        lru.insert("big".into(), 0, 9_000);
        assert!(lru.used() <= capacity);
        assert_eq!(lru.get("big"), Some(0));
        assert!(lru.len() <= 2, "{}", lru.len());
    }

    #[test]
    fn a_value_larger_than_the_map_is_not_kept() {
        let mut lru = ByteLru::new(1000);
        lru.insert("a".into(), 1, 10);
        lru.insert("a".into(), 2, 5000);
        assert_eq!(lru.get("a"), None, "the old value must not stay either");
        assert_eq!(lru.used(), 0);
        assert!(lru.is_empty());
    }

    #[test]
    fn replacing_and_removing_keep_the_byte_count_right() {
        let mut lru = ByteLru::new(100_000);
        lru.insert("a".into(), 1, 100);
        lru.insert("a".into(), 2, 300);
        assert_eq!(lru.used(), cost(300, "a"));
        assert_eq!(lru.get("a"), Some(2));
        lru.insert("b".into(), 3, 50);
        lru.remove("a");
        assert_eq!(lru.used(), cost(50, "b"));
        lru.clear();
        assert_eq!(lru.used(), 0);
        assert_eq!(lru.get("b"), None);
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let mut lru = ByteLru::new(0);
        lru.insert("a".into(), 1, 0);
        assert_eq!(lru.get("a"), None);
    }
}
