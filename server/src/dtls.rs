//! DTLS for every viewer through OpenSSL (DTLS 1.2), so that clients with RSA certificates can
//! connect.
//!
//! str0m 0.25's default DTLS (dimpl, in every backend but `openssl`) accepts only ECDSA client
//! certificates: its CertificateRequest offers ECDSA alone, and a client holding an RSA
//! certificate (GStreamer's webrtcbin, the default of many non-browser WebRTC stacks) sends none,
//! so the handshake fails with "no client certificate received". str0m's own OpenSSL backend
//! (`str0m-openssl`) is not published for 0.25, so this is its DTLS part (from str0m-openssl 0.6,
//! MIT/Apache-2.0) on str0m 0.25's `DtlsProvider` trait. Only DTLS changes: SRTP, SHA and the STUN
//! HMAC stay on str0m's default provider (aws-lc-rs). Our certificate stays ECDSA P-256.
//!
//! Needs the system OpenSSL (Debian `libssl-dev` at build time, `libssl3` at run time).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::{io, mem};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey};
use openssl::srtp::SrtpProfileId;
use openssl::ssl::{HandshakeError, MidHandshakeSslStream, ShutdownState, Ssl, SslContext};
use openssl::ssl::{SslContextBuilder, SslMethod, SslMode, SslOptions, SslStream, SslVerifyMode};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use camgate_core::str0m::crypto::dtls::{DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput};
use camgate_core::str0m::crypto::dtls::{DtlsProvider, DtlsVersion, KeyingMaterial};
use camgate_core::str0m::crypto::dtls::{ProtocolVersion, SrtpProfile};
use camgate_core::str0m::crypto::{from_feature_flags, CryptoError, CryptoProvider};

/// str0m's default provider with DTLS replaced by OpenSSL's.
pub fn crypto_provider() -> CryptoProvider {
    static DTLS: OpenSslDtls = OpenSslDtls;
    CryptoProvider {
        dtls_provider: &DTLS,
        ..from_feature_flags()
    }
}

/// The OpenSSL DTLS provider (DTLS 1.2 only: OpenSSL 3.0 has no DTLS 1.3).
#[derive(Debug)]
pub struct OpenSslDtls;

impl DtlsProvider for OpenSslDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        match generate_certificate() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("DTLS certificate: {e}");
                None
            }
        }
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        _now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        if dtls_version == DtlsVersion::Dtls13 {
            return Err(CryptoError::Other("OpenSSL DTLS does 1.2 only".into()));
        }
        // str0m's target MTU (str0m_proto::DATAGRAM_MTU_TARGET) when none is configured.
        let mtu = mtu.unwrap_or(1150);
        Ok(Box::new(Instance::new(cert, mtu).map_err(ossl)?))
    }
}

fn ossl(e: openssl::error::ErrorStack) -> CryptoError {
    CryptoError::Other(format!("OpenSSL: {e}"))
}

/// A self-signed ECDSA P-256 certificate, as browsers make.
fn generate_certificate() -> Result<DtlsCert, CryptoError> {
    let make = || -> Result<DtlsCert, openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let pkey = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
        b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
        b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
        b.set_not_after(Asn1Time::days_from_now(365)?.as_ref())?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "camgate")?;
        let name = name.build();
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&pkey)?;
        b.sign(&pkey, MessageDigest::sha256())?;
        Ok(DtlsCert {
            certificate: b.build().to_der()?,
            private_key: pkey.private_key_to_der()?,
        })
    };
    make().map_err(ossl)
}

/// The datagrams OpenSSL reads and writes: in from str0m, out to str0m.
#[derive(Default)]
struct Datagrams {
    incoming: VecDeque<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
}

impl io::Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One datagram per read: DTLS records never span datagrams.
        let Some(d) = self.incoming.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl io::Write for Datagrams {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum State {
    Init(Ssl, Datagrams),
    Handshaking(MidHandshakeSslStream<Datagrams>),
    Established(SslStream<Datagrams>),
    Failed,
}

struct Instance {
    active: Option<bool>,
    state: State,
    /// Produced once when the handshake completes: keying material, profile, peer certificate.
    keying: Option<(Vec<u8>, SrtpProfile)>,
    peer_cert: Option<Vec<u8>>,
    connected_emitted: bool,
    application_data: VecDeque<Vec<u8>>,
    /// Application data written before the handshake completed.
    queued: VecDeque<Vec<u8>>,
    next_timeout: Option<Instant>,
    close_notify_received: bool,
    close_notify_emitted: bool,
    close_notify_sent: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSslDtlsInstance").finish()
    }
}

const SRTP_PROFILES: &str = "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80";

fn context(cert: &DtlsCert) -> Result<SslContext, openssl::error::ErrorStack> {
    let mut ctx = SslContextBuilder::new(SslMethod::dtls())?;
    ctx.set_cipher_list("ECDHE+AESGCM:DHE+AESGCM:ECDHE+AES256:DHE+AES256")?;
    ctx.set_tlsext_use_srtp(SRTP_PROFILES)?;
    // A certificate is required, any kind (RSA or ECDSA), self-signed: it is authenticated by
    // str0m against the SDP's a=fingerprint, not by a CA.
    ctx.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_ok, _ctx| true,
    );
    ctx.set_private_key(PKey::private_key_from_der(&cert.private_key)?.as_ref())?;
    ctx.set_certificate(X509::from_der(&cert.certificate)?.as_ref())?;
    ctx.set_options(SslOptions::SINGLE_ECDH_USE | SslOptions::NO_DTLSV1 | SslOptions::NO_QUERY_MTU);
    // After the handshake a viewer's DTLS is idle (media is SRTP): no buffers held meanwhile.
    ctx.set_mode(SslMode::RELEASE_BUFFERS);
    Ok(ctx.build())
}

/// The context of `cert`, made once: every viewer has the server's one certificate, and a
/// context of its own (key, certificate, cipher and SRTP lists) cost each viewer memory.
fn shared_context(cert: &DtlsCert) -> Result<SslContext, openssl::error::ErrorStack> {
    static LAST: Mutex<Option<(Vec<u8>, SslContext)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((der, ctx)) = &*last {
        if *der == cert.certificate {
            return Ok(ctx.clone());
        }
    }
    let ctx = context(cert)?;
    *last = Some((cert.certificate.clone(), ctx.clone()));
    Ok(ctx)
}

impl Instance {
    fn new(cert: &DtlsCert, mtu: usize) -> Result<Self, openssl::error::ErrorStack> {
        let ctx = shared_context(cert)?;
        let mut ssl = Ssl::new(&ctx)?;
        ssl.set_mtu(mtu as u32)?;
        Ok(Instance {
            active: None,
            state: State::Init(ssl, Datagrams::default()),
            keying: None,
            peer_cert: None,
            connected_emitted: false,
            application_data: VecDeque::new(),
            queued: VecDeque::new(),
            next_timeout: None,
            close_notify_received: false,
            close_notify_emitted: false,
            close_notify_sent: false,
        })
    }

    fn io(&mut self) -> Option<&mut Datagrams> {
        match &mut self.state {
            State::Init(_, d) => Some(d),
            State::Handshaking(s) => Some(s.get_mut()),
            State::Established(s) => Some(s.get_mut()),
            State::Failed => None,
        }
    }

    fn handshaking(&self) -> bool {
        matches!(self.state, State::Init(..) | State::Handshaking(_))
    }

    /// Drives the handshake as far as the datagrams received allow.
    fn handshake(&mut self) -> Result<(), DtlsImplError> {
        let result = match mem::replace(&mut self.state, State::Failed) {
            State::Init(ssl, d) => {
                if self.active == Some(true) {
                    ssl.connect(d)
                } else {
                    ssl.accept(d)
                }
            }
            State::Handshaking(mid) => mid.handshake(),
            other => {
                self.state = other;
                return Ok(());
            }
        };
        match result {
            Ok(stream) => {
                // The client's key type shows which clients need this provider (RSA).
                let peer_key = stream
                    .ssl()
                    .peer_certificate()
                    .and_then(|c| c.public_key().ok())
                    .map(|k| {
                        let kind = match k.id() {
                            Id::RSA => "RSA".to_string(),
                            Id::EC => "EC".to_string(),
                            other => format!("{other:?}"),
                        };
                        format!("{kind}-{}", k.bits())
                    });
                tracing::debug!(
                    version = stream.ssl().version_str(),
                    cipher = stream.ssl().current_cipher().map(|c| c.name()),
                    peer_key = peer_key.as_deref().unwrap_or("none"),
                    // Read by benches/ to report the negotiated profile on the server's side.
                    srtp = stream.ssl().selected_srtp_profile().map(|p| p.name()),
                    "DTLS established (OpenSSL)"
                );
                let exported = export(&stream);
                self.state = State::Established(stream);
                let (keying, profile, cert) = exported.map_err(|e| {
                    tracing::info!("DTLS: {e}");
                    crypto_failed()
                })?;
                self.keying = Some((keying, profile));
                self.peer_cert = Some(cert);
                Ok(())
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                self.state = State::Handshaking(mid);
                Ok(())
            }
            Err(HandshakeError::SetupFailure(e)) => {
                tracing::info!("DTLS setup failed: {e}");
                Err(crypto_failed())
            }
            Err(HandshakeError::Failure(mid)) => {
                // The alert OpenSSL wrote (if any) is lost with the stream: the peer times out.
                tracing::info!("DTLS handshake failed: {}", mid.error());
                Err(crypto_failed())
            }
        }
    }

    fn flush_queued(&mut self) -> Result<(), DtlsImplError> {
        while let Some(data) = self.queued.pop_front() {
            self.write(&data)?;
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), DtlsImplError> {
        use io::Write;
        let State::Established(s) = &mut self.state else {
            return Err(crypto_failed());
        };
        s.write_all(data).map_err(|_| crypto_failed())
    }

    fn read_application_data(&mut self) -> Result<(), DtlsImplError> {
        use io::Read;
        let State::Established(s) = &mut self.state else {
            return Ok(());
        };
        let mut buf = vec![0; 2048];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    if s.get_shutdown().contains(ShutdownState::RECEIVED) {
                        self.close_notify_received = true;
                        if !self.close_notify_sent {
                            let _ = s.shutdown();
                            self.close_notify_sent = true;
                        }
                    }
                    return Ok(());
                }
                Ok(n) => self.application_data.push_back(buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => return Err(crypto_failed()),
            }
        }
    }
}

fn crypto_failed() -> DtlsImplError {
    DtlsImplError::CryptoError(dimpl::CryptoError::OperationFailed(
        dimpl::CryptoOperation::Decrypt,
    ))
}

type Exported = (Vec<u8>, SrtpProfile, Vec<u8>);

fn export(stream: &SslStream<Datagrams>) -> Result<Exported, String> {
    let ssl = stream.ssl();
    let cert = ssl
        .peer_certificate()
        .ok_or("no client certificate")?
        .to_der()
        .map_err(|e| e.to_string())?;
    let profile = match ssl.selected_srtp_profile().map(|p| p.id()) {
        Some(SrtpProfileId::SRTP_AES128_CM_SHA1_80) => SrtpProfile::AES128_CM_SHA1_80,
        Some(SrtpProfileId::SRTP_AEAD_AES_128_GCM) => SrtpProfile::AEAD_AES_128_GCM,
        Some(SrtpProfileId::SRTP_AEAD_AES_256_GCM) => SrtpProfile::AEAD_AES_256_GCM,
        _ => return Err("no SRTP profile negotiated".into()),
    };
    let mut keying = vec![0; profile.keying_material_len()];
    ssl.export_keying_material(&mut keying, "EXTRACTOR-dtls_srtp", None)
        .map_err(|e| e.to_string())?;
    Ok((keying, profile, cert))
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.active = Some(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        // str0m nudges an active instance with an empty packet; to OpenSSL an empty read is EOF.
        if packet.is_empty() {
            return self.handle_timeout(Instant::now());
        }
        let Some(io) = self.io() else {
            return Err(crypto_failed());
        };
        if io.incoming.len() > 32 {
            return Err(DtlsImplError::ReceiveQueueFull);
        }
        io.incoming.push_back(packet.to_vec());
        if self.handshaking() {
            self.handshake()?;
            if self.handshaking() {
                self.next_timeout = Some(Instant::now() + Duration::from_millis(500));
                return Ok(());
            }
            self.flush_queued()?;
        }
        self.read_application_data()
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let packet = self
            .io()
            .and_then(|io| io.outgoing.pop_front())
            .filter(|p| p.len() <= buf.len());
        if let Some(p) = packet {
            buf[..p.len()].copy_from_slice(&p);
            return DtlsOutput::Packet(&buf[..p.len()]);
        }
        if let Some(t) = self.next_timeout.take() {
            return DtlsOutput::Timeout(t);
        }
        if matches!(self.state, State::Established(_)) && !self.connected_emitted {
            self.connected_emitted = true;
            return DtlsOutput::Connected;
        }
        if let Some(cert) = self.peer_cert.take_if(|c| c.len() <= buf.len()) {
            buf[..cert.len()].copy_from_slice(&cert);
            return DtlsOutput::PeerCert(&buf[..cert.len()]);
        }
        if let Some((km, profile)) = self.keying.take_if(|(k, _)| k.len() <= buf.len()) {
            return DtlsOutput::KeyingMaterial(KeyingMaterial::new(&km), profile);
        }
        if self.close_notify_received && !self.close_notify_emitted {
            self.close_notify_emitted = true;
            return DtlsOutput::CloseNotify;
        }
        if let Some(d) = self.application_data.pop_front() {
            if d.len() <= buf.len() {
                buf[..d.len()].copy_from_slice(&d);
                return DtlsOutput::ApplicationData(&buf[..d.len()]);
            }
        }
        DtlsOutput::Timeout(Instant::now() + Duration::from_secs(3600))
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        // The client's first flight (ClientHello) needs no input. Retransmissions are left to
        // the peer: as the server (camgate's usual role) OpenSSL resends its last flight when
        // the client resends its own.
        if matches!(self.state, State::Init(..)) && self.active == Some(true) {
            self.handshake()?;
        }
        if self.handshaking() {
            self.next_timeout = Some(now + Duration::from_millis(500));
        }
        Ok(())
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        if self.handshaking() {
            self.queued.push_back(data.to_vec());
        } else {
            self.flush_queued()?;
            self.write(data)?;
        }
        Ok(data.len())
    }

    fn is_active(&self) -> bool {
        self.active.unwrap_or(false)
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        matches!(self.state, State::Established(_)).then_some(ProtocolVersion::DTLS1_2)
    }

    fn is_closing(&self) -> bool {
        self.close_notify_sent || self.close_notify_received
    }

    fn is_closed(&self) -> bool {
        let drained = match &self.state {
            State::Established(s) => s.get_ref().outgoing.is_empty(),
            _ => true,
        };
        self.close_notify_sent && drained
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        if let State::Established(s) = &mut self.state {
            let _ = s.shutdown();
        }
        self.close_notify_sent = true;
        Ok(())
    }
}
