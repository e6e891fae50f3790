//! Curator's `TestInterProcessSemaphoreCluster`
//! (`locks/TestInterProcessSemaphoreCluster.java`), with its helper `SemaphoreClient`, ported
//! to [`InterProcessSemaphoreV2`] on a three-server [`TestingCluster`].
//!
//! Both tests take a whole ensemble down and bring it back. Curator starts a *new* ensemble
//! (on new ports, with no data) and points its clients at it; this crate's [`Client`] has a
//! fixed connect string (no `EnsembleProvider`), so the tests stop and restart the members
//! of one ensemble, which come back on the same ports with their data: sessions, and the
//! lease nodes of the holders whose sessions are lost, live on until the server expires them.
//!
//! The two tests share a lock so that only one ensemble runs at a time (six ZooKeeper JVMs on
//! two cores would slow the rest of the suite).
//!
//! Not ported: none.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{eventually, eventually_async, init_tracing, unique_path};
use tokio::sync::Semaphore;
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::testing::TestingCluster;
use zk_recipes::{Client, ConnectionState, InterProcessSemaphoreV2};

/// One ensemble at a time.
static ONE_ENSEMBLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every wait of these tests ends by this deadline (Curator's `timing.forWaiting()`).
const DEADLINE: Duration = Duration::from_secs(40);
/// The clients' session: short, so that a session lost in the outage expires soon after.
const SESSION: Duration = Duration::from_secs(4);

/// Curator's `CuratorFrameworkFactory.builder()...sessionTimeoutMs(timing.session())
/// .retryPolicy(new ExponentialBackoffRetry(100, 3))`, with a short session.
async fn client(connect_string: &str) -> Client {
    Client::builder(connect_string)
        .session_timeout(SESSION)
        .connection_timeout(Duration::from_secs(2))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
        .connect()
        .await
        .expect("connect")
}

async fn start_cluster() -> TestingCluster {
    TestingCluster::start(3)
        .await
        .expect("a three-server ensemble")
}

async fn stop_all(cluster: &TestingCluster) {
    let (a, b, c) = tokio::join!(cluster.stop(0), cluster.stop(1), cluster.stop(2));
    a.and(b).and(c).expect("stop the ensemble");
}

/// Curator: `TestInterProcessSemaphoreCluster.testKilledServerWithEnsembleProvider`.
///
/// Clients loop on a one-lease semaphore; the holder holds until its client is suspended or
/// lost. One holds; the whole ensemble goes; every client is suspended and nobody holds;
/// the ensemble comes back; again exactly one holds. Adapted: 4 clients (Curator: 10); the
/// ensemble is stopped and restarted, not replaced by a new one behind an `EnsembleProvider`
/// (see the module docs); the holder waits on [`Lease::lost`](zk_recipes::Lease::lost),
/// which fires on `SUSPENDED` or `LOST`, where Curator's holder waits for its listener to see
/// either. Curator checks the holder count after sleeps; here the test waits for it, and,
/// added, checks that no two ever held at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_killed_server_with_ensemble_provider() {
    init_tracing();
    let _one = ONE_ENSEMBLE.lock().await;
    const CLIENT_QTY: usize = 4;
    let cluster = start_cluster().await;
    let connect_string = cluster.connect_string();
    let path = format!("{}/foo/bar/lock", unique_path("killed-server-ensemble"));

    let acquired = Arc::new(Semaphore::new(0));
    let holders = Arc::new(AtomicUsize::new(0));
    let most_holders = Arc::new(AtomicUsize::new(0));
    let suspended = Arc::new(Semaphore::new(0));
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..CLIENT_QTY {
        let client = client(&connect_string).await;
        clients.push(client.clone());
        let mut states = client.connection_states();
        let suspended = suspended.clone();
        // Counts each client once, at its first SUSPENDED or LOST.
        tasks.push(tokio::spawn(async move {
            while let Some(state) = states.next().await {
                if matches!(state, ConnectionState::Suspended | ConnectionState::Lost) {
                    suspended.add_permits(1);
                    break;
                }
            }
        }));
        let semaphore = InterProcessSemaphoreV2::new(&client, &path, 1).unwrap();
        let (acquired, holders, most_holders) =
            (acquired.clone(), holders.clone(), most_holders.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                match semaphore.acquire().await {
                    Ok(lease) => {
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        most_holders.fetch_max(now, Ordering::SeqCst);
                        acquired.add_permits(1);
                        lease.lost().await;
                        holders.fetch_sub(1, Ordering::SeqCst);
                        let _ = lease.release().await;
                    }
                    // Just retry, after a pause.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }));
    }

    tokio::time::timeout(DEADLINE, acquired.acquire())
        .await
        .expect("a first holder")
        .unwrap()
        .forget();
    assert_eq!(holders.load(Ordering::SeqCst), 1);

    stop_all(&cluster).await;
    tokio::time::timeout(DEADLINE, suspended.acquire_many(CLIENT_QTY as u32))
        .await
        .expect("every client suspended")
        .unwrap()
        .forget();
    eventually("no holder while the ensemble is down", DEADLINE, || {
        holders.load(Ordering::SeqCst) == 0
    })
    .await;

    // Grants counted so far belong to before the outage.
    let before = acquired.available_permits();
    if before > 0 {
        acquired.acquire_many(before as u32).await.unwrap().forget();
    }
    let (a, b, c) = tokio::join!(cluster.restart(0), cluster.restart(1), cluster.restart(2));
    a.and(b).and(c).expect("restart the ensemble");
    tokio::time::timeout(DEADLINE, acquired.acquire())
        .await
        .expect("a holder once the ensemble is back")
        .unwrap()
        .forget();
    eventually("exactly one holder", DEADLINE, || {
        holders.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        most_holders.load(Ordering::SeqCst),
        1,
        "two clients held the one lease at once"
    );

    for task in &tasks {
        task.abort();
    }
    for client in clients {
        client.close().await;
    }
}

/// Curator's `SemaphoreClient`: a client that loops acquiring a one-lease semaphore and, while
/// it holds the lease and its connection is unchanged, runs an operation over and over.
/// Curator's helper registers itself as the active client when it is granted; its checks
/// are inverted (`if (activeClient.compareAndSet(null, this)) throw "Multiple acquirers"`),
/// so they throw when nothing is wrong; here the checks are the intended ones, and a
/// violation is recorded in `violations`.
struct SemaphoreClient {
    client: Client,
    should_run: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// The client that holds the lease, if any (Curator's `SemaphoreClient.activeClient`).
type ActiveClient = Arc<Mutex<Option<usize>>>;

impl SemaphoreClient {
    async fn start(
        id: usize,
        connect_string: &str,
        path: &str,
        op_count: Arc<AtomicUsize>,
        active: ActiveClient,
        violations: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        let client = client(connect_string).await;
        let should_run = Arc::new(AtomicBool::new(true));
        let task = {
            let client = client.clone();
            let path = path.to_owned();
            let should_run = should_run.clone();
            tokio::spawn(async move {
                while should_run.load(Ordering::SeqCst) {
                    let semaphore = InterProcessSemaphoreV2::new(&client, &path, 1).unwrap();
                    let lease = match semaphore.acquire().await {
                        Ok(lease) => lease,
                        Err(_) => {
                            // Curator sleeps 10 s after a failure.
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    };
                    {
                        let mut active = active.lock().unwrap();
                        if let Some(other) = *active {
                            violations
                                .lock()
                                .unwrap()
                                .push(format!("multiple acquirers: {id} while {other} holds"));
                        }
                        *active = Some(id);
                    }
                    while !lease.is_lost() && should_run.load(Ordering::SeqCst) {
                        // The operation: counts, and takes OPERATION_TIME.
                        op_count.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(OPERATION_TIME).await;
                    }
                    {
                        let mut active = active.lock().unwrap();
                        if *active != Some(id) {
                            violations
                                .lock()
                                .unwrap()
                                .push(format!("bad release: {id} but {:?} active", *active));
                        }
                        *active = None;
                    }
                    let _ = lease.release().await;
                }
            })
        };
        Self {
            client,
            should_run,
            task,
        }
    }

    async fn close(self) {
        self.should_run.store(false, Ordering::SeqCst);
        self.task.abort();
        self.client.close().await;
    }
}

/// Curator's `OPERATION_TIME_MS` (1000), shrunk.
const OPERATION_TIME: Duration = Duration::from_millis(100);

/// Curator: `TestInterProcessSemaphoreCluster.testCluster`.
///
/// Semaphore clients on one lease: one is active. The ensemble is stopped; once another
/// client reports `LOST`, the operation count stops growing. Two of the three members are
/// started again (a quorum); the operation count grows again. Adapted: 5 clients (Curator:
/// 20); operations of 100 ms (Curator: 1 s), and "stopped growing" is seen over two
/// operations as in Curator; the two members are restarted members of the same ensemble
/// (Curator starts a two-member ensemble on two of the old instances' specs). Added: the
/// clients' own exclusivity checks (see [`SemaphoreClient`]) must never have failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cluster() {
    init_tracing();
    let _one = ONE_ENSEMBLE.lock().await;
    const QTY: usize = 5;
    let cluster = start_cluster().await;
    let connect_string = cluster.connect_string();
    let path = format!("{}/foo/bar/lock", unique_path("semaphore-cluster"));
    let op_count = Arc::new(AtomicUsize::new(0));
    let active: ActiveClient = Arc::default();
    let violations = Arc::new(Mutex::new(Vec::new()));
    let mut semaphore_clients = Vec::new();
    for id in 0..QTY {
        semaphore_clients.push(
            SemaphoreClient::start(
                id,
                &connect_string,
                &path,
                op_count.clone(),
                active.clone(),
                violations.clone(),
            )
            .await,
        );
    }
    eventually("an active client", DEADLINE, || {
        active.lock().unwrap().is_some()
    })
    .await;

    let client = client(&connect_string).await;
    let mut states = client.connection_states();
    stop_all(&cluster).await;
    let lost = async {
        while let Some(state) = states.next().await {
            if state == ConnectionState::Lost {
                return;
            }
        }
    };
    tokio::time::timeout(DEADLINE, lost)
        .await
        .expect("LOST while the ensemble is down");
    client.close().await;

    eventually_async("the op count to stop growing", DEADLINE, || async {
        let before = op_count.load(Ordering::SeqCst);
        tokio::time::sleep(2 * OPERATION_TIME).await;
        before == op_count.load(Ordering::SeqCst)
    })
    .await;
    let stopped_at = op_count.load(Ordering::SeqCst);

    // Two of three: a quorum.
    let (a, b) = tokio::join!(cluster.restart(0), cluster.restart(1));
    a.and(b).expect("restart two members");
    eventually("the semaphore to work again", DEADLINE, || {
        op_count.load(Ordering::SeqCst) > stopped_at
    })
    .await;

    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:?}");
    for semaphore_client in semaphore_clients {
        semaphore_client.close().await;
    }
}
