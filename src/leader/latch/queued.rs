//! The background task of a [`LeaderLatch`](super::LeaderLatch) in Curator's layout
//! ([`LatchLayout::Curator`](super::LatchLayout::Curator)): every candidate queues an
//! ephemeral-sequential node `<path>/_c_<uuid>-latch-<seq10>`; the lowest leads, until its
//! latch is closed; each other candidate watches its predecessor.
//!
//! The queue is this crate's queue core, the one the mutex and the selector stand on, so the
//! latch inherits its proofs: a node is taken for the leader's only when a listing of the
//! parent's current incarnation shows it first and our node present; a node deleted by
//! someone else joins the queue again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::race::End;
use super::{ConnectionErrorPolicy, Inner, LeaderNode};
use crate::connection::Backoff;
use crate::queue::{Held, SequentialQueue, Wait};
use crate::sync::Locked;

/// The first pause before joining again after a failed join; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What to do when leading ended.
enum Next {
    /// Join the queue again, at the back (Curator's `reset()`).
    Requeue,
    Stop(End),
}

pub(super) struct QueueTask {
    pub(super) inner: Arc<Inner>,
    pub(super) cancel: CancellationToken,
    pub(super) queue: Arc<SequentialQueue>,
    pub(super) policy: ConnectionErrorPolicy,
    /// Answers `start()` once our node is in the queue (or leads).
    pub(super) started: std::sync::Mutex<Option<oneshot::Sender<crate::Result<()>>>>,
}

impl QueueTask {
    pub(super) async fn run(self) {
        let (end, held) = self.turns().await;
        end.give_up_leadership(&self.inner);
        // Leadership is already given up (the emitter is closed); only now may the node go.
        match held {
            Some(held) => self.release(held).await,
            // A waiting node, or one whose create was in flight, is deleted in the background
            // once its acquire is dropped: `close()` returns after that, as after a release.
            None if matches!(end, End::Cancelled) => self.withdrawn().await,
            None => {}
        }
        end.answer_start(self.take_started());
    }

    fn take_started(&self) -> Option<oneshot::Sender<crate::Result<()>>> {
        self.started.locked().take()
    }

    fn report_started(&self) {
        if let Some(started) = self.take_started() {
            let _ = started.send(Ok(()));
        }
    }

    /// Joins the queue, leads when first, and joins again when leadership ends, until the
    /// latch or its client is closed. The node held when it stops is returned for deletion.
    async fn turns(&self) -> (End, Option<Held>) {
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        loop {
            let (joined_tx, mut joined) = oneshot::channel();
            let id = self.inner.id.clone();
            let queue = self.queue.clone();
            let acquire = queue.acquire_announcing(id.as_bytes(), Wait::Forever, joined_tx);
            tokio::pin!(acquire);
            self.inner
                .counters
                .races
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut announced = false;
            let acquired = loop {
                tokio::select! {
                    biased;
                    // Dropping the acquire withdraws a waiting node (deleted in the background).
                    _ = self.cancel.cancelled() => return (End::Cancelled, None),
                    _ = self.inner.client.closed() => return (End::ClientClosed, None),
                    placed = &mut joined, if !announced => {
                        announced = true;
                        if placed.is_ok() {
                            self.report_started();
                        }
                    }
                    acquired = &mut acquire => break acquired,
                }
            };
            let held = match acquired {
                Ok(Some(held)) => held,
                Ok(None) => continue,
                Err(_) if self.inner.client.is_closed() => return (End::ClientClosed, None),
                Err(error) if !error.is_retryable() && self.started_pending() => {
                    return (End::Failed(error), None)
                }
                Err(error) => {
                    tracing::warn!(path = %self.inner.path, %error, "the leader latch could not join the queue; trying again");
                    self.report_started();
                    let pause = backoff.next_pause();
                    tokio::select! {
                        _ = self.cancel.cancelled() => return (End::Cancelled, None),
                        _ = self.inner.client.closed() => return (End::ClientClosed, None),
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            backoff.reset();
            match self.lead(&held).await {
                Next::Requeue => self.release(held).await,
                Next::Stop(end) => return (end, Some(held)),
            }
        }
    }

    /// True while `start()` still waits for the first attempt.
    fn started_pending(&self) -> bool {
        self.started.locked().is_some()
    }

    /// Leads on `held` until the latch is closed, the node or the session is lost, or (by the
    /// standard policy) the connection is suspended: Curator then gives leadership up and, once
    /// reconnected, queues a new node.
    async fn lead(&self, held: &Held) -> Next {
        let node = held.node();
        *self.inner.leader_node.locked() = Some(LeaderNode {
            session: node.session.clone(),
            path: node.path.clone(),
            czxid: node.stat.czxid,
        });
        if self.inner.emitter.set_leader(true) {
            self.inner
                .counters
                .elected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(path = %self.inner.path, id = %self.inner.id, node = %node.name, "leadership acquired");
        }
        self.report_started();
        let lost = held.lost_signal();
        let policy = self.policy;
        let suspended = async {
            match policy {
                ConnectionErrorPolicy::Standard => lost.wait().await,
                ConnectionErrorPolicy::SessionOnly => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Next::Stop(End::Cancelled),
            _ = self.inner.client.closed() => return Next::Stop(End::ClientClosed),
            _ = held.gone() => "the node was deleted or the session lost",
            _ = suspended => "the connection was suspended",
        };
        self.inner.leader_node.locked().take();
        if self.inner.emitter.set_leader(false) {
            tracing::info!(path = %self.inner.path, id = %self.inner.id, reason, "leadership given up");
        }
        Next::Requeue
    }

    /// Waits, at most for the connection timeout, for the node of a dropped acquire to be
    /// deleted (the delete goes on in the background after that).
    async fn withdrawn(&self) {
        if !self.queue.deletes_settled().await {
            tracing::debug!(path = %self.inner.path, "deleting the withdrawn leader latch node in the background");
        }
    }

    /// Deletes our node: at most for the connection timeout here, then in the background until
    /// it is gone or its session is.
    async fn release(&self, held: Held) {
        let budget = self.inner.client.connection_timeout();
        match tokio::time::timeout(budget, held.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(path = %self.inner.path, %error, "deleting the leader latch node failed; it is deleted in the background");
            }
            Err(_) => {
                tracing::debug!(path = %self.inner.path, "deleting the leader latch node in the background");
            }
        }
    }
}
