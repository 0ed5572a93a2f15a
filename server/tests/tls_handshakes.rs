//! The rustls server side of HTTPS/WSS against a corpus of ClientHellos, replayed on the real
//! binary's TLS port: valid ones (rustls clients, TLS 1.3 and 1.2-only) get a ServerHello;
//! every truncation of them, and garbage (plaintext HTTP, SSLv2, oversized and empty records,
//! wrong content types, random bytes, a hello with no common cipher suite), get no ServerHello
//! and a closed connection; camgate serves HTTPS normally afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Camgate;

/// The first flight of a rustls client (its ClientHello record) for `versions`.
fn client_hello(versions: &[&'static rustls::SupportedProtocolVersion]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    assert_eq!(out[0], 0x16, "a handshake record");
    out
}

/// What camgate sent back to `input` before closing (or within `limit`), and whether it
/// closed. `half_close`: we end our side after `input` (an incomplete hello can only end so,
/// or by the 10 s request timeout); else camgate must close by itself. `until_bytes`: stop
/// reading once something came (a ServerHello is followed by a wait for our answer).
fn replay(
    addr: SocketAddr,
    input: &[u8],
    half_close: bool,
    until_bytes: bool,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The server may close before taking everything (garbage): a failed write is fine.
    let _ = s.write_all(input);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !(until_bytes && got.len() > 5) {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (got, true), // reset
        }
    }
    (got, false)
}

/// A TLS record of `content_type` holding `body`, as version 3.3.
fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// `hello` with its cipher suite list replaced by one suite nobody supports (0x0000, NULL).
fn without_common_suites(hello: &[u8]) -> Vec<u8> {
    // record(5) + handshake header(4) + version(2) + random(32), then session id.
    let sid = 5 + 4 + 2 + 32;
    let suites = sid + 1 + hello[sid] as usize;
    let n = u16::from_be_bytes([hello[suites], hello[suites + 1]]) as usize;
    let mut out = hello[..suites].to_vec();
    out.extend_from_slice(&[0, 2, 0, 0]);
    out.extend_from_slice(&hello[suites + 2 + n..]);
    // Fix the two lengths: the record's and the handshake message's.
    let shrink = n - 2;
    let rec = u16::from_be_bytes([out[3], out[4]]) as usize - shrink;
    out[3..5].copy_from_slice(&(rec as u16).to_be_bytes());
    let hs = (u32::from_be_bytes([0, out[6], out[7], out[8]]) as usize - shrink) as u32;
    out[6..9].copy_from_slice(&hs.to_be_bytes()[1..]);
    out
}

#[test]
fn client_hellos_valid_truncated_and_garbage() {
    let cg = Camgate::start(&["--no-demo"]);
    let addr = cg.https.expect("an HTTPS listener");
    let tls13 = client_hello(&[&rustls::version::TLS13]);
    let tls12 = client_hello(&[&rustls::version::TLS12]);

    // Valid: a ServerHello (a handshake record) comes back.
    for hello in [&tls13, &tls12] {
        let (got, _) = replay(addr, hello, false, true, Duration::from_secs(5));
        assert!(
            got.len() > 5 && got[0] == 0x16,
            "no ServerHello: {got:02x?}"
        );
    }

    // (name, bytes, incomplete: only our half-close ends it)
    let mut corpus: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for (name, hello) in [("tls13", &tls13), ("tls12", &tls12)] {
        // Truncated anywhere: inside the record header, the handshake header, the body.
        for cut in (1..hello.len())
            .step_by(11)
            .chain([1, 4, 5, 8, 9, hello.len() - 1])
        {
            corpus.push((format!("{name} cut at {cut}"), hello[..cut].to_vec(), true));
        }
    }
    let mut rng = camgate_testkit::Rng::new(7);
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        (
            "plaintext HTTP",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        // An SSLv2-style ClientHello (high bit length), as old scanners send.
        (
            "SSLv2 hello",
            vec![
                0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
            ]
            .into_iter()
            .chain(std::iter::repeat_n(0x41, 0x25))
            .collect(),
        ),
        ("oversized record", {
            let mut r = vec![0x16, 3, 1, 0xFF, 0xFF];
            r.extend(std::iter::repeat_n(0u8, 1000));
            r
        }),
        ("empty handshake record", record(0x16, &[])),
        ("application data first", record(0x17, b"hello")),
        ("alert first", record(0x15, &[2, 40])),
        ("change cipher spec first", record(0x14, &[1])),
        ("unknown content type", record(0x63, b"xyz")),
        ("handshake of another type", record(0x16, &[2, 0, 0, 0])),
        ("hello longer than its record", {
            let mut h = tls13.clone();
            h[7] = 0xFF;
            h
        }),
        ("no common cipher suite", without_common_suites(&tls13)),
        ("random", rng.bytes(3000)),
        (
            "random after a record header",
            [vec![0x16, 3, 3, 0x0B, 0xB8], rng.bytes(3000)].concat(),
        ),
    ];
    corpus.extend(garbage.into_iter().map(|(n, b)| {
        let incomplete = n == "hello longer than its record";
        (n.to_owned(), b, incomplete)
    }));

    for (name, input, incomplete) in &corpus {
        let (got, closed) = replay(addr, input, *incomplete, false, Duration::from_secs(5));
        assert!(closed, "{name}: the connection stays open");
        // Nothing but (at most) an alert: no ServerHello for an incomplete or bad hello.
        assert!(
            got.is_empty() || got[0] == 0x15,
            "{name}: answered {:02x?}",
            &got[..got.len().min(16)]
        );
    }
    // The two hellos: answered once, then the second (unexpected) one ends it.
    let two = [tls13.clone(), tls13.clone()].concat();
    let (got, closed) = replay(addr, &two, false, false, Duration::from_secs(5));
    assert!(closed);
    assert_eq!(got.first(), Some(&0x16));

    // And camgate is fine: a real HTTPS request is served.
    let r = cg.https_request_with("GET", "/", &[], None);
    assert_eq!(r.status, 200);
}
