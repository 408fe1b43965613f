//! The session layer on tokio: [`Session`], a pool user's session to a pool, driving the
//! [`session`](crate::session) core. Handle resolutions and unreachability reports go through a
//! [`Client`]; the associations to PEs are opened on the client's transport endpoint.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rserpool_sctp::AssociationConfig;
use tokio::sync::{mpsc, oneshot, watch};

use super::client::Client;
use crate::asap::ClientError;
use crate::handlespace::AssociationId;
use crate::session::{
    PoolUserSession, SendInfo, SessionConfig, SessionError, SessionEvent, SessionOutput,
};
use crate::transport::{self, Association, Closed, Link, Message};
use crate::wire::{PoolElement, PoolElementId, PoolHandle};

/// How long [`Session::close`] waits for the association to close.
pub const SESSION_CLOSE_LIMIT: Duration = Duration::from_secs(3);

/// Settings of a [`Session`].
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// The session core's settings (failover mode, connect timeout, queue).
    pub session: SessionConfig,
    /// SCTP settings of the associations to PEs (RSPLIB's `rsp_update_session_parameters`).
    pub association: AssociationConfig,
    /// How long the PEs of the session's handle resolutions stay in the client's cache
    /// (RSPLIB's `staleCacheValue` of `rsp_connect`); `None`: the client's own setting. See
    /// [`Client::resolve_with`].
    pub stale_cache_value: Option<Duration>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        // A pool user wants to notice a dead PE fast.
        let association = AssociationConfig {
            rto_initial: Duration::from_millis(300),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_millis(600),
            max_init_retransmits: 4,
            max_retrans: 4,
            heartbeat_interval: Some(Duration::from_millis(500)),
            ..transport::default_association_config()
        };
        Self {
            session: SessionConfig::default(),
            association,
            stale_cache_value: None,
        }
    }
}

/// What a [`Session`] is doing, as [`Session::status`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStatus {
    /// The PE serving the session, or being connected to.
    pub pool_element: Option<PoolElementId>,
    /// An association to that PE is up.
    pub connected: bool,
    /// A cookie from a PE is held (it goes to the next PE).
    pub has_cookie: bool,
    /// The session is closed.
    pub closed: bool,
}

enum Command {
    Send(SendInfo, Bytes, oneshot::Sender<Result<(), SessionError>>),
    Failover(bool, Option<Duration>),
    Close(oneshot::Sender<()>),
}

enum Input {
    Resolved(Result<Vec<PoolElement>, ClientError>),
    Connected(AssociationId, io::Result<Association>),
    Message(AssociationId, Message),
    Ended(AssociationId, Closed),
}

/// A pool user's session to a pool: messages to and from the PE serving it, failover to
/// another PE when it fails. See [`session`](crate::session) for the behaviour.
pub struct Session {
    commands: mpsc::UnboundedSender<Command>,
    events: Option<mpsc::UnboundedReceiver<SessionEvent>>,
    status: watch::Receiver<SessionStatus>,
}

impl Session {
    /// Opens a session to `pool` on the current tokio runtime: resolves it through `client`
    /// and connects to a PE. [`SessionEvent::Connected`] says when one is reached; messages
    /// sent before wait for it.
    pub fn connect(client: &Client, pool: PoolHandle, options: SessionOptions) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut s = Self::connect_with(client, pool, options, move |e| {
            let _ = events_tx.send(e);
        });
        s.events = Some(events);
        s
    }

    /// As [`Session::connect`], handing every event to `on_event` in the driver's task
    /// instead of [`Session::next_event`] (which then returns `None`). `on_event` must not
    /// block: it is what an embedding, such as the C API, uses to queue events its own way.
    pub fn connect_with(
        client: &Client,
        pool: PoolHandle,
        options: SessionOptions,
        on_event: impl FnMut(SessionEvent) + Send + 'static,
    ) -> Self {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(SessionStatus::default());
        let mut driver = Driver {
            status: status_tx,
            core: PoolUserSession::new(pool.clone(), options.session),
            client: client.clone(),
            pool,
            association: options.association,
            stale_cache_value: options.stale_cache_value,
            assocs: HashMap::new(),
            inputs,
            events: Box::new(on_event),
        };
        driver.core.connect(Instant::now());
        tokio::spawn(async move { driver.run(inputs_rx, commands_rx).await });
        Self {
            commands,
            events: None,
            status,
        }
    }

    /// What the session is doing now.
    pub fn status(&self) -> SessionStatus {
        *self.status.borrow()
    }

    /// Sends a message to the PE serving the session (after the connect, while one is in
    /// progress).
    pub async fn send(&self, info: SendInfo, data: Bytes) -> Result<(), SessionError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Send(info, data, tx))
            .map_err(|_| SessionError::Closed)?;
        rx.await.unwrap_or(Err(SessionError::Closed))
    }

    /// Fails over now (RSPLIB's `rsp_forcefailover`), reporting the current PE unreachable
    /// if asked.
    pub fn force_failover(&self, report_unreachable: bool) {
        let _ = self
            .commands
            .send(Command::Failover(report_unreachable, None));
    }

    /// As [`force_failover`](Self::force_failover), with a new cache lifetime for this and
    /// the session's later handle resolutions (RSPLIB's `staleCacheValue` of
    /// `rsp_forcefailover`; see [`SessionOptions::stale_cache_value`]).
    pub fn force_failover_with(&self, report_unreachable: bool, stale_cache_value: Duration) {
        let _ = self.commands.send(Command::Failover(
            report_unreachable,
            Some(stale_cache_value),
        ));
    }

    /// The next message or notification; `None` once the session is closed (at once for a
    /// session opened with [`Session::connect_with`]).
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.as_mut()?.recv().await
    }

    /// Closes the session: the association is shut down gracefully, waited for
    /// [`SESSION_CLOSE_LIMIT`] at most.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Driver {
    status: watch::Sender<SessionStatus>,
    core: PoolUserSession,
    client: Client,
    pool: PoolHandle,
    association: AssociationConfig,
    stale_cache_value: Option<Duration>,
    assocs: HashMap<AssociationId, Link>,
    inputs: mpsc::UnboundedSender<Input>,
    events: Box<dyn FnMut(SessionEvent) + Send>,
}

impl Driver {
    async fn run(
        &mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
            self.flush();
            let sleep = transport::sleep_until(self.core.poll_timeout());
            tokio::select! {
                Some(i) = inputs.recv() => self.input(i),
                cmd = commands.recv() => match cmd {
                    Some(Command::Send(info, data, tx)) => {
                        let _ = tx.send(self.core.send(Instant::now(), info, data));
                    }
                    Some(Command::Failover(report, stale)) => {
                        if stale.is_some() {
                            self.stale_cache_value = stale;
                        }
                        self.core.force_failover(Instant::now(), report)
                    }
                    Some(Command::Close(done)) => {
                        self.close().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return self.close().await,
                },
                () = sleep => self.core.handle_timeout(Instant::now()),
            }
        }
    }

    async fn close(&mut self) {
        self.core.close();
        self.flush();
        let all = self.assocs.values().map(|(a, _)| a.clone()).collect();
        transport::wait_closed(all, SESSION_CLOSE_LIMIT).await;
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Resolved(r) => self.core.resolved(now, r),
            Input::Connected(id, Ok(a)) => {
                let a = Arc::new(a);
                transport::spawn_reader(a.clone(), self.inputs.clone(), move |m| match m {
                    Ok(m) => Input::Message(id, m),
                    Err(c) => Input::Ended(id, c),
                });
                self.assocs.insert(id, transport::spawn_writer(a.clone()));
                self.core.association_up(now, id);
                if self.core.association() != Some(id) {
                    // Given up meanwhile (timeout, failover, close).
                    a.abort();
                    self.assocs.remove(&id);
                }
            }
            Input::Connected(id, Err(_)) => self.core.association_failed(now, id),
            Input::Message(id, m) => {
                let info = SendInfo {
                    stream: m.stream,
                    ppid: m.ppid,
                    unordered: m.unordered,
                    lifetime: None,
                };
                self.core.message(now, id, info, m.data);
            }
            Input::Ended(id, c) => {
                self.assocs.remove(&id);
                let graceful = c == Closed::Shutdown;
                if graceful {
                    // Our SCTP tells the end of a shutdown only: the PE began it.
                    self.core.peer_shutdown(id);
                }
                self.core.association_lost(now, id, graceful);
            }
        }
    }

    fn flush(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                SessionOutput::Resolve => {
                    let client = self.client.clone();
                    let pool = self.pool.clone();
                    let inputs = self.inputs.clone();
                    let stale = self.stale_cache_value;
                    tokio::spawn(async move {
                        let r = client.resolve_with(&pool, None, stale).await;
                        let _ = inputs.send(Input::Resolved(r));
                    });
                }
                SessionOutput::ReportUnreachable { pe } => {
                    self.client.report_unreachable(&self.pool, pe)
                }
                SessionOutput::Connect {
                    association,
                    addresses,
                    port,
                } => {
                    let remote: Vec<SocketAddr> = addresses
                        .iter()
                        .map(|&a| SocketAddr::new(a, port))
                        .collect();
                    let endpoint = self.client.endpoint().clone();
                    let config = self.association.clone();
                    let inputs = self.inputs.clone();
                    tokio::spawn(async move {
                        let r = endpoint.connect_with(&remote, 0, Some(config)).await;
                        let _ = inputs.send(Input::Connected(association, r));
                    });
                }
                SessionOutput::Send {
                    association,
                    info,
                    data,
                } => {
                    if let Some((_, writer)) = self.assocs.get(&association) {
                        let _ = writer.send((transport::send_options(&info), data));
                    }
                }
                SessionOutput::Abort { association } => {
                    if let Some((a, _)) = self.assocs.remove(&association) {
                        a.abort();
                    }
                }
                SessionOutput::Shutdown { association } => {
                    if let Some((a, _)) = self.assocs.get(&association) {
                        a.shutdown();
                    }
                }
            }
        }
        let status = SessionStatus {
            pool_element: self.core.pool_element(),
            connected: self
                .core
                .association()
                .is_some_and(|a| self.assocs.contains_key(&a)),
            has_cookie: self.core.has_cookie(),
            closed: self.core.is_closed(),
        };
        self.status
            .send_if_modified(|s| std::mem::replace(s, status) != status);
        // The status first: an application woken by an event sees it current.
        while let Some(e) = self.core.poll_event() {
            (self.events)(e);
        }
    }
}
