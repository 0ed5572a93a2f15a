//! The ICE-TCP listener over real sockets: a connection whose bytes are not RFC 4571 frames of
//! a STUN check for one of our viewers is closed, and only that one.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use camgate_core::gateway::{Gateway, GatewayConfig};
use camgate_io::{EventLoop, EventLoopConfig, NoWeb};

/// A STUN Binding request naming `username` (`<camgate ufrag>:<browser ufrag>`), framed.
fn framed_binding_request(username: &str) -> Vec<u8> {
    let mut attrs = vec![0x00, 0x06];
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut msg = vec![0x00, 0x01];
    msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    msg.extend_from_slice(&[7; 12]);
    msg.extend_from_slice(&attrs);
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&msg);
    framed
}

/// An event loop config with one ICE-TCP listener on loopback and nothing else.
fn ice_tcp_only(rtsp_udp_min: u16, rtsp_udp_max: u16) -> EventLoopConfig {
    EventLoopConfig {
        listeners: Vec::new(),
        udp: Vec::new(),
        ice_tcp: vec![(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )],
        rtsp_client_address: None,
        rtsp_udp_ports: (rtsp_udp_min, rtsp_udp_max),
        udp_gso: true,
        rtsp_server: None,
        rtsp_server_udp_port: None,
        camera_tls: std::sync::Arc::new(camgate_io::camera_tls::CameraTls::new(
            camgate_io::camera_tls::RtspsVerify::PinnedOrSystem,
            Default::default(),
        )),
    }
}

/// True when the server closed `s` (EOF) within the read timeout, false when it stayed open.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => panic!("the server sent something"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true, // reset
    }
}

#[test]
fn garbage_oversized_or_unknown_ufrag_closes_that_connection_only() {
    let config = ice_tcp_only(30000, 30099);
    let mut event_loop = EventLoop::new(&config).unwrap();
    let addrs = event_loop.ice_tcp_addrs();
    assert_eq!(addrs.len(), 1);
    let addr: SocketAddr = addrs[0];
    assert_ne!(addr.port(), 0, "the announced port is the bound one");
    let mut gateway = Gateway::new(GatewayConfig::default());

    let clients = std::thread::spawn(move || {
        let connect = || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        };
        // Waiting mid-frame (one byte of a length): not closed while the others are.
        let mut patient = connect();
        patient.write_all(&[0x00]).unwrap();
        // Not framed at all: "GE" reads as a 18245-byte length, over the limit.
        let mut http = connect();
        http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(closed_by_server(&mut http), "oversized frame");
        // A zero length.
        let mut empty = connect();
        empty.write_all(&[0, 0, 1, 2]).unwrap();
        assert!(closed_by_server(&mut empty), "empty frame");
        // A well-framed STUN check for a ufrag no viewer has.
        let mut stranger = connect();
        stranger
            .write_all(&framed_binding_request("nobody:peer"))
            .unwrap();
        assert!(closed_by_server(&mut stranger), "unknown ufrag");
        // A frame that is no WebRTC packet at all.
        let mut noise = connect();
        noise.write_all(&[0, 4, 0xde, 0xad, 0xbe, 0xef]).unwrap();
        assert!(closed_by_server(&mut noise), "not STUN/DTLS/RTP");
        // The patient one is still open.
        patient
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            !closed_by_server(&mut patient),
            "only the bad connections close"
        );
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    event_loop
        .run(&mut gateway, &mut NoWeb, &mut |_| {
            !clients.is_finished() && Instant::now() < deadline
        })
        .unwrap();
    clients.join().expect("client assertions");
}

/// A flood of connections that never send a STUN check is bounded: past 256 waiting at once
/// (`ice_tcp::MAX_UNROUTED`) new connections are closed at once, and taken again once some of
/// the waiting ones are gone.
#[test]
fn connections_that_never_name_a_viewer_are_capped() {
    let config = ice_tcp_only(30100, 30199);
    let mut event_loop = EventLoop::new(&config).unwrap();
    let addr: SocketAddr = event_loop.ice_tcp_addrs()[0];
    let mut gateway = Gateway::new(GatewayConfig::default());

    let clients = std::thread::spawn(move || {
        let connect = || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            s
        };
        let mut silent: Vec<TcpStream> = (0..256).map(|_| connect()).collect();
        // The server takes them in order, so the 257th is past the cap once it is accepted.
        let mut extra = connect();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert!(
            closed_by_server(&mut extra),
            "the 257th waiting connection is refused"
        );
        // The first ones are still open.
        assert!(!closed_by_server(&mut silent[0]), "the waiting ones stay");
        // Ten leave: their places are free again.
        silent.drain(..10);
        std::thread::sleep(Duration::from_millis(300));
        let mut later = connect();
        assert!(
            !closed_by_server(&mut later),
            "a place freed is taken again"
        );
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    event_loop
        .run(&mut gateway, &mut NoWeb, &mut |_| {
            !clients.is_finished() && Instant::now() < deadline
        })
        .unwrap();
    clients.join().expect("client assertions");
}
