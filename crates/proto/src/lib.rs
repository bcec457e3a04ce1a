//! Courier realtime protocol, version 1 (with the 1.1 additions).
//!
//! This crate is the wire contract as Rust types: what a client may send
//! ([`Request`]), what a server answers ([`Reply`]) and pushes ([`Event`]),
//! how identifiers look ([`ids`]), and the error and close codes
//! ([`codes`]). It does no IO, so the server, the client core, the
//! conformance tests and the benchmark all share one definition and cannot
//! drift apart.
//!
//! Layout:
//! - [`call`]: the v1.2 call signal bodies.
//! - [`ids`]: validation of user ids, channel names, conversation ids, cids.
//! - [`codes`]: error codes and WebSocket close codes.
//! - [`request`]: client requests, decoded and validated in one step.
//! - [`event`]: server events, replies and the payloads they carry.

pub mod call;
pub mod codes;
pub mod event;
pub mod ids;
pub mod request;

pub use codes::{CloseCode, ErrorCode};
pub use event::{
    ChannelInfo, ErrBody, Event, HelloOk, HistoryOk, IceOk, IceServer, Invite, InviteOk, InviteState, Limits,
    MemberInfo, Msg, Presence, Profile, Reply, SendOk, ServerFrame, SyncConv, SyncOk,
};
pub use ids::{Conv, Target};
pub use request::{DecodeError, LIST_PAGE, Request, Role, SendReq, body_mentions, is_relation_kind};

/// The feature a v1.1 server lists in the `hello` ok.
pub const FEATURE_V1_1: &str = "v1.1";
/// The feature a v1.2 server (call devices, call signals, ICE servers, call
/// records) lists in the `hello` ok.
pub const FEATURE_V1_2: &str = "v1.2";
/// The WebSocket subprotocol a client must offer.
pub const SUBPROTOCOL: &str = "courier.v1";
/// The path of the WebSocket endpoint.
pub const WS_PATH: &str = "/v1/ws";
