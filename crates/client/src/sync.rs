//! Sync and gap filling, and the handling of pushed events.
//!
//! After every (re)connect: `sync`, then page `history after=<synced_seq>`
//! for every conversation whose server `last_seq` is ahead, then live. A
//! live `msg` that leaves a hole (its seq is not `synced_seq + 1`) triggers
//! the same paged fetch. Everything goes through
//! [`Store::apply_messages`](crate::store::Store::apply_messages), which
//! dedupes by `conv+seq` and `sender+cid`, so overlapping fetches, live
//! events and send oks converge on one copy of each message.

use crate::client::Inner;
use crate::conn::{RequestError, Session};
use crate::events::ClientEvent;
use crate::model::InviteView;
use crate::model::now_ms;
use crate::store::StoreError;
use courier_proto::{Conv, Event, FEATURE_V1_1, HistoryOk, Msg, SyncOk};
use serde_json::json;
use std::sync::Arc;

/// Pages with more new messages than this are announced as one
/// [`ClientEvent::HistoryFilled`] instead of one event per message.
const PER_MESSAGE_EVENTS_UP_TO: usize = 20;

/// Why syncing stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A request failed.
    #[error("request failed: {0}")]
    Request(#[from] RequestError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server sent something that does not parse.
    #[error("malformed reply: {0}")]
    Protocol(#[from] serde_json::Error),
}

/// Runs the initial sync of a session. Returns (conversations, fetched).
pub(crate) async fn full_sync(inner: &Arc<Inner>, session: &Session) -> Result<(usize, usize), SyncError> {
    let ok: SyncOk = serde_json::from_value(session.call(json!({"op": "sync"})).await?)?;
    let me = inner.me.as_str();
    let v1_1 = inner.has_feature(FEATURE_V1_1);
    for c in &ok.conversations {
        inner.store.apply_sync_conv(me, c, v1_1)?;
    }
    for inv in &ok.invites {
        inner.store.upsert_invite(inv)?;
        inner.emit(ClientEvent::Invite { invite: InviteView::new(inv.clone(), me, now_ms()) });
    }
    // Invitations answered, canceled or expired while this device was away.
    for inv in &ok.recent_invites {
        if inner.store.settle_invite(inv)? {
            inner.emit(ClientEvent::Invite { invite: InviteView::new(inv.clone(), me, now_ms()) });
        }
    }
    let mut fetched = 0;
    for c in &ok.conversations {
        if inner.store.synced_seq(&c.conv)? < c.last_seq {
            fetched += skip_refused(&c.conv, fill(inner, session, &c.conv, Some(c.last_seq)).await)?;
        }
    }
    for c in &ok.conversations {
        inner.emit_conversation(&c.conv);
    }
    Ok((ok.conversations.len(), fetched))
}

/// Pages `history after=synced_seq` until the store holds `until` (or the
/// server says there is no more). Returns how many messages were added.
pub(crate) async fn fill(
    inner: &Arc<Inner>,
    session: &Session,
    conv: &Conv,
    until: Option<u64>,
) -> Result<usize, SyncError> {
    let page = inner.hello_limits().history_page.max(1);
    let mut added = 0;
    loop {
        let after = inner.store.synced_seq(conv)?;
        if until.is_some_and(|u| after >= u) {
            break;
        }
        let reply =
            session.call(json!({"op": "history", "conv": conv, "after": after, "limit": page})).await?;
        let h: HistoryOk = serde_json::from_value(reply)?;
        let n = apply(inner, &h.messages, Source::Page)?;
        added += n;
        let now = inner.store.synced_seq(conv)?;
        if !h.more || now == after {
            break;
        }
    }
    if added > PER_MESSAGE_EVENTS_UP_TO {
        inner.emit(ClientEvent::HistoryFilled { conv: conv.clone(), added });
    }
    inner.ack_wake.notify_one();
    Ok(added)
}

/// A conversation whose history the server refuses (e.g. the user was
/// removed meanwhile) is skipped, not retried in a reconnect loop.
fn skip_refused(conv: &Conv, r: Result<usize, SyncError>) -> Result<usize, SyncError> {
    match r {
        Err(SyncError::Request(RequestError::Server(e))) => {
            tracing::warn!(%conv, code = %e.code, "history refused; skipping this conversation");
            Ok(0)
        }
        other => other,
    }
}

/// Where messages being applied come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A pushed `msg` event.
    Live,
    /// A `history` page (with aggregates when the server is v1.1).
    Page,
}

/// Stores messages and reports them: content messages as added, relations
/// only through the targets they changed. Returns how many rows were
/// stored (content and relations).
fn apply(inner: &Arc<Inner>, msgs: &[Msg], source: Source) -> Result<usize, SyncError> {
    let applied = if source == Source::Page && inner.has_feature(FEATURE_V1_1) {
        inner.store.apply_page(&inner.me, msgs)?
    } else {
        inner.store.apply_messages(&inner.me, msgs)?
    };
    let stored = applied.added.len() + applied.relations;
    if source == Source::Live || stored <= PER_MESSAGE_EVENTS_UP_TO {
        for m in applied.added {
            inner.emit(ClientEvent::MessageAdded { message: m });
        }
        for m in applied.targets {
            inner.emit(ClientEvent::MessageUpdated { message: m });
        }
    }
    for m in applied.updated {
        inner.emit(ClientEvent::MessageUpdated { message: m });
    }
    for conv in &applied.pins {
        inner.emit_conversation(conv);
    }
    Ok(stored)
}

/// Handles one pushed event.
pub(crate) async fn handle_event(inner: &Arc<Inner>, session: &Session, ev: Event) -> Result<(), SyncError> {
    let me = inner.me.as_str();
    match ev {
        Event::Msg(m) => {
            let (conv, seq) = (m.conv.clone(), m.seq);
            apply(inner, std::slice::from_ref(&m), Source::Live)?;
            if inner.store.synced_seq(&conv)? < seq {
                tracing::debug!(%conv, seq, "gap detected; fetching");
                skip_refused(&conv, fill(inner, session, &conv, Some(seq)).await)?;
            }
            inner.ack_wake.notify_one();
            inner.emit_conversation(&conv);
        }
        Event::Receipt { conv, user, recv_seq, read_seq } => {
            for m in inner.store.apply_receipt(me, &conv, recv_seq, read_seq, 200)? {
                inner.emit(ClientEvent::MessageUpdated { message: m });
            }
            inner.emit(ClientEvent::Receipt { conv: conv.clone(), user, recv_seq, read_seq });
            inner.emit_conversation(&conv);
        }
        Event::Read { conv, seq } => {
            inner.store.apply_read_elsewhere(&conv, seq)?;
            inner.emit_conversation(&conv);
        }
        Event::Typing { conv, user } => inner.emit(ClientEvent::Typing { conv, user }),
        Event::Signal { from, to, body, ts } => inner.emit(ClientEvent::Signal { from, to, body, ts }),
        Event::Member { channel, user, joined, removed, role } => {
            let conv = Conv::channel(&channel);
            // A role change comes as `joined` with a role: not a new member.
            if user == me && joined && role.is_none() {
                inner.store.ensure_conversation(me, &conv, 0)?;
                fill(inner, session, &conv, None).await?;
                inner.emit_conversation(&conv);
            }
            // Removed by a moderator: the server no longer lets this user
            // in; the messages stay in the local store (like `leave`).
            if user == me && removed {
                inner.store.forget_conversation(&conv)?;
            }
            inner.emit(ClientEvent::Member { channel, user, joined, removed, role });
        }
        Event::Presence(p) => {
            inner.emit(ClientEvent::Presence { user: p.user, online: p.online, last_seen: p.last_seen })
        }
        Event::Profile(p) => {
            inner.store.upsert_profiles(std::slice::from_ref(&p))?;
            inner.emit(ClientEvent::Profile { profile: p });
        }
        Event::Invite { invite } | Event::InviteState { invite } => {
            inner.store.upsert_invite(&invite)?;
            inner.emit(ClientEvent::Invite { invite: InviteView::new(invite, me, now_ms()) });
        }
        Event::TokenExpiring { exp } => inner.emit(ClientEvent::TokenExpiring { exp }),
    }
    Ok(())
}

/// Sends the receive and read cursors the server does not know yet. A
/// cursor the server refuses (e.g. a channel left meanwhile) is dropped
/// rather than retried forever.
pub(crate) async fn flush_cursors(inner: &Arc<Inner>, session: &Session) -> Result<(), SyncError> {
    for (conv, seq) in inner.store.reads_to_send()? {
        tolerate(session.call(json!({"op": "read", "conv": conv, "seq": seq})).await)?;
        inner.store.read_sent(&conv, seq)?;
    }
    for (conv, seq) in inner.store.acks_to_send()? {
        tolerate(session.call(json!({"op": "ack", "conv": conv, "seq": seq})).await)?;
        inner.store.acked(&conv, seq)?;
    }
    Ok(())
}

fn tolerate(r: Result<serde_json::Value, RequestError>) -> Result<(), RequestError> {
    match r {
        Ok(_) => Ok(()),
        Err(RequestError::Server(e)) => {
            tracing::debug!(code = %e.code, "cursor refused by the server");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
