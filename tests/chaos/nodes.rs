//! The chaos suite's node group: nodes kept present ([`PersistentNode`]) and group members
//! ([`GroupMember`]) on clients behind proxies, given new data all the time, and a checker.
//!
//! Three participants (`node-0`, `node-1`, `node-2`), each with:
//!
//! * a [`PersistentNode`] under a parent of its own (`<root>/k<i>`): a protected
//!   ephemeral-sequential node, a persistent node and an ephemeral node;
//! * a [`GroupMember`] of one group (`<root>/group`), its id the participant's name;
//! * a service instance registered with a [`ServiceDiscovery`] (`<root>/services/svc/<name>`,
//!   dynamic: an ephemeral node holding its JSON).
//!
//! An updater gives a node or a member new data a few times a second (the call is cut short
//! after a second: the data is kept at once, and written by the node's task).
//!
//! After every healed fault, and once warmed up, with the updater paused, within the bound:
//! each node exists exactly once under its parent, with the latest data it was given, owned
//! (if ephemeral) by its client's current session; each member's node likewise; and each
//! member's view of the group equals the group on the server; each registered instance's node
//! holds the instance's JSON, owned by its client's current session. Each node's event stream must
//! read as a node's life (`Created`, then `Deleted` and `Recreated` in turn). After the run,
//! once everything is closed, no node of theirs is left.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zk_recipes::discovery::{JsonInstanceSerializer, ServiceDiscovery, ServiceInstance};
use zk_recipes::testing::TestingCluster;
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, GroupMember, NodeEvent, PersistentNode};

use super::Participant;

/// Salts the run's seed for the node group's RNGs (the updater's, and the one that draws the
/// participants a fault hits), so that the recipes' schedule of a seed stays as it was.
const NODE_SEED_SALT: u64 = 0x0de5_eed0_0000_0000;
/// How long an updater's pause between two updates may be, in milliseconds.
const UPDATE_PAUSE: std::ops::Range<u64> = 100..400;

/// One participant of the node group.
pub(crate) struct KeptNode {
    pub(crate) participant: Participant,
    node: PersistentNode,
    member: GroupMember,
    discovery: ServiceDiscovery<String>,
    /// The registered instance's path and JSON.
    instance: (String, Vec<u8>),
    /// The node's parent, which holds it alone.
    parent: String,
    /// What its events said that does not read as a node's life.
    lifecycle_errors: Arc<Mutex<Vec<String>>>,
    events_task: Mutex<Option<JoinHandle<()>>>,
}

/// The node group.
pub(crate) struct NodeGroup {
    pub(crate) kept: Vec<KeptNode>,
    services: String,
    group: String,
    /// True while a check runs: the updater makes no new update.
    paused: watch::Sender<bool>,
    rng: Mutex<fastrand::Rng>,
    /// Updates given.
    pub(crate) updates: Arc<AtomicUsize>,
    /// Node checks made, and what diverged.
    pub(crate) checks: AtomicUsize,
    pub(crate) divergences: Mutex<Vec<String>>,
}

/// Checks that `events` read as a node's life: `Created` first, then `Deleted` and
/// `Recreated` in turn, never `Failed`.
async fn follow_events(
    name: String,
    mut events: zk_recipes::NodeEvents,
    errors: Arc<Mutex<Vec<String>>>,
) {
    // 0: not made yet; 1: present; 2: gone.
    let mut state = 0;
    while let Some(event) = events.next().await {
        let next = match (&event, state) {
            (NodeEvent::Created(_), 0) => 1,
            (NodeEvent::Deleted(_), 1) => 2,
            (NodeEvent::Recreated(_), 2) => 1,
            _ => {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("{name}: {event:?} in state {state}"));
                state
            }
        };
        state = next;
    }
}

impl NodeGroup {
    /// Starts the group's three participants under `root`.
    pub(crate) async fn start(cluster: &TestingCluster, root: &str, seed: u64) -> NodeGroup {
        let group = format!("{root}/group");
        let mut kept = Vec::new();
        for i in 0..3 {
            let name = format!("node-{i}");
            let participant = Participant::connect(name.clone(), cluster).await;
            let parent = format!("{root}/k{i}");
            let (path, mode) = match i {
                0 => (format!("{parent}/n-"), CreateMode::EphemeralSequential),
                1 => (format!("{parent}/node"), CreateMode::Persistent),
                _ => (format!("{parent}/node"), CreateMode::Ephemeral),
            };
            let node = PersistentNode::builder(&participant.client, &path, mode)
                .protected(mode == CreateMode::EphemeralSequential)
                .data(&b"0"[..])
                .build()
                .expect("build a node");
            let lifecycle_errors = Arc::new(Mutex::new(Vec::new()));
            let events_task = tokio::spawn(follow_events(
                name.clone(),
                node.events(),
                lifecycle_errors.clone(),
            ));
            node.start().expect("start a node");
            let member = GroupMember::new(&participant.client, &group, &name, &b"0"[..])
                .expect("build a member");
            member.start().await.expect("start a member");
            let services = format!("{root}/services");
            let discovery = ServiceDiscovery::<String>::builder(&participant.client, &services)
                .build()
                .expect("build a discovery");
            let registered = ServiceInstance::builder("svc")
                .id(name.clone())
                .address("10.0.0.1")
                .port(8000 + i as u16)
                .payload(name.clone())
                .build()
                .expect("an instance");
            discovery.register(&registered).await.expect("register");
            let instance = (
                format!("{services}/svc/{name}"),
                JsonInstanceSerializer::new()
                    .serialize(&registered)
                    .expect("serialize"),
            );
            kept.push(KeptNode {
                participant,
                node,
                member,
                discovery,
                instance,
                parent,
                lifecycle_errors,
                events_task: Mutex::new(Some(events_task)),
            });
        }
        NodeGroup {
            kept,
            services: format!("{root}/services"),
            group,
            paused: watch::channel(false).0,
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ NODE_SEED_SALT)),
            updates: Arc::new(AtomicUsize::new(0)),
            checks: AtomicUsize::new(0),
            divergences: Mutex::new(Vec::new()),
        }
    }

    /// The participants a client fault hits: each with a chance of two in three, at least one.
    pub(crate) fn targets(&self) -> Vec<&Participant> {
        let mut rng = self.rng.lock().unwrap();
        let mut hit: Vec<&Participant> = self
            .kept
            .iter()
            .filter(|_| rng.usize(0..3) != 0)
            .map(|k| &k.participant)
            .collect();
        if hit.is_empty() {
            hit.push(&self.kept[rng.usize(0..self.kept.len())].participant);
        }
        hit
    }

    /// A state fault: `operator` deletes one kept node, member node or registered instance
    /// drawn at random, as someone else would; with `parent_too`, a kept node and its parent.
    /// What it deleted.
    pub(crate) async fn delete_one(&self, operator: &Client, parent_too: bool) -> Option<String> {
        let (i, which) = {
            let mut rng = self.rng.lock().unwrap();
            (rng.usize(0..self.kept.len()), rng.usize(0..3))
        };
        let kept = &self.kept[i];
        if !parent_too && which < 2 {
            // A member's node, or a registered instance's.
            let path = match which {
                0 => format!("{}/{}", self.group, kept.participant.name),
                _ => kept.instance.0.clone(),
            };
            return matches!(operator.delete(&path, None).await, Ok(true)).then_some(path);
        }
        let path = kept.node.actual_path()?;
        if !matches!(operator.delete(&path, None).await, Ok(true)) {
            return None;
        }
        if parent_too {
            // The node may be back already; then the parent stays.
            let _ = operator.delete(&kept.parent, None).await;
            return Some(format!("{path} and its parent"));
        }
        Some(path)
    }

    /// The updater, until `stop`: new data for a node or a member, a few times a second.
    pub(crate) fn spawn_updater(
        self: &Arc<Self>,
        stop: CancellationToken,
        seed: u64,
    ) -> JoinHandle<()> {
        let group = self.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed ^ NODE_SEED_SALT ^ 1);
            let mut paused = group.paused.subscribe();
            let mut counter = 0u64;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(rng.u64(UPDATE_PAUSE))) => {}
                }
                if paused.wait_for(|paused| !*paused).await.is_err() {
                    return;
                }
                counter += 1;
                let data = counter.to_string().into_bytes();
                let kept = &group.kept[rng.usize(0..group.kept.len())];
                // Cut short after a second: the data is kept at once either way.
                let _ = if rng.bool() {
                    tokio::time::timeout(Duration::from_secs(1), kept.node.set_data(data)).await
                } else {
                    tokio::time::timeout(Duration::from_secs(1), kept.member.set_payload(data))
                        .await
                };
                group.updates.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// What is wrong with one participant's node and member now, if anything.
    async fn diverged(
        &self,
        observer: &Client,
        kept: &KeptNode,
        server_group: &BTreeMap<String, Vec<u8>>,
    ) -> Option<String> {
        let name = &kept.participant.name;
        let session = kept.participant.client.session();
        if session.is_lost() {
            return Some(format!("{name}: no live session yet"));
        }
        let ephemeral = kept.node.mode() != CreateMode::Persistent;
        let Some(path) = kept.node.actual_path() else {
            return Some(format!("{name}: its node is not made"));
        };
        let children = match observer.children(&kept.parent).await {
            Ok(children) => children.unwrap_or_default(),
            Err(e) => return Some(format!("{name}: listing {}: {e}", kept.parent)),
        };
        if children.len() != 1 || !path.ends_with(&format!("/{}", children[0])) {
            return Some(format!(
                "{name}: {} holds {children:?}, not only {path}",
                kept.parent
            ));
        }
        match observer.get_data(&path).await {
            Ok(Some((data, stat))) => {
                if data != kept.node.data() {
                    return Some(format!(
                        "{name}: {path} holds {:?}, not the latest {:?}",
                        String::from_utf8_lossy(&data),
                        String::from_utf8_lossy(&kept.node.data())
                    ));
                }
                if ephemeral && !session.owns(&stat) {
                    return Some(format!("{name}: {path} is not its session's"));
                }
            }
            Ok(None) => return Some(format!("{name}: {path} is gone")),
            Err(e) => return Some(format!("{name}: reading {path}: {e}")),
        }
        match server_group.get(name.as_str()) {
            Some(payload) if *payload == kept.member.payload() => {}
            other => {
                return Some(format!(
                    "{name}: its member node holds {:?}, not the latest {:?}",
                    other.map(|p| String::from_utf8_lossy(p).into_owned()),
                    String::from_utf8_lossy(&kept.member.payload())
                ))
            }
        }
        let (instance_path, json) = &kept.instance;
        match observer.get_data(instance_path).await {
            Ok(Some((data, stat))) if data == *json && session.owns(&stat) => {}
            Ok(Some(_)) => {
                return Some(format!(
                    "{name}: {instance_path} is not its instance, or not its session's"
                ))
            }
            Ok(None) => {
                return Some(format!(
                    "{name}: its instance {instance_path} is not registered"
                ))
            }
            Err(e) => return Some(format!("{name}: reading {instance_path}: {e}")),
        }
        if kept.member.members() != *server_group {
            return Some(format!(
                "{name}: its view of the group {:?} is not the server's {:?}",
                kept.member.members().keys().collect::<Vec<_>>(),
                server_group.keys().collect::<Vec<_>>()
            ));
        }
        None
    }

    /// The group on the server: each member's id and payload.
    async fn server_group(&self, observer: &Client) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut members = BTreeMap::new();
        let children = observer
            .children(&self.group)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        for id in children {
            if let Some((payload, _)) = observer
                .get_data(&format!("{}/{id}", self.group))
                .await
                .map_err(|e| e.to_string())?
            {
                members.insert(id, payload);
            }
        }
        Ok(members)
    }

    /// Pauses the updater, then waits until every node and member is kept once with its latest
    /// data and every view of the group is the server's, within `bound` of `healed`; then
    /// resumes the updater. How long it took, or what diverged.
    pub(crate) async fn check(
        &self,
        observer: &Client,
        healed: Instant,
        bound: Duration,
        when: &str,
    ) -> Result<Duration, String> {
        let deadline = healed + bound;
        self.paused.send_replace(true);
        let mut diverged = Vec::new();
        for kept in &self.kept {
            self.checks.fetch_add(1, Ordering::Relaxed);
            loop {
                let problem = match self.server_group(observer).await {
                    Ok(server_group) => self.diverged(observer, kept, &server_group).await,
                    Err(e) => Some(format!("the group could not be read: {e}")),
                };
                let Some(problem) = problem else {
                    break;
                };
                if Instant::now() >= deadline {
                    diverged.push(format!(
                        "{when}: not kept within {bound:?} of the heal: {problem}"
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.paused.send_replace(false);
        if diverged.is_empty() {
            Ok(healed.elapsed())
        } else {
            let summary = diverged.join("; ");
            self.divergences.lock().unwrap().extend(diverged);
            Err(summary)
        }
    }

    /// Closes every node and member, joins the event followers, and returns what failed.
    pub(crate) async fn close(&self, deadline: Duration) -> Vec<String> {
        let mut failures = Vec::new();
        for kept in &self.kept {
            let name = &kept.participant.name;
            match tokio::time::timeout(deadline, kept.node.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{name}'s node closed with {e}")),
                Err(_) => failures.push(format!("{name}'s node did not close in {deadline:?}")),
            }
            match tokio::time::timeout(deadline, kept.member.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{name}'s member closed with {e}")),
                Err(_) => failures.push(format!("{name}'s member did not close in {deadline:?}")),
            }
            match tokio::time::timeout(deadline, kept.discovery.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{name}'s discovery closed with {e}")),
                Err(_) => {
                    failures.push(format!("{name}'s discovery did not close in {deadline:?}"))
                }
            }
            let follower = kept.events_task.lock().unwrap().take();
            if let Some(follower) = follower {
                if tokio::time::timeout(deadline, follower).await.is_err() {
                    failures.push(format!("{name}'s node events did not end"));
                }
            }
        }
        failures
    }

    /// The events that did not read as a node's life.
    pub(crate) fn lifecycle_errors(&self) -> Vec<String> {
        self.kept
            .iter()
            .flat_map(|k| k.lifecycle_errors.lock().unwrap().clone())
            .collect()
    }

    /// The nodes of the group left on the server (every node and member closed).
    pub(crate) async fn leftovers(&self, checker: &Client) -> Vec<String> {
        let mut left = Vec::new();
        let parents = self
            .kept
            .iter()
            .map(|k| k.parent.clone())
            .chain([self.group.clone(), format!("{}/svc", self.services)]);
        for parent in parents {
            if let Ok(Some(children)) = checker.children(&parent).await {
                left.extend(children.into_iter().map(|c| format!("{parent}/{c}")));
            }
        }
        left
    }
}
