//! The session layer (RFC 5351 §3, RFC 5352 §3.8–3.9), sans-IO: a pool user's session to a
//! pool handle, carried by an association to one pool element at a time, which it replaces
//! when that PE fails ([`PoolUserSession`]); and a pool element's sessions, one per pool user
//! association to it ([`PoolElementSessions`]: session IDs, cookies sent, the first Cookie
//! Echo of a session handed to the application, Business Cards).
//!
//! A [`PoolUserSession`] asks its driver for everything it needs as [`SessionOutput`]s: resolve
//! the pool handle (through the ASAP client, with its cache), open an association to a PE,
//! send, report a PE unreachable, abort or shut down an association. The driver feeds back
//! what happened (`resolved`, `association_up`, `association_failed`, `association_lost`,
//! `message`, the timer) and the application's calls (`send`, `force_failover`, `close`); the
//! session reports to the application as [`SessionEvent`]s.
//!
//! * **Control and data on one association**: ASAP messages on PPID 11 are the session's own
//!   (Cookie, Business Card); every other PPID is the application's and is handed over as
//!   [`SessionEvent::Message`]. Applications use another PPID, as with RSPLIB.
//! * **Cookies** (RFC 5352 §3.8): the newest Cookie from the PE is kept, and after a failover
//!   it goes to the new PE as an ASAP Cookie Echo, the first message on the association.
//! * **Business cards** (§3.9 BC2): a PE's Business Card gives the failover order; its PEs are
//!   tried first, the handle resolution's after them.
//! * **Failover**: the loss of the association (or of the peer by SHUTDOWN) is reported as
//!   [`SessionEvent::FailoverNecessary`]. On demand (RSPLIB's model, the default) the session
//!   then refuses to send ([`SessionError::FailoverNecessary`], RSPLIB's `EIO`) until the
//!   application calls [`PoolUserSession::force_failover`]; with
//!   [`SessionConfig::automatic_failover`] it fails over by itself. A failover reports the old
//!   PE unreachable (when it failed, or when asked), resolves the pool, and tries its PEs in
//!   order, skipping those that failed in this round; each connect is bounded by
//!   [`SessionConfig::connect_timeout`]. When no PE can be reached, the session says
//!   [`SessionEvent::NoPoolElement`] and, in automatic mode, tries again after
//!   [`SessionConfig::retry_delay`].
//! * While a connect is in progress, messages the application sends wait (up to
//!   [`SessionConfig::queue_limit`] bytes) and go out, in order, after the Cookie Echo.
//!   Messages already handed to a failed association are not retrieved (SCTP gives them back
//!   only as undelivered, which the driver may report); the TCP mapping will add that.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rserpool_proto::handlespace::AssociationId;
//! use rserpool_proto::session::*;
//! use rserpool_proto::wire::*;
//!
//! let now = Instant::now();
//! let pool = PoolHandle::try_from("EchoPool").unwrap();
//! let mut s = PoolUserSession::new(pool, SessionConfig::default());
//! s.connect(now);
//! assert_eq!(s.poll_output(), Some(SessionOutput::Resolve));
//! let pe = PoolElement {
//!     id: PoolElementId(7),
//!     home_registrar: RegistrarId(1),
//!     registration_life: 30_000,
//!     user_transport: Transport::Sctp(SctpTransport {
//!         port: 7,
//!         transport_use: TransportUse::DataPlusControl,
//!         addresses: vec!["10.0.0.7".parse().unwrap()],
//!     }),
//!     policy: Policy::RoundRobin,
//!     asap_transport: None,
//! };
//! s.resolved(now, Ok(vec![pe]));
//! let Some(SessionOutput::Connect { association, port, .. }) = s.poll_output() else { panic!() };
//! assert_eq!(port, 7);
//! s.association_up(now, association);
//! assert_eq!(s.poll_event(), Some(SessionEvent::Connected { pe: PoolElementId(7) }));
//! s.send(now, SendInfo { ppid: 33, ..SendInfo::default() }, b"ping".to_vec().into()).unwrap();
//! assert!(matches!(s.poll_output(), Some(SessionOutput::Send { .. })));
//! ```

mod pe;

pub use pe::{MAX_SESSION_ID, PeEvent, PeSessionError, PoolElementSessions, SessionId};

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::debug;

use crate::asap::ClientError;
use crate::handlespace::AssociationId;
use crate::wire::{
    AsapMessage, Cookie, PPID_ASAP, PoolElement, PoolElementId, PoolHandle, Transport,
};

/// Settings of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Fail over by itself when the PE is lost, and tell the application afterwards. Off (the
    /// default, as RSPLIB): the application calls [`PoolUserSession::force_failover`].
    pub automatic_failover: bool,
    /// How long opening an association to a PE may take (RSPLIB: 5 s).
    pub connect_timeout: Duration,
    /// In automatic mode, the wait before resolving again when no PE could be reached
    /// (RSPLIB sleeps 250 ms before failing with `ENOENT`).
    pub retry_delay: Duration,
    /// Most bytes of application messages held while a connect is in progress.
    pub queue_limit: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            automatic_failover: false,
            connect_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_millis(250),
            queue_limit: 1 << 20,
        }
    }
}

/// How a message is sent: stream, PPID, ordering and lifetime (RSPLIB's `rsp_sendmsg`
/// arguments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendInfo {
    /// The SCTP stream.
    pub stream: u16,
    /// The payload protocol identifier; 11 (ASAP) is the session's own.
    pub ppid: u32,
    /// Deliver it outside the stream's order.
    pub unordered: bool,
    /// Not sent at all if not sent within this time (SCTP's lifetime).
    pub lifetime: Option<Duration>,
}

/// What the session asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOutput {
    /// Resolve the session's pool handle; answer with [`PoolUserSession::resolved`].
    Resolve,
    /// Tell the registrar that this PE is unreachable (ASAP Endpoint Unreachable).
    ReportUnreachable {
        /// The PE.
        pe: PoolElementId,
    },
    /// Open an association to a PE; answer with [`PoolUserSession::association_up`] or
    /// [`PoolUserSession::association_failed`].
    Connect {
        /// The ID the session gave it.
        association: AssociationId,
        /// The PE's addresses.
        addresses: Vec<IpAddr>,
        /// The PE's SCTP port.
        port: u16,
    },
    /// Send a message on the association.
    Send {
        /// The association.
        association: AssociationId,
        /// Stream, PPID, ordering, lifetime.
        info: SendInfo,
        /// The message.
        data: Bytes,
    },
    /// Abort the association (it is given up).
    Abort {
        /// The association.
        association: AssociationId,
    },
    /// Shut the association down gracefully (the session is closed).
    Shutdown {
        /// The association.
        association: AssociationId,
    },
}

/// What the session tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The first PE of the session is reached.
    Connected {
        /// The PE.
        pe: PoolElementId,
    },
    /// A message of the application from the PE.
    Message {
        /// Stream, PPID and ordering (no lifetime).
        info: SendInfo,
        /// The message.
        data: Bytes,
    },
    /// The PE is lost (RSPLIB's `RSERPOOL_FAILOVER_NECESSARY`).
    FailoverNecessary {
        /// A cookie will go to the next PE.
        has_cookie: bool,
    },
    /// Another PE serves the session (RSPLIB's `RSERPOOL_FAILOVER_COMPLETE`); the cookie, if
    /// any, went to it.
    FailoverComplete {
        /// The new PE.
        pe: PoolElementId,
        /// A cookie was echoed to it.
        has_cookie: bool,
    },
    /// No PE of the pool could be reached (RSPLIB's `ENOENT`).
    NoPoolElement {
        /// Why the last handle resolution failed, if it did.
        error: Option<ClientError>,
    },
    /// The PE started a graceful shutdown of the association (RSPLIB's
    /// `RSERPOOL_SHUTDOWN_EVENT`); it is lost when the shutdown completes.
    PeerShutdown,
}

/// Why the session refused to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The PE is lost and the application has not failed over yet (RSPLIB: `EIO`).
    #[error("the pool element is lost: fail over first")]
    FailoverNecessary,
    /// A connect is in progress and the queue for it is full.
    #[error("a failover is in progress and its queue is full")]
    QueueFull,
    /// The session was closed.
    #[error("the session is closed")]
    Closed,
    /// PPID 11 is the session layer's own (ASAP).
    #[error("PPID 11 (ASAP) is reserved for the session layer")]
    ReservedPpid,
    /// The session was never connected.
    #[error("the session is not connected")]
    NotConnected,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Not connected yet.
    Idle,
    /// Waiting for a handle resolution.
    Resolving,
    /// Opening an association to `pe`.
    Connecting {
        association: AssociationId,
        pe: PoolElementId,
        deadline: Instant,
    },
    /// Talking to `pe`.
    Up {
        association: AssociationId,
        pe: PoolElementId,
    },
    /// The PE is lost; waiting for the application to fail over.
    Failed,
    /// Automatic mode: resolving again at `at`.
    Retrying { at: Instant },
    /// Closed by the application.
    Closed,
}

/// Counters of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Failovers completed.
    pub failovers: u64,
    /// Associations that could not be opened.
    pub connect_failures: u64,
    /// Cookies received.
    pub cookies: u64,
    /// Cookie Echoes sent.
    pub cookie_echoes: u64,
    /// ASAP messages on the session that could not be decoded or are not the session's.
    pub bad_control_messages: u64,
}

/// A pool user's session. See the [module documentation](self).
pub struct PoolUserSession {
    pool: PoolHandle,
    config: SessionConfig,
    state: State,
    /// Connected once: later connects are failovers.
    connected_once: bool,
    cookie: Option<Bytes>,
    /// The PE's Business Card: the failover order it recommends.
    preferred: Vec<PoolElement>,
    /// Candidates of the current round, in order.
    candidates: VecDeque<PoolElement>,
    /// PEs that failed in this round.
    tried: Vec<PoolElementId>,
    /// The PE to report when the next failover starts (it failed).
    to_report: Option<PoolElementId>,
    queue: VecDeque<(SendInfo, Bytes)>,
    queued_bytes: usize,
    next_assoc: u64,
    outputs: VecDeque<SessionOutput>,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
}

impl PoolUserSession {
    /// A session to `pool`, not connected yet.
    pub fn new(pool: PoolHandle, config: SessionConfig) -> Self {
        Self {
            pool,
            config,
            state: State::Idle,
            connected_once: false,
            cookie: None,
            preferred: Vec::new(),
            candidates: VecDeque::new(),
            tried: Vec::new(),
            to_report: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_assoc: 1,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// The pool handle.
    pub fn pool_handle(&self) -> &PoolHandle {
        &self.pool
    }

    /// The PE serving the session, while one does.
    pub fn pool_element(&self) -> Option<PoolElementId> {
        match self.state {
            State::Up { pe, .. } => Some(pe),
            _ => None,
        }
    }

    /// The association to the serving PE, while one is up.
    pub fn association(&self) -> Option<AssociationId> {
        match self.state {
            State::Up { association, .. } => Some(association),
            _ => None,
        }
    }

    /// Whether a cookie is held (RSPLIB's `rsp_has_cookie`).
    pub fn has_cookie(&self) -> bool {
        self.cookie.is_some()
    }

    /// The newest cookie.
    pub fn cookie(&self) -> Option<&Bytes> {
        self.cookie.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Starts the session: resolves the pool and connects to its first reachable PE.
    pub fn connect(&mut self, now: Instant) {
        if self.state == State::Idle {
            self.start_round(now);
        }
    }

    /// Fails over now (RSPLIB's `rsp_forcefailover`): gives up the current PE (reported
    /// unreachable if `report_unreachable`, or if it had failed), resolves the pool and
    /// connects to another PE.
    pub fn force_failover(&mut self, now: Instant, report_unreachable: bool) {
        match self.state.clone() {
            State::Closed | State::Idle => return,
            State::Up { association, pe }
            | State::Connecting {
                association, pe, ..
            } => {
                self.outputs.push_back(SessionOutput::Abort { association });
                // A PE reported unreachable is not tried again in this round; one given up
                // without a report may be chosen again.
                self.tried.clear();
                if report_unreachable {
                    self.to_report = Some(pe);
                    self.tried.push(pe);
                }
            }
            // The lost PE is in `tried` (and reported, unless it shut down gracefully).
            State::Failed => {
                if report_unreachable && self.to_report.is_none() {
                    self.to_report = self.tried.first().copied();
                }
            }
            State::Resolving | State::Retrying { .. } => {}
        }
        self.start_round(now);
    }

    /// Sends an application message: at once while a PE serves the session, after the
    /// connect while one is in progress.
    pub fn send(&mut self, now: Instant, info: SendInfo, data: Bytes) -> Result<(), SessionError> {
        let _ = now;
        if info.ppid == PPID_ASAP {
            return Err(SessionError::ReservedPpid);
        }
        match self.state {
            State::Up { association, .. } => {
                self.outputs.push_back(SessionOutput::Send {
                    association,
                    info,
                    data,
                });
                Ok(())
            }
            State::Closed => Err(SessionError::Closed),
            State::Idle => Err(SessionError::NotConnected),
            State::Failed => Err(SessionError::FailoverNecessary),
            State::Resolving | State::Connecting { .. } | State::Retrying { .. } => {
                if self.queued_bytes + data.len() > self.config.queue_limit {
                    return Err(SessionError::QueueFull);
                }
                self.queued_bytes += data.len();
                self.queue.push_back((info, data));
                Ok(())
            }
        }
    }

    /// Closes the session: the association is shut down gracefully.
    pub fn close(&mut self) {
        match self.state {
            State::Up { association, .. } => self
                .outputs
                .push_back(SessionOutput::Shutdown { association }),
            State::Connecting { association, .. } => {
                self.outputs.push_back(SessionOutput::Abort { association })
            }
            _ => {}
        }
        self.state = State::Closed;
        self.queue.clear();
        self.queued_bytes = 0;
    }

    /// The answer to [`SessionOutput::Resolve`]: the pool's PEs in the order to try them.
    pub fn resolved(&mut self, now: Instant, result: Result<Vec<PoolElement>, ClientError>) {
        if self.state != State::Resolving {
            return;
        }
        let (pes, error) = match result {
            Ok(p) => (p, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        // The Business Card's order first (RFC 5352 §3.9 BC2), then the resolution's.
        self.candidates.clear();
        for pe in self.preferred.iter().chain(pes.iter()) {
            if !self.tried.contains(&pe.id) && !self.candidates.iter().any(|c| c.id == pe.id) {
                self.candidates.push_back(pe.clone());
            }
        }
        if self.candidates.is_empty() {
            return self.round_failed(now, error);
        }
        self.try_next(now);
    }

    /// The association the session asked for is up.
    pub fn association_up(&mut self, now: Instant, association: AssociationId) {
        let _ = now;
        let State::Connecting {
            association: a, pe, ..
        } = self.state
        else {
            return;
        };
        if a != association {
            return;
        }
        self.state = State::Up { association, pe };
        self.tried.clear();
        self.candidates.clear();
        // RFC 5352 §3.8: the latest cookie, as the first message on the control channel.
        let echoed = match &self.cookie {
            Some(c) if self.connected_once => {
                let msg = AsapMessage::CookieEcho(Cookie { cookie: c.to_vec() });
                match msg.to_bytes() {
                    Ok(b) => {
                        self.outputs.push_back(SessionOutput::Send {
                            association,
                            info: SendInfo {
                                ppid: PPID_ASAP,
                                ..SendInfo::default()
                            },
                            data: b.into(),
                        });
                        self.stats.cookie_echoes += 1;
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        };
        for (info, data) in self.queue.drain(..) {
            self.outputs.push_back(SessionOutput::Send {
                association,
                info,
                data,
            });
        }
        self.queued_bytes = 0;
        if self.connected_once {
            self.stats.failovers += 1;
            self.events.push_back(SessionEvent::FailoverComplete {
                pe,
                has_cookie: echoed,
            });
        } else {
            self.connected_once = true;
            self.events.push_back(SessionEvent::Connected { pe });
        }
    }

    /// The association the session asked for could not be opened.
    pub fn association_failed(&mut self, now: Instant, association: AssociationId) {
        if let State::Connecting {
            association: a, pe, ..
        } = self.state
        {
            if a == association {
                self.connect_failed(now, pe);
            }
        }
    }

    /// The association ended: lost, or shut down by the PE (`graceful`).
    pub fn association_lost(&mut self, now: Instant, association: AssociationId, graceful: bool) {
        match self.state {
            State::Up {
                association: a, pe, ..
            } if a == association => {
                debug!(pool = %self.pool, pe = pe.0, graceful, "session lost its pool element");
                if !graceful {
                    self.to_report = Some(pe);
                }
                self.tried = vec![pe];
                self.events.push_back(SessionEvent::FailoverNecessary {
                    has_cookie: self.cookie.is_some(),
                });
                if self.config.automatic_failover {
                    self.start_round(now);
                } else {
                    self.state = State::Failed;
                }
            }
            State::Connecting {
                association: a, pe, ..
            } if a == association => self.connect_failed(now, pe),
            _ => {}
        }
    }

    /// The PE started a graceful shutdown of the session's association.
    pub fn peer_shutdown(&mut self, association: AssociationId) {
        if self.association() == Some(association) {
            self.events.push_back(SessionEvent::PeerShutdown);
        }
    }

    /// A message arrived on an association of the session.
    pub fn message(
        &mut self,
        now: Instant,
        association: AssociationId,
        info: SendInfo,
        data: Bytes,
    ) {
        let _ = now;
        if self.association() != Some(association) {
            return;
        }
        if info.ppid != PPID_ASAP {
            self.events.push_back(SessionEvent::Message { info, data });
            return;
        }
        match AsapMessage::decode(&data) {
            Ok(AsapMessage::Cookie(c)) => {
                self.stats.cookies += 1;
                self.cookie = Some(Bytes::from(c.cookie));
            }
            Ok(AsapMessage::BusinessCard(b)) if b.pool_handle == self.pool => {
                self.preferred = b.elements;
            }
            Ok(other) => {
                self.stats.bad_control_messages += 1;
                debug!(
                    message = other.name(),
                    "ignoring an ASAP message on a session"
                );
            }
            Err(e) => {
                self.stats.bad_control_messages += 1;
                debug!(error = %e, "undecodable ASAP message on a session");
            }
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Connecting { deadline, .. } => Some(deadline),
            State::Retrying { at } => Some(at),
            _ => None,
        }
    }

    /// The timer fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Connecting {
                association,
                pe,
                deadline,
            } if deadline <= now => {
                self.outputs.push_back(SessionOutput::Abort { association });
                self.connect_failed(now, pe);
            }
            State::Retrying { at } if at <= now => {
                self.tried.clear();
                self.start_round(now);
            }
            _ => {}
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.outputs.pop_front()
    }

    /// The next thing to tell the application.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    // ---------------------------------------------------------------------------------------

    /// A round: report the failed PE, resolve, then try the PEs in order.
    fn start_round(&mut self, _now: Instant) {
        if let Some(pe) = self.to_report.take() {
            self.outputs
                .push_back(SessionOutput::ReportUnreachable { pe });
        }
        self.state = State::Resolving;
        self.outputs.push_back(SessionOutput::Resolve);
    }

    fn try_next(&mut self, now: Instant) {
        while let Some(pe) = self.candidates.pop_front() {
            let Some((addresses, port)) = sctp_endpoint(&pe) else {
                self.tried.push(pe.id);
                continue;
            };
            let association = AssociationId(self.next_assoc);
            self.next_assoc += 1;
            self.state = State::Connecting {
                association,
                pe: pe.id,
                deadline: now + self.config.connect_timeout,
            };
            self.outputs.push_back(SessionOutput::Connect {
                association,
                addresses,
                port,
            });
            return;
        }
        // Every candidate of the resolution failed: resolve again, for PEs not tried yet.
        self.start_round(now);
    }

    fn connect_failed(&mut self, now: Instant, pe: PoolElementId) {
        self.stats.connect_failures += 1;
        self.tried.push(pe);
        self.preferred.retain(|p| p.id != pe);
        self.outputs
            .push_back(SessionOutput::ReportUnreachable { pe });
        if self.candidates.is_empty() {
            self.start_round(now);
        } else {
            self.try_next(now);
        }
    }

    fn round_failed(&mut self, now: Instant, error: Option<ClientError>) {
        self.tried.clear();
        self.events.push_back(SessionEvent::NoPoolElement { error });
        if self.config.automatic_failover {
            self.state = State::Retrying {
                at: now + self.config.retry_delay,
            };
        } else {
            self.state = State::Failed;
            self.queue.clear();
            self.queued_bytes = 0;
        }
    }
}

/// Where a PE takes associations: the addresses and port of its SCTP user transport.
fn sctp_endpoint(pe: &PoolElement) -> Option<(Vec<IpAddr>, u16)> {
    match &pe.user_transport {
        Transport::Sctp(s) if s.port != 0 && !s.addresses.is_empty() => {
            Some((s.addresses.clone(), s.port))
        }
        _ => None,
    }
}
