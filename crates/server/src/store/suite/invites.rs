//! Suite cases for call invitations: round trips, compare-and-set
//! transitions, the `received` flag, the pending and recent lists and their
//! bounds, the per-caller cap on pending invitations, and the expiry scan.

use super::{invite, object};
use crate::store::{Store, Transition};
use courier_proto::{Invite, InviteState};
use serde_json::json;

use std::sync::Arc;

/// Invitations come back as stored, whatever their state.
pub async fn invites_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.invite("nope").await.unwrap(), None);
    let pending = invite("i1", "alice", "bob");
    store.create_invite(&pending).await.unwrap();
    assert_eq!(store.invite("i1").await.unwrap(), Some(pending));

    let mut failed = invite("i2", "alice", "ghost");
    failed.state = InviteState::Failed;
    failed.reason = Some("unknown_user".into());
    failed.content = object(json!({"deep": {"x": [1, "two"]}, "ü": "ß"}));
    store.create_invite(&failed).await.unwrap();
    assert_eq!(store.invite("i2").await.unwrap(), Some(failed.clone()));
    assert_eq!(
        store.transition_invite("i2", InviteState::Accepted, None).await.unwrap(),
        Transition::AlreadyFinal(failed),
        "a failed invitation is final from the start"
    );
    assert_eq!(
        store.transition_invite("nope", InviteState::Canceled, None).await.unwrap(),
        Transition::NotFound
    );
}

/// 16 concurrent transitions of one invitation: exactly one `Done`, every
/// other call sees that same final invitation, and it never changes again.
pub async fn invite_transitions_are_compare_and_set(store: Arc<dyn Store>) {
    let original = invite("i1", "alice", "bob");
    store.create_invite(&original).await.unwrap();
    let states = [InviteState::Accepted, InviteState::Refused, InviteState::Canceled, InviteState::Expired];
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        let to = states[t % states.len()];
        let response =
            matches!(to, InviteState::Accepted | InviteState::Refused).then(|| object(json!({"by": t})));
        tasks.push(tokio::spawn(async move {
            let result = store.transition_invite("i1", to, response.clone()).await.unwrap();
            (to, response, result)
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let winners: Vec<_> = outcomes.iter().filter(|(_, _, r)| matches!(r, Transition::Done(_))).collect();
    assert_eq!(winners.len(), 1, "exactly one transition wins");
    let (to, response, Transition::Done(done)) = winners[0] else { unreachable!() };
    let expected = Invite { state: *to, response: response.clone(), ..original.clone() };
    assert_eq!(done, &expected, "the winner's state and response are stored");
    for (_, _, result) in &outcomes {
        if !matches!(result, Transition::Done(_)) {
            assert_eq!(
                result,
                &Transition::AlreadyFinal(expected.clone()),
                "losers see the final invitation"
            );
        }
    }
    assert_eq!(store.invite("i1").await.unwrap(), Some(expected.clone()));
    assert_eq!(
        store
            .transition_invite("i1", InviteState::Canceled, Some(object(json!({"late": true}))))
            .await
            .unwrap(),
        Transition::AlreadyFinal(expected.clone())
    );
    assert_eq!(store.invite("i1").await.unwrap(), Some(expected), "a final state is locked");
}

/// `received` flips once, only while pending, and survives the answer.
pub async fn invite_received_is_flipped_once_and_only_while_pending(store: Arc<dyn Store>) {
    assert_eq!(store.mark_invite_received("nope").await.unwrap(), None);
    store.create_invite(&invite("i1", "alice", "bob")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.mark_invite_received("i1").await.unwrap() }));
    }
    let mut flipped = Vec::new();
    for task in tasks {
        flipped.extend(task.await.unwrap());
    }
    let expected = Invite { received: true, ..invite("i1", "alice", "bob") };
    assert_eq!(flipped, vec![expected.clone()], "exactly one call flips it, and gets the invitation");
    assert_eq!(store.mark_invite_received("i1").await.unwrap(), None);
    assert_eq!(store.invite("i1").await.unwrap(), Some(expected.clone()));
    let Transition::Done(answered) =
        store.transition_invite("i1", InviteState::Accepted, None).await.unwrap()
    else {
        panic!("pending invitation not accepted");
    };
    assert!(answered.received);

    // Once final, it is never marked received.
    store.create_invite(&invite("i2", "alice", "bob")).await.unwrap();
    store.transition_invite("i2", InviteState::Canceled, None).await.unwrap();
    assert_eq!(store.mark_invite_received("i2").await.unwrap(), None);
    assert!(!store.invite("i2").await.unwrap().unwrap().received);
}

/// Pending invitations are listed for caller and callee; final ones never.
pub async fn pending_invites_are_listed_for_both_parties(store: Arc<dyn Store>) {
    let mut i1 = invite("i1", "alice", "bob");
    i1.created = 1;
    let mut i2 = invite("i2", "carol", "alice");
    i2.created = 2;
    let i3 = invite("i3", "bob", "carol");
    let mut i4 = invite("i4", "alice", "ghost");
    i4.state = InviteState::Failed;
    i4.reason = Some("unknown_user".into());
    for i in [&i1, &i2, &i3, &i4] {
        store.create_invite(i).await.unwrap();
    }
    store.transition_invite("i3", InviteState::Refused, None).await.unwrap();

    let iids = |list: Vec<Invite>| {
        let mut v: Vec<String> = list.into_iter().map(|i| i.iid).collect();
        v.sort();
        v
    };
    assert_eq!(iids(store.pending_invites_for("alice", 100).await.unwrap()), ["i1", "i2"]);
    assert_eq!(iids(store.pending_invites_for("bob", 100).await.unwrap()), ["i1"]);
    assert_eq!(iids(store.pending_invites_for("carol", 100).await.unwrap()), ["i2"]);
    assert!(store.pending_invites_for("ghost", 100).await.unwrap().is_empty());
    let mut all = store.pending_invites().await.unwrap();
    all.sort_by(|a, b| a.iid.cmp(&b.iid));
    assert_eq!(all, vec![i1.clone(), i2]);

    store.transition_invite("i1", InviteState::Expired, None).await.unwrap();
    assert_eq!(iids(store.pending_invites_for("alice", 100).await.unwrap()), ["i2"]);
    assert!(store.pending_invites_for("bob", 100).await.unwrap().is_empty());
    assert_eq!(iids(store.pending_invites().await.unwrap()), ["i2"]);
}

/// Recent invitations are listed for both parties in any state, by creation
/// time, and only from `since` on.
pub async fn recent_invites_include_final_ones_since_a_time(store: Arc<dyn Store>) {
    let mut old = invite("old", "alice", "bob");
    old.created = 10;
    let mut answered = invite("answered", "alice", "bob");
    answered.created = 2000;
    let mut ringing = invite("ringing", "bob", "alice");
    ringing.created = 3000;
    let mut other = invite("other", "carol", "dave");
    other.created = 2500;
    for i in [&old, &answered, &ringing, &other] {
        store.create_invite(i).await.unwrap();
    }
    store.transition_invite("answered", InviteState::Accepted, None).await.unwrap();
    let list = store.recent_invites_for("bob", 1000, 100).await.unwrap();
    let got: Vec<(&str, InviteState)> = list.iter().map(|i| (i.iid.as_str(), i.state)).collect();
    assert_eq!(got, [("answered", InviteState::Accepted), ("ringing", InviteState::Pending)]);
    assert_eq!(store.recent_invites_for("alice", 0, 100).await.unwrap().len(), 3);
    assert!(store.recent_invites_for("alice", 3001, 100).await.unwrap().is_empty());
}

/// The lists `sync` shows are bounded: the newest `limit` (by creation),
/// still oldest first, so a flood of invitations cannot grow a reply.
pub async fn sync_invite_lists_keep_only_the_newest(store: Arc<dyn Store>) {
    for n in 1..=5 {
        let mut i = invite(&format!("i{n}"), "alice", "bob");
        i.created = 100 * n;
        store.create_invite(&i).await.unwrap();
    }
    store.transition_invite("i5", InviteState::Canceled, None).await.unwrap();
    let iids = |list: Vec<Invite>| list.into_iter().map(|i| i.iid).collect::<Vec<_>>();
    assert_eq!(iids(store.pending_invites_for("bob", 3).await.unwrap()), ["i2", "i3", "i4"]);
    assert_eq!(iids(store.pending_invites_for("alice", 1).await.unwrap()), ["i4"]);
    assert_eq!(iids(store.recent_invites_for("bob", 0, 2).await.unwrap()), ["i4", "i5"]);
    assert_eq!(iids(store.recent_invites_for("bob", 250, 10).await.unwrap()), ["i3", "i4", "i5"]);
}

/// A caller has at most `at_most` pending invitations that have not
/// expired by `now`; answered, canceled, expired and failed ones do not
/// count, nor do other callers' ones, and racing creations never pass it.
pub async fn pending_invites_are_capped_per_caller(store: Arc<dyn Store>) {
    let now = 2000;
    let mut lapsed = invite("lapsed", "alice", "bob");
    lapsed.expires = now;
    let mut failed = invite("failed", "alice", "ghost");
    failed.state = InviteState::Failed;
    for i in [&lapsed, &failed] {
        store.create_invite(i).await.unwrap();
    }
    assert!(store.create_invite_within(&invite("a1", "alice", "bob"), 3, now).await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.create_invite_within(&invite(&format!("race{t}"), "alice", "carol"), 3, now).await.unwrap()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += usize::from(task.await.unwrap());
    }
    assert_eq!(stored, 2, "three pending in all, to any callee, the first included");
    assert_eq!(store.pending_invites_for("alice", 100).await.unwrap().len(), 4, "with the lapsed one");
    let over = invite("over", "alice", "bob");
    assert!(!store.create_invite_within(&over, 3, now).await.unwrap());
    assert_eq!(store.invite("over").await.unwrap(), None, "nothing stored over the cap");
    assert!(store.create_invite_within(&invite("b1", "bob", "alice"), 3, now).await.unwrap());
    store.transition_invite("a1", InviteState::Refused, None).await.unwrap();
    assert!(store.create_invite_within(&over, 3, now).await.unwrap(), "an answer frees one");
}

/// The expiry scan reads iids only: pending ones due by `now`, the most
/// overdue first, at most `limit`.
pub async fn overdue_invites_are_pending_ones_due_most_overdue_first(store: Arc<dyn Store>) {
    for (iid, expires) in [("later", 5000), ("due2", 2000), ("due1", 1000), ("answered", 500)] {
        let mut i = invite(iid, "alice", "bob");
        i.expires = expires;
        store.create_invite(&i).await.unwrap();
    }
    store.transition_invite("answered", InviteState::Accepted, None).await.unwrap();
    assert_eq!(store.overdue_invites(2000, 10).await.unwrap(), ["due1", "due2"]);
    assert_eq!(store.overdue_invites(2000, 1).await.unwrap(), ["due1"]);
    assert!(store.overdue_invites(999, 10).await.unwrap().is_empty());
}
