//! `TCP_NODELAY` on the session's connection, which zookeeper-client opens without it.
//!
//! Why it matters: with Nagle's algorithm on, the kernel holds back a small write while an
//! earlier one is unacknowledged, and on a ZooKeeper connection the acknowledgement usually
//! rides on the server's answer. A request sent while another is in flight therefore leaves
//! only once that one is answered. The recipes pipeline requests (the listing sent just before
//! a selector's requeue transaction, the reads behind a create), and under Nagle each of them
//! costs the round trip that pipelining was meant to save. A packet capture of the selector
//! handoff showed exactly that: the transaction left the client only when the listing before
//! it had been answered.
//!
//! zookeeper-client (0.11) neither sets the option nor hands out its socket, so the socket is
//! found among the process's descriptors (`/proc/self/fd`) by its peer address being one of
//! the connect string's servers. Only Linux has that directory; elsewhere nothing is done.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::endpoint::Endpoint;
use crate::sync::Locked;

/// How long resolving the connect string's host names may take before the sockets are
/// looked for with the addresses resolved so far. The client has just resolved the same
/// names to connect, so this is normally answered from a cache.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The connect string's servers: their names, parsed once, and their socket addresses,
/// resolved when a session is established and reused when that session's connection comes
/// back (so that a reconnect never waits on name resolution).
#[derive(Clone, Debug)]
pub(crate) struct ServerAddresses {
    /// Each server in the connect string.
    endpoints: Arc<[Endpoint]>,
    resolved: Arc<Mutex<Vec<SocketAddr>>>,
}

impl ServerAddresses {
    pub(crate) fn new(endpoints: Vec<Endpoint>) -> Self {
        Self {
            endpoints: endpoints.into(),
            resolved: Arc::default(),
        }
    }

    /// Resolves the servers again, then sets `TCP_NODELAY` on the process's connections to
    /// them. Called when a new session has just connected.
    pub(crate) async fn resolve_and_apply(&self) {
        let mut addresses = Vec::new();
        for endpoint in self.endpoints.iter() {
            let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(resolved)) => addresses.extend(resolved),
                Ok(Err(error)) => {
                    tracing::debug!(%endpoint, %error, "resolving a ZooKeeper server for TCP_NODELAY failed")
                }
                Err(_) => {
                    tracing::debug!(%endpoint, "resolving a ZooKeeper server for TCP_NODELAY timed out")
                }
            }
        }
        *self.resolved.locked() = addresses;
        self.apply();
    }

    /// Sets `TCP_NODELAY` on the process's connections to the servers last resolved. Called
    /// when a session's connection has come back (zookeeper-client opened a new socket).
    pub(crate) fn apply(&self) {
        let addresses = self.resolved.locked().clone();
        if addresses.is_empty() {
            return;
        }
        match set_nodelay_on_connections_to(&addresses) {
            Ok(0) => tracing::debug!(
                ?addresses,
                "no connection to the ZooKeeper servers without TCP_NODELAY was found"
            ),
            Ok(count) => {
                tracing::debug!(count, "TCP_NODELAY set on connections to ZooKeeper")
            }
            Err(error) => {
                tracing::debug!(%error, "cannot set TCP_NODELAY on connections to ZooKeeper")
            }
        }
    }
}

/// Sets `TCP_NODELAY` on every socket of this process connected to one of `peers` that does
/// not have it yet; returns how many were changed.
fn set_nodelay_on_connections_to(peers: &[SocketAddr]) -> std::io::Result<usize> {
    let mut changed = 0;
    for_each_connection_to(peers, |socket| {
        if !socket.tcp_nodelay().unwrap_or(true) && socket.set_tcp_nodelay(true).is_ok() {
            changed += 1;
        }
    })?;
    Ok(changed)
}

/// Whether `TCP_NODELAY` is set, for each socket of this process connected to `peer`.
#[cfg(feature = "testing")]
pub(crate) fn nodelay_of_connections_to(peer: SocketAddr) -> std::io::Result<Vec<bool>> {
    let mut nodelay = Vec::new();
    for_each_connection_to(&[peer], |socket| {
        nodelay.extend(socket.tcp_nodelay().ok());
    })?;
    Ok(nodelay)
}

/// Calls `f` with every socket of this process whose peer is one of `peers`.
#[cfg(target_os = "linux")]
fn for_each_connection_to(
    peers: &[SocketAddr],
    mut f: impl FnMut(socket2::SockRef<'_>),
) -> std::io::Result<()> {
    use std::os::fd::{BorrowedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;

    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<RawFd>().ok())
        else {
            continue;
        };
        match std::fs::read_link(entry.path()) {
            Ok(target) if target.as_os_str().as_bytes().starts_with(b"socket:") => {}
            _ => continue,
        }
        // SAFETY: `fd` is one of this process's descriptors, listed a moment ago, and is used
        // only for getpeername, getsockopt and setsockopt calls; no memory and no ownership is
        // involved. If its owner closes it meanwhile, the calls fail with EBADF (ignored). If
        // the number is reused for a new descriptor, the calls either fail (not a socket) or
        // see that socket's own peer, so only connections to `peers` are ever passed to `f`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let Some(peer) = socket.peer_addr().ok().and_then(|peer| peer.as_socket()) else {
            continue;
        };
        if peers.contains(&peer) {
            f(socket);
        }
    }
    Ok(())
}

/// Stands in for the Linux version: no other platform lists its descriptors in `/proc`.
#[cfg(not(target_os = "linux"))]
fn for_each_connection_to(
    _peers: &[SocketAddr],
    _f: impl FnMut(socket2::SockRef<'_>),
) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "finding zookeeper-client's socket needs /proc/self/fd (Linux)",
    ))
}
