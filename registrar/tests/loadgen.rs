//! The ASAP load generator (`rserpool loadgen`) against `rserpool-registrar` on 127.0.0.1: every
//! phase gets work done, nothing fails, and the registrar's handlespace is empty afterwards.
//! No timing is asserted (figures come from `scripts/bench-asap`).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Proc, rserpool_bin};

/// Runs the `rserpool` tool to its end (within `limit`): its exit code, stdout and stderr.
fn run(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut p = Proc::spawn(&args[0], &rserpool_bin(), &args, false);
    let (status, out) = p.finish(limit);
    (status.code(), out.join("\n"), p.stderr())
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
    let mut registrar = Proc::spawn(
        "registrar",
        &PathBuf::from(env!("CARGO_BIN_EXE_rserpool-registrar")),
        &[
            "--asap",
            "127.0.0.1:3863",
            "--udp-port",
            udp,
            "--announce",
            "off",
        ]
        .map(String::from),
        false,
    );
    registrar.expect_out("rserpool-registrar ready", Duration::from_secs(20));

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
    let (code, json, err) = run(&args, Duration::from_secs(90));
    let json = json.trim().to_string();
    assert_eq!(code, Some(0), "loadgen failed: {err}\n{json}");
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
    let (code, _, err) = run(&args, Duration::from_secs(30));
    assert_eq!(code, Some(1), "resolve: {err}");
    assert!(err.contains("unknown pool handle"), "{err}");

    // And the registrar counts no PE at its end.
    assert!(registrar.terminate().success());
    registrar.expect_err("final statistics pes=0", Duration::from_secs(5));
}
