//! TLS against a real ZooKeeper: its secure client port (Netty), with a CA and certificates
//! made here. A lock is taken over TLS; a client that trusts another CA, or that names the
//! server by a name its certificate does not carry, gets `Error::Tls` and not a silent
//! connection loss; settings that cannot work are refused before connecting.

#![cfg(feature = "tls")]

use std::time::Duration;

use crate::common::{init_tracing, unique_path};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use zk_recipes::testing::{Backend, ServerOptions, ServerTls, TestingServer};
use zk_recipes::{Client, Error, InterProcessMutex, TlsConfig};

/// Failing connects wait this long; the server answers at once when the settings work.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// A CA made for one test: its certificate in PEM, and the means to sign with it.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA.
    fn server_tls(&self, names: &[&str]) -> ServerTls {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "zk-recipes test server");
        let key = KeyPair::generate().expect("server key");
        let certificate = params.signed_by(&key, &self.issuer).expect("server cert");
        ServerTls::from_pem(certificate.pem(), key.serialize_pem())
    }
}

async fn tls_server(tls: ServerTls) -> TestingServer {
    let backend = Backend::from_env().await.expect("a backend");
    TestingServer::start_with_options(backend, ServerOptions::default().tls(tls))
        .await
        .expect("a ZooKeeper server with a TLS client port")
}

async fn connect(connect_string: &str, ca_pem: &str) -> zk_recipes::Result<Client> {
    Client::builder(connect_string)
        .tls(TlsConfig::from_pem_ca(ca_pem)?)
        .connection_timeout(CONNECTION_TIMEOUT)
        .connect()
        .await
}

#[tokio::test]
async fn a_lock_is_taken_over_tls_and_seen_on_the_plain_port() {
    init_tracing();
    let ca = TestCa::new("zk-recipes test CA");
    let server = tls_server(ca.server_tls(&["127.0.0.1"])).await;
    let secure = server.secure_connect_string().expect("a TLS port");

    let client = connect(&secure, &ca.pem())
        .await
        .expect("a TLS session, the server's certificate signed by the CA we trust");
    let path = unique_path("tls-lock");
    let mutex = InterProcessMutex::new(&client, &path).expect("mutex");
    let guard = mutex.acquire().await.expect("the lock, over TLS");
    assert!(
        guard.verify().await,
        "the lock is ours by the server's answer"
    );

    // The same server, through its plain port, sees the TLS client's lock node: one server,
    // two transports, and the lock excludes across them.
    let plain = Client::builder(server.connect_string())
        .connect()
        .await
        .expect("a plain session");
    let plain_mutex = InterProcessMutex::new(&plain, &path).expect("mutex");
    assert_eq!(
        plain_mutex
            .participants()
            .await
            .expect("participants")
            .len(),
        1,
        "the TLS client's lock node, seen from the plain port"
    );
    let refused = plain_mutex
        .try_acquire(Duration::from_millis(300))
        .await
        .expect("try_acquire");
    assert!(refused.is_none(), "the TLS client holds the lock");
    guard.release().await.expect("release over TLS");
    let taken = plain_mutex
        .try_acquire(Duration::from_secs(10))
        .await
        .expect("try_acquire");
    assert!(taken.is_some(), "released over TLS, taken over plain TCP");
    drop(taken);
    client.close().await;
    plain.close().await;
}

#[tokio::test]
async fn a_server_the_settings_reject_is_a_tls_error() {
    init_tracing();
    let ca = TestCa::new("zk-recipes test CA");
    let server = tls_server(ca.server_tls(&["127.0.0.1"])).await;
    let secure = server.secure_connect_string().expect("a TLS port");
    let port = server.secure_port().expect("a TLS port");

    // Another CA did not sign the server's certificate.
    let other_ca = TestCa::new("some other CA");
    match connect(&secure, &other_ca.pem()).await {
        Err(Error::Tls { server, reason }) => {
            assert_eq!(server, secure);
            assert!(
                reason.to_lowercase().contains("issuer"),
                "the reason names the unknown issuer: {reason}"
            );
        }
        other => {
            panic!("expected Error::Tls for a CA that did not sign the server's, got {other:?}")
        }
    }

    // The certificate names 127.0.0.1, not localhost.
    let by_name = format!("tcp+tls://localhost:{port}");
    match connect(&by_name, &ca.pem()).await {
        Err(Error::Tls { reason, .. }) => assert!(
            reason.to_lowercase().contains("not valid for name"),
            "the reason names the name mismatch: {reason}"
        ),
        other => panic!("expected Error::Tls for a name the certificate lacks, got {other:?}"),
    }

    // The plain port does not speak TLS.
    let plain_port = format!("tcp+tls://127.0.0.1:{}", server.port());
    assert!(
        matches!(
            connect(&plain_port, &ca.pem()).await,
            Err(Error::Tls { .. })
        ),
        "TLS to the plain port"
    );

    // And the right settings still work on the same server.
    let client = connect(&secure, &ca.pem()).await.expect("a TLS session");
    client.close().await;
}

#[tokio::test]
async fn tls_settings_that_cannot_work_are_refused_before_connecting() {
    init_tracing();
    // Nothing listens here: each error below must come from the settings alone.
    let nowhere = "tcp+tls://127.0.0.1:1";

    match TlsConfig::from_pem_ca("not a certificate") {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("TLS CA"), "{why}"),
        other => panic!("expected InvalidArgument for a CA without a certificate, got {other:?}"),
    }
    let ca = TestCa::new("zk-recipes test CA");
    let key = KeyPair::generate().expect("key").serialize_pem();
    match TlsConfig::from_pem_ca(&ca.pem())
        .expect("CA")
        .with_pem_identity("no certificate", &key)
    {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("client certificate"), "{why}"),
        other => {
            panic!("expected InvalidArgument for an identity without a certificate, got {other:?}")
        }
    }

    let plain_only = Client::builder("127.0.0.1:1")
        .tls(TlsConfig::from_pem_ca(&ca.pem()).expect("CA"))
        .connect()
        .await;
    match plain_only {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("tcp+tls://"), "{why}"),
        other => {
            panic!("expected InvalidArgument for TLS settings and no TLS server, got {other:?}")
        }
    }

    match Client::builder(nowhere).connect().await {
        Err(Error::InvalidArgument(why)) => {
            assert!(why.contains("needs TLS settings"), "{why}")
        }
        other => {
            panic!("expected InvalidArgument for tcp+tls:// without TLS settings, got {other:?}")
        }
    }
}

/// A client certificate signed by `ca`, for `name`.
fn client_identity(ca: &TestCa, name: &str) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("client key");
    let certificate = params.signed_by(&key, &ca.issuer).expect("client cert");
    (certificate.pem(), key.serialize_pem())
}

/// A server that requires client certificates (`ssl.clientAuth=need`): one signed by its
/// trusted CA is served; one signed by another CA, or none, is an `Error::Tls` naming the
/// server's alert (ZooKeeper 3.8's Netty server sends it while the client's handshake still
/// reads), not a bare connection loss.
#[tokio::test]
async fn a_server_that_requires_client_certificates_refuses_others_as_a_tls_error() {
    init_tracing();
    let ca = TestCa::new("zk-recipes test CA");
    let clients_ca = TestCa::new("zk-recipes client CA");
    let tls = ca
        .server_tls(&["127.0.0.1"])
        .require_client_certificates(clients_ca.pem());
    let server = tls_server(tls).await;
    let secure = server.secure_connect_string().expect("a TLS port");
    let with_identity = |identity: (String, String)| {
        let secure = secure.clone();
        let ca_pem = ca.pem();
        async move {
            Client::builder(&secure)
                .tls(TlsConfig::from_pem_ca(&ca_pem)?.with_pem_identity(&identity.0, &identity.1)?)
                .connection_timeout(CONNECTION_TIMEOUT)
                .connect()
                .await
        }
    };

    let client = with_identity(client_identity(&clients_ca, "good client"))
        .await
        .expect("a trusted client certificate is served");
    let path = unique_path("tls-client-auth");
    client
        .create(
            &path,
            b"",
            zk_recipes::zookeeper_client::CreateMode::Persistent,
            &[],
        )
        .await
        .unwrap();
    client.close().await;

    let stranger = TestCa::new("some other CA");
    match with_identity(client_identity(&stranger, "stranger")).await {
        Err(Error::Tls { server, reason }) => {
            assert_eq!(server, secure);
            assert!(reason.to_lowercase().contains("certificate"), "{reason}");
        }
        other => panic!("expected Error::Tls for an untrusted client certificate, got {other:?}"),
    }
    match connect(&secure, &ca.pem()).await {
        Err(Error::Tls { reason, .. }) => assert!(!reason.is_empty()),
        other => panic!("expected Error::Tls without a client certificate, got {other:?}"),
    }
}
