//! The tokio drivers of the sans-IO cores: each owns a core, feeds it what arrives on its
//! associations and timers, and carries out what it asks (send, connect, close, wake up later).
//!
//! * [`client`]: [`Client`](crate::Client), the application API, driving the ASAP client core
//!   ([`asap`](crate::asap)).
//! * [`registrar`]: [`RegistrarServer`](crate::RegistrarServer), driving the registrar core
//!   ([`registrar`](crate::registrar)).
//! * [`session`]: [`Session`](crate::Session), a pool user's session, driving the session core
//!   ([`session`](crate::session)) with a `Client`.
//! * [`pe_session`]: [`SessionServer`](crate::SessionServer), a pool element's sessions,
//!   driving the PE side of the session core.

pub mod client;
pub mod pe_session;
pub mod registrar;
pub mod session;

use std::sync::{Mutex, MutexGuard};

/// Hands a driver's events to the application's sink outside the driver's state lock, in the
/// order the core produced them.
///
/// A sink that wakes a thread (a channel, a condition variable) makes a system call; run under
/// the state lock, it holds up the application's next call (a send) for as long. So a task
/// moves the events it found into a batch while it still holds the state lock, takes the
/// dispatcher's lock, and only then gives the state lock back: the next task to find events
/// waits for this batch to be handed on first, so order holds, while calls of the
/// application's (which never hand on events) run at once.
pub(crate) struct Dispatcher<E> {
    inner: Mutex<DispatchInner<E>>,
}

struct DispatchInner<E> {
    sink: Box<dyn FnMut(E) + Send>,
    batch: Vec<E>,
}

impl<E> Dispatcher<E> {
    /// A dispatcher handing events to `sink`.
    pub(crate) fn new(sink: impl FnMut(E) + Send + 'static) -> Self {
        Self {
            inner: Mutex::new(DispatchInner {
                sink: Box::new(sink),
                batch: Vec::new(),
            }),
        }
    }

    /// Takes the events in `ready` (which the caller reaches through `guard`), gives `guard`
    /// back and hands the events on.
    pub(crate) fn deliver<S>(
        &self,
        mut guard: MutexGuard<'_, S>,
        ready: impl Fn(&mut S) -> &mut Vec<E>,
    ) {
        if ready(&mut guard).is_empty() {
            return;
        }
        let mut d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut d.batch, ready(&mut guard));
        drop(guard);
        let DispatchInner { sink, batch } = &mut *d;
        for e in batch.drain(..) {
            sink(e);
        }
    }
}
