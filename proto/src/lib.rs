//! # rserpool-proto
//!
//! The protocol cores of [rserpool](https://crates.io/crates/rserpool), Reliable Server Pooling
//! (RSerPool, RFC 5351–5356), without any I/O: every core is a state machine fed with
//! `(event, now)` that returns what to send and when to wake it, so the drivers (tokio in the
//! `rserpool` crate, or any other) and the deterministic simulations in the tests run the same
//! code. This crate depends on no async runtime; the crate boundary keeps it so.
//!
//! * [`wire`]: the ASAP / ENRP codec — every message and parameter of RFC 5352–5354 and every
//!   policy of RFC 5356, plus what RSPLIB (the reference implementation) puts on the wire.
//! * [`handlespace`]: pools and pool elements by pool handle, PE ID, home registrar, association
//!   and deadline, with the RFC 5353 §3.6.2 checksums: a registrar's state and a pool user's cache.
//! * [`policy`]: every pool policy of RFC 5356 and RSPLIB's extensions, in one selection engine.
//! * [`asap`]: the ASAP client side (pool elements and pool users) as a sans-IO state machine.
//! * [`registrar`]: the registrar's ASAP server side as a sans-IO state machine.
//! * [`session`]: the session layer (RFC 5351 §3): a pool user's session to a pool, with
//!   cookies, business cards and failover.
//! * `capture` (feature `capture`): pcap files of ASAP/ENRP traffic (SCTP, SCTP over UDP, UDP):
//!   read and write, for tools and tests.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod asap;
#[cfg(feature = "capture")]
pub mod capture;
pub mod handlespace;
pub mod idhash;
pub mod policy;
pub mod registrar;
pub mod session;
pub mod wire;
