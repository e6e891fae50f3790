//! The latches of one client on one path: siblings, which share the client's session.
//!
//! A latch claims leadership only from a node it can prove is its own. The node's ephemeral
//! owner proves it is of this session (CURATOR-696), but siblings share the session, so the
//! owner does not tell them apart, and after a create whose answer was lost (a `NodeExists`
//! on the retry may be our own node) the latch cannot know its node's czxid. Two rules make
//! the proof:
//!
//! * **One create at a time.** A latch holds its siblings' create turn from sending a create
//!   until it knows what the create did. So at most one sibling has a create whose outcome is
//!   unknown.
//! * **Every known node is claimed.** A latch that knows its node (by the create's answer, or
//!   by resolving an unknown create) records its czxid here before it gives the turn back,
//!   and keeps it until the node is deleted or a new session begins.
//!
//! A node of the session that no sibling claims can then only have been made by the one
//! sibling whose create is unresolved, and only that sibling may take it (or delete it when it
//! closes).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

use crate::sync::Locked;

/// The siblings of one client (by its instance number) on one path.
#[derive(Debug, Default)]
pub(super) struct Siblings {
    /// Held by the sibling whose create is in flight or unresolved.
    create_turn: Arc<tokio::sync::Mutex<()>>,
    /// The czxid of each sibling's known node, by latch number.
    claimed: Mutex<HashMap<u64, i64>>,
}

/// A sibling's turn to create: given back when dropped.
pub(super) type CreateTurn = OwnedMutexGuard<()>;

/// A client's instance number and a latch path.
type SiblingsKey = (u64, String);

/// Every (client, path) with a live latch.
static SIBLINGS: LazyLock<Mutex<HashMap<SiblingsKey, Weak<Siblings>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Siblings {
    /// The siblings of the client `instance` (see [`Client::instance`](crate::Client)) on
    /// `path`.
    pub(super) fn of(instance: u64, path: &str) -> Arc<Self> {
        let mut all = SIBLINGS.locked();
        let key = (instance, path.to_owned());
        if let Some(siblings) = all.get(&key).and_then(Weak::upgrade) {
            return siblings;
        }
        // Paths no latch uses any more go when a new one comes.
        all.retain(|_, siblings| siblings.strong_count() > 0);
        let siblings = Arc::new(Siblings::default());
        all.insert(key, Arc::downgrade(&siblings));
        siblings
    }

    /// Waits for the turn to create.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a turn not yet given is not taken.
    pub(super) async fn create_turn(&self) -> CreateTurn {
        self.create_turn.clone().lock_owned().await
    }

    /// Records the node of latch `latch` (its czxid), or, with `None`, that it knows of none.
    pub(super) fn claim(&self, latch: u64, czxid: Option<i64>) {
        let mut claimed = self.claimed.locked();
        match czxid {
            Some(czxid) => claimed.insert(latch, czxid),
            None => claimed.remove(&latch),
        };
    }

    /// True if a sibling other than `latch` claims the node with `czxid`.
    pub(super) fn claimed_by_another(&self, latch: u64, czxid: i64) -> bool {
        self.claimed
            .locked()
            .iter()
            .any(|(other, claimed)| *other != latch && *claimed == czxid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_claimed_by_one_sibling_is_not_anothers() {
        let siblings = Siblings::default();
        siblings.claim(1, Some(100));
        assert!(siblings.claimed_by_another(2, 100));
        assert!(!siblings.claimed_by_another(1, 100), "its own claim");
        assert!(!siblings.claimed_by_another(2, 101));
        siblings.claim(1, None);
        assert!(!siblings.claimed_by_another(2, 100));
    }

    #[tokio::test]
    async fn one_create_turn_at_a_time() {
        let siblings = Siblings::of(u64::MAX, "/one-turn");
        let first = siblings.create_turn().await;
        let second = siblings.create_turn();
        tokio::pin!(second);
        assert!(futures::poll!(second.as_mut()).is_pending());
        drop(first);
        let _second = second.await;
        assert!(Arc::ptr_eq(&siblings, &Siblings::of(u64::MAX, "/one-turn")));
    }
}
