//! Shared values: [`SharedCount`] (Curator's `org.apache.curator.framework.recipes.shared`);
//! atomic counters later.

mod count;

pub(crate) use self::count::decode_count;
pub use self::count::SharedCount;
