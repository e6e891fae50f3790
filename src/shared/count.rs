//! [`SharedCount`]: a count shared through one znode, in Curator's `SharedCount` format.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use zookeeper_client::CreateMode;

use crate::cache::{CacheEvent, CacheEvents, CuratorCache};
use crate::connection::Client;
use crate::error::{Error, Result};
use crate::path::validate_recipe_path;

/// A count shared through one znode, in Curator's `SharedCount` format (a Java `int`: 4
/// bytes, big-endian), that every process sees change: a feature switch, a limit (the limit
/// of a semaphore made with
/// [`InterProcessSemaphoreV2::with_shared_count`](crate::InterProcessSemaphoreV2::with_shared_count)).
///
/// Reads and writes go to the server; [`versioned`](Self::versioned) and
/// [`try_set`](Self::try_set) are Curator's `VersionedValue` and `trySetCount` (a write that
/// fails when someone wrote since the read), and [`changes`](Self::changes) is a stream of
/// every new value, the latest never skipped, reconnections and new sessions included
/// (Curator's `SharedCountListener`).
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::shared::SharedCount;
/// let count = SharedCount::new(&client, "/semaphores/render-limit")?;
/// count.set(5).await?; // every semaphore on it lets five in
/// assert_eq!(count.get().await?, Some(5));
/// let seen = count.versioned().await?.expect("set above");
/// if !count.try_set(seen, seen.value + 1).await? {
///     // someone else changed it since: read again
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SharedCount {
    client: Client,
    pub(crate) path: String,
}

impl SharedCount {
    /// The count in the node `path`. Nothing is sent until it is read or set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a path ZooKeeper would refuse.
    pub fn new(client: &Client, path: &str) -> Result<Self> {
        validate_recipe_path(path)?;
        Ok(Self {
            client: client.clone(),
            path: path.to_owned(),
        })
    }

    /// The count's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The count, or `None` if its node does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedData`] if the node does not hold a 4-byte count, and the errors of
    /// [`Client::with_retry`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get(&self) -> Result<Option<i32>> {
        Ok(self.versioned().await?.map(|v| v.value))
    }

    /// The count and its node's version, or `None` if its node does not exist (Curator's
    /// `getVersionedValue`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn versioned(&self) -> Result<Option<VersionedValue<i32>>> {
        match self.client.get_data(&self.path).await? {
            Some((data, stat)) => Ok(Some(VersionedValue {
                version: stat.version,
                value: decode_int(&self.path, &data)?,
            })),
            None => Ok(None),
        }
    }

    /// Sets the count to `new_count` if its node still has `previous`'s version (nobody wrote
    /// since it was read): `true` if it did (Curator's `trySetCount`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a negative version (ZooKeeper takes -1 for "any
    /// version"); the errors of [`Client::with_retry`]; [`Error::NoAuth`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped.
    pub async fn try_set(&self, previous: VersionedValue<i32>, new_count: i32) -> Result<bool> {
        if previous.version < 0 {
            // -1 is "any version" to ZooKeeper: the write would not be conditional at all.
            return Err(Error::InvalidArgument(format!(
                "a versioned value with version {} cannot be set conditionally (Curator's \
                 IllegalTrySetVersionException)",
                previous.version
            )));
        }
        match self
            .client
            .set_data(&self.path, &new_count.to_be_bytes(), Some(previous.version))
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::ZooKeeper(
                zookeeper_client::Error::BadVersion | zookeeper_client::Error::NoNode,
            )) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes the count's node with `seed` if it does not exist (Curator's `SharedCount`
    /// seed, written when it starts): `true` if it made it.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::create`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may be made even if the future is dropped.
    pub async fn seed(&self, seed: i32) -> Result<bool> {
        match self
            .client
            .create(&self.path, &seed.to_be_bytes(), CreateMode::Persistent, &[])
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::ZooKeeper(zookeeper_client::Error::NodeExists)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every value the count takes from now on, each with its version, starting with the
    /// current one once read: a [`CuratorCache`] of the node, so a value written while the
    /// connection was down is read when it is back, and the latest value is never skipped
    /// (values that follow each other faster than they are read may be seen as the last of
    /// them). A node that does not hold a count is skipped with a trace event.
    ///
    /// # Errors
    ///
    /// The errors of [`CuratorCache::start`] ([`Error::Unsupported`] on a server without
    /// persistent watches).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: a dropped call leaves nothing running.
    pub async fn changes(&self) -> Result<CountChanges> {
        let cache = CuratorCache::builder(&self.client, &self.path)
            .single_node()
            .build()?;
        let events = cache.events();
        cache.start().await?;
        Ok(CountChanges {
            path: self.path.clone(),
            cache,
            events,
        })
    }

    /// Sets the count, creating its node (and missing parents) if need be, as Curator's
    /// `SharedCount` does with its seed.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::with_retry`]; [`Error::NoAuth`] if an ACL forbids the write.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped.
    pub async fn set(&self, count: i32) -> Result<()> {
        let data = count.to_be_bytes();
        match self.client.set_data(&self.path, &data, None).await {
            Ok(_) => Ok(()),
            Err(Error::ZooKeeper(zookeeper_client::Error::NoNode)) => {
                if let Some((parent, _)) = self.path.rsplit_once('/') {
                    if !parent.is_empty() {
                        self.client.ensure_path(parent, true).await?;
                    }
                }
                match self
                    .client
                    .create(&self.path, &data, CreateMode::Persistent, &[])
                    .await
                {
                    Ok(_) => Ok(()),
                    // Someone made it meanwhile: set it.
                    Err(Error::ZooKeeper(zookeeper_client::Error::NodeExists)) => self
                        .client
                        .set_data(&self.path, &data, None)
                        .await
                        .map(drop),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// A count in Curator's `SharedCount` format: 4 bytes, big-endian.
fn decode_int(path: &str, data: &[u8]) -> Result<i32> {
    let bytes: [u8; 4] = data.try_into().map_err(|_| {
        Error::MalformedData(format!(
            "the shared count {path:?} holds {} bytes, not a 4-byte count",
            data.len()
        ))
    })?;
    Ok(i32::from_be_bytes(bytes))
}

/// A count as a semaphore's limit: a negative one counts as 0.
pub(crate) fn decode_count(path: &str, data: &[u8]) -> Result<u32> {
    Ok(u32::try_from(decode_int(path, data)?).unwrap_or(0))
}

/// A count and the version of its node (Curator's `VersionedValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionedValue<T> {
    /// The node's version when the value was read.
    pub version: i32,
    /// The value.
    pub value: T,
}

/// The stream of a [`SharedCount`]'s values: see [`SharedCount::changes`]. Dropping it stops
/// the watch.
pub struct CountChanges {
    path: String,
    cache: CuratorCache,
    events: CacheEvents,
}

impl std::fmt::Debug for CountChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountChanges")
            .field("path", &self.path)
            .finish()
    }
}

impl Stream for CountChanges {
    type Item = VersionedValue<i32>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let node = match self.events.poll_next_unpin(cx) {
                Poll::Ready(Some(
                    CacheEvent::Created(node) | CacheEvent::Changed { new: node, .. },
                )) => node,
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match decode_int(&self.path, node.data().unwrap_or_default()) {
                Ok(value) => {
                    return Poll::Ready(Some(VersionedValue {
                        version: node.stat().version,
                        value,
                    }))
                }
                Err(error) => tracing::warn!(%error, "skipping a value that is not a count"),
            }
        }
    }
}

impl Drop for CountChanges {
    fn drop(&mut self) {
        let cache = self.cache.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { cache.close().await });
        }
    }
}
