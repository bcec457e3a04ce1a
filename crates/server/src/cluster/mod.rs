//! Cluster mode: the cross-node effects of the hub go through a [`Bus`].
//!
//! A node delivers every event to its own sessions directly (as a single
//! node does) and hands the same serialised frame to the bus, which carries
//! it to the sessions of the same users on the other nodes. Everything that
//! must be true cluster-wide goes through here: delivery to a user's
//! sessions, presence (online while any node holds a session, and a dead
//! node stops counting within a bounded time), device replacement (4003),
//! presence/profile events to watchers, channel member cache
//! invalidation, the per-user rate bucket and the per-user session cap, and
//! (v1.2) call signals to one device and the call records behind them
//! (`redis::calls`). Invitation state needs nothing extra: storage decides every
//! transition by compare-and-set, and only the winner broadcasts.
//!
//! Single-node mode has no bus at all (`AppState::bus` is `None`), so it pays
//! nothing. The one implementation is [`redis::RedisBus`]. The bus is
//! at-most-once (Redis pub/sub); clients' seq-based gap filling on
//! reconnect and `sync` recovers anything it drops.

pub mod redis;
#[cfg(any(test, feature = "test-engines"))]
#[cfg_attr(not(target_os = "linux"), path = "redis_harness_unsupported.rs")]
pub mod redis_harness;

use crate::hub::PresenceChange;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Failures of the bus engine.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The Redis engine failed or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The engine did not answer in time.
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
}

/// Carries a node's cross-node effects to the other nodes of the cluster.
///
/// Publishing is fire-and-forget (queued, never blocks the caller); the
/// calls that answer questions (presence) are async.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> &str;
    /// Hands `frame` to the sessions of `users` on the other nodes (this node
    /// has delivered it to its own sessions already). A few users get it on
    /// their own channels; from [`ONE_PUBLISH_FROM`] users on (a channel's
    /// members) it is one message naming them all, per [`USERS_PER_PUBLISH`].
    fn publish_to_users(&self, users: &[&str], frame: &Arc<str>);
    /// Hands `frame` to `user`'s sessions of `device` on the other nodes
    /// (v1.2 call signals), in publishing order.
    fn publish_to_device(&self, user: &str, device: &str, frame: &Arc<str>);
    /// Hands `frame` to the sessions on other nodes that watch `user`.
    fn publish_to_watchers(&self, user: &str, frame: &Arc<str>);
    /// Tells other nodes to close `user`'s sessions of `device` that are
    /// older than the session `newer` (its id) with 4003.
    fn publish_kick(&self, user: &str, device: &str, newer: &str);
    /// Tells other nodes to drop their cached members of `channel`.
    fn publish_channel_changed(&self, channel: &str);
    /// A session of `user` was registered here (`change` is the local
    /// change): makes sure this node receives the user's events before the
    /// session is told it is ready.
    async fn session_opened(&self, user: &str, change: PresenceChange);
    /// Records a local presence change and returns the cluster-wide change
    /// (a user coming online here is `Unchanged` when another node has them).
    async fn presence(&self, user: &str, change: PresenceChange) -> PresenceChange;
    /// Takes one token from `user`'s cluster-wide bucket (`rate` per
    /// second, `burst`): `None` when allowed, else how long to wait.
    ///
    /// # Errors
    /// When the engine cannot answer (the caller falls back to this node's
    /// bucket).
    async fn take_token(&self, user: &str, rate: u32, burst: u32) -> Result<Option<Duration>, BusError>;
    /// Takes one event from `user`'s cluster-wide sign-in pace (`pace`:
    /// a burst, then one per interval): `None` when allowed, else how long
    /// to wait.
    ///
    /// # Errors
    /// When the engine cannot answer (the caller falls back to this node's
    /// pace).
    async fn take_hello(
        &self,
        user: &str,
        pace: crate::ratelimit::Pace,
    ) -> Result<Option<Duration>, BusError>;
    /// Counts a new session of `user` on `device` against the user's
    /// cluster-wide cap: false (and nothing counted) when the user already
    /// has `cap` live sessions on other devices. Sessions on nodes whose
    /// heartbeat lapsed do not count.
    ///
    /// # Errors
    /// When the engine cannot answer (the caller falls back to this node's
    /// count).
    async fn claim_session(&self, user: &str, device: &str, cap: u32) -> Result<bool, BusError>;
    /// Whether `user` has a live session (counted by
    /// [`Bus::claim_session`], on a live node) of a device other than
    /// `device`.
    ///
    /// # Errors
    /// When the engine cannot answer.
    async fn other_devices_online(&self, user: &str, device: &str) -> Result<bool, BusError>;
    /// A session counted by [`Bus::claim_session`] ended.
    async fn release_session(&self, user: &str, device: &str);
    /// Whether each user is online on any live node.
    ///
    /// # Errors
    /// When the engine cannot answer.
    async fn online(&self, users: &[String]) -> Result<Vec<bool>, BusError>;
    /// Round trip to the engine (for `/healthz`).
    ///
    /// # Errors
    /// When the engine is unreachable.
    async fn ping(&self) -> Result<Duration, BusError>;
    /// Leaves the cluster. `crash` leaves as a killed node would: nothing is
    /// flushed or cleaned up, the others notice when its heartbeat lapses.
    async fn shutdown(&self, crash: bool);
}

/// From this many recipients on, a frame is published once, naming them
/// all, on the channel every node reads ([`Kind::Users`]), instead of once
/// on each recipient's channel: one publish (and one copy of the frame per
/// node) instead of one per member, at the price of every node reading the
/// names. Below it, only the nodes holding a recipient hear of the frame.
pub const ONE_PUBLISH_FROM: usize = 8;

/// Most users one [`Kind::Users`] message names (about 20 KB of names):
/// a larger list goes out in several, so that no bus message is huge.
pub const USERS_PER_PUBLISH: usize = 1000;

/// What a bus message asks the receiving node to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Deliver the frame to the (channel's) user's sessions.
    Frame,
    /// Deliver the frame to the sessions of the users named in the arg,
    /// separated by commas (user ids never contain one), on whichever
    /// node holds them: one message for the members of a channel.
    Users,
    /// Close the user's sessions of a device with 4003.
    Kick,
    /// Deliver the frame to the watchers of a user.
    Watchers,
    /// Drop the cached members of a channel.
    Channel,
    /// Deliver the frame to one device of the user (the body is the
    /// device, a newline, and the frame: device ids are printable ASCII).
    Device,
}

impl Kind {
    fn tag(self) -> char {
        match self {
            Kind::Frame => 'F',
            Kind::Users => 'U',
            Kind::Kick => 'K',
            Kind::Watchers => 'W',
            Kind::Channel => 'M',
            Kind::Device => 'D',
        }
    }
}

/// One decoded bus message: `<kind>|<origin node>|<sent ms>|<arg>|<body>`.
/// Ids never contain `|` (the protocol's identifier alphabet), and the body
/// (a frame) is last, so it may.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// What to do.
    pub kind: Kind,
    /// The publishing node (which acted locally already).
    pub origin: &'a str,
    /// Publishing time (ms since the epoch), for the pub/sub lag metric.
    pub sent_ms: i64,
    /// User, device or channel, by kind (users for [`Kind::Users`]).
    pub arg: &'a str,
    /// The serialised frame (empty for kicks and channel changes).
    pub body: &'a str,
}

impl Envelope<'_> {
    /// Encodes a message.
    pub fn encode(kind: Kind, origin: &str, sent_ms: i64, arg: &str, body: &str) -> String {
        let mut s = String::with_capacity(origin.len() + arg.len() + body.len() + 24);
        s.push(kind.tag());
        s.push('|');
        s.push_str(origin);
        s.push('|');
        s.push_str(&sent_ms.to_string());
        s.push('|');
        s.push_str(arg);
        s.push('|');
        s.push_str(body);
        s
    }

    /// Decodes a message; `None` for anything malformed.
    pub fn decode(s: &str) -> Option<Envelope<'_>> {
        let mut parts = s.splitn(5, '|');
        let kind = match parts.next()? {
            "F" => Kind::Frame,
            "U" => Kind::Users,
            "K" => Kind::Kick,
            "W" => Kind::Watchers,
            "M" => Kind::Channel,
            "D" => Kind::Device,
            _ => return None,
        };
        let origin = parts.next()?;
        let sent_ms = parts.next()?.parse().ok()?;
        let arg = parts.next()?;
        let body = parts.next()?;
        Some(Envelope { kind, origin, sent_ms, arg, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_keep_pipes_in_frames() {
        let s = Envelope::encode(Kind::Frame, "n1", 42, "", r#"{"ev":"msg","body":{"text":"a|b"}}"#);
        let e = Envelope::decode(&s).unwrap();
        assert_eq!(e.kind, Kind::Frame);
        assert_eq!((e.origin, e.sent_ms, e.arg), ("n1", 42, ""));
        assert_eq!(e.body, r#"{"ev":"msg","body":{"text":"a|b"}}"#);
        let s = Envelope::encode(Kind::Users, "n2", 7, "amy,b.o-b_1", "{}");
        let e = Envelope::decode(&s).unwrap();
        assert_eq!((e.kind, e.arg, e.body), (Kind::Users, "amy,b.o-b_1", "{}"));
        assert!(Envelope::decode("X|n|1||").is_none());
        assert!(Envelope::decode("F|n|notanumber||").is_none());
    }
}
