//! Host port sharing (`SctpEndpoint::bind_shared`, `rserpool_sctp::mux`) on 127.0.0.1.
//!
//! Each test uses a well-known port of its own (29950-29959), not 9899, so that the tests do
//! not collide with each other or with a real holder of 9899. The "processes" are separate
//! endpoints in this test process (they only talk over UDP, as separate processes do) and, in
//! some tests, real processes: the `sctp-tool` example with `--share-port`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use bytes::Bytes;
use rserpool_sctp::*;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn shared(well_known: u16) -> SctpEndpoint {
    SctpEndpoint::bind_shared(lo(well_known), EndpointConfig::default())
        .await
        .unwrap()
}

/// A plain endpoint that knows only the host's well-known port, as a kernel SCTP peer does.
async fn plain() -> SctpEndpoint {
    SctpEndpoint::bind(lo(0), EndpointConfig::default())
        .await
        .unwrap()
}

/// Echoes every message of every association accepted on `l`.
fn echo(mut l: Listener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(a) = l.accept().await {
            tokio::spawn(async move {
                while let Ok(m) = a.recv().await {
                    if a.send_with(m.stream, m.ppid, m.unordered, m.data)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    })
}

/// Sends `n` messages and checks each echo.
async fn exchange(a: &Association, n: usize, tag: &str) {
    for i in 0..n {
        let data = Bytes::from(format!("{tag} {i} {}", "x".repeat(i % 300)));
        let (stream, ppid) = ((i % 4) as u16, [11u32, 12, 99][i % 3]);
        a.send(stream, ppid, data.clone()).await.unwrap();
        let m = timeout(LIMIT, a.recv())
            .await
            .unwrap_or_else(|_| panic!("{tag}: echo {i} did not come: {:?}", a.info()))
            .unwrap();
        assert_eq!(
            (m.stream, m.ppid, m.data),
            (stream, ppid, data),
            "{tag} {i}"
        );
    }
}

async fn connect(c: &SctpEndpoint, to: SocketAddr, port: u16) -> Association {
    timeout(LIMIT, c.connect(&[to], port))
        .await
        .unwrap_or_else(|_| panic!("connect to {to} port {port}: no answer"))
        .unwrap_or_else(|e| panic!("connect to {to} port {port}: {e}"))
}

/// The peer's UDP address as the association's primary path knows it.
fn peer_udp(a: &Association) -> SocketAddr {
    let info = a.info().unwrap();
    info.paths.iter().find(|p| p.primary).unwrap().address
}

fn forwarded(front: &SctpEndpoint) -> u64 {
    front.share_stats().unwrap().forwarded
}

/// Waits (bounded) until one of the endpoints' published sharing state satisfies `f`.
async fn wait_state(eps: &[&SctpEndpoint], f: impl Fn(&[ShareState]) -> bool) {
    let mut rxs: Vec<watch::Receiver<ShareState>> =
        eps.iter().map(|e| e.share_state().unwrap()).collect();
    timeout(LIMIT, async {
        loop {
            let now: Vec<ShareState> = rxs
                .iter_mut()
                .map(|r| r.borrow_and_update().clone())
                .collect();
            if f(&now) {
                return;
            }
            let changes = rxs.iter_mut().map(|r| Box::pin(r.changed()));
            let _ = futures_select_all(changes).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let now: Vec<ShareState> = eps
            .iter()
            .map(|e| e.share_state().unwrap().borrow().clone())
            .collect();
        panic!("sharing state never got there: {now:?}")
    });
}

/// Resolves when the first of the futures does (a tiny `select_all`).
async fn futures_select_all<F: std::future::Future + Unpin>(futs: impl Iterator<Item = F>) {
    let mut futs: Vec<F> = futs.collect();
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Retries `listen` (bounded) until it succeeds: for a port whose holder goes away
/// asynchronously (a withdraw in flight, a registration that must expire).
async fn listen_eventually(ep: &SctpEndpoint, port: u16) -> Listener {
    let start = std::time::Instant::now();
    loop {
        match ep.listen(port).await {
            Ok(l) => return l,
            Err(ListenError::InUse { .. }) if start.elapsed() < LIMIT => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("listen {port}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real processes: the sctp-tool example.

/// Builds the `sctp-tool` example into this test's target directory, once.
fn tool() -> PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        // <target>/<profile>/deps/host_port-<hash>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "rserpool-sctp",
            "--example",
            "sctp-tool",
        ])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo build --example sctp-tool");
        assert!(status.success(), "building the sctp-tool example failed");
        profile_dir.join("examples").join("sctp-tool")
    })
    .clone()
}

/// A child process, killed when the test ends however it ends; its stdout lines on a channel.
struct Proc {
    child: Child,
    lines: std_mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(tool())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sctp-tool");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a stdout line containing `what`; returns it.
    fn wait_line(&mut self, what: &str) -> String {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {what:?} from sctp-tool; saw {:?}", self.seen),
            }
        }
    }

    /// SIGKILL: the process vanishes without a word.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts an sctp-tool echo server sharing `well_known`, listening on `port`; returns it with
/// its role line ("SHARE front ..." or "SHARE member ...").
async fn tool_server(well_known: u16, port: u16) -> (Proc, String) {
    let (wk, p) = (well_known.to_string(), port.to_string());
    let mut proc = tokio::task::spawn_blocking(move || {
        Proc::spawn(&[
            "server",
            "--share-port",
            &wk,
            "--bind",
            "127.0.0.1:0",
            "--port",
            &p,
        ])
    })
    .await
    .unwrap();
    let (proc, role) = tokio::task::spawn_blocking(move || {
        let role = proc.wait_line("SHARE ");
        proc.wait_line("listening on UDP");
        (proc, role)
    })
    .await
    .unwrap();
    (proc, role)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_plain_client_reaches_a_member_through_the_front_then_talks_to_it_directly() {
    const WK: u16 = 29950;
    let front = shared(WK).await;
    assert!(front.is_front());
    assert_eq!(front.udp_port(), WK);
    let member = shared(WK).await;
    assert!(!member.is_front());
    assert_ne!(member.udp_port(), WK);
    let _e1 = echo(member.listen(6003).await.unwrap());
    let _e2 = echo(front.listen(6001).await.unwrap());

    // The client knows only the host's well-known port.
    let client = plain().await;
    let a = connect(&client, lo(WK), 6003).await;
    assert!(forwarded(&front) >= 1, "the INIT went through the front");
    // The member answered from its own port, and the client learned it.
    assert_eq!(peer_udp(&a), lo(member.udp_port()));
    exchange(&a, 10, "via the front").await;
    let after_handshake = forwarded(&front);
    exchange(&a, 200, "via the front").await;
    assert_eq!(
        forwarded(&front),
        after_handshake,
        "after the handshake nothing goes through the front"
    );
    assert!(member.share_stats().unwrap().forwarded_in >= 1);

    // The front's own listener works, and nothing of it is forwarded.
    let b = connect(&client, lo(WK), 6001).await;
    assert_eq!(peer_udp(&b), lo(WK));
    exchange(&b, 20, "the front's own").await;
    assert_eq!(forwarded(&front), after_handshake);

    // Sharing processes reach each other the same way: a member connects to another member's
    // port through the front, and to the front's port.
    let member2 = shared(WK).await;
    let _e3 = echo(member2.listen(6004).await.unwrap());
    let c = connect(&member, lo(WK), 6004).await;
    assert_eq!(peer_udp(&c), lo(member2.udp_port()));
    exchange(&c, 20, "member to member").await;
    let d = connect(&member2, lo(WK), 6001).await;
    exchange(&d, 20, "member to front").await;
    // The front reaches a member too (its INIT loops back through its own well-known port).
    let e = connect(&front, lo(WK), 6003).await;
    assert_eq!(peer_udp(&e), lo(member.udp_port()));
    exchange(&e, 20, "front to member").await;

    let stats = front.share_stats().unwrap();
    assert_eq!(stats.dropped, 0);
    assert!(stats.registrations >= 2, "{stats:?}");
}

#[tokio::test]
async fn a_port_held_by_another_process_is_refused() {
    const WK: u16 = 29951;
    let front = shared(WK).await;
    let member = shared(WK).await;
    let member2 = shared(WK).await;
    let _f = front.listen(7000).await.unwrap();
    let r = member.listen(7000).await;
    assert!(
        matches!(
            r,
            Err(ListenError::InUse {
                port: 7000,
                well_known: WK,
                holder: Holder::Front
            })
        ),
        "{r:?}"
    );
    let held = member.listen(7001).await.unwrap();
    let r = front.listen(7001).await;
    assert!(
        matches!(
            r,
            Err(ListenError::InUse {
                holder: Holder::OtherProcess,
                ..
            })
        ),
        "{r:?}"
    );
    let r = member2.listen(7001).await;
    assert!(
        matches!(
            r,
            Err(ListenError::InUse {
                holder: Holder::OtherProcess,
                ..
            })
        ),
        "{r:?}"
    );
    // The refusal is reported in words too.
    assert!(r.unwrap_err().to_string().contains("in use"));
    assert_eq!(
        member.listen(7001).await.err(),
        Some(ListenError::AlreadyListening(7001))
    );
    assert_eq!(front.listen(0).await.err(), Some(ListenError::InvalidPort));
    // Starting an association from a port someone else holds fails too.
    let r = member2.connect_with(&[lo(WK)], 7000, 7001, None).await;
    assert!(
        matches!(r, Err(ConnectFailed::LocalPort(ListenError::InUse { .. }))),
        "{r:?}"
    );
    assert!(front.share_stats().unwrap().refused >= 3);

    // Dropping the listener withdraws the port: another process gets it.
    drop(held);
    let l = listen_eventually(&member2, 7001).await;
    let _e = echo(l);
    let client = plain().await;
    let a = connect(&client, lo(WK), 7001).await;
    assert_eq!(peer_udp(&a), lo(member2.udp_port()));
    exchange(&a, 5, "after the withdraw").await;
}

#[tokio::test]
async fn forged_and_malformed_control_datagrams_are_dropped_and_counted() {
    const WK: u16 = 29952;
    let front = shared(WK).await;
    let member = shared(WK).await;
    let _e = echo(member.listen(7400).await.unwrap());
    let raw = UdpSocket::bind(lo(0)).await.unwrap();
    let magic = [0u8, 0, b'R', b'H'];
    // To the front: an unknown type, a bad version, a truncated REGISTER, a FORWARD (only a
    // front sends those).
    let mut forward = magic.to_vec();
    forward.extend([1, 6, 0, 0, 4, 0, 0x9c, 0x40, 127, 0, 0, 1]);
    forward.extend([0u8; 16]);
    for d in [
        [&magic[..], &[1, 99, 0, 0]].concat(),
        [&magic[..], &[7, 1, 0, 0]].concat(),
        [&magic[..], &[1, 1, 0, 0, 0, 0]].concat(),
        forward.clone(),
    ] {
        raw.send_to(&d, lo(WK)).await.unwrap();
    }
    // To the member: a well-formed FORWARD, but not from the well-known port.
    raw.send_to(&forward, lo(member.udp_port())).await.unwrap();
    timeout(LIMIT, async {
        loop {
            let (f, m) = (
                front.share_stats().unwrap().dropped,
                member.share_stats().unwrap().dropped,
            );
            if f >= 4 && m >= 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the forged datagrams are counted as dropped");
    assert_eq!(member.share_stats().unwrap().forwarded_in, 0);
    // Everything still works.
    let client = plain().await;
    let a = connect(&client, lo(WK), 7400).await;
    exchange(&a, 5, "after the forgeries").await;
}

#[tokio::test]
async fn the_registration_of_a_vanished_process_expires() {
    const WK: u16 = 29953;
    let front = shared(WK).await;
    let (mut child, role) = tool_server(WK, 7100).await;
    assert!(role.contains("SHARE member"), "{role}");
    // The other process is reachable through the front and holds its port.
    let client = plain().await;
    let a = connect(&client, lo(WK), 7100).await;
    assert_ne!(peer_udp(&a).port(), WK);
    exchange(&a, 10, "to the child").await;
    let r = front.listen(7100).await;
    assert!(
        matches!(
            r,
            Err(ListenError::InUse {
                holder: Holder::OtherProcess,
                ..
            })
        ),
        "{r:?}"
    );
    // It vanishes without a word (SIGKILL): its registration expires after ~3 s and the
    // port is free again.
    child.kill();
    let _l = listen_eventually(&front, 7100).await;
    assert!(front.share_stats().unwrap().expired >= 1);
}

#[tokio::test]
async fn a_member_takes_over_when_the_front_says_goodbye() {
    const WK: u16 = 29954;
    let front = shared(WK).await;
    let b = shared(WK).await;
    let c = shared(WK).await;
    let _eb = echo(b.listen(7200).await.unwrap());
    let _ec = echo(c.listen(7201).await.unwrap());
    let client = plain().await;
    let before = connect(&client, lo(WK), 7200).await;
    exchange(&before, 10, "before the takeover").await;

    // The front exits cleanly: it says goodbye, one member takes over, the other registers
    // with it.
    front.close();
    drop(front);
    wait_state(&[&b, &c], |s| {
        s.iter().filter(|s| s.front).count() == 1 && s.iter().all(|s| s.registered)
    })
    .await;
    let (new_front, other) = if b.is_front() { (&b, &c) } else { (&c, &b) };
    assert_eq!(new_front.udp_port(), WK);
    assert_eq!(new_front.share_stats().unwrap().takeovers, 1);
    assert_ne!(other.udp_port(), WK);

    // The association made before keeps exchanging data.
    exchange(&before, 10, "after the takeover").await;
    // New plain clients reach both servers through the well-known port again.
    let client2 = plain().await;
    for port in [7200, 7201] {
        let a = connect(&client2, lo(WK), port).await;
        exchange(&a, 10, "new client after the takeover").await;
    }
    let a = connect(&client2, lo(WK), if b.is_front() { 7201 } else { 7200 }).await;
    assert_eq!(peer_udp(&a), lo(other.udp_port()));
}

#[tokio::test]
async fn a_member_takes_over_when_the_front_process_is_killed() {
    const WK: u16 = 29955;
    let (mut front, role) = tool_server(WK, 7300).await;
    assert!(role.contains("SHARE front"), "{role}");
    let b = shared(WK).await;
    let c = shared(WK).await;
    assert!(!b.is_front() && !c.is_front());
    let _eb = echo(b.listen(7301).await.unwrap());
    let _ec = echo(c.listen(7302).await.unwrap());
    let client = plain().await;
    // The front process's own echo server, and a member's, through the front.
    let to_front = connect(&client, lo(WK), 7300).await;
    exchange(&to_front, 5, "to the front process").await;
    let before = connect(&client, lo(WK), 7301).await;
    exchange(&before, 10, "before the front dies").await;

    // The front process vanishes: the members' refreshes go unanswered, one takes over.
    front.kill();
    wait_state(&[&b, &c], |s| {
        s.iter().filter(|s| s.front).count() == 1 && s.iter().all(|s| s.registered)
    })
    .await;
    exchange(&before, 10, "after the front died").await;
    let client2 = plain().await;
    for port in [7301, 7302] {
        let a = connect(&client2, lo(WK), port).await;
        exchange(&a, 10, "new client after the takeover").await;
    }
    // The dead front's port is nobody's now: an INIT to it gets the new front's ABORT.
    let r = timeout(LIMIT, client2.connect(&[lo(WK)], 7300))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(ConnectFailed::Lost(LostReason::PeerAbort(_)))),
        "{r:?}"
    );
}

#[tokio::test]
async fn plain_bind_is_unchanged_and_not_shared() {
    let ep = plain().await;
    assert!(!ep.is_front());
    assert!(ep.share_stats().is_none() && ep.share_state().is_none());
    let _l = ep.listen(5000).await.unwrap();
    assert_eq!(
        ep.listen(5000).await.err(),
        Some(ListenError::AlreadyListening(5000))
    );
    // Sharing needs the well-known port.
    assert!(
        SctpEndpoint::bind_shared(lo(0), EndpointConfig::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn without_a_front_listen_fails_until_the_port_is_free_to_take_over() {
    const WK: u16 = 29956;
    // A program that binds the well-known port without sharing it.
    let squatter = std::net::UdpSocket::bind(lo(WK)).unwrap();
    let cfg = ShareConfig {
        claim_timeout: Duration::from_secs(1),
        ..ShareConfig::default()
    };
    let member = SctpEndpoint::bind_shared_with(lo(WK), EndpointConfig::default(), cfg)
        .await
        .unwrap();
    assert!(!member.is_front());
    assert_eq!(
        member.listen(7600).await.err(),
        Some(ListenError::NoFront(WK))
    );
    assert!(!member.share_state().unwrap().borrow().registered);
    // The squatter goes: the member's unanswered refreshes make it take the port.
    drop(squatter);
    wait_state(&[&member], |s| s[0].front).await;
    assert_eq!(member.udp_port(), WK);
    let _e = echo(listen_eventually(&member, 7600).await);
    let client = plain().await;
    let a = connect(&client, lo(WK), 7600).await;
    exchange(&a, 5, "after taking the free port").await;
}
