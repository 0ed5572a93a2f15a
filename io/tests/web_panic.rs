//! A panic in the web side on one client's bytes ends that client's connection only: the loop
//! (which also carries every viewer's media) keeps serving the other clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use camgate_core::gateway::{Gateway, GatewayConfig, SessionId};
use camgate_io::{ConnId, EventLoop, EventLoopConfig, ListenerKind, WebApp, WebIo};

/// Echoes what it gets, and panics on "boom" (standing in for any bug in request handling).
struct Echo {
    closed: usize,
}

impl WebApp for Echo {
    fn accepted(&mut self, _: ConnId, _: ListenerKind, _: SocketAddr, _: Instant) {}
    fn received(&mut self, conn: ConnId, data: &[u8], _: Instant, _: &mut Gateway, io: &mut WebIo) {
        io.write(conn, b"partial ".to_vec());
        if data.windows(4).any(|w| w == b"boom") {
            panic!("a bug reached by this client's input");
        }
        io.write(conn, data.to_vec());
    }
    fn closed(&mut self, _: ConnId, _: Instant, _: &mut Gateway) {
        self.closed += 1;
    }
    fn send_text(&mut self, _: SessionId, _: &str, _: Instant, _: &mut Gateway, _: &mut WebIo) {}
    fn close_session(&mut self, _: SessionId, _: Instant, _: &mut Gateway, _: &mut WebIo) {}
}

#[test]
fn a_panic_on_one_clients_input_drops_only_that_client() {
    let config = EventLoopConfig {
        listeners: vec![(ListenerKind::Http, "127.0.0.1:0".parse().unwrap())],
        udp: Vec::new(),
        ice_tcp: Vec::new(),
        rtsp_client_address: None,
        rtsp_udp_ports: (30000, 30099),
        udp_gso: true,
        rtsp_server: None,
        rtsp_server_udp_port: None,
        camera_tls: std::sync::Arc::new(camgate_io::camera_tls::CameraTls::new(
            camgate_io::camera_tls::RtspsVerify::PinnedOrSystem,
            Default::default(),
        )),
    };
    let mut event_loop = EventLoop::new(&config).unwrap();
    let addr = event_loop.local_addrs()[0].1;
    let mut gateway = Gateway::new(GatewayConfig::default());
    let mut web = Echo { closed: 0 };

    let clients = std::thread::spawn(move || {
        let timeout = Some(Duration::from_secs(10));
        let mut good = TcpStream::connect(addr).unwrap();
        let mut bad = TcpStream::connect(addr).unwrap();
        good.set_read_timeout(timeout).unwrap();
        bad.set_read_timeout(timeout).unwrap();
        bad.write_all(b"boom").unwrap();
        // The bad client's connection is closed with nothing written (not even "partial").
        let mut got = Vec::new();
        let n = bad.read_to_end(&mut got).unwrap_or(0);
        assert_eq!((n, got.as_slice()), (0, &b""[..]));
        // The other client is still served, before and after.
        for word in [&b"hello"[..], b"again"] {
            good.write_all(word).unwrap();
            let mut buf = vec![0; 8 + word.len()];
            good.read_exact(&mut buf).unwrap();
            assert_eq!(&buf[8..], word);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    event_loop
        .run(&mut gateway, &mut web, &mut |_| {
            !clients.is_finished() && Instant::now() < deadline
        })
        .unwrap();
    clients.join().expect("client assertions");
    assert!(web.closed >= 1, "the bad connection was closed");
}
