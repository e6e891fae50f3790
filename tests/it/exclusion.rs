//! No grant without proof: the queue core (`InterProcessMutex`, `LeaderSelector`, and the
//! read/write lock's and the semaphore's grant paths) against the *state* faults that once let
//! two holders in at once, on a real ZooKeeper and, where a Curator process fits, with Apache
//! Curator 5.4 as the other holder:
//!
//! 1. the lock's parent deleted (or reaped as an empty container) and created again, so that
//!    sequence numbers start again at 0 under a handle that remembers the old ones;
//! 2. a waiting node deleted by someone else, then its predecessor released;
//! 3. concurrency inside one task (`join!`, `select!`, `for_each_concurrent`,
//!    `buffer_unordered`), and a guard moved to another task;
//!
//! and the rules that came with the fixes: a node deleted again and again ends the wait with a
//! typed error after the retry policy's re-joins, and a hold of a client that is still in use
//! (its node deleted by someone) keeps the client's next holder out until it is released.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::java::{self, JavaProcess};
use crate::common::{
    curator_lock_node, eventually, eventually_async, init_tracing, mode_letter, unique_path,
    zk_server,
};
use futures::StreamExt;
use zk_recipes::retry::RetryNTimes;
use zk_recipes::testing::{Backend, ServerOptions, TestingServer};
use zk_recipes::{
    BoxError, Client, Error, InterProcessMutex, InterProcessReadWriteLock, InterProcessSemaphoreV2,
    LeaderSelector, LeaderSelectorListener, Leadership, LockGuard,
};

const DEADLINE: Duration = Duration::from_secs(30);

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(4),
        Duration::from_secs(2),
    )
    .await
}

/// The ids of the lock's participants, in queue order.
async fn ids(mutex: &InterProcessMutex) -> Vec<String> {
    mutex
        .participants()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect()
}

async fn await_ids(mutex: &InterProcessMutex, expected: &[&str]) {
    let what = format!("participants {expected:?}");
    eventually_async(&what, DEADLINE, || async { ids(mutex).await == expected }).await;
}

/// An acquire running in a task of its own, and when it was granted.
struct BackgroundAcquire {
    task: tokio::task::JoinHandle<LockGuard>,
    granted_at: Arc<Mutex<Option<Instant>>>,
}

impl BackgroundAcquire {
    fn start(mutex: &InterProcessMutex) -> Self {
        let granted_at = Arc::new(Mutex::new(None));
        let task = tokio::spawn({
            let (mutex, granted_at) = (mutex.clone(), granted_at.clone());
            async move {
                let guard = mutex.acquire().await.unwrap();
                *granted_at.lock().unwrap() = Some(Instant::now());
                guard
            }
        });
        Self { task, granted_at }
    }

    /// When the lock was granted, if it was.
    fn granted_at(&self) -> Option<Instant> {
        *self.granted_at.lock().unwrap()
    }

    /// The guard, once granted (at most [`DEADLINE`]), and when it was granted.
    async fn granted(self, what: &str) -> (LockGuard, Instant) {
        let guard = tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap();
        let at = self.granted_at.lock().unwrap().expect("granted");
        (guard, at)
    }
}

async fn curator_worker(server: &str, lock: &str) -> JavaProcess {
    JavaProcess::worker("CuratorMutexWorker", &[server, lock, "java", "/unused"]).await
}

/// Deletes the lock's parent (now empty), as ZooKeeper's container reaper does about a
/// minute after the last child goes.
async fn delete_parent(client: &Client, lock: &str) {
    eventually_async("the lock parent to be empty", DEADLINE, || async {
        client
            .children(lock)
            .await
            .unwrap()
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    client.delete(lock, None).await.unwrap();
}

/// Scenario 1 with Curator: a handle that acquired and released once, then a parent recreated
/// by a Curator process that holds sequence 0. The handle's next node is sequence 1, exactly
/// the node that follows its own release in the old parent: it must still wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_recreated_by_curator_does_not_grant_the_next_sequence() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("recreated-curator"));
    let client = connect(&server).await;
    let mutex = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("rust");
    mutex.acquire().await.unwrap().release().await.unwrap();

    delete_parent(&client, &lock).await;
    let mut worker = curator_worker(&server, &lock).await;
    worker.send("ACQUIRE j").await;
    let java_node = worker.expect("ACQUIRED j", DEADLINE).await;
    assert!(java_node.ends_with("lock-0000000000"), "{java_node}");

    let tried = tokio::spawn({
        let mutex = mutex.clone();
        async move { mutex.try_acquire(Duration::from_secs(3)).await.unwrap() }
    });
    await_ids(&mutex, &["java-j", "rust"]).await;
    let ours = mutex.participants().await.unwrap()[1].node.clone();
    assert!(
        ours.ends_with("lock-0000000001"),
        "not the coincidence this test is about: {ours}"
    );
    let tried = tried.await.unwrap();
    assert!(
        tried.is_none(),
        "granted while Curator holds the recreated lock: {tried:?}"
    );
    // And once Curator lets go, the handle gets it, with a later token.
    let waiter = BackgroundAcquire::start(&mutex);
    await_ids(&mutex, &["java-j", "rust"]).await;
    assert!(waiter.granted_at().is_none(), "granted while Curator holds");
    worker.send("RELEASE j").await;
    worker.expect("RELEASED j", DEADLINE).await;
    let (guard, _) = waiter.granted("the grant after Curator's release").await;
    guard.release().await.unwrap();
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// Scenario 1 without the coincidence: a handle whose high-water mark is far above the new
/// parent's sequences must neither skip the new holder nor loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_parent_resets_the_high_water_mark() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("recreated-rust"));
    let a = connect(&server).await;
    let b = connect(&server).await;
    let mutex = InterProcessMutex::new(&a, &lock).unwrap().with_id("a");
    for _ in 0..5 {
        mutex.acquire().await.unwrap().release().await.unwrap();
    }
    delete_parent(&a, &lock).await;
    let other = InterProcessMutex::new(&b, &lock).unwrap().with_id("b");
    let held = other.acquire().await.unwrap();
    assert!(held.node_name().ends_with("lock-0000000000"));

    assert!(
        mutex
            .try_acquire(Duration::from_secs(2))
            .await
            .unwrap()
            .is_none(),
        "granted past the holder of the recreated parent"
    );
    let waiter = BackgroundAcquire::start(&mutex);
    await_ids(&mutex, &["b", "a"]).await;
    let token = held.fencing_token();
    held.release().await.unwrap();
    let (guard, _) = waiter.granted("the grant after b's release").await;
    assert!(guard.fencing_token() > token);
    guard.release().await.unwrap();
}

/// Scenario 1 by the real container reaper: a server that reaps empty containers every
/// 200 ms deletes the lock's parent after a release, and a holder creates it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_reaped_as_an_empty_container_is_a_new_queue() {
    init_tracing();
    let options = ServerOptions::default().container_check_interval(Duration::from_millis(200));
    let server = TestingServer::start_with_options(Backend::from_env().await.unwrap(), options)
        .await
        .expect("a server that reaps containers quickly");
    let connect_string = server.connect_string();
    let lock = format!("{}/lock", unique_path("reaped"));
    let a = connect(&connect_string).await;
    let b = connect(&connect_string).await;
    let mutex = InterProcessMutex::new(&a, &lock).unwrap().with_id("a");
    for _ in 0..3 {
        mutex.acquire().await.unwrap().release().await.unwrap();
    }
    eventually_async(
        "the reaper to delete the empty lock parent",
        DEADLINE,
        || async { a.exists(&lock).await.unwrap().is_none() },
    )
    .await;
    let other = InterProcessMutex::new(&b, &lock).unwrap().with_id("b");
    let held = other.acquire().await.unwrap();
    assert!(held.node_name().ends_with("lock-0000000000"));
    assert!(
        mutex
            .try_acquire(Duration::from_secs(2))
            .await
            .unwrap()
            .is_none(),
        "granted past the holder of the recreated parent"
    );
    held.release().await.unwrap();
    let guard = tokio::time::timeout(DEADLINE, mutex.acquire())
        .await
        .expect("the grant once the lock is free")
        .unwrap();
    guard.release().await.unwrap();
}

/// Scenario 1 under the recursive watch: a handle's watch on the lock path lingers after its
/// waiter was served, and meanwhile the parent is deleted and created again by another
/// session, which holds sequence 0 of the new parent. The watch's events show the handle's
/// next node, but they come after the parent's own events, which end the watch: the handle
/// must list, and wait for the new holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_recreated_under_a_lingering_recursive_watch_does_not_grant() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("recreated-watched"));
    let (a, b) = (connect(&server).await, connect(&server).await);
    let mutex = InterProcessMutex::new(&a, &lock).unwrap().with_id("a");
    let other = InterProcessMutex::new(&b, &lock).unwrap().with_id("b");
    // b holds, a node c of b's session follows, and a waits: a's handle watches the lock path
    // (a waiter two or more nodes deep does).
    let held = other.acquire().await.unwrap();
    let c = curator_lock_node(&b, &lock, "c").await;
    let waiter = BackgroundAcquire::start(&mutex);
    await_ids(&mutex, &["b", "c", "a"]).await;
    b.delete(&c, None).await.unwrap();
    held.release().await.unwrap();
    let (guard, _) = waiter.granted("a's grant").await;
    guard.release().await.unwrap();
    // Within the watch's linger (a second): the parent goes, and b holds sequence 0 of a new
    // one.
    b.delete(&lock, None).await.unwrap();
    let held = other.acquire().await.unwrap();
    assert!(held.node_name().ends_with("lock-0000000000"));
    let tried = mutex.try_acquire(Duration::from_secs(2)).await.unwrap();
    assert!(
        tried.is_none(),
        "granted past the holder of the recreated parent"
    );
    let waiter = BackgroundAcquire::start(&mutex);
    await_ids(&mutex, &["b", "a"]).await;
    held.release().await.unwrap();
    let (guard, _) = waiter.granted("a's grant after b's release").await;
    guard.release().await.unwrap();
}

/// A waiter behind a holder H and a node G of other sessions: G goes without ever holding
/// (its acquirer gave up) while H still holds. The waiter must go on waiting for H, then be
/// granted when H goes. With the recursive watch, G's deletion is one event of several; with
/// a watch on the predecessor alone, it is the one event, and a listing must follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_predecessor_gives_up_waits_for_the_holder() {
    for recursive_watch in [true, false] {
        predecessor_gives_up_scenario(recursive_watch).await;
    }
}

async fn predecessor_gives_up_scenario(recursive_watch: bool) {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("gives-up"));
    let (other, client) = (connect(&server).await, connect(&server).await);
    let holder = curator_lock_node(&other, &lock, "h").await;
    let gives_up = curator_lock_node(&other, &lock, "g").await;
    let mutex = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("w")
        .with_recursive_watch(recursive_watch);
    let mut waiter = BackgroundAcquire::start(&mutex);
    await_ids(&mutex, &["h", "g", "w"]).await;
    other.delete(&gives_up, None).await.unwrap();
    await_ids(&mutex, &["h", "w"]).await;
    // A grant on G's deletion would come within a round trip or two of it; with the holder
    // still there, none may come at all. (A bound on an event that must not happen, with a
    // wide margin over those round trips.)
    let early = tokio::time::timeout(Duration::from_millis(500), &mut waiter.task).await;
    assert!(
        early.is_err(),
        "granted while H holds (recursive watch: {recursive_watch})"
    );
    other.delete(&holder, None).await.unwrap();
    let (guard, _) = waiter.granted("the grant once H goes").await;
    guard.release().await.unwrap();
    other.close().await;
    client.close().await;
}

/// Scenario 2: Curator X holds, Rust W waits, Curator Y waits behind W. W's node is deleted
/// by someone else, then X releases: Y gets the lock, and W, joined again behind Y, only
/// after Y. W watches the lock path (the default): W's deletion comes as one of its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_waiting_node_is_never_granted() {
    deleted_waiting_node_scenario(true).await;
}

/// Scenario 2 with W watching only its predecessor, as Curator's waiters do (and as a waiter
/// deeper than the recursive watch's limit does): W's deletion comes from the watch on its own
/// node, or from a listing that lacks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_waiting_node_is_never_granted_without_the_recursive_watch() {
    deleted_waiting_node_scenario(false).await;
}

async fn deleted_waiting_node_scenario(recursive_watch: bool) {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("deleted-waiter"));
    let client = connect(&server).await;
    let observer = connect(&server).await;
    let mut worker = curator_worker(&server, &lock).await;
    worker.send("ACQUIRE x").await;
    worker.expect("ACQUIRED x", DEADLINE).await;

    // A second node before W: the recursive watch serves waiters two or more nodes deep.
    let e = curator_lock_node(&observer, &lock, "e").await;
    let mutex = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("w")
        .with_recursive_watch(recursive_watch);
    let waiter = BackgroundAcquire::start(&mutex);
    await_ids(&mutex, &["java-x", "e", "w"]).await;
    worker.send("ACQUIRE y").await;
    await_ids(&mutex, &["java-x", "e", "w", "java-y"]).await;

    let w_node = mutex.participants().await.unwrap()[2].node.clone();
    observer
        .delete(&format!("{lock}/{w_node}"), None)
        .await
        .unwrap();
    // W joins again, at the back: at once with the recursive watch (its watch on its own
    // node fires), or once E goes (the listing after E's deletion lacks W's node).
    observer.delete(&e, None).await.unwrap();
    await_ids(&mutex, &["java-x", "java-y", "w"]).await;

    worker.send("RELEASE x").await;
    worker.expect("ACQUIRED y", DEADLINE).await;
    let y_acquired = Instant::now();
    await_ids(&mutex, &["java-y", "w"]).await;
    assert!(waiter.granted_at().is_none(), "W was granted while Y holds");
    worker.send("RELEASE y").await;
    worker.expect("RELEASED y", DEADLINE).await;
    let (guard, granted_at) = waiter.granted("W's grant after Y").await;
    assert!(granted_at > y_acquired);
    guard.release().await.unwrap();
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// Scenario 2 with a local predecessor: tasks A and B share one handle, C (another client)
/// waits behind B. B's node is deleted, then A releases: the read of B's node behind A's
/// delete, which would prove B's grant, finds nothing, so C gets the lock and B joins again
/// behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_waiting_node_behind_a_local_holder_is_never_granted() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("deleted-local-waiter"));
    let shared = connect(&server).await;
    let other = connect(&server).await;
    let observer = connect(&server).await;
    let mutex = InterProcessMutex::new(&shared, &lock)
        .unwrap()
        .with_id("ab");
    let held = mutex.acquire().await.unwrap();
    let b = BackgroundAcquire::start(&mutex);
    await_ids(&mutex, &["ab", "ab"]).await;
    let c_mutex = InterProcessMutex::new(&other, &lock).unwrap().with_id("c");
    let c = BackgroundAcquire::start(&c_mutex);
    await_ids(&mutex, &["ab", "ab", "c"]).await;
    let b_node = mutex.participants().await.unwrap()[1].node.clone();
    observer
        .delete(&format!("{lock}/{b_node}"), None)
        .await
        .unwrap();
    await_ids(&mutex, &["ab", "c"]).await;

    held.release().await.unwrap();
    let (c_guard, c_granted) = c.granted("C's grant").await;
    // B joins again, behind C, and is not granted while C holds.
    await_ids(&mutex, &["c", "ab"]).await;
    assert!(b.granted_at().is_none(), "B was granted beside C");
    c_guard.release().await.unwrap();
    let (b_guard, b_granted) = b.granted("B's grant after C").await;
    assert!(b_granted > c_granted);
    assert_ne!(b_guard.node_name(), b_node, "granted the deleted node");
    b_guard.release().await.unwrap();
}

/// A clean-up job that deletes every node of one participant as soon as it appears: the wait
/// ends with `Error::NodeDeleted` once the retry policy allows no more re-joins (here 2), with
/// one node per attempt and no create/delete loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_deleted_again_and_again_ends_with_a_typed_error() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("deleted-again"));
    let holder_client = connect(&server).await;
    let doomed_client = Client::builder(&server)
        .session_timeout(Duration::from_secs(4))
        .retry_policy(RetryNTimes::new(2, Duration::from_millis(20)))
        .connect()
        .await
        .unwrap();
    let cleaner = connect(&server).await;
    let held = InterProcessMutex::new(&holder_client, &lock)
        .unwrap()
        .with_id("holder")
        .acquire()
        .await
        .unwrap();

    let deleted = Arc::new(AtomicUsize::new(0));
    let cleaning = tokio::spawn({
        let (cleaner, lock, deleted) = (cleaner.clone(), lock.clone(), deleted.clone());
        async move {
            let zk = cleaner.zookeeper().unwrap();
            loop {
                let (children, _, watcher) = zk.get_and_watch_children(&lock).await.unwrap();
                for child in children {
                    let path = format!("{lock}/{child}");
                    if let Ok((data, _)) = zk.get_data(&path).await {
                        if data == b"doomed" && zk.delete(&path, None).await.is_ok() {
                            deleted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                watcher.changed().await;
            }
        }
    });
    let doomed = InterProcessMutex::new(&doomed_client, &lock)
        .unwrap()
        .with_id("doomed");
    let outcome = tokio::time::timeout(DEADLINE, doomed.acquire())
        .await
        .expect("the wait to end");
    assert!(
        matches!(outcome, Err(Error::NodeDeleted { ref path }) if path.starts_with(&lock)),
        "{outcome:?}"
    );
    // The cleaner counts a delete once it is answered, which may be after the waiter heard of
    // it: wait for the count, then check that no fourth node came.
    eventually("the cleaner to count three deletes", DEADLINE, || {
        deleted.load(Ordering::SeqCst) >= 3
    })
    .await;
    cleaning.abort();
    assert_eq!(deleted.load(Ordering::SeqCst), 3, "one node per attempt");
    assert_eq!(ids(&doomed).await, ["holder"]);
    held.release().await.unwrap();
}

/// Scenario 3: futures polled concurrently in one task are separate holders, whichever way
/// they are combined; none waits forever for another of its task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_futures_in_one_task_are_separate_holders() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("one-task"));
    let client = connect(&server).await;
    let mutex = InterProcessMutex::new(&client, &lock).unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let jobs_done = Arc::new(AtomicUsize::new(0));
    let job = || {
        let (mutex, inside, overlaps, done) = (
            mutex.clone(),
            inside.clone(),
            overlaps.clone(),
            jobs_done.clone(),
        );
        async move {
            let guard = mutex.acquire().await.unwrap();
            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            // The work inside the critical section.
            tokio::time::sleep(Duration::from_millis(50)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            guard.release().await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        }
    };
    tokio::time::timeout(DEADLINE, async {
        // join!
        tokio::join!(job(), job());
        // A select! loop.
        let (mut a, mut b) = (std::pin::pin!(job()), std::pin::pin!(job()));
        let (mut a_done, mut b_done) = (false, false);
        while !(a_done && b_done) {
            tokio::select! {
                _ = &mut a, if !a_done => a_done = true,
                _ = &mut b, if !b_done => b_done = true,
            }
        }
        // for_each_concurrent and buffer_unordered.
        futures::stream::iter(0..3)
            .for_each_concurrent(3, |_| job())
            .await;
        futures::stream::iter(0..3)
            .map(|_| job())
            .buffer_unordered(3)
            .collect::<Vec<()>>()
            .await;
    })
    .await
    .expect("concurrent acquires of one task deadlocked");
    assert_eq!(jobs_done.load(Ordering::SeqCst), 10);
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two holders inside at once"
    );

    // A guard moved to another task is released there, and the lock is free at once.
    let guard = mutex.acquire().await.unwrap();
    tokio::spawn(async move { guard.release().await })
        .await
        .unwrap()
        .unwrap();
    let again = mutex.try_acquire(Duration::ZERO).await.unwrap();
    assert!(
        again.is_some(),
        "the lock is wedged after a release in another task"
    );
}

/// A hold whose node someone else deleted is lost, but its guard is still in use: another
/// acquire through the same client is not granted until that guard is dropped. (Another
/// client, like another process, cannot know, and fencing tokens are for it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_hold_keeps_its_clients_next_holder_out_until_released() {
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("deposed"));
    let client = connect(&server).await;
    let observer = connect(&server).await;
    let first = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("first");
    let second = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("second");
    let deposed: LockGuard = first.acquire().await.unwrap();
    let waiter = BackgroundAcquire::start(&second);
    await_ids(&second, &["first", "second"]).await;
    observer.delete(deposed.node_path(), None).await.unwrap();
    tokio::time::timeout(DEADLINE, deposed.lost())
        .await
        .expect("the deposed hold to see its loss");
    await_ids(&second, &["second"]).await;
    assert!(matches!(
        deposed.guarded_set_data(&lock, b"x", None).await,
        Err(Error::LockLost)
    ));
    let dropped_at = Instant::now();
    assert!(
        waiter.granted_at().is_none(),
        "granted beside a deposed hold in use"
    );
    drop(deposed);
    let (guard, granted_at) = waiter
        .granted("the grant once the deposed guard is dropped")
        .await;
    assert!(granted_at >= dropped_at);
    guard.release().await.unwrap();
}

/// What the selectors of one test did.
#[derive(Default)]
struct Turns {
    log: Mutex<Vec<(String, &'static str, Instant)>>,
    inside: AtomicUsize,
    overlaps: AtomicUsize,
}

impl Turns {
    fn record(&self, who: &str, what: &'static str) {
        self.log
            .lock()
            .unwrap()
            .push((who.to_owned(), what, Instant::now()));
    }

    fn at(&self, who: &str, what: &str) -> Option<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(w, e, _)| w == who && *e == what)
            .map(|(_, _, t)| *t)
    }

    fn started(&self, who: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, e, _)| w == who && *e == "start")
            .count()
    }
}

/// Leads until told to stop (or, if `stubborn`, never of its own accord: it ignores
/// cancellation until its future is dropped).
struct Candidate {
    id: &'static str,
    turns: Arc<Turns>,
    stop: Arc<tokio::sync::Notify>,
    stubborn: bool,
}

/// Records the end of a turn when the turn's future goes, however it goes.
struct EndOfTurn(Arc<Turns>, &'static str);

impl Drop for EndOfTurn {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::SeqCst);
        self.0.record(self.1, "end");
    }
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Candidate {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        if self.turns.inside.fetch_add(1, Ordering::SeqCst) != 0 {
            self.turns.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.turns.record(self.id, "start");
        let _end = EndOfTurn(self.turns.clone(), self.id);
        if self.stubborn {
            std::future::pending::<()>().await;
        }
        tokio::select! {
            _ = self.stop.notified() => {}
            _ = leadership.cancelled() => {}
        }
        Ok(())
    }
}

fn candidate(
    client: &Client,
    path: &str,
    id: &'static str,
    turns: &Arc<Turns>,
    stubborn: bool,
) -> (LeaderSelector, Arc<tokio::sync::Notify>) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let selector = LeaderSelector::new(
        client,
        path,
        Candidate {
            id,
            turns: turns.clone(),
            stop: stop.clone(),
            stubborn,
        },
    )
    .unwrap()
    .with_id(id)
    .cancel_grace(Duration::from_millis(1500));
    (selector, stop)
}

async fn await_selector_ids(selector: &LeaderSelector, expected: &[&str]) {
    let what = format!("candidates {expected:?}");
    eventually_async(&what, DEADLINE, || async {
        let ids: Vec<String> = selector
            .participants()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        ids == expected
    })
    .await;
}

/// Scenario 2 for the selector: a waiting candidate whose node is deleted requeues behind the
/// others, and does not lead beside the next leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_whose_waiting_node_is_deleted_requeues() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-deleted");
    let turns = Arc::new(Turns::default());
    let (ca, cw, cc) = (
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    );
    let observer = connect(&server).await;
    let (a, stop_a) = candidate(&ca, &path, "a", &turns, false);
    let (w, stop_w) = candidate(&cw, &path, "w", &turns, false);
    let (c, stop_c) = candidate(&cc, &path, "c", &turns, false);
    a.start().unwrap();
    eventually("a to lead", DEADLINE, || turns.started("a") == 1).await;
    w.start().unwrap();
    await_selector_ids(&a, &["a", "w"]).await;
    c.start().unwrap();
    await_selector_ids(&a, &["a", "w", "c"]).await;

    let w_node = a.participants().await.unwrap()[1].node.clone();
    observer
        .delete(&format!("{path}/{w_node}"), None)
        .await
        .unwrap();
    await_selector_ids(&a, &["a", "c", "w"]).await;
    stop_a.notify_one();
    eventually("c to lead", DEADLINE, || turns.started("c") == 1).await;
    await_selector_ids(&a, &["c", "w"]).await;
    assert_eq!(turns.started("w"), 0, "w led beside c");
    stop_c.notify_one();
    eventually("w to lead", DEADLINE, || turns.started("w") == 1).await;
    stop_w.notify_one();
    for selector in [a, w, c] {
        selector.close().await.unwrap();
    }
    assert_eq!(turns.overlaps.load(Ordering::SeqCst), 0);
}

/// A leader whose node is deleted by someone else is deposed, but its `take_leadership` may
/// run on for the grace period: the next candidate of the same client does not start before
/// it has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_of_the_same_client_ends_before_the_next_starts() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-deposed");
    let turns = Arc::new(Turns::default());
    let client = connect(&server).await;
    let observer = connect(&server).await;
    let (first, _) = candidate(&client, &path, "first", &turns, true);
    let (next, stop_next) = candidate(&client, &path, "next", &turns, false);
    first.start().unwrap();
    eventually("first to lead", DEADLINE, || turns.started("first") == 1).await;
    next.start().unwrap();
    await_selector_ids(&first, &["first", "next"]).await;

    let first_node = first.participants().await.unwrap()[0].node.clone();
    observer
        .delete(&format!("{path}/{first_node}"), None)
        .await
        .unwrap();
    eventually("next to lead", DEADLINE, || turns.started("next") == 1).await;
    let ended = turns.at("first", "end").expect("first's turn ended");
    let started = turns.at("next", "start").unwrap();
    assert!(
        started >= ended,
        "next started {:?} before the deposed leader's turn ended",
        ended - started
    );
    assert_eq!(turns.overlaps.load(Ordering::SeqCst), 0);
    stop_next.notify_one();
    first.close().await.unwrap();
    next.close().await.unwrap();
}

/// The read/write lock's participants in queue order, as `<id>:<R|W>`.
async fn read_write_queue(lock: &InterProcessReadWriteLock) -> Vec<String> {
    lock.participants()
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{}:{}", p.id, mode_letter(p.mode)))
        .collect()
}

async fn await_read_write_queue(lock: &InterProcessReadWriteLock, expected: &[&str]) {
    let what = format!("the read/write queue {expected:?}");
    eventually_async(&what, DEADLINE, || async {
        read_write_queue(lock).await == expected
    })
    .await;
}

/// Scenario 2 on the read/write lock, through the listing that lets waiting readers in
/// together: writer W holds; readers R1 and R2 of one client wait, then writer W2. R2's node
/// is deleted by someone else (R2 is not the waiter the driver serves, so no watch of its own
/// sees it go); when W releases, the listing that grants R1 must not grant R2, which joins
/// again behind W2 and waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_waiting_reader_is_never_granted() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/lock", unique_path("deleted-reader"));
    let (w_client, r_client, w2_client, observer) = (
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    );
    let w = InterProcessReadWriteLock::new(&w_client, &path)
        .unwrap()
        .with_id("w");
    let readers = InterProcessReadWriteLock::new(&r_client, &path)
        .unwrap()
        .with_id("r");
    let w2 = InterProcessReadWriteLock::new(&w2_client, &path)
        .unwrap()
        .with_id("w2");
    let write = w.write_lock().acquire().await.unwrap();
    let r1 = BackgroundAcquire::start(readers.read_lock());
    await_read_write_queue(&w, &["w:W", "r:R"]).await;
    let r2 = BackgroundAcquire::start(readers.read_lock());
    await_read_write_queue(&w, &["w:W", "r:R", "r:R"]).await;
    let second_writer = BackgroundAcquire::start(w2.write_lock());
    await_read_write_queue(&w, &["w:W", "r:R", "r:R", "w2:W"]).await;

    let r2_node = w.participants().await.unwrap()[2].node.clone();
    observer
        .delete(&format!("{path}/{r2_node}"), None)
        .await
        .unwrap();
    await_read_write_queue(&w, &["w:W", "r:R", "w2:W"]).await;

    write.release().await.unwrap();
    let (reader_guard, _) = r1.granted("R1's grant").await;
    // R2 joins again, behind W2, and is not granted beside it.
    await_read_write_queue(&w, &["r:R", "w2:W", "r:R"]).await;
    assert!(
        r2.granted_at().is_none(),
        "R2 granted from its deleted node, or past a waiting writer"
    );
    assert!(
        second_writer.granted_at().is_none(),
        "a writer beside a reader"
    );
    reader_guard.release().await.unwrap();
    let (w2_guard, w2_at) = second_writer.granted("the second writer").await;
    assert!(r2.granted_at().is_none(), "a reader beside a writer");
    w2_guard.release().await.unwrap();
    let (last, last_at) = r2.granted("the rejoined reader").await;
    assert!(last_at > w2_at);
    assert_ne!(last.node_name(), r2_node, "granted the deleted node");
    last.release().await.unwrap();
}

/// Scenario 1 on the read/write lock: a client that used the lock before its parent was
/// deleted and created again must not trust its old sequences, for its readers or its
/// writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_parent_resets_a_read_write_lock() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/lock", unique_path("recreated-read-write"));
    let (a, b) = (connect(&server).await, connect(&server).await);
    let lock = InterProcessReadWriteLock::new(&a, &path)
        .unwrap()
        .with_id("a");
    for _ in 0..3 {
        lock.write_lock()
            .acquire()
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        lock.read_lock()
            .acquire()
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    }
    delete_parent(&a, &path).await;
    let other = InterProcessReadWriteLock::new(&b, &path)
        .unwrap()
        .with_id("b");
    let held = other.write_lock().acquire().await.unwrap();
    assert!(held.node_name().ends_with("__WRIT__0000000000"));
    for half in [lock.read_lock(), lock.write_lock()] {
        assert!(
            half.try_acquire(Duration::from_secs(1))
                .await
                .unwrap()
                .is_none(),
            "granted beside the writer of the recreated parent"
        );
    }
    let reader = BackgroundAcquire::start(lock.read_lock());
    await_read_write_queue(&lock, &["b:W", "a:R"]).await;
    let token = held.fencing_token();
    held.release().await.unwrap();
    let (guard, _) = reader.granted("the reader after b's release").await;
    assert!(guard.fencing_token() > token);
    guard.release().await.unwrap();
}

/// Scenario 3 on the new locks: read and write acquires of one handle polled together in one
/// task (`join!`, a `select!` loop) never let a writer in beside anyone, and two acquires of a
/// semaphore of one lease in one task never both hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_and_leases_of_one_task_are_separate_holders() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("one-task-read-write");
    let client = connect(&server).await;
    let lock = InterProcessReadWriteLock::new(&client, &format!("{base}/lock")).unwrap();
    let readers = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let job = |write: bool| {
        let (lock, readers, writers, overlaps) = (
            lock.clone(),
            readers.clone(),
            writers.clone(),
            overlaps.clone(),
        );
        async move {
            let half = if write {
                lock.write_lock()
            } else {
                lock.read_lock()
            };
            let guard = half.acquire().await.unwrap();
            let (mine, others) = if write {
                (&writers, &readers)
            } else {
                (&readers, &writers)
            };
            let before = mine.fetch_add(1, Ordering::SeqCst);
            if others.load(Ordering::SeqCst) > 0 || (write && before > 0) {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            mine.fetch_sub(1, Ordering::SeqCst);
            guard.release().await.unwrap();
        }
    };
    tokio::time::timeout(DEADLINE, async {
        tokio::join!(job(false), job(true), job(false), job(true), job(false));
        let (mut a, mut b, mut c) = (
            std::pin::pin!(job(true)),
            std::pin::pin!(job(false)),
            std::pin::pin!(job(true)),
        );
        let (mut a_done, mut b_done, mut c_done) = (false, false, false);
        while !(a_done && b_done && c_done) {
            tokio::select! {
                _ = &mut a, if !a_done => a_done = true,
                _ = &mut b, if !b_done => b_done = true,
                _ = &mut c, if !c_done => c_done = true,
            }
        }
    })
    .await
    .expect("read and write acquires of one task deadlocked");
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "a writer beside another holder"
    );

    let semaphore = InterProcessSemaphoreV2::new(&client, &format!("{base}/semaphore"), 1).unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let lease_job = || {
        let (semaphore, inside) = (semaphore.clone(), inside.clone());
        async move {
            let lease = semaphore.acquire().await.unwrap();
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two leases of one"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            lease.release().await.unwrap();
        }
    };
    tokio::time::timeout(DEADLINE, async {
        tokio::join!(lease_job(), lease_job(), lease_job());
    })
    .await
    .expect("leases of one task deadlocked");
}

/// Leases of a semaphore of two, acquired by futures of two handles joined in one task: a
/// count that leaves room makes the handle's next acquire release the internal lock right
/// behind its own count (this test runs that path), so that acquires of one task overlap at
/// the internal lock. Never more than two hold at once, and two do at times (else the test
/// proves nothing). A count behind an early release that comes out full is the case of
/// `semaphore::a_count_behind_a_lock_released_ahead_that_does_not_fit_waits_under_the_lock`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_one_task_never_exceed_the_limit_when_the_lock_is_released_ahead() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("one-task-leases");
    let client = connect(&server).await;
    const MAX: usize = 2;
    // Handles share nothing: each remembers its own last count.
    let handles = [
        InterProcessSemaphoreV2::new(&client, &path, MAX as u32).unwrap(),
        InterProcessSemaphoreV2::new(&client, &path, MAX as u32).unwrap(),
    ];
    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let lease_job = |semaphore: &InterProcessSemaphoreV2| {
        let (semaphore, inside, most_inside) =
            (semaphore.clone(), inside.clone(), most_inside.clone());
        async move {
            for _ in 0..4 {
                let lease = semaphore.acquire().await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most_inside.fetch_max(now, Ordering::SeqCst);
                assert!(now <= MAX, "{now} leases of {MAX}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lease.release().await.unwrap();
            }
        }
    };
    tokio::time::timeout(DEADLINE, async {
        let [first, second] = &handles;
        tokio::join!(
            lease_job(first),
            lease_job(second),
            lease_job(first),
            lease_job(second)
        );
    })
    .await
    .expect("leases of one task deadlocked");
    assert_eq!(
        most_inside.load(Ordering::SeqCst),
        MAX,
        "the semaphore was never full: the test proves nothing"
    );
}
