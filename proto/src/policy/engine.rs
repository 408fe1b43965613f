//! The selection engine: one [`PoolSelector`] per pool, over members kept by the caller.

use std::collections::BTreeSet;

use rand::Rng;

use super::weight_tree::WeightTree;
use super::{
    Method, SelectionRequest, SelectionState, UnsupportedPolicy, default_max_increment, method,
    on_join, on_update, on_used, sort_key, weight,
};
use crate::wire::{Policy, PolicyType};

/// Up to this many items, a weighted selection draws around the drawn members rather than
/// zeroing their weights.
const FEW_ITEMS: usize = 8;

/// Where the engine finds a pool's members: their policy values and selection state, by a
/// member id the caller chooses (the handlespace uses its PE slot numbers).
///
/// The engine keeps only member ids in its indexes and recomputes keys and weights from the
/// member's policy and state, so the caller must not change either while the member is in a
/// [`PoolSelector`] except through [`PoolSelector::update`].
pub trait Members {
    /// The member's policy values.
    fn policy(&self, member: u32) -> &Policy;
    /// The member's selection state.
    fn state(&self, member: u32) -> &SelectionState;
    /// The member's policy values and its selection state, mutable.
    fn parts_mut(&mut self, member: u32) -> (&Policy, &mut SelectionState);
}

/// The selection index of one pool: its members in policy order (sorted policies) or in a
/// weight tree (weighted policies), and the pool's sequence counter.
///
/// Insert, remove, update and each selected PE cost O(log n).
#[derive(Clone, Debug)]
pub struct PoolSelector {
    policy_type: PolicyType,
    /// The next sequence number to hand out; 64-bit, so it never wraps.
    next_seq: u64,
    index: Index,
}

#[derive(Clone, Debug)]
enum Index {
    /// (primary key, secondary key, member), ascending.
    Sorted(BTreeSet<(u64, u64, u32)>),
    Weighted(WeightTree),
}

impl PoolSelector {
    /// An empty selector for a policy type.
    pub fn new(policy_type: PolicyType) -> Result<Self, UnsupportedPolicy> {
        let index = match method(policy_type).ok_or(UnsupportedPolicy(policy_type))? {
            Method::Sorted => Index::Sorted(BTreeSet::new()),
            Method::Weighted => Index::Weighted(WeightTree::default()),
        };
        Ok(Self {
            policy_type,
            next_seq: 0,
            index,
        })
    }

    /// The policy type of the pool.
    pub fn policy_type(&self) -> PolicyType {
        self.policy_type
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        match &self.index {
            Index::Sorted(s) => s.len(),
            Index::Weighted(t) => t.len(),
        }
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Adds a new member: it gets a fresh state (degradation 0, the pool's current WRR round) and
    /// the next sequence number, so it comes last among its equals (last in round robin order).
    pub fn insert<M: Members + ?Sized>(&mut self, members: &mut M, member: u32) {
        let seq = self.take_seq();
        let round = match &self.index {
            Index::Sorted(s) if self.policy_type == PolicyType::WEIGHTED_ROUND_ROBIN => {
                s.first().map_or(0, |k| k.0)
            }
            _ => 0,
        };
        on_join(members.parts_mut(member).1, seq, round);
        self.link(members, member);
    }

    /// Removes a member (its policy and state must be those it was linked with).
    pub fn remove<M: Members + ?Sized>(&mut self, members: &mut M, member: u32) {
        self.unlink(members, member);
    }

    /// Updates a member in place, as a re-registration does: unlinks it, lets `change` replace
    /// its policy values (the caller's store is passed back), resets its degradation counter
    /// (RFC 5356 §5.2.2) and links it again. It keeps its sequence number, so a re-registration
    /// does not move a PE in round robin order.
    pub fn update<M: Members + ?Sized>(
        &mut self,
        members: &mut M,
        member: u32,
        change: impl FnOnce(&mut M),
    ) {
        self.unlink(members, member);
        change(members);
        let (policy, st) = members.parts_mut(member);
        on_update(policy, st);
        self.link(members, member);
    }

    fn link<M: Members + ?Sized>(&mut self, members: &mut M, member: u32) {
        match &mut self.index {
            Index::Sorted(s) => {
                let (a, b) = sort_key(members.policy(member), members.state(member));
                s.insert((a, b, member));
            }
            Index::Weighted(t) => {
                let w = weight(members.policy(member), members.state(member));
                let pos = t.push(member, w);
                members.parts_mut(member).1.pos = pos;
            }
        }
    }

    fn unlink<M: Members + ?Sized>(&mut self, members: &mut M, member: u32) {
        match &mut self.index {
            Index::Sorted(s) => {
                let (a, b) = sort_key(members.policy(member), members.state(member));
                let removed = s.remove(&(a, b, member));
                debug_assert!(removed, "member {member} was not linked with this key");
            }
            Index::Weighted(t) => {
                let pos = members.state(member).pos;
                debug_assert_eq!(t.member(pos), member);
                if let Some(moved) = t.swap_remove(pos) {
                    members.parts_mut(moved).1.pos = pos;
                }
            }
        }
    }

    /// Selects up to `request.items` members (capped at the pool size), appending them to `out`
    /// in selection order; returns how many were appended. The first
    /// `min(items, MaxIncrement)` of them count as used (see the [module docs](super)).
    pub fn select<M: Members + ?Sized, R: Rng + ?Sized>(
        &mut self,
        members: &mut M,
        request: SelectionRequest,
        rng: &mut R,
        out: &mut Vec<u32>,
    ) -> usize {
        let n = request.items.min(self.len());
        let max_increment = request
            .max_increment
            .unwrap_or_else(|| default_max_increment(self.policy_type).unwrap_or(1));
        let used = n.min(max_increment);
        let start = out.len();
        match &mut self.index {
            Index::Sorted(s) => {
                out.extend(s.iter().take(n).map(|k| k.2));
                for i in 0..used {
                    let member = out[start + i];
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let (policy, st) = members.parts_mut(member);
                    let (a, b) = sort_key(policy, st);
                    s.remove(&(a, b, member));
                    on_used(policy, st, seq);
                    let (a, b) = sort_key(policy, st);
                    s.insert((a, b, member));
                }
            }
            Index::Weighted(t) => {
                // Draw without replacement. A few items: draws that skip the drawn positions,
                // no writes. Many items: a drawn member's weight is 0 until the end of the
                // selection, so every draw stays O(log n).
                let zeroing = n > FEW_ITEMS;
                let mut drawn_weight = 0;
                while out.len() - start < n && t.total() > drawn_weight {
                    let pos = if zeroing {
                        let pos = t.find(rng.random_range(0..t.total())) as u32;
                        t.set(pos, 0);
                        pos
                    } else {
                        let pos = t.draw_excluding(rng, &out[start..]);
                        drawn_weight += u64::from(t.weight(pos));
                        pos
                    };
                    out.push(pos);
                }
                let by_weight = out.len() - start;
                if by_weight < n {
                    // Only members of weight 0 are left: uniformly among them.
                    let mut drawn = out[start..].to_vec();
                    drawn.sort_unstable();
                    let mut rest: Vec<u32> = (0..t.len() as u32)
                        .filter(|p| drawn.binary_search(p).is_err())
                        .collect();
                    for i in 0..n - by_weight {
                        let j = rng.random_range(i..rest.len());
                        rest.swap(i, j);
                        out.push(rest[i]);
                    }
                }
                if zeroing {
                    for i in 0..by_weight {
                        let pos = out[start + i];
                        let m = t.member(pos);
                        t.set(pos, weight(members.policy(m), members.state(m)));
                    }
                }
                for i in 0..used {
                    let pos = out[start + i];
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let (policy, st) = members.parts_mut(t.member(pos));
                    on_used(policy, st, seq);
                    t.set(pos, weight(policy, st));
                }
                for x in &mut out[start..] {
                    *x = t.member(*x);
                }
            }
        }
        n
    }

    /// The members of a sorted-policy pool in the order the next selection would return them;
    /// `None` for weighted policies (they have no order).
    pub fn order(&self) -> Option<impl Iterator<Item = u32> + '_> {
        match &self.index {
            Index::Sorted(s) => Some(s.iter().map(|k| k.2)),
            Index::Weighted(_) => None,
        }
    }
}
