//! [`InterProcessReadWriteLock`]: a fair read/write lock, on the same znodes as Apache
//! Curator's `InterProcessReadWriteLock`.
//!
//! # How it works
//!
//! One queue of ephemeral-sequential nodes under the lock path, with two kinds of node:
//! readers create `<path>/_c_<uuid>-__READ__<seq10>` and writers
//! `<path>/_c_<uuid>-__WRIT__<seq10>` (Curator 5.x's names; the participant id is the data).
//! Queue order is the sequence, whatever the kind:
//!
//! * a **writer** holds the lock when no node is before it, and watches its nearest
//!   predecessor;
//! * a **reader** holds it when no *writer* is before it, and watches the nearest writer before
//!   it. Readers hold together; a reader that comes after a waiting writer waits for it, so
//!   writers are never starved.
//!
//! Java processes using Curator's `InterProcessReadWriteLock` on the same path take part in
//! the same queue.
//!
//! ```no_run
//! # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
//! use zk_recipes::InterProcessReadWriteLock;
//!
//! let lock = InterProcessReadWriteLock::new(&client, "/locks/catalog")?.with_id("indexer-3");
//!
//! // Many readers at once …
//! let read = lock.read_lock().acquire().await?;
//! read.release().await?;
//!
//! // … or one writer, alone.
//! let write = lock.write_lock().acquire().await?;
//! write.guarded_set_data("/catalog/version", b"8", None).await?;
//! // Downgrade: a read hold taken while the write hold holds, then the write hold released.
//! let read = write.downgrade().await?;
//! write.release().await?;
//! read.release().await?;
//! # Ok(()) }
//! ```
//!
//! # The halves are mutexes
//!
//! [`read_lock`](InterProcessReadWriteLock::read_lock) and
//! [`write_lock`](InterProcessReadWriteLock::write_lock) are [`InterProcessMutex`]es, as in
//! Curator, with everything a mutex has: [`LockGuard`](crate::LockGuard)s with a lost signal, a fencing token
//! and guarded writes, `try_acquire`, cancel safety at every await, reentrancy through
//! [`LockGuard::reenter`](crate::LockGuard::reenter), and `participants`. Either can be a part of an
//! [`InterProcessMultiLock`](crate::InterProcessMultiLock).
//!
//! As with the mutex, every acquire is a separate holder, whichever task makes it. Two read
//! holds of one client share the lock; a write hold of a client keeps that client's readers
//! out until it is released, even if its node was deleted meanwhile (see the mutex's
//! [lost holds](crate::locks::mutex#what-lost-means-and-what-fencing-protects)).
//!
//! # Downgrade, never upgrade
//!
//! A write hold becomes a read hold with [`LockGuard::downgrade`](crate::LockGuard::downgrade), then a release of the write
//! guard: no writer gets in between, not even one that was already waiting. The other way is
//! refused: `downgrade` on a read guard is [`Error::NotDowngradable`](crate::Error::NotDowngradable).
//! A write acquire made while the same code holds a read hold waits for that read hold, as
//! `tokio::sync::RwLock` does; release the read hold first. (In Curator, a thread that holds
//! the read lock and asks for the write lock waits forever.)
//!
//! **Coming from Curator.** In Curator, a thread that holds the write lock gets the read lock
//! at once (reentrancy per thread), and that is how it downgrades. Here a read *acquire* made
//! while the same client holds the write lock is a separate holder, and waits for the write
//! hold to be released: use [`LockGuard::downgrade`](crate::LockGuard::downgrade) instead, the explicit form of Curator's
//! idiom.
//!
//! **Curator 5.4 and downgrades.** Curator 5.4 makes a downgrade's read node with a new
//! sequence, so a writer queued behind the write hold (from either language) is granted while
//! the read hold lasts (CURATOR-276; Curator 5.5, with CURATOR-621, names the read node after
//! the write node, as this crate does). Where Java processes on Curator 5.4 downgrade, their downgrades are not
//! exclusive; this crate's are, for Java and Rust writers alike. Curator 5.5 makes its read
//! node without checking that its write node still exists, so a Java process that has lost
//! its write hold unawares (its node deleted by someone else) can still place a read node at
//! its old sequence; this crate's downgrade checks the write node in the same transaction.
//! The interoperability tests run against Curator 5.4, Debian's.

use crate::connection::Client;
use crate::error::Result;
use crate::locks::mutex::InterProcessMutex;
use crate::participant::default_participant_id;
use crate::path::validate_recipe_path;
use crate::queue::Participant;
use zookeeper_client::Acl;

/// A fair read/write lock across processes: Curator's `InterProcessReadWriteLock`,
/// wire-compatible with it. See the [module documentation](self).
///
/// The handle is cheap to clone; clones share both halves.
#[derive(Clone)]
pub struct InterProcessReadWriteLock {
    read: InterProcessMutex,
    write: InterProcessMutex,
}

impl std::fmt::Debug for InterProcessReadWriteLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterProcessReadWriteLock")
            .field("path", &self.path())
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl InterProcessReadWriteLock {
    /// A read/write lock on `path`, with the default participant id (`hostname/pid`) and the
    /// client's default ACLs. Nothing is sent to ZooKeeper until the first acquire.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let lock = zk_recipes::InterProcessReadWriteLock::new(&client, "/locks/catalog")?;
    /// assert_eq!(lock.path(), "/locks/catalog");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`](crate::Error::InvalidPath) if `path` is not a usable znode path
    /// (empty, relative, `/`, under `/zookeeper`, or with characters ZooKeeper refuses).
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        validate_recipe_path(path)?;
        Ok(Self::pair(
            client,
            path,
            Vec::new(),
            default_participant_id().to_owned(),
        ))
    }

    fn pair(client: &Client, path: &str, acls: Vec<Acl>, id: String) -> Self {
        let (read, write) = InterProcessMutex::read_write_pair(client, path, acls, id);
        Self { read, write }
    }

    /// Sets the participant id of both halves, the data of their nodes. A builder method: it
    /// returns a new handle that shares nothing with earlier clones.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let lock = zk_recipes::InterProcessReadWriteLock::new(&client, "/locks/catalog")?
    ///     .with_id("indexer-3");
    /// assert_eq!(lock.read_lock().id(), "indexer-3");
    /// # Ok(()) }
    /// ```
    pub fn with_id(self, id: impl Into<String>) -> Self {
        let acls = self.acls();
        Self::pair(self.read.client(), self.path(), acls, id.into())
    }

    /// Sets the ACLs of both halves' nodes and of the parents they create (empty: the
    /// client's [default ACLs](crate::ClientBuilder::default_acls)). A builder method, like
    /// [`with_id`](Self::with_id).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::zookeeper_client::{Acl, AuthId, Permission};
    /// let lock = zk_recipes::InterProcessReadWriteLock::new(&client, "/locks/catalog")?
    ///     .with_acls(vec![Acl::new(Permission::ALL, AuthId::authed())]);
    /// # Ok(()) }
    /// ```
    pub fn with_acls(self, acls: Vec<Acl>) -> Self {
        let id = self.id().to_owned();
        Self::pair(self.read.client(), self.path(), acls, id)
    }

    fn acls(&self) -> Vec<Acl> {
        self.read.acls().to_vec()
    }

    /// The lock path, under which both halves' nodes are created.
    pub fn path(&self) -> &str {
        self.read.path()
    }

    /// The participant id both halves write into their nodes.
    pub fn id(&self) -> &str {
        self.read.id()
    }

    /// The read lock: held by any number of readers at once, never with a writer. Its guards
    /// are [`Shared`](crate::LockMode::Shared).
    pub fn read_lock(&self) -> &InterProcessMutex {
        &self.read
    }

    /// The write lock: held alone. Its guards can be [downgraded](crate::LockGuard::downgrade).
    pub fn write_lock(&self) -> &InterProcessMutex {
        &self.write
    }

    /// Every read and write node under the path, from every process (Java ones included), in
    /// queue order. `is_leader` marks the holders as the queue stands: the first node if it is
    /// a writer's, else every reader before the first writer; `mode` tells readers from
    /// writers.
    ///
    /// # Errors
    ///
    /// [`Error::NoAuth`](crate::Error::NoAuth) and the errors of [`Client::with_retry`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        self.read.all_participants().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<InterProcessReadWriteLock>();
    }
}
