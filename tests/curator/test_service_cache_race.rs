//! Curator's `TestServiceCacheRace` (curator-x-discovery, `details/`), ported to
//! [`ServiceCache`].
//!
//! Curator's test (CURATOR-452) pauses `ServiceCacheImpl.start()` with two package-private
//! latches (`debugStartLatch`, `debugStartWaitLatch`) between the priming of its inner cache
//! and the end of `start()`, registers an instance meanwhile, and checks that the listener
//! hears of it and that `start()` then completes. This crate's cache has no such hooks: the
//! port slows the cache's client with a [`FaultProxy`] (300 ms each way), so that its
//! `start()` (which sets a watch and reads the service, several round trips) is still under
//! way when a second instance is registered through another client. It checks that this is
//! so, then that the registration is reported (an `Added`), that `start()` completes, and
//! that the cache holds both instances.
//!
//! Not ported otherwise: none.

use std::collections::BTreeSet;
use std::time::Duration;

use zk_recipes::discovery::{ServiceCacheEvent, ServiceDiscovery};
use zk_recipes::testing::FaultProxy;

use crate::common::{init_tracing, join_within, unique_path, zk_server};
use crate::discovery_base::{client, instance, instance_of, kind, next_change, DEADLINE};

/// Curator: `TestServiceCacheRace.testRaceOnInitialLoad`.
///
/// See the module docs: instance 1 is registered; the cache (on a slowed client) is started
/// in a task; instance 2 is registered while `start()` has not returned; both instances'
/// `Added` come (instance 1's from the initial load, as the events are followed from before
/// the start), `start()` returns `Ok`, and the cache holds both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_race_on_initial_load() {
    init_tracing();
    let server = zk_server().await;
    let fast = client(&server).await;
    let proxy = FaultProxy::start(&server).await.expect("proxy");
    let slow = client(&proxy.connect_string()).await;
    let base = unique_path("discovery");
    let registry = ServiceDiscovery::<String>::builder(&fast, &base)
        .build()
        .expect("discovery");
    let instance1 = instance("test", "test", 10064);
    registry.register(&instance1).await.expect("register 1");

    let cache = ServiceDiscovery::<String>::builder(&slow, &base)
        .build()
        .expect("the cache's discovery")
        .service_cache("test")
        .expect("cache");
    let mut events = cache.events();
    proxy.delay(Duration::from_millis(300));
    let start = tokio::spawn({
        let cache = cache.clone();
        async move { cache.start().await }
    });

    let instance2 = instance("test", "test", 10065);
    registry.register(&instance2).await.expect("register 2");
    assert!(
        !start.is_finished(),
        "precondition: the cache's start() is under way when instance 2 is registered"
    );

    let mut added = BTreeSet::new();
    while added.len() < 2 {
        let change = next_change(&mut events).await;
        assert!(
            matches!(change, ServiceCacheEvent::Added(_)),
            "{}",
            kind(&change)
        );
        added.insert(instance_of(&change).id.clone());
    }
    assert_eq!(
        added,
        BTreeSet::from([instance1.id.clone(), instance2.id.clone()])
    );
    join_within(start, DEADLINE, "the cache's start()")
        .await
        .expect("start the cache");
    proxy.restore();
    let mut held: Vec<String> = cache.instances().iter().map(|i| i.id.clone()).collect();
    held.sort();
    let mut expected = vec![instance1.id.clone(), instance2.id.clone()];
    expected.sort();
    assert_eq!(held, expected);

    cache.close().await;
    registry.close().await.expect("close");
    slow.close().await;
    fast.close().await;
}
