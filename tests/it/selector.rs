//! `LeaderSelector` against a real ZooKeeper: fair rotation, mutual exclusion across sessions,
//! a blackholed leader, an expired leader, close, panics and errors, interrupt/requeue, a
//! listener that rides out suspensions, and misuse.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{eventually, eventually_async, init_tracing, unique_path, zk_server};
use tokio::sync::watch;
use zk_recipes::testing::{expire_session, FaultProxy};
use zk_recipes::{
    BoxError, Client, ConnectionState, Error, LeaderSelector, LeaderSelectorListener, Leadership,
    SelectorError, SelectorState, StateChangeAction,
};

const DEADLINE: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(4);

async fn connect(connect_string: &str, session_timeout: Duration) -> Client {
    Client::builder(connect_string)
        .session_timeout(session_timeout)
        .connection_timeout(Duration::from_millis(1500))
        .connect()
        .await
        .expect("connect")
}

/// What the listeners of one test did, in order, shared by every selector of the test.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<(Ev, String)>>,
    /// `take_leadership` calls running right now, across all selectors.
    active: AtomicUsize,
    /// Set if two ever ran at once.
    overlap: AtomicBool,
    /// Completed read-increment-write rounds on the counter node.
    increments: AtomicUsize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Start,
    Cancelled,
    Dropped,
    Done,
}

impl Log {
    fn push(&self, ev: Ev, who: &str) {
        self.events.lock().unwrap().push((ev, who.to_owned()));
    }

    fn events(&self) -> Vec<(Ev, String)> {
        self.events.lock().unwrap().clone()
    }

    fn count(&self, ev: Ev, who: &str) -> usize {
        self.events()
            .iter()
            .filter(|(e, w)| *e == ev && w == who)
            .count()
    }

    fn starts(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|(e, _)| *e == Ev::Start)
            .map(|(_, w)| w)
            .collect()
    }

    /// Index of the `n`-th (0-based) occurrence of (ev, who).
    fn position(&self, ev: Ev, who: &str, n: usize) -> Option<usize> {
        self.events()
            .iter()
            .enumerate()
            .filter(|(_, (e, w))| *e == ev && w == who)
            .nth(n)
            .map(|(i, _)| i)
    }
}

/// What a probe does with its leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Brief work (the counter round, if any, and a pause), then return.
    Work(Duration),
    /// Hold until cancelled, then return.
    HoldUntilCancelled,
    /// Hold until cancelled, then keep going regardless (so the future is dropped).
    IgnoreCancel,
}

/// A test listener.
struct Probe {
    name: String,
    log: Arc<Log>,
    mode: Mode,
    /// An unguarded counter node: read, +1, write, in every turn.
    counter: Option<String>,
    /// Turn numbers (1-based) that panic, and that return an error.
    panic_on: Vec<usize>,
    error_on: Vec<usize>,
    /// Every turn waits for this to be true before working.
    gate: Option<watch::Receiver<bool>>,
    /// Ride out suspensions (keep leading while Suspended).
    tolerate_suspended: bool,
    turns: AtomicUsize,
}

impl Probe {
    fn new(name: &str, log: &Arc<Log>, mode: Mode) -> Self {
        Self {
            name: name.to_owned(),
            log: log.clone(),
            mode,
            counter: None,
            panic_on: Vec::new(),
            error_on: Vec::new(),
            gate: None,
            tolerate_suspended: false,
            turns: AtomicUsize::new(0),
        }
    }
}

/// Records `Dropped` if the turn's future is dropped before it finished.
struct DropWitness {
    log: Arc<Log>,
    name: String,
    finished: bool,
}

impl Drop for DropWitness {
    fn drop(&mut self) {
        self.log.active.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.log.push(Ev::Dropped, &self.name);
        }
    }
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Probe {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let turn = self.turns.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(leadership.id(), self.name);
        assert!(leadership.fencing_token() > 0);
        if self.log.active.fetch_add(1, Ordering::SeqCst) != 0 {
            self.log.overlap.store(true, Ordering::SeqCst);
        }
        self.log.push(Ev::Start, &self.name);
        let mut witness = DropWitness {
            log: self.log.clone(),
            name: self.name.clone(),
            finished: false,
        };
        if self.panic_on.contains(&turn) {
            witness.finished = true;
            panic!("probe {} panics on turn {turn}", self.name);
        }
        if self.error_on.contains(&turn) {
            witness.finished = true;
            return Err(format!("probe {} fails on turn {turn}", self.name).into());
        }
        if let Some(gate) = &self.gate {
            let mut gate = gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        if let Some(counter) = &self.counter {
            let client = leadership.client();
            let (data, _) = client.get_data(counter).await?.expect("counter node");
            let value: u64 = String::from_utf8(data)?.parse()?;
            tokio::time::sleep(Duration::from_millis(3)).await;
            client
                .set_data(counter, (value + 1).to_string().as_bytes(), None)
                .await?;
            self.log.increments.fetch_add(1, Ordering::SeqCst);
        }
        match self.mode {
            Mode::Work(pause) => tokio::time::sleep(pause).await,
            Mode::HoldUntilCancelled => {
                leadership.cancelled().await;
                self.log.push(Ev::Cancelled, &self.name);
            }
            Mode::IgnoreCancel => {
                leadership.cancelled().await;
                self.log.push(Ev::Cancelled, &self.name);
                std::future::pending::<()>().await;
            }
        }
        witness.finished = true;
        self.log.push(Ev::Done, &self.name);
        Ok(())
    }

    fn state_changed(&self, state: ConnectionState) -> StateChangeAction {
        if self.tolerate_suspended && state == ConnectionState::Suspended {
            StateChangeAction::Continue
        } else {
            StateChangeAction::standard(state)
        }
    }
}

/// A selector named `name`, not started, whose listener holds leadership until cancelled,
/// with auto-requeue.
fn holder_with_requeue(client: &Client, path: &str, log: &Arc<Log>, name: &str) -> LeaderSelector {
    LeaderSelector::new(
        client,
        path,
        Probe::new(name, log, Mode::HoldUntilCancelled),
    )
    .unwrap()
    .with_id(name)
    .auto_requeue(true)
}

/// The lock nodes under `path`.
async fn lock_nodes(client: &Client, path: &str) -> Vec<String> {
    client
        .children(path)
        .await
        .unwrap()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.contains("lock-"))
        .collect()
}

/// Waits until no lock node is left under `path`. Used after closing selectors that may have
/// been waiting in the queue: a create still in flight when the wait is withdrawn leaves its
/// node to a background clean-up, which `close` does not wait for.
async fn no_nodes_left(client: &Client, path: &str) {
    eventually_async("no lock nodes left", Duration::from_secs(10), || async {
        lock_nodes(client, path).await.is_empty()
    })
    .await;
}

async fn counter_node(client: &Client, path: &str) -> String {
    let counter = format!("{path}-counter");
    client
        .create(
            &counter,
            b"0",
            zk_recipes::zookeeper_client::CreateMode::Persistent,
            &[],
        )
        .await
        .unwrap();
    counter
}

async fn read_counter(client: &Client, counter: &str) -> usize {
    let (data, _) = client.get_data(counter).await.unwrap().unwrap();
    String::from_utf8(data).unwrap().parse().unwrap()
}

/// Three selectors on three sessions with auto-requeue lead strictly in turn, A, B, C, A, B,
/// C …, for at least 12 turns, and never two at once (overlap flag and an unguarded counter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_selectors_rotate_fairly_and_never_overlap() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-rotate");
    let observer = connect(&server, SESSION).await;
    let counter = counter_node(&observer, &path).await;
    let log = Arc::new(Log::default());
    let (open, gate) = watch::channel(false);
    let mut clients = Vec::new();
    let mut selectors = Vec::new();
    for (i, name) in ["A", "B", "C"].into_iter().enumerate() {
        let client = connect(&server, SESSION).await;
        let mut probe = Probe::new(name, &log, Mode::Work(Duration::from_millis(20)));
        probe.counter = Some(counter.clone());
        probe.gate = Some(gate.clone());
        let selector = LeaderSelector::new(&client, &path, probe)
            .unwrap()
            .with_id(name)
            .auto_requeue(true);
        selector.start().unwrap();
        // Queue in order: wait until this one's node is there before starting the next.
        eventually_async("the selector to queue", DEADLINE, || {
            let s = &selector;
            async move { s.participants().await.unwrap().len() == i + 1 }
        })
        .await;
        clients.push(client);
        selectors.push(selector);
    }
    let participants = selectors[0].participants().await.unwrap();
    let ids: Vec<_> = participants.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["A", "B", "C"]);
    assert!(participants[0].is_leader && !participants[1].is_leader);
    assert_eq!(selectors[2].leader().await.unwrap().unwrap().id, "A");
    assert!(selectors[0].is_leader());
    assert!(!selectors[1].is_leader() && !selectors[2].is_leader());

    let started = Instant::now();
    open.send_replace(true);
    eventually("15 turns", DEADLINE, || {
        log.count(Ev::Done, "A") + log.count(Ev::Done, "B") + log.count(Ev::Done, "C") >= 15
    })
    .await;
    let turns_took = started.elapsed();
    // Turns recorded before the first close are in rotation; closing one selector after
    // another changes the queue, so later turns are not checked for order.
    let starts = log.starts();
    for selector in &selectors {
        selector.close().await.unwrap();
    }
    let expected: Vec<String> = ["A", "B", "C"]
        .iter()
        .cycle()
        .take(starts.len())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(starts, expected, "leadership must go round in queue order");
    assert!(
        !log.overlap.load(Ordering::SeqCst),
        "two take_leadership ran at once"
    );
    let done = log.increments.load(Ordering::SeqCst);
    assert!(done >= 15);
    assert_eq!(
        read_counter(&observer, &counter).await,
        done,
        "lost update on the counter"
    );
    no_nodes_left(&observer, &path).await;
    tracing::info!(?turns_took, turns = starts.len(), "rotation");
}

/// Many short turns across three sessions, started all at once: no two leaders ever, checked by
/// an in-process flag and by a counter node updated without any guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_exclusion_across_sessions() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-mutex");
    let observer = connect(&server, SESSION).await;
    let counter = counter_node(&observer, &path).await;
    let log = Arc::new(Log::default());
    let mut clients = Vec::new();
    let mut selectors = Vec::new();
    for name in ["A", "B", "C"] {
        let client = connect(&server, SESSION).await;
        let mut probe = Probe::new(name, &log, Mode::Work(Duration::from_millis(1)));
        probe.counter = Some(counter.clone());
        let selector = LeaderSelector::new(&client, &path, probe)
            .unwrap()
            .with_id(name)
            .auto_requeue(true);
        clients.push(client);
        selectors.push(selector);
    }
    for selector in &selectors {
        selector.start().unwrap();
    }
    eventually("40 increments", DEADLINE, || {
        log.increments.load(Ordering::SeqCst) >= 40
    })
    .await;
    // Interrupt a few turns too, wherever they are.
    for selector in &selectors {
        selector.interrupt_leadership().unwrap();
    }
    let before = log.increments.load(Ordering::SeqCst);
    eventually("more increments after the interrupts", DEADLINE, || {
        log.increments.load(Ordering::SeqCst) >= before + 10
    })
    .await;
    for selector in &selectors {
        selector.close().await.unwrap();
    }
    assert!(
        !log.overlap.load(Ordering::SeqCst),
        "two take_leadership ran at once"
    );
    assert_eq!(
        read_counter(&observer, &counter).await,
        log.increments.load(Ordering::SeqCst),
        "lost update on the counter"
    );
    for name in ["A", "B", "C"] {
        assert!(log.count(Ev::Start, name) > 0, "{name} never led");
    }
    no_nodes_left(&observer, &path).await;
}

/// A leader cut off by a blackhole: the client notices the silence after a fraction of the
/// session timeout and cancels leadership, drops the stubborn `take_leadership` after the grace
/// period, and all that happens before the follower leads (which it can only after the server
/// expires the session, after the whole session timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_leader_is_cancelled_and_dropped_before_anyone_else_leads() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let path = unique_path("selector-blackhole");
    let log = Arc::new(Log::default());
    let leader_client = connect(&proxy.connect_string(), SESSION).await;
    let leader = LeaderSelector::new(
        &leader_client,
        &path,
        Probe::new("L", &log, Mode::IgnoreCancel),
    )
    .unwrap()
    .with_id("L")
    .cancel_grace(Duration::from_millis(300));
    leader.start().unwrap();
    eventually("L leads", DEADLINE, || leader.is_leader()).await;

    let follower_client = connect(&server, SESSION).await;
    let follower = LeaderSelector::new(
        &follower_client,
        &path,
        Probe::new("F", &log, Mode::HoldUntilCancelled),
    )
    .unwrap()
    .with_id("F");
    follower.start().unwrap();
    eventually_async("F queues", DEADLINE, || {
        let f = &follower;
        async move { f.participants().await.unwrap().len() == 2 }
    })
    .await;

    let cut_at = Instant::now();
    proxy.blackhole();
    eventually("F leads", DEADLINE, || log.count(Ev::Start, "F") == 1).await;
    let handover = cut_at.elapsed();
    let cancelled = log
        .position(Ev::Cancelled, "L", 0)
        .expect("L was cancelled");
    let dropped = log
        .position(Ev::Dropped, "L", 0)
        .expect("L's future was dropped");
    let f_started = log.position(Ev::Start, "F", 0).unwrap();
    assert!(
        cancelled < dropped && dropped < f_started,
        "order must be: L cancelled, L dropped, F starts; got {:?}",
        log.events()
    );
    assert_eq!(log.count(Ev::Done, "L"), 0);
    assert!(!leader.is_leader());
    assert!(follower.is_leader());
    assert!(!log.overlap.load(Ordering::SeqCst));
    tracing::info!(?handover, "blackholed leader replaced");

    proxy.restore();
    follower.close().await.unwrap();
    let _ = leader.close().await;
}

/// An expired leader: the follower leads; with auto-requeue the old leader joins again on its
/// client's new session, shows up in the participants again, and leads again later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leader_rejoins_on_its_new_session_and_leads_again() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-expire");
    let log = Arc::new(Log::default());
    let a_client = connect(&server, SESSION).await;
    let a = LeaderSelector::new(
        &a_client,
        &path,
        Probe::new("A", &log, Mode::HoldUntilCancelled),
    )
    .unwrap()
    .with_id("A")
    .auto_requeue(true);
    a.start().unwrap();
    eventually("A leads", DEADLINE, || a.is_leader()).await;
    let b_client = connect(&server, SESSION).await;
    let (open, gate) = watch::channel(false);
    let mut b_probe = Probe::new("B", &log, Mode::Work(Duration::from_millis(10)));
    b_probe.gate = Some(gate);
    let b = LeaderSelector::new(&b_client, &path, b_probe)
        .unwrap()
        .with_id("B")
        .auto_requeue(true);
    b.start().unwrap();
    eventually_async("B queues", DEADLINE, || {
        let b = &b;
        async move { b.participants().await.unwrap().len() == 2 }
    })
    .await;

    let old_session = a_client.session();
    let info = old_session.zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    eventually("B leads", DEADLINE, || log.count(Ev::Start, "B") == 1).await;
    // No order between A's cancellation and B's start is asserted: the server hands the node
    // over when it expires the session, and A can only learn of the expiry afterwards.
    eventually("A cancelled", DEADLINE, || log.count(Ev::Done, "A") == 1).await;
    // A is back in the queue, behind B, on a new session.
    eventually_async("A queued again on a new session", DEADLINE, || {
        let b = &b;
        async move {
            let ids: Vec<String> = b
                .participants()
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.id)
                .collect();
            ids == ["B", "A"]
        }
    })
    .await;
    assert_ne!(a_client.session().id(), old_session.id());
    open.send_replace(true);
    eventually("A leads again", DEADLINE, || a.is_leader()).await;
    assert_eq!(log.count(Ev::Start, "A"), 2);
    a.close().await.unwrap();
    b.close().await.unwrap();
    no_nodes_left(&b_client, &path).await;
}

/// `close()` while leading cancels, waits for `take_leadership` (or drops it after the grace
/// period), deletes the node, and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_during_take_leadership_cancels_releases_and_leaves_no_node() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server, SESSION).await;
    for (mode, name) in [
        (Mode::HoldUntilCancelled, "polite"),
        (Mode::IgnoreCancel, "stubborn"),
    ] {
        let path = unique_path("selector-close");
        let log = Arc::new(Log::default());
        let grace = Duration::from_millis(400);
        let selector = LeaderSelector::new(&client, &path, Probe::new(name, &log, mode))
            .unwrap()
            .with_id(name)
            .auto_requeue(true)
            .cancel_grace(grace);
        selector.start().unwrap();
        eventually("leading", DEADLINE, || selector.is_leader()).await;
        assert_eq!(lock_nodes(&client, &path).await.len(), 1);
        let closing = Instant::now();
        selector.close().await.unwrap();
        let took = closing.elapsed();
        assert!(!selector.is_leader());
        assert_eq!(selector.state(), SelectorState::Closed);
        assert_eq!(log.count(Ev::Cancelled, name), 1);
        match mode {
            Mode::HoldUntilCancelled => {
                assert_eq!(log.count(Ev::Done, name), 1);
                assert!(
                    took < grace,
                    "a polite listener is not waited for: {took:?}"
                );
            }
            _ => {
                assert_eq!(log.count(Ev::Dropped, name), 1);
                assert!(took >= grace, "the grace period was not given: {took:?}");
            }
        }
        assert!(
            lock_nodes(&client, &path).await.is_empty(),
            "{name}: node left"
        );
        assert_eq!(log.count(Ev::Start, name), 1, "no requeue after close");
    }
}

/// A panic or an error in `take_leadership` releases leadership (the other selector leads), is
/// reported to the error hook, and with auto-requeue the selector carries on and leads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_errors_release_leadership_and_the_selector_carries_on() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-panic");
    let log = Arc::new(Log::default());
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    // B leads first, held by the gate, so that A queues right behind it.
    let (open, gate) = watch::channel(false);
    let b_client = connect(&server, SESSION).await;
    let mut b_probe = Probe::new("B", &log, Mode::Work(Duration::from_millis(10)));
    b_probe.gate = Some(gate);
    let b = LeaderSelector::new(&b_client, &path, b_probe)
        .unwrap()
        .with_id("B")
        .auto_requeue(true);
    b.start().unwrap();
    eventually("B leads", DEADLINE, || b.is_leader()).await;
    let a_client = connect(&server, SESSION).await;
    let mut a_probe = Probe::new("A", &log, Mode::Work(Duration::from_millis(10)));
    a_probe.panic_on = vec![1];
    a_probe.error_on = vec![2];
    let sink = errors.clone();
    let a = LeaderSelector::new(&a_client, &path, a_probe)
        .unwrap()
        .with_id("A")
        .auto_requeue(true)
        .on_error(move |e| {
            let kind = match &e {
                SelectorError::Panicked(m) => format!("panic: {m}"),
                SelectorError::Listener(e) => format!("error: {e}"),
                other => format!("other: {other}"),
            };
            sink.lock().unwrap().push(kind);
        });
    a.start().unwrap();
    eventually_async("A queues", DEADLINE, || {
        let a = &a;
        async move { a.participants().await.unwrap().len() == 2 }
    })
    .await;
    // A panicked on turn 1, failed on turn 2, and leads again on turn 3; B led in between.
    open.send_replace(true);
    eventually("A leads a third time", DEADLINE, || {
        log.count(Ev::Start, "A") >= 3
    })
    .await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    let errors = errors.lock().unwrap().clone();
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(
        errors[0].starts_with("panic: probe A panics on turn 1"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("error: probe A fails on turn 2"),
        "{errors:?}"
    );
    let starts = log.starts();
    let first_a = starts.iter().position(|s| s == "A").unwrap();
    assert_eq!(
        starts.get(first_a + 1).map(String::as_str),
        Some("B"),
        "B leads once A's panic released leadership: {starts:?}"
    );
    assert!(!log.overlap.load(Ordering::SeqCst));
    no_nodes_left(&a_client, &path).await;
}

/// `interrupt_leadership` and `requeue` without auto-requeue, and every misuse: typed errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_requeue_and_misuse() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server, SESSION).await;
    let log = Arc::new(Log::default());

    for bad in ["", "relative", "/", "/trailing/", "/a//b", "/zookeeper/x"] {
        let made = LeaderSelector::new(
            &client,
            bad,
            Probe::new("X", &log, Mode::HoldUntilCancelled),
        );
        assert!(
            matches!(made, Err(Error::InvalidPath { .. })),
            "{bad:?} accepted"
        );
    }

    let path = unique_path("selector-misuse");
    let selector = LeaderSelector::new(
        &client,
        &path,
        Probe::new("S", &log, Mode::HoldUntilCancelled),
    )
    .unwrap()
    .with_id("S");
    assert_eq!(selector.state(), SelectorState::Latent);
    assert!(matches!(selector.requeue(), Err(Error::IllegalState(_))));
    assert!(matches!(
        selector.interrupt_leadership(),
        Err(Error::IllegalState(_))
    ));
    assert!(matches!(
        selector.close().await,
        Err(Error::IllegalState(_))
    ));
    assert!(selector.participants().await.unwrap().is_empty());
    assert!(selector.leader().await.unwrap().is_none());

    selector.start().unwrap();
    assert!(matches!(selector.start(), Err(Error::IllegalState(_))));
    eventually("leading", DEADLINE, || selector.is_leader()).await;
    assert!(selector.is_queued());
    assert!(!selector.requeue().unwrap(), "already leading");
    assert_eq!(selector.leader().await.unwrap().unwrap().id, "S");

    // Interrupt: cancelled, released, and (no auto-requeue) out of the queue.
    assert!(selector.interrupt_leadership().unwrap());
    eventually("S cancelled", DEADLINE, || log.count(Ev::Done, "S") == 1).await;
    eventually("S out of the queue", DEADLINE, || !selector.is_queued()).await;
    assert!(!selector.is_leader());
    assert!(lock_nodes(&client, &path).await.is_empty());
    assert!(
        !selector.interrupt_leadership().unwrap(),
        "nothing to interrupt"
    );

    // Requeue: leads again.
    assert!(selector.requeue().unwrap());
    eventually("S leads again", DEADLINE, || selector.is_leader()).await;
    assert_eq!(log.count(Ev::Start, "S"), 2);

    selector.close().await.unwrap();
    assert!(lock_nodes(&client, &path).await.is_empty());
    assert!(matches!(selector.close().await, Err(Error::Closed)));
    assert!(matches!(selector.start(), Err(Error::Closed)));
    assert!(matches!(selector.requeue(), Err(Error::Closed)));
    assert!(matches!(
        selector.interrupt_leadership(),
        Err(Error::Closed)
    ));

    // A closed client.
    let closed_client = connect(&server, SESSION).await;
    let orphan = LeaderSelector::new(
        &closed_client,
        &path,
        Probe::new("O", &log, Mode::HoldUntilCancelled),
    )
    .unwrap();
    closed_client.close().await;
    assert!(matches!(orphan.start(), Err(Error::Closed)));
    assert_eq!(log.count(Ev::Start, "O"), 0);
}

/// A waiting candidate that is interrupted leaves the queue and its node is deleted; with
/// auto-requeue it joins the back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_waiter_is_withdrawn() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-withdraw");
    let log = Arc::new(Log::default());
    let client = connect(&server, SESSION).await;
    let leader = LeaderSelector::new(
        &client,
        &path,
        Probe::new("L", &log, Mode::HoldUntilCancelled),
    )
    .unwrap()
    .with_id("L");
    leader.start().unwrap();
    eventually("L leads", DEADLINE, || leader.is_leader()).await;
    let other = connect(&server, SESSION).await;
    let waiter = LeaderSelector::new(
        &other,
        &path,
        Probe::new("W", &log, Mode::HoldUntilCancelled),
    )
    .unwrap()
    .with_id("W");
    waiter.start().unwrap();
    eventually_async("W queues", DEADLINE, || {
        let w = &waiter;
        async move { w.participants().await.unwrap().len() == 2 }
    })
    .await;
    let first_node = waiter.participants().await.unwrap()[1].node.clone();
    assert!(waiter.interrupt_leadership().unwrap());
    eventually_async("W's node deleted", DEADLINE, || {
        let w = &waiter;
        async move { w.participants().await.unwrap().len() == 1 }
    })
    .await;
    eventually("W out of the queue", DEADLINE, || !waiter.is_queued()).await;
    // With auto-requeue it joins again, with a new node.
    waiter.set_auto_requeue(true);
    assert!(waiter.requeue().unwrap());
    eventually_async("W queued again", DEADLINE, || {
        let w = &waiter;
        async move { w.participants().await.unwrap().len() == 2 }
    })
    .await;
    let second_node = waiter.participants().await.unwrap()[1].node.clone();
    assert_ne!(first_node, second_node);
    assert!(waiter.interrupt_leadership().unwrap());
    eventually_async("W requeued with another node", DEADLINE, || {
        let w = &waiter;
        let second = second_node.clone();
        async move {
            let p = w.participants().await.unwrap();
            p.len() == 2 && p[1].node != second && p[1].id == "W"
        }
    })
    .await;
    assert_eq!(log.count(Ev::Start, "W"), 0);
    leader.close().await.unwrap();
    eventually("W leads", DEADLINE, || waiter.is_leader()).await;
    waiter.close().await.unwrap();
    assert!(lock_nodes(&client, &path).await.is_empty());
}

/// A listener that rides out suspensions keeps leading through a short cut; the deletion of its
/// node still cancels leadership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tolerant_listener_keeps_leading_through_a_suspension_but_not_a_deleted_node() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let path = unique_path("selector-tolerant");
    let log = Arc::new(Log::default());
    let client = connect(&proxy.connect_string(), Duration::from_secs(8)).await;
    let mut probe = Probe::new("T", &log, Mode::HoldUntilCancelled);
    probe.tolerate_suspended = true;
    let selector = LeaderSelector::new(&client, &path, probe)
        .unwrap()
        .with_id("T");
    selector.start().unwrap();
    eventually("T leads", DEADLINE, || selector.is_leader()).await;
    let session = client.session();

    let mut states = client.connection_states();
    proxy.cut();
    assert_eq!(
        tokio::time::timeout(DEADLINE, states.next()).await.unwrap(),
        Some(ConnectionState::Suspended)
    );
    proxy.restore();
    assert_eq!(
        tokio::time::timeout(DEADLINE, states.next()).await.unwrap(),
        Some(ConnectionState::Reconnected)
    );
    assert_eq!(client.session().id(), session.id());
    assert!(selector.is_leader(), "a suspension was tolerated");
    assert_eq!(log.count(Ev::Cancelled, "T"), 0);

    // Someone deletes the leader's node: leadership is cancelled whatever the listener says.
    let observer = connect(&server, SESSION).await;
    let node = selector.participants().await.unwrap()[0].node.clone();
    assert!(observer
        .delete(&format!("{path}/{node}"), None)
        .await
        .unwrap());
    eventually("T cancelled", DEADLINE, || {
        log.count(Ev::Cancelled, "T") == 1
    })
    .await;
    eventually("T no longer leads", DEADLINE, || !selector.is_leader()).await;
    selector.close().await.unwrap();
}

/// A leader whose node someone else deletes is cancelled, and with auto-requeue joins again
/// and leads again: its requeue cannot delete the old node in the same transaction as it
/// creates the new one (the delete fails, so the transaction does nothing), and it creates the
/// new node alone. Exactly one node is left, and no release failure is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_node_was_deleted_requeues_and_leads_again() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-deleted");
    let log = Arc::new(Log::default());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let client = connect(&server, SESSION).await;
    let selector = holder_with_requeue(&client, &path, &log, "D").on_error({
        let errors = errors.clone();
        move |e| errors.lock().unwrap().push(e.to_string())
    });
    selector.start().unwrap();
    eventually("D leads", DEADLINE, || selector.is_leader()).await;
    let observer = connect(&server, SESSION).await;
    let first = lock_nodes(&observer, &path).await;
    assert_eq!(first.len(), 1);
    assert!(observer
        .delete(&format!("{path}/{}", first[0]), None)
        .await
        .unwrap());

    eventually("D leads a second time", DEADLINE, || {
        log.count(Ev::Start, "D") == 2 && selector.is_leader()
    })
    .await;
    assert_eq!(log.count(Ev::Cancelled, "D"), 1);
    let second = lock_nodes(&observer, &path).await;
    assert_eq!(second.len(), 1, "one node: {second:?}");
    assert_ne!(second, first);
    assert_eq!(
        selector.leader().await.unwrap().map(|p| p.node),
        Some(second[0].clone())
    );
    selector.close().await.unwrap();
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );
    no_nodes_left(&observer, &path).await;
}

/// Dropping a started selector closes it in the background: leadership is cancelled and the
/// node deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_selector_closes_it_in_the_background() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-drop");
    let log = Arc::new(Log::default());
    let client = connect(&server, SESSION).await;
    let selector = holder_with_requeue(&client, &path, &log, "D");
    selector.start().unwrap();
    eventually("D leads", DEADLINE, || selector.is_leader()).await;
    drop(selector);
    eventually("D cancelled", DEADLINE, || log.count(Ev::Done, "D") == 1).await;
    eventually_async("D's node deleted", DEADLINE, || {
        let c = &client;
        let p = &path;
        async move { lock_nodes(c, p).await.is_empty() }
    })
    .await;
    assert_eq!(log.count(Ev::Start, "D"), 1);
}

/// Hands each turn's `Leadership` out, and leads until cancelled.
struct HandsOut(tokio::sync::mpsc::UnboundedSender<Leadership>);

#[async_trait::async_trait]
impl LeaderSelectorListener for HandsOut {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let _ = self.0.send(leadership.clone());
        leadership.cancelled().await;
        Ok(())
    }
}

/// `Leadership::verify` and `LeaderSelector::has_leadership` ask the server: true while the
/// turn's node is there, false at once when someone deleted it (before the cancellation need
/// have come), and false once the turn is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_has_leadership_ask_the_server() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("selector-verify");
    let client = connect(&server, SESSION).await;
    let observer = connect(&server, SESSION).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let selector = LeaderSelector::new(&client, &path, HandsOut(tx)).unwrap();
    selector.start().unwrap();
    let leadership = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a turn")
        .unwrap();
    assert!(leadership.verify().await);
    assert!(selector.is_leader());
    assert!(selector.has_leadership().await);
    observer.delete(leadership.node_path(), None).await.unwrap();
    assert!(
        !leadership.verify().await,
        "verified a node deleted before the check"
    );
    tokio::time::timeout(DEADLINE, leadership.cancelled())
        .await
        .expect("the deleted node cancels the turn");
    assert!(!selector.is_leader());
    assert!(!selector.has_leadership().await);
    selector.close().await.unwrap();
}
