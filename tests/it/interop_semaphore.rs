//! `InterProcessSemaphoreV2` against Apache Curator 5.4's `InterProcessSemaphoreV2` (Debian's
//! `libcurator-recipes-java`): Java and Rust holders share one semaphore of three leases on
//! one path (`<path>/locks`, the internal lock, and `<path>/leases`). Under churn, a checker
//! both languages write to never sees more than three holders inside, and does see three; a
//! full semaphore of one language keeps the other out until a lease is released. Curator's
//! `InterProcessSemaphoreMutex` and this crate's share one mutex.
//!
//! The Java side is `tests/java/CuratorSemaphoreWorker.java`, compiled with `javac` on first
//! use and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where
//! Java or Curator is not installed.

use std::time::Duration;

use crate::common::java::{self, JavaProcess};
use crate::common::{
    children_of, eventually_async, eventually_children, init_tracing, join_within, unique_path,
    zk_server,
};
use crate::semaphore::await_leases;
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, InterProcessSemaphoreMutex, InterProcessSemaphoreV2, Lease};

const DEADLINE: Duration = Duration::from_secs(30);
const WORKER: &str = "CuratorSemaphoreWorker";
/// The semaphore's limit, on both sides.
const MAX_LEASES: u32 = 3;

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(4),
        Duration::from_secs(2),
    )
    .await
}

/// Starts a worker on the semaphore `path` (limit [`MAX_LEASES`]); its participants are
/// `<prefix>-<slot>`, and its churners put their markers under `inside`.
async fn start_worker(server: &str, path: &str, prefix: &str, inside: &str) -> JavaProcess {
    let max_leases = MAX_LEASES.to_string();
    JavaProcess::worker(WORKER, &[server, path, max_leases.as_str(), prefix, inside]).await
}

/// Curator's view of the lease nodes, from the worker: their ids in sequence order,
/// `<id>,<id>,...`.
async fn java_participants(worker: &mut JavaProcess) -> String {
    worker.query("PARTICIPANTS", DEADLINE).await
}

/// The lease node name at the end of a worker's `ACQUIRED <slot> <name>`.
fn lease_node(line: &str) -> String {
    java::word(line, 2)
}

fn sorted<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| n.as_ref().to_owned()).collect();
    names.sort();
    names
}

fn is_curator_lease_name(name: &str) -> bool {
    name.starts_with("_c_") && name.contains("-lease-")
}

/// Waits until the lease nodes, as `view` sees them, are `expected` (in any order).
async fn await_lease_nodes<S: AsRef<str>>(view: &InterProcessSemaphoreV2, expected: &[S]) {
    let expected = sorted(expected);
    let what = format!("the lease nodes {expected:?}");
    eventually_async(&what, DEADLINE, || async {
        sorted(&view.participant_nodes().await.unwrap()) == expected
    })
    .await;
}

/// Waits until there are `count` lease nodes, as `view` sees them.
async fn await_lease_count(view: &InterProcessSemaphoreV2, count: usize) {
    let what = format!("{count} lease nodes");
    eventually_async(&what, DEADLINE, || async {
        view.participant_nodes().await.unwrap().len() == count
    })
    .await;
}

/// What one Rust holder saw at the checker.
#[derive(Default)]
struct Checks {
    acquisitions: u64,
    /// The most markers one listing saw.
    max_seen: usize,
    /// Listings that saw a Java holder's marker.
    mixed: u64,
    /// Listings of more than [`MAX_LEASES`] markers.
    violations: Vec<Vec<String>>,
    /// Leases that may have been lost by their release (a suspension, an expired session):
    /// the count is not guaranteed for them, which would explain a violation.
    lost: u64,
}

/// How long a holder works inside: 5 to 15 ms, at random.
fn work_time() -> Duration {
    Duration::from_millis(fastrand::u64(5..=15))
}

/// A Rust holder's turn at the checker, with its lease granted: marker in, look, work,
/// marker out. The caller releases the lease after.
async fn inside(client: &Client, checker: &str, marker: &str, checks: &mut Checks) {
    let path = format!("{checker}/{marker}");
    client
        .create(&path, b"", CreateMode::Ephemeral, &[])
        .await
        .unwrap();
    let markers = children_of(client, checker).await;
    checks.max_seen = checks.max_seen.max(markers.len());
    if markers.len() > MAX_LEASES as usize {
        checks.violations.push(markers.clone());
    }
    if markers.iter().any(|m| m.starts_with("java-")) {
        checks.mixed += 1;
    }
    tokio::time::sleep(work_time()).await;
    assert!(
        client.delete(&path, None).await.unwrap(),
        "the marker {path} was gone"
    );
}

/// Two Java holders (a Curator client each) and three Rust holders (a client each) take
/// leases of one semaphore of three, many times each. Every holder, once granted, puts an
/// ephemeral marker under a checker path, lists the markers, works a few milliseconds,
/// deletes its marker and only then releases: no listing, in either language, ever shows
/// more than three markers.
///
/// Not vacuous: some listing shows exactly three markers (the semaphore was full), and the
/// holders of each language saw markers of the other's (the languages held at once: two
/// separate semaphores of three would have let in up to six).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_holders_never_exceed_the_limit() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("interop-sem-churn");
    let path = format!("{base}/semaphore");
    let inside_path = format!("{base}/inside");
    let observer = connect(&server).await;
    observer
        .create(&inside_path, b"", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let mut worker = start_worker(&server, &path, "java", &inside_path).await;

    const JAVA_HOLDERS: u64 = 2;
    const RUST_HOLDERS: u64 = 3;
    const ROUNDS: u64 = 30;

    // The Rust holders connect first; they start once a Java churner is inside, so the
    // languages overlap from the start.
    let mut holders = Vec::new();
    for c in 0..RUST_HOLDERS {
        let client = connect(&server).await;
        let semaphore = InterProcessSemaphoreV2::new(&client, &path, MAX_LEASES)
            .unwrap()
            .with_id(format!("rust-{c}"));
        holders.push((c, client, semaphore));
    }
    worker.send(&format!("CHURN {JAVA_HOLDERS} {ROUNDS}")).await;
    eventually_async("a Java churner inside", DEADLINE, || async {
        children_of(&observer, &inside_path)
            .await
            .iter()
            .any(|m| m.starts_with("java-"))
    })
    .await;

    let mut tasks = Vec::new();
    for (c, client, semaphore) in holders {
        let inside_path = inside_path.clone();
        tasks.push(tokio::spawn(async move {
            let mut checks = Checks::default();
            for k in 0..ROUNDS {
                let lease = semaphore.acquire().await.unwrap();
                checks.acquisitions += 1;
                let marker = format!("rust-{c}-{k}");
                inside(&client, &inside_path, &marker, &mut checks).await;
                // Sticky: a loss since the grant shows here still.
                if lease.is_lost() {
                    checks.lost += 1;
                }
                lease.release().await.unwrap();
            }
            checks
        }));
    }

    let mut rust = Checks::default();
    for task in tasks {
        let checks = join_within(task, DEADLINE, "the Rust holders finish").await;
        rust.acquisitions += checks.acquisitions;
        rust.max_seen = rust.max_seen.max(checks.max_seen);
        rust.mixed += checks.mixed;
        rust.violations.extend(checks.violations);
        rust.lost += checks.lost;
    }
    let churned = worker.expect("CHURNED", DEADLINE).await;
    let java_violations = worker.lines_starting_with("VIOLATION");
    assert!(
        java_violations.is_empty(),
        "a Java holder saw more than {MAX_LEASES} holders inside: {java_violations:?}"
    );
    assert!(
        rust.violations.is_empty(),
        "a Rust holder saw more than {MAX_LEASES} holders inside ({} Rust leases may have been lost): {:?}",
        rust.lost,
        rust.violations
    );
    let Some([java_acquisitions, java_max_seen, java_violation_count, java_mixed]) =
        java::numbers(&churned)
    else {
        panic!("CHURNED <acquisitions> <maxSeen> <violations> <mixed>: {churned:?}");
    };
    assert_eq!(java_violation_count, 0, "{churned}");

    assert_eq!(java_acquisitions, JAVA_HOLDERS * ROUNDS, "{churned}");
    assert_eq!(rust.acquisitions, RUST_HOLDERS * ROUNDS);
    let max_seen = rust.max_seen.max(java_max_seen as usize);
    assert_eq!(
        max_seen, MAX_LEASES as usize,
        "the semaphore was never seen full: at most {max_seen} holders inside at once"
    );
    assert!(
        rust.mixed > 0,
        "no Rust holder ever saw a Java holder inside ({} listings)",
        rust.acquisitions
    );
    assert!(
        java_mixed > 0,
        "no Java holder ever saw a Rust holder inside: {churned}"
    );
    tracing::info!(
        rust_acquisitions = rust.acquisitions,
        rust_max_seen = rust.max_seen,
        rust_mixed = rust.mixed,
        java_acquisitions,
        java_max_seen,
        java_mixed,
        "semaphore checks"
    );

    await_leases(&observer, &path, 0).await;
    eventually_children(&observer, &inside_path, 0, "every marker deleted").await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// Java holds all three leases (three clients): a Rust try fails and leaves no node behind,
/// and a waiting Rust acquire is granted once Java releases one. Then Rust holds all three:
/// a Java try times out, and a waiting Java acquire is granted once Rust releases one. Each
/// side sees the other's lease nodes, with their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_semaphore_keeps_the_other_language_out() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/semaphore", unique_path("interop-sem-full"));
    let leases_path = format!("{path}/leases");
    let locks_path = format!("{path}/locks");
    let mut worker = start_worker(&server, &path, "java", "/unused").await;
    let observer = connect(&server).await;
    let view = InterProcessSemaphoreV2::new(&observer, &path, MAX_LEASES).unwrap();

    // Java takes every lease, on three sessions.
    let mut java_nodes = Vec::new();
    for slot in ["a", "b", "c"] {
        worker.send(&format!("ACQUIRE {slot}")).await;
        let line = worker.expect(&format!("ACQUIRED {slot} "), DEADLINE).await;
        java_nodes.push(lease_node(&line));
    }
    for node in &java_nodes {
        assert!(
            is_curator_lease_name(node),
            "Curator's lease node name: {node}"
        );
    }
    await_lease_nodes(&view, &java_nodes).await;

    // A Rust acquire cannot get in; the tries that failed leave no node behind, neither a
    // lease nor the internal lock's.
    let client = connect(&server).await;
    let semaphore = InterProcessSemaphoreV2::new(&client, &path, MAX_LEASES)
        .unwrap()
        .with_id("rust-1");
    assert!(semaphore
        .try_acquire(Duration::ZERO)
        .await
        .unwrap()
        .is_none());
    assert!(semaphore
        .try_acquire(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    await_lease_nodes(&view, &java_nodes).await;
    eventually_children(
        &observer,
        &locks_path,
        0,
        "the failed tries' lock nodes gone",
    )
    .await;
    assert_eq!(java_participants(&mut worker).await, "java-a,java-b,java-c");

    // A Rust acquire waits, its lease node beside Java's three, until Java releases one.
    let released = format!("{leases_path}/{}", java_nodes[0]);
    let waiter = {
        let (semaphore, client) = (semaphore.clone(), client.clone());
        tokio::spawn(async move {
            let lease = semaphore.acquire().await.unwrap();
            // Read on the waiter's own session, which has seen its grant: a grant made while
            // Java still held three leases would find Java's released node still there.
            let released_gone = client.exists(&released).await.unwrap().is_none();
            (lease, released_gone)
        })
    };
    await_lease_count(&view, 4).await;
    assert_eq!(
        java_participants(&mut worker).await,
        "java-a,java-b,java-c,rust-1"
    );
    assert!(
        !waiter.is_finished(),
        "the Rust acquire was granted while Java held every lease"
    );
    worker.send("RELEASE a").await;
    worker.expect("RELEASED a", DEADLINE).await;
    let (first, released_gone) = join_within(
        waiter,
        DEADLINE,
        "the Rust acquire's grant after Java released a lease",
    )
    .await;
    assert!(
        released_gone,
        "the Rust acquire was granted beside Java's three leases"
    );
    assert!(
        is_curator_lease_name(first.node_name()),
        "Curator's lease node name: {}",
        first.node_name()
    );
    assert_eq!(
        first.node_path(),
        format!("{leases_path}/{}", first.node_name())
    );
    assert!(!first.is_lost());
    await_lease_nodes(
        &view,
        &[
            java_nodes[1].as_str(),
            java_nodes[2].as_str(),
            first.node_name(),
        ],
    )
    .await;
    assert_eq!(java_participants(&mut worker).await, "java-b,java-c,rust-1");

    // Java lets go of the rest; Rust takes every lease.
    for slot in ["b", "c"] {
        worker.send(&format!("RELEASE {slot}")).await;
        worker.expect(&format!("RELEASED {slot}"), DEADLINE).await;
    }
    let more = semaphore
        .try_acquire_many(2, DEADLINE)
        .await
        .unwrap()
        .expect("the two leases Java released");
    assert_eq!(more.len(), 2);
    let mut rust_leases: Vec<Lease> = vec![first];
    rust_leases.extend(more);
    let rust_nodes: Vec<String> = rust_leases
        .iter()
        .map(|lease| lease.node_name().to_owned())
        .collect();
    await_lease_nodes(&view, &rust_nodes).await;
    assert_eq!(java_participants(&mut worker).await, "rust-1,rust-1,rust-1");

    // A Java try times out, and leaves no node behind.
    worker.send("TRY_ACQUIRE d 300").await;
    let refused = worker.expect("ACQUIRE", DEADLINE).await;
    assert_eq!(
        refused, "ACQUIRE_TIMEOUT d",
        "a Java acquire got a lease while Rust held every one"
    );
    await_lease_nodes(&view, &rust_nodes).await;
    eventually_children(&observer, &locks_path, 0, "the Java try's lock node gone").await;

    // A Java acquire waits, its lease node beside Rust's three, until Rust releases one.
    worker
        .send(&format!("TRY_ACQUIRE d {}", DEADLINE.as_millis()))
        .await;
    await_lease_count(&view, 4).await;
    assert_eq!(
        java_participants(&mut worker).await,
        "rust-1,rust-1,rust-1,java-d"
    );
    for lease in &rust_leases {
        assert!(!lease.is_lost());
    }
    let mut rust_leases = rust_leases.into_iter();
    rust_leases.next().unwrap().release().await.unwrap();
    let granted = worker.expect("ACQUIRE", DEADLINE).await;
    assert!(
        granted.starts_with("ACQUIRED d "),
        "the waiting Java acquire is granted once Rust released a lease: {granted}"
    );
    let java_node = lease_node(&granted);
    assert!(
        is_curator_lease_name(&java_node) && !rust_nodes.contains(&java_node),
        "a new lease node for Java: {java_node}"
    );
    await_lease_nodes(
        &view,
        &[
            java_node.as_str(),
            rust_nodes[1].as_str(),
            rust_nodes[2].as_str(),
        ],
    )
    .await;

    for lease in rust_leases {
        lease.release().await.unwrap();
    }
    worker.send("RELEASE d").await;
    worker.expect("RELEASED d", DEADLINE).await;
    await_leases(&observer, &path, 0).await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
}

/// Curator's `InterProcessSemaphoreMutex` and this crate's share one mutex on one path: each
/// keeps the other out while it holds, and a waiter of either language gets in once the other
/// releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_mutexes_of_both_languages_share_one_mutex() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/mutex", unique_path("interop-sem-mutex"));
    let leases_path = format!("{path}/leases");
    let mut worker = start_worker(&server, &path, "java", "/unused").await;
    let client = connect(&server).await;
    let mutex = InterProcessSemaphoreMutex::new(&client, &path)
        .unwrap()
        .with_id("rust");

    worker.send("MUTEX_TRY a 10000").await;
    worker.expect("MUTEX_ACQUIRED a", DEADLINE).await;
    assert!(
        mutex.try_acquire(Duration::ZERO).await.unwrap().is_none(),
        "Rust got in beside Curator's holder"
    );
    let waiting = tokio::spawn({
        let mutex = mutex.clone();
        async move { mutex.acquire().await }
    });
    // The Rust waiter's lease node waits beside the Java holder's.
    eventually_children(&client, &leases_path, 2, "the Rust waiter's lease node").await;
    assert!(!waiting.is_finished());
    worker.send("MUTEX_RELEASE a").await;
    worker.expect("MUTEX_RELEASED a", DEADLINE).await;
    let lease = join_within(
        waiting,
        DEADLINE,
        "the Rust waiter gets in once Curator's holder releases",
    )
    .await
    .expect("lease");

    worker.send("MUTEX_TRY b 300").await;
    worker.expect("MUTEX_TIMEOUT b", DEADLINE).await;
    worker.send("MUTEX_TRY b 10000").await;
    // Curator's waiter keeps its lease node while it waits.
    eventually_children(&client, &leases_path, 2, "the Java waiter's lease node").await;
    lease.release().await.expect("release");
    worker.expect("MUTEX_ACQUIRED b", DEADLINE).await;
    worker.send("MUTEX_RELEASE b").await;
    worker.expect("MUTEX_RELEASED b", DEADLINE).await;
    await_leases(&client, &path, 0).await;
    worker.quit("QUIT", DEADLINE).await;
    client.close().await;
}
