//! Log files a user can attach to a bug report: the app's one `tracing`
//! subscriber writes to stderr and to daily files in the profile's `logs/`
//! folder, keeping the last [`KEEP_FILES`]; the command
//! [`open_logs_folder`] shows that folder with the OS opener.
//!
//! Why `tracing-appender` rather than `tauri-plugin-log`: the client core and
//! the embedded server already log through `tracing`; the plugin is a `log`
//! logger, so it would be a second path that misses their spans and needs a
//! bridge. One subscriber, two writers, keeps every line in one place.

use crate::error::CmdError;
use crate::state::AppState;
use std::path::{Path, PathBuf};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry, fmt};

/// How many daily files are kept (older ones are deleted at rotation).
pub const KEEP_FILES: usize = 7;

/// The filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,courier_client=info,courier_server=warn";

/// The profile's log folder.
pub fn dir(profile_dir: &Path) -> PathBuf {
    profile_dir.join("logs")
}

/// A daily rotating file in `dir` (`courier.YYYY-MM-DD.log`).
///
/// # Errors
/// When `dir` cannot be created.
pub fn appender(dir: &Path) -> Result<RollingFileAppender, tracing_appender::rolling::InitError> {
    // The folder first: the builder prunes old files before it creates the
    // folder, and says "Error reading the log directory/files" on stderr on
    // every first run otherwise. (If this fails, `build` reports why.)
    let _ = std::fs::create_dir_all(dir);
    RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("courier")
        .filename_suffix("log")
        .max_log_files(KEEP_FILES)
        .build(dir)
}

/// The subscriber: `filter` applied, lines to stderr and (when given) to
/// `file`, without colour codes.
pub fn subscriber(
    filter: EnvFilter,
    file: Option<RollingFileAppender>,
) -> impl tracing::Subscriber + Send + Sync {
    let to_file = file.map(|f| fmt::layer().with_ansi(false).with_writer(f));
    Registry::default().with(filter).with(fmt::layer().with_writer(std::io::stderr)).with(to_file)
}

/// Installs the app's subscriber, writing to the profile's log folder too,
/// and logs panics before the default hook prints them.
pub fn init(profile_dir: &Path) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    let folder = dir(profile_dir);
    let file = match appender(&folder) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("courier: no log file in {}: {e}", folder.display());
            None
        }
    };
    let _ = tracing::subscriber::set_global_default(subscriber(filter, file));
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("panic: {info}");
        default_hook(info);
    }));
}

/// Opens the profile's log folder in the OS file manager.
#[tauri::command]
#[specta::specta]
pub async fn open_logs_folder(state: tauri::State<'_, AppState>) -> Result<(), CmdError> {
    let folder = dir(&state.profile.dir);
    std::fs::create_dir_all(&folder)
        .map_err(|e| CmdError::new("open_failed", format!("cannot create {}: {e}", folder.display())))?;
    crate::os::open(folder.as_os_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_a_dated_file_in_the_logs_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = dir(tmp.path());
        let sub = subscriber(EnvFilter::new("info"), Some(appender(&folder).unwrap()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!("hello from the test");
            tracing::debug!("below the filter");
        });
        let files: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("courier.") && name.ends_with(".log"), "{name}");
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("hello from the test"), "{text}");
        assert!(!text.contains("below the filter"));
        assert!(!text.contains('\u{1b}'), "no colour codes in the file");
    }

    /// The first run (no logs folder yet) prints nothing on stderr: run in a
    /// child process of this test binary, whose stderr is the real one.
    #[test]
    fn a_first_run_says_nothing_on_stderr() {
        if let Some(folder) = std::env::var_os("COURIER_LOGS_FIRST_RUN") {
            appender(Path::new(&folder)).unwrap();
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "logs::tests::a_first_run_says_nothing_on_stderr",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("COURIER_LOGS_FIRST_RUN", dir(tmp.path()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("Error"), "stderr: {stderr}");
        assert!(dir(tmp.path()).is_dir());
    }

    #[test]
    fn old_files_beyond_the_limit_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = dir(tmp.path());
        std::fs::create_dir_all(&folder).unwrap();
        for day in 1..=(KEEP_FILES + 3) {
            std::fs::write(folder.join(format!("courier.2020-01-{day:02}.log")), "old").unwrap();
        }
        let sub = subscriber(EnvFilter::new("info"), Some(appender(&folder).unwrap()));
        tracing::subscriber::with_default(sub, || tracing::info!("today"));
        let left = std::fs::read_dir(&folder).unwrap().count();
        assert!(left <= KEEP_FILES, "{left} files left");
    }
}
