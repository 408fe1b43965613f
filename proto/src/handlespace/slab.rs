//! PE storage: numbered slots in fixed-size chunks (no reallocation when the handlespace grows,
//! at most one partly used chunk of slack), each with a generation so that a handle to a removed
//! PE never finds the PE that reuses its slot.

use super::PeRecord;
use crate::policy::{Members, SelectionState};
use crate::wire::Policy;

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

#[derive(Clone, Debug)]
enum Slot {
    Occupied(PeRecord),
    Vacant { generation: u32 },
}

#[derive(Clone, Debug, Default)]
pub(super) struct Slab {
    chunks: Vec<Box<[Slot]>>,
    /// Vacant slots below `used`.
    free: Vec<u32>,
    /// Slots ever handed out.
    used: u32,
}

impl Slab {
    fn slot(&self, s: u32) -> Option<&Slot> {
        self.chunks
            .get((s >> CHUNK_BITS) as usize)
            .map(|c| &c[s as usize & (CHUNK - 1)])
    }

    fn slot_mut(&mut self, s: u32) -> &mut Slot {
        &mut self.chunks[(s >> CHUNK_BITS) as usize][s as usize & (CHUNK - 1)]
    }

    /// Stores a record made for the slot's generation; returns the slot.
    pub(super) fn insert(&mut self, make: impl FnOnce(u32) -> PeRecord) -> u32 {
        let s = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.used;
                self.used += 1;
                if s as usize >= self.chunks.len() * CHUNK {
                    let chunk: Vec<Slot> =
                        (0..CHUNK).map(|_| Slot::Vacant { generation: 0 }).collect();
                    self.chunks.push(chunk.into_boxed_slice());
                }
                s
            }
        };
        let slot = self.slot_mut(s);
        let Slot::Vacant { generation } = *slot else {
            unreachable!("free slot {s} is occupied")
        };
        *slot = Slot::Occupied(make(generation));
        s
    }

    /// Takes the record out of a slot, which becomes vacant with the next generation.
    pub(super) fn remove(&mut self, s: u32) -> PeRecord {
        let slot = self.slot_mut(s);
        let generation = match slot {
            Slot::Occupied(r) => r.generation.wrapping_add(1),
            Slot::Vacant { .. } => unreachable!("slot {s} is vacant"),
        };
        let Slot::Occupied(rec) = std::mem::replace(slot, Slot::Vacant { generation }) else {
            unreachable!()
        };
        self.free.push(s);
        rec
    }

    pub(super) fn get(&self, s: u32) -> Option<&PeRecord> {
        match self.slot(s)? {
            Slot::Occupied(r) => Some(r),
            Slot::Vacant { .. } => None,
        }
    }

    /// The record of an occupied slot.
    pub(super) fn rec(&self, s: u32) -> &PeRecord {
        self.get(s).expect("indexed PE is stored")
    }

    /// The record of an occupied slot, mutable.
    pub(super) fn rec_mut(&mut self, s: u32) -> &mut PeRecord {
        match self.slot_mut(s) {
            Slot::Occupied(r) => r,
            Slot::Vacant { .. } => panic!("indexed PE {s} is not stored"),
        }
    }
}

impl Members for Slab {
    fn policy(&self, m: u32) -> &Policy {
        &self.rec(m).element.policy
    }

    fn state(&self, m: u32) -> &SelectionState {
        &self.rec(m).selection
    }

    fn parts_mut(&mut self, m: u32) -> (&Policy, &mut SelectionState) {
        let r = self.rec_mut(m);
        (&r.element.policy, &mut r.selection)
    }
}
