//! Bad input and misuse, table-driven, across the client and every recipe.
//!
//! Every case must end in the typed error it is listed with (matched by variant), must not
//! panic (each case runs in a task of its own, so a panic fails the test with the case's name
//! instead of taking the others down), must not hang (each has a deadline), and must leave no
//! node behind: after the case, everything under its own base path other than the fixtures it
//! made on purpose counts as leaked, except the empty parents recipes make (as container
//! nodes, which ZooKeeper reaps once empty; a client cannot tell them from persistent nodes,
//! as the server reports an ephemeral owner of 0 for both).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{init_tracing, unique_path, zk_server};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use zk_recipes::limits::DEFAULT_MAX_REQUEST_SIZE;
use zk_recipes::zookeeper_client::{self, Acls, CreateMode};
use zk_recipes::{
    BoxError, Client, Error, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, InterProcessSemaphoreV2, LatchState, LeaderLatch, LeaderSelector,
    LeaderSelectorListener, Leadership, Revoker, SelectorError, SharedCount,
};

/// A case that has not finished by then has hung.
const CASE_DEADLINE: Duration = Duration::from_secs(60);
/// How long background deletes may take before a node counts as leaked.
const LEAK_DEADLINE: Duration = Duration::from_secs(10);
/// How long a selector may take to report an error or to lead.
const EVENT_DEADLINE: Duration = Duration::from_secs(15);

type CaseResult = Result<(), String>;
type CaseFn = fn(Ctx) -> BoxFuture<'static, CaseResult>;

/// What a case gets: the server, an open client, a base path of its own (it exists), and a
/// list of the nodes it makes on purpose.
#[derive(Clone)]
struct Ctx {
    server: String,
    client: Client,
    base: String,
    fixtures: Arc<Mutex<Vec<String>>>,
}

impl Ctx {
    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Creates a node the case needs (not a leak), with `acls` (empty: open).
    async fn fixture(&self, path: &str, mode: CreateMode, acls: &[zookeeper_client::Acl]) {
        self.client
            .create(path, b"fixture", mode, acls)
            .await
            .unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        self.fixtures.lock().unwrap().push(path.to_owned());
    }

    /// A second client on the same server.
    async fn connect(&self) -> Client {
        connect(&self.server).await
    }
}

async fn connect(server: &str) -> Client {
    crate::common::connect_with(server, Duration::from_secs(10), Duration::from_secs(5)).await
}

/// Checks that `$got` is `Err` matching `$pattern`; otherwise the case fails with `$what`.
macro_rules! expect_err {
    ($what:expr, $got:expr, $pattern:pat) => {
        match $got {
            Err($pattern) => {}
            other => {
                return Err(format!(
                    "{}: expected Err({}), got {:?}",
                    $what,
                    stringify!($pattern),
                    other
                ))
            }
        }
    };
}

/// Checks a condition; otherwise the case fails with the message.
macro_rules! check {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

macro_rules! case {
    ($name:expr, $function:ident) => {
        ($name, (|ctx| Box::pin($function(ctx))) as CaseFn)
    };
}

/// A selector listener that reports its turns and holds leadership until cancelled.
struct Reporting(mpsc::UnboundedSender<u64>);

#[async_trait::async_trait]
impl LeaderSelectorListener for Reporting {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let _ = self.0.send(leadership.fencing_token());
        leadership.cancelled().await;
        Ok(())
    }
}

/// A selector on `path` whose turns and errors (as `Debug` text) come out of the receivers.
#[allow(clippy::type_complexity)]
fn selector(
    client: &Client,
    path: &str,
) -> Result<
    (
        LeaderSelector,
        mpsc::UnboundedReceiver<u64>,
        mpsc::UnboundedReceiver<String>,
    ),
    Error,
> {
    let (turns_tx, turns) = mpsc::unbounded_channel();
    let (errors_tx, errors) = mpsc::unbounded_channel();
    let selector = LeaderSelector::new(client, path, Reporting(turns_tx))?.on_error(move |e| {
        let _ = errors_tx.send(match &e {
            SelectorError::Queue(inner) => format!("Queue({inner:?})"),
            other => format!("{other:?}"),
        });
    });
    Ok((selector, turns, errors))
}

async fn next_within<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> Result<T, String> {
    match tokio::time::timeout(EVENT_DEADLINE, rx.recv()).await {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(format!("{what}: channel closed")),
        Err(_) => Err(format!("{what}: nothing within {EVENT_DEADLINE:?}")),
    }
}

// ----- paths ------------------------------------------------------------------------------

async fn mutex_empty_path(ctx: Ctx) -> CaseResult {
    expect_err!(
        "mutex on \"\"",
        InterProcessMutex::new(&ctx.client, ""),
        Error::InvalidPath { .. }
    );
    Ok(())
}

async fn mutex_relative_path(ctx: Ctx) -> CaseResult {
    expect_err!(
        "mutex on locks/a",
        InterProcessMutex::new(&ctx.client, "locks/a"),
        Error::InvalidPath { .. }
    );
    Ok(())
}

async fn latch_trailing_slash(ctx: Ctx) -> CaseResult {
    let path = format!("{}/", ctx.path("leader"));
    expect_err!(
        &path,
        LeaderLatch::new(&ctx.client, &path),
        Error::InvalidPath { .. }
    );
    Ok(())
}

async fn selector_double_slash(ctx: Ctx) -> CaseResult {
    let path = format!("{}//selector", ctx.base);
    expect_err!(
        &path,
        selector(&ctx.client, &path),
        Error::InvalidPath { .. }
    );
    Ok(())
}

async fn mutex_dot_segment(ctx: Ctx) -> CaseResult {
    for path in [ctx.path("./lock"), ctx.path("lock/.")] {
        expect_err!(
            &path,
            InterProcessMutex::new(&ctx.client, &path),
            Error::InvalidPath { .. }
        );
    }
    Ok(())
}

async fn latch_dot_dot_segment(ctx: Ctx) -> CaseResult {
    for path in [ctx.path("../leader"), ctx.path("a/..")] {
        expect_err!(
            &path,
            LeaderLatch::new(&ctx.client, &path),
            Error::InvalidPath { .. }
        );
    }
    Ok(())
}

async fn selector_nul(ctx: Ctx) -> CaseResult {
    let path = ctx.path("a\0b");
    expect_err!(
        "selector on a path with NUL",
        selector(&ctx.client, &path),
        Error::InvalidPath { .. }
    );
    Ok(())
}

async fn forbidden_characters(ctx: Ctx) -> CaseResult {
    for c in [
        '\u{1}', '\u{1f}', '\u{7f}', '\u{9f}', '\u{e000}', '\u{f8ff}', '\u{fff5}',
    ] {
        let path = ctx.path(&format!("lock{c}"));
        expect_err!(
            format!("mutex on {path:?}"),
            InterProcessMutex::new(&ctx.client, &path),
            Error::InvalidPath { .. }
        );
        expect_err!(
            format!("latch on {path:?}"),
            LeaderLatch::new(&ctx.client, &path),
            Error::InvalidPath { .. }
        );
    }
    Ok(())
}

async fn root_and_reserved_paths(ctx: Ctx) -> CaseResult {
    for path in ["/", "/zookeeper", "/zookeeper/quota"] {
        expect_err!(
            format!("mutex on {path}"),
            InterProcessMutex::new(&ctx.client, path),
            Error::InvalidPath { .. }
        );
        expect_err!(
            format!("latch on {path}"),
            LeaderLatch::new(&ctx.client, path),
            Error::InvalidPath { .. }
        );
        expect_err!(
            format!("selector on {path}"),
            selector(&ctx.client, path),
            Error::InvalidPath { .. }
        );
    }
    Ok(())
}

async fn client_helpers_bad_paths(ctx: Ctx) -> CaseResult {
    let c = &ctx.client;
    expect_err!(
        "create \"\"",
        c.create("", b"", CreateMode::Persistent, &[]).await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "get_data a",
        c.get_data("a").await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "set_data /a/",
        c.set_data("/a/", b"", None).await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "delete //",
        c.delete("//", None).await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "children /a/.",
        c.children("/a/.").await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "exists with NUL",
        c.exists("/a\0").await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "ensure_path x",
        c.ensure_path("x", false).await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "create_protected name with /",
        c.create_protected(&ctx.base, "a/b", b"", CreateMode::Ephemeral, &[])
            .await,
        Error::InvalidPath { .. }
    );
    Ok(())
}

async fn guarded_writes_bad_paths(ctx: Ctx) -> CaseResult {
    let mutex = InterProcessMutex::new(&ctx.client, &ctx.path("lock")).unwrap();
    let guard = mutex.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    expect_err!(
        "guarded_set_data no-slash",
        guard.guarded_set_data("no-slash", b"", None).await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "guarded_create /a/",
        guard
            .guarded_create("/a/", b"", CreateMode::Persistent)
            .await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "guarded_delete \"\"",
        guard.guarded_delete("", None).await,
        Error::InvalidPath { .. }
    );
    expect_err!(
        "attempt_revoke rel",
        Revoker::attempt_revoke(&ctx.client, "rel").await,
        Error::InvalidPath { .. }
    );
    check!(!guard.is_lost(), "bad input made the hold lost");
    guard.release().await.map_err(|e| format!("release: {e}"))?;
    Ok(())
}

// ----- where the recipe nodes would go ---------------------------------------------------

async fn mutex_under_ephemeral(ctx: Ctx) -> CaseResult {
    let parent = ctx.path("ephemeral");
    ctx.fixture(&parent, CreateMode::Ephemeral, &[]).await;
    let mutex = InterProcessMutex::new(&ctx.client, &format!("{parent}/lock")).unwrap();
    expect_err!(
        "acquire",
        mutex.acquire().await,
        Error::ZooKeeper(zookeeper_client::Error::NoChildrenForEphemerals)
    );
    expect_err!(
        "try_acquire",
        mutex.try_acquire(Duration::from_secs(2)).await,
        Error::ZooKeeper(zookeeper_client::Error::NoChildrenForEphemerals)
    );
    // The path is the ephemeral node itself.
    let mutex = InterProcessMutex::new(&ctx.client, &parent).unwrap();
    expect_err!(
        "acquire on the ephemeral node",
        mutex.acquire().await,
        Error::ZooKeeper(zookeeper_client::Error::NoChildrenForEphemerals)
    );
    check!(
        !mutex.is_acquired_in_this_process(),
        "a failed acquire holds"
    );
    Ok(())
}

async fn latch_under_ephemeral(ctx: Ctx) -> CaseResult {
    let parent = ctx.path("ephemeral");
    ctx.fixture(&parent, CreateMode::Ephemeral, &[]).await;
    let latch = LeaderLatch::new(&ctx.client, &format!("{parent}/leader"))
        .unwrap()
        .with_id("id");
    expect_err!(
        "start",
        latch.start().await,
        Error::ZooKeeper(zookeeper_client::Error::NoChildrenForEphemerals)
    );
    check!(!latch.is_leader(), "a failed latch leads");
    Ok(())
}

async fn selector_under_ephemeral(ctx: Ctx) -> CaseResult {
    let parent = ctx.path("ephemeral");
    ctx.fixture(&parent, CreateMode::Ephemeral, &[]).await;
    let (selector, _turns, mut errors) =
        selector(&ctx.client, &format!("{parent}/selector")).unwrap();
    selector.start().map_err(|e| format!("start: {e}"))?;
    let error = next_within(&mut errors, "the selector's error").await?;
    check!(
        error == "Queue(ZooKeeper(NoChildrenForEphemerals))",
        "the selector reported {error}"
    );
    check!(!selector.is_leader(), "a failed selector leads");
    selector.close().await.map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// A parent that lets anyone read but nobody create under it.
async fn read_only_parent(ctx: &Ctx) -> String {
    let parent = ctx.path("read-only");
    ctx.fixture(&parent, CreateMode::Persistent, &Acls::anyone_read())
        .await;
    parent
}

async fn mutex_under_no_create_acl(ctx: Ctx) -> CaseResult {
    let parent = read_only_parent(&ctx).await;
    let mutex = InterProcessMutex::new(&ctx.client, &format!("{parent}/lock")).unwrap();
    expect_err!("acquire", mutex.acquire().await, Error::NoAuth);
    // The path is the read-only node itself: the lock node's create is refused.
    let mutex = InterProcessMutex::new(&ctx.client, &parent).unwrap();
    expect_err!(
        "try_acquire on the read-only node",
        mutex.try_acquire(Duration::from_secs(2)).await,
        Error::NoAuth
    );
    Ok(())
}

async fn latch_under_no_create_acl(ctx: Ctx) -> CaseResult {
    let parent = read_only_parent(&ctx).await;
    let latch = LeaderLatch::new(&ctx.client, &format!("{parent}/leader"))
        .unwrap()
        .with_id("id");
    expect_err!("start", latch.start().await, Error::NoAuth);
    Ok(())
}

async fn selector_under_no_create_acl(ctx: Ctx) -> CaseResult {
    let parent = read_only_parent(&ctx).await;
    let (selector, _turns, mut errors) = selector(&ctx.client, &parent).unwrap();
    selector.start().map_err(|e| format!("start: {e}"))?;
    let error = next_within(&mut errors, "the selector's error").await?;
    check!(error == "Queue(NoAuth)", "the selector reported {error}");
    selector.close().await.map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// Children that look almost like lock nodes, made persistent under `lock`.
async fn look_alikes(ctx: &Ctx, lock: &str) {
    ctx.client
        .ensure_path(lock, false)
        .await
        .expect("the lock path");
    ctx.fixtures.lock().unwrap().push(lock.to_owned());
    for name in [
        "lock-12x",
        "_c_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-lock-00000x0001",
        "_c_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-lease-0000000001",
        "_c_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-lock-",
        "lock-0000000001-old",
        "foreign",
    ] {
        ctx.fixture(&format!("{lock}/{name}"), CreateMode::Persistent, &[])
            .await;
    }
}

async fn look_alikes_do_not_block_the_mutex(ctx: Ctx) -> CaseResult {
    let lock = ctx.path("lock");
    look_alikes(&ctx, &lock).await;
    let mutex = InterProcessMutex::new(&ctx.client, &lock)
        .unwrap()
        .with_id("ours");
    let guard = match mutex.try_acquire(EVENT_DEADLINE).await {
        Ok(Some(guard)) => guard,
        other => return Err(format!("try_acquire: {other:?}")),
    };
    let participants = mutex
        .participants()
        .await
        .map_err(|e| format!("participants: {e}"))?;
    check!(
        participants.len() == 1 && participants[0].id == "ours" && participants[0].is_leader,
        "participants: {participants:?}"
    );
    guard.release().await.map_err(|e| format!("release: {e}"))?;
    // A single look, too.
    let guard = mutex.try_acquire(Duration::ZERO).await;
    check!(
        matches!(guard, Ok(Some(_))),
        "try_acquire(0) with only look-alikes queued: {guard:?}"
    );
    Ok(())
}

async fn look_alikes_do_not_block_the_selector(ctx: Ctx) -> CaseResult {
    let path = ctx.path("selector");
    look_alikes(&ctx, &path).await;
    let (selector, mut turns, _errors) = selector(&ctx.client, &path).unwrap();
    selector.start().map_err(|e| format!("start: {e}"))?;
    next_within(&mut turns, "leadership").await?;
    selector.close().await.map_err(|e| format!("close: {e}"))?;
    Ok(())
}

// ----- participant ids --------------------------------------------------------------------

async fn ids_of_a_mebibyte(ctx: Ctx) -> CaseResult {
    let huge = "x".repeat(1024 * 1024);
    let mutex = InterProcessMutex::new(&ctx.client, &ctx.path("lock"))
        .unwrap()
        .with_id(huge.clone());
    expect_err!("acquire", mutex.acquire().await, Error::InvalidArgument(_));
    expect_err!(
        "try_acquire",
        mutex.try_acquire(Duration::ZERO).await,
        Error::InvalidArgument(_)
    );
    let latch = LeaderLatch::new(&ctx.client, &ctx.path("leader"))
        .unwrap()
        .with_id(huge.clone());
    expect_err!(
        "latch start",
        latch.start().await,
        Error::InvalidArgument(_)
    );
    let (selector, _turns, _errors) = selector(&ctx.client, &ctx.path("selector")).unwrap();
    let selector = selector.with_id(huge);
    expect_err!(
        "selector start",
        selector.start(),
        Error::InvalidArgument(_)
    );
    Ok(())
}

/// An id that leaves room for the rest of the request is accepted and round-trips: the limit
/// refuses only what the server would.
async fn id_just_under_the_limit(ctx: Ctx) -> CaseResult {
    let lock = ctx.path("lock");
    // The node's name (the protection prefix, "lock-" and 10 digits), the request's overhead
    // and the open ACL, with some room to spare.
    let id = "x".repeat(DEFAULT_MAX_REQUEST_SIZE - lock.len() - 512);
    let mutex = InterProcessMutex::new(&ctx.client, &lock)
        .unwrap()
        .with_id(id.clone());
    let guard = mutex
        .try_acquire(EVENT_DEADLINE)
        .await
        .map_err(|e| format!("acquire with a {}-byte id: {e}", id.len()))?
        .ok_or_else(|| "not granted".to_owned())?;
    let participants = mutex
        .participants()
        .await
        .map_err(|e| format!("participants: {e}"))?;
    check!(
        participants.len() == 1 && participants[0].id == id,
        "the id did not round-trip"
    );
    guard.release().await.map_err(|e| format!("release: {e}"))?;
    let leader = ctx.path("leader");
    let id = "x".repeat(DEFAULT_MAX_REQUEST_SIZE - leader.len() - 512);
    let latch = LeaderLatch::new(&ctx.client, &leader).unwrap().with_id(id);
    latch
        .start()
        .await
        .map_err(|e| format!("latch start: {e}"))?;
    check!(latch.is_leader(), "the latch does not lead");
    latch
        .close()
        .await
        .map_err(|e| format!("latch close: {e}"))?;
    Ok(())
}

/// A latch whose id is near the limit on a path of about 1,200 bytes would make a request the
/// server refuses by dropping the connection, suspending every recipe on the client. It is
/// refused before it is sent: the mutex held on the same client stays good, and so do the
/// client's helpers with data too large for a request.
async fn requests_over_the_limit(ctx: Ctx) -> CaseResult {
    let holder = InterProcessMutex::new(&ctx.client, &ctx.path("held"))
        .unwrap()
        .acquire()
        .await
        .map_err(|e| format!("acquire: {e}"))?;
    let long = format!("{}/{}", ctx.base, "p".repeat(1200));
    let near_the_limit = "x".repeat(DEFAULT_MAX_REQUEST_SIZE - 1024);
    let latch = LeaderLatch::new(&ctx.client, &long)
        .unwrap()
        .with_id(near_the_limit.clone());
    expect_err!(
        "latch start near the limit",
        latch.start().await,
        Error::InvalidArgument(_)
    );
    let mutex = InterProcessMutex::new(&ctx.client, &format!("{long}-lock"))
        .unwrap()
        .with_id(near_the_limit.clone());
    expect_err!(
        "mutex near the limit",
        mutex.try_acquire(Duration::ZERO).await,
        Error::InvalidArgument(_)
    );
    let (selector, _turns, _errors) = selector(&ctx.client, &format!("{long}-selector")).unwrap();
    expect_err!(
        "selector near the limit",
        selector.with_id(near_the_limit.clone()).start(),
        Error::InvalidArgument(_)
    );
    let too_much = vec![0u8; DEFAULT_MAX_REQUEST_SIZE];
    expect_err!(
        "create with too much data",
        ctx.client
            .create(&ctx.path("big"), &too_much, CreateMode::Persistent, &[])
            .await,
        Error::InvalidArgument(_)
    );
    expect_err!(
        "set_data with too much data",
        ctx.client.set_data(&ctx.base, &too_much, None).await,
        Error::InvalidArgument(_)
    );
    check!(
        !holder.is_lost(),
        "a refused request disturbed the hold on the same client"
    );
    check!(
        holder.verify().await,
        "the hold on the same client is not good any more"
    );
    holder
        .release()
        .await
        .map_err(|e| format!("release: {e}"))?;
    Ok(())
}

async fn multi_lock_empty_or_repeated(ctx: Ctx) -> CaseResult {
    expect_err!(
        "a multi-lock of no locks",
        InterProcessMultiLock::new(Vec::<InterProcessMutex>::new()),
        Error::InvalidArgument(_)
    );
    let path = ctx.path("twice");
    let mutex = || InterProcessMutex::new(&ctx.client, &path).expect("mutex");
    expect_err!(
        "a multi-lock naming one path twice",
        InterProcessMultiLock::new([mutex(), mutex()]),
        Error::InvalidArgument(_)
    );
    // A bad path is refused by the part's own constructor (see the mutex cases above).
    Ok(())
}

/// A read/write lock refuses bad paths, and a downgrade in the wrong direction (a read hold
/// "downgraded", that is, upgraded) is a typed error that leaves the read hold as it was and
/// makes no node.
async fn read_write_lock_bad_paths_and_upgrade(ctx: Ctx) -> CaseResult {
    for path in ["", "locks/a", "/zookeeper/rw"] {
        expect_err!(
            path,
            InterProcessReadWriteLock::new(&ctx.client, path),
            Error::InvalidPath { .. }
        );
    }
    let path = ctx.path("rw");
    let lock = InterProcessReadWriteLock::new(&ctx.client, &path).expect("read/write lock");
    let read = lock
        .read_lock()
        .acquire()
        .await
        .map_err(|e| format!("read: {e}"))?;
    expect_err!(
        "a read hold downgraded",
        read.downgrade().await,
        Error::NotDowngradable
    );
    let nodes = ctx
        .client
        .children(&path)
        .await
        .map_err(|e| format!("list: {e}"))?
        .unwrap_or_default();
    if nodes.len() != 1 || !read.verify().await {
        return Err(format!("the refused upgrade changed the queue: {nodes:?}"));
    }
    read.release().await.map_err(|e| format!("release: {e}"))?;
    Ok(())
}

/// A semaphore refuses 0 leases, `acquire_many(0)`, more leases than it has, bad paths and a
/// shared count that is not a count, each with a typed error, and leaves no node for them.
async fn semaphore_bad_counts_and_paths(ctx: Ctx) -> CaseResult {
    let path = ctx.path("semaphore");
    expect_err!(
        "a semaphore of 0 leases",
        InterProcessSemaphoreV2::new(&ctx.client, &path, 0),
        Error::InvalidArgument(_)
    );
    for bad in ["", "semaphores/a", "/zookeeper/s", "/a//b"] {
        expect_err!(
            bad,
            InterProcessSemaphoreV2::new(&ctx.client, bad, 3),
            Error::InvalidPath { .. }
        );
        expect_err!(
            bad,
            InterProcessSemaphoreMutex::new(&ctx.client, bad),
            Error::InvalidPath { .. }
        );
        expect_err!(
            bad,
            SharedCount::new(&ctx.client, bad),
            Error::InvalidPath { .. }
        );
    }
    let semaphore = InterProcessSemaphoreV2::new(&ctx.client, &path, 3).expect("semaphore");
    expect_err!(
        "acquire_many(0)",
        semaphore.acquire_many(0).await,
        Error::InvalidArgument(_)
    );
    expect_err!(
        "try_acquire_many(0)",
        semaphore.try_acquire_many(0, Duration::ZERO).await,
        Error::InvalidArgument(_)
    );
    expect_err!(
        "four leases of three",
        semaphore.acquire_many(4).await,
        Error::InvalidArgument(_)
    );
    // A count node that holds text, not Curator's four bytes.
    let count_path = ctx.path("count");
    ctx.fixture(&count_path, CreateMode::Persistent, &[]).await;
    ctx.client
        .set_data(&count_path, b"3", None)
        .await
        .map_err(|e| format!("set the count: {e}"))?;
    let count = SharedCount::new(&ctx.client, &count_path).expect("count");
    expect_err!(
        "a one-byte count",
        count.get().await,
        Error::MalformedData(_)
    );
    let counted =
        InterProcessSemaphoreV2::with_shared_count(&ctx.client, &ctx.path("counted"), &count)
            .expect("semaphore on a count");
    expect_err!(
        "an acquire under a one-byte count",
        counted.try_acquire(Duration::from_secs(5)).await,
        Error::MalformedData(_)
    );
    Ok(())
}

/// Ids are opaque data, as in Curator: the empty string is an id like any other, for every
/// recipe, and it is what readers see.
async fn empty_ids(ctx: Ctx) -> CaseResult {
    let latch = LeaderLatch::new(&ctx.client, &ctx.path("leader"))
        .map_err(|e| format!("latch: {e}"))?
        .with_id("");
    latch
        .start()
        .await
        .map_err(|e| format!("latch start: {e}"))?;
    let led = latch
        .await_leadership_timeout(Duration::from_secs(10))
        .await
        .map_err(|e| format!("await leadership: {e}"))?;
    if !led {
        return Err("a latch with an empty id did not lead".into());
    }
    let leader = latch.leader().await.map_err(|e| format!("leader: {e}"))?;
    if leader.as_ref().map(|l| l.id.as_str()) != Some("") {
        return Err(format!("leader with an empty id read as {leader:?}"));
    }
    latch.close().await.map_err(|e| format!("close: {e}"))?;

    let mutex = InterProcessMutex::new(&ctx.client, &ctx.path("lock"))
        .map_err(|e| format!("mutex: {e}"))?
        .with_id("");
    let guard = mutex.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    let participants = mutex
        .participants()
        .await
        .map_err(|e| format!("participants: {e}"))?;
    if participants
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        != [""]
    {
        return Err(format!("participants with an empty id: {participants:?}"));
    }
    guard.release().await.map_err(|e| format!("release: {e}"))?;
    Ok(())
}

// ----- connecting -------------------------------------------------------------------------

async fn malformed_connect_strings(_ctx: Ctx) -> CaseResult {
    for connect_string in [
        "",
        "   ",
        ",",
        "127.0.0.1:2181,",
        "127.0.0.1:notaport",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "::1:2181",
        "[::1",
        "bad host:2181",
        "127.0.0.1:2181/chroot/",
        "127.0.0.1:2181/a//b",
    ] {
        let connected = Client::builder(connect_string)
            .connection_timeout(Duration::from_secs(2))
            .connect()
            .await;
        match connected {
            Err(Error::InvalidArgument(_) | Error::InvalidPath { .. }) => {}
            other => {
                return Err(format!(
                    "connect string {connect_string:?}: expected InvalidArgument or \
                     InvalidPath, got {:?}",
                    other.map(|_| "a client")
                ))
            }
        }
    }
    Ok(())
}

async fn missing_chroot(ctx: Ctx) -> CaseResult {
    let connect_string = format!("{}{}/missing", ctx.server, ctx.base);
    let connected = Client::builder(connect_string.as_str())
        .connection_timeout(Duration::from_secs(5))
        .connect()
        .await;
    expect_err!(
        &connect_string,
        connected.map(|_| "a client"),
        Error::InvalidArgument(_)
    );
    Ok(())
}

async fn builder_settings(ctx: Ctx) -> CaseResult {
    let builder = || Client::builder(ctx.server.as_str());
    let outcomes = [
        (
            "zero session timeout",
            builder().session_timeout(Duration::ZERO).connect().await,
        ),
        (
            "zero connection timeout",
            builder().connection_timeout(Duration::ZERO).connect().await,
        ),
        (
            "0 %",
            builder()
                .simulated_session_expiration_percent(0)
                .connect()
                .await,
        ),
        (
            "101 %",
            builder()
                .simulated_session_expiration_percent(101)
                .connect()
                .await,
        ),
    ];
    for (what, outcome) in outcomes {
        expect_err!(what, outcome.map(|_| "a client"), Error::InvalidArgument(_));
    }
    for namespace in ["a//b", "a/", "/a/./b", "a\0"] {
        expect_err!(
            format!("namespace {namespace:?}"),
            builder()
                .namespace(namespace)
                .connect()
                .await
                .map(|_| "a client"),
            Error::InvalidPath { .. }
        );
    }
    Ok(())
}

// ----- lifecycle misuse -------------------------------------------------------------------

async fn client_use_after_close(ctx: Ctx) -> CaseResult {
    let client = ctx.connect().await;
    let clone = client.clone();
    client.close().await;
    expect_err!("get_data", clone.get_data("/").await, Error::Closed);
    expect_err!(
        "create",
        clone
            .create(&ctx.path("late"), b"", CreateMode::Persistent, &[])
            .await,
        Error::Closed
    );
    expect_err!("zookeeper", clone.zookeeper(), Error::Closed);
    expect_err!(
        "wait_connected",
        clone.wait_connected(Duration::from_secs(1)).await,
        Error::Closed
    );
    expect_err!(
        "with_retry",
        clone
            .with_retry(|zk| async move { zk.list_children("/").await })
            .await,
        Error::Closed
    );
    let mut states = clone.connection_states();
    check!(
        states.next().await.is_none(),
        "a closed client's state stream goes on"
    );
    client.close().await; // idempotent
    Ok(())
}

async fn recipes_use_after_close(ctx: Ctx) -> CaseResult {
    let client = ctx.connect().await;
    let mutex = InterProcessMutex::new(&client, &ctx.path("lock")).unwrap();
    let latch = LeaderLatch::new(&client, &ctx.path("leader"))
        .unwrap()
        .with_id("id");
    let (selector, _turns, _errors) = selector(&client, &ctx.path("selector")).unwrap();
    client.close().await;
    expect_err!("mutex acquire", mutex.acquire().await, Error::Closed);
    expect_err!(
        "mutex try_acquire",
        mutex.try_acquire(Duration::from_secs(1)).await,
        Error::Closed
    );
    expect_err!("latch start", latch.start().await, Error::Closed);
    expect_err!("selector start", selector.start(), Error::Closed);
    Ok(())
}

async fn recipes_closed_mid_use(ctx: Ctx) -> CaseResult {
    // The client closes under a held lock, a leading latch and a leading selector.
    let client = ctx.connect().await;
    let mutex = InterProcessMutex::new(&client, &ctx.path("lock")).unwrap();
    let guard = mutex.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    let latch = LeaderLatch::new(&client, &ctx.path("leader"))
        .unwrap()
        .with_id("id");
    latch
        .start()
        .await
        .map_err(|e| format!("latch start: {e}"))?;
    let (selector, mut turns, _errors) = selector(&client, &ctx.path("selector")).unwrap();
    selector
        .start()
        .map_err(|e| format!("selector start: {e}"))?;
    next_within(&mut turns, "selector leadership").await?;
    client.close().await;
    check!(guard.is_lost(), "the lock is not lost after close");
    expect_err!(
        "guarded write after close",
        guard.guarded_set_data(&ctx.base, b"", None).await,
        Error::LockLost
    );
    check!(!latch.is_leader(), "the latch leads after close");
    tokio::time::timeout(EVENT_DEADLINE, async {
        while selector.is_leader() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| "the selector still leads after close")?;
    // Releasing and closing a recipe of a closed client is not an error.
    guard
        .release()
        .await
        .map_err(|e| format!("release after close: {e}"))?;
    // The latch notices the client's close by itself and closes.
    tokio::time::timeout(EVENT_DEADLINE, async {
        while latch.state() != LatchState::Closed {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| "the latch is not closed after its client")?;
    expect_err!(
        "latch close after the client closed",
        latch.close().await,
        Error::Closed
    );
    expect_err!("selector requeue", selector.requeue(), Error::Closed);
    let _ = tokio::time::timeout(EVENT_DEADLINE, selector.close())
        .await
        .map_err(|_| "selector close hangs")?;
    Ok(())
}

async fn double_start(ctx: Ctx) -> CaseResult {
    let latch = LeaderLatch::new(&ctx.client, &ctx.path("leader"))
        .unwrap()
        .with_id("id");
    latch
        .start()
        .await
        .map_err(|e| format!("latch start: {e}"))?;
    expect_err!(
        "latch start again",
        latch.start().await,
        Error::IllegalState(_)
    );
    let (selector, _turns, _errors) = selector(&ctx.client, &ctx.path("selector")).unwrap();
    selector
        .start()
        .map_err(|e| format!("selector start: {e}"))?;
    expect_err!(
        "selector start again",
        selector.start(),
        Error::IllegalState(_)
    );
    latch
        .close()
        .await
        .map_err(|e| format!("latch close: {e}"))?;
    selector
        .close()
        .await
        .map_err(|e| format!("selector close: {e}"))?;
    expect_err!(
        "latch start after close",
        latch.start().await,
        Error::Closed
    );
    expect_err!("latch close again", latch.close().await, Error::Closed);
    expect_err!(
        "selector start after close",
        selector.start(),
        Error::Closed
    );
    expect_err!(
        "selector close again",
        selector.close().await,
        Error::Closed
    );
    Ok(())
}

async fn use_before_start(ctx: Ctx) -> CaseResult {
    let latch = LeaderLatch::new(&ctx.client, &ctx.path("leader"))
        .unwrap()
        .with_id("id");
    expect_err!("latch close", latch.close().await, Error::IllegalState(_));
    expect_err!(
        "latch await_leadership",
        latch.await_leadership().await,
        Error::IllegalState(_)
    );
    let (selector, _turns, _errors) = selector(&ctx.client, &ctx.path("selector")).unwrap();
    expect_err!(
        "selector close",
        selector.close().await,
        Error::IllegalState(_)
    );
    expect_err!(
        "selector requeue",
        selector.requeue(),
        Error::IllegalState(_)
    );
    expect_err!(
        "selector interrupt_leadership",
        selector.interrupt_leadership(),
        Error::IllegalState(_)
    );
    Ok(())
}

/// Once a misuse (the lock was owned by a task), now the way guards work: a guard released
/// from another task releases the lock, and the lock is free at once, not wedged.
async fn release_from_another_task(ctx: Ctx) -> CaseResult {
    let lock = ctx.path("lock");
    let mutex = InterProcessMutex::new(&ctx.client, &lock).unwrap();
    let guard = mutex.acquire().await.map_err(|e| format!("acquire: {e}"))?;
    let node = guard.node_path().to_owned();
    let released = tokio::spawn(async move { guard.release().await })
        .await
        .map_err(|e| format!("the releasing task failed: {e}"))?;
    released.map_err(|e| format!("release from another task: {e}"))?;
    check!(
        !mutex.is_acquired_in_this_process(),
        "the hold outlived its guard's release"
    );
    check!(
        ctx.client
            .exists(&node)
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        "the lock node outlived its guard's release"
    );
    let again = mutex
        .try_acquire(Duration::ZERO)
        .await
        .map_err(|e| format!("acquire after the release: {e}"))?;
    check!(
        again.is_some(),
        "the lock is wedged after a release from another task"
    );
    Ok(())
}

fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        case!("mutex: empty path", mutex_empty_path),
        case!("mutex: no leading slash", mutex_relative_path),
        case!("latch: trailing slash", latch_trailing_slash),
        case!("selector: '//'", selector_double_slash),
        case!("mutex: '.' segment", mutex_dot_segment),
        case!("latch: '..' segment", latch_dot_dot_segment),
        case!("selector: NUL in the path", selector_nul),
        case!(
            "mutex and latch: characters ZooKeeper rejects",
            forbidden_characters
        ),
        case!("every recipe: '/' and /zookeeper", root_and_reserved_paths),
        case!("client: bad paths in the helpers", client_helpers_bad_paths),
        case!(
            "mutex: guarded writes and revoke with bad paths",
            guarded_writes_bad_paths
        ),
        case!("mutex: under an ephemeral node", mutex_under_ephemeral),
        case!("latch: under an ephemeral node", latch_under_ephemeral),
        case!(
            "selector: under an ephemeral node",
            selector_under_ephemeral
        ),
        case!(
            "mutex: parent without CREATE for us",
            mutex_under_no_create_acl
        ),
        case!(
            "latch: parent without CREATE for us",
            latch_under_no_create_acl
        ),
        case!(
            "selector: parent without CREATE for us",
            selector_under_no_create_acl
        ),
        case!(
            "mutex: look-alike children do not block",
            look_alikes_do_not_block_the_mutex
        ),
        case!(
            "selector: look-alike children do not block",
            look_alikes_do_not_block_the_selector
        ),
        case!("every recipe: a 1 MiB participant id", ids_of_a_mebibyte),
        case!(
            "mutex and latch: an id just under the request limit",
            id_just_under_the_limit
        ),
        case!(
            "every recipe and the client: requests over the limit",
            requests_over_the_limit
        ),
        case!("empty ids", empty_ids),
        case!("multi-lock empty or repeated", multi_lock_empty_or_repeated),
        case!(
            "read/write lock: bad paths and an upgrade",
            read_write_lock_bad_paths_and_upgrade
        ),
        case!(
            "semaphore: bad counts and paths",
            semaphore_bad_counts_and_paths
        ),
        case!(
            "client: empty and malformed connect strings",
            malformed_connect_strings
        ),
        case!("client: missing chroot", missing_chroot),
        case!(
            "client: zero timeouts, bad percentages, bad namespaces",
            builder_settings
        ),
        case!("client: use after close", client_use_after_close),
        case!(
            "every recipe: use after the client's close",
            recipes_use_after_close
        ),
        case!(
            "every recipe: the client closes mid-use",
            recipes_closed_mid_use
        ),
        case!(
            "latch and selector: double start, use after close",
            double_start
        ),
        case!("latch and selector: use before start", use_before_start),
        case!(
            "mutex: release from another task",
            release_from_another_task
        ),
    ]
}

/// A node found under a case's base path.
struct Found {
    path: String,
    ephemeral_owner: i64,
    data_len: usize,
    children: usize,
}

/// Every node under `base`, parents before children.
async fn descendants(client: &Client, base: &str) -> Result<Vec<Found>, Error> {
    let mut found = Vec::new();
    let mut stack = vec![base.to_owned()];
    while let Some(path) = stack.pop() {
        for child in client.children(&path).await?.unwrap_or_default() {
            let child = format!("{path}/{child}");
            if let Some((data, stat)) = client.get_data(&child).await? {
                found.push(Found {
                    path: child.clone(),
                    ephemeral_owner: stat.ephemeral_owner,
                    data_len: data.len(),
                    children: stat.num_children as usize,
                });
            }
            stack.push(child);
        }
    }
    Ok(found)
}

/// Nodes under `base` that are not fixtures, other than empty parents, once background
/// deletes had `LEAK_DEADLINE` to finish.
async fn leaked(client: &Client, base: &str, fixtures: &[String]) -> Vec<String> {
    let until = tokio::time::Instant::now() + LEAK_DEADLINE;
    loop {
        let left: Vec<String> = match descendants(client, base).await {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|n| !fixtures.contains(&n.path))
                .filter(|n| n.ephemeral_owner != 0 || n.data_len > 0)
                .map(|n| {
                    format!(
                        "{} (ephemeral owner {:#x}, {} bytes, {} children)",
                        n.path, n.ephemeral_owner, n.data_len, n.children
                    )
                })
                .collect(),
            Err(e) => vec![format!("cannot list {base}: {e}")],
        };
        if left.is_empty() || tokio::time::Instant::now() >= until {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_tree(client: &Client, base: &str) {
    if let Ok(nodes) = descendants(client, base).await {
        for node in nodes.into_iter().rev() {
            let _ = client.delete(&node.path, None).await;
        }
    }
    let _ = client.delete(base, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_error_without_panic_or_leak() {
    init_tracing();
    let server = zk_server().await;
    let cases = cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, case) in cases {
        let client = connect(&server).await;
        let base = unique_path("bad-input");
        client.ensure_path(&base, false).await.expect("base path");
        let ctx = Ctx {
            server: server.clone(),
            client: client.clone(),
            base: base.clone(),
            fixtures: Arc::new(Mutex::new(Vec::new())),
        };
        let fixtures = ctx.fixtures.clone();
        let outcome = tokio::time::timeout(CASE_DEADLINE, tokio::spawn(case(ctx))).await;
        let failure = match outcome {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(why))) => Some(why),
            Ok(Err(join)) if join.is_panic() => Some(format!("panicked: {join}")),
            Ok(Err(join)) => Some(format!("task failed: {join}")),
            Err(_) => Some(format!("did not finish within {CASE_DEADLINE:?}")),
        };
        let fixtures = fixtures.lock().unwrap().clone();
        let left = leaked(&client, &base, &fixtures).await;
        match (failure, left.is_empty()) {
            (None, true) => println!("ok: {name}"),
            (failure, _) => {
                let mut why = failure.unwrap_or_default();
                if !left.is_empty() {
                    why.push_str(&format!(" leaked: {left:?}"));
                }
                println!("FAILED: {name}: {why}");
                failures.push(format!("{name}: {why}"));
            }
        }
        delete_tree(&client, &base).await;
        client.close().await;
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}
