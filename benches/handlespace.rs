//! Handlespace rates at registrar scale: insert, re-register, remove and handle resolution
//! (3 items) with 1 000 000 PEs in 1 000 pools and with one pool of 100 000 PEs, for Round Robin,
//! Weighted Random and Least Used. Before the benchmarks it prints the memory per PE, measured
//! with a counting allocator.
//!
//! `cargo bench --bench handlespace` (add a filter, e.g. `-- 100k`, to run a part).
//!
//! Every PE looks like one a registrar holds: an SCTP user transport and an ASAP transport with
//! one IPv4 address each, a home registrar among three, a deadline (keep-alive or expiry), and an
//! association for the third of them that is "ours".

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rserpool::handlespace::{AssociationId, Handlespace, PeTimer};
use rserpool::policy::SelectionRequest;
use rserpool::wire::{
    Policy, PoolElement, PoolElementId, PoolHandle, RegistrarId, SctpTransport, Transport,
    TransportUse,
};

// ---------------------------------------------------------------------------------------------
// Counting allocator: requested bytes, and bytes as glibc malloc chunks (size + 8 rounded up to
// 16, at least 32), which is what the process really pays.

struct Counting;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);
static CHUNKS: AtomicUsize = AtomicUsize::new(0);

fn chunk(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are only
// statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            REQUESTED.fetch_add(l.size(), Relaxed);
            CHUNKS.fetch_add(chunk(l.size()), Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            REQUESTED.fetch_add(l.size(), Relaxed);
            CHUNKS.fetch_add(chunk(l.size()), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        REQUESTED.fetch_sub(l.size(), Relaxed);
        CHUNKS.fetch_sub(chunk(l.size()), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            REQUESTED.fetch_add(new, Relaxed);
            REQUESTED.fetch_sub(l.size(), Relaxed);
            CHUNKS.fetch_add(chunk(new), Relaxed);
            CHUNKS.fetch_sub(chunk(l.size()), Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// Workload

/// At most this many PEs are added (and taken out again) at a time by the insert and remove
/// benchmarks.
const BATCH: u64 = 1000;

const SELF: RegistrarId = RegistrarId(0x1111_1111);
const PEERS: [RegistrarId; 3] = [SELF, RegistrarId(0x2222_2222), RegistrarId(0x3333_3333)];

#[derive(Clone, Copy, Debug)]
enum Kind {
    RoundRobin,
    WeightedRandom,
    LeastUsed,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::RoundRobin => "RR",
            Kind::WeightedRandom => "WRAND",
            Kind::LeastUsed => "LU",
        }
    }

    fn policy(self, rng: &mut SmallRng) -> Policy {
        match self {
            Kind::RoundRobin => Policy::RoundRobin,
            Kind::WeightedRandom => Policy::WeightedRandom {
                weight: rng.random_range(1..=10),
            },
            Kind::LeastUsed => Policy::LeastUsed { load: rng.random() },
        }
    }
}

fn element(id: u32, home: RegistrarId, policy: Policy) -> PoolElement {
    let addr = Ipv4Addr::from(0x0a00_0000 | (id & 0x00ff_ffff));
    PoolElement {
        id: PoolElementId(id),
        home_registrar: home,
        registration_life: 90_000,
        user_transport: Transport::Sctp(SctpTransport {
            port: 7,
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![addr.into()],
        }),
        policy,
        asap_transport: Some(SctpTransport {
            port: 40_000,
            transport_use: TransportUse::DataOnly,
            addresses: vec![addr.into()],
        }),
    }
}

struct Setup {
    hs: Handlespace,
    handles: Vec<PoolHandle>,
    /// (pool index, PE ID) of every PE.
    pes: Vec<(usize, u32)>,
    kind: Kind,
    now: Instant,
    rng: SmallRng,
}

impl Setup {
    fn new(kind: Kind, pools: usize, per_pool: usize) -> Self {
        let mut rng = SmallRng::seed_from_u64(1);
        let handles: Vec<PoolHandle> = (0..pools)
            .map(|i| PoolHandle::new(format!("BenchPool-{i:05}")).unwrap())
            .collect();
        let mut s = Self {
            hs: Handlespace::new(),
            handles,
            pes: Vec::with_capacity(pools * per_pool),
            kind,
            now: Instant::now(),
            rng: SmallRng::seed_from_u64(2),
        };
        for p in 0..pools {
            for i in 0..per_pool {
                // Distinct IDs, spread over the u32 range as random IDs would be.
                let id = ((p * per_pool + i) as u32).wrapping_mul(0x9e37_79b1) | 1;
                s.add(p, id, &mut rng);
                s.pes.push((p, id));
            }
        }
        s
    }

    fn add(&mut self, p: usize, id: u32, rng: &mut SmallRng) {
        let home = PEERS[id as usize % 3];
        let assoc = (home == SELF).then_some(AssociationId(u64::from(id)));
        let pe = self
            .hs
            .register(
                &self.handles[p],
                element(id, home, self.kind.policy(rng)),
                assoc,
            )
            .unwrap()
            .pe;
        let timer = if home == SELF {
            PeTimer::KeepAliveTransmission
        } else {
            PeTimer::Expiry
        };
        let at = self.now + Duration::from_millis(u64::from(id % 90_000));
        self.hs.set_deadline(pe, Some((at, timer)));
    }
}

fn memory_report() {
    println!("Memory per PE (counting allocator; requested bytes / as glibc malloc chunks):");
    for (label, pools, per_pool) in [
        ("1M PEs in 1k pools", 1000, 1000),
        ("1 pool of 100k PEs", 1, 100_000),
    ] {
        for kind in [Kind::RoundRobin, Kind::WeightedRandom, Kind::LeastUsed] {
            let (r0, c0) = (REQUESTED.load(Relaxed), CHUNKS.load(Relaxed));
            let mut s = Setup::new(kind, pools, per_pool);
            // The bookkeeping of the benchmark itself is not the handlespace's.
            let own = s.pes.capacity() * std::mem::size_of::<(usize, u32)>()
                + s.handles.capacity() * std::mem::size_of::<PoolHandle>()
                + s.handles.iter().map(|h| h.as_bytes().len()).sum::<usize>();
            let n = (pools * per_pool) as f64;
            let req = (REQUESTED.load(Relaxed) - r0 - own) as f64 / n;
            let chk = (CHUNKS.load(Relaxed) - c0 - own) as f64 / n;
            println!(
                "  {label:20} {:6}: {req:6.1} B requested, {chk:6.1} B in malloc chunks",
                kind.name()
            );
            s.pes.clear();
            drop(s);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

fn bench_setup(c: &mut Criterion, label: &str, pools: usize, per_pool: usize) {
    for kind in [Kind::RoundRobin, Kind::WeightedRandom, Kind::LeastUsed] {
        let mut s = Setup::new(kind, pools, per_pool);
        let mut g = c.benchmark_group(format!("{label}/{}", kind.name()));
        g.throughput(Throughput::Elements(1));

        // Handle resolution, 3 items, the registrar's default MaxIncrement; pools in turn.
        let mut out = Vec::with_capacity(8);
        let mut next_pool = 0;
        g.bench_function("select 3", |b| {
            b.iter(|| {
                out.clear();
                let h = &s.handles[next_pool];
                next_pool = (next_pool + 1) % s.handles.len();
                black_box(
                    s.hs.select(h, SelectionRequest::registrar(3), &mut s.rng, &mut out)
                        .unwrap(),
                );
            })
        });

        // Re-registration of a PE already there (new policy values), PEs in turn.
        let mut next_pe = 0;
        let mut rng = SmallRng::seed_from_u64(3);
        g.bench_function("re-register", |b| {
            b.iter_batched(
                || {
                    let (p, id) = s.pes[next_pe];
                    next_pe = (next_pe + 1) % s.pes.len();
                    let home = PEERS[id as usize % 3];
                    (p, element(id, home, kind.policy(&mut rng)), home)
                },
                |(p, e, home)| {
                    let assoc = (home == SELF).then_some(AssociationId(u64::from(e.id.0)));
                    black_box(s.hs.register(&s.handles[p], e, assoc).unwrap());
                },
                BatchSize::SmallInput,
            )
        });

        // Insert new PEs (timed), then take them out again (untimed), at most BATCH at a time so
        // that the handlespace stays at its size.
        let mut fresh_id = 0u32;
        let mut fresh = |n: u64, rng: &mut SmallRng| -> Vec<(usize, PoolElement)> {
            (0..n)
                .map(|i| {
                    fresh_id = fresh_id.wrapping_add(2); // even: never an ID of the setup
                    let p = i as usize % s.handles.len();
                    (p, element(fresh_id, SELF, kind.policy(rng)))
                })
                .collect()
        };
        g.bench_function("insert", |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    left -= n;
                    let batch = fresh(n, &mut rng);
                    let keys: Vec<(usize, PoolElementId)> =
                        batch.iter().map(|(p, e)| (*p, e.id)).collect();
                    let t = Instant::now();
                    for (p, e) in batch {
                        black_box(s.hs.register(&s.handles[p], e, None).unwrap());
                    }
                    elapsed += t.elapsed();
                    for (p, id) in keys {
                        s.hs.deregister(&s.handles[p], id).unwrap();
                    }
                }
                elapsed
            })
        });

        // Remove PEs (timed) that were inserted untimed, BATCH at a time.
        g.bench_function("remove", |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    left -= n;
                    let keys: Vec<(usize, PoolElementId)> = fresh(n, &mut rng)
                        .into_iter()
                        .map(|(p, e)| {
                            let id = e.id;
                            s.hs.register(&s.handles[p], e, None).unwrap();
                            (p, id)
                        })
                        .collect();
                    let t = Instant::now();
                    for (p, id) in keys {
                        black_box(s.hs.deregister(&s.handles[p], id).unwrap());
                    }
                    elapsed += t.elapsed();
                }
                elapsed
            })
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |label: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| label.contains(f.as_str()) || f.contains(label))
    };
    if filter.is_empty() || wanted("memory") {
        memory_report();
    }
    if wanted("1M PEs in 1k pools") {
        bench_setup(&mut c, "1M PEs in 1k pools", 1000, 1000);
    }
    if wanted("100k PE pool") {
        bench_setup(&mut c, "100k PE pool", 1, 100_000);
    }
    c.final_summary();
}
