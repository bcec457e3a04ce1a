//! The single-node [`CallBook`]: call records, departures and signal
//! allowances in this process's memory (a single node has no other).

use super::{CallBook, CallRecord, Party, SIGNALS_PER_MIN};
use crate::cluster::BusError;
use crate::hub::Hub;
use crate::ratelimit::{Bucket, Verdict};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Default)]
struct Book {
    /// Records by iid, with their versions.
    calls: HashMap<String, (CallRecord, u64)>,
    /// The calls each device belongs to.
    by_device: HashMap<Party, HashSet<String>>,
    /// Departed devices and the token of their latest departure.
    departed: HashMap<Party, String>,
    /// Signal allowances by (iid, device).
    allowance: HashMap<(String, Party), Bucket>,
}

impl Book {
    fn index(&mut self, iid: &str, rec: &CallRecord) {
        for p in std::iter::once(&rec.caller).chain(rec.callee.as_ref()) {
            self.by_device.entry(p.clone()).or_default().insert(iid.to_owned());
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
        let mut b = self.lock();
        b.calls.insert(iid.to_owned(), (rec.clone(), 1));
        b.index(iid, rec);
        Ok(())
    }

    async fn get(&self, iid: &str) -> Result<Option<(CallRecord, u64)>, BusError> {
        Ok(self.lock().calls.get(iid).cloned())
    }

    async fn swap(&self, iid: &str, version: u64, next: &CallRecord) -> Result<bool, BusError> {
        let mut b = self.lock();
        match b.calls.get_mut(iid) {
            Some((rec, v)) if *v == version => {
                *rec = next.clone();
                *v += 1;
            }
            _ => return Ok(false),
        }
        b.index(iid, next);
        Ok(true)
    }

    async fn forget(&self, iid: &str) -> Result<(), BusError> {
        let mut b = self.lock();
        let Some((rec, _)) = b.calls.remove(iid) else { return Ok(()) };
        for p in std::iter::once(&rec.caller).chain(rec.callee.as_ref()) {
            if let Some(set) = b.by_device.get_mut(p) {
                set.remove(iid);
                if set.is_empty() {
                    b.by_device.remove(p);
                }
            }
            b.allowance.remove(&(iid.to_owned(), p.clone()));
        }
        Ok(())
    }

    async fn allowance(&self, iid: &str, from: &Party) -> Result<bool, BusError> {
        let mut b = self.lock();
        if !b.calls.get(iid).is_some_and(|(r, _)| r.has(from)) {
            return Ok(false);
        }
        let now = Instant::now();
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
