//! A server that paces sign-ins per user (`hello_burst`, then one per
//! `hello_interval_ms`; a `hello` sooner gets `rate_limited` and close
//! 4029): the client core does not give up on it, it backs off and
//! reconnects, and gets in once the server lets it.

mod support;

use courier_client::{Client, ClientEvent, ConnState};
use std::time::Duration;
use support::{config, event, free_port, synced};

/// Starts a server with `cfg`, retrying while its port lingers.
async fn start(cfg: &courier_server::Config) -> courier_server::Server {
    for _ in 0..50 {
        if let Ok(s) = courier_server::Server::start(cfg.clone()).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refused_for_signing_in_too_often_backs_off_and_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    // One sign-in per user per hour: the second device is refused until
    // the server restarts (its sign-in buckets are in memory).
    let cfg = courier_server::Config {
        listen: free_port(),
        data_dir: dir.path().to_path_buf(),
        dev_auth: true,
        hello_burst: 1,
        hello_interval_ms: 3_600_000,
        ..Default::default()
    };
    let url = format!("ws://{}", cfg.listen);
    let server = start(&cfg).await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let phone = Client::open(config(vec![url.clone()], "alice", "phone", d1.path())).unwrap();
    phone.start();
    synced(&phone).await;

    let desk = Client::open(config(vec![url], "alice", "desk", d2.path())).unwrap();
    let mut rx = desk.subscribe();
    desk.start();
    let refused = event(&mut rx, "the refused sign-in", |e| {
        matches!(e, ClientEvent::Connection { state: ConnState::Reconnecting, .. })
    })
    .await;
    let ClientEvent::Connection { close_code, .. } = &refused else { unreachable!() };
    assert_eq!(*close_code, Some(4029), "{refused:?}");
    // It keeps trying (backing off), never stops.
    event(&mut rx, "a retry", |e| {
        matches!(e, ClientEvent::Connection { state: ConnState::Reconnecting, .. })
    })
    .await;
    assert_ne!(desk.state(), ConnState::Stopped);

    // The phone leaves and the server restarts: the desk gets in.
    phone.stop().await;
    server.shutdown().await.unwrap();
    let _server = start(&cfg).await;
    synced(&desk).await;
    assert_eq!(desk.state(), ConnState::Connected);
}
