//! Curator's `TestLeaderLatchCluster` (`leader/TestLeaderLatchCluster.java`) and
//! `TestLeaderLatchIsolatedZookeeper` (`leader/TestLeaderLatchIsolatedZookeeper.java`, with
//! its helper `testing/DummyLeaderLatch.java`; a TestNG class of Curator 4.x, since removed
//! from Curator's tree, CURATOR-444), ported to [`LeaderLatch`] on a
//! [`TestingCluster`]. Both layouts of the latch run ([`LatchLayout::Race`], the default, and
//! [`LatchLayout::Curator`]).
//!
//! Not ported: none. Adapted:
//!
//! | Curator test | Adaptation |
//! |---|---|
//! | `TestLeaderLatchIsolatedZookeeper.testThatResistsNetworkGlitches` | Capability missing: the kit cannot cut the ensemble's quorum links while the servers keep serving their clients (Curator sets the `LearnerHandler` sockets' timeout to 1 ms through ZooKeeper's server internals for 10 s). The port makes the same outcome, the ensemble losing its quorum for a while and forming again, by stopping the two followers and restarting them; one run (Curator: ten invocations of 30 s each). |
//! | `testThatStartsWithOnlyOneLeader`, `testThatStartCoherent` | They check the state right after the set-up, before any fault, where the ensemble plays no part: they run on the shared standalone server, so that the suite does not start an ensemble per check. |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::common::{eventually, eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::testing::TestingCluster;
use zk_recipes::{Client, CloseMode, LatchLayout, LeaderLatch, LeaderLatchListener};

/// Every wait of these tests ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(60);
const LAYOUTS: [LatchLayout; 2] = [LatchLayout::Race, LatchLayout::Curator];

async fn client(connect_string: &str, session: Duration, connection: Duration) -> Client {
    Client::builder(connect_string)
        .session_timeout(session)
        .connection_timeout(connection)
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
        .connect()
        .await
        .expect("connect")
}

fn leaders(latches: &[Arc<LeaderLatch>]) -> Vec<usize> {
    (0..latches.len())
        .filter(|&i| latches[i].is_leader())
        .collect()
}

/// The ephemeral owner of the election node whose data is `id`.
async fn owner_of(observer: &Client, path: &str, layout: LatchLayout, id: &str) -> Option<i64> {
    let nodes = match layout {
        LatchLayout::Race => vec![path.to_owned()],
        _ => observer
            .children(path)
            .await
            .ok()?
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.contains("-latch-"))
            .map(|c| format!("{path}/{c}"))
            .collect(),
    };
    for node in nodes {
        if let Ok(Some((data, stat))) = observer.get_data(&node).await {
            if data == id.as_bytes() && stat.ephemeral_owner != 0 {
                return Some(stat.ephemeral_owner);
            }
        }
    }
    None
}

/// Curator: TestLeaderLatchCluster.testInCluster.
///
/// Three servers; three clients, each connected to one server only, with a latch each. The
/// server of the leader's client is killed: that client cannot reach the ensemble any more,
/// its session expires, and another latch leads; in the end exactly one latch leads, and the
/// server agrees (it owns the node). Curator sleeps twice the session length and then looks
/// (`waitForALeader`); here the test waits for the condition, under a deadline. Session 4 s
/// (Curator: `timing.session() / 4`). Both layouts, one after the other on one ensemble (the
/// killed server is restarted in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_in_cluster() {
    init_tracing();
    let cluster = TestingCluster::start(3).await.expect("an ensemble");
    let session = Duration::from_secs(4);
    for layout in LAYOUTS {
        let path = format!("{}/latch", unique_path("latch-in-cluster"));
        let mut clients = Vec::new();
        let mut latches = Vec::new();
        for i in 0..3 {
            let connect_string = cluster.server_connect_string(i).expect("a member");
            let client = client(&connect_string, session, session).await;
            let latch = Arc::new(
                LeaderLatch::new(&client, &path)
                    .expect("latch")
                    .with_id(format!("p{i}"))
                    .with_layout(layout),
            );
            latch.start().await.expect("start");
            clients.push(client);
            latches.push(latch);
        }
        eventually("a leader", DEADLINE, || leaders(&latches).len() == 1).await;
        let old = leaders(&latches)[0];
        cluster.kill(old).await.expect("kill");

        let observer = client(
            &cluster.connect_string(),
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
        .await;
        eventually_async(
            &format!("{layout:?}: another latch to lead, owning its node"),
            DEADLINE,
            || {
                let (latches, clients, observer, path) = (&latches, &clients, &observer, &path);
                async move {
                    let before = leaders(latches);
                    if before.len() != 1 || before[0] == old {
                        return false;
                    }
                    let i = before[0];
                    owner_of(observer, path, layout, &format!("p{i}")).await
                        == Some(clients[i].session().id().0)
                        && leaders(latches) == before
                }
            },
        )
        .await;
        for _ in 0..10 {
            assert_eq!(leaders(&latches).len(), 1, "{layout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.restart(old).await.expect("restart");
        for latch in &latches {
            latch.close().await.expect("close");
        }
        for client in &clients {
            client.close().await;
        }
    }
}

/// `DummyLeaderLatch`: a client with one latch per layout (close mode `NotifyLeader`), whose
/// listener keeps Curator's "leader according to events", and checks, each time it is told
/// it leads, that no other latch of its layout believes it leads (Curator keeps a global
/// history and checks it afterwards; the two listener threads' calls are not ordered with
/// each other, so the check is made against the latches' own flags at the moment of the
/// call instead).
struct Dummy {
    client: Client,
    latches: Vec<Arc<LeaderLatch>>,
    by_events: Vec<Arc<AtomicBool>>,
}

/// The latches of one layout, for the listeners' check; and the overlaps found.
#[derive(Default)]
struct Election {
    latches: OnceLock<Vec<Arc<LeaderLatch>>>,
    overlaps: Mutex<Vec<String>>,
}

struct EventListener {
    me: usize,
    leader: Arc<AtomicBool>,
    election: Arc<Election>,
}

impl LeaderLatchListener for EventListener {
    fn is_leader(&self) {
        self.leader.store(true, Ordering::SeqCst);
        if let Some(latches) = self.election.latches.get() {
            let others: Vec<usize> = leaders(latches)
                .into_iter()
                .filter(|&i| i != self.me)
                .collect();
            if !others.is_empty() && latches[self.me].is_leader() {
                self.election
                    .overlaps
                    .lock()
                    .unwrap()
                    .push(format!("{} leads while {others:?} lead", self.me));
            }
        }
    }
    fn not_leader(&self) {
        self.leader.store(false, Ordering::SeqCst);
    }
}

/// Curator's `beforeMethod`: two `DummyLeaderLatch`es ("First", "Second") on `connect_string`,
/// each started and waiting until the election has a leader (Curator's
/// `startAndAwaitElection`), for both layouts (paths under `base`).
async fn dummies(connect_string: &str, base: &str) -> (Vec<Dummy>, Vec<Arc<Election>>) {
    let elections: Vec<Arc<Election>> = LAYOUTS.iter().map(|_| Arc::default()).collect();
    let mut dummies = Vec::new();
    for (me, name) in ["First", "Second"].into_iter().enumerate() {
        // Curator: session 10 s, connection 15 s.
        let client = client(
            connect_string,
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .await;
        let mut latches = Vec::new();
        let mut by_events = Vec::new();
        for (layout, election) in LAYOUTS.into_iter().zip(&elections) {
            let leader = Arc::new(AtomicBool::new(false));
            let latch = LeaderLatch::new(&client, &format!("{base}/{layout:?}/leaderLatch"))
                .expect("latch")
                .with_id(name)
                .with_layout(layout);
            latch.add_listener(EventListener {
                me,
                leader: leader.clone(),
                election: election.clone(),
            });
            latch.start().await.expect("start");
            latches.push(Arc::new(latch));
            by_events.push(leader);
        }
        dummies.push(Dummy {
            client,
            latches,
            by_events,
        });
    }
    for (l, election) in elections.iter().enumerate() {
        let latches: Vec<Arc<LeaderLatch>> = dummies.iter().map(|d| d.latches[l].clone()).collect();
        eventually("an elected leader", DEADLINE, || {
            leaders(&latches).len() == 1
        })
        .await;
        let _ = election.latches.set(latches);
    }
    (dummies, elections)
}

/// Exactly one latch per layout leads, and each latch's flag agrees with its listener's
/// calls (Curator: `isLeaderAccordingToLatch == isLeaderAccordingToEvents`).
fn coherent(dummies: &[Dummy]) -> bool {
    (0..LAYOUTS.len()).all(|l| {
        dummies.iter().filter(|d| d.latches[l].is_leader()).count() == 1
            && dummies
                .iter()
                .all(|d| d.latches[l].is_leader() == d.by_events[l].load(Ordering::SeqCst))
    })
}

async fn stop(dummies: Vec<Dummy>) {
    for dummy in dummies {
        for latch in &dummy.latches {
            latch
                .close_with(CloseMode::NotifyLeader)
                .await
                .expect("close");
        }
        dummy.client.close().await;
    }
}

/// Curator: TestLeaderLatchIsolatedZookeeper.testThatStartsWithOnlyOneLeader.
///
/// After the set-up, exactly one of the two latches leads (per layout). On the shared
/// standalone server: see the module docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_that_starts_with_only_one_leader() {
    init_tracing();
    let base = unique_path("latch-isolated-one-leader");
    let (dummies, _) = dummies(&zk_server().await, &base).await;
    for (l, layout) in LAYOUTS.iter().enumerate() {
        assert_ne!(
            dummies[0].latches[l].is_leader(),
            dummies[1].latches[l].is_leader(),
            "{layout:?}"
        );
    }
    stop(dummies).await;
}

/// Curator: TestLeaderLatchIsolatedZookeeper.testThatStartCoherent.
///
/// After the set-up, each latch's leadership agrees with what its listener was told (the
/// listener runs off the latch's task, so the port waits for it to catch up). On the shared
/// standalone server: see the module docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_that_start_coherent() {
    init_tracing();
    let base = unique_path("latch-isolated-coherent");
    let (dummies, elections) = dummies(&zk_server().await, &base).await;
    eventually("latches and listeners to agree", DEADLINE, || {
        coherent(&dummies)
    })
    .await;
    for election in &elections {
        assert!(election.overlaps.lock().unwrap().is_empty());
    }
    stop(dummies).await;
}

/// Curator: TestLeaderLatchIsolatedZookeeper.testThatResistsNetworkGlitches (CURATOR-444: a
/// ZooKeeper server isolated from the others but not from its clients).
///
/// Adapted (see the module docs): the two followers of a three-server ensemble are stopped,
/// so the ensemble loses its quorum and every client is cut off; once both clients are
/// suspended and no latch leads, the followers are restarted. Then, as Curator checks: no
/// latch was ever told it leads while another one led (the history), each latch's
/// leadership agrees with its listener's, and exactly one latch leads, per layout. Curator
/// sleeps three session timeouts before looking; here the test waits for the condition, and
/// then checks that it holds for a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_that_resists_network_glitches() {
    init_tracing();
    let cluster = TestingCluster::start(3).await.expect("an ensemble");
    let base = unique_path("latch-isolated-glitches");
    let (dummies, elections) = dummies(&cluster.connect_string(), &base).await;
    let zk_leader = cluster
        .leader_index()
        .await
        .expect("modes")
        .expect("an ensemble leader");
    let followers: Vec<usize> = (0..3).filter(|&i| i != zk_leader).collect();
    for &i in &followers {
        cluster.stop(i).await.expect("stop");
    }
    eventually(
        "every client cut off and no latch leading",
        DEADLINE,
        || {
            dummies.iter().all(|d| {
                !d.client.state().is_connected() && d.latches.iter().all(|l| !l.is_leader())
            })
        },
    )
    .await;
    for &i in &followers {
        cluster.restart(i).await.expect("restart");
    }
    eventually(
        "one leader per layout, agreeing with the listeners",
        DEADLINE,
        || coherent(&dummies),
    )
    .await;
    for _ in 0..20 {
        assert!(coherent(&dummies), "leadership changed after it settled");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for (l, election) in elections.iter().enumerate() {
        let overlaps = election.overlaps.lock().unwrap().clone();
        assert!(overlaps.is_empty(), "{:?}: {overlaps:?}", LAYOUTS[l]);
    }
    stop(dummies).await;
}
