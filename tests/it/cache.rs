//! `CuratorCache` and `PersistentWatcher` against real ZooKeeper: the three shapes, filters,
//! nodes deleted and made again, a deep tree, the root of a chrooted client, stats only, bad
//! input, and convergence after faults (cut and blackholed connections, session expiry).
//!
//! The convergence check: the cache's contents equal the server's tree (read in full by
//! another client), and replaying every event the cache emitted on the snapshot taken with
//! its stream gives the same contents. Changes are compared by `mzxid` and data.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use crate::common::{eventually_async, init_tracing, unique_path, zk_server};
use zk_recipes::cache::{
    CacheEvent, CacheEvents, CacheMode, CacheState, CachedNode, CuratorCache, PersistentWatcher,
    WatcherEvent,
};
use zk_recipes::testing::{expire_session, FaultProxy};
use zk_recipes::zookeeper_client::CreateMode;
use zk_recipes::{Client, Error};

pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) async fn connect(connect_string: &str) -> Client {
    crate::common::connect_with(
        connect_string,
        Duration::from_secs(10),
        Duration::from_secs(3),
    )
    .await
}

/// What a tree is, for comparison: each node's path, `mzxid` and data.
pub(crate) type Contents = BTreeMap<String, (i64, Option<Vec<u8>>)>;

pub(crate) fn contents_of(nodes: &[std::sync::Arc<CachedNode>]) -> Contents {
    nodes
        .iter()
        .map(|node| {
            (
                node.path().to_owned(),
                (node.stat().mzxid, node.data().map(<[u8]>::to_vec)),
            )
        })
        .collect()
}

/// The server's tree at `root`, down to `max_depth` levels below it, read in full by
/// `observer` (`None` data when `with_data` is false). Retries a read that races a delete.
pub(crate) async fn server_tree(
    observer: &Client,
    root: &str,
    max_depth: usize,
    with_data: bool,
) -> Contents {
    'again: loop {
        let mut tree = Contents::new();
        let mut level = vec![root.to_owned()];
        for depth in 0..=max_depth {
            if level.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for path in level {
                let Some((data, stat)) = observer.get_data(&path).await.expect("read") else {
                    if depth == 0 {
                        return tree;
                    }
                    continue 'again;
                };
                tree.insert(path.clone(), (stat.mzxid, with_data.then_some(data)));
                if depth < max_depth {
                    let Some(children) = observer.children(&path).await.expect("list") else {
                        continue 'again;
                    };
                    next.extend(children.iter().map(|child| join(&path, child)));
                }
            }
            level = next;
        }
        return tree;
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Applies `event` to `replayed`; panics on an event that does not fit (a creation of a node
/// held, a change or deletion of one not held): a phantom.
fn replay(replayed: &mut Contents, event: &CacheEvent) {
    let entry = |node: &CachedNode| (node.stat().mzxid, node.data().map(<[u8]>::to_vec));
    match event {
        CacheEvent::Created(node) => {
            let before = replayed.insert(node.path().to_owned(), entry(node));
            assert!(before.is_none(), "created a node held already: {event:?}");
        }
        CacheEvent::Changed { old, new } => {
            let before = replayed.insert(new.path().to_owned(), entry(new));
            assert_eq!(
                before,
                Some(entry(old)),
                "a change from a state not held: {event:?}"
            );
        }
        CacheEvent::Deleted(node) => {
            let before = replayed.remove(node.path());
            assert_eq!(
                before,
                Some(entry(node)),
                "deleted a node not held: {event:?}"
            );
        }
        CacheEvent::Initialized => {}
        other => panic!("an event this test does not know: {other:?}"),
    }
}

/// A cache's snapshot and events, replayed as they come.
pub(crate) struct Replayer {
    replayed: Contents,
    events: CacheEvents,
    initialized: usize,
}

impl Replayer {
    pub(crate) fn of(cache: &CuratorCache) -> Self {
        let (snapshot, events) = cache.subscribe();
        Self {
            replayed: contents_of(&snapshot),
            events,
            initialized: 0,
        }
    }

    /// Replays every event already queued.
    fn drain(&mut self) {
        while let Some(Some(event)) = self.events.next().now_or_never() {
            if event == CacheEvent::Initialized {
                self.initialized += 1;
            }
            replay(&mut self.replayed, &event);
        }
    }
}

use futures::FutureExt;

/// Waits until the cache equals the server's tree and the replayed events equal the cache.
pub(crate) async fn converged(
    what: &str,
    cache: &CuratorCache,
    replayer: &mut Replayer,
    observer: &Client,
    max_depth: usize,
) {
    let root = cache.path().to_owned();
    let started = std::time::Instant::now();
    loop {
        replayer.drain();
        let server = server_tree(observer, &root, max_depth, true).await;
        let cached = contents_of(&cache.snapshot());
        if cached == server && replayer.replayed == cached && cache.state() == CacheState::Synced {
            return;
        }
        if started.elapsed() > DEADLINE {
            let missing: Vec<_> = server.keys().filter(|k| !cached.contains_key(*k)).collect();
            let extra: Vec<_> = cached.keys().filter(|k| !server.contains_key(*k)).collect();
            let stale: Vec<_> = cached
                .iter()
                .filter(|(k, v)| server.get(*k).is_some_and(|s| s != *v))
                .map(|(k, _)| k)
                .collect();
            panic!(
                "{what}: the cache did not converge in {DEADLINE:?} (state {:?}): missing \
                 {missing:?}, extra {extra:?}, stale {stale:?}, replay equal: {}",
                cache.state(),
                replayer.replayed == cached
            );
        }
        tokio::time::sleep(crate::common::POLL_INTERVAL).await;
    }
}

/// The next event, within [`DEADLINE`].
pub(crate) async fn next_event(events: &mut CacheEvents) -> CacheEvent {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
}

fn describe(event: &CacheEvent) -> String {
    match event {
        CacheEvent::Created(node) => format!("created {}", node.path()),
        CacheEvent::Changed { new, .. } => format!("changed {}", new.path()),
        CacheEvent::Deleted(node) => format!("deleted {}", node.path()),
        CacheEvent::Initialized => "initialized".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The next `n` events, described.
async fn next_events(events: &mut CacheEvents, n: usize) -> Vec<String> {
    let mut described = Vec::new();
    for _ in 0..n {
        described.push(describe(&next_event(events).await));
    }
    described
}

pub(crate) async fn make(client: &Client, path: &str, data: &[u8]) {
    client
        .create(path, data, CreateMode::Persistent, &[])
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_cache_loads_the_tree_and_follows_every_change() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-tree");
    make(&writer, &root, b"root").await;
    make(&writer, &format!("{root}/a"), b"1").await;
    make(&writer, &format!("{root}/a/x"), b"2").await;
    make(&writer, &format!("{root}/b"), b"3").await;

    let client = connect(&server).await;
    let cache = CuratorCache::new(&client, &root).unwrap();
    let mut events = cache.events();
    assert_eq!(cache.state(), CacheState::Latent);
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    let mut loaded = next_events(&mut events, 5).await;
    let initialized = loaded.pop();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            format!("created {root}"),
            format!("created {root}/a"),
            format!("created {root}/a/x"),
            format!("created {root}/b"),
        ]
    );
    assert_eq!(initialized.as_deref(), Some("initialized"));
    assert_eq!(cache.len(), 4);
    assert_eq!(
        cache.get(&format!("{root}/a/x")).unwrap().data(),
        Some(&b"2"[..])
    );
    assert_eq!(
        cache
            .children(&root)
            .iter()
            .map(|node| node.name().to_owned())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );

    writer
        .set_data(&format!("{root}/a"), b"10", None)
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut events, 1).await,
        [format!("changed {root}/a")]
    );
    make(&writer, &format!("{root}/b/y"), b"new").await;
    assert_eq!(
        next_events(&mut events, 1).await,
        [format!("created {root}/b/y")]
    );
    writer.delete(&format!("{root}/a/x"), None).await.unwrap();
    assert_eq!(
        next_events(&mut events, 1).await,
        [format!("deleted {root}/a/x")]
    );
    assert_eq!(
        cache.get(&format!("{root}/a")).unwrap().data(),
        Some(&b"10"[..])
    );
    assert!(cache.get(&format!("{root}/a/x")).is_none());

    cache.close().await;
    assert_eq!(cache.state(), CacheState::Closed);
    assert!(
        tokio::time::timeout(DEADLINE, events.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_shapes_hold_what_curators_three_caches_hold() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-shapes");
    make(&writer, &root, b"r").await;
    make(&writer, &format!("{root}/a"), b"a").await;
    make(&writer, &format!("{root}/a/x"), b"x").await;
    make(&writer, &format!("{root}/a/x/deep"), b"d").await;

    let client = connect(&server).await;
    let single = CuratorCache::builder(&client, &root)
        .single_node()
        .build()
        .unwrap();
    let children = CuratorCache::builder(&client, &root)
        .children()
        .build()
        .unwrap();
    let two = CuratorCache::builder(&client, &root)
        .max_depth(2)
        .build()
        .unwrap();
    for cache in [&single, &children, &two] {
        cache.start().await.unwrap();
        cache.initialized().await.unwrap();
    }
    let paths = |cache: &CuratorCache| {
        cache
            .snapshot()
            .iter()
            .map(|node| node.path().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&single), std::slice::from_ref(&root));
    assert_eq!(paths(&children), [root.clone(), format!("{root}/a")]);
    assert_eq!(
        paths(&two),
        [root.clone(), format!("{root}/a"), format!("{root}/a/x")]
    );

    // A change below each one's depth is not held; one within it is.
    let mut single_events = single.events();
    let mut children_events = children.events();
    make(&writer, &format!("{root}/b"), b"b").await;
    writer.set_data(&root, b"r2", None).await.unwrap();
    assert_eq!(
        next_events(&mut single_events, 1).await,
        [format!("changed {root}")]
    );
    assert_eq!(
        next_events(&mut children_events, 2).await,
        [format!("created {root}/b"), format!("changed {root}")]
    );
    eventually_async("the depth-2 cache holds /b", DEADLINE, || async {
        two.get(&format!("{root}/b")).is_some()
    })
    .await;
    assert!(two.get(&format!("{root}/a/x/deep")).is_none());
    assert!(single.get(&format!("{root}/b")).is_none());
    for cache in [&single, &children, &two] {
        cache.close().await;
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_does_not_exist_yet_fills_when_it_appears() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-later");
    let client = connect(&server).await;
    let cache = CuratorCache::new(&client, &root).unwrap();
    let mut events = cache.events();
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    assert_eq!(next_events(&mut events, 1).await, ["initialized"]);
    assert!(cache.is_empty());
    make(&writer, &format!("{root}/child"), b"c").await; // the root is made on the way
    let mut seen = next_events(&mut events, 2).await;
    seen.sort();
    assert_eq!(
        seen,
        [format!("created {root}"), format!("created {root}/child")]
    );
    cache.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_let_through_only_what_they_name() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-filters");
    make(&writer, &root, b"").await;
    let client = connect(&server).await;
    let cache = CuratorCache::new(&client, &root).unwrap();
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    let mut creates = cache.events().creates_only();
    let mut changes = cache.events().changes_only();
    let mut deletes = cache.events().deletes_only();
    let mut under_a = cache.events().under(&format!("{root}/a"));
    make(&writer, &format!("{root}/a"), b"1").await;
    make(&writer, &format!("{root}/ab"), b"1").await;
    writer
        .set_data(&format!("{root}/a"), b"2", None)
        .await
        .unwrap();
    writer.delete(&format!("{root}/ab"), None).await.unwrap();
    writer.delete(&format!("{root}/a"), None).await.unwrap();
    let mut created = next_events(&mut creates, 2).await;
    created.sort();
    assert_eq!(
        created,
        [format!("created {root}/a"), format!("created {root}/ab")]
    );
    assert_eq!(
        next_events(&mut changes, 1).await,
        [format!("changed {root}/a")]
    );
    assert_eq!(
        next_events(&mut deletes, 2).await,
        [format!("deleted {root}/ab"), format!("deleted {root}/a")]
    );
    assert_eq!(
        next_events(&mut under_a, 3).await,
        [
            format!("created {root}/a"),
            format!("changed {root}/a"),
            format!("deleted {root}/a")
        ],
        "`under` keeps the node and what is below it, not a sibling whose name starts alike"
    );
    cache.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_deleted_and_made_again_ends_as_the_new_node() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-again");
    make(&writer, &root, b"").await;
    let node = format!("{root}/n");
    make(&writer, &node, b"old").await;
    let client = connect(&server).await;
    let cache = CuratorCache::new(&client, &root).unwrap();
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    let mut replayer = Replayer::of(&cache);
    for round in 0..20 {
        writer.delete(&node, None).await.unwrap();
        make(&writer, &node, format!("new {round}").as_bytes()).await;
    }
    converged(
        "after 20 deletes and re-creates",
        &cache,
        &mut replayer,
        &writer,
        usize::MAX,
    )
    .await;
    assert_eq!(cache.get(&node).unwrap().data(), Some(&b"new 19"[..]));
    cache.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_tree_and_stat_only_caches_converge() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-deep");
    let mut path = root.clone();
    for depth in 0..8 {
        make(&writer, &path, format!("{depth}").as_bytes()).await;
        for leaf in 0..3 {
            make(&writer, &format!("{path}/leaf{leaf}"), b"l").await;
        }
        path = format!("{path}/d{depth}");
    }
    let client = connect(&server).await;
    let cache = CuratorCache::new(&client, &root).unwrap();
    let stats = CuratorCache::builder(&client, &root)
        .stat_only()
        .build()
        .unwrap();
    cache.start().await.unwrap();
    stats.start().await.unwrap();
    cache.initialized().await.unwrap();
    stats.initialized().await.unwrap();
    assert_eq!(cache.len(), 8 * 4);
    let mut replayer = Replayer::of(&cache);
    converged("the deep tree", &cache, &mut replayer, &writer, usize::MAX).await;
    let without_data = server_tree(&writer, &root, usize::MAX, false).await;
    assert_eq!(contents_of(&stats.snapshot()), without_data);
    assert!(stats.snapshot().iter().all(|node| node.data().is_none()));
    cache.close().await;
    stats.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_of_a_chrooted_client_is_its_namespace() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let namespace = unique_path("cache-chroot");
    let chrooted = Client::builder(&server)
        .namespace(namespace.trim_start_matches('/'))
        .connect()
        .await
        .unwrap();
    make(&chrooted, "/a", b"1").await;
    make(&chrooted, "/a/b", b"2").await;
    let cache = CuratorCache::new(&chrooted, "/").unwrap();
    let mut events = cache.events();
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    let mut paths: Vec<_> = cache
        .snapshot()
        .iter()
        .map(|n| n.path().to_owned())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/", "/a", "/a/b"], "paths are inside the namespace");
    next_events(&mut events, 4).await;
    writer
        .set_data(&format!("{namespace}/a/b"), b"3", None)
        .await
        .unwrap();
    assert_eq!(next_events(&mut events, 1).await, ["changed /a/b"]);
    cache.close().await;
    chrooted.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_error() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    for bad in ["", "relative", "/trailing/", "/a//b"] {
        assert!(
            matches!(
                CuratorCache::new(&client, bad),
                Err(Error::InvalidPath { .. })
            ),
            "{bad:?}"
        );
        assert!(matches!(
            PersistentWatcher::new(&client, bad, true),
            Err(Error::InvalidPath { .. })
        ));
    }
    let cache = CuratorCache::new(&client, &unique_path("cache-bad")).unwrap();
    cache.start().await.unwrap();
    assert!(matches!(cache.start().await, Err(Error::IllegalState(_))));
    cache.close().await;
    assert!(matches!(cache.start().await, Err(Error::IllegalState(_))));
    // Closed before its first load ended: never initialized.
    let never = CuratorCache::new(&client, &unique_path("cache-bad")).unwrap();
    never.close().await;
    assert!(matches!(never.initialized().await, Err(Error::Closed)));
    assert!(matches!(never.start().await, Err(Error::IllegalState(_))));
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_watcher_resets_after_a_cut_and_on_a_new_session() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("watcher");
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = connect(&proxy.connect_string()).await;
    let mut events = PersistentWatcher::new(&client, &root, true)
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(next_watched(&mut events).await, WatcherEvent::Reset);
    make(&writer, &format!("{root}/a"), b"").await;
    assert_eq!(
        next_watched(&mut events).await,
        WatcherEvent::Created(root.clone())
    );
    assert_eq!(
        next_watched(&mut events).await,
        WatcherEvent::Created(format!("{root}/a"))
    );

    proxy.cut();
    writer
        .set_data(&format!("{root}/a"), b"missed", None)
        .await
        .unwrap();
    proxy.restore();
    assert_eq!(
        next_watched(&mut events).await,
        WatcherEvent::Reset,
        "a reset after the cut"
    );
    writer.delete(&format!("{root}/a"), None).await.unwrap();
    assert_eq!(
        next_watched(&mut events).await,
        WatcherEvent::Deleted(format!("{root}/a"))
    );

    let old = client.session();
    let info = old.zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    eventually_async("a new session", DEADLINE, || async {
        let session = client.session();
        session.generation() > old.generation() && !session.is_lost()
    })
    .await;
    // A reset for the new session (and maybe one before, for a reconnection of the old one
    // before the server expired it); then the watch reports what happens on the new session.
    make(&writer, &format!("{root}/b"), b"").await;
    let mut resets = 0;
    let event = loop {
        match next_watched(&mut events).await {
            WatcherEvent::Reset => resets += 1,
            other => break other,
        }
    };
    assert!(resets >= 1, "a reset on the new session");
    assert_eq!(
        event,
        WatcherEvent::Created(format!("{root}/b")),
        "the watch is set on the new session"
    );
    client.close().await;
    assert!(
        tokio::time::timeout(DEADLINE, events.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends with the client"
    );
}

/// The watcher's next event, within [`DEADLINE`].
async fn next_watched(events: &mut zk_recipes::cache::WatcherEvents) -> WatcherEvent {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("a watcher event in time")
        .expect("the stream is open")
}

/// Changes made by `writer` under `root` from `seed`: creates, sets and deletes up to 4
/// levels deep, `n` of them.
pub(crate) async fn random_changes(writer: &Client, root: &str, seed: u64, n: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..n {
        let depth = rng.usize(1..=4);
        let mut path = root.to_owned();
        for _ in 0..depth {
            path = format!("{path}/n{}", rng.usize(0..3));
        }
        match rng.usize(0..3) {
            0 => {
                let _ = writer
                    .create(
                        &path,
                        format!("{i}").as_bytes(),
                        CreateMode::Persistent,
                        &[],
                    )
                    .await;
            }
            1 => {
                let _ = writer
                    .set_data(&path, format!("{i}").as_bytes(), None)
                    .await;
            }
            _ => {
                let _ = writer.delete(&path, None).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_converges_after_cuts_blackholes_and_an_expired_session() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-faults");
    make(&writer, &root, b"").await;
    let proxy = FaultProxy::start(&server).await.unwrap();
    let client = Client::builder(proxy.connect_string())
        .session_timeout(Duration::from_secs(4))
        .connection_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let cache = CuratorCache::new(&client, &root).unwrap();
    let mut replayer = Replayer::of(&cache);
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    let seed = fastrand::u64(..);
    tracing::info!(seed, "random changes");

    random_changes(&writer, &root, seed, 60).await;
    converged("with no fault", &cache, &mut replayer, &writer, usize::MAX).await;

    // Changes while the connection is cut.
    proxy.cut();
    random_changes(&writer, &root, seed + 1, 60).await;
    proxy.restore();
    converged("after a cut", &cache, &mut replayer, &writer, usize::MAX).await;

    // Changes while the connection is blackholed past the session timeout: a new session.
    let mut states = client.connection_states();
    proxy.blackhole();
    random_changes(&writer, &root, seed + 2, 60).await;
    let lost = async {
        while let Some(state) = states.next().await {
            if state == zk_recipes::ConnectionState::Lost {
                return;
            }
        }
    };
    tokio::time::timeout(DEADLINE, lost)
        .await
        .expect("the session is lost behind the blackhole");
    proxy.restore();
    converged(
        "after a blackhole past the session timeout",
        &cache,
        &mut replayer,
        &writer,
        usize::MAX,
    )
    .await;

    // Changes while the session is expired by the server.
    let info = client.session().zookeeper().unwrap().session().clone();
    expire_session(&server, &info).await.unwrap();
    random_changes(&writer, &root, seed + 3, 60).await;
    converged(
        "after an expired session",
        &cache,
        &mut replayer,
        &writer,
        usize::MAX,
    )
    .await;

    // Changes during the resynchronisation itself.
    proxy.cut();
    proxy.restore();
    random_changes(&writer, &root, seed + 4, 60).await;
    converged(
        "after changes during a resync",
        &cache,
        &mut replayer,
        &writer,
        usize::MAX,
    )
    .await;
    assert!(
        replayer.initialized >= 4,
        "an Initialized after each resync: {}",
        replayer.initialized
    );

    cache.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_client_ends_the_cache() {
    init_tracing();
    let server = zk_server().await;
    let client = connect(&server).await;
    let cache = CuratorCache::builder(&client, &unique_path("cache-client-close"))
        .mode(CacheMode::Children)
        .build()
        .unwrap();
    let mut events = cache.events();
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    client.close().await;
    loop {
        match tokio::time::timeout(DEADLINE, events.next()).await.unwrap() {
            None => break,
            Some(_) => continue,
        }
    }
    eventually_async("the cache reads as closed", DEADLINE, || async {
        cache.state() == CacheState::Closed
    })
    .await;
}

/// A node whose data is as large as a request may carry (ZooKeeper's default
/// `jute.maxbuffer`, less the request's overhead) is cached whole, and the cache goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_the_size_limit_is_cached_whole() {
    init_tracing();
    let server = zk_server().await;
    let writer = connect(&server).await;
    let root = unique_path("cache-large");
    make(&writer, &root, b"").await;
    let large = vec![7u8; zk_recipes::limits::DEFAULT_MAX_REQUEST_SIZE - 1024];
    make(&writer, &format!("{root}/large"), &large).await;
    let client = connect(&server).await;
    let cache = CuratorCache::new(&client, &root).unwrap();
    let mut events = cache.events();
    cache.start().await.unwrap();
    cache.initialized().await.unwrap();
    next_events(&mut events, 3).await;
    assert_eq!(
        cache
            .get(&format!("{root}/large"))
            .unwrap()
            .data()
            .map(<[u8]>::len),
        Some(large.len())
    );
    writer
        .set_data(&format!("{root}/large"), b"small", None)
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut events, 1).await,
        [format!("changed {root}/large")]
    );
    cache.close().await;
    client.close().await;
}
