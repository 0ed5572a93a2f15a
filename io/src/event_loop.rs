//! The event loop: one thread, one `mio::Poll`, every socket, and the gateway's timers.
//!
//! Each turn: wait for readiness or the gateway's next deadline, feed what arrived into the
//! gateway (or the web app), fire due timers, then carry out everything the gateway asked for
//! (camera connections, signaling messages, datagrams) before waiting again.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use camgate_core::hub::{Gateway, GatewayOutput, SessionId, StreamId};
use camgate_core::str0m::net::Transmit;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::camera_udp::{CameraUdp, PortRange};
use crate::tcp::{ReadOutcome, TcpConn};
use crate::udp::UdpEndpoint;
use crate::workers::WorkerLink;

/// A web client connection, numbered by the loop (the slab key of its socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub usize);

impl ConnId {
    /// Web connections that become WebSockets are signaling sessions with the same number.
    pub fn session(self) -> SessionId {
        SessionId(self.0 as u64)
    }
}

/// Which listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The signaling port (8080): WebSocket upgrades.
    WebSocket,
    /// The HTTP port (8081): player page and APIs.
    Http,
    /// The secure signaling port (8443): WebSocket upgrades inside TLS.
    WssTls,
    /// The HTTPS port (8444): player page and APIs inside TLS.
    HttpsTls,
}

impl ListenerKind {
    /// TLS is terminated by the web app (sans-IO), so the loop still sees only bytes.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::WssTls | Self::HttpsTls)
    }
}

/// Writes and closes the web app asks for; the loop carries them out after each call.
#[derive(Default)]
pub struct WebIo {
    writes: Vec<(ConnId, Vec<u8>)>,
    closes: Vec<ConnId>,
}

impl WebIo {
    pub fn write(&mut self, conn: ConnId, data: Vec<u8>) {
        self.writes.push((conn, data));
    }

    /// Close after everything written so far has been flushed.
    pub fn close(&mut self, conn: ConnId) {
        self.closes.push(conn);
    }

    /// Takes the writes and closes asked for so far, for a driver other than the loop (the
    /// fuzz harnesses). Like the loop, apply the writes before the closes.
    pub fn take(&mut self) -> (Vec<(ConnId, Vec<u8>)>, Vec<ConnId>) {
        (
            std::mem::take(&mut self.writes),
            std::mem::take(&mut self.closes),
        )
    }
}

/// The server's web side: HTTP and WebSocket framing over the loop's connections.
pub trait WebApp {
    fn accepted(&mut self, conn: ConnId, kind: ListenerKind, peer: SocketAddr, now: Instant);
    fn received(
        &mut self,
        conn: ConnId,
        data: &[u8],
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    );
    /// The connection is gone (peer closed, error, or our close completed).
    fn closed(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway);
    /// Called about once a second, for the web side's own timeouts (slow or idle clients).
    fn tick(&mut self, _now: Instant, _io: &mut WebIo) {}
    /// The gateway has a signaling message for `session`: a WebSocket (`conn.session()`) or
    /// a session the web app opened itself (WHEP). The gateway is at hand so the app can
    /// answer at once (e.g. `pong` for a session that has no browser behind it).
    fn send_text(
        &mut self,
        session: SessionId,
        text: &str,
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    );
    /// The gateway gave up on `session` (no answer to pings): close whatever carries it.
    fn close_session(
        &mut self,
        session: SessionId,
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    );
}

/// The web side of a worker without listeners (every worker but the first): it never gets a
/// connection; signaling for its viewers goes through the first worker's web app.
pub struct NoWeb;

impl WebApp for NoWeb {
    fn accepted(&mut self, _: ConnId, _: ListenerKind, _: SocketAddr, _: Instant) {}
    fn received(&mut self, _: ConnId, _: &[u8], _: Instant, _: &mut Gateway, _: &mut WebIo) {}
    fn closed(&mut self, _: ConnId, _: Instant, _: &mut Gateway) {}
    fn send_text(&mut self, _: SessionId, _: &str, _: Instant, _: &mut Gateway, _: &mut WebIo) {}
    fn close_session(&mut self, _: SessionId, _: Instant, _: &mut Gateway, _: &mut WebIo) {}
}

#[derive(Debug, Clone)]
pub struct EventLoopConfig {
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    /// The shared WebRTC UDP sockets: (address to bind, address announced to browsers).
    /// They differ behind a 1:1 NAT or when binding to 0.0.0.0.
    pub udp: Vec<(SocketAddr, SocketAddr)>,
    /// Local address camera connections are made from (`rtsp_client_address`), if set.
    pub rtsp_client_address: Option<IpAddr>,
    /// Local UDP ports for cameras' RTP/RTCP over UDP (inclusive range).
    pub rtsp_udp_ports: (u16, u16),
    /// Runs of datagrams to one viewer leave as UDP GSO messages.
    pub udp_gso: bool,
}

enum Endpoint {
    Listener(ListenerKind, TcpListener),
    Web(TcpConn),
    Camera {
        stream: StreamId,
        conn: TcpConn,
        connecting: bool,
    },
    Udp(UdpEndpoint),
    CameraUdp(CameraUdp),
    /// A camera connection being closed: flushes what is queued (a TEARDOWN), then goes.
    Closing(TcpConn),
}

/// Datagrams taken from the gateway before they are sent: a few `sendmmsg` calls' worth, and
/// enough viewers (a P-frame is about 7 packets each) that each call carries many.
const TX_CHUNK: usize = 256;

/// The token of the waker that lookup threads ring (never a slab key).
const WAKER: Token = Token(usize::MAX);

pub struct EventLoop {
    poll: Poll,
    endpoints: Slab<Endpoint>,
    cameras: HashMap<StreamId, usize>,
    /// Cameras whose host name is being looked up, and the lookups' answers.
    resolving: std::collections::HashSet<StreamId>,
    resolved_tx: std::sync::mpsc::Sender<(StreamId, io::Result<SocketAddr>)>,
    resolved_rx: std::sync::mpsc::Receiver<(StreamId, io::Result<SocketAddr>)>,
    waker: std::sync::Arc<mio::Waker>,
    /// Per camera: the address its RTSP connection went to, and the keys of its UDP sockets.
    camera_peers: HashMap<StreamId, SocketAddr>,
    camera_udp: HashMap<StreamId, Vec<usize>>,
    camera_ports: PortRange,
    /// UDP socket slab keys by local address, to send from the address str0m chose.
    udp_by_addr: HashMap<SocketAddr, usize>,
    rtsp_client_address: Option<IpAddr>,
    read_buf: Vec<u8>,
    /// Listeners whose `accept` failed for want of a descriptor (EMFILE, ENFILE) or memory.
    /// Edge-triggered polling would not report their queued connections again, and a full
    /// listen queue takes no new one to report, so they are retried on every loop turn.
    accept_retry: Vec<usize>,
    /// Datagrams taken from the gateway for one batched send; capacity is reused.
    tx_buf: Vec<Transmit>,
    /// Indices into `tx_buf` grouped by destination, for GSO runs; capacity is reused.
    tx_order: Vec<u32>,
    /// The other workers, when there are several.
    link: Option<WorkerLink>,
}

impl EventLoop {
    pub fn new(config: &EventLoopConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (resolved_tx, resolved_rx) = std::sync::mpsc::channel();
        let mut this = Self {
            poll,
            endpoints: Slab::new(),
            cameras: HashMap::new(),
            resolving: std::collections::HashSet::new(),
            resolved_tx,
            resolved_rx,
            waker,
            camera_peers: HashMap::new(),
            camera_udp: HashMap::new(),
            camera_ports: PortRange::new(config.rtsp_udp_ports.0, config.rtsp_udp_ports.1),
            udp_by_addr: HashMap::new(),
            rtsp_client_address: config.rtsp_client_address,
            accept_retry: Vec::new(),
            read_buf: vec![0; 64 * 1024],
            tx_buf: Vec::with_capacity(1024),
            tx_order: Vec::with_capacity(1024),
            link: None,
        };
        for (kind, addr) in &config.listeners {
            let mut listener = TcpListener::bind(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let key = this.endpoints.vacant_key();
            this.poll
                .registry()
                .register(&mut listener, Token(key), Interest::READABLE)?;
            this.endpoints.insert(Endpoint::Listener(*kind, listener));
        }
        for (addr, announced) in &config.udp {
            let mut udp = UdpEndpoint::bind(*addr, *announced, config.udp_gso)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}")))?;
            let key = this.endpoints.vacant_key();
            this.poll
                .registry()
                .register(&mut udp.socket, Token(key), Interest::READABLE)?;
            this.udp_by_addr.insert(udp.announced, key);
            this.endpoints.insert(Endpoint::Udp(udp));
        }
        Ok(this)
    }

    /// What other workers ring to wake this loop (see `WorkerLink::link_all`).
    pub fn waker(&self) -> std::sync::Arc<mio::Waker> {
        self.waker.clone()
    }

    /// Connects this loop to the other workers' loops.
    pub fn set_link(&mut self, link: WorkerLink) {
        self.link = Some(link);
    }

    /// Addresses actually bound (ports resolved when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<(Option<ListenerKind>, SocketAddr)> {
        self.endpoints
            .iter()
            .filter_map(|(_, e)| match e {
                Endpoint::Listener(kind, l) => l.local_addr().ok().map(|a| (Some(*kind), a)),
                Endpoint::Udp(u) => Some((None, u.announced)),
                _ => None,
            })
            .collect()
    }

    /// Runs until `keep_running` returns false (checked at least every 100 ms).
    pub fn run(
        &mut self,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        keep_running: &mut dyn FnMut(&mut Gateway) -> bool,
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut web_io = WebIo::default();
        let mut next_tick = Instant::now();
        while keep_running(gateway) {
            let now = Instant::now();
            let wait = gateway
                .poll_timeout()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                if event.token() == WAKER {
                    self.finish_lookups(now, gateway);
                    while let Some((from, forward)) = self.link.as_ref().and_then(|l| l.try_recv())
                    {
                        gateway.handle_forward(from, forward, now);
                    }
                    gateway.handle_mirrored(now);
                    continue;
                }
                self.handle_event(event.token().0, now, gateway, web, &mut web_io);
                self.apply_web_io(&mut web_io, now, gateway, web);
            }
            if !self.accept_retry.is_empty() {
                for key in self.accept_retry.clone() {
                    self.handle_event(key, now, gateway, web, &mut web_io);
                    self.apply_web_io(&mut web_io, now, gateway, web);
                }
            }
            gateway.handle_timeout(now);
            if now >= next_tick {
                next_tick = now + Duration::from_secs(1);
                if !contained(|| web.tick(now, &mut web_io)) {
                    tracing::error!("web side panicked in its timer tick");
                }
                self.apply_web_io(&mut web_io, now, gateway, web);
            }
            self.apply_gateway_outputs(now, gateway, web, &mut web_io);
        }
        Ok(())
    }

    fn handle_event(
        &mut self,
        key: usize,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        io: &mut WebIo,
    ) {
        let Some(endpoint) = self.endpoints.get_mut(key) else {
            return;
        };
        match endpoint {
            Endpoint::Listener(kind, listener) => {
                let kind = *kind;
                let mut accepted = Vec::new();
                loop {
                    match listener.accept() {
                        Ok(pair) => accepted.push(pair),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if self.accept_retry.contains(&key) {
                                self.accept_retry.retain(|&k| k != key);
                                tracing::info!(?kind, "accepting connections again");
                            }
                            break;
                        }
                        // The peer gave up before we took it: the next one may be fine.
                        Err(e)
                            if e.kind() == io::ErrorKind::ConnectionAborted
                                || e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            if !self.accept_retry.contains(&key) {
                                self.accept_retry.push(key);
                                tracing::warn!(
                                    ?kind,
                                    "accept failed: {e} (open files limit {}); new connections \
                                     wait in the listen queue, retried every loop turn",
                                    open_files_limit()
                                );
                            }
                            break;
                        }
                    }
                }
                for (mut stream, peer) in accepted {
                    let _ = stream.set_nodelay(true);
                    let key = self.endpoints.vacant_key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        tracing::warn!("register failed: {e}");
                        continue;
                    }
                    self.endpoints.insert(Endpoint::Web(TcpConn::new(stream)));
                    web.accepted(ConnId(key), kind, peer, now);
                }
            }
            Endpoint::Web(conn) => {
                let id = ConnId(key);
                let mut panicked = false;
                let outcome = conn.read_available(&mut self.read_buf, &mut |data| {
                    // Last line of defence: a bug reached by one client's bytes ends that
                    // client's connection, not the server (the other clients and every
                    // viewer's media share this thread).
                    panicked = panicked || !contained(|| web.received(id, data, now, gateway, io));
                });
                if panicked {
                    tracing::error!(
                        conn = key,
                        "web side panicked on this client's input: connection dropped"
                    );
                    io.writes.retain(|(c, _)| *c != id);
                    self.drop_web(key, now, gateway, web);
                    return;
                }
                let flushed = conn.flush();
                if outcome == ReadOutcome::Closed
                    || flushed.is_err()
                    || (conn.closing && conn.pending() == 0)
                {
                    self.drop_web(key, now, gateway, web);
                }
            }
            Endpoint::Camera {
                stream,
                conn,
                connecting,
            } => {
                let stream = *stream;
                if *connecting {
                    // A non-blocking connect is done when the socket turns writable; the error
                    // (refused, unreachable) is read from SO_ERROR.
                    match conn.stream.take_error() {
                        Ok(None) if conn.stream.peer_addr().is_ok() => {
                            *connecting = false;
                            gateway.handle_rtsp_connected(stream, now);
                        }
                        Ok(None) => return, // spurious wakeup, still connecting
                        _ => {
                            self.drop_camera(stream);
                            gateway.handle_rtsp_lost(stream, now);
                            return;
                        }
                    }
                }
                let Some(Endpoint::Camera { conn, .. }) = self.endpoints.get_mut(key) else {
                    return;
                };
                let outcome = conn.read_available(&mut self.read_buf, &mut |data| {
                    gateway.handle_rtsp_data(stream, now, data)
                });
                let flushed = conn.flush();
                if outcome == ReadOutcome::Closed || flushed.is_err() {
                    self.drop_camera(stream);
                    gateway.handle_rtsp_lost(stream, now);
                } else if conn.closing && conn.pending() == 0 {
                    self.drop_camera(stream);
                }
            }
            Endpoint::Closing(conn) => {
                let mut sink = |_: &[u8]| {};
                let outcome = conn.read_available(&mut self.read_buf, &mut sink);
                if conn.flush().is_err() || conn.pending() == 0 || outcome == ReadOutcome::Closed {
                    if let Some(Endpoint::Closing(mut conn)) = self.endpoints.try_remove(key) {
                        let _ = self.poll.registry().deregister(&mut conn.stream);
                    }
                }
            }
            Endpoint::CameraUdp(c) => {
                let (stream, track, rtcp) = (c.stream, c.track, c.rtcp);
                loop {
                    match c.socket.recv_from(&mut self.read_buf) {
                        Ok((n, source)) => gateway.handle_rtsp_udp(
                            stream,
                            now,
                            track,
                            rtcp,
                            source,
                            &self.read_buf[..n],
                        ),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // ICMP port unreachable from the camera's side: not fatal.
                            tracing::debug!(stream = stream.0, "camera udp receive error: {e}");
                            break;
                        }
                    }
                }
                self.flush_transmits(gateway);
            }
            Endpoint::Udp(udp) => {
                // str0m matches datagrams against the candidate it announced.
                let local = udp.announced;
                udp.recv_all(&mut |source, data| gateway.handle_udp(now, source, local, data));
                self.flush_transmits(gateway);
            }
        }
    }

    fn apply_gateway_outputs(
        &mut self,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        io: &mut WebIo,
    ) {
        loop {
            self.flush_transmits(gateway);
            let Some(output) = gateway.poll_output() else {
                break;
            };
            match output {
                // Sessions are the web app's to map onto connections: not every session is a
                // WebSocket (WHEP sessions live beyond their HTTP request).
                GatewayOutput::WsSend { session, text } => {
                    if !contained(|| web.send_text(session, &text, now, gateway, io)) {
                        tracing::error!(session = session.0, "web side panicked sending a message");
                    }
                    self.apply_web_io(io, now, gateway, web);
                }
                GatewayOutput::WsClose { session } => {
                    if !contained(|| web.close_session(session, now, gateway, io)) {
                        tracing::error!(session = session.0, "web side panicked closing a session");
                    }
                    self.apply_web_io(io, now, gateway, web);
                }
                GatewayOutput::RtspConnect { stream, host, port } => {
                    if let Err(e) = self.connect_camera(stream, &host, port) {
                        tracing::info!(stream = stream.0, "camera connect failed: {e}");
                        gateway.handle_rtsp_lost(stream, now);
                    }
                }
                GatewayOutput::RtspSend { stream, data } => {
                    let Some(&key) = self.cameras.get(&stream) else {
                        continue;
                    };
                    if let Some(Endpoint::Camera { conn, .. }) = self.endpoints.get_mut(key) {
                        if conn.send(&data).is_err() {
                            self.drop_camera(stream);
                            gateway.handle_rtsp_lost(stream, now);
                        }
                    }
                }
                GatewayOutput::Forward { worker, forward } => match &self.link {
                    Some(link) if worker != link.here() => {
                        if !link.send(worker, forward) {
                            tracing::warn!(worker, "worker gone: message dropped");
                        }
                    }
                    _ => gateway.handle_forward(worker, forward, now),
                },
                GatewayOutput::WakeWorker { worker } => {
                    if let Some(link) = &self.link {
                        link.wake(worker);
                    }
                }
                GatewayOutput::RtspUdpOpen { stream, track } => {
                    let port = self.open_camera_udp(stream, track);
                    gateway.handle_rtsp_udp_ports(stream, now, track, port);
                }
                GatewayOutput::RtspUdpSend {
                    stream,
                    track,
                    rtcp,
                    host,
                    port,
                    data,
                } => {
                    self.send_camera_udp(stream, track, rtcp, host.as_deref(), port, &data);
                }
                GatewayOutput::RtspClose { stream } => {
                    self.resolving.remove(&stream);
                    // Detached from the stream at once: a redirect or reconnect may open the
                    // next connection for the same stream before this one has flushed.
                    self.close_camera_udp(stream);
                    self.camera_peers.remove(&stream);
                    let Some(key) = self.cameras.remove(&stream) else {
                        continue;
                    };
                    if let Some(Endpoint::Camera { mut conn, .. }) = self.endpoints.try_remove(key)
                    {
                        if conn.flush().is_ok() && conn.pending() > 0 {
                            let new_key = self.endpoints.vacant_key();
                            if new_key != key {
                                let interest = Interest::READABLE | Interest::WRITABLE;
                                let _ = self.poll.registry().reregister(
                                    &mut conn.stream,
                                    Token(new_key),
                                    interest,
                                );
                            }
                            self.endpoints.insert(Endpoint::Closing(conn));
                        } else {
                            let _ = self.poll.registry().deregister(&mut conn.stream);
                        }
                    }
                }
            }
        }
    }

    fn apply_web_io(
        &mut self,
        io: &mut WebIo,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
    ) {
        for (conn, data) in io.writes.drain(..) {
            if let Some(Endpoint::Web(c)) = self.endpoints.get_mut(conn.0) {
                if let Err(e) = c.send(&data) {
                    tracing::info!(conn = conn.0, "dropping web client: {e}");
                    c.closing = true;
                }
            }
        }
        let closes: Vec<ConnId> = io.closes.drain(..).collect();
        for conn in closes {
            if let Some(Endpoint::Web(c)) = self.endpoints.get_mut(conn.0) {
                c.closing = true;
                if c.flush().is_err() || c.pending() == 0 {
                    self.drop_web(conn.0, now, gateway, web);
                }
            }
        }
    }

    /// Sends every datagram the gateway has, in chunks of about `TX_CHUNK`: the gateway encrypts
    /// viewer by viewer as datagrams are taken, so the first viewers' packets leave while the
    /// rest are still to be encrypted.
    fn flush_transmits(&mut self, gateway: &mut Gateway) {
        loop {
            self.tx_buf.clear();
            while self.tx_buf.len() < TX_CHUNK || gateway.transmit_queued() {
                let Some(t) = gateway.poll_transmit() else {
                    break;
                };
                self.tx_buf.push(t);
            }
            if self.tx_buf.is_empty() {
                return;
            }
            self.send_tx_buf();
        }
    }

    /// Sends the datagrams in `tx_buf`, in `sendmmsg` batches per socket.
    fn send_tx_buf(&mut self) {
        let fallback = self.udp_by_addr.values().next().copied();
        // Runs of datagrams leaving from the same socket go out together (with one socket,
        // which is the usual case, that is all of them).
        let mut start = 0;
        while start < self.tx_buf.len() {
            let key = self
                .udp_by_addr
                .get(&self.tx_buf[start].source)
                .copied()
                .or(fallback);
            let mut end = start + 1;
            while end < self.tx_buf.len()
                && self
                    .udp_by_addr
                    .get(&self.tx_buf[end].source)
                    .copied()
                    .or(fallback)
                    == key
            {
                end += 1;
            }
            if let Some(Endpoint::Udp(udp)) = key.and_then(|k| self.endpoints.get_mut(k)) {
                // The gateway emits one datagram per viewer per camera packet; grouped by
                // viewer (each viewer's own order kept), a frame's packets to one viewer
                // become one GSO message.
                let tx = &self.tx_buf;
                self.tx_order.clear();
                self.tx_order.extend(start as u32..end as u32);
                self.tx_order
                    .sort_unstable_by_key(|&i| (tx[i as usize].destination, i));
                udp.send_all(&self.tx_order, |&i| {
                    let t = &tx[i as usize];
                    (t.destination, &t.contents[..])
                });
            }
            start = end;
        }
        self.tx_buf.clear();
    }

    /// Connects to a camera. An IP address connects at once; a host name is looked up on a
    /// short-lived thread (lookups block, sometimes for seconds) and the connection is made
    /// when the answer wakes the loop, so one slow DNS server stalls no other stream.
    fn connect_camera(&mut self, stream: StreamId, host: &str, port: u16) -> io::Result<()> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.connect_camera_addr(stream, SocketAddr::new(ip, port));
        }
        self.resolving.insert(stream);
        let (tx, waker, host) = (
            self.resolved_tx.clone(),
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
    fn finish_lookups(&mut self, now: Instant, gateway: &mut Gateway) {
        while let Ok((stream, addr)) = self.resolved_rx.try_recv() {
            if !self.resolving.remove(&stream) {
                continue; // the stream went away while its name was looked up
            }
            let connected = addr.and_then(|addr| self.connect_camera_addr(stream, addr));
            if let Err(e) = connected {
                tracing::info!(stream = stream.0, "camera connect failed: {e}");
                gateway.handle_rtsp_lost(stream, now);
            }
        }
    }

    fn connect_camera_addr(&mut self, stream: StreamId, addr: SocketAddr) -> io::Result<()> {
        let mut socket = match self.rtsp_client_address {
            Some(local) => {
                let std_stream = connect_from(local, addr)?;
                TcpStream::from_std(std_stream)
            }
            None => TcpStream::connect(addr)?,
        };
        let _ = socket.set_nodelay(true);
        let key = self.endpoints.vacant_key();
        self.poll.registry().register(
            &mut socket,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.endpoints.insert(Endpoint::Camera {
            stream,
            conn: TcpConn::new(socket),
            connecting: true,
        });
        self.cameras.insert(stream, key);
        self.camera_peers.insert(stream, addr);
        Ok(())
    }

    /// Binds a track's RTP/RTCP pair on the local address of the camera's RTSP connection.
    fn open_camera_udp(&mut self, stream: StreamId, track: usize) -> Option<u16> {
        let local = self
            .cameras
            .get(&stream)
            .and_then(|k| match self.endpoints.get(*k) {
                Some(Endpoint::Camera { conn, .. }) => conn.stream.local_addr().ok(),
                _ => None,
            })
            .map(|a| a.ip())
            .or(self.rtsp_client_address)?;
        let (rtp, rtcp, port) = match self.camera_ports.bind_pair(local) {
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
            self.camera_udp.entry(stream).or_default().push(key);
        }
        Some(port)
    }

    fn send_camera_udp(
        &mut self,
        stream: StreamId,
        track: usize,
        rtcp: bool,
        host: Option<&str>,
        port: u16,
        data: &[u8],
    ) {
        let Some(peer) = self.camera_peers.get(&stream) else {
            return;
        };
        // A `source=` host that is not an address is ignored: no name lookups on the loop.
        let ip = host
            .and_then(|h| h.parse::<IpAddr>().ok())
            .unwrap_or(peer.ip());
        let keys = self
            .camera_udp
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
        for key in self.camera_udp.remove(&stream).unwrap_or_default() {
            if let Some(Endpoint::CameraUdp(mut c)) = self.endpoints.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut c.socket);
            }
        }
    }

    fn drop_camera(&mut self, stream: StreamId) {
        self.close_camera_udp(stream);
        if let Some(key) = self.cameras.remove(&stream) {
            if let Some(Endpoint::Camera { mut conn, .. }) = self.endpoints.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
        }
    }

    fn drop_web(&mut self, key: usize, now: Instant, gateway: &mut Gateway, web: &mut dyn WebApp) {
        if let Some(Endpoint::Web(mut conn)) = self.endpoints.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if !contained(|| web.closed(ConnId(key), now, gateway)) {
                tracing::error!(conn = key, "web side panicked closing a connection");
            }
        }
    }
}

/// Runs `f`, containing a panic; false if it panicked (already reported by the panic hook).
fn contained(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok()
}

/// A non-blocking connect from a chosen local address (`rtsp_client_address`, e.g. a VPN's).
fn connect_from(local: IpAddr, remote: SocketAddr) -> io::Result<std::net::TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    const EINPROGRESS: i32 = 115;
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
            if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// The process's open files limit (`ulimit -n`), for the log, "?" when unknown.
fn open_files_limit() -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.to_string()
    } else {
        "?".to_owned()
    }
}
