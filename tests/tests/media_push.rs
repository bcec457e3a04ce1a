//! §9 media upload/download and §10 server-side push.

use courier_conformance::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn upload_returns_201_with_sha256() {
    let h = Harness::new().await;
    let tok = h.token(&h.user("up"));
    let data = bytes(5000);
    let r = h.upload(&tok, "image/png", &data).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let media = v["media"].as_str().unwrap_or_else(|| panic!("media id: {v}"));
    assert!(media.starts_with("m_"), "{v}");
    assert_eq!(v["mime"], json!("image/png"));
    assert_eq!(v["size"], json!(5000));
    assert_eq!(v["sha256"], json!(hex::encode(Sha256::digest(&data))));
}

#[tokio::test]
async fn download_with_the_header_never_a_url_token() {
    let h = Harness::new().await;
    let (a, b) = (h.user("dl-a"), h.user("dl-b"));
    // Larger than a storage chunk: the download is streamed in pieces.
    let data = bytes(700_000);
    let r = h.upload(&h.token(&a), "application/pdf", &data).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let media = r.json()["media"].as_str().unwrap().to_owned();
    // Any signed-in user with the id may fetch it (it travels in messages).
    let auth = format!("Bearer {}", h.token(&b));
    let r = h.http("GET", &format!("/v1/media/{media}"), &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert!(r.body == data, "downloaded bytes differ");
    // v1.2: a token in the URL is refused, even a valid one, even beside the header.
    let path = format!("/v1/media/{media}?token={}", h.token(&a));
    let r = h.http("GET", &path, &[], b"").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.body != data);
    let r = h.http("GET", &path, &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 401, "a URL token is refused even with the header: {}", r.text());
}

/// v1.2 (§9): every media response forbids sniffing and scripts; only
/// raster images are served inline, anything else as an attachment.
#[tokio::test]
async fn media_is_served_inert() {
    let h = Harness::new().await;
    let u = h.user("inert");
    let tok = h.token(&u);
    let auth = format!("Bearer {tok}");
    let get = |media: String| {
        let auth = auth.clone();
        let h = &h;
        async move { h.http("GET", &format!("/v1/media/{media}"), &[("Authorization", &auth)], b"").await }
    };
    let inert = |r: &HttpResponse, what: &str| {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{what}: {:?}", r.headers);
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'none'; sandbox"),
            "{what}: {:?}",
            r.headers
        );
    };
    let dangerous: [(&str, &[u8]); 5] = [
        ("text/html", b"<script>alert(document.cookie)</script>"),
        ("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
        ("application/xhtml+xml", b"<html xmlns='http://www.w3.org/1999/xhtml'><script>1</script></html>"),
        ("text/plain", b"hello"),
        ("application/octet-stream", b"\x7fELF"),
    ];
    for (mime, body) in dangerous {
        let up = h.upload(&tok, mime, body).await;
        assert_eq!(up.status, 201, "{}", up.text());
        inert(&up, "upload response");
        let r = get(up.json()["media"].as_str().unwrap().to_owned()).await;
        assert_eq!(r.status, 200, "{mime}: {}", r.text());
        inert(&r, mime);
        let cd = r.header("content-disposition").unwrap_or_default();
        assert!(cd.starts_with("attachment"), "{mime} must be an attachment, got {cd:?}");
    }
    for mime in ["image/png", "image/jpeg", "image/gif", "image/webp"] {
        let up = h.upload(&tok, mime, b"\x89PNG\r\n\x1a\n").await;
        let r = get(up.json()["media"].as_str().unwrap().to_owned()).await;
        assert_eq!(r.status, 200, "{mime}: {}", r.text());
        inert(&r, mime);
        let cd = r.header("content-disposition").unwrap_or("inline");
        assert!(!cd.starts_with("attachment"), "{mime} is shown inline, got {cd:?}");
    }
    // Errors too, also those answered before the media handlers run.
    inert(&get(unique("m_nosuch")).await, "404");
    inert(&h.http("GET", "/v1/media/m_x", &[], b"").await, "401");
    let r = h.http("PUT", "/v1/media/m_x", &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 405, "{}", r.text());
    inert(&r, "405");
    let r = h
        .http("GET", "/v1/media/m_x", &[("Authorization", &auth), ("Origin", "https://evil.example")], b"")
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    inert(&r, "403 for a foreign origin");
}

#[tokio::test]
async fn media_needs_a_valid_token() {
    let h = Harness::new().await;
    let r = h.upload(&h.token(&h.user("nt")), "text/plain", b"hello").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let media = r.json()["media"].as_str().unwrap().to_owned();
    let path = format!("/v1/media/{media}");
    assert_eq!(h.http("GET", &path, &[], b"").await.status, 401);
    assert_eq!(h.http("GET", &path, &[("Authorization", "Bearer not-a-token")], b"").await.status, 401);
    assert_eq!(h.http("GET", &format!("{path}?token=garbage"), &[], b"").await.status, 401);
    let r = h.http("POST", "/v1/media", &[("Content-Type", "text/plain")], b"no token").await;
    assert_eq!(r.status, 401, "upload without a token");
    let r = h.upload("dev-nope:garbage", "text/plain", b"bad token").await;
    assert_eq!(r.status, 401, "upload with a bad token");
    // A token in the URL is refused on upload too, even beside a valid header (§9).
    let tok = h.token(&h.user("nt-url"));
    let auth = format!("Bearer {tok}");
    let r = h
        .http(
            "POST",
            &format!("/v1/media?token={tok}"),
            &[("Authorization", &auth), ("Content-Type", "text/plain")],
            b"x",
        )
        .await;
    assert_eq!(r.status, 401, "upload with a URL token: {}", r.text());
}

#[tokio::test]
async fn unknown_media_is_404() {
    let h = Harness::new().await;
    let auth = format!("Bearer {}", h.token(&h.user("nf")));
    let r =
        h.http("GET", &format!("/v1/media/{}", unique("m_nosuch")), &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test]
async fn oversized_upload_is_413() {
    let Some(h) = Harness::with_config("oversized_upload_is_413", |c| c.max_media_bytes = 1024).await else {
        return;
    };
    let tok = h.token(&h.user("big"));
    assert_eq!(h.upload(&tok, "application/octet-stream", &bytes(1024)).await.status, 201);
    let r = h.upload(&tok, "application/octet-stream", &bytes(4096)).await;
    assert_eq!(r.status, 413, "{}", r.text());
}

fn push_body(from: &str, to: Value, cid: &str, text: &str) -> Value {
    json!({"from":from,"to":to,"cid":cid,"kind":"text","body":{"text":text}})
}

macro_rules! admin_or_skip {
    ($h:expr, $name:expr) => {
        match $h.admin_secret.clone() {
            Some(s) => s,
            None => return skip($name, "admin secret unknown"),
        }
    };
}

#[tokio::test]
async fn push_requires_the_admin_secret() {
    let h = Harness::new().await;
    let body = push_body(&h.user("sys"), json!({"user": h.user("x")}), &unique("p"), "hi");
    let r = h.push(None, &body).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = h.push(Some("wrong-secret"), &body).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // A user token is not the admin secret.
    let r = h.push(Some(&h.token(&h.user("u"))), &body).await;
    assert_eq!(r.status, 401, "{}", r.text());
}

#[tokio::test]
async fn push_stores_delivers_and_is_idempotent() {
    let h = Harness::new().await;
    let admin = admin_or_skip!(h, "push_stores_delivers_and_is_idempotent");
    let (sys, bob) = (h.user("system"), h.user("pbob"));
    let mut cb = h.login(&bob).await;
    let cid = unique("notice");
    let body = push_body(&sys, json!({"user":bob}), &cid, "your order shipped");
    let r = h.push(Some(&admin), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ok = r.json();
    let conv = dm_conv(&sys, &bob);
    assert_eq!(ok["conv"], json!(conv));
    assert_eq!(ok["seq"], json!(1));
    assert_eq!(ok["dup"], json!(false));
    assert!(ok["mid"].is_string() && ok["ts"].is_i64(), "{ok}");
    let ev = cb.event_where("pushed msg", |e| e["ev"] == "msg" && e["conv"] == conv).await;
    assert_eq!(
        (&ev["from"], &ev["cid"], &ev["body"]),
        (&json!(sys), &json!(cid), &json!({"text":"your order shipped"}))
    );

    let again = h.push(Some(&admin), &body).await;
    assert_eq!(again.status, 200, "{}", again.text());
    let again = again.json();
    assert_eq!(again["dup"], json!(true), "{again}");
    for k in ["conv", "seq", "mid", "ts"] {
        assert_eq!(again[k], ok[k], "{k}");
    }
    cb.expect_no_event_where("second delivery", |e| e["ev"] == "msg").await;

    // Idempotency is on (from, cid): the same cid from a signed-in `sys` is a dup too.
    let mut cs = h.login(&sys).await;
    let r = cs.ok(json!({"op":"send","to":{"user":bob},"cid":cid,"kind":"text","body":{"text":"your order shipped"}})).await;
    assert_eq!((r["dup"].clone(), r["mid"].clone()), (json!(true), ok["mid"].clone()), "{r}");
}

#[tokio::test]
async fn push_reaches_offline_users_and_channels_without_membership() {
    let h = Harness::new().await;
    let admin = admin_or_skip!(h, "push_reaches_offline_users_and_channels_without_membership");
    let (sys, carol) = (h.user("backend"), h.user("pcarol"));
    let r = h
        .push(Some(&admin), &push_body(&sys, json!({"user":carol}), &unique("p"), "while you were away"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let mut owner = h.login(&h.user("pown")).await;
    let ch = h.channel("announce");
    owner.ok(json!({"op":"create_channel","channel":ch,"private":true})).await;
    let r = h.push(Some(&admin), &push_body(&sys, json!({"channel":ch}), &unique("p"), "maintenance")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["conv"], json!(format!("ch:{ch}")));
    let ev = owner.event_where("channel push", |e| e["ev"] == "msg" && e["conv"] == format!("ch:{ch}")).await;
    assert_eq!(ev["from"], json!(sys));

    let mut cc = h.login(&carol).await;
    let conv = dm_conv(&sys, &carol);
    let row = cc.sync_row(&conv).await.expect("pushed DM in sync");
    assert_eq!(row["last_seq"], json!(1));
    let hist = cc.history(&conv, json!({"after":0})).await;
    assert_eq!(hist["messages"][0]["body"], json!({"text":"while you were away"}));
}

#[tokio::test]
async fn push_rejects_bad_and_oversized_requests_with_err_body() {
    let h = Harness::new().await;
    let admin = admin_or_skip!(h, "push_rejects_bad_and_oversized_requests_with_err_body");
    let sys = h.user("sysbad");
    let bob = h.user("bbad");
    let bad = [
        json!({"to":{"user":bob},"cid":unique("p"),"kind":"text","body":{"text":"no from"}}),
        push_body("bad user", json!({"user":bob}), &unique("p"), "bad from"),
        push_body(&sys, json!({"user":"bad user"}), &unique("p"), "bad to"),
        push_body(&sys, json!({"user":bob}), "", "empty cid"),
        json!({"from":sys,"to":{"user":bob},"cid":unique("p"),"kind":"text","body":{"text":""}}),
        json!({"from":sys,"to":{"user":bob},"cid":unique("p"),"kind":"poem","body":{}}),
    ];
    for b in bad {
        let r = h.push(Some(&admin), &b).await;
        assert_eq!(r.status, 400, "{b}: {}", r.text());
        assert_eq!(r.json()["err"]["code"], json!("bad_request"), "{b}: {}", r.text());
    }
    let auth = format!("Bearer {admin}");
    let r = h
        .http(
            "POST",
            "/v1/push",
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            b"{not json",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["err"]["code"], json!("bad_request"));

    let r =
        h.push(Some(&admin), &push_body(&sys, json!({"user":bob}), &unique("p"), &"z".repeat(40_000))).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["err"]["code"], json!("too_large"), "{}", r.text());
    // A reply to a message that is not there: 400, the code in the body (§10).
    let mut unknown = push_body(&sys, json!({"user":bob}), &unique("p"), "re: nothing");
    unknown["reply_to"] = json!("01NOSUCHMESSAGE0000000000");
    let r = h.push(Some(&admin), &unknown).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["err"]["code"], json!("not_found"), "{}", r.text());
}
