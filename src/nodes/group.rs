//! [`GroupMember`]: group membership, on Curator's znodes.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use zookeeper_client::CreateMode;

use super::persistent::PersistentNode;
use crate::cache::{CacheEvent, CacheEvents, CachedNode, CuratorCache};
use crate::connection::Client;
use crate::error::{Error, Result};
use crate::lifecycle::RecipeState;
use crate::path::join;

/// One member of a group, and this member's view of the group (Curator's `GroupMember`, on the
/// same znodes: Java and Rust members of one path form one group).
///
/// # Behavior
///
/// * **This member** is the ephemeral node `<path>/<id>` with its payload, kept by a
///   [`PersistentNode`]: made again after a new session or a deletion, always with the latest
///   payload. Ids must be unique in the group, as in Curator.
/// * **The group** is a [`CuratorCache`] of the path's children: every join, leave and payload
///   change is seen (none missed, none a phantom, also across disconnections and new
///   sessions), in the order the server made them per member. [`members`](Self::members)
///   always lists this member while it is started, with its latest payload, as Curator's
///   `getCurrentMembers` does.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// use zk_recipes::{GroupMember, MembershipEvent};
///
/// let member = GroupMember::new(&client, "/services/billing", "host-1", &b"10.0.0.1:9000"[..])?;
/// member.start().await?;
/// for (id, payload) in member.members() {
///     println!("{id} at {}", String::from_utf8_lossy(&payload));
/// }
/// let mut changes = member.events();
/// while let Some(event) = changes.next().await {
///     match event {
///         MembershipEvent::Joined { id, .. } => println!("{id} joined"),
///         MembershipEvent::Left { id } => println!("{id} left"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GroupMember {
    path: String,
    id: String,
    node: PersistentNode,
    cache: CuratorCache,
}

impl GroupMember {
    /// The member `id` of the group at `path`, with `payload` (Curator's
    /// `new GroupMember(client, membershipPath, thisId, payload)`). Not started.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidPath`] for a bad `path` (or `/`), or an `id` that is empty, holds a
    ///   `/`, or is `.` or `..`;
    /// * [`Error::InvalidArgument`] for a payload over the client's
    ///   [`max_request_size`](Client::max_request_size).
    pub fn new(client: &Client, path: &str, id: &str, payload: impl Into<Vec<u8>>) -> Result<Self> {
        crate::path::validate_recipe_path(path)?;
        if id.is_empty() || id.contains('/') {
            return Err(Error::invalid_path(
                id,
                "a member id is one non-empty path segment",
            ));
        }
        let node = PersistentNode::new(client, &join(path, id), CreateMode::Ephemeral, payload)?;
        let cache = CuratorCache::builder(client, path).children().build()?;
        Ok(Self {
            path: path.to_owned(),
            id: id.to_owned(),
            node,
            cache,
        })
    }

    /// Joins the group and starts following it: returns once the group has been read (this
    /// member's own node is made in the background; see
    /// [`wait_for_join`](Self::wait_for_join)).
    ///
    /// # Errors
    ///
    /// * [`Error::IllegalState`] if it was started before;
    /// * the errors of [`CuratorCache::start`] and [`CuratorCache::initialized`]
    ///   ([`Error::Unsupported`] on a server without persistent watches); the member has
    ///   left again then.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: a dropped call leaves the member started, as far as it got.
    pub async fn start(&self) -> Result<()> {
        self.node.start()?;
        let followed = async {
            self.cache.start().await?;
            self.cache.initialized().await
        };
        if let Err(error) = followed.await {
            let _ = self.node.close().await;
            self.cache.close().await;
            return Err(error);
        }
        Ok(())
    }

    /// Waits until this member's node has been made for the first time; `Ok(false)` if that
    /// takes longer than `timeout`.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::wait_for_initial_create`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn wait_for_join(&self, timeout: Duration) -> Result<bool> {
        self.node.wait_for_initial_create(timeout).await
    }

    /// The group's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This member's payload: the last given.
    pub fn payload(&self) -> Vec<u8> {
        self.node.data()
    }

    /// Where this member is in its life.
    pub fn state(&self) -> RecipeState {
        self.node.state()
    }

    /// The group as this member sees it: each member's id and payload. This member is
    /// always in it until closed (before it is started too), with its latest payload, as in
    /// Curator's `getCurrentMembers`. After [`close`](Self::close) it is empty: a member that
    /// left sees no group.
    pub fn members(&self) -> BTreeMap<String, Vec<u8>> {
        if self.node.state() == RecipeState::Closed {
            return BTreeMap::new();
        }
        let mut members: BTreeMap<String, Vec<u8>> = self
            .cache
            .children(&self.path)
            .iter()
            .map(|node| (node.name().to_owned(), payload_of(node)))
            .collect();
        members.insert(self.id.clone(), self.node.data());
        members
    }

    /// The id of the member whose node is at `path` (Curator's `idFromPath`): its last segment.
    pub fn id_from_path(path: &str) -> &str {
        path.rsplit('/').next().unwrap_or(path)
    }

    /// Gives this member a new payload, and returns once its node holds it: see
    /// [`PersistentNode::set_data`] (Curator's `setThisData`).
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::set_data`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the payload is kept as soon as the call is made.
    pub async fn set_payload(&self, payload: impl Into<Vec<u8>>) -> Result<()> {
        self.node.set_data(payload).await
    }

    /// The group's changes from now on, as this member's view sees them: see
    /// [`MembershipEvent`]. Ends when the member is closed.
    pub fn events(&self) -> MembershipEvents {
        MembershipEvents {
            events: self.cache.events(),
            path: self.path.clone(),
        }
    }

    /// Leaves the group (this member's node is deleted) and stops following it. Closing twice
    /// is fine.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::close`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the member has left once the call is made, and its node is deleted in the
    /// background if the future is dropped.
    pub async fn close(&self) -> Result<()> {
        let left = self.node.close().await;
        self.cache.close().await;
        left
    }
}

fn payload_of(node: &CachedNode) -> Vec<u8> {
    node.data().map(<[u8]>::to_vec).unwrap_or_default()
}

/// A change of a group, as a [`GroupMember`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipEvent {
    /// A member joined (or its node was made again after it was seen gone).
    Joined {
        /// Its id.
        id: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// A member's payload changed.
    PayloadChanged {
        /// Its id.
        id: String,
        /// The new payload.
        payload: Vec<u8>,
    },
    /// A member left: closed, its session ended, or its node was deleted.
    Left {
        /// Its id.
        id: String,
    },
    /// The view has read the group in full (after its start, and again after a
    /// disconnection or a new session, once the differences have been reported).
    Synced,
}

/// The stream of a [`GroupMember`]'s [`MembershipEvent`]s: every event, in order, none dropped
/// however slowly it is read.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct MembershipEvents {
    events: CacheEvents,
    path: String,
}

impl Stream for MembershipEvents {
    type Item = MembershipEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<MembershipEvent>> {
        loop {
            let event = match Pin::new(&mut self.events).poll_next(cx) {
                Poll::Ready(Some(event)) => event,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            // The group's own node is in the cache too: not a member.
            let member = |node: &CachedNode| node.path() != self.path;
            let mapped = match event {
                CacheEvent::Created(node) if member(&node) => Some(MembershipEvent::Joined {
                    id: node.name().to_owned(),
                    payload: payload_of(&node),
                }),
                CacheEvent::Changed { new, .. } if member(&new) => {
                    Some(MembershipEvent::PayloadChanged {
                        id: new.name().to_owned(),
                        payload: payload_of(&new),
                    })
                }
                CacheEvent::Deleted(node) if member(&node) => Some(MembershipEvent::Left {
                    id: node.name().to_owned(),
                }),
                CacheEvent::Initialized => Some(MembershipEvent::Synced),
                _ => None,
            };
            if let Some(mapped) = mapped {
                return Poll::Ready(Some(mapped));
            }
        }
    }
}
