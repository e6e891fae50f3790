//! One ZooKeeper server of either backend, and what servers and clusters share: free ports,
//! names, readiness polling.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::config::NodeConfig;
use super::docker::DockerNode;
use super::four_letter::{server_mode, ServerMode};
use super::process::ProcessNode;
use super::{Backend, TestingError};

const POLL_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A server of either backend. Each keeps its client port and data across stop and start.
pub(crate) enum Node {
    /// Both boxed: the variants differ in size, and a node is made once per server.
    Process(Box<ProcessNode>),
    Docker(Box<DockerNode>),
}

impl Node {
    /// Creates the server (temporary directory or container) without starting it.
    pub(crate) async fn create(
        backend: Backend,
        config: NodeConfig,
        docker_network: Option<&str>,
    ) -> Result<Node, TestingError> {
        Ok(match backend {
            Backend::Process => Node::Process(Box::new(ProcessNode::create(config)?)),
            Backend::Docker => Node::Docker(Box::new(DockerNode::create(config, docker_network)?)),
        })
    }

    fn config(&self) -> &NodeConfig {
        match self {
            Node::Process(node) => node.config(),
            Node::Docker(node) => node.config(),
        }
    }

    /// Launches the server (a no-op when it already runs); does not wait until it serves.
    pub(crate) async fn launch(&mut self) -> Result<(), TestingError> {
        match self {
            Node::Process(node) => node.launch(),
            Node::Docker(node) => node.launch().await,
        }
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]).
    pub(crate) async fn stop(&mut self) -> Result<(), TestingError> {
        match self {
            Node::Process(node) => node.stop().await,
            Node::Docker(node) => node.stop().await,
        }
    }

    /// Kills the server with SIGKILL.
    pub(crate) async fn kill(&mut self) -> Result<(), TestingError> {
        match self {
            Node::Process(node) => node.kill().await,
            Node::Docker(node) => node.kill().await,
        }
    }

    /// Fails when the server has exited on its own (a crash, a port already in use).
    async fn check_alive(&mut self) -> Result<(), TestingError> {
        match self {
            Node::Process(node) => node.check_alive(),
            Node::Docker(node) => node.check_alive().await,
        }
    }

    /// The end of the server's log, for error messages.
    pub(crate) async fn log_tail(&self) -> String {
        match self {
            Node::Process(node) => node.log_tail(),
            Node::Docker(node) => node.log_tail().await,
        }
    }

    /// Waits until the server answers `srvr` with a mode `accept` takes.
    pub(crate) async fn wait_for_mode(
        &mut self,
        accept: impl Fn(ServerMode) -> bool,
        timeout: Duration,
    ) -> Result<ServerMode, TestingError> {
        let address = self.config().client_address();
        let started = Instant::now();
        loop {
            self.check_alive().await?;
            let last_observation = match server_mode(&address, PROBE_TIMEOUT).await {
                Ok(Some(mode)) if accept(mode) => {
                    tracing::debug!(server = %self.config().label, ?mode, elapsed = ?started.elapsed(), "server serves");
                    return Ok(mode);
                }
                Ok(Some(mode)) => format!("mode {mode:?}"),
                Ok(None) => "answers srvr but does not serve".to_owned(),
                Err(err) => err.to_string(),
            };
            if started.elapsed() >= timeout {
                return Err(TestingError::Timeout {
                    what: format!("{} to serve", self.config().label),
                    waited: timeout,
                    detail: format!("{last_observation}\n{}", self.log_tail().await),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// A name prefix unique to one server or cluster: `zk-recipes-<8 hex digits>`.
pub(crate) fn unique_instance_prefix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("zk-recipes-{}", &id[..8])
}

/// Picks `count` distinct free TCP ports on 127.0.0.1.
///
/// All listeners are held until every port is picked, so the ports differ; another process may
/// still take one before the server binds it, which the server then reports as an exit.
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, TestingError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TestingError::io("picking a free port on 127.0.0.1", err))?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TestingError::io("reading a picked port", err))
}

/// Whether a member of a quorum serves as part of it (not standalone, not read-only).
pub(crate) fn in_quorum(mode: ServerMode) -> bool {
    matches!(
        mode,
        ServerMode::Leader | ServerMode::Follower | ServerMode::Observer
    )
}
