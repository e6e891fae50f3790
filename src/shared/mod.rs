//! Shared values (Curator's `org.apache.curator.framework.recipes.shared` and
//! `recipes.atomic`): [`SharedCount`], a count every process sees, and
//! [`DistributedAtomicLong`], a counter many processes change.

mod atomic;
mod count;

pub use self::atomic::{
    AtomicStats, AtomicValue, DistributedAtomicLong, DistributedAtomicLongBuilder, PromotedToLock,
};
pub(crate) use self::count::decode_count;
pub use self::count::{CountChanges, SharedCount, VersionedValue};
