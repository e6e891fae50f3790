//! Curator's `TestServiceDiscovery` (curator-x-discovery, `details/`), ported to
//! [`ServiceDiscovery`].
//!
//! Curator's `registerService` / `unregisterService` / `queryForNames` / `queryForInstances`
//! are [`register`](ServiceDiscovery::register), [`unregister`](ServiceDiscovery::unregister),
//! [`query_for_names`](ServiceDiscovery::query_for_names) and
//! [`query_for_instances`](ServiceDiscovery::query_for_instances); `thisInstance` is
//! [`this_instance`](zk_recipes::discovery::ServiceDiscoveryBuilder::this_instance),
//! registered by [`start`](ServiceDiscovery::start).
//!
//! Curator's crash tests subclass `ServiceDiscoveryImpl` to count its (re-)registrations with
//! a semaphore, and expire the session with the Java client's
//! `getTestable().injectSessionExpiration()`. This crate has no registration hook: a
//! registration is seen on the server, as the instance's node owned by the client's current
//! session; the session is expired on the server
//! ([`expire_session`](zk_recipes::testing::expire_session)). Curator re-registers every
//! instance after every reconnection; this crate keeps each instance's node present (made
//! again when found gone, a documented difference), so after an expired session each
//! instance is made again on the new session, which is what the ports wait for.
//!
//! Curator's tests share the base path `/test` on a fresh server per test; here each runs
//! under a [`unique_path`] on the shared server, except those that stop and restart their
//! server (`testCrashedServer`, `testCrashedServerMultiInstances`, `testNoServerOnStart`).
//!
//! Not ported: none.

use std::time::Duration;

use zk_recipes::discovery::{ServiceDiscovery, ServiceInstance};
use zk_recipes::testing::{expire_session, Backend, FaultProxy, TestingServer};
use zk_recipes::{Client, ConnectionState};

use crate::common::{
    eventually, eventually_async, init_tracing, join_within, unique_path, zk_server,
};
use crate::discovery_base::{client, instance, session_info, DEADLINE, QUIET};
use crate::nodes_base::wait_for_state;

async fn own_server() -> TestingServer {
    TestingServer::start_with(Backend::from_env().await.expect("a backend"))
        .await
        .expect("a server of its own")
}

/// Waits until every instance's node exists, owned by `client`'s session, on a session newer
/// than generation `old` (the instances were registered again after the expiry).
async fn wait_registered_again(
    client: &Client,
    base: &str,
    instances: &[ServiceInstance<String>],
    old: u64,
) {
    eventually_async(
        "every instance registered again on a new session",
        DEADLINE,
        || async {
            let session = client.session();
            if session.generation() <= old {
                return false;
            }
            for instance in instances {
                let path = format!("{base}/{}/{}", instance.name, instance.id);
                match client.exists(&path).await {
                    Ok(Some(stat)) if session.owns(&stat) => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
}

/// Curator's `testCrashedServer` with `qty` instances (`testCrashedServerMultiInstances`
/// has 2): registered, then the session expired, the server stopped and restarted.
async fn crashed_server(qty: u16) {
    init_tracing();
    let server = own_server().await;
    let client = client(&server.connect_string()).await;
    let base = unique_path("discovery-crashed-server");
    let instances: Vec<ServiceInstance<String>> = (0..qty)
        .map(|i| instance("test", "thing", 10064 + i))
        .collect();
    let discovery = ServiceDiscovery::builder(&client, &base)
        .this_instance(instances[0].clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");
    for other in &instances[1..] {
        discovery.register(other).await.expect("register");
    }
    assert_eq!(
        discovery
            .query_for_instances("test")
            .await
            .expect("query")
            .len(),
        usize::from(qty)
    );

    let old = client.session().generation();
    expire_session(&server.connect_string(), &session_info(&client))
        .await
        .expect("expire the session");
    server.stop().await.expect("stop the server");
    server.restart().await.expect("restart the server");

    wait_registered_again(&client, &base, &instances, old).await;
    assert_eq!(
        discovery
            .query_for_instances("test")
            .await
            .expect("query")
            .len(),
        usize::from(qty)
    );
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceDiscovery.testCrashedServerMultiInstances`.
///
/// Two instances (`thisInstance` and one registered after start) are queried; the session
/// is expired and the server (its own) stopped and restarted; once both are registered
/// again on the new session (Curator: two more registrations counted), the query finds both
/// again. See the module docs for how a registration is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_crashed_server_multi_instances() {
    crashed_server(2).await;
}

/// Curator: `TestServiceDiscovery.testCrashedServer`.
///
/// As `testCrashedServerMultiInstances`, with one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_crashed_server() {
    crashed_server(1).await;
}

/// Curator: `TestServiceDiscovery.testCrashedInstance`.
///
/// The session of a registered instance is expired; Curator sleeps 1.5 session timeouts and
/// queries once. The port waits (under a deadline) until the instance is registered again on
/// the new session, then the query finds exactly one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_crashed_instance() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let base = unique_path("discovery-crashed-instance");
    let me = instance("test", "thing", 10064);
    let discovery = ServiceDiscovery::builder(&client, &base)
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");
    assert_eq!(
        discovery
            .query_for_instances("test")
            .await
            .expect("query")
            .len(),
        1
    );

    let old = client.session().generation();
    expire_session(&server, &session_info(&client))
        .await
        .expect("expire the session");
    wait_registered_again(&client, &base, std::slice::from_ref(&me), old).await;
    assert_eq!(
        discovery
            .query_for_instances("test")
            .await
            .expect("query")
            .len(),
        1
    );
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceDiscovery.testMultipleInstances`.
///
/// Two instances each of the services `one` and `two` (no payload, built with random ids):
/// the names are `one` and `two` (as a set), and each service's instances, sorted by id,
/// equal those registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_multiple_instances() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("discovery-multiple");
    let make = |name: &str| {
        ServiceInstance::<()>::builder(name)
            .build()
            .expect("instance")
    };
    let (s1_i1, s1_i2, s2_i1, s2_i2) = (make("one"), make("one"), make("two"), make("two"));
    let discovery = ServiceDiscovery::<()>::builder(&client, &base)
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");
    for instance in [&s1_i1, &s1_i2, &s2_i1, &s2_i2] {
        discovery.register(instance).await.expect("register");
    }

    let mut names = discovery.query_for_names().await.expect("names");
    names.sort();
    assert_eq!(names, ["one", "two"]);

    for (service, registered) in [("one", [&s1_i1, &s1_i2]), ("two", [&s2_i1, &s2_i2])] {
        let mut expected: Vec<ServiceInstance<()>> = registered.into_iter().cloned().collect();
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        let mut queried = discovery.query_for_instances(service).await.expect("query");
        queried.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(queried, expected, "service {service}");
    }
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceDiscovery.testBasic`.
///
/// `thisInstance`, once started: the names are exactly `test`, and its instances exactly
/// the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("discovery-basic");
    let me = instance("test", "thing", 10064);
    let discovery = ServiceDiscovery::builder(&client, &base)
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");

    assert_eq!(discovery.query_for_names().await.expect("names"), ["test"]);
    assert_eq!(
        discovery.query_for_instances("test").await.expect("query"),
        vec![me]
    );
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceDiscovery.testNoServerOnStart`.
///
/// Adapted: Curator starts its client and the discovery while the server is stopped, and
/// `start()` must not throw (its registration fails, is logged, and is done on `CONNECTED`).
/// This crate's client does not connect without a server, so the port connects first, stops
/// the server (its own) and waits until the client is `Suspended`, then starts the
/// discovery. This crate's `start()` returns once the instance is registered: a bounded look
/// shows it neither returns nor fails while the server is down; once the server is restarted
/// it returns `Ok`, and the names and instances are Curator's (`test`, the instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_no_server_on_start() {
    init_tracing();
    let server = own_server().await;
    let client = client(&server.connect_string()).await;
    let mut states = client.connection_states();
    server.stop().await.expect("stop the server");
    wait_for_state(&mut states, ConnectionState::Suspended).await;

    let base = unique_path("discovery-no-server");
    let me = instance("test", "thing", 10064);
    let discovery = ServiceDiscovery::builder(&client, &base)
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    let start = tokio::spawn({
        let discovery = discovery.clone();
        async move { discovery.start().await }
    });
    // A bounded look: while the server is down, start() neither returns nor fails.
    tokio::time::sleep(QUIET).await;
    if start.is_finished() {
        panic!(
            "start() returned while the server was down: {:?}",
            start.await
        );
    }

    server.restart().await.expect("restart the server");
    join_within(start, DEADLINE, "start() once the server is back")
        .await
        .expect("start");
    assert_eq!(discovery.query_for_names().await.expect("names"), ["test"]);
    assert_eq!(
        discovery.query_for_instances("test").await.expect("query"),
        vec![me]
    );
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceDiscovery.testUnregisterService` (CURATOR-164).
///
/// An unregistration made while the instance is being registered again wins: the instance
/// is not on the server afterwards. Curator stops and restarts the server (it re-registers
/// after every reconnection), and holds the re-registration inside a slow serializer while
/// `unregisterService` is called. This crate remakes an instance when its node is gone, not
/// on every reconnection, and takes no serializer of the caller's making, so the port makes
/// the re-registration happen by expiring the session, and slows it with a [`FaultProxy`]
/// delaying the client's traffic by 300 ms each way: `unregister` is called as soon as the
/// client has its new session, while the instance's node is being made again on it. The
/// instance's node is then absent, and still absent after a bounded look; the queries find
/// no instance and the discovery has none registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_unregister_service() {
    init_tracing();
    let server = zk_server().await;
    let proxy = FaultProxy::start(&server).await.expect("proxy");
    let client = client(&proxy.connect_string()).await;
    let observer = crate::discovery_base::client(&server).await;
    let base = unique_path("discovery-unregister");
    let me = instance("name", "thing", 10064);
    let path = format!("{base}/name/{}", me.id);
    let discovery = ServiceDiscovery::builder(&client, &base)
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");
    assert!(
        !discovery
            .query_for_instances("name")
            .await
            .expect("query")
            .is_empty(),
        "the service should start registered"
    );

    let old = client.session().generation();
    proxy.delay(Duration::from_millis(300));
    expire_session(&server, &session_info(&client))
        .await
        .expect("expire the session");
    eventually("the client's new session", DEADLINE, || {
        client.session().generation() > old
    })
    .await;
    discovery.unregister(&me).await.expect("unregister");
    proxy.restore();

    assert!(observer.exists(&path).await.expect("exists").is_none());
    // A bounded look: the registration under way does not bring the instance back.
    tokio::time::sleep(QUIET).await;
    assert!(
        observer.exists(&path).await.expect("exists").is_none(),
        "the service should have unregistered"
    );
    assert!(discovery
        .query_for_instances("name")
        .await
        .expect("query")
        .is_empty());
    assert!(discovery.registered().await.is_empty());
    discovery.close().await.expect("close");
    client.close().await;
    observer.close().await;
}

/// Curator: `TestServiceDiscovery.testCleaning`.
///
/// After `thisInstance` is started and unregistered, the discovery holds no instance
/// (Curator's `debugServicesQty() == 0`; here [`registered`](ServiceDiscovery::registered)
/// is empty). The port also checks that the instance's node is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cleaning() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("discovery-cleaning");
    let me = instance("test", "thing", 10064);
    let discovery = ServiceDiscovery::builder(&client, &base)
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");
    assert_eq!(discovery.registered().await, vec![me.clone()]);
    discovery.unregister(&me).await.expect("unregister");

    assert!(discovery.registered().await.is_empty());
    assert!(client
        .exists(&format!("{base}/test/{}", me.id))
        .await
        .expect("exists")
        .is_none());
    discovery.close().await.expect("close");
    client.close().await;
}
