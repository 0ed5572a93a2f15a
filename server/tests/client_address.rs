//! `rtsp_client_address`: camera connections leave from the configured local address (e.g. a
//! VPN interface's). Checked with a listener standing in for the camera, which sees the peer
//! address; 127.0.0.2 is a second loopback address Linux answers without any setup.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::Camgate;

/// Starts camgate with `args` and has it pull a camera that is only a listener on loopback:
/// the test plays the camera's side on the accepted connection.
fn pull_from_listener(args: &[&str]) -> (Camgate, TcpListener, u16) {
    let camera = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = camera.local_addr().unwrap().port();
    let cg = Camgate::start(args);
    let body = format!(r#"{{"uri":"rtsp://127.0.0.1:{port}/cam"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&body)).0,
        200
    );
    (cg, camera, port)
}

#[test]
fn camera_connections_come_from_the_configured_address() {
    let (_cg, camera, _) = pull_from_listener(&[
        "--rtsp-client-address",
        "127.0.0.2",
        "--rtsp-transport",
        "tcp",
    ]);
    camera.set_nonblocking(false).unwrap();
    let (conn, peer) = camera.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 7];
    std::io::Read::read_exact(&mut &conn, &mut first).unwrap();
    assert_eq!(&first, b"OPTIONS", "camgate speaks RTSP on it");
}

/// An IPv6 camera (an IPv6 literal in the URL) while `rtsp_client_address` is IPv4: the address
/// can't apply, so the connection leaves from the system's choice instead of failing; the
/// request line carries the bracketed literal.
#[test]
fn an_ipv6_camera_connects_whatever_the_ipv4_client_address() {
    let camera = TcpListener::bind("[::1]:0").unwrap();
    let port = camera.local_addr().unwrap().port();
    let cg = Camgate::start(&[
        "--rtsp-client-address",
        "127.0.0.2",
        "--rtsp-transport",
        "tcp",
    ]);
    let body = format!(r#"{{"uri":"rtsp://u:pw@[::1]:{port}/cam"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&body)).0,
        200
    );
    camera.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (conn, peer) = loop {
        match camera.accept() {
            Ok(c) => break c,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("camgate never connected to [::1]:{port}: {e}"),
        }
    };
    assert_eq!(peer.ip().to_string(), "::1");
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut line).unwrap();
    assert_eq!(
        line.trim_end(),
        format!("OPTIONS rtsp://[::1]:{port}/cam RTSP/1.0")
    );
}

#[test]
fn without_it_the_system_picks_the_address() {
    let (_cg, camera, _) = pull_from_listener(&["--rtsp-transport", "tcp"]);
    let (_conn, peer) = camera.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
}

/// The camera's RTP/RTCP UDP sockets bind to the same local address: a scripted camera answers
/// up to SETUP, and `ss` shows camgate's client port on 127.0.0.2.
#[test]
fn camera_udp_sockets_bind_to_the_configured_address_too() {
    use std::io::{BufRead, BufReader, Write};
    let (_cg, camera, port) = pull_from_listener(&[
        "--rtsp-client-address",
        "127.0.0.2",
        "--rtsp-transport",
        "udp",
    ]);
    let (conn, _) = camera.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
               a=rtpmap:96 H264/90000\r\na=control:track1\r\n";
    let mut client_port = None;
    // OPTIONS, DESCRIBE, SETUP: read each request's head and answer it.
    for _ in 0..3 {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let cseq = head
            .iter()
            .find_map(|l| l.strip_prefix("CSeq:"))
            .map(str::trim)
            .unwrap_or("0")
            .to_owned();
        let answer = match head.first().map(String::as_str).unwrap_or("") {
            l if l.starts_with("DESCRIBE") => format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://127.0.0.1:{port}/cam/\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ),
            l if l.starts_with("SETUP") => {
                let transport = head.iter().find(|l| l.starts_with("Transport:")).unwrap();
                let ports = transport.split("client_port=").nth(1).unwrap();
                client_port = ports
                    .split('-')
                    .next()
                    .and_then(|p| p.trim().parse::<u16>().ok());
                format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 1\r\n\r\n")
            }
            _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n"),
        };
        writer.write_all(answer.as_bytes()).unwrap();
    }
    let client_port = client_port.expect("a UDP SETUP with client_port");
    let ss = std::process::Command::new("ss")
        .args(["-uln"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&ss.stdout);
    assert!(
        listing.contains(&format!("127.0.0.2:{client_port}")),
        "RTP port {client_port} not bound on 127.0.0.2:\n{listing}"
    );
}

/// Host names are looked up off the event loop: `localhost` resolves and connects, and a name
/// that doesn't resolve fails its stream while the server keeps answering.
#[test]
fn camera_host_names_resolve_without_blocking_the_server() {
    let camera = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = camera.local_addr().unwrap().port();
    let cg = Camgate::start(&["--rtsp-transport", "tcp"]);
    let bad = r#"{"uri":"rtsp://camgate-test-no-such-host.invalid/cam"}"#;
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(bad)).0,
        200
    );
    let body = format!(r#"{{"uri":"rtsp://localhost:{port}/cam"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&body)).0,
        200
    );
    let (_conn, peer) = camera.accept().unwrap();
    assert!(peer.ip().is_loopback());
    // The unresolvable camera fails (within the connect timeout) and leaves the list.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, list) = cg.request("GET", "/api/streams", None);
        assert_eq!(status, 200);
        if !list.contains("no-such-host") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
