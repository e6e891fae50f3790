//! [`Lease`]: a lease of a semaphore, and the hold of a semaphore mutex.

use zookeeper_client::{MultiWriteResult, Stat};

use crate::error::Result;
use crate::locks::mutex::LockGuard;

/// A lease of an [`InterProcessSemaphoreV2`](super::InterProcessSemaphoreV2) (or the hold of an
/// [`InterProcessSemaphoreMutex`](super::InterProcessSemaphoreMutex)).
///
/// Release it with [`release`](Self::release), or drop it (the release then runs in the
/// background). It owns what it needs: it is `Send` and `'static`, and may be released in any
/// task. A dropped lease's delete is sent before the drop returns, as a dropped
/// [`LockGuard`]'s is (see its `# Behavior`): while the session lasts, every later request of
/// the same client finds the lease gone, unless the delete fails.
#[must_use = "dropping a lease releases it at once, in the background"]
#[derive(Debug)]
pub struct Lease {
    pub(super) guard: LockGuard,
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
    /// As [`LockGuard::guarded`]: [`Error::LockLost`](crate::Error::LockLost) if the lease node is gone.
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
    /// [`Error::InvalidPath`](crate::Error::InvalidPath), then as [`guarded`](Self::guarded).
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
    /// retried for as long as its session lives. While the connection is down, the release
    /// waits for it as [`LockGuard::release`] does.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the delete runs to completion in the background if the future is dropped.
    pub async fn release(self) -> Result<()> {
        self.guard.release().await
    }
}
