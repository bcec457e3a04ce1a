//! §12 v1.2 ICE servers: the `ice_servers` of the `hello` ok and the `ice`
//! op, with TURN REST credentials (coturn `use-auth-secret`) that verify
//! under HMAC-SHA1 with the configured secret.

use base64::Engine as _;
use courier_conformance::*;
use courier_proto::ErrorCode;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

const TURN_SECRET: &str = "conformance-turn-secret-0123456789abcdef";
const STUN: &str = "stun:stun.example.test:3478";
const TURN_UDP: &str = "turn:turn.example.test:3478?transport=udp";
const TURNS: &str = "turns:turn.example.test:5349";

async fn with_ice(test: &str) -> Option<Harness> {
    Harness::with_config(test, |c| {
        c.ice_urls = vec![STUN.into(), TURN_UDP.into(), TURNS.into()];
        c.turn_secret = Some(TURN_SECRET.into());
    })
    .await
}

/// base64(HMAC-SHA1(secret, username)), computed here independently.
fn expected_credential(username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(TURN_SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a configured `ice_servers` list for `user` and returns the TURN
/// username.
fn check_servers(list: &Value, user: &str) -> String {
    let list = list.as_array().unwrap_or_else(|| panic!("ice_servers is an array: {list}"));
    assert_eq!(list.len(), 2, "one STUN and one TURN entry: {list:?}");
    let stun = &list[0];
    assert_eq!(stun["urls"], json!([STUN]), "{stun}");
    assert!(
        stun.get("username").is_none() && stun.get("credential").is_none(),
        "STUN has no credentials: {stun}"
    );
    let turn = &list[1];
    assert_eq!(turn["urls"], json!([TURN_UDP, TURNS]), "{turn}");
    let username = turn["username"].as_str().unwrap_or_else(|| panic!("TURN username: {turn}"));
    let (expiry, name) = username.split_once(':').unwrap_or_else(|| panic!("<expiry>:<user>: {username}"));
    assert_eq!(name, user);
    let expiry: i64 = expiry.parse().unwrap_or_else(|_| panic!("decimal expiry: {username}"));
    assert!(expiry >= now_s() + 12 * 3600 - 60, "valid for at least 12 h: {expiry} vs now {}", now_s());
    assert_eq!(turn["credential"], json!(expected_credential(username)), "credential verifies: {turn}");
    username.to_owned()
}

#[tokio::test]
async fn hello_has_an_empty_ice_servers_array_when_none_are_configured() {
    let h = Harness::new().await;
    let c = h.login(&h.user("ice-none")).await;
    assert_eq!(c.hello_ok["ice_servers"], json!([]), "{}", c.hello_ok);
}

#[tokio::test]
async fn ice_op_answers_an_empty_array_when_none_are_configured() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("ice-none-op")).await;
    let ok = c.ok(json!({"op":"ice"})).await;
    assert_eq!(ok["ice_servers"], json!([]), "{ok}");
}

#[tokio::test]
async fn hello_gives_stun_without_and_turn_with_verifiable_credentials() {
    let Some(h) = with_ice("hello_gives_stun_without_and_turn_with_verifiable_credentials").await else {
        return;
    };
    let user = h.user("ice-hello");
    let c = h.login(&user).await;
    check_servers(&c.hello_ok["ice_servers"], &user);
}

#[tokio::test]
async fn ice_op_returns_fresh_verifiable_credentials() {
    let Some(h) = with_ice("ice_op_returns_fresh_verifiable_credentials").await else { return };
    let user = h.user("ice-op");
    let mut c = h.login(&user).await;
    let first = check_servers(&c.hello_ok["ice_servers"], &user);
    let expiry = |u: &str| u.split_once(':').unwrap().0.parse::<i64>().unwrap();
    // Fresh: computed at the time of the request (the expiry moves with
    // the clock; one second apart at least).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ok = c.ok(json!({"op":"ice"})).await;
    let renewed = check_servers(&ok["ice_servers"], &user);
    assert!(expiry(&renewed) > expiry(&first), "{first} then {renewed}");
}

#[tokio::test]
async fn ice_before_hello_is_unauthenticated_and_closes_4001() {
    let Some(h) = with_ice("ice_before_hello_is_unauthenticated_and_closes_4001").await else { return };
    let mut c = h.connect().await;
    let r = c.request(json!({"op":"ice","id":9})).await;
    assert_eq!(r.re, Some(9));
    assert!(r.ok.is_none(), "no credentials before hello: {:?}", r.ok);
    r.expect_err(ErrorCode::Unauthenticated);
    assert_eq!(c.expect_close().await, 4001);
}

#[tokio::test]
async fn ice_takes_from_the_users_bucket() {
    let Some(h) = Harness::with_config("ice_takes_from_the_users_bucket", |c| {
        c.limits.send_per_sec = 1;
        c.limits.send_burst = 3;
    })
    .await
    else {
        return;
    };
    let mut c = h.login(&h.user("ice-rate")).await;
    for _ in 0..20 {
        let r = c.request(json!({"op":"ice"})).await;
        if let Some(e) = r.err {
            assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
            assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "{e:?}");
            return;
        }
    }
    panic!("20 ice requests with a burst of 3 were never rate limited");
}
