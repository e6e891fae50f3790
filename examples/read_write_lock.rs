//! A configuration that many readers read and a few writers publish, under an
//! `InterProcessReadWriteLock`. A configuration is two nodes, a version and a copy of it,
//! written one after the other with plain writes: a reader that got in beside a writer could see
//! them differ. Readers hold the lock together; a writer holds it alone, then downgrades, to
//! read back what it published before any other writer can change it.
//!
//! ```text
//! cargo run --example read_write_lock -- [--readers 3] [--writers 2] [--publishes 5]
//! ```
//!
//! Java processes using Curator's `InterProcessReadWriteLock` on `/demo/read-write/lock` take
//! part in the same lock.

mod support;

use std::time::Duration;

use support::{arg, zookeeper, BoxError};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, InterProcessReadWriteLock};

const LOCK: &str = "/demo/read-write/lock";
const VERSION: &str = "/demo/read-write/config/version";
const COPY: &str = "/demo/read-write/config/copy";

async fn read_number(client: &Client, path: &str) -> Result<u64, BoxError> {
    let (data, _) = client.get_data(path).await?.ok_or("config missing")?;
    Ok(std::str::from_utf8(&data)?.parse()?)
}

/// The configuration as one reader sees it: the version, and whether its copy matches.
async fn read_config(client: &Client) -> Result<(u64, bool), BoxError> {
    let version = read_number(client, VERSION).await?;
    let copy = read_number(client, COPY).await?;
    Ok((version, version == copy))
}

async fn session(connect: &str) -> Result<Client, BoxError> {
    Ok(Client::builder(connect)
        .session_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let readers = arg("--readers", 3);
    let writers = arg("--writers", 2);
    let publishes = arg("--publishes", 5);
    let (connect, _server) = zookeeper().await?;
    let setup = session(&connect).await?;
    setup.ensure_path("/demo/read-write/config", false).await?;
    for path in [VERSION, COPY] {
        match setup.exists(path).await? {
            Some(_) => {
                setup.set_data(path, b"0", None).await?;
            }
            None => {
                setup
                    .create(path, b"0", CreateMode::Persistent, &[])
                    .await?;
            }
        }
    }

    let mut tasks = Vec::new();
    for w in 0..writers {
        let connect = connect.clone();
        tasks.push(tokio::spawn(async move {
            let client = session(&connect).await?;
            let lock =
                InterProcessReadWriteLock::new(&client, LOCK)?.with_id(format!("writer-{w}"));
            for _ in 0..publishes {
                let write = lock.write_lock().acquire().await?;
                // Plain reads and writes: only the write lock keeps them consistent.
                let next = read_number(&client, VERSION).await? + 1;
                client
                    .set_data(VERSION, next.to_string().as_bytes(), None)
                    .await?;
                client
                    .set_data(COPY, next.to_string().as_bytes(), None)
                    .await?;
                // Downgrade: readers may come in now, but no writer until we are done.
                let read = write.downgrade().await?;
                write.release().await?;
                let (seen, consistent) = read_config(&client).await?;
                if seen != next || !consistent {
                    return Err(format!("writer-{w} published {next} but reads {seen}").into());
                }
                read.release().await?;
            }
            println!("writer-{w}: {publishes} publishes, each read back after a downgrade");
            client.close().await;
            Ok::<_, BoxError>(())
        }));
    }
    for r in 0..readers {
        let connect = connect.clone();
        let reads = 2 * publishes;
        tasks.push(tokio::spawn(async move {
            let client = session(&connect).await?;
            let lock =
                InterProcessReadWriteLock::new(&client, LOCK)?.with_id(format!("reader-{r}"));
            let mut torn = 0;
            for _ in 0..reads {
                let read = lock.read_lock().acquire().await?;
                let (_, consistent) = read_config(&client).await?;
                if !consistent {
                    torn += 1;
                }
                read.release().await?;
            }
            println!("reader-{r}: {reads} reads, {torn} torn");
            client.close().await;
            if torn > 0 {
                return Err(format!("reader-{r} saw {torn} half-published configurations").into());
            }
            Ok::<_, BoxError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let version = read_number(&setup, VERSION).await?;
    let expected = u64::from(writers * publishes);
    println!("final version {version} (expected {expected})");
    setup.close().await;
    if version != expected {
        return Err(format!("publishes lost: {version} != {expected}").into());
    }
    Ok(())
}
