//! The capture reader (pcap/pcapng, link layers, IP, UDP, SCTP reassembly) on arbitrary files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rserpool_proto::capture::{Ports, extract_messages, read_frames};

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = read_frames(data) {
        let _ = extract_messages(&frames, &Ports::default());
    }
});
