//! The stream hub: every camera URL being played, every viewer, every signaling session.
//!
//! `Gateway` is the sans-IO heart of camgate. The event loop feeds it bytes and time
//! (`handle_*`), and takes out what to do (`poll_output`, `poll_transmit`, `poll_timeout`):
//!
//! - one RTSP connection per camera URL, shared by every viewer of exactly that URL;
//! - the connection is torn down `stream_linger` after its last viewer left;
//! - each camera RTP packet is parsed and relayed once, then written to each viewer's `Rtc`
//!   with its payload shared (`Arc<[u8]>`);
//! - signaling follows the Flashphoner Web SDK protocol (see `signaling`).
//!
//! Timers are kept in a min-heap with lazy invalidation: an entity is scheduled again only
//! when its deadline moves earlier, and a popped entry whose deadline no longer matches is
//! dropped. Waking an entity early is harmless (all state machines accept any `now`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;
use str0m::config::DtlsCert;
use str0m::net::Transmit;

use crate::audio_relay::{AudioOut, AudioPacket, AudioRelay};
use crate::bandwidth::{BitrateMeter, LinkMonitor};
use crate::gop::GopCache;
use crate::h264::RelayPacket;
use crate::ids::StreamIds;
use crate::media::MediaKind;
use crate::mirror::{Described, MirrorClock, MirrorItem};
use crate::placement::{Placement, ViewerLimits, ViewerRefused, PUBLISH_INTERVAL};
use crate::rtp::{parse_sender_report, RtpPacket, SeqStep, SeqTracker};
use crate::rtsp::{MediaPacket, RtspClient, RtspConfig, RtspError, RtspEvent, RtspOutput, RtspUrl};
use crate::signaling::{self, ClientMessage, StreamStatus};
use crate::stun;
use crate::sync::{StreamClock, TrackClock};
use crate::video_relay::{VideoCodec, VideoRelay};
use crate::viewer::Viewer;

/// Longest a timer entry sleeps. Entries of removed viewers and streams can't be taken out of
/// the heap; capping every deadline (waking early is harmless) makes them fall due and go
/// within a second instead of piling up with far-future deadlines.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How long a viewer whose connection died may still say `stopStream` before it gets FAILED.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Largest cached GOP sent again to answer a browser's keyframe request (a burst to one viewer).
const MAX_REPLAY_BYTES: usize = 1 << 20;

/// Bound of a stream's GOP cache; a camera with a longer GOP (in bytes) gets no instant start.
const MAX_GOP_BYTES: usize = 4 << 20;

/// Settings of the hub; the server fills them from its configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where browsers reach camgate's WebRTC UDP socket(s): the host candidates of every answer.
    pub candidates: Vec<SocketAddr>,
    pub rtsp: RtspConfig,
    /// How long a camera connection stays open after its last viewer left.
    pub stream_linger: Duration,
    /// Largest RTP payload sent to browsers; bigger camera packets are re-fragmented.
    pub max_payload: usize,
    /// Interval of the server `ping` on signaling sessions.
    pub ping_interval: Duration,
    /// Limits: cameras pulled at once, viewers in all, viewers of one stream. Past them a
    /// play is refused with FAILED and a reason.
    pub max_streams: usize,
    pub max_viewers: usize,
    pub max_viewers_per_stream: usize,
    /// A clock for measuring how long transcoding takes (for metrics). The core never reads
    /// the time itself; the server passes `Instant::now`, tests pass nothing or a fake.
    pub stopwatch: Option<fn() -> Instant>,
    /// With several workers: this gateway's handle on the table of which worker pulls which
    /// camera. `None`: one worker, every camera is pulled here.
    pub placement: Option<Placement>,
    /// With several workers: how many more viewers a camera's worker may serve than the
    /// least-loaded worker before new viewers of that camera go to the least-loaded one (which
    /// serves them from a mirror of the camera's packets, see `mirror`).
    pub viewer_spread_margin: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            candidates: Vec::new(),
            rtsp: RtspConfig::default(),
            stream_linger: Duration::from_secs(5),
            max_payload: 1200,
            ping_interval: Duration::from_secs(15),
            max_streams: 256,
            max_viewers: 2000,
            max_viewers_per_stream: 500,
            stopwatch: None,
            placement: None,
            viewer_spread_margin: 4,
        }
    }
}

pub use crate::ids::{SessionId, StreamId};

/// What the hub asks the event loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayOutput {
    /// Send a signaling text message on a WebSocket.
    WsSend { session: SessionId, text: String },
    /// Close a WebSocket (its peer stopped answering pings).
    WsClose { session: SessionId },
    /// Open a TCP connection to a camera; answer with `handle_rtsp_connected` or `handle_rtsp_lost`.
    RtspConnect {
        stream: StreamId,
        host: String,
        port: u16,
    },
    /// Write bytes to the camera connection.
    RtspSend { stream: StreamId, data: Vec<u8> },
    /// Flush what was written, then close the camera connection (and its UDP sockets).
    RtspClose { stream: StreamId },
    /// Bind a UDP port pair (even RTP, odd RTCP) for a camera track, from the configured range
    /// and on `rtsp_client_address` if set; answer with `handle_rtsp_udp_ports`.
    RtspUdpOpen { stream: StreamId, track: usize },
    /// Send a datagram from a camera track's RTP or RTCP socket to the camera (`host`: None
    /// means the host the RTSP connection went to).
    RtspUdpSend {
        stream: StreamId,
        track: usize,
        rtcp: bool,
        host: Option<String>,
        port: u16,
        data: Vec<u8>,
    },
    /// Hand `forward` to worker `worker`'s gateway (`handle_forward`), with several workers.
    Forward { worker: usize, forward: Forward },
    /// Wake worker `worker`'s loop: its media lane from here has packets (`handle_mirrored`).
    WakeWorker { worker: usize },
}

/// What one worker's gateway tells another's. A viewer is served by the worker that pulls
/// its camera; its signaling session stays on the worker that holds the WebSocket (the
/// origin), and is attached to the serving worker as a remote session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    /// To the serving worker: open the origin's (established) session here.
    Attach {
        session: SessionId,
    },
    /// To the serving worker: a signaling message of that session (`playStream`, `stopStream`).
    Message {
        session: SessionId,
        text: String,
    },
    /// To the serving worker: the session is gone; release its viewers silently.
    Closed {
        session: SessionId,
    },
    /// To the origin: a signaling message for the browser.
    Send {
        session: SessionId,
        text: String,
    },
    /// To the serving worker: REST `startup` / `terminate` of this exact URL.
    Startup {
        url: String,
        /// The placement entry it was placed as (see `Placement::claim`).
        ticket: u64,
    },
    Terminate {
        url: String,
    },
    /// To a camera's worker: mirror the camera to stream `mirror` of the sender (see
    /// `mirror`); pull the camera first if it isn't pulled.
    Subscribe {
        url: String,
        mirror: StreamId,
    },
    /// To a camera's worker: that mirror has no viewers left.
    Unsubscribe {
        url: String,
        mirror: StreamId,
    },
    /// To a camera's worker: a mirror's viewer needs the Opus fallback of G.711 audio.
    OpusFallback {
        url: String,
    },
}

/// Where a signaling message is handled.
enum Routed {
    /// Sent to another worker, or answered already.
    Done,
    /// Here; `counted`: a `playStream` already counts as a viewer of this worker.
    Here { counted: bool },
}

/// Bytes from a camera, on its RTSP connection or one of its UDP sockets.
#[derive(Clone, Copy)]
enum CameraInput<'a> {
    Tcp(&'a [u8]),
    Udp {
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &'a [u8],
    },
}

/// A snapshot of one stream for logs and APIs; the URL has its password masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub id: StreamId,
    pub url: String,
    pub playing: bool,
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
    /// Viewers that joined, and that left (or failed).
    pub viewers_joined: u64,
    pub viewers_left: u64,
    /// Camera audio packets that went through a transcoder, and the time spent there
    /// (measured only with `GatewayConfig::stopwatch`).
    pub audio_packets_transcoded: u64,
    pub transcode_nanos: u64,
    /// Browsers' keyframe requests (PLI/FIR) answered by sending the cached GOP again.
    pub keyframe_requests_answered: u64,
    /// `notEnoughBandwidth` stream events sent: a viewer's link carried less than its
    /// stream's bitrate for `bandwidth::EVENT_AFTER`.
    pub not_enough_bandwidth: u64,
    /// Times a congested viewer was made to skip to the next keyframe.
    pub congestion_skips: u64,
    /// Times a viewer's WebRTC stack was ticked (str0m's timers, statistics, ICE and DTLS
    /// polled): once per batch of camera packets written to it, and at its own deadlines.
    pub viewer_ticks: u64,
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
        self.transcode_nanos += o.transcode_nanos;
        self.keyframe_requests_answered += o.keyframe_requests_answered;
        self.not_enough_bandwidth += o.not_enough_bandwidth;
        self.congestion_skips += o.congestion_skips;
        self.viewer_ticks += o.viewer_ticks;
    }
}

/// Entry counts of the hub's tables, see [`Gateway::resident`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    pub streams: usize,
    pub viewers: usize,
    pub sessions: usize,
    pub learned_addresses: usize,
    /// Pending timer entries (stale ones are dropped as they come due).
    pub timers: usize,
    pub queued: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Stream(StreamId),
    Viewer(usize),
    Ping,
}

/// Where a stream's media comes from.
enum Source {
    /// This worker pulls the camera (boxed: a mirror needs none of its state).
    Camera(Box<RtspClient>),
    /// Worker `origin` pulls it and hands this worker its relayed packets (see `mirror`).
    Mirror(MirrorSource),
}

struct MirrorSource {
    origin: usize,
    /// What plays, from the origin's `Ready`; viewers wait for it.
    described: Option<Described>,
    /// The camera stream's id on the origin (for the APIs).
    origin_stream: Option<StreamId>,
    /// Dates packets of a GOP replay.
    clock: Option<MirrorClock>,
    /// The Opus fallback of G.711 was asked for.
    fallback_asked: bool,
}

struct Stream {
    /// The URL exactly as viewers asked for it: the sharing key (credentials included).
    url: String,
    /// The URL with its password masked, for logs and status messages.
    redacted: String,
    source: Source,
    /// Mirrors of this camera on other workers: (worker, mirror stream there).
    mirrors: Vec<(usize, StreamId)>,
    /// Index of the H.264 track among the client's tracks, once playing.
    video_track: Option<usize>,
    relay: Option<VideoRelay>,
    /// Index of the audio track among the client's tracks, and its relay, when it plays.
    audio_track: Option<usize>,
    audio: Option<AudioRelay>,
    /// The current GOP, replayed to viewers who join mid-GOP.
    gop: GopCache,
    /// Video payload bitrate, measured once for all viewers (see `bandwidth`).
    bitrate: BitrateMeter,
    /// The camera's video sequence numbers, for loss accounting.
    seq: SeqTracker,
    /// Viewers that have an answer and receive media.
    viewers: Vec<usize>,
    /// Viewers waiting for the camera's description before they can be answered.
    pending: Vec<usize>,
    /// When the last viewer left: the connection closes at this instant.
    linger_until: Option<Instant>,
    /// Started by the REST API: stays connected without viewers until terminated.
    pinned: bool,
    /// The camera has played at least once: later failures reconnect instead of failing viewers.
    played: bool,
    /// Failed attempts since the camera last played; sets the reconnect backoff.
    reconnect_attempts: u32,
    /// When the next reconnect attempt starts (the camera is down until then).
    reconnect_at: Option<Instant>,
    /// Why tracks of the camera were left out (e.g. audio SETUP refused), for stream info.
    dropped_tracks: Vec<String>,
    /// The camera's H.264 has B-frames (reported once).
    b_frames: bool,
    /// Lip sync: the camera's NTP clock, and each track's RTP-to-NTP mapping.
    clock: StreamClock,
    video_clock: TrackClock,
    audio_clock: TrackClock,
    scheduled: Option<Instant>,
}

struct ViewerEntry {
    session: SessionId,
    media_session_id: String,
    stream: StreamId,
    offer: Option<String>,
    viewer: Option<Viewer>,
    playing_sent: bool,
    /// The cached GOP was offered once the connection came up.
    primed: bool,
    /// When the browser's WebRTC connection died; FAILED follows unless a `stopStream` does.
    lost_at: Option<Instant>,
    /// Source addresses learned for this viewer on the shared UDP socket.
    addrs: Vec<SocketAddr>,
    scheduled: Option<Instant>,
    /// Whether the browser's link carries the stream, from its receiver reports.
    link: LinkMonitor,
}

#[derive(Default)]
struct Session {
    established: bool,
    viewers: Vec<usize>,
    last_heard: Option<Instant>,
    /// A session of another worker attached here: (that worker, its id there). Its messages
    /// go back there; it is not pinged (the origin does that).
    origin: Option<(usize, SessionId)>,
    /// Viewers of this session served by other workers: (mediaSessionId, worker).
    remote_viewers: Vec<(String, usize)>,
    /// Workers this session is attached to.
    attached: Vec<usize>,
}

pub struct Gateway {
    config: GatewayConfig,
    stream_ids: StreamIds,
    streams: HashMap<StreamId, Stream>,
    by_url: HashMap<String, StreamId>,
    viewers: Slab<ViewerEntry>,
    sessions: HashMap<SessionId, Session>,
    /// Learned source address → viewer: the fast path of the shared UDP socket.
    by_addr: HashMap<SocketAddr, usize>,
    /// camgate's ICE ufrag of each viewer → viewer: how a browser's first datagram from a new
    /// address (always a STUN check naming it) finds its viewer in one lookup.
    by_ufrag: HashMap<String, usize>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    next_ping: Option<Instant>,
    outputs: VecDeque<GatewayOutput>,
    transmits: VecDeque<Transmit>,
    /// Viewers written to since their last flush; flushed when datagrams are taken, so a
    /// batch of camera packets costs each viewer one str0m tick (see `Viewer::flush`).
    unflushed: Vec<usize>,
    /// How far `flush_next_viewers` got through `unflushed`.
    unflushed_next: usize,
    /// One DTLS certificate for every viewer of this worker, made at the first (as Janus does):
    /// making one per viewer was 0.15 ms of the 0.8 ms a join costs. `Some(None)`: the crypto
    /// provider made none, so each viewer's `Rtc` makes its own.
    dtls_cert: Option<Option<DtlsCert>>,
    /// When the gateway was last given time: the instant of the deferred flushes.
    last_now: Option<Instant>,
    /// Reused between camera packets so relaying allocates nothing but each packet's `Arc`.
    relay_out: Vec<RelayPacket>,
    audio_out: Vec<AudioPacket>,
    /// The Opus fallback of passed-through G.711, for browsers without that law.
    audio_fallback: Vec<AudioPacket>,
    /// The capture instant of each packet in `relay_out`, `audio_out` and `audio_fallback`
    /// (computed once, used per viewer and mirror).
    relay_walls: Vec<Instant>,
    audio_walls: Vec<Instant>,
    fallback_walls: Vec<Instant>,
    /// Reused buffer of what came in on the media lanes (see `handle_mirrored`).
    mirror_in: Vec<MirrorItem>,
    stats: GatewayStats,
    /// Remote sessions: (origin worker, id there) → local id.
    remote_ids: HashMap<(usize, SessionId), SessionId>,
    next_remote_id: u64,
    /// When the stream list is next published for the other workers.
    next_publish: Option<Instant>,
    /// RTSP clients made so far: each gets `config.rtsp.seed` plus this as its seed.
    rtsp_clients: u64,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Self {
        let here = config.placement.as_ref().map_or(0, |p| p.here());
        Self {
            config,
            stream_ids: StreamIds::for_worker(here),
            streams: HashMap::new(),
            by_url: HashMap::new(),
            viewers: Slab::new(),
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            timers: BinaryHeap::new(),
            next_ping: None,
            outputs: VecDeque::new(),
            transmits: VecDeque::with_capacity(1024),
            unflushed: Vec::with_capacity(1024),
            unflushed_next: 0,
            dtls_cert: None,
            last_now: None,
            relay_out: Vec::with_capacity(64),
            audio_out: Vec::with_capacity(8),
            audio_fallback: Vec::with_capacity(8),
            relay_walls: Vec::with_capacity(64),
            audio_walls: Vec::with_capacity(8),
            fallback_walls: Vec::with_capacity(8),
            mirror_in: Vec::new(),
            stats: GatewayStats::default(),
            remote_ids: HashMap::new(),
            next_remote_id: 0,
            next_publish: None,
            rtsp_clients: 0,
        }
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Streams being pulled (by every worker), with masked URLs.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut list = self.local_streams();
        if let Some(p) = &self.config.placement {
            list.extend(p.others().0);
        }
        // Mirrors' viewers count for their camera's entry.
        let (mirrors, mut list): (Vec<_>, Vec<_>) = list.into_iter().partition(|s| s.mirror);
        for m in mirrors {
            if let Some(s) = list.iter_mut().find(|s| s.id == m.id) {
                s.viewers += m.viewers;
            }
        }
        list.sort_by_key(|s| s.id);
        list
    }

    /// Streams pulled by this worker, and its mirrors' viewer counts.
    fn local_streams(&self) -> Vec<StreamInfo> {
        let mut list: Vec<_> = self
            .streams
            .iter()
            .filter_map(|(id, s)| {
                let (id, mirror) = match &s.source {
                    Source::Camera(_) => (*id, false),
                    Source::Mirror(m) => (m.origin_stream?, true),
                };
                Some(StreamInfo {
                    id,
                    url: s.redacted.clone(),
                    playing: s.video_track.is_some() && s.reconnect_at.is_none(),
                    viewers: s.viewers.len() + s.pending.len(),
                    pinned: s.pinned,
                    reconnecting: s.reconnect_at.is_some(),
                    dropped_tracks: s.dropped_tracks.clone(),
                    info: s.info(),
                    mirror,
                })
            })
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    /// Totals of every worker.
    pub fn stats(&self) -> GatewayStats {
        let mut stats = self.stats;
        if let Some(p) = &self.config.placement {
            stats.add(&p.others().1);
        }
        stats
    }

    /// Totals of this worker alone.
    pub fn local_stats(&self) -> GatewayStats {
        self.stats
    }

    /// How many entries each of the hub's tables holds: after every viewer and camera is gone
    /// they must all be back to zero (the leak check of the tests and the soak script).
    pub fn resident(&self) -> Resident {
        Resident {
            streams: self.streams.len() + self.by_url.len(),
            viewers: self.viewers.len(),
            sessions: self.sessions.len(),
            learned_addresses: self.by_addr.len() + self.by_ufrag.len(),
            timers: self.timers.len(),
            queued: self.outputs.len() + self.transmits.len(),
        }
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    // ---- signaling -------------------------------------------------------------------------

    pub fn handle_session_opened(&mut self, session: SessionId, now: Instant) {
        self.sessions.insert(
            session,
            Session {
                last_heard: Some(now),
                ..Default::default()
            },
        );
        if self.next_ping.is_none() {
            let at = now + self.config.ping_interval;
            self.next_ping = Some(at);
            self.timers.push(Reverse((at, TimerKey::Ping)));
        }
    }

    pub fn handle_session_message(&mut self, session: SessionId, now: Instant, text: &str) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.last_heard = Some(now);
        let message = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(session = %session, "bad signaling message: {e}");
                return;
            }
        };
        let counted = match self.route_elsewhere(session, &message, text) {
            Routed::Done => return,
            Routed::Here { counted } => counted,
        };
        match message {
            ClientMessage::Connection { .. } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.established = true;
                }
                tracing::info!(session = %session, "signaling session established");
                self.send(session, signaling::get_user_data(&session.to_string()));
            }
            ClientMessage::PlayStream {
                media_session_id,
                name,
                sdp,
            } => self.play(session, now, media_session_id, name, sdp, counted),
            ClientMessage::StopStream { media_session_id } => {
                self.stop(session, now, &media_session_id)
            }
            ClientMessage::Pong => {}
            ClientMessage::Other(name) => {
                tracing::debug!(session = %session, "ignored message {name}")
            }
        }
    }

    /// With several workers: decides which worker serves a `playStream` (see
    /// `Placement::place_viewer`) and sends it there, or refuses it at once; sends a
    /// `stopStream` to where its viewer is.
    fn route_elsewhere(
        &mut self,
        session: SessionId,
        message: &ClientMessage,
        text: &str,
    ) -> Routed {
        let Some(placement) = &self.config.placement else {
            return Routed::Here { counted: false };
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return Routed::Done;
        };
        if s.origin.is_some() {
            // Forwarded here to be served here, and counted for this worker when routed.
            return Routed::Here { counted: true };
        }
        let worker = match message {
            ClientMessage::PlayStream {
                media_session_id,
                name,
                ..
            } => {
                // A bad URL is answered by `play`.
                let Ok(url) = RtspUrl::parse(name) else {
                    return Routed::Here { counted: false };
                };
                let limits = ViewerLimits {
                    max_streams: self.config.max_streams,
                    max_viewers: self.config.max_viewers,
                    max_viewers_per_stream: self.config.max_viewers_per_stream,
                };
                let margin = self.config.viewer_spread_margin;
                let worker = match placement.place_viewer(name, &url.redacted(), &limits, margin) {
                    Ok(worker) => worker,
                    Err(refused) => {
                        let info = match refused {
                            ViewerRefused::TooManyViewers => self.too_many_viewers(),
                            ViewerRefused::TooManyStreams => self.too_many_streams(),
                            ViewerRefused::TooManyViewersOfStream => self.too_many_of_stream(),
                        };
                        self.refuse_play(session, media_session_id, &info);
                        return Routed::Done;
                    }
                };
                if worker == placement.here() {
                    return Routed::Here { counted: true };
                }
                s.remote_viewers.push((media_session_id.clone(), worker));
                worker
            }
            ClientMessage::StopStream { media_session_id } => {
                let Some(i) = s
                    .remote_viewers
                    .iter()
                    .position(|(m, _)| m == media_session_id)
                else {
                    return Routed::Here { counted: false };
                };
                s.remote_viewers.swap_remove(i).1
            }
            _ => return Routed::Here { counted: false },
        };
        if !s.attached.contains(&worker) {
            s.attached.push(worker);
            self.outputs.push_back(GatewayOutput::Forward {
                worker,
                forward: Forward::Attach { session },
            });
        }
        self.outputs.push_back(GatewayOutput::Forward {
            worker,
            forward: Forward::Message {
                session,
                text: text.to_owned(),
            },
        });
        Routed::Done
    }

    fn too_many_viewers(&self) -> String {
        format!(
            "Too many viewers: this server serves at most {}",
            self.config.max_viewers
        )
    }

    fn too_many_of_stream(&self) -> String {
        format!(
            "Too many viewers of this stream: at most {} per stream",
            self.config.max_viewers_per_stream
        )
    }

    fn too_many_streams(&self) -> String {
        format!(
            "Too many streams: this server pulls at most {} cameras",
            self.config.max_streams
        )
    }

    /// FAILED for a `playStream` that gets no viewer.
    fn refuse_play(&mut self, session: SessionId, media_session_id: &str, info: &str) {
        tracing::info!(session = %session, "play refused: {info}");
        let text = signaling::stream_status(media_session_id, "", StreamStatus::Failed, Some(info));
        self.send(session, text);
    }

    /// What another worker's gateway sent this one (see `Forward`).
    pub fn handle_forward(&mut self, from: usize, forward: Forward, now: Instant) {
        match forward {
            Forward::Attach { session } => {
                let id = SessionId::Remote(self.next_remote_id);
                self.next_remote_id += 1;
                self.remote_ids.insert((from, session), id);
                self.sessions.insert(
                    id,
                    Session {
                        established: true,
                        origin: Some((from, session)),
                        ..Default::default()
                    },
                );
            }
            Forward::Message { session, text } => {
                if let Some(id) = self.remote_ids.get(&(from, session)).copied() {
                    self.handle_session_message(id, now, &text);
                }
            }
            Forward::Closed { session } => {
                if let Some(id) = self.remote_ids.get(&(from, session)).copied() {
                    self.handle_session_closed(id, now);
                }
            }
            Forward::Send { session, text } => self.send(session, text),
            Forward::Startup { url, ticket } => {
                if let Err(e) = self.startup_here(&url, Some(ticket), now) {
                    tracing::info!("forwarded startup failed: {e}");
                }
            }
            Forward::Terminate { url } => {
                self.terminate_here(&url, now);
            }
            Forward::Subscribe { url, mirror } => self.subscribe(from, url, mirror, now),
            Forward::Unsubscribe { url, mirror } => {
                let Some(id) = self.by_url.get(&url).copied() else {
                    return;
                };
                let s = self
                    .streams
                    .get_mut(&id)
                    .expect("by_url points at live streams");
                s.mirrors.retain(|m| *m != (from, mirror));
                tracing::debug!(stream = id.0, worker = from, "mirror gone");
                self.linger_if_unwatched(id, now);
            }
            Forward::OpusFallback { url } => {
                if let Some(id) = self.by_url.get(&url).copied() {
                    self.enable_opus_fallback(id);
                }
            }
        }
    }

    /// The WebSocket is gone: release everything it held, silently.
    pub fn handle_session_closed(&mut self, session: SessionId, now: Instant) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        if let Some(origin) = s.origin {
            self.remote_ids.remove(&origin);
        }
        for worker in &s.attached {
            self.outputs.push_back(GatewayOutput::Forward {
                worker: *worker,
                forward: Forward::Closed { session },
            });
        }
        tracing::info!(
            session = %session,
            viewers = s.viewers.len(),
            "signaling session closed"
        );
        for viewer in s.viewers {
            self.remove_viewer(viewer, now);
        }
    }

    fn send(&mut self, session: SessionId, text: String) {
        self.outputs
            .push_back(GatewayOutput::WsSend { session, text });
    }

    fn send_status(&mut self, viewer: usize, status: StreamStatus, info: Option<&str>) {
        let Some(entry) = self.viewers.get(viewer) else {
            return;
        };
        let name = self
            .streams
            .get(&entry.stream)
            .map(|s| s.redacted.as_str())
            .unwrap_or("");
        let text = signaling::stream_status(&entry.media_session_id, name, status, info);
        self.send(entry.session, text);
    }

    fn play(
        &mut self,
        session: SessionId,
        now: Instant,
        media_session_id: String,
        name: String,
        sdp: String,
        counted: bool,
    ) {
        let admitted = counted
            || match &self.config.placement {
                Some(p) => p.add_viewer(&name, self.config.max_viewers),
                None => self.viewers.len() < self.config.max_viewers,
            };
        if !admitted {
            let info = self.too_many_viewers();
            return self.refuse_play(session, &media_session_id, &info);
        }
        // Counted as a viewer of this worker by now: refusals from here on give the slot back.
        let refuse = |this: &mut Self, info: &str| {
            if let Some(p) = &this.config.placement {
                p.remove_viewer(&name);
            }
            this.refuse_play(session, &media_session_id, info)
        };
        let stream_id = match self.by_url.get(&name) {
            Some(id) => *id,
            None => match self.mirror_origin(&name) {
                // Another worker pulls it: serve this viewer from a mirror of it.
                Some(origin) => match RtspUrl::parse(&name) {
                    Ok(url) => self.add_mirror(name.clone(), url.redacted(), origin),
                    Err(e) => return refuse(self, &e.to_string()),
                },
                None => match self.pull(&name, now) {
                    Ok(id) => id,
                    Err(info) => return refuse(self, &info),
                },
            },
        };
        let s = &self.streams[&stream_id];
        if s.viewers.len() + s.pending.len() >= self.config.max_viewers_per_stream {
            let info = self.too_many_of_stream();
            return refuse(self, &info);
        }
        let entry = ViewerEntry {
            session,
            media_session_id,
            stream: stream_id,
            offer: Some(sdp),
            viewer: None,
            playing_sent: false,
            primed: false,
            lost_at: None,
            addrs: Vec::new(),
            scheduled: None,
            link: LinkMonitor::new(),
        };
        let viewer = self.viewers.insert(entry);
        self.stats.viewers_joined += 1;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.viewers.push(viewer);
        }
        let stream = self
            .streams
            .get_mut(&stream_id)
            .expect("stream was just found or added");
        stream.linger_until = None;
        stream.pending.push(viewer);
        tracing::info!(session = %session, stream = stream_id.0, url = %stream.redacted, "viewer joined");
        self.send_status(viewer, StreamStatus::Pending, None);
        if self.streams[&stream_id].video_codec().is_some() {
            self.answer_pending(stream_id, now);
        }
    }

    /// The other worker that pulls `url`, if one does (exact URL: a masked password must not
    /// reach a stream pulled with the real one).
    fn mirror_origin(&self, url: &str) -> Option<usize> {
        let p = self.config.placement.as_ref()?;
        p.worker_of(url).filter(|w| *w != p.here())
    }

    /// Starts pulling the camera `url` here, within `max_streams`; the refusal's text if not.
    fn pull(&mut self, url: &str, now: Instant) -> Result<StreamId, String> {
        if self.camera_count() >= self.config.max_streams {
            return Err(self.too_many_streams());
        }
        let client = RtspClient::new(
            url,
            client_config(&self.config.rtsp, &mut self.rtsp_clients),
            now,
        )
        .map_err(|e| e.to_string())?;
        let id = self.add_stream(url.to_owned(), client, now);
        if let Some(p) = &self.config.placement {
            p.opened(url, &self.streams[&id].redacted, id);
        }
        Ok(id)
    }

    /// Cameras pulled by this worker (mirrors don't count).
    fn camera_count(&self) -> usize {
        self.streams
            .values()
            .filter(|s| matches!(s.source, Source::Camera(_)))
            .count()
    }

    fn stop(&mut self, session: SessionId, now: Instant, media_session_id: &str) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        let found = s
            .viewers
            .iter()
            .copied()
            .find(|v| self.viewers[*v].media_session_id == media_session_id);
        if let Some(viewer) = found {
            self.send_status(viewer, StreamStatus::Stopped, Some("Stopped by user"));
            self.remove_viewer(viewer, now);
        }
    }

    // ---- REST control --------------------------------------------------------------------

    /// Starts pulling `url` with no viewer (REST `/rtsp/startup`); the connection stays up
    /// until `terminate`, and viewers who join find it running.
    pub fn startup(&mut self, url: &str, now: Instant) -> Result<StreamId, StartupError> {
        let Some(placement) = self.config.placement.clone() else {
            return self.startup_here(url, None, now);
        };
        let parsed = RtspUrl::parse(url).map_err(|e| StartupError::BadUri(e.to_string()))?;
        match placement.place_pinned(url, &parsed.redacted(), self.config.max_streams) {
            Err(_) => Err(StartupError::TooManyStreams(self.config.max_streams)),
            Ok(None) => Err(StartupError::AlreadyPulled),
            Ok(Some((w, ticket))) if w == placement.here() => {
                self.startup_here(url, Some(ticket), now)
            }
            Ok(Some((worker, ticket))) => {
                self.outputs.push_back(GatewayOutput::Forward {
                    worker,
                    forward: Forward::Startup {
                        url: url.to_owned(),
                        ticket,
                    },
                });
                Ok(StreamId(0))
            }
        }
    }

    /// `startup` on the worker it was placed on; `ticket` is its placement entry's.
    fn startup_here(
        &mut self,
        url: &str,
        ticket: Option<u64>,
        now: Instant,
    ) -> Result<StreamId, StartupError> {
        // A `terminate` that overtook a forwarded startup took its entry out of the table:
        // then the stream must not come back, not even for a moment.
        let claim = |this: &Self, id: StreamId| match (&this.config.placement, ticket) {
            (Some(p), Some(ticket)) => p.claim(url, ticket, id),
            _ => true,
        };
        if let Some(id) = self.by_url.get(url).copied() {
            if !claim(self, id) {
                tracing::info!(stream = id.0, "startup overtaken by terminate");
                return Ok(id);
            }
            let s = self
                .streams
                .get_mut(&id)
                .expect("by_url points at live streams");
            if s.pinned {
                return Err(StartupError::AlreadyPulled);
            }
            // Pulled for viewers only so far: now it stays.
            s.pinned = true;
            s.linger_until = None;
            return Ok(id);
        }
        if self.camera_count() >= self.config.max_streams {
            return Err(StartupError::TooManyStreams(self.config.max_streams));
        }
        let config = client_config(&self.config.rtsp, &mut self.rtsp_clients);
        let client =
            RtspClient::new(url, config, now).map_err(|e| StartupError::BadUri(e.to_string()))?;
        let id = self.add_stream(url.to_owned(), client, now);
        self.streams.get_mut(&id).expect("just added").pinned = true;
        if !claim(self, id) {
            tracing::info!(stream = id.0, "startup overtaken by terminate");
            self.terminate_here(url, now);
        }
        Ok(id)
    }

    /// Stops pulling the stream with this URL (exact, or as masked in `streams()`); its
    /// viewers get FAILED "Stopped by rest /terminate". False when there is no such stream.
    pub fn terminate(&mut self, url: &str, now: Instant) -> bool {
        let Some(placement) = self.config.placement.clone() else {
            return self.terminate_here(url, now);
        };
        // Out of the shared table before answering, so the next REST call (on any worker)
        // no longer lists it, even while its worker is still closing it.
        let Some((worker, exact)) = placement.terminate(url) else {
            return false;
        };
        if worker == placement.here() {
            return self.terminate_here(&exact, now);
        }
        self.outputs.push_back(GatewayOutput::Forward {
            worker,
            forward: Forward::Terminate { url: exact },
        });
        true
    }

    fn terminate_here(&mut self, url: &str, now: Instant) -> bool {
        let found = self.by_url.get(url).copied().or_else(|| {
            self.streams
                .iter()
                .find(|(_, s)| s.redacted == url)
                .map(|(id, _)| *id)
        });
        let Some(id) = found else { return false };
        let s = &self.streams[&id];
        if !matches!(s.source, Source::Camera(_)) {
            return false; // a mirror: its camera's worker terminates it
        }
        tracing::info!(stream = id.0, url = %s.redacted, "terminated by REST");
        let info = "Stopped by rest /terminate";
        self.fail_mirrors(id, info);
        let s = &self.streams[&id];
        let all: Vec<usize> = s.viewers.iter().chain(s.pending.iter()).copied().collect();
        for v in all {
            self.send_status(v, StreamStatus::Failed, Some(info));
            self.remove_viewer(v, now);
        }
        let s = self.streams.get_mut(&id).expect("still there");
        if let Source::Camera(client) = &mut s.source {
            client.teardown(now);
        }
        self.after_stream_input(id, now);
        // A client with no session to tear down closes at once; otherwise `Closed` follows.
        if let Some(s) = self.streams.get_mut(&id) {
            s.pinned = false;
            s.linger_until = None;
        }
        true
    }

    // ---- streams ---------------------------------------------------------------------------

    fn add_stream(&mut self, url: String, client: RtspClient, now: Instant) -> StreamId {
        let id = self.stream_ids.next_id();
        let redacted = client.url().redacted();
        let (host, port) = (client.url().host().to_owned(), client.url().port());
        tracing::info!(stream = id.0, url = %redacted, "connecting to camera");
        self.by_url.insert(url.clone(), id);
        self.streams.insert(
            id,
            Stream::new(url, redacted, Source::Camera(Box::new(client))),
        );
        self.stats.rtsp_connects += 1;
        self.outputs.push_back(GatewayOutput::RtspConnect {
            stream: id,
            host,
            port,
        });
        self.schedule_stream(id, now);
        id
    }

    /// A mirror of the camera `url` pulled by worker `origin`, which is asked to feed it.
    fn add_mirror(&mut self, url: String, redacted: String, origin: usize) -> StreamId {
        let id = self.stream_ids.next_id();
        tracing::info!(stream = id.0, url = %redacted, origin, "mirroring the camera of worker {origin}");
        self.outputs.push_back(GatewayOutput::Forward {
            worker: origin,
            forward: Forward::Subscribe {
                url: url.clone(),
                mirror: id,
            },
        });
        self.by_url.insert(url.clone(), id);
        let source = Source::Mirror(MirrorSource {
            origin,
            described: None,
            origin_stream: None,
            clock: None,
            fallback_asked: false,
        });
        self.streams.insert(id, Stream::new(url, redacted, source));
        id
    }

    pub fn handle_rtsp_connected(&mut self, stream: StreamId, now: Instant) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        client.handle_connected(now);
        self.after_stream_input(stream, now);
    }

    pub fn handle_rtsp_lost(&mut self, stream: StreamId, now: Instant) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        client.handle_connection_lost(now);
        self.after_stream_input(stream, now);
    }

    /// Bytes from a camera connection: RTSP responses and interleaved RTP, split anywhere.
    pub fn handle_rtsp_data(&mut self, stream: StreamId, now: Instant, data: &[u8]) {
        self.feed_camera(stream, now, CameraInput::Tcp(data));
    }

    /// A datagram on one of a camera's UDP sockets (RTP or RTCP of `track`).
    pub fn handle_rtsp_udp(
        &mut self,
        stream: StreamId,
        now: Instant,
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &[u8],
    ) {
        self.feed_camera(
            stream,
            now,
            CameraInput::Udp {
                track,
                rtcp,
                source,
                data,
            },
        );
    }

    /// The loop bound a UDP port pair (`rtp_port`, `rtp_port + 1`) for a camera track, or
    /// could not (`None`): the client sets the track up over UDP or falls back to TCP.
    pub fn handle_rtsp_udp_ports(
        &mut self,
        stream: StreamId,
        now: Instant,
        track: usize,
        rtp_port: Option<u16>,
    ) {
        let Some(client) = self.streams.get_mut(&stream).and_then(Stream::client) else {
            return;
        };
        match rtp_port {
            Some(port) => client.handle_udp_ports(now, track, port),
            None => client.handle_udp_ports_failed(now, track),
        }
        self.after_stream_input(stream, now);
    }

    fn feed_camera(&mut self, stream: StreamId, now: Instant, input: CameraInput<'_>) {
        self.advance(now);
        let Gateway {
            config,
            streams,
            viewers,
            unflushed,
            transmits,
            relay_out,
            audio_out,
            audio_fallback,
            relay_walls,
            audio_walls,
            fallback_walls,
            outputs,
            stats,
            ..
        } = self;
        let stopwatch = config.stopwatch;
        let placement = config.placement.as_ref();
        stats.camera_bytes_in += match input {
            CameraInput::Tcp(data) | CameraInput::Udp { data, .. } => data.len() as u64,
        };
        let Some(s) = streams.get_mut(&stream) else {
            return;
        };
        let Stream {
            source,
            relay,
            video_track,
            viewers: watching,
            mirrors,
            redacted,
            gop,
            bitrate,
            seq,
            audio_track,
            audio,
            b_frames,
            dropped_tracks,
            clock,
            video_clock,
            audio_clock,
            ..
        } = s;
        let Source::Camera(client) = source else {
            return;
        };
        let mut fan_out = FanOut {
            viewers,
            unflushed,
            transmits,
            outputs,
            stats,
            now,
        };
        let mut described_changed = false;
        let mut on_media = |m: MediaPacket<'_>| {
            if m.rtcp {
                // The camera's sender reports tie each track's RTP clock to its NTP clock.
                if let Some(sr) = parse_sender_report(m.data) {
                    if Some(m.track) == *video_track {
                        video_clock.sender_report(clock, now, sr.ntp_time, sr.rtp_time);
                    } else if Some(m.track) == *audio_track {
                        audio_clock.sender_report(clock, now, sr.ntp_time, sr.rtp_time);
                    }
                }
                return;
            }
            if Some(m.track) == *audio_track {
                let (Some(audio), Ok(packet)) = (audio.as_mut(), RtpPacket::parse(m.data)) else {
                    return;
                };
                audio_out.clear();
                audio_fallback.clear();
                if audio.is_transcoding() || audio.has_opus_fallback() {
                    let started = stopwatch.map(|clock| clock());
                    audio.push(&packet, audio_out);
                    fan_out.stats.audio_packets_transcoded += 1;
                    if let (Some(clock), Some(started)) = (stopwatch, started) {
                        fan_out.stats.transcode_nanos +=
                            clock().saturating_duration_since(started).as_nanos() as u64;
                    }
                } else {
                    audio.push(&packet, audio_out);
                }
                audio.take_fallback(audio_fallback);
                audio_walls.clear();
                for p in audio_out.iter() {
                    let input = audio.input_time(p.rtp_time).unwrap_or(packet.timestamp);
                    audio_walls.push(audio_clock.wallclock(clock, input, now));
                }
                fallback_walls.clear();
                for p in audio_fallback.iter() {
                    let input = audio
                        .fallback_input_time(p.rtp_time)
                        .unwrap_or(packet.timestamp);
                    fallback_walls.push(audio_clock.wallclock(clock, input, now));
                }
                fan_out.audio(
                    watching,
                    audio.output(),
                    (audio_out, audio_walls),
                    (audio_fallback, fallback_walls),
                );
                for &(worker, mirror) in mirrors.iter() {
                    let item = |fallback| {
                        move |(p, wall): (&AudioPacket, &Instant)| MirrorItem::Audio {
                            mirror,
                            packet: p.clone(),
                            wall: *wall,
                            fallback,
                        }
                    };
                    let main = audio_out.iter().zip(audio_walls.iter()).map(item(false));
                    let fallback = audio_fallback.iter().zip(fallback_walls.iter());
                    let items = main.chain(fallback.map(item(true)));
                    push_lane(placement, fan_out.outputs, worker, items);
                }
                return;
            }
            if Some(m.track) != *video_track {
                return;
            }
            let (Some(relay), Ok(packet)) = (relay.as_mut(), RtpPacket::parse(m.data)) else {
                return;
            };
            fan_out.stats.camera_packets_in += 1;
            if let SeqStep::Gap(missing) = seq.step(packet.sequence) {
                fan_out.stats.camera_packets_lost += u64::from(missing);
            }
            relay_out.clear();
            relay.push(&packet, relay_out);
            if !*b_frames && relay.has_b_frames() {
                // B-slices show up only after the keyframe, so viewers already got PLAYING:
                // tell them again, with the warning in the info.
                *b_frames = true;
                described_changed = true;
                tracing::warn!(url = %redacted, "{B_FRAMES_WARNING}");
                let info = stream_info(Some(&*relay), audio.as_ref(), true, dropped_tracks);
                fan_out.playing_again(watching, redacted, &info);
            }
            relay_walls.clear();
            for p in relay_out.iter() {
                bitrate.add(now, p.payload.len());
                gop.push(p);
                relay_walls.push(video_clock.wallclock(clock, p.rtp_time, now));
            }
            let relay = &*relay;
            fan_out.video(
                watching,
                gop,
                (relay_out, relay_walls),
                |ts| video_clock.wallclock(clock, ts, now),
                PlayingInfo {
                    redacted,
                    codec: relay.codec(),
                    info: || stream_info(Some(relay), audio.as_ref(), *b_frames, dropped_tracks),
                },
            );
            for &(worker, mirror) in mirrors.iter() {
                let items =
                    relay_out
                        .iter()
                        .zip(relay_walls.iter())
                        .map(|(p, wall)| MirrorItem::Video {
                            mirror,
                            packet: p.clone(),
                            wall: *wall,
                        });
                push_lane(placement, fan_out.outputs, worker, items);
            }
        };
        // Last line of defence: a bug reached by one camera's bytes (in parsing, relaying or
        // transcoding) fails that stream, not the server.
        let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let media = match input {
                CameraInput::Tcp(data) => client.handle_input(now, data),
                CameraInput::Udp {
                    track,
                    rtcp,
                    source,
                    data,
                } => client.handle_udp_input(now, track, rtcp, source, data),
            };
            media.for_each(&mut on_media);
        }));
        if fed.is_err() {
            tracing::error!(
                stream = stream.0,
                "internal error while handling the camera's data; stream closed"
            );
            self.fail_stream(
                stream,
                now,
                "Failed by error: internal error while handling the camera's data",
            );
            return;
        }
        if described_changed {
            self.describe_to_mirrors(stream);
        }
        self.schedule_watchers(stream, now);
        self.after_stream_input(stream, now);
    }

    /// Writing media moved every watching viewer's str0m timers (indexing, not cloning the
    /// list: this runs for every camera read).
    fn schedule_watchers(&mut self, stream: StreamId, now: Instant) {
        let count = self.streams.get(&stream).map_or(0, |s| s.viewers.len());
        for i in 0..count {
            let v = self.streams[&stream].viewers[i];
            let flushing = self.viewers.get(v).and_then(|e| e.viewer.as_ref());
            if flushing.is_some_and(|viewer| viewer.awaiting_flush()) {
                continue; // `flush_viewers` sets its timer after the tick it is due anyway
            }
            self.schedule_viewer(v, now);
        }
    }

    // ---- mirrors (see `mirror`) --------------------------------------------------------------

    /// Hands `items` to worker `worker`'s mirrors, waking its loop if its lane was empty.
    fn push_mirror(&mut self, worker: usize, items: impl IntoIterator<Item = MirrorItem>) {
        push_lane(
            self.config.placement.as_ref(),
            &mut self.outputs,
            worker,
            items,
        );
    }

    /// A mirror on worker `from` wants this camera's media; the camera is pulled if it isn't.
    fn subscribe(&mut self, from: usize, url: String, mirror: StreamId, now: Instant) {
        let id = match self.by_url.get(&url).copied() {
            Some(id) => id,
            None => match self.pull(&url, now) {
                Ok(id) => id,
                Err(info) => return self.push_mirror(from, [MirrorItem::Failed { mirror, info }]),
            },
        };
        let s = self
            .streams
            .get_mut(&id)
            .expect("by_url points at live streams");
        if !matches!(s.source, Source::Camera(_)) {
            // This worker itself mirrors that URL: the camera moved between workers just now.
            let info = "Failed by error: the stream moved between workers; play again".to_owned();
            return self.push_mirror(from, [MirrorItem::Failed { mirror, info }]);
        }
        s.mirrors.push((from, mirror));
        s.linger_until = None;
        tracing::info!(stream = id.0, url = %s.redacted, worker = from, "viewers on worker {from} mirror this camera");
        let Some(described) = s.described() else {
            return; // `Ready` follows when the camera plays
        };
        // What plays, then the current GOP so the mirror's first viewers start at once.
        let ready = MirrorItem::Ready {
            mirror,
            origin: id,
            described: Box::new(described),
        };
        let s = &*s;
        let gop = s.gop.packets().iter().map(|p| MirrorItem::Video {
            mirror,
            packet: p.clone(),
            wall: s.video_wallclock(p.rtp_time, now),
        });
        push_lane(
            self.config.placement.as_ref(),
            &mut self.outputs,
            from,
            std::iter::once(ready).chain(gop),
        );
    }

    /// Tells every mirror of a camera what plays (once it plays, and when that changes).
    fn describe_to_mirrors(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        let Some(described) = s.described() else {
            return;
        };
        for (worker, mirror) in s.mirrors.clone() {
            let described = Box::new(described.clone());
            self.push_mirror(
                worker,
                [MirrorItem::Ready {
                    mirror,
                    origin: id,
                    described,
                }],
            );
        }
    }

    /// The camera failed or was terminated: its mirrors fail their viewers with `info`.
    fn fail_mirrors(&mut self, id: StreamId, info: &str) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        for (worker, mirror) in std::mem::take(&mut s.mirrors) {
            let info = info.to_owned();
            self.push_mirror(worker, [MirrorItem::Failed { mirror, info }]);
        }
    }

    /// Media and news from the cameras other workers pull, for this worker's mirrors. The
    /// event loop calls this when woken.
    pub fn handle_mirrored(&mut self, now: Instant) {
        let Some(placement) = self.config.placement.clone() else {
            return;
        };
        self.advance(now);
        let mut items = std::mem::take(&mut self.mirror_in);
        let mut touched = None;
        for lane in placement.lanes_in() {
            lane.take(&mut items);
            for item in items.drain(..) {
                if let Some(mirror) = self.handle_mirror_item(item, now) {
                    // Items come in runs per stream: schedule each run's viewers once.
                    if touched.is_some_and(|t| t != mirror) {
                        self.schedule_watchers(touched.take().expect("checked"), now);
                    }
                    touched = Some(mirror);
                }
            }
        }
        if let Some(mirror) = touched {
            self.schedule_watchers(mirror, now);
        }
        self.mirror_in = items;
    }

    /// One item from a camera's worker; the mirror stream if media was written to viewers.
    fn handle_mirror_item(&mut self, item: MirrorItem, now: Instant) -> Option<StreamId> {
        let Gateway {
            streams,
            viewers,
            unflushed,
            transmits,
            outputs,
            stats,
            ..
        } = self;
        let mut fan_out = FanOut {
            viewers,
            unflushed,
            transmits,
            outputs,
            stats,
            now,
        };
        match item {
            MirrorItem::Video {
                mirror,
                packet,
                wall,
            } => {
                let s = streams.get_mut(&mirror)?;
                let Source::Mirror(m) = &mut s.source else {
                    return None;
                };
                let clock = MirrorClock::new(packet.rtp_time, wall);
                m.clock = Some(clock);
                let described = m.described.as_ref()?;
                s.bitrate.add(now, packet.payload.len());
                s.gop.push(&packet);
                fan_out.video(
                    &s.viewers,
                    &s.gop,
                    (std::slice::from_ref(&packet), std::slice::from_ref(&wall)),
                    |ts| clock.wallclock(ts),
                    PlayingInfo {
                        redacted: &s.redacted,
                        codec: described.video,
                        info: || described.info.clone(),
                    },
                );
                Some(mirror)
            }
            MirrorItem::Audio {
                mirror,
                packet,
                wall,
                fallback,
            } => {
                let s = streams.get_mut(&mirror)?;
                let Source::Mirror(m) = &s.source else {
                    return None;
                };
                let output = m.described.as_ref()?.audio?;
                let one = (std::slice::from_ref(&packet), std::slice::from_ref(&wall));
                let none: (&[AudioPacket], &[Instant]) = (&[], &[]);
                let (main, fallback) = if fallback { (none, one) } else { (one, none) };
                fan_out.audio(&s.viewers, output, main, fallback);
                Some(mirror)
            }
            MirrorItem::Ready {
                mirror,
                origin,
                described,
            } => {
                let s = streams.get_mut(&mirror)?;
                let Source::Mirror(m) = &mut s.source else {
                    return None;
                };
                m.origin_stream = Some(origin);
                match m.described.replace(*described) {
                    None => self.answer_pending(mirror, now),
                    Some(before) if before.info != s.info() => {
                        fan_out.playing_again(&s.viewers, &s.redacted, &s.info())
                    }
                    Some(_) => {}
                }
                None
            }
            MirrorItem::Resync { mirror } => {
                if let Some(s) = streams.get_mut(&mirror) {
                    s.gop.clear();
                    self.resync_viewers(mirror);
                }
                None
            }
            MirrorItem::Failed { mirror, info } => {
                self.fail_stream(mirror, now, &info);
                None
            }
        }
    }

    /// A viewer needs the Opus fallback of the camera's G.711 (see `AudioRelay`).
    fn enable_opus_fallback(&mut self, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match &mut s.source {
            Source::Camera(_) => {
                let Some(audio) = s.audio.as_mut() else {
                    return;
                };
                if audio.has_opus_fallback() {
                    return;
                }
                match audio.enable_opus_fallback() {
                    Ok(()) => tracing::info!(stream = id.0, "audio: {}", audio.description()),
                    Err(e) => tracing::warn!(stream = id.0, "no Opus fallback: {e}"),
                }
                self.describe_to_mirrors(id);
            }
            Source::Mirror(m) => {
                // The camera's worker transcodes, once for all workers.
                if !m.fallback_asked {
                    m.fallback_asked = true;
                    let forward = Forward::OpusFallback { url: s.url.clone() };
                    self.outputs.push_back(GatewayOutput::Forward {
                        worker: m.origin,
                        forward,
                    });
                }
            }
        }
    }

    /// Drains a camera client after any input: its bytes to send and its events.
    fn after_stream_input(&mut self, id: StreamId, now: Instant) {
        loop {
            let Some(s) = self.streams.get_mut(&id) else {
                return;
            };
            let Source::Camera(client) = &mut s.source else {
                return;
            };
            let event = match client.poll_output() {
                None => break,
                Some(RtspOutput::Transmit(data)) => {
                    self.outputs
                        .push_back(GatewayOutput::RtspSend { stream: id, data });
                    continue;
                }
                Some(RtspOutput::OpenUdp(request)) => {
                    self.outputs.push_back(GatewayOutput::RtspUdpOpen {
                        stream: id,
                        track: request.track,
                    });
                    continue;
                }
                Some(RtspOutput::UdpTransmit(t)) => {
                    self.outputs.push_back(GatewayOutput::RtspUdpSend {
                        stream: id,
                        track: t.track,
                        rtcp: t.rtcp,
                        host: t.host,
                        port: t.port,
                        data: t.data,
                    });
                    continue;
                }
                Some(RtspOutput::Redirect(redirect)) => {
                    // The client wants another server: a new TCP connection, same stream.
                    tracing::info!(stream = id.0, host = %redirect.host, port = redirect.port, "camera redirects");
                    self.outputs
                        .push_back(GatewayOutput::RtspClose { stream: id });
                    self.outputs.push_back(GatewayOutput::RtspConnect {
                        stream: id,
                        host: redirect.host,
                        port: redirect.port,
                    });
                    continue;
                }
                Some(RtspOutput::Event(event)) => event,
            };
            match event {
                RtspEvent::Playing { tracks } => {
                    let video = tracks.iter().position(|t| {
                        t.kind == MediaKind::Video
                            && VideoRelay::for_track(t, self.config.max_payload).is_some()
                    });
                    s.dropped_tracks = client
                        .dropped_tracks()
                        .iter()
                        .map(|(t, why)| {
                            format!("{:?} {}: {why}", t.kind, t.encoding).to_lowercase()
                        })
                        .collect();
                    for why in &s.dropped_tracks {
                        tracing::warn!(stream = id.0, url = %s.redacted, "track left out: {why}");
                    }
                    let resumed = s.played;
                    tracing::info!(stream = id.0, url = %s.redacted, tracks = tracks.len(), resumed, "camera playing");
                    let Some(index) = video else {
                        let info = "No common codecs: the camera sends neither H.264 nor VP8 video";
                        self.fail_stream(id, now, info);
                        return;
                    };
                    s.played = true;
                    s.reconnect_attempts = 0;
                    s.video_track = Some(index);
                    // A (re)started camera session brings its own clock mapping.
                    s.clock = StreamClock::default();
                    s.video_clock = TrackClock::new(tracks[index].clock_rate);
                    if !resumed {
                        s.relay = VideoRelay::for_track(&tracks[index], self.config.max_payload);
                    }
                    // Audio: the first audio track the camera set up, passed through or
                    // transcoded; one that can't be played is reported, the video plays on.
                    // After a reconnect the relay is kept so its output sequence continues.
                    let first_audio = tracks
                        .iter()
                        .enumerate()
                        .find(|(_, t)| t.kind == MediaKind::Audio);
                    s.audio_track = first_audio.map(|(a, _)| a);
                    if let Some((_, track)) = first_audio {
                        s.audio_clock = TrackClock::new(track.clock_rate);
                    }
                    if let Some((_, track)) = first_audio.filter(|_| s.audio.is_none()) {
                        match AudioRelay::new(track) {
                            Ok(relay) => {
                                tracing::info!(stream = id.0, url = %s.redacted, "audio: {}", relay.description());
                                s.audio = Some(relay);
                            }
                            Err(e) if self.config.rtsp.fail_on_track_error => {
                                let info = format!("Audio track can't be played: {e}");
                                self.fail_stream(id, now, &info);
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(stream = id.0, url = %s.redacted, "audio left out: {e}");
                                s.audio_track = None;
                                s.dropped_tracks
                                    .push(format!("audio {}: {e}", track.encoding.to_lowercase()));
                            }
                        }
                    }
                    if resumed {
                        // Same relays: their output sequences continue, so viewers keep their
                        // WebRTC sessions and resume on the camera's next keyframe.
                        self.resync_viewers(id);
                        for (worker, mirror) in self.streams[&id].mirrors.clone() {
                            self.push_mirror(worker, [MirrorItem::Resync { mirror }]);
                        }
                    } else {
                        self.answer_pending(id, now);
                        self.describe_to_mirrors(id);
                    }
                }
                RtspEvent::Failed(e) => {
                    let info = failure_info(&e);
                    if s.played && (s.pinned || !s.unwatched()) {
                        self.schedule_reconnect(id, now, &info);
                    } else {
                        self.fail_stream(id, now, &info);
                    }
                    return;
                }
                RtspEvent::Closed => {
                    self.close_stream(id);
                    return;
                }
            }
        }
        self.schedule_stream(id, now);
    }

    /// The camera dropped after playing: close its connection and try again later, with
    /// backoff (1, 2, 4, ... 30 s), while the viewers stay connected.
    fn schedule_reconnect(&mut self, id: StreamId, now: Instant, info: &str) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let delay =
            Duration::from_secs(1u64 << s.reconnect_attempts.min(5)).min(Duration::from_secs(30));
        s.reconnect_attempts += 1;
        s.reconnect_at = Some(now + delay);
        s.gop.clear();
        tracing::warn!(stream = id.0, url = %s.redacted, attempt = s.reconnect_attempts,
            "camera lost: {info}; reconnecting in {delay:?}");
        self.stats.rtsp_errors += 1;
        self.outputs
            .push_back(GatewayOutput::RtspClose { stream: id });
        self.schedule_stream(id, now);
    }

    fn reconnect(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.reconnect_at = None;
        if !s.pinned && s.unwatched() {
            self.close_stream(id); // everyone left while the camera was down
            return;
        }
        let config = client_config(&self.config.rtsp, &mut self.rtsp_clients);
        match RtspClient::new(&s.url, config, now) {
            Ok(client) => {
                let (host, port) = (client.url().host().to_owned(), client.url().port());
                s.source = Source::Camera(Box::new(client));
                tracing::info!(stream = id.0, url = %s.redacted, "reconnecting to camera");
                self.stats.rtsp_reconnects += 1;
                self.stats.rtsp_connects += 1;
                self.outputs.push_back(GatewayOutput::RtspConnect {
                    stream: id,
                    host,
                    port,
                });
            }
            // The URL parsed before, so this can't happen; fail cleanly if it does.
            Err(e) => self.fail_stream(id, now, &e.to_string()),
        }
        self.schedule_stream(id, now);
    }

    /// After a reconnect the camera's stream starts over: every viewer waits for its next
    /// keyframe rather than decode P-frames that reference pictures it never got.
    fn resync_viewers(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        for &v in &s.viewers {
            if let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) {
                viewer.wait_for_keyframe();
            }
        }
    }

    fn answer_pending(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let (audio_out, Some(video)) = (s.audio_output(), s.video_codec()) else {
            return;
        };
        let pending = std::mem::take(&mut s.pending);
        for v in pending {
            let Some(entry) = self.viewers.get_mut(v) else {
                continue;
            };
            let offer = entry.offer.take().unwrap_or_default();
            let dtls_cert = self.dtls_cert.get_or_insert_with(|| {
                str0m::crypto::from_feature_flags()
                    .dtls_provider
                    .generate_certificate()
            });
            let candidates = &self.config.candidates;
            match Viewer::accept_offer(
                now,
                &offer,
                video,
                audio_out,
                candidates,
                dtls_cert.as_ref(),
            ) {
                Ok((viewer, answer)) => {
                    let needs_opus = viewer.audio_codec() == Some(AudioOut::Opus)
                        && audio_out.is_some_and(|out| out != AudioOut::Opus);
                    self.by_ufrag.insert(viewer.ice_ufrag().to_owned(), v);
                    entry.viewer = Some(viewer);
                    let text = signaling::set_remote_sdp(&entry.media_session_id, &answer);
                    let session = entry.session;
                    self.send(session, text);
                    let stream = self.streams.get_mut(&id).expect("stream exists");
                    stream.viewers.push(v);
                    if needs_opus {
                        self.enable_opus_fallback(id);
                    }
                    self.schedule_viewer(v, now);
                }
                Err(e) => {
                    tracing::info!(stream = id.0, "offer refused: {e}");
                    self.send_status(v, StreamStatus::Failed, Some(&e.to_string()));
                    self.remove_viewer(v, now);
                }
            }
        }
    }

    /// The camera failed: every viewer of it gets FAILED with the reason, and the stream goes.
    fn fail_stream(&mut self, id: StreamId, now: Instant, info: &str) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        tracing::warn!(stream = id.0, url = %s.redacted, "camera failed: {info}");
        if matches!(s.source, Source::Camera(_)) {
            self.stats.rtsp_errors += 1;
        }
        self.fail_mirrors(id, info);
        let s = &self.streams[&id];
        let all: Vec<usize> = s.viewers.iter().chain(s.pending.iter()).copied().collect();
        for v in all {
            self.send_status(v, StreamStatus::Failed, Some(info));
            self.remove_viewer(v, now);
        }
        self.close_stream(id);
    }

    fn close_stream(&mut self, id: StreamId) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        if self.by_url.get(&s.url) == Some(&id) {
            self.by_url.remove(&s.url);
        }
        match s.source {
            Source::Camera(_) => {
                tracing::info!(stream = id.0, url = %s.redacted, "camera connection closed");
                if let Some(p) = &self.config.placement {
                    p.closed(&s.url, id);
                }
                for (worker, mirror) in s.mirrors {
                    let info = "Failed by error: the camera connection closed".to_owned();
                    self.push_mirror(worker, [MirrorItem::Failed { mirror, info }]);
                }
                self.outputs
                    .push_back(GatewayOutput::RtspClose { stream: id });
            }
            Source::Mirror(m) => {
                tracing::info!(stream = id.0, url = %s.redacted, "mirror closed");
                let forward = Forward::Unsubscribe {
                    url: s.url,
                    mirror: id,
                };
                self.outputs.push_back(GatewayOutput::Forward {
                    worker: m.origin,
                    forward,
                });
            }
        }
    }

    /// A camera nobody watches (no viewers, no mirrors) and nobody pinned closes after
    /// `stream_linger`; a mirror without viewers closes at once.
    fn linger_if_unwatched(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if !s.unwatched() || s.pinned {
            return;
        }
        if matches!(s.source, Source::Mirror(_)) {
            return self.close_stream(id);
        }
        s.linger_until = Some(now + self.config.stream_linger);
        tracing::info!(
            stream = id.0,
            "last viewer left; closing in {:?}",
            self.config.stream_linger
        );
        self.schedule_stream(id, now);
    }

    // ---- viewers ---------------------------------------------------------------------------

    fn remove_viewer(&mut self, v: usize, now: Instant) {
        if !self.viewers.contains(v) {
            return;
        }
        let mut entry = self.viewers.remove(v);
        self.stats.viewers_left += 1;
        if let Some(p) = &self.config.placement {
            // Always counted out of its worker; out of its camera too while that is placed.
            let url = self
                .streams
                .get(&entry.stream)
                .map_or("", |s| s.url.as_str());
            p.remove_viewer(url);
        }
        if let Some(viewer) = entry.viewer.as_mut() {
            viewer.close();
        }
        // By value: the `Viewer` (and its ufrag) may be gone already (connection lost).
        self.by_ufrag.retain(|_, x| *x != v);
        for addr in &entry.addrs {
            self.by_addr.remove(addr);
        }
        if let Some(s) = self.sessions.get_mut(&entry.session) {
            s.viewers.retain(|x| *x != v);
        }
        if let Some(s) = self.streams.get_mut(&entry.stream) {
            s.viewers.retain(|x| *x != v);
            s.pending.retain(|x| *x != v);
            self.linger_if_unwatched(entry.stream, now);
        }
    }

    /// A datagram on the shared WebRTC socket.
    pub fn handle_udp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.advance(now);
        let known = self
            .by_addr
            .get(&source)
            .copied()
            .filter(|v| self.viewers.contains(*v));
        let v = match known {
            Some(v) => v,
            // Unknown source: only a STUN check naming one of our viewers opens an address
            // (ICE always starts that way); anything else is dropped without a scan.
            None => {
                let Some(&v) = stun::local_ufrag(data).and_then(|u| self.by_ufrag.get(u)) else {
                    return;
                };
                let accepted = self
                    .viewers
                    .get(v)
                    .and_then(|e| e.viewer.as_ref())
                    .is_some_and(|x| x.accepts(now, source, destination, data));
                if !accepted {
                    return;
                }
                self.by_addr.insert(source, v);
                self.viewers[v].addrs.push(source);
                v
            }
        };
        if let Some(viewer) = self.viewers[v].viewer.as_mut() {
            viewer.handle_receive(now, source, destination, data, &mut self.transmits);
        }
        self.after_viewer_input(v, now);
    }

    fn after_viewer_input(&mut self, v: usize, now: Instant) {
        let Some(entry) = self.viewers.get_mut(v) else {
            return;
        };
        if let Some(lost) = entry.lost_at {
            if now >= lost + STOP_GRACE {
                tracing::info!(
                    session = %entry.session,
                    "viewer connection lost (ICE/DTLS)"
                );
                self.send_status(v, StreamStatus::Failed, Some("Failed by ICE timeout"));
                self.remove_viewer(v, now);
            }
            return;
        }
        let Some(viewer) = entry.viewer.as_mut() else {
            return;
        };
        if !viewer.is_alive() {
            // The Flashphoner SDK closes its peer connection the moment the user presses Stop,
            // and the DTLS close can beat the `stopStream` message: stop sending at once, but
            // report FAILED only if no `stopStream` follows shortly.
            entry.viewer = None;
            entry.lost_at = Some(now);
            for addr in entry.addrs.drain(..) {
                self.by_addr.remove(&addr);
            }
            let at = now + STOP_GRACE;
            entry.scheduled = Some(at);
            self.timers.push(Reverse((at, TimerKey::Viewer(v))));
            return;
        }
        // The browser's receiver reports: does its link carry the stream? A congested viewer
        // skips to the next keyframe rather than queue what its link can't carry.
        let mut event = None;
        if let Some(report) = viewer.take_link_report() {
            let stream_bps = self
                .streams
                .get_mut(&entry.stream)
                .and_then(|s| s.bitrate.bps(now));
            let verdict = entry.link.on_report(report, stream_bps);
            viewer.set_rate_limit(now, verdict.limit);
            if let Some(backlog) = verdict.skip {
                tracing::debug!(
                    viewer = v,
                    backlog,
                    limit = verdict.limit,
                    "link congested: skipping to the next keyframe"
                );
                viewer.skip_backlog(backlog);
            }
            event = verdict.event;
        }
        self.stats.congestion_skips += viewer.take_skips();
        // A PLI can't be forwarded to an RTSP camera: the cached GOP answers it (a GOP too big
        // to burst waits for the camera's next keyframe instead, and so does a congested viewer).
        if viewer.take_keyframe_request() && entry.primed {
            if entry.link.congested() {
                viewer.wait_for_keyframe();
            } else if let Some(s) = self.streams.get(&entry.stream) {
                if s.gop.is_ready()
                    && s.gop.bytes() <= MAX_REPLAY_BYTES
                    && viewer.replay_gop(
                        now,
                        &s.gop,
                        |ts| s.video_wallclock(ts, now),
                        &mut self.transmits,
                    )
                {
                    self.stats.keyframe_requests_answered += 1;
                    tracing::debug!(viewer = v, "keyframe request answered from the GOP cache");
                }
            }
        }
        if let Some((remote, network)) = event {
            let name = self
                .streams
                .get(&entry.stream)
                .map_or("", |s| s.redacted.as_str());
            tracing::info!(
                session = %entry.session,
                url = %name,
                "not enough bandwidth: the link carries {} kbit/s of the stream's {} kbit/s; \
                 skipping to keyframes",
                network / 1000,
                remote / 1000
            );
            let text =
                signaling::not_enough_bandwidth(&entry.media_session_id, name, remote, network);
            let session = entry.session;
            self.stats.not_enough_bandwidth += 1;
            self.send(session, text);
        }
        self.schedule_viewer(v, now);
    }

    // ---- time ------------------------------------------------------------------------------

    fn schedule_stream(&mut self, id: StreamId, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let client = match &s.source {
            Source::Camera(client) => client.poll_timeout(),
            Source::Mirror(_) => None,
        };
        let due = [client, s.linger_until, s.reconnect_at]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.min(now + MAX_SLEEP));
        if let Some(t) = due {
            if s.scheduled.is_none_or(|old| t < old) {
                s.scheduled = Some(t);
                self.timers.push(Reverse((t, TimerKey::Stream(id))));
            }
        }
    }

    fn schedule_viewer(&mut self, v: usize, now: Instant) {
        let Some(entry) = self.viewers.get_mut(v) else {
            return;
        };
        let Some(t) = entry.viewer.as_mut().and_then(|x| x.poll_timeout()) else {
            return;
        };
        let t = t.min(now + MAX_SLEEP);
        if entry.scheduled.is_none_or(|old| t < old) {
            entry.scheduled = Some(t);
            self.timers.push(Reverse((t, TimerKey::Viewer(v))));
        }
    }

    /// The earliest instant at which `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        match (timer, self.next_publish) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if let Some(p) = &self.config.placement {
            if self.next_publish.is_none_or(|t| t <= now) {
                self.next_publish = Some(now + PUBLISH_INTERVAL);
                p.publish(self.local_streams(), self.stats);
            }
        }
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Stream(id) => {
                    let Some(s) = self.streams.get_mut(&id) else {
                        continue;
                    };
                    if s.scheduled != Some(t) {
                        continue; // superseded by an earlier deadline that already ran
                    }
                    s.scheduled = None;
                    if s.reconnect_at.is_some_and(|r| r <= now) {
                        self.reconnect(id, now);
                        continue;
                    }
                    let unwatched = s.unwatched();
                    let Source::Camera(client) = &mut s.source else {
                        continue;
                    };
                    if s.linger_until.is_some_and(|l| l <= now) && unwatched {
                        s.linger_until = None;
                        tracing::info!(stream = id.0, url = %s.redacted, "no viewers left: tearing down");
                        if client.is_closed() {
                            // Down and waiting to reconnect: nothing to tear down.
                            self.close_stream(id);
                            continue;
                        }
                        client.teardown(now);
                    } else {
                        client.handle_timeout(now);
                    }
                    self.after_stream_input(id, now);
                }
                TimerKey::Viewer(v) => {
                    let Some(entry) = self.viewers.get_mut(v) else {
                        continue;
                    };
                    if entry.scheduled != Some(t) {
                        continue;
                    }
                    entry.scheduled = None;
                    if let Some(viewer) = entry.viewer.as_mut() {
                        viewer.handle_timeout(now, &mut self.transmits);
                        self.stats.viewer_ticks += 1;
                    }
                    self.after_viewer_input(v, now);
                }
                TimerKey::Ping => self.ping_sessions(now),
            }
        }
    }

    fn ping_sessions(&mut self, now: Instant) {
        let interval = self.config.ping_interval;
        let mut dead = Vec::new();
        for (id, s) in &self.sessions {
            if s.origin.is_some() {
                continue; // pinged by its own worker, which tells when it is gone
            }
            // Three missed pings: the browser is gone without closing its socket.
            if s.last_heard
                .is_some_and(|h| now.saturating_duration_since(h) > interval * 3)
            {
                dead.push(*id);
            } else if s.established {
                self.outputs.push_back(GatewayOutput::WsSend {
                    session: *id,
                    text: signaling::ping(),
                });
            }
        }
        for id in dead {
            tracing::info!(session = %id, "no answer to pings: closing the session");
            self.outputs
                .push_back(GatewayOutput::WsClose { session: id });
            self.handle_session_closed(id, now);
        }
        if self.sessions.is_empty() {
            self.next_ping = None;
        } else {
            let at = now + interval;
            self.next_ping = Some(at);
            self.timers.push(Reverse((at, TimerKey::Ping)));
        }
    }

    // ---- output ----------------------------------------------------------------------------

    /// The latest time given to the gateway (never backwards: str0m wants time to move on).
    fn advance(&mut self, now: Instant) {
        if self.last_now.is_none_or(|t| t < now) {
            self.last_now = Some(now);
        }
    }

    /// Flushes the viewers written to since their last flush, in order, until one of them has
    /// datagrams queued: encrypting for the next viewers waits until the loop took (and sent)
    /// those. The first viewers' packets leave before the last viewers' are encrypted, and the
    /// SRTP buffers in flight are a few viewers' worth rather than the whole batch's.
    fn flush_next_viewers(&mut self) {
        let Some(now) = self.last_now else { return };
        while self.transmits.is_empty() && self.unflushed_next < self.unflushed.len() {
            let v = self.unflushed[self.unflushed_next];
            self.unflushed_next += 1;
            if let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) {
                if viewer.flush(now, &mut self.transmits) {
                    self.stats.viewer_ticks += 1;
                }
                // The flush's drain left str0m's next deadline: no second pass to find it.
                self.schedule_viewer(v, now);
            }
        }
        if self.unflushed_next == self.unflushed.len() {
            self.unflushed.clear();
            self.unflushed_next = 0;
        }
    }

    pub fn poll_output(&mut self) -> Option<GatewayOutput> {
        loop {
            let output = self.outputs.pop_front()?;
            match output {
                // A remote session's messages go back to the worker holding its WebSocket
                // (and nowhere once it is gone).
                GatewayOutput::WsSend { session, text }
                    if matches!(session, SessionId::Remote(_)) =>
                {
                    let Some((worker, session)) =
                        self.sessions.get(&session).and_then(|s| s.origin)
                    else {
                        continue;
                    };
                    return Some(GatewayOutput::Forward {
                        worker,
                        forward: Forward::Send { session, text },
                    });
                }
                output => return Some(output),
            }
        }
    }

    /// True while datagrams already encrypted wait in the queue: the next `poll_transmit` will not
    /// start on another viewer. The loop sends in chunks that end where this turns false, so a
    /// viewer's run of datagrams (one GSO message) is not split between chunks.
    pub fn transmit_queued(&self) -> bool {
        !self.transmits.is_empty()
    }

    /// The next datagram for the shared WebRTC socket.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.flush_next_viewers();
        }
        let t = self.transmits.pop_front()?;
        self.stats.datagrams_out += 1;
        self.stats.datagram_bytes_out += t.contents.len() as u64;
        Some(t)
    }
}

/// The PLAYING status (with the stream info) for a viewer.
fn playing_status(entry: &ViewerEntry, redacted: &str, info: &str) -> GatewayOutput {
    GatewayOutput::WsSend {
        session: entry.session,
        text: signaling::stream_status(
            &entry.media_session_id,
            redacted,
            StreamStatus::Playing,
            Some(info),
        ),
    }
}

/// What the stream info says about B-frames, and what to do about them.
const B_FRAMES_WARNING: &str = "the camera's H.264 has B-frames, which browsers play jerkily over \
WebRTC: set the camera's encoder to a profile or GOP setting without B-frames (e.g. baseline profile)";

/// "video H264 42c01e; audio PCMU 8000 Hz (passed through)" plus warnings and dropped tracks.
fn stream_info(
    video: Option<&VideoRelay>,
    audio: Option<&AudioRelay>,
    b_frames: bool,
    dropped: &[String],
) -> String {
    let mut parts = Vec::new();
    if let Some(v) = video {
        parts.push(format!("video {}", v.describe()));
    }
    if let Some(a) = audio {
        parts.push(format!("audio {}", a.description()));
    }
    if b_frames {
        parts.push(format!("warning: {B_FRAMES_WARNING}"));
    }
    for d in dropped {
        parts.push(format!("left out: {d}"));
    }
    parts.join("; ")
}

impl Stream {
    fn new(url: String, redacted: String, source: Source) -> Self {
        Stream {
            url,
            redacted,
            source,
            mirrors: Vec::new(),
            video_track: None,
            relay: None,
            audio_track: None,
            audio: None,
            gop: GopCache::new(MAX_GOP_BYTES),
            bitrate: BitrateMeter::new(),
            seq: SeqTracker::new(),
            viewers: Vec::new(),
            pending: Vec::new(),
            linger_until: None,
            pinned: false,
            played: false,
            reconnect_attempts: 0,
            reconnect_at: None,
            dropped_tracks: Vec::new(),
            b_frames: false,
            clock: StreamClock::default(),
            video_clock: TrackClock::new(90_000),
            audio_clock: TrackClock::new(8_000),
            scheduled: None,
        }
    }

    /// The camera client, when this worker pulls the camera.
    fn client(&mut self) -> Option<&mut RtspClient> {
        match &mut self.source {
            Source::Camera(client) => Some(client.as_mut()),
            Source::Mirror(_) => None,
        }
    }

    /// No viewers, none waiting, no mirrors.
    fn unwatched(&self) -> bool {
        self.viewers.is_empty() && self.pending.is_empty() && self.mirrors.is_empty()
    }

    /// The video codec viewers get, once known.
    fn video_codec(&self) -> Option<VideoCodec> {
        match &self.source {
            Source::Camera(_) => self.relay.as_ref().map(VideoRelay::codec),
            Source::Mirror(m) => m.described.as_ref().map(|d| d.video),
        }
    }

    /// The audio viewers get, if any.
    fn audio_output(&self) -> Option<AudioOut> {
        match &self.source {
            Source::Camera(_) => self.audio.as_ref().map(AudioRelay::output),
            Source::Mirror(m) => m.described.as_ref().and_then(|d| d.audio),
        }
    }

    /// The capture instant of video RTP time `ts`: from the camera's clock mapping here, from
    /// the newest mirrored packet in a mirror.
    fn video_wallclock(&self, ts: u32, now: Instant) -> Instant {
        match &self.source {
            Source::Camera(_) => self.video_clock.wallclock(&self.clock, ts, now),
            Source::Mirror(m) => m.clock.map_or(now, |c| c.wallclock(ts)),
        }
    }

    /// What a camera stream plays, for its mirrors; `None` until it plays.
    fn described(&self) -> Option<Described> {
        let Source::Camera(_) = self.source else {
            return None;
        };
        Some(Described {
            video: self.video_codec()?,
            audio: self.audio_output(),
            info: self.info(),
        })
    }

    fn info(&self) -> String {
        match &self.source {
            Source::Camera(_) => stream_info(
                self.relay.as_ref(),
                self.audio.as_ref(),
                self.b_frames,
                &self.dropped_tracks,
            ),
            Source::Mirror(m) => m
                .described
                .as_ref()
                .map(|d| d.info.clone())
                .unwrap_or_default(),
        }
    }
}

/// Hands `items` to worker `worker`'s mirrors, with a wake-up for its loop if its lane from
/// here was empty. A free function: the camera path calls it with the gateway split up.
fn push_lane(
    placement: Option<&Placement>,
    outputs: &mut VecDeque<GatewayOutput>,
    worker: usize,
    items: impl IntoIterator<Item = MirrorItem>,
) {
    let Some(p) = placement else {
        return;
    };
    if p.lane_to(worker).push(items) {
        outputs.push_back(GatewayOutput::WakeWorker { worker });
    }
}

/// What writes media to a stream's viewers: the parts of the gateway it needs, so the camera
/// path (with the stream borrowed) and the mirror path share it.
struct FanOut<'a> {
    viewers: &'a mut Slab<ViewerEntry>,
    unflushed: &'a mut Vec<usize>,
    /// Where a GOP replay's slices go (see `Viewer::send_replayed`).
    transmits: &'a mut VecDeque<Transmit>,
    outputs: &'a mut VecDeque<GatewayOutput>,
    stats: &'a mut GatewayStats,
    now: Instant,
}

/// What a viewer's PLAYING status says: `info` is computed only when one is sent.
struct PlayingInfo<'a, F: Fn() -> String> {
    redacted: &'a str,
    codec: VideoCodec,
    info: F,
}

impl FanOut<'_> {
    /// Writes a batch of relayed video (`packets` with their capture instants) to every
    /// viewer in `watching`. A newly connected viewer starts from the cached GOP instead
    /// (which already holds the batch). Done here, on media, not on the Connected event:
    /// str0m drops RTP written before its SRTP context is up, which happens just after that
    /// event. `gop_wall` dates the GOP's replayed timestamps.
    fn video<F: Fn() -> String>(
        &mut self,
        watching: &[usize],
        gop: &GopCache,
        (packets, walls): (&[RelayPacket], &[Instant]),
        gop_wall: impl Fn(u32) -> Instant,
        playing: PlayingInfo<'_, F>,
    ) {
        let now = self.now;
        for &v in watching {
            let Some(entry) = self.viewers.get_mut(v) else {
                continue;
            };
            let Some(viewer) = entry.viewer.as_mut() else {
                continue;
            };
            if viewer.state().connected && !entry.primed {
                entry.primed = true;
                let mut written = 0;
                gop.replay(|p, ts| {
                    viewer.send_replayed(now, p, ts, gop_wall(ts), &mut written, self.transmits)
                });
            } else {
                for (p, wall) in packets.iter().zip(walls) {
                    viewer.send_video(now, p, p.rtp_time, *wall);
                }
                self.stats.viewer_packets_out += packets.len() as u64;
            }
            if viewer.wants_flush() {
                self.unflushed.push(v);
            }
            if !entry.playing_sent && viewer.state().playing {
                entry.playing_sent = true;
                tracing::info!(url = %playing.redacted, "viewer playing");
                let mut info = (playing.info)();
                let camera_profile = match playing.codec {
                    VideoCodec::H264 { profile_level_id } => profile_level_id,
                    VideoCodec::Vp8 => None,
                };
                if let Some(note) = viewer.profile_note(camera_profile) {
                    info.push_str("; ");
                    info.push_str(&note);
                }
                self.outputs
                    .push_back(playing_status(entry, playing.redacted, &info));
            }
        }
    }

    /// Writes a batch of audio to every viewer in `watching`: `main` (in `output`) to those
    /// that take it, `fallback` (Opus for a browser without the camera's G.711 law) to the
    /// others.
    fn audio(
        &mut self,
        watching: &[usize],
        output: AudioOut,
        main: (&[AudioPacket], &[Instant]),
        fallback: (&[AudioPacket], &[Instant]),
    ) {
        for &v in watching {
            let Some(viewer) = self.viewers.get_mut(v).and_then(|e| e.viewer.as_mut()) else {
                continue;
            };
            let (packets, walls) = if viewer.audio_codec() == Some(output) {
                main
            } else {
                fallback
            };
            for (p, wall) in packets.iter().zip(walls) {
                viewer.send_audio(p, *wall);
            }
            if viewer.wants_flush() {
                self.unflushed.push(v);
            }
        }
    }

    /// PLAYING again, with new stream info, to the viewers that have had it.
    fn playing_again(&mut self, watching: &[usize], redacted: &str, info: &str) {
        for &v in watching {
            let Some(entry) = self.viewers.get(v).filter(|e| e.playing_sent) else {
                continue;
            };
            self.outputs
                .push_back(playing_status(entry, redacted, info));
        }
    }
}

/// The `info` a viewer sees when its camera fails, in the words of the Flashphoner SDK where it
/// has some ("Failed to connect to rtsp stream", "Rtsp stream not found", ...).
/// The configuration of the next RTSP client: every client gets its own seed.
fn client_config(rtsp: &RtspConfig, made: &mut u64) -> RtspConfig {
    *made += 1;
    RtspConfig {
        seed: rtsp.seed.wrapping_add(*made),
        ..rtsp.clone()
    }
}

fn failure_info(e: &RtspError) -> String {
    e.to_string()
}
