//! [`Leadership`]: one turn of leadership of a [`LeaderSelector`](super::LeaderSelector).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::connection::{Client, Session};

/// One turn of leadership, handed to
/// [`LeaderSelectorListener::take_leadership`](super::LeaderSelectorListener::take_leadership).
///
/// Cheap to clone; clones share the cancellation.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub(super) client: Client,
    pub(super) id: Arc<str>,
    pub(super) node_path: Arc<str>,
    pub(super) fencing_token: u64,
    pub(super) session: Arc<Session>,
    pub(super) token: CancellationToken,
}

impl Leadership {
    /// The selector's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The selector's participant id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The full path of the leader's node, `<path>/_c_<uuid>-lock-<seq10>`.
    pub fn node_path(&self) -> &str {
        &self.node_path
    }

    /// The fencing token of this turn: the leader node's creation zxid. It is unique and rises
    /// with every turn across the ensemble, so a resource that refuses tokens lower than the
    /// highest it saw refuses a deposed leader.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// The session that owns the leader's node.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// True once leadership is cancelled (or the turn is over).
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once leadership is cancelled (or the turn is over).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Asks ZooKeeper whether this turn still leads: a `sync`, then a read of the leader's
    /// node, which must still be this turn's node (its czxid is the fencing token) and owned
    /// by its session. For a careful leader, right before an irreversible action.
    ///
    /// It costs one round trip and a sync. It answers `false` on any doubt: the turn
    /// cancelled or over, the session lost, the connection down, an error (a trace event says
    /// why).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn verify(&self) -> bool {
        if self.token.is_cancelled() {
            return false;
        }
        self.session
            .verifies_node(&self.node_path, self.fencing_token as i64)
            .await
    }

    /// A token cancelled with this leadership: give it to tasks spawned for the turn, so they
    /// stop when it ends. It is also cancelled when `take_leadership` returns. Cancelling it
    /// does not cancel the leadership.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.token.child_token()
    }
}
