//! Measurements, not tests: run with
//! `cargo test --release -p courier-client --test perf -- --ignored --nocapture`.
//! They print numbers and assert only correctness, never speed.

mod support;

use courier_client::{DeliveryStatus, Store};
use courier_proto::{Conv, Target};
use std::time::Instant;
use support::{TestServer, client, synced, until};

/// Outbox throughput (one conversation, one message in flight, durable
/// server acks), then a fresh device syncing the 10,000 messages it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn outbox_throughput_and_sync_of_10000_missed_messages() {
    let mut server = TestServer::new();
    server.send_per_sec = Some(1_000_000);
    server.start().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d", a.path());
    synced(&alice).await;
    let n = 10_000;
    let to = Target::User("bob".into());
    let t0 = Instant::now();
    let cids: Vec<String> =
        (0..n).map(|i| alice.send_text(&to, &format!("missed message number {i}")).unwrap().cid).collect();
    let enqueue = t0.elapsed();
    let settled = alice.wait_settled(&cids).await.unwrap();
    let drained = t0.elapsed();
    let texts: Vec<String> = (0..1000).map(|i| format!("batched {i}")).collect();
    let t = Instant::now();
    let batch = alice.send_texts(&Target::User("carol".into()), &texts).unwrap();
    println!("outbox: enqueue 1000 as one batch in {:.2?}", t.elapsed());
    alice.wait_settled(&batch.iter().map(|m| m.cid.clone()).collect::<Vec<_>>()).await.unwrap();
    let t = Instant::now();
    let many: Vec<String> = (0..8)
        .flat_map(|c| {
            let to = Target::User(format!("peer{c}"));
            let texts: Vec<String> = (0..500).map(|i| format!("parallel {i}")).collect();
            alice.send_texts(&to, &texts).unwrap().into_iter().map(|m| m.cid)
        })
        .collect();
    alice.wait_settled(&many).await.unwrap();
    println!(
        "outbox: 8 conversations × 500 delivered in {:.2?} ({:.0} msg/s)",
        t.elapsed(),
        4000.0 / t.elapsed().as_secs_f64()
    );
    assert!(settled.iter().all(|m| m.status == DeliveryStatus::Sent));
    println!(
        "outbox: enqueue {n} in {:.2?} ({:.0}/s); delivered all in {:.2?} ({:.0} msg/s)",
        enqueue,
        n as f64 / enqueue.as_secs_f64(),
        drained,
        n as f64 / drained.as_secs_f64()
    );
    alice.stop().await;

    let t1 = Instant::now();
    let bob = client(&server.url(), "bob", "d", b.path());
    synced(&bob).await;
    let took = t1.elapsed();
    let conv = Conv::dm("alice", "bob");
    until(&bob, "all there", || bob.store().synced_seq(&conv).unwrap() == n as u64).await;
    println!(
        "sync: {n} missed messages in {:.2?} ({:.0} msg/s), connect included",
        took,
        n as f64 / took.as_secs_f64()
    );
    bob.stop().await;
    server.stop().await;
}

/// Local full-text search over 1,000,000 stored messages.
#[test]
#[ignore = "measurement; run explicitly"]
fn search_latency_over_a_million_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_dir(dir.path()).unwrap();
    let words: Vec<String> = (0..5000).map(|i| format!("w{}x{}", i * 7919 % 10007, i % 13)).collect();
    let n: u64 = 1_000_000;
    let t0 = Instant::now();
    let mut state: u64 = 42;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for chunk in 0..(n / 50_000) {
        store
            .with_transaction(|tx| {
                let mut st = tx.prepare_cached(
                    "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, status, created)
                     VALUES (?1, ?2, ?3, ?4, 'bob', '{\"channel\":\"c\"}', 'text', ?5, ?2, 'received', 0)",
                )?;
                for k in 0..50_000u64 {
                    let seq = chunk * 50_000 + k + 1;
                    let conv = format!("ch:c{}", seq % 20);
                    let len = 5 + rnd() % 15;
                    let mut text: Vec<&str> = (0..len).map(|_| words[(rnd() % words.len() as u64) as usize].as_str()).collect();
                    if seq % 100_000 == 7 {
                        text.push("needleinhaystack");
                    }
                    let body = serde_json::json!({"text": text.join(" ")}).to_string();
                    st.execute(rusqlite::params![conv, seq as i64, format!("m{seq}"), format!("c{seq}"), body])?;
                }
                Ok(())
            })
            .unwrap();
    }
    store
        .with_transaction(|tx| {
            for i in 0..20 {
                tx.execute(
                    "INSERT OR IGNORE INTO conversations (conv, kind, channel) VALUES (?1, 'channel', ?2)",
                    rusqlite::params![format!("ch:c{i}"), format!("c{i}")],
                )?;
            }
            Ok(())
        })
        .unwrap();
    println!("search: stored {n} messages (with FTS index) in {:.1?}", t0.elapsed());
    let common = words[0].clone();
    let prefix = words[1][..3].to_owned();
    let two = format!("{} {}", words[2], words[3]);
    for q in [common.as_str(), "needleinhaystack", prefix.as_str(), two.as_str(), "nosuchword"] {
        let mut times = Vec::new();
        let mut hits = 0;
        for _ in 0..21 {
            let t = Instant::now();
            hits = store.search(q, 50).unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!("search {q:?}: {hits} hits (limit 50), median {:.2?}, max {:.2?}", times[10], times[20]);
        if q == "needleinhaystack" {
            assert_eq!(hits, 10);
        }
    }
}
