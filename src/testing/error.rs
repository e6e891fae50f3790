//! The testing kit's error type.

use std::time::Duration;

/// Boxed source error of a Docker failure (testcontainers or the Docker API).
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong while running test servers, proxies or session faults.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// Neither backend can run here; the message says how to get one.
    #[error("no ZooKeeper test backend available: {0}")]
    NoBackend(String),

    /// `ZK_TEST_BACKEND` (or a string given to `Backend::from_str`) names no backend.
    #[error("unknown ZooKeeper test backend {0:?}: expected \"docker\" or \"process\"")]
    UnknownBackend(String),

    /// An argument the kit cannot use (a cluster of zero members, a bad address, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A cluster member index past the end of the cluster.
    #[error("cluster member {index} does not exist: the cluster has {len} members")]
    NoSuchMember {
        /// The index asked for.
        index: usize,
        /// How many members the cluster has.
        len: usize,
    },

    /// A local I/O operation failed (temporary directories, ports, processes, sockets).
    #[error("{context}: {source}")]
    Io {
        /// What the kit was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The Docker daemon or testcontainers refused an operation.
    #[error("docker: {context}: {source}")]
    Docker {
        /// What the kit was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// A ZooKeeper server process exited on its own.
    #[error("ZooKeeper server {what} exited ({status}); last log lines:\n{log_tail}")]
    ServerExited {
        /// Which server.
        what: String,
        /// The exit status as reported by the OS.
        status: String,
        /// The end of the server's log.
        log_tail: String,
    },

    /// A server or cluster did not become ready (or did not stop) in time.
    #[error("timed out after {waited:?} waiting for {what}{}", detail_suffix(.detail))]
    Timeout {
        /// What the kit was waiting for.
        what: String,
        /// How long it waited.
        waited: Duration,
        /// The last observation, or the end of the server's log.
        detail: String,
    },

    /// A ZooKeeper client operation used by the kit failed.
    #[error("{context}: {source}")]
    ZooKeeper {
        /// What the kit was doing.
        context: String,
        /// The client's error.
        #[source]
        source: zookeeper_client::Error,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!("; last observation:\n{detail}")
    }
}

impl TestingError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TestingError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn docker(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        TestingError::Docker {
            context: context.into(),
            source: source.into(),
        }
    }
}
