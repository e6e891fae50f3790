//! The background task of a started [`LeaderSelector`](super::LeaderSelector): it queues, runs
//! `take_leadership`, requeues, and follows the connection states.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::{Inner, Leadership, SelectorError, Settings, StateChangeAction, Turn};
use crate::connection::{Backoff, ConnectionStates};
use crate::error::{panic_message, Error, Result};
use crate::queue::{Held, SequentialQueue, Wait};
use crate::sync::Locked;

/// The first pause before requeueing after a failed turn (an error or a panic in
/// `take_leadership`, or a failure to join the queue); doubled, with jitter, up to
/// [`MAX_FAILURE_BACKOFF`] (see [`Backoff`]).
const MIN_FAILURE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// How one turn ended.
enum TurnEnd {
    /// `take_leadership` returned `Ok`, or the turn was cancelled (leading or waiting).
    Normal,
    /// `take_leadership` failed or panicked, or joining the queue failed.
    Failed,
    /// The client is closed: nothing more can happen.
    ClientClosed,
}

/// The selector's background task.
pub(super) struct SelectorTask {
    pub(super) inner: Arc<Inner>,
    pub(super) queue: Arc<SequentialQueue>,
    pub(super) settings: Settings,
}

impl SelectorTask {
    pub(super) async fn run(self, states: ConnectionStates) {
        tokio::select! {
            _ = self.turns() => {}
            _ = self.follow_states(states) => {}
        }
        {
            self.inner.status().turn = Turn::Idle;
        }
        tracing::debug!("leader selector task ended");
        self.inner.done.cancel();
    }

    /// Hands every connection state to the listener, and cancels the turn when it says so.
    async fn follow_states(&self, mut states: ConnectionStates) {
        while let Some((transition, state)) = states.next_numbered().await {
            let listener = &self.inner.listener;
            let action = match std::panic::catch_unwind(AssertUnwindSafe(|| {
                listener.state_changed(state)
            })) {
                Ok(action) => action,
                Err(panic) => {
                    tracing::error!(%state, panic = %panic_message(&*panic), "state_changed panicked; using the standard policy");
                    StateChangeAction::standard(state)
                }
            };
            tracing::debug!(%state, ?action, "connection state");
            if action == StateChangeAction::CancelLeadership {
                self.inner.cancel_turn_for(transition);
            }
        }
        // The client is closed; the turns end by themselves.
        std::future::pending::<()>().await
    }

    /// Runs turns until the selector or its client is closed.
    async fn turns(&self) {
        let mut failures = 0u32;
        let mut backoff = Backoff::new(MIN_FAILURE_BACKOFF, MAX_FAILURE_BACKOFF);
        // The node of the turn that just ended, when the selector requeues at once: it is
        // deleted in the same transaction as the next turn's node is created, so the server
        // commits both in one go instead of making the next handoff wait behind our requeue.
        let mut ended: Option<Held> = None;
        loop {
            if !self.wait_queued().await {
                if let Some(held) = ended.take() {
                    self.release(held).await;
                }
                return;
            }
            let token = self.inner.closed.child_token();
            {
                let mut status = self.inner.status();
                status.turn = Turn::Waiting(token.clone());
                // Read while the turn is set, under the same lock as the cancellation's check:
                // a transition numbered above this one came after the turn started.
                status.turn_since = self.inner.client.transitions_published();
            }
            let id = self.inner.id.as_bytes();
            let (end, held) = match ended.take() {
                Some(previous) => {
                    let (release, acquire) =
                        self.queue.release_and_acquire(previous, id, Wait::Forever);
                    tokio::join!(self.record_release(release), self.turn(&token, acquire)).1
                }
                None => {
                    self.turn(&token, self.queue.acquire(id, Wait::Forever))
                        .await
                }
            };
            token.cancel();
            let requeue =
                self.inner.auto_requeue.load(Ordering::SeqCst) && !self.inner.closed.is_cancelled();
            self.inner.status().turn = if requeue { Turn::Queued } else { Turn::Idle };
            match (held, &end) {
                (Some(held), TurnEnd::Normal) if requeue => ended = Some(held),
                (Some(held), _) => self.release(held).await,
                (None, _) => {}
            }
            match end {
                TurnEnd::ClientClosed => return,
                TurnEnd::Normal => {
                    failures = 0;
                    backoff.reset();
                }
                TurnEnd::Failed => {
                    failures = failures.saturating_add(1);
                    if requeue {
                        let pause = backoff.next_pause();
                        tracing::debug!(?pause, failures, "requeueing after a failed turn");
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = self.inner.closed.cancelled() => return,
                        }
                    }
                }
            }
        }
    }

    /// Waits until the selector is queued; false once it is closed.
    async fn wait_queued(&self) -> bool {
        loop {
            if self.inner.closed.is_cancelled() || self.inner.client.is_closed() {
                return false;
            }
            if self.inner.status().turn.is_queued() {
                return true;
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = self.inner.closed.cancelled() => return false,
                _ = self.inner.client.closed() => return false,
            }
        }
    }

    /// One turn: wait in the queue (`acquire` is the wait) and lead. The node of a turn that
    /// led is returned for the caller to release (see `turns`); on every other path it is
    /// released here.
    async fn turn(
        &self,
        token: &CancellationToken,
        acquire: impl std::future::Future<Output = Result<Option<Held>>>,
    ) -> (TurnEnd, Option<Held>) {
        let acquired = tokio::select! {
            biased;
            // Dropping the acquire withdraws the waiter and deletes its node.
            _ = token.cancelled() => {
                tracing::debug!("turn cancelled while waiting in the queue");
                self.withdrawn().await;
                return (TurnEnd::Normal, None);
            }
            acquired = acquire => acquired,
        };
        let held = match acquired {
            Ok(Some(held)) => held,
            Ok(None) => return (TurnEnd::Normal, None),
            Err(_) if self.inner.client.is_closed() => return (TurnEnd::ClientClosed, None),
            Err(e) => {
                self.inner
                    .report(SelectorError::Queue(e), &self.settings.on_error);
                return (TurnEnd::Failed, None);
            }
        };
        if token.is_cancelled() {
            self.release(held).await;
            return (TurnEnd::Normal, None);
        }
        let end = self.lead(&held, token).await;
        (end, Some(held))
    }

    /// Waits (at most the connection timeout) for the node of a dropped acquire to be deleted,
    /// so that a selector that reports itself out of the queue (or closed) has no node left.
    async fn withdrawn(&self) {
        if !self.queue.deletes_settled().await {
            tracing::warn!(
                "the withdrawn node is not deleted yet; the delete goes on in the background"
            );
        }
    }

    /// Runs `take_leadership` for a held node, until it returns or is cancelled and dropped.
    async fn lead(&self, held: &Held, token: &CancellationToken) -> TurnEnd {
        let node = held.node();
        let leadership = Leadership {
            client: self.inner.client.clone(),
            id: self.inner.id.as_str().into(),
            node_path: node.path.as_str().into(),
            fencing_token: held.fencing_token(),
            session: node.session.clone(),
            token: token.clone(),
        };
        tracing::info!(node = %node.name, fencing_token = held.fencing_token(), "took leadership");
        self.inner.status().turn = Turn::Leading(leadership.clone());
        let listener = self.inner.listener.clone();
        // Boxed by async_trait, so `Unpin`: it can be polled by reference and dropped by value.
        let mut work = AssertUnwindSafe(listener.take_leadership(leadership)).catch_unwind();
        let gone = held.gone();
        let outcome = tokio::select! {
            outcome = &mut work => Some(outcome),
            _ = token.cancelled() => None,
            _ = gone => {
                tracing::warn!(node = %node.name, "leader node or session lost; cancelling leadership");
                None
            }
        };
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => {
                // Step 1: the token. Step 2: the grace period, then the drop.
                token.cancel();
                tracing::debug!(grace = ?self.settings.grace, "leadership cancelled; waiting for take_leadership to return");
                match tokio::time::timeout(self.settings.grace, &mut work).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::warn!(grace = ?self.settings.grace, "take_leadership did not return within the grace period after cancellation; dropping it");
                        Ok(Ok(()))
                    }
                }
            }
        };
        // The future is dropped (if it has not finished) before the node is released. A panic
        // in one of its `Drop` impls must not take the selector's task down either.
        if std::panic::catch_unwind(AssertUnwindSafe(move || drop(work))).is_err() {
            tracing::error!("dropping take_leadership's future panicked");
        }
        token.cancel();
        self.inner.status().turn = Turn::Waiting(token.clone());
        tracing::info!(node = %node.name, "gave up leadership");
        match outcome {
            Ok(Ok(())) => TurnEnd::Normal,
            Ok(Err(e)) => {
                self.inner
                    .report(SelectorError::Listener(e), &self.settings.on_error);
                TurnEnd::Failed
            }
            Err(panic) => {
                self.inner.report(
                    SelectorError::Panicked(panic_message(&*panic)),
                    &self.settings.on_error,
                );
                TurnEnd::Failed
            }
        }
    }

    /// Deletes the node, waiting at most the connection timeout (the delete goes on in the
    /// background after that: `Held::release` is cancel safe).
    async fn release(&self, held: Held) {
        self.record_release(held.release()).await
    }

    /// Awaits a release, at most the connection timeout, and records its outcome for `close`
    /// and the error hook.
    async fn record_release(&self, release: impl std::future::Future<Output = Result<()>>) {
        let limit = self.inner.client.connection_timeout();
        let error = match tokio::time::timeout(limit, release).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(Error::Timeout(limit)),
        };
        if let Some(e) = &error {
            self.inner
                .report(SelectorError::Release(e.clone()), &self.settings.on_error);
        }
        *self.inner.last_release.locked() = error;
    }
}
