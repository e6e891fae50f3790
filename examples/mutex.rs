//! Several workers, each with its own ZooKeeper session, increment one shared counter under an
//! `InterProcessMutex`. The counter is read and written without any version check, so only the
//! lock keeps increments from being lost: the final count is exact.
//!
//! ```text
//! cargo run --example mutex -- [--workers 4] [--increments 25]
//! ```

mod support;

use std::time::Duration;

use support::{arg, zookeeper, BoxError};
use zk_recipes::{Client, InterProcessMutex};

const LOCK: &str = "/demo/mutex/lock";
const COUNTER: &str = "/demo/mutex/counter";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let workers = arg("--workers", 4);
    let increments = arg("--increments", 25);
    let (connect, _server) = zookeeper().await?;
    let setup = Client::builder(&connect).connect().await?;
    setup.ensure_path("/demo/mutex", false).await?;
    match setup.exists(COUNTER).await? {
        Some(_) => {
            setup.set_data(COUNTER, b"0", None).await?;
        }
        None => {
            setup
                .create(
                    COUNTER,
                    b"0",
                    zk_recipes::zookeeper_client::CreateMode::Persistent,
                    &[],
                )
                .await?;
        }
    }

    let mut tasks = Vec::new();
    for w in 0..workers {
        let connect = connect.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::builder(&connect)
                .session_timeout(Duration::from_secs(10))
                .connect()
                .await?;
            let mutex = InterProcessMutex::new(&client, LOCK)?.with_id(format!("worker-{w}"));
            let mut tokens = Vec::new();
            for _ in 0..increments {
                let guard = mutex.acquire().await?;
                tokens.push(guard.fencing_token());
                // An unguarded read-modify-write: correct only because we hold the lock.
                let (data, _) = client.get_data(COUNTER).await?.ok_or("counter missing")?;
                let value: u64 = std::str::from_utf8(&data)?.parse()?;
                client
                    .set_data(COUNTER, (value + 1).to_string().as_bytes(), None)
                    .await?;
                guard.release().await?;
            }
            println!(
                "worker-{w}: {} increments, fencing tokens {} .. {}",
                tokens.len(),
                tokens.first().copied().unwrap_or_default(),
                tokens.last().copied().unwrap_or_default()
            );
            client.close().await;
            Ok::<_, BoxError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let (data, _) = setup.get_data(COUNTER).await?.ok_or("counter missing")?;
    let expected = u64::from(workers) * u64::from(increments);
    let count: u64 = std::str::from_utf8(&data)?.parse()?;
    println!("final count {count} (expected {expected})");
    setup.close().await;
    if count != expected {
        return Err(format!("lost updates: {count} != {expected}").into());
    }
    Ok(())
}
