//! The pool user's session core (sans-IO), driven by hand: connect, cookies, failover on
//! demand and automatic, connect failures and timeouts, business cards, and what the
//! application may send when.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rserpool::handlespace::AssociationId;
use rserpool::session::*;
use rserpool::wire::*;

const SEC: Duration = Duration::from_secs(1);

fn pe(id: u32) -> PoolElement {
    PoolElement {
        id: PoolElementId(id),
        home_registrar: RegistrarId(1),
        registration_life: 30_000,
        user_transport: Transport::Sctp(SctpTransport {
            port: 5000 + id as u16,
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![IpAddr::from([10, 0, 0, id as u8])],
        }),
        policy: Policy::RoundRobin,
        asap_transport: None,
    }
}

fn session(automatic: bool) -> PoolUserSession {
    let config = SessionConfig {
        automatic_failover: automatic,
        ..SessionConfig::default()
    };
    PoolUserSession::new(PoolHandle::try_from("PingPongPool").unwrap(), config)
}

fn outputs(s: &mut PoolUserSession) -> Vec<SessionOutput> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn events(s: &mut PoolUserSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// The Connect among the outputs: its association and the PE's port (5000 + PE ID).
fn connect_of(out: &[SessionOutput]) -> (AssociationId, u16) {
    out.iter()
        .find_map(|o| match o {
            SessionOutput::Connect {
                association, port, ..
            } => Some((*association, *port)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Connect in {out:?}"))
}

fn app(ppid: u32) -> SendInfo {
    SendInfo {
        ppid,
        ..SendInfo::default()
    }
}

fn asap(m: AsapMessage) -> Bytes {
    m.to_bytes().unwrap().into()
}

fn cookie(bytes: &[u8]) -> Bytes {
    asap(AsapMessage::Cookie(Cookie {
        cookie: bytes.to_vec(),
    }))
}

/// A session up on PE 1 of [1, 2, 3]; returns the association.
fn up_on_pe1(s: &mut PoolUserSession, t: Instant) -> AssociationId {
    s.connect(t);
    assert_eq!(outputs(s), [SessionOutput::Resolve]);
    s.resolved(t, Ok(vec![pe(1), pe(2), pe(3)]));
    let (a, port) = connect_of(&outputs(s));
    assert_eq!(port, 5001);
    s.association_up(t, a);
    assert_eq!(
        events(s),
        [SessionEvent::Connected {
            pe: PoolElementId(1)
        }]
    );
    a
}

#[test]
fn failover_on_demand_echoes_the_newest_cookie_to_the_next_pe() {
    let t = Instant::now();
    let mut s = session(false);
    let a1 = up_on_pe1(&mut s, t);
    // Application data goes out on the association; what comes in is the application's,
    // except the session's own ASAP messages (PPID 11).
    s.send(t, app(33), Bytes::from_static(b"ping 1")).unwrap();
    assert_eq!(
        outputs(&mut s),
        [SessionOutput::Send {
            association: a1,
            info: app(33),
            data: Bytes::from_static(b"ping 1")
        }]
    );
    s.message(t, a1, app(33), Bytes::from_static(b"pong 1"));
    s.message(t, a1, app(11), cookie(b"<PP-TD1>1"));
    s.message(t, a1, app(11), cookie(b"<PP-TD1>2"));
    assert_eq!(
        events(&mut s),
        [SessionEvent::Message {
            info: app(33),
            data: Bytes::from_static(b"pong 1")
        }]
    );
    assert!(s.has_cookie());
    assert_eq!(s.stats().cookies, 2);
    // The PE dies: failover necessary; sending is refused until the application fails over.
    s.association_lost(t, a1, false);
    assert_eq!(
        events(&mut s),
        [SessionEvent::FailoverNecessary { has_cookie: true }]
    );
    assert_eq!(
        s.send(t, app(33), Bytes::from_static(b"ping 2")),
        Err(SessionError::FailoverNecessary)
    );
    assert!(outputs(&mut s).is_empty(), "nothing before force_failover");
    s.force_failover(t, false);
    // The dead PE is reported, the pool resolved again, and another PE chosen.
    assert_eq!(
        outputs(&mut s),
        [
            SessionOutput::ReportUnreachable {
                pe: PoolElementId(1)
            },
            SessionOutput::Resolve
        ]
    );
    s.resolved(t, Ok(vec![pe(1), pe(2), pe(3)]));
    let (a2, port) = connect_of(&outputs(&mut s));
    assert_eq!(port, 5002, "the lost PE is not tried again");
    s.association_up(t, a2);
    // RFC 5352 §3.8: the newest cookie, as the first message on the new association.
    let out = outputs(&mut s);
    let [
        SessionOutput::Send {
            association,
            info,
            data,
        },
    ] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!((*association, info.ppid), (a2, 11));
    assert_eq!(
        AsapMessage::decode(data).unwrap(),
        AsapMessage::CookieEcho(Cookie {
            cookie: b"<PP-TD1>2".to_vec()
        })
    );
    assert_eq!(
        events(&mut s),
        [SessionEvent::FailoverComplete {
            pe: PoolElementId(2),
            has_cookie: true
        }]
    );
    assert_eq!(s.pool_element(), Some(PoolElementId(2)));
    // Events of the old association change nothing.
    s.message(t, a1, app(33), Bytes::from_static(b"late pong"));
    s.association_lost(t, a1, false);
    assert!(events(&mut s).is_empty());
    assert_eq!(s.stats().failovers, 1);
}

#[test]
fn automatic_failover_resends_what_the_application_sent_meanwhile() {
    let t = Instant::now();
    let mut s = session(true);
    let a1 = up_on_pe1(&mut s, t);
    s.association_lost(t, a1, false);
    assert_eq!(
        events(&mut s),
        [SessionEvent::FailoverNecessary { has_cookie: false }]
    );
    assert_eq!(
        outputs(&mut s),
        [
            SessionOutput::ReportUnreachable {
                pe: PoolElementId(1)
            },
            SessionOutput::Resolve
        ]
    );
    // Messages sent during the failover wait and go out in order once a PE is reached.
    s.send(t, app(33), Bytes::from_static(b"a")).unwrap();
    s.send(t, app(33), Bytes::from_static(b"b")).unwrap();
    s.resolved(t, Ok(vec![pe(2)]));
    let (a2, _) = connect_of(&outputs(&mut s));
    s.send(t, app(33), Bytes::from_static(b"c")).unwrap();
    s.association_up(t, a2);
    let sent: Vec<Bytes> = outputs(&mut s)
        .into_iter()
        .map(|o| match o {
            SessionOutput::Send {
                association, data, ..
            } => {
                assert_eq!(association, a2);
                data
            }
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(sent, [&b"a"[..], b"b", b"c"]);
    assert_eq!(
        events(&mut s),
        [SessionEvent::FailoverComplete {
            pe: PoolElementId(2),
            has_cookie: false
        }]
    );
}

#[test]
fn unreachable_pes_are_skipped_and_a_pool_without_any_says_so() {
    let t = Instant::now();
    let mut s = session(false);
    s.connect(t);
    outputs(&mut s);
    s.resolved(t, Ok(vec![pe(1), pe(2)]));
    let (a1, port) = connect_of(&outputs(&mut s));
    assert_eq!(port, 5001);
    // PE 1 refuses: reported, PE 2 tried next.
    s.association_failed(t, a1);
    let out = outputs(&mut s);
    assert_eq!(
        out[0],
        SessionOutput::ReportUnreachable {
            pe: PoolElementId(1)
        }
    );
    let (a2, port) = connect_of(&out);
    assert_eq!(port, 5002);
    // PE 2 does not answer within the connect timeout: aborted and reported.
    assert_eq!(s.poll_timeout(), Some(t + 5 * SEC));
    s.handle_timeout(t + 5 * SEC);
    assert_eq!(
        outputs(&mut s),
        [
            SessionOutput::Abort { association: a2 },
            SessionOutput::ReportUnreachable {
                pe: PoolElementId(2)
            },
            SessionOutput::Resolve
        ]
    );
    // The registrar still lists both: none is tried again in this round.
    s.resolved(t + 5 * SEC, Ok(vec![pe(1), pe(2)]));
    assert!(outputs(&mut s).is_empty());
    assert_eq!(
        events(&mut s),
        [SessionEvent::NoPoolElement { error: None }]
    );
    assert_eq!(
        s.send(t, app(33), Bytes::from_static(b"x")),
        Err(SessionError::FailoverNecessary)
    );
    // A failover on demand starts a new round, with every PE possible again.
    s.force_failover(t + 6 * SEC, false);
    assert_eq!(outputs(&mut s), [SessionOutput::Resolve]);
    s.resolved(t + 6 * SEC, Ok(vec![pe(1)]));
    let (a3, _) = connect_of(&outputs(&mut s));
    s.association_up(t + 6 * SEC, a3);
    assert_eq!(
        events(&mut s),
        [SessionEvent::Connected {
            pe: PoolElementId(1)
        }]
    );
    assert_eq!(s.stats().connect_failures, 2);
}

#[test]
fn automatic_mode_retries_after_a_delay_when_no_pe_is_reachable() {
    let t = Instant::now();
    let mut s = session(true);
    s.connect(t);
    outputs(&mut s);
    s.resolved(t, Err(rserpool::asap::ClientError::UnknownPoolHandle));
    assert_eq!(
        events(&mut s),
        [SessionEvent::NoPoolElement {
            error: Some(rserpool::asap::ClientError::UnknownPoolHandle)
        }]
    );
    let retry = s.poll_timeout().unwrap();
    assert_eq!(retry, t + Duration::from_millis(250));
    s.handle_timeout(retry - Duration::from_millis(1));
    assert!(outputs(&mut s).is_empty(), "not before the delay");
    s.handle_timeout(retry);
    assert_eq!(outputs(&mut s), [SessionOutput::Resolve]);
}

#[test]
fn a_business_card_sets_the_failover_order() {
    let t = Instant::now();
    let mut s = session(true);
    let a1 = up_on_pe1(&mut s, t);
    let card = asap(AsapMessage::BusinessCard(BusinessCard {
        pool_handle: PoolHandle::try_from("PingPongPool").unwrap(),
        policy: None,
        elements: vec![pe(3), pe(2)],
    }));
    s.message(t, a1, app(11), card);
    assert!(events(&mut s).is_empty(), "control, not data");
    s.association_lost(t, a1, true);
    // A graceful shutdown is no reason to report the PE.
    assert_eq!(outputs(&mut s), [SessionOutput::Resolve]);
    s.resolved(t, Ok(vec![pe(1), pe(2), pe(3)]));
    let (_, port) = connect_of(&outputs(&mut s));
    assert_eq!(port, 5003, "the card's first PE before the resolution's");
}

#[test]
fn what_the_application_cannot_send() {
    let t = Instant::now();
    let mut s = session(false);
    assert_eq!(
        s.send(t, app(33), Bytes::from_static(b"x")),
        Err(SessionError::NotConnected)
    );
    let a = up_on_pe1(&mut s, t);
    assert_eq!(
        s.send(t, app(11), Bytes::from_static(b"x")),
        Err(SessionError::ReservedPpid)
    );
    // Bad control input is counted and ignored.
    s.message(t, a, app(11), Bytes::from_static(b"\x0b\x00\x00"));
    s.message(t, a, app(11), cookie(b"").slice(..4));
    assert_eq!(s.stats().bad_control_messages, 2);
    assert!(events(&mut s).is_empty());
    s.close();
    assert_eq!(
        outputs(&mut s),
        [SessionOutput::Shutdown { association: a }]
    );
    assert_eq!(
        s.send(t, app(33), Bytes::from_static(b"x")),
        Err(SessionError::Closed)
    );
    assert!(s.is_closed());
}
