//! What every example needs: a ZooKeeper to talk to, and a time scale.
#![allow(dead_code)] // Each example uses a different part.

use std::time::Duration;

use zk_recipes::testing::TestingServer;

/// Errors of the examples' `main`s.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the examples connect when `ZK_CONNECT` is not set.
pub const DEFAULT_CONNECT: &str = "127.0.0.1:2181";

/// A running ZooKeeper: `ZK_CONNECT`, else one answering at 127.0.0.1:2181, else a
/// `TestingServer` started for this run (kept alive by the returned handle).
pub async fn zookeeper() -> Result<(String, Option<TestingServer>), BoxError> {
    if let Ok(connect) = std::env::var("ZK_CONNECT") {
        return Ok((connect, None));
    }
    let answers = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(DEFAULT_CONNECT),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if answers {
        return Ok((DEFAULT_CONNECT.to_owned(), None));
    }
    println!(
        "No ZooKeeper at {DEFAULT_CONNECT} and ZK_CONNECT is not set: starting a test server..."
    );
    let server = TestingServer::start().await?;
    println!("Test ZooKeeper running at {}", server.connect_string());
    Ok((server.connect_string(), Some(server)))
}

/// `--scale F` from the command line (default `default`): every delay of the original program is
/// multiplied by it, so `--scale 0.1` runs a 30-second demo in 3 seconds.
pub fn scale(default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--scale")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(default)
}

/// The number after `name` on the command line (`--workers 3`), or `default`.
pub fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `seconds` of the original program, scaled.
pub fn scaled(seconds: f64, scale: f64) -> Duration {
    Duration::from_secs_f64(seconds * scale)
}
