//! [`DistributedAtomicLong`]: a counter many processes change, in Curator's format, applied
//! exactly once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zookeeper_client::{CreateMode, MultiWriteError, Stat};

use crate::connection::retry::{RetryNTimes, RetryPolicy};
use crate::connection::{ensure_parents, unless_down_for, Client, Session};
use crate::error::{is_retryable_zk, Error, Result};
use crate::locks::InterProcessMutex;
use crate::path::{join, validate_recipe_path};
use crate::sync::Locked;

/// What an operation of a [`DistributedAtomicLong`] did (Curator's `AtomicValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an operation may not have succeeded"]
pub struct AtomicValue<T> {
    /// True if the operation was applied; false if the attempts the policies allow all lost
    /// their race (or, for `compare_and_set`, the value was not the expected one).
    pub succeeded: bool,
    /// The value before the operation (the value seen, when it did not succeed).
    pub pre_value: T,
    /// The value after the operation (`pre_value` when it did not succeed).
    pub post_value: T,
    /// How the operation got there.
    pub stats: AtomicStats,
}

/// How many attempts an operation made, and how long they took (Curator's `AtomicStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AtomicStats {
    /// Optimistic attempts: a read, then a write conditional on the version read.
    pub optimistic_tries: u32,
    /// Attempts made holding the promotion lock (and the lock's acquire).
    pub promoted_lock_tries: u32,
    /// Time spent in optimistic attempts.
    pub optimistic_time: Duration,
    /// Time spent promoted: the lock's acquire and the attempts under it.
    pub promoted_time: Duration,
}

/// A lock to fall back to when optimistic attempts keep losing their race (Curator's
/// `PromotedToLock`): an [`InterProcessMutex`] at `path`, Curator's lock nodes, so a Java
/// process promoted to the same lock and a Rust one exclude each other.
#[derive(Debug, Clone)]
pub struct PromotedToLock {
    path: String,
    max_lock_time: Option<Duration>,
    retry: Arc<dyn RetryPolicy>,
}

impl PromotedToLock {
    /// The lock at `path`, acquired without a time limit, with up to 10 attempts under it
    /// (Curator's builder defaults to its client's policy; this crate to `RetryNTimes(10,
    /// 10 ms)`).
    ///
    /// ```
    /// let promoted = zk_recipes::shared::PromotedToLock::new("/counters/orders-lock");
    /// # drop(promoted);
    /// ```
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            max_lock_time: None,
            retry: Arc::new(RetryNTimes::new(10, Duration::from_millis(10))),
        }
    }

    /// Gives up the promotion when the lock is not acquired within `time`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let promoted = zk_recipes::shared::PromotedToLock::new("/counters/orders-lock")
    ///     .max_lock_time(Duration::from_secs(5));
    /// # drop(promoted);
    /// ```
    pub fn max_lock_time(mut self, time: Duration) -> Self {
        self.max_lock_time = Some(time);
        self
    }

    /// The policy of the attempts made while holding the lock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zk_recipes::retry::RetryNTimes;
    /// let promoted = zk_recipes::shared::PromotedToLock::new("/counters/orders-lock")
    ///     .retry_policy(RetryNTimes::new(3, Duration::from_millis(5)));
    /// # drop(promoted);
    /// ```
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }
}

/// A 64-bit counter in one znode that many processes change (Curator's
/// `DistributedAtomicLong`, on its format: the value as 8 bytes, big-endian; no node, or empty
/// data, is 0).
///
/// # Behavior
///
/// Every change is a read and a write conditional on the version read, retried under the
/// counter's policy while other writers win the race (Curator's optimistic mode), then, when
/// [promoted](DistributedAtomicLongBuilder::promoted_to_lock), the same under an
/// [`InterProcessMutex`] (Curator's `PromotedToLock`). After a lost race the fresh value comes
/// with the failure (the read is sent right behind the write), so a retry costs one round trip.
///
/// **Applied exactly once.** A write whose answer is lost to a broken connection may or may
/// not have been applied; retrying it blindly (as Curator does) applies an increment twice
/// when it had been. So each write also writes a marker of the handle (an ephemeral child of
/// the counter's node, `zkr-writer-<uuid>`, holding the attempt's number) in the same
/// transaction: after reconnecting on the same session, the marker tells whether the write
/// was applied. When the session was lost meanwhile, the marker went with it: the operation
/// then fails with [`Error::SessionExpired`] and its outcome is unknown (it was applied at
/// most once). Curator's processes read only the node's data, so the children do not
/// concern them.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::shared::DistributedAtomicLong;
/// let counter = DistributedAtomicLong::new(&client, "/counters/orders")?;
/// let taken = counter.increment().await?;
/// if taken.succeeded {
///     println!("order number {}", taken.post_value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedAtomicLong {
    inner: Arc<AtomicInner>,
}

#[derive(Debug)]
struct AtomicInner {
    client: Client,
    path: String,
    retry: Arc<dyn RetryPolicy>,
    promoted: Option<PromotedToLock>,
    marker: String,
    /// The session generation the marker is known to exist on, and the last attempt number.
    marker_state: Mutex<(Option<u64>, u64)>,
    /// The read that came right behind this handle's last applied write: the next change
    /// starts from it instead of a read of its own (a stale one loses its race, and the loss
    /// brings a fresh read with it).
    last_read: Mutex<Option<Carried>>,
}

/// Builds a [`DistributedAtomicLong`]: see [`DistributedAtomicLong::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct DistributedAtomicLongBuilder {
    client: Client,
    path: String,
    retry: Arc<dyn RetryPolicy>,
    promoted: Option<PromotedToLock>,
}

impl DistributedAtomicLongBuilder {
    /// How often an optimistic change is tried again after losing its race (Curator's
    /// `retryPolicy` argument); `RetryNTimes(10, 10 ms)` by default.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// use zk_recipes::retry::ExponentialBackoffRetry;
    /// let counter = zk_recipes::shared::DistributedAtomicLong::builder(&client, "/counters/a")
    ///     .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(1), 10))
    ///     .build()?;
    /// # drop(counter); Ok(()) }
    /// ```
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }

    /// Falls back to `lock` when the optimistic attempts all lose their race (Curator's
    /// `PromotedToLock`).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::shared::{DistributedAtomicLong, PromotedToLock};
    /// let counter = DistributedAtomicLong::builder(&client, "/counters/a")
    ///     .promoted_to_lock(PromotedToLock::new("/counters/a-lock"))
    ///     .build()?;
    /// # drop(counter); Ok(()) }
    /// ```
    pub fn promoted_to_lock(mut self, lock: PromotedToLock) -> Self {
        self.promoted = Some(lock);
        self
    }

    /// The counter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad path (or `/`), or a bad lock path.
    pub fn build(self) -> Result<DistributedAtomicLong> {
        validate_recipe_path(&self.path)?;
        if let Some(lock) = &self.promoted {
            validate_recipe_path(&lock.path)?;
        }
        let marker = join(
            &self.path,
            &format!("zkr-writer-{}", uuid::Uuid::new_v4().simple()),
        );
        Ok(DistributedAtomicLong {
            inner: Arc::new(AtomicInner {
                client: self.client,
                path: self.path,
                retry: self.retry,
                promoted: self.promoted,
                marker,
                marker_state: Mutex::new((None, 0)),
                last_read: Mutex::new(None),
            }),
        })
    }
}

/// How long a contender that lost a race may step aside before it tries again.
const CONTENTION_PAUSE: Duration = Duration::from_millis(1);

/// A node's data and stat, as read.
type NodeRead = (Vec<u8>, Stat);

/// A read of the counter (`None`: no node) on the session of that generation.
type Carried = (Option<NodeRead>, u64);

/// What one attempt found.
enum Attempt {
    /// Applied: the value before and after.
    Applied(i64, i64),
    /// Not written: the value is not the one a compare-and-set expects.
    Unchanged(i64),
    /// Lost the race (the version moved, the node came or went): try again.
    Raced,
}

impl DistributedAtomicLong {
    /// The counter at `path`, with Curator's usual optimistic policy of 10 attempts 10 ms apart
    /// and no promotion.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad path (or `/`).
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        Self::builder(client, path).build()
    }

    /// A builder for the counter at `path`.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// use zk_recipes::retry::RetryNTimes;
    /// use zk_recipes::shared::{DistributedAtomicLong, PromotedToLock};
    /// let counter = DistributedAtomicLong::builder(&client, "/counters/orders")
    ///     .retry_policy(RetryNTimes::new(5, Duration::from_millis(5)))
    ///     .promoted_to_lock(PromotedToLock::new("/counters/orders-lock"))
    ///     .build()?;
    /// # drop(counter); Ok(()) }
    /// ```
    pub fn builder(client: &Client, path: &str) -> DistributedAtomicLongBuilder {
        DistributedAtomicLongBuilder {
            client: client.clone(),
            path: path.to_owned(),
            retry: Arc::new(RetryNTimes::new(10, Duration::from_millis(10))),
            promoted: None,
        }
    }

    /// The counter's path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The value now (0 if the node does not exist); `succeeded` is always true.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedData`] if the node's data is not 8 bytes (nor empty); the errors of
    /// [`Client::get_data`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get(&self) -> Result<AtomicValue<i64>> {
        let value = match self.inner.client.get_data(&self.inner.path).await? {
            Some((data, _)) => decode(&self.inner.path, &data)?,
            None => 0,
        };
        Ok(AtomicValue {
            succeeded: true,
            pre_value: value,
            post_value: value,
            stats: AtomicStats::default(),
        })
    }

    /// Adds 1.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    ///
    /// # Cancel safety
    ///
    /// As [`add`](Self::add).
    pub async fn increment(&self) -> Result<AtomicValue<i64>> {
        self.add(1).await
    }

    /// Subtracts 1.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    ///
    /// # Cancel safety
    ///
    /// As [`add`](Self::add).
    pub async fn decrement(&self) -> Result<AtomicValue<i64>> {
        self.add(-1).await
    }

    /// Subtracts `delta`.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    ///
    /// # Cancel safety
    ///
    /// As [`add`](Self::add).
    pub async fn subtract(&self, delta: i64) -> Result<AtomicValue<i64>> {
        self.add(delta.wrapping_neg()).await
    }

    /// Adds `delta` (wrapping at the ends of `i64`, as Java's `long` does).
    ///
    /// # Errors
    ///
    /// * [`Error::MalformedData`] if the node's data is not a counter;
    /// * [`Error::SessionExpired`] if the session was lost while the outcome of a write was
    ///   unknown: it was applied once or not at all;
    /// * the errors of [`Client::with_retry`] when the client's policy gives up on the
    ///   connection; [`Error::NoAuth`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped call may have been applied (once).
    pub async fn add(&self, delta: i64) -> Result<AtomicValue<i64>> {
        self.operate(move |value| Some(value.wrapping_add(delta)))
            .await
    }

    /// Sets the value to `new_value` if it is `expected` now; `succeeded` says whether it was.
    /// One attempt: a change of the version between the read and the write fails it, and so
    /// does a missing node (nothing to compare with; [`initialize`](Self::initialize) makes it),
    /// as in Curator's `compareAndSet`.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    ///
    /// # Cancel safety
    ///
    /// As [`add`](Self::add).
    pub async fn compare_and_set(&self, expected: i64, new_value: i64) -> Result<AtomicValue<i64>> {
        let started = Instant::now();
        let mut stats = AtomicStats {
            optimistic_tries: 1,
            ..AtomicStats::default()
        };
        let outcome = self
            .inner
            .attempt(
                &|value| (value == expected).then_some(new_value),
                &mut None,
                false,
            )
            .await;
        stats.optimistic_time = started.elapsed();
        Ok(match outcome? {
            (Attempt::Applied(pre, post), _) => AtomicValue {
                succeeded: true,
                pre_value: pre,
                post_value: post,
                stats,
            },
            (Attempt::Unchanged(pre), _) | (Attempt::Raced, pre) => AtomicValue {
                succeeded: false,
                pre_value: pre,
                post_value: pre,
                stats,
            },
        })
    }

    /// Sets the value to `new_value` whatever it is, with the optimistic attempts (and the
    /// promotion) of [`add`](Self::add) (Curator's `trySet`).
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    ///
    /// # Cancel safety
    ///
    /// As [`add`](Self::add).
    pub async fn try_set(&self, new_value: i64) -> Result<AtomicValue<i64>> {
        self.operate(move |_| Some(new_value)).await
    }

    /// Sets the value to `new_value` unconditionally, making the node if need be (Curator's
    /// `forceSet`).
    ///
    /// # Errors
    ///
    /// The errors of [`Client::with_retry`]; [`Error::NoAuth`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped.
    pub async fn force_set(&self, new_value: i64) -> Result<()> {
        let client = &self.inner.client;
        let path = self.inner.path.as_str();
        let data = new_value.to_be_bytes();
        match client.set_data(path, &data, None).await {
            Ok(_) => Ok(()),
            Err(Error::ZooKeeper(zookeeper_client::Error::NoNode)) => {
                match client
                    .create(path, &data, CreateMode::Persistent, &[])
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(Error::ZooKeeper(zookeeper_client::Error::NodeExists)) => {
                        client.set_data(path, &data, None).await.map(drop)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the counter's node with `value` if it does not exist; `true` if it made it
    /// (Curator's `initialize`).
    ///
    /// # Errors
    ///
    /// The errors of [`Client::create`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may be made even if the future is dropped.
    pub async fn initialize(&self, value: i64) -> Result<bool> {
        match self
            .inner
            .client
            .create(
                &self.inner.path,
                &value.to_be_bytes(),
                CreateMode::Persistent,
                &[],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::ZooKeeper(zookeeper_client::Error::NodeExists)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Optimistic attempts, then promoted ones, of the change `make`.
    async fn operate(
        &self,
        make: impl Fn(i64) -> Option<i64> + Send + Sync,
    ) -> Result<AtomicValue<i64>> {
        let inner = &self.inner;
        let mut stats = AtomicStats::default();
        let started = Instant::now();
        let mut last_seen = 0;
        if let Some(value) = inner
            .attempts(
                &make,
                inner.retry.as_ref(),
                &mut stats.optimistic_tries,
                &mut last_seen,
            )
            .await?
        {
            stats.optimistic_time = started.elapsed();
            return Ok(value.with_stats(stats));
        }
        stats.optimistic_time = started.elapsed();
        if let Some(promoted) = &inner.promoted {
            let promoted_started = Instant::now();
            stats.promoted_lock_tries += 1;
            let lock = InterProcessMutex::new(&inner.client, &promoted.path)?;
            let guard = match promoted.max_lock_time {
                Some(limit) => lock.try_acquire(limit).await?,
                None => Some(lock.acquire().await?),
            };
            if let Some(guard) = guard {
                let outcome = inner
                    .attempts(
                        &make,
                        promoted.retry.as_ref(),
                        &mut stats.promoted_lock_tries,
                        &mut last_seen,
                    )
                    .await;
                let released = guard.release().await;
                stats.promoted_time = promoted_started.elapsed();
                if let Some(value) = outcome? {
                    released?;
                    return Ok(value.with_stats(stats));
                }
                released?;
            }
            stats.promoted_time = promoted_started.elapsed();
        }
        Ok(AtomicValue {
            succeeded: false,
            pre_value: last_seen,
            post_value: last_seen,
            stats,
        })
    }
}

impl AtomicValue<i64> {
    fn with_stats(mut self, stats: AtomicStats) -> Self {
        self.stats = stats;
        self
    }
}

impl AtomicInner {
    /// Attempts `make` until one applies it (or finds it does not apply), or `policy` gives
    /// up on the lost races (`None`); counts the attempts in `tries`.
    async fn attempts(
        &self,
        make: &(dyn Fn(i64) -> Option<i64> + Send + Sync),
        policy: &dyn RetryPolicy,
        tries: &mut u32,
        last_seen: &mut i64,
    ) -> Result<Option<AtomicValue<i64>>> {
        let started = Instant::now();
        let mut races = 0;
        let mut carried = self.last_read.locked().take();
        let mut from_cache = carried.is_some();
        loop {
            *tries += 1;
            let (attempt, seen) = self.attempt(make, &mut carried, true).await?;
            *last_seen = seen;
            if from_cache && matches!(attempt, Attempt::Unchanged(_)) {
                // Decided on a read from an earlier change, which may be stale: decide again
                // on a fresh one.
                from_cache = false;
                carried = None;
                *tries -= 1;
                continue;
            }
            from_cache = false;
            match attempt {
                Attempt::Applied(pre, post) => {
                    return Ok(Some(AtomicValue {
                        succeeded: true,
                        pre_value: pre,
                        post_value: post,
                        stats: AtomicStats::default(),
                    }))
                }
                Attempt::Unchanged(pre) => {
                    return Ok(Some(AtomicValue {
                        succeeded: false,
                        pre_value: pre,
                        post_value: pre,
                        stats: AtomicStats::default(),
                    }))
                }
                Attempt::Raced => {}
            }
            match policy.allow_retry(races, started.elapsed()) {
                Some(pause) => {
                    races += 1;
                    // Contenders that lost a race together all hold the same fresh read and
                    // would collide again at once: each steps aside for a random number of
                    // pauses, up to one more per race lost (each lost race is a logged
                    // transaction on the server).
                    let pause = if pause.is_zero() {
                        CONTENTION_PAUSE * fastrand::u32(0..=(races + 1).min(6))
                    } else {
                        pause
                    };
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                None => return Ok(None),
            }
        }
    }

    /// One attempt at `make`: a read (or `carried`, a read of this session that came with
    /// the last lost race), then the write conditional on its version (with this handle's
    /// marker), retried on connection failures under the client's policy. A lost race leaves
    /// the fresh read in `carried`. The value last seen comes with it.
    async fn attempt(
        &self,
        make: &(dyn Fn(i64) -> Option<i64> + Send + Sync),
        carried: &mut Option<Carried>,
        may_create: bool,
    ) -> Result<(Attempt, i64)> {
        let path = self.path.as_str();
        let mut connection_tries = 0u32;
        let connection_started = Instant::now();
        loop {
            let session = self.client.connected().await?;
            let zk = session.zookeeper()?;
            let current = match carried.take() {
                Some((current, generation)) if generation == session.generation() => current,
                _ => {
                    match unless_down_for(&zk, self.client.connection_timeout(), zk.get_data(path))
                        .await
                    {
                        Some(Ok(found)) => Some(found),
                        Some(Err(zookeeper_client::Error::NoNode)) => None,
                        Some(Err(e)) => {
                            self.pause_or_fail(
                                Error::from(e),
                                &mut connection_tries,
                                connection_started,
                            )
                            .await?;
                            continue;
                        }
                        None => {
                            self.pause_or_fail(
                                Error::ConnectionLoss,
                                &mut connection_tries,
                                connection_started,
                            )
                            .await?;
                            continue;
                        }
                    }
                }
            };
            let pre = match &current {
                Some((data, _)) => decode(path, data)?,
                None => 0,
            };
            if current.is_none() && !may_create {
                // Curator's compareAndSet: no node, nothing to compare with.
                return Ok((Attempt::Unchanged(pre), pre));
            }
            let Some(post) = make(pre) else {
                return Ok((Attempt::Unchanged(pre), pre));
            };
            // The transaction: the counter's write and the marker's, in one.
            let number = {
                let mut state = self.marker_state.locked();
                state.1 += 1;
                state.1
            };
            let marker_known = self.marker_state.locked().0 == Some(session.generation());
            let acls = self.client.default_acls();
            let mut txn = zk.new_multi_writer();
            match &current {
                Some((_, stat)) => {
                    txn.add_set_data(path, &post.to_be_bytes(), Some(stat.version))?
                }
                None => txn.add_create(
                    path,
                    &post.to_be_bytes(),
                    &CreateMode::Persistent.with_acls(acls),
                )?,
            }
            if marker_known {
                txn.add_set_data(&self.marker, &number.to_be_bytes(), None)?;
            } else {
                txn.add_create(
                    &self.marker,
                    &number.to_be_bytes(),
                    &CreateMode::Ephemeral.with_acls(acls),
                )?;
            }
            let commit = txn.commit();
            // Sent right behind the write: the fresh value if the race is lost.
            let fresh = zk.get_data(path);
            let committed = unless_down_for(&zk, self.client.connection_timeout(), commit).await;
            match committed {
                Some(Ok(_)) => {
                    self.marker_state.locked().0 = Some(session.generation());
                    // Already on its way: where the next change of this handle starts.
                    if let Some(Ok(found)) =
                        unless_down_for(&zk, self.client.connection_timeout(), fresh).await
                    {
                        *self.last_read.locked() = Some((Some(found), session.generation()));
                    }
                    return Ok((Attempt::Applied(pre, post), post));
                }
                Some(Err(MultiWriteError::OperationFailed { index: 0, source })) => match source {
                    zookeeper_client::Error::BadVersion | zookeeper_client::Error::NodeExists => {
                        let fresh =
                            unless_down_for(&zk, self.client.connection_timeout(), fresh).await;
                        *carried = match fresh {
                            Some(Ok(found)) => Some((Some(found), session.generation())),
                            Some(Err(zookeeper_client::Error::NoNode)) => {
                                Some((None, session.generation()))
                            }
                            _ => None,
                        };
                        let seen = match &carried {
                            Some((Some((data, _)), _)) => decode(path, data).unwrap_or(pre),
                            _ => pre,
                        };
                        return Ok((Attempt::Raced, seen));
                    }
                    zookeeper_client::Error::NoNode if current.is_none() => {
                        // The counter's parent is missing: make it, then try again.
                        if let Err(e) = ensure_parents(&zk, path, acls).await {
                            self.pause_or_fail(
                                Error::from(e),
                                &mut connection_tries,
                                connection_started,
                            )
                            .await?;
                        }
                        continue;
                    }
                    zookeeper_client::Error::NoNode => return Ok((Attempt::Raced, pre)),
                    e => return Err(Error::from(e)),
                },
                Some(Err(MultiWriteError::OperationFailed { source, .. })) => match source {
                    // The marker: gone (someone deleted it), or there already (a create of
                    // ours whose answer was lost). Either way, now we know.
                    zookeeper_client::Error::NoNode => {
                        self.marker_state.locked().0 = None;
                        continue;
                    }
                    zookeeper_client::Error::NodeExists => {
                        self.marker_state.locked().0 = Some(session.generation());
                        continue;
                    }
                    e => return Err(Error::from(e)),
                },
                Some(Err(MultiWriteError::RequestFailed { source }))
                    if !is_retryable_zk(&source) =>
                {
                    return Err(Error::from(source))
                }
                // The answer is lost: was the transaction applied?
                Some(Err(MultiWriteError::RequestFailed { .. })) | None => {
                    if let Some(found) = self
                        .resolve(
                            &session,
                            number,
                            pre,
                            post,
                            &mut connection_tries,
                            connection_started,
                        )
                        .await?
                    {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// After a write's answer was lost: whether it was applied, from the marker, read on the
    /// same session once it is connected again. `None` if it was not (the write may be made
    /// again).
    async fn resolve(
        &self,
        session: &Arc<Session>,
        number: u64,
        pre: i64,
        post: i64,
        tries: &mut u32,
        started: Instant,
    ) -> Result<Option<(Attempt, i64)>> {
        loop {
            let connected = self.client.connected().await?;
            if connected.generation() != session.generation() || session.is_lost() {
                // The marker went with the session: the outcome is unknown.
                self.marker_state.locked().0 = None;
                return Err(Error::SessionExpired);
            }
            let zk = connected.zookeeper()?;
            let read = async {
                zk.sync(&self.marker).await.or_else(|e| match e {
                    zookeeper_client::Error::NoNode => Ok(()),
                    e => Err(e),
                })?;
                zk.get_data(&self.marker).await
            };
            match unless_down_for(&zk, self.client.connection_timeout(), read).await {
                Some(Ok((data, _))) => {
                    self.marker_state.locked().0 = Some(session.generation());
                    if data == number.to_be_bytes() {
                        return Ok(Some((Attempt::Applied(pre, post), post)));
                    }
                    return Ok(None);
                }
                Some(Err(zookeeper_client::Error::NoNode)) => {
                    self.marker_state.locked().0 = None;
                    return Ok(None);
                }
                Some(Err(e)) => self.pause_or_fail(Error::from(e), tries, started).await?,
                None => {
                    self.pause_or_fail(Error::ConnectionLoss, tries, started)
                        .await?
                }
            }
        }
    }

    /// Pauses before another try after a connection failure, as the client's policy allows;
    /// the failure when it gives up.
    async fn pause_or_fail(&self, error: Error, tries: &mut u32, started: Instant) -> Result<()> {
        let policy = self.client.retry_policy();
        if !policy.allow_retry_on(&error) {
            return Err(error);
        }
        match policy.allow_retry(*tries, started.elapsed()) {
            Some(pause) => {
                *tries += 1;
                tokio::time::sleep(pause).await;
                Ok(())
            }
            None => Err(error),
        }
    }
}

/// A counter in Curator's format: 8 bytes, big-endian; empty data is 0.
fn decode(path: &str, data: &[u8]) -> Result<i64> {
    match data.len() {
        0 => Ok(0),
        8 => Ok(i64::from_be_bytes(data.try_into().expect("8 bytes"))),
        n => Err(Error::MalformedData(format!(
            "the counter {path:?} holds {n} bytes, not an 8-byte value"
        ))),
    }
}

impl Drop for AtomicInner {
    fn drop(&mut self) {
        // The marker goes with the session anyway; deleting it now keeps the node clean.
        if self.marker_state.locked().0.is_some() {
            let client = self.client.clone();
            let marker = self.marker.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = client.delete(&marker, None).await;
                });
            }
        }
    }
}
