//! Caches over persistent watches (Curator's `recipes.cache` and `recipes.watch`): a
//! [`PersistentWatcher`] that the client keeps set across reconnections and new sessions, and
//! a [`CuratorCache`] of the nodes under a path, kept in memory over it.
//!
//! # Consistency
//!
//! What a reader of [`CuratorCache::get`] may see, and when:
//!
//! * **Every node held is a node the server had.** The cache changes only by what its reads
//!   show; a watch event only triggers a read. Nothing is made up from an event alone, so no
//!   event is a phantom.
//! * **Per path, in order.** The reads of one path are applied in the order they were sent,
//!   and one session's answers come in that order too, so a node's entry never goes back to an
//!   older state, and its events follow the server's changes in zxid order. Changes to
//!   *different* paths may be seen in another order than the server made them.
//! * **Behind by a round trip.** A change is held once the watch event reached the client and
//!   the read it triggered was answered: about one round trip after the server told the
//!   client. Two changes of a node within that time may be seen as one (`Changed` once, from
//!   the first state to the last), and a node created and deleted within it may not be seen at
//!   all: the cache reports the states it read, not every state the server passed through.
//! * **After a fault, converged by the next [`CacheEvent::Initialized`].** During a
//!   disconnection the server's events for the watch are lost (ZOOKEEPER-4698), and on a new
//!   session the watch must be set again. In both cases the cache reads the whole tree again
//!   ([`CacheState::Resyncing`]) and emits exactly the differences it finds: nodes created,
//!   changed (by `mzxid`, so a change seen both by an event and by the re-read is emitted
//!   once) and deleted while it was away, then `Initialized`. From then on it holds what the
//!   server held at some moment during the re-read, and follows every change.
//! * **Events replay to the contents.** [`CuratorCache::subscribe`] returns the contents and
//!   the stream of every later event, taken together: applying each event to that snapshot
//!   gives the cache's contents at that event, always.
//!
//! ZooKeeper does not support a one-shot and a persistent watch on the same path in one
//! session (ZOOKEEPER-4466): a cache should not cover nodes that recipes of the same client
//! watch (a lock's or latch's nodes); give it a client of its own when they overlap.

mod curator_cache;
mod node;
mod tree;
mod watcher;

pub use self::curator_cache::{CacheMode, CacheState, CuratorCache, CuratorCacheBuilder};
pub use self::node::{CacheEvent, CacheEvents, CachedNode};
pub use self::watcher::{PersistentWatcher, WatcherEvent, WatcherEvents};
