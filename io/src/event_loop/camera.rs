//! Camera connections: each stream's RTSP connection over TCP (host names looked up off the
//! loop), and the RTP/RTCP sockets of cameras that send media over UDP.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use camgate_core::gateway::{Gateway, StreamId};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::{Endpoint, EventLoop, EventLoopConfig};
use crate::camera_tls::{CameraTls, CameraTlsSession};
use crate::camera_udp::{CameraUdp, PortRange};
use crate::socket_buffers;
use crate::tcp::{ReadOutcome, TcpConn};

/// Bytes of a camera's TCP stream handled before what they produced is sent: about 46
/// packets of 1,400 bytes, a P-frame or two.
const CAMERA_SLICE: usize = 64 * 1024;
/// Datagrams of a camera's UDP socket handled before what they produced is sent.
const CAMERA_UDP_SLICE: usize = 64;
/// A camera connection holding more than this unread (2 s of a 8 Mbit/s camera, more than
/// any keyframe) means camgate fell behind: viewers skip the backlog to the next keyframe.
const CAMERA_BEHIND: usize = 2 << 20;
/// A camera RTP socket whose receive queue holds more than this much kernel memory means camgate
/// fell behind: viewers skip to the next keyframe, as for `CAMERA_BEHIND`. The kernel counts a
/// 1,400-byte datagram as 2,304 bytes (measured on loopback), so this is about 2.5 MB of RTP,
/// like the TCP bound: over 4 s of a 4 Mbit/s camera, and twice the largest keyframe burst of a
/// 20 Mbit/s 4K camera, half the 8 MiB receive buffer camgate asks for (a smaller buffer, where
/// `rmem_max` caps it and camgate can't force it, never reaches this: the kernel drops instead).
/// Without it a stall's backlog (about 10 s at 4 Mbit/s) was relayed to every viewer as stale
/// video once camgate had the CPU again.
const CAMERA_UDP_BEHIND: usize = 4 << 20;
/// Slices one camera socket gets per loop turn; then it waits for the next turn.
const CAMERA_SLICES_PER_TURN: usize = 4;

/// What the loop knows of its cameras' connections.
pub(super) struct Cameras {
    /// The slab key of each stream's RTSP connection.
    conns: HashMap<StreamId, usize>,
    /// Cameras whose host name is being looked up, and the lookups' answers.
    resolving: HashSet<StreamId>,
    resolved_tx: Sender<(StreamId, io::Result<SocketAddr>)>,
    resolved_rx: Receiver<(StreamId, io::Result<SocketAddr>)>,
    /// Per camera: the address its RTSP connection went to, and the keys of its UDP sockets.
    peers: HashMap<StreamId, SocketAddr>,
    udp: HashMap<StreamId, Vec<usize>>,
    ports: PortRange,
    /// Local address camera connections are made from (`rtsp_client_address`), if set.
    client_address: Option<IpAddr>,
    /// Certificate checks for `rtsps://` cameras.
    pub(super) tls: Arc<CameraTls>,
    /// TLS sessions of `rtsps://` cameras whose TCP connection is not made yet.
    pub(super) tls_sessions: HashMap<StreamId, CameraTlsSession>,
}

impl Cameras {
    pub(super) fn new(config: &EventLoopConfig) -> Self {
        let (resolved_tx, resolved_rx) = channel();
        Self {
            conns: HashMap::new(),
            resolving: HashSet::new(),
            resolved_tx,
            resolved_rx,
            peers: HashMap::new(),
            udp: HashMap::new(),
            ports: PortRange::new(config.rtsp_udp_ports.0, config.rtsp_udp_ports.1),
            client_address: config.rtsp_client_address,
            tls: config.camera_tls.clone(),
            tls_sessions: HashMap::new(),
        }
    }
}

impl EventLoop {
    /// Connects to a camera. An IP address connects at once; a host name is looked up on a
    /// short-lived thread (lookups block, sometimes for seconds) and the connection is made
    /// when the answer wakes the loop, so one slow DNS server stalls no other stream.
    pub(super) fn connect_camera(
        &mut self,
        stream: StreamId,
        host: &str,
        port: u16,
    ) -> io::Result<()> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.connect_camera_addr(stream, SocketAddr::new(ip, port));
        }
        self.cameras.resolving.insert(stream);
        let (tx, waker, host) = (
            self.cameras.resolved_tx.clone(),
            self.waker.clone(),
            host.to_owned(),
        );
        std::thread::Builder::new()
            .name("camgate-dns".into())
            .spawn(move || {
                let addr = (host.as_str(), port).to_socket_addrs().and_then(|mut a| {
                    a.next().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "host has no address")
                    })
                });
                let _ = tx.send((stream, addr));
                let _ = waker.wake();
            })?;
        Ok(())
    }

    /// Lookups that finished: connect, or report the camera unreachable.
    pub(super) fn finish_lookups(&mut self, now: Instant, gateway: &mut Gateway) {
        while let Ok((stream, addr)) = self.cameras.resolved_rx.try_recv() {
            if !self.cameras.resolving.remove(&stream) {
                continue; // the stream went away while its name was looked up
            }
            // Checked on the very address connected to, so the answer cannot change between.
            if let Ok(addr) = &addr {
                if !gateway.camera_address_allowed(stream, now, addr.ip()) {
                    self.cameras.tls_sessions.remove(&stream);
                    continue;
                }
            }
            let connected = addr.and_then(|addr| self.connect_camera_addr(stream, addr));
            if let Err(e) = connected {
                tracing::info!(stream = stream.0, "camera connect failed: {e}");
                self.cameras.tls_sessions.remove(&stream);
                gateway.handle_rtsp_lost(stream, now);
            }
        }
    }

    fn connect_camera_addr(&mut self, stream: StreamId, addr: SocketAddr) -> io::Result<()> {
        let mut socket = match self.cameras.client_address {
            // The address is of one family: cameras of the other connect from the system's choice.
            Some(local) if local.is_ipv4() == addr.is_ipv4() => {
                let std_stream = connect_from(local, addr)?;
                TcpStream::from_std(std_stream)
            }
            _ => TcpStream::connect(addr)?,
        };
        let _ = socket.set_nodelay(true);
        let key = self.endpoints.vacant_key();
        self.poll.registry().register(
            &mut socket,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let conn = match self.cameras.tls_sessions.remove(&stream) {
            Some(tls) => TcpConn::with_tls(socket, tls),
            None => TcpConn::new(socket),
        };
        self.endpoints.insert(Endpoint::Camera {
            stream,
            conn,
            connecting: true,
            announced: false,
        });
        self.cameras.conns.insert(stream, key);
        self.cameras.peers.insert(stream, addr);
        Ok(())
    }

    /// Camera connection `key` is readable or writable: finishes connecting, hands what
    /// arrived to the gateway and flushes what is queued.
    pub(super) fn read_camera(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        let Some(Endpoint::Camera {
            stream,
            conn,
            connecting,
            announced,
        }) = self.endpoints.get_mut(key)
        else {
            return;
        };
        let stream = *stream;
        if *connecting {
            // A non-blocking connect is done when the socket turns writable; the error
            // (refused, unreachable) is read from SO_ERROR.
            match conn.stream.take_error() {
                Ok(None) if conn.stream.peer_addr().is_ok() => *connecting = false,
                Ok(None) => return, // spurious wakeup, still connecting
                _ => {
                    self.drop_camera(stream);
                    gateway.handle_rtsp_lost(stream, now);
                    return;
                }
            }
        }
        // Plain TCP is up once connected; TLS once its handshake is done (the RTSP client's
        // connect timeout covers both). The ClientHello goes out with the flush below.
        if !*announced && !conn.tls_handshaking() {
            *announced = true;
            gateway.handle_rtsp_connected(stream, now);
        }
        // A backlog (after a stall, or a burst) is taken in slices, what each produced sent
        // before the next is read: so no viewer's queue holds more than a slice's packets, and
        // the first viewers don't wait for the last ones' share of the whole backlog. After
        // a turn's worth the connection waits for the next loop turn, letting STUN checks and
        // other sockets in.
        let mut slices = 0;
        let outcome = loop {
            let Some(Endpoint::Camera { conn, .. }) = self.endpoints.get_mut(key) else {
                return;
            };
            let now = Instant::now();
            if conn.queued_in() > CAMERA_BEHIND {
                gateway.handle_camera_behind(stream, now);
            }
            let player_udp = &mut self.player_udp;
            let outcome = conn.read_upto(&mut self.read_buf, CAMERA_SLICE, &mut |data| {
                let mut rest = data;
                while !rest.is_empty() {
                    rest = &rest[gateway.handle_rtsp_data(stream, now, rest)..];
                    // Datagrams for UDP players came due (a slice fanned out to many players
                    // is many times its size): they leave before the rest is relayed.
                    if let Some(u) = player_udp.as_mut().filter(|_| !rest.is_empty()) {
                        u.send(gateway);
                    }
                }
            });
            gateway.record_camera_input_time(now.elapsed());
            self.flush_transmits(gateway);
            slices += 1;
            if outcome != ReadOutcome::More {
                break outcome;
            }
            if slices >= CAMERA_SLICES_PER_TURN {
                self.read_later(key);
                break outcome;
            }
        };
        let Some(Endpoint::Camera {
            conn, announced, ..
        }) = self.endpoints.get_mut(key)
        else {
            return;
        };
        let flushed = conn.flush();
        if outcome == ReadOutcome::TlsFailed {
            let why = conn.tls_error().unwrap_or("TLS failed").to_owned();
            self.drop_camera(stream);
            gateway.handle_rtsp_tls_failed(stream, now, why);
            return;
        }
        if !*announced && !conn.tls_handshaking() && outcome != ReadOutcome::Closed {
            *announced = true;
            gateway.handle_rtsp_connected(stream, now);
        }
        if outcome == ReadOutcome::Closed || flushed.is_err() {
            self.drop_camera(stream);
            gateway.handle_rtsp_lost(stream, now);
        } else if conn.closing && conn.pending() == 0 {
            self.drop_camera(stream);
        }
    }

    /// A closing camera connection `key` is readable or writable: discards what arrives and
    /// goes once what is queued has been flushed.
    pub(super) fn read_closing(&mut self, key: usize) {
        let Some(Endpoint::Closing(conn)) = self.endpoints.get_mut(key) else {
            return;
        };
        let mut sink = |_: &[u8]| {};
        let outcome = conn.read_available(&mut self.read_buf, &mut sink);
        if conn.flush().is_err() || conn.pending() == 0 || outcome != ReadOutcome::WouldBlock {
            if let Some(Endpoint::Closing(mut conn)) = self.endpoints.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
        }
    }

    /// Sends RTSP bytes to `stream`'s camera; a failed send loses the camera.
    pub(super) fn send_camera(
        &mut self,
        stream: StreamId,
        data: &[u8],
        now: Instant,
        gateway: &mut Gateway,
    ) {
        let Some(&key) = self.cameras.conns.get(&stream) else {
            return;
        };
        if let Some(Endpoint::Camera { conn, .. }) = self.endpoints.get_mut(key) {
            if conn.send(data).is_err() {
                self.drop_camera(stream);
                gateway.handle_rtsp_lost(stream, now);
            }
        }
    }

    /// Closes `stream`'s camera connection, after flushing what is queued (a TEARDOWN).
    pub(super) fn close_camera(&mut self, stream: StreamId) {
        self.cameras.resolving.remove(&stream);
        self.cameras.tls_sessions.remove(&stream);
        // Detached from the stream at once: a redirect or reconnect may open the
        // next connection for the same stream before this one has flushed.
        self.close_camera_udp(stream);
        self.cameras.peers.remove(&stream);
        let Some(key) = self.cameras.conns.remove(&stream) else {
            return;
        };
        if let Some(Endpoint::Camera { mut conn, .. }) = self.endpoints.try_remove(key) {
            conn.close_tls();
            if conn.flush().is_ok() && conn.pending() > 0 {
                let new_key = self.endpoints.vacant_key();
                if new_key != key {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    let _ =
                        self.poll
                            .registry()
                            .reregister(&mut conn.stream, Token(new_key), interest);
                }
                self.endpoints.insert(Endpoint::Closing(conn));
            } else {
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
        }
    }

    fn drop_camera(&mut self, stream: StreamId) {
        self.close_camera_udp(stream);
        if let Some(key) = self.cameras.conns.remove(&stream) {
            if let Some(Endpoint::Camera { mut conn, .. }) = self.endpoints.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
        }
    }

    /// Binds a track's RTP/RTCP pair on the local address of the camera's RTSP connection.
    pub(super) fn open_camera_udp(&mut self, stream: StreamId, track: usize) -> Option<u16> {
        let local = self
            .cameras
            .conns
            .get(&stream)
            .and_then(|k| match self.endpoints.get(*k) {
                Some(Endpoint::Camera { conn, .. }) => conn.stream.local_addr().ok(),
                _ => None,
            })
            .map(|a| a.ip())
            .or(self.cameras.client_address)?;
        let (rtp, rtcp, port) = match self.cameras.ports.bind_pair(local) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(stream = stream.0, "camera UDP ports: {e}");
                return None;
            }
        };
        for (socket, is_rtcp) in [(rtp, false), (rtcp, true)] {
            let key = self.endpoints.vacant_key();
            let mut socket = socket;
            if self
                .poll
                .registry()
                .register(&mut socket, Token(key), Interest::READABLE)
                .is_err()
            {
                return None;
            }
            self.endpoints.insert(Endpoint::CameraUdp(CameraUdp {
                stream,
                track,
                rtcp: is_rtcp,
                socket,
            }));
            self.cameras.udp.entry(stream).or_default().push(key);
        }
        Some(port)
    }

    /// Camera UDP socket `key` is readable: hands every datagram to the gateway.
    pub(super) fn read_camera_udp(&mut self, key: usize, gateway: &mut Gateway) {
        let Some(Endpoint::CameraUdp(c)) = self.endpoints.get_mut(key) else {
            return;
        };
        let (stream, track, rtcp) = (c.stream, c.track, c.rtcp);
        // In slices, as `read_camera` does.
        for _ in 0..CAMERA_SLICES_PER_TURN {
            let Some(Endpoint::CameraUdp(c)) = self.endpoints.get_mut(key) else {
                return;
            };
            let now = Instant::now();
            if !rtcp && socket_buffers::receive_queue_bytes(&c.socket) > CAMERA_UDP_BEHIND {
                gateway.handle_camera_behind(stream, now);
            }
            let Some(Endpoint::CameraUdp(c)) = self.endpoints.get_mut(key) else {
                return;
            };
            let mut more = true;
            for _ in 0..CAMERA_UDP_SLICE {
                match c.socket.recv_from(&mut self.read_buf) {
                    Ok((n, source)) => {
                        let data = &self.read_buf[..n];
                        gateway.handle_rtsp_udp(stream, now, track, rtcp, source, data);
                        // Sent before the next datagram if they came due (see `read_camera`).
                        if let Some(u) = self.player_udp.as_mut() {
                            if gateway.player_datagrams_due() {
                                u.send(gateway);
                            }
                        }
                    }
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            // ICMP port unreachable from the camera's side: not fatal.
                            tracing::debug!(stream = stream.0, "camera udp receive error: {e}");
                        }
                        more = false;
                        break;
                    }
                }
            }
            gateway.record_camera_input_time(now.elapsed());
            self.flush_transmits(gateway);
            if !more {
                return;
            }
        }
        self.read_later(key);
    }

    pub(super) fn send_camera_udp(
        &mut self,
        stream: StreamId,
        track: usize,
        rtcp: bool,
        host: Option<&str>,
        port: u16,
        data: &[u8],
    ) {
        let Some(peer) = self.cameras.peers.get(&stream) else {
            return;
        };
        // A `source=` host that is not an address is ignored: no name lookups on the loop.
        let ip = host
            .and_then(|h| h.parse::<IpAddr>().ok())
            .unwrap_or(peer.ip());
        let keys = self
            .cameras
            .udp
            .get(&stream)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for key in keys {
            if let Some(Endpoint::CameraUdp(c)) = self.endpoints.get(*key) {
                if c.track == track && c.rtcp == rtcp {
                    if let Err(e) = c.socket.send_to(data, SocketAddr::new(ip, port)) {
                        tracing::debug!(stream = stream.0, "camera udp send: {e}");
                    }
                    return;
                }
            }
        }
    }

    fn close_camera_udp(&mut self, stream: StreamId) {
        for key in self.cameras.udp.remove(&stream).unwrap_or_default() {
            if let Some(Endpoint::CameraUdp(mut c)) = self.endpoints.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut c.socket);
            }
        }
    }
}

/// A non-blocking connect from a chosen local address (`rtsp_client_address`, e.g. a VPN's).
fn connect_from(local: IpAddr, remote: SocketAddr) -> io::Result<std::net::TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(local, 0).into())?;
    socket.set_nonblocking(true)?;
    match socket.connect(&remote.into()) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(libc::EINPROGRESS)
                || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}
