//! The one place that emits to the webview. Everything it sends is one of
//! the typed events below ([`ToUi`]), emitted by [`emit`] under the event's
//! name, and listed in [`crate::bindings`] so the UI's generated bindings
//! carry the same names and payload types:
//!
//! - [`CoreEvent`] (`courier://event`): every [`ClientEvent`] of the current
//!   client; the same loop drives notifications and the tray's unread state;
//! - [`DeepLink`] (`courier://deep-link`): a valid `courier://` link;
//! - [`Notice`] (`courier://notice`): something for the user to see;
//! - [`Settings`] (`courier://settings`): the settings, when the shell
//!   changed them (the tray's do-not-disturb);
//! - [`crate::calls::CallUpdate`] (`courier://call`): the running call.

use crate::deeplink::{DeepLink, parse_deep_link};
use crate::notify::{self, Context, Note};
use crate::settings::Settings;
use crate::state::AppState;
use crate::tray;
use courier_client::{Client, ClientEvent};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::broadcast::error::RecvError;

/// The event every `ClientEvent` is emitted on.
pub const EVENT_NAME: &str = "courier://event";
/// A valid `courier://` link: payload [`DeepLink`].
pub const DEEP_LINK_EVENT: &str = "courier://deep-link";
/// Something for the user to see: payload [`Notice`].
pub const NOTICE_EVENT: &str = "courier://notice";
/// The new [`Settings`], when the shell (the tray) changed them.
pub const SETTINGS_EVENT: &str = "courier://settings";

/// A client-core event, as the UI receives it (the `ClientEvent` itself).
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(transparent)]
pub struct CoreEvent(pub ClientEvent);

/// How serious a [`Notice`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    /// Something failed.
    Error,
    /// For information.
    Info,
}

/// Something for the user to see (shown as a toast): a refused link, a
/// failed start-up sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct Notice {
    /// How serious.
    pub level: NoticeLevel,
    /// For humans.
    pub message: String,
}

impl Notice {
    /// An error notice.
    pub fn error(message: impl Into<String>) -> Notice {
        Notice { level: NoticeLevel::Error, message: message.into() }
    }
}

/// A payload the shell sends to the webview: each has one event name, and
/// [`crate::bindings`] registers each so the UI's bindings know it.
pub trait ToUi: tauri_specta::Event + Serialize + Clone {}

macro_rules! to_ui {
    ($($ty:ty => $name:expr),* $(,)?) => {$(
        impl tauri_specta::Event for $ty {
            const NAME: &'static str = $name;
        }
        impl ToUi for $ty {}
    )*};
}

to_ui! {
    CoreEvent => EVENT_NAME,
    DeepLink => DEEP_LINK_EVENT,
    Notice => NOTICE_EVENT,
    Settings => SETTINGS_EVENT,
    crate::calls::CallUpdate => crate::calls::CALL_EVENT,
}

/// Emits `event` to the webview under its name: the one emit of the shell.
pub fn emit<E: ToUi>(app: &AppHandle, event: &E) {
    if let Err(e) = app.emit(E::NAME, event) {
        tracing::warn!("cannot emit {} to the webview: {e}", E::NAME);
    }
}

/// At most one message notification per conversation in this window (a
/// burst of messages shows its first one).
const NOTE_GAP: Duration = Duration::from_secs(1);

/// What recent notifications the forwarder remembers: the last one per
/// conversation and per missed call, and the call notifications per caller.
#[derive(Default)]
struct Shown {
    last: HashMap<String, Instant>,
    calls: notify::CallPacer,
}

/// Forwards the events of each client the state hands over (one at a time:
/// a new sign-in replaces the previous forwarder).
pub fn spawn(app: AppHandle, mut feed: tokio::sync::mpsc::UnboundedReceiver<crate::state::Feed>) {
    tauri::async_runtime::spawn(async move {
        let mut current: Option<tauri::async_runtime::JoinHandle<()>> = None;
        while let Some((client, rx)) = feed.recv().await {
            if let Some(h) = current.take() {
                h.abort();
            }
            current = Some(tauri::async_runtime::spawn(forward(app.clone(), client, rx)));
        }
    });
}

async fn forward(app: AppHandle, client: Client, mut rx: tokio::sync::broadcast::Receiver<ClientEvent>) {
    let me = client.me().to_owned();
    let mut unread: HashMap<String, u64> = client
        .conversations()
        .map(|cs| cs.into_iter().map(|c| (c.conv.to_string(), c.unread)).collect())
        .unwrap_or_default();
    let mut total: u64 = unread.values().sum();
    tray::set_unread(&app, total);
    let mut last_note = Shown::default();
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                // The UI missed events: a sync_completed makes it reload.
                tracing::warn!("event forwarder lagged by {n}");
                ClientEvent::SyncCompleted { conversations: 0, fetched: 0 }
            }
            Err(RecvError::Closed) => break,
        };
        let calls = app.state::<crate::calls::Calls>();
        if let Some(iid) = crate::calls::busy_refusal(&ev, calls.in_call()) {
            // Busy (§12): refused without ringing over the running call.
            crate::calls::refuse_busy(&client, iid);
            continue;
        }
        let ev = CoreEvent(ev);
        emit(&app, &ev);
        let CoreEvent(ev) = ev;
        calls.on_event(&app, &client, &ev);
        // Unread counts follow the core's rule (content messages of others,
        // not recalled); a channel this user was removed from drops out.
        let changed = match &ev {
            ClientEvent::ConversationUpdated { conversation: c } => {
                unread.insert(c.conv.to_string(), c.unread);
                true
            }
            ClientEvent::Member { channel, user, removed: true, .. } if *user == me => {
                unread.remove(&format!("ch:{channel}"));
                true
            }
            _ => false,
        };
        let now: u64 = unread.values().sum();
        if changed && now != total {
            total = now;
            tray::set_unread(&app, total);
        }
        let state = app.state::<AppState>();
        let settings = state.settings();
        let active = state.active();
        let attentive = app
            .get_webview_window("main")
            .is_some_and(|w| w.is_visible().unwrap_or(false) && w.is_focused().unwrap_or(false));
        let cx =
            Context { me: &me, settings: &settings, attentive, active: active.as_ref(), now_ms: now_ms() };
        if let Some(note) = notify::decide(&ev, &cx) {
            show(&app, &client, note, &mut last_note);
        } else if let Some(note) = notify::deferred(&ev, &cx) {
            state.defer_note(note);
        }
    }
}

fn show(app: &AppHandle, client: &Client, note: Note, shown: &mut Shown) {
    let last = &mut shown.last;
    if last.len() > 1024 {
        // One entry per conversation and missed call: forget old ones.
        last.retain(|_, t| t.elapsed() < Duration::from_secs(60));
    }
    let name = |user: &str| {
        let profile = client.store().profiles(&[user.to_owned()]).ok().and_then(|ps| ps.into_iter().next());
        notify::sender_label(profile.as_ref().map(|p| p.name.as_str()), user)
    };
    let app = app.clone();
    match note {
        Note::Message { conv, from, channel, preview, mention } => {
            // A mention shows even right after another message.
            if !mention && last.get(&conv).is_some_and(|t| t.elapsed() < NOTE_GAP) {
                return;
            }
            last.insert(conv, Instant::now());
            let who = name(&from);
            let summary = match (&channel, mention) {
                (Some(ch), true) => format!("{who} mentioned you in #{ch}"),
                (Some(ch), false) => format!("{who} in #{ch}"),
                (None, true) => format!("{who} mentioned you"),
                (None, false) => who,
            };
            let link = match channel {
                Some(channel) => DeepLink::Channel { channel },
                None => DeepLink::Chat { user: from },
            };
            notify::show(summary, preview, move || open_link(&app, link));
        }
        Note::Call { iid, from } => {
            if !shown.calls.allow("call", &from, Instant::now()) {
                return;
            }
            let invite = client.invites().ok().and_then(|vs| vs.into_iter().find(|v| v.invite.iid == iid));
            let video = invite.as_ref().is_some_and(crate::calls::wants_video);
            let ring_ms = invite
                .map_or(45_000, |v| (v.invite.expires - client.server_now()).clamp(1_000, 300_000) as u32);
            let zh = notify::speaks_chinese(
                app.state::<AppState>().settings().language,
                notify::os_locale().as_deref(),
            );
            let text = notify::incoming_call_text(&name(&from), video, zh);
            let client = client.clone();
            notify::show_call(text, ring_ms, move |choice| {
                crate::calls::on_notification(&app, &client, &iid, choice)
            });
        }
        Note::MissedCall { iid, from } => {
            if last.insert(format!("missed:{iid}"), Instant::now()).is_some()
                || !shown.calls.allow("missed", &from, Instant::now())
            {
                return;
            }
            let zh = notify::speaks_chinese(
                app.state::<AppState>().settings().language,
                notify::os_locale().as_deref(),
            );
            let (summary, body) = notify::missed_call_text(&name(&from), zh);
            notify::show(summary, body, move || open_link(&app, DeepLink::Chat { user: from }));
        }
    }
}

/// Shows what do-not-disturb held back, now that it ended.
pub fn show_deferred(app: &AppHandle, notes: Vec<Note>) {
    let Ok(client) = app.state::<AppState>().client() else { return };
    let mut seen = Shown::default();
    for note in notes {
        show(app, &client, note, &mut seen);
    }
}

/// Handles a `courier://` link from the OS (start-up arguments, the deep
/// link plugin, or a second instance): brings the window up and emits the
/// parsed link, or a notice with the reason it was refused.
pub fn handle_link(app: &AppHandle, raw: &str) {
    match parse_deep_link(raw) {
        Ok(link) => open_link(app, link),
        Err(e) => {
            tracing::warn!("refused deep link {raw:?}: {e}");
            tray::show_main(app);
            let message = crate::deeplink::refusal_message(raw, &e);
            emit(app, &Notice::error(message.clone()));
            notify::show("Courier".into(), message, || {});
        }
    }
}

fn open_link(app: &AppHandle, link: DeepLink) {
    tray::show_main(app);
    app.state::<AppState>().set_last_link(link.clone());
    emit(app, &link);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
