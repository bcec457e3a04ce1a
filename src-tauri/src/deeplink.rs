//! `courier://` deep links: a pure parser, validated with the protocol's id
//! rules, so a malformed link is refused with a message and never panics.
//!
//! - `courier://chat/<user>` opens the DM with `<user>`;
//! - `courier://channel/<name>` opens (or offers to join) `#<name>`;
//! - `courier://call/<iid>` shows the call invitation `<iid>`.
//!
//! Percent-escapes are decoded; one trailing slash, a query and a fragment
//! are ignored. Anything else is an error.

use courier_proto::ids::{is_valid_channel, is_valid_cid, is_valid_user};
use serde::Serialize;

/// The scheme registered with the OS.
pub const SCHEME: &str = "courier";

/// Longest link accepted (ids are ≤ 64 bytes; escapes triple that).
const MAX_LINK_LEN: usize = 512;

/// What a link asks the app to open. Serialized for the UI as
/// `{"kind":"chat","user":..}`, `{"kind":"channel","channel":..}`,
/// `{"kind":"call","iid":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeepLink {
    /// The DM with this user.
    Chat {
        /// The other user.
        user: String,
    },
    /// This channel.
    Channel {
        /// The channel name.
        channel: String,
    },
    /// This call invitation.
    Call {
        /// The invitation id.
        iid: String,
    },
}

/// Why a link was refused; `Display` is the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeepLinkError {
    /// Not a `courier:` URL at all.
    #[error("not a courier:// link")]
    NotCourier,
    /// Longer than any valid link.
    #[error("the link is too long")]
    TooLong,
    /// The part after `courier://` is not `<kind>/<id>`.
    #[error(
        "the link should look like courier://chat/<user>, courier://channel/<name> or courier://call/<id>"
    )]
    Shape,
    /// An unknown kind (`courier://foo/..`).
    #[error("unknown link kind \"{0}\" (expected chat, channel or call)")]
    UnknownKind(String),
    /// A bad `%` escape or bytes that are not UTF-8.
    #[error("the link contains an invalid %-escape")]
    Escape,
    /// The id is not a valid user id, channel name or invitation id.
    #[error("\"{id}\" is not a valid {what}")]
    BadId {
        /// What was expected.
        what: &'static str,
        /// The decoded id (truncated for display).
        id: String,
    },
}

/// Parses a `courier://…` link.
///
/// # Errors
/// [`DeepLinkError`] for anything that is not exactly one of the three forms.
pub fn parse_deep_link(link: &str) -> Result<DeepLink, DeepLinkError> {
    let link = link.trim();
    if link.len() > MAX_LINK_LEN {
        return Err(DeepLinkError::TooLong);
    }
    let rest = strip_scheme(link).ok_or(DeepLinkError::NotCourier)?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    // Drop the fragment, then the query.
    let rest = rest.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (kind, id) = rest.split_once('/').ok_or(DeepLinkError::Shape)?;
    if id.is_empty() || id.contains('/') {
        return Err(DeepLinkError::Shape);
    }
    let id = percent_decode(id)?;
    // The id is echoed to the user: without control or bidi characters
    // (a link must not make its own error message read backwards).
    let bad = |what: &'static str, id: &str| DeepLinkError::BadId {
        what,
        id: id
            .chars()
            .filter(|c| !c.is_control() && !courier_proto::ids::is_bidi_control(*c))
            .take(70)
            .collect(),
    };
    match kind.to_ascii_lowercase().as_str() {
        "chat" if is_valid_user(&id) => Ok(DeepLink::Chat { user: id }),
        "chat" => Err(bad("user id", &id)),
        "channel" => {
            let name = id.strip_prefix('#').unwrap_or(&id);
            if is_valid_channel(name) {
                Ok(DeepLink::Channel { channel: name.to_owned() })
            } else {
                Err(bad("channel name", name))
            }
        }
        "call" if is_valid_cid(&id) => Ok(DeepLink::Call { iid: id }),
        "call" => Err(bad("invitation id", &id)),
        "" => Err(DeepLinkError::Shape),
        other => Err(DeepLinkError::UnknownKind(other.chars().take(32).collect())),
    }
}

/// What the user is told about a refused link: its first 100 characters,
/// without control or bidi characters (a link from a web page or another
/// program must not make the message read backwards), and why.
pub fn refusal_message(raw: &str, e: &DeepLinkError) -> String {
    let shown: String = raw.chars().take(100).collect();
    format!("Cannot open {shown}: {e}")
        .chars()
        .filter(|c| !c.is_control() && !courier_proto::ids::is_bidi_control(*c))
        .collect()
}

/// The first argument that looks like a courier link (the OS passes the URL
/// as an argument when it launches the app for one).
pub fn link_in_args<S: AsRef<str>>(args: &[S]) -> Option<&str> {
    args.iter().map(AsRef::as_ref).find(|a| strip_scheme(a.trim()).is_some())
}

fn strip_scheme(s: &str) -> Option<&str> {
    let (scheme, rest) = s.split_once(':')?;
    scheme.eq_ignore_ascii_case(SCHEME).then_some(rest)
}

fn percent_decode(s: &str) -> Result<String, DeepLinkError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(DeepLinkError::Escape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| DeepLinkError::Escape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| DeepLinkError::Escape)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DeepLinkError::Escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(u: &str) -> DeepLink {
        DeepLink::Chat { user: u.into() }
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(parse_deep_link("courier://chat/bob"), Ok(chat("bob")));
        assert_eq!(
            parse_deep_link("courier://channel/lobby"),
            Ok(DeepLink::Channel { channel: "lobby".into() })
        );
        assert_eq!(
            parse_deep_link("courier://call/01JABCDEF"),
            Ok(DeepLink::Call { iid: "01JABCDEF".into() })
        );
    }

    #[test]
    fn tolerated_variations() {
        assert_eq!(parse_deep_link("  COURIER://Chat/bob/ "), Ok(chat("bob")));
        assert_eq!(parse_deep_link("courier:chat/bob"), Ok(chat("bob")));
        assert_eq!(parse_deep_link("courier://chat/bob?x=1#frag"), Ok(chat("bob")));
        assert_eq!(parse_deep_link("courier://chat/b%6Fb"), Ok(chat("bob")));
        assert_eq!(
            parse_deep_link("courier://channel/%23lobby"),
            Ok(DeepLink::Channel { channel: "lobby".into() })
        );
    }

    #[test]
    fn refused_with_a_message() {
        let cases = [
            ("https://chat/bob", DeepLinkError::NotCourier),
            ("bob", DeepLinkError::NotCourier),
            ("", DeepLinkError::NotCourier),
            ("courier://", DeepLinkError::Shape),
            ("courier://chat", DeepLinkError::Shape),
            ("courier://chat/", DeepLinkError::Shape),
            ("courier://chat/a/b", DeepLinkError::Shape),
            ("courier:///bob", DeepLinkError::Shape),
            ("courier://dance/bob", DeepLinkError::UnknownKind("dance".into())),
            ("courier://chat/%zz", DeepLinkError::Escape),
            ("courier://chat/%", DeepLinkError::Escape),
            ("courier://chat/%ff", DeepLinkError::Escape),
        ];
        for (link, want) in cases {
            let got = parse_deep_link(link);
            assert_eq!(got, Err(want), "{link}");
            assert!(!got.unwrap_err().to_string().is_empty());
        }
        for link in [
            "courier://chat/bob%20smith",
            "courier://chat/<script>",
            "courier://channel/a:b",
            "courier://call/with%20space",
        ] {
            let e = parse_deep_link(link).unwrap_err();
            assert!(matches!(e, DeepLinkError::BadId { .. }), "{link}: {e:?}");
            assert!(e.to_string().contains("not a valid"), "{e}");
        }
        let long = format!("courier://chat/{}", "a".repeat(65));
        assert!(matches!(parse_deep_link(&long), Err(DeepLinkError::BadId { .. })));
        let e = parse_deep_link("courier://chat/%E2%80%AEexe.pdf%0A%1B[31m").unwrap_err().to_string();
        assert!(!e.contains(['\u{202E}', '\n', '\u{1b}']), "{e:?}");
        assert!(e.contains("exe.pdf"), "{e}");
        let huge = format!("courier://chat/{}", "a".repeat(10_000));
        assert_eq!(parse_deep_link(&huge), Err(DeepLinkError::TooLong));
    }

    #[test]
    fn a_refused_link_is_echoed_without_control_or_bidi_characters() {
        for raw in ["courier://dance/\u{202E}exe.pdf\n\u{1b}[31m", "courier://\u{2067}dance\u{7}/x"] {
            let m = refusal_message(raw, &parse_deep_link(raw).unwrap_err());
            assert!(!m.contains(['\u{202E}', '\u{2067}', '\n', '\u{1b}', '\u{7}']), "{m:?}");
            assert!(m.starts_with("Cannot open courier://"), "{m}");
        }
        assert!(refusal_message(&"x".repeat(10_000), &DeepLinkError::TooLong).len() < 200);
    }

    #[test]
    fn args_scan() {
        let args = ["/usr/bin/courier", "--profile", "x", "courier://chat/bob"];
        assert_eq!(link_in_args(&args), Some("courier://chat/bob"));
        assert_eq!(link_in_args(&["courier", "--flag"]), None);
    }

    /// A property-style loop: random garbage (and mutations of valid links)
    /// never panics, and whatever parses is valid by the protocol's rules.
    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: Vec<char> =
            "courier:/%#?chatnelcl0123456789abcdefABCDEF-_.@ \u{e9}\u{1F600}\0\n\\".chars().collect();
        let seeds = ["courier://chat/bob", "courier://channel/lobby", "courier://call/01J", "courier:"];
        for _ in 0..20_000 {
            let mut s: String = seeds[(next() % seeds.len() as u64) as usize].into();
            for _ in 0..(next() % 12) {
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                let mut chars: Vec<char> = s.chars().collect();
                let at = (next() % (chars.len() as u64 + 1)) as usize;
                match next() % 3 {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ if at < chars.len() => chars[at] = c,
                    _ => chars.push(c),
                }
                s = chars.into_iter().collect();
            }
            match parse_deep_link(&s) {
                Ok(DeepLink::Chat { user }) => assert!(is_valid_user(&user), "{s:?}"),
                Ok(DeepLink::Channel { channel }) => assert!(is_valid_channel(&channel), "{s:?}"),
                Ok(DeepLink::Call { iid }) => assert!(is_valid_cid(&iid), "{s:?}"),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn serializes_for_the_ui() {
        let v = serde_json::to_value(chat("bob")).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "chat", "user": "bob"}));
    }
}
