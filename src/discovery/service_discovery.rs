//! [`ServiceDiscovery`]: registering instances, and querying the registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::instance::{validate_segment, JsonInstanceSerializer, Payload, ServiceInstance};
use super::{ServiceCache, ServiceProviderBuilder};
use crate::connection::Client;
use crate::error::{Error, Result};
use crate::nodes::PersistentNode;
use crate::path::join;

/// Registers service instances and finds them (Curator's `ServiceDiscovery`, from
/// curator-x-discovery), on Curator's layout: each instance is the node
/// `<base path>/<name>/<id>` holding its JSON ([`JsonInstanceSerializer`]), so Java services
/// using Curator and Rust ones find each other.
///
/// # Behavior
///
/// * **Registered instances are kept present** by a [`PersistentNode`] each: made again after
///   a new session (a dynamic instance's node goes with its session), after a deletion by
///   someone else, and after a reconnection that finds it gone, always with the latest data.
///   Curator re-registers after every reconnection, but not after a deletion.
/// * **A create whose answer is lost** is found again: a dynamic instance's path is fixed
///   (a retry finds the node), and a [`DynamicSequential`](super::ServiceType::DynamicSequential)
///   one is made with Curator's protected create.
/// * **Queries** read the registry afresh, with every read sent at once. An instance whose
///   node does not hold an instance (bad JSON, a payload that is not a `P`) is skipped, with a
///   trace event, where Curator's `queryForInstances` fails as a whole.
///
/// ```no_run
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::discovery::{ServiceDiscovery, ServiceInstance};
///
/// let discovery = ServiceDiscovery::<String>::builder(&client, "/services").build()?;
/// let me = ServiceInstance::builder("billing")
///     .address("10.0.0.7")
///     .port(8080)
///     .payload("eu-west".to_owned())
///     .build()?;
/// discovery.register(&me).await?;
/// for instance in discovery.query_for_instances("billing").await? {
///     println!("{} at {:?}:{:?}", instance.id, instance.address, instance.port);
/// }
/// discovery.close().await?;
/// # Ok(()) }
/// ```
pub struct ServiceDiscovery<P: Payload> {
    pub(super) inner: Arc<DiscoveryInner<P>>,
}

impl<P: Payload> Clone for ServiceDiscovery<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<P: Payload> std::fmt::Debug for ServiceDiscovery<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceDiscovery")
            .field("base_path", &self.inner.base_path)
            .finish()
    }
}

pub(super) struct DiscoveryInner<P: Payload> {
    pub(super) client: Client,
    pub(super) base_path: String,
    pub(super) serializer: JsonInstanceSerializer<P>,
    this_instance: Option<ServiceInstance<P>>,
    /// The registered instances by id, each with the node that keeps it.
    registered: tokio::sync::Mutex<BTreeMap<String, Registration<P>>>,
}

struct Registration<P> {
    instance: ServiceInstance<P>,
    node: PersistentNode,
}

/// Builds a [`ServiceDiscovery`]: see [`ServiceDiscovery::builder`].
#[must_use = "a builder does nothing until built"]
pub struct ServiceDiscoveryBuilder<P: Payload> {
    client: Client,
    base_path: String,
    serializer: JsonInstanceSerializer<P>,
    this_instance: Option<ServiceInstance<P>>,
}

impl<P: Payload> ServiceDiscoveryBuilder<P> {
    /// The serializer of the instances' JSON; Curator 5.4's default
    /// ([`JsonInstanceSerializer::new`]) by default.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::discovery::{JsonInstanceSerializer, ServiceDiscovery};
    /// let discovery = ServiceDiscovery::<serde_json::Value>::builder(&client, "/services")
    ///     .serializer(JsonInstanceSerializer::new().payload_class("com.example.InstanceDetails"))
    ///     .build()?;
    /// # drop(discovery); Ok(()) }
    /// ```
    pub fn serializer(mut self, serializer: JsonInstanceSerializer<P>) -> Self {
        self.serializer = serializer;
        self
    }

    /// An instance to register when the discovery starts (Curator's `thisInstance`).
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    /// let me = ServiceInstance::<()>::builder("billing").port(8080).build()?;
    /// let discovery = ServiceDiscovery::builder(&client, "/services").this_instance(me).build()?;
    /// # drop(discovery); Ok(()) }
    /// ```
    pub fn this_instance(mut self, instance: ServiceInstance<P>) -> Self {
        self.this_instance = Some(instance);
        self
    }

    /// The discovery, not started.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad base path (or `/`), or a bad `this_instance`.
    pub fn build(self) -> Result<ServiceDiscovery<P>> {
        crate::path::validate_recipe_path(&self.base_path)?;
        if let Some(instance) = &self.this_instance {
            instance.validate()?;
        }
        Ok(ServiceDiscovery {
            inner: Arc::new(DiscoveryInner {
                client: self.client,
                base_path: self.base_path,
                serializer: self.serializer,
                this_instance: self.this_instance,
                registered: tokio::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }
}

impl<P: Payload> ServiceDiscovery<P> {
    /// A builder for a discovery of the registry at `base_path`.
    ///
    /// ```no_run
    /// # fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
    /// let discovery = zk_recipes::discovery::ServiceDiscovery::<String>::builder(&client, "/services").build()?;
    /// # drop(discovery); Ok(()) }
    /// ```
    pub fn builder(client: &Client, base_path: &str) -> ServiceDiscoveryBuilder<P> {
        ServiceDiscoveryBuilder {
            client: client.clone(),
            base_path: base_path.to_owned(),
            serializer: JsonInstanceSerializer::new(),
            this_instance: None,
        }
    }

    /// The registry's path.
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    /// The client it uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The serializer of the instances' JSON.
    pub fn serializer(&self) -> &JsonInstanceSerializer<P> {
        &self.inner.serializer
    }

    /// The path of the service `name`: `<base path>/<name>`.
    pub fn path_for_name(&self, name: &str) -> String {
        join(&self.inner.base_path, name)
    }

    /// Registers the builder's [`this_instance`](ServiceDiscoveryBuilder::this_instance), if
    /// any (Curator's `start`).
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    ///
    /// # Cancel safety
    ///
    /// As [`register`](Self::register).
    pub async fn start(&self) -> Result<()> {
        if let Some(instance) = &self.inner.this_instance {
            self.register(instance).await?;
        }
        Ok(())
    }

    /// Registers `instance` and keeps it registered (see `# Behavior`), and returns once its
    /// node is on the server. Registering an id that is registered already updates it
    /// ([`update`](Self::update)).
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidPath`] for a name or id that is not one path segment;
    /// * [`Error::InvalidArgument`] for a payload that does not serialize, or an instance over
    ///   the client's [`max_request_size`](Client::max_request_size);
    /// * [`Error::Timeout`] if the node is not made within twice the session timeout (the
    ///   connection is down): the instance is not registered then, and nothing is left;
    /// * what stops a [`PersistentNode`] ([`Error::NoAuth`], ...): nothing is left either.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call registers nothing, and the node it may have made is
    /// deleted in the background.
    pub async fn register(&self, instance: &ServiceInstance<P>) -> Result<()> {
        instance.validate()?;
        let data = self.inner.serializer.serialize(instance)?;
        let mut registered = self.inner.registered.lock().await;
        if registered.contains_key(&instance.id) {
            drop(registered);
            return self.update(instance).await;
        }
        let path = join(&self.path_for_name(&instance.name), &instance.id);
        let mode = instance.service_type.create_mode();
        let node = PersistentNode::builder(&self.inner.client, &path, mode)
            .data(data)
            .protected(mode == zookeeper_client::CreateMode::EphemeralSequential)
            .build()?;
        node.start()?;
        let limit = self.inner.client.session_timeout() * 2;
        match node.wait_for_initial_create(limit).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = node.close().await;
                return Err(Error::Timeout(limit));
            }
            Err(error) => {
                let _ = node.close().await;
                return Err(error);
            }
        }
        tracing::debug!(%path, "service instance registered");
        registered.insert(
            instance.id.clone(),
            Registration {
                instance: instance.clone(),
                node,
            },
        );
        Ok(())
    }

    /// Writes `instance` over the registered instance of its id, and returns once its node
    /// holds it (Curator's `updateService`).
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`] if no instance of that id is registered, its name differs
    ///   from the registered one's, the payload does not serialize, or the instance is over
    ///   the request-size limit;
    /// * what stops its [`PersistentNode`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the new data is kept as soon as the call is made (see
    /// [`PersistentNode::set_data`]).
    pub async fn update(&self, instance: &ServiceInstance<P>) -> Result<()> {
        instance.validate()?;
        let data = self.inner.serializer.serialize(instance)?;
        let mut registered = self.inner.registered.lock().await;
        let Some(registration) = registered.get_mut(&instance.id) else {
            return Err(Error::InvalidArgument(format!(
                "service instance {} of {} is not registered",
                instance.id, instance.name
            )));
        };
        if registration.instance.name != instance.name
            || registration.instance.service_type != instance.service_type
        {
            return Err(Error::InvalidArgument(format!(
                "service instance {} is registered as {} ({}), not {} ({})",
                instance.id,
                registration.instance.name,
                registration.instance.service_type,
                instance.name,
                instance.service_type
            )));
        }
        registration.instance = instance.clone();
        registration.node.set_data(data).await
    }

    /// Unregisters the instance of `instance`'s id, deleting its node; an id not registered
    /// is fine (Curator's `unregisterService`).
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::close`]: the delete failed under the retry policy (an ephemeral
    /// node then goes with its session).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the instance is unregistered as soon as the call is made, and its node
    /// deleted in the background if the future is dropped.
    pub async fn unregister(&self, instance: &ServiceInstance<P>) -> Result<()> {
        let registration = self.inner.registered.lock().await.remove(&instance.id);
        match registration {
            Some(registration) => registration.node.close().await,
            None => Ok(()),
        }
    }

    /// The instances this discovery has registered.
    pub async fn registered(&self) -> Vec<ServiceInstance<P>> {
        self.inner
            .registered
            .lock()
            .await
            .values()
            .map(|r| r.instance.clone())
            .collect()
    }

    /// The names of the services in the registry; none when the base path does not exist
    /// (Curator fails with `NoNode`).
    ///
    /// # Errors
    ///
    /// The errors of [`Client::children`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn query_for_names(&self) -> Result<Vec<String>> {
        let mut names = self
            .inner
            .client
            .children(&self.inner.base_path)
            .await?
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// The instances of the service `name`, read now (every read sent at once), in node
    /// order. Nodes that hold no instance are skipped (see `# Behavior`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad name; the errors of [`Client::children`] and
    /// [`Client::get_data`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn query_for_instances(&self, name: &str) -> Result<Vec<ServiceInstance<P>>> {
        validate_segment(name, "a service name")?;
        let service = self.path_for_name(name);
        let mut children = self
            .inner
            .client
            .children(&service)
            .await?
            .unwrap_or_default();
        children.sort();
        let reads = children.iter().map(|child| {
            let path = join(&service, child);
            async move { (self.inner.client.get_data(&path).await, path) }
        });
        let mut instances = Vec::with_capacity(children.len());
        for (read, path) in futures::future::join_all(reads).await {
            let Some((data, _)) = read? else {
                continue; // Gone since the listing.
            };
            match self.inner.serializer.deserialize(&data) {
                Ok(instance) => instances.push(instance),
                Err(error) => {
                    tracing::warn!(%path, %error, "skipping a node that holds no service instance");
                }
            }
        }
        Ok(instances)
    }

    /// The instance `id` of the service `name`, read now; `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad name or id; [`Error::MalformedData`] if the node holds
    /// no instance; the errors of [`Client::get_data`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn query_for_instance(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Option<ServiceInstance<P>>> {
        validate_segment(name, "a service name")?;
        validate_segment(id, "an instance id")?;
        let path = join(&self.path_for_name(name), id);
        match self.inner.client.get_data(&path).await? {
            Some((data, _)) => self.inner.serializer.deserialize(&data).map(Some),
            None => Ok(None),
        }
    }

    /// A cache of the service `name`'s instances, not started: see [`ServiceCache`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a bad name.
    pub fn service_cache(&self, name: &str) -> Result<ServiceCache<P>> {
        ServiceCache::new(self, name)
    }

    /// A builder for a provider of the service `name`'s instances: see
    /// [`ServiceProvider`](super::ServiceProvider).
    pub fn service_provider(&self, name: &str) -> ServiceProviderBuilder<P> {
        ServiceProviderBuilder::new(self.clone(), name)
    }

    /// Unregisters every instance this discovery registered (their nodes are deleted, static
    /// and permanent ones too, as in Curator).
    ///
    /// # Errors
    ///
    /// The first failure of the unregistrations (each is tried).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the instances are unregistered as soon as the call is made.
    pub async fn close(&self) -> Result<()> {
        let registered = std::mem::take(&mut *self.inner.registered.lock().await);
        let mut outcome = Ok(());
        for (_, registration) in registered {
            if let Err(error) = registration.node.close().await {
                if outcome.is_ok() {
                    outcome = Err(error);
                }
            }
        }
        outcome
    }
}
