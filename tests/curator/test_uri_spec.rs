//! Curator's `TestUriSpec` (curator-x-discovery), ported to [`UriSpec`].
//!
//! Curator's `new UriSpec(raw)` is [`UriSpec::parse`], its iterator of parts is
//! [`UriSpec::parts`], and `spec.build(instance[, variables])` / `spec.build(variables)` are
//! [`UriSpec::build`] with `Some(instance)` / `None`. Curator's variables are objects
//! (`m.put("one", 1)`), turned into text with `String.valueOf`; here they are strings.
//!
//! These are plain tests: no server.
//!
//! Not ported: none.

use std::collections::HashMap;

use zk_recipes::discovery::{ServiceInstance, ServiceType, UriPart, UriSpec};

fn variables(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Curator's `checkPart` over the whole spec: the parts, in order, and no more.
fn check_parts(spec: &UriSpec, expected: &[(&str, bool)]) {
    let expected: Vec<UriPart> = expected
        .iter()
        .map(|(value, variable)| UriPart {
            value: (*value).to_owned(),
            variable: *variable,
        })
        .collect();
    assert_eq!(spec.parts(), expected.as_slice());
}

/// Curator: `TestUriSpec.testScheme`.
///
/// `{scheme}` is `http` for an instance without an SSL port, `https` once it has one.
#[test]
fn test_scheme() {
    let spec = UriSpec::parse("{scheme}://foo.com").expect("parse");
    let builder = ServiceInstance::<()>::builder("foo").id("x").port(5);
    let instance = builder.clone().build().expect("instance");
    assert_eq!(
        spec.build(Some(&instance), &HashMap::new()),
        "http://foo.com"
    );

    let instance = builder.ssl_port(5).build().expect("instance");
    assert_eq!(
        spec.build(Some(&instance), &HashMap::new()),
        "https://foo.com"
    );
}

/// Curator: `TestUriSpec.testFromInstance`.
///
/// Every variable an instance gives (`address`, `port`, `ssl-port`, `name`, `id`,
/// `registration-time-utc`, `service-type` in lower case), and a caller's `scheme` that wins
/// over the instance's.
#[test]
fn test_from_instance() {
    let instance = ServiceInstance::<()>::builder("foo")
        .address("1.2.3.4")
        .id("bar")
        .port(5)
        .ssl_port(6)
        .registration_time_utc(789)
        .service_type(ServiceType::Permanent)
        .build()
        .expect("instance");
    let spec = UriSpec::parse(
        "{scheme}://{address}:{port}:{ssl-port}/{name}/{id}/{registration-time-utc}/{service-type}",
    )
    .expect("parse");
    assert_eq!(
        spec.build(Some(&instance), &variables(&[("scheme", "test")])),
        "test://1.2.3.4:5:6/foo/bar/789/permanent"
    );
}

/// Curator: `TestUriSpec.testEscapes`.
///
/// `{[}` and `{]}` are variables that build to literal braces; the parts, and the built
/// string with `one` and `six` given.
#[test]
fn test_escapes() {
    let spec = UriSpec::parse("{one}two-three-{[}four{]}-five{six}").expect("parse");
    check_parts(
        &spec,
        &[
            ("one", true),
            ("two-three-", false),
            ("[", true),
            ("four", false),
            ("]", true),
            ("-five", false),
            ("six", true),
        ],
    );
    assert_eq!(
        spec.build::<()>(None, &variables(&[("one", "1"), ("six", "6")])),
        "1two-three-{four}-five6"
    );
}

/// Curator: `TestUriSpec.testBasic`.
///
/// Adjacent variables, and literals between them: the parts.
#[test]
fn test_basic() {
    let spec = UriSpec::parse("{one}{two}three-four-five{six}seven{eight}").expect("parse");
    check_parts(
        &spec,
        &[
            ("one", true),
            ("two", true),
            ("three-four-five", false),
            ("six", true),
            ("seven", false),
            ("eight", true),
        ],
    );
}
