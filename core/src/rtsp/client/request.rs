//! Requests and their answers: sending with CSeq, Session and credentials, matching answers,
//! 401 challenges, redirects, DESCRIBE, keepalives, and requests from the server.

use std::time::{Duration, Instant};

use super::{
    Redirect, RtspClient, RtspError, RtspEvent, RtspTransport, State, DEFAULT_SESSION_TIMEOUT,
};
use crate::rtsp::auth::{Authenticator, Challenge};
use crate::rtsp::framing::{Framer, Message, StartLine};
use crate::rtsp::sdp;

/// Redirects followed per client; the next one fails with "too many redirects".
const MAX_REDIRECTS: u8 = 3;

/// How many `stale=true` renewals one request may go through.
const MAX_STALE_RETRIES: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReqKind {
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
    pub(super) fn timeout_what(self) -> &'static str {
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
pub(super) struct Pending {
    pub(super) cseq: u32,
    pub(super) kind: ReqKind,
    pub(super) method: &'static str,
    pub(super) uri: String,
    pub(super) extra: Vec<(&'static str, String)>,
    pub(super) deadline: Instant,
    /// Already resent after a 401: a second 401 means wrong credentials, unless it only says
    /// the nonce went stale.
    pub(super) auth_retried: bool,
    /// Resends after a `stale=true` challenge, bounded so a camera that always says stale
    /// cannot loop us.
    pub(super) stale_retries: u8,
}

impl RtspClient {
    pub(super) fn send(
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

    pub(super) fn send_keepalive(&mut self, now: Instant) {
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

    pub(super) fn keepalive_interval(&self) -> Duration {
        (self.session_timeout / 2).max(Duration::from_secs(1))
    }

    pub(super) fn on_message(&mut self, now: Instant, m: Message) {
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
                    self.udp.last_rx = now;
                    self.udp.first_deadline = Some(now + self.config.udp_no_data_timeout);
                    self.udp.next_rr = Some(now + self.config.receiver_report_interval);
                }
                tracing::info!(url = %self.url, transport = ?self.current, "rtsp playing");
                self.events.push_back(RtspEvent::Playing {
                    tracks: self.set_up.clone(),
                });
            }
            ReqKind::Keepalive => {}
        }
    }

    pub(super) fn on_unauthorized(&mut self, now: Instant, p: Pending, m: &Message) {
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
    pub(super) fn on_redirect(&mut self, now: Instant, status: u16, location: &str) {
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
            Err(RtspError::BadUri(why)) if why.starts_with("redirect from rtsps") => {
                self.fail(RtspError::Protocol(format!("{why} refused")));
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
            tls: next.is_tls(),
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
        self.forget_session();
        if target.tls {
            self.media_over_tcp_only();
        }
        self.redirect = Some(target);
    }

    pub(super) fn on_describe(&mut self, now: Instant, m: &Message) {
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
        // The first video and audio track whatever their encoding: RTSP players take MJPEG or
        // G.726 as they are; what browsers cannot play is the gateway's to leave out.
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
    pub(super) fn repair_base(&self, b: &str) -> String {
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

    pub(super) fn take_session(&mut self, m: &Message) {
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

    /// Requests from the server (OPTIONS pings, ANNOUNCE, ...): answer, never fail on them.
    pub(super) fn answer_server_request(&mut self, method: &str, cseq: Option<u32>) {
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

pub(super) fn status_error(code: u16, reason: String) -> RtspError {
    match code {
        401 => RtspError::Unauthorized,
        404 => RtspError::NotFound,
        _ => RtspError::Status { code, reason },
    }
}
