//! Writing queued events in place: when the session's task wakes with only
//! events to write (no request waiting for its answer), it takes them from
//! its queue while the socket accepts them and flushes, without waiting and
//! without a boxed step. Fan-out to an idle member then costs its task one
//! wake-up and one socket write. What the socket does not take stays in the
//! queue (a frame taken is buffered, in order) for `write_out`, which waits
//! for the socket with the write timeout and the close request.

use super::WRITE_BATCH;
use crate::hub::SessionHandle;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket};
use std::pin::Pin;
use std::task::{Context, Poll};

/// What [`write_now`] did.
pub(super) enum Now {
    /// The queue (up to a batch) is written and flushed.
    Written,
    /// The socket would block (or a batch was taken): what was taken is
    /// buffered in the socket's writer, in order, and `write_out` writes
    /// the rest with its timeout.
    Blocked,
    /// The socket failed.
    Gone,
}

/// Writes queued events without waiting: frames are taken from the queue
/// only while the socket accepts them, so order with what `write_out`
/// writes later is kept.
pub(super) fn write_now(
    ws: &mut WebSocket,
    st: &AppState,
    handle: &SessionHandle,
    cx: &mut Context<'_>,
) -> Now {
    use futures_util::Sink;
    let mut ws = Pin::new(ws);
    let mut n = 0;
    let now = loop {
        if n == WRITE_BATCH {
            break Now::Blocked;
        }
        match ws.as_mut().poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => break Now::Gone,
            Poll::Pending => break Now::Blocked,
        }
        let Some(frame) = handle.pop() else {
            break match ws.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    // Everything taken is in the socket: events may now be
                    // written into it directly.
                    handle.settle();
                    Now::Written
                }
                Poll::Ready(Err(_)) => Now::Gone,
                Poll::Pending => Now::Blocked,
            };
        };
        if ws.as_mut().start_send(Message::Text(frame)).is_err() {
            break Now::Gone;
        }
        n += 1;
    };
    st.metrics.frames_out.inc_by(n as u64);
    now
}
