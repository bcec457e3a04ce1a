//! The typed bridge (style §12): the TypeScript mirrors in `ui/src/types/`
//! and the command names `ui/src/services/transport.ts` invokes are checked
//! against the Rust types, so the two sides cannot drift.
//!
//! - every `ClientEvent` variant (samples built below; the exhaustive match
//!   makes a new variant a compile error here) serializes to a `type` that
//!   events.ts lists, with field names that appear in the TS mirrors;
//! - every `type` events.ts lists exists in Rust;
//! - the shell's own types (settings, account) have exactly app.ts's fields;
//! - every command transport.ts invokes is registered by the shell.

use courier_client::{
    ClientEvent, ConnState, ConversationView, DeliveryStatus, InviteView, MessageView, UploadedMedia,
};
use courier_desktop::commands::COMMANDS;
use courier_desktop::settings::{Account, ConnectConfig, ServerInfo, Settings};
use courier_proto::{Conv, Invite, InviteState, Profile, Role, Target};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn ui(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn message() -> MessageView {
    MessageView {
        conv: Conv::dm("alice", "bob"),
        seq: Some(1),
        mid: Some("m1".into()),
        cid: "c1".into(),
        from: "bob".into(),
        to: Target::User("alice".into()),
        kind: "text".into(),
        body: obj(json!({"text": "hi", "mentions": ["alice"],
                         "forwarded_from": {"conv": "ch:lobby", "mid": "m0", "from": "carol"}})),
        ts: Some(1),
        reply_to: Some("m0".into()),
        status: DeliveryStatus::Failed,
        error: Some("x".into()),
        edited: Some(2),
        reactions: [("👍".to_owned(), vec!["alice".to_owned()])].into(),
        recalled: true,
        pinned: Some(3),
    }
}

fn invite() -> InviteView {
    InviteView::new(
        Invite {
            iid: "i1".into(),
            from: "bob".into(),
            to: "alice".into(),
            room: "call-i1".into(),
            content: Map::new(),
            state: InviteState::Pending,
            created: 1,
            expires: 2,
            received: true,
            reason: Some("r".into()),
            response: Some(Map::new()),
        },
        "alice",
        0,
    )
}

/// One sample of every variant, with every optional field set.
fn samples() -> Vec<ClientEvent> {
    let conv = Conv::channel("lobby");
    let all = vec![
        ClientEvent::Connection {
            state: ConnState::Reconnecting,
            url: Some("ws://x".into()),
            retry_in_ms: Some(1),
            reason: Some("r".into()),
            close_code: Some(1006),
        },
        ClientEvent::MessageAdded { message: message() },
        ClientEvent::MessageUpdated { message: message() },
        ClientEvent::HistoryFilled { conv: conv.clone(), added: 3 },
        ClientEvent::ConversationUpdated {
            conversation: ConversationView {
                conv: conv.clone(),
                kind: "channel".into(),
                peer: Some("bob".into()),
                channel: Some("lobby".into()),
                last_seq: 1,
                last_ts: 1,
                synced_seq: 1,
                read_seq: 1,
                unread: 0,
                mentions_unread: 1,
                pins: vec!["m1".into()],
                peer_read_seq: 0,
                peer_recv_seq: 0,
                draft: Some("d".into()),
                last_message: Some(message()),
            },
        },
        ClientEvent::SyncCompleted { conversations: 1, fetched: 2 },
        ClientEvent::Receipt { conv: conv.clone(), user: "bob".into(), recv_seq: 1, read_seq: 1 },
        ClientEvent::Typing { conv: conv.clone(), user: "bob".into() },
        ClientEvent::Presence { user: "bob".into(), online: false, last_seen: Some(1) },
        ClientEvent::Profile {
            profile: Profile {
                user: "bob".into(),
                name: "Bob".into(),
                avatar: "avatar:1".into(),
                status: "s".into(),
            },
        },
        ClientEvent::Member {
            channel: "lobby".into(),
            user: "bob".into(),
            joined: true,
            removed: false,
            role: Some(Role::Admin),
        },
        ClientEvent::Invite { invite: invite() },
        ClientEvent::Signal { from: "bob".into(), to: Target::Call("i1".into()), body: Map::new(), ts: 1 },
        ClientEvent::TokenExpiring { exp: 1 },
        ClientEvent::TokenRequired,
    ];
    // Exhaustive: a new variant fails to compile until it has a sample.
    for e in &all {
        match e {
            ClientEvent::Connection { .. }
            | ClientEvent::MessageAdded { .. }
            | ClientEvent::MessageUpdated { .. }
            | ClientEvent::HistoryFilled { .. }
            | ClientEvent::ConversationUpdated { .. }
            | ClientEvent::SyncCompleted { .. }
            | ClientEvent::Receipt { .. }
            | ClientEvent::Typing { .. }
            | ClientEvent::Presence { .. }
            | ClientEvent::Profile { .. }
            | ClientEvent::Member { .. }
            | ClientEvent::Invite { .. }
            | ClientEvent::Signal { .. }
            | ClientEvent::TokenExpiring { .. }
            | ClientEvent::TokenRequired => {}
        }
    }
    all
}

/// Object keys anywhere in `v`, except inside free-form JSON objects
/// (`body`, `content`, `response`) and maps keyed by data (`reactions`).
fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                if !matches!(k.as_str(), "body" | "content" | "response" | "reactions") {
                    keys(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// Whether the TS source declares a property `key` (`key:` or `key?:`).
fn declares(ts: &str, key: &str) -> bool {
    ts.contains(&format!("{key}:")) || ts.contains(&format!("{key}?:"))
}

#[test]
fn every_client_event_is_mirrored_in_events_ts() {
    let events_ts = ui("types/events.ts");
    let all_ts = [events_ts.clone(), ui("types/model.ts"), ui("types/protocol.ts")].join("\n");
    let mut rust_types = BTreeSet::new();
    let mut missing = Vec::new();
    for ev in samples() {
        let v = serde_json::to_value(&ev).unwrap();
        let ty = v["type"].as_str().unwrap().to_owned();
        if !events_ts.contains(&format!("'{ty}'")) {
            missing.push(format!("event type '{ty}'"));
        }
        let mut ks = BTreeSet::new();
        keys(&v, &mut ks);
        for k in ks {
            if !declares(&all_ts, &k) {
                missing.push(format!("field {k} (of {ty})"));
            }
        }
        rust_types.insert(ty);
    }
    assert!(missing.is_empty(), "ui/src/types is missing: {missing:#?}");
    // And the other way: every type the UI handles exists.
    for cap in events_ts.split("type: '").skip(1) {
        let ty = cap.split('\'').next().unwrap();
        assert!(rust_types.contains(ty), "events.ts has type '{ty}' that ClientEvent does not");
    }
}

#[test]
fn enum_spellings_match() {
    let events_ts = ui("types/events.ts");
    for s in ["disconnected", "connecting", "connected", "reconnecting", "stopped"] {
        let v: ConnState = serde_json::from_value(json!(s)).unwrap();
        assert_eq!(serde_json::to_value(v).unwrap(), json!(s));
        assert!(events_ts.contains(&format!("'{s}'")), "ConnState {s}");
    }
    let model_ts = ui("types/model.ts");
    for s in ["pending", "sent", "delivered", "read", "failed", "received"] {
        assert!(DeliveryStatus::parse(s).is_some());
        assert!(model_ts.contains(&format!("'{s}'")), "DeliveryStatus {s}");
    }
    let protocol_ts = ui("types/protocol.ts");
    for s in ["pending", "accepted", "refused", "canceled", "expired", "failed"] {
        let v: InviteState = serde_json::from_value(json!(s)).unwrap();
        assert_eq!(serde_json::to_value(v).unwrap(), json!(s));
        assert!(protocol_ts.contains(&format!("'{s}'")), "InviteState {s}");
    }
    for s in ["owner", "admin", "member"] {
        let v: Role = serde_json::from_value(json!(s)).unwrap();
        assert_eq!(serde_json::to_value(v).unwrap(), json!(s));
        assert!(protocol_ts.contains(&format!("'{s}'")), "Role {s}");
    }
    let m = UploadedMedia { media: "m".into(), mime: "x".into(), size: 1, sha256: "h".into() };
    let mut ks = BTreeSet::new();
    keys(&serde_json::to_value(m).unwrap(), &mut ks);
    assert!(ks.iter().all(|k| declares(&model_ts, k)));
}

#[test]
fn shell_types_match_app_ts() {
    let app_ts = ui("types/app.ts");
    let mut ks = BTreeSet::new();
    keys(&serde_json::to_value(Settings::default()).unwrap(), &mut ks);
    for cfg in [
        ConnectConfig::Embedded,
        ConnectConfig::Remote { url: "u".into(), token: "t".into() },
        ConnectConfig::Dev { url: "u".into(), user: "a".into() },
    ] {
        let v = serde_json::to_value(&cfg).unwrap();
        let mode = v["mode"].as_str().unwrap();
        assert!(app_ts.contains(&format!("mode: '{mode}'")), "ConnectConfig mode {mode}");
        keys(&serde_json::to_value(Account { user: "a".into(), server: cfg }).unwrap(), &mut ks);
    }
    // ServerInfo: every field always present, an unannounced window as null.
    let info = ServerInfo { features: vec![], edit_window_s: None, recall_window_s: Some(86_400) };
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(v, json!({"features": [], "edit_window_s": null, "recall_window_s": 86_400}));
    let server_info = app_ts.split("export interface ServerInfo {").nth(1).expect("app.ts has ServerInfo");
    let server_info = server_info.split('}').next().unwrap();
    for k in v.as_object().unwrap().keys() {
        assert!(declares(server_info, k), "app.ts ServerInfo lacks {k}");
    }
    for k in &ks {
        assert!(declares(&app_ts, k), "app.ts lacks {k}");
    }
    // Every Settings field of app.ts exists in Rust.
    let block = app_ts.split("export interface Settings {").nth(1).unwrap().split('}').next().unwrap();
    for line in
        block.lines().map(str::trim).filter(|l| !l.starts_with('/') && !l.starts_with('*') && l.contains(':'))
    {
        let k = line.split([':', '?']).next().unwrap().trim();
        assert!(ks.contains(k), "Settings.{k} is in app.ts but not in Rust");
    }
    for theme in ["system", "light", "dark"] {
        assert!(app_ts.contains(&format!("'{theme}'")));
        let _: courier_desktop::settings::ThemeChoice = serde_json::from_value(json!(theme)).unwrap();
    }
    for lang in ["en", "zh-CN"] {
        assert!(app_ts.contains(&format!("'{lang}'")));
        let _: courier_desktop::settings::Language = serde_json::from_value(json!(lang)).unwrap();
    }
}

#[test]
fn every_invoked_command_is_registered() {
    let transport = ui("services/transport.ts");
    let mut invoked = BTreeSet::new();
    for part in transport.split("this.call<").skip(1) {
        if let Some(name) = part.split("('").nth(1) {
            invoked.insert(name.split('\'').next().unwrap().to_owned());
        }
    }
    assert!(invoked.len() >= 30, "parsed only {invoked:?}");
    let missing: Vec<_> = invoked.iter().filter(|c| !COMMANDS.contains(&c.as_str())).collect();
    assert!(missing.is_empty(), "transport.ts invokes unregistered commands: {missing:?}");
    // The registered list is the handler list (kept next to it in lib.rs).
    let lib = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for c in COMMANDS {
        assert!(lib.contains(&format!("commands::{c},")), "{c} is in COMMANDS but not in generate_handler!");
    }
    assert!(transport.contains("'courier://event'"), "event name");
    assert_eq!(courier_desktop::bridge::EVENT_NAME, "courier://event");
}
