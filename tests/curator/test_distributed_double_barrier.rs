//! Curator's `TestDistributedDoubleBarrier` (`barriers/TestDistributedDoubleBarrier.java`),
//! ported to [`DistributedDoubleBarrier`].
//!
//! Curator's `enter(time, unit)` and `leave(time, unit)` are
//! [`enter_for`](DistributedDoubleBarrier::enter_for) and
//! [`leave_for`](DistributedDoubleBarrier::leave_for); its `CountDownLatch`es, which the
//! members count down and wait on, are tokio [`Barrier`]s, waited on under a deadline. Curator's
//! tests share `/barrier` on a fresh server per test; here each test runs under a
//! [`unique_path`] on the shared server. A member whose timed enter runs out takes its node
//! away again in this crate (Curator leaves it); no test here lets an enter run out.
//!
//! Not ported: none. `testSpuriousWakeup` is on Curator's master after 5.9.0 (it checks that
//! a Java `notifyAll` on the barrier object does not let a member in alone); it is ported with
//! the Rust counterpart of a spurious wakeup, a future polled again with nothing changed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Barrier;
use zk_recipes::barriers::DistributedDoubleBarrier;
use zk_recipes::Client;

use crate::common::{
    children_of, init_tracing, join_within, unique_path, zk_server, POLL_INTERVAL,
};
use crate::nodes_base::{client, DEADLINE};

/// Curator's `QTY`.
const QTY: usize = 5;

fn double_barrier(client: &Client, path: &str, member_qty: usize) -> DistributedDoubleBarrier {
    DistributedDoubleBarrier::new(client, path, member_qty).expect("double barrier")
}

/// Waits on `latch` (Curator's `timing.awaitLatch`), within [`DEADLINE`].
async fn await_latch(latch: &Barrier, what: &str) {
    tokio::time::timeout(DEADLINE, latch.wait())
        .await
        .unwrap_or_else(|_| panic!("{what} in time"));
}

/// What Curator's `testBasic` and `testMultiClient` share: [`QTY`] members (member `i` on
/// `clients[i % clients.len()]`) enter with `enter_for`, count themselves in (current and
/// highest count), wait for each other, check that all are in, leave with `leave_for(leave)`,
/// count themselves out and wait for each other again. At the end no one is counted in and the
/// highest count was [`QTY`]. Added: each member checks, once through `enter_for`, that all
/// [`QTY`] had begun entering, and once through `leave_for`, that all had begun leaving; and
/// nothing is left under the barrier's path. With `close_clients`, each member closes its
/// client when done (Curator's `testMultiClient`).
async fn enter_and_leave(clients: Vec<Client>, path: &str, leave: Duration, close_clients: bool) {
    let counts = Arc::new(Mutex::new((0usize, 0usize))); // (count, max)
    let entering = Arc::new(AtomicUsize::new(0));
    let leaving = Arc::new(AtomicUsize::new(0));
    let post_enter = Arc::new(Barrier::new(QTY));
    let post_leave = Arc::new(Barrier::new(QTY));
    let mut members = Vec::new();
    for i in 0..QTY {
        let client = clients[i % clients.len()].clone();
        let path = path.to_owned();
        let (counts, entering, leaving) = (counts.clone(), entering.clone(), leaving.clone());
        let (post_enter, post_leave) = (post_enter.clone(), post_leave.clone());
        members.push(tokio::spawn(async move {
            let barrier = double_barrier(&client, &path, QTY);
            entering.fetch_add(1, Ordering::SeqCst);
            assert!(barrier.enter_for(DEADLINE).await.expect("enter_for"));
            assert_eq!(
                entering.load(Ordering::SeqCst),
                QTY,
                "through before all began entering"
            );
            {
                let mut counts = counts.lock().unwrap();
                counts.0 += 1;
                counts.1 = counts.1.max(counts.0);
            }
            await_latch(&post_enter, "every member through enter").await;
            assert_eq!(counts.lock().unwrap().0, QTY);

            leaving.fetch_add(1, Ordering::SeqCst);
            assert!(barrier.leave_for(leave).await.expect("leave_for"));
            assert_eq!(
                leaving.load(Ordering::SeqCst),
                QTY,
                "through before all began leaving"
            );
            counts.lock().unwrap().0 -= 1;
            await_latch(&post_leave, "every member through leave").await;
            if close_clients {
                client.close().await;
            }
        }));
    }
    for member in members {
        join_within(member, DEADLINE * 2, "a member").await;
    }
    assert_eq!(*counts.lock().unwrap(), (0, QTY));
    let observer = client(&zk_server().await).await;
    assert!(children_of(&observer, path).await.is_empty());
    observer.close().await;
}

/// Curator: `TestDistributedDoubleBarrier.testMultiClient`.
///
/// [`QTY`] members, each on a client of its own, enter, wait for each other, leave and wait
/// for each other; see [`enter_and_leave`]. Curator's members wait on the enter latch a second
/// time after leaving (already open: a slip for the leave latch, which `testBasic` uses); the
/// port waits on the leave latch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_multi_client() {
    init_tracing();
    let server = zk_server().await;
    let mut clients = Vec::new();
    for _ in 0..QTY {
        clients.push(client(&server).await);
    }
    let path = unique_path("double-barrier-multi");
    enter_and_leave(clients, &path, DEADLINE, true).await;
}

/// Curator: `TestDistributedDoubleBarrier.testSpuriousWakeup` (Curator's master, after 5.9.0).
///
/// Member 1 of a barrier of two enters (up to [`DEADLINE`]) and waits. Curator then wakes its
/// thread spuriously (ten `notifyAll`s on the barrier object, 20 ms apart), and member 2's
/// enter must then let both in. A Java monitor's spurious wakeup has no counterpart; the Rust
/// one is a future polled with nothing changed: member 1's enter future is driven until its
/// node exists, then polled ten times more, 20 ms apart, and must stay pending each time (it
/// must not take a wakeup for a full barrier). Then member 2, on another client, enters, and
/// both enters return `true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_spurious_wakeup() {
    init_tracing();
    let server = zk_server().await;
    let client1 = client(&server).await;
    let client2 = client(&server).await;
    let observer = client(&server).await;
    let path = unique_path("double-barrier-spurious");
    let barrier1 = double_barrier(&client1, &path, 2);
    let enter1 = barrier1.enter_for(DEADLINE);
    tokio::pin!(enter1);

    let started = std::time::Instant::now();
    loop {
        assert!(
            futures::poll!(enter1.as_mut()).is_pending(),
            "member 1 entered alone"
        );
        if children_of(&observer, &path).await.len() == 1 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "member 1's node in time");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    // Wake up spuriously.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await; // Curator's pace
        assert!(
            futures::poll!(enter1.as_mut()).is_pending(),
            "member 1 entered alone"
        );
    }

    let barrier2 = double_barrier(&client2, &path, 2);
    let (entered1, entered2) = tokio::time::timeout(
        DEADLINE,
        futures::future::join(enter1, barrier2.enter_for(DEADLINE)),
    )
    .await
    .expect("both enters to return in time");
    assert!(entered1.expect("member 1's enter"));
    assert!(entered2.expect("member 2's enter"));
    client1.close().await;
    client2.close().await;
    observer.close().await;
}

/// Curator: `TestDistributedDoubleBarrier.testOverSubscribed`.
///
/// [`QTY`] + 1 members of a barrier of [`QTY`], on one client, all enter and all leave
/// (`true` each). Curator holds every member between making its node and reading the
/// children (an overridden `getChildrenForEntering`, a Java-only hook), so that each sees all
/// [`QTY`] + 1 nodes. Here there is no such hook: a member that comes after the barrier is full
/// finds its `ready` node and is let in at once. So that all [`QTY`] + 1 are in the barrier
/// together before any leaves, as in Curator, the members wait for each other between entering
/// and leaving; an observer then sees [`QTY`] + 1 member nodes and `ready`. Added: nothing is
/// left once all have left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_over_subscribed() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let observer = self::client(&server).await;
    let path = unique_path("double-barrier-over");
    let all_in = Arc::new(Barrier::new(QTY + 2)); // the members and the test
    let go = Arc::new(Barrier::new(QTY + 2));
    let mut members = Vec::new();
    for _ in 0..QTY + 1 {
        let (client, path) = (client.clone(), path.clone());
        let (all_in, go) = (all_in.clone(), go.clone());
        members.push(tokio::spawn(async move {
            let barrier = double_barrier(&client, &path, QTY);
            assert!(barrier.enter_for(DEADLINE).await.expect("enter_for"));
            await_latch(&all_in, "every member in").await;
            await_latch(&go, "the observer's look").await;
            assert!(barrier.leave_for(DEADLINE).await.expect("leave_for"));
        }));
    }
    await_latch(&all_in, "every member in").await;
    let mut children = children_of(&observer, &path).await;
    children.sort();
    assert_eq!(children.len(), QTY + 2, "{children:?}");
    assert!(
        children.iter().any(|child| child == "ready"),
        "{children:?}"
    );
    await_latch(&go, "the members").await;
    for member in members {
        join_within(member, DEADLINE * 2, "a member").await;
    }
    assert!(children_of(&observer, &path).await.is_empty());
    client.close().await;
    observer.close().await;
}

/// Curator: `TestDistributedDoubleBarrier.testBasic`.
///
/// [`QTY`] members on one client enter, wait for each other, leave (within 10 s) and wait for
/// each other; see [`enter_and_leave`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let path = unique_path("double-barrier-basic");
    enter_and_leave(vec![client.clone()], &path, Duration::from_secs(10), false).await;
    client.close().await;
}
