//! Pool member selection policies: every policy of RFC 5356 and RSPLIB's extensions, in one
//! selection engine shared by the registrar's handlespace and the pool user's cache.
//!
//! # Two kinds of policy
//!
//! * **Sorted** policies keep a pool's PEs in an ordered set and return the first N. The order is
//!   by a *key* computed from the PE's policy values and its selection state, then by a per-pool
//!   *sequence number* that makes equal keys take turns (round robin among equals, as RFC 5356
//!   §5.1.2 asks for LU):
//!
//!   | policy | key (lower first) |
//!   |---|---|
//!   | Round Robin | — (sequence number only) |
//!   | Weighted Round Robin | virtual time `round + k/weight` (see below) |
//!   | Priority | priority, **descending** |
//!   | Least Used | load |
//!   | Least Used with Degradation | load + n·degradation |
//!   | Priority Least Used | load + degradation |
//!   | RSPLIB PLUD (0xb0001003) | load + degradation + n·degradation |
//!   | RSPLIB LU-DPF (0xb0002002) | load + distance·load-DPF |
//!   | RSPLIB LUD-DPF (0xb0002003) | load + n·degradation + distance·load-DPF |
//!   | RSPLIB PLU-DPF (0xb0002004) | load + degradation + distance·load-DPF |
//!   | RSPLIB PLUD-DPF (0xb0002005) | load + degradation + n·degradation + distance·load-DPF |
//!
//!   `n` is the PE's degradation counter: the number of times it was selected since its last
//!   (re-)registration (RFC 5356 §5.2.2). Loads, degradations and DPFs are wire-scale fractions
//!   (`0xffffffff` = 100 %), distances are milliseconds, so `distance·load-DPF` is
//!   `distance × DPF × 0xffffffff` as in RSPLIB. Sums are exact 64-bit values.
//!
//! * **Weighted** policies draw PEs at random with a probability proportional to a *weight*, in
//!   O(log n) per draw from a Fenwick tree of the pool's weights, without replacement within one
//!   handle resolution (RFC 5356 §4.3.2: "each element MUST NOT be reported more than once"):
//!
//!   | policy | weight |
//!   |---|---|
//!   | Random | 1 |
//!   | Weighted Random | weight |
//!   | Randomized Least Used | max(1, 0xffffffff − load) |
//!   | RSPLIB RPLU (0xb0001001) | max(1, 0xffffffff − load − degradation) |
//!   | RSPLIB RLUD (0xb0001002) | max(1, 0xffffffff − load − n·degradation) |
//!   | RSPLIB RPLUD (0xb0001004) | max(1, 0xffffffff − load − degradation − n·degradation) |
//!   | RSPLIB WRAND-DPF (0xb0002001) | max(1, weight − round(weight · distance · weight-DPF)) |
//!
//!   A Weighted Random PE of weight 0 is never drawn while a PE of positive weight remains; when
//!   only weight-0 PEs remain they are drawn uniformly (a pool of weight-0 PEs still answers).
//!
//! # Number of items and MaxIncrement
//!
//! A selection returns up to N PEs (the "items" of draft-dreibholz-rserpool-asap-hropt, capped at
//! the pool size). Only the first `min(N, MaxIncrement)` of them count as *used*: they get the
//! next sequence number (moving behind their equals) and their policy's selection step
//! (degradation counter + 1, WRR virtual time advance). With MaxIncrement 1, Round Robin over
//! A, B, C, D with 3 items gives ABC, BCD, CDA, DAB — a sliding window — and with a very large
//! MaxIncrement (the pool user's cache, [`SelectionRequest::cache`]) it gives ABC, DAB, CDA, …
//! The default MaxIncrement ([`default_max_increment`]) is 1, except for Random, Weighted Random
//! and WRAND-DPF (0: their draws change nothing).
//!
//! # Decisions on RSPLIB's behaviour (rsplib-notes §2)
//!
//! * **Double update step — not copied.** RSPLIB's "link into the selection tree" helper runs the
//!   policy update hook too, so stateful policies step twice per selection and a new PE starts
//!   one step in. rserpool steps once per use and starts new and re-registered PEs at zero, as
//!   RFC 5356 §5.2.2 says ("set to 0" on registration, "incremented by 1" per selection).
//! * **Sums capped at 0xffffffff — not copied.** RSPLIB saturates `load + degradation…` at 100 %,
//!   so all PEs beyond full load tie and are taken in turn. rserpool orders by the exact sum
//!   (RFC 5356 §5.2.2: "the lowest possible sum"), so a PE at 140 % still ranks behind one at
//!   120 %. Orders below 100 % are identical.
//! * **Weighted Round Robin order — interleaved, not grouped.** RSPLIB sorts by
//!   (round, remaining virtual counter), which serves a PE's whole weight in a row (A A A B).
//!   RFC 5356 §4.2.2 asks for a PE's entries to be "as evenly distributed as possible", so
//!   rserpool orders by virtual time `round + k/weight` (k = uses in this round): A B A A with
//!   weights 3 and 1. The share per round is the same (`weight` uses per round). A weight of 0
//!   counts as 1. A new PE joins at the pool's current round.
//! * **32-bit sequence numbers with resequencing — not needed.** Sequence numbers are 64-bit
//!   and never wrap; WRR rounds are 64-bit too, so nothing is ever rebased.
//! * **Re-registration keeps the PE's place** (its sequence number and WRR round) and resets its
//!   degradation counter, as RSPLIB's update does (minus the double step).
//! * **Distance-penalty formulas** are RSPLIB's (the type numbers are RSPLIB's private ones);
//!   the distance is set per PE by the registrar ([`set_distance`]).

mod engine;
mod weight_tree;

pub use engine::{Members, PoolSelector};

use crate::wire::{Policy, PolicyType};

/// How a policy picks its PEs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    /// The first N PEs in the order of a key (round robin among equal keys).
    Sorted,
    /// N random draws without replacement, with probabilities proportional to a weight.
    Weighted,
}

/// The selection method of a policy type; `None` for types this engine does not know.
pub fn method(t: PolicyType) -> Option<Method> {
    use PolicyType as T;
    Some(match t {
        T::ROUND_ROBIN
        | T::WEIGHTED_ROUND_ROBIN
        | T::PRIORITY
        | T::LEAST_USED
        | T::LEAST_USED_DEGRADATION
        | T::PRIORITY_LEAST_USED
        | T::PRIORITY_LEAST_USED_DEGRADATION
        | T::LEAST_USED_DPF
        | T::LEAST_USED_DEGRADATION_DPF
        | T::PRIORITY_LEAST_USED_DPF
        | T::PRIORITY_LEAST_USED_DEGRADATION_DPF => Method::Sorted,
        T::RANDOM
        | T::WEIGHTED_RANDOM
        | T::RANDOMIZED_LEAST_USED
        | T::RANDOMIZED_PRIORITY_LEAST_USED
        | T::RANDOMIZED_LEAST_USED_DEGRADATION
        | T::RANDOMIZED_PRIORITY_LEAST_USED_DEGRADATION
        | T::WEIGHTED_RANDOM_DPF => Method::Weighted,
        _ => return None,
    })
}

/// The policy's default MaxIncrement (rsplib-notes §2): 0 for Random, Weighted Random and
/// WRAND-DPF (stateless draws), 1 for every other policy. `None` for unknown types.
pub fn default_max_increment(t: PolicyType) -> Option<usize> {
    use PolicyType as T;
    method(t)?;
    Some(match t {
        T::RANDOM | T::WEIGHTED_RANDOM | T::WEIGHTED_RANDOM_DPF => 0,
        _ => 1,
    })
}

/// Sets the distance (ms) of a distance-penalty policy (the value a registrar measures for the
/// PE, draft-dreibholz-rserpool-delay §2). Returns `false`, changing nothing, for policies without
/// a distance.
pub fn set_distance(policy: &mut Policy, distance_ms: u32) -> bool {
    match policy {
        Policy::WeightedRandomDpf { distance, .. }
        | Policy::LeastUsedDpf { distance, .. }
        | Policy::LeastUsedDegradationDpf { distance, .. }
        | Policy::PriorityLeastUsedDpf { distance, .. }
        | Policy::PriorityLeastUsedDegradationDpf { distance, .. } => {
            *distance = distance_ms;
            true
        }
        _ => false,
    }
}

/// A policy type the selection engine cannot select with (an unknown or private type).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("unsupported pool policy {0}")]
pub struct UnsupportedPolicy(pub PolicyType);

/// What one selection (handle resolution) asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SelectionRequest {
    /// How many PEs to return at most (capped at the pool size). 0 returns none.
    pub items: usize,
    /// How many of them count as used (see the [module docs](self)); `None` = the policy's
    /// default ([`default_max_increment`]).
    pub max_increment: Option<usize>,
}

impl SelectionRequest {
    /// RSPLIB's registrar default for the number of items (`-maxhresitems`, 3).
    pub const DEFAULT_ITEMS: usize = 3;
    /// The MaxIncrement a pool user's cache uses (RSPLIB: 10⁹, i.e. every returned PE counts).
    pub const CACHE_MAX_INCREMENT: usize = 1_000_000_000;

    /// A registrar's selection: `items` PEs with the policy's default MaxIncrement.
    pub fn registrar(items: usize) -> Self {
        Self {
            items,
            max_increment: None,
        }
    }

    /// A pool user cache's selection: `items` PEs, every one of them counted as used.
    pub fn cache(items: usize) -> Self {
        Self {
            items,
            max_increment: Some(Self::CACHE_MAX_INCREMENT),
        }
    }
}

impl Default for SelectionRequest {
    /// [`SelectionRequest::DEFAULT_ITEMS`] with the policy's default MaxIncrement.
    fn default() -> Self {
        Self::registrar(Self::DEFAULT_ITEMS)
    }
}

/// A PE's selection state, kept by the engine beside the PE's policy values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SelectionState {
    /// Position among equal keys: lower goes first. Given from the pool's counter when the PE
    /// joins and whenever it is used.
    seq: u64,
    /// WRR: the round the PE is in.
    round: u64,
    /// Degradation counter (uses since the last (re-)registration); for WRR the uses in the
    /// current round.
    count: u32,
    /// Position in the pool's weight tree (weighted policies).
    pos: u32,
}

impl SelectionState {
    /// The sequence number (order among PEs with equal keys; lower first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How often the PE was used since its last (re-)registration: the degradation counter of the
    /// degradation policies. For Weighted Round Robin: its uses in the current round.
    pub fn uses(&self) -> u32 {
        self.count
    }

    /// Weighted Round Robin: the round the PE is in.
    pub fn round(&self) -> u64 {
        self.round
    }
}

const MAX: u64 = u32::MAX as u64;

/// `n · degradation`, exact.
fn degradation(count: u32, load_degradation: u32) -> u64 {
    u64::from(count) * u64::from(load_degradation)
}

/// `distance × DPF × 0xffffffff` with the DPF as a wire fraction: `distance · dpf`, exact.
fn distance_penalty(distance: u32, dpf: u32) -> u64 {
    u64::from(distance) * u64::from(dpf)
}

/// The sort key of a sorted policy: (primary, secondary); lower first. Weighted policies never
/// reach it (their key would be (0, seq)).
pub(crate) fn sort_key(policy: &Policy, st: &SelectionState) -> (u64, u64) {
    let primary = match *policy {
        Policy::RoundRobin => 0,
        Policy::WeightedRoundRobin { weight } => {
            // Virtual time round + count/weight: the round is the primary key, the fraction the
            // high half of the secondary; the low half is the sequence number's low 32 bits,
            // which only orders PEs at the same virtual time.
            let w = u64::from(weight.max(1));
            let frac = (u64::from(st.count) << 32) / w;
            return (st.round, (frac << 32) | (st.seq & 0xffff_ffff));
        }
        Policy::Priority { priority } => MAX - u64::from(priority),
        Policy::LeastUsed { load } => u64::from(load),
        Policy::LeastUsedDegradation {
            load,
            load_degradation,
        } => u64::from(load).saturating_add(degradation(st.count, load_degradation)),
        Policy::PriorityLeastUsed {
            load,
            load_degradation,
        } => u64::from(load) + u64::from(load_degradation),
        Policy::PriorityLeastUsedDegradation {
            load,
            load_degradation,
        } => (u64::from(load) + u64::from(load_degradation))
            .saturating_add(degradation(st.count, load_degradation)),
        Policy::LeastUsedDpf {
            load,
            load_dpf,
            distance,
        } => u64::from(load).saturating_add(distance_penalty(distance, load_dpf)),
        Policy::LeastUsedDegradationDpf {
            load,
            load_degradation,
            load_dpf,
            distance,
        } => u64::from(load)
            .saturating_add(degradation(st.count, load_degradation))
            .saturating_add(distance_penalty(distance, load_dpf)),
        Policy::PriorityLeastUsedDpf {
            load,
            load_degradation,
            load_dpf,
            distance,
        } => (u64::from(load) + u64::from(load_degradation))
            .saturating_add(distance_penalty(distance, load_dpf)),
        Policy::PriorityLeastUsedDegradationDpf {
            load,
            load_degradation,
            load_dpf,
            distance,
        } => (u64::from(load) + u64::from(load_degradation))
            .saturating_add(degradation(st.count, load_degradation))
            .saturating_add(distance_penalty(distance, load_dpf)),
        // Weighted policies are never in a sorted index; unknown ones are refused earlier.
        _ => 0,
    };
    (primary, st.seq)
}

/// `max(1, 0xffffffff − used)`.
fn unused(used: u64) -> u32 {
    MAX.saturating_sub(used).max(1) as u32
}

/// The weight of a weighted policy (0 for sorted ones).
pub(crate) fn weight(policy: &Policy, st: &SelectionState) -> u32 {
    match *policy {
        Policy::Random => 1,
        Policy::WeightedRandom { weight } => weight,
        Policy::RandomizedLeastUsed { load } => unused(u64::from(load)),
        Policy::RandomizedPriorityLeastUsed {
            load,
            load_degradation,
        } => unused(u64::from(load) + u64::from(load_degradation)),
        Policy::RandomizedLeastUsedDegradation {
            load,
            load_degradation,
        } => unused(u64::from(load).saturating_add(degradation(st.count, load_degradation))),
        Policy::RandomizedPriorityLeastUsedDegradation {
            load,
            load_degradation,
        } => unused(
            (u64::from(load) + u64::from(load_degradation))
                .saturating_add(degradation(st.count, load_degradation)),
        ),
        Policy::WeightedRandomDpf {
            weight,
            weight_dpf,
            distance,
        } => {
            // weight − round(weight · distance · dpf/0xffffffff), at least 1 (RSPLIB).
            let w = u128::from(weight);
            let penalty = (w * u128::from(distance) * u128::from(weight_dpf) + u128::from(MAX / 2))
                / u128::from(MAX);
            w.saturating_sub(penalty).max(1) as u32
        }
        _ => 0,
    }
}

/// The state of a PE joining a pool: degradation counter 0 (RFC 5356 §5.2.2: "set to 0"), not
/// RSPLIB's one step in (its link helper runs the update hook once on insertion too).
pub(crate) fn on_join(st: &mut SelectionState, seq: u64, round: u64) {
    *st = SelectionState {
        seq,
        round,
        count: 0,
        pos: st.pos,
    };
}

/// A PE was used by a selection: it moves behind its equals and takes its policy's step —
/// exactly one step. RSPLIB steps twice here (unlink, update hook, then a link helper that runs
/// the hook again), which doubles every load degradation and cuts a WRR PE's run per round to
/// about half its weight; RFC 5356 §5.2.2 says "incremented by 1", so rserpool does not copy
/// that.
pub(crate) fn on_used(policy: &Policy, st: &mut SelectionState, seq: u64) {
    st.seq = seq;
    match *policy {
        Policy::WeightedRoundRobin { weight } => {
            st.count += 1;
            if st.count >= weight.max(1) {
                st.round += 1;
                st.count = 0;
            }
        }
        _ => st.count = st.count.saturating_add(1),
    }
}

/// A PE was re-registered (or updated by ENRP): its degradation counter goes back to 0 (RFC 5356
/// §5.2.2); a WRR PE keeps its round and its uses in it, within its new weight.
pub(crate) fn on_update(policy: &Policy, st: &mut SelectionState) {
    match *policy {
        Policy::WeightedRoundRobin { weight } => st.count = st.count.min(weight.max(1) - 1),
        _ => st.count = 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fraction;

    fn st(count: u32) -> SelectionState {
        SelectionState {
            count,
            ..Default::default()
        }
    }

    #[test]
    fn every_known_policy_type_has_a_method_and_a_default_max_increment() {
        for t in PolicyType::ALL {
            assert!(method(t).is_some(), "{t}");
            assert!(default_max_increment(t).is_some(), "{t}");
        }
        assert_eq!(method(PolicyType(0x77)), None);
        assert_eq!(default_max_increment(PolicyType::RANDOM), Some(0));
        assert_eq!(default_max_increment(PolicyType::ROUND_ROBIN), Some(1));
        assert_eq!(
            default_max_increment(PolicyType::RANDOMIZED_LEAST_USED),
            Some(1)
        );
    }

    #[test]
    fn weights_follow_the_formulas() {
        assert_eq!(
            weight(&Policy::RandomizedLeastUsed { load: 0 }, &st(0)),
            u32::MAX
        );
        assert_eq!(
            weight(&Policy::RandomizedLeastUsed { load: u32::MAX }, &st(0)),
            1
        );
        let rlud = Policy::RandomizedLeastUsedDegradation {
            load: 100,
            load_degradation: 10,
        };
        assert_eq!(weight(&rlud, &st(3)), u32::MAX - 130);
        let dpf = Policy::WeightedRandomDpf {
            weight: 9,
            weight_dpf: fraction(0.125),
            distance: 4,
        };
        // 9 − round(9 · 4 · 0.125) = 9 − round(4.5) = 4
        assert_eq!(weight(&dpf, &st(0)), 4);
        let far = Policy::WeightedRandomDpf {
            weight: 9,
            weight_dpf: fraction(0.125),
            distance: 1000,
        };
        assert_eq!(weight(&far, &st(0)), 1);
    }

    #[test]
    fn sort_keys_follow_the_formulas() {
        let lud = Policy::LeastUsedDegradation {
            load: 10,
            load_degradation: 5,
        };
        assert_eq!(sort_key(&lud, &st(2)).0, 20);
        let ludpf = Policy::LeastUsedDpf {
            load: 10,
            load_dpf: fraction(0.5),
            distance: 2,
        };
        assert_eq!(sort_key(&ludpf, &st(0)).0, 10 + 2 * 0x8000_0000);
        // Beyond 100 %: exact, not capped.
        let full = Policy::PriorityLeastUsed {
            load: u32::MAX,
            load_degradation: u32::MAX,
        };
        assert_eq!(sort_key(&full, &st(0)).0, 2 * MAX);
        assert!(
            sort_key(&Policy::Priority { priority: 7 }, &st(0))
                < sort_key(&Policy::Priority { priority: 3 }, &st(0))
        );
    }

    #[test]
    fn set_distance_only_touches_dpf_policies() {
        let mut p = Policy::LeastUsedDpf {
            load: 1,
            load_dpf: 2,
            distance: 0,
        };
        assert!(set_distance(&mut p, 50));
        assert_eq!(p.values().as_slice(), &[1, 2, 50]);
        let mut rr = Policy::RoundRobin;
        assert!(!set_distance(&mut rr, 50));
    }
}
