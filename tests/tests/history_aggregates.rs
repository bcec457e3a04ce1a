//! Measurement, ignored by default: how long a `history` page of 200 takes
//! when its messages carry v1.1 aggregates, in conversations holding
//! 100,000 reactions, on SQLite and on PostgreSQL. It prints the numbers
//! (read from storage, and over the wire through a real server) and
//! asserts only that the pages read are right; time is never asserted.
//!
//! ```sh
//! cargo test -p courier-conformance --test history_aggregates -- --ignored --nocapture
//! ```
//!
//! Conversations (channels the reader belongs to):
//! - `plain`: 10,000 texts, no relations (the baseline);
//! - `spread`: 10,000 texts, then 100,000 reactions, 10 on each text (10
//!   users, 4 keys): a page of texts carries 2,000 reactions;
//! - `hot`: 200 texts, then 100,000 reactions, 500 users on each: one page
//!   carries all 100,000.
//!
//! The private PostgreSQL runs with `fsync=off` (it only makes filling
//! faster; reads are unaffected).

use courier_proto::{Conv, HistoryOk, Target};
use courier_server::store::postgres::PostgresStore;
use courier_server::store::sqlite::SqliteStore;
use courier_server::store::{NewChannel, NewMessage, Page, Relation, RelationAppend, Store, pg_harness};
use courier_server::{Config, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TEXTS: usize = 10_000;
const REACTIONS: usize = 100_000;
const PAGE: u32 = 200;
const RUNS: usize = 40;
const KEYS: [&str; 4] = ["👍", "🎉", "👀", "❤️"];
const READER: &str = "reader";

fn text(channel: &str, from: &str, cid: String, i: usize) -> NewMessage {
    let mut body = Map::new();
    body.insert("text".into(), Value::String(format!("message {i} of {channel}, a line of ordinary length")));
    NewMessage {
        conv: Conv::channel(channel),
        from: from.into(),
        to: Target::Channel(channel.into()),
        cid,
        kind: "text".into(),
        body,
        reply_to: None,
        ts: 1_764_180_000_000 + i as i64,
        mentions: Vec::new(),
    }
}

/// Appends with up to 64 writes in flight (so the engines can batch).
async fn fill<T: Send + 'static>(
    store: &Arc<dyn Store>,
    n: usize,
    make: impl Fn(usize) -> T,
    write: impl Fn(Arc<dyn Store>, T) -> futures_util::future::BoxFuture<'static, ()>,
) {
    let mut running = JoinSet::new();
    for i in 0..n {
        if running.len() >= 64 {
            running.join_next().await.unwrap().unwrap();
        }
        running.spawn(write(store.clone(), make(i)));
    }
    while let Some(r) = running.join_next().await {
        r.unwrap();
    }
}

/// Texts into `channel`; returns their mids in seq order.
async fn texts(store: &Arc<dyn Store>, channel: &str, n: usize) -> Vec<String> {
    store
        .create_channel(NewChannel {
            name: channel.into(),
            title: channel.into(),
            topic: String::new(),
            private: false,
            creator: Some(READER.into()),
            now: 1,
        })
        .await
        .unwrap();
    let ch = channel.to_owned();
    fill(
        store,
        n,
        move |i| text(&ch, "writer", format!("{ch}-t{i}"), i),
        |s, m| Box::pin(async move { s.append(m).await.map(drop).unwrap() }),
    )
    .await;
    let (all, _) = store.history(&Conv::channel(channel), Page::After(0), n as u32).await.unwrap();
    all.into_iter().map(|m| m.mid).collect()
}

/// `REACTIONS` reactions: reaction `i` targets `mids[i % len]`, from user
/// `u{i / len}` with key `KEYS[(i / len) % 4]` (each triple distinct).
async fn reactions(store: &Arc<dyn Store>, channel: &str, mids: Vec<String>) {
    let ch = channel.to_owned();
    let mids = Arc::new(mids);
    fill(
        store,
        REACTIONS,
        move |i| {
            let (target, round) = (mids[i % mids.len()].clone(), i / mids.len());
            let mut m = text(&ch, &format!("u{round}"), format!("{ch}-r{i}"), TEXTS + i);
            m.kind = "reaction".into();
            m.body =
                json!({"target": target, "key": KEYS[round % 4], "on": true}).as_object().unwrap().clone();
            let rel = Relation::Reaction { target, key: KEYS[round % 4].into(), on: true };
            (m, rel)
        },
        |s, (m, rel)| {
            Box::pin(async move {
                assert!(matches!(s.append_relation(m, rel).await.unwrap(), RelationAppend::Stored(_)));
            })
        },
    )
    .await;
}

struct Stats {
    p50: f64,
    p95: f64,
    max: f64,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Stats { p50: at(0.5), p95: at(0.95), max: *ms.last().unwrap() }
}

/// A signed-in WebSocket session on the measured server.
struct Wire {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    id: u64,
}

impl Wire {
    async fn connect(url: &str) -> Wire {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", courier_proto::SUBPROTOCOL.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut w = Wire { ws, id: 0 };
        w.call(json!({"op":"hello","token":format!("dev:{READER}"),"device":"measure"})).await;
        w
    }

    /// One request; returns the reply's text (events are skipped).
    async fn call(&mut self, mut req: Value) -> String {
        self.id += 1;
        req["id"] = json!(self.id);
        self.ws.send(Message::text(req.to_string())).await.unwrap();
        loop {
            let t = match self.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("connection ended: {other:?}"),
            };
            if t.as_str().contains(&format!("\"re\":{}", self.id)) {
                assert!(!t.as_str().contains("\"err\""), "{}", &t.as_str()[..t.len().min(300)]);
                return t.as_str().to_owned();
            }
        }
    }
}

/// Times `RUNS` reads of one page from storage and over the wire, checks
/// the page with `check`, prints a line.
async fn measure(
    engine: &str,
    what: &str,
    store: &Arc<dyn Store>,
    wire: &mut Wire,
    channel: &str,
    page: Page,
    check: impl Fn(&HistoryOk),
) {
    let conv = Conv::channel(channel);
    let mut store_ms = Vec::new();
    let mut page_ok = None;
    for _ in 0..RUNS + 3 {
        let t = Instant::now();
        let (messages, more) = store.history(&conv, page, PAGE).await.unwrap();
        store_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        page_ok = Some(HistoryOk { messages, more });
    }
    store_ms.drain(..3);
    let page_ok = page_ok.unwrap();
    check(&page_ok);
    let reactions: usize = page_ok.messages.iter().flat_map(|m| m.reactions.values()).map(Vec::len).sum();
    let mut req = json!({"op":"history","conv":conv,"limit":PAGE});
    match page {
        Page::Latest => {}
        Page::After(s) => req["after"] = json!(s),
        Page::Before(s) => req["before"] = json!(s),
    }
    let mut wire_ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..RUNS + 3 {
        let t = Instant::now();
        bytes = wire.call(req.clone()).await.len();
        wire_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    wire_ms.drain(..3);
    let (s, w) = (stats(store_ms), stats(wire_ms));
    println!(
        "{engine:<10} {what:<44} reactions on page {reactions:>6}  reply {:>8} B  \
         store p50 {:>7.2} p95 {:>7.2} max {:>7.2} ms   wire p50 {:>7.2} p95 {:>7.2} max {:>7.2} ms",
        bytes, s.p50, s.p95, s.max, w.p50, w.p95, w.max
    );
}

async fn run(engine: &str, store: Arc<dyn Store>) {
    let started = Instant::now();
    let plain = texts(&store, "plain", TEXTS).await;
    let spread = texts(&store, "spread", TEXTS).await;
    reactions(&store, "spread", spread.clone()).await;
    let hot = texts(&store, "hot", PAGE as usize).await;
    reactions(&store, "hot", hot.clone()).await;
    println!(
        "{engine}: filled {} messages in {:.1} s",
        2 * TEXTS + 2 * REACTIONS + 200,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(plain.len(), TEXTS);

    let mut config = Config { listen: "127.0.0.1:0".parse().unwrap(), dev_auth: true, ..Config::default() };
    config.validate().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::start_with(listener, config, store.clone()).await.unwrap();
    let mut wire = Wire::connect(&server.ws_url()).await;

    let texts_page = |first: u64, per_message: usize| {
        move |p: &HistoryOk| {
            assert_eq!(p.messages.len(), PAGE as usize);
            assert_eq!(p.messages[0].seq, first);
            assert!(
                p.messages.iter().all(|m| m.reactions.values().map(Vec::len).sum::<usize>() == per_message)
            );
        }
    };
    let last_text = TEXTS as u64;
    measure(
        engine,
        "plain: texts, no relations",
        &store,
        &mut wire,
        "plain",
        Page::Before(last_text + 1),
        texts_page(last_text - 199, 0),
    )
    .await;
    measure(
        engine,
        "spread: newest 200 texts (10 reactions each)",
        &store,
        &mut wire,
        "spread",
        Page::Before(last_text + 1),
        texts_page(last_text - 199, 10),
    )
    .await;
    measure(
        engine,
        "spread: 200 texts mid-way",
        &store,
        &mut wire,
        "spread",
        Page::Before(5001),
        texts_page(4801, 10),
    )
    .await;
    measure(
        engine,
        "spread: latest page (200 reaction messages)",
        &store,
        &mut wire,
        "spread",
        Page::Latest,
        |p| {
            assert!(p.messages.iter().all(|m| m.kind == "reaction"));
        },
    )
    .await;
    measure(
        engine,
        "hot: 200 texts, 500 reactions each",
        &store,
        &mut wire,
        "hot",
        Page::Before(201),
        texts_page(1, 500),
    )
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn history_page_latency_with_100k_reactions_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    run("sqlite", store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn history_page_latency_with_100k_reactions_postgres() {
    let Some(url) = pg_harness::fresh_database().await else {
        courier_conformance::skip(
            "history_page_latency_with_100k_reactions_postgres",
            "PostgreSQL is not installed",
        );
        return;
    };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    run("postgresql", store).await;
}
