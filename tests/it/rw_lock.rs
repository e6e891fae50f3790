//! `InterProcessReadWriteLock` against real ZooKeeper: readers share, writers exclude everyone,
//! the queue is fair to writers, a downgrade keeps a queued writer out (CURATOR-276), the wrong
//! direction is refused, cancelled acquires leave no node, many readers of one client are let
//! in together, and a write hold lost to an outside delete lets readers in only once released.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    children_of, connect_with, eventually_async, eventually_children, init_tracing, join_within,
    mode_letter, unique_path, zk_server,
};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, Error, InterProcessMutex, InterProcessReadWriteLock, LockMode};

const DEADLINE: Duration = Duration::from_secs(20);

async fn connect(connect_string: &str) -> Client {
    connect_with(
        connect_string,
        Duration::from_secs(20),
        Duration::from_secs(5),
    )
    .await
}

fn rw_lock(client: &Client, path: &str, id: &str) -> InterProcessReadWriteLock {
    InterProcessReadWriteLock::new(client, path)
        .expect("read/write lock")
        .with_id(id)
}

/// Node kinds in queue order, `R` or `W`, as `observer` lists them.
async fn queue_kinds(lock: &InterProcessReadWriteLock) -> String {
    lock.participants()
        .await
        .expect("participants")
        .iter()
        .map(|p| mode_letter(p.mode))
        .collect()
}

/// Waits until the queue's kinds, in order, are `expected`.
async fn await_queue(lock: &InterProcessReadWriteLock, expected: &str) {
    eventually_async(&format!("the queue {expected}"), DEADLINE, || async {
        queue_kinds(lock).await == expected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_writers_exclude_and_a_waiting_writer_holds_back_later_readers() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-fair");
    let (first, second, third) = (
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    );
    let lock_1 = rw_lock(&first, &path, "reader-1");
    let lock_2 = rw_lock(&second, &path, "writer-2");
    let lock_3 = rw_lock(&third, &path, "reader-3");

    // Two readers of two clients hold together; a write try fails while they do.
    let read_1 = lock_1.read_lock().acquire().await.expect("first reader");
    let read_3 = lock_3
        .read_lock()
        .try_acquire(DEADLINE)
        .await
        .expect("second reader")
        .expect("readers share");
    assert_eq!(read_1.mode(), LockMode::Shared);
    assert!(lock_2
        .write_lock()
        .try_acquire(Duration::ZERO)
        .await
        .expect("try write")
        .is_none());
    let holders: Vec<_> = lock_1
        .participants()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.is_leader)
        .map(|p| p.id)
        .collect();
    assert_eq!(holders, ["reader-1", "reader-3"]);

    // A writer queues behind them, and a reader that comes after the writer waits for it.
    let writer = tokio::spawn({
        let lock = lock_2.clone();
        async move { lock.write_lock().acquire().await }
    });
    await_queue(&lock_1, "RRW").await;
    let late_reader = tokio::spawn({
        let lock = lock_1.clone();
        async move { lock.read_lock().acquire().await }
    });
    await_queue(&lock_1, "RRWR").await;
    read_1.release().await.expect("release first reader");
    await_queue(&lock_1, "RWR").await;
    assert!(!writer.is_finished(), "a writer got in beside a reader");
    read_3.release().await.expect("release second reader");
    let write = writer
        .await
        .unwrap()
        .expect("the writer, once the readers left");
    assert_eq!(write.mode(), LockMode::Exclusive);
    // The late reader's node is still there, behind the writer.
    await_queue(&lock_1, "WR").await;
    assert!(
        !late_reader.is_finished(),
        "a reader got in beside a writer"
    );
    // The writer's own check: its node is the first, and still its session's.
    assert!(write.verify().await);
    write.release().await.expect("release writer");
    let late = late_reader.await.unwrap().expect("the late reader");
    late.release().await.expect("release late reader");
    eventually_children(&first, &path, 0, "no node left").await;
    for client in [first, second, third] {
        client.close().await;
    }
}

/// The scenario of CURATOR-276: a writer waits behind a write hold, which downgrades. The
/// queued writer must not get in while the downgrade's read hold lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_keeps_a_queued_writer_out_until_the_read_hold_goes() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-downgrade");
    let (holder_client, waiter_client) = (connect(&server).await, connect(&server).await);
    let holder = rw_lock(&holder_client, &path, "holder");
    let waiter = rw_lock(&waiter_client, &path, "waiter");

    let write = holder.write_lock().acquire().await.expect("write");
    let queued = tokio::spawn({
        let lock = waiter.clone();
        async move { lock.write_lock().acquire().await }
    });
    await_queue(&holder, "WW").await;
    let read = write.downgrade().await.expect("downgrade");
    assert_eq!(read.mode(), LockMode::Shared);
    // The read node carries the write node's sequence, so it sorts before the queued writer.
    let write_sequence = &write.node_name()[write.node_name().len() - 10..];
    assert!(
        read.node_name()
            .ends_with(&format!("__READ__{write_sequence}")),
        "{} is not named after {}",
        read.node_name(),
        write.node_name()
    );
    write.release().await.expect("release the write hold");
    await_queue(&holder, "RW").await;
    // A second writer's try fails too: it queues behind both.
    let kept_out = waiter
        .write_lock()
        .try_acquire(Duration::from_millis(300))
        .await
        .expect("try write");
    assert!(
        kept_out.is_none(),
        "a second writer got in beside a read hold"
    );
    assert!(
        !queued.is_finished(),
        "the queued writer got in while the downgrade's read hold lasts (CURATOR-276)"
    );
    assert!(read.verify().await, "the read hold is good");
    read.release().await.expect("release the read hold");
    let granted = join_within(
        queued,
        DEADLINE,
        "the queued writer, once the read hold went",
    )
    .await
    .expect("write");
    granted.release().await.expect("release");
    eventually_children(&holder_client, &path, 0, "no node left").await;
    holder_client.close().await;
    waiter_client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_of_a_lost_write_hold_makes_no_read_node() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-downgrade-lost");
    let client = connect(&server).await;
    let lock = rw_lock(&client, &path, "holder");
    let write = lock.write_lock().acquire().await.expect("write");
    // Someone deletes the write node.
    client
        .delete(write.node_path(), None)
        .await
        .expect("delete the write node");
    tokio::time::timeout(DEADLINE, write.lost())
        .await
        .expect("the write hold is lost");
    match write.downgrade().await {
        Err(Error::LockLost) => {}
        other => panic!("a lost write hold downgraded: {other:?}"),
    }
    assert_eq!(children_of(&client, &path).await, Vec::<String>::new());
    // The lost hold still keeps this client's readers out until it is released.
    assert!(lock
        .read_lock()
        .try_acquire(Duration::from_millis(300))
        .await
        .expect("try read")
        .is_none());
    write.release().await.expect("release the lost hold");
    let read = lock
        .read_lock()
        .try_acquire(DEADLINE)
        .await
        .expect("read")
        .expect("readers get in once the lost write hold is released");
    read.release().await.expect("release");
    eventually_children(&client, &path, 0, "no node left").await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_write_hold_can_be_downgraded() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-wrong-direction");
    let client = connect(&server).await;
    let lock = rw_lock(&client, &path, "reader");
    let read = lock.read_lock().acquire().await.expect("read");
    match read.downgrade().await {
        Err(Error::NotDowngradable) => {}
        other => panic!("a read hold was downgraded or upgraded: {other:?}"),
    }
    // The refused call changed nothing: the read hold is still held, and alone.
    assert!(read.verify().await);
    assert_eq!(children_of(&client, &path).await.len(), 1);
    read.release().await.expect("release");

    let mutex_path = unique_path("rw-wrong-direction-mutex");
    let mutex = InterProcessMutex::new(&client, &mutex_path).expect("mutex");
    let guard = mutex.acquire().await.expect("mutex");
    assert!(matches!(
        guard.downgrade().await,
        Err(Error::NotDowngradable)
    ));
    guard.release().await.expect("release");
    eventually_children(&client, &path, 0, "no node left").await;
    eventually_children(&client, &mutex_path, 0, "no mutex node left").await;
    client.close().await;
}

/// Fifty read acquires of one client wait behind another client's writer; when it goes, they
/// all hold at once (one listing lets them in together), and exclusion from a writer of their
/// own client holds while they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_readers_of_one_client_hold_together() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-many-readers");
    let (readers_client, writer_client) = (connect(&server).await, connect(&server).await);
    let readers_lock = rw_lock(&readers_client, &path, "reader");
    let writer_lock = rw_lock(&writer_client, &path, "writer");
    let write = writer_lock.write_lock().acquire().await.expect("write");

    const READERS: usize = 50;
    let holding = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(tokio::sync::Barrier::new(READERS + 1));
    let release = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..READERS {
        let (lock, holding, all_in, release) = (
            readers_lock.clone(),
            holding.clone(),
            all_in.clone(),
            release.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let guard = lock.read_lock().acquire().await.expect("read");
            holding.fetch_add(1, Ordering::SeqCst);
            let notified = release.notified();
            all_in.wait().await;
            notified.await;
            guard.release().await.expect("release read");
        }));
    }
    eventually_children(&readers_client, &path, READERS + 1, "every reader queued").await;
    assert_eq!(
        holding.load(Ordering::SeqCst),
        0,
        "a reader got in beside the writer"
    );
    write.release().await.expect("release write");
    tokio::time::timeout(DEADLINE, all_in.wait())
        .await
        .expect("every reader holds at once");
    assert_eq!(holding.load(Ordering::SeqCst), READERS);
    // A writer of the readers' own client waits for all of them.
    let own_writer = readers_lock
        .write_lock()
        .try_acquire(Duration::from_millis(300))
        .await
        .expect("try write");
    assert!(own_writer.is_none(), "a writer got in beside readers");
    release.notify_waiters();
    for task in tasks {
        task.await.unwrap();
    }
    eventually_children(&readers_client, &path, 0, "no node left").await;
    readers_client.close().await;
    writer_client.close().await;
}

/// Readers and writers of three clients, several tasks each, on one lock: writers bump two
/// counters one after the other with plain, unguarded writes; readers must never see them
/// differ, and the final count is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_half_done_write() {
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("rw-pair");
    let path = format!("{base}/lock");
    let (a, b) = (format!("{base}/a"), format!("{base}/b"));
    let setup = connect(&server).await;
    setup.ensure_path(&base, false).await.expect("base");
    for node in [&a, &b] {
        setup
            .create(node, b"0", CreateMode::Persistent, &[])
            .await
            .expect("counter");
    }
    const WRITES: u64 = 10;
    let reads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..3 {
        let client = connect(&server).await;
        let lock = rw_lock(&client, &path, &format!("client-{c}"));
        for _ in 0..2 {
            let (lock, client, a, b) = (lock.clone(), client.clone(), a.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..WRITES {
                    let guard = lock.write_lock().acquire().await.expect("write");
                    let value = read_counter(&client, &a).await + 1;
                    for node in [&a, &b] {
                        client
                            .set_data(node, value.to_string().as_bytes(), None)
                            .await
                            .expect("write a counter");
                    }
                    guard.release().await.expect("release write");
                }
            }));
        }
        let (lock, client, a, b, reads) = (lock, client, a.clone(), b.clone(), reads.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..(2 * WRITES) {
                let guard = lock.read_lock().acquire().await.expect("read");
                let (first, second) = (
                    read_counter(&client, &a).await,
                    read_counter(&client, &b).await,
                );
                assert_eq!(first, second, "a reader saw a write half done");
                reads.fetch_add(1, Ordering::SeqCst);
                guard.release().await.expect("release read");
            }
            client.close().await;
        }));
    }
    tokio::time::timeout(
        Duration::from_secs(120),
        futures::future::try_join_all(tasks),
    )
    .await
    .expect("every reader and writer finished")
    .expect("no task failed");
    assert_eq!(read_counter(&setup, &a).await, 3 * 2 * WRITES);
    assert_eq!(reads.load(Ordering::SeqCst), 3 * 2 * WRITES as usize);
    eventually_children(&setup, &path, 0, "no node left").await;
    setup.close().await;
}

async fn read_counter(client: &Client, path: &str) -> u64 {
    let (data, _) = client
        .get_data(path)
        .await
        .expect("read a counter")
        .expect("the counter exists");
    std::str::from_utf8(&data).unwrap().parse().unwrap()
}

/// A read or write acquire cancelled while it waits leaves no node, and the waiters behind it
/// are not held up by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_leave_no_node() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-cancel");
    let (holder_client, waiter_client) = (connect(&server).await, connect(&server).await);
    let holder = rw_lock(&holder_client, &path, "holder");
    let waiter = rw_lock(&waiter_client, &path, "waiter");
    let write = holder.write_lock().acquire().await.expect("write");
    for round in 0..2 {
        let acquire = async {
            if round == 0 {
                waiter.read_lock().acquire().await
            } else {
                waiter.write_lock().acquire().await
            }
        };
        let cancelled = tokio::time::timeout(Duration::from_millis(300), acquire).await;
        assert!(cancelled.is_err(), "granted beside a writer");
        eventually_children(&holder_client, &path, 1, "the cancelled node is deleted").await;
    }
    // A timed-out try leaves nothing either.
    assert!(waiter
        .read_lock()
        .try_acquire(Duration::from_millis(200))
        .await
        .expect("try read")
        .is_none());
    eventually_children(&holder_client, &path, 1, "the timed-out node is deleted").await;
    write.release().await.expect("release");
    let read = waiter
        .read_lock()
        .try_acquire(DEADLINE)
        .await
        .expect("read")
        .expect("nothing left to wait for");
    read.release().await.expect("release");
    eventually_children(&holder_client, &path, 0, "no node left").await;
    holder_client.close().await;
    waiter_client.close().await;
}

/// The halves list their own nodes, as Curator's do; the lock lists both, in queue order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_in_queue_order_with_their_modes() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("rw-participants");
    let (first, second) = (connect(&server).await, connect(&server).await);
    let reader = rw_lock(&first, &path, "reader");
    let writer = rw_lock(&second, &path, "writer");
    let read = reader.read_lock().acquire().await.expect("read");
    let waiting = tokio::spawn({
        let lock = writer.clone();
        async move { lock.write_lock().acquire().await }
    });
    await_queue(&reader, "RW").await;
    let all = reader.participants().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|p| (p.id.as_str(), p.mode, p.is_leader))
            .collect::<Vec<_>>(),
        [
            ("reader", LockMode::Shared, true),
            ("writer", LockMode::Exclusive, false)
        ]
    );
    assert!(all[0].node.contains("-__READ__") && all[1].node.contains("-__WRIT__"));
    let writers = reader.write_lock().participants().await.unwrap();
    assert_eq!(writers.len(), 1);
    assert_eq!(writers[0].id, "writer");
    let readers = writer.read_lock().participants().await.unwrap();
    assert_eq!(readers.len(), 1);
    assert_eq!(readers[0].id, "reader");
    read.release().await.expect("release");
    let write = waiting.await.unwrap().expect("write");
    write.release().await.expect("release");
    eventually_children(&first, &path, 0, "no node left").await;
    first.close().await;
    second.close().await;
}
