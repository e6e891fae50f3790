//! `LeaderLatch` against real ZooKeeper servers: hand-over, session expiry, a blackholed
//! leader, an ensemble losing its leader, a deleted parent, a path held by a node no latch
//! made, and bad input.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{eventually, eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::testing::{expire_session, FaultProxy, TestingCluster};
use zk_recipes::zookeeper_client::{Acls, CreateMode};
use zk_recipes::{
    Client, CloseMode, ConnectionErrorPolicy, ConnectionState, Error, LatchLayout, LatchState,
    LeaderLatch, LeaderLatchListener,
};

const DEADLINE: Duration = Duration::from_secs(20);

async fn connect(connect_string: &str, session_timeout: Duration) -> Client {
    crate::common::connect_with(connect_string, session_timeout, Duration::from_secs(2)).await
}

/// `n` clients (so `n` sessions) with one started latch each on `path`, ids `node-0`….
async fn latches(
    connect_string: &str,
    path: &str,
    n: usize,
) -> (Vec<Client>, Vec<Arc<LeaderLatch>>) {
    latches_from(connect_string, path, 0..n).await
}

/// Like [`latches`], with ids `node-<i>` for `i` in `ids`.
async fn latches_from(
    connect_string: &str,
    path: &str,
    ids: std::ops::Range<usize>,
) -> (Vec<Client>, Vec<Arc<LeaderLatch>>) {
    let mut clients = Vec::new();
    let mut latches = Vec::new();
    for i in ids {
        let client = connect(connect_string, Duration::from_secs(4)).await;
        let latch = Arc::new(
            LeaderLatch::new(&client, path)
                .unwrap()
                .with_id(format!("node-{i}")),
        );
        latch.start().await.unwrap();
        clients.push(client);
        latches.push(latch);
    }
    (clients, latches)
}

fn leaders(latches: &[Arc<LeaderLatch>]) -> Vec<usize> {
    (0..latches.len())
        .filter(|&i| latches[i].is_leader())
        .collect()
}

async fn one_leader(what: &str, latches: &[Arc<LeaderLatch>]) -> usize {
    eventually(what, DEADLINE, || leaders(latches).len() == 1).await;
    leaders(latches)[0]
}

/// The owner session and data of the latch node, read by `observer`.
async fn node_owner(observer: &Client, path: &str) -> Option<(i64, String)> {
    observer
        .get_data(path)
        .await
        .expect("read the latch node")
        .map(|(data, stat)| (stat.ephemeral_owner, String::from_utf8(data).unwrap()))
}

/// Samples, until stopped, that at most one latch leads and that a latch seen leading before
/// and after a read of the node owns it. Returns the violations seen.
fn spawn_invariant_sampler(
    observer: Client,
    path: String,
    latches: Vec<Arc<LeaderLatch>>,
    sessions: Vec<i64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<String>, usize)> {
    tokio::spawn(async move {
        let mut violations = Vec::new();
        let mut samples = 0;
        while !stop.load(Ordering::SeqCst) {
            let before = leaders(&latches);
            let node = node_owner(&observer, &path).await;
            let after = leaders(&latches);
            samples += 1;
            if before.len() > 1 || after.len() > 1 {
                violations.push(format!("two leaders: {before:?} / {after:?}"));
            }
            if before.len() == 1 && before == after {
                let i = before[0];
                let expected = (sessions[i], format!("node-{i}"));
                if node.as_ref() != Some(&expected) {
                    violations.push(format!("latch {i} leads but the node is {node:?}"));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (violations, samples)
    })
}

/// Records every leadership transition of every latch into one ordered log, and checks, the
/// moment a latch is seen to become leader, that no other latch still believes it leads.
struct TransitionLog {
    entries: Arc<Mutex<Vec<(Instant, usize, bool)>>>,
    overlaps: Arc<Mutex<Vec<String>>>,
}

impl TransitionLog {
    fn new(latches: &[Arc<LeaderLatch>]) -> Self {
        let entries = Arc::new(Mutex::new(Vec::new()));
        let overlaps = Arc::new(Mutex::new(Vec::new()));
        for (i, latch) in latches.iter().enumerate() {
            let mut changes = latch.leadership_changes();
            let all = latches.to_vec();
            let (entries, overlaps) = (entries.clone(), overlaps.clone());
            tokio::spawn(async move {
                while let Some(leader) = changes.next().await {
                    entries.lock().unwrap().push((Instant::now(), i, leader));
                    if leader {
                        let others: Vec<usize> =
                            leaders(&all).into_iter().filter(|&j| j != i).collect();
                        if !others.is_empty() {
                            overlaps
                                .lock()
                                .unwrap()
                                .push(format!("{i} became leader while {others:?} led"));
                        }
                    }
                }
            });
        }
        Self { entries, overlaps }
    }

    fn entries(&self) -> Vec<(Instant, usize, bool)> {
        self.entries.lock().unwrap().clone()
    }

    fn overlaps(&self) -> Vec<String> {
        self.overlaps.lock().unwrap().clone()
    }
}

#[derive(Default)]
struct CountingListener {
    is_leader: AtomicUsize,
    not_leader: AtomicUsize,
}

impl LeaderLatchListener for CountingListener {
    fn is_leader(&self) {
        self.is_leader.fetch_add(1, Ordering::SeqCst);
    }
    fn not_leader(&self) {
        self.not_leader.fetch_add(1, Ordering::SeqCst);
    }
}

/// The demo program's scenario: five sessions race; each close of the leader hands over to
/// one of the others; at every sample at most one latch leads and it owns the node; the last
/// close leaves no node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_clients_hand_over_one_at_a_time() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-demo"));
    let (clients, latches) = latches(&server, &path, 5).await;
    let sessions: Vec<i64> = clients.iter().map(|c| c.session().id().0).collect();
    let observer = connect(&server, Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_invariant_sampler(
        observer.clone(),
        path.clone(),
        latches.clone(),
        sessions,
        stop.clone(),
    );

    let mut remaining: Vec<usize> = (0..5).collect();
    let mut round = 0;
    while !remaining.is_empty() {
        let active: Vec<Arc<LeaderLatch>> = remaining.iter().map(|&i| latches[i].clone()).collect();
        let leader = remaining[one_leader("a leader among the remaining latches", &active).await];
        // Every other round, a follower leaves first: that must not disturb the leader.
        if round % 2 == 1 && remaining.len() > 2 {
            let follower = *remaining.iter().find(|&&i| i != leader).unwrap();
            tokio::time::sleep(Duration::from_millis(20 * round)).await;
            latches[follower].close().await.unwrap();
            remaining.retain(|&i| i != follower);
            assert!(
                latches[leader].is_leader(),
                "closing a follower moved leadership"
            );
        }
        tokio::time::sleep(Duration::from_millis(30 * round)).await;
        latches[leader].close().await.unwrap();
        assert!(!latches[leader].is_leader());
        assert_eq!(latches[leader].state(), LatchState::Closed);
        remaining.retain(|&i| i != leader);
        if !remaining.is_empty() {
            let active: Vec<Arc<LeaderLatch>> =
                remaining.iter().map(|&i| latches[i].clone()).collect();
            let next = remaining[one_leader("the hand-over to a remaining latch", &active).await];
            let owner = node_owner(&observer, &path).await;
            assert_eq!(owner.map(|(_, id)| id), Some(format!("node-{next}")));
        }
        round += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let (violations, samples) = sampler.await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(samples > 10, "only {samples} samples");
    assert_eq!(
        node_owner(&observer, &path).await,
        None,
        "the last close left the node"
    );
}

/// The leader's session is expired on the server: a follower takes over; the old leader reports
/// `not_leader` and never claims leadership while the new one leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_session_expiry_hands_over() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-expiry"));
    let (clients, latches) = latches(&server, &path, 3).await;
    let listeners: Vec<Arc<CountingListener>> = (0..3).map(|_| Arc::default()).collect();
    for (latch, listener) in latches.iter().zip(&listeners) {
        latch.add_listener_arc(listener.clone());
    }
    let old = one_leader("a first leader", &latches).await;
    let log = TransitionLog::new(&latches);

    let races = latches[old].metrics().races;
    let info = clients[old]
        .session()
        .zookeeper()
        .unwrap()
        .session()
        .clone();
    expire_session(&server, &info).await.unwrap();

    let others: Vec<Arc<LeaderLatch>> = (0..3)
        .filter(|&i| i != old)
        .map(|i| latches[i].clone())
        .collect();
    eventually("a follower to take over", DEADLINE, || {
        others.iter().any(|l| l.is_leader())
    })
    .await;
    let new = (0..3)
        .find(|&i| i != old && latches[i].is_leader())
        .unwrap();
    // The owner's connection is dropped before its session is closed, so it may step down on
    // Suspended, win its (still live) node back, and step down again when the session ends:
    // transitions alternate, so the last one is a not_leader exactly when there are at least
    // as many not_leader as is_leader calls. (The first is_leader may or may not have reached
    // the listener: it races with `add_listener`.)
    let old_listener = &listeners[old];
    eventually("not_leader on the old leader", DEADLINE, || {
        let (up, down) = (
            old_listener.is_leader.load(Ordering::SeqCst),
            old_listener.not_leader.load(Ordering::SeqCst),
        );
        down >= 1 && down >= up
    })
    .await;

    // The old leader's client makes a new session, and its latch races again and follows.
    eventually("a new session for the old leader", DEADLINE, || {
        let s = clients[old].session();
        s.generation() >= 1 && clients[old].state().is_connected()
    })
    .await;
    eventually("the old leader to race again", DEADLINE, || {
        latches[old].metrics().races > races
    })
    .await;
    for _ in 0..50 {
        assert!(
            !latches[old].is_leader(),
            "the old leader claims leadership again"
        );
        assert!(latches[new].is_leader());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let entries = log.entries();
    let took_over = entries
        .iter()
        .position(|&(_, i, leader)| i == new && leader)
        .unwrap_or_else(|| panic!("no take-over logged: {entries:?}"));
    assert!(
        entries[took_over..]
            .iter()
            .all(|&(_, i, leader)| !(i == old && leader)),
        "the old leader claimed leadership after the take-over: {entries:?}"
    );
    assert!(log.overlaps().is_empty(), "{:?}", log.overlaps());
    let leader = latches[old].leader().await.unwrap().unwrap();
    assert_eq!(leader.id, format!("node-{new}"));
    assert_eq!(leader.session_id, clients[new].session().id());
    for latch in &latches {
        latch.close().await.unwrap();
    }
}

/// The leader's connection is blackholed: it gives leadership up on `Suspended`, before the
/// server expires its session and another latch wins. After the network is back, it does not
/// believe it leads while another does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_leader_steps_down_before_anyone_else_leads() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-blackhole"));
    let proxy = FaultProxy::start(&server).await.unwrap();
    let proxied = connect(&proxy.connect_string(), Duration::from_secs(4)).await;
    let first = Arc::new(LeaderLatch::new(&proxied, &path).unwrap().with_id("node-0"));
    first.start().await.unwrap();
    assert!(first.await_leadership_timeout(DEADLINE).await.unwrap());
    let (_clients, mut rest) = latches_from(&server, &path, 1..3).await;
    let mut all = vec![first.clone()];
    all.append(&mut rest);
    let log = TransitionLog::new(&all);
    let mut states = proxied.connection_states();

    let blackholed_at = Instant::now();
    proxy.blackhole();
    eventually("another latch to lead", DEADLINE, || {
        all[1].is_leader() || all[2].is_leader()
    })
    .await;
    assert_eq!(states.next().await, Some(ConnectionState::Suspended));

    let entries = log.entries();
    let stepped_down = entries
        .iter()
        .position(|&(_, i, leader)| i == 0 && !leader)
        .unwrap_or_else(|| panic!("the blackholed leader never stepped down: {entries:?}"));
    let took_over = entries
        .iter()
        .position(|&(_, i, leader)| i != 0 && leader)
        .unwrap_or_else(|| panic!("no take-over logged: {entries:?}"));
    assert!(
        stepped_down < took_over,
        "take-over before the step-down: {entries:?}"
    );
    assert!(entries[stepped_down].0 >= blackholed_at);
    assert!(log.overlaps().is_empty(), "{:?}", log.overlaps());

    let races = first.metrics().races;
    proxy.restore();
    eventually(
        "the blackholed client to get a new session",
        DEADLINE,
        || proxied.session().generation() >= 1 && proxied.state().is_connected(),
    )
    .await;
    eventually("the old leader to race again", DEADLINE, || {
        first.metrics().races > races
    })
    .await;
    let new = (1..3).find(|&i| all[i].is_leader()).unwrap();
    for _ in 0..50 {
        assert!(!first.is_leader(), "the old leader believes it leads again");
        assert!(all[new].is_leader());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(log.overlaps().is_empty(), "{:?}", log.overlaps());
    for latch in &all {
        latch.close().await.unwrap();
    }
}

/// A short connection cut, within the session timeout: by default the leader steps down on
/// `Suspended` and leads again after reconnecting (its node is still its session's), without
/// anyone else leading in between. With `SessionOnly` it keeps leading throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_leader_reclaims_its_node_on_the_same_session() {
    init_tracing();
    let server = zk_server().await;
    for policy in [
        ConnectionErrorPolicy::Standard,
        ConnectionErrorPolicy::SessionOnly,
    ] {
        let path = format!("{}/leader", unique_path("latch-suspend"));
        let proxy = FaultProxy::start(&server).await.unwrap();
        let proxied = connect(&proxy.connect_string(), Duration::from_secs(8)).await;
        let leader = Arc::new(
            LeaderLatch::new(&proxied, &path)
                .unwrap()
                .with_id("node-0")
                .with_error_policy(policy),
        );
        leader.start().await.unwrap();
        assert!(leader.is_leader());
        let listener = Arc::new(CountingListener::default());
        leader.add_listener_arc(listener.clone());
        let (_clients, followers) = latches_from(&server, &path, 1..3).await;
        let mut all = vec![leader.clone()];
        all.extend(followers.iter().cloned());
        let log = TransitionLog::new(&all);
        let session = proxied.session();

        proxy.cut();
        eventually("Suspended", DEADLINE, || {
            proxied.state() == ConnectionState::Suspended
        })
        .await;
        match policy {
            ConnectionErrorPolicy::Standard => {
                assert!(!leader.is_leader(), "still leading while suspended");
                eventually("not_leader", DEADLINE, || {
                    listener.not_leader.load(Ordering::SeqCst) == 1
                })
                .await;
            }
            _ => assert!(
                leader.is_leader(),
                "SessionOnly gave leadership up on Suspended"
            ),
        }
        proxy.restore();
        eventually("leading again", DEADLINE, || leader.is_leader()).await;
        assert!(
            Arc::ptr_eq(&session, &proxied.session()),
            "the session changed"
        );
        let transitions: Vec<(usize, bool)> =
            log.entries().iter().map(|&(_, i, l)| (i, l)).collect();
        let expected: &[(usize, bool)] = match policy {
            ConnectionErrorPolicy::Standard => {
                &[(0, true), (1, false), (2, false), (0, false), (0, true)]
            }
            _ => &[(0, true), (1, false), (2, false)],
        };
        let mut sorted_head = transitions.clone();
        sorted_head[..3].sort();
        assert_eq!(sorted_head, expected, "{policy:?}");
        assert!(followers.iter().all(|f| !f.is_leader()));
        for latch in &all {
            latch.close().await.unwrap();
        }
    }
}

/// Three servers; the ensemble's leader is killed. Afterwards exactly one latch leads, and it
/// owns the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_leader_killed_still_one_latch_leader() {
    init_tracing();
    let cluster = TestingCluster::start(3).await.unwrap();
    let connect_string = cluster.connect_string();
    let path = format!("{}/leader", unique_path("latch-ensemble"));
    let mut clients = Vec::new();
    let mut latches = Vec::new();
    for i in 0..3 {
        let client = connect(&connect_string, Duration::from_secs(10)).await;
        let latch = Arc::new(
            LeaderLatch::new(&client, &path)
                .unwrap()
                .with_id(format!("node-{i}")),
        );
        latch.start().await.unwrap();
        clients.push(client);
        latches.push(latch);
    }
    one_leader("a first leader", &latches).await;
    let log = TransitionLog::new(&latches);

    let mut states: Vec<_> = clients.iter().map(|c| c.connection_states()).collect();
    let zk_leader = cluster
        .leader_index()
        .await
        .unwrap()
        .expect("an ensemble leader");
    cluster.kill(zk_leader).await.unwrap();
    // Every member drops its clients while the ensemble elects a new leader.
    for states in &mut states {
        let state = tokio::time::timeout(Duration::from_secs(30), states.next()).await;
        assert_eq!(state.unwrap(), Some(ConnectionState::Suspended));
    }
    eventually("every client back", Duration::from_secs(60), || {
        clients.iter().all(|c| c.state().is_connected())
    })
    .await;
    let observer = connect(&connect_string, Duration::from_secs(10)).await;
    eventually_async(
        "exactly one latch leader owning the node",
        Duration::from_secs(60),
        || {
            let (latches, observer, clients, path) = (&latches, &observer, &clients, &path);
            async move {
                let before = leaders(latches);
                if before.len() != 1 {
                    return false;
                }
                let Ok(Some((_, stat))) = observer.get_data(path).await else {
                    return false;
                };
                leaders(latches) == before
                    && stat.ephemeral_owner == clients[before[0]].session().id().0
            }
        },
    )
    .await;
    assert!(log.overlaps().is_empty(), "{:?}", log.overlaps());
    for latch in &latches {
        latch.close().await.unwrap();
    }
}

/// `await_leadership_timeout`: true on the winner, false on a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_leadership_timeout_true_on_winner_false_on_follower() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-await"));
    let (_clients, latches) = latches(&server, &path, 2).await;
    let leader = one_leader("a leader", &latches).await;
    let follower = 1 - leader;
    assert!(latches[leader]
        .await_leadership_timeout(Duration::from_secs(5))
        .await
        .unwrap());
    latches[leader].await_leadership().await.unwrap();
    let started = Instant::now();
    assert!(!latches[follower]
        .await_leadership_timeout(Duration::from_millis(300))
        .await
        .unwrap());
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The follower's wait ends as soon as the leader closes.
    let waiter = {
        let follower = latches[follower].clone();
        tokio::spawn(async move { follower.await_leadership_timeout(DEADLINE).await })
    };
    latches[leader].close().await.unwrap();
    assert!(waiter.await.unwrap().unwrap());
    // A wait is ended by close, with an error.
    let other = latches[follower].clone();
    let client = connect(&server, Duration::from_secs(4)).await;
    let late = Arc::new(LeaderLatch::new(&client, &path).unwrap().with_id("late"));
    late.start().await.unwrap();
    let waiting = {
        let late = late.clone();
        tokio::spawn(async move { late.await_leadership().await })
    };
    late.close().await.unwrap();
    assert!(matches!(waiting.await.unwrap(), Err(Error::Closed)));
    other.close().await.unwrap();
}

/// Bad input is a typed error, never a panic, and leaves nothing on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_misuse_are_typed_errors() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server, Duration::from_secs(4)).await;
    for path in [
        "",
        "leader",
        "/",
        "/a//b",
        "/a/",
        "/zookeeper/leader",
        "/a/\u{1}",
    ] {
        assert!(
            matches!(
                LeaderLatch::new(&client, path),
                Err(Error::InvalidPath { .. })
            ),
            "{path:?} accepted"
        );
    }
    let path = format!("{}/leader", unique_path("latch-bad"));
    let huge = "x".repeat(zk_recipes::limits::DEFAULT_MAX_REQUEST_SIZE);
    let latch = LeaderLatch::new(&client, &path).unwrap().with_id(huge);
    assert!(matches!(
        latch.start().await,
        Err(Error::InvalidArgument(_))
    ));

    // Under an ephemeral node: an error from start, and nothing left behind.
    let ephemeral = unique_path("latch-ephemeral-parent");
    client
        .create(
            &ephemeral,
            b"",
            zk_recipes::zookeeper_client::CreateMode::Ephemeral,
            &[],
        )
        .await
        .unwrap();
    let under = format!("{ephemeral}/leader");
    let latch = LeaderLatch::new(&client, &under).unwrap().with_id("id");
    let err = latch.start().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ZooKeeper(zk_recipes::zookeeper_client::Error::NoChildrenForEphemerals)
        ),
        "{err:?}"
    );
    assert_eq!(latch.state(), LatchState::Closed);
    assert!(!latch.is_leader());
    assert_eq!(client.exists(&under).await.unwrap(), None);

    // Lifecycle misuse.
    let latch = LeaderLatch::new(&client, &path).unwrap().with_id("id");
    assert_eq!(latch.state(), LatchState::Latent);
    assert!(matches!(
        latch.await_leadership().await,
        Err(Error::IllegalState(_))
    ));
    assert!(matches!(latch.close().await, Err(Error::IllegalState(_))));
    assert_eq!(latch.leader().await.unwrap(), None);
    latch.start().await.unwrap();
    assert!(matches!(latch.start().await, Err(Error::IllegalState(_))));
    assert!(latch.is_leader());
    let leader = latch.leader().await.unwrap().unwrap();
    assert_eq!(
        (leader.id.as_str(), leader.session_id),
        ("id", client.session().id())
    );
    latch.close_with(CloseMode::NotifyLeader).await.unwrap();
    assert!(matches!(latch.close().await, Err(Error::Closed)));
    assert!(matches!(latch.start().await, Err(Error::Closed)));
    assert!(matches!(latch.await_leadership().await, Err(Error::Closed)));
    assert!(matches!(
        latch.await_leadership_timeout(Duration::from_secs(1)).await,
        Err(Error::Closed)
    ));
    assert!(matches!(latch.leader().await, Err(Error::Closed)));
    assert!(!latch.is_leader());
    let mut changes = latch.leadership_changes();
    assert_eq!(
        changes.next().await,
        None,
        "a closed latch's stream ends at once"
    );
    assert_eq!(client.exists(&path).await.unwrap(), None);

    // Start on a closed client.
    let closed = connect(&server, Duration::from_secs(4)).await;
    let latch = LeaderLatch::new(&closed, &path).unwrap().with_id("id");
    closed.close().await;
    assert!(matches!(latch.start().await, Err(Error::Closed)));
}

/// The latch node's parent is deleted while the latch runs: the latches make it again and one
/// of them leads (CURATOR-724).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_parent_is_recreated_and_the_race_goes_on() {
    init_tracing();
    let server = zk_server().await;
    let parent = format!("{}/group", unique_path("latch-parent"));
    let path = format!("{parent}/leader");
    let (clients, latches) = latches(&server, &path, 3).await;
    one_leader("a first leader", &latches).await;
    let observer = connect(&server, Duration::from_secs(10)).await;

    // Node and parent go in one transaction, so nobody can re-create the node in between.
    let zk = observer.zookeeper().unwrap();
    let mut multi = zk.new_multi_writer();
    multi.add_delete(&path, None).unwrap();
    multi.add_delete(&parent, None).unwrap();
    multi.commit().await.unwrap();

    eventually_async("a leader on a re-created parent", DEADLINE, || {
        let (latches, observer, clients, path) = (&latches, &observer, &clients, &path);
        async move {
            let before = leaders(latches);
            if before.len() != 1 {
                return false;
            }
            let Ok(Some((_, stat))) = observer.get_data(path).await else {
                return false;
            };
            leaders(latches) == before
                && stat.ephemeral_owner == clients[before[0]].session().id().0
        }
    })
    .await;
    assert!(observer.exists(&parent).await.unwrap().is_some());
    for latch in &latches {
        latch.close().await.unwrap();
    }
    assert_eq!(observer.exists(&path).await.unwrap(), None);
}

/// Dropping a started latch gives leadership up and deletes its node in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_leader_deletes_its_node() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-drop"));
    let (_clients, mut latches) = latches(&server, &path, 2).await;
    let leader = one_leader("a leader", &latches).await;
    let dropped = latches.remove(leader);
    let weak = Arc::downgrade(&dropped);
    drop(dropped);
    assert!(weak.upgrade().is_none());
    eventually("the other latch to lead", DEADLINE, || {
        latches[0].is_leader()
    })
    .await;
    latches[0].close().await.unwrap();
    let observer = connect(&server, Duration::from_secs(4)).await;
    assert_eq!(observer.exists(&path).await.unwrap(), None);
}

/// Listeners and streams see every transition in order; `NotifyLeader` tells listeners on
/// close, `Silent` does not. A slow listener does not hold the latch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_and_streams_see_transitions_in_order() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-listeners"));
    let client = connect(&server, Duration::from_secs(4)).await;

    struct Slow(Arc<Mutex<Vec<bool>>>);
    impl LeaderLatchListener for Slow {
        fn is_leader(&self) {
            std::thread::sleep(Duration::from_millis(300));
            self.0.lock().unwrap().push(true);
        }
        fn not_leader(&self) {
            self.0.lock().unwrap().push(false);
        }
    }

    for mode in [CloseMode::NotifyLeader, CloseMode::Silent] {
        let latch = LeaderLatch::new(&client, &path).unwrap().with_id("me");
        let calls = Arc::new(Mutex::new(Vec::new()));
        latch.add_listener(Slow(calls.clone()));
        let mut changes = latch.leadership_changes();
        let started = Instant::now();
        latch.start().await.unwrap();
        assert!(latch.is_leader());
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "the slow listener held start up"
        );
        // Someone deletes our node: we lose leadership and win it back.
        let elected = latch.metrics().elected;
        client.delete(&path, None).await.unwrap();
        eventually("re-elected", DEADLINE, || {
            latch.metrics().elected > elected && latch.is_leader()
        })
        .await;
        assert!(latch.watch_events_received() >= 1);
        latch.close_with(mode).await.unwrap();
        let mut seen = Vec::new();
        while let Some(leader) = changes.next().await {
            seen.push(leader);
        }
        assert_eq!(seen, [false, true, false, true, false], "{mode:?}");
        let expected: &[bool] = match mode {
            CloseMode::NotifyLeader => &[true, false, true, false],
            _ => &[true, false, true],
        };
        let calls_ref = calls.clone();
        eventually("the listener calls", DEADLINE, || {
            calls_ref.lock().unwrap().len() >= expected.len()
        })
        .await;
        // Give a wrong extra call (after a Silent close) the chance to show up.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(&calls.lock().unwrap()[..], expected, "{mode:?}");
    }
}

/// The herd: every change of the leader's node wakes every follower once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_follower_is_woken_on_every_change() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-herd"));
    let (_clients, latches) = latches(&server, &path, 5).await;
    let mut remaining: Vec<usize> = (0..5).collect();
    while remaining.len() > 1 {
        let active: Vec<Arc<LeaderLatch>> = remaining.iter().map(|&i| latches[i].clone()).collect();
        let leader = remaining[one_leader("a leader", &active).await];
        let followers: Vec<usize> = remaining.iter().copied().filter(|&i| i != leader).collect();
        let before: Vec<u64> = followers
            .iter()
            .map(|&i| latches[i].watch_events_received())
            .collect();
        latches[leader].close().await.unwrap();
        remaining.retain(|&i| i != leader);
        eventually("a new leader", DEADLINE, || {
            followers.iter().any(|&i| latches[i].is_leader())
        })
        .await;
        let latches_ref = &latches;
        let followers_ref = &followers;
        eventually("every follower woken", DEADLINE, || {
            followers_ref
                .iter()
                .zip(&before)
                .all(|(&i, &b)| latches_ref[i].watch_events_received() > b)
        })
        .await;
        for (&i, &b) in followers.iter().zip(&before) {
            assert_eq!(latches[i].watch_events_received() - b, 1, "latch {i}");
        }
    }
    latches[remaining[0]].close().await.unwrap();
}

/// A create whose answer is lost to a connection drop: after reconnecting, the latch finds the
/// node exists, sees that its own session owns it, and leads (CURATOR-696), rather than
/// following its own node for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answer_lost_to_a_connection_drop_is_recognised_as_ours() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-lost-answer"));
    let observer = connect(&server, Duration::from_secs(10)).await;
    observer
        .ensure_path(zk_recipes_parent(&path), false)
        .await
        .unwrap();
    let proxy = FaultProxy::start(&server).await.unwrap();
    let proxied = connect(&proxy.connect_string(), Duration::from_secs(8)).await;
    let latch = Arc::new(LeaderLatch::new(&proxied, &path).unwrap().with_id("node-0"));
    let session = proxied.session();

    // Each direction 400 ms late: the create reaches the server after 400 ms, its answer would
    // be back after 800 ms; cutting in between loses the answer of an applied create. (If the
    // timing misses, the create is simply retried; the assertions hold either way.)
    proxy.delay(Duration::from_millis(400));
    let starting = {
        let latch = latch.clone();
        tokio::spawn(async move { latch.start().await })
    };
    eventually("the create to be sent", DEADLINE, || {
        latch.metrics().races >= 1
    })
    .await;
    eventually_async("the create to be applied", DEADLINE, || {
        let (observer, path) = (&observer, &path);
        async move { observer.exists(path).await.unwrap().is_some() }
    })
    .await;
    proxy.cut();
    proxy.restore();
    starting.await.unwrap().unwrap();
    assert!(
        latch.await_leadership_timeout(DEADLINE).await.unwrap(),
        "the latch follows its own node"
    );
    assert!(
        Arc::ptr_eq(&session, &proxied.session()),
        "the session changed"
    );
    let (owner, id) = node_owner(&observer, &path).await.unwrap();
    assert_eq!((owner, id.as_str()), (session.id().0, "node-0"));
    latch.close().await.unwrap();
    assert_eq!(node_owner(&observer, &path).await, None);
}

fn zk_recipes_parent(path: &str) -> &str {
    &path[..path.rfind('/').unwrap()]
}

/// A latch on a path that holds a persistent node, or a container node (what a
/// `LeaderSelector` leaves behind on its path), stops at `start()` with a typed error that
/// names the path and what holds it, and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_held_by_a_persistent_or_container_node_is_a_typed_error() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server, Duration::from_secs(4)).await;
    for mode in [CreateMode::Persistent, CreateMode::Container] {
        let path = format!("{}/leader", unique_path("latch-occupied"));
        client
            .create(&path, b"not a latch", mode, &[])
            .await
            .unwrap();
        // A container with no child yet is not reaped; give it one, as a recipe's parent has.
        client
            .create(&format!("{path}/child"), b"", CreateMode::Persistent, &[])
            .await
            .unwrap();
        let latch = LeaderLatch::new(&client, &path).unwrap().with_id("latch");
        let started = tokio::time::timeout(DEADLINE, latch.start())
            .await
            .expect("start to decide");
        match &started {
            Err(Error::PathOccupied {
                path: named,
                reason,
            }) => {
                assert_eq!(named, &path);
                assert!(reason.contains("persistent or container"), "{reason}");
            }
            other => panic!("{mode:?}: expected PathOccupied, got {other:?}"),
        }
        assert_eq!(latch.state(), LatchState::Closed);
        assert!(!latch.is_leader());
        assert!(matches!(latch.failure(), Some(Error::PathOccupied { .. })));
        assert!(matches!(
            latch.await_leadership().await,
            Err(Error::PathOccupied { .. })
        ));
        let (data, _) = client.get_data(&path).await.unwrap().unwrap();
        assert_eq!(data, b"not a latch", "the node in the way was touched");
        assert_eq!(client.children(&path).await.unwrap().unwrap(), ["child"]);
    }
}

/// A persistent node that takes the latch path while latches run (in the same transaction
/// that deletes the leader's node) stops every latch the moment it races again: the
/// follower's `await_leadership` returns the error and its stream of changes ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_node_appearing_later_stops_the_latches() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-occupied-later"));
    let (_clients, latches) = latches(&server, &path, 2).await;
    eventually("a leader", DEADLINE, || {
        latches.iter().any(|l| l.is_leader())
    })
    .await;
    let follower = latches.iter().find(|l| !l.is_leader()).unwrap();
    let mut changes = follower.leadership_changes();
    assert_eq!(changes.next().await, Some(false));

    let operator = connect(&server, Duration::from_secs(4)).await;
    let zk = operator.zookeeper().unwrap();
    let mut swap = zk.new_multi_writer();
    swap.add_delete(&path, None).unwrap();
    swap.add_create(
        &path,
        b"left by hand",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .unwrap();
    swap.commit().await.unwrap();

    let waited = tokio::time::timeout(DEADLINE, follower.await_leadership())
        .await
        .expect("await_leadership to end");
    assert!(
        matches!(waited, Err(Error::PathOccupied { ref path, .. }) if path.ends_with("/leader")),
        "{waited:?}"
    );
    assert_eq!(
        tokio::time::timeout(DEADLINE, changes.next())
            .await
            .unwrap(),
        None,
        "the stream of changes ends"
    );
    for latch in &latches {
        eventually("every latch to stop", DEADLINE, || {
            latch.state() == LatchState::Closed
        })
        .await;
        assert!(matches!(latch.failure(), Some(Error::PathOccupied { .. })));
    }
    let (data, _) = operator.get_data(&path).await.unwrap().unwrap();
    assert_eq!(data, b"left by hand");
}

/// Two latches of one client share its session, so a node's owner does not tell them apart.
/// Both send their create behind a slow link, and the connection drops once a create has
/// reached the server but before either answer comes back: after the reconnect, each finds
/// a node of its session at the path, and only the one whose create made it may lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sibling_latches_whose_answers_were_lost_never_both_lead() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-siblings"));
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let observer = connect(&server, Duration::from_secs(4)).await;
    // The parent first, so that the creates go straight to the latch node.
    observer
        .ensure_path(path.rsplit_once('/').unwrap().0, false)
        .await
        .unwrap();
    let one = Arc::new(LeaderLatch::new(&client, &path).unwrap().with_id("one"));
    let two = Arc::new(LeaderLatch::new(&client, &path).unwrap().with_id("two"));
    proxy.delay(Duration::from_millis(500));
    let starts: Vec<_> = [one.clone(), two.clone()]
        .into_iter()
        .map(|latch| tokio::spawn(async move { latch.start().await }))
        .collect();
    // A create has reached the server; its answer is still on its way back: drop it.
    eventually_async("a create to reach the server", DEADLINE, || async {
        observer.exists(&path).await.unwrap().is_some()
    })
    .await;
    proxy.cut();
    eventually("the client to see the cut", DEADLINE, || {
        client.state() == ConnectionState::Suspended
    })
    .await;
    proxy.restore();
    for start in starts {
        tokio::time::timeout(DEADLINE, start)
            .await
            .expect("start to decide")
            .unwrap()
            .unwrap();
    }
    eventually("exactly one latch to lead", DEADLINE, || {
        one.is_leader() != two.is_leader()
    })
    .await;
    let (leader, follower) = if one.is_leader() {
        (&one, &two)
    } else {
        (&two, &one)
    };
    let (data, stat) = observer.get_data(&path).await.unwrap().unwrap();
    assert_eq!(
        data,
        leader.id().as_bytes(),
        "the leader is not the node's maker"
    );
    assert_eq!(stat.ephemeral_owner, client.session().id().0);
    assert!(!follower.is_leader());
    // Closing the follower leaves the leader's node alone.
    follower.close().await.unwrap();
    let (_, after) = observer.get_data(&path).await.unwrap().unwrap();
    assert_eq!(
        after.czxid, stat.czxid,
        "closing the follower deleted the leader's node"
    );
    assert!(leader.is_leader());
    leader.close().await.unwrap();
}

/// A latch closed while the outcome of its create is unknown deletes the node at the path
/// only if its own create could have made it: a sibling latch's node, on the same session,
/// survives the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_latch_whose_create_is_unresolved_leaves_its_siblings_node() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-siblings-close"));
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let observer = connect(&server, Duration::from_secs(4)).await;
    let leader = LeaderLatch::new(&client, &path).unwrap().with_id("leader");
    leader.start().await.unwrap();
    leader.await_leadership().await.unwrap();
    let (_, before) = observer.get_data(&path).await.unwrap().unwrap();

    // The late latch's create is on the wire, held by the slow link, when the link is cut:
    // it never learns what became of it.
    proxy.delay(Duration::from_millis(500));
    let late = Arc::new(LeaderLatch::new(&client, &path).unwrap().with_id("late"));
    let starting = tokio::spawn({
        let late = late.clone();
        async move { late.start().await }
    });
    eventually("the late latch to send its create", DEADLINE, || {
        late.metrics().races >= 1
    })
    .await;
    proxy.cut();
    eventually("the client to see the cut", DEADLINE, || {
        client.state() == ConnectionState::Suspended
    })
    .await;
    let closing = tokio::spawn({
        let late = late.clone();
        async move { late.close().await }
    });
    proxy.restore();
    tokio::time::timeout(DEADLINE, closing)
        .await
        .expect("the close to finish")
        .unwrap()
        .unwrap();
    let _ = starting.await;
    let (data, after) = observer.get_data(&path).await.unwrap().unwrap();
    assert_eq!(
        after.czxid, before.czxid,
        "the late latch's close deleted its sibling's node"
    );
    assert_eq!(data, b"leader");
    tokio::time::timeout(DEADLINE, leader.await_leadership())
        .await
        .expect("the leader leads again on its node")
        .unwrap();
    leader.close().await.unwrap();
}

/// `has_leadership().await` asks the server: true for the leader, false for a follower, and
/// false at once when the leader's node was deleted, even before the latch has heard of it
/// (the cheap `is_leader()` may still say true then); false while suspended, even under a
/// policy that keeps the local flag up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn has_leadership_asks_the_server() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-verified"));
    let (_clients, latches) = latches(&server, &path, 2).await;
    eventually("a leader", DEADLINE, || {
        latches.iter().any(|l| l.is_leader())
    })
    .await;
    let leader = latches.iter().find(|l| l.is_leader()).unwrap();
    let follower = latches.iter().find(|l| !l.is_leader()).unwrap();
    assert!(leader.has_leadership().await);
    assert!(!follower.has_leadership().await);
    let observer = connect(&server, Duration::from_secs(4)).await;
    observer.delete(&path, None).await.unwrap();
    assert!(
        !leader.has_leadership().await,
        "verified a node that was deleted before the check"
    );
    for latch in &latches {
        latch.close().await.unwrap();
    }

    // Suspended: the local flag stays up under SessionOnly, the verified check does not.
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = connect(&proxy.connect_string(), Duration::from_secs(8)).await;
    let latch = LeaderLatch::new(&client, &path)
        .unwrap()
        .with_id("riding-out")
        .with_error_policy(ConnectionErrorPolicy::SessionOnly);
    latch.start().await.unwrap();
    latch.await_leadership().await.unwrap();
    assert!(latch.has_leadership().await);
    proxy.cut();
    eventually("the client to see the cut", DEADLINE, || {
        client.state() == ConnectionState::Suspended
    })
    .await;
    assert!(
        latch.is_leader(),
        "SessionOnly keeps the flag through a suspension"
    );
    assert!(!latch.has_leadership().await, "verified while cut off");
    proxy.restore();
    eventually_async("verified again once reconnected", DEADLINE, || async {
        latch.has_leadership().await
    })
    .await;
    latch.close().await.unwrap();
}

/// A server drops the connection of a request over its `jute.maxbuffer`. With the client's
/// own limit raised past the server's, a latch whose create is too large meets a drop in answer
/// to every attempt: the retry policy bounds the run (here 2 retries), and the latch stops
/// with a typed error instead of looping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_in_answer_to_every_attempt_ends_the_latch() {
    init_tracing();
    let server = zk_server().await;
    let client = Client::builder(&server)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(2))
        .max_request_size(4 << 20)
        .retry_policy(zk_recipes::retry::RetryNTimes::new(
            2,
            Duration::from_millis(50),
        ))
        .connect()
        .await
        .unwrap();
    let path = format!("{}/leader", unique_path("latch-too-large"));
    client
        .ensure_path(path.rsplit_once('/').unwrap().0, false)
        .await
        .unwrap();
    let latch = LeaderLatch::new(&client, &path)
        .unwrap()
        .with_id("x".repeat(3 << 19));
    let _ = latch.start().await;
    eventually("the latch to stop", DEADLINE, || {
        latch.state() == LatchState::Closed
    })
    .await;
    assert!(
        matches!(latch.failure(), Some(Error::ConnectionLoss)),
        "{:?}",
        latch.failure()
    );
    assert_eq!(latch.metrics().races, 3, "one attempt and two retries");
    assert!(client.exists(&path).await.unwrap().is_none());
}

/// A latch in Curator's layout with its id, on a client of its own.
async fn curator_latch(connect_string: &str, path: &str, id: &str) -> (Client, LeaderLatch) {
    let client = connect(connect_string, Duration::from_secs(4)).await;
    let latch = LeaderLatch::new(&client, path)
        .unwrap()
        .with_id(id)
        .with_layout(LatchLayout::Curator);
    (client, latch)
}

/// The latch nodes under `path`, in Curator's layout.
async fn latch_nodes(client: &Client, path: &str) -> Vec<String> {
    client
        .children(path)
        .await
        .unwrap()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.contains("-latch-"))
        .collect()
}

/// Curator's layout: candidates lead in the order they joined, one at a time; listeners and
/// streams see every transition (a leader closed with `NotifyLeader` hears of it, one closed
/// with `Silent` does not); the verified check agrees; the nodes are Curator's
/// (`_c_<uuid>-latch-<seq10>`, the id as data); and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_layout_hands_over_in_join_order() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/leader", unique_path("latch-curator"));
    let observer = connect(&server, Duration::from_secs(4)).await;
    let mut latches = Vec::new();
    let mut listeners = Vec::new();
    for i in 0..3 {
        let (client, latch) = curator_latch(&server, &path, &format!("node-{i}")).await;
        let listener = Arc::new(CountingListener::default());
        latch.add_listener_arc(listener.clone());
        latch.start().await.unwrap();
        assert_eq!(latch.layout(), LatchLayout::Curator);
        latches.push((client, latch));
        listeners.push(listener);
    }
    let nodes = latch_nodes(&observer, &path).await;
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for node in &nodes {
        let (prefix, sequence) = node.split_once("-latch-").unwrap();
        assert!(prefix.starts_with("_c_") && sequence.len() == 10, "{node}");
        let (data, _) = observer
            .get_data(&format!("{path}/{node}"))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8(data).unwrap().starts_with("node-"));
    }
    let mut changes = latches[1].1.leadership_changes();
    assert_eq!(changes.next().await, Some(false));
    for turn in 0..3 {
        let (_, leader) = &latches[turn];
        tokio::time::timeout(DEADLINE, leader.await_leadership())
            .await
            .expect("the next in line to lead")
            .unwrap();
        assert!(leader.has_leadership().await);
        for (_, other) in &latches[turn + 1..] {
            assert!(!other.is_leader(), "two leaders");
            assert!(!other.has_leadership().await);
            assert_eq!(
                other.leader().await.unwrap().unwrap().id,
                format!("node-{turn}")
            );
        }
        let mode = if turn == 0 {
            CloseMode::NotifyLeader
        } else {
            CloseMode::Silent
        };
        leader.close_with(mode).await.unwrap();
    }
    assert_eq!(changes.next().await, Some(true), "node-1's turn");
    assert_eq!(changes.next().await, Some(false), "its close");
    assert_eq!(changes.next().await, None, "the stream ends at the close");
    eventually("the listeners to hear", DEADLINE, || {
        listeners
            .iter()
            .all(|l| l.is_leader.load(Ordering::SeqCst) == 1)
    })
    .await;
    assert_eq!(
        listeners[0].not_leader.load(Ordering::SeqCst),
        1,
        "NotifyLeader"
    );
    assert_eq!(listeners[1].not_leader.load(Ordering::SeqCst), 0, "Silent");
    assert!(latch_nodes(&observer, &path).await.is_empty(), "nodes left");
}

/// Curator's layout and the connection policies: with the standard policy a suspended
/// leader gives leadership up and, reconnected, queues again at the back (Curator's reset),
/// so the next candidate leads; under `SessionOnly` a suspended leader keeps its flag, though
/// the verified check says no while cut off. A leader whose node someone deletes queues again
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_layout_follows_the_connection_policies_and_deleted_nodes() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server, Duration::from_secs(4)).await;
    for policy in [
        ConnectionErrorPolicy::Standard,
        ConnectionErrorPolicy::SessionOnly,
    ] {
        let path = format!("{}/leader", unique_path("latch-curator-policy"));
        let proxy = FaultProxy::start(&server).await.unwrap();
        let cut_client = connect(&proxy.connect_string(), Duration::from_secs(8)).await;
        let first = LeaderLatch::new(&cut_client, &path)
            .unwrap()
            .with_id("first")
            .with_layout(LatchLayout::Curator)
            .with_error_policy(policy);
        first.start().await.unwrap();
        first.await_leadership().await.unwrap();
        let (_second_client, second) = curator_latch(&server, &path, "second").await;
        second.start().await.unwrap();
        eventually_async("two latch nodes", DEADLINE, || async {
            latch_nodes(&observer, &path).await.len() == 2
        })
        .await;
        proxy.cut();
        eventually("the client to see the cut", DEADLINE, || {
            cut_client.state() == ConnectionState::Suspended
        })
        .await;
        match policy {
            ConnectionErrorPolicy::Standard => {
                assert!(!first.is_leader(), "the standard policy gives up at once");
                proxy.restore();
                tokio::time::timeout(DEADLINE, second.await_leadership())
                    .await
                    .expect("the second leads once the first queues again")
                    .unwrap();
                assert!(!first.is_leader());
                eventually_async("the first queued behind", DEADLINE, || async {
                    second
                        .leader()
                        .await
                        .is_ok_and(|l| l.is_some_and(|l| l.id == "second"))
                        && latch_nodes(&observer, &path).await.len() == 2
                })
                .await;
            }
            _ => {
                assert!(
                    first.is_leader(),
                    "SessionOnly keeps leadership while suspended"
                );
                assert!(!first.has_leadership().await, "verified while cut off");
                proxy.restore();
                eventually_async("verified again", DEADLINE, || async {
                    first.has_leadership().await
                })
                .await;
                // A node deleted by someone: the leader steps down and queues again.
                let node = format!(
                    "{path}/{}",
                    latch_nodes(&observer, &path)
                        .await
                        .into_iter()
                        .min_by_key(|n| n[n.len() - 10..].to_owned())
                        .unwrap()
                );
                observer.delete(&node, None).await.unwrap();
                tokio::time::timeout(DEADLINE, second.await_leadership())
                    .await
                    .expect("the second leads once the first's node is gone")
                    .unwrap();
                // The first hears of its deletion through its own watch (on another session,
                // so maybe a moment after the second heard of it).
                eventually("the first to step down", DEADLINE, || !first.is_leader()).await;
            }
        }
        first.close().await.unwrap();
        second.close().await.unwrap();
        eventually_async("no node left", DEADLINE, || async {
            latch_nodes(&observer, &path).await.is_empty()
        })
        .await;
    }
}
