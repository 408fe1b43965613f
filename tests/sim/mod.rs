//! A deterministic simulation of registrars and ASAP clients (PEs, PUs) in one process: the
//! sans-IO cores connected by a simulated network with a virtual clock, latency, crashes and
//! hangs. Replayable from a seed.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rserpool::asap::ClientError;
use rserpool::asap::{AsapClient, ClientConfig, ClientEvent, ClientOutput, Outcome, RequestId};
use rserpool::handlespace::AssociationId;
use rserpool::registrar::{Output, PeerInfo, Registrar, RegistrarConfig};
use rserpool::wire::RegistrarId;

/// One registrar in the simulation.
pub struct PrNode {
    pub core: Registrar,
    pub addr: IpAddr,
    pub alive: bool,
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
        }
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
