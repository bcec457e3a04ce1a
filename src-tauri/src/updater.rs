//! In-app updates through `tauri-plugin-updater`, off until an update URL
//! is configured.
//!
//! Where updates come from, first found wins:
//! - `COURIER_UPDATE_URL`: one or more URLs of an update manifest (the
//!   `latest.json` the release workflow attaches to a release), separated by
//!   commas or spaces;
//! - `plugins.updater.endpoints` in `tauri.conf.json` (empty in this
//!   repository: a distributor sets it in their fork or with
//!   `tauri build --config`).
//!
//! With neither, the plugin is not registered and nothing is ever checked.
//! With one, the app checks once at start-up and tells the user when a newer
//! version is out. Every downloaded update is verified against the minisign
//! public key in `plugins.updater.pubkey` before it can be installed; the
//! private key that signs releases lives only in the CI secret
//! `TAURI_SIGNING_PRIVATE_KEY` (see docs/platforms.md, "Releases").

use crate::bridge::{self, Notice, NoticeLevel};
use std::future::Future;
use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Url, Wry};

/// The environment variable naming the update manifest URL(s).
pub const URL_ENV: &str = "COURIER_UPDATE_URL";

/// The update manifest URLs: those in `env` (the value of [`URL_ENV`]) when
/// it names any, else those of the app's config. Entries that are not
/// `http(s)` URLs are skipped with a warning (the plugin itself refuses
/// plain `http` in release builds).
pub fn endpoints(env: Option<&str>, configured: &[Url]) -> Vec<Url> {
    let from_env: Vec<Url> = env
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .filter_map(|s| match Url::parse(s) {
            Ok(url) if matches!(url.scheme(), "https" | "http") => Some(url),
            _ => {
                tracing::warn!("{URL_ENV}: {s:?} is not an http(s) URL; ignored");
                None
            }
        })
        .collect();
    if from_env.is_empty() { configured.to_vec() } else { from_env }
}

/// The endpoints listed in the app config's `plugins.updater.endpoints`.
pub fn configured_endpoints(config: &tauri::Config) -> Vec<Url> {
    config
        .plugins
        .0
        .get("updater")
        .and_then(|updater| updater.get("endpoints"))
        .and_then(|list| serde_json::from_value(list.clone()).ok())
        .unwrap_or_default()
}

/// The updater plugin, or `None` (not registered) when no endpoint is
/// configured.
pub fn plugin(endpoints: &[Url]) -> Option<TauriPlugin<Wry, tauri_plugin_updater::Config>> {
    (!endpoints.is_empty()).then(|| tauri_plugin_updater::Builder::new().build())
}

/// Registers the plugin and checks once in the background, when an
/// endpoint is configured; does nothing otherwise.
pub fn start(app: &AppHandle, endpoints: Vec<Url>) {
    let Some(plugin) = plugin(&endpoints) else { return };
    if let Err(e) = app.plugin(plugin) {
        tracing::warn!("updates: the updater plugin did not start: {e}");
        return;
    }
    spawn_startup_check(app, endpoints);
}

/// Runs `check` with the endpoints when there are any; with none, never
/// calls it and returns `None`.
pub async fn check_if_configured<F, Fut, T>(endpoints: Vec<Url>, check: F) -> Option<T>
where
    F: FnOnce(Vec<Url>) -> Fut,
    Fut: Future<Output = T>,
{
    if endpoints.is_empty() {
        return None;
    }
    Some(check(endpoints).await)
}

/// At start-up, in the background: asks the endpoints whether a newer
/// version exists and shows a notice when one does. Nothing happens when no
/// endpoint is configured. Failures (offline, a bad manifest) are logged,
/// never shown: an update check must not get in the user's way.
fn spawn_startup_check(app: &AppHandle, endpoints: Vec<Url>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let result = check_if_configured(endpoints, |urls| check(&app, urls)).await;
        match result {
            None => {}
            Some(Ok(None)) => tracing::info!("updates: this is the latest version"),
            Some(Ok(Some(version))) => {
                tracing::info!("updates: version {version} is available");
                let message = format!("Courier {version} is available.");
                bridge::emit(&app, &Notice { level: NoticeLevel::Info, message });
            }
            Some(Err(e)) => tracing::warn!("updates: check failed: {e}"),
        }
    });
}

/// The version the endpoints offer, when newer than this one.
async fn check(app: &AppHandle, urls: Vec<Url>) -> tauri_plugin_updater::Result<Option<String>> {
    use tauri_plugin_updater::UpdaterExt;
    let update = app.updater_builder().endpoints(urls)?.build()?.check().await?;
    Ok(update.map(|u| u.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn no_url_anywhere_means_no_endpoint() {
        assert!(endpoints(None, &[]).is_empty());
        assert!(endpoints(Some(""), &[]).is_empty());
        assert!(endpoints(Some("  , "), &[]).is_empty());
    }

    #[test]
    fn the_environment_wins_over_the_config() {
        let configured = [url("https://config.example/latest.json")];
        assert_eq!(endpoints(None, &configured), configured);
        assert_eq!(
            endpoints(Some("https://a.example/latest.json, https://b.example/latest.json"), &configured),
            [url("https://a.example/latest.json"), url("https://b.example/latest.json")]
        );
    }

    #[test]
    fn entries_that_are_not_web_urls_are_skipped() {
        assert!(endpoints(Some("file:///etc/passwd not-a-url"), &[]).is_empty());
        assert_eq!(
            endpoints(Some("ftp://x.example/a https://ok.example/latest.json"), &[]),
            [url("https://ok.example/latest.json")]
        );
    }

    #[test]
    fn the_plugin_is_registered_only_with_an_endpoint() {
        assert!(plugin(&[]).is_none());
        assert!(plugin(&[url("https://u.example/latest.json")]).is_some());
    }

    #[tokio::test]
    async fn with_no_url_no_check_happens() {
        let calls = AtomicUsize::new(0);
        let out = check_if_configured(endpoints(Some(""), &[]), |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!((out, calls.load(Ordering::SeqCst)), (None, 0));
    }

    #[tokio::test]
    async fn with_a_url_it_checks_once_against_it() {
        let calls = AtomicUsize::new(0);
        let wanted = vec![url("https://u.example/latest.json")];
        let seen = check_if_configured(wanted.clone(), |urls| async {
            calls.fetch_add(1, Ordering::SeqCst);
            urls
        })
        .await;
        assert_eq!((seen, calls.load(Ordering::SeqCst)), (Some(wanted), 1));
    }

    #[test]
    fn the_shipped_config_has_a_public_key_and_no_endpoint() {
        let config: serde_json::Value = serde_json::from_str(include_str!("../tauri.conf.json")).unwrap();
        let updater = &config["plugins"]["updater"];
        let pubkey = updater["pubkey"].as_str().expect("plugins.updater.pubkey");
        assert!(pubkey.len() > 40, "a minisign public key (base64 of the .pub file)");
        let endpoints = updater.get("endpoints").and_then(|e| e.as_array()).map_or(0, Vec::len);
        assert_eq!(endpoints, 0, "updates stay off until a distributor configures a URL");
    }
}
