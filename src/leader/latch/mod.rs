//! [`LeaderLatch`]: leadership by a race for one ephemeral node.
//!
//! Every candidate tries to create the same **ephemeral** node, the latch path itself (say
//! `/app/leader`), with its participant id as the data. The candidate whose create succeeds
//! is the leader; the others watch the node and race again when it is deleted. The leader
//! gives leadership up with [`LeaderLatch::close`], or by dying: its session ends and
//! ZooKeeper deletes the node.
//!
//! # Two layouts
//!
//! By default ([`LatchLayout::Race`]) this is deliberately **not** Curator's `LeaderLatch`
//! layout: the latch races for one node, the latch path itself. Opt in to Curator's layout
//! with [`LeaderLatch::with_layout`]`(`[`LatchLayout::Curator`]`)`: every candidate then
//! queues an ephemeral-sequential node `<path>/_c_<uuid>-latch-<seq10>` with its id as data,
//! the lowest leads until its latch is closed, and each other candidate watches only its
//! predecessor. Java services running Curator's `LeaderLatch` on the same path take part in
//! the same election, in the order the candidates joined.
//!
//! **Do not mix the layouts on one path.** A Java Curator `LeaderLatch` on a path where a
//! race-layout latch leads cannot join: the leader's node is the path itself, an ephemeral
//! node, and ZooKeeper refuses children below it (`NoChildrenForEphemerals`), so the Java
//! latch retries in the background and never leads, without an error its caller sees (Curator
//! cannot be changed). A race-layout latch started on a path where Curator's latches queue
//! fails with [`Error::PathOccupied`] (the path is their container
//! parent), which at least says so. For an election
//! shared with Java services, every Rust latch must use [`LatchLayout::Curator`].
//!
//! Both layouts give the same guarantees and the same API: ownership checks, [`CloseMode`],
//! listeners and streams, the [`ConnectionErrorPolicy`], the verified
//! [`has_leadership`](LeaderLatch::has_leadership), and no leaked node. The Curator layout
//! stands on the crate's queue core (the one under the mutex and the selector), so a leader
//! is only ever granted from proof of the server's current state. A leader whose node is
//! deleted queues again at the back, as in Curator. A leader that gives leadership up on a
//! suspension (the standard policy) also queues again at the back, with a new node, once
//! reconnected: **unlike Curator 5.4+**, which keeps its node through a reconnection on the
//! same session (CURATOR-644) and leads again if it is still first. In an election shared
//! with Java latches, a Rust leader therefore loses its place after a connection blip where
//! a Java one would keep it; [`ConnectionErrorPolicy::SessionOnly`] keeps leadership (and
//! the node) through suspensions instead. Its [`watch_events_received`](LeaderLatch::watch_events_received)
//! stays 0: the queue core does not count them.
//!
//! # Latch or `LeaderSelector`?
//!
//! | | `LeaderLatch` (this module) | `LeaderSelector` |
//! |---|---|---|
//! | Nodes | one ephemeral node, the latch path | one ephemeral-sequential node per candidate |
//! | Order | **unfair**: whoever's create lands first wins; the same process may win again and again | **fair**: candidates lead in queue (arrival) order |
//! | On every change | **every** follower is woken and races (the herd): *n* followers mean *n* watch events and *n* creates per change | only the next candidate is woken |
//! | Leadership | held until `close()` or the session ends | held while the listener's `take_leadership` runs (then requeued if asked) |
//! | Nodes on the server | one, whatever the number of candidates | one per candidate |
//!
//! Choose the latch when the candidates are few (a handful of replicas of one service), changes
//! of leader are rare, and any candidate is as good as any other: it is the simplest recipe and
//! has the fewest moving parts. Choose [`LeaderSelector`](crate::LeaderSelector) when there
//! are many candidates (the herd makes every change cost O(*n*) requests and notifications on
//! the ensemble), when
//! leadership should rotate or go in arrival order, or when Java processes using Curator's
//! recipes must take part. [`LeaderLatch::watch_events_received`] counts this latch's share of
//! the herd.
//!
//! # Guarantees
//!
//! * **At most one leader, as far as ZooKeeper can tell.** A latch believes it leads only
//!   after reading the node and finding that its ephemeral owner is the client's *current*
//!   session, and that it is the node this latch made (by its czxid). A create whose answer
//!   was lost to a connection drop, or a `NodeExists` after one, is resolved by the owner
//!   alone (the node may be ours from before the drop: Curator's CURATOR-696 double leader).
//!   A node of an earlier session of ours is never taken for ours, nor a node of another
//!   latch of the same client (which shares the session), nor that of a closed latch of the
//!   client whose delete is still under way: this latch follows it like any other leader's.
//!   To prove that even after a lost answer, latches of one client on one path send their
//!   creates one at a time, and each records the node it knows is its own: a node of the
//!   session that no sibling claims can only be the one sibling's whose create is unresolved.
//! * **Connection trouble.** By default ([`ConnectionErrorPolicy::Standard`]), leadership is
//!   given up the moment the connection is suspended: the session may expire and another
//!   latch win while this one cannot hear about it. Once reconnected on the same session, the
//!   latch checks the node: still ours, it leads again, without anyone else having had a
//!   chance (the node never went away). [`ConnectionErrorPolicy::SessionOnly`] keeps
//!   leadership through a suspension and gives it up only when the session is lost. After a
//!   loss the latch races again on the client's new session.
//! * **The parent may vanish.** If the latch node's parent is deleted while the latch runs,
//!   the latch makes it again (as a container node) and races again (CURATOR-724).
//! * **No leaked node.** [`close`](LeaderLatch::close) deletes the node only if it is this
//!   latch's (as above), with a version-checked delete. A latch dropped without `close` does the
//!   same in the background.
//! * **A path no latch can win.** A latch only ever makes an ephemeral node. If the latch path
//!   holds a persistent or a container node (another recipe's parent, say: a
//!   [`LeaderSelector`](crate::LeaderSelector) on the same path leaves one behind, which
//!   ZooKeeper reaps only about a minute after its last child goes), no latch could win until
//!   someone deletes it. The latch does not wait silently: it stops with
//!   [`Error::PathOccupied`], which names the path and what holds it. [`start`](LeaderLatch::start)
//!   returns it; if such a node appears later, while the latch runs (found when it races
//!   again), the latch closes itself, its [`leadership_changes`](LeaderLatch::leadership_changes)
//!   stream ends, [`await_leadership`](LeaderLatch::await_leadership) returns the error, and
//!   [`failure`](LeaderLatch::failure) keeps it. Give each recipe its own path.
//!
//! ```no_run
//! # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
//! use zk_recipes::{CloseMode, LeaderLatch};
//!
//! let latch = LeaderLatch::new(&client, "/app/leader")?.with_id("node-1");
//! latch.start().await?;
//! latch.await_leadership().await?;
//! assert!(latch.has_leadership().await); // asks the server
//! // … lead …
//! latch.close_with(CloseMode::NotifyLeader).await?;
//! # Ok(()) }
//! ```

mod notify;
mod queued;
mod race;
mod siblings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acl, SessionId};

use self::notify::Emitter;
pub use self::notify::{LeaderLatchListener, LeadershipChanges};
use self::queued::QueueTask;
use self::race::RaceTask;
use crate::connection::{Client, Session};
use crate::error::{Error, Result};
use crate::participant::default_participant_id;
use crate::queue::{SequentialQueue, LATCH_NAMES};
use crate::sync::Locked;

/// How a [`LeaderLatch`] reacts to connection trouble (Curator's `ConnectionStateErrorPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ConnectionErrorPolicy {
    /// Give leadership up as soon as the connection is
    /// [`Suspended`](crate::ConnectionState::Suspended) (Curator's
    /// `StandardConnectionStateErrorPolicy`). Safe: a leader never keeps leading while its
    /// session may be expiring unseen. Leadership comes back after reconnection if the node
    /// is still this session's.
    #[default]
    Standard,
    /// Keep leadership through a suspension; give it up only when the session is
    /// [`Lost`](crate::ConnectionState::Lost) (Curator's
    /// `SessionConnectionStateErrorPolicy`). Fewer changes of leader on a flaky network, at
    /// the price of a window (up to the session timeout) in which this latch may still believe
    /// it leads after the server has expired its session and another latch has won.
    SessionOnly,
}

/// How [`LeaderLatch::close_with`] treats the listeners (Curator's `CloseMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CloseMode {
    /// Listeners are not told (Curator's default). [`LeaderLatch::leadership_changes`]
    /// streams still get the final `false`.
    #[default]
    Silent,
    /// If the latch was leading, listeners get [`not_leader`](LeaderLatchListener::not_leader).
    NotifyLeader,
}

/// The lifecycle of a [`LeaderLatch`] (Curator's `LeaderLatch.State`): the crate's one
/// [`RecipeState`](crate::RecipeState).
pub type LatchState = crate::RecipeState;

/// The current leader of a latch, read from the latch node: [`LeaderLatch::leader`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatchLeader {
    /// The leader's participant id (the node's data, decoded as UTF-8, lossily).
    pub id: String,
    /// The session that owns the node.
    pub session_id: SessionId,
}

/// Counters of one latch, for benchmarks and diagnostics: [`LeaderLatch::metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LeaderLatchMetrics {
    /// Node watch events delivered to this latch (as a follower: one per change of the
    /// leader's node; as the leader: one when its node is changed or deleted by someone
    /// else). Session events are not counted.
    pub watch_events: u64,
    /// Creates of the latch node sent (each race, and each retry).
    pub races: u64,
    /// How many times this latch became the leader.
    pub elected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    watch_events: AtomicU64,
    races: AtomicU64,
    elected: AtomicU64,
}

/// Which nodes a [`LeaderLatch`] uses: see the [module documentation](self#two-layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LatchLayout {
    /// A race for one ephemeral node, the latch path itself (the default): simple and
    /// unfair, and every follower is woken on every change. Not Curator's layout: a Java
    /// Curator `LeaderLatch` on the same path hangs silently (it cannot make its node below the
    /// leader's ephemeral node); see the [module documentation](self#two-layouts).
    #[default]
    Race,
    /// Curator's `LeaderLatch` layout: each candidate queues an ephemeral-sequential node
    /// `<path>/_c_<uuid>-latch-<seq10>` with its id as data; the lowest leads, and each other
    /// candidate watches its predecessor. Java services running Curator's `LeaderLatch` on the
    /// same path take part in the same election.
    Curator,
}

#[derive(Debug, Clone, Default)]
struct Settings {
    acls: Vec<Acl>,
    policy: ConnectionErrorPolicy,
    layout: LatchLayout,
}

#[derive(Debug)]
struct Lifecycle {
    state: LatchState,
    task: Option<JoinHandle<()>>,
}

/// What the latch handle and its task share.
#[derive(Debug)]
pub(crate) struct Inner {
    client: Client,
    path: String,
    id: String,
    settings: Mutex<Settings>,
    emitter: Emitter,
    lifecycle: Mutex<Lifecycle>,
    cancel: CancellationToken,
    counters: Counters,
    /// Why the latch stopped by itself, if it did (see [`LeaderLatch::failure`]).
    failure: Mutex<Option<Error>>,
    /// The latches of this client on this path, and this one's number among them.
    siblings: Arc<siblings::Siblings>,
    serial: u64,
    /// The node this latch leads on, while it leads: for [`LeaderLatch::has_leadership`].
    leader_node: Mutex<Option<LeaderNode>>,
}

/// The node a latch leads on: its session, its path and its czxid.
#[derive(Debug, Clone)]
struct LeaderNode {
    session: Arc<Session>,
    path: String,
    czxid: i64,
}

/// Leadership by a race for one ephemeral node: simple, unfair, and every follower is woken on
/// every change (see the [module documentation](self) for when to choose it over
/// [`LeaderSelector`](crate::LeaderSelector)).
///
/// Make one with [`new`](Self::new), [`start`](Self::start) it, and read
/// [`is_leader`](Self::is_leader) (or ask the server with
/// [`has_leadership`](Self::has_leadership)), wait with
/// [`await_leadership`](Self::await_leadership), follow [`leadership_changes`](Self::leadership_changes)
/// or [`add_listener`](Self::add_listener). [`close`](Self::close) it to give leadership up.
///
/// A started latch runs a background task (on the client's runtime) until it is closed.
/// **Dropping** a started latch without closing it closes it silently: leadership is given up
/// at once, and the task deletes the node (if it is this latch's) in the background.
///
/// `LeaderLatch` is not `Clone`; share it with an `Arc`.
#[derive(Debug)]
pub struct LeaderLatch {
    inner: Arc<Inner>,
}

impl LeaderLatch {
    /// A latch on `path`, with the default participant id ([`default_participant_id`],
    /// `hostname/pid`; set another with [`with_id`](Self::with_id)). Nothing is sent to
    /// ZooKeeper until [`start`](Self::start).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if `path` is not a usable znode path (see
    /// [`validate_recipe_path`](crate::validate_recipe_path)).
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        crate::path::validate_recipe_path(path)?;
        let id = default_participant_id().to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                client: client.clone(),
                path: path.to_owned(),
                id,
                settings: Mutex::new(Settings::default()),
                emitter: Emitter::new(),
                lifecycle: Mutex::new(Lifecycle {
                    state: LatchState::Latent,
                    task: None,
                }),
                cancel: CancellationToken::new(),
                counters: Counters::default(),
                failure: Mutex::new(None),
                siblings: siblings::Siblings::of(client.instance(), path),
                leader_node: Mutex::new(None),
                serial: {
                    static NEXT: AtomicU64 = AtomicU64::new(0);
                    NEXT.fetch_add(1, Ordering::Relaxed)
                },
            }),
        })
    }

    /// Sets the participant id, the data of the latch node: what [`leader`](Self::leader)
    /// shows (and Curator's `getLeader` in Java processes). Any string, the empty one too (see
    /// [ids](crate::participant)).
    ///
    /// Call it before [`start`](Self::start): the id is written into the node when the latch
    /// starts, so once started it cannot change, and this leaves it as it was (with a
    /// warning in the log). [`start`](Self::start) refuses an id that would make the node's
    /// create larger than the client's [`max_request_size`](Client::max_request_size).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let latch = zk_recipes::LeaderLatch::new(&client, "/services/billing/leader")?
    ///     .with_id("billing-7");
    /// assert_eq!(latch.id(), "billing-7");
    /// # Ok(()) }
    /// ```
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        // The handle is not `Clone`: only a started latch's task shares `inner`.
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.id = id.into(),
            None => tracing::warn!(
                path = %self.inner.path,
                id = %self.inner.id,
                "with_id on a started leader latch changes nothing"
            ),
        }
        self
    }

    /// The ACLs of the latch node (default: the client's
    /// [default ACLs](crate::ClientBuilder::default_acls)). Takes effect at
    /// [`start`](Self::start).
    ///
    /// Missing parents are made on the way: with [`LatchLayout::Race`] they get the client's
    /// default ACLs; with [`LatchLayout::Curator`] the latch path and its missing parents get
    /// these ACLs, as the parents of every queue recipe's nodes do (a lock path made with the
    /// lock's ACLs keeps clients without them from queueing). Curator gives parents the
    /// ACL its `ACLProvider` has for their path instead.
    pub fn with_acls(self, acls: Vec<Acl>) -> Self {
        self.settings().acls = acls;
        self
    }

    /// How to react to connection trouble (default: [`ConnectionErrorPolicy::Standard`]).
    /// Takes effect at [`start`](Self::start).
    pub fn with_error_policy(self, policy: ConnectionErrorPolicy) -> Self {
        self.settings().policy = policy;
        self
    }

    /// Which nodes the latch uses (default: [`LatchLayout::Race`]); see [`LatchLayout`] and
    /// the [module documentation](self#two-layouts). Takes effect at [`start`](Self::start).
    ///
    /// ```no_run
    /// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::{LatchLayout, LeaderLatch};
    ///
    /// // Takes part in the election of Java services' Curator LeaderLatch on the same path.
    /// let latch = LeaderLatch::new(&client, "/services/billing/leader")?
    ///     .with_id("rust-1")
    ///     .with_layout(LatchLayout::Curator);
    /// latch.start().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_layout(self, layout: LatchLayout) -> Self {
        self.settings().layout = layout;
        self
    }

    /// The layout the latch uses (see [`with_layout`](Self::with_layout)).
    pub fn layout(&self) -> LatchLayout {
        self.settings().layout
    }

    /// The queue of the Curator layout, with `acls` for the nodes it creates.
    fn queue(&self, acls: Vec<Acl>) -> Arc<SequentialQueue> {
        SequentialQueue::new(
            &self.inner.client,
            self.inner.path.clone(),
            acls,
            LATCH_NAMES,
        )
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.inner.settings.locked()
    }

    fn lifecycle(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        self.inner.lifecycle.locked()
    }

    /// The latch path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The lifecycle state.
    pub fn state(&self) -> LatchState {
        self.lifecycle().state
    }

    /// The connection error policy.
    pub fn error_policy(&self) -> ConnectionErrorPolicy {
        self.settings().policy
    }

    /// Starts the latch: its background task joins the race.
    ///
    /// Returns once the first attempt has decided (this latch leads, or another does), or,
    /// if the client is not connected, after the connection timeout (the latch then races in
    /// the background once the connection is back).
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if the latch was already started;
    /// * [`Error::Closed`] if it was closed, or its client is closed;
    /// * [`Error::InvalidArgument`] if the latch node's create (its path, id and ACLs) would
    ///   exceed the client's [`max_request_size`](Client::max_request_size), before anything
    ///   is sent;
    /// * errors the first attempt found that retrying would not cure, after which the latch is
    ///   [`Closed`](LatchState::Closed) and nothing is left on the server:
    ///   [`Error::NoAuth`] when an ACL forbids the create, [`Error::ZooKeeper`] with
    ///   `NoChildrenForEphemerals` when the latch path is under an ephemeral node,
    ///   [`Error::PathOccupied`] when the latch path holds a persistent or container node (see
    ///   [the module docs](self#guarantees)).
    ///
    /// Connection trouble is not an error: the latch keeps trying in the background, unless
    /// the connection drops in answer to each of its attempts more often than the client's
    /// retry policy allows (a server drops the connection of a request it refuses): it then
    /// stops, with [`Error::ConnectionLoss`] as its [`failure`](Self::failure).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the latch is started when the future is first polled; dropping it only
    /// stops waiting for the first attempt.
    pub async fn start(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let mut lifecycle = self.lifecycle();
            match lifecycle.state {
                LatchState::Latent => {}
                LatchState::Started => {
                    return Err(Error::IllegalState("the leader latch is already started"))
                }
                LatchState::Closed => return Err(Error::Closed),
            }
            if self.inner.client.is_closed() {
                return Err(Error::Closed);
            }
            let settings = self.settings().clone();
            let client = &self.inner.client;
            let task = match settings.layout {
                LatchLayout::Race => {
                    // The latch node's create, refused now if the server would refuse it.
                    self.inner.client.check_request(
                        "create the leader latch node",
                        &self.inner.path,
                        0,
                        self.inner.id.len(),
                        &settings.acls,
                    )?;
                    let task = RaceTask {
                        inner: self.inner.clone(),
                        cancel: self.inner.cancel.clone(),
                        acls: settings.acls,
                        policy: settings.policy,
                        started: Some(tx),
                        session: None,
                        claim: Default::default(),
                        create_turn: Default::default(),
                    };
                    client.spawn(task.run())
                }
                LatchLayout::Curator => {
                    let queue = self.queue(settings.acls);
                    queue.check_join(self.inner.id.as_bytes())?;
                    let task = QueueTask {
                        inner: self.inner.clone(),
                        cancel: self.inner.cancel.clone(),
                        queue,
                        policy: settings.policy,
                        started: std::sync::Mutex::new(Some(tx)),
                    };
                    client.spawn(task.run())
                }
            };
            if let Some(rx) = self.inner.emitter.take_dispatch_rx() {
                client.spawn(notify::dispatch_listeners(rx, self.inner.path.clone()));
            }
            lifecycle.state = LatchState::Started;
            lifecycle.task = Some(task);
        }
        tracing::debug!(path = %self.inner.path, id = %self.inner.id, "leader latch started");
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// True while the latch is started and leads, as far as it knows. Cheap and synchronous,
    /// but it may be stale, as Curator's `hasLeadership()` may: the node may have been deleted
    /// a moment ago without the latch hearing of it yet. For an answer from the server, see
    /// [`has_leadership`](Self::has_leadership).
    ///
    /// With the default [`ConnectionErrorPolicy::Standard`], it turns false the moment the
    /// connection is suspended.
    pub fn is_leader(&self) -> bool {
        self.inner.emitter.status().leader
    }

    /// Asks ZooKeeper whether this latch leads: it [leads as far as it knows](Self::is_leader),
    /// and a `sync` followed by a read of the latch node shows that the node is still the one
    /// this latch made (its czxid) and that its ephemeral owner is the client's current
    /// session.
    ///
    /// It costs one round trip and a sync, where Curator's `hasLeadership()` reads a local
    /// flag. It answers `false` on any doubt: not leading, suspended, closed, or an error (a
    /// trace event says why). A `true` is a fact about the moment of the read: before an
    /// irreversible action, pair it with a [fencing token](self) where the resource allows.
    ///
    /// ```no_run
    /// # async fn demo(latch: zk_recipes::LeaderLatch) {
    /// if latch.has_leadership().await {
    ///     // The server says we lead, as of this moment.
    /// }
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn has_leadership(&self) -> bool {
        if !self.is_leader() {
            return false;
        }
        let node = self.inner.leader_node.locked().clone();
        let Some(node) = node else {
            return false;
        };
        if !Arc::ptr_eq(&node.session, &self.inner.client.session()) {
            tracing::debug!(path = %self.inner.path, "not verified: the latch's session is not the client's current one");
            return false;
        }
        node.session.verifies_node(&node.path, node.czxid).await && self.is_leader()
    }

    /// Waits until this latch leads.
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if the latch is not started;
    /// * [`Error::Closed`] if it is closed (also while waiting);
    /// * the latch's [`failure`](Self::failure), when it stopped by itself (also while
    ///   waiting), e.g. [`Error::PathOccupied`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn await_leadership(&self) -> Result<()> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        self.check_started()?;
        let mut status = self.inner.emitter.watch();
        let leading = match status.wait_for(|s| s.leader || s.closed).await {
            Ok(s) => s.leader,
            Err(_) => false,
        };
        if leading {
            Ok(())
        } else {
            Err(self.failure().unwrap_or(Error::Closed))
        }
    }

    /// Why the latch stopped by itself, if it did: an error that retrying would not cure,
    /// such as [`Error::PathOccupied`] (see [the module docs](self#guarantees)). The latch is
    /// then [`Closed`](LatchState::Closed), and nothing of it is left on the server.
    pub fn failure(&self) -> Option<Error> {
        self.inner.failure.locked().clone()
    }

    /// Waits at most `timeout` until this latch leads: `Ok(true)` if it does, `Ok(false)` if
    /// the time ran out.
    ///
    /// # Errors
    ///
    /// As [`await_leadership`](Self::await_leadership).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn await_leadership_timeout(&self, timeout: Duration) -> Result<bool> {
        match tokio::time::timeout(timeout, self.await_leadership()).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    fn check_started(&self) -> Result<()> {
        match self.state() {
            LatchState::Latent => Err(Error::IllegalState("the leader latch is not started")),
            LatchState::Started => Ok(()),
            LatchState::Closed => Err(Error::Closed),
        }
    }

    /// A stream of this latch's leadership: first the leadership now, then every transition,
    /// in order, none dropped or coalesced. It ends when the latch is closed (at once if it
    /// already is).
    pub fn leadership_changes(&self) -> LeadershipChanges {
        self.inner.emitter.subscribe()
    }

    /// Adds a listener for leadership transitions from now on. Listeners are called in order,
    /// off the latch's task (see [`LeaderLatchListener`]). After close this does nothing.
    pub fn add_listener(&self, listener: impl LeaderLatchListener) {
        self.add_listener_arc(Arc::new(listener));
    }

    /// [`add_listener`](Self::add_listener) for a listener that is already shared.
    pub fn add_listener_arc(&self, listener: Arc<dyn LeaderLatchListener>) {
        self.inner.emitter.add_listener(listener);
    }

    /// Removes every listener. Transitions already queued for them are still delivered.
    pub fn clear_listeners(&self) {
        self.inner.emitter.clear_listeners();
    }

    /// The current leader, read from the latch node: `None` if there is none (no node, or a
    /// node that is not ephemeral and so belongs to no participant).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the latch is closed; the errors of
    /// [`Client::with_retry`](crate::Client::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn leader(&self) -> Result<Option<LatchLeader>> {
        if self.state() == LatchState::Closed {
            return Err(Error::Closed);
        }
        let leader = match self.layout() {
            LatchLayout::Race => self
                .inner
                .client
                .get_data(&self.inner.path)
                .await?
                .map(|(data, stat)| (String::from_utf8_lossy(&data).into_owned(), stat)),
            LatchLayout::Curator => self
                .queue(Vec::new())
                .first()
                .await?
                .map(|(first, stat)| (first.id, stat)),
        };
        Ok(match leader {
            Some((id, stat)) if stat.ephemeral_owner != 0 => Some(LatchLeader {
                id,
                session_id: SessionId(stat.ephemeral_owner),
            }),
            _ => None,
        })
    }

    /// Node watch events delivered to this latch so far; see
    /// [`LeaderLatchMetrics::watch_events`]. Summed over the followers and divided by the
    /// number of changes of leader, this is the herd.
    pub fn watch_events_received(&self) -> u64 {
        self.inner.counters.watch_events.load(Ordering::Relaxed)
    }

    /// This latch's counters.
    pub fn metrics(&self) -> LeaderLatchMetrics {
        let c = &self.inner.counters;
        LeaderLatchMetrics {
            watch_events: c.watch_events.load(Ordering::Relaxed),
            races: c.races.load(Ordering::Relaxed),
            elected: c.elected.load(Ordering::Relaxed),
        }
    }

    /// [`close_with`](Self::close_with)`(`[`CloseMode::Silent`]`)`, Curator's default.
    ///
    /// # Errors
    ///
    /// As [`close_with`](Self::close_with).
    ///
    /// # Cancel safety
    ///
    /// As [`close_with`](Self::close_with).
    pub async fn close(&self) -> Result<()> {
        self.close_with(CloseMode::Silent).await
    }

    /// Closes the latch: leadership is given up at once ([`is_leader`](Self::is_leader)
    /// is false when this is first polled), then the background task removes its watch,
    /// deletes the latch node if it is this latch's (a version-checked delete), and
    /// ends. Another latch can win only after the delete.
    ///
    /// Returns when the node is deleted, or after the connection timeout if it could not be
    /// deleted by then (the delete goes on in the background until it succeeds or the session
    /// ends, which deletes the node anyway).
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if the latch was never started;
    /// * [`Error::Closed`] if it is already closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the close has happened when the future is first polled; dropping it only
    /// stops waiting for the node's delete, which goes on in the background.
    pub async fn close_with(&self, mode: CloseMode) -> Result<()> {
        let task = {
            let mut lifecycle = self.lifecycle();
            match lifecycle.state {
                LatchState::Latent => {
                    return Err(Error::IllegalState("the leader latch is not started"))
                }
                LatchState::Closed => return Err(Error::Closed),
                LatchState::Started => {}
            }
            lifecycle.state = LatchState::Closed;
            lifecycle.task.take()
        };
        // Leadership goes first, before the node can go: never two leaders.
        self.inner.emitter.close(mode == CloseMode::NotifyLeader);
        self.inner.cancel.cancel();
        tracing::debug!(path = %self.inner.path, id = %self.inner.id, ?mode, "leader latch closing");
        if let Some(task) = task {
            if let Err(error) = task.await {
                tracing::error!(path = %self.inner.path, %error, "the leader latch task failed");
            }
        }
        Ok(())
    }
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        let mut lifecycle = self.lifecycle();
        if lifecycle.state == LatchState::Started {
            lifecycle.state = LatchState::Closed;
            // The task is detached: it deletes the node in the background and ends.
            lifecycle.task = None;
            drop(lifecycle);
            self.inner.emitter.close(false);
            self.inner.cancel.cancel();
            tracing::debug!(path = %self.inner.path, id = %self.inner.id, "leader latch dropped; closing in the background");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<LeaderLatch>();
        check::<LeadershipChanges>();
        check::<LeaderLatchMetrics>();
    }
}
