//! `InterProcessReadWriteLock` against Apache Curator 5.4's `InterProcessReadWriteLock`
//! (Debian's `libcurator-recipes-java`): Java and Rust readers and writers in one queue on one
//! path. Writers of both languages exclude each other and every reader (an exact count, and a
//! pair of znodes no reader ever sees half-written); readers of both languages share the lock;
//! a writer of either language keeps the other's readers out until it releases.
//!
//! The Java side is `tests/java/CuratorRwLockWorker.java`, compiled with `javac` on first use
//! and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where Java or
//! Curator is not installed.
//!
//! Curator's downgrade is not tested here: Curator 5.4 downgrades by making a new sequential
//! read node while the write lock is held, which is exposed to CURATOR-276.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::java::{self, JavaProcess};
use crate::common::{
    eventually_async, eventually_children, init_tracing, join_within, mode_letter, unique_path,
    zk_server,
};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, InterProcessReadWriteLock, Participant};

const DEADLINE: Duration = Duration::from_secs(30);
const WORKER: &str = "CuratorRwLockWorker";

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(4),
        Duration::from_secs(2),
    )
    .await
}

/// Starts a worker on `lock`; its participants are `<prefix>-<slot>`, and its writers and
/// readers use the counter and pair under `data`.
async fn start_worker(server: &str, lock: &str, prefix: &str, data: &str) -> JavaProcess {
    JavaProcess::worker(WORKER, &[server, lock, prefix, data]).await
}

/// The queue as the assertions compare it: each participant's id, mode letter, and whether
/// it holds the lock, in queue order.
fn queue(participants: &[Participant]) -> Vec<(&str, char, bool)> {
    participants
        .iter()
        .map(|p| (p.id.as_str(), mode_letter(p.mode), p.is_leader))
        .collect()
}

/// Waits until the queue, as `view` sees it, is `expected`.
async fn await_queue(view: &InterProcessReadWriteLock, expected: &[(&str, char, bool)]) {
    let what = format!("the queue {expected:?}");
    eventually_async(&what, DEADLINE, || async {
        queue(&view.participants().await.unwrap()) == expected
    })
    .await;
}

/// Curator's view of the queue, from the worker: `R:<id>,W:<id>,...`.
async fn java_queue(worker: &mut JavaProcess) -> String {
    worker.query("PARTICIPANTS", DEADLINE).await
}

async fn read_string(client: &Client, path: &str) -> String {
    let (data, _) = client.get_data(path).await.unwrap().unwrap();
    String::from_utf8(data).unwrap().trim().to_owned()
}

async fn write_string(client: &Client, path: &str, value: &str) {
    client.set_data(path, value.as_bytes(), None).await.unwrap();
}

/// What the Rust readers saw: how many pairs they read, and every value of `pair/a`.
#[derive(Default)]
struct ReadChecks {
    checks: u64,
    values: HashSet<String>,
}

/// Java writer threads and Rust writer tasks (on two clients) each increment one counter
/// under the write lock, with plain reads and writes, and set a pair of znodes to the new
/// value in two separate writes; meanwhile Java and Rust readers read the pair under the read
/// lock. The count is exact, and no reader, of either language, ever sees the pair differ.
///
/// The readers run from before the first write to after the last, and the readers of each
/// language must see at least three values of the pair: one of them at least is neither the
/// first nor the last, so that side read while the writers were at work (the test cannot pass
/// with readers that never met a writer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_both_languages_exclude_each_other_and_all_readers() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("interop-rw-count");
    let lock = format!("{base}/lock");
    let data = format!("{base}/data");
    let counter = format!("{data}/counter");
    let pair_a = format!("{data}/pair/a");
    let pair_b = format!("{data}/pair/b");
    let observer = connect(&server).await;
    for path in [&counter, &pair_a, &pair_b] {
        observer
            .create(path, b"0", CreateMode::Persistent, &[])
            .await
            .unwrap();
    }
    let mut worker = start_worker(&server, &lock, "java", &data).await;

    const JAVA_WRITERS: u64 = 2;
    const RUST_WRITER_CLIENTS: u64 = 2;
    const RUST_WRITERS_PER_CLIENT: u64 = 2;
    const INCREMENTS: u64 = 20;
    let total = (JAVA_WRITERS + RUST_WRITER_CLIENTS * RUST_WRITERS_PER_CLIENT) * INCREMENTS;

    // Readers first, so they are at work before the first write.
    worker.send("READERS 2").await;
    let writers_done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..2 {
        // A client per reader: the readers are separate processes, as far as the lock knows.
        let client = connect(&server).await;
        let rw = InterProcessReadWriteLock::new(&client, &lock)
            .unwrap()
            .with_id(format!("rust-reader-{r}"));
        let (writers_done, pair_a, pair_b) = (writers_done.clone(), pair_a.clone(), pair_b.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = ReadChecks::default();
            let mut violations = Vec::new();
            while !writers_done.load(Ordering::SeqCst) {
                let guard = rw.read_lock().acquire().await.unwrap();
                let a = read_string(&client, &pair_a).await;
                let b = read_string(&client, &pair_b).await;
                guard.release().await.unwrap();
                seen.checks += 1;
                if a != b {
                    violations.push((a.clone(), b));
                }
                seen.values.insert(a);
            }
            (seen, violations)
        }));
    }

    worker
        .send(&format!("INCREMENT {JAVA_WRITERS} {INCREMENTS}"))
        .await;
    let mut writers = Vec::new();
    for c in 0..RUST_WRITER_CLIENTS {
        let client = connect(&server).await;
        for t in 0..RUST_WRITERS_PER_CLIENT {
            let rw = InterProcessReadWriteLock::new(&client, &lock)
                .unwrap()
                .with_id(format!("rust-writer-{c}-{t}"));
            let (client, counter, pair_a, pair_b) = (
                client.clone(),
                counter.clone(),
                pair_a.clone(),
                pair_b.clone(),
            );
            writers.push(tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    let guard = rw.write_lock().acquire().await.unwrap();
                    // Plain reads and writes, not guarded ones: only the lock keeps the count
                    // exact and the pair equal.
                    let value: u64 = read_string(&client, &counter).await.parse().unwrap();
                    let next = (value + 1).to_string();
                    write_string(&client, &counter, &next).await;
                    write_string(&client, &pair_a, &next).await;
                    write_string(&client, &pair_b, &next).await;
                    guard.release().await.unwrap();
                }
            }));
        }
    }

    for writer in writers {
        tokio::time::timeout(DEADLINE * 2, writer)
            .await
            .expect("the Rust writers finish")
            .unwrap();
    }
    worker.expect("INCREMENTED", DEADLINE * 2).await;
    writers_done.store(true, Ordering::SeqCst);

    let mut rust_reads = ReadChecks::default();
    for reader in readers {
        let (seen, violations) = join_within(reader, DEADLINE, "the Rust readers stop").await;
        assert!(
            violations.is_empty(),
            "a Rust reader saw a half-written pair (a, b): {violations:?}"
        );
        rust_reads.checks += seen.checks;
        rust_reads.values.extend(seen.values);
    }
    worker.send("STOP_READERS").await;
    let java_reads = worker.expect("READ_CHECKS", DEADLINE).await;
    let java_violations = worker.lines_starting_with("VIOLATION");
    assert!(
        java_violations.is_empty(),
        "a Java reader saw a half-written pair: {java_violations:?}"
    );
    let Some([java_checks, java_values, java_violation_count]) = java::numbers(&java_reads) else {
        panic!("READ_CHECKS <checks> <values> <violations>: {java_reads:?}");
    };
    assert_eq!(java_violation_count, 0, "{java_reads}");

    assert_eq!(read_string(&observer, &counter).await, total.to_string());
    assert_eq!(read_string(&observer, &pair_a).await, total.to_string());
    assert_eq!(read_string(&observer, &pair_b).await, total.to_string());
    assert!(
        rust_reads.values.len() >= 3,
        "the Rust readers never read while the writers were at work: {} checks, values {:?}",
        rust_reads.checks,
        rust_reads.values
    );
    assert!(
        java_values >= 3,
        "the Java readers never read while the writers were at work: {java_checks} checks, {java_values} values"
    );
    tracing::info!(
        rust_checks = rust_reads.checks,
        rust_values = rust_reads.values.len(),
        java_checks,
        java_values,
        "pair checks"
    );

    eventually_children(&observer, &lock, 0, "every lock node released").await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// A Java reader holds, and a Rust reader gets the lock beside it; the Java reader releases
/// and reads again, beside the Rust one. Both sides see both readers as holders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_both_languages_share_the_lock() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("interop-rw-share"));
    let mut worker = start_worker(&server, &lock, "java", "/unused").await;
    let observer = connect(&server).await;
    let view = InterProcessReadWriteLock::new(&observer, &lock).unwrap();
    let client = connect(&server).await;
    let rw = InterProcessReadWriteLock::new(&client, &lock)
        .unwrap()
        .with_id("rust-r");

    // Java reads first; Rust reads beside it.
    worker.send("READ j").await;
    let java_node = java::word(&worker.expect("READ_HELD j", DEADLINE).await, 2);
    let rust_guard = rw
        .read_lock()
        .try_acquire(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("a Rust reader shares the lock with a Java reader");
    assert!(
        rust_guard.node_name().starts_with("_c_") && rust_guard.node_name().contains("-__READ__"),
        "Curator's read node name: {}",
        rust_guard.node_name()
    );
    let participants = view.participants().await.unwrap();
    assert_eq!(
        queue(&participants),
        [("java-j", 'R', true), ("rust-r", 'R', true)]
    );
    assert_eq!(format!("{lock}/{}", participants[0].node), java_node);
    assert!(
        participants[0].node.starts_with("_c_") && participants[0].node.contains("-__READ__"),
        "Curator's read node name: {}",
        participants[0].node
    );
    assert_eq!(participants[1].node, rust_guard.node_name());
    assert!(participants[0].sequence < participants[1].sequence);
    assert_eq!(java_queue(&mut worker).await, "R:java-j,R:rust-r");

    // Java lets go and reads again: now it is Java that reads beside a Rust reader.
    worker.send("RELEASE j").await;
    worker.expect("RELEASED j", DEADLINE).await;
    await_queue(&view, &[("rust-r", 'R', true)]).await;
    worker.send("TRY_READ j 10000").await;
    let granted = worker.expect("READ_", DEADLINE).await;
    assert!(
        granted.starts_with("READ_HELD j"),
        "a Java reader shares the lock with a Rust reader: {granted}"
    );
    assert!(!rust_guard.is_lost());
    assert_eq!(
        queue(&view.participants().await.unwrap()),
        [("rust-r", 'R', true), ("java-j", 'R', true)]
    );
    assert_eq!(java_queue(&mut worker).await, "R:rust-r,R:java-j");

    rust_guard.release().await.unwrap();
    worker.send("RELEASE j").await;
    worker.expect("RELEASED j", DEADLINE).await;
    eventually_children(&observer, &lock, 0, "both read nodes released").await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// A Java writer keeps Rust readers out: a Rust try fails, and a waiting Rust reader is
/// granted only once Java releases. Then a Rust writer keeps a Java reader out the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_of_either_language_keeps_the_others_readers_out() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("interop-rw-block"));
    let mut worker = start_worker(&server, &lock, "java", "/unused").await;
    let observer = connect(&server).await;
    let view = InterProcessReadWriteLock::new(&observer, &lock).unwrap();

    // Java writes: a Rust reader cannot get in.
    worker.send("WRITE w").await;
    let java_node = java::word(&worker.expect("WRITE_HELD w", DEADLINE).await, 2);
    let participants = view.participants().await.unwrap();
    assert_eq!(queue(&participants), [("java-w", 'W', true)]);
    assert_eq!(format!("{lock}/{}", participants[0].node), java_node);
    assert!(
        participants[0].node.starts_with("_c_") && participants[0].node.contains("-__WRIT__"),
        "Curator's write node name: {}",
        participants[0].node
    );
    let reader_client = connect(&server).await;
    let reader = InterProcessReadWriteLock::new(&reader_client, &lock)
        .unwrap()
        .with_id("rust-r");
    assert!(reader
        .read_lock()
        .try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .is_none());
    assert!(reader
        .read_lock()
        .try_acquire(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    // The tries that failed left no node behind.
    await_queue(&view, &[("java-w", 'W', true)]).await;

    // A Rust reader waits behind the Java writer, and is granted only once Java releases.
    let waiter = tokio::spawn(async move {
        let guard = reader.read_lock().acquire().await.unwrap();
        // Read on the reader's own session, which has seen its grant: a grant made while
        // Java still held would find Java's node still there.
        let java_node_gone = reader_client.exists(&java_node).await.unwrap().is_none();
        (guard, java_node_gone)
    });
    await_queue(&view, &[("java-w", 'W', true), ("rust-r", 'R', false)]).await;
    assert_eq!(java_queue(&mut worker).await, "W:java-w,R:rust-r");
    assert!(
        !waiter.is_finished(),
        "the Rust reader was granted while the Java writer held"
    );
    worker.send("RELEASE w").await;
    worker.expect("RELEASED w", DEADLINE).await;
    let (read_guard, java_node_gone) = join_within(
        waiter,
        DEADLINE,
        "the Rust reader's grant after the Java writer released",
    )
    .await;
    assert!(
        java_node_gone,
        "the Rust reader was granted beside the Java writer"
    );
    read_guard.release().await.unwrap();

    // Rust writes: a Java reader's try fails, and one that waits is granted once Rust releases.
    let writer_client = connect(&server).await;
    let writer = InterProcessReadWriteLock::new(&writer_client, &lock)
        .unwrap()
        .with_id("rust-w");
    let write_guard = writer
        .write_lock()
        .try_acquire(DEADLINE)
        .await
        .unwrap()
        .expect("the Rust writer gets the free lock");
    assert!(
        write_guard.node_name().starts_with("_c_") && write_guard.node_name().contains("-__WRIT__"),
        "Curator's write node name: {}",
        write_guard.node_name()
    );
    assert_eq!(
        queue(&view.participants().await.unwrap()),
        [("rust-w", 'W', true)]
    );
    worker.send("TRY_READ r 500").await;
    let refused = worker.expect("READ_", DEADLINE).await;
    assert_eq!(
        refused, "READ_TIMEOUT r",
        "a Java reader got in while the Rust writer held"
    );
    assert_eq!(java_queue(&mut worker).await, "W:rust-w");

    worker
        .send(&format!("TRY_READ r {}", DEADLINE.as_millis()))
        .await;
    await_queue(&view, &[("rust-w", 'W', true), ("java-r", 'R', false)]).await;
    assert!(!write_guard.is_lost());
    write_guard.release().await.unwrap();
    let granted = worker.expect("READ_", DEADLINE).await;
    assert!(
        granted.starts_with("READ_HELD r"),
        "the waiting Java reader is granted once the Rust writer released: {granted}"
    );
    worker.send("RELEASE r").await;
    worker.expect("RELEASED r", DEADLINE).await;
    eventually_children(&observer, &lock, 0, "every lock node released").await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
}
