//! At most three renderers at a time. Several workers, each with its own ZooKeeper session,
//! render jobs under a lease of an `InterProcessSemaphoreV2` of three leases; each counts
//! itself in while it renders, so the run can show that never more than three were inside at
//! once (and that three often were). The last worker takes two leases at once for a job twice
//! the size.
//!
//! ```text
//! cargo run --example semaphore -- [--workers 5] [--jobs 6]
//! ```
//!
//! Java processes using Curator's `InterProcessSemaphoreV2` on `/demo/semaphore` with three
//! leases take part in the same semaphore.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{arg, zookeeper, BoxError};
use zk_recipes::{Client, InterProcessSemaphoreV2};

const PATH: &str = "/demo/semaphore";
const LEASES: u32 = 3;

/// How many renderers are inside now, and the most there ever were: in-process counters, for
/// the demonstration (the workers share this process).
#[derive(Default)]
struct Occupancy {
    inside: AtomicUsize,
    most: AtomicUsize,
}

impl Occupancy {
    fn enter(&self, count: usize) {
        let now = self.inside.fetch_add(count, Ordering::SeqCst) + count;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self, count: usize) {
        self.inside.fetch_sub(count, Ordering::SeqCst);
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let workers = arg("--workers", 5);
    let jobs = arg("--jobs", 6);
    let (connect, _server) = zookeeper().await?;
    let occupancy = Arc::new(Occupancy::default());

    let mut tasks = Vec::new();
    for w in 0..workers {
        let (connect, occupancy) = (connect.clone(), occupancy.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::builder(&connect)
                .session_timeout(Duration::from_secs(10))
                .connect()
                .await?;
            let semaphore =
                InterProcessSemaphoreV2::new(&client, PATH, LEASES)?.with_id(format!("worker-{w}"));
            // The last worker's jobs are twice the size: two leases each.
            let size = if w + 1 == workers { 2 } else { 1 };
            for _ in 0..jobs {
                let leases = semaphore.acquire_many(size).await?;
                occupancy.enter(size as usize);
                // Render: stop early if a lease may be lost.
                tokio::select! {
                    _ = leases[0].lost() => println!("worker-{w}: a lease may be lost; stopping the job"),
                    _ = tokio::time::sleep(Duration::from_millis(20 + 10 * u64::from(w))) => {}
                }
                occupancy.leave(size as usize);
                for lease in leases {
                    lease.release().await?;
                }
            }
            println!("worker-{w}: {jobs} jobs of {size} lease(s)");
            client.close().await;
            Ok::<_, BoxError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let most = occupancy.most.load(Ordering::SeqCst);
    println!("most leases held at once: {most} (limit {LEASES})");
    if most > LEASES as usize {
        return Err(format!("{most} leases of {LEASES} held at once").into());
    }
    Ok(())
}
