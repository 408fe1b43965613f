//! The deadline index: a binary min-heap of PE slots ordered by the deadline stored in each PE's
//! record, which also stores the PE's position in the heap. Push, remove and change cost
//! O(log n); the index takes 4 bytes per PE with a deadline.

use super::slab::Slab;

/// A PE's position when it has no deadline.
pub(super) const NOT_QUEUED: u32 = u32::MAX;

#[derive(Clone, Debug, Default)]
pub(super) struct DeadlineHeap {
    heap: Vec<u32>,
}

impl DeadlineHeap {
    /// The slot with the earliest deadline.
    pub(super) fn first(&self) -> Option<u32> {
        self.heap.first().copied()
    }

    /// Queues a slot whose record holds its deadline and is not queued yet.
    pub(super) fn push(&mut self, slab: &mut Slab, slot: u32) {
        let pos = self.heap.len();
        self.heap.push(slot);
        slab.rec_mut(slot).heap_pos = pos as u32;
        self.sift_up(slab, pos);
    }

    /// Takes a queued slot out.
    pub(super) fn remove(&mut self, slab: &mut Slab, slot: u32) {
        let pos = slab.rec(slot).heap_pos as usize;
        debug_assert_eq!(self.heap[pos], slot);
        slab.rec_mut(slot).heap_pos = NOT_QUEUED;
        let last = self.heap.pop().expect("queued slot");
        if pos < self.heap.len() {
            self.heap[pos] = last;
            slab.rec_mut(last).heap_pos = pos as u32;
            self.restore(slab, pos);
        }
    }

    /// Re-establishes the order after a queued slot's deadline changed.
    pub(super) fn changed(&mut self, slab: &mut Slab, slot: u32) {
        let pos = slab.rec(slot).heap_pos as usize;
        self.restore(slab, pos);
    }

    fn key(&self, slab: &Slab, pos: usize) -> i64 {
        slab.rec(self.heap[pos]).deadline
    }

    fn restore(&mut self, slab: &mut Slab, pos: usize) {
        if pos > 0 && self.key(slab, pos) < self.key(slab, (pos - 1) / 2) {
            self.sift_up(slab, pos);
        } else {
            self.sift_down(slab, pos);
        }
    }

    fn swap(&mut self, slab: &mut Slab, a: usize, b: usize) {
        self.heap.swap(a, b);
        slab.rec_mut(self.heap[a]).heap_pos = a as u32;
        slab.rec_mut(self.heap[b]).heap_pos = b as u32;
    }

    fn sift_up(&mut self, slab: &mut Slab, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.key(slab, pos) >= self.key(slab, parent) {
                break;
            }
            self.swap(slab, pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, slab: &mut Slab, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * pos + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let child = if r < n && self.key(slab, r) < self.key(slab, l) {
                r
            } else {
                l
            };
            if self.key(slab, child) >= self.key(slab, pos) {
                break;
            }
            self.swap(slab, pos, child);
            pos = child;
        }
    }
}
