//! The ASAP server side of the registrar (RFC 5352): registration, deregistration, handle
//! resolution, keep-alives and unreachability reports.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::{debug, info};

use super::{Output, Registrar, RemovalReason};
use crate::handlespace::{AssociationId, PeHandle, PeTimer};
use crate::policy::{self, SelectionRequest};
use crate::wire::{
    AsapMessage, CauseCode, Deregistration, DeregistrationResponse, EndpointKeepAlive,
    EndpointKeepAliveAck, EndpointUnreachable, ErrorCause, HandleResolution,
    HandleResolutionResponse, OffendingParameter, OperationError, PoolElement, PoolElementId,
    PoolHandle, Registration, RegistrationResponse, SctpTransport, Transport, TransportUse,
};

impl Registrar {
    pub(super) fn jittered_interval(&mut self) -> Duration {
        let base = self.config.keep_alive_transmission_interval;
        let j = f64::from(self.config.keep_alive_jitter_percent) / 100.0;
        if j == 0.0 {
            return base;
        }
        base.mul_f64(self.rng.random_range(1.0 - j..=1.0 + j))
    }

    pub(super) fn reject_registration(
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

    pub(super) fn registration(
        &mut self,
        now: Instant,
        association: AssociationId,
        r: Registration,
    ) {
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
                self.drop_claim(reg.pe);
                self.replicate_registration(reg.pe);
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
    pub(super) fn check_registration(
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

    pub(super) fn schedule_keep_alive(&mut self, now: Instant, pe: PeHandle) {
        let mut at = now + self.jittered_interval();
        if let Some(&end) = self.life.get(&pe) {
            at = at.min(end);
        }
        self.hs
            .set_deadline(pe, Some((at, PeTimer::KeepAliveTransmission)));
    }

    pub(super) fn keep_alive_due(&mut self, now: Instant, pe: PeHandle) {
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

    pub(super) fn send_keep_alive(&mut self, now: Instant, pe: PeHandle) {
        self.send_keep_alive_flagged(now, pe, false)
    }

    /// An Endpoint Keep-Alive, with the H flag (`home`) after a takeover.
    pub(super) fn send_keep_alive_flagged(&mut self, now: Instant, pe: PeHandle, home: bool) {
        let Some(entry) = self.hs.get(pe) else { return };
        let Some(association) = entry.association() else {
            return;
        };
        let msg = AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
            home,
            server_id: self.config.id,
            pool_handle: entry.pool_handle().clone(),
            pe_id: self.config.keep_alive_with_pe_id.then(|| entry.id()),
        });
        self.send(association, &msg);
        self.stats.keep_alives_sent += 1;
        self.last_keep_alive.insert(pe, now);
        let at = now + self.config.keep_alive_timeout_interval;
        self.hs
            .set_deadline(pe, Some((at, PeTimer::KeepAliveTimeout)));
    }

    pub(super) fn keep_alive_timeout(&mut self, pe: PeHandle) {
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

    pub(super) fn keep_alive_ack(
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
        let deadline = entry.deadline();
        self.drop_claim(pe);
        // Any Ack shows the PE alive, also one nobody asked for: a keep-alive without a PE
        // Identifier (the RFC form) is acknowledged for every PE of the pool on the
        // association, and postponing the others' keep-alives keeps a process with K PEs at
        // one keep-alive per interval (K Acks) instead of K (K² Acks).
        if deadline.is_some_and(|(_, t)| {
            t == PeTimer::KeepAliveTimeout || t == PeTimer::KeepAliveTransmission
        }) {
            self.schedule_keep_alive(now, pe);
        }
    }

    pub(super) fn unreachable(
        &mut self,
        now: Instant,
        association: AssociationId,
        u: EndpointUnreachable,
    ) {
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
        // RFC 5352 §3.5: probe the PE at once (unless a probe is already outstanding), and
        // RFC 5355 §2.14: not more often than the probe interval.
        let entry = self.hs.get(pe).expect("found");
        if entry.home_registrar() == self.config.id
            && entry
                .deadline()
                .is_none_or(|(_, t)| t != PeTimer::KeepAliveTimeout)
        {
            let limit = self.config.min_probe_interval;
            let recent = self
                .last_keep_alive
                .get(&pe)
                .is_some_and(|&at| now.saturating_duration_since(at) < limit);
            if recent {
                self.stats.probes_limited += 1;
                debug!(pool = %u.pool_handle, pe = u.pe_id.0, "probe held back: keep-alive sent lately");
            } else {
                self.send_keep_alive(now, pe);
            }
        }
    }

    pub(super) fn deregistration(&mut self, association: AssociationId, d: Deregistration) {
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

    pub(super) fn may_deregister(&self, association: AssociationId, pe: PeHandle) -> bool {
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

    pub(super) fn handle_resolution(&mut self, association: AssociationId, h: HandleResolution) {
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
