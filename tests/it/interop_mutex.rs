//! `InterProcessMutex` against Apache Curator 5.4's `InterProcessMutex` (Debian's
//! `libcurator-recipes-java`): one queue, exact counts, ids, FIFO order and revocation across
//! languages.
//!
//! The Java side is `tests/java/CuratorMutexWorker.java`, compiled with `javac` on first use
//! and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where Java or
//! Curator is not installed.

use std::time::Duration;

use crate::common::java::{self, JavaProcess};
use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, InterProcessMutex, Participant, RevocationRequest, Revoker};

const DEADLINE: Duration = Duration::from_secs(30);
const WORKER: &str = "CuratorMutexWorker";

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(4),
        Duration::from_secs(2),
    )
    .await
}

/// Starts a worker on `lock`; its participants are `<prefix>-<slot>`.
async fn start_worker(server: &str, lock: &str, prefix: &str, counter: &str) -> JavaProcess {
    JavaProcess::worker(WORKER, &[server, lock, prefix, counter]).await
}

fn ids(participants: &[Participant]) -> Vec<String> {
    participants.iter().map(|p| p.id.clone()).collect()
}

/// Waits until the participant ids, in queue order, are `expected`.
async fn await_participants(mutex: &InterProcessMutex, expected: &[&str]) {
    let what = format!("participants {expected:?}");
    eventually_async(&what, DEADLINE, || async {
        ids(&mutex.participants().await.unwrap()) == expected
    })
    .await;
}

/// A Java process and two Rust clients (three tasks each) increment one counter under the
/// lock, unguarded: the final count is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_count_exactly() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("interop-count");
    let lock = format!("{base}/lock");
    let counter = format!("{base}/counter");
    let observer = connect(&server).await;
    observer
        .create(&counter, b"0", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let mut worker = start_worker(&server, &lock, "java", &counter).await;

    worker.send("COUNT j1 150").await;
    worker.send("COUNT j2 150").await;
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for c in 0..2 {
        let client = connect(&server).await;
        let mutex = InterProcessMutex::new(&client, &lock)
            .unwrap()
            .with_id(format!("rust-{c}"));
        for _ in 0..3 {
            let (client, mutex, counter) = (client.clone(), mutex.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let guard = mutex.acquire().await.unwrap();
                    let (data, _) = client.get_data(&counter).await.unwrap().unwrap();
                    let value: u64 = std::str::from_utf8(&data).unwrap().trim().parse().unwrap();
                    client
                        .set_data(&counter, (value + 1).to_string().as_bytes(), None)
                        .await
                        .unwrap();
                    guard.release().await.unwrap();
                }
            }));
        }
        clients.push(client);
    }
    for task in tasks {
        task.await.unwrap();
    }
    worker.expect("COUNTED j", DEADLINE * 2).await;
    worker.expect("COUNTED j", DEADLINE * 2).await;
    let (data, _) = observer.get_data(&counter).await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&data).unwrap(), "600");
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// Each side sees the other's participants with their ids, in queue order; a Java holder
/// blocks Rust and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_sees_the_others_participants() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("interop-ids"));
    let mut worker = start_worker(&server, &lock, "java", "/unused").await;
    let client = connect(&server).await;
    let mutex = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("rust-a");

    // Java holds: Rust sees it first, and cannot get the lock.
    worker.send("ACQUIRE h").await;
    let acquired = worker.expect("ACQUIRED h", DEADLINE).await;
    let java_node = java::word(&acquired, 2);
    let participants = mutex.participants().await.unwrap();
    assert_eq!(ids(&participants), ["java-h"]);
    assert!(participants[0].is_leader);
    assert_eq!(format!("{lock}/{}", participants[0].node), java_node);
    assert!(
        participants[0].node.starts_with("_c_") && participants[0].node.contains("-lock-"),
        "Curator's node name: {}",
        participants[0].node
    );
    assert!(mutex.try_acquire(Duration::ZERO).await.unwrap().is_none());
    assert!(mutex
        .try_acquire(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());

    // Rust queues behind Java; Curator sees both, in order.
    let waiter = {
        let mutex = mutex.clone();
        tokio::spawn(async move {
            let guard = mutex.acquire().await.unwrap();
            let token = guard.fencing_token();
            (guard.node_path().to_owned(), token, guard)
        })
    };
    await_participants(&mutex, &["java-h", "rust-a"]).await;
    worker.send("PARTICIPANTS").await;
    assert_eq!(
        worker.expect("PARTICIPANTS", DEADLINE).await,
        "PARTICIPANTS java-h,rust-a"
    );

    // Java releases: Rust holds, and Java's next acquire waits behind it.
    worker.send("RELEASE h").await;
    worker.expect("RELEASED h", DEADLINE).await;
    let (rust_node, _, guard) = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("Rust's grant after Java released")
        .unwrap();
    worker.send("ACQUIRE h").await;
    await_participants(&mutex, &["rust-a", "java-h"]).await;
    worker.send("PARTICIPANTS").await;
    assert_eq!(
        worker.expect("PARTICIPANTS", DEADLINE).await,
        "PARTICIPANTS rust-a,java-h"
    );
    assert!(!guard.is_lost());
    drop(guard); // acquired in another task: dropping releases it
    let granted = worker.expect("ACQUIRED h", DEADLINE).await;
    assert!(!granted.contains(&rust_node));
    worker.send("RELEASE h").await;
    worker.expect("RELEASED h", DEADLINE).await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// FIFO across languages: Java holds; Rust A queues, then Java B, then Rust C. Grants follow
/// A, B, C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_follow_queue_order_across_languages() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("interop-fifo"));
    let mut worker = start_worker(&server, &lock, "java", "/unused").await;
    let ca = connect(&server).await;
    let cc = connect(&server).await;
    let a = InterProcessMutex::new(&ca, &lock)
        .unwrap()
        .with_id("rust-a");
    let c = InterProcessMutex::new(&cc, &lock)
        .unwrap()
        .with_id("rust-c");

    worker.send("ACQUIRE h").await;
    worker.expect("ACQUIRED h", DEADLINE).await;

    // Each Rust waiter reports its grant, then releases when told to.
    let (granted_tx, mut granted_rx) = tokio::sync::mpsc::unbounded_channel();
    let spawn_waiter = |mutex: InterProcessMutex, name: &'static str| {
        let granted_tx = granted_tx.clone();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let guard = mutex.acquire().await.unwrap();
            granted_tx.send(name).unwrap();
            let _ = release_rx.await;
            guard.release().await.unwrap();
        });
        (release_tx, task)
    };
    let (release_a, task_a) = spawn_waiter(a.clone(), "A");
    await_participants(&a, &["java-h", "rust-a"]).await;
    worker.send("ACQUIRE b").await;
    await_participants(&a, &["java-h", "rust-a", "java-b"]).await;
    let (release_c, task_c) = spawn_waiter(c.clone(), "C");
    await_participants(&a, &["java-h", "rust-a", "java-b", "rust-c"]).await;

    // Java's holder releases: A is next.
    worker.send("RELEASE h").await;
    worker.expect("RELEASED h", DEADLINE).await;
    let first = tokio::time::timeout(DEADLINE, granted_rx.recv())
        .await
        .expect("a grant after h")
        .unwrap();
    assert_eq!(first, "A");
    await_participants(&a, &["rust-a", "java-b", "rust-c"]).await;

    // A releases: Java's B is next, not C.
    release_a.send(()).unwrap();
    task_a.await.unwrap();
    let b_line = worker.expect("ACQUIRED b", DEADLINE).await;
    assert!(
        granted_rx.try_recv().is_err(),
        "C was granted while B should hold: {b_line}"
    );
    await_participants(&a, &["java-b", "rust-c"]).await;
    assert!(!task_c.is_finished());

    // B releases: C.
    worker.send("RELEASE b").await;
    worker.expect("RELEASED b", DEADLINE).await;
    let third = tokio::time::timeout(DEADLINE, granted_rx.recv())
        .await
        .expect("C's grant after B")
        .unwrap();
    assert_eq!(third, "C");
    release_c.send(()).unwrap();
    task_c.await.unwrap();
    await_participants(&a, &[]).await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// Revocation across languages: Rust revokes a Java holder (Curator's listener hears it), and
/// Java's `Revoker.attemptRevoke` reaches a Rust holder's listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_works_across_languages() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let lock = format!("{}/lock", unique_path("interop-revoke"));
    let mut worker = start_worker(&server, &lock, "java", "/unused").await;
    let client = connect(&server).await;

    // Rust asks the Java holder to let go; Java releases on request.
    worker.send("REVOCABLE h").await;
    worker.expect("REVOCABLE h", DEADLINE).await;
    worker.send("ACQUIRE h").await;
    let acquired = worker.expect("ACQUIRED h", DEADLINE).await;
    let java_node = java::word(&acquired, 2);
    Revoker::attempt_revoke(&client, &java_node).await.unwrap();
    worker.expect("REVOKE_REQUESTED h", DEADLINE).await;
    worker.send("RELEASE h").await;
    worker.expect("RELEASED h", DEADLINE).await;

    // Java asks a Rust holder.
    let mutex = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_id("rust-r");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    mutex.make_revocable(move |request: &RevocationRequest| {
        let _ = tx.send(request.node_path().to_owned());
    });
    let guard = mutex.acquire().await.unwrap();
    worker.send(&format!("REVOKE {}", guard.node_path())).await;
    worker.expect("REVOKE_SENT", DEADLINE).await;
    let asked = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the revocation request from Java")
        .unwrap();
    assert_eq!(asked, guard.node_path());
    guard.release().await.unwrap();
    worker.quit("QUIT", Duration::from_secs(10)).await;
}
