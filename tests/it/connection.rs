//! The connection manager ([`zk_recipes::Client`]) against real ZooKeeper servers, with faults
//! injected by the testing kit: connection cuts and blackholes ([`FaultProxy`]), server-side
//! session expiry ([`expire_session`]) and server restarts ([`TestingServer`]).
//!
//! Every wait has a deadline; nothing synchronises on a bare sleep. Timing assertions have a
//! strict lower bound (the client must not act early) and a generous upper bound (2 cores,
//! other builds running).

use std::collections::HashSet;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use futures::future::join_all;
use futures::FutureExt;
use zk_recipes::retry::{
    BoundedExponentialBackoffRetry, ExponentialBackoffRetry, RetryNTimes, RetryOneTime,
    RetryPolicy, RetryUntilElapsed,
};
use zk_recipes::testing::{expire_session, FaultProxy, TestingServer};
use zk_recipes::{Client, ClientBuilder, ConnectionState, Error};
use zookeeper_client::{Acls, CreateMode};

/// The longest any single expected event may take to show up.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long the state stream must stay quiet after the expected transitions.
const SETTLE: Duration = Duration::from_millis(1500);
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// The parent of every [`unique_path`]; made open to anyone so that tests with restrictive
/// default ACLs cannot lock other tests out of it.
const TEST_ROOT: &str = "/zkr-test";

fn builder(connect_string: &str) -> ClientBuilder {
    Client::builder(connect_string)
        .session_timeout(SESSION_TIMEOUT)
        .connection_timeout(Duration::from_secs(2))
}

async fn connect(connect_string: &str) -> Client {
    builder(connect_string)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to {connect_string}: {e}"))
}

/// A plain zookeeper-client session straight to the server, to look at what the client under
/// test did without going through it.
async fn observer(connect_string: &str) -> zookeeper_client::Client {
    let zk = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(connect_string)
        .await
        .unwrap_or_else(|e| panic!("observer connecting to {connect_string}: {e}"));
    match zk
        .create(
            TEST_ROOT,
            &[],
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
    {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
        Err(e) => panic!("creating {TEST_ROOT}: {e}"),
    }
    zk
}

/// The next state transition, which must come within `within`.
async fn next_state(
    states: &mut zk_recipes::connection::ConnectionStates,
    within: Duration,
) -> ConnectionState {
    match tokio::time::timeout(within, states.next()).await {
        Ok(Some(state)) => state,
        Ok(None) => panic!("the state stream ended"),
        Err(_) => panic!("no connection state within {within:?}"),
    }
}

async fn expect_state(
    states: &mut zk_recipes::connection::ConnectionStates,
    expected: ConnectionState,
    within: Duration,
) {
    let state = next_state(states, within).await;
    assert_eq!(state, expected, "expected {expected}, got {state}");
}

/// Asserts that no transition arrives within `window`.
async fn expect_quiet(states: &mut zk_recipes::connection::ConnectionStates, window: Duration) {
    if let Ok(state) = tokio::time::timeout(window, states.next()).await {
        panic!("unexpected transition {state:?} within {window:?}");
    }
}

// ------------------------------------------------------------------------------------------
// Connection states
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_then_restore_is_suspended_then_reconnected_on_the_same_session() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = connect(&proxy.connect_string()).await;
    assert_eq!(client.state(), ConnectionState::Connected);
    let session = client.session();
    let mut states = client.connection_states();

    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended, DEADLINE).await;
    assert_eq!(client.state(), ConnectionState::Suspended);
    proxy.restore();
    expect_state(&mut states, ConnectionState::Reconnected, DEADLINE).await;
    expect_quiet(&mut states, SETTLE).await;

    assert_eq!(client.state(), ConnectionState::Reconnected);
    let now = client.session();
    assert_eq!(
        now.id(),
        session.id(),
        "a cut shorter than the timeout keeps the session"
    );
    assert_eq!(now.generation(), 0);
    assert!(!session.is_lost());
    client.exists("/").await.unwrap().expect("the root exists");
}

/// zookeeper-client reports a connection on the server's connect response, before the rest of
/// its handshake. A link that drops each connection right after that response gives it
/// "connected" moments that cannot carry a request; none of them is a reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_no_reconnection() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect through the proxy");
    let session = client.session();
    let mut states = client.connection_states();

    proxy.drop_after_connect_response();
    expect_state(&mut states, ConnectionState::Suspended, DEADLINE).await;
    // Three more attempts, each answered by the server and then cut.
    let attempts = proxy.connections_accepted();
    eventually_async(
        "three handshakes that do not complete",
        DEADLINE,
        || async { proxy.connections_accepted() >= attempts + 3 },
    )
    .await;
    if let Some(state) = states.next().now_or_never() {
        panic!("a transition while no handshake could complete: {state:?}");
    }
    assert_eq!(client.state(), ConnectionState::Suspended);

    proxy.restore();
    expect_state(&mut states, ConnectionState::Reconnected, DEADLINE).await;
    assert_eq!(client.session().id(), session.id(), "the same session");
    tokio::time::timeout(Duration::from_secs(2), client.exists("/"))
        .await
        .expect("a request right after the reconnection is answered at once")
        .unwrap()
        .expect("the root exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_expiry_is_lost_then_reconnected_on_a_new_session() {
    init_tracing();
    let server = zk_server().await;
    let watcher = observer(&server).await;
    let client = connect(&server).await;
    let old = client.session();
    let path = unique_path("expiry");
    client.ensure_path(TEST_ROOT, false).await.unwrap();
    client
        .create(&path, b"old", CreateMode::Ephemeral, &[])
        .await
        .unwrap();
    let stat = watcher
        .check_stat(&path)
        .await
        .unwrap()
        .expect("the ephemeral node");
    assert!(old.owns(&stat));
    let mut states = client.connection_states();

    let info = old.zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();

    // The server drops the connection before refusing the session, so `Suspended` (and, if
    // the client got back in before the expiry took effect, `Reconnected`) may come first.
    loop {
        match next_state(&mut states, DEADLINE).await {
            ConnectionState::Lost => break,
            // These belong to the old session; the client may be on its new one already by
            // the time the queued transitions are read, so the live session is not checked.
            ConnectionState::Suspended | ConnectionState::Reconnected => {}
            other => panic!("unexpected {other} before Lost"),
        }
    }
    assert!(old.is_lost());
    assert!(matches!(old.zookeeper(), Err(Error::SessionExpired)));
    expect_state(&mut states, ConnectionState::Reconnected, DEADLINE).await;
    expect_quiet(&mut states, SETTLE).await;

    let new = client.session();
    assert_ne!(new.id(), old.id(), "a new session");
    assert_eq!(new.generation(), 1);
    assert!(!new.is_lost());
    assert_eq!(client.state(), ConnectionState::Reconnected);
    // The server deleted the old session's ephemeral node when it expired it.
    assert_eq!(watcher.check_stat(&path).await.unwrap(), None);

    // Raw operations work on the new session.
    let zk = client.zookeeper().unwrap();
    assert_eq!(zk.session_id(), new.id());
    let (stat, _) = zk
        .create(
            &path,
            b"new",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    assert!(new.owns(&stat));
    assert_eq!(zk.get_data(&path).await.unwrap().0, b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_past_the_timeout_is_lost_by_simulated_expiration() {
    init_tracing();
    const TIMEOUT: Duration = Duration::from_secs(6);
    const PERCENT: u32 = 50;
    let simulated = TIMEOUT * PERCENT / 100;
    let server = zk_server().await;
    let watcher = observer(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(TIMEOUT)
        .connection_timeout(Duration::from_secs(1))
        .simulated_session_expiration_percent(PERCENT)
        .connect()
        .await
        .unwrap();
    let old = client.session();
    assert_eq!(
        old.timeout(),
        TIMEOUT,
        "the server granted the timeout asked for"
    );
    let path = unique_path("blackhole");
    client.ensure_path(TEST_ROOT, false).await.unwrap();
    client
        .create(&path, b"", CreateMode::Ephemeral, &[])
        .await
        .unwrap();
    let mut states = client.connection_states();

    proxy.blackhole();
    expect_state(&mut states, ConnectionState::Suspended, DEADLINE).await;
    let suspended_at = Instant::now();
    expect_state(&mut states, ConnectionState::Lost, DEADLINE).await;
    let waited = suspended_at.elapsed();
    // The client itself declared the loss: the server has not expired the session yet (it
    // would only after the full timeout since it last heard from the client), so the
    // session's ephemeral node is still there.
    assert!(
        watcher.check_stat(&path).await.unwrap().is_some(),
        "Lost came from the server, not from the client's simulated expiration"
    );
    // Never early (the lower bound allows for this task being scheduled late to see
    // `Suspended`); long before the full timeout, or zookeeper-client's own expiry (7/5 of it).
    assert!(
        waited + Duration::from_millis(50) >= simulated,
        "Lost {waited:?} after Suspended; expected {simulated:?}"
    );
    assert!(
        waited < simulated + Duration::from_millis(2000) && waited < TIMEOUT,
        "Lost {waited:?} after Suspended; expected {simulated:?}"
    );
    assert!(old.is_lost());

    proxy.restore();
    expect_state(&mut states, ConnectionState::Reconnected, DEADLINE).await;
    expect_quiet(&mut states, SETTLE).await;
    let new = client.session();
    assert_ne!(new.id(), old.id());
    assert_eq!(new.generation(), 1);
    client.exists("/").await.unwrap().expect("the root exists");
    // The old session ends on the server too: dropped by the client, or expired.
    eventually_async(
        "the old session's ephemeral node to go",
        DEADLINE,
        || async { watcher.check_stat(&path).await.unwrap().is_none() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_connected_times_out_while_suspended() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = connect(&proxy.connect_string()).await;
    let session = client.wait_connected(Duration::from_secs(1)).await.unwrap();
    let mut states = client.connection_states();

    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended, DEADLINE).await;
    let wait = Duration::from_millis(300);
    let started = Instant::now();
    match client.wait_connected(wait).await {
        Err(Error::Timeout(d)) => assert_eq!(d, wait),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= wait && waited < wait + Duration::from_secs(2),
        "{waited:?}"
    );

    proxy.restore();
    let again = client.wait_connected(DEADLINE).await.unwrap();
    assert_eq!(again.id(), session.id());
}

// ------------------------------------------------------------------------------------------
// TCP_NODELAY (the connection is found through /proc/self/fd, so Linux only)
// ------------------------------------------------------------------------------------------

/// `TCP_NODELAY` on each of this process's connections to `proxy`, which only one client uses.
#[cfg(target_os = "linux")]
fn nodelay_towards(proxy: &FaultProxy) -> Vec<bool> {
    zk_recipes::testing::tcp_nodelay_of_connections_to(proxy.local_addr())
        .expect("listing this process's sockets")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_has_tcp_nodelay_after_connecting_and_after_reconnecting() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = connect(&proxy.connect_string()).await;
    assert_eq!(nodelay_towards(&proxy), [true], "the first connection");
    let mut states = client.connection_states();

    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended, DEADLINE).await;
    proxy.restore();
    expect_state(&mut states, ConnectionState::Reconnected, DEADLINE).await;
    // The option is set before `Reconnected` is published. The old connection is closed, but
    // its descriptor may not be released yet: every connection found must have it.
    let after = nodelay_towards(&proxy);
    assert!(
        after.contains(&true) && !after.contains(&false),
        "the connection zookeeper-client opened on reconnecting: {after:?}"
    );
    client.exists("/").await.unwrap().expect("the root exists");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_nodelay_off_leaves_the_connection_as_zookeeper_client_opened_it() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = builder(&proxy.connect_string())
        .tcp_nodelay(false)
        .connect()
        .await
        .unwrap();
    assert_eq!(nodelay_towards(&proxy), [false]);
    client.close().await;
}

// ------------------------------------------------------------------------------------------
// Close
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_stream_fails_operations_and_removes_ephemeral_nodes() {
    init_tracing();
    let server = zk_server().await;
    let watcher = observer(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = connect(&proxy.connect_string()).await;
    let clone = client.clone();
    let session = client.session();
    let parent = unique_path("close");
    client.ensure_path(&parent, false).await.unwrap();
    let plain = format!("{parent}/plain");
    client
        .create(&plain, b"", CreateMode::Ephemeral, &[])
        .await
        .unwrap();
    let protected = client
        .create_protected(&parent, "p", b"", CreateMode::EphemeralSequential, &[])
        .await
        .unwrap();
    let mut states = client.connection_states();

    // The close request takes a while to reach the server: close must wait for its answer.
    proxy.delay(Duration::from_millis(200));
    let started = Instant::now();
    client.close().await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "close did not wait for the server"
    );

    // Right after close returns: the session is closed on the server.
    assert_eq!(
        watcher.check_stat(&plain).await.unwrap(),
        None,
        "{plain} outlived close"
    );
    assert_eq!(watcher.check_stat(&protected.path).await.unwrap(), None);
    assert!(session.is_lost());
    // The stream ends.
    match tokio::time::timeout(DEADLINE, states.next()).await {
        Ok(None) => {}
        other => panic!("the state stream did not end: {other:?}"),
    }
    // Every operation, on every clone, says Closed.
    assert!(client.is_closed() && clone.is_closed());
    assert!(matches!(clone.get_data("/").await, Err(Error::Closed)));
    assert!(matches!(clone.zookeeper(), Err(Error::Closed)));
    assert!(matches!(session.zookeeper(), Err(Error::Closed)));
    assert!(matches!(
        clone
            .with_retry(|zk| async move { zk.check_stat("/").await })
            .await,
        Err(Error::Closed)
    ));
    assert!(matches!(
        clone.create(&plain, b"", CreateMode::Ephemeral, &[]).await,
        Err(Error::Closed)
    ));
    assert!(matches!(
        clone
            .create_protected(&parent, "p", b"", CreateMode::Ephemeral, &[])
            .await,
        Err(Error::Closed)
    ));
    assert!(matches!(
        clone.wait_connected(DEADLINE).await,
        Err(Error::Closed)
    ));
    // A new subscriber's stream ends at once.
    assert_eq!(
        tokio::time::timeout(DEADLINE, clone.connection_states().next())
            .await
            .unwrap(),
        None
    );
    client.close().await; // idempotent
}

// ------------------------------------------------------------------------------------------
// Retries
// ------------------------------------------------------------------------------------------

/// One question asked of a [`RetryPolicy`], and its answer.
#[derive(Debug, Clone, Copy)]
struct Asked {
    retry_count: u32,
    at: Instant,
    sleep: Option<Duration>,
}

/// A policy that records every question [`Client::with_retry`] asks the policy it wraps.
#[derive(Debug, Clone)]
struct Recording<P> {
    inner: P,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl<P: RetryPolicy> RetryPolicy for Recording<P> {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        let sleep = self.inner.allow_retry(retry_count, elapsed);
        self.asked.lock().unwrap().push(Asked {
            retry_count,
            at: Instant::now(),
            sleep,
        });
        sleep
    }
}

fn recording<P: RetryPolicy>(inner: P) -> (Recording<P>, Arc<Mutex<Vec<Asked>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    (
        Recording {
            inner,
            asked: asked.clone(),
        },
        asked,
    )
}

/// Runs `with_retry` with an operation that always fails with a connection loss, and checks
/// that it was attempted once per allowed retry, after sleeping what the policy said.
/// Returns the sleeps.
async fn check_sleeps(
    connect_string: &str,
    policy: impl RetryPolicy + Clone + 'static,
) -> Vec<Duration> {
    let (policy, asked) = recording(policy);
    let client = builder(connect_string)
        .retry_policy(policy)
        .connect()
        .await
        .unwrap();
    let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let result: Result<(), Error> = client
        .with_retry(|_zk| {
            attempts.lock().unwrap().push(Instant::now());
            async { Err(zookeeper_client::Error::ConnectionLoss) }
        })
        .await;
    assert!(matches!(result, Err(Error::ConnectionLoss)), "{result:?}");
    let attempts = attempts.lock().unwrap().clone();
    let asked = asked.lock().unwrap().clone();
    // Asked after every failed attempt, with 0, 1, 2... until the policy said no.
    assert_eq!(asked.len(), attempts.len(), "{asked:?}");
    for (i, a) in asked.iter().enumerate() {
        assert_eq!(a.retry_count as usize, i);
        assert_eq!(a.sleep.is_none(), i == asked.len() - 1, "{asked:?}");
    }
    // Each retry came no sooner than the sleep the policy asked for.
    for (i, a) in asked.iter().enumerate().take(asked.len() - 1) {
        let slept = attempts[i + 1] - a.at;
        let sleep = a.sleep.unwrap();
        assert!(
            slept >= sleep,
            "retry {i}: slept {slept:?}, policy said {sleep:?}"
        );
        assert!(
            slept < sleep + Duration::from_secs(2),
            "retry {i}: slept {slept:?} for {sleep:?}"
        );
    }
    client.close().await;
    asked.iter().filter_map(|a| a.sleep).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retry_sleeps_as_each_policy_says() {
    init_tracing();
    let server = zk_server().await;
    let ms = Duration::from_millis;

    let sleeps = check_sleeps(&server, RetryNTimes::new(3, ms(100))).await;
    assert_eq!(sleeps, vec![ms(100); 3]);

    let sleeps = check_sleeps(&server, RetryOneTime::new(ms(80))).await;
    assert_eq!(sleeps, vec![ms(80)]);

    let sleeps = check_sleeps(&server, ExponentialBackoffRetry::new(ms(20), 4)).await;
    assert_eq!(sleeps.len(), 4);
    for (i, sleep) in sleeps.iter().enumerate() {
        assert!(
            *sleep >= ms(20) && *sleep < ms(20) * (1 << (i + 1)),
            "retry {i}: {sleep:?}"
        );
    }

    let sleeps = check_sleeps(
        &server,
        BoundedExponentialBackoffRetry::new(ms(20), ms(50), 5),
    )
    .await;
    assert_eq!(sleeps.len(), 5);
    assert!(
        sleeps.iter().all(|s| *s >= ms(20) && *s <= ms(50)),
        "{sleeps:?}"
    );

    let started = Instant::now();
    let sleeps = check_sleeps(&server, RetryUntilElapsed::new(ms(450), ms(100))).await;
    assert!(started.elapsed() >= ms(450));
    assert!(sleeps.len() >= 3 && sleeps.len() <= 5, "{sleeps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retry_does_not_retry_what_a_retry_cannot_cure() {
    init_tracing();
    let server = zk_server().await;
    let (policy, asked) = recording(RetryNTimes::new(5, Duration::from_millis(10)));
    let client = builder(&server)
        .retry_policy(policy)
        .connect()
        .await
        .unwrap();
    let missing = unique_path("missing");
    let calls = AtomicUsize::new(0);
    let result = client
        .with_retry(|zk| {
            calls.fetch_add(1, Ordering::SeqCst);
            let missing = missing.clone();
            async move { zk.get_data(&missing).await }
        })
        .await;
    assert!(
        matches!(
            result,
            Err(Error::ZooKeeper(zookeeper_client::Error::NoNode))
        ),
        "{result:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        asked.lock().unwrap().is_empty(),
        "the policy was not even asked"
    );

    // The helpers map NoNode to a value instead.
    assert_eq!(client.get_data(&missing).await.unwrap(), None);
    assert!(!client.delete(&missing, None).await.unwrap());
    assert!(asked.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_operations_survive_a_server_restart_and_strict_policies_give_up() {
    init_tracing();
    let server = TestingServer::start().await.unwrap();
    let cs = server.connect_string();
    let ms = Duration::from_millis;
    let patient = builder(&cs)
        .connection_timeout(ms(500))
        .retry_policy(RetryUntilElapsed::new(Duration::from_secs(90), ms(100)))
        .connect()
        .await
        .unwrap();
    let (strict_policy, asked) = recording(RetryNTimes::new(3, ms(100)));
    let strict = builder(&cs)
        .connection_timeout(ms(300))
        .retry_policy(strict_policy)
        .connect()
        .await
        .unwrap();
    let path = unique_path("restart");
    patient
        .create(&path, b"before", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let mut patient_states = patient.connection_states();
    let mut strict_states = strict.connection_states();

    server.stop().await.unwrap();
    expect_state(&mut patient_states, ConnectionState::Suspended, DEADLINE).await;
    expect_state(&mut strict_states, ConnectionState::Suspended, DEADLINE).await;

    // A strict policy gives up: every attempt waits the connection timeout (300 ms) for a
    // connection, then sleeps 100 ms before the next, 3 times.
    let calls = AtomicUsize::new(0);
    let started = Instant::now();
    let result = strict
        .with_retry(|zk| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { zk.check_stat("/").await }
        })
        .await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(Error::ConnectionLoss)), "{result:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "never connected, so never attempted"
    );
    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        asked
            .iter()
            .map(|a| (a.retry_count, a.sleep))
            .collect::<Vec<_>>(),
        vec![
            (0, Some(ms(100))),
            (1, Some(ms(100))),
            (2, Some(ms(100))),
            (3, None)
        ]
    );
    assert!(elapsed >= ms(4 * 300 + 3 * 100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    // A patient policy waits it out. Each operation starts while the server is down...
    let attempts = AtomicUsize::new(0);
    let mut read = pin!(patient.with_retry(|zk| {
        attempts.fetch_add(1, Ordering::SeqCst);
        let path = path.clone();
        async move { zk.get_data(&path).await }
    }));
    let created = format!("{path}-created");
    let mut create = pin!(patient.create(&created, b"during", CreateMode::Persistent, &[]));
    let mut get = pin!(patient.get_data(&path));
    assert!(futures::poll!(read.as_mut()).is_pending());
    assert!(futures::poll!(create.as_mut()).is_pending());
    assert!(futures::poll!(get.as_mut()).is_pending());

    // ...and finishes once it is back.
    let (restarted, read, create, get) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(server.restart(), read, create, get)
    })
    .await
    .expect("the operations finished");
    restarted.unwrap();
    assert_eq!(read.unwrap().0, b"before");
    assert!(attempts.load(Ordering::SeqCst) >= 1);
    create.unwrap();
    assert_eq!(get.unwrap().unwrap().0, b"before");
    assert_eq!(
        patient.get_data(&created).await.unwrap().unwrap().0,
        b"during"
    );
    // And the strict client works again too, once it has reconnected (its policy does not
    // wait for the connection: it is reconnecting on its own backoff).
    strict
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("the strict client reconnected");
    assert!(strict.exists(&created).await.unwrap().is_some());
}

// ------------------------------------------------------------------------------------------
// Protected creates
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_create_finds_its_node_after_losing_the_answer() {
    init_tracing();
    let server = zk_server().await;
    let watcher = observer(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    // A long enough connection timeout that the delayed traffic below is not taken for a dead
    // connection: the loss comes from the cut.
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(6))
        .connection_timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap();
    let session = client.session();
    let parent = unique_path("protected");
    client.ensure_path(&parent, false).await.unwrap();
    let mut states = client.connection_states();

    // Each direction 500 ms late: the node exists on the server half a second before its
    // creator can hear so.
    proxy.delay(Duration::from_millis(500));
    let create = tokio::spawn({
        let client = client.clone();
        let parent = parent.clone();
        async move {
            client
                .create_protected(
                    &parent,
                    "node",
                    b"data",
                    CreateMode::EphemeralSequential,
                    &[],
                )
                .await
        }
    });
    let started = Instant::now();
    let created = loop {
        let children = watcher.list_children(&parent).await.unwrap();
        if !children.is_empty() {
            break children;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the create never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        !create.is_finished(),
        "the answer came through before the cut"
    );
    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended, DEADLINE).await;
    proxy.restore();
    expect_state(&mut states, ConnectionState::Reconnected, DEADLINE).await;

    let node = tokio::time::timeout(DEADLINE, create)
        .await
        .expect("the create finished")
        .unwrap()
        .expect("the create succeeded");
    assert_eq!(
        created,
        vec![node.name.clone()],
        "it found the node it had made"
    );
    assert!(
        node.name.starts_with("_c_")
            && node
                .name
                .ends_with(&format!("node{:010}", node.sequence.unwrap()))
    );
    assert_eq!(node.path, format!("{parent}/{}", node.name));
    assert_eq!(node.session.id(), session.id());
    let stat = watcher.check_stat(&node.path).await.unwrap().unwrap();
    assert_eq!(stat.ephemeral_owner, session.id().0);
    assert_eq!(node.stat.czxid, stat.czxid);
    assert_eq!(watcher.get_data(&node.path).await.unwrap().0, b"data");
    assert_eq!(
        watcher.list_children(&parent).await.unwrap(),
        vec![node.name.clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_protected_creates_leave_nothing_behind() {
    init_tracing();
    let server = zk_server().await;
    let watcher = observer(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let parent = unique_path("dropped");
    client.ensure_path(&parent, false).await.unwrap();

    // A round trip takes 100 ms; the futures are dropped anywhere from before the request is
    // sent to after the answer came back.
    proxy.delay(Duration::from_millis(50));
    let modes = [
        CreateMode::Ephemeral,
        CreateMode::PersistentSequential,
        CreateMode::Persistent,
    ];
    let outcomes = join_all((0..100).map(|i| {
        let client = client.clone();
        let parent = parent.clone();
        let mode = modes[i % modes.len()];
        let patience = Duration::from_micros(fastrand::u64(0..160_000));
        async move {
            tokio::time::timeout(
                patience,
                client.create_protected(&parent, &format!("n{i}-"), b"", mode, &[]),
            )
            .await
        }
    }))
    .await;
    let mut kept = HashSet::new();
    let mut dropped = 0;
    for outcome in outcomes {
        match outcome {
            Ok(Ok(node)) => {
                kept.insert(node.name);
            }
            Ok(Err(e)) => panic!("a create failed: {e}"),
            Err(_) => dropped += 1,
        }
    }
    assert!(dropped >= 20, "only {dropped} futures were dropped midway");
    // Some dropped creates did reach the server: their nodes exist for now.
    let children = watcher.list_children(&parent).await.unwrap();
    let orphans = children.iter().filter(|c| !kept.contains(*c)).count();
    assert!(
        orphans > 0,
        "no dropped create reached the server; the test proves nothing"
    );
    // The completed ones are ours to delete; the others must go by themselves.
    for name in &kept {
        assert!(client
            .delete(&format!("{parent}/{name}"), None)
            .await
            .unwrap());
    }
    let mut left = Vec::new();
    let deadline = Duration::from_secs(20);
    let started = Instant::now();
    while started.elapsed() < deadline {
        left = watcher.list_children(&parent).await.unwrap();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(crate::common::POLL_INTERVAL).await;
    }
    assert!(
        left.is_empty(),
        "{} nodes left behind: {left:?}",
        left.len()
    );
    // The session is still alive: the ephemeral ones were deleted, not expired.
    assert!(!client.session().is_lost());
    assert_eq!(client.session().generation(), 0);
}

// ------------------------------------------------------------------------------------------
// Settings
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_typed_errors_at_build_time() {
    init_tracing();
    let quick = |cs: &str| Client::builder(cs).connection_timeout(Duration::from_millis(300));
    for cs in [
        "",
        "  ",
        ",",
        "a:1,",
        "a:x",
        "a:0",
        "a:70000",
        ":2181",
        "a b:1",
        "host:-1",
        "a:1:2:3:x",
        "::1",
        "[::1",
        "[::1]x",
        "[]:1",
        "a:",
        "tcp://",
        "tcp://a:1,tcp+tls://",
    ] {
        match quick(cs).connect().await {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("connect string {cs:?}: {other:?}"),
        }
    }
    for cs in ["a:1//x", "a:1/x/", "a:1/x/../y", "a:1/x/./y", "a:1/\u{1}"] {
        match quick(cs).connect().await {
            Err(Error::InvalidPath { .. }) => {}
            other => panic!("connect string {cs:?}: {other:?}"),
        }
    }
    for namespace in ["a//b", "a/", "/a/", "..", "a/./b", "a\u{0}b"] {
        match quick("127.0.0.1:1").namespace(namespace).connect().await {
            Err(Error::InvalidPath { .. }) => {}
            other => panic!("namespace {namespace:?}: {other:?}"),
        }
    }
    let bad_settings = [
        quick("127.0.0.1:1").session_timeout(Duration::ZERO),
        quick("127.0.0.1:1").connection_timeout(Duration::ZERO),
        quick("127.0.0.1:1").simulated_session_expiration_percent(0),
        quick("127.0.0.1:1").simulated_session_expiration_percent(101),
    ];
    for builder in bad_settings {
        match builder.clone().connect().await {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("{builder:?}: {other:?}"),
        }
    }
    // Well-formed but unreachable: a connection loss within the connection timeout.
    let started = Instant::now();
    match quick("127.0.0.1:1").connect().await {
        Err(Error::ConnectionLoss) => {}
        other => panic!("unreachable server: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_chroot_is_an_invalid_argument() {
    init_tracing();
    let server = zk_server().await;
    let missing = format!("{server}{}", unique_path("no-chroot"));
    match builder(&missing).connect().await {
        Err(Error::InvalidArgument(message)) => {
            assert!(message.contains("does not exist"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_is_created_and_operations_are_relative_to_it() {
    init_tracing();
    let server = zk_server().await;
    let watcher = observer(&server).await;
    let namespace = unique_path("ns");
    let client = builder(&server)
        .namespace(&namespace[1..]) // without the leading '/', as Curator takes it
        .connect()
        .await
        .unwrap();
    assert!(
        watcher.check_stat(&namespace).await.unwrap().is_some(),
        "namespace created"
    );

    client
        .create("/a/b", b"helper", CreateMode::Persistent, &[])
        .await
        .unwrap();
    assert_eq!(
        watcher
            .get_data(&format!("{namespace}/a/b"))
            .await
            .unwrap()
            .0,
        b"helper"
    );
    assert_eq!(client.get_data("/a/b").await.unwrap().unwrap().0, b"helper");
    assert_eq!(
        client.children("/").await.unwrap().unwrap(),
        vec!["a".to_string()]
    );
    let zk = client.zookeeper().unwrap();
    zk.create(
        "/raw",
        b"raw",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    assert_eq!(
        watcher
            .get_data(&format!("{namespace}/raw"))
            .await
            .unwrap()
            .0,
        b"raw"
    );
    let node = client
        .create_protected("/locks", "lock-", b"", CreateMode::EphemeralSequential, &[])
        .await
        .unwrap();
    assert_eq!(node.path, format!("/locks/{}", node.name));
    assert!(watcher
        .check_stat(&format!("{namespace}{}", node.path))
        .await
        .unwrap()
        .is_some());

    // A chroot in the connect string, with a namespace below it: the chroot must exist, the
    // namespace is made; a second client finds both there.
    let chroot = format!("{server}{namespace}");
    for _ in 0..2 {
        let nested = builder(&chroot)
            .namespace("inner/most")
            .connect()
            .await
            .unwrap();
        nested.ensure_path("/x", false).await.unwrap();
        assert!(watcher
            .check_stat(&format!("{namespace}/inner/most/x"))
            .await
            .unwrap()
            .is_some());
        nested.close().await;
    }
    // The chroot alone, without namespace: relative too.
    let chrooted = builder(&chroot).connect().await.unwrap();
    assert_eq!(
        chrooted.get_data("/a/b").await.unwrap().unwrap().0,
        b"helper"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_and_default_acls_keep_others_out() {
    init_tracing();
    let server = zk_server().await;
    let _root = observer(&server).await;
    let password = "correct-horse-battery-staple";
    let authed_builder = builder(&server)
        .authorization("digest", format!("alice:{password}").into_bytes())
        .default_acls(Acls::creator_all().to_vec());
    let shown = format!("{authed_builder:?}");
    assert!(
        !shown.contains(password),
        "the builder shows the password: {shown}"
    );
    let authed = authed_builder.connect().await.unwrap();
    let shown = format!("{authed:?}");
    assert!(
        !shown.contains(password),
        "the client shows the password: {shown}"
    );
    let anonymous = connect(&server).await;

    let parent = unique_path("acl");
    let child = format!("{parent}/secret");
    authed
        .create(&parent, b"", CreateMode::Persistent, &[])
        .await
        .unwrap();
    authed
        .create(&child, b"s3cret", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let (acls, _) = authed.zookeeper().unwrap().get_acl(&child).await.unwrap();
    assert_eq!(acls.len(), 1);
    assert_eq!(acls[0].scheme(), "digest");
    assert!(acls[0].id().starts_with("alice:"), "{acls:?}");

    // Deleting needs DELETE on the parent, which the default ACL gave alice only.
    assert!(matches!(
        anonymous.delete(&child, None).await,
        Err(Error::NoAuth)
    ));
    assert!(matches!(
        anonymous.get_data(&child).await,
        Err(Error::NoAuth)
    ));
    assert!(matches!(
        anonymous.set_data(&child, b"x", None).await,
        Err(Error::NoAuth)
    ));
    assert!(matches!(
        anonymous
            .create_protected(&parent, "x", b"", CreateMode::Ephemeral, &[])
            .await,
        Err(Error::NoAuth)
    ));
    assert_eq!(authed.get_data(&child).await.unwrap().unwrap().0, b"s3cret");
    assert!(authed.delete(&child, None).await.unwrap());
    assert!(authed.delete(&parent, None).await.unwrap());
}

/// `create_with_path` returns the path it made: the sequence number of a sequential node
/// (which `create`'s stat alone cannot tell), with parents made on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_path_returns_the_sequential_nodes_name() {
    init_tracing();
    let server = zk_server().await;
    let client = Client::builder(server).connect().await.unwrap();
    let parent = unique_path("create-with-path");
    let (plain, stat) = client
        .create_with_path(
            &format!("{parent}/a/plain"),
            b"x",
            CreateMode::Persistent,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(plain, format!("{parent}/a/plain"));
    assert_eq!(stat.version, 0);
    let mut made = Vec::new();
    for _ in 0..3 {
        let (path, stat) = client
            .create_with_path(
                &format!("{parent}/seq/job-"),
                b"",
                CreateMode::PersistentSequential,
                &[],
            )
            .await
            .unwrap();
        let (_, read) = client
            .get_data(&path)
            .await
            .unwrap()
            .expect("the path made");
        assert_eq!(read.czxid, stat.czxid, "{path} is the node made");
        made.push(path);
    }
    assert_eq!(
        made,
        (0..3)
            .map(|i| format!("{parent}/seq/job-{i:010}"))
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        client
            .create_with_path("relative", b"", CreateMode::Persistent, &[])
            .await,
        Err(Error::InvalidPath { .. })
    ));
    client.close().await;
}
