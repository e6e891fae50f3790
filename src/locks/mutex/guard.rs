//! [`LockGuard`]: a hold of an [`InterProcessMutex`](super::InterProcessMutex), and the guarded writes made under it.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use zookeeper_client::{CreateMode, MultiWriteError, MultiWriteResult, MultiWriter, Stat};

use super::{Inner, Role, SharedHold};
use crate::connection::Session;
use crate::error::{Error, Result};
use crate::path::validate_path;
use crate::queue::{Held, LockMode, READ_WRITE_NAMES};
use crate::sync::Locked;

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

/// A hold of an [`InterProcessMutex`](super::InterProcessMutex) (or of a half of an
/// [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock)). Made by
/// [`acquire`](super::InterProcessMutex::acquire), [`try_acquire`](super::InterProcessMutex::try_acquire),
/// [`reenter`](LockGuard::reenter) and [`downgrade`](LockGuard::downgrade); a
/// [`MultiLockGuard`](crate::MultiLockGuard)'s parts are guards too.
///
/// Release it with [`release`](Self::release), or drop it (the release then runs in the
/// background); the lock node is deleted when the last guard of the hold goes. The guard owns
/// what it needs: it is `Send` and `'static`, outlives the handle it came from, and may be
/// released or dropped in any task.
///
/// # Behavior
///
/// Dropping the last guard sends the delete before the drop returns, and does not wait for
/// its answer. ZooKeeper applies a session's requests in order, so while the session lasts,
/// every later request of the same [`Client`](crate::Client), the next `acquire` among them,
/// finds the node gone (unless the delete fails: it is then retried in the background, and
/// only logged); other sessions see it go when the server applies it, as after `release`. An
/// uncontended loop that acquires and drops thus waits for one round trip per turn (a create
/// and its listing) where one that awaits [`release`](Self::release) waits for two. Use
/// `release` when the caller must know the node is gone before it goes on, for instance
/// before it tells another process that the lock is free.
#[must_use = "dropping the guard releases the lock at once, in the background"]
pub struct LockGuard {
    pub(super) inner: Arc<Inner>,
    pub(super) hold: Arc<SharedHold>,
    /// False once released: drop then does nothing.
    pub(super) active: bool,
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
    ///   [`max_request_size`](crate::Client::max_request_size);
    /// * [`Error::NoAuth`], and the errors of [`Client::with_retry`](crate::Client::with_retry) when the retry policy
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

    /// True once the lock may be lost; see the [module docs](super) for exactly when.
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
    /// [module docs](super). The future owns what it needs (`'static`), so it can be moved
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
    /// longer held by this process. While the connection is down, the release waits for it
    /// as long as Curator's retried delete would: a connection timeout, and another for each
    /// retry the client's [retry policy](crate::ClientBuilder::retry_policy) allows (after
    /// its pause). It then returns [`Error::ConnectionLoss`] and leaves the delete to the
    /// background (the session's end deletes the node too, if it comes first). A delete
    /// held while the client is disconnected is waited for, not sent again (zookeeper-client
    /// sends it when the connection is back); one lost with its connection is sent again on
    /// the node's session. A session lost meanwhile (or the client closed) ends the wait,
    /// and the release returns `Ok`: the node goes with the session.
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
