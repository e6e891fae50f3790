//! Curator's `TestLeaderSelectorCluster` (`leader/TestLeaderSelectorCluster.java`), ported to
//! [`LeaderSelector`] on a three-server [`TestingCluster`].
//!
//! Curator's `cluster.findConnectionInstance(zookeeper)` (the member a client is connected
//! to) is found here with the four-letter word `cons`, which lists each member's sessions.
//! Curator's `testLostRestart` stops the ensemble and starts a new one on the same instances
//! (same ports and data directories); here the members of the one ensemble are stopped and
//! restarted, which is the same.
//!
//! The two tests share a lock so that only one ensemble of this module runs at a time.
//!
//! Not ported: none.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{init_tracing, unique_path};
use tokio::sync::{mpsc, watch};
use zk_recipes::retry::RetryOneTime;
use zk_recipes::testing::{four_letter_word, TestingCluster};
use zk_recipes::{
    BoxError, Client, ConnectionState, LeaderSelector, LeaderSelectorListener, Leadership,
    StateChangeAction,
};

/// One ensemble at a time.
static ONE_ENSEMBLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every wait of these tests ends by this deadline (Curator: `timing.multiple(4)` of its
/// waits).
const DEADLINE: Duration = Duration::from_secs(40);
/// The session: short, so that a loss comes soon (Curator: `timing.session()`).
const SESSION: Duration = Duration::from_secs(4);

async fn client(cluster: &TestingCluster) -> Client {
    Client::builder(cluster.connect_string())
        .session_timeout(SESSION)
        .connection_timeout(Duration::from_secs(2))
        .retry_policy(RetryOneTime::new(Duration::from_millis(1)))
        .connect()
        .await
        .expect("connect")
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
        .unwrap_or_else(|| panic!("the channel closed while waiting for {what}"))
}

/// The member serving `client`'s session (Curator's `findConnectionInstance`), found with
/// `cons` (asked again until one member lists it, within the deadline).
async fn serving_member(cluster: &TestingCluster, client: &Client) -> usize {
    let sid = format!("sid=0x{:x}", client.session().id().0 as u64);
    let started = tokio::time::Instant::now();
    loop {
        for member in 0..cluster.len() {
            let address = cluster.server_connect_string(member).expect("a member");
            if let Ok(connections) =
                four_letter_word(&address, "cons", Duration::from_secs(2)).await
            {
                if connections
                    .lines()
                    .any(|line| line.split([',', '(', ')']).any(|field| field == sid))
                {
                    return member;
                }
            }
        }
        assert!(started.elapsed() < DEADLINE, "no member serves {sid}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `testRestart`'s listener: lists the selector path (it must hold our node) and returns.
struct Lister {
    path: String,
    turns: mpsc::UnboundedSender<usize>,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Lister {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let names = leadership
            .client()
            .children(&self.path)
            .await?
            .unwrap_or_default();
        let _ = self.turns.send(names.len());
        Ok(())
    }

    fn state_changed(&self, _state: ConnectionState) -> StateChangeAction {
        StateChangeAction::Continue
    }
}

/// Curator: TestLeaderSelectorCluster.testRestart.
///
/// A selector with auto-requeue whose `take_leadership` lists the path (and finds at least
/// its own node) leads; the member its client is connected to is killed; the client moves to
/// another member and the selector leads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart() {
    init_tracing();
    let _one = ONE_ENSEMBLE.lock().await;
    let cluster = TestingCluster::start(3).await.expect("an ensemble");
    let client = client(&cluster).await;
    let path = format!("{}/leader", unique_path("selector-cluster-restart"));
    let (turns_tx, mut turns) = mpsc::unbounded_channel();
    let selector = LeaderSelector::new(
        &client,
        &path,
        Lister {
            path: path.clone(),
            turns: turns_tx,
        },
    )
    .expect("selector")
    .auto_requeue(true);
    selector.start().expect("start");
    assert!(next(&mut turns, "leadership").await > 0);

    let member = serving_member(&cluster, &client).await;
    let mut states = client.connection_states();
    cluster
        .kill(member)
        .await
        .expect("kill the client's member");
    // The listener returns at once, so turns follow each other; wait for the client to be
    // back (on another member), drop the turns taken before, and wait for a new one.
    tokio::time::timeout(DEADLINE, async {
        while let Some(state) = states.next().await {
            if state == ConnectionState::Reconnected {
                return;
            }
        }
    })
    .await
    .expect("the client to reconnect to another member");
    while turns.try_recv().is_ok() {}
    assert!(next(&mut turns, "leadership after the kill").await > 0);
    assert_ne!(serving_member(&cluster, &client).await, member);
    selector.close().await.expect("close");
    client.close().await;
}

/// What `testLostRestart`'s listener found.
#[derive(Default)]
struct Findings {
    /// The name of the lock node, when it was the only child.
    lock_node: Option<String>,
    error: Option<String>,
    /// Whether `take_leadership` saw `LOST` before it left.
    saw_lost: bool,
}

/// `testLostRestart`'s listener.
struct LostWaiter {
    path: String,
    led: mpsc::UnboundedSender<()>,
    exited: mpsc::UnboundedSender<()>,
    lost: watch::Sender<bool>,
    findings: Arc<Mutex<Findings>>,
    turns: Arc<AtomicBool>,
}

/// Says when `take_leadership` left, however it left (Curator's `finally`).
struct Exit {
    exited: mpsc::UnboundedSender<()>,
    lost: watch::Receiver<bool>,
    findings: Arc<Mutex<Findings>>,
}

impl Drop for Exit {
    fn drop(&mut self) {
        self.findings.lock().unwrap().saw_lost = *self.lost.borrow();
        let _ = self.exited.send(());
    }
}

#[async_trait::async_trait]
impl LeaderSelectorListener for LostWaiter {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        self.turns.store(true, Ordering::SeqCst);
        let mut lost = self.lost.subscribe();
        let _finally = Exit {
            exited: self.exited.clone(),
            lost: lost.clone(),
            findings: self.findings.clone(),
        };
        let names = leadership
            .client()
            .children(&self.path)
            .await?
            .unwrap_or_default();
        if names.len() != 1 {
            self.findings.lock().unwrap().error = Some(format!("names size isn't 1: {names:?}"));
            let _ = self.led.send(());
            return Ok(());
        }
        self.findings.lock().unwrap().lock_node = Some(names[0].clone());
        let _ = self.led.send(());
        if tokio::time::timeout(DEADLINE, lost.wait_for(|lost| *lost))
            .await
            .is_err()
        {
            self.findings.lock().unwrap().error = Some("LOST never came".to_owned());
        }
        Ok(())
    }

    fn state_changed(&self, state: ConnectionState) -> StateChangeAction {
        if state == ConnectionState::Lost {
            self.lost.send_replace(true);
        }
        StateChangeAction::Continue
    }
}

/// Curator: TestLeaderSelectorCluster.testLostRestart.
///
/// A selector (no auto-requeue) whose `take_leadership` records its lock node (the only
/// child) and waits for its listener to hear `LOST` (its `stateChanged` notes `LOST` only). The
/// whole ensemble is stopped: `take_leadership` hears `LOST` and leaves, and the selector no
/// longer leads. The ensemble is started again, and the old lock node deleted (Curator:
/// "simulate the lock deleting due to session expiration"; failures ignored): the selector
/// does not lead by itself (it was not requeued; watched for 500 ms), and after `requeue` it
/// leads again. Curator sleeps a bit after the loss; here the test waits for
/// `take_leadership` to leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_lost_restart() {
    init_tracing();
    let _one = ONE_ENSEMBLE.lock().await;
    let cluster = TestingCluster::start(3).await.expect("an ensemble");
    let client = client(&cluster).await;
    let path = format!("{}/leader", unique_path("selector-cluster-lost-restart"));
    let (led_tx, mut led) = mpsc::unbounded_channel();
    let (exited_tx, mut exited) = mpsc::unbounded_channel();
    let findings = Arc::new(Mutex::new(Findings::default()));
    let turns = Arc::new(AtomicBool::new(false));
    let selector = LeaderSelector::new(
        &client,
        &path,
        LostWaiter {
            path: path.clone(),
            led: led_tx,
            exited: exited_tx,
            lost: watch::channel(false).0,
            findings: findings.clone(),
            turns: turns.clone(),
        },
    )
    .expect("selector");
    selector.start().expect("start");
    next(&mut led, "leadership").await;
    if let Some(error) = findings.lock().unwrap().error.clone() {
        panic!("{error}");
    }
    let lock_node = findings
        .lock()
        .unwrap()
        .lock_node
        .clone()
        .expect("the lock node");

    let (a, b, c) = tokio::join!(cluster.stop(0), cluster.stop(1), cluster.stop(2));
    a.and(b).and(c).expect("stop the ensemble");
    next(&mut exited, "take_leadership to leave").await;
    {
        let findings = findings.lock().unwrap();
        assert!(findings.saw_lost, "take_leadership left before LOST");
        assert_eq!(findings.error, None);
    }
    assert!(!selector.is_leader());
    assert!(!selector.has_leadership().await);

    turns.store(false, Ordering::SeqCst);
    let (a, b, c) = tokio::join!(cluster.restart(0), cluster.restart(1), cluster.restart(2));
    a.and(b).and(c).expect("restart the ensemble");
    let _ = client.delete(&format!("{path}/{lock_node}"), None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !turns.load(Ordering::SeqCst),
        "the selector led without a requeue"
    );
    assert!(!selector.is_leader());
    assert!(!selector.has_leadership().await);

    assert!(selector.requeue().expect("requeue"));
    // (This turn ends at once: its listener already heard `LOST`, as Curator's, whose latch
    // is counted down once.)
    next(&mut led, "leadership after the requeue").await;
    selector.close().await.expect("close");
    client.close().await;
}
