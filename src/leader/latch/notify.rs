//! How a [`LeaderLatch`](super::LeaderLatch) tells the world about leadership: a cheap status
//! readable synchronously, streams that see every transition, and listeners called in order
//! from a task of their own.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, watch};

use crate::sync::Locked;

/// Callbacks for the leadership changes of a [`LeaderLatch`](super::LeaderLatch), Curator's
/// `LeaderLatchListener`.
///
/// The callbacks are synchronous and are called **in order**, one transition at a time, on
/// tokio's blocking thread pool, from a task that does nothing else: a slow listener delays
/// only the listeners, never the latch (whose [`has_leadership`](super::LeaderLatch::has_leadership)
/// is always current). A listener that panics is logged and does not stop the others.
///
/// A listener hears about transitions that happen after it was added; it is not called with
/// the state at the time it is added.
///
/// ```
/// use zk_recipes::LeaderLatchListener;
///
/// struct Log;
///
/// impl LeaderLatchListener for Log {
///     fn is_leader(&self) {
///         tracing::info!("now the leader");
///     }
///     fn not_leader(&self) {
///         tracing::info!("no longer the leader");
///     }
/// }
/// ```
pub trait LeaderLatchListener: Send + Sync + 'static {
    /// This latch became the leader.
    fn is_leader(&self);

    /// This latch is no longer the leader (it gave leadership up, lost it, or was closed with
    /// [`CloseMode::NotifyLeader`](super::CloseMode::NotifyLeader)).
    fn not_leader(&self);
}

/// What [`Emitter`] publishes through its watch channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) leader: bool,
    pub(crate) closed: bool,
}

type Listeners = Vec<Arc<dyn LeaderLatchListener>>;

/// One transition for the listener task, with the listeners registered when it happened.
type Dispatch = (bool, Listeners);

/// The single place where leadership changes; serialises transitions so that the status, every
/// stream and the listeners see them in the same order.
pub(crate) struct Emitter {
    status: watch::Sender<Status>,
    inner: Mutex<EmitterInner>,
}

struct EmitterInner {
    streams: Vec<mpsc::UnboundedSender<bool>>,
    listeners: Listeners,
    /// `None` once closed, which ends the listener task after it drained what is queued.
    dispatch: Option<mpsc::UnboundedSender<Dispatch>>,
    /// Taken by `start()`, which spawns the listener task on it.
    dispatch_rx: Option<mpsc::UnboundedReceiver<Dispatch>>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Emitter {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            status: watch::Sender::new(Status::default()),
            inner: Mutex::new(EmitterInner {
                streams: Vec::new(),
                listeners: Vec::new(),
                dispatch: Some(tx),
                dispatch_rx: Some(rx),
            }),
        }
    }

    pub(crate) fn status(&self) -> Status {
        *self.status.borrow()
    }

    pub(crate) fn watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Changes leadership. Returns false, and does nothing, when it already was `leader` or the
    /// latch is closed (a closed latch never leads again).
    pub(crate) fn set_leader(&self, leader: bool) -> bool {
        let mut inner = self.inner.locked();
        let current = *self.status.borrow();
        if current.closed || current.leader == leader {
            return false;
        }
        self.status.send_modify(|s| s.leader = leader);
        inner.publish(leader, true);
        true
    }

    /// Closes: leadership is given up (listeners told only when `notify_listeners`), every
    /// stream gets the final `false` and ends, and the listener task ends once it has called
    /// the listeners for what is queued. Idempotent.
    pub(crate) fn close(&self, notify_listeners: bool) {
        let mut inner = self.inner.locked();
        let current = *self.status.borrow();
        if current.closed {
            return;
        }
        self.status.send_modify(|s| {
            s.leader = false;
            s.closed = true;
        });
        if current.leader {
            inner.publish(false, notify_listeners);
        }
        inner.streams.clear();
        inner.dispatch = None;
    }

    /// A stream whose first item is the leadership now, then every transition.
    pub(crate) fn subscribe(&self) -> LeadershipChanges {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner.locked();
        let current = *self.status.borrow();
        if !current.closed {
            // Cannot fail: `rx` is alive.
            let _ = tx.send(current.leader);
            inner.streams.push(tx);
        }
        LeadershipChanges { rx }
    }

    pub(crate) fn add_listener(&self, listener: Arc<dyn LeaderLatchListener>) {
        let mut inner = self.inner.locked();
        inner.listeners.push(listener);
    }

    /// Removes every listener; transitions already queued are still delivered.
    pub(crate) fn clear_listeners(&self) {
        let mut inner = self.inner.locked();
        inner.listeners.clear();
    }

    /// The listener task's end of the queue; `None` after the first call.
    pub(crate) fn take_dispatch_rx(&self) -> Option<mpsc::UnboundedReceiver<Dispatch>> {
        self.inner.locked().dispatch_rx.take()
    }
}

impl EmitterInner {
    fn publish(&mut self, leader: bool, notify_listeners: bool) {
        self.streams.retain(|tx| tx.send(leader).is_ok());
        if notify_listeners && !self.listeners.is_empty() {
            if let Some(tx) = &self.dispatch {
                let _ = tx.send((leader, self.listeners.clone()));
            }
        }
    }
}

/// The listener task: calls the listeners for one transition at a time, in order, off the
/// async worker threads, so that a slow or blocking listener cannot stall the runtime.
pub(crate) async fn dispatch_listeners(mut rx: mpsc::UnboundedReceiver<Dispatch>, path: String) {
    while let Some((leader, listeners)) = rx.recv().await {
        let path_for_task = path.clone();
        let called = tokio::task::spawn_blocking(move || {
            for listener in &listeners {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    if leader {
                        listener.is_leader()
                    } else {
                        listener.not_leader()
                    }
                }));
                if outcome.is_err() {
                    tracing::error!(path = %path_for_task, leader, "a LeaderLatchListener panicked");
                }
            }
        })
        .await;
        if let Err(error) = called {
            tracing::error!(%path, %error, "the LeaderLatchListener task failed");
        }
    }
}

/// Every leadership transition of a [`LeaderLatch`](super::LeaderLatch), in order, from
/// [`LeaderLatch::leadership_changes`](super::LeaderLatch::leadership_changes).
///
/// The first item is the leadership at the time of the call; each later item is a transition
/// (so items alternate). None is dropped or coalesced, however slowly the stream is read. The
/// stream ends when the latch is closed, after a final `false` if the latch was leading.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct LeadershipChanges {
    rx: mpsc::UnboundedReceiver<bool>,
}

impl LeadershipChanges {
    /// The next item, or `None` once the latch is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no item is lost by dropping this future.
    pub async fn next(&mut self) -> Option<bool> {
        self.rx.recv().await
    }
}

impl Stream for LeadershipChanges {
    type Item = bool;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<bool>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn streams_see_the_current_state_then_every_transition() {
        let emitter = Emitter::new();
        let mut early = emitter.subscribe();
        assert!(emitter.set_leader(true));
        assert!(!emitter.set_leader(true), "no transition to the same state");
        let mut late = emitter.subscribe();
        assert!(emitter.set_leader(false));
        assert!(emitter.set_leader(true));
        emitter.close(false);
        assert!(
            !emitter.set_leader(true),
            "a closed latch never leads again"
        );
        assert!(!emitter.status().leader && emitter.status().closed);
        let mut seen = Vec::new();
        while let Some(x) = early.next().await {
            seen.push(x);
        }
        assert_eq!(seen, [false, true, false, true, false]);
        let mut seen = Vec::new();
        while let Some(x) = late.next().await {
            seen.push(x);
        }
        assert_eq!(seen, [true, false, true, false]);
        let mut after = emitter.subscribe();
        assert_eq!(after.next().await, None);
    }

    struct Counting(Arc<AtomicUsize>, Arc<AtomicUsize>);

    impl LeaderLatchListener for Counting {
        fn is_leader(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn not_leader(&self) {
            self.1.fetch_add(1, Ordering::SeqCst);
            panic!("listeners may panic");
        }
    }

    #[tokio::test]
    async fn listeners_are_called_in_order_and_survive_panics() {
        let emitter = Emitter::new();
        let (up, down) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        emitter.add_listener(Arc::new(Counting(up.clone(), down.clone())));
        let task = tokio::spawn(dispatch_listeners(
            emitter.take_dispatch_rx().unwrap(),
            "/x".into(),
        ));
        emitter.set_leader(true);
        emitter.set_leader(false);
        emitter.set_leader(true);
        // Silent close: no final not_leader.
        emitter.close(false);
        task.await.unwrap();
        assert_eq!(up.load(Ordering::SeqCst), 2);
        assert_eq!(down.load(Ordering::SeqCst), 1);
    }
}
