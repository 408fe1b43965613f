//! A pool user talking to a pool element, three ways over the same stack, in one run:
//! 100-byte request/response round trips (one at a time, and 32 in flight for messages/s)
//! over a raw `rserpool-sctp` association, through the Rust session API (`Session` against
//! `SessionServer`), and through the C API (`rsp_sendmsg` / `rsp_recvmsg`, called as a C
//! program calls them, against the same PE); then handle resolutions through
//! `rsp_getaddrinfo` with the cache off and on, against the Rust `Client::resolve_with`.
//!
//! `cargo bench --bench session` (add a filter, e.g. `-- "round trip"`, to run a part). A full
//! run ends with the same comparisons interleaved (the ways alternate, 15 rounds each) and
//! prints their medians and ratios as a table: the figures of the README.
//!
//! Everything runs in this process on 127.0.0.1, on our SCTP over UDP (host port 30481,
//! fronted by an in-process registrar): the registrar and the PE's echo tasks on one runtime,
//! the raw and Rust pool users on a second, and librserpool with its own runtime, as a C
//! program would have it, so that each pool user has two worker threads of its own. The C API's cost
//! over the Rust API is the ratio of their rows; the session layer's over SCTP, the Rust
//! session API's row over the raw one.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use rserpool::asap::PoolElementSpec;
use rserpool::capi::api as c;
use rserpool::capi::types::{rsp_addrinfo, rsp_info, rsp_sndrcvinfo};
use rserpool::session::{PeEvent, SendInfo, SessionEvent};
use rserpool::transport::{Association, Endpoint, SendOptions, TransportConfig};
use rserpool::wire::{Policy, PoolHandle, RegistrarId, SctpTransport, Transport, TransportUse};
use rserpool::{
    Client, ClientOptions, RegistrarServer, ServerConfig, Session, SessionOptions, SessionServer,
};
use tokio::runtime::Runtime;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The bench's host UDP port (the registrar fronts it; everything else shares it).
const UDP: u16 = 30481;
const POOL: &str = "BenchPool";
const PPID: u32 = 33;
/// The SCTP port of the raw echo.
const RAW_PORT: u16 = 7481;
/// Messages in flight in the pipelined runs.
const WINDOW: u64 = 32;
/// The longest one step may take before the bench gives up.
const STEP: Duration = Duration::from_secs(10);

fn transport() -> TransportConfig {
    TransportConfig {
        local: LOCALHOST,
        udp_port: UDP,
        share_host: true,
        remote_udp_port: UDP,
        ..TransportConfig::default()
    }
}

fn client_options() -> ClientOptions {
    let mut o = ClientOptions {
        transport: transport(),
        announce_group: None,
        ..ClientOptions::default()
    };
    o.asap.registrars = vec![SocketAddr::new(LOCALHOST, 3863)];
    o
}

fn info() -> SendInfo {
    SendInfo {
        ppid: PPID,
        ..SendInfo::default()
    }
}

fn opts() -> SendOptions {
    SendOptions {
        ppid: PPID,
        ..SendOptions::default()
    }
}

/// What the benchmarks talk to.
struct Setup {
    raw: Association,
    pu: Client,
    session: Session,
    /// The C API's pool user socket.
    sd: i32,
}

/// The pool element's side: the registrar, the echo PE (session layer) and the raw echo.
async fn setup_pe() {
    let mut config = ServerConfig::new(RegistrarId(0xbe4c));
    config.transport = transport();
    config.announce_group = None;
    let registrar = RegistrarServer::start(config).await.unwrap();
    assert!(registrar.is_front(), "UDP port {UDP} is taken");
    std::mem::forget(registrar);
    let pool = PoolHandle::try_from(POOL).unwrap();

    // The PE: every message is echoed on its session.
    let pe = Client::start(client_options()).await.unwrap();
    let listener = pe.endpoint().listen(RAW_PORT + 1).await.unwrap();
    let mut server = SessionServer::start(listener, pool.clone());
    let spec = PoolElementSpec {
        pool_handle: pool.clone(),
        pe_id: None,
        user_transport: Transport::Sctp(SctpTransport {
            port: server.port(),
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![],
        }),
        policy: Policy::RoundRobin,
        reregistration_interval: Duration::from_secs(30),
    };
    timeout(STEP, pe.register(spec)).await.unwrap().unwrap();
    tokio::spawn(async move {
        let _pe = pe;
        while let Some(e) = server.next_event().await {
            if let PeEvent::Message {
                session,
                info,
                data,
            } = e
            {
                let _ = server.send(session, info, data).await;
            }
        }
    });

    // The raw echo, on an endpoint of its own.
    let echo = Endpoint::bind(&transport()).await.unwrap();
    let mut raw_listener = echo.listen(RAW_PORT).await.unwrap();
    tokio::spawn(async move {
        let _echo = echo;
        while let Some(a) = raw_listener.accept().await {
            tokio::spawn(async move {
                while let Ok(m) = a.recv_message().await {
                    let o = SendOptions {
                        stream: m.stream,
                        ppid: m.ppid,
                        unordered: m.unordered,
                        lifetime: None,
                    };
                    if a.send_message(o, m.data).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// The pool user's side: the raw association and the Rust session, on a runtime of their
/// own (as librserpool's pool user has one).
async fn setup_pu() -> Setup {
    let pool = PoolHandle::try_from(POOL).unwrap();
    let raw_client = Endpoint::bind(&transport()).await.unwrap();
    let raw = raw_client
        .connect(&[SocketAddr::new(LOCALHOST, RAW_PORT)], 0)
        .await
        .unwrap();
    std::mem::forget(raw_client);

    // The Rust pool user.
    let pu = Client::start(client_options()).await.unwrap();
    let mut session = Session::connect(&pu, pool, SessionOptions::default());
    match timeout(STEP, session.next_event()).await.unwrap() {
        Some(SessionEvent::Connected { .. }) => {}
        other => panic!("no session: {other:?}"),
    }

    Setup {
        raw,
        pu,
        session,
        sd: -1,
    }
}

/// librserpool initialised as a C program does it, and a connected pool user socket.
fn c_pool_user() -> i32 {
    // SAFETY: the environment is set before the library (or any other thread reading it)
    // starts; the calls get valid arguments.
    unsafe {
        std::env::set_var("RSERPOOL_UDP_PORT", UDP.to_string());
        std::env::set_var("RSERPOOL_LOCAL", "127.0.0.1");
        std::env::set_var("RSERPOOL_ANNOUNCE", "off");
        let mut info: rsp_info = std::mem::zeroed();
        c::rsp_initinfo(&mut info);
        let arg = CString::new("-registrar=127.0.0.1:3863").unwrap();
        assert_eq!(c::rsp_initarg(&mut info, arg.as_ptr()), 1);
        assert_eq!(c::rsp_initialize(&mut info), 0);
        let sd = c::rsp_socket(0, libc::SOCK_SEQPACKET, libc::IPPROTO_SCTP);
        assert!(sd >= 0);
        assert_eq!(c::rsp_connect(sd, POOL.as_ptr(), POOL.len(), 0), 0);
        sd
    }
}

// ---------------------------------------------------------------------------------------
// One request/response each way

async fn raw_round_trip(a: &Association, data: &Bytes) {
    a.send_message(opts(), data.clone()).await.unwrap();
    timeout(STEP, a.recv_message()).await.unwrap().unwrap();
}

async fn session_recv(s: &mut Session) {
    loop {
        match timeout(STEP, s.next_event()).await.unwrap() {
            Some(SessionEvent::Message { .. }) => return,
            Some(_) => continue,
            None => panic!("session closed"),
        }
    }
}

fn c_send(sd: i32, data: &[u8]) {
    // SAFETY: a live buffer of data.len() bytes.
    let n = unsafe {
        c::rsp_sendmsg(
            sd,
            data.as_ptr().cast(),
            data.len(),
            0,
            0,
            PPID.to_be(),
            0,
            0,
            0,
            -1,
        )
    };
    assert_eq!(n, data.len() as isize);
}

fn c_recv(sd: i32, buf: &mut [u8]) {
    loop {
        // SAFETY: a live buffer, info and flags.
        let n = unsafe {
            let mut ri: rsp_sndrcvinfo = std::mem::zeroed();
            let mut flags = 0;
            let n = c::rsp_recvmsg(
                sd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut ri,
                &mut flags,
                STEP.as_millis() as i32,
            );
            if n > 0 && flags & rserpool::capi::types::MSG_RSERPOOL_NOTIFICATION != 0 {
                continue;
            }
            n
        };
        assert!(n > 0, "rsp_recvmsg: {}", std::io::Error::last_os_error());
        return;
    }
}

// ---------------------------------------------------------------------------------------
// The measured loops: `n` operations each way, their time. Criterion and the interleaved
// summary both run these.

fn raw_trips(rt: &Runtime, raw: &Association, data: &Bytes, n: u64) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        for _ in 0..n {
            raw_round_trip(raw, data).await;
        }
        t.elapsed()
    })
}

fn rust_trips(rt: &Runtime, session: &mut Session, data: &Bytes, n: u64) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        for _ in 0..n {
            session.send(info(), data.clone()).await.unwrap();
            session_recv(session).await;
        }
        t.elapsed()
    })
}

fn c_trips(sd: i32, data: &[u8], buf: &mut [u8], n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        c_send(sd, data);
        c_recv(sd, buf);
    }
    t.elapsed()
}

fn raw_pipelined(rt: &Runtime, raw: &Association, data: &Bytes, n: u64) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        let (mut sent, mut got) = (0, 0);
        while got < n {
            while sent < n && sent - got < WINDOW {
                raw.send_message(opts(), data.clone()).await.unwrap();
                sent += 1;
            }
            timeout(STEP, raw.recv_message()).await.unwrap().unwrap();
            got += 1;
        }
        t.elapsed()
    })
}

fn rust_pipelined(rt: &Runtime, session: &mut Session, data: &Bytes, n: u64) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        let (mut sent, mut got) = (0, 0);
        while got < n {
            while sent < n && sent - got < WINDOW {
                session.send(info(), data.clone()).await.unwrap();
                sent += 1;
            }
            session_recv(session).await;
            got += 1;
        }
        t.elapsed()
    })
}

fn c_pipelined(sd: i32, data: &[u8], buf: &mut [u8], n: u64) -> Duration {
    let t = Instant::now();
    let (mut sent, mut got) = (0, 0);
    while got < n {
        while sent < n && sent - got < WINDOW {
            c_send(sd, data);
            sent += 1;
        }
        c_recv(sd, buf);
        got += 1;
    }
    t.elapsed()
}

fn rust_resolutions(rt: &Runtime, pu: &Client, stale: u32, n: u64) -> Duration {
    let pool = PoolHandle::try_from(POOL).unwrap();
    let d = Duration::from_millis(u64::from(stale));
    rt.block_on(async {
        let t = Instant::now();
        for _ in 0..n {
            let pes = timeout(STEP, pu.resolve_with(&pool, Some(1), Some(d)))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(pes.len(), 1);
        }
        t.elapsed()
    })
}

fn c_resolutions(stale: u32, n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let mut ai: *mut rsp_addrinfo = std::ptr::null_mut();
        // SAFETY: a valid pool handle and out pointer; the list is freed.
        unsafe {
            let got = c::rsp_getaddrinfo(POOL.as_ptr(), POOL.len(), &mut ai, 1, stale);
            assert_eq!(got, 1);
            c::rsp_freeaddrinfo(ai);
        }
    }
    t.elapsed()
}

fn round_trips(c: &mut Criterion, rt: &Runtime, s: &mut Setup) {
    let data = Bytes::from(vec![0x5a; 100]);
    let mut buf = vec![0u8; 4096];
    let mut g = c.benchmark_group("round trip 100 B");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw rserpool-sctp", |b| {
        b.iter_custom(|n| raw_trips(rt, &s.raw, &data, n))
    });
    g.bench_function("Rust session API", |b| {
        b.iter_custom(|n| rust_trips(rt, &mut s.session, &data, n))
    });
    g.bench_function("C API rsp_sendmsg/rsp_recvmsg", |b| {
        b.iter_custom(|n| c_trips(s.sd, &data, &mut buf, n))
    });
    g.finish();

    let mut g = c.benchmark_group("pipelined 100 B, 32 in flight");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw rserpool-sctp", |b| {
        b.iter_custom(|n| raw_pipelined(rt, &s.raw, &data, n))
    });
    g.bench_function("Rust session API", |b| {
        b.iter_custom(|n| rust_pipelined(rt, &mut s.session, &data, n))
    });
    g.bench_function("C API rsp_sendmsg/rsp_recvmsg", |b| {
        b.iter_custom(|n| c_pipelined(s.sd, &data, &mut buf, n))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// Handle resolution

fn resolutions(c: &mut Criterion, rt: &Runtime, s: &Setup) {
    let mut g = c.benchmark_group("handle resolution");
    g.throughput(Throughput::Elements(1));
    for (name, stale) in [("no cache", 0u32), ("cache", 60_000)] {
        g.bench_function(format!("Rust resolve_with, {name}"), |b| {
            b.iter_custom(|n| rust_resolutions(rt, &s.pu, stale, n))
        });
        g.bench_function(format!("C API rsp_getaddrinfo, {name}"), |b| {
            b.iter_custom(|n| c_resolutions(stale, n))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// The same comparisons interleaved: this machine's wake-up latency drifts from second to
// second, so ratios come from rounds that alternate between the ways, not from criterion's
// runs one after the other.

/// Rounds of each way.
const ROUNDS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Medians over `ROUNDS` rounds of each of `ways` (µs per operation), run in turn.
fn interleave(ways: &mut [&mut dyn FnMut() -> f64]) -> Vec<f64> {
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    for _ in 0..ROUNDS {
        for (i, w) in ways.iter_mut().enumerate() {
            per[i].push(w());
        }
    }
    per.into_iter().map(median).collect()
}

fn summary(rt: &Runtime, s: &mut Setup) {
    let data = Bytes::from(vec![0x5a; 100]);
    let mut buf = vec![0u8; 4096];
    let n = 1000;
    let us = |t: Duration, n: u64| t.as_secs_f64() * 1e6 / n as f64;
    let (sd, raw, pu) = (s.sd, &s.raw, &s.pu);
    let session = std::cell::RefCell::new(&mut s.session);
    let buf = std::cell::RefCell::new(&mut buf[..]);
    let trips = interleave(&mut [
        &mut || us(raw_trips(rt, raw, &data, n), n),
        &mut || us(rust_trips(rt, &mut session.borrow_mut(), &data, n), n),
        &mut || us(c_trips(sd, &data, &mut buf.borrow_mut(), n), n),
    ]);
    let m = 20 * n;
    let piped = interleave(&mut [
        &mut || us(raw_pipelined(rt, raw, &data, m), m),
        &mut || us(rust_pipelined(rt, &mut session.borrow_mut(), &data, m), m),
        &mut || us(c_pipelined(sd, &data, &mut buf.borrow_mut(), m), m),
    ]);
    let res = interleave(&mut [
        &mut || us(rust_resolutions(rt, pu, 0, n), n),
        &mut || us(c_resolutions(0, n), n),
        &mut || us(rust_resolutions(rt, pu, 60_000, n), n),
        &mut || us(c_resolutions(60_000, n), n),
    ]);

    println!("\nInterleaved, medians of {ROUNDS} rounds (µs per operation):");
    println!("| | raw rserpool-sctp | Rust session API | C API | session / raw | C / Rust |");
    println!("|---|---|---|---|---|---|");
    for (name, v) in [
        ("round trip 100 B", &trips),
        ("pipelined 100 B, 32 in flight", &piped),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            v[0],
            v[1],
            v[2],
            v[1] / v[0],
            v[2] / v[1]
        );
    }
    println!("| | Rust `resolve_with` | `rsp_getaddrinfo` | C / Rust | | |");
    println!(
        "| handle resolution, no cache | {:.2} | {:.2} | {:.2} | | |",
        res[0],
        res[1],
        res[1] / res[0]
    );
    println!(
        "| handle resolution, cache | {:.2} | {:.2} | {:.2} | | |",
        res[2],
        res[3],
        res[3] / res[2]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The PE side on a runtime, each pool user on one of its own: the raw and Rust ones on
    // `rt`, librserpool's on the library's (started outside any runtime), so that the three
    // ways meet the same threads.
    let pe_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    pe_rt.block_on(setup_pe());
    let mut s = rt.block_on(setup_pu());
    s.sd = c_pool_user();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    round_trips(&mut c, &rt, &mut s);
    resolutions(&mut c, &rt, &s);
    c.final_summary();
    // Only in a full run (`cargo bench --bench session`), not for a filtered one.
    if std::env::args().skip(1).all(|a| a.starts_with('-')) {
        summary(&rt, &mut s);
    }
    c::rsp_close(s.sd);
    c::rsp_cleanup();
    drop(pe_rt);
}
