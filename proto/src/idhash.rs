//! A cheap hasher for maps keyed by identifiers this process hands out itself (association
//! and session numbers, its own pointers).
//!
//! `std`'s default, SipHash, is built to resist keys an attacker picks; these keys are
//! counters and addresses no peer chooses, so one multiplication spreads them well enough, at
//! a fraction of the cost on paths that look one up per message. Never use it for keys that
//! come off the network (addresses, pool handles, PE IDs).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing of integer keys (see the [module documentation](self)).
#[derive(Default, Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // The high bits, which hashbrown uses for its control bytes, mix in every bit of the
        // key; the rotation brings them to the low bits it indexes with too (aligned
        // pointers have their low bits 0).
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(26);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }
}

/// Builds [`IdHasher`]s.
pub type BuildIdHasher = BuildHasherDefault<IdHasher>;

/// A `HashMap` keyed by identifiers of our own, hashed with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildIdHasher>;

/// A `HashSet` of identifiers of our own, hashed with [`IdHasher`].
pub type IdSet<K> = HashSet<K, BuildIdHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_spread_over_the_table() {
        let mut m: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000 {
            m.insert(i, i * 2);
        }
        assert_eq!(m.len(), 10_000);
        assert!((0..10_000).all(|i| m[&i] == i * 2));
        // Distinct keys give distinct hashes in the bits hashbrown looks at.
        let tops: HashSet<u64> = (0..4096u64)
            .map(|i| {
                let mut h = IdHasher::default();
                h.write_u64(i);
                h.finish() >> 52
            })
            .collect();
        assert!(tops.len() > 2500, "only {} distinct top bits", tops.len());
    }
}
