//! Security: the ACLs recipes put on their nodes, creator-only lock nodes that an
//! unauthenticated client can neither delete nor queue behind, and digest secrets that never
//! reach `Debug` output or tracing events.
//!
//! Every test of this file runs under one process-wide tracing subscriber that records every
//! event at TRACE level into memory ([`capture`]), so that the secret check sees the events of
//! every thread and task.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{unique_path, zk_server};
use tokio::sync::mpsc;
use zk_recipes::testing::{expire_session, FaultProxy};
use zk_recipes::zookeeper_client::{self, Acl, Acls, AuthId, Permission};
use zk_recipes::{
    BoxError, Client, ConnectionState, Error, InterProcessMutex, LeaderLatch, LeaderSelector,
    LeaderSelectorListener, Leadership, Revoker,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// Everything every test of this binary logged, at TRACE level.
fn capture() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Captured(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        log
    })
    .clone()
}

struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn connect(connect_string: &str, auth: Option<&str>) -> Client {
    let mut builder = Client::builder(connect_string)
        .session_timeout(Duration::from_secs(4))
        .connection_timeout(Duration::from_secs(2));
    if let Some(auth) = auth {
        builder = builder.authorization("digest", auth.as_bytes().to_vec());
    }
    builder.connect().await.expect("connect")
}

/// The ACLs of `path`, read through `client`.
async fn acls_of(client: &Client, path: &str) -> Vec<Acl> {
    let path = path.to_owned();
    client
        .with_retry(|zk| {
            let path = path.clone();
            async move { zk.get_acl(&path).await }
        })
        .await
        .unwrap_or_else(|e| panic!("get_acl {path}: {e}"))
        .0
}

/// A turn of a [`Reporting`] listener: the node path, the leadership's `Debug` text, and the
/// generation of the session it is on.
type Turn = (String, String, u64);

/// A listener that reports each turn, and leads until cancelled.
struct Reporting(mpsc::UnboundedSender<Turn>);

#[async_trait::async_trait]
impl LeaderSelectorListener for Reporting {
    async fn take_leadership(&self, leadership: Leadership) -> Result<(), BoxError> {
        let _ = self.0.send((
            leadership.node_path().to_owned(),
            format!("{leadership:?}"),
            leadership.session().generation(),
        ));
        leadership.cancelled().await;
        Ok(())
    }
}

async fn next_turn(turns: &mut mpsc::UnboundedReceiver<Turn>) -> Turn {
    tokio::time::timeout(DEADLINE, turns.recv())
        .await
        .expect("the selector leads")
        .expect("the selector's listener is alive")
}

/// Recipes given ACLs put exactly those ACLs on the nodes they create: the mutex on its lock
/// node and on the parent it makes, the latch on its node, the selector on its node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_put_the_given_acls_on_their_nodes() {
    capture();
    let server = zk_server().await;
    let client = connect(&server, None).await;
    let base = unique_path("security-acls");
    client.ensure_path(&base, false).await.unwrap();
    // Anyone may read, write, create and delete, but not administer; and 127.0.0.1 may do
    // all. Neither is the default (anyone, all).
    let acls = vec![
        Acl::new(
            Permission::READ | Permission::WRITE | Permission::CREATE | Permission::DELETE,
            AuthId::anyone(),
        ),
        Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1")),
    ];
    assert_ne!(acls.as_slice(), &*client.default_acls());

    let lock = format!("{base}/mutex/lock");
    let mutex = InterProcessMutex::new(&client, &lock)
        .unwrap()
        .with_acls(acls.clone());
    let guard = mutex.acquire().await.unwrap();
    assert_eq!(acls_of(&client, guard.node_path()).await, acls, "lock node");
    assert_eq!(acls_of(&client, &lock).await, acls, "the mutex's parent");
    guard.release().await.unwrap();

    let latch_path = format!("{base}/latch/leader");
    let latch = LeaderLatch::new(&client, &latch_path)
        .unwrap()
        .with_id("id")
        .with_acls(acls.clone());
    latch.start().await.unwrap();
    assert!(latch.is_leader());
    assert_eq!(acls_of(&client, &latch_path).await, acls, "latch node");
    latch.close().await.unwrap();

    let (turns_tx, mut turns) = mpsc::unbounded_channel();
    let selector = LeaderSelector::new(&client, &format!("{base}/selector"), Reporting(turns_tx))
        .unwrap()
        .with_acls(acls.clone());
    selector.start().unwrap();
    let (node, _, _) = next_turn(&mut turns).await;
    assert_eq!(acls_of(&client, &node).await, acls, "selector node");
    selector.close().await.unwrap();

    // Creator-only ACLs name the creator's authenticated identity.
    let alice = connect(&server, Some("alice:wonderland")).await;
    let mutex = InterProcessMutex::new(&alice, &format!("{base}/creator/lock"))
        .unwrap()
        .with_acls(Acls::creator_all().to_vec());
    let guard = mutex.acquire().await.unwrap();
    let found = acls_of(&alice, guard.node_path()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].scheme(), "digest");
    assert!(found[0].id().starts_with("alice:"), "{found:?}");
    assert_eq!(found[0].permission(), Permission::ALL);
    guard.release().await.unwrap();
    alice.close().await;
    client.close().await;
}

/// A lock node created by a digest-authenticated client with creator-only ACLs (under a lock
/// path the mutex made with the same ACLs) cannot be deleted or written by an unauthenticated
/// client, nor by another user, so they cannot steal the lock or queue for it; the holder
/// keeps the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_client_cannot_steal_a_creator_only_lock() {
    capture();
    let server = zk_server().await;
    let base = unique_path("security-steal");
    let alice = connect(&server, Some("alice:wonderland")).await;
    alice.ensure_path(&base, false).await.unwrap();
    let data = format!("{base}/data");
    alice
        .create(
            &data,
            b"",
            zookeeper_client::CreateMode::Persistent,
            &Acls::creator_all(),
        )
        .await
        .unwrap();
    let lock = format!("{base}/lock");
    let mutex = InterProcessMutex::new(&alice, &lock)
        .unwrap()
        .with_id("alice")
        .with_acls(Acls::creator_all().to_vec());
    let guard = mutex.acquire().await.unwrap();
    let node = guard.node_path().to_owned();

    let mallory = connect(&server, None).await;
    let bob = connect(&server, Some("bob:builder")).await;
    for (who, thief) in [("unauthenticated", &mallory), ("bob", &bob)] {
        assert!(
            matches!(thief.delete(&node, None).await, Err(Error::NoAuth)),
            "{who} deleted the lock node"
        );
        let raw = thief.zookeeper().unwrap();
        assert!(
            matches!(
                raw.delete(&node, None).await,
                Err(zookeeper_client::Error::NoAuth)
            ),
            "{who} deleted the lock node through the raw client"
        );
        drop(raw);
        assert!(
            matches!(
                thief.set_data(&node, b"mine", None).await,
                Err(Error::NoAuth)
            ),
            "{who} wrote the lock node"
        );
        assert!(
            matches!(
                Revoker::attempt_revoke(thief, &node).await,
                Err(Error::NoAuth)
            ),
            "{who} asked for a revocation"
        );
        let theirs = InterProcessMutex::new(thief, &lock).unwrap().with_id(who);
        let attempt = tokio::time::timeout(DEADLINE, theirs.try_acquire(Duration::from_secs(2)))
            .await
            .expect("a refused acquire returns");
        assert!(
            matches!(attempt, Err(Error::NoAuth)),
            "{who} acquiring: {attempt:?}"
        );
        assert!(
            matches!(
                thief.set_data(&data, b"mine", None).await,
                Err(Error::NoAuth)
            ),
            "{who} wrote the guarded data"
        );
    }

    // Alice still holds the lock, and her guarded writes commit.
    assert!(!guard.is_lost(), "the holder's lock is lost");
    assert!(alice.exists(&node).await.unwrap().is_some());
    let participants = mutex.participants().await.unwrap();
    assert_eq!(participants.len(), 1, "{participants:?}");
    assert_eq!(participants[0].id, "alice");
    guard
        .guarded_set_data(&data, b"alice", None)
        .await
        .expect("the holder's guarded write");
    guard.release().await.unwrap();
    assert!(alice.exists(&node).await.unwrap().is_none());
    alice.delete(&data, None).await.unwrap();
    for client in [alice, mallory, bob] {
        client.close().await;
    }
}

/// Digest passwords never show in the `Debug` output of the builder, the client, its session,
/// the recipes and their guards, nor in any tracing event (captured at TRACE level) during a
/// connect with authentication, recipe use, a connection cut and reconnect, and a session
/// expiry with a new, re-authenticated session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_show_in_debug_output_or_traces() {
    let log = capture();
    let server = zk_server().await;
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let credentials = format!("carol:{password}");
    // The secret in the forms a careless Debug or log would give it.
    let forms = [
        password.clone(),
        format!("{:?}", password.as_bytes()),
        password
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ];
    let leaks = |what: &str, text: &str| {
        for form in &forms {
            if let Some(line) = text.lines().find(|line| line.contains(form.as_str())) {
                panic!("{what} shows the secret: {line}");
            }
        }
    };

    let proxy = FaultProxy::start(&server).await.unwrap();
    let builder = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(4))
        .connection_timeout(Duration::from_secs(2))
        .authorization("digest", credentials.as_bytes().to_vec())
        .default_acls(Acls::creator_all().to_vec());
    let debug = format!("{builder:?} {builder:#?}");
    assert!(
        debug.contains("digest"),
        "the builder hides its auth scheme: {debug}"
    );
    leaks("the builder", &debug);
    let client = builder.connect().await.unwrap();
    leaks("the client", &format!("{client:?} {client:#?}"));
    leaks("the session", &format!("{:?}", client.session()));

    let base = unique_path("security-secrets");
    client.ensure_path(&base, false).await.unwrap();
    let mutex = InterProcessMutex::new(&client, &format!("{base}/lock"))
        .unwrap()
        .with_id("carol");
    let guard = mutex.acquire().await.unwrap();
    leaks("the mutex", &format!("{mutex:?}"));
    leaks("the guard", &format!("{guard:?}"));
    guard.release().await.unwrap();
    let latch = LeaderLatch::new(&client, &format!("{base}/leader"))
        .unwrap()
        .with_id("carol");
    latch.start().await.unwrap();
    leaks("the latch", &format!("{latch:?}"));
    let (turns_tx, mut turns) = mpsc::unbounded_channel();
    let selector = LeaderSelector::new(&client, &format!("{base}/selector"), Reporting(turns_tx))
        .unwrap()
        .with_id("carol")
        .auto_requeue(true);
    selector.start().unwrap();
    let (_, leadership, _) = next_turn(&mut turns).await;
    leaks("the leadership", &leadership);
    leaks("the selector", &format!("{selector:?}"));

    // A cut and a reconnect on the same session (authentication is sent again) ...
    let mut states = client.connection_states();
    proxy.cut();
    assert_eq!(
        tokio::time::timeout(DEADLINE, states.next()).await.unwrap(),
        Some(ConnectionState::Suspended)
    );
    proxy.restore();
    assert_eq!(
        tokio::time::timeout(DEADLINE, states.next()).await.unwrap(),
        Some(ConnectionState::Reconnected)
    );
    // ... then an expiry and a new session, authenticated again, on which the recipes go on.
    let info = client.zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    let mut lost = false;
    while let Ok(Some(state)) = tokio::time::timeout(DEADLINE, states.next()).await {
        lost |= state == ConnectionState::Lost;
        if lost && state == ConnectionState::Reconnected {
            break;
        }
    }
    assert!(lost, "the session was not lost");
    leaks("the new session", &format!("{:?}", client.session()));
    let guard = tokio::time::timeout(DEADLINE, mutex.acquire())
        .await
        .expect("the lock on the new session")
        .unwrap();
    guard.release().await.unwrap();
    // The selector leads again on the new session (the turns cut short by the faults released
    // their nodes with errors; the turn ended by close must release it cleanly).
    loop {
        let (_, leadership, generation) = next_turn(&mut turns).await;
        leaks("the leadership", &leadership);
        if generation > 0 {
            break;
        }
    }
    latch.close().await.unwrap();
    selector.close().await.unwrap();
    client.close().await;
    leaks("the closed client", &format!("{client:?}"));

    // The capture works, from every thread and at every level: the check below is not vacuous.
    let marker = format!("capture-check-{}", uuid::Uuid::new_v4().simple());
    let traced = marker.clone();
    tokio::spawn(async move { tracing::trace!(marker = %traced, "capture check") })
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(log.contains(&marker), "a TRACE event was not captured");
    assert!(
        log.contains("ZooKeeper session established"),
        "the connect was not captured"
    );
    assert!(
        log.contains("lock acquired"),
        "the recipes' DEBUG events were not captured"
    );
    assert!(
        log.contains("ZooKeeper connection state"),
        "no state was captured"
    );
    leaks("the tracing events", &log);
}
