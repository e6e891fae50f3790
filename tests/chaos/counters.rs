//! The chaos suite's counter group: three participants behind proxies increment one
//! [`DistributedAtomicLong`] all the time, and a checker.
//!
//! Each increment that reports success claims its post value; one that fails (the client's
//! retry policy gave up while a write's outcome was unknown, or the session was lost with it)
//! may have been applied once. At the end, with every fault healed: no value was claimed twice,
//! and the counter is at least the number of successes and at most that plus the failures (an
//! increment is never applied twice, so nothing else can move it).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zk_recipes::retry::RetryNTimes;
use zk_recipes::shared::DistributedAtomicLong;
use zk_recipes::testing::TestingCluster;
use zk_recipes::Client;

use super::Participant;

/// Salts the run's seed for the counter group's RNG, so that the recipes' schedule of a seed
/// stays as it was.
const COUNTER_SEED_SALT: u64 = 0xc0_0e7e_5eed_0000;

/// What the workers saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// The post values of the increments that said they succeeded.
    claimed: Vec<i64>,
    /// Increments that failed: applied once or not at all.
    failed: u64,
    /// Increments whose attempts all lost their race (not applied).
    lost_races: u64,
}

/// The counter group.
pub(crate) struct CounterGroup {
    pub(crate) participants: Vec<Participant>,
    path: String,
    rng: Mutex<fastrand::Rng>,
    tally: Arc<Mutex<Tally>>,
}

impl CounterGroup {
    /// Connects the group's three participants; the counter is `path`.
    pub(crate) async fn start(cluster: &TestingCluster, path: &str, seed: u64) -> CounterGroup {
        let mut participants = Vec::new();
        for i in 0..3 {
            participants.push(Participant::connect(format!("counter-{i}"), cluster).await);
        }
        CounterGroup {
            participants,
            path: path.to_owned(),
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ COUNTER_SEED_SALT)),
            tally: Arc::default(),
        }
    }

    /// The participants a client fault hits: each with a chance of two in three, at least one.
    pub(crate) fn targets(&self) -> Vec<&Participant> {
        let mut rng = self.rng.lock().unwrap();
        let mut hit: Vec<&Participant> = self
            .participants
            .iter()
            .filter(|_| rng.usize(0..3) != 0)
            .collect();
        if hit.is_empty() {
            hit.push(&self.participants[rng.usize(0..self.participants.len())]);
        }
        hit
    }

    /// One worker per participant, incrementing until `stop`.
    pub(crate) fn spawn_workers(&self, stop: CancellationToken) -> Vec<(String, JoinHandle<()>)> {
        self.participants
            .iter()
            .map(|p| {
                let counter = DistributedAtomicLong::builder(&p.client, &self.path)
                    .retry_policy(RetryNTimes::new(20, Duration::from_millis(2)))
                    .build()
                    .expect("a counter");
                let tally = self.tally.clone();
                let stop = stop.clone();
                let task = tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        match counter.increment().await {
                            Ok(outcome) if outcome.succeeded => {
                                tally.lock().unwrap().claimed.push(outcome.post_value)
                            }
                            Ok(_) => tally.lock().unwrap().lost_races += 1,
                            Err(error) => {
                                tracing::debug!(%error, "an increment of unknown outcome");
                                tally.lock().unwrap().failed += 1;
                                // The connection is down: do not spin on it.
                                tokio::select! {
                                    _ = stop.cancelled() => {}
                                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                                }
                            }
                        }
                    }
                });
                (format!("counter worker {}", p.name), task)
            })
            .collect()
    }

    /// Checks the counter against the tally (the workers have ended): what is wrong, and the
    /// counts (successes, failures).
    pub(crate) async fn check(&self, observer: &Client) -> (Vec<String>, usize, u64) {
        let (claimed, failed) = {
            let tally = self.tally.lock().unwrap();
            (tally.claimed.clone(), tally.failed)
        };
        let mut violations = Vec::new();
        let distinct: BTreeSet<i64> = claimed.iter().copied().collect();
        if distinct.len() != claimed.len() {
            violations.push(format!(
                "{} increments claimed only {} distinct values",
                claimed.len(),
                distinct.len()
            ));
        }
        let successes = claimed.len() as i64;
        match DistributedAtomicLong::new(observer, &self.path)
            .expect("a counter")
            .get()
            .await
        {
            Ok(value) => {
                let value = value.post_value;
                if value < successes || value > successes + failed as i64 {
                    violations.push(format!(
                        "the counter is {value}, after {successes} successes and {failed} \
                         increments of unknown outcome"
                    ));
                }
            }
            Err(e) => violations.push(format!("the counter could not be read: {e}")),
        }
        (violations, successes as usize, failed)
    }
}
