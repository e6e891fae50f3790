//! What the ports of Curator's `recipes/nodes` tests share: clients made as Curator's tests
//! make them, the node's event stream read under a deadline, and raw one-shot watches (Curator's
//! `Trigger`s) set by an observer.
//!
//! Curator's own tests reach into the recipe (`debugCreateNodeLatch`,
//! `debugWaitMsForBackgroundBeforeClose`, `isAuthFailure()`, `isParentCreationFailure()`); the
//! ports look at what this crate shows instead: [`PersistentNode::events`], the result of
//! `wait_for_initial_create` and `set_data`, and the server's znodes.

use std::time::Duration;

use futures::StreamExt;
use zk_recipes::connection::ConnectionStates;
use zk_recipes::retry::RetryOneTime;
use zk_recipes::zookeeper_client::{EventType, OneshotWatcher, SessionInfo, Stat};
use zk_recipes::{Client, ConnectionState, NodeEvent, NodeEvents};

/// Every wait of these tests ends by this deadline (Curator's `timing.forWaiting()`).
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How long a test looks to show that something does NOT happen (Curator sleeps a bit,
/// `timing.sleepABit()`, before it looks).
pub const QUIET: Duration = Duration::from_millis(1000);

/// A client as Curator's tests make them: `newClient(connectString, timing.session(),
/// timing.connection(), new RetryOneTime(1))`.
pub async fn client(connect_string: &str) -> Client {
    builder(connect_string).connect().await.expect("connect")
}

/// The builder of [`client`], for a test that adds authentication or ACLs.
pub fn builder(connect_string: &str) -> zk_recipes::ClientBuilder {
    Client::builder(connect_string)
        .session_timeout(Duration::from_secs(15))
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryOneTime::new(Duration::from_millis(1)))
}

/// The client's current session, for [`expire_session`](zk_recipes::testing::expire_session).
pub fn session_info(client: &Client) -> SessionInfo {
    client
        .session()
        .zookeeper()
        .expect("a session")
        .session()
        .clone()
}

/// The id of the client's current session, as a node's `ephemeral_owner` holds it.
pub fn session_id(client: &Client) -> i64 {
    client.session().id().0
}

/// The next event of a node, within [`DEADLINE`].
pub async fn next_event(events: &mut NodeEvents) -> NodeEvent {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("a node event in time")
        .expect("the node's event stream is open")
}

/// No node event within `within` (a bounded wait, to show that nothing happens).
pub async fn expect_no_event(events: &mut NodeEvents, within: Duration) {
    if let Ok(Some(event)) = tokio::time::timeout(within, events.next()).await {
        panic!("unexpected node event {event:?}");
    }
}

/// The next connection state, within [`DEADLINE`].
pub async fn next_state(states: &mut ConnectionStates) -> ConnectionState {
    tokio::time::timeout(DEADLINE, states.next())
        .await
        .expect("a connection state in time")
        .expect("the client is open")
}

/// Waits for `expected` among the client's next connection states, within [`DEADLINE`].
pub async fn wait_for_state(states: &mut ConnectionStates, expected: ConnectionState) {
    loop {
        if next_state(states).await == expected {
            return;
        }
    }
}

/// A one-shot watch set by `observer` on `path` with an `exists` (Curator:
/// `checkExists().usingWatcher(trigger)`), and the node's stat then.
pub async fn watch_exists(observer: &Client, path: &str) -> (Option<Stat>, OneshotWatcher) {
    let zk = observer.zookeeper().expect("the observer's session");
    zk.check_and_watch_stat(path)
        .await
        .unwrap_or_else(|e| panic!("check_and_watch_stat {path}: {e}"))
}

/// A one-shot data watch set by `observer` on `path` (Curator:
/// `getData().usingWatcher(trigger)`), and the data then.
pub async fn watch_data(observer: &Client, path: &str) -> (Vec<u8>, OneshotWatcher) {
    let zk = observer.zookeeper().expect("the observer's session");
    let (data, _, watcher) = zk
        .get_and_watch_data(path)
        .await
        .unwrap_or_else(|e| panic!("get_and_watch_data {path}: {e}"));
    (data, watcher)
}

/// The type of the event that fires `watcher`, within [`DEADLINE`] (Curator's
/// `trigger.firedWithin`).
pub async fn fired(watcher: OneshotWatcher) -> EventType {
    tokio::time::timeout(DEADLINE, watcher.changed())
        .await
        .expect("the watch to fire in time")
        .event_type
}

/// The data of `path` as `observer` reads it, `None` if it does not exist.
pub async fn data_of(observer: &Client, path: &str) -> Option<Vec<u8>> {
    observer
        .get_data(path)
        .await
        .unwrap_or_else(|e| panic!("get_data {path}: {e}"))
        .map(|(data, _)| data)
}

/// The stat of `path` as `observer` sees it, `None` if it does not exist.
pub async fn stat_of(observer: &Client, path: &str) -> Option<Stat> {
    observer
        .exists(path)
        .await
        .unwrap_or_else(|e| panic!("exists {path}: {e}"))
}

/// Deletes `path` and everything under it in one transaction (Curator's
/// `delete().deletingChildrenIfNeeded()`, which deletes one node after another: here nothing
/// can be made in the tree between the deletes, so a node being made again finds no parent).
pub async fn delete_tree_at_once(client: &Client, path: &str) {
    let mut stack = vec![path.to_owned()];
    let mut order = Vec::new();
    while let Some(node) = stack.pop() {
        for child in client
            .children(&node)
            .await
            .expect("children")
            .unwrap_or_default()
        {
            stack.push(format!("{node}/{child}"));
        }
        order.push(node);
    }
    let zk = client.zookeeper().expect("a session");
    let mut writer = zk.new_multi_writer();
    for node in order.iter().rev() {
        writer
            .add_delete(node, None)
            .expect("a delete in the transaction");
    }
    writer
        .commit()
        .await
        .unwrap_or_else(|e| panic!("deleting the tree {path} at once: {e:?}"));
}
