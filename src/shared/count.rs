//! [`SharedCount`]: a count shared through one znode, in Curator's `SharedCount` format.

use zookeeper_client::CreateMode;

use crate::connection::Client;
use crate::error::{Error, Result};
use crate::path::validate_recipe_path;

/// A count shared through one znode, in Curator's `SharedCount` format (the value as 4 bytes,
/// big-endian): the limit of a semaphore made with
/// [`InterProcessSemaphoreV2::with_shared_count`](crate::InterProcessSemaphoreV2::with_shared_count).
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::shared::SharedCount;
/// let count = SharedCount::new(&client, "/semaphores/render-limit")?;
/// count.set(5).await?; // every semaphore on it lets five in
/// assert_eq!(count.get().await?, Some(5));
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
    /// [`Error::InvalidArgument`] if the node does not hold a 4-byte count, and the errors of
    /// [`Client::with_retry`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get(&self) -> Result<Option<u32>> {
        match self.client.get_data(&self.path).await? {
            Some((data, _)) => decode_count(&self.path, &data).map(Some),
            None => Ok(None),
        }
    }

    /// Sets the count, creating its node (and missing parents) if need be, as Curator's
    /// `SharedCount` does with its seed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a count above `i32::MAX` (Curator's count is a Java
    /// `int`); the errors of [`Client::with_retry`]; [`Error::NoAuth`] if an ACL forbids the
    /// write.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may be applied even if the future is dropped.
    pub async fn set(&self, count: u32) -> Result<()> {
        // Curator's count is a Java int.
        let value = i32::try_from(count).map_err(|_| {
            Error::InvalidArgument(format!("a shared count is at most {}", i32::MAX))
        })?;
        let data = value.to_be_bytes();
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

/// A count in Curator's `SharedCount` format (it reads the first four bytes); a negative one
/// counts as 0.
pub(crate) fn decode_count(path: &str, data: &[u8]) -> Result<u32> {
    let bytes: [u8; 4] = data
        .get(..4)
        .and_then(|first| first.try_into().ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the shared count {path:?} holds {} bytes, not a 4-byte count",
                data.len()
            ))
        })?;
    Ok(u32::try_from(i32::from_be_bytes(bytes)).unwrap_or(0))
}
