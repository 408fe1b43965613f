//! An association: the state machine of RFC 9260 §4 with data transfer (§6), congestion control
//! (§7), fault management (§8) and termination (§9). Sans-IO: fed chunks and time, it queues
//! packets, events and deadlines.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, trace};

use crate::chunk::{
    Chunk, CommonHeader, DATA_HEADER_LEN, DataChunk, ErrorCause, Init, Packet, Sack, cause,
    param_type,
};
use crate::config::AssociationConfig;
use crate::path::{Path, PathInfo, PathState};
use crate::recv::{DataOutcome, Message, Receiver};

/// Association states (RFC 9260 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// INIT sent, waiting for INIT ACK.
    CookieWait,
    /// COOKIE ECHO sent, waiting for COOKIE ACK.
    CookieEchoed,
    /// Up.
    Established,
    /// The user asked for shutdown; sending what is queued.
    ShutdownPending,
    /// SHUTDOWN sent.
    ShutdownSent,
    /// SHUTDOWN received; sending what is queued.
    ShutdownReceived,
    /// SHUTDOWN ACK sent.
    ShutdownAckSent,
    /// Gone.
    Closed,
}

/// Why an association ended without a graceful shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The peer sent an ABORT, with these causes.
    PeerAbort(Vec<ErrorCause>),
    /// Association.Max.Retrans exceeded: the peer is unreachable (RFC 9260 §8.1).
    Unreachable,
    /// Max.Init.Retransmits exceeded: the handshake got no answer.
    InitTimeout,
    /// The peer broke the protocol; we aborted.
    ProtocolViolation(&'static str),
    /// The local user aborted.
    UserAbort,
    /// The peer refused the handshake with a Stale Cookie error twice.
    StaleCookie,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PeerAbort(c) if c.is_empty() => write!(f, "aborted by the peer"),
            Self::PeerAbort(c) => {
                write!(f, "aborted by the peer: {}", cause::name(c[0].code))?;
                if c[0].code == cause::USER_INITIATED_ABORT && !c[0].info.is_empty() {
                    write!(f, " ({})", String::from_utf8_lossy(&c[0].info))?;
                }
                Ok(())
            }
            Self::Unreachable => write!(f, "peer unreachable (Association.Max.Retrans exceeded)"),
            Self::InitTimeout => write!(
                f,
                "no answer to INIT / COOKIE ECHO (Max.Init.Retransmits exceeded)"
            ),
            Self::ProtocolViolation(w) => write!(f, "protocol violation: {w}"),
            Self::UserAbort => write!(f, "aborted locally"),
            Self::StaleCookie => write!(f, "the peer found our state cookie stale"),
        }
    }
}

/// What an association reports to its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The association is up (COMMUNICATION UP). `incoming` when the peer initiated it.
    Connected {
        /// Whether the peer initiated it.
        incoming: bool,
    },
    /// Messages are waiting: call `recv`.
    Readable,
    /// There is send-buffer space again after a `WouldBlock`.
    Writable,
    /// The peer restarted; the association carries on with fresh state (RESTART).
    Restarted,
    /// The peer started a graceful shutdown (SHUTDOWN EVENT): no new messages can be sent.
    PeerShutdown,
    /// Graceful shutdown finished (SHUTDOWN COMPLETE).
    Closed,
    /// The association is gone (COMMUNICATION LOST).
    Lost(LostReason),
    /// Messages that were never delivered (acknowledged) when the association ended.
    SendFailed(Vec<Message>),
    /// A message whose lifetime ran out before its first transmission: it was not sent and
    /// never will be (RFC 9260 §11.1.5, SEND's "life time").
    Expired(Message),
    /// A destination address changed state (NETWORK STATUS CHANGE).
    PathChanged {
        /// The peer address.
        address: IpAddr,
        /// Its new state.
        state: PathState,
    },
    /// The peer reported an error (ERROR chunk) that does not end the association.
    PeerError(ErrorCause),
}

/// Why `send` refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The send buffer is full; wait for `Event::Writable`.
    #[error("send buffer full")]
    WouldBlock,
    /// The association is not (or no longer) accepting messages.
    #[error("association is not established")]
    NotEstablished,
    /// The stream does not exist (negotiated outbound streams: 0..n).
    #[error("stream {0} does not exist")]
    InvalidStream(u16),
    /// Empty messages cannot be sent (RFC 9260 §6.2).
    #[error("empty message")]
    Empty,
    /// The message is larger than the send buffer.
    #[error("message of {0} bytes exceeds the send buffer")]
    TooLarge(usize),
    /// No such association.
    #[error("no such association")]
    UnknownAssociation,
}

/// A packet to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Peer IP and UDP port.
    pub destination: SocketAddr,
    /// The SCTP packet.
    pub payload: Bytes,
}

/// Serial-number "less than" for TSNs (RFC 9260 §1.6).
#[inline]
pub(crate) fn tsn_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn tsn_le(a: u32, b: u32) -> bool {
    a == b || tsn_lt(a, b)
}

/// Wire size of a DATA chunk, padding included (what cwnd and rwnd count).
#[inline]
fn chunk_size(payload: usize) -> usize {
    (DATA_HEADER_LEN + payload + 3) & !3
}

/// A fragment waiting for its first transmission. Its TSN and, for an ordered message, its
/// stream sequence number are assigned when it is first sent, so that a message whose lifetime
/// ends before then can be dropped without a gap in either (RFC 9260 §11.1.5, implementation
/// note).
struct Pending {
    stream: u16,
    ppid: u32,
    unordered: bool,
    begin: bool,
    end: bool,
    payload: Bytes,
    /// The message is not sent after this (its first fragment, once sent, commits it).
    expires: Option<Instant>,
}

/// A DATA chunk sent and not yet cumulatively acknowledged.
struct Sent {
    data: DataChunk,
    path: usize,
    sent_at: Instant,
    transmissions: u32,
    /// Acknowledged by a gap block.
    acked: bool,
    miss: u8,
    /// Marked for retransmission (T3 or fast retransmit).
    retransmit: bool,
    fast_retransmitted: bool,
    /// Counted in its path's flight and the outstanding bytes.
    in_flight: bool,
}

/// Where a control chunk goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest {
    /// The path data currently goes to.
    Current,
    /// A given path.
    Path(usize),
}

/// A tiny PRNG for jitter and heartbeat nonces (the endpoint's RNG seeds it).
#[derive(Clone, Copy)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Handshake and shutdown retransmission timer (T1-init, T1-cookie, T2-shutdown).
#[derive(Clone, Copy)]
struct RtxTimer {
    deadline: Instant,
    count: u32,
}

/// What the handshake needs to retransmit.
enum Handshake {
    Init(Init),
    CookieEcho(Bytes),
}

pub(crate) struct Association {
    pub state: State,
    pub cfg: AssociationConfig,
    pub local_port: u16,
    pub peer_port: u16,
    pub local_tag: u32,
    pub peer_tag: u32,
    /// Tie-tags of RFC 9260 §5.2.2, set while an INIT ACK to an unexpected INIT is outstanding.
    pub tie_tags: (u32, u32),
    pub paths: Vec<Path>,
    pub primary: usize,
    pub incoming: bool,
    jitter: Jitter,

    handshake: Option<Handshake>,
    /// The parameters an INIT ACK gave us, applied when the COOKIE ACK arrives.
    pending_establish: Option<Established>,
    t1: Option<RtxTimer>,
    t2: Option<RtxTimer>,
    t5: Option<Instant>,
    stale_cookie_retried: bool,

    // Sending.
    local_initial_tsn: u32,
    next_tsn: u32,
    /// The peer's cumulative TSN ack point (of our TSNs).
    cum_acked: u32,
    out_ssn: Vec<u16>,
    /// The SSN of the ordered message whose fragments are being sent.
    cur_ssn: u16,
    queue: VecDeque<Pending>,
    /// Bytes of queued fragments plus unacknowledged chunks (the send buffer in use).
    buffered: usize,
    inflight: VecDeque<Sent>,
    outstanding: usize,
    peer_rwnd: usize,
    fast_recovery: Option<u32>,
    error_count: u32,
    want_writable: bool,
    /// A zero window probe may go out after this time.
    zwp_at: Option<Instant>,

    // Receiving.
    rx: Option<Receiver>,
    sack_needed: bool,
    sack_now: bool,
    sack_deadline: Option<Instant>,
    unacked_packets: u32,
    /// Where the last DATA came from (SACKs go back there).
    sack_path: usize,

    ctrl: VecDeque<(Dest, Chunk)>,
    pub events: VecDeque<Event>,
    /// Packets that may still go out before more input (Max.Burst per arriving SACK or timer).
    burst: usize,
}

/// Parameters of an association created from a completed handshake.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Established {
    pub local_tag: u32,
    pub peer_tag: u32,
    pub local_initial_tsn: u32,
    pub peer_initial_tsn: u32,
    pub peer_a_rwnd: u32,
    pub outbound_streams: u16,
    pub inbound_streams: u16,
}

impl Association {
    fn blank(
        cfg: AssociationConfig,
        local_port: u16,
        peer_port: u16,
        paths: Vec<Path>,
        jitter: Jitter,
    ) -> Self {
        Self {
            state: State::Closed,
            cfg,
            local_port,
            peer_port,
            local_tag: 0,
            peer_tag: 0,
            tie_tags: (0, 0),
            paths,
            primary: 0,
            incoming: false,
            jitter,
            handshake: None,
            pending_establish: None,
            t1: None,
            t2: None,
            t5: None,
            stale_cookie_retried: false,
            local_initial_tsn: 0,
            next_tsn: 0,
            cum_acked: 0,
            out_ssn: Vec::new(),
            cur_ssn: 0,
            queue: VecDeque::new(),
            buffered: 0,
            inflight: VecDeque::new(),
            outstanding: 0,
            peer_rwnd: 0,
            fast_recovery: None,
            error_count: 0,
            want_writable: false,
            zwp_at: None,
            rx: None,
            sack_needed: false,
            sack_now: false,
            sack_deadline: None,
            unacked_packets: 0,
            sack_path: 0,
            ctrl: VecDeque::new(),
            events: VecDeque::new(),
            burst: 0,
        }
    }

    /// An outgoing association: queues the INIT.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        now: Instant,
        cfg: AssociationConfig,
        local_port: u16,
        peer_port: u16,
        peers: &[SocketAddr],
        local_addresses: &[IpAddr],
        local_tag: u32,
        initial_tsn: u32,
        jitter: Jitter,
    ) -> Self {
        let paths = peers.iter().map(|a| Path::new(*a, true, &cfg)).collect();
        let mut a = Self::blank(cfg, local_port, peer_port, paths, jitter);
        a.state = State::CookieWait;
        a.local_tag = local_tag;
        a.local_initial_tsn = initial_tsn;
        let init = Init {
            initiate_tag: local_tag,
            a_rwnd: a.cfg.receive_window,
            outbound_streams: a.cfg.outbound_streams,
            inbound_streams: a.cfg.inbound_streams,
            initial_tsn,
            addresses: local_addresses.to_vec(),
            supported_address_types: Some(vec![param_type::IPV4, param_type::IPV6]),
            ..Init::default()
        };
        a.ctrl.push_back((Dest::Path(0), Chunk::Init(init.clone())));
        a.handshake = Some(Handshake::Init(init));
        a.t1 = Some(RtxTimer {
            deadline: now + a.paths[0].rto,
            count: 0,
        });
        a
    }

    /// An incoming association from a valid cookie: ESTABLISHED at once.
    pub fn accept(
        cfg: AssociationConfig,
        local_port: u16,
        peer_port: u16,
        paths: Vec<Path>,
        e: &Established,
        jitter: Jitter,
        now: Instant,
    ) -> Self {
        let mut a = Self::blank(cfg, local_port, peer_port, paths, jitter);
        a.incoming = true;
        a.ctrl.push_back((Dest::Path(0), Chunk::CookieAck));
        a.establish(e, now);
        a
    }

    fn establish(&mut self, e: &Established, now: Instant) {
        self.state = State::Established;
        self.local_tag = e.local_tag;
        self.peer_tag = e.peer_tag;
        self.local_initial_tsn = e.local_initial_tsn;
        self.next_tsn = e.local_initial_tsn;
        self.cum_acked = e.local_initial_tsn.wrapping_sub(1);
        self.out_ssn = vec![0; usize::from(e.outbound_streams)];
        self.peer_rwnd = e.peer_a_rwnd as usize;
        self.rx = Some(Receiver::new(
            e.peer_initial_tsn,
            e.inbound_streams,
            self.cfg.receive_window,
        ));
        self.handshake = None;
        self.t1 = None;
        self.events.push_back(Event::Connected {
            incoming: self.incoming,
        });
        for i in 0..self.paths.len() {
            self.schedule_heartbeat(i, now);
        }
    }

    /// The negotiated number of outbound streams.
    pub fn outbound_streams(&self) -> u16 {
        self.out_ssn.len() as u16
    }

    pub fn path_by_ip(&self, ip: IpAddr) -> Option<usize> {
        self.paths.iter().position(|p| p.addr.ip() == ip)
    }

    pub fn path_info(&self) -> Vec<PathInfo> {
        self.paths
            .iter()
            .enumerate()
            .map(|(i, p)| p.info(i == self.primary))
            .collect()
    }

    /// The path data goes to: the primary while it is usable, else the first usable one.
    fn current_path(&self) -> usize {
        let usable = |p: &Path| p.confirmed && p.active;
        if usable(&self.paths[self.primary]) {
            return self.primary;
        }
        self.paths.iter().position(usable).unwrap_or(self.primary)
    }

    /// An active path other than `from`, for retransmissions (RFC 9260 §6.4).
    fn alternate_path(&self, from: usize) -> usize {
        (1..self.paths.len())
            .map(|k| (from + k) % self.paths.len())
            .find(|&i| self.paths[i].confirmed && self.paths[i].active)
            .unwrap_or(from)
    }

    /// Sets the primary path (by peer IP).
    pub fn set_primary(&mut self, ip: IpAddr) -> bool {
        match self.path_by_ip(ip) {
            Some(i) => {
                self.primary = i;
                true
            }
            None => false,
        }
    }

    fn heartbeats_on(&self) -> bool {
        matches!(
            self.state,
            State::Established | State::ShutdownPending | State::ShutdownReceived
        )
    }

    fn schedule_heartbeat(&mut self, i: usize, now: Instant) {
        let p = &self.paths[i];
        let next = if !p.confirmed {
            // Path verification (RFC 9260 §5.4): probe unconfirmed addresses every RTO.
            Some(now + p.rto)
        } else {
            self.cfg.heartbeat_interval.map(|hb| {
                // RTO + HB.interval, jittered by ±50 % of the RTO (RFC 9260 §8.3).
                let rto = p.rto.as_micros() as u64;
                let j = self.jitter.next() % (rto + 1);
                now + hb + Duration::from_micros(rto / 2 + j)
            })
        };
        self.paths[i].hb_next = next;
    }

    // ------------------------------------------------------------------------------------
    // Input.

    /// Processes the chunks of a packet whose verification tag the endpoint has checked.
    pub fn handle_chunks(&mut self, now: Instant, from: SocketAddr, packet: Packet) {
        self.grant_burst();
        let Some(path) = self.path_by_ip(from.ip()) else {
            return;
        };
        // RFC 6951 §5.4: the source UDP port is this address's encapsulation port.
        self.paths[path].addr.set_port(from.port());
        let mut had_data = false;
        let mut new_data = false;
        let mut dup_only = true;
        for c in &packet.unrecognized {
            self.ctrl.push_back((
                Dest::Path(path),
                Chunk::Error(vec![ErrorCause::new(cause::UNRECOGNIZED_CHUNK, c.clone())]),
            ));
        }
        for chunk in packet.chunks {
            if self.state == State::Closed {
                break;
            }
            match chunk {
                Chunk::Data(d) => {
                    had_data = true;
                    match self.on_data(now, path, d) {
                        Some(true) => {
                            new_data = true;
                            dup_only = false;
                        }
                        Some(false) => {}
                        None => dup_only = false,
                    }
                }
                Chunk::Sack(s) => self.on_sack(now, s),
                Chunk::InitAck(i) => self.on_init_ack(now, path, i),
                Chunk::CookieAck => {
                    if self.state == State::CookieEchoed {
                        let e = self.pending_establish.take();
                        if let Some(e) = e {
                            self.establish(&e, now);
                        }
                    }
                }
                Chunk::Heartbeat(info) => {
                    if self.state != State::CookieWait {
                        self.ctrl
                            .push_back((Dest::Path(path), Chunk::HeartbeatAck(info)));
                    }
                }
                Chunk::HeartbeatAck(info) => self.on_heartbeat_ack(now, &info),
                Chunk::Abort { causes, .. } => {
                    self.lost(LostReason::PeerAbort(causes));
                    return;
                }
                Chunk::Shutdown { cum_tsn } => self.on_shutdown(now, path, cum_tsn),
                Chunk::ShutdownAck => self.on_shutdown_ack(path),
                Chunk::ShutdownComplete { .. } => {
                    if self.state == State::ShutdownAckSent {
                        self.close_gracefully();
                        return;
                    }
                }
                Chunk::Error(causes) => self.on_error(now, causes),
                // INIT and COOKIE ECHO are the endpoint's (they need the cookie signer).
                Chunk::Init(_) | Chunk::CookieEcho(_) | Chunk::Unknown { .. } => {}
            }
        }
        if had_data {
            self.sack_path = path;
            self.unacked_packets += 1;
            if self.state == State::ShutdownSent {
                // RFC 9260 §9.2: answer DATA with SHUTDOWN at once.
                self.queue_shutdown(now);
            }
            let has_gaps = self.rx.as_ref().is_some_and(Receiver::has_gaps);
            self.sack_needed = true;
            if self.unacked_packets >= 2 || has_gaps || (dup_only && !new_data) || self.sack_now {
                // RFC 9260 §6.2: a SACK for at least every second packet, at once on gaps and
                // duplicates. It is built now, per packet, so that a burst of packets handled
                // together still yields one SACK per two (the sender's clock).
                self.queue_sack(path);
            } else if self.sack_deadline.is_none() {
                self.sack_deadline = Some(now + self.cfg.sack_delay);
            }
            if self.rx.as_ref().is_some_and(Receiver::readable) {
                self.events.push_back(Event::Readable);
            }
        }
        self.maybe_finish_shutdown(now);
    }

    /// Returns Some(true) for new data, Some(false) for a duplicate, None otherwise.
    fn on_data(&mut self, now: Instant, path: usize, d: DataChunk) -> Option<bool> {
        if !matches!(
            self.state,
            State::Established | State::ShutdownPending | State::ShutdownSent
        ) {
            return None;
        }
        let _ = now;
        let (stream, immediate) = (d.stream, d.immediate);
        let rx = self.rx.as_mut()?;
        match rx.on_data(d) {
            DataOutcome::New => {
                if immediate {
                    self.sack_now = true;
                }
                Some(true)
            }
            DataOutcome::Duplicate => Some(false),
            DataOutcome::Dropped => {
                self.sack_now = true;
                None
            }
            DataOutcome::InvalidStream => {
                let mut info = stream.to_be_bytes().to_vec();
                info.extend_from_slice(&[0, 0]);
                self.ctrl.push_back((
                    Dest::Path(path),
                    Chunk::Error(vec![ErrorCause::new(cause::INVALID_STREAM, info)]),
                ));
                Some(true)
            }
        }
    }

    fn on_init_ack(&mut self, now: Instant, path: usize, i: Init) {
        if self.state != State::CookieWait {
            return; // RFC 9260 §5.2.3
        }
        let Some(cookie) = i.cookie.clone() else {
            self.abort_with(
                cause::MISSING_MANDATORY_PARAMETER,
                vec![0, 1, 0, param_type::STATE_COOKIE as u8],
            );
            self.lost(LostReason::ProtocolViolation(
                "INIT ACK without a state cookie",
            ));
            return;
        };
        if i.initiate_tag == 0 || i.outbound_streams == 0 || i.inbound_streams == 0 {
            self.lost(LostReason::ProtocolViolation(
                "INIT ACK with a zero tag or no streams",
            ));
            return;
        }
        if i.host_name {
            self.peer_tag = i.initiate_tag;
            self.abort_with(cause::UNRESOLVABLE_ADDRESS, vec![]);
            self.lost(LostReason::ProtocolViolation(
                "INIT ACK with a Host Name Address",
            ));
            return;
        }
        // Every address the peer lists (RFC 9260 §5.1.2 C): new ones need confirmation.
        let default_port = self.paths[path].addr.port();
        for a in &i.addresses {
            if self.path_by_ip(*a).is_none() && usable_address(a) {
                self.paths.push(Path::new(
                    SocketAddr::new(*a, default_port),
                    false,
                    &self.cfg,
                ));
            }
        }
        // An INIT ACK from an address other than the ones we sent to becomes the primary.
        self.primary = path;
        let e = Established {
            local_tag: self.local_tag,
            peer_tag: i.initiate_tag,
            local_initial_tsn: self.local_initial_tsn,
            peer_initial_tsn: i.initial_tsn,
            peer_a_rwnd: i.a_rwnd,
            outbound_streams: self.cfg.outbound_streams.min(i.inbound_streams),
            inbound_streams: self.cfg.inbound_streams.min(i.outbound_streams),
        };
        self.peer_tag = e.peer_tag;
        self.pending_establish = Some(e);
        self.state = State::CookieEchoed;
        self.ctrl.retain(|(_, c)| !matches!(c, Chunk::Init(_)));
        self.ctrl
            .push_back((Dest::Path(path), Chunk::CookieEcho(cookie.clone())));
        self.handshake = Some(Handshake::CookieEcho(cookie));
        self.t1 = Some(RtxTimer {
            deadline: now + self.paths[path].rto,
            count: 0,
        });
        for u in &i.unrecognized_by_peer {
            trace!(param = ?u.get(..2), "peer did not recognize a parameter of our INIT");
        }
    }

    fn on_heartbeat_ack(&mut self, now: Instant, info: &[u8]) {
        // Our Heartbeat Info: type 1, length 16, nonce (8), path index (4).
        if info.len() < 16 || u16::from_be_bytes([info[0], info[1]]) != 1 {
            return;
        }
        let nonce = u64::from_be_bytes(info[4..12].try_into().expect("8 bytes"));
        let idx = u32::from_be_bytes(info[12..16].try_into().expect("4 bytes")) as usize;
        let Some(p) = self.paths.get_mut(idx) else {
            return;
        };
        let Some((n, sent, _)) = p.hb_pending else {
            return;
        };
        if n != nonce {
            return;
        }
        p.hb_pending = None;
        p.rtt_sample(now - sent, &self.cfg);
        p.errors = 0;
        let was = p.state();
        p.confirmed = true;
        p.active = true;
        if was != PathState::Active {
            let address = p.addr.ip();
            self.events.push_back(Event::PathChanged {
                address,
                state: PathState::Active,
            });
        }
        self.error_count = 0;
        self.schedule_heartbeat(idx, now);
    }

    fn on_shutdown(&mut self, now: Instant, path: usize, cum_tsn: u32) {
        match self.state {
            State::Established | State::ShutdownPending | State::ShutdownReceived => {
                // The cumulative TSN ack acts like a SACK's (RFC 9260 §9.2).
                self.on_sack(
                    now,
                    Sack {
                        cum_tsn,
                        a_rwnd: self.peer_rwnd.saturating_add(self.outstanding) as u32,
                        gaps: vec![],
                        dups: vec![],
                    },
                );
                if self.state == State::Closed {
                    return;
                }
                if self.state != State::ShutdownReceived {
                    self.state = State::ShutdownReceived;
                    self.events.push_back(Event::PeerShutdown);
                }
                let _ = path;
                self.maybe_finish_shutdown(now);
            }
            State::ShutdownSent => {
                // Both sides shut down at once: answer with SHUTDOWN ACK.
                self.state = State::ShutdownAckSent;
                self.ctrl.push_back((Dest::Current, Chunk::ShutdownAck));
                self.t2 = Some(RtxTimer {
                    deadline: now + self.paths[self.current_path()].rto,
                    count: 0,
                });
            }
            _ => {}
        }
    }

    fn on_shutdown_ack(&mut self, path: usize) {
        if matches!(self.state, State::ShutdownSent | State::ShutdownAckSent) {
            self.ctrl.clear();
            self.ctrl.push_back((
                Dest::Path(path),
                Chunk::ShutdownComplete { reflected: false },
            ));
            self.close_gracefully();
        }
    }

    fn on_error(&mut self, now: Instant, causes: Vec<ErrorCause>) {
        for c in causes {
            if c.code == cause::STALE_COOKIE && self.state == State::CookieEchoed {
                // RFC 9260 §5.2.6: one new attempt, asking for a longer cookie life.
                if self.stale_cookie_retried {
                    self.lost(LostReason::StaleCookie);
                    return;
                }
                self.stale_cookie_retried = true;
                let measure = c
                    .info
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4")));
                let mut init = match self.handshake.take() {
                    Some(Handshake::Init(i)) => i,
                    _ => self.rebuild_init(),
                };
                init.cookie_preservative = Some(measure / 1000 + 1000);
                self.state = State::CookieWait;
                self.ctrl
                    .push_back((Dest::Path(self.primary), Chunk::Init(init.clone())));
                self.handshake = Some(Handshake::Init(init));
                self.t1 = Some(RtxTimer {
                    deadline: now + self.paths[self.primary].rto,
                    count: 0,
                });
            } else if c.code != cause::STALE_COOKIE {
                self.events.push_back(Event::PeerError(c));
            }
        }
    }

    fn rebuild_init(&self) -> Init {
        Init {
            initiate_tag: self.local_tag,
            a_rwnd: self.cfg.receive_window,
            outbound_streams: self.cfg.outbound_streams,
            inbound_streams: self.cfg.inbound_streams,
            initial_tsn: self.local_initial_tsn,
            supported_address_types: Some(vec![param_type::IPV4, param_type::IPV6]),
            ..Init::default()
        }
    }

    /// RFC 9260 §6.2.1, §7.2.
    fn on_sack(&mut self, now: Instant, s: Sack) {
        if !matches!(
            self.state,
            State::Established
                | State::ShutdownPending
                | State::ShutdownReceived
                | State::ShutdownSent
        ) {
            return;
        }
        if tsn_lt(s.cum_tsn, self.cum_acked) {
            return; // out of order (D.i)
        }
        if !tsn_lt(s.cum_tsn, self.next_tsn) {
            self.abort_with(
                cause::PROTOCOL_VIOLATION,
                b"SACK acknowledges a TSN never sent".to_vec(),
            );
            self.lost(LostReason::ProtocolViolation(
                "SACK acknowledges a TSN never sent",
            ));
            return;
        }
        let flight_before: Vec<usize> = self.paths.iter().map(|p| p.flight).collect();
        let mut acked_bytes = vec![0usize; self.paths.len()];
        let mut cum_advanced_on = vec![false; self.paths.len()];
        let mut htna: Option<u32> = None;
        let cum_advanced = s.cum_tsn != self.cum_acked;
        // Karn: a sample only from chunks sent once, and only if nothing at or below them was
        // retransmitted (C5); one sample per path and round trip (C4).
        let mut rtt: Vec<Option<Duration>> = vec![None; self.paths.len()];
        let mut retransmitted_below = false;

        // Cumulative ack.
        while let Some(front) = self.inflight.front() {
            if !tsn_le(front.data.tsn, s.cum_tsn) {
                break;
            }
            let c = self.inflight.pop_front().expect("front exists");
            let size = chunk_size(c.data.payload.len());
            self.buffered -= c.data.payload.len();
            if c.transmissions > 1 {
                retransmitted_below = true;
            }
            if !c.acked {
                acked_bytes[c.path] += size;
                cum_advanced_on[c.path] = true;
                if c.transmissions == 1
                    && !retransmitted_below
                    && self.paths[c.path].rtt_probe == Some(c.data.tsn)
                {
                    rtt[c.path] = Some(now - c.sent_at);
                }
                htna = Some(c.data.tsn);
            }
            if c.in_flight {
                self.paths[c.path].flight -= size;
                self.outstanding -= size;
            }
            if self.paths[c.path].rtt_probe == Some(c.data.tsn) {
                self.paths[c.path].rtt_probe = None;
            }
        }
        self.cum_acked = s.cum_tsn;

        // Gap blocks: mark what they cover; un-mark what they no longer cover (renege).
        let mut covered = vec![false; self.inflight.len()];
        for &(start, end) in &s.gaps {
            if start == 0 || end < start {
                continue;
            }
            let (lo, hi) = (usize::from(start), usize::from(end));
            for off in lo..=hi {
                // inflight[0] has TSN cum_acked + 1, i.e. offset 1.
                if let Some(slot) = covered.get_mut(off - 1) {
                    *slot = true;
                }
            }
        }
        for (i, c) in self.inflight.iter_mut().enumerate() {
            let size = chunk_size(c.data.payload.len());
            if covered[i] && !c.acked {
                c.acked = true;
                c.retransmit = false;
                acked_bytes[c.path] += size;
                if c.transmissions == 1 && self.paths[c.path].rtt_probe == Some(c.data.tsn) {
                    rtt[c.path] = Some(now - c.sent_at);
                    self.paths[c.path].rtt_probe = None;
                }
                if c.in_flight {
                    c.in_flight = false;
                    self.paths[c.path].flight -= size;
                    self.outstanding -= size;
                }
                htna = Some(c.data.tsn);
            } else if !covered[i] && c.acked {
                // Reneged (D.iii): one miss indication, and it is outstanding again.
                c.acked = false;
                c.miss += 1;
                if !c.retransmit {
                    c.retransmit = true;
                }
                if self.paths[c.path].t3.is_none() {
                    self.paths[c.path].t3 = Some(now + self.paths[c.path].rto);
                }
            }
        }
        for (i, r) in rtt.into_iter().enumerate() {
            if let Some(r) = r {
                self.paths[i].rtt_sample(r, &self.cfg);
            }
        }

        // Acknowledged data clears error counters (RFC 9260 §8.1, §8.2).
        let any_acked = acked_bytes.iter().any(|&b| b > 0);
        if any_acked {
            self.error_count = 0;
            for (i, &b) in acked_bytes.iter().enumerate() {
                if b > 0 {
                    let p = &mut self.paths[i];
                    p.errors = 0;
                    if !p.active {
                        p.active = true;
                        let address = p.addr.ip();
                        self.events.push_back(Event::PathChanged {
                            address,
                            state: PathState::Active,
                        });
                    }
                }
            }
        }

        // Congestion window growth (§7.2.1, §7.2.2) before fast retransmit adjustments.
        let in_fr = self.fast_recovery.is_some();
        for i in 0..self.paths.len() {
            let b = acked_bytes[i];
            if b == 0 || !cum_advanced {
                continue;
            }
            let p = &mut self.paths[i];
            let pmdcs = p.pmdcs();
            if p.cwnd <= p.ssthresh {
                if !in_fr && flight_before[i] >= p.cwnd.saturating_sub(pmdcs) {
                    p.cwnd += b.min(pmdcs);
                }
            } else {
                p.partial_bytes_acked += b;
                if p.partial_bytes_acked >= p.cwnd && flight_before[i] >= p.cwnd {
                    p.partial_bytes_acked -= p.cwnd;
                    p.cwnd += pmdcs;
                } else if p.partial_bytes_acked > p.cwnd {
                    p.partial_bytes_acked = p.cwnd;
                }
            }
        }

        if any_acked {
            self.burst =
                (self.burst + self.cfg.max_burst.max(1)).min(16 * self.cfg.max_burst.max(1));
        }

        // Fast recovery exit (D.iv).
        if let Some(exit) = self.fast_recovery {
            if tsn_le(exit, self.cum_acked) {
                self.fast_recovery = None;
            }
        }

        // Miss indications (HTNA, §7.2.4) and fast retransmit.
        let mut fast_paths: Vec<usize> = Vec::new();
        if let Some(h) = htna {
            let all_missing = self.fast_recovery.is_some() && cum_advanced;
            for c in self.inflight.iter_mut() {
                if c.acked || c.retransmit || c.fast_retransmitted {
                    continue;
                }
                if !(all_missing || tsn_lt(c.data.tsn, h)) {
                    continue;
                }
                c.miss += 1;
                if c.miss >= 3 {
                    c.retransmit = true;
                    c.fast_retransmitted = true;
                    if c.in_flight {
                        let size = chunk_size(c.data.payload.len());
                        c.in_flight = false;
                        self.paths[c.path].flight -= size;
                        self.outstanding -= size;
                    }
                    if !fast_paths.contains(&c.path) {
                        fast_paths.push(c.path);
                    }
                }
            }
        }
        if !fast_paths.is_empty() && self.fast_recovery.is_none() {
            for &i in &fast_paths {
                let p = &mut self.paths[i];
                p.ssthresh = (p.cwnd / 2).max(4 * p.pmdcs());
                p.cwnd = p.ssthresh;
                p.partial_bytes_acked = 0;
            }
            self.fast_recovery = Some(self.next_tsn.wrapping_sub(1));
        }

        // Window (D.ii).
        self.peer_rwnd = (s.a_rwnd as usize).saturating_sub(self.outstanding);

        // T3-rtx (R2, R3).
        for (i, p) in self.paths.iter_mut().enumerate() {
            if p.flight == 0 && !self.inflight.iter().any(|c| c.path == i && c.retransmit) {
                p.t3 = None;
                if self.inflight.is_empty() {
                    p.partial_bytes_acked = 0;
                }
            } else if cum_advanced_on[i] {
                p.t3 = Some(now + p.rto);
            }
        }
        if self.peer_rwnd > 0 {
            self.zwp_at = None;
        }
        self.check_writable();
    }

    /// Max.Burst (RFC 9260 §6.1 D): each input event lets Max.Burst packets go out, and each
    /// SACK that acknowledges new data adds Max.Burst more, so that SACKs handled in one batch
    /// still clock out one burst each.
    fn grant_burst(&mut self) {
        self.burst = self.burst.max(self.cfg.max_burst.max(1));
    }

    fn check_writable(&mut self) {
        if self.want_writable && self.buffered < self.cfg.send_buffer {
            self.want_writable = false;
            self.events.push_back(Event::Writable);
        }
    }

    // ------------------------------------------------------------------------------------
    // User calls.

    /// Queues a message; if no part of it has been sent by `expires`, it is dropped and reported
    /// as [`Event::Expired`].
    pub fn send_expiring(
        &mut self,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: Bytes,
        expires: Option<Instant>,
    ) -> Result<(), SendError> {
        // Streams are negotiated in the handshake, so messages wait for ESTABLISHED.
        if self.state != State::Established {
            return Err(SendError::NotEstablished);
        }
        if data.is_empty() {
            return Err(SendError::Empty);
        }
        if usize::from(stream) >= self.out_ssn.len() {
            return Err(SendError::InvalidStream(stream));
        }
        if data.len() > self.cfg.send_buffer {
            return Err(SendError::TooLarge(data.len()));
        }
        if self.buffered + data.len() > self.cfg.send_buffer {
            self.want_writable = true;
            return Err(SendError::WouldBlock);
        }
        let frag = self
            .paths
            .iter()
            .map(Path::max_fragment)
            .min()
            .unwrap_or(1024);
        let n = data.len().div_ceil(frag);
        for k in 0..n {
            let part = data.slice(k * frag..((k + 1) * frag).min(data.len()));
            self.queue.push_back(Pending {
                stream,
                ppid,
                unordered,
                begin: k == 0,
                end: k + 1 == n,
                payload: part,
                expires,
            });
        }
        self.buffered += data.len();
        // A new message is an event that may start a burst (RFC 9260 §6.1 D).
        self.grant_burst();
        Ok(())
    }

    /// Bytes that [`send`](Self::send) accepts now without `WouldBlock` (0 unless established).
    pub fn send_capacity(&self) -> usize {
        if self.state != State::Established {
            return 0;
        }
        self.cfg.send_buffer.saturating_sub(self.buffered)
    }

    pub fn recv(&mut self) -> Option<Message> {
        let rx = self.rx.as_mut()?;
        let m = rx.recv();
        if m.is_some() && rx.window_update_due() {
            self.sack_needed = true;
            self.sack_now = true;
        }
        m
    }

    pub fn debug_receiver(&self) -> String {
        self.rx.as_ref().map_or_else(String::new, Receiver::debug)
    }

    pub fn readable(&self) -> bool {
        self.rx.as_ref().is_some_and(Receiver::readable)
    }

    /// Graceful shutdown (RFC 9260 §9.2).
    pub fn shutdown(&mut self, now: Instant) {
        match self.state {
            State::Established => {
                self.state = State::ShutdownPending;
                self.maybe_finish_shutdown(now);
            }
            State::CookieWait | State::CookieEchoed => self.abort(),
            _ => {}
        }
    }

    /// Abortive close (RFC 9260 §9.1).
    pub fn abort(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.abort_with(cause::USER_INITIATED_ABORT, Vec::new());
        self.lost(LostReason::UserAbort);
    }

    fn abort_with(&mut self, code: u16, info: Vec<u8>) {
        self.ctrl.clear();
        self.ctrl.push_back((
            Dest::Current,
            Chunk::Abort {
                reflected: false,
                causes: vec![ErrorCause::new(code, info)],
            },
        ));
    }

    fn all_acked(&self) -> bool {
        self.queue.is_empty() && self.inflight.is_empty()
    }

    fn queue_shutdown(&mut self, now: Instant) {
        let cum = self.rx.as_ref().map_or(0, Receiver::cum_tsn);
        self.ctrl
            .retain(|(_, c)| !matches!(c, Chunk::Shutdown { .. }));
        self.ctrl
            .push_back((Dest::Current, Chunk::Shutdown { cum_tsn: cum }));
        let rto = self.paths[self.current_path()].rto;
        self.t2 = Some(RtxTimer {
            deadline: now + rto,
            count: self.t2.map_or(0, |t| t.count),
        });
    }

    fn maybe_finish_shutdown(&mut self, now: Instant) {
        if !self.all_acked() {
            return;
        }
        match self.state {
            State::ShutdownPending => {
                self.state = State::ShutdownSent;
                self.queue_shutdown(now);
                self.t5 = Some(now + self.cfg.rto_max * 5);
                for p in &mut self.paths {
                    p.hb_next = None;
                }
            }
            State::ShutdownReceived => {
                self.state = State::ShutdownAckSent;
                self.ctrl.push_back((Dest::Current, Chunk::ShutdownAck));
                self.t2 = Some(RtxTimer {
                    deadline: now + self.paths[self.current_path()].rto,
                    count: 0,
                });
                for p in &mut self.paths {
                    p.hb_next = None;
                }
            }
            _ => {}
        }
    }

    fn close_gracefully(&mut self) {
        self.state = State::Closed;
        self.clear_timers();
        self.events.push_back(Event::Closed);
    }

    fn clear_timers(&mut self) {
        self.t1 = None;
        self.t2 = None;
        self.t5 = None;
        self.sack_deadline = None;
        self.zwp_at = None;
        for p in &mut self.paths {
            p.t3 = None;
            p.hb_next = None;
            p.hb_pending = None;
        }
    }

    /// Ends the association, reporting `reason` and what was never delivered.
    pub fn lost(&mut self, reason: LostReason) {
        if self.state == State::Closed {
            return;
        }
        debug!(%reason, "association lost");
        self.state = State::Closed;
        self.clear_timers();
        let unsent = self.take_undelivered();
        self.events.push_back(Event::Lost(reason));
        if !unsent.is_empty() {
            self.events.push_back(Event::SendFailed(unsent));
        }
        // Only an ABORT we queued ourselves may still go out.
        self.ctrl.retain(|(_, c)| matches!(c, Chunk::Abort { .. }));
    }

    /// Messages not (fully) acknowledged: unacked chunks and the queue, regrouped.
    fn take_undelivered(&mut self) -> Vec<Message> {
        let mut out: Vec<Message> = Vec::new();
        let mut cur: Option<(Message, bool)> = None;
        let chunks = self
            .inflight
            .drain(..)
            .map(|s| {
                (
                    s.data.stream,
                    s.data.ppid,
                    s.data.unordered,
                    s.data.begin,
                    s.data.end,
                    s.data.payload,
                )
            })
            .chain(
                self.queue
                    .drain(..)
                    .map(|p| (p.stream, p.ppid, p.unordered, p.begin, p.end, p.payload)),
            );
        for (stream, ppid, unordered, begin, end, payload) in chunks {
            if begin {
                cur = Some((
                    Message {
                        stream,
                        ppid,
                        unordered,
                        data: payload,
                    },
                    true,
                ));
            } else if let Some((m, _)) = cur.as_mut() {
                let mut v = m.data.to_vec();
                v.extend_from_slice(&payload);
                m.data = v.into();
            }
            if end {
                if let Some((m, true)) = cur.take() {
                    out.push(m);
                }
            }
        }
        self.buffered = 0;
        self.outstanding = 0;
        out
    }

    // ------------------------------------------------------------------------------------
    // Timers.

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        min(self.t1.map(|r| r.deadline));
        min(self.t2.map(|r| r.deadline));
        min(self.t5);
        min(self.sack_deadline);
        min(self.zwp_at);
        for p in &self.paths {
            min(p.t3);
            min(p.hb_next);
            min(p.hb_pending.map(|h| h.2));
        }
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.grant_burst();
        if let Some(t1) = self.t1.filter(|t| t.deadline <= now) {
            self.on_t1(now, t1);
        }
        if let Some(t2) = self.t2.filter(|t| t.deadline <= now) {
            self.on_t2(now, t2);
        }
        if self.t5.is_some_and(|t| t <= now) {
            self.abort_with(cause::USER_INITIATED_ABORT, b"T5-shutdown-guard".to_vec());
            self.lost(LostReason::Unreachable);
        }
        if self.sack_deadline.is_some_and(|t| t <= now) {
            self.sack_deadline = None;
            self.sack_now = true;
        }
        if self.zwp_at.is_some_and(|t| t <= now) {
            self.zwp_at = None;
        }
        for i in 0..self.paths.len() {
            if self.state == State::Closed {
                return;
            }
            if self.paths[i].t3.is_some_and(|t| t <= now) {
                self.on_t3(now, i);
            }
            if self.paths[i].hb_pending.is_some_and(|h| h.2 <= now) {
                self.on_heartbeat_timeout(now, i);
            }
            if self.paths[i].hb_next.is_some_and(|t| t <= now) {
                if self.heartbeats_on() {
                    self.send_heartbeat(now, i);
                } else {
                    self.paths[i].hb_next = None;
                }
            }
        }
        debug_assert!(
            self.poll_timeout().is_none_or(|t| t > now),
            "a timer is still due after handling: t1 {:?} t2 {:?} t5 {:?} sack {:?} zwp {:?} paths {:?}",
            self.t1.map(|t| t.deadline),
            self.t2.map(|t| t.deadline),
            self.t5,
            self.sack_deadline,
            self.zwp_at,
            self.paths
                .iter()
                .map(|p| (p.t3, p.hb_next, p.hb_pending.map(|h| h.2)))
                .collect::<Vec<_>>()
        );
    }

    fn on_t1(&mut self, now: Instant, t1: RtxTimer) {
        if t1.count >= self.cfg.max_init_retransmits {
            self.lost(LostReason::InitTimeout);
            return;
        }
        // Retransmissions try every peer address in turn (RFC 9260 §5.1).
        let path = (t1.count as usize + 1) % self.paths.len();
        let p = &mut self.paths[self.primary];
        p.back_off(&self.cfg);
        let rto = p.rto;
        let chunk = match &self.handshake {
            Some(Handshake::Init(i)) => Chunk::Init(i.clone()),
            Some(Handshake::CookieEcho(c)) => Chunk::CookieEcho(c.clone()),
            None => return,
        };
        let dest = if matches!(chunk, Chunk::CookieEcho(_)) {
            self.primary
        } else {
            path
        };
        self.ctrl.push_back((Dest::Path(dest), chunk));
        self.t1 = Some(RtxTimer {
            deadline: now + rto,
            count: t1.count + 1,
        });
    }

    fn on_t2(&mut self, now: Instant, t2: RtxTimer) {
        self.error_count += 1;
        if self.error_count > self.cfg.max_retrans {
            self.abort_with(cause::USER_INITIATED_ABORT, Vec::new());
            self.lost(LostReason::Unreachable);
            return;
        }
        let cur = self.current_path();
        self.paths[cur].back_off(&self.cfg);
        let path = self.alternate_path(cur);
        let chunk = match self.state {
            State::ShutdownSent => Chunk::Shutdown {
                cum_tsn: self.rx.as_ref().map_or(0, Receiver::cum_tsn),
            },
            State::ShutdownAckSent => Chunk::ShutdownAck,
            _ => {
                self.t2 = None;
                return;
            }
        };
        self.ctrl.push_back((Dest::Path(path), chunk));
        self.t2 = Some(RtxTimer {
            deadline: now + self.paths[path].rto,
            count: t2.count + 1,
        });
    }

    /// RFC 9260 §6.3.3.
    fn on_t3(&mut self, now: Instant, i: usize) {
        self.paths[i].t3 = None;
        // A zero-window probe that went unanswered while SACKs keep arriving is not an error.
        if !self.path_error(now, i, true) {
            return;
        }
        let p = &mut self.paths[i];
        p.ssthresh = (p.cwnd / 2).max(4 * p.pmdcs());
        p.cwnd = p.pmdcs();
        p.partial_bytes_acked = 0;
        p.back_off(&self.cfg);
        self.fast_recovery = None;
        for c in self.inflight.iter_mut().filter(|c| c.path == i && !c.acked) {
            c.retransmit = true;
            if c.in_flight {
                let size = chunk_size(c.data.payload.len());
                c.in_flight = false;
                self.paths[i].flight -= size;
                self.outstanding -= size;
            }
        }
        if self.paths[i].rtt_probe.is_some() {
            self.paths[i].rtt_probe = None;
        }
        let _ = now;
    }

    /// Counts an error on path `i` (and on the association when `assoc` or when it is the
    /// data path). Returns false if the association is gone.
    fn path_error(&mut self, now: Instant, i: usize, assoc: bool) -> bool {
        let is_current = i == self.current_path();
        let p = &mut self.paths[i];
        if p.errors <= self.cfg.path_max_retrans {
            p.errors += 1;
        }
        if p.errors > self.cfg.path_max_retrans && p.active && p.confirmed {
            p.active = false;
            let address = p.addr.ip();
            debug!(%address, "path inactive");
            self.events.push_back(Event::PathChanged {
                address,
                state: PathState::Inactive,
            });
        }
        if assoc || is_current {
            self.error_count += 1;
            if self.error_count > self.cfg.max_retrans {
                self.lost(LostReason::Unreachable);
                return false;
            }
        }
        let _ = now;
        true
    }

    fn send_heartbeat(&mut self, now: Instant, i: usize) {
        let nonce = self.jitter.next();
        let p = &mut self.paths[i];
        if let Some((_, _, expires)) = p.hb_pending {
            // One heartbeat at a time per path: the next one is due an interval after this
            // one times out (a due time before that would never be served, and the timer
            // would fire again and again at the same instant).
            self.schedule_heartbeat(i, expires);
            return;
        }
        p.hb_pending = Some((nonce, now, now + p.rto));
        let mut info = Vec::with_capacity(16);
        info.extend_from_slice(&1u16.to_be_bytes());
        info.extend_from_slice(&16u16.to_be_bytes());
        info.extend_from_slice(&nonce.to_be_bytes());
        info.extend_from_slice(&(i as u32).to_be_bytes());
        self.ctrl
            .push_back((Dest::Path(i), Chunk::Heartbeat(info.into())));
        self.schedule_heartbeat(i, now);
    }

    fn on_heartbeat_timeout(&mut self, now: Instant, i: usize) {
        self.paths[i].hb_pending = None;
        let confirmed = self.paths[i].confirmed;
        self.paths[i].back_off(&self.cfg);
        if !confirmed {
            // Unconfirmed addresses are probed but never count towards the association.
            let p = &mut self.paths[i];
            p.errors += 1;
            if p.errors > self.cfg.path_max_retrans {
                p.hb_next = None;
            }
            return;
        }
        // Only heartbeats on the data path count towards the association (RFC 9260 §8.1).
        let current = i == self.current_path();
        if self.path_error(now, i, false) && current && self.paths[i].hb_next.is_some() {
            // An unanswered heartbeat on the data path is repeated at once, like a
            // retransmission (with the backed-off RTO as its timeout), rather than after another
            // HB.interval: a dead peer then shows within the RTO backoff alone.
            self.paths[i].hb_next = Some(now);
        }
    }

    // ------------------------------------------------------------------------------------
    // Output.

    /// The next packet to send, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.burst == 0 && self.ctrl.is_empty() && !self.sack_now {
            return None;
        }
        let packet = self.build_packet(now)?;
        self.burst = self.burst.saturating_sub(1);
        Some(packet)
    }

    fn header(&self, vtag: u32) -> CommonHeader {
        CommonHeader {
            src_port: self.local_port,
            dst_port: self.peer_port,
            vtag,
        }
    }

    fn build_packet(&mut self, now: Instant) -> Option<Transmit> {
        // Control chunks first; INIT must travel alone (RFC 9260 §5.1).
        if let Some((dest, _)) = self.ctrl.front() {
            let path = match *dest {
                Dest::Current => self.current_path(),
                Dest::Path(p) => p.min(self.paths.len() - 1),
            };
            if matches!(self.ctrl.front(), Some((_, Chunk::Init(_)))) {
                let (_, c) = self.ctrl.pop_front().expect("front exists");
                return Some(self.finish(path, 0, vec![c]));
            }
            let max = self.paths[path].max_packet;
            let mut size = crate::chunk::COMMON_HEADER_LEN;
            let mut chunks = Vec::new();
            let mut vtag = self.peer_tag;
            while let Some((d, c)) = self.ctrl.front() {
                let p = match *d {
                    Dest::Current => self.current_path(),
                    Dest::Path(p) => p.min(self.paths.len() - 1),
                };
                if p != path || matches!(c, Chunk::Init(_)) {
                    break;
                }
                let n = c.encoded_len();
                if !chunks.is_empty() && size + n > max {
                    break;
                }
                // Each SACK travels in its own packet: the peer's congestion control counts
                // packets with SACKs (Max.Burst per arrival).
                if matches!(c, Chunk::Sack(_)) && chunks.iter().any(|c| matches!(c, Chunk::Sack(_)))
                {
                    break;
                }
                if let Chunk::ShutdownComplete { reflected: true } = c {
                    vtag = self.local_tag;
                }
                size += n;
                chunks.push(self.ctrl.pop_front().expect("front exists").1);
            }
            let closing = chunks
                .iter()
                .any(|c| matches!(c, Chunk::Abort { .. } | Chunk::ShutdownComplete { .. }));
            if !closing && self.state != State::Closed {
                self.bundle_sack(&mut chunks, &mut size, max);
                if path == self.current_path() {
                    self.bundle_data(now, path, &mut chunks, &mut size, max);
                }
            }
            return Some(self.finish(path, vtag, chunks));
        }
        if self.state == State::Closed {
            return None;
        }
        // Retransmissions and new data, with a SACK if one is due. A SACK going alone returns
        // to where the DATA came from (RFC 9260 §6.4), if that address is confirmed.
        let mut path = self.current_path();
        if !self.has_sendable_data() || !self.data_allowed() {
            let back = self.sack_path.min(self.paths.len() - 1);
            if self.paths[back].confirmed {
                path = back;
            }
        }
        let max = self.paths[path].max_packet;
        let mut size = crate::chunk::COMMON_HEADER_LEN;
        let mut chunks = Vec::new();
        self.bundle_sack(&mut chunks, &mut size, max);
        if path == self.current_path() {
            self.bundle_data(now, path, &mut chunks, &mut size, max);
        }
        if chunks.is_empty() {
            return None;
        }
        Some(self.finish(path, self.peer_tag, chunks))
    }

    fn bundle_sack(&mut self, chunks: &mut Vec<Chunk>, size: &mut usize, max: usize) {
        if !(self.sack_needed && (self.sack_now || self.has_sendable_data())) {
            return;
        }
        let Some(rx) = self.rx.as_mut() else { return };
        let sack = rx.sack();
        let c = Chunk::Sack(sack);
        if *size + c.encoded_len() > max {
            return;
        }
        *size += c.encoded_len();
        chunks.push(c);
        self.sack_needed = false;
        self.sack_now = false;
        self.sack_deadline = None;
        self.unacked_packets = 0;
    }

    /// Builds a SACK now and queues it for the path the data came from.
    fn queue_sack(&mut self, path: usize) {
        let Some(rx) = self.rx.as_mut() else { return };
        let sack = rx.sack();
        let dest = if self.paths[path].confirmed {
            Dest::Path(path)
        } else {
            Dest::Current
        };
        self.ctrl.push_back((dest, Chunk::Sack(sack)));
        self.sack_needed = false;
        self.sack_now = false;
        self.sack_deadline = None;
        self.unacked_packets = 0;
    }

    fn has_sendable_data(&self) -> bool {
        self.inflight.iter().any(|c| c.retransmit) || !self.queue.is_empty()
    }

    fn data_allowed(&self) -> bool {
        matches!(
            self.state,
            State::Established | State::ShutdownPending | State::ShutdownReceived
        )
    }

    /// Adds retransmissions, then new DATA, within cwnd, rwnd and the packet size.
    fn bundle_data(
        &mut self,
        now: Instant,
        path: usize,
        chunks: &mut Vec<Chunk>,
        size: &mut usize,
        max: usize,
    ) {
        if !self.data_allowed() {
            return;
        }
        // Retransmissions first (§6.1 C). A fast retransmission ignores cwnd for one packet.
        let mut first_rtx = true;
        for k in 0..self.inflight.len() {
            let c = &self.inflight[k];
            if !c.retransmit {
                continue;
            }
            let cs = chunk_size(c.data.payload.len());
            if *size + cs > max {
                break;
            }
            let p = &self.paths[path];
            if p.flight >= p.cwnd && !(first_rtx && c.fast_retransmitted) {
                break;
            }
            first_rtx = false;
            let c = &mut self.inflight[k];
            let old_path = c.path;
            c.retransmit = false;
            c.transmissions += 1;
            c.sent_at = now;
            c.path = path;
            c.in_flight = true;
            let data = c.data.clone();
            if self.paths[old_path].rtt_probe == Some(data.tsn) {
                self.paths[old_path].rtt_probe = None;
            }
            self.paths[path].flight += cs;
            self.outstanding += cs;
            self.peer_rwnd = self.peer_rwnd.saturating_sub(cs);
            *size += cs;
            chunks.push(Chunk::Data(data));
            // R1, and restart if the earliest outstanding chunk is retransmitted.
            let p = &mut self.paths[path];
            if p.t3.is_none() || k == 0 {
                p.t3 = Some(now + p.rto);
            }
        }
        // New data (§6.1 A, B).
        while let Some(next) = self.queue.front() {
            if next.begin && next.expires.is_some_and(|e| e <= now) {
                self.expire_front();
                continue;
            }
            let cs = chunk_size(next.payload.len());
            if *size + cs > max {
                break;
            }
            let p = &self.paths[path];
            // B: one packet may breach cwnd by up to PMDCS - 1 if the flight is below cwnd.
            if p.flight >= p.cwnd {
                break;
            }
            // A: the peer's window, except a zero-window probe when nothing is outstanding.
            if cs - DATA_HEADER_LEN > self.peer_rwnd {
                let probe_ok = self.outstanding == 0
                    && self.inflight.is_empty()
                    && chunks.iter().all(|c| !matches!(c, Chunk::Data(_)));
                if !probe_ok {
                    break;
                }
                match self.zwp_at {
                    Some(t) if t > now => break,
                    _ => {
                        self.zwp_at = Some(now + self.paths[path].rto);
                    }
                }
            }
            let n = self.queue.pop_front().expect("front exists");
            let ssn = if n.unordered {
                0
            } else {
                if n.begin {
                    let s = &mut self.out_ssn[usize::from(n.stream)];
                    self.cur_ssn = *s;
                    *s = s.wrapping_add(1);
                }
                self.cur_ssn
            };
            let tsn = self.next_tsn;
            self.next_tsn = self.next_tsn.wrapping_add(1);
            let shutting_down = self.state == State::ShutdownPending && self.queue.is_empty();
            let data = DataChunk {
                tsn,
                stream: n.stream,
                ssn,
                ppid: n.ppid,
                unordered: n.unordered,
                begin: n.begin,
                end: n.end,
                immediate: shutting_down,
                payload: n.payload,
            };
            let p = &mut self.paths[path];
            p.flight += cs;
            if p.rtt_probe.is_none() {
                p.rtt_probe = Some(tsn);
            }
            if p.t3.is_none() {
                p.t3 = Some(now + p.rto);
            }
            self.outstanding += cs;
            self.peer_rwnd = self.peer_rwnd.saturating_sub(cs);
            *size += cs;
            chunks.push(Chunk::Data(data.clone()));
            self.inflight.push_back(Sent {
                data,
                path,
                sent_at: now,
                transmissions: 1,
                acked: false,
                miss: 0,
                retransmit: false,
                fast_retransmitted: false,
                in_flight: true,
            });
        }
        if chunks.iter().any(|c| matches!(c, Chunk::Data(_))) && self.paths[path].confirmed {
            // Data on a path makes it non-idle: push its heartbeat back.
            if self.cfg.heartbeat_interval.is_some() && self.paths[path].hb_pending.is_none() {
                self.schedule_heartbeat(path, now);
            }
        }
    }

    /// Drops the message at the front of the queue, none of it sent yet, and reports it.
    fn expire_front(&mut self) {
        let first = self.queue.pop_front().expect("front exists");
        let mut data = first.payload.to_vec();
        let mut end = first.end;
        while !end {
            let Some(f) = self.queue.pop_front() else {
                break;
            };
            data.extend_from_slice(&f.payload);
            end = f.end;
        }
        self.buffered -= data.len();
        self.check_writable();
        self.events.push_back(Event::Expired(Message {
            stream: first.stream,
            ppid: first.ppid,
            unordered: first.unordered,
            data: data.into(),
        }));
    }

    fn finish(&mut self, path: usize, vtag: u32, chunks: Vec<Chunk>) -> Transmit {
        let vtag = if matches!(chunks.first(), Some(Chunk::Init(_))) {
            0
        } else {
            vtag
        };
        Transmit {
            destination: self.paths[path].addr,
            payload: Packet::encode(&self.header(vtag), &chunks),
        }
    }

    /// Whether `poll_transmit` may produce something without new input.
    pub fn wants_to_send(&self) -> bool {
        !self.ctrl.is_empty()
            || self.sack_now
            || (self.data_allowed()
                && (self.inflight.iter().any(|c| c.retransmit) || !self.queue.is_empty()))
    }

    /// Peer restart (RFC 9260 §5.2.4 A): fresh state with the new tags, same paths.
    pub fn restart(&mut self, e: &Established, now: Instant) {
        let _ = self.take_undelivered();
        for p in &mut self.paths {
            p.reset_congestion();
            p.flight = 0;
            p.t3 = None;
            p.errors = 0;
            p.rtt_probe = None;
        }
        self.queue.clear();
        self.fast_recovery = None;
        self.error_count = 0;
        self.ctrl.clear();
        self.ctrl.push_back((Dest::Current, Chunk::CookieAck));
        self.tie_tags = (0, 0);
        self.establish(e, now);
        // `establish` reported Connected; a restart is reported as such instead.
        if let Some(Event::Connected { .. }) = self.events.back() {
            self.events.pop_back();
        }
        self.events.push_back(Event::Restarted);
    }

    /// A COOKIE ECHO matched our tags (RFC 9260 §5.2.4 B/D): (re)confirm and ack it.
    pub fn cookie_matched(&mut self, peer_tag: u32, now: Instant, path: usize) {
        self.peer_tag = peer_tag;
        if matches!(self.state, State::CookieWait | State::CookieEchoed) {
            if let Some(e) = self.pending_establish.take() {
                let e = Established { peer_tag, ..e };
                self.establish(&e, now);
            }
        }
        self.t1 = None;
        self.ctrl.push_back((Dest::Path(path), Chunk::CookieAck));
    }

    /// Establishes from a cookie while we were still in COOKIE-WAIT/ECHOED (collision B).
    pub fn establish_from_cookie(&mut self, e: &Established, now: Instant, path: usize) {
        self.pending_establish = None;
        self.establish(e, now);
        self.ctrl
            .retain(|(_, c)| !matches!(c, Chunk::Init(_) | Chunk::CookieEcho(_)));
        self.ctrl.push_back((Dest::Path(path), Chunk::CookieAck));
    }

    pub fn local_initial_tsn(&self) -> u32 {
        self.local_initial_tsn
    }

    /// Queues an ABORT for the peer (used when a COOKIE ECHO arrives during shutdown etc.).
    pub fn queue_error(&mut self, path: usize, c: ErrorCause) {
        self.ctrl
            .push_back((Dest::Path(path), Chunk::Error(vec![c])));
    }

    /// Re-sends SHUTDOWN ACK (RFC 9260 §5.2.4 A in SHUTDOWN-ACK-SENT).
    pub fn resend_shutdown_ack(&mut self, path: usize) {
        self.ctrl.push_back((Dest::Path(path), Chunk::ShutdownAck));
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes waiting to be sent or acknowledged.
    pub fn buffered(&self) -> usize {
        self.buffered
    }
}

/// Whether an address from an INIT may become a path (not unspecified / multicast).
pub(crate) fn usable_address(a: &IpAddr) -> bool {
    !(a.is_unspecified() || a.is_multicast())
}
