//! `sctp-tool`: poke the SCTP-over-UDP stack from a shell, and measure it.
//!
//! ```text
//! cargo run --release -p rserpool-sctp --example sctp-tool -- server --bind 127.0.0.1:9899 --port 5001 --mode echo
//! cargo run --release -p rserpool-sctp --example sctp-tool -- client --peer 127.0.0.1:9899 --port 5001 chat
//! cargo run --release -p rserpool-sctp --example sctp-tool -- client --peer 127.0.0.1:9899 --port 5001 rtt --count 10000 --size 100
//! cargo run --release -p rserpool-sctp --example sctp-tool -- client --peer 127.0.0.1:9899 --port 5002 throughput --seconds 5 --size 8192
//! cargo run --release -p rserpool-sctp --example sctp-tool -- bench             # everything, against UDP and TCP
//! ```
//!
//! `--share-host` (server and client) shares the host's well-known UDP port (9899, or
//! `--share-port N`) with the other processes of the host that do the same
//! (`SctpEndpoint::bind_shared`): the first one is the front, the others use an ephemeral UDP
//! port of their own and register their SCTP ports with the front. `--bind` then only gives the
//! IP. Two echo servers on one host, both reachable through UDP 9899:
//!
//! ```text
//! sctp-tool server --share-host --bind 0.0.0.0:9899 --port 5001 &
//! sctp-tool server --share-host --bind 0.0.0.0:9899 --port 6003 &
//! sctp-tool client --peer 127.0.0.1:9899 --port 6003 check
//! ```

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use rserpool_sctp::{AssociationConfig, Closed, EndpointConfig, Event, SctpEndpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[derive(Parser)]
#[command(
    name = "sctp-tool",
    about = "SCTP over UDP (RFC 6951): echo/discard server, client, measurements"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Send every message back on its stream with its PPID.
    Echo,
    /// Read and drop everything.
    Discard,
}

#[derive(Subcommand)]
enum Cmd {
    /// Accept associations and echo or discard what arrives.
    Server {
        /// UDP address to bind (RFC 6951's port is 9899).
        #[arg(long, default_value = "0.0.0.0:9899")]
        bind: SocketAddr,
        /// SCTP port(s) to listen on.
        #[arg(long, default_value = "5001")]
        port: Vec<u16>,
        #[arg(long, value_enum, default_value = "echo")]
        mode: Mode,
        /// RTO 100-400 ms, heartbeat 200 ms, Association.Max.Retrans 3.
        #[arg(long)]
        fast: bool,
        /// Exit after this many associations have ended, printing a RESULT line for each.
        #[arg(long)]
        exit_after: Option<usize>,
        /// Local addresses to announce (multi-homing); repeat.
        #[arg(long)]
        address: Vec<std::net::IpAddr>,
        #[command(flatten)]
        share: ShareArgs,
    },
    /// Associate with a server and do something.
    Client {
        /// The server's UDP address (IP and encapsulation port); repeat for multi-homing.
        #[arg(long, required = true)]
        peer: Vec<SocketAddr>,
        /// The server's SCTP port.
        #[arg(long, default_value = "5001")]
        port: u16,
        /// Local UDP address.
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: SocketAddr,
        #[arg(long)]
        fast: bool,
        /// Local addresses to announce (multi-homing); repeat.
        #[arg(long)]
        address: Vec<std::net::IpAddr>,
        #[command(flatten)]
        share: ShareArgs,
        #[command(subcommand)]
        what: ClientCmd,
    },
    /// Sends COUNT INIT packets (random tags and source ports) to a server, then associates
    /// normally; with --server-pid, prints the server's resident memory before and after.
    Flood {
        /// The server's UDP address.
        #[arg(long)]
        peer: SocketAddr,
        /// The server's SCTP port.
        #[arg(long, default_value = "5001")]
        port: u16,
        #[arg(long, default_value = "100000")]
        count: u32,
        /// The server's process id, to read its resident memory from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Runs every measurement in-process on 127.0.0.1, against plain UDP and TCP.
    Bench {
        /// Round trips per RTT measurement.
        #[arg(long, default_value = "20000")]
        count: usize,
        /// Seconds per throughput measurement.
        #[arg(long, default_value = "3")]
        seconds: u64,
        /// Idle associations for the memory measurement.
        #[arg(long, default_value = "10000")]
        associations: usize,
    },
}

/// Host port sharing (`SctpEndpoint::bind_shared`).
#[derive(clap::Args, Clone, Copy)]
struct ShareArgs {
    /// Share the host's well-known UDP port with the other processes that do the same: the
    /// first is the front, the others send from an ephemeral port and register their SCTP
    /// ports with it. `--bind` then only gives the IP.
    #[arg(long)]
    share_host: bool,
    /// The well-known UDP port shared (implies --share-host).
    #[arg(long, value_name = "N")]
    share_port: Option<u16>,
}

impl ShareArgs {
    fn enabled(&self) -> bool {
        self.share_host || self.share_port.is_some()
    }
}

/// Binds plainly, or in host port sharing mode (printing the role on stdout).
async fn bind_endpoint(
    bind: SocketAddr,
    share: ShareArgs,
    cfg: EndpointConfig,
) -> Result<SctpEndpoint, String> {
    if !share.enabled() {
        return SctpEndpoint::bind(bind, cfg)
            .await
            .map_err(|e| format!("bind {bind}: {e}"));
    }
    let addr = SocketAddr::new(bind.ip(), share.share_port.unwrap_or(9899));
    let ep = SctpEndpoint::bind_shared(addr, cfg)
        .await
        .map_err(|e| format!("bind (sharing) {addr}: {e}"))?;
    println!(
        "SHARE {} of UDP port {}, sending from UDP port {}",
        if ep.is_front() { "front" } else { "member" },
        addr.port(),
        ep.udp_port()
    );
    Ok(ep)
}

/// Resolves on SIGINT or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Lines from stdin go out as messages (stream 0, PPID 0); what comes back is printed.
    Chat,
    /// Request/response round trips.
    Rtt {
        #[arg(long, default_value = "10000")]
        count: usize,
        #[arg(long, default_value = "100")]
        size: usize,
    },
    /// One-way transfer to a discard server.
    Throughput {
        #[arg(long, default_value = "5")]
        seconds: u64,
        #[arg(long, default_value = "8192")]
        size: usize,
    },
    /// Prints the association's events until it ends (e.g. to watch failure detection).
    Monitor,
    /// Sends COUNT messages on streams 0-3 with PPIDs 11, 12 and 99 (the last one 20000
    /// bytes), checks every echo, then ends the association; prints a RESULT line.
    Check {
        #[arg(long, default_value = "12")]
        count: usize,
        /// Pause between messages (ms).
        #[arg(long, default_value = "0")]
        interval_ms: u64,
        #[arg(long, value_enum, default_value = "shutdown")]
        end: End,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum End {
    /// Graceful SHUTDOWN.
    Shutdown,
    /// ABORT.
    Abort,
}

fn config(fast: bool) -> EndpointConfig {
    config_with(fast, Vec::new())
}

fn config_with(fast: bool, local_addresses: Vec<std::net::IpAddr>) -> EndpointConfig {
    EndpointConfig {
        association: if fast {
            AssociationConfig::fast_failover()
        } else {
            AssociationConfig::default()
        },
        local_addresses,
        ..EndpointConfig::default()
    }
}

fn main() {
    let cli = Cli::parse();
    // The bench runs each side on its own single-threaded runtime (see `bench`); the other
    // commands use tokio's default multi-threaded runtime.
    let rt = match cli.cmd {
        Cmd::Bench { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    let r = rt.block_on(async move {
        match cli.cmd {
            Cmd::Server {
                bind,
                port,
                mode,
                fast,
                exit_after,
                address,
                share,
            } => {
                server(
                    bind,
                    share,
                    port,
                    mode,
                    config_with(fast, address),
                    exit_after,
                )
                .await
            }
            Cmd::Client {
                peer,
                port,
                bind,
                fast,
                address,
                share,
                what,
            } => client(bind, share, peer, port, config_with(fast, address), what).await,
            Cmd::Flood {
                peer,
                port,
                count,
                server_pid,
            } => flood(peer, port, count, server_pid).await,
            Cmd::Bench {
                count,
                seconds,
                associations,
            } => bench(count, seconds, associations).await,
        }
    });
    if let Err(e) = r {
        eprintln!("sctp-tool: {e}");
        std::process::exit(1);
    }
}

type R = Result<(), String>;

async fn server(
    bind: SocketAddr,
    share: ShareArgs,
    ports: Vec<u16>,
    mode: Mode,
    cfg: EndpointConfig,
    exit_after: Option<usize>,
) -> R {
    let ep = bind_endpoint(bind, share, cfg).await?;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut listeners = Vec::new();
    for p in &ports {
        listeners.push(
            ep.listen(*p)
                .await
                .map_err(|e| format!("listen on SCTP port {p}: {e}"))?,
        );
    }
    println!("listening on UDP {} SCTP ports {ports:?}", ep.local_addr());
    for mut l in listeners {
        let p = l.port();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            while let Some(a) = l.accept().await {
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    let info = a.info();
                    println!(
                        "association {} up on port {p}: {:?}",
                        a.id(),
                        info.map(|i| i.paths.iter().map(|p| p.address).collect::<Vec<_>>())
                    );
                    let mut count = 0u64;
                    let end = loop {
                        match a.recv().await {
                            Ok(m) => {
                                count += 1;
                                if let Mode::Echo = mode {
                                    if let Err(e) =
                                        a.send_with(m.stream, m.ppid, m.unordered, m.data).await
                                    {
                                        break e.to_string();
                                    }
                                }
                            }
                            Err(e) => break e.to_string(),
                        }
                    };
                    println!("RESULT server port {p}: {count} messages, then {end}");
                    let _ = done_tx.send(());
                });
            }
        });
    }
    let mut ended = 0;
    let done = async {
        while done_rx.recv().await.is_some() {
            ended += 1;
            if exit_after.is_some_and(|n| ended >= n) {
                break;
            }
        }
    };
    // Sharing: on SIGINT/SIGTERM, close cleanly, so that a front says goodbye and another
    // process takes over at once.
    let signalled = async {
        if share.enabled() {
            terminated().await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        _ = done => {}
        _ = signalled => eprintln!("terminated"),
    }
    if let Some(s) = ep.share_stats() {
        println!(
            "RESULT share: {} of UDP port {}, forwarded {}, received forwarded {}, dropped {}, takeovers {}",
            if ep.is_front() { "front" } else { "member" },
            ep.share_state().map(|s| s.borrow().well_known).unwrap_or(0),
            s.forwarded,
            s.forwarded_in,
            s.dropped,
            s.takeovers
        );
    }
    // A front says goodbye (another process takes over), a member withdraws its ports.
    ep.close();
    Ok(())
}

async fn client(
    bind: SocketAddr,
    share: ShareArgs,
    peer: Vec<SocketAddr>,
    port: u16,
    cfg: EndpointConfig,
    what: ClientCmd,
) -> R {
    let ep = bind_endpoint(bind, share, cfg).await?;
    let a = ep
        .connect(&peer, port)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    eprintln!("associated: {:?}", a.info().map(|i| i.paths));
    match what {
        ClientCmd::Chat => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    if tx.send(line.unwrap_or_default()).is_err() {
                        break;
                    }
                }
            });
            loop {
                tokio::select! {
                    line = rx.recv() => match line {
                        Some(l) => a.send(0, 0, Bytes::from(l.into_bytes())).await.map_err(|e| e.to_string())?,
                        None => { a.shutdown(); }
                    },
                    m = a.recv() => match m {
                        Ok(m) => println!("{}", String::from_utf8_lossy(&m.data)),
                        Err(Closed::Shutdown) => return Ok(()),
                        Err(e) => return Err(e.to_string()),
                    },
                }
            }
        }
        ClientCmd::Rtt { count, size } => {
            let mut samples = sctp_rtt(&a, count, size).await?;
            print_rtt("SCTP/UDP", &mut samples);
            a.shutdown();
            let _ = a.closed_reason().await;
            Ok(())
        }
        ClientCmd::Throughput { seconds, size } => {
            let (n, secs) = sctp_throughput(&a, Duration::from_secs(seconds), size).await?;
            print_throughput("SCTP/UDP", n, size, secs);
            Ok(())
        }
        ClientCmd::Check {
            count,
            interval_ms,
            end,
        } => {
            let mut events = a.events().ok_or("no events")?;
            for i in 0..count {
                let len = if i + 1 == count { 20_000 } else { 100 + i };
                let data = Bytes::from(vec![b'a' + (i % 26) as u8; len]);
                let (stream, ppid) = ((i % 4) as u16, [11u32, 12, 99][i % 3]);
                a.send(stream, ppid, data.clone())
                    .await
                    .map_err(|e| format!("RESULT client send {i}: {e}"))?;
                let m = a
                    .recv()
                    .await
                    .map_err(|e| format!("RESULT client echo {i}: {e}"))?;
                if (m.stream, m.ppid) != (stream, ppid) || m.data != data {
                    return Err(format!(
                        "RESULT client echo {i} wrong: stream {} ppid {} len {}",
                        m.stream,
                        m.ppid,
                        m.data.len()
                    ));
                }
                if interval_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                }
            }
            while let Ok(e) = events.try_recv() {
                println!("event: {e:?}");
            }
            match end {
                End::Shutdown => {
                    a.shutdown();
                    let r = a.closed_reason().await;
                    println!("RESULT client ok {count} echoes, then {r}");
                }
                End::Abort => {
                    a.abort();
                    println!("RESULT client ok {count} echoes, then aborted");
                    // Let the driver send the ABORT before the process exits.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Ok(())
        }
        ClientCmd::Monitor => {
            let mut ev = a.events().ok_or("no events")?;
            let start = Instant::now();
            while let Some(e) = ev.recv().await {
                println!("{:>10.3} s  {e:?}", start.elapsed().as_secs_f64());
                if matches!(e, Event::Lost(_) | Event::Closed) {
                    break;
                }
            }
            Ok(())
        }
    }
}

async fn sctp_rtt(
    a: &rserpool_sctp::Association,
    count: usize,
    size: usize,
) -> Result<Vec<Duration>, String> {
    let payload = Bytes::from(vec![0x42; size]);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        a.send(0, 11, payload.clone())
            .await
            .map_err(|e| e.to_string())?;
        a.recv().await.map_err(|e| e.to_string())?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

async fn sctp_throughput(
    a: &rserpool_sctp::Association,
    d: Duration,
    size: usize,
) -> Result<(u64, f64), String> {
    let payload = Bytes::from(vec![0x42; size]);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        a.send(0, 12, payload.clone())
            .await
            .map_err(|e| e.to_string())?;
        n += 1;
    }
    // Count only what the peer acknowledged: wait for the send buffer to drain.
    while a.info().is_some_and(|i| i.send_buffered > 0) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

fn percentile(s: &[Duration], p: f64) -> Duration {
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn print_rtt(name: &str, s: &mut [Duration]) -> Duration {
    s.sort();
    let med = percentile(s, 0.5);
    println!(
        "{name:<10} rtt  median {:>8.1} us   p99 {:>8.1} us   ({} round trips)",
        med.as_secs_f64() * 1e6,
        percentile(s, 0.99).as_secs_f64() * 1e6,
        s.len()
    );
    med
}

fn print_throughput(name: &str, n: u64, size: usize, secs: f64) -> f64 {
    let mps = n as f64 / secs;
    println!(
        "{name:<10} one-way {size:>5} B messages: {:>10.0} msg/s  {:>8.1} MB/s",
        mps,
        mps * size as f64 / 1e6
    );
    mps
}

// ---------------------------------------------------------------------------------------------
// The bench: every server (UDP, TCP and SCTP, echo and sink) runs on a thread of its own with a
// single-threaded tokio runtime, the clients on another: two "processes" sharing one address
// space, so neither side's scheduling disturbs the other's.

struct Servers {
    udp_echo: SocketAddr,
    udp_sink: SocketAddr,
    udp_received: Arc<AtomicU64>,
    tcp_echo: SocketAddr,
    tcp_sink: SocketAddr,
    tcp_received: Arc<AtomicU64>,
    /// SCTP echo on port 5001, discard on 5002.
    sctp: SocketAddr,
}

fn spawn_servers() -> Servers {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let udp_echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let udp_sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let tcp_echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tcp_sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let sctp = SctpEndpoint::bind("127.0.0.1:0".parse().unwrap(), config(false))
                .await
                .unwrap();
            let udp_received = Arc::new(AtomicU64::new(0));
            let tcp_received = Arc::new(AtomicU64::new(0));
            tx.send(Servers {
                udp_echo: udp_echo.local_addr().unwrap(),
                udp_sink: udp_sink.local_addr().unwrap(),
                udp_received: udp_received.clone(),
                tcp_echo: tcp_echo.local_addr().unwrap(),
                tcp_sink: tcp_sink.local_addr().unwrap(),
                tcp_received: tcp_received.clone(),
                sctp: sctp.local_addr(),
            })
            .unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, from)) = udp_echo.recv_from(&mut buf).await {
                    let _ = udp_echo.send_to(&buf[..n], from).await;
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while udp_sink.recv_from(&mut buf).await.is_ok() {
                    udp_received.fetch_add(1, Ordering::Relaxed);
                }
            });
            tokio::spawn(async move {
                while let Ok((mut s, _)) = tcp_echo.accept().await {
                    s.set_nodelay(true).unwrap();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 100];
                        while s.read_exact(&mut buf).await.is_ok() {
                            if s.write_all(&buf).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
            tokio::spawn(async move {
                while let Ok((mut s, _)) = tcp_sink.accept().await {
                    let r = tcp_received.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 1 << 16];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            r.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    });
                }
            });
            for (port, echo) in [(5001u16, true), (5002, false)] {
                let mut l = sctp.listen(port).await.unwrap();
                tokio::spawn(async move {
                    while let Some(a) = l.accept().await {
                        tokio::spawn(async move {
                            while let Ok(m) = a.recv().await {
                                if echo && a.send(m.stream, m.ppid, m.data).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                });
            }
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

async fn udp_rtt(server: SocketAddr, count: usize, size: usize) -> Vec<Duration> {
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(server).await.unwrap();
    let payload = vec![0x42; size];
    let mut buf = vec![0u8; 65536];
    let mut s = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        c.send(&payload).await.unwrap();
        c.recv(&mut buf).await.unwrap();
        s.push(t.elapsed());
    }
    s
}

async fn tcp_rtt(server: SocketAddr, count: usize, size: usize) -> Vec<Duration> {
    let mut c = TcpStream::connect(server).await.unwrap();
    c.set_nodelay(true).unwrap();
    let payload = vec![0x42; size];
    let mut buf = vec![0u8; size];
    let mut v = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        c.write_all(&payload).await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        v.push(t.elapsed());
    }
    v
}

async fn tcp_throughput(
    server: SocketAddr,
    received: &AtomicU64,
    d: Duration,
    size: usize,
) -> (u64, f64) {
    let mut c = TcpStream::connect(server).await.unwrap();
    c.set_nodelay(true).unwrap();
    let before = received.load(Ordering::Relaxed);
    let payload = vec![0x42; size];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        c.write_all(&payload).await.unwrap();
        n += 1;
    }
    c.shutdown().await.unwrap();
    // Count only what arrived.
    while received.load(Ordering::Relaxed) - before < n * size as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (n, start.elapsed().as_secs_f64())
}

async fn udp_throughput(
    server: SocketAddr,
    received: &AtomicU64,
    d: Duration,
    size: usize,
) -> (u64, f64) {
    // UDP has no flow control: count what the receiver got.
    let before = received.load(Ordering::Relaxed);
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(server).await.unwrap();
    let payload = vec![0x42; size];
    let start = Instant::now();
    while start.elapsed() < d {
        let _ = c.send(&payload).await;
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    (received.load(Ordering::Relaxed) - before, secs)
}

fn rss_kib() -> u64 {
    rss_of("self")
}

fn rss_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn flood(peer: SocketAddr, port: u16, count: u32, server_pid: Option<u32>) -> R {
    use rserpool_sctp::chunk::{Chunk, CommonHeader, Init, Packet};
    let rss = |when: &str| {
        if let Some(pid) = server_pid {
            println!("server RSS {when}: {} KiB", rss_of(&pid.to_string()));
        }
    };
    rss("before the flood");
    let sock = UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..count {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let init = Init {
            initiate_tag: x | 1,
            a_rwnd: 65536,
            outbound_streams: 10,
            inbound_streams: 10,
            initial_tsn: x,
            ..Init::default()
        };
        let h = CommonHeader {
            src_port: 1024 + (i % 60000) as u16,
            dst_port: port,
            vtag: 0,
        };
        let _ = sock
            .send_to(&Packet::encode(&h, &[Chunk::Init(init)]), peer)
            .await;
        if i % 256 == 0 {
            // Pace a little so the flood is not simply dropped by the socket buffers.
            tokio::task::yield_now().await;
        }
    }
    println!(
        "sent {count} INITs in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    rss("after the flood");
    let ep = SctpEndpoint::bind("0.0.0.0:0".parse().unwrap(), config(false))
        .await
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let a = ep
        .connect(&[peer], port)
        .await
        .map_err(|e| format!("RESULT legitimate client failed: {e}"))?;
    a.send(0, 11, Bytes::from_static(b"still here"))
        .await
        .map_err(|e| e.to_string())?;
    let m = a.recv().await.map_err(|e| e.to_string())?;
    println!(
        "RESULT legitimate client associated and got its echo ({} bytes) in {:.1} ms",
        m.data.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    rss("after the legitimate client");
    Ok(())
}

/// A UDP relay between a client and a server that can be told to drop everything (a cut link).
async fn relay(to: SocketAddr, cut: Arc<AtomicBool>) -> SocketAddr {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let client: Arc<tokio::sync::Mutex<Option<SocketAddr>>> = Arc::default();
    {
        let (sock, back, client, cut) = (sock.clone(), back.clone(), client.clone(), cut.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                *client.lock().await = Some(from);
                if !cut.load(Ordering::Relaxed) {
                    let _ = back.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = back.recv_from(&mut buf).await {
            if let Some(c) = *client.lock().await {
                if !cut.load(Ordering::Relaxed) {
                    let _ = sock.send_to(&buf[..n], c).await;
                }
            }
        }
    });
    addr
}

async fn bench(count: usize, seconds: u64, associations: usize) -> R {
    println!(
        "# sctp-tool bench: 127.0.0.1; servers on one thread, clients on another, each a single-threaded tokio runtime"
    );
    let srv = spawn_servers();
    let saddr = srv.sctp;
    let client = SctpEndpoint::bind("127.0.0.1:0".parse().unwrap(), config(false))
        .await
        .map_err(|e| e.to_string())?;

    println!("\n## request/response, 100-byte messages");
    let mut u = udp_rtt(srv.udp_echo, count, 100).await;
    let udp = print_rtt("UDP", &mut u);
    let mut t = tcp_rtt(srv.tcp_echo, count, 100).await;
    let tcp = print_rtt("TCP", &mut t);
    let a = client
        .connect(&[saddr], 5001)
        .await
        .map_err(|e| e.to_string())?;
    let mut s = sctp_rtt(&a, count, 100).await?;
    let sctp = print_rtt("SCTP/UDP", &mut s);
    println!(
        "SCTP/UDP median rtt = {:.2}x UDP, {:.2}x TCP",
        sctp.as_secs_f64() / udp.as_secs_f64(),
        sctp.as_secs_f64() / tcp.as_secs_f64()
    );

    for size in [100usize, 8192] {
        println!("\n## one-way throughput, {size}-byte messages, {seconds} s");
        let d = Duration::from_secs(seconds);
        let (n, secs) = udp_throughput(srv.udp_sink, &srv.udp_received, d, size).await;
        let u = print_throughput("UDP*", n, size, secs);
        let (n, secs) = tcp_throughput(srv.tcp_sink, &srv.tcp_received, d, size).await;
        let t = print_throughput("TCP", n, size, secs);
        let a = client
            .connect(&[saddr], 5002)
            .await
            .map_err(|e| e.to_string())?;
        let (n, secs) = sctp_throughput(&a, d, size).await?;
        let s = print_throughput("SCTP/UDP", n, size, secs);
        println!(
            "SCTP/UDP = {:.2}x UDP, {:.2}x TCP   (*UDP: received datagrams, no flow control)",
            s / u,
            s / t
        );
        a.shutdown();
    }

    println!(
        "\n## failure detection (RTO.min 100 ms, RTO.max 400 ms, HB.interval 200 ms, Association.Max.Retrans 3)"
    );
    for busy in [false, true] {
        let cut = Arc::new(AtomicBool::new(false));
        let via = relay(saddr, cut.clone()).await;
        let c2 = SctpEndpoint::bind("127.0.0.1:0".parse().unwrap(), config(true))
            .await
            .map_err(|e| e.to_string())?;
        let a = c2.connect(&[via], 5001).await.map_err(|e| e.to_string())?;
        // Warm up the RTT estimate.
        sctp_rtt(&a, 50, 100).await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
        cut.store(true, Ordering::Relaxed);
        let t = Instant::now();
        if busy {
            let _ = a.try_send(0, 11, false, Bytes::from_static(b"request"));
        }
        let r = a.closed_reason().await;
        println!(
            "{} association, link cut: {r} after {:.0} ms",
            if busy { "busy" } else { "idle" },
            t.elapsed().as_secs_f64() * 1e3
        );
    }

    println!(
        "\n## memory per idle association ({associations} associations, both ends in this process)"
    );
    let mem_server = SctpEndpoint::bind("127.0.0.1:0".parse().unwrap(), config(false))
        .await
        .map_err(|e| e.to_string())?;
    let mut l = mem_server.listen(7000).await.map_err(|e| e.to_string())?;
    let accepted = tokio::spawn(async move {
        let mut v = Vec::new();
        while v.len() < associations {
            v.push(l.accept().await.unwrap());
        }
        v
    });
    let mem_client = SctpEndpoint::bind("127.0.0.1:0".parse().unwrap(), config(false))
        .await
        .map_err(|e| e.to_string())?;
    let before = rss_kib();
    let mut held = Vec::with_capacity(associations);
    for _ in 0..associations {
        held.push(
            mem_client
                .connect(&[mem_server.local_addr()], 7000)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let server_side = accepted.await.map_err(|e| e.to_string())?;
    let after = rss_kib();
    let per = (after.saturating_sub(before) * 1024) as f64 / (2 * associations) as f64;
    println!(
        "RSS {before} KiB -> {after} KiB: {per:.0} bytes per association end ({} + {} held)",
        held.len(),
        server_side.len()
    );
    Ok(())
}
