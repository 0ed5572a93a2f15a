//! The event loop: one thread, one `mio::Poll`, every socket, and the gateway's timers.
//!
//! Each turn: wait for readiness or the gateway's next deadline, feed what arrived into the
//! gateway (or the web app), fire due timers, then carry out everything the gateway asked for
//! (camera connections, signaling messages, datagrams) before waiting again.
//!
//! This module is the loop itself; `web` holds the listeners and web connections, `camera`
//! the camera connections and their UDP sockets, `rtsp_server` the RTSP server's listener and
//! players, `transmit` the batched sending of the gateway's datagrams.

mod camera;
mod ice_tcp;
mod rtsp_server;
mod transmit;
mod web;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use camgate_core::gateway::{Gateway, GatewayOutput, StreamId};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::camera_udp::CameraUdp;
use crate::tcp::TcpConn;
use crate::udp::UdpEndpoint;
use crate::workers::WorkerLink;

pub use web::{ConnId, ListenerKind, NoWeb, WebApp, WebIo};

#[derive(Debug, Clone)]
pub struct EventLoopConfig {
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    /// The shared WebRTC UDP sockets: (address to bind, address announced to browsers).
    /// They differ behind a 1:1 NAT or when binding to 0.0.0.0.
    pub udp: Vec<(SocketAddr, SocketAddr)>,
    /// ICE-TCP listeners (RFC 6544 passive candidates): (address to bind, address announced).
    /// Empty: no ICE-TCP.
    pub ice_tcp: Vec<(SocketAddr, SocketAddr)>,
    /// Local address camera connections are made from (`rtsp_client_address`), if set.
    pub rtsp_client_address: Option<IpAddr>,
    /// Local UDP ports for cameras' RTP/RTCP over UDP (inclusive range).
    pub rtsp_udp_ports: (u16, u16),
    /// Runs of datagrams to one viewer leave as UDP GSO messages.
    pub udp_gso: bool,
    /// Certificate checks and pins for `rtsps://` cameras.
    pub camera_tls: Arc<crate::camera_tls::CameraTls>,
    /// Where the RTSP server listens for players (`None`: off).
    pub rtsp_server: Option<SocketAddr>,
    /// The RTSP server's RTP port for UDP players (even; RTCP on the next); `None`: the
    /// system picks a pair.
    pub rtsp_server_udp_port: Option<u16>,
}

enum Endpoint {
    Listener(ListenerKind, TcpListener),
    Web(TcpConn),
    Camera {
        stream: StreamId,
        conn: TcpConn,
        /// The TCP connect is under way.
        connecting: bool,
        /// The gateway was told the connection is up (for TLS: after the handshake).
        announced: bool,
    },
    Udp(UdpEndpoint),
    /// An ICE-TCP listener and the address browsers are told.
    IceListener {
        listener: TcpListener,
        announced: SocketAddr,
    },
    /// A browser's ICE-TCP connection.
    IceTcp(Box<ice_tcp::IceTcpConn>),
    CameraUdp(CameraUdp),
    /// A camera connection being closed: flushes what is queued (a TEARDOWN), then goes.
    Closing(TcpConn),
    /// The RTSP server's listener (`rtsp_server`).
    RtspListener(TcpListener),
    /// An RTSP player's connection.
    Player(rtsp_server::PlayerConn),
    /// The RTSP server's RTP or RTCP port for UDP players (the sockets are `player_udp`).
    PlayerUdp,
}

/// Slices of mirrored media (`workers::MEDIA_SLICE` items each) one loop turn takes: a
/// starved worker's turns stay short, so it still reads its viewers' STUN checks in time.
const MIRROR_SLICES_PER_TURN: usize = 4;

/// The token of the waker that lookup threads ring (never a slab key).
const WAKER: Token = Token(usize::MAX);

pub struct EventLoop {
    poll: Poll,
    endpoints: Slab<Endpoint>,
    waker: Arc<mio::Waker>,
    cameras: camera::Cameras,
    read_buf: Vec<u8>,
    /// Listeners whose `accept` failed for want of a descriptor (EMFILE, ENFILE) or memory.
    /// Edge-triggered polling would not report their queued connections again, and a full
    /// listen queue takes no new one to report, so they are retried on every loop turn.
    accept_retry: Vec<usize>,
    /// Sockets whose reading stopped at a turn's budget with more waiting (see
    /// `camera::read_camera`): read again next turn, which then does not wait in `poll`.
    read_retry: Vec<usize>,
    /// Mirrored media is waiting beyond what the last turn took (see `take_mirrored`).
    mirrored_left: bool,
    /// A descriptor kept free for refusing clients at the open files limit.
    spare_fd: web::SpareFd,
    /// Swapped with `read_retry` while it is worked through; capacity is reused.
    retrying: Vec<usize>,
    tx: transmit::TxBatch,
    /// The other workers, when there are several.
    link: Option<WorkerLink>,
    /// The RTSP server's RTP/RTCP sockets for UDP players, when it is on.
    player_udp: Option<rtsp_server::PlayerUdp>,
    /// ICE-TCP connections that have not named a viewer yet, and when a refusal was last
    /// logged (see `ice_tcp::MAX_UNROUTED`).
    ice_tcp_unrouted: ice_tcp::Unrouted,
}

impl EventLoop {
    pub fn new(config: &EventLoopConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let mut this = Self {
            poll,
            endpoints: Slab::new(),
            waker,
            cameras: camera::Cameras::new(config),
            accept_retry: Vec::new(),
            read_retry: Vec::new(),
            retrying: Vec::new(),
            spare_fd: web::SpareFd::new(),
            mirrored_left: false,
            read_buf: vec![0; 64 * 1024],
            tx: transmit::TxBatch::new(),
            link: None,
            player_udp: None,
            ice_tcp_unrouted: ice_tcp::Unrouted::default(),
        };
        for (kind, addr) in &config.listeners {
            this.listen(*kind, *addr)?;
        }
        if let Some(addr) = config.rtsp_server {
            this.listen_rtsp(addr, config.rtsp_server_udp_port, config.udp_gso)?;
        }
        for (addr, announced) in &config.udp {
            let mut udp = UdpEndpoint::bind(*addr, *announced, config.udp_gso)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}")))?;
            let key = this.endpoints.vacant_key();
            this.poll
                .registry()
                .register(&mut udp.socket, Token(key), Interest::READABLE)?;
            this.tx.add_socket(udp.announced, key);
            this.endpoints.insert(Endpoint::Udp(udp));
        }
        for (addr, announced) in &config.ice_tcp {
            this.listen_ice_tcp(*addr, *announced)?;
        }
        Ok(this)
    }

    /// What other workers ring to wake this loop (see `WorkerLink::link_all`).
    pub fn waker(&self) -> Arc<mio::Waker> {
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

    /// The ICE-TCP listeners' announced addresses (ports resolved when 0 was asked for).
    pub fn ice_tcp_addrs(&self) -> Vec<SocketAddr> {
        self.endpoints
            .iter()
            .filter_map(|(_, e)| match e {
                Endpoint::IceListener { announced, .. } => Some(*announced),
                _ => None,
            })
            .collect()
    }

    /// Where the RTSP server listens (its port resolved when 0 was asked for), if it is on.
    pub fn rtsp_server_addr(&self) -> Option<SocketAddr> {
        self.endpoints.iter().find_map(|(_, e)| match e {
            Endpoint::RtspListener(l) => l.local_addr().ok(),
            _ => None,
        })
    }

    /// The RTSP server's RTP and RTCP ports for UDP players (on the listener's address), if
    /// it is on: for `ServerConfig::udp_server_ports`.
    pub fn rtsp_server_udp_ports(&self) -> Option<(u16, u16)> {
        self.player_udp.as_ref().map(|u| u.ports)
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
            let wait = if self.read_retry.is_empty() && !self.mirrored_left {
                wait
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                // Read per event: a turn can be long when the process was starved, and str0m
                // must see when each datagram (a STUN check) really came.
                let now = Instant::now();
                if event.token() == WAKER {
                    self.handle_wake(now, gateway);
                    continue;
                }
                self.handle_event(event.token().0, now, gateway, web, &mut web_io);
                self.apply_web_io(&mut web_io, now, gateway, web);
            }
            if self.mirrored_left {
                self.take_mirrored(gateway);
            }
            std::mem::swap(&mut self.read_retry, &mut self.retrying);
            while let Some(key) = self.retrying.pop() {
                let now = Instant::now();
                self.handle_event(key, now, gateway, web, &mut web_io);
                self.apply_web_io(&mut web_io, now, gateway, web);
            }
            let now = Instant::now();
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
                self.sweep_ice_tcp(now, gateway);
            }
            self.apply_gateway_outputs(now, gateway, web, &mut web_io);
        }
        Ok(())
    }

    /// The waker rang: host name lookups finished, or other workers sent messages or media.
    fn handle_wake(&mut self, now: Instant, gateway: &mut Gateway) {
        self.finish_lookups(now, gateway);
        while let Some((from, forward)) = self.link.as_ref().and_then(|l| l.try_recv()) {
            gateway.handle_forward(from, forward, now);
        }
        self.take_mirrored(gateway);
    }

    /// Media of cameras other workers pull, for this worker's mirrors: a turn's share of it,
    /// what each slice produced sent before the next; the rest next turn (`mirrored_left`).
    fn take_mirrored(&mut self, gateway: &mut Gateway) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let (tx, endpoints, player_udp) = (&mut self.tx, &mut self.endpoints, &mut self.player_udp);
        self.mirrored_left = link.take_media(MIRROR_SLICES_PER_TURN, |mut items| {
            loop {
                gateway.handle_mirrored(Instant::now(), &mut items);
                // Datagrams for UDP players leave whenever they come due (as in `read_camera`).
                if let Some(u) = player_udp.as_mut() {
                    u.send(gateway);
                }
                if items.len() == 0 {
                    break;
                }
            }
            tx.flush(gateway, endpoints);
        });
        if self.tx.has_dead() {
            self.close_dead_ice_tcp(gateway);
        }
    }

    /// Socket `key` is ready: hands it to the module that owns its kind of endpoint.
    fn handle_event(
        &mut self,
        key: usize,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        io: &mut WebIo,
    ) {
        match self.endpoints.get_mut(key) {
            None => {}
            Some(Endpoint::Listener(..)) => self.accept_web(key, now, web),
            Some(Endpoint::Web(_)) => self.read_web(key, now, gateway, web, io),
            Some(Endpoint::Camera { .. }) => self.read_camera(key, now, gateway),
            Some(Endpoint::Closing(_)) => self.read_closing(key),
            Some(Endpoint::RtspListener(_)) => self.accept_players(key, now, gateway),
            Some(Endpoint::Player(_)) => self.player_ready(key, now, gateway),
            Some(Endpoint::PlayerUdp) => self.read_player_udp(key, now, gateway),
            Some(Endpoint::CameraUdp(_)) => self.read_camera_udp(key, gateway),
            Some(Endpoint::IceListener { .. }) => self.accept_ice_tcp(key, now),
            Some(Endpoint::IceTcp(_)) => self.ready_ice_tcp(key, now, gateway),
            Some(Endpoint::Udp(udp)) => {
                // str0m matches datagrams against the candidate it announced.
                let local = udp.announced;
                udp.recv_all(&mut |source, data| gateway.handle_udp(now, source, local, data));
                self.flush_transmits(gateway);
            }
        }
    }

    /// Carries out everything the gateway asked for, sending its datagrams between outputs.
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
            self.apply_output(output, now, gateway, web, io);
        }
    }

    fn apply_output(
        &mut self,
        output: GatewayOutput,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        io: &mut WebIo,
    ) {
        match output {
            GatewayOutput::WsSend { session, text } => {
                self.send_session_text(session, &text, now, gateway, web, io)
            }
            GatewayOutput::WsClose { session } => {
                self.close_session(session, now, gateway, web, io)
            }
            GatewayOutput::RtspConnect {
                stream,
                host,
                port,
                tls,
            } => {
                // The session waits in `Cameras` for the TCP connection (after a name lookup).
                self.cameras.tls_sessions.remove(&stream);
                if tls {
                    match self.cameras.tls.session(&host, port) {
                        Ok(session) => {
                            self.cameras.tls_sessions.insert(stream, session);
                        }
                        Err(why) => {
                            gateway.handle_rtsp_tls_failed(stream, now, why);
                            return;
                        }
                    }
                }
                // An address given as such is checked here; a name once looked up.
                let literal = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>();
                if literal.is_ok_and(|ip| !gateway.camera_address_allowed(stream, now, ip)) {
                    self.cameras.tls_sessions.remove(&stream);
                    return;
                }
                if let Err(e) = self.connect_camera(stream, &host, port) {
                    tracing::info!(stream = stream.0, "camera connect failed: {e}");
                    gateway.handle_rtsp_lost(stream, now);
                }
            }
            GatewayOutput::RtspSend { stream, data } => {
                self.send_camera(stream, &data, now, gateway)
            }
            GatewayOutput::PlayerWrite { conn } => self.write_player(conn.0, now, gateway),
            GatewayOutput::PlayerClose { conn } => self.close_player(conn, now, gateway),
            GatewayOutput::Forward { worker, forward } => match &self.link {
                Some(link) if worker != link.here() => {
                    if !link.send(worker, forward) {
                        tracing::warn!(worker, "worker gone: message dropped");
                    }
                }
                _ => gateway.handle_forward(worker, forward, now),
            },
            GatewayOutput::Mirrored { worker } => match &self.link {
                Some(link) if worker != link.here() => {
                    link.send_media(worker, gateway.mirror_outbox(worker))
                }
                _ => {
                    let mut items = std::mem::take(gateway.mirror_outbox(worker)).into_iter();
                    while items.len() > 0 {
                        gateway.handle_mirrored(now, &mut items);
                        self.send_player_datagrams(gateway);
                    }
                }
            },
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
            } => self.send_camera_udp(stream, track, rtcp, host.as_deref(), port, &data),
            GatewayOutput::RtspClose { stream } => self.close_camera(stream),
        }
    }

    /// Socket `key` has more to read than one turn takes: read it again next turn.
    fn read_later(&mut self, key: usize) {
        if !self.read_retry.contains(&key) {
            self.read_retry.push(key);
        }
    }

    fn flush_transmits(&mut self, gateway: &mut Gateway) {
        self.send_player_datagrams(gateway);
        self.tx.flush(gateway, &mut self.endpoints);
        if self.tx.has_dead() {
            self.close_dead_ice_tcp(gateway);
        }
    }
}

/// Runs `f`, containing a panic; false if it panicked (already reported by the panic hook).
fn contained(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok()
}
