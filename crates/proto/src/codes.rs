//! Error codes (in `err.code` of a reply) and WebSocket close codes.
//!
//! Clients branch on these, never on the human `message`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The `code` of an error reply. A code this version does not know reads
/// as [`ErrorCode::BadRequest`] (§2: "a client treats a code it does not
/// know like `bad_request`"), so a newer server's codes are refusals, not
/// frames that fail to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or one of its fields is malformed.
    BadRequest,
    /// No valid session: bad token, or a request before `hello`.
    Unauthenticated,
    /// The caller may not do this (also: a channel that does not exist).
    Forbidden,
    /// The thing named does not exist for this caller.
    NotFound,
    /// The name is taken, a window has passed, or the target is recalled.
    Conflict,
    /// The body or upload exceeds a limit.
    TooLarge,
    /// The session's token bucket is empty; see `retry_after_ms`.
    RateLimited,
    /// The invitation is already in a final state; see `invite`.
    InviteFinal,
    /// The op is not known to this server.
    Unsupported,
    /// A server fault; retrying later may succeed.
    Internal,
    /// v1.2: a cap other than the rate was reached; `err.limit` names it
    /// (`reaction_keys`, `reactions_per_user`, `channels_created`,
    /// `sessions`, `upload_bytes_day`, `pending_invites`, `pins`).
    LimitReached,
}

impl ErrorCode {
    /// Every code, for metrics and exhaustive tests.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::InviteFinal,
        ErrorCode::Unsupported,
        ErrorCode::Internal,
        ErrorCode::LimitReached,
    ];

    /// The wire spelling, e.g. `"bad_request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InviteFinal => "invite_final",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Internal => "internal",
            ErrorCode::LimitReached => "limit_reached",
        }
    }

    /// Whether a client should retry the same request later unchanged.
    /// Only `rate_limited` and `internal` are transient.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::RateLimited | ErrorCode::Internal)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(ErrorCode::ALL.into_iter().find(|c| c.as_str() == code).unwrap_or(ErrorCode::BadRequest))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes used by Courier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode;

impl CloseCode {
    /// Server going away (restart, drain): reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// Slow consumer: the outbound queue overflowed. Reconnect and resync.
    pub const POLICY: u16 = 1008;
    /// A frame larger than `max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// Authentication failed: do not reconnect with the same token.
    pub const AUTH_FAILED: u16 = 4001;
    /// Token expired: obtain a fresh token, then reconnect.
    pub const TOKEN_EXPIRED: u16 = 4002;
    /// Replaced by a newer session of the same device: do not reconnect.
    pub const REPLACED: u16 = 4003;
    /// Heartbeat timeout: reconnect.
    pub const HEARTBEAT_TIMEOUT: u16 = 4008;
    /// Rate limit abuse: reconnect later.
    pub const RATE_ABUSE: u16 = 4029;

    /// Whether a client should reconnect after this close code.
    /// Every code except 4001 and 4003 means "reconnect"
    /// (4002 after renewing the token).
    pub fn should_reconnect(code: u16) -> bool {
        !matches!(code, Self::AUTH_FAILED | Self::REPLACED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_by_wire_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn a_code_this_version_does_not_know_reads_as_bad_request() {
        let back: ErrorCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(back, ErrorCode::BadRequest);
        let body: crate::ErrBody =
            serde_json::from_value(serde_json::json!({"code":"quota_exceeded","message":"over quota"}))
                .unwrap();
        assert_eq!((body.code, body.message.as_str()), (ErrorCode::BadRequest, "over quota"));
        assert!(serde_json::from_str::<ErrorCode>("7").is_err(), "not a code at all");
    }

    #[test]
    fn reconnect_policy_follows_the_contract() {
        assert!(!CloseCode::should_reconnect(4001));
        assert!(!CloseCode::should_reconnect(4003));
        for code in [1000, 1001, 1006, 1008, 1009, 4002, 4008, 4029] {
            assert!(CloseCode::should_reconnect(code), "{code}");
        }
    }
}
