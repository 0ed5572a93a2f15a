//! TLS for `rtsps://` cameras: a sans-IO rustls `ClientConnection` (ring provider) per camera
//! connection, and the certificate check the operator chose (`rtsps_verify`, per-camera pins).
//!
//! TLS is a transport here: `TcpConn` runs the session and the gateway sees plaintext RTSP.
//! When a check fails the session keeps the fingerprint of the certificate the camera
//! presented, so the stream's FAILED info can tell the operator what to pin.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How camera certificates are checked (`rtsps_verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspsVerify {
    /// A certificate from a root in the system store, for the URL's host name; a pin, if the
    /// camera has one, must match as well.
    System,
    /// A camera with a pin: the certificate must be the pinned one (self-signed is fine, host
    /// name and dates are not checked, as with MediaMTX's `sourceFingerprint`). Without: as
    /// `System`.
    PinnedOrSystem,
    /// A camera with a pin: as `PinnedOrSystem`. Without: any certificate (no protection against
    /// a man in the middle; logged as a warning).
    None,
}

/// A certificate's SHA-256 fingerprint (`tls_fingerprint`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin(pub [u8; 32]);

impl CertPin {
    /// `sha256:` followed by 64 hex digits, with or without colons between bytes (as
    /// `openssl x509 -fingerprint -sha256` prints them); the `sha256:` prefix may be left out.
    pub fn parse(s: &str) -> Result<CertPin, String> {
        let s = s.trim();
        let hex = match s.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &s[7..],
            _ => s,
        };
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        let bad = || format!("{s:?} is not a SHA-256 fingerprint (sha256: and 64 hex digits)");
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(CertPin(out))
    }

    /// The fingerprint of a DER certificate.
    pub fn of(cert: &[u8]) -> CertPin {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        CertPin(out)
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What the loops need to open TLS sessions with cameras; made once, shared by the workers.
pub struct CameraTls {
    provider: Arc<CryptoProvider>,
    verify: RtspsVerify,
    /// Pins by (lower-case host, port) of the camera URL.
    pins: HashMap<(String, u16), CertPin>,
    /// The system store's verifier; `None` when the store had no usable root.
    system: Option<Arc<WebPkiServerVerifier>>,
}

impl fmt::Debug for CameraTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraTls")
            .field("verify", &self.verify)
            .field("pins", &self.pins.len())
            .field("system_roots", &self.system.is_some())
            .finish()
    }
}

impl CameraTls {
    /// Loads the system's root certificates (it reads files: call it once, at start).
    pub fn new(verify: RtspsVerify, pins: HashMap<(String, u16), CertPin>) -> CameraTls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(loaded.certs);
        let system = if added == 0 {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        };
        let pins = pins
            .into_iter()
            .map(|((host, port), pin)| ((host.to_ascii_lowercase(), port), pin))
            .collect();
        CameraTls {
            provider,
            verify,
            pins,
            system,
        }
    }

    /// Roots found in the system store (0: only pinned cameras, or `none`, can connect).
    pub fn has_system_roots(&self) -> bool {
        self.system.is_some()
    }

    /// A client session for the camera at `host`:`port` (as in its URL).
    pub fn session(&self, host: &str, port: u16) -> Result<CameraTlsSession, String> {
        let pin = self.pins.get(&(host.to_ascii_lowercase(), port)).copied();
        let verifier = Arc::new(CameraVerifier {
            provider: self.provider.clone(),
            verify: self.verify,
            pin,
            system: self.system.clone(),
            presented: Mutex::new(None),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| "host name not usable for TLS".to_owned())?;
        let conn =
            ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS setup: {e}"))?;
        Ok(CameraTlsSession { conn, verifier })
    }
}

/// One camera connection's TLS session.
pub struct CameraTlsSession {
    pub conn: ClientConnection,
    verifier: Arc<CameraVerifier>,
}

impl CameraTlsSession {
    /// What to tell the operator about a failed session: the presented certificate's
    /// fingerprint, and how to trust it, when the certificate was the problem.
    pub fn describe_failure(&self, error: &rustls::Error) -> String {
        let presented = *self
            .verifier
            .presented
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match (presented, error) {
            (Some(fp), rustls::Error::InvalidCertificate(why)) => {
                let problem = match (self.verifier.pin, why) {
                    (Some(pin), _) if pin != fp => {
                        "does not match the stream's tls_fingerprint".to_owned()
                    }
                    _ => format!("is not trusted ({})", cert_error(why)),
                };
                format!(
                    "the camera's certificate {fp} {problem}; if it is the camera's own, \
                     set tls_fingerprint = \"{fp}\" in its [streams.NAME]"
                )
            }
            // What a plain RTSP server answers to a ClientHello is no TLS record.
            (_, rustls::Error::InvalidMessage(_)) => format!(
                "handshake failed: {error} (does the camera serve plain rtsp:// on this port?)"
            ),
            _ => format!("handshake failed: {error}"),
        }
    }
}

fn cert_error(e: &rustls::CertificateError) -> String {
    match e {
        rustls::CertificateError::UnknownIssuer => "unknown issuer, e.g. self-signed".into(),
        rustls::CertificateError::NotValidForName
        | rustls::CertificateError::NotValidForNameContext { .. } => {
            "not valid for the URL's host".into()
        }
        rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
            "expired".into()
        }
        rustls::CertificateError::Other(o) if o.to_string().contains("no system root") => {
            "no root certificates in the system store".into()
        }
        other => format!("{other:?}"),
    }
}

#[derive(Debug)]
struct NoSystemRoots;

impl fmt::Display for NoSystemRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no system root certificates")
    }
}

impl std::error::Error for NoSystemRoots {}

#[derive(Debug)]
struct CameraVerifier {
    provider: Arc<CryptoProvider>,
    verify: RtspsVerify,
    pin: Option<CertPin>,
    system: Option<Arc<WebPkiServerVerifier>>,
    /// The end-entity certificate's fingerprint, for the failure report.
    presented: Mutex<Option<CertPin>>,
}

impl CameraVerifier {
    fn check_system(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.system {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(NoSystemRoots))),
            )),
        }
    }
}

impl ServerCertVerifier for CameraVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = CertPin::of(end_entity);
        *self.presented.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        if let Some(pin) = self.pin {
            if pin != fp {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
            if self.verify != RtspsVerify::System {
                return Ok(ServerCertVerified::assertion());
            }
        }
        match self.verify {
            RtspsVerify::None if self.pin.is_none() => Ok(ServerCertVerified::assertion()),
            _ => self.check_system(end_entity, intermediates, server_name, ocsp, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The handshake must still prove the camera holds the pinned certificate's key.
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_in_the_forms_operators_paste() {
        let hex = "ab".repeat(32);
        let want = CertPin([0xab; 32]);
        assert_eq!(CertPin::parse(&format!("sha256:{hex}")).unwrap(), want);
        assert_eq!(CertPin::parse(&hex.to_uppercase()).unwrap(), want);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(CertPin::parse(&format!("SHA256:{colons}")).unwrap(), want);
        assert_eq!(want.to_string(), format!("sha256:{hex}"));
        assert!(CertPin::parse("sha256:abcd").is_err());
        assert!(CertPin::parse(&format!("sha256:{}", "zz".repeat(32))).is_err());
        assert!(CertPin::parse(&format!("sha1:{}", "ab".repeat(20))).is_err());
    }
}
