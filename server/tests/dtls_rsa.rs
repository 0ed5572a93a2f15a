//! DTLS with a client whose certificate is RSA (GStreamer webrtcbin's default, and that of other
//! non-browser WebRTC stacks): camgate's OpenSSL DTLS (`camgate::dtls`) completes the handshake,
//! str0m's default DTLS does not. Two str0m peers in memory; the client's DTLS is OpenSSL too,
//! because str0m's default cannot hold an RSA certificate. The browser-test counterpart with a
//! real webrtcbin is tests/browser/webrtcbin.test.mjs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A self-signed RSA-2048 certificate, like the one webrtcbin 1.22 makes for itself.
fn rsa_cert() -> DtlsCert {
    let pkey = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_not_before(Asn1Time::days_from_now(0).unwrap().as_ref())
        .unwrap();
    b.set_not_after(Asn1Time::days_from_now(30).unwrap().as_ref())
        .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "webrtcbin-like").unwrap();
    let name = name.build();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.sign(&pkey, MessageDigest::sha256()).unwrap();
    DtlsCert {
        certificate: b.build().to_der().unwrap(),
        private_key: pkey.private_key_to_der().unwrap(),
    }
}

/// Whether a client with an RSA certificate gets DTLS-connected to an ICE-lite server (camgate's
/// role) whose crypto is `server_crypto`, within 5 s of simulated time.
fn rsa_client_connects(server_crypto: CryptoProvider) -> bool {
    let mut now = Instant::now();
    let client_addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let server_addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
    let mut client = Rtc::builder()
        .set_crypto_provider(Arc::new(camgate::dtls::crypto_provider()))
        .set_dtls_cert(rsa_cert())
        .build(now);
    let mut server = Rtc::builder()
        .set_ice_lite(true)
        .set_crypto_provider(Arc::new(server_crypto))
        .build(now);
    client.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
    server.add_local_candidate(Candidate::host(server_addr, "udp").unwrap());

    let mut change = client.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().expect("an offer");
    let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
    let answer = server.sdp_api().accept_offer(offer).unwrap();
    client.sdp_api().accept_answer(pending, answer).unwrap();

    let peers = [(client_addr, server_addr), (server_addr, client_addr)];
    let mut connected = [false, false];
    let deadline = now + Duration::from_secs(5);
    while now < deadline && connected != [true, true] {
        let mut rtcs = [client, server];
        for i in 0..2 {
            let mut sent = Vec::new();
            loop {
                match rtcs[i].poll_output() {
                    Ok(Output::Transmit(t)) => sent.push(t.contents.to_vec()),
                    Ok(Output::Event(Event::Connected)) => connected[i] = true,
                    Ok(Output::Event(_)) => {}
                    Ok(Output::Timeout(_)) => break,
                    Err(e) => {
                        eprintln!("peer {i}: {e}");
                        return false;
                    }
                }
            }
            let (from, to) = peers[i];
            for data in sent {
                let input =
                    Input::Receive(now, Receive::new(Protocol::Udp, from, to, &data).unwrap());
                if rtcs[1 - i].handle_input(input).is_err() {
                    return false;
                }
            }
        }
        [client, server] = rtcs;
        now += Duration::from_millis(10);
        for rtc in [&mut client, &mut server] {
            if rtc.handle_input(Input::Timeout(now)).is_err() {
                return false;
            }
        }
    }
    eprintln!("connected {connected:?}");
    connected == [true, true]
}

#[test]
fn openssl_dtls_accepts_an_rsa_client_certificate() {
    assert!(rsa_client_connects(camgate::dtls::crypto_provider()));
}

/// The reason for `camgate::dtls`: str0m's default DTLS refuses the same client. If this starts
/// failing, str0m accepts RSA itself and camgate could go back to it.
#[test]
fn str0m_default_dtls_refuses_an_rsa_client_certificate() {
    assert!(!rsa_client_connects(str0m::crypto::from_feature_flags()));
}
