//! Curator's `TestInterProcessMultiMutex` (`locks/`), ported to [`InterProcessMultiLock`]:
//! its own two tests, and the tests it inherits from `TestInterProcessMutexBase`, whose
//! `makeLock(client)` is `new InterProcessMultiLock(client, [/locks/our-lock-1,
//! /locks/our-lock-2])` (here [`InterProcessMultiLock::from_paths`] under a unique base).
//!
//! Curator's multi-lock is reentrant per thread, as its parts are. This crate's
//! [`MultiLockGuard`] has no `reenter()`; a reentrant acquire of the multi-lock is
//! [`LockGuard::reenter`] on every part (`reenter_all` below), which holds every part, as
//! Curator's reentrant acquire does.
//!
//! Curator's two own tests build a part from an anonymous `InterProcessLock` whose `acquire`
//! or `release` throws. This crate's multi-lock takes the crate's own locks only
//! (`MultiLockPart`: mutexes, read/write lock halves, semaphore mutexes), not any
//! `InterProcessLock` (a documented difference, in the README's Curator table), so the ports
//! make a real part fail: a release refused by the lock path's ACL, an acquire on a lock path
//! that is an ephemeral node. Each doc says what was kept.
//!
//! Not ported: none.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use zk_recipes::retry::{ExponentialBackoffRetry, RetryOneTime};
use zk_recipes::testing::{expire_session, Backend, ServerOptions, TestingServer};
use zk_recipes::zookeeper_client::{Acl, AuthId, CreateMode, EventType, Permission};
use zk_recipes::{
    Client, ConnectionState, Error, InterProcessMultiLock, InterProcessMutex, LockGuard,
    MultiLockGuard,
};

use crate::common::{
    children_of, eventually, eventually_async, eventually_children, init_tracing, join_within,
    unique_path, zk_server,
};

/// Every wait of these tests ends by this deadline (Curator's `timing.forWaiting()`).
const DEADLINE: Duration = Duration::from_secs(20);
/// How long a test looks to show that something does NOT happen.
const QUIET: Duration = Duration::from_millis(300);

/// A client as Curator's base tests make them: `ExponentialBackoffRetry(100, 3)`, with
/// `Timing`'s session and connection timeouts.
async fn client(connect_string: &str) -> Client {
    Client::builder(connect_string)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(5))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
        .connect()
        .await
        .expect("connect")
}

/// A client as Curator's own multi-lock tests make them: `RetryOneTime(1)`.
async fn client_retry_once(connect_string: &str, connection_timeout: Duration) -> Client {
    Client::builder(connect_string)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(connection_timeout)
        .retry_policy(RetryOneTime::new(Duration::from_millis(1)))
        .connect()
        .await
        .expect("connect")
}

fn lock_path_1(base: &str) -> String {
    format!("{base}/our-lock-1")
}

fn lock_path_2(base: &str) -> String {
    format!("{base}/our-lock-2")
}

/// Curator's `makeLock(client)`: a multi-lock of two mutexes.
fn make_lock(client: &Client, base: &str) -> InterProcessMultiLock {
    InterProcessMultiLock::from_paths(client, [lock_path_1(base), lock_path_2(base)])
        .expect("multi-lock")
}

/// A reentrant acquire of a held multi-lock: another guard on every part.
fn reenter_all(guard: &MultiLockGuard) -> Vec<LockGuard> {
    guard.parts().iter().map(LockGuard::reenter).collect()
}

async fn release_all(guards: Vec<LockGuard>) {
    for guard in guards {
        guard.release().await.expect("release a reentered part");
    }
}

/// Curator: `TestInterProcessMutexBase.testLocker`, for the multi-lock.
///
/// The guard of `try_acquire` is Curator's `Locker`; dropping it is its close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_locker() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("multi-locker");
    let lock = make_lock(&client, &base);
    {
        let _locker = lock
            .try_acquire(DEADLINE)
            .await
            .expect("try_acquire")
            .expect("both locks within the timeout");
        assert!(lock.is_acquired_in_this_process());
    }
    assert!(!lock.is_acquired_in_this_process());
    eventually_children(&client, &lock_path_1(&base), 0, "part 1 released").await;
    eventually_children(&client, &lock_path_2(&base), 0, "part 2 released").await;
    client.close().await;
}

/// Curator: `TestInterProcessMutexBase.testWaitingProcessKilledServer`, for the multi-lock.
///
/// As the mutex's port: two tasks acquire the multi-lock through one client; the first holder
/// stops the server (its own), waits until the client is no longer connected, restarts it and
/// releases; both must finish. A part's release may report `SessionExpired` (Curator ignores
/// a `SessionExpiredException` there); any other error fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_waiting_process_killed_server() {
    init_tracing();
    let server = Arc::new(TestingServer::start().await.expect("a server of its own"));
    let client = client(&server.connect_string()).await;
    let base = unique_path("multi-killed-server");

    let (down_tx, down_rx) = tokio::sync::watch::channel(false);
    let mut states = client.connection_states();
    tokio::spawn(async move {
        while let Some(state) = states.next().await {
            if matches!(state, ConnectionState::Suspended | ConnectionState::Lost) {
                let _ = down_tx.send(true);
            }
        }
    });

    let is_first = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let lock = make_lock(&client, &base);
        let is_first = is_first.clone();
        let server = server.clone();
        let mut down = down_rx.clone();
        tasks.push(tokio::spawn(async move {
            let guard = lock.acquire().await.expect("acquire");
            if is_first
                .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                server.stop().await.expect("stop the server");
                tokio::time::timeout(DEADLINE, down.wait_for(|down| *down))
                    .await
                    .expect("the client notices the server is gone")
                    .expect("the state watcher is alive");
                server.restart().await.expect("restart the server");
            }
            match guard.release().await {
                Ok(()) => {}
                // Curator ignores a SessionExpiredException here.
                Err(Error::PartsNotReleased { failures })
                    if failures
                        .iter()
                        .all(|failure| matches!(failure.error, Error::SessionExpired)) => {}
                Err(other) => panic!("release failed: {other}"),
            }
        }));
    }
    for task in tasks {
        join_within(task, DEADLINE * 2, "both acquirers to finish").await;
    }
    client.close().await;
}

/// Curator: `TestInterProcessMutexBase.testKilledSession`, for the multi-lock.
///
/// Two multi-locks on the same paths and one client, each acquired by its own task; one gets
/// both locks, the session is expired, and the other must get them on the new session. As in
/// the mutex's port, the holder drops its guard once `lost()` fires (a lost hold keeps the
/// client's other acquires out while it is in use: a documented difference), where Curator's
/// holder sleeps on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_killed_session() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let base = unique_path("multi-killed-session");

    let (granted_tx, mut granted_rx) = mpsc::unbounded_channel::<Vec<u64>>();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let lock = make_lock(&client, &base);
        let granted_tx = granted_tx.clone();
        tasks.push(tokio::spawn(async move {
            let guard = lock.acquire().await.expect("acquire");
            let tokens = guard.parts().iter().map(LockGuard::fencing_token).collect();
            let _ = granted_tx.send(tokens);
            guard.lost().await;
            drop(guard);
        }));
    }
    let first = tokio::time::timeout(DEADLINE, granted_rx.recv())
        .await
        .expect("a first grant")
        .expect("tokens");
    assert!(
        tokio::time::timeout(QUIET, granted_rx.recv())
            .await
            .is_err(),
        "only one task holds the multi-lock before the expiry"
    );
    let info = client
        .session()
        .zookeeper()
        .expect("a session")
        .session()
        .clone();
    expire_session(&server, &info).await.expect("expire");
    let second = tokio::time::timeout(DEADLINE, granted_rx.recv())
        .await
        .expect("the other task gets the multi-lock on the new session")
        .expect("tokens");
    for (before, after) in first.iter().zip(&second) {
        assert!(
            after > before,
            "fencing tokens rise: {first:?} then {second:?}"
        );
    }
    for task in tasks {
        task.abort();
    }
    client.close().await;
}

/// Curator: `TestInterProcessMutexBase.testContainerCleanup`, for the multi-lock.
///
/// A server of its own with a 100 ms container check interval (Curator: 10 ms); 10 tasks each
/// acquire and release the multi-lock once; then the base path, a container parent of both
/// locks, is reaped. Curator sleeps and looks once; the port waits under a deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_container_cleanup() {
    init_tracing();
    let options = ServerOptions::default().container_check_interval(Duration::from_millis(100));
    let server =
        TestingServer::start_with_options(Backend::from_env().await.expect("a backend"), options)
            .await
            .expect("a server of its own");
    let client = client(&server.connect_string()).await;
    let base = unique_path("multi-containers");
    crate::mutex_base::container_cleanup(&client, || make_lock(&client, &base), &base).await;
    client.close().await;
}

/// Curator: `TestInterProcessMutexBase.testWithNamespace`, for the multi-lock.
///
/// A namespaced client (a unique namespace; Curator: `test`) acquires with a timeout and
/// releases; the port also checks, without the namespace, that both lock nodes were made
/// under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_with_namespace() {
    init_tracing();
    let server = zk_server().await;
    let namespace = unique_path("multi-ns").trim_start_matches('/').to_owned();
    let namespaced = Client::builder(&server)
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
        .namespace(namespace.clone())
        .connect()
        .await
        .expect("connect");
    let plain = client(&server).await;
    let lock = make_lock(&namespaced, "/locks");
    let guard = lock
        .try_acquire(Duration::from_secs(10))
        .await
        .expect("try_acquire")
        .expect("the multi-lock");
    for (part, path) in guard.parts().iter().zip(["our-lock-1", "our-lock-2"]) {
        assert_eq!(
            children_of(&plain, &format!("/{namespace}/locks/{path}")).await,
            vec![part.node_name().to_owned()],
            "the lock node is under the namespace"
        );
    }
    guard.release().await.expect("release");
    namespaced.close().await;
    plain.close().await;
}

/// Curator: `TestInterProcessMutexBase.testReentrantSingleLock`, for the multi-lock.
///
/// Ten tasks share one multi-lock; the first holder lets the others past a semaphore and holds
/// until all have passed it; each checks it holds alone. Shrunk: the others hold 20 ms
/// (Curator: 100 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reentrant_single_lock() {
    const THREAD_QTY: usize = 10;
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("multi-single");
    let lock = make_lock(&client, &base);
    let has_lock = Arc::new(AtomicBool::new(false));
    let is_first = Arc::new(AtomicBool::new(true));
    let semaphore = Arc::new(Semaphore::new(1));
    let mut tasks = Vec::new();
    for _ in 0..THREAD_QTY {
        let lock = lock.clone();
        let has_lock = has_lock.clone();
        let is_first = is_first.clone();
        let semaphore = semaphore.clone();
        tasks.push(tokio::spawn(async move {
            semaphore.acquire().await.expect("permit").forget();
            let guard = lock.acquire().await.expect("acquire");
            assert!(
                has_lock
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok(),
                "two holders at once"
            );
            if is_first
                .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                semaphore.add_permits(THREAD_QTY - 1);
                eventually("every other task to pass the semaphore", DEADLINE, || {
                    semaphore.available_permits() == 0
                })
                .await;
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            has_lock.store(false, Ordering::SeqCst);
            guard.release().await.expect("release");
        }));
    }
    for task in tasks {
        join_within(task, DEADLINE, "every task").await;
    }
    assert!(!lock.is_acquired_in_this_process());
    client.close().await;
}

/// Curator's `foo`/`bar`/`snafu` for the multi-lock: one acquire, then two nested reentrant
/// acquires (`reenter_all`). `pause`, if given, runs inside `bar`.
async fn foo(
    lock: &InterProcessMultiLock,
    pause: Option<tokio::sync::oneshot::Sender<()>>,
    answered: Option<tokio::sync::oneshot::Receiver<bool>>,
) {
    let outer = lock
        .try_acquire(Duration::from_secs(10))
        .await
        .expect("try_acquire")
        .expect("the multi-lock");
    assert!(lock.is_acquired_in_this_process());
    // bar
    let bar = reenter_all(&outer);
    assert!(lock.is_acquired_in_this_process());
    if let (Some(in_bar), Some(answered)) = (pause, answered) {
        let _ = in_bar.send(());
        let got = tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .expect("the other task answers")
            .expect("the other task is alive");
        assert!(!got, "the other task got the multi-lock while it was held");
    }
    // snafu
    let snafu: Vec<LockGuard> = bar.iter().map(LockGuard::reenter).collect();
    assert!(lock.is_acquired_in_this_process());
    release_all(snafu).await;
    assert!(lock.is_acquired_in_this_process());
    release_all(bar).await;
    assert!(lock.is_acquired_in_this_process());
    outer.release().await.expect("release");
}

/// Curator: `TestInterProcessMutexBase.testReentrant2Threads`, for the multi-lock.
///
/// While the main task holds the multi-lock (and has re-entered it), another task's acquire
/// must fail (Curator: 10 s; here 500 ms, awaited by the main task before it goes on).
/// Reentrant acquires are `reenter()` on every part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reentrant_2_threads() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("multi-reentrant-2");
    let lock = make_lock(&client, &base);
    let (in_bar_tx, in_bar_rx) = tokio::sync::oneshot::channel::<()>();
    let (answered_tx, answered_rx) = tokio::sync::oneshot::channel::<bool>();
    let other = {
        let lock = lock.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(10), in_bar_rx)
                .await
                .expect("the main task reaches bar")
                .expect("the main task is alive");
            let got = lock
                .try_acquire(Duration::from_millis(500))
                .await
                .expect("try_acquire");
            let _ = answered_tx.send(got.is_some());
        })
    };
    foo(&lock, Some(in_bar_tx), Some(answered_rx)).await;
    assert!(!lock.is_acquired_in_this_process());
    join_within(other, DEADLINE, "the other task").await;
    client.close().await;
}

/// Curator: `TestInterProcessMutexBase.testReentrant`, for the multi-lock.
///
/// Three nested acquires, the inner two by `reenter()` on every part: the multi-lock is held
/// until the outermost release, and not after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reentrant() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("multi-reentrant");
    let lock = make_lock(&client, &base);
    foo(&lock, None, None).await;
    assert!(!lock.is_acquired_in_this_process());
    assert!(children_of(&client, &lock_path_1(&base)).await.is_empty());
    assert!(children_of(&client, &lock_path_2(&base)).await.is_empty());
    client.close().await;
}

/// Curator: `TestInterProcessMutexBase.test2Clients`, for the multi-lock.
///
/// Two clients, a multi-lock each on the same paths, each acquired by its own task: exactly one
/// holds, still exactly one a moment later (Curator: 1 s; here 300 ms), and the other gets it
/// once the first releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_2_clients() {
    init_tracing();
    let server = zk_server().await;
    let client1 = client(&server).await;
    let client2 = client(&server).await;
    let base = unique_path("multi-2-clients");
    crate::mutex_base::two_clients(make_lock(&client1, &base), make_lock(&client2, &base)).await;
    client1.close().await;
    client2.close().await;
}

/// Curator: `TestInterProcessMultiMutex.testSomeReleasesFail`.
///
/// Curator: a multi-lock of a good mutex and a "bad lock" (which acquires a second good mutex,
/// but whose `release` throws): the multi-lock's release throws, the good mutex is released,
/// and the second mutex is still held in this process.
///
/// Adapted: the bad part is a real mutex whose release fails: its lock path exists already,
/// with an ACL that lets anyone create and read children but not delete them, so its lock
/// node is made, and its delete fails with `NoAuth`. (A connection cut does not make a
/// release fail: the delete waits for the connection to come back, or for the session to be
/// lost, which takes the node with it.) The multi-lock's release reports that part, and only
/// it (`Error::PartsNotReleased`), and the good part's node is deleted. Unlike Curator, the
/// failed part is no longer held in this process: this crate's release gives back every part,
/// and hands a node whose delete failed to a background delete (CURATOR-678, a documented
/// difference), which gives up on `NoAuth`; the node then stays until its session ends, which
/// the port checks by closing the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_some_releases_fail() {
    init_tracing();
    let server = zk_server().await;
    let client = client_retry_once(&server, Duration::from_secs(5)).await;
    let observer = client_retry_once(&server, Duration::from_secs(5)).await;
    let base = unique_path("multi-releases-fail");
    observer.ensure_path(&base, false).await.expect("base");
    let no_delete = vec![Acl::new(
        Permission::CREATE | Permission::READ | Permission::ADMIN,
        AuthId::anyone(),
    )];
    observer
        .create(&lock_path_2(&base), b"", CreateMode::Persistent, &no_delete)
        .await
        .expect("the bad part's lock path");
    let good_lock = InterProcessMutex::new(&client, &lock_path_1(&base)).expect("mutex");
    let other_good_lock = InterProcessMutex::new(&client, &lock_path_2(&base)).expect("mutex");
    let lock = InterProcessMultiLock::new([good_lock.clone(), other_good_lock.clone()])
        .expect("multi-lock");

    let guard = lock.acquire().await.expect("acquire");
    let bad_node = guard.parts()[1].node_path().to_owned();
    let result = tokio::time::timeout(DEADLINE, guard.release())
        .await
        .expect("the release ends");
    match result {
        Err(Error::PartsNotReleased { failures }) => {
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert_eq!(failures[0].path, lock_path_2(&base));
            assert!(
                matches!(failures[0].error, Error::NoAuth),
                "{:?}",
                failures[0].error
            );
        }
        other => panic!("expected PartsNotReleased for the bad part, got {other:?}"),
    }
    assert!(!good_lock.is_acquired_in_this_process());
    assert!(children_of(&observer, &lock_path_1(&base)).await.is_empty());
    // The documented difference: the failed part is given back too, and its node stays.
    assert!(!other_good_lock.is_acquired_in_this_process());
    assert!(observer.exists(&bad_node).await.expect("exists").is_some());
    client.close().await;
    eventually_async(
        "the failed part's node gone with its session",
        DEADLINE,
        || async { observer.exists(&bad_node).await.expect("exists").is_none() },
    )
    .await;
    observer.close().await;
}

/// Curator: `TestInterProcessMultiMutex.testSomeLocksFailToLock`.
///
/// Curator: a multi-lock of a good mutex and a "bad lock" whose `acquire` throws (and which
/// notes whether the good mutex was held at that moment): the multi-lock's acquire throws, the
/// good mutex was held when the bad one was tried, and is released afterwards.
///
/// Adapted: the bad part is a real mutex whose lock path is an ephemeral node, so its acquire
/// fails (`NoChildrenForEphemerals`, as `acquire` documents). Its path sorts after the good
/// one's, so it is tried second (this crate acquires parts in path order). A child watch on
/// the good lock's path shows the good lock's node was made before the failure, and the good
/// part is given back: not held in this process, and its node deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_some_locks_fail_to_lock() {
    init_tracing();
    let client = client_retry_once(&zk_server().await, Duration::from_secs(5)).await;
    let base = unique_path("multi-fail-to-lock");
    let good_path = format!("{base}/a-good");
    let bad_path = format!("{base}/b-bad");
    client
        .ensure_path(&good_path, false)
        .await
        .expect("good path");
    client
        .create(&bad_path, b"", CreateMode::Ephemeral, &[])
        .await
        .expect("an ephemeral bad path");
    let zk = client.zookeeper().expect("a session");
    let (children, _, watcher) = zk
        .get_and_watch_children(&good_path)
        .await
        .expect("watch the good path");
    assert!(children.is_empty());

    let good_lock = InterProcessMutex::new(&client, &good_path).expect("mutex");
    let bad_lock = InterProcessMutex::new(&client, &bad_path).expect("mutex");
    let lock = InterProcessMultiLock::new([bad_lock, good_lock.clone()]).expect("multi-lock");
    match tokio::time::timeout(DEADLINE, lock.acquire())
        .await
        .expect("the acquire ends")
    {
        Err(Error::ZooKeeper(zk_recipes::zookeeper_client::Error::NoChildrenForEphemerals)) => {}
        other => panic!("expected the bad part's error, got {other:?}"),
    }
    let event = tokio::time::timeout(DEADLINE, watcher.changed())
        .await
        .expect("the good lock's node was made");
    assert_eq!(event.event_type, EventType::NodeChildrenChanged);
    assert!(!good_lock.is_acquired_in_this_process());
    eventually_children(&client, &good_path, 0, "the good part released").await;
    drop(zk);
    client.close().await;
}
