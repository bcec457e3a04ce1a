//! Presence pacing: how fast one user's presence changes reach watchers.
//!
//! Every `hello` and every last close of a user is a presence change that
//! goes to every session watching them, and `hello` costs no token (§8). A
//! client that connects and closes in a loop (or a device on a flapping
//! network) would make every watcher receive two events per cycle. So each
//! user has a token bucket of presence events: the first `presence_burst`
//! changes in a row go out at once (normal sign-ins and sign-outs are never
//! delayed); beyond that a change is *held*, and one event carrying the
//! user's state at that moment goes out when the bucket allows (one per
//! `presence_interval_ms`). Held changes coalesce, so a flood costs each
//! watcher one event per interval, and the last event a watcher gets always
//! says the user's true state: the held event is built when it is sent,
//! from the cluster-wide state, not from the change that was held.
//!
//! Only delivery is paced. Who is online (the hub, the cluster's presence
//! entries), `last_seen` in storage, and `watch` oks are always current.
//! In a cluster each node paces the changes of the sessions it holds.

use crate::ratelimit::{Pace, UserBuckets, Verdict};
use crate::state::{AppState, event_frame};
use courier_proto::{Event, Presence};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// One user's held presence: the latest change not delivered yet.
struct Held {
    /// The latest change as it was computed (its `last_seen` is exact).
    latest: Presence,
    /// A change arrived since the delivery under way read the state.
    again: bool,
}

/// The per-user presence buckets and held changes of one node.
#[derive(Default)]
pub struct PresenceGate {
    buckets: UserBuckets,
    /// Users with a delivery scheduled. Lock order: `held`, then `buckets`.
    held: Mutex<HashMap<Box<str>, Held>>,
}

/// What to do with one presence change.
#[derive(Debug, PartialEq)]
enum Offer {
    /// Deliver it now.
    Now(Presence),
    /// Held, with a delivery already scheduled.
    Held,
    /// Held: schedule a delivery after this long.
    Later(Duration),
}

/// What a scheduled delivery finds when it wakes.
enum Due {
    /// Deliver now (the token is taken); this is the latest held change.
    Deliver(Presence),
    /// The bucket is not there yet: wake again after this long.
    Wait(Duration),
    /// Nothing is held (cannot happen while the delivery is scheduled).
    Nothing,
}

impl PresenceGate {
    fn offer(&self, presence: Presence, pace: Pace) -> Offer {
        let mut held = self.held.lock().expect("presence lock");
        if let Some(h) = held.get_mut(presence.user.as_str()) {
            h.latest = presence;
            h.again = true;
            return Offer::Held;
        }
        match pace.take(&self.buckets, &presence.user) {
            Verdict::Allowed => Offer::Now(presence),
            Verdict::Limited(wait) => {
                held.insert(presence.user.as_str().into(), Held { latest: presence, again: false });
                Offer::Later(wait)
            }
        }
    }

    /// A scheduled delivery is due: takes its token and returns the latest
    /// held change, or how much longer to wait.
    fn due(&self, user: &str, pace: Pace) -> Due {
        let mut held = self.held.lock().expect("presence lock");
        let Some(h) = held.get_mut(user) else { return Due::Nothing };
        match pace.take(&self.buckets, user) {
            Verdict::Allowed => {
                h.again = false;
                Due::Deliver(h.latest.clone())
            }
            Verdict::Limited(wait) => Due::Wait(wait),
        }
    }

    /// A scheduled delivery was sent: true when another change arrived
    /// meanwhile (deliver again when the bucket allows), else the user's
    /// changes go out at once again while the bucket has tokens.
    fn delivered(&self, user: &str) -> bool {
        let mut held = self.held.lock().expect("presence lock");
        if held.get(user).is_some_and(|h| h.again) {
            return true;
        }
        held.remove(user);
        false
    }

    /// Users with held changes (for tests and metrics).
    pub fn held(&self) -> usize {
        self.held.lock().expect("presence lock").len()
    }

    /// Users with a presence bucket (for tests: idle full ones are swept).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

/// Sends a user's (cluster-wide) presence change to their watchers, at
/// once or, past the user's burst, as a later event with their state then.
pub fn deliver(st: &Arc<AppState>, presence: Presence) {
    let user = presence.user.clone();
    let Some(pace) = Pace::new(st.config.presence_burst, st.config.presence_interval_ms) else {
        st.send_to_watchers(&user, &event_frame(&Event::Presence(presence)));
        return;
    };
    match st.hub.presence.offer(presence, pace) {
        Offer::Now(p) => st.send_to_watchers(&user, &event_frame(&Event::Presence(p))),
        Offer::Held => {}
        Offer::Later(wait) => st.spawn_timer(trailing(Arc::downgrade(st), user, Instant::now() + wait, pace)),
    }
}

/// Delivers `user`'s held presence once the bucket allows (at `due`,
/// fixed when the change was held, not when this task first runs), again
/// while changes keep arriving, then ends.
async fn trailing(weak: Weak<AppState>, user: String, mut due: Instant, pace: Pace) {
    loop {
        tokio::time::sleep_until(due).await;
        let Some(st) = weak.upgrade() else { return };
        let latest = match st.hub.presence.due(&user, pace) {
            Due::Deliver(p) => p,
            Due::Wait(more) => {
                due = Instant::now() + more;
                continue;
            }
            Due::Nothing => return,
        };
        let now = current(&st, latest).await;
        st.send_to_watchers(&user, &event_frame(&Event::Presence(now)));
        if !st.hub.presence.delivered(&user) {
            return;
        }
        due = Instant::now();
    }
}

/// The user's presence now: the latest held change when it still holds
/// (on a single node it always does, but for races), else the
/// cluster-wide state (another node or a reaped node changed it), with
/// `last_seen` from storage.
async fn current(st: &AppState, latest: Presence) -> Presence {
    let online = st.online(std::slice::from_ref(&latest.user)).await[0];
    if online == latest.online {
        return latest;
    }
    let user = latest.user;
    let last_seen = if online {
        None
    } else {
        match st.store.last_seen(std::slice::from_ref(&user)).await {
            Ok(seen) => seen.get(&user).copied(),
            Err(e) => {
                tracing::warn!(%user, error = %e, "could not read last_seen for a held presence event");
                None
            }
        }
    };
    Presence { user, online, last_seen }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::SessionHandle;
    use serde_json::Value;
    use std::collections::HashSet;

    const PACE: Pace = Pace { burst: 4, interval_ms: 15_000 };

    fn online(user: &str) -> Presence {
        Presence { user: user.into(), online: true, last_seen: None }
    }

    fn offline(user: &str, at: i64) -> Presence {
        Presence { user: user.into(), online: false, last_seen: Some(at) }
    }

    /// The gate alone: a burst goes out at once, the rest coalesce into
    /// one delivery of the latest change when the bucket allows.
    #[tokio::test(start_paused = true)]
    async fn held_changes_coalesce_into_one_delivery_of_the_latest() {
        let g = PresenceGate::default();
        for n in 0..4 {
            let p = if n % 2 == 0 { online("bob") } else { offline("bob", n) };
            assert_eq!(g.offer(p.clone(), PACE), Offer::Now(p), "change {n} is in the burst");
        }
        let Offer::Later(wait) = g.offer(online("bob"), PACE) else { panic!("the fifth change is held") };
        assert_eq!(wait, Duration::from_millis(15_000), "one event per interval");
        for n in 0..100 {
            assert_eq!(g.offer(offline("bob", 100 + n), PACE), Offer::Held, "held changes coalesce");
        }
        assert_eq!(g.offer(online("carol"), PACE), Offer::Now(online("carol")), "buckets are per user");
        assert!(matches!(g.due("bob", PACE), Due::Wait(_)), "not before the bucket allows");
        tokio::time::advance(wait).await;
        let Due::Deliver(p) = g.due("bob", PACE) else { panic!("due after the interval") };
        assert_eq!(p, offline("bob", 199), "the latest change, never an earlier one");
        assert!(!g.delivered("bob") && g.held() == 0, "nothing arrived meanwhile: done");
        // A change that arrives while a delivery is under way goes out next.
        let Offer::Later(wait) = g.offer(online("bob"), PACE) else { panic!("the bucket is empty") };
        tokio::time::advance(wait).await;
        assert!(matches!(g.due("bob", PACE), Due::Deliver(_)));
        assert_eq!(g.offer(offline("bob", 300), PACE), Offer::Held);
        assert!(g.delivered("bob"), "delivers again");
        let Due::Wait(wait) = g.due("bob", PACE) else { panic!("after the next token") };
        tokio::time::advance(wait).await;
        let Due::Deliver(p) = g.due("bob", PACE) else { panic!("due") };
        assert_eq!(p, offline("bob", 300));
        assert!(!g.delivered("bob"));
    }

    /// A server with presence events paced at `interval_ms`, and a session
    /// of "watcher" that watches (and may see) bob.
    async fn watched(
        dir: &tempfile::TempDir,
        interval_ms: u64,
    ) -> (crate::Server, Arc<AppState>, Arc<SessionHandle>) {
        let config = Config {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().into(),
            presence_interval_ms: interval_ms,
            ..Config::default()
        };
        let server = crate::Server::start(config).await.unwrap();
        let st = server.state.clone();
        let w = watcher(&st, "watcher", "bob");
        (server, st, w)
    }

    /// A watching session of `user` that may see `target`'s presence.
    fn watcher(st: &AppState, user: &str, target: &str) -> Arc<SessionHandle> {
        let w = st.hub.new_session(user, "d", 4096);
        st.hub.register(&w);
        st.hub.watch(&w, [(target, true)]);
        w
    }

    /// The presence events queued for `w`, in order.
    fn events(w: &SessionHandle) -> Vec<Value> {
        std::iter::from_fn(|| w.pop())
            .map(|f| serde_json::from_str::<Value>(f.as_str()).unwrap())
            .filter(|e| e["ev"] == "presence")
            .collect()
    }

    /// What a session's `hello` does to presence (session.rs `handshake`).
    async fn hello(st: &Arc<AppState>, user: &str) -> Arc<SessionHandle> {
        let s = st.hub.new_session(user, "phone", 16);
        let change = st.register_session(&s).await.expect("within the session cap");
        st.session_opened(user, "phone", &s.id, change).await;
        st.presence_changed(user, change).await;
        s
    }

    /// What a session's end does to presence (session.rs `farewell`).
    async fn close(st: &Arc<AppState>, s: &Arc<SessionHandle>) {
        s.end();
        let change = st.hub.unregister(s, &HashSet::new());
        st.session_closed(s).await;
        st.presence_changed(&s.user, change).await;
    }

    /// `times` sessions of `user`, each opened and closed.
    async fn reconnect(st: &Arc<AppState>, user: &str, times: usize) {
        for _ in 0..times {
            let s = hello(st, user).await;
            close(st, &s).await;
        }
    }

    /// Lets the held delivery (a timer task) run after time moved on.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// The events of a held delivery due now: lets it run, moving the
    /// (paused) clock on by 100 ms steps while none has come, at most 10 s
    /// past the interval (the bucket counts whole milliseconds, so at the
    /// deadline it may still be a hair short and wait once more).
    async fn delivered(w: &SessionHandle) -> Vec<Value> {
        for _ in 0..100 {
            settle().await;
            let ev = events(w);
            if !ev.is_empty() {
                return ev;
            }
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        Vec::new()
    }

    /// A user who reconnects 100 times in a burst costs a watcher a few
    /// events, not 200, and the last one says the user's true state, each
    /// time the burst ends (online, then offline).
    #[tokio::test]
    async fn a_reconnect_loop_costs_watchers_a_bounded_number_of_presence_events() {
        let dir = tempfile::tempdir().unwrap();
        // The interval is long, so the burst (in real time: storage runs
        // on its own thread) ends well within it; the test then moves
        // tokio's clock instead of waiting.
        let (server, st, w) = watched(&dir, 3_600_000).await;
        reconnect(&st, "bob", 100).await;
        let bob = hello(&st, "bob").await;
        let burst = events(&w);
        assert!(burst.len() <= 4, "at most presence_burst events at once, got {}", burst.len());
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let later = delivered(&w).await;
        assert_eq!(later.len(), 1, "one coalesced event: {later:?}");
        assert_eq!(later[0]["online"], true, "bob's true state: online again ({later:?})");
        // The user leaves while the bucket is empty: held, then delivered.
        close(&st, &bob).await;
        assert_eq!(events(&w), Vec::<Value>::new(), "held");
        let seen = st.store.last_seen(&["bob".to_owned()]).await.unwrap()["bob"];
        tokio::time::advance(Duration::from_secs(3600)).await;
        let last = delivered(&w).await;
        assert_eq!(last.len(), 1, "{last:?}");
        assert_eq!((&last[0]["online"], &last[0]["last_seen"]), (&Value::from(false), &Value::from(seen)));
        assert_eq!(st.hub.presence.held(), 0, "nothing left held");
        drop(server);
    }

    /// Normal use is exact: a sign-in and a sign-out reach the watcher at
    /// once, and again after a burst once the bucket has refilled.
    #[tokio::test]
    async fn a_sign_in_and_a_sign_out_reach_watchers_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (server, st, w) = watched(&dir, 3_600_000).await;
        for round in 0..2 {
            let s = hello(&st, "bob").await;
            let ev = events(&w);
            assert_eq!(ev.len(), 1, "round {round}: online at once: {ev:?}");
            assert_eq!(ev[0]["online"], true);
            close(&st, &s).await;
            let ev = events(&w);
            assert_eq!(ev.len(), 1, "round {round}: offline at once: {ev:?}");
            assert_eq!(ev[0]["online"], false);
            assert!(ev[0]["last_seen"].is_i64(), "{ev:?}");
            // Spend the rest of the burst, then wait for the bucket.
            reconnect(&st, "bob", 10).await;
            events(&w); // the rest of the burst, at once
            tokio::time::pause();
            tokio::time::advance(Duration::from_secs(4 * 3600)).await;
            assert_eq!(delivered(&w).await.len(), 1, "round {round}: the held change, once");
            tokio::time::resume();
        }
        drop(server);
    }

    /// A held change that no longer holds when it is delivered (another
    /// node changed the user meanwhile) is delivered as the state now.
    #[tokio::test(start_paused = true)]
    async fn a_held_delivery_says_the_state_at_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let (server, st, w) = watched(&dir, 15_000).await;
        st.store.set_last_seen("bob", 1234).await.unwrap();
        for _ in 0..4 {
            deliver(&st, online("bob"));
        }
        assert_eq!(events(&w).len(), 4);
        // Held: "online", but bob has no session anywhere.
        deliver(&st, online("bob"));
        assert!(events(&w).is_empty());
        tokio::time::advance(Duration::from_millis(15_000)).await;
        let ev = loop {
            let ev = events(&w);
            if !ev.is_empty() {
                break ev;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(ev, [serde_json::json!({"ev":"presence","user":"bob","online":false,"last_seen":1234})]);
        drop(server);
    }
}
