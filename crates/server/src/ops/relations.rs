//! v1.1 relations: the rules of who may send an edit, recall, reaction or
//! pin, and until when. `send` stores them like any message once
//! [`authorize`] passes; storage then re-checks, inside the relation's
//! transaction, what a concurrent relation may have changed (a recall).
//!
//! The order of the checks fixes which error wins when several apply: the
//! target must exist (`not_found`), be a content message and the sender
//! must be allowed (`forbidden`), and only then do state and time count
//! (`conflict`: recalled, or the window passed).

use super::OpError;
use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::{Relation, RelationCaps};
use courier_proto::event::{DEFAULT_PINS, DEFAULT_REACTION_KEYS, DEFAULT_REACTIONS_PER_USER};
use courier_proto::{Conv, ErrBody, Msg, is_relation_kind};

/// Checks that `actor` may apply `rel` in `conv` now. `actor` is already
/// known to be allowed to write to `conv` (or is the push API's `from`).
///
/// # Errors
/// `not_found` (no such content message in `conv`), `forbidden` (a relation
/// as target, or not the actor's to do), `conflict` (recalled, or the
/// window passed), `internal` (storage).
pub async fn authorize(st: &AppState, actor: &str, conv: &Conv, rel: &Relation) -> Result<Msg, OpError> {
    let target = st
        .store
        .message(conv, rel.target())
        .await?
        .ok_or_else(|| OpError::not_found("body.target is not a message of this conversation"))?;
    if is_relation_kind(&target.kind) {
        return Err(OpError::forbidden(format!(
            "body.target is a {} message; relations point at content messages",
            target.kind
        )));
    }
    let moderator = match conv {
        Conv::Channel(name) => st.channel_role(name, actor).await?.is_some_and(|r| r.is_moderator()),
        Conv::Dm(..) => false,
    };
    let own = target.from == actor;
    let limits = &st.config.limits;
    // The window that applies, if any.
    let window_s = match rel {
        Relation::Edit { .. } => {
            if !own {
                return Err(OpError::forbidden("only the sender of a message may edit it"));
            }
            if target.kind != "text" {
                return Err(OpError::forbidden("only text messages can be edited"));
            }
            limits.edit_window_s
        }
        Relation::Recall { .. } => {
            if !own && !moderator {
                return Err(OpError::forbidden(
                    "only the sender of a message, or an owner or admin of the channel, may recall it",
                ));
            }
            if moderator { None } else { limits.recall_window_s }
        }
        Relation::Reaction { .. } => None,
        Relation::Pin { .. } => {
            if matches!(conv, Conv::Channel(_)) && !moderator {
                return Err(OpError::forbidden("only an owner or admin of the channel may pin messages"));
            }
            None
        }
    };
    if target.recalled {
        return Err(OpError::conflict("the message was recalled"));
    }
    if let Some(window_s) = window_s {
        let age_ms = now_ms().saturating_sub(target.ts);
        if age_ms > i64::try_from(window_s).unwrap_or(i64::MAX).saturating_mul(1000) {
            let what = if matches!(rel, Relation::Edit { .. }) { "edit" } else { "recall" };
            return Err(OpError::conflict(format!(
                "the {what} window ({window_s} s after the message was sent) has passed"
            )));
        }
    }
    Ok(target)
}

/// The relation caps from the configuration. Storage checks them in the
/// relation's transaction ([`crate::store::RelationStore::append_relation_capped`]):
/// at most `reaction_keys` distinct keys on one message, and
/// `reactions_per_user` keys of one user on it (v1.2); at most `pins`
/// pinned messages in one conversation (every `sync` row lists them, so a
/// peer pinning everything grew the other's sync without bound). A key
/// the user has on already fits; taking a reaction off or unpinning is
/// never capped.
pub fn relation_caps(st: &AppState) -> RelationCaps {
    let limits = &st.config.limits;
    RelationCaps {
        keys: u64::from(limits.reaction_keys.unwrap_or(DEFAULT_REACTION_KEYS)),
        per_user: u64::from(limits.reactions_per_user.unwrap_or(DEFAULT_REACTIONS_PER_USER)),
        pins: u64::from(limits.pins.unwrap_or(DEFAULT_PINS)),
    }
}

/// The `limit_reached` error for a relation over `cap` (a name from
/// [`RelationCaps::refuses`] or [`RelationCaps::refuses_pin`]).
pub fn relation_capped(st: &AppState, cap: &'static str) -> OpError {
    let caps = relation_caps(st);
    let message = if cap == "reactions_per_user" {
        format!("you have {} reactions on this message already; take one off first", caps.per_user)
    } else if cap == "pins" {
        format!("this conversation has {} pinned messages already; unpin one first", caps.pins)
    } else {
        format!("this message has {} different reactions already; use one of them", caps.keys)
    };
    OpError(Box::new(ErrBody::limit(cap, message)))
}
