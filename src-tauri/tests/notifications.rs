//! Calls and do-not-disturb, end to end through the shell's state: a call
//! missed while do-not-disturb is on is held back and shown as a missed
//! call when do-not-disturb ends; with notifications switched off nothing
//! is kept; ringing never notifies under either.

use courier_client::{ClientEvent, InviteView};
use courier_desktop::notify::{Context, Note, decide, deferred};
use courier_desktop::profile::Profile;
use courier_desktop::settings::Settings;
use courier_desktop::state::AppState;
use courier_proto::{Invite, InviteState};

fn call(state: InviteState) -> ClientEvent {
    let inv = Invite {
        iid: "i1".into(),
        from: "bob".into(),
        to: "alice".into(),
        room: "call-i1".into(),
        content: Default::default(),
        state,
        created: 0,
        expires: i64::MAX,
        received: true,
        reason: None,
        response: None,
    };
    ClientEvent::Invite { invite: InviteView::new(inv, "alice", 1) }
}

/// What the bridge does with one event: shown now, or kept for later.
fn route(state: &AppState, ev: &ClientEvent) -> Option<Note> {
    let settings = state.settings();
    let cx = Context { me: "alice", settings: &settings, attentive: false, active: None, now_ms: 1 };
    if let Some(n) = decide(ev, &cx) {
        return Some(n);
    }
    if let Some(n) = deferred(ev, &cx) {
        state.defer_note(n);
    }
    None
}

#[test]
fn a_call_missed_under_do_not_disturb_notifies_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(Profile::at(dir.path().to_path_buf(), "default".into()));
    let quiet = Settings { do_not_disturb: true, ..Settings::default() };
    assert!(state.change_settings(quiet.clone()).unwrap().is_empty());
    assert_eq!(route(&state, &call(InviteState::Pending)), None, "no ringing under do-not-disturb");
    assert_eq!(route(&state, &call(InviteState::Expired)), None, "held back");
    // The same call reported twice (a sync after the push) is kept once.
    assert_eq!(route(&state, &call(InviteState::Expired)), None);
    let released = state.change_settings(Settings { do_not_disturb: false, ..quiet.clone() }).unwrap();
    assert_eq!(released, vec![Note::MissedCall { iid: "i1".into(), from: "bob".into() }]);
    assert!(state.change_settings(quiet).unwrap().is_empty(), "shown once");
}

#[test]
fn with_notifications_off_nothing_rings_and_nothing_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(Profile::at(dir.path().to_path_buf(), "default".into()));
    let off = Settings { notifications: false, ..Settings::default() };
    state.change_settings(off).unwrap();
    assert_eq!(route(&state, &call(InviteState::Pending)), None);
    assert_eq!(route(&state, &call(InviteState::Canceled)), None);
    assert!(state.change_settings(Settings::default()).unwrap().is_empty());
}
