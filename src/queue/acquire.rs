//! Joining the queue: the create, the decisions that can be made at once, and the wait for
//! the driver's grant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::oneshot;
use zookeeper_client::{CreateMode, EventType};

use super::decision::{decide, Decision, OwnNode, Presence};
use super::held::{connected_again, Held};
use super::view::{Incarnation, Listing, LockMode, QueueNode, QueueView};
use super::{
    confirmed_interruptions, CreateAhead, DataDelivery, Denied, Grant, OwnWatch, PreWatch,
    SentAhead, SequentialQueue, WaiterKey,
};
use crate::connection::{Backoff, Client, Created, PendingStat, ProtectedNode, WithCreate};
use crate::error::{is_retryable_zk, Error, Result};
use crate::path::join;
use crate::sync::Locked;

/// An acquire's outcome, for a waiter that asked for no create ahead of its grant.
fn without_sent_ahead(acquired: Result<Option<(Held, Option<SentAhead>)>>) -> Result<Option<Held>> {
    acquired.map(|acquired| acquired.map(|(held, _)| held))
}

/// What a waiter asks of the queue besides its node.
#[derive(Default)]
struct JoinWith {
    /// Told once our first node exists (see `acquire_announcing`).
    announce: Option<oneshot::Sender<()>>,
    /// What to create as soon as granted (see `acquire_in`).
    create_ahead: Option<CreateAhead>,
}

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

/// How often a wait may start again after losing its node (or, for a semaphore, its internal
/// lock) while it waited: as the client's retry policy allows, as Curator bounds its retries of
/// a `NoNode`. The count starts at the first loss, not at the start of a wait that may have
/// lasted hours.
#[derive(Debug, Default)]
pub(crate) struct Requeues {
    count: u32,
    first_loss: Option<Instant>,
}

impl Requeues {
    /// Forgets the losses so far: the wait made progress since.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// After a loss (`error`) of the wait on `path`: pauses as the retry policy says, and
    /// `Ok(true)` to start again; `Ok(false)` for a single look ([`Wait::Once`]) or when the
    /// deadline passes first.
    ///
    /// # Errors
    ///
    /// `error` when the retry policy allows no more; [`Error::Closed`] once the client is
    /// closed.
    pub(crate) async fn pause(
        &mut self,
        client: &Client,
        path: &str,
        wait: Wait,
        error: Error,
    ) -> Result<bool> {
        if client.is_closed() {
            return Err(Error::Closed);
        }
        if matches!(wait, Wait::Once) {
            // One look, and what it needed was gone before it: not granted.
            return Ok(false);
        }
        let started = *self.first_loss.get_or_insert_with(Instant::now);
        let Some(pause) = client
            .retry_policy()
            .allow_retry(self.count, started.elapsed())
        else {
            tracing::warn!(%path, error = %error, losses = self.count, "lost again while waiting; the retry policy allows no more");
            return Err(error);
        };
        self.count += 1;
        tracing::debug!(%path, error = %error, ?pause, "lost while waiting; starting again");
        let pause = async {
            tokio::select! {
                _ = tokio::time::sleep(pause) => Ok(()),
                _ = client.closed() => Err(Error::Closed),
            }
        };
        match wait {
            Wait::Until(deadline) => match tokio::time::timeout_at(deadline, pause).await {
                Ok(paused) => paused.map(|()| true),
                Err(_) => Ok(false),
            },
            Wait::Forever | Wait::Once => pause.await.map(|()| true),
        }
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

/// Counts one plain create in `QueueState::creates_in_flight` while it lives.
struct CreateInFlight<'a>(&'a SequentialQueue);

impl Drop for CreateInFlight<'_> {
    fn drop(&mut self) {
        self.0.state.locked().creates_in_flight -= 1;
    }
}

type GrantReceiver = oneshot::Receiver<std::result::Result<Grant, Denied>>;

/// Where joining the queue left our node.
enum Joined {
    /// Granted at once, from the evidence that came with the create.
    Granted(PendingNode, Grant),
    /// Registered among the driver's waiters: its answer comes on the receiver.
    Waiting(PendingNode, GrantReceiver),
}

impl SequentialQueue {
    /// Joins the queue with `data` as the node's data and waits for the head of the queue, as
    /// `wait` says.
    ///
    /// `Ok(None)` when the wait ends without the lock, with the node deleted. When the node is
    /// lost while waiting (its session was lost, or someone deleted it), it joins again with a
    /// new node, within the same wait, as often as the client's retry policy allows; then it
    /// fails with [`Error::NodeDeleted`] or [`Error::SessionExpired`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await: a node created (or possibly created) by a dropped call is
    /// deleted in the background, and a grant that races with the drop is released.
    pub(crate) async fn acquire(self: &Arc<Self>, data: &[u8], wait: Wait) -> Result<Option<Held>> {
        let acquired =
            self.acquire_replacing(LockMode::Exclusive, data, wait, None, JoinWith::default());
        without_sent_ahead(acquired.await)
    }

    /// [`acquire`](Self::acquire) with a node of `mode` (for a queue with shared nodes), and,
    /// with `create_ahead`, the driver asked to send its create behind a listing that may grant
    /// the waiter (see [`CreateAhead`]): the hold, and that create when it went out with the
    /// grant (the caller makes the node otherwise).
    ///
    /// # Cancel safety
    ///
    /// As `acquire`; a node made ahead and not handed over is deleted in the background.
    pub(crate) async fn acquire_in(
        self: &Arc<Self>,
        mode: LockMode,
        data: &[u8],
        wait: Wait,
        create_ahead: Option<CreateAhead>,
    ) -> Result<Option<(Held, Option<SentAhead>)>> {
        let with = JoinWith {
            create_ahead,
            ..JoinWith::default()
        };
        self.acquire_replacing(mode, data, wait, None, with).await
    }

    /// [`acquire`](Self::acquire), telling `joined` once our first node exists (placed in the
    /// queue, whether granted or waiting), for recipes whose start reports that much.
    ///
    /// # Cancel safety
    ///
    /// As `acquire`.
    pub(crate) async fn acquire_announcing(
        self: &Arc<Self>,
        data: &[u8],
        wait: Wait,
        joined: oneshot::Sender<()>,
    ) -> Result<Option<Held>> {
        let with = JoinWith {
            announce: Some(joined),
            ..JoinWith::default()
        };
        let acquired = self.acquire_replacing(LockMode::Exclusive, data, wait, None, with);
        without_sent_ahead(acquired.await)
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
            self.acquire_replacing(
                LockMode::Exclusive,
                data,
                wait,
                Some(Box::new(replacing)),
                JoinWith::default(),
            )
            .map(without_sent_ahead),
        )
    }

    async fn acquire_replacing(
        self: &Arc<Self>,
        mode: LockMode,
        data: &[u8],
        wait: Wait,
        // Boxed, like the create below: thousands of waiting futures must stay small.
        mut replacing: Option<Box<Replacing>>,
        mut with: JoinWith,
    ) -> Result<Option<(Held, Option<SentAhead>)>> {
        let mut requeues = Requeues::default();
        loop {
            let once = matches!(wait, Wait::Once);
            let attempt = self.acquire_once(mode, data, once, replacing.take(), &mut with);
            let outcome = match wait {
                Wait::Until(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(outcome) => outcome,
                    Err(_) => return Ok(None),
                },
                Wait::Forever | Wait::Once => attempt.await,
            };
            let error = match outcome {
                Ok(held) => return Ok(Some(held)),
                Err(Denied::NotFirst) => return Ok(None),
                Err(Denied::Failed(e)) => return Err(e),
                Err(Denied::NodeGone(e)) => e,
            };
            // A node deleted as soon as it is made (a clean-up job gone wrong) must not turn
            // into an endless create/delete loop.
            if !requeues
                .pause(&self.client, &self.path, wait, error)
                .await?
            {
                return Ok(None);
            }
        }
    }

    /// One node's turn: join, wait if need be, and take the grant.
    async fn acquire_once(
        self: &Arc<Self>,
        mode: LockMode,
        data: &[u8],
        once: bool,
        replacing: Option<Box<Replacing>>,
        with: &mut JoinWith,
    ) -> std::result::Result<(Held, Option<SentAhead>), Denied> {
        let joined = self.join(mode, data, once, replacing, with).await?;
        let (mut pending, grant) = match joined {
            Joined::Granted(pending, grant) => (pending, grant),
            Joined::Waiting(mut pending, grant_rx) => {
                let grant = self.await_grant(&mut pending, grant_rx).await?;
                (pending, grant)
            }
        };
        pending.await_stat().await?;
        Ok(pending.into_held(grant))
    }

    /// Creates our node and decides what the evidence that came with the create allows: a
    /// grant at once, or a place among the driver's waiters.
    async fn join(
        self: &Arc<Self>,
        mode: LockMode,
        data: &[u8],
        once: bool,
        replacing: Option<Box<Replacing>>,
        with: &mut JoinWith,
    ) -> std::result::Result<Joined, Denied> {
        // Boxed, each path on its own: thousands of creates may be in flight at once, and
        // the transactional path's state is larger.
        let (created, snapshot_at_create) = match replacing {
            None => {
                // With other local waiters queued, a listing per new node would cost O(N)
                // reads of O(N) names; the driver's shared view serves them instead. Creates
                // still under way count as waiters to come: thousands of tasks starting at once
                // would otherwise each list a queue that grows under them before the first of
                // them has registered.
                let (list, _in_flight) = {
                    let mut state = self.state.locked();
                    // Nor when the driver's feed will show the node (if the create goes out on
                    // another session, the driver lists for it).
                    let fed = state
                        .fed_generation
                        .is_some_and(|fed| fed == self.client.session().generation());
                    let list =
                        once || (state.waiters.is_empty() && state.creates_in_flight == 0 && !fed);
                    state.creates_in_flight += 1;
                    (list, CreateInFlight(self))
                };
                let with = WithCreate {
                    list_parent: list,
                    replacing: None,
                    abandoned: Some(&self.background_deletes),
                };
                (
                    Box::pin(self.create_lock_node(mode, data, with)).await,
                    None,
                )
            }
            Some(replacing) => Box::pin(self.create_replacing(data, replacing)).await,
        };
        let Created {
            node,
            listing,
            pending_stat,
            ..
        } = created.map_err(Denied::Failed)?;
        let Some(own) = self.queue_node(&node) else {
            return Err(Denied::Failed(Error::ZooKeeper(
                zookeeper_client::Error::UnexpectedError(
                    "a sequential create returned no sequence".into(),
                ),
            )));
        };
        let session = node.session.clone();
        // From here on the node exists: every exit path must delete it or hand it over.
        let mut pending = PendingNode {
            queue: self.clone(),
            node: Some(node),
            key: None,
            incarnation: None,
            pending_stat,
            delivery: self.data_delivery(),
        };
        if let Some(joined) = with.announce.take() {
            let _ = joined.send(());
        }
        // The evidence that came with the create: a listing answered after it, or the queue as
        // it was at the moment of a transaction's create.
        let mut snapshot = listing
            .map(|l| Listing::new(l.children, &l.parent, self.names))
            .or(snapshot_at_create);
        if snapshot.is_none() && once {
            // A create recovered after a connection loss comes without its listing.
            let node = pending.node();
            let listed = self.list_now(node.session.clone(), node.path.clone());
            snapshot = Some(listed.await?);
        }
        let (grant_tx, grant_rx) = oneshot::channel();
        let granted_at_once = {
            let mut state = self.state.locked();
            let mut granted = None;
            if let Some(snapshot) = &snapshot {
                state.take_in(snapshot, &self.path);
                if !snapshot.contains(&own) {
                    // Taken after our create, and without our node: someone deleted it.
                    return Err(Denied::NodeGone(Error::NodeDeleted {
                        path: pending.node().path.clone(),
                    }));
                }
                pending.incarnation = Some(snapshot.incarnation);
                // The snapshot alone proves both that our node was there and that nothing was
                // before it, at one moment: the shared view may hold later facts that our
                // node's presence at that moment would not cover.
                let at_once = OwnNode {
                    node: &own,
                    incarnation: pending.incarnation,
                    presence: Presence::Listed,
                    downgrades: self.names.has_shared(),
                };
                let other_hold = self.local_holds.conflicting_with(&own);
                if let Decision::Grant { incarnation } =
                    decide(&QueueView::of(snapshot), &at_once, other_hold, None)
                {
                    // Registered only when the grant is made: a hold dropped unused would wake
                    // the drivers waiting on this client's holds for nothing.
                    granted = confirmed_interruptions(&session)
                        .and_then(|interruptions| {
                            Some((interruptions, self.local_holds.try_register(&own)?))
                        })
                        .map(|(interruptions, local_hold)| Grant {
                            interruptions_at_grant: interruptions,
                            incarnation,
                            own_watch: None,
                            local_hold,
                            sent_ahead: None,
                        });
                }
            }
            match granted {
                Some(grant) => Some(grant),
                // A single look, and it was not our turn: `pending` deletes the node.
                None if once => return Err(Denied::NotFirst),
                None => {
                    let key = state.register(
                        own,
                        session,
                        pending.incarnation,
                        grant_tx,
                        with.create_ahead.clone(),
                    );
                    pending.key = Some(key);
                    self.ensure_driver(&mut state);
                    None
                }
            }
        };
        Ok(match granted_at_once {
            Some(grant) => Joined::Granted(pending, grant),
            None => Joined::Waiting(pending, grant_rx),
        })
    }

    /// Lists the parent on `session`, where our node `node_path` was created: a listing
    /// answered after its create.
    async fn list_now(
        &self,
        session: Arc<crate::connection::Session>,
        node_path: String,
    ) -> std::result::Result<Listing, Denied> {
        let zk = session.zookeeper().map_err(Denied::NodeGone)?;
        match zk.get_children(&self.path).await {
            Ok((children, parent)) => Ok(Listing::new(children, &parent, self.names)),
            Err(zookeeper_client::Error::NoNode) => {
                Err(Denied::NodeGone(Error::NodeDeleted { path: node_path }))
            }
            Err(e) => Err(Denied::Failed(e.into())),
        }
    }

    /// Waits for the driver's grant. With a data listener (a revocable lock), our node's data
    /// is watched meanwhile, so that a revocation request reaches the listener while we wait,
    /// as in Curator.
    async fn await_grant(
        &self,
        pending: &mut PendingNode,
        mut grant_rx: GrantReceiver,
    ) -> std::result::Result<Grant, Denied> {
        let outcome = if pending.delivery.listener.is_none() {
            grant_rx.await
        } else {
            let session = pending.node().session.clone();
            // Boxed: only revocable waiters pay for the watch's state. The watch keeps the
            // session's handle: a lost session ends it, and the driver answers the waiter.
            let watching = session
                .unless_lost(Box::pin(
                    self.await_grant_watching_data(pending, &mut grant_rx),
                ))
                .await;
            let watching = match watching {
                Some(watching) => watching,
                None => Some(grant_rx.await),
            };
            match watching {
                Some(outcome) => outcome,
                // The watch saw our node deleted; `pending` withdraws the waiter.
                None => {
                    return Err(Denied::NodeGone(Error::NodeDeleted {
                        path: pending.node().path.clone(),
                    }))
                }
            }
        };
        // The driver took the waiter out of the map when it answered.
        pending.key = None;
        outcome.unwrap_or(Err(Denied::Failed(Error::Closed)))
    }

    /// [`await_grant`](Self::await_grant) while watching our node's data; `None` if the watch
    /// saw the node deleted first.
    async fn await_grant_watching_data(
        &self,
        pending: &mut PendingNode,
        grant_rx: &mut GrantReceiver,
    ) -> Option<std::result::Result<std::result::Result<Grant, Denied>, oneshot::error::RecvError>>
    {
        let node = pending.node();
        let (path, czxid) = (node.path.clone(), node.stat.czxid as u64);
        let Ok(zk) = node.session.zookeeper() else {
            return Some(grant_rx.await);
        };
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        loop {
            let armed = tokio::select! {
                biased;
                outcome = &mut *grant_rx => return Some(outcome),
                armed = OwnWatch::arm(&zk, &path) => armed,
            };
            match armed {
                Ok(Some(watch)) => {
                    backoff.reset();
                    let OwnWatch { data, stat, event } = watch;
                    pending.delivery.offer(&path, czxid, &stat, &data);
                    let event = tokio::select! {
                        biased;
                        outcome = &mut *grant_rx => return Some(outcome),
                        event = event => event,
                    };
                    match event.event_type {
                        EventType::NodeDeleted => return None,
                        // The session ended: the driver tells the waiter to join again.
                        EventType::Session => return Some(grant_rx.await),
                        // A data change: read it, and watch again.
                        _ => {}
                    }
                }
                Ok(None) => return None,
                Err(e) if is_retryable_zk(&e) => {
                    let pause = async {
                        connected_again(&zk).await;
                        backoff.sleep().await;
                    };
                    tokio::select! {
                        biased;
                        outcome = &mut *grant_rx => return Some(outcome),
                        _ = pause => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(%path, error = %e, "cannot watch a waiting node's data; revocation requests reach it once granted");
                    return Some(grant_rx.await);
                }
            }
        }
    }

    /// Creates one of this queue's nodes of `mode` (`_c_<uuid>-lock-<seq>`,
    /// ephemeral-sequential, with the queue's ACLs) carrying `data`, with what `with` asks to
    /// go with the create.
    async fn create_lock_node(
        &self,
        mode: LockMode,
        data: &[u8],
        with: WithCreate<'_>,
    ) -> Result<Created> {
        let Some(name) = self.names.name(mode) else {
            return Err(Error::IllegalState("this queue has no shared nodes"));
        };
        self.client
            .create_protected_then_list(
                &self.path,
                name,
                data,
                CreateMode::EphemeralSequential,
                &self.acls,
                with,
            )
            .await
    }

    /// Creates a node for [`acquire_once`](Self::acquire_once) that replaces `replacing`'s
    /// node (see [`release_and_acquire`](Self::release_and_acquire)): the outcome of the
    /// create, and the queue as it was at the moment of the create, when the listing sent just
    /// before it shows that.
    async fn create_replacing(
        self: &Arc<Self>,
        data: &[u8],
        replacing: Box<Replacing>,
    ) -> (Result<Created>, Option<Listing>) {
        let old = replacing.held.queue_node();
        let zk_of_replaced = replacing.held.node().session.zookeeper().ok();
        let listing_before = match (&zk_of_replaced, &old) {
            (Some(zk), Some(old)) => Some(self.list_before_replacing(
                zk,
                replacing.held.node().session.generation(),
                old.clone(),
            )),
            _ => None,
        };
        let with = WithCreate {
            list_parent: false,
            replacing: Some(replacing.held.node()),
            abandoned: Some(&self.background_deletes),
        };
        let create = self.create_lock_node(LockMode::Exclusive, data, with);
        let (created, listing_before) = match listing_before {
            Some(listing) => futures::join!(create, listing),
            None => (create.await, None),
        };
        let Replacing { held, outcome } = *replacing;
        let mut snapshot = None;
        match &created {
            Ok(created) if created.replaced => {
                let old_incarnation = held.incarnation();
                held.deleted_by_transaction();
                let _ = outcome.send(None);
                // ZooKeeper numbers children by counting creates: if our node's sequence
                // follows the last one listed, nothing was created between the listing and
                // the transaction, and the transaction deleted the old node as it created
                // ours (so the parent never went empty). The listing, with the old node
                // swapped for ours, is the queue at the moment of our create.
                if let (Some(listing), Some(old), Some(new)) =
                    (listing_before, old, self.queue_node(&created.node))
                {
                    let follows =
                        listing.last_sequence().map(|last| last + 1) == Some(new.sequence);
                    if follows && listing.incarnation == old_incarnation && listing.contains(&old) {
                        snapshot = Some(listing.after_replacement(&old, new));
                    }
                }
            }
            // If nobody awaits the release any more, the `Held` comes back and is dropped
            // here, which deletes the node in the background.
            _ => drop(outcome.send(Some(held))),
        }
        (created, snapshot)
    }

    /// For a node about to replace `old` in one transaction: a listing sent on `old`'s session
    /// *before* the transaction, so it is answered at once instead of behind the transaction's
    /// commit. The future takes it into the view, pre-sets the watch the driver will most
    /// likely need (on the newest live node listed other than `old`, which will be the new
    /// node's predecessor unless someone creates a node meanwhile), and resolves to the
    /// listing.
    ///
    /// The watch is set as soon as the listing is in, while the transaction is still being
    /// written, rather than after a listing behind it: when a successor's release follows at
    /// once, as a leader selector's may, the watch is in place in time.
    fn list_before_replacing<'a>(
        self: &'a Arc<Self>,
        zk: &'a zookeeper_client::Client,
        generation: u64,
        old: QueueNode,
    ) -> impl std::future::Future<Output = Option<Listing>> + Send + 'a {
        let listing = zk.get_children(&self.path);
        async move {
            let (children, parent) = listing.await.ok()?;
            let listing = Listing::new(children, &parent, self.names);
            let mut state = self.state.locked();
            state.take_in(&listing, &self.path);
            let current = state.view.incarnation() == Some(listing.incarnation);
            if let Some(predecessor) = current
                .then(|| state.view.newest_live_except(&old))
                .flatten()
            {
                let path = join(&self.path, &predecessor.name);
                let zk = zk.clone();
                let watch = self
                    .client
                    .spawn(async move { zk.get_and_watch_data(&path).await });
                state.prewatch = Some(PreWatch {
                    generation,
                    incarnation: listing.incarnation,
                    predecessor,
                    watch,
                });
            }
            Some(listing)
        }
    }
}

/// Our node between its creation and its hand-over as [`Held`]: dropping it (a cancelled or
/// failed acquire) withdraws the waiter and deletes the node.
struct PendingNode {
    queue: Arc<SequentialQueue>,
    node: Option<ProtectedNode>,
    key: Option<WaiterKey>,
    /// The parent incarnation the node was seen in, when known.
    incarnation: Option<Incarnation>,
    /// The read of the node's stat, when the create's answer lacked it.
    pending_stat: Option<PendingStat>,
    /// The data versions already handed to the data listener while waiting.
    delivery: DataDelivery,
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

    /// The node as granted, and the create that went out with the grant, if one did; its
    /// stat must be known (see `await_stat`).
    fn into_held(mut self, mut grant: Grant) -> (Held, Option<SentAhead>) {
        let node = self.node.take().expect("handed over once");
        let delivery = std::mem::take(&mut self.delivery);
        let sent_ahead = grant.sent_ahead.take();
        let held = Held::start(self.queue.clone(), node, grant, delivery);
        (held, sent_ahead)
    }
}

impl Drop for PendingNode {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.queue.state.locked().waiters.remove(&key);
            // The driver may be watching on this waiter's behalf.
            self.queue.wake_driver.notify_one();
        }
        if let Some(node) = self.node.take() {
            self.queue.spawn_delete(
                node,
                self.incarnation,
                "deleting the node of an abandoned acquire failed; a guaranteed delete continues",
                None,
            );
        }
    }
}
