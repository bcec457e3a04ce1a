//! The webview tuned for an app rather than a browser (WebKitGTK; WebView2
//! and WKWebView keep their defaults). Measured in docs/benchmarks.md,
//! "Desktop app memory and start-up":
//!
//! - no back/forward page cache (the app is one page that never navigates);
//! - the `DocumentViewer` cache model: the smallest memory caches, for a
//!   page that loads its few resources once from the app's own protocol;
//! - GPU compositing left at WebKit's default. Turning it off
//!   (`HardwareAccelerationPolicy::Never`) saved ~75 MiB RSS under Xvfb, but
//!   with it WebKit's snapshots (WebDriver screenshots) hung for good after
//!   the theme changed, in the E2E run: kept on until that is understood;
//! - developer extras (the inspector) in debug builds only.

/// The settings applied, as data (tested; applied by [`apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Keep pages in the back/forward cache.
    pub page_cache: bool,
    /// The web inspector.
    pub developer_extras: bool,
    /// Accelerated compositing (GPU or software GL).
    pub hardware_acceleration: bool,
    /// The smallest memory caches (`CacheModel::DocumentViewer`).
    pub document_viewer_cache: bool,
}

/// The app's tuning: `debug` says whether this is a debug build.
pub const fn tuning(debug: bool) -> Tuning {
    Tuning {
        page_cache: false,
        developer_extras: debug,
        hardware_acceleration: true,
        document_viewer_cache: true,
    }
}

/// Applies [`tuning`] to the main window's webview and its web context.
pub fn apply(app: &tauri::AppHandle) {
    #[cfg(target_os = "linux")]
    {
        use tauri::Manager;
        use webkit2gtk::{CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt};
        let Some(window) = app.get_webview_window("main") else { return };
        let t = tuning(cfg!(debug_assertions));
        let r = window.with_webview(move |wv| {
            let wv = wv.inner();
            if let Some(s) = WebViewExt::settings(&wv) {
                s.set_enable_page_cache(t.page_cache);
                s.set_enable_developer_extras(t.developer_extras);
                if !t.hardware_acceleration {
                    s.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
                }
            }
            if t.document_viewer_cache
                && let Some(cx) = wv.context()
            {
                cx.set_cache_model(CacheModel::DocumentViewer);
            }
        });
        if let Err(e) = r {
            tracing::info!("webview left untuned: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = app;
}

#[cfg(test)]
mod tests {
    use super::tuning;

    #[test]
    fn an_app_not_a_browser() {
        let release = tuning(false);
        assert!(!release.page_cache && release.document_viewer_cache);
        assert!(!release.developer_extras, "no inspector in release builds");
        assert!(tuning(true).developer_extras, "the inspector in debug builds");
    }
}
