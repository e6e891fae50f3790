//! [`ServiceInstance`], [`ServiceType`], [`UriSpec`], and their JSON: Curator 5.4's
//! `JsonInstanceSerializer`, byte for byte.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zookeeper_client::CreateMode;

use crate::error::{Error, Result};

/// What a service instance's payload can be: any type serde can write to JSON and read back.
///
/// A string, a number or a boolean is written as itself; a JSON object gets Curator's `"@class"`
/// type property, and an array Curator's `["<class>", [...]]` wrapper, so that Java reads them
/// (see [`JsonInstanceSerializer::payload_class`]). `()` is a service without a payload (its
/// JSON `null`).
pub trait Payload: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Payload for T {}

/// How an instance is registered (Curator's `ServiceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// An ephemeral node: the instance goes with its session (Curator's default).
    #[default]
    Dynamic,
    /// A persistent node.
    Static,
    /// A persistent node, meant to stay.
    Permanent,
    /// An ephemeral-sequential node: `<id>` followed by a sequence number (here with
    /// Curator's protection prefix, so that a create whose answer is lost leaves one node).
    DynamicSequential,
}

impl ServiceType {
    /// True for the types that go with their session (Curator's `isDynamic`).
    pub fn is_dynamic(self) -> bool {
        matches!(self, ServiceType::Dynamic | ServiceType::DynamicSequential)
    }

    /// The mode of the instance's node.
    pub(crate) fn create_mode(self) -> CreateMode {
        match self {
            ServiceType::Dynamic => CreateMode::Ephemeral,
            ServiceType::DynamicSequential => CreateMode::EphemeralSequential,
            ServiceType::Static | ServiceType::Permanent => CreateMode::Persistent,
        }
    }

    fn lower_name(self) -> &'static str {
        match self {
            ServiceType::Dynamic => "dynamic",
            ServiceType::Static => "static",
            ServiceType::Permanent => "permanent",
            ServiceType::DynamicSequential => "dynamic_sequential",
        }
    }
}

/// One part of a [`UriSpec`]: a literal, or a variable's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UriPart {
    /// The literal text, or the variable's name.
    #[serde(default)]
    pub value: String,
    /// True for a variable.
    #[serde(default)]
    pub variable: bool,
}

/// A URI template (Curator's `UriSpec`): `{scheme}://{address}:{port}/path`, whose variables
/// an instance fills in ([`ServiceInstance::build_uri`]).
///
/// ```
/// use zk_recipes::discovery::UriSpec;
/// let spec = UriSpec::parse("{scheme}://{address}:{port}/api")?;
/// assert_eq!(spec.parts().len(), 6);
/// # Ok::<(), zk_recipes::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UriSpec {
    #[serde(default)]
    parts: Vec<UriPart>,
}

impl UriSpec {
    /// Parses a template as Curator does: `{name}` is a variable (its name trimmed), `{[}`
    /// and `{]}` are literal braces, `{}` is nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a `{` inside a variable, a `}` outside one, or a
    /// variable not closed.
    pub fn parse(raw: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut inside = false;
        let mut token = String::new();
        let flush = |token: &mut String, inside: bool, parts: &mut Vec<UriPart>| {
            if !token.is_empty() {
                let value = if inside {
                    token.trim().to_owned()
                } else {
                    token.clone()
                };
                parts.push(UriPart {
                    value,
                    variable: inside,
                });
                token.clear();
            }
        };
        for c in raw.chars() {
            match c {
                '{' if inside => {
                    return Err(Error::InvalidArgument(
                        "{ is not allowed inside of a variable specification".to_owned(),
                    ))
                }
                '{' => {
                    flush(&mut token, inside, &mut parts);
                    inside = true;
                }
                '}' if !inside => {
                    return Err(Error::InvalidArgument("} must be preceded by {".to_owned()))
                }
                '}' => {
                    flush(&mut token, inside, &mut parts);
                    inside = false;
                }
                c => token.push(c),
            }
        }
        if inside {
            return Err(Error::InvalidArgument(
                "final variable not closed - expected }".to_owned(),
            ));
        }
        flush(&mut token, inside, &mut parts);
        Ok(Self { parts })
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[UriPart] {
        &self.parts
    }

    /// Fills in the template: `variables` first, then the instance's (`name`, `id`,
    /// `address`, `port`, `ssl-port`, `registration-time-utc`, `service-type`; `scheme` is
    /// `https` when it has an SSL port, else `http`), then `[` and `]` as braces. A variable
    /// with no value is left out, and an unset field is empty, as in Curator.
    pub fn build<P>(
        &self,
        instance: Option<&ServiceInstance<P>>,
        variables: &HashMap<String, String>,
    ) -> String {
        let mut values: HashMap<String, String> = HashMap::new();
        values.insert("[".to_owned(), "{".to_owned());
        values.insert("]".to_owned(), "}".to_owned());
        values.insert("scheme".to_owned(), "http".to_owned());
        if let Some(instance) = instance {
            let or_empty = |v: Option<String>| v.unwrap_or_default();
            values.insert("name".to_owned(), instance.name.clone());
            values.insert("id".to_owned(), instance.id.clone());
            values.insert("address".to_owned(), or_empty(instance.address.clone()));
            values.insert(
                "port".to_owned(),
                or_empty(instance.port.map(|p| p.to_string())),
            );
            values.insert(
                "ssl-port".to_owned(),
                or_empty(instance.ssl_port.map(|p| p.to_string())),
            );
            values.insert(
                "registration-time-utc".to_owned(),
                instance.registration_time_utc.to_string(),
            );
            values.insert(
                "service-type".to_owned(),
                instance.service_type.lower_name().to_owned(),
            );
            if instance.ssl_port.is_some() {
                values.insert("scheme".to_owned(), "https".to_owned());
            }
        }
        values.extend(variables.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut out = String::new();
        for part in &self.parts {
            if part.variable {
                if let Some(value) = values.get(&part.value) {
                    out.push_str(value);
                }
            } else {
                out.push_str(&part.value);
            }
        }
        out
    }
}

/// One instance of a service (Curator's `ServiceInstance`): where it is, and a payload of
/// type `P`. Registered at `<base path>/<name>/<id>` by a
/// [`ServiceDiscovery`](crate::discovery::ServiceDiscovery).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServiceInstance<P> {
    /// The service's name: one path segment.
    pub name: String,
    /// This instance's id, unique within the service: one path segment.
    pub id: String,
    /// The instance's address (a host name or an IP address).
    pub address: Option<String>,
    /// Its port.
    pub port: Option<u16>,
    /// Its TLS port.
    pub ssl_port: Option<u16>,
    /// What else clients should know of it.
    pub payload: Option<P>,
    /// When it was registered, in milliseconds since the Unix epoch.
    pub registration_time_utc: i64,
    /// How it is registered.
    pub service_type: ServiceType,
    /// A URI template for it.
    pub uri_spec: Option<UriSpec>,
    /// False for an instance that providers skip. Curator 5.4's default serializer does not
    /// write it (see [`JsonInstanceSerializer::compatible`]).
    pub enabled: bool,
}

impl<P> ServiceInstance<P> {
    /// A builder for an instance of the service `name`, with a random id (a UUID), no
    /// address, registered now.
    ///
    /// ```
    /// use zk_recipes::discovery::ServiceInstance;
    /// let instance = ServiceInstance::<String>::builder("billing")
    ///     .id("host-1")
    ///     .address("10.0.0.1")
    ///     .port(8080)
    ///     .payload("eu-west".to_owned())
    ///     .build()?;
    /// assert_eq!(instance.id, "host-1");
    /// # Ok::<(), zk_recipes::Error>(())
    /// ```
    pub fn builder(name: impl Into<String>) -> ServiceInstanceBuilder<P> {
        ServiceInstanceBuilder {
            instance: ServiceInstance {
                name: name.into(),
                id: uuid::Uuid::new_v4().to_string(),
                address: None,
                port: None,
                ssl_port: None,
                payload: None,
                registration_time_utc: now_millis(),
                service_type: ServiceType::Dynamic,
                uri_spec: None,
                enabled: true,
            },
        }
    }

    /// The instance's URI from its [`uri_spec`](Self::uri_spec) (Curator's `buildUriSpec`);
    /// empty without one.
    pub fn build_uri(&self) -> String {
        self.build_uri_with(&HashMap::new())
    }

    /// [`build_uri`](Self::build_uri) with `variables` of the caller's, which win over the
    /// instance's.
    pub fn build_uri_with(&self, variables: &HashMap<String, String>) -> String {
        match &self.uri_spec {
            Some(spec) => spec.build(Some(self), variables),
            None => String::new(),
        }
    }

    /// Checks the name and the id: each must be one path segment.
    pub(crate) fn validate(&self) -> Result<()> {
        validate_segment(&self.name, "a service name")?;
        validate_segment(&self.id, "an instance id")
    }
}

/// Checks that `segment` can be one segment of a znode path.
pub(crate) fn validate_segment(segment: &str, what: &'static str) -> Result<()> {
    if segment.is_empty() || segment.contains('/') || segment == "." || segment == ".." {
        return Err(Error::invalid_path(
            segment,
            match what {
                "a service name" => "a service name must be one non-empty path segment",
                _ => "an instance id must be one non-empty path segment",
            },
        ));
    }
    crate::path::validate_path(&format!("/{segment}"))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Builds a [`ServiceInstance`]: see [`ServiceInstance::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct ServiceInstanceBuilder<P> {
    instance: ServiceInstance<P>,
}

impl<P> ServiceInstanceBuilder<P> {
    /// The instance's id; a random UUID by default.
    ///
    /// ```
    /// let b = zk_recipes::discovery::ServiceInstance::<()>::builder("svc").id("host-1");
    /// # drop(b);
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.instance.id = id.into();
        self
    }

    /// Its address.
    ///
    /// ```
    /// let b = zk_recipes::discovery::ServiceInstance::<()>::builder("svc").address("10.0.0.1");
    /// # drop(b);
    /// ```
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.instance.address = Some(address.into());
        self
    }

    /// Its port.
    ///
    /// ```
    /// let b = zk_recipes::discovery::ServiceInstance::<()>::builder("svc").port(8080);
    /// # drop(b);
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.instance.port = Some(port);
        self
    }

    /// Its TLS port.
    ///
    /// ```
    /// let b = zk_recipes::discovery::ServiceInstance::<()>::builder("svc").ssl_port(8443);
    /// # drop(b);
    /// ```
    pub fn ssl_port(mut self, port: u16) -> Self {
        self.instance.ssl_port = Some(port);
        self
    }

    /// Its payload.
    ///
    /// ```
    /// let b = zk_recipes::discovery::ServiceInstance::builder("svc").payload("eu-west".to_owned());
    /// # drop(b);
    /// ```
    pub fn payload(mut self, payload: P) -> Self {
        self.instance.payload = Some(payload);
        self
    }

    /// When it was registered, in milliseconds since the Unix epoch; now by default.
    ///
    /// ```
    /// let b = zk_recipes::discovery::ServiceInstance::<()>::builder("svc").registration_time_utc(0);
    /// # drop(b);
    /// ```
    pub fn registration_time_utc(mut self, millis: i64) -> Self {
        self.instance.registration_time_utc = millis;
        self
    }

    /// How it is registered; [`ServiceType::Dynamic`] by default.
    ///
    /// ```
    /// use zk_recipes::discovery::{ServiceInstance, ServiceType};
    /// let b = ServiceInstance::<()>::builder("svc").service_type(ServiceType::Static);
    /// # drop(b);
    /// ```
    pub fn service_type(mut self, service_type: ServiceType) -> Self {
        self.instance.service_type = service_type;
        self
    }

    /// Its URI template.
    ///
    /// ```
    /// use zk_recipes::discovery::{ServiceInstance, UriSpec};
    /// let b = ServiceInstance::<()>::builder("svc").uri_spec(UriSpec::parse("{scheme}://{address}:{port}")?);
    /// # drop(b);
    /// # Ok::<(), zk_recipes::Error>(())
    /// ```
    pub fn uri_spec(mut self, spec: UriSpec) -> Self {
        self.instance.uri_spec = Some(spec);
        self
    }

    /// Whether providers may pick it; true by default.
    ///
    /// ```
    /// let b = zk_recipes::discovery::ServiceInstance::<()>::builder("svc").enabled(false);
    /// # drop(b);
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.instance.enabled = enabled;
        self
    }

    /// The instance.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] if the name or the id is not one non-empty path segment.
    pub fn build(self) -> Result<ServiceInstance<P>> {
        self.instance.validate()?;
        Ok(self.instance)
    }
}

/// The JSON of instances, as Curator 5.4's `JsonInstanceSerializer` writes and reads it.
///
/// # Format
///
/// One compact object, its fields in Curator's order: `name`, `id`, `address`, `port`,
/// `sslPort`, `payload`, `registrationTimeUTC` (epoch milliseconds), `serviceType`
/// (`"DYNAMIC"`, ...) and `uriSpec` (`{"parts":[{"value":..,"variable":..}]}`), with an
/// explicit `null` for each unset field; `enabled` only when not
/// [`compatible`](Self::compatible). Strings are escaped as Jackson escapes them (control
/// characters as upper-case `\u00XX`, characters beyond the BMP as escaped surrogate pairs), so
/// the bytes are Curator's.
///
/// Reading is as lenient as Curator's: unknown fields are ignored, missing ones take
/// Curator's defaults (`enabled` true, the type `DYNAMIC`), and a payload's `"@class"` or
/// `["<class>", value]` type information is taken off before the payload is read.
#[derive(Debug, Clone)]
pub struct JsonInstanceSerializer<P> {
    compatible: bool,
    payload_class: String,
    array_class: String,
    _payload: PhantomData<fn() -> P>,
}

impl<P> Default for JsonInstanceSerializer<P> {
    fn default() -> Self {
        Self {
            compatible: true,
            payload_class: "java.util.LinkedHashMap".to_owned(),
            array_class: "java.util.ArrayList".to_owned(),
            _payload: PhantomData,
        }
    }
}

impl<P: Payload> JsonInstanceSerializer<P> {
    /// Curator 5.4's default serializer: compatible mode (no `enabled`), object payloads
    /// typed as `java.util.LinkedHashMap` (which a Java reader with a `Map` payload class
    /// takes).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to leave `enabled` out, as Curator 5.4's default does (`true`); with `false`
    /// it is written last, as Curator's `JsonInstanceSerializer(type, false)` writes it, and
    /// readers honour it. Either way it is read when present.
    ///
    /// ```
    /// let serializer = zk_recipes::discovery::JsonInstanceSerializer::<String>::new().compatible(false);
    /// # drop(serializer);
    /// ```
    pub fn compatible(mut self, compatible: bool) -> Self {
        self.compatible = compatible;
        self
    }

    /// The Java class named in an object payload's `"@class"` property: the class of the
    /// Java side's payload (say `com.example.InstanceDetails`); `java.util.LinkedHashMap` by
    /// default.
    ///
    /// ```
    /// let serializer = zk_recipes::discovery::JsonInstanceSerializer::<serde_json::Value>::new()
    ///     .payload_class("com.example.InstanceDetails");
    /// # drop(serializer);
    /// ```
    pub fn payload_class(mut self, class: impl Into<String>) -> Self {
        self.payload_class = class.into();
        self
    }

    /// The JSON of `instance`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the payload cannot be written as JSON (a map with
    /// non-string keys, say).
    pub fn serialize(&self, instance: &ServiceInstance<P>) -> Result<Vec<u8>> {
        let payload = match &instance.payload {
            None => Value::Null,
            Some(payload) => {
                let value = serde_json::to_value(payload).map_err(|e| {
                    Error::InvalidArgument(format!("the payload cannot be written as JSON: {e}"))
                })?;
                self.typed(value)
            }
        };
        let wire = Wire {
            name: &instance.name,
            id: &instance.id,
            address: instance.address.as_deref(),
            port: instance.port,
            ssl_port: instance.ssl_port,
            payload,
            registration_time_utc: instance.registration_time_utc,
            service_type: instance.service_type,
            uri_spec: instance.uri_spec.as_ref(),
            enabled: (!self.compatible).then_some(instance.enabled),
        };
        let mut out = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, JacksonFormatter);
        wire.serialize(&mut serializer)
            .map_err(|e| Error::InvalidArgument(format!("the instance cannot be written: {e}")))?;
        Ok(out)
    }

    /// Adds Curator's type information to a payload.
    fn typed(&self, value: Value) -> Value {
        match value {
            Value::Object(fields) => {
                let mut typed = Map::with_capacity(fields.len() + 1);
                typed.insert(
                    "@class".to_owned(),
                    Value::String(self.payload_class.clone()),
                );
                typed.extend(fields.into_iter().filter(|(k, _)| k != "@class"));
                Value::Object(typed)
            }
            Value::Array(items) => Value::Array(vec![
                Value::String(self.array_class.clone()),
                Value::Array(items),
            ]),
            other => other,
        }
    }

    /// The instance in `data`.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedData`] if `data` is not JSON, not an object, or has a field of the
    /// wrong kind (a payload that does not read as `P`, a port out of range, an unknown
    /// service type).
    pub fn deserialize(&self, data: &[u8]) -> Result<ServiceInstance<P>> {
        let value: Value = serde_json::from_slice(data)
            .map_err(|e| Error::MalformedData(format!("not JSON: {e}")))?;
        let Value::Object(mut fields) = value else {
            return Err(Error::MalformedData(
                "a service instance is a JSON object".to_owned(),
            ));
        };
        let text = |fields: &mut Map<String, Value>, key: &str| -> Result<Option<String>> {
            match fields.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(Error::MalformedData(format!(
                    "{key} is not a string: {other}"
                ))),
            }
        };
        let port = |fields: &mut Map<String, Value>, key: &str| -> Result<Option<u16>> {
            let number = match fields.remove(key) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
                Some(_) => None,
            };
            number
                .and_then(|n| u16::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| Error::MalformedData(format!("{key} is not a port")))
        };
        let name = text(&mut fields, "name")?.unwrap_or_default();
        let id = text(&mut fields, "id")?.unwrap_or_default();
        let address = text(&mut fields, "address")?;
        let port_value = port(&mut fields, "port")?;
        let ssl_port = port(&mut fields, "sslPort")?;
        let registration_time_utc = match fields.remove("registrationTimeUTC") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| {
                Error::MalformedData("registrationTimeUTC is not a number".to_owned())
            })?,
            Some(other) => {
                return Err(Error::MalformedData(format!(
                    "registrationTimeUTC is not a number: {other}"
                )))
            }
        };
        let service_type = match fields.remove("serviceType") {
            None | Some(Value::Null) => ServiceType::Dynamic,
            Some(value) => serde_json::from_value(value)
                .map_err(|e| Error::MalformedData(format!("serviceType: {e}")))?,
        };
        let uri_spec = match fields.remove("uriSpec") {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(
                UriSpec::parse(&raw).map_err(|e| Error::MalformedData(format!("uriSpec: {e}")))?,
            ),
            Some(value) => Some(
                serde_json::from_value(value)
                    .map_err(|e| Error::MalformedData(format!("uriSpec: {e}")))?,
            ),
        };
        let enabled = match fields.remove("enabled") {
            None => true,
            Some(Value::Bool(b)) => b,
            Some(Value::Null) => false,
            Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
            Some(other) => {
                return Err(Error::MalformedData(format!(
                    "enabled is not a boolean: {other}"
                )))
            }
        };
        let payload = match fields.remove("payload") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                serde_json::from_value(untyped(value))
                    .map_err(|e| Error::MalformedData(format!("payload: {e}")))?,
            ),
        };
        Ok(ServiceInstance {
            name,
            id,
            address,
            port: port_value,
            ssl_port,
            payload,
            registration_time_utc,
            service_type,
            uri_spec,
            enabled,
        })
    }
}

/// Takes Curator's type information off a payload: an object's `"@class"`, an
/// `["<class>", value]` wrapper.
fn untyped(value: Value) -> Value {
    match value {
        Value::Object(mut fields) => {
            fields.shift_remove("@class");
            Value::Object(fields)
        }
        Value::Array(mut items) if items.len() == 2 && items[0].is_string() => items.remove(1),
        other => other,
    }
}

/// The fields of an instance in Curator's order, under Curator's names.
#[derive(Serialize)]
struct Wire<'a> {
    name: &'a str,
    id: &'a str,
    address: Option<&'a str>,
    port: Option<u16>,
    #[serde(rename = "sslPort")]
    ssl_port: Option<u16>,
    payload: Value,
    #[serde(rename = "registrationTimeUTC")]
    registration_time_utc: i64,
    #[serde(rename = "serviceType")]
    service_type: ServiceType,
    #[serde(rename = "uriSpec")]
    uri_spec: Option<&'a UriSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
}

/// serde_json's compact output with Jackson's string escapes: control characters as
/// upper-case `\u00XX`, characters beyond the BMP as escaped surrogate pairs.
struct JacksonFormatter;

impl serde_json::ser::Formatter for JacksonFormatter {
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        let short: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => {
                return write!(writer, "\\u{:04X}", byte);
            }
        };
        writer.write_all(short)
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if u32::from(c) > 0xFFFF {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{:04X}", unit)?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceType::Dynamic => "DYNAMIC",
            ServiceType::Static => "STATIC",
            ServiceType::Permanent => "PERMANENT",
            ServiceType::DynamicSequential => "DYNAMIC_SEQUENTIAL",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> ServiceInstance<String> {
        ServiceInstance::builder("svc")
            .id("id1")
            .address("10.0.0.1")
            .port(8080)
            .payload("hello".to_owned())
            .registration_time_utc(0)
            .build()
            .unwrap()
    }

    /// Curator 5.4's bytes for the same instance (from `JsonInstanceSerializer(String.class)`).
    #[test]
    fn a_string_payload_is_written_as_curator_writes_it() {
        let json = JsonInstanceSerializer::new()
            .serialize(&instance())
            .unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"name":"svc","id":"id1","address":"10.0.0.1","port":8080,"sslPort":null,"payload":"hello","registrationTimeUTC":0,"serviceType":"DYNAMIC","uriSpec":null}"#
        );
        let json = JsonInstanceSerializer::new()
            .compatible(false)
            .serialize(&instance())
            .unwrap();
        assert!(String::from_utf8(json)
            .unwrap()
            .ends_with(r#""uriSpec":null,"enabled":true}"#));
    }

    #[test]
    fn object_and_array_payloads_carry_curators_type_information() {
        let map: ServiceInstance<serde_json::Value> = ServiceInstance::builder("svc")
            .id("id2")
            .address("10.0.0.1")
            .port(8080)
            .payload(serde_json::json!({"k1": "v1", "k2": "v2"}))
            .registration_time_utc(0)
            .build()
            .unwrap();
        let json =
            String::from_utf8(JsonInstanceSerializer::new().serialize(&map).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"name":"svc","id":"id2","address":"10.0.0.1","port":8080,"sslPort":null,"payload":{"@class":"java.util.LinkedHashMap","k1":"v1","k2":"v2"},"registrationTimeUTC":0,"serviceType":"DYNAMIC","uriSpec":null}"#
        );
        let back = JsonInstanceSerializer::<serde_json::Value>::new()
            .deserialize(json.as_bytes())
            .unwrap();
        assert_eq!(back, map);
        let list = ServiceInstance::builder("svc")
            .payload(vec!["a".to_owned(), "b".to_owned()])
            .build()
            .unwrap();
        let json = JsonInstanceSerializer::new().serialize(&list).unwrap();
        assert!(String::from_utf8_lossy(&json)
            .contains(r#""payload":["java.util.ArrayList",["a","b"]]"#));
        assert_eq!(
            JsonInstanceSerializer::<Vec<String>>::new()
                .deserialize(&json)
                .unwrap(),
            list
        );
    }

    #[test]
    fn a_uri_spec_is_written_and_built_as_curator_does() {
        let spec = UriSpec::parse("{scheme}://{address}:{port}/x/{[}lit{]}/{ name }").unwrap();
        let instance = ServiceInstance::builder("svc")
            .id("id3")
            .address("10.0.0.1")
            .port(8080)
            .ssl_port(8443)
            .uri_spec(spec)
            .payload("hello".to_owned())
            .registration_time_utc(0)
            .build()
            .unwrap();
        let json =
            String::from_utf8(JsonInstanceSerializer::new().serialize(&instance).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"name":"svc","id":"id3","address":"10.0.0.1","port":8080,"sslPort":8443,"payload":"hello","registrationTimeUTC":0,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true},{"value":"/x/","variable":false},{"value":"[","variable":true},{"value":"lit","variable":false},{"value":"]","variable":true},{"value":"/","variable":false},{"value":"name","variable":true}]}}"#
        );
        assert_eq!(instance.build_uri(), "https://10.0.0.1:8080/x/{lit}/svc");
        let vars = HashMap::from([
            ("port".to_owned(), "1234".to_owned()),
            ("scheme".to_owned(), "ftp".to_owned()),
        ]);
        assert_eq!(
            instance.build_uri_with(&vars),
            "ftp://10.0.0.1:1234/x/{lit}/svc"
        );
        let escapes = UriSpec::parse("{one}two-three-{[}four{]}-five{six}").unwrap();
        let vars = HashMap::from([
            ("one".to_owned(), "1".to_owned()),
            ("six".to_owned(), "6".to_owned()),
        ]);
        assert_eq!(escapes.build::<()>(None, &vars), "1two-three-{four}-five6");
        for bad in ["{a{b}}", "a}", "{a"] {
            assert!(UriSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strings_are_escaped_as_jackson_escapes_them() {
        let instance = ServiceInstance::builder("svc")
            .id("id")
            .payload("\u{1f}/\u{7f}é😀\n".to_owned())
            .registration_time_utc(0)
            .build()
            .unwrap();
        let json =
            String::from_utf8(JsonInstanceSerializer::new().serialize(&instance).unwrap()).unwrap();
        assert!(
            json.contains(
                r#""payload":"\u001F/\u{7f}é\uD83D\uDE00\n""#.replace("\\u{7f}", "\u{7f}").as_str()
            ),
            "{json}"
        );
        let back = JsonInstanceSerializer::<String>::new()
            .deserialize(json.as_bytes())
            .unwrap();
        assert_eq!(back, instance);
    }

    #[test]
    fn reading_is_as_lenient_as_curators_and_bad_data_is_a_typed_error() {
        let serializer = JsonInstanceSerializer::<String>::new();
        let empty = serializer.deserialize(b"{}").unwrap();
        assert_eq!((empty.name.as_str(), empty.id.as_str()), ("", ""));
        assert!(empty.enabled);
        assert_eq!(empty.service_type, ServiceType::Dynamic);
        let read = serializer
            .deserialize(br#"{"name":"a","id":"b","enabled":false,"future":{"x":1},"port":"12"}"#)
            .unwrap();
        assert!(!read.enabled);
        assert_eq!(read.port, Some(12));
        let spec = serializer
            .deserialize(br#"{"uriSpec":"{scheme}://{address}"}"#)
            .unwrap();
        assert_eq!(spec.uri_spec.unwrap().parts().len(), 3);
        for bad in [
            &b"garbage"[..],
            b"",
            b"[]",
            br#"{"payload":5}"#,
            br#"{"serviceType":"dynamic"}"#,
            br#"{"port":70000}"#,
        ] {
            assert!(
                matches!(serializer.deserialize(bad), Err(Error::MalformedData(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn names_and_ids_are_one_path_segment() {
        for (name, id) in [
            ("", "a"),
            ("a/b", "a"),
            ("a", ""),
            ("a", "b/c"),
            ("a", ".."),
            ("a", "x\u{0}"),
        ] {
            assert!(
                matches!(
                    ServiceInstance::<()>::builder(name).id(id).build(),
                    Err(Error::InvalidPath { .. })
                ),
                "{name:?} {id:?}"
            );
        }
    }
}
