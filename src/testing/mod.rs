//! Real ZooKeeper servers and fault injection for tests (feature `testing`).
//!
//! The kit runs real ZooKeeper servers, standalone ([`TestingServer`]) or as a quorum ensemble
//! ([`TestingCluster`]), puts a fault-injecting TCP proxy in front of a server ([`FaultProxy`]),
//! and expires a client's session on the server ([`expire_session`]). It is used by this crate's
//! own tests and is meant for yours.
//!
//! # Backends
//!
//! A server runs on one of two [`Backend`]s:
//!
//! * [`Backend::Docker`]: a container started through `testcontainers`, from the image named by
//!   `ZK_TEST_IMAGE` (default `zookeeper:3.9`, the official image). Without a registry, build a
//!   local image with `scripts/zookeeper-image.sh` and set `ZK_TEST_IMAGE=zk-recipes/zookeeper:3.8`.
//! * [`Backend::Process`]: a local JVM running ZooKeeper's jars, from `ZOOKEEPER_HOME` or from
//!   Debian's `zookeeper` package (`apt-get install zookeeper default-jre-headless`).
//!
//! `ZK_TEST_BACKEND=docker|process` forces one; otherwise [`Backend::from_env`] picks Docker when
//! a daemon answers and has (or can pull) the image, else the local process backend.
//!
//! Every server is configured for fast tests: `tickTime=500`, `minSessionTimeout=1000`,
//! `maxSessionTimeout=60000`, the admin server off, and the four-letter words
//! `srvr,ruok,stat,mntr,cons` enabled. Servers are removed when dropped, and also when the test
//! process dies without running destructors (a watcher process holds a pipe to the test process
//! and removes the server when the pipe closes).
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), zk_recipes::testing::TestingError> {
//! use std::time::Duration;
//! use zk_recipes::testing::{FaultProxy, TestingServer};
//!
//! let server = TestingServer::start().await?;
//! let proxy = FaultProxy::start(&server.connect_string()).await?;
//! let client = zk_recipes::zookeeper_client::Client::connector()
//!     .with_session_timeout(Duration::from_secs(4))
//!     .connect(&proxy.connect_string())
//!     .await
//!     .expect("connect");
//! proxy.cut(); // the client goes Disconnected
//! proxy.restore(); // and reconnects to the same session
//! # drop(client);
//! # Ok(())
//! # }
//! ```

mod backend;
mod cluster;
mod config;
mod docker;
mod error;
mod four_letter;
mod node;
mod process;
mod proxy;
mod server;
mod session;

pub use backend::Backend;
pub use cluster::TestingCluster;
pub use config::DEFAULT_IMAGE;
pub use error::TestingError;
pub use four_letter::{four_letter_word, server_mode, ServerMode};
pub use proxy::FaultProxy;
pub use server::{ServerOptions, ServerTls, TestingServer};
pub use session::expire_session;

/// Whether `TCP_NODELAY` is set on each of this process's TCP connections to `peer`, e.g. to
/// check what [`ClientBuilder::tcp_nodelay`](crate::ClientBuilder::tcp_nodelay) did to a
/// client's connection to a [`FaultProxy`] that only that client uses.
///
/// # Errors
///
/// An [`Unsupported`](std::io::ErrorKind::Unsupported) error outside Linux, where the process's
/// sockets cannot be listed; the error of reading `/proc/self/fd` on Linux.
pub fn tcp_nodelay_of_connections_to(peer: std::net::SocketAddr) -> std::io::Result<Vec<bool>> {
    crate::connection::nodelay_of_connections_to(peer)
}
