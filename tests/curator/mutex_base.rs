//! What Curator's `TestInterProcessMutexBase` checks for every kind of lock, written once over
//! [`InterProcessLock`]: its tests in [`test_inter_process_mutex`](super::test_inter_process_mutex),
//! [`test_inter_process_multi_mutex`](super::test_inter_process_multi_mutex) and
//! [`test_inter_process_semaphore_mutex`](super::test_inter_process_semaphore_mutex) call
//! these with their own kind of lock (Curator's subclasses override `makeLock`).

use std::time::Duration;

use zk_recipes::{Client, InterProcessLock, LockHold};

use crate::common::{eventually, eventually_async, join_within};

const DEADLINE: Duration = Duration::from_secs(20);
/// How long "still exactly one holder" is watched (Curator: 1 s).
const QUIET: Duration = Duration::from_millis(300);
/// Each holder's acquire timeout (Curator's).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// `test2Clients`: `lock1` and `lock2` are handles of one lock on two clients, each acquired
/// by a task of its own that holds until told to release: exactly one holds, still exactly
/// one a moment later, and once it releases, the other gets the lock.
pub async fn two_clients<L>(lock1: L, lock2: L)
where
    L: InterProcessLock + Clone + 'static,
{
    let spawn_holder = |lock: L| {
        let (acquired_tx, acquired_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let hold = lock
                .try_acquire(ACQUIRE_TIMEOUT)
                .await
                .expect("try_acquire")
                .expect("the lock within its timeout");
            let _ = acquired_tx.send(());
            let _ = tokio::time::timeout(DEADLINE, release_rx).await;
            hold.release().await.expect("release");
        });
        (task, acquired_rx, release_tx)
    };
    let (task1, acquired1, release1) = spawn_holder(lock1.clone());
    let (task2, acquired2, release2) = spawn_holder(lock2.clone());

    eventually("one of the two to hold the lock", DEADLINE, || {
        lock1.is_acquired_in_this_process() || lock2.is_acquired_in_this_process()
    })
    .await;
    assert_ne!(
        lock1.is_acquired_in_this_process(),
        lock2.is_acquired_in_this_process()
    );
    tokio::time::sleep(QUIET).await;
    assert_ne!(
        lock1.is_acquired_in_this_process(),
        lock2.is_acquired_in_this_process(),
        "still exactly one holder"
    );

    let (first, second) = if lock1.is_acquired_in_this_process() {
        (
            (release1, &lock1),
            (release2, acquired2, &lock2, "client 2"),
        )
    } else {
        (
            (release2, &lock2),
            (release1, acquired1, &lock1, "client 1"),
        )
    };
    drop(first.0);
    let (release_next, acquired_next, next, who) = second;
    tokio::time::timeout(DEADLINE, acquired_next)
        .await
        .unwrap_or_else(|_| panic!("{who} gets the lock once the other releases"))
        .expect("its task is alive");
    assert!(next.is_acquired_in_this_process());
    assert!(!first.1.is_acquired_in_this_process());
    drop(release_next);
    join_within(task1, DEADLINE, "task 1").await;
    join_within(task2, DEADLINE, "task 2").await;
}

/// `testContainerCleanup`: ten tasks, each with a handle `make_lock` makes, acquire and release
/// the lock once; then `reaped`, a container made on the way to the lock's nodes, is reaped
/// by the server (whose container check interval the test has made short). Curator sleeps and
/// looks once; this waits for it under a deadline.
pub async fn container_cleanup<L>(client: &Client, make_lock: impl Fn() -> L, reaped: &str)
where
    L: InterProcessLock + 'static,
{
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let lock = make_lock();
        tasks.push(tokio::spawn(async move {
            let hold = lock.acquire().await.expect("acquire");
            tokio::task::yield_now().await;
            hold.release().await.expect("release");
        }));
    }
    for task in tasks {
        join_within(task, DEADLINE, "every acquirer").await;
    }
    eventually_async(
        "the lock's container parents to be reaped",
        DEADLINE,
        || async { client.exists(reaped).await.expect("exists").is_none() },
    )
    .await;
}
