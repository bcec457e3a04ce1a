//! The one error type commands return: `{code, message}` (style §5).

use courier_client::ClientError;
use serde::Serialize;

/// An error crossing the IPC boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct CmdError {
    /// Machine-readable: `offline`, `timeout`, `invalid`, `not_signed_in`,
    /// a server error code (`forbidden`, `not_found`, …), ….
    pub code: String,
    /// For humans.
    pub message: String,
    /// With `limit_reached`: which cap (`reaction_keys`, `channels_created`,
    /// `upload_bytes_day`, …), so the UI can say it in the user's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl CmdError {
    /// An error with this code and message.
    pub fn new(code: &str, message: impl Into<String>) -> CmdError {
        CmdError { code: code.into(), message: message.into(), limit: None }
    }
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<ClientError> for CmdError {
    fn from(e: ClientError) -> CmdError {
        let code = match &e {
            ClientError::Store(_) => "store".to_owned(),
            ClientError::Offline => "offline".to_owned(),
            ClientError::Server(b) => serde_json::to_value(b.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "server".into()),
            ClientError::Timeout => "timeout".to_owned(),
            ClientError::Stopped { .. } => "stopped".to_owned(),
            ClientError::Config(_) => "config".to_owned(),
            ClientError::Invalid(_) => "invalid".to_owned(),
            ClientError::Protocol(_) => "protocol".to_owned(),
            ClientError::Media(_) => "media".to_owned(),
            ClientError::Unsupported(_) => "unsupported".to_owned(),
        };
        let message = match &e {
            ClientError::Server(b) => b.message.clone(),
            other => other.to_string(),
        };
        let limit = match &e {
            ClientError::Server(b) => b.limit.clone(),
            _ => None,
        };
        // An upload refused with 429 carries the server's `err` body: keep
        // its code (`rate_limited`, `limit_reached`) and cap.
        if let ClientError::Media(courier_client::media::MediaError::Status { status: 429, body }) = &e
            && let Ok(reply) = serde_json::from_str::<courier_proto::Reply>(body)
            && let Some(err) = reply.err
        {
            return CmdError { code: err.code.to_string(), message: err.message, limit: err.limit };
        }
        // A 429 or 413 without a readable body (a proxy's, say) still says
        // what happened.
        if let ClientError::Media(courier_client::media::MediaError::Status {
            status: status @ (413 | 429),
            ..
        }) = &e
        {
            let code = if *status == 429 { "rate_limited" } else { "too_large" };
            return CmdError { code: code.into(), message, limit: None };
        }
        CmdError { code, message, limit }
    }
}

impl From<std::io::Error> for CmdError {
    fn from(e: std::io::Error) -> CmdError {
        CmdError::new("io", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_client_errors() {
        assert_eq!(CmdError::from(ClientError::Offline).code, "offline");
        let e = CmdError::from(ClientError::Invalid("bad target".into()));
        assert_eq!((e.code.as_str(), e.message.as_str()), ("invalid", "invalid argument: bad target"));
        let body: courier_proto::ErrBody =
            serde_json::from_value(serde_json::json!({"code": "forbidden", "message": "not a member"}))
                .unwrap();
        let e = CmdError::from(ClientError::Server(Box::new(body)));
        assert_eq!((e.code.as_str(), e.message.as_str()), ("forbidden", "not a member"));
        let v = serde_json::to_value(e).unwrap();
        assert_eq!(v, serde_json::json!({"code": "forbidden", "message": "not a member"}));
        let body = courier_proto::ErrBody::limit("reaction_keys", "too many reactions");
        let v = serde_json::to_value(CmdError::from(ClientError::Server(Box::new(body)))).unwrap();
        assert_eq!(v["code"], "limit_reached");
        assert_eq!(v["limit"], "reaction_keys");
        let quota = courier_client::media::MediaError::Status {
            status: 429,
            body: r#"{"re":null,"err":{"code":"limit_reached","message":"daily quota","limit":"upload_bytes_day"}}"#
                .into(),
        };
        let e = CmdError::from(ClientError::Media(quota));
        assert_eq!((e.code.as_str(), e.limit.as_deref()), ("limit_reached", Some("upload_bytes_day")));
        let proxy =
            courier_client::media::MediaError::Status { status: 429, body: "<html>slow down</html>".into() };
        assert_eq!(CmdError::from(ClientError::Media(proxy)).code, "rate_limited");
        let big = courier_client::media::MediaError::Status { status: 413, body: String::new() };
        assert_eq!(CmdError::from(ClientError::Media(big)).code, "too_large");
    }
}
