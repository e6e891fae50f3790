//! Recipe benchmarks against a real ZooKeeper, with the raw-operation floors they are judged by.
//!
//! ```text
//! ZK_CONNECT=host:port cargo bench --bench recipes -- [SCENARIO ...]
//! ```
//!
//! Without `ZK_CONNECT` a `TestingServer` is started. Without a scenario, all run. Each prints
//! `KEY VALUE` lines; compare figures only within one run (these machines are noisy). The run
//! ends with the ratios the README reports, each of two figures of this run.
//!
//! The `curator-*` scenarios run Apache Curator 5.x (Debian's `libcurator-recipes-java`, and
//! `libcurator-discovery-java` for service discovery) on the same server, through
//! `benches/java/CuratorBench.java`; they are skipped, with a note, where Java or either
//! Curator package is missing (or `ZK_SKIP_JAVA_INTEROP` is set).

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use zk_recipes::cache::{CacheEvent, CacheEvents, CachedNode, CuratorCache};
use zk_recipes::discovery::{
    RoundRobinStrategy, ServiceCacheEvent, ServiceCacheEvents, ServiceDiscovery, ServiceInstance,
    ServiceProvider,
};
use zk_recipes::retry::RetryNTimes;
use zk_recipes::zookeeper_client::{self, CreateMode, EventType};
use zk_recipes::{
    Client, DistributedAtomicLong, GroupMember, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreV2, LeaderLatch, LeaderSelector, LeaderSelectorListener, Leadership,
    MembershipEvent, MembershipEvents, PersistentNode,
};

#[path = "../tests/common/java.rs"]
mod java;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The system allocator, counting the bytes allocated and not yet freed (and their peak), for
/// the memory scenarios' heap figures: two relaxed atomic operations per allocation.
struct CountingAllocator;

static HEAP_LIVE: AtomicIsize = AtomicIsize::new(0);
static HEAP_PEAK: AtomicIsize = AtomicIsize::new(0);

impl CountingAllocator {
    fn grew(by: usize) {
        let live = HEAP_LIVE.fetch_add(by as isize, Ordering::Relaxed) + by as isize;
        HEAP_PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; only counts are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        HEAP_LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            HEAP_LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            Self::grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The heap in use now, in MB, by the [`CountingAllocator`]'s count.
fn heap_mb() -> f64 {
    HEAP_LIVE.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

/// Starts a new peak of the heap in use, from what is in use now.
fn reset_peak_heap() {
    HEAP_PEAK.store(HEAP_LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// The peak of the heap in use since [`reset_peak_heap`], in MB.
fn peak_heap_mb() -> f64 {
    HEAP_PEAK.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

const SCENARIOS: &[&str] = &[
    "floor",
    "handoff-floor",
    "uncontended",
    "contended",
    "curator-contended",
    "zkclient-contended",
    "contended-drop",
    "handoff-trace",
    "selector-handoff",
    "curator-selector-handoff",
    "latch-handoff",
    "latch-herd",
    "waiters",
    "read-contended",
    "curator-read-contended",
    "read-contended-drop",
    "writer-behind-readers",
    "curator-writer-behind-readers",
    "semaphore-contended",
    "curator-semaphore-contended",
    "semaphore-waiters",
    "cache-load",
    "curator-cache-load",
    "cache-latency",
    "curator-cache-latency",
    "cache-memory",
    "cache-resync",
    "node-recreate",
    "curator-node-recreate",
    "group-join",
    "curator-group-join",
    "discovery-visible",
    "curator-discovery-visible",
    "provider-pick",
    "curator-provider-pick",
    "counter-contended",
    "curator-counter-contended",
    "scaling-contended",
    "curator-scaling-contended",
    "scaling-selector",
    "curator-scaling-selector",
    "scaling-waiters",
    "rounds",
];

fn main() -> Result<(), BoxError> {
    let requested: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for r in &requested {
        if !SCENARIOS.contains(&r.as_str()) {
            return Err(format!("unknown scenario {r:?}; known: {}", SCENARIOS.join(" ")).into());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (connect, _server) = zookeeper().await?;
        let root = format!("/zkr-bench-{}", std::process::id());
        for scenario in SCENARIOS {
            if !requested.is_empty() && !requested.iter().any(|r| r == scenario) {
                continue;
            }
            let path = format!("{root}/{scenario}");
            match *scenario {
                "floor" => floor(&connect, &path).await?,
                "handoff-floor" => handoff_floor(&connect, &path).await?,
                "uncontended" => uncontended(&connect, &path).await?,
                "contended" => contended(&connect, &path).await?,
                "curator-contended" => {
                    let secs = contended_secs().to_string();
                    curator(&connect, &path, &["contended", "8", &secs]).await?
                }
                "zkclient-contended" => zkclient_contended(&connect, &path).await?,
                "contended-drop" => contended_drop(&connect, &path).await?,
                "handoff-trace" => handoff_trace(&connect, &path).await?,
                "selector-handoff" => selector_handoff(&connect, &path).await?,
                "curator-selector-handoff" => {
                    let handoffs = SELECTOR_HANDOFFS.to_string();
                    curator(&connect, &path, &["selector-handoff", &handoffs]).await?
                }
                "latch-handoff" => latch_handoff(&connect, &path).await?,
                "latch-herd" => latch_herd(&connect, &path).await?,
                "waiters" => waiters(&connect, &path).await?,
                "read-contended" => read_contended(&connect, &path).await?,
                "curator-read-contended" => {
                    let secs = contended_secs().to_string();
                    let sessions = READ_SESSIONS.to_string();
                    curator(&connect, &path, &["read-contended", &sessions, &secs]).await?
                }
                "read-contended-drop" => read_contended_drop(&connect, &path).await?,
                "writer-behind-readers" => writer_behind_readers(&connect, &path).await?,
                "curator-writer-behind-readers" => {
                    let (sessions, rounds) = (READ_SESSIONS.to_string(), WRITER_ROUNDS.to_string());
                    let args = ["writer-behind-readers", &sessions, &rounds];
                    curator(&connect, &path, &args).await?
                }
                "semaphore-contended" => semaphore_contended(&connect, &path).await?,
                "curator-semaphore-contended" => {
                    let secs = contended_secs().to_string();
                    let (sessions, leases) =
                        (READ_SESSIONS.to_string(), SEMAPHORE_LEASES.to_string());
                    let args = ["semaphore-contended", &sessions, &leases, &secs];
                    curator(&connect, &path, &args).await?
                }
                "semaphore-waiters" => semaphore_waiters(&connect, &path).await?,
                "cache-load" => cache_load(&connect, &path).await?,
                "curator-cache-load" => curator_cache_load(&connect, &path).await?,
                "cache-latency" => cache_latency(&connect, &path).await?,
                "curator-cache-latency" => curator_cache_latency(&connect, &path).await?,
                "cache-memory" => cache_memory(&connect, &path).await?,
                "cache-resync" => cache_resync(&connect, &path).await?,
                "node-recreate" => node_recreate(&connect, &path).await?,
                "curator-node-recreate" => curator_node_recreate(&connect, &path).await?,
                "group-join" => group_join(&connect, &path).await?,
                "curator-group-join" => curator_group_join(&connect, &path).await?,
                "discovery-visible" => discovery_visible(&connect, &path).await?,
                "curator-discovery-visible" => curator_discovery_visible(&connect, &path).await?,
                "provider-pick" => provider_pick(&connect, &path).await?,
                "curator-provider-pick" => curator_provider_pick(&connect, &path).await?,
                "counter-contended" => counter_contended(&connect, &path).await?,
                "curator-counter-contended" => {
                    let (sessions, warmup, secs) = (
                        COUNTER_SESSIONS.to_string(),
                        COUNTER_WARMUP_SECS.to_string(),
                        contended_secs().to_string(),
                    );
                    let args = ["counter-contended", &sessions, &warmup, &secs];
                    curator(&connect, &path, &args).await?
                }
                "scaling-contended" => scaling_contended(&connect, &path).await?,
                "curator-scaling-contended" => {
                    let (sessions, secs) = (scaling_sessions_arg(), scaling_secs().to_string());
                    curator(&connect, &path, &["scaling-contended", &sessions, &secs]).await?
                }
                "scaling-selector" => scaling_selector(&connect, &path).await?,
                "curator-scaling-selector" => {
                    for candidates in scaling_list("BENCH_SCALING_CANDIDATES", "2,16,128") {
                        let path = format!("{path}-{candidates}");
                        let key = format!("curator_scaling_selector_{candidates}");
                        let (handoffs, candidates) =
                            (SCALING_HANDOFFS.to_string(), candidates.to_string());
                        let args = ["selector-handoff", &handoffs, &candidates, &key];
                        curator(&connect, &path, &args).await?
                    }
                }
                "scaling-waiters" => scaling_waiters(&connect, &path).await?,
                "rounds" => rounds(&connect, &path).await?,
                _ => unreachable!("checked above"),
            }
        }
        report_ratios();
        Ok::<_, BoxError>(())
    })
}

/// `ZK_CONNECT`, or a server started for this run (kept alive by the returned handle).
async fn zookeeper() -> Result<(String, Option<zk_recipes::testing::TestingServer>), BoxError> {
    if let Ok(connect) = std::env::var("ZK_CONNECT") {
        return Ok((connect, None));
    }
    let server = zk_recipes::testing::TestingServer::start().await?;
    eprintln!("# started a ZooKeeper at {}", server.connect_string());
    Ok((server.connect_string(), Some(server)))
}

async fn client(connect: &str) -> Result<Client, BoxError> {
    Ok(Client::builder(connect)
        .session_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

/// Every figure reported so far, for the ratios at the end.
static FIGURES: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn report(key: &str, value: impl std::fmt::Display) {
    let value = value.to_string();
    println!("{key} {value}");
    if let Ok(number) = value.parse::<f64>() {
        FIGURES.lock().unwrap().push((key.to_owned(), number));
    }
}

fn figure(key: &str) -> Option<f64> {
    FIGURES
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
}

/// A ratio the run ends with: its name, our figure, the figure it is judged against, and
/// whether that one is a time per handoff (judged as 1 / time, a rate).
type Ratio = (&'static str, &'static str, &'static str, bool);

/// The contended scenarios' ratios, which [`rounds`] also reports over its rounds. Above 1 is
/// faster than the peer (Curator, zookeeper-client's own lock) or than one handoff floor per
/// acquisition.
const CONTENDED_RATIOS: [Ratio; 7] = [
    (
        "ratio_contended_to_curator",
        "contended_acquisitions_per_s",
        "curator_contended_acquisitions_per_s",
        false,
    ),
    (
        "ratio_contended_to_zkclient",
        "contended_acquisitions_per_s",
        "zkclient_contended_acquisitions_per_s",
        false,
    ),
    (
        "ratio_contended_to_handoff_floor",
        "contended_acquisitions_per_s",
        "handoff_floor_us",
        true,
    ),
    (
        "ratio_contended_drop_to_zkclient",
        "contended_drop_acquisitions_per_s",
        "zkclient_contended_acquisitions_per_s",
        false,
    ),
    (
        "ratio_read_contended_to_curator",
        "read_acquisitions_per_s",
        "curator_read_acquisitions_per_s",
        false,
    ),
    (
        "ratio_read_drop_to_curator",
        "read_drop_acquisitions_per_s",
        "curator_read_acquisitions_per_s",
        false,
    ),
    (
        "ratio_semaphore_contended_to_curator",
        "semaphore_acquisitions_per_s",
        "curator_semaphore_acquisitions_per_s",
        false,
    ),
];

/// `ours` against `theirs`, where `theirs` is a time per handoff when `per_handoff`.
fn ratio_of(ours: f64, theirs: f64, per_handoff: bool) -> f64 {
    ours / if per_handoff { 1e6 / theirs } else { theirs }
}

/// The ratios the README reports, each of two figures of this run (where both were measured).
fn report_ratios() {
    let ratios: [Ratio; _] = [
        // Below 1 is faster than the floor.
        (
            "ratio_uncontended_to_floor",
            "uncontended_us_per_op",
            "floor_us_per_op",
            false,
        ),
        // Below 1 is faster.
        (
            "ratio_selector_handoff_to_floor",
            "selector_handoff_median_us",
            "delete_children_floor_us",
            false,
        ),
        (
            "ratio_selector_handoff_to_curator",
            "selector_handoff_median_us",
            "curator_selector_handoff_median_us",
            false,
        ),
        // Below 1 is faster than Curator.
        (
            "ratio_writer_wait_to_curator",
            "writer_wait_behind_readers_median_us",
            "curator_writer_wait_behind_readers_median_us",
            false,
        ),
        // Below 1 is faster than Curator (the goal: 0.5 or less).
        (
            "ratio_cache_load_to_curator",
            "cache_load_ms",
            "curator_cache_load_ms",
            false,
        ),
        // Above 1 is slower than the pipelined reads of every node.
        (
            "ratio_cache_load_to_floor",
            "cache_load_ms",
            "cache_load_floor_ms",
            false,
        ),
        // Below 1 is faster than Curator.
        (
            "ratio_cache_latency_to_curator",
            "cache_latency_median_us",
            "curator_cache_latency_median_us",
            false,
        ),
        (
            "ratio_cache_latency_p99_to_curator",
            "cache_latency_p99_us",
            "curator_cache_latency_p99_us",
            false,
        ),
        // Below 1 is faster than Curator.
        (
            "ratio_node_recreate_to_curator",
            "node_recreate_median_us",
            "curator_node_recreate_median_us",
            false,
        ),
        (
            "ratio_node_recreate_p99_to_curator",
            "node_recreate_p99_us",
            "curator_node_recreate_p99_us",
            false,
        ),
        // Below 1 is faster than Curator (whose figure includes up to one poll interval).
        (
            "ratio_group_join_to_curator",
            "group_join_median_us",
            "curator_group_join_median_us",
            false,
        ),
        (
            "ratio_group_join_p99_to_curator",
            "group_join_p99_us",
            "curator_group_join_p99_us",
            false,
        ),
        // Below 1 is faster than Curator.
        (
            "ratio_discovery_visible_to_curator",
            "discovery_visible_median_us",
            "curator_discovery_visible_median_us",
            false,
        ),
        (
            "ratio_discovery_visible_p99_to_curator",
            "discovery_visible_p99_us",
            "curator_discovery_visible_p99_us",
            false,
        ),
        // Above 1 is faster than Curator.
        (
            "ratio_provider_pick_to_curator",
            "provider_picks_per_s",
            "curator_provider_picks_per_s",
            false,
        ),
        // Above 1 is faster than Curator (the goal: 1.5 or more).
        (
            "ratio_counter_contended_to_curator",
            "counter_increments_per_s",
            "curator_counter_increments_per_s",
            false,
        ),
    ];
    for (name, numerator, denominator, per_handoff) in CONTENDED_RATIOS.into_iter().chain(ratios) {
        if let (Some(n), Some(d)) = (figure(numerator), figure(denominator)) {
            report(name, format!("{:.2}", ratio_of(n, d, per_handoff)));
        }
    }
}

/// The jars `CuratorBench.java` needs beyond Java's own: it is compiled as one file, so
/// without any of them none of the `curator-*` scenarios can run. (The class path,
/// [`java::curator_classpath`], holds these and what they depend on: jackson-databind, -core
/// and -annotations for the discovery's JSON.)
const CURATOR_BENCH_JARS: &[&str] = &["curator-recipes.jar", "curator-x-discovery.jar"];

/// Whether the `curator-*` scenarios can run: Curator (recipes and discovery) is installed and
/// not skipped.
fn curator_installed() -> bool {
    !java::skip_requested()
        && CURATOR_BENCH_JARS
            .iter()
            .all(|jar| std::path::Path::new(java::JAVA_DIR).join(jar).exists())
}

/// Runs `benches/java/CuratorBench.java` with `args` against the same server, and reports
/// its figures.
async fn curator(connect: &str, path: &str, args: &[&str]) -> Result<(), BoxError> {
    if !curator_installed() {
        eprintln!(
            "# skipped: Curator is not installed \
             (apt-get install libcurator-recipes-java libcurator-discovery-java)"
        );
        return Ok(());
    }
    let classes = java::compile("benches/java/CuratorBench.java").await;
    let classpath = format!("{}:{}", classes.display(), java::curator_classpath());
    // The JVM's defaults (a full JIT), unlike the tests' quick-start flags.
    let mut java = tokio::process::Command::new("java");
    if let Some(pid) = server_pid() {
        // So that it reports the server's CPU time per acquisition as ours do.
        java.arg(format!("-Dzk.server.pid={pid}"));
    }
    let output = java
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-cp")
        .arg(classpath)
        .arg("CuratorBench")
        .arg(connect)
        .arg(args[0])
        .arg(path)
        .args(&args[1..])
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!(
            "CuratorBench {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((key, value)) = line.split_once(' ') {
            report(key, value);
        }
    }
    Ok(())
}

const OPS: u32 = 2000;
const WARMUP: u32 = 200;

/// The bare minimum of a lock on one client: an ephemeral-sequential create, a getChildren and
/// a delete, each awaited in turn.
async fn floor(connect: &str, path: &str) -> Result<(), BoxError> {
    let client = client(connect).await?;
    client.ensure_path(path, false).await?;
    let zk = client.zookeeper()?;
    let prefix = format!("{path}/lock-");
    let options = CreateMode::EphemeralSequential.with_acls(zookeeper_client::Acls::anyone_all());
    let run = |n: u32| {
        let zk = zk.clone();
        let prefix = prefix.clone();
        let options = options.clone();
        async move {
            let started = Instant::now();
            for _ in 0..n {
                let (_, seq) = zk.create(&prefix, &[], &options).await?;
                zk.list_children(path).await?;
                zk.delete(&format!("{prefix}{seq}"), None).await?;
            }
            Ok::<_, BoxError>(started.elapsed())
        }
    };
    run(WARMUP).await?;
    let elapsed = run(OPS).await?;
    report("floor_us_per_op", per_op_us(elapsed, OPS));
    client.delete(path, None).await?;
    client.close().await;
    Ok(())
}

/// The floors of a handoff between two sessions: one delete seen as one watch event followed by
/// one read (what a contended lock must at least pay), and one delete followed by one
/// getChildren (what a selector handoff must at least pay).
async fn handoff_floor(connect: &str, path: &str) -> Result<(), BoxError> {
    let (a, b) = (client(connect).await?, client(connect).await?);
    a.ensure_path(path, false).await?;
    let (za, zb) = (a.zookeeper()?, b.zookeeper()?);
    let node = format!("{path}/node");
    let options = CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all());
    let mut samples = Vec::new();
    for i in 0..(OPS / 4 + WARMUP / 4) {
        za.create(&node, &[], &options).await?;
        let (_, _, watcher) = zb.get_and_watch_data(&node).await?;
        let started = Instant::now();
        za.delete(&node, None).await?;
        let event = watcher.changed().await;
        assert_eq!(event.event_type, EventType::NodeDeleted);
        zb.list_children(path).await?;
        if i >= WARMUP / 4 {
            samples.push(started.elapsed());
        }
    }
    report("handoff_floor_us", median_us(&mut samples));
    let mut samples = Vec::new();
    for _ in 0..OPS / 4 {
        za.create(&node, &[], &options).await?;
        let started = Instant::now();
        za.delete(&node, None).await?;
        zb.list_children(path).await?;
        samples.push(started.elapsed());
    }
    report("delete_children_floor_us", median_us(&mut samples));
    a.delete(path, None).await?;
    a.close().await;
    b.close().await;
    Ok(())
}

/// `acquire` + `release` on one client, with nobody else.
async fn uncontended(connect: &str, path: &str) -> Result<(), BoxError> {
    let client = client(connect).await?;
    let mutex = InterProcessMutex::new(&client, path)?;
    let run = |n: u32| {
        let mutex = mutex.clone();
        async move {
            let started = Instant::now();
            for _ in 0..n {
                let guard = mutex.acquire().await?;
                guard.release().await?;
            }
            Ok::<_, BoxError>(started.elapsed())
        }
    };
    run(WARMUP).await?;
    let elapsed = run(OPS).await?;
    report("uncontended_us_per_op", per_op_us(elapsed, OPS));
    client.close().await;
    Ok(())
}

/// 8 sessions loop acquire/release for 10 s; an in-process count of holders finds overlaps.
async fn contended(connect: &str, path: &str) -> Result<(), BoxError> {
    let run = contend(connect, 8, contended_secs(), |client| {
        InterProcessMutex::new(client, path)
    })
    .await?;
    report(
        "contended_acquisitions_per_s",
        format!("{:.1}", run.acquisitions_per_s),
    );
    report("contended_violations", run.overlaps_over(1));
    run.traffic.report("contended", run.acquisitions);
    report(
        "contended_core_share_per_1000_per_s",
        run.core_share_per_1000(),
    );
    Ok(())
}

/// 8 sessions loop zookeeper-client's own lock (`Client::lock` with a Curator-style prefix,
/// released by dropping the guard) for the contended time, as `contended` does.
async fn zkclient_contended(connect: &str, path: &str) -> Result<(), BoxError> {
    const SESSIONS: usize = 8;
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(client(connect).await?);
    }
    clients[0].ensure_path(path, false).await?;
    let zks = clients
        .iter()
        .map(|client| client.zookeeper())
        .collect::<Result<Vec<_>, _>>()?;
    let violations = Arc::new(AtomicU64::new(0));
    let acquisitions = Arc::new(AtomicU64::new(0));
    // Untimed, as every contended run's warm-up; its overlaps count all the same.
    let warm_up_acquisitions = Arc::new(AtomicU64::new(0));
    loop_zkclient_locks(
        &zks,
        path,
        CONTENDED_WARM_UP,
        &violations,
        &warm_up_acquisitions,
    )
    .await?;
    let before = Traffic::read(connect).await?;
    let started = Instant::now();
    let secs = Duration::from_secs(contended_secs());
    loop_zkclient_locks(&zks, path, secs, &violations, &acquisitions).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let traffic = Traffic::read(connect).await?.since(&before);
    let acquisitions = acquisitions.load(Ordering::SeqCst);
    report(
        "zkclient_contended_acquisitions_per_s",
        format!("{:.1}", acquisitions as f64 / elapsed),
    );
    report(
        "zkclient_contended_violations",
        violations.load(Ordering::SeqCst),
    );
    traffic.report("zkclient_contended", acquisitions);
    for client in clients {
        client.close().await;
    }
    Ok(())
}

/// Every session of `zks` takes zookeeper-client's lock on `path` and drops it, in a loop,
/// for `secs`, counting acquisitions and overlaps.
async fn loop_zkclient_locks(
    zks: &[zookeeper_client::Client],
    path: &str,
    secs: Duration,
    violations: &Arc<AtomicU64>,
    acquisitions: &Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let inside = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + secs;
    let mut tasks = Vec::new();
    for zk in zks {
        let (inside, violations, acquisitions) =
            (inside.clone(), violations.clone(), acquisitions.clone());
        let (zk, path) = (zk.clone(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let prefix = zookeeper_client::LockPrefix::new_curator(&path, "lock-")?;
                let guard = zk
                    .lock(prefix, b"", zookeeper_client::Acls::anyone_all())
                    .await?;
                if inside.swap(true, Ordering::SeqCst) {
                    violations.fetch_add(1, Ordering::SeqCst);
                }
                acquisitions.fetch_add(1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                // Deleted in the background; the next request of this session follows it.
                drop(guard);
            }
            // One request after the last background delete, so that it is counted.
            zk.sync(&path).await?;
            Ok::<_, zookeeper_client::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// How every scenario's key for the server's CPU time per acquisition ends, after the
/// scenario's name (the one its `{name}_acquisitions_per_s` starts with).
const SERVER_CPU_SUFFIX: &str = "_server_cpu_ms_per_acquisition";

/// The server's counters, from `mntr`, and its process's CPU time, from `/proc` (each
/// cumulative since it started).
struct Traffic {
    /// `zk_packets_received`: the requests of every session (pings included).
    received: u64,
    /// `zk_packets_sent`: replies and watch notifications.
    sent: u64,
    /// `zk_cnt_fsynctime`: the transaction log's flushes, each ended by an fsync.
    fsyncs: u64,
    /// `zk_sum_fsynctime`: the time those fsyncs took, each counted in whole milliseconds
    /// rounded down (so an fsync under 1 ms counts 0).
    fsync_whole_ms: u64,
    /// `zk_sum_sync_processor_batch_size`: the requests each flush let through, summed. On a
    /// standalone server every request passes the log's thread, so reads queued behind a
    /// write count too.
    flushed: u64,
    /// The server's process and the CPU time it has used (user and system, every thread, the
    /// JIT's and the garbage collector's included), in seconds, where [`server_pid`] finds it.
    server_cpu_s: Option<(String, f64)>,
}

impl Traffic {
    /// The counters now, from the first server of `connect`, and that server's CPU time where
    /// [`server_pid`] finds it.
    async fn read(connect: &str) -> Result<Traffic, BoxError> {
        let address = connect.split(',').next().unwrap_or(connect);
        let address = address.split('/').next().unwrap_or(address);
        let text =
            zk_recipes::testing::four_letter_word(address, "mntr", Duration::from_secs(5)).await?;
        let counter = |name: &str| -> Result<u64, BoxError> {
            text.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(char::is_whitespace)?;
                    (key == name).then(|| value.trim().parse().ok()).flatten()
                })
                .ok_or_else(|| format!("no {name} in the mntr answer: {text:?}").into())
        };
        Ok(Traffic {
            received: counter("zk_packets_received")?,
            sent: counter("zk_packets_sent")?,
            fsyncs: counter("zk_cnt_fsynctime")?,
            fsync_whole_ms: counter("zk_sum_fsynctime")?,
            flushed: counter("zk_sum_sync_processor_batch_size")?,
            server_cpu_s: server_pid().and_then(|pid| Some((pid.clone(), cpu_s_of(&pid)?))),
        })
    }

    /// What was counted since `before`.
    fn since(&self, before: &Traffic) -> Traffic {
        Traffic {
            received: self.received.saturating_sub(before.received),
            sent: self.sent.saturating_sub(before.sent),
            fsyncs: self.fsyncs.saturating_sub(before.fsyncs),
            fsync_whole_ms: self.fsync_whole_ms.saturating_sub(before.fsync_whole_ms),
            flushed: self.flushed.saturating_sub(before.flushed),
            // Nothing where the server changed in between (a restart, another one found).
            server_cpu_s: match (&self.server_cpu_s, &before.server_cpu_s) {
                (Some((pid, now)), Some((then_pid, then))) if pid == then_pid && now >= then => {
                    Some((pid.clone(), now - then))
                }
                _ => None,
            },
        }
    }

    /// Reports `{prefix}_requests_per_acquisition` and `{prefix}_packets_sent_per_acquisition`,
    /// and the transaction log's share: `{prefix}_fsyncs_per_acquisition`,
    /// `{prefix}_requests_per_flush` (the group commit's mean batch, reads behind writes
    /// included) and `{prefix}_fsync_whole_ms_mean` (a lower bound of the mean fsync time:
    /// below 1 ms, about the share of fsyncs that took a millisecond or more); and, where
    /// [`server_pid`] finds the server, `{prefix}_server_cpu_ms_per_acquisition`: the CPU time
    /// its process spent per acquisition, every thread included, to tell what a turn costs
    /// the server apart from how long it waits.
    fn report(&self, prefix: &str, acquisitions: u64) {
        let per = |n: u64, of: u64| format!("{:.2}", n as f64 / of.max(1) as f64);
        report(
            &format!("{prefix}_requests_per_acquisition"),
            per(self.received, acquisitions),
        );
        report(
            &format!("{prefix}_packets_sent_per_acquisition"),
            per(self.sent, acquisitions),
        );
        report(
            &format!("{prefix}_fsyncs_per_acquisition"),
            per(self.fsyncs, acquisitions),
        );
        report(
            &format!("{prefix}_requests_per_flush"),
            per(self.flushed, self.fsyncs),
        );
        report(
            &format!("{prefix}_fsync_whole_ms_mean"),
            per(self.fsync_whole_ms, self.fsyncs),
        );
        if let Some((_, cpu_s)) = self.server_cpu_s {
            report(
                &format!("{prefix}{SERVER_CPU_SUFFIX}"),
                format!("{:.3}", cpu_s * 1000.0 / acquisitions.max(1) as f64),
            );
        }
    }
}

/// A lock the contended scenarios loop on, one per session.
trait Contender: Send + Sync + 'static {
    type Guard: Send;
    fn take(&self) -> impl Future<Output = zk_recipes::Result<Self::Guard>> + Send;
    fn give_back(guard: Self::Guard) -> impl Future<Output = zk_recipes::Result<()>> + Send;
}

impl Contender for InterProcessMutex {
    type Guard = zk_recipes::LockGuard;
    fn take(&self) -> impl Future<Output = zk_recipes::Result<Self::Guard>> + Send {
        self.acquire()
    }
    fn give_back(guard: Self::Guard) -> impl Future<Output = zk_recipes::Result<()>> + Send {
        guard.release()
    }
}

impl Contender for InterProcessSemaphoreV2 {
    type Guard = zk_recipes::Lease;
    fn take(&self) -> impl Future<Output = zk_recipes::Result<Self::Guard>> + Send {
        self.acquire()
    }
    fn give_back(guard: Self::Guard) -> impl Future<Output = zk_recipes::Result<()>> + Send {
        guard.release()
    }
}

/// A mutex whose guards are given back by dropping them, so that the delete goes out in the
/// background and the next acquire does not wait for its answer, as zookeeper-client's lock
/// guard is given back in `zkclient-contended`.
struct DroppingMutex(InterProcessMutex);

impl Contender for DroppingMutex {
    type Guard = zk_recipes::LockGuard;
    fn take(&self) -> impl Future<Output = zk_recipes::Result<Self::Guard>> + Send {
        self.0.acquire()
    }
    fn give_back(guard: Self::Guard) -> impl Future<Output = zk_recipes::Result<()>> + Send {
        drop(guard);
        std::future::ready(Ok(()))
    }
}

/// `contended`, with each guard dropped instead of released (see [`DroppingMutex`]): what
/// the release's wait for the delete's answer costs under contention.
async fn contended_drop(connect: &str, path: &str) -> Result<(), BoxError> {
    let run = contend(connect, 8, contended_secs(), |client| {
        Ok(DroppingMutex(InterProcessMutex::new(client, path)?))
    })
    .await?;
    report(
        "contended_drop_acquisitions_per_s",
        format!("{:.1}", run.acquisitions_per_s),
    );
    report("contended_drop_violations", run.overlaps_over(1));
    run.traffic.report("contended_drop", run.acquisitions);
    Ok(())
}

/// One acquisition of [`TracedMutex`]: when it was granted, when its release sent the delete,
/// and when the delete's answer came back.
struct Turn {
    granted: Instant,
    release_sent: Option<Instant>,
    answered: Option<Instant>,
}

/// Every [`Turn`] of a `handoff-trace` run, in the order of the grants.
type Turns = Arc<std::sync::Mutex<Vec<Turn>>>;

/// A mutex whose acquisitions are recorded in the order they were granted (the mutex orders
/// them: each is recorded inside the lock), for `handoff-trace`.
struct TracedMutex {
    mutex: InterProcessMutex,
    turns: Turns,
}

/// A [`TracedMutex`] guard, and where its turn is recorded.
struct TracedGuard {
    guard: zk_recipes::LockGuard,
    turns: Turns,
    at: usize,
}

impl Contender for TracedMutex {
    type Guard = TracedGuard;
    async fn take(&self) -> zk_recipes::Result<Self::Guard> {
        let guard = self.mutex.acquire().await?;
        let granted = Instant::now();
        let mut turns = self.turns.lock().unwrap();
        turns.push(Turn {
            granted,
            release_sent: None,
            answered: None,
        });
        let at = turns.len() - 1;
        drop(turns);
        Ok(TracedGuard {
            guard,
            turns: self.turns.clone(),
            at,
        })
    }
    async fn give_back(traced: Self::Guard) -> zk_recipes::Result<()> {
        let TracedGuard { guard, turns, at } = traced;
        turns.lock().unwrap()[at].release_sent = Some(Instant::now());
        guard.release().await?;
        turns.lock().unwrap()[at].answered = Some(Instant::now());
        Ok(())
    }
}

/// `contended`, with every handoff split in two at the moment the holder's delete is answered
/// (in this one process, on one clock): from `release()` to that answer (the delete's round
/// trip under the load of the other sessions, the releasing task's wake-up included), and
/// from the answer to the next holder's grant (signed: the watch event that grants leaves the
/// server before the answer does). The turns of the warm-up are left out.
async fn handoff_trace(connect: &str, path: &str) -> Result<(), BoxError> {
    let turns = Turns::default();
    let run = contend(connect, 8, contended_secs(), |client| {
        Ok(TracedMutex {
            mutex: InterProcessMutex::new(client, path)?,
            turns: turns.clone(),
        })
    })
    .await?;
    let turns = std::mem::take(&mut *turns.lock().unwrap());
    // Every counted acquisition recorded one turn, after those of the warm-up.
    let Some(timed) = turns.len().checked_sub(run.acquisitions as usize) else {
        return Err("handoff-trace: fewer turns recorded than acquisitions counted".into());
    };
    let signed_us = |later: Instant, earlier: Instant| match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64() * 1e6,
        None => -(earlier - later).as_secs_f64() * 1e6,
    };
    let (mut total, mut to_answer, mut after_answer) = (Vec::new(), Vec::new(), Vec::new());
    for pair in turns[timed..].windows(2) {
        let (Some(sent), Some(answered)) = (pair[0].release_sent, pair[0].answered) else {
            continue;
        };
        total.push(pair[1].granted.saturating_duration_since(sent));
        to_answer.push(answered - sent);
        after_answer.push(signed_us(pair[1].granted, answered));
    }
    if total.is_empty() {
        return Err("handoff-trace: no handoff was recorded".into());
    }
    report(
        "handoff_trace_acquisitions_per_s",
        format!("{:.1}", run.acquisitions_per_s),
    );
    report("handoff_trace_violations", run.overlaps_over(1));
    report("handoff_trace_median_us", median_us(&mut total));
    report("handoff_trace_p99_us", percentile_us(&mut total, 0.99));
    report(
        "handoff_trace_delete_answered_median_us",
        median_us(&mut to_answer),
    );
    report(
        "handoff_trace_grant_after_answer_median_us",
        format!("{:.1}", median(&mut after_answer)),
    );
    Ok(())
}

/// What one contended run measured.
struct Contention {
    acquisitions_per_s: f64,
    acquisitions: u64,
    /// The share of one core this process used during the timed loop.
    core_share: f64,
    /// The server's packets during the timed loop (from `mntr`, all sessions of the server).
    traffic: Traffic,
    /// The most holders inside at once, counted in this process (the warm-up included).
    most_inside: u64,
    /// How many holders came in while others were inside, by how many were inside then (the
    /// warm-up included).
    entries_beside: Vec<u64>,
}

impl Contention {
    /// The entries made while `limit` or more holders were inside: overruns of a limit.
    fn overlaps_over(&self, limit: usize) -> u64 {
        self.entries_beside.iter().skip(limit).sum()
    }

    /// The share of one core this process used per 1,000 acquisitions a second.
    fn core_share_per_1000(&self) -> String {
        format!(
            "{:.3}",
            self.core_share / (self.acquisitions_per_s / 1000.0).max(f64::MIN_POSITIVE)
        )
    }
}

/// The CPU time this process has used so far (user and system), in seconds, from
/// `/proc/self/stat` (0 where there is none).
fn process_cpu_s() -> f64 {
    cpu_s_of("self").unwrap_or(0.0)
}

/// The CPU time the process `pid` (a number, or `self`) has used so far (user and system,
/// its threads included), in seconds, from `/proc/{pid}/stat`.
fn cpu_s_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, here at 11 and 12 (the state, field 3,
    // is at 0).
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((user + system) / 100.0)
}

/// The process id of the server the benchmark measures, for its CPU time: `ZK_SERVER_PID`
/// where it is set; else, where the benchmark started the server itself (no `ZK_CONNECT`),
/// the one ZooKeeper JVM on this machine (a local process or a container's, both seen in
/// `/proc`), whose command names a server's main class. `None` otherwise: with `ZK_CONNECT`
/// and no `ZK_SERVER_PID`, or with no such JVM here (a remote Docker engine) or more than one,
/// so that no figure is reported that could be another server's.
fn server_pid() -> Option<String> {
    if let Ok(pid) = std::env::var("ZK_SERVER_PID") {
        return Some(pid);
    }
    if std::env::var_os("ZK_CONNECT").is_some() {
        return None;
    }
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // The JVM itself, not a shell that started it with the same words.
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "java" {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let is_server = [
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            "org.apache.zookeeper.server.ZooKeeperServerMain",
        ]
        .iter()
        .any(|main| cmdline.contains(main));
        if is_server && found.replace(pid).is_some() {
            return None;
        }
    }
    found
}

/// How long every session loops, untimed and uncounted, before a contended run's clock
/// starts: Curator's runs have the same two seconds (for its JIT), so both sides are measured
/// in a steady state, the lock's parents made and every session queued once.
const CONTENDED_WARM_UP: Duration = Duration::from_secs(2);

/// What the holders of one contended loop counted.
struct Tally {
    inside: AtomicU64,
    /// How many holders came in while others were inside, by how many were inside then.
    entries_beside: Vec<AtomicU64>,
    acquisitions: AtomicU64,
}

impl Tally {
    fn new(sessions: usize) -> Arc<Self> {
        Arc::new(Self {
            inside: AtomicU64::new(0),
            entries_beside: (0..=sessions).map(|_| AtomicU64::new(0)).collect(),
            acquisitions: AtomicU64::new(0),
        })
    }
}

/// Every lock of `locks`, on a task of its own, acquired and given back in a loop for `secs`,
/// counted in `tally`.
async fn loop_contenders<C: Contender>(
    locks: &[Arc<C>],
    secs: Duration,
    tally: &Arc<Tally>,
) -> Result<(), BoxError> {
    let sessions = locks.len();
    let deadline = Instant::now() + secs;
    let mut tasks = Vec::new();
    for lock in locks {
        let (lock, tally) = (lock.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let guard = lock.take().await?;
                let already = tally.inside.fetch_add(1, Ordering::SeqCst) as usize;
                tally.entries_beside[already.min(sessions)].fetch_add(1, Ordering::SeqCst);
                tally.acquisitions.fetch_add(1, Ordering::SeqCst);
                tally.inside.fetch_sub(1, Ordering::SeqCst);
                C::give_back(guard).await?;
            }
            Ok::<_, zk_recipes::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// `sessions` sessions, each with the lock `make` builds on its client, loop acquire/release
/// for the contended time; an in-process count of holders inside shows how many overlapped.
/// The sessions connect, and loop for [`CONTENDED_WARM_UP`], before the clock (and the
/// server's `mntr` counters) are read.
async fn contend<C: Contender>(
    connect: &str,
    sessions: usize,
    secs: u64,
    make: impl Fn(&Client) -> zk_recipes::Result<C>,
) -> Result<Contention, BoxError> {
    let mut clients = Vec::new();
    let mut locks = Vec::new();
    for _ in 0..sessions {
        let client = client(connect).await?;
        locks.push(Arc::new(make(&client)?));
        clients.push(client);
    }
    let warm_up = Tally::new(sessions);
    loop_contenders(&locks, CONTENDED_WARM_UP, &warm_up).await?;
    let tally = Tally::new(sessions);
    let before = Traffic::read(connect).await?;
    let started = Instant::now();
    let cpu_before = process_cpu_s();
    loop_contenders(&locks, Duration::from_secs(secs), &tally).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s() - cpu_before;
    let traffic = Traffic::read(connect).await?.since(&before);
    for client in clients {
        client.close().await;
    }
    // Overlaps in the warm-up count all the same.
    let entries_beside: Vec<u64> = (tally.entries_beside.iter())
        .zip(&warm_up.entries_beside)
        .map(|(timed, warming)| timed.load(Ordering::SeqCst) + warming.load(Ordering::SeqCst))
        .collect();
    let most_inside = entries_beside
        .iter()
        .rposition(|&n| n > 0)
        .map_or(0, |already| already as u64 + 1);
    let acquisitions = tally.acquisitions.load(Ordering::SeqCst);
    Ok(Contention {
        acquisitions_per_s: acquisitions as f64 / elapsed,
        acquisitions,
        core_share: cpu_s / elapsed,
        traffic,
        most_inside,
        entries_beside,
    })
}

/// How long the contended scenarios run (`BENCH_CONTENDED_SECS`, default 10).
fn contended_secs() -> u64 {
    std::env::var("BENCH_CONTENDED_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// The last figure reported under `key` since the first `since` figures, so that a round
/// never takes a figure that only an earlier round reported.
fn figure_since(since: usize, key: &str) -> Option<f64> {
    FIGURES
        .lock()
        .unwrap()
        .iter()
        .skip(since)
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
}

/// The median of `values` (0 for none).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// `BENCH_ROUNDS` (default 3) rounds of the contended scenarios, ours and our peers'
/// alternating within each round: the handoff floor, the mutex (ours, Curator's,
/// zookeeper-client's, ours given back by drop), the read lock (ours, Curator's, ours given
/// back by drop) and the semaphore (ours and Curator's). Reports each
/// figure's median over the rounds and the median, lowest and highest of each round's ratio,
/// as `rounds_*`.
async fn rounds(connect: &str, path: &str) -> Result<(), BoxError> {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let secs = contended_secs().to_string();
    let (read_sessions, leases) = (READ_SESSIONS.to_string(), SEMAPHORE_LEASES.to_string());
    let mut figures: Vec<(String, Vec<f64>)> = Vec::new();
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); CONTENDED_RATIOS.len()];
    for round in 0..rounds {
        let since = FIGURES.lock().unwrap().len();
        let at = |scenario: &str| format!("{path}-{round}-{scenario}");
        handoff_floor(connect, &at("handoff-floor")).await?;
        contended(connect, &at("contended")).await?;
        curator(connect, &at("curator"), &["contended", "8", &secs]).await?;
        zkclient_contended(connect, &at("zkclient")).await?;
        contended_drop(connect, &at("contended-drop")).await?;
        read_contended(connect, &at("read")).await?;
        let args = ["read-contended", &read_sessions, &secs];
        curator(connect, &at("curator-read"), &args).await?;
        read_contended_drop(connect, &at("read-drop")).await?;
        semaphore_contended(connect, &at("semaphore")).await?;
        let args = ["semaphore-contended", &read_sessions, &leases, &secs];
        curator(connect, &at("curator-semaphore"), &args).await?;
        for (i, (_, ours, theirs, per_handoff)) in CONTENDED_RATIOS.iter().enumerate() {
            if let (Some(ours), Some(theirs)) =
                (figure_since(since, ours), figure_since(since, theirs))
            {
                ratios[i].push(ratio_of(ours, theirs, *per_handoff));
            }
        }
        // Each rate's figures, and beside each scenario's rate what a turn of it cost the
        // server, apart from how long the turn waited.
        let rates = (CONTENDED_RATIOS.iter()).flat_map(|(_, ours, theirs, _)| [*ours, *theirs]);
        let keys = rates.flat_map(|key| {
            let scenario = key.strip_suffix("_acquisitions_per_s");
            let server_cpu = scenario.map(|s| format!("{s}{SERVER_CPU_SUFFIX}"));
            std::iter::once(key.to_owned()).chain(server_cpu)
        });
        for key in keys {
            if let Some(value) = figure_since(since, &key) {
                match figures.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, values)) => values.push(value),
                    None => figures.push((key, vec![value])),
                }
            }
        }
    }
    for (key, mut values) in figures {
        let median = median(&mut values);
        report(
            &format!("rounds_{key}_median"),
            if key.ends_with(SERVER_CPU_SUFFIX) {
                format!("{median:.3}")
            } else {
                format!("{median:.1}")
            },
        );
    }
    for ((name, ..), mut values) in CONTENDED_RATIOS.iter().zip(ratios) {
        if values.is_empty() {
            continue;
        }
        let median = median(&mut values);
        report(&format!("rounds_{name}_median"), format!("{median:.2}"));
        report(
            &format!("rounds_{name}_lowest"),
            format!("{:.2}", values[0]),
        );
        report(
            &format!("rounds_{name}_highest"),
            format!("{:.2}", values[values.len() - 1]),
        );
    }
    Ok(())
}

/// A comma-separated list of counts from the environment variable `var`, else `default`.
fn scaling_list(var: &str, default: &str) -> Vec<usize> {
    let text = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    text.split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// The session counts of the contended scaling scenarios (`BENCH_SCALING_SESSIONS`).
fn scaling_sessions() -> Vec<usize> {
    scaling_list("BENCH_SCALING_SESSIONS", "1,2,8,32,128")
}

/// [`scaling_sessions`] as one argument for Curator's scenario.
fn scaling_sessions_arg() -> String {
    let sessions: Vec<String> = scaling_sessions().iter().map(usize::to_string).collect();
    sessions.join(",")
}

/// How long each step of the contended scaling scenario runs (`BENCH_SCALING_SECS`, default
/// 4).
fn scaling_secs() -> u64 {
    std::env::var("BENCH_SCALING_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// Handoffs measured at each step of the selector scaling scenarios, after 100 of warm-up.
const SCALING_HANDOFFS: usize = 500;

/// The contended mutex with 1, 2, 8, 32 and 128 sessions (`BENCH_SCALING_SESSIONS`), each for
/// [`scaling_secs`]: throughput, the server's requests and packets per acquisition, and the
/// share of a core this process used per 1,000 acquisitions a second.
async fn scaling_contended(connect: &str, path: &str) -> Result<(), BoxError> {
    for sessions in scaling_sessions() {
        let lock_path = format!("{path}-{sessions}");
        let run = contend(connect, sessions, scaling_secs(), |client| {
            InterProcessMutex::new(client, &lock_path)
        })
        .await?;
        let key = format!("scaling_contended_{sessions}");
        report(
            &format!("{key}_acquisitions_per_s"),
            format!("{:.1}", run.acquisitions_per_s),
        );
        report(&format!("{key}_violations"), run.overlaps_over(1));
        run.traffic.report(&key, run.acquisitions);
        report(
            &format!("{key}_core_share_per_1000_per_s"),
            run.core_share_per_1000(),
        );
    }
    Ok(())
}

/// Selector handoffs with 2, 16 and 128 candidates (`BENCH_SCALING_CANDIDATES`).
async fn scaling_selector(connect: &str, path: &str) -> Result<(), BoxError> {
    for candidates in scaling_list("BENCH_SCALING_CANDIDATES", "2,16,128") {
        let key = format!("scaling_selector_{candidates}");
        let path = format!("{path}-{candidates}");
        selector_handoff_of(connect, &path, candidates, SCALING_HANDOFFS, &key).await?;
    }
    Ok(())
}

/// Waiters in one process on a mutex and on a semaphore: 1,000, 10,000 and 100,000
/// (`BENCH_SCALING_WAITERS`), with the peak memory and the drain time of each.
async fn scaling_waiters(connect: &str, path: &str) -> Result<(), BoxError> {
    for count in scaling_list("BENCH_SCALING_WAITERS", "1000,10000,100000") {
        let key = format!("scaling_waiters_mutex_{count}");
        waiters_of(connect, &format!("{path}-mutex-{count}"), count, &key).await?;
        let key = format!("scaling_waiters_semaphore_{count}");
        semaphore_waiters_of(connect, &format!("{path}-semaphore-{count}"), count, &key).await?;
    }
    Ok(())
}

/// Handoffs measured by the selector scenarios, after 100 of warm-up.
const SELECTOR_HANDOFFS: usize = 1000;

/// Records, for each `take_leadership` call, the time since the previous leader returned.
struct HandoffTimer {
    last_return: std::sync::Mutex<Option<Instant>>,
    samples: std::sync::Mutex<Vec<Duration>>,
    wanted: usize,
    done: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for HandoffTimer {
    async fn take_leadership(&self, _leadership: Leadership) -> Result<(), BoxError> {
        let now = Instant::now();
        if let Some(returned) = self.last_return.lock().unwrap().take() {
            let mut samples = self.samples.lock().unwrap();
            samples.push(now - returned);
            if samples.len() == self.wanted {
                self.done.notify_one();
            }
        }
        *self.last_return.lock().unwrap() = Some(Instant::now());
        Ok(())
    }
}

/// 2 selectors with auto-requeue whose leader returns at once: the time from one leader's
/// return to the next `take_leadership` call.
async fn selector_handoff(connect: &str, path: &str) -> Result<(), BoxError> {
    selector_handoff_of(connect, path, 2, SELECTOR_HANDOFFS, "selector_handoff").await
}

/// [`selector_handoff`] with `candidates` selectors and `handoffs` measured handoffs (after
/// 100 of warm-up), reported as `{key}_median_us` and `{key}_p99_us`.
async fn selector_handoff_of(
    connect: &str,
    path: &str,
    candidates: usize,
    handoffs: usize,
    key: &str,
) -> Result<(), BoxError> {
    let timer = Arc::new(HandoffTimer {
        last_return: std::sync::Mutex::new(None),
        samples: std::sync::Mutex::new(Vec::new()),
        wanted: handoffs + 100,
        done: tokio::sync::Notify::new(),
    });
    let mut selectors = Vec::new();
    for i in 0..candidates {
        let client = client(connect).await?;
        let selector = LeaderSelector::new(&client, path, timer.clone())?
            .with_id(format!("bench-{i}"))
            .auto_requeue(true);
        selectors.push((client, selector));
    }
    // Started together once all are connected, so that the warm-up sees every candidate.
    for (_, selector) in &selectors {
        selector.start()?;
    }
    tokio::time::timeout(Duration::from_secs(300), timer.done.notified()).await?;
    for (client, selector) in selectors {
        selector.close().await?;
        client.close().await;
    }
    // The first 100 handoffs are the warm-up.
    let mut samples = timer.samples.lock().unwrap().split_off(100);
    report(&format!("{key}_median_us"), median_us(&mut samples));
    report(&format!("{key}_p99_us"), percentile_us(&mut samples, 0.99));
    Ok(())
}

/// 2 latches: the time from the leader's close to the other's `is_leader`.
async fn latch_handoff(connect: &str, path: &str) -> Result<(), BoxError> {
    const HANDOFFS: usize = 200;
    let clients = [client(connect).await?, client(connect).await?];
    let mut latches = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let latch = LeaderLatch::new(c, path)?.with_id(format!("bench-{i}"));
        latch.start().await?;
        latches.push(latch);
    }
    let mut samples = Vec::new();
    for round in 0..HANDOFFS + 20 {
        let leader = loop {
            if let Some(i) = latches.iter().position(|l| l.is_leader()) {
                break i;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let other = 1 - leader;
        let mut changes = latches[other].leadership_changes();
        let started = Instant::now();
        latches[leader].close().await?;
        while changes.next().await != Some(true) {}
        if round >= 20 {
            samples.push(started.elapsed());
        }
        // The old leader joins again, as a follower.
        let latch = LeaderLatch::new(&clients[leader], path)?.with_id(format!("bench-{leader}"));
        latch.start().await?;
        latches[leader] = latch;
    }
    report("latch_handoff_median_us", median_us(&mut samples));
    for latch in latches {
        latch.close().await?;
    }
    for c in clients {
        c.close().await;
    }
    Ok(())
}

/// 1 leader and N = 10 followers: node watch events delivered per leadership change.
async fn latch_herd(connect: &str, path: &str) -> Result<(), BoxError> {
    const FOLLOWERS: usize = 10;
    const CHANGES: usize = 20;
    let mut clients = Vec::new();
    let mut latches = Vec::new();
    for i in 0..=FOLLOWERS {
        let c = client(connect).await?;
        let latch = LeaderLatch::new(&c, path)?.with_id(format!("bench-{i}"));
        latch.start().await?;
        clients.push(c);
        latches.push(latch);
    }
    let mut events = 0u64;
    for _ in 0..CHANGES {
        let leader = loop {
            if let Some(i) = latches.iter().position(|l| l.is_leader()) {
                break i;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let before: Vec<(u64, u64)> = latches
            .iter()
            .map(|l| (l.metrics().watch_events, l.metrics().races))
            .collect();
        latches[leader].close().await?;
        // Settled: a new leader, and every follower has raced again after its event.
        let settle = Instant::now() + Duration::from_secs(30);
        loop {
            let new_leader = latches.iter().any(|l| l.is_leader());
            let all_raced = latches
                .iter()
                .enumerate()
                .all(|(i, l)| i == leader || l.metrics().races > before[i].1);
            if (new_leader && all_raced) || Instant::now() > settle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        events += latches
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .map(|(i, l)| l.metrics().watch_events - before[i].0)
            .sum::<u64>();
        let latch = LeaderLatch::new(&clients[leader], path)?.with_id(format!("bench-{leader}"));
        latch.start().await?;
        latches[leader] = latch;
    }
    report(
        "latch_herd_notifications_per_change",
        format!("{:.1}", events as f64 / CHANGES as f64),
    );
    for latch in latches {
        latch.close().await?;
    }
    for c in clients {
        c.close().await;
    }
    Ok(())
}

/// One client holds the lock while 10,000 tasks on the same client wait; then it releases and
/// all drain (each acquires and releases at once).
async fn waiters(connect: &str, path: &str) -> Result<(), BoxError> {
    waiters_of(connect, path, bench_waiters(), "waiters").await
}

/// `BENCH_WAITERS`, or 10,000.
fn bench_waiters() -> usize {
    std::env::var("BENCH_WAITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

/// [`waiters`] with `count` tasks, reported as `{key}_…`.
async fn waiters_of(connect: &str, path: &str, count: usize, key: &str) -> Result<(), BoxError> {
    let holder_client = client(connect).await?;
    let observer = client(connect).await?;
    let mutex = InterProcessMutex::new(&holder_client, path)?;
    let holder = mutex.acquire().await?;
    reset_peak_rss();
    reset_peak_heap();
    let (rss_before, heap_before) = (rss_mb(), heap_mb());
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let mutex = mutex.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let guard = mutex.acquire().await?;
            guard.release().await?;
            done.fetch_add(1, Ordering::Relaxed);
            Ok::<_, zk_recipes::Error>(())
        }));
    }
    // Enqueued means: a node in ZooKeeper for every waiter.
    let enqueue_deadline = Instant::now() + Duration::from_secs(300);
    let enqueued = loop {
        let n = observer.children(path).await?.map_or(0, |c| c.len());
        if n > count || Instant::now() > enqueue_deadline {
            break n - 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    report(&format!("{key}_enqueued"), enqueued);
    let started = Instant::now();
    holder.release().await?;
    for task in tasks {
        task.await??;
    }
    report_drain(key, started.elapsed(), rss_before, heap_before);
    holder_client.close().await;
    observer.close().await;
    Ok(())
}

/// The waiter scenarios' figures, as `{key}_…`: the peak resident set, the heap and the
/// resident set added since `rss_before` and `heap_before` (at their peaks), and the drain
/// time.
fn report_drain(key: &str, drained: Duration, rss_before: f64, heap_before: f64) {
    let peak = peak_rss_mb();
    report(&format!("{key}_peak_rss_mb"), format!("{peak:.1}"));
    report(
        &format!("{key}_added_heap_mb"),
        format!("{:.1}", peak_heap_mb() - heap_before),
    );
    report(
        &format!("{key}_added_rss_mb"),
        format!("{:.1}", peak - rss_before),
    );
    report(
        &format!("{key}_drained_s"),
        format!("{:.2}", drained.as_secs_f64()),
    );
}

/// Reader sessions in the read/write lock scenarios.
const READ_SESSIONS: usize = 8;
/// Write acquisitions measured behind the readers.
const WRITER_ROUNDS: usize = 50;

/// [`READ_SESSIONS`] sessions loop read acquire/release for the contended time; readers share,
/// so the figure is the read lock's overhead, not a queue's handoffs. Also reports the most
/// readers seen inside at once.
async fn read_contended(connect: &str, path: &str) -> Result<(), BoxError> {
    let run = contend(connect, READ_SESSIONS, contended_secs(), |client| {
        Ok(InterProcessReadWriteLock::new(client, path)?
            .read_lock()
            .clone())
    })
    .await?;
    report(
        "read_acquisitions_per_s",
        format!("{:.1}", run.acquisitions_per_s),
    );
    report("read_most_inside", run.most_inside);
    run.traffic.report("read", run.acquisitions);
    Ok(())
}

/// `read-contended`, with each guard dropped instead of released (see [`DroppingMutex`]): the
/// read lock as a guard that goes out of scope gives it back.
async fn read_contended_drop(connect: &str, path: &str) -> Result<(), BoxError> {
    let run = contend(connect, READ_SESSIONS, contended_secs(), |client| {
        Ok(DroppingMutex(
            InterProcessReadWriteLock::new(client, path)?
                .read_lock()
                .clone(),
        ))
    })
    .await?;
    report(
        "read_drop_acquisitions_per_s",
        format!("{:.1}", run.acquisitions_per_s),
    );
    run.traffic.report("read_drop", run.acquisitions);
    Ok(())
}

/// [`READ_SESSIONS`] sessions keep the read lock busy (each holds it for 1 ms at a time, so
/// readers overlap); a writer on its own session asks for the write lock [`WRITER_ROUNDS`]
/// times and holds it for 1 ms. Its wait is the time from the request to the grant: the
/// readers ahead of it drain, and readers that come after it wait for it.
async fn writer_behind_readers(connect: &str, path: &str) -> Result<(), BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..READ_SESSIONS {
        let client = client(connect).await?;
        let lock = InterProcessReadWriteLock::new(&client, path)?;
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let guard = lock.read_lock().acquire().await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
                guard.release().await?;
            }
            client.close().await;
            Ok::<_, zk_recipes::Error>(())
        }));
    }
    let writer_client = client(connect).await?;
    let writer = InterProcessReadWriteLock::new(&writer_client, path)?;
    let mut waits = Vec::with_capacity(WRITER_ROUNDS);
    for round in 0..WRITER_ROUNDS + 5 {
        let asked = Instant::now();
        let guard = writer.write_lock().acquire().await?;
        // The first rounds warm the readers' queue up.
        if round >= 5 {
            waits.push(asked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        guard.release().await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await??;
    }
    writer_client.close().await;
    report(
        "writer_wait_behind_readers_median_us",
        median_us(&mut waits),
    );
    report(
        "writer_wait_behind_readers_p99_us",
        percentile_us(&mut waits, 0.99),
    );
    Ok(())
}

/// Leases of the semaphore scenarios.
const SEMAPHORE_LEASES: u32 = 3;

/// [`READ_SESSIONS`] sessions loop acquire/release on a semaphore of [`SEMAPHORE_LEASES`] for
/// the contended time; an in-process count checks that no more than that hold at once.
async fn semaphore_contended(connect: &str, path: &str) -> Result<(), BoxError> {
    let run = contend(connect, READ_SESSIONS, contended_secs(), |client| {
        InterProcessSemaphoreV2::new(client, path, SEMAPHORE_LEASES)
    })
    .await?;
    report(
        "semaphore_acquisitions_per_s",
        format!("{:.1}", run.acquisitions_per_s),
    );
    report("semaphore_most_inside", run.most_inside);
    run.traffic.report("semaphore", run.acquisitions);
    if run.most_inside > u64::from(SEMAPHORE_LEASES) {
        return Err(format!(
            "{} leases of {SEMAPHORE_LEASES} held at once",
            run.most_inside
        )
        .into());
    }
    Ok(())
}

/// One client holds every lease of a semaphore while 10,000 tasks on the same client wait
/// (on its internal lock, whose waiters share one driver); then the holder releases and all
/// drain, each taking a lease and giving it back at once.
async fn semaphore_waiters(connect: &str, path: &str) -> Result<(), BoxError> {
    semaphore_waiters_of(connect, path, bench_waiters(), "semaphore_waiters").await
}

/// [`semaphore_waiters`] with `count` tasks, reported as `{key}_…`.
async fn semaphore_waiters_of(
    connect: &str,
    path: &str,
    count: usize,
    key: &str,
) -> Result<(), BoxError> {
    let client = client(connect).await?;
    let observer = self::client(connect).await?;
    let semaphore = InterProcessSemaphoreV2::new(&client, path, SEMAPHORE_LEASES)?;
    let held = semaphore.acquire_many(SEMAPHORE_LEASES).await?;
    if key == "semaphore_waiters" {
        report(
            "semaphore_acquire_future_bytes",
            std::mem::size_of_val(&semaphore.acquire()),
        );
        let mutex = InterProcessMutex::new(&client, &format!("{path}-mutex"))?;
        report(
            "mutex_acquire_future_bytes",
            std::mem::size_of_val(&mutex.acquire()),
        );
    }
    reset_peak_rss();
    reset_peak_heap();
    let (rss_before, heap_before) = (rss_mb(), heap_mb());
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let semaphore = semaphore.clone();
        tasks.push(tokio::spawn(async move {
            semaphore.acquire().await?.release().await
        }));
    }
    // Enqueued: a node on the internal lock for every waiter.
    let locks = format!("{path}/locks");
    let enqueue_deadline = Instant::now() + Duration::from_secs(300);
    let enqueued = loop {
        let n = observer.children(&locks).await?.map_or(0, |c| c.len());
        if n >= count || Instant::now() > enqueue_deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    report(&format!("{key}_enqueued"), enqueued);
    let started = Instant::now();
    for lease in held {
        lease.release().await?;
    }
    for task in tasks {
        task.await??;
    }
    report_drain(key, started.elapsed(), rss_before, heap_before);
    client.close().await;
    observer.close().await;
    Ok(())
}

/// Requests the cache scenarios send before awaiting their answers, to build and remove their
/// trees quickly.
const PIPELINE: usize = 500;

/// The tree of the load and resync scenarios: 100 children of 100 children each (10,101 nodes
/// with the root), 16 bytes of data each.
const CACHE_TREE: (usize, usize, usize) = (100, 100, 16);
/// The tree of the memory scenario: 100 children of 1,000 children each, 8 bytes of data.
const CACHE_MEMORY_TREE: (usize, usize, usize) = (100, 1000, 8);
/// Timed loads of the load scenarios, after one untimed (the median is reported).
const CACHE_LOAD_RUNS: usize = 3;
/// Changes timed by the latency scenarios, after [`CACHE_LATENCY_WARMUP`] untimed.
const CACHE_LATENCY_SAMPLES: usize = 500;
const CACHE_LATENCY_WARMUP: usize = 50;
/// Nodes changed while the resync scenario's connection is cut.
const CACHE_RESYNC_CHANGES: usize = 100;

/// A tree a cache scenario made: its root, the root's children, and theirs.
struct BenchTree {
    root: String,
    /// The paths below the root, by level: the children, then the grandchildren.
    levels: [Vec<String>; 2],
}

impl BenchTree {
    /// Makes `root` with `children` children of `grandchildren` children each, every node
    /// below the root with `data_len` bytes of data; the creates of a level are pipelined.
    async fn make(
        client: &Client,
        root: &str,
        shape: (usize, usize, usize),
    ) -> Result<Self, BoxError> {
        let (children, grandchildren, data_len) = shape;
        client.ensure_path(root, false).await?;
        let parents: Vec<String> = (0..children).map(|c| format!("{root}/c{c:03}")).collect();
        let leaves: Vec<String> = parents
            .iter()
            .flat_map(|parent| (0..grandchildren).map(move |g| format!("{parent}/g{g:04}")))
            .collect();
        let zk = client.zookeeper()?;
        let data = vec![b'x'; data_len];
        let options = CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        for level in [&parents, &leaves] {
            for chunk in level.chunks(PIPELINE) {
                let created = futures::future::join_all(
                    chunk.iter().map(|path| zk.create(path, &data, &options)),
                )
                .await;
                for result in created {
                    result?;
                }
            }
        }
        Ok(Self {
            root: root.to_owned(),
            levels: [parents, leaves],
        })
    }

    /// Its nodes, the root included.
    fn nodes(&self) -> usize {
        1 + self.levels.iter().map(Vec::len).sum::<usize>()
    }

    /// Deletes the tree, a level at a time, the deletes of a level pipelined.
    async fn remove(self, client: &Client) -> Result<(), BoxError> {
        let zk = client.zookeeper()?;
        for level in self.levels.iter().rev() {
            for chunk in level.chunks(PIPELINE) {
                let deleted =
                    futures::future::join_all(chunk.iter().map(|path| zk.delete(path, None))).await;
                for result in deleted {
                    result?;
                }
            }
        }
        client.delete(&self.root, None).await?;
        Ok(())
    }
}

/// The next event of a cache's stream, within two minutes.
async fn next_cache_event(events: &mut CacheEvents) -> Result<CacheEvent, BoxError> {
    tokio::time::timeout(Duration::from_secs(120), events.next())
        .await?
        .ok_or_else(|| BoxError::from("the cache's event stream ended"))
}

/// The first load of a 10,101-node tree (100 × 100 below the root, pipelined creates made
/// beforehand): the time from `start` to `initialized`, on one client, a new cache each run.
async fn cache_load(connect: &str, path: &str) -> Result<(), BoxError> {
    let writer = client(connect).await?;
    let tree = BenchTree::make(&writer, path, CACHE_TREE).await?;
    let reader = client(connect).await?;
    let mut samples = Vec::with_capacity(CACHE_LOAD_RUNS);
    for run in 0..=CACHE_LOAD_RUNS {
        let cache = CuratorCache::new(&reader, path)?;
        let started = Instant::now();
        cache.start().await?;
        tokio::time::timeout(Duration::from_secs(300), cache.initialized()).await??;
        let elapsed = started.elapsed();
        let held = cache.len();
        cache.close().await;
        if held != tree.nodes() {
            return Err(format!("the cache holds {held} nodes of {}", tree.nodes()).into());
        }
        if run == 0 {
            report("cache_load_first_ms", ms(elapsed));
        } else {
            samples.push(elapsed);
        }
    }
    report("cache_load_nodes", tree.nodes());
    report("cache_load_ms", median_ms(&mut samples));
    // The floors: the same reads with every path known, all sent before any is awaited
    // (getData and getChildren of every node, as a cache that cannot tell a leaf must send),
    // then getData alone.
    let zk = reader.zookeeper()?;
    let paths: Vec<&String> = std::iter::once(&tree.root)
        .chain(tree.levels.iter().flatten())
        .collect();
    for (key, list) in [
        ("cache_load_floor_ms", true),
        ("cache_load_data_floor_ms", false),
    ] {
        let mut floors = Vec::with_capacity(CACHE_LOAD_RUNS);
        for _ in 0..CACHE_LOAD_RUNS {
            let started = Instant::now();
            let mut data = Vec::with_capacity(paths.len());
            let mut children = Vec::with_capacity(paths.len());
            for path in &paths {
                data.push(zk.get_data(path));
                if list {
                    children.push(zk.get_children(path));
                }
            }
            for result in futures::future::join_all(data).await {
                result?;
            }
            for result in futures::future::join_all(children).await {
                result?;
            }
            floors.push(started.elapsed());
        }
        report(key, median_ms(&mut floors));
    }
    reader.close().await;
    tree.remove(&writer).await?;
    writer.close().await;
    Ok(())
}

/// Curator's `CuratorCache` loading the same tree as `cache-load` (made here, read by Java).
async fn curator_cache_load(connect: &str, path: &str) -> Result<(), BoxError> {
    if !curator_installed() {
        return curator(connect, path, &["cache-load"]).await;
    }
    let writer = client(connect).await?;
    let tree = BenchTree::make(&writer, path, CACHE_TREE).await?;
    let (runs, nodes) = (CACHE_LOAD_RUNS.to_string(), tree.nodes().to_string());
    curator(connect, path, &["cache-load", &runs, &nodes]).await?;
    tree.remove(&writer).await?;
    writer.close().await;
    Ok(())
}

/// A cache over 10 nodes; another session sets one node's data, and the time from sending
/// the setData to the `Changed` event in the cache's stream is measured, one at a time.
async fn cache_latency(connect: &str, path: &str) -> Result<(), BoxError> {
    let writer = client(connect).await?;
    let tree = BenchTree::make(&writer, path, (10, 0, 16)).await?;
    let target = tree.levels[0][0].clone();
    let reader = client(connect).await?;
    let cache = CuratorCache::new(&reader, path)?;
    let mut changes = cache.events().changes_only();
    cache.start().await?;
    cache.initialized().await?;
    let zk = writer.zookeeper()?;
    let mut samples = Vec::with_capacity(CACHE_LATENCY_SAMPLES);
    for i in 0..CACHE_LATENCY_WARMUP + CACHE_LATENCY_SAMPLES {
        let data = (i as u64).to_be_bytes();
        let started = Instant::now();
        let set = zk.set_data(&target, &data, None);
        loop {
            if let CacheEvent::Changed { new, .. } = next_cache_event(&mut changes).await? {
                if new.path() == target && new.data() == Some(&data[..]) {
                    break;
                }
            }
        }
        let elapsed = started.elapsed();
        set.await?;
        if i >= CACHE_LATENCY_WARMUP {
            samples.push(elapsed);
        }
    }
    report("cache_latency_median_us", median_us(&mut samples));
    report("cache_latency_p99_us", percentile_us(&mut samples, 0.99));
    cache.close().await;
    reader.close().await;
    tree.remove(&writer).await?;
    writer.close().await;
    Ok(())
}

/// Curator's `CuratorCache` over the same 10 nodes as `cache-latency`: Java sets the data
/// with a second client and times to the listener's change callback.
async fn curator_cache_latency(connect: &str, path: &str) -> Result<(), BoxError> {
    if !curator_installed() {
        return curator(connect, path, &["cache-latency"]).await;
    }
    let writer = client(connect).await?;
    let tree = BenchTree::make(&writer, path, (10, 0, 16)).await?;
    let target = tree.levels[0][0].clone();
    let (samples, warmup) = (
        CACHE_LATENCY_SAMPLES.to_string(),
        CACHE_LATENCY_WARMUP.to_string(),
    );
    curator(
        connect,
        path,
        &["cache-latency", &target, &samples, &warmup],
    )
    .await?;
    tree.remove(&writer).await?;
    writer.close().await;
    Ok(())
}

/// What a cached node costs: the sizes of the per-node structures, and the growth of the
/// process's resident set for 100,101 nodes (100 × 1,000 below the root, 8 bytes of data)
/// loaded into one cache, with data and then stats only. The allocator's free memory is
/// given back before each reading, so the growth is what the cache holds (and the client's
/// buffers) with the allocator's fragmentation, not the load's passing peak; the heap in use,
/// counted by the [`CountingAllocator`], is reported beside it.
async fn cache_memory(connect: &str, path: &str) -> Result<(), BoxError> {
    report("cache_node_struct_bytes", std::mem::size_of::<CachedNode>());
    report(
        "cache_node_stat_bytes",
        std::mem::size_of::<zookeeper_client::Stat>(),
    );
    report("cache_event_bytes", std::mem::size_of::<CacheEvent>());
    let writer = client(connect).await?;
    let tree = BenchTree::make(&writer, path, CACHE_MEMORY_TREE).await?;
    let heap_without_reader = heap_mb();
    let reader = client(connect).await?;
    for stat_only in [false, true] {
        let prefix = if stat_only {
            "cache_stat_only"
        } else {
            "cache"
        };
        trim_heap();
        let before = rss_mb();
        let heap_before = heap_mb();
        reset_peak_heap();
        let builder = CuratorCache::builder(&reader, path);
        let cache = if stat_only {
            builder.stat_only()
        } else {
            builder
        }
        .build()?;
        cache.start().await?;
        tokio::time::timeout(Duration::from_secs(600), cache.initialized()).await??;
        trim_heap();
        let grown = rss_mb() - before;
        let heap_grown = heap_mb() - heap_before;
        let load_peak = peak_heap_mb() - heap_before;
        let snapshot = cache.snapshot();
        let nodes = snapshot.len();
        let payload: usize = snapshot
            .iter()
            .map(|node| node.path().len() + node.data().map_or(0, <[u8]>::len))
            .sum();
        drop(snapshot);
        if nodes != tree.nodes() {
            return Err(format!("the cache holds {nodes} nodes of {}", tree.nodes()).into());
        }
        let per_node = grown * 1024.0 * 1024.0 / nodes as f64;
        let payload_per_node = payload as f64 / nodes as f64;
        report(&format!("{prefix}_nodes"), nodes);
        report(&format!("{prefix}_rss_growth_mb"), format!("{grown:.1}"));
        report(
            &format!("{prefix}_bytes_per_node"),
            format!("{per_node:.0}"),
        );
        report(
            &format!("{prefix}_path_data_bytes_per_node"),
            format!("{payload_per_node:.1}"),
        );
        report(
            &format!("{prefix}_overhead_bytes_per_node"),
            format!("{:.0}", per_node - payload_per_node),
        );
        // The heap in use (no allocator overhead, no fragmentation), and its peak during the
        // load (the reads in flight).
        report(
            &format!("{prefix}_heap_bytes_per_node"),
            format!("{:.0}", heap_grown * 1024.0 * 1024.0 / nodes as f64),
        );
        report(
            &format!("{prefix}_load_peak_heap_mb"),
            format!("{load_peak:.1}"),
        );
        cache.close().await;
        drop(cache);
        trim_heap();
        report(
            &format!("{prefix}_rss_retained_after_close_mb"),
            format!("{:.1}", rss_mb() - before),
        );
        report(
            &format!("{prefix}_heap_retained_after_close_mb"),
            format!("{:.1}", heap_mb() - heap_before),
        );
    }
    reader.close().await;
    drop(reader);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // What the caches left behind that closing their client did not free.
    report(
        "cache_heap_retained_after_client_close_mb",
        format!("{:.1}", heap_mb() - heap_without_reader),
    );
    tree.remove(&writer).await?;
    writer.close().await;
    Ok(())
}

/// A cache of 10,101 nodes (the `cache-load` tree) on a client behind a `FaultProxy`: the
/// connection is cut, another session changes 100 leaves, the connection is restored. The
/// time from the restore to the `Initialized` that ends the resync, and the events emitted in
/// between, which must be exactly the 100 `Changed`.
async fn cache_resync(connect: &str, path: &str) -> Result<(), BoxError> {
    let writer = client(connect).await?;
    let tree = BenchTree::make(&writer, path, CACHE_TREE).await?;
    // A proxy forwards to one server.
    let upstream = connect.split(',').next().unwrap_or(connect);
    let proxy = zk_recipes::testing::FaultProxy::start(upstream).await?;
    let reader = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(30))
        .connection_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    let cache = CuratorCache::new(&reader, path)?;
    let mut events = cache.events();
    cache.start().await?;
    let mut loaded = 0;
    while !matches!(
        next_cache_event(&mut events).await?,
        CacheEvent::Initialized
    ) {
        loaded += 1;
    }
    if loaded != tree.nodes() {
        return Err(format!(
            "the first load emitted {loaded} events for {} nodes",
            tree.nodes()
        )
        .into());
    }

    let mut states = reader.connection_states();
    proxy.cut();
    // The client has seen the cut before the changes are made.
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(state) = states.next().await {
            if !state.is_connected() {
                return;
            }
        }
    })
    .await?;
    let leaves = &tree.levels[1];
    let changed: Vec<&String> = leaves
        .iter()
        .step_by(leaves.len() / CACHE_RESYNC_CHANGES)
        .take(CACHE_RESYNC_CHANGES)
        .collect();
    let data = b"changed while cut";
    let zk = writer.zookeeper()?;
    for result in
        futures::future::join_all(changed.iter().map(|path| zk.set_data(path, data, None))).await
    {
        result?;
    }
    let mut during_cut = 0;
    while let Some(Some(_)) = futures::FutureExt::now_or_never(events.next()) {
        during_cut += 1;
    }

    proxy.restore();
    let restored = Instant::now();
    let reconnected = tokio::spawn(async move {
        while let Some(state) = states.next().await {
            if state.is_connected() {
                return Some(Instant::now());
            }
        }
        None
    });
    let (mut changes, mut others) = (0usize, 0usize);
    loop {
        match next_cache_event(&mut events).await? {
            CacheEvent::Initialized => break,
            CacheEvent::Changed { new, .. } if new.data() == Some(&data[..]) => changes += 1,
            other => {
                eprintln!("# cache-resync: an unexpected event {other:?}");
                others += 1;
            }
        }
    }
    let elapsed = restored.elapsed();
    report("cache_resync_nodes", tree.nodes());
    report("cache_resync_ms", ms(elapsed));
    if let Some(at) = reconnected.await? {
        report("cache_resync_reconnect_ms", ms(at - restored));
    }
    report("cache_resync_events", changes + others);
    cache.close().await;
    reader.close().await;
    drop(proxy);
    if changes != CACHE_RESYNC_CHANGES || others != 0 || during_cut != 0 {
        return Err(format!(
            "cache-resync: {changes} Changed and {others} other events between the restore and \
             Initialized ({during_cut} during the cut); expected exactly {CACHE_RESYNC_CHANGES} \
             Changed and nothing else"
        )
        .into());
    }
    tree.remove(&writer).await?;
    writer.close().await;
    Ok(())
}

/// Deletes timed by the node-recreate scenarios, after [`NODE_RECREATE_WARMUP`] untimed.
const NODE_RECREATE_SAMPLES: usize = 200;
const NODE_RECREATE_WARMUP: usize = 20;
/// The pause after each recreation, so that the next delete finds the node's keeper settled
/// (its existence watch set again), on both sides.
const NODE_RECREATE_PAUSE: Duration = Duration::from_millis(5);

/// An ephemeral [`PersistentNode`] at `<path>/node` on its own session (Curator's
/// `new PersistentNode(client, CreateMode.EPHEMERAL, false, path, data)`); another session,
/// the bench's, deletes it, and the time from sending the delete to the node existing again
/// is measured, one deletion at a time. The deleting session sees the node again through an
/// exists watch sent right behind the delete (both sent before either answer is read, so the
/// server answers the exists after the delete): the watch's `NodeCreated`, or the exists
/// itself should it already find the new node.
async fn node_recreate(connect: &str, path: &str) -> Result<(), BoxError> {
    let deleter = client(connect).await?;
    // A persistent parent, made beforehand: not a container the server could reap while
    // its only child is gone.
    deleter.ensure_path(path, false).await?;
    let holder = client(connect).await?;
    let target = format!("{path}/node");
    let node = PersistentNode::new(&holder, &target, CreateMode::Ephemeral, &b"bench"[..])?;
    node.start()?;
    if !node
        .wait_for_initial_create(Duration::from_secs(30))
        .await?
    {
        return Err("the persistent node was not made within 30 s".into());
    }
    let zk = deleter.zookeeper()?;
    let mut samples = Vec::with_capacity(NODE_RECREATE_SAMPLES);
    for i in 0..NODE_RECREATE_WARMUP + NODE_RECREATE_SAMPLES {
        let elapsed = tokio::time::timeout(Duration::from_secs(30), async {
            let started = Instant::now();
            let deleted = zk.delete(&target, None);
            let watched = zk.check_and_watch_stat(&target);
            deleted.await?;
            let (stat, watcher) = watched.await?;
            if stat.is_none() {
                let event = watcher.changed().await;
                if event.event_type != EventType::NodeCreated {
                    return Err(BoxError::from(format!(
                        "node-recreate: the exists watch fired with {event:?}"
                    )));
                }
            }
            Ok::<_, BoxError>(started.elapsed())
        })
        .await??;
        if i >= NODE_RECREATE_WARMUP {
            samples.push(elapsed);
        }
        tokio::time::sleep(NODE_RECREATE_PAUSE).await;
    }
    drop(zk);
    report("node_recreate_median_us", median_us(&mut samples));
    report("node_recreate_p99_us", percentile_us(&mut samples, 0.99));
    node.close().await?;
    holder.close().await;
    deleter.delete(path, None).await?;
    deleter.close().await;
    Ok(())
}

/// Curator's `PersistentNode` in the same scenario as `node-recreate`: Java keeps it with one
/// client and deletes it with another, through the raw ZooKeeper handle (an async delete
/// and an async exists with a watcher, sent back to back), timing to the watcher's
/// `NodeCreated` (or to the exists' answer, should it already find the node).
async fn curator_node_recreate(connect: &str, path: &str) -> Result<(), BoxError> {
    if !curator_installed() {
        return curator(connect, path, &["node-recreate"]).await;
    }
    let bench = client(connect).await?;
    bench.ensure_path(path, false).await?;
    let (samples, warmup, pause) = (
        NODE_RECREATE_SAMPLES.to_string(),
        NODE_RECREATE_WARMUP.to_string(),
        NODE_RECREATE_PAUSE.as_millis().to_string(),
    );
    curator(connect, path, &["node-recreate", &samples, &warmup, &pause]).await?;
    bench.delete(path, None).await?;
    bench.close().await;
    Ok(())
}

/// Joins timed by the group-join scenarios, after [`GROUP_JOIN_WARMUP`] untimed.
const GROUP_JOIN_SAMPLES: usize = 100;
const GROUP_JOIN_WARMUP: usize = 10;

/// An observing [`GroupMember`] (id `observer`, on its own session) on the group at `path`;
/// a new member (`member-<i>`, on a second session made before any timing and shared by
/// the members one after another) is made and started, and the time from its `start` to the
/// observer's [`MembershipEvent::Joined`] for it, in the observer's `events()` stream, is
/// measured. The member then closes, and the next one is made once the observer has seen it
/// leave ([`MembershipEvent::Left`]).
///
/// Curator's side (`curator-group-join`) cannot be timed the same way: Curator 5.4's
/// `GroupMember` has no listener, so the Java side polls the observer's `getCurrentMembers()`
/// every few tens of microseconds (a `parkNanos` of 10 µs; Linux's timer slack makes it
/// about 60 µs) until the member is in it. Its figures therefore include up to one poll
/// interval (half of one on average) that ours do not, and the polling thread competes with
/// Curator's threads for the CPU.
async fn group_join(connect: &str, path: &str) -> Result<(), BoxError> {
    let bench = client(connect).await?;
    bench.ensure_path(path, false).await?;
    let observer_client = client(connect).await?;
    let observer = GroupMember::new(&observer_client, path, "observer", &b"observer"[..])?;
    let mut events = observer.events();
    observer.start().await?;
    if !observer.wait_for_join(Duration::from_secs(30)).await? {
        return Err("the observer did not join within 30 s".into());
    }
    let member_client = client(connect).await?;
    let mut samples = Vec::with_capacity(GROUP_JOIN_SAMPLES);
    for i in 0..GROUP_JOIN_WARMUP + GROUP_JOIN_SAMPLES {
        let id = format!("member-{i}");
        let member = GroupMember::new(&member_client, path, &id, &b"bench"[..])?;
        let started = Instant::now();
        let (joined, seen) = tokio::join!(
            member.start(),
            next_membership(&mut events, |event| {
                matches!(event, MembershipEvent::Joined { id: new, .. } if *new == id)
            })
        );
        joined?;
        let seen = seen?;
        if i >= GROUP_JOIN_WARMUP {
            samples.push(seen - started);
        }
        member.close().await?;
        next_membership(
            &mut events,
            |event| matches!(event, MembershipEvent::Left { id: left } if *left == id),
        )
        .await?;
    }
    report("group_join_median_us", median_us(&mut samples));
    report("group_join_p99_us", percentile_us(&mut samples, 0.99));
    member_client.close().await;
    observer.close().await?;
    observer_client.close().await;
    bench.delete(path, None).await?;
    bench.close().await;
    Ok(())
}

/// When the first event of a group's stream that `wanted` accepts came, within 30 seconds.
async fn next_membership(
    events: &mut MembershipEvents,
    wanted: impl Fn(&MembershipEvent) -> bool,
) -> Result<Instant, BoxError> {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if wanted(&event) {
                return Ok(Instant::now());
            }
        }
        Err(BoxError::from("the observer's event stream ended"))
    })
    .await?
}

/// Curator's `GroupMember` in the same scenario as `group-join`, in Java: an observer on one
/// client, members one after another on a second, the join seen by polling the observer's
/// `getCurrentMembers()` (see [`group_join`] for that asymmetry).
async fn curator_group_join(connect: &str, path: &str) -> Result<(), BoxError> {
    if !curator_installed() {
        return curator(connect, path, &["group-join"]).await;
    }
    let bench = client(connect).await?;
    bench.ensure_path(path, false).await?;
    let (samples, warmup) = (
        GROUP_JOIN_SAMPLES.to_string(),
        GROUP_JOIN_WARMUP.to_string(),
    );
    curator(connect, path, &["group-join", &samples, &warmup]).await?;
    bench.delete(path, None).await?;
    bench.close().await;
    Ok(())
}

/// The service the discovery scenarios register their instances under.
const DISCOVERY_SERVICE: &str = "bench";
/// Registrations timed by the discovery-visible scenarios, after
/// [`DISCOVERY_VISIBLE_WARMUP`] untimed.
const DISCOVERY_VISIBLE_SAMPLES: usize = 100;
const DISCOVERY_VISIBLE_WARMUP: usize = 10;

/// A DYNAMIC instance `id` of [`DISCOVERY_SERVICE`] with a String payload, as both sides make
/// them (the same fields, so the same JSON but for the registration time).
fn discovery_instance(id: &str) -> Result<ServiceInstance<String>, BoxError> {
    Ok(ServiceInstance::builder(DISCOVERY_SERVICE)
        .id(id)
        .address("127.0.0.1")
        .port(8080)
        .payload("bench".to_owned())
        .build()?)
}

/// A started [`ServiceCache`](zk_recipes::discovery::ServiceCache) of [`DISCOVERY_SERVICE`] in
/// the registry at `path`, on its own session (a `ServiceDiscovery<String>`); a registering
/// `ServiceDiscovery<String>` on a second session, made before any timing, registers a new
/// DYNAMIC instance (`instance-<i>`), and the time from calling `register` to the cache's
/// [`ServiceCacheEvent::Added`] for it, in the cache's `events()` stream, is measured. The
/// instance is then unregistered, and the next one registered once the cache has seen it go
/// ([`ServiceCacheEvent::Removed`]).
async fn discovery_visible(connect: &str, path: &str) -> Result<(), BoxError> {
    let bench = client(connect).await?;
    bench.ensure_path(path, false).await?;
    let observer_client = client(connect).await?;
    let observer = ServiceDiscovery::<String>::builder(&observer_client, path).build()?;
    let cache = observer.service_cache(DISCOVERY_SERVICE)?;
    let mut events = cache.events();
    cache.start().await?;
    let registrar_client = client(connect).await?;
    let registrar = ServiceDiscovery::<String>::builder(&registrar_client, path).build()?;
    registrar.start().await?;
    let mut samples = Vec::with_capacity(DISCOVERY_VISIBLE_SAMPLES);
    for i in 0..DISCOVERY_VISIBLE_WARMUP + DISCOVERY_VISIBLE_SAMPLES {
        let instance = discovery_instance(&format!("instance-{i}"))?;
        let started = Instant::now();
        let (registered, seen) = tokio::join!(
            registrar.register(&instance),
            next_service_event(&mut events, |event| {
                matches!(event, ServiceCacheEvent::Added(new) if new.id == instance.id)
            })
        );
        registered?;
        let seen = seen?;
        if i >= DISCOVERY_VISIBLE_WARMUP {
            samples.push(seen - started);
        }
        registrar.unregister(&instance).await?;
        next_service_event(
            &mut events,
            |event| matches!(event, ServiceCacheEvent::Removed(old) if old.id == instance.id),
        )
        .await?;
    }
    report("discovery_visible_median_us", median_us(&mut samples));
    report(
        "discovery_visible_p99_us",
        percentile_us(&mut samples, 0.99),
    );
    cache.close().await;
    registrar.close().await?;
    registrar_client.close().await;
    observer.close().await?;
    observer_client.close().await;
    remove_registry(&bench, path).await?;
    bench.close().await;
    Ok(())
}

/// When the first event of a service cache's stream that `wanted` accepts came, within 30
/// seconds.
async fn next_service_event(
    events: &mut ServiceCacheEvents<String>,
    wanted: impl Fn(&ServiceCacheEvent<String>) -> bool,
) -> Result<Instant, BoxError> {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if wanted(&event) {
                return Ok(Instant::now());
            }
        }
        Err(BoxError::from("the service cache's event stream ended"))
    })
    .await?
}

/// Deletes the discovery scenarios' registry at `path`, once its instances are gone (its
/// nodes may be containers the server has reaped already).
async fn remove_registry(bench: &Client, path: &str) -> Result<(), BoxError> {
    bench
        .delete(&format!("{path}/{DISCOVERY_SERVICE}"), None)
        .await?;
    bench.delete(path, None).await?;
    Ok(())
}

/// Curator's curator-x-discovery in the same scenario as `discovery-visible`, in Java: a
/// `ServiceCache` on one client, instances registered one after another by a
/// `ServiceDiscovery` on a second, each timed from `registerService` to the cache listener's
/// `cacheChanged` call whose `getInstances()` holds it (the check included).
async fn curator_discovery_visible(connect: &str, path: &str) -> Result<(), BoxError> {
    if !curator_installed() {
        return curator(connect, path, &["discovery-visible"]).await;
    }
    let bench = client(connect).await?;
    bench.ensure_path(path, false).await?;
    let (samples, warmup) = (
        DISCOVERY_VISIBLE_SAMPLES.to_string(),
        DISCOVERY_VISIBLE_WARMUP.to_string(),
    );
    curator(connect, path, &["discovery-visible", &samples, &warmup]).await?;
    remove_registry(&bench, path).await?;
    bench.close().await;
    Ok(())
}

/// The instances the provider-pick scenarios pick among.
const PROVIDER_INSTANCES: usize = 10;
/// How long the provider-pick scenarios pick untimed (for Java's JIT; the same on both
/// sides), then timed.
const PROVIDER_PICK_WARMUP_SECS: f64 = 1.0;
const PROVIDER_PICK_SECS: f64 = 2.0;
/// Picks between two readings of the clock.
const PROVIDER_PICK_BATCH: u64 = 1000;

/// [`PROVIDER_INSTANCES`] DYNAMIC instances of [`DISCOVERY_SERVICE`] registered on one
/// session; on another, a started [`ServiceProvider`] with a [`RoundRobinStrategy`] (and no
/// filter but the default ones: not down, enabled). `get_instance()` is called in a loop on
/// one thread for [`PROVIDER_PICK_WARMUP_SECS`] untimed, then for [`PROVIDER_PICK_SECS`]
/// timed: the picks per second.
async fn provider_pick(connect: &str, path: &str) -> Result<(), BoxError> {
    let bench = client(connect).await?;
    bench.ensure_path(path, false).await?;
    let registrar_client = client(connect).await?;
    let registrar = ServiceDiscovery::<String>::builder(&registrar_client, path).build()?;
    for i in 0..PROVIDER_INSTANCES {
        registrar
            .register(&discovery_instance(&format!("instance-{i}"))?)
            .await?;
    }
    let picker_client = client(connect).await?;
    let picker = ServiceDiscovery::<String>::builder(&picker_client, path).build()?;
    let provider = picker
        .service_provider(DISCOVERY_SERVICE)
        .strategy(RoundRobinStrategy::new())
        .build()?;
    provider.start().await?;
    let held = provider.all_instances().len();
    if held != PROVIDER_INSTANCES {
        return Err(format!("the provider holds {held} instances of {PROVIDER_INSTANCES}").into());
    }
    // Round robin: one turn gives every instance once.
    let mut turn: Vec<String> = (0..PROVIDER_INSTANCES)
        .filter_map(|_| provider.get_instance().map(|i| i.id.clone()))
        .collect();
    turn.sort();
    turn.dedup();
    if turn.len() != PROVIDER_INSTANCES {
        return Err(format!(
            "one round-robin turn gave {} distinct instances",
            turn.len()
        )
        .into());
    }
    // One thread, the runtime's others left to the clients.
    let picks_per_s = tokio::task::block_in_place(|| {
        pick_for(&provider, PROVIDER_PICK_WARMUP_SECS)?;
        let started = Instant::now();
        let picks = pick_for(&provider, PROVIDER_PICK_SECS)?;
        Ok::<_, BoxError>(picks as f64 / started.elapsed().as_secs_f64())
    })?;
    report("provider_picks_per_s", format!("{picks_per_s:.0}"));
    provider.close().await;
    picker.close().await?;
    picker_client.close().await;
    registrar.close().await?;
    registrar_client.close().await;
    remove_registry(&bench, path).await?;
    bench.close().await;
    Ok(())
}

/// Calls `provider.get_instance()` in batches of [`PROVIDER_PICK_BATCH`] until `secs` have
/// passed; how many calls, each of which must have given an instance.
fn pick_for(provider: &ServiceProvider<String>, secs: f64) -> Result<u64, BoxError> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut picks, mut missed) = (0u64, 0u64);
    loop {
        for _ in 0..PROVIDER_PICK_BATCH {
            if std::hint::black_box(provider.get_instance()).is_none() {
                missed += 1;
            }
        }
        picks += PROVIDER_PICK_BATCH;
        if Instant::now() >= deadline {
            break;
        }
    }
    if missed > 0 {
        return Err(format!("{missed} of {picks} picks gave no instance").into());
    }
    Ok(picks)
}

/// Curator's `ServiceProvider` in the same scenario as `provider-pick`, in Java: the instances
/// registered on one client, a started provider with a `RoundRobinStrategy` on a second,
/// `getInstance()` called in a loop on the main thread.
async fn curator_provider_pick(connect: &str, path: &str) -> Result<(), BoxError> {
    if !curator_installed() {
        return curator(connect, path, &["provider-pick"]).await;
    }
    let bench = client(connect).await?;
    bench.ensure_path(path, false).await?;
    let args = [
        "provider-pick".to_owned(),
        PROVIDER_INSTANCES.to_string(),
        PROVIDER_PICK_WARMUP_SECS.to_string(),
        PROVIDER_PICK_SECS.to_string(),
        PROVIDER_PICK_BATCH.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curator(connect, path, &args).await?;
    remove_registry(&bench, path).await?;
    bench.close().await;
    Ok(())
}

/// Contending sessions of the counter scenarios.
const COUNTER_SESSIONS: usize = 8;
/// How long the counter scenarios increment untimed before the timed run (for Java's JIT,
/// and the server's; the same on both sides).
const COUNTER_WARMUP_SECS: f64 = 2.0;

/// The optimistic policy of both counter scenarios: up to 1000 more attempts after a lost
/// race, none paused (Curator's `RetryNTimes(1000, 0)`), and no promotion.
fn counter_retry() -> RetryNTimes {
    RetryNTimes::new(1000, Duration::ZERO)
}

/// [`COUNTER_SESSIONS`] sessions, each with its own [`DistributedAtomicLong`] on one node,
/// loop `increment()` for [`COUNTER_WARMUP_SECS`] untimed, then for the contended time: the
/// successful increments per second, the optimistic attempts per call, and whether the node's
/// value at the end is the number of successes of both runs (1) or not (0).
async fn counter_contended(connect: &str, path: &str) -> Result<(), BoxError> {
    let mut clients = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..COUNTER_SESSIONS {
        let client = client(connect).await?;
        counters.push(
            DistributedAtomicLong::builder(&client, path)
                .retry_policy(counter_retry())
                .build()?,
        );
        clients.push(client);
    }
    let warmup = increment_for(&counters, COUNTER_WARMUP_SECS).await?;
    let started = Instant::now();
    let run = increment_for(&counters, contended_secs() as f64).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let value = counters[0].get().await?.post_value;
    let successes = warmup.succeeded + run.succeeded;
    report(
        "counter_increments_per_s",
        format!("{:.1}", run.succeeded as f64 / elapsed),
    );
    report(
        "counter_tries_per_increment",
        format!("{:.2}", run.tries as f64 / run.calls.max(1) as f64),
    );
    report("counter_gave_up", warmup.gave_up + run.gave_up);
    report(
        "counter_exact",
        u8::from(i64::try_from(successes) == Ok(value)),
    );
    if i64::try_from(successes) != Ok(value) {
        eprintln!("# counter-contended: {successes} successful increments, value {value}");
    }
    drop(counters);
    for client in clients {
        client.close().await;
    }
    Ok(())
}

/// What the counter's sessions did in one run.
#[derive(Default)]
struct Increments {
    /// `increment()` calls made.
    calls: u64,
    /// Those that succeeded.
    succeeded: u64,
    /// Those whose attempts all lost their race.
    gave_up: u64,
    /// Optimistic attempts of all the calls.
    tries: u64,
}

/// Each counter, on a task of its own, calls `increment()` until `secs` have passed.
async fn increment_for(
    counters: &[DistributedAtomicLong],
    secs: f64,
) -> Result<Increments, BoxError> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = counters
        .iter()
        .cloned()
        .map(|counter| {
            tokio::spawn(async move {
                let mut done = Increments::default();
                while Instant::now() < deadline {
                    let taken = counter.increment().await?;
                    done.calls += 1;
                    done.tries += u64::from(taken.stats.optimistic_tries);
                    if taken.succeeded {
                        done.succeeded += 1;
                    } else {
                        done.gave_up += 1;
                    }
                }
                Ok::<_, zk_recipes::Error>(done)
            })
        })
        .collect();
    let mut total = Increments::default();
    for task in tasks {
        let done = task.await??;
        total.calls += done.calls;
        total.succeeded += done.succeeded;
        total.gave_up += done.gave_up;
        total.tries += done.tries;
    }
    Ok(total)
}

/// Gives the allocator's free memory back to the kernel (glibc's `malloc_trim`), so that the
/// resident set shows the memory in use.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim has no preconditions; it only returns free pages.
        unsafe {
            malloc_trim(0);
        }
    }
}

fn ms(elapsed: Duration) -> String {
    format!("{:.1}", elapsed.as_secs_f64() * 1e3)
}

fn median_ms(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    ms(samples[(samples.len() - 1) / 2])
}

fn per_op_us(elapsed: Duration, ops: u32) -> String {
    format!("{:.1}", elapsed.as_secs_f64() * 1e6 / f64::from(ops))
}

fn median_us(samples: &mut [Duration]) -> String {
    percentile_us(samples, 0.5)
}

fn percentile_us(samples: &mut [Duration], q: f64) -> String {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    format!("{:.1}", samples[i].as_secs_f64() * 1e6)
}

/// Resets the kernel's peak-RSS mark (VmHWM), so the figure belongs to this scenario alone.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set since [`reset_peak_rss`], in MB.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// The process's resident set now, in MB.
fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
