//! Start at login, through `tauri-plugin-autostart` (an XDG autostart
//! `.desktop` file on Linux, a login item on macOS, the `Run` registry key
//! on Windows). The OS entry is the setting: nothing is copied into
//! `settings.json`, so removing it in the desktop's own startup settings
//! shows as off here. Off until the user turns it on; each profile has its
//! own entry, which starts that profile.

use crate::error::CmdError;
use crate::profile::{DEFAULT_PROFILE, Profile};
use tauri::{AppHandle, Runtime};
use tauri_plugin_autostart::ManagerExt;

/// The name of the profile's login entry (the Linux file is `<name>.desktop`).
pub fn entry_name(profile: &Profile) -> String {
    if profile.name == DEFAULT_PROFILE { "Courier".into() } else { format!("Courier-{}", profile.name) }
}

/// The arguments the login entry starts the app with.
pub fn entry_args(profile: &Profile) -> Vec<String> {
    if profile.name == DEFAULT_PROFILE { Vec::new() } else { vec!["--profile".into(), profile.name.clone()] }
}

/// The plugin, set up for `profile`.
pub fn plugin<R: Runtime>(profile: &Profile) -> tauri::plugin::TauriPlugin<R> {
    tauri_plugin_autostart::Builder::new().app_name(entry_name(profile)).args(entry_args(profile)).build()
}

fn failed(what: &str, e: impl std::fmt::Display) -> CmdError {
    CmdError::new("autostart_failed", format!("Courier couldn't {what} start at login: {e}"))
}

/// Whether the app starts at login.
///
/// # Errors
/// `autostart_failed` when the OS entry cannot be read.
#[tauri::command]
#[specta::specta]
pub async fn start_at_login(app: AppHandle) -> Result<bool, CmdError> {
    app.autolaunch().is_enabled().map_err(|e| failed("check", e))
}

/// Turns start at login on or off; returns the state the OS now has.
///
/// # Errors
/// `autostart_failed` with the reason (e.g. an unwritable autostart folder).
#[tauri::command]
#[specta::specta]
pub async fn set_start_at_login(app: AppHandle, on: bool) -> Result<bool, CmdError> {
    let manager = app.autolaunch();
    if on {
        manager.enable().map_err(|e| failed("turn on", e))?;
    } else {
        manager.disable().map_err(|e| failed("turn off", e))?;
    }
    manager.is_enabled().map_err(|e| failed("check", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn each_profile_has_its_own_entry_that_starts_it() {
        let default = Profile::at(PathBuf::from("/r"), DEFAULT_PROFILE.into());
        let work = Profile::at(PathBuf::from("/r"), "work".into());
        assert_eq!(entry_name(&default), "Courier");
        assert!(entry_args(&default).is_empty());
        assert_eq!(entry_name(&work), "Courier-work");
        assert_eq!(entry_args(&work), ["--profile", "work"]);
    }
}
