//! What a [`Client`] can do, one file per area, each an `impl Client`
//! block:
//! - `messages`: sending (text, batches, custom, images, files), retry,
//!   local history and search, conversations, read cursors, drafts,
//!   typing and signals;
//! - `relations`: v1.1 edits, recalls, reactions and pins (checked here,
//!   applied at once, undone when refused), and forwarding;
//! - `channels`: listing, joining, leaving, creating, members and roles;
//! - `people`: presence (watch) and profiles;
//! - `invites`: call invitations;
//! - `ice`: STUN/TURN servers for calls (v1.2);
//! - `calls`: v1.2 call signals between the two call devices;
//! - `media`: upload, download into the cache, re-upload on forward.
//!
//! Lifecycle (open, start, stop, connection state) lives with the handle in
//! [`crate::client`].

use crate::client::{Client, ClientError, Result};
use crate::state::lock;
use courier_proto::FEATURE_V1_1;
use serde_json::{Map, Value};

mod calls;
mod channels;
mod ice;
mod invites;
mod media;
mod messages;
mod people;
mod relations;
#[cfg(test)]
mod tests;

impl Client {
    /// Sends `op` over the live session and returns its reply.
    async fn call(&self, op: Value) -> Result<Value> {
        let s = self.inner.session().ok_or(ClientError::Offline)?;
        Ok(s.call(op).await?)
    }

    /// Refuses what needs protocol v1.1 when the last hello lacked it.
    fn require_v1_1(&self, what: &str) -> Result<()> {
        self.require_feature(FEATURE_V1_1, what)
    }

    /// Refuses what needs `feature` (`"v1.1"`, `"v1.2"`) when the last
    /// hello lacked it.
    fn require_feature(&self, feature: &str, what: &str) -> Result<()> {
        // Before the first hello the server is unknown: queue, it decides.
        match lock(&self.inner.hello).as_ref() {
            Some(h) if !h.features.iter().any(|f| f == feature) => Err(ClientError::Unsupported(format!(
                "{what} needs protocol {feature}, which this server does not offer"
            ))),
            _ => Ok(()),
        }
    }
}

/// The object a `json!({...})` literal holds.
fn json_obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
