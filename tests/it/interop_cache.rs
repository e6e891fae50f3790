//! `CuratorCache` against Apache Curator 5.4's `CuratorCache` (Debian's
//! `libcurator-recipes-java`): a Java cache and a Rust cache over one tree, while Curator and
//! this crate's `Client` change it at the same time, end holding the same nodes as the server
//! (by path, `mzxid` and data), and a change made on either side is an event on the other.
//!
//! The Java side is `tests/java/CuratorCacheWorker.java`, compiled with `javac` on first use
//! and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where Java
//! or Curator is not installed.

use std::time::Duration;

use crate::cache::{
    connect, converged, make, next_event, random_changes, server_tree, Contents, Replayer, DEADLINE,
};
use crate::common::java::{self, JavaProcess};
use crate::common::{init_tracing, unique_path, zk_server};
use zk_recipes::cache::{CacheEvent, CuratorCache};
use zk_recipes::Client;

const WORKER: &str = "CuratorCacheWorker";
/// How deep the random changes go below the cached path (and so how deep the checks read).
const MAX_DEPTH: usize = 4;

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex data"))
        .collect()
}

/// The Java cache's contents, from its `DUMP <path>=<mzxid>:<hex>;...` answer.
async fn java_contents(worker: &mut JavaProcess) -> Contents {
    let dump = worker.query("DUMP", DEADLINE).await;
    dump.split(';')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (path, rest) = entry.split_once('=').expect("<path>=<mzxid>:<hex>");
            let (mzxid, hex) = rest.split_once(':').expect("<mzxid>:<hex>");
            (
                path.to_owned(),
                (mzxid.parse().expect("an mzxid"), Some(unhex(hex))),
            )
        })
        .collect()
}

/// Waits until the Java cache holds the server's tree at `root`.
async fn java_converged(worker: &mut JavaProcess, observer: &Client, root: &str) {
    let started = std::time::Instant::now();
    loop {
        let server = server_tree(observer, root, MAX_DEPTH, true).await;
        let cached = java_contents(worker).await;
        if cached == server {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "Curator's cache did not converge in {DEADLINE:?}:\n java:   {cached:?}\n server: {server:?}"
        );
        tokio::time::sleep(crate::common::POLL_INTERVAL).await;
    }
}

/// Curator's create-or-set with parents of `path` to `text`, by the worker.
async fn java_set(worker: &mut JavaProcess, path: &str, text: &str) {
    worker.send(&format!("SET {path} {text}")).await;
    worker.expect(&format!("SET {path}"), DEADLINE).await;
}

/// Curator's recursive delete of `path`, by the worker.
async fn java_delete(worker: &mut JavaProcess, path: &str) {
    worker.send(&format!("DELETE {path}")).await;
    worker.expect(&format!("DELETED {path}"), DEADLINE).await;
}

/// The hex form of `data`, as the worker prints it.
fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_caches_over_one_tree_changed_from_both_sides_hold_the_same_nodes() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("interop-cache");
    make(&writer, &root, b"root").await;
    make(&writer, &format!("{root}/rust"), b"before").await;

    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), root.as_str()]).await;
    worker.send("START").await;
    worker.expect("STARTED", DEADLINE).await;
    java_set(&mut worker, &format!("{root}/java/a/b"), "java-before").await;

    let client = connect(&server).await;
    let cache = CuratorCache::builder(&client, &root)
        .max_depth(MAX_DEPTH)
        .build()
        .unwrap();
    let mut replayer = Replayer::of(&cache);
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    converged("after the load", &cache, &mut replayer, &writer, MAX_DEPTH).await;
    java_converged(&mut worker, &writer, &root).await;

    // Curator and this crate's client change the same subtrees at the same time.
    worker.send("RANDOM 7 300").await;
    random_changes(&writer, &root, 11, 300).await;
    worker.expect("RANDOMIZED", Duration::from_secs(120)).await;
    // Curator's recursive delete of a subtree, and Curator's create-with-parents.
    java_delete(&mut worker, &format!("{root}/n1")).await;
    java_set(&mut worker, &format!("{root}/n1/deep/er"), "java-after").await;
    writer
        .set_data(&format!("{root}/rust"), b"after", None)
        .await
        .unwrap();

    converged(
        "after both sides' changes",
        &cache,
        &mut replayer,
        &writer,
        MAX_DEPTH,
    )
    .await;
    java_converged(&mut worker, &writer, &root).await;
    let rust = crate::cache::contents_of(&cache.snapshot());
    assert_eq!(
        java_contents(&mut worker).await,
        rust,
        "one tree, two caches"
    );
    assert!(rust.len() > 3, "the random changes left a tree: {rust:?}");

    worker.quit("QUIT", DEADLINE).await;
    cache.close().await;
    client.close().await;
    writer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_on_either_side_is_an_event_in_the_other_sides_cache() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("interop-cache-events");
    make(&writer, &root, b"").await;
    make(&writer, &format!("{root}/x"), b"0").await;

    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), root.as_str()]).await;
    worker.send("START").await;
    worker.expect("STARTED", DEADLINE).await;
    let client = connect(&server).await;
    let cache = CuratorCache::new(&client, &root).unwrap();
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    let mut events = cache.events();
    let x = format!("{root}/x");

    // Rust sets, Java sees the change with the same mzxid and data.
    let stat = writer.set_data(&x, b"from-rust", None).await.unwrap();
    let seen = worker
        .expect(&format!("EVENT CHANGED {x} "), DEADLINE)
        .await;
    assert_eq!(
        seen,
        format!("EVENT CHANGED {x} {} {}", stat.mzxid, hex(b"from-rust"))
    );
    assert!(matches!(
        next_event(&mut events).await,
        CacheEvent::Changed { new, .. } if new.data() == Some(&b"from-rust"[..])
    ));

    // Java sets, Rust sees the change with the server's mzxid and data.
    java_set(&mut worker, &x, "from-java").await;
    let CacheEvent::Changed { old, new } = next_event(&mut events).await else {
        panic!("a change of {x}");
    };
    assert_eq!(old.data(), Some(&b"from-rust"[..]));
    assert_eq!(new.data(), Some(&b"from-java"[..]));
    let (_, server_stat) = writer.get_data(&x).await.unwrap().unwrap();
    assert_eq!(new.stat().mzxid, server_stat.mzxid);

    // Java creates with parents: Rust sees each node created, parents first.
    java_set(&mut worker, &format!("{root}/made/by/java"), "j").await;
    let mut created = Vec::new();
    for _ in 0..3 {
        match next_event(&mut events).await {
            CacheEvent::Created(node) => created.push(node.path().to_owned()),
            other => panic!("a creation, not {other:?}"),
        }
    }
    assert_eq!(
        created,
        [
            format!("{root}/made"),
            format!("{root}/made/by"),
            format!("{root}/made/by/java")
        ]
    );
    let made = format!("{root}/made/by/java");
    worker
        .expect(&format!("EVENT CREATED {made} "), DEADLINE)
        .await;

    // Rust deletes, Java sees it; Java deletes recursively, Rust sees each node go.
    writer.delete(&x, None).await.unwrap();
    worker
        .expect(&format!("EVENT DELETED {x} "), DEADLINE)
        .await;
    assert!(matches!(
        next_event(&mut events).await,
        CacheEvent::Deleted(node) if node.path() == x
    ));
    java_delete(&mut worker, &format!("{root}/made")).await;
    let mut deleted = Vec::new();
    for _ in 0..3 {
        match next_event(&mut events).await {
            CacheEvent::Deleted(node) => deleted.push(node.path().to_owned()),
            other => panic!("a deletion, not {other:?}"),
        }
    }
    deleted.sort();
    assert_eq!(
        deleted,
        [
            format!("{root}/made"),
            format!("{root}/made/by"),
            format!("{root}/made/by/java")
        ]
    );
    assert_eq!(cache.len(), 1, "only the root is left");

    worker.quit("QUIT", DEADLINE).await;
    cache.close().await;
    client.close().await;
    writer.close().await;
}
