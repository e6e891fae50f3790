//! Curator's `TestLockCleanlinessWithFaults` (`locks/`), and `TestLockInternals`, its new name
//! since Curator 5.6 (CURATOR-41 renamed the class and added `testAttemptLockFailedException`),
//! ported to [`InterProcessMutex`].
//!
//! Curator's tests subclass its package-private `LockInternals` and override
//! `getSortedChildren()` to throw `NoNodeException` (and, in the second test, to stop the
//! server and inject a session expiry first), right after the lock node is created: a Java-only
//! mechanism, since this crate's queue has no hook to override. The ports make the same fault
//! happen for real, at the same point (a lock node made and waiting): the waiting node is
//! deleted under the acquire, or the server goes away and the session is lost. The client's
//! retry policy allows no retry (Curator: `RetryNTimes(0, 0)`), so the acquire must fail with
//! the fault's own error, and leave no node behind.
//!
//! Not ported: none.

use std::time::Duration;

use zk_recipes::retry::RetryNTimes;
use zk_recipes::testing::TestingServer;
use zk_recipes::{Client, ConnectionState, Error, InterProcessMutex};

use crate::common::{children_of, eventually_async, init_tracing, unique_path, zk_server};

/// Every wait of these tests ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(20);

/// A client with Curator's `RetryNTimes(0, 0)`.
async fn client_no_retry(connect_string: &str, session: Duration, connection: Duration) -> Client {
    Client::builder(connect_string)
        .session_timeout(session)
        .connection_timeout(connection)
        .retry_policy(RetryNTimes::new(0, Duration::ZERO))
        .connect()
        .await
        .expect("connect")
}

/// Curator: `TestLockCleanlinessWithFaults.testNodeDeleted` (in Curator 5.6,
/// `TestLockInternals.testNodeDeletedCleanlyWithFaults`).
///
/// Curator: on an existing `/foo/bar` with no children, a lock attempt whose listing of the
/// children fails with `NoNode` right after its node is made must fail with `NoNode` and leave
/// no child behind.
///
/// Adapted: the lock path exists (empty), another client holds the lock, and our acquire's
/// node waits behind it; then the waiting node is deleted from outside (the queue finds its
/// node gone: `NoNode`). With no retry allowed the acquire fails with `Error::NodeDeleted`
/// (documented: the waiting node was lost more often than the retry policy allows joining
/// again), and once the holder releases, the lock path has no child: no node was left or made
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_node_deleted() {
    init_tracing();
    let server = zk_server().await;
    let path = format!("{}/foo/bar", unique_path("lock-cleanliness"));
    let client = client_no_retry(&server, Duration::from_secs(10), Duration::from_secs(5)).await;
    let holder_client =
        client_no_retry(&server, Duration::from_secs(10), Duration::from_secs(5)).await;
    client
        .ensure_path(&path, false)
        .await
        .expect("create /foo/bar");
    assert_eq!(
        client
            .exists(&path)
            .await
            .expect("exists")
            .expect("the path")
            .num_children,
        0
    );

    let holder = InterProcessMutex::new(&holder_client, &path)
        .expect("mutex")
        .acquire()
        .await
        .expect("the holder's acquire");
    let mutex = InterProcessMutex::new(&client, &path).expect("mutex");
    let acquire = {
        let mutex = mutex.clone();
        tokio::spawn(async move { mutex.acquire().await })
    };
    eventually_async("our node to wait in the queue", DEADLINE, || async {
        children_of(&client, &path).await.len() == 2
    })
    .await;
    let ours = children_of(&client, &path)
        .await
        .into_iter()
        .find(|child| child != holder.node_name())
        .expect("our waiting node");
    assert!(client
        .delete(&format!("{path}/{ours}"), None)
        .await
        .expect("delete our waiting node"));

    let outcome = tokio::time::timeout(DEADLINE, acquire)
        .await
        .expect("the acquire ends")
        .expect("the acquire task");
    assert!(
        matches!(outcome, Err(Error::NodeDeleted { .. })),
        "expected NodeDeleted, got {outcome:?}"
    );
    assert!(!mutex.is_acquired_in_this_process());
    holder.release().await.expect("the holder's release");
    // Make sure no nodes are left lying around.
    assert_eq!(
        client
            .exists(&path)
            .await
            .expect("exists")
            .expect("the path")
            .num_children,
        0
    );
    client.close().await;
    holder_client.close().await;
}

/// Curator: `TestLockInternals.testAttemptLockFailedException` (CURATOR-41).
///
/// Curator: right after the lock node is made, the server is closed and the session expired,
/// and the listing fails with `NoNode`; the attempt must fail with that `NoNode`, not with the
/// secondary error of deleting the lock node on a dead connection.
///
/// Adapted: a server of its own; the lock path exists, another client holds the lock and our
/// acquire's node waits behind it; then the server is stopped. Our client (2 s session, 1 s
/// connection timeout; Curator: 1 s connection timeout) is suspended, then declares the session
/// lost; with no retry allowed, the acquire must end with the loss of its waiting node,
/// `Error::SessionExpired` or `Error::NodeDeleted`, and not hang on, or report, the delete of
/// its node that cannot be sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_attempt_lock_failed_exception() {
    init_tracing();
    let server = TestingServer::start().await.expect("a server of its own");
    let path = "/foo/bar";
    let client = client_no_retry(
        &server.connect_string(),
        Duration::from_secs(2),
        Duration::from_secs(1),
    )
    .await;
    let holder_client = client_no_retry(
        &server.connect_string(),
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
    .await;
    client
        .ensure_path(path, false)
        .await
        .expect("create /foo/bar");
    assert!(children_of(&client, path).await.is_empty());
    let holder = InterProcessMutex::new(&holder_client, path)
        .expect("mutex")
        .acquire()
        .await
        .expect("the holder's acquire");

    let mutex = InterProcessMutex::new(&client, path).expect("mutex");
    let acquire = {
        let mutex = mutex.clone();
        tokio::spawn(async move { mutex.acquire().await })
    };
    eventually_async("our node to wait in the queue", DEADLINE, || async {
        children_of(&client, path).await.len() == 2
    })
    .await;

    let mut states = client.connection_states();
    server.stop().await.expect("stop the server");
    let outcome = tokio::time::timeout(DEADLINE, acquire)
        .await
        .expect("the acquire ends")
        .expect("the acquire task");
    assert!(
        matches!(
            outcome,
            Err(Error::SessionExpired | Error::NodeDeleted { .. })
        ),
        "expected the loss of the waiting node, got {outcome:?}"
    );
    assert!(!mutex.is_acquired_in_this_process());
    // The failure came with the session's loss, as in Curator's test.
    tokio::time::timeout(DEADLINE, async {
        while let Some(state) = states.next().await {
            if state == ConnectionState::Lost {
                return;
            }
        }
    })
    .await
    .expect("the client declares the session lost");
    drop(holder);
    client.close().await;
    holder_client.close().await;
}
