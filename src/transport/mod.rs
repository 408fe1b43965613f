//! The transport seam: associations that carry messages with a PPID, whatever protocol is
//! underneath. Today that is rserpool's own SCTP over UDP (RFC 6951); kernel SCTP and the TCP
//! mapping will be further variants of [`Endpoint`] and [`Association`]. Above this module
//! nothing knows which transport carries an association.
//!
//! # Sharing the host's encapsulation port
//!
//! RFC 6951 has one well-known UDP port per host (9899), and kernel SCTP peers (Linux,
//! RSPLIB on Linux) send the first packet of every association to it, whatever the SCTP port.
//! Several rserpool processes share a host, so by default an [`Endpoint`] binds in *host port
//! sharing* mode ([`rserpool_sctp::mux`]): the first process to start holds UDP 9899 (the
//! registrar, when one runs on the host) and forwards datagrams for the SCTP ports of the
//! others to them over loopback; every other process sends from its own ephemeral UDP port,
//! which peers (Linux since 5.11, rserpool) learn from the first packet they receive. A pool
//! user thus reaches any PE at `PE address : 9899` and the PE's SCTP port, as the PE
//! registered it, and the conversation continues directly with the PE's own UDP port.

pub mod announce;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rserpool_sctp::{AssociationConfig, EndpointConfig, SctpEndpoint};

pub use rserpool_sctp::{Closed, Delivery, Message, SendOptions};

/// Why a message was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The send buffer is full ([`Association::try_send_message`] only; `send_message` waits).
    #[error("send buffer full")]
    WouldBlock,
    /// The association is not established (any more): it is shutting down, lost or closed.
    #[error("association closed")]
    Closed,
    /// The stream is not one of the association's outbound streams.
    #[error("stream {0} does not exist on this association")]
    InvalidStream(u16),
    /// Messages must have at least one byte.
    #[error("empty message")]
    Empty,
    /// The message is larger than the send buffer.
    #[error("message of {0} bytes exceeds the send buffer")]
    TooLarge(usize),
}

impl From<rserpool_sctp::SendError> for SendError {
    fn from(e: rserpool_sctp::SendError) -> Self {
        use rserpool_sctp::SendError as S;
        match e {
            S::WouldBlock => Self::WouldBlock,
            S::NotEstablished | S::UnknownAssociation => Self::Closed,
            S::InvalidStream(s) => Self::InvalidStream(s),
            S::Empty => Self::Empty,
            S::TooLarge(n) => Self::TooLarge(n),
        }
    }
}

/// RFC 6951's well-known UDP encapsulation port.
pub const SCTP_UDP_PORT: u16 = crate::wire::SCTP_UDP_PORT;

/// How an [`Endpoint`] is set up.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The local address to bind (the wildcard by default).
    pub local: IpAddr,
    /// The UDP encapsulation port: the host's well-known port when sharing (9899), else the
    /// port to bind (0: any).
    pub udp_port: u16,
    /// Share the well-known port with the other rserpool processes of the host (see the
    /// [module documentation](self)). Without sharing, the endpoint binds `udp_port` alone.
    pub share_host: bool,
    /// The UDP port peers are assumed to listen on until one is heard from (9899).
    pub remote_udp_port: u16,
    /// SCTP parameters of new associations.
    pub association: AssociationConfig,
    /// Most associations at once.
    pub max_associations: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port: SCTP_UDP_PORT,
            share_host: true,
            remote_udp_port: SCTP_UDP_PORT,
            association: default_association_config(),
            max_associations: 65536,
        }
    }
}

/// The SCTP parameters rserpool uses by default for ASAP: RFC 9260's, except for faster
/// failure detection (RTO 200 ms – 3 s, heartbeat every second, 5 retransmissions), so a
/// registrar notices a dead PE, and a PE a dead registrar, within seconds.
pub fn default_association_config() -> AssociationConfig {
    AssociationConfig {
        rto_initial: Duration::from_millis(500),
        rto_min: Duration::from_millis(200),
        rto_max: Duration::from_secs(3),
        max_retrans: 5,
        path_max_retrans: 3,
        heartbeat_interval: Some(Duration::from_secs(1)),
        sack_delay: Duration::from_millis(100),
        ..AssociationConfig::default()
    }
}

/// A local endpoint: accepts and opens associations.
#[derive(Clone)]
pub struct Endpoint {
    sctp: SctpEndpoint,
    remote_udp_port: u16,
}

impl Endpoint {
    /// Binds the endpoint.
    pub async fn bind(config: &TransportConfig) -> io::Result<Self> {
        let ep_config = EndpointConfig {
            max_associations: config.max_associations,
            default_remote_udp_port: config.remote_udp_port,
            association: config.association.clone(),
            ..EndpointConfig::default()
        };
        let addr = SocketAddr::new(config.local, config.udp_port);
        let sctp = if config.share_host {
            SctpEndpoint::bind_shared(addr, ep_config).await?
        } else {
            SctpEndpoint::bind(addr, ep_config).await?
        };
        Ok(Self {
            sctp,
            remote_udp_port: config.remote_udp_port,
        })
    }

    /// The SCTP endpoint underneath (for applications that serve their own SCTP ports on it).
    pub fn sctp(&self) -> &SctpEndpoint {
        &self.sctp
    }

    /// The UDP address this endpoint sends from.
    pub fn udp_local_addr(&self) -> SocketAddr {
        self.sctp.local_addr()
    }

    /// Accepts associations on an SCTP port. Fails with [`io::ErrorKind::AddrInUse`] when
    /// another process of the host serves the port, and with [`io::ErrorKind::NotConnected`]
    /// when the endpoint shares the host's port but no process fronts it (the port is held by
    /// a program that does not share it, or by one bound to another address).
    pub async fn listen(&self, port: u16) -> io::Result<Listener> {
        let l = self.sctp.listen(port).await.map_err(|e| {
            let kind = match e {
                rserpool_sctp::ListenError::InUse { .. }
                | rserpool_sctp::ListenError::AlreadyListening(_) => io::ErrorKind::AddrInUse,
                rserpool_sctp::ListenError::InvalidPort => io::ErrorKind::InvalidInput,
                rserpool_sctp::ListenError::NoFront(_) => io::ErrorKind::NotConnected,
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, e)
        })?;
        Ok(Listener(l))
    }

    /// Opens an association to `remote` (the peer's addresses with its SCTP port), from
    /// `local_port` (0: any).
    pub async fn connect(&self, remote: &[SocketAddr], local_port: u16) -> io::Result<Association> {
        self.connect_with(remote, local_port, None).await
    }

    /// As [`Endpoint::connect`], with SCTP parameters of its own (e.g. faster failure
    /// detection for a pool user's session with a PE).
    pub async fn connect_with(
        &self,
        remote: &[SocketAddr],
        local_port: u16,
        config: Option<AssociationConfig>,
    ) -> io::Result<Association> {
        let Some(first) = remote.first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no address"));
        };
        let port = first.port();
        let peers: Vec<SocketAddr> = remote
            .iter()
            .map(|a| SocketAddr::new(a.ip(), self.remote_udp_port))
            .collect();
        self.sctp
            .connect_with(&peers, port, local_port, config)
            .await
            .map(Association)
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e))
    }

    /// Stops the endpoint: every association is aborted.
    pub fn close(&self) {
        self.sctp.close();
    }
}

/// Accepts associations on one SCTP port.
pub struct Listener(rserpool_sctp::Listener);

impl Listener {
    /// The next association; `None` once the endpoint is closed.
    pub async fn accept(&mut self) -> Option<Association> {
        self.0.accept().await.map(Association)
    }

    /// The SCTP port.
    pub fn port(&self) -> u16 {
        self.0.port()
    }
}

/// What is known of the far end of an association.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Peer {
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its SCTP port.
    pub port: u16,
    /// Our SCTP port.
    pub local_port: u16,
    /// The smoothed round-trip time of the primary path, once measured.
    pub rtt: Option<Duration>,
}

/// An association: messages with a PPID, both ways.
pub struct Association(rserpool_sctp::Association);

impl Association {
    /// Sends a message as `opts` say (stream, PPID, unordered, lifetime); waits while the send
    /// buffer is full.
    pub async fn send_message(&self, opts: SendOptions, data: Bytes) -> Result<(), SendError> {
        Ok(self.0.send_message(opts, data).await?)
    }

    /// Queues a message as `opts` say without waiting.
    pub fn try_send_message(&self, opts: SendOptions, data: Bytes) -> Result<(), SendError> {
        Ok(self.0.try_send_message(opts, data)?)
    }

    /// The next message with its stream, PPID and ordering, or why the association ended.
    pub async fn recv_message(&self) -> Result<Message, Closed> {
        self.0.recv().await
    }

    /// Hands every message from now on to `sink` in the transport's own task, in batches of
    /// those that arrived together, then once why the association ended
    /// ([`recv_message`](Self::recv_message) gets nothing any more): one task switch less per
    /// message than a reader task. `sink` must not block.
    pub fn set_sink(&self, sink: impl FnMut(Delivery) + Send + 'static) {
        self.0.set_sink(sink)
    }

    /// Whether [`recv_message`](Self::recv_message) would return at once with a message.
    pub fn readable(&self) -> bool {
        self.0.readable()
    }

    /// Bytes of send buffer free now (0 once the association is not established).
    pub fn send_capacity(&self) -> usize {
        self.0.send_capacity()
    }

    /// Waits until a message is waiting or the association has ended.
    pub async fn wait_readable(&self) {
        self.0.wait_readable().await
    }

    /// Sends a message on stream 0, ordered; waits while the send buffer is full.
    pub async fn send(&self, ppid: u32, data: Bytes) -> Result<(), SendError> {
        Ok(self.0.send(0, ppid, data).await?)
    }

    /// Queues a message without waiting; `false` if the association is gone or its send
    /// buffer is full.
    pub fn try_send(&self, ppid: u32, data: Bytes) -> bool {
        self.0.try_send(0, ppid, false, data).is_ok()
    }

    /// The next message (PPID, data), or why the association ended.
    pub async fn recv(&self) -> Result<(u32, Bytes), Closed> {
        self.0.recv().await.map(|m| (m.ppid, m.data))
    }

    /// The peer, as far as known.
    pub fn peer(&self) -> Option<Peer> {
        let info = self.0.info()?;
        let mut addresses: Vec<IpAddr> = Vec::new();
        for p in &info.paths {
            let ip = p.address.ip().to_canonical();
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
        Some(Peer {
            addresses,
            port: info.peer_port,
            local_port: info.local_port,
            rtt: info.paths.iter().find(|p| p.primary).and_then(|p| p.srtt),
        })
    }

    /// Starts a graceful shutdown.
    pub fn shutdown(&self) {
        self.0.shutdown();
    }

    /// Aborts the association.
    pub fn abort(&self) {
        self.0.abort();
    }

    /// Waits until the association has ended.
    pub async fn closed(&self) -> Closed {
        self.0.closed_reason().await
    }
}

/// The local address this host uses to reach `remote` (no packet is sent: a connected UDP
/// socket only picks the route). Used to fill a PE's user transport.
pub fn local_address_towards(remote: IpAddr) -> io::Result<IpAddr> {
    let bind: SocketAddr = match remote {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect((remote, 9))?;
    Ok(s.local_addr()?.ip())
}

/// Sleeps until a sans-IO core's next deadline, forever when it has none: the timer arm of a
/// driver loop.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Feeds an association to a driver: each message received becomes `wrap(Ok(message))` on
/// `inputs`, and the end of the association a last `wrap(Err(why))`.
pub(crate) fn spawn_reader<T: Send + 'static>(
    assoc: Arc<Association>,
    inputs: tokio::sync::mpsc::UnboundedSender<T>,
    wrap: impl Fn(Result<Message, Closed>) -> T + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            let message = assoc.recv_message().await;
            let end = message.is_err();
            if inputs.send(wrap(message)).is_err() || end {
                return;
            }
        }
    });
}

/// Feeds an association to a driver without a reader task: each batch of messages, then the
/// end, goes to `feed` with the driver's shared state, in the transport's task, for as long as
/// that state lives ([`Association::set_sink`]).
pub(crate) fn attach_sink<S: Send + Sync + 'static>(
    assoc: &Association,
    target: &Arc<S>,
    feed: impl Fn(&Arc<S>, Delivery) + Send + 'static,
) {
    let target = Arc::downgrade(target);
    assoc.set_sink(move |m| {
        if let Some(t) = target.upgrade() {
            feed(&t, m);
        }
    });
}

/// The transport's options for a message the session layer sends.
pub(crate) fn send_options(info: &rserpool_proto::session::SendInfo) -> SendOptions {
    SendOptions {
        stream: info.stream,
        ppid: info.ppid,
        unordered: info.unordered,
        lifetime: info.lifetime,
    }
}

/// How the session layer sees a message that arrived: its stream, PPID and ordering (a
/// lifetime is the sender's business).
pub(crate) fn recv_info(m: &Message) -> rserpool_proto::session::SendInfo {
    rserpool_proto::session::SendInfo {
        stream: m.stream,
        ppid: m.ppid,
        unordered: m.unordered,
        lifetime: None,
    }
}

/// An association and how a driver sends on it: straight into the association's send
/// buffer, or, while that is full (or something waits already), through a queue that a writer
/// task empties in order. Messages go out in the order given either way.
pub(crate) struct Link {
    assoc: Arc<Association>,
    queue: tokio::sync::mpsc::UnboundedSender<Queued>,
    /// Items in the queue or being sent by the writer.
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

enum Queued {
    Message(SendOptions, Bytes),
    Shutdown,
}

impl Link {
    /// A link with its writer task on `runtime`. A failed send ends the task; it shows up as
    /// the end of the association on its reader.
    pub(crate) fn new(assoc: Arc<Association>, runtime: &tokio::runtime::Handle) -> Self {
        use std::sync::atomic::Ordering::AcqRel;
        let (queue, mut rx) = tokio::sync::mpsc::unbounded_channel::<Queued>();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (writer, count) = (assoc.clone(), queued.clone());
        runtime.spawn(async move {
            while let Some(item) = rx.recv().await {
                let ok = match item {
                    Queued::Message(opts, data) => writer.send_message(opts, data).await.is_ok(),
                    Queued::Shutdown => {
                        writer.shutdown();
                        true
                    }
                };
                count.fetch_sub(1, AcqRel);
                if !ok {
                    return;
                }
            }
        });
        Self {
            assoc,
            queue,
            queued,
        }
    }

    /// The association.
    pub(crate) fn association(&self) -> &Arc<Association> {
        &self.assoc
    }

    /// Sends a message after those given before.
    pub(crate) fn send(&self, opts: SendOptions, data: Bytes) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        if self.queued.load(Acquire) == 0 {
            match self.assoc.try_send_message(opts, data.clone()) {
                Err(SendError::WouldBlock) => {}
                // Sent, or the association is gone (its reader tells).
                _ => return,
            }
        }
        self.queued.fetch_add(1, AcqRel);
        if self.queue.send(Queued::Message(opts, data)).is_err() {
            self.queued.fetch_sub(1, AcqRel);
        }
    }

    /// Starts a graceful shutdown once what was given before is sent.
    pub(crate) fn shutdown(&self) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        if self.queued.load(Acquire) == 0 {
            return self.assoc.shutdown();
        }
        self.queued.fetch_add(1, AcqRel);
        if self.queue.send(Queued::Shutdown).is_err() {
            self.assoc.shutdown();
        }
    }
}

/// Waits until every one of `assocs` has ended, for `limit` at most (a driver that shut them
/// down and is stopping).
pub(crate) async fn wait_closed(assocs: Vec<Arc<Association>>, limit: Duration) {
    let all = async {
        for a in assocs {
            a.closed().await;
        }
    };
    let _ = tokio::time::timeout(limit, all).await;
}
