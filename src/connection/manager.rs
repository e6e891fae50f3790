//! The connection manager's task: turns zookeeper-client session states into Curator's
//! connection states, and replaces a lost session with a new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use zookeeper_client::SessionState;

use super::{Backoff, Config, ConnectionState, Session, Shared, Snapshot};
use crate::error::{Error, Result};

/// The first reconnect backoff after a loss, doubled up to [`MAX_RECONNECT_BACKOFF`], with
/// jitter (see [`Backoff`]).
const MIN_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// Connects one session, applies the chroot (creating the namespace when missing), and returns
/// its handle. Tries until `deadline` (or for ever when `None`).
pub(crate) async fn connect_session(
    config: &Config,
    deadline: Option<Instant>,
) -> Result<zookeeper_client::Client> {
    let mut backoff = Backoff::new(MIN_RECONNECT_BACKOFF, MAX_RECONNECT_BACKOFF);
    loop {
        let attempt_budget = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => config.connection_timeout.max(config.session_timeout),
        };
        if attempt_budget.is_zero() {
            return Err(Error::ConnectionLoss);
        }
        let error = match tokio::time::timeout(attempt_budget, connect_once(config)).await {
            Ok(Ok(zk)) => return Ok(zk),
            // Configuration errors will not heal by retrying.
            Ok(Err(
                e @ (Error::InvalidArgument(_)
                | Error::InvalidPath { .. }
                | Error::AuthFailed
                | Error::NoAuth),
            )) => return Err(e),
            // zookeeper-client refused the settings (a connect string it cannot parse).
            Ok(Err(Error::ZooKeeper(zookeeper_client::Error::BadArguments(why)))) => {
                return Err(Error::InvalidArgument(format!(
                    "ZooKeeper client settings for {}: {why}",
                    config.hosts
                )))
            }
            Ok(Err(e)) => e,
            Err(_) => Error::ConnectionLoss,
        };
        // A server whose certificate the settings reject will not accept a retry either.
        #[cfg(feature = "tls")]
        if let Some(tls) = &config.tls {
            let servers = super::endpoint::endpoints(&config.hosts);
            if let Some(refused) = tls.diagnose(servers, config.connection_timeout).await {
                return Err(refused);
            }
        }
        tracing::debug!(%error, hosts = %config.hosts, "connecting to ZooKeeper failed; backing off");
        let sleep = backoff.next_pause();
        if let Some(d) = deadline {
            if Instant::now() + sleep >= d {
                return Err(Error::ConnectionLoss);
            }
        }
        tokio::time::sleep(sleep).await;
    }
}

async fn connect_once(config: &Config) -> Result<zookeeper_client::Client> {
    let mut connector = zookeeper_client::Client::connector()
        .with_session_timeout(config.session_timeout)
        .with_connection_timeout(config.connection_timeout)
        .with_readonly(config.allow_read_only);
    for (scheme, auth) in &config.auth.0 {
        connector = connector.with_auth(scheme, auth);
    }
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls {
        connector = connector.with_tls(tls.client_options());
    }
    #[cfg(feature = "sasl")]
    if let Some(sasl) = &config.sasl {
        connector = connector.with_sasl(zookeeper_client::SaslOptions::digest_md5(
            sasl.user.clone(),
            sasl.password.clone(),
        ));
    }
    let zk = connector.connect(&config.hosts).await?;
    tracing::info!(session = %zk.session_id(), timeout = ?zk.session_timeout(), "ZooKeeper session established");
    if let Some(addresses) = &config.nodelay {
        addresses.resolve_and_apply().await;
    }
    let Some(chroot) = config.chroot() else {
        return Ok(zk);
    };
    if let Some(namespace) = &config.namespace {
        // The namespace is ours to create; the connect string's chroot must exist already.
        let base = config.connect_chroot.as_deref().unwrap_or("");
        if !base.is_empty() {
            require_node(&zk, base).await?;
        }
        let full = format!("{base}{namespace}");
        let acls = super::acls_or_default(&config.default_acls);
        match zk
            .create(
                &full,
                &[],
                &zookeeper_client::CreateMode::Persistent.with_acls(acls),
            )
            .await
        {
            Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
            Err(zookeeper_client::Error::NoNode) => {
                super::ensure_parents(&zk, &full, acls).await?;
                zk.mkdir(
                    &full,
                    &zookeeper_client::CreateMode::Persistent.with_acls(acls),
                )
                .await?;
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        require_node(&zk, &chroot).await?;
    }
    zk.chroot(chroot.clone())
        .map_err(|_| Error::invalid_path(chroot, "not a usable chroot"))
}

async fn require_node(zk: &zookeeper_client::Client, path: &str) -> Result<()> {
    match zk.check_stat(path).await? {
        Some(_) => Ok(()),
        None => Err(Error::InvalidArgument(format!(
            "the chroot {path} does not exist on the server"
        ))),
    }
}

/// The manager task. Runs until the client is closed.
pub(crate) async fn run(shared: Arc<Shared>, mut session: Arc<Session>) {
    loop {
        let mut states = session.zookeeper().ok().map(|zk| zk.state_watcher());
        let ended_by = match states.as_mut() {
            Some(states) => watch_session(&shared, &session, states).await,
            None => SessionEnd::Lost("the session was released"),
        };
        if let SessionEnd::Lost(reason) = ended_by {
            session.mark_lost();
            tracing::warn!(session = %session.id(), %reason, "ZooKeeper session lost");
            publish(&shared, ConnectionState::Lost, None);
        } else {
            // Letting go of the session's handle makes zookeeper-client send the server a
            // CloseSession; its state turns `Closed` once the server has answered, that is once
            // the session's ephemeral nodes are gone. Wait for that (boundedly: a handle held
            // elsewhere, or no connection, keeps the session open until it expires).
            session.mark_closed();
            if let Some(states) = states.as_mut() {
                wait_terminated(states, shared.config.connection_timeout).await;
            }
            break;
        }
        let generation = session.generation() + 1;
        drop(session);
        // Connect a new session for as long as the client is open.
        let zk = tokio::select! {
            zk = reconnect_forever(&shared.config) => zk,
            _ = shared.closed.cancelled() => break,
        };
        session = Arc::new(Session::new(zk, generation));
        publish(&shared, ConnectionState::Reconnected, Some(session.clone()));
    }
    // Closed. From now on `Client::session()` is the released session, marked closed. End
    // every state stream, then wake `close()`.
    shared.current.borrow().session.mark_closed();
    shared.current.send_modify(|_| {});
    shared.fanout.close();
    shared.stopped.cancel();
    tracing::info!("ZooKeeper client closed");
}

/// Waits until the session's zookeeper-client state is terminal, for at most `within`.
async fn wait_terminated(states: &mut zookeeper_client::StateWatcher, within: Duration) {
    let terminated = async {
        let mut state = states.state();
        while !state.is_terminated() {
            state = states.changed().await;
        }
        tracing::debug!(?state, "ZooKeeper session released");
    };
    if tokio::time::timeout(within, terminated).await.is_err() {
        tracing::warn!(
            ?within,
            "the closed client's session did not close in time; handles from \
             Client::zookeeper() still held keep it open until they are dropped or it expires"
        );
    }
}

async fn reconnect_forever(config: &Config) -> zookeeper_client::Client {
    loop {
        match connect_session(config, None).await {
            Ok(zk) => return zk,
            Err(e) => {
                // Only configuration errors end up here (a namespace we may not create, auth
                // refused). They may be fixed server-side, so keep trying, slowly and loudly.
                tracing::error!(error = %e, "cannot create a new ZooKeeper session; retrying");
                tokio::time::sleep(MAX_RECONNECT_BACKOFF).await;
            }
        }
    }
}

enum SessionEnd {
    Closed,
    Lost(&'static str),
}

/// Follows one session's states until it is lost or the client is closed.
async fn watch_session(
    shared: &Shared,
    session: &Session,
    states: &mut zookeeper_client::StateWatcher,
) -> SessionEnd {
    let mut suspended_since: Option<tokio::time::Instant> = None;
    // The round trip that proves a reconnection, while one is awaited.
    let mut confirming: Option<BoxFuture<'static, bool>> = None;
    let percent = shared.config.simulated_expiration_percent;
    // A state that changed before the watcher was made is still in `states.state()`.
    let mut next_state = Some(states.state());
    loop {
        let state = match next_state.take() {
            Some(state) => state,
            None => {
                let lost_at =
                    suspended_since.map(|since| since + session.timeout() * percent / 100);
                tokio::select! {
                    biased;
                    _ = shared.closed.cancelled() => return SessionEnd::Closed,
                    state = states.changed() => state,
                    confirmed = until_answered(&mut confirming) => {
                        // Only ever pending while suspended: every way out of `Suspended`
                        // clears it.
                        confirming = None;
                        if confirmed {
                            suspended_since = None;
                            publish(shared, ConnectionState::Reconnected, None);
                        } else if states.peek_state() == SessionState::SyncConnected {
                            // The watcher may have merged a drop and the next connection into
                            // one `SyncConnected`, already seen: ask on that connection too.
                            confirming = Some(round_trip(session));
                        }
                        continue;
                    }
                    _ = sleep_until(lost_at) => {
                        // Curator's simulated expiration: the server has surely expired the
                        // session by now, even if this client cannot hear it say so.
                        return SessionEnd::Lost("suspended for longer than the session timeout");
                    }
                }
            }
        };
        match state {
            SessionState::Disconnected => {
                // An answer still to come would be about a connection that is gone.
                confirming = None;
                if suspended_since.is_none() {
                    suspended_since = Some(tokio::time::Instant::now());
                    session.record_interruption();
                    publish(shared, ConnectionState::Suspended, None);
                }
            }
            SessionState::SyncConnected => {
                if suspended_since.is_some() {
                    // A new socket; set before anyone hears of the reconnect and sends on it.
                    set_nodelay(shared);
                    // zookeeper-client reports `SyncConnected` on the server's connect
                    // response, before the rest of its handshake (watches set again, a ping).
                    // A connection that drops in between is reported `Disconnected` only at
                    // the next attempt, after its backoff, and that backoff keeps growing
                    // until a handshake completes. Publishing now would announce a
                    // connection that may not carry a request, and restart the simulated
                    // expiration's clock on it. So the reconnection is published once a
                    // request has made the round trip; until then the client stays
                    // suspended, and its clock keeps running from the first disconnect.
                    // Every `SyncConnected` is a new connection: a question pending from an
                    // earlier one is replaced, so that an answer means this one carries
                    // requests.
                    confirming = Some(round_trip(session));
                }
            }
            SessionState::ConnectedReadOnly => {
                set_nodelay(shared);
                suspended_since = None;
                confirming = None;
                if shared.current.borrow().state != ConnectionState::ReadOnly {
                    publish(shared, ConnectionState::ReadOnly, None);
                }
            }
            SessionState::Expired => return SessionEnd::Lost("the server expired the session"),
            SessionState::AuthFailed => return SessionEnd::Lost("authentication failed"),
            SessionState::Closed => {
                if shared.closed.is_cancelled() {
                    return SessionEnd::Closed;
                }
                return SessionEnd::Lost("the session was closed");
            }
        }
    }
}

/// A request through the session, answered only once zookeeper-client has completed a
/// handshake: it takes requests from its queue only on an established connection. True when
/// the server answered; false on any error, since a failed connection hands its pending
/// requests errors of many kinds.
fn round_trip(session: &Session) -> BoxFuture<'static, bool> {
    let Ok(zk) = session.zookeeper() else {
        return Box::pin(std::future::ready(false));
    };
    Box::pin(async move {
        // The server does not check ACLs for it, and a missing node is an answer too
        // (`Ok(None)`), so only a failed connection or session makes it fail.
        match zk.check_stat("/").await {
            Ok(_) => true,
            Err(error) => {
                tracing::debug!(%error, "a reconnection was not confirmed by a round trip");
                false
            }
        }
    })
}

/// The pending round trip's outcome; never ready when none is pending.
async fn until_answered(confirming: &mut Option<BoxFuture<'static, bool>>) -> bool {
    match confirming {
        Some(round_trip) => round_trip.await,
        None => std::future::pending().await,
    }
}

fn set_nodelay(shared: &Shared) {
    if let Some(addresses) = &shared.config.nodelay {
        addresses.apply();
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Publishes a transition: the snapshot first (so a subscriber woken by the transition sees
/// the new session), then every subscriber's queue.
fn publish(shared: &Shared, state: ConnectionState, new_session: Option<Arc<Session>>) {
    shared.current.send_modify(|snapshot: &mut Snapshot| {
        snapshot.state = state;
        if let Some(session) = new_session {
            snapshot.session = session;
        }
    });
    tracing::info!(%state, "ZooKeeper connection state");
    shared.fanout.publish(state);
}
