//! §1 transport and §3 session: HTTP endpoints, subprotocol, hello, tokens,
//! renewal and expiry, replacement, heartbeat, shutdown.

use courier_conformance::*;
use courier_proto::{ErrorCode, HelloOk};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn healthz_answers_ok_true() {
    let h = Harness::new().await;
    let r = h.http("GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"ok": true}));
}

#[tokio::test]
async fn metrics_is_prometheus_text() {
    let h = Harness::new().await;
    // Some traffic first, so counters exist.
    let u = h.user("metrics");
    let mut c = h.login(&u).await;
    c.sync().await;
    // v1.2: /metrics needs the admin secret on the main port.
    let Some(admin) = h.admin_secret.clone() else {
        return skip("metrics_is_prometheus_text", "admin secret unknown (COURIER_TEST_ADMIN_SECRET)");
    };
    let auth = format!("Bearer {admin}");
    let r = h.http("GET", "/metrics", &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "Prometheus text has content-type text/plain, got {ct:?}");
    let text = r.text();
    assert!(text.lines().any(|l| l.starts_with("# TYPE ")), "has # TYPE lines:\n{text}");
    let samples: Vec<&str> = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(!samples.is_empty(), "has samples:\n{text}");
    for l in samples {
        let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("sample line `{l}`"));
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':'),
            "metric name in `{l}`"
        );
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "numeric value in `{l}`"
        );
    }
}

#[tokio::test]
async fn websocket_without_subprotocol_is_http_400() {
    let h = Harness::new().await;
    let req = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        h.addr
    );
    let r = h.http_raw(req.as_bytes()).await;
    assert_eq!(r.status, 400, "{:?} {}", r.headers, r.text());

    let req = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: chat.v9\r\n\r\n",
        h.addr
    );
    let r = h.http_raw(req.as_bytes()).await;
    assert_eq!(r.status, 400, "other subprotocol only: {:?} {}", r.headers, r.text());
}

#[tokio::test]
async fn websocket_with_subprotocol_selects_courier_v1() {
    let h = Harness::new().await;
    // try_connect fails unless the 101 response selects courier.v1.
    h.try_connect().await.expect("upgrade with courier.v1");
}

#[tokio::test]
async fn hello_ok_has_the_contract_shape() {
    let h = Harness::new().await;
    let u = h.user("hello");
    let mut c = h.connect().await;
    let r = c.hello(&h.token(&u), "dev-1").await;
    let ok = r.expect_ok().clone();
    let hello: HelloOk = serde_json::from_value(ok.clone()).unwrap_or_else(|e| panic!("{e}: {ok}"));
    assert_eq!(hello.user, u);
    assert!(!hello.session.is_empty());
    assert!(hello.server_time > 1_600_000_000_000, "server_time in ms: {ok}");
    assert!(hello.heartbeat_ms > 0);
    let l = hello.limits;
    assert!(l.max_frame_bytes > 0 && l.max_body_bytes > 0 && l.send_per_sec > 0 && l.send_burst > 0);
    assert!(l.history_page > 0);
    // The session works.
    c.sync().await;
}

#[tokio::test]
async fn sessions_get_distinct_ids() {
    let h = Harness::new().await;
    let u = h.user("sess");
    let a = h.login(&u).await;
    let b = h.login(&u).await;
    assert_ne!(a.hello_ok["session"], b.hello_ok["session"]);
}

#[tokio::test]
async fn request_before_hello_is_unauthenticated_and_closes_4001() {
    let h = Harness::new().await;
    let mut c = h.connect().await;
    let r = c.request(json!({"op":"sync","id":5})).await;
    assert_eq!(r.re, Some(5));
    r.expect_err(ErrorCode::Unauthenticated);
    assert_eq!(c.expect_close().await, 4001);
}

#[tokio::test]
async fn non_json_before_hello_closes_4001() {
    let h = Harness::new().await;
    let mut c = h.connect().await;
    c.send_text("this is not json").await;
    let r = c.next_reply(WAIT).await.expect("an error reply before the close");
    assert_eq!(decode_reply(&r).code(), Some(ErrorCode::Unauthenticated), "{r}");
    assert_eq!(r["re"], serde_json::Value::Null, "{r}");
    assert_eq!(c.expect_close().await, 4001);
}

#[tokio::test]
async fn binary_frame_before_hello_closes_4001() {
    let h = Harness::new().await;
    let mut c = h.connect().await;
    c.send_binary(br#"{"op":"hello"}"#.to_vec()).await;
    assert_eq!(c.expect_close().await, 4001);
}

#[tokio::test]
async fn hello_timeout_closes_4001() {
    let Some(h) = Harness::with_config("hello_timeout_closes_4001", |c| c.hello_timeout_ms = 500).await
    else {
        return;
    };
    let mut c = h.connect().await;
    assert_eq!(c.expect_close().await, 4001);
}

async fn assert_rejected(h: &Harness, token: &str, close: u16) {
    let mut c = h.connect().await;
    let r = c.hello(token, "dev-1").await;
    r.expect_err(ErrorCode::Unauthenticated);
    assert_eq!(c.expect_close().await, close, "close code for token {token}");
}

#[tokio::test]
async fn garbage_token_closes_4001() {
    let h = Harness::new().await;
    assert_rejected(&h, "not-a-token", 4001).await;
    assert_rejected(&h, "eyJhbGciOiJIUzI1NiJ9.e30.AAAA", 4001).await;
}

#[tokio::test]
async fn jwt_with_wrong_secret_closes_4001() {
    let h = Harness::new().await;
    if h.auth_secret.is_none() {
        return skip("jwt_with_wrong_secret_closes_4001", "auth secret unknown");
    }
    let u = h.user("forger");
    assert_rejected(&h, &mint_jwt("not-the-server-secret", &u, now_s() + 3600), 4001).await;
}

#[tokio::test]
async fn jwt_with_tampered_claims_closes_4001() {
    let h = Harness::new().await;
    let Some(tok) = h.jwt(&h.user("honest"), now_s() + 3600) else {
        return skip("jwt_with_tampered_claims_closes_4001", "auth secret unknown");
    };
    // Swap the payload for another user's, keeping the signature.
    let parts: Vec<&str> = tok.split('.').collect();
    let other = b64url(json!({"sub": h.user("victim"), "exp": now_s() + 3600}).to_string().as_bytes());
    let forged = format!("{}.{}.{}", parts[0], other, parts[2]);
    assert_rejected(&h, &forged, 4001).await;
}

#[tokio::test]
async fn jwt_alg_none_closes_4001() {
    let h = Harness::new().await;
    let u = h.user("nonealg");
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64url(json!({"sub": u, "exp": now_s() + 3600}).to_string().as_bytes());
    assert_rejected(&h, &format!("{header}.{claims}."), 4001).await;
}

#[tokio::test]
async fn expired_jwt_is_unauthenticated_and_closes_4002() {
    let h = Harness::new().await;
    let Some(tok) = h.jwt(&h.user("late"), now_s() - 600) else {
        return skip("expired_jwt_is_unauthenticated_and_closes_4002", "auth secret unknown");
    };
    assert_rejected(&h, &tok, 4002).await;
}

#[tokio::test]
async fn dev_tokens_rejected_without_dev_auth() {
    let Some(h) = Harness::with_config("dev_tokens_rejected_without_dev_auth", |c| c.dev_auth = false).await
    else {
        return;
    };
    assert_rejected(&h, &format!("dev:{}", h.user("dev")), 4001).await;
    // JWTs still work.
    h.login(&h.user("jwt")).await;
}

#[tokio::test]
async fn dev_tokens_accepted_in_dev_mode() {
    let Some(h) = Harness::with_config("dev_tokens_accepted_in_dev_mode", |_| {}).await else { return };
    let u = h.user("devuser");
    let mut c = h.connect().await;
    let ok = c.hello(&format!("dev:{u}"), "d").await.expect_ok().clone();
    assert_eq!(ok["user"], json!(u));
}

#[tokio::test]
async fn jwt_name_claim_is_not_required() {
    let h = Harness::new().await;
    let Some(secret) = h.auth_secret.clone() else {
        return skip("jwt_name_claim_is_not_required", "auth secret unknown");
    };
    let u = h.user("noname");
    let claims = json!({"sub": u, "exp": now_s() + 3600});
    let tok = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let mut c = h.connect().await;
    assert_eq!(c.hello(&tok, "d").await.expect_ok()["user"], json!(u));
}

#[tokio::test]
async fn renew_returns_the_new_exp() {
    let h = Harness::new().await;
    let u = h.user("renew");
    let Some(_) = h.jwt(&u, 0) else { return skip("renew_returns_the_new_exp", "auth secret unknown") };
    let mut c = h.login(&u).await;
    let exp = now_s() + 7200;
    let ok = c.ok(json!({"op":"renew","token": h.jwt(&u, exp).unwrap()})).await;
    assert_eq!(ok["exp"], json!(exp), "renew ok carries the token's exp: {ok}");
}

#[tokio::test]
async fn no_token_expiring_for_a_long_lived_token() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("longlived")).await;
    c.expect_no_event_where("token_expiring", |e| e["ev"] == "token_expiring").await;
}

#[tokio::test]
async fn renew_cannot_switch_user() {
    // Not spelled out by the contract, but a session's identity is fixed by hello.
    let h = Harness::new().await;
    let (u, other) = (h.user("renewme"), h.user("renewother"));
    let mut c = h.login(&u).await;
    let r = c.request(json!({"op":"renew","token": h.token(&other)})).await;
    assert!(r.err.is_some(), "renew with another user's token must fail: {r:?}");
}

#[tokio::test]
async fn renew_with_a_forged_token_fails() {
    let h = Harness::new().await;
    let u = h.user("renewbad");
    let mut c = h.login(&u).await;
    let e = c.err(json!({"op":"renew","token": mint_jwt("wrong-secret", &u, now_s() + 7200)})).await;
    assert_eq!(e.code, ErrorCode::Unauthenticated, "{e:?}");
}

#[tokio::test]
async fn token_expiring_then_close_4002() {
    let h = Harness::new().await;
    let u = h.user("expiring");
    let exp = now_s() + 3;
    let Some(tok) = h.jwt(&u, exp) else {
        return skip("token_expiring_then_close_4002", "auth secret unknown");
    };
    let mut c = h.connect().await;
    c.hello(&tok, "d").await.expect_ok();
    // Less than 60 s are left: the warning comes right away.
    let ev = c.event("token_expiring").await;
    assert_eq!(ev["exp"], json!(exp), "{ev}");
    assert_eq!(c.expect_close_within(Duration::from_secs(10)).await, 4002);
}

#[tokio::test]
async fn renew_prevents_the_expiry_close() {
    let h = Harness::new().await;
    let u = h.user("renewed");
    let exp = now_s() + 3;
    let Some(tok) = h.jwt(&u, exp) else {
        return skip("renew_prevents_the_expiry_close", "auth secret unknown");
    };
    let mut c = h.connect().await;
    c.hello(&tok, "d").await.expect_ok();
    c.event("token_expiring").await;
    c.ok(json!({"op":"renew","token": h.jwt(&u, now_s() + 3600).unwrap()})).await;
    // Well past the old exp the session still works.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(c.is_alive().await, "session closed despite renewal: {:?}", c.close_seen());
}

#[tokio::test]
async fn same_device_second_hello_replaces_the_first_with_4003() {
    let h = Harness::new().await;
    let u = h.user("twice");
    let mut first = h.login_device(&u, "laptop").await;
    let mut other_device = h.login_device(&u, "phone").await;
    let mut second = h.login_device(&u, "laptop").await;
    assert_eq!(first.expect_close().await, 4003);
    assert!(second.is_alive().await);
    assert!(other_device.is_alive().await, "another device is not replaced");
}

#[tokio::test]
async fn server_sends_pings_at_heartbeat() {
    let Some(h) = Harness::with_config("server_sends_pings_at_heartbeat", |c| c.heartbeat_ms = 300).await
    else {
        return;
    };
    let mut c = h.login(&h.user("pinged")).await;
    assert_eq!(c.hello_ok["heartbeat_ms"], json!(300));
    let _ = c.next_event(Duration::from_secs(2)).await;
    assert!(c.pings >= 1, "no Ping within 2 s at heartbeat_ms 300");
}

#[tokio::test]
async fn server_answers_client_pings() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("pinger")).await;
    c.ping().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.pongs == 0 && tokio::time::Instant::now() < deadline {
        let _ = c.next_event(Duration::from_millis(100)).await;
    }
    assert!(c.pongs >= 1, "no Pong for a client Ping");
}

#[tokio::test]
async fn silent_peer_is_closed_4008() {
    let Some(h) = Harness::with_config("silent_peer_is_closed_4008", |c| c.heartbeat_ms = 300).await else {
        return;
    };
    let c = h.login(&h.user("silent")).await;
    let mut s = c.into_silent();
    // 2 × 300 ms + 5 s of silence.
    assert_eq!(s.close_code_within(Duration::from_secs(20)).await, Some(4008));
}

#[tokio::test]
async fn answering_pings_keeps_the_session() {
    let Some(h) = Harness::with_config("answering_pings_keeps_the_session", |c| c.heartbeat_ms = 300).await
    else {
        return;
    };
    let mut c = h.login(&h.user("awake")).await;
    // Reading answers Pings; no requests in between.
    c.expect_no_event_within("close", Duration::from_secs(7), |_| false).await;
    assert!(c.close_seen().is_none(), "closed: {:?}", c.close_seen());
    assert!(c.is_alive().await);
}

#[tokio::test]
async fn graceful_shutdown_closes_sessions_1001() {
    let Some(mut h) = Harness::with_config("graceful_shutdown_closes_sessions_1001", |_| {}).await else {
        return;
    };
    let mut c = h.login(&h.user("bye")).await;
    let (_, code) = tokio::join!(h.shutdown_server(), c.expect_close());
    assert_eq!(code, 1001);
}
