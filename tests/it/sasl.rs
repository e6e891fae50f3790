//! SASL DIGEST-MD5 against a real server (the testing kit's `ServerOptions::sasl_digest_md5`):
//! a lock whose nodes carry a `sasl` ACL for its user cannot be taken or deleted by a client
//! with other credentials; wrong credentials are a typed authentication error; a session made
//! again after expiry authenticates again; a server that requires SASL refuses a client
//! without it.

use std::time::Duration;

use crate::common::{init_tracing, unique_path};
use zk_recipes::testing::{expire_session, Backend, ServerOptions, TestingServer};
use zk_recipes::zookeeper_client::{Acl, AuthId, CreateMode, Permission};
use zk_recipes::{Client, Error, InterProcessMutex};

const DEADLINE: Duration = Duration::from_secs(30);

async fn sasl_server(required: bool) -> TestingServer {
    let options = ServerOptions::default().sasl_digest_md5(
        &[("bob", "bob-secret"), ("alice", "alice-secret")],
        required,
    );
    TestingServer::start_with_options(Backend::from_env().await.unwrap(), options)
        .await
        .expect("a SASL server")
}

async fn connect_as(
    server: &TestingServer,
    user: &str,
    password: &str,
) -> zk_recipes::Result<Client> {
    Client::builder(server.connect_string())
        .session_timeout(Duration::from_secs(6))
        .connection_timeout(Duration::from_secs(3))
        .sasl_digest_md5(user, password)
        .connect()
        .await
}

fn only(user: &str) -> Vec<Acl> {
    vec![Acl::new(Permission::ALL, AuthId::new("sasl", user))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_acls_keep_other_users_out_and_survive_a_new_session() {
    init_tracing();
    let server = sasl_server(false).await;
    let bob = connect_as(&server, "bob", "bob-secret").await.unwrap();
    let alice = connect_as(&server, "alice", "alice-secret").await.unwrap();
    let path = unique_path("sasl-lock");
    bob.create(&path, b"", CreateMode::Persistent, &only("bob"))
        .await
        .unwrap();
    let lock = InterProcessMutex::new(&bob, &path)
        .unwrap()
        .with_acls(only("bob"));
    let guard = lock.acquire().await.unwrap();
    let node = guard.node_path().to_owned();

    // Alice can neither queue on the lock nor delete Bob's node.
    let hers = InterProcessMutex::new(&alice, &path).unwrap();
    assert!(matches!(
        hers.try_acquire(Duration::from_secs(5)).await,
        Err(Error::NoAuth)
    ));
    assert!(matches!(
        alice.delete(&node, None).await,
        Err(Error::NoAuth)
    ));
    guard.release().await.unwrap();

    // Bob's next session authenticates again: his ACL still lets him in.
    let old = bob.session();
    let info = old.zookeeper().unwrap().session().clone();
    expire_session(&server.connect_string(), &info)
        .await
        .unwrap();
    crate::common::eventually("a new session", DEADLINE, || {
        bob.session().generation() > old.generation()
    })
    .await;
    let again = lock.acquire().await.unwrap();
    bob.set_data(&path, b"still mine", None).await.unwrap();
    again.release().await.unwrap();
    assert!(matches!(
        alice.set_data(&path, b"not hers", None).await,
        Err(Error::NoAuth)
    ));
    bob.close().await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_authentication_error() {
    init_tracing();
    let server = sasl_server(false).await;
    let started = std::time::Instant::now();
    let refused = tokio::time::timeout(DEADLINE, connect_as(&server, "bob", "not-the-secret"))
        .await
        .expect("an answer, not a hang");
    assert!(
        matches!(refused, Err(Error::AuthFailed)),
        "{:?} after {:?}",
        refused.map(drop),
        started.elapsed()
    );
    let unknown = tokio::time::timeout(DEADLINE, connect_as(&server, "mallory", "x"))
        .await
        .expect("an answer, not a hang");
    assert!(
        matches!(unknown, Err(Error::AuthFailed)),
        "{:?}",
        unknown.map(drop)
    );
    assert!(matches!(
        Client::builder(server.connect_string())
            .sasl_digest_md5("", "x")
            .connect()
            .await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_sasl_serves_only_authenticated_clients() {
    init_tracing();
    let server = sasl_server(true).await;
    let bob = connect_as(&server, "bob", "bob-secret").await.unwrap();
    let path = unique_path("sasl-required");
    bob.create(&path, b"ok", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let anonymous = Client::builder(server.connect_string())
        .session_timeout(Duration::from_secs(6))
        .connection_timeout(Duration::from_secs(3))
        .connect()
        .await;
    match anonymous {
        Err(error) => assert!(
            matches!(
                error,
                Error::AuthFailed | Error::SessionExpired | Error::ConnectionLoss
            ),
            "{error:?}"
        ),
        Ok(client) => {
            let read = tokio::time::timeout(DEADLINE, client.get_data(&path))
                .await
                .expect("an answer");
            assert!(
                read.is_err(),
                "an unauthenticated read was served: {read:?}"
            );
            client.close().await;
        }
    }
    bob.close().await;
}
