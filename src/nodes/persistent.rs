//! [`PersistentNode`]: a node this client keeps present, with its latest data.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acl, Acls, CreateMode, EventType};

use crate::connection::{ensure_parents, is_sequential, unless_down_for, Backoff, Client, Session};
use crate::error::{is_retryable_zk, Error, Result};
use crate::lifecycle::RecipeState;
use crate::sync::Subscribers;

/// The longest TTL ZooKeeper accepts (2⁴⁰ − 1 ms), as zookeeper-client checks it.
const TTL_MAX: Duration = Duration::from_millis(0x00FF_FFFF_FFFF);

/// A node this client keeps present (Curator's `PersistentNode`, once
/// `PersistentEphemeralNode`): made when started, and made again, with the latest data it was
/// given, whenever it is found gone.
///
/// # Behavior
///
/// * **Made again** after a deletion by someone else (an existence watch is kept on it),
///   after a new session when it is ephemeral (the old one's nodes are gone), and after a
///   reconnection that finds it gone; missing parents are made as containers, as Curator's
///   `creatingParentContainersIfNeeded` does.
/// * **A node already at the path** is taken over and given this node's data, as Curator
///   does: a create of ours whose answer was lost, a node left by an earlier session, or
///   one made by someone else (when the latter goes, this one is made again).
/// * **Sequential modes** get their sequence number once: the node is made again at the same
///   path, with the matching non-sequential mode, as in Curator. With
///   [`protected`](PersistentNodeBuilder::protected), the first create is Curator's
///   protected create (`_c_<uuid>-` names), so a create whose answer is lost to a cut is
///   found again before another is made; without it, a lost answer may leave a second node,
///   as in Curator.
/// * **Data**: [`set_data`](Self::set_data) keeps the data and writes it to the node; a node
///   made again carries the latest data, never older.
/// * **Failures** that no retry can cure (an ACL refusing the create, a TTL on a server
///   without extended types, an ephemeral parent) stop the node: its events stream says
///   [`NodeEvent::Failed`], [`wait_for_initial_create`](Self::wait_for_initial_create) and
///   [`set_data`](Self::set_data) return the error, and its state reads `Closed`. Connection
///   failures are retried, with a backoff, for as long as the node is started.
/// * **Closing** ([`close`](Self::close), or dropping the handle) deletes the node (Curator's
///   guaranteed delete); a [`PersistentTtlNode`](crate::PersistentTtlNode)'s is left to its
///   TTL instead.
///
/// # Differences from Curator
///
/// * A sequential protected node made again keeps its path; Curator makes a node named
///   `_c_<uuid>-<name>`, without a sequence number, at the base path.
/// * Failures that no retry cures are reported and stop the node; Curator logs them and
///   tries again on the next event.
/// * [`set_data`](Self::set_data) may be called before the node was first made (the data is
///   the one it is made with), and waits until the node holds the data.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::zookeeper_client::CreateMode;
/// use zk_recipes::PersistentNode;
///
/// let node = PersistentNode::builder(&client, "/workers/worker-", CreateMode::EphemeralSequential)
///     .data(&b"10.0.0.7:8080"[..])
///     .protected(true)
///     .build()?;
/// node.start()?;
/// assert!(node.wait_for_initial_create(Duration::from_secs(10)).await?);
/// let path = node.actual_path(); // Some("/workers/_c_…-worker-0000000042")
/// node.set_data(&b"10.0.0.7:8081"[..]).await?;
/// node.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentNode {
    inner: Arc<Inner>,
}

/// What a [`PersistentNode`] is to make: set with [`PersistentNode::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct PersistentNodeBuilder {
    client: Client,
    path: String,
    mode: CreateMode,
    data: Vec<u8>,
    protected: bool,
    ttl: Option<Duration>,
    acls: Vec<Acl>,
    create_parents: bool,
    delete_on_close: bool,
}

impl PersistentNodeBuilder {
    /// The node's data when first made; empty by default.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::{zookeeper_client::CreateMode, PersistentNode};
    /// let node = PersistentNode::builder(&client, "/leases/a", CreateMode::Ephemeral)
    ///     .data(&b"owner=7"[..])
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// Whether the node is made with Curator's protected create (a `_c_<uuid>-` prefix on its
    /// name), so that a create whose answer was lost is found again instead of made twice.
    /// Off by default, as in Curator; sequential modes should turn it on.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::{zookeeper_client::CreateMode, PersistentNode};
    /// let node = PersistentNode::builder(&client, "/queue/item-", CreateMode::PersistentSequential)
    ///     .protected(true)
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn protected(mut self, protected: bool) -> Self {
        self.protected = protected;
        self
    }

    /// A time to live for a persistent or persistent-sequential node: the server deletes it
    /// once it has gone `ttl` without a change and has no children (then this node makes it
    /// again). Needs a server with `zookeeper.extendedTypesEnabled=true`; elsewhere the node
    /// fails with [`Error::Unsupported`]. For a node that outlives this process by at most its
    /// TTL, use [`PersistentTtlNode`](crate::PersistentTtlNode).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// use zk_recipes::{zookeeper_client::CreateMode, PersistentNode};
    /// let node = PersistentNode::builder(&client, "/markers/a", CreateMode::Persistent)
    ///     .ttl(Duration::from_secs(60))
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The node's ACLs (and those of the parents it makes); the client's defaults when not
    /// set or empty.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::zookeeper_client::{Acl, AuthId, CreateMode, Permission};
    /// use zk_recipes::PersistentNode;
    /// let node = PersistentNode::builder(&client, "/public/a", CreateMode::Ephemeral)
    ///     .acls(vec![Acl::new(Permission::ALL, AuthId::anyone())])
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn acls(mut self, acls: Vec<Acl>) -> Self {
        self.acls = acls;
        self
    }

    /// Whether missing parents are made (as containers, Curator's
    /// `creatingParentContainersIfNeeded`); yes by default. Without, a node whose parent is
    /// missing fails with [`Error::ZooKeeper`] `NoNode` and stops (Curator's
    /// `useParentCreation = false`, where `isParentCreationFailure()` turns true). A
    /// [protected](Self::protected) node's first create makes missing parents either way.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::{zookeeper_client::CreateMode, PersistentNode};
    /// let node = PersistentNode::builder(&client, "/must/exist/a", CreateMode::Ephemeral)
    ///     .create_parents(false)
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn create_parents(mut self, create: bool) -> Self {
        self.create_parents = create;
        self
    }

    /// Whether closing deletes the node (yes, except for a TTL node's parent).
    pub(crate) fn delete_on_close(mut self, delete: bool) -> Self {
        self.delete_on_close = delete;
        self
    }

    /// The node, not started.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidPath`] for a bad path, `/`, or a path under `/zookeeper`;
    /// * [`Error::InvalidArgument`] for a TTL with a mode other than persistent or
    ///   persistent-sequential, a TTL of zero or over 2⁴⁰ − 1 ms, a TTL with protection (the
    ///   protected create makes no TTL nodes), or data that would make the create exceed the
    ///   client's [`max_request_size`](Client::max_request_size).
    pub fn build(self) -> Result<PersistentNode> {
        crate::path::validate_recipe_path(&self.path)?;
        if let Some(ttl) = self.ttl {
            if !matches!(
                self.mode,
                CreateMode::Persistent | CreateMode::PersistentSequential
            ) {
                return Err(Error::InvalidArgument(format!(
                    "a TTL needs a persistent or persistent-sequential node, not {:?}",
                    self.mode
                )));
            }
            if ttl.is_zero() || ttl > TTL_MAX {
                return Err(Error::InvalidArgument(format!(
                    "a TTL must be over 0 and at most {TTL_MAX:?}, not {ttl:?}"
                )));
            }
            if self.protected {
                return Err(Error::InvalidArgument(
                    "a TTL node cannot be protected: the protected create makes no TTL nodes"
                        .to_owned(),
                ));
            }
        }
        // A protected name adds `_c_<uuid>-`, a sequential one 10 digits.
        let extra = name_growth(self.protected, self.mode);
        self.client
            .check_request("create", &self.path, extra, self.data.len(), &self.acls)?;
        let (desired, _) = watch::channel(Desired {
            data: Arc::from(self.data),
            serial: 0,
        });
        let (status, _) = watch::channel(Status::default());
        Ok(PersistentNode {
            inner: Arc::new(Inner {
                client: self.client,
                base_path: self.path,
                mode: self.mode,
                ttl: self.ttl,
                protected: self.protected,
                acls: self.acls,
                create_parents: self.create_parents,
                delete_on_close: self.delete_on_close,
                desired,
                status,
                subscribers: Subscribers::new(),
                stop: CancellationToken::new(),
            }),
        })
    }
}

/// What happened to a [`PersistentNode`], in order: see [`PersistentNode::events`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node was made for the first time (or a node found at its path was taken over), at
    /// this path.
    Created(String),
    /// The node was made again (or taken over again) after it was gone, at this path.
    Recreated(String),
    /// The node at this path is gone: deleted by someone else (or by its TTL or, for a
    /// container, by the server), or it was ephemeral and its session was lost. It is made
    /// again next.
    Deleted(String),
    /// The node stopped on a failure no retry can cure (see [`PersistentNode`]'s
    /// `# Behavior`); the stream ends after it.
    Failed(Error),
}

/// The stream of a [`PersistentNode`]'s [`NodeEvent`]s from the moment it was asked for: every
/// event, in order, none dropped however slowly it is read. It ends when the node is closed.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct NodeEvents {
    rx: mpsc::UnboundedReceiver<NodeEvent>,
}

impl Stream for NodeEvents {
    type Item = NodeEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<NodeEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The data the node should hold, and a count of the times it was given.
#[derive(Debug, Clone)]
struct Desired {
    data: Arc<[u8]>,
    serial: u64,
}

/// What the node's task has learned, for the handle's readers.
#[derive(Debug, Clone, Default)]
struct Status {
    started: bool,
    /// The task has ended: closed, failed, or its client closed.
    ended: bool,
    /// The path the node is present at, while it is believed present.
    path: Option<String>,
    /// The serial of the data the node is known to hold.
    written: u64,
    /// Made at least once.
    created: bool,
    /// Why the task stopped by itself.
    failure: Option<Error>,
    /// Why the delete of a closed node failed.
    delete_failure: Option<Error>,
    /// The last write of given data that failed for good (say, an ACL without write
    /// permission), with the serial of that data.
    write_failure: Option<(u64, Error)>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    base_path: String,
    mode: CreateMode,
    ttl: Option<Duration>,
    protected: bool,
    acls: Vec<Acl>,
    create_parents: bool,
    delete_on_close: bool,
    desired: watch::Sender<Desired>,
    status: watch::Sender<Status>,
    subscribers: Subscribers<NodeEvent>,
    stop: CancellationToken,
}

impl PersistentNode {
    /// A builder for a node of `mode` at `path` (for sequential modes, the path's last
    /// segment is the name the sequence number is appended to).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::{zookeeper_client::CreateMode, PersistentNode};
    /// let node = PersistentNode::builder(&client, "/services/billing/host-1", CreateMode::Ephemeral)
    ///     .data(&b"10.0.0.1:9000"[..])
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn builder(client: &Client, path: &str, mode: CreateMode) -> PersistentNodeBuilder {
        PersistentNodeBuilder {
            client: client.clone(),
            path: path.to_owned(),
            mode,
            data: Vec::new(),
            protected: false,
            ttl: None,
            acls: Vec::new(),
            create_parents: true,
            delete_on_close: true,
        }
    }

    /// A node of `mode` at `path` with `data`, unprotected: Curator's
    /// `new PersistentNode(client, mode, false, path, data)`.
    ///
    /// # Errors
    ///
    /// As [`PersistentNodeBuilder::build`].
    pub fn new(
        client: &Client,
        path: &str,
        mode: CreateMode,
        data: impl Into<Vec<u8>>,
    ) -> Result<Self> {
        Self::builder(client, path, mode).data(data).build()
    }

    /// Starts keeping the node present: it is made in the background (see
    /// [`wait_for_initial_create`](Self::wait_for_initial_create)).
    ///
    /// # Errors
    ///
    /// [`Error::IllegalState`] if it was started before, [`Error::Closed`] if its client is.
    pub fn start(&self) -> Result<()> {
        if self.inner.client.is_closed() {
            return Err(Error::Closed);
        }
        let mut first = false;
        self.inner.status.send_if_modified(|status| {
            first = !status.started;
            status.started = true;
            first
        });
        if !first {
            return Err(Error::IllegalState("a persistent node can be started once"));
        }
        self.inner.client.spawn(self.inner.clone().run());
        Ok(())
    }

    /// Waits until the node has been made for the first time; `Ok(false)` if that takes
    /// longer than `timeout` (Curator's `waitForInitialCreate`).
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if the node is not started;
    /// * the failure that stopped it (see [`NodeEvent::Failed`]), or [`Error::Closed`] if
    ///   it was closed (or its client was) before it was made.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> Result<bool> {
        let mut status = self.inner.status.subscribe();
        if !status.borrow().started {
            return Err(Error::IllegalState("the persistent node is not started"));
        }
        let made = tokio::time::timeout(
            timeout,
            status.wait_for(|status| status.created || status.ended),
        )
        .await;
        let Ok(Ok(status)) = made else {
            return Ok(false);
        };
        if status.created {
            return Ok(true);
        }
        Err(status.failure.clone().unwrap_or(Error::Closed))
    }

    /// The path the node is at while it is present, `None` while it is not (before it is made,
    /// while it is being made again, and after it is closed). For sequential modes it holds
    /// the sequence number (and the `_c_<uuid>-` prefix when protected).
    pub fn actual_path(&self) -> Option<String> {
        self.inner.status.borrow().path.clone()
    }

    /// The node's base path, as given to the builder.
    pub fn path(&self) -> &str {
        &self.inner.base_path
    }

    /// The node's mode, as given to the builder.
    pub fn mode(&self) -> CreateMode {
        self.inner.mode
    }

    /// The data the node holds or is made with: the last given.
    pub fn data(&self) -> Vec<u8> {
        self.inner.desired.borrow().data.to_vec()
    }

    /// Where the node is in its life.
    pub fn state(&self) -> RecipeState {
        let status = self.inner.status.borrow();
        if status.ended || self.inner.stop.is_cancelled() {
            RecipeState::Closed
        } else if status.started {
            RecipeState::Started
        } else {
            RecipeState::Latent
        }
    }

    /// Keeps `data` as the node's data and writes it to the node, then returns. Before the
    /// node is started it only keeps it: the node is made with it.
    ///
    /// # Behavior
    ///
    /// The write is the node's task's: while the node is gone it is made again with `data`;
    /// while the connection is down the write waits for it. Data given later wins over data
    /// given earlier, whichever write is sent first.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`] if the data would make a create exceed the client's
    ///   [`max_request_size`](Client::max_request_size); nothing is kept then;
    /// * the failure that stopped the node, or [`Error::Closed`] once it is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the data is kept as soon as the call is made, and written by the node's
    /// task whether the future is polled to the end or dropped.
    pub async fn set_data(&self, data: impl Into<Vec<u8>>) -> Result<()> {
        let data = data.into();
        let inner = &self.inner;
        let extra = name_growth(inner.protected, inner.mode);
        inner
            .client
            .check_request("create", &inner.base_path, extra, data.len(), &inner.acls)?;
        let mut status = inner.status.subscribe();
        if status.borrow().ended || inner.stop.is_cancelled() {
            return Err(status.borrow().failure.clone().unwrap_or(Error::Closed));
        }
        let mut serial = 0;
        inner.desired.send_modify(|desired| {
            desired.serial += 1;
            serial = desired.serial;
            desired.data = Arc::from(data);
        });
        if !status.borrow().started {
            return Ok(());
        }
        let status = status
            .wait_for(|status| status.written >= serial || status.ended)
            .await
            .map_err(|_| Error::Closed)?;
        match &status.write_failure {
            Some((failed, error)) if *failed >= serial => Err(error.clone()),
            _ if status.written >= serial => Ok(()),
            _ => Err(status.failure.clone().unwrap_or(Error::Closed)),
        }
    }

    /// The node's events from now on: see [`NodeEvent`].
    pub fn events(&self) -> NodeEvents {
        let rx = self.inner.subscribers.subscribe();
        if self.inner.status.borrow().ended {
            self.inner.subscribers.close();
        }
        NodeEvents { rx }
    }

    /// Stops keeping the node and deletes it (except a [`PersistentTtlNode`](crate::PersistentTtlNode)'s parent, left to
    /// its TTL), then returns. Closing twice, or a node never started, is fine.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::delete`] when its retry policy gives up on the delete: the
    /// node is then an ephemeral node's that goes with the session, or a persistent node left
    /// behind.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the node is closed as soon as the call is made, and deleted by its task in
    /// the background if the future is dropped.
    pub async fn close(&self) -> Result<()> {
        let mut status = self.inner.status.subscribe();
        self.inner.stop.cancel();
        if !status.borrow().started {
            self.inner.status.send_modify(|status| status.ended = true);
            self.inner.subscribers.close();
            return Ok(());
        }
        let ended = status.wait_for(|status| status.ended).await;
        match ended.ok().and_then(|status| status.delete_failure.clone()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl PersistentNode {
    /// A handle on the node's task for the recipes built on it.
    pub(crate) fn control(&self) -> NodeControl {
        NodeControl(self.inner.clone())
    }
}

/// What a recipe built on a [`PersistentNode`] may ask of its task.
#[derive(Debug, Clone)]
pub(crate) struct NodeControl(Arc<Inner>);

impl NodeControl {
    /// Waits until the node is made for the first time (`true`), or its task ends first.
    pub(crate) async fn made(&self) -> bool {
        let mut status = self.0.status.subscribe();
        let made = status
            .wait_for(|status| status.created || status.ended)
            .await
            .map(|status| status.created);
        made.unwrap_or(false)
    }

    /// Stops the node's task (deleting the node if it deletes on close) and waits for its end.
    pub(crate) async fn stop(&self) {
        let mut status = self.0.status.subscribe();
        self.0.stop.cancel();
        if status.borrow().started {
            let _ = status.wait_for(|status| status.ended).await;
        }
    }
}

impl Drop for PersistentNode {
    fn drop(&mut self) {
        // The task deletes the node and ends.
        self.inner.stop.cancel();
    }
}

/// How much a node's name may grow beyond its base path: a protection prefix, a sequence.
fn name_growth(protected: bool, mode: CreateMode) -> usize {
    usize::from(protected) * crate::connection::PROTECTION_PREFIX_LEN
        + if is_sequential(mode) { 10 } else { 0 }
}

fn is_ephemeral(mode: CreateMode) -> bool {
    matches!(
        mode,
        CreateMode::Ephemeral | CreateMode::EphemeralSequential
    )
}

/// The mode a node first made with `mode` is made again with, at the path it got.
fn remade_mode(mode: CreateMode) -> CreateMode {
    match mode {
        CreateMode::EphemeralSequential => CreateMode::Ephemeral,
        CreateMode::PersistentSequential => CreateMode::Persistent,
        other => other,
    }
}

/// What the task believes about the node, from evidence.
enum Belief {
    /// Not on the server (or not known to be): to be made at `at`, the path it got when first
    /// made, or the base path before that.
    Absent { at: Option<String> },
    /// At `path`, made or taken over on `session`.
    Present { path: String, session: Arc<Session> },
}

/// What one step of the task found.
enum Step {
    /// The node is at `path`, made or taken over on `session` with the data of `serial`.
    Made {
        path: String,
        session: Arc<Session>,
        serial: u64,
    },
    /// The node at `path` is gone.
    Gone { path: String },
    /// Look again: the watch fired, newer data was given, the session changed, or the task
    /// is told to stop.
    Again,
    /// A failure a retry may cure: pause, then look again.
    Retry(Error),
    /// A failure no retry cures: the task stops.
    Fatal(Error),
}

impl Inner {
    fn emit(&self, event: NodeEvent) {
        self.subscribers.emit(event);
    }

    fn acls(&self) -> Acls<'_> {
        if self.acls.is_empty() {
            self.client.default_acls()
        } else {
            Acls::new(&self.acls)
        }
    }

    /// Names a failure for the step that met it.
    fn classify(&self, error: zookeeper_client::Error) -> Step {
        match error {
            e if is_retryable_zk(&e) => Step::Retry(Error::from(e)),
            // Only a create meets a missing node here (the other steps take `NoNode` as the
            // node gone). With `create_parents`, a parent went again while the parents were
            // made (a container is reaped as soon as it is empty, between our create of it and
            // of its child): they are made again after a pause. Without, it is final.
            e @ zookeeper_client::Error::NoNode if self.create_parents => {
                Step::Retry(Error::from(e))
            }
            zookeeper_client::Error::Unimplemented if self.ttl.is_some() => {
                Step::Fatal(Error::Unsupported {
                    feature: "TTL nodes",
                    reason: "the server needs zookeeper.extendedTypesEnabled=true".to_owned(),
                })
            }
            e => Step::Fatal(Error::from(e)),
        }
    }

    /// The task: keeps the node present until told to stop, then deletes it.
    async fn run(self: Arc<Self>) {
        let mut belief = Belief::Absent { at: None };
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        let failure = loop {
            if self.stop.is_cancelled() {
                break None;
            }
            let session = tokio::select! {
                _ = self.stop.cancelled() => continue,
                connected = self.client.connected() => match connected {
                    Ok(session) => session,
                    Err(error) => break Some(error),
                },
            };
            let step = match &belief {
                Belief::Absent { at } => self.make(&session, at.as_deref()).await,
                Belief::Present {
                    path,
                    session: owner,
                } => self.keep(&session, path, owner).await,
            };
            match step {
                Step::Made {
                    path,
                    session,
                    serial,
                } => {
                    backoff.reset();
                    let mut again = false;
                    self.status.send_modify(|status| {
                        again = status.created;
                        status.created = true;
                        status.path = Some(path.clone());
                        status.written = status.written.max(serial);
                    });
                    tracing::debug!(%path, again, "persistent node made");
                    self.emit(if again {
                        NodeEvent::Recreated(path.clone())
                    } else {
                        NodeEvent::Created(path.clone())
                    });
                    belief = Belief::Present { path, session };
                }
                Step::Gone { path } => {
                    tracing::debug!(%path, "persistent node gone; making it again");
                    self.status.send_modify(|status| status.path = None);
                    self.emit(NodeEvent::Deleted(path.clone()));
                    belief = Belief::Absent { at: Some(path) };
                }
                Step::Again => {}
                Step::Retry(error) => {
                    tracing::debug!(path = %self.base_path, %error, "persistent node: retrying");
                    tokio::select! {
                        _ = self.stop.cancelled() => {}
                        _ = backoff.sleep() => {}
                    }
                }
                Step::Fatal(error) => {
                    tracing::warn!(path = %self.base_path, %error, "persistent node failed");
                    self.emit(NodeEvent::Failed(error.clone()));
                    break Some(error);
                }
            }
        };
        // The node is deleted when closing; after a failure there is none of ours (or it is
        // the one a create left, which the delete below takes too).
        let mut delete_failure = None;
        if self.delete_on_close && !matches!(failure, Some(Error::Closed)) {
            let path = match &belief {
                Belief::Present { path, .. } => Some(path.clone()),
                // A create of this path may have been cut short by the stop.
                Belief::Absent { at } if failure.is_none() => at
                    .clone()
                    .or_else(|| (!is_sequential(self.mode)).then(|| self.base_path.clone())),
                Belief::Absent { .. } => None,
            };
            if let Some(path) = path {
                if let Err(error) = self.client.delete(&path, None).await {
                    tracing::warn!(%path, %error, "could not delete a closed persistent node");
                    delete_failure = Some(error);
                }
            }
        }
        self.status.send_modify(|status| {
            status.ended = true;
            status.path = None;
            status.failure = failure;
            status.delete_failure = delete_failure;
        });
        self.subscribers.close();
    }

    /// Makes the node on `session`: at `at` with the non-sequential mode once it has a path,
    /// or at the base path with its own mode (protected if asked).
    async fn make(&self, session: &Arc<Session>, at: Option<&str>) -> Step {
        let desired = self.desired.borrow().clone();
        if at.is_none() && self.protected {
            let (parent, name) = split(&self.base_path);
            let made = tokio::select! {
                // The protected create deletes in the background what a dropped call made.
                _ = self.stop.cancelled() => return Step::Again,
                made = self.client.create_protected(parent, name, &desired.data, self.mode, &self.acls) => made,
            };
            return match made {
                Ok(node) => Step::Made {
                    path: node.path,
                    session: node.session,
                    serial: desired.serial,
                },
                Err(Error::ZooKeeper(e)) => self.classify(e),
                Err(error) if error.is_retryable() => Step::Retry(error),
                Err(error) => Step::Fatal(error),
            };
        }
        let (path, mode) = match at {
            Some(path) => (path, remade_mode(self.mode)),
            None => (self.base_path.as_str(), self.mode),
        };
        let Some(zk) = session.zookeeper().ok().filter(|_| !session.is_lost()) else {
            return Step::Again;
        };
        let acls = self.acls();
        let mut options = mode.with_acls(acls);
        if let Some(ttl) = self.ttl {
            options = options.with_ttl(ttl);
        }
        let create = async {
            match zk.create(path, &desired.data, &options).await {
                Err(zookeeper_client::Error::NoNode) if self.create_parents => {
                    ensure_parents(&zk, path, acls).await?;
                    zk.create(path, &desired.data, &options).await
                }
                other => other,
            }
        };
        let created = tokio::select! {
            // Not cancel safe for a sequential path: the stop waits for the answer.
            _ = self.stop.cancelled(), if !is_sequential(mode) => return Step::Again,
            _ = session.lost() => return Step::Again,
            created = unless_down_for(&zk, self.client.connection_timeout(), create) => created,
        };
        match created {
            Some(Ok((_, sequence))) => Step::Made {
                path: if is_sequential(mode) {
                    format!("{path}{:010}", sequence.into_i64())
                } else {
                    path.to_owned()
                },
                session: session.clone(),
                serial: desired.serial,
            },
            // Ours from an attempt whose answer was lost, an earlier session's, or someone
            // else's: taken over with our data, as Curator does.
            Some(Err(zookeeper_client::Error::NodeExists)) => {
                self.take_over(session, &zk, path, &desired).await
            }
            Some(Err(error)) => self.classify(error),
            None => Step::Retry(Error::ConnectionLoss),
        }
    }

    /// Writes `desired` to the node found at `path`.
    async fn take_over(
        &self,
        session: &Arc<Session>,
        zk: &zookeeper_client::Client,
        path: &str,
        desired: &Desired,
    ) -> Step {
        let written = tokio::select! {
            _ = session.lost() => return Step::Again,
            written = unless_down_for(zk, self.client.connection_timeout(), zk.set_data(path, &desired.data, None)) => written,
        };
        match written {
            Some(Ok(stat)) => {
                if is_ephemeral(self.mode) != (stat.ephemeral_owner != 0) {
                    tracing::warn!(%path, mode = ?self.mode, "persistent node: took over a node of another kind");
                }
                Step::Made {
                    path: path.to_owned(),
                    session: session.clone(),
                    serial: desired.serial,
                }
            }
            // Gone meanwhile: make it.
            Some(Err(zookeeper_client::Error::NoNode)) => Step::Again,
            Some(Err(error)) => self.classify(error),
            None => Step::Retry(Error::ConnectionLoss),
        }
    }

    /// Checks that the node believed present at `path` is there, with a watch, writes newer
    /// data, and waits for something to change.
    async fn keep(&self, session: &Arc<Session>, path: &str, owner: &Arc<Session>) -> Step {
        if is_ephemeral(self.mode) && owner.generation() != session.generation() {
            // The node went (or goes) with the session that owned it.
            return Step::Gone {
                path: path.to_owned(),
            };
        }
        let mut desired_rx = self.desired.subscribe();
        let desired = desired_rx.borrow_and_update().clone();
        let Some(zk) = session.zookeeper().ok().filter(|_| !session.is_lost()) else {
            return Step::Again;
        };
        let checked = tokio::select! {
            _ = self.stop.cancelled() => return Step::Again,
            _ = session.lost() => return Step::Again,
            checked = unless_down_for(&zk, self.client.connection_timeout(), zk.check_and_watch_stat(path)) => checked,
        };
        let watcher = match checked {
            Some(Ok((Some(_), watcher))) => watcher,
            Some(Ok((None, _))) => {
                return Step::Gone {
                    path: path.to_owned(),
                }
            }
            Some(Err(error)) => return self.classify(error),
            None => return Step::Retry(Error::ConnectionLoss),
        };
        if desired.serial > self.status.borrow().written {
            let written = tokio::select! {
                _ = session.lost() => return Step::Again,
                written = unless_down_for(&zk, self.client.connection_timeout(), zk.set_data(path, &desired.data, None)) => written,
            };
            return match written {
                Some(Ok(_)) => {
                    self.status
                        .send_modify(|status| status.written = status.written.max(desired.serial));
                    Step::Again
                }
                Some(Err(zookeeper_client::Error::NoNode)) => Step::Gone {
                    path: path.to_owned(),
                },
                Some(Err(error)) => match self.classify(error) {
                    // The node stays; the data cannot be written: the caller hears why, and
                    // the write is not tried again until newer data is given.
                    Step::Fatal(error) => {
                        tracing::warn!(%path, %error, "persistent node: the data cannot be written");
                        self.status.send_modify(|status| {
                            status.written = status.written.max(desired.serial);
                            status.write_failure = Some((desired.serial, error));
                        });
                        Step::Again
                    }
                    other => other,
                },
                None => Step::Retry(Error::ConnectionLoss),
            };
        }
        drop(zk);
        tokio::select! {
            _ = self.stop.cancelled() => Step::Again,
            _ = session.lost() => Step::Again,
            _ = desired_rx.changed() => Step::Again,
            event = watcher.changed() => match event.event_type {
                EventType::NodeDeleted => Step::Gone { path: path.to_owned() },
                // A change of data (ours or someone's), or the session's end: look again.
                _ => Step::Again,
            },
        }
    }
}

/// `path`'s parent and last segment.
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}
