//! librserpool installed as a user installs it (`scripts/install-lib` under a temporary
//! prefix), then C programs outside the tree built with `pkg-config` alone: the header works
//! from C99 to C2x and from C++, RSPLIB's `-lrsplib` and `<rserpool/rserpool.h>` work too,
//! and the C demos of `examples/c/` serve each other against a registrar this test starts:
//! the terminal's lines come back from the echo PE, and a ping-pong client fails over from a
//! killed PE to another that continues the reply count from the cookie.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rserpool::transport::TransportConfig;
use rserpool::wire::RegistrarId;
use rserpool::{RegistrarServer, ServerConfig};

const UDP: u16 = 30471;
const STEP: Duration = Duration::from_secs(30);

fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for d in [deps, deps.parent().unwrap()] {
        if d.join("librserpool.so").exists() && d.join("librserpool.a").exists() {
            return d.to_path_buf();
        }
    }
    panic!("no librserpool near {}", exe.display());
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running program whose output lines arrive on a channel; killed when dropped.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(exe: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(exe)
            .args(args)
            .env("RSERPOOL_UDP_PORT", UDP.to_string())
            .env("RSERPOOL_ANNOUNCE", "off")
            .env("RSERPOOL_LOCAL", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now) containing `what`.
    fn expect(&mut self, what: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!("no {what:?} in:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STEP;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "did not end:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            self.child.wait().unwrap().success(),
            "{}",
            self.seen.join("\n")
        );
        let mut all = std::mem::take(&mut self.seen);
        all.extend(self.lines.try_iter());
        all
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn installed_library_builds_and_runs_the_c_demos() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-install");
    let _ = std::fs::remove_dir_all(&tmp);
    let prefix = tmp.join("prefix");
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    sh(Command::new(root.join("scripts/install-lib"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(lib_dir()));
    let lib = prefix.join("lib");
    let readelf = sh(Command::new("readelf")
        .arg("-d")
        .arg(lib.join("librserpool.so")));
    assert!(readelf.contains("SONAME"), "{readelf}");
    for f in [
        "echo-server.c",
        "terminal.c",
        "pingpong-server.c",
        "pingpong-client.c",
        "pingpong.h",
    ] {
        std::fs::copy(root.join("examples/c").join(f), src.join(f)).unwrap();
    }
    let pkg_config = |pc: &str| {
        let out = sh(Command::new("pkg-config")
            .args(["--cflags", "--libs", pc])
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig")));
        out.split_whitespace().map(String::from).collect::<Vec<_>>()
    };
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    let cc = |name: &str, flags: &[String]| {
        let exe = tmp.join(name);
        sh(Command::new("cc")
            .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror"])
            .arg(src.join(format!("{name}.c")))
            .arg("-o")
            .arg(&exe)
            .args(flags)
            .arg(&rpath));
        exe
    };
    let flags = pkg_config("rserpool");
    let echo = cc("echo-server", &flags);
    let terminal = cc("terminal", &flags);
    let pp_server = cc("pingpong-server", &flags);
    let pp_client = cc("pingpong-client", &flags);

    // The header from C99 to C2x and C++, and RSPLIB's spellings.
    let probe = src.join("probe.c");
    std::fs::write(
        &probe,
        concat!(
            "#include <rserpool/rserpool.h>\n",
            "#include <rserpool/rserpool-internals.h>\n",
            "#include <rserpool/tagitem.h>\n",
            "int main(void) {\n",
            "  struct TagItem t[] = {{TAG_PoolElement_Identifier, 7}, {TAG_DONE, 0}};\n",
            "  return rsp_getpolicybyname(\"LeastUsed\") == PPT_LEASTUSED &&\n",
            "         tagListGetData(t, TAG_PoolElement_Identifier, 0) == 7 ? 0 : 1;\n",
            "}\n"
        ),
    )
    .unwrap();
    for std in ["-std=gnu99", "-std=gnu11", "-std=gnu17", "-std=gnu2x"] {
        sh(Command::new("cc")
            .args([std, "-Wall", "-Werror", "-fsyntax-only"])
            .args(&flags)
            .arg(&probe));
    }
    sh(Command::new("c++")
        .args(["-x", "c++", "-Wall", "-Werror", "-fsyntax-only"])
        .args(&flags)
        .arg(&probe));
    let rsplib = pkg_config("rsplib");
    let exe = tmp.join("probe");
    sh(Command::new("cc")
        .arg(&probe)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-I{}", prefix.join("include").display()))
        .arg(format!("-L{}", lib.display()))
        .arg("-lrsplib")
        .arg(&rpath));
    sh(&mut Command::new(&exe));
    assert!(rsplib.iter().any(|f| f == "-lrserpool"), "{rsplib:?}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = ServerConfig::new(RegistrarId(0xc1c1));
    config.transport = TransportConfig {
        local: IpAddr::V4(Ipv4Addr::LOCALHOST),
        udp_port: UDP,
        share_host: true,
        remote_udp_port: UDP,
        ..TransportConfig::default()
    };
    config.announce_group = None;
    let registrar = rt.block_on(RegistrarServer::start(config)).unwrap();
    assert!(registrar.is_front(), "UDP port {UDP} is taken");
    let reg = "-registrar=127.0.0.1:3863";

    // The terminal's lines come back from the echo PE.
    let mut e = Running::start(&echo, &[reg]);
    e.expect("registered in EchoPool");
    let mut t = Running::start(&terminal, &[reg, "-wait=1000"]);
    t.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello pool\n")
        .unwrap();
    t.expect("hello pool");
    t.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"second line\n")
        .unwrap();
    t.expect("second line");
    t.finish();

    // Ping-pong across a killed PE: the client fails over, the reply count goes on.
    let mut a = Running::start(&pp_server, &[reg]);
    let a_id = a
        .expect("registered in PingPongPool")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let mut b = Running::start(&pp_server, &[reg]);
    let b_id = b
        .expect("registered in PingPongPool")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let mut c = Running::start(&pp_client, &[reg, "-interval=100", "-count=20"]);
    let first = c.expect("pong message=");
    let (mut serving, mut other, other_id) = if first.ends_with(&a_id) {
        (a, b, b_id)
    } else {
        (b, a, a_id)
    };
    c.expect("reply=3 ");
    serving.child.kill().unwrap();
    serving.child.wait().unwrap();
    c.expect("PE lost, failing over");
    other.expect("resumes at reply");
    let after = c.expect("pong message=");
    assert!(after.ends_with(&other_id), "{after}");
    let lines = c.finish();
    let summary = lines.last().unwrap();
    assert!(
        summary.contains("20 pongs, 0 gaps, 1 failovers"),
        "{}",
        lines.join("\n")
    );
    registrar.shutdown();
}
