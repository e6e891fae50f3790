//! Curator's `TestDistributedBarrier` (`barriers/TestDistributedBarrier.java`), ported to
//! [`DistributedBarrier`].
//!
//! Curator's `setBarrier`, `removeBarrier`, `waitOnBarrier()` and `waitOnBarrier(time, unit)`
//! are [`set_barrier`](DistributedBarrier::set_barrier),
//! [`remove_barrier`](DistributedBarrier::remove_barrier),
//! [`wait_on_barrier`](DistributedBarrier::wait_on_barrier) and
//! [`wait_on_barrier_for`](DistributedBarrier::wait_on_barrier_for). Curator's tests share
//! `/barrier` on a fresh server per test; here each test runs under a [`unique_path`] on the
//! shared server, except `testServerCrash`, which stops a server of its own. Curator sleeps
//! (1 s) to let a waiter start before it removes the barrier; the ports look, for a bounded
//! while, that the waiter is held, and need no sleep to be correct.
//!
//! Not ported: none.

use std::time::Duration;

use zk_recipes::barriers::DistributedBarrier;
use zk_recipes::retry::RetryOneTime;
use zk_recipes::testing::TestingServer;
use zk_recipes::{Client, Error};

use crate::common::{init_tracing, join_within, unique_path, zk_server};
use crate::nodes_base::{client, stat_of, DEADLINE, QUIET};

fn barrier(client: &Client, path: &str) -> DistributedBarrier {
    DistributedBarrier::new(client, path).expect("barrier")
}

/// Curator: `TestDistributedBarrier.testServerCrash`.
///
/// A client with a 1 s connection timeout and `RetryOneTime(1)` sets the barrier and waits on
/// it (for up to 2,000 s, as Curator); the server is stopped while it waits. The wait must
/// fail with [`Error::ConnectionLoss`] (Curator's `ConnectionLossException`), not wait on.
///
/// Adapted: Curator's wait is woken by the disconnection itself and fails on its next read.
/// This crate's wait rides out a disconnection on the same session (its watch is set again on
/// reconnection), and fails once the session is lost and no connection comes back within the
/// client's policy; so the client's session timeout is short (2 s; Curator's is its default
/// 60 s, which no wait of its test reaches). Curator sleeps 500 ms before stopping the server
/// so that the wait has begun; here a bounded look shows the waiter held first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_server_crash() {
    init_tracing();
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = TestingServer::start().await.expect("a server of its own");
    let client = Client::builder(server.connect_string())
        .session_timeout(Duration::from_secs(2))
        .connection_timeout(TIMEOUT)
        .retry_policy(RetryOneTime::new(Duration::from_millis(1)))
        .connect()
        .await
        .expect("connect");
    let path = "/barrier";
    let barrier = barrier(&client, path);
    barrier.set_barrier().await.expect("set_barrier");
    let waiter = tokio::spawn({
        let barrier = barrier.clone();
        async move { barrier.wait_on_barrier_for(TIMEOUT * 2000).await }
    });
    // A bounded look: the waiter is held by the barrier.
    tokio::time::sleep(QUIET).await;
    assert!(!waiter.is_finished(), "{:?}", waiter.await);
    server.stop().await.expect("stop the server");
    let waited = join_within(waiter, DEADLINE, "the wait to fail").await;
    assert!(matches!(waited, Err(Error::ConnectionLoss)), "{waited:?}");
    client.close().await;
}

/// Curator: `TestDistributedBarrier.testMultiClient`.
///
/// A client sets the barrier and closes. Two other clients each wait on it: first for 10 ms
/// (Curator's wait, whose `false` its test ignores; here it must be `false`: the barrier is
/// set), then without a limit. Once both are waiting, a fourth client removes the barrier and
/// closes; both waits must end (Curator's `f.get()`), here within [`DEADLINE`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_multi_client() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("barrier-multi");
    {
        let client = client(&server).await;
        barrier(&client, &path)
            .set_barrier()
            .await
            .expect("set_barrier");
        client.close().await;
    }
    let (bounded_tx, mut bounded_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let client = client(&server).await;
        let (path, bounded_tx) = (path.clone(), bounded_tx.clone());
        waiters.push(tokio::spawn(async move {
            let barrier = barrier(&client, &path);
            let bounded = barrier
                .wait_on_barrier_for(Duration::from_millis(10))
                .await
                .expect("wait_on_barrier_for");
            bounded_tx.send(bounded).expect("the test listens");
            barrier.wait_on_barrier().await.expect("wait_on_barrier");
            client.close().await;
        }));
    }
    for _ in 0..2 {
        let bounded = tokio::time::timeout(DEADLINE, bounded_rx.recv())
            .await
            .expect("a bounded wait to end in time")
            .expect("a waiter");
        assert!(!bounded, "a bounded wait passed a set barrier");
    }
    // A bounded look: both waiters are held by the barrier.
    tokio::time::sleep(QUIET).await;
    assert!(waiters.iter().all(|waiter| !waiter.is_finished()));
    {
        let client = client(&server).await;
        barrier(&client, &path)
            .remove_barrier()
            .await
            .expect("remove_barrier");
        client.close().await;
    }
    for waiter in waiters {
        join_within(waiter, DEADLINE, "a waiter to pass the removed barrier").await;
    }
}

/// Curator: `TestDistributedBarrier.testNoBarrier`.
///
/// With no barrier set, a wait of up to 10 s returns `true`, and a wait without a limit (in a
/// task: Curator's "just for grins") returns within 10 s. Added: the wait made no node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_no_barrier() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let path = unique_path("barrier-none");
    let barrier = barrier(&client, &path);
    assert!(barrier
        .wait_on_barrier_for(Duration::from_secs(10))
        .await
        .expect("wait_on_barrier_for"));
    let waiter = tokio::spawn({
        let barrier = barrier.clone();
        async move { barrier.wait_on_barrier().await }
    });
    join_within(waiter, Duration::from_secs(10), "the unbounded wait")
        .await
        .expect("wait_on_barrier");
    assert!(stat_of(&client, &path).await.is_none());
    client.close().await;
}

/// Curator: `TestDistributedBarrier.testBasic`.
///
/// The barrier is set and waited on (for up to 10 s); it is removed while the wait runs, and
/// the wait returns `true`. Curator removes it from another thread after a 1 s sleep; here a
/// bounded look shows the waiter held first, then the barrier is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let path = unique_path("barrier-basic");
    let barrier = barrier(&client, &path);
    barrier.set_barrier().await.expect("set_barrier");
    let waiter = tokio::spawn({
        let barrier = barrier.clone();
        async move { barrier.wait_on_barrier_for(Duration::from_secs(10)).await }
    });
    // A bounded look: the waiter is held by the barrier.
    tokio::time::sleep(QUIET).await;
    assert!(!waiter.is_finished(), "{:?}", waiter.await);
    barrier.remove_barrier().await.expect("remove_barrier");
    assert!(join_within(waiter, DEADLINE, "the wait")
        .await
        .expect("wait_on_barrier_for"));
    client.close().await;
}
