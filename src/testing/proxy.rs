//! A fault-injecting TCP proxy in front of one ZooKeeper server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::TestingError;

const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BUFFER_SIZE: usize = 16 * 1024;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward everything at once.
    None,
    /// Forward everything, each chunk this much later than it arrived.
    Delay(Duration),
    /// Close every connection and every new one at once.
    Cut,
    /// Keep connections open and drop every byte in both directions.
    Blackhole,
    /// Close every connection; let each new one carry the server's first frame (its connect
    /// response) to the client, then close it.
    ConnectResponseOnly,
}

/// A TCP proxy on `127.0.0.1` in front of one upstream address that injects network faults,
/// like etcd's integration-test bridge.
///
/// * [`cut`](FaultProxy::cut): every connection is closed, and new ones are accepted and closed
///   at once, until [`restore`](FaultProxy::restore). A client sees `Disconnected` quickly.
/// * [`blackhole`](FaultProxy::blackhole): connections stay open but every byte is dropped in
///   both directions, new connections included. A client hears nothing and times out; the server
///   hears no pings and expires the session after its timeout.
/// * [`delay`](FaultProxy::delay): traffic flows, each direction `d` later (a round trip takes at
///   least `2 × d`).
/// * [`drop_after_connect_response`](FaultProxy::drop_after_connect_response): every connection
///   is closed, and each new one is closed right after the server's connect response reaches
///   the client. A flapping link: the client's handshake starts and never completes.
/// * [`restore`](FaultProxy::restore): back to plain forwarding. Connections that were
///   blackholed are closed on restore, because dropped bytes left their ZooKeeper streams out of
///   step; the client reconnects cleanly at once instead of waiting for its own timeout.
///   Delayed traffic already queued is still delivered, in order.
///
/// Dropping the proxy closes its listener and every connection.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    upstream: String,
    fault: watch::Sender<Fault>,
    accepted: Arc<AtomicU64>,
    shutdown: CancellationToken,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1, forwarding to `upstream` (`host:port`).
    ///
    /// The upstream is connected per client connection, so it may be down when the proxy starts.
    /// Must be called within a Tokio runtime; the proxy's tasks run on it.
    ///
    /// # Errors
    ///
    /// [`TestingError::InvalidArgument`] if `upstream` is not a single `host:port`,
    /// [`TestingError::Io`] if no listening socket can be opened.
    pub async fn start(upstream: &str) -> Result<FaultProxy, TestingError> {
        let upstream = upstream.trim();
        let valid = upstream.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !upstream.contains(',') && port.parse::<u16>().is_ok()
        });
        if !valid {
            return Err(TestingError::InvalidArgument(format!(
                "proxy upstream {upstream:?} is not one host:port"
            )));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|err| TestingError::io("binding the fault proxy", err))?;
        let address = listener
            .local_addr()
            .map_err(|err| TestingError::io("reading the fault proxy's address", err))?;
        let (fault, _) = watch::channel(Fault::None);
        let shutdown = CancellationToken::new();
        let accepted = Arc::new(AtomicU64::new(0));
        tokio::spawn(accept_loop(
            listener,
            upstream.to_owned(),
            fault.subscribe(),
            accepted.clone(),
            shutdown.clone(),
        ));
        tracing::debug!(%address, %upstream, "fault proxy listening");
        Ok(FaultProxy {
            address,
            upstream: upstream.to_owned(),
            fault,
            accepted,
            shutdown,
        })
    }

    /// The connect string for clients: `127.0.0.1:PORT` of the proxy.
    pub fn connect_string(&self) -> String {
        self.address.to_string()
    }

    /// The proxy's listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Closes every connection and refuses new ones (accepts and closes them) until
    /// [`restore`](FaultProxy::restore).
    pub fn cut(&self) {
        self.set(Fault::Cut);
    }

    /// Keeps connections open but drops every byte in both directions, for new connections too,
    /// until [`restore`](FaultProxy::restore).
    pub fn blackhole(&self) {
        self.set(Fault::Blackhole);
    }

    /// Forwards traffic with `delay` added in each direction, until
    /// [`restore`](FaultProxy::restore). Already open connections are delayed too.
    pub fn delay(&self, delay: Duration) {
        self.set(Fault::Delay(delay));
    }

    /// Closes every connection, and from now on lets each new connection carry only the
    /// server's first frame to the client (the answer to its connect request) before closing
    /// it, until [`restore`](FaultProxy::restore). The client hears that its session is
    /// re-established, then loses the connection before its handshake is done. It reads
    /// ZooKeeper's framing, so it applies to plaintext connections only.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = zk_recipes::testing::TestingServer::start().await?;
    /// let proxy = zk_recipes::testing::FaultProxy::start(&server.connect_string()).await?;
    /// let client = zk_recipes::Client::builder(proxy.connect_string()).connect().await?;
    /// proxy.drop_after_connect_response();
    /// // The client stays SUSPENDED: it never completes a handshake.
    /// proxy.restore();
    /// # Ok(()) }
    /// ```
    pub fn drop_after_connect_response(&self) {
        self.set(Fault::ConnectResponseOnly);
    }

    /// How many client connections the proxy has accepted so far, refused ones included: each
    /// is one connection attempt of a client.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Back to plain forwarding. Blackholed connections are closed, so clients reconnect.
    pub fn restore(&self) {
        self.set(Fault::None);
    }

    fn set(&self, fault: Fault) {
        tracing::info!(proxy = %self.address, upstream = %self.upstream, ?fault, "fault proxy");
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    fault: watch::Receiver<Fault>,
    accepted_count: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(err) => {
                // Usually too many open files; back off instead of spinning.
                tracing::warn!(%err, "fault proxy cannot accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        accepted_count.fetch_add(1, Ordering::SeqCst);
        if *fault.borrow() == Fault::Cut {
            drop(client);
            continue;
        }
        let connection = proxy_connection(client, upstream.clone(), fault.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = connection => {}
            }
        });
    }
}

/// Serves one client connection until either side closes it, or a fault change ends it.
async fn proxy_connection(client: TcpStream, upstream: String, mut fault: watch::Receiver<Fault>) {
    let _ = client.set_nodelay(true);
    let at_start = *fault.borrow_and_update();
    let upstream_stream = if at_start == Fault::Blackhole {
        // A blackholed connection never reaches the server: nothing would get through anyway.
        None
    } else {
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(err)) => {
                tracing::debug!(%upstream, %err, "fault proxy cannot reach upstream; closing client");
                return;
            }
            Err(_) => {
                tracing::debug!(%upstream, "fault proxy upstream connect timed out; closing client");
                return;
            }
        }
    };
    let (client_read, client_write) = client.into_split();
    let mut tasks = JoinSet::new();
    match upstream_stream {
        Some(upstream_stream) => {
            let _ = upstream_stream.set_nodelay(true);
            let (upstream_read, upstream_write) = upstream_stream.into_split();
            let (to_upstream, for_upstream) = mpsc::unbounded_channel();
            tasks.spawn(read_side(client_read, to_upstream, fault.clone()));
            tasks.spawn(ends_connection(write_side(for_upstream, upstream_write)));
            if at_start == Fault::ConnectResponseOnly {
                tasks.spawn(ends_connection(first_frame_only(
                    upstream_read,
                    client_write,
                )));
            } else {
                let (to_client, for_client) = mpsc::unbounded_channel();
                tasks.spawn(read_side(upstream_read, to_client, fault.clone()));
                tasks.spawn(ends_connection(write_side(for_client, client_write)));
            }
        }
        None => {
            // With no writer to drain into, the client's side ends the connection however it
            // ends.
            let (to_nowhere, _) = mpsc::unbounded_channel();
            let reader = read_side(client_read, to_nowhere, fault.clone());
            tasks.spawn(ends_connection(async move {
                reader.await;
            }));
            // Keep the client's write half open: the connection looks alive and silent.
            tasks.spawn(async move {
                let _client_write = client_write;
                std::future::pending::<Ended>().await
            });
        }
    }
    tasks.spawn(async move {
        // Compared with the fault this connection was set up under: a change made while the
        // upstream was being connected counts too.
        let mut previous = at_start;
        loop {
            let now = *fault.borrow_and_update();
            let closes = matches!(now, Fault::Cut | Fault::ConnectResponseOnly);
            let unblackholed = previous == Fault::Blackhole && now != Fault::Blackhole;
            if now != previous && (closes || unblackholed) {
                return Ended::Connection;
            }
            previous = now;
            if fault.changed().await.is_err() {
                return Ended::Connection;
            }
        }
    });
    // A side whose sender closed (end of stream) lets its writer drain what it read and
    // shut down; the first task to end the connection (a writer done or failed, a fault,
    // a side cut) ends them all: dropping the set aborts the others and closes both sockets.
    while let Some(Ok(Ended::Drained)) = tasks.join_next().await {}
}

/// `task`, as a task whose end ends the connection.
async fn ends_connection(task: impl std::future::Future<Output = ()>) -> Ended {
    task.await;
    Ended::Connection
}

/// How a task of a proxied connection ended.
enum Ended {
    /// A reader reached the end of its stream: its writer drains and ends the connection.
    Drained,
    /// The connection is over.
    Connection,
}

/// How long a connection that carried its first frame waits for the client to close it.
const FIRST_FRAME_LINGER: Duration = Duration::from_secs(5);

/// Copies the server's first frame (ZooKeeper frames are a 4-byte big-endian length and that
/// many bytes) to the client, then ends the connection.
async fn first_frame_only(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let mut length = [0u8; 4];
    if from.read_exact(&mut length).await.is_err() {
        return;
    }
    let mut body = vec![0; u32::from_be_bytes(length).min(1 << 20) as usize];
    if from.read_exact(&mut body).await.is_err() {
        return;
    }
    if to.write_all(&length).await.is_err() || to.write_all(&body).await.is_err() {
        return;
    }
    // A FIN behind the frame, not a reset: a reset could discard the frame before the client
    // reads it. The connection ends when the client, having read both, closes its side (the
    // reading task then ends), or after the linger.
    let _ = to.shutdown().await;
    tokio::time::sleep(FIRST_FRAME_LINGER).await;
}

/// A chunk of bytes and when it may be written.
type Chunk = (Instant, Vec<u8>);

/// Copies what `from` reads into `to`, as the fault allows: [`Ended::Drained`] at the end of
/// the stream (what it read is still to be written), [`Ended::Connection`] when a fault or a
/// failure ended it.
async fn read_side(
    mut from: OwnedReadHalf,
    to: mpsc::UnboundedSender<Chunk>,
    fault: watch::Receiver<Fault>,
) -> Ended {
    let mut buffer = vec![0; BUFFER_SIZE];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) => return Ended::Drained,
            Err(_) => return Ended::Connection,
            Ok(read) => read,
        };
        let due = match *fault.borrow() {
            Fault::None | Fault::ConnectResponseOnly => Instant::now(),
            Fault::Delay(delay) => Instant::now() + delay,
            Fault::Blackhole => continue,
            Fault::Cut => return Ended::Connection,
        };
        if to.send((due, buffer[..read].to_vec())).is_err() {
            return Ended::Connection;
        }
    }
}

async fn write_side(mut chunks: mpsc::UnboundedReceiver<Chunk>, mut to: OwnedWriteHalf) {
    // One queue per direction keeps chunks in order even when the delay changes.
    while let Some((due, bytes)) = chunks.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}
