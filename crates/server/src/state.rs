//! The state one server shares between its connections: configuration,
//! storage, the session hub, metrics, and the shutdown signal.

use crate::auth::Authenticator;
use crate::clock::now_ms;
use crate::cluster::Bus;
use crate::config::Config;
use crate::hub::SessionHandle;
use crate::hub::{ChannelCache, Hub, PresenceChange};
use crate::metrics::Metrics;
use crate::ratelimit::Verdict;
use crate::store::{Store, StoreResult, Transition};
use courier_proto::{Conv, Event, Invite, InviteState, Msg, Presence, Role};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Most overdue invitations one tick of the cluster's expiry scan expires
/// (more wait for the next tick).
pub const EXPIRY_SCAN_BATCH: u32 = 500;

/// Shared by every connection of one server.
pub struct AppState {
    /// Validated configuration.
    pub config: Config,
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Live sessions on this node.
    pub hub: Arc<Hub>,
    /// The cluster bus; `None` for a single node (which then pays nothing).
    pub bus: Option<Arc<dyn Bus>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Token verification.
    pub auth: Authenticator,
    /// Flips to true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Background timers (invitation expiry, call grace), ended at shutdown.
    /// Spawn with [`AppState::spawn_timer`], which reaps finished ones.
    pub timers: std::sync::Mutex<JoinSet<()>>,
    /// v1.2 call devices and their signal relay.
    pub calls: crate::calls::Calls,
}

/// Serialises an event once, for handing to many sessions.
pub fn event_frame(ev: &Event) -> Arc<str> {
    Arc::from(serde_json::to_string(ev).expect("events serialize"))
}

/// The cached entry of a channel in `hub`, loaded from `store` on first
/// use (and cached only when no membership change came meanwhile, see
/// [`Hub::cache_channel`]); `None` when the channel does not exist.
async fn channel_entry(hub: &Hub, store: &dyn Store, name: &str) -> StoreResult<Option<Arc<ChannelCache>>> {
    if let Some(c) = hub.channel(name) {
        return Ok(Some(c));
    }
    let epoch = hub.channel_epoch();
    let Some(row) = store.channel(name).await? else { return Ok(None) };
    let members = store.members(name).await?;
    Ok(Some(hub.cache_channel(name, ChannelCache::new(row.private, members), epoch)))
}

impl AppState {
    /// The cached entry of a channel (loaded from storage on first use), or
    /// `None` when the channel does not exist.
    pub async fn channel_entry(&self, name: &str) -> StoreResult<Option<Arc<ChannelCache>>> {
        channel_entry(&self.hub, &*self.store, name).await
    }

    /// `user`'s role in a channel as it counts for permissions: a server
    /// admin acts as owner of every channel; `None` for a non-member.
    pub async fn channel_role(&self, channel: &str, user: &str) -> StoreResult<Option<Role>> {
        if self.config.is_server_admin(user) {
            return Ok(Some(Role::Owner));
        }
        self.store.role(channel, user).await
    }

    /// Whether `user` may read and write `conv`.
    pub async fn is_conv_member(&self, conv: &Conv, user: &str) -> StoreResult<bool> {
        match conv {
            Conv::Dm(..) => Ok(conv.is_dm_party(user)),
            Conv::Channel(name) => Ok(self.channel_entry(name).await?.is_some_and(|c| c.is_member(user))),
        }
    }

    /// Queues a frame to every live session of the conversation's members
    /// except `except`. Returns how many sessions it reached.
    pub async fn send_to_conv(
        &self,
        conv: &Conv,
        frame: &Arc<str>,
        except: Option<u64>,
    ) -> StoreResult<usize> {
        Ok(match conv {
            Conv::Dm(a, b) if a == b => self.send_to_users([a.as_str()], frame, except),
            Conv::Dm(a, b) => self.send_to_users([a.as_str(), b.as_str()], frame, except),
            Conv::Channel(name) => match self.channel_entry(name).await? {
                Some(entry) => {
                    if let Some(bus) = &self.bus {
                        let members = entry.snapshot();
                        let users: Vec<&str> = members.iter().map(|m| &**m).collect();
                        bus.publish_to_users(&users, frame);
                    }
                    self.hub.send_to_channel(&entry, frame, except)
                }
                None => 0,
            },
        })
    }

    /// Queues `frame` to every session of each of `users`, on this node
    /// except the session `except`, and on the other nodes of a cluster.
    /// Returns how many sessions of this node it reached.
    pub fn send_to_users<'a>(
        &self,
        users: impl IntoIterator<Item = &'a str>,
        frame: &Arc<str>,
        except: Option<u64>,
    ) -> usize {
        match &self.bus {
            None => self.hub.send_to_users(users, frame, except),
            Some(bus) => {
                let users: Vec<&str> = users.into_iter().collect();
                bus.publish_to_users(&users, frame);
                self.hub.send_to_users(users, frame, except)
            }
        }
    }

    /// Queues `frame` to every session (on any node) watching `user`.
    pub fn send_to_watchers(&self, user: &str, frame: &Arc<str>) {
        if let Some(bus) = &self.bus {
            bus.publish_to_watchers(user, frame);
        }
        self.hub.send_to_watchers(user, frame);
    }

    /// Whether each of `users` is online (on any node of a cluster).
    pub async fn online(&self, users: &[String]) -> Vec<bool> {
        if let Some(bus) = &self.bus {
            match bus.online(users).await {
                Ok(v) => return v,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster presence unavailable; answering from this node")
                }
            }
        }
        users.iter().map(|u| self.hub.is_online(u)).collect()
    }

    /// Whether a frame sent to `user` with [`AppState::send_to_users`] may
    /// have reached sessions on other nodes: in a cluster, whether `user` is
    /// online on any node, or with `other_than` (the sender's own device,
    /// for a frame to oneself) whether one of the user's other devices is.
    /// A single node answers false: its sessions are the ones counted.
    pub async fn reached_elsewhere(&self, user: &str, other_than: Option<&str>) -> bool {
        let Some(bus) = &self.bus else { return false };
        let Some(device) = other_than else { return self.online(&[user.to_owned()]).await[0] };
        bus.other_devices_online(user, device).await.unwrap_or_else(|e| {
            tracing::warn!(%user, error = %e, "cluster session count unavailable; answering from this node");
            false
        })
    }

    /// A session was registered (`change` is the local presence change):
    /// in a cluster, subscribes to the user's events and closes older
    /// sessions of the same device on other nodes (older than `session`,
    /// its id).
    pub async fn session_opened(&self, user: &str, device: &str, session: &str, change: PresenceChange) {
        if let Some(bus) = &self.bus {
            bus.session_opened(user, change).await;
            bus.publish_kick(user, device, session);
        }
    }

    /// Takes one token from `user`'s bucket (`send_per_sec`, `send_burst`),
    /// shared by all of the user's sessions and, in a cluster, all nodes
    /// (protocol §8 v1.2). Every metered op and every upload calls this
    /// before validating anything. While Redis is unreachable a cluster
    /// node meters with its own buckets.
    pub async fn meter(&self, user: &str) -> Verdict {
        let l = &self.config.limits;
        if let Some(bus) = &self.bus {
            match bus.take_token(user, l.send_per_sec, l.send_burst).await {
                Ok(None) => return Verdict::Allowed,
                Ok(Some(wait)) => return Verdict::Limited(wait),
                Err(e) => {
                    tracing::debug!(%user, error = %e, "cluster rate bucket unavailable; metering locally")
                }
            }
        }
        self.hub.buckets.take(user, l.send_per_sec, l.send_burst)
    }

    /// Takes one sign-in from `user`'s pace (`hello_burst` in a row, then
    /// one per `hello_interval_ms`), cluster-wide in a cluster, so that a
    /// sign-in loop spread over N nodes is not paced N times over. While
    /// Redis is unreachable a node paces with its own buckets. Allowed
    /// when pacing is off (`hello_interval_ms` 0).
    pub async fn pace_hello(&self, user: &str) -> Verdict {
        let Some(pace) = crate::ratelimit::Pace::new(self.config.hello_burst, self.config.hello_interval_ms)
        else {
            return Verdict::Allowed;
        };
        if let Some(bus) = &self.bus {
            match bus.take_hello(user, pace).await {
                Ok(None) => return Verdict::Allowed,
                Ok(Some(wait)) => return Verdict::Limited(wait),
                Err(e) => {
                    tracing::debug!(%user, error = %e, "cluster sign-in pace unavailable; pacing locally")
                }
            }
        }
        pace.take(&self.hub.hellos, user)
    }

    /// The most live sessions one user may have (`limits.sessions`).
    pub fn session_cap(&self) -> u32 {
        self.config.limits.sessions.unwrap_or(courier_proto::event::DEFAULT_SESSIONS)
    }

    /// Registers a session within the user's session cap (cluster-wide in
    /// a cluster); `None` when the user has `sessions` live sessions on
    /// other devices already. A replacement of the same device always fits.
    pub async fn register_session(&self, handle: &Arc<SessionHandle>) -> Option<PresenceChange> {
        let cap = self.session_cap();
        if let Some(bus) = &self.bus {
            match bus.claim_session(&handle.user, &handle.device, cap).await {
                Ok(true) => return Some(self.hub.register(handle)),
                Ok(false) => return None,
                Err(e) => {
                    tracing::warn!(user = %handle.user, error = %e, "cluster session count unavailable; capping on this node")
                }
            }
        }
        self.hub.register_within(handle, cap as usize)
    }

    /// A session registered by [`AppState::register_session`] ended: it
    /// stops counting against its user's cap, and a call device starts its
    /// grace. (The hub unregisters it.)
    pub async fn session_closed(&self, handle: &SessionHandle) {
        if let Some(bus) = &self.bus {
            bus.release_session(&handle.user, &handle.device).await;
        }
        crate::calls::session_ended(self, &handle.user, &handle.device).await;
    }

    /// A channel's members changed: other nodes drop their cached copy.
    pub fn channel_changed(&self, channel: &str) {
        if let Some(bus) = &self.bus {
            bus.publish_channel_changed(channel);
        }
    }

    /// Delivers a freshly stored message to its conversation.
    pub async fn deliver_msg(&self, msg: Msg, except: Option<u64>) -> StoreResult<()> {
        let conv = msg.conv.clone();
        let frame = event_frame(&Event::Msg(msg));
        let n = self.send_to_conv(&conv, &frame, except).await?;
        self.metrics.deliveries.inc_by(n as u64);
        Ok(())
    }

    /// Tells watchers about a presence change (paced per user: see
    /// `presence`) and records last-seen.
    pub async fn presence_changed(self: &Arc<Self>, user: &str, change: PresenceChange) {
        let change = match &self.bus {
            Some(bus) => bus.presence(user, change).await,
            None => change,
        };
        let presence = match change {
            PresenceChange::Unchanged => return,
            PresenceChange::CameOnline => Presence { user: user.to_owned(), online: true, last_seen: None },
            PresenceChange::WentOffline => {
                let now = now_ms();
                if let Err(e) = self.store.set_last_seen(user, now).await {
                    tracing::warn!(%user, error = %e, "could not record last_seen");
                }
                Presence { user: user.to_owned(), online: false, last_seen: Some(now) }
            }
        };
        crate::presence::deliver(self, presence);
    }

    /// Sends an `invite_state` event to every live session of both parties.
    pub fn broadcast_invite_state(&self, invite: &Invite) {
        let frame = event_frame(&Event::InviteState { invite: invite.clone() });
        if invite.from == invite.to {
            self.send_to_users([invite.from.as_str()], &frame, None);
        } else {
            self.send_to_users([invite.from.as_str(), invite.to.as_str()], &frame, None);
        }
    }

    /// Marks an invitation received (once) and tells the caller's sessions.
    pub async fn invite_received(&self, iid: &str) {
        match self.store.mark_invite_received(iid).await {
            Ok(Some(inv)) => {
                let frame = event_frame(&Event::InviteState { invite: inv.clone() });
                self.send_to_users([inv.from.as_str()], &frame, None);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%iid, error = %e, "could not mark invitation received"),
        }
    }

    /// Runs `timer` in the background until it ends or the server stops.
    /// Finished timers are reaped first: a `JoinSet` keeps every finished
    /// task until it is joined, so each invitation and each call grace would
    /// otherwise stay allocated until shutdown.
    pub fn spawn_timer(&self, timer: impl Future<Output = ()> + Send + 'static) {
        let mut timers = self.timers.lock().expect("timers lock");
        while let Some(done) = timers.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                tracing::error!(error = %e, "a background timer panicked");
            }
        }
        timers.spawn(timer);
    }

    /// Arms the expiry timer of a pending invitation.
    pub fn schedule_expiry(self: &Arc<Self>, invite: &Invite) {
        let st = Arc::downgrade(self);
        let iid = invite.iid.clone();
        let wait = Duration::from_millis((invite.expires - now_ms()).max(0) as u64);
        self.spawn_timer(async move {
            tokio::time::sleep(wait).await;
            let Some(st) = st.upgrade() else { return };
            match st.store.transition_invite(&iid, InviteState::Expired, None).await {
                Ok(Transition::Done(inv)) => crate::ops::invites::ended(&st, &inv).await,
                Ok(_) => {}
                Err(e) => tracing::error!(%iid, error = %e, "could not expire invitation"),
            }
        });
    }

    /// In a cluster, expires overdue invitations every `every`, whichever
    /// node created them (that node may be gone), at most
    /// [`EXPIRY_SCAN_BATCH`] a tick (reading their iids only). Each expiry
    /// is a compare-and-set in storage, so exactly one node broadcasts it.
    pub fn scan_expiries(self: &Arc<Self>, every: Duration) {
        let st = Arc::downgrade(self);
        self.spawn_timer(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(st) = st.upgrade() else { return };
                let overdue = match st.store.overdue_invites(now_ms(), EXPIRY_SCAN_BATCH).await {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not scan invitations for expiry");
                        continue;
                    }
                };
                for iid in overdue {
                    match st.store.transition_invite(&iid, InviteState::Expired, None).await {
                        Ok(Transition::Done(inv)) => crate::ops::invites::ended(&st, &inv).await,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%iid, error = %e, "could not expire invitation"),
                    }
                }
            }
        });
    }

    /// Asks every session to close with `code` (shutdown: 1001).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for s in self.hub.all_sessions() {
            s.request_close(code, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    /// Expiry timers that have run are not kept until shutdown: arming the
    /// next timer reaps them.
    #[tokio::test]
    async fn finished_timers_are_reaped_when_the_next_is_armed() {
        const N: usize = 50;
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let server = crate::Server::start(config).await.unwrap();
        let st = server.state.clone();
        let now = now_ms();
        for n in 0..N {
            let invite = Invite {
                iid: format!("i{n}"),
                from: "alice".into(),
                to: "bob".into(),
                room: format!("call-i{n}"),
                content: Map::new(),
                state: InviteState::Pending,
                created: now,
                expires: now,
                received: false,
                reason: None,
                response: None,
            };
            st.store.create_invite(&invite).await.unwrap();
            st.schedule_expiry(&invite);
        }
        // Each timer expires its invitation at once (a bounded wait, so a
        // broken timer fails instead of hanging).
        for n in 0..N {
            let iid = format!("i{n}");
            let expired = async {
                while st.store.invite(&iid).await.unwrap().map(|i| i.state) != Some(InviteState::Expired) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), expired).await.expect("the timer expired it");
        }
        // The timers finish soon after (each writes its call record). Arm
        // trivial timers until the set holds nothing but the newest: without
        // reaping it only grows.
        let mut armed = 0;
        while st.timers.lock().unwrap().len() > 1 {
            assert!(armed < 3000, "{} finished timers are still held", st.timers.lock().unwrap().len());
            st.spawn_timer(async {});
            armed += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.shutdown().await.unwrap();
    }
}
