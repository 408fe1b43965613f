//! Protocol parameters (RFC 9260 §16) and the limits of this implementation.

use std::time::Duration;

/// Per-association parameters. Defaults are RFC 9260 §16's where it gives one.
#[derive(Clone, Debug)]
pub struct AssociationConfig {
    /// RTO.Initial (RFC: 1 s).
    pub rto_initial: Duration,
    /// RTO.Min (RFC: 1 s).
    pub rto_min: Duration,
    /// RTO.Max (RFC: 60 s).
    pub rto_max: Duration,
    /// Max.Init.Retransmits: INIT and COOKIE ECHO retransmissions before giving up (RFC: 8).
    pub max_init_retransmits: u32,
    /// Association.Max.Retrans: consecutive unacknowledged retransmissions and heartbeats before
    /// the peer is declared unreachable (RFC: 10).
    pub max_retrans: u32,
    /// Path.Max.Retrans: errors before a destination address is marked inactive (RFC: 5).
    pub path_max_retrans: u32,
    /// HB.interval, added to the path's RTO between heartbeats on an idle path (RFC: 30 s).
    /// `None` disables heartbeats.
    pub heartbeat_interval: Option<Duration>,
    /// How long a received message may wait before a SACK (RFC: 200 ms, at most 500 ms).
    pub sack_delay: Duration,
    /// Outbound streams requested.
    pub outbound_streams: u16,
    /// Inbound streams accepted.
    pub inbound_streams: u16,
    /// The receive buffer: the window advertised to the peer (bytes).
    pub receive_window: u32,
    /// The send buffer: bytes of queued and unacknowledged messages before `send` refuses
    /// with `WouldBlock`.
    pub send_buffer: usize,
    /// IP-level MTU of every path. SCTP packets are sized to fit with the IP and UDP headers.
    pub mtu: usize,
    /// Max.Burst: packets sent at once in response to one event (RFC: 4).
    pub max_burst: usize,
}

impl Default for AssociationConfig {
    fn default() -> Self {
        Self {
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_secs(1),
            rto_max: Duration::from_secs(60),
            max_init_retransmits: 8,
            max_retrans: 10,
            path_max_retrans: 5,
            heartbeat_interval: Some(Duration::from_secs(30)),
            sack_delay: Duration::from_millis(200),
            outbound_streams: 16,
            inbound_streams: 16,
            receive_window: 1 << 20,
            send_buffer: 1 << 20,
            mtu: 1500,
            max_burst: 4,
        }
    }
}

impl AssociationConfig {
    /// Settings for fast failure detection on a LAN (RSerPool keep-alives, tests): RTO between
    /// 100 ms and 400 ms, heartbeats every 200 ms + RTO, 3 retransmissions per association, and
    /// SACKs delayed 40 ms at most (a delay above RTO.Min would make the peer time out).
    pub fn fast_failover() -> Self {
        Self {
            rto_initial: Duration::from_millis(200),
            rto_min: Duration::from_millis(100),
            rto_max: Duration::from_millis(400),
            max_retrans: 3,
            path_max_retrans: 2,
            heartbeat_interval: Some(Duration::from_millis(200)),
            sack_delay: Duration::from_millis(40),
            ..Self::default()
        }
    }
}

/// Endpoint-wide parameters.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Valid.Cookie.Life: how long a state cookie is accepted (RFC: 60 s).
    pub cookie_life: Duration,
    /// The most associations this endpoint keeps; INITs beyond it get an ABORT (Out of Resource)
    /// once they complete the handshake.
    pub max_associations: usize,
    /// The UDP encapsulation port assumed for a peer address heard of (in an INIT's address
    /// list) but not yet heard from (RFC 6951 §5.1).
    pub default_remote_udp_port: u16,
    /// Local addresses to list in INIT / INIT ACK (multi-homing). Empty: the peer uses the
    /// packets' source address only.
    pub local_addresses: Vec<std::net::IpAddr>,
    /// Defaults for new associations.
    pub association: AssociationConfig,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            cookie_life: Duration::from_secs(60),
            max_associations: 65536,
            default_remote_udp_port: 9899,
            local_addresses: Vec::new(),
            association: AssociationConfig::default(),
        }
    }
}
