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
//!
//! webrtcbin 1.22 also never checks the peer's certificate against the
//! `a=fingerprint` of its description: any certificate completes the
//! handshake, so whoever sits on the signalling path (or answers the ICE
//! checks) could take the media. [`enforce_fingerprint`] compares the
//! certificate the peer presents with the signalled fingerprints the
//! moment the handshake shows it, before any key is derived.

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

/// The `a=fingerprint` lines of a description: (hash function in lower
/// case, digest bytes). Malformed lines are left out.
pub fn fingerprints(sdp: &str) -> Vec<(String, Vec<u8>)> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
        .filter_map(|f| {
            let (alg, hex) = f.trim().split_once(' ')?;
            let bytes: Option<Vec<u8>> = hex
                .trim()
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).ok().filter(|_| b.len() == 2))
                .collect();
            Some((alg.to_ascii_lowercase(), bytes?))
        })
        .collect()
}

/// Whether the certificate `pem` (as the DTLS handshake reports it) is one
/// of `expected` (from [`fingerprints`]). Only SHA-256, -384 and -512
/// count (RFC 8122 asks every peer for SHA-256; SHA-1 and MD5 are broken),
/// so a description with none of them matches nothing.
pub fn matches(pem: &str, expected: &[(String, Vec<u8>)]) -> bool {
    use sha2::{Sha384, Sha512};
    let der = der_of(pem);
    if der.is_empty() {
        return false;
    }
    expected.iter().any(|(alg, digest)| {
        let actual: Vec<u8> = match alg.as_str() {
            "sha-256" => Sha256::digest(&der).to_vec(),
            "sha-384" => Sha384::digest(&der).to_vec(),
            "sha-512" => Sha512::digest(&der).to_vec(),
            _ => return false,
        };
        actual == *digest
    })
}

/// The DER bytes of the first certificate in `pem`.
fn der_of(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() { Vec::new() } else { gst::glib::base64_decode(&body) }
}

/// The fingerprints of the peer's current description, shared between the
/// session (which sets them with each remote description) and the DTLS
/// check (which reads them during the handshake).
pub type Expected = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// Checks every certificate a DTLS decoder of `webrtc` receives against
/// `expected`; on a mismatch calls `refuse` (from the handshake's thread,
/// before the handshake completes) with what to log.
pub fn enforce_fingerprint(
    webrtc: &gst::Element,
    expected: Expected,
    refuse: impl Fn(String) + Send + Sync + Clone + 'static,
) {
    let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else { return };
    bin.connect_deep_element_added(move |_, _, el| {
        if el.factory().is_none_or(|f| f.name() != "dtlsdec") {
            return;
        }
        let (expected, refuse) = (expected.clone(), refuse.clone());
        el.connect_notify(Some("peer-pem"), move |dec, _| {
            let pem = dec.property::<Option<String>>("peer-pem").unwrap_or_default();
            let want = expected.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if !matches(&pem, &want) {
                refuse(format!(
                    "the peer's DTLS certificate is not the one its description names ({} fingerprints signalled)",
                    want.len()
                ));
            }
        });
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
    fn a_certificate_matches_only_its_own_signalled_fingerprint() {
        let (a, b) = (ecdsa().unwrap(), ecdsa().unwrap());
        let sdp =
            |c: &Certificate| format!("v=0\r\nm=audio 9 UDP 111\r\na=fingerprint:{}\r\n", c.fingerprint);
        assert!(matches(&a.pem, &fingerprints(&sdp(&a))));
        assert!(!matches(&a.pem, &fingerprints(&sdp(&b))), "another certificate");
        assert!(!matches(&a.pem, &[]), "no fingerprint signalled");
        assert!(!matches("", &fingerprints(&sdp(&a))), "no certificate");
        let upper = sdp(&a).replace("sha-256", "SHA-256");
        assert!(matches(&a.pem, &fingerprints(&upper)), "the hash name is case-insensitive");
        let sha1 = sdp(&a).replace("sha-256", "sha-1");
        assert!(!matches(&a.pem, &fingerprints(&sha1)), "only SHA-2 counts");
        assert!(fingerprints("a=fingerprint:sha-256 ZZ:01\r\n").is_empty(), "malformed");
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
