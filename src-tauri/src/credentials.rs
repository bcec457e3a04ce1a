//! Where the signed-in account's token lives: the OS keyring when one is
//! available (Secret Service on Linux, the Keychain on macOS, the
//! Credential Manager on Windows), else `credentials.json` in the profile
//! directory, 0600 in a 0700 directory. `account.json` keeps only what is
//! not secret (the user id and the server URL).
//!
//! Accounts on the embedded server hold no token at all: the app mints
//! them from the server's secret when it connects (see `state.rs`).

use crate::profile::{self, Profile};
use crate::settings::{Account, ConnectConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Holds secrets by key.
pub trait SecretStore: Send + Sync {
    /// The secret under `key`, if any.
    ///
    /// # Errors
    /// The store cannot be read.
    fn get(&self, key: &str) -> Result<Option<String>, String>;
    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// The store cannot be written.
    fn set(&self, key: &str, value: &str) -> Result<(), String>;
    /// Forgets `key` (absent is fine).
    ///
    /// # Errors
    /// The store cannot be written.
    fn delete(&self, key: &str) -> Result<(), String>;
    /// For logs: `keyring` or `file`.
    fn kind(&self) -> &'static str;
}

/// The OS keyring, through the `keyring` crate.
pub struct Keyring {
    service: String,
}

impl Keyring {
    /// The keyring for this app's `service` name, if the OS offers one that
    /// answers now (a headless Linux session usually has none).
    pub fn probe(service: &str) -> Option<Keyring> {
        let k = Keyring { service: service.to_owned() };
        match k.get("courier-probe") {
            Ok(_) => Some(k),
            Err(e) => {
                tracing::info!("no OS keyring ({e}); credentials go to a private file");
                None
            }
        }
    }

    fn entry(&self, key: &str) -> Result<keyring::Entry, String> {
        keyring::Entry::new(&self.service, key).map_err(|e| e.to_string())
    }
}

impl SecretStore for Keyring {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        match self.entry(key)?.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        self.entry(key)?.set_password(value).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn kind(&self) -> &'static str {
        "keyring"
    }
}

/// `credentials.json`: a map of key → secret, written 0600 in a 0700
/// directory (see [`profile::write_json`]).
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The store at `path`.
    pub fn new(path: PathBuf) -> FileStore {
        FileStore { path }
    }

    fn all(&self) -> BTreeMap<String, String> {
        profile::read_json(&self.path).unwrap_or_default()
    }
}

impl SecretStore for FileStore {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.all().remove(key))
    }

    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        let mut all = self.all();
        all.insert(key.to_owned(), value.to_owned());
        profile::write_json(&self.path, &all).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        let mut all = self.all();
        if all.remove(key).is_some() {
            profile::write_json(&self.path, &all).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

/// The OS keyring first, the private file where the keyring is missing or
/// fails: a token is never lost for want of a keyring, and never written
/// anywhere but these two.
pub struct Layered {
    keyring: Option<Box<dyn SecretStore>>,
    file: FileStore,
}

impl Layered {
    /// `keyring` (if any) in front of `file`.
    pub fn new(keyring: Option<Box<dyn SecretStore>>, file: FileStore) -> Layered {
        Layered { keyring, file }
    }
}

impl SecretStore for Layered {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        if let Some(k) = &self.keyring {
            match k.get(key) {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(e) => tracing::warn!("keyring read failed ({e}); trying the private file"),
            }
        }
        self.file.get(key)
    }

    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        if let Some(k) = &self.keyring {
            match k.set(key, value) {
                // In the keyring: no copy stays in the file.
                Ok(()) => return self.file.delete(key),
                Err(e) => tracing::warn!("keyring write failed ({e}); using the private file"),
            }
        }
        self.file.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        let from_keyring = self.keyring.as_ref().map_or(Ok(()), |k| k.delete(key));
        self.file.delete(key)?;
        from_keyring
    }

    fn kind(&self) -> &'static str {
        match self.keyring {
            Some(_) => "keyring",
            None => "file",
        }
    }
}

/// The secret store for `profile`: the OS keyring when it answers (and
/// `COURIER_NO_KEYRING` is unset), backed by the profile's private
/// `credentials.json`.
pub fn store_for(profile: &Profile) -> Box<dyn SecretStore> {
    let file = FileStore::new(profile.dir.join("credentials.json"));
    let keyring = if std::env::var_os("COURIER_NO_KEYRING").is_some() {
        None
    } else {
        Keyring::probe("dev.courier.desktop").map(|k| Box::new(k) as Box<dyn SecretStore>)
    };
    Box::new(Layered::new(keyring, file))
}

/// The key of an account's token: profile, user and server.
fn token_key(profile: &Profile, user: &str, url: &str) -> String {
    format!("{}/{user}@{url}", profile.name)
}

/// Saves `account`: its token to `secrets`, the rest to `account.json`.
///
/// # Errors
/// Either write failing.
pub fn save_account(profile: &Profile, secrets: &dyn SecretStore, account: &Account) -> std::io::Result<()> {
    let mut public = account.clone();
    if let ConnectConfig::Remote { url, token } = &mut public.server {
        secrets.set(&token_key(profile, &account.user, url), token).map_err(|e| {
            std::io::Error::other(format!("cannot store the token ({}): {e}", secrets.kind()))
        })?;
        token.clear();
    }
    profile::write_json(&profile.dir.join("account.json"), &public)
}

/// Loads the saved account with its token. An `account.json` written by an
/// older version, with the token inside, is migrated: the token moves to
/// `secrets` and the file is rewritten without it.
pub fn load_account(profile: &Profile, secrets: &dyn SecretStore) -> Option<Account> {
    let path = profile.dir.join("account.json");
    let mut account: Account = profile::read_json(&path)?;
    if let ConnectConfig::Remote { url, token } = &mut account.server {
        let key = token_key(profile, &account.user, url);
        if token.is_empty() {
            match secrets.get(&key) {
                Ok(Some(t)) => *token = t,
                Ok(None) => {
                    tracing::warn!("the saved account's token is gone; sign in again");
                    return None;
                }
                Err(e) => {
                    tracing::warn!("cannot read the saved token ({}): {e}", secrets.kind());
                    return None;
                }
            }
        } else if let Err(e) = save_account(profile, secrets, &account.clone()) {
            tracing::warn!("cannot move the token out of account.json: {e}");
        }
    }
    Some(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(token: &str) -> Account {
        Account {
            user: "alice".into(),
            server: ConnectConfig::Remote { url: "wss://chat.example".into(), token: token.into() },
        }
    }

    /// The token never lands in account.json; it comes back on load.
    #[test]
    fn token_goes_to_the_secret_store_not_account_json() {
        let d = tempfile::tempdir().unwrap();
        let p = Profile::at(d.path().into(), "default".into());
        let secrets = FileStore::new(d.path().join("default/credentials.json"));
        save_account(&p, &secrets, &remote("eyJ.secret.sig")).unwrap();
        let text = std::fs::read_to_string(p.dir.join("account.json")).unwrap();
        assert!(!text.contains("eyJ.secret.sig"), "{text}");
        assert_eq!(load_account(&p, &secrets), Some(remote("eyJ.secret.sig")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| std::fs::metadata(p.dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!((mode("credentials.json"), mode("account.json")), (0o600, 0o600));
        }
    }

    /// An old account.json with the token inside is migrated on load.
    #[test]
    fn an_old_account_file_is_migrated() {
        let d = tempfile::tempdir().unwrap();
        let p = Profile::at(d.path().into(), "default".into());
        std::fs::create_dir_all(&p.dir).unwrap();
        std::fs::write(p.dir.join("account.json"), serde_json::to_vec(&remote("old.tok.en")).unwrap())
            .unwrap();
        let secrets = FileStore::new(d.path().join("default/credentials.json"));
        assert_eq!(load_account(&p, &secrets), Some(remote("old.tok.en")));
        let text = std::fs::read_to_string(p.dir.join("account.json")).unwrap();
        assert!(!text.contains("old.tok.en"), "{text}");
        assert_eq!(load_account(&p, &secrets), Some(remote("old.tok.en")));
        // A lost secret is a sign-in screen, not a crash or a bad token.
        secrets.delete(&token_key(&p, "alice", "wss://chat.example")).unwrap();
        assert_eq!(load_account(&p, &secrets), None);
    }

    /// The keyring path, against keyring's in-memory mock store.
    #[test]
    fn keyring_store_round_trip() {
        keyring::set_default_credential_builder(keyring::mock::default_credential_builder());
        let k = Keyring { service: "dev.courier.test".into() };
        // The mock keeps nothing between entries; exercise each call's mapping.
        assert_eq!(k.get("nothing").unwrap(), None);
        k.delete("nothing").unwrap();
        k.set("nothing", "x").unwrap();
        assert_eq!(k.kind(), "keyring");
    }

    /// A keyring kept in memory, or one that fails every call.
    #[derive(Default)]
    struct MemKeyring {
        broken: bool,
        map: std::sync::Mutex<BTreeMap<String, String>>,
    }

    impl SecretStore for MemKeyring {
        fn get(&self, key: &str) -> Result<Option<String>, String> {
            if self.broken {
                return Err("no secret service".into());
            }
            Ok(self.map.lock().unwrap().get(key).cloned())
        }
        fn set(&self, key: &str, value: &str) -> Result<(), String> {
            if self.broken {
                return Err("no secret service".into());
            }
            self.map.lock().unwrap().insert(key.into(), value.into());
            Ok(())
        }
        fn delete(&self, key: &str) -> Result<(), String> {
            self.map.lock().unwrap().remove(key);
            Ok(())
        }
        fn kind(&self) -> &'static str {
            "keyring"
        }
    }

    /// With a keyring the token is there and in no file (a token migrated
    /// from account.json leaves no copy behind); with a broken keyring it
    /// goes to the 0600 file and still loads.
    #[test]
    fn tokens_go_to_the_keyring_when_there_is_one_else_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = Profile::at(d.path().into(), "default".into());
        std::fs::create_dir_all(&p.dir).unwrap();
        std::fs::write(p.dir.join("account.json"), serde_json::to_vec(&remote("old.tok.en")).unwrap())
            .unwrap();
        let file = || FileStore::new(p.dir.join("credentials.json"));
        let with_keyring = Layered::new(Some(Box::new(MemKeyring::default())), file());
        assert_eq!(load_account(&p, &with_keyring), Some(remote("old.tok.en")));
        save_account(&p, &with_keyring, &remote("new.tok.en")).unwrap();
        assert_eq!(load_account(&p, &with_keyring), Some(remote("new.tok.en")));
        for f in ["account.json", "credentials.json"] {
            let text = std::fs::read_to_string(p.dir.join(f)).unwrap_or_default();
            assert!(!text.contains("tok.en"), "{f}: {text}");
        }
        assert_eq!(with_keyring.kind(), "keyring");

        let broken = Layered::new(Some(Box::new(MemKeyring { broken: true, ..Default::default() })), file());
        save_account(&p, &broken, &remote("third.tok.en")).unwrap();
        assert_eq!(load_account(&p, &broken), Some(remote("third.tok.en")));
        assert!(std::fs::read_to_string(p.dir.join("credentials.json")).unwrap().contains("third.tok.en"));
        assert!(!std::fs::read_to_string(p.dir.join("account.json")).unwrap().contains("tok.en"));
    }
}
