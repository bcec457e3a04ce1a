//! A client WebSocket over one TCP socket, lean enough that the generator's
//! cost per message stays small next to the server's: frames are written
//! by the caller straight to the socket ([`Writer::send`]; a flush task
//! exists only while the socket is full), and one reader loop takes
//! everything available per wake-up into the connection's buffer and hands
//! each text message to a callback in place ([`read_loop`]). No allocation
//! and no channel per frame, no lock shared by reader and writer.

use crate::ws::{self, Frame};
use anyhow::{Context as _, anyhow, bail};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Free space kept in a connection's read buffer (it grows only for a
/// frame larger than this): frames here are a few hundred bytes, and
/// 10 k connections must not cost the generator gigabytes.
pub const READ_BUFFER: usize = 2 * 1024;

/// Bytes not yet accepted by the socket, and whether a flush task owns
/// the socket's write side (then new frames queue behind them).
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    flushing: bool,
    dead: bool,
}

/// The write side of a connection; shared by everyone who sends on it.
pub struct Writer {
    tx: OwnedWriteHalf,
    out: Mutex<Out>,
}

impl Writer {
    /// Writes one masked frame (`opcode`, `payload`) now, or queues it
    /// behind the bytes the socket has not taken yet. False once the
    /// connection has failed.
    pub fn send(self: &Arc<Self>, opcode: u8, payload: &[u8]) -> bool {
        let mut out = self.out.lock().expect("out lock");
        if out.dead {
            return false;
        }
        ws::push_frame(&mut out.buf, opcode, payload, rand::random());
        if out.flushing {
            return true;
        }
        match self.tx.try_write(&out.buf) {
            Ok(n) if n == out.buf.len() => {
                out.buf.clear();
                return true;
            }
            Ok(n) => {
                out.buf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                drop(out);
                self.fail();
                return false;
            }
        }
        out.flushing = true;
        tokio::spawn(self.clone().flush());
        true
    }

    /// Writes what is queued until the queue is empty (the socket was full).
    async fn flush(self: Arc<Self>) {
        let mut chunk = Vec::new();
        loop {
            {
                let mut out = self.out.lock().expect("out lock");
                if out.buf.is_empty() {
                    out.flushing = false;
                    return;
                }
                std::mem::swap(&mut chunk, &mut out.buf);
            }
            let mut at = 0;
            while at < chunk.len() {
                let r = match self.tx.writable().await {
                    Ok(()) => self.tx.try_write(&chunk[at..]),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => return self.fail(),
                }
            }
            chunk.clear();
        }
    }

    /// Marks the connection failed and shuts the socket down both ways,
    /// so that its reader ends too (and fails what still waits for a reply).
    fn fail(&self) {
        self.out.lock().expect("out lock").dead = true;
        // SAFETY: the descriptor is this connection's open socket (the
        // write half keeps it open); shutdown does not close it.
        unsafe { libc::shutdown(self.tx.as_ref().as_raw_fd(), libc::SHUT_RDWR) };
    }

    /// Whether a write has failed.
    pub fn is_dead(&self) -> bool {
        self.out.lock().expect("out lock").dead
    }
}

/// A connection while it upgrades and signs in (one request at a time).
pub struct Handshake {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Handshake {
    /// Upgrades `stream` (connected to `addr`) on `path`, offering
    /// `protocol` if any.
    ///
    /// # Errors
    /// An IO error, or an answer other than a valid 101.
    pub async fn upgrade(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        protocol: Option<&str>,
    ) -> anyhow::Result<Handshake> {
        let key = ws::new_key();
        stream.write_all(ws::upgrade_request(&addr.to_string(), path, &key, protocol).as_bytes()).await?;
        let mut buf = Vec::with_capacity(READ_BUFFER);
        loop {
            if stream.read_buf(&mut buf).await.context("reading the upgrade answer")? == 0 {
                bail!("closed during the upgrade");
            }
            if let Some(n) = ws::check_upgrade(&buf, &key)? {
                buf.drain(..n);
                return Ok(Handshake { stream, buf });
            }
        }
    }

    /// Sends one text frame.
    ///
    /// # Errors
    /// An IO error.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        let mut frame = Vec::with_capacity(text.len() + 14);
        ws::push_frame(&mut frame, ws::OP_TEXT, text.as_bytes(), rand::random());
        Ok(self.stream.write_all(&frame).await?)
    }

    /// The next text message (pings answered, other frames skipped).
    ///
    /// # Errors
    /// An IO error, a close, or a malformed frame.
    pub async fn next_text(&mut self) -> anyhow::Result<String> {
        let mut message = Vec::new();
        loop {
            while let Some(f) = ws::next_frame(&mut self.buf)? {
                let payload = self.buf[f.start..f.end].to_vec();
                self.buf.drain(..f.end);
                match f.opcode {
                    ws::OP_CLOSE => bail!("closed during handshake"),
                    ws::OP_PING => {
                        let mut pong = Vec::new();
                        ws::push_frame(&mut pong, ws::OP_PONG, &payload, rand::random());
                        self.stream.write_all(&pong).await?;
                    }
                    ws::OP_TEXT | ws::OP_CONT => {
                        message.extend_from_slice(&payload);
                        if f.fin {
                            return String::from_utf8(message).map_err(|_| anyhow!("text frame not UTF-8"));
                        }
                    }
                    _ => {}
                }
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("closed during handshake");
            }
        }
    }

    /// The read side, the bytes already read from it, and the write side.
    pub fn into_parts(self) -> (OwnedReadHalf, Vec<u8>, Arc<Writer>) {
        let (rx, tx) = self.stream.into_split();
        (rx, self.buf, Arc::new(Writer { tx, out: Mutex::new(Out::default()) }))
    }
}

/// Reads frames until the connection ends, calling `on_text` with every
/// text message (and answering pings). Each wake-up reads all the socket
/// has into `buf` (a read shorter than the free space tells the runtime
/// the socket is drained, so no read comes back empty) and handles every
/// complete frame in it before reading again.
pub async fn read_loop(
    mut rx: OwnedReadHalf,
    mut buf: Vec<u8>,
    writer: &Arc<Writer>,
    mut on_text: impl FnMut(&str),
) {
    // Fragments of a message split over several frames (servers here
    // send whole messages; this is for correctness only).
    let mut message: Vec<u8> = Vec::new();
    loop {
        let mut at = 0;
        loop {
            let f: Frame = match ws::next_frame(&mut buf[at..]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return,
            };
            let (start, end) = (at + f.start, at + f.end);
            at = end;
            match f.opcode {
                ws::OP_TEXT if f.fin && message.is_empty() => match std::str::from_utf8(&buf[start..end]) {
                    Ok(text) => on_text(text),
                    Err(_) => return,
                },
                ws::OP_TEXT | ws::OP_CONT => {
                    message.extend_from_slice(&buf[start..end]);
                    if f.fin {
                        match std::str::from_utf8(&message) {
                            Ok(text) => on_text(text),
                            Err(_) => return,
                        }
                        message.clear();
                    }
                }
                ws::OP_PING => {
                    writer.send(ws::OP_PONG, &buf[start..end]);
                }
                ws::OP_CLOSE => return,
                _ => {}
            }
        }
        buf.drain(..at);
        if buf.capacity() - buf.len() < READ_BUFFER / 2 {
            buf.reserve(READ_BUFFER);
        }
        match rx.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A connected pair: our client side as a [`Handshake`] (no upgrade),
    /// and the peer's end.
    async fn pair() -> (Handshake, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (peer, _) = l.accept().await.unwrap();
        (Handshake { stream: client, buf: Vec::new() }, peer)
    }

    /// The payloads of the masked frames in `bytes`, in order.
    fn payloads(mut bytes: Vec<u8>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = ws::next_frame(&mut bytes).unwrap() {
            out.push(bytes[f.start..f.end].to_vec());
            bytes.drain(..f.end);
        }
        assert!(bytes.is_empty());
        out
    }

    #[tokio::test]
    async fn frames_queue_behind_a_full_socket_and_all_arrive_in_order() {
        let (hs, mut peer) = pair().await;
        let (_rx, _, writer) = hs.into_parts();
        // Far more than the socket buffers hold while the peer reads nothing.
        let frame = vec![b'x'; 16 * 1024];
        let n = 2000u32;
        for i in 0..n {
            let mut p = frame.clone();
            p[..4].copy_from_slice(&i.to_be_bytes());
            assert!(writer.send(ws::OP_TEXT, &p));
        }
        assert!(writer.out.lock().unwrap().flushing, "the socket never filled up");
        let mut got = Vec::new();
        let want = n as usize * (frame.len() + 8);
        // A guard against a hang (frames left queued), not a timing check.
        let read_all = async {
            while got.len() < want {
                assert_ne!(peer.read_buf(&mut got).await.unwrap(), 0);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), read_all)
            .await
            .expect("queued frames never sent");
        let p = payloads(got);
        assert_eq!(p.len(), n as usize);
        for (i, f) in p.iter().enumerate() {
            assert_eq!(f[..4], (i as u32).to_be_bytes());
        }
    }

    #[tokio::test]
    async fn reader_joins_fragments_answers_pings_and_stops_at_close() {
        let (hs, mut peer) = pair().await;
        let (rx, buf, writer) = hs.into_parts();
        let reader = tokio::spawn(async move {
            let mut texts = Vec::new();
            read_loop(rx, buf, &writer, |t| texts.push(t.to_owned())).await;
            texts
        });
        // Unmasked server frames: "ab", "c"+"de" in two fragments, a ping
        // between them, then a close, then a text that must not be read.
        let bytes = [
            &[0x81, 2][..],
            b"ab",
            &[0x01, 1, b'c'],
            &[0x89, 2, b'p', b'q'],
            &[0x80, 2, b'd', b'e'],
            &[0x88, 0],
            &[0x81, 1, b'z'],
        ]
        .concat();
        // Byte by byte: frames split over reads are put back together.
        for b in bytes {
            peer.write_all(&[b]).await.unwrap();
            peer.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        assert_eq!(reader.await.unwrap(), ["ab", "cde"]);
        let mut pong = Vec::new();
        while pong.len() < 8 {
            peer.read_buf(&mut pong).await.unwrap();
        }
        assert_eq!(pong[0], 0x80 | ws::OP_PONG);
        assert_eq!(payloads(pong), [b"pq".to_vec()]);
    }
}
