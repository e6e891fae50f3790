//! Server-side session expiry.

use std::time::{Duration, Instant};

use zookeeper_client::{Client, Error as ZkError, SessionInfo};

use super::TestingError;

/// How long [`expire_session`] keeps trying before it gives up. Under load (CI, with the
/// owner's process busy) 20 attempts in 30 s were once all taken back by the owner.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(60);
/// One attempt's handshake; attempts are retried until [`EXPIRY_DEADLINE`]. Short: an attempt
/// that loses the session to its owner mid-handshake reconnects at once inside the connector,
/// and so does the owner, and the two take the session from each other until the attempt
/// times out (under load, for the whole of a longer timeout).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between attempts, drawn at random below this: it lets the owner settle on the
/// session, so that the next attempt takes it from a still owner, not from one in the middle
/// of its own reconnection.
const MAX_PAUSE_BETWEEN_ATTEMPTS: Duration = Duration::from_millis(600);
/// How long a dropped client may take to send its close request.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Ends `session` on the server, as a session timeout would: ephemeral nodes are deleted,
/// watchers fire, and the client owning the session sees `SessionState::Expired` when it next
/// talks to the server.
///
/// It connects a second client with the same session id and password and closes it, which the
/// server treats as the session's close. Returns once a new connection with the session's
/// credentials is refused as expired. A session that has already expired is left as it is.
///
/// The server hands a session to the newest connection that presents it, so the owner, which
/// reconnects at once, and the second client take the session from each other until one close
/// gets through; attempts are therefore repeated, on a thread of their own so that they do not
/// wait for the owner's runtime.
///
/// # Errors
///
/// [`TestingError::ZooKeeper`] if the server refuses the session for another reason than
/// expiry (authentication, for one), [`TestingError::Timeout`] if the session is still alive
/// after 60 s (the server is unreachable, or every attempt lost the race),
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
    let started = Instant::now();
    let mut attempts = 0_u32;
    let mut last_failure = String::new();
    while started.elapsed() < EXPIRY_DEADLINE {
        attempts += 1;
        let connected = Client::connector()
            .with_session(session.clone())
            .with_session_timeout(ATTEMPT_TIMEOUT)
            .with_connection_timeout(ATTEMPT_TIMEOUT)
            .connect(connect_string)
            .await;
        match connected {
            Ok(client) => {
                // Dropping the only handle sends the close; wait until it went out.
                let mut state = client.state_watcher();
                drop(client);
                let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    while !state.changed().await.is_terminated() {}
                })
                .await;
                // The next attempt tells whether the close reached the server.
                last_failure = match closed {
                    Ok(()) => format!("attempt {attempts} closed the session"),
                    Err(_) => format!("attempt {attempts} connected but its close did not finish"),
                };
            }
            Err(ZkError::SessionExpired) => {
                tracing::info!(session = %session.id(), attempts, elapsed = ?started.elapsed(), "session expired");
                return Ok(());
            }
            // Lost the session to its owner mid-handshake, or the server is briefly away.
            Err(err @ (ZkError::ConnectionLoss | ZkError::Timeout | ZkError::NoHosts)) => {
                last_failure = format!("attempt {attempts} failed to connect: {err}");
            }
            Err(err) => {
                return Err(TestingError::ZooKeeper {
                    context: format!(
                        "connecting to {connect_string} with session {}",
                        session.id()
                    ),
                    source: err,
                })
            }
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
