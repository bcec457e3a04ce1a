//! ICE servers for calls (protocol §12 v1.2): checking `ice_urls`,
//! `turn_secret` and `turn_ttl_s` at start-up, and building the
//! `ice_servers` list of the `hello` ok and the `ice` op, with TURN REST
//! credentials in the coturn `use-auth-secret` scheme.

use crate::config::{Config, ConfigError, MIN_SECRET_BYTES};
use base64::Engine as _;
use courier_proto::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Default lifetime of TURN credentials: 24 h.
pub const DEFAULT_TURN_TTL_S: u64 = 24 * 3600;
/// Shortest lifetime allowed: the protocol promises at least 12 h.
pub const MIN_TURN_TTL_S: u64 = 12 * 3600;

/// Whether `url` is a TURN URL (`turn:` or `turns:`), which needs credentials.
fn is_turn(url: &str) -> bool {
    url.starts_with("turn:") || url.starts_with("turns:")
}

/// Checks the ICE settings: every URL is `stun:`, `turn:` or `turns:` with a
/// host, TURN URLs come with a secret of at least [`MIN_SECRET_BYTES`], and
/// the credential lifetime is at least 12 h.
///
/// # Errors
/// [`ConfigError`] saying what to change.
pub fn validate(config: &mut Config) -> Result<(), ConfigError> {
    if config.turn_secret.as_deref().is_some_and(str::is_empty) {
        config.turn_secret = None;
    }
    config.ice_urls = config.ice_urls.iter().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
    for url in &config.ice_urls {
        let host = url
            .strip_prefix("stun:")
            .or_else(|| url.strip_prefix("turn:"))
            .or_else(|| url.strip_prefix("turns:"));
        if !host.is_some_and(|h| !h.is_empty() && !h.starts_with(':') && !h.contains(char::is_whitespace)) {
            return Err(ConfigError::Invalid(format!(
                "ICE URL `{url}` is not a STUN or TURN URL: write stun:host[:port], turn:host[:port][?transport=udp|tcp] \
                 or turns:host[:port]"
            )));
        }
    }
    if let Some(s) = &config.turn_secret
        && s.len() < MIN_SECRET_BYTES
    {
        return Err(ConfigError::ShortSecret { which: "TURN secret", len: s.len() });
    }
    if config.turn_secret.is_none()
        && let Some(url) = config.ice_urls.iter().find(|u| is_turn(u))
    {
        return Err(ConfigError::Invalid(format!(
            "TURN URL `{url}` needs --turn-secret (COURIER_TURN_SECRET): TURN servers only relay for clients \
             with credentials, and Courier signs them with the coturn `static-auth-secret`. Set the same \
             secret on both, or list only stun: URLs."
        )));
    }
    if config.turn_ttl_s < MIN_TURN_TTL_S {
        return Err(ConfigError::Invalid(format!(
            "turn_ttl_s must be at least {MIN_TURN_TTL_S} (12 h): clients renew TURN credentials only hourly \
             and a call may outlast them"
        )));
    }
    Ok(())
}

/// The `ice_servers` for `user` at `now_s` (Unix seconds): one entry with the
/// STUN URLs, without credentials, and one with the TURN URLs, whose
/// username is `<expiry>:<user>` and credential
/// base64(HMAC-SHA1(secret, username)). Empty when none are configured.
pub fn servers(config: &Config, user: &str, now_s: u64) -> Vec<IceServer> {
    let (turn, stun): (Vec<String>, Vec<String>) = config.ice_urls.iter().cloned().partition(|u| is_turn(u));
    let mut out = Vec::new();
    if !stun.is_empty() {
        out.push(IceServer { urls: stun, username: None, credential: None });
    }
    if let Some(secret) = &config.turn_secret
        && !turn.is_empty()
    {
        let username = format!("{}:{user}", now_s + config.turn_ttl_s);
        let credential = credential(secret, &username);
        out.push(IceServer { urls: turn, username: Some(username), credential: Some(credential) });
    }
    out
}

/// [`servers`] with credentials valid from now.
pub fn servers_now(config: &Config, user: &str) -> Vec<IceServer> {
    servers(config, user, u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0))
}

/// base64(HMAC-SHA1(secret, username)), padded: what coturn checks.
fn credential(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(urls: &[&str], secret: Option<&str>) -> Config {
        Config {
            ice_urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            turn_secret: secret.map(str::to_owned),
            ..Config::default()
        }
    }

    #[test]
    fn turn_url_without_a_secret_is_refused() {
        let err = config(&["turn:turn.example.com:3478"], None).validate().unwrap_err();
        assert!(err.to_string().contains("--turn-secret"), "{err}");
        assert!(config(&["stun:stun.example.com:3478"], None).validate().is_ok());
    }

    #[test]
    fn urls_must_be_stun_or_turn() {
        for bad in ["http://turn.example.com", "turn.example.com:3478", "stun:", "turn: x"] {
            let err = config(&[bad], Some(SECRET)).validate().unwrap_err();
            assert!(err.to_string().contains("not a STUN or TURN URL"), "{bad}: {err}");
        }
        let mut ok = config(
            &["stun:a.example:3478", "turn:b.example?transport=tcp", "turns:b.example:5349"],
            Some(SECRET),
        );
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn short_turn_secret_is_refused() {
        let err = config(&["turn:t.example"], Some("short")).validate().unwrap_err();
        assert!(matches!(err, ConfigError::ShortSecret { which: "TURN secret", len: 5 }), "{err}");
    }

    #[test]
    fn turn_ttl_under_12_hours_is_refused() {
        let mut c = config(&["turn:t.example"], Some(SECRET));
        c.turn_ttl_s = MIN_TURN_TTL_S - 1;
        assert!(c.validate().unwrap_err().to_string().contains("turn_ttl_s"));
        c.turn_ttl_s = MIN_TURN_TTL_S;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn turn_credential_is_the_coturn_rest_scheme() {
        let c = config(&["stun:s.example", "turn:t.example", "turns:t.example:5349"], Some(SECRET));
        let list = servers(&c, "alice", 1_000);
        assert_eq!(
            list[0],
            IceServer { urls: vec!["stun:s.example".into()], username: None, credential: None }
        );
        assert_eq!(list[1].urls, ["turn:t.example", "turns:t.example:5349"]);
        assert_eq!(list[1].username.as_deref(), Some("87400:alice"));
        // A known-answer vector, computed independently with `openssl dgst -sha1 -hmac`.
        assert_eq!(list[1].credential.as_deref(), Some(KNOWN_CREDENTIAL));
        assert!(servers(&Config::default(), "alice", 1_000).is_empty());
    }

    #[test]
    fn the_config_file_names_ice_urls_turn_secret_and_turn_ttl_s() {
        let c: Config = toml::from_str(&format!(
            "ice_urls = [\"stun:s.example\", \"turn:t.example\"]\nturn_secret = \"{SECRET}\"\nturn_ttl_s = 50000\n"
        ))
        .unwrap();
        assert_eq!((c.ice_urls.len(), c.turn_secret.as_deref(), c.turn_ttl_s), (2, Some(SECRET), 50_000));
        assert_eq!(Config::default().turn_ttl_s, DEFAULT_TURN_TTL_S);
    }

    const KNOWN_CREDENTIAL: &str = "IX6xy5tMKtlS7jOYjSC2+6o2NiQ=";
}
