//! Curator's `TestJsonInstanceSerializer` (curator-x-discovery), ported to
//! [`JsonInstanceSerializer`].
//!
//! Curator's serializer is made for a payload class (`new JsonInstanceSerializer<>(String.class)`);
//! this crate's is typed by the payload (`JsonInstanceSerializer::<String>::new()`), and the
//! Java class named in an object payload's `"@class"` is [`payload_class`]. Java's `Object`
//! payload is [`serde_json::Value`], `Void` is `()`. Curator's second constructor argument,
//! `compatibleSerializationMode = false`, is `.compatible(false)`.
//!
//! Besides Curator's round trips, each port compares the bytes with those Curator 5.4 writes
//! for the same instance (see `discovery_base`), so a round trip that agrees with itself but
//! not with Java fails.
//!
//! These are plain tests: no server.
//!
//! Not ported: none.
//!
//! [`payload_class`]: JsonInstanceSerializer::payload_class

use serde::{Deserialize, Serialize};
use serde_json::json;
use zk_recipes::discovery::{JsonInstanceSerializer, ServiceInstance};
use zk_recipes::Error;

use crate::discovery_base::{
    curator_basic, curator_bean_payload, curator_list_payload, curator_map_payload,
    curator_no_payload, serializer_instance, PAYLOAD_CLASS,
};

/// Curator's `TestJsonInstanceSerializer.Payload`: a bean with one property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub val: String,
}

/// Curator's field-by-field checks after a round trip (`assertEquals(instance, rhs)` and
/// each getter).
fn assert_same<P: PartialEq + std::fmt::Debug>(
    instance: &ServiceInstance<P>,
    rhs: &ServiceInstance<P>,
) {
    assert_eq!(instance, rhs);
    assert_eq!(instance.id, rhs.id);
    assert_eq!(instance.name, rhs.name);
    assert_eq!(instance.payload, rhs.payload);
    assert_eq!(instance.address, rhs.address);
    assert_eq!(instance.port, rhs.port);
    assert_eq!(instance.ssl_port, rhs.ssl_port);
    assert_eq!(instance.uri_spec, rhs.uri_spec);
    assert_eq!(instance.enabled, rhs.enabled);
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

/// Curator: `TestJsonInstanceSerializer.testBasic`.
///
/// A `String` payload: the instance read back equals the one written, field by field. The
/// port also checks that the bytes are Curator 5.4's for the same instance.
#[test]
fn test_basic() {
    let serializer = JsonInstanceSerializer::<String>::new();
    let instance = serializer_instance(Some("payload".to_owned()), true);
    let bytes = serializer.serialize(&instance).expect("serialize");
    assert_eq!(text(&bytes), curator_basic());

    let rhs = serializer.deserialize(&bytes).expect("deserialize");
    assert_same(&instance, &rhs);
}

/// Curator: `TestJsonInstanceSerializer.testWrongPayloadType`.
///
/// An instance written with a `String` payload is read with a `Double` serializer: Curator's
/// `deserialize` throws `ClassCastException`; this crate's returns [`Error::MalformedData`]
/// (its typed payload cannot be read as an `f64`).
#[test]
fn test_wrong_payload_type() {
    let bytes = JsonInstanceSerializer::<String>::new()
        .serialize(&serializer_instance(Some("payload".to_owned()), true))
        .expect("serialize");
    let read = JsonInstanceSerializer::<f64>::new().deserialize(&bytes);
    assert!(matches!(read, Err(Error::MalformedData(_))), "{read:?}");
}

/// Curator: `TestJsonInstanceSerializer.testNoPayload`.
///
/// No payload (Curator: `Void`, a `null` payload; here `()`, no payload): the round trip is
/// equal, and the bytes are Curator's (`"payload":null`).
#[test]
fn test_no_payload() {
    let serializer = JsonInstanceSerializer::<()>::new();
    let instance = serializer_instance(None, true);
    let bytes = serializer.serialize(&instance).expect("serialize");
    assert_eq!(text(&bytes), curator_no_payload());

    let rhs = serializer.deserialize(&bytes).expect("deserialize");
    assert_eq!(rhs.payload, None);
    assert_same(&instance, &rhs);
}

/// Curator: `TestJsonInstanceSerializer.testNoEnabledState`.
///
/// An instance with no `enabled` (`{}`) is read as enabled.
#[test]
fn test_no_enabled_state() {
    let instance = JsonInstanceSerializer::<()>::new()
        .deserialize(b"{}")
        .expect("deserialize");
    assert!(
        instance.enabled,
        "an instance that has no 'enabled' should be assumed enabled"
    );
}

/// Curator: `TestJsonInstanceSerializer.testPayloadAsList`.
///
/// An `Object` payload that is a list (here a [`serde_json::Value`] array), written by the
/// non-compatible serializer with `enabled` false: the bytes are Curator's (the list wrapped
/// as `["java.util.ArrayList", [...]]`, `"enabled":false` last), and the round trip is equal,
/// `enabled` false included.
#[test]
fn test_payload_as_list() {
    let serializer = JsonInstanceSerializer::<serde_json::Value>::new().compatible(false);
    let instance = serializer_instance(Some(json!(["Test value 1", "Test value 2"])), false);
    let bytes = serializer.serialize(&instance).expect("serialize");
    assert_eq!(text(&bytes), curator_list_payload());

    let rhs = serializer.deserialize(&bytes).expect("deserialize");
    assert!(!rhs.enabled);
    assert_same(&instance, &rhs);
}

/// Curator: `TestJsonInstanceSerializer.testPayloadAsMap`.
///
/// An `Object` payload that is a map (Curator: a `HashMap`; here a [`serde_json::Value`]
/// object, its class set to `java.util.HashMap` as Curator names it), non-compatible,
/// `enabled` false: the bytes are Curator's (`"@class"` first in the payload), and the round
/// trip is equal (the `"@class"` taken off).
#[test]
fn test_payload_as_map() {
    let serializer = JsonInstanceSerializer::<serde_json::Value>::new()
        .compatible(false)
        .payload_class("java.util.HashMap");
    let instance = serializer_instance(
        Some(json!({"1": "Test value 1", "2": "Test value 2"})),
        false,
    );
    let bytes = serializer.serialize(&instance).expect("serialize");
    assert_eq!(text(&bytes), curator_map_payload());

    let rhs = serializer.deserialize(&bytes).expect("deserialize");
    assert_same(&instance, &rhs);
}

/// Curator: `TestJsonInstanceSerializer.testPayloadClass`.
///
/// A bean payload (Curator's `Payload` class; here a serde struct, its Java class given with
/// [`payload_class`](JsonInstanceSerializer::payload_class)): the bytes are Curator's, and
/// the round trip is equal.
#[test]
fn test_payload_class() {
    let serializer = JsonInstanceSerializer::<Payload>::new().payload_class(PAYLOAD_CLASS);
    let instance = serializer_instance(
        Some(Payload {
            val: "Test value".to_owned(),
        }),
        true,
    );
    let bytes = serializer.serialize(&instance).expect("serialize");
    assert_eq!(text(&bytes), curator_bean_payload("Test value"));

    let rhs = serializer.deserialize(&bytes).expect("deserialize");
    assert_same(&instance, &rhs);
}
