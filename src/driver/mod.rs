//! The tokio drivers of the sans-IO cores: each owns a core, feeds it what arrives on its
//! associations and timers, and carries out what it asks (send, connect, close, wake up later).
//!
//! * [`client`]: [`Client`](crate::Client), the application API, driving the ASAP client core
//!   ([`asap`](crate::asap)).
//! * [`registrar`]: [`RegistrarServer`](crate::RegistrarServer), driving the registrar core
//!   ([`registrar`](crate::registrar)).
//! * [`session`]: [`Session`](crate::Session), a pool user's session, driving the session core
//!   ([`session`](crate::session)) with a `Client`.
//! * [`pe_session`]: [`SessionServer`](crate::SessionServer), a pool element's sessions,
//!   driving the PE side of the session core.

pub mod client;
pub mod pe_session;
pub mod registrar;
pub mod session;
