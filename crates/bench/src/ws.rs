//! The client side of WebSocket (RFC 6455) as the generator needs it:
//! the upgrade request and the check of its answer, masked frames written
//! straight into a connection's output buffer, and the server's frames
//! found in place in a read buffer. Pure functions, no IO: [`crate::wire`]
//! drives the socket, so that a frame costs no allocation and no task of
//! its own (the general-purpose library did both).

use anyhow::{anyhow, bail};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Opcodes.
pub const OP_CONT: u8 = 0x0;
/// A text frame.
pub const OP_TEXT: u8 = 0x1;
/// A binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close.
pub const OP_CLOSE: u8 = 0x8;
/// Ping (answered with a pong carrying the same payload).
pub const OP_PING: u8 = 0x9;
/// Pong.
pub const OP_PONG: u8 = 0xA;

/// Largest frame accepted from a server (a `sync` reply is the biggest).
pub const MAX_FRAME: usize = 64 << 20;

/// A fresh `Sec-WebSocket-Key`.
pub fn new_key() -> String {
    tokio_tungstenite::tungstenite::handshake::client::generate_key()
}

/// The upgrade request for `path` on `host`, offering `protocol` if any.
pub fn upgrade_request(host: &str, path: &str, key: &str, protocol: Option<&str>) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    if let Some(p) = protocol {
        r.push_str("Sec-WebSocket-Protocol: ");
        r.push_str(p);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// Checks the answer to an upgrade request once its head is complete:
/// `Ok(Some(n))` with the head's length (the bytes after it are frames),
/// `Ok(None)` while more bytes are needed.
///
/// # Errors
/// A status other than 101, or a `Sec-WebSocket-Accept` that does not
/// match `key`.
pub fn check_upgrade(buf: &[u8], key: &str) -> anyhow::Result<Option<usize>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 16 * 1024 {
            bail!("upgrade answer too long");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| anyhow!("upgrade answer is not text"))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("101") {
        bail!("upgrade refused: {status}");
    }
    let want = derive_accept_key(key.as_bytes());
    let accept = lines.filter_map(|l| l.split_once(':')).find_map(|(name, value)| {
        name.trim().eq_ignore_ascii_case("sec-websocket-accept").then(|| value.trim())
    });
    if accept != Some(want.as_str()) {
        bail!("upgrade answer has a wrong Sec-WebSocket-Accept");
    }
    Ok(Some(end + 4))
}

/// Appends one final, masked frame (`opcode`, `payload`) to `out`.
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// XORs `data` with the repeating `mask` (masking and unmasking alike).
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let m = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ m;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// One frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Whether it ends its message.
    pub fin: bool,
    /// Its opcode.
    pub opcode: u8,
    /// Where its payload starts in the buffer.
    pub start: usize,
    /// Where it ends (the next frame starts there).
    pub end: usize,
}

/// The frame at the start of `buf`, unmasked in place if the server
/// masked it; `Ok(None)` while it is incomplete.
///
/// # Errors
/// A frame longer than [`MAX_FRAME`].
pub fn next_frame(buf: &mut [u8]) -> anyhow::Result<Option<Frame>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().expect("eight bytes")), 10),
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if len > MAX_FRAME as u64 {
        bail!("frame of {len} bytes");
    }
    let mask = if masked {
        let Some(m) = buf.get(at..at + 4) else { return Ok(None) };
        at += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    let end = at + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    if let Some(m) = mask {
        apply_mask(&mut buf[at..end], m);
    }
    Ok(Some(Frame { fin: b0 & 0x80 != 0, opcode: b0 & 0x0f, start: at, end }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a client frame the way a server does: unmasks it.
    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let mut f = frame.to_vec();
        // A client frame must be masked.
        assert_ne!(f[1] & 0x80, 0);
        f[1] &= 0x7f;
        let hdr = match f[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        let mask: [u8; 4] = f[hdr..hdr + 4].try_into().unwrap();
        let mut payload = f.split_off(hdr + 4);
        apply_mask(&mut payload, mask);
        (f[0] & 0x0f, payload)
    }

    #[test]
    fn frames_round_trip_at_every_length_form() {
        for n in [0, 5, 125, 126, 300, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let mut out = vec![9];
            push_frame(&mut out, OP_TEXT, &payload, [1, 2, 3, 4]);
            let (op, got) = unmask(&out[1..]);
            assert_eq!((op, got.len()), (OP_TEXT, n));
            assert_eq!(got, payload);
            // The same frame, read as a server's (masked) frame, parses back.
            let mut buf = out[1..].to_vec();
            let f = next_frame(&mut buf).unwrap().unwrap();
            assert_eq!((f.fin, f.opcode, f.end), (true, OP_TEXT, buf.len()));
            assert_eq!(&buf[f.start..f.end], &payload[..]);
            // Any prefix is incomplete, not an error.
            assert_eq!(next_frame(&mut out[1..out.len() - 1].to_vec()).unwrap(), None);
        }
    }

    #[test]
    fn reads_unmasked_server_frames_back_to_back() {
        let mut buf = vec![0x81, 3, b'a', b'b', b'c', 0x01, 1, b'x', 0x80, 1, b'y', 0x89, 0];
        let f = next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((f.fin, f.opcode, &buf[f.start..f.end]), (true, OP_TEXT, &b"abc"[..]));
        let rest = &mut buf[f.end..];
        let g = next_frame(rest).unwrap().unwrap();
        assert_eq!((g.fin, g.opcode), (false, OP_TEXT));
        let h = next_frame(&mut rest[g.end..]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode), (true, OP_CONT));
        let tail = g.end + h.end;
        assert_eq!(next_frame(&mut rest[tail..]).unwrap().unwrap().opcode, OP_PING);
        let mut huge = vec![0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 0];
        assert!(next_frame(&mut huge).is_err());
    }

    #[test]
    fn checks_the_upgrade_answer() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x01\x00";
        assert_eq!(check_upgrade(ok.as_bytes(), key).unwrap(), Some(ok.len() - 2));
        assert_eq!(check_upgrade(&ok.as_bytes()[..40], key).unwrap(), None);
        let wrong = ok.replace("s3pP", "xxxx");
        assert!(check_upgrade(wrong.as_bytes(), key).is_err());
        assert!(check_upgrade(b"HTTP/1.1 400 Bad Request\r\n\r\n", key).is_err());
        let req = upgrade_request("h:1", "/v1/ws", key, Some("courier.v1"));
        assert!(
            req.starts_with("GET /v1/ws HTTP/1.1\r\nHost: h:1\r\n") && req.ends_with("courier.v1\r\n\r\n")
        );
    }
}
