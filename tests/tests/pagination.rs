//! §8 v1.2 pagination and the reply-size cap: `channels` and `members`
//! come a page at a time (bytewise order, `after` exclusive, `limit`
//! default and maximum 200, `more`), and no reply a server builds grows
//! past the cap: `history` returns fewer messages with `more` instead.

use courier_conformance::*;
use serde_json::{Value, json};
use std::collections::HashSet;

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
        let mine: Vec<String> = page.iter().filter(|n| n.starts_with(&format!("{prefix}-"))).cloned().collect();
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
