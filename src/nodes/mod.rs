//! Nodes this client keeps present, and group membership on top of them (Curator's
//! `recipes.nodes`).
//!
//! * [`PersistentNode`]: a node of any [`CreateMode`](zookeeper_client::CreateMode), made
//!   again after a new session, after someone deletes it, and after a reconnection finds it
//!   gone, always with the latest data it was given. Curator's `PersistentNode` (once
//!   `PersistentEphemeralNode`), on the same znodes.
//! * [`PersistentTtlNode`]: a container node kept alive by a TTL child it touches, as
//!   Curator's `PersistentTtlNode` does, so that it outlives this process by at most the TTL.
//! * [`GroupMember`]: `<path>/<member id>` with a payload, kept by a [`PersistentNode`], and
//!   the group's members as a [`CuratorCache`](crate::CuratorCache) of the path's children
//!   sees them. Java `GroupMember`s and Rust ones on one path form one group.
//!
//! # What "kept" means
//!
//! The node's task holds one of two beliefs about the server, and acts on evidence only:
//!
//! * **present** at its path, learned from a create that succeeded, or from a node found at
//!   the path (Curator adopts such a node, and so does this crate: it writes its data there);
//! * **absent**, learned from a deletion event of the watch it keeps on the node, from a read
//!   that finds nothing, or from the loss of the session that owned an ephemeral node.
//!
//! While present it keeps an existence watch on the node and writes any newer data; while
//! absent it creates the node, on whatever session is current, with the latest data. Every
//! write carries the data as it is when the write is sent, and data given later is written
//! after it, so the node never ends with older data than it was last given.
//!
//! A sequential node is made once with a sequence number; when made again it is made at the
//! same path (Curator does the same), so [`PersistentNode::actual_path`] changes only if the
//! node could not be made there.

mod group;
mod persistent;
mod ttl;

pub use group::{GroupMember, MembershipEvent, MembershipEvents};
pub use persistent::{NodeEvent, NodeEvents, PersistentNode, PersistentNodeBuilder};
pub use ttl::{
    PersistentTtlNode, PersistentTtlNodeBuilder, DEFAULT_TOUCH_CHILD, DEFAULT_TOUCH_SCHEDULE_FACTOR,
};
