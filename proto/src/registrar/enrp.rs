//! The registrar's ENRP side (RFC 5353): peers, Presence, the mentor phase, Handle Updates,
//! Handle Tables in pages, List Request/Response and the checksum audit. Takeover is in
//! `takeover.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tracing::{debug, info, warn};

use super::takeover::Takeover;
use super::{Assoc, CORE_ASSOCIATIONS, Output, PeerInfo, Registrar, RemovalReason, Role};
use crate::handlespace::{AssociationId, Cursor, PeHandle, PeTimer, RemovedPe};
use crate::wire::{
    EnrpError, EnrpMessage, HandleTableRequest, HandleTableResponse, HandleUpdate, ListResponse,
    OperationError, PoolElement, PoolEntry, PoolHandle, Presence, RegistrarId, SctpTransport,
    ServerIds, ServerInformation, UpdateAction,
};

use super::config::EnrpConfig;

/// What the registrar knows about one peer, for status pages and tools.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerStatus {
    /// The peer's registrar ID.
    pub id: RegistrarId,
    /// Its ENRP transport as it announced it (or as it was reached).
    pub transport: Option<SctpTransport>,
    /// Whether an ENRP association to it is up.
    pub connected: bool,
    /// Time since it was last heard.
    pub last_heard: Duration,
    /// How many PEs it is the home of, here.
    pub owned_pes: usize,
    /// Whether its last advertised checksum matches the checksum of its PEs here.
    pub in_sync: bool,
    /// Whether a takeover of it is under way here.
    pub takeover: bool,
}

#[derive(Debug)]
pub(super) struct Link {
    /// The peer, once a message told who it is (or the one it was opened to).
    peer: Option<RegistrarId>,
    /// Up (accepted, or opened and connected).
    up: bool,
    /// The static peer it was opened to.
    static_index: Option<usize>,
    info: Option<PeerInfo>,
}

#[derive(Debug)]
pub(super) struct Peer {
    /// Its ENRP transport (from its Server Information, or from a static peer address).
    transport: Option<SctpTransport>,
    /// An up association to it.
    pub(super) association: Option<AssociationId>,
    /// One being opened.
    connecting: Option<AssociationId>,
    pub(super) last_heard: Instant,
    /// When the Presence with "reply required" goes unanswered.
    pub(super) probe: Option<Instant>,
    checksum: Option<u16>,
    /// Where the next Handle Table Response to it continues (and whether it is W-only).
    cursor: Option<(bool, Cursor)>,
    /// A Handle Table Request to it is outstanding: with W or not, on which association,
    /// since when.
    syncing: Option<(bool, AssociationId, Instant)>,
    /// Its PEs not yet seen in the audit's Handle Table Responses.
    audit: Option<HashSet<PeHandle>>,
}

#[derive(Debug)]
pub(super) struct Startup {
    deadline: Instant,
    mentor: Option<RegistrarId>,
}

/// ENRP state of a [`Registrar`].
#[derive(Debug)]
pub(super) struct Enrp {
    pub(super) cfg: EnrpConfig,
    pub(super) peers: BTreeMap<RegistrarId, Peer>,
    pub(super) links: BTreeMap<AssociationId, Link>,
    static_links: Vec<Option<AssociationId>>,
    next_association: u64,
    next_heartbeat: Instant,
    startup: Option<Startup>,
    pub(super) takeovers: BTreeMap<RegistrarId, Takeover>,
    /// Takeovers won lately, until when they are remembered (a late Init Takeover for the
    /// same target is answered with Takeover Server).
    pub(super) won: BTreeMap<RegistrarId, Instant>,
    /// Handle Updates that said a PE bound to one of our associations registered at a peer:
    /// held back while the PE is ours here (the update may be older than the PE's last
    /// registration here), taken when the PE leaves us, dropped when it shows it is ours.
    pub(super) claims: HashMap<PeHandle, (Instant, PoolElement)>,
    /// Associations opened to taken-over PEs, with the PEs waiting for them.
    pub(super) asap_connects: BTreeMap<AssociationId, Vec<PeHandle>>,
}

impl Enrp {
    pub(super) fn new(cfg: &EnrpConfig, now: Instant) -> Self {
        Self {
            static_links: vec![None; cfg.static_peers.len()],
            cfg: cfg.clone(),
            peers: BTreeMap::new(),
            links: BTreeMap::new(),
            next_association: CORE_ASSOCIATIONS,
            next_heartbeat: now,
            startup: Some(Startup {
                deadline: now + cfg.mentor_discovery_timeout,
                mentor: None,
            }),
            takeovers: BTreeMap::new(),
            won: BTreeMap::new(),
            claims: HashMap::new(),
            asap_connects: BTreeMap::new(),
        }
    }

    pub(super) fn allocate(&mut self) -> AssociationId {
        let a = AssociationId(self.next_association);
        self.next_association += 1;
        a
    }

    fn new_peer(now: Instant) -> Peer {
        Peer {
            transport: None,
            association: None,
            connecting: None,
            last_heard: now,
            probe: None,
            checksum: None,
            cursor: None,
            syncing: None,
            audit: None,
        }
    }
}

/// Puts a receiver ID into an encoded ENRP message (bytes 8..12).
fn with_receiver(message: &[u8], receiver: RegistrarId) -> Bytes {
    let mut v = message.to_vec();
    if v.len() >= 12 {
        v[8..12].copy_from_slice(&receiver.0.to_be_bytes());
    }
    Bytes::from(v)
}

/// A transport's addresses, the unspecified ones replaced by `fallback`.
fn resolve_addresses(t: &SctpTransport, fallback: &[IpAddr]) -> Vec<IpAddr> {
    let given: Vec<IpAddr> = t
        .addresses
        .iter()
        .copied()
        .filter(|a| !a.is_unspecified())
        .collect();
    if given.is_empty() {
        fallback.to_vec()
    } else {
        given
    }
}

impl Registrar {
    fn en(&mut self) -> &mut Enrp {
        self.enrp.as_deref_mut().expect("ENRP is on")
    }

    /// Whether the registrar is still in its mentor phase (RFC 5353 §3.1): it serves ASAP but
    /// sends no Server Announces yet.
    pub fn is_starting_up(&self) -> bool {
        self.enrp.as_ref().is_some_and(|e| e.startup.is_some())
    }

    pub(super) fn enrp_start(&mut self) {
        let Some(e) = self.enrp.as_deref() else {
            return;
        };
        if e.cfg.static_peers.is_empty() && !e.cfg.announce {
            // Nobody to learn from: no mentor phase.
            self.en().startup = None;
        }
        for i in 0..self.en().static_links.len() {
            self.connect_static(i);
        }
    }

    fn connect_static(&mut self, i: usize) {
        let e = self.en();
        let addr: SocketAddr = e.cfg.static_peers[i];
        let association = e.allocate();
        e.static_links[i] = Some(association);
        e.links.insert(
            association,
            Link {
                peer: None,
                up: false,
                static_index: Some(i),
                info: None,
            },
        );
        self.outputs.push_back(Output::Connect {
            association,
            role: Role::Enrp,
            addresses: vec![addr.ip()],
            port: addr.port(),
        });
    }

    fn connect_peer(&mut self, id: RegistrarId, fallback: &[IpAddr]) {
        let e = self.en();
        let Some(p) = e.peers.get(&id) else { return };
        if p.association.is_some() || p.connecting.is_some() {
            return;
        }
        let Some(t) = p.transport.clone() else { return };
        let addresses = resolve_addresses(&t, fallback);
        if addresses.is_empty() || t.port == 0 {
            return;
        }
        let association = e.allocate();
        e.links.insert(
            association,
            Link {
                peer: Some(id),
                up: false,
                static_index: None,
                info: None,
            },
        );
        e.peers.get_mut(&id).expect("present").connecting = Some(association);
        self.outputs.push_back(Output::Connect {
            association,
            role: Role::Enrp,
            addresses,
            port: t.port,
        });
    }

    /// An association accepted on the ENRP port came up: a peer (or a tool posing as one).
    pub fn peer_association_up(
        &mut self,
        _now: Instant,
        association: AssociationId,
        peer: PeerInfo,
    ) {
        let Some(e) = self.enrp.as_deref_mut() else {
            return;
        };
        debug!(?association, ?peer, "ENRP association up");
        e.links.insert(
            association,
            Link {
                peer: None,
                up: true,
                static_index: None,
                info: Some(peer),
            },
        );
    }

    /// An association asked for with [`Output::Connect`] is up.
    pub fn connected(&mut self, now: Instant, association: AssociationId, peer: PeerInfo) {
        let Some(e) = self.enrp.as_deref_mut() else {
            return;
        };
        if let Some(pes) = e.asap_connects.remove(&association) {
            self.assocs.insert(association, Assoc { peer, pes: 0 });
            return self.takeover_connected(now, association, pes);
        }
        let Some(link) = e.links.get_mut(&association) else {
            return;
        };
        link.up = true;
        link.info = Some(peer);
        if let Some(id) = link.peer {
            if let Some(p) = e.peers.get_mut(&id) {
                p.connecting = None;
                if p.association.is_none() {
                    p.association = Some(association);
                }
            }
        }
        debug!(?association, "ENRP association opened");
        // Tell the peer who we are and ask it to answer, which tells us who it is.
        let msg = self.presence(RegistrarId(0), true);
        self.send_enrp(association, &msg);
    }

    /// An association asked for with [`Output::Connect`] could not be opened.
    pub fn connect_failed(&mut self, _now: Instant, association: AssociationId) {
        let Some(e) = self.enrp.as_deref_mut() else {
            return;
        };
        if let Some(pes) = e.asap_connects.remove(&association) {
            // The PEs keep their keep-alive timeout and go if they do not come back.
            debug!(?association, pes = pes.len(), "cannot reach taken-over PEs");
            return;
        }
        self.enrp_association_down(association);
    }

    /// Handles the loss of an ENRP association; `false` if it is not one.
    pub(super) fn enrp_association_down(&mut self, association: AssociationId) -> bool {
        let Some(e) = self.enrp.as_deref_mut() else {
            return false;
        };
        if e.asap_connects.remove(&association).is_some() {
            return true;
        }
        let Some(link) = e.links.remove(&association) else {
            return false;
        };
        if let Some(i) = link.static_index {
            if e.static_links[i] == Some(association) {
                e.static_links[i] = None;
            }
        }
        if let Some(id) = link.peer {
            let other = e
                .links
                .iter()
                .find(|(_, l)| l.up && l.peer == Some(id))
                .map(|(&a, _)| a);
            if let Some(p) = e.peers.get_mut(&id) {
                if p.association == Some(association) {
                    p.association = other;
                }
                if p.connecting == Some(association) {
                    p.connecting = None;
                }
                // An answer on the lost association will not come.
                if p.syncing.is_some_and(|(_, a, _)| a == association) {
                    p.syncing = None;
                    p.audit = None;
                }
                if p.association.is_none() {
                    p.cursor = None;
                }
            }
            debug!(?association, peer = id.0, "ENRP association lost");
        }
        true
    }

    /// The peers known, in ID order.
    pub fn peers(&self, now: Instant) -> Vec<PeerStatus> {
        let Some(e) = self.enrp.as_deref() else {
            return Vec::new();
        };
        e.peers
            .iter()
            .map(|(&id, p)| PeerStatus {
                id,
                transport: p.transport.clone(),
                connected: p.association.is_some(),
                last_heard: now.saturating_duration_since(p.last_heard),
                owned_pes: self.hs.owned_count(id),
                in_sync: p
                    .checksum
                    .is_some_and(|c| self.hs.owner_checksum(id).matches(c)),
                takeover: e.takeovers.contains_key(&id),
            })
            .collect()
    }

    // ---------------------------------------------------------------------------------------
    // Sending

    pub(super) fn send_enrp(&mut self, association: AssociationId, msg: &EnrpMessage) {
        match msg.to_bytes() {
            Ok(b) => {
                self.stats.enrp_sent += 1;
                self.outputs.push_back(Output::SendEnrp {
                    association,
                    message: Bytes::from(b),
                })
            }
            Err(e) => warn!(?association, error = %e, "cannot encode {}", msg.name()),
        }
    }

    /// Sends to a peer if an association to it is up.
    pub(super) fn send_to_peer(&mut self, id: RegistrarId, msg: &EnrpMessage) -> bool {
        let Some(a) = self
            .enrp
            .as_deref()
            .and_then(|e| e.peers.get(&id))
            .and_then(|p| p.association)
        else {
            return false;
        };
        self.send_enrp(a, msg);
        true
    }

    /// Sends a message (encoded once) to every connected peer but `except`, each with its ID as
    /// the receiver.
    pub(super) fn broadcast(&mut self, msg: &EnrpMessage, except: &[RegistrarId]) {
        let Some(e) = self.enrp.as_deref() else {
            return;
        };
        let targets: Vec<(RegistrarId, AssociationId)> = e
            .peers
            .iter()
            .filter(|(id, _)| !except.contains(id))
            .filter_map(|(&id, p)| p.association.map(|a| (id, a)))
            .collect();
        if targets.is_empty() {
            return;
        }
        let bytes = match msg.to_bytes() {
            Ok(b) => b,
            Err(err) => return warn!(error = %err, "cannot encode {}", msg.name()),
        };
        for (id, association) in targets {
            self.stats.enrp_sent += 1;
            self.outputs.push_back(Output::SendEnrp {
                association,
                message: with_receiver(&bytes, id),
            });
        }
    }

    fn ids(&self, receiver: RegistrarId) -> ServerIds {
        ServerIds {
            sender: self.config.id,
            receiver,
        }
    }

    fn server_info(&self) -> Option<ServerInformation> {
        self.enrp.as_deref().map(|e| ServerInformation {
            server_id: self.config.id,
            transport: e.cfg.server_transport.clone(),
        })
    }

    pub(super) fn presence(&self, receiver: RegistrarId, reply_required: bool) -> EnrpMessage {
        EnrpMessage::Presence(Presence {
            ids: self.ids(receiver),
            reply_required,
            checksum: Some(self.hs.owner_checksum(self.config.id).value()),
            server_info: self.server_info(),
        })
    }

    // ---------------------------------------------------------------------------------------
    // Replication

    /// An accepted (re-)registration of an own PE goes to every peer: a re-registration renews
    /// the PE's life at the peers (RSPLIB expires peers' PEs by it), so every one is sent.
    pub(super) fn replicate_registration(&mut self, pe: PeHandle) {
        if let Some(entry) = self.hs.get(pe) {
            let (pool, element) = (entry.pool_handle().clone(), entry.element().clone());
            self.replicate(UpdateAction::AddPe, pool, element);
        }
    }

    /// A removed own PE goes to every peer as a DEL_PE.
    pub(super) fn replicate_removal(&mut self, removed: &RemovedPe) {
        let (pool, element) = (removed.pool_handle.clone(), removed.element.clone());
        self.replicate(UpdateAction::DelPe, pool, element);
    }

    fn replicate(&mut self, action: UpdateAction, pool_handle: PoolHandle, pe: PoolElement) {
        if self.enrp.as_deref().is_none_or(|e| e.peers.is_empty()) {
            return;
        }
        let msg = EnrpMessage::HandleUpdate(HandleUpdate {
            ids: self.ids(RegistrarId(0)),
            takeover_suggested: false,
            action,
            pool_handle,
            pool_element: pe,
        });
        self.broadcast(&msg, &[]);
    }

    /// Stores a PE a peer told about (its home stays the peer's choice); it expires with its
    /// registration life unless told again. A Handle Update (`fresh`) follows a registration
    /// at its home, so it also moves a PE away from another home (ours included); a Handle
    /// Table entry is a snapshot that may be older than what is known here, so it does not
    /// replace an entry homed here or at another live peer.
    fn learn_pe(
        &mut self,
        now: Instant,
        pool: &PoolHandle,
        pe: PoolElement,
        fresh: bool,
    ) -> Option<PeHandle> {
        if pe.home_registrar == self.config.id || pe.home_registrar.0 == 0 {
            return None;
        }
        if let Some(old) = self.hs.find(pool, pe.id) {
            let entry = self.hs.get(old).expect("found");
            let home = entry.home_registrar();
            if fresh && home == self.config.id && entry.association().is_some() {
                // Ours over a live association: the PE tells us itself if it moved.
                self.en().claims.insert(old, (now, pe));
                return None;
            }
            let live_elsewhere = home == self.config.id
                || self
                    .enrp
                    .as_deref()
                    .is_some_and(|e| e.peers.contains_key(&home));
            if !fresh && home != pe.home_registrar && live_elsewhere {
                return Some(old);
            }
            if let Some(a) = entry.association() {
                // Our PE re-registered at a peer: it is the peer's now.
                if let Some(a) = self.assocs.get_mut(&a) {
                    a.pes -= 1;
                }
            }
            self.life.remove(&old);
        }
        let life = self
            .config
            .registration_life_unit
            .duration(pe.registration_life);
        match self.hs.register(pool, pe, None) {
            Ok(reg) => {
                let deadline = life.map(|d| (now + d, PeTimer::Expiry));
                self.hs.set_deadline(reg.pe, deadline);
                Some(reg.pe)
            }
            Err(e) => {
                debug!(pool = %pool, error = %e, "a peer's PE is not taken");
                None
            }
        }
    }

    pub(super) fn drop_claim(&mut self, pe: PeHandle) {
        if let Some(e) = self.enrp.as_deref_mut() {
            e.claims.remove(&pe);
        }
    }

    /// The claim on an own PE that is leaving, if any (a stale one is repaired by the audit
    /// of the claimant, who then does not list the PE).
    pub(super) fn take_claim(&mut self, pe: PeHandle) -> Option<(Instant, PoolElement)> {
        self.enrp.as_deref_mut()?.claims.remove(&pe)
    }

    pub(super) fn apply_claim(&mut self, pool: &PoolHandle, (at, claim): (Instant, PoolElement)) {
        debug!(pool = %pool, pe = claim.id.0, home = claim.home_registrar.0, "PE moved to a peer");
        self.learn_pe(at, pool, claim, true);
    }

    // ---------------------------------------------------------------------------------------
    // Receiving

    /// A multicast ENRP_PRESENCE arrived from `source` (RFC 5353 §3.2).
    pub fn handle_enrp_announce(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        if self.enrp.is_none() {
            return;
        }
        let Ok(EnrpMessage::Presence(p)) = EnrpMessage::decode(data) else {
            return debug!(%source, "multicast ENRP message that is not a Presence ignored");
        };
        let id = p.ids.sender;
        if id == self.config.id || id.0 == 0 {
            return;
        }
        self.stats.enrp_received += 1;
        let transport = p.server_info.map(|s| s.transport).unwrap_or(SctpTransport {
            port: source.port(),
            transport_use: crate::wire::TransportUse::DataOnly,
            addresses: Vec::new(),
        });
        let e = self.en();
        let new = !e.peers.contains_key(&id);
        let peer = e.peers.entry(id).or_insert_with(|| Enrp::new_peer(now));
        let addresses = resolve_addresses(&transport, &[source.ip()]);
        peer.transport = Some(SctpTransport {
            addresses,
            ..transport
        });
        if new {
            info!(peer = format!("{:#010x}", id.0), %source, "ENRP peer heard");
        }
        self.heard(now, id);
        self.connect_peer(id, &[source.ip()]);
    }

    /// An ENRP message (PPID 12) arrived on an association.
    pub fn handle_enrp(&mut self, now: Instant, association: AssociationId, data: &[u8]) {
        let Some(e) = self.enrp.as_deref() else {
            return;
        };
        if !e.links.contains_key(&association) {
            return debug!(
                ?association,
                "ENRP message on an association that is not ENRP"
            );
        }
        let decoded = match EnrpMessage::decode_full(data) {
            Ok(d) => d,
            Err(err) => {
                self.stats.decode_errors += 1;
                debug!(?association, error = %err, "undecodable ENRP message");
                if let Some(cause) = err.error_cause() {
                    let msg = EnrpMessage::Error(EnrpError {
                        ids: self.ids(RegistrarId(0)),
                        error: OperationError::new(cause),
                    });
                    self.send_enrp(association, &msg);
                }
                return;
            }
        };
        if let Some(report) = decoded.unrecognized_report() {
            let msg = EnrpMessage::Error(EnrpError {
                ids: self.ids(decoded.message.ids().sender),
                error: report,
            });
            self.send_enrp(association, &msg);
        }
        let msg = decoded.message;
        let sender = msg.ids().sender;
        if sender == self.config.id || sender.0 == 0 {
            return debug!(
                ?association,
                "ENRP message with our own or no sender ID ignored"
            );
        }
        let receiver = msg.ids().receiver;
        if receiver.0 != 0 && receiver != self.config.id {
            return debug!(
                ?association,
                receiver = receiver.0,
                "ENRP message for another registrar ignored"
            );
        }
        self.stats.enrp_received += 1;
        // Whoever speaks on a link is its peer.
        let e = self.en();
        let link = e.links.get_mut(&association).expect("checked");
        link.peer = Some(sender);
        let known = e.peers.contains_key(&sender);
        if let Some(p) = e.peers.get_mut(&sender) {
            if p.association.is_none() {
                p.association = Some(association);
                p.connecting = None;
            }
        }
        match msg {
            EnrpMessage::Presence(p) => self.on_presence(now, association, p),
            EnrpMessage::HandleTableRequest(r) if known => self.on_ht_request(association, r),
            EnrpMessage::HandleTableRequest(r) => {
                debug!(
                    peer = sender.0,
                    "Handle Table Request from an unknown peer: rejected"
                );
                let msg = EnrpMessage::HandleTableResponse(HandleTableResponse {
                    ids: self.ids(r.ids.sender),
                    more_to_send: false,
                    reject: true,
                    pools: Vec::new(),
                });
                self.send_enrp(association, &msg);
            }
            EnrpMessage::HandleTableResponse(r) if known => self.on_ht_response(now, r),
            EnrpMessage::HandleUpdate(u) if known => self.on_handle_update(now, u),
            EnrpMessage::ListRequest(ids) => {
                let servers = self
                    .en()
                    .peers
                    .iter()
                    .filter(|&(&id, _)| id != ids.sender)
                    .filter_map(|(&id, p)| {
                        p.transport.clone().map(|transport| ServerInformation {
                            server_id: id,
                            transport,
                        })
                    })
                    .collect();
                let msg = EnrpMessage::ListResponse(ListResponse {
                    ids: self.ids(ids.sender),
                    reject: false,
                    servers,
                });
                self.send_enrp(association, &msg);
            }
            EnrpMessage::ListResponse(l) => self.on_list_response(now, l),
            EnrpMessage::InitTakeover(t) if known => self.on_init_takeover(now, t),
            EnrpMessage::InitTakeoverAck(t) if known => self.on_init_takeover_ack(now, t),
            EnrpMessage::TakeoverServer(t) if known => self.on_takeover_server(now, t),
            EnrpMessage::Error(err) => {
                self.stats.errors_received += 1;
                debug!(peer = sender.0, cause = ?err.error.code(), "ENRP_ERROR received");
            }
            other => {
                self.stats.unexpected_messages += 1;
                debug!(
                    peer = sender.0,
                    message = other.name(),
                    "ENRP message from a peer not yet known ignored"
                );
            }
        }
    }

    /// A peer was heard: its probe and any takeover of it end.
    pub(super) fn heard(&mut self, now: Instant, id: RegistrarId) {
        let e = self.en();
        if let Some(p) = e.peers.get_mut(&id) {
            p.last_heard = now;
            p.probe = None;
        }
        if e.takeovers.remove(&id).is_some() {
            info!(
                peer = format!("{:#010x}", id.0),
                "peer is back: takeover cancelled"
            );
        }
    }

    fn on_presence(&mut self, now: Instant, association: AssociationId, p: Presence) {
        let id = p.ids.sender;
        let link_addresses = self
            .en()
            .links
            .get(&association)
            .and_then(|l| l.info.as_ref())
            .map(|i| i.addresses.clone())
            .unwrap_or_default();
        let e = self.en();
        let new = !e.peers.contains_key(&id);
        let peer = e.peers.entry(id).or_insert_with(|| Enrp::new_peer(now));
        if peer.association.is_none() {
            peer.association = Some(association);
        }
        if let Some(si) = &p.server_info {
            let addresses = resolve_addresses(&si.transport, &link_addresses);
            peer.transport = Some(SctpTransport {
                addresses,
                ..si.transport.clone()
            });
        }
        peer.checksum = p.checksum;
        if new {
            info!(peer = format!("{:#010x}", id.0), "ENRP peer connected");
        }
        self.heard(now, id);
        if p.reply_required || new {
            let reply = self.presence(id, new && !p.reply_required);
            self.send_enrp(association, &reply);
        }
        // The first peer heard while starting is the mentor (RFC 5353 §3.1).
        let e = self.en();
        if let Some(s) = e.startup.as_mut() {
            if s.mentor.is_none() {
                s.mentor = Some(id);
                s.deadline = now + e.cfg.mentor_discovery_timeout;
                info!(
                    peer = format!("{:#010x}", id.0),
                    "mentor found: synchronising"
                );
                let list = EnrpMessage::ListRequest(self.ids(id));
                self.send_enrp(association, &list);
                self.request_handle_table(now, id, false);
                return;
            }
        }
        // The audit (RFC 5353 §3.6).
        let Some(sum) = p.checksum else { return };
        let e = self.enrp.as_deref().expect("on");
        let patience = e.cfg.max_time_no_response * 2;
        let busy = e
            .peers
            .get(&id)
            .is_none_or(|p| p.syncing.is_some_and(|(_, _, at)| at + patience > now))
            || e.startup.as_ref().is_some_and(|s| s.mentor == Some(id));
        if busy || self.hs.owner_checksum(id).matches(sum) {
            return;
        }
        self.stats.audits += 1;
        debug!(
            peer = id.0,
            theirs = sum,
            ours = self.hs.owner_checksum(id).value(),
            "checksum differs: auditing the peer's PEs"
        );
        let marked: HashSet<PeHandle> = self.hs.owned_by(id).map(|e| e.handle()).collect();
        self.en().peers.get_mut(&id).expect("present").audit = Some(marked);
        self.request_handle_table(now, id, true);
    }

    fn request_handle_table(&mut self, now: Instant, id: RegistrarId, own_children_only: bool) {
        let msg = EnrpMessage::HandleTableRequest(HandleTableRequest {
            ids: self.ids(id),
            own_children_only,
        });
        if self.send_to_peer(id, &msg) {
            if let Some(p) = self.en().peers.get_mut(&id) {
                p.syncing = p.association.map(|a| (own_children_only, a, now));
            }
        }
    }

    fn on_ht_request(&mut self, association: AssociationId, r: HandleTableRequest) {
        let id = r.ids.sender;
        let w = r.own_children_only;
        let max = self.en().cfg.max_elements_per_ht_request;
        let cursor = match self.en().peers.get(&id).and_then(|p| p.cursor) {
            Some((cw, c)) if cw == w => Some(c),
            _ => None,
        };
        let mut pools: Vec<PoolEntry> = Vec::new();
        let mut last = None;
        let mut count = 0;
        let mut more = false;
        {
            let mut it: Box<dyn Iterator<Item = _>> = if w {
                Box::new(self.hs.owned_by_after(self.config.id, cursor))
            } else {
                Box::new(self.hs.iter_after(cursor))
            };
            for entry in &mut it {
                if count == max {
                    more = true;
                    break;
                }
                match pools.last_mut() {
                    Some(p) if &p.pool_handle == entry.pool_handle() => {
                        p.elements.push(entry.element().clone())
                    }
                    _ => pools.push(PoolEntry {
                        pool_handle: entry.pool_handle().clone(),
                        elements: vec![entry.element().clone()],
                    }),
                }
                last = Some(entry.cursor());
                count += 1;
            }
        }
        if let Some(p) = self.en().peers.get_mut(&id) {
            p.cursor = if more { last.map(|c| (w, c)) } else { None };
        }
        let msg = EnrpMessage::HandleTableResponse(HandleTableResponse {
            ids: self.ids(id),
            more_to_send: more,
            reject: false,
            pools,
        });
        self.send_enrp(association, &msg);
    }

    fn on_ht_response(&mut self, now: Instant, r: HandleTableResponse) {
        let id = r.ids.sender;
        let Some((w, _, _)) = self.en().peers.get(&id).and_then(|p| p.syncing) else {
            return debug!(peer = id.0, "unasked-for Handle Table Response ignored");
        };
        for entry in r.pools {
            for pe in entry.elements {
                if let Some(h) = self.learn_pe(now, &entry.pool_handle, pe, false) {
                    if let Some(a) = self.en().peers.get_mut(&id).and_then(|p| p.audit.as_mut()) {
                        a.remove(&h);
                    }
                }
            }
        }
        if r.more_to_send && !r.reject {
            return self.request_handle_table(now, id, w);
        }
        let e = self.en();
        let peer = e.peers.get_mut(&id).expect("present");
        peer.syncing = None;
        if let Some(marked) = peer.audit.take() {
            // The peer's PEs it did not list are gone there.
            let stale: Vec<PeHandle> = self
                .hs
                .owned_by(id)
                .map(|e| e.handle())
                .filter(|h| marked.contains(h))
                .collect();
            self.stats.audit_removals += stale.len() as u64;
            for h in stale {
                self.remove(h, RemovalReason::Audited);
            }
        }
        let e = self.en();
        if e.startup.as_ref().is_some_and(|s| s.mentor == Some(id)) {
            e.startup = None;
            info!(pes = self.hs.len(), "synchronised from the mentor: serving");
        }
    }

    fn on_handle_update(&mut self, now: Instant, u: HandleUpdate) {
        match u.action {
            UpdateAction::AddPe => {
                if self
                    .learn_pe(now, &u.pool_handle, u.pool_element, true)
                    .is_some()
                {
                    self.stats.handle_updates_applied += 1;
                }
            }
            UpdateAction::DelPe => {
                let Some(h) = self.hs.find(&u.pool_handle, u.pool_element.id) else {
                    return;
                };
                let home = self.hs.get(h).expect("found").home_registrar();
                // Only the home's deletion counts (a PE that moved is not deleted by its old home).
                if home != self.config.id && home == u.pool_element.home_registrar {
                    self.stats.handle_updates_applied += 1;
                    self.remove(h, RemovalReason::PeerDeleted);
                }
            }
        }
    }

    fn on_list_response(&mut self, now: Instant, l: ListResponse) {
        if l.reject {
            return;
        }
        let fallback: Vec<IpAddr> = Vec::new();
        for s in l.servers {
            let id = s.server_id;
            if id == self.config.id || id.0 == 0 {
                continue;
            }
            let e = self.en();
            if e.peers.contains_key(&id) {
                continue;
            }
            let mut p = Enrp::new_peer(now);
            p.transport = Some(s.transport);
            e.peers.insert(id, p);
            debug!(peer = id.0, "peer learnt from a List Response");
            self.connect_peer(id, &fallback);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Timers

    pub(super) fn enrp_timeout(&self) -> Option<Instant> {
        let e = self.enrp.as_deref()?;
        let mut t = e.next_heartbeat;
        if let Some(s) = &e.startup {
            t = t.min(s.deadline);
        }
        for (id, p) in &e.peers {
            if e.takeovers.contains_key(id) {
                continue;
            }
            t = t.min(p.probe.unwrap_or(p.last_heard + e.cfg.max_time_last_heard));
        }
        for tk in e.takeovers.values() {
            t = t.min(tk.expires);
        }
        Some(t)
    }

    pub(super) fn enrp_timeout_due(&mut self, now: Instant) {
        let Some(e) = self.enrp.as_deref_mut() else {
            return;
        };
        if e.startup.as_ref().is_some_and(|s| s.deadline <= now) {
            let mentor = e.startup.take().and_then(|s| s.mentor);
            info!(?mentor, "mentor phase over: serving");
        }
        if self.en().next_heartbeat <= now {
            self.heartbeat(now);
        }
        self.takeover_timeouts(now);
        // Peers not heard from.
        let e = self.en();
        let (mlh, mtnr) = (e.cfg.max_time_last_heard, e.cfg.max_time_no_response);
        let mut probe = Vec::new();
        let mut silent = Vec::new();
        for (&id, p) in &e.peers {
            if e.takeovers.contains_key(&id) {
                continue;
            }
            match p.probe {
                None if p.last_heard + mlh <= now => probe.push(id),
                Some(at) if at <= now => silent.push(id),
                _ => {}
            }
        }
        for id in probe {
            let msg = self.presence(id, true);
            self.send_to_peer(id, &msg);
            if let Some(p) = self.en().peers.get_mut(&id) {
                p.probe = Some(now + mtnr);
            }
            debug!(peer = id.0, "peer not heard: asking it to answer");
        }
        for id in silent {
            if self.hs.owned_count(id) > 0 {
                self.start_takeover(now, id);
            } else {
                self.drop_peer(id);
            }
        }
    }

    fn heartbeat(&mut self, now: Instant) {
        let jitter = self.rng.random_range(0.875..=1.125);
        let e = self.enrp.as_deref_mut().expect("on");
        e.next_heartbeat = now + e.cfg.peer_heartbeat_cycle.mul_f64(jitter);
        let announce = e.cfg.announce;
        let msg = self.presence(RegistrarId(0), false);
        self.broadcast(&msg, &[]);
        if announce {
            if let Ok(b) = msg.to_bytes() {
                self.stats.enrp_sent += 1;
                self.outputs.push_back(Output::EnrpAnnounce {
                    message: Bytes::from(b),
                });
            }
        }
        // Reconnect what is down.
        for i in 0..self.en().static_links.len() {
            if self.en().static_links[i].is_none() {
                self.connect_static(i);
            }
        }
        let ids: Vec<RegistrarId> = self.en().peers.keys().copied().collect();
        for id in ids {
            self.connect_peer(id, &[]);
        }
    }

    pub(super) fn drop_peer(&mut self, id: RegistrarId) {
        let e = self.enrp.as_deref_mut().expect("on");
        let dropped = e.peers.remove(&id).is_some();
        e.takeovers.remove(&id);
        if dropped {
            self.stats.peers_dropped += 1;
            info!(peer = format!("{:#010x}", id.0), "ENRP peer dropped");
        }
        // What it still owned here has nobody to renew it.
        let owned: Vec<PeHandle> = self.hs.owned_by(id).map(|e| e.handle()).collect();
        for h in owned {
            self.remove(h, RemovalReason::Audited);
        }
    }
}
