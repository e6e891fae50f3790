//! The shared core of [`InterProcessMutex`](crate::InterProcessMutex) (and so of the
//! read/write lock's halves and the semaphore's internal lock),
//! [`LeaderSelector`](crate::LeaderSelector) and the Curator-layout
//! [`LeaderLatch`](crate::LeaderLatch): a FIFO queue of ephemeral-sequential nodes.
//!
//! Every contender creates `<path>/_c_<uuid>-lock-<seq10>` (Curator's names, so Java and Rust
//! processes share one queue; `latch-` instead of `lock-` for the latch in Curator's layout).
//! The contender with the lowest sequence holds the lock; every other watches **only its
//! predecessor**, with a data watch, so a release wakes one contender, not the herd. Children
//! whose names do not end in `lock-<digits>` are ignored (CURATOR-43).
//!
//! A read/write lock's queue has two kinds of node ([`LockMode`]): exclusive write nodes
//! (`__WRIT__`) and shared read nodes (`__READ__`). A writer waits for every node before it; a
//! reader only for the writers before it, and watches the nearest one.
//!
//! # The parts
//!
//! * [`view`]: what a handle knows of the queue: the parent's incarnation and its lock nodes.
//! * [`decision`]: the grant decision, one pure function from that knowledge to what to do.
//! * `acquire`: joining the queue, the decisions that can be made at once, and waiting.
//! * `driver`: one task per handle that serves the lowest local waiter. (Serving only the
//!   lowest loses nothing with readers: a later waiter is held back by whatever holds back the
//!   lowest, or by the lowest itself when that is a writer.)
//! * [`feed`]: the driver's persistent recursive watch of the parent, which keeps the view
//!   exact while waiters wait near the head.
//! * `held`: a granted node, its release, its lost signal and the monitor that watches it.
//!
//! # One driver per queue handle
//!
//! Many tasks of one process may wait on the same handle (10,000 is a design point). Rather
//! than every waiter listing the children and watching its predecessor (O(N) reads of O(N)
//! children per handoff, Curator's thread-per-waiter design), the local waiters share one
//! driver task and one view of the queue. The driver serves the lowest local waiter only: it
//! grants it, or watches its nearest live predecessor, or asks for the evidence a grant
//! still lacks.
//!
//! # No grant without proof
//!
//! A grant needs evidence of the server's *current* state, spelled out in [`decision`]: our
//! node seen in a listing of the parent incarnation the view describes, every node before it
//! gone, our node present after all of that was learned, and no other hold of the same client
//! on the lock still in use. Where the evidence comes from:
//!
//! * **Joining.** A create is followed, in the same round trip, by a listing of the parent
//!   with its stat (`getChildren2`) when no other evidence will come. A listing that shows our
//!   node with nothing before it proves the grant by itself, at the moment it was taken.
//! * **Waiting.** The driver watches the predecessor. When the predecessor is the only node
//!   before ours not known to be gone, it watches our own node too, in the same round trip.
//!   ZooKeeper sends a session its replies and watch events in the order of the changes they
//!   report, and zookeeper-client hands each one over before reading the next. So when the
//!   predecessor's deletion has been seen, a deletion of our node that came before it has
//!   been seen too: if the watch on our node has not fired, our node was there after the
//!   predecessor went. When older nodes are still in the view, the deletion cannot prove the
//!   grant alone, and the listing after it (which settles the older nodes) proves our node
//!   there as well, at the moment it was taken: a watch on our node would cost a request and
//!   an event for nothing.
//! * **Waiting on a watch of the whole parent** (a lock's queue, by default; see [`feed`]).
//!   While a waiter near the head waits on another session's node, the driver keeps a
//!   persistent recursive watch on the parent, set with a listing right behind it, and a view
//!   of its own built from that listing and the watch's events alone: the parent's state as of
//!   the last packet read. The driver applies every event received so far in the lock held for
//!   the decision, so that view proves nothing before our node at one moment, and a watch on
//!   our node, set while it waits, proves it present: no read follows the event. A create on
//!   the watched session needs no listing of its own: its creation event comes before its
//!   answer. Any session event, interruption or event of the parent itself ends the watch,
//!   and the waiters go back to the bullet above.
//! * **A local handoff.** When the predecessor is a node this handle holds on the same
//!   session, its release deletes it and reads our node right behind the delete: if the read
//!   finds it, our node was there after the predecessor went, and nothing else was before it
//!   (which the release checks with the same decision before sending).
//! * **Other sessions.** All evidence about a waiter comes from its own session, or was
//!   learned on an earlier session of the client before the waiter's node was created (and
//!   the create, a write, is ordered after it by the leader).
//! * **The parent's incarnation.** Every listing carries the parent's czxid. A listing of a
//!   newer parent drops the view, and every waiter of the old parent joins again; one of an
//!   older parent is ignored.
//!
//! A waiter whose node is gone is never granted: it joins the back of the queue again with a
//! new node, as often as the client's retry policy allows (Curator retries its `NoNode` the
//! same way), and then the acquire fails with [`Error::NodeDeleted`] (or
//! [`Error::SessionExpired`], when it was the session that went).
//!
//! # Performance
//!
//! What the queue's operations cost is in the crate documentation's `# Performance` section,
//! the one place for the recipes' costs.

mod acquire;
pub(crate) mod decision;
mod driver;
mod feed;
mod held;
pub(crate) mod view;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};
use zookeeper_client::{Acl, Stat, WatchedEvent};

use crate::connection::{send_now, BackgroundDeletes, Client, Created, Session};
use crate::error::{Error, Result};
use crate::path::join;
use crate::sync::Locked;

pub(crate) use self::acquire::{Requeues, Wait};
pub(crate) use self::held::{Held, LostSignal};
use self::held::{LocalHold, LocalHolds};
pub use self::view::LockMode;
use self::view::{queue_order, Listing, ListingEffect, QueueNode, QueueView};
pub(crate) use self::view::{
    Incarnation, NodeNames, LATCH_NAMES, LEASE_NAMES, LOCK_NAMES, READ_WRITE_NAMES,
};

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
    /// True for a node that holds the lock as the queue stands: the first in queue order (the
    /// lock holder or the leader) or, in a read/write lock, every read node with no write node
    /// before it.
    pub is_leader: bool,
    /// [`Exclusive`](LockMode::Exclusive), but [`Shared`](LockMode::Shared) for the read
    /// nodes of a read/write lock.
    pub mode: LockMode,
}

impl Participant {
    fn of(node: QueueNode, data: &[u8], is_leader: bool) -> Participant {
        Participant {
            id: String::from_utf8_lossy(data).into_owned(),
            node: node.name,
            sequence: node.sequence,
            is_leader,
            mode: node.mode,
        }
    }
}

/// Called with a node's path, its czxid and its data, once for each version of the data of a
/// node of ours: while it waits (only if the listener was set before the wait began) and
/// while it is held. Curator's revocation requests travel this way. A panic in it is caught
/// and logged.
pub(crate) type NodeDataListener = Arc<dyn Fn(&str, u64, &[u8]) + Send + Sync>;

/// Hands each new version of a node's data to the [`NodeDataListener`], once.
#[derive(Default)]
struct DataDelivery {
    listener: Option<NodeDataListener>,
    /// The version last handed over.
    delivered: Option<i32>,
}

impl DataDelivery {
    fn offer(&mut self, path: &str, czxid: u64, stat: &Stat, data: &[u8]) {
        if self.delivered.is_some_and(|seen| seen >= stat.version) {
            return;
        }
        self.delivered = Some(stat.version);
        let Some(listener) = &self.listener else {
            return;
        };
        if let Err(panic) =
            std::panic::catch_unwind(AssertUnwindSafe(|| listener(path, czxid, data)))
        {
            tracing::error!(node = %path, panic = %crate::error::panic_message(&*panic), "a node data listener panicked; it is called again on the next change");
        }
    }
}

/// The event a one-shot watch delivers, boxed so it can be polled without being consumed.
type WatchEvent = Pin<Box<dyn std::future::Future<Output = WatchedEvent> + Send>>;

/// A data watch on one of our own nodes, and what the read that set it saw.
struct OwnWatch {
    data: Vec<u8>,
    stat: Stat,
    event: WatchEvent,
}

impl OwnWatch {
    /// Reads `path` and watches it: `None` if it does not exist. The read is sent at once.
    fn arm(
        zk: &zookeeper_client::Client,
        path: &str,
    ) -> impl std::future::Future<Output = std::result::Result<Option<Self>, zookeeper_client::Error>>
           + Send
           + 'static {
        let zk = zk.clone();
        let path = path.to_owned();
        async move {
            match zk.get_and_watch_data(&path).await {
                Ok((data, stat, watcher)) => Ok(Some(OwnWatch {
                    data,
                    stat,
                    event: Box::pin(watcher.changed()),
                })),
                Err(zookeeper_client::Error::NoNode) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

/// A grant, as the driver hands it to the waiting acquire.
struct Grant {
    /// The session's interruption count when the grant was confirmed (see `LostSignal`).
    interruptions_at_grant: u64,
    incarnation: Incarnation,
    /// The watch on the node that proved its presence, for the holder's monitor to go on with.
    own_watch: Option<Box<OwnWatch>>,
    /// The hold's entry among the client's holds, made with the grant (see
    /// [`LocalHolds::try_register`]).
    local_hold: LocalHold,
    /// The create the waiter asked for, when it went out behind the request that proved the
    /// grant (see [`CreateAhead`]).
    sent_ahead: Option<SentAhead>,
}

/// A node that a waiter's recipe makes as soon as the waiter is granted (a semaphore's lease,
/// under its internal lock): called right after a request that may prove the waiter's grant
/// is sent (the driver's listing, or the read of the waiter's node that a local release
/// sends behind its delete), so that the create goes out in the same round trip as that
/// request instead of one round trip after it. Its future must send the create on its first poll
/// when the client is connected (a later send is still behind the listing).
///
/// Sent on the waiter's session behind that request, the create is answered after it: when
/// the request proves the grant, the node was made while the waiter held the
/// lock, exactly as if it had been sent after the grant. (The create goes to the client's
/// current session; if that is no longer the waiter's, the node proves nothing, and the
/// recipe must check, as it must for a create sent after the grant.) When it does not (a
/// listing showing a node before ours that went without a word, and not all the ones before
/// it; the waiter's node gone), the node is deleted as soon as its create is answered (see
/// [`SentAhead`]); for that moment it existed without the lock. Called again for every
/// request that may prove the grant.
pub(crate) type CreateAhead = Arc<dyn Fn() -> SentCreate + Send + Sync>;

/// The future of a [`CreateAhead`].
pub(crate) type SentCreate = Pin<Box<dyn std::future::Future<Output = Result<Created>> + Send>>;

/// A [`CreateAhead`]'s create, sent, and handed over with the grant it went out with.
/// Dropped before its answer was taken, it deletes the node once the answer comes: one
/// delete, in the background.
pub(crate) struct SentAhead {
    /// The session's interruption count before the create was sent.
    interruptions: u64,
    /// `None` once the answer is taken.
    create: Option<SentCreate>,
    client: Client,
}

impl SentAhead {
    /// Calls `create_ahead` and polls its future once, which sends the create. The poll has a
    /// no-op waker: the driver that sends it has no use for the answer.
    fn send(client: &Client, interruptions: u64, create_ahead: &CreateAhead) -> Self {
        let mut create = create_ahead();
        if let Some(answer) = send_now(&mut create) {
            create = Box::pin(std::future::ready(answer));
        }
        Self {
            interruptions,
            create: Some(create),
            client: client.clone(),
        }
    }

    /// The session's interruption count before the create was sent: a drop after it may have
    /// lost the node.
    pub(crate) fn interruptions(&self) -> u64 {
        self.interruptions
    }

    /// The create's answer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before the answer, the node is deleted once the answer comes.
    pub(crate) async fn answer(mut self) -> Result<Created> {
        let answer = self.create.as_mut().expect("taken once").await;
        self.create = None;
        answer
    }
}

impl Drop for SentAhead {
    fn drop(&mut self) {
        let Some(create) = self.create.take() else {
            return;
        };
        let client = self.client.clone();
        self.client.spawn(async move {
            // A create that failed made nothing, or left its node to its own guard.
            let Ok(created) = create.await else { return };
            let what = "a node made ahead of a grant that did not come";
            client.guaranteed_delete_or_warn(&created.node, what).await;
        });
    }
}

/// Why a waiter's wait ended without the lock.
#[derive(Debug)]
enum Denied {
    /// A single look found others ahead.
    NotFirst,
    /// Its node is gone (its session was lost, or someone deleted it): join again, if the
    /// retry policy allows, else fail with this error.
    NodeGone(Error),
    /// A failure the caller must see.
    Failed(Error),
}

type GrantSender = oneshot::Sender<std::result::Result<Grant, Denied>>;

/// A waiter's place among the local waiters: by session generation, then sequence, so that
/// waiters of a lost session sort first and are found without a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct WaiterKey {
    generation: u64,
    sequence: i64,
}

struct Waiter {
    node: QueueNode,
    session: Arc<Session>,
    /// The parent incarnation its node was seen in, once a listing has shown it.
    incarnation: Option<Incarnation>,
    /// Its registration number: a listing sent when [`QueueState::next_ticket`] was `t` was
    /// answered after the create of every waiter with a ticket below `t`.
    ticket: u64,
    grant: GrantSender,
    /// What to create as soon as it is granted, ahead of the grant where a listing decides it.
    create_ahead: Option<CreateAhead>,
    /// That create, sent behind the read that proved its grant on a release of its
    /// predecessor (see `SequentialQueue::delete_node`). It goes with the waiter: handed over
    /// with its grant, or deleted when the waiter is dropped for any other reason. Boxed:
    /// thousands may wait.
    sent_on_release: Option<Box<SentAhead>>,
}

/// The answer to a `get_and_watch_data`.
type DataAndWatch =
    std::result::Result<(Vec<u8>, Stat, zookeeper_client::OneshotWatcher), zookeeper_client::Error>;

/// A data watch on a node, set before the driver asked for it (see `list_before_replacing`).
struct PreWatch {
    /// The generation of the session it is set on.
    generation: u64,
    incarnation: Incarnation,
    predecessor: QueueNode,
    /// The read that sets it.
    watch: tokio::task::JoinHandle<DataAndWatch>,
}

#[derive(Default)]
struct QueueState {
    waiters: BTreeMap<WaiterKey, Waiter>,
    view: QueueView,
    /// Our nodes that are held and not yet known to be deleted: name → session generation.
    /// When a waiter's predecessor is one of these on the same session, the driver needs no
    /// watch: this process learns of its deletion first (its release, or its monitor).
    holds: HashMap<String, u64>,
    /// A watch set ahead of the driver's need.
    prewatch: Option<PreWatch>,
    /// The waiter whose grant the release of its predecessor proved (see
    /// `SequentialQueue::delete_node`).
    release_proof: Option<WaiterKey>,
    /// Plain creates of lock nodes under way on this handle (see `CreateInFlight`).
    creates_in_flight: usize,
    next_ticket: u64,
    driver_running: bool,
    /// The session generation the driver's [`feed`] is on, while it is on: a plain create on
    /// that session then needs no listing of its own, since the driver sees its creation in the
    /// feed and places it there.
    fed_generation: Option<u64>,
}

impl QueueState {
    /// Takes in a listing, and tells the waiters of a parent it shows to be deleted that they
    /// are gone.
    fn take_in(&mut self, listing: &Listing, path: &str) {
        if self.view.apply(listing) == ListingEffect::NewIncarnation {
            let dead: Vec<WaiterKey> = self
                .waiters
                .iter()
                .filter(|(_, w)| w.incarnation.is_some_and(|i| i < listing.incarnation))
                .map(|(key, _)| *key)
                .collect();
            for key in dead {
                tracing::debug!(%path, "the queue's parent was deleted and created again; a waiter of the old one joins again");
                self.deny_gone(key, path);
            }
        }
    }

    /// Places the waiters of session `generation` registered before `ticket` with a listing
    /// answered after their creates (`None`: the parent did not exist): each is in it, or gone.
    fn place_waiters(
        &mut self,
        listing: Option<&Listing>,
        generation: u64,
        ticket: u64,
        path: &str,
    ) {
        if let Some(listing) = listing {
            self.take_in(listing, path);
        }
        let mut gone = Vec::new();
        for (key, waiter) in self.waiters.iter_mut() {
            if key.generation != generation || waiter.ticket >= ticket {
                continue;
            }
            match listing {
                Some(listing) if listing.contains(&waiter.node) => {
                    waiter.incarnation = Some(listing.incarnation)
                }
                _ => gone.push(*key),
            }
        }
        for key in gone {
            tracing::debug!(%path, "a waiting node is missing from the queue; it joins again");
            self.deny_gone(key, path);
        }
    }

    fn register(
        &mut self,
        node: QueueNode,
        session: Arc<Session>,
        incarnation: Option<Incarnation>,
        grant: GrantSender,
        create_ahead: Option<CreateAhead>,
    ) -> WaiterKey {
        let key = WaiterKey {
            generation: session.generation(),
            sequence: node.sequence,
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiters.insert(
            key,
            Waiter {
                node,
                session,
                incarnation,
                ticket,
                grant,
                create_ahead,
                sent_on_release: None,
            },
        );
        key
    }

    /// Hands `grant` to the waiter `key`, which leaves the waiters, with the create sent for
    /// it on a release of its predecessor unless the grant brings one of its own: the waiter's
    /// node, or `None` if it had gone. A dropped receiver means the waiter is being
    /// cancelled: its guard deletes the node.
    fn hand_over(&mut self, key: WaiterKey, mut grant: Grant) -> Option<QueueNode> {
        let mut waiter = self.waiters.remove(&key)?;
        if grant.sent_ahead.is_none() {
            grant.sent_ahead = waiter.sent_on_release.take().map(|sent| *sent);
        }
        let _ = waiter.grant.send(Ok(grant));
        Some(waiter.node)
    }

    fn deny(&mut self, key: WaiterKey, denied: Denied) {
        if let Some(waiter) = self.waiters.remove(&key) {
            let _ = waiter.grant.send(Err(denied));
        }
    }

    fn deny_gone(&mut self, key: WaiterKey, path: &str) {
        if let Some(waiter) = self.waiters.remove(&key) {
            let error = Error::NodeDeleted {
                path: join(path, &waiter.node.name),
            };
            let _ = waiter.grant.send(Err(Denied::NodeGone(error)));
        }
    }
}

/// A queue of ephemeral-sequential nodes under one path, shared by the local contenders of one
/// recipe handle.
pub(crate) struct SequentialQueue {
    client: Client,
    path: String,
    /// What the queue's nodes are called after the protection prefix (Curator's `lock-`,
    /// `latch-`, or `__WRIT__` and `__READ__`), before the sequence.
    names: NodeNames,
    acls: Vec<Acl>,
    /// The holds of this client on this lock, through any handle.
    local_holds: Arc<LocalHolds>,
    state: Mutex<QueueState>,
    wake_driver: Notify,
    /// Background deletes (of dropped holds, abandoned acquires and the nodes of creates
    /// they abandoned) still running: see [`deletes_settled`](Self::deletes_settled).
    background_deletes: BackgroundDeletes,
    /// Handed to every node that waits or is granted from now on.
    data_listener: Mutex<Option<NodeDataListener>>,
    /// Whether the driver may watch the whole parent (see [`feed`]) instead of predecessors
    /// one by one.
    feeds_view: AtomicBool,
}

impl std::fmt::Debug for SequentialQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequentialQueue")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SequentialQueue {
    /// A queue under `path` (validated by the caller) of nodes called as `names` says, whose
    /// waiters watch their predecessors one by one.
    pub(crate) fn new(
        client: &Client,
        path: String,
        acls: Vec<Acl>,
        names: NodeNames,
    ) -> Arc<Self> {
        Arc::new(Self {
            feeds_view: AtomicBool::new(false),
            local_holds: LocalHolds::of(client.instance(), &path),
            client: client.clone(),
            path,
            names,
            acls,
            state: Mutex::new(QueueState::default()),
            wake_driver: Notify::new(),
            background_deletes: BackgroundDeletes::default(),
            data_listener: Mutex::new(None),
        })
    }

    /// A lock's queue, as [`new`](Self::new), whose driver watches the whole parent while
    /// waiters wait near the head (see [`feed`]): a lock's waiter then needs no read after its
    /// predecessor's deletion. Not for queues with shared nodes: their exclusive waiters are
    /// granted only on a listing of their own.
    pub(crate) fn new_lock(
        client: &Client,
        path: String,
        acls: Vec<Acl>,
        names: NodeNames,
    ) -> Arc<Self> {
        let queue = Self::new(client, path, acls, names);
        queue.set_feeds_view(true);
        queue
    }

    /// Lets the driver watch the whole parent, or not (see [`new_lock`](Self::new_lock));
    /// ignored for queues with shared nodes. Takes effect at the next feed the driver starts.
    pub(crate) fn set_feeds_view(&self, on: bool) {
        let on = on && !self.names.has_shared();
        self.feeds_view
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the driver may watch the whole parent.
    pub(crate) fn feeds_view(&self) -> bool {
        self.feeds_view.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends the create that the waiter `key` asked to have made once granted, if it asked
    /// (see [`CreateAhead`]): called right after a request that may prove its grant is sent.
    fn send_create_ahead(&self, key: WaiterKey) -> Option<SentAhead> {
        let (create_ahead, interruptions) = {
            let state = self.state.locked();
            let waiter = state.waiters.get(&key)?;
            let create_ahead = waiter.create_ahead.clone()?;
            (create_ahead, waiter.session.interruption_count())
        };
        // Sent with the state unlocked: the create may look at the client's state.
        Some(SentAhead::send(&self.client, interruptions, &create_ahead))
    }

    /// Refuses, before anything is sent, a node carrying `data` that the server would refuse
    /// (see [`limits`](crate::limits)): its full name, its data and the queue's ACLs.
    pub(crate) fn check_join(&self, data: &[u8]) -> Result<()> {
        // The node's full name adds the protection prefix before the name, and 10 digits.
        let name = self.names.name(LockMode::Exclusive).unwrap_or_default();
        let named = join(&self.path, name);
        self.client.check_request(
            "join the queue",
            &named,
            crate::connection::PROTECTION_PREFIX_LEN + 10,
            data.len(),
            &self.acls,
        )
    }

    /// Sets the listener told of the data of nodes that wait or are granted from now on (see
    /// [`NodeDataListener`]); `None` removes it. Nodes that wait or are held already keep
    /// what they had.
    pub(crate) fn set_data_listener(&self, listener: Option<NodeDataListener>) {
        *self.data_listener.locked() = listener;
    }

    fn data_delivery(&self) -> DataDelivery {
        DataDelivery {
            listener: self.data_listener.locked().clone(),
            delivered: None,
        }
    }

    /// Records that our `node` of `incarnation` is deleted, and wakes the driver: a local
    /// waiter may be waiting on it without a watch of its own.
    fn note_deleted(&self, incarnation: Option<Incarnation>, node: &QueueNode) {
        let mut state = self.state.locked();
        state.holds.remove(&node.name);
        if let Some(incarnation) = incarnation {
            state.view.mark_gone(incarnation, node);
        }
        drop(state);
        self.wake_driver.notify_one();
    }

    /// Every lock node under the path in queue order, with its participant id.
    pub(crate) async fn participants(&self) -> Result<Vec<Participant>> {
        let children = self.client.children(&self.path).await?.unwrap_or_default();
        let nodes = queue_order(children, self.names);
        let reads = nodes.iter().map(|node| {
            let path = join(&self.path, &node.name);
            async move { self.client.get_data(&path).await }
        });
        let datas = futures::future::join_all(reads).await;
        let mut participants = Vec::with_capacity(nodes.len());
        // The lowest sequence of any node, and of an exclusive node, seen so far.
        let mut first_of_any: Option<i64> = None;
        let mut first_exclusive: Option<i64> = None;
        for (node, data) in nodes.into_iter().zip(datas) {
            // A node deleted between the listing and its read has left the queue.
            let Some((data, _)) = data? else { continue };
            let before = |first: Option<i64>| first.is_some_and(|first| first < node.sequence);
            let is_leader = match node.mode {
                LockMode::Exclusive => !before(first_of_any),
                LockMode::Shared => !before(first_exclusive),
            };
            first_of_any.get_or_insert(node.sequence);
            if node.mode == LockMode::Exclusive {
                first_exclusive.get_or_insert(node.sequence);
            }
            participants.push(Participant::of(node, &data, is_leader));
        }
        Ok(participants)
    }

    /// The first lock node under the path (the holder or leader) with its stat, if any: the
    /// listing, then a read of the first node only (of the next, if that one has just gone).
    pub(crate) async fn first(&self) -> Result<Option<(Participant, zookeeper_client::Stat)>> {
        let children = self.client.children(&self.path).await?.unwrap_or_default();
        for node in queue_order(children, self.names) {
            let path = join(&self.path, &node.name);
            // A node deleted between the listing and its read has left the queue.
            if let Some((data, stat)) = self.client.get_data(&path).await? {
                return Ok(Some((Participant::of(node, &data, true), stat)));
            }
        }
        Ok(None)
    }
}

/// The interruption count to record for a grant, or `None` if the connection is not up right
/// now (the grant then waits for a reconnect and a fresh look).
///
/// The count is read before the raw connection state: if the state is connected at that point,
/// any later drop increments the count after we read it, so the holder's lost signal fires.
fn confirmed_interruptions(session: &Session) -> Option<u64> {
    let interruptions = session.interruption_count();
    let connected = session
        .zookeeper()
        .map(|zk| matches!(zk.state(), zookeeper_client::SessionState::SyncConnected))
        .unwrap_or(false);
    (connected && !session.is_lost()).then_some(interruptions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_delivered_once_per_version_and_a_panic_is_contained() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let mut delivery = DataDelivery {
            listener: Some(Arc::new(move |_: &str, _: u64, data: &[u8]| {
                seen.locked().push(data.to_vec());
                if data == b"boom" {
                    panic!("listener failure");
                }
            })),
            delivered: None,
        };
        let stat = |version| Stat {
            czxid: 1,
            mzxid: 1,
            pzxid: 1,
            ctime: 0,
            mtime: 0,
            version,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 0,
            num_children: 0,
        };
        delivery.offer("/p", 1, &stat(0), b"id");
        delivery.offer("/p", 1, &stat(0), b"id");
        delivery.offer("/p", 1, &stat(1), b"boom");
        delivery.offer("/p", 1, &stat(2), b"__REVOKE__");
        delivery.offer("/p", 1, &stat(1), b"boom");
        assert_eq!(
            *calls.locked(),
            vec![b"id".to_vec(), b"boom".to_vec(), b"__REVOKE__".to_vec()]
        );
    }
}
