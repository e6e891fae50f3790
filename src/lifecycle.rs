//! The lifecycle of the recipes that are started and closed.

/// Where a [`LeaderLatch`](crate::LeaderLatch) or a [`LeaderSelector`](crate::LeaderSelector)
/// is in its life (Curator's `LeaderLatch.State`, and the selector's equivalent).
///
/// `LatchState` and `SelectorState` are this type under the recipes' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecipeState {
    /// Made, not started yet.
    Latent,
    /// Started: a latch races, leads or follows; a selector waits in its queue, leads, or is
    /// idle between turns (not requeued).
    Started,
    /// Closed: by `close`, by a drop, because its client was closed, or because it stopped by
    /// itself (a latch's failure). It cannot be started again; make a new one.
    Closed,
}
