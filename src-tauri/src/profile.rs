//! Profiles: `COURIER_PROFILE=<name>` or `--profile <name>` keeps a separate
//! data directory and single-instance key, so two accounts run side by side.
//!
//! Layout under the courier data root (`$COURIER_DATA_ROOT`, else the OS
//! data dir + `courier`, e.g. `~/.local/share/courier`):
//!
//! ```text
//! <root>/embedded-server.json   which profile runs the embedded server, and its URL
//! <root>/server/                the embedded server's database (one per machine), 0700
//! <root>/server/secret          its HS256 secret (256 random bits, hex), 0600
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

    /// The client store's directory for `user` on `server_key`: always one
    /// directory under `accounts/`.
    ///
    /// # Errors
    /// A user id that is not a valid one (it may come from a token's
    /// unverified `sub`: `../../x` must never become a path).
    pub fn account_dir(&self, user: &str, server_key: &str) -> Result<PathBuf, String> {
        if !courier_proto::ids::is_valid_user(user) || user.bytes().all(|b| b == b'.') {
            return Err(format!("{user:?} is not a valid user id"));
        }
        let key: String =
            server_key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        Ok(self.dir.join("accounts").join(format!("{user}@{key}")))
    }

    /// Where the client core caches an account's downloaded media (the
    /// asset protocol may serve these and nothing else).
    pub fn media_dir(account_dir: &Path) -> PathBuf {
        account_dir.join("media")
    }

    /// The media cache directories of the accounts this profile has.
    pub fn media_dirs(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("accounts")) else { return Vec::new() };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Self::media_dir(&e.path()))
            .collect();
        dirs.sort();
        dirs
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

/// Creates `dir` (and its parents) and makes it private to this OS user
/// (0700 on Unix), whatever the umask, also when it already existed.
///
/// # Errors
/// On I/O failure.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to a new file readable by this OS user only (0600 on Unix,
/// set explicitly, so the umask does not matter). Fails if `path` exists.
fn write_private_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes `value` as pretty JSON atomically (temp file + rename). The file
/// is 0600 and its directory 0700: profile files may hold account details.
///
/// # Errors
/// On I/O failure.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(p) = path.parent() {
        private_dir(p)?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_private_new(&tmp, &serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(tmp, path)
}

/// Shortest secret accepted from the secret file (the server refuses
/// shorter auth secrets).
const MIN_SECRET_LEN: usize = 32;

/// The embedded server's HS256 secret, shared by every profile of this OS
/// user: read from `<dir>/secret`, or, on first start, 256 random bits
/// written there as hex. `dir` is made 0700 and the file 0600 (an existing
/// file's mode is corrected too). Two processes starting at once agree on
/// one secret: each writes a temp file and hard-links it into place, and the
/// loser reads the winner's.
///
/// # Errors
/// On I/O failure, or a secret file that is too short to be one of ours.
pub fn embedded_secret(dir: &Path) -> std::io::Result<String> {
    private_dir(dir)?;
    let path = dir.join("secret");
    let read = |path: &Path| -> std::io::Result<String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode != 0o600 {
                tracing::warn!(
                    "{} had mode {mode:o}; set to 600 (delete it while no Courier runs to make a new secret)",
                    path.display()
                );
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        let s = std::fs::read_to_string(path)?.trim().to_owned();
        if s.len() < MIN_SECRET_LEN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds no valid secret (delete it to make a new one)", path.display()),
            ));
        }
        Ok(s)
    };
    if path.exists() {
        return read(&path);
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!("secret.{}.{}.tmp", std::process::id(), rand::random::<u32>()));
    write_private_new(&tmp, secret.as_bytes())?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(e),
    }
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
            q.account_dir("bob", "ws://127.0.0.1:7700").unwrap(),
            PathBuf::from("/tmp/r/bob.2/accounts/bob@ws___127.0.0.1_7700")
        );
        // A user id from a forged token never walks out of accounts/.
        for bad in ["../../x", "..", ".", "a/b", "a\\b", "", "x y"] {
            assert!(q.account_dir(bad, "embedded").is_err(), "{bad:?}");
        }
        assert_eq!(q.account_dir("..", "../..").unwrap_err(), "\"..\" is not a valid user id");
        let odd = q.account_dir("a.b", "../../x").unwrap();
        assert_eq!(odd.parent().unwrap(), q.dir.join("accounts"), "the server key is flattened");
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The secret's directory is 0700 and the file 0600 whatever the umask,
    /// a second call (another profile) reads the same secret, and a
    /// loosened mode is tightened again.
    #[cfg(unix)]
    #[test]
    fn embedded_secret_is_private_and_shared() {
        use std::os::unix::fs::PermissionsExt;
        for umask in [0o022, 0o000] {
            let d = tempfile::tempdir().unwrap();
            let dir = d.path().join("server");
            // SAFETY: umask is process-wide; the modes are set explicitly
            // afterwards, which is what this test checks.
            let old = unsafe { libc_umask(umask) };
            let s = embedded_secret(&dir).unwrap();
            unsafe { libc_umask(old) };
            assert_eq!(s.len(), 64, "256 bits in hex");
            assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(mode(&dir), 0o700, "umask {umask:o}");
            assert_eq!(mode(&dir.join("secret")), 0o600, "umask {umask:o}");
            assert_eq!(embedded_secret(&dir).unwrap(), s, "the same secret for every profile");
            std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            assert_eq!(embedded_secret(&dir).unwrap(), s);
            assert_eq!((mode(&dir), mode(&dir.join("secret"))), (0o700, 0o600), "modes tightened");
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("secret"), "short").unwrap();
        assert!(embedded_secret(d.path()).is_err(), "a too-short secret is refused, never used");
    }

    #[cfg(unix)]
    unsafe fn libc_umask(mask: u32) -> u32 {
        unsafe extern "C" {
            fn umask(mask: u32) -> u32;
        }
        unsafe { umask(mask) }
    }

    /// Profile files (account.json holds account details) are 0600 in a
    /// 0700 directory.
    #[cfg(unix)]
    #[test]
    fn json_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("p/account.json");
        write_json(&f, &serde_json::json!({"user": "a"})).unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&d.path().join("p")), 0o700);
    }

    /// The asset scope gets each account's media cache, never the profile
    /// directory with its settings, account file and databases.
    #[test]
    fn media_dirs_are_the_accounts_caches_only() {
        let d = tempfile::tempdir().unwrap();
        let p = Profile::at(d.path().into(), "default".into());
        assert!(p.media_dirs().is_empty());
        for a in ["alice@embedded", "bob@ws___h_7700"] {
            std::fs::create_dir_all(p.dir.join("accounts").join(a)).unwrap();
        }
        std::fs::write(p.dir.join("accounts/stray.txt"), "x").unwrap();
        write_json(&p.dir.join("account.json"), &serde_json::json!({})).unwrap();
        assert_eq!(
            p.media_dirs(),
            vec![p.dir.join("accounts/alice@embedded/media"), p.dir.join("accounts/bob@ws___h_7700/media")]
        );
        for dir in p.media_dirs() {
            assert!(dir.ends_with("media") && dir.starts_with(p.dir.join("accounts")));
        }
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
