//! TLS for `wss://` sessions and `https://` media: one rustls client
//! configuration (ring crypto, the Mozilla web roots from `webpki-roots`,
//! plus any extra roots from [`ClientConfig::ca_file`]) shared by both.
//!
//! [`ClientConfig::ca_file`]: crate::ClientConfig::ca_file

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A shared rustls client configuration.
pub type TlsConfig = Arc<rustls::ClientConfig>;

/// Errors of building the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or parsed.
    #[error("cannot load CA file {0}: {1}")]
    CaFile(String, String),
    /// The CA file holds no PEM certificate.
    #[error("CA file {0} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificates(String),
    /// rustls refused the setup.
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// The built-in roots plus the PEM certificates of `ca_file`, if given.
///
/// # Errors
/// An unreadable CA file, one without certificates, or a certificate that
/// cannot be used as a trust anchor.
pub fn client_config(ca_file: Option<&Path>) -> Result<TlsConfig, TlsError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError::CaFile(shown.clone(), e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::CaFile(shown.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificates(shown));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::CaFile(shown.clone(), e.to_string()))?;
        }
    }
    // The provider is chosen explicitly so nothing depends on a
    // process-wide default (and aws-lc-rs is never needed).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The configuration with the built-in roots only (built once).
pub fn default_config() -> TlsConfig {
    static CFG: OnceLock<TlsConfig> = OnceLock::new();
    CFG.get_or_init(|| client_config(None).expect("built-in TLS configuration")).clone()
}

/// Runs the TLS handshake over `tcp`, verifying the certificate for `host`
/// (a DNS name or an IP address, without brackets or port).
///
/// # Errors
/// An invalid host name, or a failed handshake; see [`describe`].
pub async fn handshake(cfg: TlsConfig, host: &str, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad TLS server name {host:?}: {e}"))
    })?;
    tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await
}

/// A handshake error for humans: certificate problems say so, with a hint
/// about private CAs.
pub fn describe(err: &std::io::Error) -> String {
    let rustls_err = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::InvalidCertificate(ce)) => format!(
            "server certificate not trusted ({ce}); if the server uses a private CA, \
             pass its certificate with --ca-file / COURIER_CA_FILE (ClientConfig::ca_file)"
        ),
        Some(e) => format!("TLS error: {e}"),
        None => err.to_string(),
    }
}

/// Splits `host[:port]` (or `[v6][:port]`) into a bare host and a port.
pub fn host_port(authority: &str, default_port: u16) -> (String, u16) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(default_port);
        return (host.to_owned(), port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_owned(), p.parse().unwrap_or(default_port)),
        _ => (authority.to_owned(), default_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(host_port("h:7700", 80), ("h".into(), 7700));
        assert_eq!(host_port("chat.example.com", 443), ("chat.example.com".into(), 443));
        assert_eq!(host_port("[::1]:9", 443), ("::1".into(), 9));
        assert_eq!(host_port("[::1]", 443), ("::1".into(), 443));
    }

    #[test]
    fn default_config_builds_and_bad_ca_files_are_reported() {
        let _ = default_config();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        assert!(matches!(client_config(Some(&missing)), Err(TlsError::CaFile(..))));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(client_config(Some(&empty)), Err(TlsError::NoCertificates(..))));
    }
}
