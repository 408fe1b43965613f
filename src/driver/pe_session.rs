//! The pool element's sessions on tokio: [`SessionServer`] accepts the associations pool users
//! open to the PE's SCTP port, one session each, driving the
//! [`PoolElementSessions`] core: ASAP control messages
//! (Cookie, Cookie Echo, Business Card, PPID 11) are kept apart from the application's.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Dispatcher, EventQueue};
use crate::handlespace::AssociationId;
use crate::idhash::{IdMap, IdSet};
use crate::session::{
    PeEvent, PeSessionError, PoolElementSessions, SendInfo, SessionId, SessionOutput,
};
use crate::transport::{self, Association, Closed, Delivery, Link, Listener, Message, Peer};
use crate::wire::{PoolElement, PoolHandle};

/// How long [`SessionServer::close`] waits for the sessions' associations to close.
pub const SERVER_CLOSE_LIMIT: Duration = Duration::from_secs(3);

enum Input {
    Accepted(Association),
    Messages(AssociationId, Vec<Message>),
    Ended(AssociationId, Closed),
}

/// A pool element's sessions: what pool users send, cookies to them, their Cookie Echoes.
/// Events come in the order they happened; a session's [`PeEvent::SessionAdded`] comes before
/// anything else of it.
pub struct SessionServer {
    shared: Arc<Shared>,
    events: Option<EventQueue<PeEvent>>,
    port: u16,
}

impl SessionServer {
    /// Serves sessions of `pool` on `listener` (the port the PE registered), on the current
    /// tokio runtime.
    pub fn start(listener: Listener, pool: PoolHandle) -> Self {
        let (tx, events) = EventQueue::new();
        let mut s = Self::open(
            listener,
            pool,
            Dispatcher::batched(move |batch| tx.send_all(batch)),
        );
        s.events = Some(events);
        s
    }

    /// As [`SessionServer::start`], handing every event to `on_event` instead of
    /// [`SessionServer::next_event`] (which then returns `None`). `on_event` runs in the
    /// server's tasks, never inside a call of the application's; it must not block and must
    /// not call the server.
    pub fn start_with(
        listener: Listener,
        pool: PoolHandle,
        on_event: impl FnMut(PeEvent) + Send + 'static,
    ) -> Self {
        Self::open(listener, pool, Dispatcher::new(on_event))
    }

    fn open(listener: Listener, pool: PoolHandle, events: Dispatcher<PeEvent>) -> Self {
        let port = listener.port();
        let runtime = tokio::runtime::Handle::current();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core: PoolElementSessions::new(pool),
                assocs: IdMap::default(),
                next_association: 1,
                closing: Default::default(),
                ready: Vec::new(),
                acceptor: None,
                closed: false,
            }),
            events,
            wake: Notify::new(),
            runtime: runtime.clone(),
        });
        let weak = Arc::downgrade(&shared);
        let acceptor = runtime.spawn(async move {
            let mut listener = listener;
            while let Some(a) = listener.accept().await {
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                shared.input(Input::Accepted(a));
            }
        });
        shared.lock().acceptor = Some(acceptor);
        runtime.spawn(drive(shared.clone()));
        Self {
            shared,
            events: None,
            port,
        }
    }

    /// The SCTP port sessions arrive on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends an application message on a session (PPID 11 is refused: it is the session
    /// layer's own). It goes to the association's send buffer at once.
    pub async fn send(
        &self,
        session: SessionId,
        info: SendInfo,
        data: Bytes,
    ) -> Result<(), PeSessionError> {
        self.send_now(session, info, data)
    }

    /// [`send`](Self::send) for callers outside async code (it never waits).
    pub fn send_now(
        &self,
        session: SessionId,
        info: SendInfo,
        data: Bytes,
    ) -> Result<(), PeSessionError> {
        self.shared.call(|st| st.core.send(session, info, data))
    }

    /// Sends a cookie to the session's pool user (RSPLIB's `rsp_send_cookie`).
    pub async fn send_cookie(
        &self,
        session: SessionId,
        cookie: Bytes,
    ) -> Result<(), PeSessionError> {
        self.send_cookie_now(session, cookie)
    }

    /// [`send_cookie`](Self::send_cookie) for callers outside async code (it never waits).
    pub fn send_cookie_now(&self, session: SessionId, cookie: Bytes) -> Result<(), PeSessionError> {
        self.shared.call(|st| st.core.send_cookie(session, &cookie))
    }

    /// Ends a session gracefully (SCTP SHUTDOWN); [`PeEvent::SessionRemoved`] follows.
    pub async fn close_session(&self, session: SessionId) -> Result<(), PeSessionError> {
        self.shared.call(|st| st.core.close(session))
    }

    /// Sends a Business Card with this failover order to every new session (empty: none).
    pub fn set_business_card(&self, failover_order: Vec<PoolElement>) {
        self.shared
            .call(|st| st.core.set_business_card(failover_order));
    }

    /// The far end of a session's association.
    pub async fn peer(&self, session: SessionId) -> Option<Peer> {
        let st = self.shared.lock();
        let a = st.core.association(session)?;
        st.assocs.get(&a)?.association().peer()
    }

    /// The next event; `None` once the server is closed (at once for a server started with
    /// [`SessionServer::start_with`]).
    pub async fn next_event(&mut self) -> Option<PeEvent> {
        self.events.as_mut()?.recv().await
    }

    /// Stops accepting, shuts every session down gracefully and waits
    /// [`SERVER_CLOSE_LIMIT`] at most for them to end.
    pub async fn close(&self) {
        let all = self.shared.close();
        transport::wait_closed(all, SERVER_CLOSE_LIMIT).await;
    }
}

impl Drop for SessionServer {
    fn drop(&mut self) {
        // As close does, without waiting; in a task when the state is busy (the last handle
        // may go inside an event handler, under the lock).
        let shared = self.shared.clone();
        let done = match shared.state.try_lock() {
            Ok(mut st) => {
                shared.close_locked(&mut st);
                true
            }
            Err(_) => false,
        };
        if !done {
            self.shared.runtime.spawn(async move {
                shared.close();
            });
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Hands events to the application, outside the state lock.
    events: Dispatcher<PeEvent>,
    /// Wakes the driver task: events of calls to hand on, the end.
    wake: Notify,
    /// Where the tasks run (calls come from any thread).
    runtime: tokio::runtime::Handle,
}

struct State {
    core: PoolElementSessions,
    assocs: IdMap<AssociationId, Link>,
    next_association: u64,
    /// Associations this side shut down (their graceful end is not the peer's doing).
    closing: IdSet<AssociationId>,
    /// Events to hand on, in order: those of calls wait for the driver task, those found by
    /// a task go with it.
    ready: Vec<PeEvent>,
    acceptor: Option<tokio::task::JoinHandle<()>>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core for a call of the application's, then does what the core asks
    /// for; events wait for the driver task.
    fn call<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.lock();
        let r = f(&mut st);
        self.flush_and_wake(&mut st, false);
        r
    }

    /// Stops accepting and shuts every session down; the associations to wait for.
    fn close(&self) -> Vec<Arc<Association>> {
        self.close_locked(&mut self.lock())
    }

    /// [`close`](Self::close) with the state locked.
    fn close_locked(&self, st: &mut State) -> Vec<Arc<Association>> {
        if let Some(a) = st.acceptor.take() {
            a.abort();
        }
        st.closed = true;
        let sessions: Vec<SessionId> = st.core.sessions().collect();
        for s in sessions {
            let _ = st.core.close(s);
        }
        let all = st
            .assocs
            .values()
            .map(|l| l.association().clone())
            .collect();
        self.flush_and_wake(st, false);
        all
    }

    /// Feeds what a task learnt to the core, then does what the core asks for.
    fn input(self: &Arc<Self>, input: Input) {
        let mut st = self.lock();
        // Attached once the lock is given back (a sink may be run at once).
        let mut attach = None;
        match input {
            Input::Accepted(a) => {
                let id = AssociationId(st.next_association);
                st.next_association += 1;
                if st.closed {
                    a.abort();
                } else {
                    match st.core.association_up(Instant::now(), id) {
                        Ok(_) => {
                            let a = Arc::new(a);
                            let link = Link::new(a.clone(), &self.runtime);
                            st.assocs.insert(id, link);
                            attach = Some((id, a.clone()));
                        }
                        // Every session ID in use: the pool user is refused.
                        Err(_) => a.abort(),
                    }
                }
            }
            Input::Messages(id, batch) => {
                for m in batch {
                    st.core.message(id, transport::recv_info(&m), m.data);
                }
            }
            Input::Ended(id, why) => {
                st.assocs.remove(&id);
                let ours = st.closing.remove(&id);
                if why == Closed::Shutdown && !ours {
                    st.core.peer_shutdown(id);
                }
                st.core.association_lost(id);
            }
        }
        self.flush_and_wake(&mut st, true);
        self.events.deliver(st, |st| &mut st.ready);
        if let Some((id, a)) = attach {
            self.attach(id, &a);
        }
    }

    /// Runs the association's messages through the core as they come, in the transport's
    /// task (no reader task in between), and then its end.
    fn attach(self: &Arc<Self>, id: AssociationId, a: &Association) {
        transport::attach_sink(a, self, move |shared, m| {
            shared.input(match m {
                Delivery::Messages(batch) => Input::Messages(id, batch),
                Delivery::Ended(c) => Input::Ended(id, c),
            })
        });
    }

    /// Does what the core asks for and collects its events in `ready`: a task (`dispatch`)
    /// hands them on itself once it gives the lock back, a call leaves them to the driver
    /// task. Returns whether the driver task must look (events left to it, the end); the
    /// caller wakes it unless it is the driver.
    fn flush(&self, st: &mut State, dispatch: bool) -> bool {
        while let Some(o) = st.core.poll_output() {
            match o {
                SessionOutput::Send {
                    association,
                    info,
                    data,
                } => {
                    if let Some(link) = st.assocs.get(&association) {
                        link.send(transport::send_options(&info), data);
                    }
                }
                SessionOutput::Shutdown { association } => {
                    if let Some(link) = st.assocs.get(&association) {
                        link.shutdown();
                        st.closing.insert(association);
                    }
                }
                SessionOutput::Abort { association } => {
                    if let Some(link) = st.assocs.remove(&association) {
                        link.association().abort();
                    }
                }
                // Pool user outputs; the PE's core never asks for them.
                SessionOutput::Resolve
                | SessionOutput::ReportUnreachable { .. }
                | SessionOutput::Connect { .. } => {}
            }
        }
        let mut wake = st.closed;
        while let Some(e) = st.core.poll_event() {
            st.ready.push(e);
        }
        wake |= !dispatch && !st.ready.is_empty();
        wake
    }

    /// [`flush`](Self::flush) outside the driver task.
    fn flush_and_wake(&self, st: &mut State, dispatch: bool) {
        if self.flush(st, dispatch) {
            self.wake.notify_one();
        }
    }
}

/// The driver task: hands on the events of calls; ends once the server is closed and its
/// associations are gone.
async fn drive(shared: Arc<Shared>) {
    loop {
        {
            let mut st = shared.lock();
            let _ = shared.flush(&mut st, true);
            let done = st.closed && st.assocs.is_empty();
            shared.events.deliver(st, |st| &mut st.ready);
            if done {
                return;
            }
        }
        shared.wake.notified().await;
    }
}
