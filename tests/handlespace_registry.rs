//! The handlespace as a registrar and a pool user's cache use it: pool consistency (RFC 5352
//! §3.1) with the RFC 5354 causes, registration vs re-registration, deregistration, association
//! loss, ownership and takeover, deadlines, unreachability reports, resumable iteration.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rserpool::handlespace::{
    AssociationId, Handlespace, PeTimer, RegistrationError, RegistrationKind, UnknownPoolHandle,
};
use rserpool::policy::SelectionRequest;
use rserpool::wire::{
    CauseCode, Policy, PolicyType, PoolElement, PoolElementId, PoolHandle, RegistrarId,
    SctpTransport, Transport, TransportUse,
};

const PR_A: RegistrarId = RegistrarId(0x1111_1111);
const PR_B: RegistrarId = RegistrarId(0x2222_2222);

fn sctp(use_: TransportUse) -> Transport {
    Transport::Sctp(SctpTransport {
        port: 7,
        transport_use: use_,
        addresses: vec![Ipv4Addr::new(198, 18, 0, 9).into()],
    })
}

fn pe(id: u32, home: RegistrarId, policy: Policy) -> PoolElement {
    PoolElement {
        id: PoolElementId(id),
        home_registrar: home,
        registration_life: 90_000,
        user_transport: sctp(TransportUse::DataPlusControl),
        policy,
        asap_transport: None,
    }
}

fn rr(id: u32, home: RegistrarId) -> PoolElement {
    pe(id, home, Policy::RoundRobin)
}

fn h(s: &str) -> PoolHandle {
    PoolHandle::try_from(s).unwrap()
}

fn ids<'a>(it: impl Iterator<Item = rserpool::handlespace::PeEntry<'a>>) -> Vec<u32> {
    it.map(|e| e.id().0).collect()
}

// ---------------------------------------------------------------------------------------------
// Pool consistency

#[test]
fn a_pe_with_another_policy_is_refused_with_inconsistent_pooling_policy() {
    let mut hs = Handlespace::new();
    let echo = h("EchoPool");
    hs.register(&echo, rr(1, PR_A), None).unwrap();
    let err = hs
        .register(&echo, pe(2, PR_A, Policy::Random), None)
        .unwrap_err();
    assert!(matches!(
        err,
        RegistrationError::InconsistentPolicy {
            requested: PolicyType::RANDOM,
            ..
        }
    ));
    assert_eq!(err.cause_code(), CauseCode::INCONSISTENT_POOLING_POLICY);
    // Cause-specific information: the pool's policy parameter (Round Robin, RFC 5354 §3.12.6).
    let cause = err.error_cause();
    assert_eq!(cause.code, CauseCode(0x5));
    assert_eq!(cause.info, [0x00, 0x08, 0x00, 0x08, 0, 0, 0, 1]);
    assert_eq!(hs.len(), 1);
}

#[test]
fn a_pe_with_another_transport_type_is_refused_with_inconsistent_transport_type() {
    let mut hs = Handlespace::new();
    let echo = h("EchoPool");
    hs.register(&echo, rr(1, PR_A), None).unwrap();
    let mut udp = rr(2, PR_A);
    udp.user_transport = Transport::Udp {
        port: 7,
        address: Ipv4Addr::new(198, 18, 0, 9).into(),
    };
    let err = hs.register(&echo, udp, None).unwrap_err();
    assert_eq!(err.cause_code(), CauseCode::INCONSISTENT_TRANSPORT_TYPE);
    // Cause-specific information: a transport parameter of the pool's type (SCTP, 0x0004).
    let cause = err.error_cause();
    assert_eq!(cause.code, CauseCode(0x7));
    assert_eq!(&cause.info[..2], &[0x00, 0x04]);
}

#[test]
fn a_pe_with_another_transport_use_is_refused_with_inconsistent_data_control() {
    let mut hs = Handlespace::new();
    let echo = h("EchoPool");
    hs.register(&echo, rr(1, PR_A), None).unwrap();
    let mut data_only = rr(2, PR_A);
    data_only.user_transport = sctp(TransportUse::DataOnly);
    let err = hs.register(&echo, data_only, None).unwrap_err();
    assert_eq!(
        err.cause_code(),
        CauseCode::INCONSISTENT_DATA_CONTROL_CONFIGURATION
    );
    let cause = err.error_cause();
    assert_eq!(cause.code, CauseCode(0x8));
    assert!(cause.info.is_empty());
}

#[test]
fn an_unknown_policy_is_refused_with_invalid_values_and_the_policy_parameter() {
    let mut hs = Handlespace::new();
    let odd = pe(
        1,
        PR_A,
        Policy::Unknown {
            policy_type: PolicyType(0x77),
            data: vec![],
        },
    );
    let err = hs.register(&h("OddPool"), odd, None).unwrap_err();
    assert_eq!(err.cause_code(), CauseCode::INVALID_VALUES);
    assert_eq!(
        err.error_cause().info,
        [0x00, 0x08, 0x00, 0x08, 0, 0, 0, 0x77]
    );
    assert!(hs.is_empty());
    assert_eq!(hs.pool_count(), 0);
}

#[test]
fn a_reregistration_is_checked_too_and_a_refused_one_changes_nothing() {
    let mut hs = Handlespace::new();
    let pool = h("LoadPool");
    hs.register(&pool, pe(1, PR_A, Policy::LeastUsed { load: 5 }), None)
        .unwrap();
    let err = hs
        .register(&pool, pe(1, PR_B, Policy::RoundRobin), None)
        .unwrap_err();
    assert_eq!(err.cause_code(), CauseCode::INCONSISTENT_POOLING_POLICY);
    let e = hs.get_by_id(&pool, PoolElementId(1)).unwrap();
    assert_eq!(e.element().policy, Policy::LeastUsed { load: 5 });
    assert_eq!(e.home_registrar(), PR_A);
    assert_eq!(hs.owned_count(PR_B), 0);
}

#[test]
fn the_first_pe_sets_up_the_pool_and_an_emptied_pool_disappears() {
    let mut hs = Handlespace::new();
    let pool = h("PP");
    hs.register(
        &pool,
        pe(1, PR_A, Policy::WeightedRandom { weight: 3 }),
        None,
    )
    .unwrap();
    let view = hs.pool(&pool).unwrap();
    assert_eq!(view.policy_type(), PolicyType::WEIGHTED_RANDOM);
    assert_eq!(view.transport_use(), TransportUse::DataPlusControl);
    assert_eq!(view.len(), 1);
    assert!(view.selection_order().is_none());
    let removed = hs.deregister(&pool, PoolElementId(1)).unwrap();
    assert_eq!(removed.pool_handle, pool);
    assert_eq!(hs.pool_count(), 0);
    assert!(hs.pool(&pool).is_none());
    // A new first PE may bring another policy.
    hs.register(&pool, rr(2, PR_A), None).unwrap();
    assert_eq!(
        hs.pool(&pool).unwrap().policy_type(),
        PolicyType::ROUND_ROBIN
    );
}

// ---------------------------------------------------------------------------------------------
// Registration, update, deregistration

#[test]
fn a_reregistration_updates_the_stored_pe_and_takes_over_ownership() {
    let mut hs = Handlespace::new();
    let pool = h("EchoPool");
    let first = hs.register(&pool, rr(1, PR_A), None).unwrap();
    assert_eq!(first.kind, RegistrationKind::New);
    let mut again = rr(1, PR_B);
    again.registration_life = 18_000;
    again.user_transport = Transport::Sctp(SctpTransport {
        port: 8,
        transport_use: TransportUse::DataPlusControl,
        addresses: vec![Ipv4Addr::new(198, 18, 0, 10).into()],
    });
    let second = hs.register(&pool, again.clone(), None).unwrap();
    assert_eq!(
        second.kind,
        RegistrationKind::Updated {
            previous_home: PR_A
        }
    );
    assert_eq!(second.pe, first.pe);
    assert_eq!(hs.len(), 1);
    assert_eq!(hs.get(second.pe).unwrap().element(), &again);
    assert_eq!(hs.owned_count(PR_A), 0);
    assert_eq!(hs.owned_count(PR_B), 1);
}

#[test]
fn deregistration_returns_the_pe_and_invalidates_its_handle() {
    let mut hs = Handlespace::new();
    let pool = h("EchoPool");
    let a = hs
        .register(&pool, rr(1, PR_A), Some(AssociationId(9)))
        .unwrap()
        .pe;
    hs.register(&pool, rr(2, PR_A), None).unwrap();
    let removed = hs.deregister(&pool, PoolElementId(1)).unwrap();
    assert_eq!(removed.element, rr(1, PR_A));
    assert_eq!(removed.association, Some(AssociationId(9)));
    assert!(hs.get(a).is_none());
    assert!(hs.deregister(&pool, PoolElementId(1)).is_none());
    assert!(hs.deregister(&h("Nowhere"), PoolElementId(2)).is_none());
    // The slot is reused by the next PE; the old handle still refers to nothing.
    let c = hs.register(&pool, rr(3, PR_A), None).unwrap().pe;
    assert_ne!(a, c);
    assert!(hs.get(a).is_none());
    assert!(hs.remove(a).is_none());
    assert_eq!(hs.len(), 2);
}

#[test]
fn handle_resolution_of_an_unknown_pool_is_cause_nine() {
    let mut hs = Handlespace::new();
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = Vec::new();
    let err = hs
        .select(
            &h("Nowhere"),
            SelectionRequest::default(),
            &mut rng,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err, UnknownPoolHandle);
    assert_eq!(err.cause_code(), CauseCode::UNKNOWN_POOL_HANDLE);
    assert!(out.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Associations

#[test]
fn a_lost_association_removes_exactly_the_pes_registered_over_it() {
    let mut hs = Handlespace::new();
    let (p1, p2) = (h("P1"), h("P2"));
    hs.register(&p1, rr(1, PR_A), Some(AssociationId(1)))
        .unwrap();
    hs.register(&p1, rr(2, PR_A), Some(AssociationId(2)))
        .unwrap();
    hs.register(&p2, rr(3, PR_A), Some(AssociationId(1)))
        .unwrap();
    hs.register(&p2, rr(4, PR_B), None).unwrap();
    assert_eq!(ids(hs.association_pes(AssociationId(1))).len(), 2);
    let mut gone: Vec<u32> = hs
        .remove_association(AssociationId(1))
        .into_iter()
        .map(|r| r.element.id.0)
        .collect();
    gone.sort_unstable();
    assert_eq!(gone, [1, 3]);
    assert_eq!(hs.len(), 2);
    assert!(hs.remove_association(AssociationId(1)).is_empty());
}

#[test]
fn reregistration_moves_the_association_binding() {
    let mut hs = Handlespace::new();
    let pool = h("P");
    hs.register(&pool, rr(1, PR_A), Some(AssociationId(1)))
        .unwrap();
    // The PE re-registers over a new association: the old one no longer holds it.
    hs.register(&pool, rr(1, PR_A), Some(AssociationId(2)))
        .unwrap();
    assert!(hs.remove_association(AssociationId(1)).is_empty());
    // An ENRP update (the PE is now registered elsewhere) unbinds it.
    hs.register(&pool, rr(1, PR_B), None).unwrap();
    assert!(hs.remove_association(AssociationId(2)).is_empty());
    assert_eq!(
        hs.get_by_id(&pool, PoolElementId(1)).unwrap().association(),
        None
    );
    assert_eq!(hs.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Ownership and takeover

#[test]
fn takeover_rehomes_every_pe_of_the_target_and_moves_its_checksum() {
    let mut hs = Handlespace::new();
    let (p1, p2) = (h("EchoPool"), h("PingPongPool"));
    for id in 1..=3 {
        hs.register(&p1, rr(id, PR_A), None).unwrap();
    }
    hs.register(&p2, rr(7, PR_A), None).unwrap();
    hs.register(&p2, rr(8, PR_B), None).unwrap();
    let a_sum = hs.owner_checksum(PR_A);
    assert_eq!(hs.owned_count(PR_A), 4);
    let moved = hs.rehome(PR_A, PR_B);
    assert_eq!(moved.len(), 4);
    assert!(
        moved
            .iter()
            .all(|&pe| hs.get(pe).unwrap().home_registrar() == PR_B)
    );
    assert_eq!(hs.owned_count(PR_A), 0);
    assert_eq!(hs.owned_count(PR_B), 5);
    assert_eq!(hs.owner_checksum(PR_A).value(), 0xffff);
    assert_eq!(hs.owner_checksum(PR_B), hs.checksum());
    // Moving one back.
    let pe7 = hs.find(&p2, PoolElementId(7)).unwrap();
    assert_eq!(hs.set_home(pe7, PR_A), Some(PR_B));
    assert_eq!(ids(hs.owned_by(PR_A)), [7]);
    assert_ne!(hs.owner_checksum(PR_A), a_sum);
    let owners: Vec<(RegistrarId, usize)> = {
        let mut v: Vec<_> = hs.owners().map(|(o, n, _)| (o, n)).collect();
        v.sort();
        v
    };
    assert_eq!(owners, [(PR_A, 1), (PR_B, 4)]);
    // Dropping a peer drops its PEs.
    let dropped = hs.remove_owned_by(PR_B);
    assert_eq!(dropped.len(), 4);
    assert_eq!(hs.len(), 1);
    assert_eq!(hs.pool_count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Deadlines and unreachability

#[test]
fn deadlines_pop_in_order_only_when_due() {
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let mut hs = Handlespace::new();
    let pool = h("P");
    let a = hs.register(&pool, rr(1, PR_A), None).unwrap().pe;
    let b = hs.register(&pool, rr(2, PR_A), None).unwrap().pe;
    let c = hs.register(&pool, rr(3, PR_A), None).unwrap().pe;
    assert_eq!(hs.next_deadline(), None);
    assert!(hs.set_deadline(a, Some((at(5000), PeTimer::KeepAliveTransmission))));
    assert!(hs.set_deadline(b, Some((at(3000), PeTimer::Expiry))));
    assert!(hs.set_deadline(c, Some((at(4000), PeTimer::KeepAliveTimeout))));
    // Re-arming replaces the old deadline.
    assert!(hs.set_deadline(c, Some((at(6000), PeTimer::KeepAliveTimeout))));
    assert_eq!(hs.next_deadline(), Some(at(3000)));
    assert_eq!(hs.pop_expired(at(2999)), None);
    assert_eq!(hs.pop_expired(at(5500)), Some((b, PeTimer::Expiry)));
    assert_eq!(
        hs.pop_expired(at(5500)),
        Some((a, PeTimer::KeepAliveTransmission))
    );
    assert_eq!(hs.pop_expired(at(5500)), None);
    assert_eq!(hs.get(a).unwrap().deadline(), None);
    assert_eq!(hs.next_deadline(), Some(at(6000)));
    // A removed PE's deadline goes with it.
    hs.remove(c).unwrap();
    assert_eq!(hs.next_deadline(), None);
    assert!(!hs.set_deadline(c, Some((at(1), PeTimer::Expiry))));
    // A re-registration keeps the deadline (the registrar re-arms it).
    assert!(hs.set_deadline(a, Some((at(9000), PeTimer::KeepAliveTransmission))));
    hs.register(&pool, rr(1, PR_A), None).unwrap();
    assert_eq!(
        hs.get(a).unwrap().deadline(),
        Some((at(9000), PeTimer::KeepAliveTransmission))
    );
}

#[test]
fn unreachability_reports_count_up_and_reset_on_reregistration() {
    let mut hs = Handlespace::new();
    let pool = h("P");
    let a = hs.register(&pool, rr(1, PR_A), None).unwrap().pe;
    assert_eq!(hs.report_unreachable(a), Some(1));
    assert_eq!(hs.report_unreachable(a), Some(2));
    hs.register(&pool, rr(1, PR_A), None).unwrap();
    assert_eq!(hs.get(a).unwrap().unreachable_reports(), 0);
    assert_eq!(hs.report_unreachable(a), Some(1));
    hs.remove(a);
    assert_eq!(hs.report_unreachable(a), None);
}

// ---------------------------------------------------------------------------------------------
// Iteration

#[test]
fn iteration_resumed_from_a_cursor_visits_every_surviving_pe_once() {
    let mut hs = Handlespace::new();
    let pools = [h("A"), h("B"), h("C")];
    for (i, p) in pools.iter().enumerate() {
        for id in [30, 10, 20] {
            let home = if id == 20 { PR_B } else { PR_A };
            hs.register(p, rr(id + i as u32, home), None).unwrap();
        }
    }
    let all = ids(hs.iter());
    assert_eq!(all, [10, 20, 30, 11, 21, 31, 12, 22, 32]);
    // Read four, then change the handlespace: remove the PE under the cursor, a PE already
    // read, and a whole pool not yet read; add PEs before and after the cursor.
    let first: Vec<_> = hs.iter().take(4).map(|e| (e.id().0, e.cursor())).collect();
    let cursor = first[3].1;
    hs.deregister(&pools[1], PoolElementId(11)).unwrap();
    hs.deregister(&pools[0], PoolElementId(20)).unwrap();
    for id in [12, 22, 32] {
        hs.deregister(&pools[2], PoolElementId(id)).unwrap();
    }
    hs.register(&pools[1], rr(5, PR_A), None).unwrap();
    hs.register(&pools[1], rr(40, PR_A), None).unwrap();
    assert_eq!(ids(hs.iter_after(Some(cursor))), [21, 31, 40]);
    // Owned by one registrar, in parts.
    let owned_a = ids(hs.owned_by(PR_A));
    assert_eq!(owned_a, [10, 30, 5, 31, 40]);
    let c = hs.owned_by(PR_A).nth(1).unwrap().cursor();
    assert_eq!(ids(hs.owned_by_after(PR_A, Some(c))), [5, 31, 40]);
    assert_eq!(ids(hs.owned_by(PR_B)), [21]);
}

mod deadline_model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Set(u32, u64),
        Clear(u32),
        Remove(u32),
        Register(u32),
        Pop(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..16, 0u64..100).prop_map(|(id, t)| Op::Set(id, t)),
            1 => (0u32..16).prop_map(Op::Clear),
            1 => (0u32..16).prop_map(Op::Remove),
            2 => (0u32..16).prop_map(Op::Register),
            2 => (0u64..100).prop_map(Op::Pop),
        ]
    }

    proptest! {
        /// The deadline index against a model: the next deadline is always the earliest one
        /// set, expired ones pop exactly once and only when due, in deadline order.
        #[test]
        fn deadlines_behave_like_a_sorted_model(ops in proptest::collection::vec(op(), 1..120)) {
            let t0 = Instant::now() + Duration::from_secs(1000);
            let at = |ms: u64| t0 - Duration::from_millis(500) + Duration::from_millis(ms * 10);
            let pool = h("P");
            let mut hs = Handlespace::new();
            // id -> deadline (ms) of registered PEs
            let mut model: BTreeMap<u32, Option<u64>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Register(id) => {
                        hs.register(&pool, rr(id, PR_A), None).unwrap();
                        model.entry(id).or_insert(None);
                    }
                    Op::Set(id, t) => {
                        let pe = hs.find(&pool, PoolElementId(id));
                        prop_assert_eq!(pe.is_some(), model.contains_key(&id));
                        if let Some(pe) = pe {
                            prop_assert!(hs.set_deadline(pe, Some((at(t), PeTimer::Expiry))));
                            model.insert(id, Some(t));
                        }
                    }
                    Op::Clear(id) => {
                        if let Some(pe) = hs.find(&pool, PoolElementId(id)) {
                            prop_assert!(hs.set_deadline(pe, None));
                            model.insert(id, None);
                        }
                    }
                    Op::Remove(id) => {
                        let r = hs.deregister(&pool, PoolElementId(id));
                        prop_assert_eq!(r.is_some(), model.remove(&id).is_some());
                    }
                    Op::Pop(now) => {
                        let got = hs.pop_expired(at(now));
                        let due = model
                            .iter()
                            .filter_map(|(&id, &t)| t.filter(|&t| t <= now).map(|t| (t, id)))
                            .min();
                        match (got, due) {
                            (None, None) => {}
                            (Some((pe, timer)), Some((t, _))) => {
                                prop_assert_eq!(timer, PeTimer::Expiry);
                                let id = hs.get(pe).unwrap().id().0;
                                // Equal deadlines may come in any order.
                                prop_assert_eq!(model[&id], Some(t));
                                model.insert(id, None);
                            }
                            (got, due) => prop_assert!(false, "popped {:?}, model {:?}", got, due),
                        }
                    }
                }
                let next = model.values().filter_map(|&t| t).min().map(at);
                prop_assert_eq!(hs.next_deadline(), next);
                for (&id, &t) in &model {
                    let e = hs.get_by_id(&pool, PoolElementId(id)).unwrap();
                    prop_assert_eq!(e.deadline().map(|d| d.0), t.map(at));
                }
            }
        }
    }
}
