//! Every ASAP and ENRP decoder on arbitrary bytes: no panic, no unbounded allocation, and
//! whatever decodes re-encodes to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rserpool::wire::{Message, Protocol};

fuzz_target!(|data: &[u8]| {
    for p in [Protocol::Asap, Protocol::Enrp] {
        match Message::decode_full(p, data) {
            Ok(d) => {
                let bytes = d.message.to_bytes().expect("a decoded message encodes");
                assert_eq!(Message::decode(p, &bytes).expect("re-decodes"), d.message);
                let _ = d.unrecognized_report();
            }
            Err(e) => {
                assert!(e.offset <= data.len());
                let _ = e.error_cause();
            }
        }
    }
});
