//! # rserpool
//!
//! Reliable Server Pooling (RSerPool, RFC 5351–5356) in Rust.
//!
//! * [`wire`]: the ASAP / ENRP codec — every message and parameter of RFC 5352–5354 and every
//!   policy of RFC 5356, plus what RSPLIB (the reference implementation) puts on the wire.
//! * [`capture`]: pcap files of ASAP/ENRP traffic (SCTP, SCTP over UDP, UDP): read and write, for
//!   tools and tests.
//! * [`handlespace`]: pools and pool elements by pool handle, PE ID, home registrar, association
//!   and deadline, with the RFC 5353 §3.6.2 checksums: a registrar's state and a pool user's cache.
//! * [`policy`]: every pool policy of RFC 5356 and RSPLIB's extensions, in one selection engine.
//! * [`asap`]: the ASAP client side (pool elements and pool users) as a sans-IO state machine.
//! * [`registrar`]: the registrar's ASAP server side as a sans-IO state machine.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use client::{Client, ClientOptions};
pub use registrar::server::{RegistrarHandle, RegistrarServer, ServerConfig};

pub mod asap;
pub mod capture;
pub mod client;
pub mod handlespace;
pub mod policy;
pub mod registrar;
pub mod transport;
pub mod wire;
