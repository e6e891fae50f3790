//! [`DistributedDoubleBarrier`]: members enter together and leave together.

use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client::{CreateMode, OneshotWatcher};

use crate::connection::{Client, Session};
use crate::error::{Error, Result};
use crate::path::{join, validate_recipe_path};

/// The name of the node that says the barrier is full (Curator's `READY_NODE`).
const READY: &str = "ready";

/// A double barrier (Curator's `DistributedDoubleBarrier`): `member_qty` members
/// [`enter`](Self::enter), and none goes on until all have entered; then each
/// [`leave`](Self::leave)s, and none goes on until all have left.
///
/// # Behavior
///
/// On Curator's znodes: each member is an ephemeral node `<path>/<uuid>`, and the first
/// member to see the barrier full makes `<path>/ready`, which lets everyone in. Leaving is
/// Curator's: the lowest member waits for the highest to go, the others delete their node and
/// wait for the lowest to go, until none is left; then `ready` is deleted. So Java and Rust
/// members meet at one barrier.
///
/// A member whose session is lost while it waits has left the barrier with it (its node went
/// with the session): the call fails with [`Error::SessionExpired`] (Curator throws
/// `ConnectionLossException`). A member whose [`enter_for`](Self::enter_for) times out takes
/// its node away again, so that the others do not count it (Curator leaves it).
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::barriers::DistributedDoubleBarrier;
/// let barrier = DistributedDoubleBarrier::new(&client, "/jobs/nightly/barrier", 5)?;
/// barrier.enter().await?; // all five are in
/// // ... the work ...
/// barrier.leave().await?; // all five are out
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedDoubleBarrier {
    client: Client,
    path: String,
    member_qty: usize,
    our_name: String,
    our_path: String,
    ready_path: String,
}

impl DistributedDoubleBarrier {
    /// A member of the barrier at `path` of `member_qty` members.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad path (or `/`); [`Error::InvalidArgument`] for 0
    /// members.
    pub fn new(client: &Client, path: &str, member_qty: usize) -> Result<Self> {
        validate_recipe_path(path)?;
        if member_qty == 0 {
            return Err(Error::InvalidArgument(
                "a double barrier has at least one member".to_owned(),
            ));
        }
        let our_name = uuid::Uuid::new_v4().to_string();
        Ok(Self {
            client: client.clone(),
            our_path: join(path, &our_name),
            ready_path: join(path, READY),
            path: path.to_owned(),
            member_qty,
            our_name,
        })
    }

    /// The barrier's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Enters, and waits until all members have.
    ///
    /// # Errors
    ///
    /// [`Error::SessionExpired`] if the session is lost meanwhile; the errors of
    /// [`Client::with_retry`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped call leaves this member's node until its session ends (call
    /// [`leave`](Self::leave), or use [`enter_for`](Self::enter_for)).
    pub async fn enter(&self) -> Result<()> {
        self.enter_until(None).await.map(drop)
    }

    /// Enters, and waits at most `timeout` for all members: `true` if all entered, `false`
    /// if the time ran out (this member has then left again).
    ///
    /// # Errors
    ///
    /// As [`enter`](Self::enter).
    ///
    /// # Cancel safety
    ///
    /// As [`enter`](Self::enter).
    pub async fn enter_for(&self, timeout: Duration) -> Result<bool> {
        let entered = self.enter_until(Some(Instant::now() + timeout)).await?;
        if !entered {
            self.client.delete(&self.our_path, None).await?;
        }
        Ok(entered)
    }

    /// Leaves, and waits until all members have.
    ///
    /// # Errors
    ///
    /// [`Error::SessionExpired`] if the session is lost meanwhile; [`Error::NodeDeleted`] if
    /// this member's node was deleted by someone else; the errors of [`Client::with_retry`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped call may have deleted this member's node.
    pub async fn leave(&self) -> Result<()> {
        self.leave_until(None).await.map(drop)
    }

    /// Leaves, and waits at most `timeout` for all members: `true` if all left.
    ///
    /// # Errors
    ///
    /// As [`leave`](Self::leave).
    ///
    /// # Cancel safety
    ///
    /// As [`leave`](Self::leave).
    pub async fn leave_for(&self, timeout: Duration) -> Result<bool> {
        self.leave_until(Some(Instant::now() + timeout)).await
    }

    /// An existence check of `path` with a watch.
    async fn watch_exists(&self, path: &str) -> Result<(bool, OneshotWatcher)> {
        self.client
            .with_retry(|zk| async move {
                let (stat, watcher) = zk.check_and_watch_stat(path).await?;
                Ok::<_, zookeeper_client::Error>((stat.is_some(), watcher))
            })
            .await
    }

    /// Waits for `watchers` to fire (any of them), or `session` (the member's, which its node
    /// goes with) to be lost, or `deadline`: `false` at the deadline.
    async fn wait_any(
        &self,
        session: &Session,
        watchers: Vec<OneshotWatcher>,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        let fired =
            futures::future::select_all(watchers.into_iter().map(|w| Box::pin(w.changed())));
        let waited = async {
            tokio::select! {
                _ = fired => Ok(()),
                _ = session.lost() => Err(Error::SessionExpired),
            }
        };
        match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, waited).await {
                Ok(outcome) => outcome.map(|()| true),
                Err(_) => Ok(false),
            },
            None => waited.await.map(|()| true),
        }
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let session = self.client.session();
        let (ready, ready_watch) = self.watch_exists(&self.ready_path).await?;
        match self
            .client
            .create(&self.our_path, &[], CreateMode::Ephemeral, &[])
            .await
        {
            // A create of ours whose answer was lost, retried.
            Ok(_) | Err(Error::ZooKeeper(zookeeper_client::Error::NodeExists)) => {}
            Err(e) => return Err(e),
        }
        if ready {
            return Ok(true);
        }
        let mut ready_watch = Some(ready_watch);
        loop {
            if session.is_lost() {
                return Err(Error::SessionExpired);
            }
            let path = self.path.as_str();
            let (children, children_watch) = self
                .client
                .with_retry(|zk| async move {
                    let (children, _, watcher) = zk.get_and_watch_children(path).await?;
                    Ok::<_, zookeeper_client::Error>((children, watcher))
                })
                .await?;
            if children.iter().any(|c| c == READY) {
                return Ok(true);
            }
            if children.len() >= self.member_qty {
                match self
                    .client
                    .create(&self.ready_path, &[], CreateMode::Persistent, &[])
                    .await
                {
                    Ok(_) | Err(Error::ZooKeeper(zookeeper_client::Error::NodeExists)) => {}
                    Err(e) => return Err(e),
                }
                return Ok(true);
            }
            let mut watchers = vec![children_watch];
            watchers.extend(ready_watch.take());
            if !self.wait_any(&session, watchers, deadline).await? {
                return Ok(false);
            }
        }
    }

    async fn leave_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let session = self.client.session();
        let mut ours_should_exist = true;
        loop {
            if session.is_lost() {
                return Err(Error::SessionExpired);
            }
            let mut children: Vec<String> = self
                .client
                .children(&self.path)
                .await?
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c != READY)
                .collect();
            children.sort();
            if children.is_empty() {
                break;
            }
            let ours = children.iter().position(|c| *c == self.our_name);
            if ours.is_none() && ours_should_exist {
                return Err(Error::NodeDeleted {
                    path: self.our_path.clone(),
                });
            }
            if children.len() == 1 {
                if ours_should_exist {
                    self.delete_ours().await?;
                }
                break;
            }
            let watched = if ours == Some(0) {
                // The lowest waits for the highest to go.
                join(&self.path, children.last().expect("two or more"))
            } else {
                // The others go, and wait for the lowest.
                let lowest = join(&self.path, &children[0]);
                if ours_should_exist {
                    self.delete_ours().await?;
                    ours_should_exist = false;
                }
                lowest
            };
            let (exists, watcher) = self.watch_exists(&watched).await?;
            if exists && !self.wait_any(&session, vec![watcher], deadline).await? {
                return Ok(false);
            }
        }
        match self.client.delete(&self.ready_path, None).await {
            Ok(_) => {}
            // A member of the next round may have made children below: not ours to fix.
            Err(Error::ZooKeeper(zookeeper_client::Error::NotEmpty)) => {}
            Err(e) => return Err(e),
        }
        Ok(true)
    }

    async fn delete_ours(&self) -> Result<()> {
        self.client.delete(&self.our_path, None).await.map(drop)
    }
}
