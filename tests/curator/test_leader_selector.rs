//! Curator's `TestLeaderSelector` (`leader/TestLeaderSelector.java`) and
//! `TestLeaderSelectorWithExecutor` (`leader/TestLeaderSelectorWithExecutor.java`), ported to
//! [`LeaderSelector`].
//!
//! How Curator's mechanisms map here:
//!
//! * **Thread interruption is cancellation.** Curator ends a leader by interrupting the thread
//!   that runs `takeLeadership` (`interruptLeadership`, `close`, a `CancelLeadershipException`
//!   from `stateChanged`); here the [`Leadership`] token is cancelled and, after the grace
//!   period, the `take_leadership` future is dropped. A listener that "joins its own thread"
//!   awaits [`Leadership::cancelled`]; one that ignores interruption awaits forever and is
//!   dropped. A `finally` block is a `Drop` guard ([`OnDrop`]).
//! * **`LeaderSelectorListenerAdapter`** is the default [`LeaderSelectorListener::state_changed`]
//!   (cancel on `Suspended` and `Lost`); a bare Curator `LeaderSelectorListener` whose
//!   `stateChanged` does nothing returns [`StateChangeAction::Continue`].
//! * **The client's `ConnectionStateErrorPolicy`** (`StandardConnectionStateErrorPolicy`,
//!   `SessionConnectionStateErrorPolicy`) is the listener's `state_changed` here: cancel on
//!   `Suspended` and `Lost`, or on `Lost` only.
//! * **The executor** (`TestLeaderSelectorWithExecutor`): Curator's selector runs
//!   `takeLeadership` on an `ExecutorService` the caller may give. Here the selector's task
//!   runs on the runtime its [`Client`] was connected on; a caller's "executor" is a tokio
//!   runtime of its own, on which the client is connected.
//! * **Connection states** are read from [`Client::connection_states`], subscribed after the
//!   connect returns: the first `CONNECTED` that Curator's listeners see is not on it.
//!
//! Not ported: none. Adapted beyond the above (see each test's docs):
//!
//! | Curator test | Adaptation |
//! |---|---|
//! | `testRaceAtStateChanged` | Curator parks its selector between the grant and the call of `takeLeadership` with two package-private debug latches (`debugLeadershipLatch`, `debugLeadershipWaitLatch`), a Java test hook this crate does not have. The port holds the selector at the last point a test can reach, waiting in the queue behind another candidate, and checks the same outcome: a turn cancelled by `LOST` never calls `take_leadership`. |
//! | `testKillServerThenCloseShouldElectNewLeader` | Curator starts a *new* server (no data) on the old port, so the session is gone. The kit restarts a server with its data; the test waits for the client to declare the session `LOST` before the restart, which ends the session as the new server would. |
//! | `TestLeaderSelectorWithExecutor.test` | Ported as `test_with_executor` (a test named `test` would say nothing in this suite). |

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{
    children_of, eventually, eventually_async, init_tracing, unique_path, zk_server,
};
use tokio::sync::mpsc;
use zk_recipes::retry::{ExponentialBackoffRetry, RetryOneTime};
use zk_recipes::testing::{expire_session, TestingServer};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{
    BoxError, Client, ConnectionState, Error, LeaderSelector, LeaderSelectorListener, Leadership,
    SelectorError, StateChangeAction,
};

/// Every wait of these tests ends by this deadline (Curator's `timing.forWaiting()` and the
/// like).
const DEADLINE: Duration = Duration::from_secs(30);
/// The session of the tests that stop their server and wait for `LOST`: short, so that the
/// loss comes soon (Curator: `timing.session()`, 15 s).
const SHORT_SESSION: Duration = Duration::from_secs(3);
/// How long a test watches for something that must NOT happen (Curator: 3 s and more).
const QUIET: Duration = Duration::from_millis(500);

type TakeFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type TakeFn = dyn Fn(Leadership) -> TakeFuture + Send + Sync;
type StateFn = dyn Fn(ConnectionState) -> StateChangeAction + Send + Sync;

/// A listener made of two closures: Curator's anonymous `LeaderSelectorListener`s.
struct Listener {
    take: Box<TakeFn>,
    state: Box<StateFn>,
}

/// A listener whose `take_leadership` is `take`, and whose `state_changed` is the standard
/// policy (Curator's `LeaderSelectorListenerAdapter`) until [`Listener::on_state`].
fn listener<F, Fut>(take: F) -> Listener
where
    F: Fn(Leadership) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    Listener {
        take: Box::new(move |leadership| Box::pin(take(leadership))),
        state: Box::new(StateChangeAction::standard),
    }
}

impl Listener {
    fn on_state(
        mut self,
        state: impl Fn(ConnectionState) -> StateChangeAction + Send + Sync + 'static,
    ) -> Self {
        self.state = Box::new(state);
        self
    }

    /// A `stateChanged` that does nothing: a bare Curator `LeaderSelectorListener`.
    fn ignoring_states(self) -> Self {
        self.on_state(|_| StateChangeAction::Continue)
    }
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Listener {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        (self.take)(leadership).await
    }

    fn state_changed(&self, state: ConnectionState) -> StateChangeAction {
        (self.state)(state)
    }
}

/// Runs its closure when dropped: a Java `finally` in `take_leadership`, which also runs when
/// the future is dropped after the grace period.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

async fn client(connect_string: &str, session: Duration) -> Client {
    Client::builder(connect_string)
        .session_timeout(session)
        .connection_timeout(Duration::from_secs(1))
        .retry_policy(RetryOneTime::new(Duration::from_millis(1)))
        .connect()
        .await
        .expect("connect")
}

/// The next value of `rx`, within `DEADLINE`.
async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
        .unwrap_or_else(|| panic!("the channel closed while waiting for {what}"))
}

/// True if `rx` stays empty for [`QUIET`].
async fn stays_empty<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> bool {
    tokio::time::timeout(QUIET, rx.recv()).await.is_err()
}

/// Waits on `states` for `wanted`, skipping other transitions.
async fn wait_state(
    states: &mut zk_recipes::connection::ConnectionStates,
    wanted: ConnectionState,
) {
    tokio::time::timeout(DEADLINE, async {
        while let Some(state) = states.next().await {
            if state == wanted {
                return;
            }
        }
        panic!("the client closed while waiting for {wanted:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {wanted:?}"));
}

async fn own_server() -> TestingServer {
    TestingServer::start().await.expect("a ZooKeeper server")
}

/// Curator: TestLeaderSelector.testInterruption.
///
/// Curator interrupts the leader's thread from outside, so that `takeLeadership` leaves with
/// an `InterruptedException`, and checks that the selector's release of its lock did not fail
/// (`failedMutexReleaseCount` is 0). Here the listener waits on a signal the test owns and
/// leaves with an error when it comes (the exception out of `takeLeadership`); the error
/// reaches the selector's error hook as [`SelectorError::Listener`], and no
/// [`SelectorError::Release`] may follow it. Where Curator sleeps "for the selector to clear
/// its nodes", the test waits until the node is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_interruption() {
    init_tracing();
    let client = client(&zk_server().await, Duration::from_secs(10)).await;
    let path = format!("{}/one/two/me", unique_path("selector-interruption"));
    let (leading_tx, mut leading) = mpsc::unbounded_channel();
    let (exit_tx, mut exited) = mpsc::unbounded_channel();
    let interrupt = Arc::new(tokio::sync::Notify::new());
    let errors = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let listener = {
        let interrupt = interrupt.clone();
        listener(move |_leadership| {
            let (leading_tx, exit_tx, interrupt) =
                (leading_tx.clone(), exit_tx.clone(), interrupt.clone());
            async move {
                let _finally = OnDrop(move || {
                    let _ = exit_tx.send(());
                });
                let _ = leading_tx.send(());
                interrupt.notified().await;
                Err::<(), BoxError>("interrupted".into())
            }
        })
    };
    let selector = LeaderSelector::new(&client, &path, listener)
        .expect("selector")
        .on_error({
            let errors = errors.clone();
            move |e| {
                errors.lock().unwrap().push(match e {
                    SelectorError::Listener(_) => "listener",
                    SelectorError::Release(_) => "release",
                    _ => "other",
                })
            }
        });
    selector.start().expect("start");
    next(&mut leading, "leadership").await;
    interrupt.notify_one();
    next(&mut exited, "take_leadership to leave").await;
    eventually_async("the leader's node to be deleted", DEADLINE, || async {
        children_of(&client, &path).await.is_empty()
    })
    .await;
    eventually("the turn to end", DEADLINE, || !selector.is_queued()).await;
    let errors = errors.lock().unwrap().clone();
    // The listener's error, and no failed release (Curator's `failedMutexReleaseCount` is 0).
    assert_eq!(errors, ["listener"]);
    selector.close().await.expect("close");
    client.close().await;
}

/// What `test_error_policies` sees, in one channel as in Curator's `changes` queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    State(ConnectionState),
    Leader,
    Release,
}

/// Curator: TestLeaderSelector.testErrorPolicies.
///
/// Curator sets the client's error policy; here it is the listener's `state_changed` (see the
/// module docs). With the standard policy, a stopped server gives `SUSPENDED` and the
/// leader's release (in either order), then `LOST`. With the session policy (cancel on `Lost`
/// only), it gives `SUSPENDED`, then `LOST` and the release (in either order), and no
/// release before `LOST`. Curator's first `CONNECTED` is not observed (see the module docs).
/// Curator closes its server and starts a new one for the second half; here the one server is
/// restarted, and the second half uses another path (the first half's session lives on the
/// restarted server until it expires). Session 3 s (Curator: `timing.session()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_error_policies() {
    init_tracing();
    let server = own_server().await;
    let base = unique_path("selector-error-policies");
    for session_policy in [false, true] {
        let (tx, mut changes) = mpsc::unbounded_channel();
        let client = client(&server.connect_string(), SHORT_SESSION).await;
        let mut states = client.connection_states();
        let forward = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(state) = states.next().await {
                    let _ = tx.send(Change::State(state));
                }
            })
        };
        let take = listener(move |leadership| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Change::Leader);
                leadership.cancelled().await;
                let _ = tx.send(Change::Release);
                Ok(())
            }
        });
        let take = if session_policy {
            take.on_state(|state| match state {
                ConnectionState::Suspended => StateChangeAction::Continue,
                other => StateChangeAction::standard(other),
            })
        } else {
            take
        };
        let selector = LeaderSelector::new(&client, &format!("{base}/{session_policy}/test"), take)
            .expect("selector");
        selector.start().expect("start");
        assert_eq!(next(&mut changes, "leadership").await, Change::Leader);
        server.stop().await.expect("stop the server");
        let mut got = vec![
            next(&mut changes, "a change").await,
            next(&mut changes, "a change").await,
        ];
        if session_policy {
            assert_eq!(got[0], Change::State(ConnectionState::Suspended), "{got:?}");
            got.remove(0);
            got.push(next(&mut changes, "a change").await);
            got.sort_by_key(|c| format!("{c:?}"));
            assert_eq!(
                got,
                [Change::Release, Change::State(ConnectionState::Lost)],
                "session policy"
            );
        } else {
            got.sort_by_key(|c| format!("{c:?}"));
            assert_eq!(
                got,
                [Change::Release, Change::State(ConnectionState::Suspended)],
                "standard policy"
            );
            assert_eq!(
                next(&mut changes, "LOST").await,
                Change::State(ConnectionState::Lost)
            );
        }
        // The leader's release may still be failing against the stopped server: close may
        // report it (Curator's `close` does not report releases at all).
        let closed = selector.close().await;
        assert!(
            matches!(
                closed,
                Ok(()) | Err(Error::Timeout(_) | Error::ConnectionLoss)
            ),
            "close gave {closed:?}"
        );
        client.close().await;
        forward.abort();
        if !session_policy {
            server.restart().await.expect("restart the server");
        }
    }
}

/// Curator: TestLeaderSelector.testLeaderNodeDeleteOnInterrupt.
///
/// The leader's listener ignores connection states. The server is stopped, the leader is
/// interrupted while the client cannot reach it (Curator interrupts the leader's thread; here
/// `interrupt_leadership`), and the server is restarted: once the client has reconnected, the
/// leader's node is deleted (its release, which failed while the server was down, goes on in
/// the background). The session is the same throughout, so the node cannot have gone with it.
/// Curator sleeps a bit after the reconnection and then looks; here the test waits for the
/// node to go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_leader_node_delete_on_interrupt() {
    init_tracing();
    let server = own_server().await;
    let client = client(&server.connect_string(), Duration::from_secs(10)).await;
    let session = client.session().id();
    let path = format!("{}/leader", unique_path("selector-delete-on-interrupt"));
    let (leading_tx, mut leading) = mpsc::unbounded_channel();
    let take = listener(move |leadership| {
        let leading_tx = leading_tx.clone();
        async move {
            let _ = leading_tx.send(());
            leadership.cancelled().await;
            Ok(())
        }
    })
    .ignoring_states();
    let selector = LeaderSelector::new(&client, &path, take).expect("selector");
    selector.start().expect("start");
    next(&mut leading, "leadership").await;
    let mut states = client.connection_states();
    server.stop().await.expect("stop the server");
    assert!(selector.interrupt_leadership().expect("interrupt"));
    server.restart().await.expect("restart the server");
    wait_state(&mut states, ConnectionState::Reconnected).await;
    eventually_async("the leader's node to be deleted", DEADLINE, || async {
        children_of(&client, &path).await.is_empty()
    })
    .await;
    assert_eq!(client.session().id(), session, "the session changed");
    selector.close().await.expect("close");
    client.close().await;
}

/// Curator: TestLeaderSelector.testInterruptLeadershipWithRequeue.
///
/// With auto-requeue, a leader whose leadership is interrupted leads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_interrupt_leadership_with_requeue() {
    init_tracing();
    let client = client(&zk_server().await, Duration::from_secs(10)).await;
    let path = format!("{}/leader", unique_path("selector-interrupt-requeue"));
    let (leading_tx, mut leading) = mpsc::unbounded_channel();
    let take = listener(move |leadership| {
        let leading_tx = leading_tx.clone();
        async move {
            let _ = leading_tx.send(leadership.fencing_token());
            leadership.cancelled().await;
            Ok(())
        }
    });
    let selector = LeaderSelector::new(&client, &path, take)
        .expect("selector")
        .auto_requeue(true);
    selector.start().expect("start");
    let first = next(&mut leading, "leadership").await;
    assert!(selector.interrupt_leadership().expect("interrupt"));
    let second = next(&mut leading, "leadership again").await;
    assert!(second > first, "the second turn is a new node");
    selector.close().await.expect("close");
    client.close().await;
}

/// Curator: TestLeaderSelector.testInterruptLeadership.
///
/// `interrupt_leadership` ends the leader's `take_leadership` (its `finally` runs), and the
/// selector, without auto-requeue, leaves the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_interrupt_leadership() {
    init_tracing();
    let client = client(&zk_server().await, Duration::from_secs(10)).await;
    let path = format!("{}/leader", unique_path("selector-interrupt"));
    let (leading_tx, mut leading) = mpsc::unbounded_channel();
    let (losing_tx, mut losing) = mpsc::unbounded_channel();
    let take = listener(move |leadership| {
        let (leading_tx, losing_tx) = (leading_tx.clone(), losing_tx.clone());
        async move {
            let _finally = OnDrop(move || {
                let _ = losing_tx.send(());
            });
            let _ = leading_tx.send(());
            leadership.cancelled().await;
            Ok(())
        }
    })
    .ignoring_states();
    let selector = LeaderSelector::new(&client, &path, take).expect("selector");
    selector.start().expect("start");
    next(&mut leading, "leadership").await;
    assert!(selector.is_leader());
    assert!(selector.interrupt_leadership().expect("interrupt"));
    next(&mut losing, "leadership to end").await;
    eventually("the selector to leave the queue", DEADLINE, || {
        !selector.is_queued()
    })
    .await;
    assert!(!selector.is_leader());
    assert!(
        stays_empty(&mut leading).await,
        "led again without a requeue"
    );
    selector.close().await.expect("close");
    client.close().await;
}

/// Curator: TestLeaderSelector.testRaceAtStateChanged.
///
/// Adapted (see the module docs): Curator holds its selector between the grant and the call
/// of `takeLeadership` with debug latches; here the selector waits in the queue behind
/// another candidate's node. The listener cancels on `LOST` (Curator's
/// `CancelLeadershipException`) and ignores every other state. The server is stopped until
/// the client declares the session lost, then restarted; once the client has reconnected,
/// the other candidate's node is deleted (Curator's `debugLeadershipWaitLatch.countDown()`,
/// which lets the selector go on): the cancelled turn must not call `take_leadership`, and the
/// selector is out of the queue (no auto-requeue). Curator watches for 3 s; here 500 ms,
/// enough for a grant that would follow the delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_race_at_state_changed() {
    init_tracing();
    let server = own_server().await;
    let client = client(&server.connect_string(), SHORT_SESSION).await;
    let other = client_for_blocker(&server).await;
    let path = format!("{}/leader", unique_path("selector-race-state"));
    // Another candidate, first in the queue: a node named as a Curator selector's.
    let blocker = other
        .create_protected(
            &path,
            "lock-",
            b"other",
            CreateMode::PersistentSequential,
            &[],
        )
        .await
        .expect("the other candidate's node");
    let (taken_tx, mut taken) = mpsc::unbounded_channel();
    let (state_tx, mut state_events) = mpsc::unbounded_channel();
    let take = listener(move |_leadership| {
        let taken_tx = taken_tx.clone();
        async move {
            let _ = taken_tx.send(()); // should never get here
            Ok(())
        }
    })
    .on_state(move |state| {
        let _ = state_tx.send(state);
        if state == ConnectionState::Lost {
            StateChangeAction::CancelLeadership
        } else {
            StateChangeAction::Continue
        }
    });
    let selector = LeaderSelector::new(&client, &path, take).expect("selector");
    selector.start().expect("start");
    eventually_async(
        "the selector to wait behind the other node",
        DEADLINE,
        || async { selector.participants().await.map(|p| p.len()).unwrap_or(0) == 2 },
    )
    .await;
    server.stop().await.expect("stop the server");
    while next(&mut state_events, "LOST").await != ConnectionState::Lost {}
    server.restart().await.expect("restart the server");
    while next(&mut state_events, "RECONNECTED").await != ConnectionState::Reconnected {}
    other
        .wait_connected(DEADLINE)
        .await
        .expect("the other client to reconnect");
    other
        .delete(&blocker.path, None)
        .await
        .expect("delete the other candidate's node");
    assert!(
        stays_empty(&mut taken).await,
        "take_leadership was called for a turn cancelled by LOST"
    );
    assert!(!selector.is_queued());
    assert!(!selector.is_leader());
    selector.close().await.expect("close");
    client.close().await;
    other.close().await;
}

async fn client_for_blocker(server: &TestingServer) -> Client {
    client(&server.connect_string(), Duration::from_secs(10)).await
}

/// Curator: TestLeaderSelector.testAutoRequeue.
///
/// With auto-requeue, a leader whose `take_leadership` returns (after 10 ms) leads again: two
/// turns, on two nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_auto_requeue() {
    init_tracing();
    let client = client(&zk_server().await, Duration::from_secs(10)).await;
    let path = format!("{}/leader", unique_path("selector-auto-requeue"));
    let (turns_tx, mut turns) = mpsc::unbounded_channel();
    let take = listener(move |leadership| {
        let turns_tx = turns_tx.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = turns_tx.send(leadership.fencing_token());
            Ok(())
        }
    })
    .ignoring_states();
    let selector = LeaderSelector::new(&client, &path, take)
        .expect("selector")
        .auto_requeue(true);
    selector.start().expect("start");
    let first = next(&mut turns, "a turn").await;
    let second = next(&mut turns, "a second turn").await;
    assert!(second > first);
    selector.close().await.expect("close");
    client.close().await;
}

/// Curator: TestLeaderSelector.testServerDying.
///
/// A leader whose `take_leadership` never returns (Curator: `Thread.sleep(Integer.MAX_VALUE)`),
/// and whose `state_changed` notes `LOST`: when the server dies, the listener hears `LOST`.
/// Curator does not check the second acquire of its semaphore; here it is checked, and so is
/// what this crate adds: the `take_leadership` future that ignored its cancellation is dropped
/// (Curator's sleep is interrupted). Session 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_server_dying() {
    init_tracing();
    let server = own_server().await;
    let client = client(&server.connect_string(), SHORT_SESSION).await;
    let path = format!("{}/leader", unique_path("selector-server-dying"));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicUsize::new(0));
    let take = {
        let events_tx = events_tx.clone();
        let dropped = dropped.clone();
        listener(move |_leadership| {
            let (events_tx, dropped) = (events_tx.clone(), dropped.clone());
            async move {
                let _finally = OnDrop(move || {
                    dropped.fetch_add(1, Ordering::SeqCst);
                });
                let _ = events_tx.send("leader");
                std::future::pending::<()>().await;
                Ok(())
            }
        })
    }
    .on_state(move |state| {
        if state == ConnectionState::Lost {
            let _ = events_tx.send("lost");
        }
        StateChangeAction::standard(state)
    });
    let selector = LeaderSelector::new(&client, &path, take).expect("selector");
    selector.start().expect("start");
    assert_eq!(next(&mut events, "leadership").await, "leader");
    server.kill().await.expect("kill the server");
    assert_eq!(next(&mut events, "LOST").await, "lost");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "take_leadership not dropped"
    );
    assert!(!selector.is_leader());
    selector.close().await.expect("close");
    client.close().await;
}

/// The listener of the two "then close should elect a new leader" tests: counts the
/// `take_leadership` calls running (Curator's `leaderCount`), says which selector leads, and
/// notes the interruption.
fn counting_listener(
    me: usize,
    leaders: &Arc<AtomicUsize>,
    led: &mpsc::UnboundedSender<usize>,
    interrupted: &mpsc::UnboundedSender<usize>,
) -> Listener {
    let (leaders, led, interrupted) = (leaders.clone(), led.clone(), interrupted.clone());
    listener(move |leadership| {
        let (leaders, led, interrupted) = (leaders.clone(), led.clone(), interrupted.clone());
        async move {
            leaders.fetch_add(1, Ordering::SeqCst);
            let _finally = OnDrop(move || {
                leaders.fetch_sub(1, Ordering::SeqCst);
            });
            let _ = led.send(me);
            leadership.cancelled().await;
            let _ = interrupted.send(me);
            Ok(())
        }
    })
}

/// Closes whichever of `selectors` leads (asking the server), and returns its index.
async fn close_the_leader(selectors: &[LeaderSelector]) -> usize {
    for (i, selector) in selectors.iter().enumerate() {
        if selector.has_leadership().await {
            selector.close().await.expect("close the leader");
            return i;
        }
    }
    panic!("no selector has leadership");
}

/// Curator: TestLeaderSelector.testKillSessionThenCloseShouldElectNewLeader.
///
/// Two selectors of one client on one path. The client's session is expired on the server
/// (Curator: `injectSessionExpiration`), and the client hears `LOST`: the leader is
/// interrupted. Both are requeued by hand (Curator sleeps a bit first; here the test waits
/// until both are out of the queue, since `requeue` of a selector still in its cancelled turn
/// answers `false`; a requeue before the client hears `LOST` would be cancelled by it), one
/// leads, and
/// exactly one `take_leadership` runs; the leader is closed, and the other one leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_kill_session_then_close_should_elect_new_leader() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server, Duration::from_secs(10)).await;
    let path = format!("{}/one/two/me", unique_path("selector-kill-session"));
    let leaders = Arc::new(AtomicUsize::new(0));
    let (led_tx, mut led) = mpsc::unbounded_channel();
    let (interrupted_tx, mut interrupted) = mpsc::unbounded_channel();
    let selectors: Vec<LeaderSelector> = (0..2)
        .map(|i| {
            LeaderSelector::new(
                &client,
                &path,
                counting_listener(i, &leaders, &led_tx, &interrupted_tx),
            )
            .expect("selector")
        })
        .collect();
    for selector in &selectors {
        selector.start().expect("start");
    }
    next(&mut led, "a leader").await;

    let info = client
        .session()
        .zookeeper()
        .expect("the session's client")
        .session()
        .clone();
    let mut states = client.connection_states();
    expire_session(&server, &info)
        .await
        .expect("expire the session");
    // Curator's injected expiry reaches the client at once; here the client learns of it when
    // it next talks to the server. A requeue before that would be cancelled by the `LOST`.
    wait_state(&mut states, ConnectionState::Lost).await;
    next(&mut interrupted, "the leader to be interrupted").await;
    eventually("both selectors out of the queue", DEADLINE, || {
        selectors.iter().all(|s| !s.is_queued())
    })
    .await;
    for selector in &selectors {
        assert!(
            selector.requeue().expect("requeue"),
            "requeue answered false"
        );
    }
    next(&mut led, "a leader after the requeue").await;
    assert_eq!(leaders.load(Ordering::SeqCst), 1);

    let closed = close_the_leader(&selectors).await;
    let next_leader = next(&mut led, "the other selector to lead").await;
    assert_ne!(next_leader, closed);
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
    selectors[1 - closed].close().await.expect("close");
    client.close().await;
}

/// Curator: TestLeaderSelector.testKillServerThenCloseShouldElectNewLeader.
///
/// As the test above, with the server taken down instead of the session expired, and
/// auto-requeue instead of requeueing by hand. Adapted (see the module docs): the server is
/// stopped until the client declares its session lost, then restarted. The interrupted
/// leader and the other selector queue again on the client's new session; one leads (once the
/// restarted server has expired the old session's nodes), exactly one `take_leadership`
/// runs; the leader is closed and the other one leads. Session 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_kill_server_then_close_should_elect_new_leader() {
    init_tracing();
    let server = own_server().await;
    let client = client(&server.connect_string(), SHORT_SESSION).await;
    let path = format!("{}/one/two/me", unique_path("selector-kill-server"));
    let leaders = Arc::new(AtomicUsize::new(0));
    let (led_tx, mut led) = mpsc::unbounded_channel();
    let (interrupted_tx, mut interrupted) = mpsc::unbounded_channel();
    let selectors: Vec<LeaderSelector> = (0..2)
        .map(|i| {
            LeaderSelector::new(
                &client,
                &path,
                counting_listener(i, &leaders, &led_tx, &interrupted_tx),
            )
            .expect("selector")
            .auto_requeue(true)
        })
        .collect();
    for selector in &selectors {
        selector.start().expect("start");
    }
    next(&mut led, "a leader").await;

    let mut states = client.connection_states();
    server.stop().await.expect("stop the server");
    wait_state(&mut states, ConnectionState::Lost).await;
    server.restart().await.expect("restart the server");
    next(&mut interrupted, "the leader to be interrupted").await;
    next(&mut led, "a leader after the restart").await;
    assert_eq!(leaders.load(Ordering::SeqCst), 1);

    let closed = close_the_leader(&selectors).await;
    let next_leader = next(&mut led, "the other selector to lead").await;
    assert_ne!(next_leader, closed);
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
    selectors[1 - closed].close().await.expect("close");
    client.close().await;
}

/// Curator: TestLeaderSelector.testClosing.
///
/// Two selectors whose `take_leadership` holds for 10 s (Curator: a latch nobody counts down).
/// Exactly one leads; closing the other leaves it leading (the server agrees); closing it ends
/// its leadership. Curator sleeps a second after each close; here `close` returns once the
/// selector is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_closing() {
    init_tracing();
    let client = client(&zk_server().await, Duration::from_secs(10)).await;
    let path = format!("{}/one/two/me", unique_path("selector-closing"));
    let selectors: Vec<LeaderSelector> = (0..2)
        .map(|_| {
            let take = listener(|leadership| async move {
                tokio::select! {
                    _ = leadership.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
                Ok(())
            })
            .ignoring_states();
            LeaderSelector::new(&client, &path, take).expect("selector")
        })
        .collect();
    for selector in &selectors {
        selector.start().expect("start");
    }
    eventually("a leader", DEADLINE, || {
        selectors.iter().any(|s| s.is_leader())
    })
    .await;
    assert_ne!(selectors[0].is_leader(), selectors[1].is_leader());
    let positive = if selectors[0].is_leader() { 0 } else { 1 };
    let (positive, negative) = (&selectors[positive], &selectors[1 - positive]);

    negative.close().await.expect("close the other selector");
    assert!(!negative.has_leadership().await);
    assert!(positive.has_leadership().await);

    positive.close().await.expect("close the leader");
    assert!(!positive.has_leadership().await);
    assert!(!positive.is_leader());
    assert!(children_of(&client, &path).await.is_empty());
    client.close().await;
}

/// Curator: TestLeaderSelector.testRotatingLeadership.
///
/// Five selectors of one client, three rounds (Curator's counts): the selectors are started
/// (then requeued by hand), each leads once per round, for 20 ms (Curator: `sleepABit`), so
/// every round of five turns names each selector once. Between rounds Curator sleeps a bit;
/// here the test waits until every selector is out of the queue, and checks that `requeue`
/// takes it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_rotating_leadership() {
    const LEADER_QTY: usize = 5;
    const REPEAT_QTY: usize = 3;
    init_tracing();
    let client = client(&zk_server().await, Duration::from_secs(10)).await;
    let path = format!("{}/one/two/me", unique_path("selector-rotating"));
    let (leader_tx, mut leader_list) = mpsc::unbounded_channel();
    let selectors: Vec<LeaderSelector> = (0..LEADER_QTY)
        .map(|me| {
            let leader_tx = leader_tx.clone();
            let take = listener(move |_leadership| {
                let leader_tx = leader_tx.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = leader_tx.send(me);
                    Ok(())
                }
            })
            .ignoring_states();
            LeaderSelector::new(&client, &path, take).expect("selector")
        })
        .collect();
    let mut local = Vec::new();
    for round in 1..=REPEAT_QTY {
        for selector in &selectors {
            if round > 1 {
                assert!(selector.requeue().expect("requeue"));
            } else {
                selector.start().expect("start");
            }
        }
        while local.len() != round * LEADER_QTY {
            local.push(next(&mut leader_list, "a leader").await);
        }
        eventually("every selector out of the queue", DEADLINE, || {
            selectors.iter().all(|s| !s.is_queued())
        })
        .await;
    }
    for selector in &selectors {
        selector.close().await.expect("close");
    }
    for round in local.chunks(LEADER_QTY) {
        let mut seen = round.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len(),
            LEADER_QTY,
            "a round named a selector twice: {local:?}"
        );
    }
    client.close().await;
}

/// Curator: TestLeaderSelectorWithExecutor.test.
///
/// Curator gives its selector a thread factory ("FeedGenerator") and an executor of 20
/// threads, and checks that the listener leads once (`leaderCount` is 1 after a while). Here
/// the "executor" is a tokio runtime of its own with two threads named `FeedGenerator`, on
/// which the client is connected (the selector's task runs on its client's runtime): the
/// listener must run on those threads, and lead exactly once at a time (auto-requeue on, the
/// listener holds until cancelled; its `state_changed` is the standard policy, as Curator's
/// interrupts its thread on `SUSPENDED` and `LOST`). The runtime is shut down at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_with_executor() {
    init_tracing();
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("FeedGenerator")
        .enable_all()
        .build()
        .expect("a runtime");
    let connect_string = zk_server().await;
    let client = executor
        .spawn(async move {
            Client::builder(connect_string)
                .session_timeout(Duration::from_secs(10))
                .connection_timeout(Duration::from_secs(5))
                .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
                .connect()
                .await
        })
        .await
        .expect("the connect task")
        .expect("connect");
    let path = format!("{}/test", unique_path("selector-executor"));
    let leaders = Arc::new(AtomicUsize::new(0));
    let threads = Arc::new(Mutex::new(Vec::<String>::new()));
    let take = {
        let (leaders, threads) = (leaders.clone(), threads.clone());
        listener(move |leadership| {
            let (leaders, threads) = (leaders.clone(), threads.clone());
            async move {
                threads.lock().unwrap().push(
                    std::thread::current()
                        .name()
                        .unwrap_or("<unnamed>")
                        .to_owned(),
                );
                leaders.fetch_add(1, Ordering::SeqCst);
                let _finally = OnDrop(move || {
                    leaders.fetch_sub(1, Ordering::SeqCst);
                });
                leadership.cancelled().await;
                Ok(())
            }
        })
    };
    let selector = LeaderSelector::new(&client, &path, take)
        .expect("selector")
        .auto_requeue(true);
    selector.start().expect("start");
    eventually("the listener to lead", DEADLINE, || {
        leaders.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
    assert_eq!(
        *threads.lock().unwrap(),
        ["FeedGenerator"],
        "take_leadership ran off the executor, or more than once"
    );
    selector.close().await.expect("close");
    assert_eq!(leaders.load(Ordering::SeqCst), 0);
    client.close().await;
    executor.shutdown_background();
}
