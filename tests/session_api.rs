//! The session API end to end, in one process on 127.0.0.1 over our SCTP: a registrar, two
//! ping-pong pool elements that send a cookie after every pong, and a pool user's `Session`
//! that fails over by itself when its PE dies; the new PE gets the newest cookie first.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rserpool::asap::PoolElementSpec;
use rserpool::session::{SendInfo, SessionConfig, SessionEvent};
use rserpool::transport::{Association, SendOptions, TransportConfig};
use rserpool::wire::{
    AsapMessage, Cookie, Policy, PoolElementId, PoolHandle, RegistrarId, SctpTransport, Transport,
    TransportUse,
};
use rserpool::{Client, ClientOptions, RegistrarServer, ServerConfig, Session, SessionOptions};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// This test's host UDP port (the registrar fronts it; the others share it).
const UDP: u16 = 30441;
const STEP: Duration = Duration::from_secs(20);
const PING: u32 = 33;

fn transport() -> TransportConfig {
    TransportConfig {
        local: LOCALHOST,
        udp_port: UDP,
        share_host: true,
        remote_udp_port: UDP,
        ..TransportConfig::default()
    }
}

fn client_options() -> ClientOptions {
    let mut o = ClientOptions {
        transport: transport(),
        announce_group: None,
        ..ClientOptions::default()
    };
    o.asap.registrars = vec![SocketAddr::new(LOCALHOST, 3863)];
    o
}

/// A ping-pong PE: answers "ping N" with "pong N" and a cookie "<PP-TD1>N"; reports the
/// Cookie Echoes it gets. Returns its associations, to kill it.
async fn ping_pong_pe(
    pool: &PoolHandle,
    port: u16,
    load: u32,
    echoes: mpsc::UnboundedSender<(u16, Vec<u8>)>,
) -> (Client, PoolElementId, Arc<Mutex<Vec<Arc<Association>>>>) {
    let client = Client::start(client_options()).await.unwrap();
    let mut listener = client.endpoint().listen(port).await.unwrap();
    let spec = PoolElementSpec {
        pool_handle: pool.clone(),
        pe_id: None,
        user_transport: Transport::Sctp(SctpTransport {
            port,
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![],
        }),
        policy: Policy::LeastUsed { load },
        reregistration_interval: Duration::from_secs(30),
    };
    let id = timeout(STEP, client.register(spec)).await.unwrap().unwrap();
    let assocs: Arc<Mutex<Vec<Arc<Association>>>> = Arc::default();
    let held = assocs.clone();
    tokio::spawn(async move {
        while let Some(a) = listener.accept().await {
            let a = Arc::new(a);
            held.lock().unwrap().push(a.clone());
            let echoes = echoes.clone();
            tokio::spawn(async move {
                while let Ok(m) = a.recv_message().await {
                    if m.ppid == 11 {
                        if let Ok(AsapMessage::CookieEcho(c)) = AsapMessage::decode(&m.data) {
                            let _ = echoes.send((port, c.cookie));
                        }
                        continue;
                    }
                    let n = String::from_utf8_lossy(&m.data[5..]).to_string();
                    let opts = SendOptions {
                        ppid: PING,
                        ..SendOptions::default()
                    };
                    let pong = Bytes::from(format!("pong {n}"));
                    let cookie = AsapMessage::Cookie(Cookie {
                        cookie: format!("<PP-TD1>{n}").into_bytes(),
                    });
                    let asap = SendOptions {
                        ppid: 11,
                        ..SendOptions::default()
                    };
                    // The cookie first: on the ordered stream it has arrived when the pong has.
                    if a.send_message(asap, cookie.to_bytes().unwrap().into())
                        .await
                        .is_err()
                        || a.send_message(opts, pong).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (client, id, assocs)
}

/// The next event that is not a message of the application.
async fn notification(s: &mut Session) -> SessionEvent {
    loop {
        match timeout(STEP, s.next_event()).await.unwrap().unwrap() {
            SessionEvent::Message { .. } => continue,
            e => return e,
        }
    }
}

/// Sends "ping n" and waits for "pong n".
async fn ping(s: &mut Session, n: u32) {
    let info = SendInfo {
        ppid: PING,
        ..SendInfo::default()
    };
    s.send(info, Bytes::from(format!("ping {n}")))
        .await
        .unwrap();
    match timeout(STEP, s.next_event()).await.unwrap().unwrap() {
        SessionEvent::Message { info, data } => {
            assert_eq!(info.ppid, PING);
            assert_eq!(data, Bytes::from(format!("pong {n}")));
        }
        e => panic!("waiting for pong {n}: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_fails_over_and_the_new_pe_gets_the_newest_cookie() {
    let mut config = ServerConfig::new(RegistrarId(0x5e55));
    config.transport = transport();
    config.announce_group = None;
    let registrar = RegistrarServer::start(config).await.unwrap();
    assert!(registrar.is_front(), "UDP port {UDP} is taken");
    let pool = PoolHandle::try_from("PingPongPool").unwrap();
    let (echo_tx, mut echoes) = mpsc::unbounded_channel();
    let (pe_a, id_a, assocs_a) = ping_pong_pe(&pool, 7101, 0, echo_tx.clone()).await;
    let (pe_b, id_b, assocs_b) = ping_pong_pe(&pool, 7102, 1 << 30, echo_tx).await;

    let pu = Client::start(client_options()).await.unwrap();
    let options = SessionOptions {
        session: SessionConfig {
            automatic_failover: true,
            ..SessionConfig::default()
        },
        ..SessionOptions::default()
    };
    let mut s = Session::connect(&pu, pool.clone(), options);
    // Least used first: PE a.
    assert_eq!(
        notification(&mut s).await,
        SessionEvent::Connected { pe: id_a }
    );
    for n in 1..=3 {
        ping(&mut s, n).await;
    }
    // PE a dies (its associations aborted, its client gone).
    for a in assocs_a.lock().unwrap().iter() {
        a.abort();
    }
    pe_a.stop();
    assert_eq!(
        notification(&mut s).await,
        SessionEvent::FailoverNecessary { has_cookie: true }
    );
    assert_eq!(
        notification(&mut s).await,
        SessionEvent::FailoverComplete {
            pe: id_b,
            has_cookie: true
        }
    );
    // PE b got the newest cookie, and serves the session from there.
    let (port, cookie) = timeout(STEP, echoes.recv()).await.unwrap().unwrap();
    assert_eq!((port, &cookie[..]), (7102, &b"<PP-TD1>3"[..]));
    ping(&mut s, 4).await;
    // Closing shuts the association to PE b down gracefully.
    s.close().await;
    let b = assocs_b.lock().unwrap()[0].clone();
    assert_eq!(
        timeout(STEP, b.closed()).await.unwrap(),
        rserpool::transport::Closed::Shutdown
    );
    pu.close().await;
    pe_b.close().await;
    registrar.shutdown();
}
