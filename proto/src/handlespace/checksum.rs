//! The PE checksum of RFC 5353 §3.6.2: the RFC 1071 Internet checksum over one byte block per PE
//! (the pool handle zero-padded to a multiple of 4 bytes, then the 4-byte PE ID).
//!
//! The one's-complement sum is order independent, so it is kept incrementally: each PE adds the
//! sum of its block's 16-bit big-endian words to an accumulator and subtracts it on removal. The
//! accumulator here is 64-bit and exact.
//!
//! RSPLIB (poolhandlespacechecksum.c, rsplib-notes §7) keeps the same sum in a wrapping **32-bit**
//! accumulator. The two agree until the sum passes 2³² (about 3 600 PEs with 32-byte handles,
//! ~20 000 with short ones, per owner); beyond that RSPLIB's value is off by the number of wraps.
//! [`Checksum::value`] gives RSPLIB's value, which is what a registrar should send (so RSPLIB peers
//! stay in sync at any size); [`Checksum::rfc1071`] gives the exact RFC 1071 value; and
//! [`Checksum::matches`] accepts either when comparing a peer's checksum.

use crate::wire::{PoolElementId, PoolHandle};

/// A PE checksum accumulator (RFC 5353 §3.6.2), kept incrementally.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Checksum {
    /// The exact sum of all 16-bit words of all blocks.
    sum: u64,
}

/// The sum of the 16-bit big-endian words of a pool handle zero-padded to a multiple of 4 bytes
/// (the padding adds nothing; an odd last byte is the high byte of its word).
pub(crate) fn handle_words(handle: &PoolHandle) -> u64 {
    let b = handle.as_bytes();
    let mut s = 0u64;
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        s += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        s += u64::from(*last) << 8;
    }
    s
}

/// The word sum of one PE's block, given its handle's word sum.
pub(crate) fn block_words(handle_words: u64, id: PoolElementId) -> u64 {
    handle_words + u64::from(id.0 >> 16) + u64::from(id.0 & 0xffff)
}

/// Folds a sum into 16 bits with end-around carry and complements it (RFC 1071).
fn finish(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

impl Checksum {
    /// The checksum of no PE (its value is 0xffff).
    pub const EMPTY: Self = Self { sum: 0 };

    /// The checksum of a set of PEs, computed from scratch.
    pub fn of<'a>(pes: impl IntoIterator<Item = (&'a PoolHandle, PoolElementId)>) -> Self {
        let mut c = Self::EMPTY;
        for (h, id) in pes {
            c.add(h, id);
        }
        c
    }

    /// Adds one PE's block.
    pub fn add(&mut self, handle: &PoolHandle, id: PoolElementId) {
        self.add_words(block_words(handle_words(handle), id));
    }

    /// Removes one PE's block (which must have been added).
    pub fn remove(&mut self, handle: &PoolHandle, id: PoolElementId) {
        self.remove_words(block_words(handle_words(handle), id));
    }

    pub(crate) fn add_words(&mut self, words: u64) {
        self.sum += words;
    }

    pub(crate) fn remove_words(&mut self, words: u64) {
        self.sum -= words;
    }

    /// The checksum as RSPLIB computes it (32-bit accumulator), the value to put in an ENRP
    /// Presence. Equal to [`Checksum::rfc1071`] unless the word sum exceeds 2³².
    pub fn value(self) -> u16 {
        finish(self.sum & 0xffff_ffff)
    }

    /// The exact RFC 1071 checksum.
    pub fn rfc1071(self) -> u16 {
        finish(self.sum)
    }

    /// Whether a checksum received from a peer matches this one, as RSPLIB or as the exact RFC
    /// 1071 algorithm computes it.
    pub fn matches(self, received: u16) -> bool {
        received == self.value() || received == self.rfc1071()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> PoolHandle {
        PoolHandle::try_from(s).unwrap()
    }

    #[test]
    fn worked_examples_of_the_corpus_readme() {
        let pp = h("PingPongPool");
        let c = Checksum::of([
            (&pp, PoolElementId(0x0b00_0001)),
            (&pp, PoolElementId(0x0b00_0002)),
        ]);
        assert_eq!(c.value(), 0x6ef6);
        let ca = h("CalcAppPool");
        let c = Checksum::of([
            (&pp, PoolElementId(0x0b00_0003)),
            (&ca, PoolElementId(0x0c00_0001)),
        ]);
        assert_eq!(c.value(), 0x6e83);
        assert_eq!(Checksum::EMPTY.value(), 0xffff);
    }

    #[test]
    fn rsplib_value_differs_from_the_exact_one_only_past_two_to_the_32() {
        let c = Checksum {
            sum: (1 << 32) + 0x1234,
        };
        assert_eq!(c.value(), !0x1234);
        assert_eq!(c.rfc1071(), !0x1235);
        assert!(c.matches(!0x1234) && c.matches(!0x1235) && !c.matches(0));
    }
}
