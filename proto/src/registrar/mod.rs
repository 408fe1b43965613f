//! The registrar's ASAP side (RFC 5352), sans-IO: fed association events, ASAP messages and
//! time; yields messages to send, associations to abort, Server Announces, and its next
//! deadline. No sockets, no clocks: a driver (or a simulation) owns all I/O.
//!
//! # What it does
//!
//! * **Registration** (RFC 5352 §3.1): checks the request (PE ID ≠ 0, pool handle length, a
//!   usable user transport, a registration life, the pool's policy / transport type / transport
//!   use), keeps only user-transport addresses that belong to the association (anti-spoofing,
//!   [`RegistrarConfig::check_user_addresses`]), makes itself the PE's home registrar, records
//!   the association's addresses and port as the PE's ASAP transport, and answers with an
//!   ASAP_REGISTRATION_RESPONSE (R flag and an RFC 5354 cause on refusal). A re-registration
//!   replaces the PE's attributes, resets its degradation and unreachability counters and moves
//!   it to the association it came over.
//! * **Deregistration** (§3.2): removes the PE; an unknown PE is a success. Only the PE's
//!   association, or one from an address of the PE, may deregister it (Rejected due to
//!   Security otherwise; RSPLIB checks nothing).
//! * **Handle Resolution** (§3.3): N PEs chosen by the pool's policy, N from the PU's
//!   handle-resolution option 0x803f or the configured default; Unknown Pool Handle otherwise.
//! * **Keep-alive** (§3.4/3.5): an ASAP_ENDPOINT_KEEP_ALIVE to every owned PE a jittered
//!   interval after its registration or last Ack; no Ack within the timeout removes the PE and
//!   aborts its association (as RSPLIB does, so the PE notices and registers anew).
//! * **Endpoint Unreachable** (§3.5): an immediate keep-alive probe to the PE, and removal when
//!   the reports exceed MAX-BAD-PE-REPORT.
//! * **Registration life** (§3.2): an owned PE that stops re-registering is removed when its
//!   life runs out, with an ASAP_DEREGISTRATION_RESPONSE.
//! * **Lost associations** remove the PEs registered over them.
//! * **Server Announce** (§3.6) every T6-Serverannounce (±12.5 %, so registrars do not
//!   synchronise).
//! * Undecodable messages get an ASAP_ERROR with the RFC 5354 cause and the offending TLV;
//!   parameters to be reported by their action bits get one too, and the message is processed.
//!
//! # ENRP
//!
//! With [`RegistrarConfig::enrp`] set, the registrar also keeps the handlespace replicated
//! with its peers (RFC 5353): see [`enrp`](self#enrp-rfc-5353) below and the `enrp` and
//! `takeover` parts of this module. ENRP runs over associations of their own: ones the driver
//! accepted on the ENRP port ([`Registrar::peer_association_up`]) and ones the core asks for
//! ([`Output::Connect`], answered by [`Registrar::connected`] or
//! [`Registrar::connect_failed`]). A takeover opens ASAP associations to the taken-over PEs
//! the same way.
//!
//! ## ENRP (RFC 5353)
//!
//! * **Peers**: the static peers are connected at start and again every peer heartbeat
//!   cycle while down; multicast Presences ([`Registrar::handle_enrp_announce`]) and List
//!   Responses add more. Every PEER-HEARTBEAT-CYCLE each peer gets a Presence with this
//!   registrar's checksum and Server Information. A peer not heard for MAX-TIME-LAST-HEARD gets
//!   a Presence with "reply required"; one silent for MAX-TIME-NO-RESPONSE more is taken over
//!   if it owns PEs, dropped otherwise.
//! * **Mentor** (§3.1): the first peer heard while starting gets a List Request and a Handle
//!   Table Request; Server Announces wait until its last Handle Table Response (or the mentor
//!   discovery timeout), ASAP is served meanwhile.
//! * **Replication**: every accepted registration and every removal of an own PE goes to every
//!   peer as a Handle Update (ADD_PE / DEL_PE). PEs learnt from peers keep their home and
//!   expire when their registration life runs out without a new update.
//! * **Handle Table Responses** are sent in pages of at most
//!   [`EnrpConfig::max_elements_per_ht_request`] PEs with the M flag, continuing from a
//!   per-peer cursor on the next request (RSPLIB's behaviour).
//! * **Audit** (§3.6): a Presence whose checksum differs from the checksum of the sender's PEs
//!   here starts a Handle Table Request with the W flag; the sender's PEs not in the answer
//!   are removed after its last page.
//! * **Takeover** (§3.5): Init Takeover to every live peer (and to the target), the
//!   [`TakeoverArbitration`] rule between competing takeovers, Takeover Server on all Acks,
//!   and an Endpoint Keep-Alive with the H flag to each taken-over PE over a new association.
//!
//! # Example
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::time::Instant;
//! use rserpool_proto::handlespace::AssociationId;
//! use rserpool_proto::registrar::{Output, PeerInfo, Registrar, RegistrarConfig};
//! use rserpool_proto::wire::*;
//!
//! let now = Instant::now();
//! let mut pr = Registrar::new(RegistrarConfig::new(RegistrarId(7)), 1, now);
//! let pe_addr = Ipv4Addr::new(127, 0, 0, 1).into();
//! pr.association_up(now, AssociationId(1), PeerInfo::new(vec![pe_addr], 40000));
//! let reg = AsapMessage::Registration(Registration {
//!     pool_handle: PoolHandle::try_from("EchoPool").unwrap(),
//!     pool_element: PoolElement {
//!         id: PoolElementId(42),
//!         home_registrar: RegistrarId(0),
//!         registration_life: 90_000,
//!         user_transport: Transport::Sctp(SctpTransport {
//!             port: 7,
//!             transport_use: TransportUse::DataOnly,
//!             addresses: vec![pe_addr],
//!         }),
//!         policy: Policy::RoundRobin,
//!         asap_transport: None,
//!     },
//! });
//! pr.handle_message(now, AssociationId(1), &reg.to_bytes().unwrap());
//! let Some(Output::Send { association, message }) = pr.poll_output() else { panic!() };
//! assert_eq!(association, AssociationId(1));
//! let AsapMessage::RegistrationResponse(r) = AsapMessage::decode(&message).unwrap() else {
//!     panic!()
//! };
//! assert!(!r.reject);
//! assert_eq!(pr.handlespace().len(), 1);
//! ```

mod asap;
mod config;
mod enrp;
mod takeover;

pub use config::{EnrpConfig, RegistrarConfig, RegistrarConfigError, TakeoverArbitration};
pub use enrp::PeerStatus;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, info, warn};

use crate::handlespace::{AssociationId, Handlespace, PeHandle, PeTimer, RemovedPe};
use crate::wire::{
    AsapError, AsapMessage, DecodeError, OperationError, RegistrarId, ServerAnnounce,
};

/// What the registrar knows about the far end of an association.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerInfo {
    /// The peer's addresses (all of a multi-homed SCTP peer).
    pub addresses: Vec<IpAddr>,
    /// The peer's SCTP port.
    pub port: u16,
    /// The association's round-trip time, if measured (gives distance-penalty policies their
    /// distance).
    pub rtt: Option<Duration>,
}

impl PeerInfo {
    /// A peer with these addresses and port, RTT unknown.
    pub fn new(addresses: Vec<IpAddr>, port: u16) -> Self {
        Self {
            addresses,
            port,
            rtt: None,
        }
    }
}

/// Something the driver is to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Output {
    /// Send an ASAP message (PPID 11) on an association.
    Send {
        /// The association.
        association: AssociationId,
        /// The encoded message.
        message: Bytes,
    },
    /// Abort an association (its PEs are already removed).
    Abort {
        /// The association.
        association: AssociationId,
    },
    /// Send an ASAP_SERVER_ANNOUNCE to the announce address (UDP multicast).
    Announce {
        /// The encoded message.
        message: Bytes,
    },
    /// Send an ENRP message (PPID 12) on an association.
    SendEnrp {
        /// The association.
        association: AssociationId,
        /// The encoded message.
        message: Bytes,
    },
    /// Send an ENRP_PRESENCE to the ENRP multicast group (UDP, RFC 5353 §3.2).
    EnrpAnnounce {
        /// The encoded message.
        message: Bytes,
    },
    /// Open an association and report it with [`Registrar::connected`] (or
    /// [`Registrar::connect_failed`]) under this ID; its messages then come to
    /// [`Registrar::handle_enrp`] or [`Registrar::handle_message`] by their PPID, and its loss
    /// to [`Registrar::association_down`].
    Connect {
        /// The ID the core gave it (from [`CORE_ASSOCIATIONS`] on, so it never collides with
        /// the driver's own).
        association: AssociationId,
        /// What it is for.
        role: Role,
        /// The far end's addresses.
        addresses: Vec<IpAddr>,
        /// The far end's SCTP port.
        port: u16,
    },
}

/// What an association is for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// ENRP with a peer registrar (PPID 12).
    Enrp,
    /// ASAP with a PE or PU (PPID 11).
    Asap,
}

/// Association IDs from this one on are the core's ([`Output::Connect`]); a driver numbers its
/// accepted associations below it.
pub const CORE_ASSOCIATIONS: u64 = 1 << 62;

/// Why a PE left the handlespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RemovalReason {
    /// It deregistered.
    Deregistered,
    /// It did not acknowledge a keep-alive in time.
    KeepAliveTimeout,
    /// Too many Endpoint Unreachable reports.
    Unreachable,
    /// Its registration life ran out.
    LifeExpired,
    /// The association it registered over was lost.
    AssociationLost,
    /// Its home registrar said so (ENRP Handle Update DEL_PE).
    PeerDeleted,
    /// An audit found that its home registrar no longer has it, or its home was dropped.
    Audited,
}

/// Counters of what the registrar did, for logs and metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RegistrarStats {
    /// Registrations that added a PE.
    pub registrations: u64,
    /// Registrations of a PE already present.
    pub reregistrations: u64,
    /// Refused registrations.
    pub registration_rejects: u64,
    /// Deregistrations granted (including of unknown PEs).
    pub deregistrations: u64,
    /// Deregistrations refused.
    pub deregistration_rejects: u64,
    /// Handle resolutions answered with PEs.
    pub handle_resolutions: u64,
    /// Handle resolutions for unknown pools.
    pub handle_resolution_failures: u64,
    /// Endpoint Keep-Alives sent.
    pub keep_alives_sent: u64,
    /// Endpoint Unreachable probes not sent because the PE had a keep-alive lately
    /// ([`RegistrarConfig::min_probe_interval`]).
    pub probes_limited: u64,
    /// Keep-Alive Acks received for owned PEs.
    pub keep_alive_acks: u64,
    /// PEs removed for not acknowledging a keep-alive.
    pub keep_alive_timeouts: u64,
    /// Endpoint Unreachable reports received.
    pub unreachable_reports: u64,
    /// PEs removed for too many unreachability reports.
    pub unreachable_removals: u64,
    /// PEs removed when their registration life ran out.
    pub life_expiries: u64,
    /// PEs removed with a lost association.
    pub association_removals: u64,
    /// Messages that could not be decoded.
    pub decode_errors: u64,
    /// Messages a registrar does not take (responses, cookies, ...), ignored.
    pub unexpected_messages: u64,
    /// ASAP_ERROR messages received.
    pub errors_received: u64,
    /// Server Announces produced.
    pub announces: u64,
    /// ENRP messages sent (unicast and multicast).
    pub enrp_sent: u64,
    /// ENRP messages received.
    pub enrp_received: u64,
    /// Handle Updates received that changed the handlespace.
    pub handle_updates_applied: u64,
    /// Audits started (a peer's checksum differed).
    pub audits: u64,
    /// PEs removed by audits.
    pub audit_removals: u64,
    /// Takeovers this registrar started.
    pub takeovers_started: u64,
    /// Takeovers this registrar won (it became the home of the target's PEs).
    pub takeovers_won: u64,
    /// Peers dropped (silent without PEs, or taken over).
    pub peers_dropped: u64,
}

#[derive(Debug)]
struct Assoc {
    peer: PeerInfo,
    pes: usize,
}

/// The registrar's ASAP core. See the [module documentation](self).
pub struct Registrar {
    config: RegistrarConfig,
    hs: Handlespace,
    rng: StdRng,
    assocs: HashMap<AssociationId, Assoc>,
    /// Registration life deadlines of owned PEs ([`RegistrarConfig::expire_owned_pes`]).
    life: HashMap<PeHandle, Instant>,
    /// When each owned PE was last sent a keep-alive ([`RegistrarConfig::min_probe_interval`]).
    last_keep_alive: HashMap<PeHandle, Instant>,
    outputs: VecDeque<Output>,
    next_announce: Option<Instant>,
    announce: Option<Bytes>,
    stats: RegistrarStats,
    scratch: Vec<PeHandle>,
    /// ENRP state (`None` without [`RegistrarConfig::enrp`]).
    enrp: Option<Box<enrp::Enrp>>,
}

impl Registrar {
    /// A registrar with these settings; `seed` drives its random choices (keep-alive jitter,
    /// random policies), so equal seeds and inputs give equal outputs.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid ([`RegistrarConfig::validate`]).
    pub fn new(config: RegistrarConfig, seed: u64, now: Instant) -> Self {
        if let Err(e) = config.validate() {
            panic!("invalid registrar configuration: {e}");
        }
        let announce = config.server_announce_cycle.map(|_| {
            let msg = AsapMessage::ServerAnnounce(ServerAnnounce {
                server_id: config.id,
                transports: config.announce_transports.clone(),
            });
            Bytes::from(msg.to_bytes().unwrap_or_else(|_| {
                AsapMessage::ServerAnnounce(ServerAnnounce {
                    server_id: config.id,
                    transports: Vec::new(),
                })
                .to_bytes()
                .expect("an announce without transports encodes")
            }))
        });
        let enrp = config
            .enrp
            .as_ref()
            .map(|e| Box::new(enrp::Enrp::new(e, now)));
        let mut r = Self {
            enrp,
            next_announce: config.server_announce_cycle.map(|_| now),
            announce,
            config,
            hs: Handlespace::new(),
            rng: StdRng::seed_from_u64(seed),
            assocs: HashMap::new(),
            life: HashMap::new(),
            last_keep_alive: HashMap::new(),
            outputs: VecDeque::new(),
            stats: RegistrarStats::default(),
            scratch: Vec::new(),
        };
        r.enrp_start();
        r
    }

    /// The settings.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// This registrar's ID.
    pub fn id(&self) -> RegistrarId {
        self.config.id
    }

    /// The handlespace (read-only).
    pub fn handlespace(&self) -> &Handlespace {
        &self.hs
    }

    /// The counters.
    pub fn stats(&self) -> RegistrarStats {
        self.stats
    }

    /// How many associations the registrar knows.
    pub fn association_count(&self) -> usize {
        self.assocs.len()
    }

    /// A new association (a PE or PU connected); must come before its messages.
    pub fn association_up(&mut self, _now: Instant, association: AssociationId, peer: PeerInfo) {
        debug!(?association, ?peer, "ASAP association up");
        match self.assocs.get_mut(&association) {
            Some(a) => a.peer = peer,
            None => {
                self.assocs.insert(association, Assoc { peer, pes: 0 });
            }
        }
    }

    /// An association was lost or shut down: its PEs are removed (an ENRP association: the
    /// peer is connected again later).
    pub fn association_down(&mut self, _now: Instant, association: AssociationId) {
        if self.enrp_association_down(association) {
            return;
        }
        if self.assocs.remove(&association).is_none() {
            return;
        }
        let removed = self.remove_association_pes(association);
        if removed > 0 {
            info!(
                ?association,
                removed, "ASAP association lost, its PEs are removed"
            );
        }
        self.stats.association_removals += removed as u64;
    }

    /// The association's peer addresses changed (an SCTP ADD-IP, or a newly confirmed path).
    pub fn association_addresses(&mut self, association: AssociationId, addresses: Vec<IpAddr>) {
        if let Some(a) = self.assocs.get_mut(&association) {
            a.peer.addresses = addresses;
        }
    }

    /// An ASAP message (PPID 11) arrived on an association.
    pub fn handle_message(&mut self, now: Instant, association: AssociationId, data: &[u8]) {
        let decoded = match AsapMessage::decode_full(data) {
            Ok(d) => d,
            Err(e) => return self.decode_error(association, &e),
        };
        if let Some(report) = decoded.unrecognized_report() {
            self.send(
                association,
                &AsapMessage::Error(AsapError { error: report }),
            );
        }
        match decoded.message {
            AsapMessage::Registration(r) => self.registration(now, association, r),
            AsapMessage::Deregistration(d) => self.deregistration(association, d),
            AsapMessage::HandleResolution(h) => self.handle_resolution(association, h),
            AsapMessage::EndpointKeepAliveAck(a) => self.keep_alive_ack(now, association, a),
            AsapMessage::EndpointUnreachable(u) => self.unreachable(now, association, u),
            AsapMessage::Error(e) => {
                self.stats.errors_received += 1;
                debug!(?association, cause = ?e.error.code(), "ASAP_ERROR received");
            }
            other => {
                self.stats.unexpected_messages += 1;
                debug!(
                    ?association,
                    message = other.name(),
                    "ignoring unexpected ASAP message"
                );
            }
        }
    }

    /// The earliest time [`Registrar::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let announce = self.next_announce.filter(|_| !self.is_starting_up());
        [self.hs.next_deadline(), announce, self.enrp_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((pe, timer)) = self.hs.pop_expired(now) {
            match timer {
                PeTimer::KeepAliveTransmission => self.keep_alive_due(now, pe),
                PeTimer::KeepAliveTimeout => self.keep_alive_timeout(pe),
                // PEs learnt from peers expire when their life runs out without an update.
                PeTimer::Expiry => {
                    self.stats.life_expiries += 1;
                    self.remove(pe, RemovalReason::LifeExpired);
                }
            }
        }
        self.enrp_timeout_due(now);
        if let (Some(at), Some(cycle)) = (self.next_announce, self.config.server_announce_cycle) {
            if at <= now && !self.is_starting_up() {
                if let Some(msg) = &self.announce {
                    self.outputs.push_back(Output::Announce {
                        message: msg.clone(),
                    });
                    self.stats.announces += 1;
                }
                let jitter = self.rng.random_range(0.875..=1.125);
                self.next_announce = Some(now + cycle.mul_f64(jitter));
            }
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ---------------------------------------------------------------------------------------

    pub(super) fn send(&mut self, association: AssociationId, msg: &AsapMessage) {
        match msg.to_bytes() {
            Ok(b) => self.outputs.push_back(Output::Send {
                association,
                message: Bytes::from(b),
            }),
            Err(e) => warn!(?association, error = %e, "cannot encode {}", msg.name()),
        }
    }

    fn decode_error(&mut self, association: AssociationId, e: &DecodeError) {
        self.stats.decode_errors += 1;
        debug!(?association, error = %e, "undecodable ASAP message");
        if let Some(cause) = e.error_cause() {
            self.send(
                association,
                &AsapMessage::Error(AsapError {
                    error: OperationError::new(cause),
                }),
            );
        }
    }

    /// Removes a PE and forgets what the registrar kept about it.
    pub(super) fn remove(&mut self, pe: PeHandle, reason: RemovalReason) -> Option<RemovedPe> {
        let removed = self.hs.remove(pe)?;
        self.life.remove(&pe);
        self.last_keep_alive.remove(&pe);
        if let Some(a) = removed.association.and_then(|a| self.assocs.get_mut(&a)) {
            a.pes -= 1;
        }
        match reason {
            RemovalReason::Deregistered => {}
            RemovalReason::PeerDeleted | RemovalReason::Audited | RemovalReason::LifeExpired
                if removed.element.home_registrar != self.config.id =>
            {
                debug!(pool = %removed.pool_handle, pe = removed.element.id.0, ?reason, "peer's PE removed");
            }
            _ => {
                info!(pool = %removed.pool_handle, pe = removed.element.id.0, ?reason, "PE removed")
            }
        }
        if removed.element.home_registrar == self.config.id {
            match self.take_claim(pe) {
                // It registered at a peer meanwhile: it is the peer's now, not gone.
                Some(claim) => self.apply_claim(&removed.pool_handle, claim),
                None => self.replicate_removal(&removed),
            }
        }
        Some(removed)
    }

    pub(super) fn remove_association_pes(&mut self, association: AssociationId) -> usize {
        let handles: Vec<PeHandle> = self
            .hs
            .association_pes(association)
            .map(|e| e.handle())
            .collect();
        for &pe in &handles {
            self.remove(pe, RemovalReason::AssociationLost);
        }
        handles.len()
    }
}
