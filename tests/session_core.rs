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

// ---------------------------------------------------------------------------------------------
// The pool element's side.

fn pool() -> PoolHandle {
    PoolHandle::try_from("PingPongPool").unwrap()
}

fn pe_events(p: &mut PoolElementSessions) -> Vec<PeEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

fn pe_outputs(p: &mut PoolElementSessions) -> Vec<SessionOutput> {
    std::iter::from_fn(|| p.poll_output()).collect()
}

#[test]
fn a_pool_element_numbers_its_sessions_and_keeps_the_first_cookie_echo() {
    let t = Instant::now();
    let mut p = PoolElementSessions::new(pool());
    p.set_business_card(vec![pe(2), pe(3)]);
    let s1 = p.association_up(t, AssociationId(10)).unwrap();
    let s2 = p.association_up(t, AssociationId(11)).unwrap();
    assert_eq!((s1, s2), (SessionId(1), SessionId(2)));
    assert_eq!(
        p.association_up(t, AssociationId(10)),
        Ok(s1),
        "same association"
    );
    // Each new session gets the Business Card first.
    let out = pe_outputs(&mut p);
    assert_eq!(out.len(), 2);
    for o in &out {
        let SessionOutput::Send { info, data, .. } = o else {
            panic!("{o:?}")
        };
        assert_eq!(info.ppid, 11);
        let AsapMessage::BusinessCard(card) = AsapMessage::decode(data).unwrap() else {
            panic!()
        };
        assert_eq!(card.pool_handle, pool());
        assert_eq!(
            card.elements.iter().map(|e| e.id.0).collect::<Vec<_>>(),
            [2, 3]
        );
    }
    // Only the first Cookie Echo of a session reaches the application.
    let echo = |c: &[u8]| asap(AsapMessage::CookieEcho(Cookie { cookie: c.to_vec() }));
    p.message(AssociationId(10), app(11), echo(b"state 7"));
    p.message(AssociationId(10), app(11), echo(b"state 8"));
    p.message(AssociationId(11), app(33), Bytes::from_static(b"ping"));
    assert_eq!(
        pe_events(&mut p),
        [
            PeEvent::SessionAdded { session: s1 },
            PeEvent::SessionAdded { session: s2 },
            PeEvent::CookieEcho {
                session: s1,
                cookie: Bytes::from_static(b"state 7")
            },
            PeEvent::Message {
                session: s2,
                info: app(33),
                data: Bytes::from_static(b"ping")
            },
        ]
    );
    // Cookies go out as ASAP Cookies on PPID 11.
    p.send_cookie(s2, b"<PP-TD1>9").unwrap();
    let [
        SessionOutput::Send {
            association,
            info,
            data,
        },
    ] = &pe_outputs(&mut p)[..]
    else {
        panic!()
    };
    assert_eq!((*association, info.ppid), (AssociationId(11), 11));
    assert_eq!(
        AsapMessage::decode(data).unwrap(),
        AsapMessage::Cookie(Cookie {
            cookie: b"<PP-TD1>9".to_vec()
        })
    );
    // A session that ended is gone; its ID is not handed out again at once.
    p.association_lost(AssociationId(10));
    assert_eq!(pe_events(&mut p), [PeEvent::SessionRemoved { session: s1 }]);
    assert_eq!(
        p.send(s1, app(33), Bytes::from_static(b"x")),
        Err(PeSessionError::UnknownSession(s1))
    );
    assert_eq!(p.association_up(t, AssociationId(12)), Ok(SessionId(3)));
    assert_eq!(p.send_cookie(s2, b""), Err(PeSessionError::BadCookie));
    assert_eq!(
        p.send(s2, app(11), Bytes::from_static(b"x")),
        Err(PeSessionError::ReservedPpid)
    );
    assert_eq!(p.sessions().collect::<Vec<_>>(), [s2, SessionId(3)]);
}

/// Pool user and pool elements wired together: outputs of one side are fed to the other.
struct Wire {
    pu: PoolUserSession,
    pes: Vec<(PoolElementSessions, bool)>,
    /// PU association -> (PE index, PE-side association).
    links: Vec<(AssociationId, usize, AssociationId)>,
    reports: Vec<PoolElementId>,
    next: u64,
    t: Instant,
}

impl Wire {
    fn pe_index(port: u16) -> usize {
        usize::from(port - 5001)
    }

    /// Moves every output to the other side until nothing is left.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(o) = self.pu.poll_output() {
                moved = true;
                match o {
                    SessionOutput::Resolve => {
                        // The registrar still lists every PE.
                        let all = (1..=self.pes.len() as u32).map(pe).collect();
                        self.pu.resolved(self.t, Ok(all));
                    }
                    SessionOutput::ReportUnreachable { pe } => self.reports.push(pe),
                    SessionOutput::Connect {
                        association, port, ..
                    } => {
                        let i = Self::pe_index(port);
                        if self.pes[i].1 {
                            let theirs = AssociationId(self.next);
                            self.next += 1;
                            self.pes[i].0.association_up(self.t, theirs).unwrap();
                            self.links.push((association, i, theirs));
                            self.pu.association_up(self.t, association);
                        } else {
                            self.pu.association_failed(self.t, association);
                        }
                    }
                    SessionOutput::Send {
                        association,
                        info,
                        data,
                    } => {
                        let &(_, i, theirs) =
                            self.links.iter().find(|l| l.0 == association).unwrap();
                        if self.pes[i].1 {
                            self.pes[i].0.message(theirs, info, data);
                        }
                    }
                    SessionOutput::Abort { association }
                    | SessionOutput::Shutdown { association } => {
                        self.links.retain(|l| l.0 != association)
                    }
                }
            }
            for i in 0..self.pes.len() {
                while let Some(o) = self.pes[i].0.poll_output() {
                    moved = true;
                    if let SessionOutput::Send {
                        association,
                        info,
                        data,
                    } = o
                    {
                        if let Some(&(ours, _, _)) =
                            self.links.iter().find(|l| l.1 == i && l.2 == association)
                        {
                            self.pu.message(self.t, ours, info, data);
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The PE serving the session answers each ping with a pong and a cookie holding the
    /// count, as RSPLIB's ping-pong server does.
    fn serve(&mut self) {
        for i in 0..self.pes.len() {
            while let Some(e) = self.pes[i].0.poll_event() {
                if let PeEvent::Message { session, data, .. } = e {
                    let n = &data[5..];
                    let mut pong = b"pong ".to_vec();
                    pong.extend_from_slice(n);
                    self.pes[i].0.send(session, app(33), pong.into()).unwrap();
                    let mut cookie = b"<PP-TD1>".to_vec();
                    cookie.extend_from_slice(n);
                    self.pes[i].0.send_cookie(session, &cookie).unwrap();
                }
            }
        }
        self.pump();
    }
}

#[test]
fn a_pool_user_fails_over_and_the_new_pe_gets_the_newest_cookie_first() {
    let t = Instant::now();
    let mut w = Wire {
        pu: session(true),
        pes: (0..3)
            .map(|_| (PoolElementSessions::new(pool()), true))
            .collect(),
        links: vec![],
        reports: vec![],
        next: 100,
        t,
    };
    w.pu.connect(t);
    w.pump();
    assert_eq!(w.pu.pool_element(), Some(PoolElementId(1)));
    let mut pongs = vec![];
    let ping = |w: &mut Wire, n: u32| {
        w.pu.send(t, app(33), Bytes::from(format!("ping {n}")))
            .unwrap();
        w.pump();
        w.serve();
    };
    for n in 1..=3 {
        ping(&mut w, n);
    }
    pongs.extend(events(&mut w.pu));
    assert_eq!(w.pu.cookie().unwrap(), &Bytes::from_static(b"<PP-TD1>3"));
    // PE 1 dies.
    w.pes[0].1 = false;
    let &(ours, _, _) = w.links.iter().find(|l| l.1 == 0).unwrap();
    w.links.retain(|l| l.1 != 0);
    w.pu.association_lost(t, ours, false);
    // A ping sent while the session fails over waits for the new PE.
    w.pu.send(t, app(33), Bytes::from_static(b"ping 4"))
        .unwrap();
    w.pump();
    assert_eq!(w.reports, [PoolElementId(1)]);
    assert_eq!(w.pu.pool_element(), Some(PoolElementId(2)));
    // PE 2 saw: the new session, the newest cookie, then the ping.
    let second: Vec<PeEvent> = pe_events(&mut w.pes[1].0);
    let s = SessionId(1);
    assert_eq!(
        second,
        [
            PeEvent::SessionAdded { session: s },
            PeEvent::CookieEcho {
                session: s,
                cookie: Bytes::from_static(b"<PP-TD1>3")
            },
            PeEvent::Message {
                session: s,
                info: app(33),
                data: Bytes::from_static(b"ping 4")
            },
        ]
    );
    // Answer that ping as the first PE did, and one more.
    w.pes[1]
        .0
        .send(s, app(33), Bytes::from_static(b"pong 4"))
        .unwrap();
    w.pump();
    ping(&mut w, 5);
    pongs.extend(events(&mut w.pu));
    let texts: Vec<String> = pongs
        .iter()
        .map(|e| match e {
            SessionEvent::Message { data, .. } => String::from_utf8(data.to_vec()).unwrap(),
            SessionEvent::Connected { pe } => format!("connected {}", pe.0),
            SessionEvent::FailoverNecessary { .. } => "failover necessary".into(),
            SessionEvent::FailoverComplete { pe, has_cookie } => {
                format!("failover complete {} {has_cookie}", pe.0)
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        [
            "connected 1",
            "pong 1",
            "pong 2",
            "pong 3",
            "failover necessary",
            "failover complete 2 true",
            "pong 4",
            "pong 5"
        ]
    );
    assert!(pe_events(&mut w.pes[2].0).is_empty(), "PE 3 never used");
}
