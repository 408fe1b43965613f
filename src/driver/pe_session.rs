//! The pool element's sessions on tokio: [`SessionServer`] accepts the associations pool users
//! open to the PE's SCTP port, one session each, driving the
//! [`PoolElementSessions`] core: ASAP control messages
//! (Cookie, Cookie Echo, Business Card, PPID 11) are kept apart from the application's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::handlespace::AssociationId;
use crate::session::{
    PeEvent, PeSessionError, PoolElementSessions, SendInfo, SessionId, SessionOutput,
};
use crate::transport::{self, Association, Closed, Link, Listener, Message, Peer};
use crate::wire::{PoolElement, PoolHandle};

/// How long [`SessionServer::close`] waits for the sessions' associations to close.
pub const SERVER_CLOSE_LIMIT: Duration = Duration::from_secs(3);

enum Command {
    Send(
        SessionId,
        SendInfo,
        Bytes,
        oneshot::Sender<Result<(), PeSessionError>>,
    ),
    Cookie(
        SessionId,
        Bytes,
        oneshot::Sender<Result<(), PeSessionError>>,
    ),
    CloseSession(SessionId, oneshot::Sender<Result<(), PeSessionError>>),
    BusinessCard(Vec<PoolElement>),
    Peer(SessionId, oneshot::Sender<Option<Peer>>),
    Close(oneshot::Sender<()>),
}

enum Input {
    Accepted(Association),
    Message(AssociationId, Message),
    Ended(AssociationId, Closed),
}

/// A pool element's sessions: what pool users send, cookies to them, their Cookie Echoes.
/// Events come in the order they happened; a session's [`PeEvent::SessionAdded`] comes before
/// anything else of it.
pub struct SessionServer {
    commands: mpsc::UnboundedSender<Command>,
    events: Option<mpsc::UnboundedReceiver<PeEvent>>,
    port: u16,
}

impl SessionServer {
    /// Serves sessions of `pool` on `listener` (the port the PE registered), on the current
    /// tokio runtime.
    pub fn start(listener: Listener, pool: PoolHandle) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut s = Self::start_with(listener, pool, move |e| {
            let _ = events_tx.send(e);
        });
        s.events = Some(events);
        s
    }

    /// As [`SessionServer::start`], handing every event to `on_event` in the driver's task
    /// instead of [`SessionServer::next_event`] (which then returns `None`). `on_event` must
    /// not block.
    pub fn start_with(
        listener: Listener,
        pool: PoolHandle,
        on_event: impl FnMut(PeEvent) + Send + 'static,
    ) -> Self {
        let port = listener.port();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let mut driver = Driver {
            core: PoolElementSessions::new(pool),
            assocs: HashMap::new(),
            next_association: 1,
            closing: Default::default(),
            inputs,
            events: Box::new(on_event),
        };
        tokio::spawn(async move { driver.run(listener, inputs_rx, commands_rx).await });
        Self {
            commands,
            events: None,
            port,
        }
    }

    /// The SCTP port sessions arrive on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends an application message on a session (PPID 11 is refused: it is the session
    /// layer's own).
    pub async fn send(
        &self,
        session: SessionId,
        info: SendInfo,
        data: Bytes,
    ) -> Result<(), PeSessionError> {
        self.ask(|tx| Command::Send(session, info, data, tx))
            .await
            .unwrap_or(Err(PeSessionError::UnknownSession(session)))
    }

    /// Sends a cookie to the session's pool user (RSPLIB's `rsp_send_cookie`).
    pub async fn send_cookie(
        &self,
        session: SessionId,
        cookie: Bytes,
    ) -> Result<(), PeSessionError> {
        self.ask(|tx| Command::Cookie(session, cookie, tx))
            .await
            .unwrap_or(Err(PeSessionError::UnknownSession(session)))
    }

    /// Ends a session gracefully (SCTP SHUTDOWN); [`PeEvent::SessionRemoved`] follows.
    pub async fn close_session(&self, session: SessionId) -> Result<(), PeSessionError> {
        self.ask(|tx| Command::CloseSession(session, tx))
            .await
            .unwrap_or(Err(PeSessionError::UnknownSession(session)))
    }

    /// Sends a Business Card with this failover order to every new session (empty: none).
    pub fn set_business_card(&self, failover_order: Vec<PoolElement>) {
        let _ = self.commands.send(Command::BusinessCard(failover_order));
    }

    /// The far end of a session's association.
    pub async fn peer(&self, session: SessionId) -> Option<Peer> {
        self.ask(|tx| Command::Peer(session, tx)).await.flatten()
    }

    /// The next event; `None` once the server is closed (at once for a server started with
    /// [`SessionServer::start_with`]).
    pub async fn next_event(&mut self) -> Option<PeEvent> {
        self.events.as_mut()?.recv().await
    }

    /// Stops accepting, shuts every session down gracefully and waits
    /// [`SERVER_CLOSE_LIMIT`] at most for them to end.
    pub async fn close(&self) {
        let _ = self.ask(Command::Close).await;
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(command(tx)).ok()?;
        rx.await.ok()
    }
}

struct Driver {
    core: PoolElementSessions,
    assocs: HashMap<AssociationId, Link>,
    next_association: u64,
    /// Associations this side shut down (their graceful end is not the peer's doing).
    closing: std::collections::HashSet<AssociationId>,
    inputs: mpsc::UnboundedSender<Input>,
    events: Box<dyn FnMut(PeEvent) + Send>,
}

impl Driver {
    async fn run(
        &mut self,
        mut listener: Listener,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let accepts = self.inputs.clone();
        let acceptor = tokio::spawn(async move {
            while let Some(a) = listener.accept().await {
                if accepts.send(Input::Accepted(a)).is_err() {
                    return;
                }
            }
        });
        loop {
            tokio::select! {
                Some(i) = inputs.recv() => self.input(i),
                cmd = commands.recv() => match cmd {
                    Some(Command::Send(s, info, data, tx)) => {
                        let _ = tx.send(self.core.send(s, info, data));
                    }
                    Some(Command::Cookie(s, cookie, tx)) => {
                        let _ = tx.send(self.core.send_cookie(s, &cookie));
                    }
                    Some(Command::CloseSession(s, tx)) => {
                        let _ = tx.send(self.core.close(s));
                    }
                    Some(Command::BusinessCard(order)) => self.core.set_business_card(order),
                    Some(Command::Peer(s, tx)) => {
                        let peer = self
                            .core
                            .association(s)
                            .and_then(|a| self.assocs.get(&a))
                            .and_then(|(a, _)| a.peer());
                        let _ = tx.send(peer);
                    }
                    Some(Command::Close(done)) => {
                        acceptor.abort();
                        self.close().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        acceptor.abort();
                        return self.close().await;
                    }
                },
            }
            self.flush();
        }
    }

    async fn close(&mut self) {
        let sessions: Vec<SessionId> = self.core.sessions().collect();
        for s in sessions {
            let _ = self.core.close(s);
        }
        self.flush();
        let all = self.assocs.values().map(|(a, _)| a.clone()).collect();
        transport::wait_closed(all, SERVER_CLOSE_LIMIT).await;
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Accepted(a) => {
                let id = AssociationId(self.next_association);
                self.next_association += 1;
                match self.core.association_up(Instant::now(), id) {
                    Ok(_) => {
                        let a = Arc::new(a);
                        transport::spawn_reader(a.clone(), self.inputs.clone(), move |m| match m {
                            Ok(m) => Input::Message(id, m),
                            Err(c) => Input::Ended(id, c),
                        });
                        self.assocs.insert(id, transport::spawn_writer(a));
                    }
                    // Every session ID in use: the pool user is refused.
                    Err(_) => a.abort(),
                }
            }
            Input::Message(id, m) => {
                let info = SendInfo {
                    stream: m.stream,
                    ppid: m.ppid,
                    unordered: m.unordered,
                    lifetime: None,
                };
                self.core.message(id, info, m.data);
            }
            Input::Ended(id, why) => {
                self.assocs.remove(&id);
                let ours = self.closing.remove(&id);
                if why == Closed::Shutdown && !ours {
                    self.core.peer_shutdown(id);
                }
                self.core.association_lost(id);
            }
        }
    }

    fn flush(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                SessionOutput::Send {
                    association,
                    info,
                    data,
                } => {
                    if let Some((_, writer)) = self.assocs.get(&association) {
                        let _ = writer.send((transport::send_options(&info), data));
                    }
                }
                SessionOutput::Shutdown { association } => {
                    if let Some((a, _)) = self.assocs.get(&association) {
                        self.closing.insert(association);
                        a.shutdown();
                    }
                }
                SessionOutput::Abort { association } => {
                    if let Some((a, _)) = self.assocs.remove(&association) {
                        a.abort();
                    }
                }
                // Pool user outputs; the PE's core never asks for them.
                SessionOutput::Resolve
                | SessionOutput::ReportUnreachable { .. }
                | SessionOutput::Connect { .. } => {}
            }
        }
        while let Some(e) = self.core.poll_event() {
            (self.events)(e);
        }
    }
}
