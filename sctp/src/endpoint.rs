//! The endpoint: owns associations, demultiplexes packets to them, answers INITs statelessly
//! with signed cookies (RFC 9260 §5.1), resolves collisions and restarts (§5.2), checks
//! verification tags (§8.5) and handles out-of-the-blue packets (§8.4).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::trace;

use crate::assoc::{
    Association, Established, Event, Jitter, SendError, State, Transmit, usable_address,
};
use crate::chunk::{Chunk, CommonHeader, ErrorCause, Init, Packet, cause, param_type};
use crate::config::{AssociationConfig, EndpointConfig};
use crate::cookie::{CookieData, CookieSigner};
use crate::path::{Path, PathInfo};
use crate::recv::Message;

/// Identifies an association within its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssocId(pub u64);

impl std::fmt::Display for AssocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why `connect` failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// No peer address given.
    #[error("no peer address")]
    NoAddress,
    /// An association with that peer on that port exists.
    #[error("already associated with that peer ({0})")]
    Exists(AssocId),
    /// The association limit is reached.
    #[error("association limit reached")]
    TooMany,
    /// Port 0 as the peer port.
    #[error("peer port 0")]
    InvalidPort,
}

/// Counters of what the endpoint saw (metrics, exported by drivers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams handled.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Dropped: too short, bad checksum or malformed chunks.
    pub malformed: u64,
    /// Dropped: verification tag mismatch.
    pub bad_vtag: u64,
    /// Out-of-the-blue packets.
    pub ootb: u64,
    /// INITs answered with an INIT ACK.
    pub inits_answered: u64,
    /// COOKIE ECHOs with an invalid MAC or unusable contents.
    pub bad_cookies: u64,
    /// Stale cookies.
    pub stale_cookies: u64,
    /// Associations established (both directions).
    pub established: u64,
}

/// A snapshot of an association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationInfo {
    /// Its state.
    pub state: State,
    /// Local SCTP port.
    pub local_port: u16,
    /// Peer SCTP port.
    pub peer_port: u16,
    /// Whether the peer initiated it.
    pub incoming: bool,
    /// Negotiated outbound streams (0 before establishment).
    pub outbound_streams: u16,
    /// Its paths.
    pub paths: Vec<PathInfo>,
    /// Bytes queued or unacknowledged.
    pub send_buffered: usize,
}

struct Slot {
    assoc: Association,
    deadline: Option<Instant>,
    dirty: bool,
}

/// A sans-IO SCTP endpoint: feed it datagrams and time; take packets, events and deadlines.
pub struct Endpoint {
    config: EndpointConfig,
    rng: StdRng,
    signer: CookieSigner,
    epoch: Instant,
    listening: HashSet<u16>,
    slots: HashMap<AssocId, Slot>,
    by_addr: HashMap<(u16, u16, IpAddr), AssocId>,
    next_id: u64,
    timers: BTreeSet<(Instant, AssocId)>,
    dirty: VecDeque<AssocId>,
    out: VecDeque<Transmit>,
    events: VecDeque<(AssocId, Event)>,
    stats: EndpointStats,
}

impl Endpoint {
    /// A new endpoint. `seed` seeds its random numbers (tags, TSNs, the cookie key, jitter);
    /// `now` starts its clock.
    pub fn new(config: EndpointConfig, seed: [u8; 32], now: Instant) -> Self {
        let mut rng = StdRng::from_seed(seed);
        let key: [u8; 32] = rng.random();
        Self {
            config,
            rng,
            signer: CookieSigner::new(key),
            epoch: now,
            listening: HashSet::new(),
            slots: HashMap::new(),
            by_addr: HashMap::new(),
            next_id: 1,
            timers: BTreeSet::new(),
            dirty: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// Accepts associations on an SCTP port.
    pub fn listen(&mut self, port: u16) {
        self.listening.insert(port);
    }

    /// Stops accepting associations on an SCTP port (existing ones stay).
    pub fn unlisten(&mut self, port: u16) {
        self.listening.remove(&port);
    }

    /// The endpoint's configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Number of associations held (any state).
    pub fn association_count(&self) -> usize {
        self.slots.len()
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn random_tag(&mut self) -> u32 {
        loop {
            let t: u32 = self.rng.random();
            if t != 0 {
                return t;
            }
        }
    }

    /// Starts an association to `peers` (peer IPs with their UDP encapsulation ports; the first
    /// is the primary) on SCTP port `peer_port`, from `local_port` (0 picks one).
    pub fn connect(
        &mut self,
        now: Instant,
        local_port: u16,
        peers: &[SocketAddr],
        peer_port: u16,
        config: Option<AssociationConfig>,
    ) -> Result<AssocId, ConnectError> {
        if peers.is_empty() {
            return Err(ConnectError::NoAddress);
        }
        if peer_port == 0 {
            return Err(ConnectError::InvalidPort);
        }
        if self.slots.len() >= self.config.max_associations {
            return Err(ConnectError::TooMany);
        }
        let local_port = if local_port != 0 {
            local_port
        } else {
            loop {
                let p = self.rng.random_range(49152..=65535u16);
                if !self.listening.contains(&p)
                    && peers
                        .iter()
                        .all(|a| !self.by_addr.contains_key(&(p, peer_port, a.ip())))
                {
                    break p;
                }
            }
        };
        for a in peers {
            if let Some(&id) = self.by_addr.get(&(local_port, peer_port, a.ip())) {
                return Err(ConnectError::Exists(id));
            }
        }
        let tag = self.random_tag();
        let tsn: u32 = self.rng.random();
        let jitter = Jitter::new(self.rng.random());
        let a = Association::connect(
            now,
            config.unwrap_or_else(|| self.config.association.clone()),
            local_port,
            peer_port,
            peers,
            &self.config.local_addresses,
            tag,
            tsn,
            jitter,
        );
        Ok(self.insert(a))
    }

    fn insert(&mut self, a: Association) -> AssocId {
        let id = AssocId(self.next_id);
        self.next_id += 1;
        for p in &a.paths {
            self.by_addr
                .insert((a.local_port, a.peer_port, p.addr.ip()), id);
        }
        self.slots.insert(
            id,
            Slot {
                assoc: a,
                deadline: None,
                dirty: false,
            },
        );
        self.update(id);
        id
    }

    /// Re-indexes an association after it changed: events, deadline, output, paths, removal.
    fn update(&mut self, id: AssocId) {
        self.reindex(id, true);
    }

    /// As [`Self::update`]; `may_send` false after the association just declined to send
    /// (it stays off the output list until new input, a timeout or a user call).
    fn reindex(&mut self, id: AssocId, may_send: bool) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        for e in slot.assoc.events.drain(..) {
            if matches!(e, Event::Connected { .. }) {
                self.stats.established += 1;
            }
            self.events.push_back((id, e));
        }
        // Paths learned from an INIT ACK need lookup entries.
        for p in &slot.assoc.paths {
            self.by_addr
                .entry((slot.assoc.local_port, slot.assoc.peer_port, p.addr.ip()))
                .or_insert(id);
        }
        let deadline = slot.assoc.poll_timeout();
        if deadline != slot.deadline {
            if let Some(d) = slot.deadline {
                self.timers.remove(&(d, id));
            }
            if let Some(d) = deadline {
                self.timers.insert((d, id));
            }
            slot.deadline = deadline;
        }
        if may_send && slot.assoc.wants_to_send() && !slot.dirty {
            slot.dirty = true;
            self.dirty.push_back(id);
        }
        if slot.assoc.is_closed() {
            let (lp, pp) = (slot.assoc.local_port, slot.assoc.peer_port);
            for p in &slot.assoc.paths {
                if self.by_addr.get(&(lp, pp, p.addr.ip())) == Some(&id) {
                    self.by_addr.remove(&(lp, pp, p.addr.ip()));
                }
            }
            if !slot.assoc.wants_to_send() && !slot.assoc.readable() {
                if let Some(d) = slot.deadline {
                    self.timers.remove(&(d, id));
                }
                self.slots.remove(&id);
            }
        }
    }

    /// Feeds a received UDP datagram (`from`: the sender's IP and UDP port).
    pub fn handle(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        self.stats.packets_in += 1;
        let Ok(pkt) = Packet::parse(&datagram) else {
            self.stats.malformed += 1;
            return;
        };
        let ip = from.ip();
        if ip.is_multicast() || ip.is_unspecified() || ip == IpAddr::from([255, 255, 255, 255]) {
            return; // RFC 9260 §8.4 (1)
        }
        let h = pkt.header;
        if h.src_port == 0 || h.dst_port == 0 {
            self.stats.malformed += 1;
            return;
        }
        match self.by_addr.get(&(h.dst_port, h.src_port, ip)).copied() {
            Some(id) => self.on_assoc_packet(now, id, from, pkt),
            None => self.on_ootb(now, from, pkt),
        }
    }

    fn on_assoc_packet(&mut self, now: Instant, id: AssocId, from: SocketAddr, pkt: Packet) {
        let h = pkt.header;
        match pkt.chunks.first() {
            Some(Chunk::Init(_)) => {
                if h.vtag != 0 || pkt.chunks.len() != 1 {
                    self.stats.bad_vtag += 1;
                    return;
                }
                let Some(Chunk::Init(init)) = pkt.chunks.into_iter().next() else {
                    unreachable!()
                };
                self.on_init_existing(now, id, from, h, init);
            }
            Some(Chunk::CookieEcho(_)) => self.on_cookie_echo_existing(now, id, from, pkt),
            _ => {
                let Some(slot) = self.slots.get_mut(&id) else {
                    return;
                };
                let a = &slot.assoc;
                let abort = pkt.chunks.iter().find_map(|c| match c {
                    Chunk::Abort { reflected, .. } | Chunk::ShutdownComplete { reflected } => {
                        Some(*reflected)
                    }
                    _ => None,
                });
                let ok = match abort {
                    // §8.5.1 B, C.
                    Some(reflected) => {
                        (!reflected && h.vtag == a.local_tag)
                            || (reflected && h.vtag == a.peer_tag && a.peer_tag != 0)
                    }
                    None => h.vtag == a.local_tag,
                };
                if !ok {
                    self.stats.bad_vtag += 1;
                    return;
                }
                if matches!(a.state, State::CookieWait | State::CookieEchoed)
                    && pkt.chunks.iter().any(|c| matches!(c, Chunk::ShutdownAck))
                {
                    // §8.5.1 E: treated as out of the blue.
                    self.on_ootb(now, from, pkt);
                    return;
                }
                slot.assoc.handle_chunks(now, from, pkt);
                self.update(id);
            }
        }
    }

    /// Validates an INIT's mandatory fields; returns the ABORT cause to send if unusable.
    fn init_problem(init: &Init) -> Option<ErrorCause> {
        if init.host_name {
            return Some(ErrorCause::new(cause::UNRESOLVABLE_ADDRESS, Vec::new()));
        }
        if init.initiate_tag == 0 || init.outbound_streams == 0 || init.inbound_streams == 0 {
            return Some(ErrorCause::new(
                cause::INVALID_MANDATORY_PARAMETER,
                Vec::new(),
            ));
        }
        None
    }

    fn send_abort(
        &mut self,
        to: SocketAddr,
        h: &CommonHeader,
        vtag: u32,
        reflected: bool,
        c: Option<ErrorCause>,
    ) {
        let header = CommonHeader {
            src_port: h.dst_port,
            dst_port: h.src_port,
            vtag,
        };
        self.out.push_back(Transmit {
            destination: to,
            payload: Packet::encode(
                &header,
                &[Chunk::Abort {
                    reflected,
                    causes: c.into_iter().collect(),
                }],
            ),
        });
    }

    /// Sends an INIT ACK with a fresh cookie.
    #[allow(clippy::too_many_arguments)]
    fn send_init_ack(
        &mut self,
        now: Instant,
        from: SocketAddr,
        h: &CommonHeader,
        init: &Init,
        local_tag: u32,
        local_initial_tsn: u32,
        tie: (u32, u32),
        cfg: &AssociationConfig,
    ) {
        let extension = init.cookie_preservative.unwrap_or(0).min(10_000);
        let cookie = CookieData {
            created_ms: self.now_ms(now),
            life_ms: self.config.cookie_life.as_millis() as u32 + extension,
            local_port: h.dst_port,
            peer_port: h.src_port,
            local_tag,
            local_initial_tsn,
            peer_tag: init.initiate_tag,
            peer_a_rwnd: init.a_rwnd,
            peer_initial_tsn: init.initial_tsn,
            outbound_streams: cfg.outbound_streams.min(init.inbound_streams),
            inbound_streams: cfg.inbound_streams.min(init.outbound_streams),
            tie_local: tie.0,
            tie_peer: tie.1,
            source: from,
            addresses: init
                .addresses
                .iter()
                .copied()
                .filter(usable_address)
                .collect(),
        };
        let ack = Init {
            initiate_tag: local_tag,
            a_rwnd: cfg.receive_window,
            outbound_streams: cfg.outbound_streams,
            inbound_streams: cfg.inbound_streams,
            initial_tsn: local_initial_tsn,
            addresses: self.config.local_addresses.clone(),
            cookie: Some(self.signer.seal(&cookie)),
            unrecognized_by_peer: init.unknown_to_report.clone(),
            ..Init::default()
        };
        let header = CommonHeader {
            src_port: h.dst_port,
            dst_port: h.src_port,
            vtag: init.initiate_tag,
        };
        self.stats.inits_answered += 1;
        self.out.push_back(Transmit {
            destination: from,
            payload: Packet::encode(&header, &[Chunk::InitAck(ack)]),
        });
    }

    /// An INIT for an existing association (RFC 9260 §5.2.1, §5.2.2, §9.2).
    fn on_init_existing(
        &mut self,
        now: Instant,
        id: AssocId,
        from: SocketAddr,
        h: CommonHeader,
        init: Init,
    ) {
        if let Some(c) = Self::init_problem(&init) {
            self.send_abort(from, &h, init.initiate_tag, false, Some(c));
            return;
        }
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let a = &mut slot.assoc;
        let new_addresses: Vec<IpAddr> = std::iter::once(from.ip())
            .chain(init.addresses.iter().copied())
            .filter(|ip| usable_address(ip) && a.path_by_ip(*ip).is_none())
            .collect();
        let state = a.state;
        if state == State::ShutdownAckSent {
            let path = a.path_by_ip(from.ip()).unwrap_or(0);
            a.resend_shutdown_ack(path);
            self.update(id);
            return;
        }
        if !new_addresses.is_empty() && state != State::CookieWait {
            let info: Vec<u8> = new_addresses
                .iter()
                .flat_map(|ip| match ip {
                    IpAddr::V4(v) => [
                        &param_type::IPV4.to_be_bytes()[..],
                        &8u16.to_be_bytes(),
                        &v.octets(),
                    ]
                    .concat(),
                    IpAddr::V6(v) => [
                        &param_type::IPV6.to_be_bytes()[..],
                        &20u16.to_be_bytes(),
                        &v.octets(),
                    ]
                    .concat(),
                })
                .collect();
            self.send_abort(
                from,
                &h,
                init.initiate_tag,
                false,
                Some(ErrorCause::new(cause::RESTART_WITH_NEW_ADDRESSES, info)),
            );
            return;
        }
        let cfg = a.cfg.clone();
        let (tag, tsn, tie) = match state {
            // Collision: answer with our original INIT's parameters (§5.2.1).
            State::CookieWait => (a.local_tag, a.local_initial_tsn(), (0, 0)),
            State::CookieEchoed => {
                a.tie_tags = (a.local_tag, a.peer_tag);
                (
                    a.local_tag,
                    a.local_initial_tsn(),
                    (a.local_tag, a.peer_tag),
                )
            }
            // Possible peer restart (§5.2.2): new tag and TSN, our tags as tie-tags.
            _ => {
                a.tie_tags = (a.local_tag, a.peer_tag);
                let tie = a.tie_tags;
                let tag = self.random_tag();
                let tsn: u32 = self.rng.random();
                (tag, tsn, tie)
            }
        };
        self.send_init_ack(now, from, &h, &init, tag, tsn, tie, &cfg);
    }

    fn open_cookie(&mut self, cookie: &[u8], h: &CommonHeader) -> Option<CookieData> {
        match self.signer.open(cookie) {
            Ok(c)
                if c.local_tag == h.vtag
                    && c.local_port == h.dst_port
                    && c.peer_port == h.src_port =>
            {
                Some(c)
            }
            _ => {
                self.stats.bad_cookies += 1;
                None
            }
        }
    }

    fn established_from(c: &CookieData) -> Established {
        Established {
            local_tag: c.local_tag,
            peer_tag: c.peer_tag,
            local_initial_tsn: c.local_initial_tsn,
            peer_initial_tsn: c.peer_initial_tsn,
            peer_a_rwnd: c.peer_a_rwnd,
            outbound_streams: c.outbound_streams,
            inbound_streams: c.inbound_streams,
        }
    }

    fn stale_cookie_error(
        &mut self,
        from: SocketAddr,
        h: &CommonHeader,
        c: &CookieData,
        stale_us: u32,
    ) {
        self.stats.stale_cookies += 1;
        let header = CommonHeader {
            src_port: h.dst_port,
            dst_port: h.src_port,
            vtag: c.peer_tag,
        };
        self.out.push_back(Transmit {
            destination: from,
            payload: Packet::encode(
                &header,
                &[Chunk::Error(vec![ErrorCause::new(
                    cause::STALE_COOKIE,
                    stale_us.to_be_bytes().to_vec(),
                )])],
            ),
        });
    }

    /// A COOKIE ECHO for an existing association (RFC 9260 §5.2.4, Table 12).
    fn on_cookie_echo_existing(
        &mut self,
        now: Instant,
        id: AssocId,
        from: SocketAddr,
        mut pkt: Packet,
    ) {
        let h = pkt.header;
        let Some(Chunk::CookieEcho(cookie)) = pkt.chunks.first() else {
            return;
        };
        let Some(c) = self.open_cookie(&cookie.clone(), &h) else {
            return;
        };
        let now_ms = self.now_ms(now);
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let a = &mut slot.assoc;
        let (lt, pt) = (a.local_tag, a.peer_tag);
        let local_m = c.local_tag == lt;
        let peer_m = c.peer_tag == pt;
        if let Some(stale) = c.staleness(now_ms) {
            if !(local_m && peer_m) {
                self.stale_cookie_error(from, &h, &c, stale);
                return;
            }
        }
        let path = a.path_by_ip(from.ip()).unwrap_or(0);
        let e = Self::established_from(&c);
        pkt.chunks.remove(0);
        if !local_m && !peer_m && c.tie_local == lt && c.tie_peer == pt {
            // A: the peer restarted.
            if a.state == State::ShutdownAckSent {
                a.resend_shutdown_ack(path);
                a.queue_error(
                    path,
                    ErrorCause::new(cause::COOKIE_WHILE_SHUTTING_DOWN, Vec::new()),
                );
                self.update(id);
                return;
            }
            a.restart(&e, now);
        } else if local_m && (!peer_m || pt == 0) {
            // B: collision; the peer picked a new tag.
            if matches!(a.state, State::CookieWait | State::CookieEchoed) {
                a.establish_from_cookie(&e, now, path);
            } else {
                a.cookie_matched(c.peer_tag, now, path);
            }
        } else if !local_m && peer_m && c.tie_local == 0 && c.tie_peer == 0 {
            // C: our own cookie arrived late.
            return;
        } else if local_m && peer_m {
            // D: a retransmitted COOKIE ECHO.
            a.cookie_matched(c.peer_tag, now, path);
        } else {
            return;
        }
        if !pkt.chunks.is_empty() {
            a.handle_chunks(now, from, pkt);
        }
        self.update(id);
    }

    fn on_ootb(&mut self, now: Instant, from: SocketAddr, mut pkt: Packet) {
        self.stats.ootb += 1;
        let h = pkt.header;
        if pkt.chunks.iter().any(|c| matches!(c, Chunk::Abort { .. })) {
            return; // (2)
        }
        match pkt.chunks.first() {
            Some(Chunk::Init(_)) => {
                if h.vtag != 0 || pkt.chunks.len() != 1 {
                    return;
                }
                let Some(Chunk::Init(init)) = pkt.chunks.pop() else {
                    unreachable!()
                };
                if !self.listening.contains(&h.dst_port) {
                    self.send_abort(from, &h, init.initiate_tag, false, None);
                    return;
                }
                if let Some(c) = Self::init_problem(&init) {
                    self.send_abort(from, &h, init.initiate_tag, false, Some(c));
                    return;
                }
                let tag = self.random_tag();
                let tsn: u32 = self.rng.random();
                let cfg = self.config.association.clone();
                self.send_init_ack(now, from, &h, &init, tag, tsn, (0, 0), &cfg);
                return;
            }
            Some(Chunk::CookieEcho(cookie)) if self.listening.contains(&h.dst_port) => {
                let cookie = cookie.clone();
                let Some(c) = self.open_cookie(&cookie, &h) else {
                    return;
                };
                if let Some(stale) = c.staleness(self.now_ms(now)) {
                    self.stale_cookie_error(from, &h, &c, stale);
                    return;
                }
                if self.slots.len() >= self.config.max_associations {
                    self.send_abort(
                        from,
                        &h,
                        c.peer_tag,
                        false,
                        Some(ErrorCause::new(cause::OUT_OF_RESOURCE, Vec::new())),
                    );
                    return;
                }
                self.accept(now, from, c, pkt);
                return;
            }
            _ => {}
        }
        if pkt.chunks.iter().any(|c| matches!(c, Chunk::ShutdownAck)) {
            // (5): SHUTDOWN COMPLETE with the T bit, tag reflected.
            let header = CommonHeader {
                src_port: h.dst_port,
                dst_port: h.src_port,
                vtag: h.vtag,
            };
            self.out.push_back(Transmit {
                destination: from,
                payload: Packet::encode(&header, &[Chunk::ShutdownComplete { reflected: true }]),
            });
            return;
        }
        let silent = pkt.chunks.iter().any(|c| match c {
            Chunk::ShutdownComplete { .. } | Chunk::CookieAck => true,
            Chunk::Error(causes) => causes.iter().any(|c| c.code == cause::STALE_COOKIE),
            _ => false,
        });
        if silent || pkt.chunks.is_empty() {
            return; // (6), (7)
        }
        trace!(%from, "out-of-the-blue packet: ABORT");
        self.send_abort(from, &h, h.vtag, true, None); // (8)
    }

    /// Creates an association from a valid cookie (RFC 9260 §5.1 D).
    fn accept(&mut self, now: Instant, from: SocketAddr, c: CookieData, mut pkt: Packet) {
        let cfg = self.config.association.clone();
        let mut paths = vec![Path::new(from, true, &cfg)];
        for ip in &c.addresses {
            if *ip != from.ip() && !paths.iter().any(|p| p.addr.ip() == *ip) {
                paths.push(Path::new(SocketAddr::new(*ip, from.port()), false, &cfg));
            }
        }
        let e = Self::established_from(&c);
        let jitter = Jitter::new(self.rng.random());
        let a = Association::accept(cfg, c.local_port, c.peer_port, paths, &e, jitter, now);
        let id = self.insert(a);
        pkt.chunks.remove(0);
        if !pkt.chunks.is_empty() {
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.assoc.handle_chunks(now, from, pkt);
            }
            self.update(id);
        }
    }

    /// The next deadline, if any: call [`Endpoint::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Each association runs once per call: one that would still be due after running
        // (a bug) is deferred by a millisecond instead of spinning here forever.
        let due: Vec<AssocId> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|&(_, id)| id)
            .collect();
        for id in due {
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            if let Some(d) = slot.deadline.take() {
                self.timers.remove(&(d, id));
            }
            slot.assoc.handle_timeout(now);
            self.update(id);
            if let Some(slot) = self.slots.get_mut(&id) {
                if let Some(d) = slot.deadline.filter(|&d| d <= now) {
                    tracing::error!(?id, "an SCTP timer is still due after running: deferred");
                    self.timers.remove(&(d, id));
                    let later = now + Duration::from_millis(1);
                    self.timers.insert((later, id));
                    slot.deadline = Some(later);
                }
            }
        }
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(t) = self.out.pop_front() {
            self.stats.packets_out += 1;
            return Some(t);
        }
        while let Some(&id) = self.dirty.front() {
            let Some(slot) = self.slots.get_mut(&id) else {
                self.dirty.pop_front();
                continue;
            };
            if let Some(t) = slot.assoc.poll_transmit(now) {
                self.stats.packets_out += 1;
                self.update(id);
                return Some(t);
            }
            slot.dirty = false;
            self.dirty.pop_front();
            self.reindex(id, false);
        }
        None
    }

    /// Whether events are waiting for [`Endpoint::poll_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event of any association.
    pub fn poll_event(&mut self) -> Option<(AssocId, Event)> {
        self.events.pop_front()
    }

    /// Queues a message. Large messages are fragmented; `unordered` skips stream ordering.
    pub fn send(
        &mut self,
        id: AssocId,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: Bytes,
    ) -> Result<(), SendError> {
        self.send_expiring(id, stream, ppid, unordered, data, None)
    }

    /// As [`send`](Self::send), with a lifetime: if no part of the message has been sent by
    /// `expires`, it is dropped and reported as [`Event::Expired`](crate::Event::Expired).
    pub fn send_expiring(
        &mut self,
        id: AssocId,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: Bytes,
        expires: Option<Instant>,
    ) -> Result<(), SendError> {
        let slot = self
            .slots
            .get_mut(&id)
            .ok_or(SendError::UnknownAssociation)?;
        slot.assoc
            .send_expiring(stream, ppid, unordered, data, expires)?;
        self.update(id);
        Ok(())
    }

    /// Whether [`recv`](Self::recv) would return a message of the association.
    pub fn readable(&self, id: AssocId) -> bool {
        self.slots.get(&id).is_some_and(|s| s.assoc.readable())
    }

    /// Bytes that [`send`](Self::send) accepts now on the association without `WouldBlock`.
    pub fn send_capacity(&self, id: AssocId) -> usize {
        self.slots.get(&id).map_or(0, |s| s.assoc.send_capacity())
    }

    /// The next received message of an association.
    pub fn recv(&mut self, id: AssocId) -> Option<Message> {
        let m = self.slots.get_mut(&id)?.assoc.recv();
        self.update(id);
        m
    }

    /// Starts a graceful shutdown: queued messages are delivered first.
    pub fn shutdown(&mut self, id: AssocId, now: Instant) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.assoc.shutdown(now);
            self.update(id);
        }
    }

    /// Aborts an association (ABORT with User-Initiated Abort).
    pub fn abort(&mut self, id: AssocId) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.assoc.abort();
            self.update(id);
        }
    }

    /// Makes the path to `ip` the primary.
    pub fn set_primary(&mut self, id: AssocId, ip: IpAddr) -> bool {
        self.slots
            .get_mut(&id)
            .is_some_and(|s| s.assoc.set_primary(ip))
    }

    /// A snapshot of an association.
    pub fn association(&self, id: AssocId) -> Option<AssociationInfo> {
        let a = &self.slots.get(&id)?.assoc;
        Some(AssociationInfo {
            state: a.state,
            local_port: a.local_port,
            peer_port: a.peer_port,
            incoming: a.incoming,
            outbound_streams: a.outbound_streams(),
            paths: a.path_info(),
            send_buffered: a.buffered(),
        })
    }

    /// The receiving side's internal state, for debugging.
    #[doc(hidden)]
    pub fn debug_receiver(&self, id: AssocId) -> String {
        self.slots
            .get(&id)
            .map_or_else(String::new, |s| s.assoc.debug_receiver())
    }

    /// The ids of all associations.
    pub fn associations(&self) -> Vec<AssocId> {
        let mut v: Vec<_> = self.slots.keys().copied().collect();
        v.sort();
        v
    }
}
