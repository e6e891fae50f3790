//! Chaos: the recipes at work on a 3-node ensemble while a seeded schedule injects one fault at
//! a time, and a checker that looks for the failures that matter.
//!
//! # Workload
//!
//! Twenty-five participants, each with its own [`Client`] (so its own session) that reaches the
//! ensemble through a [`FaultProxy`] per member (its connect string lists its three proxies, so
//! it survives the loss of one server, and faults can hit one client at a time):
//!
//! * 5 [`InterProcessMutex`] contenders on one path. A holder makes a guarded write of its
//!   fencing token to a shared node, works a while (in steps, stopping once its lock may be
//!   lost), makes a second guarded write (which a fault in the middle of the work holds up),
//!   and releases.
//! * 5 [`LeaderSelector`]s with auto-requeue on another path. A leader works the same way,
//!   then returns.
//! * 5 [`LeaderLatch`]es on a third path, and a sixth on the first latch participant's
//!   client: two sibling latches on one session. A leader reads its fencing token (the latch
//!   node's czxid, read through its own session, from a node carrying its own id), works, and
//!   closes its latch to let the others race; then it joins the race again with a new latch.
//! * 5 [`InterProcessReadWriteLock`] participants on a fourth path. Each time, one in three
//!   takes the write lock, the others the read lock, and works; a writer that is done
//!   downgrades half the time, and works again under the read hold before it releases it.
//! * 5 [`InterProcessSemaphoreV2`] participants on a fifth path, a semaphore of
//!   [`SEMAPHORE_LEASES`] leases: each takes a lease, works, and releases it.
//!
//! And a cache group, under a sixth path (the cache root):
//!
//! * A writer makes a seeded random stream of creates (with their missing parents), setDatas
//!   and deletes under the cache root, up to [`CACHE_DEPTH`] levels deep, a few a second; a
//!   delete of a node with children deletes its whole subtree one time in three. Its client is
//!   connected straight to the ensemble, not through proxies: the check compares the caches
//!   with the server's tree, not with what the writer believes, so a fault on the writer would
//!   only slow the stream down, while a writer that goes on writing while the caches are cut
//!   off makes the changes they must catch up with (a persistent watch's events during a
//!   disconnection are lost). Server faults still hit it; its writes of unknown outcome do not
//!   matter, for the same reason.
//! * Three [`CuratorCache`]s, each on a client of its own behind its own proxies (named
//!   `cache-tree`, `cache-stats`, `cache-children`): a tree cache of the root with data; a
//!   [`stat_only`](zk_recipes::cache::CuratorCacheBuilder::stat_only) tree cache of the root
//!   limited to 3 levels (the writer's fourth level is below it); and a
//!   [`Children`](zk_recipes::cache::CacheMode::Children) cache of `n0`, a node of the first
//!   level that the writer's subtree deletes remove and its creates make again. Each cache's
//!   events are replayed, as they come, on the snapshot of its
//!   [`subscribe`](CuratorCache::subscribe).
//!
//! And a node group (`tests/chaos/nodes.rs`), under a seventh path: three participants behind
//! proxies, each keeping a [`PersistentNode`](zk_recipes::PersistentNode) (a protected
//! ephemeral-sequential node, a persistent node, an ephemeral node, each under a parent of its
//! own), a [`GroupMember`](zk_recipes::GroupMember) of one group and a service instance
//! registered with a [`ServiceDiscovery`](zk_recipes::ServiceDiscovery), while an updater
//! gives the nodes and members new data a few times a second.
//!
//! And a counter group (`tests/chaos/counters.rs`): three participants behind proxies
//! increment one [`DistributedAtomicLong`](zk_recipes::DistributedAtomicLong) all the time.
//!
//! # Faults
//!
//! A seeded RNG (`CHAOS_SEED` replays a schedule; the seed is printed at the start) draws the
//! faults, one at a time, each healed before the next, a few seconds apart. The first nine are
//! the nine kinds in a shuffled order, so every run of at least 60 s sees all of them. A client
//! fault hits, at once, the current holder of each recipe (or a participant drawn at random
//! when a recipe has no holder at that moment), and each cache's client, each node group
//! participant and each counter participant with a chance of two in three (at least one of
//! each group; drawn by RNGs of their own, seeded from the run's seed as the writer's is, so
//! the groups leave the recipes' schedule of a seed as it was), through every proxy of each:
//!
//! * **cut**: the proxies close their connections, for less than the session timeout;
//! * **blackhole**: the proxies drop all traffic, for longer than the session timeout (the
//!   server expires the sessions);
//! * **delay**: the proxies delay traffic;
//! * **expire**: the sessions are expired on the server ([`expire_session`], through the
//!   member each holder is connected to).
//!
//! Server faults:
//!
//! * **kill follower** / **kill leader**: an ensemble member that does not lead, or the one that
//!   does, is killed with SIGKILL and restarted.
//!
//! And state faults on the queues of the mutex, the selector and the read/write lock, and on
//! the semaphore's leases, made by an operator's client:
//!
//! * **delete a waiter**: a waiting node of each queue (one drawn at random) is deleted;
//! * **delete the holder**: the first node of each queue is deleted;
//! * **recreate the parent**: every node of one queue is deleted, then its parent, which is
//!   created again at once (as ZooKeeper's container reaper and a recipe starting again would),
//!   so sequence numbers start again at 0.
//!
//! The two delete faults also delete one kept node, member node or registered instance of the
//! node group, and the parent fault one kept node with its parent.
//!
//! # Checks
//!
//! * **No overlap among obeying holders.** A holder records `(participant, fencing token,
//!   start, end)` with [`Instant`]s, where `start` is taken after it checked that its hold is
//!   good (mutex: not [`is_lost`](zk_recipes::LockGuard::is_lost); selector: not
//!   [`is_cancelled`](Leadership::is_cancelled); latch: [`is_leader`](LeaderLatch::is_leader)),
//!   and `end` before it checks again. Only intervals whose final check passed ("obeying") count:
//!   no two of them, for one recipe, may overlap in time, and in start order their fencing
//!   tokens must rise. (A latch interval also requires the latch not to have been re-elected
//!   in between, and its node to be owned by its session.) For the read/write lock, readers'
//!   intervals may overlap each other but no writer's, and writers' tokens rise. For the
//!   semaphore, no more than [`SEMAPHORE_LEASES`] intervals overlap at any moment.
//! * **No stale guarded write.** Every successful guarded write of a mutex holder is recorded
//!   with the version it produced; by version, the tokens must never decrease.
//! * **Progress.** After every healed fault, each recipe makes a new acquisition within
//!   [`PROGRESS_BOUND`] (twice the session timeout, plus 7 s).
//! * **Clean close.** Once every recipe is closed, no node is left under the recipe paths
//!   (checked with the participants' clients still open, then after they are closed with a
//!   fresh client).
//! * **Caches converge.** Once warmed up, and after every healed fault (while the recipes'
//!   progress is awaited), the writer is paused (its write in flight, if any, finishes first),
//!   then within [`PROGRESS_BOUND`] of the heal each cache must hold exactly the server's tree
//!   at its path and depth (read in full by the observer after a `sync`; compared by path,
//!   `mzxid` and data), its replayed events must equal its contents, and it must be
//!   [`Synced`](CacheState::Synced); a cache whose client a cut, a blackhole or an expiry hit
//!   must also have loaded its tree again since the fault (an `Initialized` more), so that it
//!   is checked after its resynchronisation, not before it noticed the fault. Then the writer
//!   resumes. A cache that does not is a violation, reported with the paths missing, extra
//!   and stale.
//! * **No phantom cache events.** A replayed event that does not fit (the creation of a node
//!   held, a change from a state not held, the deletion of a node not held) is a violation;
//!   the replay then starts again from a new subscription.
//! * **Nodes are kept.** Once warmed up, and after every healed fault, with the updater paused,
//!   within [`PROGRESS_BOUND`] of the heal: each kept node and member node exists exactly once
//!   under its parent, with the latest data it was given, owned (if ephemeral) by its client's
//!   current session, each member's view of the group is the group on the server, and each
//!   registered instance's node holds its JSON, owned by its client's current session. Each
//!   node's events must read as a node's life (`Created`, then `Deleted` and `Recreated` in
//!   turn), and once the group is closed none of its nodes may be left.
//! * **The counter is exact.** Once every task has ended: no value was claimed by two
//!   successful increments, and the counter is at least the number of successes and at most
//!   that plus the increments that failed with an unknown outcome (an increment is applied at
//!   most once, whatever the faults).
//! * **No failures.** No panic, and every task ends (each is joined under a deadline).
//!
//! The run ends with one line: `chaos: seed=S secs=T acquisitions=N faults=M kinds=K
//! violations=0 stale_writes=0 leaked=0 cache_checks=C cache_violations=0 node_checks=K
//! node_violations=0 counter_increments=I counter_violations=0` (a cache check is one cache's convergence, once warmed up or after one
//! fault; a node check one participant's node, member and view). `CHAOS_SECS` lengthens the run
//! (default 60 s).

mod common;
#[path = "chaos/counters.rs"]
mod counters;
#[path = "chaos/nodes.rs"]
mod nodes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::init_tracing;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zk_recipes::cache::{CacheEvent, CacheEvents, CacheState, CachedNode, CuratorCache};
use zk_recipes::testing::{expire_session, four_letter_word, FaultProxy, TestingCluster};
use zk_recipes::zookeeper_client::{self, CreateMode};
use zk_recipes::{
    BoxError, Client, Error, InterProcessMutex, InterProcessReadWriteLock, InterProcessSemaphoreV2,
    LeaderLatch, LeaderSelector, LeaderSelectorListener, Leadership, LockGuard,
};

/// The participants' session timeout.
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// Well below the session timeout: a silent connection is noticed long before the server
/// expires its session.
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(1500);
/// Participants per recipe.
const PER_RECIPE: usize = 5;
/// The default length of the fault schedule, in seconds (`CHAOS_SECS` overrides it).
const DEFAULT_SECS: u64 = 60;
/// The schedule may run this much past its length to get every kind of fault in.
const OVERRUN: Duration = Duration::from_secs(30);
/// After a healed fault, every recipe makes a new acquisition within this bound.
const PROGRESS_BOUND: Duration = Duration::from_secs(2 * 4 + 7);
/// Before the first fault, every recipe has made an acquisition within this bound.
const WARM_UP_BOUND: Duration = Duration::from_secs(30);
/// How long the tasks may take to end once stopped.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long the recipes' nodes may take to go once everything is closed.
const LEAK_DEADLINE: Duration = Duration::from_secs(2 * 4 + 5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Recipe {
    Mutex,
    Selector,
    Latch,
    ReadWrite,
    Semaphore,
}

/// How many recipes the workload runs.
const RECIPES: usize = 5;

/// The leases of the chaos semaphore.
const SEMAPHORE_LEASES: usize = 2;

impl Recipe {
    const ALL: [Recipe; RECIPES] = [
        Recipe::Mutex,
        Recipe::Selector,
        Recipe::Latch,
        Recipe::ReadWrite,
        Recipe::Semaphore,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The participant numbers of this recipe: 0–4, 5–9, 10–14, 15–19, 20–24.
    fn participants(self) -> std::ops::Range<usize> {
        let first = self.index() * PER_RECIPE;
        first..first + PER_RECIPE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FaultKind {
    Cut,
    Blackhole,
    Delay,
    Expire,
    KillFollower,
    KillLeader,
    DeleteWaiter,
    DeleteHolder,
    RecreateParent,
}

const KINDS: [FaultKind; 9] = [
    FaultKind::Cut,
    FaultKind::Blackhole,
    FaultKind::Delay,
    FaultKind::Expire,
    FaultKind::KillFollower,
    FaultKind::KillLeader,
    FaultKind::DeleteWaiter,
    FaultKind::DeleteHolder,
    FaultKind::RecreateParent,
];

/// One critical section (or turn of leadership) of one participant.
#[derive(Debug, Clone)]
struct Record {
    recipe: Recipe,
    participant: usize,
    token: u64,
    start: Instant,
    end: Instant,
    /// The hold was still good when `end` had been taken.
    obeyed: bool,
    /// A read hold of the read/write lock, or a semaphore's lease: it may overlap others of
    /// its kind (leases up to the semaphore's count).
    shared: bool,
}

/// A guarded write that ZooKeeper acknowledged.
#[derive(Debug, Clone, Copy)]
struct GuardedWrite {
    version: i32,
    token: u64,
    participant: usize,
}

/// What the workers and the checker share.
struct Shared {
    stop: CancellationToken,
    started: Instant,
    history: Mutex<Vec<Record>>,
    writes: Mutex<Vec<GuardedWrite>>,
    /// Guarded writes whose outcome is unknown (the connection dropped before the answer).
    unknown_writes: AtomicUsize,
    /// Acquisitions per recipe so far.
    acquired: watch::Sender<[u64; RECIPES]>,
    /// The participant in a critical section of each recipe, if any: fault targets.
    holders: Mutex<[Option<usize>; RECIPES]>,
    /// Violations seen during the run (a latch leading on a node it does not own).
    violations: Mutex<Vec<String>>,
    /// Errors and other events the workers met, counted by kind (for the diagnostics).
    notes: Mutex<BTreeMap<String, usize>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            stop: CancellationToken::new(),
            started: Instant::now(),
            history: Mutex::new(Vec::new()),
            writes: Mutex::new(Vec::new()),
            unknown_writes: AtomicUsize::new(0),
            acquired: watch::Sender::new([0; RECIPES]),
            holders: Mutex::new([None; RECIPES]),
            violations: Mutex::new(Vec::new()),
            notes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Called once the hold is checked good: counts the acquisition and returns its start.
    fn begin(&self, recipe: Recipe, participant: usize) -> Instant {
        self.holders.lock().unwrap()[recipe.index()] = Some(participant);
        self.acquired.send_modify(|a| a[recipe.index()] += 1);
        Instant::now()
    }

    fn finish(&self, record: Record) {
        {
            let mut holders = self.holders.lock().unwrap();
            if holders[record.recipe.index()] == Some(record.participant) {
                holders[record.recipe.index()] = None;
            }
        }
        self.history.lock().unwrap().push(record);
    }

    fn note(&self, what: impl Into<String>) {
        *self.notes.lock().unwrap().entry(what.into()).or_default() += 1;
    }

    fn note_error(&self, context: &str, error: &Error) {
        let kind = match error {
            Error::ZooKeeper(e) => format!("ZooKeeper({e})"),
            other => format!("{other:?}"),
        };
        self.note(format!("{context}: {kind}"));
    }

    fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.started).as_secs_f64()
    }
}

/// Sleeps for `duration`, or less if the run is stopped.
/// Acquires with `acquire` unless the run stops first: `None` if it stopped, or if the acquire
/// failed (noted, then a short pause so that a failing acquire does not spin).
async fn acquire_or_pause<T>(
    shared: &Shared,
    what: &str,
    acquire: impl std::future::Future<Output = Result<T, Error>>,
) -> Option<T> {
    let acquired = tokio::select! {
        _ = shared.stop.cancelled() => return None,
        acquired = acquire => acquired,
    };
    match acquired {
        Ok(held) => Some(held),
        Err(e) => {
            shared.note_error(what, &e);
            pause(&shared.stop, Duration::from_millis(50)).await;
            None
        }
    }
}

async fn pause(stop: &CancellationToken, duration: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// One participant: its client and its proxies, one per ensemble member.
struct Participant {
    name: String,
    client: Client,
    proxies: Vec<FaultProxy>,
}

impl Participant {
    async fn connect(name: String, cluster: &TestingCluster) -> Participant {
        let mut proxies = Vec::new();
        for member in 0..cluster.len() {
            let upstream = cluster.server_connect_string(member).unwrap();
            proxies.push(FaultProxy::start(&upstream).await.expect("start a proxy"));
        }
        let connect_string = proxies
            .iter()
            .map(FaultProxy::connect_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut attempt = 0;
        let client = loop {
            attempt += 1;
            match Client::builder(connect_string.as_str())
                .session_timeout(SESSION_TIMEOUT)
                .connection_timeout(CONNECTION_TIMEOUT)
                .connect()
                .await
            {
                Ok(client) => break client,
                // The ensemble is still warming up on a busy machine.
                Err(e) if attempt < 10 && e.is_retryable() => {
                    tracing::warn!(%name, error = %e, "connecting a participant; retrying")
                }
                Err(e) => panic!("connecting {name}: {e}"),
            }
        };
        Participant {
            name,
            client,
            proxies,
        }
    }

    fn cut(&self) {
        self.proxies.iter().for_each(FaultProxy::cut);
    }

    fn blackhole(&self) {
        self.proxies.iter().for_each(FaultProxy::blackhole);
    }

    fn delay(&self, delay: Duration) {
        self.proxies.iter().for_each(|p| p.delay(delay));
    }

    fn restore(&self) {
        self.proxies.iter().for_each(FaultProxy::restore);
    }
}

/// A guarded write of `token` to the fence node, recorded if acknowledged.
async fn fenced_write(shared: &Shared, guard: &LockGuard, fence: &str, participant: usize) {
    let token = guard.fencing_token();
    match guard
        .guarded_set_data(fence, &token.to_be_bytes(), None)
        .await
    {
        Ok(stat) => shared.writes.lock().unwrap().push(GuardedWrite {
            version: stat.version,
            token,
            participant,
        }),
        Err(Error::LockLost) => shared.note("guarded write refused: lock lost"),
        Err(e) if e.is_retryable() => {
            shared.unknown_writes.fetch_add(1, Ordering::Relaxed);
            shared.note_error("guarded write (outcome unknown)", &e);
        }
        Err(e) => shared.note_error("guarded write", &e),
    }
}

/// Works for a while in steps, stopping early once `lost` resolves.
async fn work(rng: &mut fastrand::Rng, lost: impl std::future::Future<Output = ()>) {
    tokio::pin!(lost);
    for _ in 0..rng.usize(2..6) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(rng.u64(10..50))) => {}
            _ = &mut lost => return,
        }
    }
}

/// A mutex contender, until stopped: acquire; a guarded write of its token; work; a second
/// guarded write (the "commit", which a fault in the middle of the work holds up); release.
async fn mutex_worker(
    shared: Arc<Shared>,
    client: Client,
    path: String,
    fence: String,
    participant: usize,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mutex = InterProcessMutex::new(&client, &path)
        .unwrap()
        .with_id(format!("mutex-{participant}"));
    while !shared.stop.is_cancelled() {
        // `None` when the run stops (the loop's condition ends it) or the acquire failed.
        let Some(guard) = acquire_or_pause(&shared, "mutex acquire", mutex.acquire()).await else {
            continue;
        };
        if guard.is_lost() {
            shared.note("mutex lost before its critical section");
        } else {
            let start = shared.begin(Recipe::Mutex, participant);
            fenced_write(&shared, &guard, &fence, participant).await;
            work(&mut rng, guard.lost()).await;
            if !guard.is_lost() {
                fenced_write(&shared, &guard, &fence, participant).await;
            }
            let end = Instant::now();
            let obeyed = !guard.is_lost();
            shared.finish(Record {
                recipe: Recipe::Mutex,
                participant,
                token: guard.fencing_token(),
                start,
                end,
                obeyed,
                shared: false,
            });
        }
        if let Err(e) = guard.release().await {
            shared.note_error("mutex release", &e);
        }
    }
}

/// A read/write lock participant, until stopped: one time in three the write lock, else the
/// read lock; work; and, half the time after a write, a downgrade and more work under the read
/// hold before its release.
async fn read_write_worker(
    shared: Arc<Shared>,
    client: Client,
    path: String,
    participant: usize,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let lock = InterProcessReadWriteLock::new(&client, &path)
        .unwrap()
        .with_id(format!("read-write-{participant}"));
    while !shared.stop.is_cancelled() {
        let writes = rng.usize(0..3) == 0;
        let half = if writes {
            lock.write_lock()
        } else {
            lock.read_lock()
        };
        // `None` when the run stops (the loop's condition ends it) or the acquire failed.
        let Some(guard) = acquire_or_pause(&shared, "read/write acquire", half.acquire()).await
        else {
            continue;
        };
        let mut downgraded = None;
        if guard.is_lost() {
            shared.note("read/write hold lost before its critical section");
        } else {
            let obeyed = hold(&shared, &guard, participant, &mut rng).await;
            if writes && obeyed && rng.bool() {
                match guard.downgrade().await {
                    Ok(read) => downgraded = Some(read),
                    Err(e) => shared.note_error("downgrade", &e),
                }
            }
        }
        if let Err(e) = guard.release().await {
            shared.note_error("read/write release", &e);
        }
        if let Some(read) = downgraded {
            if read.is_lost() {
                shared.note("downgraded hold lost before its critical section");
            } else {
                hold(&shared, &read, participant, &mut rng).await;
            }
            if let Err(e) = read.release().await {
                shared.note_error("read/write release", &e);
            }
        }
    }
}

/// One critical section of a read/write lock participant under `guard`; whether it obeyed.
async fn hold(
    shared: &Shared,
    guard: &LockGuard,
    participant: usize,
    rng: &mut fastrand::Rng,
) -> bool {
    let start = shared.begin(Recipe::ReadWrite, participant);
    work(rng, guard.lost()).await;
    let end = Instant::now();
    let obeyed = !guard.is_lost();
    shared.finish(Record {
        recipe: Recipe::ReadWrite,
        participant,
        token: guard.fencing_token(),
        start,
        end,
        obeyed,
        shared: guard.mode() == zk_recipes::LockMode::Shared,
    });
    obeyed
}

/// A semaphore participant, until stopped: a lease; work; release.
async fn semaphore_worker(
    shared: Arc<Shared>,
    client: Client,
    path: String,
    participant: usize,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let semaphore = InterProcessSemaphoreV2::new(&client, &path, SEMAPHORE_LEASES as u32)
        .unwrap()
        .with_id(format!("semaphore-{participant}"));
    while !shared.stop.is_cancelled() {
        // `None` when the run stops (the loop's condition ends it) or the acquire failed.
        let Some(lease) = acquire_or_pause(&shared, "semaphore acquire", semaphore.acquire()).await
        else {
            continue;
        };
        if lease.is_lost() {
            shared.note("lease lost before its critical section");
        } else {
            let start = shared.begin(Recipe::Semaphore, participant);
            work(&mut rng, lease.lost()).await;
            let end = Instant::now();
            shared.finish(Record {
                recipe: Recipe::Semaphore,
                participant,
                token: lease.fencing_token(),
                start,
                end,
                obeyed: !lease.is_lost(),
                shared: true,
            });
        }
        if let Err(e) = lease.release().await {
            shared.note_error("semaphore release", &e);
        }
    }
}

/// A selector's listener: work for a while, in steps, stopping once cancelled.
struct SelectorWorker {
    shared: Arc<Shared>,
    participant: usize,
    rng: Mutex<fastrand::Rng>,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for SelectorWorker {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        if leadership.is_cancelled() {
            self.shared
                .note("selector leadership cancelled before its turn");
            return Ok(());
        }
        let token = leadership.fencing_token();
        let start = self.shared.begin(Recipe::Selector, self.participant);
        let mut rng = self.rng.lock().unwrap().fork();
        work(&mut rng, leadership.cancelled()).await;
        let end = Instant::now();
        let obeyed = !leadership.is_cancelled();
        self.shared.finish(Record {
            recipe: Recipe::Selector,
            participant: self.participant,
            token,
            start,
            end,
            obeyed,
            shared: false,
        });
        Ok(())
    }
}

/// The czxid of the latch node if this client's session owns it.
/// The czxid of the latch node if this client's session owns it and it carries `id`: the node
/// of the latch with that id (siblings on one client share the session, not the id).
async fn latch_token(client: &Client, path: &str, id: &str) -> Result<Option<u64>, Error> {
    let session = client.session().id().0;
    Ok(match client.get_data(path).await? {
        Some((data, stat)) if stat.ephemeral_owner == session && data == id.as_bytes() => {
            Some(stat.czxid as u64)
        }
        _ => None,
    })
}

/// A latch candidate: race, lead for a while, close to let the others race; until stopped.
async fn latch_worker(
    shared: Arc<Shared>,
    client: Client,
    path: String,
    participant: usize,
    id: String,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !shared.stop.is_cancelled() {
        let latch = LeaderLatch::new(&client, &path)
            .unwrap()
            .with_id(id.clone());
        if let Err(e) = latch.start().await {
            shared.note_error("latch start", &e);
            pause(&shared.stop, Duration::from_millis(50)).await;
            continue;
        }
        let leading = tokio::select! {
            _ = shared.stop.cancelled() => false,
            led = latch.await_leadership() => led.is_ok(),
        };
        let elected = latch.metrics().elected;
        if leading && latch.is_leader() {
            let start = shared.begin(Recipe::Latch, participant);
            let token = match latch_token(&client, &path, &id).await {
                Ok(token) => token,
                Err(e) => {
                    shared.note_error("latch token read", &e);
                    None
                }
            };
            if token.is_none() && latch.is_leader() && latch.metrics().elected == elected {
                // Still leading, as far as the latch knows, on a node that is not ours: the
                // read is on the same session as the latch's own read, so it is no older.
                shared
                    .violations
                    .lock()
                    .unwrap()
                    .push(format!("{id} leads but the latch node is not its own"));
            }
            let mut changes = latch.leadership_changes();
            let work = tokio::time::sleep(Duration::from_millis(rng.u64(100..300)));
            tokio::pin!(work);
            loop {
                tokio::select! {
                    _ = &mut work => break,
                    change = changes.next() => if change != Some(true) { break },
                }
            }
            let end = Instant::now();
            let obeyed = token.is_some() && latch.is_leader() && latch.metrics().elected == elected;
            shared.finish(Record {
                recipe: Recipe::Latch,
                participant,
                token: token.unwrap_or(0),
                start,
                end,
                obeyed,
                shared: false,
            });
        }
        if let Err(e) = latch.close().await {
            shared.note_error("latch close", &e);
        }
        pause(&shared.stop, Duration::from_millis(rng.u64(0..30))).await;
    }
}

/// How many levels below the cache root the writer goes.
const CACHE_DEPTH: usize = 4;
/// The names the writer uses at every level: `n0`, `n1`, `n2`.
const CACHE_FANOUT: usize = 3;
/// The writer's pause between two writes, in milliseconds.
const CACHE_WRITE_PAUSE: std::ops::Range<u64> = 100..400;
/// Salts the run's seed for the cache group's RNGs (the writer's, and the one that draws the
/// caches a client fault hits).
const CACHE_SEED_SALT: u64 = 0xcac4_e5ee_d000_0000;

/// What a tree is, for comparison: each node's path, `mzxid` and data (`None` for a cache of
/// stats only).
type TreeContents = BTreeMap<String, NodeState>;
type NodeState = (i64, Option<Vec<u8>>);

fn node_state(node: &CachedNode) -> NodeState {
    (node.stat().mzxid, node.data().map(<[u8]>::to_vec))
}

fn contents_of(nodes: &[Arc<CachedNode>]) -> TreeContents {
    nodes
        .iter()
        .map(|node| (node.path().to_owned(), node_state(node)))
        .collect()
}

/// A cache event, as the replay sees it.
#[derive(Debug)]
enum Change {
    Created(String, NodeState),
    Changed(String, NodeState, NodeState),
    Deleted(String, NodeState),
    Initialized,
    /// An event this checker does not know (the enum is non-exhaustive).
    Unknown(String),
}

impl From<&CacheEvent> for Change {
    fn from(event: &CacheEvent) -> Self {
        match event {
            CacheEvent::Created(node) => Change::Created(node.path().to_owned(), node_state(node)),
            CacheEvent::Changed { old, new } => {
                Change::Changed(new.path().to_owned(), node_state(old), node_state(new))
            }
            CacheEvent::Deleted(node) => Change::Deleted(node.path().to_owned(), node_state(node)),
            CacheEvent::Initialized => Change::Initialized,
            other => Change::Unknown(format!("{other:?}")),
        }
    }
}

/// Applies `change` to `replayed`; `Err` for a change that does not fit (the creation of a
/// node held, a change from a state not held, the deletion of a node not held): a phantom.
fn replay_change(replayed: &mut TreeContents, change: Change) -> Result<(), String> {
    let mzxid = |state: &Option<NodeState>| state.as_ref().map(|s| s.0);
    match change {
        Change::Created(path, state) => match replayed.insert(path.clone(), state) {
            None => Ok(()),
            Some(before) => Err(format!("created {path}, held already (mzxid {})", before.0)),
        },
        Change::Changed(path, old, new) => {
            let before = replayed.insert(path.clone(), new);
            if before.as_ref() == Some(&old) {
                Ok(())
            } else {
                Err(format!(
                    "changed {path} from mzxid {}, held at {:?}",
                    old.0,
                    mzxid(&before)
                ))
            }
        }
        Change::Deleted(path, state) => {
            let before = replayed.remove(&path);
            if before.as_ref() == Some(&state) {
                Ok(())
            } else {
                Err(format!(
                    "deleted {path} at mzxid {}, held at {:?}",
                    state.0,
                    mzxid(&before)
                ))
            }
        }
        Change::Initialized => Ok(()),
        Change::Unknown(what) => Err(format!("an event the checker does not know: {what}")),
    }
}

/// How `actual` differs from `expected`: the paths missing from it, extra in it, and held in
/// another state; `None` if they are equal.
fn tree_diff(expected: &TreeContents, actual: &TreeContents) -> Option<String> {
    if expected == actual {
        return None;
    }
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let stale: Vec<String> = actual
        .iter()
        .filter_map(|(k, v)| {
            let e = expected.get(k).filter(|e| *e != v)?;
            Some(format!("{k} (mzxid {} for {})", v.0, e.0))
        })
        .collect();
    Some(format!(
        "missing {missing:?}, extra {extra:?}, stale {stale:?}"
    ))
}

fn join_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The server's tree at `root`, down to `max_depth` levels below it, read in full by
/// `observer` after a `sync` (so no older than any write acknowledged before). Reads again
/// when a read races a delete.
async fn server_tree(
    observer: &Client,
    root: &str,
    max_depth: usize,
    with_data: bool,
) -> Result<TreeContents, Error> {
    if let Ok(zk) = observer.zookeeper() {
        let _ = tokio::time::timeout(Duration::from_secs(2), zk.sync("/")).await;
    }
    'again: loop {
        let mut tree = TreeContents::new();
        let mut level = vec![root.to_owned()];
        for depth in 0..=max_depth {
            if level.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for path in level {
                let Some((data, stat)) = observer.get_data(&path).await? else {
                    if depth == 0 {
                        return Ok(tree);
                    }
                    continue 'again;
                };
                tree.insert(path.clone(), (stat.mzxid, with_data.then_some(data)));
                if depth < max_depth {
                    let Some(children) = observer.children(&path).await? else {
                        continue 'again;
                    };
                    next.extend(children.iter().map(|child| join_path(&path, child)));
                }
            }
            level = next;
        }
        return Ok(tree);
    }
}

/// A cache's events replayed on the snapshot they came with.
#[derive(Default)]
struct Replay {
    contents: TreeContents,
    events: usize,
    initialized: usize,
    phantoms: Vec<String>,
}

/// Replays the events of `cache` as they come, until its stream ends (the cache is closed).
/// After a phantom, the replay starts again from a new subscription.
async fn replay_cache(
    cache: CuratorCache,
    name: String,
    mut events: CacheEvents,
    replay: Arc<Mutex<Replay>>,
) {
    while let Some(event) = events.next().await {
        let mut replay = replay.lock().unwrap();
        replay.events += 1;
        if event == CacheEvent::Initialized {
            replay.initialized += 1;
        }
        if let Err(phantom) = replay_change(&mut replay.contents, Change::from(&event)) {
            tracing::error!(cache = %name, %phantom, "a cache event that does not fit");
            replay.phantoms.push(format!("{name}: {phantom}"));
            let (snapshot, again) = cache.subscribe();
            replay.contents = contents_of(&snapshot);
            events = again;
        }
    }
}

/// One cache of the group, on a participant's client.
struct WatchedCache {
    participant: Participant,
    cache: CuratorCache,
    /// How many levels below its path it holds, and whether with data.
    max_depth: usize,
    with_data: bool,
    replay: Arc<Mutex<Replay>>,
    replayer: Mutex<Option<JoinHandle<()>>>,
}

/// The writer and the caches that follow it.
struct CacheGroup {
    caches: Vec<WatchedCache>,
    /// Held by the writer for each write, and by the check while it runs: the writer's pause.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Draws the caches a client fault hits.
    rng: Mutex<fastrand::Rng>,
    /// Writes the server acknowledged.
    writes: Arc<AtomicUsize>,
    /// Cache checks made, and those that found a divergence.
    checks: AtomicUsize,
    divergences: Mutex<Vec<String>>,
}

impl CacheGroup {
    /// Starts the three caches of `root`, each on a participant of its own.
    async fn start(cluster: &TestingCluster, root: &str, seed: u64) -> CacheGroup {
        let specs = [
            ("cache-tree", root.to_owned(), usize::MAX, true),
            ("cache-stats", root.to_owned(), 3, false),
            ("cache-children", format!("{root}/n0"), 1, true),
        ];
        let mut caches = Vec::new();
        for (name, path, max_depth, with_data) in specs {
            let participant = Participant::connect(name.to_owned(), cluster).await;
            let mut builder = CuratorCache::builder(&participant.client, &path);
            builder = match max_depth {
                1 => builder.children(),
                usize::MAX => builder,
                depth => builder.max_depth(depth),
            };
            if !with_data {
                builder = builder.stat_only();
            }
            let cache = builder.build().expect("build a cache");
            // Subscribed before the start: the replay sees the first load too.
            let (snapshot, events) = cache.subscribe();
            let replay = Arc::new(Mutex::new(Replay {
                contents: contents_of(&snapshot),
                ..Replay::default()
            }));
            let replayer = tokio::spawn(replay_cache(
                cache.clone(),
                name.to_owned(),
                events,
                replay.clone(),
            ));
            cache.start().await.expect("start a cache");
            caches.push(WatchedCache {
                participant,
                cache,
                max_depth,
                with_data,
                replay,
                replayer: Mutex::new(Some(replayer)),
            });
        }
        CacheGroup {
            caches,
            gate: Arc::new(tokio::sync::Mutex::new(())),
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ CACHE_SEED_SALT)),
            writes: Arc::new(AtomicUsize::new(0)),
            checks: AtomicUsize::new(0),
            divergences: Mutex::new(Vec::new()),
        }
    }

    /// The caches' participants a client fault hits: each with a chance of two in three, at
    /// least one.
    fn targets(&self) -> Vec<&Participant> {
        let mut rng = self.rng.lock().unwrap();
        let mut hit: Vec<&Participant> = self
            .caches
            .iter()
            .filter(|_| rng.usize(0..3) != 0)
            .map(|c| &c.participant)
            .collect();
        if hit.is_empty() {
            hit.push(&self.caches[rng.usize(0..self.caches.len())].participant);
        }
        hit
    }

    /// How many times each cache has loaded its tree (its `Initialized` events so far).
    fn loads(&self) -> Vec<usize> {
        self.caches
            .iter()
            .map(|c| c.replay.lock().unwrap().initialized)
            .collect()
    }

    /// The caches that a fault described by `what` hit with a disconnection or a new session
    /// (a cut, a blackhole, an expiry: each names its targets), with their loads before it:
    /// each must load its tree again before it counts as converged, so that the check sees
    /// the cache after its resynchronisation, not before it noticed the fault.
    fn reloads(&self, kind: FaultKind, what: &str, loads: &[usize]) -> Vec<(usize, usize)> {
        if !matches!(
            kind,
            FaultKind::Cut | FaultKind::Blackhole | FaultKind::Expire
        ) {
            return Vec::new();
        }
        self.caches
            .iter()
            .enumerate()
            .filter(|(_, c)| what.contains(c.participant.name.as_str()))
            .map(|(i, _)| (i, loads[i]))
            .collect()
    }

    /// Pauses the writer, then waits until every cache holds the server's tree, its replay
    /// equals its contents, it is synced and, for those in `reload` (index, loads before the
    /// fault), it has loaded its tree again, within `bound` of `healed`; then resumes the
    /// writer. How long the caches took, or what diverged.
    async fn check(
        &self,
        observer: &Client,
        healed: Instant,
        bound: Duration,
        when: &str,
        reload: &[(usize, usize)],
    ) -> Result<Duration, String> {
        let deadline = healed + bound;
        let _paused = self.gate.lock().await;
        let mut diverged = Vec::new();
        for (i, c) in self.caches.iter().enumerate() {
            self.checks.fetch_add(1, Ordering::Relaxed);
            let loads_before = reload.iter().find(|(r, _)| *r == i).map(|(_, n)| *n);
            loop {
                let server = server_tree(observer, c.cache.path(), c.max_depth, c.with_data).await;
                let cached = contents_of(&c.cache.snapshot());
                let (replayed, loads) = {
                    let replay = c.replay.lock().unwrap();
                    (replay.contents.clone(), replay.initialized)
                };
                let reloaded = loads_before.is_none_or(|before| loads > before);
                let state = c.cache.state();
                let against_server = match &server {
                    Ok(server) => tree_diff(server, &cached),
                    Err(e) => Some(format!("the server's tree could not be read: {e}")),
                };
                let against_replay = tree_diff(&cached, &replayed);
                if against_server.is_none()
                    && against_replay.is_none()
                    && state == CacheState::Synced
                    && reloaded
                {
                    break;
                }
                if Instant::now() >= deadline {
                    diverged.push(format!(
                        "{} {when}: not converged within {bound:?} of the heal (state \
                         {state:?}; {} nodes held; {}); against the server: {}; replay against \
                         the cache: {}",
                        c.participant.name,
                        cached.len(),
                        if reloaded {
                            "loaded again".to_owned()
                        } else {
                            format!("no new load since the fault: {loads} loads")
                        },
                        against_server.as_deref().unwrap_or("equal"),
                        against_replay.as_deref().unwrap_or("equal"),
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if diverged.is_empty() {
            Ok(healed.elapsed())
        } else {
            let summary = diverged.join("; ");
            self.divergences.lock().unwrap().extend(diverged);
            Err(summary)
        }
    }

    /// Closes the caches and joins their replays; what failed.
    async fn close(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for c in &self.caches {
            if tokio::time::timeout(JOIN_DEADLINE, c.cache.close())
                .await
                .is_err()
            {
                failures.push(format!(
                    "{} did not close in {JOIN_DEADLINE:?}",
                    c.participant.name
                ));
            }
            let replayer = c.replayer.lock().unwrap().take();
            if let Some(replayer) = replayer {
                match tokio::time::timeout(JOIN_DEADLINE, replayer).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        failures.push(format!("{} replay failed: {e}", c.participant.name))
                    }
                    Err(_) => failures.push(format!(
                        "{} replay still running after {JOIN_DEADLINE:?}",
                        c.participant.name
                    )),
                }
            }
        }
        failures
    }

    /// The phantoms every replay found.
    fn phantoms(&self) -> Vec<String> {
        self.caches
            .iter()
            .flat_map(|c| c.replay.lock().unwrap().phantoms.clone())
            .collect()
    }
}

/// The cache group's writer, until stopped: a seeded stream of creates, setDatas and deletes
/// under `root`, each made while holding `gate` (the check's pause).
async fn cache_writer(
    shared: Arc<Shared>,
    client: Client,
    root: String,
    gate: Arc<tokio::sync::Mutex<()>>,
    writes: Arc<AtomicUsize>,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ CACHE_SEED_SALT);
    let is = |e: &Error, code: zookeeper_client::Error| e.as_zookeeper() == Some(&code);
    let mut n = 0u64;
    while !shared.stop.is_cancelled() {
        pause(
            &shared.stop,
            Duration::from_millis(rng.u64(CACHE_WRITE_PAUSE)),
        )
        .await;
        let _turn = tokio::select! {
            _ = shared.stop.cancelled() => break,
            turn = gate.lock() => turn,
        };
        n += 1;
        let op = rng.usize(0..10);
        // A setData may hit the root itself; creates and deletes go below it.
        let depth = rng.usize(if (4..7).contains(&op) { 0 } else { 1 }..=CACHE_DEPTH);
        let mut path = root.clone();
        for _ in 0..depth {
            path = format!("{path}/n{}", rng.usize(0..CACHE_FANOUT));
        }
        let data = format!("{n}:{}", rng.u32(..));
        let done = match op {
            0..=3 => match client
                .create(&path, data.as_bytes(), CreateMode::Persistent, &[])
                .await
            {
                Ok(_) => true,
                Err(e) if is(&e, zookeeper_client::Error::NodeExists) => false,
                Err(e) => {
                    shared.note_error("cache writer create", &e);
                    false
                }
            },
            4..=6 => match client.set_data(&path, data.as_bytes(), None).await {
                Ok(_) => true,
                Err(e) if is(&e, zookeeper_client::Error::NoNode) => false,
                Err(e) => {
                    shared.note_error("cache writer setData", &e);
                    false
                }
            },
            _ => match client.delete(&path, None).await {
                Ok(deleted) => deleted,
                Err(e) if is(&e, zookeeper_client::Error::NotEmpty) => {
                    if rng.usize(0..3) == 0 {
                        delete_tree(&client, &path).await;
                        shared.note("cache writer: a subtree deleted");
                        true
                    } else {
                        false
                    }
                }
                Err(e) => {
                    shared.note_error("cache writer delete", &e);
                    false
                }
            },
        };
        if done {
            writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The member serving `session` (found with `cons`), so that the expiry goes through the server
/// the owner is connected to: that server drops the owner's connection before it reopens the
/// session, as a real expiry is preceded by the owner's silence.
async fn serving_member(cluster: &TestingCluster, session: i64) -> Option<String> {
    let sid = format!("sid=0x{:x}", session as u64);
    for member in 0..cluster.len() {
        let address = cluster.server_connect_string(member).ok()?;
        if let Ok(connections) = four_letter_word(&address, "cons", Duration::from_secs(2)).await {
            let found = connections
                .lines()
                .any(|line| line.split([',', '(', ')']).any(|field| field == sid));
            if found {
                return Some(address);
            }
        }
    }
    None
}

/// The index of the ensemble's leader, once there is one.
async fn ensemble_leader(cluster: &TestingCluster) -> Option<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(leader)) = cluster.leader_index().await {
            return Some(leader);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

struct Chaos {
    cluster: Arc<TestingCluster>,
    participants: Vec<Participant>,
    shared: Arc<Shared>,
    /// An operator's client, for the state faults.
    operator: Client,
    /// The queue paths of the mutex, the selector and the read/write lock, and the semaphore's
    /// leases.
    queues: [String; 4],
    /// The cache group: its caches are targets of the client faults too.
    caches: CacheGroup,
    /// The node group: its participants are targets of the client faults, and its nodes of
    /// the state faults.
    nodes: Arc<nodes::NodeGroup>,
    /// The counter group: its participants are targets of the client faults.
    counters: counters::CounterGroup,
}

/// The lock nodes of `queue` in queue order (full paths): a mutex's and a selector's, a
/// read/write lock's, or a semaphore's leases.
async fn queue_nodes(client: &Client, queue: &str) -> Result<Vec<String>, Error> {
    let mut nodes: Vec<String> = client
        .children(queue)
        .await?
        .unwrap_or_default()
        .into_iter()
        .filter(|name| {
            ["lock-", "__READ__", "__WRIT__"]
                .iter()
                .any(|n| name.contains(n))
        })
        .collect();
    common::sort_by_sequence(&mut nodes);
    Ok(nodes.into_iter().map(|n| format!("{queue}/{n}")).collect())
}

/// Deletes every node of `queue`, then the queue's parent node, and creates it again (a
/// container, as the recipes make it). Participants keep creating nodes meanwhile, so the
/// parent's delete is tried until it is empty at that moment.
async fn recreate_parent(client: &Client, queue: &str) -> Result<usize, String> {
    let mut deleted = 0;
    for _ in 0..100 {
        let children = client
            .children(queue)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        for child in children {
            if let Ok(true) = client.delete(&format!("{queue}/{child}"), None).await {
                deleted += 1;
            }
        }
        match client.delete(queue, None).await {
            Ok(_) => {
                client
                    .ensure_path(queue, true)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(deleted);
            }
            Err(e) if e.as_zookeeper() == Some(&zookeeper_client::Error::NotEmpty) => continue,
            Err(e) => return Err(format!("deleting {queue}: {e}")),
        }
    }
    Err(format!("{queue} never stayed empty long enough to delete"))
}

impl Chaos {
    /// For each recipe, its current holder, or one of its participants at random, and some of
    /// the caches' participants: the targets of a client fault, which hits them all at once.
    fn targets(&self, rng: &mut fastrand::Rng) -> Vec<&Participant> {
        let holders = *self.shared.holders.lock().unwrap();
        let mut targets: Vec<&Participant> = Recipe::ALL
            .into_iter()
            .map(|recipe| {
                let drawn = recipe.participants().start + rng.usize(0..PER_RECIPE);
                &self.participants[holders[recipe.index()].unwrap_or(drawn)]
            })
            .collect();
        targets.extend(self.caches.targets());
        targets.extend(self.nodes.targets());
        targets.extend(self.counters.targets());
        targets
    }

    /// Injects one fault and heals it. `Err` if it could not be injected (nothing was done).
    async fn inject(&self, kind: FaultKind, rng: &mut fastrand::Rng) -> Result<String, String> {
        let names = |targets: &[&Participant]| {
            targets
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match kind {
            FaultKind::Cut => {
                let targets = self.targets(rng);
                let outage = Duration::from_millis(rng.u64(1000..3000));
                targets.iter().for_each(|p| p.cut());
                tokio::time::sleep(outage).await;
                targets.iter().for_each(|p| p.restore());
                Ok(format!("cut {} for {outage:?}", names(&targets)))
            }
            FaultKind::Blackhole => {
                let targets = self.targets(rng);
                let outage = SESSION_TIMEOUT + Duration::from_millis(rng.u64(1000..2500));
                targets.iter().for_each(|p| p.blackhole());
                tokio::time::sleep(outage).await;
                targets.iter().for_each(|p| p.restore());
                Ok(format!("blackholed {} for {outage:?}", names(&targets)))
            }
            FaultKind::Delay => {
                let targets = self.targets(rng);
                let delay = Duration::from_millis(rng.u64(100..400));
                let outage = Duration::from_millis(rng.u64(2000..4000));
                targets.iter().for_each(|p| p.delay(delay));
                tokio::time::sleep(outage).await;
                targets.iter().for_each(|p| p.restore());
                Ok(format!(
                    "delayed {} by {delay:?} for {outage:?}",
                    names(&targets)
                ))
            }
            FaultKind::Expire => {
                let targets: Vec<(&Participant, _)> = self
                    .targets(rng)
                    .into_iter()
                    .filter_map(|p| Some((p, p.client.zookeeper().ok()?.session().clone())))
                    .collect();
                if targets.is_empty() {
                    return Err("no target has a session".into());
                }
                let mut servers = Vec::new();
                for (_, info) in &targets {
                    servers.push(
                        serving_member(&self.cluster, info.id().0)
                            .await
                            .unwrap_or_else(|| self.cluster.connect_string()),
                    );
                }
                let expiries = targets
                    .iter()
                    .zip(&servers)
                    .map(|((p, info), server)| async move {
                        match tokio::time::timeout(
                            Duration::from_secs(40),
                            expire_session(server, info),
                        )
                        .await
                        {
                            Ok(Ok(())) => Ok(p.name.clone()),
                            Ok(Err(e)) => Err(format!("expiring the session of {}: {e}", p.name)),
                            Err(_) => Err(format!("expiring the session of {} timed out", p.name)),
                        }
                    });
                let outcomes = futures::future::join_all(expiries).await;
                let expired: Vec<String> = outcomes.iter().filter_map(|o| o.clone().ok()).collect();
                if expired.is_empty() {
                    return Err(format!("{outcomes:?}"));
                }
                Ok(format!("expired the sessions of {}", expired.join(", ")))
            }
            FaultKind::KillFollower | FaultKind::KillLeader => {
                let Some(leader) = ensemble_leader(&self.cluster).await else {
                    return Err("no ensemble leader".into());
                };
                let victim = if kind == FaultKind::KillLeader {
                    leader
                } else {
                    let others: Vec<usize> =
                        (0..self.cluster.len()).filter(|&m| m != leader).collect();
                    others[rng.usize(0..others.len())]
                };
                let down = Duration::from_millis(rng.u64(1000..2500));
                self.cluster.kill(victim).await.expect("kill a member");
                tokio::time::sleep(down).await;
                self.cluster.restart(victim).await.unwrap_or_else(|e| {
                    panic!("restarting member {victim}: {e}");
                });
                let role = if victim == leader {
                    "leader"
                } else {
                    "follower"
                };
                Ok(format!(
                    "killed member {victim} ({role}), restarted after {down:?}"
                ))
            }
            FaultKind::DeleteWaiter | FaultKind::DeleteHolder => {
                let mut deleted = Vec::new();
                for queue in &self.queues {
                    let nodes = queue_nodes(&self.operator, queue)
                        .await
                        .map_err(|e| e.to_string())?;
                    let victim = match kind {
                        FaultKind::DeleteHolder => nodes.first(),
                        _ if nodes.len() > 1 => nodes.get(rng.usize(1..nodes.len())),
                        _ => None,
                    };
                    if let Some(victim) = victim {
                        if let Ok(true) = self.operator.delete(victim, None).await {
                            deleted.push(victim.rsplit('/').next().unwrap_or_default().to_owned());
                        }
                    }
                }
                if let Some(path) = self.nodes.delete_one(&self.operator, false).await {
                    deleted.push(format!("kept node {path}"));
                }
                if deleted.is_empty() {
                    return Err("no node to delete".into());
                }
                let what = if kind == FaultKind::DeleteHolder {
                    "holder"
                } else {
                    "waiter"
                };
                Ok(format!("deleted the {what} nodes {}", deleted.join(", ")))
            }
            FaultKind::RecreateParent => {
                let queue = &self.queues[rng.usize(0..self.queues.len())];
                let deleted = recreate_parent(&self.operator, queue).await?;
                let kept = match self.nodes.delete_one(&self.operator, true).await {
                    Some(path) => format!("; deleted the kept node {path}"),
                    None => String::new(),
                };
                Ok(format!(
                    "deleted {queue} with its {deleted} nodes and created it again{kept}"
                ))
            }
        }
    }

    /// Waits until every recipe has made an acquisition after `since` (counts per recipe).
    async fn progress(&self, since: [u64; RECIPES], bound: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let mut acquired = self.shared.acquired.subscribe();
        let resumed = tokio::time::timeout(
            bound,
            acquired.wait_for(|now| (0..RECIPES).all(|r| now[r] > since[r])),
        )
        .await
        .is_ok();
        if resumed {
            return Ok(started.elapsed());
        }
        let now = *acquired.borrow();
        let stalled: Vec<Recipe> = Recipe::ALL
            .into_iter()
            .filter(|r| now[r.index()] <= since[r.index()])
            .collect();
        Err(format!("no acquisition within {bound:?} for {stalled:?}"))
    }
}

/// Overlaps of obeying intervals (other than of two read holds), and fencing tokens out of
/// order, per recipe.
fn interval_violations(history: &[Record], shared: &Shared) -> Vec<String> {
    let mut violations = Vec::new();
    for recipe in Recipe::ALL {
        let mut obeyed: Vec<&Record> = history
            .iter()
            .filter(|r| r.recipe == recipe && r.obeyed)
            .collect();
        obeyed.sort_by_key(|r| r.start);
        // The intervals still running when the next one starts.
        let mut running: Vec<&Record> = Vec::new();
        for r in &obeyed {
            running.retain(|other| other.end > r.start);
            if recipe == Recipe::Semaphore && running.len() >= SEMAPHORE_LEASES {
                violations.push(format!(
                    "{recipe:?}: participant {} took a lease at {:.3}s while {} of {} were held",
                    r.participant,
                    shared.at(r.start),
                    running.len(),
                    SEMAPHORE_LEASES
                ));
            }
            for other in running.iter().filter(|other| !(r.shared && other.shared)) {
                violations.push(format!(
                    "{recipe:?}: participant {} (token {}{}) started at {:.3}s while \
                     participant {} (token {}{}) held until {:.3}s",
                    r.participant,
                    r.token,
                    if r.shared { ", reading" } else { "" },
                    shared.at(r.start),
                    other.participant,
                    other.token,
                    if other.shared { ", reading" } else { "" },
                    shared.at(other.end)
                ));
            }
            running.push(r);
        }
        // Tokens rise from exclusive hold to exclusive hold. (Read holds share the lock, and a
        // downgrade's read node is made after a writer that queued behind its write node.)
        let mut previous: Option<&Record> = None;
        for r in obeyed.iter().filter(|r| !r.shared) {
            if let Some(p) = previous {
                let same_hold = r.token == p.token && r.participant == p.participant;
                if r.token < p.token || (r.token == p.token && !same_hold) {
                    violations.push(format!(
                        "{recipe:?}: token {} of participant {} at {:.3}s follows token {} of \
                         participant {}",
                        r.token,
                        r.participant,
                        shared.at(r.start),
                        p.token,
                        p.participant
                    ));
                }
            }
            previous = Some(r);
        }
    }
    violations
}

/// Acknowledged guarded writes whose token is lower than that of an earlier version.
fn stale_writes(writes: &[GuardedWrite]) -> Vec<String> {
    let mut writes = writes.to_vec();
    writes.sort_by_key(|w| w.version);
    let mut stale = Vec::new();
    let mut highest: Option<GuardedWrite> = None;
    for w in writes {
        if let Some(h) = highest {
            if w.version == h.version {
                stale.push(format!(
                    "two writes acknowledged with version {}",
                    w.version
                ));
            } else if w.token < h.token {
                stale.push(format!(
                    "version {} has token {} (participant {}), after version {} with token {} \
                     (participant {})",
                    w.version, w.token, w.participant, h.version, h.token, h.participant
                ));
            }
        }
        if highest.is_none_or(|h| w.token >= h.token) {
            highest = Some(w);
        }
    }
    stale
}

/// The nodes left under the recipe paths.
async fn remaining_nodes(client: &Client, parents: &[&str], latch: &str) -> Vec<String> {
    let mut left = Vec::new();
    for parent in parents {
        match client.children(parent).await {
            Ok(children) => left.extend(
                children
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| format!("{parent}/{c}")),
            ),
            Err(e) => left.push(format!("{parent}: cannot list: {e}")),
        }
    }
    match client.exists(latch).await {
        Ok(None) => {}
        Ok(Some(_)) => left.push(latch.to_owned()),
        Err(e) => left.push(format!("{latch}: cannot read: {e}")),
    }
    left
}

/// Waits until no node is left under the recipe paths, for at most `deadline`; what is left.
async fn wait_clean(
    client: &Client,
    parents: &[&str],
    latch: &str,
    deadline: Duration,
) -> Vec<String> {
    let until = Instant::now() + deadline;
    loop {
        let left = remaining_nodes(client, parents, latch).await;
        if left.is_empty() || Instant::now() >= until {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes `path` and everything under it (test clean-up; errors are ignored).
async fn delete_tree(client: &Client, path: &str) {
    let mut stack = vec![path.to_owned()];
    let mut order = Vec::new();
    while let Some(p) = stack.pop() {
        if let Ok(Some(children)) = client.children(&p).await {
            stack.extend(children.into_iter().map(|c| format!("{p}/{c}")));
        }
        order.push(p);
    }
    for p in order.into_iter().rev() {
        let _ = client.delete(&p, None).await;
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

struct FaultLog {
    at: f64,
    kind: FaultKind,
    what: String,
    resumed: Result<Duration, String>,
    /// How long after the heal the caches had converged, or what diverged.
    caches: Result<Duration, String>,
    /// How long after the heal every kept node was back with its latest data, or what was not.
    nodes: Result<Duration, String>,
}

impl fmt::Display for FaultLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:7.2}s {:?}: {}", self.at, self.kind, self.what)?;
        match &self.resumed {
            Ok(took) => write!(f, "; resumed in {:.2}s", took.as_secs_f64())?,
            Err(why) => write!(f, "; NO PROGRESS: {why}")?,
        }
        match &self.caches {
            Ok(took) => write!(f, "; caches converged in {:.2}s", took.as_secs_f64())?,
            Err(why) => write!(f, "; CACHES DIVERGED: {why}")?,
        }
        match &self.nodes {
            Ok(took) => write!(f, "; nodes kept in {:.2}s", took.as_secs_f64()),
            Err(why) => write!(f, "; NODES NOT KEPT: {why}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_stay_exclusive_and_live_under_faults() {
    init_tracing();
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| fastrand::u64(..));
    let secs = env_u64("CHAOS_SECS").unwrap_or(DEFAULT_SECS);
    announce(&format!(
        "chaos start: seed={seed} secs={secs} (CHAOS_SEED={seed} replays this schedule)"
    ));
    let mut rng = fastrand::Rng::with_seed(seed);

    let cluster = Arc::new(TestingCluster::start(3).await.expect("start the ensemble"));
    let base = format!("/zkr-chaos-{}", uuid::Uuid::new_v4().simple());
    let mutex_path = format!("{base}/mutex");
    let selector_path = format!("{base}/selector");
    let latch_path = format!("{base}/latch/leader");
    let read_write_path = format!("{base}/read-write");
    let semaphore_path = format!("{base}/semaphore");
    let fence = format!("{base}/fence");
    let cache_root = format!("{base}/cache");

    let observer = Client::builder(cluster.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connection_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect the observer");
    observer.ensure_path(&fence, false).await.unwrap();
    observer.ensure_path(&cache_root, false).await.unwrap();

    let shared = Arc::new(Shared::new());
    let mut participants = Vec::new();
    for p in 0..RECIPES * PER_RECIPE {
        participants.push(Participant::connect(format!("participant-{p}"), &cluster).await);
    }

    let mut tasks: Vec<(String, JoinHandle<()>)> = Vec::new();
    for p in Recipe::Mutex.participants() {
        let task = tokio::spawn(mutex_worker(
            shared.clone(),
            participants[p].client.clone(),
            mutex_path.clone(),
            fence.clone(),
            p,
            seed.wrapping_add(p as u64),
        ));
        tasks.push((format!("mutex worker {p}"), task));
    }
    let mut selectors = Vec::new();
    for p in Recipe::Selector.participants() {
        let worker = SelectorWorker {
            shared: shared.clone(),
            participant: p,
            rng: Mutex::new(fastrand::Rng::with_seed(seed.wrapping_add(p as u64))),
        };
        let notes = shared.clone();
        let selector = LeaderSelector::new(&participants[p].client, &selector_path, worker)
            .unwrap()
            .with_id(format!("selector-{p}"))
            .auto_requeue(true)
            .on_error(move |e| notes.note(format!("selector error: {e}")));
        selector.start().unwrap();
        selectors.push(selector);
    }
    for p in Recipe::Latch.participants() {
        // The first latch participant's client runs two latches, siblings on one session.
        let ids = if p == Recipe::Latch.participants().start {
            vec![format!("latch-{p}"), format!("latch-{p}-sibling")]
        } else {
            vec![format!("latch-{p}")]
        };
        for (i, id) in ids.into_iter().enumerate() {
            let task = tokio::spawn(latch_worker(
                shared.clone(),
                participants[p].client.clone(),
                latch_path.clone(),
                p,
                id,
                seed.wrapping_add(p as u64).wrapping_add(i as u64 * 1000),
            ));
            tasks.push((format!("latch worker {p}.{i}"), task));
        }
    }

    for p in Recipe::ReadWrite.participants() {
        let task = tokio::spawn(read_write_worker(
            shared.clone(),
            participants[p].client.clone(),
            read_write_path.clone(),
            p,
            seed.wrapping_add(p as u64),
        ));
        tasks.push((format!("read/write worker {p}"), task));
    }
    for p in Recipe::Semaphore.participants() {
        let task = tokio::spawn(semaphore_worker(
            shared.clone(),
            participants[p].client.clone(),
            semaphore_path.clone(),
            p,
            seed.wrapping_add(p as u64),
        ));
        tasks.push((format!("semaphore worker {p}"), task));
    }

    // The cache group: the caches first (their first load sees the writer's first writes or
    // not), then the writer, straight to the ensemble.
    let caches = CacheGroup::start(&cluster, &cache_root, seed).await;
    let cache_writer_client = Client::builder(cluster.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connection_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect the cache writer");
    tasks.push((
        "cache writer".to_owned(),
        tokio::spawn(cache_writer(
            shared.clone(),
            cache_writer_client.clone(),
            cache_root.clone(),
            caches.gate.clone(),
            caches.writes.clone(),
            seed,
        )),
    ));

    // The node group: its nodes and members, then its updater.
    let nodes = Arc::new(nodes::NodeGroup::start(&cluster, &format!("{base}/nodes"), seed).await);
    let node_updater = nodes.spawn_updater(shared.stop.clone(), seed);
    // The counter group: three sessions incrementing one counter.
    let counter_group =
        counters::CounterGroup::start(&cluster, &format!("{base}/counter"), seed).await;
    tasks.extend(counter_group.spawn_workers(shared.stop.clone()));

    let chaos = Chaos {
        cluster: cluster.clone(),
        participants,
        shared: shared.clone(),
        operator: observer.clone(),
        queues: [
            mutex_path.clone(),
            selector_path.clone(),
            read_write_path.clone(),
            format!("{semaphore_path}/leases"),
        ],
        caches,
        nodes,
        counters: counter_group,
    };
    let warmed = Instant::now();
    let (progress, cache_warm_up, nodes_warm_up) = tokio::join!(
        chaos.progress([0; RECIPES], WARM_UP_BOUND),
        chaos
            .caches
            .check(&observer, warmed, WARM_UP_BOUND, "once warmed up", &[]),
        chaos
            .nodes
            .check(&observer, warmed, WARM_UP_BOUND, "once warmed up"),
    );
    if let Err(e) = progress {
        panic!("warm-up: {e}");
    }
    if let Err(e) = &cache_warm_up {
        tracing::error!("warm-up: the caches diverged: {e}");
    }
    if let Err(e) = &nodes_warm_up {
        tracing::error!("warm-up: the nodes were not kept: {e}");
    }

    // The schedule: one fault at a time, each healed, a few seconds apart; the first nine are
    // the nine kinds in a shuffled order.
    let schedule_started = Instant::now();
    let budget = Duration::from_secs(secs);
    let mut pending: Vec<FaultKind> = Vec::new();
    let mut log: Vec<FaultLog> = Vec::new();
    let mut kinds: BTreeSet<FaultKind> = BTreeSet::new();
    loop {
        let elapsed = schedule_started.elapsed();
        let kinds_missing = secs >= DEFAULT_SECS && kinds.len() < KINDS.len();
        if (elapsed >= budget && !kinds_missing) || elapsed >= budget + OVERRUN {
            break;
        }
        if pending.is_empty() {
            pending = KINDS.to_vec();
            rng.shuffle(&mut pending);
        }
        let kind = pending.remove(0);
        tokio::time::sleep(Duration::from_millis(rng.u64(1000..2500))).await;
        let at = shared.at(Instant::now());
        let loads = chaos.caches.loads();
        match chaos.inject(kind, &mut rng).await {
            Ok(what) => {
                let healed = Instant::now();
                let reload = chaos.caches.reloads(kind, &what, &loads);
                let since = *shared.acquired.borrow();
                kinds.insert(kind);
                let when = format!("after {kind:?} at {at:.2}s");
                let (resumed, caches, nodes) = tokio::join!(
                    chaos.progress(since, PROGRESS_BOUND),
                    chaos
                        .caches
                        .check(&observer, healed, PROGRESS_BOUND, &when, &reload),
                    chaos.nodes.check(&observer, healed, PROGRESS_BOUND, &when),
                );
                let entry = FaultLog {
                    at,
                    kind,
                    what,
                    resumed,
                    caches,
                    nodes,
                };
                tracing::info!("chaos fault {entry}");
                log.push(entry);
            }
            Err(why) => {
                tracing::warn!(?kind, %why, "fault not injected; it goes back in the schedule");
                shared.note(format!("fault not injected: {kind:?}"));
                pending.push(kind);
            }
        }
    }
    let run_secs = schedule_started.elapsed().as_secs();

    // Stop: the workers finish their critical sections and leave; the selectors close.
    shared.stop.cancel();
    let mut failures: Vec<String> = Vec::new();
    for (i, selector) in selectors.iter().enumerate() {
        match tokio::time::timeout(JOIN_DEADLINE, selector.close()).await {
            Ok(Ok(())) => {}
            // Every fault is healed by now: the final release must succeed.
            Ok(Err(e)) => failures.push(format!("selector {i} closed with {e:?}")),
            Err(_) => failures.push(format!("selector {i} did not close in {JOIN_DEADLINE:?}")),
        }
    }
    failures.extend(chaos.caches.close().await);
    if tokio::time::timeout(JOIN_DEADLINE, node_updater)
        .await
        .is_err()
    {
        failures.push("the node updater did not end".to_owned());
    }
    failures.extend(chaos.nodes.close(JOIN_DEADLINE).await);
    // A closed node deletes its node before its close returns.
    let nodes_left = chaos.nodes.leftovers(&observer).await;
    let join_deadline = Instant::now() + JOIN_DEADLINE;
    for (name, task) in tasks {
        match tokio::time::timeout_at(join_deadline.into(), task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{name} failed: {e}")),
            Err(_) => failures.push(format!("{name} still running after {JOIN_DEADLINE:?}")),
        }
    }

    // Clean close: first with every recipe closed but the clients open (the recipes delete
    // their own nodes), then with the clients closed, through a fresh client.
    let semaphore_locks = format!("{semaphore_path}/locks");
    let semaphore_leases = format!("{semaphore_path}/leases");
    let parents = [
        mutex_path.as_str(),
        selector_path.as_str(),
        read_write_path.as_str(),
        semaphore_locks.as_str(),
        semaphore_leases.as_str(),
    ];
    let mut leaked = wait_clean(&observer, &parents, &latch_path, LEAK_DEADLINE).await;
    for p in &chaos.participants {
        p.client.close().await;
    }
    for c in &chaos.caches.caches {
        c.participant.client.close().await;
    }
    // Every task has ended: the counter's tally is final.
    let (counter_violations, counter_successes, counter_unknown) =
        chaos.counters.check(&observer).await;
    for k in &chaos.nodes.kept {
        k.participant.client.close().await;
    }
    for p in &chaos.counters.participants {
        p.client.close().await;
    }
    cache_writer_client.close().await;
    let checker = Client::builder(cluster.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connection_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect the checker");
    leaked.extend(wait_clean(&checker, &parents, &latch_path, LEAK_DEADLINE).await);

    let history = shared.history.lock().unwrap().clone();
    let writes = shared.writes.lock().unwrap().clone();
    let mut violations = interval_violations(&history, &shared);
    violations.extend(shared.violations.lock().unwrap().iter().cloned());
    let stale = stale_writes(&writes);
    let progress_failures: Vec<&FaultLog> = log.iter().filter(|f| f.resumed.is_err()).collect();
    let acquisitions: u64 = shared.acquired.borrow().iter().sum();
    let obeyed: Vec<usize> = Recipe::ALL
        .iter()
        .map(|&r| history.iter().filter(|h| h.recipe == r && h.obeyed).count())
        .collect();
    leaked.extend(nodes_left);
    leaked.extend(chaos.nodes.leftovers(&checker).await);
    let mut node_violations = chaos.nodes.divergences.lock().unwrap().clone();
    node_violations.extend(chaos.nodes.lifecycle_errors());
    let node_checks = chaos.nodes.checks.load(Ordering::Relaxed);
    let node_updates = chaos.nodes.updates.load(Ordering::Relaxed);
    let mut cache_violations = chaos.caches.divergences.lock().unwrap().clone();
    cache_violations.extend(chaos.caches.phantoms());
    let cache_checks = chaos.caches.checks.load(Ordering::Relaxed);
    let cache_writes = chaos.caches.writes.load(Ordering::Relaxed);
    // Per cache: its events replayed, and its Initialized events (one per load).
    let cache_events: Vec<(String, usize, usize)> = chaos
        .caches
        .caches
        .iter()
        .map(|c| {
            let replay = c.replay.lock().unwrap();
            (
                c.participant.name.clone(),
                replay.events,
                replay.initialized,
            )
        })
        .collect();
    let max_converge = log
        .iter()
        .filter_map(|f| f.caches.as_ref().ok())
        .max()
        .copied()
        .unwrap_or_default();

    delete_tree(&checker, &base).await;
    checker.close().await;
    observer.close().await;

    let problems = !violations.is_empty()
        || !stale.is_empty()
        || !leaked.is_empty()
        || !progress_failures.is_empty()
        || !failures.is_empty()
        || !cache_violations.is_empty()
        || !node_violations.is_empty()
        || !counter_violations.is_empty();
    let max_resume = log
        .iter()
        .filter_map(|f| f.resumed.as_ref().ok())
        .max()
        .copied()
        .unwrap_or_default();
    let diagnostics = format!(
        "faults:\n{}\nobeying intervals per recipe {obeyed:?}; acknowledged guarded writes {}; \
         unknown outcome {}; slowest resumption {:.2}s\ncache writes acknowledged {cache_writes}; \
         events replayed and loads per cache {cache_events:?}; slowest cache convergence \
         {:.2}s\nnotes: {:#?}\nviolations: {violations:#?}\nstale writes: {stale:#?}\n\
         leaked: {leaked:#?}\ncache violations: {cache_violations:#?}\n\
         node updates {node_updates}; node violations: {node_violations:#?}\n\
         counter: {counter_successes} successes, {counter_unknown} of unknown outcome; \
         violations: {counter_violations:#?}\n\
         task failures: {failures:#?}",
        log.iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n"),
        writes.len(),
        shared.unknown_writes.load(Ordering::Relaxed),
        max_resume.as_secs_f64(),
        max_converge.as_secs_f64(),
        shared.notes.lock().unwrap(),
    );
    if problems || std::env::var_os("CHAOS_VERBOSE").is_some() {
        eprintln!("{diagnostics}");
    }
    announce(&format!(
        "chaos: seed={seed} secs={run_secs} acquisitions={acquisitions} faults={} kinds={} \
         violations={} stale_writes={} leaked={} cache_checks={cache_checks} \
         cache_violations={} node_checks={node_checks} node_violations={} \
         counter_increments={counter_successes} counter_violations={}",
        log.len(),
        kinds.len(),
        violations.len(),
        stale.len(),
        leaked.len(),
        cache_violations.len(),
        node_violations.len(),
        counter_violations.len()
    ));

    assert!(failures.is_empty(), "tasks failed: {failures:#?}");
    assert!(violations.is_empty(), "violations: {violations:#?}");
    assert!(stale.is_empty(), "stale guarded writes: {stale:#?}");
    assert!(leaked.is_empty(), "leaked nodes: {leaked:#?}");
    assert!(
        cache_violations.is_empty(),
        "cache violations: {cache_violations:#?}"
    );
    assert!(
        node_violations.is_empty(),
        "node violations: {node_violations:#?}"
    );
    assert!(
        counter_violations.is_empty(),
        "counter violations: {counter_violations:#?}"
    );
    assert!(
        progress_failures.is_empty(),
        "no progress after a healed fault: {}",
        progress_failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    );
    if secs >= DEFAULT_SECS {
        assert_eq!(kinds.len(), KINDS.len(), "fault kinds injected: {kinds:?}");
    }
    // The checks above mean something only if the workload ran.
    assert!(
        obeyed.iter().all(|&n| n > 0),
        "some recipe never completed an obeying critical section: {obeyed:?}"
    );
    assert!(!writes.is_empty(), "no guarded write was acknowledged");
    assert!(cache_writes > 0, "the cache writer made no write");
    assert!(node_updates > 0, "the node updater gave no data");
    assert!(counter_successes > 0, "no increment succeeded");
    assert!(
        node_checks > chaos.nodes.kept.len(),
        "the nodes were checked only {node_checks} times"
    );
    assert!(
        cache_checks > chaos.caches.caches.len(),
        "the caches were checked only {cache_checks} times"
    );
    assert!(
        cache_events.iter().all(|(_, events, _)| *events > 1),
        "some cache replayed no change: {cache_events:?}"
    );
}

/// A hold whose session the server expired while its owner was cut off: releasing it once the
/// owner hears of the expiry is not an error, since the server deleted the node with the
/// session. (The chaos run found releases failing with `SessionExpired`; a selector's `close`
/// then reported a failed release although nothing was left.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_the_hold_of_an_unseen_expiry_is_clean() {
    init_tracing();
    let server = common::zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(SESSION_TIMEOUT)
        .connection_timeout(CONNECTION_TIMEOUT)
        .connect()
        .await
        .unwrap();
    let observer = Client::builder(server.as_str()).connect().await.unwrap();
    let path = format!("{}/lock", common::unique_path("chaos-unseen-expiry"));
    let mutex = InterProcessMutex::new(&client, &path).unwrap();
    let guard = mutex.acquire().await.unwrap();
    let node = guard.node_path().to_owned();
    let info = client.zookeeper().unwrap().session().clone();
    let mut states = client.connection_states();

    proxy.blackhole();
    let suspended = tokio::time::timeout(Duration::from_secs(10), states.next()).await;
    assert_eq!(
        suspended.unwrap(),
        Some(zk_recipes::ConnectionState::Suspended)
    );
    expire_session(&server, &info).await.unwrap();
    assert!(observer.exists(&node).await.unwrap().is_none());
    assert!(
        !client.session().is_lost(),
        "the owner heard of the expiry too early"
    );
    // The delete is queued first (on the session the owner still believes in), then the
    // owner reconnects and learns that the session expired.
    let (released, ()) = tokio::join!(guard.release(), async { proxy.restore() });
    assert!(
        released.is_ok(),
        "releasing a hold whose node went with its expired session: {released:?}"
    );
    let next = InterProcessMutex::new(&observer, &path).unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(10), next.acquire())
        .await
        .expect("the lock is free")
        .unwrap();
    granted.release().await.unwrap();
    client.close().await;
    observer.close().await;
}

/// A selector whose turn was cut short by a connection cut, and whose release then failed,
/// closes cleanly once the connection is back and the node is gone: `close` reports the
/// release it makes, not one that failed earlier (the chaos run found `close` failing with the
/// `ConnectionLoss` of a release from long before, after every fault was healed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_close_after_an_earlier_failed_release_is_clean() {
    init_tracing();
    let server = common::zk_server().await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(SESSION_TIMEOUT)
        .connection_timeout(CONNECTION_TIMEOUT)
        .connect()
        .await
        .unwrap();
    let observer = Client::builder(server.as_str()).connect().await.unwrap();
    let path = format!("{}/selector", common::unique_path("chaos-close"));
    struct Lead(tokio::sync::mpsc::UnboundedSender<()>);
    #[async_trait::async_trait]
    impl LeaderSelectorListener for Lead {
        async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
            let _ = self.0.send(());
            leadership.cancelled().await;
            Ok(())
        }
    }
    let (led_tx, mut led) = tokio::sync::mpsc::unbounded_channel();
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let selector = LeaderSelector::new(&client, &path, Lead(led_tx))
        .unwrap()
        .on_error(move |e| {
            let _ = errors_tx.send(e.to_string());
        });
    selector.start().unwrap();
    let deadline = Duration::from_secs(15);
    tokio::time::timeout(deadline, led.recv()).await.unwrap();
    let mut states = client.connection_states();

    // The cut cancels the turn (standard policy), and the release fails while it lasts.
    proxy.cut();
    let release = tokio::time::timeout(deadline, errors.recv()).await.unwrap();
    assert!(
        release
            .as_deref()
            .is_some_and(|e| e.starts_with("releasing leadership failed")),
        "{release:?}"
    );
    proxy.restore();
    loop {
        let state = tokio::time::timeout(deadline, states.next()).await.unwrap();
        if state == Some(zk_recipes::ConnectionState::Reconnected) {
            break;
        }
    }
    // The node goes in the background once the connection is back.
    let until = Instant::now() + deadline;
    while !observer
        .children(&path)
        .await
        .unwrap()
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < until, "the node of the cut turn stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed = selector.close().await;
    assert!(
        closed.is_ok(),
        "close after the release was finished: {closed:?}"
    );
    client.close().await;
    observer.close().await;
}

/// Two latches of one client (so one session) on one path: only the one that made the node
/// leads; the other waits for it, even though its session owns the node (the chaos run found
/// a latch adopting the node of a closed latch of the same client whose delete was still
/// pending, and losing it to that delete while it led).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_latches_of_one_session_never_both_lead() {
    init_tracing();
    let server = common::zk_server().await;
    let client = Client::builder(server.as_str()).connect().await.unwrap();
    let path = format!("{}/leader", common::unique_path("chaos-latch-session"));
    let first = LeaderLatch::new(&client, &path).unwrap().with_id("first");
    first.start().await.unwrap();
    assert!(first.is_leader());
    let second = LeaderLatch::new(&client, &path).unwrap().with_id("second");
    second.start().await.unwrap();
    assert!(
        !second.is_leader(),
        "two latches lead at once: the second adopted the first's node"
    );
    first.close().await.unwrap();
    assert!(second
        .await_leadership_timeout(Duration::from_secs(15))
        .await
        .unwrap());
    let (id, _) = client.get_data(&path).await.unwrap().unwrap();
    assert_eq!(id, b"second", "the second leads on a node of its own");
    second.close().await.unwrap();
    assert!(client.exists(&path).await.unwrap().is_none());
    client.close().await;
}

/// The checker itself: it must find what it looks for, or the chaos run proves nothing.
#[test]
fn the_checker_finds_overlaps_tokens_out_of_order_and_stale_writes() {
    let shared = Shared::new();
    let t0 = Instant::now();
    let interval = |recipe, participant, token, start: u64, end: u64, obeyed, shared| Record {
        recipe,
        participant,
        token,
        start: t0 + Duration::from_millis(start),
        end: t0 + Duration::from_millis(end),
        obeyed,
        shared,
    };
    let record = |recipe, participant, token, start, end, obeyed| {
        interval(recipe, participant, token, start, end, obeyed, false)
    };
    let m = Recipe::Mutex;
    let fine = [
        record(m, 0, 10, 0, 10, true),
        record(m, 1, 20, 10, 20, true),
        record(m, 2, 30, 25, 30, true),
        // Another recipe's intervals are checked on their own.
        record(Recipe::Latch, 3, 5, 5, 28, true),
    ];
    assert!(interval_violations(&fine, &shared).is_empty());
    // Two obeying holders at once.
    let overlap = [record(m, 0, 10, 0, 10, true), record(m, 1, 20, 5, 20, true)];
    assert_eq!(interval_violations(&overlap, &shared).len(), 1);
    // ... but not when the first one's check at the end failed: it did not obey.
    let disobeyed = [
        record(m, 0, 10, 0, 10, false),
        record(m, 1, 20, 5, 20, true),
    ];
    assert!(interval_violations(&disobeyed, &shared).is_empty());
    // An overlap with a long interval that started before the previous one.
    let nested = [
        record(m, 0, 10, 0, 50, true),
        record(m, 1, 20, 10, 20, true),
        record(m, 2, 30, 30, 40, true),
    ];
    assert_eq!(interval_violations(&nested, &shared).len(), 2);
    // A later hold with a lower (or another holder's equal) fencing token.
    let reordered = [
        record(m, 0, 20, 0, 10, true),
        record(m, 1, 10, 10, 20, true),
    ];
    assert_eq!(interval_violations(&reordered, &shared).len(), 1);
    let shared_token = [
        record(m, 0, 20, 0, 10, true),
        record(m, 1, 20, 10, 20, true),
    ];
    assert_eq!(interval_violations(&shared_token, &shared).len(), 1);
    // Read holds overlap each other, with tokens in any order, but no write hold.
    let rw = Recipe::ReadWrite;
    let read =
        |participant, token, start, end| interval(rw, participant, token, start, end, true, true);
    let write =
        |participant, token, start, end| interval(rw, participant, token, start, end, true, false);
    let readers = [read(0, 20, 0, 10), read(1, 10, 5, 15), write(2, 30, 15, 20)];
    assert!(interval_violations(&readers, &shared).is_empty());
    let mixed = [read(0, 10, 0, 10), write(1, 20, 5, 15), read(2, 30, 12, 20)];
    assert_eq!(interval_violations(&mixed, &shared).len(), 2);
    let writers_reordered = [
        write(0, 20, 0, 10),
        read(1, 30, 10, 12),
        write(1, 10, 12, 20),
    ];
    assert_eq!(interval_violations(&writers_reordered, &shared).len(), 1);

    let write = |version, token| GuardedWrite {
        version,
        token,
        participant: 0,
    };
    assert!(stale_writes(&[write(1, 10), write(2, 10), write(4, 20)]).is_empty());
    // By version: 10, 20, then 5: a stale write committed after a newer holder's.
    assert_eq!(
        stale_writes(&[write(1, 10), write(3, 5), write(2, 20)]).len(),
        1
    );
    assert_eq!(stale_writes(&[write(1, 10), write(1, 20)]).len(), 1);
}

/// The cache checker: a replay that does not fit is a phantom, and a diff names what differs.
#[test]
fn the_cache_checker_finds_phantoms_and_divergence() {
    let state = |mzxid, data: &str| (mzxid, Some(data.as_bytes().to_vec()));
    let mut tree = TreeContents::new();
    let fitting = [
        Change::Created("/r".into(), state(1, "a")),
        Change::Created("/r/x".into(), state(2, "b")),
        Change::Changed("/r/x".into(), state(2, "b"), state(3, "c")),
        Change::Initialized,
        Change::Deleted("/r/x".into(), state(3, "c")),
    ];
    for change in fitting {
        replay_change(&mut tree, change).unwrap();
    }
    assert_eq!(tree, TreeContents::from([("/r".to_owned(), state(1, "a"))]));
    // A creation of a node held, a change from a state not held (or of a node not held), a
    // deletion of a node not held or held in another state.
    let phantoms = [
        Change::Created("/r".into(), state(4, "d")),
        Change::Changed("/r".into(), state(0, "z"), state(5, "e")),
        Change::Changed("/r/y".into(), state(6, "f"), state(7, "g")),
        Change::Deleted("/r/gone".into(), state(8, "h")),
        Change::Deleted("/r".into(), state(1, "a")),
        Change::Unknown("something new".into()),
    ];
    for change in phantoms {
        let what = format!("{change:?}");
        assert!(
            replay_change(&mut tree, change).is_err(),
            "not found: {what}"
        );
    }

    let server = TreeContents::from([
        ("/r".to_owned(), state(1, "a")),
        ("/r/a".to_owned(), state(2, "b")),
        ("/r/b".to_owned(), state(3, "c")),
    ]);
    assert_eq!(tree_diff(&server, &server.clone()), None);
    let cached = TreeContents::from([
        ("/r".to_owned(), state(1, "a")),
        ("/r/b".to_owned(), state(2, "old")),
        ("/r/c".to_owned(), state(4, "d")),
    ]);
    let diff = tree_diff(&server, &cached).unwrap();
    assert!(diff.contains(r#"missing ["/r/a"]"#), "{diff}");
    assert!(diff.contains(r#"extra ["/r/c"]"#), "{diff}");
    assert!(diff.contains("stale [\"/r/b (mzxid 2 for 3)\"]"), "{diff}");
    // Same mzxid, other data: stale too.
    let other_data = TreeContents::from([("/r".to_owned(), state(1, "x"))]);
    let only_root = TreeContents::from([("/r".to_owned(), state(1, "a"))]);
    assert!(tree_diff(&only_root, &other_data).is_some());
}

/// Writes `line` to the process's stderr directly, past the test harness's output capture, so
/// the seed and the result are in CI's log even when the test passes.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
