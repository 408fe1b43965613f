//! Takeover of a dead peer's PEs (RFC 5353 §3.5, draft-dreibholz-rserpool-enrp-takeover):
//! Init Takeover to every live peer, arbitration between competing takeovers, Takeover Server
//! once every peer has acknowledged, and an Endpoint Keep-Alive with the H flag to each PE over
//! a new association, so that it makes this registrar its home.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::config::TakeoverArbitration;
use super::{Output, Registrar, Role};
use crate::handlespace::{AssociationId, PeHandle, PeTimer};
use crate::wire::{EnrpMessage, RegistrarId, Takeover as TakeoverMsg};

/// A takeover this registrar runs.
#[derive(Debug)]
pub(super) struct Takeover {
    /// Peers whose Init Takeover Ack is still missing.
    pub(super) voters: BTreeSet<RegistrarId>,
    /// When it is abandoned if acks are still missing.
    pub(super) expires: Instant,
}

impl Registrar {
    fn takeover_msg(&self, receiver: RegistrarId, target: RegistrarId) -> TakeoverMsg {
        TakeoverMsg {
            ids: crate::wire::ServerIds {
                sender: self.config.id,
                receiver,
            },
            target,
        }
    }

    /// `target` did not answer: asks every live peer to let this registrar take it over.
    pub(super) fn start_takeover(&mut self, now: Instant, target: RegistrarId) {
        let e = self.enrp.as_deref_mut().expect("on");
        if e.takeovers.contains_key(&target) {
            return;
        }
        let voters: BTreeSet<RegistrarId> = e
            .peers
            .iter()
            .filter(|&(&id, p)| {
                id != target
                    && p.association.is_some()
                    && p.probe.is_none()
                    && !e.takeovers.contains_key(&id)
            })
            .map(|(&id, _)| id)
            .collect();
        let expires = now + e.cfg.takeover_expiry_interval;
        info!(
            target = format!("{:#010x}", target.0),
            pes = self.hs.owned_count(target),
            voters = voters.len(),
            "peer silent: starting its takeover"
        );
        let empty = voters.is_empty();
        e.takeovers.insert(target, Takeover { voters, expires });
        self.stats.takeovers_started += 1;
        // The target gets it too: if it is alive after all, it answers with a Presence.
        let msg = EnrpMessage::InitTakeover(self.takeover_msg(RegistrarId(0), target));
        self.broadcast(&msg, &[]);
        if empty {
            self.complete_takeover(now, target);
        }
    }

    pub(super) fn on_init_takeover(&mut self, now: Instant, t: TakeoverMsg) {
        let (from, target) = (t.ids.sender, t.target);
        self.heard(now, from);
        if target == self.config.id {
            // We are alive: say so to everyone.
            info!(
                peer = format!("{:#010x}", from.0),
                "a peer wants to take us over: answering"
            );
            let msg = self.presence(RegistrarId(0), false);
            return self.broadcast(&msg, &[]);
        }
        let e = self.enrp.as_deref_mut().expect("on");
        if e.won.contains_key(&target) {
            // Already ours: tell the latecomer, so it follows instead of taking over too.
            let msg = EnrpMessage::TakeoverServer(self.takeover_msg(from, target));
            self.send_to_peer(from, &msg);
            return;
        }
        let e = self.enrp.as_deref_mut().expect("on");
        if e.takeovers.contains_key(&target) {
            let they_win = match e.cfg.arbitration {
                TakeoverArbitration::LowerIdWins => from.0 < self.config.id.0,
                TakeoverArbitration::HigherIdWins => from.0 > self.config.id.0,
            };
            if !they_win {
                return debug!(
                    peer = from.0,
                    target = target.0,
                    "competing takeover: ours wins"
                );
            }
            e.takeovers.remove(&target);
            info!(
                peer = from.0,
                target = target.0,
                "competing takeover: theirs wins"
            );
        }
        // Leave it to the initiator for a while: no takeover of our own meanwhile.
        let wait = now + e.cfg.takeover_expiry_interval + e.cfg.max_time_no_response;
        if let Some(p) = e.peers.get_mut(&target) {
            if p.probe.is_some() {
                p.probe = Some(wait);
            }
        }
        let msg = EnrpMessage::InitTakeoverAck(self.takeover_msg(from, target));
        self.send_to_peer(from, &msg);
    }

    pub(super) fn on_init_takeover_ack(&mut self, now: Instant, t: TakeoverMsg) {
        let (from, target) = (t.ids.sender, t.target);
        self.heard(now, from);
        let e = self.enrp.as_deref_mut().expect("on");
        let Some(tk) = e.takeovers.get_mut(&target) else {
            return;
        };
        tk.voters.remove(&from);
        if tk.voters.is_empty() {
            self.complete_takeover(now, target);
        }
    }

    pub(super) fn on_takeover_server(&mut self, now: Instant, t: TakeoverMsg) {
        let (winner, target) = (t.ids.sender, t.target);
        self.heard(now, winner);
        if target == self.config.id {
            return warn!(
                peer = winner.0,
                "a peer took us over; our PEs move as they re-register"
            );
        }
        self.enrp
            .as_deref_mut()
            .expect("on")
            .takeovers
            .remove(&target);
        let moved = self.hs.rehome(target, winner);
        info!(
            target = format!("{:#010x}", target.0),
            winner = format!("{:#010x}", winner.0),
            pes = moved.len(),
            "peer taken over by another"
        );
        self.drop_peer(target);
    }

    /// Every vote is in: the target's PEs are ours.
    fn complete_takeover(&mut self, now: Instant, target: RegistrarId) {
        let e = self.enrp.as_deref_mut().expect("on");
        e.takeovers.remove(&target);
        let until = now + e.cfg.takeover_expiry_interval * 2;
        e.won.retain(|_, &mut t| t > now);
        e.won.insert(target, until);
        self.stats.takeovers_won += 1;
        let msg = EnrpMessage::TakeoverServer(self.takeover_msg(RegistrarId(0), target));
        self.broadcast(&msg, &[target]);
        let pes = self.hs.rehome(target, self.config.id);
        info!(
            target = format!("{:#010x}", target.0),
            pes = pes.len(),
            "takeover won: the PEs are ours"
        );
        // One association per PE process (its ASAP transport).
        let mut groups: BTreeMap<(Vec<IpAddr>, u16), Vec<PeHandle>> = BTreeMap::new();
        let wait = self.config.keep_alive_timeout_interval * 2;
        for &pe in &pes {
            let Some(entry) = self.hs.get(pe) else {
                continue;
            };
            let life = self
                .config
                .registration_life_unit
                .duration(entry.element().registration_life)
                .filter(|_| self.config.expire_owned_pes);
            if let Some(t) = &entry.element().asap_transport {
                groups
                    .entry((t.addresses.clone(), t.port))
                    .or_default()
                    .push(pe);
            }
            if let Some(d) = life {
                self.life.insert(pe, now + d);
            }
            // Gone unless it acknowledges the keep-alive that follows the connect.
            self.hs
                .set_deadline(pe, Some((now + wait, PeTimer::KeepAliveTimeout)));
        }
        for ((addresses, port), pes) in groups {
            let e = self.enrp.as_deref_mut().expect("on");
            let association = e.allocate();
            e.asap_connects.insert(association, pes);
            self.outputs.push_back(Output::Connect {
                association,
                role: Role::Asap,
                addresses,
                port,
            });
        }
        self.drop_peer(target);
    }

    /// The association to taken-over PEs is up: each gets a Keep-Alive with the H flag.
    pub(super) fn takeover_connected(
        &mut self,
        now: Instant,
        association: AssociationId,
        pes: Vec<PeHandle>,
    ) {
        for pe in pes {
            let ours = self
                .hs
                .get(pe)
                .is_some_and(|e| e.home_registrar() == self.config.id && e.association().is_none());
            if !ours {
                continue;
            }
            self.hs.bind_association(pe, Some(association));
            if let Some(a) = self.assocs.get_mut(&association) {
                a.pes += 1;
            }
            self.send_keep_alive_flagged(now, pe, true);
        }
    }

    pub(super) fn takeover_timeouts(&mut self, now: Instant) {
        let e = self.enrp.as_deref_mut().expect("on");
        let expired: Vec<RegistrarId> = e
            .takeovers
            .iter()
            .filter(|(_, t)| t.expires <= now)
            .map(|(&id, _)| id)
            .collect();
        let retry = now + e.cfg.max_time_no_response;
        for id in expired {
            e.takeovers.remove(&id);
            // Tried again, with the peers alive then, unless the target is heard first.
            if let Some(p) = e.peers.get_mut(&id) {
                p.probe = Some(retry);
            }
            info!(
                target = format!("{:#010x}", id.0),
                "takeover expired without every ack"
            );
        }
    }
}
