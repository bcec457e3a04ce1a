//! The state one client shares between its handles and its connection
//! manager ([`Inner`]), and how it reports events and connection states.
//! Sync sees it only through [`SyncContext`].

use crate::backoff::Jitter;
use crate::config::ClientConfig;
use crate::conn::{Connector, Session};
use crate::events::{ClientEvent, ConnState};
use crate::model::now_ms;
use crate::store::Store;
use crate::sync::SyncContext;
use crate::tls::TlsConfig;
use courier_proto::{Conv, HelloOk, InviteState, Limits};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

/// The state one client shares between its [`Client`](crate::Client)
/// handles and its connection manager.
pub(crate) struct Inner {
    pub(crate) cfg: ClientConfig,
    pub(crate) store: Arc<Store>,
    /// The user this client acts for (from the token, or the store's claim).
    pub(crate) me: String,
    /// The server URLs as WebSocket URLs, in fail-over order.
    pub(crate) urls: Vec<String>,
    /// The index in `urls` of the server in use (connected, or being
    /// tried): media goes to the same server as the session.
    pub(crate) server: AtomicUsize,
    /// The event stream every handle subscribes to.
    pub(crate) events: broadcast::Sender<ClientEvent>,
    /// The connection state now.
    pub(crate) state: watch::Sender<ConnState>,
    /// Why the manager gave up (close code, reason), once it did.
    pub(crate) stop_reason: Mutex<Option<(Option<u16>, String)>>,
    /// Why the last attempt failed or the last session ended.
    pub(crate) last_error: Mutex<Option<String>>,
    /// The local store failure that ended the current session, if one did
    /// (see `manager::local_failure`).
    pub(crate) store_failure: Mutex<Option<String>>,
    /// The live session, if any.
    pub(crate) session: Mutex<Option<Arc<Session>>>,
    /// The last session's hello (limits, features).
    pub(crate) hello: Mutex<Option<HelloOk>>,
    /// Server clock minus local clock at the last hello (ms).
    pub(crate) clock_offset: AtomicI64,
    /// Counts completed syncs.
    pub(crate) synced: watch::Sender<u64>,
    /// Woken when the outbox has something new.
    pub(crate) outbox_wake: Notify,
    /// Woken when receive or read cursors moved.
    pub(crate) ack_wake: Notify,
    /// Woken by [`Client::network_changed`](crate::Client::network_changed).
    pub(crate) network_wake: Notify,
    /// The bearer token for the next hello, renewals and media requests.
    pub(crate) token: Mutex<String>,
    /// Woken by [`Client::renew_token`](crate::Client::renew_token).
    pub(crate) token_wake: Notify,
    /// Set when the application stops the client (or drops every handle).
    pub(crate) shutdown: watch::Sender<bool>,
    /// Dials a URL (TCP/TLS, or an in-memory pipe in tests).
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) tls: TlsConfig,
    /// The randomness of the back-offs (fixed in tests).
    pub(crate) jitter: Jitter,
    /// The connection manager's task while it runs.
    pub(crate) manager: Mutex<Option<JoinHandle<()>>>,
    /// v1.2: invitations this device placed or accepted as a call device
    /// (from the `call_device` of their oks): the latest
    /// [`CallDevices::KEEP`] of them.
    pub(crate) call_devices: Mutex<CallDevices>,
    /// Answers this device has sent and not yet heard back about: iid → the
    /// state each asks for. An `invite_state` the server relays meanwhile
    /// that says that state is this device's answer taking effect.
    pub(crate) answering: Mutex<HashMap<String, InviteState>>,
}

/// The invitations this device is a call device of, newest last. Only the
/// latest [`CallDevices::KEEP`] are kept: a client that runs for weeks
/// places and takes calls all along, and a device is in a few calls at a
/// time (a caller has at most `pending_invites`, 20 by default, ringing).
#[derive(Default)]
pub(crate) struct CallDevices(std::collections::VecDeque<String>);

impl CallDevices {
    /// Invitations remembered.
    pub(crate) const KEEP: usize = 256;

    /// Notes that this device is a call device of `iid`.
    pub(crate) fn insert(&mut self, iid: &str) {
        if self.contains(iid) {
            return;
        }
        if self.0.len() >= Self::KEEP {
            self.0.pop_front();
        }
        self.0.push_back(iid.to_owned());
    }

    /// Whether this device is a call device of `iid`.
    pub(crate) fn contains(&self, iid: &str) -> bool {
        self.0.iter().any(|x| x == iid)
    }

    /// Invitations remembered (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Locks `m`, also after a panic elsewhere poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// The state of a client for `me`, not connected.
    pub(crate) fn new(
        cfg: ClientConfig,
        store: Arc<Store>,
        me: String,
        urls: Vec<String>,
        connector: Arc<dyn Connector>,
        jitter: Jitter,
        tls: TlsConfig,
    ) -> Inner {
        let (events, _) = broadcast::channel(4096);
        Inner {
            token: Mutex::new(cfg.token.clone()),
            cfg,
            store,
            me,
            urls,
            server: AtomicUsize::new(0),
            events,
            state: watch::channel(ConnState::Disconnected).0,
            stop_reason: Mutex::new(None),
            last_error: Mutex::new(None),
            store_failure: Mutex::new(None),
            session: Mutex::new(None),
            hello: Mutex::new(None),
            clock_offset: AtomicI64::new(0),
            synced: watch::channel(0).0,
            outbox_wake: Notify::new(),
            ack_wake: Notify::new(),
            network_wake: Notify::new(),
            token_wake: Notify::new(),
            shutdown: watch::channel(false).0,
            connector,
            tls,
            jitter,
            manager: Mutex::new(None),
            call_devices: Mutex::default(),
            answering: Mutex::default(),
        }
    }

    pub(crate) fn emit(&self, ev: ClientEvent) {
        let _ = self.events.send(ev);
    }

    pub(crate) fn emit_conversation(&self, conv: &Conv) {
        match self.store.conversation(&self.me, conv) {
            Ok(Some(c)) => self.emit(ClientEvent::ConversationUpdated { conversation: c }),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading conversation"),
        }
    }

    pub(crate) fn hello_limits(&self) -> Limits {
        lock(&self.hello).as_ref().map(|h| h.limits).unwrap_or_default()
    }

    /// The server's clock now, as far as this client can tell: the local
    /// clock plus the offset measured at the last hello. Invitations expire
    /// by it, so a local clock that is off does not end them early or late.
    pub(crate) fn server_now(&self) -> i64 {
        now_ms() + self.clock_offset.load(Ordering::Relaxed)
    }

    /// Whether the server listed `feature` in the last hello.
    pub(crate) fn has_feature(&self, feature: &str) -> bool {
        lock(&self.hello).as_ref().is_some_and(|h| h.features.iter().any(|f| f == feature))
    }

    pub(crate) fn set_state(
        &self,
        state: ConnState,
        url: Option<&str>,
        retry_in: Option<Duration>,
        reason: Option<String>,
        code: Option<u16>,
    ) {
        self.state.send_replace(state);
        {
            let mut last = lock(&self.last_error);
            if state == ConnState::Connected {
                *last = None;
            } else if let Some(r) = &reason {
                *last = Some(r.clone());
            }
        }
        self.emit(ClientEvent::Connection {
            state,
            url: url.map(str::to_owned),
            retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
            reason,
            close_code: code,
        });
    }

    pub(crate) fn session(&self) -> Option<Arc<Session>> {
        lock(&self.session).clone()
    }
}

impl SyncContext for Inner {
    fn store(&self) -> &Store {
        &self.store
    }

    fn me(&self) -> &str {
        &self.me
    }

    fn has_feature(&self, feature: &str) -> bool {
        Inner::has_feature(self, feature)
    }

    fn history_page(&self) -> u32 {
        self.hello_limits().history_page
    }

    fn server_now(&self) -> i64 {
        Inner::server_now(self)
    }

    fn emit(&self, ev: ClientEvent) {
        Inner::emit(self, ev);
    }

    fn answering(&self, iid: &str) -> Option<InviteState> {
        lock(&self.answering).get(iid).copied()
    }

    fn emit_conversation(&self, conv: &Conv) {
        Inner::emit_conversation(self, conv);
    }

    fn cursors_moved(&self) {
        self.ack_wake.notify_one();
    }
}
