//! Server-side session expiry.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zookeeper_client::{Client, SessionInfo};

use super::TestingError;

/// How long [`expire_session`] keeps trying before it gives up.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(30);
/// One attempt's connection and its answers.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between attempts, drawn at random below this: it lets the owner settle on the
/// session, so that the next attempt takes it from a still owner, not from one in the middle
/// of its own reconnection.
const MAX_PAUSE_BETWEEN_ATTEMPTS: Duration = Duration::from_millis(300);
/// The largest frame an attempt reads (a connect response is a few dozen bytes).
const MAX_FRAME: usize = 4096;
/// ZooKeeper's `closeSession` operation code.
const CLOSE_SESSION: i32 = -11;

/// Ends `session` on the server, as a session timeout would: ephemeral nodes are deleted,
/// watchers fire, and the client owning the session sees `SessionState::Expired` when it next
/// talks to the server.
///
/// It presents the session (its id and password) on a connection of its own, and closes it
/// there, which the server treats as the session's close. Returns once a new connection with
/// the session's credentials is refused as expired. A session that has already expired is
/// left as it is.
///
/// The server hands a session to the newest connection that presents it, and the owner
/// reconnects at once: an attempt that waited for its connect response before it sent its
/// close would often lose the session to the owner in between (under load, attempt after
/// attempt). So the close is sent in the same write as the connect request, and the server
/// reads it right after it has handed the session over. The connect request, which carries
/// the password zookeeper-client keeps to itself, is the one zookeeper-client writes for the
/// session, caught on a local listener. Attempts are repeated until one gets through, on a
/// thread of their own so that they do not wait for the owner's runtime.
///
/// # Errors
///
/// [`TestingError::ZooKeeper`] if the server refuses the session for another reason than
/// expiry (authentication, for one), [`TestingError::Timeout`] if the session is still alive
/// after 30 s (the server is unreachable, or every attempt lost the race),
/// [`TestingError::Io`] if the helper thread cannot be started.
pub async fn expire_session(
    connect_string: &str,
    session: &SessionInfo,
) -> Result<(), TestingError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let connect_string = connect_string.to_owned();
    let session = session.clone();
    std::thread::Builder::new()
        .name("zk-expire-session".to_owned())
        .spawn(move || {
            let outcome = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(expire(&connect_string, &session)),
                Err(err) => Err(TestingError::io(
                    "building a runtime to expire a session",
                    err,
                )),
            };
            let _ = done_tx.send(outcome);
        })
        .map_err(|err| TestingError::io("starting a thread to expire a session", err))?;
    done_rx.await.unwrap_or_else(|_| {
        Err(TestingError::io(
            "expiring a session",
            std::io::Error::other("the expiring thread panicked"),
        ))
    })
}

async fn expire(connect_string: &str, session: &SessionInfo) -> Result<(), TestingError> {
    let connect_request = capture_connect_request(session).await?;
    let servers = servers_of(connect_string);
    if servers.is_empty() {
        return Err(TestingError::InvalidArgument(format!(
            "no server in the connect string {connect_string:?}"
        )));
    }
    let started = Instant::now();
    let mut attempts = 0_u32;
    let mut last_failure = String::new();
    while started.elapsed() < EXPIRY_DEADLINE {
        attempts += 1;
        let server = servers[attempts as usize % servers.len()].as_str();
        let outcome =
            tokio::time::timeout(ATTEMPT_TIMEOUT, connect_and_close(server, &connect_request))
                .await
                .unwrap_or_else(|_| Err("no answer in time".to_owned()));
        match outcome {
            Ok(Attempt::Expired) => {
                tracing::info!(session = %session.id(), attempts, elapsed = ?started.elapsed(), "session expired");
                return Ok(());
            }
            // The next attempt tells whether the close reached the server.
            Ok(Attempt::Closed) => last_failure = format!("attempt {attempts} closed the session"),
            // Lost the session to its owner before the close, or the server is briefly away.
            Err(why) => last_failure = format!("attempt {attempts} on {server}: {why}"),
        }
        tracing::debug!(session = %session.id(), %last_failure, "checking whether the session expired");
        let pause = fastrand::u64(..MAX_PAUSE_BETWEEN_ATTEMPTS.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Err(TestingError::Timeout {
        what: format!("session {} to expire", session.id()),
        waited: EXPIRY_DEADLINE,
        detail: last_failure,
    })
}

/// What one attempt found.
enum Attempt {
    /// The server took the session and answered the close.
    Closed,
    /// The server refused the session as expired.
    Expired,
}

/// The `host:port` of each server of a connect string (`host:port,...[/chroot]`, with or
/// without `tcp://`).
fn servers_of(connect_string: &str) -> Vec<String> {
    let without_scheme = connect_string.replace("tcp://", "");
    let hosts = without_scheme.split('/').next().unwrap_or_default();
    hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The connect request zookeeper-client writes to present `session` (a whole frame, with its
/// length), caught on a local listener that answers nothing.
async fn capture_connect_request(session: &SessionInfo) -> Result<Vec<u8>, TestingError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|err| TestingError::io("listening for a connect request", err))?;
    let address = listener
        .local_addr()
        .map_err(|err| TestingError::io("listening for a connect request", err))?;
    let address = address.to_string();
    let connector = Client::connector();
    let connecting = connector
        .with_session(session.clone())
        .with_session_timeout(ATTEMPT_TIMEOUT)
        .with_connection_timeout(ATTEMPT_TIMEOUT)
        .connect(&address);
    let caught = async {
        let (mut stream, _) = listener.accept().await?;
        read_frame(&mut stream).await
    };
    let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT * 2, async {
        tokio::select! {
            caught = caught => caught,
            // It connects to nothing that answers: it can only fail.
            _ = connecting => Err(std::io::Error::other("zookeeper-client gave up first")),
        }
    })
    .await
    .unwrap_or_else(|_| Err(std::io::Error::other("no connect request in time")));
    outcome.map_err(|err| TestingError::io("catching the session's connect request", err))
}

/// Presents the session on a new connection to `server` with the close in the same write,
/// and reads the two answers.
async fn connect_and_close(server: &str, connect_request: &[u8]) -> Result<Attempt, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|err| format!("connecting: {err}"))?;
    let _ = stream.set_nodelay(true);
    let mut both = connect_request.to_vec();
    // The close: a request header (xid, type), as a frame.
    both.extend_from_slice(&8_i32.to_be_bytes());
    both.extend_from_slice(&1_i32.to_be_bytes());
    both.extend_from_slice(&CLOSE_SESSION.to_be_bytes());
    stream
        .write_all(&both)
        .await
        .map_err(|err| format!("sending: {err}"))?;
    let response = read_frame(&mut stream)
        .await
        .map_err(|err| format!("reading the connect response: {err}"))?;
    // The connect response: protocol version, then the negotiated timeout, which is 0 for a
    // session the server does not know (it expired).
    let timeout = response
        .get(8..12)
        .map(|bytes| i32::from_be_bytes(bytes.try_into().expect("four bytes")))
        .ok_or("a short connect response")?;
    if timeout <= 0 {
        return Ok(Attempt::Expired);
    }
    let reply = read_frame(&mut stream)
        .await
        .map_err(|err| format!("the owner took the session back before the close: {err}"))?;
    // The close's reply header: xid, zxid, error code.
    let error = reply
        .get(16..20)
        .map(|bytes| i32::from_be_bytes(bytes.try_into().expect("four bytes")))
        .ok_or("a short close reply")?;
    if error != 0 {
        return Err(format!("the close was refused with error code {error}"));
    }
    Ok(Attempt::Closed)
}

/// One frame (its 4-byte length and its body), as read from `stream`.
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0_u8; 4];
    stream.read_exact(&mut length).await?;
    let body_length = i32::from_be_bytes(length);
    let body_length = usize::try_from(body_length)
        .ok()
        .filter(|n| *n <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other(format!("a frame of {body_length} bytes")))?;
    let mut frame = length.to_vec();
    frame.resize(4 + body_length, 0);
    stream.read_exact(&mut frame[4..]).await?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_of_a_connect_string() {
        assert_eq!(servers_of("127.0.0.1:2181"), ["127.0.0.1:2181"]);
        assert_eq!(
            servers_of("a:1,b:2/chroot/path"),
            ["a:1", "b:2"],
            "the chroot is not a server"
        );
        assert_eq!(servers_of("tcp://a:1,tcp://b:2"), ["a:1", "b:2"]);
        assert!(servers_of("/only/a/chroot").is_empty());
    }
}
