//! §4 messages: send, msg delivery, idempotency, seq, history, sync,
//! receipts, typing, signal.

use courier_conformance::*;
use courier_proto::{ErrorCode, HistoryOk, Msg, SendOk, SyncOk};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn is_msg(conv: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["ev"] == "msg" && e["conv"] == conv
}

/// A fresh public channel both clients have joined. The creator sees each
/// join before the next step: in a cluster, its node has then dropped its
/// cached member list (the bus delivers the invalidation first).
async fn shared_channel(h: &Harness, clients: &mut [&mut Client]) -> String {
    let ch = h.channel("room");
    clients[0]
        .ok(json!({"op":"create_channel","channel":ch,"title":"Room","topic":"","private":false}))
        .await;
    for i in 1..clients.len() {
        clients[i].ok(json!({"op":"join","channel":ch})).await;
        let user = clients[i].user.clone();
        clients[0]
            .event_where("join", |e| e["ev"] == "member" && e["channel"] == ch && e["user"] == user)
            .await;
    }
    ch
}

#[tokio::test]
async fn send_text_dm_ok_shape_and_msg_event() {
    let h = Harness::new().await;
    let (a, b) = (h.user("alice"), h.user("bob"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let cid = unique("cid");
    let ok = ca.ok(json!({"op":"send","to":{"user":b},"cid":cid,"kind":"text","body":{"text":"hi"}})).await;
    let sent: SendOk = serde_json::from_value(ok.clone()).unwrap_or_else(|e| panic!("{e}: {ok}"));
    let conv = dm_conv(&a, &b);
    assert_eq!(sent.conv.to_string(), conv);
    assert_eq!(sent.seq, 1);
    assert!(!sent.mid.is_empty());
    assert!(sent.ts > 1_600_000_000_000, "ts in ms: {ok}");
    assert!(!sent.dup);

    let ev = cb.event_where("msg", is_msg(&conv)).await;
    let m: Msg = serde_json::from_value(ev.clone()).unwrap_or_else(|e| panic!("{e}: {ev}"));
    assert_eq!(
        (m.seq, m.mid.as_str(), m.cid.as_str(), m.from.as_str(), m.kind.as_str(), m.ts),
        (1, sent.mid.as_str(), cid.as_str(), a.as_str(), "text", sent.ts)
    );
    assert_eq!(ev["to"], json!({"user": b}));
    assert_eq!(ev["body"], json!({"text":"hi"}));
    // The sending session does not get its own message.
    ca.expect_no_event_where("own msg", is_msg(&conv)).await;
}

#[tokio::test]
async fn all_content_kinds_are_stored_and_delivered() {
    let h = Harness::new().await;
    let (a, b) = (h.user("kinds-a"), h.user("kinds-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = shared_channel(&h, &mut [&mut ca, &mut cb]).await;
    let conv = format!("ch:{ch}");
    let up = h.upload(&h.token(&a), "image/png", b"\x89PNG fake image bytes").await;
    assert_eq!(up.status, 201, "{}", up.text());
    let media = up.json()["media"].as_str().unwrap().to_owned();
    let bodies = [
        ("text", json!({"text":"hello"})),
        (
            "image",
            json!({"media":media,"mime":"image/png","width":640,"height":480,"name":"cat.png","size":21}),
        ),
        ("file", json!({"media":media,"mime":"application/octet-stream","name":"x.bin","size":21})),
        ("custom", json!({"type":"poll","question":"?","options":["a","b"],"nested":{"n":1}})),
    ];
    for (i, (kind, body)) in bodies.iter().enumerate() {
        let ok =
            ca.ok(json!({"op":"send","to":{"channel":ch},"cid":unique("k"),"kind":kind,"body":body})).await;
        assert_eq!(ok["seq"], json!(i + 1), "{kind}: {ok}");
        let ev = cb.event_where(kind, is_msg(&conv)).await;
        assert_eq!((&ev["kind"], &ev["body"]), (&json!(kind), body), "{ev}");
        assert_eq!(ev["to"], json!({"channel": ch}));
    }
    let hist = ca.history(&conv, json!({})).await;
    let got: Vec<(Value, Value)> =
        hist["messages"].as_array().unwrap().iter().map(|m| (m["kind"].clone(), m["body"].clone())).collect();
    let want: Vec<(Value, Value)> = bodies.iter().map(|(k, b)| (json!(k), b.clone())).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn reply_to_is_kept() {
    let h = Harness::new().await;
    let (a, b) = (h.user("rt-a"), h.user("rt-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let first = ca.dm(&b, "question").await;
    let mid = first["mid"].as_str().unwrap();
    cb.ok(json!({"op":"send","to":{"user":a},"cid":unique("r"),"kind":"text","body":{"text":"answer"},"reply_to":mid}))
        .await;
    let ev = ca.event_where("reply msg", |e| e["ev"] == "msg" && e["from"] == b).await;
    assert_eq!(ev["reply_to"], json!(mid), "{ev}");
    let hist = ca.history(&dm_conv(&a, &b), json!({})).await;
    assert_eq!(hist["messages"][1]["reply_to"], json!(mid), "{hist}");
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let h = Harness::new().await;
    let (a, b) = (h.user("uf-a"), h.user("uf-b"));
    let mut ca = h.login(&a).await;
    let ok = ca
        .ok(json!({"op":"send","to":{"user":b},"cid":unique("u"),"kind":"text","body":{"text":"x"},
                   "future_field":{"x":[1,2]},"priority":"high"}))
        .await;
    assert_eq!(ok["seq"], json!(1));
    ca.ok(json!({"op":"sync","whatever":true})).await;
    // Inside nested objects too: a target with a field of a later version.
    let ok = ca
        .ok(json!({"op":"send","to":{"user":b,"route":"fast"},"cid":unique("u"),"kind":"text","body":{"text":"y"}}))
        .await;
    assert_eq!(ok["seq"], json!(2), "{ok}");
    // Two targets at once stay a bad request.
    ca.expect_err(
        json!({"op":"send","to":{"user":b,"channel":"lobby"},"cid":unique("u"),"kind":"text","body":{"text":"z"}}),
        ErrorCode::BadRequest,
    )
    .await;
}

#[tokio::test]
async fn retry_with_same_cid_is_dup_and_not_delivered_again() {
    let h = Harness::new().await;
    let (a, b) = (h.user("idem-a"), h.user("idem-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    let req = json!({"op":"send","to":{"user":b},"cid":unique("same"),"kind":"text","body":{"text":"once"}});
    let first = ca.ok(req.clone()).await;
    cb.event_where("first delivery", is_msg(&conv)).await;
    // The retry may even come from another session of the sender.
    let mut ca2 = h.login(&a).await;
    for c in [&mut ca, &mut ca2] {
        let again = c.ok(req.clone()).await;
        assert_eq!(again["dup"], json!(true), "{again}");
        for k in ["conv", "seq", "mid", "ts"] {
            assert_eq!(again[k], first[k], "{k}: first {first}, retry {again}");
        }
    }
    cb.expect_no_event_where("second delivery", is_msg(&conv)).await;
    let hist = cb.history(&conv, json!({})).await;
    assert_eq!(seqs(&hist), vec![1]);
    // The next new message takes the next seq: the dup consumed none.
    assert_eq!(ca.dm(&b, "next").await["seq"], json!(2));
}

#[tokio::test]
async fn cid_is_scoped_to_the_sender() {
    let h = Harness::new().await;
    let (a, b) = (h.user("scope-a"), h.user("scope-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let cid = unique("shared-cid");
    let r1 =
        ca.ok(json!({"op":"send","to":{"user":b},"cid":cid,"kind":"text","body":{"text":"from a"}})).await;
    let r2 =
        cb.ok(json!({"op":"send","to":{"user":a},"cid":cid,"kind":"text","body":{"text":"from b"}})).await;
    assert_eq!(r1["dup"], json!(false));
    assert_eq!(r2["dup"], json!(false), "another sender's cid is not a dup: {r2}");
    assert_eq!((r1["seq"].clone(), r2["seq"].clone()), (json!(1), json!(2)));
}

#[tokio::test]
async fn seqs_are_gapless_under_concurrent_senders() {
    let h = Harness::new().await;
    const SENDERS: usize = 6;
    const EACH: usize = 30;
    let ch = h.channel("race");
    let mut owner = h.login(&h.user("race-owner")).await;
    owner.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    let mut tasks = Vec::new();
    for i in 0..SENDERS {
        let mut c = h.login(&h.user(&format!("racer{i}"))).await;
        c.ok(json!({"op":"join","channel":ch})).await;
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for j in 0..EACH {
                let ok = c.say(&ch, &format!("{i}/{j}")).await;
                got.push(ok["seq"].as_u64().unwrap());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "one sender's seqs increase: {got:?}");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>());
    // History agrees.
    let hist = owner.history(&format!("ch:{ch}"), json!({})).await;
    assert_eq!(seqs(&hist), (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn seq_is_per_conversation() {
    let h = Harness::new().await;
    let (a, b, c) = (h.user("pc-a"), h.user("pc-b"), h.user("pc-c"));
    let mut ca = h.login(&a).await;
    assert_eq!(ca.dm(&b, "1").await["seq"], json!(1));
    assert_eq!(ca.dm(&b, "2").await["seq"], json!(2));
    assert_eq!(ca.dm(&c, "1").await["seq"], json!(1));
}

#[tokio::test]
async fn msg_reaches_every_session_of_every_member_except_the_sender() {
    let h = Harness::new().await;
    let (a, b) = (h.user("fan-a"), h.user("fan-b"));
    let mut a1 = h.login(&a).await;
    let mut a2 = h.login(&a).await;
    let mut b1 = h.login(&b).await;
    let mut b2 = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    let ok = a1.dm(&b, "to all").await;
    for c in [&mut a2, &mut b1, &mut b2] {
        let ev = c.event_where("msg", is_msg(&conv)).await;
        assert_eq!(ev["mid"], ok["mid"]);
    }
    a1.expect_no_event_where("own msg", is_msg(&conv)).await;

    // Channel: same rule.
    let ch = shared_channel(&h, &mut [&mut a1, &mut b1]).await;
    let conv = format!("ch:{ch}");
    b2.say(&ch, "from b2").await;
    for c in [&mut a1, &mut a2, &mut b1] {
        c.event_where("channel msg", is_msg(&conv)).await;
    }
    b2.expect_no_event_where("own channel msg", is_msg(&conv)).await;
}

#[tokio::test]
async fn dm_to_self_reaches_other_devices() {
    let h = Harness::new().await;
    let a = h.user("self");
    let mut d1 = h.login(&a).await;
    let mut d2 = h.login(&a).await;
    let ok = d1.dm(&a, "note to self").await;
    let conv = format!("dm:{a}:{a}");
    assert_eq!(ok["conv"], json!(conv));
    d2.event_where("self msg", is_msg(&conv)).await;
    d1.expect_no_event_where("own msg", is_msg(&conv)).await;
    let row = d1.sync_row(&conv).await.expect("self DM in sync");
    assert_eq!(row["peer"], json!(a));
}

#[tokio::test]
async fn offline_member_catches_up_with_sync_and_history() {
    let h = Harness::new().await;
    let (a, b) = (h.user("off-a"), h.user("off-b"));
    h.register(&b).await;
    let mut ca = h.login(&a).await;
    let mut mids = Vec::new();
    for i in 0..3 {
        mids.push(ca.dm(&b, &format!("m{i}")).await["mid"].clone());
    }
    let mut cb = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    let row = cb.sync_row(&conv).await.expect("DM listed in sync");
    assert_eq!(row["last_seq"], json!(3));
    let hist = cb.history(&conv, json!({"after":0})).await;
    assert_eq!(seqs(&hist), vec![1, 2, 3]);
    let got: Vec<Value> = hist["messages"].as_array().unwrap().iter().map(|m| m["mid"].clone()).collect();
    assert_eq!(got, mids);
    // Nothing was pushed as live msg to the new session for old messages.
    cb.expect_no_event_where("replayed msg", is_msg(&conv)).await;
}

#[tokio::test]
async fn dm_to_a_never_signed_in_user_reaches_them_at_first_sync() {
    let h = Harness::new().await;
    let (a, newbie) = (h.user("early"), h.user("newbie"));
    let mut ca = h.login(&a).await;
    let ok = ca.dm(&newbie, "welcome").await;
    assert_eq!(ok["dup"], json!(false));
    let mut cn = h.login(&newbie).await;
    let conv = dm_conv(&a, &newbie);
    let row = cn.sync_row(&conv).await.expect("DM in the newcomer's first sync");
    assert_eq!(
        (row["kind"].clone(), row["peer"].clone(), row["last_seq"].clone()),
        (json!("dm"), json!(a), json!(1))
    );
    let hist = cn.history(&conv, json!({"after":0})).await;
    assert_eq!(hist["messages"][0]["body"], json!({"text":"welcome"}));
    assert_eq!(hist["messages"][0]["from"], json!(a));
}

#[tokio::test]
async fn a_history_page_far_larger_than_a_frame_is_served_whole() {
    let h = Harness::new().await;
    let (a, b) = (h.user("big-a"), h.user("big-b"));
    let mut ca = h.login(&a).await;
    let conv = dm_conv(&a, &b);
    // Near max_body_bytes each: the page is several hundred KiB (a reply
    // is not limited by max_frame_bytes, which limits what clients send).
    let max_body = ca.hello_ok["limits"]["max_body_bytes"].as_u64().unwrap() as usize;
    let long = "x".repeat(max_body - 64);
    for _ in 0..12 {
        ca.dm(&b, &long).await;
    }
    let page = ca.history(&conv, json!({"after": 0})).await;
    assert_eq!(seqs(&page), (1..=12).collect::<Vec<u64>>());
    assert!(page["messages"].as_array().unwrap().iter().all(|m| m["body"]["text"] == long.as_str()));
    assert!(ca.is_alive().await, "the session survives the big reply");
}

#[tokio::test]
async fn history_pages_after_before_and_latest() {
    let h = Harness::new().await;
    let (a, b) = (h.user("page-a"), h.user("page-b"));
    let mut ca = h.login(&a).await;
    for i in 1..=5 {
        ca.dm(&b, &format!("{i}")).await;
    }
    let conv = dm_conv(&a, &b);
    let raw = ca.history(&conv, json!({})).await;
    for m in raw["messages"].as_array().unwrap() {
        assert!(m.get("ev").is_none(), "history messages carry no \"ev\": {m}");
        for k in ["conv", "seq", "mid", "cid", "from", "to", "kind", "body", "ts"] {
            assert!(m.get(k).is_some(), "history message has {k}: {m}");
        }
    }
    let page = |v: Value| -> (Vec<u64>, bool) {
        let ok: HistoryOk = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        (ok.messages.iter().map(|m| m.seq).collect(), ok.more)
    };
    assert_eq!(page(ca.history(&conv, json!({"after":0,"limit":2})).await), (vec![1, 2], true));
    assert_eq!(page(ca.history(&conv, json!({"after":2,"limit":2})).await), (vec![3, 4], true));
    assert_eq!(page(ca.history(&conv, json!({"after":4,"limit":2})).await), (vec![5], false));
    assert_eq!(page(ca.history(&conv, json!({"after":3,"limit":2})).await), (vec![4, 5], false));
    assert_eq!(page(ca.history(&conv, json!({"after":5})).await), (vec![], false));
    assert_eq!(page(ca.history(&conv, json!({"before":6,"limit":2})).await), (vec![4, 5], true));
    assert_eq!(page(ca.history(&conv, json!({"before":4,"limit":2})).await), (vec![2, 3], true));
    assert_eq!(page(ca.history(&conv, json!({"before":3,"limit":2})).await), (vec![1, 2], false));
    assert_eq!(page(ca.history(&conv, json!({"before":1})).await), (vec![], false));
    assert_eq!(page(ca.history(&conv, json!({"limit":2})).await), (vec![4, 5], true));
    assert_eq!(page(ca.history(&conv, json!({"limit":5})).await), (vec![1, 2, 3, 4, 5], false));
    assert_eq!(page(ca.history(&conv, json!({})).await), (vec![1, 2, 3, 4, 5], false));
    // `after` wins when both are given.
    assert_eq!(page(ca.history(&conv, json!({"after":1,"before":3,"limit":2})).await), (vec![2, 3], true));
}

#[tokio::test]
async fn history_limit_is_clamped_to_history_page() {
    let Some(h) =
        Harness::with_config("history_limit_is_clamped_to_history_page", |c| c.limits.history_page = 3).await
    else {
        return;
    };
    let (a, b) = (h.user("clamp-a"), h.user("clamp-b"));
    let mut ca = h.login(&a).await;
    assert_eq!(ca.hello_ok["limits"]["history_page"], json!(3));
    for i in 0..5 {
        ca.dm(&b, &format!("{i}")).await;
    }
    let conv = dm_conv(&a, &b);
    let r = ca.history(&conv, json!({"after":0,"limit":100})).await;
    assert_eq!((seqs(&r), r["more"].clone()), (vec![1, 2, 3], json!(true)));
    let r = ca.history(&conv, json!({})).await;
    assert_eq!((seqs(&r), r["more"].clone()), (vec![3, 4, 5], json!(true)), "default limit is history_page");
}

#[tokio::test]
async fn history_of_an_empty_dm_is_empty_and_not_synced() {
    let h = Harness::new().await;
    let (a, b) = (h.user("empty-a"), h.user("empty-b"));
    let mut ca = h.login(&a).await;
    let conv = dm_conv(&a, &b);
    let r = ca.history(&conv, json!({})).await;
    assert_eq!((seqs(&r), r["more"].clone()), (vec![], json!(false)));
    ca.ok(json!({"op":"typing","conv":conv})).await;
    ca.ok(json!({"op":"ack","conv":conv,"seq":0})).await;
    ca.ok(json!({"op":"read","conv":conv,"seq":0})).await;
    assert!(ca.sync_row(&conv).await.is_none(), "an empty DM is not listed in sync");
    ca.dm(&b, "now").await;
    assert!(ca.sync_row(&conv).await.is_some(), "a DM with a message is listed");
}

#[tokio::test]
async fn outsiders_cannot_read_a_dm() {
    let h = Harness::new().await;
    let (a, b, eve) = (h.user("priv-a"), h.user("priv-b"), h.user("eve"));
    let mut ca = h.login(&a).await;
    ca.dm(&b, "secret").await;
    let mut ce = h.login(&eve).await;
    let conv = dm_conv(&a, &b);
    for extra in [json!({}), json!({"after":0}), json!({"before":10})] {
        let mut req = json!({"op":"history","conv":conv});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        ce.expect_err(req, ErrorCode::Forbidden).await;
    }
    let s = ce.sync().await;
    assert!(!s.to_string().contains("secret"), "{s}");
    assert!(s["conversations"].as_array().unwrap().iter().all(|c| c["conv"] != conv));
    ce.expect_no_event_where("foreign msg", |e| e["ev"] == "msg").await;
}

#[tokio::test]
async fn from_is_set_by_the_server() {
    let h = Harness::new().await;
    let (a, b, victim) = (h.user("imp-a"), h.user("imp-b"), h.user("imp-victim"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    ca.ok(json!({"op":"send","to":{"user":b},"cid":unique("imp"),"kind":"text","body":{"text":"x"},
                 "from":victim,"user":victim}))
        .await;
    let conv = dm_conv(&a, &b);
    let ev = cb.event_where("msg", is_msg(&conv)).await;
    assert_eq!(ev["from"], json!(a), "{ev}");
    let hist = cb.history(&conv, json!({})).await;
    assert_eq!(hist["messages"][0]["from"], json!(a));
    assert!(cb.sync_row(&dm_conv(&b, &victim)).await.is_none());
}

#[tokio::test]
async fn sync_lists_dms_and_channels_with_cursors() {
    let h = Harness::new().await;
    let (a, b) = (h.user("sync-a"), h.user("sync-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = shared_channel(&h, &mut [&mut ca, &mut cb]).await;
    for _ in 0..3 {
        ca.dm(&b, "x").await;
    }
    cb.say(&ch, "y").await;
    let conv = dm_conv(&a, &b);
    cb.ok(json!({"op":"ack","conv":conv,"seq":3})).await;
    cb.ok(json!({"op":"read","conv":conv,"seq":2})).await;
    ca.ok(json!({"op":"read","conv":conv,"seq":1})).await;

    let s = ca.sync().await;
    let parsed: SyncOk = serde_json::from_value(s.clone()).unwrap_or_else(|e| panic!("{e}: {s}"));
    let by_conv: BTreeMap<String, _> = parsed.conversations.iter().map(|c| (c.conv.to_string(), c)).collect();
    let dm = by_conv.get(&conv).unwrap_or_else(|| panic!("dm in sync: {s}"));
    assert_eq!(dm.kind, "dm");
    assert_eq!(dm.peer.as_deref(), Some(b.as_str()));
    assert_eq!(dm.last_seq, 3);
    assert!(dm.last_ts > 0);
    assert_eq!(dm.read_seq, 1);
    assert_eq!(dm.peer_read_seq, Some(2));
    assert_eq!(dm.peer_recv_seq, Some(3));
    let chrow = by_conv.get(&format!("ch:{ch}")).unwrap_or_else(|| panic!("channel in sync: {s}"));
    assert_eq!(chrow.kind, "channel");
    assert_eq!(chrow.channel.as_deref(), Some(ch.as_str()));
    assert_eq!(chrow.last_seq, 1);
    assert_eq!(chrow.read_seq, 0);
    // The raw rows carry the fields (not just defaults).
    let raw = s["conversations"].as_array().unwrap().iter().find(|c| c["conv"] == conv).unwrap().clone();
    for k in ["peer", "last_seq", "last_ts", "read_seq", "peer_read_seq", "peer_recv_seq"] {
        assert!(raw.get(k).is_some(), "dm row has {k}: {raw}");
    }
    assert!(s["invites"].is_array());
}

#[tokio::test]
async fn receipts_are_forward_only_clamped_and_sent_to_the_dm_peer() {
    let h = Harness::new().await;
    let (a, b) = (h.user("rc-a"), h.user("rc-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    for _ in 0..3 {
        ca.dm(&b, "r").await;
    }
    let is_receipt = |e: &Value| e["ev"] == "receipt";
    cb.ok(json!({"op":"ack","conv":conv,"seq":2})).await;
    let ev = ca.event_where("receipt after ack 2", is_receipt).await;
    assert_eq!(ev, json!({"ev":"receipt","conv":conv,"user":b,"recv_seq":2,"read_seq":0}));

    // Backwards is a no-op (still ok).
    cb.ok(json!({"op":"ack","conv":conv,"seq":1})).await;
    cb.ok(json!({"op":"read","conv":conv,"seq":1})).await;
    let ev = ca.event_where("receipt after read 1", |e| e["ev"] == "receipt" && e["read_seq"] == 1).await;
    assert_eq!(ev["recv_seq"], json!(2), "ack 1 did not move recv back: {ev}");

    // Above last_seq is clamped; read raises recv.
    cb.ok(json!({"op":"read","conv":conv,"seq":999})).await;
    let ev = ca.event_where("receipt after read 999", |e| e["ev"] == "receipt" && e["read_seq"] == 3).await;
    assert_eq!(ev, json!({"ev":"receipt","conv":conv,"user":b,"recv_seq":3,"read_seq":3}));

    // Moving either cursor back afterwards changes nothing.
    cb.ok(json!({"op":"read","conv":conv,"seq":1})).await;
    cb.ok(json!({"op":"ack","conv":conv,"seq":1})).await;
    let row = ca.sync_row(&conv).await.unwrap();
    assert_eq!((row["peer_recv_seq"].clone(), row["peer_read_seq"].clone()), (json!(3), json!(3)), "{row}");
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!(row["read_seq"], json!(3), "{row}");

    // The clamp really held the cursor at 3: a 4th message leaves it unread.
    ca.dm(&b, "new").await;
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["last_seq"].clone(), row["read_seq"].clone()), (json!(4), json!(3)), "{row}");
    // And the reader itself gets no receipt about itself.
    cb.expect_no_event_where("own receipt", |e| e["ev"] == "receipt" && e["user"] == b).await;
}

#[tokio::test]
async fn read_reaches_the_readers_other_sessions() {
    let h = Harness::new().await;
    let (a, b) = (h.user("rd-a"), h.user("rd-b"));
    let mut ca = h.login(&a).await;
    let mut b1 = h.login(&b).await;
    let mut b2 = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    ca.dm(&b, "1").await;
    ca.dm(&b, "2").await;
    b1.ok(json!({"op":"read","conv":conv,"seq":2})).await;
    let ev = b2.event_where("read", |e| e["ev"] == "read").await;
    assert_eq!(ev, json!({"ev":"read","conv":conv,"seq":2}));
    b1.expect_no_event_where("read on the reading session", |e| e["ev"] == "read").await;
}

#[tokio::test]
async fn channels_do_not_fan_out_receipts() {
    let h = Harness::new().await;
    let (a, b) = (h.user("chr-a"), h.user("chr-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = shared_channel(&h, &mut [&mut ca, &mut cb]).await;
    ca.say(&ch, "x").await;
    let conv = format!("ch:{ch}");
    cb.ok(json!({"op":"ack","conv":conv,"seq":1})).await;
    cb.ok(json!({"op":"read","conv":conv,"seq":1})).await;
    ca.expect_no_event_where("channel receipt", |e| e["ev"] == "receipt").await;
    assert_eq!(cb.sync_row(&conv).await.unwrap()["read_seq"], json!(1));
}

#[tokio::test]
async fn typing_is_forwarded_to_others_and_throttled() {
    let h = Harness::new().await;
    let (a, b) = (h.user("ty-a"), h.user("ty-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    let is_typing = |e: &Value| e["ev"] == "typing";
    ca.ok(json!({"op":"typing","conv":conv})).await;
    let ev = cb.event_where("typing", is_typing).await;
    assert_eq!(ev, json!({"ev":"typing","conv":conv,"user":a}));
    ca.expect_no_event_where("own typing", is_typing).await;
    // Right away again: ok, but not forwarded (one per conv per 2 s per session).
    ca.ok(json!({"op":"typing","conv":conv})).await;
    ca.ok(json!({"op":"typing","conv":conv})).await;
    cb.expect_no_event_where("throttled typing", is_typing).await;
    // The allowance is per session: a's other device is forwarded.
    let mut a2 = h.login(&a).await;
    a2.ok(json!({"op":"typing","conv":conv})).await;
    let ev = cb.event_where("typing from a's second session", is_typing).await;
    assert_eq!(ev["user"], json!(a));
    // Another conversation has its own allowance.
    let ch = shared_channel(&h, &mut [&mut ca, &mut cb]).await;
    ca.ok(json!({"op":"typing","conv":format!("ch:{ch}")})).await;
    let ev = cb.event_where("channel typing", is_typing).await;
    assert_eq!(ev, json!({"ev":"typing","conv":format!("ch:{ch}"),"user":a}));
}

#[tokio::test]
async fn typing_is_forwarded_again_after_the_interval() {
    let h = Harness::new().await;
    let (a, b) = (h.user("ty2-a"), h.user("ty2-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    ca.ok(json!({"op":"typing","conv":conv})).await;
    cb.event("typing").await;
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    ca.ok(json!({"op":"typing","conv":conv})).await;
    cb.event("typing").await;
}

#[tokio::test]
async fn signal_to_a_user_is_delivered_not_stored() {
    let h = Harness::new().await;
    let (a, b) = (h.user("sig-a"), h.user("sig-b"));
    let mut ca = h.login(&a).await;
    let mut b1 = h.login(&b).await;
    let mut b2 = h.login(&b).await;
    let body = json!({"kind":"reaction","emoji":"🎉"});
    ca.ok(json!({"op":"signal","to":{"user":b},"body":body})).await;
    for c in [&mut b1, &mut b2] {
        let ev = c.event("signal").await;
        assert_eq!((&ev["from"], &ev["to"], &ev["body"]), (&json!(a), &json!({"user":b}), &body), "{ev}");
        assert!(ev["ts"].as_i64().is_some_and(|t| t > 0), "{ev}");
        assert!(ev.get("seq").is_none(), "signals have no seq: {ev}");
    }
    ca.expect_no_event_where("own signal", |e| e["ev"] == "signal").await;
    let r = b1.history(&dm_conv(&a, &b), json!({})).await;
    assert_eq!(seqs(&r), Vec::<u64>::new(), "signals are not stored");
}

#[tokio::test]
async fn signal_to_a_channel_reaches_members_except_the_sender() {
    let h = Harness::new().await;
    let (a, b) = (h.user("sgc-a"), h.user("sgc-b"));
    let mut a1 = h.login(&a).await;
    let mut a2 = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = shared_channel(&h, &mut [&mut a1, &mut cb]).await;
    a1.ok(json!({"op":"signal","to":{"channel":ch},"body":{"x":1}})).await;
    for c in [&mut a2, &mut cb] {
        let ev = c.event("signal").await;
        assert_eq!(
            (&ev["from"], &ev["to"], &ev["body"]),
            (&json!(a), &json!({"channel":ch}), &json!({"x":1}))
        );
    }
    a1.expect_no_event_where("own signal", |e| e["ev"] == "signal").await;
}

#[tokio::test]
async fn outsiders_cannot_type_ack_read_or_signal_into_foreign_conversations() {
    let h = Harness::new().await;
    let (a, b, eve) = (h.user("fo-a"), h.user("fo-b"), h.user("fo-eve"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let mut ce = h.login(&eve).await;
    ca.dm(&b, "x").await;
    cb.event("msg").await;
    let ch = h.channel("fo-priv");
    ca.ok(json!({"op":"create_channel","channel":ch,"private":true})).await;
    let conv = dm_conv(&a, &b);
    for req in [
        json!({"op":"typing","conv":conv}),
        json!({"op":"ack","conv":conv,"seq":1}),
        json!({"op":"read","conv":conv,"seq":1}),
        json!({"op":"typing","conv":format!("ch:{ch}")}),
        json!({"op":"signal","to":{"channel":ch},"body":{"boo":1}}),
    ] {
        ce.expect_err(req, ErrorCode::Forbidden).await;
    }
    for c in [&mut ca, &mut cb] {
        c.expect_no_event_where("event caused by an outsider", |e| e.to_string().contains(&eve)).await;
    }
    let row = ca.sync_row(&conv).await.unwrap();
    assert_eq!(row["peer_recv_seq"], json!(0), "{row}");
}
