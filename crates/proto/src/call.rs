//! The v1.2 call signals: the bodies of `signal` frames sent to
//! `{"call":<iid>}` between the two call devices of an accepted invitation
//! (protocol §12).
//!
//! The server relays a call signal's body unchanged (extra fields are for
//! extensions); it reads only `t`, to hold the order rules: the caller's
//! device sends one `offer`, the callee sends nothing but `end` before it,
//! and nothing passes after an `end`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a call ended (`{"t":"end","reason":…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum EndReason {
    /// A person hung up.
    Hangup,
    /// ICE never connected within 30 s of the offer, or could not restart.
    Failed,
    /// The other call device went away (sent by the server).
    Gone,
    /// The device is already in another call.
    Busy,
}

impl EndReason {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Hangup => "hangup",
            EndReason::Failed => "failed",
            EndReason::Gone => "gone",
            EndReason::Busy => "busy",
        }
    }
}

/// One call signal body, tagged by `t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum CallSignal {
    /// The caller's first offer (sent once, after `accepted`).
    Offer {
        sdp: String,
        /// Extension: the sender can take part in a transport restart
        /// (see [`CallSignal::Renegotiate`]).
        #[serde(default, skip_serializing_if = "is_false")]
        transport_restart: bool,
    },
    /// The reply to `offer` or `renegotiate`.
    Answer {
        sdp: String,
        #[serde(default, skip_serializing_if = "is_false")]
        transport_restart: bool,
    },
    /// A trickled ICE candidate. `candidate` keeps its `candidate:` prefix;
    /// the empty string marks the end of gathering. `mid` wins over `mline`.
    Candidate {
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mline: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ufrag: Option<String>,
    },
    /// A later offer: camera on/off, ICE restart.
    ///
    /// Extension (`transport_restart`): between two peers that both said
    /// `"transport_restart":true` in an offer or answer, an offer whose DTLS
    /// fingerprint differs from the last one is a transport restart: the
    /// sender has a new ICE agent (which gathers candidates on today's
    /// interfaces) and a new DTLS association, and the receiver answers from
    /// a new one too. An ICE restart alone keeps the old agent's local
    /// candidates, which a network change has made useless.
    Renegotiate {
        sdp: String,
        #[serde(default, skip_serializing_if = "is_false")]
        transport_restart: bool,
    },
    /// The sender's microphone / camera state, for the UI.
    Media { audio: bool, video: bool },
    /// The call is over.
    End { reason: EndReason },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl CallSignal {
    /// The `t` of a body, if it has one that is a string.
    pub fn kind_of(body: &Map<String, Value>) -> Option<&str> {
        body.get("t").and_then(Value::as_str)
    }

    /// Decodes a relayed body. Unknown `t` values and malformed bodies are
    /// `None`: a peer ignores what it does not understand.
    pub fn from_body(body: &Map<String, Value>) -> Option<CallSignal> {
        serde_json::from_value(Value::Object(body.clone())).ok()
    }

    /// Encodes this signal as a `signal` body.
    pub fn to_body(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("a tagged enum serialises to an object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn bodies_round_trip_in_the_wire_spelling() {
        let c = CallSignal::Candidate {
            candidate: "candidate:1 1 UDP 2122252543 10.0.0.1 40000 typ host".into(),
            mid: Some("0".into()),
            mline: Some(0),
            ufrag: None,
        };
        let body = c.to_body();
        assert_eq!(body["t"], "candidate");
        assert!(!body.contains_key("ufrag"));
        assert_eq!(CallSignal::from_body(&body), Some(c));
        let end = obj(json!({"t":"end","reason":"gone"}));
        assert_eq!(CallSignal::from_body(&end), Some(CallSignal::End { reason: EndReason::Gone }));
        assert_eq!(CallSignal::kind_of(&end), Some("end"));
        let media = CallSignal::Media { audio: false, video: true }.to_body();
        assert_eq!(Value::Object(media), json!({"t":"media","audio":false,"video":true}));
    }

    #[test]
    fn the_transport_restart_flag_is_written_only_when_set() {
        let plain = CallSignal::Answer { sdp: "v=0".into(), transport_restart: false }.to_body();
        assert_eq!(Value::Object(plain), json!({"t":"answer","sdp":"v=0"}));
        let flagged = CallSignal::Renegotiate { sdp: "v=0".into(), transport_restart: true };
        let body = flagged.to_body();
        assert_eq!(
            Value::Object(body.clone()),
            json!({"t":"renegotiate","sdp":"v=0","transport_restart":true})
        );
        assert_eq!(CallSignal::from_body(&body), Some(flagged));
    }

    #[test]
    fn extensions_and_unknown_kinds_are_tolerated() {
        let offer = obj(json!({"t":"offer","sdp":"v=0\r\n","x-ext":1}));
        assert_eq!(
            CallSignal::from_body(&offer),
            Some(CallSignal::Offer { sdp: "v=0\r\n".into(), transport_restart: false })
        );
        assert_eq!(CallSignal::from_body(&obj(json!({"t":"hologram"}))), None);
        assert_eq!(CallSignal::from_body(&obj(json!({"t":"end","reason":"bored"}))), None);
        assert_eq!(CallSignal::kind_of(&obj(json!({"t":5}))), None);
    }
}
