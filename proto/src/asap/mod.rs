//! The ASAP client side (RFC 5352) that pool elements and pool users run, sans-IO: fed
//! association events, ASAP messages, Server Announces and time; yields associations to open
//! and close, messages to send, request results and its next deadline.
//!
//! # What it does
//!
//! * **Registrar discovery** (§3.6): a static list ([`ClientConfig::registrars`]) plus the
//!   registrars heard in ASAP_SERVER_ANNOUNCEs ([`AsapClient::handle_announce`]), each kept for
//!   T7-ENRPoutdate after its last announce.
//! * **Server hunt** (§3.6): when there is work and no home registrar, up to three registrars
//!   are tried at once; the first association up becomes the home registrar, the others are
//!   closed. A round that finds none within T5-Serverhunt is given up and a new one started
//!   with other registrars, T5 doubling up to RETRAN-MAX.
//! * **Requests** with their timers: registration (T2), deregistration (T3), handle
//!   resolution (T1). A request not answered in time makes the client abort its home
//!   association, hunt for another registrar and send it again there, up to
//!   MAX-REQUEST-RETRANSMIT times; a request sent on an association that is lost is sent again
//!   on the next one without counting (§3.7.1). Responses are matched by message type, pool
//!   handle and PE ID.
//! * **Pool elements**: registration, re-registration every T4 (the registration life is three
//!   times the interval), policy value updates, deregistration; the Endpoint Keep-Alive Ack
//!   (for the PE named in the keep-alive, or for every PE of its pool); a keep-alive with the
//!   H flag from another registrar makes that registrar the home; a new home association, or a
//!   registrar that dropped a PE, gets the PEs registered again at once.
//! * **Pool users**: handle resolution with a cache (stale_cache_value, §3.3 C1–C4) whose
//!   selection follows the pool's policy, and Endpoint Unreachable reports (§3.5) that also
//!   drop the PE from the cache.

mod config;

pub use config::{ClientConfig, ClientConfigError};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tracing::{debug, info, warn};

use crate::handlespace::{AssociationId, Handlespace, PeTimer};
use crate::policy::SelectionRequest;
use crate::wire::{
    AsapError, AsapMessage, CauseCode, Deregistration, EndpointKeepAlive, EndpointKeepAliveAck,
    EndpointUnreachable, HandleResolution, HandleResolutionResponse, OperationError, Policy,
    PoolElement, PoolElementId, PoolHandle, RegistrarId, Registration, Transport,
};

/// Identifies a request made through the client; its result comes as
/// [`ClientEvent::Done`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RequestId(pub u64);

/// Why a request failed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ClientError {
    /// The registrar refused it, in its response or with an ASAP Error answering the request
    /// (the RFC 5354 cause, or RSPLIB's, is in the Operation Error).
    #[error("refused by the registrar: {}", cause_text(.0))]
    Refused(OperationError),
    /// The registrar does not know the pool.
    #[error("unknown pool handle")]
    UnknownPoolHandle,
    /// Registrars were reached but none answered in time, MAX-REQUEST-RETRANSMIT times.
    #[error("no answer from a registrar")]
    Timeout,
    /// No registrar could be reached.
    #[error("no registrar reachable")]
    NoRegistrar,
    /// Too many requests are waiting.
    #[error("too many pending requests")]
    Overloaded,
    /// The PE is not registered through this client.
    #[error("no such pool element registered here")]
    UnknownPoolElement,
    /// The request is invalid.
    #[error("invalid request: {0}")]
    Invalid(InvalidRequest),
    /// The client was stopped.
    #[error("the ASAP client stopped")]
    Stopped,
}

/// Why a request cannot be made.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum InvalidRequest {
    /// A pool element's re-registration interval is zero.
    #[error("the re-registration interval must be positive")]
    ZeroReregistrationInterval,
    /// PE identifier 0 was asked for (random identifiers are 1 to 0xfffffffe).
    #[error("PE identifier 0")]
    ZeroPeId,
    /// The message cannot be encoded (a parameter over 65535 bytes).
    #[error(transparent)]
    Encode(#[from] crate::wire::EncodeError),
}

fn cause_text(e: &OperationError) -> String {
    let c = e.code();
    match c.name() {
        Some(n) => format!("{n} ({:#x})", c.0),
        None => format!("cause {:#x}", c.0),
    }
}

/// What a finished request gives.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The PE is registered (first registration or update).
    Registered {
        /// The pool.
        pool_handle: PoolHandle,
        /// The PE's identifier.
        pe_id: PoolElementId,
    },
    /// The PE is deregistered.
    Deregistered,
    /// PEs of the pool, in the order to try them.
    Resolved(Vec<PoolElement>),
}

/// Something the client reports.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClientEvent {
    /// A request finished.
    Done {
        /// The request.
        request: RequestId,
        /// Its result.
        result: Result<Outcome, ClientError>,
    },
    /// A home registrar was found (or a new one adopted through a Keep-Alive with H flag).
    HomeRegistrar {
        /// The association to it.
        association: AssociationId,
        /// Its ID, once known (from a keep-alive or an announce).
        id: Option<RegistrarId>,
    },
    /// The association to the home registrar was lost.
    HomeLost,
    /// A registered PE was refused on re-registration and is no longer registered.
    RegistrationLost {
        /// The pool.
        pool_handle: PoolHandle,
        /// The PE.
        pe_id: PoolElementId,
        /// Why.
        error: ClientError,
    },
}

/// Something the driver is to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClientOutput {
    /// Open an association to a registrar (report the outcome with
    /// [`AsapClient::association_up`] / [`AsapClient::association_failed`]).
    Connect {
        /// The ID the client gave it.
        association: AssociationId,
        /// The registrar's addresses (one or more) and SCTP port.
        remote: Vec<SocketAddr>,
    },
    /// Send an ASAP message (PPID 11).
    Send {
        /// The association.
        association: AssociationId,
        /// The encoded message.
        message: Bytes,
    },
    /// Close an association gracefully (an unneeded hunt result).
    Close {
        /// The association.
        association: AssociationId,
    },
    /// Abort an association (its registrar stopped answering).
    Abort {
        /// The association.
        association: AssociationId,
    },
}

/// A pool element to register.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PoolElementSpec {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE identifier; `None` picks a random one (1 to 0xfffffffe, as RSPLIB).
    pub pe_id: Option<PoolElementId>,
    /// How pool users reach the PE. A transport without addresses gets the local addresses
    /// of the association to the home registrar.
    pub user_transport: Transport,
    /// The policy and the PE's values for it.
    pub policy: Policy,
    /// T4-reregistration: the re-registration interval; the registration life sent is three
    /// times it (as RSPLIB's PEs do).
    pub reregistration_interval: Duration,
}

/// Counters of the client's work.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ClientStats {
    /// Requests sent (including re-sends).
    pub requests_sent: u64,
    /// Request timer expiries.
    pub request_timeouts: u64,
    /// Server hunts started.
    pub hunts: u64,
    /// Connection attempts to registrars.
    pub connect_attempts: u64,
    /// Keep-alives answered.
    pub keep_alives_answered: u64,
    /// Handle resolutions answered from the cache.
    pub cache_hits: u64,
    /// Endpoint Unreachable reports sent.
    pub unreachable_reports: u64,
    /// Server Announces taken.
    pub announces: u64,
    /// Messages that could not be decoded.
    pub decode_errors: u64,
    /// ASAP Error messages received from registrars.
    pub errors_received: u64,
}

#[derive(Clone, Debug)]
struct RegistrarEntry {
    addresses: Vec<IpAddr>,
    port: u16,
    id: Option<RegistrarId>,
    /// `None`: configured, never expires.
    expires: Option<Instant>,
}

impl RegistrarEntry {
    fn remote(&self) -> Vec<SocketAddr> {
        self.addresses
            .iter()
            .map(|&a| SocketAddr::new(a, self.port))
            .collect()
    }

    fn matches(&self, addrs: &[IpAddr], port: u16) -> bool {
        self.port == port && self.addresses.iter().any(|a| addrs.contains(a))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// A hunt attempt, connecting or up.
    Hunting,
    /// The home registrar.
    Home,
    /// Opened by a registrar (takeover keep-alive).
    Incoming,
}

#[derive(Debug)]
struct Assoc {
    role: Role,
    up: bool,
    /// Index into the registrar table when known.
    registrar: Option<(Vec<IpAddr>, u16)>,
    local_addresses: Vec<IpAddr>,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Key {
    Register(PoolHandle, PoolElementId),
    Deregister(PoolHandle, PoolElementId),
    Resolve(PoolHandle),
}

#[derive(Debug)]
enum Purpose {
    /// The registration of an own PE (first, update or re-registration); `user` is set when a
    /// caller waits for it.
    Register {
        user: bool,
    },
    Deregister,
    Resolve {
        items: Option<u32>,
        /// How long the PEs of the answer stay in the cache (zero: not cached).
        stale_cache_value: Duration,
    },
    /// Sent as soon as an association is up, no response (Endpoint Unreachable).
    Report,
}

#[derive(Debug)]
struct Request {
    key: Option<Key>,
    purpose: Purpose,
    message: Bytes,
    timer: Duration,
    deadline: Instant,
    transmissions: u32,
    sent_on: Option<AssociationId>,
    /// Order of the last transmission among all requests (an ASAP Error answers the oldest
    /// request outstanding on its association).
    sent_seq: u64,
    /// Ever sent to a registrar (distinguishes Timeout from NoRegistrar).
    ever_sent: bool,
}

#[derive(Debug)]
struct OwnPe {
    element: PoolElement,
    interval: Duration,
    /// Registered at the home registrar (a response said so).
    registered: bool,
    /// The registration request in progress.
    pending: Option<RequestId>,
    next_reregistration: Option<Instant>,
}

#[derive(Debug, Default)]
struct Hunt {
    active: bool,
    attempts: Vec<AssociationId>,
    /// Registrars tried in this round (by their primary address).
    tried: Vec<SocketAddr>,
    deadline: Option<Instant>,
    t5: Duration,
}

/// The ASAP client core. See the [module documentation](self).
pub struct AsapClient {
    config: ClientConfig,
    rng: StdRng,
    registrars: Vec<RegistrarEntry>,
    assocs: HashMap<AssociationId, Assoc>,
    next_assoc: u64,
    home: Option<AssociationId>,
    home_id: Option<RegistrarId>,
    hunt: Hunt,
    requests: HashMap<RequestId, Request>,
    next_request: u64,
    next_send_seq: u64,
    deadlines: BTreeSet<(Instant, RequestId)>,
    inflight: HashMap<Key, VecDeque<RequestId>>,
    unsent: VecDeque<RequestId>,
    own: BTreeMap<(PoolHandle, PoolElementId), OwnPe>,
    cache: Handlespace,
    outputs: VecDeque<ClientOutput>,
    events: VecDeque<ClientEvent>,
    stats: ClientStats,
    scratch: Vec<crate::handlespace::PeHandle>,
}

impl AsapClient {
    /// A client with these settings; `seed` drives its random choices (hunt order, PE IDs,
    /// cache selection).
    ///
    /// # Panics
    ///
    /// If the configuration is invalid ([`ClientConfig::validate`]).
    pub fn new(config: ClientConfig, seed: u64) -> Self {
        if let Err(e) = config.validate() {
            panic!("invalid ASAP client configuration: {e}");
        }
        let registrars = config
            .registrars
            .iter()
            .map(|a| RegistrarEntry {
                addresses: vec![a.ip()],
                port: a.port(),
                id: None,
                expires: None,
            })
            .collect();
        Self {
            hunt: Hunt {
                t5: config.t5_server_hunt,
                ..Hunt::default()
            },
            config,
            rng: StdRng::seed_from_u64(seed),
            registrars,
            assocs: HashMap::new(),
            next_assoc: 1,
            home: None,
            home_id: None,
            requests: HashMap::new(),
            next_request: 1,
            next_send_seq: 0,
            deadlines: BTreeSet::new(),
            inflight: HashMap::new(),
            unsent: VecDeque::new(),
            own: BTreeMap::new(),
            cache: Handlespace::new(),
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            stats: ClientStats::default(),
            scratch: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The association to the home registrar, when one is up.
    pub fn home(&self) -> Option<AssociationId> {
        self.home
    }

    /// The home registrar's ID, once known.
    pub fn home_id(&self) -> Option<RegistrarId> {
        self.home.and(self.home_id)
    }

    /// The registrars known (configured and announced), as (ASAP endpoints, ID if known).
    pub fn registrars(&self) -> impl Iterator<Item = (Vec<SocketAddr>, Option<RegistrarId>)> + '_ {
        self.registrars.iter().map(|r| (r.remote(), r.id))
    }

    /// The PEs registered through this client, as (pool handle, PE ID, registered now).
    pub fn own_pool_elements(&self) -> impl Iterator<Item = (&PoolHandle, PoolElementId, bool)> {
        self.own.iter().map(|((ph, id), o)| (ph, *id, o.registered))
    }

    /// The pool user's cache.
    pub fn cache(&self) -> &Handlespace {
        &self.cache
    }

    /// Requests waiting for an answer or for a registrar.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Adds a registrar to use (its ASAP SCTP endpoint), as if configured.
    pub fn add_registrar(&mut self, now: Instant, addr: SocketAddr) {
        if !self
            .registrars
            .iter()
            .any(|r| r.matches(&[addr.ip()], addr.port()))
        {
            self.registrars.push(RegistrarEntry {
                addresses: vec![addr.ip()],
                port: addr.port(),
                id: None,
                expires: None,
            });
            self.new_candidates(now);
        }
    }

    // ---------------------------------------------------------------------------------------
    // API

    /// Registers a pool element (and keeps it registered: T4 re-registrations, keep-alive
    /// answers). The result ([`Outcome::Registered`]) comes as [`ClientEvent::Done`].
    pub fn register(&mut self, now: Instant, spec: PoolElementSpec) -> RequestId {
        let rid = self.new_request_id();
        if spec.reregistration_interval.is_zero() {
            self.fail_now(
                rid,
                ClientError::Invalid(InvalidRequest::ZeroReregistrationInterval),
            );
            return rid;
        }
        let id = spec
            .pe_id
            .unwrap_or_else(|| PoolElementId(self.rng.random_range(1..=0xffff_fffe)));
        if id.0 == 0 {
            self.fail_now(rid, ClientError::Invalid(InvalidRequest::ZeroPeId));
            return rid;
        }
        let key = (spec.pool_handle.clone(), id);
        let life = self
            .config
            .registration_life_unit
            .value(spec.reregistration_interval * 3);
        let element = PoolElement {
            id,
            home_registrar: RegistrarId(0),
            registration_life: life,
            user_transport: spec.user_transport,
            policy: spec.policy,
            asap_transport: None,
        };
        match self.own.get_mut(&key) {
            Some(o) => {
                o.element = element;
                o.interval = spec.reregistration_interval;
            }
            None => {
                self.own.insert(
                    key.clone(),
                    OwnPe {
                        element,
                        interval: spec.reregistration_interval,
                        registered: false,
                        pending: None,
                        next_reregistration: None,
                    },
                );
            }
        }
        self.send_registration(now, &key, Some(rid));
        rid
    }

    /// Changes the policy values of a registered PE (e.g. its load) and re-registers it.
    pub fn update_policy(
        &mut self,
        now: Instant,
        pool_handle: &PoolHandle,
        pe_id: PoolElementId,
        policy: Policy,
    ) -> RequestId {
        let rid = self.new_request_id();
        let key = (pool_handle.clone(), pe_id);
        match self.own.get_mut(&key) {
            None => self.fail_now(rid, ClientError::UnknownPoolElement),
            Some(o) => {
                o.element.policy = policy;
                // Sent at once, even with another registration in flight: the registrar
                // answers in order, and the last one sent carries the current values.
                self.send_registration(now, &key, Some(rid));
            }
        }
        rid
    }

    /// Deregisters a PE registered through this client; it stops being kept registered at
    /// once. The result ([`Outcome::Deregistered`]) comes as [`ClientEvent::Done`].
    pub fn deregister(
        &mut self,
        now: Instant,
        pool_handle: &PoolHandle,
        pe_id: PoolElementId,
    ) -> RequestId {
        let rid = self.new_request_id();
        let Some(own) = self.own.remove(&(pool_handle.clone(), pe_id)) else {
            self.fail_now(rid, ClientError::UnknownPoolElement);
            return rid;
        };
        if let Some(p) = own.pending {
            self.cancel_request(p);
        }
        let msg = AsapMessage::Deregistration(Deregistration {
            pool_handle: pool_handle.clone(),
            pe_id,
        });
        self.submit(
            now,
            rid,
            Some(Key::Deregister(pool_handle.clone(), pe_id)),
            Purpose::Deregister,
            &msg,
            self.config.t3_deregistration,
        );
        rid
    }

    /// Resolves a pool handle to PEs, in the order to try them. `items` asks the registrar
    /// for that many (RSPLIB's option 0x803f; `u32::MAX` = all); `None` leaves it to the
    /// registrar and sends the RFC form. With a cache ([`ClientConfig::stale_cache_value`]),
    /// a fresh cache entry answers at once.
    pub fn resolve(
        &mut self,
        now: Instant,
        pool_handle: &PoolHandle,
        items: Option<u32>,
    ) -> RequestId {
        self.resolve_cached(now, pool_handle, items, self.config.stale_cache_value)
    }

    /// As [`resolve`](Self::resolve), with this call's cache lifetime instead of
    /// [`ClientConfig::stale_cache_value`] (RSPLIB's per-call `staleCacheValue`). Non-zero:
    /// fresh cached PEs (whichever call cached them) answer at once, and the PEs of a
    /// registrar's answer stay cached that long. Zero: the registrar is asked, and nothing is
    /// cached.
    pub fn resolve_cached(
        &mut self,
        now: Instant,
        pool_handle: &PoolHandle,
        items: Option<u32>,
        stale_cache_value: Duration,
    ) -> RequestId {
        let rid = self.new_request_id();
        if let Some(pes) = self.resolve_fresh(now, pool_handle, items, Some(stale_cache_value)) {
            self.events.push_back(ClientEvent::Done {
                request: rid,
                result: Ok(Outcome::Resolved(pes)),
            });
            return rid;
        }
        let msg = AsapMessage::HandleResolution(HandleResolution {
            subscribe: false,
            pool_handle: pool_handle.clone(),
            items,
        });
        self.submit(
            now,
            rid,
            Some(Key::Resolve(pool_handle.clone())),
            Purpose::Resolve {
                items,
                stale_cache_value,
            },
            &msg,
            self.config.t1_enrp_request,
        );
        rid
    }

    /// The answer of the cache alone, at once: the PEs of `pool_handle` selected from fresh
    /// cache entries, or `None` when a registrar must be asked (no fresh entry, or no cache:
    /// `stale_cache_value`, or [`ClientConfig::stale_cache_value`] when `None`, is zero). A
    /// driver answers cache hits with this without a request; the cache counts the hit.
    pub fn resolve_fresh(
        &mut self,
        now: Instant,
        pool_handle: &PoolHandle,
        items: Option<u32>,
        stale_cache_value: Option<Duration>,
    ) -> Option<Vec<PoolElement>> {
        self.resolve_fresh_with(now, pool_handle, items, stale_cache_value, |pes| {
            pes.cloned().collect()
        })
    }

    /// As [`resolve_fresh`](Self::resolve_fresh), handing the selected PEs to `f` where they
    /// are, in the order to try them, instead of copying them: for a caller that converts
    /// them into a form of its own (the C API's `rsp_addrinfo` list). Returns what `f`
    /// returns, or `None` (and `f` is not called) when a registrar must be asked.
    pub fn resolve_fresh_with<R>(
        &mut self,
        now: Instant,
        pool_handle: &PoolHandle,
        items: Option<u32>,
        stale_cache_value: Option<Duration>,
        f: impl FnOnce(&mut dyn Iterator<Item = &PoolElement>) -> R,
    ) -> Option<R> {
        if stale_cache_value
            .unwrap_or(self.config.stale_cache_value)
            .is_zero()
        {
            return None;
        }
        self.expire_cache(now);
        let n = self.cache.pool(pool_handle)?.len();
        self.stats.cache_hits += 1;
        let picked = self.pick_cached(pool_handle, n, items);
        let cache = &self.cache;
        let r = f(&mut picked
            .iter()
            .filter_map(|&h| cache.get(h).map(|e| e.element())));
        self.scratch = picked;
        Some(r)
    }

    /// Takes a PE out of the cache, without telling the registrar (which
    /// [`report_unreachable`](Self::report_unreachable) does); whether it was there.
    pub fn forget_cached(&mut self, pool_handle: &PoolHandle, pe_id: PoolElementId) -> bool {
        match self.cache.find(pool_handle, pe_id) {
            Some(pe) => {
                self.cache.remove(pe);
                true
            }
            None => false,
        }
    }

    /// Reports a PE unreachable (RFC 5352 §3.5): it leaves the cache, and an
    /// ASAP_ENDPOINT_UNREACHABLE goes to the home registrar (once one is up; no answer).
    pub fn report_unreachable(
        &mut self,
        now: Instant,
        pool_handle: &PoolHandle,
        pe_id: PoolElementId,
    ) {
        self.forget_cached(pool_handle, pe_id);
        let rid = self.new_request_id();
        let msg = AsapMessage::EndpointUnreachable(EndpointUnreachable {
            pool_handle: pool_handle.clone(),
            pe_id,
        });
        self.stats.unreachable_reports += 1;
        self.submit(
            now,
            rid,
            None,
            Purpose::Report,
            &msg,
            self.config.t1_enrp_request,
        );
    }

    /// Drops every cached PE of a pool (RFC 5352 §6.4 CachePurgeRequest).
    pub fn purge_cache(&mut self, pool_handle: &PoolHandle) {
        let handles: Vec<_> = self
            .cache
            .pool(pool_handle)
            .map(|p| p.elements().map(|e| e.handle()).collect())
            .unwrap_or_default();
        for h in handles {
            self.cache.remove(h);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Driver inputs

    /// The driver accepted an association a registrar opened (e.g. a takeover keep-alive);
    /// returns the ID to use for it.
    pub fn incoming_association(&mut self, local_addresses: Vec<IpAddr>) -> AssociationId {
        let id = self.new_assoc_id();
        self.assocs.insert(
            id,
            Assoc {
                role: Role::Incoming,
                up: true,
                registrar: None,
                local_addresses,
            },
        );
        id
    }

    /// An association the client asked for is up; `local_addresses` are this side's
    /// addresses on it (they fill PEs' empty user transports).
    pub fn association_up(
        &mut self,
        now: Instant,
        association: AssociationId,
        local_addresses: Vec<IpAddr>,
    ) {
        let Some(a) = self.assocs.get_mut(&association) else {
            // Unknown or already given up: not needed.
            self.outputs.push_back(ClientOutput::Close { association });
            return;
        };
        a.up = true;
        a.local_addresses = local_addresses;
        if a.role != Role::Hunting {
            return;
        }
        let registrar = a.registrar.clone();
        if self.home.is_some() {
            self.hunt.attempts.retain(|&x| x != association);
            self.close(association);
            return;
        }
        // SH3/SH6: the first registrar up becomes the home registrar.
        self.hunt.attempts.retain(|&x| x != association);
        for other in std::mem::take(&mut self.hunt.attempts) {
            self.close(other);
        }
        self.hunt.active = false;
        self.hunt.deadline = None;
        self.hunt.tried.clear();
        self.hunt.t5 = self.config.t5_server_hunt;
        let id = registrar.and_then(|(addrs, port)| {
            self.registrars
                .iter()
                .find(|r| r.matches(&addrs, port))
                .and_then(|r| r.id)
        });
        self.adopt_home(now, association, id);
    }

    /// An association the client asked for could not be set up.
    pub fn association_failed(&mut self, now: Instant, association: AssociationId) {
        self.association_down(now, association);
    }

    /// An association was lost or closed.
    pub fn association_down(&mut self, now: Instant, association: AssociationId) {
        let Some(a) = self.assocs.remove(&association) else {
            return;
        };
        if a.role == Role::Hunting {
            self.hunt.attempts.retain(|&x| x != association);
            if self.hunt.active && self.hunt.attempts.is_empty() {
                // SH4: try other registrars of this round.
                self.start_attempts(now);
            }
            return;
        }
        if self.home == Some(association) {
            info!(?association, "association to the home registrar lost");
            self.home = None;
            self.home_id = None;
            self.events.push_back(ClientEvent::HomeLost);
            self.requeue_from(association);
            for o in self.own.values_mut() {
                o.registered = false;
            }
            self.ensure_hunt(now);
        }
    }

    /// An ASAP message (PPID 11) arrived on an association.
    pub fn handle_message(&mut self, now: Instant, association: AssociationId, data: &[u8]) {
        let decoded = match AsapMessage::decode_full(data) {
            Ok(d) => d,
            Err(e) => {
                self.stats.decode_errors += 1;
                debug!(?association, error = %e, "undecodable ASAP message");
                if let Some(cause) = e.error_cause() {
                    self.send_now(
                        association,
                        &AsapMessage::Error(AsapError {
                            error: OperationError::new(cause),
                        }),
                    );
                }
                return;
            }
        };
        match decoded.message {
            AsapMessage::RegistrationResponse(r) => {
                let key = Key::Register(r.pool_handle.clone(), r.pe_id);
                let result = match (r.reject, r.error) {
                    (false, _) => Ok(()),
                    (true, Some(e)) => Err(ClientError::Refused(e)),
                    (true, None) => Err(ClientError::Refused(OperationError::new(
                        crate::wire::ErrorCause::new(CauseCode::UNSPECIFIED),
                    ))),
                };
                self.registration_response(now, association, key, r.pool_handle, r.pe_id, result);
            }
            AsapMessage::DeregistrationResponse(d) => {
                let key = Key::Deregister(d.pool_handle.clone(), d.pe_id);
                match self.take_inflight(association, &key) {
                    Some(rid) => {
                        let result = match d.error {
                            Some(e) => Err(ClientError::Refused(e)),
                            None => Ok(Outcome::Deregistered),
                        };
                        self.finish(rid, result);
                    }
                    None => {
                        // Unsolicited: the registrar dropped the PE (life over, unreachable).
                        let k = (d.pool_handle, d.pe_id);
                        if self.own.get(&k).is_some_and(|o| o.pending.is_none()) {
                            info!(pool = %k.0, pe = k.1.0, "registrar dropped an own PE; registering again");
                            self.own.get_mut(&k).expect("own").registered = false;
                            self.send_registration(now, &k, None);
                        }
                    }
                }
            }
            AsapMessage::HandleResolutionResponse(h) => {
                self.resolution_response(now, association, h)
            }
            AsapMessage::EndpointKeepAlive(k) => self.keep_alive(now, association, k),
            AsapMessage::Error(e) => self.operation_error(now, association, e.error),
            other => debug!(
                ?association,
                message = other.name(),
                "ignoring unexpected ASAP message"
            ),
        }
    }

    /// An ASAP_SERVER_ANNOUNCE arrived (UDP, from `source`).
    pub fn handle_announce(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let Ok(AsapMessage::ServerAnnounce(a)) = AsapMessage::decode(data) else {
            self.stats.decode_errors += 1;
            return;
        };
        self.stats.announces += 1;
        let expires = Some(now + self.config.t7_enrp_outdate);
        let mut endpoints: Vec<(Vec<IpAddr>, u16)> = a
            .transports
            .iter()
            .filter_map(|t| match t {
                Transport::Sctp(s) if s.port != 0 => {
                    let addrs: Vec<IpAddr> = s
                        .addresses
                        .iter()
                        .map(|&x| if x.is_unspecified() { source.ip() } else { x })
                        .collect();
                    Some((addrs, s.port))
                }
                _ => None,
            })
            .collect();
        if endpoints.is_empty() && a.transports.is_empty() {
            // RFC 5352 §3.6: the source address; the port as RSPLIB reads it (the announce
            // socket is bound to the ASAP port, so this is the ASAP port for RFC registrars).
            let port = if source.port() == 0 {
                crate::wire::ASAP_PORT
            } else {
                source.port()
            };
            endpoints.push((vec![source.ip()], port));
        }
        let mut added = false;
        for (addrs, port) in endpoints {
            match self.registrars.iter_mut().find(|r| r.matches(&addrs, port)) {
                Some(r) => {
                    r.id = Some(a.server_id);
                    if r.expires.is_some() {
                        r.expires = expires;
                    }
                }
                None => {
                    debug!(?addrs, port, id = a.server_id.0, "registrar announced");
                    self.registrars.push(RegistrarEntry {
                        addresses: addrs,
                        port,
                        id: Some(a.server_id),
                        expires,
                    });
                    added = true;
                }
            }
        }
        if added {
            self.new_candidates(now);
        }
    }

    /// The earliest time [`AsapClient::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.deadlines.first().map(|&(at, _)| at);
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        take(self.hunt.deadline);
        take(self.cache.next_deadline());
        take(self.registrars.iter().filter_map(|r| r.expires).min());
        take(
            self.own
                .values()
                .filter(|o| o.pending.is_none())
                .filter_map(|o| o.next_reregistration)
                .min(),
        );
        t
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Registrar announcements that are out of date (T7).
        self.registrars
            .retain(|r| r.expires.is_none_or(|e| e > now));
        self.expire_cache(now);
        // Requests (T1/T2/T3).
        while let Some(&(at, rid)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.request_timeout(now, rid);
        }
        // T5-Serverhunt.
        if self.hunt.deadline.is_some_and(|d| d <= now) {
            self.hunt_round_over(now);
        }
        // T4-reregistration.
        let due: Vec<_> = self
            .own
            .iter()
            .filter(|(_, o)| o.pending.is_none() && o.next_reregistration.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.send_registration(now, &k, None);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    // ---------------------------------------------------------------------------------------
    // Requests

    fn new_request_id(&mut self) -> RequestId {
        let r = RequestId(self.next_request);
        self.next_request += 1;
        r
    }

    fn new_assoc_id(&mut self) -> AssociationId {
        let a = AssociationId(self.next_assoc);
        self.next_assoc += 1;
        a
    }

    fn fail_now(&mut self, request: RequestId, error: ClientError) {
        self.events.push_back(ClientEvent::Done {
            request,
            result: Err(error),
        });
    }

    fn submit(
        &mut self,
        now: Instant,
        rid: RequestId,
        key: Option<Key>,
        purpose: Purpose,
        msg: &AsapMessage,
        timer: Duration,
    ) {
        if self.requests.len() >= self.config.max_pending_requests {
            return self.fail_now(rid, ClientError::Overloaded);
        }
        let message = match msg.to_bytes() {
            Ok(b) => Bytes::from(b),
            Err(e) => return self.fail_now(rid, ClientError::Invalid(e.into())),
        };
        let deadline = now + timer;
        self.requests.insert(
            rid,
            Request {
                key,
                purpose,
                message,
                timer,
                deadline,
                transmissions: 0,
                sent_on: None,
                sent_seq: 0,
                ever_sent: false,
            },
        );
        self.deadlines.insert((deadline, rid));
        self.transmit(now, rid);
    }

    /// Sends a request on the home association, or queues it and hunts.
    fn transmit(&mut self, now: Instant, rid: RequestId) {
        let Some(home) = self.home else {
            self.unsent.push_back(rid);
            self.ensure_hunt(now);
            return;
        };
        // A registration is built when sent: the user transport may take its addresses from
        // the association it goes out on.
        let fresh = match self.requests.get(&rid).and_then(|r| r.key.as_ref()) {
            Some(Key::Register(ph, id)) => self.registration_message(home, ph, *id),
            _ => None,
        };
        let Some(req) = self.requests.get_mut(&rid) else {
            return;
        };
        if let Some(m) = fresh {
            req.message = m;
        }
        self.outputs.push_back(ClientOutput::Send {
            association: home,
            message: req.message.clone(),
        });
        self.stats.requests_sent += 1;
        req.ever_sent = true;
        req.sent_seq = self.next_send_seq;
        self.next_send_seq += 1;
        match &req.key {
            Some(k) => {
                req.sent_on = Some(home);
                self.inflight.entry(k.clone()).or_default().push_back(rid);
            }
            None => {
                // Fire and forget.
                let req = self.requests.remove(&rid).expect("present");
                self.deadlines.remove(&(req.deadline, rid));
            }
        }
    }

    /// An ASAP Error from a registrar. It answers a request that the registrar could not
    /// process: the oldest one still outstanding on that association, since a registrar answers
    /// an association's requests in order (RSPLIB's client matches its responses the same way).
    /// That request ends at once with the cause, instead of waiting out its retransmissions.
    fn operation_error(&mut self, now: Instant, association: AssociationId, error: OperationError) {
        self.stats.errors_received += 1;
        let oldest = self
            .requests
            .iter()
            .filter(|(_, r)| r.sent_on == Some(association) && r.key.is_some())
            .min_by_key(|(_, r)| r.sent_seq)
            .map(|(&rid, r)| (rid, r.key.clone().expect("filtered")));
        let Some((rid, key)) = oldest else {
            return warn!(
                ?association,
                cause = %cause_text(&error),
                "registrar sent an ASAP Error, no request outstanding"
            );
        };
        warn!(?association, cause = %cause_text(&error), ?key, "registrar answered with an ASAP Error");
        // `finish` (also through `registration_failed`) takes it out of the in-flight queues.
        match key {
            Key::Register(..) => self.registration_failed(now, rid, ClientError::Refused(error)),
            Key::Resolve(_) if error.code() == CauseCode::UNKNOWN_POOL_HANDLE => {
                self.finish(rid, Err(ClientError::UnknownPoolHandle))
            }
            Key::Resolve(_) | Key::Deregister(..) => {
                self.finish(rid, Err(ClientError::Refused(error)))
            }
        }
    }

    fn take_inflight(&mut self, association: AssociationId, key: &Key) -> Option<RequestId> {
        let q = self.inflight.get_mut(key)?;
        let pos = q.iter().position(|r| {
            self.requests
                .get(r)
                .is_some_and(|r| r.sent_on == Some(association))
        })?;
        let rid = q.remove(pos).expect("position is valid");
        if q.is_empty() {
            self.inflight.remove(key);
        }
        Some(rid)
    }

    fn cancel_request(&mut self, rid: RequestId) {
        if let Some(req) = self.requests.remove(&rid) {
            self.deadlines.remove(&(req.deadline, rid));
            if let Some(k) = &req.key {
                if let Some(q) = self.inflight.get_mut(k) {
                    q.retain(|&r| r != rid);
                    if q.is_empty() {
                        self.inflight.remove(k);
                    }
                }
            }
        }
    }

    /// Completes a request: removes it and reports the result.
    fn finish(&mut self, rid: RequestId, result: Result<Outcome, ClientError>) {
        let Some(req) = self.requests.get(&rid) else {
            return;
        };
        let user = !matches!(
            req.purpose,
            Purpose::Register { user: false } | Purpose::Report
        );
        self.cancel_request(rid);
        if user {
            self.events.push_back(ClientEvent::Done {
                request: rid,
                result,
            });
        }
    }

    fn request_timeout(&mut self, now: Instant, rid: RequestId) {
        self.stats.request_timeouts += 1;
        let Some(req) = self.requests.get_mut(&rid) else {
            return;
        };
        if req.transmissions >= self.config.max_request_retransmit {
            let error = if req.ever_sent {
                ClientError::Timeout
            } else {
                ClientError::NoRegistrar
            };
            if let Purpose::Register { .. } = req.purpose {
                self.registration_failed(now, rid, error);
            } else {
                self.finish(rid, Err(error));
            }
            return;
        }
        req.transmissions += 1;
        req.deadline = now + req.timer;
        self.deadlines.insert((req.deadline, rid));
        if let Some(a) = req.sent_on {
            // §3.7.2: the home registrar does not answer. Give it up and hunt for another;
            // the request goes out again on the new one.
            warn!(association = ?a, "request timed out; looking for another registrar");
            self.outputs
                .push_back(ClientOutput::Abort { association: a });
            self.association_down(now, a);
        }
    }

    /// Requests sent on a lost association go back to the queue (§3.7.1: not counted).
    fn requeue_from(&mut self, association: AssociationId) {
        let mut again: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.sent_on == Some(association))
            .map(|(&id, _)| id)
            .collect();
        again.sort();
        for rid in again {
            let req = self.requests.get_mut(&rid).expect("present");
            req.sent_on = None;
            if let Some(k) = req.key.clone() {
                if let Some(q) = self.inflight.get_mut(&k) {
                    q.retain(|&r| r != rid);
                    if q.is_empty() {
                        self.inflight.remove(&k);
                    }
                }
            }
            self.unsent.push_back(rid);
        }
    }

    fn flush_unsent(&mut self, now: Instant) {
        while self.home.is_some() {
            let Some(rid) = self.unsent.pop_front() else {
                break;
            };
            if self.requests.contains_key(&rid) {
                self.transmit(now, rid);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Pool elements

    fn send_registration(
        &mut self,
        now: Instant,
        key: &(PoolHandle, PoolElementId),
        user: Option<RequestId>,
    ) {
        let Some(own) = self.own.get_mut(key) else {
            return;
        };
        if let Some(p) = own.pending.take() {
            // A re-registration nobody waits for is superseded; a caller's request stays.
            let internal = self
                .requests
                .get(&p)
                .is_some_and(|r| matches!(r.purpose, Purpose::Register { user: false }));
            if internal {
                self.cancel_request(p);
            }
        }
        let own = self.own.get_mut(key).expect("present");
        own.next_reregistration = None;
        // Encoded again with the addresses of the association it goes out on.
        let msg = AsapMessage::Registration(Registration {
            pool_handle: key.0.clone(),
            pool_element: own.element.clone(),
        });
        let rid = user.unwrap_or_else(|| self.new_request_id());
        self.own.get_mut(key).expect("present").pending = Some(rid);
        self.submit(
            now,
            rid,
            Some(Key::Register(key.0.clone(), key.1)),
            Purpose::Register {
                user: user.is_some(),
            },
            &msg,
            self.config.t2_registration,
        );
    }

    fn registration_message(
        &self,
        association: AssociationId,
        pool_handle: &PoolHandle,
        id: PoolElementId,
    ) -> Option<Bytes> {
        let own = self.own.get(&(pool_handle.clone(), id))?;
        let mut element = own.element.clone();
        if let Some(a) = self.assocs.get(&association) {
            fill_addresses(&mut element.user_transport, &a.local_addresses);
        }
        AsapMessage::Registration(Registration {
            pool_handle: pool_handle.clone(),
            pool_element: element,
        })
        .to_bytes()
        .ok()
        .map(Bytes::from)
    }

    fn registration_response(
        &mut self,
        now: Instant,
        association: AssociationId,
        key: Key,
        pool_handle: PoolHandle,
        pe_id: PoolElementId,
        result: Result<(), ClientError>,
    ) {
        let Some(rid) = self.take_inflight(association, &key) else {
            return debug!(pool = %pool_handle, pe = pe_id.0, "unexpected Registration Response");
        };
        match result {
            Ok(()) => {
                let k = (pool_handle.clone(), pe_id);
                if let Some(o) = self.own.get_mut(&k) {
                    if o.pending == Some(rid) {
                        o.pending = None;
                        o.registered = true;
                        o.next_reregistration = Some(now + o.interval);
                    }
                }
                self.finish(rid, Ok(Outcome::Registered { pool_handle, pe_id }));
            }
            Err(e) => self.registration_failed(now, rid, e),
        }
    }

    fn registration_failed(&mut self, now: Instant, rid: RequestId, error: ClientError) {
        let Some(req) = self.requests.get(&rid) else {
            return;
        };
        let user = matches!(req.purpose, Purpose::Register { user: true });
        let Some(Key::Register(ph, id)) = req.key.clone() else {
            return;
        };
        let k = (ph.clone(), id);
        let current = self.own.get(&k).is_some_and(|o| o.pending == Some(rid));
        let refused = matches!(error, ClientError::Refused(_));
        if current {
            let o = self.own.get_mut(&k).expect("present");
            o.pending = None;
            if refused || (user && !o.registered) {
                // RFC 5352 §3.1: no new attempt without correcting the error; a first
                // registration that found no registrar is the caller's to retry.
                let was_registered = o.registered;
                self.own.remove(&k);
                warn!(pool = %ph, pe = id.0, %error, "registration failed");
                if !user || was_registered {
                    self.events.push_back(ClientEvent::RegistrationLost {
                        pool_handle: ph,
                        pe_id: id,
                        error: error.clone(),
                    });
                }
            } else {
                // A registered PE keeps trying: the hunt goes on, and a new home registrar
                // gets the registration at once.
                o.registered = false;
                o.next_reregistration = Some(now + o.interval);
            }
        }
        self.finish(rid, Err(error));
    }

    fn keep_alive(&mut self, now: Instant, association: AssociationId, k: EndpointKeepAlive) {
        // KA1/KA2: acknowledge for the PE named, or for every own PE of the pool.
        let ids: Vec<PoolElementId> = match k.pe_id {
            Some(id) => self
                .own
                .contains_key(&(k.pool_handle.clone(), id))
                .then_some(id)
                .into_iter()
                .collect(),
            None => self
                .own
                .range(
                    (k.pool_handle.clone(), PoolElementId(0))
                        ..=(k.pool_handle.clone(), PoolElementId(u32::MAX)),
                )
                .map(|((_, id), _)| *id)
                .collect(),
        };
        if ids.is_empty() {
            return debug!(?association, pool = %k.pool_handle, "keep-alive for no own PE, discarded");
        }
        for id in ids {
            self.stats.keep_alives_answered += 1;
            self.send_now(
                association,
                &AsapMessage::EndpointKeepAliveAck(EndpointKeepAliveAck {
                    pool_handle: k.pool_handle.clone(),
                    pe_id: id,
                }),
            );
        }
        if self.home == Some(association) {
            self.home_id = Some(k.server_id);
        } else if k.home && self.home_id != Some(k.server_id) {
            // KA2.4: a new home registrar (takeover).
            info!(
                ?association,
                id = k.server_id.0,
                "adopting a new home registrar (keep-alive with H flag)"
            );
            if let Some(old) = self.home.take() {
                self.requeue_from(old);
                self.close(old);
            }
            if let Some(a) = self.assocs.get_mut(&association) {
                a.role = Role::Incoming;
            }
            // Re-registered at once: the new home may know only some of our PEs (its view of
            // the old home's was stale, or the takeover raced with our own failover), and the
            // registration makes it tell every peer it is the home now.
            self.adopt_home(now, association, Some(k.server_id));
        }
    }

    fn adopt_home(&mut self, now: Instant, association: AssociationId, id: Option<RegistrarId>) {
        if let Some(a) = self.assocs.get_mut(&association) {
            a.role = Role::Home;
        }
        self.home = Some(association);
        self.home_id = id;
        info!(?association, id = ?id.map(|i| i.0), "home registrar");
        self.events
            .push_back(ClientEvent::HomeRegistrar { association, id });
        self.flush_unsent(now);
        // A new home registrar must learn our PEs (and own them) now.
        let keys: Vec<_> = self
            .own
            .iter()
            .filter(|(_, o)| o.pending.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.send_registration(now, &k, None);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Pool users

    fn resolution_response(
        &mut self,
        now: Instant,
        association: AssociationId,
        h: HandleResolutionResponse,
    ) {
        let key = Key::Resolve(h.pool_handle.clone());
        let Some(rid) = self.take_inflight(association, &key) else {
            return debug!(pool = %h.pool_handle, "unexpected Handle Resolution Response");
        };
        let (items, stale_cache_value) = match self.requests.get(&rid).map(|r| &r.purpose) {
            Some(Purpose::Resolve {
                items,
                stale_cache_value,
            }) => (*items, *stale_cache_value),
            _ => (None, Duration::ZERO),
        };
        if let Some(e) = h.error {
            let err = if e.code() == CauseCode::UNKNOWN_POOL_HANDLE {
                ClientError::UnknownPoolHandle
            } else {
                ClientError::Refused(e)
            };
            return self.finish(rid, Err(err));
        }
        if h.elements.is_empty() {
            return self.finish(rid, Err(ClientError::UnknownPoolHandle));
        }
        if stale_cache_value.is_zero() {
            return self.finish(rid, Ok(Outcome::Resolved(h.elements)));
        }
        let expiry = now + stale_cache_value;
        for pe in h.elements {
            if let Ok(r) = self.cache.register(&h.pool_handle, pe, None) {
                self.cache
                    .set_deadline(r.pe, Some((expiry, PeTimer::Expiry)));
            }
        }
        let pes = self.select_cached(&h.pool_handle, items);
        self.finish(rid, Ok(Outcome::Resolved(pes)));
    }

    fn select_cached(&mut self, pool_handle: &PoolHandle, items: Option<u32>) -> Vec<PoolElement> {
        let n = self.cache.pool(pool_handle).map_or(0, |p| p.len());
        let picked = self.pick_cached(pool_handle, n, items);
        let pes = picked
            .iter()
            .filter_map(|&h| self.cache.get(h).map(|e| e.element().clone()))
            .collect();
        self.scratch = picked;
        pes
    }

    /// Selects `items` (all when `None`) of the `n` cached PEs of a pool by its policy, into
    /// the scratch vector taken out of `self` (the caller puts it back).
    fn pick_cached(
        &mut self,
        pool_handle: &PoolHandle,
        n: usize,
        items: Option<u32>,
    ) -> Vec<crate::handlespace::PeHandle> {
        let want = items.map_or(n, |i| (i as usize).min(n));
        let mut picked = std::mem::take(&mut self.scratch);
        picked.clear();
        let _ = self.cache.select(
            pool_handle,
            SelectionRequest::cache(want),
            &mut self.rng,
            &mut picked,
        );
        picked
    }

    fn expire_cache(&mut self, now: Instant) {
        while let Some((pe, _)) = self.cache.pop_expired(now) {
            self.cache.remove(pe);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Server hunt

    /// Whether the client has something that needs a registrar.
    fn has_work(&self) -> bool {
        !self.unsent.is_empty() || !self.own.is_empty()
    }

    fn ensure_hunt(&mut self, now: Instant) {
        if self.home.is_some() || self.hunt.active || !self.has_work() {
            return;
        }
        self.stats.hunts += 1;
        self.hunt.active = true;
        self.hunt.tried.clear();
        self.hunt.deadline = Some(now + self.hunt.t5);
        debug!(t5 = ?self.hunt.t5, "server hunt");
        self.start_attempts(now);
    }

    /// A new registrar became known: a hunt waiting for candidates can use it.
    fn new_candidates(&mut self, now: Instant) {
        if self.hunt.active && self.hunt.attempts.is_empty() {
            self.start_attempts(now);
        } else {
            self.ensure_hunt(now);
        }
    }

    /// SH1: connect to up to three registrars not tried in this round.
    fn start_attempts(&mut self, _now: Instant) {
        let mut candidates: Vec<usize> = (0..self.registrars.len())
            .filter(|&i| {
                let first = self.registrars[i].remote()[0];
                !self.hunt.tried.contains(&first)
            })
            .collect();
        candidates.shuffle(&mut self.rng);
        let room = self
            .config
            .max_parallel_hunt
            .saturating_sub(self.hunt.attempts.len());
        for i in candidates.into_iter().take(room) {
            let r = &self.registrars[i];
            let remote = r.remote();
            let key = (r.addresses.clone(), r.port);
            self.hunt.tried.push(remote[0]);
            let association = self.new_assoc_id();
            self.assocs.insert(
                association,
                Assoc {
                    role: Role::Hunting,
                    up: false,
                    registrar: Some(key),
                    local_addresses: Vec::new(),
                },
            );
            self.hunt.attempts.push(association);
            self.stats.connect_attempts += 1;
            self.outputs.push_back(ClientOutput::Connect {
                association,
                remote,
            });
        }
    }

    /// SH5: T5 expired without a registrar: stop the attempts, double T5, new round.
    fn hunt_round_over(&mut self, now: Instant) {
        for a in std::mem::take(&mut self.hunt.attempts) {
            self.assocs.remove(&a);
            self.outputs
                .push_back(ClientOutput::Abort { association: a });
        }
        self.hunt.active = false;
        self.hunt.deadline = None;
        self.hunt.t5 = (self.hunt.t5 * 2).min(self.config.retran_max);
        self.ensure_hunt(now);
    }

    fn close(&mut self, association: AssociationId) {
        self.assocs.remove(&association);
        self.outputs.push_back(ClientOutput::Close { association });
    }

    fn send_now(&mut self, association: AssociationId, msg: &AsapMessage) {
        match msg.to_bytes() {
            Ok(b) => self.outputs.push_back(ClientOutput::Send {
                association,
                message: Bytes::from(b),
            }),
            Err(e) => warn!(error = %e, "cannot encode {}", msg.name()),
        }
    }
}

/// Gives a user transport without addresses the local addresses of the registrar association.
fn fill_addresses(t: &mut Transport, local: &[IpAddr]) {
    let Some(&first) = local.first() else { return };
    match t {
        Transport::Sctp(s) if s.addresses.is_empty() => s.addresses = local.to_vec(),
        Transport::Tcp { address, .. }
        | Transport::Udp { address, .. }
        | Transport::UdpLite { address, .. }
        | Transport::Dccp { address, .. }
            if address.is_unspecified() =>
        {
            *address = first
        }
        _ => {}
    }
}
