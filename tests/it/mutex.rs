//! `InterProcessMutex` against real ZooKeeper: mutual exclusion, reentrancy, timeouts,
//! cancellation, lost locks (expiry, cut and blackholed connections, deleted nodes), a server
//! restart, guarded writes, revocation, foreign children, and bad input.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    children_of as children, connect_with, eventually, eventually_async, eventually_children,
    init_tracing, unique_path, until_connection_state, zk_server,
};
use zk_recipes::retry::RetryNTimes;
use zk_recipes::testing::{expire_session, FaultProxy, TestingServer};
use zk_recipes::zookeeper_client::{self, Acls, CreateMode};
use zk_recipes::{
    Client, ConnectionState, Error, InterProcessMutex, InterProcessReadWriteLock, LockGuard,
    Revoker, REVOKE_MESSAGE,
};

const DEADLINE: Duration = Duration::from_secs(20);

async fn connect(connect_string: &str, session_timeout: Duration) -> Client {
    connect_with(connect_string, session_timeout, Duration::from_secs(2)).await
}

/// `n` increments of `counter` under `mutex`, each an unguarded read-modify-write through
/// `client`. Pushes the fencing tokens, in grant order, to `tokens`.
async fn count(
    client: Client,
    mutex: InterProcessMutex,
    counter: String,
    n: usize,
    tokens: Arc<Mutex<Vec<u64>>>,
    inside: Arc<AtomicBool>,
) {
    for _ in 0..n {
        let guard = mutex.acquire().await.expect("acquire");
        assert!(
            !inside.swap(true, Ordering::SeqCst),
            "two holders in this process at once"
        );
        tokens.lock().unwrap().push(guard.fencing_token());
        let (data, _) = client
            .get_data(&counter)
            .await
            .unwrap()
            .expect("counter exists");
        let value: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
        client
            .set_data(&counter, (value + 1).to_string().as_bytes(), None)
            .await
            .unwrap();
        inside.store(false, Ordering::SeqCst);
        guard.release().await.expect("release");
    }
}

async fn counter_value(client: &Client, counter: &str) -> u64 {
    let (data, _) = client.get_data(counter).await.unwrap().unwrap();
    std::str::from_utf8(&data).unwrap().parse().unwrap()
}

fn assert_rising(tokens: &[u64]) {
    for pair in tokens.windows(2) {
        assert!(pair[0] < pair[1], "fencing tokens not rising: {pair:?}");
    }
}

/// 5 sessions × 200 acquisitions, each an unguarded read-modify-write of one counter: the
/// final count is exact, and fencing tokens rise with every grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sessions_count_exactly() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("mutex-count");
    let lock = format!("{base}/lock");
    let counter = format!("{base}/counter");
    let observer = connect(&server, Duration::from_secs(4)).await;
    observer
        .create(&counter, b"0", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let inside = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let client = connect(&server, Duration::from_secs(4)).await;
        let mutex = InterProcessMutex::new(&client, &lock)
            .unwrap()
            .with_id(format!("session-{i}"));
        tasks.push(tokio::spawn(count(
            client,
            mutex,
            counter.clone(),
            200,
            tokens.clone(),
            inside.clone(),
        )));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(counter_value(&observer, &counter).await, 1000);
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1000);
    assert_rising(&tokens);
    eventually_children(&observer, &lock, 0, "no lock node left").await;
    tracing::info!(?elapsed, "1000 acquisitions over 5 sessions");
    assert!(elapsed < Duration::from_secs(60), "too slow: {elapsed:?}");
}

/// Tasks sharing one handle on one client queue like separate participants: exact count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_sharing_one_handle_count_exactly() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("mutex-tasks");
    let lock = format!("{base}/lock");
    let counter = format!("{base}/counter");
    let client = connect(&server, Duration::from_secs(4)).await;
    client
        .create(&counter, b"0", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let mutex = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("shared");
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let inside = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(count(
                client.clone(),
                mutex.clone(),
                counter.clone(),
                100,
                tokens.clone(),
                inside.clone(),
            ))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(counter_value(&client, &counter).await, 500);
    assert_rising(&tokens.lock().unwrap());
    eventually_children(&client, &lock, 0, "no lock node left").await;
}

/// A holder reenters explicitly through its guard, at once and with no new node; every other
/// acquire, from another task or from the same one, is a separate holder that waits until the
/// last guard of the hold is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_reentrancy_and_separate_holders() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-reentrant"));
    let client = connect(&server, Duration::from_secs(4)).await;
    let mutex = InterProcessMutex::new(&client, &lock).unwrap();

    let outer = mutex.acquire().await.unwrap();
    let inner = outer.reenter();
    let third = inner.reenter();
    assert_eq!(outer.fencing_token(), inner.fencing_token());
    assert_eq!(outer.node_path(), third.node_path());
    assert_eq!(
        children(&client, &lock).await.len(),
        1,
        "reentering made a node"
    );
    assert!(mutex.is_acquired_in_this_process());

    // Another acquire through a clone, even in this very task, is a separate holder.
    let clone = mutex.clone();
    assert!(
        clone.try_acquire(Duration::ZERO).await.unwrap().is_none(),
        "a second acquire of the same task got a held lock"
    );
    // And so is one in another task.
    let other = mutex.clone();
    let (tried_tx, tried_rx) = tokio::sync::oneshot::channel();
    let probe = tokio::spawn(async move {
        let early = other.try_acquire(Duration::from_millis(300)).await.unwrap();
        let _ = tried_tx.send(early.is_some());
        other.acquire().await.unwrap()
    });
    assert!(!tried_rx.await.unwrap(), "another task got a held lock");
    eventually_async("the other task to queue", DEADLINE, || async {
        mutex.participants().await.unwrap().len() == 2
    })
    .await;

    // Guards go back in any order; the node stays while one is left.
    third.release().await.unwrap();
    drop(outer);
    let participants = mutex.participants().await.unwrap();
    assert_eq!(participants.len(), 2);
    assert!(participants[0].is_leader);
    assert_eq!(
        format!("{lock}/{}", participants[0].node),
        inner.node_path()
    );
    assert!(!probe.is_finished());
    assert!(!inner.is_lost());

    // The last guard, released from another task, deletes the node.
    let token = inner.fencing_token();
    tokio::spawn(async move { inner.release().await })
        .await
        .unwrap()
        .unwrap();
    let granted = tokio::time::timeout(DEADLINE, probe)
        .await
        .expect("the other task's grant")
        .unwrap();
    assert!(granted.fencing_token() > token);
    // A reentered guard keeps the hold when the first one goes.
    let nested = granted.reenter();
    drop(granted);
    assert!(mutex.is_acquired_in_this_process());
    assert!(!nested.is_lost());
    nested.release().await.unwrap();
    assert!(!mutex.is_acquired_in_this_process());
    eventually_children(&client, &lock, 0, "the last guard's node to go").await;
}

/// try_acquire times out on a held lock, tries once with ZERO, succeeds on a free lock, and
/// leaves no node behind when it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_acquire_times_out_and_tries_once() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-try"));
    let a = connect(&server, Duration::from_secs(4)).await;
    let b = connect(&server, Duration::from_secs(4)).await;
    let ma = InterProcessMutex::new(&a, &lock).unwrap().with_id("a");
    let mb = InterProcessMutex::new(&b, &lock).unwrap().with_id("b");

    // Free: ZERO succeeds at once.
    let guard = mb
        .try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .expect("a free lock");
    guard.release().await.unwrap();

    let held = ma.acquire().await.unwrap();
    let started = Instant::now();
    assert!(mb
        .try_acquire(Duration::from_millis(500))
        .await
        .unwrap()
        .is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "gave up after {waited:?}");
    let started = Instant::now();
    assert!(mb.try_acquire(Duration::ZERO).await.unwrap().is_none());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ZERO waited {:?}",
        started.elapsed()
    );
    eventually_children(&a, &lock, 1, "failed attempts to leave no node").await;

    // A waiter with a timeout gets the lock when it is released in time.
    let waiter = tokio::spawn(async move {
        let guard = mb
            .try_acquire(DEADLINE)
            .await
            .unwrap()
            .expect("granted before the timeout");
        let path = guard.mutex_path().to_owned();
        guard.release().await.unwrap();
        path
    });
    eventually_async("b to queue", DEADLINE, || async {
        children(&a, &lock).await.len() == 2
    })
    .await;
    held.release().await.unwrap();
    assert_eq!(waiter.await.unwrap(), lock);
    assert!(
        children(&a, &lock).await.is_empty(),
        "release returns after the delete"
    );
}

/// Runs 200 acquires in separate tasks, each cancelled after a random delay, and returns the
/// largest number of lock nodes seen meanwhile by a sampler on `observer`.
async fn cancel_many(mutexes: &[InterProcessMutex], observer: &Client, lock: &str) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let observer = observer.clone();
        let lock = lock.to_owned();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !stop.load(Ordering::SeqCst) {
                max = max.max(children(&observer, &lock).await.len());
            }
            max
        })
    };
    let granted = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let mutex = mutexes[i % mutexes.len()].clone();
            let granted = granted.clone();
            tokio::spawn(async move {
                let delay = Duration::from_micros(fastrand::u64(0..60_000));
                if let Ok(guard) = tokio::time::timeout(delay, mutex.acquire()).await {
                    granted.fetch_add(1, Ordering::SeqCst);
                    drop(guard.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let max = sampler.await.unwrap();
    tracing::info!(
        max,
        granted = granted.load(Ordering::SeqCst),
        "cancelled acquires"
    );
    max
}

/// 200 acquires cancelled at random delays while someone else holds the lock (so they really
/// wait in the queue) leave no node behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_leave_no_node_while_held() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-cancel-held"));
    let holder = connect(&server, Duration::from_secs(4)).await;
    let observer = connect(&server, Duration::from_secs(4)).await;
    let guard = InterProcessMutex::new(&holder, &lock)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let mut clients = Vec::new();
    let mut mutexes = Vec::new();
    for _ in 0..2 {
        let client = connect(&server, Duration::from_secs(4)).await;
        mutexes.push(InterProcessMutex::new(&client, &lock).unwrap());
        clients.push(client);
    }
    let max = cancel_many(&mutexes, &observer, &lock).await;
    assert!(max >= 2, "no attempt was seen waiting (max {max} nodes)");
    eventually_children(&observer, &lock, 1, "only the holder's node to remain").await;
    assert!(!guard.is_lost());
    guard.release().await.unwrap();
    // Nothing blocks the lock now.
    let fresh = connect(&server, Duration::from_secs(4)).await;
    let m = InterProcessMutex::new(&fresh, &lock).unwrap();
    m.try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .expect("a free lock")
        .release()
        .await
        .unwrap();
}

/// The same with the lock free: some attempts win (and their guards are dropped), the rest
/// are cancelled; no node remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_leave_no_node_when_free() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-cancel-free"));
    let observer = connect(&server, Duration::from_secs(4)).await;
    let mut clients = Vec::new();
    let mut mutexes = Vec::new();
    for _ in 0..2 {
        let client = connect(&server, Duration::from_secs(4)).await;
        mutexes.push(InterProcessMutex::new(&client, &lock).unwrap());
        clients.push(client);
    }
    cancel_many(&mutexes, &observer, &lock).await;
    eventually_children(&observer, &lock, 0, "no node to remain").await;
    let m = InterProcessMutex::new(&observer, &lock).unwrap();
    m.try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .expect("a free lock")
        .release()
        .await
        .unwrap();
}

/// The holder's session is expired on the server: its guard reports the loss, its guarded
/// writes fail, and a waiter gets the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_holder_loses_and_another_acquires() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("mutex-expiry");
    let lock = format!("{base}/lock");
    let data = format!("{base}/data");
    let a = connect(&server, Duration::from_secs(4)).await;
    let b = connect(&server, Duration::from_secs(4)).await;
    a.create(&data, b"before", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let held = InterProcessMutex::new(&a, &lock)
        .unwrap()
        .with_id("a")
        .acquire()
        .await
        .unwrap();
    held.guarded_set_data(&data, b"held", None).await.unwrap();
    let mb = InterProcessMutex::new(&b, &lock).unwrap().with_id("b");
    let waiter = {
        let mb = mb.clone();
        tokio::spawn(async move { mb.acquire().await.unwrap() })
    };
    eventually_async("b to queue", DEADLINE, || async {
        mb.participants().await.unwrap().len() == 2
    })
    .await;

    let info = a.session().zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    tokio::time::timeout(DEADLINE, held.lost())
        .await
        .expect("lost() after expiry");
    assert!(held.is_lost());
    let granted = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("b's grant")
        .unwrap();
    assert!(granted.fencing_token() > held.fencing_token());
    // Until a's client learns of the expiry (at its reconnect), a guarded write may also end
    // in ConnectionLoss; once it has, the answer is LockLost, and nothing is written either way.
    eventually(
        "a's client to declare its old session lost",
        DEADLINE,
        || a.session().generation() >= 1,
    )
    .await;
    let stale = held.guarded_set_data(&data, b"stale", None).await;
    assert!(matches!(stale, Err(Error::LockLost)), "{stale:?}");
    let (value, _) = b.get_data(&data).await.unwrap().unwrap();
    assert_eq!(value, b"held");
    granted.guarded_set_data(&data, b"b", None).await.unwrap();
    // Releasing a lost hold is fine: its node went with the session.
    held.release().await.unwrap();
    // Acquired in the waiter task: releasing here is refused, dropping releases.
    let node = granted.node_path().to_owned();
    drop(granted);
    eventually_async("b's node to go", DEADLINE, || async {
        b.exists(&node).await.unwrap().is_none()
    })
    .await;
}

/// The holder's connection is cut: lost() fires at once, well before the session timeout.
/// After the network is back on the same session the node still exists: guarded writes
/// commit again, though the (conservative) lost signal stays fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_holder_reports_lost_at_once() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("mutex-cut");
    let lock = format!("{base}/lock");
    let data = format!("{base}/data");
    let proxy = FaultProxy::start(&server).await.unwrap();
    let proxied = connect(&proxy.connect_string(), Duration::from_secs(10)).await;
    let observer = connect(&server, Duration::from_secs(4)).await;
    observer
        .create(&data, b"0", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let guard = InterProcessMutex::new(&proxied, &lock)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let session = proxied.session().id();

    let cut_at = Instant::now();
    proxy.cut();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("lost() within 3 s of the cut (session timeout 10 s)");
    tracing::info!(after = ?cut_at.elapsed(), "lost after the cut");
    assert!(guard.is_lost());

    proxy.restore();
    eventually("a reconnect on the same session", DEADLINE, || {
        proxied.state().is_connected() && proxied.session().id() == session
    })
    .await;
    guard
        .guarded_set_data(&data, b"1", None)
        .await
        .expect("the node survived the cut");
    assert!(guard.is_lost(), "the lost signal stays fired");
    guard.release().await.unwrap();
    eventually_children(&observer, &lock, 0, "the node to be released").await;
}

/// The holder's connection is blackholed: its lost() fires before any other participant
/// acquires the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_holder_reports_lost_before_anyone_acquires() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-blackhole"));
    let proxy = FaultProxy::start(&server).await.unwrap();
    let proxied = connect(&proxy.connect_string(), Duration::from_secs(4)).await;
    let other = connect(&server, Duration::from_secs(4)).await;
    let guard = InterProcessMutex::new(&proxied, &lock)
        .unwrap()
        .with_id("holder")
        .acquire()
        .await
        .unwrap();
    let mb = InterProcessMutex::new(&other, &lock)
        .unwrap()
        .with_id("waiter");
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiter = {
        let mb = mb.clone();
        let order = order.clone();
        tokio::spawn(async move {
            let guard = mb.acquire().await.unwrap();
            order.lock().unwrap().push(("acquired", Instant::now()));
            guard
        })
    };
    eventually_async("the waiter to queue", DEADLINE, || async {
        mb.participants().await.unwrap().len() == 2
    })
    .await;
    let lost = {
        let order = order.clone();
        let lost = guard.lost();
        tokio::spawn(async move {
            lost.await;
            order.lock().unwrap().push(("lost", Instant::now()));
        })
    };

    proxy.blackhole();
    tokio::time::timeout(DEADLINE, lost)
        .await
        .expect("lost() after the blackhole")
        .unwrap();
    let granted = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the waiter's grant")
        .unwrap();
    let order = order.lock().unwrap().clone();
    let names: Vec<_> = order.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["lost", "acquired"], "{order:?}");
    tracing::info!(margin = ?order[1].1 - order[0].1, "lost before the other acquired");
    proxy.restore();
    drop(granted);
    drop(guard);
    eventually_children(&other, &lock, 0, "both nodes to go").await;
}

/// A waiter still gets the lock after the server restarts under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_gets_the_lock_after_a_server_restart() {
    init_tracing();
    let server = TestingServer::start().await.expect("a testing server");
    let cs = server.connect_string();
    let lock = format!("{}/lock", unique_path("mutex-restart"));
    let a = connect(&cs, Duration::from_secs(6)).await;
    let b = connect(&cs, Duration::from_secs(6)).await;
    let held = InterProcessMutex::new(&a, &lock)
        .unwrap()
        .with_id("a")
        .acquire()
        .await
        .unwrap();
    let mb = InterProcessMutex::new(&b, &lock).unwrap().with_id("b");
    let waiter = {
        let mb = mb.clone();
        tokio::spawn(async move { mb.acquire().await.unwrap() })
    };
    eventually_async("b to queue", DEADLINE, || async {
        mb.participants().await.unwrap().len() == 2
    })
    .await;

    server.restart().await.expect("restart");
    tokio::time::timeout(DEADLINE, held.lost())
        .await
        .expect("the holder to see the outage");
    assert!(
        !waiter.is_finished(),
        "granted while the holder's node may exist"
    );
    // Released right after the restart, perhaps before the client is back: a failed delete
    // keeps going in the background.
    if let Err(e) = held.release().await {
        assert!(e.is_retryable(), "unexpected release error {e}");
    }
    let granted = tokio::time::timeout(Duration::from_secs(40), waiter)
        .await
        .expect("the waiter's grant after the restart")
        .unwrap();
    let participants = mb.participants().await.unwrap();
    assert_eq!(participants.len(), 1, "{participants:?}");
    assert_eq!(participants[0].id, "b");
    drop(granted);
    eventually_children(&b, &lock, 0, "b's node to go").await;
}

/// Guarded writes commit while the lock node exists, and fail with LockLost (writing
/// nothing) once another client deleted it; the deletion also fires lost().
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_writes_fail_once_the_node_is_deleted() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("mutex-guarded");
    let lock = format!("{base}/lock");
    let data = format!("{base}/data");
    let client = connect(&server, Duration::from_secs(4)).await;
    let admin = connect(&server, Duration::from_secs(4)).await;
    client
        .create(&data, b"0", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let guard = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .acquire()
        .await
        .unwrap();

    let stat = guard.guarded_set_data(&data, b"1", None).await.unwrap();
    assert!(matches!(
        guard
            .guarded_set_data(&data, b"x", Some(stat.version + 5))
            .await,
        Err(Error::ZooKeeper(zookeeper_client::Error::BadVersion))
    ));
    let created = guard
        .guarded_create(
            &format!("{data}/child-"),
            b"c",
            CreateMode::PersistentSequential,
        )
        .await
        .unwrap();
    assert!(created.starts_with(&format!("{data}/child-")), "{created}");
    guard.guarded_delete(&created, None).await.unwrap();
    let results = guard
        .guarded(|w| {
            w.add_set_data(&data, b"2", None)?;
            w.add_create(
                &format!("{data}/marker"),
                b"",
                &CreateMode::Persistent.with_acls(Acls::anyone_all()),
            )
        })
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert!(matches!(
        guard.guarded_set_data("bad path", b"", None).await,
        Err(Error::InvalidPath { .. })
    ));

    assert!(admin.delete(guard.node_path(), None).await.unwrap());
    tokio::time::timeout(DEADLINE, guard.lost())
        .await
        .expect("lost() after the node's deletion");
    assert!(guard.is_lost());
    assert!(matches!(
        guard.guarded_set_data(&data, b"3", None).await,
        Err(Error::LockLost)
    ));
    assert!(matches!(
        guard.guarded_delete(&format!("{data}/marker"), None).await,
        Err(Error::LockLost)
    ));
    assert!(matches!(
        guard
            .guarded_create(&format!("{data}/late"), b"", CreateMode::Persistent)
            .await,
        Err(Error::LockLost)
    ));
    let (value, _) = admin.get_data(&data).await.unwrap().unwrap();
    assert_eq!(value, b"2");
    assert!(admin
        .exists(&format!("{data}/marker"))
        .await
        .unwrap()
        .is_some());
    assert!(admin
        .exists(&format!("{data}/late"))
        .await
        .unwrap()
        .is_none());
    guard.release().await.unwrap();
}

/// Children that are not `…lock-<digits>` are ignored: they neither block nor show up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_children_do_not_block() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-foreign"));
    let client = connect(&server, Duration::from_secs(4)).await;
    client.ensure_path(&lock, false).await.unwrap();
    for name in ["foo", "lock-abc", "_c_x-lease-0000000001", "aaa-lock-"] {
        client
            .create(&format!("{lock}/{name}"), b"", CreateMode::Persistent, &[])
            .await
            .unwrap();
    }
    let mutex = InterProcessMutex::new(&client, &lock).unwrap();
    let guard = mutex
        .try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .expect("foreign children blocked the lock");
    let participants = mutex.participants().await.unwrap();
    assert_eq!(participants.len(), 1, "{participants:?}");
    assert_eq!(
        format!("{lock}/{}", participants[0].node),
        guard.node_path()
    );
    // The default id names the host and the process.
    assert!(
        participants[0]
            .id
            .ends_with(&format!("/{}", std::process::id())),
        "{}",
        participants[0].id
    );
    assert!(guard.node_name().starts_with("_c_") && guard.node_name().contains("-lock-"));
    guard.release().await.unwrap();
    assert_eq!(children(&client, &lock).await.len(), 4);
}

/// Bad input and misuse give typed errors, and leak no node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_misuse_are_typed_errors() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("mutex-bad");
    let client = connect(&server, Duration::from_secs(4)).await;

    for path in [
        "",
        "relative",
        "/",
        "/a/",
        "/a//b",
        "/zookeeper/x",
        "/a/./b",
    ] {
        assert!(
            matches!(
                InterProcessMutex::new(&client, path),
                Err(Error::InvalidPath { .. })
            ),
            "{path:?} was accepted"
        );
    }

    // The lock path is an ephemeral node: it cannot have children.
    let ephemeral = format!("{base}-ephemeral");
    client
        .create(&ephemeral, b"", CreateMode::Ephemeral, &[])
        .await
        .unwrap();
    let m = InterProcessMutex::new(&client, &ephemeral).unwrap();
    assert!(matches!(
        m.acquire().await,
        Err(Error::ZooKeeper(
            zookeeper_client::Error::NoChildrenForEphemerals
        ))
    ));
    assert!(matches!(
        m.try_acquire(Duration::from_secs(1)).await,
        Err(Error::ZooKeeper(
            zookeeper_client::Error::NoChildrenForEphemerals
        ))
    ));

    // A lock parent whose ACL gives us nothing.
    let owner = zookeeper_client::Client::connector()
        .with_auth("digest", b"owner:secret")
        .connect(&server)
        .await
        .unwrap();
    client.ensure_path(&base, false).await.unwrap();
    let guarded = format!("{base}/guarded");
    owner
        .create(
            &guarded,
            b"",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();
    let m = InterProcessMutex::new(&client, &format!("{guarded}/lock")).unwrap();
    assert!(matches!(m.acquire().await, Err(Error::NoAuth)));
    let m = InterProcessMutex::new(&client, &guarded).unwrap();
    assert!(matches!(m.acquire().await, Err(Error::NoAuth)));
    assert!(matches!(
        m.try_acquire(Duration::ZERO).await,
        Err(Error::NoAuth)
    ));
    assert!(
        owner.list_children(&guarded).await.unwrap().is_empty(),
        "a node leaked under the ACL'd parent"
    );

    // An oversized id.
    let lock = format!("{base}/lock");
    let m = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("x".repeat(2 << 20));
    assert!(matches!(m.acquire().await, Err(Error::InvalidArgument(_))));

    // A guard dropped in another task releases in the background.
    let m = InterProcessMutex::new(&client, &lock).unwrap();
    let guard = m.acquire().await.unwrap();
    tokio::spawn(async move { drop(guard) }).await.unwrap();
    assert!(!m.is_acquired_in_this_process());
    eventually_children(&client, &lock, 0, "the dropped guard's node to go").await;

    // Nothing leaked anywhere under the test's paths.
    assert!(children(&client, &format!("{base}/lock")).await.is_empty());
    assert!(children(&client, &ephemeral).await.is_empty());
}

/// A dropped guard's delete goes out as the guard drops, ahead of the next request of its
/// client, though the drop does not wait for its answer: that request finds the node gone.
/// On this test's one-thread runtime, a delete sent only from a background task would come
/// after the listing below, which runs first.
#[tokio::test]
async fn a_dropped_guards_delete_precedes_the_next_request_of_its_client() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("mutex-drop-order");
    let client = connect(&server, Duration::from_secs(4)).await;
    let zk = client.zookeeper().unwrap();
    let read_write = InterProcessReadWriteLock::new(&client, &format!("{base}/rw")).unwrap();
    let locks = [
        InterProcessMutex::new(&client, &format!("{base}/mutex")).unwrap(),
        read_write.read_lock().clone(),
        read_write.write_lock().clone(),
    ];
    for lock in locks {
        for round in 0..3 {
            let guard = lock.acquire().await.unwrap();
            drop(guard);
            let left = zk.list_children(lock.path()).await.unwrap();
            assert!(
                left.is_empty(),
                "round {round}: {left:?} still under {} after the drop",
                lock.path()
            );
        }
    }
}

/// Revocation: a revoker writes `__REVOKE__` to the holder's node; the holder's listener hears
/// it (with the hold's fencing token) and releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_holder() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-revoke"));
    let holder = connect(&server, Duration::from_secs(4)).await;
    let revoker = connect(&server, Duration::from_secs(4)).await;
    let mutex = InterProcessMutex::new(&holder, &lock)
        .unwrap()
        .with_id("holder");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    mutex.make_revocable(move |request: &zk_recipes::RevocationRequest| {
        let _ = tx.send((
            request.node_path().to_owned(),
            request.fencing_token(),
            request.mutex().id().to_owned(),
        ));
    });
    let guard: LockGuard = mutex.acquire().await.unwrap();
    let node = guard.node_path().to_owned();

    Revoker::attempt_revoke(&revoker, &node).await.unwrap();
    let (path, token, id) = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the revocation request")
        .unwrap();
    assert_eq!(path, node);
    assert_eq!(token, guard.fencing_token());
    assert_eq!(id, "holder");
    let (data, _) = revoker.get_data(&node).await.unwrap().unwrap();
    assert_eq!(data, REVOKE_MESSAGE);
    // Revocation asks; it does not take the lock away.
    assert!(!guard.is_lost());
    guard.release().await.unwrap();
    // Revoking a node that is gone is not an error.
    Revoker::attempt_revoke(&revoker, &node).await.unwrap();
}

/// `LockGuard::verify` asks the server: true while the node is the hold's, false at once once
/// someone deleted it (before `lost()` need have fired), false while cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_asks_the_server() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-verify"));
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = connect(&proxy.connect_string(), Duration::from_secs(8)).await;
    let observer = connect(&server, Duration::from_secs(4)).await;
    let mutex = InterProcessMutex::new(&client, &lock).unwrap();
    let guard = mutex.acquire().await.unwrap();
    assert!(guard.verify().await);
    let nested = guard.reenter();
    assert!(nested.verify().await, "a reentered guard is the same hold");
    nested.release().await.unwrap();
    proxy.cut();
    eventually("the client to see the cut", DEADLINE, || {
        client.state() == zk_recipes::ConnectionState::Suspended
    })
    .await;
    assert!(!guard.verify().await, "verified while cut off");
    proxy.restore();
    eventually_async("verified again on the same session", DEADLINE, || async {
        guard.verify().await
    })
    .await;
    observer.delete(guard.node_path(), None).await.unwrap();
    assert!(
        !guard.verify().await,
        "verified a node deleted before the check"
    );
    guard.release().await.unwrap();
}

/// A revocation request made while an acquire still waits reaches the listener then, as in
/// Curator, and only once: it is not delivered again when the lock is granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_while_waiting_is_delivered_while_waiting_and_once() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-revoke-waiting"));
    let holder = connect(&server, Duration::from_secs(4)).await;
    let waiting = connect(&server, Duration::from_secs(4)).await;
    let revoker = connect(&server, Duration::from_secs(4)).await;
    let held = InterProcessMutex::new(&holder, &lock)
        .unwrap()
        .with_id("holder")
        .acquire()
        .await
        .unwrap();
    let mutex = InterProcessMutex::new(&waiting, &lock)
        .unwrap()
        .with_id("waiter");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    mutex.make_revocable(move |request: &zk_recipes::RevocationRequest| {
        let _ = tx.send((
            request.node_path().to_owned(),
            request.fencing_token(),
            Instant::now(),
        ));
    });
    let waiter = tokio::spawn({
        let mutex = mutex.clone();
        async move { mutex.acquire().await.unwrap() }
    });
    eventually_async("the waiter to queue", DEADLINE, || async {
        mutex.participants().await.unwrap().len() == 2
    })
    .await;
    let node = format!("{lock}/{}", mutex.participants().await.unwrap()[1].node);
    Revoker::attempt_revoke(&revoker, &node).await.unwrap();
    let (path, token, _) = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the request while waiting")
        .unwrap();
    assert_eq!(path, node);
    assert!(!waiter.is_finished(), "granted while the holder holds");

    held.release().await.unwrap();
    let guard = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the grant")
        .unwrap();
    assert_eq!(guard.node_path(), node);
    assert_eq!(
        guard.fencing_token(),
        token,
        "the request named the hold to come"
    );
    // A second request after the grant is the next thing the listener hears: the first one
    // is not delivered again (a repeat would come at the grant, before this request).
    guard
        .guarded_set_data(&node, b"not a request", None)
        .await
        .unwrap();
    let second_sent = Instant::now();
    Revoker::attempt_revoke(&revoker, &node).await.unwrap();
    let (_, _, heard) = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the request while held")
        .unwrap();
    assert!(
        heard >= second_sent,
        "the request made while waiting was delivered again"
    );
    guard.release().await.unwrap();
}

/// A revocation listener that panics is contained: the next request still reaches it, and
/// the hold's lost signal still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_revocation_listener_is_contained() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("mutex-revoke-panic"));
    let client = connect(&server, Duration::from_secs(4)).await;
    let other = connect(&server, Duration::from_secs(4)).await;
    let mutex = InterProcessMutex::new(&client, &lock).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    mutex.make_revocable({
        let calls = calls.clone();
        move |_: &zk_recipes::RevocationRequest| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("a listener that fails on its first request");
            }
            let _ = tx.send(());
        }
    });
    let guard = mutex.acquire().await.unwrap();
    Revoker::attempt_revoke(&other, guard.node_path())
        .await
        .unwrap();
    eventually("the first request to reach the listener", DEADLINE, || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    Revoker::attempt_revoke(&other, guard.node_path())
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the second request after a panic")
        .unwrap();
    other.delete(guard.node_path(), None).await.unwrap();
    tokio::time::timeout(DEADLINE, guard.lost())
        .await
        .expect("lost() after a panicking listener");
}

/// A lock node created by someone else right after our release must block our next acquire,
/// however its sequence relates to our released node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_created_right_after_our_release_still_blocks() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("mutex-quiet");
    let client = connect(&server, Duration::from_secs(10)).await;
    let other = connect(&server, Duration::from_secs(10)).await;
    let mutex = InterProcessMutex::new(&client, &path).unwrap();
    mutex.acquire().await.unwrap().release().await.unwrap();

    // Another participant takes the lock between our release and our next acquire, the way
    // a Curator process would: a protected ephemeral-sequential lock node.
    let foreign = other
        .create_protected(
            &path,
            "lock-",
            b"foreign",
            CreateMode::EphemeralSequential,
            &[],
        )
        .await
        .unwrap();
    assert!(
        mutex
            .try_acquire(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "granted while another participant's node was first"
    );
    assert!(mutex.try_acquire(Duration::ZERO).await.unwrap().is_none());
    other.delete(&foreign.path, None).await.unwrap();
    let guard = mutex
        .try_acquire(DEADLINE)
        .await
        .unwrap()
        .expect("granted once it is gone");
    guard.release().await.unwrap();

    // And the shortcut itself: acquire after release, many times, nobody else around.
    for _ in 0..20 {
        mutex.acquire().await.unwrap().release().await.unwrap();
    }
    eventually_children(&other, &path, 0, "no node left").await;
}

/// A release on a dead connection: zookeeper-client would hold the delete until the
/// connection came back or the session ended (20 s here); the release waits as long as
/// Curator's retried delete would (the connection timeout of 2 s, and again after each of the
/// policy's 2 retries: at least 6 s of a dead connection), then gives up with
/// `ConnectionLoss`, and the node goes in the background once the connection is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_on_a_dead_connection_returns_and_deletes_in_the_background() {
    init_tracing();
    let server = zk_server().await;
    let observer = Client::builder(&server).connect().await.unwrap();
    let proxy = zk_recipes::testing::FaultProxy::start(&server)
        .await
        .unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connection_timeout(Duration::from_secs(2))
        .retry_policy(RetryNTimes::new(2, Duration::from_millis(100)))
        .connect()
        .await
        .unwrap();
    let path = unique_path("release-dead-connection");
    let mutex = InterProcessMutex::new(&client, &path).unwrap();
    let guard = mutex.acquire().await.unwrap();
    proxy.blackhole();
    let started = std::time::Instant::now();
    let released = tokio::time::timeout(Duration::from_secs(15), guard.release())
        .await
        .expect("the release returns well before the session timeout");
    let waited = started.elapsed();
    assert!(
        matches!(released, Err(Error::ConnectionLoss)),
        "{released:?} after {waited:?}"
    );
    assert!(
        waited >= Duration::from_secs(6),
        "gave up after {waited:?}, before the retry policy did"
    );
    proxy.restore();
    crate::common::eventually_children(&observer, &path, 0, "the node deleted in the background")
        .await;
    client.close().await;
}

/// Curator's release retries its delete as the client's retry policy allows; so does ours,
/// without sending it twice. The connection is cut for longer than the connection timeout
/// (1 s), but less than the policy allows (five more timeouts): the release is still waiting
/// after 2.5 s, and succeeds once the connection is back (Curator's
/// `testWaitingProcessKilledServer` releases so after a server restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_waits_for_the_connection_as_the_retry_policy_allows() {
    init_tracing();
    let server = zk_server().await;
    let observer = Client::builder(&server).connect().await.unwrap();
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(30))
        .connection_timeout(Duration::from_secs(1))
        .retry_policy(RetryNTimes::new(5, Duration::from_millis(500)))
        .connect()
        .await
        .unwrap();
    let path = unique_path("release-retried");
    let mutex = InterProcessMutex::new(&client, &path).unwrap();
    let guard = mutex.acquire().await.unwrap();
    let mut states = client.connection_states();
    proxy.cut();
    until_connection_state(
        &mut states,
        ConnectionState::Suspended,
        DEADLINE,
        "the client notices the cut",
    )
    .await;
    let release = guard.release();
    tokio::pin!(release);
    assert!(
        tokio::time::timeout(Duration::from_millis(2500), &mut release)
            .await
            .is_err(),
        "the release gave up after one connection timeout"
    );
    proxy.restore();
    tokio::time::timeout(DEADLINE, release)
        .await
        .expect("the release ends once the connection is back")
        .expect("the release succeeds");
    assert!(children(&observer, &path).await.is_empty());
    client.close().await;
}
