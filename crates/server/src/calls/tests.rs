use super::local::LocalBook;
use super::*;
use crate::hub::Hub;
use crate::state::AppState;

fn party(user: &str, device: &str) -> Party {
    Party { user: user.into(), device: device.into() }
}

fn accepted_call() -> CallRecord {
    CallRecord { callee: Some(party("bob", "desk")), ..CallRecord::new(party("alice", "phone")) }
}

#[test]
fn party_keys_split_at_the_first_bar() {
    let p = party("alice", "dev|with|bars");
    assert_eq!(Party::from_key(&p.key()), Some(p));
    assert_eq!(Party::from_key("no-bar"), None);
}

#[test]
fn only_the_two_call_devices_signal_once_accepted() {
    let (alice, bob) = (party("alice", "phone"), party("bob", "desk"));
    let pending = CallRecord::new(alice.clone());
    assert!(judge(&pending, &alice, Some("offer")).is_err(), "not before accepted");
    let rec = accepted_call();
    assert!(judge(&rec, &party("alice", "laptop"), Some("candidate")).is_err(), "the caller's other device");
    assert!(judge(&rec, &party("bob", "phone"), Some("end")).is_err(), "the callee's other device");
    assert!(judge(&rec, &party("eve", "x"), Some("end")).is_err());
    assert_eq!(judge(&rec, &alice, Some("candidate")).unwrap(), Relay { to: bob.clone(), next: None });
}

#[test]
fn the_caller_offers_once_and_the_callee_waits_for_it() {
    let (alice, bob) = (party("alice", "phone"), party("bob", "desk"));
    let rec = accepted_call();
    assert!(judge(&rec, &bob, Some("offer")).is_err(), "only the caller offers");
    assert!(judge(&rec, &bob, Some("candidate")).is_err(), "the callee waits for the offer");
    assert!(judge(&rec, &bob, None).is_err(), "also with a body without t");
    let end = judge(&rec, &bob, Some("end")).unwrap();
    assert!(end.next.is_some_and(|n| n.ended), "but may end");
    let offered = judge(&rec, &alice, Some("offer")).unwrap().next.expect("the offer changes the record");
    assert!(offered.offered);
    assert!(judge(&offered, &alice, Some("offer")).is_err(), "once");
    assert_eq!(judge(&offered, &bob, Some("answer")).unwrap().to, alice);
}

#[test]
fn nothing_passes_after_an_end() {
    let rec = CallRecord { ended: true, offered: true, ..accepted_call() };
    for who in [party("alice", "phone"), party("bob", "desk")] {
        assert!(judge(&rec, &who, Some("end")).is_err());
        assert!(judge(&rec, &who, Some("candidate")).is_err());
    }
}

#[tokio::test]
async fn the_local_book_swaps_by_version_and_forgets() {
    let book = LocalBook::new(Arc::new(Hub::default()));
    let alice = party("alice", "phone");
    book.put("i1", &CallRecord::new(alice.clone())).await.unwrap();
    let (rec, v) = book.get("i1").await.unwrap().unwrap();
    let next = CallRecord { callee: Some(party("bob", "desk")), ..rec };
    assert!(book.swap("i1", v, &next).await.unwrap());
    assert!(!book.swap("i1", v, &next).await.unwrap(), "a stale version loses");
    assert!(book.allowance("i1", &party("bob", "desk")).await.unwrap());
    assert!(!book.allowance("i1", &party("bob", "other")).await.unwrap(), "not a call device");
    book.forget("i1").await.unwrap();
    assert!(book.get("i1").await.unwrap().is_none());
    assert!(!book.left(&alice, "t", Duration::from_secs(1)).await.unwrap(), "no call left to end");
}

/// A call that never ends is forgotten 12 h after its last change, as
/// the Redis book's keys expire: it reads as gone from then on, and one
/// nobody asks about again is swept out when a later call starts.
#[tokio::test(start_paused = true)]
async fn the_local_book_forgets_a_call_12_h_after_its_last_change() {
    let book = LocalBook::new(Arc::new(Hub::default()));
    let (alice, carol) = (party("alice", "phone"), party("carol", "desk"));
    let hour = Duration::from_secs(3600);
    book.put("i1", &CallRecord::new(alice.clone())).await.unwrap();
    book.put("untouched", &CallRecord::new(carol.clone())).await.unwrap();
    tokio::time::advance(11 * hour).await;
    let (_, v) = book.get("i1").await.unwrap().expect("within 12 h");
    assert!(book.swap("i1", v, &accepted_call()).await.unwrap());
    tokio::time::advance(11 * hour).await;
    assert!(book.get("i1").await.unwrap().is_some(), "12 h count from the last change");
    assert!(book.allowance("i1", &alice).await.unwrap());
    tokio::time::advance(hour).await;
    assert_eq!(book.get("i1").await.unwrap(), None, "12 h after its last change");
    assert!(!book.allowance("i1", &alice).await.unwrap());
    let grace = Duration::from_secs(30);
    assert!(!book.left(&alice, "t", grace).await.unwrap(), "its devices are in no call");
    assert!(book.left(&carol, "t", grace).await.unwrap(), "not swept yet");
    book.put("later", &CallRecord::new(party("dave", "pad"))).await.unwrap();
    assert!(!book.left(&carol, "t2", grace).await.unwrap(), "swept when a later call started");
}

#[tokio::test(start_paused = true)]
async fn the_allowance_is_two_hundred_a_minute() {
    let book = LocalBook::new(Arc::new(Hub::default()));
    let alice = party("alice", "phone");
    book.put("i1", &CallRecord::new(alice.clone())).await.unwrap();
    for n in 0..SIGNALS_PER_MIN {
        assert!(book.allowance("i1", &alice).await.unwrap(), "signal {n}");
    }
    assert!(!book.allowance("i1", &alice).await.unwrap(), "spent");
    tokio::time::advance(Duration::from_millis(60_000 / u64::from(SIGNALS_PER_MIN) + 5)).await;
    assert!(book.allowance("i1", &alice).await.unwrap(), "one back after 300 ms");
    assert!(!book.allowance("i1", &alice).await.unwrap());
}

#[tokio::test]
async fn a_departure_counts_only_while_it_is_the_latest_and_the_device_is_away() {
    let hub = Arc::new(Hub::default());
    let book = LocalBook::new(hub.clone());
    let alice = party("alice", "phone");
    book.put("i1", &CallRecord::new(alice.clone())).await.unwrap();
    assert!(book.left(&alice, "t1", Duration::from_secs(1)).await.unwrap());
    assert!(book.left(&alice, "t2", Duration::from_secs(1)).await.unwrap());
    assert!(book.departed(&alice, "t1").await.unwrap().is_empty(), "superseded by t2");
    // Back within the grace: the new session inherits the role.
    let s = hub.new_session("alice", "phone", 8);
    hub.register(&s);
    assert!(book.departed(&alice, "t2").await.unwrap().is_empty(), "the device is live again");
    hub.unregister(&s, &Default::default());
    assert!(book.left(&alice, "t3", Duration::from_secs(1)).await.unwrap());
    assert_eq!(book.departed(&alice, "t3").await.unwrap(), ["i1"]);
}

/// A book whose `left` fails a number of times first, as the Redis book
/// does while Redis is unreachable.
struct FailingLeft {
    book: LocalBook,
    failures: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl CallBook for FailingLeft {
    async fn put(&self, iid: &str, rec: &CallRecord) -> Result<(), BusError> {
        self.book.put(iid, rec).await
    }
    async fn get(&self, iid: &str) -> Result<Option<(CallRecord, u64)>, BusError> {
        self.book.get(iid).await
    }
    async fn swap(&self, iid: &str, version: u64, next: &CallRecord) -> Result<bool, BusError> {
        self.book.swap(iid, version, next).await
    }
    async fn forget(&self, iid: &str) -> Result<(), BusError> {
        self.book.forget(iid).await
    }
    async fn allowance(&self, iid: &str, from: &Party) -> Result<bool, BusError> {
        self.book.allowance(iid, from).await
    }
    async fn left(&self, device: &Party, token: &str, grace: Duration) -> Result<bool, BusError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.failures.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(BusError::Timeout(Duration::from_secs(2)));
        }
        self.book.left(device, token, grace).await
    }
    async fn departed(&self, device: &Party, token: &str) -> Result<Vec<String>, BusError> {
        self.book.departed(device, token).await
    }
}

/// A server state (single node, no sockets) whose calls live in `book`.
fn state_with_book(dir: &std::path::Path, hub: Arc<Hub>, book: Arc<dyn CallBook>) -> Arc<AppState> {
    let config = crate::config::Config { data_dir: dir.into(), ..Default::default() };
    let store = Arc::new(crate::store::sqlite::SqliteStore::open(dir).expect("a store"));
    let (_, shutdown) = tokio::sync::watch::channel(false);
    Arc::new_cyclic(|me| AppState {
        calls: Calls::new(book, me.clone()),
        auth: crate::auth::Authenticator::new(None, true),
        hub,
        bus: None,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        shutdown,
        timers: Default::default(),
        store,
        config,
    })
}

/// When the book cannot record a call device's departure as its session
/// ends, the grace still runs out: the other device hears `gone` and the
/// call ends, not before the grace.
#[tokio::test(start_paused = true)]
async fn a_departure_the_book_failed_to_record_still_ends_the_call_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::default());
    let book = Arc::new(FailingLeft { book: LocalBook::new(hub.clone()), failures: 3.into() });
    let st = state_with_book(dir.path(), hub.clone(), book.clone());
    let grace = Duration::from_millis(st.config.call_grace_ms);
    book.put("i1", &accepted_call()).await.unwrap();
    let bob = hub.new_session("bob", "desk", 8);
    hub.register(&bob);

    session_ended(&st, "alice", "phone").await;
    tokio::time::sleep(grace / 2).await;
    assert!(
        book.get("i1").await.unwrap().is_some_and(|(r, _)| !r.ended),
        "within the grace the call goes on"
    );
    tokio::time::sleep(grace).await;
    assert_eq!(book.get("i1").await.unwrap(), None, "the grace ran out: the call ended and was forgotten");
    let frames: Vec<String> = std::iter::from_fn(|| bob.pop()).map(|f| f.to_string()).collect();
    assert!(
        frames.iter().any(|f| f.contains(r#""t":"end""#) && f.contains(r#""reason":"gone""#)),
        "bob's device heard gone: {frames:?}"
    );
}
