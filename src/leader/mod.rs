//! The leader election recipes: [`LeaderLatch`] and [`LeaderSelector`] (Curator's
//! `org.apache.curator.framework.recipes.leader`).
//!
//! Every public item is re-exported here (and at the crate root); [`latch`] and [`selector`]
//! document their protocols, and when to choose which.

pub mod latch;
pub mod selector;

pub use self::latch::{
    CloseMode, ConnectionErrorPolicy, LatchLayout, LatchLeader, LatchState, LeaderLatch,
    LeaderLatchListener, LeaderLatchMetrics, LeadershipChanges,
};
pub use self::selector::{
    BoxError, LeaderSelector, LeaderSelectorListener, Leadership, SelectorError, SelectorState,
    StateChangeAction, DEFAULT_CANCEL_GRACE,
};
