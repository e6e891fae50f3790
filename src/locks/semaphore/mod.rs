//! [`InterProcessSemaphoreV2`]: a counting semaphore of leases, and
//! [`InterProcessSemaphoreMutex`], a mutex on a semaphore of one lease, on the same znodes as
//! Apache Curator's.
//!
//! # How it works
//!
//! Under the semaphore's path, Curator's layout:
//!
//! * `<path>/locks`: an internal [`InterProcessMutex`] (`_c_<uuid>-lock-<seq10>` nodes) that
//!   lets one acquirer at a time take a lease;
//! * `<path>/leases`: the leases, protected ephemeral-sequential nodes
//!   `_c_<uuid>-lease-<seq10>` whose data is the participant id.
//!
//! An acquirer takes the internal lock, creates its lease node, and lists the leases: when
//! there are no more than the limit (its own included), the lease is granted and the internal
//! lock released. Otherwise it waits, holding the internal lock, for a lease to go (or for the
//! limit to rise). Java processes using Curator's `InterProcessSemaphoreV2` on the same path
//! take part in the same semaphore.
//!
//! **Why the count is never overrun.** Every acquirer counts every lease node, its own and
//! those still waiting included, after it made its own. Of any set of leases held at one
//! moment, the one made last counted all the others (they were made before it, and were
//! still there), so the set is no larger than the limit that acquirer read. With a fixed
//! limit that is the limit; lowering a shared count takes no lease back (as in Curator): the
//! holders stay within the count read by the last acquirer granted, and no new lease is
//! granted until they fit the new one. A lease deleted by someone else counts no more; its
//! holder learns of it through [`Lease::lost`] a watch event later. The internal lock is
//! for liveness: acquirers take turns, so that two waiting lease nodes never count each other
//! and wait forever.
//!
//! ```no_run
//! # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
//! use std::time::Duration;
//! use zk_recipes::InterProcessSemaphoreV2;
//!
//! // At most three workers on the resource, across every process.
//! let semaphore = InterProcessSemaphoreV2::new(&client, "/semaphores/render", 3)?;
//! let lease = semaphore.acquire().await?;
//! tokio::select! {
//!     _ = lease.lost() => tracing::warn!("lease may be lost; stopping"),
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => {} // the work
//! }
//! lease.release().await?;
//!
//! // Two leases at once, waiting at most five seconds for both.
//! if let Some(leases) = semaphore.try_acquire_many(2, Duration::from_secs(5)).await? {
//!     for lease in leases {
//!         lease.release().await?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Past Curator
//!
//! * **No waiting on a deposed acquirer.** A lease node is created in one transaction with a
//!   check that the acquirer's internal lock node exists, and an acquirer that finds its
//!   internal lock node gone (someone deleted it, or its session is suspended), while it
//!   waits or right after it counted, gives its lease node back and starts again. Curator
//!   creates the lease without a check and does not watch its lock node: a deposed acquirer
//!   keeps its waiting lease node, the next acquirer counts it, and with one lease left the
//!   two wait for each other forever.
//! * **A lost signal.** A [`Lease`] has the mutex's [lost signal](Lease::lost): it fires on a
//!   suspension, a lost session, or the lease node deleted by someone else. The count is never
//!   overrun among holders that obey it (see above for a lowered shared count). A fencing
//!   token and guarded writes come with it.
//! * **Cancel safety.** Every acquire is cancel safe at every await: no lease node and no
//!   internal lock node is left behind.
//! * **Waiters.** Waiters of one process queue on the internal lock, which shares one driver
//!   among them: 10,000 waiters in one process cost a few kilobytes each.
//!
//! # The limit
//!
//! A fixed `max_leases` ([`InterProcessSemaphoreV2::new`]) is a convention among the
//! participants, as in Curator: nothing checks that every process uses the same number. Or the
//! limit lives in a [`SharedCount`] node that every participant uses, and that the acquirer
//! waiting for a lease reads and watches
//! ([`InterProcessSemaphoreV2::with_shared_count`], Curator's `SharedCountReader`): a change
//! takes effect for the acquirer waiting at the time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{Acl, CreateMode, MultiWriteResult, Stat};

use crate::connection::Client;
use crate::error::{Error, Result};
use crate::locks::mutex::{InterProcessMutex, LockGuard};
use crate::participant::default_participant_id;
use crate::path::{join, validate_recipe_path};
use crate::queue::{Incarnation, Requeues, Wait, LEASE_NAMES};
use crate::shared::{decode_count, SharedCount};

/// The internal lock's path under the semaphore's (Curator's `locks`).
const LOCK_PARENT: &str = "locks";
/// The leases' parent under the semaphore's path (Curator's `leases`).
const LEASE_PARENT: &str = "leases";

/// The limit of a semaphore.
#[derive(Debug, Clone)]
enum Limit {
    Fixed(u32),
    Shared(String),
}

/// What one look at the limit found, and the watch that tells of its next change.
type LimitWatch = Option<zookeeper_client::OneshotWatcher>;

impl Limit {
    /// The limit now, read on `zk`; for a shared count, with a watch if `watch` (a waiter that
    /// holds an unfired watch on it needs no other). A missing count node is a limit of 0,
    /// watched until it appears.
    async fn read(&self, zk: &zookeeper_client::Client, watch: bool) -> Result<(u32, LimitWatch)> {
        let path = match self {
            Limit::Fixed(max) => return Ok((*max, None)),
            Limit::Shared(path) => path,
        };
        loop {
            let read = if watch {
                zk.get_and_watch_data(path)
                    .await
                    .map(|(data, _, watch)| (data, Some(watch)))
            } else {
                zk.get_data(path).await.map(|(data, _)| (data, None))
            };
            match read {
                Ok((data, watch)) => return Ok((decode_count(path, &data)?, watch)),
                Err(zookeeper_client::Error::NoNode) if watch => {
                    let (stat, watch) = zk.check_and_watch_stat(path).await?;
                    if stat.is_none() {
                        return Ok((0, Some(watch)));
                    }
                    // Created between the two reads: read it.
                }
                Err(zookeeper_client::Error::NoNode) => return Ok((0, None)),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A counting semaphore across processes: Curator's `InterProcessSemaphoreV2`, wire-compatible
/// with it. See the [module documentation](self).
///
/// The handle is cheap to clone; clones share one internal lock, whose waiters share one
/// driver task.
#[derive(Clone)]
pub struct InterProcessSemaphoreV2 {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    path: String,
    leases_path: String,
    acls: Vec<Acl>,
    id: String,
    limit: Limit,
    /// The internal lock, `<path>/locks`.
    lock: InterProcessMutex,
    /// Holds the granted leases, under `<path>/leases`.
    leases: InterProcessMutex,
}

impl std::fmt::Debug for InterProcessSemaphoreV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterProcessSemaphoreV2")
            .field("path", &self.inner.path)
            .field("id", &self.inner.id)
            .field("limit", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

/// Why one attempt at a lease ended without it.
enum Failure {
    /// The internal lock or the lease node was lost before the attempt had counted its own
    /// lease: try again, as the retry policy allows, else fail with this error.
    Retry(Error),
    /// Lost while waiting for a lease to go, after the attempt had counted its own lease (a
    /// suspension, or a deposed internal lock, during a long wait): try again, with the retry
    /// policy's count started afresh, so that a wait of hours outlives its connection blips.
    Resume(Error),
    /// A failure the caller must see.
    Fail(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::LockLost => Failure::Retry(e),
            e => Failure::Fail(e),
        }
    }
}

impl InterProcessSemaphoreV2 {
    /// A semaphore on `path` that lets at most `max_leases` leases be held at once, with the
    /// default participant id and the client's default ACLs. Every participant must use the
    /// same `max_leases` (nothing checks it, as in Curator). Nothing is sent until the first
    /// acquire.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let semaphore = zk_recipes::InterProcessSemaphoreV2::new(&client, "/semaphores/render", 3)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidPath`] if `path` is not a usable znode path;
    /// * [`Error::InvalidArgument`] if `max_leases` is 0.
    pub fn new(client: &Client, path: &str, max_leases: u32) -> Result<Self> {
        if max_leases == 0 {
            return Err(Error::InvalidArgument(
                "a semaphore of 0 leases never lets anyone in".to_owned(),
            ));
        }
        Self::with_limit(client, path, Limit::Fixed(max_leases))
    }

    /// A semaphore on `path` whose limit is the count in `count` (Curator's
    /// `SharedCountReader`): the acquirer waiting for a lease reads and watches it, so a change
    /// takes effect for it at once. A missing count node lets nobody in until
    /// it is created.
    ///
    /// ```no_run
    /// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::shared::SharedCount;
    /// let limit = SharedCount::new(&client, "/semaphores/render-limit")?;
    /// limit.set(3).await?;
    /// let semaphore =
    ///     zk_recipes::InterProcessSemaphoreV2::with_shared_count(&client, "/semaphores/render", &limit)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if `path` is not a usable znode path.
    pub fn with_shared_count(client: &Client, path: &str, count: &SharedCount) -> Result<Self> {
        Self::with_limit(client, path, Limit::Shared(count.path.clone()))
    }

    fn with_limit(client: &Client, path: &str, limit: Limit) -> Result<Self> {
        validate_recipe_path(path)?;
        Ok(Self::build(
            client,
            path,
            Vec::new(),
            default_participant_id().to_owned(),
            limit,
        ))
    }

    fn build(client: &Client, path: &str, acls: Vec<Acl>, id: String, limit: Limit) -> Self {
        let lock_path = join(path, LOCK_PARENT);
        let leases_path = join(path, LEASE_PARENT);
        let lock = InterProcessMutex::new(client, &lock_path)
            .expect("a valid path joined to a valid name")
            .with_acls(acls.clone())
            .with_id(id.clone());
        let leases =
            InterProcessMutex::lease_holder(client, &leases_path, acls.clone(), id.clone());
        Self {
            inner: Arc::new(Inner {
                client: client.clone(),
                path: path.to_owned(),
                leases_path,
                acls,
                id,
                limit,
                lock,
                leases,
            }),
        }
    }

    /// Sets the participant id, the data of this handle's lease and internal lock nodes. A
    /// builder method: it returns a new handle that shares nothing with earlier clones.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let semaphore = zk_recipes::InterProcessSemaphoreV2::new(&client, "/semaphores/render", 3)?
    ///     .with_id("renderer-4");
    /// assert_eq!(semaphore.id(), "renderer-4");
    /// # Ok(()) }
    /// ```
    pub fn with_id(self, id: impl Into<String>) -> Self {
        let inner = &self.inner;
        Self::build(
            &inner.client,
            &inner.path,
            inner.acls.clone(),
            id.into(),
            inner.limit.clone(),
        )
    }

    /// Sets the ACLs of the semaphore's nodes and of the parents it creates (empty: the
    /// client's [default ACLs](crate::ClientBuilder::default_acls)). A builder method, like
    /// [`with_id`](Self::with_id).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::zookeeper_client::{Acl, AuthId, Permission};
    /// let semaphore = zk_recipes::InterProcessSemaphoreV2::new(&client, "/semaphores/render", 3)?
    ///     .with_acls(vec![Acl::new(Permission::ALL, AuthId::authed())]);
    /// # Ok(()) }
    /// ```
    pub fn with_acls(self, acls: Vec<Acl>) -> Self {
        let inner = &self.inner;
        Self::build(
            &inner.client,
            &inner.path,
            acls,
            inner.id.clone(),
            inner.limit.clone(),
        )
    }

    /// The semaphore's path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The participant id this handle writes into its nodes.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Waits for one lease, as long as it takes.
    ///
    /// If the internal lock or the lease node is lost while waiting (the session expired, or
    /// someone deleted a node), the attempt starts again, as often as the client's retry
    /// policy allows.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`] if a node's create would exceed the client's
    ///   [`max_request_size`](Client::max_request_size) (a long path or id), or a shared count
    ///   holds something else than a 4-byte count;
    /// * [`Error::NoAuth`] if an ACL forbids a create;
    /// * [`Error::LockLost`], [`Error::NodeDeleted`] or [`Error::SessionExpired`] when nodes
    ///   were lost more often than the retry policy allows trying again;
    /// * [`Error::ConnectionLoss`] when the retry policy gives up on a request;
    /// * [`Error::Closed`] once the client is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point: dropping the future leaves no node behind (a lease
    /// node, or the internal lock's node, is deleted in the background).
    pub async fn acquire(&self) -> Result<Lease> {
        self.acquire_one(Wait::Forever)
            .await?
            .ok_or(Error::IllegalState(
                "an unbounded acquire ended without a lease",
            ))
    }

    /// Waits for `count` leases, as long as it takes. They are taken one after another; a
    /// failure part-way gives back the ones taken.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `count` is 0, or more than a fixed limit (it could never be
    /// granted); then as [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire): the leases taken so far go back too.
    pub async fn acquire_many(&self, count: u32) -> Result<Vec<Lease>> {
        self.acquire_with(count, Wait::Forever)
            .await?
            .ok_or(Error::IllegalState(
                "an unbounded acquire ended without a lease",
            ))
    }

    /// Waits at most `timeout` for one lease: `Ok(None)` if none was granted in time.
    /// `Duration::ZERO` takes one look.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<Lease>> {
        self.acquire_one(wait_for(timeout)).await
    }

    /// Waits at most `timeout` for `count` leases: `Ok(None)` if they were not all granted in
    /// time, and then the ones taken go back (Curator's behaviour).
    ///
    /// # Errors
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn try_acquire_many(
        &self,
        count: u32,
        timeout: Duration,
    ) -> Result<Option<Vec<Lease>>> {
        self.acquire_with(count, wait_for(timeout)).await
    }

    /// The names of every lease node, from every process (Java ones included): Curator's
    /// `getParticipantNodes`. The holders, and the acquirer that waits for a lease to go.
    ///
    /// # Errors
    ///
    /// [`Error::NoAuth`] and the errors of [`Client::with_retry`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        Ok(self
            .inner
            .client
            .children(&self.inner.leases_path)
            .await?
            .unwrap_or_default())
    }

    async fn acquire_with(&self, count: u32, wait: Wait) -> Result<Option<Vec<Lease>>> {
        if count == 0 {
            return Err(Error::InvalidArgument(
                "acquire_many(0): ask for one lease or more".to_owned(),
            ));
        }
        if let Limit::Fixed(max) = self.inner.limit {
            if count > max {
                return Err(Error::InvalidArgument(format!(
                    "{count} leases of a semaphore of {max} can never be granted"
                )));
            }
        }
        // Dropped part-way (a failure, a timeout, a cancellation), the leases taken go back.
        let mut leases = Vec::with_capacity(count as usize);
        for _ in 0..count {
            match self.acquire_one(wait).await? {
                Some(lease) => leases.push(lease),
                None => return Ok(None),
            }
        }
        Ok(Some(leases))
    }

    /// One lease, retrying lost attempts as the retry policy allows.
    async fn acquire_one(&self, wait: Wait) -> Result<Option<Lease>> {
        let mut requeues = Requeues::default();
        loop {
            // The deadline bounds the whole attempt, its creates and reads too; a dropped
            // attempt leaves no node.
            let attempt = self.attempt(wait);
            let outcome = match wait {
                // Boxed: the timer would otherwise sit in every waiting acquirer's future.
                Wait::Until(deadline) => {
                    match Box::pin(tokio::time::timeout_at(deadline, attempt)).await {
                        Ok(outcome) => outcome,
                        Err(_) => return Ok(None),
                    }
                }
                Wait::Forever | Wait::Once => attempt.await,
            };
            let error = match outcome {
                Ok(lease) => return Ok(lease),
                Err(Failure::Fail(e)) => return Err(e),
                Err(Failure::Retry(e)) => e,
                Err(Failure::Resume(e)) => {
                    requeues.reset();
                    e
                }
            };
            if !Box::pin(requeues.pause(&self.inner.client, &self.inner.path, wait, error)).await? {
                return Ok(None);
            }
        }
    }

    /// One attempt: the internal lock, a lease node under it, and a wait until the leases fit
    /// the limit. The internal lock is released whatever the outcome.
    async fn attempt(&self, wait: Wait) -> std::result::Result<Option<Lease>, Failure> {
        let Some(lock) = self.inner.lock.acquire_with(wait).await? else {
            return Ok(None);
        };
        let deadline = match wait {
            Wait::Until(deadline) => Some(deadline),
            Wait::Forever | Wait::Once => None,
        };
        // Boxed: only the acquirer that holds the internal lock needs this state, and
        // thousands of acquirers may wait for the lock.
        let outcome = Box::pin(self.lease_under(&lock, deadline, matches!(wait, Wait::Once))).await;
        // Boxed, like the lease's wait: a release's state would otherwise be in every waiting
        // acquirer's future.
        if let Err(e) = Box::pin(lock.release()).await {
            tracing::debug!(path = %self.inner.path, error = %e, "releasing the semaphore's internal lock failed; it is deleted in the background");
        }
        outcome
    }

    /// Creates a lease node while `lock` (the internal lock) is held, and waits until the
    /// leases fit the limit: the lease, or `None` at the deadline (or after one look). A lease
    /// node not granted is deleted before this returns, when the connection allows, so that
    /// the next acquirer (which may come the moment the internal lock goes) does not count it.
    async fn lease_under(
        &self,
        lock: &LockGuard,
        deadline: Option<tokio::time::Instant>,
        once: bool,
    ) -> std::result::Result<Option<Lease>, Failure> {
        let inner = &self.inner;
        let node = inner
            .client
            .create_while(
                lock.session(),
                lock.node_path(),
                &inner.leases_path,
                LEASE_NAMES.exclusive(),
                inner.id.as_bytes(),
                CreateMode::EphemeralSequential,
                &inner.acls,
            )
            .await?;
        // From here on the node exists: dropped, the guard deletes it.
        let mut pending = PendingLease {
            client: inner.client.clone(),
            node: Some(node),
        };
        let outcome = self
            .count_until_granted(lock, &mut pending, deadline, once)
            .await;
        pending.give_back().await;
        outcome
    }

    /// Counts the leases until they fit the limit, and then grants `pending`.
    async fn count_until_granted(
        &self,
        lock: &LockGuard,
        pending: &mut PendingLease,
        deadline: Option<tokio::time::Instant>,
        once: bool,
    ) -> std::result::Result<Option<Lease>, Failure> {
        let inner = &self.inner;
        let session = lock.session().clone();
        // Once the attempt has counted its own lease, a loss is a resumption (see `Failure`).
        let mut counted = false;
        let lost = |counted: bool, e: Error| {
            if counted {
                Failure::Resume(e)
            } else {
                retry_if_transient(e)
            }
        };
        let mut count_changed: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        loop {
            let zk = session
                .zookeeper()
                .map_err(|_| lost(counted, Error::LockLost))?;
            // The interruption count before anything is sent: a drop after it is the lease's
            // loss too.
            let interruptions = session.interruption_count();
            // The leases (with a watch) and then the internal lock's node go out at once, in
            // that order, on one session: an acquirer deposed meanwhile gives its lease node
            // back, so that the next acquirer does not wait for it forever. The limit is read
            // beside them.
            let listing = zk.get_and_watch_children(&inner.leases_path);
            let lock_node = zk.check_stat(lock.node_path());
            let limit = inner.limit.read(&zk, count_changed.is_none());
            let (listing, lock_node, limit) = futures::join!(listing, lock_node, limit);
            let (children, leases_stat, leases_changed) = match listing {
                Ok(listed) => listed,
                Err(zookeeper_client::Error::NoNode) => {
                    return Err(Failure::Retry(pending.gone()));
                }
                Err(e) => return Err(lost(counted, e.into())),
            };
            let lease_name = &pending.node().name;
            if !children.iter().any(|child| child == lease_name) {
                return Err(Failure::Retry(pending.gone()));
            }
            match lock_node {
                Ok(Some(_)) => {}
                // Another acquirer may hold the internal lock now, and make a lease node.
                Ok(None) => return Err(lost(counted, Error::LockLost)),
                Err(e) => return Err(lost(counted, e.into())),
            }
            let (max, limit_watch) = match limit {
                Ok(limit) => limit,
                Err(e) if e.is_retryable() => return Err(lost(counted, e)),
                Err(e) => return Err(Failure::Fail(e)),
            };
            if let Some(watch) = limit_watch {
                count_changed = Some(Box::pin(async move {
                    watch.changed().await;
                }));
            }
            counted = true;
            if children.len() <= max as usize {
                let node = pending.take();
                // A connection drop since the count may have lost the lease already: `adopt`
                // gives it back, and the attempt counts again.
                let lease = inner
                    .leases
                    .adopt(node, Incarnation::of_parent(&leases_stat), interruptions)
                    .await
                    .map_err(Failure::Resume)?;
                tracing::debug!(path = %inner.path, node = %lease.node_name(), leases = children.len(), max, "lease granted");
                return Ok(Some(Lease { guard: lease }));
            }
            if once {
                return Ok(None);
            }
            tracing::trace!(path = %inner.path, node = %pending.node().name, leases = children.len(), max, "waiting for a lease to go");
            // The caller's timeout bounds the attempt too, but it drops it: ending here instead
            // lets `lease_under` give the lease node back before the internal lock goes.
            let deadline_passed = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let count_fired = async {
                match count_changed.as_mut() {
                    Some(changed) => changed.await,
                    None => std::future::pending().await,
                }
            };
            let woken = tokio::select! {
                _ = leases_changed.changed() => Woken::Leases,
                _ = count_fired => Woken::Count,
                _ = lock.lost() => return Err(Failure::Resume(Error::LockLost)),
                _ = deadline_passed => return Ok(None),
            };
            if woken == Woken::Count {
                count_changed = None;
            }
        }
    }
}

/// What woke a waiting acquirer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woken {
    Leases,
    Count,
}

/// Retryable failures (a connection loss) start the attempt again; others are the caller's.
fn retry_if_transient(e: Error) -> Failure {
    if e.is_retryable() || matches!(e, Error::SessionExpired | Error::LockLost) {
        Failure::Retry(e)
    } else {
        Failure::Fail(e)
    }
}

fn wait_for(timeout: Duration) -> Wait {
    if timeout.is_zero() {
        Wait::Once
    } else {
        Wait::Until(tokio::time::Instant::now() + timeout)
    }
}

/// A lease node not granted (yet): dropped, it is deleted in the background.
struct PendingLease {
    client: Client,
    node: Option<crate::connection::ProtectedNode>,
}

impl PendingLease {
    fn node(&self) -> &crate::connection::ProtectedNode {
        self.node.as_ref().expect("present until taken")
    }

    fn take(&mut self) -> crate::connection::ProtectedNode {
        self.node.take().expect("taken once")
    }

    /// The error for a lease node that is gone (nothing is left to delete).
    fn gone(&mut self) -> Error {
        let node = self.take();
        Error::NodeDeleted { path: node.path }
    }

    /// Deletes the node, if still here, with one attempt awaited for at most
    /// [`GIVE_BACK_BOUND`]; on failure (or if dropped meanwhile) the drop's background delete
    /// goes on trying.
    async fn give_back(&mut self) {
        let Some(node) = &self.node else { return };
        let Ok(zk) = node.session.zookeeper() else {
            return;
        };
        let deleted = tokio::time::timeout(GIVE_BACK_BOUND, zk.delete(&node.path, None)).await;
        if let Ok(
            Ok(()) | Err(zookeeper_client::Error::NoNode | zookeeper_client::Error::SessionExpired),
        ) = deleted
        {
            self.node = None;
        }
    }
}

/// How long a waiting acquirer that gives up waits for its lease node's delete before it
/// releases the internal lock: long enough for a round trip, short enough not to hold the
/// lock up on a dropped connection (the delete then goes on in the background).
const GIVE_BACK_BOUND: Duration = Duration::from_secs(2);

impl Drop for PendingLease {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else { return };
        let client = self.client.clone();
        self.client.spawn(async move {
            if let Err(e) = client.guaranteed_delete(&node.session, &node.path).await {
                tracing::warn!(path = %node.path, error = %e, "deleting an ungranted lease failed; it goes with its session");
            }
        });
    }
}

/// A lease of an [`InterProcessSemaphoreV2`] (or the hold of an [`InterProcessSemaphoreMutex`]).
///
/// Release it with [`release`](Self::release), or drop it (the release then runs in the
/// background). It owns what it needs: it is `Send` and `'static`, and may be released in any
/// task.
#[must_use = "dropping a lease releases it at once, in the background"]
#[derive(Debug)]
pub struct Lease {
    guard: LockGuard,
}

impl Lease {
    /// The fencing token: the lease node's `czxid`, unique and larger for every later lease.
    pub fn fencing_token(&self) -> u64 {
        self.guard.fencing_token()
    }

    /// The lease node's full path.
    pub fn node_path(&self) -> &str {
        self.guard.node_path()
    }

    /// The lease node's name, `_c_<uuid>-lease-<seq10>`.
    pub fn node_name(&self) -> &str {
        self.guard.node_name()
    }

    /// True once the lease may be lost: a suspension or a lost session since the grant, the
    /// lease node deleted by someone else, or a guarded write that found it gone. As for the
    /// mutex's [`LockGuard::is_lost`].
    pub fn is_lost(&self) -> bool {
        self.guard.is_lost()
    }

    /// Resolves when the lease may be lost (at once if it already may be); `'static`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.guard.lost()
    }

    /// Asks ZooKeeper whether the lease is still good: a `sync`, then a read of the lease
    /// node, which must be this lease's and owned by its session. As [`LockGuard::verify`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn verify(&self) -> bool {
        self.guard.verify().await
    }

    /// Runs a write that commits only while the lease node exists: one `multi` with a check of
    /// the lease node first. As [`LockGuard::guarded`].
    ///
    /// # Errors
    ///
    /// As [`LockGuard::guarded`]: [`Error::LockLost`] if the lease node is gone.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped (but only while
    /// the lease node exists).
    pub async fn guarded<F>(&self, build: F) -> Result<Vec<MultiWriteResult>>
    where
        F: FnOnce(
            &mut zookeeper_client::MultiWriter<'_>,
        ) -> std::result::Result<(), zookeeper_client::Error>,
    {
        self.guard.guarded(build).await
    }

    /// Sets `path`'s data only while the lease is held: [`guarded`](Self::guarded) with one
    /// `set_data`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`], then as [`guarded`](Self::guarded).
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
        self.guard.guarded_set_data(path, data, version).await
    }

    /// The lock guard underneath, for a multi-lock's parts.
    pub(crate) fn into_guard(self) -> LockGuard {
        self.guard
    }

    /// Releases the lease: deletes its node.
    ///
    /// # Errors
    ///
    /// The error of the delete, when it fails: the node is then deleted in the background,
    /// retried for as long as its session lives.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the delete runs to completion in the background if the future is dropped.
    pub async fn release(self) -> Result<()> {
        self.guard.release().await
    }
}

/// A non-reentrant mutex on a semaphore of one lease, on Curator's
/// `InterProcessSemaphoreMutex` layout (`<path>/locks` and `<path>/leases`).
///
/// Unlike [`InterProcessMutex`], its [`Lease`] has no `reenter`: a second acquire waits for the
/// first lease to be released, whoever makes it, and `try_acquire` returns `Ok(None)` while it
/// is held. Use it where re-entry must not be counted. (As a part of an
/// [`InterProcessMultiLock`](crate::InterProcessMultiLock), its lease is held through a
/// [`LockGuard`], which can `reenter` like any part: the lease then stays until every guard of
/// it goes.)
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// let mutex = zk_recipes::InterProcessSemaphoreMutex::new(&client, "/locks/compaction")?;
/// let lease = mutex.acquire().await?;
/// assert!(mutex.try_acquire(Duration::ZERO).await?.is_none()); // no re-entry
/// lease.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct InterProcessSemaphoreMutex {
    semaphore: InterProcessSemaphoreV2,
}

impl InterProcessSemaphoreMutex {
    /// A mutex on `path`, with the default participant id. Nothing is sent until the first
    /// acquire.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if `path` is not a usable znode path.
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        Ok(Self {
            semaphore: InterProcessSemaphoreV2::new(client, path, 1)?,
        })
    }

    /// Sets the participant id. A builder method, like
    /// [`InterProcessSemaphoreV2::with_id`].
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let mutex = zk_recipes::InterProcessSemaphoreMutex::new(&client, "/locks/compaction")?
    ///     .with_id("compactor-1");
    /// # Ok(()) }
    /// ```
    pub fn with_id(self, id: impl Into<String>) -> Self {
        Self {
            semaphore: self.semaphore.with_id(id),
        }
    }

    /// Sets the ACLs of the mutex's nodes and of the parents it creates. A builder method,
    /// like [`InterProcessSemaphoreV2::with_acls`].
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::zookeeper_client::{Acl, AuthId, Permission};
    /// let mutex = zk_recipes::InterProcessSemaphoreMutex::new(&client, "/locks/compaction")?
    ///     .with_acls(vec![Acl::new(Permission::ALL, AuthId::authed())]);
    /// # Ok(()) }
    /// ```
    pub fn with_acls(self, acls: Vec<Acl>) -> Self {
        Self {
            semaphore: self.semaphore.with_acls(acls),
        }
    }

    /// The mutex's path.
    pub fn path(&self) -> &str {
        self.semaphore.path()
    }

    /// The participant id this handle writes into its nodes.
    pub fn id(&self) -> &str {
        self.semaphore.id()
    }

    /// Waits for the mutex, as long as it takes. As [`InterProcessSemaphoreV2::acquire`].
    ///
    /// # Errors
    ///
    /// As [`InterProcessSemaphoreV2::acquire`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point: no node is left behind.
    pub async fn acquire(&self) -> Result<Lease> {
        self.semaphore.acquire().await
    }

    /// Waits for the mutex at most `timeout`: `Ok(None)` if it was not granted in time.
    /// `Duration::ZERO` takes one look.
    ///
    /// # Errors
    ///
    /// As [`InterProcessSemaphoreV2::acquire`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point.
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<Lease>> {
        self.semaphore.try_acquire(timeout).await
    }

    /// Waits as `wait` says, for a multi-lock's part.
    pub(crate) async fn acquire_with(&self, wait: Wait) -> Result<Option<Lease>> {
        self.semaphore.acquire_one(wait).await
    }

    /// True if a lease granted through this handle (or a clone) has not been released yet
    /// (Curator's `isAcquiredInThisProcess`).
    pub fn is_acquired_in_this_process(&self) -> bool {
        self.semaphore.inner.leases.is_acquired_in_this_process()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_curators_four_bytes() {
        assert_eq!(decode_count("/c", &5i32.to_be_bytes()).unwrap(), 5);
        assert_eq!(decode_count("/c", &(-3i32).to_be_bytes()).unwrap(), 0);
        assert!(matches!(
            decode_count("/c", b"5"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn handles_and_leases_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<InterProcessSemaphoreV2>();
        check::<InterProcessSemaphoreMutex>();
        check::<Lease>();
        check::<SharedCount>();
    }
}
