//! Video frames from the Rust process to the webview, without JSON.
//!
//! The media engine hands decoded pictures (the peer's, and this device's
//! self-view) as packed I420 ([`courier_media::picture`]) to a
//! [`FrameStore`], which keeps only the latest of each. The page pulls:
//! `call_frame(remote, after, max_width, max_height)` waits until a picture
//! newer than `after` exists, then answers it as raw IPC bytes
//! ([`FrameBytes`], no base64, no JSON), scaled down to the size the page
//! draws it at. A page that draws slowly skips pictures instead of queueing
//! them; nothing is sent while nobody asks. The page turns the planes into
//! RGBA itself (ui/src/utils/callFrames.ts): a picture crosses to the web
//! process as 1.5 bytes a pixel, not 4 (that crossing was the cost).
//!
//! The answer is the I420 planes followed by a [`TRAILER_LEN`]-byte
//! trailer, little-endian: `seq u32, width u32, height u32, at_ms f64`
//! (when the engine delivered it, Unix ms: the page measures latency with
//! it). An empty answer means no picture came in time.

use bytes::Bytes;
use courier_media::picture::{i420_len, scale_i420};
use std::sync::Mutex;
use std::time::Duration;
use tauri::ipc::{InvokeResponseBody, IpcResponse};

/// The bytes after the pixels.
pub const TRAILER_LEN: usize = 20;
/// How long one `call_frame` waits for a new picture.
pub const WAIT: Duration = Duration::from_millis(500);
/// The largest picture a page may ask for (bounds the copy).
pub const MAX_SIDE: u32 = 1920;

/// One decoded picture.
#[derive(Clone)]
struct Frame {
    seq: u32,
    width: u32,
    height: u32,
    i420: Bytes,
    at_ms: f64,
}

#[derive(Default)]
struct Slot {
    latest: Mutex<Option<Frame>>,
    seq: Mutex<u32>,
    changed: tokio::sync::Notify,
}

/// The latest remote and local picture of the running call.
#[derive(Default)]
pub struct FrameStore {
    local: Slot,
    remote: Slot,
    /// Time spent preparing answers, for the per-frame cost (µs, count).
    cost: Mutex<(u128, u64)>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FrameStore {
    fn slot(&self, remote: bool) -> &Slot {
        if remote { &self.remote } else { &self.local }
    }

    /// Keeps a picture as the latest of its side (a picture whose size
    /// does not match its dimensions is dropped).
    pub fn put(&self, remote: bool, width: u32, height: u32, i420: Bytes) {
        if width == 0 || height == 0 || i420_len(width, height) != i420.len() {
            tracing::debug!("dropped a {width}x{height} frame of {} bytes", i420.len());
            return;
        }
        let slot = self.slot(remote);
        let seq = {
            let mut s = guard(&slot.seq);
            *s = s.wrapping_add(1).max(1);
            *s
        };
        *guard(&slot.latest) = Some(Frame { seq, width, height, i420, at_ms: now_ms() });
        slot.changed.notify_waiters();
    }

    /// Forgets the pictures (a call ended or a new one starts); waiting
    /// pages get an empty answer.
    pub fn reset(&self) {
        for slot in [&self.local, &self.remote] {
            *guard(&slot.latest) = None;
            slot.changed.notify_waiters();
        }
    }

    /// The latest picture of a side newer than `after`, waiting up to
    /// `wait` for one, scaled to fit `max_w`×`max_h`.
    pub async fn next(&self, remote: bool, after: u32, max_w: u32, max_h: u32, wait: Duration) -> FrameBytes {
        let slot = self.slot(remote);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = slot.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let frame = guard(&slot.latest).clone();
            if let Some(f) = frame.filter(|f| f.seq != after) {
                let started = std::time::Instant::now();
                let out = encode(&f, max_w.min(MAX_SIDE), max_h.min(MAX_SIDE));
                let mut cost = guard(&self.cost);
                cost.0 += started.elapsed().as_micros();
                cost.1 += 1;
                return FrameBytes(out);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return FrameBytes(Vec::new());
            }
        }
    }

    /// How many pictures the engine delivered (local, remote) since the
    /// store was made.
    pub fn delivered(&self) -> (u32, u32) {
        (*guard(&self.local.seq), *guard(&self.remote.seq))
    }

    /// Mean time spent preparing one answer (µs) and how many were sent.
    pub fn mean_cost_us(&self) -> (f64, u64) {
        let (total, n) = *guard(&self.cost);
        (if n == 0 { 0.0 } else { total as f64 / n as f64 }, n)
    }
}

/// The size a `w`×`h` picture is shown at inside `max_w`×`max_h`: never
/// larger than it is, the aspect ratio kept, at least 1×1. A zero bound
/// means no bound.
pub fn fit(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    let max_w = if max_w == 0 { w } else { max_w };
    let max_h = if max_h == 0 { h } else { max_h };
    if w <= max_w && h <= max_h {
        return (w, h);
    }
    // Scale by the tighter side, in integers.
    let (nw, nh) = if u64::from(max_w) * u64::from(h) <= u64::from(max_h) * u64::from(w) {
        (max_w, (u64::from(h) * u64::from(max_w) / u64::from(w)) as u32)
    } else {
        ((u64::from(w) * u64::from(max_h) / u64::from(h)) as u32, max_h)
    };
    (nw.max(1), nh.max(1))
}

/// The planes at the fitted size (nearest neighbour: cheap, and the page
/// smooths when it draws), then the trailer.
fn encode(f: &Frame, max_w: u32, max_h: u32) -> Vec<u8> {
    let (w, h) = fit(f.width, f.height, max_w, max_h);
    let mut out = Vec::with_capacity(i420_len(w, h) + TRAILER_LEN);
    if (w, h) == (f.width, f.height) {
        out.extend_from_slice(&f.i420);
    } else {
        scale_i420(&f.i420, f.width, f.height, w, h, &mut out);
    }
    out.extend_from_slice(&f.seq.to_le_bytes());
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&f.at_ms.to_le_bytes());
    out
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// A picture as raw IPC bytes (an `ArrayBuffer` in the page; specta
/// types it as the byte list it is).
#[derive(specta::Type)]
pub struct FrameBytes(pub Vec<u8>);

impl IpcResponse for FrameBytes {
    fn body(self) -> tauri::Result<InvokeResponseBody> {
        Ok(InvokeResponseBody::Raw(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32) -> Bytes {
        // Each sample holds its own coordinates, so scaling can be checked:
        // Y = x + 10·y, U = 100 + x + 10·y, V = 200 + x + 10·y.
        let mut v = Vec::new();
        for base in [0u8, 100, 200] {
            let (pw, ph) = if base == 0 { (w, h) } else { (w.div_ceil(2), h.div_ceil(2)) };
            for y in 0..ph {
                for x in 0..pw {
                    v.push(base + x as u8 + 10 * y as u8);
                }
            }
        }
        v.into()
    }

    fn trailer(b: &[u8]) -> (u32, u32, u32) {
        let t = &b[b.len() - TRAILER_LEN..];
        let n = |i: usize| u32::from_le_bytes(t[i..i + 4].try_into().unwrap());
        (n(0), n(4), n(8))
    }

    #[test]
    fn fit_keeps_the_aspect_and_never_enlarges() {
        assert_eq!(fit(640, 480, 320, 320), (320, 240));
        assert_eq!(fit(640, 480, 1000, 240), (320, 240));
        assert_eq!(fit(640, 480, 1280, 720), (640, 480));
        assert_eq!(fit(640, 480, 0, 0), (640, 480));
        assert_eq!(fit(1000, 1, 10, 10), (10, 1));
    }

    #[tokio::test]
    async fn the_page_gets_the_latest_picture_scaled_with_its_trailer() {
        let store = FrameStore::default();
        store.put(true, 4, 2, picture(4, 2));
        store.put(true, 4, 2, picture(4, 2));
        let FrameBytes(b) = store.next(true, 0, 2, 2, WAIT).await;
        assert_eq!(trailer(&b), (2, 2, 1), "the second picture, at half size");
        assert_eq!(b.len(), i420_len(2, 1) + TRAILER_LEN);
        assert_eq!(&b[..4], &[0, 2, 100, 200], "the nearest samples of row 0: Y, then one U and one V");
        // The local side is apart.
        let FrameBytes(none) = store.next(false, 0, 0, 0, Duration::ZERO).await;
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn a_page_that_has_the_latest_waits_and_then_gets_nothing() {
        let store = FrameStore::default();
        store.put(true, 1, 1, picture(1, 1));
        let FrameBytes(b) = store.next(true, 1, 0, 0, Duration::ZERO).await;
        assert!(b.is_empty(), "seq 1 was already drawn");
    }

    #[tokio::test]
    async fn a_waiting_page_wakes_for_a_new_picture() {
        let store = std::sync::Arc::new(FrameStore::default());
        let s = store.clone();
        let waiter = tokio::spawn(async move { s.next(false, 0, 0, 0, Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        store.put(false, 1, 1, picture(1, 1));
        let FrameBytes(b) = waiter.await.unwrap();
        assert_eq!(trailer(&b), (1, 1, 1));
    }

    #[tokio::test]
    async fn pictures_of_the_wrong_size_and_ended_calls_are_not_shown() {
        let store = FrameStore::default();
        store.put(true, 4, 4, Bytes::from_static(&[0; 8]));
        assert!(store.next(true, 0, 0, 0, Duration::ZERO).await.0.is_empty());
        store.put(true, 1, 1, picture(1, 1));
        store.reset();
        assert!(store.next(true, 0, 0, 0, Duration::ZERO).await.0.is_empty());
    }
}
