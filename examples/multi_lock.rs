//! Transfers between three accounts. Several workers, each with its own ZooKeeper session,
//! move money from one account to another under an `InterProcessMultiLock` of the two
//! accounts' locks, naming them in whatever order the transfer does. The multi-lock takes the
//! locks in the order of their paths, so two transfers in opposite directions never deadlock.
//! The balances are read without version checks, so only the locks keep the total exact; both
//! are written in one transaction guarded by both locks.
//!
//! ```text
//! cargo run --example multi_lock -- [--workers 3] [--transfers 20]
//! ```

mod support;

use std::time::Duration;

use support::{arg, zookeeper, BoxError};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, InterProcessMultiLock, InterProcessMutex};

const ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];
const OPENING_BALANCE: i64 = 100;

fn balance_path(account: &str) -> String {
    format!("/demo/multi-lock/balances/{account}")
}

fn lock_path(account: &str) -> String {
    format!("/demo/multi-lock/locks/{account}")
}

async fn balance(client: &Client, account: &str) -> Result<i64, BoxError> {
    let (data, _) = client
        .get_data(&balance_path(account))
        .await?
        .ok_or("balance missing")?;
    Ok(std::str::from_utf8(&data)?.parse()?)
}

async fn set_balance(client: &Client, account: &str, value: i64) -> Result<(), BoxError> {
    client
        .set_data(&balance_path(account), value.to_string().as_bytes(), None)
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let workers = arg("--workers", 3);
    let transfers = arg("--transfers", 20);
    let (connect, _server) = zookeeper().await?;
    let setup = Client::builder(&connect).connect().await?;
    setup
        .ensure_path("/demo/multi-lock/balances", false)
        .await?;
    for account in ACCOUNTS {
        let opening = OPENING_BALANCE.to_string();
        match setup.exists(&balance_path(account)).await? {
            Some(_) => set_balance(&setup, account, OPENING_BALANCE).await?,
            None => {
                setup
                    .create(
                        &balance_path(account),
                        opening.as_bytes(),
                        CreateMode::Persistent,
                        &[],
                    )
                    .await?;
            }
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
            for t in 0..transfers {
                // Worker w pays from one account to the next, in a direction that alternates:
                // transfers in opposite directions contend for the same two locks.
                let (from, to) = {
                    let first = (w + t) as usize % ACCOUNTS.len();
                    let second = (first + 1) % ACCOUNTS.len();
                    if (w + t) % 2 == 0 {
                        (ACCOUNTS[first], ACCOUNTS[second])
                    } else {
                        (ACCOUNTS[second], ACCOUNTS[first])
                    }
                };
                let both = InterProcessMultiLock::new([
                    InterProcessMutex::new(&client, &lock_path(from))?,
                    InterProcessMutex::new(&client, &lock_path(to))?,
                ])?;
                let guard = both.acquire().await?;
                // Reads without versions: correct only because we hold both locks. The two
                // writes go in one transaction that commits only while both locks are held.
                let amount = 1 + i64::from(t % 5);
                let paid = (balance(&client, from).await? - amount).to_string();
                let received = (balance(&client, to).await? + amount).to_string();
                guard
                    .guarded(|writer| {
                        writer.add_set_data(&balance_path(from), paid.as_bytes(), None)?;
                        writer.add_set_data(&balance_path(to), received.as_bytes(), None)
                    })
                    .await?;
                guard.release().await?;
            }
            println!("worker-{w}: {transfers} transfers");
            client.close().await;
            Ok::<_, BoxError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut total = 0;
    for account in ACCOUNTS {
        let value = balance(&setup, account).await?;
        println!("{account}: {value}");
        total += value;
    }
    let expected = OPENING_BALANCE * ACCOUNTS.len() as i64;
    println!("total {total} (expected {expected})");
    setup.close().await;
    if total != expected {
        return Err(format!("money created or lost: {total} != {expected}").into());
    }
    Ok(())
}
