//! Every pool policy through the handlespace's handle resolution: exact sequences for the
//! deterministic policies, chi-square tests with fixed seeds for the random ones, and the
//! number-of-items / MaxIncrement semantics of draft-dreibholz-rserpool-asap-hropt.

use std::net::Ipv4Addr;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rserpool::handlespace::Handlespace;
use rserpool::policy::{self, SelectionRequest};
use rserpool::wire::{
    Policy, PoolElement, PoolElementId, PoolHandle, RegistrarId, SctpTransport, Transport,
    TransportUse, fraction,
};

const HOME: RegistrarId = RegistrarId(0x1111_1111);

fn pe(id: u32, policy: Policy) -> PoolElement {
    PoolElement {
        id: PoolElementId(id),
        home_registrar: HOME,
        registration_life: 90_000,
        user_transport: Transport::Sctp(SctpTransport {
            port: 7,
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![Ipv4Addr::new(198, 18, 0, id as u8).into()],
        }),
        policy,
        asap_transport: None,
    }
}

fn pool() -> PoolHandle {
    PoolHandle::try_from("PolicyPool").unwrap()
}

/// A handlespace with one pool holding PEs 'A', 'B', … (IDs 1, 2, …) with these policies,
/// registered in that order.
fn setup(policies: &[Policy]) -> Handlespace {
    let mut hs = Handlespace::new();
    for (i, p) in policies.iter().enumerate() {
        hs.register(&pool(), pe(i as u32 + 1, p.clone()), None)
            .unwrap();
    }
    hs
}

fn letter(id: PoolElementId) -> char {
    (b'A' + (id.0 - 1) as u8) as char
}

/// One handle resolution, as letters.
fn resolve(hs: &mut Handlespace, req: SelectionRequest, rng: &mut StdRng) -> String {
    let mut out = Vec::new();
    let n = hs.select(&pool(), req, rng, &mut out).unwrap();
    assert_eq!(n, out.len());
    out.iter()
        .map(|&h| letter(hs.get(h).unwrap().id()))
        .collect()
}

/// `rounds` handle resolutions, as letters separated by spaces.
fn sequence(hs: &mut Handlespace, req: SelectionRequest, rounds: usize) -> String {
    let mut rng = StdRng::seed_from_u64(7);
    (0..rounds)
        .map(|_| resolve(hs, req, &mut rng))
        .collect::<Vec<_>>()
        .join(" ")
}

fn one() -> SelectionRequest {
    SelectionRequest::registrar(1)
}

fn three() -> SelectionRequest {
    SelectionRequest::registrar(3)
}

fn reregister(hs: &mut Handlespace, id: u32, policy: Policy) {
    let r = hs.register(&pool(), pe(id, policy), None).unwrap();
    assert!(!r.is_new());
}

// ---------------------------------------------------------------------------------------------
// Deterministic policies: exact sequences

#[test]
fn round_robin_one_item_cycles_in_registration_order() {
    let mut hs = setup(&vec![Policy::RoundRobin; 4]);
    assert_eq!(sequence(&mut hs, one(), 6), "A B C D A B");
}

#[test]
fn round_robin_three_items_slides_by_max_increment_one() {
    // draft-dreibholz-rserpool-asap-hropt / RSPLIB: ABC, BCD, CDA, DAB.
    let mut hs = setup(&vec![Policy::RoundRobin; 4]);
    assert_eq!(sequence(&mut hs, three(), 5), "ABC BCD CDA DAB ABC");
}

#[test]
fn round_robin_in_a_pool_user_cache_moves_past_every_returned_pe() {
    let mut hs = setup(&vec![Policy::RoundRobin; 4]);
    assert_eq!(
        sequence(&mut hs, SelectionRequest::cache(3), 4),
        "ABC DAB CDA BCD"
    );
}

#[test]
fn explicit_max_increment_two_advances_by_two() {
    let mut hs = setup(&vec![Policy::RoundRobin; 4]);
    let req = SelectionRequest {
        items: 3,
        max_increment: Some(2),
    };
    assert_eq!(sequence(&mut hs, req, 3), "ABC CDA ABC");
}

#[test]
fn max_increment_zero_changes_nothing() {
    let mut hs = setup(&vec![Policy::RoundRobin; 4]);
    let req = SelectionRequest {
        items: 2,
        max_increment: Some(0),
    };
    assert_eq!(sequence(&mut hs, req, 3), "AB AB AB");
}

#[test]
fn items_are_capped_at_the_pool_size_and_zero_items_select_nothing() {
    let mut hs = setup(&vec![Policy::RoundRobin; 3]);
    assert_eq!(
        sequence(&mut hs, SelectionRequest::registrar(10), 2),
        "ABC BCA"
    );
    assert_eq!(sequence(&mut hs, SelectionRequest::registrar(0), 1), "");
}

#[test]
fn a_new_pe_joins_round_robin_at_the_end_and_reregistration_keeps_its_place() {
    let mut hs = setup(&vec![Policy::RoundRobin; 3]);
    assert_eq!(sequence(&mut hs, one(), 2), "A B");
    hs.register(&pool(), pe(4, Policy::RoundRobin), None)
        .unwrap();
    reregister(&mut hs, 3, Policy::RoundRobin);
    assert_eq!(sequence(&mut hs, one(), 6), "C A B D C A");
}

#[test]
fn weighted_round_robin_interleaves_by_weight() {
    // Weights 2, 2, 1: every round serves A and B twice and C once, spread out (RFC 5356
    // §4.2.2), not A A B B C.
    let mut hs = setup(&[
        Policy::WeightedRoundRobin { weight: 2 },
        Policy::WeightedRoundRobin { weight: 2 },
        Policy::WeightedRoundRobin { weight: 1 },
    ]);
    assert_eq!(
        sequence(&mut hs, one(), 15).replace(' ', ""),
        "ABCAB".to_owned() + "CABAB" + "CABAB"
    );
}

#[test]
fn weighted_round_robin_shares_match_weights_over_whole_rounds() {
    let weights = [5u32, 3, 1, 0];
    let mut hs = setup(&weights.map(|weight| Policy::WeightedRoundRobin { weight }));
    // A weight of 0 counts as 1: a round is 5 + 3 + 1 + 1 = 10 selections.
    let s = sequence(&mut hs, one(), 100).replace(' ', "");
    for (i, chunk) in s.as_bytes().chunks(10).enumerate() {
        let count = |c: u8| chunk.iter().filter(|&&x| x == c).count();
        assert_eq!(
            [count(b'A'), count(b'B'), count(b'C'), count(b'D')],
            [5, 3, 1, 1],
            "round {i}: {}",
            String::from_utf8_lossy(chunk)
        );
    }
}

#[test]
fn weighted_round_robin_three_items_slide_like_round_robin() {
    let mut hs = setup(&[
        Policy::WeightedRoundRobin { weight: 1 },
        Policy::WeightedRoundRobin { weight: 1 },
        Policy::WeightedRoundRobin { weight: 1 },
        Policy::WeightedRoundRobin { weight: 1 },
    ]);
    assert_eq!(sequence(&mut hs, three(), 4), "ABC BCD CDA DAB");
}

#[test]
fn priority_takes_the_highest_first_and_rotates_among_equals() {
    let mut hs = setup(&[
        Policy::Priority { priority: 1 },
        Policy::Priority { priority: 5 },
        Policy::Priority { priority: 5 },
        Policy::Priority { priority: 3 },
    ]);
    assert_eq!(sequence(&mut hs, three(), 3), "BCD CBD BCD");
    assert_eq!(sequence(&mut hs, one(), 4), "C B C B");
}

#[test]
fn least_used_takes_the_lowest_load_and_rotates_among_equals() {
    let mut hs = setup(&[
        Policy::LeastUsed {
            load: fraction(0.5),
        },
        Policy::LeastUsed {
            load: fraction(0.1),
        },
        Policy::LeastUsed {
            load: fraction(0.1),
        },
        Policy::LeastUsed {
            load: fraction(0.3),
        },
    ]);
    assert_eq!(sequence(&mut hs, three(), 2), "BCD CBD");
    // A load update (re-registration) reorders at once.
    reregister(&mut hs, 1, Policy::LeastUsed { load: 0 });
    assert_eq!(sequence(&mut hs, three(), 2), "ABC ABC");
}

#[test]
fn least_used_with_degradation_steps_once_per_use_from_zero() {
    // A: load 0, +10 per use; B: load 25, +10 per use. A new PE starts at degradation 0 and
    // steps once per selection (RFC 5356 §5.2.2; RSPLIB's double step would give A A B A B).
    let mut hs = setup(&[
        Policy::LeastUsedDegradation {
            load: 0,
            load_degradation: 10,
        },
        Policy::LeastUsedDegradation {
            load: 25,
            load_degradation: 10,
        },
    ]);
    assert_eq!(sequence(&mut hs, one(), 8), "A A A B A B A B");
    // Now A is at 0 + 5·10 = 50 and B at 25 + 3·10 = 55. Re-registering B resets its
    // degradation to 0, so B (25, 35, 45) goes before A (50) again.
    reregister(
        &mut hs,
        2,
        Policy::LeastUsedDegradation {
            load: 25,
            load_degradation: 10,
        },
    );
    assert_eq!(sequence(&mut hs, one(), 4), "B B B A");
}

#[test]
fn least_used_with_degradation_counts_only_the_first_max_increment_items() {
    // Three items, MaxIncrement 1: only the first of the three is degraded.
    let lud = Policy::LeastUsedDegradation {
        load: 0,
        load_degradation: 10,
    };
    let mut hs = setup(&[lud.clone(), lud.clone(), lud]);
    assert_eq!(sequence(&mut hs, three(), 4), "ABC BCA CAB ABC");
    let uses: Vec<u32> = hs
        .pool(&pool())
        .unwrap()
        .elements()
        .map(|e| e.selection().uses())
        .collect();
    assert_eq!(uses, [2, 1, 1]);
}

#[test]
fn degradation_beyond_full_load_is_ordered_exactly() {
    // RSPLIB caps load + degradation at 100 %; rserpool orders by the exact sum, so a PE that
    // is further beyond full load ranks behind.
    let mut hs = setup(&[
        Policy::LeastUsedDegradation {
            load: u32::MAX,
            load_degradation: u32::MAX,
        },
        Policy::LeastUsedDegradation {
            load: u32::MAX,
            load_degradation: u32::MAX / 2,
        },
    ]);
    assert_eq!(sequence(&mut hs, one(), 5), "A B B B A");
}

#[test]
fn priority_least_used_orders_by_load_plus_degradation() {
    // A 20 + 30 = 50, B 30 + 10 = 40, C 40 + 0 = 40: B and C take turns, A is last.
    let mut hs = setup(&[
        Policy::PriorityLeastUsed {
            load: 20,
            load_degradation: 30,
        },
        Policy::PriorityLeastUsed {
            load: 30,
            load_degradation: 10,
        },
        Policy::PriorityLeastUsed {
            load: 40,
            load_degradation: 0,
        },
    ]);
    assert_eq!(sequence(&mut hs, three(), 3), "BCA CBA BCA");
}

#[test]
fn priority_least_used_degradation_adds_the_degradation_counter() {
    // RSPLIB 0xb0001003: load + degradation + n·degradation. A: 20, 40, 60…; B: 35, 40, 45…
    let mut hs = setup(&[
        Policy::PriorityLeastUsedDegradation {
            load: 0,
            load_degradation: 20,
        },
        Policy::PriorityLeastUsedDegradation {
            load: 30,
            load_degradation: 5,
        },
    ]);
    assert_eq!(sequence(&mut hs, one(), 8), "A B A B B B B A");
}

#[test]
fn least_used_dpf_adds_the_distance_penalty() {
    // load + distance · load-DPF: A 100 + 50·1 = 150, B 120 + 0 = 120, C 100 + 50·0 = 100.
    let mut a = Policy::LeastUsedDpf {
        load: 100,
        load_dpf: 1,
        distance: 0,
    };
    assert!(policy::set_distance(&mut a, 50));
    let mut hs = setup(&[
        a,
        Policy::LeastUsedDpf {
            load: 120,
            load_dpf: 1,
            distance: 0,
        },
        Policy::LeastUsedDpf {
            load: 100,
            load_dpf: 0,
            distance: 50,
        },
    ]);
    assert_eq!(sequence(&mut hs, three(), 2), "CBA CBA");
    // With real fractions: a DPF of 0.5 per ms makes 1 ms of distance worth half a full load.
    let mut hs = setup(&[
        Policy::LeastUsedDpf {
            load: fraction(0.1),
            load_dpf: fraction(0.5),
            distance: 1,
        },
        Policy::LeastUsedDpf {
            load: fraction(0.5),
            load_dpf: fraction(0.5),
            distance: 0,
        },
    ]);
    assert_eq!(sequence(&mut hs, one(), 2), "B B");
}

#[test]
fn least_used_degradation_dpf_combines_degradation_and_distance() {
    // A: 0 + 10n + 2·10 = 20, 30, 40…; B: 25 + 10n = 25, 35, 45…
    let mut hs = setup(&[
        Policy::LeastUsedDegradationDpf {
            load: 0,
            load_degradation: 10,
            load_dpf: 10,
            distance: 2,
        },
        Policy::LeastUsedDegradationDpf {
            load: 25,
            load_degradation: 10,
            load_dpf: 10,
            distance: 0,
        },
    ]);
    assert_eq!(sequence(&mut hs, one(), 6), "A B A B A B");
}

#[test]
fn priority_least_used_dpf_variants() {
    // PLU-DPF: load + degradation + distance·DPF, static. A 10 + 10 + 3·10 = 50, B 45.
    let mut hs = setup(&[
        Policy::PriorityLeastUsedDpf {
            load: 10,
            load_degradation: 10,
            load_dpf: 10,
            distance: 3,
        },
        Policy::PriorityLeastUsedDpf {
            load: 40,
            load_degradation: 5,
            load_dpf: 10,
            distance: 0,
        },
    ]);
    assert_eq!(sequence(&mut hs, one(), 3), "B B B");
    // PLUD-DPF: + n·degradation. A: 50, 60, 70…; B: 45, 50, 55, 60…
    let mut hs = setup(&[
        Policy::PriorityLeastUsedDegradationDpf {
            load: 10,
            load_degradation: 10,
            load_dpf: 10,
            distance: 3,
        },
        Policy::PriorityLeastUsedDegradationDpf {
            load: 40,
            load_degradation: 5,
            load_dpf: 10,
            distance: 0,
        },
    ]);
    assert_eq!(sequence(&mut hs, one(), 6), "B A B B A B");
}

// ---------------------------------------------------------------------------------------------
// Random policies: chi-square with fixed seeds

/// Pearson's chi-square statistic of observed counts against expected probabilities.
fn chi_square(observed: &[u64], expected_p: &[f64]) -> f64 {
    let n: u64 = observed.iter().sum();
    observed
        .iter()
        .zip(expected_p)
        .map(|(&o, &p)| {
            let e = p * n as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

/// Upper 0.1 % critical values of the chi-square distribution, by degrees of freedom.
fn critical(df: usize) -> f64 {
    [
        0.0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88,
    ][df]
}

/// How often each PE comes first in `draws` single-item resolutions.
fn first_pick_counts(hs: &mut Handlespace, n_pes: usize, draws: usize, seed: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = vec![0u64; n_pes];
    let mut out = Vec::new();
    for _ in 0..draws {
        out.clear();
        hs.select(&pool(), one(), &mut rng, &mut out).unwrap();
        counts[(hs.get(out[0]).unwrap().id().0 - 1) as usize] += 1;
    }
    counts
}

fn assert_distribution(counts: &[u64], weights: &[f64]) {
    let total: f64 = weights.iter().sum();
    let p: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let chi = chi_square(counts, &p);
    assert!(
        chi < critical(counts.len() - 1),
        "chi-square {chi:.2} for counts {counts:?}, expected shares {p:?}"
    );
}

#[test]
fn random_is_uniform() {
    let mut hs = setup(&vec![Policy::Random; 5]);
    let counts = first_pick_counts(&mut hs, 5, 50_000, 1);
    assert_distribution(&counts, &[1.0; 5]);
}

#[test]
fn weighted_random_follows_weights() {
    let mut hs = setup(&[1u32, 2, 3, 4].map(|weight| Policy::WeightedRandom { weight }));
    let counts = first_pick_counts(&mut hs, 4, 50_000, 2);
    assert_distribution(&counts, &[1.0, 2.0, 3.0, 4.0]);
}

/// Draws `items` PEs without replacement many times and checks the distribution of the second:
/// P(second = j) = Σ_{i≠j} w_i/W · w_j/(W − w_i). One weight dominates, so the second draw
/// mostly comes from the small rest.
fn check_second_draw(items: usize, seed: u64) {
    let weights = [1000.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let k = weights.len();
    let mut hs = setup(&weights.map(|w| Policy::WeightedRandom { weight: w as u32 }));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut second = vec![0u64; k];
    let mut out = Vec::new();
    for _ in 0..40_000 {
        out.clear();
        hs.select(
            &pool(),
            SelectionRequest::registrar(items),
            &mut rng,
            &mut out,
        )
        .unwrap();
        let mut distinct = out.clone();
        distinct.sort_by_key(|h| hs.get(*h).unwrap().id());
        distinct.dedup();
        assert_eq!(distinct.len(), items);
        second[(hs.get(out[1]).unwrap().id().0 - 1) as usize] += 1;
    }
    let w_total: f64 = weights.iter().sum();
    let p: Vec<f64> = (0..k)
        .map(|j| {
            (0..k)
                .filter(|&i| i != j)
                .map(|i| weights[i] / w_total * weights[j] / (w_total - weights[i]))
                .sum()
        })
        .collect();
    let chi = chi_square(&second, &p);
    assert!(
        chi < critical(k - 1),
        "chi-square {chi:.2}: {second:?} vs {p:?}"
    );
}

#[test]
fn weighted_random_draws_the_second_of_few_items_exactly() {
    // Up to 8 items the engine draws around the drawn PEs (retries, then an exact draw in the
    // remaining weight).
    check_second_draw(2, 3);
}

#[test]
fn weighted_random_draws_the_second_of_many_items_exactly() {
    // Beyond 8 items it takes drawn PEs' weights out for the rest of the selection.
    check_second_draw(9, 16);
}

#[test]
fn weighted_random_weight_zero_is_drawn_only_when_nothing_else_is_left() {
    let mut hs = setup(&[0u32, 5, 0].map(|weight| Policy::WeightedRandom { weight }));
    let counts = first_pick_counts(&mut hs, 3, 2_000, 4);
    assert_eq!(counts, [0, 2_000, 0]);
    // All three: B first, then A and C in either order, each about half the time.
    let mut rng = StdRng::seed_from_u64(5);
    let mut a_second = 0;
    for _ in 0..2_000 {
        let s = resolve(&mut hs, SelectionRequest::registrar(3), &mut rng);
        assert!(s == "BAC" || s == "BCA", "{s}");
        a_second += u64::from(s == "BAC");
    }
    assert_distribution(&[a_second, 2_000 - a_second], &[1.0, 1.0]);
}

#[test]
fn random_selections_are_reproducible_from_the_seed() {
    let run = |seed| {
        let mut hs = setup(&vec![Policy::Random; 8]);
        let mut rng = StdRng::seed_from_u64(seed);
        (0..20)
            .map(|_| resolve(&mut hs, three(), &mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn random_returns_distinct_pes_up_to_the_whole_pool() {
    let mut hs = setup(&vec![Policy::Random; 6]);
    let mut rng = StdRng::seed_from_u64(6);
    for _ in 0..100 {
        let mut s: Vec<char> = resolve(&mut hs, SelectionRequest::registrar(9), &mut rng)
            .chars()
            .collect();
        s.sort_unstable();
        assert_eq!(s.into_iter().collect::<String>(), "ABCDEF");
    }
}

#[test]
fn asking_for_every_pe_of_a_large_weighted_pool_returns_each_once() {
    // hropt's 0xffffffff items: the whole pool, each PE once, weight-0 ones last.
    let weights: Vec<Policy> = (0..3000)
        .map(|i| Policy::WeightedRandom { weight: i % 7 })
        .collect();
    let mut hs = setup(&weights);
    let mut rng = StdRng::seed_from_u64(15);
    let mut out = Vec::new();
    let n = hs
        .select(
            &pool(),
            SelectionRequest::registrar(usize::MAX),
            &mut rng,
            &mut out,
        )
        .unwrap();
    assert_eq!(n, 3000);
    let ids: Vec<u32> = out.iter().map(|&h| hs.get(h).unwrap().id().0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 3000);
    let zero = |id: &u32| (id - 1) % 7 == 0;
    let first_zero = ids.iter().position(zero).unwrap();
    assert!(ids[first_zero..].iter().all(zero));
    assert_eq!(first_zero, 3000 - 429);
}

#[test]
fn randomized_least_used_weighs_by_unused_capacity() {
    // Weights 0xffffffff − load: loads 0, ½, ¾ give 4 : 2 : 1.
    let mut hs =
        setup(&[0.0, 0.5, 0.75].map(|l| Policy::RandomizedLeastUsed { load: fraction(l) }));
    let counts = first_pick_counts(&mut hs, 3, 30_000, 7);
    assert_distribution(&counts, &[4.0, 2.0, 1.0]);
}

#[test]
fn randomized_priority_least_used_weighs_by_load_plus_degradation() {
    // RSPLIB 0xb0001001: 0xffffffff − load − degradation: ¼ + ¼ vs 0 + 0 gives 1 : 2.
    let mut hs = setup(&[
        Policy::RandomizedPriorityLeastUsed {
            load: fraction(0.25),
            load_degradation: fraction(0.25),
        },
        Policy::RandomizedPriorityLeastUsed {
            load: 0,
            load_degradation: 0,
        },
    ]);
    let counts = first_pick_counts(&mut hs, 2, 30_000, 8);
    assert_distribution(&counts, &[1.0, 2.0]);
}

#[test]
fn randomized_least_used_degradation_lowers_a_pe_with_each_use_until_reregistration() {
    // RSPLIB 0xb0001002: A degrades by ¼ per use, so after 4 uses its weight is 1 (of 2³²)
    // and B takes everything, until A re-registers.
    let a = Policy::RandomizedLeastUsedDegradation {
        load: 0,
        load_degradation: fraction(0.25),
    };
    let b = Policy::RandomizedLeastUsedDegradation {
        load: 0,
        load_degradation: 0,
    };
    let mut hs = setup(&[a.clone(), b]);
    let counts = first_pick_counts(&mut hs, 2, 2_000, 9);
    assert!(counts[0] <= 4, "A picked {} times", counts[0]);
    assert_eq!(
        hs.get_by_id(&pool(), PoolElementId(1))
            .unwrap()
            .selection()
            .uses(),
        counts[0] as u32
    );
    reregister(&mut hs, 1, a);
    assert_eq!(
        hs.get_by_id(&pool(), PoolElementId(1))
            .unwrap()
            .selection()
            .uses(),
        0
    );
    // Statelessly (MaxIncrement 0) the fresh weights are equal again.
    let mut rng = StdRng::seed_from_u64(11);
    let mut counts = [0u64; 2];
    let req = SelectionRequest {
        items: 1,
        max_increment: Some(0),
    };
    for _ in 0..20_000 {
        let s = resolve(&mut hs, req, &mut rng);
        counts[usize::from(s == "B")] += 1;
    }
    assert_distribution(&counts, &[1.0, 1.0]);
}

#[test]
fn randomized_priority_least_used_degradation_adds_both() {
    // RSPLIB 0xb0001004: MAX − load − degradation − n·degradation. Statelessly: A ½ + ¼ used,
    // B ¼ + 0: weights ¼ : ¾.
    let mut hs = setup(&[
        Policy::RandomizedPriorityLeastUsedDegradation {
            load: fraction(0.5),
            load_degradation: fraction(0.25),
        },
        Policy::RandomizedPriorityLeastUsedDegradation {
            load: fraction(0.25),
            load_degradation: 0,
        },
    ]);
    let mut rng = StdRng::seed_from_u64(12);
    let req = SelectionRequest {
        items: 1,
        max_increment: Some(0),
    };
    let mut counts = [0u64; 2];
    for _ in 0..20_000 {
        counts[usize::from(resolve(&mut hs, req, &mut rng) == "B")] += 1;
    }
    assert_distribution(&counts, &[1.0, 3.0]);
    // With the default MaxIncrement, A's weight drops to 1 after one use (¾ + ¼ = full).
    let counts = first_pick_counts(&mut hs, 2, 2_000, 13);
    assert!(counts[0] <= 1, "{counts:?}");
}

#[test]
fn weighted_random_dpf_penalises_distance() {
    // RSPLIB 0xb0002001: weight − round(weight · distance · DPF): 9 at 0 ms; 9 − round(4.5) = 4
    // at 4 ms (DPF 0.125 per ms); at least 1 however far.
    let dpf = |distance| Policy::WeightedRandomDpf {
        weight: 9,
        weight_dpf: fraction(0.125),
        distance,
    };
    let mut hs = setup(&[dpf(0), dpf(4), dpf(1000)]);
    let counts = first_pick_counts(&mut hs, 3, 30_000, 14);
    assert_distribution(&counts, &[9.0, 4.0, 1.0]);
}
