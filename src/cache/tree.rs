//! The cache's contents, and the one rule that keeps them in step with the server: **every
//! change to the contents comes from a read, and the reads of one path are applied in the
//! order they were sent.**
//!
//! A watch event says only that a node *may* have changed (on servers before 3.9 it carries no
//! zxid); the read it triggers says what the node is. One session's requests are answered in
//! the order they were sent, so a read sent later shows the node as the server had it at a
//! later moment. Each read takes a [`Ticket`] when it is sent, and a read's answer is applied
//! only if no read of the same path sent after it was applied already: an answer that comes
//! back out of turn (reads of a resynchronisation and of watch events interleave) can never
//! take the node back to an older state, nor bring back a node a newer read found gone.
//!
//! What a read shows is compared with what the cache holds:
//!
//! * a node not held: `Created`;
//! * a node held, with another `czxid`: deleted and created again between the two reads,
//!   `Deleted` then `Created`;
//! * a node held, with another `mzxid`: `Changed` (a change is seen once, however many events
//!   and reads report it);
//! * a node held, read absent: `Deleted`, with every descendant read before (a node with
//!   children cannot be deleted, so they went first);
//! * anything else: no event (a child's creation changes the parent's stat, silently).
//!
//! A resynchronisation reads the whole tree again; a node held that no read since the
//! resynchronisation began has seen was deleted while the cache was away: `Deleted`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use zookeeper_client::Stat;

use super::node::{CacheEvent, CachedNode};

/// A read's place in the order reads were sent: larger is later.
pub(super) type Ticket = u64;

/// What a read found.
#[derive(Debug)]
pub(super) enum ReadOutcome {
    /// The node, with its data when the cache keeps data.
    Present { stat: Stat, data: Option<Vec<u8>> },
    /// No node at the path.
    Absent,
}

#[derive(Debug)]
struct Entry {
    node: Arc<CachedNode>,
    /// The read that last confirmed the node.
    ticket: Ticket,
}

/// The nodes held, keyed by path (in path order, so a node's descendants are one range).
#[derive(Debug, Default)]
pub(super) struct Tree {
    nodes: BTreeMap<String, Entry>,
    /// Paths a read found absent, with that read's ticket: a read of the path sent before it
    /// and still unanswered must not bring the node back. Dropped once no such read can come.
    absent: HashMap<String, Ticket>,
    next_ticket: Ticket,
    /// Tickets of the reads sent and not yet answered (or given up).
    in_flight: BTreeSet<Ticket>,
}

impl Tree {
    /// A ticket for a read about to be sent.
    pub(super) fn issue(&mut self) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.in_flight.insert(ticket);
        ticket
    }

    /// The read of `ticket` will not be answered (it failed, or was given up).
    pub(super) fn abandon(&mut self, ticket: Ticket) {
        self.in_flight.remove(&ticket);
        self.prune_absent();
    }

    /// The ticket the next read will take: a resynchronisation that begins now confirms only
    /// the nodes read from this ticket on.
    pub(super) fn next_ticket(&self) -> Ticket {
        self.next_ticket
    }

    /// Applies the answer to the read of `path` sent with `ticket`, pushing the events it
    /// makes to `events`.
    pub(super) fn apply(
        &mut self,
        path: &str,
        ticket: Ticket,
        outcome: ReadOutcome,
        events: &mut Vec<CacheEvent>,
    ) {
        self.apply_unanswered(path, ticket, outcome, events);
        self.answered(ticket);
    }

    /// The read of `ticket` is answered: every node it read has been applied.
    pub(super) fn answered(&mut self, ticket: Ticket) {
        self.in_flight.remove(&ticket);
        self.prune_absent();
    }

    /// Applies one node of a read that read several (one request, one ticket), leaving the
    /// ticket out until [`answered`](Self::answered): an absent path that a later read found
    /// must not be forgotten while the read's other nodes are still to be applied.
    pub(super) fn apply_unanswered(
        &mut self,
        path: &str,
        ticket: Ticket,
        outcome: ReadOutcome,
        events: &mut Vec<CacheEvent>,
    ) {
        let last = match self.nodes.get(path) {
            Some(entry) => Some(entry.ticket),
            None => self.absent.get(path).copied(),
        };
        if last.is_some_and(|last| last > ticket) {
            // A later read of this path was applied already: this answer is older news.
            return;
        }
        match outcome {
            ReadOutcome::Present { stat, data } => {
                self.absent.remove(path);
                let new = Arc::new(CachedNode::new(path.to_owned(), stat, data));
                match self.nodes.get_mut(path) {
                    None => {
                        self.nodes.insert(
                            path.to_owned(),
                            Entry {
                                node: new.clone(),
                                ticket,
                            },
                        );
                        events.push(CacheEvent::Created(new));
                    }
                    Some(entry) => {
                        entry.ticket = ticket;
                        let old = entry.node.clone();
                        if old.stat().czxid != stat.czxid {
                            entry.node = new.clone();
                            events.push(CacheEvent::Deleted(old));
                            events.push(CacheEvent::Created(new));
                        } else if old.stat().mzxid != stat.mzxid {
                            entry.node = new.clone();
                            events.push(CacheEvent::Changed { old, new });
                        } else if old.stat() != &stat {
                            // Only the children's part of the stat moved: no event.
                            entry.node = new;
                        }
                    }
                }
            }
            ReadOutcome::Absent => {
                self.remove_subtree(path, ticket, events);
                self.absent.insert(path.to_owned(), ticket);
            }
        }
    }

    /// Removes `path` and its descendants that no read at or after `ticket` confirmed (one
    /// confirmed later belongs to a node made again since), deepest first.
    fn remove_subtree(&mut self, path: &str, ticket: Ticket, events: &mut Vec<CacheEvent>) {
        let mut gone: Vec<String> = self
            .descendants(path)
            .filter(|(_, entry)| entry.ticket < ticket)
            .map(|(descendant, _)| descendant.clone())
            .collect();
        // Path order puts a parent before its children: reversed, children come first.
        gone.reverse();
        if self
            .nodes
            .get(path)
            .is_some_and(|entry| entry.ticket < ticket)
        {
            gone.push(path.to_owned());
        }
        for path in gone {
            if let Some(entry) = self.nodes.remove(&path) {
                events.push(CacheEvent::Deleted(entry.node));
            }
            self.absent.insert(path, ticket);
        }
    }

    /// Counts the node at `path`, if held, as confirmed by the read of `ticket` without
    /// changing it: a node the cache cannot read stays as it was.
    pub(super) fn confirm(&mut self, path: &str, ticket: Ticket) {
        self.in_flight.remove(&ticket);
        if let Some(entry) = self.nodes.get_mut(path) {
            entry.ticket = entry.ticket.max(ticket);
        }
        self.prune_absent();
    }

    /// Ends a resynchronisation that began at ticket `since` and read every node it could
    /// reach: a node that no read since then confirmed is gone from the server.
    pub(super) fn finish_resync(&mut self, since: Ticket, events: &mut Vec<CacheEvent>) {
        let mut gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, entry)| entry.ticket < since)
            .map(|(path, _)| path.clone())
            .collect();
        gone.reverse();
        for path in gone {
            if let Some(entry) = self.nodes.remove(&path) {
                events.push(CacheEvent::Deleted(entry.node));
            }
            // A read sent before the resynchronisation is older than its evidence.
            self.absent.insert(path, since);
        }
        self.prune_absent();
    }

    /// Forgets absent paths that no unanswered read can bring back: every read still out was
    /// sent after they were found absent.
    fn prune_absent(&mut self) {
        let oldest_out = self.in_flight.first().copied().unwrap_or(self.next_ticket);
        self.absent
            .retain(|_, found_absent| oldest_out < *found_absent);
    }

    fn descendants<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a String, &'a Entry)> {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        let start = prefix.clone();
        self.nodes
            .range(start..)
            .take_while(move |(descendant, _)| descendant.starts_with(&prefix))
            .filter(move |(descendant, _)| descendant.as_str() != "/")
    }

    /// The node at `path`, if held.
    pub(super) fn get(&self, path: &str) -> Option<Arc<CachedNode>> {
        self.nodes.get(path).map(|entry| entry.node.clone())
    }

    /// The held children of `path`, in path order.
    pub(super) fn children(&self, path: &str) -> Vec<Arc<CachedNode>> {
        let depth = depth_of(path);
        self.descendants(path)
            .filter(|(child, _)| depth_of(child) == depth + 1)
            .map(|(_, entry)| entry.node.clone())
            .collect()
    }

    /// How many nodes are held.
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every node held, in path order.
    pub(super) fn snapshot(&self) -> Vec<Arc<CachedNode>> {
        self.nodes
            .values()
            .map(|entry| entry.node.clone())
            .collect()
    }

    /// How many absent paths are remembered (for tests: the memory they cost is bounded).
    #[cfg(test)]
    fn remembered_absent(&self) -> usize {
        self.absent.len()
    }
}

/// The number of segments of an absolute path (`/` is 0, `/a` is 1).
pub(super) fn depth_of(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.matches('/').count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(czxid: i64, mzxid: i64) -> Stat {
        Stat {
            czxid,
            mzxid,
            ctime: 0,
            mtime: 0,
            version: (mzxid - czxid) as i32,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 0,
            num_children: 0,
            pzxid: czxid,
        }
    }

    fn present(czxid: i64, mzxid: i64) -> ReadOutcome {
        ReadOutcome::Present {
            stat: stat(czxid, mzxid),
            data: Some(format!("{mzxid}").into_bytes()),
        }
    }

    fn kinds(events: &[CacheEvent]) -> Vec<String> {
        events
            .iter()
            .map(|event| match event {
                CacheEvent::Created(node) => format!("created {}", node.path()),
                CacheEvent::Changed { new, .. } => format!("changed {}", new.path()),
                CacheEvent::Deleted(node) => format!("deleted {}", node.path()),
                CacheEvent::Initialized => "initialized".to_owned(),
            })
            .collect()
    }

    fn read(tree: &mut Tree, path: &str, outcome: ReadOutcome) -> Vec<String> {
        let ticket = tree.issue();
        let mut events = Vec::new();
        tree.apply(path, ticket, outcome, &mut events);
        kinds(&events)
    }

    #[test]
    fn a_change_is_reported_once_however_often_it_is_read() {
        let mut tree = Tree::default();
        assert_eq!(read(&mut tree, "/a", present(1, 1)), ["created /a"]);
        assert_eq!(read(&mut tree, "/a", present(1, 1)), Vec::<String>::new());
        assert_eq!(read(&mut tree, "/a", present(1, 5)), ["changed /a"]);
        assert_eq!(read(&mut tree, "/a", present(1, 5)), Vec::<String>::new());
        assert_eq!(read(&mut tree, "/a", ReadOutcome::Absent), ["deleted /a"]);
        assert_eq!(
            read(&mut tree, "/a", ReadOutcome::Absent),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_node_made_again_between_two_reads_is_deleted_then_created() {
        let mut tree = Tree::default();
        read(&mut tree, "/a", present(1, 1));
        assert_eq!(
            read(&mut tree, "/a", present(7, 7)),
            ["deleted /a", "created /a"]
        );
    }

    #[test]
    fn an_answer_out_of_turn_never_goes_back_in_time() {
        let mut tree = Tree::default();
        let mut events = Vec::new();
        let older = tree.issue();
        let newer = tree.issue();
        tree.apply("/a", newer, present(1, 9), &mut events);
        tree.apply("/a", older, present(1, 3), &mut events);
        assert_eq!(kinds(&events), ["created /a"]);
        assert_eq!(tree.get("/a").unwrap().stat().mzxid, 9);

        // Nor brings back a node a newer read found gone.
        let mut events = Vec::new();
        let older = tree.issue();
        let newer = tree.issue();
        tree.apply("/a", newer, ReadOutcome::Absent, &mut events);
        tree.apply("/a", older, present(1, 9), &mut events);
        assert_eq!(kinds(&events), ["deleted /a"]);
        assert!(tree.get("/a").is_none());
    }

    #[test]
    fn a_deleted_parent_takes_the_children_read_before_it() {
        let mut tree = Tree::default();
        read(&mut tree, "/p", present(1, 1));
        read(&mut tree, "/p/a", present(2, 2));
        read(&mut tree, "/p/a/x", present(3, 3));
        read(&mut tree, "/pq", present(4, 4));
        assert_eq!(
            read(&mut tree, "/p", ReadOutcome::Absent),
            ["deleted /p/a/x", "deleted /p/a", "deleted /p"]
        );
        assert_eq!(tree.len(), 1, "a sibling whose name starts alike stays");
    }

    #[test]
    fn a_resync_deletes_what_it_did_not_see() {
        let mut tree = Tree::default();
        read(&mut tree, "/", present(0, 0));
        read(&mut tree, "/a", present(1, 1));
        read(&mut tree, "/b", present(2, 2));
        let since = tree.next_ticket();
        read(&mut tree, "/", present(0, 0));
        read(&mut tree, "/b", present(2, 6));
        let mut events = Vec::new();
        tree.finish_resync(since, &mut events);
        assert_eq!(kinds(&events), ["deleted /a"]);
        assert_eq!(
            tree.children("/")
                .iter()
                .map(|node| node.path())
                .collect::<Vec<_>>(),
            ["/b"]
        );
    }

    #[test]
    fn a_read_of_several_nodes_keeps_its_ticket_out_until_all_are_applied() {
        let mut tree = Tree::default();
        let batch = tree.issue();
        let mut events = Vec::new();
        // A later read found /b absent before the batch's answer came.
        let later = tree.issue();
        tree.apply("/b", later, ReadOutcome::Absent, &mut events);
        tree.apply_unanswered("/a", batch, present(1, 1), &mut events);
        tree.apply_unanswered("/b", batch, present(2, 2), &mut events);
        tree.answered(batch);
        assert_eq!(
            kinds(&events),
            ["created /a"],
            "the batch's older /b is not applied"
        );
        assert!(tree.get("/b").is_none());
        assert_eq!(tree.remembered_absent(), 0, "nothing older is out any more");
    }

    #[test]
    fn absent_paths_are_forgotten_once_no_older_read_is_out() {
        let mut tree = Tree::default();
        let slow = tree.issue();
        for i in 0..100 {
            read(&mut tree, &format!("/n{i}"), present(i + 1, i + 1));
            read(&mut tree, &format!("/n{i}"), ReadOutcome::Absent);
        }
        assert_eq!(
            tree.remembered_absent(),
            100,
            "a read sent before them is out"
        );
        tree.abandon(slow);
        assert_eq!(tree.remembered_absent(), 0);
    }
}
