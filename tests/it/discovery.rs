//! Service discovery against real ZooKeeper: registration on Curator's layout, queries, the
//! cache's events, the providers' strategies and down instances, re-registration after an
//! expired session and after a deletion by someone else, one node after a create whose answer
//! is lost, bad input and bad data in the registry.

use std::time::Duration;

use futures::StreamExt;

use crate::common::{eventually, eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::discovery::{
    DownInstancePolicy, JsonInstanceSerializer, RandomStrategy, RoundRobinStrategy,
    ServiceCacheEvent, ServiceCacheEvents, ServiceDiscovery, ServiceInstance, ServiceType,
    StickyStrategy,
};
use zk_recipes::testing::{expire_session, FaultProxy};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, Error};

const DEADLINE: Duration = Duration::from_secs(30);

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(4),
        Duration::from_secs(2),
    )
    .await
}

fn instance(name: &str, id: &str, port: u16) -> ServiceInstance<String> {
    ServiceInstance::builder(name)
        .id(id)
        .address("10.0.0.1")
        .port(port)
        .payload(format!("payload of {id}"))
        .build()
        .unwrap()
}

async fn next_event(events: &mut ServiceCacheEvents<String>) -> ServiceCacheEvent<String> {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("a cache event in time")
        .expect("the stream is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_registered_on_curators_layout_queried_updated_and_unregistered() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let observer = connect(&server).await;
    let base = unique_path("discovery");
    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .build()
        .unwrap();
    assert!(discovery.query_for_names().await.unwrap().is_empty());

    let dynamic = instance("billing", "a", 8080);
    let stat = ServiceInstance::builder("billing")
        .id("b")
        .port(8081)
        .service_type(ServiceType::Static)
        .build()
        .unwrap();
    let sequential = ServiceInstance::builder("orders")
        .id("c")
        .service_type(ServiceType::DynamicSequential)
        .payload("seq".to_owned())
        .build()
        .unwrap();
    for i in [&dynamic, &stat, &sequential] {
        discovery.register(i).await.unwrap();
    }

    // The nodes: ephemeral for dynamic, persistent for static, with Curator's JSON.
    let (data, node) = observer
        .get_data(&format!("{base}/billing/a"))
        .await
        .unwrap()
        .unwrap();
    assert!(client.session().owns(&node));
    assert_eq!(
        data,
        JsonInstanceSerializer::new().serialize(&dynamic).unwrap()
    );
    let (_, node) = observer
        .get_data(&format!("{base}/billing/b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(node.ephemeral_owner, 0);
    let orders = observer
        .children(&format!("{base}/orders"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(orders.len(), 1);
    assert!(
        orders[0].starts_with("_c_") && orders[0].contains("-c00"),
        "{orders:?}"
    );

    assert_eq!(
        discovery.query_for_names().await.unwrap(),
        ["billing", "orders"]
    );
    let found = discovery.query_for_instances("billing").await.unwrap();
    assert_eq!(found, [dynamic.clone(), stat.clone()]);
    assert_eq!(
        discovery.query_for_instances("orders").await.unwrap(),
        std::slice::from_ref(&sequential)
    );
    assert_eq!(
        discovery.query_for_instance("billing", "a").await.unwrap(),
        Some(dynamic.clone())
    );
    assert_eq!(
        discovery.query_for_instance("billing", "zz").await.unwrap(),
        None
    );

    let mut moved = dynamic.clone();
    moved.port = Some(9090);
    discovery.update(&moved).await.unwrap();
    assert_eq!(
        discovery.query_for_instance("billing", "a").await.unwrap(),
        Some(moved.clone())
    );
    // Registering a registered id updates it.
    let mut again = moved.clone();
    again.payload = Some("again".to_owned());
    discovery.register(&again).await.unwrap();
    assert_eq!(
        discovery.query_for_instance("billing", "a").await.unwrap(),
        Some(again.clone())
    );
    assert!(matches!(
        discovery
            .update(&instance("billing", "not-registered", 1))
            .await,
        Err(Error::InvalidArgument(_))
    ));

    discovery.unregister(&again).await.unwrap();
    discovery.unregister(&again).await.unwrap();
    assert_eq!(
        discovery.query_for_instances("billing").await.unwrap(),
        std::slice::from_ref(&stat)
    );
    discovery.unregister(&sequential).await.unwrap();
    assert!(observer
        .children(&format!("{base}/orders"))
        .await
        .unwrap()
        .unwrap_or_default()
        .is_empty());
    discovery.close().await.unwrap();
    assert!(discovery
        .query_for_instances("billing")
        .await
        .unwrap()
        .is_empty());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_registered_again_after_an_expired_session_and_a_deletion() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let observer = connect(&server).await;
    let base = unique_path("discovery-kept");
    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .this_instance(instance("svc", "me", 1))
        .build()
        .unwrap();
    discovery.start().await.unwrap();
    let path = format!("{base}/svc/me");
    let mut updated = instance("svc", "me", 2);
    updated.registration_time_utc = 0;
    discovery.update(&updated).await.unwrap();
    let expected = JsonInstanceSerializer::new().serialize(&updated).unwrap();

    let old = client.session();
    let info = old.zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    eventually_async("registered again on a new session", DEADLINE, || async {
        let session = client.session();
        session.generation() > old.generation()
            && observer
                .get_data(&path)
                .await
                .unwrap()
                .is_some_and(|(data, stat)| data == expected && session.owns(&stat))
    })
    .await;

    assert!(observer.delete(&path, None).await.unwrap());
    eventually_async("registered again after a deletion", DEADLINE, || async {
        observer
            .get_data(&path)
            .await
            .unwrap()
            .is_some_and(|(data, _)| data == expected)
    })
    .await;
    discovery.close().await.unwrap();
    assert!(observer.exists(&path).await.unwrap().is_none());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_whose_create_answer_is_lost_leaves_one_node() {
    init_tracing();
    let server = zk_server().await;
    let observer = connect(&server).await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connection_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let base = unique_path("discovery-lost-answer");
    let service = format!("{base}/svc");
    observer.ensure_path(&service, false).await.unwrap();
    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .build()
        .unwrap();
    for (id, service_type) in [
        ("d", ServiceType::Dynamic),
        ("s", ServiceType::DynamicSequential),
    ] {
        let registered = ServiceInstance::builder("svc")
            .id(id)
            .service_type(service_type)
            .build()
            .unwrap();
        // The create reaches the server 300 ms after it is sent, its answer would take 300 ms
        // more: the connection is cut as soon as the node is seen on the server.
        proxy.delay(Duration::from_millis(300));
        let register = discovery.register(&registered);
        let cut = async {
            eventually_async("the node on the server", DEADLINE, || async {
                observer
                    .children(&service)
                    .await
                    .unwrap()
                    .unwrap_or_default()
                    .iter()
                    .any(|child| child.contains(id))
            })
            .await;
            proxy.cut();
            proxy.restore();
        };
        let (registered_outcome, ()) = tokio::join!(register, cut);
        registered_outcome.unwrap();
        let nodes: Vec<String> = observer
            .children(&service)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .filter(|child| child.contains(id))
            .collect();
        assert_eq!(nodes.len(), 1, "{service_type:?}: {nodes:?}");
    }
    discovery.close().await.unwrap();
    assert!(observer
        .children(&service)
        .await
        .unwrap()
        .unwrap_or_default()
        .is_empty());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_cache_reports_every_change_and_skips_bad_data() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let writer = connect(&server).await;
    let base = unique_path("discovery-cache");
    let registry = ServiceDiscovery::<String>::builder(&writer, &base)
        .build()
        .unwrap();
    registry.register(&instance("svc", "a", 1)).await.unwrap();
    // Bad data in the registry: not JSON, and a payload of the wrong type.
    writer
        .create(
            &format!("{base}/svc/garbage"),
            b"not json",
            CreateMode::Persistent,
            &[],
        )
        .await
        .unwrap();
    writer
        .create(
            &format!("{base}/svc/number"),
            br#"{"name":"svc","id":"number","payload":5}"#,
            CreateMode::Persistent,
            &[],
        )
        .await
        .unwrap();

    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .build()
        .unwrap();
    let cache = discovery.service_cache("svc").unwrap();
    let mut events = cache.events();
    cache.start().await.unwrap();
    let ids = |cache: &zk_recipes::ServiceCache<String>| {
        cache
            .instances()
            .iter()
            .map(|i| i.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&cache), ["a"]);
    assert!(matches!(next_event(&mut events).await, ServiceCacheEvent::Added(i) if i.id == "a"));
    assert!(matches!(
        next_event(&mut events).await,
        ServiceCacheEvent::Synced
    ));
    assert_eq!(
        discovery.query_for_instances("svc").await.unwrap().len(),
        1,
        "queries skip bad data too"
    );
    assert!(matches!(
        discovery.query_for_instance("svc", "garbage").await,
        Err(Error::MalformedData(_))
    ));

    registry.register(&instance("svc", "b", 2)).await.unwrap();
    assert!(matches!(next_event(&mut events).await, ServiceCacheEvent::Added(i) if i.id == "b"));
    registry.update(&instance("svc", "b", 3)).await.unwrap();
    match next_event(&mut events).await {
        ServiceCacheEvent::Updated { old, new } => {
            assert_eq!((old.port, new.port), (Some(2), Some(3)));
        }
        other => panic!("an update, not {other:?}"),
    }
    // A node that starts holding an instance is added; one that stops, removed.
    writer
        .set_data(
            &format!("{base}/svc/garbage"),
            &JsonInstanceSerializer::new()
                .serialize(&instance("svc", "fixed", 4))
                .unwrap(),
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(next_event(&mut events).await, ServiceCacheEvent::Added(i) if i.id == "fixed")
    );
    writer
        .set_data(&format!("{base}/svc/garbage"), b"broken again", None)
        .await
        .unwrap();
    assert!(
        matches!(next_event(&mut events).await, ServiceCacheEvent::Removed(i) if i.id == "fixed")
    );
    registry.unregister(&instance("svc", "a", 1)).await.unwrap();
    assert!(matches!(next_event(&mut events).await, ServiceCacheEvent::Removed(i) if i.id == "a"));
    assert_eq!(ids(&cache), ["b"]);
    cache.close().await;
    assert!(tokio::time::timeout(DEADLINE, events.next())
        .await
        .unwrap()
        .is_none());
    registry.close().await.unwrap();
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_pick_by_their_strategy_and_skip_down_and_disabled_instances() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let base = unique_path("discovery-provider");
    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .build()
        .unwrap();
    for (id, port) in [("a", 1), ("b", 2), ("c", 3)] {
        discovery
            .register(&instance("svc", id, port))
            .await
            .unwrap();
    }
    let disabled = ServiceInstance::builder("svc")
        .id("d")
        .enabled(false)
        .build()
        .unwrap();
    // Curator's default serializer leaves `enabled` out: a disabled instance needs the other.
    let writer = ServiceDiscovery::<String>::builder(&client, &base)
        .serializer(JsonInstanceSerializer::new().compatible(false))
        .build()
        .unwrap();
    writer.register(&disabled).await.unwrap();

    let round_robin = discovery.service_provider("svc").build().unwrap();
    round_robin.start().await.unwrap();
    let picks = |n: usize| {
        (0..n)
            .map(|_| {
                round_robin
                    .get_instance()
                    .map(|i| i.id.clone())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(picks(6), ["a", "b", "c", "a", "b", "c"]);

    let sticky = discovery
        .service_provider("svc")
        .strategy(StickyStrategy::new(RoundRobinStrategy::new()))
        .down_instance_policy(DownInstancePolicy {
            timeout: Duration::from_secs(60),
            error_threshold: 2,
        })
        .build()
        .unwrap();
    sticky.start().await.unwrap();
    let first = sticky.get_instance().unwrap();
    assert_eq!(first.id, "a");
    for _ in 0..5 {
        assert_eq!(sticky.get_instance().unwrap().id, "a");
    }
    // Down after two errors: the sticky provider moves on.
    sticky.note_error(&first);
    assert_eq!(
        sticky.get_instance().unwrap().id,
        "a",
        "one error is below the threshold"
    );
    sticky.note_error(&first);
    let moved = sticky.get_instance().unwrap();
    assert_ne!(moved.id, "a");
    assert!(sticky
        .all_instances()
        .iter()
        .all(|i| i.id != "a" && i.id != "d"));

    let random = discovery
        .service_provider("svc")
        .strategy(RandomStrategy)
        .filter(|i| i.port != Some(3))
        .build()
        .unwrap();
    random.start().await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.insert(random.get_instance().unwrap().id.clone());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);

    // An instance that goes is no longer given.
    discovery
        .unregister(&instance("svc", "b", 2))
        .await
        .unwrap();
    eventually("b gone from the provider", DEADLINE, || {
        round_robin.all_instances().iter().all(|i| i.id != "b")
    })
    .await;
    for provider in [&round_robin, &sticky, &random] {
        provider.close().await;
    }
    discovery.close().await.unwrap();
    writer.close().await.unwrap();
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_error_and_leaves_nothing() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let base = unique_path("discovery-bad-input");
    assert!(matches!(
        ServiceDiscovery::<String>::builder(&client, "no-slash").build(),
        Err(Error::InvalidPath { .. })
    ));
    let discovery =
        ServiceDiscovery::<std::collections::HashMap<(u8, u8), String>>::builder(&client, &base)
            .build()
            .unwrap();
    // A payload that does not serialize (a map with non-string keys).
    let unserializable = ServiceInstance::builder("svc")
        .id("x")
        .payload(std::collections::HashMap::from([((1, 2), "v".to_owned())]))
        .build()
        .unwrap();
    assert!(matches!(
        discovery.register(&unserializable).await,
        Err(Error::InvalidArgument(_))
    ));
    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .build()
        .unwrap();
    let mut bad = instance("svc", "ok", 1);
    for (name, id) in [
        ("", "a"),
        ("a/b", "a"),
        ("svc", ""),
        ("svc", "a/b"),
        ("svc", ".."),
    ] {
        bad.name = name.to_owned();
        bad.id = id.to_owned();
        assert!(
            matches!(
                discovery.register(&bad).await,
                Err(Error::InvalidPath { .. })
            ),
            "{name:?} {id:?}"
        );
    }
    assert!(matches!(
        discovery.query_for_instances("a/b").await,
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(
        discovery.service_cache(""),
        Err(Error::InvalidPath { .. })
    ));
    let mut huge = instance("svc", "huge", 1);
    huge.payload = Some("x".repeat(client.max_request_size()));
    assert!(matches!(
        discovery.register(&huge).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(
        client.exists(&base).await.unwrap().is_none(),
        "nothing left"
    );
    client.close().await;
}
