//! The classic three-client `LeaderSelector` demo program (`TestLeaderElection` of the Curator
//! walk-throughs): three clients with auto-requeue each lead for a
//! moment, give leadership up, and queue again, so leadership goes round in a fair rotation.
//!
//! ```text
//! cargo run --example leader_selector -- [--scale 0.1]
//! ```
//!
//! It connects to `ZK_CONNECT` (default 127.0.0.1:2181), or starts a test server when nothing
//! answers there. Like the original program, it runs for 30 seconds (scaled). Its path is
//! `/demo/leader-selector`, its own, so the `leader_latch` example (on `/demo/leader-latch`)
//! can run before or after it on the same server.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use support::{scale, scaled, zookeeper, BoxError};
use zk_recipes::{Client, LeaderSelector, LeaderSelectorListener, Leadership};

const PATH: &str = "/demo/leader-selector";
const CLIENT_COUNT: usize = 3;

/// The original's `CustomLeaderSelectorListenerAdapter`: leads for 2 seconds (scaled), then gives
/// leadership up.
struct Announce {
    name: String,
    leader_count: AtomicU32,
    work: Duration,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Announce {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let count = self.leader_count.fetch_add(1, Ordering::SeqCst) + 1;
        println!("{} is now the leader ({count} times)", self.name);
        // Simulated business logic; cut short if leadership is cancelled (SUSPENDED or LOST).
        tokio::select! {
            _ = tokio::time::sleep(self.work) => {}
            _ = leadership.cancelled() => println!("{} was interrupted", self.name),
        }
        println!("{} gave up leadership", self.name);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let scale = scale(1.0);
    let (connect, _server) = zookeeper().await?;
    let mut selectors = Vec::new();
    for i in 0..CLIENT_COUNT {
        let client = Client::builder(&connect)
            .session_timeout(Duration::from_secs(10))
            .connection_timeout(Duration::from_secs(3))
            .connect()
            .await?;
        println!("Client [{i}] Server connected...");
        let listener = Announce {
            name: format!("Client #{i}"),
            leader_count: AtomicU32::new(0),
            work: scaled(2.0, scale),
        };
        let selector = LeaderSelector::new(&client, PATH, listener)?
            .with_id(format!("Client #{i}"))
            .auto_requeue(true);
        selector.start()?;
        selectors.push((client, selector));
    }
    // The original program lets the clients take turns for 30 seconds, then stops.
    tokio::time::sleep(scaled(30.0, scale)).await;
    // From here the rotation ends: each close withdraws one client, cutting short a turn.
    println!("Stopping the clients...");
    for (client, selector) in selectors {
        selector.close().await?;
        client.close().await;
    }
    Ok(())
}
