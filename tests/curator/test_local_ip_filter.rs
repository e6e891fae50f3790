//! Curator's `TestLocalIpFilter` (curator-x-discovery), ported as its inverse.
//!
//! Curator's `ServiceInstanceBuilder` gives an instance the first local IP address
//! (`getAllLocalIPs()`, filtered by a settable `LocalIpFilter`) as its default address. This
//! crate's builder gives no address by default, a documented difference (see
//! `zk_recipes::discovery`'s "Differences from Curator, on purpose"): there are no local
//! addresses to list and no filter to set. The port checks that difference instead.
//!
//! These are plain tests: no server.
//!
//! Not ported otherwise: none.

use zk_recipes::discovery::ServiceInstance;

/// Curator: `TestLocalIpFilter.testFilterEverything`.
///
/// Inverted: Curator checks that a filter rejecting every address leaves no local address,
/// and that the default filter finds some. Here an instance built without an address has
/// none (whatever the host's interfaces), and one given explicitly is kept as given.
#[test]
fn test_filter_everything() {
    let instance = ServiceInstance::<()>::builder("svc")
        .build()
        .expect("instance");
    assert_eq!(instance.address, None, "no local address by default");

    let instance = ServiceInstance::<()>::builder("svc")
        .address("10.1.2.3")
        .build()
        .expect("instance");
    assert_eq!(instance.address.as_deref(), Some("10.1.2.3"));
}
