//! The commands `ui/src/services/transport.ts` (TauriTransport) invokes,
//! listed in [`crate::bindings`].
//! Each takes the state, calls one client-core function and maps the error
//! (style §10). Argument names are camelCase on the wire (Tauri's default).

use crate::error::CmdError;
use crate::settings::{Account, ConnectConfig, ServerInfo, Settings};
use crate::state::AppState;
use courier_client::{ClientEvent, ConversationView, InviteView, MessageView, UploadedMedia};
use courier_proto::{ChannelInfo, Conv, MemberInfo, Presence, Profile, Role, Target};
use serde::Serialize;
use serde_json::{Map, Value};
use tauri::State;
use tauri::ipc::Channel;

type R<T> = Result<T, CmdError>;
type S<'a> = State<'a, AppState>;

// ---- account and connection ------------------------------------------

#[tauri::command]
#[specta::specta]
pub async fn account(state: S<'_>) -> R<Option<Account>> {
    Ok(state.account().await)
}

#[tauri::command]
#[specta::specta]
pub async fn connect(state: S<'_>, config: ConnectConfig) -> R<Account> {
    state.connect(config, true, false).await
}

#[tauri::command]
#[specta::specta]
pub async fn connection_state(state: S<'_>) -> R<ClientEvent> {
    state.connection_event()
}

/// What the server of the last `hello` offers: the UI hides v1.1 actions
/// without `"v1.1"` and uses the windows to offer edit/recall only while
/// they may succeed.
#[tauri::command]
#[specta::specta]
pub async fn server_info(state: S<'_>) -> R<ServerInfo> {
    let client = state.client()?;
    let limits = client.limits();
    Ok(ServerInfo {
        features: client.features(),
        edit_window_s: limits.edit_window_s,
        recall_window_s: limits.recall_window_s,
    })
}

// ---- messages ----------------------------------------------------------

#[tauri::command]
#[specta::specta]
pub async fn send_text(
    state: S<'_>,
    to: Target,
    text: String,
    reply_to: Option<String>,
    mentions: Option<Vec<String>>,
) -> R<MessageView> {
    let mentions = mentions.unwrap_or_default();
    Ok(state.client()?.send_text_with(&to, &text, reply_to.as_deref(), &mentions)?)
}

#[tauri::command]
#[specta::specta]
#[allow(clippy::too_many_arguments)]
pub async fn send_image(
    state: S<'_>,
    to: Target,
    media: UploadedMedia,
    name: String,
    width: u32,
    height: u32,
    reply_to: Option<String>,
) -> R<MessageView> {
    Ok(state.client()?.send_image(&to, &media, &name, width, height, reply_to.as_deref())?)
}

#[tauri::command]
#[specta::specta]
pub async fn send_file(
    state: S<'_>,
    to: Target,
    media: UploadedMedia,
    name: String,
    reply_to: Option<String>,
) -> R<MessageView> {
    Ok(state.client()?.send_file(&to, &media, &name, reply_to.as_deref())?)
}

/// Upload progress for the UI's `Channel`.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct Progress {
    /// Bytes sent so far.
    pub sent: u64,
    /// All bytes.
    pub total: u64,
}

#[tauri::command]
#[specta::specta]
pub async fn upload(
    state: S<'_>,
    bytes: Vec<u8>,
    mime: String,
    progress: Channel<Progress>,
) -> R<UploadedMedia> {
    // The core uploads in one request: report the start and the end.
    let total = bytes.len() as u64;
    let _ = progress.send(Progress { sent: 0, total });
    let m = state.client()?.upload(bytes, &mime).await?;
    let _ = progress.send(Progress { sent: total, total });
    Ok(m)
}

/// The cached file of an image message, for the webview to show:
/// downloaded once, and given only when it is a PNG, JPEG, GIF or WebP of
/// at most 50 megapixels, `images::MAX_PIXELS` (`not_an_image`,
/// `image_too_large`: the UI offers it as a file instead).
#[tauri::command]
#[specta::specta]
pub async fn image_file(state: S<'_>, media: String) -> R<String> {
    let path = state.client()?.download(&media).await?;
    crate::images::check_image_file(&path)?;
    Ok(path.to_string_lossy().into_owned())
}

/// Opens a downloaded file with the OS. A file that could run code (by
/// the `name` the sender gave it, its type or its first bytes) is refused
/// with `confirm_required` unless the user has confirmed (`confirmed`).
#[tauri::command]
#[specta::specta]
pub async fn open_media(state: S<'_>, media: String, name: Option<String>, confirmed: Option<bool>) -> R<()> {
    let client = state.client()?;
    let path = client.download(&media).await?;
    let mime = client.store().media_mime(&media).map_err(|e| CmdError::new("storage", e.to_string()))?;
    let head = read_head(&path)?;
    crate::os::check_open(name.as_deref(), mime.as_deref(), &head, confirmed)?;
    crate::os::open(path.as_os_str())
}

/// The first bytes of a file (for [`crate::os::is_executable`]).
fn read_head(path: &std::path::Path) -> Result<Vec<u8>, CmdError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)?.take(16).read_to_end(&mut head)?;
    Ok(head)
}

#[tauri::command]
#[specta::specta]
pub async fn retry_message(state: S<'_>, cid: String) -> R<MessageView> {
    Ok(state.client()?.retry(&cid)?)
}

#[tauri::command]
#[specta::specta]
pub async fn delete_unsent(state: S<'_>, cid: String) -> R<bool> {
    Ok(state.client()?.delete_unsent(&cid)?)
}

#[tauri::command]
#[specta::specta]
pub async fn history_page(state: S<'_>, conv: Conv, before: Option<u64>, limit: u32) -> R<Vec<MessageView>> {
    Ok(state.client()?.history(&conv, before, limit)?)
}

#[tauri::command]
#[specta::specta]
pub async fn search(state: S<'_>, query: String, limit: u32) -> R<Vec<MessageView>> {
    Ok(state.client()?.search(&query, limit)?)
}

#[tauri::command]
#[specta::specta]
pub async fn conversations(state: S<'_>) -> R<Vec<ConversationView>> {
    static FIRST: std::sync::Once = std::sync::Once::new();
    FIRST.call_once(|| {
        let ms = crate::STARTED.get().map_or(0, |t| t.elapsed().as_millis());
        tracing::info!(target: "courier_desktop::timing", "first conversation list requested {ms} ms after start");
        crate::memory::trim_later();
    });
    Ok(state.client()?.conversations()?)
}

#[tauri::command]
#[specta::specta]
pub async fn mark_read(state: S<'_>, conv: Conv, seq: Option<u64>) -> R<()> {
    // Reading a conversation means it is on screen (for notifications).
    state.set_active(Some(conv.clone()));
    Ok(state.client()?.mark_read(&conv, seq)?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_draft(state: S<'_>, conv: Conv, text: String) -> R<()> {
    Ok(state.client()?.set_draft(&conv, &text)?)
}

#[tauri::command]
#[specta::specta]
pub async fn typing(state: S<'_>, conv: Conv) -> R<()> {
    Ok(state.client()?.typing(&conv).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn signal(state: S<'_>, to: Target, body: Map<String, Value>) -> R<()> {
    Ok(state.client()?.signal(&to, body).await?)
}

// ---- v1.1: edits, recalls, reactions, pins, forwarding ----------------------

/// Returns the edited message (the change also comes as `message_updated`).
#[tauri::command]
#[specta::specta]
pub async fn edit_message(state: S<'_>, conv: Conv, mid: String, text: String) -> R<MessageView> {
    Ok(state.client()?.edit(&conv, &mid, &text).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn recall_message(state: S<'_>, conv: Conv, mid: String) -> R<()> {
    state.client()?.recall(&conv, &mid).await?;
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub async fn react(state: S<'_>, conv: Conv, mid: String, key: String, on: bool) -> R<()> {
    state.client()?.react(&conv, &mid, &key, on).await?;
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub async fn pin_message(state: S<'_>, conv: Conv, mid: String, on: bool) -> R<()> {
    state.client()?.pin(&conv, &mid, on).await?;
    Ok(())
}

/// Returns the new message in `to`.
#[tauri::command]
#[specta::specta]
pub async fn forward_message(state: S<'_>, conv: Conv, mid: String, to: Target) -> R<MessageView> {
    Ok(state.client()?.forward(&conv, &mid, &to).await?)
}

/// A stored content message by conv and server id, or `null` when this
/// device does not have it (forward labels check their original with it).
#[tauri::command]
#[specta::specta]
pub async fn message_by_mid(state: S<'_>, conv: Conv, mid: String) -> R<Option<MessageView>> {
    Ok(state.client()?.message(&conv, &mid)?)
}

#[tauri::command]
#[specta::specta]
pub async fn pinned_messages(state: S<'_>, conv: Conv) -> R<Vec<MessageView>> {
    Ok(state.client()?.pinned(&conv)?)
}

// ---- channels ------------------------------------------------------------

#[tauri::command]
#[specta::specta]
pub async fn channels(state: S<'_>) -> R<Vec<ChannelInfo>> {
    Ok(state.client()?.channels().await?)
}

#[tauri::command]
#[specta::specta]
pub async fn join_channel(state: S<'_>, channel: String) -> R<Conv> {
    Ok(state.client()?.join(&channel).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn leave_channel(state: S<'_>, channel: String) -> R<()> {
    Ok(state.client()?.leave(&channel).await?)
}

/// `is_private`, not `private`: the generated TypeScript function takes
/// each argument by name, and `private` is reserved in strict mode.
#[tauri::command]
#[specta::specta]
pub async fn create_channel(
    state: S<'_>,
    channel: String,
    title: String,
    topic: String,
    is_private: bool,
) -> R<Conv> {
    Ok(state.client()?.create_channel(&channel, &title, &topic, is_private).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn add_member(state: S<'_>, channel: String, user: String) -> R<()> {
    Ok(state.client()?.add_member(&channel, &user).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn members(state: S<'_>, channel: String) -> R<Vec<MemberInfo>> {
    Ok(state.client()?.members(&channel).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_role(state: S<'_>, channel: String, user: String, role: Role) -> R<()> {
    Ok(state.client()?.set_role(&channel, &user, role).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn remove_member(state: S<'_>, channel: String, user: String) -> R<()> {
    Ok(state.client()?.remove_member(&channel, &user).await?)
}

// ---- presence and profiles -----------------------------------------------

#[tauri::command]
#[specta::specta]
pub async fn watch_presence(state: S<'_>, users: Vec<String>) -> R<Vec<Presence>> {
    Ok(state.client()?.watch(&users).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn unwatch_presence(state: S<'_>, users: Vec<String>) -> R<()> {
    Ok(state.client()?.unwatch(&users).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn profiles(state: S<'_>, users: Vec<String>) -> R<Vec<Profile>> {
    Ok(state.client()?.profiles(&users).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_profile(state: S<'_>, name: String, avatar: String, status: String) -> R<()> {
    Ok(state.client()?.set_profile(&name, &avatar, &status).await?)
}

// ---- call invitations ----------------------------------------------------

#[tauri::command]
#[specta::specta]
pub async fn invite(
    app: tauri::AppHandle,
    state: S<'_>,
    calls: State<'_, crate::calls::Calls>,
    to: String,
    content: Map<String, Value>,
    ttl_s: u32,
) -> R<InviteView> {
    let client = state.client()?;
    let v = client.invite(&to, content, ttl_s).await?;
    calls.invited(&app, &client, &v);
    Ok(v)
}

#[tauri::command]
#[specta::specta]
pub async fn answer_invite(
    state: S<'_>,
    iid: String,
    accept: bool,
    response: Map<String, Value>,
    app: tauri::AppHandle,
    calls: State<'_, crate::calls::Calls>,
) -> R<Option<InviteView>> {
    let client = state.client()?;
    if accept {
        calls.accepting(&iid);
    }
    let v = client.answer(&iid, accept, response).await.inspect_err(|_| calls.accept_done(&iid))?;
    match &v {
        Some(v) => calls.answered(&app, &client, v),
        None => calls.accept_done(&iid),
    }
    Ok(v)
}

#[tauri::command]
#[specta::specta]
pub async fn cancel_invite(state: S<'_>, iid: String) -> R<Option<InviteView>> {
    Ok(state.client()?.cancel_invite(&iid).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn invites(state: S<'_>) -> R<Vec<InviteView>> {
    Ok(state.client()?.invites()?)
}

// ---- app -------------------------------------------------------------------

#[tauri::command]
#[specta::specta]
pub async fn settings_get(state: S<'_>) -> R<Settings> {
    Ok(state.settings())
}

#[tauri::command]
#[specta::specta]
pub async fn settings_set(app: tauri::AppHandle, state: S<'_>, settings: Settings) -> R<()> {
    let dnd = settings.do_not_disturb;
    let held_back = state.change_settings(settings)?;
    crate::tray::set_dnd_checked(&app, dnd);
    crate::bridge::show_deferred(&app, held_back);
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub async fn open_external(url: String) -> R<()> {
    let url = crate::os::check_external_url(&url)?;
    crate::os::open(url.as_str().as_ref())
}

/// The conversation on screen (`null` when none), so a message there does
/// not notify while the window has focus.
#[tauri::command]
#[specta::specta]
pub async fn set_active_conversation(state: S<'_>, conv: Option<Conv>) -> R<()> {
    state.set_active(conv);
    Ok(())
}

/// The last `courier://` link the app was opened with (for a UI that
/// subscribes to `courier://deep-link` only after a cold start).
#[tauri::command]
#[specta::specta]
pub async fn last_deep_link(state: S<'_>) -> R<Option<crate::deeplink::DeepLink>> {
    Ok(state.last_link())
}
