//! Rust `LeaderSelector`s and a real Apache Curator 5.4 `LeaderSelector` (Java, autoRequeue) on
//! one path: one queue, turns in queue order, never two leaders at once.
//!
//! Needs Java 17 (`javac`, `java`) and Debian's `libcurator-recipes-java`; set
//! `ZK_SKIP_JAVA_INTEROP=1` to skip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::java::{self, JavaProcess};
use crate::common::{eventually, eventually_async, init_tracing, unique_path, zk_server};
use tokio::sync::{oneshot, watch};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{BoxError, Client, LeaderSelector, LeaderSelectorListener, Leadership};

const DEADLINE: Duration = Duration::from_secs(60);
const JAVA_ID: &str = "java-1";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Start(String),
    Done(String),
}

#[derive(Default)]
struct Log {
    events: Mutex<Vec<Ev>>,
    /// Completed read-increment-write rounds on the counter, Rust and Java.
    increments: AtomicUsize,
}

impl Log {
    fn push(&self, ev: Ev) {
        self.events.lock().unwrap().push(ev);
    }

    fn events(&self) -> Vec<Ev> {
        self.events.lock().unwrap().clone()
    }

    fn done(&self, who: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Ev::Done(w) if w == who))
            .count()
    }
}

/// A Rust candidate: the same turn as the Java worker's (counter round, brief work).
struct RustWorker {
    name: String,
    counter: String,
    log: Arc<Log>,
    gate: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for RustWorker {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        self.log.push(Ev::Start(self.name.clone()));
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        let client = leadership.client();
        let (data, _) = client.get_data(&self.counter).await?.expect("counter node");
        let value: u64 = String::from_utf8(data)?.trim().parse()?;
        tokio::time::sleep(Duration::from_millis(3)).await;
        client
            .set_data(&self.counter, (value + 1).to_string().as_bytes(), None)
            .await?;
        self.log.increments.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.log.push(Ev::Done(self.name.clone()));
        Ok(())
    }
}

async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(4),
        Duration::from_secs(2),
    )
    .await
}

async fn queue_ids(selector: &LeaderSelector) -> Vec<String> {
    selector
        .participants()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect()
}

/// Reads the Java worker's lines into the log until told to stop; then sends `QUIT`, reads on
/// until `BYE`, and hands the process back.
fn spawn_java_reader(
    mut process: JavaProcess,
    log: Arc<Log>,
    stop: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<JavaProcess> {
    tokio::spawn(async move {
        let mut stop = Some(stop);
        loop {
            let line = match stop.as_mut() {
                Some(stop_rx) => tokio::select! {
                    line = process.next_line(Duration::from_secs(3600)) => line,
                    _ = stop_rx => {
                        stop = None;
                        process.send("QUIT").await;
                        continue;
                    }
                },
                None => process.next_line(DEADLINE).await,
            };
            let Some(line) = line else {
                panic!(
                    "the Java worker ended early; it said {:?}",
                    process.transcript()
                );
            };
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("LEADER"), Some(id)) => log.push(Ev::Start(id.to_owned())),
                (Some("INC"), Some(_)) => {
                    log.increments.fetch_add(1, Ordering::SeqCst);
                }
                (Some("DONE"), Some(id)) => log.push(Ev::Done(id.to_owned())),
                (Some("BYE"), _) => return process,
                (Some("ERROR"), _) => panic!("the Java worker failed: {line}"),
                _ => {}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_curator_selectors_take_turns_in_queue_order() {
    if java::skip_requested() {
        eprintln!("skipped: {} is set", java::SKIP_VAR);
        return;
    }
    init_tracing();
    let server = zk_server().await;
    let classes = java::compile("tests/java/CuratorSelectorWorker.java").await;
    let path = unique_path("interop-selector");
    let counter = format!("{path}-counter");
    let observer = connect(&server).await;
    observer
        .create(&counter, b"0", CreateMode::Persistent, &[])
        .await
        .unwrap();
    let log = Arc::new(Log::default());
    let (open, gate) = watch::channel(false);
    let rust_selector = |client: &Client, name: &str| {
        let worker = RustWorker {
            name: name.to_owned(),
            counter: counter.clone(),
            log: log.clone(),
            gate: gate.clone(),
        };
        LeaderSelector::new(client, &path, worker)
            .unwrap()
            .with_id(name)
            .auto_requeue(true)
    };

    // rust-1 leads first and waits at the gate while java-1 and rust-2 queue behind it.
    let client_1 = connect(&server).await;
    let rust_1 = rust_selector(&client_1, "rust-1");
    rust_1.start().unwrap();
    eventually("rust-1 leads", DEADLINE, || rust_1.is_leader()).await;

    let process = JavaProcess::start(
        &classes,
        "CuratorSelectorWorker",
        &[
            server.as_str(),
            path.as_str(),
            JAVA_ID,
            counter.as_str(),
            "30",
        ],
        "READY",
        DEADLINE,
    )
    .await;
    let (stop_java, stop_rx) = oneshot::channel();
    let reader = spawn_java_reader(process, log.clone(), stop_rx);
    eventually_async("java-1 queues behind rust-1", DEADLINE, || async {
        queue_ids(&rust_1).await == ["rust-1", JAVA_ID]
    })
    .await;

    let client_2 = connect(&server).await;
    let rust_2 = rust_selector(&client_2, "rust-2");
    rust_2.start().unwrap();
    eventually_async("rust-2 queues behind java-1", DEADLINE, || async {
        queue_ids(&rust_1).await == ["rust-1", JAVA_ID, "rust-2"]
    })
    .await;

    open.send_replace(true);
    eventually("15 turns, 5 of them Java's", DEADLINE, || {
        log.done(JAVA_ID) >= 5 && log.done("rust-1") + log.done("rust-2") >= 10
    })
    .await;

    // Java first (it finishes its turn under way, then closes), then Rust.
    stop_java.send(()).unwrap();
    let process = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("the Java worker quits")
        .expect("the Java reader");
    drop(process);
    rust_1.close().await.unwrap();
    rust_2.close().await.unwrap();

    let events = log.events();
    // Never two leaders: every start is followed by the same candidate's done.
    for pair in events.chunks(2) {
        match pair {
            [Ev::Start(a), Ev::Done(b)] if a == b => {}
            [Ev::Start(_)] => {}
            _ => panic!("overlapping turns: {pair:?} in {events:?}"),
        }
    }
    // Turns in queue order: rust-1, java-1, rust-2, rust-1, … for the first 15.
    let starts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Ev::Start(w) => Some(w.as_str()),
            Ev::Done(_) => None,
        })
        .collect();
    let expected: Vec<&str> = ["rust-1", JAVA_ID, "rust-2"]
        .into_iter()
        .cycle()
        .take(15)
        .collect();
    tracing::info!(?starts, "turns");
    assert!(starts.len() >= 15, "{starts:?}");
    assert_eq!(
        &starts[..15],
        &expected[..],
        "turns out of queue order: {starts:?}"
    );
    // And no lost update on the unguarded counter.
    let (data, _) = observer.get_data(&counter).await.unwrap().unwrap();
    let value: usize = String::from_utf8(data).unwrap().trim().parse().unwrap();
    assert_eq!(value, log.increments.load(Ordering::SeqCst), "lost update");
    // A create still in flight when a waiting selector is closed leaves its node to a
    // background clean-up: wait for it.
    eventually_async("no nodes left", Duration::from_secs(10), || async {
        observer
            .children(&path)
            .await
            .unwrap()
            .unwrap_or_default()
            .is_empty()
    })
    .await;
}
