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
//! ENRP (handlespace replication among registrars) is not part of this module yet.
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

mod config;

pub use config::{RegistrarConfig, RegistrarConfigError};

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, info, warn};

use crate::handlespace::{AssociationId, Handlespace, PeHandle, PeTimer, RemovedPe};
use crate::policy::{self, SelectionRequest};
use crate::wire::{
    AsapError, AsapMessage, CauseCode, DecodeError, Deregistration, DeregistrationResponse,
    EndpointKeepAlive, EndpointKeepAliveAck, EndpointUnreachable, ErrorCause, HandleResolution,
    HandleResolutionResponse, OffendingParameter, OperationError, PoolElement, PoolElementId,
    PoolHandle, RegistrarId, Registration, RegistrationResponse, SctpTransport, ServerAnnounce,
    Transport, TransportUse,
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
}

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
    outputs: VecDeque<Output>,
    next_announce: Option<Instant>,
    announce: Option<Bytes>,
    stats: RegistrarStats,
    scratch: Vec<PeHandle>,
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
        Self {
            next_announce: config.server_announce_cycle.map(|_| now),
            announce,
            config,
            hs: Handlespace::new(),
            rng: StdRng::seed_from_u64(seed),
            assocs: HashMap::new(),
            life: HashMap::new(),
            outputs: VecDeque::new(),
            stats: RegistrarStats::default(),
            scratch: Vec::new(),
        }
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

    /// An association was lost or shut down: its PEs are removed.
    pub fn association_down(&mut self, _now: Instant, association: AssociationId) {
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
        match (self.hs.next_deadline(), self.next_announce) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((pe, timer)) = self.hs.pop_expired(now) {
            match timer {
                PeTimer::KeepAliveTransmission => self.keep_alive_due(now, pe),
                PeTimer::KeepAliveTimeout => self.keep_alive_timeout(pe),
                // Owned PEs have no expiry timer; a PE learnt otherwise would.
                PeTimer::Expiry => {
                    self.remove(pe, RemovalReason::LifeExpired);
                }
            }
        }
        if let (Some(at), Some(cycle)) = (self.next_announce, self.config.server_announce_cycle) {
            if at <= now {
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

    fn send(&mut self, association: AssociationId, msg: &AsapMessage) {
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

    fn jittered_interval(&mut self) -> Duration {
        let base = self.config.keep_alive_transmission_interval;
        let j = f64::from(self.config.keep_alive_jitter_percent) / 100.0;
        if j == 0.0 {
            return base;
        }
        base.mul_f64(self.rng.random_range(1.0 - j..=1.0 + j))
    }

    fn reject_registration(
        &mut self,
        association: AssociationId,
        pool_handle: PoolHandle,
        id: PoolElementId,
        cause: ErrorCause,
        why: &str,
    ) {
        self.stats.registration_rejects += 1;
        info!(?association, pool = %pool_handle, pe = id.0, code = ?cause.code, "registration refused: {why}");
        self.send(
            association,
            &AsapMessage::RegistrationResponse(RegistrationResponse {
                reject: true,
                pool_handle,
                pe_id: id,
                error: Some(OperationError::new(cause)),
            }),
        );
    }

    fn registration(&mut self, now: Instant, association: AssociationId, r: Registration) {
        let Registration {
            pool_handle,
            pool_element: mut pe,
        } = r;
        let id = pe.id;
        let check = self.check_registration(association, &pool_handle, &mut pe);
        if let Err((cause, why)) = check {
            return self.reject_registration(association, pool_handle, id, cause, &why);
        }
        let existing = self.hs.find(&pool_handle, id);
        if existing.is_none() {
            let per_assoc = self.assocs.get(&association).map_or(0, |a| a.pes);
            if self.hs.len() >= self.config.max_pool_elements
                || per_assoc >= self.config.max_pool_elements_per_association
            {
                return self.reject_registration(
                    association,
                    pool_handle,
                    id,
                    ErrorCause::new(CauseCode::LACK_OF_RESOURCES),
                    "PE limit reached",
                );
            }
        }
        let old_assoc = existing.and_then(|h| self.hs.get(h).and_then(|e| e.association()));
        let life = pe.registration_life;
        match self.hs.register(&pool_handle, pe, Some(association)) {
            Ok(reg) => {
                if old_assoc != Some(association) {
                    if let Some(a) = old_assoc.and_then(|a| self.assocs.get_mut(&a)) {
                        a.pes -= 1;
                    }
                    if let Some(a) = self.assocs.get_mut(&association) {
                        a.pes += 1;
                    }
                }
                if reg.is_new() {
                    self.stats.registrations += 1;
                    debug!(?association, pool = %pool_handle, pe = id.0, "PE registered");
                } else {
                    self.stats.reregistrations += 1;
                    debug!(?association, pool = %pool_handle, pe = id.0, "PE re-registered");
                }
                match self
                    .config
                    .registration_life_unit
                    .duration(life)
                    .filter(|_| self.config.expire_owned_pes)
                {
                    Some(d) => {
                        self.life.insert(reg.pe, now + d);
                    }
                    None => {
                        self.life.remove(&reg.pe);
                    }
                }
                self.schedule_keep_alive(now, reg.pe);
                self.send(
                    association,
                    &AsapMessage::RegistrationResponse(RegistrationResponse {
                        reject: false,
                        pool_handle,
                        pe_id: id,
                        error: None,
                    }),
                );
            }
            Err(e) => {
                let why = e.to_string();
                self.reject_registration(association, pool_handle, id, e.error_cause(), &why)
            }
        }
    }

    /// Validates a registration and fills in what the registrar decides (home, ASAP transport,
    /// checked addresses, distance).
    fn check_registration(
        &self,
        association: AssociationId,
        pool_handle: &PoolHandle,
        pe: &mut PoolElement,
    ) -> Result<(), (ErrorCause, String)> {
        use OffendingParameter as O;
        let invalid = |o: O<'_>, why: String| (ErrorCause::invalid_values(o), why);
        if pe.id.0 == 0 {
            return Err(invalid(O::PoolElement(pe), "PE identifier 0".into()));
        }
        let len = pool_handle.as_bytes().len();
        if len == 0 || len > self.config.max_pool_handle_length {
            return Err(invalid(
                O::PoolHandle(pool_handle),
                format!(
                    "pool handle of {len} bytes (1 to {} allowed)",
                    self.config.max_pool_handle_length
                ),
            ));
        }
        if pe.registration_life == 0 || pe.registration_life < PoolElement::INFINITE_LIFE {
            let why = format!("registration life {}", pe.registration_life);
            return Err(invalid(O::PoolElement(pe), why));
        }
        let Some(assoc) = self.assocs.get(&association) else {
            return Err(invalid(O::PoolElement(pe), "unknown association".into()));
        };
        let check = self.config.check_user_addresses;
        let peer = &assoc.peer;
        let keep = |a: &IpAddr| -> bool {
            usable_address(a) && (!check || peer.addresses.iter().any(|p| same_ip(p, a)))
        };
        let original = pe.user_transport.clone();
        let refuse = |why: &str| Err(invalid(O::Transport(&original), why.to_string()));
        match &mut pe.user_transport {
            Transport::Opaque(_) => {}
            Transport::Sctp(t) => {
                if t.port == 0 {
                    return refuse("user transport port 0");
                }
                t.addresses.retain(|a| keep(a));
                if t.addresses.is_empty() {
                    return refuse("no user transport address is an address of the association");
                }
            }
            Transport::Tcp { port, address }
            | Transport::Udp { port, address }
            | Transport::UdpLite { port, address }
            | Transport::Dccp { port, address, .. } => {
                if *port == 0 {
                    return refuse("user transport port 0");
                }
                if !keep(address) {
                    return refuse(
                        "the user transport address is not an address of the association",
                    );
                }
            }
        }
        pe.home_registrar = self.config.id;
        pe.asap_transport = Some(SctpTransport {
            port: peer.port,
            transport_use: TransportUse::DataOnly,
            addresses: peer.addresses.clone(),
        });
        let distance = peer.rtt.map_or(0, |rtt| {
            let half = u32::try_from(rtt.as_millis() / 2).unwrap_or(u32::MAX);
            half - half % self.config.distance_step_ms
        });
        policy::set_distance(&mut pe.policy, distance);
        Ok(())
    }

    fn schedule_keep_alive(&mut self, now: Instant, pe: PeHandle) {
        let mut at = now + self.jittered_interval();
        if let Some(&end) = self.life.get(&pe) {
            at = at.min(end);
        }
        self.hs
            .set_deadline(pe, Some((at, PeTimer::KeepAliveTransmission)));
    }

    fn keep_alive_due(&mut self, now: Instant, pe: PeHandle) {
        if self.life.get(&pe).is_some_and(|&end| end <= now) {
            self.stats.life_expiries += 1;
            if let Some(removed) = self.remove(pe, RemovalReason::LifeExpired) {
                if let Some(a) = removed.association {
                    self.send(
                        a,
                        &AsapMessage::DeregistrationResponse(DeregistrationResponse {
                            pool_handle: removed.pool_handle,
                            pe_id: removed.element.id,
                            error: None,
                        }),
                    );
                }
            }
            return;
        }
        self.send_keep_alive(now, pe);
    }

    fn send_keep_alive(&mut self, now: Instant, pe: PeHandle) {
        let Some(entry) = self.hs.get(pe) else { return };
        let Some(association) = entry.association() else {
            return;
        };
        let msg = AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
            home: false,
            server_id: self.config.id,
            pool_handle: entry.pool_handle().clone(),
            pe_id: self.config.keep_alive_with_pe_id.then(|| entry.id()),
        });
        self.send(association, &msg);
        self.stats.keep_alives_sent += 1;
        let at = now + self.config.keep_alive_timeout_interval;
        self.hs
            .set_deadline(pe, Some((at, PeTimer::KeepAliveTimeout)));
    }

    fn keep_alive_timeout(&mut self, pe: PeHandle) {
        self.stats.keep_alive_timeouts += 1;
        if let Some(removed) = self.remove(pe, RemovalReason::KeepAliveTimeout) {
            if let Some(a) = removed.association {
                // As RSPLIB: abort the PE's association, so the PE notices and starts over.
                let others = self.remove_association_pes(a);
                self.stats.association_removals += others as u64;
                self.assocs.remove(&a);
                self.outputs.push_back(Output::Abort { association: a });
            }
        }
    }

    fn keep_alive_ack(
        &mut self,
        now: Instant,
        association: AssociationId,
        a: EndpointKeepAliveAck,
    ) {
        let Some(pe) = self.hs.find(&a.pool_handle, a.pe_id) else {
            return debug!(?association, pool = %a.pool_handle, pe = a.pe_id.0, "Keep-Alive Ack for an unknown PE");
        };
        let entry = self.hs.get(pe).expect("found");
        if entry.association() != Some(association) || entry.home_registrar() != self.config.id {
            return debug!(
                ?association,
                pe = a.pe_id.0,
                "Keep-Alive Ack from elsewhere ignored"
            );
        }
        self.stats.keep_alive_acks += 1;
        // Any Ack shows the PE alive, also one nobody asked for: a keep-alive without a PE
        // Identifier (the RFC form) is acknowledged for every PE of the pool on the
        // association, and postponing the others' keep-alives keeps a process with K PEs at
        // one keep-alive per interval (K Acks) instead of K (K² Acks).
        if entry.deadline().is_some_and(|(_, t)| {
            t == PeTimer::KeepAliveTimeout || t == PeTimer::KeepAliveTransmission
        }) {
            self.schedule_keep_alive(now, pe);
        }
    }

    fn unreachable(&mut self, now: Instant, association: AssociationId, u: EndpointUnreachable) {
        self.stats.unreachable_reports += 1;
        let Some(pe) = self.hs.find(&u.pool_handle, u.pe_id) else {
            return;
        };
        let count = self.hs.report_unreachable(pe).unwrap_or(0);
        info!(?association, pool = %u.pool_handle, pe = u.pe_id.0, count, "Endpoint Unreachable");
        if count > self.config.max_bad_pe_reports {
            self.stats.unreachable_removals += 1;
            // Removed silently, as RSPLIB does: the PE comes back with its next
            // re-registration if it is alive (telling it would only bring it back at once).
            self.remove(pe, RemovalReason::Unreachable);
            return;
        }
        // RFC 5352 §3.5: probe the PE at once (unless a probe is already outstanding).
        let entry = self.hs.get(pe).expect("found");
        if entry.home_registrar() == self.config.id
            && entry
                .deadline()
                .is_none_or(|(_, t)| t != PeTimer::KeepAliveTimeout)
        {
            self.send_keep_alive(now, pe);
        }
    }

    fn deregistration(&mut self, association: AssociationId, d: Deregistration) {
        let Deregistration { pool_handle, pe_id } = d;
        if let Some(pe) = self.hs.find(&pool_handle, pe_id) {
            if !self.may_deregister(association, pe) {
                self.stats.deregistration_rejects += 1;
                info!(?association, pool = %pool_handle, pe = pe_id.0, "deregistration refused: not the PE's association or address");
                return self.send(
                    association,
                    &AsapMessage::DeregistrationResponse(DeregistrationResponse {
                        pool_handle,
                        pe_id,
                        error: Some(OperationError::new(ErrorCause::new(
                            CauseCode::REJECTED_SECURITY,
                        ))),
                    }),
                );
            }
            self.remove(pe, RemovalReason::Deregistered);
            debug!(?association, pool = %pool_handle, pe = pe_id.0, "PE deregistered");
        }
        self.stats.deregistrations += 1;
        self.send(
            association,
            &AsapMessage::DeregistrationResponse(DeregistrationResponse {
                pool_handle,
                pe_id,
                error: None,
            }),
        );
    }

    fn may_deregister(&self, association: AssociationId, pe: PeHandle) -> bool {
        let entry = self.hs.get(pe).expect("found");
        if entry.association() == Some(association) || !self.config.check_user_addresses {
            return true;
        }
        let Some(a) = self.assocs.get(&association) else {
            return false;
        };
        let pe_addrs = entry.element().user_transport.addresses();
        pe_addrs
            .iter()
            .any(|x| a.peer.addresses.iter().any(|y| same_ip(x, y)))
    }

    fn handle_resolution(&mut self, association: AssociationId, h: HandleResolution) {
        let limit = self.config.handle_resolution_items_limit;
        let items = match h.items {
            None | Some(0) => self.config.max_handle_resolution_items,
            Some(n) => n,
        }
        .min(limit) as usize;
        let request = SelectionRequest {
            items,
            max_increment: self.config.max_increment,
        };
        let mut picked = std::mem::take(&mut self.scratch);
        picked.clear();
        let msg = match self
            .hs
            .select(&h.pool_handle, request, &mut self.rng, &mut picked)
        {
            Ok(_) => {
                self.stats.handle_resolutions += 1;
                let elements: Vec<PoolElement> = picked
                    .iter()
                    .filter_map(|&pe| self.hs.get(pe))
                    .map(|e| PoolElement {
                        asap_transport: None,
                        ..e.element().clone()
                    })
                    .collect();
                HandleResolutionResponse {
                    accept_updates: false,
                    pool_handle: h.pool_handle,
                    // As RSPLIB: the policy parameter of the first selected PE.
                    policy: elements.first().map(|e| e.policy.clone()),
                    elements,
                    error: None,
                }
            }
            Err(e) => {
                self.stats.handle_resolution_failures += 1;
                debug!(?association, pool = %h.pool_handle, "handle resolution for an unknown pool");
                HandleResolutionResponse {
                    accept_updates: false,
                    pool_handle: h.pool_handle,
                    policy: None,
                    elements: Vec::new(),
                    error: Some(OperationError::new(ErrorCause::new(e.cause_code()))),
                }
            }
        };
        self.scratch = picked;
        self.send(association, &AsapMessage::HandleResolutionResponse(msg));
    }

    /// Removes a PE and forgets what the registrar kept about it.
    fn remove(&mut self, pe: PeHandle, reason: RemovalReason) -> Option<RemovedPe> {
        let removed = self.hs.remove(pe)?;
        self.life.remove(&pe);
        if let Some(a) = removed.association.and_then(|a| self.assocs.get_mut(&a)) {
            a.pes -= 1;
        }
        if reason != RemovalReason::Deregistered {
            info!(pool = %removed.pool_handle, pe = removed.element.id.0, ?reason, "PE removed");
        }
        Some(removed)
    }

    fn remove_association_pes(&mut self, association: AssociationId) -> usize {
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

/// Whether an address can be a PE's user transport address (not unspecified, not multicast,
/// not broadcast).
fn usable_address(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Address equality that treats an IPv4-mapped IPv6 address as its IPv4 address.
fn same_ip(a: &IpAddr, b: &IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}
