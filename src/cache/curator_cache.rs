//! [`CuratorCache`]: the nodes under a path, kept in memory over one persistent watch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::node::{CacheEvent, CacheEvents, CachedNode};
use super::tree::{depth_of, ReadOutcome, Ticket, Tree};
use super::watcher::{PersistentWatcher, WatcherEvent, WatcherEvents};
use zookeeper_client::MultiReadResult;

use crate::connection::{Backoff, Client};
use crate::error::{is_retryable_zk, Error, Result};
use crate::path::join;
use crate::sync::Locked;

/// Which nodes a [`CuratorCache`] holds: Curator's three caches as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheMode {
    /// The node at the path alone (Curator's `NodeCache`, or `CuratorCache` with
    /// `SINGLE_NODE_CACHE`), over a non-recursive persistent watch.
    SingleNode,
    /// The node and its direct children (Curator's `PathChildrenCache`; the node itself is
    /// held too, under its own path).
    Children,
    /// The node and every node below it, down to `max_depth` levels below it when set
    /// (Curator's `TreeCache`; `max_depth: Some(1)` is [`Children`](CacheMode::Children)).
    Tree {
        /// How many levels below the path to hold; `None` for all.
        max_depth: Option<usize>,
    },
}

impl CacheMode {
    /// How many levels below the cache's path it holds.
    fn max_depth(self) -> usize {
        match self {
            CacheMode::SingleNode => 0,
            CacheMode::Children => 1,
            CacheMode::Tree { max_depth } => max_depth.unwrap_or(usize::MAX),
        }
    }
}

/// Where a [`CuratorCache`] is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheState {
    /// Built, not started.
    Latent,
    /// Started: reading the tree for the first time.
    Loading,
    /// Holds the server's tree, and applies every change it is told of.
    Synced,
    /// Reading the tree again after a disconnection or a new session; it may be behind the
    /// server until [`CacheEvent::Initialized`].
    Resyncing,
    /// Closed (or its client was): it holds its last contents and changes no more.
    Closed,
}

/// The state, and whether the first load has ended (what [`CuratorCache::initialized`]
/// waits for).
#[derive(Debug, Clone, Copy)]
struct Status {
    state: CacheState,
    initialized: bool,
}

/// Builds a [`CuratorCache`]: which nodes, and whether to keep their data.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct CuratorCacheBuilder {
    client: Client,
    path: String,
    mode: CacheMode,
    with_data: bool,
}

impl CuratorCacheBuilder {
    /// Which nodes to hold (default: the whole tree, [`CacheMode::Tree`] with no limit).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::cache::{CacheMode, CuratorCache};
    /// let members = CuratorCache::builder(&client, "/services/billing")
    ///     .mode(CacheMode::Children)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn mode(mut self, mode: CacheMode) -> Self {
        self.mode = mode;
        self
    }

    /// Holds the path's node alone: [`CacheMode::SingleNode`].
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let flag = zk_recipes::cache::CuratorCache::builder(&client, "/flags/maintenance")
    ///     .single_node()
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn single_node(self) -> Self {
        self.mode(CacheMode::SingleNode)
    }

    /// Holds the node and its direct children: [`CacheMode::Children`].
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let workers = zk_recipes::cache::CuratorCache::builder(&client, "/workers")
    ///     .children()
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn children(self) -> Self {
        self.mode(CacheMode::Children)
    }

    /// Holds the whole tree, at most `max_depth` levels below the path: [`CacheMode::Tree`].
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let config = zk_recipes::cache::CuratorCache::builder(&client, "/config")
    ///     .max_depth(3)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn max_depth(self, max_depth: usize) -> Self {
        self.mode(CacheMode::Tree {
            max_depth: Some(max_depth),
        })
    }

    /// Keeps each node's stat and no data (Curator's `DO_NOT_CACHE_DATA`): a read of a stat
    /// instead of the data for each change, and no memory for data.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let tree = zk_recipes::cache::CuratorCache::builder(&client, "/jobs")
    ///     .stat_only()
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn stat_only(mut self) -> Self {
        self.with_data = false;
        self
    }

    /// The cache, not started (see [`CuratorCache::start`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a path ZooKeeper would reject.
    pub fn build(self) -> Result<CuratorCache> {
        crate::path::validate_path(&self.path)?;
        let stop = CancellationToken::new();
        let (status, _) = watch::channel(Status {
            state: CacheState::Latent,
            initialized: false,
        });
        let inner = Arc::new(Inner {
            client: self.client,
            path: self.path,
            mode: self.mode,
            with_data: self.with_data,
            contents: Mutex::default(),
            status,
            stop: stop.clone(),
            task: Mutex::default(),
        });
        Ok(CuratorCache {
            inner,
            _close_on_drop: Arc::new(stop.drop_guard()),
        })
    }
}

/// The nodes under a path, kept in memory over one persistent watch (Curator's
/// `CuratorCache`, which replaced `NodeCache`, `PathChildrenCache` and `TreeCache`; they are
/// its [`CacheMode`]s here), with a stream of every change.
///
/// # Behavior
///
/// * [`start`](Self::start) sets a persistent watch on the path (recursive, except for
///   [`CacheMode::SingleNode`]) and reads the tree: every node found is a
///   [`CacheEvent::Created`], then [`CacheEvent::Initialized`]. The path need not exist: the
///   cache fills when it appears.
/// * Every watch event is answered by a read of its node, and the cache changes only by what
///   reads show, applied per path in the order they were sent (see the module docs of
///   [`cache`](super) for the consistency this gives).
/// * After a disconnection, a new session or a server switch, events may have been missed, so
///   the cache reads the whole tree again (a level's reads are sent together, 64 nodes' data
///   per `multiRead` request: see the crate docs' Performance section) and emits exactly the
///   differences, then `Initialized` again.
/// * It ends when [closed](Self::close), when every handle is dropped, or when its client is
///   closed.
///
/// Reading the contents ([`get`](Self::get), [`children`](Self::children),
/// [`snapshot`](Self::snapshot)) costs no request. A handle is cheap to clone.
///
/// ```no_run
/// use futures::StreamExt;
/// use zk_recipes::cache::{CacheEvent, CuratorCache};
///
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// let cache = CuratorCache::builder(&client, "/config").build()?;
/// let mut events = cache.events();
/// cache.start().await?;
/// cache.initialized().await?;
/// if let Some(node) = cache.get("/config/database/url") {
///     println!("url = {:?}", node.data());
/// }
/// while let Some(event) = events.next().await {
///     if let CacheEvent::Changed { new, .. } = event {
///         println!("{} is now {:?}", new.path(), new.data());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CuratorCache {
    inner: Arc<Inner>,
    // Only handles hold this; its drop stops the cache.
    _close_on_drop: Arc<tokio_util::sync::DropGuard>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    path: String,
    mode: CacheMode,
    with_data: bool,
    contents: Mutex<Contents>,
    status: watch::Sender<Status>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The tree and the streams told of its changes, changed together under one lock, so that a
/// [`CuratorCache::subscribe`]r's snapshot and stream fit each other.
#[derive(Debug, Default)]
struct Contents {
    tree: Tree,
    subscribers: Vec<mpsc::UnboundedSender<CacheEvent>>,
    closed: bool,
}

impl Contents {
    fn publish(&mut self, events: Vec<CacheEvent>) {
        for event in events {
            self.subscribers.retain(|tx| tx.send(event.clone()).is_ok());
        }
    }
}

impl CuratorCache {
    /// Starts building a cache of `path` (and, by default, everything below it).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let cache = zk_recipes::cache::CuratorCache::builder(&client, "/config").build()?;
    /// # Ok(()) }
    /// ```
    pub fn builder(client: &Client, path: &str) -> CuratorCacheBuilder {
        CuratorCacheBuilder {
            client: client.clone(),
            path: path.to_owned(),
            mode: CacheMode::Tree { max_depth: None },
            with_data: true,
        }
    }

    /// A cache of the whole tree at `path`, with data.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a path ZooKeeper would reject.
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        Self::builder(client, path).build()
    }

    /// The cached path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Which nodes the cache holds.
    pub fn mode(&self) -> CacheMode {
        self.inner.mode
    }

    /// Where the cache is in its life.
    pub fn state(&self) -> CacheState {
        self.inner.status.borrow().state
    }

    /// Sets the watch and starts reading the tree; returns once the watch is set (the first
    /// load goes on: await [`initialized`](Self::initialized)).
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if it was started (or closed) already;
    /// * [`Error::Unsupported`] if the server has no persistent watches (ZooKeeper before
    ///   3.6);
    /// * [`Error::NoAuth`], and the errors of [`Client::with_retry`] when the retry policy
    ///   gives up. The cache can then be started again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call leaves the cache [`Latent`](CacheState::Latent) and no watch
    /// behind.
    pub async fn start(&self) -> Result<()> {
        let claimed = self.inner.status.send_if_modified(|status| {
            let latent = status.state == CacheState::Latent;
            if latent {
                status.state = CacheState::Loading;
            }
            latent
        });
        if !claimed {
            return Err(Error::IllegalState("the cache was started already"));
        }
        // Back to Latent if this call fails or is dropped before the task owns the watch.
        let mut unclaim = Unclaim(Some(&self.inner.status));
        let recursive = self.inner.mode != CacheMode::SingleNode;
        let watcher = PersistentWatcher::new(&self.inner.client, &self.inner.path, recursive)?;
        let events = watcher.start().await?;
        unclaim.0 = None;
        let task = CacheTask {
            inner: self.inner.clone(),
            reads: FuturesUnordered::new(),
            reads_out: 0,
            queued: std::collections::VecDeque::new(),
            batching: true,
            epoch: 0,
            resync: None,
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_secs(1)),
        };
        let handle = self.inner.client.spawn(task.run(events));
        *self.inner.task.locked() = Some(handle);
        Ok(())
    }

    /// Waits until the first load has ended (the first [`CacheEvent::Initialized`]).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the cache is closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn initialized(&self) -> Result<()> {
        let mut status = self.inner.status.subscribe();
        let reached = status
            .wait_for(|status| status.initialized || status.state == CacheState::Closed)
            .await;
        match reached {
            Ok(status) if status.initialized => Ok(()),
            _ => Err(Error::Closed),
        }
    }

    /// The node at `path`, if the cache holds it.
    pub fn get(&self, path: &str) -> Option<Arc<CachedNode>> {
        self.inner.contents.locked().tree.get(path)
    }

    /// The children of `path` that the cache holds, in path order.
    pub fn children(&self, path: &str) -> Vec<Arc<CachedNode>> {
        self.inner.contents.locked().tree.children(path)
    }

    /// How many nodes the cache holds.
    pub fn len(&self) -> usize {
        self.inner.contents.locked().tree.len()
    }

    /// True if the cache holds no node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every node the cache holds, in path order.
    pub fn snapshot(&self) -> Vec<Arc<CachedNode>> {
        self.inner.contents.locked().tree.snapshot()
    }

    /// The stream of every change from now on (see [`CacheEvents`]). Subscribed before
    /// [`start`](Self::start), it sees the first load too.
    pub fn events(&self) -> CacheEvents {
        self.subscribe().1
    }

    /// The contents now and the stream of every change after them, taken together: applying
    /// every event to the snapshot gives the contents at that event.
    pub fn subscribe(&self) -> (Vec<Arc<CachedNode>>, CacheEvents) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut contents = self.inner.contents.locked();
        if !contents.closed {
            contents.subscribers.push(tx);
        }
        (contents.tree.snapshot(), CacheEvents::new(rx))
    }

    /// Stops the cache: removes its watch, ends every event stream, and keeps the last
    /// contents. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the cache is stopping once this is first polled.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        let task = self.inner.task.locked().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.mark_closed();
    }
}

impl Inner {
    fn mark_closed(&self) {
        let mut contents = self.contents.locked();
        contents.closed = true;
        contents.subscribers.clear();
        drop(contents);
        self.status
            .send_modify(|status| status.state = CacheState::Closed);
    }

    /// Whether the cache holds `path`: the cached path or a node below it within the mode's
    /// depth.
    fn covers(&self, path: &str) -> bool {
        let below = if self.path == "/" {
            path.starts_with('/')
        } else {
            path == self.path
                || path
                    .strip_prefix(self.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        below && depth_of(path) - depth_of(&self.path) <= self.mode.max_depth()
    }

    fn publish(&self, events: Vec<CacheEvent>) {
        if !events.is_empty() {
            self.contents.locked().publish(events);
        }
    }
}

/// Puts a claimed cache back to [`CacheState::Latent`] unless disarmed.
struct Unclaim<'a>(Option<&'a watch::Sender<Status>>);

impl Drop for Unclaim<'_> {
    fn drop(&mut self) {
        if let Some(status) = self.0 {
            status.send_modify(|status| status.state = CacheState::Latent);
        }
    }
}

/// Why a read was sent.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// A watch event about the node.
    Event,
    /// The resynchronisation of `epoch`, at `depth` levels below the cache's path.
    Resync { epoch: u64, depth: usize },
}

/// What a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// The node: its data (or its stat alone), applied to the tree.
    Node,
    /// The names of its children, for a resynchronisation that goes below it (their reads
    /// follow).
    Children,
}

/// How many reads may be out at once. The server answers them at its own pace whatever the
/// number queued, and each read out holds its answer's buffers: past a few thousand, more
/// only grow the memory a load of a large tree peaks at.
const READS_OUT_MAX: usize = 2048;

/// A read's answer: what it found about the node (`None` for [`Ask::Children`]), and the
/// children it listed, if it listed them.
type Answer = std::result::Result<(Option<ReadOutcome>, Vec<String>), zookeeper_client::Error>;

/// What the task's pending futures resolve to.
enum Done {
    Read {
        read: Read,
        /// The tree's ticket, for an [`Ask::Node`].
        ticket: Option<Ticket>,
        answer: Answer,
    },
    /// A failed read's pause is over: send it again.
    Retry(Read),
    /// The answer to a read of several nodes' data in one request.
    Batch {
        batch: Batch,
        ticket: Ticket,
        answer: std::result::Result<Vec<MultiReadResult>, zookeeper_client::Error>,
    },
}

/// The data of several nodes of one resynchronisation, read in one `multiRead` request.
#[derive(Debug)]
struct Batch {
    paths: Vec<String>,
    epoch: u64,
    purpose: Purpose,
}

/// What waits to be sent.
#[derive(Debug)]
enum Queued {
    One(Read),
    Many(Batch),
}

/// How many nodes' data a resynchronisation reads in one request. The server handles one
/// request for them all instead of one each (its cost per request, not per byte, bounds a
/// load), and a multi-read applies at one point of the server's order, so one ticket covers
/// it.
const NODES_PER_BATCH: usize = 64;

/// A read to send, or sent.
#[derive(Debug)]
struct Read {
    path: String,
    epoch: u64,
    purpose: Purpose,
    ask: Ask,
}

/// The resynchronisation under way.
#[derive(Debug)]
struct Resync {
    epoch: u64,
    /// The first ticket of its reads: nodes not read since are gone.
    since: Ticket,
    /// Its reads not yet answered (or not yet sent).
    outstanding: usize,
}

/// The task that turns watch events into reads and reads into the cache's contents.
struct CacheTask {
    inner: Arc<Inner>,
    reads: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Reads sent and not yet answered (the pauses before retries in `reads` do not count).
    reads_out: usize,
    /// Reads waiting for room under [`READS_OUT_MAX`], in the order they were asked for.
    queued: std::collections::VecDeque<Queued>,
    /// False once a batched read failed as a whole for a reason a retry does not cure: the
    /// tree is read node by node from then on.
    batching: bool,
    /// One more at every [`WatcherEvent::Reset`]: reads of an earlier epoch that fail are not
    /// sent again (the new resynchronisation covers them).
    epoch: u64,
    resync: Option<Resync>,
    backoff: Backoff,
}

impl CacheTask {
    async fn run(mut self, mut watch: WatcherEvents) {
        loop {
            tokio::select! {
                _ = self.inner.stop.cancelled() => break,
                item = watch.next() => match item {
                    Some(WatcherEvent::Reset) => self.begin_resync(),
                    Some(
                        WatcherEvent::Created(path)
                        | WatcherEvent::DataChanged(path)
                        | WatcherEvent::Deleted(path),
                    ) if self.inner.covers(&path) => {
                        self.request(path, Purpose::Event, Ask::Node);
                    }
                    Some(_) => {}
                    // The client is closed.
                    None => break,
                },
                Some(done) = self.reads.next(), if !self.reads.is_empty() => self.take(done),
            }
        }
        // Dropping the stream removes the watch; dropping the reads abandons them.
        drop(watch);
        self.inner.mark_closed();
    }

    fn begin_resync(&mut self) {
        self.epoch += 1;
        let since = self.inner.contents.locked().tree.next_ticket();
        tracing::debug!(path = %self.inner.path, epoch = self.epoch, "reading the cached tree");
        self.resync = Some(Resync {
            epoch: self.epoch,
            since,
            outstanding: 1,
        });
        self.inner.status.send_modify(|status| {
            status.state = if status.initialized {
                CacheState::Resyncing
            } else {
                CacheState::Loading
            };
        });
        let path = self.inner.path.clone();
        let purpose = Purpose::Resync {
            epoch: self.epoch,
            depth: 0,
        };
        self.request(path, purpose, Ask::Node);
    }

    /// Sends a read now, or queues it until fewer than [`READS_OUT_MAX`] are out. Its ticket
    /// is taken when it is sent: tickets follow the order reads reach the server.
    fn request(&mut self, path: String, purpose: Purpose, ask: Ask) {
        let read = Read {
            path,
            epoch: self.epoch,
            purpose,
            ask,
        };
        if self.reads_out < READS_OUT_MAX {
            self.send(read);
        } else {
            self.queued.push_back(Queued::One(read));
        }
    }

    /// Asks for the nodes at `paths`, of a resynchronisation at `purpose`: their data in
    /// batches when the cache keeps data, else one read each.
    fn request_nodes(&mut self, paths: Vec<String>, purpose: Purpose) {
        if !self.inner.with_data || !self.batching || paths.len() < 2 {
            for path in paths {
                self.request(path, purpose, Ask::Node);
            }
            return;
        }
        let mut paths = paths.into_iter().peekable();
        while paths.peek().is_some() {
            let batch = Batch {
                paths: paths.by_ref().take(NODES_PER_BATCH).collect(),
                epoch: self.epoch,
                purpose,
            };
            if self.reads_out < READS_OUT_MAX {
                self.send_batch(batch);
            } else {
                self.queued.push_back(Queued::Many(batch));
            }
        }
    }

    /// Sends `batch`'s `multiRead` now (its first poll writes the request), with one ticket.
    fn send_batch(&mut self, batch: Batch) {
        let ticket = self.inner.contents.locked().tree.issue();
        self.reads_out += batch.paths.len();
        let Some(zk) = self.live_zookeeper() else {
            self.reads.push(Box::pin(std::future::ready(Done::Batch {
                batch,
                ticket,
                answer: Err(zookeeper_client::Error::SessionExpired),
            })));
            return;
        };
        let paths = batch.paths.clone();
        let mut answer: BoxFuture<'static, _> = Box::pin(async move {
            let mut reader = zk.new_multi_reader();
            for path in &paths {
                reader.add_get_data(path)?;
            }
            reader.commit().await
        });
        // Polled once here, so that the request is sent now, in the order of the tickets;
        // the task polls it again when its answer comes.
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        let ready = match answer.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(answer) => Some(answer),
            std::task::Poll::Pending => None,
        };
        self.reads.push(Box::pin(async move {
            let answer = match ready {
                Some(answer) => answer,
                None => answer.await,
            };
            Done::Batch {
                batch,
                ticket,
                answer,
            }
        }));
    }

    /// Sends queued reads while there is room.
    fn send_queued(&mut self) {
        while self.reads_out < READS_OUT_MAX {
            let Some(queued) = self.queued.pop_front() else {
                return;
            };
            let purpose = match &queued {
                Queued::One(read) => read.purpose,
                Queued::Many(batch) => batch.purpose,
            };
            // An earlier resynchronisation's reads are moot: the current one reads again.
            if matches!(purpose, Purpose::Resync { epoch, .. } if epoch != self.epoch) {
                continue;
            }
            match queued {
                Queued::One(read) => self.send(read),
                Queued::Many(batch) => self.send_batch(batch),
            }
        }
    }

    /// The current session's handle, for requests sent now; `None` once it is lost.
    fn live_zookeeper(&self) -> Option<zookeeper_client::Client> {
        let session = self.inner.client.session();
        session.zookeeper().ok().filter(|_| !session.is_lost())
    }

    /// Whether a resynchronisation's read at `depth` must go below the node.
    fn goes_below(&self, purpose: Purpose) -> bool {
        matches!(purpose, Purpose::Resync { depth, .. } if depth < self.inner.mode.max_depth())
    }

    /// Sends `read`: one request, whose answer the pushed future awaits.
    ///
    /// * A node with data: `getData`; a resynchronisation lists its children afterwards, only
    ///   if its stat says it has some (most nodes of a large tree are leaves).
    /// * A node without data: `exists`, or, when a resynchronisation must go below it,
    ///   `getChildren2`, whose answer is the node's stat and its children at once.
    fn send(&mut self, read: Read) {
        let ticket = (read.ask == Ask::Node).then(|| self.inner.contents.locked().tree.issue());
        self.reads_out += 1;
        let Some(zk) = self.live_zookeeper() else {
            self.reads.push(Box::pin(std::future::ready(Done::Read {
                read,
                ticket,
                answer: Err(zookeeper_client::Error::SessionExpired),
            })));
            return;
        };
        let path = read.path.as_str();
        // The request is sent here; the future only awaits its answer.
        let answer: BoxFuture<'static, Answer> = match read.ask {
            Ask::Children => {
                let listing = zk.get_children(path);
                Box::pin(async move {
                    match listing.await {
                        Ok((children, _)) => Ok((None, children)),
                        // Deleted since its read: its deletion's event follows.
                        Err(zookeeper_client::Error::NoNode) => Ok((None, Vec::new())),
                        Err(e) => Err(e),
                    }
                })
            }
            Ask::Node if self.inner.with_data => {
                let data = zk.get_data(path);
                Box::pin(async move {
                    match data.await {
                        Ok((data, stat)) => Ok((
                            Some(ReadOutcome::Present {
                                stat,
                                data: Some(data),
                            }),
                            Vec::new(),
                        )),
                        Err(zookeeper_client::Error::NoNode) => {
                            Ok((Some(ReadOutcome::Absent), Vec::new()))
                        }
                        Err(e) => Err(e),
                    }
                })
            }
            Ask::Node if self.goes_below(read.purpose) => {
                let listing = zk.get_children(path);
                Box::pin(async move {
                    match listing.await {
                        Ok((children, stat)) => {
                            Ok((Some(ReadOutcome::Present { stat, data: None }), children))
                        }
                        Err(zookeeper_client::Error::NoNode) => {
                            Ok((Some(ReadOutcome::Absent), Vec::new()))
                        }
                        Err(e) => Err(e),
                    }
                })
            }
            Ask::Node => {
                let stat = zk.check_stat(path);
                Box::pin(async move {
                    match stat.await {
                        Ok(Some(stat)) => {
                            Ok((Some(ReadOutcome::Present { stat, data: None }), Vec::new()))
                        }
                        Ok(None) => Ok((Some(ReadOutcome::Absent), Vec::new())),
                        Err(e) => Err(e),
                    }
                })
            }
        };
        drop(zk);
        self.reads.push(Box::pin(async move {
            Done::Read {
                read,
                ticket,
                answer: answer.await,
            }
        }));
    }

    fn take(&mut self, done: Done) {
        match done {
            Done::Batch {
                batch,
                ticket,
                answer,
            } => {
                self.reads_out -= batch.paths.len();
                self.take_batch(batch, ticket, answer);
                self.send_queued();
            }
            // A read of an earlier epoch is covered by the current resynchronisation.
            Done::Retry(read) => {
                if read.epoch == self.epoch {
                    self.request(read.path, read.purpose, read.ask);
                }
            }
            Done::Read {
                read,
                ticket,
                answer,
            } => {
                self.reads_out -= 1;
                match answer {
                    Ok((found, children)) => {
                        self.backoff.reset();
                        let mut has_children = false;
                        if let (Some(found), Some(ticket)) = (found, ticket) {
                            has_children = matches!(&found, ReadOutcome::Present { stat, .. } if stat.num_children > 0);
                            let mut events = Vec::new();
                            self.inner.contents.locked().tree.apply(
                                &read.path,
                                ticket,
                                found,
                                &mut events,
                            );
                            self.inner.publish(events);
                        }
                        // A node read with its data: list its children next, if it has some.
                        let list_next = read.ask == Ask::Node
                            && self.inner.with_data
                            && has_children
                            && self.goes_below(read.purpose);
                        self.resync_read_done(&read, children, list_next);
                    }
                    Err(error) => {
                        if let Some(ticket) = ticket {
                            self.inner.contents.locked().tree.abandon(ticket);
                        }
                        self.failed(read, error);
                    }
                }
                self.send_queued();
            }
        }
    }

    /// Applies a batch's answer: each node as a read of its own would be, under the batch's
    /// one ticket. A batch that failed as a whole is read again node by node.
    fn take_batch(
        &mut self,
        batch: Batch,
        ticket: Ticket,
        answer: std::result::Result<Vec<MultiReadResult>, zookeeper_client::Error>,
    ) {
        let results = match answer {
            Ok(results) if results.len() == batch.paths.len() => results,
            other => {
                let error = match other {
                    Err(error) => error,
                    Ok(_) => zookeeper_client::Error::UnexpectedError(
                        "a multi-read answered another number of reads".into(),
                    ),
                };
                tracing::debug!(%error, nodes = batch.paths.len(), "a batched read failed; reading its nodes one by one");
                self.inner.contents.locked().tree.abandon(ticket);
                if !is_retryable_zk(&error) {
                    self.batching = false;
                }
                for path in batch.paths {
                    if batch.epoch == self.epoch {
                        self.request(path, batch.purpose, Ask::Node);
                    }
                }
                return;
            }
        };
        self.backoff.reset();
        let mut events = Vec::new();
        let mut follow_ups = Vec::new();
        {
            let mut contents = self.inner.contents.locked();
            for (path, result) in batch.paths.iter().zip(results) {
                let found = match result {
                    MultiReadResult::Data { data, stat } => ReadOutcome::Present {
                        stat,
                        data: Some(data),
                    },
                    MultiReadResult::Error {
                        err: zookeeper_client::Error::NoNode,
                    } => ReadOutcome::Absent,
                    MultiReadResult::Error { err } => {
                        follow_ups.push((path.clone(), Err(err)));
                        continue;
                    }
                    other => {
                        let err = zookeeper_client::Error::UnexpectedError(format!(
                            "a multi-read of data answered {other:?}"
                        ));
                        follow_ups.push((path.clone(), Err(err)));
                        continue;
                    }
                };
                let has_children =
                    matches!(&found, ReadOutcome::Present { stat, .. } if stat.num_children > 0);
                contents
                    .tree
                    .apply_unanswered(path, ticket, found, &mut events);
                follow_ups.push((path.clone(), Ok(has_children)));
            }
            contents.tree.answered(ticket);
        }
        self.inner.publish(events);
        for (path, outcome) in follow_ups {
            let read = Read {
                path,
                epoch: batch.epoch,
                purpose: batch.purpose,
                ask: Ask::Node,
            };
            match outcome {
                Ok(has_children) => {
                    let list_next = has_children && self.goes_below(read.purpose);
                    self.resync_read_done(&read, Vec::new(), list_next);
                }
                Err(error) => self.failed(read, error),
            }
        }
    }

    /// A read failed: sent again after a pause, or, if it cannot succeed, the node kept as the
    /// cache had it.
    fn failed(&mut self, read: Read, error: zookeeper_client::Error) {
        if is_retryable_zk(&error) || matches!(error, zookeeper_client::Error::ClientClosed) {
            // A new connection or session brings a Reset, whose resynchronisation covers this
            // read; until then, send it again after a pause.
            if read.epoch == self.epoch {
                let pause = self.backoff.next_pause();
                self.reads.push(Box::pin(async move {
                    tokio::time::sleep(pause).await;
                    Done::Retry(read)
                }));
            }
            return;
        }
        // Not readable (an ACL, say): the cache keeps what it had of it, and a
        // resynchronisation does not count it as gone.
        tracing::warn!(path = %read.path, %error, "cannot read a cached node; keeping what the cache had of it");
        let mut contents = self.inner.contents.locked();
        let ticket = contents.tree.issue();
        contents.tree.confirm(&read.path, ticket);
        drop(contents);
        self.resync_read_done(&read, Vec::new(), false);
    }

    /// Counts a resynchronisation's read as answered, asks for what it calls for next (the
    /// node's children, or the reads of the children it listed), and ends the
    /// resynchronisation when nothing is left to read.
    fn resync_read_done(&mut self, read: &Read, children: Vec<String>, list_next: bool) {
        let Purpose::Resync { epoch, depth } = read.purpose else {
            return;
        };
        let Some(resync) = self.resync.as_mut().filter(|resync| resync.epoch == epoch) else {
            return;
        };
        resync.outstanding = resync.outstanding - 1 + children.len() + usize::from(list_next);
        if list_next {
            self.request(read.path.clone(), read.purpose, Ask::Children);
        }
        let below = Purpose::Resync {
            epoch,
            depth: depth + 1,
        };
        let children = children
            .iter()
            .map(|child| join(&read.path, child))
            .collect();
        self.request_nodes(children, below);
        if self
            .resync
            .as_ref()
            .is_some_and(|resync| resync.outstanding == 0)
        {
            let resync = self.resync.take().expect("checked above");
            let mut events = Vec::new();
            self.inner
                .contents
                .locked()
                .tree
                .finish_resync(resync.since, &mut events);
            events.push(CacheEvent::Initialized);
            self.inner.publish(events);
            self.inner.status.send_modify(|status| {
                status.state = CacheState::Synced;
                status.initialized = true;
            });
            tracing::debug!(path = %self.inner.path, epoch, "the cached tree is read");
        }
    }
}
