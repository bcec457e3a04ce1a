//! The tray icon: unread state (icon + tooltip with the count, and the
//! window badge where the platform has one: the Dock on macOS, the Unity
//! launcher count on Linux, an overlay icon on the Windows taskbar); menu
//! open / do not disturb / quit. Without a tray host (a bare X server)
//! building it fails quietly.

use crate::state::AppState;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

const TRAY_ID: &str = "main";

struct DndItem(CheckMenuItem<Wry>);

fn icon(unread: bool) -> Image<'static> {
    let bytes: &'static [u8] =
        if unread { include_bytes!("../icons/tray-unread.png") } else { include_bytes!("../icons/tray.png") };
    Image::from_bytes(bytes).expect("bundled tray icon is a valid PNG")
}

/// The tooltip for `n` unread messages.
pub fn tooltip(n: u64) -> String {
    match n {
        0 => "Courier".into(),
        1 => "Courier — 1 unread message".into(),
        n => format!("Courier — {n} unread messages"),
    }
}

/// Builds the tray.
///
/// # Errors
/// When the platform has no tray.
pub fn build(app: &AppHandle) -> tauri::Result<()> {
    let dnd_on = app.state::<AppState>().settings().do_not_disturb;
    let open = MenuItem::with_id(app, "open", "Open Courier", true, None::<&str>)?;
    let dnd = CheckMenuItem::with_id(app, "dnd", "Do not disturb", true, dnd_on, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Courier", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &dnd, &PredefinedMenuItem::separator(app)?, &quit])?;
    app.manage(DndItem(dnd));
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(false))
        .tooltip(tooltip(0))
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, e| match e.id().as_ref() {
            "open" => show_main(app),
            "dnd" => toggle_dnd(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, e| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = e
            {
                show_main(tray.app_handle());
            }
        })
        .build(app)?;
    Ok(())
}

/// Shows, unminimizes and focuses the main window.
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

fn toggle_dnd(app: &AppHandle) {
    let state = app.state::<AppState>();
    let mut s = state.settings();
    s.do_not_disturb = !s.do_not_disturb;
    match state.change_settings(s.clone()) {
        Ok(held_back) => crate::bridge::show_deferred(app, held_back),
        Err(e) => tracing::warn!("cannot save settings: {e}"),
    }
    set_dnd_checked(app, s.do_not_disturb);
    crate::bridge::emit(app, &s);
}

/// Keeps the menu's check mark in step with the settings.
pub fn set_dnd_checked(app: &AppHandle, on: bool) {
    if let Some(item) = app.try_state::<DndItem>() {
        let _ = item.0.set_checked(on);
    }
}

/// Shows the unread count: icon, tooltip, badge.
pub fn set_unread(app: &AppHandle, n: u64) {
    if let Some(t) = app.tray_by_id(TRAY_ID) {
        let _ = t.set_icon(Some(icon(n > 0)));
        let _ = t.set_tooltip(Some(tooltip(n)));
    }
    if let Some(w) = app.get_webview_window("main") {
        // macOS: the Dock badge; Linux: the Unity launcher count (GNOME's
        // dock, KDE's task manager) when a launcher listens.
        let _ = w.set_badge_count((n > 0).then_some(n as i64));
        // Windows has no count badge: the unread dot over the taskbar button.
        #[cfg(windows)]
        let _ = w.set_overlay_icon((n > 0).then(|| icon(true)));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tooltips() {
        assert_eq!(super::tooltip(0), "Courier");
        assert_eq!(super::tooltip(1), "Courier — 1 unread message");
        assert_eq!(super::tooltip(12), "Courier — 12 unread messages");
    }
}
