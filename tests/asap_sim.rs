//! Deterministic simulations (virtual clock) of registrars with many pool elements and pool
//! users, all running the real sans-IO cores: registration, re-registration, keep-alive loss,
//! unreachability reports, resolution by each policy, failover between registrars, server
//! hunt, announces and the pool user's cache.

mod sim;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use rserpool::asap::{
    AsapClient, ClientConfig, ClientError, ClientEvent, ClientOutput, Outcome, PoolElementSpec,
};
use rserpool::handlespace::AssociationId;
use rserpool::registrar::{Output, PeerInfo, Registrar, RegistrarConfig};
use rserpool::wire::*;
use sim::{Sim, ph, spec};

const SEC: Duration = Duration::from_secs(1);

fn register(sim: &mut Sim, c: usize, s: PoolElementSpec) -> PoolElementId {
    let rid = sim.with_client(c, |cl, now| cl.register(now, s));
    match sim.wait_done(c, rid, 5 * SEC) {
        Ok(Outcome::Registered { pe_id, .. }) => pe_id,
        other => panic!("registration of client {c}: {other:?}"),
    }
}

fn resolve(
    sim: &mut Sim,
    c: usize,
    pool: &str,
    items: Option<u32>,
) -> Result<Vec<PoolElement>, ClientError> {
    let rid = sim.with_client(c, |cl, now| cl.resolve(now, &ph(pool), items));
    match sim.wait_done(c, rid, 120 * SEC)? {
        Outcome::Resolved(pes) => Ok(pes),
        other => panic!("unexpected {other:?}"),
    }
}

fn ids(pes: &[PoolElement]) -> Vec<u32> {
    pes.iter().map(|p| p.id.0).collect()
}

fn new_pe_client(sim: &mut Sim, prs: &[usize], seed: u64) -> usize {
    sim.add_client(Sim::client_config(prs), seed)
}

#[test]
fn many_pes_and_pus_register_and_resolve() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(0x1234), 1);
    let pools = [
        ("RR", Policy::RoundRobin),
        ("LU", Policy::LeastUsed { load: 0 }),
        ("WRAND", Policy::WeightedRandom { weight: 5 }),
    ];
    let mut pes: HashMap<u32, (usize, &str)> = HashMap::new();
    for i in 0..60 {
        let c = new_pe_client(&mut sim, &[pr], 100 + i);
        let (pool, policy) = &pools[i as usize % 3];
        let id = register(&mut sim, c, spec(pool, 7000, policy.clone(), 30 * SEC));
        pes.insert(id.0, (c, pool));
    }
    let hs = sim.prs[pr].core.handlespace();
    assert_eq!(hs.len(), 60);
    assert_eq!(hs.pool_count(), 3);
    for e in hs.iter() {
        let (c, pool) = pes[&e.id().0];
        assert_eq!(e.pool_handle(), &ph(pool));
        assert_eq!(e.home_registrar(), RegistrarId(0x1234));
        // The registrar recorded the association as the ASAP transport, and the PE's user
        // transport got the address of its association.
        let asap = e.element().asap_transport.as_ref().unwrap();
        assert_eq!(asap.addresses, vec![sim.client_addr(c)]);
        assert_eq!(asap.port, sim.clients[c].port);
        assert_eq!(
            e.element().user_transport.addresses(),
            &[sim.client_addr(c)]
        );
    }

    let pus: Vec<usize> = (0..20)
        .map(|i| new_pe_client(&mut sim, &[pr], 1000 + i))
        .collect();
    for &pu in &pus {
        for (pool, policy) in &pools {
            let got = resolve(&mut sim, pu, pool, None).unwrap();
            assert_eq!(got.len(), 3, "the registrar's default: 3 PEs");
            for pe in &got {
                assert_eq!(pes[&pe.id.0].1, *pool);
                assert_eq!(pe.policy.policy_type(), policy.policy_type());
                assert!(
                    pe.asap_transport.is_none(),
                    "no ASAP transport to pool users"
                );
            }
        }
        let all = resolve(&mut sim, pu, "LU", Some(u32::MAX)).unwrap();
        assert_eq!(all.len(), 20);
        assert_eq!(
            resolve(&mut sim, pu, "Nope", None),
            Err(ClientError::UnknownPoolHandle)
        );
    }
    let st = sim.prs[pr].core.stats();
    assert_eq!(st.registrations, 60);
    assert_eq!(st.handle_resolutions, 20 * 4);
    assert_eq!(st.handle_resolution_failures, 20);
}

#[test]
fn reregistration_keeps_the_pe_and_updates_its_values() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    let b = new_pe_client(&mut sim, &[pr], 2);
    let lu = |load| Policy::LeastUsed { load };
    let ida = register(&mut sim, a, spec("LU", 1, lu(fraction(0.2)), 2 * SEC));
    let idb = register(&mut sim, b, spec("LU", 1, lu(fraction(0.5)), 2 * SEC));
    let pu = new_pe_client(&mut sim, &[pr], 3);
    assert_eq!(ids(&resolve(&mut sim, pu, "LU", Some(1)).unwrap()), [ida.0]);

    sim.run_for(30 * SEC);
    let st = sim.prs[pr].core.stats();
    assert!(
        st.reregistrations >= 2 * 14,
        "T4 every 2 s for 30 s: {st:?}"
    );
    assert_eq!(sim.prs[pr].core.handlespace().len(), 2);

    // A's load rises: B is now the least used.
    let rid = sim.with_client(a, |c, now| {
        c.update_policy(now, &ph("LU"), ida, lu(fraction(0.9)))
    });
    assert!(matches!(
        sim.wait_done(a, rid, 5 * SEC),
        Ok(Outcome::Registered { .. })
    ));
    let stored = sim.prs[pr]
        .core
        .handlespace()
        .get_by_id(&ph("LU"), ida)
        .unwrap();
    assert_eq!(stored.element().policy, lu(fraction(0.9)));
    assert_eq!(
        ids(&resolve(&mut sim, pu, "LU", Some(2)).unwrap()),
        [idb.0, ida.0]
    );
    assert_eq!(
        sim.prs[pr].core.stats().registrations,
        2,
        "updates are re-registrations"
    );
}

fn fast_keep_alive(id: u32) -> RegistrarConfig {
    let mut c = Sim::registrar_config(id);
    c.keep_alive_transmission_interval = SEC;
    c.keep_alive_timeout_interval = SEC;
    c
}

#[test]
fn keep_alive_loss_removes_the_pe() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(fast_keep_alive(1), 1);
    let live = new_pe_client(&mut sim, &[pr], 1);
    let hung = new_pe_client(&mut sim, &[pr], 2);
    let id_live = register(&mut sim, live, spec("P", 1, Policy::RoundRobin, 60 * SEC));
    let id_hung = register(&mut sim, hung, spec("P", 1, Policy::RoundRobin, 60 * SEC));

    // Answered keep-alives keep both PEs for a long time.
    sim.run_for(20 * SEC);
    let st = sim.prs[pr].core.stats();
    assert!(st.keep_alives_sent >= 2 * 13, "{st:?}");
    assert!(
        st.keep_alive_acks + 2 >= st.keep_alives_sent,
        "at most one outstanding per PE: {st:?}"
    );
    assert_eq!(sim.prs[pr].core.handlespace().len(), 2);

    // The hung PE stops answering: gone within interval·1.5 + timeout.
    sim.clients[hung].frozen = true;
    let t0 = sim.elapsed();
    while sim.prs[pr]
        .core
        .handlespace()
        .find(&ph("P"), id_hung)
        .is_some()
    {
        assert!(
            sim.elapsed() - t0 < Duration::from_millis(2600),
            "not removed in time"
        );
        sim.run_for(Duration::from_millis(10));
    }
    assert_eq!(sim.prs[pr].core.stats().keep_alive_timeouts, 1);
    // Its association was aborted; the live PE is untouched.
    assert_eq!(sim.links_up(hung), 0);
    let pu = new_pe_client(&mut sim, &[pr], 3);
    for _ in 0..5 {
        assert_eq!(ids(&resolve(&mut sim, pu, "P", None).unwrap()), [id_live.0]);
    }
}

#[test]
fn unreachable_reports_probe_and_then_remove_the_pe() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    let b = new_pe_client(&mut sim, &[pr], 2);
    let ida = register(&mut sim, a, spec("P", 1, Policy::RoundRobin, 10 * SEC));
    let idb = register(&mut sim, b, spec("P", 1, Policy::RoundRobin, 10 * SEC));
    let pu = new_pe_client(&mut sim, &[pr], 3);
    resolve(&mut sim, pu, "P", None).unwrap();

    // MAX-BAD-PE-REPORT = 3: three reports only probe A (it answers each keep-alive), one
    // probe per report as they come 1.1 s apart (RFC 5355 §2.14: at most one probe a second).
    let base = sim.prs[pr].core.stats();
    for n in 1..=3 {
        sim.with_client(pu, |c, now| c.report_unreachable(now, &ph("P"), ida));
        sim.run_for(Duration::from_millis(1100));
        let st = sim.prs[pr].core.stats();
        assert_eq!(st.unreachable_reports, n);
        assert_eq!(
            st.keep_alives_sent - base.keep_alives_sent,
            n,
            "an immediate keep-alive per report"
        );
        assert_eq!(st.keep_alive_acks - base.keep_alive_acks, n);
        assert!(sim.prs[pr].core.handlespace().find(&ph("P"), ida).is_some());
    }
    // The fourth exceeds it.
    sim.with_client(pu, |c, now| c.report_unreachable(now, &ph("P"), ida));
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.prs[pr].core.stats().unreachable_removals, 1);
    assert_eq!(
        ids(&resolve(&mut sim, pu, "P", Some(u32::MAX)).unwrap()),
        [idb.0]
    );
    // A is alive: its next re-registration brings it back.
    sim.run_for(11 * SEC);
    let mut back = ids(&resolve(&mut sim, pu, "P", Some(u32::MAX)).unwrap());
    back.sort();
    let mut want = vec![ida.0, idb.0];
    want.sort();
    assert_eq!(back, want);
}

#[test]
fn unreachable_reports_do_not_flood_a_pe_with_keep_alives() {
    let mut sim = Sim::new();
    let mut config = Sim::registrar_config(1);
    config.max_bad_pe_reports = 1000;
    let pr = sim.add_registrar(config, 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    let ida = register(&mut sim, a, spec("P", 1, Policy::RoundRobin, 60 * SEC));
    let pu = new_pe_client(&mut sim, &[pr], 3);
    resolve(&mut sim, pu, "P", None).unwrap();
    let base = sim.prs[pr].core.stats();
    // 200 reports in 2 s (one every 10 ms, each answered keep-alive long done before the next).
    for _ in 0..200 {
        sim.with_client(pu, |c, now| c.report_unreachable(now, &ph("P"), ida));
        sim.run_for(Duration::from_millis(10));
    }
    let st = sim.prs[pr].core.stats();
    assert_eq!(st.unreachable_reports - base.unreachable_reports, 200);
    let probes = st.keep_alives_sent - base.keep_alives_sent;
    // At most one probe a second, plus a regular keep-alive that may fall due meanwhile.
    assert!(
        (2..=4).contains(&probes),
        "{probes} keep-alives for 200 reports in 2 s"
    );
    assert!(st.probes_limited >= 190, "{st:?}");
    assert!(sim.prs[pr].core.handlespace().find(&ph("P"), ida).is_some());
}

#[test]
fn a_lost_association_removes_its_pes() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    let b = new_pe_client(&mut sim, &[pr], 2);
    // One process, two PEs in two pools.
    register(&mut sim, a, spec("P", 1, Policy::RoundRobin, 30 * SEC));
    register(&mut sim, a, spec("Q", 2, Policy::RoundRobin, 30 * SEC));
    let idb = register(&mut sim, b, spec("P", 1, Policy::RoundRobin, 30 * SEC));
    assert_eq!(sim.prs[pr].core.handlespace().len(), 3);
    sim.kill_client(a);
    sim.run_for(2 * SEC);
    let hs = sim.prs[pr].core.handlespace();
    assert_eq!(hs.len(), 1);
    assert!(hs.find(&ph("P"), idb).is_some());
    assert!(hs.pool(&ph("Q")).is_none(), "the empty pool is gone");
    assert_eq!(sim.prs[pr].core.stats().association_removals, 2);
}

/// How often each PE comes first in `n` resolutions of one item.
fn first_counts(sim: &mut Sim, pu: usize, pool: &str, n: usize) -> HashMap<u32, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        let pes = resolve(sim, pu, pool, Some(1)).unwrap();
        assert_eq!(pes.len(), 1);
        *m.entry(pes[0].id.0).or_default() += 1;
    }
    m
}

#[test]
fn resolution_follows_each_policy() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 7);
    let pu = new_pe_client(&mut sim, &[pr], 99);
    let mut seed = 0;
    let mut pool = |sim: &mut Sim, name: &str, policies: Vec<Policy>| -> Vec<u32> {
        policies
            .into_iter()
            .map(|p| {
                seed += 1;
                let c = new_pe_client(sim, &[pr], seed);
                register(sim, c, spec(name, 1, p, 60 * SEC)).0
            })
            .collect()
    };

    // Round Robin: every PE first in turn.
    let rr = pool(&mut sim, "RR", vec![Policy::RoundRobin; 4]);
    let firsts: Vec<u32> = (0..8)
        .map(|_| resolve(&mut sim, pu, "RR", None).unwrap()[0].id.0)
        .collect();
    assert_eq!(&firsts[..4], &firsts[4..], "a cycle of 4");
    let mut cycle = firsts[..4].to_vec();
    cycle.sort();
    let mut want = rr.clone();
    want.sort();
    assert_eq!(cycle, want);

    // Weighted Round Robin 3:1.
    let wrr = pool(
        &mut sim,
        "WRR",
        vec![
            Policy::WeightedRoundRobin { weight: 3 },
            Policy::WeightedRoundRobin { weight: 1 },
        ],
    );
    let c = first_counts(&mut sim, pu, "WRR", 40);
    assert_eq!((c[&wrr[0]], c[&wrr[1]]), (30, 10));

    // Priority: the highest always.
    let prio = pool(
        &mut sim,
        "PRIO",
        vec![
            Policy::Priority { priority: 1 },
            Policy::Priority { priority: 9 },
            Policy::Priority { priority: 5 },
        ],
    );
    let c = first_counts(&mut sim, pu, "PRIO", 10);
    assert_eq!(c.get(&prio[1]), Some(&10));
    assert_eq!(
        ids(&resolve(&mut sim, pu, "PRIO", Some(3)).unwrap()),
        [prio[1], prio[2], prio[0]]
    );

    // Least Used: the lowest load always; equal loads take turns.
    let lu = pool(
        &mut sim,
        "LU",
        vec![
            Policy::LeastUsed {
                load: fraction(0.3),
            },
            Policy::LeastUsed {
                load: fraction(0.1),
            },
            Policy::LeastUsed {
                load: fraction(0.1),
            },
        ],
    );
    let c = first_counts(&mut sim, pu, "LU", 10);
    assert_eq!(
        (c.get(&lu[0]), c.get(&lu[1]), c.get(&lu[2])),
        (None, Some(&5), Some(&5))
    );

    // Least Used with Degradation: each selection adds the degradation to the load.
    let lud = pool(
        &mut sim,
        "LUD",
        vec![
            Policy::LeastUsedDegradation {
                load: 0,
                load_degradation: fraction(0.1),
            },
            Policy::LeastUsedDegradation {
                load: fraction(0.25),
                load_degradation: fraction(0.1),
            },
        ],
    );
    let seq: Vec<u32> = (0..4)
        .map(|_| resolve(&mut sim, pu, "LUD", Some(1)).unwrap()[0].id.0)
        .collect();
    assert_eq!(
        seq,
        [lud[0], lud[0], lud[0], lud[1]],
        "0 %, 10 %, 20 % < 25 %; then 30 % > 25 %"
    );

    // Priority Least Used: load + degradation decides.
    let plu = pool(
        &mut sim,
        "PLU",
        vec![
            Policy::PriorityLeastUsed {
                load: fraction(0.1),
                load_degradation: fraction(0.5),
            },
            Policy::PriorityLeastUsed {
                load: fraction(0.3),
                load_degradation: fraction(0.1),
            },
        ],
    );
    let c = first_counts(&mut sim, pu, "PLU", 6);
    assert_eq!(c.get(&plu[1]), Some(&6));

    // Random: uniform (fixed seed: the counts are reproducible, the bounds generous).
    let rnd = pool(&mut sim, "RAND", vec![Policy::Random; 4]);
    let c = first_counts(&mut sim, pu, "RAND", 400);
    for id in &rnd {
        assert!((60..=140).contains(&c[id]), "{c:?}");
    }

    // Weighted Random 1:1:2:4.
    let wr = pool(
        &mut sim,
        "WRAND",
        [1, 1, 2, 4]
            .map(|w| Policy::WeightedRandom { weight: w })
            .to_vec(),
    );
    let c = first_counts(&mut sim, pu, "WRAND", 800);
    for (id, w) in wr.iter().zip([1.0, 1.0, 2.0, 4.0]) {
        let expect = 800.0 * w / 8.0;
        let got = c.get(id).copied().unwrap_or(0) as f64;
        assert!(
            (got - expect).abs() < expect * 0.3 + 10.0,
            "{id}: {got} vs {expect}: {c:?}"
        );
    }

    // Randomized Least Used: weight ∝ 1 − load; a fully loaded PE is (almost) never chosen.
    let rlu = pool(
        &mut sim,
        "RLU",
        vec![
            Policy::RandomizedLeastUsed { load: 0 },
            Policy::RandomizedLeastUsed { load: u32::MAX },
        ],
    );
    let c = first_counts(&mut sim, pu, "RLU", 200);
    assert_eq!(c.get(&rlu[0]), Some(&200));
}

#[test]
fn pes_and_pus_fail_over_to_another_registrar() {
    let mut sim = Sim::new();
    let pr0 = sim.add_registrar(Sim::registrar_config(1), 1);
    let pr1 = sim.add_registrar(Sim::registrar_config(2), 2);
    let pe = new_pe_client(&mut sim, &[pr0, pr1], 1);
    let id = register(&mut sim, pe, spec("P", 1, Policy::RoundRobin, 30 * SEC));
    let home = (0..2)
        .find(|&p| sim.prs[p].core.handlespace().len() == 1)
        .unwrap();
    let other = 1 - home;
    assert_eq!(sim.prs[other].core.handlespace().len(), 0);

    sim.crash_registrar(home);
    // SCTP notices the loss; the PE hunts and registers at the other registrar at once.
    sim.run_for(2 * SEC);
    let hs = sim.prs[other].core.handlespace();
    assert!(
        hs.find(&ph("P"), id).is_some(),
        "re-registered at the other registrar"
    );
    assert_eq!(
        hs.get_by_id(&ph("P"), id).unwrap().home_registrar(),
        sim.prs[other].core.id()
    );
    assert!(
        sim.clients[pe]
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::HomeLost))
    );

    // A pool user that knows both registrars resolves through the survivor.
    let pu = new_pe_client(&mut sim, &[pr0, pr1], 2);
    assert_eq!(ids(&resolve(&mut sim, pu, "P", None).unwrap()), [id.0]);
}

#[test]
fn an_unresponsive_registrar_is_given_up_after_t1() {
    let mut sim = Sim::new();
    let pr0 = sim.add_registrar(Sim::registrar_config(1), 1);
    let pr1 = sim.add_registrar(Sim::registrar_config(2), 2);
    let pe = new_pe_client(&mut sim, &[pr1], 1);
    let id = register(&mut sim, pe, spec("P", 1, Policy::RoundRobin, 30 * SEC));
    // The PU talks to pr0 first (its only choice), which then hangs with its associations up.
    let mut cfg = Sim::client_config(&[pr0]);
    cfg.t1_enrp_request = 2 * SEC;
    let pu = sim.add_client(cfg, 3);
    assert_eq!(
        resolve(&mut sim, pu, "P", None),
        Err(ClientError::UnknownPoolHandle)
    );
    sim.prs[pr0].alive = false;
    sim.with_client(pu, |c, now| c.add_registrar(now, Sim::pr_endpoint(pr1)));
    let t0 = sim.elapsed();
    let rid = sim.with_client(pu, |c, now| c.resolve(now, &ph("P"), None));
    let got = sim.wait_done(pu, rid, 30 * SEC);
    assert_eq!(
        got.map(|o| match o {
            Outcome::Resolved(p) => ids(&p),
            _ => vec![],
        }),
        Ok(vec![id.0])
    );
    let took = sim.elapsed() - t0;
    assert!(
        took >= 2 * SEC && took < 3 * SEC,
        "T1 (2 s) then a new hunt: {took:?}"
    );
    assert_eq!(sim.clients[pu].core.stats().request_timeouts, 1);
    // The hung registrar's association was aborted.
    assert!(
        sim.clients[pu]
            .outputs_seen
            .iter()
            .any(|(_, o)| matches!(o, ClientOutput::Abort { .. }))
    );
}

#[test]
fn server_hunt_tries_three_at_once_and_backs_off() {
    let mut sim = Sim::new();
    let prs: Vec<usize> = (0..5)
        .map(|i| sim.add_registrar(Sim::registrar_config(i + 1), i as u64))
        .collect();
    sim.blackholed = prs.clone();
    let mut cfg = Sim::client_config(&prs);
    cfg.t5_server_hunt = 4 * SEC;
    cfg.t1_enrp_request = 100 * SEC;
    let pu = sim.add_client(cfg, 1);
    let rid = sim.with_client(pu, |c, now| c.resolve(now, &ph("P"), None));
    // Round 1: three registrars at once; their connects fail after 3 s, so the other two are
    // tried (SH4); T5 (4 s) ends the round; the next rounds come after 8 s, 16 s, ...
    sim.run_for(60 * SEC);
    let connects: Vec<Duration> = sim.clients[pu]
        .outputs_seen
        .iter()
        .filter(|(_, o)| matches!(o, ClientOutput::Connect { .. }))
        .map(|(t, _)| *t)
        .collect();
    let at = |t: Duration| connects.iter().filter(|&&x| x == t).count();
    assert_eq!(at(Duration::ZERO), 3, "{connects:?}");
    assert_eq!(at(3 * SEC), 2, "{connects:?}");
    assert_eq!(at(4 * SEC), 3, "round 2 at T5: {connects:?}");
    assert_eq!(at(12 * SEC), 3, "round 3 after 2·T5: {connects:?}");
    assert_eq!(at(28 * SEC), 3, "round 4 after 4·T5: {connects:?}");
    // Now one registrar comes back: the next round finds it and the request goes through.
    sim.blackholed.retain(|&p| p != prs[2]);
    let c = sim.add_client(Sim::client_config(&[prs[2]]), 5);
    register(&mut sim, c, spec("P", 1, Policy::RoundRobin, 30 * SEC));
    let got = sim.wait_done(pu, rid, 100 * SEC);
    assert!(
        matches!(got, Ok(Outcome::Resolved(ref p)) if p.len() == 1),
        "{got:?}"
    );
}

#[test]
fn no_registrar_fails_requests_after_the_retransmissions() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    sim.blackholed = vec![pr];
    let mut cfg = Sim::client_config(&[pr]);
    cfg.t1_enrp_request = SEC;
    let pu = sim.add_client(cfg, 1);
    let rid = sim.with_client(pu, |c, now| c.resolve(now, &ph("P"), None));
    let t0 = sim.elapsed();
    assert_eq!(
        sim.wait_done(pu, rid, 10 * SEC),
        Err(ClientError::NoRegistrar)
    );
    assert_eq!(
        sim.elapsed() - t0,
        3 * SEC,
        "T1 × (1 + MAX-REQUEST-RETRANSMIT)"
    );
}

#[test]
fn announces_make_registrars_known_until_t7() {
    let mut sim = Sim::new();
    let mut cfg = Sim::registrar_config(0xabc);
    cfg.server_announce_cycle = Some(SEC);
    let pr = sim.add_registrar(cfg, 1);
    let pe = sim.add_client(ClientConfig::default(), 1);
    sim.clients[pe].listens_announces = true;
    // No registrar known: the registration waits for an announce.
    let rid = sim.with_client(pe, |c, now| {
        c.register(now, spec("P", 1, Policy::RoundRobin, 30 * SEC))
    });
    assert!(matches!(
        sim.wait_done(pe, rid, 3 * SEC),
        Ok(Outcome::Registered { .. })
    ));
    let known: Vec<_> = sim.clients[pe].core.registrars().collect();
    assert_eq!(
        known,
        vec![(vec![Sim::pr_endpoint(pr)], Some(RegistrarId(0xabc)))]
    );
    assert_eq!(sim.clients[pe].core.home_id(), Some(RegistrarId(0xabc)));
    // Silent registrar: forgotten after T7 (5 s).
    sim.crash_registrar(pr);
    sim.run_for(6 * SEC);
    assert_eq!(sim.clients[pe].core.registrars().count(), 0);
}

#[test]
fn the_cache_answers_until_stale_and_unreachable_pes_leave_it() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    let b = new_pe_client(&mut sim, &[pr], 2);
    let ida = register(&mut sim, a, spec("P", 1, Policy::RoundRobin, 60 * SEC));
    let idb = register(&mut sim, b, spec("P", 1, Policy::RoundRobin, 60 * SEC));
    let mut cfg = Sim::client_config(&[pr]);
    cfg.stale_cache_value = 2 * SEC;
    let pu = sim.add_client(cfg, 3);
    let first = resolve(&mut sim, pu, "P", None).unwrap();
    assert_eq!(first.len(), 2);
    let asked = sim.prs[pr].core.stats().handle_resolutions;
    // Fresh cache: answered locally, round robin over the cached PEs.
    let x = resolve(&mut sim, pu, "P", Some(1)).unwrap()[0].id;
    let y = resolve(&mut sim, pu, "P", Some(1)).unwrap()[0].id;
    assert_ne!(x, y);
    assert_eq!(sim.prs[pr].core.stats().handle_resolutions, asked);
    assert_eq!(sim.clients[pu].core.stats().cache_hits, 2);
    // An unreachable PE leaves the cache at once, and the registrar hears of it.
    sim.with_client(pu, |c, now| c.report_unreachable(now, &ph("P"), ida));
    assert_eq!(ids(&resolve(&mut sim, pu, "P", None).unwrap()), [idb.0]);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.prs[pr].core.stats().unreachable_reports, 1);
    // Stale: the registrar is asked again.
    sim.run_for(3 * SEC);
    assert_eq!(resolve(&mut sim, pu, "P", None).unwrap().len(), 2);
    assert_eq!(sim.prs[pr].core.stats().handle_resolutions, asked + 1);
}

#[test]
fn a_per_call_cache_lifetime_overrides_the_setting() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    register(&mut sim, a, spec("P", 1, Policy::RoundRobin, 60 * SEC));
    // The client's own setting: no cache (RSPLIB's staleCacheValue 0).
    let pu = sim.add_client(Sim::client_config(&[pr]), 3);
    let cached = |sim: &mut Sim, stale: Duration| {
        let rid = sim.with_client(pu, |c, now| c.resolve_cached(now, &ph("P"), Some(1), stale));
        match sim.wait_done(pu, rid, 10 * SEC) {
            Ok(Outcome::Resolved(pes)) => pes.len(),
            other => panic!("{other:?}"),
        }
    };
    let asked = sim.prs[pr].core.stats().handle_resolutions;
    // A call with a lifetime fills the cache; the next one within it is answered from there.
    assert_eq!(cached(&mut sim, 2 * SEC), 1);
    assert_eq!(cached(&mut sim, 2 * SEC), 1);
    assert_eq!(sim.prs[pr].core.stats().handle_resolutions, asked + 1);
    assert_eq!(sim.clients[pu].core.stats().cache_hits, 1);
    // A call without one asks the registrar, cache or not.
    assert_eq!(cached(&mut sim, Duration::ZERO), 1);
    assert_eq!(resolve(&mut sim, pu, "P", Some(1)).unwrap().len(), 1);
    assert_eq!(sim.prs[pr].core.stats().handle_resolutions, asked + 3);
    // Past the lifetime, the registrar again.
    sim.run_for(3 * SEC);
    assert_eq!(cached(&mut sim, 2 * SEC), 1);
    assert_eq!(sim.prs[pr].core.stats().handle_resolutions, asked + 4);
    assert_eq!(sim.clients[pu].core.stats().cache_hits, 1);
}

#[test]
fn registrations_are_checked() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    register(&mut sim, a, spec("P", 1, Policy::RoundRobin, 60 * SEC));
    let refused = |sim: &mut Sim, c: usize, s: PoolElementSpec| -> CauseCode {
        let rid = sim.with_client(c, |cl, now| cl.register(now, s));
        match sim.wait_done(c, rid, 5 * SEC) {
            Err(ClientError::Refused(e)) => e.code(),
            other => panic!("{other:?}"),
        }
    };
    let b = new_pe_client(&mut sim, &[pr], 2);
    // Another policy than the pool's.
    let code = refused(
        &mut sim,
        b,
        spec("P", 1, Policy::LeastUsed { load: 0 }, 60 * SEC),
    );
    assert_eq!(code, CauseCode::INCONSISTENT_POOLING_POLICY);
    // Another transport type.
    let mut s = spec("P", 1, Policy::RoundRobin, 60 * SEC);
    s.user_transport = Transport::Tcp {
        port: 80,
        address: sim.client_addr(b),
    };
    assert_eq!(
        refused(&mut sim, b, s),
        CauseCode::INCONSISTENT_TRANSPORT_TYPE
    );
    // Data plus control in a data-only pool.
    let mut s = spec("P", 1, Policy::RoundRobin, 60 * SEC);
    s.user_transport = Transport::Sctp(SctpTransport {
        port: 1,
        transport_use: TransportUse::DataPlusControl,
        addresses: vec![],
    });
    assert_eq!(
        refused(&mut sim, b, s),
        CauseCode::INCONSISTENT_DATA_CONTROL_CONFIGURATION
    );
    // Someone else's address (anti-spoofing).
    let mut s = spec("Q", 1, Policy::RoundRobin, 60 * SEC);
    s.user_transport = Transport::Sctp(SctpTransport {
        port: 1,
        transport_use: TransportUse::DataOnly,
        addresses: vec!["192.0.2.1".parse().unwrap()],
    });
    assert_eq!(refused(&mut sim, b, s), CauseCode::INVALID_VALUES);
    // A pool handle longer than the registrar takes.
    let long = "x".repeat(33);
    assert_eq!(
        refused(&mut sim, b, spec(&long, 1, Policy::RoundRobin, 60 * SEC)),
        CauseCode::INVALID_VALUES
    );
    // Port 0.
    assert_eq!(
        refused(&mut sim, b, spec("Q", 0, Policy::RoundRobin, 60 * SEC)),
        CauseCode::INVALID_VALUES
    );
    let st = sim.prs[pr].core.stats();
    assert_eq!((st.registrations, st.registration_rejects), (1, 6));
    assert_eq!(sim.prs[pr].core.handlespace().len(), 1);
}

#[test]
fn owned_pes_expire_when_their_life_runs_out() {
    let mut sim = Sim::new();
    let mut cfg = Sim::registrar_config(1);
    cfg.keep_alive_transmission_interval = 100 * SEC;
    let pr = sim.add_registrar(cfg, 1);
    let pe = new_pe_client(&mut sim, &[pr], 1);
    // Interval 2 s: life 6 s (in milliseconds on the wire, as RSPLIB).
    let id = register(&mut sim, pe, spec("P", 1, Policy::RoundRobin, 2 * SEC));
    let stored = sim.prs[pr]
        .core
        .handlespace()
        .get_by_id(&ph("P"), id)
        .unwrap();
    assert_eq!(stored.element().registration_life, 6000);
    sim.run_for(20 * SEC);
    assert!(
        sim.prs[pr].core.handlespace().find(&ph("P"), id).is_some(),
        "re-registering PE stays"
    );
    sim.clients[pe].frozen = true;
    // The last registration it sent: the life (6 s) counts from its arrival.
    let last = sim.clients[pe]
        .outputs_seen
        .iter()
        .rev()
        .find_map(|(t, o)| match o {
            ClientOutput::Send { message, .. } => matches!(
                AsapMessage::decode(message),
                Ok(AsapMessage::Registration(_))
            )
            .then_some(*t),
            _ => None,
        })
        .unwrap();
    while sim.prs[pr].core.handlespace().find(&ph("P"), id).is_some() {
        sim.run_for(Duration::from_millis(10));
    }
    let gone = sim.elapsed() - last;
    assert!(
        gone >= 6 * SEC && gone <= 6 * SEC + Duration::from_millis(20),
        "{gone:?}"
    );
    assert_eq!(sim.prs[pr].core.stats().life_expiries, 1);
}

#[test]
fn deregistration_removes_and_is_checked() {
    let mut sim = Sim::new();
    let pr = sim.add_registrar(Sim::registrar_config(1), 1);
    let a = new_pe_client(&mut sim, &[pr], 1);
    let id = register(&mut sim, a, spec("P", 1, Policy::RoundRobin, 2 * SEC));
    let rid = sim.with_client(a, |c, now| c.deregister(now, &ph("P"), id));
    assert_eq!(sim.wait_done(a, rid, 5 * SEC), Ok(Outcome::Deregistered));
    assert_eq!(sim.prs[pr].core.handlespace().len(), 0);
    // Not re-registered afterwards.
    sim.run_for(10 * SEC);
    assert_eq!(sim.prs[pr].core.handlespace().len(), 0);
    assert_eq!(
        sim.with_client(a, |c, now| c.deregister(now, &ph("P"), id)),
        rserpool::asap::RequestId(rid.0 + 1)
    );
    sim.run_for(Duration::from_millis(10));
    assert!(sim.clients[a].events.iter().any(|e| matches!(
        e,
        ClientEvent::Done {
            result: Err(ClientError::UnknownPoolElement),
            ..
        }
    )));
}

// ---------------------------------------------------------------------------------------------
// Core-level checks (no network).

fn registration_bytes(pe_id: u32, addr: IpAddr) -> Vec<u8> {
    AsapMessage::Registration(Registration {
        pool_handle: ph("P"),
        pool_element: PoolElement {
            id: PoolElementId(pe_id),
            home_registrar: RegistrarId(0),
            registration_life: 30_000,
            user_transport: Transport::Sctp(SctpTransport {
                port: 9,
                transport_use: TransportUse::DataOnly,
                addresses: vec![addr],
            }),
            policy: Policy::RoundRobin,
            asap_transport: None,
        },
    })
    .to_bytes()
    .unwrap()
}

fn sent(pr: &mut Registrar) -> Vec<(AssociationId, AsapMessage)> {
    let mut v = Vec::new();
    while let Some(o) = pr.poll_output() {
        if let Output::Send {
            association,
            message,
        } = o
        {
            v.push((association, AsapMessage::decode(&message).unwrap()));
        }
    }
    v
}

#[test]
fn undecodable_messages_get_an_asap_error_and_nothing_breaks() {
    let now = std::time::Instant::now();
    let mut pr = Registrar::new(Sim::registrar_config(1), 1, now);
    let a = AssociationId(1);
    pr.association_up(
        now,
        a,
        PeerInfo::new(vec!["127.0.0.1".parse().unwrap()], 5000),
    );
    // A registration whose PE parameter is cut short.
    let mut bad = registration_bytes(5, "127.0.0.1".parse().unwrap());
    bad.truncate(bad.len() - 8);
    let l = bad.len() as u16;
    bad[2..4].copy_from_slice(&l.to_be_bytes());
    pr.handle_message(now, a, &bad);
    // An unknown message type with the "report" bits.
    pr.handle_message(now, a, &[0x4f, 0, 0, 4]);
    let out = sent(&mut pr);
    assert_eq!(out.len(), 2, "{out:?}");
    for (assoc, m) in out {
        assert_eq!(assoc, a);
        assert!(matches!(m, AsapMessage::Error(_)), "{m:?}");
    }
    assert_eq!(pr.stats().decode_errors, 2);
    // Still serving.
    pr.handle_message(now, a, &registration_bytes(5, "127.0.0.1".parse().unwrap()));
    assert!(
        matches!(sent(&mut pr)[..], [(_, AsapMessage::RegistrationResponse(ref r))] if !r.reject)
    );
}

#[test]
fn deregistration_from_a_foreign_association_is_refused() {
    let now = std::time::Instant::now();
    let mut pr = Registrar::new(Sim::registrar_config(1), 1, now);
    let pe_addr: IpAddr = "198.51.100.7".parse().unwrap();
    pr.association_up(now, AssociationId(1), PeerInfo::new(vec![pe_addr], 5000));
    pr.association_up(
        now,
        AssociationId(2),
        PeerInfo::new(vec!["203.0.113.9".parse().unwrap()], 5000),
    );
    pr.handle_message(now, AssociationId(1), &registration_bytes(5, pe_addr));
    sent(&mut pr);
    let dereg = AsapMessage::Deregistration(Deregistration {
        pool_handle: ph("P"),
        pe_id: PoolElementId(5),
    })
    .to_bytes()
    .unwrap();
    pr.handle_message(now, AssociationId(2), &dereg);
    match &sent(&mut pr)[..] {
        [(_, AsapMessage::DeregistrationResponse(r))] => {
            assert_eq!(
                r.error.as_ref().unwrap().code(),
                CauseCode::REJECTED_SECURITY
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pr.handlespace().len(), 1);
    // Unknown PEs are a success (RFC 5352 §3.2).
    let unknown = AsapMessage::Deregistration(Deregistration {
        pool_handle: ph("P"),
        pe_id: PoolElementId(77),
    })
    .to_bytes()
    .unwrap();
    pr.handle_message(now, AssociationId(2), &unknown);
    assert!(
        matches!(&sent(&mut pr)[..], [(_, AsapMessage::DeregistrationResponse(r))] if r.error.is_none())
    );
}

/// Takes the client's Connect to its registrar and brings that association up.
fn connect_home(c: &mut AsapClient, t: std::time::Instant) -> AssociationId {
    let Some(ClientOutput::Connect { association, .. }) = c.poll_output() else {
        panic!("the client connects to its registrar first")
    };
    c.association_up(t, association, vec!["10.1.0.1".parse().unwrap()]);
    association
}

#[test]
fn a_keep_alive_with_the_h_flag_moves_the_home_registrar() {
    let t = std::time::Instant::now();
    let mut c = AsapClient::new(Sim::client_config(&[0]), 1);
    let rid = c.register(t, spec("P", 1, Policy::RoundRobin, 30 * SEC));
    let home = connect_home(&mut c, t);
    let Some(ClientOutput::Send { association, .. }) = c.poll_output() else {
        panic!()
    };
    assert_eq!(association, home);
    let resp = AsapMessage::RegistrationResponse(RegistrationResponse {
        reject: false,
        pool_handle: ph("P"),
        pe_id: match c.own_pool_elements().next() {
            Some((_, id, _)) => id,
            None => panic!(),
        },
        error: None,
    });
    c.handle_message(t, home, &resp.to_bytes().unwrap());
    let id = c.own_pool_elements().next().unwrap().1;
    assert!(c.own_pool_elements().next().unwrap().2);
    while let Some(e) = c.poll_event() {
        if let ClientEvent::Done { request, result } = e {
            assert_eq!(request, rid);
            assert!(result.is_ok());
        }
    }
    // The home's keep-alive teaches its ID.
    let ka = |h: bool, server: u32| {
        AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
            home: h,
            server_id: RegistrarId(server),
            pool_handle: ph("P"),
            pe_id: None,
        })
        .to_bytes()
        .unwrap()
    };
    c.handle_message(t, home, &ka(false, 1));
    assert_eq!(c.home_id(), Some(RegistrarId(1)));
    let Some(ClientOutput::Send { message, .. }) = c.poll_output() else {
        panic!()
    };
    assert_eq!(
        AsapMessage::decode(&message).unwrap(),
        AsapMessage::EndpointKeepAliveAck(EndpointKeepAliveAck {
            pool_handle: ph("P"),
            pe_id: id
        })
    );
    // Another registrar took the PE over and says so with H on its own association.
    let takeover = c.incoming_association(vec!["10.1.0.1".parse().unwrap()]);
    c.handle_message(t, takeover, &ka(true, 2));
    let outs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
    assert!(
        outs.iter().any(
            |o| matches!(o, ClientOutput::Send { association, .. } if *association == takeover)
        ),
        "acked: {outs:?}"
    );
    assert!(
        outs.contains(&ClientOutput::Close { association: home }),
        "old home closed: {outs:?}"
    );
    assert_eq!(c.home(), Some(takeover));
    assert_eq!(c.home_id(), Some(RegistrarId(2)));
    // A keep-alive for another pool is discarded (KA1).
    let other = AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
        home: false,
        server_id: RegistrarId(2),
        pool_handle: ph("Other"),
        pe_id: None,
    });
    c.handle_message(t, takeover, &other.to_bytes().unwrap());
    assert_eq!(c.poll_output(), None);
}

#[test]
fn keep_alives_stay_linear_in_the_pes_of_one_process() {
    // One PE process with 20 PEs of one pool on one association. RFC keep-alives carry no PE
    // Identifier, so the process acknowledges each for all its 20 PEs; the registrar must not
    // also send each PE a keep-alive of its own (20 × 20 Acks per interval).
    let mut sim = Sim::new();
    let pr = sim.add_registrar(fast_keep_alive(1), 1);
    let pe = new_pe_client(&mut sim, &[pr], 1);
    for i in 0..20 {
        register(
            &mut sim,
            pe,
            spec("P", 1000 + i, Policy::RoundRobin, 600 * SEC),
        );
    }
    let before = sim.prs[pr].core.stats();
    sim.run_for(60 * SEC);
    let st = sim.prs[pr].core.stats();
    let (sent, acks) = (
        st.keep_alives_sent - before.keep_alives_sent,
        st.keep_alive_acks - before.keep_alive_acks,
    );
    // Interval 1 s ± 50 %: after each round all 20 timers restart, and the earliest of 20
    // fires after about 0.55 s: some 110 keep-alives, where one per PE and interval would be
    // about 1200 (and 24 000 Acks).
    assert!(sent <= 240, "{sent} keep-alives in 60 s");
    assert!(acks <= 20 * sent, "{acks} acks for {sent} keep-alives");
    assert!(sent >= 40, "keep-alives still flow: {sent}");
    assert_eq!(st.keep_alive_timeouts, 0);
    assert_eq!(sim.prs[pr].core.handlespace().len(), 20);
}

/// An ASAP Error answers the oldest request outstanding on its association (RSPLIB's registrar
/// sends one for a message it cannot parse): that request ends at once with the cause, without
/// waiting out T1 and its retransmissions; the requests sent after it are not affected.
#[test]
fn an_asap_error_ends_the_request_it_answers_at_once() {
    let t = std::time::Instant::now();
    let mut c = AsapClient::new(Sim::client_config(&[0]), 1);
    let first = c.resolve(t, &ph("LUPool"), None);
    let second = c.resolve(t, &ph("EchoPool"), None);
    let home = connect_home(&mut c, t);
    let sends = std::iter::from_fn(|| c.poll_output())
        .filter(|o| matches!(o, ClientOutput::Send { .. }))
        .count();
    assert_eq!(sends, 2);
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::HomeRegistrar { .. })
    ));
    // RSPLIB's answer to a message it cannot parse: cause 3 with the offending TLV.
    let cause = ErrorCause {
        code: CauseCode::INVALID_VALUES,
        info: vec![0, 9, 0, 10, b'L', b'U', b'P', b'o', b'o', b'l'],
    };
    let error = AsapMessage::Error(AsapError {
        error: OperationError::new(cause.clone()),
    });
    c.handle_message(t, home, &error.to_bytes().unwrap());
    let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert_eq!(
        events,
        [ClientEvent::Done {
            request: first,
            result: Err(ClientError::Refused(OperationError::new(cause.clone())))
        }]
    );
    let text = ClientError::Refused(OperationError::new(cause.clone())).to_string();
    assert!(text.contains("Invalid Values (0x3)"), "{text}");
    assert_eq!(c.pending_requests(), 1);
    assert_eq!(c.stats().errors_received, 1);
    // The second resolution is still answered normally.
    let pe = PoolElement {
        id: PoolElementId(7),
        home_registrar: RegistrarId(1),
        registration_life: 30_000,
        user_transport: Transport::Sctp(SctpTransport {
            port: 1,
            transport_use: TransportUse::DataOnly,
            addresses: vec!["10.1.0.2".parse().unwrap()],
        }),
        policy: Policy::RoundRobin,
        asap_transport: None,
    };
    let resp = AsapMessage::HandleResolutionResponse(HandleResolutionResponse {
        accept_updates: false,
        pool_handle: ph("EchoPool"),
        policy: None,
        elements: vec![pe.clone()],
        error: None,
    });
    c.handle_message(t, home, &resp.to_bytes().unwrap());
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Done {
            request: second,
            result: Ok(Outcome::Resolved(vec![pe]))
        })
    );
    // A registration answered by an ASAP Error is refused: the PE is not kept.
    let rid = c.register(t, spec("Odd", 1, Policy::RoundRobin, 30 * SEC));
    assert!(matches!(c.poll_output(), Some(ClientOutput::Send { .. })));
    let unknown = AsapMessage::Error(AsapError {
        error: OperationError::new(ErrorCause::new(CauseCode(0xf004))),
    });
    c.handle_message(t, home, &unknown.to_bytes().unwrap());
    match c.poll_event() {
        Some(ClientEvent::Done {
            request,
            result: Err(e @ ClientError::Refused(_)),
        }) => {
            assert_eq!(request, rid);
            assert!(e.to_string().contains("RSPLIB: invalid pool handle"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.own_pool_elements().count(), 0);
    assert_eq!(c.pending_requests(), 0);
    // An error with nothing outstanding changes nothing.
    c.handle_message(t, home, &error.to_bytes().unwrap());
    assert_eq!(c.poll_event(), None);
    assert_eq!(c.poll_timeout(), None);
}
