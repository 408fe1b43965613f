//! The ASAP load generator (`rserpool loadgen`) against `rserpool-registrar` on 127.0.0.1: every
//! phase gets work done, nothing fails, and the registrar's handlespace is empty afterwards.
//! No timing is asserted (figures come from `scripts/bench-asap`).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `rserpool` tool, built once into this test's target directory (it belongs to the main
/// package).
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
            cmd.env("CARGO_TARGET_DIR", dir.parent().unwrap());
            if dir.ends_with("release") {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("cargo runs");
            assert!(st.success(), "building the rserpool tool failed");
            dir.join("rserpool")
        })
        .clone()
}

/// Kills the child when dropped (a failed assertion leaves nothing behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to its end, within `limit`; kills it past that.
fn run(program: &PathBuf, args: &[&str], limit: Duration) -> Output {
    let mut child = Killed(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < end,
            "{program:?} {args:?} ran over {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// The number after `"key":` in the JSON object that follows `"op":{` (or at the top level
/// when `op` is empty).
fn number(json: &str, op: &str, key: &str) -> f64 {
    let scope = if op.is_empty() {
        json
    } else {
        let start = json
            .find(&format!("\"{op}\":{{"))
            .unwrap_or_else(|| panic!("no {op} in {json}"));
        &json[start..]
    };
    let at = scope
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} of {op} in {json}"))
        + key.len()
        + 3;
    let text: String = scope[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    text.parse()
        .unwrap_or_else(|_| panic!("{key} of {op} is not a number in {json}"))
}

#[test]
fn the_load_generator_loads_our_registrar_and_leaves_its_handlespace_empty() {
    let udp = "30421";
    let tool = rserpool_bin();
    let mut registrar = Killed(
        Command::new(env!("CARGO_BIN_EXE_rserpool-registrar"))
            .args([
                "--asap",
                "127.0.0.1:3863",
                "--udp-port",
                udp,
                "--announce",
                "off",
            ])
            .env("RUST_LOG", "warn,rserpool_registrar=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("registrar starts"),
    );
    // Wait (bounded) for its ready line.
    let mut stdout = registrar.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let mut text = String::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("rserpool-registrar ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the registrar is ready within 20 s");
    let mut stderr = registrar.0.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut v = String::new();
        let _ = stderr.read_to_string(&mut v);
        v
    });

    let common = [
        "--registrar",
        "127.0.0.1",
        "--udp-port",
        udp,
        "--announce",
        "off",
        "--local",
        "127.0.0.1",
    ];
    let mut args = vec![
        "loadgen",
        "--clients",
        "4",
        "--duration",
        "1",
        "--pes-per-client",
        "2",
        "--resolve-pes",
        "3",
        "--t1",
        "5000",
        "--json",
    ];
    args.extend(common);
    let out = run(&tool, &args, Duration::from_secs(90));
    let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed: {err}\n{json}");
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    for op in [
        "registration",
        "deregistration",
        "reregistration",
        "resolution",
    ] {
        assert!(number(&json, op, "ok") > 0.0, "no {op} done: {err}\n{json}");
        assert_eq!(
            number(&json, op, "errors"),
            0.0,
            "{op} errors: {err}\n{json}"
        );
    }
    // Each registered PE of the register phase was deregistered.
    assert_eq!(
        number(&json, "registration", "ok"),
        number(&json, "deregistration", "ok")
    );
    assert_eq!(number(&json, "", "errors"), 0.0, "{err}\n{json}");
    assert_eq!(number(&json, "", "clients_up"), 4.0, "{err}\n{json}");
    assert_eq!(number(&json, "", "pool_left"), 0.0, "{err}\n{json}");

    // An independent pool user finds the pool gone.
    let mut args = vec!["resolve", "LoadPool", "--t1", "3000"];
    args.extend(common);
    let out = run(&tool, &args, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "resolve: {err}");
    assert!(err.contains("unknown pool handle"), "{err}");

    // And the registrar counts no PE at its end.
    let pid = registrar.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let end = Instant::now() + Duration::from_secs(10);
    while registrar.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < end,
            "the registrar did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = log.join().unwrap();
    assert!(log.contains("final statistics pes=0"), "{log}");
}
