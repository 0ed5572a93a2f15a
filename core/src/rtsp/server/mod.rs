//! Sans-IO RTSP server session: one per client TCP connection, serving one stream of the
//! gateway to an RTSP player (ffmpeg, GStreamer, an NVR, another camgate).
//!
//! The driver feeds the connection's bytes to [`ServerSession::handle_input`], calls
//! [`ServerSession::handle_timeout`] at [`ServerSession::poll_timeout`], and after each call
//! drains [`ServerSession::poll_output`] in order: bytes to write ([`ServerOutput::Send`]),
//! stream look-ups to answer with [`ServerSession::handle_stream`] (the camera's tracks may
//! only be known once the gateway's camera connection has described them), and the start and
//! end of media. Media itself does not pass through the session: the driver asks
//! [`ServerSession::route`] where a track's packets go and writes them there, after every
//! [`ServerOutput::Send`] queued before (so the PLAY answer precedes the first packet).
//!
//! Methods: OPTIONS, DESCRIBE, SETUP (TCP-interleaved, or UDP unicast when the driver has
//! server ports), PLAY, PAUSE (455: a live stream is not paused), GET_PARAMETER (keepalive),
//! TEARDOWN. One RTSP session per connection. Any bytes from the client (a request, an RTCP
//! receiver report) and [`ServerSession::handle_keepalive`] (RTCP over UDP) keep it alive; after
//! [`ServerConfig::session_timeout`] without any, the session closes. A request naming another
//! session ([`ServerOutput::Foreign`]) is the driver's to route: RFC 2326 lets a UDP session
//! outlive its connection, and be kept alive or torn down from a new one
//! ([`ServerSession::handle_foreign`]).

mod media_out;
mod sdp;
mod transport;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::auth::{self, Credentials};
use super::framing::{Frame, Framer, Message, StartLine};
use crate::media::TrackInfo;

pub use media_out::{MediaOut, MediaOutConfig, Pushed};
pub use transport::TrackTransport;

/// Methods answered, for OPTIONS' `Public`.
const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN";
/// Requests queued while a stream look-up is pending; a client pipelining more is not a player.
const MAX_QUEUED_REQUESTS: usize = 16;

/// Settings of every session of one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Advertised in `Session: …;timeout=`; a session with no input for this long is closed.
    pub session_timeout: Duration,
    /// The server's shared RTP and RTCP UDP ports, if UDP transport is offered; `None`: SETUP
    /// asks for TCP-interleaved only (461 to a UDP-only offer, on which ffmpeg retries over TCP).
    pub udp_server_ports: Option<(u16, u16)>,
    /// `Server:` header.
    pub server_name: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_timeout: Duration::from_secs(60),
            udp_server_ports: None,
            server_name: "camgate".into(),
        }
    }
}

/// Why a stream look-up found nothing to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// No such stream (404).
    NotFound,
    /// The stream exists but its camera cannot be described now (503).
    Unavailable,
    /// This player may not play it (403): e.g. not on loopback, for a stream without users.
    Forbidden,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOutput {
    /// Write these bytes (an RTSP answer) to the client.
    Send(Vec<u8>),
    /// Find the stream at this path (the request-URI's path without the leading `/`, e.g.
    /// `front`) and answer with [`ServerSession::handle_stream`]; requests wait until then.
    Lookup {
        /// The stream's path.
        path: String,
    },
    /// Start sending the stream's media: the tracks set up, by index into the looked-up
    /// tracks, each to [`ServerSession::route`]. Comes after the PLAY answer.
    Play {
        /// The stream's path.
        path: String,
        /// Indices of the tracks set up.
        tracks: Vec<usize>,
    },
    /// Stop sending media (TEARDOWN): the session is over, the connection may stay open.
    Stop,
    /// Close the connection (after writing what was sent): timeout or broken protocol.
    Close(CloseReason),
    /// A request naming another session (`Session:` header), e.g. a TEARDOWN or keepalive
    /// for a UDP session whose own connection closed (RFC 2326 lets a session outlive it).
    /// The driver hands it to that session ([`ServerSession::handle_foreign`]) and writes the
    /// answer here, or writes [`ServerSession::refusal`] (454) when there is none. Later
    /// requests are answered after it, in order.
    Foreign {
        /// The session id the request names.
        session: String,
        /// The request.
        request: Message,
    },
}

/// Why the session closed the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No input for [`ServerConfig::session_timeout`].
    Timeout,
    /// The bytes were not RTSP, or too many requests were queued.
    Protocol,
}

/// Where one packet of a track goes: see [`ServerSession::route`].
pub type Route = TrackTransport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No SETUP yet (or torn down).
    Init,
    /// At least one track set up.
    Ready,
    /// PLAY answered; media flows.
    Playing,
}

#[derive(Debug)]
struct Stream {
    path: String,
    tracks: Vec<TrackInfo>,
    /// Who may play it; empty: anyone the driver let connect.
    users: Vec<Credentials>,
}

/// The realm of our challenges.
const REALM: &str = "camgate";

/// One client connection's RTSP state.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    framer: Framer,
    session_id: String,
    /// The Digest nonce of this connection's challenges (derived from the secret session id).
    nonce: String,
    /// SSRC written in SETUP answers; the driver rewrites the packets' SSRC to it if it
    /// rewrites at all (e.g. across a camera reconnect).
    ssrc: u32,
    state: State,
    stream: Option<Stream>,
    /// Transport of each track set up, by track index.
    setups: Vec<Option<TrackTransport>>,
    /// A request waiting for the look-up of `lookup`, then those after it.
    queued: VecDeque<Message>,
    lookup: Option<String>,
    outputs: VecDeque<ServerOutput>,
    last_input: Instant,
    closed: bool,
    /// The client connected over IPv6 (see `sdp::describe`).
    ipv6: bool,
}

impl ServerSession {
    /// A session for a new connection. `session_id` (the RTSP `Session` value) and `ssrc`
    /// come from the driver's seeded randomness: the id must not be guessable.
    pub fn new(config: ServerConfig, session_id: String, ssrc: u32, now: Instant) -> Self {
        let nonce = ring::digest::digest(&ring::digest::SHA256, session_id.as_bytes())
            .as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        ServerSession {
            config,
            framer: Framer::new(),
            session_id,
            nonce,
            ssrc,
            state: State::Init,
            stream: None,
            setups: Vec::new(),
            queued: VecDeque::new(),
            lookup: None,
            outputs: VecDeque::new(),
            last_input: now,
            closed: false,
            ipv6: false,
        }
    }

    /// Bytes read from the client's connection.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.closed || data.is_empty() {
            return;
        }
        self.last_input = now;
        let mut requests = Vec::new();
        let res = self.framer.push(data, &mut |f| {
            // Interleaved frames from the client are its RTCP receiver reports: they only
            // keep the session alive. Responses (we send no requests) are ignored.
            if let Frame::Message(m) = f {
                if matches!(m.start, StartLine::Request { .. }) {
                    requests.push(m);
                }
            }
            true
        });
        for r in requests {
            if self.queued.len() >= MAX_QUEUED_REQUESTS {
                self.close(CloseReason::Protocol);
                return;
            }
            self.queued.push_back(r);
            self.run_queue();
        }
        if res.is_err() {
            // What came before the garbage is answered; then the connection closes.
            self.close(CloseReason::Protocol);
        }
    }

    /// The client connected over IPv6: the SDP says so (some clients open their UDP ports in
    /// the SDP's address family).
    pub fn set_ipv6(&mut self, ipv6: bool) {
        self.ipv6 = ipv6;
    }

    /// RTCP from the client over UDP (the driver matched its address): keeps the session alive.
    pub fn handle_keepalive(&mut self, now: Instant) {
        self.last_input = now;
    }

    /// The answer to [`ServerOutput::Lookup`] for `path`: the stream's tracks, or why not.
    /// Anyone may play it (see [`handle_stream_with_users`](Self::handle_stream_with_users)).
    pub fn handle_stream(&mut self, path: &str, tracks: Result<Vec<TrackInfo>, LookupError>) {
        self.handle_stream_with_users(path, tracks, Vec::new());
    }

    /// Like [`handle_stream`](Self::handle_stream), for a stream only `users` may play: every
    /// request on it needs their Basic or MD5 Digest `Authorization` (401 with both challenges
    /// otherwise).
    pub fn handle_stream_with_users(
        &mut self,
        path: &str,
        tracks: Result<Vec<TrackInfo>, LookupError>,
        users: Vec<Credentials>,
    ) {
        if self.lookup.as_deref() != Some(path) || self.closed {
            return;
        }
        self.lookup = None;
        match tracks {
            Ok(tracks) if !tracks.is_empty() => {
                self.setups = vec![None; tracks.len()];
                self.stream = Some(Stream {
                    path: path.to_owned(),
                    tracks,
                    users,
                });
            }
            other => {
                // The waiting request fails; later ones are tried afresh.
                let (code, reason) = match other {
                    Err(LookupError::Unavailable) => (503, "Service Unavailable"),
                    Err(LookupError::Forbidden) => (403, "Forbidden"),
                    _ => (404, "Not Found"),
                };
                if let Some(req) = self.queued.pop_front() {
                    let r = self.response(&req, code, reason);
                    self.send(r);
                }
            }
        }
        self.run_queue();
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then(|| self.last_input + self.config.session_timeout)
    }

    /// Time passed: closes the session when the client has been silent too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.closed && now >= self.last_input + self.config.session_timeout {
            self.close(CloseReason::Timeout);
        }
    }

    /// The next thing to do; drain after every `handle_*` call.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.outputs.pop_front()
    }

    /// Where packets of track `track` go while playing (`None`: not set up or not playing).
    /// RTCP goes to the track's RTCP channel or port.
    pub fn route(&self, track: usize) -> Option<Route> {
        if self.state != State::Playing {
            return None;
        }
        *self.setups.get(track)?
    }

    /// A request that named this session on another connection ([`ServerOutput::Foreign`]
    /// there): answered as if it came here, with the stream's credentials checked. Its answer
    /// is the [`ServerOutput::Send`] drained next, which the driver writes on the connection
    /// the request came on; a TEARDOWN also outputs [`ServerOutput::Stop`]. Keeps the session
    /// alive like any request.
    pub fn handle_foreign(&mut self, now: Instant, request: Message) {
        let names_this = (request.header("Session"))
            .is_some_and(|s| s.split(';').next().unwrap_or("").trim() == self.session_id);
        if !names_this || self.closed || self.queued.len() >= MAX_QUEUED_REQUESTS {
            return;
        }
        self.last_input = now;
        self.queued.push_back(request);
        self.run_queue();
    }

    /// The 454 answer to a [`ServerOutput::Foreign`] request whose session the driver did not
    /// find.
    pub fn refusal(&self, request: &Message) -> Vec<u8> {
        let mut r = String::from("RTSP/1.0 454 Session Not Found\r\n");
        if let Some(c) = request.cseq() {
            let _ = write!(r, "CSeq: {c}\r\n");
        }
        let _ = write!(r, "Server: {}\r\n", self.config.server_name);
        finish(r, None)
    }

    /// The RTSP `Session` id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// PLAY was answered and no TEARDOWN came since.
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing && !self.closed
    }

    /// The SSRC announced in SETUP answers.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// True once the session closed the connection ([`ServerOutput::Close`]).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn close(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.queued.clear();
            self.outputs.push_back(ServerOutput::Close(reason));
        }
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.outputs.push_back(ServerOutput::Send(bytes));
    }

    /// Answers queued requests until one has to wait for a look-up.
    fn run_queue(&mut self) {
        while !self.closed && self.lookup.is_none() {
            let Some(req) = self.queued.pop_front() else {
                return;
            };
            if let Some(path) = self.handle_request(&req) {
                // Needs the stream first: keep it at the front and ask.
                self.queued.push_front(req);
                self.lookup = Some(path.clone());
                self.outputs.push_back(ServerOutput::Lookup { path });
            }
        }
    }

    /// Answers one request; `Some(path)` when the stream at `path` must be looked up first.
    fn handle_request(&mut self, req: &Message) -> Option<String> {
        let StartLine::Request { method, uri } = &req.start else {
            return None;
        };
        if req.cseq().is_none() {
            let r = self.response(req, 400, "Bad Request");
            self.send(r);
            return None;
        }
        // A request naming another session: the driver finds it (or answers 454).
        if let Some(s) = req.header("Session") {
            let id = s.split(';').next().unwrap_or("").trim();
            if id != self.session_id {
                self.outputs.push_back(ServerOutput::Foreign {
                    session: id.to_owned(),
                    request: req.clone(),
                });
                return None;
            }
            // Its own id before SETUP made the session, or after TEARDOWN ended it.
            if self.state == State::Init {
                let r = self.response(req, 454, "Session Not Found");
                self.send(r);
                return None;
            }
        }
        let target = Target::parse(uri);
        match method.as_str() {
            "OPTIONS" => {
                let mut r = self.head(req, 200, "OK");
                let _ = write!(r, "Public: {PUBLIC}\r\n");
                self.send(finish(r, None));
            }
            "DESCRIBE" => {
                let target = match self.open_target(req, method, target) {
                    Ok(target) => target,
                    Err(wait) => return wait,
                };
                let stream = self.stream.as_ref().expect("found just above");
                let body = sdp::describe(&stream.path, &stream.tracks, self.ipv6);
                let mut r = self.head(req, 200, "OK");
                let _ = write!(
                    r,
                    "Content-Base: {}/\r\nContent-Type: application/sdp\r\n",
                    target.base
                );
                self.send(finish(r, Some(body.as_bytes())));
            }
            "SETUP" => {
                let target = match self.open_target(req, method, target) {
                    Ok(target) => target,
                    Err(wait) => return wait,
                };
                let ntracks = self.setups.len();
                let Some(track) = target.track.filter(|t| *t < ntracks).or(
                    // A URL without trackID sets up the only track of a one-track stream.
                    (target.track.is_none() && ntracks == 1).then_some(0),
                ) else {
                    let r = self.response(req, 404, "Not Found");
                    self.send(r);
                    return None;
                };
                if self.state == State::Playing {
                    // Adding tracks while playing is allowed by RFC 2326 but no player does it.
                    let r = self.response(req, 455, "Method Not Valid in This State");
                    self.send(r);
                    return None;
                }
                let offered = req.header("Transport").unwrap_or("");
                let udp = self.config.udp_server_ports.is_some();
                let Ok(t) = transport::choose(offered, track, udp) else {
                    let r = self.response(req, 461, "Unsupported Transport");
                    self.send(r);
                    return None;
                };
                // One transport per session: the driver sends a session's media one way.
                let mixed = self
                    .setups
                    .iter()
                    .flatten()
                    .any(|o| std::mem::discriminant(o) != std::mem::discriminant(&t));
                // Every track has the session's SSRC: on a shared UDP port the client could not
                // tell them apart (nor the driver whose receiver report came in).
                let shared_port = |o: &TrackTransport| match (o, &t) {
                    (
                        TrackTransport::Udp {
                            rtp_port: a,
                            rtcp_port: b,
                        },
                        TrackTransport::Udp {
                            rtp_port: c,
                            rtcp_port: d,
                        },
                    ) => [a, b].iter().any(|p| *p == c || *p == d),
                    _ => false,
                };
                let others = self.setups.iter().enumerate().filter(|(i, _)| *i != track);
                let shared = others.filter_map(|(_, o)| o.as_ref()).any(shared_port);
                if mixed || shared {
                    let r = self.response(req, 461, "Unsupported Transport");
                    self.send(r);
                    return None;
                }
                self.setups[track] = Some(t);
                self.state = State::Ready;
                let mut r = self.head(req, 200, "OK");
                let _ = write!(
                    r,
                    "Transport: {}\r\n",
                    transport::answer(&t, self.config.udp_server_ports, self.ssrc)
                );
                self.send(finish(r, None));
            }
            "PLAY" | "PAUSE" | "GET_PARAMETER" | "TEARDOWN" if !self.authorized(req, method) => {}
            "PLAY" => {
                if self.state == State::Init {
                    let r = self.response(req, 455, "Method Not Valid in This State");
                    self.send(r);
                    return None;
                }
                let mut r = self.head(req, 200, "OK");
                r.push_str("Range: npt=0.000-\r\n");
                self.send(finish(r, None));
                if self.state == State::Ready {
                    self.state = State::Playing;
                    let tracks = (0..self.setups.len())
                        .filter(|&i| self.setups[i].is_some())
                        .collect();
                    let path = self.stream.as_ref().map(|s| s.path.clone());
                    self.outputs.push_back(ServerOutput::Play {
                        path: path.unwrap_or_default(),
                        tracks,
                    });
                }
            }
            "PAUSE" => {
                // A live stream: nothing to pause. 455 lets the client go on playing.
                let r = self.response(req, 455, "Method Not Valid in This State");
                self.send(r);
            }
            "GET_PARAMETER" => {
                let r = self.response(req, 200, "OK");
                self.send(r);
            }
            "TEARDOWN" => {
                let r = self.response(req, 200, "OK");
                self.send(r);
                if self.state == State::Playing {
                    self.outputs.push_back(ServerOutput::Stop);
                }
                self.state = State::Init;
                self.setups.iter_mut().for_each(|s| *s = None);
            }
            _ => {
                let mut r = self.head(req, 501, "Not Implemented");
                let _ = write!(r, "Public: {PUBLIC}\r\n");
                self.send(finish(r, None));
            }
        }
        None
    }

    /// The stream a DESCRIBE or SETUP names, found and the player authorized for it; else the
    /// refusal is sent (404, 401/403) and `Err` says whether a lookup must come first.
    fn open_target(
        &mut self,
        req: &Message,
        method: &str,
        target: Option<Target>,
    ) -> Result<Target, Option<String>> {
        let Some(target) = target else {
            let r = self.response(req, 404, "Not Found");
            self.send(r);
            return Err(None);
        };
        self.stream_for(req, &target.path)?;
        if !self.authorized(req, method) {
            return Err(None);
        }
        Ok(target)
    }

    /// The stream of this session, or `Err(Some(path))` when it must be looked up first, or
    /// `Err(None)` when the request names another stream than the tracks set up (455 sent).
    fn stream_for(&mut self, req: &Message, path: &str) -> Result<&Stream, Option<String>> {
        if self.stream.as_ref().is_some_and(|s| s.path == path) {
            return Ok(self.stream.as_ref().expect("checked just above"));
        }
        if self.state != State::Init {
            // Set-up tracks belong to the current stream: no switching mid-session.
            let r = self.response(req, 455, "Method Not Valid in This State");
            self.send(r);
            return Err(None);
        }
        Err(Some(path.to_owned()))
    }

    /// True if the session's stream is open to all or `req` proves a user; else answers 401
    /// with a Digest and a Basic challenge.
    fn authorized(&mut self, req: &Message, method: &str) -> bool {
        let Some(stream) = self.stream.as_ref().filter(|s| !s.users.is_empty()) else {
            return true;
        };
        let ok = req
            .header("Authorization")
            .is_some_and(|a| auth::verify(a, method, &stream.users, REALM, &self.nonce));
        if !ok {
            let mut r = self.head(req, 401, "Unauthorized");
            let _ = write!(
                r,
                "WWW-Authenticate: Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5\r\nWWW-Authenticate: Basic realm=\"{REALM}\"\r\n",
                self.nonce
            );
            self.send(finish(r, None));
        }
        ok
    }

    /// Status line and the headers every answer has.
    fn head(&self, req: &Message, code: u16, reason: &str) -> String {
        let mut r = format!("RTSP/1.0 {code} {reason}\r\n");
        if let Some(c) = req.cseq() {
            let _ = write!(r, "CSeq: {c}\r\n");
        }
        let _ = write!(r, "Server: {}\r\n", self.config.server_name);
        if self.state != State::Init {
            let _ = write!(
                r,
                "Session: {};timeout={}\r\n",
                self.session_id,
                self.config.session_timeout.as_secs()
            );
        }
        r
    }

    fn response(&self, req: &Message, code: u16, reason: &str) -> Vec<u8> {
        finish(self.head(req, code, reason), None)
    }
}

fn finish(mut head: String, body: Option<&[u8]>) -> Vec<u8> {
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// What a request-URI names.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The stream path, e.g. `front` (`/` inside kept, no leading or trailing `/`).
    path: String,
    /// `trackID=N` at its end.
    track: Option<usize>,
    /// `rtsp://host[:port]/path` without userinfo or query: the Content-Base (plus `/`).
    base: String,
}

impl Target {
    /// `rtsp://[user@]host[:port]/path[/trackID=N][?query]`, or an absolute path. `None` for
    /// `*` and URIs without a path.
    fn parse(uri: &str) -> Option<Target> {
        let uri = uri.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match uri.split_once("://") {
            Some((_, rest)) => {
                // Userinfo ends at the last `@`, even where a client left a `/` of the
                // password unescaped: no part of it may become the path, which Content-Base
                // echoes.
                let rest = rest.rsplit('@').next().unwrap_or(rest);
                let i = rest.find('/').unwrap_or(rest.len());
                (Some(&rest[..i]), &rest[i..])
            }
            None if uri.starts_with('/') => (None, uri),
            None => return None,
        };
        let mut path = path.trim_matches('/');
        let mut track = None;
        if let Some((head, last)) = path.rsplit_once('/').or(Some(("", path))) {
            if let Some(n) = last.strip_prefix("trackID=") {
                track = Some(n.parse().ok()?);
                path = head.trim_end_matches('/');
            }
        }
        if path.is_empty() {
            return None;
        }
        let base = match authority {
            Some(h) => format!("rtsp://{h}/{path}"),
            None => format!("/{path}"),
        };
        Some(Target {
            path: path.to_owned(),
            track,
            base,
        })
    }
}
