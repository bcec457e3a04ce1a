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

/// A conversation: a direct-message pair or a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A direct message to this user.
    User(String),
    /// A message to every member of this channel.
    Channel(String),
    /// A signal to the other party of an accepted call invitation.
    Call(String),
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
