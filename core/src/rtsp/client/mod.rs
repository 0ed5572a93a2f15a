//! The RTSP client state machine: OPTIONS → DESCRIBE → SETUP (per track, UDP or
//! TCP-interleaved) → PLAY, then keepalives until TEARDOWN. Sans-IO: the driver owns the sockets
//! and the clock, and the client's random numbers come from [`RtspConfig::seed`].
//!
//! Here: the client, its inputs and `poll_output`. By concern: `config` ([`RtspConfig`]),
//! `output` (what the driver is handed), `request` (requests, answers, auth, redirects),
//! `setup` (SETUP/PLAY and transport switches), `udp` (the UDP session), `early` (media before
//! the PLAY answer reaches the driver), `timers` (timeouts), `rng`.
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

mod config;
mod early;
mod output;
mod request;
mod setup;
mod timers;
mod udp;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

pub use config::{RtspConfig, RtspTransport};
pub use output::{
    MediaPacket, ReceivedMedia, Redirect, RtspError, RtspEvent, RtspOutput, UdpDestination,
    UdpPortRequest, UdpTransmit,
};

use super::auth::Authenticator;
use super::framing::{Frame, Framer};
use super::url::RtspUrl;
use crate::media::TrackInfo;
use crate::rng::SplitMix64;
use early::EarlyMedia;
use output::MediaOut;
use request::{Pending, ReqKind};
use udp::UdpSession;

/// Session timeout assumed when SETUP's `Session` header announces none (RFC 2326 §12.37).
/// gst-rtsp-server, for one, never announces it.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// `Auto` switches so far (see `MAX_TRANSPORT_SWITCHES`).
    switches: u8,
    /// Per selected SDP track: SETUP answered 461 over [UDP, TCP].
    refused: Vec<[bool; 2]>,
    /// Ports, tracks and reports of media over UDP.
    udp: UdpSession,
    /// Media that came before the driver saw `RtspEvent::Playing` (sent before the PLAY answer,
    /// or after it in the same read), delivered at the start of the next input.
    early: EarlyMedia,
    /// Media goes straight out: set at the first input after PLAY was answered, when the
    /// driver has had the `Playing` event and knows the tracks.
    media_open: bool,
    /// Where the media of the current input is (see [`ReceivedMedia`]).
    received: MediaOut,
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
        let tls = url.is_tls();
        let mut rng = SplitMix64::new(config.seed);
        let udp = UdpSession::new(rng.next_u32(), now);
        let mut client = RtspClient {
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
            refused: Vec::new(),
            udp,
            early: EarlyMedia::default(),
            media_open: false,
            received: MediaOut::default(),
        };
        if tls {
            client.media_over_tcp_only();
        }
        Ok(client)
    }

    /// `rtsps://`: media goes interleaved inside the TLS connection, never over plain UDP
    /// (that would need SRTP keys from the camera, which camgate does not do).
    pub(super) fn media_over_tcp_only(&mut self) {
        self.config.transport = RtspTransport::Tcp;
        self.current = RtspTransport::Tcp;
    }

    /// The camera's URL; after a redirect, the new one.
    pub fn url(&self) -> &RtspUrl {
        &self.url
    }

    /// Tracks of the SDP left out, with the reason: selected but refused by SETUP (4xx, e.g.
    /// "SETUP answered 461 Unsupported Transport"), so callers can report a missing audio track.
    /// (Tracks in encodings browsers cannot play are set up; the gateway leaves them out.)
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

    /// The driver's TLS session with an `rtsps://` camera failed (handshake or certificate):
    /// the stream fails with `why`, which should tell the operator what to fix.
    pub fn handle_tls_failed(&mut self, _now: Instant, why: String) {
        self.fail(RtspError::Tls(why));
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
        if let Some(request) = self.udp.requests.pop_front() {
            return Some(RtspOutput::OpenUdp(request));
        }
        while let Some(d) = self.udp.transmit.pop_front() {
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
}

#[cfg(test)]
mod tests;
