//! The background task of a started [`LeaderLatch`](super::LeaderLatch) in the race layout
//! ([`LatchLayout::Race`](super::LatchLayout::Race)): races for the node, holds it, watches
//! it, and gives leadership up when the connection says so.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acl, CreateMode, EventType, OneshotWatcher, Stat, WatchedEvent};

use super::siblings::{CreateTurn, Siblings};
use super::{ConnectionErrorPolicy, Inner, LatchState};
use crate::connection::{acls_or_default, ensure_parents, Backoff, Session};
use crate::error::{is_retryable_zk, Error};
use crate::sync::Locked;

/// How often in a row the parent may vanish between making it and creating the node before
/// the race backs off.
const MAX_PARENT_REBUILDS: u32 = 5;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest sleep between attempts after an error that retrying may not cure (an ACL, an
/// ephemeral parent): logged, and tried again, so an operator's fix is picked up.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a latch's task ended.
pub(super) enum End {
    /// `close()` or a drop of the latch.
    Cancelled,
    /// The client was closed.
    ClientClosed,
    /// An error retrying will not cure: on the first attempt, or, whenever it comes, a node at
    /// the path that no latch made, or a connection that drops in answer to every attempt
    /// (see [`DroppedAttempts`]). `start()` reports it, or else
    /// [`failure`](super::LeaderLatch::failure).
    Failed(Error),
}

/// What one look at the node found.
enum Observed {
    /// The node exists and this latch's current session owns it.
    Ours(OneshotWatcher),
    /// Another session owns the node (or it is not ephemeral).
    Other {
        id: Vec<u8>,
        stat: Stat,
        watcher: OneshotWatcher,
    },
    /// The node is not there (deleted between the create and the read).
    Gone,
    /// The node's parent is missing.
    NoParent,
}

impl End {
    /// Gives leadership up for good, as the way the task ended says (a close has done so
    /// already), and keeps a failure for [`failure`](super::LeaderLatch::failure).
    pub(super) fn give_up_leadership(&self, inner: &Inner) {
        let path = &inner.path;
        match self {
            End::Cancelled => tracing::debug!(%path, "leader latch closed"),
            End::ClientClosed => {
                tracing::info!(%path, "the client was closed; the leader latch stops");
                inner.emitter.close(true);
                inner.mark_closed();
            }
            End::Failed(error) => {
                tracing::error!(%path, %error, "the leader latch stops");
                *inner.failure.locked() = Some(error.clone());
                inner.emitter.close(false);
                inner.mark_closed();
            }
        }
    }

    /// Answers a `start()` still waiting for the first attempt.
    pub(super) fn answer_start(self, started: Option<oneshot::Sender<crate::Result<()>>>) {
        if let Some(started) = started {
            let _ = started.send(match self {
                End::Failed(error) => Err(error),
                End::Cancelled | End::ClientClosed => Err(Error::Closed),
            });
        }
    }
}

/// What the node at a latch's path is, if it is one no latch could have made: latches make
/// ephemeral nodes only. (ZooKeeper shows container and TTL nodes to clients with an
/// ephemeral owner of 0, as persistent ones.)
fn made_by_no_latch(stat: &Stat) -> Option<&'static str> {
    (stat.ephemeral_owner == 0).then_some(
        "a persistent or container node (its ephemeral owner is 0: another recipe's parent, \
         perhaps), which no leader latch makes",
    )
}

/// Attempts in a row whose connection dropped while they were in flight. A server drops the
/// connection of a request it refuses (one over its `jute.maxbuffer`), so a drop in answer to
/// every attempt must not start an endless loop: the client's retry policy bounds the run, as
/// it bounds Curator's retries.
#[derive(Debug, Default)]
struct DroppedAttempts {
    count: u32,
    first: Option<std::time::Instant>,
}

impl DroppedAttempts {
    /// Counts a failed attempt; false once the retry policy allows no more after a drop.
    fn allow_another(
        &mut self,
        error: &zookeeper_client::Error,
        policy: &dyn crate::retry::RetryPolicy,
    ) -> bool {
        use zookeeper_client::Error as Zk;
        if !matches!(error, Zk::ConnectionLoss | Zk::Timeout | Zk::Custom(_)) {
            // A lost session is no sign of a refused request.
            return true;
        }
        let first = *self.first.get_or_insert_with(std::time::Instant::now);
        let allowed = policy.allow_retry(self.count, first.elapsed()).is_some();
        self.count += 1;
        allowed
    }
}

/// What to do after leading or following ended.
enum Next {
    Race,
    Stop(End),
}

pub(super) struct RaceTask {
    pub(super) inner: Arc<Inner>,
    pub(super) cancel: CancellationToken,
    pub(super) acls: Vec<Acl>,
    pub(super) policy: ConnectionErrorPolicy,
    /// Answers `start()` once the first attempt has decided (or cannot decide for now).
    pub(super) started: Option<oneshot::Sender<crate::Result<()>>>,
    /// The last session a create was sent on: the only one that can own our node.
    pub(super) session: Option<Arc<Session>>,
    /// Which node of `session` is this latch's own.
    pub(super) claim: std::sync::Mutex<Claim>,
    /// The siblings' create turn, while a create of ours is in flight or unresolved (see
    /// [`Siblings`](super::siblings::Siblings)).
    pub(super) create_turn: std::sync::Mutex<Option<CreateTurn>>,
}

/// Which latch node is a latch's own, on its current session.
///
/// The session owning the node is not enough: another latch of the same client (on the same
/// path) shares the session, and so does a closed latch of the client whose delete is still
/// pending. Taking their node for ours would make two leaders, and that delete would take the
/// node from under us. See [`Siblings`] for how a latch proves a node its own.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Claim {
    /// The czxid of the node this latch made, once known.
    czxid: Option<i64>,
    /// A create of ours whose answer was lost: the node it may have made is known only by its
    /// owner (CURATOR-696).
    unknown_create: bool,
}

impl Claim {
    /// Whether a node of our session is this latch's (latch number `latch` among `siblings`):
    /// the node our create made, or, while our create is unresolved, a node no sibling
    /// claims (only our create can have made it; see [`Siblings`]).
    fn recognises(&self, stat: &Stat, siblings: &Siblings, latch: u64) -> bool {
        match self.czxid {
            Some(czxid) => czxid == stat.czxid,
            None => self.unknown_create && !siblings.claimed_by_another(latch, stat.czxid),
        }
    }
}

impl RaceTask {
    pub(super) async fn run(mut self) {
        let end = self.race().await;
        end.give_up_leadership(&self.inner);
        // Leadership is already given up (the emitter is closed); only now may the node go.
        if let Some(session) = self.session.take() {
            self.delete_our_node(session).await;
        }
        end.answer_start(self.started.take());
    }

    fn report_started(&mut self) {
        if let Some(started) = self.started.take() {
            let _ = started.send(Ok(()));
        }
    }

    async fn race(&mut self) -> End {
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        let mut parent_rebuilds = 0u32;
        let mut drops = DroppedAttempts::default();
        loop {
            let Some(session) = self.connected_session().await else {
                return self.why_stopped();
            };
            let seen = session.interruption_count();
            if !self
                .session
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, &session))
            {
                // A new session: no node of it is ours yet.
                self.settle(Claim::default());
            }
            self.session = Some(session.clone());
            if self.cancel.is_cancelled() {
                return End::Cancelled;
            }
            let observed = {
                let observing = self.observe(&session, true);
                tokio::pin!(observing);
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => {
                        // Our create may be in flight: learn whether it made the node, so that
                        // the close deletes it (and only it), for at most the connection
                        // timeout.
                        let budget = self.inner.client.connection_timeout();
                        let _ = tokio::time::timeout(budget, &mut observing).await;
                        return End::Cancelled;
                    }
                    observed = &mut observing => observed,
                }
            };
            if observed.is_ok() {
                drops = DroppedAttempts::default();
            }
            let error = match observed {
                Ok(Observed::Ours(watcher)) => {
                    parent_rebuilds = 0;
                    backoff.reset();
                    if !self.still_ours(&session, seen) {
                        // Interrupted while we looked: look again once connected.
                        tracing::debug!(path = %self.inner.path, "session interrupted while claiming leadership; checking again");
                        continue;
                    }
                    match self.lead(&session, seen, watcher).await {
                        Next::Race => continue,
                        Next::Stop(end) => return end,
                    }
                }
                Ok(Observed::Other { id, stat, watcher }) => {
                    if let Some(reason) = made_by_no_latch(&stat) {
                        return End::Failed(Error::PathOccupied {
                            path: self.inner.path.clone(),
                            reason,
                        });
                    }
                    parent_rebuilds = 0;
                    backoff.reset();
                    self.report_started();
                    tracing::debug!(path = %self.inner.path, leader = %String::from_utf8_lossy(&id), "following");
                    match self.follow(&session, watcher).await {
                        Next::Race => continue,
                        Next::Stop(end) => return end,
                    }
                }
                Ok(Observed::Gone) => continue,
                Ok(Observed::NoParent) => {
                    parent_rebuilds += 1;
                    if parent_rebuilds > MAX_PARENT_REBUILDS {
                        parent_rebuilds = 0;
                        zookeeper_client::Error::NoNode
                    } else {
                        match self.make_parents(&session).await {
                            Ok(()) => continue,
                            Err(e) => e,
                        }
                    }
                }
                Err(e) => e,
            };
            if is_retryable_zk(&error) {
                if !drops.allow_another(&error, self.inner.client.retry_policy()) {
                    tracing::error!(path = %self.inner.path, %error, attempts = drops.count, "the connection dropped during every one of the latch's last attempts, more often than the retry policy allows; the leader latch stops");
                    return End::Failed(Error::ConnectionLoss);
                }
                tracing::debug!(path = %self.inner.path, %error, "leader latch attempt failed; retrying");
                self.report_started();
            } else if self.started.is_some() {
                return End::Failed(error.into());
            } else {
                tracing::error!(path = %self.inner.path, %error, "leader latch cannot take part in the race; retrying");
            }
            if !self.sleep(backoff.next_pause()).await {
                return self.why_stopped();
            }
        }
    }

    fn why_stopped(&self) -> End {
        if self.cancel.is_cancelled() {
            End::Cancelled
        } else {
            End::ClientClosed
        }
    }

    /// Sleeps; false when cancelled or the client closed meanwhile.
    async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = self.inner.client.closed() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    /// The client's session once it is connected. `None` when cancelled or the client is
    /// closed. The first wait reports `start()` done after the connection timeout, and goes on
    /// waiting in the background.
    async fn connected_session(&mut self) -> Option<Arc<Session>> {
        let client = self.inner.client.clone();
        let connected = client.connected();
        tokio::pin!(connected);
        let report_at = Instant::now() + client.connection_timeout();
        let mut report = self.started.is_some();
        loop {
            let report_timer = async {
                if report {
                    tokio::time::sleep_until(report_at).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return None,
                session = &mut connected => return session.ok(),
                _ = report_timer => {
                    tracing::warn!(path = %self.inner.path, "not connected; the leader latch will race once the connection is back");
                    self.report_started();
                    report = false;
                }
            }
        }
    }

    /// True if `session` may still be believed to own the node it was seen to own when
    /// `seen` interruptions had happened: it is the client's current session, not lost, and
    /// (by the standard policy) not interrupted since.
    fn still_ours(&self, session: &Arc<Session>, seen: u64) -> bool {
        !session.is_lost()
            && Arc::ptr_eq(session, &self.inner.client.session())
            && (self.policy == ConnectionErrorPolicy::SessionOnly
                || session.interruption_count() == seen)
    }

    /// Records what this latch now knows of its node: for its siblings too, and, once no
    /// create of ours is unresolved, by giving the create turn back.
    fn settle(&self, claim: Claim) {
        *self.claim() = claim;
        self.inner.siblings.claim(self.inner.serial, claim.czxid);
        if !claim.unknown_create {
            self.create_turn.locked().take();
        }
    }

    fn claim(&self) -> std::sync::MutexGuard<'_, Claim> {
        self.claim.locked()
    }

    /// Creates the node (when `create`) and reads it with a watch, both sent before either
    /// answer is awaited. Whose node it is comes from the read: its ephemeral owner must be
    /// this session, and it must be the node this latch made (its czxid), or, after a create
    /// whose answer was lost, a node of this session (CURATOR-696: a `NodeExists` may then be
    /// our own node). A node of an earlier session of ours is not ours, nor one of this
    /// session made by another latch of the client.
    async fn observe(
        &self,
        session: &Arc<Session>,
        create: bool,
    ) -> Result<Observed, zookeeper_client::Error> {
        let zk = session
            .zookeeper()
            .map_err(|_| zookeeper_client::Error::SessionExpired)?;
        let path = self.inner.path.as_str();
        let options = CreateMode::Ephemeral.with_acls(acls_or_default(&self.acls));
        if create && self.create_turn.locked().is_none() {
            // One create at a time among the latches of this client on this path.
            let turn = self.inner.siblings.create_turn().await;
            *self.create_turn.locked() = Some(turn);
        }
        // Until its answer comes, a create sent may have made the node.
        let unknown_before = create.then(|| {
            let mut claim = self.claim();
            std::mem::replace(&mut claim.unknown_create, true)
        });
        let created = create.then(|| zk.create(path, self.inner.id.as_bytes(), &options));
        let read = zk.get_and_watch_data(path);
        let mut existed = false;
        if let Some(created) = created {
            self.inner
                .counters
                .races
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // A create that made nothing leaves the claim as it was before it.
            let made_nothing = || {
                let mut claim = *self.claim();
                claim.unknown_create = unknown_before.unwrap_or(false);
                self.settle(claim);
            };
            match created.await {
                Ok((stat, _)) => self.settle(Claim {
                    czxid: Some(stat.czxid),
                    unknown_create: false,
                }),
                Err(zookeeper_client::Error::NodeExists) => {
                    made_nothing();
                    existed = true;
                }
                Err(zookeeper_client::Error::NoNode) => {
                    made_nothing();
                    return Ok(Observed::NoParent);
                }
                // The answer is lost: the create may have made the node.
                Err(e) if is_retryable_zk(&e) => return Err(e),
                Err(e) => {
                    made_nothing();
                    return Err(e);
                }
            }
        }
        let siblings = &self.inner.siblings;
        let latch = self.inner.serial;
        let read = read.await;
        match read {
            Ok((_, stat, watcher))
                if session.owns(&stat) && self.claim().recognises(&stat, siblings, latch) =>
            {
                self.settle(Claim {
                    czxid: Some(stat.czxid),
                    unknown_create: false,
                });
                if existed {
                    tracing::debug!(
                        path = %self.inner.path,
                        session = %session.id(),
                        "the latch node exists and is this session's (made by an earlier attempt)"
                    );
                }
                Ok(Observed::Ours(watcher))
            }
            Ok((id, stat, watcher)) => {
                // The node there, read after our create, is not ours: whatever our create
                // did, it made no node that is still there.
                self.resolve_unknown_create();
                Ok(Observed::Other { id, stat, watcher })
            }
            Err(zookeeper_client::Error::NoNode) => {
                self.resolve_unknown_create();
                Ok(Observed::Gone)
            }
            Err(e) => Err(e),
        }
    }

    /// Settles an unresolved create of ours as having made no node (any node it made is gone).
    fn resolve_unknown_create(&self) {
        let claim = *self.claim();
        if claim.unknown_create {
            self.settle(Claim {
                unknown_create: false,
                ..claim
            });
        }
    }

    /// Makes the node's missing parents, as container nodes (CURATOR-724: the parent may be
    /// deleted while the latch runs).
    async fn make_parents(&self, session: &Arc<Session>) -> Result<(), zookeeper_client::Error> {
        let zk = session
            .zookeeper()
            .map_err(|_| zookeeper_client::Error::SessionExpired)?;
        tracing::debug!(path = %self.inner.path, "creating the latch node's parents");
        let made = ensure_parents(&zk, &self.inner.path, self.inner.client.default_acls());
        tokio::select! {
            _ = self.cancel.cancelled() => Ok(()),
            made = made => made,
        }
    }

    fn count_event(&self, event: &WatchedEvent) {
        if event.event_type != EventType::Session {
            self.inner
                .counters
                .watch_events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Holds leadership until the node changes hands, the connection policy says to give it
    /// up, or the latch is closed.
    async fn lead(&mut self, session: &Arc<Session>, seen: u64, watcher: OneshotWatcher) -> Next {
        if let Some(czxid) = self.claim().czxid {
            *self.inner.leader_node.locked() = Some(super::LeaderNode {
                session: session.clone(),
                path: self.inner.path.clone(),
                czxid,
            });
        }
        if self.inner.emitter.set_leader(true) {
            self.inner
                .counters
                .elected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(path = %self.inner.path, id = %self.inner.id, session = %session.id(), "leadership acquired");
        }
        self.report_started();
        let mut changed: Pin<Box<dyn Future<Output = WatchedEvent> + Send>> =
            Box::pin(watcher.changed());
        loop {
            let policy = self.policy;
            let step_down = async {
                match policy {
                    ConnectionErrorPolicy::Standard => session.interrupted_since(seen).await,
                    ConnectionErrorPolicy::SessionOnly => session.lost().await,
                }
            };
            let reason = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Next::Stop(End::Cancelled),
                _ = step_down => if session.is_lost() { "the session was lost" } else { "the connection was suspended" },
                event = &mut changed => {
                    self.count_event(&event);
                    if event.event_type != EventType::NodeDataChanged {
                        match event.event_type {
                            EventType::NodeDeleted => "the node was deleted",
                            _ => "the session ended",
                        }
                    } else {
                        // Someone wrote to our node: still ours? Look again, still leading.
                        let observed = tokio::select! {
                            biased;
                            _ = self.cancel.cancelled() => return Next::Stop(End::Cancelled),
                            observed = self.observe(session, false) => observed,
                        };
                        match observed {
                            Ok(Observed::Ours(watcher)) if self.still_ours(session, seen) => {
                                changed = Box::pin(watcher.changed());
                                continue;
                            }
                            _ => "the node changed",
                        }
                    }
                }
            };
            self.step_down(reason);
            return Next::Race;
        }
    }

    fn step_down(&self, reason: &str) {
        self.inner.leader_node.locked().take();
        if self.inner.emitter.set_leader(false) {
            tracing::info!(path = %self.inner.path, id = %self.inner.id, reason, "leadership given up");
        }
    }

    /// Waits, as a follower, for the leader's node to change (the herd: every follower is
    /// woken), or for our session to be lost.
    async fn follow(&self, session: &Arc<Session>, watcher: OneshotWatcher) -> Next {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Next::Stop(End::Cancelled),
            _ = session.lost() => Next::Race,
            event = watcher.changed() => {
                self.count_event(&event);
                tracing::debug!(path = %self.inner.path, event = ?event.event_type, "the leader's node changed; racing");
                Next::Race
            }
        }
    }

    /// Deletes the node if it is this latch's on `session`: at most for the connection timeout
    /// here, then in the background until it is gone or the session is.
    async fn delete_our_node(&self, session: Arc<Session>) {
        let path = self.inner.path.clone();
        let claim = *self.claim();
        let siblings = self.inner.siblings.clone();
        let latch = self.inner.serial;
        let budget = self.inner.client.connection_timeout();
        let foreground = tokio::time::timeout(
            budget,
            delete_if_owned(&session, &path, claim, &siblings, latch),
        );
        match foreground.await {
            Ok(outcome) => {
                if let Err(error) = outcome {
                    tracing::error!(%path, %error, "could not delete the leader latch node; it stays until its session ends");
                }
                siblings.claim(latch, None);
            }
            Err(_) => {
                tracing::debug!(%path, "deleting the leader latch node in the background");
                // An unresolved create's turn goes with the delete: until that delete has
                // decided which node is ours, no sibling may create.
                let turn = self.create_turn.locked().take();
                self.inner.client.spawn(async move {
                    if let Err(error) =
                        delete_if_owned(&session, &path, claim, &siblings, latch).await
                    {
                        tracing::error!(%path, %error, "could not delete the leader latch node; it stays until its session ends");
                    }
                    siblings.claim(latch, None);
                    drop(turn);
                });
            }
        }
    }
}

/// One attempt of [`delete_if_owned`].
enum Deleted {
    Yes,
    /// Absent, or another session's: nothing to do.
    NotOurs,
    /// The version changed between the read and the delete.
    Again,
}

/// Deletes `path` if it is the latch's node by `claim` on `session`, with a version-checked
/// delete, retrying retryable failures until it is done or the session is lost (which takes
/// an ephemeral node with it).
pub(super) async fn delete_if_owned(
    session: &Arc<Session>,
    path: &str,
    claim: Claim,
    siblings: &Siblings,
    latch: u64,
) -> crate::Result<()> {
    loop {
        let attempt = session
            .retry_until_lost(|zk| async move {
                let Some(stat) = zk.check_stat(path).await? else {
                    return Ok(Deleted::NotOurs);
                };
                if !session.owns(&stat) || !claim.recognises(&stat, siblings, latch) {
                    return Ok(Deleted::NotOurs);
                }
                match zk.delete(path, Some(stat.version)).await {
                    Ok(()) => Ok(Deleted::Yes),
                    Err(zookeeper_client::Error::NoNode) => Ok(Deleted::NotOurs),
                    // Written in between: read the version again.
                    Err(zookeeper_client::Error::BadVersion) => Ok(Deleted::Again),
                    Err(e) => Err(e),
                }
            })
            .await?;
        match attempt {
            Some(Deleted::Yes) => {
                tracing::debug!(%path, "leader latch node deleted");
                return Ok(());
            }
            Some(Deleted::Again) => continue,
            // Another's, gone, or gone with the session.
            Some(Deleted::NotOurs) | None => return Ok(()),
        }
    }
}

impl Inner {
    /// Marks the latch closed from the task (client closed, or start failed).
    pub(super) fn mark_closed(&self) {
        let mut lifecycle = self.lifecycle.locked();
        lifecycle.state = LatchState::Closed;
        lifecycle.task = None;
    }
}
