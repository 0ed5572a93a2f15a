//! The TLS server configuration for HTTPS and WSS: a configured PEM certificate and key, or a
//! self-signed certificate made at start (browsers must accept it once; its fingerprint is
//! logged so it can be checked).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Tls {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate, as `AB:CD:...`.
    pub fingerprint: String,
    pub self_signed: bool,
}

pub fn load(cert: Option<&Path>, key: Option<&Path>, ips: &[IpAddr]) -> Result<Tls, String> {
    // One process-wide provider: ring (no cmake/aws-lc in the build).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (chain, key, self_signed) = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("tls_cert {}: no certificate in it", cert.display()));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("tls_key {}: {e}", key.display()))?;
            (chain, key, false)
        }
        _ => {
            let (cert, key) = self_signed(ips)?;
            (vec![cert], key, true)
        }
    };
    let fingerprint = fingerprint(&chain[0]);
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("tls certificate/key: {e}"))?;
    // HTTP/1.1 only: WebSocket upgrades and our one-request connections need nothing more.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
        self_signed,
    })
}

fn self_signed(
    ips: &[IpAddr],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(
        ips.iter()
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| ip.to_string()),
    );
    names.sort();
    names.dedup();
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((certified.cert.der().clone(), PrivateKeyDer::Pkcs8(key)))
}

fn fingerprint(cert: &CertificateDer) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_config_builds_and_pem_files_load() {
        let tls = load(None, None, &["192.0.2.1".parse().unwrap()]).unwrap();
        assert!(tls.self_signed);
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);

        let certified = rcgen::generate_simple_self_signed(vec!["cam.test".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("camgate-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let tls = load(Some(&cert), Some(&key), &[]).unwrap();
        assert!(!tls.self_signed);
        assert!(
            load(Some(&key), Some(&key), &[]).is_err(),
            "a key is no certificate"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
