//! Service discovery against Apache Curator 5.4's curator-x-discovery (Debian's
//! `libcurator-discovery-java`): an instance registered by Java is found by Rust with every
//! field equal, and one registered by Rust by Java; both sides write the same bytes for the
//! same instance (string and map payloads); an update on one side is seen on the other; an
//! instance whose session ends goes from both sides' caches; both providers pick as
//! documented.
//!
//! The Java side is `tests/java/CuratorDiscoveryWorker.java`, compiled with `javac` on first
//! use and driven over stdin/stdout. Set `ZK_SKIP_JAVA_INTEROP=1` to skip these tests where
//! Java or Curator is not installed.

use std::time::Duration;

use futures::StreamExt;

use crate::common::java::{self, JavaProcess};
use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::discovery::{
    JsonInstanceSerializer, ServiceCacheEvent, ServiceDiscovery, ServiceInstance, ServiceType,
};
use zk_recipes::testing::expire_session;
use zk_recipes::Client;

const DEADLINE: Duration = Duration::from_secs(30);
const WORKER: &str = "CuratorDiscoveryWorker";

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(6),
        Duration::from_secs(3),
    )
    .await
}

/// The JSONs of Java's answer `<WORD> <n>\t<json>\t...`.
fn jsons(answer: &str) -> Vec<String> {
    answer.split('\t').skip(1).map(str::to_owned).collect()
}

async fn java_query(worker: &mut JavaProcess, command: &str) -> Vec<String> {
    worker.send(command).await;
    let line = worker.expect("INSTANCES", DEADLINE).await;
    jsons(&line)
}

async fn java_do(worker: &mut JavaProcess, command: &str, answer: &str) {
    worker.send(command).await;
    worker.expect(answer, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_instances_are_found_on_both_sides_with_the_same_bytes() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("interop-discovery");
    let client = connect(&server).await;
    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), base.as_str()]).await;
    let strings = ServiceDiscovery::<String>::builder(&client, &base)
        .build()
        .unwrap();
    let maps = ServiceDiscovery::<serde_json::Value>::builder(&client, &base)
        .build()
        .unwrap();

    // Java registers; Rust reads every field, and writes the same bytes back.
    java_do(
        &mut worker,
        "REGISTER svc j1 10.0.0.1 8080 hello from java",
        "REGISTERED j1",
    )
    .await;
    java_do(
        &mut worker,
        "REGISTER_MAP maps j2 10.0.0.2 8081 k1=v1,k2=v2",
        "REGISTERED j2",
    )
    .await;
    let j1 = strings
        .query_for_instance("svc", "j1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            j1.name.as_str(),
            j1.id.as_str(),
            j1.address.as_deref(),
            j1.port,
            j1.ssl_port
        ),
        ("svc", "j1", Some("10.0.0.1"), Some(8080), None)
    );
    assert_eq!(j1.payload.as_deref(), Some("hello from java"));
    assert_eq!(j1.service_type, ServiceType::Dynamic);
    assert!(j1.uri_spec.is_none() && j1.enabled && j1.registration_time_utc > 0);
    let (raw, _) = client
        .get_data(&format!("{base}/svc/j1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(JsonInstanceSerializer::new().serialize(&j1).unwrap()).unwrap(),
        String::from_utf8(raw).unwrap(),
        "Rust writes Java's bytes"
    );
    let j2 = maps
        .query_for_instance("maps", "j2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        j2.payload,
        Some(serde_json::json!({"k1": "v1", "k2": "v2"}))
    );
    let (raw, _) = client
        .get_data(&format!("{base}/maps/j2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(JsonInstanceSerializer::new().serialize(&j2).unwrap()).unwrap(),
        String::from_utf8(raw).unwrap()
    );

    // Rust registers; Java reads it and writes the same bytes back.
    let r1 = ServiceInstance::builder("svc")
        .id("r1")
        .address("10.0.0.3")
        .port(9090)
        .payload("hello from rust".to_owned())
        .build()
        .unwrap();
    strings.register(&r1).await.unwrap();
    let r2 = ServiceInstance::builder("maps")
        .id("r2")
        .address("10.0.0.4")
        .port(9091)
        .payload(serde_json::json!({"zone": "eu", "weight": "3"}))
        .build()
        .unwrap();
    maps.register(&r2).await.unwrap();
    let from_java = java_query(&mut worker, "QUERY svc").await;
    let ours = String::from_utf8(JsonInstanceSerializer::new().serialize(&r1).unwrap()).unwrap();
    assert!(
        from_java.contains(&ours),
        "Java's {from_java:?} holds ours {ours}"
    );
    assert_eq!(from_java.len(), 2);
    let from_java = java_query(&mut worker, "QUERY_MAP maps").await;
    let ours = String::from_utf8(JsonInstanceSerializer::new().serialize(&r2).unwrap()).unwrap();
    assert!(
        from_java.contains(&ours),
        "Java's {from_java:?} holds ours {ours}"
    );

    // Updates, each way.
    let mut moved = r1.clone();
    moved.port = Some(9999);
    strings.update(&moved).await.unwrap();
    let ours = String::from_utf8(JsonInstanceSerializer::new().serialize(&moved).unwrap()).unwrap();
    assert!(java_query(&mut worker, "QUERY svc").await.contains(&ours));
    java_do(
        &mut worker,
        "UPDATE svc j1 10.0.0.1 7070 updated by java",
        "UPDATED j1",
    )
    .await;
    let j1 = strings
        .query_for_instance("svc", "j1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (j1.port, j1.payload.as_deref()),
        (Some(7070), Some("updated by java"))
    );

    // Unregistered on either side: gone for both.
    java_do(&mut worker, "UNREGISTER svc j1", "UNREGISTERED j1").await;
    strings.unregister(&r1).await.unwrap();
    assert!(strings.query_for_instances("svc").await.unwrap().is_empty());
    assert!(java_query(&mut worker, "QUERY svc").await.is_empty());

    worker.quit("QUIT", DEADLINE).await;
    strings.close().await.unwrap();
    maps.close().await.unwrap();
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_and_providers_on_both_sides_follow_sessions_that_end() {
    if java::skip_requested() {
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let base = unique_path("interop-discovery-caches");
    let client = connect(&server).await;
    let reader = connect(&server).await;
    let mut worker = JavaProcess::worker(WORKER, &[server.as_str(), base.as_str()]).await;
    let discovery = ServiceDiscovery::<String>::builder(&client, &base)
        .build()
        .unwrap();
    let r1 = ServiceInstance::builder("svc")
        .id("r1")
        .address("10.0.0.1")
        .port(1)
        .payload("rust".to_owned())
        .build()
        .unwrap();
    discovery.register(&r1).await.unwrap();
    java_do(
        &mut worker,
        "REGISTER svc j1 10.0.0.2 2 java",
        "REGISTERED j1",
    )
    .await;

    // A Rust cache (on another session) and a Java cache of the service.
    let rust_view = ServiceDiscovery::<String>::builder(&reader, &base)
        .build()
        .unwrap();
    let cache = rust_view.service_cache("svc").unwrap();
    cache.start().await.unwrap();
    let mut events = cache.events();
    let ids = || {
        cache
            .instances()
            .iter()
            .map(|i| i.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(), ["j1", "r1"]);
    java_do(&mut worker, "CACHE svc", "CACHED svc").await;

    // Both providers, round robin: each instance every other pick.
    let provider = rust_view.service_provider("svc").build().unwrap();
    provider.start().await.unwrap();
    let picks: Vec<String> = (0..4)
        .map(|_| provider.get_instance().unwrap().id.clone())
        .collect();
    assert_eq!(picks, ["j1", "r1", "j1", "r1"], "in node order");
    java_do(&mut worker, "PROVIDER svc roundrobin", "PROVIDER_READY svc").await;
    worker.send("PICK svc 4").await;
    let picked = worker.expect("PICKED", DEADLINE).await;
    let picked: Vec<&str> = picked["PICKED ".len()..].split(',').collect();
    assert!(
        picked[0] != picked[1] && picked[0] == picked[2] && picked[1] == picked[3],
        "{picked:?}"
    );

    // The Rust instance's session expires: both caches see it go, then come back.
    let info = client.session().zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    worker.expect("CACHE_CHANGED svc j1", DEADLINE).await;
    worker.expect("CACHE_CHANGED svc j1,r1", DEADLINE).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(DEADLINE, events.next())
            .await
            .unwrap()
            .unwrap()
        {
            ServiceCacheEvent::Removed(i) => seen.push(format!("removed {}", i.id)),
            ServiceCacheEvent::Added(i) => seen.push(format!("added {}", i.id)),
            _ => {}
        }
    }
    assert_eq!(seen, ["removed r1", "added r1"]);

    // The Java instances' session ends: gone from the Rust cache and provider.
    java_do(&mut worker, "CRASH", "CRASHED").await;
    loop {
        match tokio::time::timeout(DEADLINE, events.next())
            .await
            .unwrap()
            .unwrap()
        {
            ServiceCacheEvent::Removed(i) if i.id == "j1" => break,
            ServiceCacheEvent::Synced => {}
            other => panic!("only j1's removal, not {other:?}"),
        }
    }
    eventually_async("only r1 left for the provider", DEADLINE, || async {
        provider
            .all_instances()
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>()
            == ["r1"]
    })
    .await;

    worker.quit("QUIT", DEADLINE).await;
    provider.close().await;
    cache.close().await;
    discovery.close().await.unwrap();
    client.close().await;
    reader.close().await;
}
