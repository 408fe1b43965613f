//! SCTP packets from a hostile peer: the input is cut into datagrams that reach an endpoint with
//! a listening port and an established association. Most get a correct CRC32c (and some the
//! association's verification tag and ports), so the chunk parser and the association's state
//! machine see them, not only the checksum check. Nothing may panic, and timers must keep
//! working afterwards.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rserpool_sctp::{Endpoint, EndpointConfig};

fn pair(now: Instant) -> (Endpoint, Endpoint, SocketAddr, SocketAddr, u32) {
    let c_addr: SocketAddr = "10.0.0.1:9899".parse().unwrap();
    let s_addr: SocketAddr = "10.0.0.2:9899".parse().unwrap();
    let mut c = Endpoint::new(EndpointConfig::default(), [1; 32], now);
    let mut s = Endpoint::new(EndpointConfig::default(), [2; 32], now);
    s.listen(3863);
    c.connect(now, 40000, &[s_addr], 3863, None).unwrap();
    let mut tag = 0;
    for _ in 0..4 {
        while let Some(t) = c.poll_transmit(now) {
            // The client's packets carry the server's verification tag.
            tag = u32::from_be_bytes(t.payload[4..8].try_into().unwrap());
            s.handle(now, c_addr, t.payload);
        }
        while let Some(t) = s.poll_transmit(now) {
            c.handle(now, s_addr, t.payload);
        }
    }
    (c, s, c_addr, s_addr, tag)
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let (_c, mut s, c_addr, _s_addr, tag) = pair(now);
    let mut t = now;
    // Each datagram: 1 byte mode, 2 bytes length, then the bytes.
    let mut rest = data;
    while rest.len() >= 3 {
        let mode = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let mut p = rest[3..3 + len].to_vec();
        rest = &rest[3 + len..];
        if p.len() >= 12 && mode % 4 != 0 {
            if mode % 4 == 3 {
                p[0..2].copy_from_slice(&40000u16.to_be_bytes());
                p[2..4].copy_from_slice(&3863u16.to_be_bytes());
                p[4..8].copy_from_slice(&tag.to_be_bytes());
            }
            p[8..12].copy_from_slice(&[0; 4]);
            let crc = crc32c::crc32c(&p);
            p[8..12].copy_from_slice(&crc.to_le_bytes());
        }
        s.handle(t, c_addr, Bytes::from(p));
        while s.poll_transmit(t).is_some() {}
        while s.poll_event().is_some() {}
        t += Duration::from_millis(u64::from(mode >> 2) * 10);
        if s.poll_timeout().is_some_and(|d| d <= t) {
            s.handle_timeout(t);
        }
    }
    // Time still runs: drive the timers for a while.
    for _ in 0..50 {
        match s.poll_timeout() {
            Some(d) => {
                t = t.max(d);
                s.handle_timeout(t);
                while s.poll_transmit(t).is_some() {}
                while s.poll_event().is_some() {}
            }
            None => break,
        }
    }
});
