//! `rserpool loadgen`: an ASAP load generator. Many concurrent clients, each with its own
//! transport endpoint (own UDP port, no host port sharing) and its own association to the
//! registrar, measure what a registrar sustains:
//!
//! * phase `register`: every client registers a new PE and deregisters it again, in a loop
//!   (one request outstanding per client): registrations/s and deregistrations/s;
//! * phase `reregister`: every client registers `--pes-per-client` PEs (not timed), then
//!   re-registers them in turn, as PEs do every T4-reregistration or on a load change:
//!   re-registrations/s (each a Registration answered by a Registration Response);
//! * phase `resolve`: further clients register `--resolve-pes` PEs (one each), then every load
//!   client resolves the pool handle in a loop (`stale_cache_value` is zero: every resolution is a
//!   Handle Resolution answered by the registrar): handle resolutions/s.
//!
//! Each phase reports the operations completed, the rate (operations over the time from the
//! phase's start to its last answer), latency percentiles and every error. What a phase
//! registers is deregistered at its end, so the registrar's handlespace is left as found.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rserpool::asap::{ClientError, PoolElementSpec};
use rserpool::wire::{Policy, PoolElementId, PoolHandle, SctpTransport, Transport, TransportUse};
use rserpool::{Client, ClientOptions};
use tokio::task::JoinSet;

use super::common::{self, AsapArgs};

/// A phase of the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// Register a new PE and deregister it, in a loop.
    Register,
    /// Re-register already registered PEs, in a loop.
    Reregister,
    /// Resolve the pool handle, in a loop.
    Resolve,
}

/// The options of `rserpool loadgen` (the subcommand's help text is in `main.rs`).
#[derive(Args, Debug)]
pub struct LoadgenArgs {
    /// Concurrent ASAP clients, each with its own endpoint and association (one request
    /// outstanding per client).
    #[arg(long, value_name = "N", default_value_t = 50)]
    clients: usize,
    /// Length of each phase, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    duration: f64,
    /// The pool handle the load uses (it should be unused).
    #[arg(long, value_name = "HANDLE", default_value = "LoadPool", value_parser = common::parse_pool)]
    pool: PoolHandle,
    /// PEs each client keeps registered, and re-registers in turn, in the `reregister` phase.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pes_per_client: usize,
    /// PEs in the pool during the `resolve` phase, each registered by a client of its own
    /// (its own association; at most 1024 such clients, which then share the PEs out).
    #[arg(long, value_name = "P", default_value_t = 10)]
    resolve_pes: usize,
    /// PEs asked for per handle resolution (default: the registrar's choice).
    #[arg(long, value_name = "N")]
    items: Option<u32>,
    /// The phases to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "register,reregister,resolve"
    )]
    phases: Vec<Phase>,
    /// Policy of the PEs registered (as rspserver -policy=).
    #[arg(long, value_name = "SPEC", default_value = "RoundRobin", value_parser = Policy::from_spec)]
    policy: Policy,
    /// Print the results as one JSON object on stdout (the human lines go to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    asap: AsapArgs,
}

/// Highest load client count: PE identifiers are (client + 1) << 20 | sequence, and the
/// clients of the resolve phase's PEs come after the load clients.
const MAX_CLIENTS: usize = 2048;
/// Most clients that register the resolve phase's PEs (one PE each while there are fewer PEs;
/// beyond, they share them out).
const MAX_PE_CLIENTS: usize = 1024;
/// The re-registration interval of load PEs: long, so that the client's own periodic
/// re-registrations never mix with the measured ones.
const LOAD_REREG_INTERVAL: Duration = Duration::from_secs(3600);

/// Counts and latencies of one kind of operation.
#[derive(Default, Debug)]
struct OpStats {
    ok: u64,
    /// Latencies of the successful operations, microseconds.
    latencies: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn success(&mut self, started: Instant) {
        self.ok += 1;
        let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        self.latencies.push(us);
    }

    fn error(&mut self, what: impl std::fmt::Display) {
        *self.errors.entry(what.to_string()).or_default() += 1;
    }

    /// Runs one request within `limit`, counting its success (with its latency) or its error.
    async fn measure<T, E: std::fmt::Display>(
        &mut self,
        limit: Duration,
        request: impl std::future::Future<Output = Result<T, E>>,
    ) -> Option<T> {
        let t = Instant::now();
        match tokio::time::timeout(limit, request).await {
            Ok(Ok(v)) => {
                self.success(t);
                Some(v)
            }
            Ok(Err(e)) => {
                self.error(e);
                None
            }
            Err(_) => {
                self.error("no answer within the request limit");
                None
            }
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: OpStats) {
        self.ok += other.ok;
        self.latencies.extend(other.latencies);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn percentile_ms(sorted: &[u32], p: f64) -> Option<f64> {
        if sorted.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let i = rank.clamp(1, sorted.len()) - 1;
        Some(f64::from(sorted[i]) / 1000.0)
    }
}

/// The result of one operation kind of a phase.
struct OpResult {
    name: &'static str,
    stats: OpStats,
    elapsed: Duration,
}

impl OpResult {
    fn new(name: &'static str, mut stats: OpStats, elapsed: Duration) -> Self {
        stats.latencies.sort_unstable();
        Self {
            name,
            stats,
            elapsed,
        }
    }

    fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.stats.ok as f64 / s
        } else {
            0.0
        }
    }

    fn pct(&self, p: f64) -> Option<f64> {
        OpStats::percentile_ms(&self.stats.latencies, p)
    }

    fn human(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
        let mut s = format!(
            "{:<14} {:>8} in {:>6.2} s = {:>9.1}/s  p50 {}  p99 {}  max {}  errors {}",
            self.name,
            self.stats.ok,
            self.elapsed.as_secs_f64(),
            self.rate(),
            ms(self.pct(50.0)),
            ms(self.pct(99.0)),
            ms(self.pct(100.0)),
            self.stats.error_count()
        );
        for (e, n) in &self.stats.errors {
            let _ = write!(s, "\n{:<14}   {n} x {e}", "");
        }
        s
    }

    fn json(&self) -> String {
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let errors: Vec<String> = self
            .stats
            .errors
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_string(k)))
            .collect();
        format!(
            "{}:{{\"ok\":{},\"errors\":{},\"elapsed_s\":{:.3},\"rate\":{:.1},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"error_kinds\":{{{}}}}}",
            json_string(self.name),
            self.stats.ok,
            self.stats.error_count(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            num(self.pct(50.0)),
            num(self.pct(90.0)),
            num(self.pct(99.0)),
            num(self.pct(100.0)),
            errors.join(",")
        )
    }
}

fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// What every load task needs.
struct Ctx {
    pool: PoolHandle,
    policy: Policy,
    items: Option<u32>,
    /// Bound of one request (T1/T2/T3 plus slack).
    limit: Duration,
    duration: Duration,
}

impl Ctx {
    fn spec(&self, client: &Client, id: PoolElementId) -> PoolElementSpec {
        PoolElementSpec {
            pool_handle: self.pool.clone(),
            pe_id: Some(id),
            // The client's own ASAP port: a port it really listens on; the addresses are
            // those of the association to the registrar.
            user_transport: Transport::Sctp(SctpTransport {
                port: client.asap_port(),
                transport_use: TransportUse::DataPlusControl,
                addresses: Vec::new(),
            }),
            policy: self.policy.clone(),
            reregistration_interval: LOAD_REREG_INTERVAL,
        }
    }

    async fn register(&self, client: &Client, id: PoolElementId, st: &mut OpStats) -> bool {
        st.measure(self.limit, client.register(self.spec(client, id)))
            .await
            .is_some()
    }

    async fn deregister(&self, client: &Client, id: PoolElementId, st: &mut OpStats) -> bool {
        st.measure(self.limit, client.deregister(&self.pool, id))
            .await
            .is_some()
    }
}

/// The PE identifier of a client's `seq`-th PE.
fn pe_id(client: usize, seq: u32) -> PoolElementId {
    PoolElementId(((client as u32 + 1) << 20) | (seq & 0xf_ffff))
}

/// Runs a phase's loop on every client until the phase's end; returns the per-client results
/// and the time from the start to the last answer.
async fn timed<T, F, Fut>(clients: &[(usize, Client)], ctx: &Arc<Ctx>, f: F) -> (Vec<T>, Duration)
where
    T: Send + 'static,
    F: Fn(usize, Client, Arc<Ctx>, Instant) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Instant::now();
    let end = start + ctx.duration;
    let mut set = JoinSet::new();
    for (i, c) in clients {
        set.spawn(f(*i, c.clone(), ctx.clone(), end));
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(t) => out.push(t),
            Err(e) => eprintln!("rserpool loadgen: a load task failed: {e}"),
        }
    }
    (out, start.elapsed())
}

/// Runs `f` on every client concurrently (setup and teardown); returns the results.
async fn each<T, F, Fut>(clients: &[(usize, Client)], ctx: &Arc<Ctx>, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Client, Arc<Ctx>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut set = JoinSet::new();
    for (i, c) in clients {
        set.spawn(f(*i, c.clone(), ctx.clone()));
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(t) => out.push(t),
            Err(e) => eprintln!("rserpool loadgen: a load task failed: {e}"),
        }
    }
    out
}

fn merged(parts: impl IntoIterator<Item = OpStats>) -> OpStats {
    let mut s = OpStats::default();
    for p in parts {
        s.merge(p);
    }
    s
}

/// `register`: new PE, registration, deregistration, again.
async fn phase_register(clients: &[(usize, Client)], ctx: &Arc<Ctx>) -> Vec<OpResult> {
    let (parts, elapsed) = timed(clients, ctx, |i, client, ctx, end| async move {
        let mut reg = OpStats::default();
        let mut dereg = OpStats::default();
        let mut seq = 0u32;
        while Instant::now() < end {
            let id = pe_id(i, seq);
            seq = seq.wrapping_add(1);
            if ctx.register(&client, id, &mut reg).await {
                ctx.deregister(&client, id, &mut dereg).await;
            }
        }
        (reg, dereg)
    })
    .await;
    let (reg, dereg): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    vec![
        OpResult::new("registration", merged(reg), elapsed),
        OpResult::new("deregistration", merged(dereg), elapsed),
    ]
}

/// `reregister`: K PEs per client registered once, then re-registered in turn.
async fn phase_reregister(
    clients: &[(usize, Client)],
    ctx: &Arc<Ctx>,
    k: usize,
    housekeeping: &mut OpStats,
) -> Vec<OpResult> {
    // Setup: the first registrations (not timed). Sequence numbers from 0x80000 keep the IDs
    // apart from those of the `register` phase.
    let setup = each(clients, ctx, move |i, client, ctx| async move {
        let mut st = OpStats::default();
        let mut ids = Vec::new();
        for n in 0..k {
            let id = pe_id(i, 0x8_0000 + n as u32);
            if ctx.register(&client, id, &mut st).await {
                ids.push(id);
            }
        }
        (i, ids, st)
    })
    .await;
    let mut registered: BTreeMap<usize, Vec<PoolElementId>> = BTreeMap::new();
    for (i, ids, st) in setup {
        housekeeping.merge(st);
        registered.insert(i, ids);
    }
    let registered = Arc::new(registered);
    let reg = registered.clone();
    let (parts, elapsed) = timed(clients, ctx, move |i, client, ctx, end| {
        let reg = reg.clone();
        async move {
            let mut st = OpStats::default();
            let ids = reg.get(&i).cloned().unwrap_or_default();
            if ids.is_empty() {
                return st;
            }
            let mut n = 0usize;
            while Instant::now() < end {
                ctx.register(&client, ids[n % ids.len()], &mut st).await;
                n += 1;
            }
            st
        }
    })
    .await;
    // Teardown.
    let teardown = each(clients, ctx, move |i, client, ctx| {
        let reg = registered.clone();
        async move {
            let mut st = OpStats::default();
            for &id in reg.get(&i).map(Vec::as_slice).unwrap_or_default() {
                ctx.deregister(&client, id, &mut st).await;
            }
            st
        }
    })
    .await;
    housekeeping.merge(merged(teardown));
    vec![OpResult::new("reregistration", merged(parts), elapsed)]
}

/// `resolve`: P PEs registered by the PE clients (each PE on its own association while there
/// are enough of them), then every load client resolves in a loop.
async fn phase_resolve(
    clients: &[(usize, Client)],
    owners: &[(usize, Client)],
    ctx: &Arc<Ctx>,
    p: usize,
    housekeeping: &mut OpStats,
) -> Vec<OpResult> {
    let n_owners = owners.len().max(1);
    let position: Arc<BTreeMap<usize, usize>> = Arc::new(
        owners
            .iter()
            .enumerate()
            .map(|(pos, (oi, _))| (*oi, pos))
            .collect(),
    );
    let setup = each(owners, ctx, move |oi, client, ctx| {
        let position = position.clone();
        async move {
            let mut st = OpStats::default();
            let mut ids = Vec::new();
            // This owner's share of the P PEs: from its position among the owners, every
            // n_owners-th.
            let pos = position.get(&oi).copied().unwrap_or(0);
            for n in (pos..p).step_by(n_owners) {
                let id = pe_id(oi, n as u32);
                if ctx.register(&client, id, &mut st).await {
                    ids.push(id);
                }
            }
            (oi, client, ids, st)
        }
    })
    .await;
    let mut registered = Vec::new();
    for (oi, client, ids, st) in setup {
        housekeeping.merge(st);
        registered.push((oi, client, ids));
    }
    let count: usize = registered.iter().map(|(_, _, ids)| ids.len()).sum();
    if count < p {
        eprintln!("rserpool loadgen: {count} of the resolve phase's {p} PEs registered");
    }
    let (parts, elapsed) = timed(clients, ctx, |_, client, ctx, end| async move {
        let mut st = OpStats::default();
        while Instant::now() < end {
            let t = Instant::now();
            match tokio::time::timeout(ctx.limit, client.resolve(&ctx.pool, ctx.items)).await {
                Ok(Ok(pes)) if !pes.is_empty() => st.success(t),
                Ok(Ok(_)) => st.error("resolution without PEs"),
                Ok(Err(e)) => st.error(e),
                Err(_) => st.error("no answer within the request limit"),
            }
        }
        st
    })
    .await;
    let registered = Arc::new(registered);
    let owners_left: Vec<(usize, Client)> = registered
        .iter()
        .map(|(oi, c, _)| (*oi, c.clone()))
        .collect();
    let teardown = each(&owners_left, ctx, move |oi, client, ctx| {
        let registered = registered.clone();
        async move {
            let mut st = OpStats::default();
            if let Some((_, _, ids)) = registered.iter().find(|(o, _, _)| *o == oi) {
                for &id in ids {
                    ctx.deregister(&client, id, &mut st).await;
                }
            }
            st
        }
    })
    .await;
    housekeeping.merge(merged(teardown));
    vec![OpResult::new("resolution", merged(parts), elapsed)]
}

/// Runs the load generator.
pub fn run(args: LoadgenArgs) -> ExitCode {
    args.asap.init_logging();
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        eprintln!("rserpool loadgen: --clients must be 1 to {MAX_CLIENTS}");
        return ExitCode::from(2);
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        eprintln!("rserpool loadgen: --duration must be a positive number of seconds");
        return ExitCode::from(2);
    }
    if args.pes_per_client == 0 || args.pes_per_client > 0x8_0000 {
        eprintln!("rserpool loadgen: --pes-per-client must be 1 to 524288");
        return ExitCode::from(2);
    }
    if args.resolve_pes > 0x10_0000 {
        eprintln!("rserpool loadgen: --resolve-pes must be at most 1048576");
        return ExitCode::from(2);
    }
    let mut options = match args.asap.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rserpool loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    // Every client its own UDP port and association; the registrar's encapsulation port is
    // --udp-port.
    options.transport.udp_port = 0;
    options.transport.share_host = false;
    options.transport.remote_udp_port = args.asap.udp_port;
    // Every resolution goes to the registrar; a request that is not answered in time fails
    // at once (no hidden retransmission after a new server hunt).
    options.asap.stale_cache_value = Duration::ZERO;
    options.asap.max_request_retransmit = 0;
    let t = options.asap.t1_enrp_request;
    options.asap.t2_registration = t;
    options.asap.t3_deregistration = t;
    let rt = match common::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rserpool loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(load(args, options));
    rt.shutdown_timeout(Duration::from_secs(2));
    code
}

async fn load(args: LoadgenArgs, options: ClientOptions) -> ExitCode {
    let ctx = Arc::new(Ctx {
        pool: args.pool.clone(),
        policy: args.policy.clone(),
        items: args.items,
        limit: options.asap.t1_enrp_request + Duration::from_secs(2),
        duration: Duration::from_secs_f64(args.duration),
    });
    let registrar = options
        .asap
        .registrars
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // The PEs of the resolve phase come from clients of their own, one PE per association
    // as in RFC 5352's model, up to MAX_PE_CLIENTS of them.
    let owners = if args.phases.contains(&Phase::Resolve) {
        args.resolve_pes.clamp(1, MAX_PE_CLIENTS)
    } else {
        0
    };
    let total = args.clients + owners;
    // Start the clients.
    let mut all = Vec::new();
    // Distinct SCTP ports: the clients share one IP address, and to the registrar two
    // associations from the same address and SCTP port are one peer, whatever their UDP ports
    // (RFC 6951 §5.1); random ports would collide now and then (birthday paradox).
    // From 10000 up: clear of the ASAP (3863) and encapsulation (9899) ports.
    let first_port = rand::random_range(10000..=(65535 - total as u16));
    for i in 0..total {
        let mut o = options.clone();
        o.asap_port = Some(first_port + i as u16);
        match Client::start(o).await {
            Ok(c) => all.push((i, c)),
            Err(e) => {
                eprintln!("rserpool loadgen: cannot start client {i}: {e}");
                for (_, c) in &all {
                    c.stop();
                }
                return ExitCode::FAILURE;
            }
        }
    }
    // Connect: a resolution of the (unused) pool makes each client hunt and associate with
    // the registrar; any answer, also "unknown pool handle", shows the association is up.
    let connect_start = Instant::now();
    let connected = each(&all, &ctx, |i, client, ctx| async move {
        let t = Instant::now();
        let r = tokio::time::timeout(ctx.limit, client.resolve(&ctx.pool, ctx.items)).await;
        let ok = matches!(r, Ok(Ok(_)) | Ok(Err(ClientError::UnknownPoolHandle)));
        let err = match r {
            Ok(Ok(_)) | Ok(Err(ClientError::UnknownPoolHandle)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer within the request limit".to_string()),
        };
        (i, ok, err, t.elapsed())
    })
    .await;
    let mut connect = OpStats::default();
    let mut up: BTreeMap<usize, bool> = BTreeMap::new();
    for (i, ok, err, took) in &connected {
        up.insert(*i, *ok);
        match err {
            None => {
                connect.ok += 1;
                connect
                    .latencies
                    .push(took.as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Some(e) => connect.error(e),
        }
    }
    let connect = OpResult::new("connect", connect, connect_start.elapsed());
    eprintln!(
        "rserpool loadgen: {} of {total} clients associated with {registrar} in {:.2} s",
        connect.stats.ok,
        connect.elapsed.as_secs_f64()
    );
    for (e, n) in &connect.stats.errors {
        eprintln!("rserpool loadgen:   {n} x {e}");
    }
    let mut clients: Vec<(usize, Client)> = Vec::new();
    let mut owner_clients: Vec<(usize, Client)> = Vec::new();
    for (i, c) in &all {
        if !up.get(i).copied().unwrap_or(false) {
            continue;
        }
        if *i >= args.clients {
            owner_clients.push((*i, c.clone()));
        } else {
            clients.push((*i, c.clone()));
        }
    }
    let mut results: Vec<OpResult> = Vec::new();
    let mut housekeeping = OpStats::default();
    let mut failed_phases = Vec::new();
    if clients.is_empty() {
        eprintln!("rserpool loadgen: no client reached the registrar");
        failed_phases.push("connect");
    } else {
        for phase in &args.phases {
            let r = match phase {
                Phase::Register => phase_register(&clients, &ctx).await,
                Phase::Reregister => {
                    phase_reregister(&clients, &ctx, args.pes_per_client, &mut housekeeping).await
                }
                Phase::Resolve => {
                    phase_resolve(
                        &clients,
                        &owner_clients,
                        &ctx,
                        args.resolve_pes,
                        &mut housekeeping,
                    )
                    .await
                }
            };
            for o in r {
                eprintln!("{}", o.human());
                if o.stats.ok == 0 {
                    failed_phases.push(o.name);
                }
                results.push(o);
            }
        }
    }
    // The handlespace as found: the pool should be gone (or at least empty) again.
    let mut pool_left: Option<usize> = None;
    if let Some((_, c)) = clients.first() {
        match tokio::time::timeout(ctx.limit, c.resolve(&ctx.pool, Some(u32::MAX))).await {
            Ok(Err(ClientError::UnknownPoolHandle)) => pool_left = Some(0),
            Ok(Ok(pes)) => {
                eprintln!(
                    "rserpool loadgen: {} PE(s) of the load left in {} after the cleanup",
                    pes.len(),
                    ctx.pool
                );
                pool_left = Some(pes.len());
            }
            Ok(Err(e)) => eprintln!("rserpool loadgen: checking the pool after the load: {e}"),
            Err(_) => eprintln!("rserpool loadgen: checking the pool after the load: no answer"),
        }
    }
    // Stop: every association is aborted, which the registrar hears at once.
    for (_, c) in &all {
        c.stop();
        c.endpoint().close();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let house = OpResult::new("setup+cleanup", housekeeping, Duration::ZERO);
    let house_errors = house.stats.error_count();
    eprintln!(
        "rserpool loadgen: setup and cleanup requests: {} done, {} errors",
        house.stats.ok, house_errors
    );
    for (e, n) in &house.stats.errors {
        eprintln!("rserpool loadgen:   {n} x {e}");
    }
    let errors: u64 = results.iter().map(|r| r.stats.error_count()).sum::<u64>()
        + connect.stats.error_count()
        + house_errors;
    if args.json {
        let mut ops: Vec<String> = results.iter().map(OpResult::json).collect();
        ops.push(connect.json());
        ops.push(house.json());
        println!(
            "{{\"registrar\":{},\"clients\":{},\"clients_up\":{},\"duration_s\":{},\"pool\":{},\"pes_per_client\":{},\"resolve_pes\":{},\"items\":{},\"errors\":{errors},\"pool_left\":{},\"ops\":{{{}}}}}",
            json_string(&registrar),
            args.clients,
            clients.len(),
            args.duration,
            json_string(args.pool.to_string().trim_matches('"')),
            args.pes_per_client,
            args.resolve_pes,
            args.items.map_or("null".to_string(), |n| n.to_string()),
            pool_left.map_or("null".to_string(), |n| n.to_string()),
            ops.join(",")
        );
    }
    if failed_phases.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "rserpool loadgen: nothing succeeded in: {}",
            failed_phases.join(", ")
        );
        ExitCode::FAILURE
    }
}
