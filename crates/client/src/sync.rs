//! Sync and gap filling, and the handling of pushed events.
//!
//! After every (re)connect: `sync`, then page `history after=<synced_seq>`
//! for every conversation whose server `last_seq` is ahead, then live. A
//! live `msg` that leaves a hole (its seq is not `synced_seq + 1`) triggers
//! the same paged fetch. Everything goes through
//! [`Store::apply_messages`](crate::store::Store::apply_messages), which
//! dedupes by `conv+seq` and `sender+cid`, so overlapping fetches, live
//! events and send oks converge on one copy of each message.
//!
//! Sync sees the client only through `SyncContext` (the store, who this
//! user is, what the server offers, where events go) and the session only
//! as a [`Transport`], so it depends on nothing above it.

use crate::conn::{RequestError, Transport};
use crate::events::ClientEvent;
use crate::model::{InviteView, UNREADABLE_KIND};
use crate::store::{Store, StoreError};
use courier_proto::{Conv, Event, FEATURE_V1_1, InviteState, Msg, SyncOk, Target};
use serde_json::json;

/// Pages with more new messages than this are announced as one
/// [`ClientEvent::HistoryFilled`] instead of one event per message.
const PER_MESSAGE_EVENTS_UP_TO: usize = 20;

/// What sync needs from the client, and nothing more.
pub(crate) trait SyncContext {
    /// The local store.
    fn store(&self) -> &Store;
    /// The user this client acts for.
    fn me(&self) -> &str;
    /// Whether the server listed `feature` in the session's hello.
    fn has_feature(&self, feature: &str) -> bool;
    /// The `history` page size the server allows.
    fn history_page(&self) -> u32;
    /// The server's clock now (ms), against which invitations expire.
    fn server_now(&self) -> i64;
    /// Reports an event to the application.
    fn emit(&self, ev: ClientEvent);
    /// The state this device's answer to `iid`, sent and not yet answered,
    /// asks for.
    fn answering(&self, _iid: &str) -> Option<InviteState> {
        None
    }
    /// Reports a conversation as it is now in the store.
    fn emit_conversation(&self, conv: &Conv);
    /// Says that receive or read cursors may be waiting to be sent.
    fn cursors_moved(&self);
}

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
pub(crate) async fn full_sync(
    cx: &impl SyncContext,
    session: &impl Transport,
) -> Result<(usize, usize), SyncError> {
    // Taken before asking: a channel joined or created while the sync is on
    // its way is not in the reply, and must not be taken for one left.
    let held = cx.store().channels_held()?;
    let reply = session.request(json!({"op": "sync"})).await?;
    // An extension (v1.2 reply size): the least recent conversations were
    // left out, so an absent one may still be the user's.
    let truncated = reply.get("truncated").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let (ok, unreadable) = decode_sync(serde_json::from_value(reply)?);
    let me = cx.me();
    let v1_1 = cx.has_feature(FEATURE_V1_1);
    for c in &ok.conversations {
        cx.store().apply_sync_conv(me, c, v1_1)?;
    }
    // Channels left on another device, or that removed the user, while this
    // one was away. Only channels: the server lists a DM only once it has a
    // message, so a DM it leaves out is not gone.
    // An entry that did not decode is still listed: its channel is kept, and
    // one whose `conv` does not read either proves nothing about any.
    if !truncated && let Some(unreadable) = unreadable {
        let listed = |h: &Conv| ok.conversations.iter().any(|c| &c.conv == h) || unreadable.contains(h);
        for conv in held.iter().filter(|h| !listed(h)) {
            tracing::info!(%conv, "no longer a member; forgetting the channel");
            cx.store().forget_conversation(conv)?;
        }
    }
    for inv in &ok.invites {
        let stored = cx.store().upsert_invite(inv)?;
        cx.emit(ClientEvent::Invite { invite: InviteView::new(stored, me, cx.server_now()) });
    }
    // Invitations answered, canceled or expired while this device was away.
    for inv in &ok.recent_invites {
        if let Some(stored) = cx.store().settle_invite(inv)? {
            cx.emit(ClientEvent::Invite { invite: InviteView::new(stored, me, cx.server_now()) });
        }
    }
    let mut fetched = 0;
    for c in &ok.conversations {
        if cx.store().synced_seq(&c.conv)? < c.last_seq {
            fetched += skip_refused(&c.conv, fill(cx, session, &c.conv, Some(c.last_seq)).await)?;
        }
    }
    for c in &ok.conversations {
        cx.emit_conversation(&c.conv);
    }
    Ok((ok.conversations.len(), fetched))
}

/// A `sync` ok as sent, its entries decoded one by one.
#[derive(serde::Deserialize)]
struct RawSync {
    conversations: Vec<serde_json::Value>,
    invites: Vec<serde_json::Value>,
    #[serde(default)]
    recent_invites: Vec<serde_json::Value>,
}

/// Decodes a `sync` ok entry by entry: a conversation or invitation this
/// client cannot read (a field of the wrong type, a kind it does not know)
/// is logged and left out, and the rest is synced, instead of failing the
/// whole sync and reconnecting forever. Also returns the conversations of
/// the entries left out (`None` when one of them does not even name its
/// conversation).
fn decode_sync(raw: RawSync) -> (SyncOk, Option<Vec<Conv>>) {
    let mut unreadable = Some(Vec::new());
    let conversations = decode_entries("conversation", raw.conversations, |v| {
        match serde_json::from_value::<Conv>(v["conv"].clone()) {
            Ok(conv) => unreadable.iter_mut().for_each(|u| u.push(conv.clone())),
            Err(_) => unreadable = None,
        }
    });
    let invites = decode_entries("invitation", raw.invites, |_| {});
    let recent_invites = decode_entries("recent invitation", raw.recent_invites, |_| {});
    (SyncOk { conversations, invites, recent_invites }, unreadable)
}

/// The entries of `raw` that decode as `T`; `skipped` sees each other one.
fn decode_entries<T: serde::de::DeserializeOwned>(
    what: &str,
    raw: Vec<serde_json::Value>,
    mut skipped: impl FnMut(&serde_json::Value),
) -> Vec<T> {
    let mut out = Vec::with_capacity(raw.len());
    for v in raw {
        match T::deserialize(&v) {
            Ok(t) => out.push(t),
            Err(e) => {
                tracing::warn!(
                    error = bounded(&e.to_string()),
                    entry = bounded(&v.to_string()),
                    "a {what} in the sync reply does not decode; skipped"
                );
                skipped(&v);
            }
        }
    }
    out
}

/// Pages `history after=synced_seq` until the store holds `until` (or the
/// server says there is no more). Returns how many messages were added.
pub(crate) async fn fill(
    cx: &impl SyncContext,
    session: &impl Transport,
    conv: &Conv,
    until: Option<u64>,
) -> Result<usize, SyncError> {
    let page = cx.history_page().max(1);
    let mut added = 0;
    loop {
        let after = cx.store().synced_seq(conv)?;
        if until.is_some_and(|u| after >= u) {
            break;
        }
        let reply =
            session.request(json!({"op": "history", "conv": conv, "after": after, "limit": page})).await?;
        let h: RawPage = serde_json::from_value(reply)?;
        let n = apply(cx, &decode_page(conv, after, h.messages), Source::Page)?;
        added += n;
        let now = cx.store().synced_seq(conv)?;
        if !h.more || now == after {
            break;
        }
    }
    if added > PER_MESSAGE_EVENTS_UP_TO {
        cx.emit(ClientEvent::HistoryFilled { conv: conv.clone(), added });
    }
    cx.cursors_moved();
    Ok(added)
}

/// A `history` ok whose messages are decoded one by one, so that one
/// message this client cannot read does not lose the page.
#[derive(serde::Deserialize)]
struct RawPage {
    messages: Vec<serde_json::Value>,
    more: bool,
}

/// Decodes the messages of a `history after=<after>` page of `conv`. A
/// message that does not decode (a float `ts`, a field of the wrong type)
/// becomes an [`UNREADABLE_KIND`] placeholder at its seq, so the synced seq
/// moves past it instead of stopping there on every sync.
fn decode_page(conv: &Conv, after: u64, raw: Vec<serde_json::Value>) -> Vec<Msg> {
    let mut next_seq = after + 1;
    let mut out = Vec::with_capacity(raw.len());
    for v in raw {
        let m = match serde_json::from_value::<Msg>(v.clone()) {
            Ok(m) => m,
            Err(e) => {
                let m = placeholder(conv, next_seq, &v);
                tracing::warn!(
                    %conv, seq = m.seq, error = bounded(&e.to_string()), message = bounded(&v.to_string()),
                    "a message in history does not decode; stored as unreadable"
                );
                m
            }
        };
        next_seq = m.seq + 1;
        out.push(m);
    }
    out
}

/// The placeholder of an undecodable message of `conv`: whatever of its
/// fields reads, the rest filled in. Pages hold contiguous seqs, so an
/// unreadable seq is the one after the previous message's (`expected`).
fn placeholder(conv: &Conv, expected: u64, v: &serde_json::Value) -> Msg {
    let seq = v["seq"].as_u64().unwrap_or(expected);
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    let from = text("from").unwrap_or_default();
    let to = serde_json::from_value(v["to"].clone()).ok().unwrap_or_else(|| match conv {
        Conv::Channel(c) => Target::Channel(c.clone()),
        Conv::Dm(..) => Target::User(conv.peer_of(&from).unwrap_or_default().to_owned()),
    });
    Msg::new(
        conv.clone(),
        seq,
        text("mid").unwrap_or_else(|| format!("unreadable:{conv}:{seq}")),
        text("cid").unwrap_or_else(|| format!("unreadable:{conv}:{seq}")),
        from,
        to,
        UNREADABLE_KIND.to_owned(),
        // Kept so that an own pending message this one confirms keeps its body.
        v["body"].as_object().cloned().unwrap_or_default(),
        v["ts"].as_i64().or_else(|| v["ts"].as_f64().map(|t| t as i64)).unwrap_or(0),
        None,
    )
}

/// At most 200 bytes of `s` (on a character boundary), for logs.
fn bounded(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A conversation whose history the server refuses (e.g. the user was
/// removed meanwhile) or whose pages do not decode is skipped, not retried
/// in a reconnect loop that would also keep the outbox from ever sending.
fn skip_refused(conv: &Conv, r: Result<usize, SyncError>) -> Result<usize, SyncError> {
    match r {
        Err(SyncError::Request(RequestError::Server(e))) => {
            tracing::warn!(%conv, code = %e.code, "history refused; skipping this conversation");
            Ok(0)
        }
        Err(SyncError::Protocol(e)) => {
            tracing::warn!(%conv, error = bounded(&e.to_string()), "history unreadable; skipping this conversation");
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
fn apply(cx: &impl SyncContext, msgs: &[Msg], source: Source) -> Result<usize, SyncError> {
    let applied = if source == Source::Page && cx.has_feature(FEATURE_V1_1) {
        cx.store().apply_page(cx.me(), msgs)?
    } else {
        cx.store().apply_messages(cx.me(), msgs)?
    };
    let stored = applied.added.len() + applied.relations;
    if source == Source::Live || stored <= PER_MESSAGE_EVENTS_UP_TO {
        for m in applied.added {
            cx.emit(ClientEvent::MessageAdded { message: m });
        }
        for m in applied.targets {
            cx.emit(ClientEvent::MessageUpdated { message: m });
        }
    }
    for m in applied.updated {
        cx.emit(ClientEvent::MessageUpdated { message: m });
    }
    for conv in &applied.pins {
        cx.emit_conversation(conv);
    }
    Ok(stored)
}

/// Handles one pushed event.
pub(crate) async fn handle_event(
    cx: &impl SyncContext,
    session: &impl Transport,
    ev: Event,
) -> Result<(), SyncError> {
    let me = cx.me();
    match ev {
        Event::Msg(m) => {
            let (conv, seq) = (m.conv.clone(), m.seq);
            if cx.store().has_left(&conv)? {
                tracing::debug!(%conv, seq, "a message for a channel left; dropped");
                return Ok(());
            }
            apply(cx, std::slice::from_ref(&m), Source::Live)?;
            if cx.store().synced_seq(&conv)? < seq {
                tracing::debug!(%conv, seq, "gap detected; fetching");
                skip_refused(&conv, fill(cx, session, &conv, Some(seq)).await)?;
            }
            cx.cursors_moved();
            cx.emit_conversation(&conv);
        }
        Event::Receipt { conv, user, recv_seq, read_seq } => {
            for m in cx.store().apply_receipt(me, &conv, recv_seq, read_seq, 200)? {
                cx.emit(ClientEvent::MessageUpdated { message: m });
            }
            cx.emit(ClientEvent::Receipt { conv: conv.clone(), user, recv_seq, read_seq });
            cx.emit_conversation(&conv);
        }
        Event::Read { conv, seq } => {
            cx.store().apply_read_elsewhere(&conv, seq)?;
            cx.emit_conversation(&conv);
        }
        Event::Typing { conv, user } => cx.emit(ClientEvent::Typing { conv, user }),
        Event::Signal { from, to, body, ts } => cx.emit(ClientEvent::Signal { from, to, body, ts }),
        Event::Member { channel, user, joined, removed, role } => {
            let conv = Conv::channel(&channel);
            // A role change comes as `joined` with a role: not a new member.
            if user == me && joined && role.is_none() {
                cx.store().ensure_conversation(me, &conv, 0)?;
                fill(cx, session, &conv, None).await?;
                cx.emit_conversation(&conv);
            }
            // Left (also on another device) or removed by a moderator: the
            // server no longer lets this user in; the messages stay in the
            // local store (like `leave`).
            if user == me && (!joined || removed) {
                cx.store().forget_conversation(&conv)?;
            }
            cx.emit(ClientEvent::Member { channel, user, joined, removed, role });
        }
        Event::Presence(p) => {
            cx.emit(ClientEvent::Presence { user: p.user, online: p.online, last_seen: p.last_seen })
        }
        Event::Profile(p) => {
            cx.store().upsert_profiles(std::slice::from_ref(&p))?;
            cx.emit(ClientEvent::Profile { profile: p });
        }
        Event::Invite { invite } | Event::InviteState { invite } => {
            // As stored: a late `pending` does not undo a final state.
            let stored = cx.store().upsert_invite(&invite)?;
            let mut view = InviteView::new(stored, me, cx.server_now());
            // The server relays this device's answer before its ok, at times.
            view.answered_here =
                view.invite.state.is_final() && cx.answering(&invite.iid) == Some(view.invite.state);
            cx.emit(ClientEvent::Invite { invite: view });
        }
        Event::TokenExpiring { exp } => cx.emit(ClientEvent::TokenExpiring { exp }),
    }
    Ok(())
}

/// Sends the receive and read cursors the server does not know yet. A
/// cursor the server refuses (e.g. a channel left meanwhile) is dropped
/// rather than retried forever.
pub(crate) async fn flush_cursors(cx: &impl SyncContext, session: &impl Transport) -> Result<(), SyncError> {
    for (conv, seq) in cx.store().reads_to_send()? {
        tolerate(session.request(json!({"op": "read", "conv": conv, "seq": seq})).await)?;
        cx.store().read_sent(&conv, seq)?;
    }
    for (conv, seq) in cx.store().acks_to_send(cx.me())? {
        tolerate(session.request(json!({"op": "ack", "conv": conv, "seq": seq})).await)?;
        cx.store().acked(&conv, seq)?;
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

#[cfg(test)]
mod tests {
    //! Sync against a scripted server through a bare [`SyncContext`]: no
    //! client, no session, no connection manager.

    use super::*;
    use courier_proto::{ErrBody, ErrorCode, InviteState};
    use serde_json::Value;
    use std::future::Future;
    use std::sync::{Arc, Mutex};

    /// A client as sync sees it: alice's store in a temporary directory.
    struct Cx {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        events: Mutex<Vec<ClientEvent>>,
    }

    impl Cx {
        fn new() -> Cx {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open_dir(dir.path()).unwrap());
            Cx { _dir: dir, store, events: Mutex::default() }
        }
    }

    impl SyncContext for Cx {
        fn store(&self) -> &Store {
            &self.store
        }
        fn me(&self) -> &str {
            "alice"
        }
        fn has_feature(&self, _: &str) -> bool {
            false
        }
        fn history_page(&self) -> u32 {
            1
        }
        fn server_now(&self) -> i64 {
            crate::model::now_ms()
        }
        fn emit(&self, ev: ClientEvent) {
            self.events.lock().unwrap().push(ev);
        }
        fn emit_conversation(&self, _: &Conv) {}
        fn cursors_moved(&self) {}
    }

    /// A server that answers each request with `answer(request)` and keeps
    /// the requests.
    struct Server<F> {
        answer: F,
        requests: Mutex<Vec<Value>>,
    }

    impl<F: Fn(&Value) -> Result<Value, RequestError> + Send + Sync + 'static> Transport for Server<F> {
        fn request(&self, op: Value) -> impl Future<Output = Result<Value, RequestError>> + Send {
            let reply = (self.answer)(&op);
            self.requests.lock().unwrap().push(op);
            async move { reply }
        }
    }

    fn server<F: Fn(&Value) -> Result<Value, RequestError>>(answer: F) -> Server<F> {
        Server { answer, requests: Mutex::default() }
    }

    fn msg(channel: &str, seq: u64) -> Value {
        json!({"conv": format!("ch:{channel}"), "seq": seq, "mid": format!("m{channel}{seq}"), "cid": format!("c{channel}{seq}"),
               "from": "bob", "to": {"channel": channel}, "kind": "text", "body": {"text": format!("t{seq}")},
               "ts": seq})
    }

    /// A channel row of the `sync` ok.
    fn conv(channel: &str, last_seq: u64) -> Value {
        json!({"conv": format!("ch:{channel}"), "kind": "channel", "channel": channel, "last_seq": last_seq,
               "last_ts": 0, "read_seq": 0})
    }

    fn refused() -> RequestError {
        RequestError::Server(Box::new(ErrBody::new(ErrorCode::Forbidden, "not a member")))
    }

    #[tokio::test]
    async fn a_live_gap_is_filled_page_by_page() {
        let cx = Cx::new();
        let server = server(|req| {
            assert_eq!(req["op"], "history");
            let after = req["after"].as_u64().unwrap();
            Ok(json!({"messages": [msg("lobby", after + 1)], "more": true}))
        });
        for seq in [1, 4] {
            let ev = Event::Msg(serde_json::from_value(msg("lobby", seq)).unwrap());
            handle_event(&cx, &server, ev).await.unwrap();
        }
        let afters: Vec<_> = server.requests.lock().unwrap().iter().map(|r| r["after"].clone()).collect();
        assert_eq!(afters, [json!(1), json!(2)], "one page of one message per request, up to seq 4");
        let conv = Conv::channel("lobby");
        assert_eq!(cx.store.synced_seq(&conv).unwrap(), 4);
        let seqs: Vec<_> =
            cx.store.history(&conv, None, 10).unwrap().iter().map(|m| m.seq.unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        let added = cx
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ClientEvent::MessageAdded { .. }))
            .count();
        assert_eq!(added, 4);
    }

    #[tokio::test]
    async fn a_conversation_whose_history_is_refused_is_skipped_not_retried() {
        let cx = Cx::new();
        let server = server(move |req| match (req["op"].as_str(), req["conv"].as_str()) {
            (Some("sync"), _) => {
                Ok(json!({"conversations": [conv("gone", 2), conv("lobby", 1)], "invites": []}))
            }
            (Some("history"), Some("ch:gone")) => Err(refused()),
            (Some("history"), Some("ch:lobby")) => Ok(json!({"messages": [msg("lobby", 1)], "more": false})),
            _ => panic!("unexpected request {req}"),
        });
        assert_eq!(full_sync(&cx, &server).await.unwrap(), (2, 1));
        assert_eq!(cx.store.synced_seq(&Conv::channel("gone")).unwrap(), 0);
        assert_eq!(cx.store.synced_seq(&Conv::channel("lobby")).unwrap(), 1);
        assert_eq!(server.requests.lock().unwrap().len(), 3, "the refused history is asked once");
    }

    #[tokio::test]
    async fn an_undecodable_message_is_stored_as_unreadable_and_an_unreadable_page_skips_its_conversation() {
        let cx = Cx::new();
        let server = server(move |req| match (req["op"].as_str(), req["conv"].as_str()) {
            (Some("sync"), _) => Ok(
                json!({"conversations": [conv("broken", 1), conv("odd", 3), conv("lobby", 1)], "invites": []}),
            ),
            (Some("history"), Some("ch:broken")) => Ok(json!({"messages": "?", "more": false})),
            (Some("history"), Some("ch:odd")) => {
                let mut bad = msg("odd", 2);
                bad["ts"] = json!(2.5);
                bad["seq"] = json!("two");
                Ok(json!({"messages": [msg("odd", 1), bad, msg("odd", 3)], "more": false}))
            }
            (Some("history"), Some("ch:lobby")) => Ok(json!({"messages": [msg("lobby", 1)], "more": false})),
            _ => panic!("unexpected request {req}"),
        });
        assert_eq!(full_sync(&cx, &server).await.unwrap(), (3, 4));
        assert_eq!(cx.store.synced_seq(&Conv::channel("broken")).unwrap(), 0);
        assert_eq!(cx.store.synced_seq(&Conv::channel("lobby")).unwrap(), 1);
        let odd = Conv::channel("odd");
        assert_eq!(cx.store.synced_seq(&odd).unwrap(), 3);
        let kinds: Vec<_> =
            cx.store.history(&odd, None, 10).unwrap().into_iter().map(|m| (m.seq, m.kind)).collect();
        assert_eq!(
            kinds,
            [(Some(1), "text".into()), (Some(2), UNREADABLE_KIND.into()), (Some(3), "text".into())]
        );
        assert_eq!(server.requests.lock().unwrap().len(), 4, "each history is asked once");
    }

    #[tokio::test]
    async fn a_sync_entry_that_does_not_decode_is_skipped_and_the_rest_synced() {
        let cx = Cx::new();
        for c in ["odd", "gone"] {
            cx.store.ensure_conversation("alice", &Conv::channel(c), 0).unwrap();
        }
        let invite = |iid: &str| {
            json!({"iid": iid, "from": "bob", "to": "alice", "room": format!("call-{iid}"), "content": {},
                   "state": "pending", "created": 0, "expires": crate::model::now_ms() + 60_000,
                   "received": false})
        };
        let mut odd = conv("odd", 3);
        odd["last_seq"] = json!("three");
        let mut bad_invite = invite("i2");
        bad_invite["state"] = json!("ringing-ish");
        let reply = json!({"conversations": [odd, conv("lobby", 1)], "invites": [bad_invite, invite("i1")],
                           "recent_invites": [{"iid": 7}]});
        let server = server(move |req| match (req["op"].as_str(), req["conv"].as_str()) {
            (Some("sync"), _) => Ok(reply.clone()),
            (Some("history"), Some("ch:lobby")) => Ok(json!({"messages": [msg("lobby", 1)], "more": false})),
            _ => panic!("unexpected request {req}"),
        });
        assert_eq!(full_sync(&cx, &server).await.unwrap(), (1, 1));
        assert_eq!(cx.store.synced_seq(&Conv::channel("lobby")).unwrap(), 1);
        let iids: Vec<_> = cx.store.invites("alice", 0).unwrap().into_iter().map(|v| v.invite.iid).collect();
        assert_eq!(iids, ["i1"]);
        let mut held = cx.store.channels_held().unwrap();
        held.sort();
        assert_eq!(
            held,
            [Conv::channel("lobby"), Conv::channel("odd")],
            "an unreadable entry is still listed"
        );
        // An entry that does not even name its conversation proves nothing.
        let nameless = server_of(json!({"conversations": [{"conv": 42}], "invites": []}));
        full_sync(&cx, &nameless).await.unwrap();
        assert_eq!(cx.store.channels_held().unwrap().len(), 2);
    }

    fn server_of(reply: Value) -> Server<impl Fn(&Value) -> Result<Value, RequestError>> {
        server(move |_| Ok(reply.clone()))
    }

    #[tokio::test]
    async fn invite_events_report_the_stored_invitation_not_a_late_frame() {
        let cx = Cx::new();
        let server = server(|req| -> Result<Value, RequestError> { panic!("unexpected request {req}") });
        let invite = |iid: &str, from: &str, to: &str, state: &str, received: bool| {
            let expires = crate::model::now_ms() + 60_000;
            serde_json::from_value(json!({"iid": iid, "from": from, "to": to, "room": format!("call-{iid}"),
                                          "content": {}, "state": state, "created": 0, "expires": expires,
                                          "received": received}))
            .unwrap()
        };
        let last_invite = || {
            let events = cx.events.lock().unwrap();
            events.iter().rev().find_map(|e| {
                if let ClientEvent::Invite { invite } = e { Some(invite.clone()) } else { None }
            })
        };
        // On a cluster the callee hears the cancel before the invitation.
        for ev in [
            Event::InviteState { invite: invite("i1", "bob", "alice", "canceled", true) },
            Event::Invite { invite: invite("i1", "bob", "alice", "pending", true) },
        ] {
            handle_event(&cx, &server, ev).await.unwrap();
        }
        let shown = last_invite().unwrap();
        assert_eq!((shown.invite.state, shown.ringing), (InviteState::Canceled, false));
        // The caller hears "received" before an older copy without it.
        for ev in [
            Event::InviteState { invite: invite("i2", "alice", "bob", "pending", true) },
            Event::InviteState { invite: invite("i2", "alice", "bob", "pending", false) },
        ] {
            handle_event(&cx, &server, ev).await.unwrap();
        }
        assert!(last_invite().unwrap().invite.received);
        let held: Vec<_> = cx
            .store
            .invites("alice", 0)
            .unwrap()
            .into_iter()
            .map(|v| (v.invite.iid, v.invite.state, v.invite.received))
            .collect();
        assert!(held.contains(&("i1".into(), InviteState::Canceled, true)), "{held:?}");
        assert!(held.contains(&("i2".into(), InviteState::Pending, true)), "{held:?}");
    }

    fn no_requests() -> Server<impl Fn(&Value) -> Result<Value, RequestError>> {
        server(|req| panic!("unexpected request {req}"))
    }

    #[tokio::test]
    async fn a_channel_left_on_another_device_is_forgotten() {
        let cx = Cx::new();
        let lobby = Conv::channel("lobby");
        cx.store.ensure_conversation("alice", &lobby, 0).unwrap();
        let left = Event::Member {
            channel: "lobby".into(),
            user: "alice".into(),
            joined: false,
            removed: false,
            role: None,
        };
        handle_event(&cx, &no_requests(), left).await.unwrap();
        assert_eq!(cx.store.conversation("alice", &lobby).unwrap(), None);
    }

    #[tokio::test]
    async fn a_late_message_does_not_bring_back_a_channel_left() {
        let cx = Cx::new();
        let lobby = Conv::channel("lobby");
        let first: Msg = serde_json::from_value(msg("lobby", 1)).unwrap();
        cx.store.apply_messages("alice", &[first]).unwrap();
        cx.store.forget_conversation(&lobby).unwrap(); // as `leave` does
        let late = |seq| Event::Msg(serde_json::from_value(msg("lobby", seq)).unwrap());
        // Seq 3 after 1 would also ask for the gap.
        handle_event(&cx, &no_requests(), late(3)).await.unwrap();
        assert_eq!(cx.store.conversation("alice", &lobby).unwrap(), None);
        // Nor does a history page that was on its way.
        let page: Msg = serde_json::from_value(msg("lobby", 2)).unwrap();
        cx.store.apply_page("alice", &[page]).unwrap();
        assert_eq!(cx.store.conversation("alice", &lobby).unwrap(), None);
        // Joined again: its messages count once more.
        cx.store.ensure_conversation("alice", &lobby, 4).unwrap();
        let again = server(|req| {
            Ok(json!({"messages": [msg("lobby", req["after"].as_u64().unwrap() + 1)], "more": true}))
        });
        handle_event(&cx, &again, late(4)).await.unwrap();
        assert_eq!(cx.store.synced_seq(&lobby).unwrap(), 4);
    }

    #[tokio::test]
    async fn sync_forgets_the_channels_it_no_longer_lists_but_no_dm_and_not_when_truncated() {
        let cx = Cx::new();
        for c in ["gone", "kept"] {
            cx.store.ensure_conversation("alice", &Conv::channel(c), 0).unwrap();
        }
        let dm = Conv::dm("alice", "carol");
        cx.store.ensure_conversation("alice", &dm, 0).unwrap();
        let truncated = server(|_| Ok(json!({"conversations": [], "invites": [], "truncated": true})));
        full_sync(&cx, &truncated).await.unwrap();
        assert_eq!(cx.store.channels_held().unwrap().len(), 2, "a truncated reply proves nothing");
        let store = cx.store.clone();
        let listing = server(move |_| {
            // Created on this device while the sync was on its way.
            store.ensure_conversation("alice", &Conv::channel("new"), 0).unwrap();
            Ok(json!({"conversations": [conv("kept", 0)], "invites": []}))
        });
        full_sync(&cx, &listing).await.unwrap();
        let mut held = cx.store.channels_held().unwrap();
        held.sort();
        assert_eq!(held, [Conv::channel("kept"), Conv::channel("new")]);
        assert!(
            cx.store.conversation("alice", &dm).unwrap().is_some(),
            "a DM without messages is not listed"
        );
        assert!(cx.store.has_left(&Conv::channel("gone")).unwrap());
    }

    #[tokio::test]
    async fn a_refused_cursor_is_dropped_not_sent_again() {
        let cx = Cx::new();
        let conv = Conv::channel("lobby");
        let msgs: Vec<Msg> = (1..=2).map(|s| serde_json::from_value(msg("lobby", s)).unwrap()).collect();
        cx.store.apply_messages("alice", &msgs).unwrap();
        cx.store.set_read(&conv, None).unwrap();
        let server = server(|req| {
            assert_eq!(req["op"], "read", "a read covers the ack");
            Err(refused())
        });
        flush_cursors(&cx, &server).await.unwrap();
        flush_cursors(&cx, &server).await.unwrap();
        assert_eq!(server.requests.lock().unwrap().len(), 1);
        assert!(cx.store.reads_to_send().unwrap().is_empty());
        assert!(cx.store.acks_to_send("alice").unwrap().is_empty());
    }
}
