//! The Rust API end to end, in one process on 127.0.0.1: a `RegistrarServer`, pool elements
//! registered through `Client`, and a pool user resolving the pool, over our SCTP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rserpool::asap::{ClientError, PoolElementSpec};
use rserpool::transport::TransportConfig;
use rserpool::wire::{
    Policy, PoolElementId, PoolHandle, RegistrarId, SctpTransport, Transport, TransportUse,
};
use rserpool::{Client, ClientOptions, RegistrarServer, ServerConfig};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on every step that waits for the network.
const STEP: Duration = Duration::from_secs(20);

/// A private UDP port per process (no host port sharing), peers assumed at `remote_udp`.
fn transport(remote_udp: u16) -> TransportConfig {
    TransportConfig {
        local: LOCALHOST,
        udp_port: 0,
        share_host: false,
        remote_udp_port: remote_udp,
        ..TransportConfig::default()
    }
}

fn client_options(registrar_udp: u16) -> ClientOptions {
    let mut o = ClientOptions {
        transport: transport(registrar_udp),
        announce_group: None,
        ..ClientOptions::default()
    };
    o.asap.registrars = vec![SocketAddr::new(LOCALHOST, 3863)];
    o
}

fn spec(pool: &PoolHandle, port: u16, load: u32) -> PoolElementSpec {
    PoolElementSpec {
        pool_handle: pool.clone(),
        pe_id: None,
        user_transport: Transport::Sctp(SctpTransport {
            port,
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![],
        }),
        policy: Policy::LeastUsed { load },
        reregistration_interval: Duration::from_secs(30),
    }
}

async fn step<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {STEP:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_resolve_update_deregister_and_lose_a_pe() {
    let mut config = ServerConfig::new(RegistrarId(0x5eed));
    config.transport = transport(0);
    config.announce_group = None;
    let mut registrar = RegistrarServer::start(config).await.unwrap();
    let udp = registrar.udp_local_addr().port();
    let pool = PoolHandle::try_from("ApiPool").unwrap();

    // Two PE processes, each registering one PE.
    let pe_a = Client::start(client_options(udp)).await.unwrap();
    let pe_b = Client::start(client_options(udp)).await.unwrap();
    let id_a = step("register a", pe_a.register(spec(&pool, 7001, 0)))
        .await
        .unwrap();
    let id_b = step("register b", pe_b.register(spec(&pool, 7002, 1 << 30)))
        .await
        .unwrap();
    assert_ne!(id_a, id_b);

    // A pool user sees both, with the addresses filled in from the registrar association and
    // the registrar as their home.
    let pu = Client::start(client_options(udp)).await.unwrap();
    let all = step("resolve all", pu.resolve(&pool, Some(u32::MAX)))
        .await
        .unwrap();
    let mut ids: Vec<PoolElementId> = all.iter().map(|p| p.id).collect();
    ids.sort_by_key(|i| i.0);
    let mut want = vec![id_a, id_b];
    want.sort_by_key(|i| i.0);
    assert_eq!(ids, want);
    for pe in &all {
        assert_eq!(pe.user_transport.addresses(), &[LOCALHOST][..]);
        assert_eq!(pe.home_registrar, RegistrarId(0x5eed));
    }
    // Least used first: a (load 0).
    let one = step("resolve 1", pu.resolve(&pool, Some(1))).await.unwrap();
    assert_eq!(one.iter().map(|p| p.id).collect::<Vec<_>>(), vec![id_a]);

    // a reports a higher load than b: b is chosen now.
    step(
        "update a",
        pe_a.update_policy(&pool, id_a, Policy::LeastUsed { load: u32::MAX / 2 }),
    )
    .await
    .unwrap();
    let one = step("resolve 1", pu.resolve(&pool, Some(1))).await.unwrap();
    assert_eq!(one.iter().map(|p| p.id).collect::<Vec<_>>(), vec![id_b]);

    // a deregisters; deregistering it again through b's client is refused locally.
    step("deregister a", pe_a.deregister(&pool, id_a))
        .await
        .unwrap();
    assert!(matches!(
        step("deregister a via b", pe_b.deregister(&pool, id_a)).await,
        Err(ClientError::UnknownPoolElement)
    ));
    let left = step("resolve", pu.resolve(&pool, None)).await.unwrap();
    assert_eq!(left.iter().map(|p| p.id).collect::<Vec<_>>(), vec![id_b]);
    let snapshot = registrar.handlespace().await.unwrap();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].element.id, id_b);

    // b's process goes away without deregistering: its association is aborted, and the
    // registrar drops the PE. Each resolution is a fresh request (no PU cache by default).
    pe_b.stop();
    step("b disappears", async {
        loop {
            match pu.resolve(&pool, None).await {
                Err(ClientError::UnknownPoolHandle) => break,
                Ok(pes) => assert_eq!(pes.iter().map(|p| p.id).collect::<Vec<_>>(), vec![id_b]),
                Err(e) => panic!("resolve: {e}"),
            }
        }
    })
    .await;
    let (stats, pes) = registrar.stats().await.unwrap();
    assert_eq!(pes, 0);
    assert_eq!(stats.registrations, 2);
    assert_eq!(stats.deregistrations, 1);

    pu.stop();
    pe_a.stop();
    registrar.shutdown();
    step("registrar stops", registrar.stopped()).await;
}
