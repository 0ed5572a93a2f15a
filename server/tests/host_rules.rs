//! `allowed_hosts` / `denied_hosts` hold on every connection camgate makes, not only on the URL
//! a viewer asks for: the real binary against a camera that redirects elsewhere, and against a
//! name that resolves to a denied address. The forbidden targets are real listeners that must
//! see no connection at all.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{failed_info, play, Camgate};

/// A camera that answers OPTIONS and redirects DESCRIBE to `location` (as some NVRs send
/// viewers to the recorder that holds the channel), on a thread of its own.
fn redirecting_camera(location: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let location = location.clone();
            std::thread::spawn(move || answer(conn, &location));
        }
    });
    addr
}

fn answer(conn: TcpStream, location: &str) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let (mut method, mut cseq) = (String::new(), String::new());
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        let l = line.trim_end().to_owned();
        line.clear();
        if method.is_empty() {
            method = l.split(' ').next().unwrap_or_default().to_owned();
        } else if let Some(v) = l.strip_prefix("CSeq:") {
            cseq = v.trim().to_owned();
        } else if l.is_empty() {
            let reply = if method == "DESCRIBE" {
                format!("RTSP/1.0 302 Moved Temporarily\r\nCSeq: {cseq}\r\nLocation: {location}\r\n\r\n")
            } else {
                format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n")
            };
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
            method.clear();
        }
    }
}

/// A listener camgate must never reach: how many connections it accepted.
struct Forbidden(TcpListener);

impl Forbidden {
    fn bind(addr: &str) -> Forbidden {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        Forbidden(listener)
    }

    fn addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }

    fn accepted(&self) -> usize {
        std::iter::from_fn(|| self.0.accept().ok()).count()
    }
}

/// Waits (bounded) for a log line containing all of `words`.
fn logged(cg: &Camgate, log: &mut Vec<String>, words: &[&str]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        log.extend(cg.logs());
        if log.iter().any(|l| words.iter().all(|w| l.contains(w))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_redirect_outside_allowed_hosts_is_not_followed() {
    // 127.0.0.3 is loopback too, but not in the allow list.
    let target = Forbidden::bind("127.0.0.3:0");
    let camera = redirecting_camera(format!(
        "rtsp://admin:pw-in-location@{}/channel1",
        target.addr()
    ));
    let cg = Camgate::start(&["--no-demo", "--allowed-host", "127.0.0.1"]);
    let info = failed_info(&mut play(&cg, &format!("rtsp://{camera}/cam")));
    assert_eq!(info, "camera host not allowed");
    let mut log = Vec::new();
    assert!(
        logged(&cg, &mut log, &["camera host not allowed", "127.0.0.3"]),
        "the target is logged: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("pw-in-location")),
        "no credentials in the log"
    );
    assert_eq!(
        target.accepted(),
        0,
        "camgate connected to the forbidden host"
    );
}

#[test]
fn a_name_that_resolves_to_a_denied_address_is_not_connected_to() {
    // "localhost" is allowed by name, but it resolves into a denied block.
    let target = Forbidden::bind("127.0.0.1:0");
    let port = target.addr().port();
    let cg = Camgate::start(&[
        "--no-demo",
        "--allowed-host",
        "localhost",
        "--denied-host",
        "127.0.0.0/8",
        "--denied-host",
        "::1",
    ]);
    let info = failed_info(&mut play(&cg, &format!("rtsp://localhost:{port}/cam")));
    assert_eq!(info, "camera host not allowed");
    let mut log = Vec::new();
    assert!(
        logged(&cg, &mut log, &["camera host not allowed", "localhost"]),
        "{log:#?}"
    );
    assert_eq!(
        target.accepted(),
        0,
        "camgate connected to a denied address"
    );
}

#[test]
fn a_redirect_inside_allowed_hosts_is_followed() {
    // The same camera, redirecting within the allow list: camgate connects there.
    let target = Forbidden::bind("127.0.0.1:0");
    let camera = redirecting_camera(format!("rtsp://{}/channel1", target.addr()));
    let cg = Camgate::start(&["--no-demo", "--allowed-host", "127.0.0.1"]);
    let _ws = play(&cg, &format!("rtsp://{camera}/cam"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while target.accepted() == 0 {
        assert!(Instant::now() < deadline, "the redirect was not followed");
        std::thread::sleep(Duration::from_millis(50));
    }
}
