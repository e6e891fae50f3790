//! Curator's `TestGroupMember` (`nodes/TestGroupMember.java`), ported to [`GroupMember`].
//!
//! Curator's `getCurrentMembers()` is [`GroupMember::members`], `setThisData` is
//! [`GroupMember::set_payload`]. Curator's three-argument constructor gives the member the
//! local IP address as its payload; this crate's [`GroupMember::new`] takes the payload, so
//! the port gives it an address of its own making. Curator's `start()` returns at once; this
//! crate's returns once the group has been read (the member's own node is made in the
//! background). Curator sleeps a bit before each look at the members; the port waits, under a
//! deadline, for the view it expects.
//!
//! Not ported: none. Added: the stored `TestGroupMemberListener.testBasic` (commit `debad0ab`,
//! 2016, from a pull request never merged into Curator: mainline `GroupMember` has no listener),
//! because this crate's member has the stream of membership changes that test asks for
//! ([`GroupMember::events`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use zk_recipes::{GroupMember, MembershipEvent, MembershipEvents};

use crate::common::{eventually, init_tracing, unique_path, zk_server};
use crate::nodes_base::{client, data_of, DEADLINE};

/// The payload Curator's three-argument constructor gives (the local address).
const LOCAL_ADDRESS: &[u8] = b"127.0.0.1";

fn as_strings(members: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    members
        .iter()
        .map(|(id, payload)| (id.clone(), String::from_utf8_lossy(payload).into_owned()))
        .collect()
}

/// Curator: `TestGroupMember.testBasic`.
///
/// Before it is started, member `1` is in its own view (as in Curator). Once members `1` and
/// `2` (on one client, as in Curator) are started, both views hold exactly `1` and `2`, and are
/// equal (payloads compared as strings). After `2` closes, `1`'s view holds only `1` (and
/// `2`'s own view no longer holds `2`). After `set_payload`, `1`'s view has the new payload for
/// `1` (Curator's `getCurrentMembers` always gives this member's latest data, so that alone
/// could not fail; the port also reads the member's node, which `set_payload` has written
/// when it returns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic() {
    init_tracing();
    let client = client(&zk_server().await).await;
    let path = unique_path("group-member");

    let member1 = GroupMember::new(&client, &path, "1", LOCAL_ADDRESS).expect("member 1");
    assert!(member1.members().contains_key("1"));
    member1.start().await.expect("start 1");
    let member2 = GroupMember::new(&client, &path, "2", LOCAL_ADDRESS).expect("member 2");
    member2.start().await.expect("start 2");

    let expected: BTreeMap<String, String> = [("1", "127.0.0.1"), ("2", "127.0.0.1")]
        .into_iter()
        .map(|(id, payload)| (id.to_owned(), payload.to_owned()))
        .collect();
    eventually("both views to hold members 1 and 2", DEADLINE, || {
        as_strings(&member1.members()) == expected && as_strings(&member2.members()) == expected
    })
    .await;
    assert_eq!(
        as_strings(&member1.members()),
        as_strings(&member2.members())
    );

    member2.close().await.expect("close 2");
    assert!(!member2.members().contains_key("2"));
    eventually("member 1's view to hold only member 1", DEADLINE, || {
        member1.members().keys().eq(["1"])
    })
    .await;

    member1
        .set_payload(&b"something"[..])
        .await
        .expect("set_payload");
    let members = member1.members();
    assert!(members.keys().eq(["1"]), "{members:?}");
    assert_eq!(members["1"], b"something");
    assert_eq!(
        data_of(&client, &format!("{path}/1")).await.as_deref(),
        Some(&b"something"[..])
    );
    member1.close().await.expect("close 1");
    client.close().await;
}

/// The next membership event about `id` (others' are skipped), within [`DEADLINE`].
async fn next_about(events: &mut MembershipEvents, id: &str) -> MembershipEvent {
    let about = |event: &MembershipEvent| match event {
        MembershipEvent::Joined { id: of, .. }
        | MembershipEvent::PayloadChanged { id: of, .. }
        | MembershipEvent::Left { id: of } => of == id,
        _ => false,
    };
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = events.next().await.expect("the member's events are open");
            if about(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("an event about member {id} in time"))
}

/// Curator: `TestGroupMemberListener.testBasic` (not mainline Curator: see the module docs).
///
/// Member `1` is started and follows the group; member `2` joins (`Joined` with its payload),
/// changes its payload (`PayloadChanged`), and leaves (`Left`), each seen by `1`, in that
/// order. The members are on clients of their own, so `1` sees `2` only through the server.
/// Then no other event about `2` comes for a bounded while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_group_member_listener_basic() {
    init_tracing();
    let server = zk_server().await;
    let client1 = client(&server).await;
    let client2 = client(&server).await;
    let path = unique_path("group-member-listener");
    let member1 = GroupMember::new(&client1, &path, "1", LOCAL_ADDRESS).expect("member 1");
    member1.start().await.expect("start 1");
    let mut events = member1.events();

    let member2 = GroupMember::new(&client2, &path, "2", &b"two"[..]).expect("member 2");
    member2.start().await.expect("start 2");
    assert_eq!(
        next_about(&mut events, "2").await,
        MembershipEvent::Joined {
            id: "2".to_owned(),
            payload: b"two".to_vec()
        }
    );
    member2
        .set_payload(&b"two, changed"[..])
        .await
        .expect("set_payload");
    assert_eq!(
        next_about(&mut events, "2").await,
        MembershipEvent::PayloadChanged {
            id: "2".to_owned(),
            payload: b"two, changed".to_vec()
        }
    );
    member2.close().await.expect("close 2");
    assert_eq!(
        next_about(&mut events, "2").await,
        MembershipEvent::Left { id: "2".to_owned() }
    );
    // A bounded look: nothing more about member 2.
    let more = tokio::time::timeout(Duration::from_millis(500), next_about(&mut events, "2")).await;
    assert!(more.is_err(), "{more:?}");
    member1.close().await.expect("close 1");
    client1.close().await;
    client2.close().await;
}
