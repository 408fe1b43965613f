//! The SCTP packet parser and an endpoint's handling of packets for which it has no association
//! (INIT, COOKIE ECHO, out-of-the-blue rules), on arbitrary datagrams. The first byte chooses
//! whether the CRC32c is made valid, so the chunk parser is reached most of the time.
#![no_main]

use std::cell::RefCell;
use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rserpool_sctp::chunk::{Chunk, Packet};
use rserpool_sctp::{Endpoint, EndpointConfig};

thread_local! {
    static EP: RefCell<(Endpoint, Instant)> = RefCell::new({
        let now = Instant::now();
        let mut e = Endpoint::new(EndpointConfig::default(), [3; 32], now);
        e.listen(3863);
        (e, now)
    });
}

fn normalized(mut chunks: Vec<Chunk>) -> Vec<Chunk> {
    for c in &mut chunks {
        if let Chunk::Init(i) | Chunk::InitAck(i) = c {
            i.unknown_to_report.clear();
            i.host_name = false;
        }
    }
    chunks
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut p = rest.to_vec();
    if p.len() >= 12 && mode & 1 == 1 {
        if mode & 2 == 2 {
            p[2..4].copy_from_slice(&3863u16.to_be_bytes());
        }
        p[8..12].copy_from_slice(&[0; 4]);
        let crc = crc32c::crc32c(&p);
        p[8..12].copy_from_slice(&crc.to_le_bytes());
    }
    let p = Bytes::from(p);
    if let Ok(pkt) = Packet::parse(&p) {
        // Re-encoding reproduces every chunk; only what an INIT carries that this stack refuses
        // or reports back (unknown parameters, a Host Name Address) is not sent again.
        let again = Packet::parse(&Packet::encode(&pkt.header, &pkt.chunks)).expect("re-encoded packets parse");
        assert_eq!(normalized(again.chunks), normalized(pkt.chunks));
    }
    EP.with(|e| {
        let (ep, now) = &mut *e.borrow_mut();
        ep.handle(*now, "10.0.0.1:9899".parse().unwrap(), p);
        while ep.poll_transmit(*now).is_some() {}
        assert_eq!(ep.association_count(), 0, "no association without a valid cookie");
    });
});
