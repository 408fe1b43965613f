//! The application API of the ASAP client: register pool elements, resolve pool handles,
//! report unreachable PEs. A [`Client`] runs the [`AsapClient`] core
//! on a tokio task with the transport and the announce listener.
//!
//! # A pool element
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use rserpool::{Client, ClientOptions};
//! use rserpool::asap::PoolElementSpec;
//! use rserpool::wire::{Policy, PoolHandle, SctpTransport, Transport, TransportUse};
//!
//! let mut options = ClientOptions::default();
//! options.asap.registrars.push("127.0.0.1:3863".parse()?);
//! let client = Client::start(options).await?;
//! // Serve the pool on SCTP port 7000 of this process's endpoint...
//! let mut listener = client.endpoint().listen(7000).await?;
//! // ...and register it (the addresses are filled in from the registrar association).
//! let pe_id = client
//!     .register(PoolElementSpec {
//!         pool_handle: PoolHandle::try_from("EchoPool")?,
//!         pe_id: None,
//!         user_transport: Transport::Sctp(SctpTransport {
//!             port: 7000,
//!             transport_use: TransportUse::DataOnly,
//!             addresses: vec![],
//!         }),
//!         policy: Policy::LeastUsed { load: 0 },
//!         reregistration_interval: Duration::from_secs(30),
//!     })
//!     .await?;
//! // Tell pool users about a new load.
//! client
//!     .update_policy(&PoolHandle::try_from("EchoPool")?, pe_id, Policy::LeastUsed { load: 1 << 30 })
//!     .await?;
//! # let _ = listener.accept().await;
//! # Ok(()) }
//! ```
//!
//! # A pool user
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rserpool::{Client, ClientOptions};
//! use rserpool::wire::PoolHandle;
//!
//! let mut options = ClientOptions::default();
//! options.asap.registrars.push("127.0.0.1:3863".parse()?);
//! let client = Client::start(options).await?;
//! let pool = PoolHandle::try_from("EchoPool")?;
//! for pe in client.resolve(&pool, None).await? {
//!     let remote: Vec<_> = pe
//!         .user_transport
//!         .addresses()
//!         .iter()
//!         .map(|&a| std::net::SocketAddr::new(a, pe.user_transport.port().unwrap_or(0)))
//!         .collect();
//!     match client.endpoint().connect(&remote, 0).await {
//!         Ok(assoc) => { /* talk to the PE */ break; }
//!         // Tell the registrar; try the next PE.
//!         Err(_) => client.report_unreachable(&pool, pe.id),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::asap::{
    AsapClient, ClientConfig, ClientError, ClientEvent, ClientOutput, Outcome, PoolElementSpec,
    RequestId,
};
use crate::handlespace::AssociationId;
use crate::transport::{self, Association, Endpoint, TransportConfig, announce};
use crate::wire::{PPID_ASAP, Policy, PoolElement, PoolElementId, PoolHandle, RegistrarId};

/// How a [`Client`] is set up.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The ASAP settings (registrars, timers, cache).
    pub asap: ClientConfig,
    /// The transport (UDP encapsulation port, host port sharing, SCTP parameters).
    pub transport: TransportConfig,
    /// The multicast group to hear Server Announces on (`None`: static registrars only).
    pub announce_group: Option<SocketAddr>,
    /// The interface (its address) to join the announce group on.
    pub announce_interface: Option<IpAddr>,
    /// The local SCTP port of the associations to registrars, also listened on so that a
    /// registrar taking over can reach the PE (`None`: a random free one).
    pub asap_port: Option<u16>,
    /// Seed of the core's random choices (`None`: from the OS).
    pub seed: Option<u64>,
}

impl Default for ClientOptions {
    /// RFC defaults; announces heard on 239.0.0.50:3863; the host's shared UDP port 9899.
    fn default() -> Self {
        Self {
            asap: ClientConfig::default(),
            transport: TransportConfig::default(),
            announce_group: Some(announce::DEFAULT_ANNOUNCE_GROUP),
            announce_interface: None,
            asap_port: None,
            seed: None,
        }
    }
}

/// The state of the client's home registrar, as [`Client::home`] reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HomeState {
    /// Whether an association to a home registrar is up.
    pub connected: bool,
    /// The home registrar's ID, once known.
    pub id: Option<RegistrarId>,
}

enum Command {
    Register(
        PoolElementSpec,
        oneshot::Sender<Result<Outcome, ClientError>>,
    ),
    Update(
        PoolHandle,
        PoolElementId,
        Policy,
        oneshot::Sender<Result<Outcome, ClientError>>,
    ),
    Deregister(
        PoolHandle,
        PoolElementId,
        oneshot::Sender<Result<Outcome, ClientError>>,
    ),
    Resolve(
        PoolHandle,
        Option<u32>,
        Option<Duration>,
        oneshot::Sender<Result<Outcome, ClientError>>,
    ),
    Unreachable(PoolHandle, PoolElementId),
    Stop,
    Close(oneshot::Sender<()>),
}

enum Input {
    Connected(AssociationId, io::Result<Association>),
    Incoming(Association),
    Message(AssociationId, u32, Bytes),
    Down(AssociationId),
    Announce(SocketAddr, Bytes),
}

/// How long [`Client::close`] waits for its associations to close.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(3);

/// An ASAP client: a pool element's or pool user's link to the registrars. Clones share it;
/// it stops when [`Client::stop`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    /// The core, shared with the driver: a cache hit is answered in the caller's context.
    core: Arc<Mutex<AsapClient>>,
    endpoint: Endpoint,
    home: watch::Receiver<HomeState>,
    asap_port: u16,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
    }
}

impl Client {
    /// Binds the transport, listens for announces and starts the client on the current tokio
    /// runtime. Registrars are contacted when there is something to do.
    pub async fn start(options: ClientOptions) -> io::Result<Self> {
        options
            .asap
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let endpoint = Endpoint::bind(&options.transport).await?;
        Self::start_on(options, endpoint).await
    }

    /// As [`Client::start`], on an endpoint the application already has.
    pub async fn start_on(options: ClientOptions, endpoint: Endpoint) -> io::Result<Self> {
        options
            .asap
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // The ASAP port is listened on so that a registrar taking over can reach the client.
        // When the host's shared UDP port has no front (it is held by a program that does not
        // share it), the client still works for what it starts itself: a pool user.
        let (listener, asap_port) = match options.asap_port {
            Some(p) => (Some(endpoint.listen(p).await?), p),
            None => {
                let mut tries = 0;
                loop {
                    let p = rand::random_range(49152..=65535u16);
                    match endpoint.listen(p).await {
                        Ok(l) => break (Some(l), p),
                        Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries < 64 => tries += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            warn!(error = %e, "registrars cannot call this client back");
                            break (None, 0);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (home_tx, home_rx) = watch::channel(HomeState::default());
        let mut tasks = Vec::new();
        let tx = in_tx.clone();
        if let Some(mut listener) = listener {
            tasks.push(tokio::spawn(async move {
                while let Some(a) = listener.accept().await {
                    if tx.send(Input::Incoming(a)).is_err() {
                        return;
                    }
                }
            }));
        }
        if let Some(group) = options.announce_group {
            match announce::listener(group, options.announce_interface) {
                Ok(sock) => {
                    let tx = in_tx.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok((n, src)) = sock.recv_from(&mut buf).await {
                            if tx
                                .send(Input::Announce(src, Bytes::copy_from_slice(&buf[..n])))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }));
                }
                Err(e) => warn!(%group, error = %e, "cannot listen for Server Announces"),
            }
        }
        let seed = options.seed.unwrap_or_else(rand::random);
        let local_ip = options.transport.local;
        let core = Arc::new(Mutex::new(AsapClient::new(options.asap, seed)));
        let mut driver = Driver {
            core: core.clone(),
            endpoint: endpoint.clone(),
            asap_port,
            local_ip,
            assocs: HashMap::new(),
            waiting: HashMap::new(),
            inputs: in_tx,
            home: home_tx,
        };
        tokio::spawn(async move {
            driver.run(in_rx, cmd_rx).await;
            for t in tasks {
                t.abort();
            }
            for a in driver.assocs.values() {
                a.abort();
            }
            for (_, tx) in driver.waiting.drain() {
                let _ = tx.send(Err(ClientError::Stopped));
            }
        });
        Ok(Self {
            inner: Arc::new(Inner {
                commands: cmd_tx,
                core,
                endpoint,
                home: home_rx,
                asap_port,
            }),
        })
    }

    /// The transport endpoint: serve the PE's own SCTP ports on it, or connect to PEs.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The local SCTP port of the associations to registrars, also listened on; 0 when the
    /// client could not listen (the host's shared UDP port has no front) and each association
    /// takes an ephemeral port.
    pub fn asap_port(&self) -> u16 {
        self.inner.asap_port
    }

    /// The home registrar's state now.
    pub fn home(&self) -> HomeState {
        *self.inner.home.borrow()
    }

    /// Watches the home registrar's state.
    pub fn watch_home(&self) -> watch::Receiver<HomeState> {
        self.inner.home.clone()
    }

    async fn call(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Outcome, ClientError>>) -> Command,
    ) -> Result<Outcome, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(make(tx))
            .map_err(|_| ClientError::Stopped)?;
        rx.await.unwrap_or(Err(ClientError::Stopped))
    }

    /// Registers a pool element and keeps it registered (re-registration, keep-alive answers,
    /// a new home registrar after a failure) until [`Client::deregister`] or the client stops.
    /// Returns its PE identifier.
    pub async fn register(&self, spec: PoolElementSpec) -> Result<PoolElementId, ClientError> {
        match self.call(|tx| Command::Register(spec, tx)).await? {
            Outcome::Registered { pe_id, .. } => Ok(pe_id),
            _ => Err(ClientError::Stopped),
        }
    }

    /// Changes a registered PE's policy values (e.g. its load) and re-registers it.
    pub async fn update_policy(
        &self,
        pool_handle: &PoolHandle,
        pe_id: PoolElementId,
        policy: Policy,
    ) -> Result<(), ClientError> {
        self.call(|tx| Command::Update(pool_handle.clone(), pe_id, policy, tx))
            .await
            .map(|_| ())
    }

    /// Deregisters a PE registered through this client.
    pub async fn deregister(
        &self,
        pool_handle: &PoolHandle,
        pe_id: PoolElementId,
    ) -> Result<(), ClientError> {
        self.call(|tx| Command::Deregister(pool_handle.clone(), pe_id, tx))
            .await
            .map(|_| ())
    }

    /// Resolves a pool handle to PEs, in the order to try them (`items`: how many to ask for,
    /// `None` = the registrar's choice; see [`AsapClient::resolve`]).
    pub async fn resolve(
        &self,
        pool_handle: &PoolHandle,
        items: Option<u32>,
    ) -> Result<Vec<PoolElement>, ClientError> {
        self.resolve_with(pool_handle, items, None).await
    }

    /// As [`resolve`](Self::resolve), with this call's cache lifetime instead of the
    /// client's [`ClientConfig::stale_cache_value`](crate::asap::ClientConfig) when
    /// `stale_cache_value` is given (see [`AsapClient::resolve_cached`]; RSPLIB's
    /// per-call `staleCacheValue`).
    pub async fn resolve_with(
        &self,
        pool_handle: &PoolHandle,
        items: Option<u32>,
        stale_cache_value: Option<Duration>,
    ) -> Result<Vec<PoolElement>, ClientError> {
        if let Some(pes) = self.resolve_from_cache(pool_handle, items, stale_cache_value) {
            return Ok(pes);
        }
        self.resolve_in_driver(pool_handle, items, stale_cache_value)
            .await
    }

    /// [`resolve_with`](Self::resolve_with) after a cache miss: the driver asks a registrar
    /// (or answers from the cache, if another call filled it meanwhile).
    pub(crate) async fn resolve_in_driver(
        &self,
        pool_handle: &PoolHandle,
        items: Option<u32>,
        stale_cache_value: Option<Duration>,
    ) -> Result<Vec<PoolElement>, ClientError> {
        match self
            .call(|tx| Command::Resolve(pool_handle.clone(), items, stale_cache_value, tx))
            .await?
        {
            Outcome::Resolved(pes) => Ok(pes),
            _ => Err(ClientError::Stopped),
        }
    }

    /// The answer of the cache alone, at once, in the caller's context: the PEs
    /// [`resolve_with`](Self::resolve_with) would return without asking a registrar, or
    /// `None` when it would have to (see [`AsapClient::resolve_fresh`]).
    pub fn resolve_from_cache(
        &self,
        pool_handle: &PoolHandle,
        items: Option<u32>,
        stale_cache_value: Option<Duration>,
    ) -> Option<Vec<PoolElement>> {
        self.inner
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resolve_fresh(Instant::now(), pool_handle, items, stale_cache_value)
    }

    /// As [`resolve_from_cache`](Self::resolve_from_cache), handing the PEs to `f` where
    /// they lie in the cache instead of copying them (see
    /// [`AsapClient::resolve_fresh_with`]). `f` runs with the client's state locked: it
    /// must not call this client.
    pub fn resolve_from_cache_with<R>(
        &self,
        pool_handle: &PoolHandle,
        items: Option<u32>,
        stale_cache_value: Option<Duration>,
        f: impl FnOnce(&mut dyn Iterator<Item = &PoolElement>) -> R,
    ) -> Option<R> {
        self.inner
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resolve_fresh_with(Instant::now(), pool_handle, items, stale_cache_value, f)
    }

    /// Reports a PE unreachable: it leaves the cache before this returns (the next resolution
    /// does not offer it), and the registrar hears of it.
    pub fn report_unreachable(&self, pool_handle: &PoolHandle, pe_id: PoolElementId) {
        self.inner
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget_cached(pool_handle, pe_id);
        let _ = self
            .inner
            .commands
            .send(Command::Unreachable(pool_handle.clone(), pe_id));
    }

    /// Stops the client: its associations are shut down (gracefully: what is queued goes out
    /// first), without waiting for that; [`close`](Self::close) waits. Its PEs are not
    /// deregistered: the registrar drops them when their association ends.
    pub fn stop(&self) {
        let _ = self.inner.commands.send(Command::Stop);
    }

    /// Stops the client as [`stop`](Self::stop) does and waits until its associations are
    /// closed, for [`CLOSE_LIMIT`] at most (a peer that does not answer the SHUTDOWN).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Driver {
    core: Arc<Mutex<AsapClient>>,
    endpoint: Endpoint,
    asap_port: u16,
    local_ip: IpAddr,
    assocs: HashMap<AssociationId, Arc<Association>>,
    waiting: HashMap<RequestId, oneshot::Sender<Result<Outcome, ClientError>>>,
    inputs: mpsc::UnboundedSender<Input>,
    home: watch::Sender<HomeState>,
}

impl Driver {
    /// The core (never held across an await).
    fn core(&self) -> MutexGuard<'_, AsapClient> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(
        &mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
            self.flush();
            let sleep = transport::sleep_until(self.core().poll_timeout());
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(i) => self.input(i),
                    None => return,
                },
                cmd = commands.recv() => match cmd {
                    Some(Command::Stop) | None => return self.shut_down_all(),
                    Some(Command::Close(done)) => {
                        self.shut_down_all();
                        let all = self.assocs.values().cloned().collect();
                        transport::wait_closed(all, CLOSE_LIMIT).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c),
                },
                () = sleep => self.core().handle_timeout(Instant::now()),
            }
        }
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        let (rid, tx) = match c {
            Command::Register(spec, tx) => (self.core().register(now, spec), tx),
            Command::Update(ph, id, policy, tx) => {
                (self.core().update_policy(now, &ph, id, policy), tx)
            }
            Command::Deregister(ph, id, tx) => (self.core().deregister(now, &ph, id), tx),
            Command::Resolve(ph, items, None, tx) => (self.core().resolve(now, &ph, items), tx),
            Command::Resolve(ph, items, Some(stale), tx) => {
                (self.core().resolve_cached(now, &ph, items, stale), tx)
            }
            Command::Unreachable(ph, id) => {
                self.core().report_unreachable(now, &ph, id);
                return;
            }
            Command::Stop | Command::Close(_) => return,
        };
        self.waiting.insert(rid, tx);
    }

    /// Starts a graceful shutdown of every association (the client is stopping).
    fn shut_down_all(&mut self) {
        for a in self.assocs.values() {
            a.shutdown();
        }
    }

    fn local_addresses(&self, assoc: &Association) -> Vec<IpAddr> {
        if !self.local_ip.is_unspecified() {
            return vec![self.local_ip];
        }
        let Some(peer) = assoc.peer() else {
            return Vec::new();
        };
        peer.addresses
            .iter()
            .filter_map(|&a| transport::local_address_towards(a).ok())
            .take(1)
            .collect()
    }

    fn spawn_reader(&self, id: AssociationId, assoc: Arc<Association>) {
        transport::spawn_reader(assoc, self.inputs.clone(), move |m| match m {
            Ok(m) => Input::Message(id, m.ppid, m.data),
            Err(_) => Input::Down(id),
        });
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Connected(id, Ok(assoc)) => {
                let local = self.local_addresses(&assoc);
                let assoc = Arc::new(assoc);
                self.assocs.insert(id, assoc.clone());
                self.spawn_reader(id, assoc);
                self.core().association_up(now, id, local);
            }
            Input::Connected(id, Err(e)) => {
                debug!(association = id.0, error = %e, "registrar not reached");
                self.core().association_failed(now, id);
            }
            Input::Incoming(assoc) => {
                let local = self.local_addresses(&assoc);
                let id = self.core().incoming_association(local);
                let assoc = Arc::new(assoc);
                self.assocs.insert(id, assoc.clone());
                self.spawn_reader(id, assoc);
            }
            Input::Message(id, ppid, data) => {
                if ppid == PPID_ASAP {
                    self.core().handle_message(now, id, &data);
                } else {
                    debug!(
                        association = id.0,
                        ppid, "non-ASAP message from a registrar ignored"
                    );
                }
            }
            Input::Down(id) => {
                if self.assocs.remove(&id).is_some() {
                    self.core().association_down(now, id);
                }
            }
            Input::Announce(src, data) => self.core().handle_announce(now, src, &data),
        }
    }

    fn flush(&mut self) {
        loop {
            // The guard ends here: handling an output or event may use the core.
            let next = self.core().poll_output();
            let Some(o) = next else {
                break;
            };
            match o {
                ClientOutput::Connect {
                    association,
                    remote,
                } => {
                    let ep = self.endpoint.clone();
                    let tx = self.inputs.clone();
                    let port = self.asap_port;
                    tokio::spawn(async move {
                        let r = ep.connect(&remote, port).await;
                        let _ = tx.send(Input::Connected(association, r));
                    });
                }
                ClientOutput::Send {
                    association,
                    message,
                } => {
                    if let Some(a) = self.assocs.get(&association) {
                        if !a.try_send(PPID_ASAP, message) {
                            warn!(association = association.0, "cannot send to the registrar");
                        }
                    }
                }
                ClientOutput::Close { association } => {
                    if let Some(a) = self.assocs.remove(&association) {
                        a.shutdown();
                    }
                }
                ClientOutput::Abort { association } => {
                    if let Some(a) = self.assocs.remove(&association) {
                        a.abort();
                    }
                }
            }
        }
        loop {
            // The guard ends here: handling an output or event may use the core.
            let next = self.core().poll_event();
            let Some(e) = next else {
                break;
            };
            match e {
                ClientEvent::Done { request, result } => {
                    if let Some(tx) = self.waiting.remove(&request) {
                        let _ = tx.send(result);
                    }
                }
                ClientEvent::HomeRegistrar { id, .. } => {
                    info!(id = ?id.map(|i| format!("{:#010x}", i.0)), "home registrar");
                    self.home.send_replace(HomeState {
                        connected: true,
                        id,
                    });
                }
                ClientEvent::HomeLost => {
                    self.home.send_replace(HomeState::default());
                }
                ClientEvent::RegistrationLost {
                    pool_handle,
                    pe_id,
                    error,
                } => {
                    warn!(pool = %pool_handle, pe = pe_id.0, %error, "pool element no longer registered");
                }
            }
        }
        // The home ID may become known later (first keep-alive).
        let id = self.core().home_id();
        let connected = self.core().home().is_some();
        self.home.send_if_modified(|h| {
            let new = HomeState { connected, id };
            let changed = *h != new;
            *h = new;
            changed
        });
    }
}
