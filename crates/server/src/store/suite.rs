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
    Appended, ChannelRow, ConvSummary, Cursor, Departure, JoinOutcome, MediaMeta, NewChannel, NewMessage,
    Page, Relation, RelationAppend, Store, StoreError, Transition, UploadQuota,
};
use courier_proto::{ChannelInfo, Conv, Invite, InviteState, Msg, Profile, Role, Target};
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
            channel_and_member_pages_are_bytewise_after_exclusive,
            sharing_a_conversation_is_a_common_channel_or_a_two_sided_dm,
            invites_round_trip,
            invite_transitions_are_compare_and_set,
            invite_received_is_flipped_once_and_only_while_pending,
            pending_invites_are_listed_for_both_parties,
            recent_invites_include_final_ones_since_a_time,
            users_exist_once_touched,
            last_seen_round_trips,
            profiles_have_defaults_and_partial_updates,
            media_round_trips,
            media_reads_in_chunks,
            media_bytes_since_counts_one_owner_from_a_time,
            concurrent_uploads_cannot_pass_the_quota_together,
            relations_update_their_targets_aggregates,
            a_recall_scrubs_its_target_for_good,
            relations_racing_a_recall_are_before_it_or_refused,
            unread_counts_others_content_after_the_read_cursor,
            roles_transfer_and_owner_succession,
            removed_members_rejoin_only_when_added_back,
            reaction_tally_counts_keys_and_one_users_keys_on_one_message,
            reaction_caps_hold_under_concurrent_reactions,
            channels_created_since_counts_one_creator_from_a_time,
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
        mentions: Vec::new(),
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

/// A sync row with `unread` content messages and no mentions or pins.
fn summary(
    conv: Conv,
    last_seq: u64,
    last_ts: i64,
    cursor: Cursor,
    peer_cursor: Option<Cursor>,
    unread: u64,
) -> ConvSummary {
    ConvSummary { conv, last_seq, last_ts, cursor, peer_cursor, unread, mentions_unread: 0, pins: Vec::new() }
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
        mentions: Vec::new(),
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
        vec![summary(dm.clone(), 1, 10, zero, Some(zero), 0)],
        "the sender's own message is not unread"
    );
    assert_eq!(
        store.conversations("bob").await.unwrap(),
        vec![summary(dm.clone(), 1, 10, zero, Some(zero), 1)]
    );
    assert!(store.conversations("carol").await.unwrap().is_empty());

    store.append(text("bob", user("alice"), "c1", "hey", 20)).await.unwrap();
    store.advance_cursor(&dm, "bob", Some(2), Some(1)).await.unwrap();
    assert_eq!(
        store.conversations("alice").await.unwrap(),
        vec![summary(dm.clone(), 2, 20, zero, Some(cursor(2, 1)), 1)],
        "alice sees bob's cursors"
    );
    assert_eq!(
        store.conversations("bob").await.unwrap(),
        vec![summary(dm.clone(), 2, 20, cursor(2, 1), Some(zero), 0)],
        "bob sees his own and alice's"
    );

    // A self-chat is listed once and its peer is the user.
    let me = Conv::dm("alice", "alice");
    store.append(text("alice", user("alice"), "note", "to self", 30)).await.unwrap();
    store.advance_cursor(&me, "alice", None, Some(1)).await.unwrap();
    let alice = store.conversations("alice").await.unwrap();
    let mine: Vec<&ConvSummary> = alice.iter().filter(|s| s.conv == me).collect();
    assert_eq!(mine, vec![&summary(me.clone(), 1, 30, cursor(1, 1), Some(cursor(1, 1)), 0)]);
    assert_eq!(alice.len(), 2);

    // A user who never signed in still gets the DM listed.
    store.append(text("alice", user("ghost"), "g", "boo", 40)).await.unwrap();
    assert_eq!(
        store.conversations("ghost").await.unwrap(),
        vec![summary(Conv::dm("alice", "ghost"), 1, 40, zero, Some(zero), 1)]
    );
}

/// Channels the user is a member of are listed, also empty ones (last_seq
/// 0), with the user's cursors; non-members do not see them.
pub async fn conversations_list_member_channels_even_empty(store: Arc<dyn Store>) {
    let team = Conv::channel("team");
    assert!(store.create_channel(channel("team", true, Some("alice"))).await.unwrap());
    let zero = cursor(0, 0);
    assert_eq!(store.conversations("alice").await.unwrap(), vec![summary(team.clone(), 0, 0, zero, None, 0)]);
    assert!(store.conversations("bob").await.unwrap().is_empty());

    store.add_member("team", "bob", 80).await.unwrap();
    store.append(text("alice", chan("team"), "t1", "hello team", 90)).await.unwrap();
    store.append(text("bob", chan("team"), "t2", "hi", 95)).await.unwrap();
    store.advance_cursor(&team, "bob", None, Some(1)).await.unwrap();
    assert_eq!(
        store.conversations("bob").await.unwrap(),
        vec![summary(team.clone(), 2, 95, cursor(1, 1), None, 0)]
    );
    assert_eq!(
        store.conversations("alice").await.unwrap(),
        vec![summary(team.clone(), 2, 95, zero, None, 1)]
    );

    // Messages in a channel do not list it for non-members.
    assert!(store.create_channel(channel("busy", false, None)).await.unwrap());
    store.append(text("carol", chan("busy"), "b1", "x", 100)).await.unwrap();
    assert!(store.conversations("carol").await.unwrap().is_empty());
    store.add_member("busy", "carol", 101).await.unwrap();
    assert_eq!(
        store.conversations("carol").await.unwrap(),
        vec![summary(Conv::channel("busy"), 1, 100, zero, None, 0)]
    );

    // DMs and channels together; leaving drops the channel.
    store.append(text("bob", user("carol"), "d1", "dm", 110)).await.unwrap();
    let mut bob: Vec<Conv> = store.conversations("bob").await.unwrap().into_iter().map(|s| s.conv).collect();
    bob.sort();
    let mut expected = vec![team.clone(), Conv::dm("bob", "carol")];
    expected.sort();
    assert_eq!(bob, expected);
    assert!(store.remove_member("team", "bob", false).await.unwrap().is_some());
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
// v1.1: relations, unread counters, roles

/// A relation message from `from` to `to` and the relation it carries.
pub fn relation(
    from: &str,
    to: Target,
    cid: &str,
    kind: &str,
    body: Value,
    ts: i64,
) -> (NewMessage, Relation) {
    let body = object(body);
    let rel = Relation::parse(kind, &body).expect("a well-formed relation body");
    let msg = NewMessage {
        conv: to.conv(from).expect("messages go to a user or a channel"),
        from: from.into(),
        to,
        cid: cid.into(),
        kind: kind.into(),
        body,
        reply_to: None,
        ts,
        mentions: Vec::new(),
    };
    (msg, rel)
}

/// Stores a relation that must be accepted; returns the stored message.
async fn relate(
    store: &dyn Store,
    from: &str,
    to: Target,
    cid: &str,
    kind: &str,
    body: Value,
    ts: i64,
) -> Msg {
    let (msg, rel) = relation(from, to, cid, kind, body, ts);
    match store.append_relation(msg, rel).await.unwrap() {
        RelationAppend::Stored(a) => {
            assert!(!a.dup, "{cid} is new");
            a.msg
        }
        other => panic!("{cid} ({kind}) refused: {other:?}"),
    }
}

/// The message with `mid` in a page.
fn find<'a>(page: &'a [Msg], mid: &str) -> &'a Msg {
    page.iter().find(|m| m.mid == mid).unwrap_or_else(|| panic!("{mid} is in the page"))
}

/// Edits, reactions and pins change their target's aggregates in history
/// (newest edit wins, a key with no users is gone, re-pinning keeps the
/// first pin), get their own seqs, and are refused, writing nothing, when
/// the target is unknown, a relation, or in another conversation.
pub async fn relations_update_their_targets_aggregates(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let m1 = store.append(text("alice", user("bob"), "m1", "draft", 10)).await.unwrap().msg;
    let m2 = store.append(text("bob", user("alice"), "m2", "ok", 20)).await.unwrap().msg;
    let (a, b) = (user("bob"), user("alice"));
    let e1 =
        relate(&*store, "alice", a.clone(), "e1", "edit", json!({"target": m1.mid, "text": "v2"}), 50).await;
    relate(&*store, "alice", a.clone(), "e2", "edit", json!({"target": m1.mid, "text": "v3"}), 60).await;
    let thumbs = |on: bool| json!({"target": m1.mid, "key": "👍", "on": on});
    let party = |on: bool| json!({"target": m1.mid, "key": "🎉", "on": on});
    relate(&*store, "bob", b.clone(), "r1", "reaction", thumbs(true), 70).await;
    relate(&*store, "alice", a.clone(), "r2", "reaction", thumbs(true), 71).await;
    relate(&*store, "alice", a.clone(), "r3", "reaction", party(true), 72).await;
    relate(&*store, "bob", b.clone(), "r4", "reaction", thumbs(true), 73).await;
    relate(&*store, "alice", a.clone(), "r5", "reaction", party(false), 74).await;
    relate(&*store, "bob", b.clone(), "p1", "pin", json!({"target": m2.mid, "on": true}), 100).await;
    relate(&*store, "alice", a.clone(), "p2", "pin", json!({"target": m1.mid, "on": true}), 110).await;
    let last =
        relate(&*store, "bob", b.clone(), "p3", "pin", json!({"target": m2.mid, "on": true}), 120).await;
    assert_eq!(last.seq, 12, "every relation has its own seq");
    assert_eq!(last.body["target"], json!(m2.mid), "a relation is stored as sent");
    assert_eq!(store.conv_last(&dm).await.unwrap(), (12, 120));

    let (page, more) = store.history(&dm, Page::Latest, 100).await.unwrap();
    assert!(!more);
    assert_eq!(seqs(&page), range(1, 12));
    let got = find(&page, &m1.mid);
    assert_eq!(got.body, object(json!({"text": "v3"})), "the newest edit's text");
    assert_eq!(got.edited, Some(60), "the newest edit's ts");
    let reactions: Vec<(&str, Vec<&str>)> =
        got.reactions.iter().map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect())).collect();
    assert_eq!(reactions, vec![("👍", vec!["bob", "alice"])], "users in reacting order; 🎉 has nobody");
    assert_eq!(got.pinned, Some(110));
    assert!(!got.recalled);
    let got2 = find(&page, &m2.mid);
    assert_eq!(
        (got2.pinned, got2.edited, got2.reactions.len()),
        (Some(100), None, 0),
        "re-pinning keeps the pin"
    );
    let edit = find(&page, &e1.mid);
    assert_eq!(edit.body, object(json!({"target": m1.mid, "text": "v2"})), "an edit keeps its own text");
    assert!(edit.edited.is_none() && edit.reactions.is_empty() && edit.pinned.is_none());
    assert_eq!(store.message(&dm, &m1.mid).await.unwrap().as_ref(), Some(got), "message() has aggregates");
    // Pages that start after the target still see nothing of it, and a
    // page holding the target sees reactions sent later.
    let (tail, _) = store.history(&dm, Page::After(1), 1).await.unwrap();
    assert_eq!(find(&tail, &m2.mid).pinned, Some(100));
    let (head, _) = store.history(&dm, Page::Before(2), 1).await.unwrap();
    assert_eq!(head[0].reactions["👍"], ["bob", "alice"]);

    let pins = |list: &[ConvSummary]| list.iter().find(|s| s.conv == dm).unwrap().pins.clone();
    assert_eq!(pins(&store.conversations("alice").await.unwrap()), [m2.mid.clone(), m1.mid.clone()]);
    relate(&*store, "alice", a.clone(), "p4", "pin", json!({"target": m2.mid, "on": false}), 130).await;
    assert_eq!(pins(&store.conversations("bob").await.unwrap()), vec![m1.mid.clone()], "oldest pin first");
    assert_eq!(store.message(&dm, &m2.mid).await.unwrap().unwrap().pinned, None);

    // Refusals write nothing.
    let before = store.conv_last(&dm).await.unwrap();
    for (cid, body) in [
        ("x1", json!({"target": "01NOSUCHMID", "key": "k", "on": true})),
        ("x2", json!({"target": e1.mid, "key": "k", "on": true})),
    ] {
        let (msg, rel) = relation("alice", a.clone(), cid, "reaction", body, 200);
        assert_eq!(store.append_relation(msg, rel).await.unwrap(), RelationAppend::NoTarget, "{cid}");
    }
    let elsewhere = store.append(text("alice", chan("lobby"), "l1", "hi", 5)).await.unwrap().msg;
    let (msg, rel) = relation("alice", a.clone(), "x3", "recall", json!({"target": elsewhere.mid}), 200);
    assert_eq!(
        store.append_relation(msg, rel).await.unwrap(),
        RelationAppend::NoTarget,
        "another conversation"
    );
    assert_eq!(store.conv_last(&dm).await.unwrap(), before);
    assert!(store.message_by_cid("alice", "x1").await.unwrap().is_none());
    assert_eq!(store.message_by_cid("alice", "e1").await.unwrap(), Some(e1));
}

/// What the v1.2 reaction caps read: distinct keys on one message, the
/// keys one user has on it, and whether the key (and the user's own) is on.
pub async fn reaction_tally_counts_keys_and_one_users_keys_on_one_message(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let m1 = store.append(text("alice", user("bob"), "m1", "one", 10)).await.unwrap().msg;
    let m2 = store.append(text("alice", user("bob"), "m2", "two", 11)).await.unwrap().msg;
    let (a, b) = (user("bob"), user("alice"));
    let react = |mid: &str, key: &str, on: bool| json!({"target": mid, "key": key, "on": on});
    relate(&*store, "alice", a.clone(), "r1", "reaction", react(&m1.mid, "k1", true), 20).await;
    relate(&*store, "alice", a.clone(), "r2", "reaction", react(&m1.mid, "k2", true), 21).await;
    relate(&*store, "bob", b.clone(), "r3", "reaction", react(&m1.mid, "k2", true), 22).await;
    relate(&*store, "bob", b.clone(), "r4", "reaction", react(&m1.mid, "k3", true), 23).await;
    relate(&*store, "bob", b.clone(), "r5", "reaction", react(&m1.mid, "k3", false), 24).await;
    relate(&*store, "bob", b.clone(), "r6", "reaction", react(&m2.mid, "k9", true), 25).await;
    let t = store.reaction_tally(&dm, m1.seq, "alice", "k2").await.unwrap();
    assert_eq!((t.keys, t.user_keys, t.key_present, t.user_has_key), (2, 2, true, true), "{t:?}");
    let t = store.reaction_tally(&dm, m1.seq, "bob", "k1").await.unwrap();
    assert_eq!((t.keys, t.user_keys, t.key_present, t.user_has_key), (2, 1, true, false), "k3 is off: {t:?}");
    let t = store.reaction_tally(&dm, m1.seq, "carol", "k3").await.unwrap();
    assert_eq!((t.keys, t.user_keys, t.key_present, t.user_has_key), (2, 0, false, false), "{t:?}");
    let t = store.reaction_tally(&dm, m2.seq, "alice", "k1").await.unwrap();
    assert_eq!(
        (t.keys, t.user_keys, t.key_present, t.user_has_key),
        (1, 0, false, false),
        "per message: {t:?}"
    );
}

/// The v1.2 reaction caps are checked in the reaction's transaction: 16
/// concurrent reactions with distinct keys by one user store exactly
/// `per_user`, and other users together reach exactly `keys` distinct
/// keys. Refusals write nothing; a key already on, taking one off, and a
/// retry of a stored reaction always pass.
pub async fn reaction_caps_hold_under_concurrent_reactions(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let caps = super::ReactionCaps { keys: 5, per_user: 3 };
    let target = store.append(text("alice", user("bob"), "t", "react", 10)).await.unwrap().msg;
    let react = |from: &str, cid: String, key: String, on: bool| {
        let to = if from == "alice" { user("bob") } else { user("alice") };
        relation(from, to, &cid, "reaction", json!({"target": target.mid, "key": key, "on": on}), 20)
    };
    let race = |from: &'static str, prefix: &'static str| {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                let (msg, rel) = react(from, format!("{prefix}{i}"), format!("{prefix}{i}"), true);
                tokio::spawn(async move { store.append_relation_capped(msg, rel, caps).await.unwrap() })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };
    let alice = race("alice", "a").await;
    let stored = alice.iter().filter(|r| matches!(r, RelationAppend::Stored(_))).count();
    assert_eq!(stored, 3, "per_user under concurrency: {alice:?}");
    assert!(
        alice
            .iter()
            .all(|r| matches!(r, RelationAppend::Stored(_) | RelationAppend::Capped("reactions_per_user")))
    );
    let bob = race("bob", "b").await;
    let stored = bob.iter().filter(|r| matches!(r, RelationAppend::Stored(_))).count();
    assert_eq!(stored, 2, "the rest of `keys` under concurrency: {bob:?}");
    assert!(bob.contains(&RelationAppend::Capped("reaction_keys")), "{bob:?}");
    let t = store.reaction_tally(&dm, target.seq, "carol", "x").await.unwrap();
    assert_eq!((t.keys, t.user_keys), (5, 0));
    assert_eq!(store.conv_last(&dm).await.unwrap().0, 1 + 3 + 2, "refusals write nothing");
    // What always passes: a key already on, taking a key off, a retry.
    let on_key = |r: &[RelationAppend]| match r.iter().find(|r| matches!(r, RelationAppend::Stored(_))) {
        Some(RelationAppend::Stored(a)) => {
            (a.msg.cid.clone(), a.msg.body["key"].as_str().unwrap().to_owned())
        }
        _ => unreachable!(),
    };
    let (acid, akey) = on_key(&alice);
    let (msg, rel) = react("bob", "again".into(), akey.clone(), true);
    assert!(matches!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Stored(_)));
    let (msg, rel) = react("alice", acid.clone(), akey.clone(), true);
    match store.append_relation_capped(msg, rel, caps).await.unwrap() {
        RelationAppend::Stored(a) => assert!(a.dup, "a retry is its duplicate"),
        other => panic!("retry: {other:?}"),
    }
    let (msg, rel) = react("alice", "off".into(), "never-on".into(), false);
    assert!(matches!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Stored(_)));
}

/// A recall scrubs its target for good: body, edits' texts, reactions,
/// pin, mentions and the media its sender uploaded; any later relation to
/// it is refused, but a retried relation still gets its original.
pub async fn a_recall_scrubs_its_target_for_good(store: Arc<dyn Store>) {
    let room = chan("room");
    let conv = Conv::channel("room");
    let media = |id: &str, owner: &str| MediaMeta {
        id: id.into(),
        owner: owner.into(),
        mime: "image/png".into(),
        size: 2,
        sha256: "00".into(),
        created: 1,
    };
    store.put_media(&media("m_alice", "alice"), vec![1, 2]).await.unwrap();
    store.put_media(&media("m_bob", "bob"), vec![3, 4]).await.unwrap();
    assert!(store.create_channel(channel("room", false, Some("alice"))).await.unwrap());
    assert!(store.add_member("room", "bob", 2).await.unwrap());
    let mut secret = text("alice", room.clone(), "t1", "secret", 10);
    secret.body.insert("mentions".into(), json!(["bob"]));
    secret.mentions = vec!["bob".into()];
    let t1 = store.append(secret).await.unwrap().msg;
    let e1 = relate(
        &*store,
        "alice",
        room.clone(),
        "e1",
        "edit",
        json!({"target": t1.mid, "text": "secret!"}),
        11,
    )
    .await;
    let r1 = relate(
        &*store,
        "bob",
        room.clone(),
        "r1",
        "reaction",
        json!({"target": t1.mid, "key": "k", "on": true}),
        12,
    )
    .await;
    relate(&*store, "bob", room.clone(), "p1", "pin", json!({"target": t1.mid, "on": true}), 13).await;
    let image = |cid: &str, m: &str| NewMessage {
        kind: "image".into(),
        body: object(json!({"media": m, "mime": "image/png"})),
        ..text("alice", room.clone(), cid, "-", 14)
    };
    let i1 = store.append(image("i1", "m_alice")).await.unwrap().msg;
    let i2 = store.append(image("i2", "m_bob")).await.unwrap().msg;
    let bob_row = |list: Vec<ConvSummary>| list.into_iter().find(|s| s.conv == conv).unwrap();
    let before = bob_row(store.conversations("bob").await.unwrap());
    assert_eq!((before.mentions_unread, before.pins.len()), (1, 1), "{before:?}");

    let recall = relate(&*store, "alice", room.clone(), "c1", "recall", json!({"target": t1.mid}), 20).await;
    let (page, _) = store.history(&conv, Page::Latest, 100).await.unwrap();
    let gone = find(&page, &t1.mid);
    assert!(gone.recalled);
    assert_eq!(gone.body, Map::new(), "no content");
    assert!(gone.edited.is_none() && gone.reactions.is_empty() && gone.pinned.is_none(), "{gone:?}");
    assert_eq!(
        find(&page, &e1.mid).body,
        object(json!({"target": t1.mid})),
        "its edits keep only the target"
    );
    assert_eq!(find(&page, &r1.mid).body["key"], "k", "reactions carry no content and stay as sent");
    assert_eq!(find(&page, &recall.mid).body, object(json!({"target": t1.mid})));
    assert_eq!(store.message(&conv, &t1.mid).await.unwrap().as_ref(), Some(gone));
    let after = bob_row(store.conversations("bob").await.unwrap());
    assert_eq!(
        (after.unread, after.mentions_unread, after.pins.len()),
        (before.unread - 1, 0, 0),
        "{after:?}"
    );
    // The retry of a relation made before the recall still gets its original.
    let (retry, rel) = relation(
        "bob",
        room.clone(),
        "r1",
        "reaction",
        json!({"target": t1.mid, "key": "k", "on": true}),
        30,
    );
    assert_eq!(
        store.append_relation(retry, rel).await.unwrap(),
        RelationAppend::Stored(Appended { msg: r1, dup: true })
    );
    // Anything new that points at it is refused and writes nothing.
    let last = store.conv_last(&conv).await.unwrap();
    for (cid, kind, body) in [
        ("n1", "reaction", json!({"target": t1.mid, "key": "k", "on": false})),
        ("n2", "pin", json!({"target": t1.mid, "on": true})),
        ("n3", "recall", json!({"target": t1.mid})),
        ("n4", "edit", json!({"target": t1.mid, "text": "back"})),
    ] {
        let (msg, rel) = relation("alice", room.clone(), cid, kind, body, 40);
        assert_eq!(store.append_relation(msg, rel).await.unwrap(), RelationAppend::Recalled, "{kind}");
    }
    assert_eq!(store.conv_last(&conv).await.unwrap(), last);

    // Media: the sender's own upload is gone, someone else's stays.
    relate(&*store, "alice", room.clone(), "c2", "recall", json!({"target": i1.mid}), 50).await;
    relate(&*store, "alice", room.clone(), "c3", "recall", json!({"target": i2.mid}), 51).await;
    assert_eq!(store.media("m_alice").await.unwrap(), None);
    assert_eq!(store.media("m_bob").await.unwrap().map(|(_, b)| b), Some(vec![3, 4]));
}

/// 20 rounds of 8 reactions racing a recall of their target: each reaction
/// is stored before the recall or refused; afterwards the target carries
/// no reaction and the conversation holds exactly what was accepted.
pub async fn relations_racing_a_recall_are_before_it_or_refused(store: Arc<dyn Store>) {
    let conv = Conv::channel("race");
    for round in 0..20 {
        let t = store.append(text("alice", chan("race"), &format!("t{round}"), "x", 1)).await.unwrap().msg;
        let mut tasks = Vec::new();
        for i in 0..9 {
            let (store, mid) = (store.clone(), t.mid.clone());
            tasks.push(tokio::spawn(async move {
                let (msg, rel) = if i == 4 {
                    relation("alice", chan("race"), &format!("c{round}"), "recall", json!({"target": mid}), 2)
                } else {
                    let body = json!({"target": mid, "key": "k", "on": true});
                    relation(&format!("u{i}"), chan("race"), &format!("r{round}"), "reaction", body, 2)
                };
                store.append_relation(msg, rel).await.unwrap()
            }));
        }
        let mut recall_seq = 0;
        let mut reactions = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                RelationAppend::Stored(a) if i == 4 => recall_seq = a.msg.seq,
                RelationAppend::Stored(a) => reactions.push(a.msg.seq),
                RelationAppend::Recalled => assert_ne!(i, 4, "the recall itself is never refused"),
                RelationAppend::NoTarget => panic!("the target exists"),
                RelationAppend::Capped(cap) => panic!("uncapped, yet {cap}"),
            }
        }
        assert!(recall_seq > 0);
        assert!(reactions.iter().all(|s| *s < recall_seq), "round {round}: a reaction after the recall");
        let got = store.message(&conv, &t.mid).await.unwrap().unwrap();
        assert!(got.recalled && got.reactions.is_empty(), "round {round}: {got:?}");
        assert_eq!(store.conv_last(&conv).await.unwrap().0, recall_seq.max(t.seq), "round {round}");
    }
    let (all, _) = store.history(&conv, Page::After(0), 1000).await.unwrap();
    assert_eq!(seqs(&all), range(1, all.len() as u64), "gapless");
}

/// `unread` counts others' content messages after the read cursor that are
/// not recalled; `mentions_unread` those of them that mention the user.
/// Relations and the user's own messages (and self-mentions) never count.
pub async fn unread_counts_others_content_after_the_read_cursor(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let mentioning = |cid: &str, t: &str, who: &[&str]| {
        let mut m = text("alice", user("bob"), cid, t, 1);
        m.body.insert("mentions".into(), json!(who));
        m.mentions = who.iter().map(|u| u.to_string()).collect();
        m
    };
    let a1 = store.append(mentioning("a1", "hi @bob", &["bob"])).await.unwrap().msg; // 1
    let b1 = store.append(text("bob", user("alice"), "b1", "yo", 2)).await.unwrap().msg; // 2
    relate(
        &*store,
        "alice",
        user("bob"),
        "r1",
        "reaction",
        json!({"target": b1.mid, "key": "k", "on": true}),
        3,
    )
    .await; // 3
    let a2 = store.append(mentioning("a2", "and @bob", &["bob"])).await.unwrap().msg; // 4
    relate(&*store, "alice", user("bob"), "e1", "edit", json!({"target": a1.mid, "text": "hey"}), 5).await; // 5
    store.append(mentioning("a3", "@bob @alice", &["bob", "alice"])).await.unwrap(); // 6
    let counts = |who: &'static str| {
        let store = store.clone();
        let dm = dm.clone();
        async move {
            let row = store.conversations(who).await.unwrap().into_iter().find(|s| s.conv == dm).unwrap();
            (row.unread, row.mentions_unread)
        }
    };
    assert_eq!(counts("bob").await, (3, 3));
    assert_eq!(counts("alice").await, (1, 0), "own messages and self-mentions never count");
    store.advance_cursor(&dm, "bob", None, Some(3)).await.unwrap();
    assert_eq!(counts("bob").await, (2, 2), "read up to a relation");
    relate(&*store, "alice", user("bob"), "c1", "recall", json!({"target": a2.mid}), 7).await; // 7
    assert_eq!(counts("bob").await, (1, 1), "a recalled message is not unread");
    store.advance_cursor(&dm, "bob", None, Some(5)).await.unwrap();
    assert_eq!(counts("bob").await, (1, 1));
    store.advance_cursor(&dm, "bob", None, Some(7)).await.unwrap();
    assert_eq!(counts("bob").await, (0, 0));
    store.advance_cursor(&dm, "alice", None, Some(2)).await.unwrap();
    assert_eq!(counts("alice").await, (0, 0));
    // Channels count the same way, also with no cursor yet.
    assert!(store.create_channel(channel("team", false, Some("carol"))).await.unwrap());
    store.add_member("team", "dave", 1).await.unwrap();
    let mut m = text("carol", chan("team"), "t1", "@dave", 1);
    m.mentions = vec!["dave".into()];
    store.append(m).await.unwrap();
    store.append(text("dave", chan("team"), "t2", "here", 2)).await.unwrap();
    let dave = store.conversations("dave").await.unwrap();
    assert_eq!((dave[0].unread, dave[0].mentions_unread), (1, 1), "{dave:?}");
}

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

/// Downloads read an object a range at a time: ranges are exact, short at
/// the end, empty past it, and `None` for an unknown object.
pub async fn media_reads_in_chunks(store: Arc<dyn Store>) {
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = MediaMeta {
        id: "m_chunky".into(),
        owner: "alice".into(),
        mime: "application/pdf".into(),
        size: bytes.len() as u64,
        sha256: "00".into(),
        created: 1_764_180_000_000,
    };
    store.put_media(&meta, bytes.clone()).await.unwrap();
    assert_eq!(store.media_meta("m_chunky").await.unwrap(), Some(meta));
    assert_eq!(store.media_meta("m_none").await.unwrap(), None);
    assert_eq!(store.media_chunk("m_none", 0, 10).await.unwrap(), None);
    let chunk = |o: u64, n: usize| {
        let store = store.clone();
        async move { store.media_chunk("m_chunky", o, n).await.unwrap().expect("object exists") }
    };
    assert_eq!(chunk(0, 10).await, bytes[..10]);
    assert_eq!(chunk(262_144, 300_000).await, bytes[262_144..562_144]);
    assert_eq!(chunk(999_990, 100).await, bytes[999_990..], "short at the end");
    assert!(chunk(1_000_000, 100).await.is_empty(), "empty at the end");
    assert!(chunk(5_000_000, 100).await.is_empty(), "empty past the end");
    let mut whole = Vec::new();
    while whole.len() < bytes.len() {
        whole.extend(chunk(whole.len() as u64, crate::store::MEDIA_CHUNK).await);
    }
    assert!(whole == bytes, "chunks add up to the object");
}

/// The quota is checked where the object is stored, in one step with the
/// insert: ten concurrent 100-byte uploads against 450 bytes store four.
pub async fn concurrent_uploads_cannot_pass_the_quota_together(store: Arc<dyn Store>) {
    let quota = UploadQuota { since: 1_764_115_200_000, bytes: 450 };
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let created = quota.since + i as i64;
            let meta = MediaMeta {
                id: format!("m_{}", ulid::Ulid::from_parts(created as u64, u128::from(i))),
                owner: "alice".into(),
                mime: "image/png".into(),
                size: 100,
                sha256: "00".into(),
                created,
            };
            store.put_media_within(&meta, vec![7; 100], quota).await.unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            None => stored += 1,
            Some(used) => assert!(used + 100 > 450, "refused with {used} used"),
        }
    }
    assert_eq!(stored, 4);
    assert_eq!(store.media_bytes_since("alice", quota.since).await.unwrap(), 400);
    // Another owner has a quota of their own; earlier uploads do not count.
    let meta = MediaMeta {
        id: format!("m_{}", ulid::Ulid::from_parts(quota.since as u64, 99)),
        owner: "bob".into(),
        mime: "image/png".into(),
        size: 450,
        sha256: "00".into(),
        created: quota.since,
    };
    assert_eq!(store.put_media_within(&meta, vec![1; 450], quota).await.unwrap(), None);
}

/// The daily upload quota's sum: one owner's uploads at or after a time.
pub async fn media_bytes_since_counts_one_owner_from_a_time(store: Arc<dyn Store>) {
    let day = 1_764_115_200_000; // a UTC midnight
    let put = |owner: &'static str, size: usize, created: i64| {
        let store = store.clone();
        async move {
            // Server-minted ids: `m_` + the ULID of the upload time.
            let id = format!("m_{}", ulid::Ulid::from_parts(created as u64, rand::random()));
            let meta = MediaMeta {
                id,
                owner: owner.into(),
                mime: "image/png".into(),
                size: size as u64,
                sha256: "00".into(),
                created,
            };
            store.put_media(&meta, vec![1; size]).await.unwrap();
        }
    };
    assert_eq!(store.media_bytes_since("alice", day).await.unwrap(), 0);
    put("alice", 100, day - 1).await;
    put("alice", 10, day).await;
    put("alice", 20, day + 3_600_000).await;
    put("bob", 1000, day + 1).await;
    assert_eq!(store.media_bytes_since("alice", day).await.unwrap(), 30);
    assert_eq!(store.media_bytes_since("alice", day - 1).await.unwrap(), 130);
    assert_eq!(store.media_bytes_since("bob", day).await.unwrap(), 1000);
    assert_eq!(store.media_bytes_since("carol", 0).await.unwrap(), 0);
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
