//! `InterProcessLock` and `LockHold`: one generic check of exclusion, timeouts and release,
//! run on every lock that implements them (the mutex, a read/write lock's write half, the
//! semaphore mutex and a multi-lock).

use std::time::Duration;

use crate::common::{connect_with, init_tracing, unique_path, zk_server};
use zk_recipes::{
    Client, InterProcessLock, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, LockHold,
};

const DEADLINE: Duration = Duration::from_secs(20);

async fn connect(server: &str) -> Client {
    connect_with(server, Duration::from_secs(10), Duration::from_secs(3)).await
}

/// `first` and `second` are two handles of one lock, on two clients: while one holds it, the
/// other cannot have it; once released, the other can.
async fn excludes<L: InterProcessLock>(kind: &str, first: L, second: L) {
    let held = first
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert!(first.is_acquired_in_this_process(), "{kind}");
    assert!(
        !held.is_lost() && held.verify().await,
        "{kind}: a fresh hold is good"
    );
    assert!(
        second
            .try_acquire(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "{kind}: acquired while held elsewhere"
    );
    let waiting = async { second.acquire().await };
    // The waiter may queue before or after the release: either way it must be granted.
    let release = held.release();
    let (granted, released) =
        tokio::time::timeout(DEADLINE, async { tokio::join!(waiting, release) })
            .await
            .unwrap_or_else(|_| panic!("{kind}: the waiter was not granted after the release"));
    released.unwrap_or_else(|e| panic!("{kind}: release: {e}"));
    assert!(!first.is_acquired_in_this_process(), "{kind}");
    let granted = granted.unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert!(second.is_acquired_in_this_process(), "{kind}");
    granted.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exclusive_lock_is_an_inter_process_lock() {
    init_tracing();
    let server = zk_server().await;
    let (a, b) = (connect(&server).await, connect(&server).await);

    let path = unique_path("trait-mutex");
    excludes(
        "mutex",
        InterProcessMutex::new(&a, &path).unwrap(),
        InterProcessMutex::new(&b, &path).unwrap(),
    )
    .await;

    let path = unique_path("trait-rw");
    excludes(
        "write lock",
        InterProcessReadWriteLock::new(&a, &path)
            .unwrap()
            .write_lock()
            .clone(),
        InterProcessReadWriteLock::new(&b, &path)
            .unwrap()
            .write_lock()
            .clone(),
    )
    .await;

    let path = unique_path("trait-semaphore-mutex");
    excludes(
        "semaphore mutex",
        InterProcessSemaphoreMutex::new(&a, &path).unwrap(),
        InterProcessSemaphoreMutex::new(&b, &path).unwrap(),
    )
    .await;

    let base = unique_path("trait-multi");
    let paths = [format!("{base}/x"), format!("{base}/y")];
    excludes(
        "multi-lock",
        InterProcessMultiLock::from_paths(&a, &paths).unwrap(),
        InterProcessMultiLock::from_paths(&b, &paths).unwrap(),
    )
    .await;

    a.close().await;
    b.close().await;
}
