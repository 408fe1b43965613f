//! The ENRP simulation of the "done when": 12 registrars, 300 PEs in 20 pools, pool
//! users resolving throughout, 5 % packet loss between registrars, a partition that splits the
//! registrars and heals, registrar crashes and restarts, PE process crashes — on the virtual
//! clock, replayable from a seed. Invariants are checked every virtual second and at the end:
//!
//! * **No loss**: a live PE that its process believes registered is in the handlespace of
//!   some live registrar, except for at most [`LOSS_GRACE`] (the window in which its home
//!   died before it could tell anybody, and the PE has not noticed yet).
//! * **Resolvable everywhere, one live home**: [`BOUND`] after the last change (a crash, a
//!   restart, a partition or its healing, a PE crash) and while nothing is partitioned, every
//!   live registered PE is at every live registrar that has finished its mentor phase, all of
//!   them name the same home registrar for it, and that registrar is alive. The bound covers a
//!   takeover (MAX-TIME-LAST-HEARD + MAX-TIME-NO-RESPONSE = 10 s after the last Presence, a
//!   heartbeat cycle, and retransmissions of lost packets).
//! * **Convergence**: after a quiet minute at the end, every live registrar holds exactly the
//!   live PEs, with the same homes and checksums.
//!
//! `ENRP_SIM_SEEDS=N` runs seeds 1..=N: by default 200 in an optimised build (`cargo test
//! --release --test enrp_world`, which `scripts/test` runs: about a minute on 2 cores) and 16
//! in a debug build (a seed takes ~8 s there). `ENRP_SIM_SEED=S` replays one seed, printing its
//! changes and, between markers of virtual time, the cores' logs as `RUST_LOG` selects;
//! `ENRP_SIM_TRACE_PE=ID` adds where PE `ID` is, every second.

mod sim;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rserpool::asap::{ClientConfig, ClientEvent};
use rserpool::registrar::{EnrpConfig, RegistrarConfig};
use rserpool::wire::*;
use sim::Sim;

const SEC: Duration = Duration::from_secs(1);
const REGISTRARS: usize = 12;
const PE_PROCESSES: usize = 30;
const PES_PER_PROCESS: usize = 10;
const POOLS: usize = 20;
const PUS: usize = 4;
/// Time after a change within which every invariant holds again.
const BOUND: Duration = Duration::from_secs(30);
/// Longest time a live registered PE may be unknown to every live registrar.
const LOSS_GRACE: Duration = Duration::from_secs(6);
/// Length of the run before the quiet minute.
const RUN: Duration = Duration::from_secs(300);

fn pool_name(i: usize) -> String {
    format!("pool-{i:02}")
}

fn ph(i: usize) -> PoolHandle {
    sim::ph(&pool_name(i))
}

fn registrar_config(i: usize) -> RegistrarConfig {
    let mut c = Sim::registrar_config(i as u32 + 1);
    c.enrp = Some(EnrpConfig {
        // Three seed registrars everybody connects to; the rest is found by multicast.
        static_peers: (0..3)
            .filter(|&j| j != i)
            .map(Sim::pr_enrp_endpoint)
            .collect(),
        announce: true,
        ..EnrpConfig::default()
    });
    c
}

struct World {
    sim: Sim,
    rng: StdRng,
    /// PE processes (client index) with the pools of their PEs.
    pes: Vec<usize>,
    pus: Vec<usize>,
    last_change: Duration,
    partitioned: bool,
    /// When each (process, pool, PE) was first seen missing everywhere.
    missing_since: HashMap<(usize, PoolHandle, PoolElementId), Duration>,
    restart_at: BTreeMap<usize, Duration>,
    heal_at: Option<Duration>,
    resolutions: u64,
    resolution_failures: u64,
    changes: u64,
    verbose: bool,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut sim = Sim::with_seed(seed);
        sim.loss = 0.05;
        for i in 0..REGISTRARS {
            sim.add_registrar(registrar_config(i), seed * 100 + i as u64);
        }
        let mut w = Self {
            sim,
            rng: StdRng::seed_from_u64(seed),
            pes: Vec::new(),
            pus: Vec::new(),
            last_change: Duration::ZERO,
            partitioned: false,
            missing_since: HashMap::new(),
            restart_at: BTreeMap::new(),
            heal_at: None,
            resolutions: 0,
            resolution_failures: 0,
            changes: 0,
            verbose: std::env::var("ENRP_SIM_SEED").is_ok(),
        };
        w.sim.run_for(6 * SEC);
        for _ in 0..PE_PROCESSES {
            w.start_pe_process();
        }
        for _ in 0..PUS {
            let prs = w.some_registrars(2);
            let c = w.sim.add_client(Sim::client_config(&prs), w.rng.random());
            w.pus.push(c);
        }
        w
    }

    fn some_registrars(&mut self, n: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..REGISTRARS).collect();
        all.shuffle(&mut self.rng);
        all.truncate(n);
        all
    }

    fn start_pe_process(&mut self) {
        let prs = self.some_registrars(3);
        let config = ClientConfig {
            ..Sim::client_config(&prs)
        };
        let c = self.sim.add_client(config, self.rng.random());
        let base = self.pes.len() * PES_PER_PROCESS;
        for k in 0..PES_PER_PROCESS {
            let spec = sim::spec(
                &pool_name((base + k) % POOLS),
                1000 + k as u16,
                Policy::RoundRobin,
                30 * SEC,
            );
            self.sim.with_client(c, |cl, now| cl.register(now, spec));
        }
        self.pes.push(c);
    }

    fn change(&mut self, what: std::fmt::Arguments<'_>) {
        self.last_change = self.sim.elapsed();
        self.changes += 1;
        if self.verbose {
            eprintln!("{:>8.1?} {what}", self.last_change);
        }
    }

    /// One random disturbance.
    fn disturb(&mut self) {
        let now = self.sim.elapsed();
        let live: Vec<usize> = (0..REGISTRARS).filter(|&p| self.sim.prs[p].alive).collect();
        match self.rng.random_range(0..10) {
            0..=3 if live.len() > REGISTRARS / 2 => {
                let p = live[self.rng.random_range(0..live.len())];
                self.sim.crash_registrar(p);
                let down = Duration::from_secs(self.rng.random_range(10..60));
                self.restart_at.insert(p, now + down);
                self.change(format_args!("registrar {p} crashes for {down:?}"));
            }
            4..=6 => {
                let alive: Vec<usize> = self
                    .pes
                    .iter()
                    .copied()
                    .filter(|&c| self.sim.clients[c].alive)
                    .collect();
                if alive.len() > PE_PROCESSES / 2 {
                    let c = alive[self.rng.random_range(0..alive.len())];
                    self.sim.kill_client(c);
                    self.start_pe_process();
                    self.change(format_args!("PE process {c} killed"));
                }
            }
            7 if !self.partitioned => {
                let groups: Vec<u8> = (0..REGISTRARS).map(|i| u8::from(i >= 7)).collect();
                self.sim.partition(&groups);
                self.partitioned = true;
                self.heal_at = Some(now + Duration::from_secs(self.rng.random_range(5..30)));
                self.change(format_args!("partition 0-6 | 7-11"));
            }
            _ => {}
        }
    }

    fn step(&mut self) {
        let now = self.sim.elapsed();
        let due: Vec<usize> = self
            .restart_at
            .iter()
            .filter(|&(_, &t)| t <= now)
            .map(|(&p, _)| p)
            .collect();
        for p in due {
            self.restart_at.remove(&p);
            let seed = self.rng.random();
            self.sim.restart_registrar(p, registrar_config(p), seed);
            self.change(format_args!("registrar {p} restarts"));
        }
        if self.heal_at.is_some_and(|t| t <= now) {
            self.heal_at = None;
            self.partitioned = false;
            self.sim.heal();
            self.change(format_args!("healed"));
        }
        // Pool users resolve a random pool.
        for i in 0..self.pus.len() {
            let pu = self.pus[i];
            let pool = ph(self.rng.random_range(0..POOLS));
            self.sim.with_client(pu, |cl, now| {
                cl.resolve_cached(now, &pool, Some(1000), Duration::ZERO)
            });
            for e in self.sim.clients[pu].events.drain(..) {
                if let ClientEvent::Done { result, .. } = e {
                    self.resolutions += 1;
                    if result.is_err() {
                        self.resolution_failures += 1;
                    }
                }
            }
        }
        self.sim.run_for(SEC);
        if self.verbose {
            eprintln!("--- {:?}", self.sim.elapsed());
            if let Some(id) = std::env::var("ENRP_SIM_TRACE_PE")
                .ok()
                .and_then(|s| s.parse().ok())
            {
                self.trace(PoolElementId(id));
            }
        }
    }

    /// Where one PE is: its process's view and every registrar's.
    fn trace(&self, id: PoolElementId) {
        for &c in &self.pes {
            let cl = &self.sim.clients[c];
            if let Some((pool, _, reg)) = cl.core.own_pool_elements().find(|x| x.1 == id) {
                eprintln!(
                    "    process {c} alive {} home {:?} registered {reg}",
                    cl.alive,
                    cl.core.home_id()
                );
                for p in 0..REGISTRARS {
                    let e = self.sim.prs[p].core.handlespace().get_by_id(pool, id);
                    eprintln!(
                        "    registrar {p} (alive {}): {:?}",
                        self.sim.prs[p].alive,
                        e.map(|e| (e.home_registrar(), e.association()))
                    );
                }
            }
        }
    }

    /// Live PEs their processes believe registered: (process, pool, PE).
    fn live_pes(&self) -> Vec<(usize, PoolHandle, PoolElementId)> {
        let mut v = Vec::new();
        for &c in &self.pes {
            let cl = &self.sim.clients[c];
            if !cl.alive {
                continue;
            }
            for (pool, id, registered) in cl.core.own_pool_elements() {
                if registered {
                    v.push((c, pool.clone(), id));
                }
            }
        }
        v
    }

    fn check(&mut self, seed: u64) {
        let now = self.sim.elapsed();
        let live_prs: Vec<usize> = (0..REGISTRARS).filter(|&p| self.sim.prs[p].alive).collect();
        let pes = self.live_pes();
        // No loss.
        for key in &pes {
            let (_, pool, id) = key;
            let known = live_prs
                .iter()
                .any(|&p| self.sim.prs[p].core.handlespace().find(pool, *id).is_some());
            if known {
                self.missing_since.remove(key);
            } else {
                let since = *self.missing_since.entry(key.clone()).or_insert(now);
                assert!(
                    now - since <= LOSS_GRACE,
                    "seed {seed}: {pool}/{} lost since {since:?} (now {now:?})",
                    id.0
                );
            }
        }
        // Everywhere, with one live home, once things have settled.
        if self.partitioned || now < self.last_change + BOUND {
            return;
        }
        let serving: Vec<usize> = live_prs
            .iter()
            .copied()
            .filter(|&p| !self.sim.prs[p].core.is_starting_up())
            .collect();
        for (_, pool, id) in &pes {
            let mut home = None;
            for &p in &serving {
                let Some(e) = self.sim.prs[p].core.handlespace().get_by_id(pool, *id) else {
                    panic!(
                        "seed {seed} at {now:?}: {pool}/{} missing at registrar {p} \
                         ({:?} after the last change)",
                        id.0,
                        now - self.last_change
                    );
                };
                let h = e.home_registrar();
                assert!(
                    home.is_none_or(|x| x == h),
                    "seed {seed} at {now:?}: {pool}/{} homed at {h:?} and {home:?}",
                    id.0
                );
                home = Some(h);
            }
            if let Some(h) = home {
                let p = h.0 as usize - 1;
                assert!(
                    self.sim.prs[p].alive,
                    "seed {seed} at {now:?}: {pool}/{} homed at dead registrar {p}",
                    id.0
                );
            }
        }
    }

    fn final_check(&self, seed: u64) {
        let mut pes: Vec<(String, u32)> = self
            .live_pes()
            .iter()
            .map(|(_, p, id)| (p.to_string(), id.0))
            .collect();
        pes.sort();
        let live: Vec<usize> = (0..REGISTRARS).filter(|&p| self.sim.prs[p].alive).collect();
        let first = live[0];
        let view = |p: usize| -> Vec<(String, u32, u32)> {
            let mut v: Vec<_> = self.sim.prs[p]
                .core
                .handlespace()
                .iter()
                .map(|e| (e.pool_handle().to_string(), e.id().0, e.home_registrar().0))
                .collect();
            v.sort();
            v
        };
        let reference = view(first);
        let held: Vec<(String, u32)> = reference
            .iter()
            .map(|(p, id, _)| (p.clone(), *id))
            .collect();
        assert_eq!(
            held, pes,
            "seed {seed}: registrar {first} holds exactly the live PEs"
        );
        for &p in &live[1..] {
            assert_eq!(
                view(p),
                reference,
                "seed {seed}: registrar {p} differs from {first}"
            );
            assert_eq!(
                self.sim.prs[p].core.handlespace().checksum(),
                self.sim.prs[first].core.handlespace().checksum(),
                "seed {seed}"
            );
        }
    }
}

struct Report {
    changes: u64,
    takeovers: u64,
    resolutions: u64,
    resolution_failures: u64,
    enrp_messages: u64,
}

fn run(seed: u64) -> Report {
    let mut w = World::new(seed);
    let end = w.sim.elapsed() + RUN;
    while w.sim.elapsed() < end {
        if w.rng.random_bool(1.0 / 15.0) {
            w.disturb();
        }
        w.step();
        w.check(seed);
    }
    // Everything restarts and heals; then a quiet minute.
    for p in std::mem::take(&mut w.restart_at).into_keys() {
        let seed = w.rng.random();
        w.sim.restart_registrar(p, registrar_config(p), seed);
    }
    w.sim.heal();
    w.partitioned = false;
    w.heal_at = None;
    w.change(format_args!("all up and healed: quiet minute"));
    for _ in 0..60 {
        w.step();
        w.check(seed);
    }
    w.final_check(seed);
    Report {
        changes: w.changes,
        takeovers: (0..REGISTRARS)
            .map(|p| w.sim.prs[p].core.stats().takeovers_won)
            .sum(),
        resolutions: w.resolutions,
        resolution_failures: w.resolution_failures,
        enrp_messages: w.sim.enrp_messages,
    }
}

#[test]
fn twelve_registrars_stay_consistent_through_crashes_partitions_and_loss() {
    let seeds: Vec<u64> = match std::env::var("ENRP_SIM_SEED") {
        Ok(s) => {
            // One seed: its changes, and the cores' logs as RUST_LOG says, between markers
            // of virtual time.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .without_time()
                .with_writer(std::io::stderr)
                .try_init();
            vec![s.parse().expect("ENRP_SIM_SEED is a number")]
        }
        Err(_) => {
            let n: u64 = std::env::var("ENRP_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(if cfg!(debug_assertions) { 16 } else { 200 });
            (1..=n).collect()
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let reports: Vec<Report> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || chunk.into_iter().map(run).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a seed failed"))
            .collect()
    });
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    eprintln!(
        "{} seeds: {} changes, {} takeovers, {} resolutions ({} failed), {} ENRP messages",
        reports.len(),
        sum(|r| r.changes),
        sum(|r| r.takeovers),
        sum(|r| r.resolutions),
        sum(|r| r.resolution_failures),
        sum(|r| r.enrp_messages),
    );
    assert!(sum(|r| r.takeovers) > 0, "the runs exercised takeovers");
}
