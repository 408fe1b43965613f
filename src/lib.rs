//! # rserpool
//!
//! Reliable Server Pooling (RSerPool, RFC 5351–5356) in Rust: the library that applications use.
//! It runs the protocol cores of [`rserpool_proto`] (re-exported here) on tokio, over our own
//! SCTP ([`rserpool_sctp`]).
//!
//! * [`Client`]: the application API of pool elements and pool users (register, update, deregister,
//!   resolve, report unreachable), a driver of the [`asap`] core.
//! * [`RegistrarServer`]: a registrar in the process, a driver of the [`registrar`] core.
//! * [`Session`]: a pool user's session to a pool, with failover, a driver of the [`session`]
//!   core.
//! * [`SessionServer`]: a pool element's sessions (cookies, Cookie Echoes, Business Cards).
//! * [`transport`]: the seam between the drivers and SCTP (endpoints, associations), and
//!   multicast announces.
//! * The cores, from `rserpool-proto`: [`wire`] (the ASAP / ENRP codec), [`handlespace`],
//!   [`policy`], [`asap`] (the ASAP client side), [`session`] (the session layer) and
//!   [`registrar`] (the registrar's ASAP server
//!   side), each a sans-IO state machine.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub use driver::client::{Client, ClientOptions};
pub use driver::pe_session::SessionServer;
pub use driver::registrar::{DEFAULT_ENRP_GROUP, RegistrarHandle, RegistrarServer, ServerConfig};
pub use driver::session::{Session, SessionOptions, SessionStatus};
pub use rserpool_proto::{asap, handlespace, idhash, policy, registrar, session, wire};

pub mod capi;
pub mod driver;
pub mod transport;
