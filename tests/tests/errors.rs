//! §2 frames and error replies: malformed frames, unknown ops, invalid
//! identifiers and fields. The connection stays up after each.

use courier_conformance::*;
use courier_proto::ErrorCode;
use serde_json::{Value, json};

/// Sends a raw frame and returns the `re: null` error reply.
async fn null_reply(c: &mut Client, frame: &str) -> Value {
    c.send_text(frame).await;
    let r = c.raw_reply(None, WAIT).await.unwrap_or_else(|| panic!("no re:null reply to {frame:?}"));
    let d = decode_reply(&r);
    assert_eq!(d.code(), Some(ErrorCode::BadRequest), "{frame:?} -> {r}");
    r
}

#[tokio::test]
async fn malformed_json_is_bad_request_with_null_re() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("badjson")).await;
    for f in ["{not json", "[1,2,3]", "\"just a string\"", "42", "null", ""] {
        let r = null_reply(&mut c, f).await;
        assert_eq!(r["re"], Value::Null, "{r}");
        assert!(c.is_alive().await, "connection stays up after {f:?}");
    }
}

#[tokio::test]
async fn missing_or_invalid_id_is_bad_request_with_null_re() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("noid")).await;
    for f in [
        r#"{"op":"sync"}"#,
        r#"{"op":"sync","id":"1"}"#,
        r#"{"op":"sync","id":-1}"#,
        r#"{"op":"sync","id":1.5}"#,
        r#"{"op":"sync","id":null}"#,
        r#"{"op":"sync","id":{}}"#,
    ] {
        null_reply(&mut c, f).await;
        assert!(c.is_alive().await, "connection stays up after {f}");
    }
}

#[tokio::test]
async fn missing_op_is_bad_request() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("noop")).await;
    c.send_text(r#"{"id":77}"#).await;
    // The contract answers re:null; echoing the readable id is tolerated.
    let r = c.next_reply(WAIT).await.expect("a reply to a frame without op");
    assert!(r["re"].is_null() || r["re"] == 77, "{r}");
    assert_eq!(decode_reply(&r).code(), Some(ErrorCode::BadRequest), "{r}");
    assert!(c.is_alive().await);
}

#[tokio::test]
async fn unknown_op_is_unsupported_with_the_id() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("unk")).await;
    let r = c.request(json!({"op":"teleport","id":9,"to":"mars"})).await;
    assert_eq!(r.re, Some(9));
    r.expect_err(ErrorCode::Unsupported);
    assert!(c.is_alive().await);
}

#[tokio::test]
async fn binary_frame_is_bad_request_and_connection_stays() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("bin")).await;
    c.send_binary(br#"{"op":"sync","id":1}"#.to_vec()).await;
    let r = c.raw_reply(None, WAIT).await.expect("an error reply to a binary frame");
    assert_eq!(decode_reply(&r).code(), Some(ErrorCode::BadRequest), "{r}");
    assert!(c.is_alive().await, "connection stays up after a binary frame");
}

#[tokio::test]
async fn invalid_identifiers_are_bad_request() {
    let h = Harness::new().await;
    let me = h.user("ids");
    let mut c = h.login(&me).await;
    let long = "x".repeat(65);
    let text = json!({"text":"x"});
    let bad = vec![
        json!({"op":"send","to":{"user":"bad user"},"cid":unique("c"),"kind":"text","body":text}),
        json!({"op":"send","to":{"user":long},"cid":unique("c"),"kind":"text","body":text}),
        json!({"op":"send","to":{"user":""},"cid":unique("c"),"kind":"text","body":text}),
        json!({"op":"send","to":{"channel":"no/slash"},"cid":unique("c"),"kind":"text","body":text}),
        json!({"op":"send","to":{"planet":"mars"},"cid":unique("c"),"kind":"text","body":text}),
        json!({"op":"send","to":{"user":"bob"},"cid":"","kind":"text","body":text}),
        json!({"op":"send","to":{"user":"bob"},"cid":"has space","kind":"text","body":text}),
        json!({"op":"send","to":{"user":"bob"},"cid":"c".repeat(65),"kind":"text","body":text}),
        json!({"op":"send","to":{"user":"bob"},"cid":"naïve","kind":"text","body":text}),
        json!({"op":"history","conv":"dm:zzz:aaa"}),
        json!({"op":"history","conv":"lobby"}),
        json!({"op":"history","conv":"dm:only"}),
        json!({"op":"history","conv":"ch:"}),
        json!({"op":"join","channel":"has space"}),
        json!({"op":"join","channel":long}),
        json!({"op":"create_channel","channel":"bad name"}),
        json!({"op":"watch","users":["ok", "not ok"]}),
        json!({"op":"invite","to":"bad user"}),
        json!({"op":"add_member","channel":"lobby","user":"bad user"}),
    ];
    for req in bad {
        c.expect_err(req, ErrorCode::BadRequest).await;
    }
    assert!(c.is_alive().await);
}

#[tokio::test]
async fn invalid_message_fields_are_bad_request() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("fields")).await;
    let b = h.user("fields-peer");
    let send = |kind: &str, body: Value| json!({"op":"send","to":{"user":b},"cid":unique("f"),"kind":kind,"body":body});
    for req in [
        send("text", json!({"text":""})),
        send("text", json!({})),
        send("text", json!({"text":42})),
        send("image", json!({"mime":"image/png"})),
        send("file", json!({})),
        send("poem", json!({"text":"roses"})),
        json!({"op":"send","to":{"user":b},"cid":unique("f"),"kind":"text","body":"not an object"}),
        json!({"op":"send","to":{"user":b},"kind":"text","body":{"text":"no cid"}}),
        json!({"op":"send","cid":unique("f"),"kind":"text","body":{"text":"no target"}}),
        json!({"op":"send","to":{"call":"x"},"cid":unique("f"),"kind":"text","body":{"text":"call target"}}),
        json!({"op":"ack","conv":"ch:lobby"}),
        json!({"op":"ack","conv":"ch:lobby","seq":-1}),
        json!({"op":"invite_answer","iid":"x"}),
    ] {
        c.expect_err(req, ErrorCode::BadRequest).await;
    }
    // Nothing was stored.
    let me = c.user.clone();
    assert_eq!(seqs(&c.history(&dm_conv(&me, &b), json!({})).await), Vec::<u64>::new());
}

#[tokio::test]
async fn error_replies_carry_code_and_message() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("shape")).await;
    let id = c.send_request(json!({"op":"teleport"})).await;
    let r = c.raw_reply(Some(id), WAIT).await.unwrap();
    let err = r["err"].as_object().unwrap_or_else(|| panic!("err object: {r}"));
    assert_eq!(err["code"], json!("unsupported"));
    assert!(err["message"].is_string(), "{r}");
    assert!(r.get("ok").is_none(), "{r}");
}
