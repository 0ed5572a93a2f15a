//! `rtsp_client_address`: camera connections leave from the configured local address (e.g. a
//! VPN interface's). Checked with a listener standing in for the camera, which sees the peer
//! address; 127.0.0.2 is a second loopback address Linux answers without any setup.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::Camgate;

#[test]
fn camera_connections_come_from_the_configured_address() {
    let camera = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = camera.local_addr().unwrap().port();
    let cg = Camgate::start(&[
        "--rtsp-client-address",
        "127.0.0.2",
        "--rtsp-transport",
        "tcp",
    ]);
    let body = format!(r#"{{"uri":"rtsp://127.0.0.1:{port}/cam"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&body)).0,
        200
    );
    camera.set_nonblocking(false).unwrap();
    let (conn, peer) = camera.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 7];
    std::io::Read::read_exact(&mut &conn, &mut first).unwrap();
    assert_eq!(&first, b"OPTIONS", "camgate speaks RTSP on it");
}

#[test]
fn without_it_the_system_picks_the_address() {
    let camera = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = camera.local_addr().unwrap().port();
    let cg = Camgate::start(&["--rtsp-transport", "tcp"]);
    let body = format!(r#"{{"uri":"rtsp://127.0.0.1:{port}/cam"}}"#);
    assert_eq!(
        cg.request("POST", "/rest-api/rtsp/startup", Some(&body)).0,
        200
    );
    let (_conn, peer) = camera.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
}
