//! The Docker backend: ZooKeeper in containers through `testcontainers`.
//!
//! Every container maps its client port to a host port picked beforehand, so a stopped and
//! started container keeps its port (and its data, which lives in the container). Members of a
//! cluster share a user-defined network and know each other by container name.
//!
//! Containers are removed when dropped. A test process that exits without running destructors
//! (statics are never dropped) would leave them behind, so a [`Reaper`] process holds a pipe
//! from the test process and removes them with the `docker` CLI when that pipe closes.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use testcontainers::bollard::query_parameters::CreateImageOptionsBuilder;
use testcontainers::bollard::Docker;
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::config::{
    NodeConfig, NodeTls, CONTAINER_SECURE_CLIENT_PORT, DEFAULT_IMAGE, FOUR_LETTER_WORDS,
    INIT_LIMIT_TICKS, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS, STOP_TIMEOUT,
    SYNC_LIMIT_TICKS, TICK_TIME_MS,
};
use super::TestingError;

/// Environment variable naming the image, e.g. `zk-recipes/zookeeper:3.8`.
pub(crate) const IMAGE_VAR: &str = "ZK_TEST_IMAGE";
/// The client port inside every container.
pub(crate) const CONTAINER_CLIENT_PORT: u16 = 2181;
pub(crate) const CONTAINER_PEER_PORT: u16 = 2888;
pub(crate) const CONTAINER_ELECTION_PORT: u16 = 3888;
/// Label on every container and network the kit creates, for manual clean-up:
/// `docker rm -f $(docker ps -aq --filter label=zk-recipes.testing)`.
const LABEL: &str = "zk-recipes.testing";
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// ZooKeeper's PEM key store inside a container, when it serves TLS.
const CONTAINER_KEY_STORE: &str = "/tmp/zk-recipes-key-store.pem";
/// Where a container's JAAS file (SASL users) goes.
const CONTAINER_JAAS: &str = "/tmp/zk-recipes-jaas.conf";

/// The image to run: `ZK_TEST_IMAGE`, else [`DEFAULT_IMAGE`], split into name and tag.
pub(crate) fn image() -> (String, String) {
    let reference = std::env::var(IMAGE_VAR)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    split_image_reference(reference.trim())
}

/// `name[:tag]`, where a `:` before the last `/` belongs to a registry address.
fn split_image_reference(reference: &str) -> (String, String) {
    let name_start = reference.rfind('/').map_or(0, |slash| slash + 1);
    match reference[name_start..].rfind(':') {
        Some(colon) => {
            let colon = name_start + colon;
            (
                reference[..colon].to_owned(),
                reference[colon + 1..].to_owned(),
            )
        }
        None => (reference.to_owned(), "latest".to_owned()),
    }
}

/// Whether the Docker backend can run: a daemon answers and the image is present or pulls.
///
/// The error is a sentence saying what is wrong.
pub(crate) async fn probe() -> Result<(), String> {
    let docker = Docker::connect_with_defaults()
        .map_err(|err| format!("cannot reach a Docker daemon ({err})"))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(format!("no Docker daemon answers ({err})")),
        Err(_) => return Err("the Docker daemon does not answer".to_owned()),
    }
    let (name, tag) = image();
    let reference = format!("{name}:{tag}");
    if docker.inspect_image(&reference).await.is_ok() {
        return Ok(());
    }
    tracing::info!(image = %reference, "image not present locally; pulling it");
    let options = CreateImageOptionsBuilder::default()
        .from_image(&name)
        .tag(&tag)
        .build();
    let pull = async {
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step?;
        }
        Ok::<_, testcontainers::bollard::errors::Error>(())
    };
    match tokio::time::timeout(PULL_TIMEOUT, pull).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!(
            "image {reference} is not present and cannot be pulled ({err})"
        )),
        Err(_) => Err(format!(
            "pulling image {reference} took longer than {PULL_TIMEOUT:?}"
        )),
    }
}

/// One ZooKeeper container; created on first launch, then stopped and started in place.
pub(crate) struct DockerNode {
    config: NodeConfig,
    container_name: String,
    network: Option<String>,
    container: Option<ContainerAsync<GenericImage>>,
}

impl DockerNode {
    pub(crate) fn create(
        config: NodeConfig,
        network: Option<&str>,
    ) -> Result<DockerNode, TestingError> {
        let container_name = config.instance.clone();
        Ok(DockerNode {
            config,
            container_name,
            network: network.map(str::to_owned),
            container: None,
        })
    }

    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub(crate) async fn launch(&mut self) -> Result<(), TestingError> {
        if let Some(container) = &self.container {
            container.start().await.map_err(|err| {
                TestingError::docker(format!("starting {}", self.container_name), err)
            })?;
            tracing::info!(server = %self.config.label, container = %self.container_name, "started container again");
            return Ok(());
        }
        let (name, tag) = image();
        let mut request = GenericImage::new(name, tag)
            .with_container_name(&self.container_name)
            .with_label(LABEL, "true")
            .with_mapped_port(self.config.host_client_port, CONTAINER_CLIENT_PORT.tcp())
            .with_startup_timeout(super::config::READY_TIMEOUT);
        for (variable, value) in environment(&self.config) {
            request = request.with_env_var(variable, value);
        }
        if let Some(tls) = &self.config.tls {
            request = request
                .with_mapped_port(tls.host_port, CONTAINER_SECURE_CLIENT_PORT.tcp())
                .with_copy_to(CONTAINER_KEY_STORE, tls.key_store_pem.clone().into_bytes());
            if let Some(trust) = &tls.trust_store_pem {
                request = request.with_copy_to(
                    NodeTls::trust_store_path(CONTAINER_KEY_STORE),
                    trust.clone().into_bytes(),
                );
            }
        }
        if let Some(sasl) = &self.config.sasl {
            request = request.with_copy_to(CONTAINER_JAAS, sasl.jaas().into_bytes());
        }
        if let Some(network) = &self.network {
            request = request.with_network(network);
        }
        let container = request.start().await.map_err(|err| {
            TestingError::docker(format!("creating container {}", self.container_name), err)
        })?;
        tracing::info!(server = %self.config.label, container = %self.container_name, id = %container.id(), "started container");
        self.container = Some(container);
        Ok(())
    }

    pub(crate) async fn stop(&mut self) -> Result<(), TestingError> {
        let Some(container) = &self.container else {
            return Ok(());
        };
        if !self.is_running().await? {
            return Ok(());
        }
        let grace = i32::try_from(STOP_TIMEOUT.as_secs()).unwrap_or(i32::MAX);
        container
            .stop_with_timeout(Some(grace))
            .await
            .map_err(|err| {
                TestingError::docker(format!("stopping {}", self.container_name), err)
            })?;
        self.wait_until_exited().await
    }

    pub(crate) async fn kill(&mut self) -> Result<(), TestingError> {
        let Some(container) = &self.container else {
            return Ok(());
        };
        if !self.is_running().await? {
            return Ok(());
        }
        let docker = Docker::connect_with_defaults()
            .map_err(|err| TestingError::docker("connecting to the Docker daemon", err))?;
        // The daemon's kill sends SIGKILL when no signal is named.
        docker
            .kill_container(container.id(), None)
            .await
            .map_err(|err| TestingError::docker(format!("killing {}", self.container_name), err))?;
        self.wait_until_exited().await
    }

    async fn is_running(&self) -> Result<bool, TestingError> {
        let Some(container) = &self.container else {
            return Ok(false);
        };
        container
            .is_running()
            .await
            .map_err(|err| TestingError::docker(format!("inspecting {}", self.container_name), err))
    }

    async fn wait_until_exited(&self) -> Result<(), TestingError> {
        let started = Instant::now();
        while self.is_running().await? {
            if started.elapsed() >= STOP_TIMEOUT {
                return Err(TestingError::Timeout {
                    what: format!("{} to exit", self.container_name),
                    waited: STOP_TIMEOUT,
                    detail: String::new(),
                });
            }
            tokio::time::sleep(EXIT_POLL_INTERVAL).await;
        }
        tracing::info!(server = %self.config.label, elapsed = ?started.elapsed(), "container exited");
        Ok(())
    }

    pub(crate) async fn check_alive(&mut self) -> Result<(), TestingError> {
        if self.is_running().await? {
            return Ok(());
        }
        let status = match &self.container {
            Some(container) => match container.exit_code().await {
                Ok(Some(code)) => format!("exit code {code}"),
                _ => "not running".to_owned(),
            },
            None => "not created".to_owned(),
        };
        Err(TestingError::ServerExited {
            what: format!("{} (container {})", self.config.label, self.container_name),
            status,
            log_tail: self.log_tail().await,
        })
    }

    pub(crate) async fn log_tail(&self) -> String {
        let Some(container) = &self.container else {
            return String::new();
        };
        let mut log = container.stdout_to_vec().await.unwrap_or_default();
        log.extend(container.stderr_to_vec().await.unwrap_or_default());
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for DockerNode {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else {
            return;
        };
        // testcontainers removes a dropped container through the current Tokio runtime and
        // panics without one; outside a runtime the reaper removes it instead.
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::debug!(container = %self.container_name, "dropped outside a Tokio runtime; leaving removal to the reaper");
            std::mem::forget(container);
        }
    }
}

/// The official image's configuration variables (our local image's entrypoint takes the same).
fn environment(config: &NodeConfig) -> Vec<(&'static str, String)> {
    let mut extra = vec![
        format!("minSessionTimeout={MIN_SESSION_TIMEOUT_MS}"),
        format!("maxSessionTimeout={MAX_SESSION_TIMEOUT_MS}"),
    ];
    let mut variables = vec![
        ("ZOO_MY_ID", config.id.to_string()),
        ("ZOO_TICK_TIME", TICK_TIME_MS.to_string()),
        ("ZOO_INIT_LIMIT", INIT_LIMIT_TICKS.to_string()),
        ("ZOO_SYNC_LIMIT", SYNC_LIMIT_TICKS.to_string()),
        ("ZOO_MAX_CLIENT_CNXNS", "0".to_owned()),
        ("ZOO_ADMINSERVER_ENABLED", "false".to_owned()),
        ("ZOO_4LW_COMMANDS_WHITELIST", FOUR_LETTER_WORDS.to_owned()),
        (
            "JVMFLAGS",
            config.jvm_flags(CONTAINER_KEY_STORE, CONTAINER_JAAS),
        ),
    ];
    if config.is_standalone() {
        variables.push(("ZOO_STANDALONE_ENABLED", "true".to_owned()));
    } else {
        variables.push(("ZOO_STANDALONE_ENABLED", "false".to_owned()));
        let servers: Vec<String> = config
            .members
            .iter()
            .map(|member| member.server_line())
            .collect();
        variables.push(("ZOO_SERVERS", servers.join(" ")));
        // A member's own name resolves to its address on the cluster network; listening on all
        // addresses is what the official image's documentation advises for containers.
        extra.push("quorumListenOnAllIPs=true".to_owned());
        extra.push("reconfigEnabled=false".to_owned());
    }
    if config.tls.is_some() {
        extra.push(format!("secureClientPort={CONTAINER_SECURE_CLIENT_PORT}"));
    }
    variables.push(("ZOO_CFG_EXTRA", extra.join(" ")));
    variables
}

/// Removes containers and a network with the `docker` CLI when dropped, or when the test
/// process dies (its pipe to the reaper closes either way).
pub(crate) struct Reaper {
    child: Option<Child>,
    control: Option<ChildStdin>,
}

const REAPER_SCRIPT: &str = r#"
network=$1; shift
while IFS= read -r _line; do :; done
docker rm -f -v "$@" >/dev/null 2>&1
if [ -n "$network" ]; then docker network rm "$network" >/dev/null 2>&1; fi
exit 0
"#;

impl Reaper {
    /// Spawns the reaper for `containers` (names) and `network`; logs and carries on without
    /// one when `sh` cannot be started.
    pub(crate) fn spawn(containers: &[String], network: Option<&str>) -> Reaper {
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(REAPER_SCRIPT)
            .arg("zk-recipes-reaper")
            .arg(network.unwrap_or(""))
            .args(containers)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(mut child) => {
                let control = child.stdin.take();
                Reaper {
                    child: Some(child),
                    control,
                }
            }
            Err(err) => {
                tracing::warn!(%err, ?containers, "cannot start the container reaper; containers may outlive a crashed test");
                Reaper {
                    child: None,
                    control: None,
                }
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut control) = self.control.take() {
            // Closing the pipe runs the removal; a final newline is harmless.
            let _ = control.write_all(b"\n");
        }
        if let Some(mut child) = self.child.take() {
            // Reap the exited reaper off-thread so no zombie lingers and drop does not block.
            std::thread::spawn(move || child.wait());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_image_references() {
        let split = |reference| split_image_reference(reference);
        assert_eq!(split("zookeeper:3.9"), ("zookeeper".into(), "3.9".into()));
        assert_eq!(
            split("zk-recipes/zookeeper:3.8"),
            ("zk-recipes/zookeeper".into(), "3.8".into())
        );
        assert_eq!(split("zookeeper"), ("zookeeper".into(), "latest".into()));
        assert_eq!(
            split("localhost:5000/zk"),
            ("localhost:5000/zk".into(), "latest".into())
        );
        assert_eq!(
            split("localhost:5000/zk:1"),
            ("localhost:5000/zk".into(), "1".into())
        );
    }
}
