//! Which way test servers run: Docker containers or local JVM processes.

use std::fmt;
use std::str::FromStr;

use super::{docker, process, TestingError};

/// Environment variable that forces a backend: `docker` or `process`.
pub(crate) const BACKEND_VAR: &str = "ZK_TEST_BACKEND";

/// How the kit runs ZooKeeper servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Containers through `testcontainers`, from `ZK_TEST_IMAGE` (default [`DEFAULT_IMAGE`](super::DEFAULT_IMAGE)).
    ///
    /// The image must understand the official image's variables (`ZOO_MY_ID`, `ZOO_SERVERS`,
    /// `ZOO_4LW_COMMANDS_WHITELIST`, `ZOO_CFG_EXTRA`, ...); the official image and the one built
    /// by `scripts/zookeeper-image.sh` both do.
    Docker,
    /// Local JVM processes running ZooKeeper's jars, from `ZOOKEEPER_HOME` or from Debian's
    /// `zookeeper` package (`/usr/share/java/zookeeper.jar`).
    Process,
}

impl Backend {
    /// The backend to use: `ZK_TEST_BACKEND` if set, else Docker when a daemon answers and the
    /// image is present or can be pulled, else the local process backend when Java and the
    /// ZooKeeper jars are there.
    ///
    /// # Errors
    ///
    /// [`TestingError::UnknownBackend`] if `ZK_TEST_BACKEND` names no backend;
    /// [`TestingError::NoBackend`] if neither backend can run here, with instructions to get one.
    pub async fn from_env() -> Result<Backend, TestingError> {
        if let Some(forced) = Backend::forced_by_env()? {
            tracing::debug!(backend = %forced, "backend forced by {BACKEND_VAR}");
            return Ok(forced);
        }
        let docker_problem = match docker::probe().await {
            Ok(()) => {
                tracing::debug!("using the docker backend");
                return Ok(Backend::Docker);
            }
            Err(problem) => problem,
        };
        let process_problem = match process::Runtime::discover() {
            Ok(_) => {
                tracing::debug!(%docker_problem, "docker unusable; using the process backend");
                return Ok(Backend::Process);
            }
            Err(problem) => problem,
        };
        Err(TestingError::NoBackend(format!(
            "docker: {docker_problem}; local process: {process_problem}. To get one: \
             `apt-get install zookeeper default-jre-headless` (process backend), or point \
             ZOOKEEPER_HOME at an Apache ZooKeeper binary release with java on PATH (process \
             backend), or run `scripts/zookeeper-image.sh` and set \
             ZK_TEST_IMAGE=zk-recipes/zookeeper:3.8 (docker backend); \
             {BACKEND_VAR}=docker|process forces a backend"
        )))
    }

    /// The backend named by `ZK_TEST_BACKEND`, or `None` when it is unset or empty.
    ///
    /// # Errors
    ///
    /// [`TestingError::UnknownBackend`] if the variable names no backend.
    pub fn forced_by_env() -> Result<Option<Backend>, TestingError> {
        match std::env::var(BACKEND_VAR) {
            Ok(value) if !value.trim().is_empty() => value.parse().map(Some),
            _ => Ok(None),
        }
    }

    /// The backend's name as `ZK_TEST_BACKEND` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Docker => "docker",
            Backend::Process => "process",
        }
    }
}

impl FromStr for Backend {
    type Err = TestingError;

    /// Parses `docker` or `process` (case-insensitive, surrounding blanks ignored).
    fn from_str(value: &str) -> Result<Backend, TestingError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "docker" => Ok(Backend::Docker),
            "process" => Ok(Backend::Process),
            _ => Err(TestingError::UnknownBackend(value.to_owned())),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_names() {
        assert_eq!("docker".parse::<Backend>().unwrap(), Backend::Docker);
        assert_eq!(" Process ".parse::<Backend>().unwrap(), Backend::Process);
        assert!(matches!(
            "podman".parse::<Backend>(),
            Err(TestingError::UnknownBackend(name)) if name == "podman"
        ));
        assert_eq!(Backend::Docker.to_string(), "docker");
    }
}
