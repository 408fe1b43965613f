//! The registrar's tokio driver: owns the transport endpoint, the ASAP listener, the announce
//! socket and the timers, and feeds the sans-IO [`Registrar`].
//!
//! # Example: a registrar and a pool element in one process
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use rserpool::asap::PoolElementSpec;
//! use rserpool::transport::TransportConfig;
//! use rserpool::wire::{Policy, PoolHandle, RegistrarId, SctpTransport, Transport, TransportUse};
//! use rserpool::{Client, ClientOptions, RegistrarServer, ServerConfig};
//!
//! // A private UDP port on 127.0.0.1 (no host port sharing), no multicast announces.
//! let transport = TransportConfig {
//!     local: "127.0.0.1".parse()?,
//!     udp_port: 0,
//!     share_host: false,
//!     ..TransportConfig::default()
//! };
//! let mut config = ServerConfig::new(RegistrarId(0x5eed));
//! config.transport = transport.clone();
//! config.announce_group = None;
//! let registrar = RegistrarServer::start(config).await?;
//!
//! let mut options = ClientOptions::default();
//! options.transport = TransportConfig {
//!     remote_udp_port: registrar.udp_local_addr().port(),
//!     ..transport
//! };
//! options.announce_group = None;
//! options.asap.registrars.push("127.0.0.1:3863".parse()?);
//! let client = Client::start(options).await?;
//! let pool = PoolHandle::try_from("EchoPool")?;
//! let pe = client
//!     .register(PoolElementSpec {
//!         pool_handle: pool.clone(),
//!         pe_id: None,
//!         user_transport: Transport::Sctp(SctpTransport {
//!             port: 7,
//!             transport_use: TransportUse::DataOnly,
//!             addresses: vec![],
//!         }),
//!         policy: Policy::RoundRobin,
//!         reregistration_interval: Duration::from_secs(30),
//!     })
//!     .await?;
//! let snapshot = registrar.handlespace().await.unwrap_or_default();
//! assert_eq!(snapshot.len(), 1);
//! assert_eq!(snapshot[0].element.id, pe);
//! client.stop();
//! registrar.shutdown();
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::handlespace::AssociationId;
use crate::registrar::{
    Output, PeerInfo, PeerStatus, Registrar, RegistrarConfig, RegistrarStats, Role,
};
use crate::transport::{self, Association, Endpoint, TransportConfig, announce};
use crate::wire::{
    PPID_ASAP, PPID_ENRP, PoolElement, PoolHandle, RegistrarId, SctpTransport, Transport,
    TransportUse,
};

/// The default ENRP multicast group and port (RSPLIB's): 239.0.0.51:9901.
pub const DEFAULT_ENRP_GROUP: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::new(239, 0, 0, 51)),
    crate::wire::ENRP_PORT,
);

/// How long the driver waits for an association the core asked for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how a [`RegistrarServer`] runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The ASAP core's settings.
    pub registrar: RegistrarConfig,
    /// The SCTP port ASAP is served on (3863).
    pub asap_port: u16,
    /// The transport (UDP encapsulation port, host port sharing, SCTP parameters).
    pub transport: TransportConfig,
    /// Where Server Announces go (`None`: nowhere, whatever the announce cycle).
    pub announce_group: Option<SocketAddr>,
    /// The interface (its address) announces leave on.
    pub announce_interface: Option<IpAddr>,
    /// Multicast TTL of announces (RSPLIB: 30).
    pub announce_ttl: u32,
    /// The SCTP port ENRP is served on (9901), when [`RegistrarConfig::enrp`] is set.
    pub enrp_port: u16,
    /// Where ENRP Presences go and are heard by multicast (`None`: static peers only).
    pub enrp_group: Option<SocketAddr>,
    /// Seed of the core's random choices (`None`: from the OS).
    pub seed: Option<u64>,
}

impl ServerConfig {
    /// A registrar with this ID and the defaults: ASAP on SCTP port 3863 over UDP 9899
    /// (shared with the host's other rserpool processes), announces to 239.0.0.50:3863.
    pub fn new(id: RegistrarId) -> Self {
        Self {
            registrar: RegistrarConfig::new(id),
            asap_port: crate::wire::ASAP_PORT,
            transport: TransportConfig::default(),
            announce_group: Some(announce::DEFAULT_ANNOUNCE_GROUP),
            announce_interface: None,
            announce_ttl: 30,
            enrp_port: crate::wire::ENRP_PORT,
            enrp_group: Some(DEFAULT_ENRP_GROUP),
            seed: None,
        }
    }
}

/// One PE as a [`RegistrarHandle::handlespace`] snapshot lists it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeSnapshot {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE.
    pub element: PoolElement,
}

enum Command {
    Stats(oneshot::Sender<(RegistrarStats, usize)>),
    Handlespace(oneshot::Sender<Vec<PeSnapshot>>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Shutdown,
}

enum Input {
    Up(AssociationId, Association),
    EnrpUp(AssociationId, Association),
    Connected(AssociationId, Association),
    ConnectFailed(AssociationId),
    Message(AssociationId, u32, Bytes),
    Down(AssociationId),
    EnrpAnnounce(SocketAddr, Bytes),
}

/// A running registrar: [`RegistrarServer::start`] gives a [`RegistrarHandle`].
pub struct RegistrarServer;

/// Controls a running registrar. Dropping it does not stop the registrar; call
/// [`RegistrarHandle::shutdown`] and await [`RegistrarHandle::stopped`].
pub struct RegistrarHandle {
    commands: mpsc::UnboundedSender<Command>,
    done: tokio::sync::watch::Receiver<bool>,
    id: RegistrarId,
    udp: SocketAddr,
    asap_port: u16,
    enrp_port: Option<u16>,
    front: bool,
}

/// What a Server Announce says about where ASAP is served, unless configured: the bound
/// address and the ASAP port. A registrar bound to the wildcard on port 3863 sends none, so
/// that pool elements and users take the announce's source address (RFC 5352 §3.6); on another
/// port it sends the port with the interface the announces leave on (or the unspecified
/// address, which rserpool clients read as the source address).
fn announce_transports(config: &ServerConfig) -> Vec<Transport> {
    let address = if !config.transport.local.is_unspecified() {
        config.transport.local
    } else if config.asap_port == crate::wire::ASAP_PORT {
        return Vec::new();
    } else {
        config.announce_interface.unwrap_or(config.transport.local)
    };
    vec![Transport::Sctp(SctpTransport {
        port: config.asap_port,
        transport_use: TransportUse::DataPlusControl,
        addresses: vec![address],
    })]
}

impl RegistrarServer {
    /// Binds the transport, listens for ASAP and starts serving on the current tokio runtime.
    pub async fn start(config: ServerConfig) -> io::Result<RegistrarHandle> {
        config
            .registrar
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let endpoint = Endpoint::bind(&config.transport).await?;
        let mut listener = endpoint.listen(config.asap_port).await?;
        let enrp_listener = match config.registrar.enrp {
            Some(_) => Some(endpoint.listen(config.enrp_port).await?),
            None => None,
        };
        let enrp_announce = match (&config.registrar.enrp, config.enrp_group) {
            (Some(e), Some(group)) if e.announce => {
                let send = announce::sender(
                    group,
                    group.port(),
                    config.announce_interface,
                    config.announce_ttl,
                );
                let listen = announce::listener(group, config.announce_interface);
                match (send, listen) {
                    (Ok(s), Ok(l)) => Some((s, l, group)),
                    (Err(e), _) | (_, Err(e)) => {
                        warn!(%group, error = %e, "no ENRP multicast: static peers only");
                        None
                    }
                }
            }
            _ => None,
        };
        let announce = match (
            config.announce_group,
            config.registrar.server_announce_cycle,
        ) {
            (Some(group), Some(_)) => {
                match announce::sender(
                    group,
                    config.asap_port,
                    config.announce_interface,
                    config.announce_ttl,
                ) {
                    Ok(s) => Some((s, group)),
                    Err(e) => {
                        warn!(%group, error = %e, "cannot send Server Announces");
                        None
                    }
                }
            }
            _ => None,
        };
        let mut core_config = config.registrar.clone();
        if core_config.announce_transports.is_empty() {
            core_config.announce_transports = announce_transports(&config);
        }
        if let Some(e) = core_config.enrp.as_mut() {
            e.server_transport.port = config.enrp_port;
            if !config.transport.local.is_unspecified() {
                e.server_transport.addresses = vec![config.transport.local];
            }
            if enrp_announce.is_none() {
                e.announce = false;
            }
        }
        let seed = config.seed.unwrap_or_else(rand::random);
        let core = Registrar::new(core_config, seed, Instant::now());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let udp = endpoint.udp_local_addr();
        let front = endpoint.sctp().is_front();
        info!(
            id = format!("{:#010x}", config.registrar.id.0),
            %udp,
            asap_port = config.asap_port,
            front,
            "registrar running"
        );
        // Accept loops: every association gets an ID and a reader.
        let next_id = Arc::new(AtomicU64::new(1));
        let accept_tx = in_tx.clone();
        let ids = next_id.clone();
        let acceptor = tokio::spawn(async move {
            while let Some(assoc) = listener.accept().await {
                let id = AssociationId(ids.fetch_add(1, Ordering::Relaxed));
                if accept_tx.send(Input::Up(id, assoc)).is_err() {
                    break;
                }
            }
        });
        let mut tasks = vec![acceptor];
        if let Some(mut l) = enrp_listener {
            let tx = in_tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(assoc) = l.accept().await {
                    let id = AssociationId(next_id.fetch_add(1, Ordering::Relaxed));
                    if tx.send(Input::EnrpUp(id, assoc)).is_err() {
                        break;
                    }
                }
            }));
        }
        let enrp_sender = enrp_announce.map(|(send, listen, group)| {
            let tx = in_tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, from)) = listen.recv_from(&mut buf).await {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    if tx.send(Input::EnrpAnnounce(from, data)).is_err() {
                        break;
                    }
                }
            }));
            (send, group)
        });
        let enrp_port = config.registrar.enrp.as_ref().map(|_| config.enrp_port);
        tokio::spawn(async move {
            let mut driver = Driver {
                core,
                assocs: HashMap::new(),
                inputs: in_tx,
                announce,
                enrp_announce: enrp_sender,
                endpoint: endpoint.clone(),
                connects: HashMap::new(),
            };
            driver.run(in_rx, cmd_rx).await;
            for t in tasks {
                t.abort();
            }
            for (_, (_, t)) in driver.connects.drain() {
                t.abort();
            }
            for (_, a) in driver.assocs.values() {
                a.abort();
            }
            endpoint.close();
            let _ = done_tx.send(true);
        });
        Ok(RegistrarHandle {
            commands: cmd_tx,
            done: done_rx,
            id: config.registrar.id,
            udp,
            asap_port: config.asap_port,
            enrp_port,
            front,
        })
    }
}

impl RegistrarHandle {
    /// The registrar's ID.
    pub fn id(&self) -> RegistrarId {
        self.id
    }

    /// The UDP address the registrar's SCTP runs on.
    pub fn udp_local_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The SCTP port ASAP is served on.
    pub fn asap_port(&self) -> u16 {
        self.asap_port
    }

    /// The SCTP port ENRP is served on, if ENRP is on.
    pub fn enrp_port(&self) -> Option<u16> {
        self.enrp_port
    }

    /// The ENRP peers and what is known of each.
    pub async fn peers(&self) -> Option<Vec<PeerStatus>> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Peers(tx)).ok()?;
        rx.await.ok()
    }

    /// Whether the registrar holds the host's well-known UDP port.
    pub fn is_front(&self) -> bool {
        self.front
    }

    /// The counters and the number of PEs.
    pub async fn stats(&self) -> Option<(RegistrarStats, usize)> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stats(tx)).ok()?;
        rx.await.ok()
    }

    /// Every PE in the handlespace.
    pub async fn handlespace(&self) -> Option<Vec<PeSnapshot>> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Handlespace(tx)).ok()?;
        rx.await.ok()
    }

    /// Stops the registrar: associations are aborted, the port released.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Waits until the registrar has stopped.
    pub async fn stopped(&mut self) {
        while !*self.done.borrow() {
            if self.done.changed().await.is_err() {
                return;
            }
        }
    }
}

struct Driver {
    core: Registrar,
    assocs: HashMap<AssociationId, (Role, Arc<Association>)>,
    inputs: mpsc::UnboundedSender<Input>,
    announce: Option<(tokio::net::UdpSocket, SocketAddr)>,
    enrp_announce: Option<(tokio::net::UdpSocket, SocketAddr)>,
    endpoint: Endpoint,
    /// Associations being opened for the core, with what they are for.
    connects: HashMap<AssociationId, (Role, tokio::task::JoinHandle<()>)>,
}

fn peer_info(assoc: &Association) -> Option<PeerInfo> {
    assoc.peer().map(|p| PeerInfo {
        addresses: p.addresses,
        port: p.port,
        rtt: p.rtt,
    })
}

impl Driver {
    async fn run(
        &mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
            self.flush().await;
            let sleep = transport::sleep_until(self.core.poll_timeout());
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(i) => self.input(i),
                    None => return,
                },
                cmd = commands.recv() => match cmd {
                    Some(Command::Stats(tx)) => {
                        let _ = tx.send((self.core.stats(), self.core.handlespace().len()));
                    }
                    Some(Command::Handlespace(tx)) => {
                        let v = self
                            .core
                            .handlespace()
                            .iter()
                            .map(|e| PeSnapshot {
                                pool_handle: e.pool_handle().clone(),
                                element: e.element().clone(),
                            })
                            .collect();
                        let _ = tx.send(v);
                    }
                    Some(Command::Peers(tx)) => {
                        let _ = tx.send(self.core.peers(Instant::now()));
                    }
                    Some(Command::Shutdown) | None => {
                        info!("registrar shutting down");
                        return;
                    }
                },
                () = sleep => self.core.handle_timeout(Instant::now()),
            }
        }
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Up(id, assoc) => {
                let Some(peer) = peer_info(&assoc) else {
                    return;
                };
                debug!(association = id.0, ?peer, "ASAP association");
                self.core.association_up(now, id, peer);
                self.attach(id, Role::Asap, assoc);
            }
            Input::EnrpUp(id, assoc) => {
                let Some(peer) = peer_info(&assoc) else {
                    return;
                };
                self.core.peer_association_up(now, id, peer);
                self.attach(id, Role::Enrp, assoc);
            }
            Input::Connected(id, assoc) => {
                let Some((role, _)) = self.connects.remove(&id) else {
                    assoc.abort();
                    return;
                };
                let Some(peer) = peer_info(&assoc) else {
                    assoc.abort();
                    self.core.connect_failed(now, id);
                    return;
                };
                self.core.connected(now, id, peer);
                self.attach(id, role, assoc);
            }
            Input::ConnectFailed(id) => {
                self.connects.remove(&id);
                self.core.connect_failed(now, id);
            }
            Input::Message(id, ppid, data) => {
                let Some((role, _)) = self.assocs.get(&id) else {
                    return;
                };
                match (role, ppid) {
                    (_, PPID_ASAP) => self.core.handle_message(now, id, &data),
                    (Role::Enrp, PPID_ENRP) => self.core.handle_enrp(now, id, &data),
                    _ => {
                        // As RSPLIB: a peer speaking something else on the port is cut off.
                        warn!(association = id.0, ppid, "unexpected PPID: abort");
                        if let Some((_, a)) = self.assocs.remove(&id) {
                            a.abort();
                        }
                        self.core.association_down(now, id);
                    }
                }
            }
            Input::EnrpAnnounce(from, data) => self.core.handle_enrp_announce(now, from, &data),
            Input::Down(id) => {
                if self.assocs.remove(&id).is_some() {
                    self.core.association_down(now, id);
                }
            }
        }
    }

    fn attach(&mut self, id: AssociationId, role: Role, assoc: Association) {
        let assoc = Arc::new(assoc);
        self.assocs.insert(id, (role, assoc.clone()));
        transport::spawn_reader(assoc, self.inputs.clone(), move |m| match m {
            Ok(m) => Input::Message(id, m.ppid, m.data),
            Err(_) => Input::Down(id),
        });
    }

    fn connect(&mut self, id: AssociationId, role: Role, addresses: Vec<IpAddr>, port: u16) {
        let remote: Vec<SocketAddr> = addresses
            .into_iter()
            .map(|a| SocketAddr::new(a, port))
            .collect();
        let endpoint = self.endpoint.clone();
        let tx = self.inputs.clone();
        let task = tokio::spawn(async move {
            let r = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(&remote, 0)).await;
            let input = match r {
                Ok(Ok(a)) => Input::Connected(id, a),
                Ok(Err(e)) => {
                    debug!(?remote, error = %e, "connect failed");
                    Input::ConnectFailed(id)
                }
                Err(_) => {
                    debug!(?remote, "connect timed out");
                    Input::ConnectFailed(id)
                }
            };
            let _ = tx.send(input);
        });
        self.connects.insert(id, (role, task));
    }

    async fn flush(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Send {
                    association,
                    message,
                } => self.send(association, PPID_ASAP, message),
                Output::Abort { association } => {
                    if let Some((_, a)) = self.assocs.remove(&association) {
                        a.abort();
                    }
                }
                Output::SendEnrp {
                    association,
                    message,
                } => self.send(association, PPID_ENRP, message),
                Output::EnrpAnnounce { message } => multicast(&self.enrp_announce, &message).await,
                Output::Connect {
                    association,
                    role,
                    addresses,
                    port,
                } => self.connect(association, role, addresses, port),
                Output::Announce { message } => multicast(&self.announce, &message).await,
            }
        }
    }

    /// Sends on an association; a peer that does not read (its buffer is full) or is gone is
    /// aborted and reported lost.
    fn send(&mut self, association: AssociationId, ppid: u32, message: Bytes) {
        let Some((_, a)) = self.assocs.get(&association) else {
            return;
        };
        if !a.try_send(ppid, message) {
            warn!(
                association = association.0,
                ppid, "cannot send (buffer full): abort"
            );
            a.abort();
            self.assocs.remove(&association);
            self.core.association_down(Instant::now(), association);
        }
    }
}

/// Sends an announce (ASAP Server Announce or ENRP Presence) to its multicast group, if
/// there is a socket for it.
async fn multicast(target: &Option<(tokio::net::UdpSocket, SocketAddr)>, message: &[u8]) {
    if let Some((s, group)) = target {
        if let Err(e) = s.send_to(message, *group).await {
            debug!(%group, error = %e, "announce not sent");
        }
    }
}
