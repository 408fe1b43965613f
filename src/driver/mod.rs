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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Hands a driver's events to the application's sink outside the driver's state lock, in the
/// order the core produced them, a batch at a time.
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

type BatchSink<E> = Box<dyn FnMut(std::vec::Drain<'_, E>) + Send>;

struct DispatchInner<E> {
    sink: BatchSink<E>,
    batch: Vec<E>,
}

impl<E> Dispatcher<E> {
    /// A dispatcher handing events to `sink` one by one.
    pub(crate) fn new(mut sink: impl FnMut(E) + Send + 'static) -> Self {
        Self::batched(move |batch| batch.for_each(&mut sink))
    }

    /// A dispatcher handing each batch of events to `sink` at once.
    pub(crate) fn batched(sink: impl FnMut(std::vec::Drain<'_, E>) + Send + 'static) -> Self {
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
        sink(batch.drain(..));
    }
}

/// The events of a driver for an application that awaits them ([`EventQueue::recv`]): a
/// batch goes in under one lock with one wake-up (a channel wakes per message when the
/// receiver is quick), and it ends when the [`EventSender`] goes.
pub(crate) struct EventQueue<E> {
    shared: Arc<QueueShared<E>>,
}

/// The sending side of an [`EventQueue`]; dropping it ends the queue (after what it holds).
pub(crate) struct EventSender<E> {
    shared: Arc<QueueShared<E>>,
}

struct QueueShared<E> {
    queue: Mutex<(VecDeque<E>, bool)>,
    notify: Notify,
}

impl<E> EventQueue<E> {
    /// A queue and its sender.
    pub(crate) fn new() -> (EventSender<E>, Self) {
        let shared = Arc::new(QueueShared {
            queue: Mutex::new((VecDeque::new(), false)),
            notify: Notify::new(),
        });
        (
            EventSender {
                shared: shared.clone(),
            },
            Self { shared },
        )
    }

    /// The next event; `None` once the sender is gone and every event taken.
    pub(crate) async fn recv(&mut self) -> Option<E> {
        loop {
            {
                let mut q = self.shared.lock();
                if let Some(e) = q.0.pop_front() {
                    return Some(e);
                }
                if q.1 {
                    return None;
                }
            }
            // A push after the look above left a permit: no wake-up is lost.
            self.shared.notify.notified().await;
        }
    }
}

impl<E> QueueShared<E> {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<E>, bool)> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<E> EventSender<E> {
    /// Queues a batch and wakes the receiver once.
    pub(crate) fn send_all(&self, batch: impl Iterator<Item = E>) {
        self.shared.lock().0.extend(batch);
        self.shared.notify.notify_one();
    }
}

impl<E> Drop for EventSender<E> {
    fn drop(&mut self) {
        self.shared.lock().1 = true;
        self.shared.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_queue_keeps_order_across_batches_and_ends_after_its_sender() {
        let (tx, mut rx) = EventQueue::new();
        let sender = tokio::spawn(async move {
            for b in 0..100u32 {
                let mut batch: Vec<u32> = (b * 10..b * 10 + 10).collect();
                tx.send_all(batch.drain(..));
                tokio::task::yield_now().await;
            }
        });
        let limit = Duration::from_secs(10);
        for want in 0..1000u32 {
            let got = tokio::time::timeout(limit, rx.recv()).await.unwrap();
            assert_eq!(got, Some(want));
        }
        sender.await.unwrap();
        assert_eq!(tokio::time::timeout(limit, rx.recv()).await.unwrap(), None);
    }

    #[test]
    fn a_dispatcher_hands_on_in_order_after_giving_the_state_lock_back() {
        let state = Arc::new(Mutex::new(vec![1, 2, 3]));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (probe, seen2) = (state.clone(), seen.clone());
        let d = Dispatcher::new(move |e: i32| {
            // The state lock is free while events are handed on.
            assert!(probe.try_lock().is_ok(), "handed on under the state lock");
            seen2.lock().unwrap().push(e);
        });
        d.deliver(state.lock().unwrap(), |ready| ready);
        assert!(state.lock().unwrap().is_empty());
        state.lock().unwrap().extend([4, 5]);
        d.deliver(state.lock().unwrap(), |ready| ready);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4, 5]);
    }
}
