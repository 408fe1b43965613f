//! The registrar's settings: RFC 5352 timers and thresholds, RSPLIB's limits, and the choices
//! where the two differ.

use std::net::SocketAddr;
use std::time::Duration;

use crate::wire::{LifeUnit, RegistrarId, SctpTransport, Transport, TransportUse};

/// A setting of a [`RegistrarConfig`] that cannot work.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RegistrarConfigError {
    /// The registrar ID is 0 (RFC 5353 §3.1: 0 is no registrar).
    #[error("the registrar ID must not be 0")]
    ZeroId,
    /// A count or limit is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// An interval is zero.
    #[error("{0} must be positive")]
    ZeroInterval(&'static str),
    /// The keep-alive jitter is over 90 %.
    #[error("the keep-alive jitter must be at most 90 %, not {0} %")]
    Jitter(u8),
    /// The distance step of the DPF policies is zero.
    #[error("the distance step must be at least 1 ms")]
    ZeroDistanceStep,
    /// An ENRP timer or limit is zero.
    #[error("ENRP: {0} must be positive")]
    ZeroEnrp(&'static str),
}

/// Which of two registrars that start a takeover of the same peer at the same time wins
/// (RFC 5353 §3.5.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum TakeoverArbitration {
    /// The lower registrar ID wins, as RSPLIB 3.4.4 decides (the default, so that mixed
    /// deployments with RSPLIB registrars agree).
    #[default]
    LowerIdWins,
    /// The higher registrar ID wins, as RFC 5353 §3.5.1 says. RSPLIB registrars and registrars
    /// with this setting never acknowledge each other's competing takeovers.
    HigherIdWins,
}

/// ENRP settings (RFC 5353): peers, timers, the takeover rule. The defaults are RSPLIB 3.4.4's
/// values (which are the RFC's where the RFC gives one); [`EnrpConfig::rfc_timers`] documents
/// each.
#[derive(Clone, Debug)]
pub struct EnrpConfig {
    /// Peers to connect to whether or not they are heard by multicast (`--peer`): their ENRP
    /// SCTP endpoints (port 9901 unless said).
    pub static_peers: Vec<SocketAddr>,
    /// This registrar's ENRP transport, sent in its Server Information (RFC 5353 §2.1): the
    /// SCTP port ENRP is served on and its addresses (an unspecified address: peers take the
    /// address the message came from).
    pub server_transport: SctpTransport,
    /// Whether Presence messages also go out by UDP multicast (RFC 5353 §3.2; RSPLIB sends to
    /// 239.0.0.51:9901) as [`Output::EnrpAnnounce`](super::Output::EnrpAnnounce).
    pub announce: bool,
    /// PEER-HEARTBEAT-CYCLE: time between the Presence messages to every peer (±12.5 %).
    /// RSPLIB `-peerheartbeatcycle` 2444.444 ms.
    pub peer_heartbeat_cycle: Duration,
    /// MAX-TIME-LAST-HEARD: a peer not heard from this long gets a Presence with "reply
    /// required" (RFC 5353 §3.4.3). RSPLIB `-peermaxtimelastheard` 5 s.
    pub max_time_last_heard: Duration,
    /// MAX-TIME-NO-RESPONSE: a peer that does not answer that Presence within this time is
    /// taken over if it owns PEs, dropped otherwise. RSPLIB `-peermaxtimenoresponse` 5 s.
    pub max_time_no_response: Duration,
    /// How long a starting registrar waits for a mentor peer (RFC 5353 §3.1) before it serves
    /// on its own. RSPLIB `-mentordiscoverytimeout` 5 s.
    pub mentor_discovery_timeout: Duration,
    /// How long a takeover waits for the Init Takeover Acks before it is abandoned.
    /// RSPLIB `-takeoverexpiryinterval` 5 s.
    pub takeover_expiry_interval: Duration,
    /// The most PEs in one Handle Table Response; more set the M flag and follow on the next
    /// request. RSPLIB `-maxelementsperhtrequest` 128.
    pub max_elements_per_ht_request: usize,
    /// The takeover rule.
    pub arbitration: TakeoverArbitration,
}

impl Default for EnrpConfig {
    fn default() -> Self {
        Self {
            static_peers: Vec::new(),
            server_transport: SctpTransport {
                port: crate::wire::ENRP_PORT,
                transport_use: TransportUse::DataOnly,
                addresses: vec![std::net::Ipv4Addr::UNSPECIFIED.into()],
            },
            announce: true,
            peer_heartbeat_cycle: Duration::from_micros(2_444_444),
            max_time_last_heard: Duration::from_secs(5),
            max_time_no_response: Duration::from_secs(5),
            mentor_discovery_timeout: Duration::from_secs(5),
            takeover_expiry_interval: Duration::from_secs(5),
            max_elements_per_ht_request: 128,
            arbitration: TakeoverArbitration::LowerIdWins,
        }
    }
}

impl EnrpConfig {
    /// The ENRP timers as (RFC 5353 name, value, what RSPLIB uses), for `--help` and logs.
    pub fn rfc_timers(&self) -> [(&'static str, Duration, &'static str); 5] {
        [
            (
                "PEER-HEARTBEAT-CYCLE",
                self.peer_heartbeat_cycle,
                "-peerheartbeatcycle=2444.444",
            ),
            (
                "MAX-TIME-LAST-HEARD",
                self.max_time_last_heard,
                "-peermaxtimelastheard=5000",
            ),
            (
                "MAX-TIME-NO-RESPONSE",
                self.max_time_no_response,
                "-peermaxtimenoresponse=5000",
            ),
            (
                "mentor discovery timeout",
                self.mentor_discovery_timeout,
                "-mentordiscoverytimeout=5000",
            ),
            (
                "takeover expiry interval",
                self.takeover_expiry_interval,
                "-takeoverexpiryinterval=5000",
            ),
        ]
    }

    fn validate(&self) -> Result<(), RegistrarConfigError> {
        for (what, d, _) in self.rfc_timers() {
            if d.is_zero() {
                return Err(RegistrarConfigError::ZeroEnrp(what));
            }
        }
        if self.max_elements_per_ht_request == 0 {
            return Err(RegistrarConfigError::ZeroEnrp(
                "max elements per handle table request",
            ));
        }
        Ok(())
    }
}

/// Settings of a [`Registrar`](super::Registrar). `Default` gives RFC 5352 / RSPLIB defaults
/// with a registrar ID of 0, which [`RegistrarConfig::new`] replaces.
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// This registrar's ID (RSPLIB `-identifier`). Must not be 0.
    pub id: RegistrarId,
    /// How many PEs a Handle Resolution returns when the PU does not say (no option 0x803f,
    /// or items 0). RFC 5352 §3.3 says "SHOULD list all the PEs"; RSPLIB returns 3 chosen by
    /// the pool's policy (`-maxhresitems`), which is what makes load-based policies work with
    /// caching pool users. Default 3.
    pub max_handle_resolution_items: u32,
    /// The most PEs one Handle Resolution Response carries, whatever the PU asks for (option
    /// 0x803f, 0xffffffff = "all"). RSPLIB: 128. Default 128.
    pub handle_resolution_items_limit: u32,
    /// MaxIncrement of handle resolutions (see [`crate::policy`]); `None` = the policy's
    /// default. RSPLIB `-maxincrement` (0 = policy default).
    pub max_increment: Option<usize>,
    /// Time from a registration or a Keep-Alive Ack to the next ASAP_ENDPOINT_KEEP_ALIVE
    /// (RSPLIB `-endpointkeepalivetransmissioninterval`, 5 s).
    pub keep_alive_transmission_interval: Duration,
    /// Random variation of the keep-alive transmission interval, in percent (RFC 5352 §3.5:
    /// "varying the time ... randomly by plus/minus 50 percent"). Default 50.
    pub keep_alive_jitter_percent: u8,
    /// Time to wait for the Keep-Alive Ack before the PE is removed (RSPLIB
    /// `-endpointkeepalivetimeoutinterval`, 5 s).
    pub keep_alive_timeout_interval: Duration,
    /// Least time between two Endpoint Keep-Alives to one PE that are not the regular ones: an
    /// Endpoint Unreachable report probes the PE at once only if its last keep-alive is at
    /// least this old (RFC 5355 §2.14: a registrar MUST limit the keep-alives to a PE, so that
    /// reports cannot turn it into a flood). Zero: no limit. Default 1 s.
    pub min_probe_interval: Duration,
    /// MAX-BAD-PE-REPORT (RFC 5352 §3.5): a PE is removed when more Endpoint Unreachable
    /// reports than this arrive before it re-registers. Default 3 (RSPLIB removes at the 3rd
    /// report already; rserpool follows the RFC's "exceeds").
    pub max_bad_pe_reports: u32,
    /// The unit of Registration Life values.
    pub registration_life_unit: LifeUnit,
    /// Whether an owned PE that neither re-registers nor deregisters is removed when its
    /// registration life runs out (RFC 5352 §3.2, with an ASAP_DEREGISTRATION_RESPONSE to the
    /// PE). RSPLIB never expires the PEs it owns. Default on.
    pub expire_owned_pes: bool,
    /// Only accept user-transport addresses that are addresses of the association the
    /// registration came over (RSPLIB's anti-spoofing check); addresses that are not are
    /// dropped, and a registration left without any is refused. Default on.
    pub check_user_addresses: bool,
    /// Longest pool handle accepted, in bytes (RSPLIB: 32, the most its ENRP peers take).
    pub max_pool_handle_length: usize,
    /// Most PEs in the handlespace; a new PE beyond it is refused with Lack of Resources.
    pub max_pool_elements: usize,
    /// Most PEs registered over one association (one PE process); beyond it Lack of Resources.
    pub max_pool_elements_per_association: usize,
    /// T6-Serverannounce: time between ASAP_SERVER_ANNOUNCE messages (RFC 5352: 1 s);
    /// `None` switches announces off.
    pub server_announce_cycle: Option<Duration>,
    /// Transport parameters of the Server Announce. Empty (the default) means "the announce's
    /// source address and the ASAP port" (RFC 5352 §3.6); RSPLIB reads it as the UDP source
    /// address and port, so a driver sends announces from a socket bound to the ASAP port.
    /// The `rserpool` crate's `RegistrarServer` fills it in when it is bound to a
    /// specific address, or serves ASAP on another port than 3863.
    pub announce_transports: Vec<Transport>,
    /// Put the PE Identifier into Endpoint Keep-Alives as RSPLIB does. Not in RFC 5352; without
    /// it RSPLIB PEs acknowledge for every PE they own. Default off.
    pub keep_alive_with_pe_id: bool,
    /// Granularity of the distance (ms) put into distance-penalty policies, from the
    /// association's round-trip time (RSPLIB `-distancestep`, 50).
    pub distance_step_ms: u32,
    /// ENRP: handlespace replication with peer registrars (`None`, the default: a registrar
    /// on its own).
    pub enrp: Option<EnrpConfig>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            id: RegistrarId(0),
            max_handle_resolution_items: 3,
            handle_resolution_items_limit: 128,
            max_increment: None,
            keep_alive_transmission_interval: Duration::from_secs(5),
            keep_alive_jitter_percent: 50,
            keep_alive_timeout_interval: Duration::from_secs(5),
            min_probe_interval: Duration::from_secs(1),
            max_bad_pe_reports: 3,
            registration_life_unit: LifeUnit::Milliseconds,
            expire_owned_pes: true,
            check_user_addresses: true,
            max_pool_handle_length: 32,
            max_pool_elements: 1_000_000,
            max_pool_elements_per_association: 16_384,
            server_announce_cycle: Some(Duration::from_secs(1)),
            announce_transports: Vec::new(),
            keep_alive_with_pe_id: false,
            distance_step_ms: 50,
            enrp: None,
        }
    }
}

impl RegistrarConfig {
    /// The defaults with a registrar ID.
    pub fn new(id: RegistrarId) -> Self {
        Self {
            id,
            ..Self::default()
        }
    }

    /// Checks the settings; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), RegistrarConfigError> {
        use RegistrarConfigError as E;
        if self.id.0 == 0 {
            return Err(E::ZeroId);
        }
        for (what, n) in [
            (
                "max handle resolution items",
                u64::from(self.max_handle_resolution_items),
            ),
            (
                "the handle resolution items limit",
                u64::from(self.handle_resolution_items_limit),
            ),
            ("max bad PE reports", u64::from(self.max_bad_pe_reports)),
            (
                "the maximum pool handle length",
                self.max_pool_handle_length as u64,
            ),
        ] {
            if n == 0 {
                return Err(E::Zero(what));
            }
        }
        for (what, d) in [
            (
                "the keep-alive transmission interval",
                Some(self.keep_alive_transmission_interval),
            ),
            (
                "the keep-alive timeout interval",
                Some(self.keep_alive_timeout_interval),
            ),
            ("the server announce cycle", self.server_announce_cycle),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(E::ZeroInterval(what));
            }
        }
        if self.keep_alive_jitter_percent > 90 {
            return Err(E::Jitter(self.keep_alive_jitter_percent));
        }
        if self.distance_step_ms == 0 {
            return Err(E::ZeroDistanceStep);
        }
        if let Some(e) = &self.enrp {
            e.validate()?;
        }
        Ok(())
    }
}
