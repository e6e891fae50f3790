//! `InterProcessMultiLock` against real ZooKeeper: two sessions taking overlapping sets given
//! in opposite orders never deadlock and exclude each other; a cancellation or a timeout
//! part-way leaves no node; a part deleted from outside fires `lost()` and stops guarded
//! writes; a release gives back every part and reports every failure.

use std::time::Duration;

use crate::common::{connect_with, eventually_children, init_tracing, unique_path, zk_server};
use zk_recipes::testing::FaultProxy;
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{
    Client, Error, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, MultiLockPart,
};

const DEADLINE: Duration = Duration::from_secs(20);

async fn connect(connect_string: &str) -> Client {
    connect_with(
        connect_string,
        Duration::from_secs(20),
        Duration::from_secs(5),
    )
    .await
}

fn multi_lock(client: &Client, paths: &[&str]) -> InterProcessMultiLock {
    InterProcessMultiLock::from_paths(client, paths).expect("multi-lock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_sets_in_opposite_orders_never_deadlock_and_exclude() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("multi-lock-order");
    let (a, b, c) = (
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/c"),
    );
    // Every set holds b, and increments a counter under it with an unguarded read and write:
    // two holders at once would lose increments.
    let counter = format!("{base}/counter");
    let setup = connect(&server).await;
    setup.ensure_path(&base, false).await.expect("base");
    setup
        .create(&counter, b"0", CreateMode::Persistent, &[])
        .await
        .expect("counter");
    // Three sessions, as three processes: a, b, c; then c, b, a; then c, b.
    let sets = [
        vec![a.clone(), b.clone(), c.clone()],
        vec![c.clone(), b.clone(), a.clone()],
        vec![c.clone(), b.clone()],
    ];
    const ROUNDS: u64 = 15;
    let mut workers = Vec::new();
    for set in &sets {
        let client = connect(&server).await;
        let paths: Vec<&str> = set.iter().map(String::as_str).collect();
        let lock = multi_lock(&client, &paths);
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let guard = lock.acquire().await.expect("acquire every part");
                let (data, _) = client
                    .get_data(&counter)
                    .await
                    .expect("read the counter")
                    .expect("the counter exists");
                let value: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
                client
                    .set_data(&counter, (value + 1).to_string().as_bytes(), None)
                    .await
                    .expect("write the counter");
                guard.release().await.expect("release every part");
            }
            client.close().await;
        }));
    }
    let all = futures::future::try_join_all(workers);
    tokio::time::timeout(Duration::from_secs(90), all)
        .await
        .expect("no deadlock: every worker finishes its acquisitions")
        .expect("no worker panicked");
    let (data, _) = setup.get_data(&counter).await.unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&data).unwrap(),
        (ROUNDS * sets.len() as u64).to_string(),
        "no increment lost: b had one holder at a time"
    );
    setup.close().await;
}

#[tokio::test]
async fn a_cancelled_or_timed_out_acquire_leaves_no_node() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("multi-lock-cancel");
    let (a, b) = (format!("{base}/a"), format!("{base}/b"));
    let observer = connect(&server).await;
    let holder = connect(&server).await;
    let held_b = InterProcessMutex::new(&holder, &b)
        .unwrap()
        .acquire()
        .await
        .expect("b, held elsewhere");

    let client = connect(&server).await;
    // Given as [b, a]: a is taken first, then the wait is on b.
    let lock = multi_lock(&client, &[b.as_str(), a.as_str()]);
    assert_eq!(lock.paths().collect::<Vec<_>>(), [a.as_str(), b.as_str()]);

    // Cancelled part-way: a is held and a node waits in b's queue.
    let waiting = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await }
    });
    eventually_children(&observer, &a, 1, "a taken by the multi-lock").await;
    eventually_children(&observer, &b, 2, "the multi-lock waiting on b").await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    assert!(!lock.is_acquired_in_this_process());
    eventually_children(&observer, &a, 0, "a given back after the cancellation").await;
    eventually_children(&observer, &b, 1, "only b's holder left in b").await;

    // Timed out part-way: the same, with the error-free `None`.
    let timed_out = lock
        .try_acquire(Duration::from_millis(500))
        .await
        .expect("try_acquire");
    assert!(timed_out.is_none(), "b is held elsewhere");
    assert!(!lock.is_acquired_in_this_process());
    eventually_children(&observer, &a, 0, "a given back after the timeout").await;
    eventually_children(&observer, &b, 1, "only b's holder left in b").await;

    // Once b is free, the whole set is taken, and released.
    held_b.release().await.unwrap();
    let guard = lock
        .try_acquire(DEADLINE)
        .await
        .expect("try_acquire")
        .expect("both free");
    assert_eq!(guard.parts().len(), 2);
    assert!(
        guard.verify().await,
        "both parts held, by the server's answer"
    );
    assert!(lock.is_acquired_in_this_process());
    guard.release().await.unwrap();
    eventually_children(&observer, &a, 0, "a released").await;
    eventually_children(&observer, &b, 0, "b released").await;
    for client in [observer, holder, client] {
        client.close().await;
    }
}

#[tokio::test]
async fn a_part_deleted_from_outside_fires_lost_and_stops_guarded_writes() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("multi-lock-lost");
    let (a, b) = (format!("{base}/a"), format!("{base}/b"));
    let client = connect(&server).await;
    let operator = connect(&server).await;
    let guard = multi_lock(&client, &[a.as_str(), b.as_str()])
        .acquire()
        .await
        .expect("both");
    let lost = guard.lost();
    assert!(!guard.is_lost());
    let data = format!("{base}/data");
    operator
        .create(&data, b"0", CreateMode::Persistent, &[])
        .await
        .expect("data node");
    guard
        .guarded(|writer| writer.add_set_data(&data, b"1", None))
        .await
        .expect("a write guarded by both parts, while both are held");

    let b_node = guard.parts()[1].node_path().to_owned();
    operator
        .delete(&b_node, None)
        .await
        .expect("delete b's node");
    tokio::time::timeout(DEADLINE, lost)
        .await
        .expect("lost() fires when one part is lost");
    assert!(guard.is_lost());
    assert!(!guard.verify().await, "b is not held any more");
    match guard
        .guarded(|writer| writer.add_set_data(&data, b"2", None))
        .await
    {
        Err(Error::LockLost) => {}
        other => panic!("expected LockLost for a write guarded by a lost part, got {other:?}"),
    }
    let (written, _) = operator.get_data(&data).await.unwrap().unwrap();
    assert_eq!(
        written, b"1",
        "the write guarded by a lost part was not applied"
    );
    guard
        .release()
        .await
        .expect("a released; b's node already gone");
    eventually_children(&operator, &a, 0, "a released").await;
    client.close().await;
    operator.close().await;
}

#[tokio::test]
async fn release_gives_back_every_part_and_reports_each_failure() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("multi-lock-release");
    let (a, b, c) = (
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/c"),
    );
    let proxy = FaultProxy::start(&server).await.expect("proxy");
    // a and c through a proxy we cut; b direct.
    let through_proxy = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connection_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect through the proxy");
    let direct = connect(&server).await;
    let observer = connect(&server).await;
    let lock = InterProcessMultiLock::new([
        InterProcessMutex::new(&through_proxy, &a).unwrap(),
        InterProcessMutex::new(&direct, &b).unwrap(),
        InterProcessMutex::new(&through_proxy, &c).unwrap(),
    ])
    .unwrap();
    let guard = lock.acquire().await.expect("every part");
    // One transaction runs on one session: parts held through two clients cannot guard one.
    match guard
        .guarded(|writer| writer.add_set_data(&a, b"never sent", None))
        .await
    {
        Err(Error::InvalidArgument(_)) => {}
        other => panic!("expected InvalidArgument for parts on two clients, got {other:?}"),
    }

    // a's and c's deletes are held in the proxy, then the connection under them is cut: they
    // fail with a connection loss. (A delete sent while the client is already disconnected
    // would wait for the connection or for the session's end, and succeed either way.)
    proxy.delay(Duration::from_secs(3));
    let release = tokio::spawn(guard.release());
    eventually_children(
        &observer,
        &b,
        0,
        "b released while a's and c's deletes are held",
    )
    .await;
    proxy.cut();
    match release.await.expect("release task") {
        Err(Error::PartsNotReleased { failures }) => {
            let mut failed: Vec<&str> = failures.iter().map(|f| f.path.as_str()).collect();
            failed.sort();
            assert_eq!(
                failed,
                [a.as_str(), c.as_str()],
                "a and c failed: {failures:?}"
            );
        }
        other => panic!("expected PartsNotReleased for a and c, got {other:?}"),
    }
    assert!(!lock.is_acquired_in_this_process());
    proxy.restore();
    eventually_children(&observer, &a, 0, "a's node deleted in the background").await;
    eventually_children(&observer, &c, 0, "c's node deleted in the background").await;
    for client in [through_proxy, direct, observer] {
        client.close().await;
    }
}

/// A multi-lock of every kind of lock: a mutex, a read/write lock's write half and a semaphore
/// mutex. Held, it keeps another client out of each; a guarded write checks every part's node;
/// a lease deleted from outside makes the whole lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_lock_can_be_a_part() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("multi-lock-kinds");
    let (mutex_path, rw_path, semaphore_path) = (
        format!("{base}/mutex"),
        format!("{base}/catalog"),
        format!("{base}/compaction"),
    );
    let (holder, other) = (connect(&server).await, connect(&server).await);
    let catalog = InterProcessReadWriteLock::new(&holder, &rw_path).unwrap();
    let parts: [MultiLockPart; 3] = [
        InterProcessSemaphoreMutex::new(&holder, &semaphore_path)
            .unwrap()
            .into(),
        InterProcessMutex::new(&holder, &mutex_path).unwrap().into(),
        catalog.write_lock().clone().into(),
    ];
    let all = InterProcessMultiLock::new(parts).expect("multi-lock");
    assert_eq!(
        all.paths().collect::<Vec<_>>(),
        [
            rw_path.as_str(),
            semaphore_path.as_str(),
            mutex_path.as_str()
        ]
    );
    let guard = all.acquire().await.expect("every part");
    assert!(all.is_acquired_in_this_process());

    let other_mutex = InterProcessMutex::new(&other, &mutex_path).unwrap();
    let other_catalog = InterProcessReadWriteLock::new(&other, &rw_path).unwrap();
    let other_semaphore = InterProcessSemaphoreMutex::new(&other, &semaphore_path).unwrap();
    assert!(other_mutex
        .try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .is_none());
    assert!(other_catalog
        .read_lock()
        .try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .is_none());
    assert!(other_semaphore
        .try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .is_none());

    let marker = format!("{base}/written");
    guard
        .guarded(|writer| {
            writer.add_create(
                &marker,
                b"all",
                &CreateMode::Persistent.with_acls(zk_recipes::zookeeper_client::Acls::anyone_all()),
            )
        })
        .await
        .expect("a write guarded by every part");
    // The semaphore mutex's part is its lease; deleting it loses the whole.
    let lease = guard
        .parts()
        .iter()
        .find(|part| part.node_name().contains("-lease-"))
        .expect("the lease part")
        .node_path()
        .to_owned();
    other.delete(&lease, None).await.expect("delete the lease");
    tokio::time::timeout(DEADLINE, guard.lost())
        .await
        .expect("the multi-lock is lost");
    match guard
        .guarded(|writer| writer.add_delete(&marker, None))
        .await
    {
        Err(Error::LockLost) => {}
        other => panic!("a write guarded by a lost lease: {other:?}"),
    }
    guard.release().await.expect("release every part");
    assert!(!all.is_acquired_in_this_process());
    let taken = other_semaphore
        .try_acquire(DEADLINE)
        .await
        .unwrap()
        .expect("the semaphore mutex is free again");
    taken.release().await.unwrap();
    for path in [&mutex_path, &rw_path] {
        eventually_children(&other, path, 0, "no lock node left").await;
    }
    eventually_children(
        &other,
        &format!("{semaphore_path}/leases"),
        0,
        "no lease left",
    )
    .await;
    holder.close().await;
    other.close().await;
}
