//! Multi-process tests on 127.0.0.1: `rserpool-registrar`, `rserpool pe` echo servers and
//! `rserpool resolve` / `rserpool terminal` pool users as separate processes, sharing the
//! host's SCTP-over-UDP port as they would in production.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `rserpool` tool, built once (it belongs to the main package).
fn rserpool_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let registrar = PathBuf::from(env!("CARGO_BIN_EXE_rserpool-registrar"));
            let dir = registrar.parent().unwrap().to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut cmd = Command::new(cargo);
            cmd.current_dir(&root)
                .args(["build", "-q", "-p", "rserpool", "--bin", "rserpool"]);
            // Build into the same target directory as this test.
            let target = dir.parent().unwrap();
            cmd.env("CARGO_TARGET_DIR", target);
            if dir.ends_with("release") {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("cargo runs");
            assert!(st.success(), "building the rserpool tool failed");
            dir.join("rserpool")
        })
        .clone()
}

/// A child process whose output lines are collected; killed when dropped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    err_log: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(name: &str, program: &PathBuf, args: &[String], stdin: bool) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (otx, out) = channel();
        let (etx, err) = channel();
        let so = child.stdout.take().unwrap();
        let se = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(so).lines().map_while(Result::ok) {
                if otx.send(l).is_err() {
                    break;
                }
            }
        });
        let err_log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = err_log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(se).lines().map_while(Result::ok) {
                log.lock().unwrap().push(l.clone());
                let _ = etx.send(l);
            }
        });
        Self {
            name: name.into(),
            stdin: child.stdin.take(),
            child,
            out,
            err,
            err_log,
        }
    }

    /// The next stdout line containing `what`, within `limit`.
    fn expect_out(&self, what: &str, limit: Duration) -> String {
        wait_line(&self.out, what, limit).unwrap_or_else(|| {
            panic!(
                "{}: no output line with {what:?} within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    fn expect_err(&self, what: &str, limit: Duration) -> String {
        wait_line(&self.err, what, limit).unwrap_or_else(|| {
            panic!(
                "{}: no stderr line with {what:?} within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    fn stderr(&self) -> String {
        self.err_log.lock().unwrap().join("\n")
    }

    fn write(&mut self, text: &str) {
        let s = self.stdin.as_mut().expect("stdin piped");
        s.write_all(text.as_bytes()).unwrap();
        s.flush().unwrap();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        // SIGTERM, then wait (bounded).
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < end,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < end,
                "{} did not exit; stderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_line(rx: &Receiver<String>, what: &str, limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return Some(l),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("{key} in {line:?}"))
        + key.len();
    line[start..].split_whitespace().next().unwrap()
}

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
