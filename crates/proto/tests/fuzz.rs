//! Property-based fuzzing of everything a peer can make this crate parse:
//! [`Request::decode`] (the frame decoder and every op's validation),
//! [`ServerFrame::decode`] and [`Conv::parse`].
//!
//! Three kinds of input: arbitrary strings, arbitrary JSON values, and
//! valid frames of every op that are then mutated (a field dropped, retyped,
//! replaced by junk, the text truncated or a byte flipped). The properties:
//! nothing panics; a valid frame decodes to exactly what it says; an error
//! carries the id whenever the frame had a readable `id` and `op`.
//!
//! Budget: `PROPTEST_CASES` (default 512 per property here, so CI stays
//! quick); a longer run is `PROPTEST_CASES=200000 cargo test -p courier-proto --test fuzz`.

use courier_proto::ids::{is_valid_channel, is_valid_cid, is_valid_user};
use courier_proto::{Conv, ErrorCode, Request, ServerFrame, Target};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------- generators ----------

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,64}"
}

fn cid() -> impl Strategy<Value = String> {
    "[!-~]{1,64}"
}

/// Any JSON value, a few levels deep, with keys that hit real field names.
fn any_json() -> impl Strategy<Value = Value> {
    json_with(any::<f64>().boxed())
}

/// JSON whose floats have few digits: serde_json (without its
/// `float_roundtrip` feature) may read extreme floats 1 ULP off, see
/// [`extreme_floats_in_custom_bodies_round_trip`].
fn tame_json() -> impl Strategy<Value = Value> {
    json_with((-1_000_000i32..1_000_000).prop_map(|n| f64::from(n) / 100.0).boxed())
}

fn json_with(floats: BoxedStrategy<f64>) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("op".to_owned()),
        Just("id".to_owned()),
        Just("to".to_owned()),
        Just("body".to_owned()),
        Just("conv".to_owned()),
        Just("text".to_owned()),
        Just("user".to_owned()),
        Just("channel".to_owned()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        floats.prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn target() -> impl Strategy<Value = Value> {
    prop_oneof![name().prop_map(|u| json!({"user": u})), name().prop_map(|c| json!({"channel": c}))]
}

fn conv() -> impl Strategy<Value = String> {
    prop_oneof![
        (name(), name()).prop_map(|(a, b)| Conv::dm(&a, &b).to_string()),
        name().prop_map(|c| format!("ch:{c}")),
    ]
}

fn body_for(kind: &'static str) -> BoxedStrategy<Value> {
    match kind {
        "text" => ".{1,40}".prop_map(|t| json!({"text": t})).boxed(),
        "image" | "file" => "m_[A-Z0-9]{1,26}".prop_map(|m| json!({"media": m, "mime":"image/png"})).boxed(),
        _ => tame_json()
            .prop_map(|v| match v {
                Value::Object(o) => Value::Object(o),
                other => json!({ "v": other }),
            })
            .boxed(),
    }
}

/// A valid frame of every op, with the op name.
fn valid_frame() -> impl Strategy<Value = (String, Value)> {
    let id = any::<u64>();
    let send = (
        id,
        target(),
        cid(),
        prop_oneof![Just("text"), Just("image"), Just("file"), Just("custom")],
        proptest::option::of(cid()),
    )
        .prop_flat_map(|(id, to, cid, kind, reply_to)| {
            body_for(kind).prop_map(move |body| {
                let mut f = json!({"op":"send","id":id,"to":to,"cid":cid,"kind":kind,"body":body});
                if let Some(r) = &reply_to {
                    f["reply_to"] = json!(r);
                }
                f
            })
        });
    let users = prop::collection::vec(name(), 0..5);
    prop_oneof![
        (id, ".{1,40}", "[!-~]{1,128}").prop_map(|(id, t, d)| json!({"op":"hello","id":id,"token":t,"device":d})),
        (id, ".{1,40}").prop_map(|(id, t)| json!({"op":"renew","id":id,"token":t})),
        send,
        (id, conv(), any::<Option<u64>>(), any::<Option<u64>>(), any::<Option<u32>>()).prop_map(
            |(id, c, a, b, l)| json!({"op":"history","id":id,"conv":c,"after":a,"before":b,"limit":l})
        ),
        id.prop_map(|id| json!({"op":"sync","id":id})),
        id.prop_map(|id| json!({"op":"channels","id":id})),
        (id, conv(), any::<u64>(), any::<bool>()).prop_map(|(id, c, s, ack)| {
            json!({"op": if ack {"ack"} else {"read"}, "id":id, "conv":c, "seq":s})
        }),
        (id, conv()).prop_map(|(id, c)| json!({"op":"typing","id":id,"conv":c})),
        (id, target(), body_for("custom")).prop_map(|(id, to, b)| json!({"op":"signal","id":id,"to":to,"body":b})),
        (id, name(), proptest::option::of(".{0,64}"), any::<bool>())
            .prop_map(|(id, c, t, p)| json!({"op":"create_channel","id":id,"channel":c,"title":t,"private":p})),
        (id, name(), 0..3usize).prop_map(|(id, c, w)| {
            {
            let op = ["join", "leave", "members"][w];
            json!({"op": op, "id": id, "channel": c})
        }
        }),
        (id, name(), name()).prop_map(|(id, c, u)| json!({"op":"add_member","id":id,"channel":c,"user":u})),
        (id, users, 0..3usize).prop_map(|(id, us, w)| {
            {
            let op = ["watch", "unwatch", "profiles"][w];
            json!({"op": op, "id": id, "users": us})
        }
        }),
        (id, proptest::option::of(".{0,64}"), proptest::option::of(".{0,140}"), 0..100u32)
            .prop_map(|(id, n, s, a)| json!({"op":"set_profile","id":id,"name":n,"status":s,"avatar":format!("avatar:{a}")})),
        (id, name(), 5..=300u32, body_for("custom"))
            .prop_map(|(id, to, ttl, c)| json!({"op":"invite","id":id,"to":to,"ttl_s":ttl,"content":c})),
        (id, cid(), any::<bool>()).prop_map(|(id, iid, a)| json!({"op":"invite_answer","id":id,"iid":iid,"accept":a})),
        (id, cid()).prop_map(|(id, iid)| json!({"op":"invite_cancel","id":id,"iid":iid})),
    ]
    .prop_map(|f| (f["op"].as_str().unwrap().to_owned(), f))
}

/// One way of damaging a frame.
#[derive(Debug, Clone)]
enum Mutation {
    DropField(usize),
    Retype(usize, Value),
    Truncate(usize),
    FlipByte(usize, u8),
    Duplicate,
    Nest,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DropField),
        (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        Just(Mutation::Duplicate),
        Just(Mutation::Nest),
    ]
}

fn apply(frame: &Value, m: &Mutation) -> String {
    let mut f = frame.clone();
    let keys: Vec<String> = f.as_object().unwrap().keys().cloned().collect();
    match m {
        Mutation::DropField(i) => {
            f.as_object_mut().unwrap().remove(&keys[i % keys.len()]);
            f.to_string()
        }
        Mutation::Retype(i, v) => {
            f[&keys[i % keys.len()]] = v.clone();
            f.to_string()
        }
        Mutation::Truncate(i) => {
            let s = f.to_string();
            let mut cut = i % (s.len() + 1);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s[..cut].to_owned()
        }
        Mutation::FlipByte(i, b) => {
            let mut bytes = f.to_string().into_bytes();
            let n = bytes.len();
            bytes[i % n] ^= b | 1;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::Duplicate => {
            let s = f.to_string();
            // The same key twice: `{"op":"x",...,"op":"y"}`.
            format!("{},\"op\":\"sync\"}}", &s[..s.len() - 1])
        }
        Mutation::Nest => json!({"op": f["op"], "id": f["id"], "body": f}).to_string(),
    }
}

/// The properties every decode result must have, whatever the input.
fn check_decode(text: &str) {
    match Request::decode(text) {
        Ok((_, req)) => {
            // A decoded request respects the identifier rules it validated.
            if let Request::Send(s) = &req {
                assert!(s.validate().is_ok(), "accepted an invalid send: {text}");
                assert!(is_valid_cid(&s.cid));
            }
        }
        Err(e) => {
            assert!(matches!(e.code, ErrorCode::BadRequest | ErrorCode::Unsupported), "{e:?} for {text}");
            if e.code == ErrorCode::Unsupported {
                assert!(e.id.is_some(), "unsupported without the id: {text}");
            }
            assert!(e.message.len() < 4096, "error message grows with the input: {} bytes", e.message.len());
        }
    }
}

// ---------- properties ----------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decode_never_panics_on_arbitrary_strings(s in ".{0,256}") {
        check_decode(&s);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes_as_text(b in prop::collection::vec(any::<u8>(), 0..256)) {
        check_decode(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json(v in any_json()) {
        check_decode(&v.to_string());
    }

    #[test]
    fn arbitrary_json_objects_with_a_real_op(v in any_json(), op in prop_oneof![
        Just("hello"), Just("renew"), Just("send"), Just("history"), Just("sync"), Just("ack"), Just("read"),
        Just("typing"), Just("signal"), Just("channels"), Just("create_channel"), Just("join"), Just("leave"),
        Just("add_member"), Just("members"), Just("watch"), Just("unwatch"), Just("set_profile"),
        Just("profiles"), Just("invite"), Just("invite_answer"), Just("invite_cancel")], id in any::<u64>()) {
        let mut o = match v { Value::Object(o) => o, other => { let mut m = Map::new(); m.insert("x".into(), other); m } };
        o.insert("op".into(), json!(op));
        o.insert("id".into(), json!(id));
        let text = Value::Object(o).to_string();
        check_decode(&text);
        // With a readable id and a known op, any failure echoes the id.
        if let Err(e) = Request::decode(&text) {
            prop_assert_eq!(e.id, Some(id), "{}", text);
            prop_assert_eq!(e.op.as_deref(), Some(op));
        }
    }

    #[test]
    fn valid_frames_of_every_op_decode_to_what_they_say((op, frame) in valid_frame()) {
        let text = frame.to_string();
        let (id, req) = Request::decode(&text).unwrap_or_else(|e| panic!("valid {op} frame refused: {e:?}\n{text}"));
        prop_assert_eq!(id, frame["id"].as_u64().unwrap());
        prop_assert_eq!(req.op(), op.as_str());
        match &req {
            Request::Send(s) => {
                // Round trip: the decoded request, encoded again, decodes to itself.
                let mut again = serde_json::to_value(s).unwrap();
                again["op"] = json!("send");
                again["id"] = json!(id);
                let (_, req2) = Request::decode(&again.to_string()).unwrap();
                prop_assert_eq!(&req2, &req);
                prop_assert_eq!(Value::Object(s.body.clone()), frame["body"].clone());
                prop_assert_eq!(s.cid.as_str(), frame["cid"].as_str().unwrap());
            }
            Request::History { conv, after, before, limit } => {
                prop_assert_eq!(conv.to_string(), frame["conv"].as_str().unwrap());
                prop_assert_eq!(*after, frame["after"].as_u64());
                prop_assert_eq!(*before, frame["before"].as_u64());
                prop_assert_eq!(limit.map(u64::from), frame["limit"].as_u64());
            }
            Request::Ack { conv, seq } | Request::Read { conv, seq } => {
                prop_assert_eq!(conv.to_string(), frame["conv"].as_str().unwrap());
                prop_assert_eq!(*seq, frame["seq"].as_u64().unwrap());
            }
            Request::Signal { to, .. } => prop_assert!(to.is_valid()),
            Request::AddMember { channel, user } => {
                prop_assert!(is_valid_channel(channel) && is_valid_user(user));
            }
            Request::Invite { to, ttl_s, .. } => {
                prop_assert_eq!(to.as_str(), frame["to"].as_str().unwrap());
                prop_assert_eq!(u64::from(*ttl_s), frame["ttl_s"].as_u64().unwrap());
            }
            Request::Watch { users } | Request::Unwatch { users } | Request::Profiles { users } => {
                prop_assert_eq!(users.len(), frame["users"].as_array().unwrap().len());
            }
            _ => {}
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(((_, frame), m) in (valid_frame(), mutation())) {
        check_decode(&apply(&frame, &m));
    }

    #[test]
    fn server_frame_decode_never_panics(v in any_json(), s in ".{0,128}") {
        let _ = ServerFrame::decode(&v.to_string());
        let _ = ServerFrame::decode(&s);
        // Also shaped like events and replies.
        for ev in ["msg", "receipt", "read", "typing", "signal", "member", "presence", "profile", "invite", "invite_state", "token_expiring", "aurora"] {
            let mut e = match &v { Value::Object(o) => o.clone(), _ => Map::new() };
            e.insert("ev".into(), json!(ev));
            let _ = ServerFrame::decode(&Value::Object(e).to_string());
        }
        let _ = ServerFrame::decode(&json!({"re": v.clone(), "ok": v.clone()}).to_string());
        let _ = ServerFrame::decode(&json!({"re": 1, "err": v}).to_string());
    }

    #[test]
    fn conv_parse_accepts_exactly_the_canonical_spelling(s in "(dm:|ch:|)[A-Za-z0-9_.:-]{0,70}") {
        if let Some(c) = Conv::parse(&s) {
            // Canonical: printing it gives the input back, and parsing that is stable.
            prop_assert_eq!(c.to_string(), s.clone());
            prop_assert_eq!(Conv::parse(&c.to_string()), Some(c.clone()));
            match &c {
                Conv::Dm(a, b) => prop_assert!(is_valid_user(a) && is_valid_user(b) && a.as_bytes() <= b.as_bytes()),
                Conv::Channel(n) => prop_assert!(is_valid_channel(n)),
            }
        }
    }

    #[test]
    fn conv_parse_never_panics(s in ".{0,100}") {
        let _ = Conv::parse(&s);
    }

    #[test]
    fn dm_convs_of_any_two_users_parse_back(a in name(), b in name()) {
        let c = Conv::dm(&a, &b);
        prop_assert_eq!(Conv::parse(&c.to_string()), Some(c.clone()));
        prop_assert_eq!(Conv::dm(&b, &a), c.clone());
        prop_assert!(c.is_dm_party(&a) && c.is_dm_party(&b));
        let t = Target::User(b.clone());
        prop_assert_eq!(t.conv(&a), Some(c));
    }
}

/// Known finding (issue 7): a `custom` body's extreme floats are read 1 ULP
/// off by serde_json's default float parser, so the server stores and
/// forwards a slightly different number than the sender sent. The fix is
/// serde_json's `float_roundtrip` feature (a workspace-wide rebuild, left to
/// the lead). Run with `--ignored` to check it.
#[test]
#[ignore = "needs serde_json's float_roundtrip feature (see docs/reliability.md)"]
fn extreme_floats_in_custom_bodies_round_trip() {
    let sent = r#"{"op":"send","id":1,"to":{"user":"bob"},"cid":"c","kind":"custom","body":{"x":3.164081679238211e-290}}"#;
    let (_, req) = Request::decode(sent).unwrap();
    let Request::Send(s) = req else { panic!() };
    assert_eq!(serde_json::to_string(&s.body).unwrap(), r#"{"x":3.164081679238211e-290}"#);
}
