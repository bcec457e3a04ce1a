//! The DTLS certificate of a session.
//!
//! GStreamer 1.22 generates an RSA certificate, but several WebRTC stacks
//! offer only ECDHE-ECDSA cipher suites (aiortc: "no shared cipher", the
//! handshake fails right after ICE connected); browsers default to ECDSA
//! P-256 too. So every session gets a fresh self-signed ECDSA P-256
//! certificate, set on each DTLS decoder webrtcbin creates.
//!
//! webrtcbin 1.22 computes `a=fingerprint` over every base64 line of the
//! decoder's PEM, the private key's included, so with a certificate given
//! to it the fingerprint it writes is wrong: descriptions go out with the
//! certificate's own SHA-256 fingerprint instead ([`with_fingerprint`]).

use gst::prelude::*;
use sha2::{Digest, Sha256};

use crate::MediaError;

/// A session's certificate: PEM (certificate then key, as `dtlssrtpdec`'s
/// `pem` property takes them) and its `sha-256` fingerprint.
#[derive(Clone)]
pub struct Certificate {
    pub pem: String,
    pub fingerprint: String,
}

/// A fresh self-signed ECDSA P-256 certificate.
pub fn ecdsa() -> Result<Certificate, MediaError> {
    let ck = rcgen::generate_simple_self_signed(vec!["courier-call".to_owned()])
        .map_err(|e| MediaError::Unavailable(format!("DTLS certificate: {e}")))?;
    let digest = Sha256::digest(ck.cert.der());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    Ok(Certificate {
        pem: format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem()),
        fingerprint: format!("sha-256 {}", hex.join(":")),
    })
}

/// Gives every DTLS transport `webrtc` creates the certificate `cert`.
pub fn use_certificate(webrtc: &gst::Element, cert: &Certificate) {
    let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else { return };
    let pem = cert.pem.clone();
    bin.connect_deep_element_added(move |_, _, el| {
        if el.factory().is_some_and(|f| f.name() == "dtlssrtpdec") {
            el.set_property("pem", &pem);
        }
    });
}

/// `sdp` with every `a=fingerprint` line naming `cert`'s fingerprint.
pub fn with_fingerprint(sdp: &str, cert: &Certificate) -> String {
    let mut out = String::with_capacity(sdp.len());
    for l in sdp.split_inclusive('\n') {
        if l.starts_with("a=fingerprint:") {
            out.push_str("a=fingerprint:");
            out.push_str(&cert.fingerprint);
            out.push_str(if l.ends_with("\r\n") { "\r\n" } else { "\n" });
        } else {
            out.push_str(l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer from a webrtcbin given `cert` (or none), and its DTLS decoder.
    fn offer(cert: Option<&Certificate>) -> (String, gst::Element) {
        super::super::init().unwrap();
        let w = gst::ElementFactory::make("webrtcbin").build().unwrap();
        if let Some(c) = cert {
            use_certificate(&w, c);
        }
        let caps: gst::Caps = super::super::chains::VP8_RTP.parse().unwrap();
        w.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
            "add-transceiver",
            &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
        );
        // webrtcbin makes its transports when it first offers.
        let pipeline = gst::Pipeline::new();
        pipeline.add(&w).unwrap();
        pipeline.set_state(gst::State::Ready).unwrap();
        let promise = gst::Promise::new();
        w.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        assert_eq!(promise.wait(), gst::PromiseResult::Replied);
        let reply = promise.get_reply().unwrap();
        let desc = reply.value("offer").unwrap().get::<gst_webrtc::WebRTCSessionDescription>().unwrap();
        let sdp = desc.sdp().as_text().unwrap();
        let dec = w
            .downcast_ref::<gst::Bin>()
            .unwrap()
            .iterate_recurse()
            .into_iter()
            .flatten()
            .find(|e| e.factory().is_some_and(|f| f.name() == "dtlssrtpdec"))
            .expect("webrtcbin made a DTLS decoder");
        pipeline.set_state(gst::State::Null).unwrap();
        (sdp, dec)
    }

    fn fingerprint_line(sdp: &str) -> &str {
        sdp.lines().find(|l| l.starts_with("a=fingerprint:")).expect("a fingerprint")
    }

    #[test]
    fn sessions_use_an_ecdsa_certificate_and_offer_its_own_fingerprint() {
        let cert = ecdsa().unwrap();
        assert!(cert.pem.contains("BEGIN CERTIFICATE") && cert.pem.contains("BEGIN PRIVATE KEY"));
        assert_eq!(cert.fingerprint.len(), "sha-256 ".len() + 32 * 3 - 1, "{}", cert.fingerprint);
        let (sdp, dec) = offer(Some(&cert));
        // Without `use_certificate` the decoder holds GStreamer's RSA one.
        assert_eq!(dec.property::<String>("pem"), cert.pem);
        // webrtcbin 1.22 hashes the key too; the description gets fixed.
        assert_ne!(fingerprint_line(&sdp), format!("a=fingerprint:{}", cert.fingerprint));
        let fixed = with_fingerprint(&sdp, &cert);
        assert_eq!(fingerprint_line(&fixed), format!("a=fingerprint:{}", cert.fingerprint));
        assert_eq!(fixed.len(), sdp.len() - fingerprint_line(&sdp).len() + fingerprint_line(&fixed).len());
        let (plain, plain_dec) = offer(None);
        assert_ne!(plain_dec.property::<String>("pem"), cert.pem);
        assert!(fingerprint_line(&plain).starts_with("a=fingerprint:sha-256 "));
    }
}
