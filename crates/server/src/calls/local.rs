//! The single-node [`CallBook`]: call records, departures and signal
//! allowances in this process's memory (a single node has no other). A
//! record is forgotten [`RECORD_TTL`] after its last change, as the Redis
//! book's keys expire: it reads as gone from then on, and the next new call
//! after that sweeps it out (at most one sweep a minute).

use super::{CallBook, CallRecord, Party, RECORD_TTL, SIGNALS_PER_MIN};
use crate::cluster::BusError;
use crate::hub::Hub;
use crate::ratelimit::{Bucket, Verdict};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often a new call looks for records past [`RECORD_TTL`].
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A record, its version, and when it last changed.
type Entry = (CallRecord, u64, Instant);

#[derive(Default)]
struct Book {
    /// Records by iid, with their versions and last changes.
    calls: HashMap<String, Entry>,
    /// The calls each device belongs to.
    by_device: HashMap<Party, HashSet<String>>,
    /// Departed devices and the token of their latest departure.
    departed: HashMap<Party, String>,
    /// Signal allowances by (iid, device).
    allowance: HashMap<(String, Party), Bucket>,
    /// When the next new call sweeps out old records.
    next_sweep: Option<Instant>,
}

impl Book {
    fn index(&mut self, iid: &str, rec: &CallRecord) {
        for p in std::iter::once(&rec.caller).chain(rec.callee.as_ref()) {
            self.by_device.entry(p.clone()).or_default().insert(iid.to_owned());
        }
    }

    /// The entry of a call, unless it is gone or past [`RECORD_TTL`] (then
    /// it is forgotten now).
    fn live(&mut self, iid: &str, now: Instant) -> Option<&mut Entry> {
        if self.calls.get(iid).is_some_and(|e| now >= e.2 + RECORD_TTL) {
            self.forget(iid);
        }
        self.calls.get_mut(iid)
    }

    fn forget(&mut self, iid: &str) {
        let Some((rec, ..)) = self.calls.remove(iid) else { return };
        for p in std::iter::once(&rec.caller).chain(rec.callee.as_ref()) {
            if let Some(set) = self.by_device.get_mut(p) {
                set.remove(iid);
                if set.is_empty() {
                    self.by_device.remove(p);
                }
            }
            self.allowance.remove(&(iid.to_owned(), p.clone()));
        }
    }

    /// Forgets every record past [`RECORD_TTL`], at most once per
    /// [`SWEEP_EVERY`]: a call accepted and never ended (both devices
    /// gone without a trace) does not stay in memory for good.
    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        let old: Vec<String> =
            self.calls.iter().filter(|(_, e)| now >= e.2 + RECORD_TTL).map(|(iid, _)| iid.clone()).collect();
        for iid in old {
            self.forget(&iid);
        }
    }
}

/// Call records of one node, in memory.
pub struct LocalBook {
    hub: Arc<Hub>,
    book: Mutex<Book>,
}

impl LocalBook {
    /// A book that asks `hub` whether a device is live.
    pub fn new(hub: Arc<Hub>) -> Self {
        LocalBook { hub, book: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("call book lock")
    }
}

/// What one signal costs in bucket units: [`Bucket`] refills whole units a
/// second, so a signal costs 60 and the bucket refills `SIGNALS_PER_MIN`
/// units a second (`SIGNALS_PER_MIN` signals a minute), holding at most
/// `SIGNALS_PER_MIN` signals.
const UNIT: u32 = 60;

#[async_trait]
impl CallBook for LocalBook {
    async fn put(&self, iid: &str, rec: &CallRecord) -> Result<(), BusError> {
        let now = Instant::now();
        let mut b = self.lock();
        b.sweep(now);
        b.calls.insert(iid.to_owned(), (rec.clone(), 1, now));
        b.index(iid, rec);
        Ok(())
    }

    async fn get(&self, iid: &str) -> Result<Option<(CallRecord, u64)>, BusError> {
        Ok(self.lock().live(iid, Instant::now()).map(|(rec, v, _)| (rec.clone(), *v)))
    }

    async fn swap(&self, iid: &str, version: u64, next: &CallRecord) -> Result<bool, BusError> {
        let now = Instant::now();
        let mut b = self.lock();
        match b.live(iid, now) {
            Some((rec, v, changed)) if *v == version => {
                *rec = next.clone();
                *v += 1;
                *changed = now;
            }
            _ => return Ok(false),
        }
        b.index(iid, next);
        Ok(true)
    }

    async fn forget(&self, iid: &str) -> Result<(), BusError> {
        self.lock().forget(iid);
        Ok(())
    }

    async fn allowance(&self, iid: &str, from: &Party) -> Result<bool, BusError> {
        let now = Instant::now();
        let mut b = self.lock();
        if !b.live(iid, now).is_some_and(|(r, ..)| r.has(from)) {
            return Ok(false);
        }
        let burst = SIGNALS_PER_MIN * UNIT;
        let bucket =
            b.allowance.entry((iid.to_owned(), from.clone())).or_insert_with(|| Bucket::full(burst, now));
        Ok(bucket.take_n(now, UNIT, SIGNALS_PER_MIN, burst) == Verdict::Allowed)
    }

    async fn left(&self, device: &Party, token: &str, _grace: Duration) -> Result<bool, BusError> {
        let mut b = self.lock();
        if !b.by_device.contains_key(device) {
            return Ok(false);
        }
        b.departed.insert(device.clone(), token.to_owned());
        Ok(true)
    }

    async fn departed(&self, device: &Party, token: &str) -> Result<Vec<String>, BusError> {
        let mut b = self.lock();
        if b.departed.get(device).map(String::as_str) != Some(token) {
            return Ok(Vec::new());
        }
        b.departed.remove(device);
        if self.hub.device_online(&device.user, &device.device) {
            return Ok(Vec::new());
        }
        Ok(b.by_device.get(device).map(|s| s.iter().cloned().collect()).unwrap_or_default())
    }
}
