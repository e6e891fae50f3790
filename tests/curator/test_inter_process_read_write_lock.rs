//! Curator's `TestInterProcessReadWriteLock` (`locks/`), ported to
//! [`InterProcessReadWriteLock`], and `TestInterProcessReadWriteLockBase.testWriterAgainstConstantReaders`.
//!
//! Curator's `readLock()`/`writeLock()` are [`InterProcessReadWriteLock::read_lock`] and
//! [`write_lock`](InterProcessReadWriteLock::write_lock), both [`InterProcessMutex`]es as in
//! Curator; `getParticipantNodes()` is `participants()`; `acquire(time, unit)` is
//! `try_acquire`. Curator's lock node data (the `lockData` bytes) is the participant id
//! ([`InterProcessReadWriteLock::with_id`]). Every test has a lock path of its own (Curator:
//! `/lock`), since the tests share a server.
//!
//! Reentrancy and downgrades are explicit here (see the suite's docs and the read/write lock's
//! "Downgrade, never upgrade"): Curator's thread that holds the write lock gets the read lock
//! at once; here that is [`LockGuard::downgrade`], and a plain read *acquire* while the write
//! lock is held waits, whichever task makes it.
//!
//! `TestInterProcessReadWriteLockBase` is an abstract class of Curator's unmerged `CURATOR-88`
//! branch (a read/write lock on the semaphore, never released); its
//! `testWriterAgainstConstantReaders` is ported here for this crate's read/write lock, and its
//! `testBasic` is the same test as `TestInterProcessReadWriteLock.testBasic`, ported once.
//!
//! Not ported: none.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use zk_recipes::retry::RetryOneTime;
use zk_recipes::testing::expire_session;
use zk_recipes::{
    Client, Error, InterProcessMutex, InterProcessReadWriteLock, LockGuard, LockMode,
};

use crate::common::{
    children_of, eventually_async, init_tracing, join_within, unique_path, zk_server,
};

/// Every wait of these tests ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long a test looks to show that something does NOT happen.
const QUIET: Duration = Duration::from_millis(300);

/// A client as Curator's tests make them: `newClient(connectString, new RetryOneTime(1))`.
async fn client(connect_string: &str) -> Client {
    Client::builder(connect_string)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(5))
        .retry_policy(RetryOneTime::new(Duration::from_millis(1)))
        .connect()
        .await
        .expect("connect")
}

fn rw_lock(client: &Client, path: &str) -> InterProcessReadWriteLock {
    InterProcessReadWriteLock::new(client, path).expect("read/write lock")
}

/// Curator: `TestInterProcessReadWriteLock.testGetParticipantNodes`.
///
/// Readers take the read lock and hold it; once they all do, writers queue for the write
/// lock; the read lock's participants are the readers and the write lock's the writers.
/// Shrunk: 6 readers and 3 writers (Curator: 20 and 8). Curator counts a writer before its
/// acquire and then lists at once; the port waits, under a deadline, until the writers' nodes
/// are all in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_get_participant_nodes() {
    const READERS: usize = 6;
    const WRITERS: usize = 3;
    init_tracing();
    let client = client(&zk_server().await).await;
    let lock = rw_lock(&client, &unique_path("rw-participants"));
    let (exit_tx, exit_rx) = watch::channel(false);
    let readers_in = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for _ in 0..READERS {
        let lock = lock.clone();
        let readers_in = readers_in.clone();
        let mut exit = exit_rx.clone();
        tasks.push(tokio::spawn(async move {
            let guard = lock.read_lock().acquire().await.expect("read acquire");
            readers_in.fetch_add(1, Ordering::SeqCst);
            exit.wait_for(|exit| *exit).await.expect("exit signal");
            guard.release().await.expect("read release");
        }));
    }
    eventually_async("every reader to hold the read lock", DEADLINE, || {
        let readers_in = readers_in.clone();
        async move { readers_in.load(Ordering::SeqCst) == READERS }
    })
    .await;
    for _ in 0..WRITERS {
        let lock = lock.clone();
        let mut exit = exit_rx.clone();
        tasks.push(tokio::spawn(async move {
            let guard = lock.write_lock().acquire().await.expect("write acquire");
            exit.wait_for(|exit| *exit).await.expect("exit signal");
            guard.release().await.expect("write release");
        }));
    }
    eventually_async("every writer to queue", DEADLINE, || async {
        lock.write_lock()
            .participants()
            .await
            .expect("participants")
            .len()
            == WRITERS
    })
    .await;

    let readers = lock.read_lock().participants().await.expect("participants");
    let writers = lock
        .write_lock()
        .participants()
        .await
        .expect("participants");
    assert_eq!(readers.len(), READERS);
    assert_eq!(writers.len(), WRITERS);
    assert!(readers
        .iter()
        .all(|p| p.mode == LockMode::Shared && p.is_leader));
    assert!(writers
        .iter()
        .all(|p| p.mode == LockMode::Exclusive && !p.is_leader));

    exit_tx.send(true).expect("tasks listen");
    for task in tasks {
        join_within(task, DEADLINE, "every reader and writer").await;
    }
    assert!(children_of(&client, lock.path()).await.is_empty());
    client.close().await;
}

/// Curator: `TestInterProcessReadWriteLock.testThatUpgradingIsDisallowed`.
///
/// While the read lock is held, the write lock is not granted (Curator: in 5 s; here 1 s).
/// The port also checks the explicit form: `downgrade()` on a read guard is
/// `Error::NotDowngradable` (the crate has no upgrade).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_that_upgrading_is_disallowed() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let lock = rw_lock(&client, &unique_path("rw-upgrade"));
    let read = lock.read_lock().acquire().await.expect("read acquire");
    assert!(lock
        .write_lock()
        .try_acquire(Duration::from_secs(1))
        .await
        .expect("try_acquire")
        .is_none());
    assert!(matches!(
        read.downgrade().await,
        Err(Error::NotDowngradable)
    ));
    read.release().await.expect("release");
    assert!(children_of(&client, lock.path()).await.is_empty());
    client.close().await;
}

/// Curator: `TestInterProcessReadWriteLock.testThatDowngradingRespectsThreads`.
///
/// One task holds the write lock; another task's read acquire is not granted (Curator: in
/// 5 s; here 500 ms): only the holder may downgrade, and here only through its guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_that_downgrading_respects_threads() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let lock = rw_lock(&client, &unique_path("rw-threads"));
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let t1 = {
        let lock = lock.clone();
        tokio::spawn(async move {
            let guard = lock.write_lock().acquire().await.expect("write acquire");
            let _ = locked_tx.send(());
            let _ = release_rx.await;
            guard.release().await.expect("release");
        })
    };
    let t2 = {
        let lock = lock.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(10), locked_rx)
                .await
                .expect("the writer holds")
                .expect("the writer is alive");
            lock.read_lock()
                .try_acquire(Duration::from_millis(500))
                .await
                .expect("try_acquire")
                .is_none()
        })
    };
    assert!(
        join_within(t2, DEADLINE, "the reader").await,
        "another task got the read lock while the write lock was held"
    );
    release_tx.send(()).expect("the writer is alive");
    join_within(t1, DEADLINE, "the writer").await;
    client.close().await;
}

/// Curator: `TestInterProcessReadWriteLock.testDowngrading`.
///
/// The holder of the write lock takes the read lock (Curator: `readLock().acquire(5 s)`,
/// granted at once to the thread that holds the write lock), releases the write lock, and
/// still holds the read lock. Adapted: that is `downgrade()` on the write guard, the explicit
/// form; a plain read acquire made while the write lock is held waits, whichever task makes
/// it (documented), which the port checks too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_downgrading() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let lock = rw_lock(&client, &unique_path("rw-downgrade"));
    let write = lock.write_lock().acquire().await.expect("write acquire");
    assert!(
        lock.read_lock()
            .try_acquire(QUIET)
            .await
            .expect("try_acquire")
            .is_none(),
        "a plain read acquire waits for the write hold"
    );
    let read = tokio::time::timeout(Duration::from_secs(5), write.downgrade())
        .await
        .expect("the downgrade within 5 s")
        .expect("downgrade");
    write.release().await.expect("write release");
    assert!(!read.is_lost());
    assert!(read.verify().await, "the read hold stays");
    let participants = lock.participants().await.expect("participants");
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].mode, LockMode::Shared);
    read.release().await.expect("read release");
    assert!(children_of(&client, lock.path()).await.is_empty());
    client.close().await;
}

/// Curator: `TestInterProcessReadWriteLock.testContendingDowngrading` (CURATOR-276).
///
/// A write holder; a second lock's write acquire queues behind it (Curator sleeps 20 ms to let
/// it; the port waits until its node is in the queue); the holder downgrades and releases its
/// write lock; the queued writer must still wait (Curator looks for 20 ms; here 300 ms),
/// since the read hold is ahead of it. Downgrading is `downgrade()` (see
/// `test_downgrading`). The port also checks that the writer gets the lock once the read hold
/// goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_contending_downgrading() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let path = unique_path("rw-contending");
    let lock1 = rw_lock(&client, &path);
    let write = lock1.write_lock().acquire().await.expect("write acquire");

    let lock2 = rw_lock(&client, &path);
    let mut write_acquire = {
        let lock2 = lock2.clone();
        tokio::spawn(async move { lock2.write_lock().acquire().await.expect("write acquire 2") })
    };
    eventually_async("the second writer to queue", DEADLINE, || async {
        lock1
            .write_lock()
            .participants()
            .await
            .expect("participants")
            .len()
            == 2
    })
    .await;

    let read = tokio::time::timeout(Duration::from_secs(5), write.downgrade())
        .await
        .expect("the downgrade within 5 s")
        .expect("downgrade");
    write.release().await.expect("write release");
    assert!(
        tokio::time::timeout(QUIET, &mut write_acquire)
            .await
            .is_err(),
        "the queued writer got in while the read hold lasts"
    );
    read.release().await.expect("read release");
    let second = join_within(write_acquire, DEADLINE, "the second writer's grant").await;
    second.release().await.expect("release");
    client.close().await;
}

/// Tracks how many holds overlap, as Curator's `doLocking` does.
#[derive(Default)]
struct Concurrency {
    current: usize,
    max: usize,
}

/// Curator's `doLocking`: acquire (within 10 s), count the concurrent holds (at most
/// `max_allowed`), hold 1 to 9 ms, and release. The count is lowered before the release, under
/// the same lock, as Curator's `synchronized` block does.
async fn do_locking(
    mutex: &InterProcessMutex,
    concurrency: &Mutex<Concurrency>,
    hold: Duration,
    max_allowed: usize,
) {
    let guard: LockGuard = mutex
        .try_acquire(Duration::from_secs(10))
        .await
        .expect("try_acquire")
        .expect("the lock within 10 s");
    let local = {
        let mut c = concurrency.lock().unwrap();
        c.current += 1;
        c.max = c.max.max(c.current);
        c.current
    };
    assert!(local <= max_allowed, "{local} concurrent holds");
    tokio::time::sleep(hold).await;
    concurrency.lock().unwrap().current -= 1;
    guard.release().await.expect("release");
}

/// Curator: `TestInterProcessReadWriteLock.testBasic` (and `TestInterProcessReadWriteLockBase.testBasic`).
///
/// Clients, each with its own lock on one path, take the read or the write lock at random
/// (10 % writes) and hold it for 1 to 9 ms; a write hold is alone, read holds overlap.
/// Shrunk: 4 clients x 25 iterations (Curator: 8 x 100). The choice of lock is drawn from a
/// seeded generator, with each client's first iteration a write, so that the test has writes
/// to check whatever the draw (Curator's 800 draws all but guarantee some).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    const CONCURRENCY: usize = 4;
    const ITERATIONS: usize = 25;
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-basic");
    let concurrency = Arc::new(Mutex::new(Concurrency::default()));
    let writes = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for i in 0..CONCURRENCY {
        let server = server.clone();
        let path = path.clone();
        let concurrency = concurrency.clone();
        let writes = writes.clone();
        let reads = reads.clone();
        tasks.push(tokio::spawn(async move {
            let client = client(&server).await;
            let lock = rw_lock(&client, &path);
            // A small linear congruential generator, seeded per client.
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
            let mut next = move |bound: u64| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 33) % bound
            };
            for iteration in 0..ITERATIONS {
                let hold = Duration::from_millis(next(9) + 1);
                if iteration == 0 || next(100) < 10 {
                    do_locking(lock.write_lock(), &concurrency, hold, 1).await;
                    writes.fetch_add(1, Ordering::SeqCst);
                } else {
                    do_locking(lock.read_lock(), &concurrency, hold, usize::MAX).await;
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            }
            client.close().await;
        }));
    }
    for task in tasks {
        join_within(task, Duration::from_secs(60), "every client").await;
    }
    let max = concurrency.lock().unwrap().max;
    assert!(writes.load(Ordering::SeqCst) > 0);
    assert!(reads.load(Ordering::SeqCst) > 0);
    assert!(max > 1, "read holds overlapped (max {max})");
}

/// Curator: `TestInterProcessReadWriteLock.testSetNodeData`.
///
/// A lock made with node data `[1, 2, 3, 4]` writes it into its write node. Curator's data is
/// bytes given to the constructor (copied, so that a later change by the caller does not
/// reach the node); here it is the participant id, a `String` owned by the lock, so the
/// caller cannot change it afterwards and that half of the test has no counterpart. The bytes
/// 1 to 4 are valid UTF-8, so the same node data is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_set_node_data() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let path = unique_path("rw-node-data");
    let node_data: Vec<u8> = vec![1, 2, 3, 4];
    let lock = rw_lock(&client, &path).with_id(String::from_utf8(node_data.clone()).unwrap());
    let guard = lock.write_lock().acquire().await.expect("write acquire");
    let children = children_of(&client, &path).await;
    assert_eq!(children.len(), 1);
    let (data, _) = client
        .get_data(&format!("{path}/{}", children[0]))
        .await
        .expect("get_data")
        .expect("the write node");
    assert_eq!(data, node_data);
    guard.release().await.expect("release");
    client.close().await;
}

/// Curator: `TestInterProcessReadWriteLock.testLockPath`.
///
/// Client 1 holds the write lock; its session is killed (Curator: `KillSession`; here the
/// kit's `expire_session`); client 2 then gets the read lock, and client 1's write node
/// (Curator: `getLockPath()`, here the guard's `node_path()`) is gone. Both release.
/// Curator's release of the dead write hold returns quietly; here the lost guard's release is
/// `Ok` too (its node went with the session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_lock_path() {
    init_tracing();
    let server = zk_server().await;
    let client1 = client(&server).await;
    let client2 = client(&server).await;
    let path = unique_path("rw-lock-path");
    let lock1 = rw_lock(&client1, &path);
    let lock2 = rw_lock(&client2, &path);
    let write = lock1.write_lock().acquire().await.expect("write acquire");
    let info = client1
        .session()
        .zookeeper()
        .expect("a session")
        .session()
        .clone();
    expire_session(&server, &info).await.expect("expire");
    let read = tokio::time::timeout(DEADLINE, lock2.read_lock().acquire())
        .await
        .expect("client 2 gets the read lock")
        .expect("read acquire");
    assert!(
        client2
            .get_data(write.node_path())
            .await
            .expect("get_data")
            .is_none(),
        "the dead write node is gone"
    );
    read.release().await.expect("read release");
    tokio::time::timeout(DEADLINE, write.lost())
        .await
        .expect("the write hold is lost");
    write
        .release()
        .await
        .expect("release of the lost write hold");
    client2.close().await;
    client1.close().await;
}

/// Curator: `TestInterProcessReadWriteLockBase.testWriterAgainstConstantReaders` (unmerged
/// branch `CURATOR-88`).
///
/// Clients read constantly (each takes the read lock, holds it, and takes it again at once),
/// while a writer on its own client takes the write lock several times, each within 10 s: the
/// readers must not starve it (a reader that comes after a waiting writer waits for it).
/// Shrunk: 4 reading clients holding 50 ms (Curator: 8 holding 100 ms), 3 writes holding
/// 50 ms (Curator: 10 holding 100 ms). Curator sleeps "a bit" before the writer starts; the
/// port waits until the readers hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_writer_against_constant_readers() {
    const CONCURRENCY: usize = 4;
    const WRITER_ATTEMPTS: usize = 3;
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-constant-readers");
    let (stop_tx, stop_rx) = watch::channel(false);
    let reads = Arc::new(AtomicUsize::new(0));

    let mut readers = Vec::new();
    for _ in 0..CONCURRENCY {
        let server = server.clone();
        let path = path.clone();
        let stop = stop_rx.clone();
        let reads = reads.clone();
        readers.push(tokio::spawn(async move {
            let client = client(&server).await;
            let lock = rw_lock(&client, &path);
            while !*stop.borrow() {
                let guard = lock.read_lock().acquire().await.expect("read acquire");
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                guard.release().await.expect("read release");
            }
            client.close().await;
        }));
    }
    eventually_async("the readers to read", DEADLINE, || {
        let reads = reads.clone();
        async move { reads.load(Ordering::SeqCst) >= CONCURRENCY }
    })
    .await;

    let writer_client = client(&server).await;
    let lock = rw_lock(&writer_client, &path);
    let mut writer_count = 0;
    for _ in 0..WRITER_ATTEMPTS {
        let guard = lock
            .write_lock()
            .try_acquire(Duration::from_secs(10))
            .await
            .expect("try_acquire")
            .expect("the write lock within 10 s, against constant readers");
        writer_count += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        guard.release().await.expect("write release");
    }
    assert_eq!(writer_count, WRITER_ATTEMPTS);
    stop_tx.send(true).expect("readers listen");
    for reader in readers {
        join_within(reader, DEADLINE, "every reader").await;
    }
    writer_client.close().await;
}
