//! The acquire path of an [`InterProcessSemaphoreV2`](super::InterProcessSemaphoreV2): the internal
//! lock, a lease node under it, and the wait until the leases fit the limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use zookeeper_client::CreateMode;

use super::{Inner, InterProcessSemaphoreV2, Lease, Limit};
use crate::connection::{send_now, Client, Created, ParentListing, Session, WithCreate};
use crate::error::{Error, Result};
use crate::locks::mutex::LockGuard;
use crate::queue::{CreateAhead, Incarnation, Requeues, SentAhead, Wait, LEASE_NAMES};

/// Why one attempt at a lease ended without it.
enum Failure {
    /// The internal lock or the lease node was lost before the attempt had counted its own
    /// lease: try again, as the retry policy allows, else fail with this error.
    Retry(Error),
    /// Lost while waiting for a lease to go, after the attempt had counted its own lease (a
    /// suspension, or a deposed internal lock, during a long wait): try again, with the retry
    /// policy's count started afresh, so that a wait of hours outlives its connection blips.
    Resume(Error),
    /// The internal lock was released right behind a count that then did not fit (see
    /// `lease_released_ahead`), and the lease node given back: queue for the lock again, and
    /// this time wait under it for a lease to go, as Curator does.
    Requeue,
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
    pub(super) async fn acquire_with(&self, count: u32, wait: Wait) -> Result<Option<Vec<Lease>>> {
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
    pub(super) async fn acquire_one(&self, wait: Wait) -> Result<Option<Lease>> {
        let mut requeues = Requeues::default();
        // A lease queues again at most once for a count behind an internal lock released ahead
        // that did not fit (its next attempts wait under the lock), so that a semaphore that
        // stays full costs one more lease node and one place in the queue, never a loop.
        let mut may_release_ahead = true;
        loop {
            // The deadline bounds the whole attempt, its creates and reads too; a dropped
            // attempt leaves no node.
            let attempt = self.attempt(wait, may_release_ahead);
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
                Err(Failure::Requeue) => {
                    may_release_ahead = false;
                    continue;
                }
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
    /// the limit. The internal lock is released whatever the outcome: after a grant, its delete
    /// is sent at once and the lease returned without waiting for its answer (the next
    /// acquirer's turn comes when the server deletes the node, whoever waits for the answer).
    ///
    /// With `may_release_ahead`, an attempt whose handle's last count left room releases the
    /// internal lock right behind its own count instead (see `lease_released_ahead`).
    async fn attempt(
        &self,
        wait: Wait,
        may_release_ahead: bool,
    ) -> std::result::Result<Option<Lease>, Failure> {
        // With a shared count, the count's read goes out once the lock is held whatever the
        // create does: a lease made ahead would gain nothing, and cost a create and a delete
        // when the listing does not grant the lock.
        let create_ahead = match self.inner.limit {
            Limit::Fixed(_) => Some(lease_create_ahead(&self.inner)),
            Limit::Shared(_) => None,
        };
        let acquired = self
            .inner
            .lock
            .acquire_creating_ahead(wait, create_ahead)
            .await?;
        let Some((lock, sent_ahead)) = acquired else {
            return Ok(None);
        };
        let once = matches!(wait, Wait::Once);
        if let Some(max) = self.releases_ahead(may_release_ahead, &lock) {
            let lease = self.lease_released_ahead(lock, sent_ahead, max, once);
            return Box::pin(lease).await;
        }
        let deadline = match wait {
            Wait::Until(deadline) => Some(deadline),
            Wait::Forever | Wait::Once => None,
        };
        // Boxed: only the acquirer that holds the internal lock needs this state, and
        // thousands of acquirers may wait for the lock.
        let outcome = Box::pin(self.lease_under(&lock, sent_ahead, deadline, once)).await;
        if matches!(outcome, Ok(Some(_))) {
            self.send_lock_release(lock).await;
        } else {
            // Not granted: the lock goes before the caller hears so, as the lease node did.
            // Boxed, as in `send_lock_release`.
            log_lock_release(&self.inner.path, Box::pin(lock.release()).await);
        }
        outcome
    }

    /// Sends the internal lock's delete now, and leaves the rest of the release (its answer,
    /// or a background delete after a failure) to a task of its own, so that it holds nothing
    /// up.
    async fn send_lock_release(&self, lock: LockGuard) {
        // Boxed, like the lease's wait: a release's state would otherwise be in every waiting
        // acquirer's future.
        let mut release = Box::pin(lock.release());
        // The first poll sends the delete.
        if let Poll::Ready(released) = futures::poll!(release.as_mut()) {
            log_lock_release(&self.inner.path, released);
        } else {
            let path = self.inner.path.clone();
            let rest = async move { log_lock_release(&path, release.await) };
            self.inner.client.spawn(rest);
        }
    }

    /// The fixed limit, when an attempt that `may` release the internal lock `lock` ahead of
    /// its count does: the handle's last count left room, and a request sent now goes out at
    /// once (see [`lease_released_ahead`](Self::lease_released_ahead)).
    fn releases_ahead(&self, may: bool, lock: &LockGuard) -> Option<u32> {
        let Limit::Fixed(max) = self.inner.limit else {
            return None;
        };
        let had_room = self.inner.last_count_had_room.load(Ordering::Relaxed);
        (may && had_room && self.sends_now(lock)).then_some(max)
    }

    /// Whether a request sent now goes out on `lock`'s session at once: the client is
    /// connected on that session, and the lock not lost. (A create sent while the connection
    /// is down waits for it, and the lock's delete sent behind it could go first.)
    fn sends_now(&self, lock: &LockGuard) -> bool {
        let client = &self.inner.client;
        client.state().is_connected()
            && Arc::ptr_eq(&client.session(), lock.session())
            && !lock.is_lost()
    }

    /// [`lease_under`](Self::lease_under) for an acquirer whose handle's last count left room
    /// under the fixed limit `max`: the internal lock's delete goes out right behind the
    /// lease's create and its count, before their answers, so that the next acquirer's turn
    /// does not wait for this one's round trip.
    ///
    /// ZooKeeper answers a session's requests in order, so the count is still taken under
    /// the lock, as in Curator; what changes is that an acquirer whose count does not fit no
    /// longer holds the lock. It must not wait without it (two lease nodes waiting at once
    /// could count each other forever), so it gives its lease node back and returns
    /// [`Failure::Requeue`]: it queues for the lock again, and then waits under it. Its lease
    /// node may meanwhile be counted by the next acquirer, a Java one too, which then waits
    /// for its delete (a count that includes more nodes never grants more leases: see the
    /// [module documentation](super)).
    ///
    /// The order is what keeps the count under the lock, and only that: should the create go
    /// out after the delete after all (the connection dropped between [`sends_now`]'s check
    /// and the send), the count is taken without the lock, which the count argument does not
    /// need, and this path never waits on a count. The acquirer then at worst queues again.
    ///
    /// [`sends_now`]: Self::sends_now
    async fn lease_released_ahead(
        &self,
        lock: LockGuard,
        sent_ahead: Option<SentAhead>,
        max: u32,
        once: bool,
    ) -> std::result::Result<Option<Lease>, Failure> {
        let session = lock.session().clone();
        let (interruptions, create) = self.lease_create(&session, sent_ahead);
        let mut create = std::pin::pin!(create);
        // The create and its listing go out (the client is connected on the lock's session:
        // `sends_now`), and the lock's delete behind them.
        let first = send_now(&mut create.as_mut());
        // Nothing in the release suspends: an answer already in `first` is guarded next.
        self.send_lock_release(lock).await;
        let created = match first {
            Some(created) => created,
            None => create.await,
        };
        let (mut pending, listing) = self.lease_node(created, &session).await?;
        let Some(listing) = listing else {
            // No count came with the create (found again after a connection loss, or its
            // listing failed): the attempt starts again, as the retry policy allows. `pending`
            // deletes the node.
            return Err(Failure::Retry(Error::LockLost));
        };
        let leases = listing.children.len();
        match self.count(&listing.children, &pending, max) {
            LeaseCount::Fits => {
                let granted = self.grant(&mut pending, &listing.parent, interruptions, leases, max);
                granted.await.map(Some).map_err(Failure::Retry)
            }
            LeaseCount::Missing => Err(Failure::Retry(pending.gone())),
            LeaseCount::Full => {
                let node = pending.node().name.clone();
                pending.give_back().await;
                tracing::trace!(path = %self.inner.path, %node, leases, max, "gave back a lease counted behind the internal lock's early release; queueing again");
                if once {
                    Ok(None)
                } else {
                    Err(Failure::Requeue)
                }
            }
        }
    }

    /// The lease's create: the one `sent_ahead` with the lock's grant, or one sent now, on
    /// `session` (the internal lock's); with the session's interruption count before it was
    /// sent (a drop after it is the lease's loss too).
    fn lease_create(
        &self,
        session: &Arc<Session>,
        sent_ahead: Option<SentAhead>,
    ) -> (u64, impl Future<Output = Result<Created>> + Send + 'static) {
        match sent_ahead {
            Some(sent) => (sent.interruptions(), sent.answer().left_future()),
            None => (
                session.interruption_count(),
                create_lease(self.inner.clone()).right_future(),
            ),
        }
    }

    /// The lease node that `created` made, guarded from then on (a drop deletes it), with its
    /// stat and the listing of the leases sent behind its create. A node made on a newer
    /// session than the internal lock's `session` is dropped (the drop deletes it in the
    /// background), and the attempt fails: that lock went with its session.
    async fn lease_node(
        &self,
        created: Result<Created>,
        session: &Arc<Session>,
    ) -> std::result::Result<(PendingLease, Option<ParentListing>), Failure> {
        let Created {
            node,
            pending_stat,
            listing,
            ..
        } = created?;
        let mut pending = PendingLease {
            client: self.inner.client.clone(),
            node: Some(node),
        };
        if !Arc::ptr_eq(&pending.node().session, session) {
            return Err(Failure::Retry(Error::LockLost));
        }
        if let Some(read) = pending_stat {
            pending.node.as_mut().expect("present until taken").stat =
                read.await.map_err(retry_if_transient)?;
        }
        Ok((pending, listing))
    }

    /// [`count_leases`] of `pending` among `children`, remembering whether the count left room
    /// under `max` for one more (see [`room_after`]).
    fn count(&self, children: &[String], pending: &PendingLease, max: u32) -> LeaseCount {
        let count = count_leases(children, &pending.node().name, max);
        if let Some(had_room) = room_after(count, children.len(), max) {
            let flag = &self.inner.last_count_had_room;
            flag.store(had_room, Ordering::Relaxed);
        }
        count
    }

    /// Creates a lease node while `lock` (the internal lock) is held, or takes the one
    /// `sent_ahead` with the lock's grant, and waits until the leases fit the limit: the
    /// lease, or `None` at the deadline (or after one look). A lease node not granted is
    /// deleted before this returns, when the connection allows, so that the next acquirer
    /// (which may come the moment the internal lock goes) does not count it.
    ///
    /// The first count is the listing sent right behind the create, in the same round trip
    /// (ZooKeeper answers a session's requests in order, so it includes our lease): when the
    /// leases fit, that is the grant. Only an acquirer that must wait counts again, with a
    /// watch and a check that it still holds the internal lock (see `count_until_granted`).
    async fn lease_under(
        &self,
        lock: &LockGuard,
        sent_ahead: Option<SentAhead>,
        deadline: Option<tokio::time::Instant>,
        once: bool,
    ) -> std::result::Result<Option<Lease>, Failure> {
        let inner = &self.inner;
        let session = lock.session().clone();
        let zk = session
            .zookeeper()
            .map_err(|_| Failure::Retry(Error::LockLost))?;
        let (interruptions, create) = self.lease_create(&session, sent_ahead);
        // The node is guarded the moment its create is answered: the limit's read may still be
        // under way, and a drop then (a timeout) must delete the node.
        let guarded = async { self.lease_node(create.await, &session).await };
        let (created, limit) = futures::join!(guarded, inner.limit.read(&zk, false));
        let (mut pending, listing) = created?;
        if let (Some(listing), Ok((max, _))) = (&listing, &limit) {
            match self.count(&listing.children, &pending, *max) {
                LeaseCount::Fits => {
                    let leases = listing.children.len();
                    let granted =
                        self.grant(&mut pending, &listing.parent, interruptions, leases, *max);
                    return granted.await.map(Some).map_err(Failure::Retry);
                }
                LeaseCount::Full if once => {
                    pending.give_back().await;
                    return Ok(None);
                }
                // Full: wait, counting again with a watch. Missing: the count loop finds it
                // gone too, and says so.
                LeaseCount::Full | LeaseCount::Missing => {}
            }
        }
        let outcome = self
            .count_until_granted(lock, &mut pending, deadline, once)
            .await;
        pending.give_back().await;
        outcome
    }

    /// Grants `pending`, whose count of `leases` fitted `max`, in the leases' parent of
    /// `parent` (its stat when listed); `interruptions`: its session's count before the create.
    ///
    /// A connection drop since the count may have lost the lease already: `adopt` then gives
    /// it back, and fails with [`Error::LockLost`] (the attempt counts again).
    async fn grant(
        &self,
        pending: &mut PendingLease,
        parent: &zookeeper_client::Stat,
        interruptions: u64,
        leases: usize,
        max: u32,
    ) -> Result<Lease> {
        let inner = &self.inner;
        let node = pending.take();
        let lease = inner
            .leases
            .adopt(node, Incarnation::of_parent(parent), interruptions)
            .await?;
        tracing::debug!(path = %inner.path, node = %lease.node_name(), leases, max, "lease granted");
        Ok(Lease { guard: lease })
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
            if self.count(&children, pending, max) == LeaseCount::Fits {
                let granted = self.grant(pending, &leases_stat, interruptions, children.len(), max);
                return granted.await.map(Some).map_err(Failure::Resume);
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

/// Creates our lease node, with a listing of the leases right behind it.
async fn create_lease(inner: Arc<Inner>) -> Result<Created> {
    let with = WithCreate {
        list_parent: true,
        replacing: None,
        // Nothing waits for a dropped acquire's node to go, as for a dropped lock acquire.
        abandoned: None,
    };
    let name = LEASE_NAMES.exclusive();
    let (id, mode) = (inner.id.as_bytes(), CreateMode::EphemeralSequential);
    let create = inner.client.create_protected_then_list(
        &inner.leases_path,
        name,
        id,
        mode,
        &inner.acls,
        with,
    );
    create.await
}

/// [`create_lease`], sent by the internal lock's driver behind the listing that grants the
/// lock, when a listing does (see [`CreateAhead`]). It holds the semaphore's state only while
/// the acquirer waits for the lock.
fn lease_create_ahead(inner: &Arc<Inner>) -> CreateAhead {
    let inner = inner.clone();
    Arc::new(move || Box::pin(create_lease(inner.clone())))
}

/// Logs the internal lock's release, when it failed (its node is then deleted in the
/// background).
fn log_lock_release(path: &str, released: Result<()>) {
    if let Err(e) = released {
        tracing::debug!(%path, error = %e, "releasing the semaphore's internal lock failed; it is deleted in the background");
    }
}

/// What one count of the leases says of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseCount {
    /// Ours is among them, and they are no more than the limit: the grant.
    Fits,
    /// Ours is among them, but they are more than the limit: wait for one to go.
    Full,
    /// Ours is not among them: someone deleted it.
    Missing,
}

/// The grant decision on one listing of the leases, taken after our lease node `own` was
/// made, against the limit `max`: see the [module documentation](super) for why a grant on
/// it never overruns the limit.
fn count_leases(children: &[String], own: &str, max: u32) -> LeaseCount {
    if !children.iter().any(|child| child == own) {
        LeaseCount::Missing
    } else if children.len() <= max as usize {
        LeaseCount::Fits
    } else {
        LeaseCount::Full
    }
}

/// Whether a count of `leases` that decided `count` left room under `max` for one more lease
/// beside ours; `None` when it says nothing of the room: a count without our own node (a
/// semaphore of one lease must never seem to have room beside its holder).
fn room_after(count: LeaseCount, leases: usize, max: u32) -> Option<bool> {
    match count {
        LeaseCount::Missing => None,
        LeaseCount::Fits | LeaseCount::Full => Some(leases < max as usize),
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

pub(super) fn wait_for(timeout: Duration) -> Wait {
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
            client
                .guaranteed_delete_or_warn(&node, "an ungranted lease")
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the model's schedules.
    struct Schedule(u64);

    impl Schedule {
        fn next(&mut self, below: usize) -> usize {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % below
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Acquirer {
        Idle,
        /// Listed the leases before making its own (the flawed order only).
        Listed(Vec<String>),
        /// Made its lease node; its count (a listing) is still to come.
        Created(String),
        /// Counted with the leases it saw: granted if they fit.
        Counted(String, Vec<String>),
        Holding(String),
    }

    /// Runs acquirers that create a lease node, list the leases, and decide on the listing
    /// with [`count_leases`], in an interleaving drawn from `seed`, with no internal lock at
    /// all (it is there for liveness only). `listed_before_create` models an implementation
    /// that takes its count before its create (and adds its own node to it). Returns the
    /// first moment more than `max` leases were held.
    fn overrun(
        seed: u64,
        acquirers: usize,
        max: u32,
        listed_before_create: bool,
    ) -> Option<String> {
        let mut schedule = Schedule(seed | 1);
        let mut leases: Vec<String> = Vec::new();
        let mut next_sequence = 0;
        let mut states = vec![Acquirer::Idle; acquirers];
        for _ in 0..400 {
            let who = schedule.next(acquirers);
            states[who] = match std::mem::replace(&mut states[who], Acquirer::Idle) {
                Acquirer::Idle if listed_before_create => Acquirer::Listed(leases.clone()),
                state @ (Acquirer::Idle | Acquirer::Listed(_)) => {
                    let own = format!("_c_{who}-lease-{next_sequence:010}");
                    next_sequence += 1;
                    leases.push(own.clone());
                    match state {
                        Acquirer::Listed(mut seen) => {
                            seen.push(own.clone());
                            Acquirer::Counted(own, seen)
                        }
                        _ => Acquirer::Created(own),
                    }
                }
                Acquirer::Created(own) => Acquirer::Counted(own, leases.clone()),
                Acquirer::Counted(own, seen) => match count_leases(&seen, &own, max) {
                    LeaseCount::Fits => Acquirer::Holding(own),
                    // Waits: it counts again later (its watch fired, or not yet).
                    LeaseCount::Full => Acquirer::Created(own),
                    LeaseCount::Missing => Acquirer::Idle,
                },
                Acquirer::Holding(own) => {
                    leases.retain(|lease| *lease != own);
                    Acquirer::Idle
                }
            };
            let holding = states
                .iter()
                .filter(|state| matches!(state, Acquirer::Holding(_)))
                .count();
            if holding > max as usize {
                return Some(format!("{holding} of {max} held: {states:?}"));
            }
        }
        None
    }

    #[test]
    fn a_count_decides_on_its_own_lease_and_the_limit() {
        let leases = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(count_leases(&leases, "c", 3), LeaseCount::Fits);
        assert_eq!(count_leases(&leases, "c", 2), LeaseCount::Full);
        assert_eq!(count_leases(&leases, "d", 3), LeaseCount::Missing);
    }

    #[test]
    fn only_a_count_with_our_own_lease_and_one_free_place_leaves_room() {
        assert_eq!(room_after(LeaseCount::Fits, 1, 3), Some(true));
        assert_eq!(room_after(LeaseCount::Fits, 3, 3), Some(false));
        assert_eq!(room_after(LeaseCount::Full, 4, 3), Some(false));
        // A semaphore of one lease: ours alone fills it, and a listing without ours (none at
        // all) says nothing.
        assert_eq!(room_after(LeaseCount::Fits, 1, 1), Some(false));
        assert_eq!(room_after(LeaseCount::Missing, 0, 1), None);
    }

    #[test]
    fn a_count_taken_after_the_create_never_overruns_the_limit_in_any_interleaving() {
        for seed in 0..3_000 {
            for max in 1..=3 {
                if let Some(overrun) = overrun(seed, 6, max, false) {
                    panic!("seed {seed}: {overrun}");
                }
            }
        }
    }

    #[test]
    fn the_model_finds_the_overrun_of_a_count_taken_before_the_create() {
        let found = (0..3_000).any(|seed| overrun(seed, 6, 2, true).is_some());
        assert!(found, "the model must tell a count taken too early");
    }
}
