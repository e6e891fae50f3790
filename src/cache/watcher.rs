//! [`PersistentWatcher`]: a persistent (optionally recursive) watch that the client keeps set
//! across reconnections and new sessions, as a stream that says when events may have been
//! missed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use zookeeper_client::{AddWatchMode, EventType, SessionState};

use crate::connection::{Backoff, Client, Session};
use crate::error::{Error, Result};

/// What a [`PersistentWatcher`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatcherEvent {
    /// The watch is set (again): on the first start, after a reconnection, and on a new
    /// session. Changes made before this item may not have been reported: a persistent watch's
    /// events during a disconnection are lost (ZOOKEEPER-4698), so read again whatever you
    /// rely on. The first item of every stream.
    Reset,
    /// A node was created.
    Created(String),
    /// A node's data changed.
    DataChanged(String),
    /// A node was deleted.
    Deleted(String),
    /// The watched node's children changed (a non-recursive watch only: a recursive watch
    /// reports each child's creation and deletion instead).
    ChildrenChanged(String),
}

impl WatcherEvent {
    /// The path of a node event; `None` for [`Reset`](WatcherEvent::Reset).
    pub fn path(&self) -> Option<&str> {
        match self {
            WatcherEvent::Reset => None,
            WatcherEvent::Created(path)
            | WatcherEvent::DataChanged(path)
            | WatcherEvent::Deleted(path)
            | WatcherEvent::ChildrenChanged(path) => Some(path),
        }
    }
}

/// A persistent watch on a path (Curator's `recipes.watch.PersistentWatcher`, on ZooKeeper
/// 3.6+'s `addWatch`), kept set by the client for as long as its stream lives.
///
/// # Behavior
///
/// * [`start`](Self::start) sets the watch (`PERSISTENT`, or `PERSISTENT_RECURSIVE` for the
///   whole subtree) and returns a stream of [`WatcherEvent`]s whose first item is
///   [`WatcherEvent::Reset`]. The path need not exist: its creation is an event.
/// * After a disconnection, zookeeper-client sets the watch again on the same session, but the
///   server does not replay what changed meanwhile: the stream yields `Reset` once the
///   connection is back. After the session is lost, the watch is set on the client's next
///   session, then `Reset`.
/// * The stream ends when the client is closed; dropping it removes the watch.
///
/// ZooKeeper does not support a one-shot and a persistent watch on the same path in one
/// session (ZOOKEEPER-4466): do not watch paths that recipes of the same client watch (a lock's
/// nodes, a latch's node), or use a client of its own.
///
/// ```no_run
/// use futures::StreamExt;
/// use zk_recipes::cache::{PersistentWatcher, WatcherEvent};
///
/// # async fn demo(client: zk_recipes::Client) -> zk_recipes::Result<()> {
/// let mut events = PersistentWatcher::new(&client, "/config", true)?.start().await?;
/// while let Some(event) = events.next().await {
///     match event {
///         WatcherEvent::Reset => { /* read what you rely on again */ }
///         other => println!("{other:?}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PersistentWatcher {
    client: Client,
    path: String,
    recursive: bool,
}

impl PersistentWatcher {
    /// A watcher of `path`; `recursive` watches every node below it too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a path ZooKeeper would reject.
    pub fn new(client: &Client, path: &str, recursive: bool) -> Result<Self> {
        crate::path::validate_path(path)?;
        Ok(Self {
            client: client.clone(),
            path: path.to_owned(),
            recursive,
        })
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the watch covers the whole subtree.
    pub fn is_recursive(&self) -> bool {
        self.recursive
    }

    /// Sets the watch and returns its events, beginning with [`WatcherEvent::Reset`].
    ///
    /// # Errors
    ///
    /// * [`Error::Unsupported`] if the server has no persistent watches (before 3.6);
    /// * [`Error::NoAuth`] if the server refuses the watch;
    /// * the errors of [`Client::with_retry`] when the retry policy gives up on the
    ///   connection.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a watch set by a dropped call is removed.
    pub async fn start(&self) -> Result<WatcherEvents> {
        let (session, watcher) = self.set_watch_retried().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(WatcherEvent::Reset);
        let stop = CancellationToken::new();
        let task = WatchTask {
            watcher: self.clone(),
            tx,
            stop: stop.clone(),
        };
        self.client.spawn(task.run(session, watcher));
        Ok(WatcherEvents {
            rx,
            _stop: stop.drop_guard(),
        })
    }

    fn mode(&self) -> AddWatchMode {
        if self.recursive {
            AddWatchMode::PersistentRecursive
        } else {
            AddWatchMode::Persistent
        }
    }

    /// Sets the watch under the client's retry policy, on whatever session is current.
    async fn set_watch_retried(
        &self,
    ) -> Result<(Arc<Session>, zookeeper_client::PersistentWatcher)> {
        let mode = self.mode();
        let path = self.path.as_str();
        let outcome = self
            .client
            .with_retry(|zk| async move { zk.watch(path, mode).await })
            .await;
        let watcher = outcome.map_err(unsupported)?;
        // The session the watch was set on: the current one, unless it changed meanwhile, in
        // which case the task's first look at it sees a lost session and sets the watch again.
        Ok((self.client.session(), watcher))
    }
}

/// Names the error of a server without `addWatch`.
fn unsupported(error: Error) -> Error {
    match error {
        Error::ZooKeeper(zookeeper_client::Error::Unimplemented) => Error::Unsupported {
            feature: "persistent watches",
            reason: "the server does not implement addWatch; it needs ZooKeeper 3.6 or later"
                .to_owned(),
        },
        other => other,
    }
}

/// The stream of a [`PersistentWatcher`]: see [`WatcherEvent`]. Ends when the client is
/// closed; dropping it removes the watch.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct WatcherEvents {
    rx: mpsc::UnboundedReceiver<WatcherEvent>,
    _stop: DropGuard,
}

impl Stream for WatcherEvents {
    type Item = WatcherEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatcherEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The task that forwards a watch's events and sets it again on every new session.
struct WatchTask {
    watcher: PersistentWatcher,
    tx: mpsc::UnboundedSender<WatcherEvent>,
    stop: CancellationToken,
}

/// Why a session's watch stopped reporting.
enum Ended {
    /// The stream was dropped, or the client closed: the task ends.
    Stopped,
    /// The connection is back after a drop: set the watch again on the same session.
    Reconnected,
    /// The session is gone: set the watch on the next one.
    SessionLost,
}

impl WatchTask {
    async fn run(
        self,
        mut session: Arc<Session>,
        mut watcher: zookeeper_client::PersistentWatcher,
    ) {
        loop {
            let set = match self.forward(&session, &mut watcher).await {
                Ended::Stopped => return,
                // zookeeper-client 0.11 leaves persistent watches out of the watches it sets
                // again on a new connection (its SetWatches names data, exist and child
                // watches only), so the watch is set again here; the server takes a second
                // addWatch of the same watch as a no-op. On the same session, unless that is
                // lost meanwhile.
                Ended::Reconnected => match self.set_on(&session).await {
                    Some(set) => Some(set),
                    None => self.set_on_next_session(&session).await,
                },
                // zookeeper-client's watcher must not be polled after its session ended.
                Ended::SessionLost => self.set_on_next_session(&session).await,
            };
            let Some((next_session, next_watcher)) = set else {
                return;
            };
            session = next_session;
            // The new watcher first, then the old one goes: a watcher dropped while another
            // of the same mode remains on the path removes nothing on the server.
            watcher = next_watcher;
            // Only now, with the watch known to be set: a read made after this item sees a
            // state that every later change is reported after.
            if self.tx.send(WatcherEvent::Reset).is_err() {
                return;
            }
        }
    }

    /// Forwards one session's events until it is lost, reconnected after a drop, or the task
    /// is stopped.
    async fn forward(
        &self,
        session: &Session,
        watcher: &mut zookeeper_client::PersistentWatcher,
    ) -> Ended {
        // Until the connection is back after a drop, events may be missing.
        let mut missed = false;
        loop {
            let event = tokio::select! {
                _ = self.stop.cancelled() => return Ended::Stopped,
                _ = self.tx.closed() => return Ended::Stopped,
                _ = self.watcher.client.closed() => return Ended::Stopped,
                _ = session.lost() => return Ended::SessionLost,
                event = watcher.changed() => event,
            };
            let forwarded = match event.event_type {
                EventType::Session => match event.session_state {
                    SessionState::Disconnected => {
                        missed = true;
                        None
                    }
                    SessionState::SyncConnected | SessionState::ConnectedReadOnly if missed => {
                        return Ended::Reconnected;
                    }
                    state if state.is_terminated() => return Ended::SessionLost,
                    _ => None,
                },
                EventType::NodeCreated => Some(WatcherEvent::Created(event.path)),
                EventType::NodeDataChanged => Some(WatcherEvent::DataChanged(event.path)),
                EventType::NodeDeleted => Some(WatcherEvent::Deleted(event.path)),
                EventType::NodeChildrenChanged => Some(WatcherEvent::ChildrenChanged(event.path)),
            };
            if let Some(forwarded) = forwarded {
                if self.tx.send(forwarded).is_err() {
                    return Ended::Stopped;
                }
            }
        }
    }

    /// Sets the watch on `session` for as long as it lives (the crate's rule for background
    /// work); `None` once it is lost or the task is stopped.
    async fn set_on(
        &self,
        session: &Arc<Session>,
    ) -> Option<(Arc<Session>, zookeeper_client::PersistentWatcher)> {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        loop {
            let zk = session.zookeeper().ok().filter(|_| !session.is_lost())?;
            let set = tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = session.lost() => return None,
                set = zk.watch(&self.watcher.path, self.watcher.mode()) => set,
            };
            drop(zk);
            match set {
                Ok(watcher) => return Some((session.clone(), watcher)),
                Err(error) => {
                    tracing::debug!(path = %self.watcher.path, %error, "setting a persistent watch failed; retrying");
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = session.lost() => return None,
                _ = backoff.sleep() => {}
            }
        }
    }

    /// Sets the watch on the first session after `lost`, for as long as it takes; `None` once
    /// the task is stopped or the client closed.
    async fn set_on_next_session(
        &self,
        lost: &Session,
    ) -> Option<(Arc<Session>, zookeeper_client::PersistentWatcher)> {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        loop {
            let session = tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = self.tx.closed() => return None,
                connected = self.watcher.client.connected() => connected.ok()?,
            };
            if session.generation() != lost.generation() && !session.is_lost() {
                if let Some(set) = self.set_on(&session).await {
                    return Some(set);
                }
                if self.stop.is_cancelled() {
                    return None;
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = backoff.sleep() => {}
            }
        }
    }
}
