//! ENRP between `rserpool-registrar` processes on loopback: three registrars on 127.0.0.1–3
//! peering statically, a PE homed at each (on 127.0.0.11–13, each knowing only its own
//! registrar, so that only a takeover can re-home it), a pool user on 127.0.0.4 resolving
//! through any registrar. One registrar is SIGKILLed: its PE is taken over and stays
//! resolvable; restarted, it synchronises from a mentor and serves the whole handlespace.
//! Aggressive ENRP timers (heartbeat 200 ms, 400 ms + 400 ms to a takeover).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, field, rserpool_bin};

const UDP: u16 = 30414;

fn addr(host: u8) -> String {
    format!("127.0.0.{host}")
}

/// Registrar `n` (1–3) on 127.0.0.n with the other two as peers.
fn registrar(n: u8) -> Proc {
    let mut args: Vec<String> = [
        "--id",
        &n.to_string(),
        "--asap",
        &format!("{}:3863", addr(n)),
        "--enrp",
        &format!("{}:9901", addr(n)),
        "--udp-port",
        &UDP.to_string(),
        "--no-share-host",
        "--announce",
        "off",
        "--enrp-announce",
        "off",
        "--keep-alive-interval",
        "500",
        "--keep-alive-timeout",
        "500",
        "--peer-heartbeat-cycle",
        "200",
        "--peer-max-time-last-heard",
        "400",
        "--peer-max-time-no-response",
        "400",
        "--mentor-discovery-timeout",
        "1500",
        "--takeover-expiry-interval",
        "1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in (1..=3).filter(|&m| m != n) {
        args.push("--peer".into());
        args.push(format!("{}:9901", addr(m)));
    }
    let p = Proc::spawn(
        &format!("registrar {n}"),
        &PathBuf::from(env!("CARGO_BIN_EXE_rserpool-registrar")),
        &args,
        false,
    );
    let ready = p.expect_out("rserpool-registrar ready", Duration::from_secs(20));
    assert_eq!(field(&ready, "enrp-port="), "9901", "{ready}");
    p
}

fn client_args(local: u8, registrar: u8) -> Vec<String> {
    [
        "--udp-port",
        &UDP.to_string(),
        "--no-share-host",
        "--announce",
        "off",
        "--local",
        &addr(local),
        "--registrar",
        &format!("{}:3863", addr(registrar)),
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// An echo PE on 127.0.0.`local` that knows only registrar `registrar`.
fn echo_pe(local: u8, registrar: u8) -> (Proc, String) {
    let mut args = vec!["pe".to_string(), "--service".into(), "echo".into()];
    args.extend(client_args(local, registrar));
    let p = Proc::spawn(&format!("pe {local}"), &rserpool_bin(), &args, false);
    let line = p.expect_out("rserpool pe ready", Duration::from_secs(30));
    let id = field(&line, "id=").to_string();
    (p, id)
}

/// The PE IDs of EchoPool as registrar `registrar` answers a pool user on 127.0.0.4.
fn resolve_at(registrar: u8) -> Vec<String> {
    let mut args = vec![
        "resolve".to_string(),
        "EchoPool".into(),
        "--items".into(),
        "all".into(),
        "--t1".into(),
        "2000".into(),
    ];
    args.extend(client_args(4, registrar));
    let out = Command::new(rserpool_bin()).args(&args).output().unwrap();
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// `rserpool handlespace` against registrar `n` from 127.0.0.5: (its ID, whether its checksum
/// matches its PEs, the peers' IDs, PE ID → home ID).
fn handlespace_of(n: u8) -> (u64, bool, Vec<u64>, BTreeMap<u64, u64>) {
    let out = Command::new(rserpool_bin())
        .args([
            "handlespace",
            &format!("{}:9901", addr(n)),
            "--udp-port",
            &UDP.to_string(),
            "--no-share-host",
            "--local",
            &addr(5),
            "--timeout",
            "5000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut peers: Vec<u64> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    peers.sort();
    let homes = v["pes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_u64().unwrap(), p["home"].as_u64().unwrap()))
        .collect();
    (
        v["registrar"].as_u64().unwrap(),
        v["checksum_matches"].as_bool().unwrap(),
        peers,
        homes,
    )
}

fn hex(id: &str) -> u64 {
    u64::from_str_radix(id.trim_start_matches("0x"), 16).unwrap()
}

/// Waits (bounded) until every registrar in `at` resolves exactly `ids`.
fn wait_resolved(at: &[u8], ids: &[String], limit: Duration) {
    let end = Instant::now() + limit;
    for &r in at {
        loop {
            let got = resolve_at(r);
            if got == ids {
                break;
            }
            assert!(
                Instant::now() < end,
                "registrar {r} resolves {got:?}, not {ids:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn three_registrars_replicate_take_over_and_resynchronise() {
    let _r1 = registrar(1);
    let _r2 = registrar(2);
    let mut r3 = registrar(3);
    let (_p1, id1) = echo_pe(11, 1);
    let (_p2, id2) = echo_pe(12, 2);
    let (p3, id3) = echo_pe(13, 3);
    let mut all = vec![id1.clone(), id2.clone(), id3.clone()];
    all.sort();
    // Every PE is resolvable through every registrar.
    wait_resolved(&[1, 2, 3], &all, Duration::from_secs(20));
    // Each registrar shows the same handlespace, with each PE homed where it registered.
    for n in 1..=3u8 {
        let (id, in_sync, peers, homes) = handlespace_of(n);
        assert_eq!(id, u64::from(n));
        assert!(in_sync, "registrar {n}'s checksum");
        let others: Vec<u64> = (1..=3).filter(|&m| m != u64::from(n)).collect();
        assert!(
            others.iter().all(|o| peers.contains(o)),
            "registrar {n} peers {peers:?}"
        );
        let expect: BTreeMap<u64, u64> = [(&id1, 1), (&id2, 2), (&id3, 3)]
            .iter()
            .map(|(pe, home)| (hex(pe), *home))
            .collect();
        assert_eq!(homes, expect, "registrar {n}");
    }

    // Registrar 3 dies without a word; a takeover re-homes its PE.
    r3.kill();
    let killed = Instant::now();
    let line = p3.expect_err("adopting a new home registrar", Duration::from_secs(10));
    let took = killed.elapsed();
    eprintln!("takeover: {took:?} from the kill to the PE's new home ({line})");
    // Whoever started first (or, starting together, the lower ID) is the new home.
    assert!(line.contains("id=1") || line.contains("id=2"), "{line}");
    wait_resolved(&[1, 2], &all, Duration::from_secs(10));
    let winner: u64 = field(&line, "id=").parse().unwrap();
    for n in 1..=2u8 {
        let (_, _, _, homes) = handlespace_of(n);
        assert_eq!(homes[&hex(&id3)], winner, "registrar {n}");
    }

    // Restarted, registrar 3 learns everything from a mentor and serves it.
    let _r3 = registrar(3);
    wait_resolved(&[3], &all, Duration::from_secs(10));
    assert!(all.contains(&id3));
}
