//! `InterProcessMultiLock`: several locks taken as one, all or none (Curator's
//! `InterProcessMultiLock`), in one global order so that two multi-locks never deadlock.
//!
//! A part is any of the crate's locks ([`MultiLockPart`]): an [`InterProcessMutex`] (a half
//! of an [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock) is one), or an
//! [`InterProcessSemaphoreMutex`].
//!
//! # Order
//!
//! Curator acquires the locks of a multi-lock in the order it was given them, so two
//! processes that list the same locks in different orders can each take one and wait for the
//! other's for ever. Here the parts are always acquired in the order of their paths (byte
//! order), whatever order they were given in: every multi-lock of every process that follows
//! this rule waits only for locks later in one total order, and a cycle of waits cannot form.
//! (A Curator multi-lock, or a single lock held while a multi-lock is acquired, does not follow
//! it: keep to the rule across the whole system, or the guarantee is void. The paths compared
//! are the parts' own, under their clients' namespaces: give every client of a system the same
//! namespace, or the order is not the same everywhere.)
//!
//! # All or none
//!
//! The multi-lock is held once every part is. An error, a timeout or a cancellation part-way
//! gives back the parts already taken, and the part being acquired leaves no node behind, as
//! [`InterProcessMutex::acquire`] promises.
//!
//! # Lost
//!
//! The multi-lock is as good as its weakest part: [`MultiLockGuard::lost`] fires when any part
//! may be lost, and [`MultiLockGuard::verify`] asks the server about every part.

use std::future::Future;
use std::time::Duration;

use futures::future::{join_all, select_all, FutureExt};
use tokio::time::Instant;
use zookeeper_client::{MultiWriteResult, MultiWriter};

use crate::connection::Client;
use crate::error::{Error, PartFailure, Result};
use crate::locks::mutex::{guarded_by, InterProcessMutex, LockGuard};
use crate::locks::semaphore::InterProcessSemaphoreMutex;
use crate::queue::Wait;

/// A lock that can be a part of an [`InterProcessMultiLock`]: any of the crate's locks. Made
/// with `From`, so [`InterProcessMultiLock::new`] takes the locks themselves.
///
/// ```no_run
/// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::{
///     InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
///     InterProcessSemaphoreMutex, MultiLockPart,
/// };
/// let catalog = InterProcessReadWriteLock::new(&client, "/locks/catalog")?;
/// let parts: [MultiLockPart; 3] = [
///     InterProcessMutex::new(&client, "/locks/orders")?.into(),
///     catalog.write_lock().clone().into(),
///     InterProcessSemaphoreMutex::new(&client, "/locks/compaction")?.into(),
/// ];
/// let all = InterProcessMultiLock::new(parts)?;
/// # drop(all);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MultiLockPart {
    /// An [`InterProcessMutex`], or a half of an
    /// [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock).
    Mutex(InterProcessMutex),
    /// An [`InterProcessSemaphoreMutex`]. Its part of a [`MultiLockGuard`] is the guard of its
    /// lease (whose node is under `<path>/leases`).
    SemaphoreMutex(InterProcessSemaphoreMutex),
}

impl From<InterProcessMutex> for MultiLockPart {
    fn from(mutex: InterProcessMutex) -> Self {
        MultiLockPart::Mutex(mutex)
    }
}

impl From<InterProcessSemaphoreMutex> for MultiLockPart {
    fn from(mutex: InterProcessSemaphoreMutex) -> Self {
        MultiLockPart::SemaphoreMutex(mutex)
    }
}

impl MultiLockPart {
    /// The lock's path: the order of the parts.
    pub fn path(&self) -> &str {
        match self {
            MultiLockPart::Mutex(mutex) => mutex.path(),
            MultiLockPart::SemaphoreMutex(mutex) => mutex.path(),
        }
    }

    fn is_acquired_in_this_process(&self) -> bool {
        match self {
            MultiLockPart::Mutex(mutex) => mutex.is_acquired_in_this_process(),
            MultiLockPart::SemaphoreMutex(mutex) => mutex.is_acquired_in_this_process(),
        }
    }

    async fn acquire_with(&self, wait: Wait) -> Result<Option<LockGuard>> {
        match self {
            MultiLockPart::Mutex(mutex) => mutex.acquire_with(wait).await,
            MultiLockPart::SemaphoreMutex(mutex) => Ok(mutex
                .acquire_with(wait)
                .await?
                .map(crate::locks::semaphore::Lease::into_guard)),
        }
    }
}

/// Several locks ([`MultiLockPart`]s) acquired as one: all or none, in the order of their paths.
/// See the [module docs](self) for the order, and why it prevents deadlock.
///
/// The parts may use different clients. A multi-lock is cheap to clone; clones share the parts.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::{InterProcessMultiLock, InterProcessMutex};
///
/// let accounts = InterProcessMultiLock::new([
///     InterProcessMutex::new(&client, "/locks/accounts/bob")?,
///     InterProcessMutex::new(&client, "/locks/accounts/alice")?,
/// ])?;
/// let guard = accounts.acquire().await?; // alice's lock first, then bob's
/// // ... move money between the two accounts ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct InterProcessMultiLock {
    /// Sorted by path: the order of acquisition.
    parts: std::sync::Arc<[MultiLockPart]>,
}

impl std::fmt::Debug for InterProcessMultiLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterProcessMultiLock")
            .field("paths", &self.paths().collect::<Vec<_>>())
            .finish()
    }
}

impl InterProcessMultiLock {
    /// A multi-lock of `locks` (mutexes, read/write lock halves, semaphore mutexes: see
    /// [`MultiLockPart`]), which it acquires in the order of their paths.
    ///
    /// ```no_run
    /// # fn demo(a: zk_recipes::InterProcessMutex, b: zk_recipes::InterProcessMutex) -> zk_recipes::Result<()> {
    /// let both = zk_recipes::InterProcessMultiLock::new([a, b])?;
    /// # drop(both);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `locks` is empty, or names one path twice (a multi-lock
    /// would wait for itself).
    pub fn new<L: Into<MultiLockPart>>(locks: impl IntoIterator<Item = L>) -> Result<Self> {
        let mut parts: Vec<MultiLockPart> = locks.into_iter().map(Into::into).collect();
        if parts.is_empty() {
            return Err(Error::InvalidArgument(
                "a multi-lock needs at least one lock".to_owned(),
            ));
        }
        parts.sort_by(|a, b| a.path().cmp(b.path()));
        if let Some(pair) = parts
            .windows(2)
            .find(|pair| pair[0].path() == pair[1].path())
        {
            return Err(Error::InvalidArgument(format!(
                "a multi-lock names the lock {:?} twice, and would wait for itself",
                pair[0].path()
            )));
        }
        Ok(InterProcessMultiLock {
            parts: parts.into(),
        })
    }

    /// A multi-lock of one [`InterProcessMutex`] per path, all through `client`: Curator's
    /// `InterProcessMultiLock(client, paths)`.
    ///
    /// ```no_run
    /// # fn demo(client: &zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let both = zk_recipes::InterProcessMultiLock::from_paths(client, ["/locks/a", "/locks/b"])?;
    /// # drop(both);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a path a mutex cannot use, then as [`new`](Self::new).
    pub fn from_paths<P: AsRef<str>>(
        client: &Client,
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self> {
        let parts = paths
            .into_iter()
            .map(|path| InterProcessMutex::new(client, path.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        InterProcessMultiLock::new(parts)
    }

    /// True if every part is held through this multi-lock's handles (or clones of them), as
    /// far as this process knows (Curator's `isAcquiredInThisProcess`).
    pub fn is_acquired_in_this_process(&self) -> bool {
        self.parts
            .iter()
            .all(MultiLockPart::is_acquired_in_this_process)
    }

    /// The paths of the parts, in the order they are acquired.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(MultiLockPart::path)
    }

    /// Acquires every part, in the order of their paths, waiting as long as it takes.
    ///
    /// Each part is acquired as its own `acquire` does ([`InterProcessMutex::acquire`],
    /// [`InterProcessSemaphoreMutex::acquire`]), as a separate holder.
    ///
    /// If a part taken earlier is lost while a later one is awaited (a suspension, its node
    /// deleted), the parts are given back and the acquire starts again: the guard returned
    /// holds every part at once.
    ///
    /// # Errors
    ///
    /// The first error of a part's acquire (see [`InterProcessMutex::acquire`]); the parts
    /// already taken are released in the background.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point: dropping the future releases the parts already taken
    /// (in the background) and leaves no node of the part being acquired.
    pub async fn acquire(&self) -> Result<MultiLockGuard> {
        match self.acquire_with(Wait::Forever).await? {
            Some(guard) => Ok(guard),
            // An unbounded acquire ends only with every part or an error.
            None => Err(Error::IllegalState(
                "an unbounded multi-lock acquire ended without its locks",
            )),
        }
    }

    /// Acquires every part within `timeout` in all: `Ok(None)` if one was not granted in time,
    /// and then the parts already taken are released in the background. `Duration::ZERO`
    /// tries each part once.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point, as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<MultiLockGuard>> {
        let wait = match Instant::now().checked_add(timeout) {
            _ if timeout.is_zero() => Wait::Once,
            Some(deadline) => Wait::Until(deadline),
            // A timeout too long to be a deadline is no timeout.
            None => Wait::Forever,
        };
        self.acquire_with(wait).await
    }

    async fn acquire_with(&self, wait: Wait) -> Result<Option<MultiLockGuard>> {
        loop {
            // Dropping `taken` releases each guard in the background: on a cancellation, an
            // error, a timeout, or a part lost while a later one was awaited.
            let mut taken: Vec<LockGuard> = Vec::with_capacity(self.parts.len());
            for part in self.parts.iter() {
                if taken.iter().any(LockGuard::is_lost) {
                    break;
                }
                if matches!(wait, Wait::Until(deadline) if deadline <= Instant::now()) {
                    tracing::debug!(path = %part.path(), "multi-lock: out of time; releasing the parts taken");
                    return Ok(None);
                }
                match part.acquire_with(wait).await {
                    Ok(Some(guard)) => taken.push(guard),
                    Ok(None) => {
                        tracing::debug!(path = %part.path(), "multi-lock: a part was not granted in time; releasing the parts taken");
                        return Ok(None);
                    }
                    Err(error) => {
                        tracing::debug!(path = %part.path(), %error, "multi-lock: a part failed; releasing the parts taken");
                        return Err(error);
                    }
                }
            }
            // A part may have been lost while a later one was awaited (a suspension, or its
            // node deleted): then the multi-lock was never held as a whole. Start again.
            if taken.len() == self.parts.len() && !taken.iter().any(LockGuard::is_lost) {
                tracing::debug!(parts = taken.len(), "multi-lock acquired");
                return Ok(Some(MultiLockGuard { parts: taken }));
            }
            tracing::debug!(
                "multi-lock: a part was lost while the others were acquired; starting again"
            );
            drop(taken);
            if let Wait::Once = wait {
                return Ok(None);
            }
        }
    }
}

/// Releases every guard at once (each is given back when first polled), and reports every
/// failure.
async fn release_all(parts: Vec<LockGuard>) -> Result<()> {
    let releases = parts.into_iter().map(|guard| {
        let path = guard.mutex_path().to_owned();
        guard.release().map(move |result| (path, result))
    });
    let failures: Vec<PartFailure> = join_all(releases)
        .await
        .into_iter()
        .filter_map(|(path, result)| result.err().map(|error| PartFailure { path, error }))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::PartsNotReleased { failures })
    }
}

/// A hold of every part of an [`InterProcessMultiLock`]: one [`LockGuard`] per part, in the
/// order of their paths.
///
/// Release it with [`release`](Self::release), or drop it (each part is then released in the
/// background). Like a [`LockGuard`], it is `Send` and `'static` and may be released in any
/// task.
#[must_use = "dropping the guard releases every lock at once, in the background"]
#[derive(Debug)]
pub struct MultiLockGuard {
    parts: Vec<LockGuard>,
}

impl MultiLockGuard {
    /// The guard of each part, in the order of their paths: for each part's fencing token or
    /// guarded writes.
    pub fn parts(&self) -> &[LockGuard] {
        &self.parts
    }

    /// True once any part may be lost (see [`LockGuard::is_lost`]).
    pub fn is_lost(&self) -> bool {
        self.parts.iter().any(LockGuard::is_lost)
    }

    /// Resolves when any part may be lost (at once if one already may be). The future owns
    /// what it needs (`'static`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let signals: Vec<_> = self.parts.iter().map(|part| part.lost().boxed()).collect();
        debug_assert!(
            !signals.is_empty(),
            "a multi-lock guard holds at least one part"
        );
        async move {
            // A guard has at least one part.
            select_all(signals).await;
        }
    }

    /// Asks ZooKeeper whether every part is still held, as [`LockGuard::verify`] does for one
    /// (the parts are asked at once): `false` if any answer is `false`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn verify(&self) -> bool {
        join_all(self.parts.iter().map(LockGuard::verify))
            .await
            .into_iter()
            .all(|held| held)
    }

    /// Runs a write that commits only while every part is held: one ZooKeeper `multi` that
    /// checks each part's lock node, then applies the operations `build` adds, as
    /// [`LockGuard::guarded`] does for one lock. Returns the results of `build`'s operations.
    ///
    /// ```no_run
    /// # async fn demo(guard: zk_recipes::MultiLockGuard) -> zk_recipes::Result<()> {
    /// // Both balances change together, and only while both accounts' locks are held.
    /// guard
    ///     .guarded(|writer| {
    ///         writer.add_set_data("/balances/alice", b"90", None)?;
    ///         writer.add_set_data("/balances/bob", b"110", None)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`] if the parts are held through more than one client (one
    ///   transaction runs on one session), before anything is sent;
    /// * [`Error::LockLost`] if a part's lock node is gone (that part is then lost), or the
    ///   session is lost: nothing was written;
    /// * otherwise as [`LockGuard::guarded`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped (but only
    /// while every part's lock node exists).
    pub async fn guarded<F>(&self, build: F) -> Result<Vec<MultiWriteResult>>
    where
        F: FnOnce(&mut MultiWriter<'_>) -> std::result::Result<(), zookeeper_client::Error>,
    {
        guarded_by(&self.parts, build).await
    }

    /// Releases every part, even when some releases fail.
    ///
    /// # Errors
    ///
    /// [`Error::PartsNotReleased`] with every part whose release failed, and why (as
    /// [`LockGuard::release`] says, each such node is deleted in the background, and the part
    /// is no longer held by this process).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: every part is given back when the future is first polled, and the deletes
    /// run to completion in the background even if the future is dropped.
    pub async fn release(self) -> Result<()> {
        release_all(self.parts).await
    }
}
