//! What a queue handle knows of its queue on the server: which incarnation of the parent node
//! it has seen, and which lock nodes live under it. Plain data, no I/O: the driver and the
//! acquire paths feed it facts, and [`decide`](super::decision::decide) reads it.

use std::collections::BTreeMap;

use zookeeper_client::Stat;

/// The name Curator gives lock nodes (its mutex's and its selector's), after the protection
/// prefix.
pub(crate) const LOCK_NAME: &str = "lock-";

/// The name Curator gives the nodes of its `LeaderLatch`, after the protection prefix.
pub(crate) const LATCH_NAME: &str = "latch-";

/// The sequence of a queue node named `name` (`…<name><digits>`), or `None` for a foreign
/// child, which the queue ignores rather than let it block (CURATOR-43).
pub(crate) fn node_sequence(child: &str, name: &str) -> Option<i64> {
    let at = child.rfind(name)?;
    let digits = &child[at + name.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The queue nodes named `name` among `children`, in queue order.
pub(crate) fn queue_order(
    children: impl IntoIterator<Item = String>,
    name: &str,
) -> Vec<QueueNode> {
    let mut nodes: Vec<QueueNode> = children
        .into_iter()
        .filter_map(|child| {
            node_sequence(&child, name).map(|sequence| QueueNode {
                sequence,
                name: child,
            })
        })
        .collect();
    nodes.sort_unstable_by_key(|node| node.sequence);
    nodes
}

/// One incarnation of the queue's parent node, named by its czxid.
///
/// ZooKeeper numbers the sequential children of a node from 0. A parent that is deleted and
/// created again (ZooKeeper reaps an empty container parent about a minute after its last
/// child goes, and Curator makes lock parents containers) numbers from 0 again, so a sequence
/// number means something only together with the incarnation it was handed out in. A parent
/// created later has a larger czxid, so incarnations are ordered in time.
///
/// A parent cannot be deleted while it has children: as long as one of our nodes exists, the
/// parent stays the incarnation that node was created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Incarnation(i64);

impl Incarnation {
    /// The incarnation a stat of the parent node describes.
    pub(crate) fn of_parent(stat: &Stat) -> Self {
        Self(stat.czxid)
    }

    #[cfg(test)]
    pub(crate) fn from_czxid(czxid: i64) -> Self {
        Self(czxid)
    }
}

/// One lock node: its sequence and its name under the parent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct QueueNode {
    /// The sequence ZooKeeper appended, unique within one incarnation of the parent.
    pub(crate) sequence: i64,
    /// `_c_<uuid>-lock-<seq10>`: unique across incarnations too, by its UUID.
    pub(crate) name: String,
}

/// Every lock node under the parent at one moment, in queue order, and the parent's
/// incarnation at that moment: one `getChildren2` answer (or the queue as it was when a
/// transaction of ours created a node; see `create_replacing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listing {
    pub(crate) incarnation: Incarnation,
    /// In queue order.
    pub(crate) nodes: Vec<QueueNode>,
}

impl Listing {
    /// The listing of a `getChildren2` answer: the children's names and the parent's stat;
    /// the queue's nodes are those named `name`.
    pub(crate) fn new(children: Vec<String>, parent: &Stat, name: &str) -> Self {
        Self {
            incarnation: Incarnation::of_parent(parent),
            nodes: queue_order(children, name),
        }
    }

    /// True if `node` is listed (the same sequence and the same name).
    pub(crate) fn contains(&self, node: &QueueNode) -> bool {
        self.nodes
            .binary_search_by_key(&node.sequence, |n| n.sequence)
            .is_ok_and(|at| self.nodes[at].name == node.name)
    }

    /// The highest sequence listed.
    pub(crate) fn last_sequence(&self) -> Option<i64> {
        self.nodes.last().map(|n| n.sequence)
    }

    /// The queue right after one transaction deleted `deleted` and created `created`, when
    /// nothing else was created between this listing and the transaction (the caller checks
    /// that `created` got the sequence after the last one listed).
    pub(crate) fn after_replacement(mut self, deleted: &QueueNode, created: QueueNode) -> Self {
        self.nodes.retain(|n| n != deleted);
        self.nodes.push(created);
        self
    }
}

/// What the view knows of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Seen in a listing, and not known to be gone since: it may be gone by now.
    Live,
    /// Surely gone: a listing lacked it, a watch saw it deleted, or we deleted it.
    Gone,
}

#[derive(Debug, Clone)]
struct ViewEntry {
    name: String,
    state: NodeState,
}

/// How [`QueueView::apply`] used a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListingEffect {
    /// The first listing, or one of the view's incarnation: merged into the view.
    Merged,
    /// A listing of a newer incarnation: what was known of the old one is dropped (every node
    /// of the old one is gone, since its parent was deleted).
    NewIncarnation,
    /// A listing of an older incarnation than the view's (a late answer): ignored.
    Stale,
}

/// The lock nodes of one incarnation of the parent, as far as this handle knows.
///
/// # Why it is sound
///
/// Within one incarnation, ZooKeeper hands out sequence numbers in creation order and never
/// reuses them. So a node missing from a listing but sorting before one that is in it has
/// been deleted, no node can later appear before an existing one, and a node known to be gone
/// stays gone. Every fact the view holds ("live when listed", "gone") therefore stays true,
/// except that a live node may have gone since: the view errs only towards waiting.
///
/// Facts about another incarnation are never mixed in: a listing of a newer incarnation
/// replaces the view, and one of an older incarnation is ignored.
#[derive(Debug, Clone)]
pub(crate) struct QueueView {
    incarnation: Option<Incarnation>,
    nodes: BTreeMap<i64, ViewEntry>,
    /// Every node with a sequence up to this one is gone (pruned from `nodes`), so a late
    /// listing cannot bring it back. -1 at first: the first child of a parent is numbered 0.
    gone_through: i64,
}

impl Default for QueueView {
    fn default() -> Self {
        Self {
            incarnation: None,
            nodes: BTreeMap::new(),
            gone_through: -1,
        }
    }
}

impl QueueView {
    /// A view built from one listing alone.
    pub(crate) fn of(listing: &Listing) -> Self {
        let mut view = Self::default();
        view.apply(listing);
        view
    }

    /// The incarnation of the parent this view describes, once a listing showed it.
    pub(crate) fn incarnation(&self) -> Option<Incarnation> {
        self.incarnation
    }

    /// Takes in a listing. See [`ListingEffect`] for what happens to listings of other
    /// incarnations.
    pub(crate) fn apply(&mut self, listing: &Listing) -> ListingEffect {
        let effect = match self.incarnation {
            Some(current) if listing.incarnation < current => return ListingEffect::Stale,
            Some(current) if listing.incarnation == current => ListingEffect::Merged,
            Some(_) => {
                *self = Self::default();
                ListingEffect::NewIncarnation
            }
            None => ListingEffect::Merged,
        };
        self.incarnation = Some(listing.incarnation);
        if let Some(last) = listing.last_sequence() {
            // Known nodes up to the last one listed but not listed themselves are gone; newer
            // ones may have been created after the listing and are left alone.
            for (sequence, entry) in self.nodes.range_mut(..=last) {
                let listed = listing
                    .nodes
                    .binary_search_by_key(sequence, |n| n.sequence)
                    .is_ok();
                if !listed {
                    entry.state = NodeState::Gone;
                }
            }
        }
        for node in &listing.nodes {
            if node.sequence > self.gone_through {
                self.nodes
                    .entry(node.sequence)
                    .or_insert_with(|| ViewEntry {
                        name: node.name.clone(),
                        state: NodeState::Live,
                    });
            }
        }
        self.prune();
        effect
    }

    /// Records that the node with `sequence` of `incarnation` is gone. A fact about another
    /// incarnation is no fact about this view's nodes, and is dropped.
    pub(crate) fn mark_gone(&mut self, incarnation: Incarnation, sequence: i64) {
        if self.incarnation != Some(incarnation) {
            return;
        }
        if let Some(entry) = self.nodes.get_mut(&sequence) {
            entry.state = NodeState::Gone;
        }
        self.prune();
    }

    /// What the view knows of `node` of `incarnation`: `None` if nothing (another
    /// incarnation, or a node newer than every listing).
    pub(crate) fn state_of(&self, incarnation: Incarnation, node: &QueueNode) -> Option<NodeState> {
        if self.incarnation != Some(incarnation) {
            return None;
        }
        match self.nodes.get(&node.sequence) {
            Some(entry) if entry.name == node.name => Some(entry.state),
            // The same sequence with another name cannot happen within one incarnation; if
            // it does, the view cannot tell anything about `node`.
            Some(_) => None,
            None if node.sequence <= self.gone_through => Some(NodeState::Gone),
            None => None,
        }
    }

    /// The nearest node before `sequence` that is not known to be gone.
    pub(crate) fn live_predecessor(&self, sequence: i64) -> Option<QueueNode> {
        self.live_predecessor_besides(sequence, None)
    }

    /// The nearest node before `sequence` that is not known to be gone, taking `gone` for gone
    /// as well.
    pub(crate) fn live_predecessor_besides(
        &self,
        sequence: i64,
        gone: Option<&QueueNode>,
    ) -> Option<QueueNode> {
        self.nodes
            .range(..sequence)
            .rev()
            .find(|(sequence, entry)| {
                entry.state == NodeState::Live
                    && gone
                        .is_none_or(|gone| gone.sequence != **sequence || gone.name != entry.name)
            })
            .map(|(sequence, entry)| QueueNode {
                sequence: *sequence,
                name: entry.name.clone(),
            })
    }

    /// The newest node not known to be gone, other than `except`.
    pub(crate) fn newest_live_except(&self, except: &QueueNode) -> Option<QueueNode> {
        self.nodes
            .iter()
            .rev()
            .find(|(sequence, entry)| {
                entry.state == NodeState::Live && **sequence != except.sequence
            })
            .map(|(sequence, entry)| QueueNode {
                sequence: *sequence,
                name: entry.name.clone(),
            })
    }

    /// Drops gone entries at the front: nothing can ever need them again.
    fn prune(&mut self) {
        while let Some(entry) = self.nodes.first_entry() {
            if entry.get().state == NodeState::Live {
                break;
            }
            self.gone_through = self.gone_through.max(*entry.key());
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(czxid: i64, sequences: &[i64]) -> Listing {
        Listing {
            incarnation: Incarnation(czxid),
            nodes: sequences.iter().map(|&s| node(s)).collect(),
        }
    }

    fn node(sequence: i64) -> QueueNode {
        QueueNode {
            sequence,
            name: format!("_c_x-lock-{sequence:010}"),
        }
    }

    const P: Incarnation = Incarnation(100);

    #[test]
    fn node_sequence_accepts_only_the_name_and_digits() {
        let lock_sequence = |child| node_sequence(child, LOCK_NAME);
        assert_eq!(lock_sequence("_c_0f-lock-0000000042"), Some(42));
        assert_eq!(lock_sequence("lock-0000000001"), Some(1));
        assert_eq!(lock_sequence("_c_0f-lock-00000x0042"), None);
        assert_eq!(lock_sequence("_c_0f-lease-0000000042"), None);
        assert_eq!(lock_sequence("foreign"), None);
        assert_eq!(lock_sequence("lock-"), None);
        assert_eq!(node_sequence("_c_0f-latch-0000000007", LATCH_NAME), Some(7));
        assert_eq!(lock_sequence("_c_0f-latch-0000000007"), None);
    }

    #[test]
    fn queue_order_sorts_by_sequence_not_name() {
        let order = queue_order(
            vec![
                "_c_b-lock-0000000003".to_string(),
                "junk".to_string(),
                "_c_a-lock-0000000010".to_string(),
                "_c_z-lock-0000000001".to_string(),
            ],
            LOCK_NAME,
        );
        let sequences: Vec<i64> = order.iter().map(|n| n.sequence).collect();
        assert_eq!(sequences, vec![1, 3, 10]);
    }

    #[test]
    fn unlisted_older_nodes_are_gone_but_newer_ones_are_kept() {
        let mut view = QueueView::of(&listing(100, &[1, 2]));
        view.apply(&listing(100, &[1, 2, 9]));
        // A later listing without 1 and 9: 1 was deleted; 9 may be newer than the listing.
        // (A listing cannot lack 9 and show 5 in truth, but the view must not care.)
        view.apply(&listing(100, &[2, 5]));
        assert_eq!(view.state_of(P, &node(1)), Some(NodeState::Gone), "pruned");
        assert_eq!(view.state_of(P, &node(2)), Some(NodeState::Live));
        assert_eq!(view.state_of(P, &node(9)), Some(NodeState::Live));
        assert_eq!(view.live_predecessor(9).map(|n| n.sequence), Some(5));
        view.mark_gone(P, 5);
        assert_eq!(view.live_predecessor(9).map(|n| n.sequence), Some(2));
        view.mark_gone(P, 2);
        assert_eq!(view.live_predecessor(9), None);
    }

    #[test]
    fn sequence_zero_is_a_live_node() {
        // The first node under a new parent gets sequence 0: it must block the ones after it.
        let mut view = QueueView::of(&listing(100, &[0, 1]));
        assert_eq!(view.state_of(P, &node(0)), Some(NodeState::Live));
        assert_eq!(view.live_predecessor(1).map(|n| n.sequence), Some(0));
        view.mark_gone(P, 0);
        assert_eq!(view.live_predecessor(1), None);
        view.apply(&listing(100, &[0, 1]));
        assert_eq!(
            view.state_of(P, &node(0)),
            Some(NodeState::Gone),
            "a gone node 0 must not come back"
        );
    }

    #[test]
    fn a_gone_node_never_comes_back() {
        let mut view = QueueView::of(&listing(100, &[1, 2]));
        view.mark_gone(P, 2);
        // A late listing that still shows 2 must not bring it back.
        view.apply(&listing(100, &[1, 2]));
        assert_eq!(view.state_of(P, &node(2)), Some(NodeState::Gone));
        // Nor, once 1 is gone too and both are pruned, 1 or 2.
        view.mark_gone(P, 1);
        view.apply(&listing(100, &[1, 2]));
        assert_eq!(view.state_of(P, &node(1)), Some(NodeState::Gone));
        assert_eq!(view.live_predecessor(3), None);
    }

    #[test]
    fn a_newer_incarnation_replaces_the_view_and_an_older_one_is_ignored() {
        let mut view = QueueView::of(&listing(100, &[5, 6, 7]));
        view.mark_gone(P, 5);
        view.mark_gone(P, 6);
        // The parent was deleted and created again: sequences start at 0 again, and the old
        // high-water mark must not hide the new nodes.
        let recreated = Incarnation(200);
        assert_eq!(
            view.apply(&listing(200, &[0, 1])),
            ListingEffect::NewIncarnation
        );
        assert_eq!(view.incarnation(), Some(recreated));
        assert_eq!(view.state_of(recreated, &node(0)), Some(NodeState::Live));
        assert_eq!(view.live_predecessor(1).map(|n| n.sequence), Some(0));
        assert_eq!(
            view.state_of(P, &node(7)),
            None,
            "nothing is known of P any more"
        );
        // A late answer from before the recreation changes nothing.
        assert_eq!(view.apply(&listing(100, &[7])), ListingEffect::Stale);
        assert_eq!(view.live_predecessor(1).map(|n| n.sequence), Some(0));
        // Nor does a fact about the old incarnation.
        view.mark_gone(P, 0);
        assert_eq!(view.state_of(recreated, &node(0)), Some(NodeState::Live));
    }

    #[test]
    fn the_same_sequence_with_another_name_is_unknown() {
        let view = QueueView::of(&listing(100, &[3]));
        let other = QueueNode {
            sequence: 3,
            name: "_c_y-lock-0000000003".into(),
        };
        assert_eq!(view.state_of(P, &other), None);
    }

    #[test]
    fn a_listing_after_a_replacement_shows_the_new_node_instead_of_the_old() {
        let before = listing(100, &[2, 4]);
        let after = before.after_replacement(&node(4), node(5));
        assert_eq!(after, listing(100, &[2, 5]));
        assert!(after.contains(&node(5)));
        assert!(!after.contains(&node(4)));
    }
}
