//! Curator's `TestLeaderAcls` (`leader/TestLeaderAcls.java`), ported to [`LeaderLatch`] (and,
//! beyond Curator's test, [`LeaderSelector`]).
//!
//! Curator's test gives the client an `ACLProvider` that answers a digest ACL for `/base`
//! only, and open ACLs for every other path. This crate has no per-path ACL provider: a
//! client has [default ACLs](zk_recipes::ClientBuilder::default_acls), and a recipe has the
//! ACLs of its own nodes ([`LeaderLatch::with_acls`]), whose docs say that the latch's missing
//! parents get the client's default ACLs. The same ACLs as Curator's result from a client
//! whose default is the creator's digest (so `/base`, made on the way, gets `digest:test:…`
//! with every permission) and a latch whose nodes are open, as Curator's default ACL makes
//! them. That is the race layout. In the Curator layout the latch's nodes queue on the
//! crate's queue core, whose parents get the recipe's own ACLs (documented on
//! [`LeaderLatch::with_acls`]: a lock path made with the lock's ACLs keeps clients without
//! them from queueing), so there the latch is given the creator's digest ACLs, and `/base`,
//! made on the way, gets them as Curator's provider gives them.
//!
//! Curator's latch reports the refused create through the client's `UnhandledErrorListener`;
//! here [`LeaderLatch::start`] returns it (a create an ACL forbids is not retried), and a
//! selector reports it to its error hook as [`SelectorError::Queue`].
//!
//! Not ported: none.

use std::time::Duration;

use crate::common::{children_of, init_tracing, unique_path, zk_server};
use tokio::sync::mpsc;
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::zookeeper_client::Acls;
use zk_recipes::{
    BoxError, Client, Error, LatchLayout, LatchState, LeaderLatch, LeaderSelector,
    LeaderSelectorListener, Leadership, SelectorError,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn builder(connect_string: &str) -> zk_recipes::ClientBuilder {
    Client::builder(connect_string)
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
}

/// A listener that must never lead.
struct NeverLeads;

#[async_trait::async_trait]
impl LeaderSelectorListener for NeverLeads {
    async fn take_leadership(&self, _leadership: Leadership) -> Result<(), BoxError> {
        panic!("a selector led under a node it may not create children in");
    }
}

/// Curator: TestLeaderAcls.testAclErrorWithLeader (CURATOR-365).
///
/// A client authenticated as `digest test:test` runs a latch on `<root>/base`, in Curator's
/// layout ([`LatchLayout::Curator`], whose nodes are children of `base`): `base` is made on
/// the way, and must get the digest ACL (here the latch's own, which this layout gives the
/// parents it makes, where Curator's provider gives the client's: see the module docs; the
/// test checks it), and the latch leads. Then a client without that authentication runs a
/// latch on `<root>/base/second` (Curator: "a path below base, as the client may not create
/// nodes in base"): the create is refused with `NoAuth`, the latch stops, and nothing is left
/// under `base`. The refused latch is tried in both layouts, and a selector on the same kind
/// of path reports the refusal too (an addition). The test's root is made first by the
/// unauthenticated client, so that the parents above it stay open to every other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_acl_error_with_leader() {
    acl_error_with_leader(LatchLayout::Curator, "").await;
}

/// Curator: TestLeaderAcls.testAclErrorWithLeader, with the default layout
/// ([`LatchLayout::Race`]), whose latch node is the latch path itself: the latch runs on
/// `<root>/base/leader`, so that `base` is still made on the way. Otherwise as
/// [`test_acl_error_with_leader`], with the latch's own nodes open and `base` getting the
/// client's default ACL, as in Curator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_acl_error_with_leader_race_layout() {
    acl_error_with_leader(LatchLayout::Race, "/leader").await;
}

/// The test, with the authenticated latch in `layout` on `<root>/base<below>`.
async fn acl_error_with_leader(layout: LatchLayout, below: &str) {
    init_tracing();
    let server = zk_server().await;
    let no_auth = builder(&server).connect().await.expect("connect");
    let root = unique_path("leader-acls");
    no_auth
        .ensure_path(&root, false)
        .await
        .expect("the test's root");
    let base = format!("{root}/base");

    let client = builder(&server)
        .authorization("digest", b"test:test".to_vec())
        .default_acls(Acls::creator_all().to_vec())
        .connect()
        .await
        .expect("connect with digest authentication");
    // The race layout's parents get the client's default (the digest); the Curator layout's
    // get the latch's own ACLs, so there the latch is given the digest too.
    let latch_acls = if layout == LatchLayout::Curator {
        Acls::creator_all()
    } else {
        Acls::anyone_all()
    };
    let latch = LeaderLatch::new(&client, &format!("{base}{below}"))
        .expect("latch")
        .with_layout(layout)
        .with_acls(latch_acls.to_vec());
    latch.start().await.expect("start");
    assert!(latch
        .await_leadership_timeout(DEADLINE)
        .await
        .expect("await leadership"));
    let (acls, _) = client
        .zookeeper()
        .expect("the session's client")
        .get_acl(&base)
        .await
        .expect("the ACL of base");
    let digest_only =
        acls.len() == 1 && acls[0].scheme() == "digest" && acls[0].id().starts_with("test:");
    latch.close().await.expect("close");
    assert!(digest_only, "base, made on the way, has the ACL {acls:?}");

    for layout in [LatchLayout::Curator, LatchLayout::Race] {
        let latch = LeaderLatch::new(&no_auth, &format!("{base}/second"))
            .expect("latch")
            .with_layout(layout);
        let started = latch.start().await;
        assert!(
            matches!(started, Err(Error::NoAuth)),
            "{layout:?}: start gave {started:?}"
        );
        assert_eq!(latch.state(), LatchState::Closed, "{layout:?}");
        assert!(!latch.is_leader(), "{layout:?}");
    }

    let (errors_tx, mut errors) = mpsc::unbounded_channel();
    let selector = LeaderSelector::new(&no_auth, &format!("{base}/third"), NeverLeads)
        .expect("selector")
        .on_error(move |e| {
            let _ = errors_tx.send(e);
        });
    selector.start().expect("start");
    let error = tokio::time::timeout(DEADLINE, errors.recv())
        .await
        .expect("the selector's error in time")
        .expect("an error");
    assert!(
        matches!(error, SelectorError::Queue(Error::NoAuth)),
        "the selector reported {error:?}"
    );
    selector.close().await.expect("close");

    assert!(
        children_of(&client, &base).await.is_empty(),
        "nodes left under base"
    );
    no_auth.close().await;
    client.close().await;
}
