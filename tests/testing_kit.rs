//! Tests of the testing kit against real ZooKeeper servers, on the backend `ZK_TEST_BACKEND`
//! picks (CI runs this file once per backend).

mod common;

use std::time::{Duration, Instant};

use common::{eventually_async, init_tracing, zk_server};
use zk_recipes::testing::{
    expire_session, four_letter_word, Backend, FaultProxy, ServerMode, TestingCluster,
    TestingError, TestingServer,
};
use zookeeper_client::{Acls, Client, CreateMode, SessionState, StateWatcher};

/// Long enough that nothing in a test expires by accident on a slow machine.
const LONG_SESSION: Duration = Duration::from_secs(20);
/// Short, so blackhole expiry tests stay fast.
const SHORT_SESSION: Duration = Duration::from_secs(2);
const STATE_DEADLINE: Duration = Duration::from_secs(30);

async fn connect(connect_string: &str, session_timeout: Duration) -> Client {
    Client::connector()
        .with_session_timeout(session_timeout)
        .connect(connect_string)
        .await
        .unwrap_or_else(|err| panic!("connecting to {connect_string}: {err}"))
}

/// Waits for the session state `expected`, failing on any other terminal state.
async fn wait_for_state(watcher: &mut StateWatcher, expected: SessionState) {
    let wait = async {
        loop {
            let state = watcher.changed().await;
            if state == expected {
                return;
            }
            assert!(
                !state.is_terminated(),
                "session ended in {state:?} while waiting for {expected:?}"
            );
        }
    };
    tokio::time::timeout(STATE_DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no {expected:?} within {STATE_DEADLINE:?}"));
}

/// Creates an ephemeral node owned by `client`'s session under a fresh path, parents included.
async fn create_ephemeral(client: &Client, name: &str) -> String {
    let path = common::unique_path(name);
    client
        .mkdir(
            "/zkr-test",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .or_else(|err| match err {
            zookeeper_client::Error::NodeExists => Ok(()),
            err => Err(err),
        })
        .expect("create /zkr-test");
    client
        .create(
            &path,
            b"owned",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap_or_else(|err| panic!("create {path}: {err}"));
    path
}

async fn node_exists(client: &Client, path: &str) -> bool {
    client.check_stat(path).await.expect("check_stat").is_some()
}

#[tokio::test]
async fn backend_from_env_honours_zk_test_backend() {
    init_tracing();
    let chosen = Backend::from_env().await;
    match std::env::var("ZK_TEST_BACKEND")
        .ok()
        .filter(|value| !value.is_empty())
    {
        Some(forced) => {
            let expected: Backend = forced.parse().expect("ZK_TEST_BACKEND names a backend");
            assert_eq!(chosen.expect("a forced backend"), expected);
            assert_eq!(Backend::forced_by_env().unwrap(), Some(expected));
        }
        None => {
            chosen.expect("some backend is available where the kit's tests run");
        }
    }
    assert!(matches!(
        "kubernetes".parse::<Backend>(),
        Err(TestingError::UnknownBackend(_))
    ));
}

#[tokio::test]
async fn session_survives_stop_and_restart() {
    init_tracing();
    let server = TestingServer::start().await.expect("start server");
    assert_eq!(
        server.connect_string(),
        format!("127.0.0.1:{}", server.port())
    );
    let answer = four_letter_word(&server.connect_string(), "ruok", Duration::from_secs(5))
        .await
        .expect("ruok");
    assert_eq!(answer, "imok");

    let client = connect(&server.connect_string(), LONG_SESSION).await;
    let session_id = client.session_id();
    let ephemeral = create_ephemeral(&client, "stop-restart").await;
    let mut states = client.state_watcher();

    server.stop().await.expect("stop");
    wait_for_state(&mut states, SessionState::Disconnected).await;
    server
        .stop()
        .await
        .expect("stopping a stopped server does nothing");
    server.restart().await.expect("restart");
    wait_for_state(&mut states, SessionState::SyncConnected).await;

    assert_eq!(client.session_id(), session_id);
    assert!(
        node_exists(&client, &ephemeral).await,
        "the session's ephemeral node survived"
    );
    // Restarting a running server works too, and keeps the port.
    let port = server.port();
    server.restart().await.expect("restart a running server");
    assert_eq!(server.port(), port);
    wait_for_state(&mut states, SessionState::SyncConnected).await;
    assert!(node_exists(&client, &ephemeral).await);
}

#[tokio::test]
async fn server_restarts_after_kill() {
    init_tracing();
    let server = TestingServer::start().await.expect("start server");
    let client = connect(&server.connect_string(), LONG_SESSION).await;
    let session_id = client.session_id();
    let ephemeral = create_ephemeral(&client, "kill").await;
    let mut states = client.state_watcher();

    server.kill().await.expect("kill");
    wait_for_state(&mut states, SessionState::Disconnected).await;
    assert!(
        four_letter_word(&server.connect_string(), "srvr", Duration::from_secs(2))
            .await
            .map_or(true, |answer| answer.is_empty()),
        "a killed server does not answer"
    );
    server.restart().await.expect("restart after kill");
    wait_for_state(&mut states, SessionState::SyncConnected).await;
    assert_eq!(
        client.session_id(),
        session_id,
        "the session was logged before the kill"
    );
    assert!(node_exists(&client, &ephemeral).await);
}

#[tokio::test]
async fn cluster_serves_after_leader_is_killed_and_member_rejoins() {
    init_tracing();
    assert!(matches!(
        TestingCluster::start(0).await,
        Err(TestingError::InvalidArgument(_))
    ));
    let cluster = TestingCluster::start(3).await.expect("start cluster");
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.connect_string().split(',').count(), 3);
    assert!(matches!(
        cluster.kill(3).await,
        Err(TestingError::NoSuchMember { index: 3, len: 3 })
    ));
    let leader = cluster
        .leader_index()
        .await
        .unwrap()
        .expect("a started cluster has a leader");
    for index in 0..cluster.len() {
        let expected = if index == leader {
            ServerMode::Leader
        } else {
            ServerMode::Follower
        };
        assert_eq!(cluster.mode(index).await.unwrap(), Some(expected));
    }

    let client = connect(&cluster.connect_string(), LONG_SESSION).await;
    let path = common::unique_path("cluster");
    cluster.kill(leader).await.expect("kill the leader");
    assert_eq!(cluster.mode(leader).await.unwrap(), None);

    // Writes fail while the survivors elect a new leader, then succeed.
    eventually_async("a write after the leader died", STATE_DEADLINE, || async {
        let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
        match client.mkdir(&path, &options).await {
            Ok(()) | Err(zookeeper_client::Error::NodeExists) => true,
            Err(err) => {
                tracing::debug!(%err, "write failed; retrying");
                false
            }
        }
    })
    .await;
    let new_leader = cluster
        .leader_index()
        .await
        .unwrap()
        .expect("the survivors elected a leader");
    assert_ne!(new_leader, leader);

    cluster
        .restart(leader)
        .await
        .expect("restart the old leader");
    let rejoined = cluster.mode(leader).await.unwrap();
    assert!(
        matches!(rejoined, Some(ServerMode::Follower | ServerMode::Leader)),
        "the restarted member serves in the quorum, got {rejoined:?}"
    );
    // The restarted member has the write made while it was down.
    let direct = connect(
        &cluster.server_connect_string(leader).unwrap(),
        LONG_SESSION,
    )
    .await;
    direct.sync(&path).await.expect("sync");
    assert!(direct.check_stat(&path).await.unwrap().is_some());
}

#[tokio::test]
async fn cut_disconnects_and_restore_reconnects() {
    init_tracing();
    let proxy = FaultProxy::start(&zk_server().await)
        .await
        .expect("start proxy");
    let client = connect(&proxy.connect_string(), LONG_SESSION).await;
    let session_id = client.session_id();
    let mut states = client.state_watcher();

    proxy.cut();
    wait_for_state(&mut states, SessionState::Disconnected).await;
    proxy.restore();
    wait_for_state(&mut states, SessionState::SyncConnected).await;
    assert_eq!(client.session_id(), session_id);
    client
        .check_stat("/")
        .await
        .expect("the client works again");
}

#[tokio::test]
async fn blackhole_longer_than_session_timeout_expires_session() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.expect("start proxy");
    let client = connect(&proxy.connect_string(), SHORT_SESSION).await;
    let ephemeral = create_ephemeral(&client, "blackhole").await;
    let observer = connect(&server, LONG_SESSION).await;
    assert!(node_exists(&observer, &ephemeral).await);
    let mut states = client.state_watcher();

    proxy.blackhole();
    // The server hears no pings and expires the session: its ephemeral node goes.
    eventually_async(
        "the server to expire the session",
        STATE_DEADLINE,
        || async { !node_exists(&observer, &ephemeral).await },
    )
    .await;
    proxy.restore();
    wait_for_state(&mut states, SessionState::Expired).await;
}

#[tokio::test]
async fn expire_session_expires_the_owner() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server, LONG_SESSION).await;
    let ephemeral = create_ephemeral(&client, "expire").await;
    let mut states = client.state_watcher();

    expire_session(&server, client.session())
        .await
        .expect("expire the session");
    wait_for_state(&mut states, SessionState::Expired).await;
    let observer = connect(&server, LONG_SESSION).await;
    assert!(
        !node_exists(&observer, &ephemeral).await,
        "the ephemeral node went with the session"
    );
    // Expiring an expired session is a no-op.
    expire_session(&server, client.session())
        .await
        .expect("expire again");
}

#[tokio::test]
async fn delay_adds_latency() {
    init_tracing();
    let proxy = FaultProxy::start(&zk_server().await)
        .await
        .expect("start proxy");
    let client = connect(&proxy.connect_string(), LONG_SESSION).await;
    client.check_stat("/").await.expect("warm-up read");

    let delay = Duration::from_millis(300);
    proxy.delay(delay);
    let started = Instant::now();
    client.check_stat("/").await.expect("delayed read");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= delay,
        "a read through a {delay:?} delay took only {elapsed:?}"
    );

    proxy.restore();
    client.check_stat("/").await.expect("read after restore");
}

#[tokio::test]
async fn proxy_rejects_a_bad_upstream() {
    for upstream in ["", "no-port", "host:port", "a:1,b:2"] {
        assert!(
            matches!(
                FaultProxy::start(upstream).await,
                Err(TestingError::InvalidArgument(_))
            ),
            "{upstream:?} accepted"
        );
    }
}

/// A server started with SASL users authenticates them, and refuses a wrong password, on
/// either backend (the JAAS file is written to the server's directory or copied into its
/// container).
#[cfg(feature = "sasl")]
#[tokio::test]
async fn a_sasl_server_authenticates_its_users() {
    use zk_recipes::testing::ServerOptions;
    init_tracing();
    let backend = Backend::from_env().await.expect("a backend");
    let options = ServerOptions::default().sasl_digest_md5(&[("bob", "bob-secret")], true);
    let server = TestingServer::start_with_options(backend, options)
        .await
        .expect("start a SASL server");
    let bob = zk_recipes::Client::builder(server.connect_string())
        .sasl_digest_md5("bob", "bob-secret")
        .connect()
        .await
        .expect("bob authenticates");
    bob.create("/sasl-kit", b"", CreateMode::Persistent, &[])
        .await
        .expect("bob writes");
    let refused = zk_recipes::Client::builder(server.connect_string())
        .sasl_digest_md5("bob", "wrong")
        .connect()
        .await;
    assert!(
        matches!(refused, Err(zk_recipes::Error::AuthFailed)),
        "{:?}",
        refused.map(drop)
    );
    bob.close().await;
}
