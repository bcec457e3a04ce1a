//! The cluster's [`CallBook`]: v1.2 call records in Redis, so whichever
//! node a call device's session lands on relays its signals, and a grace
//! timer on one node sees a device that came back on another.
//!
//! Keys (under `courier:`; a party is `<user>|<device>`):
//! - `call:<iid>`: a hash of `caller`, `callee` (empty while pending),
//!   `offered`, `ended` (`0`/`1`) and `v`, the version every swap checks
//!   and bumps.
//! - `cd:<party>`: the iids of the calls a device belongs to.
//! - `cl:<party>`: the token of the device's latest departure, while its
//!   grace runs.
//! - `ca:<iid>|<party>`: the device's signal allowance in that call, a
//!   bucket of `SIGNALS_PER_MIN` on the Redis clock.
//! - `calls:due`: departures (`<token>|<party>`) by the time their grace
//!   runs out, so another node ends them when the timing node died.
//!
//! Whether a departed device is live again is read from `s:<user>`, the
//! session counts every node keeps (see the parent module). A node that
//! dies marks nothing; the node that reaps it marks the call devices of its
//! sessions departed (`REAP_LUA`).

use super::{PREFIX, RedisBus, timed};
use crate::calls::{CallBook, CallRecord, Party, RECORD_TTL, SIGNALS_PER_MIN};
use crate::cluster::BusError;
use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS: call, cd:<caller>. ARGV: caller, iid, ttl ms.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'caller', ARGV[1], 'callee', '', 'offered', '0', 'ended', '0', 'v', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
",
    )
});

/// KEYS: call. ARGV: version, caller, callee, offered, ended, prefix, iid,
/// ttl ms. 1 when swapped, 0 when the version moved.
static SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'caller', ARGV[2], 'callee', ARGV[3], 'offered', ARGV[4], 'ended', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
for _, p in ipairs({ARGV[2], ARGV[3]}) do
  if p ~= '' then
    local k = ARGV[6]..'cd:'..p
    redis.call('SADD', k, ARGV[7])
    redis.call('PEXPIRE', k, ARGV[8])
  end
end
return 1
",
    )
});

/// KEYS: call. ARGV: prefix, iid.
static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for _, p in ipairs(redis.call('HMGET', KEYS[1], 'caller', 'callee')) do
  if p and p ~= '' then
    redis.call('SREM', ARGV[1]..'cd:'..p, ARGV[2])
    redis.call('DEL', ARGV[1]..'ca:'..ARGV[2]..'|'..p)
  end
end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// KEYS: call, the allowance bucket. ARGV: party, signals per minute.
/// 1 when the party is a call device and had a signal left.
static ALLOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        take_lua!(),
        r"
local v = redis.call('HMGET', KEYS[1], 'caller', 'callee')
if v[1] ~= ARGV[1] and v[2] ~= ARGV[1] then return 0 end
local per_min = tonumber(ARGV[2])
if take(KEYS[2], per_min / 60, per_min) == 0 then return 1 end
return 0
"
    ))
});

/// KEYS: cd:<party>, cl:<party>, the due set. ARGV: token, ttl ms, grace
/// ms, party. 1 when the device belongs to a call (and is now marked
/// departed, due when the grace runs out).
static LEFT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SCARD', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
redis.call('ZADD', KEYS[3], due, ARGV[1]..'|'..ARGV[4])
return 1
",
    )
});

/// KEYS: the due set. The departures (`<token>|<party>`) due by now.
static OVERDUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
",
    )
});

/// KEYS: cl:<party>, s:<user>, cd:<party>, the due set. ARGV: token,
/// prefix, device, party. The device's calls, unless it departed again or
/// is live on a live node.
static DEPARTED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREM', KEYS[4], ARGV[1]..'|'..ARGV[4])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {} end
redis.call('DEL', KEYS[1])
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do
  local f = flat[i]
  local sep = string.find(f, '|', 1, true)
  if sep and string.sub(f, sep + 1) == ARGV[3] and tonumber(flat[i + 1]) > 0
    and redis.call('EXISTS', ARGV[2]..'node:'..string.sub(f, 1, sep - 1)) == 1 then
    return {}
  end
end
return redis.call('SMEMBERS', KEYS[3])
",
    )
});

/// The departures whose grace runs, scored by when it runs out (ms).
const DUE_KEY: &str = "courier:calls:due";

fn call_key(iid: &str) -> String {
    format!("{PREFIX}call:{iid}")
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// A record from its hash (`None` when absent or malformed).
fn decode(h: &HashMap<String, String>) -> Option<(CallRecord, u64)> {
    let caller = Party::from_key(h.get("caller")?)?;
    let callee = match h.get("callee").map(String::as_str) {
        None | Some("") => None,
        Some(k) => Some(Party::from_key(k)?),
    };
    let rec = CallRecord {
        caller,
        callee,
        offered: h.get("offered").is_some_and(|v| v == "1"),
        ended: h.get("ended").is_some_and(|v| v == "1"),
    };
    Some((rec, h.get("v")?.parse().ok()?))
}

#[async_trait]
impl CallBook for RedisBus {
    async fn put(&self, iid: &str, rec: &CallRecord) -> Result<(), BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let caller = rec.caller.key();
        let mut inv = PUT.key(call_key(iid));
        inv.key(format!("{PREFIX}cd:{caller}")).arg(&caller).arg(iid).arg(RECORD_TTL.as_millis() as u64);
        timed::<i64>(&i.metrics, inv.invoke_async(&mut c)).await.map(drop)
    }

    async fn get(&self, iid: &str) -> Result<Option<(CallRecord, u64)>, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let h: HashMap<String, String> = timed(&i.metrics, c.hgetall(call_key(iid))).await?;
        Ok(decode(&h))
    }

    async fn swap(&self, iid: &str, version: u64, next: &CallRecord) -> Result<bool, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let callee = next.callee.as_ref().map(Party::key).unwrap_or_default();
        let mut inv = SWAP.key(call_key(iid));
        inv.arg(version)
            .arg(next.caller.key())
            .arg(callee)
            .arg(flag(next.offered))
            .arg(flag(next.ended))
            .arg(PREFIX)
            .arg(iid)
            .arg(RECORD_TTL.as_millis() as u64);
        Ok(timed::<i64>(&i.metrics, inv.invoke_async(&mut c)).await? == 1)
    }

    async fn forget(&self, iid: &str) -> Result<(), BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let mut inv = FORGET.key(call_key(iid));
        inv.arg(PREFIX).arg(iid);
        timed::<i64>(&i.metrics, inv.invoke_async(&mut c)).await.map(drop)
    }

    async fn allowance(&self, iid: &str, from: &Party) -> Result<bool, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let me = from.key();
        let mut inv = ALLOW.key(call_key(iid));
        inv.key(format!("{PREFIX}ca:{iid}|{me}")).arg(&me).arg(SIGNALS_PER_MIN);
        Ok(timed::<i64>(&i.metrics, inv.invoke_async(&mut c)).await? == 1)
    }

    async fn left(&self, device: &Party, token: &str, grace: Duration) -> Result<bool, BusError> {
        let i = &self.inner;
        if i.is_dead() {
            // A killed node writes nothing; the node that reaps it marks
            // its call devices departed.
            return Ok(false);
        }
        let mut c = i.conn.clone();
        let me = device.key();
        let mut inv = LEFT.key(format!("{PREFIX}cd:{me}"));
        let ttl = grace + Duration::from_secs(60);
        inv.key(format!("{PREFIX}cl:{me}"))
            .key(DUE_KEY)
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .arg(grace.as_millis() as u64)
            .arg(&me);
        Ok(timed::<i64>(&i.metrics, inv.invoke_async(&mut c)).await? == 1)
    }

    async fn departed(&self, device: &Party, token: &str) -> Result<Vec<String>, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let me = device.key();
        let mut inv = DEPARTED.key(format!("{PREFIX}cl:{me}"));
        inv.key(format!("{PREFIX}s:{}", device.user))
            .key(format!("{PREFIX}cd:{me}"))
            .key(DUE_KEY)
            .arg(token)
            .arg(PREFIX)
            .arg(&device.device)
            .arg(&me);
        timed(&i.metrics, inv.invoke_async(&mut c)).await
    }

    async fn overdue(&self) -> Result<Vec<(Party, String)>, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let due: Vec<String> = timed(&i.metrics, OVERDUE.key(DUE_KEY).invoke_async(&mut c)).await?;
        Ok(due
            .iter()
            .filter_map(|m| {
                let (token, party) = m.split_once('|')?;
                Some((Party::from_key(party)?, token.to_owned()))
            })
            .collect())
    }
}
