//! The raw relay: the floor a WebSocket chat server cannot go below on
//! this machine. It accepts WebSocket connections (tokio +
//! tokio-tungstenite, as Courier), reads one `hello` naming a `group`,
//! answers it, and from then on writes every frame a connection sends,
//! unparsed and unstored, to every other connection of its group and back
//! to the sender (the echo is the sender's ack). So a direct message costs
//! it one frame in and two out, as in Courier (the message to the peer,
//! the ok to the sender); a channel message one in and one out per member.
//!
//! `courier-bench relay --listen ADDR` runs it as its own process, so that
//! its CPU time is measured like any other target's.

use anyhow::{Context as _, anyhow};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The relay's WebSocket path (any path is accepted).
pub const WS_PATH: &str = "/relay";

/// Parameters of `relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7900")]
    pub listen: SocketAddr,
}

type Outbox = mpsc::UnboundedSender<Message>;

/// One group's connections: (connection number, its queue of frames).
type Members = Arc<Mutex<Vec<(u64, Outbox)>>>;

/// The connections of each group, by connection number.
#[derive(Default)]
struct Groups {
    by_name: Mutex<HashMap<String, Members>>,
    next_conn: AtomicU64,
}

/// Listens on `listener` and relays until the process ends.
///
/// # Errors
/// When accepting fails for good.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let groups = Arc::new(Groups::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let groups = groups.clone();
        tokio::spawn(async move {
            let _ = connection(stream, groups).await;
        });
    }
}

/// Runs the relay on `args.listen` (the `relay` subcommand).
///
/// # Errors
/// When the address cannot be bound.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("bind {}", args.listen))?;
    serve(listener).await
}

async fn connection(stream: TcpStream, groups: Arc<Groups>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let cfg = WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0);
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(cfg)).await?;
    let (mut sink, mut stream) = ws.split();
    // The one parsed frame: {"op":"hello","id":N,"group":"..",..}.
    let hello = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(t.as_str())?,
            Some(Ok(_)) => continue,
            _ => return Err(anyhow!("closed before hello")),
        }
    };
    let id = hello.get("id").and_then(Value::as_u64).unwrap_or(1);
    let name = hello.get("group").and_then(Value::as_str).unwrap_or_default().to_owned();
    sink.send(Message::text(format!("{{\"re\":{id},\"ok\":{{}}}}"))).await?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let me = groups.next_conn.fetch_add(1, Ordering::Relaxed);
    let group = groups.by_name.lock().expect("groups lock").entry(name.clone()).or_default().clone();
    group.lock().expect("group lock").push((me, tx.clone()));
    let writer = tokio::spawn(async move {
        // Every frame queued by the time the writer runs goes out in one flush.
        while let Some(first) = rx.recv().await {
            let mut ok = sink.feed(first).await.is_ok();
            while ok && let Ok(m) = rx.try_recv() {
                ok = sink.feed(m).await.is_ok();
            }
            if !ok || sink.flush().await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        if !(msg.is_text() || msg.is_binary()) {
            if msg.is_close() {
                break;
            }
            continue;
        }
        for (conn, out) in group.lock().expect("group lock").iter() {
            if *conn != me {
                let _ = out.send(msg.clone());
            }
        }
        let _ = tx.send(msg);
    }
    group.lock().expect("group lock").retain(|(conn, _)| *conn != me);
    if group.lock().expect("group lock").is_empty() {
        groups.by_name.lock().expect("groups lock").remove(&name);
    }
    writer.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::Dest;
    use crate::wire::{Client, Endpoint, Incoming, Proto};
    use std::time::Duration;

    #[tokio::test]
    async fn forwards_to_the_group_and_echoes_the_sender() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        let ep = Endpoint { proto: Proto::Relay, addr };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let recorder = |who: &'static str| -> crate::wire::OnEvent {
            let tx = tx.clone();
            Arc::new(move |ev| {
                if let Incoming::Msg { text, .. } = ev {
                    let _ = tx.send((who.to_owned(), text.to_owned()));
                }
            })
        };
        let lo = std::net::Ipv4Addr::LOCALHOST;
        let a = Client::connect_in(&ep, "a", "g1", lo, recorder("a")).await.unwrap();
        let _b = Client::connect_in(&ep, "b", "g1", lo, recorder("b")).await.unwrap();
        let _c = Client::connect_in(&ep, "c", "g2", lo, recorder("c")).await.unwrap();
        // The echo is a's ack; b (same group) gets the frame, c does not.
        a.send_text(Dest::User("b"), "k1", "hello b").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(got, ("b".to_owned(), "hello b".to_owned()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "only b receives");
    }
}
