//! One ZooKeeper session of a [`Client`]: its handle, its loss, its interruptions, and the
//! loop that retries work on it until it is lost.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{SessionId, Stat};

use super::Backoff;
#[cfg(doc)]
use super::Client;
use crate::error::{is_retryable_zk, Error, Result};
use crate::sync::ReadWriteLocked;

/// One ZooKeeper session of a [`Client`].
///
/// A `Client` has one session at a time; after [`ConnectionState::Lost`](super::ConnectionState::Lost) it makes a new one,
/// with the next [`generation`](Self::generation). An ephemeral node belongs to the session
/// that created it: recipes keep the `Arc<Session>` their node was created on, and treat the
/// node as gone once that session [`is_lost`](Self::is_lost).
#[derive(Debug)]
pub struct Session {
    /// `None` once the session is released (lost or closed): dropping the last handle is what
    /// makes zookeeper-client close the session on the server, so the manager must be able to
    /// let go of it even while recipes still hold this `Session`.
    zk: RwLock<Option<zookeeper_client::Client>>,
    id: SessionId,
    timeout: Duration,
    generation: u64,
    lost: CancellationToken,
    /// Set when the session was released because the client was closed, not lost.
    closed: AtomicBool,
    /// How many times this session was suspended or lost. A holder compares the count from
    /// before its ownership was confirmed with the current one: any change means its lock or
    /// leadership *may* be gone, even if the blip was too short to observe as a state.
    interruptions: watch::Sender<u64>,
}

impl Session {
    pub(crate) fn new(zk: zookeeper_client::Client, generation: u64) -> Self {
        Self {
            id: zk.session_id(),
            timeout: zk.session_timeout(),
            zk: RwLock::new(Some(zk)),
            generation,
            lost: CancellationToken::new(),
            closed: AtomicBool::new(false),
            interruptions: watch::Sender::new(0),
        }
    }

    /// The zookeeper-client handle of this session, for raw operations.
    ///
    /// zookeeper-client closes a session on the server only when its last handle is
    /// dropped: keep the handle for the requests at hand, not across a wait, or
    /// [`Client::close`](crate::Client::close) cannot close the session while it is kept.
    /// (The crate's own tasks that keep one end when the session is lost or closed.)
    ///
    /// # Errors
    ///
    /// [`Error::SessionExpired`] once the session is lost, [`Error::Closed`] once the client
    /// is closed: the handle has been let go so the session can close.
    pub fn zookeeper(&self) -> Result<zookeeper_client::Client> {
        match &*self.zk.read_locked() {
            Some(zk) => Ok(zk.clone()),
            None if self.closed.load(Ordering::Acquire) => Err(Error::Closed),
            None => Err(Error::SessionExpired),
        }
    }

    /// The session id, as ZooKeeper reports it in a node's ephemeral owner.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// 0 for the client's first session, then one more for each new session after a loss.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The negotiated session timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True once the session has been declared lost (or the client closed).
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Resolves when the session is declared lost, or the client is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn lost(&self) {
        self.lost.cancelled().await
    }

    /// `work`'s outcome, or `None` if the session is lost (or the client closed) first.
    ///
    /// For work that keeps this session's zookeeper-client handle while it waits (a watch, a
    /// queue step): a handle kept keeps the session open after
    /// [`Client::close`](crate::Client::close), and with it every ephemeral node of the
    /// session (see [`zookeeper`](Self::zookeeper)). Once the session is lost, such work is
    /// moot: its nodes went with it.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `work`.
    pub(crate) async fn unless_lost<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            outcome = work => Some(outcome),
            _ = self.lost() => None,
        }
    }

    /// True if `stat` is of a node whose ephemeral owner is this session.
    pub fn owns(&self, stat: &Stat) -> bool {
        stat.ephemeral_owner == self.id.0
    }

    /// Asks the server whether the node at `path` is still the one created at `czxid` and
    /// owned by this session: a `sync` of `path` (so that the read is not behind the leader),
    /// then a read of its stat, sent together, so the answer costs one round trip and a sync.
    /// False on any doubt (the session lost, the connection down, an error), with a trace
    /// event saying why.
    pub(crate) async fn verifies_node(&self, path: &str, czxid: i64) -> bool {
        let Ok(zk) = self.zookeeper() else {
            tracing::debug!(%path, "not verified: the session is lost");
            return false;
        };
        if !matches!(zk.state(), zookeeper_client::SessionState::SyncConnected) {
            tracing::debug!(%path, state = ?zk.state(), "not verified: not connected");
            return false;
        }
        let (synced, stat) = futures::join!(zk.sync(path), zk.check_stat(path));
        match (synced, stat) {
            (Ok(()), Ok(Some(stat))) if self.owns(&stat) && stat.czxid == czxid => true,
            (Ok(()), Ok(Some(stat))) => {
                tracing::debug!(%path, owner = stat.ephemeral_owner, czxid = stat.czxid, "not verified: another node is there");
                false
            }
            (Ok(()), Ok(None)) => {
                tracing::debug!(%path, "not verified: the node is gone");
                false
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%path, %error, "not verified: the server did not answer");
                false
            }
        }
    }

    /// The count of interruptions (suspensions and the loss) so far.
    pub(crate) fn interruption_count(&self) -> u64 {
        *self.interruptions.borrow()
    }

    /// Resolves once the session has been interrupted more than `seen` times.
    pub(crate) async fn interrupted_since(&self, seen: u64) {
        let mut rx = self.interruptions.subscribe();
        // The sender lives as long as `self`, which we borrow, so this cannot fail.
        let _ = rx.wait_for(|count| *count > seen).await;
    }

    pub(crate) fn record_interruption(&self) {
        self.interruptions.send_modify(|count| *count += 1);
    }

    /// Declares the session lost and lets go of its handle.
    pub(crate) fn mark_lost(&self) {
        self.record_interruption();
        self.lost.cancel();
        self.zk.write_locked().take();
    }

    /// Declares the session released because the client is closed, and lets go of its handle
    /// (if it was not lost already).
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        if !self.is_lost() {
            self.mark_lost();
        }
    }

    /// Runs `attempt` on this session until it succeeds (`Ok(Some(_))`), fails with an error a
    /// retry cannot cure, or the session is lost (`Ok(None)`: whatever the work was for went
    /// with the session's ephemeral nodes), pausing with a jittered [`Backoff`] after each
    /// retryable failure.
    ///
    /// This is the crate's rule for background work, which has no caller to give up to (see
    /// [`Client`]'s `# Retries`): it retries until the session is lost. Work a caller awaits
    /// follows the caller's retry policy instead.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `attempt`: dropping the future drops the attempt in flight.
    pub(crate) async fn retry_until_lost<T, F, Fut>(
        &self,
        mut attempt: F,
    ) -> std::result::Result<Option<T>, zookeeper_client::Error>
    where
        F: FnMut(zookeeper_client::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, zookeeper_client::Error>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        loop {
            let Ok(zk) = self.zookeeper() else {
                return Ok(None);
            };
            let outcome = tokio::select! {
                _ = self.lost() => return Ok(None),
                outcome = attempt(zk) => outcome,
            };
            match outcome {
                Ok(value) => return Ok(Some(value)),
                Err(e) if is_retryable_zk(&e) => {
                    tracing::debug!(error = %e, "retrying on the session until it is lost");
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = self.lost() => return Ok(None),
                _ = backoff.sleep() => {}
            }
        }
    }
}
