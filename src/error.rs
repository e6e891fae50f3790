//! The crate's one error type.

use std::time::Duration;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a recipe or in the connection manager.
///
/// The variants separate what a caller reacts to differently:
///
/// * the connection is gone for now ([`Error::ConnectionLoss`]) and a retry may help;
/// * the session is gone ([`Error::SessionExpired`]): every ephemeral node it owned is gone too,
///   so locks and leadership held through it are lost;
/// * the caller asked for something impossible ([`Error::InvalidPath`],
///   [`Error::InvalidArgument`], [`Error::IllegalState`]);
/// * ZooKeeper refused the request for a reason of its own ([`Error::NoAuth`],
///   [`Error::ZooKeeper`]).
///
/// The type is `Send + Sync + Clone`, so one outcome can be handed to many waiters.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A znode path that ZooKeeper would reject, or that a recipe cannot use.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A bad argument other than a path: a connect string, a participant id, a timeout; a
    /// request larger than the client's [`max_request_size`](crate::Client::max_request_size);
    /// a semaphore of 0 leases, `acquire_many(0)` or more leases than a semaphore has; an
    /// empty multi-lock, or one naming a path twice.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A `tcp+tls://` server refused the TLS handshake, or its certificate is not one the
    /// client's [`TlsConfig`](crate::TlsConfig) accepts (signed by another CA, made out to
    /// another host, expired), or it does not speak TLS. Only with the `tls` feature.
    #[error("TLS with {server} failed: {reason}")]
    Tls {
        /// The server, as `tcp+tls://host:port`.
        server: String,
        /// What the handshake found, in rustls' words.
        reason: String,
    },

    /// The connection to ZooKeeper dropped, and the retry policy gave up before it came back.
    ///
    /// The session may still be alive: ephemeral nodes may still exist.
    #[error("connection to ZooKeeper lost")]
    ConnectionLoss,

    /// The ZooKeeper session expired, or was declared lost by the client after being suspended
    /// for longer than the session timeout. Its ephemeral nodes are (or will be) gone.
    #[error("ZooKeeper session expired")]
    SessionExpired,

    /// The operation did not finish within the time it was given.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// The client or recipe was closed.
    #[error("closed")]
    Closed,

    /// The recipe is not in a state that allows the call: `start()` twice, or use before start.
    #[error("illegal state: {0}")]
    IllegalState(&'static str),

    /// A guarded operation found that the lock node or leadership it depends on is gone; a
    /// downgrade of a write hold that is (or may be) lost; a semaphore acquire whose internal
    /// lock was lost more often than the retry policy allows.
    #[error("the lock or leadership is lost")]
    LockLost,

    /// [`LockGuard::downgrade`](crate::LockGuard::downgrade) was called on a guard that is not
    /// a write hold of an [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock): a
    /// read hold, or a plain mutex's. A read hold is never upgraded to a write hold (in
    /// Curator the attempt waits for itself forever): release it, then acquire the write lock.
    #[error(
        "only a write hold of a read/write lock can be downgraded; a read hold is never upgraded"
    )]
    NotDowngradable,

    /// A recipe's path holds a node that no participant of the recipe could have made: for a
    /// [`LeaderLatch`](crate::LeaderLatch), a persistent or container node where the latch's
    /// ephemeral node belongs (another recipe's parent, say, or a node left by hand). The
    /// recipe stops rather than wait for a node that may never go.
    #[error("{path:?} is occupied by {reason}")]
    PathOccupied {
        /// The recipe's path.
        path: String,
        /// What the node there is.
        reason: &'static str,
    },

    /// A recipe's own node was deleted by someone else while it waited in a queue (an
    /// operator, a clean-up job, or its parent deleted and created again), and the client's
    /// retry policy allowed no more joins with a new node. Curator reports the same case as a
    /// `NoNodeException`.
    #[error("the node {path:?} was deleted by someone else")]
    NodeDeleted {
        /// The full path of the deleted node.
        path: String,
    },

    /// Releasing an [`InterProcessMultiLock`](crate::InterProcessMultiLock)'s guard: these
    /// parts' releases failed (every other part was released). Each failed part is no longer
    /// held by this process, and its node is deleted in the background.
    #[error("{} of the multi-lock's parts could not be released: {}", .failures.len(), describe_failures(.failures))]
    PartsNotReleased {
        /// Each part whose release failed, and why.
        failures: Vec<PartFailure>,
    },

    /// ZooKeeper refused the operation for lack of permission (an ACL).
    #[error("not authorized by the node's ACL")]
    NoAuth,

    /// Authentication with ZooKeeper failed; the session cannot be used.
    #[error("authentication failed")]
    AuthFailed,

    /// The server does not support what was asked (for example persistent watches, which
    /// need ZooKeeper 3.6 or later).
    #[error("{feature} are not supported by the server: {reason}")]
    Unsupported {
        /// What is missing.
        feature: &'static str,
        /// Why, and what would support it.
        reason: String,
    },

    /// A node holds data this recipe cannot read: a service instance that is not JSON, or
    /// whose payload is not of the expected type; a shared count that is not 4 bytes, a
    /// counter that is not 8. The data is left as it is.
    #[error("malformed data: {0}")]
    MalformedData(String),

    /// Any other error reported by ZooKeeper or by the underlying client.
    #[error("ZooKeeper error: {0}")]
    ZooKeeper(#[source] zookeeper_client::Error),
}

impl Error {
    /// True for errors a retry may cure: connection loss, timeouts and a moved or expired
    /// session (the latter only once a new session exists, which the connection manager makes).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ConnectionLoss | Error::SessionExpired => true,
            Error::ZooKeeper(e) => is_retryable_zk(e),
            _ => false,
        }
    }

    /// The underlying ZooKeeper error, when there is one.
    pub fn as_zookeeper(&self) -> Option<&zookeeper_client::Error> {
        match self {
            Error::ZooKeeper(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn invalid_path(path: impl Into<String>, reason: &'static str) -> Self {
        Error::InvalidPath {
            path: path.into(),
            reason,
        }
    }
}

/// The message of a caught panic, for the log.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Whether a raw zookeeper-client error is one that a retry may cure.
///
/// zookeeper-client reports some timeouts and I/O failures while disconnected as
/// [`zookeeper_client::Error::Custom`]; those are connection losses in all but name.
pub(crate) fn is_retryable_zk(e: &zookeeper_client::Error) -> bool {
    use zookeeper_client::Error as Zk;
    matches!(
        e,
        Zk::ConnectionLoss
            | Zk::Timeout
            | Zk::SessionMoved
            | Zk::SessionExpired
            | Zk::Throttled
            | Zk::Custom(_)
    )
}

impl From<zookeeper_client::Error> for Error {
    fn from(e: zookeeper_client::Error) -> Self {
        use zookeeper_client::Error as Zk;
        match e {
            Zk::ConnectionLoss | Zk::Timeout | Zk::Custom(_) => Error::ConnectionLoss,
            Zk::SessionExpired | Zk::SessionMoved => Error::SessionExpired,
            Zk::ClientClosed => Error::Closed,
            Zk::NoAuth => Error::NoAuth,
            Zk::AuthFailed => Error::AuthFailed,
            other => Error::ZooKeeper(other),
        }
    }
}

/// One part of a multi-part operation that failed: see [`Error::PartsNotReleased`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PartFailure {
    /// The path of the part's node: the lock's path, or `<its path>/leases` for a semaphore
    /// mutex (see [`LockGuard::mutex_path`](crate::LockGuard::mutex_path)).
    pub path: String,
    /// Why it failed.
    pub error: Error,
}

fn describe_failures(failures: &[PartFailure]) -> String {
    failures
        .iter()
        .map(|failure| format!("{:?}: {}", failure.path, failure.error))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn panic_messages_are_extracted() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 1");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert!(panic_message(&*p).contains("non-string"));
    }

    #[test]
    fn connection_errors_are_retryable_and_semantic_errors_are_not() {
        assert!(Error::from(zookeeper_client::Error::ConnectionLoss).is_retryable());
        assert!(Error::from(zookeeper_client::Error::SessionMoved).is_retryable());
        assert!(!Error::from(zookeeper_client::Error::NoNode).is_retryable());
        assert!(!Error::from(zookeeper_client::Error::NoAuth).is_retryable());
        assert!(matches!(
            Error::from(zookeeper_client::Error::NoAuth),
            Error::NoAuth
        ));
    }
}
