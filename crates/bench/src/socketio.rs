//! The few Engine.IO v4 / Socket.IO v5 text packets the generator needs to
//! drive the Socket.IO peer over a plain WebSocket (no long-polling, no
//! binary attachments, default namespace only). Pure functions, no IO.
//!
//! Engine.IO packet types: `0` open, `2` ping, `3` pong, `4` message.
//! A Socket.IO packet rides in an Engine.IO message: `40` connect,
//! `42[...]` event, `42<id>[...]` event wanting an ack, `43<id>[...]` ack,
//! `44{...}` connect error.

use serde_json::Value;

/// The WebSocket path of an Engine.IO v4 server.
pub const WS_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// A packet from the server, as the generator cares about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// Engine.IO handshake (`0{...}`).
    Open,
    /// Engine.IO ping: answer with [`PONG`].
    Ping,
    /// Namespace connected (`40{...}`).
    Connected,
    /// Namespace refused (`44{...}`), with the server's message.
    ConnectError(String),
    /// An event: name and first argument.
    Event(String, Value),
    /// An ack of the request with this id: its first argument.
    Ack(u64, Value),
    /// Anything else (pong, noop, disconnect, …).
    Other,
}

/// The Engine.IO pong packet.
pub const PONG: &str = "3";

/// `40{auth}`: connect to the default namespace with an auth payload.
pub fn connect(auth: &Value) -> String {
    format!("40{auth}")
}

/// `42<id>["name",arg]`: an event that wants an ack.
pub fn event_with_ack(id: u64, name: &str, arg: &Value) -> String {
    let mut s = format!("42{id}[");
    s.push_str(&Value::String(name.to_owned()).to_string());
    s.push(',');
    s.push_str(&arg.to_string());
    s.push(']');
    s
}

/// Decodes one text frame from the server.
///
/// # Errors
/// A `42`/`43` packet whose payload is not a JSON array.
pub fn decode(text: &str) -> Result<Packet, serde_json::Error> {
    let b = text.as_bytes();
    Ok(match b.first() {
        Some(b'0') => Packet::Open,
        Some(b'2') => Packet::Ping,
        Some(b'4') => match b.get(1) {
            Some(b'0') => Packet::Connected,
            Some(b'4') => Packet::ConnectError(text[2..].to_owned()),
            Some(b'2') => {
                let (_, rest) = split_id(&text[2..]);
                let mut arr: Vec<Value> = serde_json::from_str(rest)?;
                let arg = if arr.len() > 1 { arr.swap_remove(1) } else { Value::Null };
                let name = arr.first().and_then(Value::as_str).unwrap_or_default().to_owned();
                Packet::Event(name, arg)
            }
            Some(b'3') => {
                let (id, rest) = split_id(&text[2..]);
                let mut arr: Vec<Value> = serde_json::from_str(rest)?;
                let arg = if arr.is_empty() { Value::Null } else { arr.swap_remove(0) };
                match id {
                    Some(id) => Packet::Ack(id, arg),
                    None => Packet::Other,
                }
            }
            _ => Packet::Other,
        },
        _ => Packet::Other,
    })
}

fn split_id(s: &str) -> (Option<u64>, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    (s[..digits].parse().ok(), &s[digits..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_connect_and_events() {
        assert_eq!(connect(&json!({"token":"dev:a"})), r#"40{"token":"dev:a"}"#);
        assert_eq!(event_with_ack(7, "send", &json!({"x":1})), r#"427["send",{"x":1}]"#);
    }

    #[test]
    fn decodes_server_packets() {
        assert_eq!(decode(r#"0{"sid":"x","pingInterval":25000}"#).unwrap(), Packet::Open);
        assert_eq!(decode("2").unwrap(), Packet::Ping);
        assert_eq!(decode(r#"40{"sid":"y"}"#).unwrap(), Packet::Connected);
        assert_eq!(
            decode(r#"44{"message":"no"}"#).unwrap(),
            Packet::ConnectError(r#"{"message":"no"}"#.into())
        );
        assert_eq!(decode(r#"42["msg",{"seq":1}]"#).unwrap(), Packet::Event("msg".into(), json!({"seq":1})));
        assert_eq!(decode(r#"4312[{"ok":{}}]"#).unwrap(), Packet::Ack(12, json!({"ok":{}})));
        assert_eq!(decode("3").unwrap(), Packet::Other);
        assert!(decode("42{").is_err());
    }
}
