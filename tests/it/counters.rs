//! `DistributedAtomicLong`, `SharedCount` and the barriers against real ZooKeeper: Curator's
//! formats, every operation, exactness under contention (and with promotion to the lock), an
//! increment whose answer is lost applied exactly once, bad data as typed errors, a count's
//! stream across a cut, a gate, and a double barrier whose members wait for each other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::barriers::{DistributedBarrier, DistributedDoubleBarrier};
use zk_recipes::retry::RetryNTimes;
use zk_recipes::shared::{DistributedAtomicLong, PromotedToLock, SharedCount};
use zk_recipes::testing::FaultProxy;
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, Error};

const DEADLINE: Duration = Duration::from_secs(30);

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(10),
        Duration::from_secs(3),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_does_what_curators_does_in_curators_format() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let path = unique_path("counter");
    let counter = DistributedAtomicLong::new(&client, &format!("{path}/value")).unwrap();
    let got = counter.get().await.unwrap();
    assert!(
        got.succeeded && got.pre_value == 0 && got.post_value == 0,
        "no node is 0"
    );
    let inc = counter.increment().await.unwrap();
    assert!(inc.succeeded);
    assert_eq!((inc.pre_value, inc.post_value), (0, 1));
    assert_eq!(inc.stats.optimistic_tries, 1);
    let (data, _) = client
        .get_data(&format!("{path}/value"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        data,
        1i64.to_be_bytes(),
        "Curator's format: 8 bytes, big-endian"
    );
    assert_eq!(counter.add(10).await.unwrap().post_value, 11);
    assert_eq!(counter.subtract(3).await.unwrap().post_value, 8);
    assert_eq!(counter.decrement().await.unwrap().post_value, 7);
    let missed = counter.compare_and_set(5, 100).await.unwrap();
    assert!(!missed.succeeded);
    assert_eq!((missed.pre_value, missed.post_value), (7, 7));
    let hit = counter.compare_and_set(7, 100).await.unwrap();
    assert!(hit.succeeded && hit.post_value == 100);
    assert_eq!(counter.try_set(-5).await.unwrap().post_value, -5);
    counter.force_set(i64::MAX).await.unwrap();
    assert_eq!(
        counter.increment().await.unwrap().post_value,
        i64::MIN,
        "wraps as Java's long"
    );
    assert!(!counter.initialize(3).await.unwrap(), "exists already");
    let fresh = DistributedAtomicLong::new(&client, &format!("{path}/other")).unwrap();
    assert!(fresh.initialize(3).await.unwrap());
    assert_eq!(fresh.get().await.unwrap().post_value, 3);

    // Bad data: a typed error, and nothing written.
    client
        .create(&format!("{path}/bad"), b"1234", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let bad = DistributedAtomicLong::new(&client, &format!("{path}/bad")).unwrap();
    assert!(matches!(bad.get().await, Err(Error::MalformedData(_))));
    assert!(matches!(
        bad.increment().await,
        Err(Error::MalformedData(_))
    ));
    let (data, _) = client
        .get_data(&format!("{path}/bad"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data, b"1234");
    assert!(matches!(
        DistributedAtomicLong::new(&client, "no-slash"),
        Err(Error::InvalidPath { .. })
    ));
    client.close().await;
}

/// Contenders on four sessions, some promoted to the lock: the final value is the number of
/// increments that said they succeeded, and no two claim the same value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_increments_are_exact_and_never_claim_a_value_twice() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("counter-contended");
    let value = format!("{path}/value");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = connect(&server).await;
        let mut builder = DistributedAtomicLong::builder(&client, &value)
            .retry_policy(RetryNTimes::new(2, Duration::from_millis(1)));
        if i % 2 == 0 {
            builder = builder.promoted_to_lock(PromotedToLock::new(&format!("{path}/lock")));
        }
        let counter = builder.build().unwrap();
        tasks.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            let mut promoted = 0;
            for _ in 0..25 {
                let outcome = counter.increment().await.unwrap();
                if outcome.stats.promoted_lock_tries > 0 {
                    promoted += 1;
                }
                if outcome.succeeded {
                    claimed.push(outcome.post_value);
                }
            }
            client.close().await;
            (claimed, promoted)
        }));
    }
    let mut claimed = Vec::new();
    let mut promoted = 0;
    for task in tasks {
        let (mine, p) = task.await.unwrap();
        claimed.extend(mine);
        promoted += p;
    }
    let distinct: BTreeSet<i64> = claimed.iter().copied().collect();
    assert_eq!(distinct.len(), claimed.len(), "a value claimed twice");
    let observer = connect(&server).await;
    let counter = DistributedAtomicLong::new(&observer, &value).unwrap();
    assert_eq!(
        counter.get().await.unwrap().post_value,
        claimed.len() as i64
    );
    assert!(promoted > 0, "no increment was promoted to the lock");
    assert!(
        claimed.len() > 100,
        "only {} increments succeeded",
        claimed.len()
    );
    observer.close().await;
}

/// The increment's transaction reaches the server 300 ms after it is sent, and its answer
/// would take 300 ms more: the connection is cut once the new value is on the server. The
/// increment must find out it was applied (from its marker), not apply it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_whose_answer_is_lost_is_applied_once() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = crate::common::connect_with(
        &proxy.connect_string(),
        Duration::from_secs(20),
        Duration::from_secs(5),
    )
    .await;
    let path = unique_path("counter-lost-answer");
    let counter = DistributedAtomicLong::new(&client, &path).unwrap();
    assert_eq!(counter.increment().await.unwrap().post_value, 1);
    let watcher = DistributedAtomicLong::new(&observer, &path).unwrap();
    for round in 2..=4 {
        proxy.delay(Duration::from_millis(300));
        let cut = async {
            eventually_async("the increment on the server", DEADLINE, || async {
                watcher.get().await.unwrap().post_value == round
            })
            .await;
            proxy.cut();
            proxy.restore();
        };
        let (outcome, ()) = tokio::join!(counter.increment(), cut);
        let outcome = outcome.unwrap();
        assert!(outcome.succeeded, "round {round}");
        assert_eq!(outcome.post_value, round);
        assert_eq!(
            watcher.get().await.unwrap().post_value,
            round,
            "applied once"
        );
    }
    client.close().await;
    // The markers went with the session.
    eventually_async("no marker left", DEADLINE, || async {
        observer
            .children(&path)
            .await
            .unwrap()
            .unwrap_or_default()
            .is_empty()
    })
    .await;
}

async fn next_value(
    changes: &mut zk_recipes::shared::CountChanges,
) -> zk_recipes::shared::VersionedValue<i32> {
    tokio::time::timeout(DEADLINE, changes.next())
        .await
        .expect("a value in time")
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_count_is_versioned_and_its_stream_keeps_up_across_a_cut() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = crate::common::connect_with(
        &proxy.connect_string(),
        Duration::from_secs(10),
        Duration::from_secs(2),
    )
    .await;
    let path = unique_path("shared-count");
    let count = SharedCount::new(&client, &path).unwrap();
    let written = SharedCount::new(&writer, &path).unwrap();
    assert!(count.seed(7).await.unwrap());
    assert!(!written.seed(9).await.unwrap(), "seeded already");
    let seen = count.versioned().await.unwrap().unwrap();
    assert_eq!((seen.value, seen.version), (7, 0));
    assert!(written.try_set(seen, 8).await.unwrap());
    assert!(!count.try_set(seen, 9).await.unwrap(), "a stale version");
    assert_eq!(count.get().await.unwrap(), Some(8));
    written.set(-3).await.unwrap();
    assert_eq!(count.get().await.unwrap(), Some(-3), "a Java int");

    let mut changes = count.changes().await.unwrap();
    assert_eq!(
        next_value(&mut changes).await.value,
        -3,
        "the current value first"
    );
    written.set(10).await.unwrap();
    assert_eq!(next_value(&mut changes).await.value, 10);
    // Written while the stream's connection is cut: the latest is seen once it is back.
    proxy.cut();
    written.set(11).await.unwrap();
    written.set(12).await.unwrap();
    proxy.restore();
    let latest = next_value(&mut changes).await;
    assert_eq!(latest.value, 12, "the latest, not a lost or older one");
    assert_eq!(
        latest.version,
        count.versioned().await.unwrap().unwrap().version
    );
    client.close().await;
    writer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_holds_waiters_until_it_is_removed() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let other = connect(&server).await;
    let path = unique_path("barrier");
    let barrier = DistributedBarrier::new(&client, &path).unwrap();
    assert!(
        barrier.wait_on_barrier_for(Duration::ZERO).await.unwrap(),
        "not set: no wait"
    );
    barrier.set_barrier().await.unwrap();
    barrier.set_barrier().await.unwrap();
    let waiting = DistributedBarrier::new(&other, &path).unwrap();
    assert!(
        !waiting
            .wait_on_barrier_for(Duration::from_millis(300))
            .await
            .unwrap(),
        "set: the bounded wait runs out"
    );
    let waiter = tokio::spawn(async move { waiting.wait_on_barrier().await });
    barrier.remove_barrier().await.unwrap();
    tokio::time::timeout(DEADLINE, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    barrier.remove_barrier().await.unwrap();
    client.close().await;
    other.close().await;
}

/// Five members on five sessions: nobody is through `enter` before all five entered, nobody
/// through `leave` before all five left; and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_members_enter_together_and_leave_together() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("double-barrier");
    let entered = Arc::new(tokio::sync::Mutex::new((0usize, Vec::new())));
    let left = Arc::new(tokio::sync::Mutex::new((0usize, Vec::new())));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let client = connect(&server).await;
        let path = path.clone();
        let (entered, left) = (entered.clone(), left.clone());
        tasks.push(tokio::spawn(async move {
            let barrier = DistributedDoubleBarrier::new(&client, &path, 5).unwrap();
            // Arrivals are staggered: the first must wait for the last.
            tokio::time::sleep(Duration::from_millis(50 * i)).await;
            entered.lock().await.0 += 1;
            barrier.enter().await.unwrap();
            let arrived = entered.lock().await.0;
            entered.lock().await.1.push(arrived);
            left.lock().await.0 += 1;
            barrier.leave().await.unwrap();
            let gone = left.lock().await.0;
            left.lock().await.1.push(gone);
            client.close().await;
        }));
    }
    for task in tasks {
        tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    }
    assert_eq!(
        entered.lock().await.1,
        [5; 5],
        "each saw all five arrive first"
    );
    assert_eq!(
        left.lock().await.1,
        [5; 5],
        "each saw all five start leaving first"
    );
    let observer = connect(&server).await;
    assert!(observer
        .children(&path)
        .await
        .unwrap()
        .unwrap_or_default()
        .is_empty());

    // A member whose bounded enter runs out leaves again: nothing of it stays.
    let alone = DistributedDoubleBarrier::new(&observer, &path, 2).unwrap();
    assert!(!alone.enter_for(Duration::from_millis(200)).await.unwrap());
    assert!(observer
        .children(&path)
        .await
        .unwrap()
        .unwrap_or_default()
        .is_empty());
    assert!(matches!(
        DistributedDoubleBarrier::new(&observer, &path, 0),
        Err(Error::InvalidArgument(_))
    ));
    observer.close().await;
}

/// A barrier waiter waits through a cut of its connection (its watch is set again on the
/// reconnection) and goes on once the barrier is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_waiter_survives_a_cut() {
    init_tracing();
    let server = zk_server().await;
    let setter = connect(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = crate::common::connect_with(
        &proxy.connect_string(),
        Duration::from_secs(10),
        Duration::from_secs(2),
    )
    .await;
    let path = unique_path("barrier-cut");
    let barrier = DistributedBarrier::new(&setter, &path).unwrap();
    barrier.set_barrier().await.unwrap();
    let waiting = DistributedBarrier::new(&client, &path).unwrap();
    let waiter = tokio::spawn(async move { waiting.wait_on_barrier().await });
    // The waiter has set its watch once its session's last request was the exists check
    // (the server's `cons` names each connection's last operation).
    let sid = format!("sid=0x{:x},", client.session().id().0);
    eventually_async("the waiter's watch", DEADLINE, || async {
        zk_recipes::testing::four_letter_word(&server, "cons", Duration::from_secs(5))
            .await
            .unwrap_or_default()
            .lines()
            .any(|line| line.contains(&sid) && line.contains("lop=EXIS"))
    })
    .await;
    let mut states = client.connection_states();
    proxy.cut();
    while states.next().await != Some(zk_recipes::ConnectionState::Suspended) {}
    assert!(!waiter.is_finished(), "a cut is not a removal");
    proxy.restore();
    while states.next().await != Some(zk_recipes::ConnectionState::Reconnected) {}
    assert!(!waiter.is_finished(), "a reconnection is not a removal");
    barrier.remove_barrier().await.unwrap();
    tokio::time::timeout(DEADLINE, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    client.close().await;
    setter.close().await;
}

/// A double-barrier member whose session expires while it waits to enter has left with its
/// node: its enter fails with `SessionExpired` (Curator: `ConnectionLossException`), and the
/// barrier does not count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_barrier_member_whose_session_expires_fails_its_enter() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let observer = connect(&server).await;
    let path = unique_path("double-barrier-expiry");
    let barrier = DistributedDoubleBarrier::new(&client, &path, 2).unwrap();
    let entering = tokio::spawn(async move { barrier.enter().await });
    crate::common::eventually_children(&observer, &path, 1, "the member's node").await;
    let info = client.session().zookeeper().unwrap().session().clone();
    zk_recipes::testing::expire_session(&server, &info)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(DEADLINE, entering)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Err(Error::SessionExpired)), "{outcome:?}");
    crate::common::eventually_children(&observer, &path, 0, "no member left").await;
    client.close().await;
    observer.close().await;
}
