//! # rserpool
//!
//! Reliable Server Pooling (RSerPool, RFC 5351–5356) in Rust.
//!
//! * [`wire`]: the ASAP / ENRP codec — every message and parameter of RFC 5352–5354 and every
//!   policy of RFC 5356, plus what RSPLIB (the reference implementation) puts on the wire.
//! * [`capture`]: pcap files of ASAP/ENRP traffic (SCTP, SCTP over UDP, UDP): read and write, for
//!   tools and tests.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod capture;
pub mod wire;
