//! The grant decision: one pure function from what is known to what to do next.
//!
//! Curator makes this decision in `StandardLockInternalsDriver.getsTheLock`, from one fresh
//! listing. Here the evidence may be older and comes from several places (a listing, watch
//! events, our own deletes), so the decision spells out which evidence a grant needs:
//!
//! 1. **The incarnation.** Our node was seen in a listing (or a snapshot) of the parent
//!    incarnation the view describes. Then the view holds every node that was before ours when
//!    that listing was taken, and no node can have been put before ours since.
//! 2. **No live conflicting predecessor.** Every node before ours in the view that ours must
//!    wait for is known to be gone: every node, for an exclusive node; every exclusive node,
//!    for a shared one (see [`LockMode::waits_for`]).
//! 3. **Presence.** Our node existed *after* every fact the view holds was learned. A deletion
//!    of our node by someone else must never go unnoticed behind a handoff. (Or, for a handoff
//!    from a node of ours: a read of our node right behind that node's delete finds it, and
//!    the rest was proven when the delete was sent; see `deleting` below.)
//! 4. **No local hold still running.** No other hold of the same client on the same lock that
//!    conflicts with ours is still in use: one whose node was deleted by someone else (or
//!    whose session was lost) is still "inside" until its guard is released or dropped, and
//!    the client knows it.
//!
//! In a queue with shared nodes (a read/write lock), a downgrade makes a read node named after
//! the write node it holds, at that node's *old* sequence, so that no writer queued behind the
//! write node gets ahead of the read hold. Such a node can appear before an exclusive node
//! after any fact the view holds, so rules 2 and 3 for an exclusive node of such a queue need
//! **one listing** that shows our node with nothing before it. Sequential nodes cannot appear
//! before ours, and a downgrade needs a write node before ours that exists (it is checked in
//! the downgrade's transaction), which that listing would show.
//!
//! Anything short of that is a request for more evidence (a listing, a read of our own node)
//! or a reason to wait.

use super::view::{Incarnation, LockMode, NodeState, QueueNode, QueueView};

/// Whether our node is known to be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Nothing shows that it is there after the latest fact of the view.
    Unproven,
    /// It was there after the view's latest fact was learned: a listing that shows it was
    /// the latest fact, or a watch on it that was set before and had not fired after.
    Proven,
    /// It is gone: a watch saw it deleted.
    Deleted,
    /// The view is one listing alone (see [`QueueView::of`]) that shows our node: it proves
    /// every rule at the moment it was taken, including the one only a listing proves (see
    /// the [module documentation](self)).
    Listed,
}

/// Our node, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnNode<'a> {
    pub(crate) node: &'a QueueNode,
    /// The incarnation of the parent our node was seen in, if a listing has shown it yet.
    pub(crate) incarnation: Option<Incarnation>,
    pub(crate) presence: Presence,
    /// True in a queue with shared nodes, where a downgrade can place one before an exclusive
    /// node at any time (see the [module documentation](self)).
    pub(crate) downgrades: bool,
}

impl OwnNode<'_> {
    /// True if only a listing can prove this node's grant.
    fn needs_a_listing(&self) -> bool {
        only_a_listing_proves(self.node, self.downgrades)
    }
}

/// True if only a listing can prove the grant of `node`, in a queue where downgrades can place
/// read nodes (`downgrades`): an exclusive node of such a queue (see the
/// [module documentation](self)).
pub(crate) fn only_a_listing_proves(node: &QueueNode, downgrades: bool) -> bool {
    downgrades && node.mode == LockMode::Exclusive
}

/// Why our node is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// A watch on it saw it deleted.
    Deleted,
    /// A listing taken after it was created lacks it.
    Unlisted,
    /// The parent it was created under was deleted (and another created since).
    ParentRecreated,
}

/// What to do next for one waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Everything a grant needs is proven: take the lock. Our node lives in `incarnation`.
    Grant { incarnation: Incarnation },
    /// Our node is gone: it can never be granted. Join again with a new node (or report it).
    Requeue(Gone),
    /// The view does not cover our node yet: list the parent.
    List,
    /// Wait until `predecessor`, the nearest node before ours not known to be gone, goes.
    WaitOn {
        predecessor: QueueNode,
        incarnation: Incarnation,
    },
    /// Nothing is before our node, but its presence is unproven: read (and watch) it.
    ProvePresence,
    /// Nothing is known to be before our exclusive node, but only a listing can prove it (a
    /// downgrade may have made a read node before it): list the parent and decide on that
    /// listing alone.
    ConfirmByListing,
    /// Nothing is before our node, but another hold of the same client on the same lock is
    /// still in use: wait for it to be released.
    AwaitLocalHold,
}

/// The grant decision for one waiter: see the [module documentation](self) for the rules.
///
/// `other_local_hold` is true while another hold of the same client on the same lock that
/// conflicts with ours has not been released.
///
/// `deleting` is a node of ours about to be deleted, with a read of our node behind the
/// delete: the decision is then the one to make if the delete succeeds and the read finds our
/// node, which proves it there after its predecessor went.
pub(crate) fn decide(
    view: &QueueView,
    own: &OwnNode<'_>,
    other_local_hold: bool,
    deleting: Option<&QueueNode>,
) -> Decision {
    if own.presence == Presence::Deleted {
        return Decision::Requeue(Gone::Deleted);
    }
    let Some(incarnation) = own.incarnation else {
        return Decision::List;
    };
    match view.incarnation() {
        Some(current) if current > incarnation => return Decision::Requeue(Gone::ParentRecreated),
        Some(current) if current == incarnation => {}
        // The view has not taken in the listing that showed our node: list again.
        _ => return Decision::List,
    }
    match view.state_of(incarnation, own.node) {
        Some(NodeState::Live) => {}
        Some(NodeState::Gone) => return Decision::Requeue(Gone::Unlisted),
        None => return Decision::List,
    }
    if let Some(predecessor) = view.live_conflicting_predecessor(own.node, deleting) {
        return Decision::WaitOn {
            predecessor,
            incarnation,
        };
    }
    if other_local_hold {
        return Decision::AwaitLocalHold;
    }
    match own.presence {
        Presence::Listed => Decision::Grant { incarnation },
        _ if own.needs_a_listing() => Decision::ConfirmByListing,
        Presence::Proven => Decision::Grant { incarnation },
        Presence::Unproven | Presence::Deleted => Decision::ProvePresence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::view::Listing;

    const P: i64 = 100;

    fn node(sequence: i64) -> QueueNode {
        QueueNode {
            sequence,
            name: format!("_c_{sequence}-lock-{sequence:010}"),
            mode: LockMode::Exclusive,
        }
    }

    fn listing(czxid: i64, sequences: &[i64]) -> Listing {
        Listing {
            incarnation: Incarnation::from_czxid(czxid),
            nodes: sequences.iter().map(|&s| node(s)).collect(),
        }
    }

    fn granted(czxid: i64) -> Decision {
        Decision::Grant {
            incarnation: Incarnation::from_czxid(czxid),
        }
    }

    fn wait_on(predecessor: QueueNode, czxid: i64) -> Decision {
        Decision::WaitOn {
            predecessor,
            incarnation: Incarnation::from_czxid(czxid),
        }
    }

    fn own(node: &QueueNode, czxid: Option<i64>, presence: Presence) -> OwnNode<'_> {
        OwnNode {
            node,
            incarnation: czxid.map(Incarnation::from_czxid),
            presence,
            downgrades: false,
        }
    }

    #[test]
    fn the_head_is_granted_only_when_present() {
        let view = QueueView::of(&listing(P, &[3]));
        let me = node(3);
        assert_eq!(
            decide(&view, &own(&me, Some(P), Presence::Proven), false, None),
            granted(P)
        );
        assert_eq!(
            decide(&view, &own(&me, Some(P), Presence::Unproven), false, None),
            Decision::ProvePresence
        );
        assert_eq!(
            decide(&view, &own(&me, Some(P), Presence::Deleted), false, None),
            Decision::Requeue(Gone::Deleted)
        );
    }

    #[test]
    fn a_waiter_waits_on_its_nearest_live_predecessor() {
        let mut view = QueueView::of(&listing(P, &[1, 2, 3]));
        let me = node(3);
        let proven = own(&me, Some(P), Presence::Proven);
        assert_eq!(decide(&view, &proven, false, None), wait_on(node(2), P));
        view.mark_gone(Incarnation::from_czxid(P), &node(2));
        assert_eq!(decide(&view, &proven, false, None), wait_on(node(1), P));
        view.mark_gone(Incarnation::from_czxid(P), &node(1));
        assert_eq!(decide(&view, &proven, false, None), granted(P));
    }

    #[test]
    fn a_node_not_yet_listed_asks_for_a_listing() {
        let view = QueueView::of(&listing(P, &[1]));
        let me = node(2);
        assert_eq!(
            decide(&view, &own(&me, None, Presence::Proven), false, None),
            Decision::List
        );
        // Seen in a listing the view has not taken in (say, a newer one on another path).
        assert_eq!(
            decide(&view, &own(&me, Some(P + 1), Presence::Proven), false, None),
            Decision::List
        );
        assert_eq!(
            decide(
                &QueueView::default(),
                &own(&me, Some(P), Presence::Proven),
                false,
                None
            ),
            Decision::List
        );
    }

    /// Scenario 1 of the issue that led to this module: a handle that used the lock before
    /// the parent was deleted and created again must not reason with the old sequences.
    #[test]
    fn a_recreated_parent_ends_every_old_node_and_every_old_high_water_mark() {
        let mut view = QueueView::of(&listing(P, &[0]));
        view.mark_gone(Incarnation::from_czxid(P), &node(0)); // our release
                                                              // The parent is reaped and created again by someone else, who holds sequence 0; our
                                                              // next node is sequence 1 of the new parent.
        let me = node(1);
        let new = 200;
        view.apply(&listing(new, &[0, 1]));
        assert_eq!(
            decide(&view, &own(&me, Some(new), Presence::Proven), false, None),
            wait_on(node(0), new)
        );
        // A waiter of the old parent is gone, whatever its sequence.
        let old = node(5);
        assert_eq!(
            decide(&view, &own(&old, Some(P), Presence::Proven), false, None),
            Decision::Requeue(Gone::ParentRecreated)
        );
    }

    /// Scenario 2: a waiter whose node was deleted while it waited is never granted when its
    /// predecessor goes.
    #[test]
    fn a_deleted_waiter_is_requeued_not_granted() {
        let mut view = QueueView::of(&listing(P, &[1, 2, 3]));
        let me = node(2);
        view.mark_gone(Incarnation::from_czxid(P), &node(1));
        assert_eq!(
            decide(&view, &own(&me, Some(P), Presence::Deleted), false, None),
            Decision::Requeue(Gone::Deleted)
        );
        // Or a listing taken after its deletion lacks it.
        view.apply(&listing(P, &[3]));
        assert_eq!(
            decide(&view, &own(&me, Some(P), Presence::Proven), false, None),
            Decision::Requeue(Gone::Unlisted)
        );
    }

    #[test]
    fn a_release_that_checks_our_node_decides_as_if_it_had_committed() {
        let view = QueueView::of(&listing(P, &[1, 2, 3]));
        let me = node(3);
        let proven = own(&me, Some(P), Presence::Proven);
        // Deleting our node 2 while 1 is still live: still a wait, on 1.
        assert_eq!(
            decide(&view, &proven, false, Some(&node(2))),
            wait_on(node(1), P)
        );
        let view = QueueView::of(&listing(P, &[2, 3]));
        assert_eq!(decide(&view, &proven, false, Some(&node(2))), granted(P));
        // A node of the same sequence but another name is another node.
        let other = QueueNode {
            sequence: 2,
            name: "_c_other-lock-0000000002".into(),
            mode: LockMode::Exclusive,
        };
        assert_eq!(
            decide(&view, &proven, false, Some(&other)),
            wait_on(node(2), P)
        );
    }

    #[test]
    fn a_local_hold_still_in_use_holds_back_the_grant() {
        let view = QueueView::of(&listing(P, &[4]));
        let me = node(4);
        assert_eq!(
            decide(&view, &own(&me, Some(P), Presence::Proven), true, None),
            Decision::AwaitLocalHold
        );
        // Only once nothing is before us: a predecessor is waited on first.
        let view = QueueView::of(&listing(P, &[3, 4]));
        assert_eq!(
            decide(&view, &own(&me, Some(P), Presence::Proven), true, None),
            wait_on(node(3), P)
        );
    }

    fn read_write(sequence: i64, uuid: &str, mode: LockMode) -> QueueNode {
        use crate::queue::view::READ_WRITE_NAMES;
        let name = READ_WRITE_NAMES.name(mode).unwrap();
        READ_WRITE_NAMES
            .node(format!("_c_{uuid}-{name}{sequence:010}"))
            .unwrap()
    }

    fn read_write_listing(nodes: &[&QueueNode]) -> Listing {
        let mut nodes: Vec<QueueNode> = nodes.iter().map(|&n| n.clone()).collect();
        nodes.sort_by(|a, b| (a.sequence, &a.name).cmp(&(b.sequence, &b.name)));
        Listing {
            incarnation: Incarnation::from_czxid(P),
            nodes,
        }
    }

    fn read_write_own(node: &QueueNode, presence: Presence) -> OwnNode<'_> {
        OwnNode {
            node,
            incarnation: Some(Incarnation::from_czxid(P)),
            presence,
            downgrades: true,
        }
    }

    #[test]
    fn readers_share_and_wait_only_for_writers() {
        use LockMode::{Exclusive, Shared};
        let first_reader = read_write(1, "a", Shared);
        let second_reader = read_write(2, "b", Shared);
        let writer = read_write(3, "c", Exclusive);
        let late_reader = read_write(4, "d", Shared);
        let mut view = QueueView::of(&read_write_listing(&[
            &first_reader,
            &second_reader,
            &writer,
            &late_reader,
        ]));
        let proven = |n| read_write_own(n, Presence::Proven);
        assert_eq!(
            decide(&view, &proven(&second_reader), false, None),
            granted(P)
        );
        assert_eq!(
            decide(&view, &proven(&writer), false, None),
            wait_on(second_reader.clone(), P)
        );
        assert_eq!(
            decide(&view, &proven(&late_reader), false, None),
            wait_on(writer.clone(), P),
            "a reader behind a waiting writer waits: the queue is fair"
        );
        view.mark_gone(Incarnation::from_czxid(P), &writer);
        assert_eq!(
            decide(&view, &proven(&late_reader), false, None),
            granted(P)
        );
        // A conflicting local hold (a write hold of the same client) holds a reader back.
        assert_eq!(
            decide(&view, &proven(&late_reader), true, None),
            Decision::AwaitLocalHold
        );
    }

    /// CURATOR-276 and CURATOR-621: a writer queued behind a write hold that downgrades must
    /// not get in while the downgrade's read hold lasts. The read node appears at the write
    /// node's sequence, after the writer's view was made, so only a listing proves a writer's
    /// turn.
    #[test]
    fn a_writer_is_granted_only_on_a_listing_that_shows_it_first() {
        use LockMode::{Exclusive, Shared};
        let holder = read_write(5, "h", Exclusive);
        let writer = read_write(6, "w", Exclusive);
        let mut view = QueueView::of(&read_write_listing(&[&holder, &writer]));
        // The holder downgrades (its read node `5`) and releases its write node; the writer's
        // watch sees the write node go, and nothing else.
        view.mark_gone(Incarnation::from_czxid(P), &holder);
        let proven = read_write_own(&writer, Presence::Proven);
        assert_eq!(
            decide(&view, &proven, false, None),
            Decision::ConfirmByListing,
            "a watch alone must not grant a writer"
        );
        // The listing shows the downgrade's read node before the writer.
        let downgraded = read_write(5, "h2", Shared);
        let listing = read_write_listing(&[&downgraded, &writer]);
        let listed = read_write_own(&writer, Presence::Listed);
        assert_eq!(
            decide(&QueueView::of(&listing), &listed, false, None),
            wait_on(downgraded.clone(), P)
        );
        let listing = read_write_listing(&[&writer]);
        assert_eq!(
            decide(&QueueView::of(&listing), &listed, false, None),
            granted(P)
        );
        // A reader needs no listing: a downgrade only ever adds readers.
        let reader = read_write(7, "r", Shared);
        let view = QueueView::of(&read_write_listing(&[&downgraded, &reader]));
        assert_eq!(
            decide(
                &view,
                &read_write_own(&reader, Presence::Proven),
                false,
                None
            ),
            granted(P)
        );
    }

    /// A model of one ZooKeeper parent and one queue handle, driven by random interleavings of
    /// creates, deletes, parent reaping and re-creation, late listings, watch events, and (for
    /// a read/write queue) readers, writers and downgrades, ours and others'. Each time the
    /// handle decides, a `Grant` must match the server's true state at that moment: our node
    /// exists, in the current incarnation, and no node it must wait for is before it (so
    /// readers and writers never hold together, counting others' nodes as held whenever they
    /// could be). A `Requeue` must match it too: our node is really gone.
    mod model {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;
        use crate::queue::view::{NodeNames, LOCK_NAMES, READ_WRITE_NAMES};

        /// The server's side: one parent path.
        #[derive(Debug)]
        struct Server {
            names: NodeNames,
            zxid: i64,
            /// The current incarnation's czxid, or `None` while the parent does not exist.
            parent: Option<i64>,
            next_sequence: i64,
            /// The live queue nodes of the current incarnation, in queue order.
            nodes: BTreeMap<(i64, String), LockMode>,
            next_name: u32,
        }

        impl Server {
            fn new(names: NodeNames) -> Self {
                Self {
                    names,
                    zxid: 0,
                    parent: None,
                    next_sequence: 0,
                    nodes: BTreeMap::new(),
                    next_name: 0,
                }
            }

            fn tick(&mut self) -> i64 {
                self.zxid += 1;
                self.zxid
            }

            fn named(&mut self, sequence: i64, mode: LockMode) -> QueueNode {
                self.next_name += 1;
                let name = self.names.name(mode).unwrap();
                self.names
                    .node(format!("_c_{}-{name}{sequence:010}", self.next_name))
                    .unwrap()
            }

            /// Creates a sequential node (and the parent if missing, as a recipe's create
            /// does).
            fn create(&mut self, mode: LockMode) -> (i64, QueueNode) {
                if self.parent.is_none() {
                    self.parent = Some(self.tick());
                    self.next_sequence = 0;
                }
                let zxid = self.tick();
                let sequence = self.next_sequence;
                self.next_sequence += 1;
                let node = self.named(sequence, mode);
                self.nodes.insert((sequence, node.name.clone()), mode);
                (zxid, node)
            }

            /// A downgrade of the write node `write`: one transaction that checks it and
            /// creates a read node at its sequence. `None` if the check fails.
            fn downgrade(
                &mut self,
                incarnation: Incarnation,
                write: &QueueNode,
            ) -> Option<QueueNode> {
                if !self.exists(incarnation, write) {
                    return None;
                }
                self.tick();
                let read = self.named(write.sequence, LockMode::Shared);
                self.nodes
                    .insert((read.sequence, read.name.clone()), read.mode);
                Some(read)
            }

            fn listing(&self) -> Option<Listing> {
                self.parent.map(|czxid| Listing {
                    incarnation: Incarnation::from_czxid(czxid),
                    nodes: self
                        .nodes
                        .iter()
                        .map(|((sequence, name), mode)| QueueNode {
                            sequence: *sequence,
                            name: name.clone(),
                            mode: *mode,
                        })
                        .collect(),
                })
            }

            fn exists(&self, incarnation: Incarnation, node: &QueueNode) -> bool {
                self.parent.map(Incarnation::from_czxid) == Some(incarnation)
                    && self.nodes.contains_key(&(node.sequence, node.name.clone()))
            }

            /// The live nodes before `node` that it must wait for: none, for a grant.
            fn conflicts_before(&self, node: &QueueNode) -> Vec<(i64, String)> {
                self.nodes
                    .iter()
                    .filter(|((sequence, _), mode)| {
                        *sequence < node.sequence && node.mode.waits_for(**mode)
                    })
                    .map(|(key, _)| key.clone())
                    .collect()
            }

            fn delete(&mut self, node: &QueueNode) -> bool {
                let deleted = self
                    .nodes
                    .remove(&(node.sequence, node.name.clone()))
                    .is_some();
                if deleted {
                    self.tick();
                }
                deleted
            }
        }

        /// One of our waiters.
        #[derive(Debug)]
        struct Waiter {
            node: QueueNode,
            created_at: i64,
            incarnation: Option<Incarnation>,
            /// Seen deleted by a listing taken after its create that lacked it.
            unlisted: bool,
        }

        #[derive(Debug, Clone)]
        enum Op {
            /// Another process joins the queue (shared only in a read/write queue).
            OtherJoins(bool),
            /// We join the queue.
            WeJoin(bool),
            /// Someone deletes the `n`-th live node (a release, an operator, an expiry).
            Delete(usize),
            /// The reaper deletes the parent if it is empty.
            ReapParent,
            /// A listing is taken now, to arrive later.
            TakeListing,
            /// The `n`-th listing in flight arrives (not necessarily the oldest: another
            /// session's answer may come late).
            DeliverListing(usize),
            /// The oldest deletion not yet reported arrives, as a watch event.
            DeliverDeletion,
            /// Our `n`-th waiter is decided on.
            Decide(usize),
            /// We release our `n`-th hold.
            Release(usize),
            /// Our `n`-th hold, if a write hold, downgrades.
            Downgrade(usize),
            /// The other process at the head of the queue, if it holds a write node, downgrades.
            OtherDowngrades,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => any::<bool>().prop_map(Op::OtherJoins),
                3 => any::<bool>().prop_map(Op::WeJoin),
                4 => (0usize..8).prop_map(Op::Delete),
                1 => Just(Op::ReapParent),
                3 => Just(Op::TakeListing),
                3 => (0usize..4).prop_map(Op::DeliverListing),
                3 => Just(Op::DeliverDeletion),
                6 => (0usize..4).prop_map(Op::Decide),
                3 => (0usize..4).prop_map(Op::Release),
                2 => (0usize..4).prop_map(Op::Downgrade),
                1 => Just(Op::OtherDowngrades),
            ]
        }

        struct Model {
            read_write: bool,
            server: Server,
            view: QueueView,
            waiters: Vec<Waiter>,
            held: Vec<(Incarnation, QueueNode)>,
            listings: Vec<(i64, Option<Listing>)>,
            deletions: Vec<(Incarnation, QueueNode)>,
            grants: usize,
        }

        impl Model {
            fn new(read_write: bool) -> Self {
                let names = if read_write {
                    READ_WRITE_NAMES
                } else {
                    LOCK_NAMES
                };
                Self {
                    read_write,
                    server: Server::new(names),
                    view: QueueView::default(),
                    waiters: Vec::new(),
                    held: Vec::new(),
                    listings: Vec::new(),
                    deletions: Vec::new(),
                    grants: 0,
                }
            }

            fn mode(&self, shared: bool) -> LockMode {
                if shared && self.read_write {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                }
            }

            fn deleted(&mut self, node: &QueueNode) {
                if let Some(czxid) = self.server.parent {
                    if self.server.delete(node) {
                        self.deletions
                            .push((Incarnation::from_czxid(czxid), node.clone()));
                    }
                }
            }

            /// What the driver does with a listing answered after some waiters' creates:
            /// place them, or find them gone, and take it into the view.
            fn deliver(&mut self, taken_at: i64, listing: Option<Listing>) {
                for waiter in self.waiters.iter_mut().filter(|w| w.created_at <= taken_at) {
                    match &listing {
                        Some(listing) if listing.contains(&waiter.node) => {
                            waiter.incarnation = Some(listing.incarnation)
                        }
                        _ => waiter.unlisted = true,
                    }
                }
                if let Some(listing) = listing {
                    self.view.apply(&listing);
                }
            }

            fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
                match op {
                    Op::OtherJoins(shared) => {
                        self.server.create(self.mode(*shared));
                    }
                    Op::WeJoin(shared) => {
                        let (created_at, node) = self.server.create(self.mode(*shared));
                        self.waiters.push(Waiter {
                            node,
                            created_at,
                            incarnation: None,
                            unlisted: false,
                        });
                    }
                    Op::Delete(n) => {
                        let Some(listing) = self.server.listing() else {
                            return Ok(());
                        };
                        if let Some(node) = listing.nodes.get(n % listing.nodes.len().max(1)) {
                            self.deleted(&node.clone());
                        }
                    }
                    Op::ReapParent => {
                        if self.server.parent.is_some() && self.server.nodes.is_empty() {
                            self.server.parent = None;
                            self.server.tick();
                        }
                    }
                    Op::TakeListing => {
                        self.listings
                            .push((self.server.zxid, self.server.listing()));
                    }
                    Op::DeliverListing(n) => {
                        if !self.listings.is_empty() {
                            let (taken_at, listing) = self.listings.remove(n % self.listings.len());
                            self.deliver(taken_at, listing);
                        }
                    }
                    Op::DeliverDeletion => {
                        if !self.deletions.is_empty() {
                            let (incarnation, node) = self.deletions.remove(0);
                            self.view.mark_gone(incarnation, &node);
                        }
                    }
                    Op::Decide(n) => {
                        if !self.waiters.is_empty() {
                            self.decide(n % self.waiters.len())?;
                        }
                    }
                    Op::Release(n) => {
                        if !self.held.is_empty() {
                            let (incarnation, node) = self.held.remove(n % self.held.len());
                            // Our release: the delete, and the view learns of it.
                            self.deleted(&node);
                            self.deletions.retain(|(_, gone)| *gone != node);
                            self.view.mark_gone(incarnation, &node);
                        }
                    }
                    Op::Downgrade(n) => {
                        if self.held.is_empty() {
                            return Ok(());
                        }
                        let (incarnation, write) = self.held[n % self.held.len()].clone();
                        if write.mode == LockMode::Exclusive && self.read_write {
                            if let Some(read) = self.server.downgrade(incarnation, &write) {
                                self.held.push((incarnation, read));
                            }
                        }
                    }
                    Op::OtherDowngrades => {
                        let ours = |key: &(i64, String)| {
                            self.waiters
                                .iter()
                                .map(|w| &w.node)
                                .chain(self.held.iter().map(|h| &h.1))
                                .any(|n| (n.sequence, &n.name) == (key.0, &key.1))
                        };
                        let head = self
                            .server
                            .nodes
                            .iter()
                            .next()
                            .map(|(k, m)| (k.clone(), *m));
                        if let (true, Some((key, LockMode::Exclusive)), Some(czxid)) =
                            (self.read_write, head, self.server.parent)
                        {
                            if !ours(&key) {
                                let write = self.server.names.node(key.1).unwrap();
                                self.server
                                    .downgrade(Incarnation::from_czxid(czxid), &write);
                            }
                        }
                    }
                }
                Ok(())
            }

            /// True if `waiter`'s node is on the server now.
            fn live_now(&self, waiter: &Waiter) -> bool {
                waiter
                    .incarnation
                    .is_some_and(|i| self.server.exists(i, &waiter.node))
                    || self
                        .server
                        .listing()
                        .is_some_and(|l| l.contains(&waiter.node))
            }

            fn decide(&mut self, at: usize) -> Result<(), TestCaseError> {
                let waiter = &self.waiters[at];
                // An armed watch on our node, with events in order: it tells the truth as of
                // now, after every fact delivered so far.
                let presence = if waiter.unlisted || !self.live_now(waiter) {
                    Presence::Deleted
                } else {
                    Presence::Proven
                };
                let node = waiter.node.clone();
                let own = OwnNode {
                    node: &node,
                    incarnation: waiter.incarnation,
                    presence,
                    downgrades: self.read_write,
                };
                let mut decision = decide(&self.view, &own, false, None);
                if decision == Decision::ConfirmByListing {
                    // The driver lists now, and decides on that listing alone.
                    let listing = self.server.listing();
                    let listed = listing.as_ref().filter(|l| l.contains(&node));
                    decision = match listed {
                        Some(listing) => {
                            let own = OwnNode {
                                incarnation: Some(listing.incarnation),
                                presence: Presence::Listed,
                                ..own
                            };
                            decide(&QueueView::of(listing), &own, false, None)
                        }
                        None => Decision::Requeue(Gone::Unlisted),
                    };
                    let zxid = self.server.zxid;
                    self.deliver(zxid, listing);
                }
                let waiter = &self.waiters[at];
                match decision {
                    Decision::Grant { incarnation } => {
                        prop_assert!(
                            self.server.exists(incarnation, &node),
                            "granted a node that is gone: {waiter:?}"
                        );
                        let conflicts = self.server.conflicts_before(&node);
                        prop_assert!(
                            conflicts.is_empty(),
                            "granted {waiter:?} while {conflicts:?} may hold"
                        );
                        self.grants += 1;
                        self.waiters.remove(at);
                        self.held.push((incarnation, node));
                    }
                    Decision::Requeue(why) => {
                        prop_assert!(
                            !self.live_now(waiter),
                            "requeued a live node ({why:?}): {waiter:?}"
                        );
                        self.waiters.remove(at);
                    }
                    Decision::WaitOn { predecessor, .. } => {
                        prop_assert!(predecessor.sequence < node.sequence);
                        prop_assert!(node.mode.waits_for(predecessor.mode));
                    }
                    Decision::List
                    | Decision::ProvePresence
                    | Decision::ConfirmByListing
                    | Decision::AwaitLocalHold => {}
                }
                Ok(())
            }
        }

        /// Runs `ops`; the number of grants made.
        fn run(ops: &[Op], read_write: bool) -> Result<usize, TestCaseError> {
            let mut model = Model::new(read_write);
            for op in ops {
                model.apply(op)?;
            }
            Ok(model.grants)
        }

        proptest! {
            // No regression files: the cases that matter are the unit tests above.
            #![proptest_config(ProptestConfig {
                cases: 2000,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn grants_and_requeues_match_the_server(ops in proptest::collection::vec(op(), 1..120)) {
                run(&ops, false)?;
            }

            #[test]
            fn readers_and_writers_never_hold_together(ops in proptest::collection::vec(op(), 1..120)) {
                run(&ops, true)?;
            }
        }

        /// The model grants at all, so the properties above are not vacuous: a join, a
        /// listing and a decision make one grant; a recreated parent and a late listing make
        /// none wrongly, and the next listing lets the waiter through.
        #[test]
        fn the_model_grants() {
            let ops = [
                Op::WeJoin(false),
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0),
            ];
            assert_eq!(run(&ops, false).unwrap(), 1);
            let ops = [
                Op::WeJoin(false),
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0), // granted
                Op::Release(0),
                Op::TakeListing, // late: shows nothing
                Op::ReapParent,
                Op::OtherJoins(false), // sequence 0 of the new parent
                Op::WeJoin(false),     // sequence 1
                Op::DeliverListing(0),
                Op::Decide(0), // must not be granted from the stale listing
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0), // waits on the other's node
                Op::Delete(0),
                Op::DeliverDeletion,
                Op::Decide(0),
            ];
            assert_eq!(run(&ops, false).unwrap(), 2);
        }

        /// Readers share, and the downgrade scenario of CURATOR-276 grants the queued writer
        /// only once the downgrade's read hold is released.
        #[test]
        fn the_read_write_model_grants_readers_together_and_writers_alone() {
            let ops = [
                Op::WeJoin(true),
                Op::WeJoin(true),
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0),
                Op::Decide(0), // both readers hold
            ];
            assert_eq!(run(&ops, true).unwrap(), 2);
            let ops = [
                Op::WeJoin(false), // a writer: 0
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0),     // holds
                Op::WeJoin(false), // a second writer: 1
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0),    // waits on 0
                Op::Downgrade(0), // the read node at 0
                Op::Release(0),   // the write node 0 goes
                Op::Decide(0),    // must wait on the read node
                Op::Release(0),   // the read node goes
                Op::Decide(0),    // granted
            ];
            assert_eq!(run(&ops, true).unwrap(), 2);
        }
    }
}
