//! A quorum ensemble of ZooKeeper servers.

use std::time::Duration;

use futures::future::{join_all, try_join_all};
use tokio::sync::Mutex;

use super::config::{NodeConfig, QuorumMember, READY_TIMEOUT};
use super::docker::{Reaper, CONTAINER_CLIENT_PORT, CONTAINER_ELECTION_PORT, CONTAINER_PEER_PORT};
use super::four_letter::{server_mode, ServerMode};
use super::node::{free_ports, in_quorum, unique_instance_prefix, Node};
use super::{Backend, TestingError};

const MODE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A ZooKeeper ensemble of `n` servers forming a real quorum, removed when dropped.
///
/// Members are numbered from 0 (their ZooKeeper `myid` is index + 1). Each keeps its client port
/// and data across [`stop`](TestingCluster::stop), [`kill`](TestingCluster::kill) and
/// [`restart`](TestingCluster::restart). All methods take `&self`, so tests can share the
/// cluster in an `Arc`.
pub struct TestingCluster {
    backend: Backend,
    members: Vec<Member>,
    /// Declared after `members`: dropped after them, when the containers are already gone.
    _reaper: Option<Reaper>,
}

struct Member {
    client_port: u16,
    node: Mutex<Node>,
}

impl TestingCluster {
    /// Starts an ensemble of `n` servers on the backend [`Backend::from_env`] picks.
    ///
    /// # Errors
    ///
    /// [`TestingError::NoBackend`] or [`TestingError::UnknownBackend`] from backend selection,
    /// then as [`TestingCluster::start_with`].
    pub async fn start(n: usize) -> Result<TestingCluster, TestingError> {
        TestingCluster::start_with(n, Backend::from_env().await?).await
    }

    /// Starts an ensemble of `n` servers on `backend` and waits until every member serves as
    /// leader or follower.
    ///
    /// Process members listen on 127.0.0.1 with distinct peer and election ports; container
    /// members share a user-defined network and know each other by container name.
    ///
    /// # Errors
    ///
    /// [`TestingError::InvalidArgument`] if `n` is 0; otherwise as
    /// [`TestingServer::start_with`](super::TestingServer::start_with), for any member.
    pub async fn start_with(n: usize, backend: Backend) -> Result<TestingCluster, TestingError> {
        if n == 0 {
            return Err(TestingError::InvalidArgument(
                "a cluster needs at least one member".to_owned(),
            ));
        }
        let prefix = unique_instance_prefix();
        let instances: Vec<String> = (1..=n).map(|id| format!("{prefix}-{id}")).collect();
        let (client_ports, quorum): (Vec<u16>, Vec<QuorumMember>) = match backend {
            Backend::Process => {
                let ports = free_ports(3 * n)?;
                let client_ports = ports[..n].to_vec();
                let quorum = (0..n)
                    .map(|index| QuorumMember {
                        id: member_id(index),
                        host: "127.0.0.1".to_owned(),
                        peer_port: ports[n + index],
                        election_port: ports[2 * n + index],
                        client: format!("127.0.0.1:{}", client_ports[index]),
                    })
                    .collect();
                (client_ports, quorum)
            }
            Backend::Docker => {
                let quorum = (0..n)
                    .map(|index| QuorumMember {
                        id: member_id(index),
                        host: instances[index].clone(),
                        peer_port: CONTAINER_PEER_PORT,
                        election_port: CONTAINER_ELECTION_PORT,
                        client: CONTAINER_CLIENT_PORT.to_string(),
                    })
                    .collect();
                (free_ports(n)?, quorum)
            }
        };
        let network = (backend == Backend::Docker).then(|| prefix.clone());
        let reaper =
            (backend == Backend::Docker).then(|| Reaper::spawn(&instances, network.as_deref()));

        let mut members = Vec::with_capacity(n);
        for index in 0..n {
            let config = NodeConfig {
                id: member_id(index),
                instance: instances[index].clone(),
                host_client_port: client_ports[index],
                members: quorum.clone(),
                label: format!(
                    "cluster member {index} (127.0.0.1:{}, {backend})",
                    client_ports[index]
                ),
                system_properties: Vec::new(),
                tls: None,
                sasl: None,
            };
            let node = Node::create(backend, config, network.as_deref()).await?;
            members.push(Member {
                client_port: client_ports[index],
                node: Mutex::new(node),
            });
        }
        let cluster = TestingCluster {
            backend,
            members,
            _reaper: reaper,
        };

        // Start every member before waiting for any: a member serves only once a quorum runs.
        let mut nodes = join_all(cluster.members.iter().map(|member| member.node.lock())).await;
        try_join_all(nodes.iter_mut().map(|node| node.launch())).await?;
        try_join_all(
            nodes
                .iter_mut()
                .map(|node| node.wait_for_mode(in_quorum, READY_TIMEOUT)),
        )
        .await?;
        drop(nodes);
        tracing::info!(%backend, connect_string = %cluster.connect_string(), "testing cluster ready");
        Ok(cluster)
    }

    /// The connect string naming every member: `127.0.0.1:P1,127.0.0.1:P2,...`.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|member| format!("127.0.0.1:{}", member.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The connect string of member `index` alone.
    ///
    /// # Errors
    ///
    /// [`TestingError::NoSuchMember`] if `index` is out of range.
    pub fn server_connect_string(&self, index: usize) -> Result<String, TestingError> {
        Ok(format!("127.0.0.1:{}", self.member(index)?.client_port))
    }

    /// How many members the cluster has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always `false`: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The backend the members run on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Kills member `index` abruptly with SIGKILL. Does nothing when it is not running.
    ///
    /// # Errors
    ///
    /// [`TestingError::NoSuchMember`] if `index` is out of range, then as
    /// [`TestingServer::stop`](super::TestingServer::stop).
    pub async fn kill(&self, index: usize) -> Result<(), TestingError> {
        tracing::info!(index, "killing cluster member");
        self.member(index)?.node.lock().await.kill().await
    }

    /// Stops member `index` gracefully. Does nothing when it is not running.
    ///
    /// # Errors
    ///
    /// [`TestingError::NoSuchMember`] if `index` is out of range, then as
    /// [`TestingServer::stop`](super::TestingServer::stop).
    pub async fn stop(&self, index: usize) -> Result<(), TestingError> {
        tracing::info!(index, "stopping cluster member");
        self.member(index)?.node.lock().await.stop().await
    }

    /// Stops member `index` if it runs, starts it again with its data, and waits until it
    /// serves as leader or follower (which needs a quorum of the other members running).
    ///
    /// # Errors
    ///
    /// [`TestingError::NoSuchMember`] if `index` is out of range, then as
    /// [`TestingServer::restart`](super::TestingServer::restart).
    pub async fn restart(&self, index: usize) -> Result<(), TestingError> {
        tracing::info!(index, "restarting cluster member");
        let mut node = self.member(index)?.node.lock().await;
        node.stop().await?;
        node.launch().await?;
        node.wait_for_mode(in_quorum, READY_TIMEOUT).await?;
        Ok(())
    }

    /// The mode member `index` reports through `srvr`, or `None` when it is down or does not
    /// serve (no quorum).
    ///
    /// # Errors
    ///
    /// [`TestingError::NoSuchMember`] if `index` is out of range.
    pub async fn mode(&self, index: usize) -> Result<Option<ServerMode>, TestingError> {
        let address = self.server_connect_string(index)?;
        Ok(server_mode(&address, MODE_PROBE_TIMEOUT)
            .await
            .ok()
            .flatten())
    }

    /// The index of the member that reports `Mode: leader` through `srvr`, or `None` when no
    /// member does (during an election, or without a quorum). Members that are down count as
    /// not leading.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for probes that can fail.
    pub async fn leader_index(&self) -> Result<Option<usize>, TestingError> {
        let modes = join_all((0..self.len()).map(|index| self.mode(index))).await;
        for (index, mode) in modes.into_iter().enumerate() {
            if mode? == Some(ServerMode::Leader) {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// The last lines of member `index`'s log, for diagnosing a failed test.
    ///
    /// # Errors
    ///
    /// [`TestingError::NoSuchMember`] if `index` is out of range.
    pub async fn log_tail(&self, index: usize) -> Result<String, TestingError> {
        Ok(self.member(index)?.node.lock().await.log_tail().await)
    }

    fn member(&self, index: usize) -> Result<&Member, TestingError> {
        self.members.get(index).ok_or(TestingError::NoSuchMember {
            index,
            len: self.members.len(),
        })
    }
}

impl std::fmt::Debug for TestingCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestingCluster")
            .field("backend", &self.backend)
            .field("connect_string", &self.connect_string())
            .finish_non_exhaustive()
    }
}

/// ZooKeeper's `myid` of member `index`: ids start at 1.
fn member_id(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}
