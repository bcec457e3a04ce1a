//! Suite cases for the store as a whole: counting messages, closing, and
//! what the historical-schema fixtures read as after migration.

use super::{chan, object, range, relation, seqs, text, user};
use crate::store::{Cursor, JoinOutcome, Page, RelationAppend, Store, StoreError};
use courier_proto::{Conv, Role, Target};
use serde_json::json;

use std::sync::Arc;

// ---------------------------------------------------------------------------
// Lifecycle

/// Counts stored messages across conversations; duplicates add nothing.
pub async fn message_count_counts_stored_messages(store: Arc<dyn Store>) {
    assert_eq!(store.message_count().await.unwrap(), 0);
    store.append(text("alice", user("bob"), "1", "x", 1)).await.unwrap();
    store.append(text("alice", chan("lobby"), "2", "x", 1)).await.unwrap();
    store.append(text("bob", chan("lobby"), "1", "x", 1)).await.unwrap();
    store.append(text("alice", user("bob"), "1", "dup", 1)).await.unwrap();
    assert_eq!(store.message_count().await.unwrap(), 3);
}

/// After `close`, reads and writes fail with `Unavailable` (closing again is
/// fine); what was written before is not affected.
pub async fn close_makes_later_calls_unavailable(store: Arc<dyn Store>) {
    store.append(text("alice", user("bob"), "1", "x", 1)).await.unwrap();
    store.close().await.unwrap();
    let unavailable = |what: &str, e: StoreError| {
        assert!(matches!(e, StoreError::Unavailable(_)), "{what} after close: {e:?}");
    };
    unavailable("append", store.append(text("alice", user("bob"), "2", "x", 2)).await.unwrap_err());
    unavailable("history", store.history(&Conv::dm("alice", "bob"), Page::Latest, 10).await.unwrap_err());
    unavailable("touch_user", store.touch_user("alice", 1).await.unwrap_err());
    unavailable("user_exists", store.user_exists("alice").await.unwrap_err());
    unavailable("invite", store.invite("i1").await.unwrap_err());
    unavailable("message_count", store.message_count().await.unwrap_err());
    store.close().await.expect("closing twice is harmless");
}

// ---------------------------------------------------------------------------
// Migrations

/// What the historical-schema fixtures of versions `1..=version` must read
/// as after migration. Every engine's migration test writes the same logical
/// fixture rows in its own old schema, then checks them through the trait here.
pub async fn check_migrated_fixtures(store: &dyn Store, version: usize) {
    if version == 0 {
        return;
    }
    // v1
    let dm = Conv::dm("alice", "bob");
    let (page, more) = store.history(&dm, Page::Latest, 10).await.unwrap();
    assert!(!more);
    assert_eq!(page.len(), 2);
    assert_eq!(page[1].reply_to.as_deref(), Some("M1"));
    assert_eq!(page[1].to, Target::User("alice".into()));
    assert_eq!(page[0].body["text"], "one");
    assert!(
        page.iter()
            .all(|m| m.edited.is_none() && m.reactions.is_empty() && !m.recalled && m.pinned.is_none())
    );
    let ch = store.message(&Conv::channel("lobby"), "M3").await.unwrap().unwrap();
    assert_eq!(ch.body["k"], serde_json::json!([1, 2]));
    assert_eq!(store.profiles(&["alice".into()]).await.unwrap()[0].name, "Alice");
    assert_eq!(store.last_seen(&["bob".into()]).await.unwrap()["bob"], 50);
    assert_eq!(store.cursor(&dm, "bob").await.unwrap(), Cursor { recv_seq: 2, read_seq: 1 });
    assert_eq!(store.members("lobby").await.unwrap(), ["bob", "alice"]);
    assert!(store.invite("i1").await.unwrap().unwrap().received);
    assert_eq!(store.media("m_1").await.unwrap().unwrap().1, b"hi");
    // v1 messages are all content: bob read 1 of alice's 1 and wrote the 2nd.
    let bob = store.conversations("bob").await.unwrap();
    let row = bob.iter().find(|s| s.conv == dm).unwrap();
    assert_eq!((row.unread, row.mentions_unread), (0, 0), "{row:?}");
    let alice = store.conversations("alice").await.unwrap();
    assert_eq!(alice.iter().find(|s| s.conv == dm).unwrap().unread, 1);
    // Roles: creators own their channels; one whose creator left goes to
    // its longest-standing member; default channels have no owner.
    let roles = |list: &[(&str, Role)]| list.iter().map(|(u, r)| (u.to_string(), *r)).collect::<Vec<_>>();
    assert_eq!(
        store.member_roles("team").await.unwrap(),
        roles(&[("bob", Role::Member), ("alice", Role::Owner)])
    );
    assert_eq!(
        store.member_roles("gone").await.unwrap(),
        roles(&[("dave", Role::Owner), ("erin", Role::Member)])
    );
    assert_eq!(
        store.member_roles("lobby").await.unwrap(),
        roles(&[("bob", Role::Member), ("alice", Role::Member)])
    );
    let mut stored = 3;

    if version >= 2 {
        let conv = Conv::dm("bob", "carol");
        let (page, _) = store.history(&conv, Page::Latest, 10).await.unwrap();
        assert_eq!(seqs(&page), range(1, 5));
        let n1 = &page[0];
        assert_eq!(n1.body, object(json!({"text": "hi @carol", "mentions": ["carol"]})));
        assert_eq!((n1.edited, n1.pinned), (Some(42), Some(43)));
        assert_eq!(n1.reactions.get("👍").map(Vec::as_slice), Some(&["carol".to_string()][..]));
        let carol = store.conversations("carol").await.unwrap();
        let row = carol.iter().find(|s| s.conv == conv).unwrap();
        assert_eq!((row.unread, row.mentions_unread, row.pins.clone()), (1, 1, vec!["N1".to_string()]));
        assert_eq!(store.join_channel("team", "zed", 1).await.unwrap(), JoinOutcome::Blocked);
        stored += 5;
    }

    if version >= 3 {
        let team = Conv::channel("team");
        let alice = store.conversations("alice").await.unwrap();
        let row = alice.iter().find(|s| s.conv == team).unwrap();
        assert_eq!((row.last_seq, row.last_ts, row.unread), (1, 60, 0), "{row:?}");
        stored += 1;
    }

    if version >= 4 {
        // Each has the other's message unread, never their own.
        let lobby = Conv::channel("lobby");
        for user in ["alice", "bob"] {
            let list = store.conversations(user).await.unwrap();
            let row = list.iter().find(|s| s.conv == lobby).unwrap();
            assert_eq!((row.last_seq, row.unread), (2, 1), "{user}: {row:?}");
        }
        stored += 1;
    }

    assert_eq!(store.message_count().await.unwrap(), stored);
    // The migrated database keeps working: counters and idempotency.
    let dup = store.append(text("alice", Target::User("bob".into()), "c1", "x", 1)).await.unwrap();
    assert!(dup.dup);
    assert_eq!(dup.msg.mid, "M1");
    let next = store.append(text("alice", Target::User("bob".into()), "c9", "x", 1)).await.unwrap();
    assert_eq!(next.msg.seq, 3);
    let (edit, rel) = relation(
        "alice",
        Target::User("bob".into()),
        "c10",
        "edit",
        json!({"target": "M1", "text": "uno"}),
        2,
    );
    assert!(matches!(store.append_relation(edit, rel).await.unwrap(), RelationAppend::Stored(_)));
    assert_eq!(store.message(&dm, "M1").await.unwrap().unwrap().body["text"], "uno");
    assert_eq!(store.conv_last(&dm).await.unwrap(), (4, 2));
    if version >= 2 {
        // The migrated counters go on: seqs, and relations that are not unread.
        let conv = Conv::dm("bob", "carol");
        let to_carol = || Target::User("carol".into());
        let body = json!({"target": "N2", "key": "👍", "on": true});
        let (react, rel) = relation("bob", to_carol(), "c11", "reaction", body, 70);
        assert!(matches!(store.append_relation(react, rel).await.unwrap(), RelationAppend::Stored(_)));
        let more = store.append(text("bob", to_carol(), "c12", "more", 71)).await.unwrap();
        assert_eq!(more.msg.seq, 7);
        let carol = store.conversations("carol").await.unwrap();
        let row = carol.iter().find(|s| s.conv == conv).unwrap();
        assert_eq!((row.last_seq, row.last_ts, row.unread), (7, 71, 2), "{row:?}");
    }
}
