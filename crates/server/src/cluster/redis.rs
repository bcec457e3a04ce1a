//! The Redis [`Bus`]: pub/sub for fan-out, sets and TTL keys for presence.
//!
//! Keys (all under `courier:`):
//! - `node:<id>`: the node's heartbeat, rewritten every `node_ttl / 3`, gone
//!   `node_ttl` after the node stops. A node without it is dead.
//! - `nodes`: the ids of nodes that may still own presence entries.
//! - `p:<user>`: the nodes holding a session of the user. Online means one
//!   of them is alive.
//! - `n:<id>`: the users node `<id>` holds (so a dead node can be reaped).
//! - `rl:<user>`: the user's rate bucket (a hash of `tokens` and `ts`, the
//!   Redis clock's ms), expiring once it would be full again.
//! - `hl:<user>`: the user's sign-in pace, a bucket of the same form.
//! - `s:<user>`: the user's live sessions, a hash from `<node>|<device>` to
//!   a count; entries of dead nodes do not count and are dropped lazily
//!   (and when the node is reaped).
//! - `call:<iid>`, `cd:…`, `cl:…`, `ca:…`: v1.2 call records, see `calls`.
//!
//! Channels: `courier:u:<user>` carries frames and 4003 kicks for a user;
//! a node subscribes while it holds a session of that user. `courier:all`
//! carries watcher events (presence, profile), channel cache invalidations
//! and frames for many users at once (a channel's members: one publish
//! naming them, see [`super::ONE_PUBLISH_FROM`]), and every node
//! subscribes to it. One subscriber connection receives both in the order
//! they were published, so a user's frames keep their order whichever
//! channel carried them.
//!
//! Three tasks per node: the publisher (a bounded queue drained into
//! pipelines, order kept), the subscriber (owns the pub/sub connection,
//! reconnects with back-off and resubscribes, then re-asserts this node's
//! presence entries and drops its channel caches, since invalidations may
//! have been missed), and the heartbeat (also reaps dead nodes: the reap of
//! one node is a single Lua script that removes it from `nodes`, so exactly
//! one survivor announces its users offline).

use super::{Bus, BusError, Envelope, Kind, ONE_PUBLISH_FROM, USERS_PER_PUBLISH};
use crate::clock::now_ms;
use crate::hub::{Hub, PresenceChange};
use crate::metrics::Metrics;
use crate::ratelimit::Pace;
use crate::state::event_frame;
use crate::store::Store;
use async_trait::async_trait;
use courier_proto::{Event, Presence};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Key prefix.
const PREFIX: &str = "courier:";
/// Channel prefix of per-user channels.
const USER_CHANNEL: &str = "courier:u:";
/// The channel every node subscribes to.
const ALL_CHANNEL: &str = "courier:all";
/// Longest a Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Most publishes queued before new ones are dropped (and counted).
const PUBLISH_QUEUE: usize = 100_000;
/// Most publishes sent in one pipeline.
const PUBLISH_BATCH: usize = 512;
/// Longest a new session waits for its user's subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// Records (or drops) this node's hold on a user, returns how many live
/// nodes hold the user now. ARGV: prefix, node, user, "1"/"0".
const PRESENCE_LUA: &str = r"
local k = ARGV[1]..'p:'..ARGV[3]
local nk = ARGV[1]..'n:'..ARGV[2]
if ARGV[4] == '1' then
  redis.call('SADD', k, ARGV[2]); redis.call('SADD', nk, ARGV[3])
else
  redis.call('SREM', k, ARGV[2]); redis.call('SREM', nk, ARGV[3])
end
local alive = 0
for _, n in ipairs(redis.call('SMEMBERS', k)) do
  if n == ARGV[2] or redis.call('EXISTS', ARGV[1]..'node:'..n) == 1 then alive = alive + 1 end
end
return alive
";

/// For each user, how many live nodes hold them. ARGV: prefix, users…
const ONLINE_LUA: &str = r"
local out = {}
for i = 2, #ARGV do
  local alive = 0
  for _, n in ipairs(redis.call('SMEMBERS', ARGV[1]..'p:'..ARGV[i])) do
    if redis.call('EXISTS', ARGV[1]..'node:'..n) == 1 then alive = alive + 1 end
  end
  out[#out + 1] = alive
end
return out
";

/// Reaps a node whose heartbeat lapsed: drops its presence entries and
/// returns the users now held by no live node. Its sessions' devices that
/// are call devices are marked departed, as a session that ended there
/// would have done (see `calls`). Only the caller that removes it from
/// `nodes` does the work. ARGV: prefix, node, call grace ms.
const REAP_LUA: &str = r"
if redis.call('SREM', ARGV[1]..'nodes', ARGV[2]) == 0 then return {} end
local gone = {}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace = tonumber(ARGV[3])
for _, u in ipairs(redis.call('SMEMBERS', ARGV[1]..'n:'..ARGV[2])) do
  local sk = ARGV[1]..'s:'..u
  for _, f in ipairs(redis.call('HKEYS', sk)) do
    if string.sub(f, 1, #ARGV[2] + 1) == ARGV[2]..'|' then
      redis.call('HDEL', sk, f)
      local party = u..'|'..string.sub(f, #ARGV[2] + 2)
      if redis.call('SCARD', ARGV[1]..'cd:'..party) > 0 then
        local token = 'reap-'..now
        redis.call('SET', ARGV[1]..'cl:'..party, token, 'PX', grace + 60000)
        redis.call('ZADD', ARGV[1]..'calls:due', now + grace, token..'|'..party)
      end
    end
  end
  local k = ARGV[1]..'p:'..u
  redis.call('SREM', k, ARGV[2])
  local alive = 0
  for _, n in ipairs(redis.call('SMEMBERS', k)) do
    if redis.call('EXISTS', ARGV[1]..'node:'..n) == 1 then alive = alive + 1 end
  end
  if alive == 0 then gone[#gone + 1] = u end
end
redis.call('DEL', ARGV[1]..'n:'..ARGV[2])
return gone
";

/// Lua: `take(key, rate, burst)` takes one token from the bucket at `key`
/// (`rate` per second, at most `burst`), on the Redis clock (so nodes'
/// clocks do not matter), and returns 0 when allowed, else the ms to wait.
/// The bucket expires once it would be full again. (A macro: scripts are
/// literals put together with `concat!`.)
macro_rules! take_lua {
    () => {
        r"
local function take(key, rate, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil or ts == nil then
    tokens = burst
  else
    tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  end
  local wait = 0
  if tokens >= 1 then
    tokens = tokens - 1
  else
    wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  return wait
end
"
    };
}

/// Takes one token from a user's bucket. Returns 0 when allowed, else the
/// ms to wait. KEYS: the bucket. ARGV: rate per second, burst.
const BUCKET_LUA: &str = concat!(take_lua!(), "return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))");

// After `take_lua!`, which its scripts use too.
mod calls;

/// Lua: `others(key, prefix, node, device)` counts the sessions in
/// `s:<user>` (`key`) of devices other than `device` on live nodes (`node`
/// is this one, alive by definition), dropping the entries of dead nodes.
macro_rules! others_lua {
    () => {
        r"
local function others(key, prefix, node, device)
  local n = 0
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    local f = flat[i]
    local sep = string.find(f, '|', 1, true)
    if sep == nil then
      redis.call('HDEL', key, f)
    else
      local at = string.sub(f, 1, sep - 1)
      if at == node or redis.call('EXISTS', prefix..'node:'..at) == 1 then
        if string.sub(f, sep + 1) ~= device then n = n + tonumber(flat[i + 1]) end
      else
        redis.call('HDEL', key, f)
      end
    end
  end
  return n
end
"
    };
}

/// Counts a new session unless the user has `cap` on other devices of live
/// nodes. Returns 1 when counted, 0 when over the cap.
/// KEYS: `s:<user>`. ARGV: prefix, node, device, cap.
const CLAIM_LUA: &str = concat!(
    others_lua!(),
    r"
if others(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2]..'|'..ARGV[3], 1)
return 1
"
);

/// The user's live sessions on other devices than one.
/// KEYS: `s:<user>`. ARGV: prefix, node, device.
const OTHERS_LUA: &str = concat!(others_lua!(), "return others(KEYS[1], ARGV[1], ARGV[2], ARGV[3])");

/// Uncounts a session. KEYS: `s:<user>`. ARGV: `<node>|<device>`.
const RELEASE_LUA: &str = r"
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
";

/// A queued publish, or a marker the publisher answers once everything
/// queued before it is sent.
enum Outgoing {
    Publish { channel: String, payload: Arc<str> },
    Flush(oneshot::Sender<()>),
}

/// Orders for the subscriber task.
enum SubCmd {
    /// Subscribe to a user's channel (if the user still has a session here).
    Sub(Arc<str>, Option<oneshot::Sender<()>>),
    /// Unsubscribe (if the user has no session here any more).
    Unsub(Arc<str>),
    /// Drop the connection and start over (Redis came back).
    Reconnect,
}

/// What the tasks share.
struct Inner {
    node: String,
    ttl: Duration,
    /// How long a departed call device may come back (`call_grace_ms`).
    call_grace: Duration,
    client: redis::Client,
    conn: ConnectionManager,
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    out: mpsc::Sender<Outgoing>,
    subs: mpsc::UnboundedSender<SubCmd>,
    dead: AtomicBool,
    presence: Script,
    online: Script,
    reap: Script,
    bucket: Script,
    claim: Script,
    others: Script,
    release: Script,
}

/// The Redis implementation of [`Bus`].
pub struct RedisBus {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

async fn timed<T>(
    metrics: &Metrics,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, BusError> {
    let started = Instant::now();
    let r = tokio::time::timeout(CALL_TIMEOUT, f).await.map_err(|_| BusError::Timeout(CALL_TIMEOUT))?;
    metrics.engine_latency.with_label_values(&["redis"]).observe(started.elapsed().as_secs_f64());
    Ok(r?)
}

impl RedisBus {
    /// Connects to Redis at `url`, announces node `node` (heartbeat TTL
    /// `ttl`) and starts the bus tasks. `call_grace` is how long a call
    /// device of a dead node's session may take to come back.
    ///
    /// # Errors
    /// An invalid URL, or Redis unreachable at start (later outages are
    /// ridden out with reconnects).
    pub async fn start(
        url: &str,
        node: String,
        ttl: Duration,
        call_grace: Duration,
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<RedisBus, BusError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(CALL_TIMEOUT * 2, client.get_connection_manager_with_config(config))
            .await
            .map_err(|_| BusError::Timeout(CALL_TIMEOUT * 2))??;
        let (out, out_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (subs, subs_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            node,
            ttl,
            call_grace,
            client,
            conn,
            hub,
            store,
            metrics,
            out,
            subs,
            dead: AtomicBool::new(false),
            presence: Script::new(PRESENCE_LUA),
            online: Script::new(ONLINE_LUA),
            reap: Script::new(REAP_LUA),
            bucket: Script::new(BUCKET_LUA),
            claim: Script::new(CLAIM_LUA),
            others: Script::new(OTHERS_LUA),
            release: Script::new(RELEASE_LUA),
        });
        // A node restarted under the same id (after a crash, before anyone
        // reaped it) starts clean: its old sessions are gone.
        inner.reap_node(&inner.node).await?;
        inner.beat().await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let tasks = vec![
            tokio::spawn(inner.clone().publisher(out_rx)),
            tokio::spawn(inner.clone().subscriber(subs_rx, ready_tx)),
            tokio::spawn(inner.clone().heartbeat()),
        ];
        // The first subscription (to `courier:all`) before serving anyone.
        let _ = tokio::time::timeout(CALL_TIMEOUT * 2, ready_rx).await;
        tracing::info!(node = %inner.node, "joined the cluster over redis");
        Ok(RedisBus { inner, tasks: Mutex::new(tasks) })
    }
}

impl Inner {
    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    fn enqueue(&self, channel: String, payload: Arc<str>) {
        if self.is_dead() {
            return;
        }
        if self.out.try_send(Outgoing::Publish { channel, payload }).is_err() {
            self.metrics.bus_dropped.inc();
        }
    }

    /// Writes the heartbeat key and registers in `nodes`.
    async fn beat(&self) -> Result<(), BusError> {
        let mut c = self.conn.clone();
        let ttl_ms = self.ttl.as_millis() as u64;
        timed(
            &self.metrics,
            redis::pipe()
                .cmd("SET")
                .arg(format!("{PREFIX}node:{}", self.node))
                .arg(1)
                .arg("PX")
                .arg(ttl_ms)
                .ignore()
                .cmd("SADD")
                .arg(format!("{PREFIX}nodes"))
                .arg(&self.node)
                .ignore()
                .exec_async(&mut c),
        )
        .await
    }

    async fn set_presence(&self, user: &str, on: bool) -> Result<i64, BusError> {
        let mut c = self.conn.clone();
        let mut inv = self.presence.prepare_invoke();
        inv.arg(PREFIX).arg(&self.node).arg(user).arg(if on { "1" } else { "0" });
        timed(&self.metrics, inv.invoke_async(&mut c)).await
    }

    /// Drains the publish queue into pipelines, in order.
    async fn publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Outgoing>) {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        let mut flushes = Vec::new();
        let mut failing = false;
        while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
            let mut pipe = redis::pipe();
            let mut n = 0u64;
            for item in batch.drain(..) {
                match item {
                    Outgoing::Publish { channel, payload } => {
                        pipe.cmd("PUBLISH").arg(channel).arg(&*payload).ignore();
                        n += 1;
                    }
                    Outgoing::Flush(ack) => flushes.push(ack),
                }
            }
            if n > 0 {
                let mut c = self.conn.clone();
                match timed(&self.metrics, pipe.exec_async(&mut c)).await {
                    Ok(()) => {
                        self.metrics.bus_published.inc_by(n);
                        if failing {
                            tracing::info!("redis publishing works again");
                            failing = false;
                        }
                    }
                    Err(e) => {
                        self.metrics.bus_dropped.inc_by(n);
                        if !failing {
                            tracing::warn!(error = %e, "redis publish failed; events to other nodes are dropped until it recovers (clients fill gaps on reconnect)");
                            failing = true;
                        }
                    }
                }
            }
            for ack in flushes.drain(..) {
                let _ = ack.send(());
            }
        }
    }

    /// Owns the pub/sub connection: (re)connects with back-off, resubscribes,
    /// and dispatches incoming messages.
    async fn subscriber(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<SubCmd>,
        ready: oneshot::Sender<()>,
    ) {
        let mut ready = Some(ready);
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        loop {
            if self.is_dead() {
                return;
            }
            let pubsub = match tokio::time::timeout(CALL_TIMEOUT, self.client.get_async_pubsub()).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "redis pub/sub connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(_) => {
                    tracing::warn!(retry_in = ?backoff, "redis pub/sub connection timed out");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let (mut sink, mut stream) = pubsub.split();
            let users = self.hub.online_users();
            let mut channels: Vec<String> = users.iter().map(|u| format!("{USER_CHANNEL}{u}")).collect();
            channels.push(ALL_CHANNEL.to_owned());
            if let Err(e) =
                tokio::time::timeout(CALL_TIMEOUT, sink.subscribe(&channels)).await.unwrap_or_else(|_| {
                    Err(redis::RedisError::from((redis::ErrorKind::Io, "subscribe timed out")))
                })
            {
                tracing::warn!(error = %e, retry_in = ?backoff, "redis subscribe failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            backoff = Duration::from_millis(100);
            let mut subscribed: HashSet<Arc<str>> = users.into_iter().collect();
            if first {
                first = false;
            } else {
                self.metrics.bus_reconnects.inc();
                if let Err(e) = self.resync(&subscribed).await {
                    tracing::warn!(error = %e, retry_in = ?backoff, "could not re-assert presence after reconnect");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                tracing::info!(users = subscribed.len(), "redis pub/sub reconnected; resubscribed");
            }
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            loop {
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        None => return,
                        Some(SubCmd::Sub(user, ack)) => {
                            if self.hub.is_online(&user) && !subscribed.contains(&user) {
                                let r = tokio::time::timeout(CALL_TIMEOUT, sink.subscribe(format!("{USER_CHANNEL}{user}"))).await;
                                if !matches!(r, Ok(Ok(()))) {
                                    tracing::warn!(%user, "redis subscribe failed; reconnecting");
                                    break;
                                }
                                subscribed.insert(user);
                            }
                            if let Some(ack) = ack {
                                let _ = ack.send(());
                            }
                        }
                        Some(SubCmd::Unsub(user)) => {
                            if !self.hub.is_online(&user) && subscribed.remove(&user) {
                                let r = tokio::time::timeout(CALL_TIMEOUT, sink.unsubscribe(format!("{USER_CHANNEL}{user}"))).await;
                                if !matches!(r, Ok(Ok(()))) {
                                    break;
                                }
                            }
                        }
                        Some(SubCmd::Reconnect) => {
                            tracing::info!("redis is back; renewing the pub/sub connection");
                            break;
                        }
                    },
                    msg = stream.next() => match msg {
                        Some(m) => self.receive(&m),
                        None => {
                            tracing::warn!("redis pub/sub connection lost; reconnecting");
                            break;
                        }
                    },
                }
            }
        }
    }

    /// After a reconnect: this node's presence entries may be gone (Redis
    /// restarted) and channel invalidations may have been missed.
    ///
    /// # Errors
    /// When Redis fails meanwhile (the caller reconnects and tries again).
    async fn resync(&self, users: &HashSet<Arc<str>>) -> Result<(), BusError> {
        // Pub/sub is at-most-once: whatever other nodes published while this
        // node was cut off is gone, and a session only notices a gap with
        // its conversation's next message. Close every session here with
        // 1001 so each client reconnects and syncs (its gap filling then
        // fetches what was missed); the clients' jittered back-off spreads
        // the reconnects.
        for s in self.hub.all_sessions() {
            s.request_close(courier_proto::CloseCode::GOING_AWAY, "event bus reconnected; resync");
        }
        self.hub.forget_channels();
        // The heartbeat key first: entries of a node without one count for
        // nothing.
        self.beat().await?;
        for u in users {
            self.set_presence(u, true).await?;
        }
        Ok(())
    }

    fn receive(&self, m: &redis::Msg) {
        let Ok(text) = std::str::from_utf8(m.get_payload_bytes()) else { return };
        let Some(env) = Envelope::decode(text) else {
            tracing::warn!(channel = m.get_channel_name(), "malformed bus message ignored");
            return;
        };
        if env.origin == self.node {
            return;
        }
        self.metrics.bus_received.inc();
        self.metrics.pubsub_lag.observe((now_ms() - env.sent_ms).max(0) as f64 / 1000.0);
        let user = m.get_channel_name().strip_prefix(USER_CHANNEL);
        match (env.kind, user) {
            (Kind::Frame, Some(user)) => {
                let frame: Arc<str> = Arc::from(env.body);
                self.hub.send_to_users([user], &frame, None);
            }
            (Kind::Users, None) => {
                let frame: Arc<str> = Arc::from(env.body);
                self.hub.send_to_users(env.arg.split(','), &frame, None);
            }
            (Kind::Kick, Some(user)) => self.hub.close_device_before(user, env.arg, env.body),
            (Kind::Watchers, _) => self.hub.send_to_watchers(env.arg, &Arc::from(env.body)),
            (Kind::Channel, _) => self.hub.forget_channel(env.arg),
            (Kind::Device, Some(user)) => {
                if let Some((device, frame)) = env.body.split_once('\n') {
                    self.hub.send_to_device(user, device, &Arc::from(frame));
                }
            }
            _ => {}
        }
    }

    /// Heartbeats, tells the subscriber when Redis comes back, reaps dead
    /// nodes.
    async fn heartbeat(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut healthy = true;
        loop {
            tick.tick().await;
            if self.is_dead() {
                return;
            }
            match self.beat().await {
                Ok(()) => {
                    self.metrics.engine_up.with_label_values(&["redis"]).set(1);
                    if !healthy {
                        healthy = true;
                        let _ = self.subs.send(SubCmd::Reconnect);
                    }
                    if let Err(e) = self.reap_dead().await {
                        tracing::warn!(error = %e, "reaping dead nodes failed");
                    }
                }
                Err(e) => {
                    self.metrics.engine_up.with_label_values(&["redis"]).set(0);
                    if healthy {
                        tracing::error!(error = %e, "redis heartbeat failed; presence and cross-node delivery degraded");
                        healthy = false;
                    }
                }
            }
        }
    }

    async fn reap_dead(&self) -> Result<(), BusError> {
        let mut c = self.conn.clone();
        let nodes: Vec<String> = timed(&self.metrics, c.smembers(format!("{PREFIX}nodes"))).await?;
        for n in nodes.into_iter().filter(|n| *n != self.node) {
            let alive: bool = timed(&self.metrics, c.exists(format!("{PREFIX}node:{n}"))).await?;
            if !alive {
                self.reap_node(&n).await?;
            }
        }
        Ok(())
    }

    /// Reaps `node` (if this call wins) and announces its users offline.
    async fn reap_node(&self, node: &str) -> Result<(), BusError> {
        let mut c = self.conn.clone();
        let mut inv = self.reap.prepare_invoke();
        inv.arg(PREFIX).arg(node).arg(self.call_grace.as_millis() as u64);
        let gone: Vec<String> = timed(&self.metrics, inv.invoke_async(&mut c)).await?;
        if !gone.is_empty() {
            tracing::info!(%node, users = gone.len(), "node left the cluster; its users went offline");
        }
        let now = now_ms();
        for user in gone {
            if let Err(e) = self.store.set_last_seen(&user, now).await {
                tracing::warn!(%user, error = %e, "could not record last_seen");
            }
            let frame = event_frame(&Event::Presence(Presence {
                user: user.clone(),
                online: false,
                last_seen: Some(now),
            }));
            self.hub.send_to_watchers(&user, &frame);
            self.publish_watchers(&user, &frame);
        }
        Ok(())
    }

    fn publish_watchers(&self, user: &str, frame: &Arc<str>) {
        let payload = Envelope::encode(Kind::Watchers, &self.node, now_ms(), user, frame);
        self.enqueue(ALL_CHANNEL.to_owned(), Arc::from(payload));
    }

    async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.out.send(Outgoing::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(CALL_TIMEOUT * 2, rx).await;
        }
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn node_id(&self) -> &str {
        &self.inner.node
    }

    fn publish_to_users(&self, users: &[&str], frame: &Arc<str>) {
        let i = &self.inner;
        if users.len() >= ONE_PUBLISH_FROM {
            for some in users.chunks(USERS_PER_PUBLISH) {
                let names = some.join(",");
                let payload = Envelope::encode(Kind::Users, &i.node, now_ms(), &names, frame);
                i.enqueue(ALL_CHANNEL.to_owned(), Arc::from(payload));
            }
            return;
        }
        let payload: Arc<str> = Arc::from(Envelope::encode(Kind::Frame, &i.node, now_ms(), "", frame));
        for u in users {
            i.enqueue(format!("{USER_CHANNEL}{u}"), payload.clone());
        }
    }

    fn publish_to_device(&self, user: &str, device: &str, frame: &Arc<str>) {
        let i = &self.inner;
        let body = format!("{device}\n{frame}");
        let payload = Envelope::encode(Kind::Device, &i.node, now_ms(), "", &body);
        i.enqueue(format!("{USER_CHANNEL}{user}"), Arc::from(payload));
    }

    fn publish_to_watchers(&self, user: &str, frame: &Arc<str>) {
        self.inner.publish_watchers(user, frame);
    }

    fn publish_kick(&self, user: &str, device: &str, newer: &str) {
        let i = &self.inner;
        let payload = Envelope::encode(Kind::Kick, &i.node, now_ms(), device, newer);
        i.enqueue(format!("{USER_CHANNEL}{user}"), Arc::from(payload));
    }

    fn publish_channel_changed(&self, channel: &str) {
        let i = &self.inner;
        let payload = Envelope::encode(Kind::Channel, &i.node, now_ms(), channel, "");
        i.enqueue(ALL_CHANNEL.to_owned(), Arc::from(payload));
    }

    async fn session_opened(&self, user: &str, change: PresenceChange) {
        let i = &self.inner;
        if i.is_dead() || change != PresenceChange::CameOnline {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if i.subs.send(SubCmd::Sub(Arc::from(user), Some(tx))).is_ok()
            && tokio::time::timeout(SUBSCRIBE_WAIT, rx).await.is_err()
        {
            tracing::warn!(%user, "no redis subscription in time; events from other nodes may be missed until it recovers");
        }
    }

    async fn presence(&self, user: &str, change: PresenceChange) -> PresenceChange {
        let i = &self.inner;
        if i.is_dead() {
            return change;
        }
        match change {
            PresenceChange::Unchanged => PresenceChange::Unchanged,
            PresenceChange::CameOnline => match i.set_presence(user, true).await {
                Ok(n) if n > 1 => PresenceChange::Unchanged,
                Ok(_) => PresenceChange::CameOnline,
                Err(e) => {
                    tracing::warn!(%user, error = %e, "could not record presence in redis");
                    PresenceChange::CameOnline
                }
            },
            PresenceChange::WentOffline => {
                if i.hub.is_online(user) {
                    // A new session arrived meanwhile; it recorded itself.
                    return PresenceChange::Unchanged;
                }
                let _ = i.subs.send(SubCmd::Unsub(Arc::from(user)));
                match i.set_presence(user, false).await {
                    Ok(0) => PresenceChange::WentOffline,
                    Ok(_) => PresenceChange::Unchanged,
                    Err(e) => {
                        tracing::warn!(%user, error = %e, "could not record presence in redis");
                        PresenceChange::WentOffline
                    }
                }
            }
        }
    }

    async fn take_token(&self, user: &str, rate: u32, burst: u32) -> Result<Option<Duration>, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        // EVALSHA (EVAL once when Redis does not know the script yet).
        let mut inv = i.bucket.key(format!("{PREFIX}rl:{user}"));
        inv.arg(rate.max(1)).arg(burst.max(1));
        let wait_ms: u64 = timed(&i.metrics, inv.invoke_async(&mut c)).await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }

    async fn take_hello(&self, user: &str, pace: Pace) -> Result<Option<Duration>, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        // The same bucket as `rl:`, refilled at one event per interval
        // (a fraction of a token per second).
        let mut inv = i.bucket.key(format!("{PREFIX}hl:{user}"));
        inv.arg(1000.0 / f64::from(pace.interval_ms.max(1))).arg(pace.burst.max(1));
        let wait_ms: u64 = timed(&i.metrics, inv.invoke_async(&mut c)).await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }

    async fn claim_session(&self, user: &str, device: &str, cap: u32) -> Result<bool, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let mut inv = i.claim.key(format!("{PREFIX}s:{user}"));
        inv.arg(PREFIX).arg(&i.node).arg(device).arg(cap);
        let counted: i64 = timed(&i.metrics, inv.invoke_async(&mut c)).await?;
        Ok(counted == 1)
    }

    async fn other_devices_online(&self, user: &str, device: &str) -> Result<bool, BusError> {
        let i = &self.inner;
        let mut c = i.conn.clone();
        let mut inv = i.others.key(format!("{PREFIX}s:{user}"));
        inv.arg(PREFIX).arg(&i.node).arg(device);
        let sessions: i64 = timed(&i.metrics, inv.invoke_async(&mut c)).await?;
        Ok(sessions > 0)
    }

    async fn release_session(&self, user: &str, device: &str) {
        let i = &self.inner;
        if i.is_dead() {
            return;
        }
        let mut c = i.conn.clone();
        let mut inv = i.release.key(format!("{PREFIX}s:{user}"));
        inv.arg(format!("{}|{device}", i.node));
        if let Err(e) = timed::<i64>(&i.metrics, inv.invoke_async(&mut c)).await {
            tracing::warn!(%user, error = %e, "could not uncount a session in redis");
        }
    }

    async fn online(&self, users: &[String]) -> Result<Vec<bool>, BusError> {
        let i = &self.inner;
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = i.conn.clone();
        let mut inv = i.online.prepare_invoke();
        inv.arg(PREFIX);
        for u in users {
            inv.arg(u);
        }
        let counts: Vec<i64> = timed(&i.metrics, inv.invoke_async(&mut c)).await?;
        Ok(users
            .iter()
            .zip(counts.into_iter().chain(std::iter::repeat(0)))
            .map(|(u, n)| n > 0 || i.hub.is_online(u))
            .collect())
    }

    async fn ping(&self) -> Result<Duration, BusError> {
        let mut c = self.inner.conn.clone();
        let started = Instant::now();
        timed(&self.inner.metrics, redis::cmd("PING").query_async::<String>(&mut c)).await?;
        Ok(started.elapsed())
    }

    async fn shutdown(&self, crash: bool) {
        let i = &self.inner;
        if !crash && !i.is_dead() {
            i.flush().await;
            let mut c = i.conn.clone();
            let _ = timed(&i.metrics, c.del::<_, ()>(format!("{PREFIX}node:{}", i.node))).await;
            // Users whose sessions could not clean up go offline now.
            if let Err(e) = i.reap_node(&i.node).await {
                tracing::warn!(error = %e, "could not clear this node's presence entries");
            }
            i.flush().await;
        }
        i.dead.store(true, Ordering::Relaxed);
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
        tracing::info!(node = %i.node, crash, "left the cluster");
    }
}
