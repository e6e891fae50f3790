//! What a server runs as, for both backends: the kit's server settings and one server's
//! configuration. The backends read it; nothing here depends on them.

use std::time::Duration;

/// The image used by the Docker backend when `ZK_TEST_IMAGE` is not set: the official image.
pub const DEFAULT_IMAGE: &str = "zookeeper:3.9";

/// The four-letter words every test server allows.
pub(crate) const FOUR_LETTER_WORDS: &str = "srvr,ruok,stat,mntr,cons";
/// Short ticks make session timeouts from 1 s possible and elections fast.
pub(crate) const TICK_TIME_MS: u64 = 500;
pub(crate) const INIT_LIMIT_TICKS: u32 = 20;
pub(crate) const SYNC_LIMIT_TICKS: u32 = 10;
pub(crate) const MIN_SESSION_TIMEOUT_MS: u64 = 1_000;
pub(crate) const MAX_SESSION_TIMEOUT_MS: u64 = 60_000;
/// One server's JVM: a small heap (tests store little, CI machines have 2 cores), a fast-starting
/// JIT, and no `/tmp/hsperfdata_*` files, which a killed JVM would leave behind.
pub(crate) const JVM_FLAGS: &str =
    "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData";

/// How long a server may take to serve after a start; JVM start-up on a loaded 2-core machine
/// (or a first image pull) is slow.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a graceful stop may take before the server is killed.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// One `server.N=` line of an ensemble, as seen by every member.
#[derive(Debug, Clone)]
pub(crate) struct QuorumMember {
    pub(crate) id: u32,
    pub(crate) host: String,
    pub(crate) peer_port: u16,
    pub(crate) election_port: u16,
    /// `port` or `address:port` where the member serves clients, as the member sees it.
    pub(crate) client: String,
}

impl QuorumMember {
    /// `server.N=host:peer:election;client`, the dynamic-configuration form both `zoo.cfg`
    /// and the official image's `ZOO_SERVERS` take.
    pub(crate) fn server_line(&self) -> String {
        format!(
            "server.{}={}:{}:{};{}",
            self.id, self.host, self.peer_port, self.election_port, self.client
        )
    }
}

/// What one server runs as.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    /// `myid`.
    pub(crate) id: u32,
    /// A name unique on this machine: the container name (which cluster members use as host
    /// names for each other).
    pub(crate) instance: String,
    /// The port clients use on 127.0.0.1.
    pub(crate) host_client_port: u16,
    /// Every member of the ensemble, this one included; empty for a standalone server.
    pub(crate) members: Vec<QuorumMember>,
    /// For log messages and errors: "server 127.0.0.1:2181", "cluster member 2".
    pub(crate) label: String,
    /// Java system properties beyond the kit's own, as `-Dname=value` flags.
    pub(crate) system_properties: Vec<String>,
    /// A TLS client port beside the plain one.
    pub(crate) tls: Option<NodeTls>,
    /// SASL DIGEST-MD5 users, and whether clients must authenticate.
    pub(crate) sasl: Option<NodeSasl>,
}

/// A server's SASL DIGEST-MD5 users (its JAAS `Server` section), and whether every client must
/// authenticate with SASL.
#[derive(Debug, Clone)]
pub(crate) struct NodeSasl {
    pub(crate) users: Vec<(String, String)>,
    pub(crate) required: bool,
}

impl NodeSasl {
    /// The JAAS file's text.
    pub(crate) fn jaas(&self) -> String {
        let mut text = String::from(
            "Server {\n    org.apache.zookeeper.server.auth.DigestLoginModule required",
        );
        for (user, password) in &self.users {
            text.push_str(&format!("\n    user_{user}=\"{password}\""));
        }
        text.push_str(";\n};\n");
        text
    }

    /// The Java system properties that make ZooKeeper authenticate with the JAAS file at
    /// `jaas_path` (and require it).
    fn system_properties(&self, jaas_path: &str) -> Vec<String> {
        let mut properties = vec![
            format!("-Djava.security.auth.login.config={jaas_path}"),
            "-Dzookeeper.authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
                .to_owned(),
        ];
        if self.required {
            properties.push("-Dzookeeper.enforce.auth.enabled=true".to_owned());
            properties.push("-Dzookeeper.enforce.auth.schemes=sasl".to_owned());
        }
        properties
    }
}

/// The port inside a container where a server serves TLS clients.
pub(crate) const CONTAINER_SECURE_CLIENT_PORT: u16 = 2281;

/// A server's TLS client port (ZooKeeper's `secureClientPort`, served by Netty).
#[derive(Debug, Clone)]
pub(crate) struct NodeTls {
    /// The port TLS clients use on 127.0.0.1.
    pub(crate) host_port: u16,
    /// ZooKeeper's PEM key store: the private key, then the certificate chain.
    pub(crate) key_store_pem: String,
    /// The CAs whose client certificates the server requires (`ssl.clientAuth=need`), in PEM;
    /// `None`: clients are not asked for certificates.
    pub(crate) trust_store_pem: Option<String>,
}

impl NodeTls {
    /// Where the trust store goes, beside the key store at `key_store_path`.
    pub(crate) fn trust_store_path(key_store_path: &str) -> String {
        format!("{key_store_path}.trust")
    }

    /// The Java system properties that make ZooKeeper serve TLS with the key store at
    /// `key_store_path`: clients are asked for certificates signed by the trust store's CAs
    /// (`ssl.clientAuth=need`) when there is one, not at all otherwise.
    pub(crate) fn system_properties(&self, key_store_path: &str) -> Vec<String> {
        let mut properties = vec![
            "-Dzookeeper.serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory"
                .to_owned(),
            format!("-Dzookeeper.ssl.keyStore.location={key_store_path}"),
            "-Dzookeeper.ssl.keyStore.type=PEM".to_owned(),
        ];
        match &self.trust_store_pem {
            Some(_) => properties.extend([
                format!(
                    "-Dzookeeper.ssl.trustStore.location={}",
                    Self::trust_store_path(key_store_path)
                ),
                "-Dzookeeper.ssl.trustStore.type=PEM".to_owned(),
                "-Dzookeeper.ssl.clientAuth=need".to_owned(),
            ]),
            None => properties.push("-Dzookeeper.ssl.clientAuth=none".to_owned()),
        }
        properties
    }
}

impl NodeConfig {
    /// The JVM flags of the server: the kit's, then the system properties, then TLS's with the
    /// key store at `key_store_path` (where the backend puts [`NodeTls::key_store_pem`]), then
    /// SASL's with the JAAS file at `jaas_path` (where it puts [`NodeSasl::jaas`]).
    pub(crate) fn jvm_flags(&self, key_store_path: &str, jaas_path: &str) -> String {
        // Elections must not wait the default 5 s for peers that are down.
        let mut flags = format!("{JVM_FLAGS} -Dzookeeper.cnxTimeout=1000");
        let mut tls_properties = match &self.tls {
            Some(tls) => tls.system_properties(key_store_path),
            None => Vec::new(),
        };
        if let Some(sasl) = &self.sasl {
            tls_properties.extend(sasl.system_properties(jaas_path));
        }
        for property in self.system_properties.iter().chain(&tls_properties) {
            flags.push(' ');
            flags.push_str(property);
        }
        flags
    }

    pub(crate) fn is_standalone(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn client_address(&self) -> String {
        format!("127.0.0.1:{}", self.host_client_port)
    }
}
