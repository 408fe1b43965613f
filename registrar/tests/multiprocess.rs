//! Multi-process tests on 127.0.0.1: `rserpool-registrar`, `rserpool pe` echo servers and
//! `rserpool resolve` / `rserpool terminal` pool users as separate processes, sharing the
//! host's SCTP-over-UDP port as they would in production.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, field, rserpool_bin};

/// Common client options: this test's UDP port, the registrar(s), no multicast.
fn client_args(udp: u16, registrars: &[u16]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--udp-port",
        &udp.to_string(),
        "--announce",
        "off",
        "--local",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in registrars {
        v.push("--registrar".into());
        v.push(format!("127.0.0.1:{p}"));
    }
    v
}

fn registrar(udp: u16, asap: u16, keep_alive_ms: u64) -> Proc {
    let args: Vec<String> = [
        "--asap".to_string(),
        format!("127.0.0.1:{asap}"),
        "--udp-port".into(),
        udp.to_string(),
        "--announce".into(),
        "off".into(),
        "--keep-alive-interval".into(),
        keep_alive_ms.to_string(),
        "--keep-alive-timeout".into(),
        keep_alive_ms.to_string(),
    ]
    .to_vec();
    let p = Proc::spawn(
        "registrar",
        &PathBuf::from(env!("CARGO_BIN_EXE_rserpool-registrar")),
        &args,
        false,
    );
    p.expect_out("rserpool-registrar ready", Duration::from_secs(20));
    p
}

fn echo_pe(udp: u16, registrars: &[u16]) -> (Proc, String) {
    let mut args = vec!["pe".to_string(), "--service".into(), "echo".into()];
    args.extend(client_args(udp, registrars));
    let p = Proc::spawn("pe", &rserpool_bin(), &args, false);
    let line = p.expect_out("rserpool pe ready", Duration::from_secs(30));
    let id = field(&line, "id=").to_string();
    (p, id)
}

fn resolve_all(udp: u16, registrars: &[u16]) -> Vec<String> {
    let mut args = vec![
        "resolve".to_string(),
        "EchoPool".into(),
        "--items".into(),
        "all".into(),
        "--t1".into(),
        "3000".into(),
    ];
    args.extend(client_args(udp, registrars));
    let out = Command::new(rserpool_bin()).args(&args).output().unwrap();
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_killed_pe_disappears_and_the_pool_user_fails_over() {
    let udp = 30411;
    let ka = 500;
    let _pr = registrar(udp, 3863, ka);
    let (mut pe_a, id_a) = echo_pe(udp, &[3863]);
    let (mut pe_b, id_b) = echo_pe(udp, &[3863]);
    let mut both = vec![id_a.clone(), id_b.clone()];
    both.sort();
    assert_eq!(resolve_all(udp, &[3863]), both);

    let mut args = vec!["terminal".to_string(), "EchoPool".into()];
    args.extend(client_args(udp, &[3863]));
    let mut pu = Proc::spawn("terminal", &rserpool_bin(), &args, true);
    pu.write("first line\n");
    assert_eq!(
        pu.expect_out("first", Duration::from_secs(20)),
        "first line"
    );
    let connected = pu.expect_err("connected to PE", Duration::from_secs(5));
    let serving = field(&connected, "PE ").to_string();
    let (victim, survivor) = if serving == id_a {
        (&mut pe_a, &id_b)
    } else {
        (&mut pe_b, &id_a)
    };
    assert!(serving == id_a || serving == id_b, "{connected}");

    // The PE serving the pool user dies without a word (SIGKILL: no ABORT, no deregistration).
    victim.kill();
    let killed = Instant::now();
    // The registrar's keep-alives (500 ms ± 50 %, 500 ms timeout) find it gone.
    let limit = Duration::from_millis(ka * 3 / 2 + ka) + Duration::from_secs(3);
    loop {
        let now = resolve_all(udp, &[3863]);
        if now == vec![survivor.clone()] {
            break;
        }
        assert!(
            killed.elapsed() < limit,
            "still resolved after {:?}: {now:?}",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The pool user notices, reports it and continues with the other PE.
    pu.write("second line\n");
    assert_eq!(
        pu.expect_out("second", Duration::from_secs(20)),
        "second line"
    );
    let reconnected = pu.expect_err("connected to PE", Duration::from_secs(5));
    assert_eq!(
        field(&reconnected, "PE "),
        survivor.as_str(),
        "{}",
        pu.stderr()
    );
    drop(pu.stdin.take());
    assert!(
        pu.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        pu.stderr()
    );
}

#[test]
fn pes_move_to_a_second_registrar_when_the_first_one_dies() {
    let udp = 30412;
    // The first registrar holds the host's UDP port; the PE knows of a second one, which is
    // not running yet, so the PE's home is the first.
    let mut pr1 = registrar(udp, 3863, 1000);
    let (_pe, id) = echo_pe(udp, &[3863, 3864]);
    assert_eq!(resolve_all(udp, &[3863]), vec![id.clone()]);
    // The second one starts, sharing the UDP port, and knows nothing of the PE.
    let _pr2 = registrar(udp, 3864, 1000);
    assert_eq!(resolve_all(udp, &[3864]), Vec::<String>::new());
    // The first one stops: the second takes over the UDP port, the PE re-registers there.
    assert!(pr1.terminate().success());
    let end = Instant::now() + Duration::from_secs(30);
    while resolve_all(udp, &[3864]) != vec![id.clone()] {
        assert!(
            Instant::now() < end,
            "the PE did not move to the second registrar"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn registrar_help_maps_rsplib_options_and_bad_options_fail() {
    let exe = env!("CARGO_BIN_EXE_rserpool-registrar");
    let out = Command::new(exe).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for s in [
        "-endpointkeepalivetransmissioninterval",
        "--keep-alive-interval",
        "-maxbadpereports",
        "--config",
    ] {
        assert!(help.contains(s), "{s} missing from --help");
    }
    let out = Command::new(exe).args(["--id", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pr.toml");
    std::fs::write(&cfg, "keep-alive-intervall = 5\n").unwrap();
    let out = Command::new(exe)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep-alive-intervall"));
}

#[test]
fn registrar_runs_from_a_config_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pr.toml");
    std::fs::write(
        &cfg,
        "id = \"0x5eed\"\nasap = \"127.0.0.1:3863\"\nudp-port = 30413\nannounce = \"off\"\n",
    )
    .unwrap();
    let mut pr = Proc::spawn(
        "registrar",
        &PathBuf::from(env!("CARGO_BIN_EXE_rserpool-registrar")),
        &["--config".into(), cfg.display().to_string()],
        false,
    );
    let ready = pr.expect_out("ready", Duration::from_secs(20));
    assert!(ready.contains("id=0x00005eed"), "{ready}");
    assert!(ready.contains("udp=127.0.0.1:30413"), "{ready}");
    assert!(pr.terminate().success());
    assert!(pr.stderr().contains("stopped"));
}
