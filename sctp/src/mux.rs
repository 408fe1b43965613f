//! Host port sharing: several processes of one host behind RFC 6951's one well-known UDP port.
//!
//! # The problem
//!
//! RFC 6951 gives each host one well-known UDP encapsulation port, 9899. A Linux kernel SCTP
//! peer (and RSPLIB on it) sends the INIT of every association it starts to UDP port 9899 of the
//! destination host (`net.sctp.encap_port`), whatever the SCTP destination port. But several
//! processes of one host may serve SCTP (a registrar on SCTP port 3863, pool elements on ports
//! of their own, pool users), and only one of them can bind UDP 9899.
//!
//! # The scheme
//!
//! Every process of the host calls [`SctpEndpoint::bind_shared`] with the same address (the
//! host's IP or the wildcard, and the well-known port):
//!
//! * **Who binds what.** The first process that binds the well-known UDP port is the **front**.
//!   The others bind an ephemeral UDP port on the same IP (their **own port**) and are
//!   **members**. The front sends its own traffic from the well-known port; a member sends all
//!   of its traffic from its own port. Nothing is relayed outwards.
//! * **Registration.** A member registers every SCTP port it uses with the front, over loopback
//!   (to `127.0.0.1:well-known`, `[::1]` for an IPv6 wildcard, or the bound IP itself): its
//!   listening ports ([`SctpEndpoint::listen`] waits for the front's answer and fails with
//!   [`ListenError::InUse`] when the port is taken, by the front or by another member) and the
//!   local ports of the associations it starts. Registrations are soft state: refreshed every
//!   [`ShareConfig::refresh`] (1 s), dropped by the front after [`ShareConfig::expire_after`]
//!   (3 s) without a refresh, withdrawn when the listener or association goes away and when the
//!   endpoint closes. The front refuses ports it serves itself (a listener or one of its
//!   associations), and its own [`SctpEndpoint::listen`] fails on a port a member holds.
//! * **Forwarding.** The front receives every datagram sent to the well-known port. A datagram
//!   whose SCTP destination port the front serves is processed by its own endpoint; one for a
//!   port a member registered is forwarded to that member over loopback, wrapped with its
//!   original source address and UDP port; anything else gets the front's normal
//!   out-of-the-blue handling (an ABORT for an INIT to a port nobody serves).
//! * **How a peer finds a member's UDP port.** The peer (a kernel SCTP stack, an RSPLIB pool
//!   user, a plain [`SctpEndpoint::bind`] endpoint) only knows the host's well-known port and
//!   sends its INIT there. The front forwards it; the member answers (INIT ACK) from its own
//!   port. Linux (5.11+) learns the peer's UDP encapsulation port from every packet that passes
//!   the verification tag check, and so does this crate (per peer address), so from the INIT
//!   ACK on, the peer sends the rest of the association straight to the member's own port: the
//!   front forwards one datagram per association, plus stray packets sent to the well-known port
//!   (e.g. to a peer address it has not heard from yet). Associations a member starts begin at
//!   its own port, and the peer answers there.
//! * **Takeover.** When the front exits cleanly it sends GOODBYE to its members; when it
//!   vanishes, their refreshes go unanswered. After a GOODBYE, or after
//!   [`ShareConfig::takeover_after`] (2.5 s) without an answer, the members race to bind the
//!   well-known port. The kernel lets exactly one win: it becomes the front (it keeps its old
//!   own port open for the peers that know it, and sends from the well-known port from then on);
//!   the others register again with it. For [`ShareConfig::expire_after`] after a takeover the
//!   new front drops (instead of answering with an ABORT) datagrams for ports nobody has
//!   registered yet, so that peers retransmit until every member has registered again.
//!   Established associations keep working throughout: each process keeps sending from its own
//!   socket, and the peer follows the port it last heard from.
//!
//! Only datagrams from a local source (a loopback address or the bound IP) are accepted as
//! control messages at the front, and only from a local source *and* the well-known port as
//! control or forwarded datagrams at a member; anything malformed or forged is dropped and
//! counted ([`ShareStats::dropped`]).
//!
//! # Wire format
//!
//! Every control and forwarded message starts with an 8-byte header; integers are big-endian.
//!
//! ```text
//!  0      4        5      6        8
//!  +------+--------+------+--------+----------------
//!  | magic| version| type |reserved| body
//!  +------+--------+------+--------+----------------
//!  magic    00 00 52 48 ("\0\0RH"). An SCTP packet starts with its source port, which is never
//!           0, so no SCTP packet can be mistaken for one of these.
//!  version  1
//!  reserved 0 when sent, ignored when received
//!
//!  type 1 REGISTER  member -> front   u32 sequence, then N x u16 SCTP port (at most 8192)
//!  type 2 ACK       front -> member   u32 sequence (the REGISTER's), then N x
//!                                     (u16 port, u8 result, u8 0); result 0 granted,
//!                                     1 held by the front, 2 held by another member, 3 invalid
//!  type 3 WITHDRAW  member -> front   N x u16 SCTP port
//!  type 4 LEAVE     member -> front   (empty) withdraw every port of the sender
//!  type 5 GOODBYE   front -> members  (empty) the front is exiting
//!  type 6 FORWARD   front -> member   u8 family (4 or 6), u8 0, u16 original UDP source
//!                                     port, 4 or 16 bytes original source IP, then the
//!                                     datagram as it arrived at the well-known port
//! ```
//!
//! A member is identified by the address its messages come from (loopback IP and own port).
//!
//! # Limits
//!
//! All sharing processes of a host must bind the same IP (or all the wildcard) and the same
//! well-known port. A program that binds the well-known port without taking part (a plain
//! [`SctpEndpoint::bind`], usrsctp, a kernel with `net.sctp.udp_port` set) leaves the members
//! without a front: their `listen` calls fail with [`ListenError::NoFront`]. A forwarded
//! datagram grows by 16 or 28 bytes, so one within that much of the 64 KiB UDP limit cannot be
//! forwarded (SCTP packets are sized to the path MTU, far below). Between a front's death and
//! the takeover (up to [`ShareConfig::takeover_after`] plus a refresh), nobody receives what is
//! sent to the well-known port: peers retransmit.
//!
//! [`SctpEndpoint::bind_shared`]: crate::SctpEndpoint::bind_shared
//! [`SctpEndpoint::bind`]: crate::SctpEndpoint::bind
//! [`SctpEndpoint::listen`]: crate::SctpEndpoint::listen

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{oneshot, watch};

/// Timers of host port sharing.
#[derive(Clone, Debug)]
pub struct ShareConfig {
    /// How often a member refreshes its registrations (default 1 s).
    pub refresh: Duration,
    /// How long the front keeps a registration without a refresh (default 3 s). Also the
    /// grace period of a new front after a takeover.
    pub expire_after: Duration,
    /// How long a member waits for an answer from the front before it tries to take over
    /// (default 2.5 s).
    pub takeover_after: Duration,
    /// How long [`SctpEndpoint::listen`](crate::SctpEndpoint::listen) in a member waits for a
    /// front's answer before failing with [`ListenError::NoFront`] (default 6 s: longer than a
    /// takeover).
    pub claim_timeout: Duration,
}

impl Default for ShareConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(1),
            expire_after: Duration::from_secs(3),
            takeover_after: Duration::from_millis(2500),
            claim_timeout: Duration::from_secs(6),
        }
    }
}

/// Counters of host port sharing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShareStats {
    /// As front: datagrams forwarded to members.
    pub forwarded: u64,
    /// As member: forwarded datagrams received from the front.
    pub forwarded_in: u64,
    /// Control messages received and accepted.
    pub control_in: u64,
    /// Control messages sent.
    pub control_out: u64,
    /// Malformed or forged control or forwarded datagrams, dropped.
    pub dropped: u64,
    /// As a new front, in the grace period after a takeover: datagrams for ports nobody had
    /// registered yet, dropped so that the peer retransmits.
    pub grace_dropped: u64,
    /// As front: registrations refused (port held by the front or another member).
    pub refused: u64,
    /// As member: refusals received for ports in use (other than those `listen` reported).
    pub refusals_received: u64,
    /// Registrations that expired at the front.
    pub expired: u64,
    /// Times this process took over as front.
    pub takeovers: u64,
    /// As front: SCTP ports currently registered by members.
    pub registrations: usize,
}

/// The role of a sharing endpoint, as [`SctpEndpoint::share_state`] publishes it.
///
/// [`SctpEndpoint::share_state`]: crate::SctpEndpoint::share_state
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareState {
    /// The host's well-known UDP port.
    pub well_known: u16,
    /// Whether this process is the front (holds the well-known port).
    pub front: bool,
    /// The UDP port this process sends its traffic from.
    pub udp_port: u16,
    /// The front, or a member whose every SCTP port the current front has granted (and which
    /// heard from it lately).
    pub registered: bool,
    /// Times this process took over as front.
    pub takeovers: u64,
}

/// Who holds an SCTP port that [`SctpEndpoint::listen`](crate::SctpEndpoint::listen) or
/// [`SctpEndpoint::connect_with`](crate::SctpEndpoint::connect_with) asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// The front process.
    Front,
    /// Another member process.
    OtherProcess,
    /// Nobody: the port number is not usable (0).
    Invalid,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Holder::Front => "the front process",
            Holder::OtherProcess => "another process",
            Holder::Invalid => "nobody (invalid port)",
        })
    }
}

/// Why [`SctpEndpoint::listen`](crate::SctpEndpoint::listen) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    /// SCTP port 0.
    #[error("cannot listen on SCTP port 0")]
    InvalidPort,
    /// This endpoint already listens on the port.
    #[error("already listening on SCTP port {0}")]
    AlreadyListening(u16),
    /// Another process sharing the host's well-known UDP port holds the SCTP port.
    #[error("SCTP port {port} is in use by {holder} sharing UDP port {well_known}")]
    InUse {
        /// The SCTP port.
        port: u16,
        /// The well-known UDP port shared.
        well_known: u16,
        /// Who holds it.
        holder: Holder,
    },
    /// No front answered (the well-known port is held by a program that does not share it).
    #[error(
        "no front answered on UDP port {0} (held by a program that does not share it, or by one bound to another address?)"
    )]
    NoFront(u16),
    /// The endpoint's driver stopped.
    #[error("endpoint closed")]
    EndpointClosed,
}

// ---------------------------------------------------------------------------------------------
// Wire format.

/// The first four bytes of every control and forwarded message.
pub(crate) const MAGIC: [u8; 4] = [0, 0, b'R', b'H'];
const VERSION: u8 = 1;
const HEADER: usize = 8;
/// Most ports in one REGISTER or WITHDRAW.
pub(crate) const MAX_PORTS: usize = 8192;

const T_REGISTER: u8 = 1;
const T_ACK: u8 = 2;
const T_WITHDRAW: u8 = 3;
const T_LEAVE: u8 = 4;
const T_GOODBYE: u8 = 5;
const T_FORWARD: u8 = 6;

/// Result of one port in an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    Granted,
    HeldByFront,
    HeldByOther,
    Invalid,
}

impl Grant {
    fn code(self) -> u8 {
        match self {
            Grant::Granted => 0,
            Grant::HeldByFront => 1,
            Grant::HeldByOther => 2,
            Grant::Invalid => 3,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Grant::Granted,
            1 => Grant::HeldByFront,
            2 => Grant::HeldByOther,
            3 => Grant::Invalid,
            _ => return None,
        })
    }

    fn holder(self) -> Holder {
        match self {
            Grant::HeldByFront => Holder::Front,
            Grant::HeldByOther => Holder::OtherProcess,
            Grant::Granted | Grant::Invalid => Holder::Invalid,
        }
    }
}

/// A control or forwarded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg<'a> {
    Register {
        seq: u32,
        ports: Vec<u16>,
    },
    Ack {
        seq: u32,
        results: Vec<(u16, Grant)>,
    },
    Withdraw {
        ports: Vec<u16>,
    },
    Leave,
    Goodbye,
    Forward {
        from: SocketAddr,
        datagram: &'a [u8],
    },
}

/// Whether a datagram is a control or forwarded message (not an SCTP packet).
pub(crate) fn is_control(d: &[u8]) -> bool {
    d.len() >= 4 && d[..4] == MAGIC
}

fn header(b: &mut BytesMut, t: u8) {
    b.put_slice(&MAGIC);
    b.put_u8(VERSION);
    b.put_u8(t);
    b.put_u16(0);
}

impl Msg<'_> {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        match self {
            Msg::Register { seq, ports } => {
                header(&mut b, T_REGISTER);
                b.put_u32(*seq);
                for p in ports {
                    b.put_u16(*p);
                }
            }
            Msg::Ack { seq, results } => {
                header(&mut b, T_ACK);
                b.put_u32(*seq);
                for (p, g) in results {
                    b.put_u16(*p);
                    b.put_u8(g.code());
                    b.put_u8(0);
                }
            }
            Msg::Withdraw { ports } => {
                header(&mut b, T_WITHDRAW);
                for p in ports {
                    b.put_u16(*p);
                }
            }
            Msg::Leave => header(&mut b, T_LEAVE),
            Msg::Goodbye => header(&mut b, T_GOODBYE),
            Msg::Forward { from, datagram } => {
                header(&mut b, T_FORWARD);
                match from.ip() {
                    IpAddr::V4(ip) => {
                        b.put_u8(4);
                        b.put_u8(0);
                        b.put_u16(from.port());
                        b.put_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        b.put_u8(6);
                        b.put_u8(0);
                        b.put_u16(from.port());
                        b.put_slice(&ip.octets());
                    }
                }
                b.put_slice(datagram);
            }
        }
        b.freeze()
    }

    /// Parses a message; `None` for anything malformed. Never panics.
    pub(crate) fn decode(d: &[u8]) -> Option<Msg<'_>> {
        if d.len() < HEADER || d[..4] != MAGIC || d[4] != VERSION {
            return None;
        }
        let body = &d[HEADER..];
        let ports = |b: &[u8]| -> Option<Vec<u16>> {
            if b.len() % 2 != 0 || b.len() / 2 > MAX_PORTS {
                return None;
            }
            Some(
                b.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            )
        };
        let seq =
            |b: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)) };
        Some(match d[5] {
            T_REGISTER => Msg::Register {
                seq: seq(body)?,
                ports: ports(&body[4..])?,
            },
            T_ACK => {
                let s = seq(body)?;
                let rest = &body[4..];
                if rest.len() % 4 != 0 || rest.len() / 4 > MAX_PORTS {
                    return None;
                }
                let mut results = Vec::with_capacity(rest.len() / 4);
                for c in rest.chunks_exact(4) {
                    results.push((u16::from_be_bytes([c[0], c[1]]), Grant::from_code(c[2])?));
                }
                Msg::Ack { seq: s, results }
            }
            T_WITHDRAW => Msg::Withdraw {
                ports: ports(body)?,
            },
            T_LEAVE if body.is_empty() => Msg::Leave,
            T_GOODBYE if body.is_empty() => Msg::Goodbye,
            T_FORWARD => {
                let (&family, rest) = body.split_first()?;
                let port = u16::from_be_bytes(rest.get(1..3)?.try_into().ok()?);
                let rest = &rest[3..];
                let (ip, datagram) = match family {
                    4 => {
                        let o: [u8; 4] = rest.get(..4)?.try_into().ok()?;
                        (IpAddr::V4(Ipv4Addr::from(o)), &rest[4..])
                    }
                    6 => {
                        let o: [u8; 16] = rest.get(..16)?.try_into().ok()?;
                        (IpAddr::V6(Ipv6Addr::from(o)), &rest[16..])
                    }
                    _ => return None,
                };
                if port == 0 || ip.is_unspecified() || datagram.is_empty() {
                    return None;
                }
                Msg::Forward {
                    from: SocketAddr::new(ip, port),
                    datagram,
                }
            }
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The state machine (sans-IO: the driver feeds it datagrams and time, and sends what it queues).

/// Where a datagram that arrived at the front's well-known port goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// To this process's endpoint.
    Local,
    /// Wrapped, to a member.
    Forward(SocketAddr),
    /// Nowhere (grace period after a takeover).
    Drop,
}

/// The outcome of asking for an SCTP port.
pub(crate) enum Claim {
    /// The port is this process's (one more reference taken).
    Granted,
    /// Held by someone else.
    Refused(Holder),
    /// Asked the front; the answer comes on the channel (a reference is held meanwhile).
    Pending(oneshot::Receiver<Result<(), Holder>>),
}

/// One SCTP port of this process.
struct OwnPort {
    /// Listeners, associations and pending claims using it.
    refs: usize,
    /// The last answer of a front (`None`: none yet since the front changed).
    grant: Option<Grant>,
    /// `listen` calls waiting for the answer.
    waiters: Vec<oneshot::Sender<Result<(), Holder>>>,
}

/// Waiting claims still holding their reference (one that timed out or was cancelled
/// released it already).
fn live_waiters(w: &[oneshot::Sender<Result<(), Holder>>]) -> usize {
    w.iter().filter(|w| !w.is_closed()).count()
}

/// A member's registration at the front.
struct Reg {
    owner: SocketAddr,
    expires: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Front,
    Member,
}

/// The host-sharing state of one endpoint.
pub(crate) struct Share {
    cfg: ShareConfig,
    well_known: u16,
    /// Where control messages to the front go.
    front_addr: SocketAddr,
    /// The IP the endpoint bound (unspecified: the wildcard).
    bound_ip: IpAddr,
    role: Role,
    udp_port: u16,
    ports: HashMap<u16, OwnPort>,
    rng: StdRng,
    /// Messages to send, from the endpoint's primary socket.
    pub(crate) out: Vec<(SocketAddr, Bytes)>,
    pub(crate) stats: ShareStats,
    state_tx: watch::Sender<ShareState>,
    /// The endpoint is closing: no more control traffic.
    left: bool,
    next_tick: Instant,
    // Front.
    registry: HashMap<u16, Reg>,
    members: HashMap<SocketAddr, Instant>,
    grace_until: Option<Instant>,
    // Member.
    seq: u32,
    /// Since when a REGISTER waits for an answer (none: the last one was answered).
    unanswered_since: Option<Instant>,
    /// When the front said GOODBYE.
    goodbye_at: Option<Instant>,
    next_refresh: Instant,
    next_bind: Instant,
    warned_silent: bool,
    /// A front answered, and has not been lost since.
    acked: bool,
    /// Something changed that [`Share::publish`] reports.
    dirty: bool,
}

impl Share {
    /// `front`: whether the well-known port was bound; `udp_port`: the port own traffic goes
    /// out from.
    pub(crate) fn new(
        cfg: ShareConfig,
        bound: SocketAddr,
        front: bool,
        udp_port: u16,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        let well_known = bound.port();
        let ip = match bound.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let front_ip = match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let role = if front { Role::Front } else { Role::Member };
        let (state_tx, _) = watch::channel(ShareState {
            well_known,
            front,
            udp_port,
            registered: front,
            takeovers: 0,
        });
        Self {
            cfg,
            well_known,
            front_addr: SocketAddr::new(front_ip, well_known),
            bound_ip: ip,
            role,
            udp_port,
            ports: HashMap::new(),
            rng: StdRng::from_seed(seed),
            out: Vec::new(),
            stats: ShareStats::default(),
            state_tx,
            left: false,
            next_tick: now,
            registry: HashMap::new(),
            members: HashMap::new(),
            grace_until: None,
            seq: 0,
            unanswered_since: None,
            goodbye_at: None,
            next_refresh: now,
            next_bind: now,
            warned_silent: false,
            acked: false,
            dirty: true,
        }
    }

    pub(crate) fn is_front(&self) -> bool {
        self.role == Role::Front
    }

    pub(crate) fn well_known(&self) -> u16 {
        self.well_known
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ShareState> {
        self.state_tx.subscribe()
    }

    /// The address of the front's well-known port, for binding at a takeover.
    pub(crate) fn well_known_addr(&self, bound: SocketAddr) -> SocketAddr {
        SocketAddr::new(bound.ip(), self.well_known)
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || (!self.bound_ip.is_unspecified() && ip == self.bound_ip)
    }

    fn send(&mut self, to: SocketAddr, m: &Msg<'_>) {
        self.stats.control_out += 1;
        self.out.push((to, m.encode()));
    }

    /// Publishes the role and registration state for watchers, if it may have changed.
    pub(crate) fn publish(&mut self, now: Instant) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let registered = match self.role {
            Role::Front => true,
            Role::Member => {
                self.acked
                    && !self.front_lost(now)
                    && self.ports.values().all(|p| p.grant == Some(Grant::Granted))
            }
        };
        let s = ShareState {
            well_known: self.well_known,
            front: self.is_front(),
            udp_port: self.udp_port,
            registered,
            takeovers: self.stats.takeovers,
        };
        self.state_tx.send_if_modified(|cur| {
            if *cur != s {
                *cur = s;
                true
            } else {
                false
            }
        });
    }

    /// The counters.
    pub(crate) fn stats(&self, now: Instant) -> ShareStats {
        ShareStats {
            registrations: self.registry.values().filter(|r| r.expires > now).count(),
            ..self.stats.clone()
        }
    }

    /// The member holding a port at the front; an expired registration is removed (and
    /// counted) on the way.
    fn holder_at_front(&mut self, port: u16, now: Instant) -> Option<SocketAddr> {
        let r = self.registry.get(&port)?;
        if r.expires > now {
            return Some(r.owner);
        }
        tracing::info!(port, member = %r.owner, "registration expired");
        self.registry.remove(&port);
        self.stats.expired += 1;
        None
    }

    // ---- Own ports ------------------------------------------------------------------------

    /// How long a pending claim may wait: a member waits for a front's answer
    /// ([`ShareConfig::claim_timeout`]); a new front until the end of its grace period.
    pub(crate) fn claim_wait(&self, now: Instant) -> Duration {
        match (self.role, self.grace_until) {
            (Role::Front, Some(g)) => g.saturating_duration_since(now) + self.cfg.refresh,
            _ => self.cfg.claim_timeout,
        }
    }

    /// Asks for an SCTP port (listen, or connect from a given port).
    pub(crate) fn claim(&mut self, port: u16, now: Instant) -> Claim {
        self.dirty = true;
        if port == 0 {
            return Claim::Refused(Holder::Invalid);
        }
        let front = self.is_front();
        let in_grace = self.grace_until.is_some_and(|g| now < g);
        if front && self.holder_at_front(port, now).is_some() {
            return Claim::Refused(Holder::OtherProcess);
        }
        let p = self.ports.entry(port).or_insert(OwnPort {
            refs: 0,
            grant: if front && !in_grace {
                Some(Grant::Granted)
            } else {
                None
            },
            waiters: Vec::new(),
        });
        match p.grant {
            Some(Grant::Granted) => {
                p.refs += 1;
                Claim::Granted
            }
            Some(g) if p.refs > 0 => Claim::Refused(g.holder()),
            _ => {
                // A member asks the front; a new front in its grace period waits until the
                // members had the time to register again.
                p.refs += 1;
                p.grant = None;
                let (tx, rx) = oneshot::channel();
                p.waiters.push(tx);
                if !front {
                    self.register_now(vec![port]);
                }
                Claim::Pending(rx)
            }
        }
    }

    /// Picks a free ephemeral SCTP port for an association this process starts, and takes it
    /// (a member registers it without waiting for the answer).
    pub(crate) fn take_ephemeral(&mut self, now: Instant) -> u16 {
        self.dirty = true;
        const RANGE: std::ops::RangeInclusive<u16> = 49152..=65535;
        let free =
            |s: &mut Self, p: u16| !s.ports.contains_key(&p) && s.holder_at_front(p, now).is_none();
        let mut port = None;
        for _ in 0..4096 {
            let p = self.rng.random_range(RANGE);
            if free(self, p) {
                port = Some(p);
                break;
            }
        }
        // Crowded: scan; if every port is taken, share one (the endpoint tells associations
        // apart by the peer too).
        let port = port
            .or_else(|| RANGE.into_iter().find(|&p| free(self, p)))
            .unwrap_or_else(|| self.rng.random_range(RANGE));
        if let Some(p) = self.ports.get_mut(&port) {
            p.refs += 1;
            return port;
        }
        let front = self.is_front();
        self.ports.insert(
            port,
            OwnPort {
                refs: 1,
                grant: front.then_some(Grant::Granted),
                waiters: Vec::new(),
            },
        );
        if !front {
            self.register_now(vec![port]);
        }
        port
    }

    /// One more user of a port this process has.
    pub(crate) fn retain(&mut self, port: u16) {
        if let Some(p) = self.ports.get_mut(&port) {
            p.refs += 1;
        }
    }

    /// One user less; the last one withdraws the port.
    pub(crate) fn release(&mut self, port: u16) {
        self.dirty = true;
        let Some(p) = self.ports.get_mut(&port) else {
            return;
        };
        p.refs = p.refs.saturating_sub(1);
        if p.refs == 0 {
            self.ports.remove(&port);
            if self.role == Role::Member && !self.left {
                let to = self.front_addr;
                self.send(to, &Msg::Withdraw { ports: vec![port] });
            }
        }
    }

    fn register_now(&mut self, ports: Vec<u16>) {
        if self.left {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let to = self.front_addr;
        for chunk in ports.chunks(MAX_PORTS) {
            self.send(
                to,
                &Msg::Register {
                    seq,
                    ports: chunk.to_vec(),
                },
            );
        }
        if ports.is_empty() {
            self.send(
                to,
                &Msg::Register {
                    seq,
                    ports: Vec::new(),
                },
            );
        }
        self.unanswered_since.get_or_insert(Instant::now());
    }

    fn register_all(&mut self) {
        let ports: Vec<u16> = self.ports.keys().copied().collect();
        self.register_now(ports);
    }

    // ---- Datagrams ----------------------------------------------------------------------

    /// Where a datagram that arrived at the well-known port (as front) goes.
    pub(crate) fn route(&mut self, now: Instant, datagram: &[u8]) -> Route {
        if datagram.len() < 12 || self.left {
            return Route::Local;
        }
        let dst_port = u16::from_be_bytes([datagram[2], datagram[3]]);
        if let Some(owner) = self.holder_at_front(dst_port, now) {
            self.stats.forwarded += 1;
            return Route::Forward(owner);
        }
        if self.ports.contains_key(&dst_port) {
            return Route::Local;
        }
        if self.grace_until.is_some_and(|g| now < g) {
            self.stats.grace_dropped += 1;
            return Route::Drop;
        }
        Route::Local
    }

    /// Queues a datagram for a member.
    pub(crate) fn forward(&mut self, to: SocketAddr, from: SocketAddr, datagram: &[u8]) {
        self.out
            .push((to, Msg::Forward { from, datagram }.encode()));
    }

    /// A control message that arrived at the well-known port (as front).
    pub(crate) fn on_front_control(&mut self, now: Instant, from: SocketAddr, d: &[u8]) {
        if self.left || !self.is_local(from.ip()) {
            self.stats.dropped += 1;
            return;
        }
        let msg = match Msg::decode(d) {
            Some(m @ (Msg::Register { .. } | Msg::Withdraw { .. } | Msg::Leave)) => m,
            _ => {
                self.stats.dropped += 1;
                return;
            }
        };
        self.stats.control_in += 1;
        match msg {
            Msg::Register { seq, ports } => {
                self.members.insert(from, now + self.cfg.expire_after);
                let in_grace = self.grace_until.is_some_and(|g| now < g);
                let mut results = Vec::with_capacity(ports.len());
                for port in ports {
                    let g = if port == 0 {
                        Grant::Invalid
                    } else if let Some(own) = self.ports.get_mut(&port) {
                        if own.grant.is_none() && in_grace {
                            // A new front's own claim, still pending, loses to a member that
                            // held the port before the takeover.
                            own.grant = Some(Grant::HeldByOther);
                            own.refs = own.refs.saturating_sub(live_waiters(&own.waiters));
                            for w in own.waiters.drain(..) {
                                let _ = w.send(Err(Holder::OtherProcess));
                            }
                            if own.refs == 0 {
                                self.ports.remove(&port);
                            }
                            self.registry.insert(
                                port,
                                Reg {
                                    owner: from,
                                    expires: now + self.cfg.expire_after,
                                },
                            );
                            Grant::Granted
                        } else {
                            Grant::HeldByFront
                        }
                    } else {
                        let _ = self.holder_at_front(port, now);
                        match self.registry.get_mut(&port) {
                            Some(r) if r.owner != from => Grant::HeldByOther,
                            Some(r) => {
                                r.owner = from;
                                r.expires = now + self.cfg.expire_after;
                                Grant::Granted
                            }
                            None => {
                                self.registry.insert(
                                    port,
                                    Reg {
                                        owner: from,
                                        expires: now + self.cfg.expire_after,
                                    },
                                );
                                tracing::debug!(port, member = %from, "registered SCTP port");
                                Grant::Granted
                            }
                        }
                    };
                    if matches!(g, Grant::HeldByFront | Grant::HeldByOther) {
                        self.stats.refused += 1;
                        tracing::info!(
                            port,
                            member = %from,
                            holder = %g.holder(),
                            "refused a registration: the SCTP port is in use"
                        );
                    }
                    results.push((port, g));
                }
                self.send(from, &Msg::Ack { seq, results });
            }
            Msg::Withdraw { ports } => {
                for port in ports {
                    if self.registry.get(&port).is_some_and(|r| r.owner == from) {
                        self.registry.remove(&port);
                        tracing::debug!(port, member = %from, "withdrawn SCTP port");
                    }
                }
            }
            Msg::Leave => {
                self.registry.retain(|_, r| r.owner != from);
                self.members.remove(&from);
                tracing::debug!(member = %from, "member left");
            }
            _ => {}
        }
    }

    /// A control or forwarded message that arrived at the endpoint's own port. Returns a
    /// forwarded datagram, for the endpoint.
    pub(crate) fn on_member_control<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        d: &'a [u8],
    ) -> Option<(SocketAddr, &'a [u8])> {
        if self.left || !self.is_local(from.ip()) || from.port() != self.well_known {
            self.stats.dropped += 1;
            return None;
        }
        let Some(msg) = Msg::decode(d) else {
            self.stats.dropped += 1;
            return None;
        };
        if !matches!(msg, Msg::Forward { .. }) {
            self.dirty = true;
        }
        match msg {
            Msg::Forward { from, datagram } => {
                self.stats.forwarded_in += 1;
                return Some((from, datagram));
            }
            // After a takeover, only forwards still in flight matter.
            _ if self.is_front() => return None,
            Msg::Ack { results, .. } => {
                self.stats.control_in += 1;
                if self.unanswered_since.is_some() || self.goodbye_at.is_some() {
                    if self.warned_silent || self.goodbye_at.is_some() {
                        tracing::info!(well_known = self.well_known, "a front answers again");
                    }
                    self.warned_silent = false;
                }
                self.unanswered_since = None;
                self.goodbye_at = None;
                self.acked = true;
                for (port, g) in results {
                    let Some(p) = self.ports.get_mut(&port) else {
                        continue;
                    };
                    let was = p.grant;
                    p.grant = Some(g);
                    if g == Grant::Granted {
                        for w in p.waiters.drain(..) {
                            let _ = w.send(Ok(()));
                        }
                        continue;
                    }
                    if !p.waiters.is_empty() {
                        // `listen` reports it; the claims' references go.
                        p.refs = p.refs.saturating_sub(live_waiters(&p.waiters));
                        for w in p.waiters.drain(..) {
                            let _ = w.send(Err(g.holder()));
                        }
                        if p.refs == 0 {
                            self.ports.remove(&port);
                        }
                    } else if was != Some(g) {
                        self.stats.refusals_received += 1;
                        tracing::warn!(
                            port,
                            holder = %g.holder(),
                            "the front refused an SCTP port this process uses: packets sent \
                             to the well-known port for it will not reach this process"
                        );
                    }
                }
            }
            Msg::Goodbye => {
                self.stats.control_in += 1;
                tracing::info!(
                    well_known = self.well_known,
                    "the front said goodbye: trying to take over"
                );
                self.goodbye_at = Some(now);
                self.acked = false;
                self.next_bind = now;
                self.next_tick = now;
                for p in self.ports.values_mut() {
                    p.grant = None;
                }
            }
            _ => self.stats.dropped += 1,
        }
        None
    }

    // ---- Time -------------------------------------------------------------------------

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (!self.left).then_some(self.next_tick)
    }

    /// Whether the front seems gone, so that binding the well-known port is worth a try.
    fn front_lost(&self, now: Instant) -> bool {
        self.goodbye_at.is_some()
            || self
                .unanswered_since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.takeover_after)
    }

    /// Timers: refreshes, expiry, end of the grace period. Returns whether the driver should
    /// try to bind the well-known port now.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.left || now < self.next_tick {
            return false;
        }
        self.dirty = true;
        match self.role {
            Role::Front => {
                let before = self.registry.len();
                self.registry.retain(|port, r| {
                    let keep = r.expires > now;
                    if !keep {
                        tracing::info!(port, member = %r.owner, "registration expired");
                    }
                    keep
                });
                self.stats.expired += (before - self.registry.len()) as u64;
                self.members.retain(|_, t| *t > now);
                if self.grace_until.is_some_and(|g| now >= g) {
                    self.grace_until = None;
                    for p in self.ports.values_mut() {
                        if p.grant.is_none() {
                            p.grant = Some(Grant::Granted);
                            for w in p.waiters.drain(..) {
                                let _ = w.send(Ok(()));
                            }
                        }
                    }
                }
                let step = (self.cfg.refresh / 2).max(Duration::from_millis(50));
                self.next_tick = match self.grace_until {
                    Some(g) => g.min(now + step),
                    None => now + step,
                };
                false
            }
            Role::Member => {
                if now >= self.next_refresh {
                    self.register_all();
                    self.next_refresh = now + self.cfg.refresh;
                }
                let lost = self.front_lost(now);
                if lost && self.goodbye_at.is_none() && !self.warned_silent {
                    self.warned_silent = true;
                    tracing::warn!(
                        well_known = self.well_known,
                        "the front does not answer: trying to take over"
                    );
                    for p in self.ports.values_mut() {
                        p.grant = None;
                    }
                }
                if lost {
                    self.acked = false;
                }
                // After a GOODBYE the front's socket closes soon: retry often for a while.
                if self
                    .goodbye_at
                    .is_some_and(|t| now.saturating_duration_since(t) > self.cfg.takeover_after)
                {
                    self.goodbye_at = None;
                }
                let bind = lost && now >= self.next_bind;
                if bind {
                    let step = if self.goodbye_at.is_some() {
                        Duration::from_millis(20 + self.rng.random_range(0..30))
                    } else {
                        self.cfg.refresh / 4
                    };
                    self.next_bind = now + step;
                }
                self.next_tick = self.next_refresh;
                if lost {
                    self.next_tick = self.next_tick.min(self.next_bind);
                } else if let Some(t) = self.unanswered_since {
                    self.next_tick = self.next_tick.min(t + self.cfg.takeover_after);
                }
                bind
            }
        }
    }

    /// This process bound the well-known port: it is the front now.
    pub(crate) fn took_over(&mut self, now: Instant, udp_port: u16) {
        self.dirty = true;
        self.role = Role::Front;
        self.udp_port = udp_port;
        self.stats.takeovers += 1;
        self.unanswered_since = None;
        self.goodbye_at = None;
        self.registry.clear();
        self.members.clear();
        self.grace_until = Some(now + self.cfg.expire_after);
        // Ports granted by the old front stay this process's; the members, which held theirs
        // from the same front, cannot hold them too.
        for p in self.ports.values_mut() {
            if p.grant.is_none() && p.waiters.is_empty() {
                p.grant = Some(Grant::Granted);
            }
        }
        self.next_tick = now;
        tracing::info!(
            well_known = self.well_known,
            "took over as the front for the host's well-known UDP port"
        );
    }

    /// Binding the well-known port failed: another process holds it. Register with it now.
    pub(crate) fn bind_failed(&mut self, now: Instant) {
        if self.is_front() {
            return;
        }
        let _ = now;
        self.register_all();
    }

    /// The endpoint closes: what to say, and to whom (sent at once by the caller).
    pub(crate) fn farewell(&mut self, now: Instant) -> Vec<(SocketAddr, Bytes)> {
        if self.left {
            return Vec::new();
        }
        self.left = true;
        for p in self.ports.values_mut() {
            p.waiters.clear();
        }
        match self.role {
            Role::Member => vec![(self.front_addr, Msg::Leave.encode())],
            Role::Front => {
                let mut to: Vec<SocketAddr> = self
                    .members
                    .iter()
                    .filter(|(_, t)| **t > now)
                    .map(|(a, _)| *a)
                    .collect();
                for r in self.registry.values() {
                    if r.expires > now && !to.contains(&r.owner) {
                        to.push(r.owner);
                    }
                }
                let bye = Msg::Goodbye.encode();
                to.into_iter().map(|a| (a, bye.clone())).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(m: Msg<'_>) {
        let b = m.encode();
        assert!(is_control(&b));
        assert_eq!(Msg::decode(&b), Some(m));
    }

    #[test]
    fn messages_round_trip() {
        roundtrip(Msg::Register {
            seq: 7,
            ports: vec![3863, 9901],
        });
        roundtrip(Msg::Register {
            seq: 0,
            ports: vec![],
        });
        roundtrip(Msg::Ack {
            seq: 9,
            results: vec![(1, Grant::Granted), (2, Grant::HeldByFront)],
        });
        roundtrip(Msg::Withdraw { ports: vec![5] });
        roundtrip(Msg::Leave);
        roundtrip(Msg::Goodbye);
        roundtrip(Msg::Forward {
            from: "198.18.0.2:9899".parse().unwrap(),
            datagram: b"0123456789abcdef",
        });
        roundtrip(Msg::Forward {
            from: "[2001:db8::1]:40000".parse().unwrap(),
            datagram: b"x",
        });
    }

    #[test]
    fn malformed_messages_are_rejected() {
        let ok = Msg::Forward {
            from: "127.0.0.1:1".parse().unwrap(),
            datagram: b"payload",
        }
        .encode();
        // Every truncation of the header and address fails; none panics.
        for n in 0..HEADER + 8 {
            assert_eq!(Msg::decode(&ok[..n]), None, "{n}");
        }
        let mut bad_version = ok.to_vec();
        bad_version[4] = 2;
        assert_eq!(Msg::decode(&bad_version), None);
        let mut bad_family = ok.to_vec();
        bad_family[8] = 5;
        assert_eq!(Msg::decode(&bad_family), None);
        let mut odd = Msg::Register {
            seq: 1,
            ports: vec![1],
        }
        .encode()
        .to_vec();
        odd.push(0);
        assert_eq!(Msg::decode(&odd), None);
        let mut bad_result = Msg::Ack {
            seq: 1,
            results: vec![(1, Grant::Granted)],
        }
        .encode()
        .to_vec();
        bad_result[14] = 9;
        assert_eq!(Msg::decode(&bad_result), None);
        let mut leave_with_body = Msg::Leave.encode().to_vec();
        leave_with_body.push(1);
        assert_eq!(Msg::decode(&leave_with_body), None);
        // An SCTP packet never looks like one (its source port is not 0).
        assert!(!is_control(&[0x26, 0xab, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64), t in 0u8..8) {
            let mut d = MAGIC.to_vec();
            d.extend([VERSION, t, 0, 0]);
            d.extend(tail);
            let _ = Msg::decode(&d);
        }
    }

    fn share(front: bool) -> Share {
        Share::new(
            ShareConfig::default(),
            "127.0.0.1:9899".parse().unwrap(),
            front,
            if front { 9899 } else { 40000 },
            [3; 32],
            Instant::now(),
        )
    }

    #[test]
    fn the_front_grants_refuses_forwards_and_expires() {
        let now = Instant::now();
        let mut f = share(true);
        assert!(matches!(f.claim(3863, now), Claim::Granted));
        let m1: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let m2: SocketAddr = "127.0.0.1:40002".parse().unwrap();
        let reg = |seq, ports: &[u16]| {
            Msg::Register {
                seq,
                ports: ports.to_vec(),
            }
            .encode()
        };
        f.on_front_control(now, m1, &reg(1, &[3863, 6003]));
        let (to, ack) = f.out.pop().unwrap();
        assert_eq!(to, m1);
        assert_eq!(
            Msg::decode(&ack),
            Some(Msg::Ack {
                seq: 1,
                results: vec![(3863, Grant::HeldByFront), (6003, Grant::Granted)]
            })
        );
        f.on_front_control(now, m2, &reg(1, &[6003]));
        let (_, ack) = f.out.pop().unwrap();
        assert_eq!(
            Msg::decode(&ack),
            Some(Msg::Ack {
                seq: 1,
                results: vec![(6003, Grant::HeldByOther)]
            })
        );
        assert!(matches!(
            f.claim(6003, now),
            Claim::Refused(Holder::OtherProcess)
        ));
        // Routing by SCTP destination port.
        let mut pkt = [0u8; 12];
        pkt[..2].copy_from_slice(&5000u16.to_be_bytes());
        pkt[2..4].copy_from_slice(&6003u16.to_be_bytes());
        assert_eq!(f.route(now, &pkt), Route::Forward(m1));
        pkt[2..4].copy_from_slice(&3863u16.to_be_bytes());
        assert_eq!(f.route(now, &pkt), Route::Local);
        // A remote source cannot register.
        f.on_front_control(now, "192.0.2.1:5".parse().unwrap(), &reg(2, &[7000]));
        assert_eq!(f.stats.dropped, 1);
        // Expiry.
        let later = now + Duration::from_secs(4);
        f.next_tick = later;
        f.handle_timeout(later);
        pkt[2..4].copy_from_slice(&6003u16.to_be_bytes());
        assert_eq!(f.route(later, &pkt), Route::Local);
        assert_eq!(f.stats.expired, 1);
    }

    #[test]
    fn a_member_accepts_control_only_from_the_front() {
        let now = Instant::now();
        let mut m = share(false);
        let fwd = Msg::Forward {
            from: "198.18.0.2:9899".parse().unwrap(),
            datagram: b"sctp",
        }
        .encode();
        assert!(
            m.on_member_control(now, "127.0.0.1:5555".parse().unwrap(), &fwd)
                .is_none()
        );
        assert!(
            m.on_member_control(now, "192.0.2.1:9899".parse().unwrap(), &fwd)
                .is_none()
        );
        assert_eq!(m.stats.dropped, 2);
        let (from, d) = m
            .on_member_control(now, "127.0.0.1:9899".parse().unwrap(), &fwd)
            .unwrap();
        assert_eq!(
            (from, d),
            ("198.18.0.2:9899".parse().unwrap(), &b"sctp"[..])
        );
    }
}
