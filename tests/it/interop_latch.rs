//! `LeaderLatch` in Curator's layout (`LatchLayout::Curator`) against Apache Curator 5.4's
//! `LeaderLatch` (Debian's `libcurator-recipes-java`): Java and Rust latches in one election
//! on one path.
//!
//! The Java side is `tests/java/CuratorLatchWorker.java`, compiled with `javac` on first use
//! and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where Java or
//! Curator is not installed.

use std::time::Duration;

use crate::common::java::{self, JavaProcess};
use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::{Client, CloseMode, LatchLayout, LeaderLatch};

const DEADLINE: Duration = Duration::from_secs(30);

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(10),
        Duration::from_secs(3),
    )
    .await
}

/// One candidate of the mixed election.
enum Candidate {
    Java(&'static str),
    Rust(LeaderLatch),
}

impl Candidate {
    fn id(&self) -> String {
        match self {
            Candidate::Java(slot) => format!("java-{slot}"),
            Candidate::Rust(latch) => latch.id().to_owned(),
        }
    }

    /// Whether this candidate leads, by its own latch's account.
    async fn leads(&self, worker: &mut JavaProcess) -> bool {
        match self {
            Candidate::Java(slot) => {
                worker.send(&format!("HAS {slot}")).await;
                let line = worker.expect(&format!("HAS {slot} "), DEADLINE).await;
                line.ends_with("true")
            }
            Candidate::Rust(latch) => latch.is_leader(),
        }
    }
}

/// Java and Rust latches take turns in one election, in the order they joined: at every step
/// exactly one of them leads, by its own latch's account, and Curator's view of the leader,
/// the Rust latches' view and the server (the verified check) all agree on who it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_latches_share_one_election() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("interop-latch"));
    let mut worker = JavaProcess::worker(
        "CuratorLatchWorker",
        &[server.as_str(), path.as_str(), "java"],
    )
    .await;
    let observer = connect(&server).await;
    let rust_latch = |client: &Client, id: &str| {
        LeaderLatch::new(client, &path)
            .unwrap()
            .with_id(id)
            .with_layout(LatchLayout::Curator)
    };

    let nodes_are = |n: usize| {
        let observer = observer.clone();
        let path = path.clone();
        async move {
            observer
                .children(&path)
                .await
                .unwrap()
                .unwrap_or_default()
                .iter()
                .filter(|c| c.contains("-latch-"))
                .count()
                == n
        }
    };

    // They join in this order, one at a time (Curator's start returns before its node
    // exists, so each join is awaited on the server): java-1, rust-1, java-2, rust-2.
    let rust_clients = [connect(&server).await, connect(&server).await];
    worker.send("START 1").await;
    worker.expect("STARTED 1", DEADLINE).await;
    worker.expect("LEADER 1", DEADLINE).await;
    let rust_1 = rust_latch(&rust_clients[0], "rust-1");
    rust_1.start().await.unwrap();
    worker.send("START 2").await;
    worker.expect("STARTED 2", DEADLINE).await;
    eventually_async("java-2's node", DEADLINE, || nodes_are(3)).await;
    let rust_2 = rust_latch(&rust_clients[1], "rust-2");
    rust_2.start().await.unwrap();
    let mut candidates = vec![
        Candidate::Java("1"),
        Candidate::Rust(rust_1),
        Candidate::Java("2"),
        Candidate::Rust(rust_2),
    ];
    eventually_async("four latch nodes", DEADLINE, || nodes_are(4)).await;

    while !candidates.is_empty() {
        let expected = candidates[0].id();
        // The leader is the first to have joined, and only it leads.
        if let Candidate::Rust(latch) = &candidates[0] {
            tokio::time::timeout(DEADLINE, latch.await_leadership())
                .await
                .expect("the Rust latch's turn")
                .unwrap();
            assert!(latch.has_leadership().await, "the server disagrees");
        }
        let mut leaders = Vec::new();
        for candidate in &candidates {
            if candidate.leads(&mut worker).await {
                leaders.push(candidate.id());
            }
        }
        assert_eq!(
            leaders,
            std::slice::from_ref(&expected),
            "leaders across languages"
        );
        // Curator's view and the Rust view of the election agree.
        worker.send("LEADER").await;
        let curator_view = worker.expect("LEADER_IS ", DEADLINE).await;
        assert_eq!(curator_view, format!("LEADER_IS {expected}"));
        for candidate in &candidates {
            if let Candidate::Rust(latch) = candidate {
                let leader = latch.leader().await.unwrap().expect("a leader");
                assert_eq!(leader.id, expected, "the Rust view of the election");
            }
        }
        // The leader leaves; the next to have joined leads.
        let leaving = candidates.remove(0);
        match leaving {
            Candidate::Java(slot) => {
                worker.send(&format!("CLOSE {slot}")).await;
                worker.expect(&format!("CLOSED {slot}"), DEADLINE).await;
            }
            Candidate::Rust(latch) => latch.close_with(CloseMode::NotifyLeader).await.unwrap(),
        }
        if let Some(Candidate::Java(slot)) = candidates.first() {
            worker.expect(&format!("LEADER {slot}"), DEADLINE).await;
        }
        let left = candidates.len();
        eventually_async("the leaver's node to go", DEADLINE, || nodes_are(left)).await;
    }
    worker.quit("QUIT", Duration::from_secs(10)).await;
}
