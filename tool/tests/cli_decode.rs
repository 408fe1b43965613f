//! `rserpool decode`, as a user runs it.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};

fn rserpool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rserpool"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn decodes_a_hex_message_readably() {
    // RSPLIB's keep-alive (asap-07-001), with its extra PE Identifier.
    let o = rserpool(&[
        "decode",
        "--protocol",
        "asap",
        "--hex",
        "0700001c 11111111 0009000c 4563686f506f6f6c 000e0008 0e000001",
    ]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.starts_with("ASAP_ENDPOINT_KEEP_ALIVE (flags 0x00, 28 bytes)"),
        "{out}"
    );
    assert!(out.contains("server_id: 0x11111111"));
    assert!(out.contains("pool_handle: EchoPool"));
    assert!(out.contains("pe_id: 0x0e000001"));
}

#[test]
fn names_the_offending_tlv_and_offset_of_a_malformed_message() {
    // A Presence whose PE Checksum claims 200 bytes.
    let o = rserpool(&[
        "decode",
        "--protocol",
        "enrp",
        "--hex",
        "010000140badf00d22222222000f00c8ffff0000",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("parameter 0x000f of length 200 runs past its container"),
        "{out}"
    );
    assert!(out.contains("at offset 12"), "{out}");
    // An unknown parameter with action bits 01 is reported back with the TLV.
    let o = rserpool(&[
        "decode",
        "--protocol",
        "asap",
        "--hex",
        "050000180009000c4563686f506f6f6c41230008deadbeef",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("unrecognized parameter type 0x4123 at offset 16"),
        "{out}"
    );
    assert!(
        out.contains("cause 0x0001 (Unrecognized Parameter), echoing 41230008deadbeef"),
        "{out}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2() {
    for (args, want) in [
        (
            vec!["decode", "--protocol", "asap", "--hex", "0a0"],
            "odd number of hex digits",
        ),
        (
            vec!["decode", "--protocol", "asap", "--hex", "0x0g"],
            "not a hex digit",
        ),
        (
            vec!["decode", "/nonexistent/capture.pcap"],
            "/nonexistent/capture.pcap",
        ),
        (vec!["decode", "Cargo.toml"], "not a pcap or pcapng file"),
    ] {
        let o = rserpool(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn decodes_every_rsplib_message_of_the_corpus_capture() {
    let pcap = common::shared_dir().join("vectors/rsplib-3.4.4/pcaps/main.pcap");
    let o = rserpool(&["decode", "--json", pcap.to_str().unwrap()]);
    // The capture holds deliberately broken host stimuli: exit 1, and only those fail.
    assert_eq!(o.status.code(), Some(1));
    let records: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        3408,
        "every ASAP/ENRP message wire-check finds"
    );
    let failed: BTreeSet<u64> = records
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| r["frame"].as_u64().unwrap())
        .collect();
    let stimulus_frames: BTreeSet<u64> = common::stimuli()
        .iter()
        .map(|s| s["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(failed.len(), 13);
    assert!(
        failed.is_subset(&stimulus_frames),
        "only host stimuli fail: {failed:?}"
    );
    // Each record carries the decode or the error.
    for r in &records {
        assert!(
            r.get(if r["ok"] == true { "decoded" } else { "error" })
                .is_some()
        );
    }
}
