//! [`InterProcessMutex`]: a fair, reentrant distributed lock, on the same znodes as Apache
//! Curator's `InterProcessMutex`.
//!
//! # How it works
//!
//! Every contender creates an `EPHEMERAL_SEQUENTIAL` node `<path>/_c_<uuid>-lock-<seq10>` (the
//! Curator 5.x name, made with the protected create, under parents made as container nodes)
//! whose data is the participant id. The contender whose node has the lowest sequence holds
//! the lock; each of the others watches only its predecessor (a data watch), so a release
//! wakes exactly one contender. Children that do not end in `lock-<digits>` are ignored, so
//! foreign nodes under the path never block the lock. Java processes using Curator's
//! `InterProcessMutex` on the same path take part in the same queue, in the same order.
//!
//! ```no_run
//! # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
//! use std::time::Duration;
//! use zk_recipes::InterProcessMutex;
//!
//! let mutex = InterProcessMutex::new(&client, "/locks/orders")?.with_id("billing-7");
//!
//! // Wait as long as it takes …
//! let guard = mutex.acquire().await?;
//! // … write only while the lock node still exists (one atomic multi on the server) …
//! guard
//!     .guarded_set_data("/orders/next-id", b"42", None)
//!     .await?;
//! // … or stop working the moment the lock may be lost.
//! tokio::select! {
//!     _ = guard.lost() => tracing::warn!("lock may be lost; stopping"),
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => {}
//! }
//! guard.release().await?;
//!
//! // Or wait at most two seconds; `Duration::ZERO` tries once.
//! if let Some(guard) = mutex.try_acquire(Duration::from_secs(2)).await? {
//!     tracing::info!(token = guard.fencing_token(), "got the lock");
//!     // Dropping a guard releases it in the background.
//! }
//! # Ok(()) }
//! ```
//!
//! # Reentrancy: explicit, through the guard
//!
//! Every [`acquire`](InterProcessMutex::acquire) is a **separate holder**, whichever task
//! calls it: a second acquire waits for the first hold to be released, as with
//! `tokio::sync::Mutex`. That holds for futures polled concurrently in one task too
//! (`join!`, `select!` loops, `for_each_concurrent`, `buffer_unordered`): in async Rust one
//! task is not one holder, so the lock never counts a task as its owner.
//!
//! Reentrancy is asked for explicitly, by the code that holds the lock:
//! [`LockGuard::reenter`] returns another guard on the same hold, at once and without any
//! ZooKeeper operation. The node is deleted when the last guard of the hold is released or
//! dropped, from whatever task that happens in; guards are `Send + 'static`, so handing one to
//! a spawned task is fine.
//!
//! ```no_run
//! # async fn demo(mutex: zk_recipes::InterProcessMutex) -> zk_recipes::Result<()> {
//! let outer = mutex.acquire().await?;
//! let inner = outer.reenter(); // Curator's reentrant acquire: no ZooKeeper operation
//! assert_eq!(outer.fencing_token(), inner.fencing_token());
//! inner.release().await?; // the node stays: `outer` still holds
//! outer.release().await?; // the last guard: the node is deleted
//! # Ok(()) }
//! ```
//!
//! **Coming from Curator.** Curator's `InterProcessMutex` is reentrant per *thread*: a
//! thread that holds the lock and calls `acquire()` again gets it at once, and `release()`
//! must come from the owning thread. Async code has no such owner (one task may run several
//! holders at once, and a future may move between threads), so here the guard *is* the
//! ownership: where Curator code calls `acquire()` again, call `guard.reenter()`; where it calls
//! `release()`, release or drop that guard. Java and Rust participants still share one queue:
//! reentrancy never creates a node, on either side.
//!
//! # What "lost" means, and what fencing protects
//!
//! [`LockGuard::lost`] resolves, and [`LockGuard::is_lost`] turns true, as soon as the lock
//! **may** no longer be held:
//!
//! * the connection was [`Suspended`](crate::ConnectionState::Suspended) at any time since
//!   the grant (even if it came back: while it was down, the session may have expired and
//!   another process taken the lock, and this process could not know);
//! * the session was [`Lost`](crate::ConnectionState::Lost) (expired, or suspended for
//!   longer than the session timeout), which deletes the node;
//! * the lock node was deleted by someone else (a watch on it reports the deletion);
//! * a guarded write found the node gone, or every guard of the hold was released.
//!
//! The signal is conservative: it may fire while the node still exists (a short suspension),
//! but it is never late by more than the time it takes this client to notice a broken
//! connection or a watch event. Once fired, it stays fired; acquire again for a new hold.
//!
//! A lost hold is still *in use* until its last guard is released or dropped: while it is, no
//! other acquire through the same [`Client`] is granted the lock, even once the lost node is
//! gone from the queue. Holders on other clients (in this process or another) cannot know, and
//! go ahead. So release or drop a lost guard promptly.
//!
//! A lost signal cannot stop work that is already in flight: a process may be paused (GC,
//! swap, a slow disk) between checking it and acting on a shared resource, while its session
//! expires and another process takes the lock. Two tools close that gap:
//!
//! * [`LockGuard::fencing_token`] is the lock node's `czxid`: unique, and strictly larger for
//!   every later grant across the whole ensemble. A resource that remembers the largest token
//!   it has seen and refuses smaller ones is protected from a paused former holder, **if the
//!   resource checks it**: the token protects nothing by itself.
//! * The guarded writes ([`LockGuard::guarded`], [`guarded_set_data`](LockGuard::guarded_set_data),
//!   [`guarded_create`](LockGuard::guarded_create), [`guarded_delete`](LockGuard::guarded_delete))
//!   send one `multi` that checks the lock node exists and applies the write, atomically, on
//!   the lock's own session: a write to ZooKeeper made this way commits only while the lock is
//!   held. They do not consult the conservative lost signal (after a short suspension on the
//!   same session, the node still exists and the write commits).
//!
//! # Revocation
//!
//! [`InterProcessMutex::make_revocable`] and [`Revoker::attempt_revoke`] follow Curator's
//! protocol: a revoker sets a holder's node data to [`REVOKE_MESSAGE`] (`__REVOKE__`), and the
//! holder's [`RevocationListener`] is called (also while it still waits in the queue, as in
//! Curator; once per request). Releasing is up to the holder; the listener only asks. Java and Rust processes can revoke each other's holds. (Curator writes **empty** lock
//! node data for a revocable lock, so a revocable Java participant shows an empty id; this
//! crate keeps the id either way.)
//!
//! # Cancel safety
//!
//! Every acquiring method is cancel safe at every await point: if its future is dropped, the
//! node it created (or may have created, when a connection loss hid the create's answer) is
//! deleted in the background, and a grant that races with the drop is released. Unlike
//! zookeeper-client's own `Client::lock`, no node is left behind to block the queue.

mod guard;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client::Acl;

use crate::connection::ProtectedNode;
use crate::connection::{Client, Session};
use crate::error::{Error, Result};
use crate::participant::default_participant_id;
use crate::path::{validate_path, validate_recipe_path};
use crate::queue::{
    CreateAhead, Held, Incarnation, LockMode, LostSignal, NodeNames, Participant, SentAhead,
    SequentialQueue, Wait, LEASE_NAMES, LOCK_NAMES, READ_WRITE_NAMES,
};
use crate::sync::Locked;

pub(crate) use self::guard::guarded_by;
pub use self::guard::LockGuard;

/// The data a revoker writes to a holder's lock node to ask for the lock (Curator's
/// `LockInternals.REVOKE_MESSAGE`).
pub const REVOKE_MESSAGE: &[u8] = b"__REVOKE__";

/// Told when another process asks for a held lock by writing [`REVOKE_MESSAGE`] to its node
/// (Curator's `RevocationListener`). Set with [`InterProcessMutex::make_revocable`].
///
/// It is called on a background task of the client and must not block: hand the request to
/// the task that holds the lock (a channel, a `CancellationToken`), which then releases.
/// Closures `Fn(&RevocationRequest)` implement it.
pub trait RevocationListener: Send + Sync + 'static {
    /// Another process asked for the lock held through `request.node_path()`.
    fn revocation_requested(&self, request: &RevocationRequest);
}

impl<F> RevocationListener for F
where
    F: Fn(&RevocationRequest) + Send + Sync + 'static,
{
    fn revocation_requested(&self, request: &RevocationRequest) {
        self(request)
    }
}

/// A request to give up a held lock, handed to a [`RevocationListener`].
#[derive(Debug, Clone)]
pub struct RevocationRequest {
    mutex: InterProcessMutex,
    node_path: String,
    fencing_token: u64,
}

impl RevocationRequest {
    /// The mutex whose hold is asked for.
    pub fn mutex(&self) -> &InterProcessMutex {
        &self.mutex
    }

    /// The full path of the lock node whose data was set to [`REVOKE_MESSAGE`].
    pub fn node_path(&self) -> &str {
        &self.node_path
    }

    /// The fencing token of the hold asked for (see [`LockGuard::fencing_token`]), to tell
    /// which of several holds of one handle it is. For a request that came while waiting, it
    /// is the token the hold will have if it is granted.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }
}

/// Asks the holder of a lock to release it (Curator's `Revoker`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Revoker;

impl Revoker {
    /// Sets the data of the lock node `node_path` to [`REVOKE_MESSAGE`], as Curator's
    /// `Revoker.attemptRevoke` does. The holder is asked, not forced: only a holder whose
    /// mutex was [made revocable](InterProcessMutex::make_revocable) hears of it, and it
    /// decides whether to release. A node that no longer exists is not an error.
    ///
    /// `node_path` is a lock node, for instance from
    /// [`InterProcessMutex::participants`] (joined to the mutex path) or
    /// [`LockGuard::node_path`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`], [`Error::NoAuth`], and the errors of
    /// [`Client::with_retry`] when the retry policy gives up.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the request may be written even if the future is dropped.
    pub async fn attempt_revoke(client: &Client, node_path: &str) -> Result<()> {
        validate_path(node_path)?;
        match client.set_data(node_path, REVOKE_MESSAGE, None).await {
            Ok(_) | Err(Error::ZooKeeper(zookeeper_client::Error::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A fair, reentrant distributed lock: Curator's `InterProcessMutex`, wire-compatible with it.
///
/// See the [module documentation](self) for the protocol, the reentrancy rules, what "lost"
/// means and what fencing protects.
///
/// The handle is cheap to clone; clones share one queue, whose waiters share one driver
/// task. Every acquire through it, from any task, is a separate holder.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::InterProcessMutex;
///
/// let mutex = InterProcessMutex::new(&client, "/locks/orders")?;
/// let outer = mutex.acquire().await?;
/// let inner = outer.reenter(); // reentrant: no ZooKeeper operation
/// assert_eq!(outer.fencing_token(), inner.fencing_token());
/// inner.release().await?; // the node stays
/// outer.release().await?; // the last guard: the node is deleted
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct InterProcessMutex {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    path: String,
    acls: Vec<Acl>,
    id: String,
    role: Role,
    queue: Arc<SequentialQueue>,
    /// The holds granted through this handle (and its clones) and not yet released.
    holds_in_process: AtomicUsize,
    revocation: Mutex<Option<Arc<dyn RevocationListener>>>,
}

/// Which lock a handle is: Curator's mutex, or a half of its read/write lock (whose halves are
/// mutexes too, in Curator as here, so that either can take part wherever a mutex can).
#[derive(Clone)]
enum Role {
    /// An `InterProcessMutex` of its own: `lock-` nodes.
    Mutex,
    /// The read lock of an [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock).
    Read,
    /// The write lock of an [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock),
    /// with its read lock, for downgrades.
    Write { read: InterProcessMutex },
    /// The leases of a [semaphore](crate::locks::semaphore): never acquired through the queue, only
    /// adopted once the semaphore has proven them (see [`InterProcessMutex::adopt`]).
    Leases,
}

impl Role {
    fn mode(&self) -> LockMode {
        match self {
            Role::Read | Role::Leases => LockMode::Shared,
            Role::Mutex | Role::Write { .. } => LockMode::Exclusive,
        }
    }

    fn names(&self) -> NodeNames {
        match self {
            Role::Mutex => LOCK_NAMES,
            Role::Read | Role::Write { .. } => READ_WRITE_NAMES,
            Role::Leases => LEASE_NAMES,
        }
    }

    /// Whether a participant of the queue is one of this lock's (Curator's
    /// `getParticipantNodes`: a read/write lock's halves list their own nodes only).
    fn lists(&self, participant: &Participant) -> bool {
        match self {
            Role::Mutex | Role::Leases => true,
            Role::Read | Role::Write { .. } => participant.mode == self.mode(),
        }
    }
}

/// One node held through this handle, shared by the guards [`LockGuard::reenter`] made.
struct SharedHold {
    /// The node, and the number of guards still holding it; the node is `None` once the last
    /// guard is released.
    guards: Mutex<Guards>,
    lost: LostSignal,
    /// Cancelled when the hold ends (its last guard released) or a guarded write found its
    /// node gone.
    ended: CancellationToken,
    node_path: String,
    node_name: String,
    fencing_token: u64,
    session: Arc<Session>,
}

struct Guards {
    held: Option<Held>,
    count: usize,
}

impl SharedHold {
    /// Gives back one guard; the node to release when it was the last.
    fn give_back(&self) -> Option<Held> {
        let mut guards = self.guards.locked();
        guards.count -= 1;
        if guards.count > 0 {
            return None;
        }
        self.ended.cancel();
        guards.held.take()
    }
}

impl std::fmt::Debug for InterProcessMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterProcessMutex")
            .field("path", &self.inner.path)
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl InterProcessMutex {
    /// A mutex on `path`, with the default participant id (`hostname/pid`) and the client's
    /// default ACLs. Nothing is sent to ZooKeeper until the first acquire.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if `path` is not a usable znode path (empty, relative, `/`,
    /// under `/zookeeper`, or with characters ZooKeeper refuses).
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        validate_recipe_path(path)?;
        Ok(Self::build(
            client.clone(),
            path.to_owned(),
            Vec::new(),
            default_participant_id().to_owned(),
            None,
            Role::Mutex,
        ))
    }

    /// The read lock and the write lock of a read/write lock on `path` (validated by the
    /// caller), with participant id `id` and `acls`.
    pub(crate) fn read_write_pair(
        client: &Client,
        path: &str,
        acls: Vec<Acl>,
        id: String,
    ) -> (Self, Self) {
        let read = Self::build(
            client.clone(),
            path.to_owned(),
            acls.clone(),
            id.clone(),
            None,
            Role::Read,
        );
        let write = Self::build(
            client.clone(),
            path.to_owned(),
            acls,
            id,
            None,
            Role::Write { read: read.clone() },
        );
        (read, write)
    }

    /// The holder of a semaphore's leases under `path` (see [`adopt`](Self::adopt)).
    pub(crate) fn lease_holder(client: &Client, path: &str, acls: Vec<Acl>, id: String) -> Self {
        Self::build(
            client.clone(),
            path.to_owned(),
            acls,
            id,
            None,
            Role::Leases,
        )
    }

    /// Makes `node`, a node of ours made outside the queue's acquire and proven held (a
    /// downgrade's read node, a semaphore's lease), a hold with one guard (see
    /// `SequentialQueue::adopt`), unless the session was interrupted since
    /// `interruptions_at_grant`: the hold may be lost already, so it is given back.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] in that case; the node is released.
    pub(crate) async fn adopt(
        &self,
        node: ProtectedNode,
        incarnation: Incarnation,
        interruptions_at_grant: u64,
    ) -> Result<LockGuard> {
        let held = self
            .inner
            .queue
            .adopt(node, incarnation, interruptions_at_grant);
        let guard = self.install(held);
        if guard.is_lost() {
            let _ = Box::pin(guard.release()).await;
            return Err(Error::LockLost);
        }
        Ok(guard)
    }

    fn build(
        client: Client,
        path: String,
        acls: Vec<Acl>,
        id: String,
        revocation: Option<Arc<dyn RevocationListener>>,
        role: Role,
    ) -> Self {
        let queue = SequentialQueue::new_lock(&client, path.clone(), acls.clone(), role.names());
        let mutex = Self {
            inner: Arc::new(Inner {
                client,
                path,
                acls,
                id,
                role,
                queue,
                holds_in_process: AtomicUsize::new(0),
                revocation: Mutex::new(None),
            }),
        };
        if let Some(listener) = revocation {
            mutex.install_revocation(listener);
        }
        mutex
    }

    /// Sets the participant id, the lock node's data: what [`participants`](Self::participants)
    /// (and Curator's `getParticipantNodes` readers) show for this process. Any string, the
    /// empty one too; the default is [`default_participant_id`] (see
    /// [ids](crate::participant)).
    ///
    /// A builder method: it returns a new handle that shares nothing with earlier clones, so
    /// call it before using the mutex. An id that would make the lock node's create larger
    /// than the client's [`max_request_size`](Client::max_request_size) makes acquires fail
    /// with [`Error::InvalidArgument`], before anything is sent.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let mutex = zk_recipes::InterProcessMutex::new(&client, "/locks/billing")?.with_id("billing-7");
    /// assert_eq!(mutex.id(), "billing-7");
    /// # Ok(()) }
    /// ```
    pub fn with_id(self, id: impl Into<String>) -> Self {
        self.rebuilt(self.inner.acls.clone(), id.into())
    }

    /// Sets whether this handle's waiters watch the whole lock path, with one persistent
    /// recursive watch per handle (the default, on ZooKeeper 3.6 and later), or only each its
    /// predecessor, as Curator's waiters do.
    ///
    /// # Behavior
    ///
    /// With the watch, a waiter near the head of the queue is granted on the watch event that
    /// removes the last node before it, with no read after the event (a watch on its own node,
    /// set while it waits, proves it still there), and a contended acquisition costs three
    /// requests (its create, that watch and its delete), against Curator's five. The watch is
    /// set, with a listing in the same round trip, when a waiter of the handle first has to
    /// wait on another session's node, and removed once a second passes with no waiter. While
    /// it is set, every creation and deletion under the lock path is one event to this
    /// session: with many sessions contending for one lock, that fan-out costs the server more
    /// than the listing it saves, which is why waiters deeper than 16 nodes do not use it (nor
    /// waiters right behind the holder, who need no read after the event anyway), and why it
    /// can be turned off.
    ///
    /// # Servers
    ///
    /// * Before 3.6, a server answers `addWatch` with `Unimplemented` and closes the
    ///   connection that sent it: the client reconnects (a `Suspended`, then `Reconnected`, and
    ///   the locks it holds report lost). That happens once per [`Client`]; its waiters then
    ///   watch their predecessors. Turn the watch off for such servers.
    /// * Before 3.9, a server keeps one watch mode per path and session (ZOOKEEPER-4466): another
    ///   watch that the same client sets on the lock path itself (not below it) changes the
    ///   recursive watch's mode, and its events stop. Waiters then wait until something else
    ///   wakes them (never a grant without proof: their own node's presence is proven by the
    ///   watch on it). Turn the watch off on a handle whose client watches its lock path itself.
    ///
    /// A builder method, like [`with_id`](Self::with_id).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// // Hundreds of sessions on one lock: watch predecessors only.
    /// let mutex = zk_recipes::InterProcessMutex::new(&client, "/locks/billing")?
    ///     .with_recursive_watch(false);
    /// # drop(mutex);
    /// # Ok(()) }
    /// ```
    pub fn with_recursive_watch(self, on: bool) -> Self {
        let mutex = self.rebuilt(self.inner.acls.clone(), self.inner.id.clone());
        mutex.inner.queue.set_feeds_view(on);
        mutex
    }

    /// Sets [`with_recursive_watch`](Self::with_recursive_watch) on this handle and its clones
    /// (the semaphore's internal lock, which no one else shares).
    pub(crate) fn set_recursive_watch(&self, on: bool) {
        self.inner.queue.set_feeds_view(on);
    }

    /// Whether this handle's waiters may watch the whole lock path (see
    /// [`with_recursive_watch`](Self::with_recursive_watch)).
    pub(crate) fn recursive_watch(&self) -> bool {
        self.inner.queue.feeds_view()
    }

    /// A new handle like this one, with `acls` and `id`, sharing nothing with it.
    fn rebuilt(&self, acls: Vec<Acl>, id: String) -> Self {
        let revocation = self.inner.revocation.locked().clone();
        let role = match &self.inner.role {
            Role::Write { read } => Role::Write {
                read: read.rebuilt(acls.clone(), id.clone()),
            },
            other => other.clone(),
        };
        let mutex = Self::build(
            self.inner.client.clone(),
            self.inner.path.clone(),
            acls,
            id,
            revocation,
            role,
        );
        mutex.inner.queue.set_feeds_view(self.recursive_watch());
        mutex
    }

    /// Sets the ACLs of the lock nodes and of the parents this mutex creates (empty: the
    /// client's [default ACLs](crate::ClientBuilder::default_acls)).
    ///
    /// A builder method, like [`with_id`](Self::with_id).
    pub fn with_acls(self, acls: Vec<Acl>) -> Self {
        self.rebuilt(acls, self.inner.id.clone())
    }

    /// The lock path, under which the lock nodes are created.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The participant id this handle writes into its lock nodes.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn acls(&self) -> &[Acl] {
        &self.inner.acls
    }

    /// Every node of the queue, of either half of a read/write lock.
    pub(crate) async fn all_participants(&self) -> Result<Vec<Participant>> {
        self.inner.queue.participants().await
    }

    /// Waits for the lock, as long as it takes, and returns a guard for it.
    ///
    /// Every call is a separate holder: a call made while this process (any task, or another
    /// future of the same task) holds the lock waits for that hold to be released. For a
    /// reentrant acquire, use [`LockGuard::reenter`].
    ///
    /// If the waiting node is lost (its session expired, or someone deleted it), the wait
    /// goes on with a new node at the back of the queue, on the client's current session, as
    /// often as the client's retry policy allows. A node that is gone is never granted.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`] if the lock node's create would exceed the client's
    ///   [`max_request_size`](Client::max_request_size) (a long path or id), before anything is
    ///   sent;
    /// * [`Error::NoAuth`] if an ACL forbids creating the lock node or its parents;
    /// * [`Error::ZooKeeper`] with `NoChildrenForEphemerals` if the lock path is an ephemeral
    ///   node;
    /// * [`Error::ConnectionLoss`] when the retry policy gives up on creating the node;
    /// * [`Error::NodeDeleted`] or [`Error::SessionExpired`] when the waiting node was lost
    ///   more often than the retry policy allows joining again;
    /// * [`Error::Closed`] once the client is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point: dropping the future leaves no node behind (it is
    /// deleted in the background), and a grant that races with the drop is released.
    pub async fn acquire(&self) -> Result<LockGuard> {
        match self.acquire_with(Wait::Forever).await? {
            Some(guard) => Ok(guard),
            // An unbounded wait ends only with the lock or an error.
            None => Err(Error::IllegalState(
                "an unbounded acquire ended without the lock",
            )),
        }
    }

    /// Waits for the lock at most `timeout`: `Ok(None)` if it was not granted in time (and
    /// the node made for the attempt is deleted). `Duration::ZERO` tries once: the lock is
    /// granted only if nobody holds it or waits for it.
    ///
    /// A separate holder, like [`acquire`](Self::acquire).
    ///
    /// The timeout bounds the wait in the queue, including the node's creation; a create in
    /// flight at the deadline is abandoned and its node deleted in the background.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point, as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        let wait = if timeout.is_zero() {
            Wait::Once
        } else {
            Wait::Until(tokio::time::Instant::now() + timeout)
        };
        self.acquire_with(wait).await
    }

    /// Waits for the lock as `wait` says. The create checks the request's size before
    /// anything is sent.
    pub(crate) async fn acquire_with(&self, wait: Wait) -> Result<Option<LockGuard>> {
        let acquired = self.acquire_creating_ahead(wait, None).await?;
        Ok(acquired.map(|(guard, _)| guard))
    }

    /// [`acquire_with`](Self::acquire_with), with `create_ahead`'s node made as soon as the
    /// lock is granted, in the round trip of the listing that grants it when a listing does
    /// (see [`CreateAhead`]): the guard, and that create when it went out with the grant (the
    /// caller makes the node otherwise).
    pub(crate) async fn acquire_creating_ahead(
        &self,
        wait: Wait,
        create_ahead: Option<CreateAhead>,
    ) -> Result<Option<(LockGuard, Option<SentAhead>)>> {
        let inner = &self.inner;
        let data = inner.id.as_bytes();
        let acquired = inner
            .queue
            .acquire_in(inner.role.mode(), data, wait, create_ahead);
        Ok(acquired
            .await?
            .map(|(held, sent_ahead)| (self.install(held), sent_ahead)))
    }

    /// Makes a fresh grant a hold with one guard.
    fn install(&self, held: Held) -> LockGuard {
        let node = held.node();
        let hold = Arc::new(SharedHold {
            lost: held.lost_signal(),
            ended: CancellationToken::new(),
            node_path: node.path.clone(),
            node_name: node.name.clone(),
            fencing_token: held.fencing_token(),
            session: node.session.clone(),
            guards: Mutex::new(Guards {
                held: Some(held),
                count: 1,
            }),
        });
        self.inner.holds_in_process.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(path = %self.inner.path, node = %hold.node_name, token = hold.fencing_token, "lock acquired");
        LockGuard {
            inner: self.inner.clone(),
            hold,
            active: true,
        }
    }

    /// True if a hold granted through this handle (or a clone) has not been released yet, as
    /// far as this process knows (Curator's `isAcquiredInThisProcess`). It says nothing of
    /// whether the hold is [lost](LockGuard::is_lost).
    pub fn is_acquired_in_this_process(&self) -> bool {
        self.inner.holds_in_process.load(Ordering::SeqCst) > 0
    }

    /// Every participant in queue order, from every process (Java ones included): the first
    /// holds the lock. Each one's `id` is its lock node's data.
    ///
    /// For a half of an [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock), only
    /// that half's nodes, as in Curator (the read lock's holders are its participants with
    /// `is_leader`); [`InterProcessReadWriteLock::participants`](crate::InterProcessReadWriteLock::participants)
    /// lists both.
    ///
    /// # Errors
    ///
    /// [`Error::NoAuth`] and the errors of [`Client::with_retry`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        let mut participants = self.inner.queue.participants().await?;
        participants.retain(|p| self.inner.role.lists(p));
        Ok(participants)
    }

    /// Makes acquires started from now on revocable: `listener` is called when another
    /// process sets the data of our lock node to [`REVOKE_MESSAGE`] (see
    /// [`Revoker::attempt_revoke`]; Curator's `makeRevocable`). Replaces an earlier listener.
    ///
    /// As in Curator, a request that comes while an acquire still waits in the queue reaches
    /// the listener while it waits (cancel the acquire to give up the place); one that comes
    /// while the lock is held reaches it then. Each request (each write of the node's data)
    /// is delivered once: one made while waiting is not delivered again at the grant. A
    /// panic in the listener is caught and logged; the hold's lost signal keeps working.
    pub fn make_revocable(&self, listener: impl RevocationListener) {
        self.install_revocation(Arc::new(listener));
    }

    fn install_revocation(&self, listener: Arc<dyn RevocationListener>) {
        *self.inner.revocation.locked() = Some(listener.clone());
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        self.inner.queue.set_data_listener(Some(Arc::new(
            move |path: &str, token: u64, data: &[u8]| {
                if data != REVOKE_MESSAGE {
                    return;
                }
                let Some(inner) = weak.upgrade() else { return };
                tracing::debug!(node = %path, "revocation requested");
                let request = RevocationRequest {
                    mutex: InterProcessMutex { inner },
                    node_path: path.to_owned(),
                    fencing_token: token,
                };
                listener.revocation_requested(&request);
            },
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_and_handle_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<LockGuard>();
        check::<InterProcessMutex>();
        check::<RevocationRequest>();
    }

    #[test]
    fn revoke_message_is_curators() {
        assert_eq!(REVOKE_MESSAGE, "__REVOKE__".as_bytes());
    }
}
