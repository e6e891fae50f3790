//! A connection blip at every step of every recipe's acquire.
//!
//! A step that meets a connection loss must retry under the client's retry policy (finding
//! its own node again where one may have been made), so a blip that the policy easily absorbs
//! never fails an acquire, and never leaves a node behind. Each test first runs the acquire
//! once without a fault and records the trace events it emits (`zk_recipes`'s own, from the
//! acquiring future: the steps whose errors reach the caller; background work retries until
//! its session is lost). Then, once per recorded event, it runs the acquire again and blips
//! the connection at that event: the connection is blackholed as the event is emitted (so a
//! request sent right after it is lost), and cut 5 ms later, which the client sees as a drop.
//! The acquire must still succeed, and its release must leave no node.
//!
//! This is how a semaphore acquire was found to fail with `ConnectionLoss` when the read of
//! its new lease node's stat (which follows the create on servers with ZOOKEEPER-4026) met a
//! blip: the create had succeeded, and the read's error was returned at once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{children_of, eventually_children, init_tracing, unique_path, zk_server};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::testing::FaultProxy;
use zk_recipes::{
    Client, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, InterProcessSemaphoreV2, LatchLayout, LeaderLatch,
};

/// How long a round may take: the blip, the reconnection and the policy's retries.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long the connection is blackholed before it is cut.
const BLIP: Duration = Duration::from_millis(5);

/// A client of `connect_string` with the retry policy the tests assume: a blip is one or two
/// failed attempts, well within its three retries.
async fn connect(connect_string: &str) -> Client {
    Client::builder(connect_string)
        .session_timeout(Duration::from_secs(20))
        .connection_timeout(Duration::from_secs(5))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
        .connect()
        .await
        .expect("connect")
}

/// Records the crate's trace events (their messages) and, if armed, blips the proxy's
/// connection at the `blip_at`-th of them.
#[derive(Clone)]
struct StepRecorder {
    messages: Arc<Mutex<Vec<String>>>,
    seen: Arc<AtomicUsize>,
    blip_at: Option<usize>,
    proxy: Option<Arc<FaultProxy>>,
    blipped: Arc<AtomicBool>,
}

impl StepRecorder {
    fn recording() -> Self {
        Self {
            messages: Arc::default(),
            seen: Arc::default(),
            blip_at: None,
            proxy: None,
            blipped: Arc::default(),
        }
    }

    fn blipping(proxy: Arc<FaultProxy>, at: usize) -> Self {
        Self {
            blip_at: Some(at),
            proxy: Some(proxy),
            ..Self::recording()
        }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    fn dispatch(&self) -> tracing::Dispatch {
        tracing::Dispatch::new(tracing_subscriber::registry().with(self.clone()))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StepRecorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !event.metadata().target().starts_with("zk_recipes") {
            return;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.messages.lock().unwrap().push(message.0);
        let index = self.seen.fetch_add(1, Ordering::SeqCst);
        if Some(index) == self.blip_at {
            let proxy = self.proxy.clone().expect("a blipping recorder has a proxy");
            // Synchronously, before the code after the event sends anything.
            proxy.blackhole();
            self.blipped.store(true, Ordering::SeqCst);
            std::thread::spawn(move || {
                std::thread::sleep(BLIP);
                // Restoring a blackholed connection closes it: the client sees a drop.
                proxy.restore();
            });
        }
    }
}

/// One round of a scenario: `acquirer` is connected through the fault proxy, `other` directly
/// (a holder to contend with, an observer); `path` is fresh. The scenario runs its acquire
/// under `dispatch`, asserts that it succeeded, releases, and checks that no node is left.
trait Scenario: Fn(Client, Client, String, tracing::Dispatch) -> Self::Round {
    type Round: Future<Output = ()>;
}

impl<F, R> Scenario for F
where
    F: Fn(Client, Client, String, tracing::Dispatch) -> R,
    R: Future<Output = ()>,
{
    type Round = R;
}

/// Runs `scenario` once to record its steps, then once per step with a blip at it.
async fn blip_every_step(name: &str, scenario: impl Scenario) {
    init_tracing();
    let server = zk_server().await;
    let other = connect(&server).await;

    let recorder = StepRecorder::recording();
    {
        let acquirer = connect(&server).await;
        let round = scenario(
            acquirer.clone(),
            other.clone(),
            unique_path(name),
            recorder.dispatch(),
        );
        tokio::time::timeout(DEADLINE, round)
            .await
            .unwrap_or_else(|_| panic!("{name}: the round without a fault timed out"));
        acquirer.close().await;
    }
    let steps = recorder.messages();
    assert!(
        !steps.is_empty(),
        "{name}: the acquire emitted no trace event, so no step can be blipped"
    );
    tracing::info!(%name, ?steps, "steps to blip");

    for (index, step) in steps.iter().enumerate() {
        let proxy = Arc::new(FaultProxy::start(&server).await.expect("proxy"));
        let acquirer = connect(&proxy.connect_string()).await;
        let blipper = StepRecorder::blipping(proxy.clone(), index);
        let round = scenario(
            acquirer.clone(),
            other.clone(),
            unique_path(name),
            blipper.dispatch(),
        );
        if tokio::time::timeout(DEADLINE, round).await.is_err() {
            panic!("{name}: with a blip at step {index} ({step:?}) the round did not end");
        }
        tracing::info!(
            %name,
            index,
            %step,
            blipped = blipper.blipped.load(Ordering::SeqCst),
            "blipped step survived"
        );
        acquirer.close().await;
    }
    other.close().await;
}

/// Fails the round, naming the error, if `outcome` is an error.
fn granted<T, E: std::fmt::Debug>(what: &str, outcome: Result<T, E>) -> T {
    outcome.unwrap_or_else(|e| panic!("{what} failed under a blip the retry policy absorbs: {e:?}"))
}

/// A release's outcome: it may meet the end of the blip, and then reports the delete's
/// connection loss, as documented, and deletes the node in the background (`no_node_left`
/// checks that it does).
fn released<E: std::fmt::Debug>(outcome: Result<(), E>) {
    if let Err(e) = outcome {
        let error = format!("{e:?}");
        assert!(
            error.contains("ConnectionLoss"),
            "a release failed other than by the documented connection loss: {error}"
        );
    }
}

async fn no_node_left(observer: &Client, parent: &str) {
    eventually_children(observer, parent, 0, "every node released").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_mutex_acquire_is_retried() {
    blip_every_step("step-mutex", |acquirer, other, path, dispatch| async move {
        let mutex = InterProcessMutex::new(&acquirer, &path).unwrap();
        let guard = granted("acquire", mutex.acquire().with_subscriber(dispatch).await);
        released(guard.release().await);
        no_node_left(&other, &path).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_contended_mutex_acquire_is_retried() {
    blip_every_step(
        "step-mutex-contended",
        |acquirer, other, path, dispatch| async move {
            let holder = InterProcessMutex::new(&other, &path).unwrap();
            let held = holder.acquire().await.unwrap();
            let mutex = InterProcessMutex::new(&acquirer, &path).unwrap();
            let waiting =
                tokio::spawn(async move { mutex.acquire().await }.with_subscriber(dispatch));
            eventually_children(&other, &path, 2, "the waiter's node").await;
            held.release().await.unwrap();
            let guard = granted("acquire", waiting.await.unwrap());
            released(guard.release().await);
            no_node_left(&other, &path).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_read_write_lock_and_its_downgrade_is_retried() {
    blip_every_step("step-rw", |acquirer, other, path, dispatch| async move {
        let lock = InterProcessReadWriteLock::new(&acquirer, &path).unwrap();
        let (read, reader) = async {
            let write = granted("write acquire", lock.write_lock().acquire().await);
            let read = match write.downgrade().await {
                // A blip while the write hold is held makes it one that may be lost, and such
                // a hold is documented not to downgrade: no read node may be made from it.
                Err(zk_recipes::Error::LockLost) if write.is_lost() => None,
                outcome => Some(granted("downgrade", outcome)),
            };
            // A second hold of this client waits for the write hold (every acquire is a
            // holder of its own): the write hold goes first.
            released(write.release().await);
            let reader = granted("read acquire", lock.read_lock().acquire().await);
            (read, reader)
        }
        .with_subscriber(dispatch)
        .await;
        if let Some(read) = read {
            released(read.release().await);
        }
        released(reader.release().await);
        no_node_left(&other, &path).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_semaphore_acquire_is_retried() {
    blip_every_step(
        "step-semaphore",
        |acquirer, other, path, dispatch| async move {
            let semaphore = InterProcessSemaphoreV2::new(&acquirer, &path, 2).unwrap();
            let leases = granted(
                "acquire_many",
                semaphore.acquire_many(2).with_subscriber(dispatch).await,
            );
            for lease in leases {
                released(lease.release().await);
            }
            no_node_left(&other, &format!("{path}/leases")).await;
            no_node_left(&other, &format!("{path}/locks")).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_waiting_semaphore_acquire_is_retried() {
    blip_every_step(
        "step-semaphore-waiting",
        |acquirer, other, path, dispatch| async move {
            let holder = InterProcessSemaphoreV2::new(&other, &path, 1).unwrap();
            let held = holder.acquire().await.unwrap();
            let semaphore = InterProcessSemaphoreV2::new(&acquirer, &path, 1).unwrap();
            let waiting =
                tokio::spawn(async move { semaphore.acquire().await }.with_subscriber(dispatch));
            eventually_children(&other, &format!("{path}/leases"), 2, "the waiter's lease").await;
            held.release().await.unwrap();
            let lease = granted("acquire", waiting.await.unwrap());
            released(lease.release().await);
            no_node_left(&other, &format!("{path}/leases")).await;
            no_node_left(&other, &format!("{path}/locks")).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_multi_lock_acquire_is_retried() {
    blip_every_step("step-multi", |acquirer, other, path, dispatch| async move {
        let (first, second) = (format!("{path}/a"), format!("{path}/b"));
        let multi = InterProcessMultiLock::new([
            zk_recipes::MultiLockPart::from(InterProcessMutex::new(&acquirer, &first).unwrap()),
            InterProcessSemaphoreMutex::new(&acquirer, &second)
                .unwrap()
                .into(),
        ])
        .unwrap();
        let guard = granted("acquire", multi.acquire().with_subscriber(dispatch).await);
        released(guard.release().await);
        no_node_left(&other, &first).await;
        no_node_left(&other, &format!("{second}/leases")).await;
    })
    .await;
}

async fn latch_round(
    layout: LatchLayout,
    acquirer: Client,
    other: Client,
    path: String,
    dispatch: tracing::Dispatch,
) {
    let latch = LeaderLatch::new(&acquirer, &path)
        .unwrap()
        .with_layout(layout);
    async {
        granted("start", latch.start().await);
        granted("await_leadership", latch.await_leadership().await);
    }
    .with_subscriber(dispatch)
    .await;
    assert!(latch.has_leadership().await, "leads after the blip");
    latch.close().await.expect("close");
    if layout == LatchLayout::Curator {
        no_node_left(&other, &path).await;
    } else {
        assert_eq!(other.exists(&path).await.unwrap(), None, "the latch node");
    }
    let _ = children_of(&other, &path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_race_latch_start_is_retried() {
    blip_every_step("step-race-latch", |acquirer, other, path, dispatch| {
        latch_round(LatchLayout::Race, acquirer, other, path, dispatch)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_any_step_of_a_curator_latch_start_is_retried() {
    blip_every_step("step-curator-latch", |acquirer, other, path, dispatch| {
        latch_round(LatchLayout::Curator, acquirer, other, path, dispatch)
    })
    .await;
}
