//! The behaviour every [`Store`] engine must show, as test cases that take a
//! fresh, empty store.
//!
//! An engine runs the whole suite with one line in its tests:
//!
//! ```ignore
//! courier_server::store_suite!(async { Arc::new(MyStore::open_fresh().await) as Arc<dyn Store> });
//! ```
//!
//! which expands to one `#[tokio::test]` per case (multi-threaded, so
//! concurrency cases really run in parallel). Cases assert what a user would
//! notice: lost or duplicated messages, gaps in `seq`, wrong pages, cursors
//! moving back, an invitation answered twice. Other crates reach the suite
//! through the `store-suite` feature.
//!
//! Adding a case: write the `pub async fn` here and add its name to the list
//! in [`store_suite!`](crate::store_suite).

use super::{
    ChannelRow, ConvSummary, Cursor, MediaMeta, NewChannel, NewMessage, Page, Store, StoreError, Transition,
};
use courier_proto::{ChannelInfo, Conv, Invite, InviteState, Msg, Profile, Target};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Expands to one `#[tokio::test]` per suite case, each given a fresh store
/// from `$fresh`, an async expression yielding `Arc<dyn Store>` (evaluated
/// once per case).
#[macro_export]
macro_rules! store_suite {
    ($fresh:expr) => {
        $crate::store_suite!(@cases $fresh;
            seq_is_gapless_under_concurrent_appends_to_one_conversation,
            seq_is_per_conversation_under_concurrent_appends_to_many,
            append_is_idempotent_on_sender_and_cid,
            concurrent_duplicates_are_stored_once,
            messages_round_trip_exactly,
            history_latest_page,
            history_after_pages,
            history_before_pages,
            history_is_per_conversation,
            cursors_move_forward_clamped_and_read_raises_recv,
            conversations_list_dms_for_both_parties_after_the_first_message,
            conversations_list_member_channels_even_empty,
            channels_create_conflict_and_membership,
            public_channels_sorted_with_counts_without_private,
            invites_round_trip,
            invite_transitions_are_compare_and_set,
            invite_received_is_flipped_once_and_only_while_pending,
            pending_invites_are_listed_for_both_parties,
            recent_invites_include_final_ones_since_a_time,
            users_exist_once_touched,
            last_seen_round_trips,
            profiles_have_defaults_and_partial_updates,
            media_round_trips,
            message_count_counts_stored_messages,
            close_makes_later_calls_unavailable,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::store::Store> = ($fresh).await;
                $crate::store::suite::$case(store).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Helpers (public so engine-specific tests can build the same data)

/// A text message from `from` to `to` with idempotency key `cid`.
pub fn text(from: &str, to: Target, cid: &str, text: &str, ts: i64) -> NewMessage {
    let mut body = Map::new();
    body.insert("text".into(), Value::String(text.into()));
    NewMessage {
        conv: to.conv(from).expect("messages go to a user or a channel"),
        from: from.into(),
        to,
        cid: cid.into(),
        kind: "text".into(),
        body,
        reply_to: None,
        ts,
    }
}

/// A pending invitation from `from` to `to`, created at 1000 for 60 s.
pub fn invite(iid: &str, from: &str, to: &str) -> Invite {
    Invite {
        iid: iid.into(),
        from: from.into(),
        to: to.into(),
        room: format!("call-{iid}"),
        content: object(json!({"media": "audio", "n": 1})),
        state: InviteState::Pending,
        created: 1000,
        expires: 61_000,
        received: false,
        reason: None,
        response: None,
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn user(u: &str) -> Target {
    Target::User(u.into())
}

fn chan(c: &str) -> Target {
    Target::Channel(c.into())
}

fn channel(name: &str, private: bool, creator: Option<&str>) -> NewChannel {
    NewChannel {
        name: name.into(),
        title: format!("Title of {name}"),
        topic: format!("topic of {name}"),
        private,
        creator: creator.map(str::to_owned),
        now: 77,
    }
}

/// `(cursor, limit, expected first..=last seq or nothing, expected more)`.
type PageCase = (u64, u32, Option<(u64, u64)>, bool);

fn seqs(msgs: &[Msg]) -> Vec<u64> {
    msgs.iter().map(|m| m.seq).collect()
}

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}

/// Appends `n` messages from alice to bob (conv `dm:alice:bob`), returning them.
async fn fill_dm(store: &dyn Store, n: u64) -> Vec<Msg> {
    let mut out = Vec::new();
    for i in 1..=n {
        let a =
            store.append(text("alice", user("bob"), &format!("fill-{i}"), &format!("m{i}"), i as i64)).await;
        out.push(a.unwrap().msg);
    }
    out
}

fn summary(
    conv: Conv,
    last_seq: u64,
    last_ts: i64,
    cursor: Cursor,
    peer_cursor: Option<Cursor>,
) -> ConvSummary {
    ConvSummary { conv, last_seq, last_ts, cursor, peer_cursor }
}

fn cursor(recv_seq: u64, read_seq: u64) -> Cursor {
    Cursor { recv_seq, read_seq }
}

// ---------------------------------------------------------------------------
// Messages

/// 8 tasks × 100 appends into one conversation: seqs are exactly 1..=800,
/// each stored once, and history returns exactly what append returned.
pub async fn seq_is_gapless_under_concurrent_appends_to_one_conversation(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const EACH: usize = 100;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..EACH {
                // Every task reuses the same cids: only (sender, cid) is unique.
                let m =
                    text(&format!("user{t}"), chan("lobby"), &format!("c{i}"), &format!("{t}/{i}"), i as i64);
                let a = store.append(m).await.unwrap();
                assert!(!a.dup, "a fresh (sender, cid) is not a duplicate");
                mine.push(a.msg);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        // One task's appends were sequential, so its seqs increase.
        assert!(mine.windows(2).all(|w| w[0].seq < w[1].seq), "seqs go back within one sender");
        all.extend(mine);
    }
    all.sort_by_key(|m| m.seq);
    let n = (TASKS * EACH) as u64;
    assert_eq!(seqs(&all), range(1, n), "seqs must be 1..=n with no gap and no repeat");
    let mids: HashSet<&str> = all.iter().map(|m| m.mid.as_str()).collect();
    assert_eq!(mids.len(), all.len(), "mids are unique");

    let conv = Conv::channel("lobby");
    let (stored, more) = store.history(&conv, Page::After(0), n as u32 + 10).await.unwrap();
    assert!(!more);
    assert_eq!(stored, all, "history holds exactly the acknowledged messages");
    assert_eq!(store.conv_last(&conv).await.unwrap(), (n, all.last().unwrap().ts));
    assert_eq!(store.message_count().await.unwrap(), n);
}

/// Concurrent appends spread over several conversations: each conversation
/// numbers its own messages 1, 2, 3… with no gaps.
pub async fn seq_is_per_conversation_under_concurrent_appends_to_many(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..100 {
                let cid = format!("t{t}-{i}");
                let m = match i % 4 {
                    0 => text("alice", user("bob"), &cid, "a→b", i),
                    1 => text("bob", user("alice"), &cid, "b→a", i),
                    2 => text(&format!("user{t}"), chan("x"), &cid, "x", i),
                    _ => text(&format!("user{t}"), chan("y"), &cid, "y", i),
                };
                mine.push(store.append(m).await.unwrap().msg);
            }
            mine
        }));
    }
    let mut by_conv: HashMap<Conv, Vec<Msg>> = HashMap::new();
    for task in tasks {
        for m in task.await.unwrap() {
            by_conv.entry(m.conv.clone()).or_default().push(m);
        }
    }
    let expected = [(Conv::dm("alice", "bob"), 400), (Conv::channel("x"), 200), (Conv::channel("y"), 200)];
    assert_eq!(by_conv.len(), expected.len());
    for (conv, n) in expected {
        let mut acked = by_conv.remove(&conv).unwrap();
        acked.sort_by_key(|m| m.seq);
        assert_eq!(seqs(&acked), range(1, n), "{conv}");
        let (stored, more) = store.history(&conv, Page::After(0), 1000).await.unwrap();
        assert!(!more);
        assert_eq!(stored, acked, "{conv}");
        assert_eq!(store.conv_last(&conv).await.unwrap().0, n, "{conv}");
    }
    assert_eq!(store.message_count().await.unwrap(), 800);
}

/// A repeated `(from, cid)` returns the original message (seq, mid, ts,
/// body) with `dup`, writes nothing, and another sender may use the same cid.
pub async fn append_is_idempotent_on_sender_and_cid(store: Arc<dyn Store>) {
    let first = store.append(text("alice", user("bob"), "k1", "original", 100)).await.unwrap();
    assert!(!first.dup);
    assert_eq!(first.msg.seq, 1);

    let again = store.append(text("alice", user("bob"), "k1", "a different body", 999)).await.unwrap();
    assert!(again.dup);
    assert_eq!(again.msg, first.msg, "the original comes back, not the retry");

    // Even addressed elsewhere, the key names the original message.
    let elsewhere = store.append(text("alice", chan("lobby"), "k1", "x", 5)).await.unwrap();
    assert!(elsewhere.dup);
    assert_eq!(elsewhere.msg, first.msg);
    assert_eq!(store.conv_last(&Conv::channel("lobby")).await.unwrap(), (0, 0), "nothing written");

    assert_eq!(store.message_count().await.unwrap(), 1);
    assert_eq!(store.conv_last(&Conv::dm("alice", "bob")).await.unwrap(), (1, 100));

    // Bob may pick the same cid: a different key.
    let bobs = store.append(text("bob", user("alice"), "k1", "reply", 200)).await.unwrap();
    assert!(!bobs.dup);
    assert_eq!(bobs.msg.seq, 2);
    assert_ne!(bobs.msg.mid, first.msg.mid);

    // Later appends continue after the duplicates, without a gap.
    let next = store.append(text("alice", user("bob"), "k2", "next", 300)).await.unwrap();
    assert_eq!(next.msg.seq, 3);
    let (all, _) = store.history(&Conv::dm("alice", "bob"), Page::Latest, 10).await.unwrap();
    assert_eq!(all, vec![first.msg, bobs.msg, next.msg]);
}

/// 16 concurrent sends of one `(from, cid)`: exactly one is new, all answer
/// with the same stored message, and one message is stored.
pub async fn concurrent_duplicates_are_stored_once(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.append(text("alice", user("bob"), "same", &format!("try {t}"), t)).await.unwrap()
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|a| !a.dup).count(), 1, "exactly one append is new");
    let winner = results.iter().find(|a| !a.dup).unwrap().msg.clone();
    assert!(results.iter().all(|a| a.msg == winner), "every retry sees the original");
    assert_eq!(winner.seq, 1);
    assert_eq!(store.message_count().await.unwrap(), 1);
    let (stored, _) = store.history(&winner.conv, Page::Latest, 10).await.unwrap();
    assert_eq!(stored, vec![winner]);
}

/// Every field of a message comes back exactly: targets, kinds, nested
/// JSON bodies, reply_to; `message` finds it only in its own conversation.
pub async fn messages_round_trip_exactly(store: Arc<dyn Store>) {
    let body = object(json!({
        "text": "héllo 👋 \"quoted\"\nline",
        "nested": {"list": [1, -2, 3.5, true, null, "s"], "empty": {}},
        "big": 9_007_199_254_740_993_u64,
    }));
    let custom = NewMessage {
        conv: Conv::channel("lobby"),
        from: "alice".into(),
        to: chan("lobby"),
        cid: "01JCUSTOM~!".into(),
        kind: "custom".into(),
        body: body.clone(),
        reply_to: None,
        ts: 1_764_180_000_123,
    };
    let stored = store.append(custom.clone()).await.unwrap().msg;
    assert_eq!(stored.conv, custom.conv);
    assert_eq!(stored.from, "alice");
    assert_eq!(stored.to, chan("lobby"));
    assert_eq!(stored.cid, custom.cid);
    assert_eq!(stored.kind, "custom");
    assert_eq!(stored.body, body);
    assert_eq!(stored.ts, custom.ts);
    assert_eq!(stored.reply_to, None);
    assert!(!stored.mid.is_empty());

    let mut reply = text("bob", chan("lobby"), "r1", "re", 5);
    reply.reply_to = Some(stored.mid.clone());
    let reply = store.append(reply).await.unwrap().msg;
    assert_eq!(reply.reply_to.as_deref(), Some(stored.mid.as_str()));

    // A DM keeps the target as addressed (bob wrote to alice).
    let dm = store.append(text("bob", user("alice"), "d1", "hi", 6)).await.unwrap().msg;
    assert_eq!(dm.conv, Conv::dm("alice", "bob"));
    assert_eq!(dm.to, user("alice"));

    let (page, _) = store.history(&Conv::channel("lobby"), Page::Latest, 10).await.unwrap();
    assert_eq!(page, vec![stored.clone(), reply.clone()]);
    let (page, _) = store.history(&Conv::dm("alice", "bob"), Page::Latest, 10).await.unwrap();
    assert_eq!(page, vec![dm.clone()]);

    let lobby = Conv::channel("lobby");
    assert_eq!(store.message(&lobby, &stored.mid).await.unwrap(), Some(stored.clone()));
    assert_eq!(store.message(&lobby, &reply.mid).await.unwrap(), Some(reply));
    assert_eq!(
        store.message(&Conv::dm("alice", "bob"), &stored.mid).await.unwrap(),
        None,
        "wrong conversation"
    );
    assert_eq!(store.message(&lobby, &dm.mid).await.unwrap(), None, "wrong conversation");
    assert_eq!(store.message(&lobby, "no-such-mid").await.unwrap(), None);
}

/// The latest page: the newest `limit`, ascending; `more` iff older exist.
pub async fn history_latest_page(store: Arc<dyn Store>) {
    let conv = Conv::dm("alice", "bob");
    let (empty, more) = store.history(&conv, Page::Latest, 10).await.unwrap();
    assert!(empty.is_empty() && !more, "an empty conversation has an empty page");

    let all = fill_dm(&*store, 25).await;
    let cases =
        [(10, 16, true), (24, 2, true), (25, 1, false), (26, 1, false), (200, 1, false), (1, 25, true)];
    for (limit, first, expect_more) in cases {
        let (page, more) = store.history(&conv, Page::Latest, limit).await.unwrap();
        assert_eq!(seqs(&page), range(first, 25), "latest limit {limit}");
        assert_eq!(more, expect_more, "latest limit {limit}: more");
        assert_eq!(page[..], all[first as usize - 1..], "latest limit {limit}: content");
    }
}

/// `after`: the oldest `limit` above the cursor, ascending; `more` iff
/// newer exist beyond the page.
pub async fn history_after_pages(store: Arc<dyn Store>) {
    let conv = Conv::dm("alice", "bob");
    let (empty, more) = store.history(&conv, Page::After(0), 10).await.unwrap();
    assert!(empty.is_empty() && !more);

    let all = fill_dm(&*store, 25).await;
    let cases: [PageCase; 9] = [
        (0, 10, Some((1, 10)), true),
        (10, 10, Some((11, 20)), true),
        (20, 10, Some((21, 25)), false),
        (20, 5, Some((21, 25)), false), // exactly the rest
        (19, 5, Some((20, 24)), true),  // one short of the rest
        (15, 10, Some((16, 25)), false),
        (0, 25, Some((1, 25)), false),
        (25, 10, None, false),
        (1000, 10, None, false),
    ];
    for (after, limit, span, expect_more) in cases {
        let (page, more) = store.history(&conv, Page::After(after), limit).await.unwrap();
        match span {
            Some((a, b)) => {
                assert_eq!(seqs(&page), range(a, b), "after {after} limit {limit}");
                assert_eq!(page[..], all[a as usize - 1..b as usize]);
            }
            None => assert!(page.is_empty(), "after {after} limit {limit}"),
        }
        assert_eq!(more, expect_more, "after {after} limit {limit}: more");
    }
}

/// `before`: the newest `limit` below the cursor, ascending; `more` iff
/// older exist beyond the page.
pub async fn history_before_pages(store: Arc<dyn Store>) {
    let conv = Conv::dm("alice", "bob");
    let (empty, more) = store.history(&conv, Page::Before(10), 10).await.unwrap();
    assert!(empty.is_empty() && !more);

    let all = fill_dm(&*store, 25).await;
    let cases: [PageCase; 9] = [
        (26, 10, Some((16, 25)), true),
        (16, 10, Some((6, 15)), true),
        (11, 10, Some((1, 10)), false), // exactly the rest
        (12, 10, Some((2, 11)), true),  // one short of the rest
        (6, 10, Some((1, 5)), false),
        (u64::MAX, 5, Some((21, 25)), true),
        (26, 25, Some((1, 25)), false),
        (1, 10, None, false),
        (0, 10, None, false),
    ];
    for (before, limit, span, expect_more) in cases {
        let (page, more) = store.history(&conv, Page::Before(before), limit).await.unwrap();
        match span {
            Some((a, b)) => {
                assert_eq!(seqs(&page), range(a, b), "before {before} limit {limit}");
                assert_eq!(page[..], all[a as usize - 1..b as usize]);
            }
            None => assert!(page.is_empty(), "before {before} limit {limit}"),
        }
        assert_eq!(more, expect_more, "before {before} limit {limit}: more");
    }
}

/// Pages never mix conversations, and `more` ignores other conversations.
pub async fn history_is_per_conversation(store: Arc<dyn Store>) {
    for i in 0..5 {
        store.append(text("alice", user("bob"), &format!("a{i}"), "ab", i)).await.unwrap();
        store.append(text("alice", user("carol"), &format!("c{i}"), "ac", i)).await.unwrap();
        store.append(text("alice", chan("lobby"), &format!("l{i}"), "lobby", i)).await.unwrap();
    }
    for conv in [Conv::dm("alice", "bob"), Conv::dm("alice", "carol"), Conv::channel("lobby")] {
        for page in [Page::Latest, Page::After(0), Page::Before(6)] {
            let (msgs, more) = store.history(&conv, page, 5).await.unwrap();
            assert_eq!(seqs(&msgs), range(1, 5), "{conv} {page:?}");
            assert!(msgs.iter().all(|m| m.conv == conv), "{conv} {page:?}");
            assert!(!more, "{conv} {page:?}");
        }
    }
    let (msgs, more) = store.history(&Conv::dm("bob", "carol"), Page::Latest, 5).await.unwrap();
    assert!(msgs.is_empty() && !more);
}

// ---------------------------------------------------------------------------
// Receipts

/// Cursors never move back, never pass `last_seq`, and reading raises the
/// receive cursor.
pub async fn cursors_move_forward_clamped_and_read_raises_recv(store: Arc<dyn Store>) {
    let conv = Conv::dm("alice", "bob");
    assert_eq!(store.cursor(&conv, "bob").await.unwrap(), cursor(0, 0), "zeros when never set");
    // Nothing stored yet: everything clamps to 0.
    assert_eq!(store.advance_cursor(&conv, "bob", Some(5), Some(5)).await.unwrap(), cursor(0, 0));

    fill_dm(&*store, 10).await;
    let steps: [(Option<u64>, Option<u64>, Cursor); 9] = [
        (Some(5), None, cursor(5, 0)),
        (Some(3), None, cursor(5, 0)),          // back: no-op
        (None, Some(4), cursor(5, 4)),          // read below recv
        (None, Some(2), cursor(5, 4)),          // back: no-op
        (None, Some(8), cursor(8, 8)),          // read raises recv
        (Some(6), Some(7), cursor(8, 8)),       // both back
        (None, None, cursor(8, 8)),             // nothing
        (Some(100), None, cursor(10, 8)),       // clamped to last_seq
        (None, Some(u64::MAX), cursor(10, 10)), // clamped, raises recv
    ];
    for (recv, read, expected) in steps {
        let got = store.advance_cursor(&conv, "bob", recv, read).await.unwrap();
        assert_eq!(got, expected, "advance recv {recv:?} read {read:?}");
        assert_eq!(
            store.cursor(&conv, "bob").await.unwrap(),
            expected,
            "stored after recv {recv:?} read {read:?}"
        );
    }
    assert_eq!(store.cursor(&conv, "alice").await.unwrap(), cursor(0, 0), "cursors are per user");
    assert_eq!(
        store.cursor(&Conv::channel("lobby"), "bob").await.unwrap(),
        cursor(0, 0),
        "and per conversation"
    );

    // New messages lift the clamp.
    store.append(text("alice", user("bob"), "more", "x", 11)).await.unwrap();
    assert_eq!(store.advance_cursor(&conv, "bob", Some(100), None).await.unwrap(), cursor(11, 10));
}

// ---------------------------------------------------------------------------
// Conversations (sync)

/// A DM is listed for both parties once it has a message (also for a user
/// who never signed in), with the peer's cursors; a self-chat once.
pub async fn conversations_list_dms_for_both_parties_after_the_first_message(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    // Cursors on an empty DM do not make it listed.
    store.advance_cursor(&dm, "alice", Some(1), Some(1)).await.unwrap();
    assert!(store.conversations("alice").await.unwrap().is_empty());

    store.append(text("alice", user("bob"), "c1", "hi", 10)).await.unwrap();
    let zero = cursor(0, 0);
    assert_eq!(
        store.conversations("alice").await.unwrap(),
        vec![summary(dm.clone(), 1, 10, zero, Some(zero))]
    );
    assert_eq!(store.conversations("bob").await.unwrap(), vec![summary(dm.clone(), 1, 10, zero, Some(zero))]);
    assert!(store.conversations("carol").await.unwrap().is_empty());

    store.append(text("bob", user("alice"), "c1", "hey", 20)).await.unwrap();
    store.advance_cursor(&dm, "bob", Some(2), Some(1)).await.unwrap();
    assert_eq!(
        store.conversations("alice").await.unwrap(),
        vec![summary(dm.clone(), 2, 20, zero, Some(cursor(2, 1)))],
        "alice sees bob's cursors"
    );
    assert_eq!(
        store.conversations("bob").await.unwrap(),
        vec![summary(dm.clone(), 2, 20, cursor(2, 1), Some(zero))],
        "bob sees his own and alice's"
    );

    // A self-chat is listed once and its peer is the user.
    let me = Conv::dm("alice", "alice");
    store.append(text("alice", user("alice"), "note", "to self", 30)).await.unwrap();
    store.advance_cursor(&me, "alice", None, Some(1)).await.unwrap();
    let alice = store.conversations("alice").await.unwrap();
    let mine: Vec<&ConvSummary> = alice.iter().filter(|s| s.conv == me).collect();
    assert_eq!(mine, vec![&summary(me.clone(), 1, 30, cursor(1, 1), Some(cursor(1, 1)))]);
    assert_eq!(alice.len(), 2);

    // A user who never signed in still gets the DM listed.
    store.append(text("alice", user("ghost"), "g", "boo", 40)).await.unwrap();
    assert_eq!(
        store.conversations("ghost").await.unwrap(),
        vec![summary(Conv::dm("alice", "ghost"), 1, 40, zero, Some(zero))]
    );
}

/// Channels the user is a member of are listed, also empty ones (last_seq
/// 0), with the user's cursors; non-members do not see them.
pub async fn conversations_list_member_channels_even_empty(store: Arc<dyn Store>) {
    let team = Conv::channel("team");
    assert!(store.create_channel(channel("team", true, Some("alice"))).await.unwrap());
    let zero = cursor(0, 0);
    assert_eq!(store.conversations("alice").await.unwrap(), vec![summary(team.clone(), 0, 0, zero, None)]);
    assert!(store.conversations("bob").await.unwrap().is_empty());

    store.add_member("team", "bob", 80).await.unwrap();
    store.append(text("alice", chan("team"), "t1", "hello team", 90)).await.unwrap();
    store.append(text("bob", chan("team"), "t2", "hi", 95)).await.unwrap();
    store.advance_cursor(&team, "bob", None, Some(1)).await.unwrap();
    assert_eq!(
        store.conversations("bob").await.unwrap(),
        vec![summary(team.clone(), 2, 95, cursor(1, 1), None)]
    );
    assert_eq!(store.conversations("alice").await.unwrap(), vec![summary(team.clone(), 2, 95, zero, None)]);

    // Messages in a channel do not list it for non-members.
    assert!(store.create_channel(channel("busy", false, None)).await.unwrap());
    store.append(text("carol", chan("busy"), "b1", "x", 100)).await.unwrap();
    assert!(store.conversations("carol").await.unwrap().is_empty());
    store.add_member("busy", "carol", 101).await.unwrap();
    assert_eq!(
        store.conversations("carol").await.unwrap(),
        vec![summary(Conv::channel("busy"), 1, 100, zero, None)]
    );

    // DMs and channels together; leaving drops the channel.
    store.append(text("bob", user("carol"), "d1", "dm", 110)).await.unwrap();
    let mut bob: Vec<Conv> = store.conversations("bob").await.unwrap().into_iter().map(|s| s.conv).collect();
    bob.sort();
    let mut expected = vec![team.clone(), Conv::dm("bob", "carol")];
    expected.sort();
    assert_eq!(bob, expected);
    assert!(store.remove_member("team", "bob").await.unwrap());
    let bob: Vec<Conv> = store.conversations("bob").await.unwrap().into_iter().map(|s| s.conv).collect();
    assert_eq!(bob, vec![Conv::dm("bob", "carol")]);
}

// ---------------------------------------------------------------------------
// Channels

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

    assert!(store.remove_member("team", "dave").await.unwrap());
    assert!(!store.remove_member("team", "dave").await.unwrap(), "no longer a member");
    assert!(!store.remove_member("team", "zed").await.unwrap(), "never a member");
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
    store.remove_member("mid", "dave").await.unwrap();
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

// ---------------------------------------------------------------------------
// Call invitations

/// Invitations come back as stored, whatever their state.
pub async fn invites_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.invite("nope").await.unwrap(), None);
    let pending = invite("i1", "alice", "bob");
    store.create_invite(&pending).await.unwrap();
    assert_eq!(store.invite("i1").await.unwrap(), Some(pending));

    let mut failed = invite("i2", "alice", "ghost");
    failed.state = InviteState::Failed;
    failed.reason = Some("unknown_user".into());
    failed.content = object(json!({"deep": {"x": [1, "two"]}, "ü": "ß"}));
    store.create_invite(&failed).await.unwrap();
    assert_eq!(store.invite("i2").await.unwrap(), Some(failed.clone()));
    assert_eq!(
        store.transition_invite("i2", InviteState::Accepted, None).await.unwrap(),
        Transition::AlreadyFinal(failed),
        "a failed invitation is final from the start"
    );
    assert_eq!(
        store.transition_invite("nope", InviteState::Canceled, None).await.unwrap(),
        Transition::NotFound
    );
}

/// 16 concurrent transitions of one invitation: exactly one `Done`, every
/// other call sees that same final invitation, and it never changes again.
pub async fn invite_transitions_are_compare_and_set(store: Arc<dyn Store>) {
    let original = invite("i1", "alice", "bob");
    store.create_invite(&original).await.unwrap();
    let states = [InviteState::Accepted, InviteState::Refused, InviteState::Canceled, InviteState::Expired];
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        let to = states[t % states.len()];
        let response =
            matches!(to, InviteState::Accepted | InviteState::Refused).then(|| object(json!({"by": t})));
        tasks.push(tokio::spawn(async move {
            let result = store.transition_invite("i1", to, response.clone()).await.unwrap();
            (to, response, result)
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let winners: Vec<_> = outcomes.iter().filter(|(_, _, r)| matches!(r, Transition::Done(_))).collect();
    assert_eq!(winners.len(), 1, "exactly one transition wins");
    let (to, response, Transition::Done(done)) = winners[0] else { unreachable!() };
    let expected = Invite { state: *to, response: response.clone(), ..original.clone() };
    assert_eq!(done, &expected, "the winner's state and response are stored");
    for (_, _, result) in &outcomes {
        if !matches!(result, Transition::Done(_)) {
            assert_eq!(
                result,
                &Transition::AlreadyFinal(expected.clone()),
                "losers see the final invitation"
            );
        }
    }
    assert_eq!(store.invite("i1").await.unwrap(), Some(expected.clone()));
    assert_eq!(
        store
            .transition_invite("i1", InviteState::Canceled, Some(object(json!({"late": true}))))
            .await
            .unwrap(),
        Transition::AlreadyFinal(expected.clone())
    );
    assert_eq!(store.invite("i1").await.unwrap(), Some(expected), "a final state is locked");
}

/// `received` flips once, only while pending, and survives the answer.
pub async fn invite_received_is_flipped_once_and_only_while_pending(store: Arc<dyn Store>) {
    assert_eq!(store.mark_invite_received("nope").await.unwrap(), None);
    store.create_invite(&invite("i1", "alice", "bob")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.mark_invite_received("i1").await.unwrap() }));
    }
    let mut flipped = Vec::new();
    for task in tasks {
        flipped.extend(task.await.unwrap());
    }
    let expected = Invite { received: true, ..invite("i1", "alice", "bob") };
    assert_eq!(flipped, vec![expected.clone()], "exactly one call flips it, and gets the invitation");
    assert_eq!(store.mark_invite_received("i1").await.unwrap(), None);
    assert_eq!(store.invite("i1").await.unwrap(), Some(expected.clone()));
    let Transition::Done(answered) =
        store.transition_invite("i1", InviteState::Accepted, None).await.unwrap()
    else {
        panic!("pending invitation not accepted");
    };
    assert!(answered.received);

    // Once final, it is never marked received.
    store.create_invite(&invite("i2", "alice", "bob")).await.unwrap();
    store.transition_invite("i2", InviteState::Canceled, None).await.unwrap();
    assert_eq!(store.mark_invite_received("i2").await.unwrap(), None);
    assert!(!store.invite("i2").await.unwrap().unwrap().received);
}

/// Pending invitations are listed for caller and callee; final ones never.
pub async fn pending_invites_are_listed_for_both_parties(store: Arc<dyn Store>) {
    let mut i1 = invite("i1", "alice", "bob");
    i1.created = 1;
    let mut i2 = invite("i2", "carol", "alice");
    i2.created = 2;
    let i3 = invite("i3", "bob", "carol");
    let mut i4 = invite("i4", "alice", "ghost");
    i4.state = InviteState::Failed;
    i4.reason = Some("unknown_user".into());
    for i in [&i1, &i2, &i3, &i4] {
        store.create_invite(i).await.unwrap();
    }
    store.transition_invite("i3", InviteState::Refused, None).await.unwrap();

    let iids = |list: Vec<Invite>| {
        let mut v: Vec<String> = list.into_iter().map(|i| i.iid).collect();
        v.sort();
        v
    };
    assert_eq!(iids(store.pending_invites_for("alice").await.unwrap()), ["i1", "i2"]);
    assert_eq!(iids(store.pending_invites_for("bob").await.unwrap()), ["i1"]);
    assert_eq!(iids(store.pending_invites_for("carol").await.unwrap()), ["i2"]);
    assert!(store.pending_invites_for("ghost").await.unwrap().is_empty());
    let mut all = store.pending_invites().await.unwrap();
    all.sort_by(|a, b| a.iid.cmp(&b.iid));
    assert_eq!(all, vec![i1.clone(), i2]);

    store.transition_invite("i1", InviteState::Expired, None).await.unwrap();
    assert_eq!(iids(store.pending_invites_for("alice").await.unwrap()), ["i2"]);
    assert!(store.pending_invites_for("bob").await.unwrap().is_empty());
    assert_eq!(iids(store.pending_invites().await.unwrap()), ["i2"]);
}

/// Recent invitations are listed for both parties in any state, by creation
/// time, and only from `since` on.
pub async fn recent_invites_include_final_ones_since_a_time(store: Arc<dyn Store>) {
    let mut old = invite("old", "alice", "bob");
    old.created = 10;
    let mut answered = invite("answered", "alice", "bob");
    answered.created = 2000;
    let mut ringing = invite("ringing", "bob", "alice");
    ringing.created = 3000;
    let mut other = invite("other", "carol", "dave");
    other.created = 2500;
    for i in [&old, &answered, &ringing, &other] {
        store.create_invite(i).await.unwrap();
    }
    store.transition_invite("answered", InviteState::Accepted, None).await.unwrap();
    let list = store.recent_invites_for("bob", 1000).await.unwrap();
    let got: Vec<(&str, InviteState)> = list.iter().map(|i| (i.iid.as_str(), i.state)).collect();
    assert_eq!(got, [("answered", InviteState::Accepted), ("ringing", InviteState::Pending)]);
    assert_eq!(store.recent_invites_for("alice", 0).await.unwrap().len(), 3);
    assert!(store.recent_invites_for("alice", 3001).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Users and profiles

/// Users exist once they signed in; touching again is harmless.
pub async fn users_exist_once_touched(store: Arc<dyn Store>) {
    assert!(!store.user_exists("alice").await.unwrap());
    store.touch_user("alice", 100).await.unwrap();
    assert!(store.user_exists("alice").await.unwrap());
    store.touch_user("alice", 50).await.unwrap();
    store.touch_user("alice", 200).await.unwrap();
    assert!(store.user_exists("alice").await.unwrap());
    assert!(!store.user_exists("Alice").await.unwrap(), "ids are case-sensitive");
    // Being written to does not make a user known.
    store.append(text("bob", user("carol"), "c", "x", 1)).await.unwrap();
    assert!(!store.user_exists("carol").await.unwrap());
}

/// Last-seen times are stored per user and overwritten.
pub async fn last_seen_round_trips(store: Arc<dyn Store>) {
    assert_eq!(store.last_seen(&[]).await.unwrap(), HashMap::new());
    store.set_last_seen("alice", 100).await.unwrap();
    store.set_last_seen("bob", 200).await.unwrap();
    let ask: Vec<String> = ["alice", "bob", "carol"].map(String::from).to_vec();
    let expected = HashMap::from([("alice".to_string(), 100), ("bob".to_string(), 200)]);
    assert_eq!(store.last_seen(&ask).await.unwrap(), expected);
    store.set_last_seen("alice", 300).await.unwrap();
    assert_eq!(store.last_seen(&ask[..1]).await.unwrap(), HashMap::from([("alice".to_string(), 300)]));
}

/// Profiles of known users in the order asked, defaults for unset fields,
/// and updates that touch only the fields given.
pub async fn profiles_have_defaults_and_partial_updates(store: Arc<dyn Store>) {
    store.touch_user("alice", 1).await.unwrap();
    store.touch_user("bob", 1).await.unwrap();
    let profile = |user: &str, name: &str, avatar: &str, status: &str| Profile {
        user: user.into(),
        name: name.into(),
        avatar: avatar.into(),
        status: status.into(),
    };
    let ask: Vec<String> = ["bob", "ghost", "alice"].map(String::from).to_vec();
    assert_eq!(
        store.profiles(&ask).await.unwrap(),
        vec![profile("bob", "bob", "", ""), profile("alice", "alice", "", "")],
        "order asked, unknown users left out, name defaults to the id"
    );

    let p = store.set_profile("alice", None, None, Some("busy")).await.unwrap();
    assert_eq!(p, profile("alice", "alice", "", "busy"), "the name still defaults");
    let p = store.set_profile("alice", Some("Alice"), None, None).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "", "busy"));
    let p = store.set_profile("alice", None, Some("avatar:3"), None).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "avatar:3", "busy"));
    let p = store.set_profile("alice", None, None, Some("")).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "avatar:3", ""), "a field can be cleared");
    let p = store.set_profile("alice", None, None, None).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "avatar:3", ""), "no fields: unchanged");
    assert_eq!(
        store.profiles(&ask).await.unwrap(),
        vec![profile("bob", "bob", "", ""), profile("alice", "Alice", "avatar:3", "")]
    );
}

// ---------------------------------------------------------------------------
// Media

/// Bytes and facts come back exactly, also for large and empty objects.
pub async fn media_round_trips(store: Arc<dyn Store>) {
    assert_eq!(store.media("m_none").await.unwrap(), None);
    // 3 MiB of deterministic noise.
    let mut x: u32 = 0x9E37_79B9;
    let big: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let meta = |id: &str, size: usize| MediaMeta {
        id: id.into(),
        owner: "alice".into(),
        mime: "image/png".into(),
        size: size as u64,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        created: 1_764_180_000_000,
    };
    store.put_media(&meta("m_big", big.len()), big.clone()).await.unwrap();
    store.put_media(&meta("m_empty", 0), Vec::new()).await.unwrap();
    assert_eq!(store.media("m_big").await.unwrap(), Some((meta("m_big", big.len()), big)));
    assert_eq!(store.media("m_empty").await.unwrap(), Some((meta("m_empty", 0), Vec::new())));
    assert_eq!(store.media("m_none").await.unwrap(), None);
}

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
    if version >= 1 {
        let dm = Conv::dm("alice", "bob");
        let (page, more) = store.history(&dm, Page::Latest, 10).await.unwrap();
        assert!(!more);
        assert_eq!(page.len(), 2);
        assert_eq!(page[1].reply_to.as_deref(), Some("M1"));
        assert_eq!(page[1].to, Target::User("alice".into()));
        assert_eq!(page[0].body["text"], "one");
        let ch = store.message(&Conv::channel("lobby"), "M3").await.unwrap().unwrap();
        assert_eq!(ch.body["k"], serde_json::json!([1, 2]));
        assert_eq!(store.profiles(&["alice".into()]).await.unwrap()[0].name, "Alice");
        assert_eq!(store.last_seen(&["bob".into()]).await.unwrap()["bob"], 50);
        assert_eq!(store.cursor(&dm, "bob").await.unwrap(), Cursor { recv_seq: 2, read_seq: 1 });
        assert_eq!(store.members("lobby").await.unwrap(), ["bob", "alice"]);
        assert!(store.invite("i1").await.unwrap().unwrap().received);
        assert_eq!(store.media("m_1").await.unwrap().unwrap().1, b"hi");
        assert_eq!(store.message_count().await.unwrap(), 3);
        // The migrated database keeps working: counters and idempotency.
        let dup = store.append(text("alice", Target::User("bob".into()), "c1", "x", 1)).await.unwrap();
        assert!(dup.dup);
        assert_eq!(dup.msg.mid, "M1");
        let next = store.append(text("alice", Target::User("bob".into()), "c9", "x", 1)).await.unwrap();
        assert_eq!(next.msg.seq, 3);
    }
}
