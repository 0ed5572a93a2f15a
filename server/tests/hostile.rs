//! Clients that misbehave on the web ports must not hold the server: a slow client is closed,
//! a flood of idle connections does not stop others from being served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Camgate;

#[test]
fn a_client_that_never_finishes_its_request_is_closed() {
    let cg = Camgate::start(&[]);
    let mut slow = TcpStream::connect(cg.http).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // and never the blank line
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes the connection without an answer");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
}

#[test]
fn a_flood_of_idle_connections_does_not_stop_the_api() {
    let cg = Camgate::start(&[]);
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(cg.http).ok())
        .collect();
    assert!(idle.len() >= 250);
    let started = Instant::now();
    let (status, _) = cg.request("GET", "/api/streams", None);
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    drop(idle);
}

/// Hundreds of signaling sessions at once: every one is served (`getUserData`), and the HTTP
/// side keeps answering meanwhile.
#[test]
fn a_flood_of_websocket_sessions_is_served_and_does_not_stall_the_rest() {
    let cg = Camgate::start(&[]);
    let mut sessions = Vec::new();
    for i in 0..200 {
        let mut ws = TcpStream::connect(cg.ws).unwrap();
        ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let upgrade = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSA{:03}==\r\n\r\n",
            i % 1000
        );
        ws.write_all(upgrade.as_bytes()).unwrap();
        sessions.push(ws);
    }
    // Each upgrade is answered 101; then a masked text frame `connection` gets `getUserData`.
    let connection = br#"{"message":"connection","data":[{"appKey":"defaultApp"}]}"#;
    let mut frame = vec![0x81, 0x80 | connection.len() as u8, 1, 2, 3, 4];
    frame.extend(
        connection
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
    );
    let started = Instant::now();
    for ws in &mut sessions {
        let mut head = [0u8; 12];
        ws.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101");
        ws.write_all(&frame).unwrap();
    }
    let (status, _) = cg.request("GET", "/api/streams", None);
    assert_eq!(status, 200);
    let mut served = 0;
    for ws in &mut sessions {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("getUserData") {
            match ws.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        if String::from_utf8_lossy(&got).contains("getUserData") {
            served += 1;
        }
    }
    assert_eq!(served, 200, "every session got getUserData");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Raw bytes on the web port: garbage gets 400, an endless header block 431, a huge body 413,
/// and the server answers the next client as usual.
#[test]
fn garbage_and_oversized_http_requests_get_an_error_and_nothing_else() {
    let cg = Camgate::start(&[]);
    let raw = |bytes: &[u8]| {
        let mut s = TcpStream::connect(cg.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(raw(b"\x00\xff\x13garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    // A few long header lines that never end the head: past 16 KiB it is refused.
    let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
    for _ in 0..20 {
        endless.extend_from_slice(b"X-Filler: ");
        endless.extend_from_slice(&[b'a'; 1000]);
        endless.extend_from_slice(b"\r\n");
    }
    assert!(raw(&endless).starts_with("HTTP/1.1 431"));
    let huge = b"POST /rest-api/rtsp/startup HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{";
    assert!(raw(huge).starts_with("HTTP/1.1 413"));
    assert_eq!(cg.request("GET", "/api/streams", None).0, 200);
}

/// Past the open files limit `accept` fails (EMFILE). camgate keeps a spare descriptor for
/// that: it frees it, takes the connection and closes it, so a new client is refused at once
/// (it reads the end of the connection) instead of hanging in the listen queue until the
/// kernel drops its SYNs. Once the flood is gone, new clients are served again. Polling is
/// edge-triggered: a listener is reported once per new connection, so every queued connection
/// must be taken (accepted or refused) or the listener stops for good.
#[test]
fn at_the_open_files_limit_new_clients_are_refused_at_once_then_served_again() {
    let cg = Camgate::start_with_open_files_limit(&[], 64);
    // Idle connections until one is closed by camgate at once rather than held.
    let mut flood = Vec::new();
    let mut refused = None;
    for _ in 0..300 {
        let mut s = match TcpStream::connect_timeout(&cg.http, Duration::from_millis(500)) {
            Ok(s) => s,
            Err(e) => panic!(
                "connect {} timed out ({e}): the client waits in a full queue instead of \
                 being refused",
                flood.len()
            ),
        };
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let started = Instant::now();
        match s.read(&mut [0u8; 1]) {
            // Held open: camgate took it and waits for a request.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                flood.push(s)
            }
            // Closed (FIN or reset) by camgate.
            _ => {
                refused = Some(started.elapsed());
                break;
            }
        }
    }
    let refused_after =
        refused.unwrap_or_else(|| panic!("{} connections held, none refused", flood.len()));
    assert!(flood.len() > 30, "only {} connections", flood.len());
    // The next clients are refused too, each at once (not one per loop turn or timeout).
    for _ in 0..20 {
        let mut s = TcpStream::connect_timeout(&cg.ws, Duration::from_millis(500))
            .expect("refused, not left in the queue");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let started = Instant::now();
        let got = s.read(&mut [0u8; 1]);
        assert!(
            !matches!(&got, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "a client at the limit was held: {got:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("open files limit 64"))
    {
        assert!(
            Instant::now() < deadline,
            "no warning naming the limit: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
        log.extend(cg.logs());
    }
    println!("refused after {refused_after:?}");
    let flooded = flood.len();
    drop(flood);

    // A new client is served at once (well before the 10 s slow-client timeout could free
    // descriptors), on the listener that ran out and on the others.
    let started = Instant::now();
    for addr in [cg.http, cg.ws] {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{addr} accepts no connection after the flood: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /api/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "{addr}: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(cg.request("GET", "/api/streams", None).0, 200);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "served again after {waited:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log
        .iter()
        .any(|l| l.contains("accepting connections again"))
    {
        assert!(Instant::now() < deadline, "no 'accepting again': {log:?}");
        std::thread::sleep(Duration::from_millis(50));
        log.extend(cg.logs());
    }
    // One warning per listener and way of coping (closing at once, or, for a moment when the
    // spare was not at hand, leaving them queued), not one per connection.
    let mut warnings: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("accept failed"))
        .map(|l| l.split_once(" WARN ").map_or(l.as_str(), |(_, rest)| rest))
        .collect();
    let total = warnings.len();
    warnings.sort();
    warnings.dedup();
    assert_eq!(total, warnings.len(), "repeated warnings: {log:?}");
    assert!(log.iter().any(|l| l.contains("closed at once")), "{log:?}");
    println!("{flooded} connections at a limit of 64 files; served again after {waited:?}");
}
