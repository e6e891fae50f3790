//! What a queue handle knows of its queue on the server: which incarnation of the parent node
//! it has seen, and which queue nodes live under it. Plain data, no I/O: the driver and the
//! acquire paths feed it facts, and [`decide`](super::decision::decide) reads it.

use std::collections::BTreeMap;

use zookeeper_client::Stat;

/// How a queue node takes part in the lock: whether it excludes every other node, or only
/// exclusive ones.
///
/// A mutex's, a leader selector's and a latch's nodes are all exclusive. In an
/// [`InterProcessReadWriteLock`](crate::InterProcessReadWriteLock) the write nodes are
/// exclusive and the read nodes shared: readers hold the lock together, with no writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// Held alone: no other node of the queue is held at the same time.
    Exclusive,
    /// Held together with other shared nodes, never with an exclusive one.
    Shared,
}

impl LockMode {
    /// True if a node of this mode must wait for an earlier node of mode `earlier`.
    pub(crate) fn waits_for(self, earlier: LockMode) -> bool {
        self == LockMode::Exclusive || earlier == LockMode::Exclusive
    }
}

/// What one queue's nodes are called after the protection prefix, before the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeNames {
    exclusive: &'static str,
    /// The name of shared nodes, in queues that have them.
    shared: Option<&'static str>,
}

/// Curator's lock nodes (its mutex's and its leader selector's): `lock-`.
pub(crate) const LOCK_NAMES: NodeNames = NodeNames {
    exclusive: "lock-",
    shared: None,
};

/// The nodes of Curator's `LeaderLatch`: `latch-`.
pub(crate) const LATCH_NAMES: NodeNames = NodeNames {
    exclusive: "latch-",
    shared: None,
};

/// The leases of Curator's `InterProcessSemaphoreV2`: `lease-`.
pub(crate) const LEASE_NAMES: NodeNames = NodeNames {
    exclusive: "lease-",
    shared: None,
};

/// The nodes of Curator's `InterProcessReadWriteLock`: `__WRIT__` and `__READ__` (of one
/// length, which Curator's sorting relies on).
pub(crate) const READ_WRITE_NAMES: NodeNames = NodeNames {
    exclusive: "__WRIT__",
    shared: Some("__READ__"),
};

impl NodeNames {
    /// The name of this queue's nodes of `mode`; `None` for shared nodes in a queue without
    /// them.
    pub(crate) fn name(self, mode: LockMode) -> Option<&'static str> {
        match mode {
            LockMode::Exclusive => Some(self.exclusive),
            LockMode::Shared => self.shared,
        }
    }

    /// The name of this queue's exclusive nodes.
    pub(crate) fn exclusive(self) -> &'static str {
        self.exclusive
    }

    /// True for queues with shared nodes. A shared node can then appear at an *old* sequence
    /// while the exclusive node of that sequence is held (a downgrade names its read node after
    /// its write node, so that no writer queued meanwhile gets ahead of it), which is why an
    /// exclusive node of such a queue is granted only on a listing (see
    /// [`decide`](super::decision::decide)).
    pub(crate) fn has_shared(self) -> bool {
        self.shared.is_some()
    }

    /// The sequence and mode of a queue node called `child`, or `None` for a foreign child,
    /// which the queue ignores rather than let it block (CURATOR-43).
    pub(crate) fn parse(self, child: &str) -> Option<(i64, LockMode)> {
        if let Some(sequence) = node_sequence(child, self.exclusive) {
            return Some((sequence, LockMode::Exclusive));
        }
        let shared = node_sequence(child, self.shared?)?;
        Some((shared, LockMode::Shared))
    }

    /// The queue node called `child`, if it is one.
    pub(crate) fn node(self, child: String) -> Option<QueueNode> {
        let (sequence, mode) = self.parse(&child)?;
        Some(QueueNode {
            sequence,
            name: child,
            mode,
        })
    }
}

/// The sequence of a node named `name` (`…<name><digits>`), or `None` if `child` is not one.
fn node_sequence(child: &str, name: &str) -> Option<i64> {
    let at = child.rfind(name)?;
    let digits = &child[at + name.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The queue nodes among `children`, in queue order.
pub(crate) fn queue_order(
    children: impl IntoIterator<Item = String>,
    names: NodeNames,
) -> Vec<QueueNode> {
    let mut nodes: Vec<QueueNode> = children
        .into_iter()
        .filter_map(|child| names.node(child))
        .collect();
    nodes.sort_unstable_by(|a, b| a.key_cmp(b));
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

/// One queue node: its sequence, its name under the parent and its mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct QueueNode {
    /// The sequence ZooKeeper appended, unique within one incarnation of the parent among
    /// sequential nodes. (A read node made by a downgrade carries the sequence of the write
    /// node it was made under, and is not sequential.)
    pub(crate) sequence: i64,
    /// `_c_<uuid>-lock-<seq10>`: unique across incarnations too, by its UUID.
    pub(crate) name: String,
    /// Read from the name.
    pub(crate) mode: LockMode,
}

/// Where a node sorts in the queue: by sequence, then by name (two nodes share a sequence
/// only when one is a downgrade's read node).
type NodeKey = (i64, String);

impl QueueNode {
    fn key_cmp(&self, other: &QueueNode) -> std::cmp::Ordering {
        (self.sequence, &self.name).cmp(&(other.sequence, &other.name))
    }
}

/// The first key of `sequence`: the keys below it are those of lower sequences.
fn first_key_of(sequence: i64) -> NodeKey {
    (sequence, String::new())
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
    /// the queue's nodes are those `names` describes.
    pub(crate) fn new(children: Vec<String>, parent: &Stat, names: NodeNames) -> Self {
        Self {
            incarnation: Incarnation::of_parent(parent),
            nodes: queue_order(children, names),
        }
    }

    /// True if `node` is listed (the same sequence and the same name).
    pub(crate) fn contains(&self, node: &QueueNode) -> bool {
        self.nodes.binary_search_by(|n| n.key_cmp(node)).is_ok()
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
    mode: LockMode,
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
/// reuses them. So a node missing from a listing but with a lower sequence than one that is in
/// it has been deleted, no sequential node can later appear before an existing one, and a node
/// known to be gone stays gone.
///
/// The one node that is not sequential, a downgrade's read node, is named after a write node
/// that still exists when it is made. The view may miss it (it can appear after its sequence
/// was pruned), so only shared nodes may ever be missed, and only nodes that wait for
/// shared nodes care: exclusive nodes of queues with shared ones, which are granted only on a
/// listing of their own (see [`decide`](super::decision::decide)). Every fact the view holds ("live when listed", "gone") therefore stays true,
/// except that a live node may have gone since: the view errs only towards waiting.
///
/// Facts about another incarnation are never mixed in: a listing of a newer incarnation
/// replaces the view, and one of an older incarnation is ignored.
#[derive(Debug, Clone)]
pub(crate) struct QueueView {
    incarnation: Option<Incarnation>,
    nodes: BTreeMap<NodeKey, ViewEntry>,
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
            // Known nodes before the last sequence listed but not listed themselves are gone;
            // newer ones may have been created after the listing and are left alone (and so is
            // a node of the last sequence, which may be a downgrade's read node made since).
            for (key, entry) in self.nodes.range_mut(..first_key_of(last)) {
                let listed = listing
                    .nodes
                    .binary_search_by(|n| (n.sequence, &n.name).cmp(&(key.0, &key.1)))
                    .is_ok();
                if !listed {
                    entry.state = NodeState::Gone;
                }
            }
        }
        for node in &listing.nodes {
            // Known nodes are looked up without making a key: that allocates a name.
            if node.sequence > self.gone_through && self.entry(node).is_none() {
                self.insert(node.clone(), NodeState::Live);
            }
        }
        self.prune();
        effect
    }

    /// Records that `node` of `incarnation` is gone. A fact about another incarnation is no
    /// fact about this view's nodes, and is dropped.
    pub(crate) fn mark_gone(&mut self, incarnation: Incarnation, node: &QueueNode) {
        if self.incarnation != Some(incarnation) {
            return;
        }
        if let Some((_, entry)) = self
            .nodes
            .range_mut(first_key_of(node.sequence)..)
            .take_while(|(key, _)| key.0 == node.sequence)
            .find(|(key, _)| key.1 == node.name)
        {
            entry.state = NodeState::Gone;
        }
        self.prune();
    }

    /// Records that `node` of `incarnation` was created: a watch event of the parent's
    /// [feed](super::feed), applied in order to a view built from the feed's base listing. A
    /// node already known is left as it is: sequential names are never reused, so the event is
    /// about the node the view knows (one the base listing showed).
    pub(crate) fn note_created(&mut self, incarnation: Incarnation, node: QueueNode) {
        if self.incarnation != Some(incarnation)
            || node.sequence <= self.gone_through
            || self.entry(&node).is_some()
        {
            return;
        }
        self.insert(node, NodeState::Live);
    }

    /// Records that `node` of `incarnation` was deleted, as [`mark_gone`](Self::mark_gone)
    /// does, but also for a node the view does not know yet: it is kept as gone, so that no
    /// listing taken before the deletion can bring it back.
    pub(crate) fn note_deleted(&mut self, incarnation: Incarnation, node: QueueNode) {
        if self.incarnation != Some(incarnation) || node.sequence <= self.gone_through {
            return;
        }
        if self.entry(&node).is_some() {
            self.mark_gone(incarnation, &node);
        } else {
            self.insert(node, NodeState::Gone);
            self.prune();
        }
    }

    fn insert(&mut self, node: QueueNode, state: NodeState) {
        let entry = ViewEntry {
            mode: node.mode,
            state,
        };
        self.nodes.insert((node.sequence, node.name), entry);
    }

    /// What the view knows of `node` of `incarnation`: `None` if nothing (another
    /// incarnation, or a node newer than every listing).
    pub(crate) fn state_of(&self, incarnation: Incarnation, node: &QueueNode) -> Option<NodeState> {
        if self.incarnation != Some(incarnation) {
            return None;
        }
        match self.entry(node) {
            Some(entry) => Some(entry.state),
            None if node.sequence <= self.gone_through => Some(NodeState::Gone),
            None => None,
        }
    }

    /// The nearest node before `own` (of a lower sequence) that is not known to be gone and
    /// that `own` must wait for (see [`LockMode::waits_for`]), taking `gone` for gone as well.
    pub(crate) fn live_conflicting_predecessor(
        &self,
        own: &QueueNode,
        gone: Option<&QueueNode>,
    ) -> Option<QueueNode> {
        self.nodes
            .range(..first_key_of(own.sequence))
            .rev()
            .find(|(key, entry)| {
                entry.state == NodeState::Live
                    && own.mode.waits_for(entry.mode)
                    && gone.is_none_or(|gone| gone.sequence != key.0 || gone.name != key.1)
            })
            .map(|(key, entry)| entry.node(key))
    }

    /// How many nodes before `own` (of a lower sequence) are not known to be gone: its depth
    /// in the queue.
    pub(crate) fn live_before(&self, own: &QueueNode) -> usize {
        self.nodes
            .range(..first_key_of(own.sequence))
            .filter(|(_, entry)| entry.state == NodeState::Live)
            .count()
    }

    /// The newest node not known to be gone, other than `except`.
    pub(crate) fn newest_live_except(&self, except: &QueueNode) -> Option<QueueNode> {
        self.nodes
            .iter()
            .rev()
            .find(|(key, entry)| {
                entry.state == NodeState::Live && (key.0 != except.sequence || key.1 != except.name)
            })
            .map(|(key, entry)| entry.node(key))
    }

    /// The entry of `node`, found without allocating a key (sequences are almost always
    /// unique, so this looks at one entry).
    fn entry(&self, node: &QueueNode) -> Option<&ViewEntry> {
        self.nodes
            .range(first_key_of(node.sequence)..)
            .take_while(|(key, _)| key.0 == node.sequence)
            .find(|(key, _)| key.1 == node.name)
            .map(|(_, entry)| entry)
    }

    /// Drops gone entries at the front: nothing can ever need them again.
    fn prune(&mut self) {
        while let Some(entry) = self.nodes.first_entry() {
            if entry.get().state == NodeState::Live {
                break;
            }
            self.gone_through = self.gone_through.max(entry.key().0);
            entry.remove();
        }
    }
}

impl ViewEntry {
    fn node(&self, key: &NodeKey) -> QueueNode {
        QueueNode {
            sequence: key.0,
            name: key.1.clone(),
            mode: self.mode,
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
            mode: LockMode::Exclusive,
        }
    }

    /// The nearest live predecessor of an exclusive node `sequence`.
    fn predecessor(view: &QueueView, sequence: i64) -> Option<QueueNode> {
        view.live_conflicting_predecessor(&node(sequence), None)
    }

    const P: Incarnation = Incarnation(100);

    #[test]
    fn node_names_accept_only_their_names_and_digits() {
        let lock = |child| LOCK_NAMES.parse(child);
        const X: LockMode = LockMode::Exclusive;
        assert_eq!(lock("_c_0f-lock-0000000042"), Some((42, X)));
        assert_eq!(lock("lock-0000000001"), Some((1, X)));
        assert_eq!(lock("_c_0f-lock-00000x0042"), None);
        assert_eq!(lock("_c_0f-lease-0000000042"), None);
        assert_eq!(lock("foreign"), None);
        assert_eq!(lock("lock-"), None);
        assert_eq!(LATCH_NAMES.parse("_c_0f-latch-0000000007"), Some((7, X)));
        assert_eq!(lock("_c_0f-latch-0000000007"), None);
        let read_write = |child| READ_WRITE_NAMES.parse(child);
        assert_eq!(read_write("_c_0f-__WRIT__0000000003"), Some((3, X)));
        assert_eq!(
            read_write("_c_0f-__READ__0000000004"),
            Some((4, LockMode::Shared))
        );
        assert_eq!(read_write("_c_0f-lock-0000000004"), None);
        assert_eq!(lock("_c_0f-__READ__0000000004"), None);
        assert_eq!(LOCK_NAMES.name(LockMode::Shared), None);
    }

    #[test]
    fn modes_wait_only_for_conflicting_modes() {
        use LockMode::{Exclusive, Shared};
        assert!(Exclusive.waits_for(Exclusive));
        assert!(Exclusive.waits_for(Shared));
        assert!(Shared.waits_for(Exclusive));
        assert!(!Shared.waits_for(Shared));
    }

    fn read_write_node(sequence: i64, uuid: &str, mode: LockMode) -> QueueNode {
        let name = READ_WRITE_NAMES.name(mode).unwrap();
        READ_WRITE_NAMES
            .node(format!("_c_{uuid}-{name}{sequence:010}"))
            .unwrap()
    }

    #[test]
    fn readers_pass_readers_and_wait_for_the_nearest_writer() {
        use LockMode::{Exclusive, Shared};
        let nodes = [
            read_write_node(1, "a", Exclusive),
            read_write_node(2, "b", Shared),
            read_write_node(3, "c", Shared),
            read_write_node(4, "d", Exclusive),
            read_write_node(5, "e", Shared),
        ];
        let mut view = QueueView::of(&Listing {
            incarnation: P,
            nodes: nodes.to_vec(),
        });
        let before = |n: &QueueNode| view.live_conflicting_predecessor(n, None);
        assert_eq!(
            before(&nodes[2]),
            Some(nodes[0].clone()),
            "a reader waits for a writer"
        );
        assert_eq!(before(&nodes[4]), Some(nodes[3].clone()));
        assert_eq!(
            before(&nodes[3]),
            Some(nodes[2].clone()),
            "a writer waits for readers"
        );
        view.mark_gone(P, &nodes[0]);
        assert_eq!(view.live_conflicting_predecessor(&nodes[2], None), None);
        assert_eq!(
            view.live_conflicting_predecessor(&nodes[4], Some(&nodes[3])),
            None,
            "deleting the writer would let the reader behind it in"
        );
    }

    #[test]
    fn a_downgrade_node_shares_its_sequence_with_its_write_node() {
        use LockMode::{Exclusive, Shared};
        let write = read_write_node(7, "w", Exclusive);
        let downgraded = read_write_node(7, "w2", Shared);
        let writer_behind = read_write_node(8, "x", Exclusive);
        let mut view = QueueView::of(&Listing {
            incarnation: P,
            nodes: vec![write.clone(), writer_behind.clone()],
        });
        // A listing taken after the downgrade's transaction shows both nodes of sequence 7.
        let both = queue_order(
            [&write, &downgraded, &writer_behind].map(|n| n.name.clone()),
            READ_WRITE_NAMES,
        );
        view.apply(&Listing {
            incarnation: P,
            nodes: both,
        });
        view.mark_gone(P, &write);
        assert_eq!(view.state_of(P, &downgraded), Some(NodeState::Live));
        assert_eq!(
            view.live_conflicting_predecessor(&writer_behind, None),
            Some(downgraded),
            "the writer queued behind the write node waits for its downgrade"
        );
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
            LOCK_NAMES,
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
        assert_eq!(predecessor(&view, 9).map(|n| n.sequence), Some(5));
        view.mark_gone(P, &node(5));
        assert_eq!(predecessor(&view, 9).map(|n| n.sequence), Some(2));
        view.mark_gone(P, &node(2));
        assert_eq!(predecessor(&view, 9), None);
    }

    #[test]
    fn sequence_zero_is_a_live_node() {
        // The first node under a new parent gets sequence 0: it must block the ones after it.
        let mut view = QueueView::of(&listing(100, &[0, 1]));
        assert_eq!(view.state_of(P, &node(0)), Some(NodeState::Live));
        assert_eq!(predecessor(&view, 1).map(|n| n.sequence), Some(0));
        view.mark_gone(P, &node(0));
        assert_eq!(predecessor(&view, 1), None);
        view.apply(&listing(100, &[0, 1]));
        assert_eq!(
            view.state_of(P, &node(0)),
            Some(NodeState::Gone),
            "a gone node 0 must not come back"
        );
    }

    #[test]
    fn events_keep_a_view_of_one_incarnation_exact() {
        let p = Incarnation::from_czxid(100);
        let mut view = QueueView::of(&listing(100, &[1, 2]));
        view.note_created(p, node(3));
        assert_eq!(view.state_of(p, &node(3)), Some(NodeState::Live));
        assert_eq!(predecessor(&view, 4), Some(node(3)));
        // A deletion of a node the view never saw is kept: a listing taken before it cannot
        // bring the node back.
        view.note_deleted(p, node(5));
        assert_eq!(view.state_of(p, &node(5)), Some(NodeState::Gone));
        view.apply(&listing(100, &[1, 2, 3, 5]));
        assert_eq!(view.state_of(p, &node(5)), Some(NodeState::Gone));
        // A creation event of a node the view knows changes nothing.
        view.note_deleted(p, node(2));
        view.note_created(p, node(2));
        assert_eq!(view.state_of(p, &node(2)), Some(NodeState::Gone));
        view.note_deleted(p, node(1));
        assert_eq!(predecessor(&view, 4), Some(node(3)));
        view.note_deleted(p, node(3));
        assert_eq!(predecessor(&view, 4), None);
        // Another incarnation's events are no facts about this view.
        view.note_created(Incarnation::from_czxid(200), node(6));
        assert_eq!(view.state_of(p, &node(6)), None);
    }

    #[test]
    fn a_gone_node_never_comes_back() {
        let mut view = QueueView::of(&listing(100, &[1, 2]));
        view.mark_gone(P, &node(2));
        // A late listing that still shows 2 must not bring it back.
        view.apply(&listing(100, &[1, 2]));
        assert_eq!(view.state_of(P, &node(2)), Some(NodeState::Gone));
        // Nor, once 1 is gone too and both are pruned, 1 or 2.
        view.mark_gone(P, &node(1));
        view.apply(&listing(100, &[1, 2]));
        assert_eq!(view.state_of(P, &node(1)), Some(NodeState::Gone));
        assert_eq!(predecessor(&view, 3), None);
    }

    #[test]
    fn a_newer_incarnation_replaces_the_view_and_an_older_one_is_ignored() {
        let mut view = QueueView::of(&listing(100, &[5, 6, 7]));
        view.mark_gone(P, &node(5));
        view.mark_gone(P, &node(6));
        // The parent was deleted and created again: sequences start at 0 again, and the old
        // high-water mark must not hide the new nodes.
        let recreated = Incarnation(200);
        assert_eq!(
            view.apply(&listing(200, &[0, 1])),
            ListingEffect::NewIncarnation
        );
        assert_eq!(view.incarnation(), Some(recreated));
        assert_eq!(view.state_of(recreated, &node(0)), Some(NodeState::Live));
        assert_eq!(predecessor(&view, 1).map(|n| n.sequence), Some(0));
        assert_eq!(
            view.state_of(P, &node(7)),
            None,
            "nothing is known of P any more"
        );
        // A late answer from before the recreation changes nothing.
        assert_eq!(view.apply(&listing(100, &[7])), ListingEffect::Stale);
        assert_eq!(predecessor(&view, 1).map(|n| n.sequence), Some(0));
        // Nor does a fact about the old incarnation.
        view.mark_gone(P, &node(0));
        assert_eq!(view.state_of(recreated, &node(0)), Some(NodeState::Live));
    }

    #[test]
    fn the_same_sequence_with_another_name_is_unknown() {
        let view = QueueView::of(&listing(100, &[3]));
        let other = QueueNode {
            sequence: 3,
            name: "_c_y-lock-0000000003".into(),
            mode: LockMode::Exclusive,
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
