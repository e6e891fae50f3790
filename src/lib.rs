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
//! * [`LeaderLatch`]: a race for one ephemeral node; simple, unfair, wakes every follower.
//! * [`LeaderSelector`]: fair, queue-ordered leadership with a listener and auto-requeue.
//!
//! The `testing` feature adds `zk_recipes::testing`, a kit that runs real ZooKeeper servers
//! and injects faults, for this crate's tests and for yours.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connection;
mod error;
pub mod latch;
mod lifecycle;
pub mod limits;
pub mod mutex;
pub mod participant;
mod path;
mod queue;
pub mod selector;
mod sync;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use connection::retry;
pub use connection::{Client, ClientBuilder, ConnectionState};
pub use error::{Error, Result};
pub use latch::{
    CloseMode, ConnectionErrorPolicy, LatchLayout, LatchLeader, LatchState, LeaderLatch,
    LeaderLatchListener, LeaderLatchMetrics, LeadershipChanges,
};
pub use lifecycle::RecipeState;
pub use mutex::{
    InterProcessMutex, LockGuard, RevocationListener, RevocationRequest, Revoker, REVOKE_MESSAGE,
};
pub use participant::default_participant_id;
pub use path::{validate_path, validate_recipe_path};
pub use queue::Participant;
pub use selector::{
    BoxError, LeaderSelector, LeaderSelectorListener, Leadership, SelectorError, SelectorState,
    StateChangeAction,
};

/// The zookeeper-client crate this library is built on, for raw operations through
/// [`Client::zookeeper`].
pub use zookeeper_client;

// The README's examples are compiled as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
