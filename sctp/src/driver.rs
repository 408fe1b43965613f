//! The tokio driver: one UDP socket, the sans-IO [`Endpoint`], and an async API.
//!
//! A background task owns the socket and the protocol timers; [`SctpEndpoint`],
//! [`Association`] and [`Listener`] are handles that talk to it. One socket serves every SCTP
//! port the endpoint listens on or connects from.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bytes::Bytes;
//! use rserpool_sctp::{EndpointConfig, SctpEndpoint};
//!
//! let server = SctpEndpoint::bind("127.0.0.1:9899".parse().unwrap(), EndpointConfig::default()).await?;
//! let mut listener = server.listen(3863);
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
use tokio::sync::{Notify, mpsc, oneshot};

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
}

/// Non-data events of an association, as its [`Association::events`] yields them.
pub type AssociationEvent = Event;

struct AssocSlot {
    notify: Arc<Notify>,
    closed: Option<Closed>,
    events: mpsc::UnboundedSender<Event>,
    events_rx: Option<mpsc::UnboundedReceiver<Event>>,
    connect: Option<oneshot::Sender<Result<(), LostReason>>>,
}

struct State {
    ep: Endpoint,
    /// The user-facing guard, while one exists (accepted associations take a reference).
    guard: Option<std::sync::Weak<Guard>>,
    assocs: HashMap<AssocId, AssocSlot>,
    listeners: HashMap<u16, mpsc::UnboundedSender<Association>>,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: output may be pending, or deadlines changed.
    wake: Notify,
    local: SocketAddr,
    v6_socket: bool,
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

impl SctpEndpoint {
    /// Binds a UDP socket (`[::]:port` serves IPv4 and IPv6) and starts the driver task. RFC
    /// 6951's well-known port is 9899; clients may use port 0.
    pub async fn bind(addr: SocketAddr, config: EndpointConfig) -> io::Result<Self> {
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
        let socket = Arc::new(UdpSocket::from_std(socket.into())?);
        let local = socket.local_addr()?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ep: Endpoint::new(config, seed, Instant::now()),
                assocs: HashMap::new(),
                listeners: HashMap::new(),
                stopped: false,
                guard: None,
            }),
            wake: Notify::new(),
            local,
            v6_socket: local.is_ipv6(),
        });
        let guard = Arc::new(Guard {
            shared: shared.clone(),
        });
        shared.lock().guard = Some(Arc::downgrade(&guard));
        tokio::spawn(drive(socket, shared.clone()));
        Ok(Self { guard, shared })
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Accepts associations on an SCTP port.
    pub fn listen(&self, port: u16) -> Listener {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.shared.lock();
        st.ep.listen(port);
        st.listeners.insert(port, tx);
        Listener {
            port,
            rx,
            shared: self.shared.clone(),
            _guard: self.guard.clone(),
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
    pub async fn connect_with(
        &self,
        peers: &[SocketAddr],
        peer_port: u16,
        local_port: u16,
        config: Option<AssociationConfig>,
    ) -> Result<Association, ConnectFailed> {
        let (tx, rx) = oneshot::channel();
        let assoc = {
            let mut st = self.shared.lock();
            if st.stopped {
                return Err(ConnectFailed::EndpointClosed);
            }
            let id = st
                .ep
                .connect(Instant::now(), local_port, peers, peer_port, config)?;
            let a = register(&self.shared, &self.guard, &mut st, id);
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
    pub fn close(&self) {
        stop(&self.shared);
    }
}

fn register(shared: &Arc<Shared>, guard: &Arc<Guard>, st: &mut State, id: AssocId) -> Association {
    let notify = Arc::new(Notify::new());
    let (etx, erx) = mpsc::unbounded_channel();
    st.assocs.insert(
        id,
        AssocSlot {
            notify: notify.clone(),
            closed: None,
            events: etx,
            events_rx: Some(erx),
            connect: None,
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
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if self.closed(&st).is_some() {
                    return Err(SendError::NotEstablished);
                }
                match st.ep.send(self.id, stream, ppid, unordered, data.clone()) {
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
        let mut st = self.shared.lock();
        st.ep.send(self.id, stream, ppid, unordered, data)?;
        self.shared.kick(st);
        Ok(())
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

impl std::fmt::Debug for SctpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SctpEndpoint")
            .field("local", &self.shared.local)
            .finish()
    }
}

impl Drop for Association {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.assocs.get(&self.id).is_some_and(|s| s.closed.is_none()) {
            st.ep.abort(self.id);
        }
        st.assocs.remove(&self.id);
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
                    let a = register(shared, &guard, st, id);
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
        if !matches!(e, Event::Readable | Event::Writable) {
            let _ = slot.events.send(e);
        }
    }
    // Output that the events above caused (aborts of unwanted associations).
    while let Some(t) = st.ep.poll_transmit(now) {
        out.push(t);
    }
}

async fn drive(socket: Arc<UdpSocket>, sh: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    let mut out: Vec<Transmit> = Vec::new();
    loop {
        let deadline = {
            let mut st = sh.lock();
            process(&sh, &mut st, &mut out);
            if st.stopped && out.is_empty() {
                for slot in st.assocs.values_mut() {
                    slot.closed.get_or_insert(Closed::EndpointClosed);
                    slot.notify.notify_waiters();
                    slot.connect.take();
                }
                st.listeners.clear();
                return;
            }
            st.ep.poll_timeout()
        };
        for t in out.drain(..) {
            let dst = sh.dst(t.destination);
            if let Err(e) = socket.send_to(&t.payload, dst).await {
                tracing::debug!(%dst, error = %e, "UDP send failed");
            }
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let mut st = sh.lock();
                let now = Instant::now();
                if let Ok((n, from)) = r {
                    st.ep.handle(now, from_v6(from), Bytes::copy_from_slice(&buf[..n]));
                }
                // Drain whatever else is queued, under the same lock.
                while let Ok((n, from)) = socket.try_recv_from(&mut buf) {
                    st.ep.handle(now, from_v6(from), Bytes::copy_from_slice(&buf[..n]));
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
