//! Tokens: HS256 JWTs signed with the server's secret, and `dev:<user>`
//! tokens for loopback development servers.

use courier_proto::ids::is_valid_user;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Claims of a Courier user token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Optional display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Who a token names, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub user: String,
    /// Expiry in seconds since the epoch; `None` for dev tokens.
    pub exp: Option<i64>,
    /// Display name claimed by the token.
    pub name: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Signed correctly but past its `exp`: close 4002.
    #[error("token expired")]
    Expired,
    /// Anything else: close 4001.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Verifies tokens with the server's settings.
#[derive(Clone)]
pub struct Authenticator {
    key: Option<DecodingKey>,
    validation: Validation,
    dev: bool,
}

impl Authenticator {
    /// An authenticator for a secret (if any) and the dev-token switch.
    pub fn new(secret: Option<&str>, dev: bool) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Authenticator { key: secret.map(|s| DecodingKey::from_secret(s.as_bytes())), validation, dev }
    }

    /// Checks a token.
    ///
    /// # Errors
    /// [`AuthError::Expired`] for a valid but expired JWT, else
    /// [`AuthError::Invalid`] (forged, wrong algorithm, malformed, bad `sub`,
    /// dev token on a server without dev mode).
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if let Some(user) = token.strip_prefix("dev:") {
            if !self.dev {
                return Err(AuthError::Invalid("dev tokens are not accepted by this server".into()));
            }
            if !is_valid_user(user) {
                return Err(AuthError::Invalid("invalid user id in dev token".into()));
            }
            return Ok(Identity { user: user.to_owned(), exp: None, name: None });
        }
        let Some(key) = &self.key else {
            return Err(AuthError::Invalid("this server only accepts dev tokens".into()));
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                other => AuthError::Invalid(format!("{other:?}")),
            })?;
        if !is_valid_user(&data.claims.sub) {
            return Err(AuthError::Invalid("invalid user id in `sub`".into()));
        }
        Ok(Identity { user: data.claims.sub, exp: Some(data.claims.exp), name: data.claims.name })
    }

    /// Whether admin requests with `bearer` are allowed under `secret`.
    /// Compares in constant time.
    pub fn admin_ok(secret: Option<&str>, bearer: Option<&str>) -> bool {
        match (secret, bearer) {
            (Some(s), Some(b)) if s.len() == b.len() => {
                s.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            }
            _ => false,
        }
    }
}

/// A fresh random 256-bit secret, hex encoded (64 characters), for
/// `--auth-secret` or `--admin-secret`.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Signs a user token valid for `ttl`.
///
/// # Errors
/// When `user` is not a valid user id.
pub fn mint_token(secret: &str, user: &str, ttl: Duration, name: Option<&str>) -> Result<String, String> {
    if !is_valid_user(user) {
        return Err(format!("`{user}` is not a valid user id (A-Z a-z 0-9 _ . -, 1-64 chars)"));
    }
    let exp = crate::clock::now_ms() / 1000 + ttl.as_secs() as i64;
    let claims = Claims { sub: user.to_owned(), exp, name: name.map(str::to_owned) };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// Longest nonce [`local_proof`] answers for (and shortest: a proof of a
/// short nonce could be collected in advance).
pub const LOCAL_PROOF_NONCE: std::ops::RangeInclusive<usize> = 32..=128;

/// Proof that a server holds `secret`, for `nonce`: hex of
/// HMAC-SHA256(HMAC-SHA256(secret, "courier.local-proof.v1"), nonce). The
/// derived key keeps it apart from token signatures (an HMAC of `secret`
/// over a caller's bytes would sign any token it chose). `None` for a
/// nonce that is not 32-128 ASCII letters and digits.
pub fn local_proof(secret: &str, nonce: &str) -> Option<String> {
    use hmac::{Hmac, Mac};
    type HmacSha256 = Hmac<sha2::Sha256>;
    if !LOCAL_PROOF_NONCE.contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut derive = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    derive.update(b"courier.local-proof.v1");
    let key = derive.finalize().into_bytes();
    let mut mac = HmacSha256::new_from_slice(&key).expect("any key length");
    mac.update(nonce.as_bytes());
    Some(mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_proof_depends_on_secret_and_nonce_and_refuses_odd_nonces() {
        let n = "a".repeat(32);
        let p = local_proof("secret-one", &n).unwrap();
        assert_eq!(p.len(), 64);
        assert_eq!(local_proof("secret-one", &n), Some(p.clone()), "deterministic");
        assert_ne!(local_proof("secret-two", &n), Some(p.clone()));
        assert_ne!(local_proof("secret-one", &"b".repeat(32)), Some(p));
        for bad in ["a".repeat(31), "a".repeat(129), format!("{}.", "a".repeat(40))] {
            assert_eq!(local_proof("secret-one", &bad), None, "{bad}");
        }
    }

    #[test]
    fn jwt_round_trip_and_refusals() {
        let a = Authenticator::new(Some("s3cret"), false);
        let t = mint_token("s3cret", "alice", Duration::from_secs(60), Some("Alice")).unwrap();
        let id = a.verify(&t).unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.name.as_deref(), Some("Alice"));
        let forged = mint_token("other", "alice", Duration::from_secs(60), None).unwrap();
        assert!(matches!(a.verify(&forged), Err(AuthError::Invalid(_))));
        assert!(matches!(a.verify("dev:alice"), Err(AuthError::Invalid(_))));
        assert!(matches!(a.verify("garbage"), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn expired_is_distinct_from_forged() {
        let a = Authenticator::new(Some("k"), false);
        let claims = Claims { sub: "bob".into(), exp: crate::clock::now_ms() / 1000 - 5, name: None };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"k"))
                .unwrap();
        assert_eq!(a.verify(&t), Err(AuthError::Expired));
        let forged =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"x"))
                .unwrap();
        assert!(matches!(a.verify(&forged), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn alg_none_and_hs512_are_refused() {
        let a = Authenticator::new(Some("k"), false);
        // {"alg":"none","typ":"JWT"} . {"sub":"bob","exp":9999999999} . (empty)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJib2IiLCJleHAiOjk5OTk5OTk5OTl9.";
        assert!(matches!(a.verify(none), Err(AuthError::Invalid(_))));
        let claims = Claims { sub: "bob".into(), exp: 9_999_999_999, name: None };
        let hs512 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(b"k"))
                .unwrap();
        assert!(matches!(a.verify(&hs512), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn dev_tokens_only_in_dev_mode() {
        let a = Authenticator::new(None, true);
        assert_eq!(a.verify("dev:carol").unwrap().user, "carol");
        assert!(a.verify("dev:bad user").is_err());
        assert!(a.verify("dev:").is_err());
    }

    #[test]
    fn fresh_secrets_are_long_and_distinct() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 64);
        assert!(a.len() >= crate::config::MIN_SECRET_BYTES);
        assert_ne!(a, b);
    }

    #[test]
    fn admin_secret_comparison() {
        assert!(Authenticator::admin_ok(Some("abc"), Some("abc")));
        assert!(!Authenticator::admin_ok(Some("abc"), Some("abd")));
        assert!(!Authenticator::admin_ok(Some("abc"), None));
        assert!(!Authenticator::admin_ok(None, Some("")));
    }
}
