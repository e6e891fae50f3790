//! [`ServiceCache`]: the instances of one service, kept current.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};

use super::instance::{validate_segment, JsonInstanceSerializer, Payload, ServiceInstance};
use super::ServiceDiscovery;
use crate::cache::{CacheEvent, CacheEvents, CachedNode, CuratorCache};
use crate::error::{Error, Result};
use crate::sync::{ReadWriteLocked, Subscribers};

/// The instances of one service, kept current over a [`CuratorCache`] of the service's
/// node's children (Curator's `ServiceCache`), with a [`Stream`] of their changes.
///
/// # Behavior
///
/// The cache holds each child node of `<base path>/<name>` that holds an instance, by node
/// name; it converges to the server's registry after every fault, as [`CuratorCache`] does,
/// and its events say exactly what changed. A node that does not hold an instance (bad JSON,
/// a payload that is not a `P`) is left out, with a trace event, and never stops the cache;
/// nodes below the children are not instances (Curator 5.4's recursive cache lists them as
/// instances).
///
/// ```no_run
/// # async fn demo(discovery: zk_recipes::discovery::ServiceDiscovery<String>) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// use zk_recipes::discovery::ServiceCacheEvent;
///
/// let cache = discovery.service_cache("billing")?;
/// let mut changes = cache.events();
/// cache.start().await?;
/// println!("{} instances", cache.instances().len());
/// while let Some(change) = changes.next().await {
///     if let ServiceCacheEvent::Removed(instance) = change {
///         println!("{} is gone", instance.id);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct ServiceCache<P: Payload> {
    inner: Arc<CacheInner<P>>,
}

impl<P: Payload> Clone for ServiceCache<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<P: Payload> std::fmt::Debug for ServiceCache<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCache")
            .field("name", &self.inner.name)
            .field("instances", &self.inner.instances.read_locked().len())
            .finish()
    }
}

struct CacheInner<P: Payload> {
    name: String,
    path: String,
    cache: CuratorCache,
    serializer: JsonInstanceSerializer<P>,
    /// The instances by node name.
    instances: RwLock<BTreeMap<String, Arc<ServiceInstance<P>>>>,
    subscribers: Subscribers<ServiceCacheEvent<P>>,
    /// How many times the cache has read the service in full.
    loads: watch::Sender<u64>,
}

/// A change of a service's instances, as a [`ServiceCache`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceCacheEvent<P> {
    /// An instance was registered (or its node now holds an instance).
    Added(Arc<ServiceInstance<P>>),
    /// An instance's data changed.
    Updated {
        /// The instance before.
        old: Arc<ServiceInstance<P>>,
        /// The instance now.
        new: Arc<ServiceInstance<P>>,
    },
    /// An instance was unregistered, its session ended, or its node no longer holds an
    /// instance.
    Removed(Arc<ServiceInstance<P>>),
    /// The cache has read the service in full: after its start, and again after a
    /// disconnection or a new session, once the differences have been reported.
    Synced,
}

impl<P> Clone for ServiceCacheEvent<P> {
    fn clone(&self) -> Self {
        match self {
            Self::Added(i) => Self::Added(i.clone()),
            Self::Updated { old, new } => Self::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Self::Removed(i) => Self::Removed(i.clone()),
            Self::Synced => Self::Synced,
        }
    }
}

/// The stream of a [`ServiceCache`]'s events from the moment it was asked for: every event,
/// in order, none dropped however slowly it is read. It ends when the cache is closed.
#[must_use = "streams do nothing unless polled"]
pub struct ServiceCacheEvents<P> {
    rx: mpsc::UnboundedReceiver<ServiceCacheEvent<P>>,
}

impl<P> std::fmt::Debug for ServiceCacheEvents<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCacheEvents").finish_non_exhaustive()
    }
}

impl<P> Stream for ServiceCacheEvents<P> {
    type Item = ServiceCacheEvent<P>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl<P: Payload> ServiceCache<P> {
    /// A cache of the instances of the service `name` in `discovery`'s registry, not started.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a name that is not one path segment.
    pub fn new(discovery: &ServiceDiscovery<P>, name: &str) -> Result<Self> {
        validate_segment(name, "a service name")?;
        let path = discovery.path_for_name(name);
        let cache = CuratorCache::builder(discovery.client(), &path)
            .children()
            .build()?;
        Ok(Self {
            inner: Arc::new(CacheInner {
                name: name.to_owned(),
                path,
                cache,
                serializer: discovery.serializer().clone(),
                instances: RwLock::new(BTreeMap::new()),
                subscribers: Subscribers::new(),
                loads: watch::channel(0).0,
            }),
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Starts the cache, and returns once it has read the service's instances (Curator's
    /// `start`).
    ///
    /// # Errors
    ///
    /// The errors of [`CuratorCache::start`] and [`CuratorCache::initialized`]
    /// ([`Error::IllegalState`] if started before, [`Error::Unsupported`] on a server without
    /// persistent watches).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: a dropped call leaves the cache started, as far as it got.
    pub async fn start(&self) -> Result<()> {
        let (snapshot, events) = self.inner.cache.subscribe();
        let mut loads = self.inner.loads.subscribe();
        let already = *loads.borrow_and_update();
        self.inner.cache.start().await?;
        for node in snapshot {
            self.inner.apply_present(&node);
        }
        tokio::spawn(self.inner.clone().follow(events));
        self.inner.cache.initialized().await?;
        loads
            .wait_for(|loads| *loads > already)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(())
    }

    /// The instances, by node name.
    pub fn instances(&self) -> Vec<Arc<ServiceInstance<P>>> {
        self.inner
            .instances
            .read_locked()
            .values()
            .cloned()
            .collect()
    }

    /// The instance whose node is `<base path>/<name>/<node_name>`.
    pub fn instance(&self, node_name: &str) -> Option<Arc<ServiceInstance<P>>> {
        self.inner.instances.read_locked().get(node_name).cloned()
    }

    /// The cache's events from now on: see [`ServiceCacheEvent`].
    pub fn events(&self) -> ServiceCacheEvents<P> {
        ServiceCacheEvents {
            rx: self.inner.subscribers.subscribe(),
        }
    }

    /// Stops the cache; its event streams end.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn close(&self) {
        self.inner.cache.close().await;
        self.inner.subscribers.close();
    }
}

impl<P: Payload> CacheInner<P> {
    fn emit(&self, event: ServiceCacheEvent<P>) {
        self.subscribers.emit(event);
    }

    /// The instance in `node`, if it is a child of the service's node and holds one.
    fn read(&self, node: &CachedNode) -> Option<Arc<ServiceInstance<P>>> {
        if node.path() == self.path {
            return None;
        }
        match self.serializer.deserialize(node.data().unwrap_or_default()) {
            Ok(instance) => Some(Arc::new(instance)),
            Err(error) => {
                tracing::warn!(path = %node.path(), %error, "skipping a node that holds no service instance");
                None
            }
        }
    }

    /// Applies a node as it is now: added, updated, or removed if it holds no instance now.
    fn apply_present(&self, node: &CachedNode) {
        if node.path() == self.path {
            return;
        }
        let name = node.name().to_owned();
        let read = self.read(node);
        let mut instances = self.instances.write_locked();
        let event = match (instances.get(&name).cloned(), read) {
            (None, Some(new)) => {
                instances.insert(name, new.clone());
                ServiceCacheEvent::Added(new)
            }
            (Some(old), Some(new)) => {
                instances.insert(name, new.clone());
                ServiceCacheEvent::Updated { old, new }
            }
            (Some(old), None) => {
                instances.remove(&name);
                ServiceCacheEvent::Removed(old)
            }
            (None, None) => return,
        };
        drop(instances);
        self.emit(event);
    }

    fn apply_deleted(&self, node: &CachedNode) {
        if node.path() == self.path {
            return;
        }
        let removed = self.instances.write_locked().remove(node.name());
        if let Some(old) = removed {
            self.emit(ServiceCacheEvent::Removed(old));
        }
    }

    /// Turns the node cache's events into instance events, until it is closed.
    async fn follow(self: Arc<Self>, mut events: CacheEvents) {
        while let Some(event) = events.next().await {
            match event {
                CacheEvent::Created(node) => self.apply_present(&node),
                CacheEvent::Changed { new, .. } => self.apply_present(&new),
                CacheEvent::Deleted(node) => self.apply_deleted(&node),
                CacheEvent::Initialized => {
                    self.loads.send_modify(|loads| *loads += 1);
                    self.emit(ServiceCacheEvent::Synced);
                }
            }
        }
        self.subscribers.close();
    }
}
