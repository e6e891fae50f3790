//! [`LeaderSelector`]: fair, queue-ordered leadership with a listener (Curator's
//! `LeaderSelector`).
//!
//! Every candidate joins a queue: it creates an ephemeral-sequential node
//! `<path>/_c_<uuid>-lock-<seq10>` with its participant id as the data. The candidate with the
//! smallest sequence leads; every other candidate watches **only its predecessor**, so a change
//! of leader wakes exactly one candidate. These are the nodes Curator's `LeaderSelector` (built
//! on its `InterProcessMutex`) creates, so Rust selectors and Java Curator selectors on one
//! path take turns in one queue.
//!
//! A selector leads only while its listener's
//! [`take_leadership`](LeaderSelectorListener::take_leadership) runs. When it returns,
//! leadership is given up and the node deleted; with [`auto_requeue`](LeaderSelector::auto_requeue)
//! the selector joins the back of the queue again, so leadership goes round the candidates in
//! arrival order.
//!
//! # `LeaderSelector` or [`LeaderLatch`](crate::LeaderLatch)?
//!
//! * **`LeaderSelector`** is *fair* and has *no herd*: candidates lead in the order they
//!   queued, and a change of leader costs one watch event, however many candidates wait.
//!   Leadership is a *turn*: it lasts as long as `take_leadership` runs. Choose it for many
//!   candidates, for work that should rotate, or to take part with Java Curator processes.
//! * **`LeaderLatch`** is a simple *race* for one node: unfair (the same candidate may win again
//!   and again), and every follower is woken on every change (the herd). Leadership lasts until
//!   the latch is closed. Choose it for a handful of replicas where any leader is as good as
//!   another and changes are rare.
//!
//! # Cancellation
//!
//! Leadership is cancelled when:
//!
//! * the connection state changes and the listener's
//!   [`state_changed`](LeaderSelectorListener::state_changed) says so (by default on
//!   [`Suspended`](ConnectionState::Suspended) and [`Lost`](ConnectionState::Lost): Curator's
//!   `CancelLeadershipException` from `LeaderSelectorListenerAdapter`). A state change
//!   cancels only a turn that started before it: a [`requeue`](LeaderSelector::requeue) made
//!   as soon as the application hears `Lost` is not cancelled by the selector's own handling
//!   of that same `Lost`, which may come a moment later;
//! * the session is lost or the leader's node is deleted, whatever `state_changed` says;
//! * [`interrupt_leadership`](LeaderSelector::interrupt_leadership) or
//!   [`close`](LeaderSelector::close) is called, or the selector is dropped.
//!
//! Cancellation happens in three steps, always in this order:
//!
//! 1. The [`Leadership`] token is cancelled: [`Leadership::cancelled`] resolves and
//!    [`Leadership::is_cancelled`] is true. A well-behaved `take_leadership` stops its work and
//!    returns.
//! 2. If it has not returned after the [grace period](LeaderSelector::cancel_grace), its future
//!    is **dropped**. What that means for the code in it: it stops at the `.await` it is
//!    suspended in, and no code after that point runs (no `finally`, no clean-up written
//!    after the await); the `Drop` impls of everything it owns (guards, handles, buffers) do
//!    run. Put clean-up that must happen into `Drop` impls (or finish it within the grace
//!    period). Tasks it spawned are **not** stopped by the drop: give them
//!    [`Leadership::cancellation_token`] and make them stop on it.
//! 3. The node is deleted, and only then can the next candidate lead.
//!
//! (With auto-requeue, the delete of a turn that ended normally and the create of the
//! selector's next node are one transaction, so the server writes them in one go.)
//!
//! A candidate that is still waiting in the queue when cancellation comes is withdrawn and its
//! node deleted; with auto-requeue it joins the back of the queue again. (If the create of its
//! node was still in flight, the node may appear a moment later; a background clean-up deletes
//! it then.)
//!
//! # Deleted nodes
//!
//! A candidate whose waiting node is deleted by someone else (an operator, a clean-up job, or
//! the path's parent deleted and created again) is never made leader from it: it joins the
//! back of the queue again with a new node, as often as the client's
//! [retry policy](crate::ClientBuilder::retry_policy) allows; then the failure goes to the
//! [error hook](LeaderSelector::on_error) as [`SelectorError::Queue`] with
//! [`Error::NodeDeleted`], and with auto-requeue the selector queues again after a backoff.
//!
//! A leader whose node is deleted is cancelled as described above. Its `take_leadership` may
//! still run for the grace period; no other selector **of the same client** starts leading
//! on the path before it has ended. (Candidates of other clients, in this process or another,
//! cannot know; the [fencing token](#fencing) is for them.)
//!
//! The grace period should be well below the session timeout: a leader that is cut off from
//! ZooKeeper notices after a fraction of the session timeout (a silence of the connection
//! timeout or 2/5 of the session timeout; see [`Client`]), and the server gives
//! its node to the next candidate only after the whole session timeout. Notice + grace <
//! session timeout keeps two `take_leadership` from running at once.
//!
//! # Fencing
//!
//! ZooKeeper cannot stop a paused process (a long GC or a frozen VM) from believing it still
//! leads. Hand [`Leadership::fencing_token`] (the node's creation zxid, which rises with every
//! turn across the ensemble) to the resources the leader writes to, and have them refuse tokens
//! lower than the highest they saw.

mod leadership;
mod task;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use zookeeper_client::Acl;

use crate::connection::{Client, ConnectionState};
use crate::error::{Error, Result};
use crate::participant::default_participant_id;
use crate::queue::{Participant, SequentialQueue, LOCK_NAMES};
use crate::sync::Locked;

pub use self::leadership::Leadership;
use self::task::SelectorTask;

/// The error type a [`LeaderSelectorListener`] returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The default [`LeaderSelector::cancel_grace`].
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_millis(500);

/// What a [`LeaderSelector`] does about a connection state change, as decided by
/// [`LeaderSelectorListener::state_changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateChangeAction {
    /// Carry on: keep leading, or keep waiting in the queue.
    Continue,
    /// Cancel the current turn: leadership if leading (see the
    /// [module documentation](self#cancellation)), the place in the queue if waiting. With
    /// auto-requeue the selector joins the queue again. Curator's `CancelLeadershipException`.
    CancelLeadership,
}

impl StateChangeAction {
    /// Curator's `LeaderSelectorListenerAdapter` policy, the default of
    /// [`LeaderSelectorListener::state_changed`]: cancel on
    /// [`Suspended`](ConnectionState::Suspended) and [`Lost`](ConnectionState::Lost), carry on
    /// otherwise.
    pub fn standard(state: ConnectionState) -> Self {
        match state {
            ConnectionState::Suspended | ConnectionState::Lost => Self::CancelLeadership,
            _ => Self::Continue,
        }
    }
}

/// What a [`LeaderSelector`] calls when it gets leadership (Curator's
/// `LeaderSelectorListener`).
///
/// # The contract of `take_leadership`
///
/// * It is called when this selector becomes the leader, and the selector **leads exactly as
///   long as it runs**. Return to give leadership up: the node is deleted and the next
///   candidate leads. With [`auto_requeue`](LeaderSelector::auto_requeue) the selector then
///   joins the back of the queue.
/// * It never runs twice at once for one selector, and never while another candidate of the
///   group leads (as far as ZooKeeper can tell; see [fencing](self#fencing)).
/// * When leadership is cancelled, [`Leadership::cancelled`] resolves. Stop and return. After the
///   [grace period](LeaderSelector::cancel_grace) the future is dropped (see
///   [Cancel safety](#cancel-safety)).
/// * An `Err` or a panic ends the turn like a return: leadership is released, the error is
///   logged and passed to the [error hook](LeaderSelector::on_error), and with auto-requeue the
///   selector queues again (after a short backoff that grows while turns keep failing).
///
/// ```no_run
/// use std::time::Duration;
/// use zk_recipes::{BoxError, LeaderSelectorListener, Leadership};
///
/// struct Worker;
///
/// #[async_trait::async_trait]
/// impl LeaderSelectorListener for Worker {
///     async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
///         tracing::info!(id = leadership.id(), token = leadership.fencing_token(), "leading");
///         loop {
///             tokio::select! {
///                 // Cancelled: a suspension, a lost session, interrupt_leadership or close.
///                 _ = leadership.cancelled() => return Ok(()),
///                 _ = tokio::time::sleep(Duration::from_secs(1)) => {
///                     // One unit of leader work, fenced by the token.
///                 }
///             }
///         }
///     }
/// }
/// ```
///
/// # Cancel safety
///
/// The future `take_leadership` returns may be **dropped** at any `.await` once leadership is
/// cancelled and the grace period has passed. Code after that `.await` then never runs;
/// `Drop` impls of the values it owns do. Tasks it spawned keep running unless they watch
/// [`Leadership::cancellation_token`]. Write it so that stopping at any await leaves shared
/// state consistent (or so that it returns within the grace period).
#[async_trait::async_trait]
pub trait LeaderSelectorListener: Send + Sync + 'static {
    /// This selector leads until the returned future completes. See the
    /// [trait documentation](LeaderSelectorListener) for the contract.
    ///
    /// # Errors
    ///
    /// An error ends the turn (leadership is released), and is reported through `tracing` and
    /// the selector's [error hook](LeaderSelector::on_error) as
    /// [`SelectorError::Listener`].
    ///
    /// # Cancel safety
    ///
    /// See [Cancel safety](LeaderSelectorListener#cancel-safety): the future is dropped after
    /// the grace period once leadership is cancelled.
    async fn take_leadership(&self, leadership: Leadership) -> std::result::Result<(), BoxError>;

    /// Called for every connection state change of the selector's client, in order, from the
    /// selector's task (keep it quick; it must not block).
    ///
    /// The default is [`StateChangeAction::standard`]: cancel on `Suspended` and `Lost`
    /// (Curator's `LeaderSelectorListenerAdapter`). Override it to ride out suspensions:
    /// return [`StateChangeAction::Continue`] for `Suspended`. Whatever it returns, leadership
    /// is always cancelled when the session is lost or the leader's node is deleted.
    fn state_changed(&self, state: ConnectionState) -> StateChangeAction {
        StateChangeAction::standard(state)
    }
}

#[async_trait::async_trait]
impl<T: LeaderSelectorListener + ?Sized> LeaderSelectorListener for Arc<T> {
    async fn take_leadership(&self, leadership: Leadership) -> std::result::Result<(), BoxError> {
        (**self).take_leadership(leadership).await
    }

    fn state_changed(&self, state: ConnectionState) -> StateChangeAction {
        (**self).state_changed(state)
    }
}

/// A failure a [`LeaderSelector`] reports through `tracing` and its
/// [error hook](LeaderSelector::on_error). None of them stops the selector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// `take_leadership` returned an error. Leadership was released.
    #[error("take_leadership failed: {0}")]
    Listener(#[source] BoxError),
    /// `take_leadership` panicked; the panic's message. Leadership was released.
    #[error("take_leadership panicked: {0}")]
    Panicked(String),
    /// Joining or waiting in the queue failed (e.g. the retry policy gave up on a connection
    /// loss, or an ACL refused the create). With auto-requeue the selector tries again after a
    /// backoff; without, it stays out of the queue until [`LeaderSelector::requeue`].
    #[error("joining the leader queue failed: {0}")]
    Queue(#[source] Error),
    /// Deleting the node at the end of a turn failed or timed out. The delete goes on in the
    /// background until it succeeds or the session ends (which deletes the node too).
    #[error("releasing leadership failed: {0}")]
    Release(#[source] Error),
}

/// The lifecycle of a [`LeaderSelector`]: the crate's one [`RecipeState`](crate::RecipeState).
pub type SelectorState = crate::RecipeState;

type ErrorHook = Arc<dyn Fn(SelectorError) + Send + Sync + 'static>;

#[derive(Clone)]
struct Settings {
    acls: Vec<Acl>,
    grace: Duration,
    on_error: Option<ErrorHook>,
}

struct Status {
    lifecycle: SelectorState,
    turn: Turn,
    /// The number of the latest connection state transition when the current turn started:
    /// only later transitions cancel it. A requeue made after hearing `LOST` starts a turn
    /// that the selector's own (later) handling of that `LOST` must not cancel.
    turn_since: u64,
}

/// Where the selector is in its turns.
#[derive(Debug, Clone, Default)]
enum Turn {
    /// Out of the queue: not requeued after the last turn (without auto-requeue).
    #[default]
    Idle,
    /// A turn is about to start: started or requeued, the task has not joined yet.
    Queued,
    /// Waiting in the queue; the token cancels the turn.
    Waiting(CancellationToken),
    /// Leading: `take_leadership` runs with this leadership, whose token cancels the turn.
    Leading(Leadership),
}

impl Turn {
    /// Queued, waiting or leading (Curator's `isQueued`).
    fn is_queued(&self) -> bool {
        !matches!(self, Turn::Idle)
    }

    /// The cancellation of the turn under way, if one is.
    fn token(&self) -> Option<&CancellationToken> {
        match self {
            Turn::Waiting(token) => Some(token),
            Turn::Leading(leadership) => Some(&leadership.token),
            Turn::Idle | Turn::Queued => None,
        }
    }
}

struct Inner {
    client: Client,
    path: String,
    /// The participant id (see [`LeaderSelector::with_id`]).
    id: String,
    listener: Arc<dyn LeaderSelectorListener>,
    settings: Mutex<Settings>,
    auto_requeue: AtomicBool,
    status: Mutex<Status>,
    /// Wakes the idle task after a requeue.
    wake: Notify,
    /// Cancelled by close or drop; every turn's token is a child of it.
    closed: CancellationToken,
    /// Cancelled when the selector's task has ended.
    done: CancellationToken,
    /// The error of the last release, for `close`.
    last_release: Mutex<Option<Error>>,
}

impl Inner {
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.locked()
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.locked()
    }

    /// Cancels the current turn for the connection state transition numbered `transition`,
    /// unless the turn started after it. True if there was one to cancel.
    fn cancel_turn_for(&self, transition: u64) -> bool {
        let status = self.status();
        if status.turn_since >= transition {
            tracing::debug!(path = %self.path, transition, "a turn started after this connection state goes on");
            return false;
        }
        self.cancel_turn_of(&status, "connection state")
    }

    /// Cancels the turn under way, if any. True if there was one to cancel.
    fn cancel_turn(&self, why: &str) -> bool {
        self.cancel_turn_of(&self.status(), why)
    }

    fn cancel_turn_of(&self, status: &Status, why: &str) -> bool {
        match status.turn.token() {
            Some(token) if !token.is_cancelled() => {
                let leading = matches!(status.turn, Turn::Leading(_));
                tracing::debug!(path = %self.path, reason = why, leading, "cancelling the selector's turn");
                token.cancel();
                true
            }
            _ => false,
        }
    }

    fn report(&self, error: SelectorError, hook: &Option<ErrorHook>) {
        match &error {
            SelectorError::Release(_) | SelectorError::Queue(_) => {
                tracing::warn!(path = %self.path, error = %error, "leader selector")
            }
            _ => tracing::error!(path = %self.path, error = %error, "leader selector"),
        }
        if let Some(hook) = hook {
            if std::panic::catch_unwind(AssertUnwindSafe(|| hook(error))).is_err() {
                tracing::error!(path = %self.path, "the leader selector's error hook panicked");
            }
        }
    }
}

/// Fair, queue-ordered leadership with a listener: Curator's `LeaderSelector`, async.
///
/// See the [module documentation](self) for the protocol, cancellation, and when to choose it
/// over [`LeaderLatch`](crate::LeaderLatch).
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::{BoxError, LeaderSelector, LeaderSelectorListener, Leadership};
///
/// struct Worker;
///
/// #[async_trait::async_trait]
/// impl LeaderSelectorListener for Worker {
///     async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
///         // Lead for one unit of work, then let the next candidate lead.
///         tokio::select! {
///             _ = leadership.cancelled() => {}
///             _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
///         }
///         Ok(())
///     }
/// }
///
/// let selector = LeaderSelector::new(&client, "/app/selector", Worker)?
///     .with_id("node-1")
///     .auto_requeue(true)
///     .on_error(|e| tracing::warn!(error = %e, "selector"));
/// selector.start()?;
/// // …
/// let leader = selector.leader().await?;
/// selector.close().await?;
/// # Ok(()) }
/// ```
///
/// # Background task
///
/// [`start`](Self::start) spawns one task (on the client's runtime) that queues, runs
/// `take_leadership` and requeues; it ends on [`close`](Self::close). **Dropping** a started
/// selector without closing it closes it in the background: leadership is cancelled, and the
/// task drops `take_leadership` after the grace period, deletes the node and ends.
///
/// `LeaderSelector` is not `Clone`; share it with an `Arc`.
pub struct LeaderSelector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LeaderSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderSelector")
            .field("path", &self.inner.path)
            .field("id", &self.inner.id)
            .field("state", &self.state())
            .field("is_leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

impl LeaderSelector {
    /// A selector on `path` that calls `listener` when it leads. Nothing is sent to ZooKeeper
    /// until [`start`](Self::start).
    ///
    /// The participant id defaults to [`default_participant_id`] (`hostname/pid`); set another
    /// with [`with_id`](Self::with_id).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if `path` is not a usable znode path (see
    /// [`validate_recipe_path`](crate::validate_recipe_path)).
    pub fn new(client: &Client, path: &str, listener: impl LeaderSelectorListener) -> Result<Self> {
        crate::path::validate_recipe_path(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client: client.clone(),
                path: path.to_owned(),
                id: default_participant_id().to_owned(),
                listener: Arc::new(listener),
                settings: Mutex::new(Settings {
                    acls: Vec::new(),
                    grace: DEFAULT_CANCEL_GRACE,
                    on_error: None,
                }),
                auto_requeue: AtomicBool::new(false),
                status: Mutex::new(Status {
                    lifecycle: SelectorState::Latent,
                    turn: Turn::Idle,
                    turn_since: 0,
                }),
                wake: Notify::new(),
                closed: CancellationToken::new(),
                done: CancellationToken::new(),
                last_release: Mutex::new(None),
            }),
        })
    }

    /// Sets the participant id, the data of this selector's nodes: what
    /// [`participants`](Self::participants) (and Curator's `getParticipants` in Java
    /// processes) show. Any string, the empty one too (see [ids](crate::participant)).
    ///
    /// Call it before [`start`](Self::start): once started, the selector's nodes carry the id,
    /// so it cannot change, and this leaves it as it was (with a warning in the log).
    /// [`start`](Self::start) refuses an id that would make the node's create larger than the
    /// client's [`max_request_size`](Client::max_request_size).
    ///
    /// ```no_run
    /// # use zk_recipes::{BoxError, LeaderSelector, LeaderSelectorListener, Leadership};
    /// # struct Worker;
    /// # #[async_trait::async_trait]
    /// # impl LeaderSelectorListener for Worker {
    /// #     async fn take_leadership(&self, _leadership: Leadership) -> Result<(), BoxError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let selector = LeaderSelector::new(&client, "/services/billing/leader", Worker)?
    ///     .with_id("billing-7");
    /// assert_eq!(selector.id(), "billing-7");
    /// # Ok(()) }
    /// ```
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        // The handle is not `Clone`: only a started selector's task shares `inner`.
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.id = id.into(),
            None => tracing::warn!(
                path = %self.inner.path,
                id = %self.inner.id,
                "with_id on a started leader selector changes nothing"
            ),
        }
        self
    }

    /// The ACLs of this selector's nodes (default: the client's
    /// [default ACLs](crate::ClientBuilder::default_acls)). Takes effect at
    /// [`start`](Self::start).
    pub fn with_acls(self, acls: Vec<Acl>) -> Self {
        self.inner.settings().acls = acls;
        self
    }

    /// Whether to join the queue again after every turn (default `false`: one turn, then
    /// [`requeue`](Self::requeue) for another). Curator's `autoRequeue()`. May be changed at
    /// any time with [`set_auto_requeue`](Self::set_auto_requeue).
    pub fn auto_requeue(self, auto_requeue: bool) -> Self {
        self.set_auto_requeue(auto_requeue);
        self
    }

    /// Changes [`auto_requeue`](Self::auto_requeue); it applies when the current turn ends.
    pub fn set_auto_requeue(&self, auto_requeue: bool) {
        self.inner
            .auto_requeue
            .store(auto_requeue, Ordering::SeqCst);
    }

    /// How long `take_leadership` may run on after its leadership is cancelled before its
    /// future is dropped (default [`DEFAULT_CANCEL_GRACE`], 500 ms). Keep it well below the
    /// session timeout (see the [module documentation](self#cancellation)). Takes effect at
    /// [`start`](Self::start).
    pub fn cancel_grace(self, grace: Duration) -> Self {
        self.inner.settings().grace = grace;
        self
    }

    /// A hook for the failures the selector recovers from by itself: errors and panics of
    /// `take_leadership`, failures to join the queue or to release (see [`SelectorError`]).
    /// They are logged with `tracing` either way. Called from the selector's task: keep it quick
    /// (send the error to a channel for anything slow). A panic in the hook is caught and
    /// logged. Takes effect at [`start`](Self::start).
    pub fn on_error(self, hook: impl Fn(SelectorError) + Send + Sync + 'static) -> Self {
        self.inner.settings().on_error = Some(Arc::new(hook));
        self
    }

    /// The selector path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The participant id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The lifecycle state.
    pub fn state(&self) -> SelectorState {
        self.inner.status().lifecycle
    }

    /// Starts the selector: its background task joins the queue. Returns at once.
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if it was already started;
    /// * [`Error::Closed`] if it was closed, or its client is closed;
    /// * [`Error::InvalidArgument`] if the node's create would exceed the client's
    ///   [`max_request_size`](Client::max_request_size) (a long path or id).
    pub fn start(&self) -> Result<()> {
        let settings = self.inner.settings().clone();
        let mut status = self.inner.status();
        match status.lifecycle {
            SelectorState::Latent => {}
            SelectorState::Started => {
                return Err(Error::IllegalState(
                    "the leader selector is already started",
                ))
            }
            SelectorState::Closed => return Err(Error::Closed),
        }
        if self.inner.client.is_closed() {
            return Err(Error::Closed);
        }
        let queue = SequentialQueue::new(
            &self.inner.client,
            self.inner.path.clone(),
            settings.acls.clone(),
            LOCK_NAMES,
        );
        queue.check_join(self.inner.id.as_bytes())?;
        status.lifecycle = SelectorState::Started;
        status.turn = Turn::Queued;
        drop(status);
        // Subscribed now, so no transition after `start` returns is missed.
        let states = self.inner.client.connection_states();
        let span =
            tracing::info_span!("leader_selector", path = %self.inner.path, id = %self.inner.id);
        let task = SelectorTask {
            inner: self.inner.clone(),
            queue,
            settings,
        };
        self.inner.client.spawn(task.run(states).instrument(span));
        Ok(())
    }

    /// True while this selector leads, as far as it knows: its `take_leadership` runs and its
    /// leadership is not cancelled. Cheap and synchronous; for an answer from the server, see
    /// [`has_leadership`](Self::has_leadership).
    pub fn is_leader(&self) -> bool {
        matches!(&self.inner.status().turn, Turn::Leading(leadership) if !leadership.is_cancelled())
    }

    /// Asks ZooKeeper whether this selector leads: it is [leading](Self::is_leader), and
    /// [`Leadership::verify`] confirms it (a `sync`, then a read of the leader's node, which
    /// must be this turn's and owned by this session). Costs one round trip and a sync;
    /// `false` on any doubt.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn has_leadership(&self) -> bool {
        match self.current_leadership() {
            Some(leadership) => leadership.verify().await,
            None => false,
        }
    }

    /// The leadership of the turn under way, if this selector leads and it is not cancelled.
    fn current_leadership(&self) -> Option<Leadership> {
        match &self.inner.status().turn {
            Turn::Leading(leadership) if !leadership.is_cancelled() => Some(leadership.clone()),
            _ => None,
        }
    }

    /// True while this selector is queued or leading (Curator's `isQueued`).
    pub fn is_queued(&self) -> bool {
        self.inner.status().turn.is_queued()
    }

    /// Joins the queue again, if this selector is neither queued nor leading (Curator's
    /// `requeue`). Needed only without [`auto_requeue`](Self::auto_requeue). The attempt runs in
    /// the background.
    ///
    /// Returns `Ok(true)` if it was requeued, `Ok(false)` if it was already queued or leading.
    ///
    /// # Errors
    ///
    /// [`Error::IllegalState`] if it was not started; [`Error::Closed`] if it was closed or its
    /// client is closed.
    pub fn requeue(&self) -> Result<bool> {
        let mut status = self.inner.status();
        self.check_running(&status)?;
        if status.turn.is_queued() {
            return Ok(false);
        }
        status.turn = Turn::Queued;
        drop(status);
        self.inner.wake.notify_one();
        Ok(true)
    }

    /// Cancels the current turn (Curator's `interruptLeadership`): if this selector leads, its
    /// leadership is cancelled as described in the [module documentation](self#cancellation);
    /// if it waits in the queue, it is withdrawn and its node deleted. With
    /// [`auto_requeue`](Self::auto_requeue) it then joins the back of the queue.
    ///
    /// Returns `Ok(true)` if a turn was cancelled, `Ok(false)` if there was none (or it was
    /// being cancelled already). It does not wait for the cancellation to finish.
    ///
    /// # Errors
    ///
    /// [`Error::IllegalState`] if it was not started; [`Error::Closed`] if it was closed or its
    /// client is closed.
    pub fn interrupt_leadership(&self) -> Result<bool> {
        self.check_running(&self.inner.status())?;
        Ok(self.inner.cancel_turn("interrupt_leadership"))
    }

    fn check_running(&self, status: &Status) -> Result<()> {
        match status.lifecycle {
            SelectorState::Latent => Err(Error::IllegalState("the leader selector is not started")),
            SelectorState::Closed => Err(Error::Closed),
            SelectorState::Started if self.inner.client.is_closed() => Err(Error::Closed),
            SelectorState::Started => Ok(()),
        }
    }

    /// Every candidate queued on the path, Rust or Java, in queue order, with its participant id;
    /// the first [`is_leader`](Participant::is_leader). Works before `start` and after `close`.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::with_retry`] (connection loss, a closed client).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        self.reader().participants().await
    }

    /// The current leader, the first of [`participants`](Self::participants); `None` when
    /// nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`participants`](Self::participants).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn leader(&self) -> Result<Option<Participant>> {
        Ok(self.reader().first().await?.map(|(first, _)| first))
    }

    fn reader(&self) -> Arc<SequentialQueue> {
        SequentialQueue::new(
            &self.inner.client,
            self.inner.path.clone(),
            Vec::new(),
            LOCK_NAMES,
        )
    }

    /// Closes the selector: the current turn is cancelled (leadership as described in the
    /// [module documentation](self#cancellation), or the place in the queue), the node
    /// deleted, and the background task ends. Returns once that is done.
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if it was not started; [`Error::Closed`] if it was closed
    ///   already;
    /// * the error of the release of the turn the close ends, if deleting its node failed or
    ///   timed out (the delete goes on in the background until it succeeds or the session
    ///   ends). Failed releases of earlier turns were reported to the
    ///   [error hook](Self::on_error) when they happened, and are not reported again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the close starts when the future is first polled; dropping the future only
    /// stops waiting for it to finish.
    pub async fn close(&self) -> Result<()> {
        {
            let mut status = self.inner.status();
            match status.lifecycle {
                SelectorState::Latent => {
                    return Err(Error::IllegalState("the leader selector is not started"))
                }
                SelectorState::Closed => return Err(Error::Closed),
                SelectorState::Started => {}
            }
            status.lifecycle = SelectorState::Closed;
        }
        tracing::debug!(path = %self.inner.path, "closing leader selector");
        // Only the release this close causes is reported: an earlier turn's failure was
        // reported then, and its delete has gone on in the background since.
        self.inner.last_release.locked().take();
        self.inner.closed.cancel();
        self.inner.done.cancelled().await;
        match self.inner.last_release.locked().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for LeaderSelector {
    fn drop(&mut self) {
        let mut status = self.inner.status();
        if status.lifecycle == SelectorState::Started {
            status.lifecycle = SelectorState::Closed;
            drop(status);
            tracing::debug!(path = %self.inner.path, "leader selector dropped; closing in the background");
            self.inner.closed.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_policy_cancels_on_suspended_and_lost_only() {
        use ConnectionState::*;
        for (state, action) in [
            (Connected, StateChangeAction::Continue),
            (Suspended, StateChangeAction::CancelLeadership),
            (Reconnected, StateChangeAction::Continue),
            (Lost, StateChangeAction::CancelLeadership),
            (ReadOnly, StateChangeAction::Continue),
        ] {
            assert_eq!(StateChangeAction::standard(state), action, "{state}");
        }
    }

    #[test]
    fn selector_types_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<LeaderSelector>();
        check::<Leadership>();
        check::<SelectorError>();
    }
}
