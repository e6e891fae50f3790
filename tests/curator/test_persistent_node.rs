//! Curator's `TestPersistentNode` (`nodes/TestPersistentNode.java`), ported to
//! [`PersistentNode`].
//!
//! Curator's `new PersistentNode(client, mode, useProtection, path, data)` is
//! [`PersistentNode::builder`] with `.protected(..)` and `.data(..)`; its sixth argument,
//! `useParentCreation = false`, is `.create_parents(false)`. `waitForInitialCreate` is
//! `wait_for_initial_create`, `getActualPath` is `actual_path`. Curator's package-private
//! `isParentCreationFailure()` has no counterpart: a node that cannot make its parents stops,
//! and says why from `wait_for_initial_create`, `set_data` and its events
//! ([`NodeEvent::Failed`]); the ports assert on those. `debugWaitMsForBackgroundBeforeClose`
//! (a pause in Curator's `close()` so that background operations finish first) is not needed:
//! `close().await` returns once the node's task has ended and the node is deleted.
//!
//! Two deliberate differences of this crate (see [`PersistentNode`]'s docs) turn two tests
//! around: `set_data` may be called before the node was first made (Curator throws
//! `IllegalStateException`), and a failure no retry cures stops the node with an error
//! (Curator sets a flag and keeps the node "started").
//!
//! Curator's tests share one path (`/test`, `/test/one/two`) on a fresh server per test; here
//! each test runs under a [`unique_path`] on the shared server, except
//! `testEphemeralSequentialWithProtectionReconnection`, which stops and restarts its server.
//!
//! Not ported: none. The stored `TestPersistentNodeWithOverwriteExistingFalse` is not a
//! mainline Curator class (a fork's, for a constructor with `overwriteExisting = false` that
//! mainline never had); this crate has no such option either (it always takes a node found at
//! its path over and writes its data, as mainline Curator does).

use zk_recipes::testing::{expire_session, Backend, FaultProxy, TestingServer};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{ConnectionState, Error, NodeEvent, PersistentNode, RecipeState};

use crate::common::{eventually, init_tracing, unique_path, zk_server};
use crate::nodes_base::{
    client, data_of, delete_tree_at_once, expect_no_event, next_event, session_id, session_info,
    stat_of, wait_for_state, DEADLINE, QUIET,
};

/// Curator: `TestPersistentNode.testQuickSetData`.
///
/// Inverted: Curator's `setData` right after `start()`, before the first create was
/// processed, throws `IllegalStateException`. This crate's `set_data` may be called before the
/// node was first made (a documented difference): the data is the one the node is made with,
/// and the call returns once the node holds it. So the port expects `Ok`, and the server to
/// hold the new data as soon as `set_data` returns.
///
/// Curator's test races the first create (and may see it done). The port runs the race as
/// Curator does, then once more deterministically: the node's connection is cut (through a
/// [`FaultProxy`]) before it is started, so `set_data` is certainly called before the first
/// create; it waits while the cut lasts (a bounded look shows it does not return, and the node
/// has no path), and once the connection is back the node is made with the new data, directly
/// (version 0: never written with the old data), and `set_data` returns `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_quick_set_data() {
    init_tracing();
    let server = zk_server().await;
    let observer = client(&server).await;

    // Curator's race.
    let client = client(&server).await;
    let path = format!("{}/test", unique_path("node-quick-set-data"));
    let node =
        PersistentNode::new(&client, &path, CreateMode::Persistent, &b"hey"[..]).expect("node");
    node.start().expect("start");
    node.set_data(&b"there"[..]).await.expect("set_data");
    assert_eq!(node.data(), b"there");
    assert_eq!(
        data_of(&observer, &path).await.as_deref(),
        Some(&b"there"[..])
    );
    node.close().await.expect("close");
    assert!(stat_of(&observer, &path).await.is_none());
    client.close().await;

    // Certainly before the first create.
    let proxy = FaultProxy::start(&server).await.expect("proxy");
    let client = self::client(&proxy.connect_string()).await;
    let path = format!("{}/test", unique_path("node-quick-set-data-cut"));
    let node = std::sync::Arc::new(
        PersistentNode::new(&client, &path, CreateMode::Persistent, &b"hey"[..]).expect("node"),
    );
    let mut states = client.connection_states();
    proxy.cut();
    wait_for_state(&mut states, ConnectionState::Suspended).await;
    node.start().expect("start");
    let setter = tokio::spawn({
        let node = node.clone();
        async move { node.set_data(&b"there"[..]).await }
    });
    eventually(
        "the data kept as soon as set_data is called",
        DEADLINE,
        || node.data() == b"there",
    )
    .await;
    // A bounded look: while the connection is cut, set_data waits and the node has no path.
    tokio::time::sleep(QUIET).await;
    assert!(
        !setter.is_finished(),
        "set_data returned before the node was made"
    );
    assert_eq!(node.actual_path(), None);
    proxy.restore();
    tokio::time::timeout(DEADLINE, setter)
        .await
        .expect("set_data to return once the connection is back")
        .expect("the set_data task")
        .expect("set_data");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let (data, stat) = observer
        .get_data(&path)
        .await
        .expect("get_data")
        .expect("the node");
    assert_eq!(data, b"there");
    assert_eq!(
        stat.version, 0,
        "the node was written with its old data first"
    );
    node.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestPersistentNode.testBasic`.
///
/// A persistent node outlives the session that made it: the node is made, then its client is
/// closed (the node is not); a new client reads the node and its data. The node stops with its
/// client (its state reads `Closed`) and, stopped that way, leaves the node in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let path = format!("{}/test", unique_path("node-basic"));
    let node =
        PersistentNode::new(&client, &path, CreateMode::Persistent, &b"hey"[..]).expect("node");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    // The session ends: the node must be persistent.
    client.close().await;
    eventually("the node to stop with its client", DEADLINE, || {
        node.state() == RecipeState::Closed
    })
    .await;
    drop(node);

    let client = self::client(&server).await;
    assert_eq!(data_of(&client, &path).await.as_deref(), Some(&b"hey"[..]));
    client.delete(&path, None).await.expect("clean up");
    client.close().await;
}

/// Curator: `TestPersistentNode.testCreationWithParentCreationOff`.
///
/// A node with `create_parents(false)` whose parents are missing is never made. Curator's
/// `waitForInitialCreate` returns `false` and `isParentCreationFailure()` turns true; here
/// (a documented difference) the node stops on the failure: `wait_for_initial_create` returns
/// it (`NoNode`), the events say [`NodeEvent::Failed`] and end, `set_data` returns it too, the
/// state reads `Closed`, and nothing was made on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_creation_with_parent_creation_off() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let base = unique_path("node-parent-creation-off");
    let path = format!("{base}/test/one/two");
    let node = PersistentNode::builder(&client, &path, CreateMode::Persistent)
        .create_parents(false)
        .build()
        .expect("node");
    let mut events = node.events();
    node.start().expect("start");
    let waited = node.wait_for_initial_create(DEADLINE).await;
    assert!(
        matches!(
            waited,
            Err(Error::ZooKeeper(
                zk_recipes::zookeeper_client::Error::NoNode
            ))
        ),
        "{waited:?}"
    );
    let event = next_event(&mut events).await;
    assert!(
        matches!(
            &event,
            NodeEvent::Failed(Error::ZooKeeper(
                zk_recipes::zookeeper_client::Error::NoNode
            ))
        ),
        "{event:?}"
    );
    assert!(
        tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut events))
            .await
            .expect("the stream to end")
            .is_none(),
        "the events go on after Failed"
    );
    assert_eq!(node.state(), RecipeState::Closed);
    assert_eq!(node.actual_path(), None);
    assert!(node.set_data(&b"x"[..]).await.is_err());
    assert!(stat_of(&client, &base).await.is_none(), "a parent was made");
    node.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestPersistentNode.testRecreationWithParentCreationOff`.
///
/// An ephemeral node with `create_parents(false)` is made under an existing parent; then the
/// parent is deleted with the node. The node is not made again. Curator then has
/// `isParentCreationFailure()` true, `setData` throwing `IllegalStateException`, and
/// `getData()` still the initial data; here the node reports the deletion
/// ([`NodeEvent::Deleted`]), then stops on the failure ([`NodeEvent::Failed`] with `NoNode`,
/// and its events end), `set_data` returns an error, and `data()` is still the initial data.
///
/// Curator deletes the parent's children, then the parent, one after the other, and sleeps a
/// bit before looking; a node made again between the two deletes would make the parent's
/// delete fail. Here both are deleted in one transaction, so the node being made again
/// certainly finds no parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_recreation_with_parent_creation_off() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let base = unique_path("node-recreation-parent-creation-off");
    let parent = format!("{base}/test/one");
    let path = format!("{parent}/two");
    client
        .create(&parent, b"", CreateMode::Persistent, &[])
        .await
        .expect("the parent");
    let node = PersistentNode::builder(&client, &path, CreateMode::Ephemeral)
        .data(&b"hey"[..])
        .create_parents(false)
        .build()
        .expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));

    delete_tree_at_once(&client, &parent).await;

    let event = next_event(&mut events).await;
    assert!(
        matches!(&event, NodeEvent::Deleted(p) if *p == path),
        "{event:?}"
    );
    let event = next_event(&mut events).await;
    assert!(
        matches!(
            &event,
            NodeEvent::Failed(Error::ZooKeeper(
                zk_recipes::zookeeper_client::Error::NoNode
            ))
        ),
        "{event:?}"
    );
    assert!(
        tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut events))
            .await
            .expect("the stream to end")
            .is_none(),
        "the events go on after Failed"
    );
    assert!(stat_of(&client, &path).await.is_none(), "made again");
    assert!(stat_of(&client, &parent).await.is_none(), "the parent made");
    assert!(node.set_data(&b""[..]).await.is_err());
    assert_eq!(node.data(), b"hey");
    assert_eq!(node.state(), RecipeState::Closed);
    node.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestPersistentNode.testQuickClose`.
///
/// A node closed right after `start()` leaves nothing at its path: a create still in flight
/// when the close ran is deleted after it. Curator does it once and sleeps a bit before it
/// looks; the port does it ten times (each on a path of its own, to catch the race in more
/// timings), checks each path at once after `close()` returns, and once more after a bounded
/// look (a late create would show then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_quick_close() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let base = unique_path("node-quick-close");
    let mut paths = Vec::new();
    for i in 0..10 {
        let path = format!("{base}/{i}/test/one/two");
        let node =
            PersistentNode::new(&client, &path, CreateMode::Persistent, &b""[..]).expect("node");
        node.start().expect("start");
        node.close().await.expect("close");
        assert!(
            stat_of(&client, &path).await.is_none(),
            "{path} after close"
        );
        paths.push(path);
    }
    tokio::time::sleep(QUIET).await;
    for path in &paths {
        assert!(stat_of(&client, path).await.is_none(), "{path} made late");
    }
    client.close().await;
}

/// Curator: `TestPersistentNode.testQuickCloseNodeExists`.
///
/// A node started on a path where a node already exists (made by the test) takes it over, as
/// Curator does, and its `close()` deletes it, even right after `start()`. As in
/// `test_quick_close`, five times (on paths of their own), each checked at once after
/// `close()` and again after a bounded look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_quick_close_node_exists() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let base = unique_path("node-quick-close-exists");
    let mut paths = Vec::new();
    for i in 0..5 {
        let path = format!("{base}/{i}/test/one/two");
        client
            .create(&path, b"", CreateMode::Persistent, &[])
            .await
            .expect("the existing node");
        let node =
            PersistentNode::new(&client, &path, CreateMode::Persistent, &b""[..]).expect("node");
        node.start().expect("start");
        node.close().await.expect("close");
        assert!(
            stat_of(&client, &path).await.is_none(),
            "{path} after close"
        );
        paths.push(path);
    }
    tokio::time::sleep(QUIET).await;
    for path in &paths {
        assert!(stat_of(&client, path).await.is_none(), "{path} made late");
    }
    client.close().await;
}

/// Curator: `TestPersistentNode.testEphemeralSequentialWithProtectionReconnection`.
///
/// A protected ephemeral-sequential node, then a server stop and restart (on a server of the
/// test's own): the session survives, and the parent's children after the reconnection are
/// the same one protected sequential node as before. Curator lists the children right after
/// `start()` (racing the create) and sleeps a bit after the stop and after the restart; here
/// the port waits for the first create, for the client to be suspended and to reconnect, and
/// then looks for a bounded while that the node reports nothing (no deletion, no second node).
///
/// Added: the session is then expired, so the node is made again. This crate makes a
/// sequential protected node again at the path it got (a documented difference: Curator makes
/// `_c_<uuid>-two` without a sequence number), so the parent still has exactly the same one
/// child, now owned by the new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_ephemeral_sequential_with_protection_reconnection() {
    init_tracing();
    let server = TestingServer::start_with(Backend::from_env().await.expect("a backend"))
        .await
        .expect("a server");
    let client = client(&server.connect_string()).await;
    let parent = "/test/one";
    client
        .create(parent, b"", CreateMode::Persistent, &[])
        .await
        .expect("the parent");
    let node = PersistentNode::builder(&client, "/test/one/two", CreateMode::EphemeralSequential)
        .protected(true)
        .build()
        .expect("node");
    let mut events = node.events();
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    let path = node.actual_path().expect("a path");
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    let children = client
        .children(parent)
        .await
        .expect("children")
        .expect("parent");
    assert_eq!(children.len(), 1, "{children:?}");
    let name = &children[0];
    assert_eq!(path, format!("{parent}/{name}"));
    assert!(name.starts_with("_c_") && name.contains("-two"), "{name}");
    let session = session_id(&client);

    let mut states = client.connection_states();
    server.stop().await.expect("stop");
    wait_for_state(&mut states, ConnectionState::Suspended).await;
    server.restart().await.expect("restart");
    wait_for_state(&mut states, ConnectionState::Reconnected).await;
    expect_no_event(&mut events, QUIET).await;
    assert_eq!(
        client.children(parent).await.expect("children"),
        Some(children.clone()),
        "unexpected znodes after the restart"
    );
    assert_eq!(node.actual_path().as_deref(), Some(path.as_str()));
    assert_eq!(session_id(&client), session, "the session did not survive");
    let stat = stat_of(&client, &path).await.expect("the node");
    assert_eq!(stat.ephemeral_owner, session);

    // Added: made again on a new session, at the same path.
    expire_session(&server.connect_string(), &session_info(&client))
        .await
        .expect("expire");
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
        client.children(parent).await.expect("children"),
        Some(children),
        "unexpected znodes after the node was made again"
    );
    let stat = stat_of(&client, &path).await.expect("the node");
    assert_ne!(stat.ephemeral_owner, session);
    assert_eq!(stat.ephemeral_owner, session_id(&client));
    node.close().await.expect("close");
    assert!(stat_of(&client, &path).await.is_none());
    client.close().await;
}
