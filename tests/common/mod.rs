//! Helpers shared by the integration tests: `tests/it/` (its `common` module),
//! `tests/security.rs`, `tests/testing_kit.rs` and `tests/chaos.rs` (`mod common;`).
//!
//! * [`zk_server`]: a ZooKeeper server shared by the whole test binary (or `ZK_CONNECT`).
//! * [`unique_path`]: a fresh znode path per test, so tests sharing a server do not collide.
//! * [`init_tracing`]: logs to the test output, filtered by `RUST_LOG`.
//! * [`eventually`] / [`eventually_async`]: wait for a condition under a deadline, never a
//!   bare sleep; [`eventually_children`] and [`children_of`] look at a parent's children.
//! * [`connect_with`]: a crate [`Client`] with given timeouts.
//! * [`join_within`]: a spawned task's result, under a deadline.
//! * [`until_connection_state`]: skips a client's connection states until a given one comes.
//! * [`mode_letter`]: `R` or `W` for a read/write lock's node, as the Java workers write it.
//! * [`java`]: Java processes running Apache Curator, for the interop tests.
#![allow(dead_code)] // Each test binary uses a different subset.

pub mod java;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use zk_recipes::testing::TestingServer;
use zk_recipes::{Client, LockMode};

/// Environment variable with the connect string of an external ZooKeeper to use instead of
/// starting one.
pub const CONNECT_VAR: &str = "ZK_CONNECT";

/// How often [`eventually`] and [`eventually_async`] look again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

static SHARED_SERVER: OnceCell<String> = OnceCell::const_new();

/// The connect string of a ZooKeeper shared by every test of this binary: `ZK_CONNECT` if set,
/// else a [`TestingServer`] started on first use (on the backend `ZK_TEST_BACKEND` or
/// auto-detection picks).
///
/// The server runs on a dedicated thread and runtime, so it outlives the `#[tokio::test]` that
/// started it; it is removed when the test binary exits (the kit's watcher processes see the
/// binary's pipes close). Tests must not stop it: use a `TestingServer` of their own for that.
///
/// # Panics
///
/// If no server can be started; the message says why and how to get a backend.
pub async fn zk_server() -> String {
    if let Ok(connect_string) = std::env::var(CONNECT_VAR) {
        if !connect_string.trim().is_empty() {
            return connect_string;
        }
    }
    SHARED_SERVER.get_or_init(start_shared_server).await.clone()
}

async fn start_shared_server() -> String {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shared-zookeeper".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the shared ZooKeeper server");
            runtime.block_on(async move {
                match TestingServer::start().await {
                    Ok(server) => {
                        let _ = started_tx.send(Ok(server.connect_string()));
                        // Keep the server, and the runtime its handles live on, until the test
                        // binary exits.
                        std::future::pending::<()>().await;
                        drop(server);
                    }
                    Err(err) => {
                        let _ = started_tx.send(Err(err.to_string()));
                    }
                }
            });
        })
        .expect("a thread for the shared ZooKeeper server");
    match started_rx.await {
        Ok(Ok(connect_string)) => connect_string,
        Ok(Err(err)) => panic!("cannot start the shared ZooKeeper server: {err}"),
        Err(_) => panic!("the shared ZooKeeper server's thread died while starting it"),
    }
}

/// A znode path no other test uses: `/zkr-test/<name>-<uuid>`. Its parent may not exist yet.
pub fn unique_path(name: &str) -> String {
    format!("/zkr-test/{name}-{}", uuid::Uuid::new_v4().simple())
}

/// Sends `tracing` output to the test's captured output, filtered by `RUST_LOG` (default:
/// warnings). Safe to call from every test.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Waits until `condition` holds, looking every [`POLL_INTERVAL`].
///
/// # Panics
///
/// With `what` in the message if `condition` still fails after `deadline`.
pub async fn eventually<F: FnMut() -> bool>(what: &str, deadline: Duration, mut condition: F) {
    eventually_async(what, deadline, || std::future::ready(condition())).await;
}

/// Waits until the future `condition` returns resolves to `true`, looking every
/// [`POLL_INTERVAL`]. A check that is still running at the deadline is not cut short.
///
/// # Panics
///
/// With `what` in the message if `condition` still fails after `deadline`.
pub async fn eventually_async<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return;
        }
        if started.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A client of `connect_string` with these timeouts, for a test that needs it connected.
///
/// # Panics
///
/// If it cannot connect.
pub async fn connect_with(
    connect_string: &str,
    session_timeout: Duration,
    connection_timeout: Duration,
) -> Client {
    Client::builder(connect_string)
        .session_timeout(session_timeout)
        .connection_timeout(connection_timeout)
        .connect()
        .await
        .expect("connect")
}

/// How long [`eventually_children`] waits.
pub const CHILDREN_DEADLINE: Duration = Duration::from_secs(20);

/// Sorts sequential node names by their 10-digit sequence (the queue's order, whatever their
/// prefixes).
pub fn sort_by_sequence(nodes: &mut [String]) {
    nodes.sort_by(|a, b| a[a.len() - 10..].cmp(&b[b.len() - 10..]));
}

/// The children of `path` as `observer` sees them (none if it does not exist).
pub async fn children_of(observer: &Client, path: &str) -> Vec<String> {
    observer
        .children(path)
        .await
        .expect("list children")
        .unwrap_or_default()
}

/// Waits until `path` has `expected` children as `observer` sees them, at most
/// [`CHILDREN_DEADLINE`].
///
/// # Panics
///
/// With `what` in the message if it does not happen in time.
pub async fn eventually_children(observer: &Client, path: &str, expected: usize, what: &str) {
    eventually_async(what, CHILDREN_DEADLINE, || async {
        children_of(observer, path).await.len() == expected
    })
    .await;
}

/// Skips `states` until `wanted` comes, at most `deadline`; panics, naming `what`, if it does
/// not come in time or the stream ends first.
pub async fn until_connection_state(
    states: &mut zk_recipes::connection::ConnectionStates,
    wanted: zk_recipes::ConnectionState,
    deadline: Duration,
    what: &str,
) {
    let found = async {
        while let Some(state) = states.next().await {
            if state == wanted {
                return;
            }
        }
        panic!("{what}: the state stream ended before {wanted}");
    };
    tokio::time::timeout(deadline, found)
        .await
        .unwrap_or_else(|_| panic!("{what}: no {wanted} in time"));
}

/// The result of the spawned `task`, which must end within `deadline`.
///
/// # Panics
///
/// If it does not end in time (`what` says what was awaited), or it panicked.
pub async fn join_within<T>(task: JoinHandle<T>, deadline: Duration, what: &str) -> T {
    tokio::time::timeout(deadline, task)
        .await
        .unwrap_or_else(|_| panic!("timed out after {deadline:?} waiting for {what}"))
        .expect("the task panicked")
}

/// `'R'` for a read node (shared), `'W'` for a write node (exclusive): the letters the Java
/// read/write lock worker uses.
pub fn mode_letter(mode: LockMode) -> char {
    match mode {
        LockMode::Shared => 'R',
        LockMode::Exclusive => 'W',
    }
}

/// Makes a Curator-style lock node (`_c_<uuid>-lock-<seq>`, ephemeral-sequential) under
/// `parent` with `id` as its data, as a Java acquirer makes it; returns its path.
#[allow(dead_code)]
pub async fn curator_lock_node(client: &Client, parent: &str, id: &str) -> String {
    client
        .create_protected(
            parent,
            "lock-",
            id.as_bytes(),
            zk_recipes::zookeeper_client::CreateMode::EphemeralSequential,
            &[],
        )
        .await
        .expect("a lock node")
        .path
}
