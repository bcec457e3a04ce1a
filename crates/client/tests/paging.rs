//! Protocol v1.2 pagination as the client core sees it: `channels` and
//! `members` are answered a page (at most 200 rows) at a time, and the
//! core walks every page so the app still gets the whole list.

mod support;

use courier_server::store::sqlite::SqliteStore;
use courier_server::store::{ChannelStore, StoreAdmin};
use support::{client, free_port, synced};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_members_are_walked_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    // 450 channels by config; 450 members of one of them straight into
    // storage (faster than 450 sign-ins).
    let names: Vec<String> = (0..450).map(|i| format!("ch{i:03}")).collect();
    let users: Vec<String> = (0..450).map(|i| format!("u{i:03}")).collect();
    let cfg = courier_server::Config {
        listen: free_port(),
        data_dir: dir.path().to_path_buf(),
        dev_auth: true,
        default_channels: names.clone(),
        ..Default::default()
    };
    let server = courier_server::Server::start(cfg.clone()).await.unwrap();
    server.shutdown().await.unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    for u in &users {
        store.add_member("ch007", u, 1).await.unwrap();
    }
    store.close().await.unwrap();
    drop(store);
    let server = courier_server::Server::start(cfg.clone()).await.unwrap();

    let data = tempfile::tempdir().unwrap();
    let alice = client(&format!("ws://{}", cfg.listen), "alice", "d", data.path());
    synced(&alice).await;
    let listed: Vec<String> = alice.channels().await.unwrap().into_iter().map(|c| c.channel).collect();
    assert_eq!(listed, names, "every channel once, in name order, over three pages");

    let (first, more) = alice.members_page("ch007", None, None).await.unwrap();
    assert_eq!((first.len(), more), (200, true), "one page is at most 200 rows");
    let members: Vec<String> = alice.members("ch007").await.unwrap().into_iter().map(|m| m.user).collect();
    assert_eq!(members, users, "every member once, by user id");
    drop(alice);
    server.shutdown().await.unwrap();
}
