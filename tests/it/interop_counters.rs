//! `DistributedAtomicLong`, `SharedCount` and `DistributedDoubleBarrier` against Apache Curator
//! 5.4's (Debian's `libcurator-recipes-java`): Java and Rust counters increment one counter at
//! once (one of each promoted to one lock) and claim every value exactly once; a shared count
//! written by either language is read, watched and version-checked by the other; and a double
//! barrier of Java and Rust members lets nobody in before all have come, nor out before all
//! have started to leave.
//!
//! The Java side is `tests/java/CuratorCounterWorker.java`, compiled with `javac` on first use
//! and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where Java
//! or Curator is not installed.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;

use crate::common::java::{self, JavaProcess};
use crate::common::{
    children_of, eventually_async, eventually_children, init_tracing, join_within, unique_path,
    zk_server,
};
use zk_recipes::barriers::DistributedDoubleBarrier;
use zk_recipes::retry::RetryNTimes;
use zk_recipes::shared::{DistributedAtomicLong, PromotedToLock, SharedCount};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::Client;

const DEADLINE: Duration = Duration::from_secs(30);
const WORKER: &str = "CuratorCounterWorker";

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(10),
        Duration::from_secs(3),
    )
    .await
}

/// Reads the worker's lines until one starting with each of `prefixes` has come, in any
/// order; returns them in the order of `prefixes`.
///
/// # Panics
///
/// On an `ERROR` line, the end of the output, or after [`DEADLINE`] in all.
async fn expect_each(worker: &mut JavaProcess, prefixes: &[String]) -> Vec<String> {
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut found: Vec<Option<String>> = vec![None; prefixes.len()];
    while found.iter().any(Option::is_none) {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let Some(line) = worker.next_line(left).await else {
            panic!(
                "the Java process ended while we waited for {prefixes:?}; it said {:?}",
                worker.transcript()
            );
        };
        assert!(
            !line.starts_with("ERROR"),
            "the Java process failed while we waited for {prefixes:?}: {line}"
        );
        if let Some(i) = (0..prefixes.len())
            .find(|&i| found[i].is_none() && line.starts_with(prefixes[i].as_str()))
        {
            found[i] = Some(line);
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}

/// The worker's next line if one comes within `quiet`, else `None`. (Reading a line is
/// cancel safe: a line that comes later is read by the next call.)
async fn line_within(worker: &mut JavaProcess, quiet: Duration) -> Option<String> {
    tokio::time::timeout(quiet, worker.next_line(DEADLINE))
        .await
        .ok()
        .flatten()
}

/// The post values of a worker's `COUNTED <slot> <successes> <v1,v2,...>`, checked against
/// its count of successes.
fn java_posts(line: &str) -> Vec<i64> {
    let successes: usize = java::word(line, 2).parse().expect("a count of successes");
    let posts: Vec<i64> = line
        .split_whitespace()
        .nth(3)
        .unwrap_or("")
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().expect("a post value"))
        .collect();
    assert_eq!(posts.len(), successes, "successes and post values: {line}");
    posts
}

/// Two Java counters (a Curator client each) and two Rust counters (a client each) add 1,
/// 200 times each, to one counter at once; one counter of each language is promoted to the
/// same lock (Curator's lock nodes) after a lost race. Every increment that reports success
/// claims its post value: across both languages no value is claimed twice, the claimed values
/// are exactly 1 to the final value, and the final value, read by both languages, is the
/// number of successes. Not vacuous: most increments succeed (at least 90%), the languages'
/// claims interleave (they counted at once), and both promoted counters took the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_counters_claim_every_value_once() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    const ROUNDS: usize = 200;
    let server = zk_server().await;
    let base = unique_path("interop-counter");
    let counter_path = format!("{base}/counter");
    let lock_path = format!("{base}/lock");
    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), base.as_str()]).await;

    // The Rust counters connect first, and start as soon as the Java ones have.
    let mut counters = Vec::new();
    for promoted in [true, false] {
        let client = connect(&server).await;
        let builder = DistributedAtomicLong::builder(&client, &counter_path);
        // The promoted counters (of both languages) go to the lock after their first lost
        // race, so that they meet there often.
        let builder = if promoted {
            builder
                .retry_policy(RetryNTimes::new(0, Duration::ZERO))
                .promoted_to_lock(
                    PromotedToLock::new(&lock_path)
                        .retry_policy(RetryNTimes::new(10, Duration::from_millis(10))),
                )
        } else {
            builder.retry_policy(RetryNTimes::new(50, Duration::from_millis(1)))
        };
        counters.push((client, builder.build().unwrap()));
    }
    worker
        .send(&format!("COUNT a {counter_path} {ROUNDS} yes {lock_path}"))
        .await;
    worker
        .send(&format!("COUNT b {counter_path} {ROUNDS} no {lock_path}"))
        .await;
    expect_each(
        &mut worker,
        &["COUNTING a".to_owned(), "COUNTING b".to_owned()],
    )
    .await;
    let mut tasks = Vec::new();
    for (client, counter) in counters {
        tasks.push(tokio::spawn(async move {
            let mut posts = Vec::new();
            let mut promoted_tries = 0;
            for _ in 0..ROUNDS {
                let value = counter.increment().await.expect("increment");
                promoted_tries += value.stats.promoted_lock_tries;
                if value.succeeded {
                    assert_eq!(value.post_value, value.pre_value + 1, "{value:?}");
                    posts.push(value.post_value);
                }
            }
            (client, posts, promoted_tries)
        }));
    }

    let mut rust_posts = Vec::new();
    let mut rust_promoted_tries = 0;
    let mut clients = Vec::new();
    for task in tasks {
        let (client, posts, promoted_tries) =
            join_within(task, DEADLINE * 2, "the Rust counters finish").await;
        rust_posts.extend(posts);
        rust_promoted_tries += promoted_tries;
        clients.push(client);
    }
    let lines = expect_each(
        &mut worker,
        &[
            "COUNT_STATS a ".to_owned(),
            "COUNT_STATS b ".to_owned(),
            "COUNTED a ".to_owned(),
            "COUNTED b ".to_owned(),
        ],
    )
    .await;
    let mut java_posts_all = java_posts(&lines[2]);
    java_posts_all.extend(java_posts(&lines[3]));

    let total = rust_posts.len() + java_posts_all.len();
    let mut claimed: Vec<i64> = rust_posts.iter().chain(&java_posts_all).copied().collect();
    claimed.sort_unstable();
    let distinct: BTreeSet<i64> = claimed.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "a post value was claimed twice (Rust {} successes, Java {})",
        rust_posts.len(),
        java_posts_all.len()
    );
    let final_value = DistributedAtomicLong::new(&clients[0], &counter_path)
        .unwrap()
        .get()
        .await
        .unwrap()
        .post_value;
    assert_eq!(
        final_value,
        total as i64,
        "the counter is the number of successful increments (Rust {}, Java {})",
        rust_posts.len(),
        java_posts_all.len()
    );
    worker.send(&format!("GET {counter_path}")).await;
    let java_value = worker.expect("VALUE ", DEADLINE).await;
    assert_eq!(
        java_value,
        format!("VALUE {final_value}"),
        "Curator's reading"
    );
    assert_eq!(
        claimed,
        (1..=final_value).collect::<Vec<_>>(),
        "every value from 1 to the final one claimed once"
    );
    assert!(
        total * 10 >= 4 * ROUNDS * 9,
        "only {total} of {} increments succeeded",
        4 * ROUNDS
    );
    // They counted at once: each language claimed values between two of the other's.
    let (rust_min, rust_max) = (rust_posts.iter().min(), rust_posts.iter().max());
    let (java_min, java_max) = (java_posts_all.iter().min(), java_posts_all.iter().max());
    assert!(
        java_max > rust_min && rust_max > java_min,
        "the languages did not count at once: Rust {rust_min:?}..{rust_max:?}, Java {java_min:?}..{java_max:?}"
    );
    // Both promoted counters took the lock (Curator's lock nodes, shared by the languages).
    let java_promoted_tries: u64 = java::word(&lines[0], 3).parse().expect("promoted tries");
    assert!(
        rust_promoted_tries > 0 && java_promoted_tries > 0,
        "a promoted counter never took the lock: Rust {rust_promoted_tries} tries, Java {}",
        lines[0]
    );
    tracing::info!(
        total,
        rust = rust_posts.len(),
        java = java_posts_all.len(),
        rust_promoted_tries,
        java_stats_a = %lines[0],
        java_stats_b = %lines[1],
        "counter checks"
    );

    eventually_children(&clients[0], &lock_path, 0, "every lock node gone").await;
    worker.quit("QUIT", Duration::from_secs(10)).await;
    for client in clients {
        client.close().await;
    }
}

/// One `SharedCount` node, written and read by both languages: a Java write is read by Rust
/// and shows in Rust's stream of values; a Rust write (and a Rust seed) is read by Curator,
/// at the version Rust sees, and reaches a Curator listener; a Rust `try_set` from a version
/// read before a Java write fails and leaves Java's value, and one from a fresh read succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_count_is_one_count_for_both_languages() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("interop-shared-count");
    let path = format!("{base}/count");
    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), base.as_str()]).await;
    let client = connect(&server).await;
    let count = SharedCount::new(&client, &path).unwrap();

    // Java writes (making the node with Curator's seed, then setting it); Rust reads.
    worker.send(&format!("SHARED_SET {path} 7")).await;
    worker.expect("SHARED_SET_DONE", DEADLINE).await;
    assert_eq!(count.get().await.unwrap(), Some(7));

    // Rust's stream starts with the current value, then sees Java's next write.
    let mut changes = count.changes().await.unwrap();
    let first = tokio::time::timeout(DEADLINE, changes.next())
        .await
        .expect("the current value")
        .expect("a value");
    assert_eq!(first.value, 7);
    worker.send(&format!("SHARED_SET {path} 8")).await;
    worker.expect("SHARED_SET_DONE", DEADLINE).await;
    let next = tokio::time::timeout(DEADLINE, changes.next())
        .await
        .expect("Java's write in the stream")
        .expect("a value");
    assert_eq!(next.value, 8);
    assert!(next.version > first.version, "{first:?} then {next:?}");

    // Rust writes; Curator reads it at Rust's version, and its listener hears of it.
    worker.send(&format!("SHARED_WATCH {path}")).await;
    worker.expect("SHARED_WATCHING", DEADLINE).await;
    count.set(42).await.unwrap();
    worker
        .expect(&format!("SHARED_CHANGED {path} 42"), DEADLINE)
        .await;
    let seen = count.versioned().await.unwrap().expect("the node");
    assert_eq!(seen.value, 42);
    worker.send(&format!("SHARED_GET {path}")).await;
    let java_seen = worker.expect("SHARED ", DEADLINE).await;
    assert_eq!(java_seen, format!("SHARED 42 {}", seen.version));

    // A Rust try_set from a version read before a Java write fails; Java's value stays.
    worker.send(&format!("SHARED_SET {path} 100")).await;
    worker.expect("SHARED_SET_DONE", DEADLINE).await;
    assert!(
        !count.try_set(seen, 5).await.unwrap(),
        "a try_set from a stale version succeeded"
    );
    assert_eq!(count.get().await.unwrap(), Some(100));
    worker.send(&format!("SHARED_GET {path}")).await;
    let after_stale = worker.expect("SHARED ", DEADLINE).await;
    assert_eq!(java::word(&after_stale, 1), "100");
    // From a fresh read it succeeds, and Curator sees it.
    let fresh = count.versioned().await.unwrap().expect("the node");
    assert!(count.try_set(fresh, 101).await.unwrap());
    worker
        .expect(&format!("SHARED_CHANGED {path} 101"), DEADLINE)
        .await;
    worker.send(&format!("SHARED_GET {path}")).await;
    let after_fresh = worker.expect("SHARED ", DEADLINE).await;
    assert_eq!(after_fresh, format!("SHARED 101 {}", fresh.version + 1));

    // A count Rust seeds is Curator's count too.
    let seeded_path = format!("{base}/seeded");
    let seeded = SharedCount::new(&client, &seeded_path).unwrap();
    assert!(seeded.seed(3).await.unwrap());
    assert!(
        !seeded.seed(4).await.unwrap(),
        "a second seed changes nothing"
    );
    worker.send(&format!("SHARED_GET {seeded_path}")).await;
    let java_seeded = worker.expect("SHARED ", DEADLINE).await;
    assert_eq!(java_seeded, "SHARED 3 0");

    drop(changes);
    worker.quit("QUIT", Duration::from_secs(10)).await;
    client.close().await;
}

/// How long nothing must happen to show that the members are held at the barrier. Not a
/// synchronisation: the order of the events on the server is the evidence; this wait only
/// gives a barrier that lets members through too early the time to do it before the last
/// member comes.
const QUIET: Duration = Duration::from_millis(500);

/// The double barrier's members.
const JAVA_MEMBERS: [&str; 2] = ["a", "b"];
const RUST_MEMBERS: usize = 3;

/// Records an event of a Rust member, as the Java worker does: a persistent sequential node
/// `<events>/<kind>-<member>-`, whose sequence orders it among the events of both languages.
async fn record(client: &Client, events: &str, kind: &str, member: &str) {
    client
        .create(
            &format!("{events}/{kind}-{member}-"),
            b"",
            CreateMode::PersistentSequential,
            &[],
        )
        .await
        .expect("record an event");
}

/// The recorded events of `kind`: (member, sequence), in sequence order.
async fn events_of(observer: &Client, events: &str, kind: &str) -> Vec<(String, u64)> {
    let prefix = format!("{kind}-");
    let mut found: Vec<(String, u64)> = children_of(observer, events)
        .await
        .into_iter()
        .filter_map(|name| {
            let rest = name.strip_prefix(&prefix)?;
            let (member, sequence) = rest.rsplit_once('-')?;
            Some((member.to_owned(), sequence.parse().expect("a sequence")))
        })
        .collect();
    found.sort_by_key(|(_, sequence)| *sequence);
    found
}

/// Waits until the barrier holds at least `n` member nodes (its `ready` node aside), at most
/// [`DEADLINE`]. At least: a barrier that lets them through too early is left to the checks
/// that follow, which say so.
async fn members_are_in(observer: &Client, barrier_path: &str, n: usize, what: &str) {
    eventually_async(what, DEADLINE, || async {
        let children = children_of(observer, barrier_path).await;
        children.iter().filter(|c| *c != "ready").count() >= n
    })
    .await;
}

/// Every member's `passed` event comes after every member's `called` event, on the server's
/// order; all five of each.
async fn assert_nobody_passed_early(observer: &Client, events: &str, called: &str, passed: &str) {
    let calls = events_of(observer, events, called).await;
    let passes = events_of(observer, events, passed).await;
    assert_eq!(calls.len(), 5, "{called}: {calls:?}");
    assert_eq!(passes.len(), 5, "{passed}: {passes:?}");
    let last_call = calls.last().expect("five calls");
    let first_pass = passes.first().expect("five passes");
    assert!(
        first_pass.1 > last_call.1,
        "{} got through ({passed}) before {} called ({called}): calls {calls:?}, passes {passes:?}",
        first_pass.0,
        last_call.0
    );
}

/// A double barrier of five: two Java members (a Curator client each) and three Rust members
/// (a client each). The Java members and two Rust members enter, and are held (their four
/// nodes are there, and nobody gets through for a while); the last Rust member enters last,
/// and then all five get through. On the server's order, every member got through after the
/// last one called `enter`. The same for `leave`: four call it and are held; the last calls
/// it last, then all get through, each after the last call; the barrier is empty after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_barrier_of_java_and_rust_members() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("interop-double-barrier");
    let barrier_path = format!("{base}/barrier");
    let events = format!("{base}/events");
    let observer = connect(&server).await;
    observer
        .create(&events, b"", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), base.as_str()]).await;
    let qty = JAVA_MEMBERS.len() + RUST_MEMBERS;
    let mut members = Vec::new();
    for i in 0..RUST_MEMBERS {
        let client = connect(&server).await;
        let barrier = DistributedDoubleBarrier::new(&client, &barrier_path, qty).unwrap();
        members.push((format!("rust-{i}"), client, barrier));
    }
    let run = |kind: &'static str,
               (name, client, barrier): (String, Client, DistributedDoubleBarrier)| {
        let events = events.clone();
        tokio::spawn(async move {
            record(&client, &events, &format!("call-{kind}"), &name).await;
            let outcome = match kind {
                "enter" => barrier.enter().await,
                _ => barrier.leave().await,
            };
            outcome.unwrap_or_else(|e| panic!("{name} {kind}: {e}"));
            record(&client, &events, &format!("pass-{kind}"), &name).await;
            (name, client, barrier)
        })
    };

    // Entering: the Java members, then two Rust members; four nodes, and they wait.
    for slot in JAVA_MEMBERS {
        worker
            .send(&format!("ENTER {slot} {barrier_path} {qty}"))
            .await;
    }
    members_are_in(&observer, &barrier_path, 2, "the Java members' nodes").await;
    let last = members.pop().expect("three Rust members");
    let mut entering: Vec<_> = members.into_iter().map(|m| run("enter", m)).collect();
    members_are_in(&observer, &barrier_path, 4, "four members' nodes").await;
    let early = line_within(&mut worker, QUIET).await;
    assert_eq!(early, None, "a Java member said something with four in");
    assert!(
        entering.iter().all(|task| !task.is_finished()),
        "a Rust member got in with four in"
    );
    assert!(events_of(&observer, &events, "pass-enter").await.is_empty());
    // The last member enters last; then all five get through.
    entering.push(run("enter", last));
    expect_each(
        &mut worker,
        &["ENTERED a".to_owned(), "ENTERED b".to_owned()],
    )
    .await;
    let mut members = Vec::new();
    for task in entering {
        members.push(join_within(task, DEADLINE, "the Rust members get in").await);
    }
    assert_nobody_passed_early(&observer, &events, "call-enter", "pass-enter").await;
    assert!(
        children_of(&observer, &barrier_path)
            .await
            .contains(&"ready".to_owned()),
        "Curator's ready node"
    );

    // Leaving: the Java members and two Rust members call leave, and are held.
    for slot in JAVA_MEMBERS {
        worker.send(&format!("LEAVE {slot}")).await;
    }
    let last = members.pop().expect("three Rust members");
    let mut leaving: Vec<_> = members.into_iter().map(|m| run("leave", m)).collect();
    eventually_async("four members called leave", DEADLINE, || async {
        events_of(&observer, &events, "call-leave").await.len() == 4
    })
    .await;
    let early = line_within(&mut worker, QUIET).await;
    assert_eq!(
        early, None,
        "a Java member said something with four leaving"
    );
    assert!(
        leaving.iter().all(|task| !task.is_finished()),
        "a Rust member got out with four leaving"
    );
    assert!(events_of(&observer, &events, "pass-leave").await.is_empty());
    // The last member leaves last; then all five get through.
    leaving.push(run("leave", last));
    expect_each(&mut worker, &["LEFT a".to_owned(), "LEFT b".to_owned()]).await;
    let mut clients = Vec::new();
    for task in leaving {
        let (_, client, _) = join_within(task, DEADLINE, "the Rust members get out").await;
        clients.push(client);
    }
    assert_nobody_passed_early(&observer, &events, "call-leave", "pass-leave").await;
    eventually_children(&observer, &barrier_path, 0, "the barrier empty, ready gone").await;

    worker.quit("QUIT", Duration::from_secs(10)).await;
    for client in clients {
        client.close().await;
    }
    observer.close().await;
}
