//! A configuration tree, watched: prints the tree under `/demo/config` once it is loaded, then
//! every change to it as it happens, from a `CuratorCache`.
//!
//! ```text
//! cargo run --example config_watch                 # watch until Ctrl-C
//! cargo run --example config_watch -- --changes 6  # make 6 changes itself, show them, exit
//! ```
//!
//! Change the tree from anywhere meanwhile (`zkCli.sh set /demo/config/database/pool 20`, a
//! Java `CuratorCache` user, another run of this program) and the change is printed. With
//! `--changes N` the program plays the operator itself: it makes N changes through a second
//! session (a new setting, new values, a setting removed) and exits once it has seen them all.

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::{arg, zookeeper, BoxError};
use zk_recipes::cache::{CacheEvent, CachedNode, CuratorCache};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::Client;

const ROOT: &str = "/demo/config";

/// The demonstration's settings, made when the tree is missing.
const SETTINGS: &[(&str, &str)] = &[
    ("database/url", "postgres://db.internal:5432/orders"),
    ("database/pool", "10"),
    ("features/new-checkout", "off"),
    ("http/port", "8080"),
];

fn show(node: &CachedNode) -> String {
    let value = node
        .data()
        .map(|data| String::from_utf8_lossy(data).into_owned())
        .unwrap_or_default();
    if value.is_empty() {
        node.path().to_owned()
    } else {
        format!("{} = {value}", node.path())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let changes = arg("--changes", 0) as usize;
    let (connect, _server) = zookeeper().await?;
    let client = Client::builder(&connect)
        .session_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    for (setting, value) in SETTINGS {
        let path = format!("{ROOT}/{setting}");
        if client.exists(&path).await?.is_none() {
            // Parents are made on the way (as containers).
            let _ = client
                .create(&path, value.as_bytes(), CreateMode::Persistent, &[])
                .await;
        }
    }

    let cache = CuratorCache::new(&client, ROOT)?;
    let mut events = cache.events();
    cache.start().await?;
    // The first load: a Created for every node, then Initialized.
    while let Some(event) = events.next().await {
        if event == CacheEvent::Initialized {
            break;
        }
    }
    println!("Configuration under {ROOT} ({} nodes):", cache.len());
    for node in cache.snapshot() {
        println!("  {}", show(&node));
    }
    println!("Watching for changes...");

    let operator = if changes > 0 {
        Some(tokio::spawn(operate(connect.clone(), changes)))
    } else {
        None
    };
    let mut seen = 0;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c(), if operator.is_none() => break,
        };
        let Some(event) = event else { break };
        match &event {
            CacheEvent::Created(node) => println!("created {}", show(node)),
            CacheEvent::Changed { old, new } => println!(
                "changed {} (was {})",
                show(new),
                String::from_utf8_lossy(old.data().unwrap_or_default())
            ),
            CacheEvent::Deleted(node) => println!("deleted {}", node.path()),
            CacheEvent::Initialized => println!("(re-read the tree after a reconnection)"),
            other => println!("{other:?}"),
        }
        if !matches!(event, CacheEvent::Initialized) {
            seen += 1;
        }
        if changes > 0 && seen >= changes {
            break;
        }
    }
    if let Some(operator) = operator {
        operator.await??;
    }
    cache.close().await;
    client.close().await;
    println!("Done.");
    Ok(())
}

/// Makes `n` changes to the tree through a session of its own, one at a time.
async fn operate(connect: String, n: usize) -> Result<(), BoxError> {
    let operator = Client::builder(&connect).connect().await?;
    let pool = format!("{ROOT}/database/pool");
    let flag = format!("{ROOT}/features/dark-mode");
    for step in 0..n {
        match step % 3 {
            0 => {
                operator
                    .set_data(&pool, format!("{}", 20 + step).as_bytes(), None)
                    .await?;
            }
            1 => {
                operator
                    .create(&flag, b"on", CreateMode::Persistent, &[])
                    .await?;
            }
            _ => {
                operator.delete(&flag, None).await?;
            }
        }
        // One change at a time, so that the output reads as a story; the cache would report
        // them all even back to back (changes of one node within a round trip as one).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator.close().await;
    Ok(())
}
