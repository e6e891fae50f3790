//! What a cache holds ([`CachedNode`]) and tells ([`CacheEvent`], [`CacheEvents`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use zookeeper_client::Stat;

/// One node as the cache holds it: its path, its stat and, unless the cache keeps stats only,
/// its data (Curator's `ChildData`).
///
/// Paths are absolute, as the client sees them (inside its namespace, if it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedNode {
    path: String,
    stat: Stat,
    data: Option<Vec<u8>>,
}

impl CachedNode {
    pub(super) fn new(path: String, stat: Stat, data: Option<Vec<u8>>) -> Self {
        Self { path, stat, data }
    }

    /// The node's absolute path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The node's name: the last segment of its path (empty for `/`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }

    /// The node's stat, as of the read that filled this entry.
    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    /// The node's data; `None` when the cache keeps stats only
    /// ([`CuratorCacheBuilder::stat_only`](super::CuratorCacheBuilder::stat_only)).
    pub fn data(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }
}

/// A change the cache saw, in the order it applied it.
///
/// For one path, events come in the order of the server's changes (see the module docs of
/// [`cache`](super)); intermediate states that came and went between two reads are not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A node the cache did not hold.
    Created(Arc<CachedNode>),
    /// A node's data (its `mzxid`) changed.
    Changed {
        /// The node as the cache held it before.
        old: Arc<CachedNode>,
        /// The node as it is now.
        new: Arc<CachedNode>,
    },
    /// A node the cache held is gone.
    Deleted(Arc<CachedNode>),
    /// The cache has read the whole tree (after its start, and again after every
    /// resynchronisation): it now holds what the server held at some moment after the read
    /// began, and every change from then on will be seen.
    Initialized,
}

impl CacheEvent {
    /// The path the event is about; `None` for [`Initialized`](CacheEvent::Initialized).
    pub fn path(&self) -> Option<&str> {
        match self {
            CacheEvent::Created(node) | CacheEvent::Deleted(node) => Some(node.path()),
            CacheEvent::Changed { new, .. } => Some(new.path()),
            CacheEvent::Initialized => None,
        }
    }

    /// True for [`Created`](CacheEvent::Created).
    pub fn is_created(&self) -> bool {
        matches!(self, CacheEvent::Created(_))
    }

    /// True for [`Changed`](CacheEvent::Changed).
    pub fn is_changed(&self) -> bool {
        matches!(self, CacheEvent::Changed { .. })
    }

    /// True for [`Deleted`](CacheEvent::Deleted).
    pub fn is_deleted(&self) -> bool {
        matches!(self, CacheEvent::Deleted(_))
    }
}

/// Which events a [`CacheEvents`] stream lets through.
type EventFilter = Box<dyn Fn(&CacheEvent) -> bool + Send + Sync>;

/// The stream of a cache's events from the moment it was made: every event, in order, none
/// dropped however slowly it is read (they queue in memory). It ends when the cache is
/// closed.
///
/// Filters narrow it ([`creates_only`](Self::creates_only), [`changes_only`](Self::changes_only),
/// [`deletes_only`](Self::deletes_only), [`under`](Self::under), [`filter`](Self::filter)); each
/// keeps [`CacheEvent::Initialized`], so a filtered stream still says when a
/// resynchronisation has ended.
#[must_use = "streams do nothing unless polled"]
pub struct CacheEvents {
    rx: mpsc::UnboundedReceiver<CacheEvent>,
    filters: Vec<EventFilter>,
}

impl std::fmt::Debug for CacheEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheEvents")
            .field("queued", &self.rx.len())
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl CacheEvents {
    pub(super) fn new(rx: mpsc::UnboundedReceiver<CacheEvent>) -> Self {
        Self {
            rx,
            filters: Vec::new(),
        }
    }

    /// Only the events `keep` accepts (and [`CacheEvent::Initialized`]).
    ///
    /// ```no_run
    /// # async fn demo(cache: zk_recipes::cache::CuratorCache) {
    /// let mut flags = cache
    ///     .events()
    ///     .filter(|event| event.path().is_some_and(|path| path.ends_with(".flag")));
    /// # }
    /// ```
    pub fn filter(mut self, keep: impl Fn(&CacheEvent) -> bool + Send + Sync + 'static) -> Self {
        self.filters.push(Box::new(keep));
        self
    }

    /// Only [`CacheEvent::Created`] (and [`CacheEvent::Initialized`]).
    ///
    /// ```no_run
    /// # async fn demo(cache: zk_recipes::cache::CuratorCache) {
    /// let mut joins = cache.events().creates_only();
    /// # }
    /// ```
    pub fn creates_only(self) -> Self {
        self.filter(CacheEvent::is_created)
    }

    /// Only [`CacheEvent::Changed`] (and [`CacheEvent::Initialized`]).
    ///
    /// ```no_run
    /// # async fn demo(cache: zk_recipes::cache::CuratorCache) {
    /// let mut updates = cache.events().changes_only();
    /// # }
    /// ```
    pub fn changes_only(self) -> Self {
        self.filter(CacheEvent::is_changed)
    }

    /// Only [`CacheEvent::Deleted`] (and [`CacheEvent::Initialized`]).
    ///
    /// ```no_run
    /// # async fn demo(cache: zk_recipes::cache::CuratorCache) {
    /// let mut leaves = cache.events().deletes_only();
    /// # }
    /// ```
    pub fn deletes_only(self) -> Self {
        self.filter(CacheEvent::is_deleted)
    }

    /// Only events about `path` and the nodes below it (and [`CacheEvent::Initialized`]).
    ///
    /// ```no_run
    /// # async fn demo(cache: zk_recipes::cache::CuratorCache) {
    /// let mut database_settings = cache.events().under("/config/database");
    /// # }
    /// ```
    pub fn under(self, path: &str) -> Self {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        let exact = path.to_owned();
        self.filter(move |event| {
            event
                .path()
                .is_some_and(|p| p == exact || p.starts_with(&prefix))
        })
    }

    fn keeps(&self, event: &CacheEvent) -> bool {
        matches!(event, CacheEvent::Initialized) || self.filters.iter().all(|keep| keep(event))
    }
}

impl Stream for CacheEvents {
    type Item = CacheEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CacheEvent>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(event)) if !self.keeps(&event) => continue,
                other => return other,
            }
        }
    }
}
