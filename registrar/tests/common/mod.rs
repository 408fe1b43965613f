//! Helpers of the multi-process tests: the `rserpool` tool built on demand, and child processes
//! whose output lines are collected, waited for with a bound, and killed when dropped.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `rserpool` tool, built once (it belongs to the rserpool-tool package).
pub fn rserpool_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let registrar = PathBuf::from(env!("CARGO_BIN_EXE_rserpool-registrar"));
            let dir = registrar.parent().unwrap().to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut cmd = Command::new(cargo);
            cmd.current_dir(&root).args([
                "build",
                "-q",
                "-p",
                "rserpool-tool",
                "--bin",
                "rserpool",
            ]);
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

/// The word after `key` in a line (`field("ready: id=0x1 x", "id=")` is `0x1`).
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("{key} in {line:?}"))
        + key.len();
    line[start..].split_whitespace().next().unwrap()
}

/// A child process whose output lines are collected; killed when dropped.
pub struct Proc {
    name: String,
    child: Child,
    pub stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    err_log: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(name: &str, program: &PathBuf, args: &[String], stdin: bool) -> Self {
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
    pub fn expect_out(&self, what: &str, limit: Duration) -> String {
        wait_line(&self.out, what, limit).unwrap_or_else(|| {
            panic!(
                "{}: no output line with {what:?} within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    pub fn expect_err(&self, what: &str, limit: Duration) -> String {
        wait_line(&self.err, what, limit).unwrap_or_else(|| {
            panic!(
                "{}: no stderr line with {what:?} within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    pub fn stderr(&self) -> String {
        self.err_log.lock().unwrap().join("\n")
    }

    pub fn write(&mut self, text: &str) {
        let s = self.stdin.as_mut().expect("stdin piped");
        s.write_all(text.as_bytes()).unwrap();
        s.flush().unwrap();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (up to 10 s) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit(Duration::from_secs(10))
    }

    /// Waits (up to `limit`) for the exit and for the end of the output (5 s more at most);
    /// returns the exit status and the stdout lines not consumed by [`Proc::expect_out`].
    /// [`Proc::stderr`] is complete afterwards.
    pub fn finish(&mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let status = self.wait_exit(limit);
        let end = Instant::now() + Duration::from_secs(5);
        let drain = |rx: &Receiver<String>| {
            let mut lines = Vec::new();
            while let Some(left) = end.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        };
        let out = drain(&self.out);
        drain(&self.err);
        (status, out)
    }

    /// Waits (up to `limit`) for the exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
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

pub fn wait_line(rx: &Receiver<String>, what: &str, limit: Duration) -> Option<String> {
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
