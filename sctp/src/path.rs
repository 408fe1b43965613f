//! One destination transport address of the peer (RFC 9260 §6.4, §8.2, §14.3): RTO, congestion
//! control and failure detection state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::chunk::{COMMON_HEADER_LEN, DATA_HEADER_LEN};
use crate::config::AssociationConfig;

/// Whether a destination address is usable (RFC 9260 §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    /// Reachable.
    Active,
    /// More than Path.Max.Retrans consecutive errors.
    Inactive,
    /// Not yet confirmed by a HEARTBEAT ACK (RFC 9260 §5.4): no data is sent to it.
    Unconfirmed,
}

/// A snapshot of one path, for users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathInfo {
    /// The peer's address and UDP encapsulation port.
    pub address: SocketAddr,
    /// Its state.
    pub state: PathState,
    /// Whether this is the primary path.
    pub primary: bool,
    /// Current RTO.
    pub rto: Duration,
    /// Smoothed RTT, once measured.
    pub srtt: Option<Duration>,
    /// Congestion window (bytes).
    pub cwnd: usize,
    /// Consecutive errors.
    pub errors: u32,
}

pub(crate) struct Path {
    /// Peer IP address and its UDP encapsulation port (RFC 6951: learned from what arrives).
    pub addr: SocketAddr,
    pub confirmed: bool,
    pub active: bool,
    pub errors: u32,
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub rto: Duration,
    /// Largest SCTP packet for this path (MTU minus IP and UDP headers).
    pub max_packet: usize,
    pub cwnd: usize,
    pub ssthresh: usize,
    pub partial_bytes_acked: usize,
    /// Bytes of DATA outstanding on this path.
    pub flight: usize,
    pub t3: Option<Instant>,
    /// When the next heartbeat is due if the path stays idle.
    pub hb_next: Option<Instant>,
    /// Outstanding heartbeat: nonce, send time, and when it times out.
    pub hb_pending: Option<(u64, Instant, Instant)>,
    /// An RTT sample is being timed on this path (one per round trip, RFC 9260 §6.3.1 C4).
    pub rtt_probe: Option<u32>,
}

impl Path {
    pub fn new(addr: SocketAddr, confirmed: bool, cfg: &AssociationConfig) -> Self {
        let ip_header = if addr.is_ipv4() { 20 } else { 40 };
        let max_packet = cfg
            .mtu
            .saturating_sub(ip_header + 8)
            .max(COMMON_HEADER_LEN + DATA_HEADER_LEN + 64);
        let mut p = Self {
            addr,
            confirmed,
            active: true,
            errors: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: cfg.rto_initial,
            max_packet,
            cwnd: 0,
            ssthresh: usize::MAX,
            partial_bytes_acked: 0,
            flight: 0,
            t3: None,
            hb_next: None,
            hb_pending: None,
            rtt_probe: None,
        };
        p.reset_congestion();
        p
    }

    /// PMDCS: the largest DATA chunk this path carries (RFC 9260 §7.2).
    pub fn pmdcs(&self) -> usize {
        self.max_packet - COMMON_HEADER_LEN
    }

    /// Largest user-data fragment in one DATA chunk on this path.
    pub fn max_fragment(&self) -> usize {
        self.pmdcs() - DATA_HEADER_LEN
    }

    /// Initial cwnd and ssthresh (RFC 9260 §7.2.1).
    pub fn reset_congestion(&mut self) {
        let m = self.pmdcs();
        let floor = if self.addr.is_ipv4() { 4404 } else { 4344 };
        self.cwnd = (4 * m).min((2 * m).max(floor));
        self.ssthresh = usize::MAX;
        self.partial_bytes_acked = 0;
    }

    pub fn state(&self) -> PathState {
        if !self.confirmed {
            PathState::Unconfirmed
        } else if self.active {
            PathState::Active
        } else {
            PathState::Inactive
        }
    }

    /// RFC 9260 §6.3.1 C2/C3, with RTO.Min/Max (C6/C7) and granularity 1 ms (G1).
    pub fn rtt_sample(&mut self, r: Duration, cfg: &AssociationConfig) {
        const G: Duration = Duration::from_millis(1);
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        if self.rttvar.is_zero() {
            self.rttvar = G;
        }
        let rto = self.srtt.expect("set above") + (self.rttvar * 4).max(G);
        self.rto = rto.clamp(cfg.rto_min, cfg.rto_max);
    }

    /// Exponential backoff (RFC 9260 §6.3.3 E2), bounded by RTO.Max.
    pub fn back_off(&mut self, cfg: &AssociationConfig) {
        self.rto = (self.rto * 2).min(cfg.rto_max);
    }

    pub fn info(&self, primary: bool) -> PathInfo {
        PathInfo {
            address: self.addr,
            state: self.state(),
            primary,
            rto: self.rto,
            srtt: self.srtt,
            cwnd: self.cwnd,
            errors: self.errors,
        }
    }
}
