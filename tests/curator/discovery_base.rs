//! What the ports of Curator's curator-x-discovery tests (`curator-x-discovery/src/test`,
//! Curator 5.4) share: instances built as Curator's tests build them, the cache's changes
//! read under a deadline, and the bytes Curator 5.4 writes for the tests' instances.
//!
//! Curator's `ServiceCacheListener.cacheChanged()` is one [`ServiceCacheEvent`] that changes
//! the instances (`Added`, `Updated`, `Removed`); [`ServiceCacheEvent::Synced`] (the cache has
//! read the service in full) has no counterpart among Curator's listener calls, so
//! [`next_change`] skips it. Curator's `discovery.registerService(..)` is
//! [`ServiceDiscovery::register`](zk_recipes::discovery::ServiceDiscovery::register), which
//! returns once the instance's node is on the server (Curator's returns once its create did).
//!
//! The golden bytes ([`CURATOR_BASIC`], ...) were written by Curator 5.4's own
//! `JsonInstanceSerializer` (Debian's `libcurator-discovery-java` 5.4.0, Jackson 2.14) for the
//! instances the Java tests build, and by a plain `ObjectMapper` for the tests' "old" and
//! "new" instance classes, so that the ports compare with what Curator writes, not with what
//! this crate believes it writes.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use zk_recipes::discovery::{
    ServiceCacheEvent, ServiceCacheEvents, ServiceInstance, ServiceType, UriSpec,
};

pub use crate::nodes_base::{client, session_info, DEADLINE, QUIET};

/// Curator's `ServiceInstance.<String>builder().payload(payload).name(name).port(port).build()`:
/// a random id, registered now. (Curator's builder also gives it a local IP address; this
/// crate's gives none, a documented difference.)
pub fn instance(name: &str, payload: &str, port: u16) -> ServiceInstance<String> {
    ServiceInstance::builder(name)
        .payload(payload.to_owned())
        .port(port)
        .build()
        .expect("an instance")
}

/// The instance most of Curator's serializer tests build:
/// `new ServiceInstance<>("name", "id", "address", 10, 20, payload, 0, ServiceType.DYNAMIC,
/// new UriSpec("{a}/b/{c}"), enabled)`.
pub fn serializer_instance<P>(payload: Option<P>, enabled: bool) -> ServiceInstance<P> {
    let builder = ServiceInstance::builder("name")
        .id("id")
        .address("address")
        .port(10)
        .ssl_port(20)
        .registration_time_utc(0)
        .service_type(ServiceType::Dynamic)
        .uri_spec(UriSpec::parse("{a}/b/{c}").expect("the tests' URI spec"))
        .enabled(enabled);
    let builder = match payload {
        Some(payload) => builder.payload(payload),
        None => builder,
    };
    builder.build().expect("an instance")
}

/// The `uriSpec` Curator writes for `new UriSpec("{a}/b/{c}")`.
const URI_SPEC: &str = r#""uriSpec":{"parts":[{"value":"a","variable":true},{"value":"/b/","variable":false},{"value":"c","variable":true}]}"#;

/// What Curator 5.4's `JsonInstanceSerializer<>(String.class)` writes for
/// [`serializer_instance`] with the payload `"payload"` (and `enabled` true).
pub fn curator_basic() -> String {
    format!(
        r#"{{"name":"name","id":"id","address":"address","port":10,"sslPort":20,"payload":"payload","registrationTimeUTC":0,"serviceType":"DYNAMIC",{URI_SPEC}}}"#
    )
}

/// What Curator 5.4's `JsonInstanceSerializer<>(Void.class)` writes for
/// [`serializer_instance`] without a payload.
pub fn curator_no_payload() -> String {
    format!(
        r#"{{"name":"name","id":"id","address":"address","port":10,"sslPort":20,"payload":null,"registrationTimeUTC":0,"serviceType":"DYNAMIC",{URI_SPEC}}}"#
    )
}

/// What Curator 5.4's `JsonInstanceSerializer<>(Object.class, false)` writes for
/// [`serializer_instance`] with the list payload `["Test value 1", "Test value 2"]` and
/// `enabled` false.
pub fn curator_list_payload() -> String {
    format!(
        r#"{{"name":"name","id":"id","address":"address","port":10,"sslPort":20,"payload":["java.util.ArrayList",["Test value 1","Test value 2"]],"registrationTimeUTC":0,"serviceType":"DYNAMIC",{URI_SPEC},"enabled":false}}"#
    )
}

/// What Curator 5.4's `JsonInstanceSerializer<>(Object.class, false)` writes for
/// [`serializer_instance`] with the `HashMap` payload `{"1": "Test value 1", "2": "Test
/// value 2"}` and `enabled` false.
pub fn curator_map_payload() -> String {
    format!(
        r#"{{"name":"name","id":"id","address":"address","port":10,"sslPort":20,"payload":{{"@class":"java.util.HashMap","1":"Test value 1","2":"Test value 2"}},"registrationTimeUTC":0,"serviceType":"DYNAMIC",{URI_SPEC},"enabled":false}}"#
    )
}

/// The Java class of the tests' bean payload, `TestJsonInstanceSerializer.Payload`, as
/// Jackson names it in `"@class"`.
pub const PAYLOAD_CLASS: &str = "org.apache.curator.x.discovery.TestJsonInstanceSerializer$Payload";

/// What Curator 5.4's `JsonInstanceSerializer<>(Payload.class)` writes for
/// [`serializer_instance`] with the bean payload `Payload("<val>")` (in compatible mode, the
/// default: the same bytes whatever `enabled` is). For `val` = `test` these are also the
/// bytes a plain `ObjectMapper` writes for Curator's `OldServiceInstance` (the format before
/// `enabled`).
pub fn curator_bean_payload(val: &str) -> String {
    format!(
        r#"{{"name":"name","id":"id","address":"address","port":10,"sslPort":20,"payload":{{"@class":"{PAYLOAD_CLASS}","val":"{val}"}},"registrationTimeUTC":0,"serviceType":"DYNAMIC",{URI_SPEC}}}"#
    )
}

/// What a plain `ObjectMapper` writes for Curator's test class `TestNewServiceInstance`
/// (`testFutureChanges`): the instance's fields, `enabled` false, and four fields a future
/// Curator might add (a string, a long, a `Date`, a `URI`). Curator's test uses `new Date()`;
/// this one was written with a fixed date.
pub fn curator_future_instance() -> String {
    format!(
        r#"{{"name":"name","id":"id","address":"address","port":10,"sslPort":20,"payload":"hey","registrationTimeUTC":0,"serviceType":"DYNAMIC",{URI_SPEC},"enabled":false,"new1":"what","new2":10101,"new3":1700000000000,"new4":"http://hey"}}"#
    )
}

/// True for the events Curator reports with `cacheChanged()`.
fn is_change<P>(event: &ServiceCacheEvent<P>) -> bool {
    !matches!(event, ServiceCacheEvent::Synced)
}

/// The next change of the cache (Curator's `cacheChanged()`), within [`DEADLINE`];
/// [`ServiceCacheEvent::Synced`] is skipped.
pub async fn next_change<P>(events: &mut ServiceCacheEvents<P>) -> ServiceCacheEvent<P> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = events.next().await.expect("the cache's events are open");
            if is_change(&event) {
                return event;
            }
        }
    })
    .await
    .expect("a cache change in time")
}

/// The events of the cache's initial load, followed from before its start: every event
/// before the first [`ServiceCacheEvent::Synced`], which is awaited under [`DEADLINE`]. (This
/// crate reports the instances found by the initial load, as `Added`, to a stream asked for
/// before the start; Curator calls no `cacheChanged()` during the initial load.)
pub async fn initial_load<P>(events: &mut ServiceCacheEvents<P>) -> Vec<ServiceCacheEvent<P>> {
    tokio::time::timeout(DEADLINE, async {
        let mut load = Vec::new();
        loop {
            match events.next().await.expect("the cache's events are open") {
                ServiceCacheEvent::Synced => return load,
                event => load.push(event),
            }
        }
    })
    .await
    .expect("the initial load in time")
}

/// No change of the cache within `within` (a bounded look, to show that nothing happens).
pub async fn expect_no_change<P: Debug>(events: &mut ServiceCacheEvents<P>, within: Duration) {
    let more = tokio::time::timeout(within, async {
        loop {
            match events.next().await {
                Some(event) if is_change(&event) => return Some(event),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    if let Ok(Some(event)) = more {
        panic!("unexpected cache change {event:?}");
    }
}

/// The instance an event is about (the new one for an update).
pub fn instance_of<P>(event: &ServiceCacheEvent<P>) -> &ServiceInstance<P> {
    match event {
        ServiceCacheEvent::Added(instance) | ServiceCacheEvent::Removed(instance) => instance,
        ServiceCacheEvent::Updated { new, .. } => new,
        other => panic!("not an instance's event: {}", kind(other)),
    }
}

/// The event's kind, for messages.
pub fn kind<P>(event: &ServiceCacheEvent<P>) -> &'static str {
    match event {
        ServiceCacheEvent::Added(_) => "Added",
        ServiceCacheEvent::Updated { .. } => "Updated",
        ServiceCacheEvent::Removed(_) => "Removed",
        ServiceCacheEvent::Synced => "Synced",
        _ => "another event",
    }
}
