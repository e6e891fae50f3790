//! [`ClientBuilder`]: how to reach ZooKeeper and how to behave when it goes away.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::Acl;

use super::endpoint::{endpoints, parse_connect_string};
use super::nodelay::ServerAddresses;
use super::retry::{ExponentialBackoffRetry, RetryPolicy};
use super::Client;
use crate::error::{Error, Result};
use crate::path::validate_path;

/// Authentication schemes and their secrets. Its `Debug` shows only the schemes, so no
/// `Debug` that contains it (the builder's, the config's) can leak a digest password.
#[derive(Clone, Default)]
pub(crate) struct Credentials(pub(crate) Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(scheme, _)| scheme))
            .finish()
    }
}

/// A SASL DIGEST-MD5 user and password. Its `Debug` shows only the user.
#[cfg(feature = "sasl")]
#[derive(Clone)]
pub(crate) struct SaslDigest {
    pub(crate) user: String,
    pub(crate) password: String,
}

#[cfg(feature = "sasl")]
impl std::fmt::Debug for SaslDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslDigest")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Everything needed to (re)create a session. Shared by the client and its manager task.
#[derive(Clone)]
pub(crate) struct Config {
    /// `host:port,host:port`, without chroot.
    pub(crate) hosts: String,
    /// The chroot from the connect string, which must already exist.
    pub(crate) connect_chroot: Option<String>,
    /// The namespace under the connect-string chroot, created when missing.
    pub(crate) namespace: Option<String>,
    pub(crate) session_timeout: Duration,
    pub(crate) connection_timeout: Duration,
    pub(crate) simulated_expiration_percent: u32,
    pub(crate) retry_policy: Arc<dyn RetryPolicy>,
    pub(crate) auth: Credentials,
    pub(crate) default_acls: Vec<Acl>,
    pub(crate) allow_read_only: bool,
    /// See [`ClientBuilder::max_request_size`].
    pub(crate) max_request_size: usize,
    /// The servers' addresses, to find the session's socket by; `None` when
    /// [`ClientBuilder::tcp_nodelay`] is off.
    pub(crate) nodelay: Option<ServerAddresses>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<super::TlsConfig>,
    #[cfg(feature = "sasl")]
    pub(crate) sasl: Option<SaslDigest>,
}

impl Config {
    /// The full chroot to apply to every session: connect-string chroot, then namespace.
    pub(crate) fn chroot(&self) -> Option<String> {
        match (&self.connect_chroot, &self.namespace) {
            (None, None) => None,
            (Some(c), None) => Some(c.clone()),
            (None, Some(n)) => Some(n.clone()),
            (Some(c), Some(n)) => Some(format!("{c}{n}")),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("hosts", &self.hosts)
            .field("connect_chroot", &self.connect_chroot)
            .field("namespace", &self.namespace)
            .field("session_timeout", &self.session_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field(
                "simulated_expiration_percent",
                &self.simulated_expiration_percent,
            )
            .field("retry_policy", &self.retry_policy)
            .field("auth", &self.auth)
            .field("default_acls", &self.default_acls)
            .field("allow_read_only", &self.allow_read_only)
            .field("max_request_size", &self.max_request_size)
            .field("nodelay", &self.nodelay)
            .finish()
    }
}

/// Builds a [`Client`]. Made by [`Client::builder`].
///
/// ```no_run
/// # async fn demo() -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::{retry::ExponentialBackoffRetry, Client};
///
/// let client = Client::builder("127.0.0.1:2181")
///     .session_timeout(Duration::from_secs(10))
///     .connection_timeout(Duration::from_secs(5))
///     .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
///     .namespace("app")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct ClientBuilder {
    connect_string: String,
    namespace: Option<String>,
    session_timeout: Duration,
    connection_timeout: Duration,
    simulated_expiration_percent: u32,
    retry_policy: Arc<dyn RetryPolicy>,
    auth: Credentials,
    default_acls: Vec<Acl>,
    allow_read_only: bool,
    tcp_nodelay: bool,
    max_request_size: usize,
    #[cfg(feature = "tls")]
    tls: Option<super::TlsConfig>,
    #[cfg(feature = "sasl")]
    sasl: Option<SaslDigest>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("connect_string", &self.connect_string)
            .field("namespace", &self.namespace)
            .field("session_timeout", &self.session_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("retry_policy", &self.retry_policy)
            .field("auth", &self.auth)
            .field("allow_read_only", &self.allow_read_only)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .field("max_request_size", &self.max_request_size)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    pub(crate) fn new(connect_string: impl Into<String>) -> Self {
        Self {
            connect_string: connect_string.into(),
            namespace: None,
            session_timeout: Duration::from_secs(60),
            connection_timeout: Duration::from_secs(15),
            simulated_expiration_percent: 100,
            retry_policy: Arc::new(ExponentialBackoffRetry::new(Duration::from_millis(100), 3)),
            auth: Credentials::default(),
            default_acls: Vec::new(),
            allow_read_only: false,
            tcp_nodelay: true,
            max_request_size: crate::limits::DEFAULT_MAX_REQUEST_SIZE,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "sasl")]
            sasl: None,
        }
    }

    /// Authenticates every session with SASL DIGEST-MD5 as `user` (the server's JAAS `Server`
    /// section names it, as `user_<name>="<password>"`), with the realm the server offers.
    /// Nodes can then carry `sasl` ACLs for the user (`Acl::new(perms, AuthId::new("sasl",
    /// user))`). Every new session authenticates again. Only with the `sasl` feature.
    ///
    /// ```no_run
    /// # async fn demo() -> zk_recipes::Result<()> {
    /// let client = zk_recipes::Client::builder("127.0.0.1:2181")
    ///     .sasl_digest_md5("bob", "bobsecret")
    ///     .connect()
    ///     .await?;
    /// # drop(client); Ok(()) }
    /// ```
    ///
    /// [`connect`](Self::connect) fails with [`Error::InvalidArgument`] for an empty user, and
    /// with [`Error::AuthFailed`] when the server refuses the credentials.
    #[cfg(feature = "sasl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sasl")))]
    pub fn sasl_digest_md5(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl = Some(SaslDigest {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// The session timeout to ask the server for (Curator's default: 60 s). The server clamps
    /// it to its own `[minSessionTimeout, maxSessionTimeout]`; the negotiated value is what
    /// [`ConnectionState::Lost`](crate::ConnectionState::Lost) detection uses.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181")
    ///     .session_timeout(Duration::from_secs(10));
    /// ```
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long to wait for a connection, both when connecting and when an operation finds the
    /// client suspended (Curator's default: 15 s). It is also the silence after which a
    /// connection counts as dropped; keep it below the session timeout.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181")
    ///     .connection_timeout(Duration::from_secs(5));
    /// ```
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// The retry policy for operations (default: `ExponentialBackoffRetry(100 ms, 3)`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// use zk_recipes::retry::RetryNTimes;
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181")
    ///     .retry_policy(RetryNTimes::new(5, Duration::from_millis(200)));
    /// ```
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry_policy = Arc::new(policy);
        self
    }

    /// A namespace (chroot) for every path of this client, like Curator's `namespace`:
    /// `"app"` makes `/locks/a` mean `/app/locks/a`. It is created when missing.
    ///
    /// ```
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181").namespace("app");
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// After this percentage of the negotiated session timeout spent
    /// [`Suspended`](crate::ConnectionState::Suspended), the client declares the session
    /// [`Lost`](crate::ConnectionState::Lost) without waiting for the server to say so
    /// (Curator's `simulatedSessionExpirationPercent`, default 100). The range is 1 to 100.
    ///
    /// ```
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181")
    ///     .simulated_session_expiration_percent(80);
    /// ```
    pub fn simulated_session_expiration_percent(mut self, percent: u32) -> Self {
        self.simulated_expiration_percent = percent;
        self
    }

    /// Adds authentication (Curator's `authorization`), e.g. `("digest", b"user:password")`.
    /// The secret never appears in `Debug` output or tracing events.
    ///
    /// ```
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181")
    ///     .authorization("digest", b"alice:secret".to_vec());
    /// ```
    pub fn authorization(mut self, scheme: impl Into<String>, auth: impl Into<Vec<u8>>) -> Self {
        self.auth.0.push((scheme.into(), auth.into()));
        self
    }

    /// ACLs for the nodes the client and its recipes create when a recipe is given none
    /// (default: open to anyone, `world:anyone` with all permissions). Parents made on the way
    /// to a node get the node's ACLs (see [`Client::create`]).
    ///
    /// ```
    /// use zk_recipes::zookeeper_client::Acls;
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181")
    ///     .authorization("digest", b"alice:secret".to_vec())
    ///     .default_acls(Acls::creator_all().to_vec());
    /// ```
    pub fn default_acls(mut self, acls: Vec<Acl>) -> Self {
        self.default_acls = acls;
        self
    }

    /// The largest request the client and its recipes send, in bytes: a node's path (with the
    /// namespace), data and ACLs. Default [`DEFAULT_MAX_REQUEST_SIZE`](crate::limits::DEFAULT_MAX_REQUEST_SIZE),
    /// ZooKeeper's default `jute.maxbuffer`; set it to the servers' `jute.maxbuffer` if they
    /// were given another.
    ///
    /// # Behavior
    ///
    /// A server drops the connection of a client that sends a request over its limit, with no
    /// error to say why, and each drop suspends every recipe on the client. So every create and
    /// write of the recipes and of the client's helpers is checked before it is sent, and one
    /// over this size fails with [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    ///
    /// ```
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181").max_request_size(4 << 20);
    /// ```
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Allows connecting to a server in read-only mode (Curator's `canBeReadOnly`); the state
    /// is then [`ReadOnly`](crate::ConnectionState::ReadOnly).
    ///
    /// ```
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181").can_be_read_only(true);
    /// ```
    pub fn can_be_read_only(mut self, allow: bool) -> Self {
        self.allow_read_only = allow;
        self
    }

    /// Whether to turn off Nagle's algorithm on the connection to ZooKeeper (`TCP_NODELAY`);
    /// on by default.
    ///
    /// # Behavior
    ///
    /// With Nagle's algorithm, a request sent while another is unanswered waits for that
    /// answer, which undoes the pipelining the recipes rely on (a lock request's reads behind
    /// its create, a selector's listing before its requeue transaction). zookeeper-client opens
    /// its socket without `TCP_NODELAY` and does not expose it, so after every connect and
    /// reconnect the client finds the socket among the process's descriptors, by its peer
    /// being one of the connect string's servers, and sets the option there. Other connections
    /// of this process to the same servers (other clients') get it too; the option changes
    /// only when small packets are sent, never what is sent.
    ///
    /// Linux only (the descriptors are listed from `/proc/self/fd`); elsewhere this setting has
    /// no effect. Turn it off to leave zookeeper-client's sockets exactly as it opened them.
    ///
    /// ```
    /// let builder = zk_recipes::Client::builder("127.0.0.1:2181").tcp_nodelay(false);
    /// ```
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.tcp_nodelay = nodelay;
        self
    }

    /// TLS for the servers the connect string names with `tcp+tls://` (feature `tls`); see
    /// [`TlsConfig`](super::TlsConfig).
    ///
    /// A server whose certificate these settings reject makes [`connect`](Self::connect) fail
    /// with [`Error::Tls`], which names the server and the reason.
    ///
    /// ```no_run
    /// # async fn demo(ca_pem: &str) -> zk_recipes::Result<()> {
    /// let client = zk_recipes::Client::builder("tcp+tls://127.0.0.1:2281")
    ///     .tls(zk_recipes::TlsConfig::from_pem_ca(ca_pem)?)
    ///     .connect()
    ///     .await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, config: super::TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Checks the settings, connects, and starts the connection manager.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`] for an empty or malformed connect string (an IPv6 address
    ///   needs brackets: `[::1]:2181`), a zero timeout, or a percentage outside 1..=100;
    /// * [`Error::InvalidPath`] for a bad chroot or namespace;
    /// * [`Error::InvalidArgument`] when the connect string's chroot does not exist;
    /// * [`Error::InvalidArgument`] for a `tcp+tls://` server without [`tls`](Self::tls)
    ///   settings (or without the `tls` feature), and for TLS settings with no `tcp+tls://`
    ///   server;
    /// * [`Error::ConnectionLoss`] when no session is established within the connection
    ///   timeout; [`Error::AuthFailed`] when authentication is refused;
    /// * [`Error::Tls`] when a `tcp+tls://` server's certificate is not one the
    ///   [`tls`](Self::tls) settings accept, or the server does not speak TLS.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future closes any session it had opened.
    pub async fn connect(self) -> Result<Client> {
        let config = self.into_config()?;
        Client::connect_with(config).await
    }

    pub(crate) fn into_config(self) -> Result<Config> {
        let (hosts, connect_chroot) = parse_connect_string(&self.connect_string)?;
        let namespace = match self.namespace {
            None => None,
            Some(ns) if ns.is_empty() => None,
            Some(ns) => {
                let ns = if ns.starts_with('/') {
                    ns
                } else {
                    format!("/{ns}")
                };
                validate_path(&ns)?;
                (ns != "/").then_some(ns)
            }
        };
        if self.session_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "session timeout must not be zero".into(),
            ));
        }
        #[cfg(feature = "sasl")]
        if let Some(sasl) = &self.sasl {
            if sasl.user.is_empty() {
                return Err(Error::InvalidArgument(
                    "a SASL user must not be empty".into(),
                ));
            }
        }
        if self.connection_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "connection timeout must not be zero".into(),
            ));
        }
        if !(1..=100).contains(&self.simulated_expiration_percent) {
            return Err(Error::InvalidArgument(format!(
                "simulated session expiration percent must be in 1..=100, got {}",
                self.simulated_expiration_percent
            )));
        }
        let servers = endpoints(&hosts);
        #[cfg(feature = "tls")]
        let tls_configured = self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls_configured = false;
        if let Some(server) = servers.iter().find(|server| server.tls && !tls_configured) {
            return Err(Error::InvalidArgument(format!(
                "{server} needs TLS settings: ClientBuilder::tls, with the crate's `tls` feature"
            )));
        }
        if tls_configured && !servers.iter().any(|server| server.tls) {
            // Java's ZooKeeper client turns TLS on for every server (zookeeper.client.secure);
            // here the scheme does, and TLS settings with no server to use them are a mistake.
            return Err(Error::InvalidArgument(format!(
                "TLS settings are given, but no server of {hosts:?} is named tcp+tls://host:port"
            )));
        }
        let nodelay = self.tcp_nodelay.then(|| ServerAddresses::new(servers));
        Ok(Config {
            hosts,
            connect_chroot,
            namespace,
            session_timeout: self.session_timeout,
            connection_timeout: self.connection_timeout,
            simulated_expiration_percent: self.simulated_expiration_percent,
            retry_policy: self.retry_policy,
            auth: self.auth,
            default_acls: self.default_acls,
            allow_read_only: self.allow_read_only,
            max_request_size: self.max_request_size,
            nodelay,
            #[cfg(feature = "tls")]
            tls: self.tls,
            #[cfg(feature = "sasl")]
            sasl: self.sasl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_settings() {
        let bad = |b: ClientBuilder| b.into_config().unwrap_err();
        assert!(matches!(
            bad(ClientBuilder::new("a:1").session_timeout(Duration::ZERO)),
            Error::InvalidArgument(_)
        ));
        assert!(matches!(
            bad(ClientBuilder::new("a:1").simulated_session_expiration_percent(0)),
            Error::InvalidArgument(_)
        ));
        assert!(matches!(
            bad(ClientBuilder::new("a:1").namespace("a//b")),
            Error::InvalidPath { .. }
        ));
        let config = ClientBuilder::new("a:1/base")
            .namespace("app")
            .into_config()
            .unwrap();
        assert_eq!(config.chroot().as_deref(), Some("/base/app"));
    }

    #[cfg(feature = "sasl")]
    #[test]
    fn a_sasl_password_is_never_shown() {
        let builder = ClientBuilder::new("a:1").sasl_digest_md5("bob", "pa55\u{0}wörd");
        let config = builder.clone().into_config().unwrap();
        assert!(!format!("{config:?}{builder:?}").contains("pa55"));
        assert!(format!("{:?}", config.sasl).contains("bob"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let builder = ClientBuilder::new("a:1").authorization("digest", b"alice:hunter2".to_vec());
        let config = builder.clone().into_config().unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("digest"),
            "{shown}"
        );
        let bytes = format!("{:?}", b"alice:hunter2".to_vec());
        assert!(!shown.contains(&bytes[1..10]), "{shown}");
    }
}
