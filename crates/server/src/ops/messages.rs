//! Messages and everything riding on conversations: `send` (and the push
//! API's equivalent), `history`, `sync`, receipts, `typing` and `signal`.

use super::{OpError, OpResult, SessionCtx, check_body_size, invites, json_len, relations};
use crate::clock::now_ms;
use crate::hub::ChannelCache;
use crate::state::{AppState, event_frame};
use crate::store::{Appended, NewMessage, Page, QueuedAppend, Relation, RelationAppend, StoreResult};
use courier_proto::{
    Conv, Event, HistoryOk, Invite, InviteState, Msg, SendOk, SendReq, SyncConv, SyncOk, Target,
    body_mentions, is_relation_kind,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Who is sending: a session, or a back end through `POST /v1/push`.
pub enum Sender<'a> {
    /// A user's session; channel membership is required.
    Session(&'a SessionCtx),
    /// The push API, on behalf of `from`; membership is not required.
    Push(&'a str),
}

/// Validates, stores and delivers one message. Shared by `send` and push.
///
/// # Errors
/// `too_large`, `forbidden` (not a member; a relation not the sender's to
/// make; a call record not the sender's to write), `not_found` (`reply_to`,
/// a relation's target or a call record's invitation unknown),
/// `conflict` (a relation to a recalled message, or past its window),
/// `internal` (storage).
pub async fn store_and_deliver(
    st: &Arc<AppState>,
    sender: Sender<'_>,
    req: SendReq,
) -> Result<SendOk, OpError> {
    let (except, from) = match &sender {
        Sender::Session(s) => (Some(s.handle.key), &*s.user),
        Sender::Push(from) => (None, *from),
    };
    let appended = match check(st, &sender, req).await? {
        Checked::Answered(ok) => return Ok(ok),
        Checked::Content(msg) => st.store.append(msg).await?,
        Checked::Relation(msg, rel) => store_relation(st, msg, rel).await?,
    };
    let ok = delivered(st, appended, except).await?;
    // A message written for a user (push API, call record) counts for
    // presence like one the user sent (§8: the stored check counts it).
    if !ok.dup && matches!(ok.conv, Conv::Dm(..)) {
        super::people::dm_written(st, &ok.conv, from);
    }
    Ok(ok)
}

/// A send after its checks.
enum Checked {
    /// Answered without storing anything: a retry of a stored message.
    Answered(SendOk),
    /// A content message to store.
    Content(NewMessage),
    /// A relation message to store (authorised when stored).
    Relation(NewMessage, Relation),
}

/// Everything a send is checked for before it is stored (see
/// [`store_and_deliver`] for the errors).
async fn check(st: &AppState, sender: &Sender<'_>, mut req: SendReq) -> Result<Checked, OpError> {
    let from = match sender {
        Sender::Session(s) => &*s.user,
        Sender::Push(from) => *from,
    };
    let relation = if is_relation_kind(&req.kind) {
        let rel = Relation::parse(&req.kind, &req.body)
            .ok_or_else(|| OpError::bad_request(format!("malformed {} body", req.kind)))?;
        // A retry is answered before anything is checked again: a relation
        // accepted just inside its window stays accepted.
        if let Some(original) = st.store.message_by_cid(from, &req.cid).await? {
            return Ok(Checked::Answered(send_ok(&original, true)));
        }
        Some(rel)
    } else {
        None
    };
    check_body_size(st, "body", &req.body)?;
    let conv = req.to.conv(from).ok_or_else(|| OpError::bad_request("messages go to a user or a channel"))?;
    if let Some(iid) = courier_proto::request::call_record_iid(&req.kind, &req.body) {
        invites::authorize_record(st, from, &conv, iid).await?;
    }
    let channel = match &conv {
        Conv::Channel(name) => match (st.channel_entry(name).await?, sender) {
            (Some(c), Sender::Session(_)) if c.is_member(from) => Some(c),
            (Some(c), Sender::Push(_)) => Some(c),
            (_, Sender::Session(_)) => {
                // A retry of a message stored before the sender left (or was
                // removed) is still answered as its duplicate: it was sent.
                return match st.store.message_by_cid(from, &req.cid).await? {
                    Some(original) => Ok(Checked::Answered(send_ok(&original, true))),
                    None => Err(OpError::forbidden("not a member of this channel")),
                };
            }
            (None, Sender::Push(_)) => return Err(OpError::bad_request("no such channel")),
        },
        Conv::Dm(..) => None,
    };
    if let Some(reply_to) = &req.reply_to
        && st.store.message(&conv, reply_to).await?.is_none()
    {
        return Err(OpError::not_found("reply_to is not a message of this conversation"));
    }
    let mentions = match &relation {
        None if req.kind == "text" => keep_member_mentions(&mut req.body, &conv, channel.as_deref()),
        _ => Vec::new(),
    };
    let msg = NewMessage {
        conv,
        from: from.to_owned(),
        to: req.to,
        cid: req.cid,
        kind: req.kind,
        body: req.body,
        reply_to: req.reply_to,
        ts: now_ms(),
        mentions,
    };
    Ok(match relation {
        None => Checked::Content(msg),
        Some(rel) => Checked::Relation(msg, rel),
    })
}

/// Authorises and stores a relation message.
async fn store_relation(st: &AppState, msg: NewMessage, rel: Relation) -> Result<Appended, OpError> {
    relations::authorize(st, &msg.from, &msg.conv, &rel).await?;
    match st.store.append_relation_capped(msg, rel, relations::relation_caps(st)).await? {
        RelationAppend::Stored(a) => Ok(a),
        RelationAppend::NoTarget => {
            Err(OpError::not_found("body.target is not a message of this conversation"))
        }
        RelationAppend::Recalled => Err(OpError::conflict("the message was recalled")),
        RelationAppend::Capped(cap) => Err(relations::relation_capped(st, cap)),
    }
}

/// The answer to a stored send; a message stored now (not a retry) is
/// delivered to its conversation first.
async fn delivered(st: &AppState, appended: Appended, except: Option<u64>) -> Result<SendOk, OpError> {
    let ok = send_ok(&appended.msg, appended.dup);
    if !appended.dup {
        st.metrics.messages_stored.inc();
        st.deliver_msg(appended.msg, except).await?;
    }
    Ok(ok)
}

fn send_ok(m: &Msg, dup: bool) -> SendOk {
    SendOk { conv: m.conv.clone(), seq: m.seq, mid: m.mid.clone(), ts: m.ts, dup }
}

/// Keeps only the mentions of members of the conversation (both parties of
/// a DM), rewriting `body.mentions` (dropped when none is left). Returns
/// the users kept.
fn keep_member_mentions(
    body: &mut Map<String, Value>,
    conv: &Conv,
    channel: Option<&ChannelCache>,
) -> Vec<String> {
    if !body.contains_key("mentions") {
        return Vec::new();
    }
    let kept: Vec<String> = body_mentions(body)
        .into_iter()
        .filter(|u| match channel {
            Some(c) => c.is_member(u),
            None => conv.is_dm_party(u),
        })
        .collect();
    if kept.is_empty() {
        body.remove("mentions");
    } else {
        body.insert("mentions".into(), json!(kept));
    }
    kept
}

/// `send`.
pub async fn send(st: &Arc<AppState>, ses: &SessionCtx, req: SendReq) -> OpResult {
    let ok = match queue_send(st, ses, req).await? {
        QueuedSend::Answered(ok) => ok,
        QueuedSend::Storing(storing) => sent(st, ses, storing.stored.await, storing.started).await?,
    };
    Ok(serde_json::to_value(ok).expect("serializes"))
}

/// A session's `send` whose checks passed.
pub enum QueuedSend {
    /// Answered at once (a retry of a stored message).
    Answered(SendOk),
    /// Waiting for its commit; finish it with [`sent`].
    Storing(Storing),
}

/// A send on its way to disk.
pub struct Storing {
    /// Completes when the message is durable.
    pub stored: QueuedAppend,
    /// When the send was taken up (for the send latency metric).
    pub started: Instant,
}

/// The first half of a session's `send`, for a session that pipelines its
/// requests: checks it and queues the message for storage. Sends queued
/// one after another by a session are stored in that order (their seqs
/// follow it), and [`sent`], called in the same order, delivers them in
/// it. A relation is stored before this returns.
///
/// # Errors
/// As [`store_and_deliver`].
pub async fn queue_send(st: &AppState, ses: &SessionCtx, req: SendReq) -> Result<QueuedSend, OpError> {
    let started = Instant::now();
    let stored = match check(st, &Sender::Session(ses), req).await? {
        Checked::Answered(ok) => return Ok(QueuedSend::Answered(ok)),
        Checked::Content(msg) => st.store.queue_append(msg).await,
        Checked::Relation(msg, rel) => {
            let appended = store_relation(st, msg, rel).await?;
            Box::pin(std::future::ready(Ok(appended))) as QueuedAppend
        }
    };
    Ok(QueuedSend::Storing(Storing { stored, started }))
}

/// The second half of a session's `send`: once stored, delivers the
/// message and returns the answer.
///
/// # Errors
/// `internal` when the message could not be stored.
pub async fn sent(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    stored: StoreResult<Appended>,
    started: Instant,
) -> Result<SendOk, OpError> {
    let ok = delivered(st, stored?, Some(ses.handle.key)).await?;
    st.metrics.send_latency.observe(started.elapsed().as_secs_f64());
    if !ok.dup && matches!(ok.conv, Conv::Dm(..)) {
        super::people::dm_written(st, &ok.conv, &ses.user);
    }
    Ok(ok)
}

async fn require_member(st: &AppState, ses: &SessionCtx, conv: &Conv) -> Result<(), OpError> {
    if st.is_conv_member(conv, &ses.user).await? {
        Ok(())
    } else {
        Err(OpError::forbidden("not a member of this conversation"))
    }
}

/// `history`.
pub async fn history(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    conv: Conv,
    after: Option<u64>,
    before: Option<u64>,
    limit: Option<u32>,
) -> OpResult {
    require_member(st, ses, &conv).await?;
    let max = st.config.limits.history_page;
    let limit = limit.unwrap_or(max).clamp(1, max);
    let page = match (after, before) {
        (Some(a), _) => Page::After(a),
        (None, Some(b)) => Page::Before(b),
        (None, None) => Page::Latest,
    };
    let (mut messages, more) = st.store.history(&conv, page, limit).await?;
    let newest_first = !matches!(page, Page::After(_));
    let fit = fit_page(&mut messages, newest_first, reply_budget(st), &ses.user);
    let mut ok = serde_json::to_value(HistoryOk { messages, more: more || fit.dropped }).expect("serializes");
    if let Some(i) = fit.trimmed {
        ok["messages"][i]["reactions_partial"] = json!(true);
    }
    Ok(ok)
}

/// Bytes a reply's payload may take: `max_reply_bytes` less room for the
/// envelope (`{"re":<id>,"ok":...}`).
fn reply_budget(st: &AppState) -> usize {
    st.config.max_reply_bytes.saturating_sub(REPLY_ENVELOPE)
}

/// Room kept for a reply's envelope around its payload.
const REPLY_ENVELOPE: usize = 1024;

/// What [`fit_page`] did to a page.
struct Fit {
    /// Messages were left out at the far end of the paging direction.
    dropped: bool,
    /// The index of a message whose reaction lists were shortened.
    trimmed: Option<usize>,
}

/// Keeps as much of a `history` page as fits in `budget` bytes (protocol
/// §8 v1.2: no reply past the cap). Messages are taken in the paging
/// direction (oldest first for `after`, newest first otherwise) and the
/// rest are left for the next page, so `more` is then true and paging
/// still yields every message once, in ascending `seq`.
///
/// One message alone over the budget can only be so through its reaction
/// aggregate (validation keeps `max_reply_bytes` above twice the largest
/// frame, and a body fits in one frame): it is returned with its longest
/// reactor lists shortened, `reader`'s own entries kept, and the reply
/// marks it `reactions_partial: true`.
fn fit_page(messages: &mut Vec<Msg>, newest_first: bool, budget: usize, reader: &str) -> Fit {
    let n = messages.len();
    let mut used = json_len(&HistoryOk { messages: Vec::new(), more: true });
    let mut kept = 0;
    let mut trimmed = None;
    for k in 0..n {
        let i = if newest_first { n - 1 - k } else { k };
        let size = json_len(&messages[i]) + 1;
        if used + size <= budget {
            used += size;
            kept += 1;
            continue;
        }
        if kept == 0 {
            trim_reactions(&mut messages[i], budget.saturating_sub(used + 1), reader);
            trimmed = Some(i);
            kept = 1;
        }
        break;
    }
    if newest_first {
        messages.drain(..n - kept);
        trimmed = trimmed.map(|_| 0);
    } else {
        messages.truncate(kept);
    }
    Fit { dropped: kept < n, trimmed }
}

/// Shortens `m`'s reactor lists, longest first, until it takes at most
/// `room` bytes (or has no reactions left to shorten). `reader` keeps its
/// own entries, so its toggles still show.
fn trim_reactions(m: &mut Msg, room: usize, reader: &str) {
    let mut size = json_len(m);
    while size > room {
        let Some(key) = m
            .reactions
            .iter()
            .filter(|(_, users)| users.iter().any(|u| u != reader))
            .max_by_key(|(_, users)| users.len())
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        let users = m.reactions.get_mut(&key).expect("key listed");
        // Each id dropped saves its quotes and comma besides itself.
        let mut saved = 0;
        while saved < size - room {
            let Some(pos) = users.iter().rposition(|u| u != reader) else { break };
            saved += users.remove(pos).len() + 3;
        }
        if users.is_empty() {
            m.reactions.remove(&key);
        }
        size = json_len(m);
    }
}

/// `sync`: every conversation with cursors, and pending invitations (those
/// addressed to this user count as received from now on).
pub async fn sync(st: &Arc<AppState>, ses: &SessionCtx) -> OpResult {
    let user = &*ses.user;
    let (convs, more) = st.store.recent_conversations(user, SYNC_CONVERSATIONS).await?;
    let conversations = convs
        .into_iter()
        .map(|c| {
            let (kind, peer, channel) = match &c.conv {
                Conv::Dm(..) => ("dm", c.conv.peer_of(user).map(str::to_owned), None),
                Conv::Channel(name) => ("channel", None, Some(name.clone())),
            };
            SyncConv {
                kind: kind.into(),
                peer,
                channel,
                last_seq: c.last_seq,
                last_ts: c.last_ts,
                read_seq: c.cursor.read_seq,
                peer_read_seq: c.peer_cursor.map(|p| p.read_seq),
                peer_recv_seq: c.peer_cursor.map(|p| p.recv_seq),
                conv: c.conv,
                unread: c.unread,
                mentions_unread: c.mentions_unread,
                pins: c.pins,
            }
        })
        .collect();
    let invites = st.store.pending_invites_for(user, SYNC_INVITES).await?;
    // Longer than the largest ttl, so an invitation answered while a party
    // was offline is reported to it on its next sync.
    const RECENT_MS: i64 = 10 * 60 * 1000;
    let recent_invites = st
        .store
        .recent_invites_for(user, now_ms() - RECENT_MS, SYNC_INVITES)
        .await?
        .into_iter()
        // A failed invitation is only ever reported in its caller's ok (§7).
        .filter(|i| i.state.is_final() && i.state != InviteState::Failed)
        .collect();
    let mut ok = SyncOk { conversations, invites, recent_invites };
    let truncated = fit_sync(&mut ok, reply_budget(st)) || more;
    // Only what the reply carries counts as received (and "received":true
    // is shorter than false, so the reply still fits), and a call to
    // oneself only on another device than the one that sent it (§7).
    let device = crate::calls::Party::of(ses);
    for inv in ok.invites.iter_mut().filter(|i| i.to == user && !i.received) {
        if !matches!(crate::calls::is_self_call_sender(st, inv, &device).await, Ok(false)) {
            continue;
        }
        st.invite_received(&inv.iid).await;
        inv.received = true;
    }
    let mut ok = serde_json::to_value(ok).expect("serializes");
    if truncated {
        // An extension: invitations or the least recent conversations
        // were left out.
        ok["truncated"] = json!(true);
    }
    Ok(ok)
}

/// Most conversations one `sync` lists: the most recently active. The rows
/// of the others are never read, so the work and memory of a sync stay
/// bounded however many DMs others open with the user (any user may write
/// to any id, 72,000 messages an hour each); a conversation left out
/// comes back with its next message.
pub const SYNC_CONVERSATIONS: u32 = 10_000;

/// Most pending and most recent invitations one `sync` lists (each list
/// its newest, by creation): invitations from many callers cannot make the
/// reply, or the work behind it, grow without bound.
pub const SYNC_INVITES: u32 = 100;

/// Keeps a `sync` ok within `budget` bytes (protocol §8 v1.2). The
/// conversations are what §4 promises, so the invitations go first: the
/// recent (final) ones, then the pending ones, oldest first; then, only for
/// a user in tens of thousands of conversations, those with the oldest
/// activity. The order of what stays is kept. Returns whether anything was
/// left out.
fn fit_sync(ok: &mut SyncOk, budget: usize) -> bool {
    let mut total = json_len(ok);
    if total <= budget {
        return false;
    }
    shed_oldest(&mut ok.recent_invites, &mut total, budget);
    shed_oldest(&mut ok.invites, &mut total, budget);
    let mut order: Vec<usize> = (0..ok.conversations.len()).collect();
    order.sort_by_key(|&i| ok.conversations[i].last_ts);
    let mut drop = vec![false; ok.conversations.len()];
    for i in order {
        if total <= budget {
            break;
        }
        total -= json_len(&ok.conversations[i]) + 1;
        drop[i] = true;
    }
    let mut i = 0;
    ok.conversations.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
    true
}

/// Leaves out invitations from the front of `list` (the oldest) until
/// `total`, the reply's size, is within `budget`.
fn shed_oldest(list: &mut Vec<Invite>, total: &mut usize, budget: usize) {
    let mut n = 0;
    while *total > budget && n < list.len() {
        *total -= json_len(&list[n]) + 1;
        n += 1;
    }
    list.drain(..n);
}

/// `ack` (recv) and `read`: move this user's cursors forward and tell the
/// DM peer (`receipt`) and, for `read`, the user's other sessions (`read`).
pub async fn cursor(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    conv: Conv,
    recv: Option<u64>,
    read: Option<u64>,
) -> OpResult {
    require_member(st, ses, &conv).await?;
    let user = &*ses.user;
    let before = st.store.cursor(&conv, user).await?;
    let after = st.store.advance_cursor(&conv, user, recv, read).await?;
    if after != before {
        if let Some(peer) = conv.peer_of(user).filter(|p| *p != user) {
            let ev = Event::Receipt {
                conv: conv.clone(),
                user: user.to_owned(),
                recv_seq: after.recv_seq,
                read_seq: after.read_seq,
            };
            st.send_to_users([peer], &event_frame(&ev), None);
        }
        if read.is_some() && after.read_seq != before.read_seq {
            let ev = Event::Read { conv: conv.clone(), seq: after.read_seq };
            st.send_to_users([user], &event_frame(&ev), Some(ses.handle.key));
        }
    }
    Ok(json!({"recv_seq": after.recv_seq, "read_seq": after.read_seq}))
}

/// `typing`: forwarded to the other members, at most once per conversation
/// per `typing_interval_ms` per session (the rest are answered ok, dropped).
pub async fn typing(st: &Arc<AppState>, ses: &mut SessionCtx, conv: Conv) -> OpResult {
    require_member(st, ses, &conv).await?;
    let now = Instant::now();
    let interval = Duration::from_millis(st.config.typing_interval_ms);
    if ses.typing_last.get(&conv).is_some_and(|t| now.duration_since(*t) < interval) {
        return Ok(json!({"forwarded": false}));
    }
    if ses.typing_last.len() > 256 {
        ses.typing_last.retain(|_, t| now.duration_since(*t) < interval);
    }
    ses.typing_last.insert(conv.clone(), now);
    let user = &*ses.user;
    let frame = event_frame(&Event::Typing { conv: conv.clone(), user: user.to_owned() });
    match &conv {
        Conv::Dm(..) => {
            if let Some(peer) = conv.peer_of(user).filter(|p| *p != user) {
                st.send_to_users([peer], &frame, None);
            }
        }
        Conv::Channel(name) => {
            if let Some(entry) = st.channel_entry(name).await? {
                let members = entry.snapshot();
                st.send_to_users(members.iter().map(|m| &**m).filter(|m| *m != user), &frame, None);
            }
        }
    }
    Ok(json!({"forwarded": true}))
}

/// `signal`: an ephemeral event to a user or a channel; a call's signals
/// go to its other call device (`calls::relay`).
pub async fn signal(st: &Arc<AppState>, ses: &SessionCtx, to: Target, body: Map<String, Value>) -> OpResult {
    if let Target::Call(iid) = &to {
        return crate::calls::relay(st, ses, iid, body).await;
    }
    let user = &*ses.user;
    let ts = now_ms();
    let conv = to.conv(user).expect("user and channel targets have a conversation");
    require_member(st, ses, &conv).await?;
    let frame = event_frame(&Event::Signal { from: user.to_owned(), to, body, ts });
    st.send_to_conv(&conv, &frame, Some(ses.handle.key)).await?;
    Ok(json!({"ts": ts}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_proto::SyncConv;

    fn msg(seq: u64, text_len: usize) -> Msg {
        let mut body = Map::new();
        body.insert("text".into(), json!("t".repeat(text_len)));
        Msg::new(
            Conv::channel("c"),
            seq,
            format!("m{seq}"),
            format!("c{seq}"),
            "alice".into(),
            Target::Channel("c".into()),
            "text".into(),
            body,
            1,
            None,
        )
    }

    #[test]
    fn a_page_keeps_what_fits_in_the_paging_direction() {
        let page: Vec<Msg> = (1..=10).map(|s| msg(s, 1000)).collect();
        let one = json_len(&page[0]) + 1;
        // (Message 10 is a few bytes longer than message 1: slack for it.)
        let budget = json_len(&HistoryOk { messages: Vec::new(), more: true }) + 3 * one + 8;
        let mut fwd = page.clone();
        let fit = fit_page(&mut fwd, false, budget, "alice");
        assert_eq!(fwd.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3], "after: the oldest");
        assert!(fit.dropped && fit.trimmed.is_none());
        let mut back = page.clone();
        fit_page(&mut back, true, budget, "alice");
        assert_eq!(back.iter().map(|m| m.seq).collect::<Vec<_>>(), [8, 9, 10], "before/latest: the newest");
        let mut all = page.clone();
        assert!(!fit_page(&mut all, true, usize::MAX, "alice").dropped);
        assert_eq!(all.len(), 10);
    }

    #[test]
    fn one_message_over_the_budget_comes_with_shortened_reactions() {
        let mut m = msg(1, 10);
        m.reactions
            .insert("👍".into(), (0..500).map(|i| format!("user-{i:04}")).chain(["bob".into()]).collect());
        m.reactions.insert("🎉".into(), vec!["carol".into()]);
        let mut page = vec![m, msg(2, 10)];
        let budget = 2000;
        let fit = fit_page(&mut page, false, budget, "bob");
        assert_eq!((page.len(), fit.dropped, fit.trimmed), (1, true, Some(0)));
        let kept = &page[0];
        assert!(json_len(&HistoryOk { messages: page.clone(), more: true }) <= budget);
        assert!(kept.reactions["👍"].contains(&"bob".to_owned()), "the reader's own entry stays");
        assert_eq!(kept.reactions["🎉"], ["carol"], "short lists are left alone");
    }

    fn sync_conv(i: i64) -> SyncConv {
        SyncConv {
            conv: Conv::channel(&format!("ch{i}")),
            kind: "channel".into(),
            peer: None,
            channel: Some(format!("ch{i}")),
            last_seq: 1,
            last_ts: i,
            read_seq: 0,
            peer_read_seq: None,
            peer_recv_seq: None,
            unread: 0,
            mentions_unread: 0,
            pins: Vec::new(),
        }
    }

    #[test]
    fn sync_leaves_out_the_least_recent_conversations() {
        let mut ok = SyncOk {
            conversations: (0..100).rev().map(sync_conv).collect(),
            invites: Vec::new(),
            recent_invites: Vec::new(),
        };
        let budget = json_len(&ok) / 2;
        assert!(fit_sync(&mut ok, budget));
        assert!(json_len(&ok) <= budget);
        let ts: Vec<i64> = ok.conversations.iter().map(|c| c.last_ts).collect();
        assert!(ts.len() > 10 && ts.windows(2).all(|w| w[0] > w[1]), "order kept: {ts:?}");
        assert_eq!(ts[0], 99, "the most recent stay");
        assert!(!fit_sync(&mut ok, usize::MAX));
    }

    #[test]
    fn sync_sheds_invitations_before_any_conversation() {
        let invite = |n: i64, state: InviteState| {
            let mut content = Map::new();
            content.insert("pad".into(), json!("p".repeat(1000)));
            Invite {
                iid: format!("i{n}"),
                from: "mallory".into(),
                to: "alice".into(),
                room: format!("call-i{n}"),
                content,
                state,
                created: n,
                expires: n + 60_000,
                received: false,
                reason: None,
                response: None,
            }
        };
        let conversations: Vec<SyncConv> = (0..3).map(sync_conv).collect();
        let mut ok = SyncOk {
            conversations: conversations.clone(),
            invites: (10..20).map(|n| invite(n, InviteState::Pending)).collect(),
            recent_invites: (0..10).map(|n| invite(n, InviteState::Canceled)).collect(),
        };
        // Room for two invitations (with slack for the fields' punctuation,
        // which the shedding counts loosely), far from room for three.
        let two = json_len(&ok.invites[..2]) + 64;
        let budget =
            json_len(&SyncOk { invites: Vec::new(), recent_invites: Vec::new(), ..ok.clone() }) + two;
        assert!(fit_sync(&mut ok, budget));
        assert!(json_len(&ok) <= budget);
        assert_eq!(ok.conversations, conversations, "every conversation stays");
        assert!(ok.recent_invites.is_empty(), "the final ones go first");
        let kept: Vec<&str> = ok.invites.iter().map(|i| i.iid.as_str()).collect();
        assert_eq!(kept, ["i18", "i19"], "then the oldest pending ones");
    }
}
