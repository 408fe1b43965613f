//! Deterministic simulations (virtual clock) of registrars that replicate their handlespace
//! with ENRP (RFC 5353), running the real sans-IO cores: replication, the mentor phase with
//! paged Handle Tables, the checksum audit, takeover of a dead registrar with its arbitration
//! and re-homing of its PEs, and a registrar that comes back in the middle of its takeover.

mod sim;

use std::time::Duration;

use rserpool::asap::{ClientError, Outcome, PoolElementSpec};
use rserpool::registrar::{EnrpConfig, RegistrarConfig, TakeoverArbitration};
use rserpool::wire::*;
use sim::{Sim, ph};

const SEC: Duration = Duration::from_secs(1);

/// A round-robin PE spec ([`sim::spec`]).
fn spec(pool: &str, port: u16, interval: Duration) -> PoolElementSpec {
    sim::spec(pool, port, Policy::RoundRobin, interval)
}

/// A registrar with ENRP, peering statically with the registrars `peers`.
fn enrp_config(id: u32, peers: &[usize]) -> RegistrarConfig {
    let mut c = Sim::registrar_config(id);
    c.enrp = Some(EnrpConfig {
        static_peers: peers.iter().map(|&p| Sim::pr_enrp_endpoint(p)).collect(),
        announce: false,
        ..EnrpConfig::default()
    });
    c
}

/// `n` registrars with IDs 1..=n, each with all the others as static peers.
fn mesh(sim: &mut Sim, n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| {
            let peers: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            sim.add_registrar(enrp_config(i as u32 + 1, &peers), i as u64 + 1)
        })
        .collect()
}

fn register(sim: &mut Sim, c: usize, s: PoolElementSpec) -> PoolElementId {
    let rid = sim.with_client(c, |cl, now| cl.register(now, s));
    match sim.wait_done(c, rid, 30 * SEC) {
        Ok(Outcome::Registered { pe_id, .. }) => pe_id,
        other => panic!("registration of client {c}: {other:?}"),
    }
}

fn resolve(sim: &mut Sim, c: usize, pool: &str) -> Result<Vec<PoolElement>, ClientError> {
    let rid = sim.with_client(c, |cl, now| {
        cl.resolve_cached(now, &ph(pool), Some(1000), Duration::ZERO)
    });
    match sim.wait_done(c, rid, 120 * SEC)? {
        Outcome::Resolved(pes) => Ok(pes),
        other => panic!("unexpected {other:?}"),
    }
}

fn home_of(sim: &Sim, p: usize, pool: &str, id: PoolElementId) -> Option<RegistrarId> {
    sim.prs[p]
        .core
        .handlespace()
        .get_by_id(&ph(pool), id)
        .map(|e| e.home_registrar())
}

/// Every live registrar holds the same PEs with the same homes.
fn assert_consistent(sim: &Sim) {
    let live: Vec<usize> = (0..sim.prs.len()).filter(|&p| sim.prs[p].alive).collect();
    let view = |p: usize| -> Vec<(String, u32, u32)> {
        sim.prs[p]
            .core
            .handlespace()
            .iter()
            .map(|e| (e.pool_handle().to_string(), e.id().0, e.home_registrar().0))
            .collect()
    };
    let first = view(live[0]);
    for &p in &live[1..] {
        assert_eq!(
            view(p),
            first,
            "registrar {p} differs from registrar {}",
            live[0]
        );
        assert_eq!(
            sim.prs[p].core.handlespace().checksum(),
            sim.prs[live[0]].core.handlespace().checksum()
        );
    }
}

#[test]
fn registrations_and_deregistrations_reach_every_peer() {
    let mut sim = Sim::new();
    let prs = mesh(&mut sim, 3);
    sim.run_for(6 * SEC);
    for &p in &prs {
        assert_eq!(
            sim.prs[p].core.peers(sim.now).len(),
            2,
            "registrar {p} peers"
        );
        assert!(!sim.prs[p].core.is_starting_up());
    }
    let pe = sim.add_client(Sim::client_config(&[prs[0]]), 7);
    let id = register(&mut sim, pe, spec("P", 1, 30 * SEC));
    sim.run_for(SEC);
    for &p in &prs {
        assert_eq!(
            home_of(&sim, p, "P", id),
            Some(RegistrarId(1)),
            "at registrar {p}"
        );
    }
    // A pool user at another registrar resolves the PE.
    let pu = sim.add_client(Sim::client_config(&[prs[2]]), 8);
    let pes = resolve(&mut sim, pu, "P").unwrap();
    assert_eq!(pes.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
    assert_consistent(&sim);

    let rid = sim.with_client(pe, |cl, now| cl.deregister(now, &ph("P"), id));
    sim.wait_done(pe, rid, 5 * SEC).unwrap();
    sim.run_for(SEC);
    for &p in &prs {
        assert!(sim.prs[p].core.handlespace().is_empty(), "registrar {p}");
    }
    assert!(resolve(&mut sim, pu, "P").is_err());
}

#[test]
fn peers_keep_a_pe_past_its_life_while_it_reregisters() {
    let mut sim = Sim::new();
    let prs = mesh(&mut sim, 2);
    sim.run_for(6 * SEC);
    let pe = sim.add_client(Sim::client_config(&[prs[0]]), 7);
    // Life = 3 × the re-registration interval (the client's rule): 6 s.
    let id = register(&mut sim, pe, spec("P", 1, 2 * SEC));
    sim.run_for(30 * SEC);
    assert_eq!(home_of(&sim, prs[1], "P", id), Some(RegistrarId(1)));
    // A PE that stops answering and re-registering goes: its home removes it (keep-alive
    // timeout) and tells its peer.
    sim.clients[pe].frozen = true;
    sim.run_for(60 * SEC);
    assert!(
        sim.prs[prs[0]].core.handlespace().is_empty(),
        "home removed it"
    );
    assert!(
        sim.prs[prs[1]].core.handlespace().is_empty(),
        "and told its peer"
    );
}

#[test]
fn a_starting_registrar_synchronises_from_its_mentor_in_pages() {
    let mut sim = Sim::new();
    let a = sim.add_registrar(enrp_config(1, &[]), 1);
    sim.run_for(6 * SEC);
    // 300 PEs at A, from 30 processes (the HT response pages hold 128 each).
    for c in 0..30 {
        let cl = sim.add_client(Sim::client_config(&[a]), 100 + c);
        for k in 0..10 {
            register(
                &mut sim,
                cl,
                spec(&format!("pool-{}", k % 4), 1000 + k, 30 * SEC),
            );
        }
    }
    assert_eq!(sim.prs[a].core.handlespace().len(), 300);
    let b = sim.add_registrar(enrp_config(2, &[a]), 2);
    assert!(sim.prs[b].core.is_starting_up());
    let before = sim.prs[b].core.stats().announces;
    let mut until = Duration::ZERO;
    while sim.prs[b].core.is_starting_up() {
        sim.run_for(Duration::from_millis(10));
        until += Duration::from_millis(10);
        assert!(until < 5 * SEC, "no end of the mentor phase");
    }
    assert_eq!(sim.prs[b].core.handlespace().len(), 300);
    assert_eq!(
        sim.prs[b].core.stats().announces,
        before,
        "no announce while starting"
    );
    assert_consistent(&sim);
    // It took 3 pages, well before the mentor discovery timeout.
    assert!(until < SEC, "synchronised in {until:?}");
}

#[test]
fn a_peer_whose_checksum_differs_is_audited_and_repaired() {
    let mut sim = Sim::new();
    let prs = mesh(&mut sim, 2);
    sim.run_for(6 * SEC);
    let pe = sim.add_client(Sim::client_config(&[prs[0]]), 7);
    let id = register(&mut sim, pe, spec("P", 1, 30 * SEC));
    let gone = register(&mut sim, pe, spec("Q", 2, 30 * SEC));
    sim.run_for(SEC);
    assert_eq!(sim.prs[prs[1]].core.handlespace().len(), 2);
    // B loses one of A's PEs without being told (4 unreachability reports remove it
    // silently), and holds a stale one A never had.
    let pu = sim.add_client(Sim::client_config(&[prs[1]]), 8);
    for _ in 0..4 {
        sim.with_client(pu, |cl, now| cl.report_unreachable(now, &ph("P"), id));
        sim.run_for(Duration::from_millis(100));
    }
    assert!(home_of(&sim, prs[1], "P", id).is_none());
    let rid = sim.with_client(pe, |cl, now| cl.deregister(now, &ph("Q"), gone));
    sim.wait_done(pe, rid, 5 * SEC).unwrap();
    sim.run_for(5 * SEC);
    let audits = sim.prs[prs[1]].core.stats().audits;
    assert!(audits >= 1, "B audited A");
    assert_eq!(home_of(&sim, prs[1], "P", id), Some(RegistrarId(1)));
    assert_consistent(&sim);
    // And once in sync, Presences start no more audits.
    sim.run_for(20 * SEC);
    assert_eq!(sim.prs[prs[1]].core.stats().audits, audits);
}

/// Three registrars; a PE process that knows only registrar 0 (so it cannot re-register
/// elsewhere by itself) with 5 PEs homed there. Registrar 0 dies; returns the time from the
/// crash until every PE has a live home at every live registrar.
fn takeover_world(arbitration: TakeoverArbitration) -> (Sim, usize, Vec<PoolElementId>, Duration) {
    let mut sim = Sim::new();
    let prs: Vec<usize> = (0..3)
        .map(|i| {
            let peers: Vec<usize> = (0..3).filter(|&j| j != i).collect();
            let mut c = enrp_config(i as u32 + 1, &peers);
            c.enrp.as_mut().unwrap().arbitration = arbitration;
            sim.add_registrar(c, i as u64 + 1)
        })
        .collect();
    sim.run_for(6 * SEC);
    let pe = sim.add_client(Sim::client_config(&[prs[0]]), 7);
    let ids: Vec<PoolElementId> = (0..5)
        .map(|k| register(&mut sim, pe, spec("P", 1 + k, 30 * SEC)))
        .collect();
    sim.run_for(SEC);
    sim.crash_registrar(prs[0]);
    let crash = sim.now;
    let done = loop {
        sim.run_for(Duration::from_millis(50));
        let settled = [1, 2].iter().all(|&p| {
            ids.iter()
                .all(|&id| home_of(&sim, p, "P", id).is_some_and(|h| h != RegistrarId(1)))
        });
        if settled
            && sim.clients[pe]
                .core
                .home_id()
                .is_some_and(|h| h != RegistrarId(1))
        {
            break sim.now - crash;
        }
        assert!(sim.now - crash < 60 * SEC, "not taken over");
    };
    (sim, pe, ids, done)
}

#[test]
fn a_dead_registrars_pes_are_taken_over_and_rehome() {
    let (mut sim, pe, ids, took) = takeover_world(TakeoverArbitration::LowerIdWins);
    // 5 s not heard, 5 s without an answer, then Init Takeover, Ack, Takeover Server and the
    // Keep-Alive with H: about 10 s (±12.5 % heartbeat jitter) plus round trips.
    assert!(took < 13 * SEC, "took {took:?}");
    let winner = sim.clients[pe].core.home_id().unwrap();
    let won: u64 = (1..3).map(|p| sim.prs[p].core.stats().takeovers_won).sum();
    assert_eq!(won, 1, "exactly one registrar won");
    for p in 1..3 {
        for &id in &ids {
            assert_eq!(home_of(&sim, p, "P", id), Some(winner));
        }
        assert!(
            sim.prs[p]
                .core
                .peers(sim.now)
                .iter()
                .all(|s| s.id != RegistrarId(1))
        );
    }
    // The PEs are alive at their new home: keep-alives are acknowledged, nothing expires.
    sim.run_for(120 * SEC);
    for p in 1..3 {
        assert_eq!(sim.prs[p].core.handlespace().len(), ids.len());
    }
    assert_consistent(&sim);
    // A pool user through the loser resolves every PE.
    let loser = if winner == RegistrarId(2) { 2 } else { 1 };
    let pu = sim.add_client(Sim::client_config(&[loser]), 9);
    assert_eq!(resolve(&mut sim, pu, "P").unwrap().len(), ids.len());
}

#[test]
fn competing_takeovers_follow_the_arbitration_rule() {
    for (rule, expect) in [
        (TakeoverArbitration::LowerIdWins, RegistrarId(2)),
        (TakeoverArbitration::HigherIdWins, RegistrarId(3)),
    ] {
        let (sim, pe, _ids, _) = takeover_world(rule);
        // Both survivors heard the victim last in the same heartbeat round and start their
        // takeovers together (the seeds are fixed): the rule decides.
        let home = sim.clients[pe].core.home_id().unwrap();
        let both = (1..3).all(|p| sim.prs[p].core.stats().takeovers_started > 0);
        assert!(both, "{rule:?}: both survivors started a takeover");
        assert_eq!(home, expect, "{rule:?}");
    }
}

#[test]
fn a_registrar_that_comes_back_cancels_its_takeover() {
    let mut sim = Sim::new();
    let prs = mesh(&mut sim, 3);
    sim.run_for(6 * SEC);
    let pe = sim.add_client(Sim::client_config(&[prs[0]]), 7);
    let id = register(&mut sim, pe, spec("P", 1, 30 * SEC));
    sim.run_for(SEC);
    // Registrar 0 is cut off from its peers (not from its PE) for 7 s: long enough to be
    // asked for a reply, too short to be taken over.
    sim.partition(&[1, 0, 0]);
    sim.run_for(7 * SEC);
    sim.heal();
    sim.run_for(30 * SEC);
    for p in 0..3 {
        assert_eq!(home_of(&sim, p, "P", id), Some(RegistrarId(1)), "at {p}");
        assert_eq!(sim.prs[p].core.stats().takeovers_won, 0);
    }
    assert_consistent(&sim);
}

#[test]
fn each_registration_costs_one_handle_update_per_peer() {
    use rserpool::wire::enrp_type::HANDLE_UPDATE;
    for peers in [1usize, 3, 7] {
        let mut sim = Sim::new();
        let prs = mesh(&mut sim, peers + 1);
        sim.run_for(6 * SEC);
        let before = sim
            .enrp_by_type
            .get(&HANDLE_UPDATE)
            .copied()
            .unwrap_or_default();
        let pe = sim.add_client(Sim::client_config(&[prs[0]]), 7);
        let n = 20;
        for k in 0..n {
            register(&mut sim, pe, spec("ReplicatedPool", 1000 + k, 30 * SEC));
        }
        sim.run_for(SEC);
        let after = sim
            .enrp_by_type
            .get(&HANDLE_UPDATE)
            .copied()
            .unwrap_or_default();
        let (msgs, bytes) = (after.0 - before.0, after.1 - before.1);
        eprintln!(
            "{peers} peers: {} Handle Updates and {} bytes per registration",
            msgs as f64 / f64::from(n),
            bytes as f64 / f64::from(n)
        );
        assert_eq!(msgs, u64::from(n) * peers as u64, "{peers} peers");
        for &p in &prs {
            assert_eq!(sim.prs[p].core.handlespace().len(), n as usize);
        }
    }
}
