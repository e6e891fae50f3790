//! A lock holder learns that its lock is lost: the holder's session is expired on the server
//! (as a long GC pause or a network partition would), `guard.lost()` fires, guarded writes are
//! refused, and another participant acquires the lock.
//!
//! ```text
//! cargo run --example lost_lock
//! ```

mod support;

use std::time::Duration;

use support::{zookeeper, BoxError};
use zk_recipes::testing::expire_session;
use zk_recipes::{Client, InterProcessMutex};

const LOCK: &str = "/demo/lost-lock";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (connect, _server) = zookeeper().await?;
    let connect_to = |connect: String| async move {
        Client::builder(connect)
            .session_timeout(Duration::from_secs(4))
            .connect()
            .await
    };
    let holder_client = connect_to(connect.clone()).await?;
    let other_client = connect_to(connect.clone()).await?;
    let holder = InterProcessMutex::new(&holder_client, LOCK)?.with_id("holder");
    let other = InterProcessMutex::new(&other_client, LOCK)?.with_id("other");

    let guard = holder.acquire().await?;
    println!("holder: acquired, fencing token {}", guard.fencing_token());
    let waiting = tokio::spawn(async move {
        let guard = other.acquire().await?;
        println!("other: acquired, fencing token {}", guard.fencing_token());
        guard.release().await?;
        Ok::<_, zk_recipes::Error>(())
    });

    println!("expiring the holder's session on the server...");
    let session = holder_client.session().zookeeper()?.session().clone();
    expire_session(&connect, &session).await?;

    tokio::time::timeout(Duration::from_secs(30), guard.lost()).await?;
    println!("holder: lost() fired; is_lost() = {}", guard.is_lost());
    match guard.guarded_set_data(LOCK, b"too late", None).await {
        Err(e) => println!("holder: guarded write refused: {e}"),
        Ok(_) => return Err("a guarded write succeeded after the lock was lost".into()),
    }
    drop(guard);
    tokio::time::timeout(Duration::from_secs(30), waiting).await???;
    holder_client.close().await;
    other_client.close().await;
    Ok(())
}
