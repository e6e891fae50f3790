//! `GroupMember` against Apache Curator 5.4's `GroupMember` (Debian's `libcurator-recipes-java`):
//! two Java members and three Rust members on one path form one group of five, each view
//! with the same payloads; a payload changed on either side is seen on the other; a member
//! that leaves (closed, or its session ended) goes from every view; a Rust member whose
//! session expires comes back in every view, with its payload.
//!
//! The Java side is `tests/java/CuratorGroupWorker.java`, compiled with `javac` on first use
//! and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where Java
//! or Curator is not installed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use crate::common::java::{self, JavaProcess};
use crate::common::{init_tracing, unique_path, zk_server, POLL_INTERVAL};
use zk_recipes::testing::expire_session;
use zk_recipes::{Client, GroupMember, MembershipEvent};

const DEADLINE: Duration = Duration::from_secs(30);
const WORKER: &str = "CuratorGroupWorker";

type Members = BTreeMap<String, String>;

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(6),
        Duration::from_secs(3),
    )
    .await
}

/// A Java member's view, from its `MEMBERS <id> a=p,b=q` answer.
async fn java_view(worker: &mut JavaProcess, id: &str) -> Members {
    let answer = worker.query(&format!("MEMBERS {id}"), DEADLINE).await;
    answer
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (id, payload) = entry.split_once('=').expect("<id>=<payload>");
            (id.to_owned(), payload.to_owned())
        })
        .collect()
}

fn rust_view(member: &GroupMember) -> Members {
    member
        .members()
        .into_iter()
        .map(|(id, payload)| (id, String::from_utf8(payload).expect("UTF-8 payloads")))
        .collect()
}

fn group(entries: &[(&str, &str)]) -> Members {
    entries
        .iter()
        .map(|(id, payload)| (id.to_string(), payload.to_string()))
        .collect()
}

/// Waits until every Rust member in `rust` and every Java member in `java_ids` sees
/// `expected`.
async fn every_view_is(
    what: &str,
    worker: &mut JavaProcess,
    java_ids: &[&str],
    rust: &[&GroupMember],
    expected: &Members,
) {
    let started = std::time::Instant::now();
    loop {
        let mut views = Vec::new();
        for id in java_ids {
            views.push((format!("java {id}"), java_view(worker, id).await));
        }
        for member in rust {
            views.push((format!("rust {}", member.id()), rust_view(member)));
        }
        if views.iter().all(|(_, view)| view == expected) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: the views did not agree on {expected:?} within {DEADLINE:?}: {views:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn java_join(worker: &mut JavaProcess, id: &str, payload: &str) {
    worker.send(&format!("JOIN {id} {payload}")).await;
    worker.expect(&format!("JOINED {id}"), DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_group_members_form_one_group() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("interop-group");
    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), path.as_str()]).await;
    let clients = [
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    ];
    let rust: Vec<GroupMember> = clients
        .iter()
        .enumerate()
        .map(|(i, client)| {
            GroupMember::new(client, &path, &format!("r{i}"), format!("pr{i}")).unwrap()
        })
        .collect();
    for member in &rust {
        member.start().await.unwrap();
    }
    java_join(&mut worker, "j0", "pj0").await;
    java_join(&mut worker, "j1", "pj1").await;
    let all: Vec<&GroupMember> = rust.iter().collect();
    every_view_is(
        "five members",
        &mut worker,
        &["j0", "j1"],
        &all,
        &group(&[
            ("j0", "pj0"),
            ("j1", "pj1"),
            ("r0", "pr0"),
            ("r1", "pr1"),
            ("r2", "pr2"),
        ]),
    )
    .await;

    // A payload changed on either side is seen on the other.
    rust[1].set_payload(&b"pr1-new"[..]).await.unwrap();
    worker.send("PAYLOAD j0 pj0-new").await;
    worker.expect("PAYLOADED j0", DEADLINE).await;
    every_view_is(
        "two new payloads",
        &mut worker,
        &["j0", "j1"],
        &all,
        &group(&[
            ("j0", "pj0-new"),
            ("j1", "pj1"),
            ("r0", "pr0"),
            ("r1", "pr1-new"),
            ("r2", "pr2"),
        ]),
    )
    .await;

    // Members leave: a Rust one closed, a Java one closed, a Java one whose session ends.
    let mut r0_events = rust[0].events();
    rust[2].close().await.unwrap();
    worker.send("LEAVE j1").await;
    worker.expect("LEFT j1", DEADLINE).await;
    worker.send("CRASH j0").await;
    worker.expect("CRASHED j0", DEADLINE).await;
    let mut left = Vec::new();
    while left.len() < 3 {
        match tokio::time::timeout(DEADLINE, r0_events.next())
            .await
            .unwrap()
            .unwrap()
        {
            MembershipEvent::Left { id } => left.push(id),
            other => panic!("only leaves, not {other:?}"),
        }
    }
    left.sort();
    assert_eq!(left, ["j0", "j1", "r2"]);
    java_join(&mut worker, "j2", "pj2").await;
    assert_eq!(
        tokio::time::timeout(DEADLINE, r0_events.next())
            .await
            .unwrap()
            .unwrap(),
        MembershipEvent::Joined {
            id: "j2".to_owned(),
            payload: b"pj2".to_vec()
        }
    );
    let staying: Vec<&GroupMember> = rust[..2].iter().collect();
    every_view_is(
        "after the leaves",
        &mut worker,
        &["j2"],
        &staying,
        &group(&[("j2", "pj2"), ("r0", "pr0"), ("r1", "pr1-new")]),
    )
    .await;

    // A Rust member's session expires: it leaves, and joins again with its latest payload.
    let info = clients[1].session().zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, r0_events.next())
            .await
            .unwrap()
            .unwrap(),
        MembershipEvent::Left {
            id: "r1".to_owned()
        }
    );
    assert_eq!(
        tokio::time::timeout(DEADLINE, r0_events.next())
            .await
            .unwrap()
            .unwrap(),
        MembershipEvent::Joined {
            id: "r1".to_owned(),
            payload: b"pr1-new".to_vec()
        }
    );
    every_view_is(
        "after an expiry",
        &mut worker,
        &["j2"],
        &staying,
        &group(&[("j2", "pj2"), ("r0", "pr0"), ("r1", "pr1-new")]),
    )
    .await;

    worker.quit("QUIT", DEADLINE).await;
    for member in &rust {
        member.close().await.unwrap();
    }
    for client in &clients {
        client.close().await;
    }
}
