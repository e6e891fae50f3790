//! The classic five-client `LeaderLatch` demo program (`TestLeaderLatch` of the Curator
//! walk-throughs): five clients race for one latch; each closes after `2 × (i + 5)` seconds,
//! and leadership passes to a client still running.
//!
//! ```text
//! cargo run --example leader_latch -- [--scale 0.1]
//! ```
//!
//! It connects to `ZK_CONNECT` (default 127.0.0.1:2181), or starts a test server when nothing
//! answers there. Its latch path is `/demo/leader-latch`, its own: the `leader_selector`
//! example uses `/demo/leader-selector`, so the two run back to back on one server, in either
//! order. (On one path they could not: the selector leaves its path behind as an empty
//! container node, which ZooKeeper reaps only a minute later, and a latch cannot race for a
//! path that holds one; it stops with `Error::PathOccupied`.)

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{scale, scaled, zookeeper, BoxError};
use zk_recipes::{Client, CloseMode, LeaderLatch, LeaderLatchListener};

const PATH: &str = "/demo/leader-latch";
const CLIENT_COUNT: usize = 5;

/// Prints what Curator's listener printed in the original program.
struct Announce(usize);

impl LeaderLatchListener for Announce {
    fn is_leader(&self) {
        println!("Client [{}] I am the leader !", self.0);
    }

    fn not_leader(&self) {
        println!("Client [{}] I am the follower !", self.0);
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let scale = scale(1.0);
    let (connect, _server) = zookeeper().await?;
    let mut clients = Vec::new();
    for i in 0..CLIENT_COUNT {
        let connect = connect.clone();
        clients.push(tokio::spawn(
            async move { schedule(i, &connect, scale).await },
        ));
    }
    for client in clients {
        client.await??;
    }
    Ok(())
}

async fn schedule(index: usize, connect: &str, scale: f64) -> Result<(), BoxError> {
    let client = Client::builder(connect)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(3))
        .connect()
        .await?;
    println!("Client [{index}] Server connected...");
    let latch = Arc::new(LeaderLatch::new(&client, PATH)?.with_id(index.to_string()));
    latch.add_listener(Announce(index));
    latch.start().await?;
    // Each client runs for a different time, as in the original program.
    tokio::time::sleep(scaled(2.0 * (index as f64 + 5.0), scale)).await;
    latch.close_with(CloseMode::NotifyLeader).await?;
    client.close().await;
    println!("Client [{}] Server closed...", latch.id());
    Ok(())
}
