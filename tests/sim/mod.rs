//! A deterministic simulation of registrars and ASAP clients (PEs, PUs) in one process: the
//! sans-IO cores connected by a simulated network with a virtual clock, latency, crashes and
//! hangs. Replayable from a seed.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rserpool::asap::ClientError;
use rserpool::asap::{
    AsapClient, ClientConfig, ClientEvent, ClientOutput, Outcome, PoolElementSpec, RequestId,
};
use rserpool::handlespace::AssociationId;
use rserpool::registrar::{Output, PeerInfo, Registrar, RegistrarConfig, Role};
use rserpool::wire::{Policy, PoolHandle, RegistrarId, SctpTransport, Transport, TransportUse};

/// A pool handle from a string that is one.
pub fn ph(s: &str) -> PoolHandle {
    PoolHandle::try_from(s).unwrap()
}

/// A PE spec whose SCTP user transport takes the addresses of its registrar association.
pub fn spec(pool: &str, port: u16, policy: Policy, interval: Duration) -> PoolElementSpec {
    PoolElementSpec {
        pool_handle: ph(pool),
        pe_id: None,
        user_transport: Transport::Sctp(SctpTransport {
            port,
            transport_use: TransportUse::DataOnly,
            addresses: Vec::new(),
        }),
        policy,
        reregistration_interval: interval,
    }
}

/// One registrar in the simulation.
pub struct PrNode {
    pub core: Registrar,
    pub addr: IpAddr,
    pub alive: bool,
    /// Its network partition: registrars in different groups cannot reach each other.
    pub group: u8,
}

/// An ENRP association between two registrars (`a` opened it).
#[derive(Clone, Copy, Debug)]
struct PLink {
    a: usize,
    a_assoc: AssociationId,
    b: usize,
    b_assoc: AssociationId,
    up: bool,
}

/// One ASAP client (PE or PU process).
pub struct ClNode {
    pub core: AsapClient,
    pub addr: IpAddr,
    pub port: u16,
    /// A hung process: takes no input, runs no timers; its associations stay up.
    pub frozen: bool,
    pub alive: bool,
    pub listens_announces: bool,
    pub events: Vec<ClientEvent>,
    pub outputs_seen: Vec<(Duration, ClientOutput)>,
}

#[derive(Clone, Copy, Debug)]
struct Link {
    client: usize,
    c_assoc: AssociationId,
    pr: usize,
    r_assoc: AssociationId,
    up: bool,
}

#[derive(Debug)]
enum Ev {
    Connected(usize),
    ConnectFailed(usize, AssociationId),
    ToPr(usize, Bytes),
    ToClient(usize, Bytes),
    DownAtPr(usize),
    DownAtClient(usize),
    Announce(usize, usize, Bytes),
    /// ENRP association `l` up at both ends.
    PConnected(usize),
    /// A registrar's connect failed.
    PConnectFailed(usize, AssociationId),
    /// ENRP message on link `l` to side `to_b`.
    Enrp(usize, bool, Bytes),
    /// ENRP link `l` down at the registrar on side `b`.
    PDown(usize, bool),
    /// An ENRP multicast Presence from registrar to registrar.
    EnrpAnnounce(usize, usize, Bytes),
    /// A takeover association from a registrar to a client is up at the registrar.
    AsapConnected(usize),
    /// A takeover association from a registrar could not be opened.
    AsapConnectFailed(usize, AssociationId),
}

/// The simulated world.
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub latency: Duration,
    /// How long a lost peer takes to be noticed by SCTP (failure detection).
    pub detection: Duration,
    /// How long a connect to a missing registrar takes to fail.
    pub connect_timeout: Duration,
    pub prs: Vec<PrNode>,
    pub clients: Vec<ClNode>,
    links: Vec<Link>,
    by_client: HashMap<(usize, AssociationId), usize>,
    by_pr: HashMap<(usize, AssociationId), usize>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    next_pr_assoc: u64,
    /// Registrars unreachable from the network (connects fail).
    pub blackholed: Vec<usize>,
    /// Messages delivered to registrars, per registrar.
    pub delivered_to_pr: Vec<u64>,
    plinks: Vec<PLink>,
    by_pr_enrp: HashMap<(usize, AssociationId), (usize, bool)>,
    /// Packet loss between registrars: each ENRP message is delayed by a retransmission
    /// (SCTP) with this probability, and each multicast Presence lost.
    pub loss: f64,
    /// The retransmission delay of a lost SCTP packet.
    pub rto: Duration,
    rng: StdRng,
    /// ENRP messages and bytes delivered between registrars.
    pub enrp_messages: u64,
    pub enrp_bytes: u64,
    /// ENRP messages and bytes delivered, by message type.
    pub enrp_by_type: BTreeMap<u8, (u64, u64)>,
}

pub const PR_PORT: u16 = 3863;

impl Sim {
    pub fn new() -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            latency: Duration::from_millis(5),
            detection: Duration::from_millis(1200),
            connect_timeout: Duration::from_secs(3),
            prs: Vec::new(),
            clients: Vec::new(),
            links: Vec::new(),
            by_client: HashMap::new(),
            by_pr: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            next_pr_assoc: 1,
            blackholed: Vec::new(),
            delivered_to_pr: Vec::new(),
            plinks: Vec::new(),
            by_pr_enrp: HashMap::new(),
            loss: 0.0,
            rto: Duration::from_millis(500),
            rng: StdRng::seed_from_u64(0),
            enrp_messages: 0,
            enrp_bytes: 0,
            enrp_by_type: BTreeMap::new(),
        }
    }

    /// A world whose random choices (loss) come from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            ..Self::new()
        }
    }

    /// The ENRP endpoint of registrar `i`.
    pub fn pr_enrp_endpoint(i: usize) -> SocketAddr {
        SocketAddr::new(Self::pr_addr(i), rserpool::wire::ENRP_PORT)
    }

    /// Whether registrars `a` and `b` can reach each other.
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.prs[a].alive
            && self.prs[b].alive
            && self.prs[a].group == self.prs[b].group
            && !self.blackholed.contains(&a)
            && !self.blackholed.contains(&b)
    }

    /// The delay of one message between registrars: the latency, plus an RTO if the packet
    /// was lost (SCTP retransmits it).
    fn enrp_delay(&mut self) -> Duration {
        let mut d = self.latency;
        while self.loss > 0.0 && self.rng.random_bool(self.loss) {
            d += self.rto;
        }
        d
    }

    /// Splits the registrars into partitions (`groups[i]` for registrar `i`); ENRP links
    /// across them go down after the detection time.
    pub fn partition(&mut self, groups: &[u8]) {
        for (i, &g) in groups.iter().enumerate() {
            self.prs[i].group = g;
        }
        let t = self.now + self.detection;
        for l in 0..self.plinks.len() {
            let pl = self.plinks[l];
            if pl.up && !self.reachable(pl.a, pl.b) {
                self.plinks[l].up = false;
                self.push(t, Ev::PDown(l, false));
                self.push(t, Ev::PDown(l, true));
            }
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        for p in &mut self.prs {
            p.group = 0;
        }
    }

    /// Restarts a crashed registrar with a fresh core (same ID and settings).
    pub fn restart_registrar(&mut self, p: usize, config: RegistrarConfig, seed: u64) {
        assert!(!self.prs[p].alive);
        // Nothing of the old incarnation reaches the new one (it reuses association IDs).
        for pl in &mut self.plinks {
            if pl.a == p || pl.b == p {
                pl.up = false;
            }
        }
        for l in &mut self.links {
            if l.pr == p {
                l.up = false;
            }
        }
        self.queue.retain(|_, ev| {
            !matches!(ev, Ev::PConnectFailed(q, _) | Ev::AsapConnectFailed(q, _) if *q == p)
        });
        self.prs[p].core = Registrar::new(config, seed, self.now);
        self.prs[p].alive = true;
        self.pump();
    }

    /// Seconds since the start, for messages.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn pr_addr(i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8))
    }

    pub fn pr_endpoint(i: usize) -> SocketAddr {
        SocketAddr::new(Self::pr_addr(i), PR_PORT)
    }

    pub fn add_registrar(&mut self, config: RegistrarConfig, seed: u64) -> usize {
        let i = self.prs.len();
        self.prs.push(PrNode {
            core: Registrar::new(config, seed, self.now),
            addr: Self::pr_addr(i),
            alive: true,
            group: 0,
        });
        self.delivered_to_pr.push(0);
        i
    }

    pub fn registrar_config(id: u32) -> RegistrarConfig {
        let mut c = RegistrarConfig::new(RegistrarId(id));
        c.server_announce_cycle = None;
        c
    }

    pub fn add_client(&mut self, config: ClientConfig, seed: u64) -> usize {
        let i = self.clients.len();
        self.clients.push(ClNode {
            core: AsapClient::new(config, seed),
            addr: IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, 1 + (i % 250) as u8)),
            port: 40000 + i as u16,
            frozen: false,
            alive: true,
            listens_announces: false,
            events: Vec::new(),
            outputs_seen: Vec::new(),
        });
        i
    }

    /// A client configured with these registrars.
    pub fn client_config(prs: &[usize]) -> ClientConfig {
        ClientConfig {
            registrars: prs.iter().map(|&p| Self::pr_endpoint(p)).collect(),
            ..ClientConfig::default()
        }
    }

    pub fn client_addr(&self, c: usize) -> IpAddr {
        self.clients[c].addr
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Calls into a client core with the current time and processes what it produced.
    pub fn with_client<R>(&mut self, c: usize, f: impl FnOnce(&mut AsapClient, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.clients[c].core, now);
        self.pump();
        r
    }

    /// Calls into a registrar core with the current time.
    pub fn with_registrar<R>(
        &mut self,
        p: usize,
        f: impl FnOnce(&mut Registrar, Instant) -> R,
    ) -> R {
        let now = self.now;
        let r = f(&mut self.prs[p].core, now);
        self.pump();
        r
    }

    /// Moves every core's output into the network.
    pub fn pump(&mut self) {
        loop {
            let mut any = false;
            for p in 0..self.prs.len() {
                while let Some(o) = self.prs[p].core.poll_output() {
                    any = true;
                    if !self.prs[p].alive {
                        continue;
                    }
                    self.pr_output(p, o);
                }
            }
            for c in 0..self.clients.len() {
                while let Some(o) = self.clients[c].core.poll_output() {
                    any = true;
                    if !self.clients[c].alive {
                        continue;
                    }
                    let t = self.now - self.start;
                    self.clients[c].outputs_seen.push((t, o.clone()));
                    self.client_output(c, o);
                }
                while let Some(e) = self.clients[c].core.poll_event() {
                    self.clients[c].events.push(e);
                }
            }
            if !any {
                break;
            }
        }
    }

    fn pr_output(&mut self, p: usize, o: Output) {
        let at = self.now + self.latency;
        match o {
            Output::Send {
                association,
                message,
            } => {
                if let Some(&l) = self.by_pr.get(&(p, association)) {
                    if self.links[l].up {
                        self.push(at, Ev::ToClient(l, message));
                    }
                }
            }
            Output::Abort { association } => {
                if let Some(&l) = self.by_pr.get(&(p, association)) {
                    if self.links[l].up {
                        self.links[l].up = false;
                        self.push(at, Ev::DownAtClient(l));
                    }
                }
            }
            Output::Announce { message } => {
                for c in 0..self.clients.len() {
                    if self.clients[c].listens_announces {
                        self.push(at, Ev::Announce(p, c, message.clone()));
                    }
                }
            }
            Output::SendEnrp {
                association,
                message,
            } => {
                if let Some(&(l, is_b)) = self.by_pr_enrp.get(&(p, association)) {
                    if self.plinks[l].up {
                        let at = self.now + self.enrp_delay();
                        self.push(at, Ev::Enrp(l, !is_b, message));
                    }
                }
            }
            Output::EnrpAnnounce { message } => {
                for q in 0..self.prs.len() {
                    if q != p && self.reachable(p, q) && !self.rng.random_bool(self.loss) {
                        self.push(at, Ev::EnrpAnnounce(p, q, message.clone()));
                    }
                }
            }
            Output::Connect {
                association,
                role: Role::Enrp,
                addresses,
                port,
            } => {
                let target = (0..self.prs.len()).find(|&q| {
                    addresses.contains(&self.prs[q].addr) && port == rserpool::wire::ENRP_PORT
                });
                match target {
                    Some(q) if q != p && self.reachable(p, q) => {
                        let b_assoc = AssociationId(self.next_pr_assoc);
                        self.next_pr_assoc += 1;
                        let l = self.plinks.len();
                        self.plinks.push(PLink {
                            a: p,
                            a_assoc: association,
                            b: q,
                            b_assoc,
                            up: true,
                        });
                        self.by_pr_enrp.insert((p, association), (l, false));
                        self.by_pr_enrp.insert((q, b_assoc), (l, true));
                        self.push(self.now + self.latency * 2, Ev::PConnected(l));
                    }
                    _ => {
                        let t = self.now + self.connect_timeout;
                        self.push(t, Ev::PConnectFailed(p, association));
                    }
                }
            }
            Output::Connect {
                association,
                role: Role::Asap,
                addresses,
                port,
            } => {
                let target = (0..self.clients.len()).find(|&c| {
                    addresses.contains(&self.clients[c].addr) && self.clients[c].port == port
                });
                match target {
                    Some(c) if self.clients[c].alive && !self.blackholed.contains(&p) => {
                        let addr = self.clients[c].addr;
                        let c_assoc = self.clients[c].core.incoming_association(vec![addr]);
                        let l = self.links.len();
                        self.links.push(Link {
                            client: c,
                            c_assoc,
                            pr: p,
                            r_assoc: association,
                            up: true,
                        });
                        self.by_client.insert((c, c_assoc), l);
                        self.by_pr.insert((p, association), l);
                        self.push(self.now + self.latency * 2, Ev::AsapConnected(l));
                    }
                    _ => {
                        let t = self.now + self.connect_timeout;
                        self.push(t, Ev::AsapConnectFailed(p, association));
                    }
                }
            }
        }
    }

    fn client_output(&mut self, c: usize, o: ClientOutput) {
        let at = self.now + self.latency;
        match o {
            ClientOutput::Connect {
                association,
                remote,
            } => {
                let target = (0..self.prs.len()).find(|&p| {
                    remote
                        .iter()
                        .any(|r| r.ip() == self.prs[p].addr && r.port() == PR_PORT)
                });
                match target {
                    Some(p) if self.prs[p].alive && !self.blackholed.contains(&p) => {
                        let r_assoc = AssociationId(self.next_pr_assoc);
                        self.next_pr_assoc += 1;
                        let l = self.links.len();
                        self.links.push(Link {
                            client: c,
                            c_assoc: association,
                            pr: p,
                            r_assoc,
                            up: true,
                        });
                        self.by_client.insert((c, association), l);
                        self.by_pr.insert((p, r_assoc), l);
                        self.push(self.now + self.latency * 2, Ev::Connected(l));
                    }
                    _ => {
                        let t = self.now + self.connect_timeout;
                        self.push(t, Ev::ConnectFailed(c, association));
                    }
                }
            }
            ClientOutput::Send {
                association,
                message,
            } => {
                if let Some(&l) = self.by_client.get(&(c, association)) {
                    if self.links[l].up {
                        self.push(at, Ev::ToPr(l, message));
                    }
                }
            }
            ClientOutput::Close { association } | ClientOutput::Abort { association } => {
                if let Some(&l) = self.by_client.get(&(c, association)) {
                    if self.links[l].up {
                        self.links[l].up = false;
                        self.push(at, Ev::DownAtPr(l));
                    }
                }
            }
        }
    }

    fn deliver(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Connected(l) => {
                let link = self.links[l];
                if !link.up {
                    return;
                }
                let peer = PeerInfo::new(
                    vec![self.clients[link.client].addr],
                    self.clients[link.client].port,
                );
                self.prs[link.pr]
                    .core
                    .association_up(now, link.r_assoc, peer);
                let local = vec![self.clients[link.client].addr];
                if self.clients[link.client].alive && !self.clients[link.client].frozen {
                    self.clients[link.client]
                        .core
                        .association_up(now, link.c_assoc, local);
                }
            }
            Ev::ConnectFailed(c, a) => {
                if self.clients[c].alive && !self.clients[c].frozen {
                    self.clients[c].core.association_failed(now, a);
                }
            }
            Ev::ToPr(l, m) => {
                let link = self.links[l];
                if link.up && self.prs[link.pr].alive {
                    self.delivered_to_pr[link.pr] += 1;
                    self.prs[link.pr].core.handle_message(now, link.r_assoc, &m);
                }
            }
            Ev::ToClient(l, m) => {
                let link = self.links[l];
                let cl = &mut self.clients[link.client];
                if link.up && cl.alive && !cl.frozen {
                    cl.core.handle_message(now, link.c_assoc, &m);
                }
            }
            Ev::DownAtPr(l) => {
                let link = self.links[l];
                self.prs[link.pr].core.association_down(now, link.r_assoc);
            }
            Ev::DownAtClient(l) => {
                let link = self.links[l];
                if self.clients[link.client].alive {
                    self.clients[link.client]
                        .core
                        .association_down(now, link.c_assoc);
                }
            }
            Ev::Announce(p, c, m) => {
                if self.clients[c].alive && !self.clients[c].frozen {
                    let src = SocketAddr::new(self.prs[p].addr, PR_PORT);
                    self.clients[c].core.handle_announce(now, src, &m);
                }
            }
            Ev::PConnected(l) => {
                let pl = self.plinks[l];
                if !pl.up {
                    return;
                }
                let (a_addr, b_addr) = (self.prs[pl.a].addr, self.prs[pl.b].addr);
                self.prs[pl.b].core.peer_association_up(
                    now,
                    pl.b_assoc,
                    PeerInfo::new(vec![a_addr], 50000 + pl.a as u16),
                );
                self.prs[pl.a].core.connected(
                    now,
                    pl.a_assoc,
                    PeerInfo::new(vec![b_addr], rserpool::wire::ENRP_PORT),
                );
            }
            Ev::PConnectFailed(p, a) => {
                if self.prs[p].alive {
                    self.prs[p].core.connect_failed(now, a);
                }
            }
            Ev::Enrp(l, to_b, m) => {
                let pl = self.plinks[l];
                let (to, assoc) = if to_b {
                    (pl.b, pl.b_assoc)
                } else {
                    (pl.a, pl.a_assoc)
                };
                if pl.up && self.prs[to].alive {
                    self.enrp_messages += 1;
                    self.enrp_bytes += m.len() as u64;
                    let t = self
                        .enrp_by_type
                        .entry(m.first().copied().unwrap_or(0))
                        .or_default();
                    t.0 += 1;
                    t.1 += m.len() as u64;
                    self.prs[to].core.handle_enrp(now, assoc, &m);
                }
            }
            Ev::PDown(l, at_b) => {
                let pl = self.plinks[l];
                let (at, assoc) = if at_b {
                    (pl.b, pl.b_assoc)
                } else {
                    (pl.a, pl.a_assoc)
                };
                if self.prs[at].alive {
                    self.prs[at].core.association_down(now, assoc);
                }
            }
            Ev::EnrpAnnounce(from, to, m) => {
                if self.prs[to].alive {
                    let src = Self::pr_enrp_endpoint(from);
                    self.prs[to].core.handle_enrp_announce(now, src, &m);
                }
            }
            Ev::AsapConnected(l) => {
                let link = self.links[l];
                if !link.up || !self.prs[link.pr].alive {
                    return;
                }
                let peer = PeerInfo::new(
                    vec![self.clients[link.client].addr],
                    self.clients[link.client].port,
                );
                self.prs[link.pr].core.connected(now, link.r_assoc, peer);
            }
            Ev::AsapConnectFailed(p, a) => {
                if self.prs[p].alive {
                    self.prs[p].core.connect_failed(now, a);
                }
            }
        }
    }

    /// Runs the world for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Runs the world until `end`.
    pub fn run_until(&mut self, end: Instant) {
        self.pump();
        loop {
            let next_ev = self.queue.keys().next().map(|&(t, _)| t);
            let mut next = next_ev;
            for p in &self.prs {
                if p.alive {
                    next = min_opt(next, p.core.poll_timeout());
                }
            }
            for c in &self.clients {
                if c.alive && !c.frozen {
                    next = min_opt(next, c.core.poll_timeout());
                }
            }
            let Some(t) = next.filter(|&t| t <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(t);
            if next_ev == Some(t) {
                let (_, ev) = self.queue.pop_first().expect("queued");
                self.deliver(ev);
            } else {
                let now = self.now;
                for p in &mut self.prs {
                    if p.alive && p.core.poll_timeout().is_some_and(|x| x <= now) {
                        p.core.handle_timeout(now);
                    }
                }
                for c in &mut self.clients {
                    if c.alive && !c.frozen && c.core.poll_timeout().is_some_and(|x| x <= now) {
                        c.core.handle_timeout(now);
                    }
                }
            }
            self.pump();
        }
    }

    /// Runs until the request is done (bounded by `limit` of virtual time); returns its result.
    pub fn wait_done(
        &mut self,
        c: usize,
        request: RequestId,
        limit: Duration,
    ) -> Result<Outcome, ClientError> {
        let end = self.now + limit;
        loop {
            if let Some(r) = self.take_done(c, request) {
                return r;
            }
            if self.now >= end {
                panic!("request {request:?} of client {c} not done within {limit:?}");
            }
            // Step in small slices so the result is seen soon after it comes.
            let step = (self.now + Duration::from_millis(10)).min(end);
            self.run_until(step);
        }
    }

    fn take_done(&mut self, c: usize, request: RequestId) -> Option<Result<Outcome, ClientError>> {
        let evs = &mut self.clients[c].events;
        let pos = evs
            .iter()
            .position(|e| matches!(e, ClientEvent::Done { request: r, .. } if *r == request))?;
        match evs.remove(pos) {
            ClientEvent::Done { result, .. } => Some(result),
            _ => unreachable!(),
        }
    }

    /// Crashes a registrar: it stops, and its peers notice after the SCTP detection time.
    pub fn crash_registrar(&mut self, p: usize) {
        self.prs[p].alive = false;
        let t = self.now + self.detection;
        for l in 0..self.links.len() {
            if self.links[l].pr == p && self.links[l].up {
                self.links[l].up = false;
                self.push(t, Ev::DownAtClient(l));
            }
        }
        for l in 0..self.plinks.len() {
            let pl = self.plinks[l];
            if pl.up && (pl.a == p || pl.b == p) {
                self.plinks[l].up = false;
                self.push(t, Ev::PDown(l, pl.a == p));
            }
        }
    }

    /// Kills a client process: its associations go down (the registrar notices after the
    /// detection time).
    pub fn kill_client(&mut self, c: usize) {
        self.clients[c].alive = false;
        let t = self.now + self.detection;
        for l in 0..self.links.len() {
            if self.links[l].client == c && self.links[l].up {
                self.links[l].up = false;
                self.push(t, Ev::DownAtPr(l));
            }
        }
    }

    /// The association of a client's link to a registrar, as the registrar names it.
    pub fn registrar_side(
        &self,
        c: usize,
        c_assoc: AssociationId,
    ) -> Option<(usize, AssociationId)> {
        self.by_client
            .get(&(c, c_assoc))
            .map(|&l| (self.links[l].pr, self.links[l].r_assoc))
    }

    /// Links currently up between a client and registrars.
    pub fn links_up(&self, c: usize) -> usize {
        self.links.iter().filter(|l| l.client == c && l.up).count()
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
