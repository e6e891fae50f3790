//! Curator's `TestJsonInstanceSerializerCompatibility` (curator-x-discovery,
//! `details/`), ported to [`JsonInstanceSerializer`].
//!
//! Curator's tests compare its serializer with Jackson's plain `ObjectMapper` writing and
//! reading its `OldServiceInstance` (the format before `enabled`) and its test class
//! `TestNewServiceInstance` (a format with fields a future Curator might add). There is no
//! Jackson here: the bytes those write are the golden bytes of `discovery_base` (written by
//! Curator 5.4 and Jackson), and the strict `ObjectMapper` reading an `OldServiceInstance`
//! (which fails on an unknown property, such as `enabled`) is a serde struct with
//! `deny_unknown_fields`. Curator's serializer is made with its package-private
//! `failOnUnknownProperties = true` in two tests; it only writes there, or reads bytes
//! without unknown properties, so this crate's reader (which ignores unknown properties, as
//! Curator's public constructors make it) is the same for them.
//!
//! These are plain tests: no server.
//!
//! Not ported: none (`TestNewServiceInstance` is a helper class of Curator's tests, not a
//! test).

use serde::Deserialize;
use serde_json::json;
use zk_recipes::discovery::{JsonInstanceSerializer, ServiceType, UriSpec};

use crate::discovery_base::{
    curator_bean_payload, curator_future_instance, serializer_instance, PAYLOAD_CLASS,
};
use crate::test_json_instance_serializer::Payload;

/// Curator's `OldServiceInstance` as a strict `ObjectMapper` reads it: the nine fields before
/// `enabled`, and no other.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OldServiceInstance {
    name: String,
    id: String,
    address: Option<String>,
    port: Option<u16>,
    ssl_port: Option<u16>,
    payload: serde_json::Value,
    #[serde(rename = "registrationTimeUTC")]
    registration_time_utc: i64,
    service_type: ServiceType,
    uri_spec: Option<UriSpec>,
}

fn payload_serializer() -> JsonInstanceSerializer<Payload> {
    JsonInstanceSerializer::new().payload_class(PAYLOAD_CLASS)
}

fn test_payload() -> Payload {
    Payload {
        val: "test".to_owned(),
    }
}

/// Curator: `TestJsonInstanceSerializerCompatibility.testCompatibilityMode`.
///
/// In compatible mode (the default) the serializer writes exactly the bytes Jackson writes
/// for the same fields of an `OldServiceInstance` (the golden bytes).
#[test]
fn test_compatibility_mode() {
    let bytes = payload_serializer()
        .serialize(&serializer_instance(Some(test_payload()), true))
        .expect("serialize");
    assert_eq!(
        std::str::from_utf8(&bytes).expect("UTF-8"),
        curator_bean_payload("test")
    );
}

/// Curator: `TestJsonInstanceSerializerCompatibility.testBackwardCompatibility`.
///
/// An instance with `enabled` false, written in compatible mode, reads back enabled (the
/// state is not written). The bytes read as an `OldServiceInstance` by a reader that fails
/// on unknown properties (so no `enabled`), its payload of Curator's `Payload` class, and
/// every field matches the instance read back.
#[test]
fn test_backward_compatibility() {
    let serializer = payload_serializer();
    let bytes = serializer
        .serialize(&serializer_instance(Some(test_payload()), false))
        .expect("serialize");
    let instance = serializer.deserialize(&bytes).expect("deserialize");
    assert!(
        instance.enabled,
        "enabled=false is lost in compatible mode, and read as true"
    );

    let check: OldServiceInstance =
        serde_json::from_slice(&bytes).expect("the bytes read as an OldServiceInstance");
    assert_eq!(
        check.payload,
        json!({"@class": PAYLOAD_CLASS, "val": "test"}),
        "the payload is of Curator's Payload class"
    );
    assert_eq!(check.name, instance.name);
    assert_eq!(check.id, instance.id);
    assert_eq!(check.address, instance.address);
    assert_eq!(check.port, instance.port);
    assert_eq!(check.ssl_port, instance.ssl_port);
    assert_eq!(Some(test_payload()), instance.payload);
    assert_eq!(check.registration_time_utc, instance.registration_time_utc);
    assert_eq!(check.service_type, instance.service_type);
    assert_eq!(check.uri_spec, instance.uri_spec);
}

/// Curator: `TestJsonInstanceSerializerCompatibility.testForwardCompatibility`.
///
/// The bytes Jackson writes for an `OldServiceInstance` (golden) are read by the default
/// serializer: every field is the old instance's, and the instance is enabled.
#[test]
fn test_forward_compatibility() {
    let old_json = curator_bean_payload("test");
    let old = serializer_instance(Some(test_payload()), true);
    let instance = payload_serializer()
        .deserialize(old_json.as_bytes())
        .expect("deserialize");
    assert_eq!(old.name, instance.name);
    assert_eq!(old.id, instance.id);
    assert_eq!(old.address, instance.address);
    assert_eq!(old.port, instance.port);
    assert_eq!(old.ssl_port, instance.ssl_port);
    assert_eq!(old.payload, instance.payload);
    assert_eq!(old.registration_time_utc, instance.registration_time_utc);
    assert_eq!(old.service_type, instance.service_type);
    assert_eq!(old.uri_spec, instance.uri_spec);
    assert!(instance.enabled);
}

/// Curator: `TestJsonInstanceSerializerCompatibility.testFutureChanges`.
///
/// The bytes Jackson writes for Curator's `TestNewServiceInstance` (golden: `enabled` false
/// and four new properties, a string, a long, a date and a URI) are read by the default
/// `String` serializer: the new properties are ignored, and the name, the payload and
/// `enabled` false are read.
#[test]
fn test_future_changes() {
    let instance = JsonInstanceSerializer::<String>::new()
        .deserialize(curator_future_instance().as_bytes())
        .expect("deserialize");
    assert_eq!(instance.name, "name");
    assert_eq!(instance.payload.as_deref(), Some("hey"));
    assert!(!instance.enabled);
}
