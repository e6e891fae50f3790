//! A worker registry: workers join a group under `/demo/workers` with their address as payload
//! (`GroupMember`), and a watcher prints the membership as workers come and go.
//!
//! ```text
//! cargo run --example worker_registry                  # join as one worker, watch until Ctrl-C
//! cargo run --example worker_registry -- --demo 3      # 3 workers come, change and go; exit
//! ```
//!
//! Run several copies at once (or a Java process with Curator's `GroupMember` on the same
//! path): each joins, and each watcher sees the others. With `--demo N` the program starts N
//! workers itself, each on a session of its own: they join one by one, one moves to a new
//! port, one leaves, and the watcher prints each change and the group at the end.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use support::{arg, zookeeper, BoxError};
use zk_recipes::cache::{CacheEvent, CachedNode, CuratorCache};
use zk_recipes::{Client, GroupMember};

const GROUP: &str = "/demo/workers";

fn address(node: &CachedNode) -> String {
    String::from_utf8_lossy(node.data().unwrap_or_default()).into_owned()
}

async fn new_session(connect: &str) -> Result<Client, BoxError> {
    Ok(Client::builder(connect)
        .session_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let demo = arg("--demo", 0) as usize;
    let (connect, _server) = zookeeper().await?;

    // The watcher: the group's children, with their payloads, from a cache of the path.
    let watcher_client = new_session(&connect).await?;
    let watcher = CuratorCache::builder(&watcher_client, GROUP)
        .children()
        .build()?;
    let mut events = watcher.events();
    watcher.start().await?;
    watcher.initialized().await?;
    let members = watcher.children(GROUP);
    println!("Workers under {GROUP}: {}", members.len());
    for node in &members {
        println!("  {} at {}", node.name(), address(node));
    }
    println!("Watching...");

    let mut expected_changes = 0;
    let (printed_tx, printed_rx) = tokio::sync::oneshot::channel();
    let workers = if demo > 0 {
        // Each worker joins, then the second moves to a new port and the last leaves.
        expected_changes = demo + 2;
        Some(tokio::spawn(run_workers(connect.clone(), demo, printed_rx)))
    } else {
        let client = new_session(&connect).await?;
        let id = format!("worker-{}", std::process::id());
        let me = GroupMember::new(
            &client,
            GROUP,
            &id,
            format!("127.0.0.1:{}", 8000 + std::process::id() % 1000),
        )?;
        me.start().await?;
        println!("Joined as {id}");
        Some(tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            me.close().await?;
            client.close().await;
            Ok::<_, BoxError>(())
        }))
    };

    let mut seen = 0;
    while let Some(event) = events.next().await {
        let counted = match &event {
            CacheEvent::Created(node) if node.path() != GROUP => {
                println!("joined {} at {}", node.name(), address(node));
                true
            }
            CacheEvent::Changed { old, new } if new.path() != GROUP => {
                println!(
                    "moved {} from {} to {}",
                    new.name(),
                    address(old),
                    address(new)
                );
                true
            }
            CacheEvent::Deleted(node) if node.path() != GROUP => {
                println!("left {} (was at {})", node.name(), address(node));
                true
            }
            _ => false,
        };
        if counted {
            seen += 1;
        }
        if demo > 0 && seen >= expected_changes {
            break;
        }
        if demo == 0 && workers.as_ref().is_some_and(|w| w.is_finished()) {
            break;
        }
    }
    let members: BTreeMap<String, String> = watcher
        .children(GROUP)
        .iter()
        .map(|node| (node.name().to_owned(), address(node)))
        .collect();
    println!("Workers now: {members:?}");
    let _ = printed_tx.send(());
    if let Some(workers) = workers {
        workers.await??;
    }
    watcher.close().await;
    watcher_client.close().await;
    println!("Done.");
    Ok(())
}

/// Starts `n` workers, each on a session of its own, one at a time; moves the second to a new
/// port; closes the last; then, once the watcher has printed the group, closes the others.
async fn run_workers(
    connect: String,
    n: usize,
    printed: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), BoxError> {
    let mut workers = Vec::new();
    for i in 1..=n {
        let client = Client::builder(&connect).connect().await?;
        let worker = GroupMember::new(
            &client,
            GROUP,
            &format!("worker-{i}"),
            format!("10.0.0.{i}:8080"),
        )?;
        worker.start().await?;
        // Joined: the node is on the server before the next worker starts, so that the output
        // reads in order.
        worker.wait_for_join(Duration::from_secs(10)).await?;
        workers.push((client, worker));
    }
    if n >= 2 {
        workers[1].1.set_payload(&b"10.0.0.2:9090"[..]).await?;
    }
    let (client, last) = workers.pop().expect("at least one worker");
    last.close().await?;
    client.close().await;
    // The rest stay until the watcher has printed the group.
    let _ = printed.await;
    for (client, worker) in workers {
        worker.close().await?;
        client.close().await;
    }
    Ok(())
}
