//! Curator's `TestDownInstanceManager` (curator-x-discovery, `details/`), ported to the
//! down instances of a [`ServiceProvider`].
//!
//! Curator's tests call its package-private `DownInstanceManager` directly: `add(instance)`
//! reports an error, `apply(instance)` says whether the instance may be given. This crate's
//! counterpart is private to [`ServiceProvider`]: `add` is [`ServiceProvider::note_error`],
//! and `apply` is "the instance is among [`ServiceProvider::all_instances`]". So each port
//! registers Curator's two instances (`hey`/`1` and `hey`/`2`) on the shared server and looks
//! through a started provider with the test's [`DownInstancePolicy`].
//!
//! Curator's policies have a 1 s timeout. `testBasic` and `testThreshold` do not test the
//! timeout, and a look that comes over 1 s after the error (a loaded machine) would find the
//! instance forgiven: their ports use a timeout of [`DEADLINE`], so that only a wrong count
//! can fail them. `testExpiration` keeps Curator's 1 s.
//!
//! Not ported: none.

use std::time::{Duration, Instant};

use zk_recipes::discovery::{
    DownInstancePolicy, ServiceDiscovery, ServiceInstance, ServiceProvider,
};
use zk_recipes::Client;

use crate::common::{eventually, init_tracing, unique_path, zk_server};
use crate::discovery_base::{client, DEADLINE};

/// Curator's two instances, registered, and a started provider of their service with
/// `policy`.
struct Fixture {
    client: Client,
    discovery: ServiceDiscovery<()>,
    provider: ServiceProvider<()>,
    instance1: ServiceInstance<()>,
    instance2: ServiceInstance<()>,
}

impl Fixture {
    async fn new(name: &str, policy: DownInstancePolicy) -> Self {
        let client = client(&zk_server().await).await;
        let discovery = ServiceDiscovery::<()>::builder(&client, &unique_path(name))
            .build()
            .expect("discovery");
        let instance1 = ServiceInstance::builder("hey")
            .id("1")
            .build()
            .expect("instance 1");
        let instance2 = ServiceInstance::builder("hey")
            .id("2")
            .build()
            .expect("instance 2");
        discovery.register(&instance1).await.expect("register 1");
        discovery.register(&instance2).await.expect("register 2");
        let provider = discovery
            .service_provider("hey")
            .down_instance_policy(policy)
            .build()
            .expect("provider");
        provider.start().await.expect("start the provider");
        Self {
            client,
            discovery,
            provider,
            instance1,
            instance2,
        }
    }

    /// Curator's `downInstanceManager.apply(instance)`.
    fn apply(&self, instance: &ServiceInstance<()>) -> bool {
        self.provider
            .all_instances()
            .iter()
            .any(|given| given.id == instance.id)
    }

    async fn close(self) {
        self.provider.close().await;
        self.discovery.close().await.expect("close the discovery");
        self.client.close().await;
    }
}

/// Curator: `TestDownInstanceManager.testBasic`.
///
/// Threshold 1: both instances are given; after one error of instance 1 it is not, and
/// instance 2 still is. (Timeout: see the module docs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    init_tracing();
    let policy = DownInstancePolicy {
        timeout: DEADLINE,
        error_threshold: 1,
    };
    let f = Fixture::new("down-basic", policy).await;
    assert!(f.apply(&f.instance1));
    assert!(f.apply(&f.instance2));

    f.provider.note_error(&f.instance1);
    assert!(!f.apply(&f.instance1));
    assert!(f.apply(&f.instance2));
    f.close().await;
}

/// Curator: `TestDownInstanceManager.testThreshold`.
///
/// Threshold 2: after one error instance 1 is still given; after a second it is not;
/// instance 2 always is. (Timeout: see the module docs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_threshold() {
    init_tracing();
    let policy = DownInstancePolicy {
        timeout: DEADLINE,
        error_threshold: 2,
    };
    let f = Fixture::new("down-threshold", policy).await;
    assert!(f.apply(&f.instance1));
    assert!(f.apply(&f.instance2));

    f.provider.note_error(&f.instance1);
    assert!(f.apply(&f.instance1));
    assert!(f.apply(&f.instance2));

    f.provider.note_error(&f.instance1);
    assert!(!f.apply(&f.instance1));
    assert!(f.apply(&f.instance2));
    f.close().await;
}

/// Curator: `TestDownInstanceManager.testExpiration`.
///
/// Threshold 1, timeout 1 s: after an error instance 1 is not given; Curator sleeps the
/// timeout and finds both given again. The port waits (under [`DEADLINE`]) until instance 1
/// is given again, and checks that this did not happen before the timeout had passed since
/// the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_expiration() {
    init_tracing();
    let timeout = Duration::from_secs(1);
    let policy = DownInstancePolicy {
        timeout,
        error_threshold: 1,
    };
    let f = Fixture::new("down-expiration", policy).await;

    let before_error = Instant::now();
    f.provider.note_error(&f.instance1);
    let down_right_after = !f.apply(&f.instance1);
    let looked_after = before_error.elapsed();
    assert!(
        down_right_after || looked_after >= timeout,
        "instance 1 given {looked_after:?} after its error"
    );
    assert!(f.apply(&f.instance2));

    eventually("instance 1 forgiven", DEADLINE, || f.apply(&f.instance1)).await;
    let forgiven_after = before_error.elapsed();
    assert!(
        forgiven_after >= timeout,
        "instance 1 forgiven after {forgiven_after:?}, before the timeout"
    );
    assert!(f.apply(&f.instance2));
    f.close().await;
}
