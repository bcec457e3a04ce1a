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

/// The DTLS check of one session: media passes into and out of webrtcbin
/// only once the certificate the peer presented matches the fingerprints
/// of its description. Until the handshake shows a certificate, and until
/// the peer's description is known, nothing passes (there is no media
/// before DTLS anyway; this makes it so whatever order the answer and the
/// handshake come in: a handshake may start before the answer has crossed
/// the server).
pub struct PeerCheck {
    state: std::sync::Mutex<CheckState>,
    verdict: std::sync::atomic::AtomicU8,
    refuse: Box<dyn Fn(String) + Send + Sync>,
}

#[derive(Default)]
struct CheckState {
    /// The fingerprints of the peer's current description, once it has one.
    expected: Option<Vec<(String, Vec<u8>)>>,
    /// The certificate the handshake showed.
    shown: Option<String>,
}

const UNDECIDED: u8 = 0;
const VERIFIED: u8 = 1;
const REFUSED: u8 = 2;

impl PeerCheck {
    /// A check that calls `refuse` (once, from whichever thread decides)
    /// when the certificate is not the signalled one.
    pub fn new(refuse: impl Fn(String) + Send + Sync + 'static) -> std::sync::Arc<PeerCheck> {
        std::sync::Arc::new(PeerCheck {
            state: std::sync::Mutex::default(),
            verdict: std::sync::atomic::AtomicU8::new(UNDECIDED),
            refuse: Box::new(refuse),
        })
    }

    /// Whether media may pass.
    pub fn passes(&self) -> bool {
        self.verdict.load(std::sync::atomic::Ordering::Acquire) == VERIFIED
    }

    /// Lets media pass as if verified (tests of what webrtcbin does with
    /// media let in early).
    #[cfg(test)]
    pub fn pass_unchecked(&self) {
        self.verdict.store(VERIFIED, std::sync::atomic::Ordering::Release);
    }

    /// The peer's description (offer or answer) was applied.
    pub fn described(&self, sdp: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.expected = Some(fingerprints(sdp));
        self.decide(&st);
    }

    /// The handshake showed the peer's certificate.
    pub fn shown(&self, pem: String) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.shown = Some(pem);
        self.decide(&st);
    }

    fn decide(&self, st: &CheckState) {
        use std::sync::atomic::Ordering;
        let (Some(want), Some(pem)) = (&st.expected, &st.shown) else { return };
        if self.verdict.load(Ordering::Acquire) != UNDECIDED {
            return; // a later renegotiation does not redo the handshake
        }
        if matches(pem, want) {
            self.verdict.store(VERIFIED, Ordering::Release);
        } else {
            self.verdict.store(REFUSED, Ordering::Release);
            (self.refuse)(format!(
                "the peer's DTLS certificate is not the one its description names ({} fingerprints signalled)",
                want.len()
            ));
        }
    }
}

/// Hands every certificate a DTLS decoder of `webrtc` receives to `check`
/// (from the handshake's thread, before the handshake completes).
pub fn enforce_fingerprint(webrtc: &gst::Element, check: std::sync::Arc<PeerCheck>) {
    let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else { return };
    bin.connect_deep_element_added(move |_, _, el| {
        if el.factory().is_none_or(|f| f.name() != "dtlsdec") {
            return;
        }
        let check = check.clone();
        el.connect_notify(Some("peer-pem"), move |dec, _| {
            check.shown(dec.property::<Option<String>>("peer-pem").unwrap_or_default());
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
    fn media_waits_for_both_the_description_and_the_certificate_in_either_order() {
        let (a, b) = (ecdsa().unwrap(), ecdsa().unwrap());
        let sdp = |c: &Certificate| format!("v=0\r\na=fingerprint:{}\r\n", c.fingerprint);
        let refusals = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let check = || {
            let r = refusals.clone();
            PeerCheck::new(move |_| {
                r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let early = check();
        early.shown(a.pem.clone());
        assert!(!early.passes(), "a handshake before the answer waits for it");
        early.described(&sdp(&a));
        assert!(early.passes());
        let late = check();
        late.described(&sdp(&a));
        assert!(!late.passes(), "nothing before the handshake");
        late.shown(a.pem.clone());
        assert!(late.passes());
        late.described(&sdp(&b));
        assert!(late.passes(), "a renegotiation does not redo the handshake");
        assert_eq!(refusals.load(std::sync::atomic::Ordering::SeqCst), 0);
        let impostor = check();
        impostor.shown(b.pem.clone());
        impostor.described(&sdp(&a));
        assert!(!impostor.passes());
        impostor.described(&sdp(&b));
        assert!(!impostor.passes(), "refused for good");
        let unsigned = check();
        unsigned.described("v=0\r\n");
        unsigned.shown(a.pem.clone());
        assert!(!unsigned.passes(), "a description without a fingerprint matches nothing");
        assert_eq!(refusals.load(std::sync::atomic::Ordering::SeqCst), 2);
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
