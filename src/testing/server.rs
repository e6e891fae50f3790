//! A standalone ZooKeeper server.

use std::time::Duration;

use tokio::sync::Mutex;

use super::config::{NodeConfig, NodeSasl, NodeTls, READY_TIMEOUT};
use super::docker::Reaper;
use super::node::{free_ports, unique_instance_prefix, Node};
use super::{Backend, TestingError};

/// A standalone ZooKeeper server on `127.0.0.1:PORT`, removed when dropped.
///
/// [`stop`](TestingServer::stop), [`kill`](TestingServer::kill) and
/// [`restart`](TestingServer::restart) keep the port and the data, so a client session
/// survives an outage shorter than its timeout, as with a real server restart. All methods take
/// `&self`, so tests can share the server in an `Arc`.
///
/// ```no_run
/// # async fn example() -> Result<(), zk_recipes::testing::TestingError> {
/// let server = zk_recipes::testing::TestingServer::start().await?;
/// let client = zk_recipes::zookeeper_client::Client::connect(&server.connect_string()).await.unwrap();
/// server.restart().await?; // the client reconnects to the same session
/// # drop(client);
/// # Ok(())
/// # }
/// ```
pub struct TestingServer {
    backend: Backend,
    port: u16,
    /// The TLS client port, when [`ServerOptions::tls`] asked for one.
    secure_port: Option<u16>,
    node: Mutex<Node>,
    /// Declared after `node`: dropped after it, when the container is already gone.
    _reaper: Option<Reaper>,
}

impl TestingServer {
    /// Starts a server on the backend [`Backend::from_env`] picks, and waits until it serves.
    ///
    /// # Errors
    ///
    /// [`TestingError::NoBackend`] or [`TestingError::UnknownBackend`] from backend selection,
    /// then as [`TestingServer::start_with`].
    pub async fn start() -> Result<TestingServer, TestingError> {
        TestingServer::start_with(Backend::from_env().await?).await
    }

    /// Starts a server on `backend` and waits until it serves (answers `srvr` with a mode).
    ///
    /// # Errors
    ///
    /// [`TestingError::NoBackend`] if the process backend finds no Java or no ZooKeeper jars,
    /// [`TestingError::Docker`] if a container cannot be created, [`TestingError::Io`] if a port,
    /// directory or process cannot be set up, [`TestingError::ServerExited`] if the server dies
    /// while starting, [`TestingError::Timeout`] if it does not serve within two minutes.
    pub async fn start_with(backend: Backend) -> Result<TestingServer, TestingError> {
        TestingServer::start_with_options(backend, ServerOptions::default()).await
    }

    /// Starts a server on `backend` with `options`, and waits until it serves.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), zk_recipes::testing::TestingError> {
    /// use std::time::Duration;
    /// use zk_recipes::testing::{Backend, ServerOptions, TestingServer};
    ///
    /// let options = ServerOptions::default().container_check_interval(Duration::from_millis(200));
    /// let server = TestingServer::start_with_options(Backend::from_env().await?, options).await?;
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start_with`](TestingServer::start_with).
    pub async fn start_with_options(
        backend: Backend,
        options: ServerOptions,
    ) -> Result<TestingServer, TestingError> {
        let ports = free_ports(2)?;
        let port = ports[0];
        let tls = options.tls.as_ref().map(|tls| NodeTls {
            host_port: ports[1],
            key_store_pem: tls.key_store_pem(),
            trust_store_pem: tls.client_ca_pem.clone(),
        });
        let secure_port = tls.as_ref().map(|tls| tls.host_port);
        let instance = format!("{}-1", unique_instance_prefix());
        let reaper = (backend == Backend::Docker)
            .then(|| Reaper::spawn(std::slice::from_ref(&instance), None));
        let config = NodeConfig {
            id: 1,
            instance,
            host_client_port: port,
            members: Vec::new(),
            label: format!("ZooKeeper server 127.0.0.1:{port} ({backend})"),
            system_properties: options.system_properties(),
            tls,
            sasl: options.sasl.clone(),
        };
        let mut node = Node::create(backend, config, None).await?;
        node.launch().await?;
        node.wait_for_mode(|mode| mode.is_serving(), READY_TIMEOUT)
            .await?;
        tracing::info!(%backend, port, ?secure_port, "testing server ready");
        Ok(TestingServer {
            backend,
            port,
            secure_port,
            node: Mutex::new(node),
            _reaper: reaper,
        })
    }

    /// The connect string for clients: `127.0.0.1:PORT`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port on 127.0.0.1; it stays the same across stops and restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS client port on 127.0.0.1, when the server was started with
    /// [`ServerOptions::tls`]; it stays the same across stops and restarts.
    pub fn secure_port(&self) -> Option<u16> {
        self.secure_port
    }

    /// The connect string for TLS clients, `tcp+tls://127.0.0.1:PORT`, when the server was
    /// started with [`ServerOptions::tls`].
    pub fn secure_connect_string(&self) -> Option<String> {
        self.secure_port
            .map(|port| format!("tcp+tls://127.0.0.1:{port}"))
    }

    /// The backend the server runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stops the server gracefully (SIGTERM; SIGKILL if it takes over 15 s). Does nothing when it
    /// is not running. [`restart`](TestingServer::restart) starts it again.
    ///
    /// # Errors
    ///
    /// [`TestingError::Docker`] or [`TestingError::Io`] if the server cannot be signalled,
    /// [`TestingError::Timeout`] if it does not exit even after SIGKILL.
    pub async fn stop(&self) -> Result<(), TestingError> {
        tracing::info!(port = self.port, "stopping testing server");
        self.node.lock().await.stop().await
    }

    /// Kills the server abruptly with SIGKILL, as a crash or power loss would. Does nothing
    /// when it is not running. [`restart`](TestingServer::restart) starts it again.
    ///
    /// # Errors
    ///
    /// As [`stop`](TestingServer::stop).
    pub async fn kill(&self) -> Result<(), TestingError> {
        tracing::info!(port = self.port, "killing testing server");
        self.node.lock().await.kill().await
    }

    /// Stops the server if it runs, starts it again on the same port with the same data, and
    /// waits until it serves.
    ///
    /// # Errors
    ///
    /// As [`stop`](TestingServer::stop), then as [`start_with`](TestingServer::start_with).
    pub async fn restart(&self) -> Result<(), TestingError> {
        tracing::info!(port = self.port, "restarting testing server");
        let mut node = self.node.lock().await;
        node.stop().await?;
        node.launch().await?;
        node.wait_for_mode(|mode| mode.is_serving(), READY_TIMEOUT)
            .await?;
        Ok(())
    }

    /// The last lines of the server's log, for diagnosing a failed test.
    pub async fn log_tail(&self) -> String {
        self.node.lock().await.log_tail().await
    }
}

/// Settings of a [`TestingServer`] beyond the kit's defaults, for
/// [`TestingServer::start_with_options`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServerOptions {
    container_check_interval: Option<Duration>,
    extended_types: bool,
    tls: Option<ServerTls>,
    sasl: Option<NodeSasl>,
}

impl ServerOptions {
    /// How often the server looks for empty container nodes to delete (ZooKeeper's
    /// `znode.container.checkIntervalMs`; a minute by default). Recipes make their parent
    /// nodes containers, as Curator does, so a short interval lets a test see a parent reaped
    /// and created again, as a long-lived service sees it after a quiet minute.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = zk_recipes::testing::ServerOptions::default()
    ///     .container_check_interval(Duration::from_millis(200));
    /// # drop(options);
    /// ```
    pub fn container_check_interval(mut self, interval: Duration) -> Self {
        self.container_check_interval = Some(interval);
        self
    }

    /// Enables ZooKeeper's extended node types (`zookeeper.extendedTypesEnabled`): TTL nodes,
    /// which [`PersistentTtlNode`](crate::PersistentTtlNode) and
    /// [`PersistentNodeBuilder::ttl`](crate::PersistentNodeBuilder::ttl) need. The server then
    /// deletes expired TTL nodes on the container check interval.
    ///
    /// ```
    /// let options = zk_recipes::testing::ServerOptions::default().extended_types(true);
    /// # drop(options);
    /// ```
    pub fn extended_types(mut self, enabled: bool) -> Self {
        self.extended_types = enabled;
        self
    }

    /// Authenticates clients with SASL DIGEST-MD5, with `users` (name, password) as the JAAS
    /// file's `Server` section lists them (`user_<name>="<password>"`); with `required`, every
    /// client must authenticate (ZooKeeper's `enforce.auth.enabled` with the `sasl` scheme).
    /// Clients connect with [`ClientBuilder::sasl_digest_md5`](crate::ClientBuilder::sasl_digest_md5)
    /// (feature `sasl`).
    ///
    /// ```
    /// let options = zk_recipes::testing::ServerOptions::default()
    ///     .sasl_digest_md5(&[("bob", "bobsecret"), ("alice", "alicesecret")], true);
    /// # drop(options);
    /// ```
    pub fn sasl_digest_md5(mut self, users: &[(&str, &str)], required: bool) -> Self {
        self.sasl = Some(NodeSasl {
            users: users
                .iter()
                .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
                .collect(),
            required,
        });
        self
    }

    /// Serves TLS clients too, on a second port ([`TestingServer::secure_port`]), with
    /// `tls`'s certificate. ZooKeeper's Netty connection factory then serves both ports; it
    /// asks clients for certificates only with [`ServerTls::require_client_certificates`].
    ///
    /// ```
    /// # fn demo(certificate_chain_pem: &str, private_key_pem: &str) {
    /// use zk_recipes::testing::{ServerOptions, ServerTls};
    /// let tls = ServerTls::from_pem(certificate_chain_pem, private_key_pem);
    /// let options = ServerOptions::default().tls(tls);
    /// # drop(options);
    /// # }
    /// ```
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    fn system_properties(&self) -> Vec<String> {
        let mut properties = Vec::new();
        if let Some(interval) = self.container_check_interval {
            let millis = interval.as_millis().max(1);
            properties.push(format!("-Dznode.container.checkIntervalMs={millis}"));
        }
        if self.extended_types {
            properties.push("-Dzookeeper.extendedTypesEnabled=true".to_owned());
        }
        properties
    }
}

/// The certificate a [`TestingServer`] presents on its TLS client port: see
/// [`ServerOptions::tls`].
#[derive(Clone)]
pub struct ServerTls {
    certificate_chain_pem: String,
    private_key_pem: String,
    client_ca_pem: Option<String>,
}

impl ServerTls {
    /// The server's certificate chain (its own certificate first) and its private key, in PEM
    /// (PKCS#8 `PRIVATE KEY`, RSA or EC, as ZooKeeper's PEM key store reads). For clients to
    /// accept it, the certificate names `127.0.0.1` among its IP subject alternative names.
    ///
    /// ```
    /// # fn demo(certificate_chain_pem: &str, private_key_pem: &str) {
    /// let tls = zk_recipes::testing::ServerTls::from_pem(certificate_chain_pem, private_key_pem);
    /// # drop(tls);
    /// # }
    /// ```
    pub fn from_pem(
        certificate_chain_pem: impl Into<String>,
        private_key_pem: impl Into<String>,
    ) -> ServerTls {
        ServerTls {
            certificate_chain_pem: certificate_chain_pem.into(),
            private_key_pem: private_key_pem.into(),
            client_ca_pem: None,
        }
    }

    /// Requires every TLS client to present a certificate signed by one of the CAs in
    /// `ca_pem` (ZooKeeper's `ssl.clientAuth=need` with a PEM trust store).
    ///
    /// ```
    /// # fn demo(certificate_chain_pem: &str, private_key_pem: &str, client_ca_pem: &str) {
    /// let tls = zk_recipes::testing::ServerTls::from_pem(certificate_chain_pem, private_key_pem)
    ///     .require_client_certificates(client_ca_pem);
    /// # drop(tls);
    /// # }
    /// ```
    pub fn require_client_certificates(mut self, ca_pem: impl Into<String>) -> Self {
        self.client_ca_pem = Some(ca_pem.into());
        self
    }

    /// ZooKeeper's PEM key store: the key, then the chain, in one file.
    fn key_store_pem(&self) -> String {
        let mut pem = self.private_key_pem.trim_end().to_owned();
        pem.push('\n');
        pem.push_str(self.certificate_chain_pem.trim_end());
        pem.push('\n');
        pem
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No key material in logs.
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TestingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestingServer")
            .field("backend", &self.backend)
            .field("connect_string", &self.connect_string())
            .field("secure_connect_string", &self.secure_connect_string())
            .finish_non_exhaustive()
    }
}
