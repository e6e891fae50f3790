//! Curator's `TestLeaderSelectorParticipants` (`leader/TestLeaderSelectorParticipants.java`),
//! ported to [`LeaderSelector::participants`] and [`LeaderSelector::leader`].
//!
//! Curator's `Participant` is [`Participant`] here: `getId()` is `id`, `isLeader()` is
//! `is_leader`, and it also names the node and its sequence.
//!
//! Not ported: none.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use tokio::sync::mpsc;
use zk_recipes::retry::RetryOneTime;
use zk_recipes::{
    BoxError, Client, ConnectionState, LeaderSelector, LeaderSelectorListener, Leadership,
    StateChangeAction,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// Curator's listener of both tests: says it leads, then holds until interrupted (here:
/// cancelled); its `stateChanged` does nothing.
struct Holder {
    leading: mpsc::UnboundedSender<()>,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Holder {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let _ = self.leading.send(());
        leadership.cancelled().await;
        Ok(())
    }

    fn state_changed(&self, _state: ConnectionState) -> StateChangeAction {
        StateChangeAction::Continue
    }
}

async fn client() -> Client {
    Client::builder(zk_server().await)
        .retry_policy(RetryOneTime::new(Duration::from_millis(1)))
        .connect()
        .await
        .expect("connect")
}

async fn next(rx: &mut mpsc::UnboundedReceiver<()>, what: &str) {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
        .expect("the listener is alive");
}

/// Curator: TestLeaderSelectorParticipants.testId.
///
/// A selector with the id "A is A" leads; the leader the selector reports is it, with its id;
/// the participants are it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_id() {
    init_tracing();
    let client = client().await;
    let path = format!("{}/ls", unique_path("selector-participants-id"));
    let (leading, mut led) = mpsc::unbounded_channel();
    let selector = LeaderSelector::new(&client, &path, Holder { leading })
        .expect("selector")
        .with_id("A is A");
    selector.start().expect("start");
    next(&mut led, "leadership").await;

    let leader = selector
        .leader()
        .await
        .expect("the leader")
        .expect("a leader");
    assert!(leader.is_leader);
    assert_eq!(leader.id, "A is A");

    let participants = selector.participants().await.expect("participants");
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].id, "A is A");
    assert_eq!(participants[0].id, selector.id());
    selector.close().await.expect("close");
    client.close().await;
}

/// Curator: TestLeaderSelectorParticipants.testBasic.
///
/// Ten selectors of one client, with the ids "0" to "9" (Curator's count). Once one leads and
/// all ten are queued, every selector reports the same participants: ten, with unique ids,
/// exactly the expected ones, and exactly one leader. Curator counts the selectors that have
/// entered their work loop (an overridden `doWork`, a package-private hook) and then sleeps a
/// second "for the locks to be acquired"; here the test waits until the participants list
/// holds all ten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    const SELECTOR_QTY: usize = 10;
    init_tracing();
    let client = client().await;
    let path = format!("{}/ls", unique_path("selector-participants-basic"));
    let (leading, mut led) = mpsc::unbounded_channel();
    let selectors: Vec<LeaderSelector> = (0..SELECTOR_QTY)
        .map(|i| {
            LeaderSelector::new(
                &client,
                &path,
                Holder {
                    leading: leading.clone(),
                },
            )
            .expect("selector")
            .with_id(i.to_string())
        })
        .collect();
    for selector in &selectors {
        selector.start().expect("start");
    }
    next(&mut led, "a leader").await;
    eventually_async("all ten selectors queued", DEADLINE, || async {
        selectors[0]
            .participants()
            .await
            .map(|p| p.len() == SELECTOR_QTY)
            .unwrap_or(false)
    })
    .await;

    let participants = selectors[0].participants().await.expect("participants");
    for selector in &selectors[1..] {
        assert_eq!(
            participants,
            selector.participants().await.expect("participants")
        );
    }
    let ids: BTreeSet<String> = participants.iter().map(|p| p.id.clone()).collect();
    assert_eq!(
        ids.len(),
        participants.len(),
        "duplicate ids: {participants:?}"
    );
    assert_eq!(
        participants.iter().filter(|p| p.is_leader).count(),
        1,
        "{participants:?}"
    );
    let expected: BTreeSet<String> = (0..SELECTOR_QTY).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected);
    for selector in &selectors {
        selector.close().await.expect("close");
    }
    client.close().await;
}
