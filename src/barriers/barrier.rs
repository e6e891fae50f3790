//! [`DistributedBarrier`]: a gate held by one node.

use std::time::Duration;

use zookeeper_client::{CreateMode, EventType};

use crate::connection::Client;
use crate::error::{Error, Result};
use crate::path::validate_recipe_path;

/// A gate (Curator's `DistributedBarrier`): while the node at its path exists, waiters wait;
/// once it is deleted, they go on.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::barriers::DistributedBarrier;
/// let barrier = DistributedBarrier::new(&client, "/jobs/nightly/gate")?;
/// barrier.set_barrier().await?;
/// // ... elsewhere, workers: barrier.wait_on_barrier().await?;
/// barrier.remove_barrier().await?; // the workers go on
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedBarrier {
    client: Client,
    path: String,
}

impl DistributedBarrier {
    /// The barrier at `path`. Nothing is sent until it is used.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad path (or `/`).
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        validate_recipe_path(path)?;
        Ok(Self {
            client: client.clone(),
            path: path.to_owned(),
        })
    }

    /// The barrier's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sets the barrier: makes its node (a persistent node; missing parents as containers).
    /// Setting a set barrier is fine.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::create`] other than `NodeExists`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: the node may be made even if the future is dropped, which is
    /// what was asked.
    pub async fn set_barrier(&self) -> Result<()> {
        match self
            .client
            .create(&self.path, &[], CreateMode::Persistent, &[])
            .await
        {
            Ok(_) | Err(Error::ZooKeeper(zookeeper_client::Error::NodeExists)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the barrier: deletes its node, letting every waiter go. Removing a barrier not
    /// set is fine.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::delete`]; `NotEmpty` if someone made children below it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: the node may be deleted even if the future is dropped.
    pub async fn remove_barrier(&self) -> Result<()> {
        self.client.delete(&self.path, None).await.map(drop)
    }

    /// Waits until the barrier is not set (at once if it is not).
    ///
    /// # Errors
    ///
    /// The errors of [`Client::with_retry`] when a read of the barrier fails under the client's
    /// policy; [`Error::Closed`]. A disconnection while waiting is waited out (the watch is set
    /// again on reconnection); a lost session reads the barrier again on the next one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads and watches.
    pub async fn wait_on_barrier(&self) -> Result<()> {
        self.wait(None).await.map(drop)
    }

    /// Waits until the barrier is not set, for at most `timeout`: `true` if it is not,
    /// `false` if it still was when the time ran out.
    ///
    /// # Errors
    ///
    /// As [`wait_on_barrier`](Self::wait_on_barrier).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_on_barrier_for(&self, timeout: Duration) -> Result<bool> {
        self.wait(Some(timeout)).await
    }

    async fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let path = self.path.as_str();
        loop {
            // An existence watch, set by the read that finds the node; a reconnection sets it
            // again (ZOOKEEPER-43), and a new session is a new read here.
            let watched = self
                .client
                .with_retry(|zk| async move {
                    let (stat, watcher) = zk.check_and_watch_stat(path).await?;
                    Ok::<_, zookeeper_client::Error>(stat.map(|_| watcher))
                })
                .await?;
            let Some(watcher) = watched else {
                return Ok(true);
            };
            let session = self.client.session();
            let changed = async {
                tokio::select! {
                    event = watcher.changed() => Some(event),
                    _ = session.lost() => None,
                }
            };
            let event = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, changed).await {
                    Ok(event) => event,
                    Err(_) => return Ok(false),
                },
                None => changed.await,
            };
            if let Some(event) = event {
                if event.event_type == EventType::NodeDeleted {
                    return Ok(true);
                }
            }
        }
    }
}
