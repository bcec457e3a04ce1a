//! The generator's hot path over text frames, without a JSON parser: send
//! requests written straight into one string, and the few fields a
//! scenario needs (a reply's id and outcome, a delivered message's conv,
//! seq and text) found by scanning. Pure functions, no IO.
//!
//! Scanning relies on the keys being unique where they are looked up: in
//! a reply, `"re":` opens the frame and `"ok"`/`"err"` follows the id; in a
//! `msg` event, the first `"seq":` and `"text":"` are the message's (the
//! texts are the generator's own, free of escapes). A frame in another
//! shape returns `None` and the caller falls back to a full parse.

use serde_json::Value;

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Dest<'a> {
    /// A direct message to a user.
    User(&'a str),
    /// A channel message.
    Channel(&'a str),
}

/// Appends `s` as a JSON string (quoted, escaped only when it needs it).
pub fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::from(s).to_string());
    }
}

fn push_send_fields(out: &mut String, to: Dest<'_>, cid: &str, text: &str) {
    out.push_str(match to {
        Dest::User(_) => "\"to\":{\"user\":",
        Dest::Channel(_) => "\"to\":{\"channel\":",
    });
    push_json_str(
        out,
        match to {
            Dest::User(u) | Dest::Channel(u) => u,
        },
    );
    out.push_str("},\"cid\":");
    push_json_str(out, cid);
    out.push_str(",\"kind\":\"text\",\"body\":{\"text\":");
    push_json_str(out, text);
    out.push_str("}}");
}

/// A Courier `send` request: `{"op":"send","id":..,"to":..,"cid":..,"kind":"text","body":{"text":..}}`.
pub fn courier_send(id: u64, to: Dest<'_>, cid: &str, text: &str) -> String {
    let mut out = String::with_capacity(96 + cid.len() + text.len());
    out.push_str("{\"op\":\"send\",\"id\":");
    out.push_str(&id.to_string());
    out.push(',');
    push_send_fields(&mut out, to, cid, text);
    out
}

/// A Socket.IO `send` event wanting an ack: `42<id>["send",{..}]`.
pub fn socketio_send(id: u64, to: Dest<'_>, cid: &str, text: &str) -> String {
    let mut out = String::with_capacity(96 + cid.len() + text.len());
    out.push_str("42");
    out.push_str(&id.to_string());
    out.push_str("[\"send\",{");
    push_send_fields(&mut out, to, cid, text);
    out.push(']');
    out
}

/// The digits at the start of `s`, as a number.
fn leading_u64(s: &str) -> Option<(u64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// Where `key` first occurs in `frame` (a vectorised substring search:
/// on these frames of a few hundred bytes, stepping from quote to quote
/// and comparing was a tenth of the generator's time per delivery).
fn find_key(frame: &str, key: &str) -> Option<usize> {
    memchr::memmem::find(frame.as_bytes(), key.as_bytes())
}

/// The number after the first `key` (e.g. `"seq":`).
pub fn u64_after(frame: &str, key: &str) -> Option<u64> {
    let at = find_key(frame, key)? + key.len();
    leading_u64(&frame[at..]).map(|(n, _)| n)
}

/// The string value after the first `key` (e.g. `"conv":"`), when it has
/// no escapes.
pub fn str_after<'a>(frame: &'a str, key: &str) -> Option<&'a str> {
    let at = find_key(frame, key)? + key.len();
    let rest = &frame[at..];
    let end = rest.find('"')?;
    let s = &rest[..end];
    (!s.ends_with('\\')).then_some(s)
}

/// A reply's outcome, as far as the scan tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `"ok"` follows the id.
    Ok,
    /// `"err"` follows the id (the code needs a full parse).
    Err,
}

/// A Courier reply `{"re":<id>,"ok"|"err":..}`: its id and outcome.
pub fn scan_reply(frame: &str) -> Option<(u64, Outcome)> {
    let (id, rest) = leading_u64(frame.strip_prefix("{\"re\":")?)?;
    if rest.starts_with(",\"ok\":") {
        Some((id, Outcome::Ok))
    } else if rest.starts_with(",\"err\":") {
        Some((id, Outcome::Err))
    } else {
        None
    }
}

/// A Socket.IO ack `43<id>[{"ok"|"err":..}]`: its id and outcome.
pub fn scan_socketio_ack(frame: &str) -> Option<(u64, Outcome)> {
    let (id, rest) = leading_u64(frame.strip_prefix("43")?)?;
    if rest.starts_with("[{\"ok\":") {
        Some((id, Outcome::Ok))
    } else if rest.starts_with("[{\"err\":") {
        Some((id, Outcome::Err))
    } else {
        None
    }
}

/// The fields of a delivered message the scenarios read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgFields<'a> {
    /// Its conversation ("" where the target has none: the raw relay).
    pub conv: &'a str,
    /// Its seq (0 where the target has none).
    pub seq: u64,
    /// Its text.
    pub text: &'a str,
}

/// A Courier `msg` event (`{"ev":"msg",..}`), or a Socket.IO `msg` event
/// (`42["msg",{..}]`).
pub fn scan_msg(frame: &str) -> Option<MsgFields<'_>> {
    if !(frame.starts_with("{\"ev\":\"msg\"") || frame.starts_with("42[\"msg\",")) {
        return None;
    }
    Some(MsgFields {
        conv: str_after(frame, "\"conv\":\"")?,
        seq: u64_after(frame, "\"seq\":")?,
        text: str_after(frame, "\"text\":\"")?,
    })
}

/// A `send` request as the raw relay forwards it: its id and text.
pub fn scan_relayed_send(frame: &str) -> Option<(u64, &str)> {
    if !frame.starts_with("{\"op\":\"send\"") {
        return None;
    }
    Some((u64_after(frame, "\"id\":")?, str_after(frame, "\"text\":\"")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn send_frames_are_the_json_a_serializer_would_write() {
        let f = courier_send(7, Dest::User("bob"), "m1-0", "00 12 xx");
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(
            v,
            json!({"op":"send","id":7,"to":{"user":"bob"},"cid":"m1-0","kind":"text","body":{"text":"00 12 xx"}})
        );
        let f = socketio_send(9, Dest::Channel("c"), "k", "q\"uote");
        let arr: Value = serde_json::from_str(f.strip_prefix("429").unwrap()).unwrap();
        assert_eq!(
            arr,
            json!(["send", {"to":{"channel":"c"},"cid":"k","kind":"text","body":{"text":"q\"uote"}}])
        );
    }

    #[test]
    fn scans_replies() {
        assert_eq!(scan_reply(r#"{"re":12,"ok":{"seq":3}}"#), Some((12, Outcome::Ok)));
        assert_eq!(scan_reply(r#"{"re":4,"err":{"code":"forbidden"}}"#), Some((4, Outcome::Err)));
        // Another field order is left to the full parse.
        assert_eq!(scan_reply(r#"{"ok":{},"re":4}"#), None);
        assert_eq!(scan_reply(r#"{"re":null,"err":{}}"#), None);
        assert_eq!(scan_socketio_ack(r#"4312[{"ok":{"seq":1}}]"#), Some((12, Outcome::Ok)));
        assert_eq!(scan_socketio_ack(r#"433[{"err":{"code":"x"}}]"#), Some((3, Outcome::Err)));
    }

    #[test]
    fn scans_messages() {
        let ev = r#"{"ev":"msg","conv":"dm:a:b","seq":41,"mid":"M","from":"a","kind":"text","body":{"text":"000 1 x"},"ts":5}"#;
        assert_eq!(scan_msg(ev), Some(MsgFields { conv: "dm:a:b", seq: 41, text: "000 1 x" }));
        let sio = r#"42["msg",{"conv":"ch:c","seq":2,"kind":"text","body":{"text":"t"}}]"#;
        assert_eq!(scan_msg(sio), Some(MsgFields { conv: "ch:c", seq: 2, text: "t" }));
        assert_eq!(scan_msg(r#"{"ev":"typing","conv":"x"}"#), None);
        assert_eq!(scan_msg(r#"{"ev":"msg","conv":"a\"","seq":1,"body":{"text":"t"}}"#), None);
        let relayed = courier_send(33, Dest::User("b"), "c", "hi");
        assert_eq!(scan_relayed_send(&relayed), Some((33, "hi")));
    }
}
