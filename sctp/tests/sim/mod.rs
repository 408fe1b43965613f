//! A deterministic in-memory network for SCTP endpoints: a virtual clock, latency, loss,
//! duplication, reordering and partitions, all driven by a seeded RNG so every run replays.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rserpool_sctp::{AssocId, Endpoint, EndpointConfig, Event, Message};

/// The UDP port every simulated host uses for SCTP encapsulation.
pub const UDP_PORT: u16 = 9899;

pub struct Host {
    pub ep: Endpoint,
    pub addrs: Vec<IpAddr>,
    /// Events seen, with the virtual time.
    pub events: Vec<(Duration, AssocId, Event)>,
    /// Messages received, in order, per association.
    pub received: Vec<(AssocId, Message)>,
    /// Stop reading messages (to fill the receive window).
    pub paused: bool,
    /// A crashed host neither sends nor receives.
    pub down: bool,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    from: SocketAddr,
    data: Vec<u8>,
}

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub hosts: Vec<Host>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: StdRng,
    pub latency: Duration,
    pub jitter: Duration,
    pub loss: f64,
    pub duplicate: f64,
    /// Links cut: (from, to) IP pairs whose packets vanish.
    pub cut: HashSet<(IpAddr, IpAddr)>,
    pub delivered: u64,
    pub dropped: u64,
}

impl Net {
    pub fn new(seed: u64) -> Self {
        let now = Instant::now();
        Self {
            start: now,
            now,
            hosts: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            cut: HashSet::new(),
            delivered: 0,
            dropped: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds a host with the given addresses; returns its index.
    pub fn add_host(&mut self, config: EndpointConfig, addrs: &[&str]) -> usize {
        let seed: [u8; 32] = self.rng.random();
        self.hosts.push(Host {
            ep: Endpoint::new(config, seed, self.now),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            events: Vec::new(),
            received: Vec::new(),
            paused: false,
            down: false,
        });
        self.hosts.len() - 1
    }

    /// Replaces a host's endpoint with a fresh one (a crash and restart), same addresses.
    pub fn restart_host(&mut self, h: usize, config: EndpointConfig) {
        let seed: [u8; 32] = self.rng.random();
        self.hosts[h].ep = Endpoint::new(config, seed, self.now);
        self.hosts[h].down = false;
        self.hosts[h].events.clear();
        self.hosts[h].received.clear();
    }

    pub fn addr(&self, h: usize, i: usize) -> SocketAddr {
        SocketAddr::new(self.hosts[h].addrs[i], UDP_PORT)
    }

    fn host_of(&self, ip: IpAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.addrs.contains(&ip))
    }

    /// The sender's source address for a destination: the one on the same /16, else its first.
    fn source_for(&self, h: usize, dst: IpAddr) -> IpAddr {
        let same_net = |a: &IpAddr| match (a, dst) {
            (IpAddr::V4(a), IpAddr::V4(d)) => a.octets()[..2] == d.octets()[..2],
            (IpAddr::V6(a), IpAddr::V6(d)) => a.segments()[..4] == d.segments()[..4],
            _ => false,
        };
        self.hosts[h]
            .addrs
            .iter()
            .copied()
            .find(same_net)
            .unwrap_or(self.hosts[h].addrs[0])
    }

    /// Moves every pending packet and event out of the endpoints.
    fn flush(&mut self) {
        for h in 0..self.hosts.len() {
            if self.hosts[h].down {
                while self.hosts[h].ep.poll_transmit(self.now).is_some() {}
                continue;
            }
            while let Some(t) = self.hosts[h].ep.poll_transmit(self.now) {
                let src = self.source_for(h, t.destination.ip());
                let Some(to) = self.host_of(t.destination.ip()) else {
                    self.dropped += 1;
                    continue;
                };
                let copies = if self.rng.random_bool(self.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if self.cut.contains(&(src, t.destination.ip()))
                        || self.rng.random_bool(self.loss)
                    {
                        self.dropped += 1;
                        continue;
                    }
                    let j = if self.jitter.is_zero() {
                        Duration::ZERO
                    } else {
                        self.jitter.mul_f64(self.rng.random::<f64>())
                    };
                    self.seq += 1;
                    self.queue.push(Reverse(InFlight {
                        at: self.now + self.latency + j,
                        seq: self.seq,
                        to,
                        from: SocketAddr::new(src, UDP_PORT),
                        data: t.payload.to_vec(),
                    }));
                }
            }
            while let Some((id, e)) = self.hosts[h].ep.poll_event() {
                let t = self.now - self.start;
                self.hosts[h].events.push((t, id, e));
            }
            if !self.hosts[h].paused {
                let ids = self.hosts[h].ep.associations();
                for id in ids {
                    while let Some(m) = self.hosts[h].ep.recv(id) {
                        self.hosts[h].received.push((id, m));
                    }
                }
            }
        }
    }

    fn next_time(&self) -> Option<Instant> {
        let q = self.queue.peek().map(|Reverse(p)| p.at);
        let t = self
            .hosts
            .iter()
            .filter(|h| !h.down)
            .filter_map(|h| h.ep.poll_timeout())
            .min();
        match (q, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the network for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until_time(end, |_| false);
    }

    /// Runs until `cond` holds (checked after every step) or `limit` of virtual time passes.
    /// Returns whether `cond` held.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        self.run_until_time(end, &mut cond)
    }

    fn run_until_time(&mut self, end: Instant, mut cond: impl FnMut(&Net) -> bool) -> bool {
        let mut steps: u64 = 0;
        loop {
            steps += 1;
            if steps % 100_000 == 0 && std::env::var_os("SIM_TRACE").is_some() {
                eprintln!(
                    "step {steps} t={:?} queue={} delivered={} timeouts={:?}",
                    self.elapsed(),
                    self.queue.len(),
                    self.delivered,
                    self.hosts
                        .iter()
                        .map(|h| h.ep.poll_timeout().map(|t| t - self.start))
                        .collect::<Vec<_>>()
                );
            }
            self.flush();
            if cond(self) {
                return true;
            }
            let Some(next) = self.next_time() else {
                self.now = end;
                return cond(self);
            };
            if next > end {
                self.now = end;
                return cond(self);
            }
            self.now = self.now.max(next);
            while let Some(Reverse(p)) = self.queue.peek() {
                if p.at > self.now {
                    break;
                }
                let Reverse(p) = self.queue.pop().unwrap();
                if self.hosts[p.to].down {
                    continue;
                }
                self.delivered += 1;
                self.hosts[p.to]
                    .ep
                    .handle(self.now, p.from, Bytes::from(p.data));
            }
            let now = self.now;
            for h in &mut self.hosts {
                if !h.down && h.ep.poll_timeout().is_some_and(|t| t <= now) {
                    h.ep.handle_timeout(now);
                }
            }
        }
    }

    /// The first association id on a host that reported `Connected`.
    pub fn connected(&self, h: usize) -> Option<AssocId> {
        self.hosts[h]
            .events
            .iter()
            .find_map(|(_, id, e)| matches!(e, Event::Connected { .. }).then_some(*id))
    }

    pub fn has_event(&self, h: usize, f: impl Fn(&Event) -> bool) -> bool {
        self.hosts[h].events.iter().any(|(_, _, e)| f(e))
    }

    pub fn event_time(&self, h: usize, f: impl Fn(&Event) -> bool) -> Option<Duration> {
        self.hosts[h]
            .events
            .iter()
            .find(|(_, _, e)| f(e))
            .map(|(t, _, _)| *t)
    }
}
