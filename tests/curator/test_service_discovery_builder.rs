//! Curator's `TestServiceDiscoveryBuilder` (curator-x-discovery, `details/`), ported to
//! [`ServiceDiscoveryBuilder`](zk_recipes::discovery::ServiceDiscoveryBuilder).
//!
//! Curator's builder takes any `InstanceSerializer` and its tests check the serializer's
//! class (`instanceof JsonInstanceSerializer`). This crate's serializer is always a
//! [`JsonInstanceSerializer`] (the type says so), configured by the caller; the ports check
//! what it writes instead: the default writes what Curator 5.4's default writes, and a
//! serializer given to the builder is the one kept and used.
//!
//! Curator's tests make a client they never start; this crate's client is connected when
//! made, so the ports connect to the shared server.
//!
//! Not ported: none.

use serde_json::json;
use zk_recipes::discovery::{JsonInstanceSerializer, ServiceDiscovery, ServiceInstance};

use crate::common::{init_tracing, unique_path, zk_server};
use crate::discovery_base::client;

/// An instance with an object payload and `enabled` false: what a serializer's settings
/// (compatible mode, the payload's class) show in its bytes.
fn probe() -> ServiceInstance<serde_json::Value> {
    ServiceInstance::builder("svc")
        .id("probe")
        .payload(json!({"k": "v"}))
        .registration_time_utc(0)
        .enabled(false)
        .build()
        .expect("instance")
}

/// Curator: `TestServiceDiscoveryBuilder.testDefaultSerializer`.
///
/// Curator checks that a discovery built without a serializer has a `JsonInstanceSerializer`.
/// Here the discovery's serializer writes exactly what Curator 5.4's default
/// (`new JsonInstanceSerializer<>(Object.class)`) writes: compatible mode (no `enabled`),
/// an object payload typed as `java.util.LinkedHashMap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_default_serializer() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let discovery = ServiceDiscovery::<serde_json::Value>::builder(&client, &unique_path("path"))
        .build()
        .expect("discovery");
    let bytes = discovery
        .serializer()
        .serialize(&probe())
        .expect("serialize");
    assert_eq!(
        std::str::from_utf8(&bytes).expect("UTF-8"),
        r#"{"name":"svc","id":"probe","address":null,"port":null,"sslPort":null,"payload":{"@class":"java.util.LinkedHashMap","k":"v"},"registrationTimeUTC":0,"serviceType":"DYNAMIC","uriSpec":null}"#
    );
    client.close().await;
}

/// Curator: `TestServiceDiscoveryBuilder.testSetSerializer`.
///
/// Curator checks that a serializer of the caller's (not a `JsonInstanceSerializer`) is the
/// one the discovery keeps. Here a serializer unlike the default (non-compatible, another
/// payload class) is given to the builder: the discovery's serializer writes as it does, and
/// so does a registration (the instance's node holds its bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_set_serializer() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let base = unique_path("path");
    let custom = JsonInstanceSerializer::new()
        .compatible(false)
        .payload_class("com.example.Details");
    let discovery = ServiceDiscovery::<serde_json::Value>::builder(&client, &base)
        .serializer(custom.clone())
        .build()
        .expect("discovery");
    let expected = custom.serialize(&probe()).expect("serialize");
    assert_ne!(
        expected,
        JsonInstanceSerializer::new()
            .serialize(&probe())
            .expect("serialize"),
        "the set serializer is not the default one"
    );
    assert_eq!(
        discovery
            .serializer()
            .serialize(&probe())
            .expect("serialize"),
        expected
    );

    discovery.register(&probe()).await.expect("register");
    let (data, _) = client
        .get_data(&format!("{base}/svc/probe"))
        .await
        .expect("get_data")
        .expect("the instance's node");
    assert_eq!(data, expected);
    discovery.close().await.expect("close");
    client.close().await;
}
