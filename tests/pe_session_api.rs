//! The pool element's side of the session API end to end, in one process on 127.0.0.1 over
//! our SCTP: two PEs on `SessionServer`, a pool user's `Session` in RSPLIB's manual failover
//! mode. The PE sees its sessions come and go with their own IDs, sends cookies, and the PE
//! a session fails over to gets the newest cookie as a Cookie Echo, apart from the data.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use rserpool::asap::PoolElementSpec;
use rserpool::session::{PeEvent, PeSessionError, SendInfo, SessionEvent, SessionId};
use rserpool::transport::TransportConfig;
use rserpool::wire::{
    Policy, PoolElementId, PoolHandle, RegistrarId, SctpTransport, Transport, TransportUse,
};
use rserpool::{
    Client, ClientOptions, RegistrarServer, ServerConfig, Session, SessionOptions, SessionServer,
};
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// This test's host UDP port (the registrar fronts it; the others share it).
const UDP: u16 = 30451;
const STEP: Duration = Duration::from_secs(20);
const PPID: u32 = 33;

fn client_options() -> ClientOptions {
    let transport = TransportConfig {
        local: LOCALHOST,
        udp_port: UDP,
        share_host: true,
        remote_udp_port: UDP,
        ..TransportConfig::default()
    };
    let mut o = ClientOptions {
        transport,
        announce_group: None,
        ..ClientOptions::default()
    };
    o.asap.registrars = vec![SocketAddr::new(LOCALHOST, 3863)];
    o
}

async fn pe(pool: &PoolHandle, port: u16, load: u32) -> (Client, PoolElementId, SessionServer) {
    let client = Client::start(client_options()).await.unwrap();
    let listener = client.endpoint().listen(port).await.unwrap();
    let server = SessionServer::start(listener, pool.clone());
    let spec = PoolElementSpec {
        pool_handle: pool.clone(),
        pe_id: None,
        user_transport: Transport::Sctp(SctpTransport {
            port: server.port(),
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![],
        }),
        policy: Policy::LeastUsed { load },
        reregistration_interval: Duration::from_secs(30),
    };
    let id = timeout(STEP, client.register(spec)).await.unwrap().unwrap();
    (client, id, server)
}

async fn pe_event(s: &mut SessionServer) -> PeEvent {
    timeout(STEP, s.next_event()).await.unwrap().unwrap()
}

async fn pu_event(s: &mut Session) -> SessionEvent {
    timeout(STEP, s.next_event()).await.unwrap().unwrap()
}

fn info() -> SendInfo {
    SendInfo {
        ppid: PPID,
        stream: 0,
        ..SendInfo::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pe_sessions_carry_data_and_cookies_and_the_next_pe_gets_the_echo() {
    let mut config = ServerConfig::new(RegistrarId(0x5e56));
    config.transport = client_options().transport;
    config.announce_group = None;
    let registrar = RegistrarServer::start(config).await.unwrap();
    assert!(registrar.is_front(), "UDP port {UDP} is taken");
    let pool = PoolHandle::try_from("CookiePool").unwrap();
    let (pe_a, id_a, mut a) = pe(&pool, 7201, 0).await;
    let (pe_b, id_b, mut b) = pe(&pool, 7202, 1 << 30).await;

    let pu = Client::start(client_options()).await.unwrap();
    let mut s = Session::connect(&pu, pool.clone(), SessionOptions::default());
    assert_eq!(pu_event(&mut s).await, SessionEvent::Connected { pe: id_a });
    assert!(s.status().connected);
    assert_eq!(s.status().pool_element, Some(id_a));
    assert!(!s.status().has_cookie);

    // The PE sees a new session, then the message on it.
    s.send(info(), Bytes::from_static(b"hello")).await.unwrap();
    let PeEvent::SessionAdded { session } = pe_event(&mut a).await else {
        panic!("no session")
    };
    assert_eq!(session, SessionId(1));
    assert_eq!(
        pe_event(&mut a).await,
        PeEvent::Message {
            session,
            info: info(),
            data: Bytes::from_static(b"hello")
        }
    );
    // Its answer and a cookie reach the pool user; the cookie is not handed over as data.
    a.send(session, info(), Bytes::from_static(b"world"))
        .await
        .unwrap();
    a.send_cookie(session, Bytes::from_static(b"<STATE>1"))
        .await
        .unwrap();
    a.send_cookie(session, Bytes::from_static(b"<STATE>2"))
        .await
        .unwrap();
    match pu_event(&mut s).await {
        SessionEvent::Message { info: i, data } => {
            assert_eq!((i.ppid, &data[..]), (PPID, &b"world"[..]))
        }
        e => panic!("{e:?}"),
    }
    // The PE refuses what is not its to send.
    let reserved = SendInfo {
        ppid: 11,
        ..SendInfo::default()
    };
    assert_eq!(
        a.send(session, reserved, Bytes::from_static(b"x")).await,
        Err(PeSessionError::ReservedPpid)
    );
    assert_eq!(
        a.send(SessionId(99), info(), Bytes::from_static(b"x"))
            .await,
        Err(PeSessionError::UnknownSession(SessionId(99)))
    );
    // A round trip after the cookies: they have arrived too.
    s.send(info(), Bytes::from_static(b"sync")).await.unwrap();
    assert!(matches!(pe_event(&mut a).await, PeEvent::Message { .. }));
    assert!(s.status().has_cookie);

    // Failing over on demand, reporting PE a, as RSPLIB's applications do: PE b gets the
    // newest cookie.
    s.force_failover(true);
    assert_eq!(
        pu_event(&mut s).await,
        SessionEvent::FailoverComplete {
            pe: id_b,
            has_cookie: true
        }
    );
    let PeEvent::SessionAdded { session: sb } = pe_event(&mut b).await else {
        panic!("no session at b")
    };
    assert_eq!(
        pe_event(&mut b).await,
        PeEvent::CookieEcho {
            session: sb,
            cookie: Bytes::from_static(b"<STATE>2")
        }
    );
    // PE a's session ended (the old association is aborted).
    assert_eq!(pe_event(&mut a).await, PeEvent::SessionRemoved { session });

    // The PE ends the session: the pool user hears of it as a failover reason.
    b.close_session(sb).await.unwrap();
    assert_eq!(pu_event(&mut s).await, SessionEvent::PeerShutdown);
    assert_eq!(
        pu_event(&mut s).await,
        SessionEvent::FailoverNecessary { has_cookie: true }
    );
    assert_eq!(
        pe_event(&mut b).await,
        PeEvent::SessionRemoved { session: sb }
    );

    s.close().await;
    a.close().await;
    b.close().await;
    pu.close().await;
    pe_a.close().await;
    pe_b.close().await;
    registrar.shutdown();
}
