//! A node this process holds at the head of the queue: its release, its lost signal, the
//! monitor that watches it, and the register of each client's holds.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::future::Either;
use futures::FutureExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{EventType, SessionState};

use super::decision::{decide, Decision, OwnNode, Presence};
use super::view::{Incarnation, LockMode, QueueNode};
use super::{DataDelivery, Grant, OwnWatch, SequentialQueue, WaiterKey};
use crate::connection::{Backoff, Client, ProtectedNode, Session};
use crate::error::{is_retryable_zk, Error, Result};
use crate::path::join;
use crate::sync::Locked;

/// The holds of one client on one lock, through any of its handles: what "a hold still in
/// use" can mean to a queue (see [`decision`](super::decision), rule 4).
///
/// A hold whose node was deleted by someone else, or whose session was lost, is still in use
/// until its guard is released or dropped: no other hold of the same client on the same lock
/// that conflicts with it is granted meanwhile (readers share with readers). Other clients (in
/// this process or another) cannot see it, and take part as other processes do; fencing
/// tokens are for them.
#[derive(Debug, Default)]
pub(super) struct LocalHolds {
    /// The holds not yet released: node name → mode.
    names: Mutex<HashMap<String, LockMode>>,
    released: Notify,
}

/// One lock of one client: the client's [instance](crate::Client::instance) and the lock
/// path.
type LockKey = (u64, String);

/// Every lock of every client of the process with a live handle.
static LOCKS: LazyLock<Mutex<HashMap<LockKey, Weak<LocalHolds>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl LocalHolds {
    /// The holds of the client `instance` (see [`Client::instance`](crate::Client::instance))
    /// on the lock `path`.
    pub(super) fn of(instance: u64, path: &str) -> Arc<Self> {
        let mut locks = LOCKS.locked();
        let key = (instance, path.to_owned());
        if let Some(holds) = locks.get(&key).and_then(Weak::upgrade) {
            return holds;
        }
        // Locks no handle uses any more go when a new one comes, so the map stays as large as
        // the set of locks in use.
        locks.retain(|_, holds| holds.strong_count() > 0);
        let holds = Arc::new(LocalHolds::default());
        locks.insert(key, Arc::downgrade(&holds));
        holds
    }

    /// Registers a hold on `name` whatever else is held (a downgrade's read hold, beside its
    /// own write hold).
    fn register(self: &Arc<Self>, name: &str, mode: LockMode) -> LocalHold {
        self.names.locked().insert(name.to_owned(), mode);
        LocalHold {
            holds: self.clone(),
            name: name.to_owned(),
        }
    }

    /// Registers a hold on `node` at the moment of its grant, unless a hold it must wait for
    /// is in use: the check and the registration are one step, so two grants decided at once
    /// (by two drivers of one client, a read and a write lock) cannot both pass the check.
    /// `None`: the grant must wait (rule 4).
    pub(super) fn try_register(self: &Arc<Self>, node: &QueueNode) -> Option<LocalHold> {
        let mut names = self.names.locked();
        if conflict_among(&names, node) {
            return None;
        }
        names.insert(node.name.clone(), node.mode);
        Some(LocalHold {
            holds: self.clone(),
            name: node.name.clone(),
        })
    }

    /// True while a hold other than the one on `node` is in use that `node` must wait for.
    pub(super) fn conflicting_with(&self, node: &QueueNode) -> bool {
        conflict_among(&self.names.locked(), node)
    }

    /// Resolves when a hold is released. Create (and enable) it before looking, so that a
    /// release between the look and the wait is not missed.
    pub(super) fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }
}

/// True if a hold among `holds` (node name → mode), other than the one on `node`, is one
/// `node` must wait for.
fn conflict_among(holds: &HashMap<String, LockMode>, node: &QueueNode) -> bool {
    holds
        .iter()
        .any(|(held, mode)| *held != node.name && node.mode.waits_for(*mode))
}

/// A hold's entry in [`LocalHolds`], removed when dropped (a grant that is never taken up
/// drops it with the grant).
#[derive(Debug)]
pub(super) struct LocalHold {
    holds: Arc<LocalHolds>,
    name: String,
}

impl Drop for LocalHold {
    fn drop(&mut self) {
        self.holds.names.locked().remove(&self.name);
        self.holds.released.notify_waiters();
    }
}

/// A node this process holds at the head of the queue.
///
/// Dropping it without [`release`](Held::release) sends the node's delete at once and leaves
/// its answer to the background.
#[derive(Debug)]
pub(crate) struct Held {
    queue: Arc<SequentialQueue>,
    node: Option<ProtectedNode>,
    incarnation: Incarnation,
    /// The session's interruption count when ownership was confirmed.
    interruptions_at_grant: u64,
    /// Cancelled when the node is seen deleted (by its monitor).
    node_deleted: CancellationToken,
    monitor_stop: CancellationToken,
    /// Cancelled when the release starts, right before the delete is sent: a monitor that
    /// has not set its watch yet sets none (it would find the node gone, a request for
    /// nothing), and one whose watch is set lets the delete fire it.
    releasing: CancellationToken,
    /// Removed when the release starts, or when dropped.
    local_hold: Option<LocalHold>,
}

impl Held {
    /// A node granted by `grant`: registers the hold and starts its monitor.
    pub(super) fn start(
        queue: Arc<SequentialQueue>,
        node: ProtectedNode,
        grant: Grant,
        delivery: DataDelivery,
    ) -> Self {
        let local_hold = grant.local_hold;
        queue
            .state
            .locked()
            .holds
            .insert(node.name.clone(), node.session.generation());
        let node_deleted = CancellationToken::new();
        let monitor_stop = CancellationToken::new();
        let releasing = CancellationToken::new();
        monitor_own_node(
            &queue,
            &node,
            grant.incarnation,
            node_deleted.clone(),
            MonitorStops {
                stop: monitor_stop.clone(),
                releasing: releasing.clone(),
            },
            delivery,
            grant.own_watch,
        );
        Held {
            queue,
            node: Some(node),
            incarnation: grant.incarnation,
            interruptions_at_grant: grant.interruptions_at_grant,
            node_deleted,
            monitor_stop,
            releasing,
            local_hold: Some(local_hold),
        }
    }

    pub(crate) fn node(&self) -> &ProtectedNode {
        self.node
            .as_ref()
            .expect("a held node is present until released")
    }

    pub(crate) fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The session's interruption count when ownership was confirmed.
    pub(crate) fn interruptions_at_grant(&self) -> u64 {
        self.interruptions_at_grant
    }

    pub(super) fn queue_node(&self) -> Option<QueueNode> {
        self.queue.queue_node(self.node())
    }

    /// The lock node's czxid: unique and rising with every grant across the ensemble.
    pub(crate) fn fencing_token(&self) -> u64 {
        self.node().stat.czxid as u64
    }

    /// Resolves when the hold is surely lost: the node was deleted or its session lost. Unlike
    /// [`LostSignal::wait`], a mere suspension does not resolve it (for `LeaderSelector`
    /// listeners that choose to ride out suspensions).
    pub(crate) fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let session = self.node().session.clone();
        let node_deleted = self.node_deleted.clone();
        async move {
            tokio::select! {
                _ = node_deleted.cancelled() => {}
                _ = session.lost() => {}
            }
        }
    }

    /// The hold's lost signal as a cloneable value that outlives the `Held`, for recipes that
    /// share one hold between several guards.
    pub(crate) fn lost_signal(&self) -> LostSignal {
        LostSignal {
            session: self.node().session.clone(),
            node_deleted: self.node_deleted.clone(),
            interruptions_at_grant: self.interruptions_at_grant,
        }
    }

    /// Lets go of a node that a transaction of ours has deleted: nothing is left to delete.
    pub(super) fn deleted_by_transaction(mut self) {
        let node = self.start_release().expect("given up once");
        if let Some(queue_node) = self.queue.queue_node(&node) {
            self.queue.note_deleted(Some(self.incarnation), &queue_node);
        }
        // Dropping `self` stops the monitor: after the transaction's answer that is safe, as at
        // the end of `release` (its watch, if set, has fired).
    }

    /// Starts the release, once: gives the hold back (so that the delete can hand the lock to
    /// a local waiter, which `next_grant_if_released` would otherwise see this hold keep out),
    /// tells the monitor not to set a watch any more, and hands out the node to delete.
    fn start_release(&mut self) -> Option<ProtectedNode> {
        self.local_hold.take();
        let node = self.node.take()?;
        self.releasing.cancel();
        Some(node)
    }

    /// Deletes the node now. On failure the node is handed to a background delete that keeps
    /// trying for as long as the session lives (the node is never forgotten: CURATOR-678), and
    /// the error is returned.
    ///
    /// The hold counts as released from the first poll: another hold of the same client on the
    /// lock may be granted once the node is gone.
    ///
    /// Cancel safe: the delete request is on the wire once this is first polled, and dropping
    /// the future hands the node to a background delete (a second delete of a deleted node is
    /// harmless), so the node goes all the same; only the outcome is not reported.
    pub(crate) async fn release(mut self) -> Result<()> {
        let node = self.start_release().expect("released once");
        // The monitor keeps running: our delete fires its watch, which ends it. Stopping it
        // first would make zookeeper-client send a RemoveWatches ahead of the delete, costing
        // the release a server round of its own.
        let mut unfinished = DeleteOnDrop {
            queue: self.queue.clone(),
            node: Some(node.clone()),
            incarnation: Some(self.incarnation),
        };
        let result = self.queue.delete_node(node, Some(self.incarnation)).await;
        unfinished.node = None;
        result
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        match self.start_release() {
            // The monitor keeps running, as in `release`: the delete fires its watch, which
            // ends it. Stopping it here would make zookeeper-client send a RemoveWatches
            // behind the delete, a request for nothing.
            Some(node) => self.queue.spawn_delete(
                node,
                Some(self.incarnation),
                "background release failed; a guaranteed delete continues",
                Some(self.monitor_stop.clone()),
            ),
            None => self.monitor_stop.cancel(),
        }
    }
}

impl SequentialQueue {
    /// Holds `node`, one of ours made outside the queue's acquire that is known to be held: a
    /// downgrade's read node, made in one transaction with a check of a write node held since
    /// the session's interruption count was `interruptions_at_grant`, under `incarnation` of
    /// the parent. Its release, monitor and lost signal are a granted node's.
    pub(crate) fn adopt(
        self: &Arc<Self>,
        node: ProtectedNode,
        incarnation: Incarnation,
        interruptions_at_grant: u64,
    ) -> Held {
        let local_hold = self.local_holds.register(&node.name, LockMode::Shared);
        let grant = Grant {
            interruptions_at_grant,
            incarnation,
            own_watch: None,
            local_hold,
            sent_ahead: None,
        };
        Held::start(self.clone(), node, grant, self.data_delivery())
    }

    /// A node of ours as the queue names it: its sequence and mode, read from its name (a
    /// downgrade's read node is not sequential, but carries its write node's sequence).
    pub(super) fn queue_node(&self, node: &ProtectedNode) -> Option<QueueNode> {
        self.names.node(node.name.clone())
    }
}

/// A node whose delete is in flight: if the future awaiting it is dropped, the delete is
/// finished in the background.
struct DeleteOnDrop {
    queue: Arc<SequentialQueue>,
    node: Option<ProtectedNode>,
    incarnation: Option<Incarnation>,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            self.queue.spawn_delete(
                node,
                self.incarnation,
                "an interrupted release failed; a guaranteed delete continues",
                None,
            );
        }
    }
}

/// The lost signal of a [`Held`], detached from it: the session the node lives on, the
/// node-deleted token, and the interruption count at the grant.
#[derive(Debug, Clone)]
pub(crate) struct LostSignal {
    session: Arc<Session>,
    node_deleted: CancellationToken,
    interruptions_at_grant: u64,
}

impl LostSignal {
    /// True once the hold may be lost: the session was suspended or lost since the grant, or
    /// the node was deleted.
    pub(crate) fn is_lost(&self) -> bool {
        self.node_deleted.is_cancelled()
            || self.session.is_lost()
            || self.session.interruption_count() > self.interruptions_at_grant
    }

    /// Resolves when [`is_lost`](Self::is_lost) becomes true.
    pub(crate) fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let signal = self.clone();
        async move {
            tokio::select! {
                _ = signal.node_deleted.cancelled() => {}
                _ = signal.session.interrupted_since(signal.interruptions_at_grant) => {}
            }
        }
    }
}

impl SequentialQueue {
    /// Deletes `node` in a background task, counted until its attempts under the retry policy
    /// end or its session is lost (see [`deletes_settled`](Self::deletes_settled)); `failure`
    /// is logged if they fail, and `then_stop` (a node monitor's stop) is cancelled once it
    /// has ended. The delete is sent before this returns.
    pub(super) fn spawn_delete(
        self: &Arc<Self>,
        node: ProtectedNode,
        incarnation: Option<Incarnation>,
        failure: &'static str,
        then_stop: Option<CancellationToken>,
    ) {
        let in_flight = self.background_deletes.start();
        // Sent here, ahead of whatever this task sends next; the task only awaits the answer.
        // In the client's runtime: a guard may be dropped outside one, and a create sent ahead
        // for a local waiter starts a timer.
        let delete = {
            let _runtime = self.client.enter_runtime();
            self.delete_node(node, incarnation)
        };
        self.client.spawn(async move {
            if let Err(e) = delete.await {
                tracing::warn!(error = %e, "{failure}");
            }
            // The answer came after the delete's event (if the monitor's watch was set, it
            // has fired): stopping the monitor now sends nothing, and one that waits on a
            // node whose delete failed (a guaranteed delete goes on) ends, as after `release`.
            if let Some(stop) = then_stop {
                stop.cancel();
            }
            drop(in_flight);
        });
    }

    /// Resolves once every background delete started so far (by dropping a [`Held`] or an
    /// `acquire` future, whose create may have made a node) has ended its attempts under the
    /// retry policy: the node is deleted, or went with its session, or the delete failed and a
    /// guaranteed delete carries on (the clean-up of an abandoned create counts until it ends:
    /// see [`BackgroundDeletes`](crate::connection::BackgroundDeletes)). For recipes that must
    /// not report "closed" while their withdrawn node may still be seen.
    ///
    /// Waits at most the connection timeout (the deletes go on in the background after that),
    /// and says whether they settled in time.
    pub(crate) async fn deletes_settled(&self) -> bool {
        let limit = self.client.connection_timeout();
        tokio::time::timeout(limit, self.background_deletes.settled())
            .await
            .is_ok()
    }

    /// Deletes one of our nodes and, once it is surely gone, takes it out of the view.
    ///
    /// The delete is sent when this is called, not when the future is first polled: a guard
    /// dropped in the background thus has its delete ahead of every later request of the
    /// session (the next acquire's create among them), as an awaited release has. The
    /// future only waits for the answer.
    ///
    /// When this node is the last thing between the lowest local waiter and its grant, a read
    /// of the waiter's node follows the delete in the same round trip: finding it proves that
    /// the waiter's node was there after its predecessor went, and the driver grants it with no
    /// read and no watch of its own.
    pub(super) fn delete_node(
        self: &Arc<Self>,
        node: ProtectedNode,
        incarnation: Option<Incarnation>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let queue = self.clone();
        let queue_node = self.queue_node(&node);
        let sent_at = Instant::now();
        let sent = match node.session.zookeeper() {
            Ok(zk) => {
                let handoff = queue_node
                    .as_ref()
                    .and_then(|q| self.next_grant_if_released(q));
                let answer =
                    match handoff {
                        // Boxed: every waiting task carries its release's future, and thousands
                        // may wait.
                        Some((waiter, waiter_path)) => Either::Left(Box::pin(
                            self.delete_handing_off(&zk, &node.path, waiter, &waiter_path),
                        )),
                        None => Either::Right(zk.delete(&node.path, None).map(settled_delete)),
                    };
                Some((zk, answer))
            }
            Err(_) => None,
        };
        async move {
            // A release waits as long as Curator's retried delete would try, then gives up
            // waiting, and the delete goes on in the background (below). A session lost
            // meanwhile (or the client closed) ends the wait, and lets go of its handle.
            let outcome = match sent {
                Some((zk, answer)) => {
                    let retried = retried_delete(&queue.client, &node, zk, answer, sent_at);
                    node.session.unless_lost(retried).await
                }
                None => None,
            };
            // A released session takes its ephemeral node with it, but only once the server
            // expires it, which may be later than this client declared it lost: leave the view
            // alone, so waiters keep watching the node until it is really gone.
            let Some(outcome) = outcome else {
                queue.state.locked().holds.remove(&node.name);
                return Ok(());
            };
            match outcome {
                Ok(()) => {
                    if let Some(queue_node) = &queue_node {
                        queue.note_deleted(incarnation, queue_node);
                    }
                    Ok(())
                }
                Err(e) => {
                    let error = Error::from(e.clone());
                    tracing::warn!(path = %node.path, error = %e, "deleting a queue node failed; retrying in the background");
                    let retrying = queue.clone();
                    queue.client.spawn(async move {
                        let result = retrying
                            .client
                            .guaranteed_delete(&node.session, &node.path)
                            .await;
                        match (result, &queue_node) {
                            (Ok(()), Some(queue_node)) => {
                                retrying.note_deleted(incarnation, queue_node)
                            }
                            (Ok(()), None) => {}
                            (Err(e), _) => tracing::error!(path = %node.path, error = %e, "could not delete a queue node; it stays until its session ends"),
                        }
                    });
                    Err(error)
                }
            }
        }
    }
}

impl SequentialQueue {
    /// The lowest local waiter and its node's path, if deleting our node `node` and then
    /// finding that waiter's node would prove its grant: the driver's own decision, made as
    /// if the delete had happened and the node had been found.
    ///
    /// Made here, when the release is sent, rather than by the driver when it starts to wait:
    /// a hold released at once would often be faster than the driver.
    fn next_grant_if_released(&self, node: &QueueNode) -> Option<(WaiterKey, String)> {
        let state = self.state.locked();
        let (key, waiter) = state
            .waiters
            .iter()
            .find(|(_, waiter)| !waiter.session.is_lost())?;
        let own = OwnNode {
            node: &waiter.node,
            incarnation: waiter.incarnation,
            presence: Presence::Proven,
            downgrades: self.names.has_shared(),
        };
        let other_hold = self.local_holds.conflicting_with(&waiter.node);
        matches!(
            decide(&state.view, &own, other_hold, Some(node)),
            Decision::Grant { .. }
        )
        .then(|| (*key, join(&self.path, &waiter.node.name)))
    }

    /// Deletes `path`, and right behind it, in the same round trip, reads the stat of the
    /// waiter's node `waiter_path`: ZooKeeper answers a session's requests in order, so a node
    /// found there was there after ours went, which records the waiter's grant as proven. (A
    /// plain read costs the server less than a transaction with a check, or a watch.) If the
    /// waiter's node is gone, the driver finds that out by itself.
    fn delete_handing_off(
        self: &Arc<Self>,
        zk: &zookeeper_client::Client,
        path: &str,
        waiter: WaiterKey,
        waiter_path: &str,
    ) -> impl Future<Output = std::result::Result<(), zookeeper_client::Error>> + Send + 'static
    {
        let delete = zk.delete(path, None);
        let waiter_stat = zk.check_stat(waiter_path);
        // Behind the read that may prove the waiter's grant: the create it makes once granted
        // (see `CreateAhead`). Dropped, and its node deleted, unless the read proves it.
        let sent_ahead = self.send_create_ahead(waiter);
        let queue = self.clone();
        let (path, waiter_path) = (path.to_owned(), waiter_path.to_owned());
        async move {
            let deleted = settled_delete(delete.await);
            if deleted.is_ok() {
                if let Ok(Some(_)) = waiter_stat.await {
                    let mut state = queue.state.locked();
                    state.release_proof = Some(waiter);
                    // Kept with the waiter, if it still waits; dropped (and its node deleted)
                    // otherwise.
                    if let Some(waiting) = state.waiters.get_mut(&waiter) {
                        waiting.sent_on_release = sent_ahead.map(Box::new);
                    }
                } else {
                    tracing::debug!(%path, waiter = %waiter_path, "the next local waiter's node is gone");
                }
            }
            deleted
        }
    }
}

/// The outcome of the delete of `node`, sent on `zk` (its session) and answered by `answer`,
/// waited for and sent again as Curator's retry loop would (the client's retry policy, from
/// `sent_at`): a delete held while the connection is down is waited for; one that was on the
/// wire when the connection dropped failed with it, applied or not, and is sent again on the
/// node's session (a second delete of a deleted node finds none, which is success).
async fn retried_delete(
    client: &Client,
    node: &ProtectedNode,
    zk: zookeeper_client::Client,
    answer: impl Future<Output = std::result::Result<(), zookeeper_client::Error>>,
    sent_at: Instant,
) -> std::result::Result<(), zookeeper_client::Error> {
    let mut retries = 0u32;
    let mut outcome = client
        .answer_while_retries_allow(&zk, answer, &mut retries, sent_at)
        .await
        .unwrap_or(Err(zookeeper_client::Error::ConnectionLoss));
    while let Err(e) = &outcome {
        if !is_retryable_zk(e) || node.session.is_lost() {
            break;
        }
        if client
            .backoff(Error::from(e.clone()), &mut retries, sent_at)
            .await
            .is_err()
        {
            break;
        }
        let Ok(zk) = node.session.zookeeper() else {
            break;
        };
        tracing::debug!(path = %node.path, error = %e, "sending a release's delete again");
        let again = zk.delete(&node.path, None).map(settled_delete);
        outcome = client
            .answer_while_retries_allow(&zk, again, &mut retries, sent_at)
            .await
            .unwrap_or(Err(zookeeper_client::Error::ConnectionLoss));
    }
    outcome
}

/// The outcome of deleting one of our nodes: a node that is gone already, or went with its
/// session, is deleted all the same.
fn settled_delete(
    outcome: std::result::Result<(), zookeeper_client::Error>,
) -> std::result::Result<(), zookeeper_client::Error> {
    match outcome {
        Ok(()) | Err(zookeeper_client::Error::NoNode) => Ok(()),
        // An expired session takes its ephemeral node with it: nothing is left to delete,
        // and the release did not fail.
        Err(zookeeper_client::Error::SessionExpired) => Ok(()),
        Err(e) => Err(e),
    }
}

/// How long after a grant the holder's node monitor sets its watch, when the grant did not
/// come with one.
const MONITOR_DELAY: Duration = Duration::from_millis(10);

/// What ends a node monitor: `stop` at once, `releasing` only before its watch is set.
struct MonitorStops {
    stop: CancellationToken,
    releasing: CancellationToken,
}

/// Watches a held node, so that its deletion by anyone else marks the hold lost, and hands
/// each version of its data to the data listener (Curator's revocation requests).
///
/// A grant that came with a watch on the node (the driver's proof of presence) goes on with
/// it, at no cost. Otherwise the watch is set [`MONITOR_DELAY`] after the grant, from a task
/// of its own: it costs the acquire no round trip, and a short hold no request. Our own
/// delete at release fires it (or the release stops the monitor before it was set), so no
/// watch is left dangling.
fn monitor_own_node(
    queue: &Arc<SequentialQueue>,
    node: &ProtectedNode,
    incarnation: Incarnation,
    node_deleted: CancellationToken,
    MonitorStops { stop, releasing }: MonitorStops,
    mut delivery: DataDelivery,
    armed: Option<Box<OwnWatch>>,
) {
    let Ok(zk) = node.session.zookeeper() else {
        node_deleted.cancel();
        return;
    };
    let path = node.path.clone();
    let czxid = node.stat.czxid as u64;
    let queue_node = queue.queue_node(node);
    let queue_of_node = queue.clone();
    let session = node.session.clone();
    queue.client.spawn(async move {
        let mut armed = armed;
        if armed.is_none() {
            // Holds shorter than this cost no request at all: an uncontended acquire and
            // release is then a create (with its listing) and a delete, and nothing else. A
            // deletion by someone else is noticed at most this much later than with an
            // immediate watch.
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = releasing.cancelled() => return,
                _ = tokio::time::sleep(MONITOR_DELAY) => {}
            }
        }
        let watch = async {
            let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
            loop {
                let own = match armed.take() {
                    Some(own) => own,
                    None => match OwnWatch::arm(&zk, &path).await {
                        Ok(Some(own)) => Box::new(own),
                        Ok(None) => return,
                        Err(e) if is_retryable_zk(&e) => {
                            // The interruption count covers the drop itself, but the watch is
                            // not set: once the session is connected again, set it again, or
                            // a deletion after the reconnect would go unnoticed (by holders
                            // that ride out suspensions).
                            connected_again(&zk).await;
                            backoff.sleep().await;
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(%path, error = %e, "cannot watch a held node");
                            return std::future::pending::<()>().await;
                        }
                    },
                };
                backoff.reset();
                let OwnWatch { data, stat, event } = *own;
                delivery.offer(&path, czxid, &stat, &data);
                match event.await.event_type {
                    EventType::NodeDeleted => return,
                    // A session event: the interruption count covers it.
                    EventType::Session => std::future::pending::<()>().await,
                    // A data change (e.g. a revocation request): read it and watch again.
                    _ => continue,
                }
            }
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            // The task keeps the session's handle: a lost session ends it (the hold ended
            // with the session already: its interruption count says so).
            watched = session.unless_lost(watch) => {
                if watched.is_some() {
                    node_deleted.cancel();
                    // A local successor may be waiting on this node without a watch of its own.
                    if let Some(queue_node) = &queue_node {
                        queue_of_node.note_deleted(Some(incarnation), queue_node);
                    }
                }
            }
        }
    });
}

/// Resolves once `zk`'s session is connected again; never, once it has ended (its loss
/// covers whatever waited for it).
pub(super) async fn connected_again(zk: &zookeeper_client::Client) {
    let mut states = zk.state_watcher();
    loop {
        let state = states.state();
        if matches!(
            state,
            SessionState::SyncConnected | SessionState::ConnectedReadOnly
        ) {
            return;
        }
        if state.is_terminated() {
            std::future::pending::<()>().await;
        }
        states.changed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::view::READ_WRITE_NAMES;

    fn node(name: &str) -> QueueNode {
        READ_WRITE_NAMES.node(name.to_owned()).unwrap()
    }

    #[test]
    fn a_grant_registers_only_beside_holds_it_shares_with() {
        let holds = Arc::new(LocalHolds::default());
        let first_reader = holds
            .try_register(&node("_c_a-__READ__0000000001"))
            .expect("nothing held");
        let second_reader = holds
            .try_register(&node("_c_b-__READ__0000000002"))
            .expect("readers share");
        let writer = node("_c_c-__WRIT__0000000003");
        assert!(holds.conflicting_with(&writer));
        assert!(
            holds.try_register(&writer).is_none(),
            "a writer beside readers"
        );
        drop(first_reader);
        assert!(holds.try_register(&writer).is_none(), "one reader is left");
        drop(second_reader);
        let write_hold = holds.try_register(&writer).expect("every reader left");
        assert!(
            holds
                .try_register(&node("_c_d-__READ__0000000004"))
                .is_none(),
            "a reader beside a writer"
        );
        // A downgrade's read hold registers beside its own write hold.
        let downgraded = holds.register("_c_e-__READ__0000000003", LockMode::Shared);
        drop(write_hold);
        assert!(holds.conflicting_with(&writer));
        drop(downgraded);
        assert!(!holds.conflicting_with(&writer));
    }
}
