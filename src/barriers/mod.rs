//! Barriers (Curator's `recipes.barriers`): [`DistributedBarrier`], a gate that holds workers
//! until it is removed, and [`DistributedDoubleBarrier`], which lets a group of members in
//! together and out together. Both on Curator's znodes, so Java and Rust processes meet at one
//! barrier.

mod barrier;
mod double_barrier;

pub use barrier::DistributedBarrier;
pub use double_barrier::DistributedDoubleBarrier;
