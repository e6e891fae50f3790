//! ZooKeeper's four-letter words (`srvr`, `ruok`, ...), used to tell when a server serves.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TestingError;

/// The role a serving ZooKeeper server reports in its `srvr` output (`Mode: ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerMode {
    /// A standalone server.
    Standalone,
    /// The leader of a quorum.
    Leader,
    /// A follower in a quorum.
    Follower,
    /// An observer of a quorum.
    Observer,
    /// A read-only server (partitioned from its quorum, with read-only mode on).
    ReadOnly,
}

impl ServerMode {
    fn parse(mode: &str) -> Option<ServerMode> {
        match mode.trim() {
            "standalone" => Some(ServerMode::Standalone),
            "leader" => Some(ServerMode::Leader),
            "follower" => Some(ServerMode::Follower),
            "observer" => Some(ServerMode::Observer),
            "read-only" => Some(ServerMode::ReadOnly),
            _ => None,
        }
    }

    /// Whether a server in this mode serves clients with the quorum's data (not read-only).
    pub fn is_serving(self) -> bool {
        !matches!(self, ServerMode::ReadOnly)
    }
}

/// Sends a four-letter word (`srvr`, `ruok`, `mntr`, ...) to `address` (`host:port`) and returns
/// the whole answer.
///
/// The word must be in the server's `4lw.commands.whitelist`; a server that does not allow it
/// answers with an explanation instead.
///
/// # Errors
///
/// [`TestingError::Io`] if the connection fails or breaks, [`TestingError::Timeout`] if the
/// server does not answer within `timeout`.
pub async fn four_letter_word(
    address: &str,
    word: &str,
    timeout: Duration,
) -> Result<String, TestingError> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(TestingError::io(
            format!("four-letter word {word} to {address}"),
            err,
        )),
        Err(_) => Err(TestingError::Timeout {
            what: format!("an answer to {word} from {address}"),
            waited: timeout,
            detail: String::new(),
        }),
    }
}

/// Asks `address` (`host:port`) for its `srvr` status and returns its mode, or `None` when it
/// answers but does not serve yet ("This ZooKeeper instance is not currently serving requests").
///
/// Unlike `ruok`, which a server answers as soon as it listens, a mode means the server serves.
///
/// # Errors
///
/// As [`four_letter_word`]: the server cannot be reached or does not answer in time.
pub async fn server_mode(
    address: &str,
    timeout: Duration,
) -> Result<Option<ServerMode>, TestingError> {
    let answer = four_letter_word(address, "srvr", timeout).await?;
    Ok(parse_mode(&answer))
}

pub(crate) fn parse_mode(srvr_answer: &str) -> Option<ServerMode> {
    srvr_answer
        .lines()
        .find_map(|line| line.strip_prefix("Mode:"))
        .and_then(ServerMode::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_srvr_modes() {
        let answer =
            "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: leader\nNode count: 5\n";
        assert_eq!(parse_mode(answer), Some(ServerMode::Leader));
        assert_eq!(parse_mode("Mode: follower\n"), Some(ServerMode::Follower));
        assert_eq!(parse_mode("Mode: standalone"), Some(ServerMode::Standalone));
        assert_eq!(
            parse_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
        assert_eq!(parse_mode(""), None);
    }
}
