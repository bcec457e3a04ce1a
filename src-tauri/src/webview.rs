//! The webview tuned for an app rather than a browser (WebKitGTK; WebView2
//! and WKWebView keep their defaults). Measured in docs/benchmarks.md,
//! "Desktop app memory and start-up":
//!
//! - no back/forward page cache (the app is one page that never navigates);
//! - the `DocumentViewer` cache model: the smallest memory caches, for a
//!   page that loads its few resources once from the app's own protocol;
//! - no accelerated compositing (`HardwareAccelerationPolicy::Never`): a
//!   chat window does not need GL layers, and they cost ~75 MiB RSS in the
//!   web process (Mesa's llvmpipe where there is no GPU). Set through the
//!   settings once the webview exists, not with `WEBKIT_DISABLE_COMPOSITING_MODE`
//!   before it: that variable doubled start-up. In this mode WebKitGTK 2.50's
//!   WebDriver screenshot waits for the page's next drawn frame, which an idle
//!   page never draws; the E2E scripts make the page draw while they take one
//!   (tests/e2e/screenshot.mjs);
//! - no media in the page: `<audio>`/`<video>`, Media Source, encrypted
//!   media, WebAudio, WebGL, WebRTC and camera/microphone capture are off
//!   (calls run in the Rust process, GStreamer, and draw their video to a 2D
//!   canvas), which also keeps those engines out of reach of page script;
//! - developer extras (the inspector) in debug builds only;
//! - no page but the app's own ([`navigation_guard`]): a link dropped on
//!   the window, or any other navigation, never replaces the app with a web
//!   page (a sign-in form that looks like Courier's, in Courier's window).
//!   New windows are refused by the runtime already.

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
    /// Media elements, WebAudio, WebGL, WebRTC and media capture.
    pub media: bool,
}

/// The app's tuning: `debug` says whether this is a debug build.
pub const fn tuning(debug: bool) -> Tuning {
    Tuning {
        page_cache: false,
        developer_extras: debug,
        hardware_acceleration: false,
        document_viewer_cache: true,
        media: false,
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
                if !t.media {
                    s.set_enable_media(false);
                    s.set_enable_mediasource(false);
                    s.set_enable_encrypted_media(false);
                    s.set_enable_webaudio(false);
                    s.set_enable_webgl(false);
                    s.set_enable_webrtc(false);
                    s.set_enable_media_stream(false);
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

/// Whether the window may show `url`: the bundled UI (the `tauri` scheme,
/// or `tauri.localhost` where the custom protocol is served over http(s)),
/// or a page of `dev_url`, the Vite server a development build loads.
pub fn is_app_page(url: &tauri::Url, dev_url: Option<&tauri::Url>) -> bool {
    let bundled = url.scheme() == "tauri"
        || (matches!(url.scheme(), "http" | "https") && url.host_str() == Some("tauri.localhost"));
    bundled || dev_url.is_some_and(|d| d.origin() == url.origin())
}

/// A plugin that refuses every navigation of the window to a page that is
/// not the app's own ([`is_app_page`]).
pub fn navigation_guard<R: tauri::Runtime>() -> tauri::plugin::TauriPlugin<R> {
    tauri::plugin::Builder::new("navigation-guard")
        .on_navigation(|webview, url| {
            use tauri::Manager;
            let dev_url = if tauri::is_dev() { webview.config().build.dev_url.clone() } else { None };
            let ok = is_app_page(url, dev_url.as_ref());
            if !ok {
                tracing::warn!(
                    "the window was not let go to {}",
                    url.as_str().chars().take(200).collect::<String>()
                );
            }
            ok
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::{is_app_page, tuning};

    #[test]
    fn the_window_shows_only_the_apps_own_pages() {
        let url = |s: &str| tauri::Url::parse(s).unwrap();
        let dev = url("http://localhost:1420");
        for own in [
            "tauri://localhost",
            "tauri://localhost/index.html#x",
            "http://tauri.localhost/",
            "https://tauri.localhost/a",
        ] {
            assert!(is_app_page(&url(own), None), "{own}");
        }
        assert!(is_app_page(&url("http://localhost:1420/?x"), Some(&dev)));
        for page in [
            "https://evil.example/courier-sign-in",
            "http://localhost:1420/",
            "http://tauri.localhost.evil.example/",
            "file:///home/me/.ssh/id_rsa",
            "data:text/html,<form>",
            "javascript:alert(1)",
            "about:blank",
        ] {
            assert!(!is_app_page(&url(page), None), "{page}");
        }
        assert!(!is_app_page(&url("http://localhost:1421/"), Some(&dev)));
        assert!(!is_app_page(&url("https://localhost:1420/"), Some(&dev)));
    }

    #[test]
    fn an_app_not_a_browser() {
        let release = tuning(false);
        assert!(!release.page_cache && release.document_viewer_cache);
        assert!(!release.hardware_acceleration && !tuning(true).hardware_acceleration, "no GL layers");
        assert!(!release.developer_extras, "no inspector in release builds");
        assert!(!release.media && !tuning(true).media, "no media engines in the page");
        assert!(tuning(true).developer_extras, "the inspector in debug builds");
    }
}
