//! The behaviour every [`Store`] engine must show, as test cases that take a
//! fresh, empty store.
//!
//! An engine runs the whole suite with one line in its tests:
//!
//! ```ignore
//! courier_server::store_suite!(async { Arc::new(MyStore::open_fresh().await) as Arc<dyn Store> });
//! ```
//!
//! which expands to one `#[tokio::test]` per case (multi-threaded, so
//! concurrency cases really run in parallel). Cases assert what a user would
//! notice: lost or duplicated messages, gaps in `seq`, wrong pages, cursors
//! moving back, an invitation answered twice. Other crates reach the suite
//! through the `store-suite` feature.
//!
//! The cases live in one file per domain, as the engines do (`users`,
//! `messages`, `relations`, `channels`, `invites`, `media`, plus `lifecycle`
//! for closing and migrations); this file holds the runner and the fixtures
//! they share. Adding a case: write the `pub async fn` in its domain's file
//! and add its name to that domain's list in
//! [`store_suite!`](crate::store_suite).

pub mod channels;
pub mod invites;
pub mod lifecycle;
pub mod media;
pub mod messages;
pub mod relations;
pub mod users;

pub use lifecycle::check_migrated_fixtures;

use super::{NewChannel, NewMessage, Relation, RelationAppend, Store};
use courier_proto::{Invite, InviteState, Msg, Target};
use serde_json::{Map, Value, json};

/// Expands to one `#[tokio::test]` per suite case, each given a fresh store
/// from `$fresh`, an async expression yielding `Arc<dyn Store>` (evaluated
/// once per case). The cases are listed per domain file.
#[macro_export]
macro_rules! store_suite {
    ($fresh:expr) => {
        $crate::store_suite!(@cases $fresh; users:
            users_exist_once_touched,
            last_seen_round_trips,
            profiles_have_defaults_and_partial_updates,
        );
        $crate::store_suite!(@cases $fresh; messages:
            seq_is_gapless_under_concurrent_appends_to_one_conversation,
            seq_is_per_conversation_under_concurrent_appends_to_many,
            append_is_idempotent_on_sender_and_cid,
            concurrent_duplicates_are_stored_once,
            messages_round_trip_exactly,
            history_latest_page,
            history_after_pages,
            history_before_pages,
            history_is_per_conversation,
            cursors_move_forward_clamped_and_read_raises_recv,
            conversations_list_dms_for_both_parties_after_the_first_message,
            conversations_list_member_channels_even_empty,
            recent_conversations_are_the_most_recently_active,
            unread_counts_others_content_after_the_read_cursor,
        );
        $crate::store_suite!(@cases $fresh; relations:
            relations_update_their_targets_aggregates,
            a_recall_scrubs_its_target_for_good,
            a_recall_of_an_unreadable_body_still_scrubs_it,
            relations_racing_a_recall_are_before_it_or_refused,
            reaction_tally_counts_keys_and_one_users_keys_on_one_message,
            reaction_caps_hold_under_concurrent_reactions,
            pins_are_capped_per_conversation_under_concurrency,
        );
        $crate::store_suite!(@cases $fresh; channels:
            channels_create_conflict_and_membership,
            public_channels_sorted_with_counts_without_private,
            channel_and_member_pages_are_bytewise_after_exclusive,
            sharing_a_conversation_is_a_common_channel_or_a_two_sided_dm,
            roles_transfer_and_owner_succession,
            removed_members_rejoin_only_when_added_back,
            channels_created_since_counts_one_creator_from_a_time,
            creations_racing_for_the_cap_never_pass_it,
        );
        $crate::store_suite!(@cases $fresh; invites:
            invites_round_trip,
            invite_transitions_are_compare_and_set,
            invite_received_is_flipped_once_and_only_while_pending,
            pending_invites_are_listed_for_both_parties,
            recent_invites_include_final_ones_since_a_time,
            sync_invite_lists_keep_only_the_newest,
            pending_invites_are_capped_per_caller,
            overdue_invites_are_pending_ones_due_most_overdue_first,
        );
        $crate::store_suite!(@cases $fresh; media:
            media_round_trips,
            media_reads_in_chunks,
            media_bytes_since_counts_one_owner_from_a_time,
            concurrent_uploads_cannot_pass_the_quota_together,
        );
        $crate::store_suite!(@cases $fresh; lifecycle:
            message_count_counts_stored_messages,
            close_makes_later_calls_unavailable,
        );
    };
    (@cases $fresh:expr; $domain:ident: $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::store::Store> = ($fresh).await;
                $crate::store::suite::$domain::$case(store).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Fixtures shared by the domain files (some public, so engine-specific
// tests can build the same data)

/// A text message from `from` to `to` with idempotency key `cid`.
pub fn text(from: &str, to: Target, cid: &str, text: &str, ts: i64) -> NewMessage {
    let mut body = Map::new();
    body.insert("text".into(), Value::String(text.into()));
    NewMessage {
        conv: to.conv(from).expect("messages go to a user or a channel"),
        from: from.into(),
        to,
        cid: cid.into(),
        kind: "text".into(),
        body,
        reply_to: None,
        ts,
        mentions: Vec::new(),
    }
}

/// A pending invitation from `from` to `to`, created at 1000 for 60 s.
pub fn invite(iid: &str, from: &str, to: &str) -> Invite {
    Invite {
        iid: iid.into(),
        from: from.into(),
        to: to.into(),
        room: format!("call-{iid}"),
        content: object(json!({"media": "audio", "n": 1})),
        state: InviteState::Pending,
        created: 1000,
        expires: 61_000,
        received: false,
        reason: None,
        response: None,
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn user(u: &str) -> Target {
    Target::User(u.into())
}

fn chan(c: &str) -> Target {
    Target::Channel(c.into())
}

fn channel(name: &str, private: bool, creator: Option<&str>) -> NewChannel {
    NewChannel {
        name: name.into(),
        title: format!("Title of {name}"),
        topic: format!("topic of {name}"),
        private,
        creator: creator.map(str::to_owned),
        now: 77,
    }
}

fn seqs(msgs: &[Msg]) -> Vec<u64> {
    msgs.iter().map(|m| m.seq).collect()
}

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}

/// A relation message from `from` to `to` and the relation it carries.
pub fn relation(
    from: &str,
    to: Target,
    cid: &str,
    kind: &str,
    body: Value,
    ts: i64,
) -> (NewMessage, Relation) {
    let body = object(body);
    let rel = Relation::parse(kind, &body).expect("a well-formed relation body");
    let msg = NewMessage {
        conv: to.conv(from).expect("messages go to a user or a channel"),
        from: from.into(),
        to,
        cid: cid.into(),
        kind: kind.into(),
        body,
        reply_to: None,
        ts,
        mentions: Vec::new(),
    };
    (msg, rel)
}

/// Stores a relation that must be accepted; returns the stored message.
async fn relate(
    store: &dyn Store,
    from: &str,
    to: Target,
    cid: &str,
    kind: &str,
    body: Value,
    ts: i64,
) -> Msg {
    let (msg, rel) = relation(from, to, cid, kind, body, ts);
    match store.append_relation(msg, rel).await.unwrap() {
        RelationAppend::Stored(a) => {
            assert!(!a.dup, "{cid} is new");
            a.msg
        }
        other => panic!("{cid} ({kind}) refused: {other:?}"),
    }
}
