//! Fuzzing a running server through its two untrusted entry points:
//!
//! - `POST /v1/media` with random bodies and random, often malformed,
//!   headers (auth, content type, lying or garbage `Content-Length`,
//!   chunked bodies with odd chunk sizes): every answer is 201, a 4xx, or
//!   the documented 503 — never a 500, never a hang — and every 201 stores
//!   exactly the bytes sent;
//! - the WebSocket with random text frames (strings, JSON, mutated valid
//!   requests): each gets a reply or a documented close code, an echoed id
//!   whenever the frame had one, and the server keeps serving.
//!
//! After each run the server must still be healthy and serve a fresh user.
//! Budget: `PROPTEST_CASES` (default 256 here); e.g.
//! `PROPTEST_CASES=20000 cargo test -p courier-conformance --test fuzz`.

use courier_conformance::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn runner(default: u32) -> TestRunner {
    TestRunner::new(PtConfig { cases: cases(default), failure_persistence: None, ..PtConfig::default() })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// How the request announces its body.
#[derive(Debug, Clone)]
enum Framing {
    Exact,
    Missing,
    Lying(i64),
    Garbage(String),
    Chunked(Vec<usize>),
    BadChunk(String),
}

#[derive(Debug, Clone)]
struct Upload {
    auth: u8,
    content_type: Option<String>,
    framing: Framing,
    body: Vec<u8>,
    extra_headers: Vec<(String, String)>,
}

fn upload_case() -> impl Strategy<Value = Upload> {
    let framing = prop_oneof![
        4 => Just(Framing::Exact),
        1 => Just(Framing::Missing),
        1 => (-5i64..5000).prop_map(Framing::Lying),
        1 => "[ -~]{0,12}".prop_map(Framing::Garbage),
        2 => prop::collection::vec(1usize..700, 0..8).prop_map(Framing::Chunked),
        1 => "[ -~]{0,8}".prop_map(Framing::BadChunk),
    ];
    (
        0u8..5,
        proptest::option::of(prop_oneof!["[ -~]{0,40}", ".{0,20}", Just("image/png".to_owned())]),
        framing,
        prop::collection::vec(any::<u8>(), 0..6000),
        prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..3),
    )
        .prop_map(|(auth, content_type, framing, body, extra_headers)| Upload {
            auth,
            content_type,
            framing,
            body,
            extra_headers,
        })
}

/// The raw request, and whether the server may take it as a well-formed
/// upload of exactly `body`.
fn render(h: &Harness, u: &Upload, user: &str) -> (Vec<u8>, bool) {
    let mut head = format!("POST /v1/media HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", h.addr);
    let valid_auth = u.auth == 0;
    match u.auth {
        0 => head.push_str(&format!("Authorization: Bearer {}\r\n", h.token(user))),
        1 => head.push_str("Authorization: Bearer not-a-token\r\n"),
        2 => head.push_str(&format!("Authorization: Bearer {}x\r\n", h.token(user))),
        3 => head.push_str("Authorization: \r\n"),
        _ => {}
    }
    if let Some(ct) = &u.content_type {
        // Non-ASCII header values are sent as their UTF-8 bytes.
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in &u.extra_headers {
        let k = k.to_ascii_lowercase();
        if [
            "content-length",
            "transfer-encoding",
            "host",
            "authorization",
            "connection",
            "expect",
            "upgrade",
            "te",
            "trailer",
        ]
        .contains(&k.as_str())
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut body = Vec::new();
    let mut plain = false;
    match &u.framing {
        Framing::Exact => {
            head.push_str(&format!("Content-Length: {}\r\n", u.body.len()));
            body.extend_from_slice(&u.body);
            plain = true;
        }
        Framing::Missing => body.extend_from_slice(&u.body),
        Framing::Lying(n) => {
            head.push_str(&format!("Content-Length: {}\r\n", u.body.len() as i64 + n));
            body.extend_from_slice(&u.body);
        }
        Framing::Garbage(g) => {
            head.push_str(&format!("Content-Length: {g}\r\n"));
            body.extend_from_slice(&u.body);
        }
        Framing::Chunked(sizes) => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            let mut rest = &u.body[..];
            for s in sizes {
                let k = (*s).min(rest.len());
                if k == 0 {
                    break;
                }
                body.extend_from_slice(format!("{k:x}\r\n").as_bytes());
                body.extend_from_slice(&rest[..k]);
                body.extend_from_slice(b"\r\n");
                rest = &rest[k..];
            }
            if !rest.is_empty() {
                body.extend_from_slice(format!("{:X}\r\n", rest.len()).as_bytes());
                body.extend_from_slice(rest);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            plain = true;
        }
        Framing::BadChunk(junk) => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            body.extend_from_slice(format!("{junk}\r\n").as_bytes());
            body.extend_from_slice(&u.body);
        }
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    // A header value with control characters is malformed HTTP (400).
    let clean_type = u.content_type.as_ref().is_none_or(|t| t.bytes().all(|b| (0x20..0x7f).contains(&b)));
    (raw, plain && valid_auth && clean_type)
}

/// Sends `raw` and reads the answer: `(status, body)`, or `None` when the
/// server closed without answering. A request left incomplete on purpose
/// (a lying length) gets no answer while it waits for more bytes; then the
/// client half-closes and the server must let go.
async fn exchange(addr: &str, raw: &[u8], well_formed: bool) -> Option<(u16, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("server accepts");
    // The server may answer (413) and close before reading everything.
    let _ = s.write_all(raw).await;
    let mut buf = Vec::new();
    // A well-formed request is answered, however slow the machine; a
    // malformed one gets a moment before the client half-closes.
    let patience = if well_formed { Duration::from_secs(20) } else { Duration::from_millis(300) };
    if tokio::time::timeout(patience, s.read_to_end(&mut buf)).await.is_err() {
        let _ = s.shutdown().await;
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server kept a half-closed, incomplete request open for 20 s");
    }
    let text = String::from_utf8_lossy(&buf);
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body =
        buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| buf[p + 4..].to_vec()).unwrap_or_default();
    Some((status, body))
}

async fn still_serving(h: &Harness) {
    let r = h.http("GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200, "healthz after fuzzing");
    let mut c = h.login(&h.user("after-fuzz")).await;
    assert!(c.is_alive().await);
    let up = h.upload(&h.token("after-fuzz"), "text/plain", b"still works").await;
    assert_eq!(up.status, 201);
}

#[test]
fn media_upload_answers_every_request_without_a_server_error() {
    let rt = runtime();
    let Some(h) = rt.block_on(Harness::with_config("media_fuzz", |c| c.max_media_bytes = 4096)) else {
        return;
    };
    let user = h.user("fuzzer");
    let mut runner = runner(256);
    let stats = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u64>::new());
    let result = runner.run(&upload_case(), |u| {
        let (raw, plain) = render(&h, &u, &user);
        let answer = rt.block_on(exchange(&h.addr, &raw, plain));
        let Some((status, body)) = answer else {
            *stats.borrow_mut().entry(0).or_default() += 1;
            // Closing a malformed request without an answer is allowed;
            // a well-formed one must be answered.
            prop_assert!(!plain || u.body.len() > 4096, "no answer to a well-formed upload: {u:?}");
            return Ok(());
        };
        *stats.borrow_mut().entry(status).or_default() += 1;
        prop_assert!(status != 500 && (status < 500 || status == 503), "status {status} for {u:?}");
        if plain && !u.body.is_empty() && u.body.len() <= 4096 {
            prop_assert_eq!(status, 201, "a valid upload refused: {:?}", String::from_utf8_lossy(&body));
        }
        if status == 201 {
            let v: Value = serde_json::from_slice(&body).expect("201 body is JSON");
            let id = v["media"].as_str().unwrap().to_owned();
            let got = rt.block_on(h.http(
                "GET",
                &format!("/v1/media/{id}"),
                &[("Authorization", &format!("Bearer {}", h.token(&user)))],
                b"",
            ));
            prop_assert_eq!(got.status, 200);
            prop_assert_eq!(v["sha256"].as_str().unwrap(), hex::encode(Sha256::digest(&got.body)));
            if plain {
                prop_assert_eq!(&got.body, &u.body, "stored bytes differ from the upload");
            }
        }
        Ok(())
    });
    println!(
        "FUZZ-FIGURES {}",
        json!({"target": "media_upload", "cases": cases(256), "statuses": stats.into_inner()})
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    rt.block_on(still_serving(&h));
}

fn frame_case() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        Just("hello"),
        Just("renew"),
        Just("send"),
        Just("history"),
        Just("sync"),
        Just("ack"),
        Just("read"),
        Just("typing"),
        Just("signal"),
        Just("channels"),
        Just("create_channel"),
        Just("join"),
        Just("leave"),
        Just("add_member"),
        Just("members"),
        Just("watch"),
        Just("unwatch"),
        Just("set_profile"),
        Just("profiles"),
        Just("invite"),
        Just("invite_answer"),
        Just("invite_cancel"),
        Just("teleport")
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        "[a-z]{1,8}".prop_map(|u| json!({"user": u})),
        "[a-z]{1,8}".prop_map(|c| json!({"channel": c})),
        "[a-z]{1,8}".prop_map(|c| json!(format!("ch:{c}"))),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4).prop_map(|m| json!(m)),
        ]
    });
    let field = prop_oneof![
        Just("to"),
        Just("cid"),
        Just("kind"),
        Just("body"),
        Just("conv"),
        Just("seq"),
        Just("after"),
        Just("before"),
        Just("limit"),
        Just("channel"),
        Just("user"),
        Just("users"),
        Just("iid"),
        Just("accept"),
        Just("ttl_s"),
        Just("token"),
        Just("name"),
        Just("text"),
        Just("private")
    ];
    prop_oneof![
        6 => (op, 1u64..1_000_000, prop::collection::vec((field, value), 0..6)).prop_map(|(op, id, fs)| {
            let mut o = serde_json::Map::new();
            o.insert("op".into(), json!(op));
            o.insert("id".into(), json!(id));
            for (k, v) in fs {
                o.insert(k.into(), v);
            }
            Value::Object(o).to_string()
        }),
        1 => ".{0,64}",
        1 => "\\{[ -~]{0,64}",
    ]
}

#[test]
fn websocket_frames_get_a_reply_or_a_documented_close() {
    let rt = runtime();
    let Some(h) = rt.block_on(Harness::with_config("frame_fuzz", |c| {
        c.limits.send_per_sec = 100_000;
        c.limits.send_burst = 100_000;
    })) else {
        return;
    };
    let user = h.user("fuzzer");
    let conn = std::cell::RefCell::new(Some(rt.block_on(h.login(&user))));
    let closes = std::cell::RefCell::new(std::collections::BTreeMap::<String, u64>::new());
    let replies = std::cell::Cell::new(0u64);
    let mut runner = runner(512);
    let result = runner.run(&frame_case(), |frame| {
        let mut slot = conn.borrow_mut();
        let c = slot.get_or_insert_with(|| rt.block_on(h.login(&user)));
        rt.block_on(c.send_text(frame.clone()));
        let parsed: Option<Value> = serde_json::from_str(&frame).ok();
        let id = parsed.as_ref().and_then(|v| v.get("id")).and_then(Value::as_u64);
        let readable = parsed.as_ref().is_some_and(|v| v.get("op").is_some_and(Value::is_string));
        let want = if readable { id } else { None };
        match rt.block_on(c.raw_reply(want, Duration::from_secs(10))) {
            Some(r) => {
                replies.set(replies.get() + 1);
                if let Some(code) = r.get("err").and_then(|e| e.get("code")).and_then(Value::as_str) {
                    prop_assert!(code != "internal", "internal error for {frame}: {r}");
                }
            }
            None => {
                let code = c.close_seen().flatten();
                *closes.borrow_mut().entry(format!("{code:?}")).or_default() += 1;
                // A frame may legitimately end the session: a second
                // `hello` (4003 is the other session's), a renew with junk (4001).
                prop_assert!(
                    matches!(code, Some(4001) | Some(4002) | Some(4003) | Some(1009) | Some(4029)),
                    "no reply and close {code:?} for {frame}"
                );
                *slot = None;
            }
        }
        Ok(())
    });
    println!(
        "FUZZ-FIGURES {}",
        json!({"target": "ws_frames", "cases": cases(512), "replies": replies.get(), "closes": closes.into_inner()})
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    rt.block_on(still_serving(&h));
}
