//! The shared core of [`InterProcessMutex`](crate::InterProcessMutex) and
//! [`LeaderSelector`](crate::LeaderSelector): a FIFO queue of ephemeral-sequential nodes.
//!
//! Every contender creates `<path>/_c_<uuid>-lock-<seq10>` (Curator's names, so Java and Rust
//! processes share one queue). The contender with the lowest sequence holds the lock; every
//! other watches **only its predecessor**, with a data watch, so a release wakes one
//! contender, not the herd. Children whose names do not end in `lock-<digits>` are ignored
//! (CURATOR-43).
//!
//! # One driver per queue handle
//!
//! Many tasks of one process may wait on the same queue handle (10,000 is a design point).
//! Rather than every waiter listing the children and watching its predecessor (which costs
//! O(N) reads of O(N) children per handoff, Curator's thread-per-waiter design), the local
//! waiters share one *driver* task and one *view* of the queue:
//!
//! * The view is a sorted map of sequence → node, built from `getChildren`. Its soundness
//!   rests on one fact: ZooKeeper hands out sequence numbers in creation order and never
//!   reuses them, so a node that is missing from a listing but sorts before one that is in it
//!   has been deleted, and no node can later appear before an existing one.
//! * Nodes leave the view when this process deletes them (a release), when a watch reports
//!   their deletion, or when a read finds them gone.
//! * The driver serves the lowest local waiter only: if nothing live is left before it in the
//!   view, it is granted; otherwise the driver watches its nearest live predecessor.
//!
//! A handoff between two local waiters therefore costs no ZooKeeper read at all: the holder's
//! delete, once acknowledged, lets the driver grant the next waiter. A handoff from a node of
//! another process costs one watch event (and a read when the view must be refreshed).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acl, CreateMode, EventType, SessionState};

use crate::connection::{Client, CreateExtras, PendingStat, ProtectedNode, Session};
use crate::error::{is_retryable_zk, Error, Result};
use crate::path::join;

/// The name Curator gives lock nodes, after the protection prefix.
pub(crate) const LOCK_NAME: &str = "lock-";

/// One contender of a queue: a lock node and the participant id it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Participant {
    /// The participant id: the node's data as UTF-8 (lossy).
    pub id: String,
    /// The node's name under the recipe path, e.g. `_c_<uuid>-lock-0000000007`.
    pub node: String,
    /// The node's sequence number.
    pub sequence: i64,
    /// True for the first in queue order: the lock holder or the leader.
    pub is_leader: bool,
}

/// The sequence of a lock node (`…lock-<digits>`), or `None` for a foreign child, which the
/// queue ignores rather than let it block (CURATOR-43).
pub(crate) fn lock_sequence(child: &str) -> Option<i64> {
    let at = child.rfind(LOCK_NAME)?;
    let digits = &child[at + LOCK_NAME.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The lock nodes among `children`, in queue order.
pub(crate) fn queue_order(children: impl IntoIterator<Item = String>) -> Vec<(i64, String)> {
    let mut nodes: Vec<(i64, String)> = children
        .into_iter()
        .filter_map(|c| lock_sequence(&c).map(|s| (s, c)))
        .collect();
    nodes.sort_unstable();
    nodes
}

/// A node this process holds at the head of the queue.
///
/// Dropping it without [`release`](Held::release) deletes the node in the background.
#[derive(Debug)]
pub(crate) struct Held {
    queue: Arc<SequentialQueue>,
    node: Option<ProtectedNode>,
    /// The session's interruption count when ownership was confirmed.
    epoch: u64,
    node_gone: CancellationToken,
    monitor_stop: CancellationToken,
}

impl Held {
    pub(crate) fn node(&self) -> &ProtectedNode {
        self.node
            .as_ref()
            .expect("a held node is present until released")
    }

    /// The lock node's czxid: unique and rising with every grant across the ensemble.
    pub(crate) fn fencing_token(&self) -> u64 {
        self.node().stat.czxid as u64
    }

    /// Resolves when the hold is surely lost: the node was deleted or its session lost. Unlike
    /// [`lost`](Self::lost), a mere suspension does not resolve it (for `LeaderSelector`
    /// listeners that choose to ride out suspensions).
    pub(crate) fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let session = self.node().session.clone();
        let node_gone = self.node_gone.clone();
        async move {
            tokio::select! {
                _ = node_gone.cancelled() => {}
                _ = session.lost() => {}
            }
        }
    }

    /// The hold's lost signal as a cloneable value that outlives the `Held`, for recipes that
    /// share one hold between several handles (reentrant guards).
    pub(crate) fn lost_signal(&self) -> LostSignal {
        LostSignal {
            session: self.node().session.clone(),
            node_gone: self.node_gone.clone(),
            epoch: self.epoch,
        }
    }

    /// Lets go of a node that a transaction of ours has deleted: nothing is left to delete.
    /// Returns its sequence.
    fn deleted_by_transaction(mut self) -> Option<i64> {
        // Dropping `self` stops the monitor: after the transaction's answer that is safe, as at
        // the end of `release` (its watch, if set, has fired), and it spares a monitor still
        // in its first delay a read of the deleted node.
        self.node.take().expect("given up once").sequence
    }

    /// Deletes the node now. On failure the node is handed to a background delete that keeps
    /// trying for as long as the session lives (the node is never forgotten: CURATOR-678), and
    /// the error is returned.
    ///
    /// Cancel safe: the delete request is on the wire once this is first polled, and dropping
    /// the future hands the node to a background delete (a second delete of a deleted node is
    /// harmless), so the node goes all the same; only the outcome is not reported.
    pub(crate) async fn release(mut self) -> Result<()> {
        let node = self.node.take().expect("released once");
        // The monitor keeps running: our delete fires its watch, which ends it. Stopping it
        // first would make zookeeper-client send a RemoveWatches ahead of the delete, costing
        // the release a server round of its own.
        let mut unfinished = DeleteOnDrop {
            queue: self.queue.clone(),
            node: Some(node.clone()),
        };
        let sequence = node.sequence;
        let session = node.session.clone();
        let result = self.queue.delete_node(node).await;
        unfinished.node = None;
        // Only a delete the server confirmed: a lost session's node may outlive our view of it.
        if result.is_ok() && !session.is_lost() {
            if let Some(seq) = sequence {
                self.queue.state.lock().unwrap().quiet_next = Some(seq + 1);
            }
        }
        result
    }
}

/// A held node to be given up by the create of its successor node: see
/// [`SequentialQueue::release_and_acquire`]. Dropped unused, its `Held` deletes the node in the
/// background.
struct Replacing {
    held: Held,
    /// Told `None` once the node is deleted, or handed the `Held` back for an ordinary release.
    outcome: oneshot::Sender<Option<Held>>,
}

/// A node whose delete is in flight: if the future awaiting it is dropped, the delete is
/// finished in the background.
struct DeleteOnDrop {
    queue: Arc<SequentialQueue>,
    node: Option<ProtectedNode>,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            self.queue.spawn_delete(
                node,
                "an interrupted release failed; a guaranteed delete continues",
            );
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.monitor_stop.cancel();
        if let Some(node) = self.node.take() {
            self.queue.spawn_delete(
                node,
                "background release failed; a guaranteed delete continues",
            );
        }
    }
}

/// The lost signal of a [`Held`], detached from it: the session the node lives on, the
/// node-deleted token, and the interruption count at the grant.
#[derive(Debug, Clone)]
pub(crate) struct LostSignal {
    session: Arc<Session>,
    node_gone: CancellationToken,
    epoch: u64,
}

impl LostSignal {
    /// True once the hold may be lost: the session was suspended or lost since the grant, or
    /// the node was deleted.
    pub(crate) fn is_lost(&self) -> bool {
        self.node_gone.is_cancelled()
            || self.session.is_lost()
            || self.session.interruption_count() > self.epoch
    }

    /// Resolves when [`is_lost`](Self::is_lost) becomes true.
    pub(crate) fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let signal = self.clone();
        async move {
            tokio::select! {
                _ = signal.node_gone.cancelled() => {}
                _ = signal.session.interrupted_since(signal.epoch) => {}
            }
        }
    }
}

/// Counts one plain create in [`QueueState::creates_in_flight`] while it lives.
struct CreateInFlight<'a>(&'a SequentialQueue);

impl Drop for CreateInFlight<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().creates_in_flight -= 1;
    }
}

/// Called by a held node's monitor with the node's path, its czxid and its data: once when
/// the monitor first reads the node, then after every change of its data (Curator's
/// revocation requests travel this way).
pub(crate) type NodeDataListener = Arc<dyn Fn(&str, u64, &[u8]) + Send + Sync>;

/// How long [`SequentialQueue::acquire`] waits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Until the lock is granted.
    Forever,
    /// Until the deadline.
    Until(tokio::time::Instant),
    /// One look: granted only if the node is at the head of the queue at once.
    Once,
}

/// Why a waiter's wait ended without the lock.
#[derive(Debug)]
enum Denied {
    /// A single look found others ahead.
    NotFirst,
    /// Its node is gone (its session was lost, or someone deleted it): enqueue again.
    NodeGone(Error),
    /// A failure the caller must see.
    Failed(Error),
}

type GrantSender = oneshot::Sender<std::result::Result<u64, Denied>>;

struct Waiter {
    name: String,
    session: Arc<Session>,
    grant: GrantSender,
}

/// The answer to a `get_and_watch_data`.
type DataAndWatch = std::result::Result<
    (
        Vec<u8>,
        zookeeper_client::Stat,
        zookeeper_client::OneshotWatcher,
    ),
    zookeeper_client::Error,
>;

/// A data watch on a node, set before the driver asked for it.
struct PreWatch {
    /// The generation of the session it is set on.
    generation: u64,
    /// The watched node's sequence.
    pred_seq: i64,
    /// The read that sets it.
    watch: tokio::task::JoinHandle<DataAndWatch>,
}

struct QueueState {
    /// Local nodes waiting for their turn, by (session generation, sequence).
    waiters: BTreeMap<(u64, i64), Waiter>,
    /// Sequence → (name, live) of the nodes known to be in the queue.
    view: BTreeMap<i64, (String, bool)>,
    /// Every node with a sequence up to this one is known to be gone (pruned from the view),
    /// so a listing that arrives late cannot bring it back. -1 at first: ZooKeeper numbers the
    /// first child of a new parent 0, and that node must not be taken for a gone one.
    gone_through: i64,
    /// Our own live nodes (waiting or held): sequence → session generation. When a waiter's
    /// predecessor is one of these, on the same session, the driver needs no watch: this
    /// process learns of its deletion first (its release, or its monitor's watch).
    local: HashMap<i64, u64>,
    /// A watch set ahead of the driver's need (see `list_before_replacing`).
    prewatch: Option<PreWatch>,
    /// Set when we delete a node that was at the head of the queue: the sequence the next
    /// lock node gets if no other child is created meanwhile. ZooKeeper numbers children by
    /// counting creates, so a node that gets exactly this sequence was the next child created
    /// after a head we saw deleted, and has nothing before it: it is granted without a listing.
    quiet_next: Option<i64>,
    /// Plain creates of lock nodes under way on this handle (see `CreateInFlight`).
    creates_in_flight: usize,
    driver_running: bool,
}

impl Default for QueueState {
    fn default() -> Self {
        Self {
            waiters: BTreeMap::new(),
            view: BTreeMap::new(),
            gone_through: -1,
            local: HashMap::new(),
            prewatch: None,
            quiet_next: None,
            creates_in_flight: 0,
            driver_running: false,
        }
    }
}

impl QueueState {
    /// Merges a listing into the view. See the module docs for why this is sound.
    fn apply_listing(&mut self, children: Vec<String>) {
        let listed = queue_order(children);
        let Some(&(max_listed, _)) = listed.last() else {
            // Nothing listed: everything we knew of before the listing is gone; but a node
            // newer than the listing may be in the view, and we cannot tell which those are.
            return;
        };
        let listed_set: std::collections::HashSet<i64> = listed.iter().map(|(s, _)| *s).collect();
        for (seq, (_, live)) in self.view.range_mut(..=max_listed) {
            if !listed_set.contains(seq) {
                *live = false;
            }
        }
        for (seq, name) in listed {
            if seq > self.gone_through {
                self.view.entry(seq).or_insert((name, true));
            }
        }
        self.prune();
    }

    fn mark_gone(&mut self, seq: i64) {
        self.local.remove(&seq);
        if let Some((_, live)) = self.view.get_mut(&seq) {
            *live = false;
        }
        self.prune();
    }

    /// Drops dead entries at the front: nothing can ever need them again.
    fn prune(&mut self) {
        while let Some(entry) = self.view.first_entry() {
            if entry.get().1 {
                break;
            }
            self.gone_through = self.gone_through.max(*entry.key());
            entry.remove();
        }
    }

    /// The nearest live node before `seq`, if any.
    fn live_predecessor(&self, seq: i64) -> Option<(i64, String)> {
        self.view
            .range(..seq)
            .rev()
            .find(|(_, (_, live))| *live)
            .map(|(s, (name, _))| (*s, name.clone()))
    }

    fn is_listed(&self, seq: i64) -> Option<bool> {
        self.view.get(&seq).map(|(_, live)| *live)
    }
}

/// A queue of ephemeral-sequential nodes under one path, shared by the local contenders of one
/// recipe handle.
pub(crate) struct SequentialQueue {
    client: Client,
    path: String,
    acls: Vec<Acl>,
    state: Mutex<QueueState>,
    wake_driver: Notify,
    /// Background deletes (of dropped holds and abandoned acquires) whose first attempt is
    /// still running: see [`deletes_settled`](Self::deletes_settled).
    background_deletes: tokio::sync::watch::Sender<usize>,
    /// Handed to the monitor of every node granted from now on.
    data_listener: Mutex<Option<NodeDataListener>>,
}

impl std::fmt::Debug for SequentialQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequentialQueue")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SequentialQueue {
    /// A queue under `path`, which must be validated by the caller.
    pub(crate) fn new(client: &Client, path: String, acls: Vec<Acl>) -> Arc<Self> {
        Arc::new(Self {
            client: client.clone(),
            path,
            acls,
            state: Mutex::new(QueueState::default()),
            wake_driver: Notify::new(),
            background_deletes: tokio::sync::watch::Sender::new(0),
            data_listener: Mutex::new(None),
        })
    }

    /// Sets the listener told of the data of nodes granted from now on (see
    /// [`NodeDataListener`]); `None` removes it. Holds granted before keep what they had.
    pub(crate) fn set_data_listener(&self, listener: Option<NodeDataListener>) {
        *self.data_listener.lock().unwrap() = listener;
    }

    /// Joins the queue with `data` as the node's data and waits for the head of the queue, as
    /// `wait` says.
    ///
    /// `Ok(None)` when the wait ends without the lock, with the node deleted. When the node is
    /// lost while waiting (session loss, or someone deleted it), it joins again with a new
    /// node, within the same wait.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await: a node created (or possibly created) by a dropped call is
    /// deleted in the background, and a grant that races with the drop is released.
    pub(crate) async fn acquire(self: &Arc<Self>, data: &[u8], wait: Wait) -> Result<Option<Held>> {
        self.acquire_replacing(data, wait, None).await
    }

    /// Gives up `previous` (a node of this queue) and joins the queue again, like
    /// [`Held::release`] followed by [`acquire`](Self::acquire), but with the delete and the
    /// create in one transaction when they go to the same session. The server then commits
    /// both at once: the successor's watch fires no later than with a bare delete, and this
    /// queue's new node is already in place when it does. (Sent back to back, the two writes
    /// often take a log write each, and the next handoff waits behind the second.)
    ///
    /// Returns the release's outcome and the acquire's as two futures, to be polled together:
    /// the first resolves once the node is surely deleted (or its delete failed), the second
    /// when the wait ends, as `acquire`'s does.
    ///
    /// # Cancel safety
    ///
    /// As for `acquire` and `release`: dropping either future, or both, leaks no node.
    pub(crate) fn release_and_acquire<'a>(
        self: &'a Arc<Self>,
        previous: Held,
        data: &'a [u8],
        wait: Wait,
    ) -> (
        impl std::future::Future<Output = Result<()>> + Send + 'a,
        impl std::future::Future<Output = Result<Option<Held>>> + Send + 'a,
    ) {
        let (outcome_tx, outcome_rx) = oneshot::channel::<Option<Held>>();
        let release = async move {
            match outcome_rx.await {
                Ok(None) => Ok(()),
                Ok(Some(held)) => held.release().await,
                // The acquire was dropped with the `Held`, whose drop deletes the node in the
                // background (counted by `deletes_settled`).
                Err(_) => Ok(()),
            }
        };
        let replacing = Replacing {
            held: previous,
            outcome: outcome_tx,
        };
        (
            release,
            self.acquire_replacing(data, wait, Some(Box::new(replacing))),
        )
    }

    async fn acquire_replacing(
        self: &Arc<Self>,
        data: &[u8],
        wait: Wait,
        // Boxed, like the create below: thousands of waiting futures must stay small.
        mut replacing: Option<Box<Replacing>>,
    ) -> Result<Option<Held>> {
        loop {
            let attempt = self.acquire_once(data, matches!(wait, Wait::Once), replacing.take());
            let outcome = match wait {
                Wait::Until(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(outcome) => outcome,
                    Err(_) => return Ok(None),
                },
                Wait::Forever | Wait::Once => attempt.await,
            };
            match outcome {
                Ok(held) => return Ok(Some(held)),
                Err(Denied::NotFirst) => return Ok(None),
                Err(Denied::NodeGone(e)) => {
                    tracing::debug!(path = %self.path, error = %e, "queue node lost while waiting; joining again");
                    if self.client.is_closed() {
                        return Err(Error::Closed);
                    }
                }
                Err(Denied::Failed(e)) => return Err(e),
            }
        }
    }

    async fn acquire_once(
        self: &Arc<Self>,
        data: &[u8],
        once: bool,
        replacing: Option<Box<Replacing>>,
    ) -> std::result::Result<Held, Denied> {
        // Boxed, each path on its own: the create's state is large and needed only until the
        // node exists, while the wait that follows may be long and shared by thousands of
        // tasks (and thousands of creates may be in flight at once).
        let (created, last_listed_before) = match replacing {
            None => {
                // With other local waiters queued, a listing per new node would cost O(N)
                // reads of O(N) names; the driver's shared view serves them instead. Right
                // after our own release of the head, the node's sequence alone will most
                // likely tell (see `quiet_next`), and no listing is needed either.
                // Creates still under way count as waiters to come: thousands of tasks
                // starting at once would otherwise each list a queue that grows under them
                // before the first of them has registered.
                let (list, _in_flight) = {
                    let mut state = self.state.lock().unwrap();
                    let list = once
                        || (state.waiters.is_empty()
                            && state.quiet_next.is_none()
                            && state.creates_in_flight == 0);
                    state.creates_in_flight += 1;
                    (list, CreateInFlight(self))
                };
                let extras = CreateExtras {
                    list,
                    replacing: None,
                };
                (Box::pin(self.create_lock_node(data, extras)).await, None)
            }
            Some(replacing) => Box::pin(self.create_replacing(data, replacing)).await,
        };
        let crate::connection::Created {
            node,
            listing,
            pending_stat,
            ..
        } = created.map_err(Denied::Failed)?;
        let Some(seq) = node.sequence else {
            return Err(Denied::Failed(Error::ZooKeeper(
                zookeeper_client::Error::UnexpectedError(
                    "a sequential create returned no sequence".into(),
                ),
            )));
        };
        // From here on the node exists: every exit path must delete it or hand it over.
        let mut pending = PendingNode {
            queue: self.clone(),
            node: Some(node),
            key: None,
            pending_stat,
        };
        let session = pending.node().session.clone();
        let (grant_tx, grant_rx) = oneshot::channel();
        // Decided under the lock, acted on outside it (the grant may have to await the stat).
        let granted_at_once = {
            let mut state = self.state.lock().unwrap();
            state.local.insert(seq, session.generation());
            let mut first = false;
            if state.quiet_next.take() == Some(seq) {
                // The first child created since the head we deleted: nothing is before it.
                state.view.insert(seq, (pending.node().name.clone(), true));
                first = true;
            }
            // At most one of the two listings is there: the one sent before a transaction, or
            // the one sent behind a plain create.
            let listed_before = last_listed_before.is_some_and(|last| last + 1 == seq);
            if listed_before {
                // ZooKeeper numbers children by counting creates: nothing was created between
                // the listing before the transaction and our node, so that listing showed
                // every node before ours.
                state.view.insert(seq, (pending.node().name.clone(), true));
            }
            let listed_behind = listing.is_some();
            if let Some(children) = listing {
                state.apply_listing(children);
            }
            first |= (listed_before || listed_behind)
                && state.live_predecessor(seq).is_none()
                && state.is_listed(seq) == Some(true);
            match first.then(|| confirmed_epoch(&session)).flatten() {
                Some(epoch) => Some(epoch),
                // A single look, and it was not our turn: `pending` deletes the node.
                None if once => return Err(Denied::NotFirst),
                None => {
                    let key = (session.generation(), seq);
                    state.waiters.insert(
                        key,
                        Waiter {
                            name: pending.node().name.clone(),
                            session,
                            grant: grant_tx,
                        },
                    );
                    pending.key = Some(key);
                    self.ensure_driver(&mut state);
                    None
                }
            }
        };
        if let Some(epoch) = granted_at_once {
            pending.await_stat().await?;
            return Ok(pending.into_held(epoch));
        }
        match grant_rx.await {
            Ok(Ok(epoch)) => {
                pending.key = None;
                pending.await_stat().await?;
                Ok(pending.into_held(epoch))
            }
            Ok(Err(denied)) => {
                pending.key = None;
                Err(denied)
            }
            Err(_) => Err(Denied::Failed(Error::Closed)),
        }
    }

    /// Creates one of this queue's lock nodes (`_c_<uuid>-lock-<seq>`, ephemeral-sequential,
    /// with the queue's ACLs) carrying `data`, with `extras`.
    fn create_lock_node<'a>(
        &'a self,
        data: &'a [u8],
        extras: CreateExtras<'a>,
    ) -> impl std::future::Future<Output = Result<crate::connection::Created>> + Send + 'a {
        self.client.create_protected_then_list(
            &self.path,
            LOCK_NAME,
            data,
            CreateMode::EphemeralSequential,
            &self.acls,
            extras,
        )
    }

    /// Creates a node for [`acquire_once`](Self::acquire_once) that replaces `replacing`'s
    /// node (see [`release_and_acquire`](Self::release_and_acquire)): the outcome of the
    /// create, and the last sequence of the listing sent before it, if that listing came in.
    async fn create_replacing(
        self: &Arc<Self>,
        data: &[u8],
        replacing: Box<Replacing>,
    ) -> (Result<crate::connection::Created>, Option<i64>) {
        let zk_of_replaced = replacing.held.node().session.zookeeper().ok();
        let listing_before = zk_of_replaced
            .as_ref()
            .map(|zk| self.list_before_replacing(zk, replacing.held.node()));
        let extras = CreateExtras {
            list: false,
            replacing: Some(replacing.held.node()),
        };
        let create = self.create_lock_node(data, extras);
        let (created, last_listed_before) = match listing_before {
            Some(listing) => futures::join!(create, listing),
            None => (create.await, None),
        };
        let Replacing { held, outcome } = *replacing;
        match &created {
            Ok(created) if created.replaced => {
                // No `quiet_next` here: the listing sent before the transaction settles
                // whether anything is before the new node (see `acquire_once`).
                self.node_gone(held.deleted_by_transaction());
                let _ = outcome.send(None);
            }
            // If nobody awaits the release any more, the `Held` comes back and is dropped
            // here, which deletes the node in the background.
            _ => drop(outcome.send(Some(held))),
        }
        (created, last_listed_before)
    }

    /// For a node about to replace `old` in one transaction: a listing sent on `old`'s session
    /// *before* the transaction, so it is answered at once instead of behind the transaction's
    /// commit. The future merges it into the view, pre-sets the watch the driver will most
    /// likely need (on the newest live node listed, which will be the new node's predecessor
    /// unless someone creates a node meanwhile), and resolves to the highest lock sequence
    /// listed. If the new node's sequence is the next one, the listing showed every node before
    /// it.
    ///
    /// The watch is set as soon as the listing is in, while the transaction is still being
    /// written, rather than after a listing behind it: when a successor's release follows at
    /// once, as a leader selector's may, the watch is in place in time.
    fn list_before_replacing<'a>(
        self: &'a Arc<Self>,
        zk: &'a zookeeper_client::Client,
        old: &ProtectedNode,
    ) -> impl std::future::Future<Output = Option<i64>> + Send + 'a {
        let listing = zk.list_children(&self.path);
        let session = old.session.clone();
        let old_seq = old.sequence;
        async move {
            let children = listing.await.ok()?;
            let last_listed = children.iter().filter_map(|c| lock_sequence(c)).max();
            let mut state = self.state.lock().unwrap();
            state.apply_listing(children);
            let predecessor = state
                .view
                .iter()
                .rev()
                .find(|(seq, (_, live))| *live && Some(**seq) != old_seq)
                .map(|(seq, (name, _))| (*seq, name.clone()));
            if let Some((pred_seq, pred_name)) = predecessor {
                let path = join(&self.path, &pred_name);
                let zk = zk.clone();
                let watch = self
                    .client
                    .spawn(async move { zk.get_and_watch_data(&path).await });
                state.prewatch = Some(PreWatch {
                    generation: session.generation(),
                    pred_seq,
                    watch,
                });
            }
            last_listed
        }
    }

    /// Starts the driver if it is not running; wakes it either way.
    fn ensure_driver(self: &Arc<Self>, state: &mut QueueState) {
        if !state.driver_running {
            state.driver_running = true;
            let queue = self.clone();
            self.client.spawn(async move { queue.drive().await });
        }
        self.wake_driver.notify_one();
    }

    /// Deletes `node` in a background task, counted until its first attempt ends (see
    /// [`deletes_settled`](Self::deletes_settled)); `failure` is logged if that attempt fails.
    fn spawn_delete(self: &Arc<Self>, node: ProtectedNode, failure: &'static str) {
        struct InFlight(Arc<SequentialQueue>);
        impl Drop for InFlight {
            fn drop(&mut self) {
                self.0.background_deletes.send_modify(|n| *n -= 1);
            }
        }
        self.background_deletes.send_modify(|n| *n += 1);
        let in_flight = InFlight(self.clone());
        self.client.spawn(async move {
            if let Err(e) = in_flight.0.delete_node(node).await {
                tracing::warn!(error = %e, "{failure}");
            }
            drop(in_flight);
        });
    }

    /// Resolves once every background delete started so far (by dropping a [`Held`] or an
    /// `acquire` future) has had its first attempt: the node is deleted, or the delete failed
    /// and a guaranteed delete carries on. For recipes that must not report "closed" while
    /// their withdrawn node may still be seen.
    pub(crate) async fn deletes_settled(&self) {
        let mut rx = self.background_deletes.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Deletes one of our nodes and, once it is surely gone, takes it out of the view.
    async fn delete_node(self: &Arc<Self>, node: ProtectedNode) -> Result<()> {
        let seq = node.sequence;
        let outcome = match node.session.zookeeper() {
            Ok(zk) => match zk.delete(&node.path, None).await {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => Ok(()),
                // An expired session takes its ephemeral node with it, like a released one
                // below: nothing is left to delete, and the release did not fail.
                Err(zookeeper_client::Error::SessionExpired) => Ok(()),
                Err(e) => Err(e),
            },
            // A released session takes its ephemeral node with it, but only once the server
            // expires it, which may be later than this client declared it lost: leave the
            // view alone, so waiters keep watching the node until it is really gone.
            Err(_) => {
                self.state.lock().unwrap().local.remove(&seq.unwrap_or(-1));
                return Ok(());
            }
        };
        match outcome {
            Ok(()) => {
                self.node_gone(seq);
                Ok(())
            }
            Err(e) => {
                let error = Error::from(e.clone());
                tracing::warn!(path = %node.path, error = %e, "deleting a queue node failed; retrying in the background");
                let queue = self.clone();
                self.client.spawn(async move {
                    let result = queue.client.guaranteed_delete(&node.session, &node.path).await;
                    match result {
                        Ok(()) => queue.node_gone(seq),
                        Err(e) => tracing::error!(path = %node.path, error = %e, "could not delete a queue node; it stays until its session ends"),
                    }
                });
                Err(error)
            }
        }
    }

    fn node_gone(&self, seq: Option<i64>) {
        if let Some(seq) = seq {
            self.state.lock().unwrap().mark_gone(seq);
            self.wake_driver.notify_one();
        }
    }

    /// Serves the lowest local waiter until there are none.
    async fn drive(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (key, name, session) = {
                let mut state = self.state.lock().unwrap();
                // Waiters whose future was dropped are gone from the map already. Waiters of a
                // lost session are told to join again; they sort first (by generation), so
                // looking at the front of the map finds them all without a scan.
                loop {
                    let Some(entry) = state.waiters.first_entry() else {
                        state.driver_running = false;
                        return;
                    };
                    if entry.get().session.is_lost() {
                        let waiter = entry.remove();
                        let _ = waiter
                            .grant
                            .send(Err(Denied::NodeGone(Error::SessionExpired)));
                        continue;
                    }
                    let w = entry.get();
                    break (*entry.key(), w.name.clone(), w.session.clone());
                }
            };
            let seq = key.1;
            let step = self.drive_step(key, seq, &name, &session).await;
            match step {
                Ok(()) => backoff = Duration::from_millis(10),
                Err(e) if e.is_retryable() => {
                    tracing::debug!(path = %self.path, error = %e, "queue driver backing off");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = session.lost() => {}
                        _ = self.client.wait_connected(self.client.connection_timeout()) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => self.deny(key, Denied::Failed(e)),
            }
        }
    }

    /// One decision for the lowest waiter: grant it, refresh the view, or wait on its
    /// predecessor.
    async fn drive_step(
        &self,
        key: (u64, i64),
        seq: i64,
        name: &str,
        session: &Arc<Session>,
    ) -> Result<()> {
        let listed = self.state.lock().unwrap().is_listed(seq);
        let zk = session.zookeeper()?;
        match listed {
            None => {
                // The view predates this node: refresh it.
                let children = match zk.list_children(&self.path).await {
                    Ok(children) => children,
                    Err(zookeeper_client::Error::NoNode) => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                let mut state = self.state.lock().unwrap();
                state.apply_listing(children);
                if state.is_listed(seq) != Some(true) {
                    drop(state);
                    self.deny(key, Denied::NodeGone(Error::LockLost));
                }
                return Ok(());
            }
            Some(false) => {
                self.deny(key, Denied::NodeGone(Error::LockLost));
                return Ok(());
            }
            Some(true) => {}
        }
        let predecessor = self.state.lock().unwrap().live_predecessor(seq);
        let Some((pred_seq, pred_name)) = predecessor else {
            return match confirmed_epoch(session) {
                Some(epoch) => {
                    self.grant(key, epoch);
                    Ok(())
                }
                None => Err(Error::ConnectionLoss),
            };
        };
        let local_predecessor =
            self.state.lock().unwrap().local.get(&pred_seq) == Some(&session.generation());
        if local_predecessor {
            // Ours, on this session: its release (or its monitor, if someone else deletes it)
            // marks it gone and wakes the driver. No read, no watch.
            tokio::select! {
                _ = self.wake_driver.notified() => {}
                _ = session.lost() => {}
            }
            return Ok(());
        }
        // Watch only the predecessor, with a data watch (no dangling exists watch if it is
        // already gone).
        let pred_path = join(&self.path, &pred_name);
        tracing::trace!(node = %name, predecessor = %pred_name, "waiting for predecessor");
        let prewatch = {
            let mut state = self.state.lock().unwrap();
            match state.prewatch.take() {
                Some(p) if p.generation == session.generation() && p.pred_seq == pred_seq => {
                    Some(p.watch)
                }
                // Set on a node that turned out not to be the predecessor: dropping it costs
                // a RemoveWatches once its read is answered.
                _ => None,
            }
        };
        let watched = match prewatch {
            Some(watch) => watch
                .await
                .unwrap_or(Err(zookeeper_client::Error::ConnectionLoss)),
            None => zk.get_and_watch_data(&pred_path).await,
        };
        let pred_gone = match watched {
            Ok((_, _, watcher)) => {
                let mut fired = std::pin::pin!(watcher.changed());
                loop {
                    tokio::select! {
                        biased;
                        event = &mut fired => {
                            tracing::trace!(predecessor = %pred_name, event = ?event.event_type, "predecessor watch fired");
                            break event.event_type == EventType::NodeDeleted;
                        }
                        _ = session.lost() => break false,
                        // A local release, a new lower waiter or a cancelled one may change
                        // the decision. Wakes that change nothing (a permit stored while the
                        // driver was busy, a release of a node after ours) keep the watch:
                        // dropping it would cost a RemoveWatches and a new read.
                        _ = self.wake_driver.notified() => {
                            if !self.still_waits_on(key, seq, pred_seq) {
                                break false;
                            }
                        }
                    }
                }
            }
            Err(zookeeper_client::Error::NoNode) => {
                tracing::trace!(predecessor = %pred_name, "predecessor already gone");
                true
            }
            Err(e) => return Err(e.into()),
        };
        if pred_gone {
            let stale = {
                let mut state = self.state.lock().unwrap();
                state.mark_gone(pred_seq);
                state.live_predecessor(seq).is_some()
            };
            if stale {
                // Nodes before the one we watched went without a word to us (we watch only the
                // nearest); most likely they are all gone. One listing settles it, where
                // reading them one by one would cost a round trip each.
                let children = match zk.list_children(&self.path).await {
                    Ok(children) => children,
                    Err(zookeeper_client::Error::NoNode) => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                self.state.lock().unwrap().apply_listing(children);
            }
        }
        Ok(())
    }

    /// True if the driver's decision for waiter `key` (node `seq`) is still to wait on the
    /// node `pred_seq`: the waiter is still the lowest, its node is live, and that node is
    /// still its nearest live predecessor.
    fn still_waits_on(&self, key: (u64, i64), seq: i64, pred_seq: i64) -> bool {
        let state = self.state.lock().unwrap();
        state.waiters.first_key_value().map(|(k, _)| *k) == Some(key)
            && state.is_listed(seq) == Some(true)
            && state.live_predecessor(seq).map(|(s, _)| s) == Some(pred_seq)
    }

    fn grant(&self, key: (u64, i64), epoch: u64) {
        if let Some(w) = self.state.lock().unwrap().waiters.remove(&key) {
            // A dropped receiver means the waiter is being cancelled; its guard deletes the
            // node.
            let _ = w.grant.send(Ok(epoch));
        }
    }

    fn deny(&self, key: (u64, i64), denied: Denied) {
        if let Some(w) = self.state.lock().unwrap().waiters.remove(&key) {
            let _ = w.grant.send(Err(denied));
        }
    }

    /// Every lock node under the path in queue order, with its participant id.
    pub(crate) async fn participants(&self) -> Result<Vec<Participant>> {
        let children = self.client.children(&self.path).await?.unwrap_or_default();
        let nodes = queue_order(children);
        let reads = nodes.iter().map(|(_, name)| {
            let path = join(&self.path, name);
            async move { self.client.get_data(&path).await }
        });
        let datas = futures::future::join_all(reads).await;
        let mut participants = Vec::with_capacity(nodes.len());
        for ((sequence, node), data) in nodes.into_iter().zip(datas) {
            // A node deleted between the listing and its read has left the queue.
            let Some((data, _)) = data? else { continue };
            participants.push(Participant {
                id: String::from_utf8_lossy(&data).into_owned(),
                node,
                sequence,
                is_leader: participants.is_empty(),
            });
        }
        Ok(participants)
    }
}

/// The interruption count to record for a grant, or `None` if the connection is not up right
/// now (the grant then waits for a reconnect and a fresh look).
///
/// The count is read before the raw connection state: if the state is connected at that point,
/// any later drop increments the count after we read it, so the holder's lost signal fires.
fn confirmed_epoch(session: &Session) -> Option<u64> {
    let epoch = session.interruption_count();
    let connected = session
        .zookeeper()
        .map(|zk| matches!(zk.state(), SessionState::SyncConnected))
        .unwrap_or(false);
    (connected && !session.is_lost()).then_some(epoch)
}

/// Our node between its creation and its hand-over as [`Held`]: dropping it (a cancelled or
/// failed acquire) withdraws the waiter and deletes the node.
struct PendingNode {
    queue: Arc<SequentialQueue>,
    node: Option<ProtectedNode>,
    key: Option<(u64, i64)>,
    /// The read of the node's stat, when the create's answer lacked it.
    pending_stat: Option<PendingStat>,
}

impl PendingNode {
    fn node(&self) -> &ProtectedNode {
        self.node.as_ref().expect("present until handed over")
    }

    /// Awaits the node's stat if the create's answer lacked it. An error means the node is
    /// gone (or its state unknown): join again; dropping `self` deletes the node.
    ///
    /// Not part of `into_held`: an async `into_held` would hold a second copy of the node in
    /// every waiting future, and thousands may wait.
    async fn await_stat(&mut self) -> std::result::Result<(), Denied> {
        if let Some(read) = self.pending_stat.take() {
            let stat = read.await.map_err(Denied::NodeGone)?;
            self.node.as_mut().expect("present until handed over").stat = stat;
        }
        Ok(())
    }

    /// The node as granted; its stat must be known (see `await_stat`).
    fn into_held(mut self, epoch: u64) -> Held {
        let node = self.node.take().expect("handed over once");
        let node_gone = CancellationToken::new();
        let monitor_stop = CancellationToken::new();
        let listener = self.queue.data_listener.lock().unwrap().clone();
        monitor_own_node(
            &self.queue,
            &node,
            node_gone.clone(),
            monitor_stop.clone(),
            listener,
        );
        Held {
            queue: self.queue.clone(),
            node: Some(node),
            epoch,
            node_gone,
            monitor_stop,
        }
    }
}

impl Drop for PendingNode {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut state = self.queue.state.lock().unwrap();
            state.waiters.remove(&key);
            drop(state);
            // The driver may be watching on this waiter's behalf.
            self.queue.wake_driver.notify_one();
        }
        if let Some(node) = self.node.take() {
            self.queue.spawn_delete(
                node,
                "deleting the node of an abandoned acquire failed; a guaranteed delete continues",
            );
        }
    }
}

/// How long after a grant the holder's node monitor sets its watch.
const MONITOR_DELAY: Duration = Duration::from_millis(10);

/// Watches a held node, so that its deletion by anyone else marks the hold lost.
///
/// The watch is set [`MONITOR_DELAY`] after the grant, from a task of its own: it costs the
/// acquire no round trip, and a short hold no request. Our own delete at release fires it (or
/// the release stops the monitor before it was set), so no watch is left dangling.
fn monitor_own_node(
    queue: &Arc<SequentialQueue>,
    node: &ProtectedNode,
    node_gone: CancellationToken,
    stop: CancellationToken,
    listener: Option<NodeDataListener>,
) {
    let Ok(zk) = node.session.zookeeper() else {
        node_gone.cancel();
        return;
    };
    let path = node.path.clone();
    let czxid = node.stat.czxid as u64;
    let sequence = node.sequence;
    let queue_of_node = queue.clone();
    queue.client.spawn(async move {
        // Holds shorter than this cost no request at all: an uncontended acquire and release
        // is then a create (with its listing) and a delete, and nothing else. A deletion by
        // someone else is noticed at most this much later than with an immediate watch.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(MONITOR_DELAY) => {}
        }
        let watch = async {
            loop {
                match zk.get_and_watch_data(&path).await {
                    Ok((data, _, watcher)) => {
                        if let Some(listener) = &listener {
                            listener(&path, czxid, &data);
                        }
                        let event = watcher.changed().await;
                        match event.event_type {
                            EventType::NodeDeleted => return,
                            // A session event: the interruption count covers it.
                            EventType::Session => std::future::pending::<()>().await,
                            // A data change (e.g. a revocation request): keep watching.
                            _ => continue,
                        }
                    }
                    Err(zookeeper_client::Error::NoNode) => return,
                    Err(e) if is_retryable_zk(&e) => {
                        // The interruption count covers the drop itself, but the watch is not
                        // set: once the session is connected again, set it again, or a
                        // deletion after the reconnect would go unnoticed (by holders that
                        // ride out suspensions).
                        let mut states = zk.state_watcher();
                        loop {
                            let state = states.state();
                            if matches!(
                                state,
                                SessionState::SyncConnected | SessionState::ConnectedReadOnly
                            ) {
                                break;
                            }
                            if state.is_terminated() {
                                // The session is gone; its loss covers the node.
                                std::future::pending::<()>().await;
                            }
                            states.changed().await;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "cannot watch a held node");
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = watch => {
                node_gone.cancel();
                // A local successor may be waiting on this node without a watch of its own.
                queue_of_node.node_gone(sequence);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_sequence_accepts_only_lock_digits() {
        assert_eq!(lock_sequence("_c_0f-lock-0000000042"), Some(42));
        assert_eq!(lock_sequence("lock-0000000001"), Some(1));
        assert_eq!(lock_sequence("_c_0f-lock-00000x0042"), None);
        assert_eq!(lock_sequence("_c_0f-lease-0000000042"), None);
        assert_eq!(lock_sequence("foreign"), None);
        assert_eq!(lock_sequence("lock-"), None);
    }

    #[test]
    fn queue_order_sorts_by_sequence_not_name() {
        let order = queue_order(vec![
            "_c_b-lock-0000000003".to_string(),
            "junk".to_string(),
            "_c_a-lock-0000000010".to_string(),
            "_c_z-lock-0000000001".to_string(),
        ]);
        let seqs: Vec<i64> = order.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![1, 3, 10]);
    }

    #[test]
    fn view_marks_unlisted_older_nodes_gone_but_keeps_newer_ones() {
        let mut state = QueueState::default();
        state.apply_listing(vec!["x-lock-0000000001".into(), "x-lock-0000000002".into()]);
        state.view.insert(9, ("x-lock-0000000009".into(), true));
        // A later listing without 1 and 9: 1 was deleted; 9 may be newer than the listing.
        state.apply_listing(vec!["x-lock-0000000002".into(), "x-lock-0000000005".into()]);
        assert_eq!(state.is_listed(1), None, "pruned");
        assert_eq!(state.is_listed(2), Some(true));
        assert_eq!(state.is_listed(9), Some(true));
        assert_eq!(state.live_predecessor(9).map(|p| p.0), Some(5));
        state.mark_gone(5);
        assert_eq!(state.live_predecessor(9).map(|p| p.0), Some(2));
        state.mark_gone(2);
        assert_eq!(state.live_predecessor(9), None);
    }

    #[test]
    fn sequence_zero_is_a_live_node() {
        // The first node under a new parent gets sequence 0: it must block the ones after it.
        let mut state = QueueState::default();
        state.apply_listing(vec!["x-lock-0000000000".into(), "x-lock-0000000001".into()]);
        assert_eq!(state.is_listed(0), Some(true));
        assert_eq!(state.live_predecessor(1).map(|p| p.0), Some(0));
        state.mark_gone(0);
        assert_eq!(state.live_predecessor(1), None);
        state.apply_listing(vec!["x-lock-0000000000".into(), "x-lock-0000000001".into()]);
        assert_eq!(state.is_listed(0), None, "a gone node 0 must not come back");
    }

    #[test]
    fn a_gone_node_never_comes_back() {
        let mut state = QueueState::default();
        state.apply_listing(vec!["x-lock-0000000001".into(), "x-lock-0000000002".into()]);
        state.mark_gone(2);
        // An older listing that still shows 2 must not resurrect it.
        state.apply_listing(vec!["x-lock-0000000001".into(), "x-lock-0000000002".into()]);
        assert_eq!(state.is_listed(2), Some(false));
        // Nor, once 1 is gone too and both are pruned, 1 or 2.
        state.mark_gone(1);
        assert!(state.view.is_empty());
        state.apply_listing(vec!["x-lock-0000000001".into(), "x-lock-0000000002".into()]);
        assert!(state.view.is_empty());
    }
}
