//! [`ServiceProvider`]: picks an instance of a service, with a strategy, skipping instances
//! reported down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::instance::{Payload, ServiceInstance};
use super::{ServiceCache, ServiceDiscovery};
use crate::error::Result;
use crate::sync::Locked;

/// How a [`ServiceProvider`] picks one instance among those it may give (Curator's
/// `ProviderStrategy`).
pub trait ProviderStrategy<P>: Send + Sync {
    /// One of `instances` (in the cache's order, filtered), or `None` when there is none.
    fn pick(&self, instances: &[Arc<ServiceInstance<P>>]) -> Option<Arc<ServiceInstance<P>>>;
}

/// Each instance in turn (Curator's `RoundRobinStrategy`): the first call gives the first
/// instance; the turn is kept across changes of the list.
#[derive(Debug, Default)]
pub struct RoundRobinStrategy {
    next: AtomicUsize,
}

impl RoundRobinStrategy {
    /// A strategy whose first pick is the first instance.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<P> ProviderStrategy<P> for RoundRobinStrategy {
    fn pick(&self, instances: &[Arc<ServiceInstance<P>>]) -> Option<Arc<ServiceInstance<P>>> {
        if instances.is_empty() {
            return None;
        }
        // Wraps around at usize::MAX (Curator's int counter goes negative after 2³¹ picks).
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(instances[turn % instances.len()].clone())
    }
}

/// An instance drawn at random (Curator's `RandomStrategy`).
#[derive(Debug, Default)]
pub struct RandomStrategy;

impl<P> ProviderStrategy<P> for RandomStrategy {
    fn pick(&self, instances: &[Arc<ServiceInstance<P>>]) -> Option<Arc<ServiceInstance<P>>> {
        if instances.is_empty() {
            return None;
        }
        Some(instances[fastrand::usize(..instances.len())].clone())
    }
}

/// The same instance for as long as it is there and unchanged, then another, picked by a
/// master strategy (Curator's `StickyStrategy`).
pub struct StickyStrategy<P> {
    master: Box<dyn ProviderStrategy<P>>,
    current: Mutex<Option<Arc<ServiceInstance<P>>>>,
    picks: AtomicUsize,
}

impl<P> std::fmt::Debug for StickyStrategy<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickyStrategy")
            .field("picks", &self.picks.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<P> StickyStrategy<P> {
    /// Sticks to the instances `master` picks.
    ///
    /// ```
    /// use zk_recipes::discovery::{RoundRobinStrategy, StickyStrategy};
    /// let sticky = StickyStrategy::<String>::new(RoundRobinStrategy::new());
    /// assert_eq!(sticky.instance_number(), None);
    /// ```
    pub fn new(master: impl ProviderStrategy<P> + 'static) -> Self {
        Self {
            master: Box::new(master),
            current: Mutex::new(None),
            picks: AtomicUsize::new(0),
        }
    }

    /// How many instances it has stuck to, minus one (Curator's `getInstanceNumber`, which
    /// starts at -1); `None` before the first.
    pub fn instance_number(&self) -> Option<usize> {
        self.picks.load(Ordering::Relaxed).checked_sub(1)
    }
}

impl<P: Send + Sync> ProviderStrategy<P> for StickyStrategy<P> {
    fn pick(&self, instances: &[Arc<ServiceInstance<P>>]) -> Option<Arc<ServiceInstance<P>>> {
        let mut current = self.current.locked();
        // The cache gives a changed instance a new Arc: still there and unchanged is "the same
        // Arc is in the list" (Curator compares every field).
        if let Some(stuck) = current.as_ref() {
            if instances.iter().any(|i| Arc::ptr_eq(i, stuck)) {
                return Some(stuck.clone());
            }
        }
        *current = self.master.pick(instances);
        if current.is_some() {
            self.picks.fetch_add(1, Ordering::Relaxed);
        }
        current.clone()
    }
}

/// When an instance counts as down (Curator's `DownInstancePolicy`): after `error_threshold`
/// errors reported with [`ServiceProvider::note_error`], for `timeout` from the first of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownInstancePolicy {
    /// How long an instance stays down, from its first error.
    pub timeout: Duration,
    /// How many errors make an instance down.
    pub error_threshold: usize,
}

impl Default for DownInstancePolicy {
    /// Curator's: 30 s, 2 errors.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            error_threshold: 2,
        }
    }
}

/// The errors reported per instance of one service (Curator's `DownInstanceManager`).
#[derive(Debug)]
struct DownInstances {
    policy: DownInstancePolicy,
    /// Instance id → errors and the first one's time.
    errors: Mutex<HashMap<String, (usize, Instant)>>,
}

impl DownInstances {
    fn note_error<P>(&self, instance: &ServiceInstance<P>) {
        let now = Instant::now();
        let mut errors = self.errors.locked();
        let entry = errors.entry(instance.id.clone()).or_insert((0, now));
        if now.duration_since(entry.1) >= self.policy.timeout {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Keeps the instances that are not down; forgets errors older than the timeout. With no
    /// error reported (the usual case) it costs one uncontended lock.
    fn keep_up<P>(&self, instances: &mut Vec<Arc<ServiceInstance<P>>>) {
        let mut errors = self.errors.locked();
        if errors.is_empty() {
            return;
        }
        let now = Instant::now();
        errors.retain(|_, (_, first)| now.duration_since(*first) < self.policy.timeout);
        instances.retain(|instance| {
            errors
                .get(instance.id.as_str())
                .is_none_or(|(count, _)| *count < self.policy.error_threshold)
        });
    }
}

/// Which instances a provider may give, besides the down and the disabled ones.
type InstanceFilter<P> = Box<dyn Fn(&ServiceInstance<P>) -> bool + Send + Sync>;

/// Picks instances of one service (Curator's `ServiceProvider`): a [`ServiceCache`] of the
/// service, the instances that pass the filters (the caller's, then "not down", then
/// "enabled"), and a [`ProviderStrategy`] to pick among them.
///
/// ```no_run
/// # async fn demo(discovery: zk_recipes::discovery::ServiceDiscovery<String>) -> zk_recipes::Result<()> {
/// use zk_recipes::discovery::RandomStrategy;
///
/// let provider = discovery.service_provider("billing").strategy(RandomStrategy).build()?;
/// provider.start().await?;
/// if let Some(instance) = provider.get_instance() {
///     // ... call it; on a failure:
///     provider.note_error(&instance);
/// }
/// provider.close().await;
/// # Ok(()) }
/// ```
pub struct ServiceProvider<P: Payload> {
    cache: ServiceCache<P>,
    strategy: Box<dyn ProviderStrategy<P>>,
    filters: Vec<InstanceFilter<P>>,
    down: DownInstances,
}

impl<P: Payload> std::fmt::Debug for ServiceProvider<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("cache", &self.cache)
            .field("down_policy", &self.down.policy)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ServiceProvider`]: see [`ServiceDiscovery::service_provider`].
#[must_use = "a builder does nothing until built"]
pub struct ServiceProviderBuilder<P: Payload> {
    discovery: ServiceDiscovery<P>,
    name: String,
    strategy: Box<dyn ProviderStrategy<P>>,
    filters: Vec<InstanceFilter<P>>,
    policy: DownInstancePolicy,
}

impl<P: Payload> ServiceProviderBuilder<P> {
    pub(super) fn new(discovery: ServiceDiscovery<P>, name: &str) -> Self {
        Self {
            discovery,
            name: name.to_owned(),
            strategy: Box::new(RoundRobinStrategy::new()),
            filters: Vec::new(),
            policy: DownInstancePolicy::default(),
        }
    }

    /// The strategy; [`RoundRobinStrategy`] by default.
    ///
    /// ```no_run
    /// # fn demo(discovery: zk_recipes::discovery::ServiceDiscovery<String>) -> zk_recipes::Result<()> {
    /// use zk_recipes::discovery::{RoundRobinStrategy, StickyStrategy};
    /// let provider = discovery
    ///     .service_provider("billing")
    ///     .strategy(StickyStrategy::new(RoundRobinStrategy::new()))
    ///     .build()?;
    /// # drop(provider); Ok(()) }
    /// ```
    pub fn strategy(mut self, strategy: impl ProviderStrategy<P> + 'static) -> Self {
        self.strategy = Box::new(strategy);
        self
    }

    /// Adds a filter: only instances it accepts are given (Curator's `additionalFilter`).
    /// Filters run in the order added.
    ///
    /// ```no_run
    /// # fn demo(discovery: zk_recipes::discovery::ServiceDiscovery<String>) -> zk_recipes::Result<()> {
    /// let provider = discovery
    ///     .service_provider("billing")
    ///     .filter(|instance| instance.payload.as_deref() == Some("eu-west"))
    ///     .build()?;
    /// # drop(provider); Ok(()) }
    /// ```
    pub fn filter(
        mut self,
        keep: impl Fn(&ServiceInstance<P>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filters.push(Box::new(keep));
        self
    }

    /// When an instance counts as down; Curator's default (2 errors, 30 s) by default.
    ///
    /// ```no_run
    /// # fn demo(discovery: zk_recipes::discovery::ServiceDiscovery<String>) -> zk_recipes::Result<()> {
    /// use std::time::Duration;
    /// use zk_recipes::discovery::DownInstancePolicy;
    /// let provider = discovery
    ///     .service_provider("billing")
    ///     .down_instance_policy(DownInstancePolicy { timeout: Duration::from_secs(5), error_threshold: 1 })
    ///     .build()?;
    /// # drop(provider); Ok(()) }
    /// ```
    pub fn down_instance_policy(mut self, policy: DownInstancePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The provider, not started.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidPath`] for a service name that is not one path segment.
    pub fn build(self) -> Result<ServiceProvider<P>> {
        Ok(ServiceProvider {
            cache: ServiceCache::new(&self.discovery, &self.name)?,
            strategy: self.strategy,
            filters: self.filters,
            down: DownInstances {
                policy: self.policy,
                errors: Mutex::new(HashMap::new()),
            },
        })
    }
}

impl<P: Payload> ServiceProvider<P> {
    /// Starts its cache, and returns once the service's instances are read.
    ///
    /// # Errors
    ///
    /// As [`ServiceCache::start`].
    ///
    /// # Cancel safety
    ///
    /// As [`ServiceCache::start`].
    pub async fn start(&self) -> Result<()> {
        self.cache.start().await
    }

    /// Every instance it may give now: the cache's, filtered.
    pub fn all_instances(&self) -> Vec<Arc<ServiceInstance<P>>> {
        let mut instances = self.cache.instances();
        instances
            .retain(|instance| instance.enabled && self.filters.iter().all(|keep| keep(instance)));
        self.down.keep_up(&mut instances);
        instances
    }

    /// An instance, as the strategy picks it; `None` when there is none to give.
    pub fn get_instance(&self) -> Option<Arc<ServiceInstance<P>>> {
        self.strategy.pick(&self.all_instances())
    }

    /// Reports an error of `instance`: past the policy's threshold it is not given for the
    /// policy's timeout (Curator's `noteError`).
    pub fn note_error(&self, instance: &ServiceInstance<P>) {
        self.down.note_error(instance);
    }

    /// Its cache.
    pub fn cache(&self) -> &ServiceCache<P> {
        &self.cache
    }

    /// Stops its cache.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn close(&self) {
        self.cache.close().await;
    }
}
