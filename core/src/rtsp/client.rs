//! The RTSP client state machine: OPTIONS → DESCRIBE → SETUP (TCP-interleaved, per track) → PLAY,
//! then keepalives until TEARDOWN. Sans-IO: the driver owns the TCP socket and the clock.
//!
//! Driving it (the shape of quinn-proto's `Connection` and str0m's `Rtc`):
//! 1. [`RtspClient::new`], start a TCP connect to `url().host()`/`url().port()`.
//! 2. Feed it what happens: [`RtspClient::handle_connected`], every read to
//!    [`RtspClient::handle_input`], every datagram on a camera UDP socket to
//!    [`RtspClient::handle_udp_input`], EOF or error to [`RtspClient::handle_connection_lost`],
//!    bound (or unbindable) ports to [`RtspClient::handle_udp_ports`] /
//!    [`RtspClient::handle_udp_ports_failed`], and the clock to [`RtspClient::handle_timeout`]
//!    once [`RtspClient::poll_timeout`] is due.
//! 3. The two input calls return the camera's media of that input ([`ReceivedMedia`], slices of
//!    the bytes passed in, no copy); iterate it before the next call.
//! 4. After every `handle_*` call, drain [`RtspClient::poll_output`] until `None` and do what
//!    each [`RtspOutput`] says (write bytes, open UDP ports, send datagrams, reconnect, report).
//! 5. After `Failed` or `Closed`, write the last bytes and close the socket.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::auth::{Authenticator, Challenge};
use super::framing::{Frame, Framer, Message, StartLine};
use super::sdp;
use super::url::RtspUrl;
use crate::media::TrackInfo;
use crate::rtp_reorder::RtpReorder;

/// Session timeout assumed when SETUP's `Session` header announces none (RFC 2326 §12.37).
/// gst-rtsp-server, for one, never announces it.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed per client; the next one fails with "too many redirects".
const MAX_REDIRECTS: u8 = 3;
/// How many `stale=true` renewals one request may go through.
const MAX_STALE_RETRIES: u8 = 3;
/// Transport switches (`Auto`) per client: UDP → TCP → UDP at most, so a camera that refuses
/// both, or a network that drops UDP, cannot loop us.
const MAX_TRANSPORT_SWITCHES: u8 = 2;

/// Timeouts and identity of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspConfig {
    /// No `handle_connected()` by then → `Failed(ConnectFailed)`.
    pub connect_timeout: Duration,
    /// Per request, from the time it was queued.
    pub response_timeout: Duration,
    /// While playing: no byte at all from the server for this long → `Failed(Timeout)`.
    pub no_data_timeout: Duration,
    /// `User-Agent` of every request; empty sends none.
    pub user_agent: String,
    /// Answer Digest `qop` challenges with `qop`, `nc` and `cnonce` (RFC 2617/7616). `false`
    /// sends RFC 2069 digests instead, for cameras that reject those fields. Default `true`.
    pub digest_cnonce: bool,
    /// Follow 301/302/303/305/307 answers to OPTIONS and DESCRIBE by asking the driver to
    /// reconnect (see [`Redirect`]). Default `false`: such an answer fails the stream
    /// (`Failed(Status { 302, .. })`).
    pub follow_redirects: bool,
    /// A track whose SETUP is answered 4xx fails the stream. Default `false`: the track is
    /// dropped (see [`RtspClient::dropped_tracks`]) and the others play; only when no track
    /// could be set up does the stream fail.
    pub fail_on_track_error: bool,
    /// How media travels: UDP first with TCP fallback (default), or one forced.
    pub transport: RtspTransport,
    /// UDP: no RTP on any track this long after PLAY → `Auto` falls back to TCP, `Udp` fails.
    pub udp_no_data_timeout: Duration,
    /// UDP: RTCP receiver report period, per track.
    pub receiver_report_interval: Duration,
    /// UDP: a packet held for a missing predecessor is released after this long (the gap
    /// counts as loss).
    pub reorder_window: Duration,
    /// UDP: packets held per track while waiting for a missing one.
    pub reorder_depth: usize,
    /// Seeds the client's random numbers (Digest client nonces, the SSRC of its receiver
    /// reports): the same seed gives the same values, so the client is a pure function of its
    /// inputs. Callers draw it from the OS once and give each client its own; the default, 0,
    /// is only for tests.
    pub seed: u64,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10),
            no_data_timeout: Duration::from_secs(10),
            user_agent: format!("camgate/{}", env!("CARGO_PKG_VERSION")),
            digest_cnonce: true,
            follow_redirects: false,
            fail_on_track_error: false,
            transport: RtspTransport::Auto,
            udp_no_data_timeout: Duration::from_secs(3),
            receiver_report_interval: Duration::from_secs(5),
            reorder_window: Duration::from_millis(100),
            reorder_depth: 64,
            seed: 0,
        }
    }
}

/// How RTP reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// UDP first; TCP-interleaved when UDP is refused (461), no local port can be bound, or no
    /// RTP arrives within [`RtspConfig::udp_no_data_timeout`] after PLAY.
    #[default]
    Auto,
    /// TCP-interleaved only.
    Tcp,
    /// UDP only, never falls back.
    Udp,
}

/// The client needs a local UDP port pair (even RTP port, odd RTCP port = RTP + 1) for the track
/// it is about to SET UP; answer with [`RtspClient::handle_udp_ports`] or
/// [`RtspClient::handle_udp_ports_failed`] (no answer within
/// [`RtspConfig::response_timeout`]: `Auto` goes on over TCP). A new request for the same
/// index replaces the previous pair (the driver closes the old sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPortRequest {
    /// The index the track will have in [`RtspEvent::Playing`]'s tracks (=
    /// [`MediaPacket::track`], the `track` of [`RtspClient::handle_udp_input`]).
    pub track: usize,
}

/// A datagram for the camera: RTCP receiver reports every
/// [`RtspConfig::receiver_report_interval`] and, as PLAY goes out, one empty RTP packet and one
/// receiver report per track to open NAT/firewall pinholes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpTransmit {
    /// Send from this track's sockets...
    pub track: usize,
    /// ...its RTCP socket (`true`) or its RTP socket.
    pub rtcp: bool,
    /// To this host (`None`: the RTSP server's) and port.
    pub host: Option<String>,
    pub port: u16,
    pub data: Vec<u8>,
}

/// Where the camera expects a track's UDP traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDestination {
    /// `source=` of the SETUP answer; `None` = the RTSP server's host.
    pub host: Option<String>,
    /// `server_port=` of the SETUP answer: RTP...
    pub rtp_port: u16,
    /// ...and RTCP.
    pub rtcp_port: u16,
}

/// Why a stream could not be played. `Display` is what a viewer is shown; no variant ever holds
/// a password or the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspError {
    /// The URL is not a usable `rtsp://` URL (why).
    BadUri(String),
    /// No TCP connection within [`RtspConfig::connect_timeout`], or it was refused.
    ConnectFailed,
    /// 401 without credentials, with credentials that were refused, or with no challenge we
    /// can answer.
    Unauthorized,
    /// 404.
    NotFound,
    /// Any other error status.
    Status {
        /// The status code.
        code: u16,
        /// The reason phrase, as sent.
        reason: String,
    },
    /// Something did not come in time (what).
    Timeout(&'static str),
    /// The camera broke RTSP (how).
    Protocol(String),
    /// The SDP has no track camgate can play.
    NoSupportedTracks,
    /// The camera closed the connection.
    ConnectionClosed,
}

impl fmt::Display for RtspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtspError::BadUri(r) => write!(f, "Bad URI: {r}"),
            RtspError::ConnectFailed => f.write_str("Failed to connect to rtsp stream"),
            RtspError::Unauthorized => f.write_str("401 Unauthorized"),
            RtspError::NotFound => f.write_str("Rtsp stream not found"),
            RtspError::Status { code, reason } => write!(f, "{code} {reason}"),
            RtspError::Timeout(what) => write!(f, "Timeout: {what}"),
            RtspError::Protocol(what) => write!(f, "Rtsp protocol error: {what}"),
            RtspError::NoSupportedTracks => f.write_str("No supported audio or video track"),
            RtspError::ConnectionClosed => f.write_str("Rtsp connection closed"),
        }
    }
}

impl std::error::Error for RtspError {}

/// One RTP or RTCP packet from the camera, borrowed from the bytes passed to `handle_input` or
/// `handle_udp_input` (or, rarely, from the client: a packet split across reads, reordered or
/// early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPacket<'a> {
    /// Index into the tracks of [`RtspEvent::Playing`].
    pub track: usize,
    /// RTCP (odd channel of the pair, or the RTCP socket), else RTP.
    pub rtcp: bool,
    /// The whole RTP or RTCP packet.
    pub data: &'a [u8],
}

/// A change of the stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspEvent {
    /// PLAY succeeded; media follows from the next input on. Comes again after a transport
    /// switch, with the tracks of the new session.
    Playing {
        /// The tracks set up, indexed by [`MediaPacket::track`].
        tracks: Vec<TrackInfo>,
    },
    /// Terminal: write what is left to send, then close the socket.
    Failed(RtspError),
    /// Terminal, after [`RtspClient::teardown`]: write what is left to send, then close.
    Closed,
}

/// What the client asks of its driver; see [`RtspClient::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspOutput {
    /// Bytes to write to the TCP connection, in order.
    Transmit(Vec<u8>),
    /// Bind a local UDP port pair for a track.
    OpenUdp(UdpPortRequest),
    /// Send a datagram to the camera.
    UdpTransmit(UdpTransmit),
    /// Close the connection and connect elsewhere.
    Redirect(Redirect),
    /// The stream started playing, failed or closed.
    Event(RtspEvent),
}

/// The camera redirected the client elsewhere ([`RtspConfig::follow_redirects`]).
///
/// Driver protocol: write what came before it to the current socket, close it, open a TCP connection to `host`:`port`, and call
/// [`RtspClient::handle_connected`] when it is up (or `handle_connection_lost` if it fails;
/// the connect timeout runs again from the redirect). The next `handle_connected` starts over
/// with OPTIONS on the new URL ([`RtspClient::url`]), keeping the old credentials when the new
/// URL names none. At most 3 redirects are followed; the 4th fails with
/// `Protocol("too many redirects")`, and a redirect to anything but `rtsp://` fails with
/// `Protocol("redirect to a non-rtsp URL")`. For `305 Use Proxy`, `host`:`port` is the proxy
/// and the request URL stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Host to connect to.
    pub host: String,
    /// TCP port to connect to.
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Options,
    Describe,
    Setup,
    Play,
    Playing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqKind {
    Options,
    Describe,
    /// Track index and the interleaved RTP channel we proposed.
    Setup {
        track: usize,
        channel: u8,
    },
    /// Track index and the local RTP port we proposed.
    SetupUdp {
        track: usize,
        rtp_port: u16,
    },
    Play,
    /// Answer optional: some cameras never reply to keepalives (gortsplib).
    Keepalive,
}

impl ReqKind {
    fn timeout_what(self) -> &'static str {
        match self {
            ReqKind::Options => "no response to OPTIONS",
            ReqKind::Describe => "no response to DESCRIBE",
            ReqKind::Setup { .. } | ReqKind::SetupUdp { .. } => "no response to SETUP",
            ReqKind::Play => "no response to PLAY",
            ReqKind::Keepalive => "no response to keepalive",
        }
    }
}

/// A request awaiting its response; kept whole so a 401 can resend it with credentials.
#[derive(Debug)]
struct Pending {
    cseq: u32,
    kind: ReqKind,
    method: &'static str,
    uri: String,
    extra: Vec<(&'static str, String)>,
    deadline: Instant,
    /// Already resent after a 401: a second 401 means wrong credentials, unless it only says
    /// the nonce went stale.
    auth_retried: bool,
    /// Resends after a `stale=true` challenge, bounded so a camera that always says stale
    /// cannot loop us.
    stale_retries: u8,
}

/// Sans-IO RTSP client for one camera stream.
pub struct RtspClient {
    url: RtspUrl,
    config: RtspConfig,
    state: State,
    connect_deadline: Instant,
    framer: Framer,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<RtspEvent>,
    cseq: u32,
    pending: Vec<Pending>,
    auth: Option<Authenticator>,
    /// OPTIONS' `Public` listed GET_PARAMETER: use it for keepalives (VLC's server needs it).
    get_parameter: bool,
    /// URL for PLAY, keepalives and TEARDOWN.
    aggregate_url: String,
    /// Selected tracks, in SETUP order.
    tracks: Vec<TrackInfo>,
    /// Tracks SETUP accepted: what `Playing` reports; `MediaPacket::track` indexes this.
    set_up: Vec<TrackInfo>,
    /// Tracks SETUP refused, with why.
    dropped: Vec<(TrackInfo, String)>,
    /// The first SETUP refusal, reported if no track can be set up.
    setup_error: Option<RtspError>,
    /// Interleaved channel → (index into `set_up`, is RTCP).
    channels: Vec<Option<(usize, bool)>>,
    session: Option<String>,
    session_timeout: Duration,
    last_rx: Instant,
    next_keepalive: Option<Instant>,
    /// Redirects followed so far, and the one the driver has not picked up yet.
    redirects: u8,
    redirect: Option<Redirect>,
    /// Digest client nonces and our SSRC, from [`RtspConfig::seed`].
    rng: SplitMix64,
    /// Transport of the current session: `Tcp` or `Udp`.
    current: RtspTransport,
    /// `Auto` switches so far (see [`MAX_TRANSPORT_SWITCHES`]).
    switches: u8,
    /// No local UDP port could be bound (or the driver takes no port requests): TCP only.
    udp_unavailable: bool,
    /// Per selected SDP track: SETUP answered 461 over [UDP, TCP].
    refused: Vec<[bool; 2]>,
    /// Local RTP ports the driver bound, by `set_up` index; kept for the client's lifetime.
    udp_ports: Vec<Option<u16>>,
    udp_requests: VecDeque<UdpPortRequest>,
    port_wait: Option<PortWait>,
    /// By `set_up` index, while the session is on UDP.
    udp_tracks: Vec<UdpTrack>,
    udp_transmit: VecDeque<Datagram>,
    /// After PLAY on UDP, until the first RTP: no RTP by then → fallback (`Auto`) or failure.
    udp_first_deadline: Option<Instant>,
    last_udp_rx: Instant,
    /// Media that came before the driver saw `RtspEvent::Playing` (sent before the PLAY answer,
    /// or after it in the same read), delivered at the start of the next input.
    early: EarlyMedia,
    /// Media goes straight out: set at the first input after PLAY was answered, when the
    /// driver has had the `Playing` event and knows the tracks.
    media_open: bool,
    next_rr: Option<Instant>,
    /// Our SSRC in receiver reports and punch packets.
    local_ssrc: u32,
    /// Where the media of the current input is (see [`ReceivedMedia`]).
    received: MediaOut,
}

/// A datagram for the camera, before its destination is looked up.
#[derive(Debug)]
struct Datagram {
    track: usize,
    rtcp: bool,
    data: Vec<u8>,
}

/// A port pair asked of the driver for the SETUP of `tracks[track]`, which becomes
/// `set_up[index]`.
#[derive(Debug, Clone, Copy)]
struct PortWait {
    track: usize,
    index: usize,
    since: Instant,
}

/// A track set up over UDP.
#[derive(Debug)]
struct UdpTrack {
    dest: UdpDestination,
    /// Datagrams from other addresses are dropped; `None` when the server is known by name only.
    source_ip: Option<IpAddr>,
    /// From the Transport answer, then from the packets.
    ssrc: Option<u32>,
    reorder: RtpReorder,
    /// Middle 32 bits of the last sender report's NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    /// Counts at the previous receiver report, for the fraction lost.
    expected_prior: u64,
    lost_prior: u64,
}

impl fmt::Debug for RtspClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand: the URL is redacted and the authenticator is left out.
        f.debug_struct("RtspClient")
            .field("url", &self.url.redacted())
            .field("state", &self.state)
            .field("session", &self.session)
            .field("tracks", &self.tracks.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl RtspClient {
    /// Parses the URL (`BadUri` at once) and starts the connect timer.
    pub fn new(url: &str, config: RtspConfig, now: Instant) -> Result<RtspClient, RtspError> {
        let url = RtspUrl::parse(url)?;
        let config_transport = config.transport;
        let mut rng = SplitMix64::new(config.seed);
        let local_ssrc = rng.next_u32();
        Ok(RtspClient {
            aggregate_url: url.request_url().to_owned(),
            url,
            connect_deadline: now + config.connect_timeout,
            config,
            state: State::Connecting,
            framer: Framer::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            cseq: 0,
            pending: Vec::new(),
            auth: None,
            get_parameter: false,
            tracks: Vec::new(),
            set_up: Vec::new(),
            dropped: Vec::new(),
            setup_error: None,
            channels: vec![None; 256],
            session: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            last_rx: now,
            next_keepalive: None,
            redirects: 0,
            redirect: None,
            rng,
            current: match config_transport {
                RtspTransport::Tcp => RtspTransport::Tcp,
                RtspTransport::Auto | RtspTransport::Udp => RtspTransport::Udp,
            },
            switches: 0,
            udp_unavailable: false,
            refused: Vec::new(),
            udp_ports: Vec::new(),
            udp_requests: VecDeque::new(),
            port_wait: None,
            udp_tracks: Vec::new(),
            udp_transmit: VecDeque::new(),
            udp_first_deadline: None,
            last_udp_rx: now,
            early: EarlyMedia::default(),
            media_open: false,
            next_rr: None,
            local_ssrc,
            received: MediaOut::default(),
        })
    }

    /// The camera's URL; after a redirect, the new one.
    pub fn url(&self) -> &RtspUrl {
        &self.url
    }

    /// Tracks of the SDP that were selected but refused by SETUP (4xx), with the reason (e.g.
    /// "SETUP answered 461 Unsupported Transport"), so callers can report a missing audio track.
    pub fn dropped_tracks(&self) -> &[(TrackInfo, String)] {
        &self.dropped
    }

    /// The session id from SETUP, without parameters.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The driver's TCP connect succeeded: queue OPTIONS.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        self.last_rx = now;
        self.state = State::Options;
        self.early = EarlyMedia::default();
        self.media_open = false;
        let uri = self.url.request_url().to_owned();
        self.send(now, ReqKind::Options, "OPTIONS", uri, Vec::new(), false);
    }

    /// Bytes read from the TCP socket, split anywhere. Returns the RTP/RTCP of the set-up tracks
    /// in them once PLAY has been answered (and the driver has seen `Playing`): slices of `data`
    /// whenever a frame is whole in it.
    pub fn handle_input<'a>(&'a mut self, now: Instant, data: &'a [u8]) -> ReceivedMedia<'a> {
        let mut out = std::mem::take(&mut self.received);
        out.clear();
        self.input_tcp(now, data, &mut |m| out.record(data, m));
        self.received = out;
        ReceivedMedia::new(data, &self.received)
    }

    fn input_tcp(&mut self, now: Instant, data: &[u8], on_media: &mut dyn FnMut(MediaPacket<'_>)) {
        // Closed, or redirected and waiting for the new connection: the old socket's bytes
        // mean nothing any more.
        if matches!(self.state, State::Closed | State::Connecting) {
            return;
        }
        // Any byte counts as liveness, so a camera that ignores keepalives but streams is fine.
        self.last_rx = now;
        self.open_media(now, on_media);
        self.release_expired(now, on_media);
        // The framer is moved out so the frame callback may borrow the rest of `self`.
        let mut framer = std::mem::take(&mut self.framer);
        let res = framer.push(data, &mut |frame| {
            match frame {
                Frame::Message(m) => self.on_message(now, m),
                Frame::Interleaved { channel, data } => {
                    // Frames on channels we never set up are ignored (gortsplib does the
                    // same; some cameras stream tracks nobody asked for).
                    if let Some(&Some((track, rtcp))) = self.channels.get(usize::from(channel)) {
                        match self.state {
                            State::Playing if self.media_open => {
                                on_media(MediaPacket { track, rtcp, data })
                            }
                            // gst-rtsp-server sends the first RTP (the first keyframe) in the
                            // PLAY answer's read, v4l2rtspserver and Reolink even before the
                            // answer: kept until the driver knows the tracks.
                            State::Play | State::Playing => {
                                self.early.hold(track, rtcp, None, data)
                            }
                            _ => {}
                        }
                    }
                }
            }
            !matches!(self.state, State::Closed | State::Connecting)
        });
        // After a redirect the client holds a fresh framer for the next connection.
        if self.state != State::Connecting {
            self.framer = framer;
        }
        if let Err(e) = res {
            self.fail(RtspError::Protocol(e.0));
        }
    }

    /// TCP error or EOF.
    pub fn handle_connection_lost(&mut self, _now: Instant) {
        let err = if self.state == State::Connecting {
            RtspError::ConnectFailed
        } else {
            RtspError::ConnectionClosed
        };
        self.fail(err);
    }

    /// The next thing to do; call it after every `handle_*` call until it returns `None`.
    ///
    /// Bytes for the connection come first (a TEARDOWN goes out before the `Closed` after
    /// it), then port requests, datagrams, a redirect and the events.
    pub fn poll_output(&mut self) -> Option<RtspOutput> {
        if let Some(data) = self.transmit.pop_front() {
            return Some(RtspOutput::Transmit(data));
        }
        if let Some(request) = self.udp_requests.pop_front() {
            return Some(RtspOutput::OpenUdp(request));
        }
        while let Some(d) = self.udp_transmit.pop_front() {
            let Some(dest) = self.udp_destination(d.track) else {
                continue;
            };
            return Some(RtspOutput::UdpTransmit(UdpTransmit {
                track: d.track,
                rtcp: d.rtcp,
                host: dest.host,
                port: if d.rtcp {
                    dest.rtcp_port
                } else {
                    dest.rtp_port
                },
                data: d.data,
            }));
        }
        if let Some(redirect) = self.redirect.take() {
            return Some(RtspOutput::Redirect(redirect));
        }
        self.events.pop_front().map(RtspOutput::Event)
    }

    /// When `handle_timeout` must be called next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::Connecting => Some(self.connect_deadline),
            _ => {
                let requests = self
                    .pending
                    .iter()
                    .filter(|p| p.kind != ReqKind::Keepalive)
                    .map(|p| p.deadline);
                let playing = (self.state == State::Playing)
                    .then(|| {
                        [
                            Some(self.liveness() + self.config.no_data_timeout),
                            self.next_keepalive,
                            self.udp_first_deadline,
                            self.next_rr,
                        ]
                    })
                    .into_iter()
                    .flatten()
                    .flatten();
                let ports = self
                    .port_wait
                    .map(|w| w.since + self.config.response_timeout);
                requests.chain(playing).chain(ports).min()
            }
        }
    }

    /// Runs what is due at `now`: request and connect timeouts, keepalives, receiver reports,
    /// the UDP fallback.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Connecting => {
                if now >= self.connect_deadline {
                    self.fail(RtspError::ConnectFailed);
                }
                return;
            }
            _ => {}
        }
        if let Some(p) = self
            .pending
            .iter()
            .find(|p| p.kind != ReqKind::Keepalive && now >= p.deadline)
        {
            let what = p.kind.timeout_what();
            self.fail(RtspError::Timeout(what));
            return;
        }
        // A keepalive nobody answered is forgotten, not fatal: data keeps the stream alive.
        self.pending
            .retain(|p| p.kind != ReqKind::Keepalive || now < p.deadline);
        if let Some(w) = self.port_wait {
            if now >= w.since + self.config.response_timeout {
                self.port_wait = None;
                self.udp_requests.clear();
                self.udp_unavailable = true;
                self.udp_impossible(now, w.track, "no UDP port pair from the driver in time");
                return;
            }
        }
        if self.state != State::Playing {
            return;
        }
        if self.udp_first_deadline.is_some_and(|t| now >= t) {
            self.udp_first_deadline = None;
            if !self.switch_transport(now, RtspTransport::Tcp, 0, "no RTP over UDP", true) {
                self.fail(RtspError::Timeout("no data from camera"));
            }
            return;
        }
        if now >= self.liveness() + self.config.no_data_timeout {
            self.fail(RtspError::Timeout("no data from camera"));
            return;
        }
        if self.next_rr.is_some_and(|t| now >= t) {
            self.next_rr = Some(now + self.config.receiver_report_interval);
            for i in 0..self.udp_tracks.len() {
                self.queue_rr(now, i);
            }
        }
        if self.next_keepalive.is_some_and(|t| now >= t) {
            self.send_keepalive(now);
        }
    }

    /// Ends the stream: TEARDOWN if a session exists, then `Closed`. No-op once closed.
    pub fn teardown(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.session.is_some() {
            let uri = self.aggregate_url.clone();
            self.send(now, ReqKind::Keepalive, "TEARDOWN", uri, Vec::new(), false);
        }
        self.pending.clear();
        self.state = State::Closed;
        self.events.push_back(RtspEvent::Closed);
    }

    /// The driver bound `rtp_port` (even) and `rtp_port + 1` for `track`: SETUP goes out with
    /// `client_port=rtp_port-(rtp_port+1)`.
    pub fn handle_udp_ports(&mut self, now: Instant, track: usize, rtp_port: u16) {
        if rtp_port == 0 || rtp_port == u16::MAX {
            self.handle_udp_ports_failed(now, track);
            return;
        }
        if self.udp_ports.len() <= track {
            self.udp_ports.resize(track + 1, None);
        }
        self.udp_ports[track] = Some(rtp_port);
        let Some(w) = self.port_wait.filter(|w| w.index == track) else {
            return;
        };
        self.port_wait = None;
        if self.state == State::Setup {
            self.send_udp_setup(now, w.track, rtp_port);
        }
    }

    /// No port pair could be bound for `track`: `Auto` falls back to TCP, `Udp` fails.
    pub fn handle_udp_ports_failed(&mut self, now: Instant, track: usize) {
        let Some(w) = self.port_wait.filter(|w| w.index == track) else {
            return;
        };
        self.port_wait = None;
        self.udp_requests.clear();
        self.udp_unavailable = true;
        self.udp_impossible(now, w.track, "no local UDP port could be bound");
    }

    /// A datagram that arrived on a track's UDP socket (RTP or RTCP socket) from `source`.
    /// RTP goes through a reorder buffer ([`RtspConfig::reorder_depth`] packets,
    /// [`RtspConfig::reorder_window`]); RTCP is passed on at once. Media comes out exactly
    /// like interleaved media, once PLAY has been answered. Datagrams from anywhere but
    /// the camera (its address when known as an IP, its announced ports when given), for tracks
    /// not on UDP, or that are not RTP/RTCP version 2 are dropped. Packets held past the window
    /// are released at the next `handle_udp_input` or `handle_input`. Returns the media, as
    /// [`RtspClient::handle_input`] does.
    pub fn handle_udp_input<'a>(
        &'a mut self,
        now: Instant,
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &'a [u8],
    ) -> ReceivedMedia<'a> {
        let mut out = std::mem::take(&mut self.received);
        out.clear();
        self.input_udp(now, track, rtcp, source, data, &mut |m| out.record(data, m));
        self.received = out;
        ReceivedMedia::new(data, &self.received)
    }

    fn input_udp(
        &mut self,
        now: Instant,
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &[u8],
        on_media: &mut dyn FnMut(MediaPacket<'_>),
    ) {
        if self.current != RtspTransport::Udp {
            return;
        }
        self.open_media(now, on_media);
        match self.state {
            State::Playing if self.media_open => {
                self.receive_udp(now, track, rtcp, source, data, on_media)
            }
            // A camera that streams before answering PLAY (see `handle_input`).
            State::Play | State::Playing => self.early.hold(track, rtcp, Some(source), data),
            _ => {}
        }
    }

    /// At the first input after PLAY was answered (the driver has seen `Playing` since), hands
    /// on the media held until then and lets media through from now on.
    fn open_media(&mut self, now: Instant, on_media: &mut dyn FnMut(MediaPacket<'_>)) {
        if self.media_open || self.state != State::Playing {
            return;
        }
        self.media_open = true;
        let early = std::mem::take(&mut self.early);
        if early.packets.is_empty() {
            return;
        }
        tracing::debug!(
            url = %self.url,
            packets = early.packets.len(),
            dropped = early.dropped,
            "media that came with or before the PLAY answer, delivered now"
        );
        for p in &early.packets {
            match p.source {
                Some(source) => self.receive_udp(now, p.track, p.rtcp, source, &p.data, on_media),
                None => on_media(MediaPacket {
                    track: p.track,
                    rtcp: p.rtcp,
                    data: &p.data,
                }),
            }
        }
    }

    fn receive_udp(
        &mut self,
        now: Instant,
        track: usize,
        rtcp: bool,
        source: SocketAddr,
        data: &[u8],
        on_media: &mut dyn FnMut(MediaPacket<'_>),
    ) {
        self.release_expired(now, on_media);
        let Some(u) = self.udp_tracks.get_mut(track) else {
            return;
        };
        if let Some(ip) = u.source_ip {
            if source.ip().to_canonical() != ip {
                return;
            }
        }
        // Either port of the announced pair: some cameras send RTCP from the RTP port.
        if u.dest.rtp_port != 0
            && source.port() != u.dest.rtp_port
            && source.port() != u.dest.rtcp_port
        {
            return;
        }
        if data.len() < 8 || data[0] >> 6 != 2 {
            return;
        }
        // RTCP on the RTP port (RFC 5761 demultiplexing by payload type).
        let rtcp = rtcp || (192..=223).contains(&data[1]);
        if rtcp {
            self.last_udp_rx = now;
            // A sender report: remember it for LSR/DLSR.
            if data[1] == 200 && data.len() >= 20 {
                let lsr = u32::from_be_bytes([data[10], data[11], data[12], data[13]]);
                u.last_sr = Some((lsr, now));
            }
            on_media(MediaPacket {
                track,
                rtcp: true,
                data,
            });
            return;
        }
        if data.len() < 12 {
            return;
        }
        self.last_udp_rx = now;
        self.udp_first_deadline = None;
        u.ssrc = Some(u32::from_be_bytes([data[8], data[9], data[10], data[11]]));
        let seq = u16::from_be_bytes([data[2], data[3]]);
        u.reorder.push(now, seq, data, &mut |_, d| {
            on_media(MediaPacket {
                track,
                rtcp: false,
                data: d,
            })
        });
    }

    /// Where the camera expects a track's UDP traffic; `None` when the track is not on UDP or
    /// the camera announced no `server_port`.
    pub fn udp_destination(&self, track: usize) -> Option<UdpDestination> {
        if self.current != RtspTransport::Udp {
            return None;
        }
        self.udp_tracks
            .get(track)
            .filter(|u| u.dest.rtp_port != 0)
            .map(|u| u.dest.clone())
    }

    /// The transport in use once playing (`Tcp` or `Udp`); `None` before PLAY is answered.
    pub fn transport_in_use(&self) -> Option<RtspTransport> {
        (self.state == State::Playing).then_some(self.current)
    }

    /// After `Failed` or `Closed`: nothing more will happen.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn fail(&mut self, err: RtspError) {
        if self.state == State::Closed {
            return;
        }
        self.early = EarlyMedia::default();
        tracing::debug!(url = %self.url, error = %err, "rtsp stream failed");
        self.state = State::Closed;
        self.pending.clear();
        self.events.push_back(RtspEvent::Failed(err));
    }

    fn send(
        &mut self,
        now: Instant,
        kind: ReqKind,
        method: &'static str,
        uri: String,
        extra: Vec<(&'static str, String)>,
        auth_retried: bool,
    ) {
        self.cseq += 1;
        let mut r = format!("{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        if !self.config.user_agent.is_empty() {
            r += &format!("User-Agent: {}\r\n", self.config.user_agent);
        }
        if let Some(a) = &mut self.auth {
            // Computed per request: the digest covers method and URI.
            r += &format!("Authorization: {}\r\n", a.authorization(method, &uri));
        }
        if let Some(s) = &self.session {
            r += &format!("Session: {s}\r\n");
        }
        for (k, v) in &extra {
            r += &format!("{k}: {v}\r\n");
        }
        r += "\r\n";
        self.transmit.push_back(r.into_bytes());
        self.pending.push(Pending {
            cseq: self.cseq,
            kind,
            method,
            uri,
            extra,
            deadline: now + self.config.response_timeout,
            auth_retried,
            stale_retries: 0,
        });
    }

    fn send_keepalive(&mut self, now: Instant) {
        // GET_PARAMETER without body when advertised, else OPTIONS. Not SET_PARAMETER: Tapo
        // answers it with 400 and a wrong CSeq (retina). Sent to the aggregate URL: some cameras
        // ignore keepalives on other URLs (gortsplib).
        let method = if self.get_parameter {
            "GET_PARAMETER"
        } else {
            "OPTIONS"
        };
        let uri = self.aggregate_url.clone();
        // Bound the list if a camera never answers.
        self.pending.retain(|p| p.kind != ReqKind::Keepalive);
        self.send(now, ReqKind::Keepalive, method, uri, Vec::new(), false);
        self.next_keepalive = Some(now + self.keepalive_interval());
    }

    fn keepalive_interval(&self) -> Duration {
        (self.session_timeout / 2).max(Duration::from_secs(1))
    }

    fn on_message(&mut self, now: Instant, m: Message) {
        let (status, reason) = match &m.start {
            StartLine::Request { method, .. } => {
                self.answer_server_request(method, m.cseq());
                return;
            }
            StartLine::Response { status, reason } => (*status, reason.clone()),
        };
        // Responses without CSeq are matched to the oldest request (gortsplib accepts them);
        // a CSeq we are not waiting for (a late keepalive answer) is skipped.
        let idx = match m.cseq() {
            Some(c) => self.pending.iter().position(|p| p.cseq == c),
            None if !self.pending.is_empty() => Some(0),
            None => None,
        };
        let Some(idx) = idx else {
            tracing::trace!(status, "rtsp response to no pending request, ignored");
            return;
        };
        let p = self.pending.remove(idx);
        if p.kind == ReqKind::Keepalive && status != 401 {
            return;
        }
        if status == 401 {
            self.on_unauthorized(now, p, &m);
            return;
        }
        let ok = (200..300).contains(&status);
        if matches!(p.kind, ReqKind::Options | ReqKind::Describe)
            && matches!(status, 301 | 302 | 303 | 305 | 307)
            && self.config.follow_redirects
        {
            if let Some(location) = m.header("Location") {
                self.on_redirect(now, status, location);
                return;
            }
        }
        match p.kind {
            // Some cameras answer OPTIONS with 404 or 501 and still stream (gortsplib): go on.
            ReqKind::Options => {
                if ok {
                    self.get_parameter = m.headers_named("Public").any(|v| {
                        v.split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("GET_PARAMETER"))
                    });
                }
                self.state = State::Describe;
                let uri = self.url.request_url().to_owned();
                let extra = vec![("Accept", "application/sdp".to_owned())];
                self.send(now, ReqKind::Describe, "DESCRIBE", uri, extra, false);
            }
            ReqKind::Describe if !ok => self.fail(status_error(status, reason)),
            ReqKind::Describe => self.on_describe(now, &m),
            ReqKind::Setup { track, .. } | ReqKind::SetupUdp { track, .. } if !ok => {
                self.on_setup_refused(now, p.kind, track, status, reason)
            }
            ReqKind::Setup { track, channel } => self.on_setup(now, &m, track, channel),
            ReqKind::SetupUdp { track, rtp_port } => self.on_udp_setup(now, &m, track, rtp_port),
            ReqKind::Play if !ok => self.fail(status_error(status, reason)),
            ReqKind::Play => {
                self.state = State::Playing;
                self.next_keepalive = Some(now + self.keepalive_interval());
                if self.current == RtspTransport::Udp {
                    self.last_udp_rx = now;
                    self.udp_first_deadline = Some(now + self.config.udp_no_data_timeout);
                    self.next_rr = Some(now + self.config.receiver_report_interval);
                }
                tracing::info!(url = %self.url, transport = ?self.current, "rtsp playing");
                self.events.push_back(RtspEvent::Playing {
                    tracks: self.set_up.clone(),
                });
            }
            ReqKind::Keepalive => {}
        }
    }

    fn on_unauthorized(&mut self, now: Instant, p: Pending, m: &Message) {
        let Some(creds) = self.url.credentials().cloned() else {
            tracing::debug!(url = %self.url, "401 and no credentials in the URL");
            self.fail(RtspError::Unauthorized);
            return;
        };
        // A 401 later in the session (nonce expired) re-reads the challenge and retries once.
        let Some(challenge) = Challenge::pick(m.headers_named("WWW-Authenticate")) else {
            tracing::debug!(url = %self.url, "401 without a challenge we can answer");
            self.fail(RtspError::Unauthorized);
            return;
        };
        // `stale=true` (RFC 7616 §3.3): the nonce expired but the credentials were fine, so
        // resending with the new nonce is not a second failed login.
        let stale = challenge.is_stale() && self.auth.is_some();
        let stale_retries = if p.auth_retried {
            if !stale || p.stale_retries >= MAX_STALE_RETRIES {
                // Our credentials were refused.
                tracing::debug!(url = %self.url, "credentials refused");
                self.fail(RtspError::Unauthorized);
                return;
            }
            p.stale_retries + 1
        } else {
            0
        };
        tracing::debug!(url = %self.url, stale, challenge = ?challenge, "answering 401");
        let cnonce = format!("{:016x}", self.rng.next_u64());
        let auth =
            Authenticator::new(creds, challenge, cnonce).with_cnonce(self.config.digest_cnonce);
        self.auth = Some(auth);
        self.send(now, p.kind, p.method, p.uri, p.extra, true);
        if let Some(last) = self.pending.last_mut() {
            last.stale_retries = stale_retries;
        }
    }

    /// 3xx with a `Location` on OPTIONS or DESCRIBE (gortsplib follows them on DESCRIBE;
    /// some NVRs and MediaMTX `source: redirect` paths send them).
    fn on_redirect(&mut self, now: Instant, status: u16, location: &str) {
        if self.redirects >= MAX_REDIRECTS {
            self.fail(RtspError::Protocol("too many redirects".into()));
            return;
        }
        let next = match self.url.redirect(location) {
            Ok(u) => u,
            Err(RtspError::BadUri(why)) if why == "not an rtsp:// URL" => {
                self.fail(RtspError::Protocol("redirect to a non-rtsp URL".into()));
                return;
            }
            Err(_) => {
                self.fail(RtspError::Protocol("bad redirect URL".into()));
                return;
            }
        };
        self.redirects += 1;
        let target = Redirect {
            host: next.host().to_owned(),
            port: next.port(),
        };
        tracing::info!(
            from = %self.url,
            to = %next,
            status,
            "rtsp redirect, reconnecting"
        );
        // 305 Use Proxy: same resource, reached through the proxy.
        if status != 305 {
            self.url = next;
        }
        self.aggregate_url = self.url.request_url().to_owned();
        self.state = State::Connecting;
        self.connect_deadline = now + self.config.connect_timeout;
        self.framer = Framer::new();
        self.pending.clear();
        // Another server, another realm and nonce: wait for its own challenge.
        self.auth = None;
        self.get_parameter = false;
        self.session = None;
        self.session_timeout = DEFAULT_SESSION_TIMEOUT;
        self.tracks.clear();
        self.set_up.clear();
        self.dropped.clear();
        self.setup_error = None;
        self.channels.iter_mut().for_each(|c| *c = None);
        self.next_keepalive = None;
        self.reset_udp();
        self.redirect = Some(target);
    }

    fn on_describe(&mut self, now: Instant, m: &Message) {
        let base = m
            .header("Content-Base")
            .or_else(|| m.header("Content-Location"))
            .filter(|b| !b.is_empty())
            .map(|b| self.repair_base(b))
            .unwrap_or_else(|| self.url.request_url().to_owned());
        if m.body.is_empty() {
            self.fail(RtspError::Protocol("DESCRIBE answered without SDP".into()));
            return;
        }
        let presentation = match sdp::parse(&m.body, &base) {
            Ok(p) => p,
            Err(e) => {
                self.fail(RtspError::Protocol(e));
                return;
            }
        };
        self.tracks = sdp::select(&presentation.tracks);
        if self.tracks.is_empty() {
            self.fail(RtspError::NoSupportedTracks);
            return;
        }
        self.aggregate_url = presentation.aggregate_url;
        self.state = State::Setup;
        self.send_setup(now, 0);
    }

    /// Content-Base as cameras send it: absolute, `/`-relative, or without a scheme
    /// ("192.168.1.10:554/stream0/", Anjvision; retina prepends the request scheme).
    fn repair_base(&self, b: &str) -> String {
        if b.contains("://") {
            b.to_owned()
        } else if b.starts_with('/') {
            url::Url::parse(self.url.request_url())
                .and_then(|u| u.join(b))
                .map(|u| u.to_string())
                .unwrap_or_else(|_| self.url.request_url().to_owned())
        } else {
            format!("rtsp://{b}")
        }
    }

    fn send_setup(&mut self, now: Instant, track: usize) {
        if track >= self.tracks.len() {
            return;
        }
        if self.current == RtspTransport::Udp {
            let index = self.set_up.len();
            match self.udp_ports.get(index).copied().flatten() {
                Some(port) => self.send_udp_setup(now, track, port),
                None => {
                    self.udp_requests.push_back(UdpPortRequest { track: index });
                    self.port_wait = Some(PortWait {
                        track,
                        index,
                        since: now,
                    });
                }
            }
            return;
        }
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let uri = t.control.clone();
        // Propose the next free even/odd pair; the server may pick others.
        let Some(channel) = (0..=254u8).step_by(2).find(|c| {
            self.channels[usize::from(*c)].is_none() && self.channels[usize::from(*c) + 1].is_none()
        }) else {
            self.fail(RtspError::Protocol("no free interleaved channel".into()));
            return;
        };
        let transport = format!(
            "RTP/AVP/TCP;unicast;interleaved={}-{}",
            channel,
            u16::from(channel) + 1
        );
        // No `mode=` in Transport: it upsets some servers (gortsplib).
        let extra = vec![("Transport", transport)];
        self.send(
            now,
            ReqKind::Setup { track, channel },
            "SETUP",
            uri,
            extra,
            false,
        );
    }

    fn on_setup(&mut self, now: Instant, m: &Message, track: usize, proposed: u8) {
        self.take_session(m);
        // Accept the camera's channels when it picks others than proposed; without an
        // `interleaved` parameter assume ours.
        let (rtp, rtcp) = m
            .header("Transport")
            .and_then(parse_interleaved)
            .unwrap_or((proposed, proposed.checked_add(1)));
        let index = self.set_up.len();
        self.set_up.push(self.tracks[track].clone());
        self.channels[usize::from(rtp)] = Some((index, false));
        if let Some(rtcp) = rtcp {
            if rtcp != rtp {
                self.channels[usize::from(rtcp)] = Some((index, true));
            }
        }
        self.after_setup(now, track);
    }

    fn take_session(&mut self, m: &Message) {
        if let Some(s) = m.header("Session") {
            let mut parts = s.split(';');
            let id = parts.next().unwrap_or("").trim();
            // Keep the first id: some cameras change it between SETUPs (retina UseFirst).
            if self.session.is_none() && !id.is_empty() {
                self.session = Some(id.to_owned());
                // timeout=0 or junk falls back to the default rather than hammering the camera.
                self.session_timeout = parts
                    .filter_map(|p| p.trim().split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("timeout"))
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                    .filter(|&t| t > 0)
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_SESSION_TIMEOUT);
            }
        }
    }

    /// SETUP answered with an error. A 4xx drops that track (cameras list audio they cannot
    /// send, or refuse TCP for it with 461); anything else, or `fail_on_track_error`, is fatal.
    fn on_setup_refused(
        &mut self,
        now: Instant,
        kind: ReqKind,
        track: usize,
        status: u16,
        reason: String,
    ) {
        // 461 Unsupported Transport: in `Auto`, the other transport for this track, unless it
        // was refused too.
        if status == 461 && self.config.transport == RtspTransport::Auto {
            let udp = matches!(kind, ReqKind::SetupUdp { .. });
            if self.refused.len() <= track {
                self.refused.resize(track + 1, [false; 2]);
            }
            self.refused[track][usize::from(!udp)] = true;
            let other = if udp {
                RtspTransport::Tcp
            } else {
                RtspTransport::Udp
            };
            if !self.refused[track][usize::from(udp)]
                && self.switch_transport(now, other, track, "SETUP answered 461", false)
            {
                return;
            }
        }
        let err = status_error(status, reason.clone());
        if !(400..500).contains(&status) || self.config.fail_on_track_error {
            self.fail(err);
            return;
        }
        let t = self.tracks[track].clone();
        let why = format!("SETUP answered {status} {reason}")
            .trim_end()
            .to_owned();
        tracing::warn!(
            url = %self.url,
            kind = ?t.kind,
            encoding = %t.encoding,
            %why,
            "camera track dropped, playing the others"
        );
        self.dropped.push((t, why));
        self.setup_error.get_or_insert(err);
        self.after_setup(now, track);
    }

    /// SETUP of the next track, or PLAY once all were tried.
    fn after_setup(&mut self, now: Instant, track: usize) {
        if track + 1 < self.tracks.len() {
            self.send_setup(now, track + 1);
        } else if self.set_up.is_empty() {
            let err = self
                .setup_error
                .take()
                .unwrap_or(RtspError::NoSupportedTracks);
            self.fail(err);
        } else {
            self.state = State::Play;
            let uri = self.aggregate_url.clone();
            // Range is mandatory for some servers (Parrot Streaming Server, per gortsplib).
            let extra = vec![("Range", "npt=0.000-".to_owned())];
            self.send(now, ReqKind::Play, "PLAY", uri, extra, false);
            // Open NAT/firewall pinholes towards the camera before its media comes.
            for i in 0..self.udp_tracks.len() {
                if self.udp_tracks[i].dest.rtp_port != 0 {
                    let mut rtp = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
                    rtp.extend_from_slice(&self.local_ssrc.to_be_bytes());
                    self.udp_transmit.push_back(Datagram {
                        track: i,
                        rtcp: false,
                        data: rtp,
                    });
                }
                self.queue_rr(now, i);
            }
        }
    }

    fn send_udp_setup(&mut self, now: Instant, track: usize, rtp_port: u16) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let uri = t.control.clone();
        let transport = format!(
            "RTP/AVP;unicast;client_port={}-{}",
            rtp_port,
            rtp_port.saturating_add(1)
        );
        let extra = vec![("Transport", transport)];
        self.send(
            now,
            ReqKind::SetupUdp { track, rtp_port },
            "SETUP",
            uri,
            extra,
            false,
        );
    }

    fn on_udp_setup(&mut self, now: Instant, m: &Message, track: usize, rtp_port: u16) {
        let transport = m.header("Transport").unwrap_or("");
        // The camera answered with TCP (some Hikvision): start over with TCP (gortsplib).
        if parse_interleaved(transport).is_some() {
            self.take_session(m);
            if !self.switch_transport(
                now,
                RtspTransport::Tcp,
                track,
                "UDP SETUP answered with TCP",
                true,
            ) {
                self.fail(RtspError::Protocol(
                    "UDP SETUP answered with a TCP transport".into(),
                ));
            }
            return;
        }
        self.take_session(m);
        let t = parse_udp_transport(transport);
        if t.client_port.is_some_and(|c| c != rtp_port) {
            tracing::debug!(url = %self.url, transport, "camera changed our client_port, ignored");
        }
        let host_ip = |h: &str| {
            h.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .ok()
                .map(|ip| ip.to_canonical())
        };
        let source_ip = match &t.source {
            Some(s) => host_ip(s),
            None => host_ip(self.url.host()),
        };
        let (rtp, rtcp) = t.server_port.unwrap_or((0, 0));
        self.set_up.push(self.tracks[track].clone());
        self.udp_tracks.push(UdpTrack {
            dest: UdpDestination {
                host: t.source,
                rtp_port: rtp,
                rtcp_port: rtcp,
            },
            source_ip,
            ssrc: t.ssrc,
            reorder: RtpReorder::new(self.config.reorder_depth, self.config.reorder_window),
            last_sr: None,
            expected_prior: 0,
            lost_prior: 0,
        });
        debug_assert_eq!(self.udp_tracks.len(), self.set_up.len());
        self.after_setup(now, track);
    }

    /// UDP cannot be used at all (no ports): TCP in `Auto`, failure in `Udp`.
    fn udp_impossible(&mut self, now: Instant, track: usize, why: &'static str) {
        // `switch_transport` refuses in `Udp` mode.
        if !self.switch_transport(now, RtspTransport::Tcp, track, why, false) {
            self.fail(RtspError::Protocol(why.into()));
        }
    }

    /// `Auto` only: go on with `to`, SETting UP `tracks[track]` again on the same session, or,
    /// when tracks are already set up with the other transport or `restart`, TEARDOWN and start
    /// over at DESCRIBE on the same connection. `false` when no switch is allowed.
    fn switch_transport(
        &mut self,
        now: Instant,
        to: RtspTransport,
        track: usize,
        why: &str,
        restart: bool,
    ) -> bool {
        if self.config.transport != RtspTransport::Auto
            || self.current == to
            || self.switches >= MAX_TRANSPORT_SWITCHES
            || (to == RtspTransport::Udp && self.udp_unavailable)
        {
            return false;
        }
        self.switches += 1;
        let restart = restart || !self.set_up.is_empty();
        tracing::info!(
            url = %self.url,
            from = ?self.current,
            to = ?to,
            why,
            restart,
            "rtsp transport switch"
        );
        self.current = to;
        if !restart {
            self.port_wait = None;
            self.udp_requests.clear();
            self.send_setup(now, track);
            return true;
        }
        if self.session.is_some() {
            let uri = self.aggregate_url.clone();
            self.send(now, ReqKind::Keepalive, "TEARDOWN", uri, Vec::new(), false);
        }
        // Pending answers of the old session (a keepalive, the TEARDOWN) are matched by CSeq
        // and ignored.
        self.pending.retain(|p| p.kind == ReqKind::Keepalive);
        self.session = None;
        self.session_timeout = DEFAULT_SESSION_TIMEOUT;
        self.tracks.clear();
        self.set_up.clear();
        self.dropped.clear();
        self.setup_error = None;
        self.channels.iter_mut().for_each(|c| *c = None);
        self.next_keepalive = None;
        self.reset_udp();
        self.state = State::Describe;
        let uri = self.url.request_url().to_owned();
        let extra = vec![("Accept", "application/sdp".to_owned())];
        self.send(now, ReqKind::Describe, "DESCRIBE", uri, extra, false);
        true
    }

    /// Forgets the UDP session state (not the bound ports).
    fn reset_udp(&mut self) {
        self.port_wait = None;
        self.udp_requests.clear();
        self.udp_tracks.clear();
        self.udp_transmit.clear();
        self.udp_first_deadline = None;
        self.next_rr = None;
    }

    /// Playing: when media last came (UDP: datagrams only, as the RTSP connection may live on
    /// while the media is gone).
    fn liveness(&self) -> Instant {
        if self.current == RtspTransport::Udp {
            self.last_udp_rx
        } else {
            self.last_rx
        }
    }

    /// Hands on UDP packets held past the reorder window.
    fn release_expired(&mut self, now: Instant, on_media: &mut dyn FnMut(MediaPacket<'_>)) {
        for (track, u) in self.udp_tracks.iter_mut().enumerate() {
            u.reorder.handle_timeout(now, &mut |_, d| {
                on_media(MediaPacket {
                    track,
                    rtcp: false,
                    data: d,
                })
            });
        }
    }

    /// An RTCP receiver report (RFC 3550 §6.4.2) for `set_up[track]`: one report block once the
    /// track's SSRC is known, empty before.
    fn queue_rr(&mut self, now: Instant, track: usize) {
        let local_ssrc = self.local_ssrc;
        let Some(u) = self.udp_tracks.get_mut(track) else {
            return;
        };
        if u.dest.rtcp_port == 0 {
            return;
        }
        let mut p = Vec::with_capacity(32);
        match u.ssrc {
            None => {
                p.extend_from_slice(&[0x80, 201, 0, 1]);
                p.extend_from_slice(&local_ssrc.to_be_bytes());
            }
            Some(ssrc) => {
                let lost = u.reorder.lost();
                let expected = u.reorder.delivered() + lost;
                let expected_interval = expected - u.expected_prior;
                let lost_interval = lost - u.lost_prior;
                u.expected_prior = expected;
                u.lost_prior = lost;
                let fraction = (lost_interval << 8)
                    .checked_div(expected_interval)
                    .map_or(0, |f| f.min(255) as u8);
                let cumulative = lost.min(0x7f_ffff) as u32;
                let (lsr, dlsr) = match u.last_sr {
                    Some((lsr, at)) => {
                        let d = now.saturating_duration_since(at);
                        let dlsr = (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32;
                        (lsr, dlsr)
                    }
                    None => (0, 0),
                };
                p.extend_from_slice(&[0x81, 201, 0, 7]);
                p.extend_from_slice(&local_ssrc.to_be_bytes());
                p.extend_from_slice(&ssrc.to_be_bytes());
                p.push(fraction);
                p.extend_from_slice(&cumulative.to_be_bytes()[1..]);
                p.extend_from_slice(&u.reorder.extended_highest().unwrap_or(0).to_be_bytes());
                p.extend_from_slice(&0u32.to_be_bytes()); // jitter: not measured
                p.extend_from_slice(&lsr.to_be_bytes());
                p.extend_from_slice(&dlsr.to_be_bytes());
            }
        }
        self.udp_transmit.push_back(Datagram {
            track,
            rtcp: true,
            data: p,
        });
    }

    /// Requests from the server (OPTIONS pings, ANNOUNCE, ...): answer, never fail on them.
    fn answer_server_request(&mut self, method: &str, cseq: Option<u32>) {
        let (code, reason) = match method {
            "OPTIONS" | "GET_PARAMETER" | "SET_PARAMETER" => (200, "OK"),
            _ => (501, "Not Implemented"),
        };
        let mut r = format!("RTSP/1.0 {code} {reason}\r\n");
        if let Some(c) = cseq {
            r += &format!("CSeq: {c}\r\n");
        }
        if method == "OPTIONS" {
            r += "Public: OPTIONS, GET_PARAMETER, SET_PARAMETER\r\n";
        }
        if let Some(s) = &self.session {
            r += &format!("Session: {s}\r\n");
        }
        r += "\r\n";
        self.transmit.push_back(r.into_bytes());
    }
}

fn status_error(code: u16, reason: String) -> RtspError {
    match code {
        401 => RtspError::Unauthorized,
        404 => RtspError::NotFound,
        _ => RtspError::Status { code, reason },
    }
}

/// `interleaved=a-b` (or a lone `a`) from a Transport header.
fn parse_interleaved(transport: &str) -> Option<(u8, Option<u8>)> {
    let v = transport
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("interleaved"))?
        .1
        .trim();
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok())),
        None => {
            let a: u8 = v.parse().ok()?;
            Some((a, a.checked_add(1)))
        }
    }
}

/// The UDP parameters of a SETUP answer's Transport header.
#[derive(Debug, Default, PartialEq, Eq)]
struct UdpTransportAnswer {
    server_port: Option<(u16, u16)>,
    client_port: Option<u16>,
    ssrc: Option<u32>,
    source: Option<String>,
}

/// `server_port=a-b` (or a lone `a`: RTCP on a+1), `client_port`, `ssrc=` (hex, as RFC 2326
/// says; some cameras pad or prefix it) and `source=`. Port 0 and junk count as absent.
fn parse_udp_transport(transport: &str) -> UdpTransportAnswer {
    let mut t = UdpTransportAnswer::default();
    let pair = |v: &str| -> Option<(u16, u16)> {
        let (a, b) = match v.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()),
            None => (v.parse::<u16>().ok()?, None),
        };
        let b = b.or_else(|| a.checked_add(1))?;
        (a != 0 && b != 0).then_some((a, b))
    };
    for p in transport.split(';') {
        let Some((k, v)) = p.trim().split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "server_port" => t.server_port = pair(v),
            "client_port" => t.client_port = pair(v).map(|p| p.0),
            "ssrc" => {
                let h = v.trim_start_matches("0x").trim_start_matches("0X");
                t.ssrc = u32::from_str_radix(h, 16)
                    .ok()
                    .or_else(|| h.parse::<u32>().ok());
            }
            "source" if !v.is_empty() => t.source = Some(v.to_owned()),
            _ => {}
        }
    }
    t
}

/// SplitMix64 (Steele, Lea and Flood, 2014): small, deterministic, and good enough for nonces
/// and SSRCs, which need to differ, not to be secret.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    /// Callers give neighbouring clients neighbouring seeds (`base + n`): the seed is mixed
    /// first so their sequences do not overlap.
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64(Self::mix(seed.wrapping_add(Self::GAMMA)))
    }

    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        Self::mix(self.0)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Media a camera sent between PLAY and its answer, bounded: copies, made only while a stream
/// starts.
#[derive(Default)]
struct EarlyMedia {
    packets: Vec<EarlyPacket>,
    bytes: usize,
    /// Packets past the bounds, dropped.
    dropped: usize,
}

struct EarlyPacket {
    track: usize,
    rtcp: bool,
    /// The sender, for UDP (checked on release like any datagram); `None` when interleaved.
    source: Option<SocketAddr>,
    data: Vec<u8>,
}

impl EarlyMedia {
    /// About a second of a 4 Mbit/s camera: more than any camera sends before its answer.
    const MAX_PACKETS: usize = 512;
    const MAX_BYTES: usize = 1 << 20;

    fn hold(&mut self, track: usize, rtcp: bool, source: Option<SocketAddr>, data: &[u8]) {
        if self.packets.len() >= Self::MAX_PACKETS || self.bytes + data.len() > Self::MAX_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += data.len();
        self.packets.push(EarlyPacket {
            track,
            rtcp,
            source,
            data: data.to_vec(),
        });
    }
}

/// Where each media packet of the current input is: a range of the input, or of `held` for the
/// few that are not in it. Reused from input to input, so steady state allocates nothing.
#[derive(Debug, Default)]
struct MediaOut {
    packets: Vec<(usize, bool, Place)>,
    /// Copies of packets that are not slices of the input: completed from bytes buffered by an
    /// earlier read, released by the reorder buffer, or held as early media.
    held: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Input(usize, usize),
    Held(usize, usize),
}

impl MediaOut {
    fn clear(&mut self) {
        self.packets.clear();
        self.held.clear();
    }

    fn record(&mut self, input: &[u8], m: MediaPacket<'_>) {
        // Only addresses are compared: is `m.data` inside `input`?
        let (start, len) = (m.data.as_ptr() as usize, m.data.len());
        let base = input.as_ptr() as usize;
        let place = if start >= base && start + len <= base + input.len() {
            Place::Input(start - base, len)
        } else {
            self.held.extend_from_slice(m.data);
            Place::Held(self.held.len() - len, len)
        };
        self.packets.push((m.track, m.rtcp, place));
    }
}

/// The media of one input, in arrival order; see [`RtspClient::handle_input`]. Media not taken
/// before the next call into the client is gone.
#[must_use = "the camera's media is dropped unless iterated"]
#[derive(Debug)]
pub struct ReceivedMedia<'a> {
    input: &'a [u8],
    out: &'a MediaOut,
    next: usize,
}

impl<'a> ReceivedMedia<'a> {
    fn new(input: &'a [u8], out: &'a MediaOut) -> ReceivedMedia<'a> {
        ReceivedMedia {
            input,
            out,
            next: 0,
        }
    }
}

impl<'a> Iterator for ReceivedMedia<'a> {
    type Item = MediaPacket<'a>;

    fn next(&mut self) -> Option<MediaPacket<'a>> {
        let &(track, rtcp, place) = self.out.packets.get(self.next)?;
        self.next += 1;
        let data = match place {
            Place::Input(at, len) => &self.input[at..at + len],
            Place::Held(at, len) => &self.out.held[at..at + len],
        };
        Some(MediaPacket { track, rtcp, data })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.out.packets.len() - self.next;
        (n, Some(n))
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
