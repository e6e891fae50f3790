//! `InterProcessSemaphoreV2` and `InterProcessSemaphoreMutex` against real ZooKeeper: never more
//! holders than leases under churn (and the semaphore is really full at times), `acquire_many`
//! and timeouts give back what they took, a lease deleted from outside fires `lost()` and
//! frees its place, a count behind an internal lock released ahead that does not fit waits
//! under the lock again, a shared count's change reaches a waiter, an internal lock node deleted
//! under a waiting acquirer lets nobody in beside the holders, cancelled acquires leave no
//! node, and the semaphore mutex does not re-enter.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{
    children_of, connect_with, curator_lock_node, eventually_async, eventually_children,
    init_tracing, join_within, sort_by_sequence, unique_path, until_connection_state, zk_server,
};
use tokio::task::JoinHandle;
use tracing::instrument::WithSubscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use zk_recipes::testing::FaultProxy;
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{
    Client, ConnectionState, InterProcessSemaphoreMutex, InterProcessSemaphoreV2, Lease,
    SharedCount,
};

const DEADLINE: Duration = Duration::from_secs(20);

async fn connect(connect_string: &str) -> Client {
    connect_with(
        connect_string,
        Duration::from_secs(20),
        Duration::from_secs(5),
    )
    .await
}

fn semaphore(client: &Client, path: &str, max: u32, id: &str) -> InterProcessSemaphoreV2 {
    InterProcessSemaphoreV2::new(client, path, max)
        .expect("semaphore")
        .with_id(id)
}

/// Collects the `node` field of the trace events with one message, of the futures its
/// subscriber is attached to.
#[derive(Clone)]
struct EventNodes {
    message: &'static str,
    nodes: Arc<Mutex<HashSet<String>>>,
}

impl EventNodes {
    fn new(message: &'static str) -> Self {
        Self {
            message,
            nodes: Arc::default(),
        }
    }

    /// How many different nodes the events named.
    fn distinct(&self) -> usize {
        self.nodes.lock().unwrap().len()
    }

    /// The nodes the events named.
    fn named(&self) -> HashSet<String> {
        self.nodes.lock().unwrap().clone()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventNodes {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            message: String,
            node: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.message = format!("{value:?}"),
                    "node" => self.node = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.message == self.message {
            self.nodes.lock().unwrap().insert(fields.node);
        }
    }
}

/// An `acquire` of `semaphore` on a task of its own.
fn spawn_acquire(semaphore: &InterProcessSemaphoreV2) -> JoinHandle<zk_recipes::Result<Lease>> {
    let semaphore = semaphore.clone();
    tokio::spawn(async move { semaphore.acquire().await })
}

/// [`spawn_acquire`], with `events` collecting the acquire's trace events.
fn spawn_acquire_traced(
    semaphore: &InterProcessSemaphoreV2,
    events: &EventNodes,
) -> JoinHandle<zk_recipes::Result<Lease>> {
    let semaphore = semaphore.clone();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tokio::spawn(async move { semaphore.acquire().await }.with_subscriber(subscriber))
}

/// Waits until `path/leases` holds `expected` lease nodes and `path/locks` none.
pub(crate) async fn await_leases(observer: &Client, path: &str, expected: usize) {
    eventually_children(
        observer,
        &format!("{path}/leases"),
        expected,
        "the lease nodes",
    )
    .await;
    eventually_children(
        observer,
        &format!("{path}/locks"),
        0,
        "no internal lock node",
    )
    .await;
}

/// Three clients, three tasks each, on a semaphore of 2: never more than two inside at once,
/// and two inside at times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_holders_than_leases() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-churn");
    const MAX: u32 = 2;
    const ROUNDS: usize = 8;
    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for c in 0..3 {
        let client = connect(&server).await;
        let semaphore = semaphore(&client, &path, MAX, &format!("client-{c}"));
        for _ in 0..3 {
            let (semaphore, inside, most_inside) =
                (semaphore.clone(), inside.clone(), most_inside.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let lease = semaphore.acquire().await.expect("acquire");
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most_inside.fetch_max(now, Ordering::SeqCst);
                    assert!(now <= MAX as usize, "{now} holders of {MAX} leases");
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..10))).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    lease.release().await.expect("release");
                }
            }));
        }
        clients.push(client);
    }
    tokio::time::timeout(
        Duration::from_secs(120),
        futures::future::try_join_all(tasks),
    )
    .await
    .expect("every task finished")
    .expect("no task failed");
    assert_eq!(
        most_inside.load(Ordering::SeqCst),
        MAX as usize,
        "the semaphore was never full: the test proves nothing"
    );
    await_leases(&clients[0], &path, 0).await;
    for client in clients {
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_leases_and_timeouts_give_back_what_they_took() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-many");
    let (first, second) = (connect(&server).await, connect(&server).await);
    let holder = semaphore(&first, &path, 3, "holder");
    let asker = semaphore(&second, &path, 3, "asker");
    let held = holder.acquire_many(2).await.expect("two leases");
    assert_eq!(held.len(), 2);
    assert_eq!(holder.participant_nodes().await.unwrap().len(), 2);
    // Two more do not fit: the one that would is taken, then given back at the deadline.
    let timed_out = asker
        .try_acquire_many(2, Duration::from_millis(500))
        .await
        .expect("try two");
    assert!(timed_out.is_none(), "four leases of three");
    await_leases(&first, &path, 2).await;
    // One look, and one lease fits.
    let third = asker
        .try_acquire(Duration::ZERO)
        .await
        .expect("try one")
        .expect("the third lease is free");
    assert!(asker
        .try_acquire(Duration::ZERO)
        .await
        .expect("try a fourth")
        .is_none());
    assert_ne!(third.fencing_token(), held[0].fencing_token());
    for lease in held {
        lease.release().await.expect("release");
    }
    third.release().await.expect("release");
    await_leases(&first, &path, 0).await;
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_deleted_from_outside_is_lost_and_frees_its_place() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-deleted");
    let (first, second) = (connect(&server).await, connect(&server).await);
    let holder = semaphore(&first, &path, 1, "holder");
    let waiter = semaphore(&second, &path, 1, "waiter");
    let lease = holder.acquire().await.expect("lease");
    let waiting = spawn_acquire(&waiter);
    // The waiter's lease node is made while it holds the internal lock.
    eventually_children(
        &first,
        &format!("{path}/leases"),
        2,
        "the waiter's lease node",
    )
    .await;
    assert!(!waiting.is_finished());
    first
        .delete(lease.node_path(), None)
        .await
        .expect("delete the holder's lease");
    tokio::time::timeout(DEADLINE, lease.lost())
        .await
        .expect("the deleted lease is lost");
    assert!(lease.is_lost());
    assert!(!lease.verify().await);
    let granted = join_within(waiting, DEADLINE, "the waiter gets the freed place")
        .await
        .expect("lease");
    lease
        .release()
        .await
        .expect("releasing a lost lease is no error");
    granted.release().await.expect("release");
    await_leases(&first, &path, 0).await;
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_count_change_reaches_the_waiter() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-count");
    let count_path = unique_path("semaphore-count-limit");
    let (first, second) = (connect(&server).await, connect(&server).await);
    let count = SharedCount::new(&first, &count_path).expect("count");
    count.set(1).await.expect("set the count");
    assert_eq!(count.get().await.unwrap(), Some(1));
    let holder = InterProcessSemaphoreV2::with_shared_count(&first, &path, &count).unwrap();
    let waiter = InterProcessSemaphoreV2::with_shared_count(
        &second,
        &path,
        &SharedCount::new(&second, &count_path).unwrap(),
    )
    .unwrap();
    let lease = holder.acquire().await.expect("lease");
    let waiting = spawn_acquire(&waiter);
    eventually_children(
        &first,
        &format!("{path}/leases"),
        2,
        "the waiter's lease node",
    )
    .await;
    assert!(!waiting.is_finished(), "two leases of one");
    count.set(2).await.expect("raise the count");
    let second_lease = join_within(waiting, DEADLINE, "the raised count lets the waiter in")
        .await
        .expect("lease");
    assert!(!lease.is_lost(), "both hold now");
    second_lease.release().await.expect("release");
    lease.release().await.expect("release");
    await_leases(&first, &path, 0).await;
    first.close().await;
    second.close().await;
}

/// The internal lock node of the acquirer that waits for a lease is deleted from outside:
/// another acquirer may now hold the internal lock and add a lease, so the waiter must start
/// again, and the holders never outnumber the leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_internal_lock_is_deleted_starts_again() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-lock-deleted");
    let clients = [
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    ];
    let holder = semaphore(&clients[0], &path, 1, "holder");
    let lease = holder.acquire().await.expect("lease");
    // Each waiter, once in, checks that it is alone among the waiters, and leaves.
    let inside = Arc::new(AtomicUsize::new(0));
    let waiter = |c: usize| {
        let semaphore = semaphore(&clients[c], &path, 1, &format!("waiter-{c}"));
        let inside = inside.clone();
        async move {
            let lease = semaphore.acquire().await?;
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            assert_eq!(now, 1, "two waiters hold one lease");
            tokio::time::sleep(Duration::from_millis(50)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            lease.release().await
        }
    };
    let first = tokio::spawn(waiter(1));
    eventually_children(
        &clients[0],
        &format!("{path}/leases"),
        2,
        "a waiting lease node",
    )
    .await;
    let second = tokio::spawn(waiter(2));
    eventually_children(
        &clients[0],
        &format!("{path}/locks"),
        2,
        "two internal lock nodes",
    )
    .await;
    // Delete the internal lock node of the acquirer that holds it (the first in its queue).
    let mut leases_before = children_of(&clients[0], &format!("{path}/leases")).await;
    leases_before.sort();
    let mut locks = children_of(&clients[0], &format!("{path}/locks")).await;
    sort_by_sequence(&mut locks);
    let deposed = locks[0].clone();
    clients[0]
        .delete(&format!("{path}/locks/{deposed}"), None)
        .await
        .expect("delete the internal lock node");
    // The deposed acquirer gives back its lease node and queues again; the other takes the
    // internal lock and makes its own lease node. The lease is still held: nobody gets in.
    eventually_async("the other waiter takes over", DEADLINE, || async {
        let mut leases = children_of(&clients[0], &format!("{path}/leases")).await;
        leases.sort();
        let locks = children_of(&clients[0], &format!("{path}/locks")).await;
        leases.len() == 2
            && leases != leases_before
            && locks.len() == 2
            && !locks.contains(&deposed)
    })
    .await;
    assert!(
        !first.is_finished() && !second.is_finished() && inside.load(Ordering::SeqCst) == 0,
        "a waiter got in beside the holder"
    );
    assert!(lease.verify().await, "the holder's lease is untouched");
    lease.release().await.expect("release");
    for task in [first, second] {
        join_within(task, DEADLINE, "each waiter gets the lease in turn")
            .await
            .expect("lease");
    }
    await_leases(&clients[0], &path, 0).await;
    for client in clients {
        client.close().await;
    }
}

/// An acquirer's lease is created ahead of its internal lock's grant, in the round trip of the
/// listing that may grant the lock (the one after its predecessor's deletion). When that
/// listing shows a node still before ours (the predecessor gave up while the holder stayed),
/// the lease made ahead is deleted and nobody gets in; the acquirer gets its lease once the
/// holder goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_made_ahead_of_a_lock_grant_that_does_not_come_is_deleted() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-ahead");
    let (other, client) = (connect(&server).await, connect(&server).await);
    let (locks, leases) = (format!("{path}/locks"), format!("{path}/leases"));
    // A holder of the internal lock and a waiter behind it, as Java acquirers make them.
    let holder = curator_lock_node(&other, &locks, "holder").await;
    let given_up = curator_lock_node(&other, &locks, "gives up").await;
    other
        .create(&leases, b"", CreateMode::Persistent, &[])
        .await
        .expect("the leases' parent");
    let stat_of_leases = || async { other.exists(&leases).await.expect("stat").expect("leases") };
    let before = stat_of_leases().await;

    // Waiters that watch their predecessors (a recursive watch on the lock path would show
    // the holder still there without a listing, and no lease would be made ahead).
    let acquiring =
        spawn_acquire(&semaphore(&client, &path, 1, "rust").with_recursive_watch(false));
    eventually_children(&other, &locks, 3, "the acquirer's lock node").await;
    // The acquirer watches the node before its own; that node goes without having held the
    // lock, so the listing after its deletion shows the holder still there.
    other.delete(&given_up, None).await.expect("delete");
    eventually_async("the lease made ahead, and its delete", DEADLINE, || async {
        let stat = stat_of_leases().await;
        stat.cversion >= before.cversion + 2 && stat.num_children == 0
    })
    .await;
    assert!(
        !acquiring.is_finished(),
        "granted while the holder held the internal lock"
    );

    other.delete(&holder, None).await.expect("delete");
    let lease = join_within(acquiring, DEADLINE, "the lease once the holder goes")
        .await
        .expect("lease");
    assert_eq!(
        children_of(&other, &leases).await,
        [lease.node_name().to_owned()]
    );
    lease.release().await.expect("release");
    await_leases(&other, &path, 0).await;
    other.close().await;
    client.close().await;
}

/// Between acquirers of one process, the internal lock's release reads the next acquirer's
/// lock node behind its delete, and sends that acquirer's lease create behind the read. When
/// the read finds the node gone (someone deleted it, and nothing told this process, whose
/// own node was its predecessor), the lease made ahead is deleted, and the acquirer joins
/// again and gets its lease in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_made_ahead_of_a_local_handoff_to_a_deleted_node_is_deleted() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-ahead-local");
    let (other, client) = (connect(&server).await, connect(&server).await);
    let (locks, leases) = (format!("{path}/locks"), format!("{path}/leases"));
    let held = semaphore(&other, &path, 1, "holder")
        .acquire()
        .await
        .expect("lease");
    let ours = semaphore(&client, &path, 1, "ours");
    // The first takes the internal lock and waits, with its lease node, for the holder's to go;
    // the second queues behind it on the internal lock.
    let first = spawn_acquire(&ours);
    eventually_children(&other, &leases, 2, "the first's waiting lease").await;
    let second = spawn_acquire(&ours);
    eventually_children(&other, &locks, 2, "the second's lock node").await;
    let mut lock_nodes = children_of(&other, &locks).await;
    sort_by_sequence(&mut lock_nodes);
    other
        .delete(&format!("{locks}/{}", lock_nodes[1]), None)
        .await
        .expect("delete the second's lock node");

    held.release().await.expect("release");
    let first = join_within(first, DEADLINE, "the first's lease")
        .await
        .expect("lease");
    // The second joins again, takes the internal lock and waits with its own lease node: the
    // first's and the second's are all there is.
    eventually_async("the second waits with one lease node", DEADLINE, || async {
        let nodes = children_of(&other, &leases).await;
        nodes.len() == 2 && nodes.iter().any(|node| node == first.node_name())
    })
    .await;
    assert!(!second.is_finished(), "two leases of one granted");
    first.release().await.expect("release");
    let second = join_within(second, DEADLINE, "the second's lease")
        .await
        .expect("lease");
    assert_eq!(
        children_of(&other, &leases).await,
        [second.node_name().to_owned()]
    );
    second.release().await.expect("release");
    await_leases(&other, &path, 0).await;
    other.close().await;
    client.close().await;
}

/// An acquirer whose handle's last count left room releases the internal lock right behind
/// its next count. When that count does not fit after all, it gives its lease node back, queues
/// for the lock again and waits under it, as Curator's acquirers do: never without the lock
/// (two lease nodes waiting at once could count each other forever), and with one lease node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_behind_a_lock_released_ahead_that_does_not_fit_waits_under_the_lock() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-released-ahead");
    let (ours_client, other_client) = (connect(&server).await, connect(&server).await);
    let ours = semaphore(&ours_client, &path, 2, "ours");
    let other = semaphore(&other_client, &path, 2, "other");
    // One lease of two: its count (1) left room, so our next acquire releases ahead.
    let first = ours.acquire().await.expect("the first lease");
    let filling = other.acquire().await.expect("the other lease");
    // Named once the lease node is given back: the lock node it released ahead is gone too
    // (deleted before it, on the same session).
    let given_back = EventNodes::new(
        "gave back a lease counted behind the internal lock's early release; queueing again",
    );
    let waiting = spawn_acquire_traced(&ours, &given_back);
    eventually_async("the lease given back", DEADLINE, || async {
        given_back.distinct() > 0 || waiting.is_finished()
    })
    .await;
    assert!(
        !waiting.is_finished(),
        "a third lease of two: {:?}",
        waiting.await
    );
    // It waits under the internal lock again: a lock node of its own, and one lease node
    // beside the two held, not the one given back.
    let (leases, locks) = (format!("{path}/leases"), format!("{path}/locks"));
    eventually_children(&other_client, &locks, 1, "the waiter's lock node").await;
    eventually_children(&other_client, &leases, 3, "two leases and the waiting one").await;
    let lock_node = format!("{locks}/{}", children_of(&other_client, &locks).await[0]);
    let (data, _) = other_client
        .get_data(&lock_node)
        .await
        .expect("read the lock node")
        .expect("the waiter's lock node");
    assert_eq!(data, b"ours");
    let given_back_nodes = given_back.named();
    for lease in children_of(&other_client, &leases).await {
        assert!(
            !given_back_nodes
                .iter()
                .any(|node| lease.contains(node.as_str())),
            "the lease given back is still there: {lease}"
        );
    }
    assert!(
        !waiting.is_finished(),
        "granted while the semaphore is full"
    );
    filling.release().await.expect("release the other lease");
    let second = join_within(waiting, DEADLINE, "the waiting acquire")
        .await
        .expect("granted once a lease went");
    assert_eq!(
        given_back.distinct(),
        1,
        "an acquire queues again at most once"
    );
    first.release().await.expect("release");
    second.release().await.expect("release");
    await_leases(&other_client, &path, 0).await;
    ours_client.close().await;
    other_client.close().await;
}

/// A waiting acquire rides out more connection blips than the retry policy allows retries:
/// each one starts its attempt again, after it had counted its lease, with the policy's count
/// afresh (a wait of hours must not fail at its fourth blip).
///
/// Each blip comes once the waiter's current attempt has counted the leases and waits, so that
/// it hits a waiting attempt and not one still starting (a loss before the count is a retry,
/// and counts against the policy). Nothing on the server shows that moment, so the test counts
/// the attempts' own trace events for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_acquire_outlives_many_connection_blips() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-blips");
    let holder_client = connect(&server).await;
    let proxy = FaultProxy::start(&server).await.expect("proxy");
    let waiter_client = connect_with(
        &proxy.connect_string(),
        Duration::from_secs(20),
        Duration::from_secs(2),
    )
    .await;
    let holder = semaphore(&holder_client, &path, 1, "holder");
    let waiter = semaphore(&waiter_client, &path, 1, "waiter");
    let lease = holder.acquire().await.expect("lease");
    // Each attempt makes its own lease node, and names it when it has counted and waits.
    let counted = EventNodes::new("waiting for a lease to go");
    let waiting = spawn_acquire_traced(&waiter, &counted);
    let mut states = waiter_client.connection_states();
    for blip in 0..6 {
        // This round's attempt has counted (each blip ends one attempt).
        eventually_async("the waiting attempt's count", DEADLINE, || async {
            counted.distinct() > blip || waiting.is_finished()
        })
        .await;
        assert!(
            !waiting.is_finished(),
            "blip {} ended the wait: {:?}",
            blip.saturating_sub(1),
            waiting.await
        );
        proxy.cut();
        until_connection_state(
            &mut states,
            ConnectionState::Suspended,
            DEADLINE,
            &format!("blip {blip}"),
        )
        .await;
        proxy.restore();
        until_connection_state(
            &mut states,
            ConnectionState::Reconnected,
            DEADLINE,
            &format!("blip {blip}"),
        )
        .await;
        assert!(
            !waiting.is_finished(),
            "blip {blip} ended the wait: {:?}",
            waiting.await
        );
    }
    eventually_children(
        &holder_client,
        &format!("{path}/leases"),
        2,
        "the waiting lease",
    )
    .await;
    lease.release().await.expect("release");
    let granted = join_within(waiting, DEADLINE, "granted after the blips")
        .await
        .expect("lease");
    granted.release().await.expect("release");
    await_leases(&holder_client, &path, 0).await;
    holder_client.close().await;
    waiter_client.close().await;
}

/// An acquire cancelled while it waits (holding the internal lock, with its lease node made)
/// or while it queues for the internal lock leaves no node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_leave_no_node() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-cancel");
    let (first, second) = (connect(&server).await, connect(&server).await);
    let holder = semaphore(&first, &path, 1, "holder");
    let waiter = semaphore(&second, &path, 1, "waiter");
    let lease = holder.acquire().await.expect("lease");
    for queued_behind in [0, 1] {
        let waiting = tokio::spawn({
            let waiter = waiter.clone();
            async move { waiter.acquire_many(1).await }
        });
        eventually_children(
            &first,
            &format!("{path}/leases"),
            2,
            "the waiter's lease node",
        )
        .await;
        // A second acquirer of the same handle queues behind the first for the internal lock.
        let behind = (queued_behind == 1).then(|| spawn_acquire(&waiter));
        let locks = 1 + queued_behind;
        eventually_children(
            &first,
            &format!("{path}/locks"),
            locks,
            "the internal lock nodes",
        )
        .await;
        waiting.abort();
        if let Some(behind) = behind {
            // The one behind takes the internal lock and waits with a lease node of its own;
            // cancel it there.
            eventually_children(&first, &format!("{path}/locks"), 1, "the one behind's turn").await;
            eventually_children(&first, &format!("{path}/leases"), 2, "its lease node").await;
            behind.abort();
        }
        await_leases(&first, &path, 1).await;
    }
    // A timed-out try leaves nothing either.
    assert!(waiter
        .try_acquire(Duration::from_millis(300))
        .await
        .expect("try")
        .is_none());
    await_leases(&first, &path, 1).await;
    lease.release().await.expect("release");
    let granted = waiter
        .try_acquire(DEADLINE)
        .await
        .expect("acquire")
        .expect("nothing left in the way");
    granted.release().await.expect("release");
    await_leases(&first, &path, 0).await;
    first.close().await;
    second.close().await;
}

/// A shared count whose node does not exist yet lets nobody in; its creation lets the waiter
/// in at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_count_created_late_lets_the_waiter_in() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-late-count");
    let count_path = unique_path("semaphore-late-count-limit");
    let client = connect(&server).await;
    let count = SharedCount::new(&client, &count_path).expect("count");
    assert_eq!(count.get().await.unwrap(), None);
    let semaphore = InterProcessSemaphoreV2::with_shared_count(&client, &path, &count).unwrap();
    let waiting = spawn_acquire(&semaphore);
    eventually_children(
        &client,
        &format!("{path}/leases"),
        1,
        "the waiting lease node",
    )
    .await;
    assert!(
        !waiting.is_finished(),
        "a lease under a count that does not exist"
    );
    count.set(1).await.expect("create the count");
    let lease = join_within(waiting, DEADLINE, "the count's creation lets the waiter in")
        .await
        .expect("lease");
    lease.release().await.expect("release");
    await_leases(&client, &path, 0).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_semaphore_mutex_does_not_reenter() {
    init_tracing();
    let server = zk_server().await;
    let path = unique_path("semaphore-mutex");
    let client = connect(&server).await;
    let mutex = InterProcessSemaphoreMutex::new(&client, &path)
        .unwrap()
        .with_id("only");
    assert!(!mutex.is_acquired_in_this_process());
    let lease = mutex.acquire().await.expect("acquire");
    assert!(mutex.is_acquired_in_this_process());
    assert!(
        mutex
            .try_acquire(Duration::from_millis(200))
            .await
            .expect("try again")
            .is_none(),
        "the semaphore mutex re-entered"
    );
    let nodes = children_of(&client, &format!("{path}/leases")).await;
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].starts_with("_c_") && nodes[0].contains("-lease-"));
    lease.release().await.expect("release");
    assert!(!mutex.is_acquired_in_this_process());
    await_leases(&client, &path, 0).await;
    client.close().await;
}
