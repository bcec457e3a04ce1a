//! The commands of the in-call view and of Settings → devices (listed in
//! [`crate::bindings`]). A call is placed and answered with the invitation
//! commands (`invite` with `content.video`, `answer_invite`); these act on
//! the profile's one running call, which is why none of them names a call.

use crate::calls::{Calls, DeviceChoice, DeviceInfo};
use crate::calls_frames::{FrameBytes, WAIT};
use crate::error::CmdError;
use crate::state::AppState;
use tauri::State;
use tauri::ipc::Channel;

type R<T> = Result<T, CmdError>;

fn no_call() -> CmdError {
    CmdError::new("not_found", "no call is running")
}

/// Hangs up the running call.
#[tauri::command]
#[specta::specta]
pub async fn call_hangup(calls: State<'_, Calls>) -> R<()> {
    if calls.hangup() { Ok(()) } else { Err(no_call()) }
}

/// Mutes or unmutes the microphone of the running call.
#[tauri::command]
#[specta::specta]
pub async fn call_set_muted(calls: State<'_, Calls>, muted: bool) -> R<()> {
    if calls.set_muted(muted) { Ok(()) } else { Err(no_call()) }
}

/// Turns the camera of the running call on or off.
#[tauri::command]
#[specta::specta]
pub async fn call_set_camera(calls: State<'_, Calls>, on: bool) -> R<()> {
    calls.current().ok_or_else(no_call)?.set_camera(on);
    Ok(())
}

/// The microphones, cameras and speakers the OS offers (empty headless).
#[tauri::command]
#[specta::specta]
pub async fn call_devices() -> R<Vec<DeviceInfo>> {
    let list = tauri::async_runtime::spawn_blocking(courier_media::devices)
        .await
        .map_err(|e| CmdError::new("internal", e.to_string()))?;
    Ok(list
        .into_iter()
        .map(|d| DeviceInfo {
            id: d.id,
            name: d.name,
            kind: match d.kind {
                courier_media::DeviceKind::Mic => "mic",
                courier_media::DeviceKind::Camera => "camera",
                courier_media::DeviceKind::Speaker => "speaker",
            }
            .to_owned(),
        })
        .collect())
}

/// Chooses the devices (kept in the profile's settings) and switches the
/// running call to them.
#[tauri::command]
#[specta::specta]
pub async fn call_set_devices(
    state: State<'_, AppState>,
    calls: State<'_, Calls>,
    choice: DeviceChoice,
) -> R<()> {
    let choice = choice.bounded();
    let mut settings = state.settings();
    settings.call_devices = choice.clone();
    state.set_settings(settings)?;
    if let Some(call) = calls.current() {
        call.set_devices(choice.mic, choice.camera, choice.speaker);
    }
    Ok(())
}

/// The next picture of the running call newer than `after` (the remote
/// one, or the self-view), scaled to fit the view: raw bytes, see
/// [`crate::calls_frames`]. Empty when none came within half a second.
#[tauri::command]
#[specta::specta]
pub async fn call_frame(
    calls: State<'_, Calls>,
    remote: bool,
    after: u32,
    max_width: u32,
    max_height: u32,
) -> R<FrameBytes> {
    Ok(calls.frames.next(remote, after, max_width, max_height, WAIT).await)
}

/// Starts the Settings mic test on `mic` (the default when null): levels
/// in dBFS arrive on `levels` until [`mic_test_stop`].
///
/// # Errors
/// `no_device` when there is no such microphone, `unavailable` when the
/// media engine is missing.
#[tauri::command]
#[specta::specta]
pub async fn mic_test_start(calls: State<'_, Calls>, mic: Option<String>, levels: Channel<f64>) -> R<()> {
    calls.start_mic_test(crate::calls::device_id(mic), levels).map_err(|e| match e {
        courier_media::MediaError::Device(_) => CmdError::new("no_device", e.to_string()),
        _ => CmdError::new("unavailable", e.to_string()),
    })
}

/// Stops the mic test.
#[tauri::command]
#[specta::specta]
pub async fn mic_test_stop(calls: State<'_, Calls>) -> R<()> {
    calls.stop_mic_test();
    Ok(())
}
