//! The parent's feed: a persistent recursive watch on the queue's parent (ZooKeeper 3.6+'s
//! `addWatch`), whose events keep the driver's view exact. A waiter is then granted on the
//! event that removes the last node before it, with no read after the event.
//!
//! # Why the problem exists
//!
//! A waiter that joined behind several nodes watches only its predecessor. When the
//! predecessor goes, the nodes before it may have gone without a word to the waiter. So it must
//! list once more before its grant is proven (Curator does the same). That read is one round
//! trip on every contended handoff, and it waits in the server's pipeline behind other
//! sessions' writes.
//!
//! # Why the feed proves a grant
//!
//! The feed starts with `addWatch` and a listing sent right behind it. From the watch's answer
//! on, the server sends this session an event for every creation and deletion of a child, and
//! it sends replies and events in the order of the changes they report.
//!
//! * **The feed's view is its own.** It is built from the base listing and the watch's events
//!   alone, never from the handle's shared view, whose facts come from other requests and
//!   other moments. The events that came between the watch's answer and the listing's are
//!   applied on top of the listing: a node created and deleted in that time is seen created,
//!   then deleted, and one that the listing shows is already known.
//! * **Events are applied in order, all that have arrived, before each decision.**
//!   zookeeper-client puts an event in the watcher's channel before it reads the next packet.
//!   The driver drains the channel, and decides on the feed's view in the same lock hold. So
//!   the view is the server's state at one moment: the last packet the session has read.
//! * **It proves that nothing is before our node** (rules 1 and 2 of
//!   [`decide`](super::decision::decide)): if that state shows no node before ours, none was
//!   there at that moment, and no sequential node can be put before ours later.
//! * **Our node's presence (rule 3) is proven by a data watch on it**, set while the waiter
//!   waits (off the handoff's path) and read in the same lock hold: ZooKeeper sends one
//!   notification per change to a session, and zookeeper-client hands it to every watcher it
//!   concerns at once. The feed's view shows our deletion too, but it is not trusted alone for
//!   it: before ZooKeeper 3.9 the server keeps one watch mode per path and session
//!   (ZOOKEEPER-4466), so another watch this client sets on the lock path itself changes the
//!   recursive watch's mode, and its events could stop or skip. A gap may then delay a grant,
//!   never make one for a deleted node.
//! * **Sequential names are never reused in one incarnation.** A deletion is final, and it is
//!   kept even for a node the view never saw ([`QueueView::note_deleted`]).
//!
//! # When the feed ends
//!
//! The proof holds only while no event can have been missed. The feed ends, and the driver
//! goes back to one watch per predecessor, on any of these:
//!
//! * any session event (a disconnection loses the persistent watch's events, ZOOKEEPER-4698,
//!   and zookeeper-client does not set persistent watches again on a new connection);
//! * the session's interruption count moving, or a failed request;
//! * a wait that does not read the feed (on a local hold), during which its events would pile
//!   up;
//! * an event of the parent itself (deleted, or created again: a new incarnation);
//! * the driver serving a waiter of another session;
//! * [`LINGER`] with no waiter (the wait starts again when a waiter comes and goes), which
//!   stops the watch (zookeeper-client removes it on drop).
//!
//! # What it costs
//!
//! Two requests (`addWatch` and its listing, one round trip), once per busy period of a
//! handle, and one read (the watch on our node) per waiter, sent while it waits. No read after
//! a handoff's event, and no listing with a create. Instead, every child's creation and
//! deletion is one packet to every session that has a feed on the parent. With many sessions
//! on one lock, waiting deep in its queue, that fan-out outgrows the one listing a handoff
//! would cost. So a feed is started for a waiter at least [`MIN_DEPTH`] and at most
//! [`MAX_DEPTH`] nodes deep, and ends when the waiter it serves is deeper.

use std::time::Duration;

use futures::FutureExt;
use zookeeper_client::{EventType, PersistentWatcher, WatchedEvent};

use super::view::{Incarnation, Listing, NodeNames, QueueView};
use super::QueueState;
use crate::connection::Session;

/// How long the driver keeps the feed after its last waiter was served: a handle that acquires
/// again within it (a loop of acquire and release) pays no new `addWatch`.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// The deepest place in the queue (live nodes before the waiter) at which a feed is started or
/// used: beyond it, the queue's sessions are many, and the events every change sends each of
/// them cost the server more than the listing after a handoff's event (with 32 sessions on one
/// lock, the feed made the handoffs 0.7 × Curator's rate; with 8, 1.5 ×).
pub(super) const MAX_DEPTH: usize = 16;

/// The shallowest place at which a feed is started: a waiter right behind the holder is
/// granted on its predecessor's deletion with no read after it anyway (a watch on its own node
/// proves it there), so a feed would only add events.
pub(super) const MIN_DEPTH: usize = 2;

/// The driver's feed of the parent's events.
pub(super) enum Feed {
    /// No watch on the parent: the driver watches predecessors one by one.
    Off,
    /// A persistent recursive watch on the parent, its base listing taken into the view.
    On(FedView),
}

/// A feed that is on.
pub(super) struct FedView {
    /// The session generation the watch is set on.
    generation: u64,
    /// That session's interruption count before the watch was set.
    interruptions: u64,
    /// The parent incarnation the base listing showed.
    incarnation: Incarnation,
    watcher: PersistentWatcher,
    /// The base listing and every event applied since: the parent's state as of the last
    /// event applied.
    view: QueueView,
}

impl Feed {
    /// A feed on `session`, whose interruption count was `interruptions` before `watcher` was
    /// set, from its base `listing` (answered after the watch was set).
    pub(super) fn on(
        session: &Session,
        interruptions: u64,
        listing: &Listing,
        watcher: PersistentWatcher,
    ) -> Self {
        Feed::On(FedView {
            generation: session.generation(),
            interruptions,
            incarnation: listing.incarnation,
            watcher,
            view: QueueView::of(listing),
        })
    }

    pub(super) fn is_off(&self) -> bool {
        matches!(self, Feed::Off)
    }

    /// The feed's view, the parent's exact state as of its last event, if the feed is on: call
    /// it after [`drain`](Self::drain) for the session served (which ends a feed of another
    /// session, or one that may have missed events), in the same lock hold as the decision
    /// made on it.
    pub(super) fn exact_view(&self) -> Option<(&QueueView, Incarnation)> {
        match self {
            Feed::On(fed) => Some((&fed.view, fed.incarnation)),
            Feed::Off => None,
        }
    }

    /// Applies every event already received, in order; ends the feed if it is of
    /// another session than `session`, or when an event says it may have missed one. Records
    /// in `state` which session's creates the feed covers (see
    /// [`QueueState::fed_generation`]).
    pub(super) fn drain(
        &mut self,
        session: &Session,
        state: &mut QueueState,
        names: NodeNames,
        path: &str,
    ) {
        self.drain_events(session, &mut state.view, names, path);
        state.fed_generation = self.generation();
    }

    fn drain_events(
        &mut self,
        session: &Session,
        shared: &mut QueueView,
        names: NodeNames,
        path: &str,
    ) {
        let Feed::On(fed) = self else {
            return;
        };
        if fed.generation != session.generation() {
            self.end("the driver serves another session");
            return;
        }
        if fed.interruptions != session.interruption_count() {
            self.end("the session was interrupted");
            return;
        }
        while let Some(event) = fed.watcher.changed().now_or_never() {
            if !fed.apply(event, shared, names, path) {
                self.end("an event of the session or of the parent");
                return;
            }
        }
    }

    /// The generation of the session the feed is on, if it is on.
    pub(super) fn generation(&self) -> Option<u64> {
        match self {
            Feed::On(fed) => Some(fed.generation),
            Feed::Off => None,
        }
    }

    /// Resolves to the next event (never, when the feed is off). Cancel safe: an event is
    /// taken from the channel only when this resolves.
    pub(super) async fn next_event(&mut self) -> WatchedEvent {
        match self {
            Feed::On(fed) => fed.watcher.changed().await,
            Feed::Off => std::future::pending().await,
        }
    }

    /// Applies `event`, then every event already received after it (see
    /// [`drain`](Self::drain)).
    pub(super) fn take(
        &mut self,
        event: WatchedEvent,
        session: &Session,
        state: &mut QueueState,
        names: NodeNames,
        path: &str,
    ) {
        if let Feed::On(fed) = self {
            if !fed.apply(event, &mut state.view, names, path) {
                self.end("an event of the session or of the parent");
            }
        }
        self.drain(session, state, names, path);
    }

    /// Ends the feed: dropping the watcher removes the watch.
    pub(super) fn end(&mut self, why: &str) {
        if !self.is_off() {
            tracing::debug!(why, "the parent's feed ends");
        }
        *self = Feed::Off;
    }
}

impl FedView {
    /// Applies one event to the feed's view, and a deletion to the handle's `shared` view too
    /// (a fact that stays true); false if the feed must end.
    fn apply(
        &mut self,
        event: WatchedEvent,
        shared: &mut QueueView,
        names: NodeNames,
        path: &str,
    ) -> bool {
        if event.event_type == EventType::Session {
            return false;
        }
        let Some(child) = event
            .path
            .strip_prefix(path)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            // The parent itself: deleted or created (another incarnation); a data change
            // tells nothing about the queue.
            return event.path != path || event.event_type == EventType::NodeDataChanged;
        };
        if child.contains('/') {
            // Below a child: not a queue node.
            return true;
        }
        let Some(node) = names.node(child.to_owned()) else {
            return true;
        };
        match event.event_type {
            EventType::NodeCreated => self.view.note_created(self.incarnation, node),
            EventType::NodeDeleted => {
                shared.mark_gone(self.incarnation, &node);
                self.view.note_deleted(self.incarnation, node);
            }
            _ => {}
        }
        true
    }
}
