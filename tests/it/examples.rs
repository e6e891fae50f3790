//! Runs every example to completion against a real ZooKeeper, with short timings, and checks
//! that the two leader-election demo programs print what the classic programs they reproduce
//! print.
//!
//! `cargo test` builds the examples before it runs tests; this finds them next to the test
//! binary.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{init_tracing, zk_server};

/// Runs `target/<profile>/examples/<name>` with `args` against the shared server.
async fn run_example(name: &str, args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo test builds examples, run this through cargo test",
        path.display()
    );
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&path)
            .args(args)
            .env("ZK_CONNECT", zk_server().await)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} did not finish within 120 s"))
    .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

/// The five-client latch program: every client connects and closes, one leader at a time,
/// each told when it stops leading.
fn check_latch_output(out: &str) {
    for i in 0..5 {
        assert_eq!(
            lines_with(out, &format!("Client [{i}] Server connected...")).len(),
            1,
            "{out}"
        );
        assert_eq!(
            lines_with(out, &format!("Client [{i}] Server closed...")).len(),
            1,
            "{out}"
        );
    }
    // Every leader is told when it closes (NotifyLeader), and leadership passes on while
    // clients remain: each "I am the leader" is followed by that client's "I am the follower".
    let leaders = lines_with(out, "I am the leader !");
    let followers = lines_with(out, "I am the follower !");
    assert!(!leaders.is_empty(), "no latch was elected:\n{out}");
    assert_eq!(leaders.len(), followers.len(), "{out}");
    let mut current: Option<&str> = None;
    for line in out.lines() {
        if let Some(client) = line.strip_suffix(" I am the leader !") {
            assert!(current.is_none(), "two leaders at once:\n{out}");
            current = Some(client);
        } else if let Some(client) = line.strip_suffix(" I am the follower !") {
            assert_eq!(
                current,
                Some(client),
                "a follower line from a non-leader:\n{out}"
            );
            current = None;
        }
    }
}

/// The three-client selector program: the clients take turns in a fixed rotation.
fn check_selector_output(out: &str) {
    // Closing the clients one by one ends the rotation; check it up to there.
    let (running, _) = out
        .split_once("Stopping the clients...")
        .expect("the example says when it stops the clients");
    let turns: Vec<&str> = running
        .lines()
        .filter_map(|l| {
            l.split(" is now the leader")
                .next()
                .filter(|_| l.contains(" is now the leader"))
        })
        .collect();
    assert!(turns.len() >= 9, "too few turns:\n{out}");
    // Fair: the three clients take turns in a fixed rotation.
    let rotation = &turns[..3];
    let mut sorted = rotation.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        3,
        "the first three turns are not three clients:\n{out}"
    );
    for (i, turn) in turns.iter().enumerate() {
        assert_eq!(
            *turn,
            rotation[i % 3],
            "turn {i} breaks the rotation:\n{out}"
        );
    }
    assert_eq!(
        lines_with(out, " is now the leader").len(),
        lines_with(out, " gave up leadership").len(),
        "{out}"
    );
}

/// The two demo programs, back to back on one server, in both orders: the selector's
/// program first (it leaves its path behind as an empty container), then the latch's, which
/// must still elect its leaders; then the selector's again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_programs_run_back_to_back_in_either_order() {
    init_tracing();
    let out = run_example("leader_selector", &["--scale", "0.05"]).await;
    check_selector_output(&out);
    let out = run_example("leader_latch", &["--scale", "0.05"]).await;
    check_latch_output(&out);
    let out = run_example("leader_selector", &["--scale", "0.05"]).await;
    check_selector_output(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_example_counts_exactly() {
    init_tracing();
    let out = run_example("mutex", &["--workers", "3", "--increments", "10"]).await;
    assert!(out.contains("final count 30 (expected 30)"), "{out}");
    assert_eq!(lines_with(&out, "fencing tokens").len(), 3, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_lock_example_keeps_the_total() {
    init_tracing();
    let out = run_example("multi_lock", &["--workers", "3", "--transfers", "8"]).await;
    assert!(out.contains("total 300 (expected 300)"), "{out}");
    assert_eq!(lines_with(&out, "8 transfers").len(), 3, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_lock_example_never_tears_a_configuration() {
    init_tracing();
    let args = ["--readers", "3", "--writers", "2", "--publishes", "4"];
    let out = run_example("read_write_lock", &args).await;
    assert!(out.contains("final version 8 (expected 8)"), "{out}");
    assert_eq!(lines_with(&out, "8 reads, 0 torn").len(), 3, "{out}");
    assert_eq!(lines_with(&out, "4 publishes").len(), 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_example_never_holds_more_than_its_leases() {
    init_tracing();
    let out = run_example("semaphore", &["--workers", "5", "--jobs", "4"]).await;
    assert!(out.contains("(limit 3)"), "{out}");
    let most: usize = lines_with(&out, "most leases held at once:")[0]
        .split_whitespace()
        .nth(5)
        .and_then(|n| n.parse().ok())
        .expect("the figure");
    assert!((1..=3).contains(&most), "{out}");
    assert_eq!(lines_with(&out, "4 jobs of").len(), 5, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_lock_example_sees_the_lock_lost() {
    init_tracing();
    let out = run_example("lost_lock", &[]).await;
    for expected in [
        "holder: acquired",
        "holder: lost() fired; is_lost() = true",
        "holder: guarded write refused",
        "other: acquired",
    ] {
        assert!(out.contains(expected), "missing {expected:?}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_watch_example_prints_the_tree_then_every_change() {
    init_tracing();
    let out = run_example("config_watch", &["--changes", "6"]).await;
    for expected in [
        "Configuration under /demo/config",
        "  /demo/config/database/pool = 10",
        "  /demo/config/http/port = 8080",
        "changed /demo/config/database/pool = 20 (was 10)",
        "created /demo/config/features/dark-mode = on",
        "deleted /demo/config/features/dark-mode",
        "changed /demo/config/database/pool = 23 (was 20)",
        "Done.",
    ] {
        assert!(out.contains(expected), "missing {expected:?}:\n{out}");
    }
    assert_eq!(lines_with(&out, "created ").len(), 2, "{out}");
    assert_eq!(lines_with(&out, "deleted ").len(), 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_registry_example_prints_workers_as_they_come_and_go() {
    init_tracing();
    let out = run_example("worker_registry", &["--demo", "3"]).await;
    for expected in [
        "Watching...",
        "joined worker-1 at 10.0.0.1:8080",
        "joined worker-2 at 10.0.0.2:8080",
        "joined worker-3 at 10.0.0.3:8080",
        "moved worker-2 from 10.0.0.2:8080 to 10.0.0.2:9090",
        "left worker-3 (was at 10.0.0.3:8080)",
        "Workers now: {\"worker-1\": \"10.0.0.1:8080\", \"worker-2\": \"10.0.0.2:9090\"}",
        "Done.",
    ] {
        assert!(out.contains(expected), "missing {expected:?}:\n{out}");
    }
    let joined = out.find("joined worker-3").expect("worker-3 joined");
    let left = out.find("left worker-3").expect("worker-3 left");
    assert!(joined < left, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_example_calls_two_instances_round_robin() {
    init_tracing();
    let out = run_example("discovery", &["--calls", "4"]).await;
    for expected in [
        "registered greeter-1 at http://127.0.0.1:8081/greet",
        "registered greeter-2 at http://127.0.0.1:8082/greet",
        "2 instances of greeter: [\"greeter-1\", \"greeter-2\"]",
        "call 1: picked greeter-1 (http://127.0.0.1:8081/greet): Hello from greeter-1",
        "call 2: picked greeter-2 (http://127.0.0.1:8082/greet): Hello from greeter-2",
        "call 3: picked greeter-1",
        "call 4: picked greeter-2",
        "Done.",
    ] {
        assert!(out.contains(expected), "missing {expected:?}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_example_takes_every_number_once() {
    init_tracing();
    let out = run_example("counter", &["--workers", "3", "--numbers", "4"]).await;
    assert!(out.contains("12 numbers taken, 12 distinct"), "{out}");
    assert_eq!(lines_with(&out, " took ").len(), 12, "{out}");
    assert!(out.contains("Done."), "{out}");
}
