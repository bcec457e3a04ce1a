//! Suite cases for messages: `seq` numbering under concurrency, idempotent
//! appends, exact round trips, history pages, read/receive cursors and the
//! conversation list with its unread counters.

use super::{chan, channel, object, range, relate, seqs, text, user};
use crate::store::{ConvSummary, Cursor, NewMessage, Page, Store};
use courier_proto::{Conv, Msg};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// `(cursor, limit, expected first..=last seq or nothing, expected more)`.
type PageCase = (u64, u32, Option<(u64, u64)>, bool);

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
// Appends and history

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
// Unread counters

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
    store.append(text("alice", user("bob"), "a4", "more", 8)).await.unwrap(); // 8
    assert_eq!(counts("bob").await, (1, 0), "read to the end past three relations, then one more");
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

/// `recent_conversations` keeps the most recently active (empty channels
/// last) and says whether it left some out; what it keeps is what
/// `conversations` shows of them, sorted by conversation.
pub async fn recent_conversations_are_the_most_recently_active(store: Arc<dyn Store>) {
    assert!(store.create_channel(channel("quiet", false, Some("alice"))).await.unwrap());
    assert!(store.create_channel(channel("loud", false, Some("alice"))).await.unwrap());
    for (i, peer) in ["bob", "carol", "dave", "erin"].into_iter().enumerate() {
        store.append(text(peer, user("alice"), &format!("d{i}"), "hi", 100 + i as i64 * 10)).await.unwrap();
    }
    store.append(text("alice", chan("loud"), "l1", "news", 125)).await.unwrap();
    let all = store.conversations("alice").await.unwrap();
    assert_eq!(all.len(), 6);
    let (kept, more) = store.recent_conversations("alice", 3).await.unwrap();
    assert!(more, "three of six");
    let convs: Vec<String> = kept.iter().map(|s| s.conv.to_string()).collect();
    assert_eq!(convs, ["dm:alice:dave", "dm:alice:erin", "ch:loud"], "newest 130, 125, 120; sorted by conv");
    for k in &kept {
        assert_eq!(Some(k), all.iter().find(|a| a.conv == k.conv), "the same row as the full list");
    }
    let (kept, more) = store.recent_conversations("alice", 5).await.unwrap();
    assert!(more && !kept.iter().any(|s| s.conv == Conv::channel("quiet")), "the empty channel goes first");
    let (kept, more) = store.recent_conversations("alice", 6).await.unwrap();
    assert!(!more);
    assert_eq!(kept, all);
}
