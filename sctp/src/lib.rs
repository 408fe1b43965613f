//! # rserpool-sctp
//!
//! SCTP (RFC 9260) for user space, carried over UDP (RFC 6951), as a sans-IO protocol core:
//! an [`Endpoint`] is fed datagrams and time and yields datagrams to send, events and its next
//! deadline. No sockets, no clocks, no threads: the caller (a tokio driver, a test with a
//! virtual clock) owns all I/O.
//!
//! What it implements: the 4-way handshake with an HMAC-signed, time-limited state cookie (no
//! state kept before COOKIE ECHO), INIT collision and peer-restart handling, verification tag
//! rules and out-of-the-blue handling; DATA and SACK with gap blocks and duplicate TSNs, delayed
//! SACK, fragmentation and reassembly, streams with ordered and unordered delivery and any PPID;
//! RTO per §6.3 (Karn, SRTT/RTTVAR), T3-rtx, fast retransmit and fast recovery, slow start and
//! congestion avoidance per path, the peer's receive window and zero-window probing, bundling;
//! heartbeats, path and association failure detection reported as events; multi-homing with a
//! primary path, path confirmation, failover and return; graceful SHUTDOWN and ABORT; and the
//! per-address UDP encapsulation port of RFC 6951, learned from what arrives.
//!
//! The tokio driver ([`SctpEndpoint`], feature `tokio`) runs an endpoint on a UDP socket. With
//! [`SctpEndpoint::bind_shared`] several processes of one host share RFC 6951's one well-known
//! UDP port (9899): one is the front and forwards to the others what peers send there for their
//! SCTP ports, and each answers from a UDP port of its own, which the peer learns (see [`mux`]).
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use rserpool_sctp::{Endpoint, EndpointConfig, Event};
//!
//! let now = Instant::now();
//! let mut client = Endpoint::new(EndpointConfig::default(), [1; 32], now);
//! let mut server = Endpoint::new(EndpointConfig::default(), [2; 32], now);
//! server.listen(3863);
//! let (c_addr, s_addr) = ("127.0.0.1:40000".parse().unwrap(), "127.0.0.2:9899".parse().unwrap());
//! let id = client.connect(now, 0, &[s_addr], 3863, None).unwrap();
//! // Shuttle packets until both sides are up (a real driver sends them over UDP).
//! for _ in 0..4 {
//!     while let Some(t) = client.poll_transmit(now) { server.handle(now, c_addr, t.payload); }
//!     while let Some(t) = server.poll_transmit(now) { client.handle(now, s_addr, t.payload); }
//! }
//! assert_eq!(client.poll_event(), Some((id, Event::Connected { incoming: false })));
//! client.send(id, 0, 11, false, Bytes::from_static(b"hello")).unwrap();
//! while let Some(t) = client.poll_transmit(now) { server.handle(now, c_addr, t.payload); }
//! let (sid, _) = server.poll_event().unwrap();
//! assert_eq!(server.recv(sid).unwrap().data, &b"hello"[..]);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod assoc;
pub mod chunk;
mod config;
pub mod cookie;
#[cfg(feature = "tokio")]
pub mod driver;
mod endpoint;
#[cfg(feature = "tokio")]
pub mod mux;
mod path;
mod recv;

pub use assoc::{Event, LostReason, SendError, State, Transmit};
pub use config::{AssociationConfig, EndpointConfig};
pub use endpoint::{AssocId, AssociationInfo, ConnectError, Endpoint, EndpointStats};
pub use path::{PathInfo, PathState};
pub use recv::Message;

#[cfg(feature = "tokio")]
pub use driver::{
    Association, Closed, ConnectFailed, Delivery, Listener, SctpEndpoint, SendOptions,
};
#[cfg(feature = "tokio")]
pub use mux::{Holder, ListenError, ShareConfig, ShareState, ShareStats};
