//! [`InterProcessLock`] and [`LockHold`]: what every exclusive lock of the crate does
//! (Curator's `InterProcessLock` interface), for code that is generic over the kind of lock.

use std::time::Duration;

use super::multi_lock::{InterProcessMultiLock, MultiLockGuard};
use super::mutex::{InterProcessMutex, LockGuard};
use super::semaphore::{InterProcessSemaphoreMutex, Lease};
use crate::error::Result;

/// An exclusive lock held across processes (Curator's `InterProcessLock`): implemented by
/// [`InterProcessMutex`] (and so by each half of an
/// [`InterProcessReadWriteLock`](super::InterProcessReadWriteLock)),
/// [`InterProcessSemaphoreMutex`] and [`InterProcessMultiLock`].
///
/// Curator's `release()` is on the lock, for the calling thread's hold; here every acquire is
/// a holder of its own, so the release is on the hold it returns ([`LockHold::release`]).
///
/// Each method is the lock's own inherent method, with its errors and cancel safety (every
/// acquire of the crate is cancel safe at every await point: a dropped acquire leaves no node
/// behind).
///
/// ```no_run
/// use std::time::Duration;
/// use zk_recipes::{InterProcessLock, LockHold};
///
/// /// Runs `work` under any of the crate's locks, giving up after `patience`.
/// async fn exclusively<L: InterProcessLock>(lock: &L, patience: Duration, work: impl FnOnce())
///     -> zk_recipes::Result<bool>
/// {
///     let Some(hold) = lock.try_acquire(patience).await? else { return Ok(false) };
///     work();
///     hold.release().await?;
///     Ok(true)
/// }
/// ```
#[async_trait::async_trait]
pub trait InterProcessLock: Send + Sync {
    /// What an acquire returns: the hold, which gives the lock back when released or dropped.
    type Hold: LockHold;

    /// Waits for the lock as long as it takes.
    ///
    /// # Errors
    ///
    /// The lock's own (for example [`InterProcessMutex::acquire`]'s).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point: a dropped acquire leaves no node behind.
    async fn acquire(&self) -> Result<Self::Hold>;

    /// Waits for the lock at most `timeout`: `Ok(None)` if it was not granted in time.
    /// `Duration::ZERO` tries once.
    ///
    /// # Errors
    ///
    /// The lock's own (for example [`InterProcessMutex::try_acquire`]'s).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe at every await point, as [`acquire`](Self::acquire).
    async fn try_acquire(&self, timeout: Duration) -> Result<Option<Self::Hold>>;

    /// True if a hold acquired through this handle (or a clone) has not been released yet, as
    /// far as this process knows (Curator's `isAcquiredInThisProcess`).
    fn is_acquired_in_this_process(&self) -> bool;
}

/// A held [`InterProcessLock`]: [`LockGuard`], [`Lease`] and [`MultiLockGuard`].
#[async_trait::async_trait]
pub trait LockHold: Send + Sync + 'static {
    /// Gives the lock back (what dropping the hold does in the background).
    ///
    /// # Errors
    ///
    /// The hold's own (for example [`LockGuard::release`]'s): the delete's error, after which
    /// the node is deleted in the background.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the release runs to completion in the background if the future is dropped.
    async fn release(self) -> Result<()>;

    /// True once the hold may be lost (a suspension, an expiry, its node deleted): stop
    /// acting on it. Costs nothing.
    fn is_lost(&self) -> bool;

    /// True if the server says that the hold is still good now (a `sync` and a read: one
    /// round trip).
    async fn verify(&self) -> bool;
}

#[async_trait::async_trait]
impl InterProcessLock for InterProcessMutex {
    type Hold = LockGuard;

    async fn acquire(&self) -> Result<LockGuard> {
        InterProcessMutex::acquire(self).await
    }

    async fn try_acquire(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        InterProcessMutex::try_acquire(self, timeout).await
    }

    fn is_acquired_in_this_process(&self) -> bool {
        InterProcessMutex::is_acquired_in_this_process(self)
    }
}

#[async_trait::async_trait]
impl InterProcessLock for InterProcessSemaphoreMutex {
    type Hold = Lease;

    async fn acquire(&self) -> Result<Lease> {
        InterProcessSemaphoreMutex::acquire(self).await
    }

    async fn try_acquire(&self, timeout: Duration) -> Result<Option<Lease>> {
        InterProcessSemaphoreMutex::try_acquire(self, timeout).await
    }

    fn is_acquired_in_this_process(&self) -> bool {
        InterProcessSemaphoreMutex::is_acquired_in_this_process(self)
    }
}

#[async_trait::async_trait]
impl InterProcessLock for InterProcessMultiLock {
    type Hold = MultiLockGuard;

    async fn acquire(&self) -> Result<MultiLockGuard> {
        InterProcessMultiLock::acquire(self).await
    }

    async fn try_acquire(&self, timeout: Duration) -> Result<Option<MultiLockGuard>> {
        InterProcessMultiLock::try_acquire(self, timeout).await
    }

    fn is_acquired_in_this_process(&self) -> bool {
        InterProcessMultiLock::is_acquired_in_this_process(self)
    }
}

#[async_trait::async_trait]
impl LockHold for LockGuard {
    async fn release(self) -> Result<()> {
        LockGuard::release(self).await
    }

    fn is_lost(&self) -> bool {
        LockGuard::is_lost(self)
    }

    async fn verify(&self) -> bool {
        LockGuard::verify(self).await
    }
}

#[async_trait::async_trait]
impl LockHold for Lease {
    async fn release(self) -> Result<()> {
        Lease::release(self).await
    }

    fn is_lost(&self) -> bool {
        Lease::is_lost(self)
    }

    async fn verify(&self) -> bool {
        Lease::verify(self).await
    }
}

#[async_trait::async_trait]
impl LockHold for MultiLockGuard {
    async fn release(self) -> Result<()> {
        MultiLockGuard::release(self).await
    }

    fn is_lost(&self) -> bool {
        MultiLockGuard::is_lost(self)
    }

    async fn verify(&self) -> bool {
        MultiLockGuard::verify(self).await
    }
}
