//! Curator's `TestPersistentEphemeralNode` (`nodes/TestPersistentEphemeralNode.java`), ported to
//! [`PersistentNode`].
//!
//! Curator's deprecated `PersistentEphemeralNode` is a `PersistentNode` with a `Mode`:
//! `EPHEMERAL` is [`CreateMode::Ephemeral`], `EPHEMERAL_SEQUENTIAL` is
//! [`CreateMode::EphemeralSequential`], `PROTECTED_EPHEMERAL` is `Ephemeral` with
//! `.protected(true)`. Curator's `Trigger` (a one-shot watcher with a latch) is a raw one-shot
//! watch of an observer client, awaited under a deadline (`nodes_base::fired`).
//!
//! Session expiry: Curator injects it into the owner's ZooKeeper client
//! (`injectSessionExpiration()` / `KillSession`), a client-side fake whose server session
//! lives on until its timeout, which is why Curator's tests wait up to `forSessionSleep` and
//! pause the re-create with `debugCreateNodeLatch` / `debugReconnectLatch` until the deletion
//! was seen. The kit's [`expire_session`] ends the session on the server: the ephemeral node is
//! deleted at once, before the client has a new session, so the deletion is always seen
//! before the node is made again, and no latch is needed.
//!
//! Curator's teardown checks that no watcher is left registered
//! (`TestCleanState.closeAndTestClean`, an internal of its client); this crate's client shows
//! no watcher registry, so the ports check the nodes instead. `debugWaitMsForBackgroundBeforeClose`
//! is not needed: `close().await` returns once the node's task has ended.
//!
//! Curator's `PATH` (`/test/foo`) and `DIR` (`/test`) are under a [`unique_path`] on the
//! shared server; the tests that stop or restart their server run on one of their own.
//! `Client::connect` needs a server (Curator's `start()` does not wait), so where Curator
//! starts its client with the server stopped, the port connects first and then stops the
//! server; Curator's `CONNECTED` state is then this client's `Reconnected`.
//!
//! Not ported:
//!
//! | Curator test | Reason |
//! |---|---|
//! | `testNullCurator` | Java-only: a `null` client; a Rust [`PersistentNode::builder`] takes a `&Client`. |
//! | `testNullData` | Java-only: `null` data; the data is a `Vec<u8>` (empty data is used by most tests here). |
//! | `testNullMode` | Java-only: a `null` mode; the mode is a [`CreateMode`] value. |
//!
//! `testNullPath` is ported as a check of invalid paths (`test_null_path`).

use std::sync::Arc;

use zk_recipes::testing::{expire_session, Backend, TestingServer};
use zk_recipes::zookeeper_client::{Acl, AuthId, CreateMode, EventType, Permission};
use zk_recipes::{ConnectionState, Error, NodeEvent, PersistentNode, RecipeState};

use crate::common::{eventually, init_tracing, unique_path, zk_server};
use crate::nodes_base::{
    builder, client, data_of, expect_no_event, fired, next_event, next_state, session_id,
    session_info, stat_of, wait_for_state, watch_data, watch_exists, DEADLINE, QUIET,
};

/// Curator's `DIR` and `PATH` under a base of the test's own.
fn dir_and_path(name: &str) -> (String, String) {
    let dir = format!("{}/test", unique_path(name));
    let path = format!("{dir}/foo");
    (dir, path)
}

async fn dedicated_server() -> TestingServer {
    TestingServer::start_with(Backend::from_env().await.expect("a backend"))
        .await
        .expect("a server")
}

/// Curator: `TestPersistentEphemeralNode.testListenersReconnectedIsFast`.
///
/// On a server of the test's own. Curator starts its client and the node with the server
/// stopped; here the client connects first (see the module docs), then the server is stopped
/// (the client is `Suspended`) and the node started; a bounded look shows it cannot be made.
/// The server is restarted: the client reconnects (Curator's `CONNECTED`), and the node is
/// made. The server is stopped and restarted again: the client reports `Suspended`, then
/// `Reconnected` (Curator's `RECONNECTED` latch), and the node is still there at its path, owned
/// by the same session, having reported nothing but its first creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_listeners_reconnected_is_fast() {
    init_tracing();
    let server = dedicated_server().await;
    let client = client(&server.connect_string()).await;
    let mut states = client.connection_states();
    server.stop().await.expect("stop");
    wait_for_state(&mut states, ConnectionState::Suspended).await;

    let path = "/abc/node";
    let node =
        PersistentNode::new(&client, path, CreateMode::Ephemeral, &b"hello"[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    // A bounded look: nothing can be made while the server is down.
    assert!(!node
        .wait_for_initial_create(QUIET)
        .await
        .expect("wait_for_initial_create"));

    server.restart().await.expect("restart");
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    let session = session_id(&client);
    assert_eq!(
        stat_of(&client, path)
            .await
            .expect("the node")
            .ephemeral_owner,
        session
    );

    server.stop().await.expect("stop");
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    server.restart().await.expect("restart");
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    expect_no_event(&mut events, QUIET).await;
    assert_eq!(node.actual_path().as_deref(), Some(path));
    assert_eq!(session_id(&client), session, "the session did not survive");
    assert_eq!(
        stat_of(&client, path)
            .await
            .expect("the node")
            .ephemeral_owner,
        session
    );
    assert_eq!(data_of(&client, path).await.as_deref(), Some(&b"hello"[..]));
    node.close().await.expect("close");
    assert!(stat_of(&client, path).await.is_none());
    client.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testNoServerAtStart`.
///
/// On a server of the test's own, stopped (after the client connected: see the module docs)
/// before the node starts. A bounded look shows the node cannot be made meanwhile; once the
/// server is restarted (Curator's `CONNECTED` latch: here the client's `Reconnected`),
/// `wait_for_initial_create` returns `true` and the node holds its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_no_server_at_start() {
    init_tracing();
    let server = dedicated_server().await;
    let client = client(&server.connect_string()).await;
    let mut states = client.connection_states();
    server.stop().await.expect("stop");
    wait_for_state(&mut states, ConnectionState::Suspended).await;

    let path = "/abc/node";
    let node =
        PersistentNode::new(&client, path, CreateMode::Ephemeral, &b"hello"[..]).expect("node");
    node.start().expect("start");
    assert!(!node
        .wait_for_initial_create(QUIET)
        .await
        .expect("wait_for_initial_create"));
    assert_eq!(node.actual_path(), None);

    server.restart().await.expect("restart");
    wait_for_state(&mut states, ConnectionState::Reconnected).await;
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert_eq!(data_of(&client, path).await.as_deref(), Some(&b"hello"[..]));
    node.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testNullPath`.
///
/// Curator's constructor rejects a `null` path (`IllegalArgumentException` from
/// `PathUtils.validatePath`). A Rust path cannot be null; the closest check is that an invalid
/// path is refused by `build()` with [`Error::InvalidPath`], before anything is sent: an empty
/// path, a relative one, a trailing or doubled slash, the root, and a path under `/zookeeper`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_null_path() {
    init_tracing();
    let client = client(&zk_server().await).await;
    for path in ["", "foo", "/a/", "/a//b", "/", "/zookeeper/x"] {
        let built = PersistentNode::builder(&client, path, CreateMode::Ephemeral).build();
        assert!(
            matches!(built, Err(Error::InvalidPath { .. })),
            "{path:?}: {built:?}"
        );
    }
    client.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testSettingDataSequential` (`setDataTest` with
/// `EPHEMERAL_SEQUENTIAL`). See [`set_data_test`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_setting_data_sequential() {
    set_data_test(CreateMode::EphemeralSequential, "node-set-data-seq").await;
}

/// Curator: `TestPersistentEphemeralNode.testSettingData` (`setDataTest` with `EPHEMERAL`).
/// See [`set_data_test`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_setting_data() {
    set_data_test(CreateMode::Ephemeral, "node-set-data").await;
}

/// Curator's `setDataTest(mode)`: a node made with `a`; a watch on it fires when `set_data`
/// writes `b`, and again for `c`; each time the server holds the new data and the node's path
/// is unchanged (Curator compares `getActualPath()` with itself, which is always true; here
/// with the path saved before the first `set_data`); `close()` fires the watch once more, and
/// the node is gone. `set_data` returns once the node holds the data, so the server is read
/// right after it (Curator waits for the watch first).
async fn set_data_test(mode: CreateMode, name: &str) {
    init_tracing();
    let client = client(&zk_server().await).await;
    let (_, path) = dir_and_path(name);
    let node = PersistentNode::new(&client, &path, mode, &b"a"[..]).expect("node");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let actual = node.actual_path().expect("a path");
    assert_eq!(data_of(&client, &actual).await.as_deref(), Some(&b"a"[..]));

    let (_, watcher) = watch_exists(&client, &actual).await;
    node.set_data(&b"b"[..]).await.expect("set_data");
    assert_eq!(fired(watcher).await, EventType::NodeDataChanged);
    assert_eq!(node.actual_path().as_deref(), Some(actual.as_str()));
    let (data, watcher) = watch_data(&client, &actual).await;
    assert_eq!(data, b"b");

    node.set_data(&b"c"[..]).await.expect("set_data");
    assert_eq!(fired(watcher).await, EventType::NodeDataChanged);
    assert_eq!(node.actual_path().as_deref(), Some(actual.as_str()));
    let (data, watcher) = watch_data(&client, &actual).await;
    assert_eq!(data, b"c");

    node.close().await.expect("close");
    assert_eq!(fired(watcher).await, EventType::NodeDeleted);
    assert!(stat_of(&client, &actual).await.is_none());
    client.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testDeletesNodeWhenClosed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_deletes_node_when_closed() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let (_, path) = dir_and_path("node-deletes-when-closed");
    let node = PersistentNode::new(&client, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let actual = node.actual_path().expect("a path");
    assert!(stat_of(&client, &actual).await.is_some());
    node.close().await.expect("close");
    assert!(stat_of(&client, &actual).await.is_none());
    assert_eq!(node.actual_path(), None);
    client.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testClosingMultipleTimes`.
///
/// The second `close()` returns `Ok` too, and the node stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_closing_multiple_times() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let (_, path) = dir_and_path("node-closing-twice");
    let node = PersistentNode::new(&client, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let actual = node.actual_path().expect("a path");
    node.close().await.expect("close");
    assert!(stat_of(&client, &actual).await.is_none());
    node.close().await.expect("close again");
    assert!(stat_of(&client, &actual).await.is_none());
    client.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testDeletesNodeWhenSessionDisconnects`.
///
/// The owner's session is expired on the server ([`expire_session`]; Curator:
/// `KillSession.kill`, see the module docs): the observer's watch on the node fires with
/// `NodeDeleted` (Curator's `Trigger.deleted()`), and the node reports the deletion. Curator
/// pauses the re-create with `debugReconnectLatch` until it has seen the deletion; with a
/// server-side expiry the deletion comes first anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_deletes_node_when_session_disconnects() {
    init_tracing();
    let server = zk_server().await;
    let curator = client(&server).await;
    let observer = client(&server).await;
    let (_, path) = dir_and_path("node-deleted-on-expiry");
    let node = PersistentNode::new(&curator, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    let (stat, deleted) = watch_exists(&observer, &path).await;
    assert!(stat.is_some());

    expire_session(&server, &session_info(&curator))
        .await
        .expect("expire");
    assert_eq!(fired(deleted).await, EventType::NodeDeleted);
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Deleted(p) if *p == path),
        "{event:?}"
    );
    node.close().await.expect("close");
    curator.close().await;
    observer.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testRecreatesNodeWhenSessionReconnects`.
///
/// As `test_deletes_node_when_session_disconnects`; then the node is made again at the same
/// path (the observer finds it, or its watch fires with `NodeCreated`), now owned by the
/// client's new session; the node reports `Deleted`, then `Recreated`, at that path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_recreates_node_when_session_reconnects() {
    init_tracing();
    let server = zk_server().await;
    let curator = client(&server).await;
    let observer = client(&server).await;
    let (_, path) = dir_and_path("node-recreated-on-new-session");
    let node = PersistentNode::new(&curator, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    expire_and_expect_recreated(&server, &curator, &observer, &node, &mut events).await;
    node.close().await.expect("close");
    curator.close().await;
    observer.close().await;
}

/// Expires `owner`'s session and checks that `node` (its ephemeral node, at its path) is
/// deleted, then made again at the same path on the new session.
async fn expire_and_expect_recreated(
    server: &str,
    owner: &zk_recipes::Client,
    observer: &zk_recipes::Client,
    node: &PersistentNode,
    events: &mut zk_recipes::NodeEvents,
) {
    let path = node.actual_path().expect("a path");
    let old_session = session_id(owner);
    let (stat, deleted) = watch_exists(observer, &path).await;
    assert_eq!(stat.expect("the node").ephemeral_owner, old_session);
    expire_session(server, &session_info(owner))
        .await
        .expect("expire");
    assert_eq!(fired(deleted).await, EventType::NodeDeleted);

    let (stat, created) = watch_exists(observer, &path).await;
    if stat.is_none() {
        assert_eq!(fired(created).await, EventType::NodeCreated);
    }
    let event = crate::nodes_base::next_event(events).await;
    assert!(
        matches!(&event, NodeEvent::Deleted(p) if *p == path),
        "{event:?}"
    );
    let event = crate::nodes_base::next_event(events).await;
    assert!(
        matches!(&event, NodeEvent::Recreated(p) if *p == path),
        "{event:?}"
    );
    assert_eq!(node.actual_path().as_deref(), Some(path.as_str()));
    let stat = stat_of(observer, &path).await.expect("the node made again");
    assert_ne!(stat.ephemeral_owner, old_session);
    assert_eq!(stat.ephemeral_owner, session_id(owner));
}

/// Curator: `TestPersistentEphemeralNode.testRecreatesNodeWhenSessionReconnectsMultipleTimes`.
///
/// Five expiries of the owner's session in a row: each time the node is deleted, then made
/// again at the same path on the new session (as in
/// `test_recreates_node_when_session_reconnects`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_recreates_node_when_session_reconnects_multiple_times() {
    init_tracing();
    let server = zk_server().await;
    let curator = client(&server).await;
    let observer = client(&server).await;
    let (_, path) = dir_and_path("node-recreated-five-times");
    let node = PersistentNode::new(&curator, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    for _ in 0..5 {
        expire_and_expect_recreated(&server, &curator, &observer, &node, &mut events).await;
    }
    node.close().await.expect("close");
    curator.close().await;
    observer.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testRecreatesNodeWhenEphemeralOwnerSessionExpires`.
///
/// Another client (`node_creator`) made the ephemeral node first. The node takes it over, as
/// Curator does: it writes its data there (the observer's data watch fires with
/// `NodeDataChanged`, although the bytes are the same), and reports it `Created`; the node is
/// still owned by `node_creator`'s session. When that session is expired, the node is deleted
/// (the observer's watch fires with `NodeDeleted`; Curator's trigger also accepts
/// `NodeDataChanged`, for its client-side expiry) and made again at the same path, now owned by
/// the node's own client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_recreates_node_when_ephemeral_owner_session_expires() {
    init_tracing();
    let server = zk_server().await;
    let curator = client(&server).await;
    let node_creator = client(&server).await;
    let observer = client(&server).await;
    let (_, path) = dir_and_path("node-owner-expires");
    node_creator
        .create(&path, b"", CreateMode::Ephemeral, &[])
        .await
        .expect("the other client's node");
    let (_, data_changed) = watch_data(&observer, &path).await;

    let node = PersistentNode::new(&curator, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    assert_eq!(fired(data_changed).await, EventType::NodeDataChanged);
    let (stat, deleted) = watch_exists(&observer, &path).await;
    assert_eq!(
        stat.expect("the node").ephemeral_owner,
        session_id(&node_creator)
    );

    expire_session(&server, &session_info(&node_creator))
        .await
        .expect("expire");
    assert_eq!(fired(deleted).await, EventType::NodeDeleted);
    let (stat, created) = watch_exists(&observer, &path).await;
    if stat.is_none() {
        assert_eq!(fired(created).await, EventType::NodeCreated);
    }
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Deleted(p) if *p == path),
        "{event:?}"
    );
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Recreated(p) if *p == path),
        "{event:?}"
    );
    assert_eq!(
        stat_of(&observer, &path)
            .await
            .expect("the node")
            .ephemeral_owner,
        session_id(&curator)
    );
    node.close().await.expect("close");
    assert!(stat_of(&observer, &path).await.is_none());
    for client in [curator, node_creator, observer] {
        client.close().await;
    }
}

/// Curator: `TestPersistentEphemeralNode.testRecreatesNodeWhenItGetsDeleted`.
///
/// The node's own client deletes it: it is made again at exactly the same path (the client
/// finds it, or its watch fires with `NodeCreated`), and reports `Deleted`, then `Recreated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_recreates_node_when_it_gets_deleted() {
    init_tracing();
    let curator = client(&zk_server().await).await;
    let (_, path) = dir_and_path("node-recreated-after-delete");
    let node = PersistentNode::new(&curator, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let original = node.actual_path().expect("a path");
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == original));
    assert!(curator.delete(&original, None).await.expect("delete"));

    let (stat, created) = watch_exists(&curator, &original).await;
    if stat.is_none() {
        assert_eq!(fired(created).await, EventType::NodeCreated);
    }
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Deleted(p) if *p == original),
        "{event:?}"
    );
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Recreated(p) if *p == original),
        "{event:?}"
    );
    assert_eq!(node.actual_path().as_deref(), Some(original.as_str()));
    node.close().await.expect("close");
    curator.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testNodesCreateUniquePaths`.
///
/// Two ephemeral-sequential nodes on one base path and one client get different paths, and
/// both exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_nodes_create_unique_paths() {
    init_tracing();
    let curator = client(&zk_server().await).await;
    let (_, path) = dir_and_path("node-unique-paths");
    let node1 = PersistentNode::new(&curator, &path, CreateMode::EphemeralSequential, &b""[..])
        .expect("node");
    node1.start().expect("start");
    assert!(node1
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let path1 = node1.actual_path().expect("a path");
    let node2 = PersistentNode::new(&curator, &path, CreateMode::EphemeralSequential, &b""[..])
        .expect("node");
    node2.start().expect("start");
    assert!(node2
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let path2 = node2.actual_path().expect("a path");
    assert_ne!(path1, path2);
    assert!(stat_of(&curator, &path1).await.is_some());
    assert!(stat_of(&curator, &path2).await.is_some());
    node2.close().await.expect("close");
    node1.close().await.expect("close");
    curator.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testData`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_data() {
    init_tracing();
    let curator = client(&zk_server().await).await;
    let (_, path) = dir_and_path("node-data");
    let node = PersistentNode::new(&curator, &path, CreateMode::Ephemeral, &b"Hello World"[..])
        .expect("node");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let actual = node.actual_path().expect("a path");
    assert_eq!(
        data_of(&curator, &actual).await.as_deref(),
        Some(&b"Hello World"[..])
    );
    node.close().await.expect("close");
    curator.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testSetDataWhenNodeExists`.
///
/// The node's client made an ephemeral node at the path first, with other data: the node
/// takes it over and writes its own data there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_set_data_when_node_exists() {
    init_tracing();
    let curator = client(&zk_server().await).await;
    let (_, path) = dir_and_path("node-set-data-exists");
    curator
        .create(&path, b"InitialData", CreateMode::Ephemeral, &[])
        .await
        .expect("the existing node");
    let node = PersistentNode::new(&curator, &path, CreateMode::Ephemeral, &b"Hello World"[..])
        .expect("node");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let actual = node.actual_path().expect("a path");
    assert_eq!(actual, path);
    assert_eq!(
        data_of(&curator, &actual).await.as_deref(),
        Some(&b"Hello World"[..])
    );
    node.close().await.expect("close");
    assert!(stat_of(&curator, &path).await.is_none());
    curator.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testSetDataWhenDisconnected`.
///
/// On a server of the test's own. With the server stopped, the node is given new data; once
/// the server is back, a data watch on the node fires with `NodeDataChanged` and the server
/// holds the new data. Curator sets the watch with a background `getData` queued while
/// disconnected; here the watch is set (by the node's client, as in Curator) just before the
/// stop, and survives the reconnection with the session. Curator's `setData` returns at once;
/// this crate's waits until the node holds the data (a documented difference), so it runs in
/// a task: the data is kept at once (`data()`), the call does not return while the server is
/// down (a bounded look), and it returns `Ok` once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_set_data_when_disconnected() {
    init_tracing();
    let server = dedicated_server().await;
    let curator = client(&server.connect_string()).await;
    let path = "/test/foo";
    let node = Arc::new(
        PersistentNode::new(&curator, path, CreateMode::Ephemeral, &b"Hello World"[..])
            .expect("node"),
    );
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let (data, data_changed) = watch_data(&curator, path).await;
    assert_eq!(data, b"Hello World");

    let mut states = curator.connection_states();
    server.stop().await.expect("stop");
    wait_for_state(&mut states, ConnectionState::Suspended).await;
    let setter = tokio::spawn({
        let node = node.clone();
        async move { node.set_data(&b"Updated"[..]).await }
    });
    eventually(
        "the data kept as soon as set_data is called",
        DEADLINE,
        || node.data() == b"Updated",
    )
    .await;
    // A bounded look: set_data waits while the server is down.
    tokio::time::sleep(QUIET).await;
    assert!(
        !setter.is_finished(),
        "set_data returned while the server was down"
    );

    server.restart().await.expect("restart");
    assert_eq!(fired(data_changed).await, EventType::NodeDataChanged);
    tokio::time::timeout(DEADLINE, setter)
        .await
        .expect("set_data to return once the server is back")
        .expect("the set_data task")
        .expect("set_data");
    assert_eq!(
        data_of(&curator, path).await.as_deref(),
        Some(&b"Updated"[..])
    );
    node.close().await.expect("close");
    curator.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testSetUpdatedDataWhenReconnected`.
///
/// On a server of the test's own. The node is given new data; after a server restart (the
/// session survives; the client reconnects) the server still holds the new data, not the data
/// the node was made with, and the node reported nothing (a bounded look).
///
/// Added, a stronger variant the inventory of Curator's tests suggests: the session is then
/// expired, so the node is really made again; it is made with the latest data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_set_updated_data_when_reconnected() {
    init_tracing();
    let server = dedicated_server().await;
    let curator = client(&server.connect_string()).await;
    let path = "/test/foo";
    let node = PersistentNode::new(&curator, path, CreateMode::Ephemeral, &b"Hello World"[..])
        .expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    assert_eq!(
        data_of(&curator, path).await.as_deref(),
        Some(&b"Hello World"[..])
    );
    node.set_data(&b"Updated"[..]).await.expect("set_data");
    assert_eq!(
        data_of(&curator, path).await.as_deref(),
        Some(&b"Updated"[..])
    );

    let mut states = curator.connection_states();
    server.restart().await.expect("restart");
    wait_for_state(&mut states, ConnectionState::Reconnected).await;
    expect_no_event(&mut events, QUIET).await;
    assert_eq!(
        data_of(&curator, path).await.as_deref(),
        Some(&b"Updated"[..])
    );

    // Added: made again on a new session, with the latest data.
    expire_session(&server.connect_string(), &session_info(&curator))
        .await
        .expect("expire");
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Deleted(p) if p == path),
        "{event:?}"
    );
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Recreated(p) if p == path),
        "{event:?}"
    );
    let (data, stat) = curator
        .get_data(path)
        .await
        .expect("get_data")
        .expect("the node made again");
    assert_eq!(data, b"Updated");
    assert_eq!(stat.version, 0, "made with older data, then written");
    assert_eq!(stat.ephemeral_owner, session_id(&curator));
    node.close().await.expect("close");
    curator.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testProtected` (CURATOR-190: on reconnection, a
/// protected node was made again under a new protected name, once per reconnection).
///
/// On a server of the test's own. A protected ephemeral node (`_c_<uuid>-foo`); after a server
/// restart and the reconnection, the node still exists at its path and `DIR` has exactly one
/// child. Curator looks right after `blockUntilConnected`; here the port also looks for a
/// bounded while that the node reports nothing, before counting.
///
/// Added: the session is then expired, so the node is really made again: at the same path
/// (same protected name), and `DIR` still has exactly one child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_protected() {
    init_tracing();
    let server = dedicated_server().await;
    let curator = client(&server.connect_string()).await;
    let (dir, path) = ("/test", "/test/foo");
    let node = PersistentNode::builder(&curator, path, CreateMode::Ephemeral)
        .protected(true)
        .build()
        .expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let actual = node.actual_path().expect("a path");
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == actual));
    let name = actual.strip_prefix("/test/").expect("under DIR");
    assert!(name.starts_with("_c_") && name.ends_with("-foo"), "{name}");
    assert!(stat_of(&curator, &actual).await.is_some());

    let mut states = curator.connection_states();
    server.restart().await.expect("restart");
    wait_for_state(&mut states, ConnectionState::Reconnected).await;
    expect_no_event(&mut events, QUIET).await;
    assert!(stat_of(&curator, &actual).await.is_some());
    let children = curator.children(dir).await.expect("children").expect("DIR");
    assert_eq!(children, [name], "{children:?}");

    // Added: made again on a new session, under the same name.
    expire_session(&server.connect_string(), &session_info(&curator))
        .await
        .expect("expire");
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Deleted(p) if *p == actual),
        "{event:?}"
    );
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Recreated(p) if *p == actual),
        "{event:?}"
    );
    let children = curator.children(dir).await.expect("children").expect("DIR");
    assert_eq!(children, [name], "{children:?}");
    node.close().await.expect("close");
    curator.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testNoCreatePermission`.
///
/// A client authenticated as `digest me1:pass1` makes `DIR` with `WRITE` for its own
/// identity only (no `CREATE` for anyone); an unauthenticated client's node at `PATH` cannot
/// be made. Curator's `waitForInitialCreate` times out and `isAuthFailure()` turns true; here
/// (a documented difference) the node stops on the failure: `wait_for_initial_create`
/// returns [`Error::NoAuth`], the events say [`NodeEvent::Failed`], the state reads `Closed`,
/// and nothing exists at `PATH`.
///
/// `DIR`'s parents are made first, open, so that they do not get `DIR`'s ACL (this crate's
/// `Client::create` gives the parents it makes the node's ACLs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_no_create_permission() {
    init_tracing();
    let server = zk_server().await;
    let (dir, path) = dir_and_path("node-no-create-permission");
    let authed = builder(&server)
        .authorization("digest", b"me1:pass1".to_vec())
        .connect()
        .await
        .expect("connect");
    let base = dir.strip_suffix("/test").expect("DIR under a base");
    authed
        .ensure_path(base, false)
        .await
        .expect("DIR's parents");
    authed
        .create(
            &dir,
            b"",
            CreateMode::Persistent,
            &[Acl::new(Permission::WRITE, AuthId::authed())],
        )
        .await
        .expect("DIR");
    authed.close().await;

    let client = client(&server).await;
    let node = PersistentNode::new(&client, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    let waited = node.wait_for_initial_create(DEADLINE).await;
    assert!(matches!(waited, Err(Error::NoAuth)), "{waited:?}");
    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Failed(Error::NoAuth)),
        "{event:?}"
    );
    assert_eq!(node.state(), RecipeState::Closed);
    assert_eq!(node.actual_path(), None);
    assert!(stat_of(&client, &path).await.is_none());
    node.close().await.expect("close");
    client.delete(&dir, None).await.expect("clean up");
    client.close().await;
}

/// Curator: `TestPersistentEphemeralNode.testNoWritePermission`.
///
/// A client whose nodes get `READ | CREATE | DELETE` for anyone (Curator's `ACLProvider`; here
/// the client's default ACLs): the node is made, and then `set_data` is refused by its ACL.
/// Curator's `setData` returns at once and `isAuthFailure()` turns true after a while; here
/// `set_data` returns [`Error::NoAuth`]. The server still holds the old data (Curator's
/// `assertNotEquals(byte[], byte[])` compares references, so it always passes; here the bytes
/// are compared), and the node stays: present at its path, started, with no event after its
/// creation (a bounded look). The test's base is made open first; `DIR` is made on the way
/// with the restricted ACL, as Curator's provider gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_no_write_permission() {
    init_tracing();
    let server = zk_server().await;
    let (dir, path) = dir_and_path("node-no-write-permission");
    // The base is made open first, so that no shared node gets the test's ACLs.
    let setup = client(&server).await;
    let base = dir.strip_suffix("/test").expect("DIR under a base");
    setup.ensure_path(base, false).await.expect("the base");
    setup.close().await;
    let client = builder(&server)
        .default_acls(vec![Acl::new(
            Permission::READ | Permission::CREATE | Permission::DELETE,
            AuthId::anyone(),
        )])
        .connect()
        .await
        .expect("connect");
    let node = PersistentNode::new(&client, &path, CreateMode::Ephemeral, &b""[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(
        node.wait_for_initial_create(DEADLINE)
            .await
            .expect("wait_for_initial_create"),
        "node not created"
    );
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    assert!(stat_of(&client, &path).await.is_some());

    let written = node.set_data(&b"NEW_DATA"[..]).await;
    assert!(matches!(written, Err(Error::NoAuth)), "{written:?}");
    assert_eq!(data_of(&client, &path).await.as_deref(), Some(&b""[..]));
    expect_no_event(&mut events, QUIET).await;
    assert_eq!(node.state(), RecipeState::Started);
    assert_eq!(node.actual_path().as_deref(), Some(path.as_str()));
    assert_eq!(data_of(&client, &path).await.as_deref(), Some(&b""[..]));
    node.close().await.expect("close");
    assert!(stat_of(&client, &path).await.is_none());
    client.close().await;
}
