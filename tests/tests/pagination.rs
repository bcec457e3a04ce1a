//! §8 v1.2 pagination and the reply-size cap: `channels` and `members`
//! come a page at a time (bytewise order, `after` exclusive, `limit`
//! default and maximum 200, `more`), and no reply a server builds grows
//! past the cap: `history` returns fewer messages with `more` instead.

use courier_conformance::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const PAGE: usize = 200;

fn names(ok: &Value, list: &str, key: &str) -> Vec<String> {
    ok[list]
        .as_array()
        .unwrap_or_else(|| panic!("`{list}` is an array: {ok}"))
        .iter()
        .map(|r| r[key].as_str().unwrap_or_else(|| panic!("row has `{key}`: {r}")).to_owned())
        .collect()
}

fn more(ok: &Value) -> bool {
    ok["more"].as_bool().unwrap_or_else(|| panic!("ok carries `more`: {ok}"))
}

/// Creates `n` public channels named `<prefix>-<i>` (spread over several
/// users so neither the rate nor the per-user creation cap is in the way).
async fn create_channels(h: &Harness, prefix: &str, n: usize) -> Vec<String> {
    let mut made = Vec::new();
    let mut creators = Vec::new();
    for _ in 0..n.div_ceil(40) {
        creators.push(h.login(&h.user("pg-maker")).await);
    }
    for i in 0..n {
        let name = format!("{prefix}-{i:03}");
        creators[i / 40].ok(json!({"op":"create_channel","channel":name,"private":false})).await;
        made.push(name);
    }
    made.sort();
    made
}

#[tokio::test]
async fn channels_come_in_pages_by_name_after_the_last_one() {
    let h = Harness::new().await;
    let prefix = h.channel("pgc");
    let made = create_channels(&h, &prefix, 5).await;
    let mut c = h.login(&h.user("pg-reader")).await;
    // The prefix itself is no channel, and sorts just before its channels.
    let ok = c.ok(json!({"op":"channels","after":prefix,"limit":2})).await;
    assert_eq!((names(&ok, "channels", "channel"), more(&ok)), (made[..2].to_vec(), true));
    let ok = c.ok(json!({"op":"channels","after":made[1],"limit":2})).await;
    assert_eq!((names(&ok, "channels", "channel"), more(&ok)), (made[2..4].to_vec(), true));
    let ok = c.ok(json!({"op":"channels","after":made[3],"limit":2})).await;
    assert_eq!(names(&ok, "channels", "channel")[0], made[4], "after is exclusive: {ok}");
    // A private channel is on no page.
    let private = format!("{prefix}-000x");
    c.ok(json!({"op":"create_channel","channel":private,"private":true})).await;
    let ok = c.ok(json!({"op":"channels","after":made[0],"limit":1})).await;
    assert_eq!(names(&ok, "channels", "channel"), [made[1].clone()], "{ok}");
    // Bad paging fields are refused, not ignored.
    c.expect_err(json!({"op":"channels","after":"no spaces"}), courier_proto::ErrorCode::BadRequest).await;
    c.expect_err(json!({"op":"channels","limit":-1}), courier_proto::ErrorCode::BadRequest).await;
}

#[tokio::test]
async fn channels_default_to_and_clamp_at_two_hundred_and_walk_to_the_end() {
    let h = Harness::new().await;
    let prefix = h.channel("pgd");
    let made = create_channels(&h, &prefix, PAGE + 5).await;
    let mut c = h.login(&h.user("pg-walker")).await;
    // A v1 client (no paging fields) gets the first page, in name order.
    let first = c.ok(json!({"op":"channels"})).await;
    let listed = names(&first, "channels", "channel");
    assert!(listed.len() <= PAGE, "{} rows", listed.len());
    assert!(listed.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()), "bytewise order");
    for (req, why) in [
        (json!({"op":"channels","after":prefix}), "default limit"),
        (json!({"op":"channels","after":prefix,"limit":0}), "limit 0 means the default"),
        (json!({"op":"channels","after":prefix,"limit":100000}), "a larger limit is clamped"),
    ] {
        let ok = c.ok(req).await;
        assert_eq!((names(&ok, "channels", "channel"), more(&ok)), (made[..PAGE].to_vec(), true), "{why}");
    }
    // Walking the pages yields each channel exactly once.
    let (mut seen, mut after) = (Vec::new(), prefix.clone());
    loop {
        let ok = c.ok(json!({"op":"channels","after":after,"limit":64})).await;
        let page = names(&ok, "channels", "channel");
        let mine: Vec<String> =
            page.iter().filter(|n| n.starts_with(&format!("{prefix}-"))).cloned().collect();
        let done = mine.len() < page.len() || !more(&ok);
        seen.extend(mine);
        if done {
            break;
        }
        after = page.last().unwrap().clone();
    }
    assert_eq!(seen, made);
}

#[tokio::test]
async fn members_come_in_pages_by_user_id_with_the_total_count() {
    let h = Harness::new().await;
    let ch = h.channel("pgm");
    let owner = h.user("pgm-owner");
    let mut co = h.login(&owner).await;
    co.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    // 4 helpers join and each adds up to 40 users who never signed in.
    let mut adders = vec![co];
    let mut all = vec![owner.clone()];
    for _ in 0..4 {
        let u = h.user("pgm-helper");
        let mut c = h.login(&u).await;
        c.ok(json!({"op":"join","channel":ch})).await;
        all.push(u);
        adders.push(c);
    }
    let prefix = h.user("pgm");
    for i in 0..(PAGE + 5 - all.len()) {
        let u = format!("{prefix}-{i:03}");
        adders[i / 40].ok(json!({"op":"add_member","channel":ch,"user":u})).await;
        all.push(u);
    }
    all.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let total = all.len();
    let c = &mut adders[0];
    let first = c.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!(first["count"], json!(total), "count stays the total: {first}");
    assert_eq!((names(&first, "members", "user"), more(&first)), (all[..PAGE].to_vec(), true));
    let clamped = c.ok(json!({"op":"members","channel":ch,"limit":5000})).await;
    assert_eq!(names(&clamped, "members", "user").len(), PAGE);
    let (mut seen, mut after): (Vec<String>, Option<String>) = (Vec::new(), None);
    loop {
        let mut req = json!({"op":"members","channel":ch,"limit":37});
        if let Some(a) = &after {
            req["after"] = json!(a);
        }
        let ok = c.ok(req).await;
        assert_eq!(ok["count"], json!(total), "{ok}");
        let page = names(&ok, "members", "user");
        seen.extend(page.iter().cloned());
        if !more(&ok) {
            break;
        }
        after = page.last().cloned();
    }
    assert_eq!(seen, all, "every member once, in user id order");
    c.expect_err(json!({"op":"members","channel":ch,"after":"a b"}), courier_proto::ErrorCode::BadRequest)
        .await;
}

/// Sends every request before reading any reply (fast on a cluster too);
/// each must succeed.
async fn pipelined(c: &mut Client, reqs: Vec<Value>) {
    let mut ids = Vec::new();
    for r in reqs {
        ids.push(c.send_request(r).await);
    }
    for id in ids {
        let r = c.raw_reply(Some(id), WAIT * 4).await.expect("a reply");
        assert!(r.get("ok").is_some(), "{r}");
    }
}

/// Sends `req` and returns the raw reply with its size on the wire.
async fn sized(c: &mut Client, req: Value) -> (Value, usize) {
    let id = c.send_request(req).await;
    let raw = c
        .raw_reply(Some(id), WAIT)
        .await
        .unwrap_or_else(|| panic!("no reply (closed: {:?})", c.close_seen()));
    let len = raw.to_string().len();
    (raw, len)
}

/// The mid of message `seq` of channel `ch`.
async fn mid_of(c: &mut Client, ch: &str, seq: u64) -> String {
    let ok = c.history(&format!("ch:{ch}"), json!({"after":seq - 1,"limit":1})).await;
    ok["messages"][0]["mid"].as_str().unwrap().to_owned()
}

/// A user id of the maximum length (64), so reactions weigh the most.
fn long_user(h: &Harness, name: &str) -> String {
    let mut u = format!("{}-{}", h.user(name), "x".repeat(64));
    u.truncate(64);
    u
}

#[tokio::test]
async fn no_reply_can_be_built_past_the_reply_cap() {
    // The smallest cap the server accepts with 8 KiB frames: bodies of up to
    // 6,000 bytes, and one message whose reactions alone outweigh the cap.
    const FRAME: usize = 8192;
    const CAP: usize = 2 * FRAME + 16 * 1024;
    let Some(h) = Harness::with_config("no_reply_can_be_built_past_the_reply_cap", |c| {
        c.limits.max_frame_bytes = FRAME;
        c.limits.max_body_bytes = 6000;
        c.limits.send_per_sec = 1000;
        c.limits.send_burst = 1000;
        c.limits.reaction_keys = Some(60);
        c.limits.reactions_per_user = Some(50);
        c.max_reply_bytes = CAP;
    })
    .await
    else {
        return;
    };
    let (writer, reader) = (long_user(&h, "cap-w"), long_user(&h, "cap-r"));
    let ch = h.channel("cap");
    let mut cw = h.login(&writer).await;
    cw.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    let mut cr = h.login(&reader).await;
    cr.ok(json!({"op":"join","channel":ch})).await;
    let sizes = [5900, 3000, 10, 5000, 800];
    let texts: Vec<String> =
        (0..60).map(|i| format!("{i:02}{}", "m".repeat(sizes[i % sizes.len()]))).collect();
    let sends = texts
        .iter()
        .map(|t| json!({"op":"send","to":{"channel":ch},"cid":unique("cap"),"kind":"text","body":{"text":t}}))
        .collect();
    pipelined(&mut cw, sends).await;
    let all = cr.history(&format!("ch:{ch}"), json!({"after":0,"limit":1})).await;
    assert_eq!(all["messages"][0]["seq"], json!(1));
    let monster = mid_of(&mut cr, &ch, 31).await;
    // 8 users with 64-character ids turn on 50 keys each on message 31
    // (about 27 KiB of reactors), and 2 keys on every third message.
    let mut reacted = Vec::new();
    for i in 0..8 {
        let u = long_user(&h, "cap-fan");
        let mut cu = h.login(&u).await;
        cu.ok(json!({"op":"join","channel":ch})).await;
        let mut reqs: Vec<Value> = (0..50)
            .map(|k| {
                json!({"op":"send","to":{"channel":ch},"cid":unique("rx"),"kind":"reaction",
                "body":{"target":monster,"key":format!("key-{k:02}-{}", "k".repeat(20)),"on":true}})
            })
            .collect();
        if i == 0 {
            for seq in (1..=60).step_by(3).filter(|s| *s != 31) {
                let target = mid_of(&mut cr, &ch, seq).await;
                for key in ["👍", "🎉"] {
                    reqs.push(json!({"op":"send","to":{"channel":ch},"cid":unique("rx"),"kind":"reaction",
                        "body":{"target":target,"key":key,"on":true}}));
                }
            }
        }
        pipelined(&mut cu, reqs).await;
        reacted.push(cu);
    }
    // The reader's own reaction on the monster survives any trimming.
    cr.ok(json!({"op":"send","to":{"channel":ch},"cid":unique("rx"),"kind":"reaction",
        "body":{"target":monster,"key":"mine","on":true}}))
        .await;
    let conv = format!("ch:{ch}");
    let want: Vec<u64> = (1..=60).collect();
    let check = |raw: &Value, len: usize, what: &str| {
        assert!(len <= CAP, "{what}: a {len}-byte reply passes the {CAP}-byte cap");
        let ok = &raw["ok"];
        let seqs = seqs(ok);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{what}: ascending seq: {seqs:?}");
        assert!(!seqs.is_empty(), "{what}: every page makes progress");
        for m in ok["messages"].as_array().unwrap() {
            if m["mid"] == monster.as_str() {
                assert_eq!(m["reactions_partial"], json!(true), "{what}: the monster is marked");
                assert_eq!(
                    m["reactions"]["mine"],
                    json!([reader]),
                    "{what}: the reader's own reaction is kept"
                );
            }
        }
        seqs
    };

    // Forward with `after` (content messages only: the relations follow
    // them in the conversation and are paged too).
    for limit in [None, Some(7)] {
        let (mut seen, mut after) = (Vec::new(), 0);
        loop {
            let mut req = json!({"op":"history","conv":conv,"after":after});
            if let Some(l) = limit {
                req["limit"] = json!(l);
            }
            let (raw, len) = sized(&mut cr, req).await;
            let page = check(&raw, len, &format!("after {after} limit {limit:?}"));
            after = *page.last().unwrap();
            seen.extend(page);
            if raw["ok"]["more"] != json!(true) {
                break;
            }
        }
        let content: Vec<u64> = seen.iter().copied().filter(|s| *s <= 60).collect();
        assert_eq!(content, want, "forward paging yields every message once (limit {limit:?})");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "no message twice");
    }

    // Backward from the latest page with `before`.
    let (raw, len) = sized(&mut cr, json!({"op":"history","conv":conv})).await;
    let mut seen = check(&raw, len, "latest page");
    let mut more = raw["ok"]["more"] == json!(true);
    while more {
        let before = seen[0];
        let (raw, len) =
            sized(&mut cr, json!({"op":"history","conv":conv,"before":before,"limit":200})).await;
        let page = check(&raw, len, &format!("before {before}"));
        assert!(page.last().unwrap() < &before);
        more = raw["ok"]["more"] == json!(true);
        seen.splice(0..0, page);
    }
    let content: Vec<u64> = seen.iter().copied().filter(|s| *s <= 60).collect();
    assert_eq!(content, want, "backward paging yields every message once");
    assert_eq!(seen, (1..=*seen.last().unwrap()).collect::<Vec<_>>(), "and every relation: no gap");

    let (_, len) = sized(&mut cr, json!({"op":"sync"})).await;
    assert!(len <= CAP);
    assert!(cr.is_alive().await, "the reader's session is still open");
    assert!(cr.close_seen().is_none());
    cr.expect_no_event_within("no close", Duration::from_millis(100), |e| e["ev"] == "close").await;
    drop(reacted);
}
