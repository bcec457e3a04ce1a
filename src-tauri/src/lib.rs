//! The Courier desktop app: a thin Tauri v2 shell over `courier-client`.
//!
//! - [`commands`]: one `#[tauri::command]` per client-core call the UI makes
//!   (`ui/src/services/transport.ts`), errors as `{code, message}`;
//! - [`bridge`]: the one place that emits to the webview (`courier://event`
//!   with each `ClientEvent`, `courier://deep-link`, `courier://notice`,
//!   `courier://settings`), and drives notifications and the tray's unread
//!   state;
//! - [`bindings`]: the table of commands and events, registered with Tauri
//!   and rendered to the UI's generated TypeScript bindings;
//! - [`state`]: profile, sign-in, the embedded server and its discovery;
//! - [`calls`]: the running call's media (GStreamer, in this process), with
//!   its commands ([`calls_commands`]) and video frames ([`calls_frames`]);
//! - [`deeplink`]: the pure `courier://` parser;
//! - [`credentials`]: tokens in the OS keyring, else a 0600 file;
//! - [`images`]: what a peer's image must be before the webview decodes it;
//! - [`notify`], [`tray`], [`os`], [`settings`], [`profile`];
//! - desktop conventions: [`logs`] (rotating files), [`autostart`] (start at
//!   login), [`spellcheck`]; the window's size, position and maximized state
//!   are remembered per profile by `tauri-plugin-window-state`;
//! - [`updater`]: signed in-app updates, off until an update URL is set;
//! - [`webview`]: WebKitGTK tuned for an app (no page cache, small caches,
//!   no GPU compositing, no media or WebGL, the inspector in debug builds only,
//!   no page but the app's own);
//! - [`memory`]: the process's own memory sized for a desktop (two async
//!   workers, two malloc arenas, the heap trimmed after start-up).

pub mod autostart;
pub mod bindings;
pub mod bridge;
pub mod calls;
pub mod calls_commands;
pub mod calls_frames;
pub mod commands;
pub mod credentials;
pub mod deeplink;
pub mod error;
pub mod images;
pub mod logs;
pub mod memory;
pub mod notify;
pub mod os;
pub mod profile;
pub mod settings;
pub mod spellcheck;
pub mod state;
pub mod tray;
pub mod updater;
pub mod webview;

use state::AppState;
use tauri::{Manager, RunEvent, WindowEvent};

/// When the process started (for the start-up timing log).
pub static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Runs the app (the `courier` binary).
pub fn run() {
    STARTED.get_or_init(std::time::Instant::now);
    memory::tune_allocator();
    memory::runtime();
    let args: Vec<String> = std::env::args().collect();
    let profile = match profile::Profile::from_env(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("courier: {e}");
            std::process::exit(2);
        }
    };
    logs::init(&profile.dir);
    // The data root and the profile hold the embedded server's secret,
    // account files and message stores: this OS user's alone (0700).
    for dir in [&profile.root, &profile.dir] {
        if let Err(e) = profile::private_dir(dir) {
            tracing::warn!("cannot make {} private: {e}", dir.display());
        }
    }
    let mut ctx = tauri::generate_context!();
    // A separate single-instance key per profile.
    let id = profile.identifier(&ctx.config().identifier);
    ctx.config_mut().identifier = id;
    let window_state_file = profile.dir.join("window-state.json");
    let autostart = autostart::plugin(&profile);
    let state = AppState::new(profile);
    let feed = state.take_feed().expect("fresh state has its feed");
    let start_link = deeplink::link_in_args(&args[1..]).map(str::to_owned);
    let env_update_url = std::env::var(updater::URL_ENV).ok();
    let updates = updater::endpoints(env_update_url.as_deref(), &updater::configured_endpoints(ctx.config()));

    let app = tauri::Builder::default()
        // First: a second launch of the same profile ends here, in the
        // running instance, with its arguments (a deep link, maybe).
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            tray::show_main(app);
            if let Some(link) = deeplink::link_in_args(&argv[1.min(argv.len())..]) {
                bridge::handle_link(app, link);
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(webview::navigation_guard())
        // Size, position and maximized state, in the profile's folder (an
        // absolute name is used as is). Always shown at start, even when it
        // was quit from the tray.
        .plugin(
            tauri_plugin_window_state::Builder::new()
                .with_filename(window_state_file.to_string_lossy())
                .with_state_flags(window_state_flags())
                .build(),
        )
        .plugin(autostart)
        .manage(state)
        .manage(calls::Calls::default())
        .invoke_handler(bindings::builder().invoke_handler())
        .setup(move |app| {
            let handle = app.handle().clone();
            bridge::spawn(handle.clone(), feed);
            let state = handle.state::<AppState>();
            // Downloaded media is shown through the asset protocol: each
            // account's media cache, and nothing else of the profile (its
            // settings, account file, databases, the server's secret).
            let scope_app = handle.clone();
            state.set_media_scope(Box::new(move |dir| {
                if let Err(e) = scope_app.asset_protocol_scope().allow_directory(dir, true) {
                    tracing::warn!("cannot open {} to the webview: {e}", dir.display());
                }
            }));
            setup_deep_links(app);
            updater::start(&handle, updates);
            webview::apply(&handle);
            spellcheck::enable(&handle);
            if let Err(e) = tray::build(&handle) {
                tracing::warn!("no tray icon: {e}");
            }
            // SIGTERM (logout, `kill`): exit cleanly, stopping the client
            // and the embedded server (and removing its discovery record).
            #[cfg(unix)]
            {
                let h = handle.clone();
                tauri::async_runtime::spawn(async move {
                    if let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        term.recv().await;
                        h.exit(0);
                    }
                });
            }
            tauri::async_runtime::spawn(async move {
                let state = handle.state::<AppState>();
                let (config, persist) = state.startup_account();
                if let Some(config) = config
                    && let Err(e) = state.connect(config, persist, true).await
                {
                    tracing::error!("start-up sign-in failed: {e}");
                    bridge::emit(&handle, &bridge::Notice::error(e.message));
                }
                state.set_booted();
                if let Some(link) = start_link {
                    bridge::handle_link(&handle, &link);
                }
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.label() == "main"
                && window.state::<AppState>().settings().close_to_tray
                && window.app_handle().tray_by_id("main").is_some()
            {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .build(ctx)
        .expect("error while building the Courier app");

    app.run(|app, event| {
        if let RunEvent::Exit = event {
            let state = app.state::<AppState>();
            tauri::async_runtime::block_on(state.shutdown());
        }
    });
}

/// What the window remembers between runs.
fn window_state_flags() -> tauri_plugin_window_state::StateFlags {
    use tauri_plugin_window_state::StateFlags;
    StateFlags::SIZE | StateFlags::POSITION | StateFlags::MAXIMIZED | StateFlags::FULLSCREEN
}

fn setup_deep_links(app: &tauri::App) {
    use tauri_plugin_deep_link::DeepLinkExt;
    // Linux/Windows: links arrive as arguments (start-up, or forwarded by
    // single-instance). macOS: through the plugin's open-url event.
    #[cfg(target_os = "macos")]
    {
        let h = app.handle().clone();
        app.deep_link().on_open_url(move |e| {
            for url in e.urls() {
                bridge::handle_link(&h, url.as_str());
            }
        });
    }
    // Register the scheme at run time when not installed from a package
    // (the .deb's .desktop file registers it for installed copies).
    #[cfg(any(target_os = "linux", windows))]
    {
        let installed = std::env::current_exe().is_ok_and(|p| p.starts_with("/usr"));
        if !installed
            && std::env::var_os("COURIER_NO_SCHEME_REGISTER").is_none()
            && let Err(e) = app.deep_link().register_all()
        {
            tracing::info!("courier:// not registered: {e}");
        }
    }
    let _ = app;
}
