//! Sequence numbers from a shared counter: several workers, each on a session of its own, take
//! numbers from one `DistributedAtomicLong` (Curator's format, so Java workers can take from it
//! too) and print them; no number is taken twice.
//!
//! ```text
//! cargo run --example counter                           # 4 workers, 5 numbers each
//! cargo run --example counter -- --workers 8 --numbers 20
//! ```

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{arg, zookeeper, BoxError};
use zk_recipes::retry::RetryNTimes;
use zk_recipes::shared::DistributedAtomicLong;
use zk_recipes::Client;

const COUNTER: &str = "/demo/sequence";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let workers = arg("--workers", 4) as usize;
    let numbers = arg("--numbers", 5) as usize;
    let (connect, _server) = zookeeper().await?;

    let admin = Client::builder(&connect).connect().await?;
    let start = DistributedAtomicLong::new(&admin, COUNTER)?
        .get()
        .await?
        .post_value;
    println!("The counter {COUNTER} is at {start}");

    let mut tasks = Vec::new();
    for worker in 1..=workers {
        let connect = connect.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::builder(&connect)
                .session_timeout(Duration::from_secs(10))
                .connect()
                .await?;
            // Lost races are tried again, up to 100 times: the workers take turns.
            let counter = DistributedAtomicLong::builder(&client, COUNTER)
                .retry_policy(RetryNTimes::new(100, Duration::from_millis(1)))
                .build()?;
            let mut taken = Vec::new();
            while taken.len() < numbers {
                let number = counter.increment().await?;
                if number.succeeded {
                    println!("worker {worker} took {}", number.post_value);
                    taken.push(number.post_value);
                }
            }
            client.close().await;
            Ok::<_, BoxError>(taken)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    let end = DistributedAtomicLong::new(&admin, COUNTER)?
        .get()
        .await?
        .post_value;
    println!(
        "{} numbers taken, {} distinct, from {} to {}; the counter is at {end}",
        all.len(),
        distinct.len(),
        distinct.first().copied().unwrap_or(start),
        distinct.last().copied().unwrap_or(start)
    );
    if distinct.len() != all.len() || end != start + all.len() as i64 {
        return Err("a number was taken twice, or the counter is not exact".into());
    }
    admin.close().await;
    println!("Done.");
    Ok(())
}
