//! Suite cases for channels: creation, membership, pages, roles and owner
//! succession, removals, and the presence-sharing question.

use super::{channel, text};
use crate::store::{ChannelRow, Departure, JoinOutcome, Store};
use courier_proto::{ChannelInfo, Role, Target};

use std::collections::HashSet;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Channels and members

/// Creating an existing name changes nothing; members come in joining
/// order; add/remove report whether they changed anything.
pub async fn channels_create_conflict_and_membership(store: Arc<dyn Store>) {
    assert_eq!(store.channel("team").await.unwrap(), None);
    assert!(store.create_channel(channel("team", true, Some("alice"))).await.unwrap());
    let row = ChannelRow {
        name: "team".into(),
        title: "Title of team".into(),
        topic: "topic of team".into(),
        private: true,
        created_by: Some("alice".into()),
        created: 77,
    };
    assert_eq!(store.channel("team").await.unwrap(), Some(row.clone()));
    assert_eq!(store.members("team").await.unwrap(), ["alice"], "the creator is the first member");

    let mut clash = channel("team", false, Some("bob"));
    clash.title = "Hijacked".into();
    assert!(!store.create_channel(clash).await.unwrap(), "the name exists");
    assert_eq!(store.channel("team").await.unwrap(), Some(row), "unchanged by the conflict");
    assert_eq!(store.members("team").await.unwrap(), ["alice"]);

    for (i, u) in ["dave", "bob", "carol"].into_iter().enumerate() {
        assert!(store.add_member("team", u, 100 + i as i64).await.unwrap(), "{u} is new");
    }
    assert!(!store.add_member("team", "bob", 200).await.unwrap(), "already a member");
    assert_eq!(
        store.members("team").await.unwrap(),
        ["alice", "dave", "bob", "carol"],
        "joining order, not names"
    );

    assert!(store.remove_member("team", "dave", false).await.unwrap().is_some());
    assert!(store.remove_member("team", "dave", false).await.unwrap().is_none(), "no longer a member");
    assert!(store.remove_member("team", "zed", false).await.unwrap().is_none(), "never a member");
    assert!(!store.is_member("team", "dave").await.unwrap());
    assert!(store.is_member("team", "bob").await.unwrap());
    assert!(!store.is_member("other", "bob").await.unwrap());
    assert!(store.add_member("team", "dave", 300).await.unwrap(), "rejoining");
    assert_eq!(store.members("team").await.unwrap(), ["alice", "bob", "carol", "dave"], "a rejoin goes last");

    // Default channels have no creator and no members.
    assert!(store.create_channel(channel("lobby", false, None)).await.unwrap());
    let lobby = store.channel("lobby").await.unwrap().unwrap();
    assert_eq!(lobby.created_by, None);
    assert!(!lobby.private);
    assert_eq!(store.members("lobby").await.unwrap(), Vec::<String>::new());
    assert!(!store.is_member("lobby", "alice").await.unwrap());
}

/// The v1.2 cap counter: channels one user created at or after a time
/// (default channels have no creator and never count).
pub async fn channels_created_since_counts_one_creator_from_a_time(store: Arc<dyn Store>) {
    for (name, creator, now) in
        [("a1", Some("alice"), 100), ("a2", Some("alice"), 200), ("b1", Some("bob"), 150), ("d", None, 300)]
    {
        let mut ch = channel(name, name == "a2", creator);
        ch.now = now;
        assert!(store.create_channel(ch).await.unwrap());
    }
    let mut clash = channel("a1", false, Some("alice"));
    clash.now = 400;
    assert!(!store.create_channel(clash).await.unwrap(), "a conflict creates nothing");
    assert_eq!(store.channels_created_since("alice", 0).await.unwrap(), 2);
    assert_eq!(store.channels_created_since("alice", 200).await.unwrap(), 1, "from `since`, inclusive");
    assert_eq!(store.channels_created_since("alice", 201).await.unwrap(), 0);
    assert_eq!(store.channels_created_since("bob", 0).await.unwrap(), 1);
    assert_eq!(store.channels_created_since("carol", 0).await.unwrap(), 0);
}

/// The cap, counted and enforced in one step: creations racing for the
/// last places cannot pass it together; a taken name is `Some(false)`.
pub async fn creations_racing_for_the_cap_never_pass_it(store: Arc<dyn Store>) {
    let mut ch = channel("old", false, Some("alice"));
    ch.now = 100;
    assert_eq!(store.create_channel_within(ch, 3, 0).await.unwrap(), Some(true));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ch = channel(&format!("race{i}"), false, Some("alice"));
            ch.now = 200 + i;
            store.create_channel_within(ch, 3, 0).await.unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Some(true) => created += 1,
            Some(false) => panic!("no name was taken"),
            None => {}
        }
    }
    assert_eq!(created, 2, "three in all, the first included");
    assert_eq!(store.channels_created_since("alice", 0).await.unwrap(), 3);
    // Counted from `since`; another creator has their own count; a taken
    // name under the cap creates nothing.
    assert_eq!(
        store.create_channel_within(channel("later", false, Some("alice")), 3, 0).await.unwrap(),
        None
    );
    assert_eq!(
        store.create_channel_within(channel("later", false, Some("alice")), 3, 150).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        store.create_channel_within(channel("b1", false, Some("bob")), 3, 0).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        store.create_channel_within(channel("old", false, Some("bob")), 3, 0).await.unwrap(),
        Some(false)
    );
}

/// Public channels with member counts, by name; private ones are invisible.
pub async fn public_channels_sorted_with_counts_without_private(store: Arc<dyn Store>) {
    assert!(store.public_channels().await.unwrap().is_empty());
    store.create_channel(channel("zeta", false, Some("alice"))).await.unwrap();
    store.create_channel(channel("alpha", false, None)).await.unwrap();
    store.create_channel(channel("secret", true, Some("alice"))).await.unwrap();
    store.create_channel(channel("mid", false, Some("bob"))).await.unwrap();
    store.add_member("mid", "carol", 1).await.unwrap();
    store.add_member("mid", "dave", 1).await.unwrap();
    store.add_member("secret", "bob", 1).await.unwrap();
    store.remove_member("mid", "dave", false).await.unwrap();
    let info = |name: &str, members: u64| ChannelInfo {
        channel: name.into(),
        title: format!("Title of {name}"),
        topic: format!("topic of {name}"),
        private: false,
        members,
    };
    assert_eq!(
        store.public_channels().await.unwrap(),
        vec![info("alpha", 0), info("mid", 2), info("zeta", 1)]
    );
}

/// v1.2 pagination: public channels by name and members by user id,
/// bytewise (upper case before lower), `after` exclusive, `more` exact.
pub async fn channel_and_member_pages_are_bytewise_after_exclusive(store: Arc<dyn Store>) {
    for name in ["b", "a", "C", "c", "a-b", "Z"] {
        store.create_channel(channel(name, false, None)).await.unwrap();
    }
    store.create_channel(channel("b2", true, Some("alice"))).await.unwrap();
    let names = |p: &[ChannelInfo]| p.iter().map(|c| c.channel.clone()).collect::<Vec<_>>();
    let (p1, more) = store.public_channels_page(None, 2).await.unwrap();
    assert_eq!((names(&p1), more), (vec!["C".to_owned(), "Z".to_owned()], true));
    let (p2, more) = store.public_channels_page(Some("Z"), 3).await.unwrap();
    assert_eq!((names(&p2), more), (vec!["a".to_owned(), "a-b".to_owned(), "b".to_owned()], true));
    let (p3, more) = store.public_channels_page(Some("b"), 3).await.unwrap();
    assert_eq!((names(&p3), more), (vec!["c".to_owned()], false), "private b2 is not listed");
    let (p4, more) = store.public_channels_page(Some("c"), 3).await.unwrap();
    assert!(p4.is_empty() && !more);
    let (rest, more) = store.public_channels_page(Some("D"), 6).await.unwrap();
    assert_eq!((rest.len(), more), (5, false), "`after` need not be a channel");

    store.create_channel(channel("team", false, Some("mallory"))).await.unwrap();
    for u in ["bob", "Alice", "alice", "carol", "_x", "Bob"] {
        store.add_member("team", u, 2).await.unwrap();
    }
    let users = |p: &[(String, Role)]| p.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>();
    let (m1, more) = store.member_roles_page("team", None, 3).await.unwrap();
    assert_eq!((users(&m1), more), (vec!["Alice".to_owned(), "Bob".to_owned(), "_x".to_owned()], true));
    let (m2, more) = store.member_roles_page("team", Some("_x"), 3).await.unwrap();
    assert_eq!((users(&m2), more), (vec!["alice".to_owned(), "bob".to_owned(), "carol".to_owned()], true));
    let (m3, more) = store.member_roles_page("team", Some("carol"), 3).await.unwrap();
    assert_eq!(m3, vec![("mallory".to_owned(), Role::Owner)]);
    assert!(!more);
    let (none, more) = store.member_roles_page("nope", None, 3).await.unwrap();
    assert!(none.is_empty() && !more);
}

/// v1.2 presence privacy: a common channel, or a DM both have written in.
pub async fn sharing_a_conversation_is_a_common_channel_or_a_two_sided_dm(store: Arc<dyn Store>) {
    let all: Vec<String> = ["alice", "bob", "carol", "dave", "erin"].iter().map(|s| s.to_string()).collect();
    let shared = |v: HashSet<String>| {
        let mut v: Vec<String> = v.into_iter().collect();
        v.sort();
        v
    };
    assert_eq!(shared(store.shares_conversation("alice", &all).await.unwrap()), ["alice"], "only herself");
    store.create_channel(channel("team", true, Some("alice"))).await.unwrap();
    store.add_member("team", "bob", 1).await.unwrap();
    store.create_channel(channel("other", false, Some("carol"))).await.unwrap();
    // A one-sided DM (alice wrote to dave, he never answered) is not shared.
    store.append(text("alice", Target::User("dave".into()), "c1", "hi", 1)).await.unwrap();
    store.append(text("erin", Target::User("alice".into()), "c2", "hi", 1)).await.unwrap();
    store.append(text("alice", Target::User("erin".into()), "c3", "hello", 2)).await.unwrap();
    assert_eq!(shared(store.shares_conversation("alice", &all).await.unwrap()), ["alice", "bob", "erin"]);
    assert_eq!(shared(store.shares_conversation("dave", &all).await.unwrap()), ["dave"]);
    assert_eq!(shared(store.shares_conversation("bob", &all).await.unwrap()), ["alice", "bob"]);
    store.remove_member("team", "bob", false).await.unwrap();
    assert_eq!(
        shared(store.shares_conversation("bob", &all).await.unwrap()),
        ["bob"],
        "left: no longer shared"
    );
    assert!(store.shares_conversation("bob", &[]).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Roles and removals

/// The creator owns a channel; `set_role` reports every change (an owner
/// transfer demotes the old owner to admin); when the owner leaves, the
/// longest-standing admin, else member, becomes owner.
pub async fn roles_transfer_and_owner_succession(store: Arc<dyn Store>) {
    assert!(store.create_channel(channel("team", true, Some("alice"))).await.unwrap());
    for (i, u) in ["bob", "carol", "dave"].into_iter().enumerate() {
        assert!(store.add_member("team", u, 100 + i as i64).await.unwrap());
    }
    let roles = |list: &[(&str, Role)]| list.iter().map(|(u, r)| (u.to_string(), *r)).collect::<Vec<_>>();
    assert_eq!(
        store.member_roles("team").await.unwrap(),
        roles(&[
            ("alice", Role::Owner),
            ("bob", Role::Member),
            ("carol", Role::Member),
            ("dave", Role::Member)
        ])
    );
    assert_eq!(store.role("team", "alice").await.unwrap(), Some(Role::Owner));
    assert_eq!(store.role("team", "zed").await.unwrap(), None);
    assert_eq!(store.set_role("team", "zed", Role::Admin).await.unwrap(), None, "not a member");
    assert_eq!(
        store.set_role("team", "dave", Role::Admin).await.unwrap(),
        Some(roles(&[("dave", Role::Admin)]))
    );
    assert_eq!(store.set_role("team", "dave", Role::Admin).await.unwrap(), Some(vec![]), "no change");

    let left = store.remove_member("team", "bob", false).await.unwrap();
    assert_eq!(left, Some(Departure { new_owner: None }), "a member leaving changes no role");
    let left = store.remove_member("team", "alice", false).await.unwrap();
    assert_eq!(left.unwrap().new_owner.as_deref(), Some("dave"), "an admin before longer-standing members");
    assert_eq!(
        store.set_role("team", "carol", Role::Owner).await.unwrap(),
        Some(roles(&[("carol", Role::Owner), ("dave", Role::Admin)])),
        "a transfer: the old owner becomes admin"
    );
    assert!(store.add_member("team", "erin", 200).await.unwrap());
    store.set_role("team", "dave", Role::Member).await.unwrap();
    let left = store.remove_member("team", "carol", true).await.unwrap();
    assert_eq!(left.unwrap().new_owner.as_deref(), Some("dave"), "no admin: the longest-standing member");
    assert_eq!(
        store.member_roles("team").await.unwrap(),
        roles(&[("dave", Role::Owner), ("erin", Role::Member)])
    );
    store.remove_member("team", "dave", false).await.unwrap();
    assert_eq!(store.role("team", "erin").await.unwrap(), Some(Role::Owner));
    assert_eq!(store.remove_member("team", "erin", false).await.unwrap(), Some(Departure::default()));
    assert!(store.member_roles("team").await.unwrap().is_empty());

    // A default channel has no owner, and nobody inherits one.
    assert!(store.create_channel(channel("lobby", false, None)).await.unwrap());
    store.join_channel("lobby", "bob", 1).await.unwrap();
    store.join_channel("lobby", "carol", 2).await.unwrap();
    assert_eq!(store.role("lobby", "bob").await.unwrap(), Some(Role::Member));
    assert_eq!(store.remove_member("lobby", "bob", false).await.unwrap(), Some(Departure::default()));
    assert_eq!(store.role("lobby", "carol").await.unwrap(), Some(Role::Member));
}

/// A removed user may not join again until `add_member` lifts the removal;
/// leaving blocks nothing; a removal blocks only that channel.
pub async fn removed_members_rejoin_only_when_added_back(store: Arc<dyn Store>) {
    assert!(store.create_channel(channel("lobby", false, None)).await.unwrap());
    assert!(store.create_channel(channel("other", false, None)).await.unwrap());
    assert_eq!(store.join_channel("lobby", "bob", 1).await.unwrap(), JoinOutcome::Joined);
    assert_eq!(store.join_channel("lobby", "bob", 2).await.unwrap(), JoinOutcome::AlreadyMember);
    assert!(store.remove_member("lobby", "bob", true).await.unwrap().is_some());
    assert!(!store.is_member("lobby", "bob").await.unwrap());
    assert_eq!(store.join_channel("lobby", "bob", 3).await.unwrap(), JoinOutcome::Blocked);
    assert!(!store.is_member("lobby", "bob").await.unwrap(), "a blocked join adds nothing");
    assert_eq!(store.join_channel("other", "bob", 3).await.unwrap(), JoinOutcome::Joined);
    assert!(store.add_member("lobby", "bob", 4).await.unwrap(), "an owner or admin adds them back");
    assert!(store.remove_member("lobby", "bob", false).await.unwrap().is_some(), "then they leave");
    assert_eq!(
        store.join_channel("lobby", "bob", 5).await.unwrap(),
        JoinOutcome::Joined,
        "leaving blocks nothing"
    );
    assert_eq!(store.members("lobby").await.unwrap(), ["bob"]);
}
