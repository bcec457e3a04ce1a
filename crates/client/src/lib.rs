//! The Courier client core: everything a desktop app (or a script) needs
//! to talk to a Courier server reliably, with no UI and no Tauri.
//!
//! Layout:
//! - [`client`]: the [`Client`] handle the application holds: opening,
//!   starting and stopping, the connection state, errors.
//! - `api`: what the handle can do, one file per area (messages,
//!   relations, channels, people, invites, media).
//! - `config`: [`ClientConfig`], servers, token, data directory, timeouts.
//! - `manager`: the connection manager behind the handle (states, back-off,
//!   fail-over, tokens) and the workers of each session.
//! - `state`: what the handles and the manager share.
//! - [`conn`]: one WebSocket session — request/reply matching, events,
//!   heartbeats both ways, half-open detection.
//! - [`sync`]: `sync` after each connect, paged gap filling, pushed events.
//! - [`outbox`]: the durable retry queue's sender (FIFO per conversation,
//!   same cid on every retry, permanent vs transient errors).
//! - [`store`]: the local SQLite store (WAL, migrations, FTS5 search), and
//!   protocol v1.1 relations (edits, recalls, reactions, pins) applied to
//!   their targets.
//! - [`backoff`]: back-off with jitter and the client-side token bucket.
//! - [`events`]: [`ClientEvent`], the one typed event stream for the UI.
//! - [`model`]: message, conversation and invitation views.
//! - [`markup`]: message formatting as plain text (notifications, CLI, search).
//! - [`media`]: media upload/download with a local cache.
//! - [`tls`]: rustls settings for `wss://` and `https://` (extra CA roots).
//!
//! Delivery guarantee: a message is written to the store with its outbox
//! row before [`Client::send`] returns; the sender retries it with the same
//! cid until the server acknowledges it (the server dedupes by cid), and
//! sync plus gap filling make the store hold every message of every
//! conversation in seq order exactly once. Relations travel the same way
//! and show only through the message they point at.

mod api;
pub mod backoff;
pub mod client;
mod config;
pub mod conn;
pub mod events;
#[cfg(test)]
mod fake_server;
mod manager;
pub mod markup;
pub mod media;
pub mod model;
pub mod outbox;
mod state;
pub mod store;
pub mod sync;
pub mod tls;

pub use client::{Client, ClientConfig, ClientError, token_user};
pub use events::{ClientEvent, ConnState, IncomingCallSignal};
pub use model::{ConversationView, DeliveryStatus, InviteView, MessageView, UploadedMedia};
pub use store::{Store, StoreError};
