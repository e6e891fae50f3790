//! The connection manager: one ZooKeeper session at a time, Curator's connection states, retry
//! policies, a new session after expiry, and protected creates.
//!
//! Everything else in this crate stands on [`Client`]: recipes ask it for the current
//! [`Session`], watch its [`ConnectionState`]s, and create their nodes through
//! [`Client::create_protected`].

mod backoff;
mod builder;
mod endpoint;
mod manager;
mod nodelay;
mod protected;
pub mod retry;
mod session;
mod state;
#[cfg(feature = "tls")]
mod tls;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acl, Acls, CreateMode, Stat};

pub(crate) use self::backoff::Backoff;
pub use self::builder::ClientBuilder;
pub(crate) use self::builder::Config;
#[cfg(feature = "testing")]
pub(crate) use self::nodelay::nodelay_of_connections_to;
pub use self::protected::ProtectedNode;
pub(crate) use self::protected::{
    send_now, BackgroundDeletes, Created, ParentListing, PendingStat, WithCreate,
    PROTECTION_PREFIX_LEN,
};
pub use self::session::Session;
use self::state::StateFanout;
pub use self::state::{ConnectionState, ConnectionStates};
#[cfg(feature = "tls")]
pub use self::tls::TlsConfig;
use crate::error::{Error, Result};

/// A ZooKeeper connection manager, shared by every recipe: Curator's `CuratorFramework`.
///
/// `Client` is cheap to clone; all clones share one session. Build one with
/// [`Client::builder`].
///
/// ```no_run
/// # async fn demo() -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use futures::StreamExt;
/// use zk_recipes::{retry::ExponentialBackoffRetry, Client};
///
/// let client = Client::builder("127.0.0.1:2181")
///     .session_timeout(Duration::from_secs(10))
///     .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
///     .connect()
///     .await?;
/// let mut states = client.connection_states();
/// tokio::spawn(async move {
///     while let Some(state) = states.next().await {
///         tracing::info!(%state, "ZooKeeper connection");
///     }
/// });
/// let (data, _stat) = client.with_retry(|zk| async move { zk.get_data("/").await }).await?;
/// # Ok(()) }
/// ```
///
/// # Behavior
///
/// These are the guarantees `tests/it/connection.rs` checks against a real ZooKeeper.
///
/// * **States.** The client reports Curator's [`ConnectionState`]s: `Connected` once, then
///   `Suspended` when the connection drops (zookeeper-client's `Disconnected`: at once when the
///   socket closes, else after a silence of the connection timeout, or of 2/5 of the session
///   timeout when the connection timeout is longer than 3/5 of it), and `Reconnected` when it
///   is back on the same session and a request has made the round trip on it (not merely when
///   the server's connect response arrives: a handshake cut short is no reconnection): a drop
///   shorter than the session timeout yields exactly `Suspended`, `Reconnected`. `Lost` comes when the server says the session expired (after
///   the `Suspended` of the dropped connection), **or** when the client has been `Suspended`
///   for the negotiated session timeout × the
///   [simulated-expiration percentage](ClientBuilder::simulated_session_expiration_percent)
///   (100 by default), whichever is first; never earlier. Every subscriber of
///   [`connection_states`](Self::connection_states) sees every transition, in order; none is
///   dropped.
/// * **Sessions.** After `Lost` the old session is abandoned for good (its zookeeper-client
///   handle is dropped, which closes it on the server if it is still alive) and the manager
///   connects a **new** session, with backoff, for as long as the client is open; then it
///   reports `Reconnected`. The switch to the new session is one atomic swap: a caller sees
///   either the old [`Session`] or the new one, and can tell them apart with
///   [`Session::id`] and [`Session::generation`] (0, then 1, 2, ...). Recipes re-create their
///   nodes on the new session.
/// * **Retries.** [`with_retry`](Self::with_retry) and the retried helpers wait for a
///   connection (at most the connection timeout: a wait that times out counts as a failed
///   attempt with [`Error::ConnectionLoss`]), run the operation, and retry retryable failures
///   (connection loss, timeouts, a moved session, an expired session once a new one exists)
///   after sleeping what the [`RetryPolicy`](retry::RetryPolicy) says, until it gives up; other
///   errors are returned at once, without a retry. So they outlast a server restart when the
///   policy allows. No wait is unbounded: an attempt in flight fails when zookeeper-client
///   detects the drop (the silence above), and the attempts are bounded by the policy.
/// * **Whose retries.** Work a caller awaits follows the client's
///   [`RetryPolicy`](retry::RetryPolicy): [`with_retry`](Self::with_retry) and the helpers,
///   protected creates, a mutex's re-joins after its waiting node was lost, a latch's attempts
///   whose connection drops. Background work, which has no caller to give up to (deleting a
///   recipe's own nodes, watching a held node, a queue driver's next step), retries until the
///   session is lost, pausing with a jittered backoff that grows to a cap: once the session
///   is lost, its ephemeral nodes are gone and the work is moot.
/// * **Protected creates.** [`create_protected`](Self::create_protected) names nodes with
///   Curator's `_c_<uuid>-` prefix and, after a connection loss, finds a node it may have
///   created by that prefix and, for an ephemeral node, by its owner being the same session
///   (CURATOR-498): a create whose answer was lost returns the node it made, and no other
///   is left. A create whose future is dropped mid-flight has its node, if any, deleted in
///   the background.
/// * **Close.** [`close`](Self::close), or dropping the last clone, stops the manager, ends
///   every state stream (also ones subscribed later), and closes the session: `close` returns
///   once the server has confirmed it (or after the connection timeout), so the session's
///   ephemeral nodes are gone by then. A handle from [`zookeeper`](Self::zookeeper) that is
///   still held keeps the session open until it is dropped. Afterwards every operation, on
///   every clone, fails with [`Error::Closed`].
#[derive(Clone, Debug)]
pub struct Client {
    shared: Arc<Shared>,
    // Only user-facing handles hold this; its drop closes the client.
    _handle: Arc<CloseOnDrop>,
}

/// The state the client and its manager task share; private to the connection module
/// (recipes use [`Client`]'s methods).
#[derive(Debug)]
pub(super) struct Shared {
    pub(crate) config: Config,
    /// The current session and state, swapped atomically by the manager.
    pub(crate) current: watch::Sender<Snapshot>,
    pub(crate) fanout: StateFanout,
    pub(crate) closed: CancellationToken,
    /// Cancelled by the manager task when it has finished: the session is released (and closed
    /// on the server, if it could be) and every state stream has ended.
    pub(crate) stopped: CancellationToken,
    /// Where background clean-ups run, even when a guard is dropped outside a runtime.
    pub(crate) runtime: tokio::runtime::Handle,
    /// See [`Client::instance`].
    pub(crate) instance: u64,
    /// See [`Client::lacks_add_watch`].
    lacks_add_watch: std::sync::atomic::AtomicBool,
}

/// The current session and connection state, published together so they never disagree.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) state: ConnectionState,
    pub(crate) session: Arc<Session>,
}

#[derive(Debug)]
struct CloseOnDrop(CancellationToken);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Client {
    /// Starts building a client for `connect_string`: `host:port[,host:port…][/chroot]`.
    ///
    /// ```
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181");
    /// ```
    pub fn builder(connect_string: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(connect_string)
    }

    async fn connect_with(config: Config) -> Result<Client> {
        let deadline = Instant::now() + config.connection_timeout;
        let zk = manager::connect_session(&config, Some(deadline)).await?;
        let session = Arc::new(Session::new(zk, 0));
        let (current, _) = watch::channel(Snapshot {
            state: ConnectionState::Connected,
            session: session.clone(),
        });
        let closed = CancellationToken::new();
        let shared = Arc::new(Shared {
            config,
            current,
            fanout: StateFanout::default(),
            closed: closed.clone(),
            stopped: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            instance: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
            lacks_add_watch: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(manager::run(shared.clone(), session));
        Ok(Client {
            shared,
            _handle: Arc::new(CloseOnDrop(closed)),
        })
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.shared.current.borrow().state
    }

    /// A stream of every connection state transition from now on, in order. None is dropped,
    /// however slowly the stream is read. It ends when the client is closed.
    pub fn connection_states(&self) -> ConnectionStates {
        self.shared.fanout.subscribe()
    }

    /// The number of the latest connection state transition (0 before the first): see
    /// `ConnectionStates::next_numbered`.
    pub(crate) fn transitions_published(&self) -> u64 {
        self.shared.fanout.published()
    }

    /// The current session (which may be suspended or lost; see [`Session::is_lost`]).
    pub fn session(&self) -> Arc<Session> {
        self.shared.current.borrow().session.clone()
    }

    /// The current session's zookeeper-client handle, for raw operations. Prefer
    /// [`with_retry`](Self::with_retry), which also survives a change of session.
    ///
    /// # Errors
    ///
    /// [`Error::SessionExpired`] between a session's loss and the next session;
    /// [`Error::Closed`] once the client is closed.
    pub fn zookeeper(&self) -> Result<zookeeper_client::Client> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.session().zookeeper()
    }

    /// The negotiated timeout of the current session.
    pub fn session_timeout(&self) -> Duration {
        self.session().timeout()
    }

    /// The configured connection timeout.
    pub fn connection_timeout(&self) -> Duration {
        self.shared.config.connection_timeout
    }

    /// The retry policy operations use.
    pub fn retry_policy(&self) -> &dyn retry::RetryPolicy {
        &*self.shared.config.retry_policy
    }

    /// The largest request the client and its recipes send
    /// ([`ClientBuilder::max_request_size`]).
    pub fn max_request_size(&self) -> usize {
        self.shared.config.max_request_size
    }

    /// Refuses, before anything is sent, a write of `data_len` bytes to `path` with `acls`
    /// (empty: the client's default ACLs) over [`max_request_size`](Self::max_request_size),
    /// counting the client's chroot and `path_suffix_len` more bytes the server appends to the
    /// path (a sequence number).
    pub(crate) fn check_request(
        &self,
        what: &str,
        path: &str,
        path_suffix_len: usize,
        data_len: usize,
        acls: &[Acl],
    ) -> Result<()> {
        let config = &self.shared.config;
        let acls = if acls.is_empty() {
            &*acls_or_default(&config.default_acls)
        } else {
            acls
        };
        let path_len = config.chroot().map_or(0, |c| c.len()) + path.len() + path_suffix_len;
        crate::limits::check_request(
            what,
            path,
            path_len,
            data_len,
            acls,
            config.max_request_size,
        )
    }

    /// The ACLs recipes put on the nodes they create when given none.
    pub fn default_acls(&self) -> Acls<'_> {
        acls_or_default(&self.shared.config.default_acls)
    }

    /// True once [`close`](Self::close) was called (or every handle dropped).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Waits until the client is connected, and returns the session it is connected on.
    ///
    /// # Errors
    ///
    /// * [`Error::Timeout`] if it is not connected within `timeout`;
    /// * [`Error::Closed`] if the client is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Arc<Session>> {
        match tokio::time::timeout(timeout, self.connected()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// The session once connected, waiting at most the connection timeout.
    ///
    /// [`Error::ConnectionLoss`] when the wait times out, as Curator reports it.
    pub(crate) async fn connected_session(&self) -> Result<Arc<Session>> {
        match self
            .wait_connected(self.shared.config.connection_timeout)
            .await
        {
            Err(Error::Timeout(_)) => Err(Error::ConnectionLoss),
            other => other,
        }
    }

    /// The session once the client is connected, however long that takes: for recipes'
    /// background work, which waits for the connection rather than giving up.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn connected(&self) -> Result<Arc<Session>> {
        let mut rx = self.shared.current.subscribe();
        let closed = self.shared.closed.clone();
        tokio::select! {
            biased;
            _ = closed.cancelled() => Err(Error::Closed),
            snapshot = rx.wait_for(|s| s.state.is_connected() && !s.session.is_lost()) => match snapshot {
                Ok(s) => Ok(s.session.clone()),
                Err(_) => Err(Error::Closed),
            },
        }
    }

    /// Runs `operation` on the current session, retrying retryable failures as the retry policy
    /// allows (Curator's `RetryLoop`).
    ///
    /// Each attempt gets the zookeeper-client handle of the session current at that moment, so
    /// an attempt after a session loss runs on the new session.
    ///
    /// ```no_run
    /// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let children = client
    ///     .with_retry(|zk| async move { zk.list_children("/").await })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The last error, converted to [`Error`], when it is not retryable or the policy gives up;
    /// [`Error::ConnectionLoss`] when no connection comes back within the connection timeout
    /// (an attempt sent while the connection is down counts as failed once it has been down
    /// that long: zookeeper-client would hold it until the connection comes back);
    /// [`Error::Closed`] when the client is closed.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `operation`: dropping the future drops the attempt in flight. A write
    /// already sent may still be applied by the server.
    pub async fn with_retry<T, E, F, Fut>(&self, mut operation: F) -> Result<T>
    where
        F: FnMut(zookeeper_client::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Error>,
    {
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            let outcome = match self.connected_session().await {
                Ok(session) => match session.zookeeper() {
                    Ok(zk) => {
                        let attempt = operation(zk.clone());
                        unless_down_for(&zk, self.shared.config.connection_timeout, attempt)
                            .await
                            .map_or(Err(Error::ConnectionLoss), |outcome| {
                                outcome.map_err(Into::into)
                            })
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(e) => self.backoff(e, &mut retries, started).await?,
            }
        }
    }

    /// Sleeps before the next attempt, or returns the error when the policy gives up.
    pub(crate) async fn backoff(
        &self,
        error: Error,
        retries: &mut u32,
        started: Instant,
    ) -> Result<()> {
        let policy = &self.shared.config.retry_policy;
        if matches!(error, Error::Closed) || self.is_closed() || !policy.allow_retry_on(&error) {
            return Err(error);
        }
        match policy.allow_retry(*retries, started.elapsed()) {
            Some(sleep) => {
                tracing::debug!(%error, retry = *retries, ?sleep, "retrying ZooKeeper operation");
                *retries += 1;
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => Ok(()),
                    _ = self.shared.closed.cancelled() => Err(Error::Closed),
                }
            }
            None => Err(error),
        }
    }

    /// The answer to `sent`, a request already on its way through `zk`, waited for as long as
    /// Curator's retry loop would retry it: whenever the connection has been down for the
    /// connection timeout, the retry policy is asked (with `retries` made since `started`),
    /// and while it allows another try the wait goes on (its pause included, during which an
    /// answer is still taken). `None` once the policy allows no more, or the client is closed.
    ///
    /// Nothing is sent again here: zookeeper-client keeps a request made while it is
    /// disconnected and sends it on the next connection of the same session, so the one
    /// request stands for all of Curator's attempts. (A request that was on the wire when the
    /// connection dropped fails with it, and is the caller's to send again.)
    pub(crate) async fn answer_while_retries_allow<F: Future>(
        &self,
        zk: &zookeeper_client::Client,
        sent: F,
        retries: &mut u32,
        started: Instant,
    ) -> Option<F::Output> {
        let mut sent = std::pin::pin!(sent);
        loop {
            let within = self.shared.config.connection_timeout;
            if let Some(answer) = unless_down_for(zk, within, sent.as_mut()).await {
                return Some(answer);
            }
            // The policy's pause, as for any retried operation; an answer is taken meanwhile.
            tokio::select! {
                answer = sent.as_mut() => return Some(answer),
                paused = self.backoff(Error::ConnectionLoss, retries, started) => paused.ok()?,
            }
        }
    }

    /// Creates `path` with `data` (and its missing parents, as container nodes), retried.
    /// `acls` empty means the client's [default ACLs](ClientBuilder::default_acls).
    ///
    /// The parents made on the way get the same ACLs as the node. Curator differs: its
    /// `ACLProvider` gives each parent the ACL for the parent's own path (open to anyone by
    /// default), unless `withACL(acl, true)` applies the node's to them. This crate has no
    /// per-path provider: to give parents other ACLs, make them first (with
    /// [`create`](Self::create) or [`ensure_path`](Self::ensure_path)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`]; [`Error::InvalidArgument`] if the request would exceed
    /// [`max_request_size`](Self::max_request_size); [`Error::ZooKeeper`] with `NodeExists` if
    /// it exists; the errors of [`with_retry`](Self::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may be created even if the future is dropped.
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        acls: &[Acl],
    ) -> Result<Stat> {
        self.create_with_path(path, data, mode, acls)
            .await
            .map(|(_, stat)| stat)
    }

    /// [`create`](Self::create), returning the path it made besides the stat: for sequential
    /// modes, `path` followed by the sequence number ZooKeeper appended (what Curator's
    /// `forPath` returns).
    ///
    /// ```no_run
    /// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::zookeeper_client::CreateMode;
    /// let (path, _stat) = client
    ///     .create_with_path("/jobs/job-", b"payload", CreateMode::PersistentSequential, &[])
    ///     .await?;
    /// assert!(path.starts_with("/jobs/job-00"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may be created even if the future is dropped. A sequential
    /// create whose answer is lost is sent again, and may make a second node: use
    /// [`create_protected`](Self::create_protected) where that matters.
    pub async fn create_with_path(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        acls: &[Acl],
    ) -> Result<(String, Stat)> {
        crate::path::validate_path(path)?;
        let sequential = is_sequential(mode);
        self.check_request(
            "create",
            path,
            if sequential { 10 } else { 0 },
            data.len(),
            acls,
        )?;
        let acls = acls_or_default(if acls.is_empty() {
            &self.shared.config.default_acls
        } else {
            acls
        });
        let (stat, sequence) = self
            .with_retry(|zk| async move {
                let options = mode.with_acls(acls);
                match zk.create(path, data, &options).await {
                    Err(zookeeper_client::Error::NoNode) => {
                        ensure_parents(&zk, path, acls).await?;
                        zk.create(path, data, &options).await
                    }
                    other => other,
                }
            })
            .await?;
        let made = if sequential {
            format!("{path}{:010}", sequence.into_i64())
        } else {
            path.to_owned()
        };
        Ok((made, stat))
    }

    /// Creates `path` and its missing ancestors as persistent (`container` = false) or
    /// container nodes, retried. Existing nodes are fine.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`], [`Error::NoAuth`], and the errors of
    /// [`with_retry`](Self::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: the creates are idempotent, though some may have been applied.
    pub async fn ensure_path(&self, path: &str, container: bool) -> Result<()> {
        crate::path::validate_path(path)?;
        if path == "/" {
            return Ok(());
        }
        let acls = self.default_acls();
        let mode = if container {
            CreateMode::Container
        } else {
            CreateMode::Persistent
        };
        self.with_retry(|zk| async move {
            match zk.create(path, &[], &mode.with_acls(acls)).await {
                Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
                Err(zookeeper_client::Error::NoNode) => {
                    ensure_parents(&zk, path, acls).await?;
                    match zk.create(path, &[], &mode.with_acls(acls)).await {
                        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Reads `path`, retried. `Ok(None)` if it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] and the errors of [`with_retry`](Self::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_data(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>> {
        crate::path::validate_path(path)?;
        self.with_retry(|zk| async move {
            match zk.get_data(path).await {
                Ok(found) => Ok(Some(found)),
                Err(zookeeper_client::Error::NoNode) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Writes `data` to `path`, retried; `version` as in ZooKeeper (`None`: any version).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`]; [`Error::InvalidArgument`] if the request would exceed
    /// [`max_request_size`](Self::max_request_size); [`Error::ZooKeeper`] with `NoNode` or
    /// `BadVersion`; the errors of [`with_retry`](Self::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped.
    pub async fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        crate::path::validate_path(path)?;
        self.check_request("set_data", path, 0, data.len(), &[])?;
        self.with_retry(|zk| async move { zk.set_data(path, data, version).await })
            .await
    }

    /// Deletes `path`, retried. `Ok(false)` if it did not exist (also when an earlier attempt
    /// deleted it before a connection loss hid the answer).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`]; [`Error::ZooKeeper`] with `BadVersion` or `NotEmpty`; the errors
    /// of [`with_retry`](Self::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the delete may be applied even if the future is dropped.
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<bool> {
        crate::path::validate_path(path)?;
        self.with_retry(|zk| async move {
            match zk.delete(path, version).await {
                Ok(()) => Ok(true),
                Err(zookeeper_client::Error::NoNode) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// The children of `path`, retried. `Ok(None)` if it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] and the errors of [`with_retry`](Self::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn children(&self, path: &str) -> Result<Option<Vec<String>>> {
        crate::path::validate_path(path)?;
        self.with_retry(|zk| async move {
            match zk.list_children(path).await {
                Ok(children) => Ok(Some(children)),
                Err(zookeeper_client::Error::NoNode) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// The stat of `path`, retried. `Ok(None)` if it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] and the errors of [`with_retry`](Self::with_retry).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        crate::path::validate_path(path)?;
        self.with_retry(|zk| async move { zk.check_stat(path).await })
            .await
    }

    /// Closes the client: stops the connection manager, ends every state stream, and closes
    /// the session. Returns once the server has confirmed the close, so the session's
    /// ephemeral nodes are gone (or after the connection timeout, when it cannot: no
    /// connection, or a handle from [`zookeeper`](Self::zookeeper) still held, which keeps the
    /// session open until dropped). Recipes built on it stop working.
    ///
    /// Other clones see [`Error::Closed`] from then on. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the close has started when this is first polled.
    pub async fn close(&self) {
        self.shared.closed.cancel();
        // Wait for the manager to let the session go and for the server to confirm its close,
        // so a caller that closes and then checks ZooKeeper sees the ephemeral nodes gone. The
        // manager bounds its own wait by the connection timeout; this bound is a safety net.
        let _ = tokio::time::timeout(
            self.shared.config.connection_timeout * 2 + Duration::from_secs(1),
            self.shared.stopped.cancelled(),
        )
        .await;
    }

    /// Resolves once the client is closed.
    pub(crate) async fn closed(&self) {
        self.shared.closed.cancelled().await
    }

    /// A number no other client of this process has had: tells apart the holds of
    /// different clients (see the queue's `LocalHolds`).
    pub(crate) fn instance(&self) -> u64 {
        self.shared.instance
    }

    /// True once a server of this client answered `addWatch` with `Unimplemented` (before
    /// ZooKeeper 3.6). Such a server also closes the connection that sent it, so the locks'
    /// optional recursive watch is tried at most once per client.
    pub(crate) fn lacks_add_watch(&self) -> bool {
        self.shared.lacks_add_watch.load(Ordering::Relaxed)
    }

    /// Records that a server of this client has no `addWatch` (see
    /// [`lacks_add_watch`](Self::lacks_add_watch)).
    pub(crate) fn note_lacks_add_watch(&self) {
        self.shared.lacks_add_watch.store(true, Ordering::Relaxed);
    }

    /// Enters the client's runtime until the guard drops: for work done in place (not
    /// spawned) that may touch tokio's timers, from a guard dropped outside a runtime.
    pub(crate) fn enter_runtime(&self) -> tokio::runtime::EnterGuard<'_> {
        self.shared.runtime.enter()
    }

    /// Spawns a background task on the client's runtime; usable from `Drop`.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.runtime.spawn(future)
    }
}

/// `attempt`, or `None` once `zk`'s connection has been down for `within` without coming back.
///
/// zookeeper-client keeps a request made while it is disconnected in its queue until the next
/// connection, however long that takes, where Curator's operations fail with a connection
/// loss once the connection timeout has passed. An attempt that gave up here is not
/// withdrawn: a write may still be applied once the connection is back (as one whose answer
/// was lost may be), which is why protected creates look for their node after it.
pub(crate) async fn unless_down_for<F: Future>(
    zk: &zookeeper_client::Client,
    within: Duration,
    attempt: F,
) -> Option<F::Output> {
    let down_too_long = async {
        let mut states = zk.state_watcher();
        loop {
            let state = states.state();
            if matches!(
                state,
                zookeeper_client::SessionState::SyncConnected
                    | zookeeper_client::SessionState::ConnectedReadOnly
            ) {
                states.changed().await;
                continue;
            }
            if state.is_terminated() {
                // The attempt fails on its own with the session's end.
                return std::future::pending::<()>().await;
            }
            // Down: give it `within` to come back.
            let back = async {
                loop {
                    let state = states.changed().await;
                    if !matches!(state, zookeeper_client::SessionState::Disconnected) {
                        return;
                    }
                }
            };
            if tokio::time::timeout(within, back).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        biased;
        outcome = attempt => Some(outcome),
        _ = down_too_long => None,
    }
}

/// True for the modes to which ZooKeeper appends a sequence number.
pub(crate) fn is_sequential(mode: CreateMode) -> bool {
    matches!(
        mode,
        CreateMode::EphemeralSequential | CreateMode::PersistentSequential
    )
}

/// The given ACLs, or open ACLs when there are none.
pub(crate) fn acls_or_default(acls: &[Acl]) -> Acls<'_> {
    if acls.is_empty() {
        Acls::anyone_all()
    } else {
        Acls::new(acls)
    }
}

/// Creates every missing ancestor of `path` as a container node (Curator's
/// `creatingParentContainersIfNeeded`): they vanish by themselves once empty.
pub(crate) async fn ensure_parents(
    zk: &zookeeper_client::Client,
    path: &str,
    acls: Acls<'_>,
) -> std::result::Result<(), zookeeper_client::Error> {
    let mut prefix_end = 0;
    let options = CreateMode::Container.with_acls(acls);
    while let Some(i) = path[prefix_end + 1..].find('/') {
        prefix_end += 1 + i;
        match zk.create(&path[..prefix_end], &[], &options).await {
            Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
