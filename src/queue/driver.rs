//! The driver: one task per queue handle that serves the lowest local waiter, until there are
//! none. Each step gathers the evidence [`decide`] asks for and acts on its decision.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use zookeeper_client::EventType;

use super::decision::{decide, only_a_listing_proves, Decision, OwnNode, Presence};
use super::feed::{self, Feed};
use super::view::{Incarnation, Listing, LockMode, QueueNode, QueueView};
use super::{
    confirmed_interruptions, Denied, Grant, OwnWatch, QueueState, SequentialQueue, WaiterKey,
};
use crate::connection::{Backoff, Session};
use crate::error::{Error, Result};
use crate::path::join;
use crate::sync::Locked;

/// What the driver knows of the node of the waiter it serves, beyond the view.
enum OwnPresence {
    /// No watch on it.
    Unarmed,
    /// A watch on it, set while it existed; not fired when last looked at.
    Armed(Box<OwnWatch>),
    /// The watch saw it deleted.
    Deleted,
}

/// The waiter the driver serves, and the watch on its node.
struct Serving {
    key: WaiterKey,
    own: OwnPresence,
}

impl Serving {
    fn new(key: WaiterKey) -> Self {
        Self {
            key,
            own: OwnPresence::Unarmed,
        }
    }

    /// Whether the node is there, as the watch on it tells now. Call it after reading the
    /// view: a watch that has not fired by then covers every fact the view holds (see the
    /// [queue's docs](super#no-grant-without-proof)).
    fn presence(&mut self) -> Presence {
        let fired = match &mut self.own {
            OwnPresence::Unarmed => return Presence::Unproven,
            OwnPresence::Deleted => return Presence::Deleted,
            OwnPresence::Armed(watch) => match watch.event.as_mut().now_or_never() {
                None => return Presence::Proven,
                Some(event) => event.event_type,
            },
        };
        self.own_watch_fired(fired)
    }

    /// Records that the watch fired with `event`.
    fn own_watch_fired(&mut self, event: EventType) -> Presence {
        if event == EventType::NodeDeleted {
            self.own = OwnPresence::Deleted;
            Presence::Deleted
        } else {
            // A data change (a revocation request, say) or a session event: the node may well
            // be there, but the watch is spent.
            self.own = OwnPresence::Unarmed;
            Presence::Unproven
        }
    }

    /// Resolves when the watch on the node fires (never, if there is none), and records it.
    async fn own_watch_event(&mut self) {
        let event = match &mut self.own {
            OwnPresence::Armed(watch) => (&mut watch.event).await.event_type,
            _ => std::future::pending().await,
        };
        self.own_watch_fired(event);
    }

    /// Takes in the answer to [`OwnWatch::arm`].
    fn armed(
        &mut self,
        answer: std::result::Result<Option<OwnWatch>, zookeeper_client::Error>,
    ) -> Result<()> {
        self.own = match answer? {
            Some(watch) => OwnPresence::Armed(Box::new(watch)),
            None => OwnPresence::Deleted,
        };
        Ok(())
    }

    fn is_unarmed(&self) -> bool {
        matches!(self.own, OwnPresence::Unarmed)
    }

    fn is_deleted(&self) -> bool {
        matches!(self.own, OwnPresence::Deleted)
    }

    fn take_watch(&mut self) -> Option<Box<OwnWatch>> {
        match std::mem::replace(&mut self.own, OwnPresence::Unarmed) {
            OwnPresence::Armed(watch) => Some(watch),
            _ => None,
        }
    }
}

/// The waiter being served, as one step sees it.
struct Step<'a> {
    session: &'a Arc<Session>,
    zk: &'a zookeeper_client::Client,
    node: QueueNode,
    /// Its node's full path.
    path: String,
}

impl SequentialQueue {
    /// Starts the driver if it is not running; wakes it either way.
    pub(super) fn ensure_driver(self: &Arc<Self>, state: &mut QueueState) {
        if !state.driver_running {
            state.driver_running = true;
            let queue = self.clone();
            self.client.spawn(async move { queue.drive().await });
        }
        self.wake_driver.notify_one();
    }

    /// Serves the lowest local waiter until there are none.
    async fn drive(self: Arc<Self>) {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let mut serving: Option<Serving> = None;
        let mut feed = Feed::Off;
        loop {
            let Some((key, session)) = self.lowest_waiter(feed.is_off()) else {
                if feed.is_off() {
                    return;
                }
                self.linger(&mut feed).await;
                continue;
            };
            // Serving another waiter drops the watch on the last one's node (a cancelled
            // waiter, or one that a lower waiter overtook).
            let serving = match &mut serving {
                Some(s) if s.key == key => s,
                slot => slot.insert(Serving::new(key)),
            };
            // A step keeps the session's handle while it waits: a lost session ends it, and
            // the next look at the waiters tells that session's waiters to join again.
            let served = session
                .unless_lost(self.serve(&session, serving, &mut feed))
                .await;
            match served.unwrap_or(Ok(())) {
                Ok(()) => backoff.reset(),
                Err(e) if e.is_retryable() => {
                    tracing::debug!(path = %self.path, error = %e, "queue driver backing off");
                    self.end_feed(&mut feed, "a failed request");
                    // Always a pause, whatever the client's state says: a failure while it
                    // still reads as connected (a read-only server, throttling, a drop not
                    // yet noticed) must not make this loop spin.
                    tokio::select! {
                        _ = backoff.sleep() => {}
                        _ = session.lost() => {}
                    }
                }
                Err(e) => self.state.locked().deny(key, Denied::Failed(e)),
            }
        }
    }

    /// The lowest waiter and its session, once the waiters of lost sessions are told to join
    /// again; `None` when there is none (and the driver marked stopped, if `may_stop`).
    fn lowest_waiter(&self, may_stop: bool) -> Option<(WaiterKey, Arc<Session>)> {
        let mut state = self.state.locked();
        loop {
            let Some((key, waiter)) = state.waiters.first_key_value() else {
                if may_stop {
                    state.driver_running = false;
                }
                return None;
            };
            if waiter.session.is_lost() {
                let key = *key;
                state.deny(key, Denied::NodeGone(Error::SessionExpired));
                continue;
            }
            return Some((*key, waiter.session.clone()));
        }
    }

    /// Keeps the feed, with no waiter to serve, for [`feed::LINGER`] or until a waiter comes,
    /// applying its events meanwhile (they pile up otherwise). Ends it at the linger's end.
    async fn linger(&self, feed: &mut Feed) {
        let until = tokio::time::Instant::now() + feed::LINGER;
        loop {
            let event = tokio::select! {
                _ = self.wake_driver.notified() => return,
                _ = tokio::time::sleep_until(until) => {
                    self.end_feed(feed, "no waiter for the linger time");
                    return;
                }
                event = feed.next_event() => event,
            };
            let session = self.client.session();
            let mut state = self.state.locked();
            feed.take(event, &session, &mut state, self.names, &self.path);
            if feed.is_off() {
                return;
            }
        }
    }

    /// One decision for the waiter `serving` serves, and the action it calls for.
    async fn serve(
        &self,
        session: &Arc<Session>,
        serving: &mut Serving,
        feed: &mut Feed,
    ) -> Result<()> {
        let zk = session.zookeeper()?;
        let released = self.local_holds.released();
        tokio::pin!(released);
        released.as_mut().enable();
        let (decision, node, on_feed, depth) = {
            let mut guard = self.state.locked();
            let state = &mut *guard;
            // Every event received so far, in the same lock hold as the decision (see the
            // feed's docs).
            feed.drain(session, state, self.names, &self.path);
            let proven_by_release = state.release_proof.take() == Some(serving.key);
            let Some(waiter) = state.waiters.get_mut(&serving.key) else {
                return Ok(());
            };
            // The feed's view decides when it covers the waiter's node: the waiter's create
            // was answered, so the view has seen the node (in the base listing, or as an
            // event before that answer), and its deletion if it came since.
            let fed = feed.exact_view().filter(|(view, incarnation)| {
                waiter.incarnation.is_none_or(|i| i == *incarnation)
                    && view.state_of(*incarnation, &waiter.node).is_some()
            });
            if let Some((_, incarnation)) = fed {
                waiter.incarnation = Some(incarnation);
            }
            let waiter = &*waiter;
            // A watch that saw the node deleted wins over a proof of an earlier moment.
            // On the feed's view too, our node's presence is proven by the watch on it, set
            // while the waiter waits: the view alone would prove it only as long as no one
            // else changes the recursive watch's mode (another watch of this client on the
            // lock path itself, before ZooKeeper 3.9: ZOOKEEPER-4466), and a gap in its events
            // must never grant a deleted node.
            let presence = match serving.presence() {
                Presence::Unproven if proven_by_release => Presence::Proven,
                presence => presence,
            };
            let own = OwnNode {
                node: &waiter.node,
                incarnation: waiter.incarnation,
                presence,
                downgrades: self.names.has_shared(),
            };
            let other_hold = self.local_holds.conflicting_with(&waiter.node);
            let view = fed.map_or(&state.view, |(view, _)| view);
            let decision = decide(view, &own, other_hold, None);
            // Only a wait asks how deep the waiter is (whether to use a feed).
            let depth = match decision {
                Decision::WaitOn { .. } => view.live_before(&waiter.node),
                _ => 0,
            };
            (decision, waiter.node.clone(), fed.is_some(), depth)
        };
        let step = Step {
            session,
            zk: &zk,
            path: join(&self.path, &node.name),
            node,
        };
        tracing::trace!(node = %step.node.name, ?decision, "queue decision");
        match decision {
            Decision::Grant { incarnation } => {
                let Some(interruptions) = confirmed_interruptions(session) else {
                    return Err(Error::ConnectionLoss);
                };
                // A conflicting hold of the client registered since the decision (through the
                // other half of a read/write lock): the next decision waits for it.
                let Some(local_hold) = self.local_holds.try_register(&step.node) else {
                    return Ok(());
                };
                let grant = Grant {
                    interruptions_at_grant: interruptions,
                    incarnation,
                    own_watch: serving.take_watch(),
                    local_hold,
                    sent_ahead: None,
                };
                self.state.locked().hand_over(serving.key, grant);
                Ok(())
            }
            Decision::Requeue(why) => {
                tracing::debug!(node = %step.path, ?why, "a waiting node is gone; it joins again");
                self.state.locked().deny_gone(serving.key, &self.path);
                Ok(())
            }
            Decision::List => self.list(&step).await,
            Decision::ConfirmByListing => self.grant_by_listing(&step, serving).await,
            // A reader's presence is proven by a listing instead, which proves the grants of
            // the local readers behind it too, in the same round trip.
            Decision::ProvePresence if step.node.mode == LockMode::Shared => {
                self.grant_by_listing(&step, serving).await
            }
            Decision::ProvePresence => serving.armed(OwnWatch::arm(&zk, &step.path).await),
            Decision::WaitOn {
                predecessor,
                incarnation,
            } => {
                let local = self.is_local(&step, &predecessor);
                if on_feed && !local && depth <= feed::MAX_DEPTH {
                    if serving.is_unarmed() {
                        // Off the handoff's path: the waiter is waiting anyway.
                        return serving.armed(OwnWatch::arm(&zk, &step.path).await);
                    }
                    return self.wait_fed(&step, serving, feed).await;
                }
                if feed.is_off() && !local && self.may_feed(depth) {
                    *feed = self.start_feed(&step).await?;
                    return Ok(());
                }
                // A wait that does not read the feed: its events would pile up meanwhile.
                self.end_feed(feed, "a wait on something else");
                self.wait_on(&step, serving, incarnation, predecessor, false)
                    .await
            }
            Decision::AwaitLocalHold => {
                self.end_feed(feed, "a wait on a local hold");
                tracing::debug!(node = %step.path, "first in the queue, but another hold of this client on the lock is still in use");
                tokio::select! {
                    _ = released => {}
                    _ = self.wake_driver.notified() => {}
                    _ = session.lost() => {}
                    _ = serving.own_watch_event() => {}
                }
                Ok(())
            }
        }
    }

    /// Ends the feed, if it is on, and says so to the joins (see `QueueState::fed_generation`).
    fn end_feed(&self, feed: &mut Feed, why: &str) {
        if !feed.is_off() {
            feed.end(why);
            self.state.locked().fed_generation = None;
        }
    }

    /// True if `predecessor` is a node this handle holds on the waiter's session.
    fn is_local(&self, step: &Step<'_>, predecessor: &QueueNode) -> bool {
        self.state.locked().holds.get(&predecessor.name) == Some(&step.session.generation())
    }

    /// True if the driver should start a feed for a waiter `depth` nodes deep: the queue
    /// allows one, the server has `addWatch`, and the depth is one where the feed saves a read
    /// for less than its events cost (see [`feed::MIN_DEPTH`] and [`feed::MAX_DEPTH`]).
    fn may_feed(&self, depth: usize) -> bool {
        self.feeds_view()
            && !self.client.lacks_add_watch()
            && (feed::MIN_DEPTH..=feed::MAX_DEPTH).contains(&depth)
    }

    /// Sets a persistent recursive watch on the parent and lists it right behind, in one round
    /// trip; takes the listing in (placing the waiters it covers, as [`list`](Self::list)
    /// does) and returns the feed, or [`Feed::Off`] if the parent is gone or the server has no
    /// `addWatch`.
    async fn start_feed(&self, step: &Step<'_>) -> Result<Feed> {
        let generation = step.session.generation();
        // Before the watch is set: a drop from here on moves it, and ends the feed.
        let interruptions = step.session.interruption_count();
        let ticket = self.state.locked().next_ticket;
        let watch = step.zk.watch(
            &self.path,
            zookeeper_client::AddWatchMode::PersistentRecursive,
        );
        let listing = step.zk.get_children(&self.path);
        let watcher = match watch.await {
            Ok(watcher) => watcher,
            Err(zookeeper_client::Error::Unimplemented) => {
                tracing::info!(path = %self.path, "the server has no addWatch (before ZooKeeper 3.6): this client's lock waiters watch their predecessors");
                self.client.note_lacks_add_watch();
                return Ok(Feed::Off);
            }
            Err(e) => return Err(e.into()),
        };
        let listing = self.listing_of(listing.await)?;
        let mut guard = self.state.locked();
        let state = &mut *guard;
        state.place_waiters(listing.as_ref(), generation, ticket, &self.path);
        let Some(listing) = listing else {
            return Ok(Feed::Off);
        };
        tracing::debug!(path = %self.path, "the parent's feed starts");
        let mut feed = Feed::on(step.session, interruptions, &listing, watcher);
        // The events that came before the listing's answer: facts it already holds.
        feed.drain(step.session, state, self.names, &self.path);
        Ok(feed)
    }

    /// Waits for the feed's next event (or anything else that may change the decision) and
    /// applies it: the next step decides on the view it updated.
    async fn wait_fed(
        &self,
        step: &Step<'_>,
        serving: &mut Serving,
        feed: &mut Feed,
    ) -> Result<()> {
        tracing::trace!(node = %step.node.name, "waiting on the parent's feed");
        let event = tokio::select! {
            biased;
            event = feed.next_event() => event,
            _ = step.session.lost() => return Ok(()),
            _ = serving.own_watch_event() => return Ok(()),
            _ = self.wake_driver.notified() => return Ok(()),
        };
        let mut state = self.state.locked();
        feed.take(event, step.session, &mut state, self.names, &self.path);
        Ok(())
    }

    /// Lists the parent on the waiter's session, and places every waiter of that session the
    /// listing covers.
    async fn list(&self, step: &Step<'_>) -> Result<()> {
        let (ticket, listing) = self.fetch_listing(step).await?;
        self.state.locked().place_waiters(
            listing.as_ref(),
            step.session.generation(),
            ticket,
            &self.path,
        );
        Ok(())
    }

    /// Lists the parent on the waiter's session: the ticket taken before the request (see
    /// `place_waiters`), and the listing, or `None` when the parent is gone.
    async fn fetch_listing(&self, step: &Step<'_>) -> Result<(u64, Option<Listing>)> {
        let ticket = self.state.locked().next_ticket;
        let listing = self.listing_of(step.zk.get_children(&self.path).await)?;
        Ok((ticket, listing))
    }

    /// A listing's answer as the queue sees it: `None` when the parent is gone.
    fn listing_of(
        &self,
        answer: std::result::Result<(Vec<String>, zookeeper_client::Stat), zookeeper_client::Error>,
    ) -> Result<Option<Listing>> {
        match answer {
            Ok((children, parent)) => Ok(Some(Listing::new(children, &parent, self.names))),
            Err(zookeeper_client::Error::NoNode) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists the parent on the waiter's session and decides on that listing alone (see
    /// [`Presence::Listed`]): the waiter served is granted if the listing shows it with nothing
    /// before it that it must wait for, and so is every other shared waiter of that session the
    /// listing covers and proves. If a node the shared view does not know of (a downgrade's
    /// read node) is before the waiter served, it waits on that node.
    async fn grant_by_listing(&self, step: &Step<'_>, serving: &mut Serving) -> Result<()> {
        match self.decide_on_listing(step, serving).await? {
            Some((incarnation, predecessor)) => {
                self.wait_on(step, serving, incarnation, predecessor, true)
                    .await
            }
            None => Ok(()),
        }
    }

    /// The grants of [`grant_by_listing`](Self::grant_by_listing), without its wait: the
    /// incarnation and the predecessor the waiter served must wait on, if the listing shows one
    /// before it.
    async fn decide_on_listing(
        &self,
        step: &Step<'_>,
        serving: &mut Serving,
    ) -> Result<Option<(Incarnation, QueueNode)>> {
        let generation = step.session.generation();
        // The ticket before the listing is sent, as in `fetch_listing`.
        let ticket = self.state.locked().next_ticket;
        let listing = step.zk.get_children(&self.path);
        // Behind the listing, in the same round trip: the create the served waiter makes once
        // granted. Dropped unless this listing grants it.
        let mut sent_ahead = self.send_create_ahead(serving.key);
        let listing = self.listing_of(listing.await)?;
        let Some(interruptions) = confirmed_interruptions(step.session) else {
            return Err(Error::ConnectionLoss);
        };
        let wait = {
            let mut state = self.state.locked();
            state.place_waiters(listing.as_ref(), generation, ticket, &self.path);
            // Without a listing, every waiter it covers was told to join again.
            let Some(listing) = listing else {
                return Ok(None);
            };
            let snapshot = QueueView::of(&listing);
            let mut granted = Vec::new();
            let mut wait = None;
            for (key, waiter) in &state.waiters {
                let served = *key == serving.key;
                let covered = key.generation == generation && waiter.ticket < ticket;
                if !covered || !(served || waiter.node.mode == LockMode::Shared) {
                    continue;
                }
                let own = OwnNode {
                    node: &waiter.node,
                    incarnation: waiter.incarnation,
                    presence: Presence::Listed,
                    downgrades: self.names.has_shared(),
                };
                let other_hold = self.local_holds.conflicting_with(&waiter.node);
                match decide(&snapshot, &own, other_hold, None) {
                    Decision::Grant { incarnation } => {
                        if let Some(local_hold) = self.local_holds.try_register(&waiter.node) {
                            granted.push((*key, incarnation, local_hold));
                        }
                    }
                    Decision::WaitOn {
                        predecessor,
                        incarnation,
                    } if served => wait = Some((incarnation, predecessor)),
                    _ => {}
                }
            }
            for (key, incarnation, local_hold) in granted {
                let served = key == serving.key;
                let own_watch = served.then(|| serving.take_watch()).flatten();
                let sent_ahead = served.then(|| sent_ahead.take()).flatten();
                let grant = Grant {
                    interruptions_at_grant: interruptions,
                    incarnation,
                    own_watch,
                    local_hold,
                    sent_ahead,
                };
                if let Some(node) = state.hand_over(key, grant) {
                    tracing::trace!(node = %node.name, "granted on a listing");
                }
            }
            wait
        };
        Ok(wait)
    }

    /// Waits until `predecessor` goes, or something else changes the decision. `listed`: the
    /// predecessor was found in a listing alone (a downgrade's read node, which the shared view
    /// may not hold; see [`QueueView`]).
    async fn wait_on(
        &self,
        step: &Step<'_>,
        serving: &mut Serving,
        incarnation: Incarnation,
        predecessor: QueueNode,
        listed: bool,
    ) -> Result<()> {
        let generation = step.session.generation();
        if self.is_local(step, &predecessor) {
            // Ours, on this session: its release deletes it and reads our node behind the
            // delete, which proves the grant (see `delete_node`); its monitor marks it gone if
            // someone else deletes it. Either wakes the driver. No watch.
            tokio::select! {
                _ = self.wake_driver.notified() => {}
                _ = step.session.lost() => {}
                _ = serving.own_watch_event() => {}
            }
            return Ok(());
        }
        // Our own node is watched while we wait when the predecessor's deletion is then all
        // the grant needs: the watch proves our node there when it goes, and the grant costs
        // no round trip after the event. The read goes out together with the predecessor's.
        // When nodes before the predecessor are not known to be gone (we joined behind
        // several), the listing that must follow the event proves our node there as well, as
        // Curator's does: a watch would cost a request and an event (fired by our own delete)
        // for nothing.
        let needs_a_listing = listed || only_a_listing_proves(&step.node, self.names.has_shared());
        let deletion_decides = !needs_a_listing
            && self
                .state
                .locked()
                .view
                .live_conflicting_predecessor(&step.node, Some(&predecessor))
                .is_none();
        let arm =
            (serving.is_unarmed() && deletion_decides).then(|| OwnWatch::arm(step.zk, &step.path));
        // Watch only the predecessor, with a data watch (no dangling exists watch if it is
        // already gone).
        let pred_path = join(&self.path, &predecessor.name);
        tracing::trace!(node = %step.node.name, predecessor = %predecessor.name, "waiting for predecessor");
        let prewatch = {
            let mut state = self.state.locked();
            match state.prewatch.take() {
                Some(p)
                    if p.generation == generation
                        && p.incarnation == incarnation
                        && p.predecessor == predecessor =>
                {
                    Some(p.watch)
                }
                // Set on a node that turned out not to be the predecessor: dropping it costs
                // a RemoveWatches once its read is answered.
                _ => None,
            }
        };
        let watched = match prewatch {
            Some(watch) => watch
                .map(|joined| joined.unwrap_or(Err(zookeeper_client::Error::ConnectionLoss)))
                .left_future(),
            None => step.zk.get_and_watch_data(&pred_path).right_future(),
        };
        let watched = match arm {
            Some(arm) => {
                let (watched, armed) = futures::join!(watched, arm);
                serving.armed(armed)?;
                if serving.is_deleted() {
                    // Dropping the predecessor's watch costs a RemoveWatches; the node is to
                    // join again all the same.
                    return Ok(());
                }
                watched
            }
            None => watched.await,
        };
        let key = serving.key;
        let predecessor_gone = match watched {
            Ok((_, _, watcher)) => {
                let mut fired = std::pin::pin!(watcher.changed());
                loop {
                    tokio::select! {
                        biased;
                        event = &mut fired => {
                            tracing::trace!(predecessor = %predecessor.name, event = ?event.event_type, "predecessor watch fired");
                            break event.event_type == EventType::NodeDeleted;
                        }
                        _ = step.session.lost() => return Ok(()),
                        _ = serving.own_watch_event() => return Ok(()),
                        // A local release, a new lower waiter or a cancelled one may change
                        // the decision. Wakes that change nothing (a permit stored while the
                        // driver was busy, a release of a node after ours) keep the watch:
                        // dropping it would cost a RemoveWatches and a new read.
                        _ = self.wake_driver.notified() => {
                            if !self.still_waits_on(key, incarnation, &predecessor, listed) {
                                return Ok(());
                            }
                        }
                    }
                }
            }
            Err(zookeeper_client::Error::NoNode) => {
                tracing::trace!(predecessor = %predecessor.name, "predecessor already gone");
                true
            }
            Err(e) => return Err(e.into()),
        };
        if predecessor_gone {
            let stale = {
                let mut state = self.state.locked();
                state.view.mark_gone(incarnation, &predecessor);
                state
                    .view
                    .live_conflicting_predecessor(&step.node, None)
                    .is_some()
            };
            if stale {
                // Nodes before the one we watched went without a word to us (we watch only the
                // nearest); most likely they are all gone. One listing settles it, where
                // reading them one by one would cost a round trip each, and it proves our
                // node there too: grant on it alone. If it shows a node to wait for, the next
                // step decides on the view it refreshed.
                self.decide_on_listing(step, serving).await?;
            }
        }
        Ok(())
    }

    /// True if the decision for waiter `key` is still to wait on `predecessor`: the waiter is
    /// still the lowest, its node is live in the view, and that node is still its nearest
    /// live conflicting predecessor (or, for a `listed` one, the view knows of none nearer).
    fn still_waits_on(
        &self,
        key: WaiterKey,
        incarnation: Incarnation,
        predecessor: &QueueNode,
        listed: bool,
    ) -> bool {
        let state = self.state.locked();
        let Some((lowest, waiter)) = state.waiters.first_key_value() else {
            return false;
        };
        // The search for the nearest predecessor last: most wakes fail the cheaper checks.
        *lowest == key
            && state.view.state_of(incarnation, &waiter.node) == Some(super::view::NodeState::Live)
            && match state.view.live_conflicting_predecessor(&waiter.node, None) {
                Some(nearest) => nearest == *predecessor,
                None => listed,
            }
    }
}
