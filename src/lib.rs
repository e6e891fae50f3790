//! Apache Curator-style ZooKeeper recipes for async Rust.
//!
//! `zk-recipes` gives Rust services the coordination recipes that Java services get from
//! [Apache Curator](https://curator.apache.org/) 5.x, on the same znodes, so Rust and Java
//! processes can contend for one lock or one leadership:
//!
//! * [`Client`]: the connection manager. One ZooKeeper session at a time, Curator's connection
//!   states ([`ConnectionState`]), retry policies, a new session after expiry, and protected
//!   creates.
//! * [`InterProcessMutex`]: a reentrant distributed lock on ephemeral-sequential nodes, with
//!   fencing tokens and a lost-lock signal.
//! * [`InterProcessReadWriteLock`]: readers share, a writer holds alone, in queue order; its
//!   halves are mutexes, and a write hold downgrades to a read hold that no queued writer can
//!   slip past.
//! * [`InterProcessMultiLock`]: several locks (mutexes, read/write lock halves, semaphore
//!   mutexes: [`MultiLockPart`]) as one, all or none, taken in the order of their paths so
//!   that multi-locks never deadlock each other.
//! * [`InterProcessSemaphoreV2`]: at most *n* leases at once, with a fixed limit or a
//!   [`SharedCount`]; [`InterProcessSemaphoreMutex`] is its one-lease mutex.
//! * [`LeaderLatch`]: a race for one ephemeral node; simple, unfair, wakes every follower.
//! * [`LeaderSelector`]: fair, queue-ordered leadership with a listener and auto-requeue.
//! * [`CuratorCache`]: the nodes under a path (one node, its children, or the tree) kept in
//!   memory over one persistent watch, with a stream of every change, converged again after
//!   every fault; [`PersistentWatcher`] is the watch it stands on.
//!
//! # Modules
//!
//! The recipes are grouped in families, as Curator's packages are. Every public type is also
//! re-exported here, at the crate root (`zk_recipes::InterProcessMutex`), and each family
//! re-exports its own (`zk_recipes::locks::InterProcessMutex`):
//!
//! * [`locks`]: [`InterProcessMutex`] and its [`LockGuard`], [`InterProcessReadWriteLock`],
//!   [`InterProcessSemaphoreV2`] and [`InterProcessSemaphoreMutex`] with their [`Lease`],
//!   [`InterProcessMultiLock`] (Curator's `recipes.locks`).
//! * [`leader`]: [`LeaderLatch`] and [`LeaderSelector`], with their listeners (Curator's
//!   `recipes.leader`).
//! * [`shared`]: [`SharedCount`] (Curator's `recipes.shared`).
//! * [`cache`]: [`CuratorCache`] and [`PersistentWatcher`] (Curator's `recipes.cache` and
//!   `recipes.watch`); its docs state what a reader of the cache may see, and when.
//! * [`connection`]: [`Client`], its builder, connection states and [`retry`] policies.
//! * [`participant`] (participant ids) and [`limits`] (request size limits), shared by all.
//!
//! All the recipes that queue (the locks, the selector, the Curator-layout latch) share one
//! internal queue core, so they have the same grant rules and costs (see below).
//!
//! The `testing` feature adds `zk_recipes::testing`, a kit that runs real ZooKeeper servers
//! and injects faults, for this crate's tests and for yours.
//!
//! # Performance
//!
//! What each operation costs, in requests to ZooKeeper and round trips. `benches/recipes.rs`
//! measures the main ones against a floor of the same requests awaited in turn, and against
//! Apache Curator on the same server in the same run (the figures are in the README).
//!
//! **[`InterProcessMutex`]** (and everything on the same queue core: the read/write lock's
//! halves, [`LeaderSelector`], the Curator-layout [`LeaderLatch`], the semaphore's internal
//! lock):
//!
//! * An uncontended acquire is one create with a listing of the parent (`getChildren2`) in the
//!   same round trip: the listing proves the grant, and names the parent's incarnation. A
//!   release is one delete. A guard dropped instead of released sends that delete before the
//!   drop returns and leaves its answer to the background, so the client's next request
//!   follows it at once: an uncontended loop that acquires and drops waits for one round trip
//!   per turn, one that awaits [`LockGuard::release`] for two.
//! * **A lock's waiter near the head** (a mutex's, and the semaphore's internal mutex's, 2 to
//!   16 nodes deep) watches the whole lock path with one persistent recursive watch per
//!   handle (ZooKeeper 3.6+), set with a listing in one round trip when the handle first waits
//!   on another session, and removed once a second passes with no waiter. It is granted on the
//!   event that removes the last node before it, with no read after the event (a watch on its
//!   own node, set while it waits, proves it there), and while the watch is set, its creates
//!   need no listing. A contended acquisition then sends three requests (the create, the watch
//!   on it, the delete; Curator's: five), plus two per busy period of the handle, but receives
//!   one packet per change under the lock path in every watching session: 19 per acquisition
//!   with 8 sessions, against Curator's 6. [`InterProcessMutex::with_recursive_watch`] turns
//!   it off, and says what servers before 3.6 and 3.9 do with it.
//! * Otherwise (deeper waiters, the other recipes, servers before 3.6, or the watch turned
//!   off) a waiter watches only its predecessor (no herd). A contended acquisition sends as many
//!   requests as Curator's, five (the create, its listing, the watch, one more read, the
//!   delete), and receives as many packets, six. Which read is the fifth depends on where the
//!   waiter joined:
//!   * right behind the holder (nothing else before it in its view), it watches its own node
//!     in the same round trip as the predecessor's: the handoff then costs one watch event
//!     and no read after it, since the watch on our node, not fired, proves that it is still
//!     there;
//!   * behind several nodes, the nodes before its predecessor went without a word to it, and
//!     one listing after the event settles them all and proves our node there too, as
//!     Curator's does. A watch on our own node would cost a request and an event for nothing.
//! * All waiters of one handle share one driver task and one view of the queue: 10,000
//!   waiters cost one watch and, even when they all start at once, one listing; in-process
//!   memory is a few kilobytes per waiter. A handoff between two of them costs one read, sent
//!   right behind the release's delete, and no watch.
//! * [`LockGuard::verify`] and the recipes' `has_leadership().await` cost a `sync` and a read,
//!   sent together: one round trip. [`LockGuard::is_lost`] and `is_leader()` cost nothing.
//!
//! **[`InterProcessReadWriteLock`]:** each half costs what the mutex does, with two
//! differences. A writer is granted only on a listing that shows it first (a downgrade's read
//! node can appear before it after any watch event), so a contended write acquire costs one
//! listing more than a mutex's. A reader's turn is proven by a listing, which lets in every
//! waiting reader of its handle at once: one round trip for all of them. A downgrade is one
//! transaction (a check and a create).
//!
//! **[`InterProcessMultiLock`]:** its parts are acquired one after another (the order is what
//! prevents deadlock), so an uncontended acquire costs what its parts' acquires cost in turn:
//! one round trip for a mutex part, about two for a semaphore mutex (see below); the release
//! and `verify` ask about every part at once, one round trip.
//!
//! **[`InterProcessSemaphoreV2`]:** acquirers take turns on an internal mutex, whose waiters
//! share one driver as the mutex's do; the acquirer at its head makes its lease with a listing
//! of the leases behind it, one round trip, and when they fit, sends the internal mutex's
//! delete and returns the lease without waiting for its answer (Curator: three round trips in
//! turn). Its internal mutex's waiters near the head watch its path as the mutex's do (above),
//! and are granted on the event, with no listing. With a fixed limit, when the internal mutex
//! is granted on a listing (after the predecessor's deletion, for an acquirer that joined
//! behind several), the lease's create and count go out right behind that listing, in its round
//! trip: from the predecessor's deletion to the internal mutex's delete, two round trips in
//! turn, where Curator spends four. With a fixed limit too, when the handle's last count left
//! room for one more lease, the internal mutex's delete goes out right behind the lease's
//! create and count, before their answers (ZooKeeper still takes the count under the mutex):
//! one round trip in turn; a count that then does not fit gives its lease node back and queues
//! again, to wait under the mutex. Between waiters of one process, the release of the internal
//! mutex sends the next waiter's lease create behind its delete and the read that proves that
//! waiter's turn: one round trip for the handoff and the lease together. An acquirer that must
//! wait lists the leases again with a watch and a read of its lock node; it watches the leases
//! (and a shared count): one watch for the whole process.
//!
//! **[`LeaderSelector`]:** a requeue deletes the old node and creates the new one in one
//! transaction (one log sync on the server instead of two), with a listing sent just before
//! it. When the new node's sequence follows the last one listed, that listing is the queue at
//! the moment of the create, and the watch on the predecessor is set from it while the
//! transaction is still being written. Servers that leave the created node's stat out of a
//! transaction's answer (ZOOKEEPER-4026) cost one more read, sent at once.
//!
//! **[`LeaderLatch`]:** with the default [`LatchLayout::Race`], every change of leader wakes
//! every follower, and each races with a create (the herd: O(*n*) requests and events per
//! change for *n* followers); latches of one client on one path share one create turn. With
//! [`LatchLayout::Curator`], the latch is a queue like the mutex's, with its costs.
//!
//! **[`CuratorCache`]:** one persistent watch (`addWatch`) for the whole tree, set again after
//! every reconnection and on every new session. Each watch event costs one read of its node
//! (`getData`, or `exists` with [`stat_only`](CuratorCacheBuilder::stat_only)); reading the
//! contents costs nothing. A load or a resynchronisation reads the nodes' data 64 at a time in
//! one `multiRead` request (the server's cost is per request far more than per node), lists a
//! node's children only when its stat says it has some, and reads them as soon as the listing
//! has answered: two round trips per level of depth, whatever the number of nodes in a level,
//! with at most 2,048 reads out at once.
//!
//! **[`Client`]:** requests sent back to back leave at once: the client sets `TCP_NODELAY`
//! on its connection (zookeeper-client does not), so Nagle's algorithm does not hold a request
//! until the one before it is answered, which would cost every pipelined request a round trip.
//! A protected create lists the parent only after a connection loss, to find its node.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod barriers;
pub mod cache;
pub mod connection;
pub mod discovery;
mod error;
pub mod leader;
mod lifecycle;
pub mod limits;
pub mod locks;
pub mod nodes;
pub mod participant;
mod path;
mod queue;
pub mod shared;
mod sync;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use barriers::{DistributedBarrier, DistributedDoubleBarrier};
pub use cache::{
    CacheEvent, CacheEvents, CacheMode, CacheState, CachedNode, CuratorCache, CuratorCacheBuilder,
    PersistentWatcher, WatcherEvent, WatcherEvents,
};
pub use connection::retry;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use connection::TlsConfig;
pub use connection::{Client, ClientBuilder, ConnectionState};
pub use discovery::{
    ServiceCache, ServiceDiscovery, ServiceInstance, ServiceProvider, ServiceType,
};
pub use error::{Error, PartFailure, Result};
pub use leader::{
    BoxError, CloseMode, ConnectionErrorPolicy, LatchLayout, LatchLeader, LatchState, LeaderLatch,
    LeaderLatchListener, LeaderLatchMetrics, LeaderSelector, LeaderSelectorListener, Leadership,
    LeadershipChanges, SelectorError, SelectorState, StateChangeAction,
};
pub use lifecycle::RecipeState;
pub use locks::{
    InterProcessLock, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, InterProcessSemaphoreV2, Lease, LockGuard, LockHold,
    MultiLockGuard, MultiLockPart, RevocationListener, RevocationRequest, Revoker, REVOKE_MESSAGE,
};
pub use nodes::{
    GroupMember, MembershipEvent, MembershipEvents, NodeEvent, NodeEvents, PersistentNode,
    PersistentNodeBuilder, PersistentTtlNode, PersistentTtlNodeBuilder,
};
pub use participant::default_participant_id;
pub use path::{validate_path, validate_recipe_path};
pub use queue::{LockMode, Participant};
pub use shared::{AtomicValue, DistributedAtomicLong, SharedCount};

/// The zookeeper-client crate this library is built on, for raw operations through
/// [`Client::zookeeper`].
pub use zookeeper_client;

// The README's examples are compiled as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
