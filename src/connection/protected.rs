//! Protected creates (Curator's `withProtection()`), and the background deletes that keep
//! them from leaking nodes.
//!
//! A create whose answer is lost to a connection drop may or may not have happened. Curator's
//! answer, kept here so Java and Rust processes name nodes alike, is to prefix the node name
//! with `_c_<uuid>-`: after reconnecting, the creator lists the parent and recognises its own
//! node by the prefix. We also check that the node's ephemeral owner is the current session
//! (CURATOR-498): a node made by an earlier, expired session is not ours, whatever its name.

use std::sync::Arc;
use std::time::Instant;

use futures::future::Either;
use uuid::Uuid;
use zookeeper_client::{Acl, CreateMode, Stat};

use super::{acls_or_default, ensure_parents, unless_down_for, Client, Session};
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

/// The length of every [`protection_prefix`]: `_c_`, a hyphenated UUID, `-`.
pub(crate) const PROTECTION_PREFIX_LEN: usize = 3 + 36 + 1;

/// The protection prefix of one create attempt: `_c_<uuid>-`, Curator's format.
pub(crate) fn protection_prefix() -> String {
    format!("_c_{}-", Uuid::new_v4())
}

/// Polls `requests` (a future whose first poll sends its requests, as
/// [`Client::create_protected_then_list`]'s does when the client is connected) once, so that
/// they are on the wire before whatever the caller sends next; its output if that poll
/// finished it. Unconstrained by tokio's cooperative budget, which could otherwise defer the
/// poll, and with it the send, behind the caller's next request.
pub(crate) fn send_now<F: std::future::Future + Unpin>(requests: &mut F) -> Option<F::Output> {
    use futures::FutureExt;
    tokio::task::unconstrained(requests).now_or_never()
}

/// What [`Client::create_protected_then_list`] sends with the create, in the same round trip.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WithCreate<'a> {
    /// List the parent (with its stat) right behind the create, in the same round trip.
    /// ZooKeeper answers a session's requests in order, so the listing includes the new node
    /// unless someone deleted it meanwhile.
    pub(crate) list_parent: bool,
    /// A node of ours to delete in the same transaction as the create, so that the server
    /// commits both at once (one log write, where a delete and a create sent back to back
    /// often take two). Tried once, and only when the node lives on the session the create
    /// goes to; [`Created::replaced`] says whether it happened.
    pub(crate) replacing: Option<&'a ProtectedNode>,
    /// Counts the background delete of the node an abandoned create may have made (the
    /// future dropped while the create was in flight), so that the caller can wait until
    /// every node it gave up is gone.
    pub(crate) abandoned: Option<&'a BackgroundDeletes>,
}

/// Deletes running in the background (of dropped holds, withdrawn waiters, abandoned
/// creates) that have not ended: a recipe that reports itself closed, or out of a queue,
/// waits for them (for a bounded time), so that no node of its is still to be seen when it
/// says so. A delete counts until its attempts under the retry policy end; the clean-up of an
/// abandoned create, until it has found and deleted the node or the session is gone.
#[derive(Debug, Clone)]
pub(crate) struct BackgroundDeletes(tokio::sync::watch::Sender<usize>);

impl Default for BackgroundDeletes {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(0))
    }
}

impl BackgroundDeletes {
    /// Counts one delete until the ticket is dropped: take it before the delete is spawned,
    /// and drop it once the delete has ended.
    pub(crate) fn start(&self) -> BackgroundDelete {
        self.0.send_modify(|n| *n += 1);
        BackgroundDelete(self.0.clone())
    }

    /// Resolves once every delete started so far has ended.
    pub(crate) async fn settled(&self) {
        let mut counted = self.0.subscribe();
        let _ = counted.wait_for(|n| *n == 0).await;
    }
}

/// One counted delete of [`BackgroundDeletes`]; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct BackgroundDelete(tokio::sync::watch::Sender<usize>);

impl Drop for BackgroundDelete {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// The read of a node's stat, for a server that left it out of a transaction's answer.
pub(crate) type PendingStat =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Stat>> + Send>>;

/// A listing of a parent with the parent's stat (one `getChildren2`).
pub(crate) struct ParentListing {
    pub(crate) children: Vec<String>,
    /// The parent's stat when listed: its czxid tells which incarnation of the parent it is.
    pub(crate) parent: Stat,
}

/// The outcome of [`Client::create_protected_then_list`].
pub(crate) struct Created {
    /// The node made. Its `stat` is a placeholder while `pending_stat` is set.
    pub(crate) node: ProtectedNode,
    /// The read of the node's stat, when the server did not send it with the create (see
    /// [`PendingStat`]); it is on the wire already.
    pub(crate) pending_stat: Option<PendingStat>,
    /// The listing asked for, or `None` when the create had to be recovered after a
    /// connection loss (or the listing failed).
    pub(crate) listing: Option<ParentListing>,
    /// True if [`WithCreate::replacing`] was deleted by the create's transaction; when false
    /// the node may or may not be gone, and the caller must delete it.
    pub(crate) replaced: bool,
}

/// Why one create attempt failed.
enum CreateFailure {
    /// The transaction's first operation failed (the delete of the node being replaced, or the
    /// check a create is made under); nothing was done.
    Replace(zookeeper_client::Error),
    /// The create failed (or the whole transaction, for a failure of the request itself).
    Create(zookeeper_client::Error),
}

impl From<zookeeper_client::Error> for CreateFailure {
    fn from(e: zookeeper_client::Error) -> Self {
        Self::Create(e)
    }
}

/// Awaits a transaction of one guarding operation (a delete of the node replaced, or a check)
/// followed by a create: the created node's stat (invalid when the server leaves it out,
/// ZOOKEEPER-4026) and sequence (-1 when its name has none).
async fn create_in_transaction(
    commit: impl std::future::Future<
        Output = std::result::Result<
            Vec<zookeeper_client::MultiWriteResult>,
            zookeeper_client::MultiWriteError,
        >,
    >,
) -> std::result::Result<(Stat, i64), CreateFailure> {
    use zookeeper_client::{MultiWriteError, MultiWriteResult};
    match commit.await {
        Ok(results) => {
            let Some(MultiWriteResult::Create { path, stat }) = results.into_iter().nth(1) else {
                return Err(CreateFailure::Create(
                    zookeeper_client::Error::UnexpectedError(
                        "a transaction answered without its create".into(),
                    ),
                ));
            };
            let sequence = sequence_suffix(&path).unwrap_or(-1);
            Ok((stat, sequence))
        }
        Err(MultiWriteError::OperationFailed { index: 0, source }) => {
            Err(CreateFailure::Replace(source))
        }
        Err(MultiWriteError::OperationFailed { source, .. })
        | Err(MultiWriteError::RequestFailed { source }) => Err(CreateFailure::Create(source)),
    }
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
    /// * [`Error::InvalidArgument`] if the create would exceed the client's
    ///   [`max_request_size`](Client::max_request_size);
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
        let created = self
            .create_protected_then_list(parent, name, data, mode, acls, WithCreate::default())
            .await?;
        let mut node = created.node;
        if let Some(read) = created.pending_stat {
            node.stat = read.await?;
        }
        Ok(node)
    }

    /// What a protected create of `<parent>/_c_<uuid>-<name>` checks before anything is sent
    /// (the paths, and the request's size against
    /// [`max_request_size`](Client::max_request_size)): whether `mode` is sequential, and the
    /// ACLs to create with (`acls`, or the client's defaults when empty).
    fn prepare_protected<'a>(
        &'a self,
        parent: &str,
        name: &str,
        data: &[u8],
        mode: CreateMode,
        acls: &'a [Acl],
    ) -> Result<(bool, &'a [Acl])> {
        validate_path(parent)?;
        if name.contains('/') {
            return Err(Error::invalid_path(
                name,
                "a node name must not contain '/'",
            ));
        }
        let unprefixed = join(parent, name);
        validate_path(&unprefixed)?;
        let sequential = super::is_sequential(mode);
        // The node's full name adds the protection prefix, and 10 digits for sequential modes.
        let digits = if sequential { 10 } else { 0 };
        self.check_request(
            "create",
            &unprefixed,
            PROTECTION_PREFIX_LEN + digits,
            data.len(),
            acls,
        )?;
        let acls = if acls.is_empty() {
            &self.shared.config.default_acls[..]
        } else {
            acls
        };
        Ok((sequential, acls))
    }

    /// [`create_protected`](Self::create_protected), with what `with` asks for: a
    /// listing of `parent` in the same round trip, and a node of ours deleted in the same
    /// transaction. Its first poll puts the requests on the wire when the client is connected
    /// (see [`send_now`]).
    pub(crate) async fn create_protected_then_list(
        &self,
        parent: &str,
        name: &str,
        data: &[u8],
        mode: CreateMode,
        acls: &[Acl],
        with: WithCreate<'_>,
    ) -> Result<Created> {
        let (sequential, acls) = self.prepare_protected(parent, name, data, mode, acls)?;
        let options = mode.with_acls(acls_or_default(acls));
        let started = Instant::now();
        let mut retries = 0u32;
        let mut parent_rebuilds = 0u32;
        let mut replacing = with.replacing;
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
            let mut orphan = OrphanGuard::new(self, &session, parent, &prefix, with.abandoned);
            // Only a node of this very session can go in its transaction; an older session's
            // node is the caller's to delete.
            let replaced = replacing
                .take()
                .filter(|old| Arc::ptr_eq(&old.session, &session));
            // Every request is on the wire before any is awaited: the listing follows the create.
            let create = send_create(&zk, &path, data, &options, replaced)?;
            let listing = with.list_parent.then(|| zk.get_children(parent));
            let create = unless_down_for(&zk, self.connection_timeout(), create);
            match create.await.unwrap_or(Err(CreateFailure::Create(
                zookeeper_client::Error::ConnectionLoss,
            ))) {
                Ok((stat, sequence)) => {
                    tracing::trace!(%parent, %prefix, sequence, "protected create answered");
                    let sequence = sequential.then_some(sequence);
                    let (node, pending_stat) =
                        created_node(self, &zk, parent, &prefix, name, sequence, stat, session);
                    let children = match listing {
                        Some(listing) => listing
                            .await
                            .ok()
                            .map(|(children, parent)| ParentListing { children, parent }),
                        None => None,
                    };
                    // Only now, with no await left: dropped while awaiting the listing, the
                    // guard must still delete the node.
                    orphan.disarm();
                    return Ok(Created {
                        node,
                        pending_stat,
                        listing: children,
                        replaced: replaced.is_some(),
                    });
                }
                Err(CreateFailure::Replace(e)) => {
                    // The delete failed, so nothing was done: create alone, at once. The
                    // caller deletes the old node, and sees why it could not be deleted.
                    tracing::debug!(error = %e, "deleting the replaced node in the create's transaction failed");
                    orphan.disarm();
                }
                Err(CreateFailure::Create(zookeeper_client::Error::NoNode)) => {
                    // Nothing was created. Make the parents and go again; a parent that keeps
                    // vanishing (a container reaped under us) is bounded by the retry count.
                    orphan.disarm();
                    drop(listing);
                    self.make_parents(
                        &zk,
                        &path,
                        acls,
                        &mut parent_rebuilds,
                        &mut retries,
                        started,
                    )
                    .await?;
                }
                Err(CreateFailure::Create(e)) if is_retryable_zk(&e) => {
                    drop(listing);
                    let error = Error::from(e);
                    match self
                        .find_protected(&session, parent, &prefix, sequential)
                        .await
                    {
                        Ok(Some(node)) => {
                            orphan.disarm();
                            tracing::debug!(path = %node.path, "recovered a protected create after a connection loss");
                            // Whether a transaction's delete happened is not known: the caller
                            // deletes the old node again (a gone node is no error).
                            return Ok(Created {
                                node,
                                pending_stat: None,
                                listing: None,
                                replaced: false,
                            });
                        }
                        Ok(None) => orphan.disarm(),
                        // Still unknown: the guard deletes the node if it turns up.
                        Err(_) => drop(orphan),
                    }
                    self.backoff(error, &mut retries, started).await?;
                }
                Err(CreateFailure::Create(e)) => {
                    orphan.disarm();
                    return Err(e.into());
                }
            }
        }
    }

    /// Creates the ephemeral node `<parent>/_c_<uuid>-<name>` on `session` (sequential for
    /// [`CreateMode::EphemeralSequential`]), in one transaction with a check that the node
    /// `check` exists: the node is made only while `check` is there. For nodes that must never
    /// outlive the proof that a lock was held when they were made: a downgrade's read node (its
    /// write node), a semaphore's lease (the semaphore's internal lock). Missing parents are
    /// made as containers.
    ///
    /// # Behavior
    ///
    /// Only on `session`: a connection loss is recovered on the same session (the node is
    /// looked up by its prefix), never on another, where `check` would prove nothing.
    ///
    /// # Errors
    ///
    /// * [`Error::LockLost`] if `check` is gone, or `session` is lost;
    /// * [`Error::InvalidArgument`] if the create would exceed the client's
    ///   [`max_request_size`](Client::max_request_size);
    /// * [`Error::NoAuth`], and the errors of [`with_retry`](Client::with_retry) when the
    ///   retry policy gives up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a node the dropped future may have made is deleted in the background.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_while(
        &self,
        session: &Arc<Session>,
        check: &str,
        parent: &str,
        name: &str,
        data: &[u8],
        mode: CreateMode,
        acls: &[Acl],
    ) -> Result<ProtectedNode> {
        let (sequential, acls) = self.prepare_protected(parent, name, data, mode, acls)?;
        let options = mode.with_acls(acls_or_default(acls));
        let started = Instant::now();
        let mut retries = 0u32;
        let mut parent_rebuilds = 0u32;
        loop {
            let zk = match session.zookeeper() {
                Ok(zk) if !session.is_lost() => zk,
                _ => return Err(Error::LockLost),
            };
            let prefix = protection_prefix();
            let path = join(parent, &format!("{prefix}{name}"));
            let mut orphan = OrphanGuard::new(self, session, parent, &prefix, None);
            let mut transaction = zk.new_multi_writer();
            transaction.add_check_version(check, -1)?;
            transaction.add_create(&path, data, &options)?;
            let create = unless_down_for(
                &zk,
                self.connection_timeout(),
                create_in_transaction(transaction.commit()),
            );
            let error = match create.await.unwrap_or(Err(CreateFailure::Create(
                zookeeper_client::Error::ConnectionLoss,
            ))) {
                Ok((stat, sequence)) => {
                    tracing::trace!(%parent, %prefix, sequence, %check, "checked create answered");
                    let sequence = sequential.then_some(sequence);
                    let (mut node, pending_stat) = created_node(
                        self,
                        &zk,
                        parent,
                        &prefix,
                        name,
                        sequence,
                        stat,
                        session.clone(),
                    );
                    if let Some(read) = pending_stat {
                        // Read on `session` as the policy allows; a lost session took the
                        // node, and with it the proof `check` gave.
                        node.stat = read.await.map_err(|e| match e {
                            Error::SessionExpired | Error::Closed => Error::LockLost,
                            other => other,
                        })?;
                    }
                    orphan.disarm();
                    return Ok(node);
                }
                Err(CreateFailure::Replace(_)) => {
                    orphan.disarm();
                    return Err(Error::LockLost);
                }
                Err(CreateFailure::Create(zookeeper_client::Error::NoNode)) => {
                    // The parent is missing: nothing was created. Make it and go again.
                    orphan.disarm();
                    self.make_parents(
                        &zk,
                        &path,
                        acls,
                        &mut parent_rebuilds,
                        &mut retries,
                        started,
                    )
                    .await?;
                    continue;
                }
                Err(CreateFailure::Create(e)) if is_retryable_zk(&e) => e,
                // An answer without its create: the guard deletes the node, if there is one.
                Err(CreateFailure::Create(e @ zookeeper_client::Error::UnexpectedError(_))) => {
                    return Err(e.into());
                }
                Err(CreateFailure::Create(e)) => {
                    orphan.disarm();
                    return Err(match Error::from(e) {
                        Error::SessionExpired | Error::Closed => Error::LockLost,
                        other => other,
                    });
                }
            };
            match self
                .find_protected(session, parent, &prefix, sequential)
                .await
            {
                Ok(Some(node)) => {
                    orphan.disarm();
                    return Ok(node);
                }
                Ok(None) => orphan.disarm(),
                // Still unknown: the guard deletes the node if it turns up.
                Err(_) => drop(orphan),
            }
            self.backoff(error.into(), &mut retries, started).await?;
        }
    }

    /// Makes the missing parents of `path` (containers, with `acls`) after a create found its
    /// parent gone, and counts the rebuild: a parent that keeps vanishing (a container reaped
    /// under us) ends in `NoNode` after [`MAX_PARENT_REBUILDS`]. A retryable failure backs off
    /// as the retry policy allows.
    async fn make_parents(
        &self,
        zk: &zookeeper_client::Client,
        path: &str,
        acls: &[Acl],
        parent_rebuilds: &mut u32,
        retries: &mut u32,
        started: Instant,
    ) -> Result<()> {
        match ensure_parents(zk, path, acls_or_default(acls)).await {
            // A parent vanished again while the parents were made: one more rebuild, below.
            Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
            Err(e) if is_retryable_zk(&e) => self.backoff(e.into(), retries, started).await?,
            Err(e) => return Err(e.into()),
        }
        *parent_rebuilds += 1;
        if *parent_rebuilds > MAX_PARENT_REBUILDS {
            return Err(Error::ZooKeeper(zookeeper_client::Error::NoNode));
        }
        Ok(())
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
        let within = self.connection_timeout();
        // A sync first, sent with the listing (no round trip of its own): a create still in the
        // leader's pipeline when the connection dropped may commit after a lagging follower
        // would have answered the listing, and a node missed here is made a second time. The
        // server answers the listing only once it has caught up with the leader's sync.
        let synced = zk.sync(parent);
        let listing = zk.list_children(parent);
        let listed = unless_down_for(&zk, within, async {
            let (synced, listed) = futures::join!(synced, listing);
            match synced {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => listed,
                Err(e) => Err(e),
            }
        })
        .await;
        let children = match listed.ok_or(Error::ConnectionLoss)? {
            Ok(children) => children,
            Err(zookeeper_client::Error::NoNode) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(name) = children.into_iter().find(|c| c.starts_with(prefix)) else {
            return Ok(None);
        };
        let path = join(parent, &name);
        let read = unless_down_for(&zk, within, zk.check_stat(&path)).await;
        let Some(stat) = read.ok_or(Error::ConnectionLoss)?? else {
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
    /// gone, or the session is lost (see [`Session::retry_until_lost`]). Does not give up on
    /// connection loss.
    pub(crate) async fn guaranteed_delete(&self, session: &Arc<Session>, path: &str) -> Result<()> {
        let deleted = session
            .retry_until_lost(|zk| async move {
                match zk.delete(path, None).await {
                    Ok(()) | Err(zookeeper_client::Error::NoNode) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await;
        deleted.map(drop).map_err(Error::from)
    }

    /// [`guaranteed_delete`](Self::guaranteed_delete) of `node`, for a background task: a
    /// failure is logged as the delete of `what` (the node then goes with its session).
    pub(crate) async fn guaranteed_delete_or_warn(&self, node: &ProtectedNode, what: &str) {
        if let Err(e) = self.guaranteed_delete(&node.session, &node.path).await {
            tracing::warn!(path = %node.path, error = %e, "deleting {what} failed; it goes with its session");
        }
    }
}

/// Sends the create of `path`: alone, or in one transaction after the delete of `replaced`.
/// The request is on the wire when this returns; the future resolves to the node's stat and
/// sequence.
fn send_create<'a>(
    zk: &'a zookeeper_client::Client,
    path: &'a str,
    data: &[u8],
    options: &zookeeper_client::CreateOptions<'_>,
    replaced: Option<&ProtectedNode>,
) -> Result<
    impl std::future::Future<Output = std::result::Result<(Stat, i64), CreateFailure>> + Send + 'a,
> {
    Ok(match replaced {
        Some(old) => {
            let mut transaction = zk.new_multi_writer();
            transaction.add_delete(&old.path, None)?;
            transaction.add_create(path, data, options)?;
            Either::Left(create_in_transaction(transaction.commit()))
        }
        None => {
            let create = zk.create(path, data, options);
            Either::Right(async move {
                let (stat, sequence) = create.await?;
                Ok((stat, sequence.into_i64()))
            })
        }
    })
}

/// The node a create made: `<parent>/<prefix><name>[<sequence>]`, with its stat, or a read of
/// the stat (sent now, so that it costs the caller no round trip of its own unless it needs the
/// stat at once) when the server left it out of a transaction's answer (ZOOKEEPER-4026).
#[allow(clippy::too_many_arguments)]
fn created_node(
    client: &Client,
    zk: &zookeeper_client::Client,
    parent: &str,
    prefix: &str,
    name: &str,
    sequence: Option<i64>,
    stat: Stat,
    session: Arc<Session>,
) -> (ProtectedNode, Option<PendingStat>) {
    let name = match sequence {
        Some(sequence) => format!("{prefix}{name}{sequence:010}"),
        None => format!("{prefix}{name}"),
    };
    let path = join(parent, &name);
    let pending_stat = (stat.czxid <= 0).then(|| {
        let first_read = zk.check_stat(&path);
        Box::pin(read_created_stat(
            client.clone(),
            session.clone(),
            path.clone(),
            first_read,
        )) as PendingStat
    });
    let node = ProtectedNode {
        path,
        name,
        stat,
        sequence,
        session,
    };
    (node, pending_stat)
}

/// The stat of `path`, a node just created on `session` whose create's answer lacked it
/// (ZOOKEEPER-4026): the answer to `first_read`, sent right behind the create, or, after a
/// connection loss, to a read sent again on the same session, as often as the client's retry
/// policy allows. The create succeeded, so a transient failure of the read that follows it
/// must not fail the operation (nor leave its node to a background delete).
///
/// # Errors
///
/// `NoNode` if the node is gone, [`Error::SessionExpired`] if `session` is lost (its ephemeral
/// nodes with it), and the error the retry policy gives up on.
async fn read_created_stat(
    client: Client,
    session: Arc<Session>,
    path: String,
    first_read: impl std::future::Future<
        Output = std::result::Result<Option<Stat>, zookeeper_client::Error>,
    >,
) -> Result<Stat> {
    let started = Instant::now();
    let mut retries = 0u32;
    let mut answer = first_read.await;
    loop {
        match answer {
            Ok(Some(stat)) => return Ok(stat),
            Ok(None) => return Err(Error::ZooKeeper(zookeeper_client::Error::NoNode)),
            Err(e) if is_retryable_zk(&e) => {
                tracing::debug!(%path, error = %e, "reading a created node's stat failed; reading again on its session");
                client.backoff(e.into(), &mut retries, started).await?;
            }
            Err(e) => return Err(e.into()),
        }
        // Read on the node's own session only: on another, an ephemeral node is gone anyway.
        let read = match session.zookeeper() {
            Ok(zk) if !session.is_lost() => zk.check_stat(&path),
            _ => return Err(Error::SessionExpired),
        };
        answer = read.await;
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
    /// Where the clean-up, if it runs, is counted.
    counted_in: Option<BackgroundDeletes>,
    armed: bool,
}

impl OrphanGuard {
    fn new(
        client: &Client,
        session: &Arc<Session>,
        parent: &str,
        prefix: &str,
        counted_in: Option<&BackgroundDeletes>,
    ) -> Self {
        Self {
            client: client.clone(),
            session: session.clone(),
            parent: parent.to_owned(),
            prefix: prefix.to_owned(),
            counted_in: counted_in.cloned(),
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
        // Counted from here, before the task runs: whoever waits for the count sees it.
        let counted = self.counted_in.as_ref().map(BackgroundDeletes::start);
        self.client.spawn(async move {
            if let Err(e) = delete_orphans(&client, &session, &parent, &prefix).await {
                tracing::error!(%parent, %prefix, error = %e, "could not clean up the node of an abandoned create; it stays until its session ends");
            }
            drop(counted);
        });
    }
}

async fn delete_orphans(
    client: &Client,
    session: &Arc<Session>,
    parent: &str,
    prefix: &str,
) -> Result<()> {
    // Listed on the creating session, so the listing is answered after the create it follows.
    let children = session
        .retry_until_lost(|zk| async move {
            match zk.list_children(parent).await {
                Err(zookeeper_client::Error::NoNode) => Ok(Vec::new()),
                other => other,
            }
        })
        .await?;
    for child in children
        .unwrap_or_default()
        .iter()
        .filter(|c| c.starts_with(prefix))
    {
        let path = join(parent, child);
        tracing::debug!(%path, "deleting the node of an abandoned create");
        client.guaranteed_delete(session, &path).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_prefix_is_curators_format() {
        let prefix = protection_prefix();
        assert!(prefix.starts_with("_c_") && prefix.ends_with('-'));
        assert_eq!(prefix.len(), PROTECTION_PREFIX_LEN);
        assert_ne!(prefix, protection_prefix());
    }

    #[test]
    fn sequence_suffix_reads_ten_digits() {
        assert_eq!(sequence_suffix("_c_x-lock-0000000042"), Some(42));
        assert_eq!(sequence_suffix("lock-42"), None);
        assert_eq!(sequence_suffix("lock-"), None);
    }
}
