use super::*;
use crate::video_relay::VideoFacts;
use str0m::config::DtlsCert;

/// Settings of the gateway; the server fills them from its configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where browsers reach camgate's WebRTC UDP socket(s): the host candidates of every answer.
    pub candidates: Vec<SocketAddr>,
    /// Where browsers reach camgate's ICE-TCP listener(s): passive TCP candidates of every
    /// answer, below the UDP ones in priority. Empty: ICE-TCP is off.
    pub tcp_candidates: Vec<SocketAddr>,
    /// How camera connections behave (timeouts, transport, auth quirks); every RTSP client
    /// gets these, with its own seed.
    pub rtsp: RtspConfig,
    /// How long a camera connection stays open after its last viewer left.
    pub stream_linger: Duration,
    /// Largest RTP payload sent to browsers; bigger camera packets are re-fragmented.
    pub max_payload: usize,
    /// Interval of the server `ping` on signaling sessions.
    pub ping_interval: Duration,
    /// Cameras pulled at once. Past this (as past the two viewer limits) a play is refused
    /// with FAILED and a reason.
    pub max_streams: usize,
    /// Viewers in all, on every worker.
    pub max_viewers: usize,
    /// Viewers of one stream, on every worker.
    pub max_viewers_per_stream: usize,
    /// With several workers: this gateway's handle on the table of which worker pulls which
    /// camera. `None`: one worker, every camera is pulled here.
    pub placement: Option<Placement>,
    /// With several workers: how many more viewers a camera's worker may serve than the
    /// least-loaded worker before new viewers of that camera go to the least-loaded one (which
    /// serves them from a mirror of the camera's packets, see `mirror`).
    pub viewer_spread_margin: usize,
    /// Seeds everything random the gateway decides: each RTSP client's nonces and SSRCs,
    /// viewers' ICE credentials and SSRCs, hash map keys. The same inputs with the same seed
    /// give the same outputs; the server draws it from the OS at start.
    pub seed: u64,
    /// The DTLS certificate of every viewer (its fingerprint is in every answer). The server
    /// makes one at start: making one per viewer was 0.15 ms of the 0.8 ms a join costs, and
    /// core makes no keys. `None`: each viewer's WebRTC stack makes its own.
    pub dtls_cert: Option<DtlsCert>,
    /// STUN servers asked for the public (server-reflexive) address of each of `candidates`
    /// (from that very socket). Non-empty: answers carry those addresses as server-reflexive
    /// candidates, and viewers run full ICE (camgate sends its own connectivity checks, which
    /// open the NAT's mapping toward the browser) instead of ICE-lite.
    pub stun_servers: Vec<crate::stun::StunServer>,
    /// A viewer whose WebRTC connection (ICE and DTLS) is not up this long after its answer
    /// gets FAILED with what was tried (see `viewer::ICE_TIMEOUT`).
    pub ice_timeout: Duration,
    /// The named streams (`[streams.NAME]`): name → camera URL. RTSP players ask for
    /// `rtsp://box:8554/NAME`.
    pub named_streams: Vec<(String, String)>,
    /// Camera hosts clients' streams may connect to (`allowed_hosts`, `denied_hosts`):
    /// checked again on every redirect and on the address each connection goes to. A named
    /// stream's own host is the operator's and always allowed.
    pub host_rules: crate::host_rules::HostRules,
    /// Who may play each named stream over RTSP: (stream name, user). A stream without users
    /// is served to loopback players only (403 to others).
    pub rtsp_users: Vec<(String, crate::rtsp::auth::Credentials)>,
    /// Settings of every RTSP player's session.
    pub rtsp_server: crate::rtsp::server::ServerConfig,
    /// Each RTSP player's send queue.
    pub player_queue: crate::rtsp::server::MediaOutConfig,
    /// The built-in demo camera: playing its URL plays the clip (no connection is made).
    pub demo: Option<DemoConfig>,
}

/// The demo camera (see `crate::demo`): its URL, which browsers and the named stream `demo`
/// name, and the clip.
#[derive(Clone)]
pub struct DemoConfig {
    /// `rtsp://127.0.0.1:PORT/demo`: the RTSP server's stream `demo`.
    pub url: String,
    /// The parsed clip, shared by every worker.
    pub clip: std::sync::Arc<crate::demo::DemoClip>,
}

impl std::fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoConfig")
            .field("url", &self.url)
            .finish()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            candidates: Vec::new(),
            tcp_candidates: Vec::new(),
            rtsp: RtspConfig::default(),
            stream_linger: Duration::from_secs(5),
            max_payload: 1200,
            ping_interval: Duration::from_secs(15),
            max_streams: 256,
            max_viewers: 2000,
            max_viewers_per_stream: 500,
            placement: None,
            viewer_spread_margin: 4,
            seed: 0,
            dtls_cert: None,
            stun_servers: Vec::new(),
            ice_timeout: crate::viewer::ICE_TIMEOUT,
            named_streams: Vec::new(),
            host_rules: crate::host_rules::HostRules::default(),
            rtsp_users: Vec::new(),
            rtsp_server: crate::rtsp::server::ServerConfig::default(),
            player_queue: crate::rtsp::server::MediaOutConfig::default(),
            demo: None,
        }
    }
}

pub use crate::ids::{SessionId, StreamId};

/// What the gateway asks the event loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayOutput {
    /// RTSP player `conn` has bytes queued: write `Gateway::player_pending` and report
    /// `player_written`, until it is empty (the output comes again when it fills up anew).
    PlayerWrite {
        /// The player's connection.
        conn: crate::ids::ConnId,
    },
    /// Write what is pending to RTSP player `conn`, then close its connection (its session
    /// timed out, it broke RTSP, fell too far behind, or its camera failed).
    PlayerClose {
        /// The player's connection.
        conn: crate::ids::ConnId,
    },
    /// Send a signaling text message on a WebSocket.
    WsSend {
        /// The WebSocket (or WHEP) session.
        session: SessionId,
        /// The message, JSON in the Flashphoner protocol.
        text: String,
    },
    /// Close a WebSocket (its peer stopped answering pings).
    WsClose {
        /// The session to close.
        session: SessionId,
    },
    /// Open a TCP connection to a camera; answer with `handle_rtsp_connected` or `handle_rtsp_lost`.
    RtspConnect {
        /// The camera stream the connection is for.
        stream: StreamId,
        /// Host name or address, as in the camera URL (the loop resolves it).
        host: String,
        /// TCP port.
        port: u16,
        /// `rtsps://`: run TLS on the connection (server name `host`) and call
        /// `handle_rtsp_connected` once its handshake is done; a handshake or certificate
        /// failure is `handle_rtsp_tls_failed`. Bytes in and out of the gateway stay plaintext.
        tls: bool,
    },
    /// Write bytes to the camera connection.
    RtspSend {
        /// The camera stream.
        stream: StreamId,
        /// RTSP request (or interleaved RTCP) bytes.
        data: Vec<u8>,
    },
    /// Flush what was written, then close the camera connection (and its UDP sockets).
    RtspClose {
        /// The camera stream.
        stream: StreamId,
    },
    /// Bind a UDP port pair (even RTP, odd RTCP) for a camera track, from the configured range
    /// and on `rtsp_client_address` if set; answer with `handle_rtsp_udp_ports`.
    RtspUdpOpen {
        /// The camera stream.
        stream: StreamId,
        /// The track's index in the camera's SDP.
        track: usize,
    },
    /// Send a datagram from a camera track's RTP or RTCP socket to the camera.
    RtspUdpSend {
        /// The camera stream.
        stream: StreamId,
        /// The track's index in the camera's SDP.
        track: usize,
        /// From the RTCP socket (else the RTP one).
        rtcp: bool,
        /// `None`: the host the RTSP connection went to.
        host: Option<String>,
        /// The camera's port.
        port: u16,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Hand `forward` to worker `worker`'s gateway (`handle_forward`), with several workers.
    Forward {
        /// The receiving worker.
        worker: usize,
        /// The message.
        forward: Forward,
    },
    /// Items for worker `worker`'s mirrors wait in `mirror_outbox(worker)`: move them to that
    /// worker's `handle_mirrored`. Sent when the outbox stops being empty.
    Mirrored {
        /// The mirrors' worker.
        worker: usize,
    },
}

/// What one worker's gateway tells another's. A viewer is served by the worker that pulls
/// its camera; its signaling session stays on the worker that holds the WebSocket (the
/// origin), and is attached to the serving worker as a remote session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    /// To the serving worker: open the origin's (established) session here.
    Attach {
        /// The session's id on the origin worker.
        session: SessionId,
    },
    /// To the serving worker: a signaling message of that session (`playStream`, `stopStream`).
    Message {
        /// The session's id on the origin worker.
        session: SessionId,
        /// The message as the browser sent it.
        text: String,
    },
    /// To the serving worker: the session is gone; release its viewers silently.
    Closed {
        /// The session's id on the origin worker.
        session: SessionId,
    },
    /// To the origin: a signaling message for the browser.
    Send {
        /// The session's id on the origin worker.
        session: SessionId,
        /// The message to send on its WebSocket.
        text: String,
    },
    /// To the serving worker: REST `startup` of this exact URL.
    Startup {
        /// The camera URL, credentials included.
        url: String,
        /// The placement entry it was placed as (see `WorkerTable::claim`).
        ticket: u64,
    },
    /// To the serving worker: REST `terminate` of this exact URL.
    Terminate {
        /// The camera URL, credentials included.
        url: String,
    },
    /// To a camera's worker: mirror the camera to stream `mirror` of the sender (see
    /// `mirror`); pull the camera first if it isn't pulled.
    Subscribe {
        /// The camera URL, credentials included.
        url: String,
        /// The mirror stream's id on the sending worker.
        mirror: StreamId,
    },
    /// To a camera's worker: that mirror has no viewers left.
    Unsubscribe {
        /// The camera URL, credentials included.
        url: String,
        /// The mirror stream's id on the sending worker.
        mirror: StreamId,
    },
    /// To a camera's worker: a mirror's viewer needs the Opus fallback of G.711 audio.
    OpusFallback {
        /// The camera URL, credentials included.
        url: String,
    },
    /// To a camera's worker: send that mirror the camera's packets as they came too (its RTSP
    /// players'), or stop.
    CameraPackets {
        /// The camera URL, credentials included.
        url: String,
        /// The mirror stream's id on the sending worker.
        mirror: StreamId,
        /// Start (true) or stop.
        wanted: bool,
    },
}

/// A snapshot of one stream for logs and APIs; the URL has its password masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's id on the worker that pulls it (0: placed there, not yet published).
    pub id: StreamId,
    /// The camera URL with its password masked.
    pub url: String,
    /// The camera plays (its video track is up, or it plays for RTSP players only, and it is
    /// not reconnecting).
    pub playing: bool,
    /// Viewers watching or waiting, mirrors' viewers included.
    pub viewers: usize,
    /// Started by the REST API (kept without viewers).
    pub pinned: bool,
    /// The camera dropped; camgate is reconnecting while viewers stay connected.
    pub reconnecting: bool,
    /// Tracks left out, with the reason (e.g. "audio PCMU: SETUP answered 461 ...").
    pub dropped_tracks: Vec<String>,
    /// What plays: "video H264 42c01e; audio PCMU 8000 Hz (passed through)", plus warnings
    /// such as B-frames. Also the `info` of the PLAYING status sent to browsers.
    pub info: String,
    /// A mirror's share of the viewers of the camera stream with this `id` on another worker;
    /// `Gateway::streams` adds it to that entry and lists no mirror on its own.
    pub mirror: bool,
    /// Codec, profile, size and reordering of the camera's video, once it has a video track.
    pub video: Option<VideoFacts>,
}

impl StreamInfo {
    /// The status word the WCS REST API reports.
    pub fn status(&self) -> &'static str {
        if self.reconnecting {
            "RECONNECTING"
        } else if self.playing {
            "PLAYING"
        } else {
            "PENDING"
        }
    }
}

/// Why `startup` refused a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupError {
    /// The URL is malformed; the text says how.
    BadUri(String),
    /// That exact URL is already being pulled.
    AlreadyPulled,
    /// The server pulls its maximum number of cameras.
    TooManyStreams(usize),
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadUri(why) => f.write_str(why),
            Self::AlreadyPulled => f.write_str("this uri is already pulled"),
            Self::TooManyStreams(n) => {
                write!(f, "Too many streams: this server pulls at most {n} cameras")
            }
        }
    }
}

/// Running totals since start, for logs and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Bytes read from camera connections (RTSP and interleaved media).
    pub camera_bytes_in: u64,
    /// RTP packets received from cameras on the video track.
    pub camera_packets_in: u64,
    /// Source packets missing from the camera's sequence (seen as gaps by the relay).
    pub camera_packets_lost: u64,
    /// Packets handed to viewers' WebRTC stacks (one per viewer per packet).
    pub viewer_packets_out: u64,
    /// Datagrams queued for the shared UDP socket (media, RTCP, STUN, DTLS).
    pub datagrams_out: u64,
    /// Bytes of those datagrams.
    pub datagram_bytes_out: u64,
    /// Camera connections that ended in an error.
    pub rtsp_errors: u64,
    /// Camera connections opened.
    pub rtsp_connects: u64,
    /// Reconnects after a camera that had played dropped.
    pub rtsp_reconnects: u64,
    /// Viewers that joined.
    pub viewers_joined: u64,
    /// Viewers that left (or failed).
    pub viewers_left: u64,
    /// Camera audio packets that went through a transcoder.
    pub audio_packets_transcoded: u64,
    /// Time the event loop spent reading camera sockets and handing the input to the gateway
    /// (depacketizing, transcoding, writing to viewers), as it reported it
    /// (`Gateway::record_camera_input_time`).
    pub camera_input_nanos: u64,
    /// Browsers' keyframe requests (PLI/FIR) answered by sending the cached GOP again.
    pub keyframe_requests_answered: u64,
    /// `notEnoughBandwidth` stream events sent: a viewer's link carried less than its
    /// stream's bitrate for `bandwidth::EVENT_AFTER`.
    pub not_enough_bandwidth: u64,
    /// Times a congested viewer was made to skip to the next keyframe.
    pub congestion_skips: u64,
    /// Times the loop found a camera's input backlog over its bound (camgate fell behind,
    /// starved of CPU) and the stream's viewers skipped to the next keyframe; counted once
    /// per reading of the socket that found it.
    pub camera_backlog_skips: u64,
    /// Camera packets dropped because they arrived over 2 s late (camgate behind its input;
    /// see `camera_lag`), until it caught up.
    pub camera_late_packets: u64,
    /// Datagrams on the WebRTC socket from an address of no viewer that opened none (not a STUN
    /// message for a viewer): strays, late packets of viewers gone, scans.
    pub udp_unmatched: u64,
    /// Times a viewer's WebRTC stack was ticked (str0m's timers, statistics, ICE and DTLS
    /// polled): once per batch of camera packets written to it, and at its own deadlines.
    pub viewer_ticks: u64,
    /// Viewers failed because ICE and DTLS did not complete within `ice_timeout`.
    pub ice_timeouts: u64,
    /// Packets dropped because a viewer's ICE-TCP connection had its send queue full (the
    /// viewer then waits for the next keyframe).
    pub tcp_backlog_drops: u64,
    /// Viewers connected now over UDP (a gauge, not a total).
    pub viewers_udp: u64,
    /// Viewers connected now over ICE-TCP (a gauge, not a total).
    pub viewers_tcp: u64,
    /// Viewers connected now through their browser's TURN relay (a gauge; not in `viewers_udp`).
    pub viewers_relayed: u64,
    /// RTSP players that connected.
    pub players_joined: u64,
    /// Camera packets queued for TCP-interleaved RTSP players.
    pub player_packets_out: u64,
    /// Camera packets skipped for TCP-interleaved RTSP players that fell behind.
    pub player_packets_skipped: u64,
    /// Camera packets sent to UDP RTSP players.
    pub player_udp_packets_out: u64,
    /// Camera packets for UDP RTSP players that the socket did not take (dropped, never
    /// waited for).
    pub player_udp_packets_dropped: u64,
    /// RTSP players playing over TCP-interleaved now (a gauge).
    pub players_tcp: u64,
    /// RTSP players playing over UDP now (a gauge).
    pub players_udp: u64,
}

impl GatewayStats {
    /// Adds another worker's totals to these.
    pub fn add(&mut self, o: &GatewayStats) {
        self.camera_bytes_in += o.camera_bytes_in;
        self.camera_packets_in += o.camera_packets_in;
        self.camera_packets_lost += o.camera_packets_lost;
        self.viewer_packets_out += o.viewer_packets_out;
        self.datagrams_out += o.datagrams_out;
        self.datagram_bytes_out += o.datagram_bytes_out;
        self.rtsp_errors += o.rtsp_errors;
        self.rtsp_connects += o.rtsp_connects;
        self.rtsp_reconnects += o.rtsp_reconnects;
        self.viewers_joined += o.viewers_joined;
        self.viewers_left += o.viewers_left;
        self.audio_packets_transcoded += o.audio_packets_transcoded;
        self.camera_input_nanos += o.camera_input_nanos;
        self.keyframe_requests_answered += o.keyframe_requests_answered;
        self.not_enough_bandwidth += o.not_enough_bandwidth;
        self.congestion_skips += o.congestion_skips;
        self.camera_backlog_skips += o.camera_backlog_skips;
        self.camera_late_packets += o.camera_late_packets;
        self.udp_unmatched += o.udp_unmatched;
        self.ice_timeouts += o.ice_timeouts;
        self.viewer_ticks += o.viewer_ticks;
        self.tcp_backlog_drops += o.tcp_backlog_drops;
        self.viewers_udp += o.viewers_udp;
        self.viewers_tcp += o.viewers_tcp;
        self.viewers_relayed += o.viewers_relayed;
        self.players_joined += o.players_joined;
        self.player_packets_out += o.player_packets_out;
        self.player_packets_skipped += o.player_packets_skipped;
        self.player_udp_packets_out += o.player_udp_packets_out;
        self.player_udp_packets_dropped += o.player_udp_packets_dropped;
        self.players_tcp += o.players_tcp;
        self.players_udp += o.players_udp;
    }
}

/// Entry counts of the gateway's tables, see [`Gateway::resident`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    /// Streams, and their entries in the URL index.
    pub streams: usize,
    /// Viewers, answered or waiting.
    pub viewers: usize,
    /// RTSP players.
    pub players: usize,
    /// Signaling sessions (WebSocket, WHEP, remote).
    pub sessions: usize,
    /// Viewers' learned addresses and ICE ufrags.
    pub learned_addresses: usize,
    /// Pending timer entries (stale ones are dropped as they come due).
    pub timers: usize,
    /// Outputs, datagrams and mirror items not yet taken by the loop.
    pub queued: usize,
}
