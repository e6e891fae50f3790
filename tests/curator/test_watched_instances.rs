//! Curator's `TestWatchedInstances` (curator-x-discovery, `details/`), ported as its
//! inverse.
//!
//! Curator's `watchInstances(true)` makes a discovery adopt the data someone else writes to
//! a registered instance's node (and re-register that data after a reconnection). This crate
//! does not offer it, a documented difference (see `zk_recipes::discovery`'s "Differences
//! from Curator, on purpose"): a registered instance keeps the data it was given. The port
//! makes Curator's outside write and checks that difference instead.
//!
//! Not ported otherwise: none.

use zk_recipes::discovery::{ServiceDiscovery, ServiceInstance};

use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use crate::discovery_base::{client, instance, DEADLINE, QUIET};

/// Curator: `TestWatchedInstances.testWatchedInstances`.
///
/// As in Curator: `thisInstance` (payload `thing`) is started; the names are `test` and the
/// instances the instance; then someone writes the instance's node with the same instance,
/// payload `different` (Curator's client writes it; here another client, with the
/// discovery's serializer). Inverted: Curator's `getRegisteredService(id)` then has payload
/// `different`; here, after a bounded look, [`registered`](ServiceDiscovery::registered)
/// still has `thing`. And when the node is then deleted by someone else, it is made again
/// with `thing`, the data the instance was given (Curator, watching, would re-register
/// `different`, and only after a reconnection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_watched_instances() {
    init_tracing();
    let server = zk_server().await;
    let client = client(&server).await;
    let other = crate::discovery_base::client(&server).await;
    let base = unique_path("test");
    let me = instance("test", "thing", 10064);
    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .this_instance(me.clone())
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");

    assert_eq!(discovery.query_for_names().await.expect("names"), ["test"]);
    assert_eq!(
        discovery.query_for_instances("test").await.expect("query"),
        vec![me.clone()]
    );

    let mut changed: ServiceInstance<String> = me.clone();
    changed.payload = Some("different".to_owned());
    let path = format!("{}/{}", discovery.path_for_name("test"), me.id);
    let bytes = discovery
        .serializer()
        .serialize(&changed)
        .expect("serialize");
    other
        .set_data(&path, &bytes, None)
        .await
        .expect("the outside write");
    // A bounded look: the registered instance does not adopt the outside write.
    tokio::time::sleep(QUIET).await;
    let registered = discovery.registered().await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].payload.as_deref(), Some("thing"));

    let given = discovery.serializer().serialize(&me).expect("serialize");
    assert!(other.delete(&path, None).await.expect("the outside delete"));
    eventually_async(
        "the instance made again with its data",
        DEADLINE,
        || async { matches!(other.get_data(&path).await, Ok(Some((data, _))) if data == given) },
    )
    .await;

    discovery.close().await.expect("close");
    client.close().await;
    other.close().await;
}
