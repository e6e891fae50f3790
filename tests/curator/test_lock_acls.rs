//! Curator's `TestLockACLs` (`locks/`), ported to this crate's [`Client`] and
//! [`InterProcessReadWriteLock`].
//!
//! Curator's client takes an `ACLProvider`, which gives the ACL of every node the client
//! creates by its path (`getAclForPath`), with a default (`getDefaultAcl`). This crate's client
//! has one list of default ACLs for every node it and its recipes create
//! ([`ClientBuilder::default_acls`](zk_recipes::ClientBuilder::default_acls)), and each recipe
//! can be given its own (`with_acls`). A provider that answers the same ACL for every path,
//! as `testLockACLs`'s does, is the client's default ACLs.
//!
//! Not ported:
//!
//! | Curator test | Reason |
//! |---|---|
//! | `testACLsCreatingParents` | Capability missing: a per-path ACL provider. Curator's provider gives the parent `/ns/parent`, created on the way to `/ns/parent/foo`, another ACL (`CREATE \| READ`) than the node itself (`ALL`); here the parents made on the way get the same ACLs as the node (`Client::create`'s, or the client's defaults), and nothing can choose an ACL by path. |

use std::time::Duration;

use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::zookeeper_client::{Acl, AuthId, CreateMode, Permission};
use zk_recipes::{Client, InterProcessReadWriteLock};

use crate::common::{init_tracing, unique_path, zk_server};

/// Curator's `ACLS1`: everything for connections from 127.0.0.1 (the test servers' clients).
fn acls1() -> Vec<Acl> {
    vec![Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1"))]
}

/// The ACLs of `path` (under the client's namespace).
async fn acls_of(client: &Client, path: &str) -> Vec<Acl> {
    let path = path.to_owned();
    client
        .with_retry(|zk| {
            let path = path.clone();
            async move { zk.get_acl(&path).await }
        })
        .await
        .unwrap_or_else(|e| panic!("get_acl {path}: {e}"))
        .0
}

/// Curator: `TestLockACLs.testLockACLs`.
///
/// A client with a namespace (Curator: `ns`; here a unique one) whose ACL provider answers
/// `ip:127.0.0.1` with all permissions for every path (here, the client's default ACLs):
/// a node it creates has that ACL, and so does the path of a read/write lock, made as a parent
/// when the write lock is first acquired. Curator's `ExponentialBackoffRetry(1000, 3)` is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_lock_acls() {
    init_tracing();
    let server = zk_server().await;
    // The namespace node is made open first, so that no shared node gets the test's ACLs.
    let base = unique_path("lock-acls");
    let setup = Client::builder(&server).connect().await.expect("connect");
    setup
        .ensure_path(&base, false)
        .await
        .expect("namespace node");
    setup.close().await;
    let namespace = base.trim_start_matches('/').to_owned();
    let client = Client::builder(&server)
        .namespace(namespace)
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_secs(1), 3))
        .default_acls(acls1())
        .connect()
        .await
        .expect("connect");

    client
        .create("/foo", b"", CreateMode::Persistent, &[])
        .await
        .expect("create /foo");
    assert!(client.exists("/foo").await.expect("exists").is_some());
    assert_eq!(acls_of(&client, "/foo").await, acls1());

    let lock = InterProcessReadWriteLock::new(&client, "/bar").expect("read/write lock");
    let guard = lock.write_lock().acquire().await.expect("write acquire");
    assert!(client.exists("/bar").await.expect("exists").is_some());
    let bar = acls_of(&client, "/bar").await;
    assert_eq!(bar.len(), 1);
    assert_eq!(bar[0].permission(), Permission::ALL);
    assert_eq!(bar[0].scheme(), "ip");
    assert_eq!(bar[0].id(), "127.0.0.1");
    // The write node too.
    assert_eq!(acls_of(&client, guard.node_path()).await, acls1());
    guard.release().await.expect("release");
    client.close().await;
}
