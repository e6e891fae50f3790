//! Protected creates (Curator's `withProtection()`), and the background deletes that keep
//! them from leaking nodes.
//!
//! A create whose answer is lost to a connection drop may or may not have happened. Curator's
//! answer, kept here so Java and Rust processes name nodes alike, is to prefix the node name
//! with `_c_<uuid>-`: after reconnecting, the creator lists the parent and recognises its own
//! node by the prefix. We also check that the node's ephemeral owner is the current session
//! (CURATOR-498): a node made by an earlier, expired session is not ours, whatever its name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use zookeeper_client::{Acl, CreateMode, Stat};

use super::{acls_or_default, ensure_parents, Client, Session};
use crate::error::{is_retryable_zk, Error, Result};
use crate::path::{join, validate_path};

/// How often a create may find its parent gone (a container node reaped, or deleted by
/// someone) and make it again before giving up.
const MAX_PARENT_REBUILDS: u32 = 5;

/// A node made by [`Client::create_protected`].
#[derive(Debug, Clone)]
pub struct ProtectedNode {
    /// The node's full path (under the client's namespace).
    pub path: String,
    /// The node's name: `_c_<uuid>-<name><sequence>`.
    pub name: String,
    /// The node's stat at creation; `stat.czxid` orders it among all writes of the ensemble.
    pub stat: Stat,
    /// The sequence number ZooKeeper appended, for sequential modes.
    pub sequence: Option<i64>,
    /// The session the node was created on, and that owns it if it is ephemeral.
    pub session: Arc<Session>,
}

/// The protection prefix of one create attempt: `_c_<uuid>-`, Curator's format.
pub(crate) fn protection_prefix() -> String {
    format!("_c_{}-", Uuid::new_v4())
}

impl Client {
    /// Creates `<parent>/_c_<uuid>-<name>` with Curator's protection, making missing parents as
    /// container nodes. For sequential modes ZooKeeper appends a 10-digit sequence.
    ///
    /// `acls` empty means the client's [default ACLs](super::ClientBuilder::default_acls).
    ///
    /// # Behavior
    ///
    /// If the create's answer is lost to a connection drop, the node is looked up after
    /// reconnecting by its prefix and by its ephemeral owner being this session. If it is not
    /// there (or the session changed) the create is tried again, with a fresh UUID, as the retry
    /// policy allows.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidPath`] for a bad `parent` or `name`;
    /// * [`Error::NoAuth`] when an ACL forbids the create;
    /// * [`Error::ZooKeeper`] with `NoChildrenForEphemerals` when the parent is ephemeral;
    /// * the errors of [`with_retry`](Client::with_retry) when the policy gives up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped while a create may be in flight, the node it may
    /// have made is deleted in the background (the lookup runs on the same session, behind the
    /// create, so it sees the node if the create succeeded).
    pub async fn create_protected(
        &self,
        parent: &str,
        name: &str,
        data: &[u8],
        mode: CreateMode,
        acls: &[Acl],
    ) -> Result<ProtectedNode> {
        self.create_protected_then_list(parent, name, data, mode, acls, false)
            .await
            .map(|(node, _)| node)
    }

    /// [`create_protected`](Self::create_protected), and when `list` is set, a listing of
    /// `parent` sent right behind the create, in the same round trip. ZooKeeper answers a
    /// session's requests in order, so the listing includes the new node. The listing is
    /// `None` when the create had to be recovered after a connection loss.
    pub(crate) async fn create_protected_then_list(
        &self,
        parent: &str,
        name: &str,
        data: &[u8],
        mode: CreateMode,
        acls: &[Acl],
        list: bool,
    ) -> Result<(ProtectedNode, Option<Vec<String>>)> {
        validate_path(parent)?;
        if name.contains('/') {
            return Err(Error::invalid_path(
                name,
                "a node name must not contain '/'",
            ));
        }
        validate_path(&join(parent, name))?;
        let acls = if acls.is_empty() {
            &self.shared.config.default_acls[..]
        } else {
            acls
        };
        let options = mode.with_acls(acls_or_default(acls));
        let sequential = matches!(
            mode,
            CreateMode::EphemeralSequential | CreateMode::PersistentSequential
        );
        let started = Instant::now();
        let mut retries = 0u32;
        let mut parent_rebuilds = 0u32;
        loop {
            let session = match self.connected_session().await {
                Ok(session) => session,
                Err(e) => {
                    self.backoff(e, &mut retries, started).await?;
                    continue;
                }
            };
            let Ok(zk) = session.zookeeper() else {
                continue;
            };
            let prefix = protection_prefix();
            let path = join(parent, &format!("{prefix}{name}"));
            let mut orphan = OrphanGuard::new(self, &session, parent, &prefix);
            // Both requests are on the wire before either is awaited.
            let create = zk.create(&path, data, &options);
            let listing = list.then(|| zk.list_children(parent));
            match create.await {
                Ok((stat, sequence)) => {
                    let children = match listing {
                        Some(listing) => listing.await.ok(),
                        None => None,
                    };
                    orphan.disarm();
                    let (name, sequence) = if sequential {
                        (
                            format!("{prefix}{name}{sequence}"),
                            Some(sequence.into_i64()),
                        )
                    } else {
                        (format!("{prefix}{name}"), None)
                    };
                    let node = ProtectedNode {
                        path: join(parent, &name),
                        name,
                        stat,
                        sequence,
                        session,
                    };
                    return Ok((node, children));
                }
                Err(zookeeper_client::Error::NoNode) => {
                    // Nothing was created. Make the parents and go again; a parent that keeps
                    // vanishing (a container reaped under us) is bounded by the retry count.
                    orphan.disarm();
                    drop(listing);
                    match ensure_parents(&zk, &path, acls_or_default(acls)).await {
                        Ok(()) => {}
                        Err(e) if is_retryable_zk(&e) => {
                            self.backoff(e.into(), &mut retries, started).await?
                        }
                        Err(e) => return Err(e.into()),
                    }
                    parent_rebuilds += 1;
                    if parent_rebuilds > MAX_PARENT_REBUILDS {
                        return Err(Error::ZooKeeper(zookeeper_client::Error::NoNode));
                    }
                }
                Err(e) if is_retryable_zk(&e) => {
                    drop(listing);
                    let error = Error::from(e);
                    match self
                        .find_protected(&session, parent, &prefix, sequential)
                        .await
                    {
                        Ok(Some(node)) => {
                            orphan.disarm();
                            tracing::debug!(path = %node.path, "recovered a protected create after a connection loss");
                            return Ok((node, None));
                        }
                        Ok(None) => orphan.disarm(),
                        // Still unknown: the guard deletes the node if it turns up.
                        Err(_) => drop(orphan),
                    }
                    self.backoff(error, &mut retries, started).await?;
                }
                Err(e) => {
                    orphan.disarm();
                    return Err(e.into());
                }
            }
        }
    }

    /// Looks for the node a protected create may have made on `session`: `Ok(None)` if it
    /// certainly does not exist (or its session is gone, which takes an ephemeral node with it).
    async fn find_protected(
        &self,
        session: &Arc<Session>,
        parent: &str,
        prefix: &str,
        sequential: bool,
    ) -> Result<Option<ProtectedNode>> {
        let current = self.connected_session().await?;
        if current.generation() != session.generation() || session.is_lost() {
            return Ok(None);
        }
        let zk = session.zookeeper()?;
        let children = match zk.list_children(parent).await {
            Ok(children) => children,
            Err(zookeeper_client::Error::NoNode) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(name) = children.into_iter().find(|c| c.starts_with(prefix)) else {
            return Ok(None);
        };
        let path = join(parent, &name);
        let Some(stat) = zk.check_stat(&path).await? else {
            return Ok(None);
        };
        // CURATOR-498: only a node owned by this very session is ours.
        if stat.ephemeral_owner != 0 && !session.owns(&stat) {
            return Ok(None);
        }
        let sequence = if sequential {
            sequence_suffix(&name)
        } else {
            None
        };
        Ok(Some(ProtectedNode {
            path,
            name,
            stat,
            sequence,
            session: session.clone(),
        }))
    }

    /// Deletes `path` on `session`, retrying retryable failures until it succeeds, the node is
    /// gone, or the session is lost. Does not give up on connection loss.
    pub(crate) async fn guaranteed_delete(&self, session: &Arc<Session>, path: &str) -> Result<()> {
        let mut backoff = Duration::from_millis(20);
        loop {
            if session.is_lost() {
                return Ok(());
            }
            let Ok(zk) = session.zookeeper() else {
                return Ok(());
            };
            match zk.delete(path, None).await {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => return Ok(()),
                Err(e) if is_retryable_zk(&e) => {
                    tracing::debug!(%path, error = %e, "delete failed; will retry");
                }
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                _ = session.lost() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// The digits ZooKeeper appended to a sequential node's name.
pub(crate) fn sequence_suffix(name: &str) -> Option<i64> {
    let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let suffix = &name[digits..];
    (suffix.len() >= 10).then(|| suffix.parse().ok()).flatten()
}

/// Deletes, in the background, whatever node a create with `prefix` made on `session`, unless
/// disarmed: the create's outcome is then known and accounted for.
struct OrphanGuard {
    client: Client,
    session: Arc<Session>,
    parent: String,
    prefix: String,
    armed: bool,
}

impl OrphanGuard {
    fn new(client: &Client, session: &Arc<Session>, parent: &str, prefix: &str) -> Self {
        Self {
            client: client.clone(),
            session: session.clone(),
            parent: parent.to_owned(),
            prefix: prefix.to_owned(),
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        if !self.armed || self.session.is_lost() {
            return;
        }
        let client = self.client.clone();
        let session = self.session.clone();
        let parent = std::mem::take(&mut self.parent);
        let prefix = std::mem::take(&mut self.prefix);
        self.client.spawn(async move {
            if let Err(e) = delete_orphans(&client, &session, &parent, &prefix).await {
                tracing::error!(%parent, %prefix, error = %e, "could not clean up the node of an abandoned create; it stays until its session ends");
            }
        });
    }
}

async fn delete_orphans(
    client: &Client,
    session: &Arc<Session>,
    parent: &str,
    prefix: &str,
) -> Result<()> {
    let mut backoff = Duration::from_millis(20);
    loop {
        if session.is_lost() {
            return Ok(());
        }
        let zk = match session.zookeeper() {
            Ok(zk) => zk,
            Err(_) => return Ok(()),
        };
        // Sent on the creating session, so it is answered after the create it follows.
        match zk.list_children(parent).await {
            Ok(children) => {
                for child in children.iter().filter(|c| c.starts_with(prefix)) {
                    let path = join(parent, child);
                    tracing::debug!(%path, "deleting the node of an abandoned create");
                    client.guaranteed_delete(session, &path).await?;
                }
                return Ok(());
            }
            Err(zookeeper_client::Error::NoNode) => return Ok(()),
            Err(e) if is_retryable_zk(&e) => {}
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = session.lost() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_prefix_is_curators_format() {
        let prefix = protection_prefix();
        assert!(prefix.starts_with("_c_") && prefix.ends_with('-'));
        assert_eq!(prefix.len(), 3 + 36 + 1);
        assert_ne!(prefix, protection_prefix());
    }

    #[test]
    fn sequence_suffix_reads_ten_digits() {
        assert_eq!(sequence_suffix("_c_x-lock-0000000042"), Some(42));
        assert_eq!(sequence_suffix("lock-42"), None);
        assert_eq!(sequence_suffix("lock-"), None);
    }
}
