//! `rserpool pe`: a demo pool element (echo, discard, daytime, chargen) that registers with a
//! registrar, answers keep-alives, re-registers, reports its load and deregisters on exit.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use rserpool::Client;
use rserpool::asap::PoolElementSpec;
use rserpool::transport::Association;
use rserpool::wire::{
    PPID_ASAP, Policy, PoolElementId, PoolHandle, SctpTransport, Transport, TransportUse, fraction,
};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::common::{self, AsapArgs};

/// The services of RSPLIB's `rspserver`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Service {
    /// Sends every message back (same PPID).
    Echo,
    /// Swallows everything.
    Discard,
    /// Sends the time, then closes.
    Daytime,
    /// Sends lines of characters until the pool user closes.
    Chargen,
}

/// Run a demo pool element.
#[derive(Args, Debug)]
pub struct PeArgs {
    /// The service.
    #[arg(long, value_enum, default_value = "echo")]
    service: Service,
    /// Pool handle (default: EchoPool, DiscardPool, DaytimePool or CharGenPool, as RSPLIB).
    #[arg(long, value_name = "HANDLE", value_parser = common::parse_pool)]
    pool: Option<PoolHandle>,
    /// The SCTP port to serve on (default: a free one).
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Pool policy and the PE's values, as rspserver -policy= (e.g. RoundRobin,
    /// WeightedRandom:3, LeastUsed); a load-based policy reports sessions/max-sessions as load.
    #[arg(long, value_name = "SPEC", default_value = "RoundRobin", value_parser = Policy::from_spec)]
    policy: Policy,
    /// Sessions at full load (load-based policies).
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_sessions: u32,
    /// T4-reregistration, ms (the registration life is three times it).
    #[arg(long, value_name = "MS", default_value_t = 30000)]
    rereg_interval: u64,
    /// PE identifier, decimal or 0x-hex (default: random).
    #[arg(long, value_name = "ID", value_parser = parse_pe_id)]
    id: Option<PoolElementId>,
    /// Advertise the transport as data-only (default: data plus control, as RSPLIB's
    /// rspserver, so both can share a pool).
    #[arg(long)]
    data_only: bool,
    #[command(flatten)]
    asap: AsapArgs,
}

fn parse_pe_id(s: &str) -> Result<PoolElementId, String> {
    let v = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("PE identifier {s:?} is not a 32-bit number"))?;
    if v == 0 {
        return Err("PE identifier 0 is not allowed".into());
    }
    Ok(PoolElementId(v))
}

impl Service {
    fn default_pool(self) -> &'static str {
        match self {
            Self::Echo => "EchoPool",
            Self::Discard => "DiscardPool",
            Self::Daytime => "DaytimePool",
            Self::Chargen => "CharGenPool",
        }
    }
}

pub fn run(args: PeArgs) -> ExitCode {
    args.asap.init_logging();
    let rt = match common::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rserpool pe: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rserpool pe: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Load {
    sessions: AtomicU32,
    changed: Notify,
}

async fn serve(args: PeArgs) -> Result<(), String> {
    let client = args.asap.start().await?;
    let pool = args
        .pool
        .clone()
        .unwrap_or_else(|| PoolHandle::try_from(args.service.default_pool()).expect("valid"));
    let mut listener = match args.port {
        Some(p) => client
            .endpoint()
            .listen(p)
            .await
            .map_err(|e| format!("SCTP port {p}: {e}"))?,
        None => {
            let mut tries = 0;
            loop {
                let p = rand::random_range(20000..=48000u16);
                match client.endpoint().listen(p).await {
                    Ok(l) => break l,
                    Err(_) if tries < 64 => tries += 1,
                    Err(e) => return Err(format!("no free SCTP port: {e}")),
                }
            }
        }
    };
    let port = listener.port();
    let transport_use = if args.data_only {
        TransportUse::DataOnly
    } else {
        TransportUse::DataPlusControl
    };
    let spec = PoolElementSpec {
        pool_handle: pool.clone(),
        pe_id: args.id,
        user_transport: Transport::Sctp(SctpTransport {
            port,
            transport_use,
            addresses: Vec::new(),
        }),
        policy: args.policy.clone(),
        reregistration_interval: Duration::from_millis(args.rereg_interval.max(10)),
    };
    let id = client
        .register(spec)
        .await
        .map_err(|e| format!("registration in {pool} failed: {e}"))?;
    let stop = common::termination();
    println!(
        "rserpool pe ready: pool={pool} id={:#010x} service={:?} sctp-port={port} udp={}",
        id.0,
        args.service,
        client.endpoint().udp_local_addr()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    info!(pool = %pool, id = id.0, port, "registered");

    let load = Arc::new(Load {
        sessions: AtomicU32::new(0),
        changed: Notify::new(),
    });
    if args.policy.clone().set_load(0) {
        tokio::spawn(report_load(
            client.clone(),
            pool.clone(),
            id,
            args.policy.clone(),
            args.max_sessions.max(1),
            load.clone(),
        ));
    }
    let service = args.service;
    let accept = async {
        while let Some(assoc) = listener.accept().await {
            let load = load.clone();
            tokio::spawn(async move {
                load.sessions.fetch_add(1, Ordering::Relaxed);
                load.changed.notify_one();
                session(service, assoc).await;
                load.sessions.fetch_sub(1, Ordering::Relaxed);
                load.changed.notify_one();
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = stop => info!("terminating"),
    }
    match tokio::time::timeout(Duration::from_secs(3), client.deregister(&pool, id)).await {
        Ok(Ok(())) => info!("deregistered"),
        Ok(Err(e)) => warn!("deregistration failed: {e}"),
        Err(_) => warn!("deregistration timed out"),
    }
    client.close().await;
    Ok(())
}

/// Keeps the registrar's view of the load current (sessions / max sessions).
async fn report_load(
    client: Client,
    pool: PoolHandle,
    id: PoolElementId,
    mut policy: Policy,
    max: u32,
    load: Arc<Load>,
) {
    let mut last = 0;
    loop {
        load.changed.notified().await;
        // Coalesce bursts of session changes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = load.sessions.load(Ordering::Relaxed);
        if n == last {
            continue;
        }
        last = n;
        policy.set_load(fraction((f64::from(n) / f64::from(max)).min(1.0)));
        if let Err(e) = client.update_policy(&pool, id, policy.clone()).await {
            warn!("load update failed: {e}");
        }
    }
}

async fn session(service: Service, assoc: Association) {
    let peer = assoc.peer();
    debug!(?peer, "session");
    match service {
        Service::Echo => loop {
            match assoc.recv().await {
                // ASAP session messages (cookie echo, business card) are not echoed.
                Ok((PPID_ASAP, _)) => {}
                Ok((ppid, data)) => {
                    if assoc.send(ppid, data).await.is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        },
        Service::Discard => while assoc.recv().await.is_ok() {},
        Service::Daytime => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let text = format!("{} seconds since 1970-01-01 UTC\n", now.as_secs());
            if assoc.send(0, Bytes::from(text)).await.is_ok() {
                assoc.shutdown();
            }
            let _ = assoc.closed().await;
        }
        Service::Chargen => {
            let chars: Vec<u8> = (b' '..=b'~').collect();
            let mut i = 0;
            loop {
                let line: Vec<u8> = (0..72)
                    .map(|k| chars[(i + k) % chars.len()])
                    .chain([b'\n'])
                    .collect();
                i += 1;
                tokio::select! {
                    r = assoc.send(0, Bytes::from(line)) => if r.is_err() { break },
                    r = assoc.recv() => if r.is_err() { break },
                }
            }
        }
    }
}
