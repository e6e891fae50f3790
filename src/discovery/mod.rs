//! Service discovery (Apache Curator's curator-x-discovery), on Curator's layout and JSON, so
//! that Rust services register where Java services look, and find Java services.
//!
//! * [`ServiceInstance`]: a service's instance (name, id, address, ports, a payload `P`, ...),
//!   and [`JsonInstanceSerializer`], its JSON as Curator 5.4 writes and reads it, byte for byte.
//! * [`ServiceDiscovery`]: registers instances (`<base path>/<name>/<id>`, kept present by
//!   [`PersistentNode`](crate::PersistentNode)s) and queries the registry.
//! * [`ServiceCache`]: one service's instances, kept current over a
//!   [`CuratorCache`](crate::CuratorCache), with a stream of changes.
//! * [`ServiceProvider`]: picks an instance with a [`ProviderStrategy`] (round robin, random,
//!   sticky), skipping instances reported down ([`DownInstancePolicy`]).
//!
//! # Differences from Curator, on purpose
//!
//! * A registered instance is made again after someone deletes it, not only after a
//!   reconnection; registering an id again updates it (Curator deletes and re-creates the
//!   node, and goes on re-registering the first instance after reconnections).
//! * A `DYNAMIC_SEQUENTIAL` instance is made with Curator's protected create, so its node is
//!   `_c_<uuid>-<id><sequence>` (Java caches key instances by node name and read the id from
//!   the JSON, so they find it), and unregistering it deletes it (Curator deletes the path
//!   without the sequence number, which leaves the node).
//! * Nodes that hold no instance are skipped, with a trace event, by queries and caches alike;
//!   Curator's `queryForInstances` fails as a whole. `query_for_names` of a registry that does
//!   not exist yet is empty (Curator: `NoNode`).
//! * A [`ServiceCache`]'s events, asked for before it starts, report its first load too (an
//!   `Added` per instance, then `Synced`); Curator's `cacheChanged` is not called for the first
//!   load.
//! * The builder gives an instance no address by default (Curator's picks a local IP
//!   address).
//! * Curator's `watchInstances` (adopting data that someone else writes to a registered
//!   instance's node) is not offered: a registered instance keeps the data it was given.

mod instance;
mod provider;
mod service_cache;
mod service_discovery;

pub use instance::{
    JsonInstanceSerializer, Payload, ServiceInstance, ServiceInstanceBuilder, ServiceType, UriPart,
    UriSpec,
};
pub use provider::{
    DownInstancePolicy, ProviderStrategy, RandomStrategy, RoundRobinStrategy, ServiceProvider,
    ServiceProviderBuilder, StickyStrategy,
};
pub use service_cache::{ServiceCache, ServiceCacheEvent, ServiceCacheEvents};
pub use service_discovery::{ServiceDiscovery, ServiceDiscoveryBuilder};
