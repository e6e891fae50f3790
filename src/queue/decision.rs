//! The grant decision: one pure function from what is known to what to do next.
//!
//! Curator makes this decision in `StandardLockInternalsDriver.getsTheLock`, from one fresh
//! listing. Here the evidence may be older and comes from several places (a listing, watch
//! events, our own deletes), so the decision spells out which evidence a grant needs:
//!
//! 1. **The incarnation.** Our node was seen in a listing (or a snapshot) of the parent
//!    incarnation the view describes. Then the view holds every node that was before ours when
//!    that listing was taken, and no node can have been put before ours since.
//! 2. **No live predecessor.** Every node before ours in the view is known to be gone.
//! 3. **Presence.** Our node existed *after* every fact the view holds was learned. A deletion
//!    of our node by someone else must never go unnoticed behind a handoff. (Or, for a handoff
//!    from a node of ours: a read of our node right behind that node's delete finds it, and
//!    the rest was proven when the delete was sent; see `deleting` below.)
//! 4. **No local hold still running.** No other hold of the same client on the same lock is
//!    still in use: one whose node was deleted by someone else (or whose session was lost) is
//!    still "inside" until its guard is released or dropped, and the client knows it.
//!
//! Anything short of that is a request for more evidence (a listing, a read of our own node)
//! or a reason to wait.

use super::view::{Incarnation, NodeState, QueueNode, QueueView};

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
}

/// Our node, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnNode<'a> {
    pub(crate) node: &'a QueueNode,
    /// The incarnation of the parent our node was seen in, if a listing has shown it yet.
    pub(crate) incarnation: Option<Incarnation>,
    pub(crate) presence: Presence,
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
    /// Nothing is before our node, but another hold of the same client on the same lock is
    /// still in use: wait for it to be released.
    AwaitLocalHold,
}

/// The grant decision for one waiter: see the [module documentation](self) for the rules.
///
/// `other_local_hold` is true while another hold of the same client on the same lock has not
/// been released.
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
    if let Some(predecessor) = view.live_predecessor_besides(own.node.sequence, deleting) {
        return Decision::WaitOn {
            predecessor,
            incarnation,
        };
    }
    if other_local_hold {
        return Decision::AwaitLocalHold;
    }
    match own.presence {
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
        view.mark_gone(Incarnation::from_czxid(P), 2);
        assert_eq!(decide(&view, &proven, false, None), wait_on(node(1), P));
        view.mark_gone(Incarnation::from_czxid(P), 1);
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
        view.mark_gone(Incarnation::from_czxid(P), 0); // our release
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
        view.mark_gone(Incarnation::from_czxid(P), 1);
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

    /// A model of one ZooKeeper parent and one queue handle, driven by random interleavings of
    /// creates, deletes, parent reaping and re-creation, late listings and watch events. Each
    /// time the handle decides, a `Grant` must match the server's true state at that moment:
    /// our node exists, in the current incarnation, and no lock node is before it. A
    /// `Requeue` must match it too: our node is really gone.
    mod model {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        /// The server's side: one parent path.
        #[derive(Debug, Default)]
        struct Server {
            zxid: i64,
            /// The current incarnation's czxid, or `None` while the parent does not exist.
            parent: Option<i64>,
            next_sequence: i64,
            /// The live lock nodes of the current incarnation.
            nodes: BTreeMap<i64, String>,
            next_name: u32,
        }

        impl Server {
            fn tick(&mut self) -> i64 {
                self.zxid += 1;
                self.zxid
            }

            /// Creates a lock node (and the parent if missing, as a recipe's create does).
            fn create(&mut self) -> (i64, QueueNode) {
                if self.parent.is_none() {
                    self.parent = Some(self.tick());
                    self.next_sequence = 0;
                }
                let zxid = self.tick();
                let sequence = self.next_sequence;
                self.next_sequence += 1;
                self.next_name += 1;
                let name = format!("_c_{}-lock-{sequence:010}", self.next_name);
                self.nodes.insert(sequence, name.clone());
                (zxid, QueueNode { sequence, name })
            }

            fn listing(&self) -> Option<Listing> {
                self.parent.map(|czxid| Listing {
                    incarnation: Incarnation::from_czxid(czxid),
                    nodes: self
                        .nodes
                        .iter()
                        .map(|(&sequence, name)| QueueNode {
                            sequence,
                            name: name.clone(),
                        })
                        .collect(),
                })
            }

            fn exists(&self, incarnation: Incarnation, node: &QueueNode) -> bool {
                self.parent.map(Incarnation::from_czxid) == Some(incarnation)
                    && self.nodes.get(&node.sequence) == Some(&node.name)
            }

            fn is_head(&self, node: &QueueNode) -> bool {
                self.nodes.first_key_value().map(|(s, n)| (*s, n))
                    == Some((node.sequence, &node.name))
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
            /// Another process joins the queue.
            OtherJoins,
            /// We join the queue.
            WeJoin,
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
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => Just(Op::OtherJoins),
                3 => Just(Op::WeJoin),
                4 => (0usize..8).prop_map(Op::Delete),
                1 => Just(Op::ReapParent),
                3 => Just(Op::TakeListing),
                3 => (0usize..4).prop_map(Op::DeliverListing),
                3 => Just(Op::DeliverDeletion),
                6 => (0usize..4).prop_map(Op::Decide),
            ]
        }

        /// Runs `ops`; the number of grants made.
        fn run(ops: &[Op]) -> Result<usize, TestCaseError> {
            let mut server = Server::default();
            let mut view = QueueView::default();
            let mut waiters: Vec<Waiter> = Vec::new();
            let mut listings: Vec<(i64, Option<Listing>)> = Vec::new();
            let mut deletions: Vec<(Incarnation, i64)> = Vec::new();
            let mut grants = 0;
            for op in ops {
                match op {
                    Op::OtherJoins => {
                        server.create();
                    }
                    Op::WeJoin => {
                        let (created_at, node) = server.create();
                        waiters.push(Waiter {
                            node,
                            created_at,
                            incarnation: None,
                            unlisted: false,
                        });
                    }
                    Op::Delete(n) => {
                        let Some(czxid) = server.parent else { continue };
                        if server.nodes.is_empty() {
                            continue;
                        }
                        let sequence = *server.nodes.keys().nth(n % server.nodes.len()).unwrap();
                        server.nodes.remove(&sequence);
                        server.tick();
                        deletions.push((Incarnation::from_czxid(czxid), sequence));
                    }
                    Op::ReapParent => {
                        if server.parent.is_some() && server.nodes.is_empty() {
                            server.parent = None;
                            server.tick();
                        }
                    }
                    Op::TakeListing => {
                        listings.push((server.zxid, server.listing()));
                    }
                    Op::DeliverListing(n) => {
                        if listings.is_empty() {
                            continue;
                        }
                        let (taken_at, listing) = listings.remove(n % listings.len());
                        // What the driver does with a listing answered after a waiter's
                        // create: place the waiter, or find it gone.
                        for waiter in waiters.iter_mut().filter(|w| w.created_at <= taken_at) {
                            match &listing {
                                Some(listing) if listing.contains(&waiter.node) => {
                                    waiter.incarnation = Some(listing.incarnation)
                                }
                                _ => waiter.unlisted = true,
                            }
                        }
                        if let Some(listing) = listing {
                            view.apply(&listing);
                        }
                    }
                    Op::DeliverDeletion => {
                        if !deletions.is_empty() {
                            let (incarnation, sequence) = deletions.remove(0);
                            view.mark_gone(incarnation, sequence);
                        }
                    }
                    Op::Decide(n) => {
                        if waiters.is_empty() {
                            continue;
                        }
                        let at = n % waiters.len();
                        let waiter = &waiters[at];
                        // An armed watch on our node, with events in order: it tells the truth
                        // as of now, after every fact delivered so far.
                        let exists = waiter
                            .incarnation
                            .is_some_and(|i| server.exists(i, &waiter.node))
                            || server.listing().is_some_and(|l| l.contains(&waiter.node));
                        let presence = if waiter.unlisted || !exists {
                            Presence::Deleted
                        } else {
                            Presence::Proven
                        };
                        let own = OwnNode {
                            node: &waiter.node,
                            incarnation: waiter.incarnation,
                            presence,
                        };
                        match decide(&view, &own, false, None) {
                            Decision::Grant { .. } => {
                                let incarnation = waiter.incarnation.unwrap();
                                prop_assert!(
                                    server.exists(incarnation, &waiter.node),
                                    "granted a node that is gone: {waiter:?}"
                                );
                                prop_assert!(
                                    server.is_head(&waiter.node),
                                    "granted {waiter:?} behind {:?}",
                                    server.nodes
                                );
                                grants += 1;
                                // It holds, then releases.
                                let node = waiters.remove(at).node;
                                server.nodes.remove(&node.sequence);
                                server.tick();
                                view.mark_gone(incarnation, node.sequence);
                            }
                            Decision::Requeue(why) => {
                                let gone = !waiter
                                    .incarnation
                                    .is_some_and(|i| server.exists(i, &waiter.node))
                                    && !server.listing().is_some_and(|l| l.contains(&waiter.node));
                                prop_assert!(gone, "requeued a live node ({why:?}): {waiter:?}");
                                waiters.remove(at);
                            }
                            Decision::WaitOn { predecessor, .. } => {
                                prop_assert!(predecessor.sequence < waiter.node.sequence);
                            }
                            Decision::List | Decision::ProvePresence | Decision::AwaitLocalHold => {
                            }
                        }
                    }
                }
            }
            Ok(grants)
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
                run(&ops)?;
            }
        }

        /// The model grants at all, so the property above is not vacuous: a join, a listing
        /// and a decision make one grant; a recreated parent and a late listing make none
        /// wrongly, and the next listing lets the waiter through.
        #[test]
        fn the_model_grants() {
            let ops = [
                Op::WeJoin,
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0),
            ];
            assert_eq!(run(&ops).unwrap(), 1);
            let ops = [
                Op::WeJoin,
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0),   // granted and released
                Op::TakeListing, // late: shows nothing
                Op::ReapParent,
                Op::OtherJoins, // sequence 0 of the new parent
                Op::WeJoin,     // sequence 1
                Op::DeliverListing(0),
                Op::Decide(0), // must not be granted from the stale listing
                Op::TakeListing,
                Op::DeliverListing(0),
                Op::Decide(0), // waits on the other's node
                Op::Delete(0),
                Op::DeliverDeletion,
                Op::Decide(0),
            ];
            assert_eq!(run(&ops).unwrap(), 2);
        }
    }
}
