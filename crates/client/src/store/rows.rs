//! Row mapping of the `messages` table: the columns every message query
//! selects ([`MSG_COLS`], with the delivery status a DM peer's cursors
//! imply), and the step from such a row to a [`MessageView`].

use super::{Result, StoreError};
use crate::model::{DeliveryStatus, MessageView};
use courier_proto::Conv;
use rusqlite::{Connection, Row};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The columns of a message row, selected from `messages m` joined with its
/// `conversations c` (whose DM peer cursors make `sent` read as `delivered`
/// or `read`).
pub(super) const MSG_COLS: &str = "m.conv, m.seq, m.mid, m.cid, m.sender, m.target, m.kind, m.body, m.ts, m.reply_to, \
     CASE WHEN m.status = 'sent' AND c.kind = 'dm' AND m.seq <= c.peer_read_seq THEN 'read' \
          WHEN m.status = 'sent' AND c.kind = 'dm' AND m.seq <= c.peer_recv_seq THEN 'delivered' \
          ELSE m.status END, m.error, m.edited, m.reactions, m.recalled, m.pinned";

/// A message row as selected by `MSG_COLS`.
pub(super) struct RawMsg {
    conv: String,
    seq: Option<i64>,
    mid: Option<String>,
    cid: String,
    from: String,
    to: String,
    kind: String,
    body: String,
    ts: Option<i64>,
    reply_to: Option<String>,
    status: String,
    error: Option<String>,
    edited: Option<i64>,
    reactions: Option<String>,
    recalled: bool,
    pinned: Option<i64>,
}

/// Reads a row selected by [`MSG_COLS`].
pub(super) fn msg_from_row(r: &Row<'_>) -> rusqlite::Result<RawMsg> {
    Ok(RawMsg {
        conv: r.get(0)?,
        seq: r.get(1)?,
        mid: r.get(2)?,
        cid: r.get(3)?,
        from: r.get(4)?,
        to: r.get(5)?,
        kind: r.get(6)?,
        body: r.get(7)?,
        ts: r.get(8)?,
        reply_to: r.get(9)?,
        status: r.get(10)?,
        error: r.get(11)?,
        edited: r.get(12)?,
        reactions: r.get(13)?,
        recalled: r.get(14)?,
        pinned: r.get(15)?,
    })
}

/// Parses a row's JSON columns into what the app shows.
pub(super) fn view(raw: RawMsg) -> Result<MessageView> {
    let mut body: Map<String, Value> = serde_json::from_str(&raw.body)?;
    // A file's name is the sender's word: what the app and the CLI show (and
    // offer as a save name) has no path separators, control or bidi
    // characters (which can make `exe.pdf` read as `fdp.exe`), leading dots
    // or reserved Windows names.
    if let Some(Value::String(name)) = body.get_mut("name")
        && matches!(raw.kind.as_str(), "file" | "image")
    {
        *name = courier_proto::ids::safe_file_name(name, "file");
    }
    Ok(MessageView {
        conv: Conv::parse(&raw.conv).ok_or_else(|| StoreError::Corrupt {
            path: PathBuf::new(),
            detail: format!("bad conv {}", raw.conv),
        })?,
        seq: raw.seq.map(|s| s as u64),
        mid: raw.mid,
        cid: raw.cid,
        from: raw.from,
        to: serde_json::from_str(&raw.to)?,
        kind: raw.kind,
        body,
        ts: raw.ts,
        reply_to: raw.reply_to,
        status: DeliveryStatus::parse(&raw.status).unwrap_or(DeliveryStatus::Received),
        error: raw.error,
        edited: raw.edited,
        reactions: raw.reactions.as_deref().map(serde_json::from_str).transpose()?.unwrap_or_default(),
        recalled: raw.recalled,
        pinned: raw.pinned,
    })
}

/// The message of row `id` as the app shows it.
pub(super) fn message_by_id(c: &Connection, id: i64) -> Result<MessageView> {
    let sql = format!(
        "SELECT {MSG_COLS} FROM messages m LEFT JOIN conversations c ON c.conv = m.conv WHERE m.id = ?1"
    );
    let raw = c.prepare_cached(&sql)?.query_row([id], msg_from_row)?;
    view(raw)
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{by_mid, msg, open};
    use courier_proto::{Conv, Msg};
    use serde_json::json;

    /// A peer's file name is shown made safe: no bidi override that makes
    /// `gpj.exe` read as `exe.jpg`, no path, no hidden-file dot.
    #[test]
    fn peer_file_names_are_shown_made_safe() {
        let (_d, s) = open();
        let c = Conv::channel("lobby");
        let file = |seq: u64, name: &str| Msg {
            kind: "file".into(),
            body: json!({"media": "m_f", "name": name}).as_object().unwrap().clone(),
            ..msg(&c, seq, "mallory", &format!("f{seq}"), "")
        };
        s.apply_messages("alice", &[file(1, "photo\u{202E}gpj.exe"), file(2, "../../.bashrc")]).unwrap();
        assert_eq!(by_mid(&s, &c, "m1").body["name"], "photogpj.exe");
        assert_eq!(by_mid(&s, &c, "m2").body["name"], "_.._.bashrc");
    }
}
