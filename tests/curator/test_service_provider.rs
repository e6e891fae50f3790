//! Curator's `TestServiceProvider` (curator-x-discovery, `details/`), ported to
//! [`ServiceProvider`](zk_recipes::discovery::ServiceProvider).
//!
//! Curator's `discovery.serviceProviderBuilder().serviceName(n).build()` is
//! [`ServiceDiscovery::service_provider`]; `getInstance()` / `getAllInstances()` are
//! `get_instance()` / `all_instances()`. Curator's `start()` waits for the provider's cache
//! to load, as this crate's does.
//!
//! Not ported: none.

use zk_recipes::discovery::{JsonInstanceSerializer, ServiceDiscovery, ServiceInstance};

use crate::common::{init_tracing, unique_path, zk_server};
use crate::discovery_base::{client, instance};

/// Curator: `TestServiceProvider.testBasic`.
///
/// `thisInstance` and a started provider of its service: `getInstance()` is the instance,
/// and `getAllInstances()` exactly the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let me = instance("test", "thing", 10064);
    let discovery = ServiceDiscovery::<String>::builder(&client, &unique_path("test"))
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start the discovery");
    let provider = discovery
        .service_provider("test")
        .build()
        .expect("provider");
    provider.start().await.expect("start the provider");

    assert_eq!(provider.get_instance().as_deref(), Some(&me));
    let all: Vec<ServiceInstance<String>> = provider
        .all_instances()
        .iter()
        .map(|i| (**i).clone())
        .collect();
    assert_eq!(all, vec![me]);

    provider.close().await;
    discovery.close().await.expect("close");
    client.close().await;
}

/// Curator: `TestServiceProvider.testDisabledInstance`.
///
/// An instance with `enabled` false, registered with the non-compatible serializer (which
/// writes `enabled`): the provider gives no instance, and lists none. The port also checks
/// that the provider's cache holds the instance, disabled, so that it is the filter, not a
/// missing instance, that leaves it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_disabled_instance() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let mut me = instance("test", "thing", 10064);
    me.enabled = false;
    let discovery = ServiceDiscovery::<String>::builder(&client, &unique_path("test"))
        .serializer(JsonInstanceSerializer::new().compatible(false))
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start the discovery");
    let provider = discovery
        .service_provider("test")
        .build()
        .expect("provider");
    provider.start().await.expect("start the provider");

    assert_eq!(provider.get_instance(), None);
    assert!(
        provider.all_instances().is_empty(),
        "a disabled instance still appears available via the service provider"
    );
    let cached = provider.cache().instances();
    assert_eq!(cached.len(), 1, "the cache holds the instance");
    assert!(!cached[0].enabled);

    provider.close().await;
    discovery.close().await.expect("close");
    client.close().await;
}
