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
//! limit to rise); one that had released the lock ahead of its count (see below) queues for it
//! again first. Java processes using Curator's `InterProcessSemaphoreV2` on the same path
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
//! * **One round trip under the lock, shared with the lock's grant.** The lease's create and its
//!   first count (a listing of the leases) go out back to back on the lock's session, and ZooKeeper
//!   answers them in order: when the leases fit, the lease is granted on that listing, and the
//!   internal lock's delete goes out at once, without holding up the caller (or has gone out
//!   already: see the next point). With a fixed limit, when the internal lock is granted on a
//!   listing of its queue (the way an acquirer that joined behind several others is granted, after
//!   its predecessor's deletion), the lease's create and count go out right behind that listing, in
//!   its round trip: answered after it, the lease was made once the listing had proven the lock
//!   ours, as if sent after the grant. Between acquirers of one process, the release of the
//!   internal lock reads the next acquirer's lock node right behind its delete, which proves that
//!   acquirer's turn, and sends its lease's create and count right behind that read. From its
//!   predecessor's deletion to its lock's delete, an acquirer spends two round trips in turn (one,
//!   when it releases the lock ahead); Curator spends four (the listing, the create, the count, the
//!   delete). If the listing does not grant the lock after all (the predecessor gave up while a
//!   node before it stayed, as a timed-out acquire does), the lease node made ahead is deleted as
//!   soon as its create is answered: one create, one listing and one delete for nothing. Until then
//!   another acquirer's count, a Java one too, may include it, which can make that acquirer wait
//!   for the delete (or a single look, or a short timeout, fail), never overrun the limit (see
//!   above).
//! * **The internal lock released ahead of the count, when there was room.** With a fixed limit,
//!   when the last count this handle's acquirers made left room for one more lease and the client
//!   is connected on the lock's session, the internal lock's delete goes out right behind the
//!   lease's create and count, before their answers. ZooKeeper applies a session's requests in
//!   order, so the count is still taken under the lock; the next acquirer's turn starts when the
//!   server applies the delete, without waiting for this acquirer's round trip. If that count does
//!   not fit after all (others took the room meanwhile), the acquirer no longer holds the lock, and
//!   must not wait without it: it gives its lease node back, queues for the lock again (behind
//!   those that came meanwhile) and waits under it, as Curator's acquirers do. Until that node is
//!   gone, another acquirer's count may include it, as above. This happens at most once per lease.
//!   The first acquirer of a handle whose last count was made before the semaphore filled may so
//!   lose its place once; after that the handle's counts leave no room, and its waiters keep their
//!   order. A semaphore of one lease never releases ahead.
//! * **No waiting on a deposed acquirer.** An acquirer whose count does not fit checks, with
//!   every count it makes while it waits, that its internal lock node still exists; one that
//!   finds it gone (someone deleted it, or its session is suspended) gives its lease node back
//!   and starts again. Curator does not watch its lock node: a deposed acquirer keeps its
//!   waiting lease node, the next acquirer counts it, and with one lease left the two wait
//!   for each other forever. (A lease granted on its first count needs no such check: the
//!   count alone keeps the limit, as above.)
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

mod acquire;
mod lease;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::Acl;

use crate::connection::Client;
use crate::error::{Error, Result};
use crate::locks::mutex::InterProcessMutex;
use crate::participant::default_participant_id;
use crate::path::{join, validate_recipe_path};
use crate::queue::Wait;
use crate::shared::{decode_count, SharedCount};

use self::acquire::wait_for;
pub use self::lease::Lease;

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
    /// Whether the last count this handle's acquirers made left room for one more lease: an
    /// acquirer then releases the internal lock right behind its own count (see
    /// `InterProcessSemaphoreV2::lease_released_ahead`, in `acquire.rs`).
    last_count_had_room: AtomicBool,
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
                last_count_had_room: AtomicBool::new(false),
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
        self.rebuilt(inner.acls.clone(), id.into(), inner.lock.recursive_watch())
    }

    /// A new handle like this one, with `acls`, `id` and `recursive_watch`, sharing nothing
    /// with it.
    fn rebuilt(&self, acls: Vec<Acl>, id: String, recursive_watch: bool) -> Self {
        let inner = &self.inner;
        let semaphore = Self::build(&inner.client, &inner.path, acls, id, inner.limit.clone());
        semaphore.inner.lock.set_recursive_watch(recursive_watch);
        semaphore
    }

    /// Sets whether the acquirers waiting on the internal lock watch its whole path (the
    /// default) or only each its predecessor, as Curator's do: see
    /// [`InterProcessMutex::with_recursive_watch`]. A builder method, like
    /// [`with_id`](Self::with_id).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let semaphore = zk_recipes::InterProcessSemaphoreV2::new(&client, "/semaphores/render", 3)?
    ///     .with_recursive_watch(false);
    /// # drop(semaphore);
    /// # Ok(()) }
    /// ```
    pub fn with_recursive_watch(self, on: bool) -> Self {
        let inner = &self.inner;
        self.rebuilt(inner.acls.clone(), inner.id.clone(), on)
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
        self.rebuilt(acls, inner.id.clone(), inner.lock.recursive_watch())
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
    ///   [`max_request_size`](Client::max_request_size) (a long path or id);
    /// * [`Error::MalformedData`] if a shared count holds something else than a 4-byte count;
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
}

/// A non-reentrant mutex on a semaphore of one lease, on Curator's
/// `InterProcessSemaphoreMutex` layout (`<path>/locks` and `<path>/leases`).
///
/// Unlike [`InterProcessMutex`], its [`Lease`] has no `reenter`: a second acquire waits for the
/// first lease to be released, whoever makes it, and `try_acquire` returns `Ok(None)` while it
/// is held. Use it where re-entry must not be counted. (As a part of an
/// [`InterProcessMultiLock`](crate::InterProcessMultiLock), its lease is held through a
/// [`LockGuard`](crate::LockGuard), which can `reenter` like any part: the lease then stays until every guard of
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
        for bad in [&b"5"[..], b"", b"12345"] {
            assert!(matches!(
                decode_count("/c", bad),
                Err(Error::MalformedData(_))
            ));
        }
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
