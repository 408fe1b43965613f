//! The C API from C: the programs of `capi-tests/` built with `cc` against `include/` and
//! the librserpool this build made, run against a registrar this test starts (in process,
//! on 127.0.0.1, its own UDP port).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rserpool::transport::TransportConfig;
use rserpool::wire::RegistrarId;
use rserpool::{RegistrarServer, ServerConfig};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// This test's host UDP port (the registrar fronts it).
const UDP: u16 = 30461;
/// The longest a C program may run.
const LIMIT: Duration = Duration::from_secs(120);

/// The directory holding librserpool.so (beside the test's own executable).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for d in [deps, deps.parent().unwrap()] {
        if d.join("librserpool.so").exists() {
            return d.to_path_buf();
        }
    }
    panic!("no librserpool.so near {}", exe.display());
}

/// AddressSanitizer (with its leak check) and UndefinedBehaviorSanitizer.
const SANITIZERS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
];

/// Builds a C program of `capi-tests/` with extra `cc` flags and returns its path.
pub fn build(name: &str, flags: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi");
    std::fs::create_dir_all(&out).unwrap();
    // The library's SONAME (librserpool.so.MAJOR or 0.MINOR) as an install would have it.
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let abi = if major == "0" {
        format!("0.{}", env!("CARGO_PKG_VERSION_MINOR"))
    } else {
        major.to_string()
    };
    let runtime = out.join("lib");
    std::fs::create_dir_all(&runtime).unwrap();
    let link = runtime.join(format!("librserpool.so.{abi}"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(lib_dir().join("librserpool.so"), &link).unwrap();
    let exe = out.join(if flags.is_empty() {
        name.to_string()
    } else {
        format!("{name}-sanitized")
    });
    let lib = lib_dir();
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("capi-tests").join(format!("{name}.c")))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", runtime.display()))
        .arg("-lrserpool")
        .arg("-lpthread");
    cc.args(flags);
    let status = cc.status().expect("cc");
    assert!(status.success(), "cc {name}.c failed");
    exe
}

/// Runs a C program with the library pointed at the test's registrar; its output.
fn run(exe: &Path, args: &[&str]) -> String {
    let mut child = Command::new(exe)
        .args(args)
        .env("RSERPOOL_UDP_PORT", UDP.to_string())
        .env("RSERPOOL_ANNOUNCE", "off")
        .env("RSERPOOL_LOCAL", "127.0.0.1")
        // Any report fails the program (exit code 23).
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:exitcode=23:abort_on_error=0",
        )
        .env(
            "UBSAN_OPTIONS",
            "print_stacktrace=1:halt_on_error=1:exitcode=23",
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn registrar(rt: &tokio::runtime::Runtime, id: u32) -> rserpool::RegistrarHandle {
    let mut config = ServerConfig::new(RegistrarId(id));
    config.transport = TransportConfig {
        local: LOCALHOST,
        udp_port: UDP,
        share_host: true,
        remote_udp_port: UDP,
        ..TransportConfig::default()
    };
    config.announce_group = None;
    // basic.c registers a PE with 127.0.0.2 besides 127.0.0.1, which its association does not
    // have (our SCTP over UDP is single-homed): keep it, to see two addresses in a list.
    config.registrar.check_user_addresses = false;
    let r = rt.block_on(RegistrarServer::start(config)).unwrap();
    assert!(r.is_front(), "UDP port {UDP} is taken");
    r
}

#[test]
fn c_programs_use_the_api_against_a_registrar() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = registrar(&rt, 0xc0c0);
    // Plain, then under the sanitizers: nothing reported.
    for flags in [&[][..], SANITIZERS] {
        let registrar = "-registrar=127.0.0.1:3863";
        let out = run(&build("session", flags), &[registrar]);
        assert!(
            out.contains(
                "RSERPOOL_FAILOVER for session 1, state=RSERPOOL_FAILOVER_NECESSARY, cookie=yes"
            ),
            "{out}"
        );
        assert!(out.contains("session: ok"), "{out}");
        let out = run(&build("failover", flags), &[registrar]);
        assert!(out.contains("new PE got: echo <PP-TD1>"), "{out}");
        assert!(out.contains("failover: ok"), "{out}");
        let out = run(&build("tags", flags), &[registrar]);
        assert!(out.contains("tags: ok"), "{out}");
        let out = run(&build("basic", flags), &[registrar]);
        assert!(out.contains("basic: ok"), "{out}");
        // Nothing listens at SCTP port 3999: the registrar is down.
        let out = run(&build("errors", flags), &["-registrar=127.0.0.1:3999"]);
        assert!(out.contains("errors: ok"), "{out}");
    }
    r.shutdown();
}
