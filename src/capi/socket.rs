//! An RSerPool socket of the C API: what `rsp_recvmsg` will return (a queue the drivers fill
//! from their tasks), and the file descriptor that is readable exactly while that queue is
//! not empty, so that the application's own `poll`/`epoll`/`select` can wait for it.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use libc::c_int;

use crate::session::{SendInfo, SessionId};
use crate::wire::{PoolElementId, PoolHandle};
use crate::{Session, SessionServer};

use super::types::rsp_loadinfo;

/// Something `rsp_recvmsg` hands out.
pub(crate) enum Item {
    /// An application message.
    Data {
        session: SessionId,
        pe: u32,
        info: SendInfo,
        data: Bytes,
    },
    /// A notification (the bytes of a `union rserpool_notification` member).
    Notification(Vec<u8>),
    /// The first Cookie Echo of a session.
    CookieEcho { session: SessionId, cookie: Bytes },
    /// The session ended: `rsp_recvmsg` returns 0 from now on.
    Eof,
}

/// What a socket is.
pub(crate) enum Role {
    /// Just created (or bound).
    Fresh,
    /// A pool user's session (after `rsp_connect`).
    PoolUser {
        session: Arc<Session>,
        pool: PoolHandle,
        /// How long a connect to a PE may take (`TAG_RspSession_ConnectTimeout`).
        connect_timeout: Duration,
    },
    /// A registered pool element: one-to-many (`SOCK_SEQPACKET`) or accepting (`SOCK_STREAM`).
    PoolElement(Arc<PoolElementState>),
    /// A session accepted from a `SOCK_STREAM` pool element.
    Accepted {
        pe: Arc<PoolElementState>,
        session: SessionId,
    },
}

/// A pool element registered through `rsp_register`.
pub(crate) struct PoolElementState {
    pub server: SessionServer,
    pub pool: PoolHandle,
    pub id: PoolElementId,
    pub loadinfo: Mutex<rsp_loadinfo>,
    pub registered: Mutex<bool>,
}

/// The part of a socket its lock guards.
pub(crate) struct State {
    pub role: Role,
    pub queue: VecDeque<Item>,
    /// How much of the front item `rsp_recvmsg` has handed out already.
    pub offset: usize,
    /// Sessions accepted by the drivers and not yet by `rsp_accept` (`SOCK_STREAM` PEs).
    pub pending: VecDeque<Arc<Socket>>,
    /// Addresses given to `rsp_bind`.
    pub bound: Vec<std::net::SocketAddr>,
    /// `rsp_update_session_parameters` (0: default).
    pub params: super::types::rserpool_session_parameters,
    /// The pool user's connect or failover finished: `Some(true)` with a PE, `Some(false)`
    /// without.
    pub connect_outcome: Option<bool>,
    /// The text `rsp_csp_setstatus` set.
    pub status_text: String,
    /// `rsp_close` was called.
    pub closed: bool,
}

/// An RSerPool socket.
pub(crate) struct Socket {
    fd: OwnedFd,
    /// `SOCK_SEQPACKET` or `SOCK_STREAM`.
    pub socktype: c_int,
    /// `AF_INET`, `AF_INET6` (or 0).
    pub domain: c_int,
    state: Mutex<State>,
    changed: Condvar,
    /// Whether the eventfd is readable now (changed under the state's lock).
    signalled: AtomicBool,
    /// Threads waiting on `changed` (changed under the state's lock): no wake-up call when
    /// none is.
    waiters: AtomicUsize,
}

impl Socket {
    /// A socket with a new descriptor (an eventfd).
    pub fn new(domain: c_int, socktype: c_int, role: Role) -> std::io::Result<Arc<Self>> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(Self {
            fd,
            socktype,
            domain,
            state: Mutex::new(State {
                role,
                queue: VecDeque::new(),
                offset: 0,
                pending: VecDeque::new(),
                bound: Vec::new(),
                params: Default::default(),
                connect_outcome: None,
                status_text: String::new(),
                closed: false,
            }),
            changed: Condvar::new(),
            signalled: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
        }))
    }

    /// The descriptor the application sees.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Locks the socket's state (a panic elsewhere does not poison it for good).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item for `rsp_recvmsg`.
    pub fn push(&self, item: Item) {
        let mut st = self.lock();
        st.queue.push_back(item);
        self.readiness(&st);
        drop(st);
        self.wake();
    }

    /// Queues an accepted session for `rsp_accept`.
    pub fn push_pending(&self, child: Arc<Socket>) {
        let mut st = self.lock();
        st.pending.push_back(child);
        self.readiness(&st);
        drop(st);
        self.wake();
    }

    /// Records the outcome of a connect or failover and wakes its waiter.
    pub fn set_outcome(&self, reached: bool) {
        self.lock().connect_outcome = Some(reached);
        self.wake();
    }

    /// Wakes every waiter (after a change made under the lock).
    pub fn notify(&self, st: &State) {
        self.readiness(st);
        self.wake();
    }

    /// Wakes the threads waiting in [`wait`](Self::wait), if any.
    fn wake(&self) {
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.changed.notify_all();
        }
    }

    /// Makes the descriptor readable exactly while there is something to receive or accept.
    pub fn readiness(&self, st: &State) {
        let ready = !st.queue.is_empty() || !st.pending.is_empty() || st.closed;
        // Under the lock: only a change touches the descriptor.
        if self.signalled.swap(ready, Ordering::AcqRel) == ready {
            return;
        }
        let fd = self.fd.as_raw_fd();
        if ready {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd. Failing (the counter at
            // its maximum) leaves it readable, which is what is wanted.
            unsafe { libc::write(fd, (&raw const one).cast(), 8) };
        } else {
            let mut n: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd; reading
            // resets the counter (EAGAIN when it was 0 already).
            unsafe { libc::read(fd, (&raw mut n).cast(), 8) };
        }
    }

    /// Waits under the lock until `ready(state)` holds, for `timeout` at most (`None`:
    /// forever). Gives the guard back and whether `ready` holds.
    pub fn wait<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        timeout: Option<Duration>,
        ready: impl Fn(&State) -> bool,
    ) -> (MutexGuard<'a, State>, bool) {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if ready(&st) {
                return (st, true);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return (st, false);
            }
            // Counted under the lock, before it is released by the wait.
            self.waiters.fetch_add(1, Ordering::AcqRel);
            st = match deadline {
                None => self.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    self.changed
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            self.waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A C timeout in milliseconds: negative is forever.
pub(crate) fn timeout_ms(ms: c_int) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}
