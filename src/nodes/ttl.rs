//! [`PersistentTtlNode`]: a container node that outlives its process by at most a TTL.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client::CreateMode;

use super::persistent::{NodeControl, PersistentNode, PersistentNodeBuilder};
use crate::connection::Client;
use crate::error::{Error, Result};
use crate::lifecycle::RecipeState;
use crate::path::join;
use crate::sync::Locked;

/// Curator's `PersistentTtlNode.DEFAULT_CHILD_NODE_NAME`.
pub const DEFAULT_TOUCH_CHILD: &str = "touch";
/// Curator's `PersistentTtlNode.DEFAULT_TOUCH_SCHEDULE_FACTOR`: the child is touched every
/// TTL ÷ this.
pub const DEFAULT_TOUCH_SCHEDULE_FACTOR: u32 = 2;

/// A node kept present while this process runs, and deleted by the server at most a TTL after
/// it stops (Curator's `PersistentTtlNode`, on the same znodes).
///
/// # Behavior
///
/// The node itself is a container, kept by a [`PersistentNode`] with its data; below it a TTL
/// child (`touch` by default) is written every TTL ÷ 2, and made again with the TTL when it is
/// gone. The server deletes the child once it has gone a TTL without a write, and then the
/// container, now empty. The writes go to the child, so watchers of the node see no change
/// from them.
///
/// TTL nodes need a server with `zookeeper.extendedTypesEnabled=true`. Elsewhere the first
/// write of the child fails: the node deletes its container and stops, and
/// [`wait_for_initial_create`](Self::wait_for_initial_create) returns
/// [`Error::Unsupported`]. A child refused for another reason no retry cures (an ACL: `NoAuth`)
/// stops the node the same way, with that error.
///
/// [`close`](Self::close) stops the writes and leaves the node to its TTL, as Curator does.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::PersistentTtlNode;
///
/// let node = PersistentTtlNode::new(&client, "/jobs/nightly/owner", Duration::from_secs(30), &b"host-1"[..])?;
/// node.start()?;
/// assert!(node.wait_for_initial_create(Duration::from_secs(10)).await?);
/// // ... work; if this process dies, the node goes within about 30 s ...
/// node.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentTtlNode {
    node: PersistentNode,
    client: Client,
    child_path: String,
    ttl: Duration,
    touch_every: Duration,
    stop: CancellationToken,
    touched: Arc<watch::Sender<Touched>>,
    touch_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What [`PersistentTtlNode`] is to make: set with [`PersistentTtlNode::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct PersistentTtlNodeBuilder {
    node: PersistentNodeBuilder,
    client: Client,
    path: String,
    ttl: Duration,
    child_name: String,
    touch_schedule_factor: u32,
}

impl PersistentTtlNodeBuilder {
    /// The node's data; empty by default.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// let node = zk_recipes::PersistentTtlNode::builder(&client, "/owners/a", Duration::from_secs(30))
    ///     .data(&b"host-1"[..])
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.node = self.node.data(data);
        self
    }

    /// The name of the TTL child; [`DEFAULT_TOUCH_CHILD`] by default.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// let node = zk_recipes::PersistentTtlNode::builder(&client, "/owners/a", Duration::from_secs(30))
    ///     .child_name("alive")
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn child_name(mut self, name: &str) -> Self {
        self.child_name = name.to_owned();
        self
    }

    /// How often the child is written, as a divisor of the TTL;
    /// [`DEFAULT_TOUCH_SCHEDULE_FACTOR`] by default.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// let node = zk_recipes::PersistentTtlNode::builder(&client, "/owners/a", Duration::from_secs(30))
    ///     .touch_schedule_factor(3) // every 10 s
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn touch_schedule_factor(mut self, factor: u32) -> Self {
        self.touch_schedule_factor = factor;
        self
    }

    /// The node, not started.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidPath`] for a bad path or child name;
    /// * [`Error::InvalidArgument`] for a TTL of zero or over 2⁴⁰ − 1 ms, a schedule factor of
    ///   0, or data over the client's [`max_request_size`](Client::max_request_size).
    pub fn build(self) -> Result<PersistentTtlNode> {
        if self.child_name.is_empty() || self.child_name.contains('/') {
            return Err(Error::invalid_path(
                self.child_name,
                "a child name is one non-empty path segment",
            ));
        }
        if self.touch_schedule_factor == 0 {
            return Err(Error::InvalidArgument(
                "the touch schedule factor must be at least 1".to_owned(),
            ));
        }
        // The TTL is checked as a TTL node's would be.
        PersistentNode::builder(&self.client, &self.path, CreateMode::Persistent)
            .ttl(self.ttl)
            .build()?;
        let child_path = join(&self.path, &self.child_name);
        crate::path::validate_path(&child_path)?;
        let node = self.node.build()?;
        let (touched, _) = watch::channel(Touched::default());
        Ok(PersistentTtlNode {
            node,
            client: self.client,
            child_path,
            ttl: self.ttl,
            touch_every: self.ttl / self.touch_schedule_factor,
            stop: CancellationToken::new(),
            touched: Arc::new(touched),
            touch_task: std::sync::Mutex::new(None),
        })
    }
}

/// The touch task's progress.
#[derive(Debug, Clone, Default)]
struct Touched {
    /// The child has been written at least once.
    once: bool,
    /// Why the task stopped.
    failure: Option<Error>,
}

impl PersistentTtlNode {
    /// A builder for the node at `path`, deleted by the server at most about `ttl` after this
    /// process stops writing its child.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// let node = zk_recipes::PersistentTtlNode::builder(&client, "/owners/a", Duration::from_secs(30))
    ///     .build()?;
    /// # drop(node); Ok(()) }
    /// ```
    pub fn builder(client: &Client, path: &str, ttl: Duration) -> PersistentTtlNodeBuilder {
        PersistentTtlNodeBuilder {
            node: PersistentNode::builder(client, path, CreateMode::Container)
                .delete_on_close(false),
            client: client.clone(),
            path: path.to_owned(),
            ttl,
            child_name: DEFAULT_TOUCH_CHILD.to_owned(),
            touch_schedule_factor: DEFAULT_TOUCH_SCHEDULE_FACTOR,
        }
    }

    /// The node at `path` with `data` and Curator's defaults: Curator's
    /// `new PersistentTtlNode(client, path, ttlMs, initData)`.
    ///
    /// # Errors
    ///
    /// As [`PersistentTtlNodeBuilder::build`].
    pub fn new(
        client: &Client,
        path: &str,
        ttl: Duration,
        data: impl Into<Vec<u8>>,
    ) -> Result<Self> {
        Self::builder(client, path, ttl).data(data).build()
    }

    /// Starts keeping the node and writing its child.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::start`].
    pub fn start(&self) -> Result<()> {
        self.node.start()?;
        let task = TouchTask {
            client: self.client.clone(),
            parent: self.node.path().to_owned(),
            child_path: self.child_path.clone(),
            ttl: self.ttl,
            touch_every: self.touch_every,
            stop: self.stop.clone(),
            touched: self.touched.clone(),
            node: self.node.control(),
        };
        let handle = self.client.spawn(task.run());
        *self.touch_task.locked() = Some(handle);
        Ok(())
    }

    /// Waits until the node has been made and its child written once; `Ok(false)` if that
    /// takes longer than `timeout`.
    ///
    /// # Errors
    ///
    /// * [`Error::Unsupported`] if the server makes no TTL nodes, [`Error::NoAuth`] if an ACL
    ///   refuses the child;
    /// * as [`PersistentNode::wait_for_initial_create`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        if !self.node.wait_for_initial_create(timeout).await? {
            return Ok(false);
        }
        let mut touched = self.touched.subscribe();
        let done = tokio::time::timeout_at(
            deadline,
            touched.wait_for(|touched| touched.once || touched.failure.is_some()),
        )
        .await;
        match done {
            Ok(Ok(touched)) => match &touched.failure {
                Some(error) if !touched.once => Err(error.clone()),
                _ => Ok(true),
            },
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Ok(false),
        }
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// The data the node holds or is made with: the last given.
    pub fn data(&self) -> Vec<u8> {
        self.node.data()
    }

    /// Where the node is in its life.
    pub fn state(&self) -> RecipeState {
        self.node.state()
    }

    /// Keeps `data` as the node's data and writes it to the node: see
    /// [`PersistentNode::set_data`].
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::set_data`].
    ///
    /// # Cancel safety
    ///
    /// As [`PersistentNode::set_data`]: cancel safe.
    pub async fn set_data(&self, data: impl Into<Vec<u8>>) -> Result<()> {
        self.node.set_data(data).await
    }

    /// Stops writing the child and keeping the node, and leaves both to their TTL (Curator's
    /// `close`). Closing twice is fine.
    ///
    /// A node closed before its child was first written is deleted at once: a container that
    /// never had a child is never reaped.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::delete`], for that delete.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn close(&self) -> Result<()> {
        self.stop.cancel();
        // A touch under way ends first, so that none is made after the close.
        let touch_task = self.touch_task.locked().take();
        if let Some(task) = touch_task {
            let _ = task.await;
        }
        self.node.close().await?;
        if !self.touched.borrow().once {
            // A container that never had a child is never reaped by the server
            // (ZOOKEEPER-3546; Curator 5.9 makes the node a TTL node for this): the node goes
            // now, since no TTL child will take it.
            match self.client.delete(self.node.path(), None).await {
                // A touch that was under way when the node closed: the TTL takes it now.
                Ok(_) | Err(Error::ZooKeeper(zookeeper_client::Error::NotEmpty)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

impl Drop for PersistentTtlNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Whether a touch's failure is one no retry cures: the server makes no TTL nodes, or an ACL
/// refuses the child (a missing node is the node being made again).
fn stops_touching(error: &Error) -> bool {
    match error {
        Error::ZooKeeper(zookeeper_client::Error::NoNode) => false,
        error => !error.is_retryable(),
    }
}

/// Writes the TTL child every `touch_every` while the node lives.
struct TouchTask {
    client: Client,
    parent: String,
    child_path: String,
    ttl: Duration,
    touch_every: Duration,
    stop: CancellationToken,
    touched: Arc<watch::Sender<Touched>>,
    node: NodeControl,
}

impl TouchTask {
    async fn run(self) {
        // The first touch right after the node is made (Curator's waits a period), so that
        // a server without TTL nodes is known at once.
        let made = tokio::select! {
            _ = self.stop.cancelled() => return,
            made = self.node.made() => made,
        };
        if !made {
            return;
        }
        loop {
            match self.touch().await {
                Ok(()) => self.touched.send_modify(|touched| touched.once = true),
                Err(error) if stops_touching(&error) => {
                    tracing::warn!(path = %self.child_path, %error, "TTL node: the child cannot be written");
                    // Nothing of ours may stay behind: the container never had a child, so
                    // the server would keep it. The node stops first, or it would make it again.
                    self.node.stop().await;
                    let _ = self.client.delete(&self.parent, None).await;
                    self.touched
                        .send_modify(|touched| touched.failure = Some(error));
                    self.stop.cancel();
                    return;
                }
                // The node may be being made again; the next touch tries again.
                Err(error) => {
                    tracing::debug!(path = %self.child_path, %error, "TTL node: touch failed");
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(self.touch_every) => {}
            }
        }
    }

    /// Writes the child, or makes it with the TTL when it is gone (Curator's touch).
    async fn touch(&self) -> Result<()> {
        let child = self.child_path.as_str();
        let ttl = self.ttl;
        let acls = self.client.default_acls();
        self.client
            .with_retry(|zk| async move {
                match zk.set_data(child, &[], None).await {
                    Err(zookeeper_client::Error::NoNode) => {}
                    other => return other.map(drop),
                }
                let options = CreateMode::Persistent.with_acls(acls).with_ttl(ttl);
                match zk.create(child, &[], &options).await {
                    Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(|error| match error {
                Error::ZooKeeper(zookeeper_client::Error::Unimplemented) => Error::Unsupported {
                    feature: "TTL nodes",
                    reason: "the server needs zookeeper.extendedTypesEnabled=true".to_owned(),
                },
                other => other,
            })
    }
}
