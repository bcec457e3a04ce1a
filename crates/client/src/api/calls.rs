//! v1.2 call signals: what this device, when it is a call device of an
//! accepted invitation, sends to the other call device (protocol §12). The
//! server relays only between the two call devices and holds the order
//! rules; the negotiation itself belongs to the media engine.

use crate::client::{Client, Result};
use crate::events::{ClientEvent, IncomingCallSignal};
use crate::state::lock;
use courier_proto::call::CallSignal;
use courier_proto::{FEATURE_V1_2, Target};
use serde_json::json;

impl Client {
    /// Sends `signal` to the other call device of invitation `iid`. The ok
    /// means accepted for relay, not delivered; signals leave in the order
    /// of the calls.
    ///
    /// # Errors
    /// `Unsupported` when the server does not offer v1.2, offline, or the
    /// server's refusal (`forbidden`: not a call device, out of order, or
    /// the call has ended; `rate_limited`).
    pub async fn call_signal(&self, iid: &str, signal: &CallSignal) -> Result<()> {
        self.require_feature(FEATURE_V1_2, "calls")?;
        let to = Target::Call(iid.to_owned());
        self.call(json!({"op": "signal", "to": to, "body": signal.to_body()})).await.map(drop)
    }

    /// Whether this device became a call device of invitation `iid`: it
    /// placed the invitation, or its answer accepted it (the `call_device`
    /// of the server's ok). Other devices of the same user are not in the
    /// call.
    pub fn is_call_device(&self, iid: &str) -> bool {
        lock(&self.inner.call_devices).contains(iid)
    }
}

impl ClientEvent {
    /// The call signal a [`ClientEvent::Signal`] to `{"call":iid}` carries,
    /// decoded; `None` for other signals and for bodies this version does
    /// not understand (an extension), which a peer ignores.
    pub fn call_signal(&self) -> Option<IncomingCallSignal> {
        let ClientEvent::Signal { from, to: Target::Call(iid), body, ts } = self else { return None };
        let signal = CallSignal::from_body(body)?;
        Some(IncomingCallSignal { iid: iid.clone(), from: from.clone(), signal, ts: *ts })
    }
}

#[cfg(test)]
mod tests {
    use crate::client::ClientError;
    use crate::events::ClientEvent;
    use crate::fake_server::{accept_with_features, next_op, reply, setup, wait_for};
    use courier_proto::call::{CallSignal, EndReason};
    use courier_proto::{FEATURE_V1_1, FEATURE_V1_2, Target};
    use serde_json::{Map, json};

    type Ws = tokio_tungstenite::WebSocketStream<tokio::io::DuplexStream>;

    async fn session(features: &[&str]) -> (tempfile::TempDir, crate::Client, Ws) {
        let (d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
        let mut events = client.subscribe();
        client.start();
        let mut ws = servers.recv().await.unwrap();
        accept_with_features(&mut ws, features).await;
        wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
        (d, client, ws)
    }

    fn invite_ok(iid: &str) -> serde_json::Value {
        json!({"invite": {"iid": iid, "from": "alice", "to": "bob", "room": format!("call-{iid}"),
               "content": {}, "state": "pending", "created": 1, "expires": i64::MAX, "received": false},
               "call_device": true})
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_signal_goes_to_the_call_and_the_inviting_device_is_a_call_device() {
        let (_d, client, mut ws) = session(&[FEATURE_V1_1, FEATURE_V1_2]).await;
        let c = client.clone();
        let task = tokio::spawn(async move { c.invite("bob", Map::new(), 60).await });
        let req = next_op(&mut ws, "invite").await;
        reply(&mut ws, &req, invite_ok("i1")).await;
        task.await.unwrap().unwrap();
        assert!(client.is_call_device("i1"));
        assert!(!client.is_call_device("i2"));

        let c = client.clone();
        let end = CallSignal::End { reason: EndReason::Hangup };
        let task = tokio::spawn(async move { c.call_signal("i1", &end).await });
        let req = next_op(&mut ws, "signal").await;
        assert_eq!(req["to"], json!({"call": "i1"}));
        assert_eq!(req["body"], json!({"t": "end", "reason": "hangup"}));
        reply(&mut ws, &req, json!({"ts": 5})).await;
        task.await.unwrap().unwrap();
    }

    /// A client that runs for weeks places call after call: it remembers
    /// the latest invitations it is a call device of, not all of them.
    #[tokio::test(start_paused = true)]
    async fn a_device_remembers_only_its_latest_calls() {
        let (_d, client, mut ws) = session(&[FEATURE_V1_1, FEATURE_V1_2]).await;
        let keep = crate::state::CallDevices::KEEP;
        for n in 0..keep + 500 {
            let c = client.clone();
            let task = tokio::spawn(async move { c.invite("bob", Map::new(), 60).await });
            let req = next_op(&mut ws, "invite").await;
            reply(&mut ws, &req, invite_ok(&format!("i{n}"))).await;
            task.await.unwrap().unwrap();
        }
        let held = crate::state::lock(&client.inner.call_devices).len();
        assert_eq!(held, keep, "{} calls placed, {held} remembered", keep + 500);
        assert!(client.is_call_device(&format!("i{}", keep + 499)), "the latest call is this device's");
        assert!(!client.is_call_device("i0"), "the oldest is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn call_signals_need_v1_2() {
        let (_d, client, _ws) = session(&[FEATURE_V1_1]).await;
        let r = client.call_signal("i1", &CallSignal::Media { audio: true, video: false }).await;
        assert!(matches!(r, Err(ClientError::Unsupported(_))), "{r:?}");
    }

    #[test]
    fn a_signal_event_to_a_call_decodes_as_a_call_signal() {
        let body = CallSignal::Offer { sdp: "v=0".into(), transport_restart: false }.to_body();
        let ev = ClientEvent::Signal { from: "bob".into(), to: Target::Call("i1".into()), body, ts: 7 };
        let got = ev.call_signal().expect("a call signal");
        assert_eq!((got.iid.as_str(), got.from.as_str(), got.ts), ("i1", "bob", 7));
        assert_eq!(got.signal, CallSignal::Offer { sdp: "v=0".into(), transport_restart: false });
        let user = ClientEvent::Signal {
            from: "bob".into(),
            to: Target::User("alice".into()),
            body: CallSignal::Offer { sdp: "v=0".into(), transport_restart: false }.to_body(),
            ts: 7,
        };
        assert!(user.call_signal().is_none(), "only signals to a call");
        let ext = json!({"t": "hologram"}).as_object().cloned().unwrap();
        let ext = ClientEvent::Signal { from: "bob".into(), to: Target::Call("i1".into()), body: ext, ts: 7 };
        assert!(ext.call_signal().is_none(), "an extension is not for the engine");
    }
}
