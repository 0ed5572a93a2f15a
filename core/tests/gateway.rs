//! The whole relay, hermetic and deterministic: a scripted RTSP camera, the `Gateway`, and a
//! str0m peer standing in for the browser, all exchanging bytes in memory on a simulated clock.
//! (The same path runs against real GStreamer and Chromium in tests/browser.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camgate_core::gateway::{Gateway, GatewayConfig, GatewayOutput, SessionId, StreamId};
use camgate_core::ice_tcp::{Deframer, SendQueue};
use camgate_core::ids::ConnId;
use camgate_core::mirror::MirrorItem;
use camgate_core::placement::Placement;
use camgate_core::rtp::RtpPacket;
use camgate_core::rtsp::{RtspClient, RtspConfig, RtspEvent, RtspOutput, RtspTransport};
use camgate_testkit::camera::FakeCamera;
use camgate_testkit::nal::filler as nal;
use serde_json::Value;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

mod counting_alloc;
use counting_alloc::allocs;
mod players;

/// GOP replays spread over loop turns.
#[path = "gateway/replays.rs"]
mod replays;

/// (payload type, RTP time, sender report in force: (NTP time, RTP time)).
type ReceivedRtp = (u8, u32, Option<(std::time::SystemTime, u32)>);

/// A browser: a str0m peer in frame mode that depacketizes what camgate sends.
struct Browser {
    session: SessionId,
    rtc: Rtc,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    ws: Vec<Value>,
    /// (arrival time, RTP time, Annex-B access unit)
    frames: Vec<(Instant, u32, Vec<u8>)>,
    /// Audio frames: (codec, payload)
    audio: Vec<(str0m::format::Codec, Vec<u8>)>,
    /// Its datagrams no longer reach anyone (tab killed, network gone).
    vanished: bool,
    /// Its DTLS records are dropped on the way to camgate (STUN still passes).
    drop_dtls: bool,
    /// STUN from camgate (the answers to its checks) never reaches it.
    drop_stun_in: bool,
    /// RTP packets as a receiver sees them (RTP-mode browsers only): payload type, RTP time,
    /// and the sender report in force (NTP time, RTP time).
    rtp: Vec<ReceivedRtp>,
    /// The same packets' sequence number, RTP time and a hash of the payload.
    rtp_seq: Vec<(u64, u32, u64)>,
    video_mid: Option<str0m::media::Mid>,
    /// A bottleneck on the way to it (None: delivered at once).
    link: Option<Link>,
    /// The next this many video datagrams to it (over 1000 bytes: a frame's fragments) are lost.
    lose_video: usize,
    /// Video datagrams (over 1000 bytes) that reached it.
    video_in: usize,
    /// What it sends reaches the gateway this much later (held in `uplink` until then).
    uplink_delay: Duration,
    uplink: std::collections::VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    /// camgate sits behind a NAT that lets this browser's datagrams in only once camgate has
    /// sent one to it (a router forwarding no media port); `nat_open` once it has.
    behind_nat: bool,
    nat_open: bool,
    /// An ICE-TCP browser's connection to the gateway's TCP candidate.
    tcp: Option<TcpPipe>,
}

/// Both directions of an ICE-TCP connection as byte streams of RFC 4571 frames, delivered in
/// small pieces that cut frames anywhere.
struct TcpPipe {
    /// The gateway's address (the passive candidate).
    server: SocketAddr,
    down: SendQueue,
    down_deframer: Deframer,
    up: SendQueue,
    up_deframer: Deframer,
}

impl TcpPipe {
    fn new(server: SocketAddr) -> Self {
        TcpPipe {
            server,
            down: SendQueue::new(usize::MAX),
            down_deframer: Deframer::new(),
            up: SendQueue::new(usize::MAX),
            up_deframer: Deframer::new(),
        }
    }

    /// The frames the bytes queued in `queue` complete, read `chunk` bytes at a time.
    fn take(queue: &mut SendQueue, deframer: &mut Deframer, chunk: usize) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let bytes = queue.unsent().to_vec();
        queue.consumed(bytes.len());
        for piece in bytes.chunks(chunk) {
            deframer
                .feed(piece, |f| {
                    frames.push(f.to_vec());
                    true
                })
                .unwrap();
        }
        frames
    }
}

/// A link of `rate` bit/s with a drop-tail queue of `limit` bytes, like `netem rate`:
/// datagrams to the browser wait their turn and leave at the link's pace.
struct Link {
    rate: u64,
    limit: usize,
    queue: std::collections::VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    queued: usize,
    /// Bytes the link may still send now (refilled as the clock runs, at most one datagram).
    credit: f64,
    dropped: usize,
}

impl Link {
    fn new(rate: u64, limit: usize) -> Self {
        Link {
            rate,
            limit,
            queue: Default::default(),
            queued: 0,
            credit: 0.0,
            dropped: 0,
        }
    }
}

impl Browser {
    /// The answer SDP it got.
    fn answer(&self) -> &str {
        (self.ws.iter())
            .find(|v| v["message"] == "setRemoteSDP")
            .and_then(|v| v["data"][1].as_str())
            .expect("setRemoteSDP")
    }

    /// The FAILED status message it got.
    fn failed(&self) -> &Value {
        (self.ws.iter())
            .find(|v| v["data"][0]["status"] == "FAILED")
            .expect("FAILED")
    }

    fn statuses(&self) -> Vec<String> {
        self.ws
            .iter()
            .filter(|v| v["message"] == "notifyStreamStatusEvent")
            .map(|v| v["data"][0]["status"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct Harness {
    now: Instant,
    /// Worker 0's gateway: every browser's signaling session lives here.
    gateway: Gateway,
    /// The gateways of workers 1.. (multi-worker tests); worker w's WebRTC port is 20000 + w.
    others: Vec<Gateway>,
    /// The worker whose gateway pulls the camera.
    camera_worker: usize,
    /// Forwards from one worker to another: (from, to) and how many.
    forwards: Vec<(usize, usize)>,
    camera: FakeCamera,
    stream: Option<StreamId>,
    connects: usize,
    rtsp_closed: bool,
    /// Heap allocations made inside the gateway's media calls (camera data in, datagrams out).
    media_allocs: usize,
    /// The part of `media_allocs` made while taking camera (or mirrored) data in.
    ingest_allocs: usize,
    /// The part of `media_allocs` made while polling datagrams out.
    transmit_allocs: usize,
    /// Datagrams over 500 bytes: media, not RTCP (the tests' packets are 900 bytes).
    media_datagrams: usize,
    /// Times a gateway handed another mirrored media (a `Mirrored` output).
    wakes: usize,
    /// The media lane between workers, reused (as the event loop's lanes are).
    lane: Vec<MirrorItem>,
    /// Every output of every gateway, in order, when recording (the determinism test).
    record: Option<Vec<String>>,
    datagrams: usize,
    /// Connection attempts are refused while set.
    camera_down: bool,
    browsers: Vec<Browser>,
    /// Browsers ever created, for unique session ids and addresses.
    browsers_made: usize,
    /// The camera ports connections went to, in order.
    ports: Vec<u16>,
    /// The H.264 profiles new browsers offer (None: str0m's usual set).
    browser_h264_profiles: Option<&'static [u32]>,
    /// New browsers offer H.264 in packetization-mode 0 only (and no VP8).
    browser_mode0: bool,
    /// New browsers offer Opus but no G.711.
    browser_no_g711: bool,
    /// New browsers offer H.265 (Main, Main tier, level 6) too, as Safari does.
    browser_h265: bool,
    /// New browsers also offer G.722 (Chromium and Firefox do).
    browser_g722: bool,
    /// A STUN server at `.0` that answers every Binding request with public address `.1`.
    stun_server: Option<(SocketAddr, SocketAddr)>,
    /// Binding requests the STUN server answered.
    stun_answered: usize,
    /// New browsers connect over ICE-TCP and ask for `transport: "TCP"`.
    browser_tcp: bool,
    /// Camera connections the gateway refused to make (host rules).
    refused_connects: usize,
    /// RTSP players of worker 0 (camgate's own RTSP client, as a chained camgate is).
    players: Vec<Player>,
    /// Datagrams for UDP players, copied out of the gateway into reused buffers:
    /// (destination, RTCP, start, end) in `player_udp_bytes`.
    player_udp: Vec<(SocketAddr, bool, usize, usize)>,
    player_udp_bytes: Vec<u8>,
    /// Datagrams for UDP players sent while the players were being driven (they came due),
    /// delivered on the next `drive_players`.
    player_udp_later: Vec<(SocketAddr, bool, usize, usize)>,
    player_udp_later_bytes: Vec<u8>,
    /// Allocations made by `send_player_datagrams`.
    player_udp_allocs: usize,
    /// The socket refuses datagrams to the UDP player with this `udp_base` (as a send that
    /// would block or fails): the gateway must drop them, and only them.
    refuse_udp_to: Option<u16>,
    /// Allocations made inside the gateways' `handle_timeout` (timers, GOP replays).
    timeout_allocs: usize,
    /// When set, each step's media datagrams (over 500 bytes) as (source, destination): one
    /// entry per step, a loop turn's worth.
    media_log: Option<Vec<Vec<(SocketAddr, SocketAddr)>>>,
}

/// An RTSP player: an `RtspClient` connected to the gateway's RTSP server.
struct Player {
    conn: ConnId,
    client: RtspClient,
    /// RTP packets received: (track, packet).
    media: Vec<(usize, Vec<u8>)>,
    /// RTCP packets received: (track, packet).
    rtcp: Vec<(usize, Vec<u8>)>,
    events: Vec<RtspEvent>,
    /// Reads its socket (else the gateway's queue for it only grows).
    reading: bool,
    closed_by_gateway: bool,
    /// Where it connected from.
    peer: SocketAddr,
    /// Over UDP: its RTP ports are `udp_base + 2 * track`, RTCP the next.
    udp_base: Option<u16>,
    /// Sends its RTSP requests (keepalives included) / its receiver reports over UDP; a player
    /// that went silent sends neither.
    sends_requests: bool,
    sends_rtcp: bool,
    /// The most RTP datagrams it got from one `send_player_datagrams` call (one loop turn).
    max_burst: usize,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(GatewayConfig::default())
    }

    fn with_config(config: GatewayConfig) -> Self {
        let now = Instant::now();
        let server_addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let gateway = Gateway::new(GatewayConfig {
            candidates: vec![server_addr],
            tcp_candidates: vec![server_addr],
            // As the server: one certificate for every viewer.
            dtls_cert: config.dtls_cert.clone().or_else(test_certificate),
            ..config
        });
        Self {
            now,
            gateway,
            others: Vec::new(),
            camera_worker: 0,
            forwards: Vec::new(),
            camera: FakeCamera::default(),
            stream: None,
            connects: 0,
            rtsp_closed: false,
            media_allocs: 0,
            ingest_allocs: 0,
            transmit_allocs: 0,
            media_datagrams: 0,
            wakes: 0,
            lane: Vec::new(),
            record: None,
            datagrams: 0,
            camera_down: false,
            browsers: Vec::new(),
            browsers_made: 0,
            ports: Vec::new(),
            browser_h264_profiles: None,
            browser_mode0: false,
            browser_no_g711: false,
            browser_h265: false,
            browser_g722: false,
            stun_server: None,
            stun_answered: 0,
            browser_tcp: false,
            refused_connects: 0,
            players: Vec::new(),
            player_udp: Vec::with_capacity(4096),
            player_udp_bytes: Vec::with_capacity(4 << 20),
            player_udp_later: Vec::new(),
            player_udp_later_bytes: Vec::new(),
            player_udp_allocs: 0,
            refuse_udp_to: None,
            timeout_allocs: 0,
            media_log: None,
        }
    }

    /// A new RTSP player of `url` on worker 0, on loopback; returns its index.
    fn add_player(&mut self, url: &str) -> usize {
        self.add_player_from(url, "127.0.0.1:50000")
    }

    /// A new RTSP player of `url` connected from `peer`.
    fn add_player_from(&mut self, url: &str, peer: &str) -> usize {
        self.add_player_with(url, peer, RtspTransport::Tcp)
    }

    /// A new RTSP player of `url` on loopback asking for UDP transport only.
    fn add_udp_player(&mut self, url: &str) -> usize {
        let port = 50000 + self.players.len();
        self.add_player_with(url, &format!("127.0.0.1:{port}"), RtspTransport::Udp)
    }

    fn add_player_with(&mut self, url: &str, peer: &str, transport: RtspTransport) -> usize {
        let conn = ConnId(900 + self.players.len());
        let udp_base =
            (transport == RtspTransport::Udp).then(|| 10000 + 100 * self.players.len() as u16);
        let config = RtspConfig {
            transport,
            // Within `udp_server`'s 5 s session timeout.
            receiver_report_interval: Duration::from_secs(2),
            ..RtspConfig::default()
        };
        let mut client = RtspClient::new(url, config, self.now).unwrap();
        client.handle_connected(self.now);
        self.gateway
            .handle_player_opened(conn, peer.parse().unwrap(), self.now);
        self.players.push(Player {
            conn,
            client,
            media: Vec::new(),
            rtcp: Vec::new(),
            events: Vec::new(),
            reading: true,
            closed_by_gateway: false,
            peer: peer.parse().unwrap(),
            udp_base,
            sends_requests: true,
            sends_rtcp: true,
            max_burst: 0,
        });
        self.players.len() - 1
    }

    /// Moves bytes between the players and worker 0's gateway. True when any moved.
    fn drive_players(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        // Datagrams for UDP players, as the loop sends them from the server's ports.
        let (items, bytes) = (&mut self.player_udp, &mut self.player_udp_bytes);
        items.clear();
        bytes.clear();
        // What was sent while the players were driven last time (see below) first.
        for &(to, rtcp, a, b) in &self.player_udp_later {
            items.push((to, rtcp, bytes.len(), bytes.len() + b - a));
            bytes.extend_from_slice(&self.player_udp_later_bytes[a..b]);
        }
        self.player_udp_later.clear();
        self.player_udp_later_bytes.clear();
        let refused = self.refuse_udp_to;
        let before = allocs();
        send_player_datagrams(&mut self.gateway, items, bytes, refused);
        self.player_udp_allocs += allocs() - before;
        for p in &mut self.players {
            let Some(base) = p.udp_base else { continue };
            let burst = (self.player_udp.iter())
                .filter(|(to, rtcp, ..)| !rtcp && (base..base + 100).contains(&to.port()))
                .count();
            p.max_burst = p.max_burst.max(burst);
        }
        let (rtp_port, rtcp_port) = self
            .gateway
            .config()
            .rtsp_server
            .udp_server_ports
            .unwrap_or_default();
        for &(to, rtcp, a, b) in &self.player_udp {
            moved = true;
            let Some(p) = self.players.iter_mut().find(|p| {
                p.peer.ip() == to.ip()
                    && p.udp_base
                        .is_some_and(|base| (base..base + 100).contains(&to.port()))
            }) else {
                panic!("a datagram to {to}, no player there");
            };
            let track = usize::from(to.port() - p.udp_base.unwrap()) / 2;
            assert_eq!(to.port() % 2 == 1, rtcp, "RTCP to the odd port");
            let from = SocketAddr::new(to.ip(), if rtcp { rtcp_port } else { rtp_port });
            let data = &self.player_udp_bytes[a..b];
            let media = p.client.handle_udp_input(now, track, rtcp, from, data);
            for m in media {
                let to = if m.rtcp { &mut p.rtcp } else { &mut p.media };
                to.push((m.track, m.data.to_vec()));
            }
        }
        for p in &mut self.players {
            if p.closed_by_gateway {
                continue;
            }
            if p.reading {
                let down = self.gateway.player_pending(p.conn).to_vec();
                if !down.is_empty() {
                    moved = true;
                    self.gateway.player_written(p.conn, down.len());
                    let media = p.client.handle_input(now, &down);
                    for m in media {
                        let to = if m.rtcp { &mut p.rtcp } else { &mut p.media };
                        to.push((m.track, m.data.to_vec()));
                    }
                }
            }
            let mut playing = false;
            while let Some(o) = p.client.poll_output() {
                match o {
                    RtspOutput::Transmit(b) => {
                        moved = true;
                        if p.sends_requests {
                            self.gateway.handle_player_data(p.conn, now, &b);
                            // As the loop does after a player's input (a join storm's
                            // replays): sent now, delivered on the next call.
                            if self.gateway.player_datagrams_due() {
                                send_player_datagrams(
                                    &mut self.gateway,
                                    &mut self.player_udp_later,
                                    &mut self.player_udp_later_bytes,
                                    refused,
                                );
                            }
                        }
                    }
                    RtspOutput::Event(e) => {
                        playing |= matches!(e, RtspEvent::Playing { .. });
                        p.events.push(e);
                    }
                    RtspOutput::OpenUdp(r) if p.udp_base.is_some() => {
                        moved = true;
                        let port = p.udp_base.unwrap() + 2 * r.track as u16;
                        p.client.handle_udp_ports(now, r.track, port);
                    }
                    // Receiver reports and pinhole packets to the server's ports, from the
                    // track's ports.
                    RtspOutput::UdpTransmit(t) if p.udp_base.is_some() => {
                        let port = p.udp_base.unwrap() + 2 * t.track as u16 + u16::from(t.rtcp);
                        if p.sends_rtcp {
                            let from = SocketAddr::new(p.peer.ip(), port);
                            self.gateway.handle_player_udp(now, from);
                        }
                    }
                    o => panic!("player asked for {o:?}"),
                }
            }
            if playing {
                // The client hands out media that came with the PLAY answer on its next read.
                let media = p.client.handle_input(now, &[]);
                p.media.extend(
                    media
                        .filter(|m| !m.rtcp)
                        .map(|m| (m.track, m.data.to_vec())),
                );
            }
        }
        moved
    }

    /// A gateway with `stun_servers` set to the harness's STUN server at 127.0.0.1:3478, which
    /// answers that camgate's public address is `public`; run until that answer is in.
    fn with_stun_server(public: &str) -> Self {
        let server: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let mut h = Harness::with_config(GatewayConfig {
            stun_servers: vec![camgate_core::stun::StunServer {
                url: "stun:127.0.0.1:3478".into(),
                addr: server,
            }],
            ..GatewayConfig::default()
        });
        h.stun_server = Some((server, public.parse().unwrap()));
        h.run_for(Duration::from_millis(100));
        h
    }

    /// `n` workers sharing a placement table, as the server runs them with `workers = n`.
    fn with_workers(n: usize) -> (Self, Vec<Placement>) {
        Self::with_workers_margin(n, GatewayConfig::default().viewer_spread_margin)
    }

    /// `n` workers that spread a camera's viewers past `margin` (see `viewer_spread_margin`).
    fn with_workers_margin(n: usize, margin: usize) -> (Self, Vec<Placement>) {
        let placements = camgate_io::workers::placements(n);
        let config = |w: usize| GatewayConfig {
            dtls_cert: test_certificate(),
            candidates: vec![SocketAddr::from(([127, 0, 0, 1], 20000 + w as u16))],
            placement: Some(placements[w].clone()),
            viewer_spread_margin: margin,
            ..GatewayConfig::default()
        };
        let mut h = Self::with_config(config(0));
        h.others = (1..n).map(|w| Gateway::new(config(w))).collect();
        (h, placements)
    }

    fn gw(&mut self, worker: usize) -> &mut Gateway {
        match worker {
            0 => &mut self.gateway,
            w => &mut self.others[w - 1],
        }
    }

    /// Whether `addr` is a worker's WebRTC socket (a browser's full-ICE checks also go to
    /// public addresses that lead nowhere here).
    fn reaches_a_worker(&self, from: SocketAddr, addr: SocketAddr) -> bool {
        let nat_closed =
            (self.browsers.iter()).any(|b| b.addr == from && b.behind_nat && !b.nat_open);
        !nat_closed
            && addr.ip().is_loopback()
            && (20000..=20000 + self.others.len() as u16).contains(&addr.port())
    }

    /// The worker whose WebRTC socket has this address.
    fn worker_at(addr: SocketAddr) -> usize {
        (addr.port() - 20000) as usize
    }

    fn signal(&mut self, b: usize, message: &str, data: Value) {
        let text = serde_json::json!({"message": message, "data": [data]}).to_string();
        let session = self.browsers[b].session;
        self.gateway
            .handle_session_message(session, self.now, &text);
    }

    /// A new browser session asks to play `url`; returns its index.
    fn play(&mut self, url: &str) -> usize {
        self.play_with(url, false)
    }

    /// A browser whose only H.264 is packetization-mode 0.
    fn play_mode0(&mut self, url: &str) -> usize {
        self.browser_mode0 = true;
        let b = self.play(url);
        self.browser_mode0 = false;
        b
    }

    /// Like `play`; an `rtp_mode` browser records RTP packets instead of frames.
    fn play_with(&mut self, url: &str, rtp_mode: bool) -> usize {
        let b = self.browsers.len();
        self.browsers_made += 1;
        let n = self.browsers_made;
        let addr: SocketAddr = format!("127.0.0.1:{}", 40000 + n).parse().unwrap();
        let mut config = Rtc::builder()
            .set_rtp_mode(rtp_mode)
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false)
            .enable_pcmu(!self.browser_no_g711, false)
            .enable_h265(self.browser_h265)
            .enable_g722(self.browser_g722, false);
        if self.browser_mode0 {
            config = config.enable_vp8(false);
            config
                .codec_config()
                .add_h264(120.into(), None, false, 0x42e01f);
        } else {
            match self.browser_h264_profiles {
                // Like Firefox: constrained baseline and baseline only.
                Some(profiles) => {
                    for (i, p) in profiles.iter().enumerate() {
                        config
                            .codec_config()
                            .add_h264((120 + i as u8).into(), None, true, *p);
                    }
                }
                None => config = config.enable_h264(true),
            }
        }
        let mut rtc = config.build(self.now);
        let tcp = self
            .browser_tcp
            .then(|| TcpPipe::new("127.0.0.1:20000".parse().unwrap()));
        if tcp.is_some() {
            let c = Candidate::builder().tcp().host(addr);
            rtc.add_local_candidate(c.tcptype(str0m::net::TcpType::Active).build().unwrap());
        } else {
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        }
        let session = ConnId(7 + n).session();
        self.browsers.push(Browser {
            session,
            rtc,
            addr,
            pending: None,
            ws: Vec::new(),
            frames: Vec::new(),
            audio: Vec::new(),
            vanished: false,
            drop_dtls: false,
            drop_stun_in: false,
            behind_nat: false,
            nat_open: false,
            lose_video: 0,
            video_in: 0,
            uplink_delay: Duration::ZERO,
            uplink: Default::default(),
            rtp: Vec::new(),
            rtp_seq: Vec::new(),
            video_mid: None,
            link: None,
            tcp,
        });
        self.gateway.handle_session_opened(session, self.now);
        self.signal(b, "connection", serde_json::json!({"appKey": "defaultApp"}));
        let mut api = self.browsers[b].rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        self.browsers[b].video_mid = Some(video_mid);
        self.browsers[b].pending = Some(pending);
        let transport = if self.browser_tcp { "TCP" } else { "UDP" };
        self.signal(b, "playStream", serde_json::json!({"mediaSessionId": format!("m{b}"), "name": url, "sdp": offer.to_sdp_string(), "transport": transport}));
        b
    }

    /// Browser `b` asks for a keyframe (PLI), as after a loss it could not repair.
    fn request_keyframe(&mut self, b: usize) {
        let mid = self.browsers[b].video_mid.unwrap();
        self.browsers[b]
            .rtc
            .writer(mid)
            .unwrap()
            .request_keyframe(None, str0m::media::KeyframeRequestKind::Pli)
            .unwrap();
    }

    fn browser_by_session(&mut self, session: SessionId) -> &mut Browser {
        self.browsers
            .iter_mut()
            .find(|b| b.session == session)
            .unwrap()
    }

    /// Moves every queued byte, message and datagram, then advances the clock by `dt`.
    fn step(&mut self, dt: Duration) {
        if let Some(log) = self.media_log.as_mut() {
            log.push(Vec::new());
        }
        for _ in 0..50 {
            let mut moved = false;
            for w in 0..=self.others.len() {
                while let Some(out) = self.gw(w).poll_output() {
                    moved = true;
                    if let Some(record) = &mut self.record {
                        record.push(format!("{w}: {out:?}"));
                    }
                    match out {
                        GatewayOutput::Forward { worker, forward } => {
                            self.forwards.push((w, worker));
                            let now = self.now;
                            self.gw(worker).handle_forward(w, forward, now);
                        }
                        GatewayOutput::WsSend { session, text } => {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            let browser = self.browser_by_session(session);
                            if v["message"] == "setRemoteSDP" {
                                let answer =
                                    SdpAnswer::from_sdp_string(v["data"][1].as_str().unwrap())
                                        .unwrap();
                                let pending = browser.pending.take().unwrap();
                                browser
                                    .rtc
                                    .sdp_api()
                                    .accept_answer(pending, answer)
                                    .unwrap();
                            }
                            browser.ws.push(v);
                        }
                        GatewayOutput::WsClose { .. } => {}
                        // `drive_players` reads every queue each round.
                        GatewayOutput::PlayerWrite { .. } => {}
                        GatewayOutput::PlayerClose { conn } => {
                            let p = self.players.iter_mut().find(|p| p.conn == conn).unwrap();
                            p.closed_by_gateway = true;
                            let now = self.now;
                            self.gateway.handle_player_closed(conn, now);
                        }
                        GatewayOutput::RtspConnect {
                            stream, host, port, ..
                        } => {
                            assert_eq!(host.as_str(), "127.0.0.1");
                            self.ports.push(port);
                            let now = self.now;
                            // As the loop does before connecting to an address.
                            let ip = host.parse().unwrap();
                            if !self.gw(w).camera_address_allowed(stream, now, ip) {
                                self.refused_connects += 1;
                                continue;
                            }
                            if self.camera_down {
                                self.gw(w).handle_rtsp_lost(stream, now);
                                continue;
                            }
                            // A fresh TCP connection: the camera starts a new session, with
                            // new sequence numbers and timestamps as after a reboot.
                            self.camera.inbox.clear();
                            self.camera.playing = false;
                            self.camera.seq = self.camera.seq.wrapping_add(10_000);
                            self.camera.time_base = self.camera.time_base.wrapping_add(7_777_777);
                            self.rtsp_closed = false;
                            self.stream = Some(stream);
                            self.connects += 1;
                            self.camera_worker = w;
                            self.gw(w).handle_rtsp_connected(stream, now);
                        }
                        GatewayOutput::RtspSend { data, .. } => self.camera.receive(&data),
                        GatewayOutput::RtspClose { .. } => self.rtsp_closed = true,
                        // No UDP here: the client's automatic transport falls back to TCP.
                        GatewayOutput::RtspUdpOpen { stream, track } => {
                            let now = self.now;
                            self.gw(w).handle_rtsp_udp_ports(stream, now, track, None)
                        }
                        GatewayOutput::RtspUdpSend { .. } => {
                            panic!("no UDP transport in this harness")
                        }
                        GatewayOutput::Mirrored { worker } => {
                            // The loop carries the outbox over a lane to the mirror's worker.
                            self.wakes += 1;
                            let now = self.now;
                            let mut lane = std::mem::take(&mut self.lane);
                            lane.append(self.gw(w).mirror_outbox(worker));
                            let mut items = lane.drain(..);
                            while items.len() > 0 {
                                let before = allocs();
                                self.gw(worker).handle_mirrored(now, &mut items);
                                self.media_allocs += allocs() - before;
                                self.ingest_allocs += allocs() - before;
                                // Datagrams for worker 0's UDP players came due: sent first.
                                if worker == 0 && items.len() > 0 {
                                    self.drive_players();
                                }
                            }
                            drop(items);
                            self.lane = lane;
                        }
                    }
                }
            }
            if !self.camera.to_gateway.is_empty() {
                moved = true;
                let data = std::mem::take(&mut self.camera.to_gateway);
                // Deliver in awkward pieces: TCP may split anywhere.
                let (stream, now, w) = (self.stream.unwrap(), self.now, self.camera_worker);
                for chunk in data.chunks(7) {
                    let before = allocs();
                    let taken = self.gw(w).handle_rtsp_data(stream, now, chunk);
                    assert_eq!(taken, chunk.len(), "a piece this small is taken whole");
                    self.media_allocs += allocs() - before;
                    self.ingest_allocs += allocs() - before;
                }
            }
            let mut browser_sent = Vec::new();
            let mut worker = 0;
            while let Some(t) = loop {
                let before = allocs();
                let t = self.gw(worker).poll_transmit();
                self.media_allocs += allocs() - before;
                self.transmit_allocs += allocs() - before;
                if let Some(t) = t.as_ref().filter(|t| t.contents.len() > 500) {
                    self.media_datagrams += 1;
                    if let Some(turn) = self.media_log.as_mut().and_then(|l| l.last_mut()) {
                        turn.push((t.source, t.destination));
                    }
                }
                if t.is_some() || worker == self.others.len() {
                    break t;
                }
                worker += 1;
            } {
                self.datagrams += 1;
                moved = true;
                let now = self.now;
                if let Some((server, public)) = self.stun_server {
                    if t.destination == server {
                        self.stun_answered += 1;
                        let answer = stun_binding_success(&t.contents, public);
                        self.gw(worker).handle_udp(now, server, t.source, &answer);
                        continue;
                    }
                }
                // A browser that vanished (moved to another address) never gets it.
                let Some(browser) = self
                    .browsers
                    .iter_mut()
                    .find(|b| b.addr == t.destination && !b.vanished)
                else {
                    continue;
                };
                if browser.drop_stun_in && t.contents[0] < 4 {
                    continue;
                }
                browser.nat_open = true;
                if let Some(pipe) = browser.tcp.as_mut() {
                    assert_eq!(
                        t.proto,
                        Protocol::Tcp,
                        "an ICE-TCP viewer gets all over TCP"
                    );
                    assert!(pipe.down.push(&t.contents));
                    for frame in TcpPipe::take(&mut pipe.down, &mut pipe.down_deframer, 7) {
                        let r = Receive::new(Protocol::Tcp, t.source, t.destination, &frame);
                        browser
                            .rtc
                            .handle_input(Input::Receive(now, r.unwrap()))
                            .unwrap();
                    }
                    Self::drain_browser(browser, now, &mut browser_sent);
                    continue;
                }
                assert_eq!(t.proto, Protocol::Udp);
                if t.contents.len() > 1000 {
                    if browser.lose_video > 0 {
                        browser.lose_video -= 1;
                        continue;
                    }
                    browser.video_in += 1;
                }
                if let Some(link) = browser.link.as_mut() {
                    if link.queued + t.contents.len() > link.limit {
                        link.dropped += 1;
                    } else {
                        link.queued += t.contents.len();
                        link.queue
                            .push_back((t.source, t.destination, t.contents.to_vec()));
                    }
                    continue;
                }
                let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents).unwrap();
                browser.rtc.handle_input(Input::Receive(now, r)).unwrap();
                Self::drain_browser(browser, now, &mut browser_sent);
            }
            // Datagrams a bottleneck lets through now.
            for browser in self.browsers.iter_mut() {
                while let Some((source, destination, data)) = browser.link.as_mut().and_then(|l| {
                    let len = l.queue.front()?.2.len();
                    (len as f64 <= l.credit).then(|| {
                        l.credit -= len as f64;
                        l.queued -= len;
                        l.queue.pop_front().unwrap()
                    })
                }) {
                    moved = true;
                    let now = self.now;
                    let r = Receive::new(Protocol::Udp, source, destination, &data).unwrap();
                    browser.rtc.handle_input(Input::Receive(now, r)).unwrap();
                    Self::drain_browser(browser, now, &mut browser_sent);
                }
            }
            for s in browser_sent.drain(..) {
                moved = true;
                if !self.reaches_a_worker(s.0, s.1) {
                    continue;
                }
                let now = self.now;
                self.gw(Self::worker_at(s.1))
                    .handle_udp(now, s.0, s.1, &s.2);
            }
            moved |= self.drain_browsers();
            moved |= self.deliver_uplinks();
            moved |= self.deliver_tcp_uplinks();
            moved |= self.drive_players();
            if !moved {
                break;
            }
        }
        self.now += dt;
        for link in self.browsers.iter_mut().filter_map(|b| b.link.as_mut()) {
            let refill = link.rate as f64 / 8.0 * dt.as_secs_f64();
            link.credit = (link.credit + refill).min(refill.max(1500.0));
        }
        for w in 0..=self.others.len() {
            let now = self.now;
            let before = allocs();
            self.gw(w).handle_timeout(now);
            self.timeout_allocs += allocs() - before;
            // It stopped because datagrams for UDP players came due: sent (delivered on the
            // next `drive_players`), then the rest of its deadlines, as the loop's next turn.
            while w == 0 && self.gateway.player_datagrams_due() {
                let refused = self.refuse_udp_to;
                send_player_datagrams(
                    &mut self.gateway,
                    &mut self.player_udp_later,
                    &mut self.player_udp_later_bytes,
                    refused,
                );
                self.gateway.handle_timeout(now);
            }
        }
        for b in &mut self.browsers {
            b.rtc.handle_input(Input::Timeout(self.now)).unwrap();
        }
        for p in &mut self.players {
            p.client.handle_timeout(self.now);
        }
        self.drain_browsers();
    }

    /// Datagrams from browsers with a slow uplink whose time has come. True when any moved.
    fn deliver_uplinks(&mut self) -> bool {
        let now = self.now;
        let mut due = Vec::new();
        for b in &mut self.browsers {
            while b.uplink.front().is_some_and(|d| d.0 <= now) {
                let (_, source, destination, data) = b.uplink.pop_front().unwrap();
                due.push((source, destination, data));
            }
        }
        for (source, destination, data) in &due {
            self.gw(Self::worker_at(*destination))
                .handle_udp(now, *source, *destination, data);
        }
        !due.is_empty()
    }

    /// What ICE-TCP browsers wrote on their connections, frame by frame (cut into 5-byte
    /// reads) to the gateway. True when any moved.
    fn deliver_tcp_uplinks(&mut self) -> bool {
        let now = self.now;
        let mut frames = Vec::new();
        for b in &mut self.browsers {
            if let Some(pipe) = b.tcp.as_mut() {
                for f in TcpPipe::take(&mut pipe.up, &mut pipe.up_deframer, 5) {
                    frames.push((b.addr, pipe.server, f));
                }
            }
        }
        for (source, server, frame) in &frames {
            let routed = self.gateway.handle_tcp(now, *source, *server, frame);
            assert!(
                routed,
                "every frame of a playing browser reaches its viewer"
            );
        }
        !frames.is_empty()
    }

    /// Polls every browser; what they send goes to the gateway. True when anything moved.
    fn drain_browsers(&mut self) -> bool {
        let mut sent = Vec::new();
        let now = self.now;
        for b in &mut self.browsers {
            Self::drain_browser(b, now, &mut sent);
        }
        let now = self.now;
        sent.retain(|s| self.reaches_a_worker(s.0, s.1));
        for s in &sent {
            self.gw(Self::worker_at(s.1))
                .handle_udp(now, s.0, s.1, &s.2);
        }
        !sent.is_empty()
    }

    /// Polls one browser until it has nothing more (str0m wants a full drain after every
    /// input); what it sends is appended to `sent`.
    fn drain_browser(
        b: &mut Browser,
        now: Instant,
        sent: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    ) {
        {
            loop {
                match b.rtc.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(_) if b.vanished => {}
                    // DTLS records start with 20..=63 (RFC 7983).
                    Output::Transmit(t) if b.drop_dtls && (20..64).contains(&t.contents[0]) => {}
                    Output::Transmit(t) if b.tcp.is_some() => {
                        assert_eq!(t.proto, Protocol::Tcp);
                        assert!(b.tcp.as_mut().unwrap().up.push(&t.contents));
                    }
                    Output::Transmit(t) if !b.uplink_delay.is_zero() => b.uplink.push_back((
                        now + b.uplink_delay,
                        t.source,
                        t.destination,
                        t.contents.to_vec(),
                    )),
                    Output::Transmit(t) => {
                        sent.push((t.source, t.destination, t.contents.to_vec()))
                    }
                    Output::Event(Event::RtpPacket(p)) => {
                        b.rtp.push((
                            *p.header.payload_type,
                            p.header.timestamp,
                            p.last_sender_info
                                .map(|i| (i.ntp_time, i.rtp_time.numer() as u32)),
                        ));
                        let mut hash = std::hash::DefaultHasher::new();
                        std::hash::Hash::hash(&p.payload[..], &mut hash);
                        let hash = std::hash::Hasher::finish(&hash);
                        b.rtp_seq.push((*p.seq_no, p.header.timestamp, hash));
                    }
                    Output::Event(Event::MediaData(m)) if m.params.spec().codec.is_audio() => {
                        b.audio.push((m.params.spec().codec, m.data.to_vec()))
                    }
                    Output::Event(Event::MediaData(m)) => {
                        b.frames.push((now, m.time.numer() as u32, m.data.to_vec()))
                    }
                    Output::Event(_) => {}
                }
            }
        }
    }

    fn run_for(&mut self, total: Duration) {
        let steps = total.as_millis() / 10;
        for _ in 0..steps {
            self.step(Duration::from_millis(10));
        }
    }

    /// A harness with `viewers` browsers playing the camera through `frames` of its frames
    /// (each decoded at least three quarters of them), and the browsers' indices.
    fn playing(viewers: usize, frames: u32) -> (Harness, Vec<usize>) {
        let mut h = Harness::new();
        let browsers: Vec<usize> = (0..viewers)
            .map(|_| h.play("rtsp://127.0.0.1:8554/cam"))
            .collect();
        h.run_for(Duration::from_millis(300));
        h.camera_frames(0..frames);
        for &b in &browsers {
            assert!(h.browsers[b].frames.len() >= frames as usize * 3 / 4);
        }
        (h, browsers)
    }

    /// Frame `n` of a steady stream: one in-MTU packet (no re-fragmentation), an IDR every 25th.
    fn steady_frame(&mut self, n: u32) {
        let kind = if n.is_multiple_of(25) { 5 } else { 1 };
        self.camera.send_frame(n * 3600, &[nal(kind, 900)]);
        self.step(Duration::from_millis(40));
    }

    /// The camera sends frames 0..n at 25 fps (an IDR every 10th), while the clock runs.
    fn camera_frames(&mut self, frames: std::ops::Range<u32>) {
        for frame in frames {
            let nals = if frame % 10 == 0 {
                vec![nal(5, 4000)]
            } else {
                vec![nal(1, 600)]
            };
            self.camera.send_frame(frame * 3600, &nals);
            self.run_for(Duration::from_millis(40));
        }
    }
}

/// A DTLS certificate, as the server makes one at start for all viewers.
/// A STUN server's Binding success response to `request`: XOR-MAPPED-ADDRESS `public` (IPv4).
fn stun_binding_success(request: &[u8], public: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = public else {
        panic!("IPv4 only")
    };
    let key = &request[4..20];
    let mut msg = vec![0x01, 0x01, 0, 12];
    msg.extend_from_slice(key);
    msg.extend_from_slice(&[0x00, 0x20, 0, 8, 0, 1]);
    msg.extend_from_slice(&(public.port() ^ u16::from_be_bytes([key[0], key[1]])).to_be_bytes());
    msg.extend(v4.ip().octets().iter().zip(key).map(|(b, k)| b ^ k));
    msg
}

fn test_certificate() -> Option<str0m::config::DtlsCert> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
}

fn nal_types(annexb: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < annexb.len() {
        if annexb[i..].starts_with(&[0, 0, 1]) {
            types.push(annexb[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

#[test]
fn camera_to_browser_end_to_end() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(500));

    let methods: Vec<&str> = h
        .camera
        .requests
        .iter()
        .map(|r| r.split(' ').next().unwrap())
        .collect();
    assert_eq!(methods, ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]);
    assert!(
        h.camera.requests[2].contains("rtsp://127.0.0.1:8554/cam/track1"),
        "{}",
        h.camera.requests[2]
    );
    let ws = &h.browsers[b].ws;
    assert!(ws.iter().any(|v| v["message"] == "getUserData"));
    assert!(ws.iter().any(|v| v["message"] == "setRemoteSDP"), "{ws:?}");
    assert!(
        h.browsers[b].rtc.is_connected(),
        "ICE/DTLS did not complete"
    );

    // The camera does not repeat SPS/PPS: the gateway must put them in front of the IDR.
    // The IDR is bigger than the WebRTC MTU: the gateway must re-fragment it.
    h.camera_frames(0..30);

    assert_eq!(h.browsers[b].statuses(), ["PENDING", "PLAYING"]);
    let frames = &h.browsers[b].frames;
    assert!(frames.len() >= 25, "browser got {} frames", frames.len());
    assert_eq!(
        nal_types(&frames[0].2),
        [7, 8, 5],
        "first frame must be SPS, PPS, IDR"
    );
    assert!(
        frames[0].2.len() > 4000,
        "keyframe size {}",
        frames[0].2.len()
    );
    assert_eq!(h.gateway.streams().len(), 1);

    h.signal(
        b,
        "stopStream",
        serde_json::json!({"mediaSessionId": "m0", "name": "x"}),
    );
    h.run_for(Duration::from_millis(100));
    assert_eq!(
        h.browsers[b].statuses().last().map(String::as_str),
        Some("STOPPED")
    );
    assert!(
        !h.rtsp_closed,
        "the connection lingers after the last viewer"
    );
    h.run_for(Duration::from_secs(6));
    assert!(
        h.camera.requests.last().unwrap().starts_with("TEARDOWN"),
        "{:?}",
        h.camera.requests.last()
    );
    assert!(h.rtsp_closed);
    assert!(h.gateway.streams().is_empty());

    let stats = h.gateway.stats();
    // 30 frames, one packet each but the 3 IDRs: 4000 bytes go in 3 packets at the camera's
    // 1400-byte MTU.
    assert_eq!(stats.camera_packets_in, 30 + 3 * 2);
    assert_eq!(stats.camera_packets_lost, 0);
    assert!(stats.viewer_packets_out >= 29, "{stats:?}");
    assert!(
        stats.datagrams_out > stats.viewer_packets_out,
        "media plus ICE/DTLS/RTCP: {stats:?}"
    );
    assert_eq!((stats.rtsp_connects, stats.rtsp_errors), (1, 0));
    assert_eq!((stats.viewers_joined, stats.viewers_left), (1, 1));
}

#[test]
fn viewers_of_one_url_share_one_camera_connection_and_late_joiners_start_at_once() {
    let mut h = Harness::new();
    let first = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..13); // keyframe at 0 and 10; the GOP now holds frames 10..=12

    let second = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.connects, 1, "one RTSP connection for both viewers");
    assert_eq!(
        h.camera
            .requests
            .iter()
            .filter(|r| r.starts_with("PLAY"))
            .count(),
        1
    );
    assert_eq!(h.gateway.streams()[0].viewers, 2);

    // With the camera's next packet after it connected, the late joiner got the cached GOP
    // (keyframe 10 up to frame 13): long before the camera's next keyframe (frame 20), with
    // the old frames pulled to just before the newest so the browser shows the present.
    h.camera_frames(13..15);
    let frames = &h.browsers[second].frames;
    assert!(frames.len() >= 5, "late joiner got {} frames", frames.len());
    assert_eq!(nal_types(&frames[0].2), [7, 8, 5]);
    let times: Vec<u32> = frames
        .iter()
        .map(|f| f.1.wrapping_sub(frames[0].1))
        .collect();
    assert_eq!(
        times[..5],
        [0, 1, 2, 3, 3603],
        "replayed frames are one tick apart"
    );
    assert_eq!(h.browsers[second].statuses(), ["PENDING", "PLAYING"]);

    h.camera_frames(15..20);
    let live: Vec<u32> = h.browsers[second].frames[4..].iter().map(|f| f.1).collect();
    assert!(live.len() >= 5, "{live:?}");
    assert!(
        live.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 3600),
        "live frames keep the camera's spacing: {live:?}"
    );
    assert!(h.browsers[first].frames.len() >= 19);

    // One viewer leaving keeps the connection for the other.
    h.signal(
        first,
        "stopStream",
        serde_json::json!({"mediaSessionId": "m0"}),
    );
    h.run_for(Duration::from_secs(6));
    assert!(!h.rtsp_closed);
    let before = h.browsers[second].frames.len();
    h.camera_frames(20..25);
    assert!(h.browsers[second].frames.len() >= before + 4);
}

#[test]
fn a_camera_that_drops_is_reconnected_while_viewers_stay() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..12);
    let before = h.browsers[b].frames.len();
    assert!(before >= 11);

    // The camera reboots: the TCP connection resets, and it refuses connections for 3 s.
    h.camera_down = true;
    h.gateway.handle_rtsp_lost(h.stream.unwrap(), h.now);
    h.run_for(Duration::from_millis(500));
    assert_eq!(h.gateway.streams()[0].status(), "RECONNECTING");
    h.run_for(Duration::from_millis(2500));
    assert!(h.connects >= 1);
    h.camera_down = false;
    h.run_for(Duration::from_secs(5)); // the backoff reaches 4 s after the failed attempts
    assert_eq!(h.gateway.streams()[0].status(), "PLAYING", "reconnected");
    let connects = h.connects;
    assert!(
        connects >= 2,
        "reconnected over a new TCP connection ({connects})"
    );

    // The new session starts mid-GOP (P-frames first): the viewer gets nothing until the
    // keyframe, then SPS/PPS/IDR and live frames, with no new signaling.
    h.camera_frames(5..25);
    let after: Vec<Vec<u8>> = h.browsers[b].frames[before..]
        .iter()
        .map(|f| nal_types(&f.2))
        .collect();
    assert_eq!(
        after.first().map(Vec::as_slice),
        Some(&[7u8, 8, 5][..]),
        "{after:?}"
    );
    assert!(
        after.len() >= 15,
        "{} frames after the reconnect",
        after.len()
    );
    assert_eq!(h.browsers[b].statuses(), ["PENDING", "PLAYING"]);
    assert!(h.gateway.stats().rtsp_reconnects >= 1);
}

#[test]
fn g711_audio_passes_through_beside_the_video() {
    let mut h = Harness::new();
    h.camera.with_audio = true;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    let setups = h
        .camera
        .requests
        .iter()
        .filter(|r| r.starts_with("SETUP"))
        .count();
    assert_eq!(setups, 2, "video and audio are set up");
    for frame in 0..20u32 {
        h.camera.send_audio(frame * 320);
        h.camera.send_audio(frame * 320 + 160);
        h.camera_frames(frame..frame + 1);
    }
    let audio = &h.browsers[b].audio;
    assert!(
        audio.len() >= 30,
        "browser got {} audio packets",
        audio.len()
    );
    assert!(audio
        .iter()
        .all(|(codec, _)| *codec == str0m::format::Codec::PCMU));
    let expected: Vec<u8> = (0..160).map(|i| (i * 7) as u8).collect();
    assert_eq!(audio[0].1, expected, "PCMU payloads arrive untouched");
    assert!(h.browsers[b].frames.len() >= 15);
}

#[test]
fn vp8_passes_through_and_browsers_start_on_a_keyframe() {
    let mut h = Harness::new();
    h.camera.vp8 = true;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    for frame in 0..25u32 {
        // VP8 payload descriptor (S=1, partition 0), then the frame: a keyframe every 10
        // (P bit clear, start code 9d 01 2a, 640x360), inter frames otherwise.
        let mut payload = vec![0x10];
        if frame % 10 == 0 {
            payload
                .extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        } else {
            payload.extend_from_slice(&[0x11, 0x02, 0x00]);
        }
        payload.resize(700, 0x55);
        h.camera.send_frame(frame * 3600, &[payload]);
        h.run_for(Duration::from_millis(40));
    }
    let browser = &h.browsers[b];
    assert!(
        browser.frames.len() >= 20,
        "{} VP8 frames",
        browser.frames.len()
    );
    let playing = browser
        .ws
        .iter()
        .find(|v| v["data"][0]["status"] == "PLAYING")
        .unwrap();
    assert_eq!(playing["data"][0]["info"], "video VP8 640x360");
}

#[test]
fn the_playing_status_says_which_codecs_play() {
    let mut h = Harness::new();
    h.camera.with_audio = true;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..3);
    let playing = h.browsers[b]
        .ws
        .iter()
        .find(|v| v["data"][0]["status"] == "PLAYING")
        .unwrap();
    assert_eq!(
        playing["data"][0]["info"],
        "video H264 42c01e; audio PCMU 8000 Hz (passed through)"
    );
    assert_eq!(
        h.gateway.streams()[0].info,
        "video H264 42c01e; audio PCMU 8000 Hz (passed through)"
    );
}

#[test]
fn the_answer_puts_audio_and_video_in_one_media_stream() {
    // The Flashphoner SDK plays only `event.streams[0]` of the last `ontrack`: audio and video
    // must share one MediaStream, i.e. one `a=msid` stream id, or the page plays no sound.
    let mut h = Harness::new();
    h.camera.with_audio = true;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    let answer = h.browsers[b]
        .ws
        .iter()
        .find(|v| v["message"] == "setRemoteSDP")
        .and_then(|v| v["data"][1].as_str())
        .expect("an answer")
        .to_owned();
    let sections: Vec<&str> = answer.split("\r\nm=").skip(1).collect();
    assert_eq!(sections.len(), 2, "{answer}");
    let streams: Vec<&str> = sections
        .iter()
        .map(|m| {
            let line = m.lines().find(|l| l.starts_with("a=msid:")).expect(m);
            line["a=msid:".len()..].split(' ').next().unwrap()
        })
        .collect();
    assert_eq!(streams[0], streams[1], "{answer}");
    assert_ne!(streams[0], "-");
    let semantic = answer
        .lines()
        .find(|l| l.starts_with("a=msid-semantic:"))
        .unwrap_or_default();
    assert!(
        semantic.is_empty() || semantic.ends_with(&format!("WMS {}", streams[0])),
        "{semantic}"
    );
    // The browser side (str0m) takes the rewritten answer and receives both.
    for frame in 0..10u32 {
        h.camera.send_audio(frame * 320);
        h.camera_frames(frame..frame + 1);
    }
    assert!(h.browsers[b].frames.len() >= 5);
    assert!(h.browsers[b].audio.len() >= 5);
}

#[test]
fn audio_and_video_reach_the_browser_on_one_timeline_despite_late_audio() {
    // The camera captures audio and video together (its sender reports say so), but its audio
    // packets arrive 300 ms after the video of the same instant. The sender reports camgate
    // sends must let the browser line them up again: within 50 ms.
    let mut h = Harness::new();
    h.camera.with_audio = true;
    let b = h.play_with("rtsp://127.0.0.1:8554/cam", true);
    h.run_for(Duration::from_millis(300));
    let (video0, audio0) = (1_000_000u32, 50_000u32);
    // Three minutes of camera time (4500 frames at 25 fps), sender reports every second.
    const FRAMES: u32 = 4500;
    for frame in 0..FRAMES {
        // 40 ms of media per frame: video at 90 kHz, audio at 8 kHz, audio 300 ms late.
        h.camera.send_frame(
            video0 + frame * 3600,
            &[nal(if frame % 25 == 0 { 5 } else { 1 }, 700)],
        );
        // The audio sent with video frame f was captured 8 frames (320 ms) earlier.
        let audio_t = audio0.wrapping_add(frame * 320).wrapping_sub(8 * 320);
        h.camera.send_audio(audio_t);
        h.camera.send_audio(audio_t.wrapping_add(160));
        if frame % 25 == 0 {
            h.camera
                .send_sender_report(1, 3000.0 + f64::from(frame) * 0.04, video0 + frame * 3600);
            h.camera
                .send_sender_report(3, 3000.0 + f64::from(frame) * 0.04 - 0.32, audio_t);
        }
        h.run_for(Duration::from_millis(40));
    }
    let rtp = &h.browsers[b].rtp;
    let latest = |pt_audio: bool| {
        rtp.iter()
            .rev()
            .find(|(pt, _, sr)| (*pt == 0) == pt_audio && sr.is_some())
            .and_then(|(_, _, sr)| *sr)
            .expect("a sender report from camgate")
    };
    let (video_ntp, video_rtp) = latest(false);
    let (audio_ntp, audio_rtp) = latest(true);
    // Where each track's latest report puts the camera instant "frame FRAMES - 100" (near the
    // end of the three minutes).
    let at = |ntp: std::time::SystemTime, rtp: u32, media_rtp: u32, rate: f64| {
        let delta = f64::from(media_rtp.wrapping_sub(rtp) as i32) / rate;
        ntp.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            + delta
    };
    // The browser sees camgate's own RTP timestamps: the camera's (time_base added for video).
    let v = at(
        video_ntp,
        video_rtp,
        video0.wrapping_add(h.camera.time_base) + (FRAMES - 100) * 3600,
        90_000.0,
    );
    let a = at(audio_ntp, audio_rtp, audio0 + (FRAMES - 100) * 320, 8_000.0);
    let skew_ms = (a - v) * 1000.0;
    println!("audio/video skew seen by the browser: {skew_ms:.1} ms");
    assert!(skew_ms.abs() < 50.0, "audio/video skew {skew_ms:.1} ms");
}

#[test]
fn limits_refuse_with_a_reason_and_keep_serving_the_others() {
    let mut h = Harness::with_config(GatewayConfig {
        max_streams: 1,
        max_viewers_per_stream: 2,
        max_viewers: 3,
        ..Default::default()
    });
    let a = h.play("rtsp://127.0.0.1:8554/cam");
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    let third = h.play("rtsp://127.0.0.1:8554/cam");
    let other = h.play("rtsp://127.0.0.1:8554/other");
    h.run_for(Duration::from_millis(100));
    let failed = |h: &Harness, b: usize| {
        h.browsers[b]
            .ws
            .iter()
            .find(|v| v["data"][0]["status"] == "FAILED")
            .map(|v| v["data"][0]["info"].as_str().unwrap().to_owned())
    };
    assert!(failed(&h, third)
        .unwrap()
        .starts_with("Too many viewers of this stream"));
    assert!(failed(&h, other).unwrap().starts_with("Too many streams"));
    h.camera_frames(0..12);
    for v in [a, b] {
        assert!(failed(&h, v).is_none());
        assert!(h.browsers[v].frames.len() >= 10, "viewer {v} kept playing");
    }
}

#[test]
fn b_frames_are_detected_and_reported_to_the_viewer() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    for frame in 0..10u32 {
        let nals = match frame {
            0 => vec![nal(5, 2000)],
            // first_mb_in_slice = 0 ("1"), slice_type = 1, a B-slice ("010"): 1010 0000.
            f if f % 2 == 0 => vec![[vec![0x01, 0xA0], vec![0x55; 300]].concat()],
            _ => vec![[vec![0x21, 0x88], vec![0x55; 300]].concat()], // P-slice (type 0)
        };
        h.camera.send_frame(frame * 3600, &nals);
        h.run_for(Duration::from_millis(40));
    }
    let playing: Vec<&str> = h.browsers[b]
        .ws
        .iter()
        .filter(|v| v["data"][0]["status"] == "PLAYING")
        .map(|v| v["data"][0]["info"].as_str().unwrap())
        .collect();
    assert_eq!(playing.len(), 2, "{playing:?}");
    assert!(!playing[0].contains("B-frames"));
    assert!(playing[1].contains("B-frames"), "{}", playing[1]);
    assert!(h.gateway.streams()[0].info.contains("B-frames"));
}

#[test]
fn nothing_is_left_behind_after_many_viewer_and_camera_cycles() {
    let mut h = Harness::new();
    let mut frame = 0u32;
    // 20 camera cycles (connect, play, last viewer leaves, linger, teardown), each with 5
    // viewers joining and leaving in turn (100 viewer cycles), some closing their WebSocket
    // instead of stopping. (The soak script does the same at scale against the binary.)
    for cycle in 0..20 {
        for v in 0..5 {
            let b = h.play("rtsp://127.0.0.1:8554/cam");
            h.run_for(Duration::from_millis(100));
            h.camera_frames(frame..frame + 2);
            frame += 2;
            if (cycle + v) % 3 == 0 {
                let session = h.browsers[b].session;
                h.gateway.handle_session_closed(session, h.now);
            } else {
                h.signal(
                    b,
                    "stopStream",
                    serde_json::json!({"mediaSessionId": format!("m{b}")}),
                );
            }
            h.run_for(Duration::from_millis(20));
        }
        // The pages close: their WebSockets go.
        for b in 0..h.browsers.len() {
            let session = h.browsers[b].session;
            h.gateway.handle_session_closed(session, h.now);
        }
        h.run_for(Duration::from_secs(6)); // the linger runs out: TEARDOWN and close
        h.browsers.retain(|_| false); // gone pages; new ones get fresh ids (see `play_with`)
    }
    assert_eq!(h.gateway.stats().viewers_joined, 100);
    assert_eq!(h.gateway.stats().rtsp_connects, 20);
    let left = h.gateway.resident();
    assert_eq!(
        (
            left.streams,
            left.viewers,
            left.learned_addresses,
            left.queued
        ),
        (0, 0, 0, 0),
        "{left:?}"
    );
    assert!(left.timers <= 2, "stale timers pile up: {left:?}");
}

#[test]
fn a_main_profile_camera_plays_in_a_browser_that_offers_only_baseline() {
    let mut h = Harness::new();
    h.camera.sps_b64 = Some("Z01AHtkDxWhAAAADAEAAAA8jxgyS"); // 67 4d 40 1e: Main, level 3.0
    h.browser_h264_profiles = Some(&[0x42e01f, 0x42001f]);
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..12);
    assert!(h.browsers[b].frames.len() >= 10, "the stream plays");
    let playing = h.browsers[b]
        .ws
        .iter()
        .find(|v| v["data"][0]["status"] == "PLAYING")
        .unwrap();
    let info = playing["data"][0]["info"].as_str().unwrap();
    assert!(info.starts_with("video H264 4d401e"), "{info}");
    assert!(
        info.contains("browser negotiated H264 42e01f, the camera's 4d401e is sent unchanged"),
        "{info}"
    );
}

#[test]
fn a_redirecting_camera_is_followed_to_the_server_it_names() {
    let mut h = Harness::with_config(GatewayConfig {
        rtsp: camgate_core::rtsp::RtspConfig {
            follow_redirects: true,
            ..Default::default()
        },
        ..Default::default()
    });
    h.camera.redirect_to = Some("rtsp://127.0.0.1:8555/elsewhere".into());
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..12);
    assert_eq!(
        h.ports,
        [8554, 8555],
        "a new connection to the redirect's target"
    );
    let describes: Vec<&String> = h
        .camera
        .requests
        .iter()
        .filter(|r| r.starts_with("DESCRIBE"))
        .collect();
    assert!(
        describes[1].starts_with("DESCRIBE rtsp://127.0.0.1:8555/elsewhere"),
        "{}",
        describes[1]
    );
    assert!(h.browsers[b].frames.len() >= 10);
}

fn host_rules(allow: &[&str], deny: &[&str]) -> camgate_core::host_rules::HostRules {
    use camgate_core::host_rules::HostRule;
    let parse = |l: &[&str]| l.iter().map(|e| HostRule::parse(e).unwrap()).collect();
    camgate_core::host_rules::HostRules {
        allow: parse(allow),
        deny: parse(deny),
    }
}

#[test]
fn a_redirect_outside_the_host_rules_fails_the_stream_and_connects_nowhere() {
    let mut h = Harness::with_config(GatewayConfig {
        rtsp: camgate_core::rtsp::RtspConfig {
            follow_redirects: true,
            ..Default::default()
        },
        host_rules: host_rules(&["127.0.0.1"], &[]),
        ..Default::default()
    });
    h.camera.redirect_to = Some("rtsp://127.0.0.3:8555/elsewhere".into());
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert_eq!(
        h.ports,
        [8554],
        "no connection toward the redirect's target"
    );
    let info = h.browsers[b].failed()["data"][0]["info"].as_str().unwrap();
    assert_eq!(info, "camera host not allowed");
    assert!(
        h.rtsp_closed,
        "the camera connection that redirected is closed"
    );
}

#[test]
fn a_named_streams_own_host_needs_no_allowlist_entry_but_a_clients_does() {
    let rules = host_rules(&["192.0.2.0/24"], &["127.0.0.0/8"]);
    let mut h = Harness::with_config(GatewayConfig {
        named_streams: vec![("cam".into(), "rtsp://127.0.0.1:8554/cam".into())],
        host_rules: rules.clone(),
        ..Default::default()
    });
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..12);
    assert!(
        h.browsers[b].frames.len() >= 10,
        "the operator's camera plays"
    );
    assert_eq!(h.refused_connects, 0);

    // The same URL asked for by a client (no named stream): refused on its address.
    let mut h = Harness::with_config(GatewayConfig {
        host_rules: rules,
        ..Default::default()
    });
    let b = h.play("rtsp://127.0.0.1:8554/other");
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.refused_connects, 1);
    let info = h.browsers[b].failed()["data"][0]["info"].as_str().unwrap();
    assert_eq!(info, "camera host not allowed");
}

#[test]
fn packetization_mode_0_only_offers_are_refused_with_a_reason() {
    let mut h = Harness::new();
    let b = h.play_mode0("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    let failed = h.browsers[b].failed();
    assert!(
        failed["data"][0]["info"]
            .as_str()
            .unwrap()
            .starts_with("No common codecs"),
        "{failed}"
    );
    assert!(!h.browsers[b]
        .ws
        .iter()
        .any(|v| v["message"] == "setRemoteSDP"));
}

/// A real AAC capture (GStreamer voaacenc + rtpmp4gpay, 1 s of a 1 kHz tone at 16 kHz): the
/// camera's audio SDP section and its RTP packets.
fn aac_capture() -> (String, Vec<Vec<u8>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/audio");
    let meta = std::fs::read_to_string(dir.join("aac_hbr_16000_mono.meta")).unwrap();
    let fmtp = meta.lines().find_map(|l| l.strip_prefix("fmtp=")).unwrap();
    let rtp = std::fs::read(dir.join("aac_hbr_16000_mono.rtp")).unwrap();
    let packets = (camgate_testkit::capture::rfc4571_packets(&rtp).iter())
        .map(|p| p.to_vec())
        .collect();
    let sdp = format!(
        "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/16000/1\r\na=fmtp:96 {fmtp}\r\na=control:track2\r\n"
    );
    (sdp, packets)
}

#[test]
fn aac_from_the_camera_reaches_the_browser_as_opus_and_is_counted() {
    let (sdp, packets) = aac_capture();
    let mut h = Harness::with_config(GatewayConfig::default());
    h.camera.audio_sdp = Some(sdp);
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    for (i, packet) in packets.iter().enumerate() {
        h.camera.send_audio_packet(packet);
        if i % 2 == 0 {
            h.camera_frames(i as u32 / 2..i as u32 / 2 + 1);
        }
    }
    h.run_for(Duration::from_millis(200));
    let opus = h.browsers[b]
        .audio
        .iter()
        .filter(|(c, _)| *c == str0m::format::Codec::Opus)
        .count();
    assert!(opus >= 40, "{opus} Opus packets for 1 s of AAC");
    let stats = h.gateway.stats();
    assert_eq!(stats.audio_packets_transcoded, packets.len() as u64);
    let playing = h.browsers[b]
        .ws
        .iter()
        .find(|v| v["data"][0]["status"] == "PLAYING")
        .unwrap();
    assert!(playing["data"][0]["info"]
        .as_str()
        .unwrap()
        .contains("MPEG4-GENERIC 16000 Hz → opus 48000 Hz"));
}

#[test]
fn g711_becomes_opus_for_a_browser_without_it_while_others_get_it_untouched() {
    let mut h = Harness::new();
    h.camera.with_audio = true;
    let with_g711 = h.play("rtsp://127.0.0.1:8554/cam");
    h.browser_no_g711 = true;
    let without = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    for frame in 0..25u32 {
        h.camera.send_audio(frame * 320);
        h.camera.send_audio(frame * 320 + 160);
        h.camera_frames(frame..frame + 1);
    }
    let only = |b: usize, codec: str0m::format::Codec| {
        !h.browsers[b].audio.is_empty() && h.browsers[b].audio.iter().all(|(c, _)| *c == codec)
    };
    assert!(
        only(with_g711, str0m::format::Codec::PCMU),
        "PCMU passed through"
    );
    assert!(
        only(without, str0m::format::Codec::Opus),
        "Opus for the browser without G.711"
    );
    assert!(
        h.browsers[without].audio.len() >= 20,
        "{} Opus packets",
        h.browsers[without].audio.len()
    );
    assert!(h.gateway.streams()[0]
        .info
        .contains("→ opus 48000 Hz for browsers without it"));
}

#[test]
fn a_camera_that_never_played_fails_its_viewers() {
    let mut h = Harness::new();
    h.camera_down = true;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(100));
    let failed = h.browsers[b].failed();
    assert_eq!(
        failed["data"][0]["info"],
        "Failed to connect to rtsp stream"
    );
    assert!(h.gateway.streams().is_empty());
}

#[test]
fn relaying_allocates_one_arc_per_camera_packet_and_one_buffer_per_datagram() {
    let (mut h, _) = Harness::playing(3, 40);
    // Steady state; a first round lets every buffer (GOP cache, str0m's queues) reach its
    // capacity.
    for n in 41..141 {
        h.steady_frame(n);
    }
    let (ingest0, transmit0, datagrams0, media0, packets0) = (
        h.ingest_allocs,
        h.transmit_allocs,
        h.datagrams,
        h.media_datagrams,
        h.gateway.stats().camera_packets_in,
    );
    for n in 141..241 {
        h.steady_frame(n);
    }
    let ingest = h.ingest_allocs - ingest0;
    let transmit = h.transmit_allocs - transmit0;
    let datagrams = h.datagrams - datagrams0;
    let media = h.media_datagrams - media0;
    let packets = (h.gateway.stats().camera_packets_in - packets0) as usize;
    println!(
        "{packets} camera packets: {ingest} allocations in; {datagrams} datagrams ({media} media), {transmit} allocations out"
    );
    assert_eq!(packets, 100);
    // Every viewer gets every packet, once.
    assert_eq!(media, 3 * packets);
    // In: exactly one allocation per camera packet, its payload, shared by every viewer.
    assert_eq!(ingest, packets);
    // Out: str0m's one SRTP buffer per datagram at most (some RTCP is built in its timers),
    // nothing per viewer-packet from camgate on top.
    assert!(
        transmit <= datagrams,
        "{transmit} allocations for {datagrams} datagrams"
    );
}

#[test]
fn each_viewer_is_ticked_once_per_batch_of_camera_packets() {
    let (mut h, _) = Harness::playing(3, 40);
    let ticks0 = h.gateway.stats().viewer_ticks;
    // 100 frames, each a batch: one read of the camera's connection, then the datagrams taken.
    for frame in 41..141 {
        h.camera.send_frame(frame * 3600, &[nal(1, 900)]);
        h.step(Duration::from_millis(40));
    }
    let ticks = h.gateway.stats().viewer_ticks - ticks0;
    // One tick per viewer per frame (a flush), plus str0m's own deadlines over 4 s (reports,
    // statistics, ICE consent): a tick more per viewer per frame (one to write, one at the
    // deadline the write left) would be 600.
    println!("{ticks} str0m ticks for 100 frames to 3 viewers");
    assert!(
        ticks >= 300,
        "{ticks} ticks: every frame must tick its viewers"
    );
    assert!(ticks < 400, "{ticks} ticks for 100 frames to 3 viewers");
}

/// The answer maps only the RTP header extensions viewers use (MID, transport-wide sequence
/// numbers): str0m writes every mapped extension into every packet.
#[test]
fn the_answer_maps_only_the_header_extensions_viewers_use() {
    let (h, browsers) = Harness::playing(1, 10);
    let answer = h.browsers[browsers[0]]
        .ws
        .iter()
        .find(|m| m["message"] == "setRemoteSDP")
        .expect("an answer")["data"][1]
        .as_str()
        .unwrap()
        .to_owned();
    let mut exts: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=extmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    exts.sort_unstable();
    exts.dedup();
    assert_eq!(
        exts,
        [
            "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            "urn:ietf:params:rtp-hdrext:sdes:mid"
        ],
        "{answer}"
    );
}

#[test]
fn datagrams_are_encrypted_viewer_by_viewer_as_the_loop_takes_them() {
    let (mut h, _) = Harness::playing(3, 20);
    // A keyframe (several packets) reaches the gateway; nothing is taken yet.
    h.camera.send_frame(20 * 3600, &[nal(5, 4000)]);
    let data = std::mem::take(&mut h.camera.to_gateway);
    let (stream, now) = (h.stream.unwrap(), h.now);
    let taken = h.gateway.handle_rtsp_data(stream, now, &data);
    assert_eq!(taken, data.len(), "no UDP players: all of it taken");
    let ticks0 = h.gateway.stats().viewer_ticks;
    // The loop takes datagrams until none is queued: one viewer's run, and only that viewer
    // was ticked (encrypted for); the other two wait for the next take.
    let mut first_run = Vec::new();
    loop {
        let t = h
            .gateway
            .poll_transmit()
            .expect("the first viewer's datagrams");
        first_run.push(t.destination);
        if !h.gateway.transmit_queued() {
            break;
        }
    }
    assert_eq!(h.gateway.stats().viewer_ticks - ticks0, 1);
    assert!(
        first_run.len() >= 3,
        "a 4000-byte keyframe is several packets"
    );
    assert!(
        first_run.iter().all(|&d| d == first_run[0]),
        "{first_run:?}"
    );
    // The rest follow, viewer after viewer, each run to one address.
    let mut runs = vec![first_run[0]];
    while let Some(t) = h.gateway.poll_transmit() {
        if runs.last() != Some(&t.destination) {
            runs.push(t.destination);
        }
    }
    assert_eq!(h.gateway.stats().viewer_ticks - ticks0, 3);
    assert_eq!(runs.len(), 3, "one run per viewer: {runs:?}");
}

/// Viewers are written and flushed one after another, so whoever is first gets a frame
/// soonest: the first place goes round, and no viewer always waits for all the others.
#[test]
fn each_frame_starts_its_fan_out_at_another_viewer() {
    let (mut h, _) = Harness::playing(3, 20);
    let mut leaders = Vec::new();
    let mut orders = Vec::new();
    for n in 20..29 {
        h.camera.send_frame(n * 3600, &[nal(1, 900)]);
        let data = std::mem::take(&mut h.camera.to_gateway);
        let (stream, now) = (h.stream.unwrap(), h.now);
        let taken = h.gateway.handle_rtsp_data(stream, now, &data);
        assert_eq!(taken, data.len(), "no UDP players: all of it taken");
        let mut order = Vec::new();
        while let Some(t) = h.gateway.poll_transmit() {
            if order.last() != Some(&t.destination) {
                order.push(t.destination);
            }
        }
        assert_eq!(order.len(), 3, "one run per viewer: {order:?}");
        leaders.push(order[0]);
        orders.push(order);
        h.now += Duration::from_millis(40);
    }
    leaders.sort();
    leaders.dedup();
    assert_eq!(
        leaders.len(),
        3,
        "every viewer leads some frames: {orders:?}"
    );
    // And each viewer comes last as often as first: no fixed tail.
    let mut lasts: Vec<_> = orders.iter().map(|o| o[2]).collect();
    lasts.sort();
    lasts.dedup();
    assert_eq!(lasts.len(), 3, "{orders:?}");
}

#[test]
fn a_late_joiners_gop_is_written_a_slice_per_loop_turn() {
    let mut h = Harness::new();
    let first = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    // A GOP of about 120 packets: a 60 KB keyframe (FU-A in about 50) and P-frames.
    h.camera.send_frame(0, &[nal(5, 60_000)]);
    h.run_for(Duration::from_millis(40));
    for frame in 1..8 {
        h.camera.send_frame(frame * 3600, &[nal(1, 10_000)]);
        h.run_for(Duration::from_millis(40));
    }
    assert!(h.browsers[first].frames.len() >= 8);
    let late = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300)); // connected, no media yet
                                           // The next frame starts the late joiner on the cached GOP: written to str0m a slice
                                           // (48 packets) per loop turn, from the end of that frame's turn on, so str0m's queue
                                           // holds one slice and no turn carries the whole GOP.
    h.media_log = Some(Vec::new());
    h.camera.send_frame(8 * 3600, &[nal(1, 1000)]);
    h.step(Duration::from_millis(10));
    let due = h.gateway.poll_timeout();
    assert!(
        due.is_some_and(|t| t <= h.now),
        "replay left to write: the loop comes back without waiting"
    );
    h.run_for(Duration::from_millis(90));
    let due = h.gateway.poll_timeout();
    assert!(due.is_some_and(|t| t > h.now), "all written: it waits");
    let late_addr = h.browsers[late].addr;
    let per_turn: Vec<usize> = (h.media_log.as_ref().unwrap().iter())
        .map(|turn| turn.iter().filter(|d| d.1 == late_addr).count())
        .collect();
    assert_eq!(
        per_turn[0], 0,
        "{per_turn:?}: the frame's own turn ends with the first slice"
    );
    // (Counted: datagrams over 500 bytes; SPS/PPS and the ends of NAL units are smaller.)
    assert!(per_turn[1] > 40, "{per_turn:?}");
    assert!(per_turn.iter().all(|n| *n <= 48), "{per_turn:?}");
    assert!(
        per_turn.iter().filter(|n| **n > 0).count() >= 3,
        "{per_turn:?}"
    );
    assert!(per_turn.iter().sum::<usize>() > 100, "{per_turn:?}");
    let frames = &h.browsers[late].frames;
    assert!(
        frames.len() >= 9,
        "the late joiner decoded {} frames",
        frames.len()
    );
    assert_eq!(
        nal_types(&frames[0].2)[..3],
        [7, 8, 5],
        "it starts on SPS, PPS, IDR"
    );
}

#[test]
fn a_lost_packet_is_resent_on_nack_unless_the_nack_comes_after_half_a_second() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..20);
    // Six frames of 5000 bytes, each sent by the camera in four FU-A packets (1400-byte MTU) that
    // the gateway re-cuts into full 1200-byte payloads: four fragments over 1000 bytes per frame
    // and a short last one (the browser loses one fragment of the first), then 40 small frames.
    // Returns the frames it decoded and the fragments over 1000 bytes that reached it (24 if the
    // lost one came again).
    let frames_of = |h: &mut Harness, first: u32| {
        let (frames, datagrams) = (h.browsers[b].frames.len(), h.browsers[b].video_in);
        h.browsers[b].lose_video = 1;
        for frame in first..first + 6 {
            h.camera.send_frame(frame * 3600, &[nal(1, 5000)]);
            h.run_for(Duration::from_millis(40));
        }
        // The camera goes on with small frames (str0m ages its resend history out as it sends).
        for frame in first + 6..first + 46 {
            h.camera.send_frame(frame * 3600, &[nal(1, 600)]);
            h.run_for(Duration::from_millis(40));
        }
        assert_eq!(h.browsers[b].lose_video, 0, "a packet was lost");
        (
            h.browsers[b].frames.len() - frames,
            h.browsers[b].video_in - datagrams,
        )
    };
    // A browser nearby NACKs the gap within tens of milliseconds: the packet comes again and
    // every frame is whole.
    assert_eq!(
        frames_of(&mut h, 20),
        (46, 24),
        "the lost packet was resent"
    );
    // Its NACKs now take 700 ms to arrive: the packet is older than the resend history keeps
    // (`RTX_MAX_AGE`), so it is not sent again (and the frame is lost).
    h.browsers[b].uplink_delay = Duration::from_millis(700);
    assert_eq!(
        frames_of(&mut h, 66),
        (45, 23),
        "a packet 700 ms old is not resent"
    );
}

#[test]
fn viewers_share_one_dtls_certificate() {
    // Every viewer decodes with the shared certificate (`playing` checks it).
    let (h, viewers) = Harness::playing(3, 12);
    let fingerprints: Vec<String> = viewers
        .iter()
        .map(|&b| {
            let answer = h.browsers[b]
                .ws
                .iter()
                .find(|v| v["message"] == "setRemoteSDP")
                .and_then(|v| v["data"][1].as_str())
                .expect("an answer");
            let line = answer.lines().find(|l| l.starts_with("a=fingerprint:"));
            line.expect("a fingerprint").to_owned()
        })
        .collect();
    assert!(
        fingerprints.iter().all(|f| f == &fingerprints[0]),
        "{fingerprints:?}"
    );
    // And the shared certificate works for each: every viewer decodes the stream.
    for &b in &viewers {
        assert!(h.browsers[b].frames.len() >= 10);
    }
}

/// Two viewers watch a camera with audio for a while; one leaves. Returns everything the
/// gateway put out (signaling texts, RTSP requests, in order) and what the browsers decoded.
fn scripted_session(seed: u64, cert: &str0m::config::DtlsCert) -> Vec<String> {
    // The simulated browsers' str0m draws from the thread's fastrand too.
    fastrand::seed(7);
    let mut h = Harness::with_config(GatewayConfig {
        seed,
        dtls_cert: Some(cert.clone()),
        ..Default::default()
    });
    h.record = Some(Vec::new());
    h.camera.with_audio = true;
    let first = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..10);
    let second = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(10..20);
    let session = h.browsers[first].session;
    h.gateway.handle_session_closed(session, h.now);
    h.run_for(Duration::from_secs(16));
    let mut log = h.record.take().unwrap();
    for b in [first, second] {
        for (_, rtp_time, data) in &h.browsers[b].frames {
            log.push(format!(
                "browser {b}: frame at {rtp_time}, {} bytes",
                data.len()
            ));
        }
    }
    log.push(format!("{:?}", h.gateway.resident()));
    log
}

#[test]
fn the_same_inputs_and_seed_give_the_same_outputs() {
    let cert = test_certificate().unwrap();
    let once = scripted_session(1, &cert);
    let again = scripted_session(1, &cert);
    assert!(
        once.iter().any(|l| l.contains("setRemoteSDP"))
            && once.iter().any(|l| l.contains("frame at")),
        "the session played: {once:#?}"
    );
    assert_eq!(once.len(), again.len(), "{once:#?}\n{again:#?}");
    for (a, b) in once.iter().zip(&again) {
        assert_eq!(a, b);
    }
    // The seed is what decides: another seed gives other ICE credentials (and RTSP nonces).
    let other = scripted_session(2, &cert);
    assert_ne!(once, other);
}

#[test]
fn a_keyframe_the_camera_sends_before_answering_play_starts_the_viewer() {
    let mut h = Harness::new();
    h.camera.keyframe_before_play_answer = true;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    // Only P-frames after the answer: the viewer can start only from the early keyframe.
    for frame in 1..10 {
        h.camera.send_frame(frame * 3600, &[nal(1, 600)]);
        h.run_for(Duration::from_millis(40));
    }
    let frames = &h.browsers[b].frames;
    assert!(frames.len() >= 9, "decoded {} frames", frames.len());
    assert!(
        nal_types(&frames[0].2).contains(&5),
        "it started on the early IDR"
    );
}

#[test]
fn stop_that_closes_the_peer_connection_first_still_ends_in_stopped() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    // The SDK closes its RTCPeerConnection at once, then sends stopStream.
    h.browsers[b].rtc.disconnect();
    h.camera_frames(5..8);
    h.signal(b, "stopStream", serde_json::json!({"mediaSessionId": "m0"}));
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.browsers[b].statuses(), ["PENDING", "PLAYING", "STOPPED"]);
}

/// The default ICE timeout (`GatewayConfig::ice_timeout`).
const ICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the camera (25 fps) for up to `limit`; returns how long it took until browser `b` got
/// FAILED, if it did.
fn run_until_failed(h: &mut Harness, b: usize, limit: Duration) -> Option<Duration> {
    let start = h.now;
    let mut frame = 0;
    while h.now - start < limit {
        h.camera_frames(frame..frame + 1);
        frame += 1;
        if h.browsers[b].statuses().iter().any(|s| s == "FAILED") {
            return Some(h.now - start);
        }
    }
    None
}

#[test]
fn a_viewer_whose_ice_checks_never_arrive_fails_at_the_timeout_naming_the_candidates() {
    let mut h = Harness::new();
    let good = h.play("rtsp://127.0.0.1:8554/cam");
    // A firewall drops everything this browser sends to camgate's media port.
    let blocked = h.play("rtsp://127.0.0.1:8554/cam");
    h.browsers[blocked].vanished = true;
    let after = run_until_failed(&mut h, blocked, Duration::from_secs(20)).expect("FAILED");
    assert!(
        after >= ICE_TIMEOUT && after < ICE_TIMEOUT + Duration::from_millis(500),
        "FAILED after {after:?}"
    );
    let info = h.browsers[blocked].failed()["data"][0]["info"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(info.starts_with("no ICE connectivity"), "{info}");
    assert!(
        info.contains("UDP 127.0.0.1:20000 and TCP 127.0.0.1:20000 got no check from the browser"),
        "{info}"
    );
    assert_eq!(h.browsers[blocked].statuses(), ["PENDING", "FAILED"]);
    assert_eq!(h.gateway.stats().ice_timeouts, 1);
    // The camera and the other viewer go on.
    let frames = h.browsers[good].frames.len();
    h.camera_frames(500..550);
    assert!(h.browsers[good].frames.len() >= frames + 40);
    assert_eq!(h.browsers[good].statuses(), ["PENDING", "PLAYING"]);
    assert_eq!(h.gateway.viewer_count(), 1);
}

#[test]
fn a_viewer_whose_checks_arrive_but_dtls_never_completes_fails_with_another_reason() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.browsers[b].drop_dtls = true;
    let after = run_until_failed(&mut h, b, Duration::from_secs(20)).expect("FAILED");
    assert!(
        after >= ICE_TIMEOUT && after < ICE_TIMEOUT + Duration::from_millis(500),
        "FAILED after {after:?}"
    );
    let info = h.browsers[b].failed()["data"][0]["info"].as_str().unwrap();
    assert!(info.starts_with("no DTLS"), "{info}");
    assert!(
        info.contains("UDP 127.0.0.1:20000 from 127.0.0.1:40001"),
        "{info}"
    );
    assert!(info.contains("handshake did not complete"), "{info}");
    assert_eq!(h.gateway.viewer_count(), 0);
}

#[test]
fn a_viewer_whose_checks_arrive_but_get_no_answer_back_fails_naming_that() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.browsers[b].drop_stun_in = true;
    let after = run_until_failed(&mut h, b, Duration::from_secs(20)).expect("FAILED");
    assert!(after >= ICE_TIMEOUT, "FAILED after {after:?}");
    let info = h.browsers[b].failed()["data"][0]["info"].as_str().unwrap();
    assert!(
        info.starts_with(
            "ICE did not complete: the browser's checks reached camgate (UDP 127.0.0.1:20000 \
             from 127.0.0.1:40001)"
        ),
        "{info}"
    );
}

#[test]
fn the_ice_timeout_is_a_setting() {
    let mut h = Harness::with_config(GatewayConfig {
        ice_timeout: Duration::from_secs(3),
        ..GatewayConfig::default()
    });
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.browsers[b].vanished = true;
    let after = run_until_failed(&mut h, b, Duration::from_secs(20)).expect("FAILED");
    assert!(
        after >= Duration::from_secs(3) && after < Duration::from_millis(3500),
        "{after:?}"
    );
    let info = h.browsers[b].failed()["data"][0]["info"].as_str().unwrap();
    assert!(info.contains("within 3 s"), "{info}");
}

#[test]
fn a_browser_that_vanishes_gets_failed() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    // The browser stops answering (tab killed): no STUN, no DTLS, no stopStream.
    h.browsers[b].vanished = true;
    for frame in 5..25 {
        h.camera_frames(frame..frame + 1);
        h.run_for(Duration::from_secs(1));
        if h.browsers[b].statuses().last().map(String::as_str) == Some("FAILED") {
            break;
        }
    }
    let last = h.browsers[b].ws.last().unwrap();
    assert_eq!(last["data"][0]["status"], "FAILED", "{last}");
    assert_eq!(h.gateway.viewer_count(), 0);
}

/// camgate itself gets no CPU for 12 s (a CFS quota, a busy box): no timers run and no socket
/// is read, so the browsers' datagrams of that time are dropped before camgate sees them. That
/// silence is camgate's doing: when it runs again (its timers 12 s late) its viewers must play
/// on, not be dropped as silent or as congested.
#[test]
fn viewers_outlive_a_stall_of_camgate_itself() {
    let (mut h, browsers) = Harness::playing(2, 20);
    h.now += Duration::from_secs(12);
    // It runs again: its timers first, as the loop does after `poll`.
    h.step(Duration::from_millis(10));
    let before: Vec<usize> = browsers
        .iter()
        .map(|&b| h.browsers[b].frames.len())
        .collect();
    h.camera_frames(20..120);
    for (&b, before) in browsers.iter().zip(before) {
        let statuses = h.browsers[b].statuses();
        assert_ne!(
            statuses.last().map(String::as_str),
            Some("FAILED"),
            "{statuses:?}"
        );
        let got = h.browsers[b].frames.len() - before;
        assert!(
            got >= 50,
            "browser {b}: {got} of 100 frames after the stall"
        );
    }
    assert_eq!(h.gateway.viewer_count(), 2);
}

/// When the loop finds a backlog on the camera's connection (camgate fell behind), viewers skip
/// it: nothing until the camera's next keyframe, then they play on from there.
#[test]
fn a_camera_backlog_is_skipped_to_the_next_keyframe() {
    let (mut h, browsers) = Harness::playing(2, 21);
    let before: Vec<usize> = browsers
        .iter()
        .map(|&b| h.browsers[b].frames.len())
        .collect();
    let (stream, now) = (h.stream.unwrap(), h.now);
    h.gateway.handle_camera_behind(stream, now);
    h.gateway.handle_camera_behind(stream, now);
    // Counted per report, so an operator sees how often camgate fell behind.
    assert_eq!(h.gateway.stats().camera_backlog_skips, 2);
    // Frames 21..29 are the backlog's P-frames; 30 is a keyframe.
    h.camera_frames(21..30);
    for (&b, &before) in browsers.iter().zip(&before) {
        assert_eq!(
            h.browsers[b].frames.len(),
            before,
            "browser {b} got a skipped frame"
        );
    }
    h.camera_frames(30..36);
    for (&b, &before) in browsers.iter().zip(&before) {
        let got = h.browsers[b].frames.len() - before;
        assert!(got >= 5, "browser {b}: {got} frames after the keyframe");
        let statuses = h.browsers[b].statuses();
        assert_ne!(statuses.last().map(String::as_str), Some("FAILED"));
    }
}

/// Over TCP the backlog of a camgate that fell behind sits in the camera's send buffer, where
/// the loop cannot see it; what shows is media arriving late. Past 2 s late it is dropped (the
/// viewers skip) until camgate has caught up, and viewers resume on the first live keyframe.
/// (Before, every late frame was relayed: the viewers stayed as far behind as the backlog.)
#[test]
fn media_arriving_over_2_s_late_is_dropped_until_camgate_caught_up() {
    let (mut h, browsers) = Harness::playing(2, 21);
    let frame = |h: &mut Harness, f: u32| {
        let nals = [nal(if f.is_multiple_of(10) { 5 } else { 1 }, 600)];
        h.camera.send_frame(f * 3600, &nals);
    };
    let counts = |h: &Harness| -> Vec<usize> {
        browsers
            .iter()
            .map(|&b| h.browsers[b].frames.len())
            .collect()
    };
    let live = counts(&h);
    // camgate reads at half speed: each 40 ms frame 80 ms after the last, 40 ms later each.
    for f in 21..80 {
        frame(&mut h, f);
        h.run_for(Duration::from_millis(80));
    }
    assert_eq!(h.gateway.stats().camera_backlog_skips, 1);
    let behind = counts(&h);
    for (b, (was, now)) in live.iter().zip(&behind).enumerate() {
        // Frames 21..=71 were under 2 s late; from 72 on dropped.
        assert!(
            (48..=51).contains(&(now - was)),
            "browser {b}: {}",
            now - was
        );
    }
    // Dropping, it reads three frames per 40 ms (faster than real time) until the backlog is
    // gone (2.36 s at frame 80, 27 ms less a frame: about frame 168), then in real time.
    for f in 80..168 {
        frame(&mut h, f);
        if f % 3 == 0 {
            h.run_for(Duration::from_millis(40));
        }
    }
    let late = h.gateway.stats().camera_late_packets;
    // Frames 72 to 149 (under 0.5 s late from about 150 on), one packet each; dropped, not lost.
    assert!((70..90).contains(&late), "{late} packets dropped");
    assert_eq!(h.gateway.stats().camera_packets_lost, 0);
    let caught_up = counts(&h);
    for f in 168..218 {
        frame(&mut h, f);
        h.run_for(Duration::from_millis(40));
    }
    for (i, &b) in browsers.iter().enumerate() {
        let frames = &h.browsers[b].frames;
        let resumed = &frames[behind[i]..];
        assert_eq!(
            nal_types(&resumed[0].2),
            [7, 8, 5],
            "browser {b} resumes on a keyframe"
        );
        assert!(
            frames.len() - caught_up[i] >= 45,
            "browser {b} plays live again"
        );
        assert_ne!(
            h.browsers[b].statuses().last().map(String::as_str),
            Some("FAILED")
        );
    }
    assert_eq!(h.gateway.stats().camera_backlog_skips, 1);
}

#[test]
fn a_closed_websocket_releases_its_streams() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..3);
    assert_eq!(h.gateway.viewer_count(), 1);
    let session = h.browsers[b].session;
    h.gateway.handle_session_closed(session, h.now);
    assert_eq!(h.gateway.viewer_count(), 0);
    h.run_for(Duration::from_secs(6));
    assert!(
        h.rtsp_closed,
        "the camera connection closed after the linger"
    );
}

#[test]
fn camera_errors_reach_the_viewer_as_failed_with_a_reason() {
    let mut h = Harness::new();
    h.camera.describe_status = Some("404 Not Found");
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(200));
    let failed = h.browsers[b]
        .ws
        .iter()
        .find(|v| v["data"][0]["status"] == "FAILED")
        .expect("a FAILED status");
    assert_eq!(failed["data"][0]["info"], "Rtsp stream not found");
    assert!(h.rtsp_closed);
    assert!(h.gateway.streams().is_empty());
}

#[test]
fn a_bad_url_fails_at_once_without_connecting() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/has space");
    h.step(Duration::from_millis(10));
    assert!(h.stream.is_none());
    let failed = h.browsers[b]
        .ws
        .iter()
        .find(|v| v["data"][0]["status"] == "FAILED")
        .expect("a FAILED status");
    assert!(
        failed["data"][0]["info"]
            .as_str()
            .unwrap()
            .starts_with("Bad URI"),
        "{failed}"
    );
}

#[test]
fn credentials_never_leave_in_status_messages() {
    let mut h = Harness::new();
    h.camera.describe_status = Some("404 Not Found");
    let b = h.play("rtsp://admin:s3cret@127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(200));
    let all: String = h.browsers[b].ws.iter().map(|v| v.to_string()).collect();
    assert!(!all.contains("s3cret"), "{all}");
}

#[test]
fn with_two_workers_the_worker_pulling_a_camera_serves_its_viewers_for_the_other() {
    let (mut h, placements) = Harness::with_workers(2);
    // Worker 0 (where every signaling session lives) already pulls a camera, so the next
    // camera goes to worker 1.
    let busy = "rtsp://127.0.0.1:8554/elsewhere";
    assert_eq!(placements[0].with(|w| w.place(busy, busy, 10)), Ok(0));
    let url = "rtsp://127.0.0.1:8554/cam";
    let first = h.play(url);
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..13);
    assert_eq!(h.camera_worker, 1, "the camera is pulled by worker 1");
    assert!(h.forwards.contains(&(0, 1)) && h.forwards.contains(&(1, 0)));

    let second = h.play(url);
    h.run_for(Duration::from_millis(300));
    h.camera_frames(13..25);
    assert_eq!(h.connects, 1, "one RTSP connection for both viewers");
    for b in [first, second] {
        assert_eq!(h.browsers[b].statuses(), ["PENDING", "PLAYING"]);
        assert!(h.browsers[b].frames.len() >= 12, "browser {b}");
    }
    assert_eq!(nal_types(&h.browsers[second].frames[0].2), [7, 8, 5]);
    // Worker 0 relays nothing itself, but its APIs see worker 1's stream and totals.
    assert_eq!(h.gateway.local_stats().viewer_packets_out, 0);
    assert!(h.gateway.stats().viewer_packets_out > 0);
    let shown = h.gateway.streams();
    let cam = shown
        .iter()
        .find(|s| s.url == url)
        .expect("listed on worker 0");
    assert_eq!((cam.viewers, cam.status()), (2, "PLAYING"));
    assert_eq!(h.others[0].viewer_count(), 2);
    assert_eq!(h.gateway.viewer_count(), 0);

    // stopStream reaches the viewer on worker 1; a closed WebSocket releases the other.
    h.signal(
        first,
        "stopStream",
        serde_json::json!({"mediaSessionId": "m0"}),
    );
    h.run_for(Duration::from_millis(100));
    assert_eq!(h.browsers[first].statuses().last().unwrap(), "STOPPED");
    assert_eq!(h.others[0].viewer_count(), 1);
    let session = h.browsers[second].session;
    h.gateway.handle_session_closed(session, h.now);
    h.run_for(Duration::from_millis(100));
    assert_eq!(h.others[0].viewer_count(), 0);
    let session = h.browsers[first].session;
    h.gateway.handle_session_closed(session, h.now);
    // After the linger the camera connection closes and worker 1 gives the URL up.
    h.run_for(Duration::from_secs(6));
    assert!(h.rtsp_closed);
    assert_eq!(placements[0].with(|w| w.find(url)), None);
    let left = h.others[0].resident();
    assert_eq!(
        (left.streams, left.viewers, left.sessions),
        (0, 0, 0),
        "{left:?}"
    );
}

#[test]
fn with_two_workers_rest_and_limits_act_on_the_whole_server() {
    let (mut h, placements) = Harness::with_workers(2);
    h.gateway = Gateway::new(GatewayConfig {
        candidates: vec![SocketAddr::from(([127, 0, 0, 1], 20000))],
        placement: Some(placements[0].clone()),
        max_viewers: 1,
        ..GatewayConfig::default()
    });
    let busy = "rtsp://127.0.0.1:8554/elsewhere";
    placements[0].with(|w| w.place(busy, busy, 10)).unwrap();
    // REST startup on worker 0 is carried out by worker 1, and a second one is refused.
    let url = "rtsp://127.0.0.1:8554/cam";
    let now = h.now;
    h.gateway.startup(url, now).unwrap();
    assert_eq!(
        h.gateway.startup(url, now),
        Err(camgate_core::gateway::StartupError::AlreadyPulled)
    );
    h.run_for(Duration::from_millis(300));
    assert_eq!((h.connects, h.camera_worker), (1, 1));
    assert!(h.gateway.streams().iter().any(|s| s.url == url && s.pinned));

    // The viewer limit counts viewers of all workers.
    let viewer = h.play(url);
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..11);
    assert!(h.browsers[viewer].frames.len() >= 10);
    let refused = h.play(busy);
    h.run_for(Duration::from_millis(100));
    assert_eq!(h.browsers[refused].statuses(), ["FAILED"]);
    assert!(h.browsers[refused].ws.iter().any(|v| v["data"][0]["info"]
        .as_str()
        .is_some_and(|i| i.starts_with("Too many viewers"))));

    // terminate on worker 0 stops worker 1's stream and its viewer.
    assert!(h.gateway.terminate(url, now));
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.browsers[viewer].statuses().last().unwrap(), "FAILED");
    assert!(h.rtsp_closed);
    assert_eq!(h.others[0].viewer_count(), 0);
    assert!(!h.gateway.terminate(url, now), "gone everywhere");
}

#[test]
fn with_two_workers_rest_reads_its_own_writes() {
    // REST runs on worker 0; the camera is pulled by worker 1, which has not yet handled what
    // worker 0 forwarded when the next REST call comes, nor published since.
    let (mut h, placements) = Harness::with_workers(2);
    let busy = "rtsp://127.0.0.1:8554/elsewhere";
    placements[0].with(|w| w.place(busy, busy, 10)).unwrap();
    let url = "rtsp://admin:p%40ss%3Aw%2Frd@127.0.0.1:8554/cam";
    let masked = "rtsp://admin:***@127.0.0.1:8554/cam";
    let listed = |h: &Harness| h.gateway.streams().iter().any(|s| s.url == masked);
    for round in 0..4 {
        let now = h.now;
        h.gateway.startup(url, now).unwrap();
        assert!(listed(&h), "round {round}: listed once startup returned");
        if round % 2 == 0 {
            h.run_for(Duration::from_millis(300));
            assert_eq!(h.camera_worker, 1);
            let s = h.gateway.streams();
            assert!(s.iter().any(|s| s.url == masked && s.playing), "{s:?}");
        }
        let target = if round < 2 { url } else { masked };
        assert!(h.gateway.terminate(target, now));
        assert!(
            !listed(&h),
            "round {round}: listed after terminate returned"
        );
        assert!(
            !h.gateway.terminate(target, now),
            "round {round}: terminated twice"
        );
    }
    // Started again before worker 1 handled the terminate: listed throughout.
    let now = h.now;
    h.gateway.startup(url, now).unwrap();
    assert!(h.gateway.terminate(url, now));
    h.gateway.startup(url, now).unwrap();
    for _ in 0..30 {
        assert!(listed(&h));
        h.step(Duration::from_millis(10));
    }
    assert!(h.gateway.terminate(masked, now));
    h.run_for(Duration::from_millis(300));
    assert!(!listed(&h));
    assert_eq!(
        h.others[0].resident().streams,
        0,
        "worker 1 closed them all"
    );
}

#[test]
fn viewers_of_one_busy_camera_spread_over_both_workers_through_a_mirror() {
    let (mut h, placements) = Harness::with_workers_margin(2, 0);
    let url = "rtsp://127.0.0.1:8554/cam";
    // Margin 0: viewers alternate between the camera's worker (0) and a mirror on worker 1.
    let mut browsers = vec![h.play(url)];
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..13); // mid-GOP: frames 10..=12 cached
    for _ in 0..3 {
        browsers.push(h.play(url));
        h.run_for(Duration::from_millis(200));
    }
    h.camera_frames(13..30);
    assert_eq!((h.connects, h.camera_worker), (1, 0), "one RTSP connection");
    assert_eq!(
        (h.gateway.viewer_count(), h.others[0].viewer_count()),
        (2, 2)
    );
    for &b in &browsers {
        assert_eq!(
            h.browsers[b].statuses(),
            ["PENDING", "PLAYING"],
            "browser {b}"
        );
        assert!(h.browsers[b].frames.len() >= 17, "browser {b}");
        // Joined mid-GOP, yet starts with a keyframe: the mirror caches the GOP too.
        assert_eq!(
            nal_types(&h.browsers[b].frames[0].2),
            [7, 8, 5],
            "browser {b}"
        );
    }
    // The mirror's viewers got the camera's frames in order, with the camera's timestamps.
    let times = |b: usize| -> Vec<u32> { h.browsers[b].frames.iter().map(|f| f.1).collect() };
    let (on_origin, on_mirror) = (times(browsers[2]), times(browsers[1]));
    assert!(on_mirror.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(on_mirror.last(), on_origin.last());
    // Worker 1 pulls nothing and encrypts for its own viewers; the APIs show one stream.
    let mirror = h.others[0].local_stats();
    assert_eq!(mirror.camera_packets_in, 0);
    assert!(mirror.viewer_packets_out > 0);
    assert!(h.wakes > 0);
    for w in 0..2 {
        let shown = h.gw(w).streams();
        assert_eq!(shown.len(), 1, "worker {w}: {shown:?}");
        assert_eq!((shown[0].viewers, shown[0].status()), (4, "PLAYING"));
    }

    // Steady state (once every buffer has grown): the mirror path allocates nothing per
    // packet either: one payload per camera packet in, shared by both workers' viewers.
    h.camera_frames(30..200);
    for n in 201..301 {
        h.steady_frame(n); // the GOP caches grow to this stream's GOP
    }
    let (ingest0, transmit0, datagrams0, media0) = (
        h.ingest_allocs,
        h.transmit_allocs,
        h.datagrams,
        h.media_datagrams,
    );
    for n in 301..401 {
        h.steady_frame(n);
    }
    let ingest = h.ingest_allocs - ingest0;
    let transmit = h.transmit_allocs - transmit0;
    let datagrams = h.datagrams - datagrams0;
    assert_eq!(
        h.media_datagrams - media0,
        4 * 100,
        "every viewer gets every packet"
    );
    assert_eq!(
        ingest, 100,
        "allocations taking 100 packets in, mirrors included"
    );
    assert!(
        transmit <= datagrams,
        "{transmit} allocations for {datagrams} datagrams"
    );

    // The mirror's viewers leave: it closes and unsubscribes; the camera stays for the rest.
    for &b in &[browsers[1], browsers[3]] {
        let session = h.browsers[b].session;
        h.gateway.handle_session_closed(session, h.now);
    }
    h.run_for(Duration::from_millis(100));
    assert_eq!(h.others[0].resident().streams, 0, "mirror closed");
    let before = h.browsers[browsers[0]].frames.len();
    h.camera_frames(401..406);
    assert!(h.browsers[browsers[0]].frames.len() >= before + 5);
    // The next viewer goes to the emptier worker 1 again, through a new mirror.
    let late = h.play(url);
    h.run_for(Duration::from_millis(200));
    h.camera_frames(406..410);
    assert_eq!(h.others[0].viewer_count(), 1);
    assert_eq!(nal_types(&h.browsers[late].frames[0].2), [7, 8, 5]);
    for b in [browsers[0], browsers[2], late] {
        let session = h.browsers[b].session;
        h.gateway.handle_session_closed(session, h.now);
    }
    h.run_for(Duration::from_secs(6));
    assert!(h.rtsp_closed);
    assert_eq!(placements[1].with(|w| w.find(url)), None);
    for w in 0..2 {
        let left = h.gw(w).resident();
        assert_eq!((left.streams, left.viewers), (0, 0), "worker {w}: {left:?}");
    }
}

#[test]
fn a_mirrors_viewers_fail_with_the_camera_and_wait_through_its_reconnects() {
    let (mut h, _) = Harness::with_workers_margin(2, 0);
    let url = "rtsp://127.0.0.1:8554/cam";
    let on_origin = h.play(url);
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    let mirrored = h.play(url);
    h.run_for(Duration::from_millis(200));
    h.camera_frames(5..12);
    assert_eq!(h.others[0].viewer_count(), 1, "served by the mirror");
    let before = h.browsers[mirrored].frames.len();
    assert!(before >= 7);

    // The camera reboots: the mirror's viewer stays, and resumes on the new session's
    // keyframe (P-frames of the new session before it are held back).
    h.camera_down = true;
    let now = h.now;
    h.gateway.handle_rtsp_lost(h.stream.unwrap(), now);
    h.run_for(Duration::from_millis(1500));
    h.camera_down = false;
    h.run_for(Duration::from_secs(3));
    assert!(h.connects >= 2);
    h.camera_frames(5..22);
    let after = &h.browsers[mirrored].frames[before..];
    assert!(
        after.len() >= 10,
        "{} frames after the reconnect",
        after.len()
    );
    assert_eq!(nal_types(&after[0].2), [7, 8, 5]);
    assert_eq!(h.browsers[mirrored].statuses(), ["PENDING", "PLAYING"]);

    // REST terminate: both viewers get FAILED with the reason; the mirror closes.
    let now = h.now;
    assert!(h.gateway.terminate(url, now));
    h.run_for(Duration::from_millis(300));
    for b in [on_origin, mirrored] {
        let last = h.browsers[b]
            .ws
            .iter()
            .rev()
            .find(|v| v["message"] == "notifyStreamStatusEvent")
            .cloned()
            .unwrap();
        assert_eq!(last["data"][0]["status"], "FAILED", "browser {b}");
        assert_eq!(last["data"][0]["info"], "Stopped by rest /terminate");
    }
    assert_eq!(h.others[0].resident().streams, 0);
    assert_eq!(h.others[0].viewer_count(), 0);
}

#[test]
fn a_browsers_keyframe_request_is_answered_from_the_gop_cache() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..14); // keyframes at 0 and 10: the GOP now holds frames 10..=13
    let before = h.browsers[b].frames.len();
    let last_ts = h.browsers[b].frames.last().unwrap().1;

    // The browser lost a frame it can't get back and asks for a keyframe (PLI).
    h.request_keyframe(b);
    h.run_for(Duration::from_millis(50));
    let replayed: Vec<_> = h.browsers[b].frames[before..].to_vec();
    assert_eq!(h.gateway.stats().keyframe_requests_answered, 1);
    assert_eq!(
        replayed.len(),
        4,
        "frames 10..=13 again, long before the camera's keyframe 20"
    );
    assert_eq!(nal_types(&replayed[0].2), [7, 8, 5]);
    let times: Vec<u32> = replayed.iter().map(|f| f.1.wrapping_sub(last_ts)).collect();
    assert_eq!(
        times,
        [1, 2, 3, 4],
        "just after the last frame sent, one tick apart"
    );

    // Live frames follow the replay in order; a second request within a second is not
    // answered (browsers repeat PLIs until a keyframe arrives).
    h.request_keyframe(b);
    h.camera_frames(14..16);
    assert_eq!(h.gateway.stats().keyframe_requests_answered, 1);
    let live: Vec<u32> = h.browsers[b].frames[before + 4..]
        .iter()
        .map(|f| f.1.wrapping_sub(last_ts))
        .collect();
    assert_eq!(
        live,
        [3600, 7200],
        "the camera's next frames, after the replay"
    );
}

#[test]
fn a_browser_whose_link_cannot_carry_the_stream_is_told_and_skips_to_keyframes() {
    let mut h = Harness::new();
    let healthy = h.play("rtsp://127.0.0.1:8554/cam");
    let slow = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    // 25 fps, an IDR (4000 bytes) every 10th frame, 600-byte P-frames: 188 kbit/s of payload.
    let mut sent_at = std::collections::HashMap::new();
    let mut frame = 0u32;
    let mut camera = |h: &mut Harness, secs: u64| {
        for _ in 0..secs * 25 {
            let nals = if frame.is_multiple_of(10) {
                vec![nal(5, 4000)]
            } else {
                vec![nal(1, 600)]
            };
            sent_at.insert((frame * 3600).wrapping_add(h.camera.time_base), h.now);
            h.camera.send_frame(frame * 3600, &nals);
            h.run_for(Duration::from_millis(40));
            frame += 1;
        }
    };
    camera(&mut h, 2);
    assert!(h.browsers[slow].frames.len() >= 45);
    // The slow browser's link drops to 100 kbit/s, with a 30 kB queue (2.4 s) in front.
    h.browsers[slow].link = Some(Link::new(100_000, 30_000));
    let frames_before = h.browsers[slow].frames.len();
    let has_event = |h: &Harness| {
        h.browsers[slow]
            .ws
            .iter()
            .any(|v| v["message"] == "notifyStreamEvent")
    };
    let mut seconds = 0;
    while !has_event(&h) && seconds < 10 {
        camera(&mut h, 1);
        seconds += 1;
    }
    println!("notEnoughBandwidth within {seconds} s of the link dropping");
    // Not on one bad report: a few seconds (RTCP receiver reports come about once a second).
    assert!((3..=7).contains(&seconds), "{seconds}");
    camera(&mut h, 16 - seconds);

    let ws = &h.browsers[slow].ws;
    let stream_events: Vec<&Value> = ws
        .iter()
        .filter(|v| v["message"] == "notifyStreamEvent")
        .collect();
    assert_eq!(
        stream_events.len(),
        1,
        "one event, not one per report: {stream_events:?}"
    );
    let event = &stream_events[0]["data"][0];
    assert_eq!(event["mediaSessionId"], "m1");
    assert_eq!(event["type"], "notEnoughBandwidth");
    let info = event["payload"]["info"].as_str().unwrap();
    let (remote, network) = info.split_once('/').unwrap();
    let (remote, network): (u64, u64) = (remote.parse().unwrap(), network.parse().unwrap());
    println!("notEnoughBandwidth info {info}");
    assert!(
        (150_000..=230_000).contains(&remote),
        "stream bitrate {remote}"
    );
    assert!(
        (40_000..=110_000).contains(&network),
        "network bandwidth {network}"
    );
    let stats = h.gateway.stats();
    assert_eq!(stats.not_enough_bandwidth, 1, "{stats:?}");
    assert!(stats.congestion_skips >= 1, "{stats:?}");

    // The slow browser's video skipped ahead, and every skip landed on a keyframe with its
    // SPS and PPS in front.
    let frames = &h.browsers[slow].frames[frames_before..];
    let mut skips = 0;
    for w in frames.windows(2) {
        if w[1].1.wrapping_sub(w[0].1) != 3600 {
            skips += 1;
            assert_eq!(
                nal_types(&w[1].2),
                [7, 8, 5],
                "resumed at frame {}",
                w[1].1.wrapping_sub(h.camera.time_base) / 3600
            );
        }
    }
    assert!(skips >= 1, "the slow browser never skipped");
    // Instead of falling ever further behind (the link's queue alone holds 2.4 s), what it
    // shows in the last seconds is late by less than a second.
    let lag = |f: &(Instant, u32, Vec<u8>)| f.0.saturating_duration_since(sent_at[&f.1]);
    let last = frames.last().unwrap();
    let recent: Vec<&(Instant, u32, Vec<u8>)> = frames
        .iter()
        .filter(|f| h.now.saturating_duration_since(f.0) < Duration::from_secs(6))
        .collect();
    assert!(
        recent.len() >= 20,
        "the slow browser still plays: {} frames",
        recent.len()
    );
    let worst = recent.iter().map(|f| lag(f)).max().unwrap();
    println!("worst lag in the last 6 s: {worst:?}");
    println!(
        "slow browser: {} frames in 16 s, {skips} skips, last frame {} ms behind; link dropped {} datagrams",
        frames.len(),
        lag(last).as_millis(),
        h.browsers[slow].link.as_ref().unwrap().dropped
    );
    // With the camera's 1400-byte packets re-fragmented to 1200 the worst lag is 1.12 s (it was
    // 640 ms when the fake camera sent each NAL whole, in 4 packets after the gateway's split
    // instead of 6): more frames get through (157 vs 137 in 16 s) at the same 8 skips. Bounded
    // all the same, far under the 2.4 s the queue holds; the difference is reported for a look.
    assert!(worst < Duration::from_millis(1250), "{worst:?}");

    // The healthy browser in the same run: no event, no skip, no lag.
    assert!(!h.browsers[healthy]
        .ws
        .iter()
        .any(|v| v["message"] == "notifyStreamEvent"));
    let frames = &h.browsers[healthy].frames;
    assert!(frames.len() >= 17 * 25, "{}", frames.len());
    assert!(frames
        .windows(2)
        .all(|w| w[1].1.wrapping_sub(w[0].1) == 3600));
    assert!(lag(frames.last().unwrap()) < Duration::from_millis(100));
}

#[test]
fn datagrams_from_unknown_addresses_are_dropped_unless_a_viewers_ice_check() {
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    let learned = h.gateway.resident().learned_addresses;
    let frames = h.browsers[b].frames.len();
    let server: SocketAddr = "127.0.0.1:20000".parse().unwrap();
    // Garbage, an RTP-looking packet, and STUN checks naming no viewer, from 500 addresses:
    // none may be learned (each is one map lookup at most, whatever the number of viewers).
    let mut stun_unknown = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun_unknown.extend_from_slice(&[9; 12]);
    stun_unknown.extend_from_slice(&[0x00, 0x06, 0x00, 0x07]);
    stun_unknown.extend_from_slice(b"nobody:x\0");
    stun_unknown.truncate(20 + 12);
    for i in 0..500u16 {
        let source = SocketAddr::from(([127, 0, 0, 9], 1000 + i));
        let now = h.now;
        for data in [
            &b"\x00garbage"[..],
            &[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
            &stun_unknown,
        ] {
            h.gateway.handle_udp(now, source, server, data);
        }
    }
    assert_eq!(h.gateway.resident().learned_addresses, learned);
    // The viewer plays on.
    h.camera_frames(5..10);
    assert!(h.browsers[b].frames.len() >= frames + 5);
}

/// The H.265 capture of the test camera (x265 + rtph265pay, core/tests/data/h265): its SDP
/// media section and its packets grouped by frame.
fn h265_camera() -> (String, Vec<Vec<Vec<u8>>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/h265");
    let meta = std::fs::read_to_string(dir.join("x265_zerolatency.meta")).unwrap();
    let fmtp = meta.lines().find_map(|l| l.strip_prefix("fmtp=")).unwrap();
    let sdp = format!("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=fmtp:96 {fmtp}\r\n");
    let data = std::fs::read(dir.join("x265_zerolatency.rtp")).unwrap();
    let mut frames: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut last_ts = None;
    for p in camgate_testkit::capture::rfc4571_packets(&data) {
        let ts = u32::from_be_bytes(p[4..8].try_into().unwrap());
        if last_ts != Some(ts) {
            frames.push(Vec::new());
            last_ts = Some(ts);
        }
        frames.last_mut().unwrap().push(p);
    }
    (sdp, frames)
}

/// The H.265 NAL unit types of an Annex-B access unit.
fn h265_nal_types(annexb: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < annexb.len() {
        if annexb[i..].starts_with(&[0, 0, 1]) {
            types.push((annexb[i + 3] >> 1) & 0x3f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// A browser (offering H.265 or not) plays the H.265 camera: the harness, the browser, and the
/// camera's frames to send.
fn play_h265_camera(browser_h265: bool) -> (Harness, usize, Vec<Vec<Vec<u8>>>) {
    let (sdp, frames) = h265_camera();
    let mut h = Harness::new();
    h.camera.video_sdp = Some(sdp);
    h.browser_h265 = browser_h265;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    (h, b, frames)
}

#[test]
fn an_h265_camera_plays_in_a_browser_that_offers_h265() {
    let (mut h, b, frames) = play_h265_camera(true);
    assert!(h.browsers[b]
        .ws
        .iter()
        .any(|v| v["message"] == "setRemoteSDP"));
    let mut late = None;
    for (i, frame) in frames.iter().enumerate() {
        if i == 40 {
            // A late joiner, mid-GOP: it starts at once from the cached GOP, at the CRA.
            late = Some(h.play("rtsp://127.0.0.1:8554/cam"));
            h.run_for(Duration::from_millis(300));
        }
        for p in frame {
            h.camera.send_video_packet(p);
        }
        h.run_for(Duration::from_millis(40));
    }
    let late = &h.browsers[late.unwrap()];
    assert_eq!(late.statuses(), ["PENDING", "PLAYING"]);
    assert_eq!(h265_nal_types(&late.frames[0].2), [32, 33, 34, 21]);
    assert_eq!(
        late.frames.len(),
        frames.len() - 30,
        "the GOP from the CRA on"
    );
    let browser = &h.browsers[b];
    assert_eq!(browser.statuses(), ["PENDING", "PLAYING"]);
    let playing = (browser.ws.iter())
        .find(|v| v["data"][0]["status"] == "PLAYING")
        .unwrap();
    assert_eq!(playing["data"][0]["info"], "video H265 Main L2.1 640x360");
    // Every frame arrives whole (str0m hands out only complete frames), and the viewer starts
    // at the IDR with VPS, SPS, PPS in front; the CRA, which the camera sent without them, gets
    // them too.
    assert_eq!(browser.frames.len(), frames.len(), "frames decoded");
    let types: Vec<Vec<u8>> = (browser.frames.iter())
        .map(|f| h265_nal_types(&f.2))
        .collect();
    assert_eq!(types[0], [32, 33, 34, 20], "VPS, SPS, PPS, IDR_N_LP");
    assert_eq!(types[30], [32, 33, 34, 21], "VPS, SPS, PPS, CRA");
    let irap = |t: &Vec<u8>| t.iter().any(|t| (16..=21).contains(t));
    assert_eq!(types.iter().filter(|t| irap(t)).count(), 2);
    assert!(types.iter().filter(|t| !irap(t)).all(|t| t == &[1]));
    assert_eq!(h.gateway.stats().camera_packets_lost, 0);

    // A keyframe request (PLI) is answered from the cache: the GOP from the CRA again.
    let before = h.browsers[b].frames.len();
    h.request_keyframe(b);
    h.run_for(Duration::from_millis(50));
    assert_eq!(h.gateway.stats().keyframe_requests_answered, 1);
    let replayed = &h.browsers[b].frames[before..];
    assert_eq!(replayed.len(), frames.len() - 30);
    assert_eq!(h265_nal_types(&replayed[0].2), [32, 33, 34, 21]);
}

#[test]
fn an_h265_viewer_on_another_worker_plays_through_a_mirror() {
    let (sdp, frames) = h265_camera();
    let (mut h, _) = Harness::with_workers_margin(2, 0);
    h.camera.video_sdp = Some(sdp);
    h.browser_h265 = true;
    let url = "rtsp://127.0.0.1:8554/cam";
    // Margin 0: the first viewer is on the camera's worker (0), the second on a mirror (1).
    let origin = h.play(url);
    h.run_for(Duration::from_millis(300));
    let mut mirrored = None;
    for (i, frame) in frames.iter().enumerate() {
        if i == 10 {
            // Mid-GOP: it starts at once from the GOP the mirror was handed.
            mirrored = Some(h.play(url));
            h.run_for(Duration::from_millis(300));
        }
        for p in frame {
            h.camera.send_video_packet(p);
        }
        h.run_for(Duration::from_millis(40));
    }
    let mirrored = mirrored.unwrap();
    assert_eq!((h.connects, h.camera_worker), (1, 0), "one RTSP connection");
    assert_eq!(
        (h.gateway.viewer_count(), h.others[0].viewer_count()),
        (1, 1)
    );
    assert_eq!(h.others[0].local_stats().camera_packets_in, 0, "a mirror");
    let browser = &h.browsers[mirrored];
    assert_eq!(browser.statuses(), ["PENDING", "PLAYING"]);
    // Every frame of the capture, whole and in order, from the IDR with its parameter sets;
    // the CRA (sent by the camera without them) has them too.
    let types: Vec<Vec<u8>> = (browser.frames.iter())
        .map(|f| h265_nal_types(&f.2))
        .collect();
    assert_eq!(types.len(), frames.len(), "frames decoded");
    assert_eq!(types[0], [32, 33, 34, 20], "VPS, SPS, PPS, IDR_N_LP");
    assert_eq!(types[30], [32, 33, 34, 21], "VPS, SPS, PPS, CRA");
    let irap = |t: &Vec<u8>| t.iter().any(|t| (16..=21).contains(t));
    assert!(types.iter().filter(|t| !irap(t)).all(|t| t == &[1]));
    let times = |b: usize| -> Vec<u32> { h.browsers[b].frames.iter().map(|f| f.1).collect() };
    // In order; the cached GOP it started on is re-stamped to play at once, the live frames
    // from the 10th on carry the camera's timestamps, as the origin's viewer got them.
    let (on_mirror, on_origin) = (times(mirrored), times(origin));
    assert!(on_mirror.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(on_mirror[10..], on_origin[10..]);
}

#[test]
fn a_browser_without_h265_gets_failed_with_what_to_do() {
    let (h, b, _) = play_h265_camera(false);
    let browser = &h.browsers[b];
    assert_eq!(browser.statuses(), ["PENDING", "FAILED"]);
    let failed = (browser.ws.iter())
        .find(|v| v["data"][0]["status"] == "FAILED")
        .unwrap();
    assert_eq!(
        failed["data"][0]["info"],
        "No common codecs: camera sends H.265 Main; this browser decodes VP8, H264: use the \
         camera's H.264 sub-stream, or a browser that decodes H.265 (Safari 17+, Chrome or Edge \
         with hardware HEVC decoding)"
    );
    assert!(!browser.ws.iter().any(|v| v["message"] == "setRemoteSDP"));
}

#[test]
fn an_h265_viewer_on_a_slow_link_skips_to_irap_pictures_with_their_parameter_sets() {
    let (mut h, slow, frames) = play_h265_camera(true);
    // The capture (2 s, ~700 kbit/s, an IRAP every second: IDR, then CRA) looped for 12 s,
    // renumbered so it is one stream; the link carries 300 kbit/s behind a 40 kB queue.
    h.browsers[slow].link = Some(Link::new(400_000, 120_000));
    let packets_per_loop = frames.iter().map(Vec::len).sum::<usize>() as u16;
    for round in 0..6u32 {
        for frame in &frames {
            for p in frame {
                let mut p = p.clone();
                let seq = u16::from_be_bytes([p[2], p[3]]) + packets_per_loop * round as u16;
                let ts = u32::from_be_bytes(p[4..8].try_into().unwrap()) + round * 60 * 3000;
                p[2..4].copy_from_slice(&seq.to_be_bytes());
                p[4..8].copy_from_slice(&ts.to_be_bytes());
                h.camera.send_video_packet(&p);
            }
            h.run_for(Duration::from_millis(30));
        }
    }
    assert!(
        h.gateway.stats().congestion_skips >= 1,
        "{:?}",
        h.gateway.stats()
    );
    // Skips resume at an IRAP picture (at least one such resume is seen), and every IRAP
    // picture it gets has VPS, SPS and PPS in front. (The link also drops datagrams before
    // camgate judges it too slow: those losses show as gaps too, resuming wherever the browser
    // could complete a frame.)
    let got = &h.browsers[slow].frames;
    let irap = |t: &[u8]| t.iter().any(|t| (16..=21).contains(t));
    for f in got {
        let types = h265_nal_types(&f.2);
        assert!(
            !irap(&types) || types.starts_with(&[32, 33, 34]),
            "{types:?}"
        );
    }
    let skips = (got.windows(2))
        .filter(|w| w[1].1.wrapping_sub(w[0].1) > 3001 && irap(&h265_nal_types(&w[1].2)))
        .count();
    assert!(skips >= 1, "never resumed at an IRAP: {} frames", got.len());
    println!(
        "slow H.265 viewer: {} of 360 frames, {skips} skips",
        got.len()
    );
}

/// A real capture from core/tests/data/audio (GStreamer encoder + payloader, 1 s of a 1 kHz
/// tone): its SDP audio section (rtpmap from the .meta, the packets' own payload type) and the
/// RFC 4571-framed RTP packets.
fn audio_capture(name: &str) -> (String, Vec<Vec<u8>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/audio");
    let meta = std::fs::read_to_string(dir.join(format!("{name}.meta"))).unwrap();
    let field = |k: &str| {
        meta.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .unwrap()
            .to_owned()
    };
    let rtp = std::fs::read(dir.join(format!("{name}.rtp"))).unwrap();
    let packets: Vec<Vec<u8>> = camgate_testkit::capture::rfc4571_packets(&rtp)
        .iter()
        .map(|p| p.to_vec())
        .collect();
    let pt = packets[0][1] & 0x7f;
    let sdp = format!(
        "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} {}/{}/{}\r\na=control:track2\r\n",
        field("encoding"),
        field("clock_rate"),
        field("channels")
    );
    (sdp, packets)
}

/// Sends the capture's packets with a video frame every other packet (20 ms audio, 40 ms video).
fn send_capture(h: &mut Harness, packets: &[Vec<u8>]) {
    for (i, packet) in packets.iter().enumerate() {
        h.camera.send_audio_packet(packet);
        if i % 2 == 0 {
            h.camera_frames(i as u32 / 2..i as u32 / 2 + 1);
        }
    }
    h.run_for(Duration::from_millis(200));
}

fn playing_info(h: &Harness, b: usize) -> String {
    h.browsers[b]
        .ws
        .iter()
        .find(|v| v["data"][0]["status"] == "PLAYING")
        .and_then(|v| v["data"][0]["info"].as_str())
        .expect("PLAYING")
        .to_owned()
}

#[test]
fn g722_passes_through_to_a_browser_that_offers_it_and_becomes_opus_for_one_that_does_not() {
    let (sdp, packets) = audio_capture("g722_16000");
    let mut h = Harness::new();
    h.camera.audio_sdp = Some(sdp);
    h.browser_g722 = true;
    let with_g722 = h.play("rtsp://127.0.0.1:8554/cam");
    h.browser_g722 = false;
    let without = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    send_capture(&mut h, &packets);
    let only = |b: usize, codec: str0m::format::Codec| {
        !h.browsers[b].audio.is_empty() && h.browsers[b].audio.iter().all(|(c, _)| *c == codec)
    };
    assert!(
        only(with_g722, str0m::format::Codec::G722),
        "G.722 passed through"
    );
    let g722 = &h.browsers[with_g722].audio;
    assert!(g722.len() >= 40, "{} G.722 packets", g722.len());
    assert_eq!(
        g722[0].1,
        RtpPacket::parse(&packets[0]).unwrap().payload,
        "G.722 payloads arrive untouched"
    );
    assert!(
        only(without, str0m::format::Codec::Opus),
        "Opus for the browser without G.722"
    );
    let opus = h.browsers[without].audio.len();
    assert!(opus >= 40, "{opus} Opus packets for 1 s of G.722");
    let info = &h.gateway.streams()[0].info;
    assert!(
        info.contains(
            "audio G722 8000 Hz (passed through), and → opus 48000 Hz for browsers without it"
        ),
        "{info}"
    );
    assert!(h.browsers[with_g722].frames.len() >= 15);
}

#[test]
fn l16_from_the_camera_reaches_the_browser_as_opus() {
    for name in ["l16_16000_mono", "l16_48000_stereo"] {
        let (sdp, packets) = audio_capture(name);
        let mut h = Harness::new();
        h.camera.audio_sdp = Some(sdp);
        let b = h.play("rtsp://127.0.0.1:8554/cam");
        h.run_for(Duration::from_millis(300));
        send_capture(&mut h, &packets);
        let audio = &h.browsers[b].audio;
        assert!(
            audio.len() >= 40 && audio.iter().all(|(c, _)| *c == str0m::format::Codec::Opus),
            "{name}: {} packets",
            audio.len()
        );
        assert_eq!(
            h.gateway.stats().audio_packets_transcoded,
            packets.len() as u64
        );
        let info = playing_info(&h, b);
        assert!(
            info.contains("audio L16 ") && info.contains("→ opus 48000 Hz"),
            "{info}"
        );
    }
}

#[test]
fn g726_audio_is_left_out_by_name_and_the_video_plays() {
    let mut h = Harness::new();
    h.camera.audio_sdp =
        Some("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 G726-32/8000\r\na=control:track2\r\n".into());
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..20);
    assert!(h.browsers[b].frames.len() >= 15);
    assert!(h.browsers[b].audio.is_empty());
    let info = playing_info(&h, b);
    assert!(
        info.starts_with("video H264 42c01e; left out: audio g726-32: ")
            && info.contains("G726-32 cannot be played"),
        "{info}"
    );
    // Both tracks are set up (RTSP players get the G.726); its packets are never decoded.
    let setups = h
        .camera
        .requests
        .iter()
        .filter(|r| r.starts_with("SETUP"))
        .count();
    assert_eq!(setups, 2);
    for n in 0..10 {
        let packet = rtp_packet(97, n, u32::from(n) * 160, &[0x5a; 80]);
        h.camera.send_audio_packet(&packet);
    }
    h.run_for(Duration::from_millis(100));
    assert!(h.browsers[b].audio.is_empty());
    assert_eq!(h.gateway.stats().audio_packets_transcoded, 0);
}

/// A plain RTP packet (SSRC 0x0a0b0c0d, no marker).
fn rtp_packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    RtpPacket {
        payload_type: pt,
        marker: false,
        sequence: seq,
        timestamp: ts,
        ssrc: 0x0a0b_0c0d,
        payload,
    }
    .write_to(&mut out);
    out
}

#[test]
fn mjpeg_video_fails_with_an_info_naming_it() {
    let mut h = Harness::new();
    h.camera.video_sdp = Some("m=video 0 RTP/AVP 26\r\n".into());
    h.camera.with_audio = true;
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    let failed = h.browsers[b].failed();
    let info = failed["data"][0]["info"].as_str().unwrap();
    assert!(
        info.contains("MJPEG") && info.contains("cannot be played over WebRTC"),
        "{info}"
    );
    // Set up like any camera (an RTSP player could have played it); with browsers only, the
    // camera connection closes at once.
    assert!(h.rtsp_closed);
    assert_eq!(h.gateway.resident().streams, 0);
}

#[test]
fn with_stun_servers_answers_carry_the_public_address_and_camgate_runs_full_ice() {
    // Without STUN servers: ICE-lite, host candidates only.
    let mut h = Harness::new();
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    let answer = h.browsers[b].answer().to_owned();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(!answer.contains("typ srflx"), "{answer}");

    let public: SocketAddr = "203.0.113.1:40000".parse().unwrap();
    let mut h = Harness::with_stun_server("203.0.113.1:40000");
    assert_eq!(
        h.stun_answered, 1,
        "one Binding request, from the media socket"
    );
    let local: SocketAddr = "127.0.0.1:20000".parse().unwrap();
    assert_eq!(h.gateway.public_address(local), Some(public));
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(500));
    let answer = h.browsers[b].answer().to_owned();
    assert!(!answer.contains("a=ice-lite"), "full ICE: {answer}");
    assert!(
        answer.contains("203.0.113.1 40000 typ srflx raddr"),
        "the public address is a server-reflexive candidate: {answer}"
    );
    assert!(answer.contains("127.0.0.1 20000 typ host"), "{answer}");
    assert!(
        h.browsers[b].rtc.is_connected(),
        "ICE/DTLS did not complete"
    );
    h.camera_frames(0..30);
    assert!(
        h.browsers[b].frames.len() >= 25,
        "{}",
        h.browsers[b].frames.len()
    );
    // The mapping is kept open: checked again after the refresh interval.
    h.run_for(camgate_core::stun::STUN_REFRESH + Duration::from_secs(1));
    assert_eq!(h.stun_answered, 2);
    // Nothing left behind by the full-ICE routing table.
    h.signal(
        b,
        "stopStream",
        serde_json::json!({"mediaSessionId": "m0", "name": "x"}),
    );
    h.run_for(Duration::from_secs(7));
    assert_eq!(h.gateway.resident().learned_addresses, 0);
}

#[test]
fn behind_a_nat_camgates_own_check_opens_the_way_and_its_answer_is_routed() {
    let mut h = Harness::with_stun_server("203.0.113.1:40000");
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    // Until camgate sends to it, nothing from this browser gets in.
    h.browsers[b].behind_nat = true;
    // camgate's first check leaves at its first tick: connected well within a second.
    h.run_for(Duration::from_millis(600));
    assert!(
        h.browsers[b].nat_open,
        "camgate checked the browser's candidate"
    );
    assert!(
        h.browsers[b].rtc.is_connected(),
        "ICE/DTLS did not complete"
    );
    h.camera_frames(0..30);
    assert!(
        h.browsers[b].frames.len() >= 25,
        "{}",
        h.browsers[b].frames.len()
    );
    // The first datagram from the browser was its answer to camgate's check (it names no
    // ufrag): routed by the offer's candidates, not dropped.
    assert_eq!(h.gateway.stats().udp_unmatched, 0);
}

#[test]
fn with_full_ice_an_unreachable_viewer_fails_naming_the_server_reflexive_candidate_too() {
    let mut h = Harness::with_stun_server("203.0.113.1:40000");
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    h.browsers[b].vanished = true;
    let after = run_until_failed(&mut h, b, Duration::from_secs(20)).expect("FAILED");
    assert!(
        after >= ICE_TIMEOUT && after < ICE_TIMEOUT + Duration::from_millis(500),
        "FAILED after {after:?}"
    );
    let info = h.browsers[b].failed()["data"][0]["info"].as_str().unwrap();
    assert_eq!(
        info,
        "no ICE connectivity: camgate's UDP 127.0.0.1:20000, TCP 127.0.0.1:20000 and UDP \
         203.0.113.1:40000 (server-reflexive) got no check from the browser within 10 s (a firewall or NAT \
         between them?)"
    );
}

#[test]
fn an_ice_tcp_viewer_plays_beside_a_udp_one_with_frames_cut_anywhere() {
    let mut h = Harness::new();
    h.browser_tcp = true;
    let tcp = h.play("rtsp://127.0.0.1:8554/cam");
    h.browser_tcp = false;
    let udp = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(500));
    // `transport: "TCP"`: the answer has the passive TCP candidate only; the other one both,
    // UDP first by priority.
    let candidates = |b: usize| -> Vec<String> {
        let ws = &h.browsers[b].ws;
        let answer = ws.iter().find(|v| v["message"] == "setRemoteSDP").unwrap();
        let sdp = answer["data"][1].as_str().unwrap();
        sdp.lines()
            .filter(|l| l.starts_with("a=candidate"))
            .map(str::to_owned)
            .collect()
    };
    let (tcp_c, udp_c) = (candidates(tcp), candidates(udp));
    assert_eq!(tcp_c.len(), 1, "{tcp_c:?}");
    assert!(tcp_c[0].contains(" tcp ") && tcp_c[0].contains("tcptype passive"));
    assert_eq!(udp_c.len(), 2, "{udp_c:?}");
    let prio = |c: &str| c.split(' ').nth(3).unwrap().parse::<u32>().unwrap();
    let (u, t) = (
        udp_c.iter().find(|c| c.contains(" udp ")).unwrap(),
        udp_c.iter().find(|c| c.contains(" tcp ")).unwrap(),
    );
    assert!(prio(u) > prio(t), "UDP preferred: {udp_c:?}");

    h.camera_frames(0..30);
    for b in [tcp, udp] {
        assert!(h.browsers[b].rtc.is_connected(), "browser {b}");
        let frames = h.browsers[b].frames.len();
        assert!(frames >= 25, "browser {b}: {frames} frames");
    }
    let stats = h.gateway.stats();
    assert_eq!((stats.viewers_tcp, stats.viewers_udp), (1, 1));
    // The connection closes (the browser went away): its address no longer routes.
    h.gateway.handle_tcp_closed(h.browsers[tcp].addr);
    let stray = h.gateway.handle_tcp(
        h.now,
        h.browsers[tcp].addr,
        "127.0.0.1:20000".parse().unwrap(),
        &[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert!(!stray, "a closed connection's address leads nowhere");
}

fn named_cam() -> GatewayConfig {
    GatewayConfig {
        named_streams: vec![("cam".into(), "rtsp://127.0.0.1:8554/cam".into())],
        ..GatewayConfig::default()
    }
}

/// The camera's video RTP packets as it wrote them (it writes only interleaved video here).
/// Takes the gateway's datagrams for UDP players as the loop's socket would, appending them to
/// `items` ((destination, RTCP, start, end) in `bytes`); those to the player whose `udp_base` is
/// `refused` are refused.
fn send_player_datagrams(
    gateway: &mut Gateway,
    items: &mut Vec<(SocketAddr, bool, usize, usize)>,
    bytes: &mut Vec<u8>,
    refused: Option<u16>,
) {
    gateway.send_player_datagrams(&mut |datagrams, refuse| {
        for i in 0..datagrams.len() {
            let (to, rtcp, data) = datagrams.get(i);
            if refused.is_some_and(|base| (base..base + 100).contains(&to.port())) {
                refuse(i);
                continue;
            }
            items.push((to, rtcp, bytes.len(), bytes.len() + data.len()));
            bytes.extend_from_slice(data);
        }
    });
}

fn camera_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    camgate_core::rtsp::framing::Framer::new()
        .push(bytes, &mut |f| {
            if let camgate_core::rtsp::framing::Frame::Interleaved { channel: 0, data } = f {
                out.push(data.to_vec());
            }
            true
        })
        .unwrap();
    out
}

#[test]
fn rtsp_players_and_browsers_share_one_camera_connection_and_get_its_packets() {
    let mut h = Harness::with_config(named_cam());
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    let p1 = h.add_player("rtsp://box:8554/cam");
    let p2 = h.add_player("rtsp://box:8554/cam/");
    h.run_for(Duration::from_millis(300));
    for p in [p1, p2] {
        assert!(
            matches!(h.players[p].events.first(), Some(RtspEvent::Playing { tracks }) if tracks.len() == 1
                && tracks[0].encoding == "H264"
                && tracks[0].fmtp.as_deref().is_some_and(|f| f.contains("sprop-parameter-sets"))),
            "{:?}",
            h.players[p].events
        );
    }
    // Frames 0..5 (a keyframe at 0), captured as the camera wrote them.
    let mut sent = Vec::new();
    for frame in 0..15 {
        let nals = if frame % 10 == 0 {
            vec![nal(5, 4000)]
        } else {
            vec![nal(1, 600)]
        };
        h.camera.send_frame(frame * 3600, &nals);
        sent.extend(camera_packets(&h.camera.to_gateway));
        h.run_for(Duration::from_millis(40));
    }
    assert_eq!(
        h.connects, 1,
        "one camera connection for the browser and both players"
    );
    assert_eq!(h.gateway.stats().rtsp_connects, 1);
    assert!(h.browsers[b].frames.len() >= 14);
    for p in [p1, p2] {
        let got = &h.players[p].media;
        assert_eq!(
            got.len(),
            sent.len(),
            "every camera packet reached player {p}"
        );
        for (g, w) in got.iter().zip(&sent) {
            assert_eq!(g.0, 0);
            // Payload, marker, type and timestamp as the camera sent them.
            assert_eq!(g.1[12..], w[12..]);
            assert_eq!(g.1[..2], w[..2]);
            assert_eq!(g.1[4..8], w[4..8]);
        }
    }
    // A player leaving keeps the camera for the others; the last one leaving closes it.
    h.players[p1].client.teardown(h.now);
    h.run_for(Duration::from_millis(100));
    assert!(!h.rtsp_closed);
    h.signal(b, "stopStream", serde_json::json!({"mediaSessionId": "m0"}));
    h.players[p2].client.teardown(h.now);
    h.run_for(Duration::from_secs(7));
    assert!(
        h.rtsp_closed,
        "nobody watches: the camera connection closed after the linger"
    );
}

#[test]
fn a_player_of_an_unknown_name_gets_404_and_no_camera_is_pulled() {
    let mut h = Harness::with_config(named_cam());
    let p = h.add_player("rtsp://box:8554/nope");
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.connects, 0);
    assert!(
        matches!(h.players[p].events.as_slice(), [RtspEvent::Failed(e)] if e.to_string().contains("not found")),
        "{:?}",
        h.players[p].events
    );
}

#[test]
fn a_player_that_stops_reading_is_dropped_and_the_others_keep_playing() {
    let mut h = Harness::with_config(GatewayConfig {
        player_queue: camgate_core::rtsp::server::MediaOutConfig {
            max_queued: 20_000,
            drop_after: Duration::from_secs(2),
        },
        ..named_cam()
    });
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    let stalled = h.add_player("rtsp://box:8554/cam");
    let good = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    h.players[stalled].reading = false;
    h.camera_frames(5..100); // 3.8 s
    assert!(
        h.players[stalled].closed_by_gateway,
        "the stalled player was dropped"
    );
    assert!(h.gateway.stats().player_packets_skipped > 0);
    // The others got every frame.
    assert!(
        h.players[good].media.len() >= 100,
        "{}",
        h.players[good].media.len()
    );
    assert!(h.browsers[b].frames.len() >= 95);
    assert_eq!(h.gateway.player_count(), 1);
    assert!(!h.rtsp_closed);
}

#[test]
fn a_player_keeps_its_session_across_a_camera_reconnect() {
    let mut h = Harness::with_config(named_cam());
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..12);
    let before = h.players[p].media.len();
    h.gateway.handle_rtsp_lost(h.stream.unwrap(), h.now);
    h.run_for(Duration::from_secs(3));
    assert!(h.connects >= 2, "reconnected");
    // The new camera session starts mid-GOP: the player waits for the keyframe at 10.
    h.camera_frames(5..25);
    let after = &h.players[p].media[before..];
    assert!(!after.is_empty());
    let seqs: Vec<u16> = h.players[p]
        .media
        .iter()
        .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    let ssrcs: std::collections::HashSet<u32> = h.players[p]
        .media
        .iter()
        .map(|(_, d)| u32::from_be_bytes([d[8], d[9], d[10], d[11]]))
        .collect();
    assert_eq!(ssrcs.len(), 1, "one SSRC across the reconnect");
    // Continuous numbering: the new session's sequence and timestamps are rebased (the test
    // camera keeps its SSRC, as many do, so only the gateway knows it started over).
    assert!(
        seqs.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 1),
        "{seqs:?}"
    );
    assert_eq!(
        after[0].1[12] & 0x1f,
        28,
        "resumes on the keyframe's first fragment"
    );
    assert!(
        h.players[p]
            .events
            .iter()
            .all(|e| !matches!(e, RtspEvent::Failed(_))),
        "{:?}",
        h.players[p].events
    );
}

#[test]
fn a_late_player_starts_at_once_on_the_cached_gop() {
    let mut h = Harness::with_config(named_cam());
    let _first = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let sent = h.camera_frames_kept(0..13, None);
    // Joins between frames 12 and 13: no keyframe comes before frame 20.
    let late = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let gop: Vec<Vec<u8>> = sent[10..].concat();
    let got = &h.players[late].media;
    assert_eq!(
        got.len(),
        gop.len(),
        "frames 10..=12 at once, before any new camera packet"
    );
    for (g, w) in got.iter().zip(&gop) {
        assert_eq!(g.1[12..], w[12..]);
        assert_eq!(g.1[4..8], w[4..8], "the camera's timestamps");
    }
    h.camera_frames(13..15);
    let seqs: Vec<u16> = h.players[late]
        .media
        .iter()
        .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    assert!(seqs.len() > gop.len());
    assert!(
        seqs.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 1),
        "{seqs:?}"
    );
}

#[test]
fn the_first_player_of_a_named_stream_browsers_play_starts_at_once() {
    // A browser plays the camera (no player yet); the first player joins mid-GOP. Before,
    // the raw GOP was kept only while the stream had players, so it waited for the camera's
    // next keyframe (150-180 ms in the benchmark, a whole GOP at worst).
    let mut h = Harness::with_config(named_cam());
    let _browser = h.play("rtsp://127.0.0.1:8554/cam");
    h.run_for(Duration::from_millis(300));
    let sent = h.camera_frames_kept(0..13, None);
    let player = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let gop: Vec<Vec<u8>> = sent[10..].concat();
    let got = &h.players[player].media;
    assert_eq!(got.len(), gop.len(), "frames 10..=12 at once");
    for (g, w) in got.iter().zip(&gop) {
        assert_eq!(g.1[12..], w[12..]);
    }
}

#[test]
fn players_elsewhere_need_a_user_of_the_stream() {
    let users = vec![(
        "cam".to_owned(),
        camgate_core::rtsp::auth::Credentials::new("viewer".into(), "pw".into()),
    )];
    let mut h = Harness::with_config(GatewayConfig {
        named_streams: vec![
            ("cam".into(), "rtsp://127.0.0.1:8554/cam".into()),
            ("open".into(), "rtsp://127.0.0.1:8554/open".into()),
        ],
        rtsp_users: users,
        ..GatewayConfig::default()
    });
    // A stream without users is for this host only: 403, and no camera is pulled for it.
    let far = h.add_player_from("rtsp://box:8554/open", "192.0.2.7:40000");
    // With users: right credentials from anywhere, none refused.
    let good = h.add_player_from("rtsp://viewer:pw@box:8554/cam", "192.0.2.8:40000");
    let anon = h.add_player_from("rtsp://box:8554/cam", "127.0.0.1:40001");
    h.run_for(Duration::from_millis(300));
    assert!(
        matches!(h.players[far].events.as_slice(), [RtspEvent::Failed(e)] if e.to_string().contains("403")),
        "{:?}",
        h.players[far].events
    );
    assert!(matches!(
        h.players[good].events.first(),
        Some(RtspEvent::Playing { .. })
    ));
    assert!(
        matches!(
            h.players[anon].events.as_slice(),
            [RtspEvent::Failed(
                camgate_core::rtsp::RtspError::Unauthorized
            )]
        ),
        "{:?}",
        h.players[anon].events
    );
    assert_eq!(h.connects, 1, "only cam was pulled");
}

#[test]
fn players_count_against_the_viewer_limit_of_a_stream() {
    let mut h = Harness::with_config(GatewayConfig {
        max_viewers_per_stream: 2,
        ..named_cam()
    });
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    let first = h.add_player("rtsp://box:8554/cam");
    let extra = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    assert!(matches!(
        h.players[first].events.first(),
        Some(RtspEvent::Playing { .. })
    ));
    assert!(
        matches!(h.players[extra].events.as_slice(), [RtspEvent::Failed(e)] if e.to_string().contains("503")),
        "{:?}",
        h.players[extra].events
    );
    h.camera_frames(0..5);
    assert!(h.browsers[b].frames.len() >= 4);
    assert_eq!(h.connects, 1);
}

#[test]
fn players_get_the_cameras_sender_reports_in_their_numbering() {
    let mut h = Harness::with_config(named_cam());
    let p = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..3);
    h.camera.send_sender_report(1, 3_900_000_000.5, 7200);
    h.run_for(Duration::from_millis(40));
    let srs: Vec<&Vec<u8>> = h.players[p]
        .rtcp
        .iter()
        .filter(|(t, d)| *t == 0 && d[1] == 200)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(srs.len(), 1, "{:?}", h.players[p].rtcp);
    let sr = srs[0];
    // Frame 2 went out at camera time 7200 (+ the camera's base): the report pairs the same.
    let camera_time = 7200u32.wrapping_add(h.camera.time_base);
    let frame2 = h.players[p]
        .media
        .iter()
        .find(|(_, d)| u32::from_be_bytes([d[4], d[5], d[6], d[7]]) == camera_time)
        .expect("frame 2 reached the player");
    assert_eq!(sr[16..20], frame2.1[4..8]);
    assert_eq!(sr[4..8], frame2.1[8..12], "the session's SSRC");
    assert_eq!(
        u64::from_be_bytes(sr[8..16].try_into().unwrap()) >> 32,
        3_900_000_000
    );
}

fn udp_server() -> GatewayConfig {
    GatewayConfig {
        rtsp_server: camgate_core::rtsp::server::ServerConfig {
            udp_server_ports: Some((8000, 8001)),
            session_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        ..named_cam()
    }
}

#[test]
fn udp_players_get_every_camera_packet_and_sender_report_as_datagrams() {
    let mut h = Harness::with_config(udp_server());
    let p1 = h.add_udp_player("rtsp://box:8554/cam");
    let p2 = h.add_udp_player("rtsp://box:8554/cam");
    let tcp = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    for p in [p1, p2, tcp] {
        assert!(
            matches!(h.players[p].events.first(), Some(RtspEvent::Playing { .. })),
            "{:?}",
            h.players[p].events
        );
    }
    let stats = h.gateway.stats();
    assert_eq!((stats.players_udp, stats.players_tcp), (2, 1));
    let mut sent = Vec::new();
    for frame in 0..45 {
        let nals = if frame % 10 == 0 {
            vec![nal(5, 4000)]
        } else {
            vec![nal(1, 600)]
        };
        h.camera.send_frame(frame * 3600, &nals);
        sent.extend(camera_packets(&h.camera.to_gateway));
        h.run_for(Duration::from_millis(40));
        if frame == 2 {
            h.camera.send_sender_report(1, 3_900_000_000.5, 7200);
        }
    }
    assert_eq!(h.connects, 1, "one camera connection for all three");
    for p in [p1, p2, tcp] {
        let got = &h.players[p].media;
        assert_eq!(got.len(), sent.len(), "every camera packet reached {p}");
        for (g, w) in got.iter().zip(&sent) {
            assert_eq!((g.0, &g.1[12..], &g.1[4..8]), (0, &w[12..], &w[4..8]));
        }
        // The report pairs the RTP time of frame 2 as the player got it, with its SSRC.
        let srs: Vec<_> = (h.players[p].rtcp.iter())
            .filter(|(t, d)| *t == 0 && d[1] == 200)
            .collect();
        assert_eq!(srs.len(), 1, "{:?}", h.players[p].rtcp);
        let camera_time = 7200u32.wrapping_add(h.camera.time_base).to_be_bytes();
        let frame2 = got.iter().find(|(_, d)| d[4..8] == camera_time).unwrap();
        assert_eq!(srs[0].1[16..20], frame2.1[4..8]);
        assert_eq!(srs[0].1[4..8], frame2.1[8..12]);
    }
    let stats = h.gateway.stats();
    assert_eq!(stats.player_udp_packets_out, 2 * sent.len() as u64);
    assert_eq!(stats.player_udp_packets_dropped, 0);
    assert_eq!(stats.player_packets_out, sent.len() as u64);
    // Steady state: the UDP players cost no allocation (the same camera input with the TCP
    // player alone makes as many), nor does handing the datagrams out.
    let steady = |h: &mut Harness| {
        let ingest0 = h.ingest_allocs;
        h.camera_frames(45..90);
        h.ingest_allocs - ingest0
    };
    let with_udp = steady(&mut h);
    let mut alone = Harness::with_config(udp_server());
    alone.add_player("rtsp://box:8554/cam");
    alone.run_for(Duration::from_millis(300));
    alone.camera_frames(0..45);
    assert_eq!(
        with_udp,
        steady(&mut alone),
        "allocations in, with and without UDP players"
    );
    assert_eq!(
        h.player_udp_allocs, 0,
        "handing out datagrams allocates nothing"
    );
}

#[test]
fn a_silent_udp_player_times_out_and_receiver_reports_keep_one_alive() {
    let mut h = Harness::with_config(udp_server());
    let silent = h.add_udp_player("rtsp://box:8554/cam");
    let reports = h.add_udp_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera_frames(0..5);
    assert!(!h.players[silent].media.is_empty() && !h.players[reports].media.is_empty());
    // One goes away without TEARDOWN (its connection stays, as when a host hangs); the other
    // only sends receiver reports over UDP (its keepalive requests are lost).
    h.players[silent].sends_requests = false;
    h.players[silent].sends_rtcp = false;
    h.players[reports].sends_requests = false;
    let resident = h.gateway.resident();
    h.camera_frames(5..200); // 7.8 s: past the 5 s session timeout
    assert!(
        h.players[silent].closed_by_gateway,
        "the silent player timed out"
    );
    assert!(!h.players[reports].closed_by_gateway);
    assert_eq!(h.gateway.player_count(), 1);
    assert_eq!(h.gateway.stats().players_udp, 1);
    assert_eq!(
        h.gateway.resident().learned_addresses,
        resident.learned_addresses - 2,
        "its RTP and RTCP addresses are forgotten"
    );
    // Datagrams from its old ports are nobody's now.
    let old = SocketAddr::new(
        h.players[silent].peer.ip(),
        h.players[silent].udp_base.unwrap() + 1,
    );
    let now = h.now;
    assert!(!h.gateway.handle_player_udp(now, old));
    assert!(h.players[reports].media.len() > 150);
}

/// The socket refuses every datagram to one UDP player for 20 frames (a send that would block,
/// or fails): exactly those are dropped and counted; the other UDP player, a TCP player and a
/// browser get every packet, and the refused player gets the camera's packets again after.
#[test]
fn a_udp_player_whose_datagrams_the_socket_refuses_loses_only_its_own() {
    let mut h = Harness::with_config(udp_server());
    let b = h.play("rtsp://127.0.0.1:8554/cam");
    let refused = h.add_udp_player("rtsp://box:8554/cam");
    let other = h.add_udp_player("rtsp://box:8554/cam");
    let tcp = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    // Camera packets of frames 0..45 (a keyframe every 10th), by frame.
    let mut sent: Vec<Vec<Vec<u8>>> = Vec::new();
    for frame in 0..45 {
        h.refuse_udp_to = (10..30)
            .contains(&frame)
            .then(|| h.players[refused].udp_base.unwrap());
        let nals = if frame % 10 == 0 {
            vec![nal(5, 4000)]
        } else {
            vec![nal(1, 600)]
        };
        h.camera.send_frame(frame * 3600, &nals);
        sent.push(camera_packets(&h.camera.to_gateway));
        h.run_for(Duration::from_millis(40));
    }
    let all: Vec<&Vec<u8>> = sent.iter().flatten().collect();
    let lost = sent[10..30].iter().map(Vec::len).sum::<usize>();
    for p in [other, tcp] {
        let got = &h.players[p].media;
        assert_eq!(got.len(), all.len(), "player {p} got every camera packet");
        assert!(got.iter().zip(&all).all(|(g, w)| g.1[12..] == w[12..]));
    }
    assert!(
        h.browsers[b].frames.len() >= 43,
        "the browser kept its rate"
    );
    let got: Vec<&[u8]> = h.players[refused]
        .media
        .iter()
        .map(|(_, d)| &d[12..])
        .collect();
    let want: Vec<&[u8]> = (sent[..10].iter().chain(&sent[30..]))
        .flatten()
        .map(|d| &d[12..])
        .collect();
    assert_eq!(got, want, "the refused player lost frames 10..30 only");
    assert!(!h.players[refused].closed_by_gateway);
    let stats = h.gateway.stats();
    assert_eq!(stats.player_udp_packets_dropped, lost as u64);
    assert_eq!(stats.player_udp_packets_out, (2 * all.len() - lost) as u64);
    assert_eq!(stats.players_udp, 2);
}

/// 300 UDP players and a camera slice of 82 kB in one read (a 60 kB keyframe and P-frames:
/// 59 packets, 25 MB of datagrams once fanned out), fed as the event loop feeds it: each time
/// `handle_rtsp_data` stops because datagrams for the players came due, they are sent, then
/// the rest is fed. Nothing is dropped, every player gets every packet in order, and what
/// waits at once stays near `PLAYER_DATAGRAMS_DUE`. (Fed whole, as before the gateway stopped
/// at the due mark, 8 MiB of it queued and the rest was dropped: 11,708 of 17,700 datagrams.)
#[test]
fn three_hundred_udp_players_lose_nothing_of_a_large_camera_slice() {
    use camgate_core::gateway::PLAYER_DATAGRAMS_DUE;
    let mut h = Harness::with_config(udp_server());
    let players: Vec<usize> = (0..300)
        .map(|_| h.add_udp_player("rtsp://box:8554/cam"))
        .collect();
    h.run_for(Duration::from_millis(300));
    assert_eq!(h.gateway.stats().players_udp, 300);
    h.camera.send_frame(0, &[nal(5, 60_000)]);
    for n in 1..16 {
        h.camera.send_frame(n * 3600, &[nal(1, 1300)]);
    }
    let data = std::mem::take(&mut h.camera.to_gateway);
    let sent = camera_packets(&data);
    assert!(
        data.len() > 64 * 1024 && sent.len() == 59,
        "{} {}",
        data.len(),
        sent.len()
    );
    let (stream, now) = (h.stream.unwrap(), h.now);
    let (mut rest, mut calls, mut most) = (&data[..], 0, 0);
    while !rest.is_empty() {
        rest = &rest[h.gateway.handle_rtsp_data(stream, now, rest)..];
        h.drive_players();
        most = most.max(h.player_udp_bytes.len());
        calls += 1;
    }
    let stats = h.gateway.stats();
    assert_eq!(stats.player_udp_packets_dropped, 0);
    assert_eq!(stats.player_udp_packets_out, 300 * sent.len() as u64);
    for p in players {
        let got: Vec<&[u8]> = h.players[p].media.iter().map(|(_, d)| &d[12..]).collect();
        let want: Vec<&[u8]> = sent.iter().map(|d| &d[12..]).collect();
        assert!(
            got == want,
            "player {p}: {} of {} packets",
            got.len(),
            want.len()
        );
    }
    assert!(calls >= 10, "fed in {calls} calls");
    // Below the due mark, plus what the last piece made: about as much again, and a packet
    // more per player (one that began in the piece before).
    assert!(
        most <= 2 * PLAYER_DATAGRAMS_DUE + 300 * 1500,
        "{most} bytes waited at once"
    );
}

/// A join storm: 400 UDP players PLAY at once on a stream whose cached GOP is a 60 kB keyframe
/// and five P-frames (48 packets): their first paced replay steps alone (16 datagrams each) are
/// 9 MB. Sent whenever they come due (after a player's input, between timers), nothing is
/// dropped and every player gets the GOP whole and in order. (With `handle_timeout` running
/// every due timer regardless, 436 were dropped.)
#[test]
fn a_join_storm_of_four_hundred_udp_players_loses_nothing_of_the_gop() {
    let mut h = Harness::with_config(udp_server());
    let tcp = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera.send_frame(0, &[nal(5, 60_000)]);
    for n in 1..6 {
        h.camera.send_frame(n * 3600, &[nal(1, 1300)]);
    }
    let sent = camera_packets(&h.camera.to_gateway);
    h.run_for(Duration::from_millis(40));
    assert_eq!(h.players[tcp].media.len(), sent.len());
    let players: Vec<usize> = (0..400)
        .map(|_| h.add_udp_player("rtsp://box:8554/cam"))
        .collect();
    h.run_for(Duration::from_millis(300));
    let stats = h.gateway.stats();
    assert_eq!(stats.players_udp, 400);
    assert_eq!(stats.player_udp_packets_dropped, 0);
    let want: Vec<&[u8]> = sent.iter().map(|d| &d[12..]).collect();
    for p in players {
        let got: Vec<&[u8]> = h.players[p].media.iter().map(|(_, d)| &d[12..]).collect();
        assert!(
            got == want,
            "player {p}: {} of {} packets",
            got.len(),
            want.len()
        );
    }
}

/// A UDP player that joins late starts on the cached GOP (a 60 kB keyframe: 44 packets, and
/// two P-frames), paced: at most 16 datagrams a loop turn, every packet once and in order, and
/// the camera's packets that came meanwhile follow through the replay with continuous
/// numbering. A TCP player joining with it gets the GOP at once (TCP paces itself).
#[test]
fn a_late_udp_players_gop_is_paced_and_live_packets_follow_it_in_order() {
    let mut h = Harness::with_config(udp_server());
    let _first = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for frame in 0..3 {
        let nals = if frame == 0 {
            vec![nal(5, 60_000)]
        } else {
            vec![nal(1, 600)]
        };
        h.camera.send_frame(frame * 3600, &nals);
        sent.extend(camera_packets(&h.camera.to_gateway));
        h.run_for(Duration::from_millis(40));
    }
    assert!(sent.len() > 40, "{} packets in the GOP", sent.len());
    let late = h.add_udp_player("rtsp://box:8554/cam");
    let tcp = h.add_player("rtsp://box:8554/cam");
    // Two loop turns in: part of the GOP went, and the camera goes on meanwhile.
    h.step(Duration::from_millis(10));
    h.step(Duration::from_millis(10));
    let early = h.players[late].media.len();
    assert!(
        (1..sent.len()).contains(&early),
        "{early} of {} GOP packets after two turns",
        sent.len()
    );
    assert_eq!(
        h.players[tcp].media.len(),
        sent.len(),
        "TCP: the GOP at once"
    );
    for frame in 3..8 {
        h.camera.send_frame(frame * 3600, &[nal(1, 600)]);
        sent.extend(camera_packets(&h.camera.to_gateway));
        h.run_for(Duration::from_millis(40));
    }
    assert!(
        h.players[late].max_burst <= 16,
        "{} datagrams in one turn",
        h.players[late].max_burst
    );
    for p in [late, tcp] {
        let got = &h.players[p].media;
        assert_eq!(got.len(), sent.len(), "player {p}: GOP and live, each once");
        for (g, w) in got.iter().zip(&sent) {
            assert_eq!((&g.1[12..], &g.1[4..8]), (&w[12..], &w[4..8]));
        }
        let seqs: Vec<u16> = got
            .iter()
            .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }
    assert_eq!(h.gateway.stats().player_udp_packets_dropped, 0);
}

/// A new keyframe while a UDP player's replay is still walking the old GOP: the rest of the
/// old GOP goes first, then the keyframe live: every packet once, in order, numbered without a
/// gap.
#[test]
fn a_keyframe_during_a_udp_replay_sends_the_rest_of_the_gop_first() {
    let mut h = Harness::with_config(udp_server());
    let _first = h.add_player("rtsp://box:8554/cam");
    h.run_for(Duration::from_millis(300));
    h.camera.send_frame(0, &[nal(5, 60_000)]);
    let mut sent = camera_packets(&h.camera.to_gateway);
    h.run_for(Duration::from_millis(40));
    let late = h.add_udp_player("rtsp://box:8554/cam");
    h.step(Duration::from_millis(10));
    let before = h.players[late].media.len();
    assert!(before < sent.len(), "{before} of {}", sent.len());
    h.camera.send_frame(3600, &[nal(5, 4000)]);
    sent.extend(camera_packets(&h.camera.to_gateway));
    h.run_for(Duration::from_millis(100));
    let got = &h.players[late].media;
    assert_eq!(got.len(), sent.len());
    assert!(got.iter().zip(&sent).all(|(g, w)| g.1[12..] == w[12..]));
    assert!(got
        .windows(2)
        .all(|w| u16::from_be_bytes([w[1].1[2], w[1].1[3]])
            == u16::from_be_bytes([w[0].1[2], w[0].1[3]]).wrapping_add(1)));
}

/// The built-in demo camera: its URL plays the shipped clip with no camera connection, to a
/// browser and to an RTSP player of the named stream `demo`, in real time, and the stream goes
/// after its last watcher like a camera's.
#[test]
fn the_demo_plays_to_browsers_and_players_without_a_camera_connection() {
    const URL: &str = "rtsp://127.0.0.1:8554/demo";
    let clip = camgate_core::demo::DemoClip::parse(include_bytes!("../../server/assets/demo.h264"))
        .unwrap();
    let mut h = Harness::with_config(GatewayConfig {
        named_streams: vec![("demo".into(), URL.into())],
        demo: Some(camgate_core::gateway::DemoConfig {
            url: URL.into(),
            clip: std::sync::Arc::new(clip),
        }),
        ..GatewayConfig::default()
    });
    let b = h.play(URL);
    let p = h.add_player("rtsp://box:8554/demo");
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.connects, 0, "no camera connection");
    assert!(matches!(
        h.players[p].events.first(),
        Some(RtspEvent::Playing { tracks }) if tracks[0].encoding == "H264"
    ));
    // 30 fps: about 60 pictures in 2 s (the player joined a moment later).
    let frames = h.browsers[b].frames.len();
    assert!(
        (50..=62).contains(&frames),
        "{frames} frames to the browser"
    );
    let media = &h.players[p].media;
    let pictures = media.iter().filter(|(_, d)| d[1] & 0x80 != 0).count();
    assert!(
        (50..=62).contains(&pictures),
        "{pictures} pictures to the player"
    );
    assert_eq!(media[0].1[12] & 0x1f, 7, "the player starts on an SPS");
    let seqs: Vec<u16> = media
        .iter()
        .map(|(_, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));

    h.signal(b, "stopStream", serde_json::json!({"mediaSessionId": "m0"}));
    let (conn, now) = (h.players[p].conn, h.now);
    h.gateway.handle_player_closed(conn, now);
    h.run_for(Duration::from_secs(7));
    assert_eq!(h.gateway.resident().streams, 0, "gone after the linger");
}
