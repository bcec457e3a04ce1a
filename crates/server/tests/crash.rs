//! Crash test: every message the server acknowledged survives `kill -9`.
//!
//! Runs the real binary, has several clients send concurrently (channel and
//! DM messages, unique cids), sends SIGKILL to the server as soon as enough
//! oks have arrived (while the clients are still sending), restarts it on the
//! same data directory and checks through `history` that every acknowledged
//! message is there exactly once with its acknowledged `seq`/`mid`/`ts`, that
//! each conversation's seqs are still 1..=n with no gap, and that re-sending
//! an acknowledged cid answers `dup: true` with the original values.
//! Half the clients pipeline their sends (a window of them unanswered), so
//! the kill also lands while a session has many sends waiting for one
//! commit; their oks must come in send order.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CLIENTS: usize = 4;
const TARGET_ACKS: usize = 4 * 250;
const MAX_PER_CLIENT: usize = 600;
/// Sends a pipelining client keeps unanswered.
const WINDOW: usize = 32;

/// The server process; killed (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_server(data: &Path, config: &Path, port: u16, log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_courier-server"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--dev-auth")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("courier-server binary starts");
    Proc(child)
}

async fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else { return false };
    let req = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200")
}

async fn wait_healthy(port: u16, proc: &mut Proc, log: &Path) {
    for _ in 0..300 {
        if healthz(port).await {
            return;
        }
        if let Ok(Some(status)) = proc.0.try_wait() {
            panic!(
                "server exited ({status}) before it was healthy; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server not healthy after 30 s; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A signed-in session; replies are read in request order (events are
/// skipped).
struct Session {
    ws: Ws,
    next_id: u64,
}

impl Session {
    async fn open(port: u16, user: &str) -> Session {
        let mut req = format!("ws://127.0.0.1:{port}/v1/ws").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", "courier.v1".parse().unwrap());
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp connect");
        tcp.set_nodelay(true).unwrap();
        let (ws, _) = tokio_tungstenite::client_async(req, tcp).await.expect("websocket upgrade");
        let mut s = Session { ws, next_id: 1 };
        let r = s
            .request(json!({"op":"hello","token":format!("dev:{user}"),"device":format!("dev-{user}")}))
            .await
            .expect("hello reply");
        assert!(r.get("ok").is_some(), "hello: {r}");
        s
    }

    /// The reply to `req`, or `None` when the connection broke first.
    async fn request(&mut self, req: Value) -> Option<Value> {
        let id = self.send(req).await?;
        self.reply(id).await
    }

    /// Sends `req` without waiting; its id, or `None` when the connection broke.
    async fn send(&mut self, mut req: Value) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        req["id"] = json!(id);
        self.ws.send(Message::text(req.to_string())).await.ok()?;
        Some(id)
    }

    /// The next reply, which must answer `id` (the oldest unanswered
    /// request); `None` when the connection broke first.
    async fn reply(&mut self, id: u64) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.ws.next()).await.ok()??.ok()?;
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                if let Some(re) = v.get("re") {
                    assert_eq!(re, &json!(id), "replies in request order: {v}");
                    return Some(v);
                }
            }
        }
    }

    async fn ok(&mut self, req: Value) -> Value {
        let shown = req.to_string();
        let r = self.request(req).await.unwrap_or_else(|| panic!("no reply to {shown}"));
        r.get("ok").cloned().unwrap_or_else(|| panic!("{shown} -> {r}"))
    }
}

/// What the server acknowledged for one cid.
#[derive(Debug, Clone, PartialEq)]
struct Ack {
    user: String,
    to: Value,
    conv: String,
    seq: u64,
    mid: String,
    ts: i64,
}

async fn full_history(s: &mut Session, conv: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let ok = s.ok(json!({"op":"history","conv":conv,"after":after,"limit":200})).await;
        let page = ok["messages"].as_array().cloned().unwrap_or_default();
        if let Some(last) = page.last() {
            after = last["seq"].as_u64().unwrap();
        }
        let more = ok["more"] == json!(true);
        out.extend(page);
        if !more {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let config = dir.path().join("courier.toml");
    // Rate limits out of the way: this test is about durability.
    std::fs::write(
        &config,
        "[limits]\nmax_frame_bytes = 65536\nmax_body_bytes = 32768\nsend_per_sec = 100000\nsend_burst = 100000\nhistory_page = 200\n",
    )
    .unwrap();

    let port = free_port();
    let mut server = spawn_server(&data, &config, port, &log);
    wait_healthy(port, &mut server, &log).await;

    let run = format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
    );
    let channel = format!("crash-{run}");
    let peer = format!("crash-peer-{run}");
    let users: Vec<String> = (0..CLIENTS).map(|i| format!("crash{i}-{run}")).collect();

    let mut owner = Session::open(port, &users[0]).await;
    owner.ok(json!({"op":"create_channel","channel":channel,"private":false})).await;
    let mut sessions = vec![owner];
    for u in &users[1..] {
        let mut s = Session::open(port, u).await;
        s.ok(json!({"op":"join","channel":channel})).await;
        sessions.push(s);
    }

    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        let (user, channel, peer, acked) = (users[i].clone(), channel.clone(), peer.clone(), acked.clone());
        let window = if i % 2 == 1 { WINDOW } else { 1 };
        tasks.push(tokio::spawn(async move {
            let mut acks: BTreeMap<String, Ack> = BTreeMap::new();
            let mut unanswered = std::collections::VecDeque::new();
            let mut j = 0;
            loop {
                while unanswered.len() < window && j < MAX_PER_CLIENT {
                    let cid = format!("{user}-{j}");
                    // Alternate: the shared channel, and a DM to a peer who never signs in.
                    let to = if j % 2 == 0 { json!({"channel":channel}) } else { json!({"user":peer}) };
                    let req =
                        json!({"op":"send","to":to,"cid":cid,"kind":"text","body":{"text":format!("{i}/{j}")}});
                    j += 1;
                    let Some(id) = s.send(req).await else { break };
                    unanswered.push_back((id, cid, to));
                }
                let Some((id, cid, to)) = unanswered.pop_front() else { break };
                let Some(r) = s.reply(id).await else { break };
                let Some(ok) = r.get("ok") else {
                    // Errors are possible while the server dies; they are not acks.
                    continue;
                };
                assert_eq!(ok["dup"], json!(false), "{r}");
                acks.insert(
                    cid,
                    Ack {
                        user: user.clone(),
                        to,
                        conv: ok["conv"].as_str().unwrap().to_owned(),
                        seq: ok["seq"].as_u64().unwrap(),
                        mid: ok["mid"].as_str().unwrap().to_owned(),
                        ts: ok["ts"].as_i64().unwrap(),
                    },
                );
                acked.fetch_add(1, Ordering::SeqCst);
            }
            acks
        }));
    }

    // Kill as soon as enough oks arrived, with the clients still sending.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while acked.load(Ordering::SeqCst) < TARGET_ACKS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} acks in 240 s",
            acked.load(Ordering::SeqCst)
        );
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.0.kill().expect("SIGKILL");
    server.0.wait().unwrap();
    drop(server);

    let mut acks: BTreeMap<String, Ack> = BTreeMap::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    assert!(acks.len() >= TARGET_ACKS.min(CLIENTS * MAX_PER_CLIENT), "{} acks", acks.len());
    eprintln!("{} messages acknowledged before kill -9", acks.len());

    // Restart on the same data directory.
    let port = free_port();
    let mut server = spawn_server(&data, &config, port, &log);
    wait_healthy(port, &mut server, &log).await;

    // Every conversation, read by one of its members.
    // conv -> (a member to read it with, the acks in it)
    type ConvAcks<'a> = (String, Vec<(&'a String, &'a Ack)>);
    let mut by_conv: HashMap<String, ConvAcks> = HashMap::new();
    for (cid, a) in &acks {
        by_conv.entry(a.conv.clone()).or_insert_with(|| (a.user.clone(), Vec::new())).1.push((cid, a));
    }
    for (n, (conv, (reader, expected))) in by_conv.iter().enumerate() {
        let mut s = Session::open(port, reader).await;
        let hist = full_history(&mut s, conv).await;
        // Seqs continue after the last stored one: none is reused, none skipped.
        let to = &expected[0].1.to;
        let next = s.ok(json!({"op":"send","to":to,"cid":format!("{reader}-after-restart-{n}"),"kind":"text","body":{"text":"after"}})).await;
        assert_eq!(next["seq"], json!(hist.len() + 1), "{conv}: first seq after restart: {next}");
        let seqs: Vec<u64> = hist.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=hist.len() as u64).collect::<Vec<_>>(), "{conv}: seqs 1..=n without gaps");
        let mut count: HashMap<(String, String), usize> = HashMap::new();
        for m in &hist {
            *count
                .entry((m["from"].as_str().unwrap().to_owned(), m["cid"].as_str().unwrap().to_owned()))
                .or_default() += 1;
        }
        assert!(count.values().all(|&n| n == 1), "{conv}: a (from, cid) stored twice");
        let by_cid: HashMap<&str, &Value> = hist.iter().map(|m| (m["cid"].as_str().unwrap(), m)).collect();
        for (cid, a) in expected {
            let m = by_cid.get(cid.as_str()).unwrap_or_else(|| {
                panic!("{conv}: acknowledged message {cid} (seq {}) lost after kill -9", a.seq)
            });
            assert_eq!(m["from"], json!(a.user), "{cid}");
            assert_eq!(m["seq"], json!(a.seq), "{cid}: acknowledged seq");
            assert_eq!(m["mid"], json!(a.mid), "{cid}: acknowledged mid");
            assert_eq!(m["ts"], json!(a.ts), "{cid}: acknowledged ts");
        }
    }

    // Retrying acknowledged cids is answered from storage.
    let mut sessions: HashMap<String, Session> = HashMap::new();
    for (cid, a) in &acks {
        if !sessions.contains_key(&a.user) {
            sessions.insert(a.user.clone(), Session::open(port, &a.user).await);
        }
        let s = sessions.get_mut(&a.user).unwrap();
        let ok = s.ok(json!({"op":"send","to":a.to,"cid":cid,"kind":"text","body":{"text":"retry"}})).await;
        assert_eq!(ok["dup"], json!(true), "{cid}: {ok}");
        assert_eq!(
            (ok["seq"].as_u64(), ok["mid"].as_str()),
            (Some(a.seq), Some(a.mid.as_str())),
            "{cid}: {ok}"
        );
        assert_eq!(ok["conv"], json!(a.conv));
    }
}
