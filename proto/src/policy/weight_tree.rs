//! A pool's weights for O(log n) weighted random draws: a Fenwick (binary indexed) tree over
//! blocks of 32 consecutive weights.
//!
//! Members sit at dense positions 0..len; removal moves the last member into the hole. A draw
//! descends the Fenwick tree of block sums (small: 8 bytes per 32 members, so it stays in cache)
//! and then scans one block of 32 weights (2 cache lines, read in order). Every operation is
//! O(log n + 32); the structure takes a little over 8 bytes per member (its u32 weight and u32
//! member id).

use rand::Rng;

const BLOCK_BITS: usize = 5;
const BLOCK: usize = 1 << BLOCK_BITS;

fn lowbit(i: usize) -> usize {
    i & i.wrapping_neg()
}

/// A Fenwick tree of u64 values, growing and shrinking at the end.
#[derive(Clone, Debug, Default)]
struct Fenwick {
    /// 1-based: `tree[i]` sums the values of indexes `(i − lowbit(i), i]` (1-based); `tree[0]`
    /// is unused.
    tree: Vec<u64>,
}

impl Fenwick {
    fn len(&self) -> usize {
        self.tree.len().saturating_sub(1)
    }

    fn push(&mut self, v: u64) {
        if self.tree.is_empty() {
            self.tree.push(0);
        }
        let i = self.tree.len();
        // tree[i] = v + the nodes covering (i − lowbit(i), i − 1]: i−1, i−2, i−4, …
        let mut sum = v;
        let mut step = 1;
        while step < lowbit(i) {
            sum = sum.wrapping_add(self.tree[i - step]);
            step <<= 1;
        }
        self.tree.push(sum);
    }

    /// Drops the last value (no other node covers it).
    fn pop(&mut self) {
        self.tree.pop();
    }

    /// Adds `delta` (wrapping: a subtraction is the two's complement) to the value at 0-based
    /// `idx`. Every node ends exact, as the true sums never overflow.
    fn add(&mut self, idx: usize, delta: u64) {
        let mut i = idx + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add(delta);
            i += lowbit(i);
        }
    }

    /// The sum of the values at 0-based indexes `0..idx`.
    fn prefix(&self, idx: usize) -> u64 {
        let mut i = idx;
        let mut s = 0u64;
        while i > 0 {
            s = s.wrapping_add(self.tree[i]);
            i -= lowbit(i);
        }
        s
    }

    /// The 0-based index whose interval holds `r` (< the total), and `r` minus the values before
    /// it.
    fn find(&self, mut r: u64) -> (usize, u64) {
        let n = self.len();
        let mut pos = 0;
        let mut step = if n == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] <= r {
                pos = next;
                r -= self.tree[next];
            }
            step >>= 1;
        }
        (pos, r)
    }
}

/// A pool's weights by position, with O(log n) draws.
#[derive(Clone, Debug, Default)]
pub(crate) struct WeightTree {
    /// Sums of the blocks of `BLOCK` positions.
    blocks: Fenwick,
    /// The weight at each position.
    weights: Vec<u32>,
    /// The member at each position.
    members: Vec<u32>,
    /// The sum of all weights.
    total: u64,
}

impl WeightTree {
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn member(&self, pos: u32) -> u32 {
        self.members[pos as usize]
    }

    /// Appends a member; returns its position.
    pub(crate) fn push(&mut self, member: u32, weight: u32) -> u32 {
        let pos = self.members.len();
        if pos % BLOCK == 0 {
            self.blocks.push(u64::from(weight));
        } else {
            self.blocks.add(pos >> BLOCK_BITS, u64::from(weight));
        }
        self.weights.push(weight);
        self.members.push(member);
        self.total += u64::from(weight);
        pos as u32
    }

    /// Removes the member at `pos`; the last member moves into `pos`. Returns that moved member
    /// (if another member moved), whose position is now `pos`.
    pub(crate) fn swap_remove(&mut self, pos: u32) -> Option<u32> {
        let p = pos as usize;
        let last = self.members.len() - 1;
        let moved = if p != last {
            self.set(pos, self.weights[last]);
            self.members[p] = self.members[last];
            Some(self.members[p])
        } else {
            None
        };
        let w_last = u64::from(self.weights[last]);
        if last % BLOCK == 0 {
            self.blocks.pop();
        } else {
            self.blocks.add(last >> BLOCK_BITS, w_last.wrapping_neg());
        }
        self.total -= w_last;
        self.weights.pop();
        self.members.pop();
        moved
    }

    /// Changes the weight at `pos`.
    pub(crate) fn set(&mut self, pos: u32, weight: u32) {
        let p = pos as usize;
        let old = self.weights[p];
        if old == weight {
            return;
        }
        self.weights[p] = weight;
        let delta = u64::from(weight).wrapping_sub(u64::from(old));
        self.blocks.add(p >> BLOCK_BITS, delta);
        self.total = self.total.wrapping_add(delta);
    }

    /// The sum of all weights.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The sum of the weights at positions `0..pos`.
    fn prefix(&self, pos: usize) -> u64 {
        let b = pos >> BLOCK_BITS;
        self.blocks.prefix(b)
            + self.weights[b << BLOCK_BITS..pos]
                .iter()
                .map(|&w| u64::from(w))
                .sum::<u64>()
    }

    /// The position whose weight interval `[prefix(p), prefix(p) + w_p)` holds `r` (< total).
    pub(crate) fn find(&self, r: u64) -> usize {
        let (b, mut r) = self.blocks.find(r);
        let start = b << BLOCK_BITS;
        for (i, &w) in self.weights[start..].iter().enumerate() {
            let w = u64::from(w);
            if r < w {
                return start + i;
            }
            r -= w;
        }
        unreachable!("r is below the total weight")
    }

    /// Draws a position not in `drawn` (a few positions), with probability proportional to its
    /// weight among the others, which must weigh more than 0 together.
    ///
    /// Plain draws from all weights are retried while they hit a drawn position: the accepted
    /// draw is then distributed exactly like a draw from the others. After a few misses (a drawn
    /// position holds most of the weight) the draw is made directly in the remaining weight, by
    /// mapping it past the drawn positions' intervals — exact too; retrying only bounds the time.
    pub(crate) fn draw_excluding<R: Rng + ?Sized>(&self, rng: &mut R, drawn: &[u32]) -> u32 {
        const PLAIN_TRIES: usize = 4;
        for _ in 0..PLAIN_TRIES {
            let p = self.find(rng.random_range(0..self.total)) as u32;
            if !drawn.contains(&p) {
                return p;
            }
        }
        let drawn_weight: u64 = drawn
            .iter()
            .map(|&p| u64::from(self.weights[p as usize]))
            .sum();
        let mut x = rng.random_range(0..self.total - drawn_weight);
        let mut sorted = drawn.to_vec();
        sorted.sort_unstable();
        for &p in &sorted {
            let w = u64::from(self.weights[p as usize]);
            if w > 0 && self.prefix(p as usize) <= x {
                x += w;
            }
        }
        self.find(x) as u32
    }

    /// The weight at `pos`.
    pub(crate) fn weight(&self, pos: u32) -> u32 {
        self.weights[pos as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn check(t: &WeightTree) {
        for p in 0..=t.len() {
            let naive: u64 = t.weights[..p].iter().map(|&w| u64::from(w)).sum();
            assert_eq!(t.prefix(p), naive, "prefix({p})");
        }
        assert_eq!(t.total, t.prefix(t.len()));
    }

    #[test]
    fn push_set_and_swap_remove_keep_prefix_sums_exact() {
        let mut t = WeightTree::default();
        for i in 0..37u32 {
            t.push(i, i * 3 + 1);
            check(&t);
        }
        t.set(5, 0);
        t.set(36, u32::MAX);
        check(&t);
        assert_eq!(t.swap_remove(3), Some(36));
        assert_eq!(t.member(3), 36);
        assert_eq!(t.weight(3), u32::MAX);
        check(&t);
        assert_eq!(t.swap_remove(35), None);
        check(&t);
        while t.len() > 0 {
            t.swap_remove(0);
            check(&t);
        }
    }

    #[test]
    fn random_operations_over_many_blocks_match_a_plain_list() {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(99);
        let mut t = WeightTree::default();
        let mut model: Vec<(u32, u32)> = Vec::new(); // (member, weight) by position
        for step in 0..3000u32 {
            match rng.random_range(0..10) {
                0..=4 => {
                    let w = rng.random_range(0..1000);
                    assert_eq!(t.push(step, w) as usize, model.len());
                    model.push((step, w));
                }
                5..=7 if !model.is_empty() => {
                    let p = rng.random_range(0..model.len());
                    let w = if rng.random_bool(0.1) {
                        u32::MAX
                    } else {
                        rng.random_range(0..1000)
                    };
                    t.set(p as u32, w);
                    model[p].1 = w;
                }
                _ if !model.is_empty() => {
                    let p = rng.random_range(0..model.len());
                    let moved = t.swap_remove(p as u32);
                    model.swap_remove(p);
                    assert_eq!(moved, model.get(p).map(|m| m.0));
                }
                _ => {}
            }
            assert_eq!(t.len(), model.len());
            let total: u64 = model.iter().map(|m| u64::from(m.1)).sum();
            assert_eq!(t.total, total);
            if step % 50 == 0 {
                check(&t);
                let mut acc = 0u64;
                for (p, m) in model.iter().enumerate() {
                    assert_eq!(t.member(p as u32), m.0);
                    if m.1 > 0 {
                        assert_eq!(t.find(acc), p);
                        assert_eq!(t.find(acc + u64::from(m.1) - 1), p);
                    }
                    acc += u64::from(m.1);
                }
            }
        }
        assert!(model.len() > 300, "spans several blocks");
    }

    #[test]
    fn find_maps_every_value_to_its_interval() {
        let mut t = WeightTree::default();
        for (i, w) in [3u32, 0, 2, 5, 0, 1].into_iter().enumerate() {
            t.push(i as u32, w);
        }
        let expect = [0, 0, 0, 2, 2, 3, 3, 3, 3, 3, 5];
        for (r, &p) in expect.iter().enumerate() {
            assert_eq!(t.find(r as u64), p, "r = {r}");
        }
    }
}
