//! `Client::close()` with every recipe still alive: a held guard or lease, a waiting acquire,
//! a leading latch, a selector in its leadership. The close must end the session whatever
//! still holds a recipe handle (the server deletes the session's ephemeral nodes before it
//! answers the close), and every recipe handle must then read as lost or closed, with its
//! later release, close or drop harmless.
//!
//! Each test checks the server right after `close()` returns: a recipe task that kept its
//! own copy of the session's handle kept the session open (and the lock held, for other
//! processes) until the handle was dropped, while `close()` waited out its timeout.

use std::time::{Duration, Instant};

use crate::common::{children_of, connect_with, init_tracing, unique_path, zk_server};
use zk_recipes::{
    BoxError, Client, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, InterProcessSemaphoreV2, LatchLayout, LeaderLatch, LeaderSelector,
    LeaderSelectorListener, Leadership,
};

/// The closing client's connection timeout: a close that waits it out failed to close.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a recipe handle may take to notice the close, and its release or close to end.
const DEADLINE: Duration = Duration::from_secs(10);

async fn connect(server: &str) -> Client {
    connect_with(server, Duration::from_secs(10), CONNECTION_TIMEOUT).await
}

/// Closes `client` and checks, right after `close()` returns, that none of `parents` has a
/// child left (the session's ephemeral nodes are gone) as `observer` sees them.
async fn close_and_expect_no_nodes(client: &Client, observer: &Client, parents: &[&str]) {
    let started = Instant::now();
    client.close().await;
    let took = started.elapsed();
    for parent in parents {
        let left = children_of(observer, parent).await;
        assert!(
            left.is_empty(),
            "{parent} still has {left:?} after close() returned (in {took:?}): the session \
             outlived the close"
        );
    }
    assert!(
        took < CONNECTION_TIMEOUT,
        "close() took {took:?}: it waited out its timeout instead of closing the session"
    );
}

/// Awaits `future` for at most [`DEADLINE`].
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within {DEADLINE:?} after the close"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_a_held_mutex_and_its_waiter() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let client = connect(&server).await;
    let path = unique_path("close-mutex");
    let mutex = InterProcessMutex::new(&client, &path).unwrap();
    let guard = mutex.acquire().await.unwrap();
    // A reentrant hold and a revocable waiter behind it: each keeps its own watch.
    let nested = guard.reenter();
    let waiting_mutex = mutex.clone();
    waiting_mutex.make_revocable(|_: &zk_recipes::RevocationRequest| {});
    let waiter = tokio::spawn(async move { waiting_mutex.acquire().await });
    crate::common::eventually_children(&observer, &path, 2, "the waiter's node").await;
    // The held node's monitor sets its watch a moment after the grant; wait for it to be set.
    let _ = tokio::time::timeout(Duration::from_millis(200), guard.lost()).await;

    close_and_expect_no_nodes(&client, &observer, &[&path]).await;

    assert!(guard.is_lost() && nested.is_lost());
    within("the lost signal", guard.lost()).await;
    let waited = within("the waiting acquire", waiter).await.unwrap();
    assert!(waited.is_err(), "a waiter was granted after the close");
    within("a release after the close", nested.release())
        .await
        .expect("a release after the close is harmless");
    within("a release after the close", guard.release())
        .await
        .expect("a release after the close is harmless");
    assert!(!mutex.is_acquired_in_this_process());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_a_read_write_lock_with_a_downgrade() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let client = connect(&server).await;
    let path = unique_path("close-rw");
    let lock = InterProcessReadWriteLock::new(&client, &path).unwrap();
    let write = lock.write_lock().acquire().await.unwrap();
    let read = write.downgrade().await.unwrap();
    let writer = lock.write_lock().clone();
    let waiting_writer = tokio::spawn(async move { writer.acquire().await });
    crate::common::eventually_children(&observer, &path, 3, "the waiting writer's node").await;

    close_and_expect_no_nodes(&client, &observer, &[&path]).await;

    assert!(write.is_lost() && read.is_lost());
    let waited = within("the waiting writer", waiting_writer).await.unwrap();
    assert!(waited.is_err(), "a writer was granted after the close");
    within("the read release", read.release())
        .await
        .expect("harmless");
    within("the write release", write.release())
        .await
        .expect("harmless");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_a_held_lease_and_a_waiting_acquirer() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let client = connect(&server).await;
    let path = unique_path("close-semaphore");
    let semaphore = InterProcessSemaphoreV2::new(&client, &path, 1).unwrap();
    let lease = semaphore.acquire().await.unwrap();
    let waiting = semaphore.clone();
    let waiter = tokio::spawn(async move { waiting.acquire().await });
    let locks = format!("{path}/locks");
    let leases = format!("{path}/leases");
    // The waiter holds the internal lock while it waits for the lease to go.
    crate::common::eventually_children(&observer, &leases, 2, "the waiter's lease node").await;

    close_and_expect_no_nodes(&client, &observer, &[&locks, &leases]).await;

    assert!(lease.is_lost());
    within("the lost signal", lease.lost()).await;
    let waited = within("the waiting acquire", waiter).await.unwrap();
    assert!(waited.is_err(), "a lease was granted after the close");
    within("a release after the close", lease.release())
        .await
        .expect("a release after the close is harmless");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_a_semaphore_mutex_in_a_multi_lock() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let client = connect(&server).await;
    let base = unique_path("close-multi");
    let (first, second) = (format!("{base}/a"), format!("{base}/b"));
    let multi = InterProcessMultiLock::new([
        zk_recipes::MultiLockPart::from(InterProcessMutex::new(&client, &first).unwrap()),
        InterProcessSemaphoreMutex::new(&client, &second)
            .unwrap()
            .into(),
    ])
    .unwrap();
    let guard = multi.acquire().await.unwrap();

    let leases = format!("{second}/leases");
    close_and_expect_no_nodes(&client, &observer, &[&first, &leases]).await;

    assert!(guard.is_lost());
    within("the lost signal", guard.lost()).await;
    let _ = within("a release after the close", guard.release()).await;
    assert!(!multi.is_acquired_in_this_process());
}

async fn close_with_latches(layout: LatchLayout) {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let client = connect(&server).await;
    let path = unique_path("close-latch");
    let leader = LeaderLatch::new(&client, &path)
        .unwrap()
        .with_layout(layout);
    leader.start().await.unwrap();
    leader.await_leadership().await.unwrap();
    let follower = LeaderLatch::new(&client, &path)
        .unwrap()
        .with_layout(layout);
    follower.start().await.unwrap();
    if layout == LatchLayout::Curator {
        crate::common::eventually_children(&observer, &path, 2, "the follower's node").await;
    }

    let started = Instant::now();
    client.close().await;
    let took = started.elapsed();
    if layout == LatchLayout::Curator {
        let left = children_of(&observer, &path).await;
        assert!(left.is_empty(), "{left:?} outlived close() ({took:?})");
    } else {
        assert_eq!(
            observer.exists(&path).await.unwrap(),
            None,
            "the latch node outlived close() (it took {took:?})"
        );
    }
    assert!(took < CONNECTION_TIMEOUT, "close() took {took:?}");

    crate::common::eventually("the leader to step down", DEADLINE, || !leader.is_leader()).await;
    assert!(!leader.has_leadership().await);
    let _ = within("the leader's close", leader.close()).await;
    let _ = within("the follower's close", follower.close()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_a_leading_race_latch() {
    close_with_latches(LatchLayout::Race).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_a_leading_curator_latch() {
    close_with_latches(LatchLayout::Curator).await;
}

/// Hands each leadership to the test, and leads until it is cancelled.
struct HandsOut(tokio::sync::mpsc::UnboundedSender<Leadership>);

#[async_trait::async_trait]
impl LeaderSelectorListener for HandsOut {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let cancelled = leadership.cancellation_token();
        let _ = self.0.send(leadership);
        cancelled.cancelled().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_a_leading_selector() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let client = connect(&server).await;
    let path = unique_path("close-selector");
    let (leaderships, mut led) = tokio::sync::mpsc::unbounded_channel();
    let first = LeaderSelector::new(&client, &path, HandsOut(leaderships.clone())).unwrap();
    let second = LeaderSelector::new(&client, &path, HandsOut(leaderships)).unwrap();
    first.start().unwrap();
    let leadership = within("the first leadership", led.recv()).await.unwrap();
    second.start().unwrap();
    crate::common::eventually_children(&observer, &path, 2, "the second candidate's node").await;

    close_and_expect_no_nodes(&client, &observer, &[&path]).await;

    within("the leadership's cancellation", leadership.cancelled()).await;
    assert!(!leadership.verify().await);
    let _ = within("the first selector's close", first.close()).await;
    let _ = within("the second selector's close", second.close()).await;
    assert!(!first.is_leader() && !second.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_of_kept_nodes_and_a_group_member() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let client = connect(&server).await;
    let path = unique_path("close-nodes");
    let group = format!("{path}/group");
    let kept = format!("{path}/kept");
    let node = zk_recipes::PersistentNode::builder(
        &client,
        &format!("{kept}/n-"),
        zk_recipes::zookeeper_client::CreateMode::EphemeralSequential,
    )
    .protected(true)
    .build()
    .unwrap();
    node.start().unwrap();
    assert!(node.wait_for_initial_create(DEADLINE).await.unwrap());
    let member = zk_recipes::GroupMember::new(&client, &group, "m", &b"p"[..]).unwrap();
    member.start().await.unwrap();
    assert!(member.wait_for_join(DEADLINE).await.unwrap());
    // The member's view has seen itself: its cache's watch and reads are under way too.
    crate::common::eventually("the member in its view", DEADLINE, || {
        member.members().len() == 1
    })
    .await;

    close_and_expect_no_nodes(&client, &observer, &[&kept, &group]).await;

    within("the node's close", node.close()).await.unwrap();
    within("the member's close", member.close()).await.unwrap();
    assert_eq!(node.state(), zk_recipes::RecipeState::Closed);
    assert!(member.members().is_empty());
}
