//! The tokio driver: one UDP socket, the sans-IO [`Endpoint`], and an async API.
//!
//! A background task owns the socket and the protocol timers; [`SctpEndpoint`],
//! [`Association`] and [`Listener`] are handles that talk to it. One socket serves every SCTP
//! port the endpoint listens on or connects from.
//!
//! [`SctpEndpoint::bind`] binds a UDP port of its own. [`SctpEndpoint::bind_shared`] shares the
//! host's well-known UDP port (RFC 6951: 9899) with the other processes of the host that do
//! the same: see [`crate::mux`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bytes::Bytes;
//! use rserpool_sctp::{EndpointConfig, SctpEndpoint};
//!
//! let server = SctpEndpoint::bind("127.0.0.1:9899".parse().unwrap(), EndpointConfig::default()).await?;
//! let mut listener = server.listen(3863).await.unwrap();
//! let client = SctpEndpoint::bind("127.0.0.1:0".parse().unwrap(), EndpointConfig::default()).await?;
//! let assoc = client.connect(&["127.0.0.1:9899".parse().unwrap()], 3863).await.unwrap();
//! assoc.send(0, 11, Bytes::from_static(b"hello")).await.unwrap();
//! let incoming = listener.accept().await.unwrap();
//! let msg = incoming.recv().await.unwrap();
//! assert_eq!(msg.data, &b"hello"[..]);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::mux::{
    self, Claim, Holder, ListenError, Route, Share, ShareConfig, ShareState, ShareStats,
};
use crate::{
    AssocId, AssociationConfig, AssociationInfo, ConnectError, Endpoint, EndpointConfig,
    EndpointStats, Event, LostReason, Message, SendError, Transmit,
};

/// Why an association is no longer usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Closed {
    /// Ended gracefully (SHUTDOWN).
    #[error("association shut down")]
    Shutdown,
    /// Lost (abort, timeout, ...).
    #[error("association lost: {0}")]
    Lost(LostReason),
    /// The endpoint's driver stopped.
    #[error("endpoint closed")]
    EndpointClosed,
}

/// Why `connect` failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectFailed {
    /// The endpoint refused to start the association.
    #[error(transparent)]
    Refused(#[from] ConnectError),
    /// The handshake failed.
    #[error("{0}")]
    Lost(LostReason),
    /// The endpoint's driver stopped.
    #[error("endpoint closed")]
    EndpointClosed,
    /// Host port sharing: the requested local SCTP port is not available.
    #[error("local SCTP port: {0}")]
    LocalPort(ListenError),
}

/// How a message is sent: its stream, PPID, ordering and lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// The stream (0 up to the negotiated number of outbound streams).
    pub stream: u16,
    /// The payload protocol identifier.
    pub ppid: u32,
    /// Deliver it as soon as it arrives, outside the stream's order.
    pub unordered: bool,
    /// If no part of the message has been sent this long after the call, it is dropped and
    /// reported as [`Event::Expired`] (RFC 9260 §11.1.5). `None`: no
    /// limit.
    pub lifetime: Option<std::time::Duration>,
}

/// Non-data events of an association, as its [`Association::events`] yields them.
pub type AssociationEvent = Event;

/// Where an association's messages go when its user set one ([`Association::set_sink`]).
type Sink = Box<dyn FnMut(Delivery) + Send>;

/// What an association's sink gets ([`Association::set_sink`]).
#[derive(Debug)]
pub enum Delivery {
    /// Messages that arrived together (one or more), in order: one call for the lot, so a
    /// sink that wakes someone wakes them once.
    Messages(Vec<Message>),
    /// The association ended, for this reason: the sink's last call.
    Ended(Closed),
}

struct AssocSlot {
    notify: Arc<Notify>,
    /// Takes the messages instead of [`Association::recv`]; out of the slot while the driver
    /// runs it.
    sink: Option<Sink>,
    closed: Option<Closed>,
    events: mpsc::UnboundedSender<Event>,
    events_rx: Option<mpsc::UnboundedReceiver<Event>>,
    connect: Option<oneshot::Sender<Result<(), LostReason>>>,
    /// Host port sharing: the local SCTP port this association holds a reference on.
    port: Option<u16>,
}

struct State {
    ep: Endpoint,
    /// The user-facing guard, while one exists (accepted associations take a reference).
    guard: Option<std::sync::Weak<Guard>>,
    assocs: HashMap<AssocId, AssocSlot>,
    listeners: HashMap<u16, mpsc::UnboundedSender<Association>>,
    stopped: bool,
    /// The UDP address own traffic goes out from (changes when a member takes over).
    local: SocketAddr,
    /// Host port sharing, when enabled.
    share: Option<Share>,
    /// A blocking-free std handle on the sending socket, to say goodbye from `stop` even when
    /// the runtime is going away.
    farewell: Option<std::net::UdpSocket>,
    /// Associations with a sink and something for it (messages, their end).
    sinks_due: Vec<AssocId>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: output may be pending, or deadlines changed.
    wake: Notify,
    v6_socket: bool,
    /// Host port sharing: the address given to `bind_shared` (IP and well-known port).
    bound: SocketAddr,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dst(&self, a: SocketAddr) -> SocketAddr {
        if self.v6_socket { to_v6(a) } else { a }
    }

    /// After a user call changed the endpoint: the driver task sends what it queued.
    ///
    /// (Sending from the calling task instead was measured slower: the socket calls under the
    /// state lock collide with the driver's receive path, costing more than the wake-up.)
    fn kick(&self, st: MutexGuard<'_, State>) {
        drop(st);
        self.wake.notify_one();
    }

    /// Drops a reference on a shared SCTP port.
    fn release(&self, port: u16) {
        let mut st = self.lock();
        if let Some(s) = st.share.as_mut() {
            s.release(port);
        }
        self.kick(st);
    }
}

/// Stops the driver when the last user-facing handle goes away.
struct Guard {
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        stop(&self.shared);
    }
}

fn stop(shared: &Shared) {
    let mut st = shared.lock();
    if !st.stopped {
        for id in st.ep.associations() {
            st.ep.abort(id);
        }
        st.stopped = true;
        // Host port sharing: a front says goodbye to its members, a member leaves. Sent at
        // once, so that it goes out even if the runtime stops right after.
        let now = Instant::now();
        let State {
            share, farewell, ..
        } = &mut *st;
        if let Some(share) = share.as_mut() {
            let msgs = share.farewell(now);
            if let Some(sock) = farewell.take() {
                for (dst, b) in msgs {
                    let _ = sock.send_to(&b, shared.dst(dst));
                }
            }
        }
    }
    drop(st);
    shared.wake.notify_one();
}

/// A handle to a running SCTP-over-UDP endpoint. Clones share it; the driver stops when
/// [`SctpEndpoint::close`] is called or every handle, listener and association is dropped.
#[derive(Clone)]
pub struct SctpEndpoint {
    guard: Arc<Guard>,
    shared: Arc<Shared>,
}

/// Associations arriving on an SCTP port.
pub struct Listener {
    port: u16,
    rx: mpsc::UnboundedReceiver<Association>,
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

/// One association.
pub struct Association {
    id: AssocId,
    shared: Arc<Shared>,
    notify: Arc<Notify>,
    _guard: Arc<Guard>,
}

fn to_v6(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    }
}

fn from_v6(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// A non-blocking UDP socket bound to `addr` (`[::]` serves IPv4 and IPv6). No
/// `SO_REUSEADDR`/`SO_REUSEPORT`: a port held by another process fails with `AddrInUse`.
fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() && addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        socket.set_only_v6(false)?;
    }
    // Bursts of packets arrive between two polls of the driver: give them room.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The tokio socket, and a second handle on it for `stop`.
fn into_tokio(s: std::net::UdpSocket) -> io::Result<(Arc<UdpSocket>, std::net::UdpSocket)> {
    let clone = s.try_clone()?;
    Ok((Arc::new(UdpSocket::from_std(s)?), clone))
}

impl SctpEndpoint {
    /// Binds a UDP socket (`[::]:port` serves IPv4 and IPv6) and starts the driver task. RFC
    /// 6951's well-known port is 9899; clients may use port 0.
    pub async fn bind(addr: SocketAddr, config: EndpointConfig) -> io::Result<Self> {
        let socket = udp_socket(addr)?;
        Self::start(socket, config, addr, None)
    }

    /// Binds in host port sharing mode (see [`crate::mux`]): `addr` is the host's IP (or the
    /// wildcard) and the well-known UDP port every sharing process of the host uses (9899).
    ///
    /// If the port is free this process becomes the **front**: it receives everything sent to
    /// the port, serves its own SCTP ports and forwards datagrams for the SCTP ports of the
    /// other sharing processes to them. Otherwise it binds an ephemeral UDP port on the same
    /// IP, sends all of its traffic from there, and registers its SCTP ports with the front
    /// ([`SctpEndpoint::listen`] then fails on a port another process holds). When the front
    /// exits, one of the others takes over. Uses [`ShareConfig::default`]'s timers.
    pub async fn bind_shared(addr: SocketAddr, config: EndpointConfig) -> io::Result<Self> {
        Self::bind_shared_with(addr, config, ShareConfig::default()).await
    }

    /// As [`SctpEndpoint::bind_shared`], with its own timers.
    pub async fn bind_shared_with(
        addr: SocketAddr,
        config: EndpointConfig,
        share: ShareConfig,
    ) -> io::Result<Self> {
        if addr.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "host port sharing needs the well-known port, not 0",
            ));
        }
        let (socket, front) = match udp_socket(addr) {
            Ok(s) => (s, true),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                (udp_socket(SocketAddr::new(addr.ip(), 0))?, false)
            }
            Err(e) => return Err(e),
        };
        Self::start(socket, config, addr, Some((share, front)))
    }

    fn start(
        socket: std::net::UdpSocket,
        config: EndpointConfig,
        bound: SocketAddr,
        share: Option<(ShareConfig, bool)>,
    ) -> io::Result<Self> {
        let (socket, farewell) = into_tokio(socket)?;
        let local = socket.local_addr()?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
        let now = Instant::now();
        let share = share.map(|(cfg, front)| {
            let mut s = seed;
            s[0] ^= 0x5a;
            if front {
                tracing::info!(%local, "host port sharing: this process is the front");
            } else {
                tracing::info!(
                    %local,
                    well_known = bound.port(),
                    "host port sharing: the well-known port is held, this process is a member"
                );
            }
            Share::new(cfg, from_v6(bound), front, local.port(), s, now)
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ep: Endpoint::new(config, seed, now),
                assocs: HashMap::new(),
                sinks_due: Vec::new(),
                listeners: HashMap::new(),
                stopped: false,
                guard: None,
                local,
                farewell: share.is_some().then_some(farewell),
                share,
            }),
            wake: Notify::new(),
            v6_socket: local.is_ipv6(),
            bound,
        });
        let guard = Arc::new(Guard {
            shared: shared.clone(),
        });
        shared.lock().guard = Some(Arc::downgrade(&guard));
        tokio::spawn(drive(socket, shared.clone()));
        Ok(Self { guard, shared })
    }

    /// The UDP address the endpoint sends from: the bound address, or with host port sharing
    /// the well-known port for the front and the process's own ephemeral port for a member.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.lock().local
    }

    /// The UDP port the endpoint sends from (see [`SctpEndpoint::local_addr`]).
    pub fn udp_port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Host port sharing: whether this process is the front (holds the well-known port).
    /// Always `false` for an endpoint made by [`SctpEndpoint::bind`].
    pub fn is_front(&self) -> bool {
        self.shared
            .lock()
            .share
            .as_ref()
            .is_some_and(|s| s.is_front())
    }

    /// Host port sharing: the counters (forwarded datagrams, refusals, takeovers, ...); `None`
    /// for an endpoint made by [`SctpEndpoint::bind`].
    pub fn share_stats(&self) -> Option<ShareStats> {
        Some(self.shared.lock().share.as_ref()?.stats(Instant::now()))
    }

    /// Host port sharing: the role and registration state, to watch for changes (a takeover,
    /// registration with a new front); `None` for an endpoint made by [`SctpEndpoint::bind`].
    pub fn share_state(&self) -> Option<watch::Receiver<ShareState>> {
        Some(self.shared.lock().share.as_ref()?.subscribe())
    }

    /// Accepts associations on an SCTP port.
    ///
    /// With host port sharing, a member first has the port granted by the front (one round
    /// trip over loopback); the call fails with [`ListenError::InUse`] when the front or
    /// another process holds the port, and with [`ListenError::NoFront`] when no front answers
    /// within [`ShareConfig::claim_timeout`]. A front that just took over grants its own ports
    /// only after its grace period (the members had the time to register theirs again).
    pub async fn listen(&self, port: u16) -> Result<Listener, ListenError> {
        if port == 0 {
            return Err(ListenError::InvalidPort);
        }
        {
            let st = self.shared.lock();
            if st.stopped {
                return Err(ListenError::EndpointClosed);
            }
            if st.listeners.contains_key(&port) {
                return Err(ListenError::AlreadyListening(port));
            }
        }
        let sharing = self.claim(port).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.shared.lock();
        let err = if st.stopped {
            Some(ListenError::EndpointClosed)
        } else if st.listeners.contains_key(&port) {
            Some(ListenError::AlreadyListening(port))
        } else {
            None
        };
        if let Some(e) = err {
            drop(st);
            if sharing {
                self.shared.release(port);
            }
            return Err(e);
        }
        st.ep.listen(port);
        st.listeners.insert(port, tx);
        Ok(Listener {
            port,
            rx,
            shared: self.shared.clone(),
            _guard: self.guard.clone(),
        })
    }

    /// Takes a reference on an SCTP port for a listener or an association (host port sharing:
    /// asks the front if needed). Returns whether sharing is on (the caller then owns the
    /// reference).
    async fn claim(&self, port: u16) -> Result<bool, ListenError> {
        let (rx, well_known, wait) = {
            let mut st = self.shared.lock();
            let Some(share) = st.share.as_mut() else {
                return Ok(false);
            };
            let well_known = share.well_known();
            let now = Instant::now();
            let wait = share.claim_wait(now);
            match share.claim(port, now) {
                Claim::Granted => return Ok(true),
                Claim::Refused(holder) => {
                    tracing::info!(port, %holder, "SCTP port refused: in use");
                    return Err(ListenError::InUse {
                        port,
                        well_known,
                        holder,
                    });
                }
                Claim::Pending(rx) => (rx, well_known, wait),
            }
        };
        // Send the REGISTER now.
        self.shared.wake.notify_one();
        // Until answered, the claim holds a reference on the port: it is dropped if this future
        // is dropped or times out. The driver answers claims under the state lock, so closing
        // the channel under it settles who drops the reference.
        struct Pending<'a> {
            shared: &'a Shared,
            port: u16,
            rx: oneshot::Receiver<Result<(), Holder>>,
            armed: bool,
        }
        impl Pending<'_> {
            /// Stops waiting: returns the answer that came meanwhile, if any. The reference is
            /// dropped unless a refusal dropped it already or (`keep_grant`) the port was granted.
            fn settle(&mut self, keep_grant: bool) -> Option<Result<(), Holder>> {
                self.armed = false;
                let mut st = self.shared.lock();
                self.rx.close();
                let answer = self.rx.try_recv().ok();
                let keep = match answer {
                    Some(Err(_)) => true,
                    Some(Ok(())) => keep_grant,
                    None => false,
                };
                if !keep {
                    if let Some(s) = st.share.as_mut() {
                        s.release(self.port);
                    }
                }
                self.shared.kick(st);
                answer
            }
        }
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                if self.armed {
                    self.settle(false);
                }
            }
        }
        let mut pending = Pending {
            shared: &self.shared,
            port,
            rx,
            armed: true,
        };
        let in_use = |holder| {
            tracing::info!(port, %holder, "SCTP port refused by the front: in use");
            ListenError::InUse {
                port,
                well_known,
                holder,
            }
        };
        match tokio::time::timeout(wait, &mut pending.rx).await {
            Ok(Ok(Ok(()))) => {
                pending.armed = false;
                Ok(true)
            }
            Ok(Ok(Err(holder))) => {
                // The refusal dropped the claim's reference.
                pending.armed = false;
                Err(in_use(holder))
            }
            Ok(Err(_)) => {
                pending.armed = false;
                Err(ListenError::EndpointClosed)
            }
            Err(_) => match pending.settle(true) {
                // Answered just as the time ran out.
                Some(Ok(())) => Ok(true),
                Some(Err(holder)) => Err(in_use(holder)),
                None => {
                    tracing::warn!(port, well_known, "no front answered a registration");
                    Err(ListenError::NoFront(well_known))
                }
            },
        }
    }

    /// Associates with a peer (its IPs with their UDP encapsulation ports, the first being the
    /// primary) on an SCTP port, from an ephemeral local SCTP port.
    pub async fn connect(
        &self,
        peers: &[SocketAddr],
        peer_port: u16,
    ) -> Result<Association, ConnectFailed> {
        self.connect_with(peers, peer_port, 0, None).await
    }

    /// As [`SctpEndpoint::connect`], from a given local SCTP port and with its own parameters.
    ///
    /// With host port sharing, an ephemeral local port is one no other sharing process holds,
    /// registered with the front; a given one must be granted like a listening port.
    pub async fn connect_with(
        &self,
        peers: &[SocketAddr],
        peer_port: u16,
        local_port: u16,
        config: Option<AssociationConfig>,
    ) -> Result<Association, ConnectFailed> {
        let sharing = self.shared.lock().share.is_some();
        let claimed = if sharing && local_port != 0 {
            match self.claim(local_port).await {
                Ok(_) => {}
                // Without a front the association still works from this endpoint's own UDP
                // port; only packets a peer sends to the well-known port miss it.
                Err(ListenError::NoFront(_)) => {
                    tracing::warn!(
                        local_port,
                        "no front: associating without registering the port"
                    );
                }
                Err(ListenError::EndpointClosed) => return Err(ConnectFailed::EndpointClosed),
                Err(e) => return Err(ConnectFailed::LocalPort(e)),
            }
            Some(local_port)
        } else {
            None
        };
        let (tx, rx) = oneshot::channel();
        let assoc = {
            let mut st = self.shared.lock();
            let now = Instant::now();
            let port = match (claimed, st.share.as_mut()) {
                (Some(p), _) => Some(p),
                (None, Some(share)) => Some(share.take_ephemeral(now)),
                (None, None) => None,
            };
            let r = if st.stopped {
                Err(ConnectFailed::EndpointClosed)
            } else {
                st.ep
                    .connect(now, port.unwrap_or(local_port), peers, peer_port, config)
                    .map_err(ConnectFailed::from)
            };
            let id = match r {
                Ok(id) => id,
                Err(e) => {
                    if let (Some(p), Some(share)) = (port, st.share.as_mut()) {
                        share.release(p);
                    }
                    return Err(e);
                }
            };
            let a = register(&self.shared, &self.guard, &mut st, id, port);
            st.assocs.get_mut(&id).expect("just registered").connect = Some(tx);
            a
        };
        self.shared.wake.notify_one();
        match rx.await {
            Ok(Ok(())) => Ok(assoc),
            Ok(Err(r)) => Err(ConnectFailed::Lost(r)),
            Err(_) => Err(ConnectFailed::EndpointClosed),
        }
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> EndpointStats {
        self.shared.lock().ep.stats().clone()
    }

    /// Number of associations held.
    pub fn association_count(&self) -> usize {
        self.shared.lock().ep.association_count()
    }

    /// Stops the driver: every association is aborted and every handle sees `EndpointClosed`.
    /// With host port sharing, a front says goodbye to its members (one of them takes over)
    /// and a member withdraws its SCTP ports.
    pub fn close(&self) {
        stop(&self.shared);
    }
}

/// Creates the handle of an association; `port`: the shared SCTP port reference it owns.
fn register(
    shared: &Arc<Shared>,
    guard: &Arc<Guard>,
    st: &mut State,
    id: AssocId,
    port: Option<u16>,
) -> Association {
    let notify = Arc::new(Notify::new());
    let (etx, erx) = mpsc::unbounded_channel();
    st.assocs.insert(
        id,
        AssocSlot {
            notify: notify.clone(),
            sink: None,
            closed: None,
            events: etx,
            events_rx: Some(erx),
            connect: None,
            port,
        },
    );
    Association {
        id,
        shared: shared.clone(),
        notify,
        _guard: guard.clone(),
    }
}

impl Listener {
    /// The next association a peer set up on this port.
    pub async fn accept(&mut self) -> Option<Association> {
        self.rx.recv().await
    }

    /// The SCTP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.ep.unlisten(self.port);
        st.listeners.remove(&self.port);
        if let Some(s) = st.share.as_mut() {
            s.release(self.port);
        }
        self.shared.kick(st);
    }
}
impl Association {
    /// The association's id within its endpoint.
    pub fn id(&self) -> AssocId {
        self.id
    }

    fn closed(&self, st: &State) -> Option<Closed> {
        if st.stopped {
            return Some(Closed::EndpointClosed);
        }
        match st.assocs.get(&self.id) {
            Some(s) => s.closed.clone(),
            None => Some(Closed::EndpointClosed),
        }
    }

    /// Sends a message on a stream with a PPID, ordered; waits while the send buffer is full.
    pub async fn send(&self, stream: u16, ppid: u32, data: Bytes) -> Result<(), SendError> {
        self.send_with(stream, ppid, false, data).await
    }

    /// Sends a message, unordered if asked; waits while the send buffer is full.
    pub async fn send_with(
        &self,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: Bytes,
    ) -> Result<(), SendError> {
        let opts = SendOptions {
            stream,
            ppid,
            unordered,
            lifetime: None,
        };
        self.send_message(opts, data).await
    }

    /// Sends a message as `opts` say; waits while the send buffer is full (the lifetime runs
    /// from this call).
    pub async fn send_message(&self, opts: SendOptions, data: Bytes) -> Result<(), SendError> {
        let expires = opts.lifetime.map(|l| Instant::now() + l);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if self.closed(&st).is_some() {
                    return Err(SendError::NotEstablished);
                }
                match st.ep.send_expiring(
                    self.id,
                    opts.stream,
                    opts.ppid,
                    opts.unordered,
                    data.clone(),
                    expires,
                ) {
                    Ok(()) => {
                        self.shared.kick(st);
                        return Ok(());
                    }
                    Err(SendError::WouldBlock) => {}
                    Err(e) => return Err(e),
                }
            }
            notified.await;
        }
    }

    /// Tries to queue a message without waiting.
    pub fn try_send(
        &self,
        stream: u16,
        ppid: u32,
        unordered: bool,
        data: Bytes,
    ) -> Result<(), SendError> {
        let opts = SendOptions {
            stream,
            ppid,
            unordered,
            lifetime: None,
        };
        self.try_send_message(opts, data)
    }

    /// Tries to queue a message as `opts` say, without waiting.
    pub fn try_send_message(&self, opts: SendOptions, data: Bytes) -> Result<(), SendError> {
        let expires = opts.lifetime.map(|l| Instant::now() + l);
        let mut st = self.shared.lock();
        st.ep.send_expiring(
            self.id,
            opts.stream,
            opts.ppid,
            opts.unordered,
            data,
            expires,
        )?;
        self.shared.kick(st);
        Ok(())
    }

    /// Whether [`recv`](Self::recv) would return a message at once.
    pub fn readable(&self) -> bool {
        self.shared.lock().ep.readable(self.id)
    }

    /// Bytes of send buffer free now: a message of up to that size is queued without waiting
    /// (0 when the association is not established).
    pub fn send_capacity(&self) -> usize {
        let st = self.shared.lock();
        if self.closed(&st).is_some() {
            return 0;
        }
        st.ep.send_capacity(self.id)
    }

    /// Waits until a message is waiting or the association has ended, without taking it:
    /// [`recv`](Self::recv) then returns at once.
    pub async fn wait_readable(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.shared.lock();
                if st.ep.readable(self.id) || self.closed(&st).is_some() {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Hands every message from now on to `sink`, in order, in the endpoint's driver task, in
    /// batches of those that arrived together ([`Delivery::Messages`]), and then once the
    /// reason the association ended ([`Delivery::Ended`]); [`recv`](Self::recv) gets nothing
    /// any more. Saves the task switch to a reader task per message. `sink` must not block:
    /// the whole endpoint waits for it. It may send on the association, and drop it.
    pub fn set_sink(&self, sink: impl FnMut(Delivery) + Send + 'static) {
        let mut st = self.shared.lock();
        let ended = st.stopped;
        match st.assocs.get_mut(&self.id) {
            Some(slot) if !ended => {
                slot.sink = Some(Box::new(sink));
                // What is waiting already, or the end, goes to it at once.
                st.sinks_due.push(self.id);
                self.shared.kick(st);
            }
            _ => {
                drop(st);
                let mut sink = sink;
                sink(Delivery::Ended(Closed::EndpointClosed));
            }
        }
    }

    /// The next message. After a graceful shutdown or a loss, the messages received before it
    /// are still returned, then the reason.
    pub async fn recv(&self) -> Result<Message, Closed> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(m) = st.ep.recv(self.id) {
                    // Reading may open the window: a window update may go out.
                    self.shared.kick(st);
                    return Ok(m);
                }
                if let Some(c) = self.closed(&st) {
                    return Err(c);
                }
            }
            notified.await;
        }
    }

    /// The association's other events (path changes, peer shutdown, restarts, send failures),
    /// once: a second call returns `None`.
    pub fn events(&self) -> Option<mpsc::UnboundedReceiver<Event>> {
        self.shared
            .lock()
            .assocs
            .get_mut(&self.id)?
            .events_rx
            .take()
    }

    /// Waits until the association has ended; returns why.
    pub async fn closed_reason(&self) -> Closed {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(c) = self.closed(&self.shared.lock()) {
                return c;
            }
            notified.await;
        }
    }

    /// Starts a graceful shutdown: queued messages are delivered first.
    pub fn shutdown(&self) {
        self.shared.lock().ep.shutdown(self.id, Instant::now());
        self.shared.wake.notify_one();
    }

    /// Aborts the association.
    pub fn abort(&self) {
        self.shared.lock().ep.abort(self.id);
        self.shared.wake.notify_one();
    }

    /// A snapshot of the association (state, paths, RTOs).
    pub fn info(&self) -> Option<AssociationInfo> {
        self.shared.lock().ep.association(self.id)
    }

    /// Makes the path to `ip` the primary.
    pub fn set_primary(&self, ip: IpAddr) -> bool {
        self.shared.lock().ep.set_primary(self.id, ip)
    }
}

impl std::fmt::Debug for Association {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Association").field("id", &self.id).finish()
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("port", &self.port)
            .finish()
    }
}

impl std::fmt::Debug for SctpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SctpEndpoint")
            .field("local", &self.local_addr())
            .field("front", &self.is_front())
            .finish()
    }
}

impl Drop for Association {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.assocs.get(&self.id).is_some_and(|s| s.closed.is_none()) {
            st.ep.abort(self.id);
        }
        let slot = st.assocs.remove(&self.id);
        if let (Some(port), Some(share)) = (slot.and_then(|s| s.port), st.share.as_mut()) {
            share.release(port);
        }
        drop(st);
        self.shared.wake.notify_one();
    }
}

/// Moves events from the endpoint to the handles; returns the packets to send.
fn process(shared: &Arc<Shared>, st: &mut State, out: &mut Vec<Transmit>) {
    let now = Instant::now();
    while let Some(t) = st.ep.poll_transmit(now) {
        out.push(t);
    }
    while let Some((id, e)) = st.ep.poll_event() {
        if let Event::Connected { incoming: true } = e {
            let port = st.ep.association(id).map(|a| a.local_port);
            let guard = st.guard.as_ref().and_then(std::sync::Weak::upgrade);
            match (port.and_then(|p| st.listeners.get(&p).cloned()), guard) {
                (Some(tx), Some(guard)) => {
                    // With host port sharing the association holds its port too (it outlives
                    // the listener).
                    let held = match (port, st.share.as_mut()) {
                        (Some(p), Some(share)) => {
                            share.retain(p);
                            Some(p)
                        }
                        _ => None,
                    };
                    let a = register(shared, &guard, st, id, held);
                    if let Err(rejected) = tx.send(a) {
                        // The listener is gone: the handle's drop aborts the association.
                        drop(rejected);
                    }
                }
                _ => st.ep.abort(id),
            }
            continue;
        }
        let Some(slot) = st.assocs.get_mut(&id) else {
            continue;
        };
        let sink = slot.sink.is_some();
        match &e {
            Event::Connected { .. } => {
                if let Some(c) = slot.connect.take() {
                    let _ = c.send(Ok(()));
                }
            }
            Event::Readable | Event::Writable => slot.notify.notify_waiters(),
            Event::Lost(r) => {
                slot.closed = Some(Closed::Lost(r.clone()));
                if let Some(c) = slot.connect.take() {
                    let _ = c.send(Err(r.clone()));
                }
                slot.notify.notify_waiters();
            }
            Event::Closed => {
                slot.closed = Some(Closed::Shutdown);
                slot.notify.notify_waiters();
            }
            _ => {}
        }
        let due = sink && matches!(e, Event::Readable | Event::Lost(_) | Event::Closed);
        if !matches!(e, Event::Readable | Event::Writable) {
            let _ = slot.events.send(e);
        }
        if due {
            st.sinks_due.push(id);
        }
    }
    // Output that the events above caused (aborts of unwanted associations).
    while let Some(t) = st.ep.poll_transmit(now) {
        out.push(t);
    }
}

/// Runs the sinks that have something, outside the lock (a sink may send, or drop its
/// association); returns whether any ran.
fn deliver_to_sinks(sh: &Shared) -> bool {
    let mut ran = false;
    loop {
        let (id, mut sink, batch, end) = {
            let mut st = sh.lock();
            let Some(id) = st.sinks_due.pop() else {
                return ran;
            };
            let Some(sink) = st.assocs.get_mut(&id).and_then(|s| s.sink.take()) else {
                continue;
            };
            let mut batch = Vec::new();
            while let Some(m) = st.ep.recv(id) {
                batch.push(m);
            }
            let end = st.assocs.get(&id).and_then(|s| s.closed.clone());
            (id, sink, batch, end)
        };
        ran = true;
        if !batch.is_empty() {
            sink(Delivery::Messages(batch));
        }
        if let Some(c) = end {
            // The last call: the sink goes with it.
            sink(Delivery::Ended(c));
            continue;
        }
        if let Some(slot) = sh.lock().assocs.get_mut(&id) {
            slot.sink = Some(sink);
        }
    }
}

/// Feeds one received datagram to the endpoint, or (host port sharing) to the sharing logic.
/// `at_well_known`: it arrived at the front's well-known port.
fn on_datagram(st: &mut State, now: Instant, at_well_known: bool, from: SocketAddr, d: &[u8]) {
    let State { ep, share, .. } = st;
    let Some(share) = share.as_mut() else {
        ep.handle(now, from, Bytes::copy_from_slice(d));
        return;
    };
    if mux::is_control(d) {
        if at_well_known {
            share.on_front_control(now, from, d);
        } else if let Some((orig, inner)) = share.on_member_control(now, from, d) {
            ep.handle(now, orig, Bytes::copy_from_slice(inner));
        }
        return;
    }
    if !at_well_known {
        ep.handle(now, from, Bytes::copy_from_slice(d));
        return;
    }
    match share.route(now, d) {
        Route::Local => ep.handle(now, from, Bytes::copy_from_slice(d)),
        Route::Forward(to) => share.forward(to, from, d),
        Route::Drop => {}
    }
}

/// The sockets of a driver: the one it sends from (with host port sharing, the front's is the
/// well-known port) and, after a takeover, the member's old own port, still received on.
struct Sockets {
    primary: Arc<UdpSocket>,
    secondary: Option<Arc<UdpSocket>>,
}

/// Host port sharing: the front seems gone; try to bind the well-known port.
fn try_take_over(sh: &Shared, io: &mut Sockets) {
    let addr = {
        let st = sh.lock();
        match st.share.as_ref() {
            Some(s) if !s.is_front() && !st.stopped => s.well_known_addr(sh.bound),
            _ => return,
        }
    };
    let bound = udp_socket(addr).and_then(into_tokio);
    let mut st = sh.lock();
    let now = Instant::now();
    match bound {
        Ok((sock, clone)) => {
            let Ok(local) = sock.local_addr() else {
                return;
            };
            st.local = local;
            st.farewell = Some(clone);
            if let Some(s) = st.share.as_mut() {
                s.took_over(now, local.port());
                s.publish(now);
            }
            io.secondary = Some(std::mem::replace(&mut io.primary, sock));
        }
        Err(e) => {
            tracing::debug!(%addr, error = %e, "the well-known port is held: not taking over");
            if let Some(s) = st.share.as_mut() {
                s.bind_failed(now);
            }
        }
    }
}

async fn drive(socket: Arc<UdpSocket>, sh: Arc<Shared>) {
    let mut io = Sockets {
        primary: socket,
        secondary: None,
    };
    let mut buf = vec![0u8; 65536];
    let mut buf2 = vec![0u8; 65536];
    let mut out: Vec<Transmit> = Vec::new();
    let mut ctl: Vec<(SocketAddr, Bytes)> = Vec::new();
    loop {
        let (deadline, take_over) = {
            let mut st = sh.lock();
            let now = Instant::now();
            let stopped = st.stopped;
            let take_over = match st.share.as_mut() {
                Some(s) if !stopped => s.handle_timeout(now),
                _ => false,
            };
            process(&sh, &mut st, &mut out);
            if let Some(s) = st.share.as_mut() {
                s.publish(now);
                ctl.append(&mut s.out);
            }
            if st.stopped && out.is_empty() {
                let mut sinks = Vec::new();
                for slot in st.assocs.values_mut() {
                    slot.closed.get_or_insert(Closed::EndpointClosed);
                    slot.notify.notify_waiters();
                    slot.connect.take();
                    sinks.extend(slot.sink.take());
                }
                st.listeners.clear();
                drop(st);
                for mut sink in sinks {
                    sink(Delivery::Ended(Closed::EndpointClosed));
                }
                return;
            }
            let share_deadline = st.share.as_ref().and_then(|s| s.poll_timeout());
            let deadline = match (st.ep.poll_timeout(), share_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (deadline, take_over)
        };
        if take_over {
            try_take_over(&sh, &mut io);
        }
        for t in out.drain(..) {
            let dst = sh.dst(t.destination);
            if let Err(e) = io.primary.send_to(&t.payload, dst).await {
                tracing::debug!(%dst, error = %e, "UDP send failed");
            }
        }
        for (dst, b) in ctl.drain(..) {
            let dst = sh.dst(dst);
            if let Err(e) = io.primary.send_to(&b, dst).await {
                tracing::debug!(%dst, error = %e, "UDP send of a host-sharing message failed");
            }
        }
        if take_over {
            // A takeover (or its failure) changed what to send: go round once more.
            continue;
        }
        if deliver_to_sinks(&sh) {
            // Reading may have opened windows, and the sinks may have sent: go round once
            // more for what that queued.
            continue;
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let secondary = async {
            match &io.secondary {
                Some(s) => s.recv_from(&mut buf2).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = io.primary.recv_from(&mut buf) => {
                let mut st = sh.lock();
                let now = Instant::now();
                // The primary socket is the well-known port exactly when this is the front.
                let wk = st.share.as_ref().is_some_and(|s| s.is_front());
                if let Ok((n, from)) = r {
                    on_datagram(&mut st, now, wk, from_v6(from), &buf[..n]);
                }
                // Drain whatever else is queued, under the same lock.
                while let Ok((n, from)) = io.primary.try_recv_from(&mut buf) {
                    on_datagram(&mut st, now, wk, from_v6(from), &buf[..n]);
                }
                if st.ep.poll_timeout().is_some_and(|t| t <= now) {
                    st.ep.handle_timeout(now);
                }
            }
            r = secondary => {
                let mut st = sh.lock();
                let now = Instant::now();
                if let Ok((n, from)) = r {
                    on_datagram(&mut st, now, false, from_v6(from), &buf2[..n]);
                }
                if let Some(s) = &io.secondary {
                    while let Ok((n, from)) = s.try_recv_from(&mut buf2) {
                        on_datagram(&mut st, now, false, from_v6(from), &buf2[..n]);
                    }
                }
                if st.ep.poll_timeout().is_some_and(|t| t <= now) {
                    st.ep.handle_timeout(now);
                }
            }
            _ = sleep => {
                sh.lock().ep.handle_timeout(Instant::now());
            }
            _ = sh.wake.notified() => {}
        }
    }
}
