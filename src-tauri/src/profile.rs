//! Profiles: `COURIER_PROFILE=<name>` or `--profile <name>` keeps a separate
//! data directory and single-instance key, so two accounts run side by side.
//!
//! Layout under the courier data root (`$COURIER_DATA_ROOT`, else the OS
//! data dir + `courier`, e.g. `~/.local/share/courier`):
//!
//! ```text
//! <root>/embedded-server.json   which profile runs the embedded server, and its URL
//! <root>/server/                the embedded server's database (one per machine)
//! <root>/<profile>/settings.json, account.json
//! <root>/<profile>/accounts/<user>@<server>/   the client core's store
//! ```

use courier_proto::ids::is_valid_name;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The profile used when none is given.
pub const DEFAULT_PROFILE: &str = "default";

/// The chosen profile and its directories.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile name (`default` unless chosen).
    pub name: String,
    /// The courier data root shared by all profiles.
    pub root: PathBuf,
    /// This profile's directory.
    pub dir: PathBuf,
}

impl Profile {
    /// The profile for these command-line arguments and environment.
    ///
    /// # Errors
    /// A profile name that is not `[A-Za-z0-9_.-]{1,64}`, or no data dir.
    pub fn from_env(args: &[String]) -> Result<Profile, String> {
        let name = profile_name(args, std::env::var("COURIER_PROFILE").ok())?;
        let root = match std::env::var_os("COURIER_DATA_ROOT") {
            Some(r) if !r.is_empty() => PathBuf::from(r),
            _ => dirs::data_dir().ok_or("no data directory on this system")?.join("courier"),
        };
        Ok(Profile::at(root, name))
    }

    /// The profile `name` under `root`.
    pub fn at(root: PathBuf, name: String) -> Profile {
        let dir = root.join(&name);
        Profile { name, root, dir }
    }

    /// The single-instance key (the app identifier it is derived from).
    pub fn identifier(&self, base: &str) -> String {
        if self.name == DEFAULT_PROFILE {
            base.to_owned()
        } else {
            // D-Bus name elements allow [A-Za-z0-9_-]; ids allow '.', too.
            format!("{base}.p_{}", self.name.replace('.', "_"))
        }
    }

    /// The client store's directory for `user` on `server_key`.
    pub fn account_dir(&self, user: &str, server_key: &str) -> PathBuf {
        let key: String =
            server_key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        self.dir.join("accounts").join(format!("{user}@{key}"))
    }

    /// The discovery file of the embedded server.
    pub fn embedded_file(&self) -> PathBuf {
        self.root.join("embedded-server.json")
    }
}

/// `--profile X`, `--profile=X`, else `$COURIER_PROFILE`, else `default`.
///
/// # Errors
/// An invalid name, or `--profile` without a value.
pub fn profile_name(args: &[String], env: Option<String>) -> Result<String, String> {
    let mut from_args = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--profile" {
            from_args = Some(it.next().cloned().ok_or("--profile needs a name")?);
        } else if let Some(v) = a.strip_prefix("--profile=") {
            from_args = Some(v.to_owned());
        }
    }
    let name = from_args.or(env.filter(|e| !e.is_empty())).unwrap_or_else(|| DEFAULT_PROFILE.into());
    if is_valid_name(&name) { Ok(name) } else { Err(format!("invalid profile name {name:?}")) }
}

/// The discovery record of a running embedded server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedRecord {
    /// `ws://127.0.0.1:<port>`.
    pub url: String,
    /// The port.
    pub port: u16,
    /// The profile whose process runs it.
    pub profile: String,
    /// That process.
    pub pid: u32,
}

/// Reads the discovery file (None when absent or unreadable).
pub fn read_record(path: &Path) -> Option<EmbeddedRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes `value` as pretty JSON atomically (temp file + rename).
///
/// # Errors
/// On I/O failure.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(tmp, path)
}

/// Reads JSON, `None` when the file is absent or unreadable.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("ignoring unreadable {}: {e}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names() {
        assert_eq!(profile_name(&args(&["courier"]), None).unwrap(), "default");
        assert_eq!(profile_name(&args(&["courier"]), Some("work".into())).unwrap(), "work");
        assert_eq!(profile_name(&args(&["courier", "--profile", "b"]), Some("work".into())).unwrap(), "b");
        assert_eq!(profile_name(&args(&["courier", "--profile=c"]), None).unwrap(), "c");
        assert!(profile_name(&args(&["courier", "--profile"]), None).is_err());
        assert!(profile_name(&args(&["courier", "--profile", "../etc"]), None).is_err());
    }

    #[test]
    fn dirs_and_keys() {
        let p = Profile::at("/tmp/r".into(), "default".into());
        assert_eq!(p.identifier("dev.courier.desktop"), "dev.courier.desktop");
        let q = Profile::at("/tmp/r".into(), "bob.2".into());
        assert_eq!(q.identifier("dev.courier.desktop"), "dev.courier.desktop.p_bob_2");
        assert_eq!(q.dir, PathBuf::from("/tmp/r/bob.2"));
        assert_eq!(
            q.account_dir("bob", "ws://127.0.0.1:7700"),
            PathBuf::from("/tmp/r/bob.2/accounts/bob@ws___127.0.0.1_7700")
        );
    }

    #[test]
    fn record_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x/embedded-server.json");
        assert!(read_record(&f).is_none());
        let r = EmbeddedRecord { url: "ws://127.0.0.1:7701".into(), port: 7701, profile: "a".into(), pid: 1 };
        write_json(&f, &r).unwrap();
        assert_eq!(read_record(&f), Some(r));
    }
}
