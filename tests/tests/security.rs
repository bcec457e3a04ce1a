//! Hostile clients, speaking the wire: each attack is refused with the
//! documented code **and has no effect on other users**. Every test keeps
//! two bystanders (alice and bob, with a DM and a private channel) signed
//! in through the attack and checks afterwards that their sessions were
//! not touched, that they still exchange messages, and that nothing the
//! attacker did reached them or their conversations.
//!
//! What the conformance suite already checks refusal-wise (e.g. `alg:none`,
//! wrong secret, expired → 4002, oversize → 1009, 4029, the connection cap)
//! is extended here with the bystander angle and the variants it lacks
//! (HS384/HS512 with the right secret, RS256/ES256 headers over an HMAC
//! signature, forged-and-expired, a forged token aimed at a bystander's
//! device to kick it with 4003).

use courier_conformance::*;
use courier_proto::ErrorCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Two users minding their own business, and the attacker's name.
struct Bystanders {
    a: String,
    b: String,
    alice: Client,
    bob: Client,
    team: String,
    mallory: String,
    alice_device: String,
}

async fn bystanders(h: &Harness) -> Bystanders {
    let (a, b, mallory) = (h.user("alice"), h.user("bob"), h.user("mallory"));
    let alice_device = unique("alice-dev");
    let mut alice = h.login_device(&a, &alice_device).await;
    let mut bob = h.login(&b).await;
    h.register(&mallory).await;
    let team = h.channel("team");
    alice.ok(json!({"op":"create_channel","channel":team,"private":true})).await;
    alice.ok(json!({"op":"add_member","channel":team,"user":b})).await;
    alice.dm(&b, "before").await;
    bob.event("msg").await;
    bob.clear_events();
    alice.clear_events();
    Bystanders { a, b, alice, bob, team, mallory, alice_device }
}

impl Bystanders {
    /// Drops whatever the bystanders were legitimately sent so far.
    async fn drain(&mut self) {
        for c in [&mut self.alice, &mut self.bob] {
            while c.next_event(Duration::from_millis(300)).await.is_some() {}
        }
    }

    /// The bystanders' sessions survived, they still talk in their DM and
    /// private channel, nothing from the attacker reached them, and their
    /// conversations hold only their own messages.
    async fn unaffected(&mut self, what: &str) {
        let m = &self.mallory;
        for c in [&self.alice, &self.bob] {
            assert!(
                c.close_seen().is_none(),
                "{what}: a bystander's session was closed: {:?}",
                c.close_seen()
            );
        }
        let cid = unique("still");
        self.alice.ok(json!({"op":"send","to":{"user":self.b},"cid":cid,"kind":"text","body":{"text":"still here"}})).await;
        let got = self
            .bob
            .event_where(&format!("{what}: bob still gets alice's DM"), |e| {
                e["ev"] == "msg" && e["cid"] == json!(cid)
            })
            .await;
        assert_eq!(got["from"], json!(self.a));
        let cid2 = unique("team");
        self.bob.ok(json!({"op":"send","to":{"channel":self.team},"cid":cid2,"kind":"text","body":{"text":"team"}})).await;
        self.alice
            .event_where(&format!("{what}: alice still gets the team message"), |e| {
                e["ev"] == "msg" && e["cid"] == json!(cid2)
            })
            .await;
        for c in [&mut self.alice, &mut self.bob] {
            c.expect_no_event_within(
                &format!("{what}: anything from the attacker"),
                Duration::from_millis(200),
                |e| e["from"] == json!(m) || e["user"] == json!(m) || e.to_string().contains(m.as_str()),
            )
            .await;
        }
        for conv in [dm_conv(&self.a, &self.b), format!("ch:{}", self.team)] {
            let hist = self.alice.history(&conv, json!({"after":0})).await;
            for msg in hist["messages"].as_array().unwrap() {
                assert!(
                    msg["from"] == json!(self.a) || msg["from"] == json!(self.b),
                    "{what}: a foreign message in {conv}: {msg}"
                );
            }
        }
        let members = self.alice.ok(json!({"op":"members","channel":self.team})).await;
        assert_eq!(members["count"], json!(2), "{what}: the private channel's members changed: {members}");
        self.alice.clear_events();
        self.bob.clear_events();
    }
}

// ---------- tokens ----------

fn hmac(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([&ipad[..], msg].concat());
    Sha256::digest([&opad[..], &inner[..]].concat()).to_vec()
}

/// A JWT with any header, signed HMAC-SHA256 with `secret` (or unsigned).
fn jwt(header: Value, claims: Value, secret: Option<&str>) -> String {
    let head = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    match secret {
        Some(s) => format!("{head}.{}", b64url(&hmac(s.as_bytes(), head.as_bytes()))),
        None => format!("{head}."),
    }
}

fn with_alg(secret: &str, alg: jsonwebtoken::Algorithm, sub: &str, exp: i64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &json!({"sub": sub, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_and_confused_tokens_are_refused_and_cannot_kick_a_bystander() {
    let h = Harness::new().await;
    let Some(secret) = h.auth_secret.clone() else {
        return skip("forged_tokens", "needs the server's auth secret (COURIER_TEST_AUTH_SECRET)");
    };
    let mut by = bystanders(&h).await;
    let a = by.a.clone();
    let later = now_s() + 3600;
    let cases: Vec<(&str, String, u16)> = vec![
        ("wrong secret", mint_jwt("not-the-secret-0123456789", &a, later), 4001),
        ("forged and expired", mint_jwt("not-the-secret-0123456789", &a, now_s() - 60), 4001),
        ("expired", mint_jwt(&secret, &a, now_s() - 60), 4002),
        ("alg none", jwt(json!({"alg":"none","typ":"JWT"}), json!({"sub":a,"exp":later}), None), 4001),
        ("alg None", jwt(json!({"alg":"None"}), json!({"sub":a,"exp":later}), None), 4001),
        (
            "alg none with a signature",
            jwt(json!({"alg":"none"}), json!({"sub":a,"exp":later}), Some(&secret)),
            4001,
        ),
        ("HS512 with the right secret", with_alg(&secret, jsonwebtoken::Algorithm::HS512, &a, later), 4001),
        ("HS384 with the right secret", with_alg(&secret, jsonwebtoken::Algorithm::HS384, &a, later), 4001),
        (
            "RS256 header over an HMAC of the secret",
            jwt(json!({"alg":"RS256","typ":"JWT"}), json!({"sub":a,"exp":later}), Some(&secret)),
            4001,
        ),
        (
            "ES256 header over an HMAC of the secret",
            jwt(json!({"alg":"ES256"}), json!({"sub":a,"exp":later}), Some(&secret)),
            4001,
        ),
        (
            "signature stripped",
            {
                let t = mint_jwt(&secret, &a, later);
                format!("{}.", t.rsplit_once('.').unwrap().0)
            },
            4001,
        ),
        (
            "claims swapped under a valid signature",
            {
                let t = mint_jwt(&secret, &h.user("someone"), later);
                let parts: Vec<&str> = t.split('.').collect();
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64url(json!({"sub":a,"exp":later}).to_string().as_bytes()),
                    parts[2]
                )
            },
            4001,
        ),
        ("no exp", jwt(json!({"alg":"HS256"}), json!({"sub":a}), Some(&secret)), 4001),
        (
            "exp as a string",
            jwt(json!({"alg":"HS256"}), json!({"sub":a,"exp":later.to_string()}), Some(&secret)),
            4001,
        ),
        (
            "sub not a user id",
            jwt(json!({"alg":"HS256"}), json!({"sub":format!("../{a}"),"exp":later}), Some(&secret)),
            4001,
        ),
        (
            "kid pointing elsewhere",
            jwt(json!({"alg":"HS256","kid":"../../dev/null"}), json!({"sub":a,"exp":later}), Some("")),
            4001,
        ),
        ("empty", String::new(), 4001),
    ];
    for (what, token, code) in cases {
        let mut c = h.connect().await;
        // Aimed at alice's own device: success would close her with 4003.
        let id = c.send_request(json!({"op":"hello","token":token,"device":by.alice_device})).await;
        // No reply (closed straight away) is also a refusal.
        if let Some(r) = c.raw_reply(Some(id), WAIT).await {
            let e: courier_proto::Reply = serde_json::from_value(r.clone()).unwrap();
            let err = e.err.unwrap_or_else(|| panic!("{what}: accepted: {r}"));
            let want = if token.is_empty() { ErrorCode::BadRequest } else { ErrorCode::Unauthenticated };
            assert!(err.code == want || err.code == ErrorCode::Unauthenticated, "{what}: {r}");
        }
        let got = c.closed_within(WAIT).await;
        assert_eq!(got, Some(code), "{what}: close code");
        by.unaffected(what).await;
    }
}

#[tokio::test]
async fn media_and_push_need_credentials_and_leave_no_trace() {
    let h = Harness::new().await;
    let mut by = bystanders(&h).await;
    let forged = mint_jwt("not-the-secret-0123456789", &by.a, now_s() + 3600);
    for (what, auth) in [
        ("no header", None),
        ("forged token", Some(format!("Bearer {forged}"))),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("basic auth", Some("Basic YWxpY2U6cHc=".to_owned())),
        ("dev token lower-case scheme", Some(format!("bearer dev:{}", by.a))),
    ] {
        let mut headers = vec![("Content-Type", "image/png")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let r = h.http("POST", "/v1/media", &headers, b"\x89PNG not really").await;
        assert_eq!(r.status, 401, "upload with {what}: {}", String::from_utf8_lossy(&r.body));
    }
    // A real upload, then reads without a valid token.
    let up = h.upload(&h.token(&by.a), "image/png", b"secret picture").await;
    assert_eq!(up.status, 201);
    let media = serde_json::from_slice::<Value>(&up.body).unwrap()["media"].as_str().unwrap().to_owned();
    for path in [
        format!("/v1/media/{media}"),
        format!("/v1/media/{media}?token="),
        format!("/v1/media/{media}?token={forged}"),
        format!("/v1/media/{media}?token=dev:"),
    ] {
        let r = h.http("GET", &path, &[], b"").await;
        assert_eq!(r.status, 401, "GET {path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("secret picture"));
    }
    // Push without the admin secret, in every near-miss form.
    let user_token = h.token(&by.a);
    let admin = h.admin_secret.clone().unwrap_or_default();
    let body =
        json!({"from":by.a,"to":{"user":by.b},"cid":unique("p"),"kind":"text","body":{"text":"fake notice"}});
    let mut bearers = vec![None, Some(user_token.as_str()), Some(""), Some("x")];
    let (prefix, padded) =
        (admin.get(..admin.len().saturating_sub(1)).unwrap_or("").to_owned(), format!("{admin}x"));
    if !admin.is_empty() {
        bearers.push(Some(prefix.as_str()));
        bearers.push(Some(padded.as_str()));
    }
    for b in bearers {
        let r = h.push(b, &body).await;
        assert_eq!(r.status, 401, "push with bearer {b:?}");
    }
    by.bob.expect_no_event_within("a pushed message", Duration::from_millis(300), |e| e["ev"] == "msg").await;
    by.unaffected("media/push without credentials").await;
}

// ---------- impersonation and isolation ----------

#[tokio::test]
async fn a_client_cannot_speak_as_someone_else() {
    let h = Harness::new().await;
    let mut by = bystanders(&h).await;
    let mut mal = h.login(&by.mallory).await;
    let (a, b) = (by.a.clone(), by.b.clone());
    // `from` (and `user`) in the frame are ignored: the server sets them.
    mal.ok(json!({"op":"send","from":a,"user":a,"to":{"user":b},"cid":unique("f"),"kind":"text","body":{"text":"it's alice","from":a}})).await;
    let m = by.bob.event("msg").await;
    assert_eq!(m["from"], json!(by.mallory), "{m}");
    mal.ok(json!({"op":"signal","from":a,"to":{"user":b},"body":{"x":1}})).await;
    let s = by.bob.event("signal").await;
    assert_eq!(s["from"], json!(by.mallory), "{s}");
    let inv = mal.ok(json!({"op":"invite","from":a,"to":b,"ttl_s":30})).await;
    assert_eq!(inv["invite"]["from"], json!(by.mallory));
    let ev = by.bob.event("invite").await;
    assert_eq!(ev["invite"]["from"], json!(by.mallory));
    // Renewing onto alice's (valid) token cannot switch the session to her.
    let r = mal.request(json!({"op":"renew","token":h.token(&a)})).await;
    assert!(r.err.is_some(), "renew switched users: {r:?}");
    by.drain().await;
    by.unaffected("impersonation").await;
}

#[tokio::test]
async fn private_channels_and_dms_are_closed_to_outsiders() {
    let h = Harness::new().await;
    let mut by = bystanders(&h).await;
    let mut mal = h.login(&by.mallory).await;
    let dm = dm_conv(&by.a, &by.b);
    let ch = format!("ch:{}", by.team);
    // Alice's invitation to bob is pending while mallory tries everything.
    let inv = by.alice.ok(json!({"op":"invite","to":by.b,"ttl_s":60})).await;
    let iid = inv["invite"]["iid"].as_str().unwrap().to_owned();
    by.bob.event("invite").await;
    let t = &by.team;
    let forbidden = [
        json!({"op":"history","conv":dm}),
        json!({"op":"history","conv":ch}),
        json!({"op":"history","conv":ch,"after":0,"limit":1}),
        json!({"op":"join","channel":t}),
        json!({"op":"members","channel":t}),
        json!({"op":"add_member","channel":t,"user":by.mallory}),
        json!({"op":"send","to":{"channel":t},"cid":unique("x"),"kind":"text","body":{"text":"let me in"}}),
        json!({"op":"typing","conv":dm}),
        json!({"op":"typing","conv":ch}),
        json!({"op":"ack","conv":dm,"seq":1}),
        json!({"op":"read","conv":ch,"seq":1}),
        json!({"op":"signal","to":{"channel":t},"body":{"x":1}}),
        json!({"op":"signal","to":{"call":iid},"body":{"sdp":"x"}}),
    ];
    for req in forbidden {
        mal.expect_err(req, ErrorCode::Forbidden).await;
    }
    // Someone else's invitation: not answerable, not cancellable.
    let e = mal.err(json!({"op":"invite_answer","iid":iid,"accept":true})).await;
    assert!(matches!(e.code, ErrorCode::Forbidden | ErrorCode::NotFound), "{e:?}");
    let e = mal.err(json!({"op":"invite_cancel","iid":iid})).await;
    assert!(matches!(e.code, ErrorCode::Forbidden | ErrorCode::NotFound), "{e:?}");
    // Sync shows mallory none of it.
    let s = mal.sync().await;
    let text = s.to_string();
    assert!(!text.contains(&by.team) && !text.contains(&dm) && !text.contains(&iid), "sync leaks: {s}");
    // The invitation is untouched: bob can still accept it.
    let ok = by.bob.ok(json!({"op":"invite_answer","iid":iid,"accept":true})).await;
    assert_eq!(ok["invite"]["state"], json!("accepted"), "{ok}");
    by.drain().await;
    by.unaffected("isolation").await;
}

// ---------- floods, slowloris, oversize, abuse ----------

#[tokio::test]
async fn a_connection_flood_is_refused_while_bystanders_keep_working() {
    let Some(h) = Harness::with_config("connection_flood", |c| c.max_connections = 12).await else { return };
    let mut by = bystanders(&h).await;
    // Three login() sockets of bystanders() are closed by now; two stay.
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        match tokio::time::timeout(WAIT, h.try_connect()).await {
            Ok(Ok(c)) => flood.push(c),
            _ => refused += 1,
        }
    }
    assert!(flood.len() <= 10, "{} connections accepted beyond the cap", flood.len());
    assert!(refused >= 50, "only {refused} refused");
    by.unaffected("connection flood").await;
    // Once the flood goes, new users get in.
    drop(flood);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Ok(mut c)) = tokio::time::timeout(WAIT, h.try_connect()).await {
            let id =
                c.send_request(json!({"op":"hello","token":h.token(&h.user("late")),"device":"d"})).await;
            if matches!(c.raw_reply(Some(id), WAIT).await, Some(r) if r.get("ok").is_some()) {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "slots were never freed after the flood");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn hello_less_sockets_are_closed_by_the_hello_timeout_and_others_keep_working() {
    let Some(h) = Harness::with_config("slowloris", |c| {
        c.hello_timeout_ms = 1500;
        c.max_connections = 40;
    })
    .await
    else {
        return;
    };
    let mut by = bystanders(&h).await;
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(h.connect().await);
    }
    // Meanwhile a newcomer signs in and talks.
    let newcomer = h.user("newcomer");
    let mut n = h.login(&newcomer).await;
    n.dm(&by.a, "hi alice").await;
    by.alice.event_where("the newcomer's DM", |e| e["ev"] == "msg" && e["from"] == json!(newcomer)).await;
    for mut c in idle {
        assert_eq!(
            c.closed_within(Duration::from_secs(30)).await,
            Some(4001),
            "a hello-less socket got 4001"
        );
    }
    by.drain().await;
    by.unaffected("hello-less sockets").await;
    assert!(n.is_alive().await, "a signed-in session outlives the hello timeout");
}

#[tokio::test]
async fn half_sent_http_requests_do_not_lock_out_new_users() {
    // Slowloris below WebSocket: sockets that dribble an HTTP request's
    // headers and never finish. With the cap nearly full of them, a new
    // user must still get in once the server gives up on them.
    let Some(h) = Harness::with_config("http_slowloris", |c| c.max_connections = 8).await else { return };
    let mut by = bystanders(&h).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&h.addr).await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\n").await;
            held.push(s);
        }
    }
    by.unaffected("half-sent HTTP requests").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut tick = 0u32;
    loop {
        // Keep dribbling a header byte now and then, like slowloris does.
        for s in &mut held {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(format!("X-{tick}: y\r\n").as_bytes()).await;
        }
        tick += 1;
        if let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), h.try_connect()).await {
            let id =
                c.send_request(json!({"op":"hello","token":h.token(&h.user("late")),"device":"d"})).await;
            if matches!(c.raw_reply(Some(id), WAIT).await, Some(r) if r.get("ok").is_some()) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection slots held by half-sent HTTP requests were never freed: new users are locked out"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn oversized_frames_and_uploads_hurt_only_the_sender() {
    let Some(h) = Harness::with_config("oversize", |c| c.max_media_bytes = 4096).await else { return };
    let mut by = bystanders(&h).await;
    let mut mal = h.login(&by.mallory).await;
    let max = mal.hello_ok["limits"]["max_frame_bytes"].as_u64().unwrap() as usize;
    // A frame over the limit aimed at bob: closed 1009, nothing delivered.
    let text = "A".repeat(max);
    mal.send_text(
        json!({"op":"send","id":9,"to":{"user":by.b},"cid":"big","kind":"text","body":{"text":text}})
            .to_string(),
    )
    .await;
    assert_eq!(mal.expect_close().await, 1009);
    // Declared and undeclared (chunked) oversized uploads: 413, nothing kept.
    let token = h.token(&by.mallory);
    let r = h.upload(&token, "application/octet-stream", &vec![7u8; 5000]).await;
    assert_eq!(r.status, 413);
    let auth = format!("Bearer {token}");
    let mut raw = format!("POST /v1/media HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    for _ in 0..3 {
        raw.extend_from_slice(format!("{:x}\r\n", 2048).as_bytes());
        raw.extend_from_slice(&[1u8; 2048]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(h.http_raw(&raw).await.status, 413);
    // A lying Content-Length bigger than the body: refused before reading.
    let r = h.http_raw(format!("POST /v1/media HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\nshort").as_bytes()).await;
    assert_eq!(r.status, 413);
    by.bob
        .expect_no_event_within("the oversized message", Duration::from_millis(300), |e| e["ev"] == "msg")
        .await;
    by.unaffected("oversize").await;
}

#[tokio::test]
async fn rate_limit_abuse_closes_only_the_abuser() {
    let Some(h) = Harness::with_config("rate_abuse", |c| {
        c.limits.send_per_sec = 5;
        c.limits.send_burst = 5;
    })
    .await
    else {
        return;
    };
    let mut by = bystanders(&h).await;
    let mut mal = h.login(&by.mallory).await;
    // Flood bob with DMs and typing far beyond 10× the rate.
    let mut delivered_ok = 0;
    for i in 0..2000u64 {
        let req = if i % 2 == 0 {
            json!({"op":"send","id":10_000 + i,"to":{"user":by.b},"cid":format!("flood-{i}"),"kind":"text","body":{"text":"spam"}})
        } else {
            json!({"op":"typing","id":10_000 + i,"conv":dm_conv(&by.mallory, &by.b)})
        };
        if !mal.try_send_text(req.to_string()).await {
            break;
        }
        if mal.close_seen().is_some() {
            break;
        }
    }
    assert_eq!(mal.expect_close_within(Duration::from_secs(30)).await, 4029);
    // Whatever got through was within the bucket: at most the burst plus the
    // refill over the flood's duration (small), never the flood.
    let mut c = h.login(&by.b).await;
    let hist = c.history(&dm_conv(&by.mallory, &by.b), json!({"after":0})).await;
    delivered_ok += hist["messages"].as_array().unwrap().len();
    assert!(delivered_ok < 100, "{delivered_ok} flood messages stored");
    c.close().await;
    by.drain().await;
    by.unaffected("rate-limit abuse").await;
    // The bystanders' own bucket is theirs: alice can still send a burst.
    for i in 0..5 {
        by.alice.dm(&by.b, &format!("burst {i}")).await;
    }
}
