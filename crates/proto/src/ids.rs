//! Identifiers: user ids, channel names, conversation ids, client message ids,
//! and message targets.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest user id or channel name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest client message id.
pub const MAX_CID_LEN: usize = 64;

/// Whether `s` is a valid user id or channel name: `^[A-Za-z0-9_.-]{1,64}$`.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `s` is a valid user id.
pub fn is_valid_user(s: &str) -> bool {
    is_valid_name(s)
}

/// Whether `s` is a valid channel name.
pub fn is_valid_channel(s: &str) -> bool {
    is_valid_name(s)
}

/// Whether `s` is a valid client message id: 1–64 chars in 0x21–0x7E.
pub fn is_valid_cid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_CID_LEN && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Whether `s` is a media id as servers mint them: `m_` followed by 26
/// Crockford base32 characters (`^m_[0-9A-HJKMNP-TV-Z]{26}$`, a ULID).
/// Clients accept nothing else from a peer: a cache file name or URL is
/// built from a media id only after this check.
pub fn is_valid_media_id(s: &str) -> bool {
    s.len() == 28
        && s.starts_with("m_")
        && s.bytes().skip(2).all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'H' | b'J' | b'K' | b'M' | b'N' | b'P'..=b'T' | b'V'..=b'Z'))
}

/// Whether `c` is a bidirectional formatting character: the marks (LRM,
/// RLM, ALM), embeddings and overrides (U+202A–U+202E) and isolates
/// (U+2066–U+2069). A peer's name or file name shown as plain text drops
/// them: `invoice\u{202E}gpj.exe` reads "invoiceexe.jpg" with them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Longest file name [`safe_file_name`] returns, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 120;

/// A file name a peer suggested (`body.name`), made safe to offer as a save
/// dialog's default on every OS: path separators, control and bidi
/// characters (which can disguise `exe.pdf` as `fdp.exe`) and characters
/// Windows forbids become `_` or go; leading dots (hidden files) and
/// trailing dots and spaces go; Windows device names (`CON`, `nul.txt`,
/// `COM1`…) get a `_` prefix; the name is cut to
/// [`MAX_FILE_NAME_BYTES`] keeping a short extension. Empty results become
/// `fallback`.
pub fn safe_file_name(name: &str, fallback: &str) -> String {
    let mut out: String = name
        .chars()
        .filter(|c| {
            !is_bidi_control(*c) && !c.is_control() && !matches!(*c, '\u{FEFF}' | '\u{200B}'..='\u{200D}')
        })
        .map(|c| if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    out = out.trim().trim_start_matches('.').trim_end_matches(['.', ' ']).trim().to_owned();
    if out.len() > MAX_FILE_NAME_BYTES {
        let ext = out.rfind('.').map(|i| out[i..].to_owned()).filter(|e| e.len() <= 16).unwrap_or_default();
        let mut cut = MAX_FILE_NAME_BYTES - ext.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out = format!("{}{ext}", out[..cut].trim_end_matches(['.', ' ']));
    }
    let stem = out.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || (stem.strip_prefix("COM").or_else(|| stem.strip_prefix("LPT")))
            // Windows also reserves the superscript digits: `COM¹`.
            .is_some_and(|n| {
                matches!(n, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
            });
    if reserved {
        out.insert(0, '_');
    }
    if out.is_empty() { fallback.to_owned() } else { out }
}

/// A conversation: a direct-message pair or a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Serialized as its string form (`dm:a:b`, `ch:name`).
#[cfg_attr(feature = "specta", derive(specta::Type), specta(type = String))]
pub enum Conv {
    /// `dm:<a>:<b>` with `a <= b` bytewise.
    Dm(String, String),
    /// `ch:<channel>`.
    Channel(String),
}

impl Conv {
    /// The DM conversation between two users, whichever order they come in.
    pub fn dm(a: &str, b: &str) -> Conv {
        if a.as_bytes() <= b.as_bytes() {
            Conv::Dm(a.to_owned(), b.to_owned())
        } else {
            Conv::Dm(b.to_owned(), a.to_owned())
        }
    }

    /// The conversation of a channel.
    pub fn channel(name: &str) -> Conv {
        Conv::Channel(name.to_owned())
    }

    /// Parses and validates a conversation id. A DM id whose users are not
    /// sorted bytewise is rejected: each conversation has one spelling.
    pub fn parse(s: &str) -> Option<Conv> {
        if let Some(rest) = s.strip_prefix("dm:") {
            let (a, b) = rest.split_once(':')?;
            if is_valid_user(a) && is_valid_user(b) && a.as_bytes() <= b.as_bytes() {
                return Some(Conv::Dm(a.to_owned(), b.to_owned()));
            }
            None
        } else if let Some(name) = s.strip_prefix("ch:") {
            is_valid_channel(name).then(|| Conv::Channel(name.to_owned()))
        } else {
            None
        }
    }

    /// Whether `user` is one of the two parties of a DM (always false for a
    /// channel: channel membership lives on the server).
    pub fn is_dm_party(&self, user: &str) -> bool {
        matches!(self, Conv::Dm(a, b) if a == user || b == user)
    }

    /// For a DM, the other party as seen from `me` (`me` itself for `dm:a:a`).
    pub fn peer_of(&self, me: &str) -> Option<&str> {
        match self {
            Conv::Dm(a, b) if a == me => Some(b),
            Conv::Dm(a, b) if b == me => Some(a),
            _ => None,
        }
    }

    /// The channel name of a channel conversation.
    pub fn channel_name(&self) -> Option<&str> {
        match self {
            Conv::Channel(c) => Some(c),
            Conv::Dm(..) => None,
        }
    }
}

impl fmt::Display for Conv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conv::Dm(a, b) => write!(f, "dm:{a}:{b}"),
            Conv::Channel(c) => write!(f, "ch:{c}"),
        }
    }
}

impl Serialize for Conv {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Conv {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Conv::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid conversation id"))
    }
}

/// Where a message or signal goes: `{"user":..}`, `{"channel":..}`, or for a
/// signal inside an accepted call, `{"call":<iid>}`.
///
/// Read leniently, like every other object of the protocol (§2: unknown
/// fields are ignored): exactly one of the three keys, anything else beside
/// it ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Target {
    /// A direct message to this user.
    User(String),
    /// A message to every member of this channel.
    Channel(String),
    /// A signal to the other party of an accepted call invitation.
    Call(String),
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Keys {
            user: Option<String>,
            channel: Option<String>,
            call: Option<String>,
        }
        match Keys::deserialize(d)? {
            Keys { user: Some(u), channel: None, call: None } => Ok(Target::User(u)),
            Keys { user: None, channel: Some(c), call: None } => Ok(Target::Channel(c)),
            Keys { user: None, channel: None, call: Some(c) } => Ok(Target::Call(c)),
            _ => Err(serde::de::Error::custom("a target holds exactly one of `user`, `channel` and `call`")),
        }
    }
}

impl Target {
    /// The conversation a message from `from` to this target belongs to.
    /// `None` for a call target (calls have no conversation).
    pub fn conv(&self, from: &str) -> Option<Conv> {
        match self {
            Target::User(u) => Some(Conv::dm(from, u)),
            Target::Channel(c) => Some(Conv::channel(c)),
            Target::Call(_) => None,
        }
    }

    /// Whether the id inside the target is well-formed.
    pub fn is_valid(&self) -> bool {
        match self {
            Target::User(u) => is_valid_user(u),
            Target::Channel(c) => is_valid_channel(c),
            Target::Call(iid) => is_valid_cid(iid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Target, is_valid_media_id, safe_file_name};

    #[test]
    fn a_target_ignores_unknown_keys_but_holds_exactly_one_of_its_own() {
        let t: Target = serde_json::from_str(r#"{"user":"bob","route":"fast","v":[1]}"#).unwrap();
        assert_eq!(t, Target::User("bob".into()));
        let t: Target = serde_json::from_str(r#"{"hint":{},"channel":"lobby"}"#).unwrap();
        assert_eq!(t, Target::Channel("lobby".into()));
        let t: Target = serde_json::from_str(r#"{"call":"i1"}"#).unwrap();
        assert_eq!(t, Target::Call("i1".into()));
        for bad in [r#"{"user":"a","channel":"b"}"#, r#"{}"#, r#"{"user":null}"#, r#"{"user":7}"#, r#""bob""#]
        {
            assert!(serde_json::from_str::<Target>(bad).is_err(), "{bad}");
        }
        // Written as before.
        assert_eq!(serde_json::to_string(&Target::User("bob".into())).unwrap(), r#"{"user":"bob"}"#);
    }

    #[test]
    fn media_ids_are_exactly_what_servers_mint() {
        let minted = format!("m_{}", "01J9ZS1A7PQ8R2XKJT3V4W5Y6H");
        assert!(is_valid_media_id(&minted));
        for bad in [
            "m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H#.bat",
            "m_01J9ZS1A7PQ8R2XKJT3V4W5Y6#",
            "m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H\\..\\..",
            "m_01j9zs1a7pq8r2xkjt3v4w5y6h",
            "m_01J9ZS1A7PQ8R2XKJT3V4W5Y6I",
            "m_01J9ZS1A7PQ8R2XKJT3V4W5Y6U",
            "m_cat",
            "x_01J9ZS1A7PQ8R2XKJT3V4W5Y6H",
            "../01J9ZS1A7PQ8R2XKJT3V4W5Y6H",
            "",
        ] {
            assert!(!is_valid_media_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn peer_file_names_are_made_safe() {
        let long = format!("{}.pdf", "a".repeat(300));
        let cases: &[(&str, &str)] = &[
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("..\\..\\win.ini", "_.._win.ini"),
            (".bashrc", "bashrc"),
            ("...", "file"),
            ("", "file"),
            ("photo\u{202E}gpj.exe", "photogpj.exe"),
            ("a\u{2066}b\u{200F}c.txt", "abc.txt"),
            ("tab\tand\nnewline.txt", "tabandnewline.txt"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("com1.log", "_com1.log"),
            ("LPT9", "_LPT9"),
            ("COM¹.txt", "_COM¹.txt"),
            ("lpt³", "_lpt³"),
            ("COM10", "COM10"),
            ("aux.tar.gz", "_aux.tar.gz"),
            ("console.txt", "console.txt"),
            ("trailing. . ", "trailing"),
            ("what?:*.png", "what___.png"),
            ("  spaced  .jpg", "spaced  .jpg"),
        ];
        for (input, want) in cases {
            assert_eq!(safe_file_name(input, "file"), *want, "{input:?}");
        }
        let cut = safe_file_name(&long, "file");
        assert!(cut.len() <= super::MAX_FILE_NAME_BYTES && cut.ends_with(".pdf"), "{cut}");
        let wide = "文".repeat(100);
        let cut = safe_file_name(&wide, "file");
        assert!(cut.len() <= super::MAX_FILE_NAME_BYTES && cut.chars().all(|c| c == '文'));
    }

    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        assert!(is_valid_name("alice"));
        assert!(is_valid_name("A.b-c_9"));
        assert!(is_valid_name(&"x".repeat(64)));
        assert!(!is_valid_name(&"x".repeat(65)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("al ice"));
        assert!(!is_valid_name("alice:bob"));
        assert!(!is_valid_name("élise"));
    }

    #[test]
    fn cids_are_printable_ascii() {
        assert!(is_valid_cid("01J9Z3-~!"));
        assert!(!is_valid_cid(""));
        assert!(!is_valid_cid("a b"));
        assert!(!is_valid_cid(&"c".repeat(65)));
        assert!(!is_valid_cid("naïve"));
    }

    #[test]
    fn dm_ids_are_sorted_bytewise() {
        assert_eq!(Conv::dm("bob", "alice").to_string(), "dm:alice:bob");
        assert_eq!(Conv::dm("B", "a").to_string(), "dm:B:a");
        assert_eq!(Conv::dm("a", "a").to_string(), "dm:a:a");
        assert_eq!(Conv::parse("dm:alice:bob"), Some(Conv::dm("alice", "bob")));
        assert_eq!(Conv::parse("dm:bob:alice"), None);
        assert_eq!(Conv::parse("dm:alice"), None);
        assert_eq!(Conv::parse("dm:alice:bob:carol"), None);
        assert_eq!(Conv::parse("ch:lobby"), Some(Conv::channel("lobby")));
        assert_eq!(Conv::parse("ch:"), None);
        assert_eq!(Conv::parse("lobby"), None);
    }

    #[test]
    fn peers_of_a_dm() {
        let c = Conv::dm("alice", "bob");
        assert_eq!(c.peer_of("alice"), Some("bob"));
        assert_eq!(c.peer_of("bob"), Some("alice"));
        assert_eq!(c.peer_of("carol"), None);
        assert_eq!(Conv::dm("a", "a").peer_of("a"), Some("a"));
    }

    #[test]
    fn targets_have_the_wire_shape() {
        let t: Target = serde_json::from_str(r#"{"user":"bob"}"#).unwrap();
        assert_eq!(t, Target::User("bob".into()));
        assert_eq!(
            serde_json::to_string(&Target::Channel("lobby".into())).unwrap(),
            r#"{"channel":"lobby"}"#
        );
        assert!(serde_json::from_str::<Target>(r#"{"planet":"mars"}"#).is_err());
    }
}
