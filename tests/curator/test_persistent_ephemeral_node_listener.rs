//! Curator's `TestPersistentEphemeralNodeListener`
//! (`nodes/TestPersistentEphemeralNodeListener.java`), ported to [`PersistentNode`] and the
//! client's connection states ([`Client::connection_states`](zk_recipes::Client::connection_states),
//! Curator's `ConnectionStateListener`).
//!
//! As in [`test_persistent_ephemeral_node`](super::test_persistent_ephemeral_node),
//! `Client::connect` needs a server, so the client connects before the server is stopped, and
//! Curator's `CONNECTED` is this client's `Reconnected`.
//!
//! Not ported: none.

use zk_recipes::testing::{Backend, TestingServer};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{ConnectionState, NodeEvent, PersistentNode};

use crate::common::init_tracing;
use crate::nodes_base::{
    client, data_of, expect_no_event, next_event, next_state, session_id, stat_of, wait_for_state,
    DEADLINE, QUIET,
};

/// Curator: `TestPersistentEphemeralNodeListener.testListenersReconnectedIsOK`.
///
/// On a server of the test's own, stopped before the node starts (after the client connected:
/// see the module docs). The server is restarted: the client reconnects (Curator's
/// `CONNECTED`) and the node is made. The server is restarted again: the client reports
/// `Suspended`, then `Reconnected` (Curator's `RECONNECTED` latch), and then nothing more for
/// a bounded while (Curator: `lastState` is still `RECONNECTED` after a sleep): the node's
/// handling of the reconnection causes no further state. Added: the node is still at its path,
/// owned by the same session, with its data, and reported nothing but its first creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_listeners_reconnected_is_ok() {
    init_tracing();
    let server = TestingServer::start_with(Backend::from_env().await.expect("a backend"))
        .await
        .expect("a server");
    let client = client(&server.connect_string()).await;
    let mut states = client.connection_states();
    server.stop().await.expect("stop");
    wait_for_state(&mut states, ConnectionState::Suspended).await;

    let path = "/abc/node";
    let node =
        PersistentNode::new(&client, path, CreateMode::Ephemeral, &b"hello"[..]).expect("node");
    let mut events = node.events();
    node.start().expect("start");

    server.restart().await.expect("restart");
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert!(node
        .wait_for_initial_create(DEADLINE)
        .await
        .expect("wait_for_initial_create"));
    assert!(matches!(next_event(&mut events).await, NodeEvent::Created(p) if p == path));
    let session = session_id(&client);

    server.restart().await.expect("restart");
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    // A bounded look: the last state stays Reconnected, and the node reports nothing.
    let quiet_states = async {
        if let Ok(state) = tokio::time::timeout(QUIET, states.next()).await {
            panic!("a state after Reconnected: {state:?}");
        }
    };
    tokio::join!(quiet_states, expect_no_event(&mut events, QUIET));
    assert_eq!(client.state(), ConnectionState::Reconnected);
    assert_eq!(session_id(&client), session, "the session did not survive");
    assert_eq!(node.actual_path().as_deref(), Some(path));
    assert_eq!(
        stat_of(&client, path)
            .await
            .expect("the node")
            .ephemeral_owner,
        session
    );
    assert_eq!(data_of(&client, path).await.as_deref(), Some(&b"hello"[..]));
    node.close().await.expect("close");
    client.close().await;
}
