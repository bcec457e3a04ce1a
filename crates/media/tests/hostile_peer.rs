//! A hostile peer, end to end inside the test namespace: signalling that
//! names a DTLS fingerprint other than the certificate the peer presents
//! (a man in the middle of the signalling path, or a relay swapping
//! certificates) must not carry media either way.

mod support;

use std::time::{Duration, Instant};

use courier_media::{Call, CallEvent, CallOptions, CallSignal, CallState, EndReason, Role};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::time::timeout;

use support::{in_namespace, pipe, runtime, tone_call_media as media};

const WAIT: Duration = Duration::from_secs(40);

/// Feeds `rx` to `call`, each signal changed by `f` first.
fn deliver_changed(
    mut rx: UnboundedReceiver<CallSignal>,
    call: Call,
    f: impl Fn(CallSignal) -> CallSignal + Send + 'static,
) {
    tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            call.on_signal(f(s));
        }
    });
}

/// `sdp` naming another certificate: every `a=fingerprint` line replaced.
fn other_fingerprint(sdp: &str) -> String {
    let fake = format!("sha-256 {}", vec!["5A"; 32].join(":"));
    sdp.lines()
        .map(|l| if l.starts_with("a=fingerprint:") { format!("a=fingerprint:{fake}") } else { l.to_owned() })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

/// Reads a call's events until it ends; returns how it ended and the
/// loudest remote level it reported.
async fn until_ended(rx: &mut mpsc::UnboundedReceiver<CallEvent>) -> (Option<CallState>, f64) {
    let deadline = Instant::now() + WAIT;
    let mut loudest = -100.0f64;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, rx.recv()).await {
            Ok(Some(CallEvent::State(s @ CallState::Ended { .. }))) => return (Some(s), loudest),
            Ok(Some(CallEvent::Levels { remote, .. })) => loudest = loudest.max(remote),
            Ok(Some(CallEvent::Warning { code, message })) => println!("warning: {code}: {message}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return (None, loudest),
        }
    }
}

/// A callee and a caller (in that order) of call `iid`, each sending a
/// tone and recording into `dir`; and what each sends, to deliver.
#[allow(clippy::type_complexity)]
fn two_calls(
    iid: &str,
    dir: &std::path::Path,
) -> (
    (Call, UnboundedReceiver<CallEvent>, UnboundedReceiver<CallSignal>),
    (Call, UnboundedReceiver<CallEvent>, UnboundedReceiver<CallSignal>),
) {
    let (a_pipe, a_out) = pipe();
    let (b_pipe, b_out) = pipe();
    let (b, b_rx) = Call::start(
        CallOptions { iid: iid.into(), role: Role::Callee, media: media(660.0, dir.join("b.wav")) },
        b_pipe,
    )
    .expect("callee starts");
    let (a, a_rx) = Call::start(
        CallOptions { iid: iid.into(), role: Role::Caller, media: media(440.0, dir.join("a.wav")) },
        a_pipe,
    )
    .expect("caller starts");
    ((b, b_rx, b_out), (a, a_rx, a_out))
}

#[test]
fn a_peer_presenting_another_certificate_than_signalled_gets_no_media() {
    if !in_namespace("a_peer_presenting_another_certificate_than_signalled_gets_no_media") {
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("courier-media-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ((b, mut b_rx, b_out), (a, mut a_rx, a_out)) = two_calls("i1", &dir);
        // The callee is told of a certificate the caller does not have.
        deliver_changed(a_out, b.clone(), |s| match s {
            CallSignal::Offer { sdp, transport_restart } => {
                CallSignal::Offer { sdp: other_fingerprint(&sdp), transport_restart }
            }
            s => s,
        });
        support::deliver(b_out, a.clone());
        let ((b_end, b_heard), (a_end, a_heard)) =
            tokio::join!(until_ended(&mut b_rx), until_ended(&mut a_rx));
        println!(
            "callee: {b_end:?}, loudest {b_heard:.1} dBFS; caller: {a_end:?}, loudest {a_heard:.1} dBFS"
        );
        assert!(b_heard < -60.0, "the callee heard the impostor: {b_heard:.1} dBFS");
        assert!(a_heard < -60.0, "the impostor heard the callee: {a_heard:.1} dBFS");
        assert_eq!(
            b_end,
            Some(CallState::Ended { reason: EndReason::Failed, by_peer: false }),
            "the callee ends the call failed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A candidate of the highest priority (checked first) for `addr:port`.
fn aimed(addr: &str, port: u16) -> CallSignal {
    CallSignal::Candidate {
        candidate: format!("candidate:99 1 UDP 2130706431 {addr} {port} typ host"),
        mid: None,
        mline: Some(0),
        ufrag: None,
    }
}

#[test]
fn a_caller_cannot_aim_the_callees_ice_checks_at_its_machine_or_lan_services() {
    if !in_namespace("a_caller_cannot_aim_the_callees_ice_checks_at_its_machine_or_lan_services") {
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        // A service on the callee's machine and one on its LAN (the
        // caller's side of the namespace's veth pair).
        let local = std::net::UdpSocket::bind("127.0.0.1:40999").unwrap();
        let lan = std::net::UdpSocket::bind("10.77.0.1:161").unwrap();
        let dir = std::env::temp_dir().join(format!("courier-media-aimed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ((b, mut b_rx, b_out), (a, _a_rx, a_out)) = two_calls("i2", &dir);
        // Right after its offer, the caller names the two services.
        let b2 = b.clone();
        deliver_changed(a_out, b.clone(), move |s| {
            if matches!(s, CallSignal::Offer { .. }) {
                let b2 = b2.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    b2.on_signal(aimed("127.0.0.1", 40999));
                    b2.on_signal(aimed("10.77.0.1", 161));
                });
            }
            s
        });
        support::deliver(b_out, a.clone());
        // The call itself connects on the genuine candidates.
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, b_rx.recv()).await {
                Ok(Some(CallEvent::State(CallState::Connected))) => break,
                Ok(Some(_)) => {}
                other => panic!("the callee did not connect: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut buf = [0u8; 1500];
        for (name, sock) in [("127.0.0.1:40999", &local), ("10.77.0.1:161", &lan)] {
            sock.set_nonblocking(true).unwrap();
            let got = sock.recv_from(&mut buf);
            assert!(got.is_err(), "the callee sent {name} a packet: {got:?}");
        }
        b.hangup();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
