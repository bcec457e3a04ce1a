//! Churn: many distinct users each sign in once (optionally create a
//! channel and write in it) and leave, through real WebSocket sessions.
//! What the node keeps of them afterwards must return to a bound: a server
//! runs for months while millions of users come and go.
//!
//! `users_coming_and_going_leave_nothing_behind` runs 2,048 users on every
//! test run. The ignored `churn_rss` prints the process's resident memory
//! before and after `COURIER_CHURN_USERS` users (100,000 by default;
//! `COURIER_CHURN_CHANNELS=1`: each creates a channel and sends in it):
//! `cargo test -p courier-server --lib churn_rss -- --ignored --nocapture`.

use crate::config::Config;
use crate::state::AppState;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Connections open at once.
const PARALLEL: usize = 32;

/// One user's visit: sign in, maybe create a channel and send in it, leave.
async fn visit(url: &str, user: &str, channel: bool) {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", courier_proto::SUBPROTOCOL.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ops = vec![format!(r#"{{"id":1,"op":"hello","token":"dev:{user}","device":"d"}}"#)];
    if channel {
        ops.push(format!(r#"{{"id":2,"op":"create_channel","channel":"ch-{user}"}}"#));
        ops.push(format!(
            r#"{{"id":3,"op":"send","to":{{"channel":"ch-{user}"}},"cid":"c","kind":"text","body":{{"text":"hi"}}}}"#
        ));
    }
    for (n, op) in ops.iter().enumerate() {
        ws.send(Message::text(op.as_str())).await.unwrap();
        loop {
            let text = ws.next().await.unwrap().unwrap().into_text().unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if v["re"] == n as u64 + 1 {
                assert!(v.get("ok").is_some(), "{user}: {v}");
                break;
            }
        }
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

/// Runs `n` distinct users (`prefix` names them) through the server, then
/// waits until the node has let go of every session.
async fn churn(st: &Arc<AppState>, url: &str, prefix: &str, n: usize, channel: bool) {
    futures_util::stream::iter(0..n)
        .for_each_concurrent(PARALLEL, |i| async move { visit(url, &format!("{prefix}{i}"), channel).await })
        .await;
    // The server ends a session after the client's close: wait for it (a
    // generous bound turns a session that never ends into a failure).
    tokio::time::timeout(Duration::from_secs(120), async {
        while st.hub.session_count() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("sessions still registered after their clients left");
}

async fn server(dir: &tempfile::TempDir) -> crate::Server {
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().into(),
        ..Config::default()
    };
    crate::Server::start(config).await.unwrap()
}

/// What the node holds of users who are gone, by structure.
fn held(st: &AppState) -> String {
    format!(
        "sessions {}, online users {}, channel entries {}, rate buckets {}, sign-in buckets {}, \
         presence buckets {}, held presence {}, timers {}",
        st.hub.session_count(),
        st.hub.online_users().len(),
        st.hub.cached_channels(),
        st.hub.buckets.len(),
        st.hub.hellos.len(),
        st.hub.presence.buckets(),
        st.hub.presence.held(),
        st.timers.lock().unwrap().len(),
    )
}

/// Distinct users coming and going (each creating a channel and writing
/// in it) leave no session, no online entry and no held presence, and the
/// channel cache stays within its sweep bound however many channels they
/// made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_coming_and_going_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let st = server.state.clone();
    let n = 4 * crate::hub::CHANNEL_SWEEP_MIN;
    churn(&st, &server.ws_url(), "u", n, true).await;
    let summary = held(&st);
    assert_eq!(st.hub.session_count(), 0, "{summary}");
    assert!(st.hub.online_users().is_empty(), "{summary}");
    assert_eq!(st.hub.presence.held(), 0, "{summary}");
    assert!(
        st.hub.cached_channels() <= 2 * crate::hub::CHANNEL_SWEEP_MIN,
        "{n} users each made a channel: {summary}"
    );
    // Idle full buckets go as new users come (see `ratelimit`); each user
    // holds at most one of each kind.
    assert!(st.hub.buckets.len() <= n && st.hub.hellos.len() <= n, "{summary}");
}

/// This process's resident and peak memory (KiB), from `/proc`.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Heap bytes in use (glibc's count: what is allocated now, without the
/// allocator's free pages; 0 elsewhere).
fn heap_kib() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        (info.uordblks + info.hblkhd) as u64 / 1024
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: minutes long; run by hand with --ignored --nocapture"]
async fn churn_rss() {
    let n = std::env::var("COURIER_CHURN_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let channel = std::env::var("COURIER_CHURN_CHANNELS").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let st = server.state.clone();
    // Warm up (allocator pools, the store's caches, the runtime's workers).
    churn(&st, &server.ws_url(), "warm", 1000, channel).await;
    let before = rss_kib();
    let heap = heap_kib();
    println!(
        "churn: before {n} users (channels: {channel}): rss {} KiB, heap {heap} KiB; {}",
        before.0,
        held(&st)
    );
    let started = std::time::Instant::now();
    for (done, batch) in (0..n).step_by(10_000).map(|from| (from + 10_000.min(n - from), from)) {
        churn(&st, &server.ws_url(), &format!("c{batch}-"), done - batch, channel).await;
        println!("churn: {done} users, rss {} KiB, heap {} KiB; {}", rss_kib().0, heap_kib(), held(&st));
    }
    let after = rss_kib();
    println!(
        "churn: after {n} users in {:.0?}: rss {} KiB (+{} KiB, {:.1} B/user), peak {} KiB, heap +{} KiB; {}",
        started.elapsed(),
        after.0,
        after.0.saturating_sub(before.0),
        after.0.saturating_sub(before.0) as f64 * 1024.0 / n as f64,
        after.1,
        heap_kib().saturating_sub(heap),
        held(&st)
    );
}
