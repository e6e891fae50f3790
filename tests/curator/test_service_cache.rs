//! Curator's `TestServiceCache` (curator-x-discovery), ported to [`ServiceCache`] (and
//! [`ServiceProvider`](zk_recipes::discovery::ServiceProvider) for `testViaProvider`).
//!
//! Curator's `discovery.serviceCacheBuilder().name(n).build()` is
//! [`ServiceDiscovery::service_cache`]; a `ServiceCacheListener`'s `cacheChanged()` is one
//! change on the cache's [`events`](ServiceCache::events) (see `discovery_base`). Curator's
//! `start()` waits for the initial load, as this crate's does. Curator calls no
//! `cacheChanged()` during the initial load; this crate's events, asked for before the start
//! (as Curator adds its listener before it), report the load's instances (`Added` each, then
//! `Synced`): the ports read past the load, checking what it reported, before they look for
//! Curator's changes. Curator's latches and
//! semaphores, awaited with a timeout, are the next change awaited under a deadline; where
//! Curator shows that no `cacheChanged()` comes (`tryAcquire` fails for 3 s), the port looks
//! for a bounded while ([`QUIET`]).
//!
//! Not ported:
//!
//! * `testExecutorServiceIsInvoked`: Curator's test returns at once on ZooKeeper 3.6 and
//!   later (its cache, on persistent watches, ignores the executor); this crate has no
//!   executor option: its events are a stream the caller polls.
//! * `ServiceCacheLeakTester` (in the same package) is a `main` program that opens and closes
//!   100 000 providers to watch the memory, not a test.

use std::collections::BTreeSet;

use zk_recipes::discovery::{ServiceCache, ServiceCacheEvent, ServiceDiscovery};

use crate::common::{eventually, init_tracing, unique_path, zk_server};
use crate::discovery_base::{
    client, expect_no_change, initial_load, instance, instance_of, kind, next_change, DEADLINE,
    QUIET,
};

/// Curator: `TestServiceCache.testInitialLoad`.
///
/// A cache of `test` is started before any instance is registered (its initial load reports
/// nothing); three are registered: three changes come, one `Added` for each. A second cache,
/// started afterwards, holds the three as soon as `start()` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_initial_load() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let discovery = ServiceDiscovery::<String>::builder(&client, &unique_path("discovery"))
        .build()
        .expect("discovery");
    discovery.start().await.expect("start the discovery");

    let cache = discovery.service_cache("test").expect("cache");
    let mut events = cache.events();
    cache.start().await.expect("start the cache");
    let load = initial_load(&mut events).await;
    assert!(
        load.is_empty(),
        "{:?}",
        load.iter().map(kind).collect::<Vec<_>>()
    );

    let instances = [
        instance("test", "test", 10064),
        instance("test", "test", 10065),
        instance("test", "test", 10066),
    ];
    for registered in &instances {
        discovery.register(registered).await.expect("register");
    }
    let mut added = BTreeSet::new();
    for _ in 0..3 {
        let change = next_change(&mut events).await;
        assert!(
            matches!(change, ServiceCacheEvent::Added(_)),
            "{}",
            kind(&change)
        );
        added.insert(instance_of(&change).id.clone());
    }
    let expected: BTreeSet<String> = instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(added, expected);

    let cache2: ServiceCache<String> = discovery.service_cache("test").expect("cache 2");
    cache2.start().await.expect("start cache 2");
    assert_eq!(cache2.instances().len(), 3);

    cache2.close().await;
    cache.close().await;
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceCache.testViaProvider`.
///
/// A provider of `test` is started before its instance is registered: the provider comes to
/// give that instance (Curator polls five times, sleeping a bit; here under a deadline).
/// Once a second instance (address `foo`) is registered, the provider comes to give both
/// (Curator sleeps a bit and looks once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_via_provider() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let discovery = ServiceDiscovery::<String>::builder(&client, &unique_path("discovery"))
        .build()
        .expect("discovery");
    discovery.start().await.expect("start the discovery");
    let provider = discovery
        .service_provider("test")
        .build()
        .expect("provider");
    provider.start().await.expect("start the provider");

    let first = instance("test", "thing", 10064);
    discovery.register(&first).await.expect("register");
    eventually("the provider to give the instance", DEADLINE, || {
        provider.get_instance().is_some()
    })
    .await;
    assert_eq!(
        provider.get_instance().as_deref(),
        Some(&first),
        "the instance found"
    );

    let mut second = instance("test", "thing", 10064);
    second.address = Some("foo".to_owned());
    discovery.register(&second).await.expect("register 2");
    eventually("the provider to give both instances", DEADLINE, || {
        provider.all_instances().len() == 2
    })
    .await;

    provider.close().await;
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceCache.testUpdate`.
///
/// `thisInstance` (payload `thing`) and a started cache (its initial load reports the
/// instance, see the module docs); the instance is updated (same id, payload `changed`): a
/// change comes (here: `Updated`, to `changed`), and the cache holds one instance, with
/// payload `changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_update() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let me = instance("test", "thing", 10064);
    let discovery = ServiceDiscovery::<String>::builder(&client, &unique_path("test"))
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start the discovery");

    let cache = discovery.service_cache("test").expect("cache");
    let mut events = cache.events();
    cache.start().await.expect("start the cache");
    let load = initial_load(&mut events).await;
    assert!(
        matches!(load.as_slice(), [ServiceCacheEvent::Added(i)] if **i == me),
        "{:?}",
        load.iter().map(kind).collect::<Vec<_>>()
    );

    let mut changed = instance("test", "changed", 10064);
    changed.id = me.id.clone();
    discovery.update(&changed).await.expect("update");

    let change = next_change(&mut events).await;
    assert!(
        matches!(change, ServiceCacheEvent::Updated { .. }),
        "{}",
        kind(&change)
    );
    assert_eq!(instance_of(&change).payload.as_deref(), Some("changed"));
    let instances = cache.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].payload, changed.payload);

    cache.close().await;
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceCache.testCache`.
///
/// A started cache of `test`, followed from then on: registering an instance gives one
/// change, registering a second one another; registering an instance of the service
/// `another` gives none (a bounded look). The changes are the two instances' `Added`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cache() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let discovery = ServiceDiscovery::<String>::builder(&client, &unique_path("discovery"))
        .build()
        .expect("discovery");
    discovery.start().await.expect("start the discovery");

    let cache = discovery.service_cache("test").expect("cache");
    cache.start().await.expect("start the cache");
    let mut events = cache.events();

    let instance1 = instance("test", "thing", 10064);
    let instance2 = instance("test", "thing", 10065);
    discovery.register(&instance1).await.expect("register 1");
    let change = next_change(&mut events).await;
    assert!(
        matches!(&change, ServiceCacheEvent::Added(i) if **i == instance1),
        "{}",
        kind(&change)
    );

    discovery.register(&instance2).await.expect("register 2");
    let change = next_change(&mut events).await;
    assert!(
        matches!(&change, ServiceCacheEvent::Added(i) if **i == instance2),
        "{}",
        kind(&change)
    );

    let instance3 = instance("another", "thing", 10064);
    discovery.register(&instance3).await.expect("register 3");
    // A bounded look: another service's instance is no change of this cache.
    expect_no_change(&mut events, QUIET).await;

    cache.close().await;
    discovery.close().await.expect("close");
    client.close().await;
}
