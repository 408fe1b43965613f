//! The session layer on tokio: [`Session`], a pool user's session to a pool, driving the
//! [`session`](crate::session) core. Handle resolutions and unreachability reports go through a
//! [`Client`]; the associations to PEs are opened on the client's transport endpoint.
//!
//! The core sits behind a mutex shared by the handle and the tasks that feed it: a call
//! ([`Session::send`], [`Session::force_failover`]) runs the core in the caller's context and
//! hands its messages straight to the association's send buffer; a message received is run
//! through the core by the association's reader task, which hands the events on. No task
//! switch lies between the application and SCTP but the one to the reader. A driver task
//! keeps the core's timers and hands on the events of calls (an application's `on_event` is
//! never run inside its own call).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rserpool_sctp::AssociationConfig;
use tokio::sync::{Notify, watch};

use super::client::Client;
use super::{Dispatcher, EventQueue};
use crate::asap::ClientError;
use crate::handlespace::AssociationId;
use crate::idhash::IdMap;
use crate::session::{
    PoolUserSession, SendInfo, SessionConfig, SessionError, SessionEvent, SessionOutput,
};
use crate::transport::{self, Association, Closed, Delivery, Link, Message};
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

enum Input {
    Resolved(Result<Vec<PoolElement>, ClientError>),
    Connected(AssociationId, io::Result<Association>),
    Messages(AssociationId, Vec<Message>),
    Ended(AssociationId, Closed),
}

/// A pool user's session to a pool: messages to and from the PE serving it, failover to
/// another PE when it fails. See [`session`](crate::session) for the behaviour.
pub struct Session {
    shared: Arc<Shared>,
    events: Option<EventQueue<SessionEvent>>,
    status: watch::Receiver<SessionStatus>,
}

impl Session {
    /// Opens a session to `pool` on the current tokio runtime: resolves it through `client`
    /// and connects to a PE. [`SessionEvent::Connected`] says when one is reached; messages
    /// sent before wait for it.
    pub fn connect(client: &Client, pool: PoolHandle, options: SessionOptions) -> Self {
        let (tx, events) = EventQueue::new();
        let mut s = Self::open(
            client,
            pool,
            options,
            Dispatcher::batched(move |batch| tx.send_all(batch)),
        );
        s.events = Some(events);
        s
    }

    /// As [`Session::connect`], handing every event to `on_event` instead of
    /// [`Session::next_event`] (which then returns `None`). `on_event` runs in the session's
    /// tasks, never inside a call of the application's; it must not block and must not call
    /// the session. It is what an embedding, such as the C API, uses to queue events its own
    /// way.
    pub fn connect_with(
        client: &Client,
        pool: PoolHandle,
        options: SessionOptions,
        on_event: impl FnMut(SessionEvent) + Send + 'static,
    ) -> Self {
        Self::open(client, pool, options, Dispatcher::new(on_event))
    }

    fn open(
        client: &Client,
        pool: PoolHandle,
        options: SessionOptions,
        events: Dispatcher<SessionEvent>,
    ) -> Self {
        let (status_tx, status) = watch::channel(SessionStatus::default());
        let mut core = PoolUserSession::new(pool.clone(), options.session);
        core.connect(Instant::now());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                client: client.clone(),
                pool,
                association: options.association,
                stale_cache_value: options.stale_cache_value,
                assocs: IdMap::default(),
                status: status_tx,
                last_status: SessionStatus::default(),
                ready: Vec::new(),
                timer: None,
            }),
            events,
            wake: Notify::new(),
            runtime: tokio::runtime::Handle::current(),
        });
        tokio::spawn(drive(shared.clone()));
        Self {
            shared,
            events: None,
            status,
        }
    }

    /// What the session is doing now.
    pub fn status(&self) -> SessionStatus {
        *self.status.borrow()
    }

    /// Sends a message to the PE serving the session (after the connect, while one is in
    /// progress). It goes to the association's send buffer at once.
    pub async fn send(&self, info: SendInfo, data: Bytes) -> Result<(), SessionError> {
        self.send_now(info, data)
    }

    /// [`send`](Self::send) for callers outside async code (it never waits): the message is
    /// in the association's send buffer, or queued while a connect is in progress.
    pub fn send_now(&self, info: SendInfo, data: Bytes) -> Result<(), SessionError> {
        self.shared
            .call(|st| st.core.send(Instant::now(), info, data))
    }

    /// Fails over now (RSPLIB's `rsp_forcefailover`), reporting the current PE unreachable
    /// if asked.
    pub fn force_failover(&self, report_unreachable: bool) {
        self.shared
            .call(|st| st.core.force_failover(Instant::now(), report_unreachable));
    }

    /// As [`force_failover`](Self::force_failover), with a new cache lifetime for this and
    /// the session's later handle resolutions (RSPLIB's `staleCacheValue` of
    /// `rsp_forcefailover`; see [`SessionOptions::stale_cache_value`]).
    pub fn force_failover_with(&self, report_unreachable: bool, stale_cache_value: Duration) {
        self.shared.call(|st| {
            st.stale_cache_value = Some(stale_cache_value);
            st.core.force_failover(Instant::now(), report_unreachable)
        });
    }

    /// The next message or notification; `None` once the session is closed (at once for a
    /// session opened with [`Session::connect_with`]).
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.as_mut()?.recv().await
    }

    /// Closes the session: the association is shut down gracefully, waited for
    /// [`SESSION_CLOSE_LIMIT`] at most.
    pub async fn close(&self) {
        let all = self.shared.call(|st| {
            st.core.close();
            st.assocs
                .values()
                .map(|l| l.association().clone())
                .collect()
        });
        transport::wait_closed(all, SESSION_CLOSE_LIMIT).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Gracefully, as close does, without waiting; in a task when the state is busy (the
        // last handle may go inside an event handler, under the lock).
        let shared = self.shared.clone();
        let done = match shared.state.try_lock() {
            Ok(mut st) => {
                shared.call_locked(&mut st, |st| st.core.close());
                true
            }
            Err(_) => false,
        };
        if !done {
            self.shared
                .runtime
                .spawn(async move { shared.call(|st| st.core.close()) });
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Hands events to the application, outside the state lock.
    events: Dispatcher<SessionEvent>,
    /// Wakes the driver task: a new deadline, events to hand on, the end.
    wake: Notify,
    /// Where the tasks run (calls come from any thread).
    runtime: tokio::runtime::Handle,
}

struct State {
    core: PoolUserSession,
    client: Client,
    pool: PoolHandle,
    association: AssociationConfig,
    stale_cache_value: Option<Duration>,
    assocs: IdMap<AssociationId, Link>,
    status: watch::Sender<SessionStatus>,
    /// What `status` holds: compared here, the watch's lock is taken only for a change.
    last_status: SessionStatus,
    /// Events to hand on, in order: those of calls wait for the driver task, those found by
    /// a task go with it.
    ready: Vec<SessionEvent>,
    /// The deadline the driver task sleeps until.
    timer: Option<Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core for a call of the application's, then does what the core asks
    /// for; events wait for the driver task.
    fn call<T>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.lock();
        self.call_locked(&mut st, f)
    }

    /// As [`Shared::call`], with the state already locked.
    fn call_locked<T>(self: &Arc<Self>, st: &mut State, f: impl FnOnce(&mut State) -> T) -> T {
        let r = f(st);
        self.flush_and_wake(st, false);
        r
    }

    /// Feeds what a task learnt to the core, then does what the core asks for.
    fn input(self: &Arc<Self>, input: Input) {
        let mut st = self.lock();
        // Attached once the lock is given back (a sink may be run at once).
        let mut attach = None;
        let now = Instant::now();
        match input {
            Input::Resolved(r) => st.core.resolved(now, r),
            Input::Connected(id, Ok(a)) => {
                let a = Arc::new(a);
                let link = Link::new(a.clone(), &self.runtime);
                st.assocs.insert(id, link);
                st.core.association_up(now, id);
                if st.core.association() != Some(id) {
                    // Given up meanwhile (timeout, failover, close).
                    a.abort();
                    st.assocs.remove(&id);
                } else {
                    attach = Some((id, a.clone()));
                }
            }
            Input::Connected(id, Err(_)) => st.core.association_failed(now, id),
            Input::Messages(id, batch) => {
                for m in batch {
                    st.core.message(now, id, transport::recv_info(&m), m.data);
                }
            }
            Input::Ended(id, c) => {
                st.assocs.remove(&id);
                let graceful = c == Closed::Shutdown;
                if graceful {
                    // Our SCTP tells the end of a shutdown only: the PE began it.
                    st.core.peer_shutdown(id);
                }
                st.core.association_lost(now, id, graceful);
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
    /// task. Returns whether the driver task must look (events left to it, a new deadline,
    /// the end); the caller wakes it unless it is the driver.
    fn flush(self: &Arc<Self>, st: &mut State, dispatch: bool) -> bool {
        while let Some(o) = st.core.poll_output() {
            match o {
                SessionOutput::Resolve => {
                    let client = st.client.clone();
                    let pool = st.pool.clone();
                    let stale = st.stale_cache_value;
                    let shared = self.clone();
                    self.runtime.spawn(async move {
                        let r = client.resolve_with(&pool, None, stale).await;
                        shared.input(Input::Resolved(r));
                    });
                }
                SessionOutput::ReportUnreachable { pe } => {
                    st.client.report_unreachable(&st.pool, pe)
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
                    let endpoint = st.client.endpoint().clone();
                    let config = st.association.clone();
                    let shared = self.clone();
                    self.runtime.spawn(async move {
                        let r = endpoint.connect_with(&remote, 0, Some(config)).await;
                        shared.input(Input::Connected(association, r));
                    });
                }
                SessionOutput::Send {
                    association,
                    info,
                    data,
                } => {
                    if let Some(link) = st.assocs.get(&association) {
                        link.send(transport::send_options(&info), data);
                    }
                }
                SessionOutput::Abort { association } => {
                    if let Some(link) = st.assocs.remove(&association) {
                        link.association().abort();
                    }
                }
                SessionOutput::Shutdown { association } => {
                    if let Some(link) = st.assocs.get(&association) {
                        link.shutdown();
                    }
                }
            }
        }
        let status = SessionStatus {
            pool_element: st.core.pool_element(),
            connected: st
                .core
                .association()
                .is_some_and(|a| st.assocs.contains_key(&a)),
            has_cookie: st.core.has_cookie(),
            closed: st.core.is_closed(),
        };
        if status != st.last_status {
            st.last_status = status;
            st.status.send_replace(status);
        }
        // The status first: an application woken by an event sees it current.
        let mut wake = st.core.poll_timeout() != st.timer || st.core.is_closed();
        while let Some(e) = st.core.poll_event() {
            st.ready.push(e);
        }
        wake |= !dispatch && !st.ready.is_empty();
        wake
    }

    /// [`flush`](Self::flush) outside the driver task.
    fn flush_and_wake(self: &Arc<Self>, st: &mut State, dispatch: bool) {
        if self.flush(st, dispatch) {
            self.wake.notify_one();
        }
    }
}

/// The driver task: the core's timers, the events of calls, the end of a closed session.
async fn drive(shared: Arc<Shared>) {
    loop {
        let deadline = {
            let mut st = shared.lock();
            if st.core.poll_timeout().is_some_and(|d| d <= Instant::now()) {
                st.core.handle_timeout(Instant::now());
            }
            let _ = shared.flush(&mut st, true);
            let done = st.core.is_closed() && st.assocs.is_empty();
            st.timer = st.core.poll_timeout();
            let deadline = st.timer;
            shared.events.deliver(st, |st| &mut st.ready);
            if done {
                return;
            }
            deadline
        };
        tokio::select! {
            () = transport::sleep_until(deadline) => {}
            () = shared.wake.notified() => {}
        }
    }
}
