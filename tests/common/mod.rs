//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared reference folder (`../shared` beside the checkout, or `$RSERPOOL_SHARED`); found
/// from the crate of the test, wherever it sits in the checkout.
pub fn shared_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let beside = manifest
        .ancestors()
        .map(|a| a.join("../shared"))
        .find(|d| d.join("vectors/rsplib-3.4.4/messages.jsonl").is_file());
    let dir = std::env::var_os("RSERPOOL_SHARED")
        .map(PathBuf::from)
        .or(beside)
        .unwrap_or_else(|| manifest.join("../shared"));
    assert!(
        dir.join("vectors/rsplib-3.4.4/messages.jsonl").is_file(),
        "the shared reference folder is missing at {} (set RSERPOOL_SHARED)",
        dir.display()
    );
    dir
}

/// Decodes a hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One RSPLIB message of the corpus.
pub struct Vector {
    pub id: String,
    pub protocol: String,
    pub bytes: Vec<u8>,
    pub json: serde_json::Value,
}

/// Every message of `../shared/vectors/rsplib-3.4.4/messages.jsonl`.
pub fn rsplib_messages() -> Vec<Vector> {
    let path = shared_dir().join("vectors/rsplib-3.4.4/messages.jsonl");
    let text = std::fs::read_to_string(&path).expect("read messages.jsonl");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            Vector {
                id: v["id"].as_str().unwrap().to_owned(),
                protocol: v["protocol"].as_str().unwrap().to_owned(),
                bytes: unhex(v["hex"].as_str().unwrap()),
                json: v,
            }
        })
        .collect()
}

/// The host-crafted stimuli of `stimuli.jsonl`.
pub fn stimuli() -> Vec<serde_json::Value> {
    let path = shared_dir().join("vectors/rsplib-3.4.4/stimuli.jsonl");
    std::fs::read_to_string(&path)
        .expect("read stimuli.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}
