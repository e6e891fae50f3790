//! TLS to ZooKeeper (feature `tls`): the settings, and the reason a handshake fails.
//!
//! zookeeper-client reports a failed TLS handshake as a lost connection, the same as a server
//! that is down, and retries it until the connection timeout. A CA that does not sign the
//! server's certificate, or a certificate for another host, never heals that way. So when an
//! attempt to connect fails, the manager repeats the handshake itself with the same settings to
//! learn why, and a server the settings reject becomes [`Error::Tls`] instead of
//! [`Error::ConnectionLoss`].

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::endpoint::Endpoint;
use crate::error::{Error, Result};

/// How long the diagnosis may take in all, at most (and each connect and read in it).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS settings for the connections to ZooKeeper's secure client port (feature `tls`): the CA
/// certificates that sign the servers' certificates and, for servers that ask for one
/// (`ssl.clientAuth=need`), the client's own certificate.
///
/// Servers reached through `tcp+tls://host:port` in the connect string use these settings;
/// hosts without the scheme stay plain TCP. The server's certificate must name the host as the
/// connect string gives it (a DNS name or an IP address in its subject alternative names).
///
/// ```no_run
/// # async fn demo() -> zk_recipes::Result<()> {
/// let ca = std::fs::read_to_string("/etc/zookeeper/ca.pem").expect("the CA");
/// let client = zk_recipes::Client::builder("tcp+tls://zk1.example.com:2281")
///     .tls(zk_recipes::TlsConfig::from_pem_ca(&ca)?)
///     .connect()
///     .await?;
/// # drop(client);
/// # Ok(())
/// # }
/// ```
///
/// # What [`Error::Tls`] covers
///
/// A server certificate that these settings reject (signed by another CA, made out to another
/// name, expired), and a server that does not complete a TLS handshake. Two cases still end as
/// [`Error::ConnectionLoss`]: a client certificate that a TLS 1.3 server refuses after the
/// handshake (`ssl.clientAuth=need`), and a server certificate revoked by a CRL in the CA PEM
/// (zookeeper-client applies the CRLs; the diagnosis does not).
///
/// # Crypto provider
///
/// TLS is rustls with its `aws-lc-rs` provider. When the process has not installed a default
/// rustls `CryptoProvider` (which rustls needs when more than one is compiled in), connecting
/// installs `aws-lc-rs` as the default; a provider the application installed first is kept.
#[derive(Clone)]
pub struct TlsConfig {
    /// What zookeeper-client connects with.
    options: zookeeper_client::TlsOptions,
    /// The same trust and identity, for the diagnostic handshake.
    handshake: Arc<rustls::ClientConfig>,
    ca: Vec<CertificateDer<'static>>,
}

impl TlsConfig {
    /// Trusts the CA certificates in `ca_pem` (one or more PEM `CERTIFICATE` blocks), and
    /// presents no client certificate.
    ///
    /// ```
    /// # fn demo(ca_pem: &str) -> zk_recipes::Result<()> {
    /// let tls = zk_recipes::TlsConfig::from_pem_ca(ca_pem)?;
    /// # drop(tls);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `ca_pem` holds no certificate, or one that cannot be
    /// parsed.
    pub fn from_pem_ca(ca_pem: &str) -> Result<TlsConfig> {
        let ca = certificates(ca_pem, "the TLS CA")?;
        let options = zookeeper_client::TlsOptions::new()
            .with_pem_ca(ca_pem)
            .map_err(|err| invalid("the TLS CA", err))?;
        let handshake = Arc::new(handshake_builder(&ca)?.with_no_client_auth());
        Ok(TlsConfig {
            options,
            handshake,
            ca,
        })
    }

    /// Presents the certificate chain in `certificate_chain_pem` (the client's certificate
    /// first) with its private key in `private_key_pem` (PKCS#8, PKCS#1 or SEC1), for servers
    /// that authenticate their clients.
    ///
    /// ```
    /// # fn demo(ca: &str, cert: &str, key: &str) -> zk_recipes::Result<()> {
    /// let tls = zk_recipes::TlsConfig::from_pem_ca(ca)?.with_pem_identity(cert, key)?;
    /// # drop(tls);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the chain holds no certificate, the key cannot be read,
    /// or the key does not fit the certificate.
    pub fn with_pem_identity(
        self,
        certificate_chain_pem: &str,
        private_key_pem: &str,
    ) -> Result<TlsConfig> {
        let chain = certificates(certificate_chain_pem, "the TLS client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(private_key_pem.as_bytes())
            .map_err(|err| invalid("the TLS client private key", err))?;
        let handshake = Arc::new(
            handshake_builder(&self.ca)?
                .with_client_auth_cert(chain, key)
                .map_err(|err| invalid("the TLS client identity", err))?,
        );
        let options = self
            .options
            .with_pem_identity(certificate_chain_pem, private_key_pem)
            .map_err(|err| invalid("the TLS client identity", err))?;
        Ok(TlsConfig {
            options,
            handshake,
            ca: self.ca,
        })
    }

    /// The options zookeeper-client connects with, after making sure rustls has a crypto
    /// provider to build them with.
    pub(crate) fn client_options(&self) -> zookeeper_client::TlsOptions {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // zookeeper-client builds its rustls configuration with the process's default
            // provider, and rustls cannot pick one when several are compiled in (the testing
            // kit's Docker client brings `ring` beside `aws-lc-rs`): it would panic.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        self.options.clone()
    }

    /// Why the TLS servers among `endpoints` cannot be connected to, if the reason is TLS: a
    /// certificate these settings reject, or a server that does not speak TLS. `None` when one
    /// of them completes a handshake, or when none can be reached at all (not a TLS problem).
    pub(crate) async fn diagnose(
        &self,
        endpoints: Vec<Endpoint>,
        timeout: Duration,
    ) -> Option<Error> {
        let config = self.handshake.clone();
        let timeout = timeout.min(HANDSHAKE_TIMEOUT);
        let diagnosis = tokio::task::spawn_blocking(move || {
            let mut refused = None;
            for endpoint in endpoints.iter().filter(|endpoint| endpoint.tls) {
                match handshake(config.clone(), endpoint, timeout) {
                    Handshake::Completed => return None,
                    Handshake::Refused(reason) => {
                        refused.get_or_insert(Error::Tls {
                            server: endpoint.to_string(),
                            reason,
                        });
                    }
                    Handshake::Unreachable => {}
                }
            }
            refused
        });
        // The blocking thread finishes by itself; the connect waits no longer than this.
        tokio::time::timeout(timeout, diagnosis)
            .await
            .ok()?
            .ok()
            .flatten()
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No key material in logs.
        f.debug_struct("TlsConfig")
            .field("ca_certificates", &self.ca.len())
            .finish_non_exhaustive()
    }
}

fn invalid(what: &str, err: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{what}: {err}"))
}

fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| invalid(what, err))?;
    if certificates.is_empty() {
        return Err(invalid(what, "no PEM CERTIFICATE block"));
    }
    Ok(certificates)
}

fn handshake_builder(
    ca: &[CertificateDer<'static>],
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in ca {
        roots
            .add(certificate.clone())
            .map_err(|err| invalid("the TLS CA", err))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| invalid("the TLS protocol versions", err))?
        .with_root_certificates(roots))
}

enum Handshake {
    Completed,
    /// The handshake failed at the TLS level: the reason, for [`Error::Tls`].
    Refused(String),
    /// No TCP connection, or it broke without a TLS error.
    Unreachable,
}

/// One blocking TLS handshake with `endpoint` (run on a blocking thread).
fn handshake(
    config: Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
    timeout: Duration,
) -> Handshake {
    let Ok(name) = ServerName::try_from(endpoint.host.clone()) else {
        return Handshake::Refused(format!(
            "{:?} is not a valid TLS server name",
            endpoint.host
        ));
    };
    let Ok(mut connection) = rustls::ClientConnection::new(config, name) else {
        return Handshake::Unreachable;
    };
    // The first address that accepts, as zookeeper-client's connect takes.
    let Ok(addresses) = (endpoint.host.as_str(), endpoint.port).to_socket_addrs() else {
        return Handshake::Unreachable;
    };
    let Some(mut socket) = addresses
        .into_iter()
        .find_map(|address| TcpStream::connect_timeout(&address, timeout).ok())
    else {
        return Handshake::Unreachable;
    };
    let _ = socket.set_read_timeout(Some(timeout));
    let _ = socket.set_write_timeout(Some(timeout));
    while connection.is_handshaking() {
        if let Err(err) = connection.complete_io(&mut socket) {
            let tls_error = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            return match (tls_error, err.kind()) {
                (Some(tls), _) => Handshake::Refused(tls.to_string()),
                // A server that accepted the connection and dropped it at our hello: a plain
                // ZooKeeper port does that with a request it cannot read.
                (
                    None,
                    ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted,
                ) => Handshake::Refused(
                    "the server closed the connection during the TLS handshake (not a TLS \
                     port, or it refused the connection)"
                        .to_owned(),
                ),
                (None, _) => Handshake::Unreachable,
            };
        }
    }
    Handshake::Completed
}
