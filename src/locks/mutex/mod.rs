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

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acl, CreateMode, MultiWriteError, MultiWriteResult, MultiWriter, Stat};

use crate::connection::ProtectedNode;
use crate::connection::{Client, Session};
use crate::error::{Error, Result};
use crate::participant::default_participant_id;
use crate::path::{validate_path, validate_recipe_path};
use crate::queue::{
    Held, Incarnation, LockMode, LostSignal, NodeNames, Participant, SequentialQueue, Wait,
    LEASE_NAMES, LOCK_NAMES, READ_WRITE_NAMES,
};
use crate::sync::Locked;

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
        let queue = SequentialQueue::new(&client, path.clone(), acls.clone(), role.names());
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

    /// A new handle like this one, with `acls` and `id`, sharing nothing with it.
    fn rebuilt(&self, acls: Vec<Acl>, id: String) -> Self {
        let revocation = self.inner.revocation.locked().clone();
        let role = match &self.inner.role {
            Role::Write { read } => Role::Write {
                read: read.rebuilt(acls.clone(), id.clone()),
            },
            other => other.clone(),
        };
        Self::build(
            self.inner.client.clone(),
            self.inner.path.clone(),
            acls,
            id,
            revocation,
            role,
        )
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
        let inner = &self.inner;
        let held = inner
            .queue
            .acquire_in(inner.role.mode(), inner.id.as_bytes(), wait)
            .await?;
        Ok(held.map(|held| self.install(held)))
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

async fn release_held(path: &str, held: Option<Held>) -> Result<()> {
    let Some(held) = held else { return Ok(()) };
    let node = held.node().name.clone();
    match held.release().await {
        Ok(()) => {
            tracing::debug!(%path, %node, "lock released");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(%path, %node, error = %e, "releasing the lock failed; the node is deleted in the background");
            Err(e)
        }
    }
}

/// A hold of an [`InterProcessMutex`] (or of a half of an
/// [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock)). Made by
/// [`acquire`](InterProcessMutex::acquire), [`try_acquire`](InterProcessMutex::try_acquire),
/// [`reenter`](LockGuard::reenter) and [`downgrade`](LockGuard::downgrade); a
/// [`MultiLockGuard`](crate::MultiLockGuard)'s parts are guards too.
///
/// Release it with [`release`](Self::release), or drop it (the release then runs in the
/// background); the lock node is deleted when the last guard of the hold goes. The guard owns
/// what it needs: it is `Send` and `'static`, outlives the handle it came from, and may be
/// released or dropped in any task.
#[must_use = "dropping the guard releases the lock at once, in the background"]
pub struct LockGuard {
    inner: Arc<Inner>,
    hold: Arc<SharedHold>,
    /// False once released: drop then does nothing.
    active: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("node", &self.hold.node_path)
            .field("fencing_token", &self.hold.fencing_token)
            .field("lost", &self.is_lost())
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The fencing token: the lock node's `czxid`. Unique, and larger for every later grant of
    /// the lock (and for every later write of the ensemble). All guards of one hold share it.
    ///
    /// It protects a resource only if the resource checks it: remember the largest token
    /// seen and refuse requests with a smaller one.
    pub fn fencing_token(&self) -> u64 {
        self.hold.fencing_token
    }

    /// The full path of the lock node (under the client's namespace).
    pub fn node_path(&self) -> &str {
        &self.hold.node_path
    }

    /// The lock node's name: `_c_<uuid>-lock-<seq10>` for a mutex,
    /// `_c_<uuid>-__READ__<seq10>` or `_c_<uuid>-__WRIT__<seq10>` for a read/write lock, and
    /// `_c_<uuid>-lease-<seq10>` for a semaphore mutex's part of a multi-lock.
    pub fn node_name(&self) -> &str {
        &self.hold.node_name
    }

    /// The path this guard's node is under: the mutex's (or the read/write lock's) path, or,
    /// for a semaphore mutex's part of a multi-lock, `<its path>/leases`.
    pub fn mutex_path(&self) -> &str {
        &self.inner.path
    }

    /// The session the lock node lives on.
    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.hold.session
    }

    /// [`Shared`](LockMode::Shared) for a read hold of an
    /// [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock) and for a semaphore's
    /// lease (a semaphore mutex's part of a multi-lock), else
    /// [`Exclusive`](LockMode::Exclusive).
    pub fn mode(&self) -> LockMode {
        self.inner.role.mode()
    }

    /// Takes a read hold at once, while this write hold of an
    /// [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock) still holds: the first
    /// step of a downgrade (Curator's "acquire the read lock while holding the write lock").
    /// Release this guard (and every guard [`reenter`](Self::reenter) made from it) to finish
    /// the downgrade; the read hold stays.
    ///
    /// ```no_run
    /// # async fn demo(lock: zk_recipes::InterProcessReadWriteLock) -> zk_recipes::Result<()> {
    /// let write = lock.write_lock().acquire().await?;
    /// // … write …
    /// let read = write.downgrade().await?;
    /// write.release().await?; // no writer can get in between
    /// // … read what was written …
    /// read.release().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Behavior
    ///
    /// The read node is made in one transaction with a check that the write node exists, on
    /// the write node's session, so it exists only if the write hold did at that moment. It is
    /// named after the write node's sequence (`_c_<uuid>-__READ__<the write node's seq10>`),
    /// not given a new one: a writer that queued behind the write hold stays behind the read
    /// hold too. (Curator 5.4 gives the read node a new sequence, and the queued writer gets in
    /// while the read hold lasts: CURATOR-276, fixed in Curator 5.5 by the same naming.)
    ///
    /// # Errors
    ///
    /// * [`Error::NotDowngradable`] if this guard is not a write hold of a read/write lock (a
    ///   read hold cannot be upgraded, nor a plain mutex's hold downgraded);
    /// * [`Error::LockLost`] if the write hold is lost (or [may be](Self::is_lost)), or was
    ///   fully released: no read hold was taken;
    /// * [`Error::InvalidArgument`] if the read node's create would exceed the client's
    ///   [`max_request_size`](Client::max_request_size);
    /// * [`Error::NoAuth`], and the errors of [`Client::with_retry`] when the retry policy
    ///   gives up on a connection loss.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, a read node it may have made is deleted in the
    /// background, and the write hold is untouched.
    pub async fn downgrade(&self) -> Result<LockGuard> {
        let Role::Write { read } = &self.inner.role else {
            return Err(Error::NotDowngradable);
        };
        if self.is_lost() {
            return Err(Error::LockLost);
        }
        let (incarnation, interruptions_at_grant) = {
            let guards = self.hold.guards.locked();
            let Some(held) = &guards.held else {
                return Err(Error::LockLost);
            };
            (held.incarnation(), held.interruptions_at_grant())
        };
        let Some((sequence, _)) = READ_WRITE_NAMES.parse(&self.hold.node_name) else {
            return Err(Error::NotDowngradable);
        };
        let read_name = READ_WRITE_NAMES.name(LockMode::Shared).unwrap_or_default();
        let node = self
            .inner
            .client
            .create_while(
                &self.hold.session,
                &self.hold.node_path,
                &read.inner.path,
                &format!("{read_name}{sequence:010}"),
                read.inner.id.as_bytes(),
                CreateMode::Ephemeral,
                &read.inner.acls,
            )
            .await?;
        // A connection drop since the write hold's grant (during the transaction, say) may
        // have lost the write hold, and a read hold made under it with it: `adopt` gives it
        // back.
        let downgraded = read
            .adopt(node, incarnation, interruptions_at_grant)
            .await?;
        tracing::debug!(path = %self.inner.path, node = %self.hold.node_name, "write hold downgraded");
        Ok(downgraded)
    }

    /// True once the lock may be lost; see the [module docs](self) for exactly when.
    pub fn is_lost(&self) -> bool {
        self.hold.ended.is_cancelled() || self.hold.lost.is_lost()
    }

    /// Asks ZooKeeper whether this hold is still good: a `sync`, then a read of the lock node,
    /// which must still be the node of this hold (its czxid is the fencing token) and owned by
    /// the hold's session. For a careful holder, right before an irreversible action.
    ///
    /// It costs one round trip and a sync, where [`is_lost`](Self::is_lost) costs nothing but
    /// may fire while the node still exists (a short suspension). It answers `false` on any
    /// doubt: the hold released, the session lost, the connection down, an error (a trace
    /// event says why). A `true` is a fact about the moment of the read, not a promise: for a
    /// write that must not outlive the lock, use [`guarded`](Self::guarded).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn verify(&self) -> bool {
        if self.hold.ended.is_cancelled() {
            return false;
        }
        self.hold
            .session
            .verifies_node(&self.hold.node_path, self.hold.fencing_token as i64)
            .await
    }

    /// Resolves when the lock may be lost (at once if it already may be); see the
    /// [module docs](self). The future owns what it needs (`'static`), so it can be moved
    /// into another task or kept in a `select!` next to the guarded work.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let lost = self.hold.lost.wait();
        let ended = self.hold.ended.clone();
        async move {
            tokio::select! {
                _ = lost => {}
                _ = ended.cancelled() => {}
            }
        }
    }

    /// Another guard on this guard's hold: Curator's reentrant acquire, asked for explicitly.
    /// At once, with no ZooKeeper operation; the lock node stays until every guard of the
    /// hold is released or dropped. The new guard shares the fencing token and the lost
    /// signal (a lost hold gives lost guards).
    ///
    /// ```no_run
    /// # async fn demo(mutex: zk_recipes::InterProcessMutex) -> zk_recipes::Result<()> {
    /// async fn update(guard: &zk_recipes::LockGuard) -> zk_recipes::Result<()> {
    ///     // A helper that needs its own guard, called by a holder.
    ///     let nested = guard.reenter();
    ///     nested.guarded_set_data("/orders/next-id", b"44", None).await?;
    ///     nested.release().await
    /// }
    /// let guard = mutex.acquire().await?;
    /// update(&guard).await?;
    /// guard.release().await?; // the last guard: the node is deleted
    /// # Ok(()) }
    /// ```
    pub fn reenter(&self) -> LockGuard {
        let mut guards = self.hold.guards.locked();
        // This guard is active, so the hold has at least its count.
        guards.count += 1;
        tracing::trace!(path = %self.inner.path, guards = guards.count, "reentered a held lock");
        drop(guards);
        LockGuard {
            inner: self.inner.clone(),
            hold: self.hold.clone(),
            active: true,
        }
    }

    /// Releases this guard; the last guard of the hold deletes the lock node. Any task may
    /// call it.
    ///
    /// # Errors
    ///
    /// The error of the delete, when it fails: the node is then deleted in the background,
    /// retried for as long as its session lives (it is never forgotten), and the lock is no
    /// longer held by this process.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the guard is given back when the future is first polled, and the delete
    /// runs to completion in the background even if the future is dropped.
    pub async fn release(mut self) -> Result<()> {
        self.active = false;
        let held = self.give_back();
        release_held(&self.inner.path, held).await
    }

    /// Gives back this guard's count: the node to release when it was the last.
    fn give_back(&self) -> Option<Held> {
        let held = self.hold.give_back()?;
        self.inner.holds_in_process.fetch_sub(1, Ordering::SeqCst);
        Some(held)
    }

    /// Runs a write that commits only while the lock node exists: one ZooKeeper `multi`, on
    /// the lock's own session, that checks the lock node first and then applies the
    /// operations `build` adds. Returns the results of `build`'s operations.
    ///
    /// ```no_run
    /// # async fn demo(guard: zk_recipes::LockGuard) -> zk_recipes::Result<()> {
    /// guard
    ///     .guarded(|writer| {
    ///         writer.add_set_data("/orders/next-id", b"43", None)?;
    ///         writer.add_delete("/orders/pending/42", None)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// * [`Error::LockLost`] if the lock node is gone (the hold is then lost), if the hold was
    ///   fully released, or if the lock's session is lost: nothing was written;
    /// * [`Error::ConnectionLoss`] if the connection dropped before the answer: the write may
    ///   or may not have been applied, but if it was, the lock node existed at that moment;
    /// * the error of the first failing operation of `build`'s (e.g. [`Error::ZooKeeper`]
    ///   with `BadVersion` or `NoNode`, [`Error::NoAuth`]): nothing was written;
    /// * the error `build` returns, before anything is sent.
    ///
    /// The conservative [lost signal](Self::is_lost) is not consulted: after a short
    /// suspension on the same session the node still exists, and the write commits.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped (but only
    /// while the lock node exists).
    pub async fn guarded<F>(&self, build: F) -> Result<Vec<MultiWriteResult>>
    where
        F: FnOnce(&mut MultiWriter<'_>) -> std::result::Result<(), zookeeper_client::Error>,
    {
        guarded_by(std::slice::from_ref(self), build).await
    }

    /// Sets `path`'s data only while the lock is held: [`guarded`](Self::guarded) with one
    /// `set_data`. `version` as in ZooKeeper (`None`: any version). Returns the new stat.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`], then as [`guarded`](Self::guarded) (`NoNode` or `BadVersion`
    /// for `path` come as [`Error::ZooKeeper`]).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`guarded`](Self::guarded).
    pub async fn guarded_set_data(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<Stat> {
        validate_path(path)?;
        let mut results = self
            .guarded(|writer| writer.add_set_data(path, data, version))
            .await?;
        match results.pop() {
            Some(MultiWriteResult::SetData { stat }) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// Creates `path` only while the lock is held: [`guarded`](Self::guarded) with one
    /// create, with the client's default ACLs. Returns the created path (with the sequence,
    /// for sequential modes).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`], then as [`guarded`](Self::guarded) (`NodeExists`, or `NoNode`
    /// for a missing parent, come as [`Error::ZooKeeper`]).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`guarded`](Self::guarded).
    pub async fn guarded_create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String> {
        validate_path(path)?;
        let acls = self.inner.client.default_acls();
        let options = mode.with_acls(acls);
        let mut results = self
            .guarded(|writer| writer.add_create(path, data, &options))
            .await?;
        match results.pop() {
            Some(MultiWriteResult::Create { path, .. }) => Ok(path),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes `path` only while the lock is held: [`guarded`](Self::guarded) with one
    /// delete. `version` as in ZooKeeper (`None`: any version).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`], then as [`guarded`](Self::guarded) (`NoNode`, `NotEmpty` or
    /// `BadVersion` for `path` come as [`Error::ZooKeeper`]).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`guarded`](Self::guarded).
    pub async fn guarded_delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        validate_path(path)?;
        self.guarded(|writer| writer.add_delete(path, version))
            .await?;
        Ok(())
    }
}

fn unexpected(result: Option<MultiWriteResult>) -> Error {
    Error::ZooKeeper(zookeeper_client::Error::UnexpectedError(format!(
        "unexpected multi result {result:?}"
    )))
}

/// A write that commits only while every one of `guards`' lock nodes exists: one `multi` on
/// their session, with a check of each node first, then `build`'s operations, whose results
/// it returns. [`LockGuard::guarded`] is the case of one guard; a multi-lock's is several.
///
/// Every guard must hold its node through one session (one client); otherwise it is an
/// [`Error::InvalidArgument`], before anything is sent. A check that fails marks that guard's
/// hold lost, and is [`Error::LockLost`].
pub(crate) async fn guarded_by<F>(guards: &[LockGuard], build: F) -> Result<Vec<MultiWriteResult>>
where
    F: FnOnce(&mut MultiWriter<'_>) -> std::result::Result<(), zookeeper_client::Error>,
{
    let Some(first) = guards.first() else {
        return Err(Error::IllegalState("a guarded write needs a guard"));
    };
    if guards
        .iter()
        .any(|guard| guard.hold.ended.is_cancelled() || guard.hold.session.is_lost())
    {
        return Err(Error::LockLost);
    }
    if guards
        .iter()
        .any(|guard| !Arc::ptr_eq(&guard.hold.session, &first.hold.session))
    {
        return Err(Error::InvalidArgument(
            "a guarded write checks every lock node in one transaction, so every lock must be \
             held through one client"
                .to_owned(),
        ));
    }
    let zk = first
        .hold
        .session
        .zookeeper()
        .map_err(|_| Error::LockLost)?;
    let mut writer = zk.new_multi_writer();
    for guard in guards {
        writer.add_check_version(&guard.hold.node_path, -1)?;
    }
    build(&mut writer)?;
    let commit = writer.commit();
    match commit.await {
        Ok(mut results) => {
            results.drain(..guards.len().min(results.len()));
            Ok(results)
        }
        Err(MultiWriteError::OperationFailed { index, source }) if index < guards.len() => {
            let lost = &guards[index].hold;
            tracing::debug!(node = %lost.node_path, error = %source, "guarded write found a lock node gone");
            lost.ended.cancel();
            Err(Error::LockLost)
        }
        Err(MultiWriteError::OperationFailed { source, .. }) => Err(source.into()),
        Err(MultiWriteError::RequestFailed { source }) => match Error::from(source) {
            Error::SessionExpired | Error::Closed => Err(Error::LockLost),
            other => Err(other),
        },
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        // The guard goes back now; the delete, if it was the last, runs in the background
        // (`Held`'s drop), from whichever task drops the guard.
        if let Some(held) = self.give_back() {
            tracing::debug!(path = %self.inner.path, node = %self.hold.node_name, "lock guard dropped; releasing in the background");
            drop(held);
        }
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
