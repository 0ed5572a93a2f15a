//! Fuzz harnesses for camgate's web side (crate `camgate`): HTTP requests, WebSocket signaling
//! and the REST/WHEP APIs, end to end through `camgate::web::Web` (the sans-IO `WebApp` the
//! event loop drives) and a real `camgate_core::gateway::Gateway`.
//!
//! Run by the fuzz binaries `http_request`, `websocket` and `rest_body`, and replayed over seeds,
//! corpora and crash artifacts by `server/tests/fuzz_regressions.rs` in a plain
//! `cargo test -p camgate`, both through [`TARGETS`].
//!
//! [`Rig`] plays the event loop: it accepts connections, hands the app bytes, carries out the
//! app's writes and closes (checking every byte written), routes the gateway's signaling back
//! to the app, and moves a fake clock. A harness finds a bug by panicking.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camgate::access::Access;
use camgate::config::{Config, NamedStream};
use camgate::web::{Web, WebSettings};
use camgate_core::gateway::{Gateway, GatewayConfig, GatewayOutput};
use camgate_io::{ConnId, ListenerKind, WebApp, WebIo};
use serde_json::Value;

use crate::Rng;

/// A harness: panics on a bug.
pub type Harness = fn(&[u8]);

/// The web side's targets, by the name of their cargo-fuzz binary and corpus directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("http_request", http_request),
    ("websocket", websocket),
    ("rest_body", rest_body),
];

/// The password of every camera URL the harnesses put in requests: no byte the server writes
/// may contain it.
pub const SECRET: &str = "secretpw";
/// A configured stream (`[streams.lobby]`) whose URL carries [`SECRET`].
pub const LOBBY_URL: &str = "rtsp://admin:secretpw@10.0.0.5:554/Streaming/Channels/101";
/// The `auth_token` of the configurations with access control.
pub const TOKEN: &str = "t0k";
/// `server/src/web/mod.rs`'s `REQUEST_TIMEOUT`: a client without a complete request after this is closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `server/src/web/http.rs`'s `MAX_REQUEST_HEAD`.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Gateway outputs handled per `pump`; more means the web side and the gateway feed each
/// other forever.
const MAX_PUMP: usize = 10_000;

/// The generator for choices that must not disturb the payload.
fn seeded_rng(seed: u64) -> Rng {
    Rng::new(0x9E37_79B9_7F4A_7C15 ^ (seed << 17 | seed | 1))
}

/// Whether fuzz bytes could spell [`SECRET`] themselves (literally, through a JSON `\u`
/// escape or a percent-escape): then an echo of them is no leak and the secret check is off.
fn may_forge_secret(input: &[u8]) -> bool {
    let has = |s: &[u8]| input.windows(s.len()).any(|w| w == s);
    has(b"ecret") || has(b"cretp") || has(b"etpw") || has(b"\\u") || has(b"%")
}

/// A configuration: defaults, plus the `lobby` stream; `auth` sets [`TOKEN`], `restricted`
/// limits cameras to 127.0.0.1 and 10.0.0.0/8.
pub fn config(auth: bool, restricted: bool) -> Config {
    let mut c = Config::default();
    c.streams.insert(
        "lobby".into(),
        NamedStream {
            uri: LOBBY_URL.into(),
            pull_at_start: false,
            tls_fingerprint: None,
            rtsp_users: Vec::new(),
        },
    );
    if auth {
        c.auth_token = Some(TOKEN.into());
    }
    if restricted {
        c.allowed_hosts = vec!["127.0.0.1".into(), "10.0.0.0/8".into()];
    }
    c
}

/// An HTTP response as written.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the rig saw of one connection.
struct Seen {
    accepted_at: Instant,
    /// The app asked to close it.
    closed: bool,
    /// The loop dropped it (`WebApp::closed` was called).
    dropped: bool,
    /// Bytes written and not parsed yet (always empty between calls: writes are whole).
    pending: Vec<u8>,
    /// Bytes written in all.
    written: usize,
    response: Option<Response>,
    upgraded: bool,
    /// The server sent a WebSocket Close frame.
    ws_close_sent: bool,
    /// Server text messages.
    texts: Vec<String>,
}

/// The event loop, played by the harness.
pub struct Rig {
    pub web: Web,
    pub gw: Gateway,
    io: WebIo,
    pub now: Instant,
    conns: HashMap<usize, Seen>,
    next_conn: usize,
    /// The gateway asked for a camera connection (a WHEP answer may then wait on it).
    pub camera_pending: bool,
    /// Answer camera connections with "lost" (else they stay pending).
    pub lose_cameras: bool,
    pub max_ws_message: usize,
    pub max_http_body: usize,
    /// Closed connections that had output stay with the loop (flushing to a slow client)
    /// until `drop_conn`; otherwise the rig picks at random.
    pub slow_flush: bool,
    /// `RIG_TRACE` set: print what goes in and out (for understanding a crash file).
    trace: bool,
    rng: Rng,
}

impl Rig {
    pub fn new(config: &Config, seed: u64) -> Rig {
        let web = Web::new(WebSettings {
            default_url: "rtsp://127.0.0.1:8554/demo".into(),
            max_ws_message: config.max_ws_message,
            max_http_body: config.max_http_body,
            access: Access::new(config),
            tls: None,
            ice_servers: Vec::new(),
        });
        Rig {
            web,
            gw: Gateway::new(GatewayConfig::default()),
            io: WebIo::default(),
            now: Instant::now(),
            conns: HashMap::new(),
            next_conn: 1,
            camera_pending: false,
            lose_cameras: false,
            max_ws_message: config.max_ws_message,
            max_http_body: config.max_http_body,
            slow_flush: false,
            trace: std::env::var_os("RIG_TRACE").is_some(),
            rng: seeded_rng(seed),
        }
    }

    pub fn accept(&mut self, kind: ListenerKind) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let peer: SocketAddr = "192.0.2.7:50000".parse().unwrap();
        self.web.accepted(conn, kind, peer, self.now);
        self.conns.insert(
            conn.0,
            Seen {
                accepted_at: self.now,
                closed: false,
                dropped: false,
                pending: Vec::new(),
                written: 0,
                response: None,
                upgraded: false,
                ws_close_sent: false,
                texts: Vec::new(),
            },
        );
        conn
    }

    fn seen(&self, conn: ConnId) -> &Seen {
        &self.conns[&conn.0]
    }
    pub fn is_closed(&self, conn: ConnId) -> bool {
        self.seen(conn).closed
    }
    pub fn is_dropped(&self, conn: ConnId) -> bool {
        self.seen(conn).dropped
    }
    pub fn is_upgraded(&self, conn: ConnId) -> bool {
        self.seen(conn).upgraded
    }
    pub fn response(&self, conn: ConnId) -> Option<&Response> {
        self.seen(conn).response.as_ref()
    }
    pub fn texts(&self, conn: ConnId) -> &[String] {
        &self.seen(conn).texts
    }

    /// Bytes from the client, as the loop hands them over (also after the app asked to
    /// close, while the loop still flushes; never after the loop dropped the connection).
    pub fn feed(&mut self, conn: ConnId, data: &[u8]) {
        if self.seen(conn).dropped {
            return;
        }
        if self.trace {
            eprintln!(
                "recv {} {:?}",
                conn.0,
                String::from_utf8_lossy(&data[..data.len().min(80)])
            );
        }
        self.web
            .received(conn, data, self.now, &mut self.gw, &mut self.io);
        self.apply();
        self.pump();
    }

    /// Time passes; the loop's once-a-second `tick` and the gateway's timers run.
    pub fn advance(&mut self, step: Duration) {
        self.now += step;
        self.web.tick(self.now, &mut self.io);
        self.apply();
        // A client that has not completed its request within REQUEST_TIMEOUT is closed.
        for (id, s) in &self.conns {
            let idle = !s.closed && !s.upgraded && s.written == 0;
            if idle
                && !self.camera_pending
                && self.now.saturating_duration_since(s.accepted_at) > REQUEST_TIMEOUT
            {
                panic!(
                    "conn {id}: no complete request after {:?}, still open after tick",
                    self.now - s.accepted_at
                );
            }
        }
        if self.gw.poll_timeout().is_some_and(|t| t <= self.now) {
            self.gw.handle_timeout(self.now);
        }
        self.pump();
    }

    /// The loop drops a connection (the peer closed, or our close completed).
    pub fn drop_conn(&mut self, conn: ConnId) {
        let s = self.conns.get_mut(&conn.0).unwrap();
        if s.dropped {
            return;
        }
        s.dropped = true;
        self.web.closed(conn, self.now, &mut self.gw);
        self.apply();
        self.pump();
    }

    pub fn drop_all(&mut self) {
        let ids: Vec<usize> = self.conns.keys().copied().collect();
        for id in ids {
            self.drop_conn(ConnId(id));
        }
    }

    /// Carries out the gateway's outputs the web side is concerned with.
    pub fn pump(&mut self) {
        let mut n = 0;
        while let Some(o) = self.gw.poll_output() {
            n += 1;
            assert!(
                n < MAX_PUMP,
                "the gateway and the web side feed each other forever"
            );
            match o {
                GatewayOutput::WsSend { session, text } => {
                    if self.trace {
                        eprintln!("gw→{} {:?}", session, &text[..text.len().min(150)]);
                    }
                    self.web
                        .send_text(session, &text, self.now, &mut self.gw, &mut self.io);
                }
                GatewayOutput::WsClose { session } => {
                    self.web
                        .close_session(session, self.now, &mut self.gw, &mut self.io);
                }
                GatewayOutput::RtspConnect { stream, .. } => {
                    self.camera_pending = true;
                    if self.lose_cameras {
                        self.gw.handle_rtsp_lost(stream, self.now);
                    }
                }
                _ => {}
            }
            self.apply();
        }
    }

    /// Carries out the app's writes and closes, checking them; closed connections with
    /// nothing left to flush are dropped, as the loop does.
    fn apply(&mut self) {
        let (writes, closes) = self.io.take();
        if self.trace {
            for (c, d) in &writes {
                eprintln!(
                    "write {} {:?}",
                    c.0,
                    String::from_utf8_lossy(&d[..d.len().min(120)])
                );
            }
            for c in &closes {
                eprintln!("close {}", c.0);
            }
        }
        for (conn, data) in writes {
            let s = self
                .conns
                .get_mut(&conn.0)
                .unwrap_or_else(|| panic!("write to conn {} that was never accepted", conn.0));
            assert!(
                !s.dropped,
                "conn {}: write after the loop dropped it",
                conn.0
            );
            assert!(!s.closed, "conn {}: write after the app closed it", conn.0);
            assert!(!data.is_empty(), "conn {}: empty write", conn.0);
            s.written += data.len();
            s.pending.extend_from_slice(&data);
            check_output(conn, s);
        }
        for conn in closes {
            let Some(s) = self.conns.get_mut(&conn.0) else {
                continue;
            };
            if s.closed || s.dropped {
                continue;
            }
            s.closed = true;
            // The loop drops a connection whose output is flushed at once; with output, the
            // client may still send while it drains (the rig's choice).
            if s.written == 0 || !self.slow_flush && self.rng.below(2) == 0 {
                s.dropped = true;
                self.web.closed(conn, self.now, &mut self.gw);
            }
        }
    }

    /// Every byte the server wrote, on every connection, as text (lossy), for leak checks.
    fn all_output(&self) -> Vec<String> {
        self.conns
            .values()
            .flat_map(|s| {
                s.texts.iter().cloned().chain(s.response.iter().map(|r| {
                    let mut t = String::new();
                    for (n, v) in &r.headers {
                        t.push_str(&format!("{n}: {v}\n"));
                    }
                    t + &String::from_utf8_lossy(&r.body)
                }))
            })
            .collect()
    }

    /// No response and no signaling message contains [`SECRET`] (unless `input` could spell
    /// it itself).
    pub fn check_no_secret(&self, input: &[u8]) {
        if may_forge_secret(input) {
            return;
        }
        for text in self.all_output() {
            assert!(
                !text.contains(SECRET),
                "a camera password went out to a client: {text}"
            );
        }
    }
}

/// Parses what was written to `conn`: one HTTP/1.1 response, or a 101 and then server
/// WebSocket frames. Writes are whole: a response or frame is never split across writes.
fn check_output(conn: ConnId, s: &mut Seen) {
    if !s.upgraded {
        assert!(
            s.response.is_none(),
            "conn {}: a second response after {:?}",
            conn.0,
            s.response.as_ref().map(|r| r.status)
        );
        let (response, used) = parse_response(&s.pending)
            .unwrap_or_else(|e| panic!("conn {}: malformed response: {e}", conn.0));
        s.pending.drain(..used);
        if response.status == 101 {
            s.upgraded = true;
            assert!(
                response
                    .header("upgrade")
                    .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
                "101 without Upgrade: websocket"
            );
        } else {
            assert!(
                s.pending.is_empty(),
                "conn {}: bytes after a response with Connection: close",
                conn.0
            );
            s.response = Some(response);
            return;
        }
    }
    while !s.pending.is_empty() {
        let (frame, used) = parse_server_frame(&s.pending)
            .unwrap_or_else(|e| panic!("conn {}: bad WebSocket frame: {e}", conn.0));
        s.pending.drain(..used);
        assert!(
            !s.ws_close_sent,
            "conn {}: a frame after the server's Close",
            conn.0
        );
        match frame {
            (0x1, payload) => {
                let text = String::from_utf8(payload).expect("text frame is UTF-8");
                s.texts.push(text);
            }
            (0x8, payload) => {
                s.ws_close_sent = true;
                assert!(payload.len() != 1, "Close payload of 1 byte");
                if payload.len() >= 2 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    // RFC 6455 7.4: below 1000 unused; 1004-1006 and 1015 never on the wire.
                    assert!(
                        (1000..5000).contains(&code) && ![1004, 1005, 1006, 1015].contains(&code),
                        "Close code {code} must not go on the wire"
                    );
                    std::str::from_utf8(&payload[2..]).expect("Close reason is UTF-8");
                }
            }
            (0x2 | 0x9 | 0xA, _) => {}
            (op, _) => panic!("conn {}: server sent opcode {op:#x}", conn.0),
        }
    }
}

/// `HTTP/1.1 NNN Reason`, headers, and exactly `Content-Length` body bytes (or none for 1xx,
/// 204).
fn parse_response(b: &[u8]) -> Result<(Response, usize), String> {
    let end = b
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of head in the write")?;
    let head = std::str::from_utf8(&b[..end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let code = rest.get(..3).ok_or("short status line")?;
    if !code.bytes().all(|c| c.is_ascii_digit()) || rest.as_bytes().get(3) != Some(&b' ') {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = code.parse().unwrap();
    if !(100..600).contains(&status) {
        return Err(format!("status {status}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line
            .split_once(": ")
            .ok_or_else(|| format!("header line {line:?}"))?;
        if n.is_empty() || !n.bytes().all(|c| c.is_ascii_graphic() && c != b':') {
            return Err(format!("header name {n:?}"));
        }
        if v.bytes().any(|c| c == b'\r' || c == b'\n') {
            return Err(format!("header value {v:?}"));
        }
        headers.push((n.to_owned(), v.to_owned()));
    }
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let body_start = end + 4;
    if status == 101 || status == 204 {
        if r.header("content-length").is_some_and(|v| v != "0") {
            return Err(format!("{status} with a body"));
        }
        return Ok((r, body_start));
    }
    let len: usize = r
        .header("content-length")
        .ok_or("no Content-Length")?
        .parse()
        .map_err(|_| "bad Content-Length")?;
    if b.len() < body_start + len {
        return Err(format!(
            "Content-Length {len}, {} body bytes written",
            b.len() - body_start
        ));
    }
    r.body = b[body_start..body_start + len].to_vec();
    Ok((r, body_start + len))
}

/// One server→client frame (RFC 6455 5.2): FIN, no RSV bits, known opcode, unmasked, control
/// frames short and unfragmented, whole in `b`. Returns `((opcode, payload), bytes used)`.
#[allow(clippy::type_complexity)]
fn parse_server_frame(b: &[u8]) -> Result<((u8, Vec<u8>), usize), String> {
    if b.len() < 2 {
        return Err("frame shorter than its header".into());
    }
    let (fin, rsv, op) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
    if rsv != 0 {
        return Err(format!("RSV bits {rsv:#x}"));
    }
    if !matches!(op, 0 | 1 | 2 | 8 | 9 | 10) {
        return Err(format!("reserved opcode {op:#x}"));
    }
    if b[1] & 0x80 != 0 {
        return Err("a server frame is masked".into());
    }
    let (len, at) = match b[1] & 0x7F {
        126 => {
            let l = b.get(2..4).ok_or("short 16-bit length")?;
            let l = u16::from_be_bytes([l[0], l[1]]) as u64;
            if l < 126 {
                return Err("non-minimal length".into());
            }
            (l, 4)
        }
        127 => {
            let l = b.get(2..10).ok_or("short 64-bit length")?;
            let l = u64::from_be_bytes(l.try_into().unwrap());
            if l >> 63 != 0 || l < 65536 {
                return Err("bad 64-bit length".into());
            }
            (l, 10)
        }
        l => (u64::from(l), 2),
    };
    if op >= 8 && (!fin || len > 125) {
        return Err("fragmented or long control frame".into());
    }
    if !fin || op == 0 {
        return Err("the server fragments a message".into());
    }
    let len = usize::try_from(len).map_err(|_| "huge frame")?;
    let payload = b
        .get(at..at + len)
        .ok_or("frame split across writes")?
        .to_vec();
    Ok(((op, payload), at + len))
}

/// `data` split at two points chosen by `a` and `b` (0..=255 of its length).
fn split3(a: u8, b: u8, s: &[u8]) -> [&[u8]; 3] {
    let i = usize::from(a) * s.len() / 255;
    let j = i + (s.len() - i) * usize::from(b) / 255;
    [&s[..i], &s[i..j], &s[j..]]
}

// ---------------------------------------------------------------------------------------------
// http_request

/// A browser's WebSocket upgrade to the signaling port (the RFC 6455 sample key).
pub const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://127.0.0.1:8081\r\nUser-Agent: Mozilla/5.0\r\n\r\n";

/// Raw bytes from a client on a fresh connection: `flags, a, b`, then the bytes, fed in the
/// three pieces `a` and `b` cut them into, with time passing before each (flags bit 1: jumps of
/// up to 30 s instead of < 1 s) and the app's `tick`. Flags bit 0: the signaling listener
/// instead of the HTTP one; bit 2: then repeat the bytes until more than a request head and
/// body may hold were sent. Checks: every write is a well-formed HTTP/1.1 response, or a 101
/// and well-formed WebSocket frames; nothing is written after a close; a client that has not
/// completed its request in 10 s is closed at the next tick; after more bytes than the head
/// and body limits, the app has answered or closed (memory per connection is bounded); and the
/// next client is still served.
pub fn http_request(data: &[u8]) {
    let [flags, a, b, s @ ..] = data else {
        return;
    };
    let kind = if flags & 1 != 0 {
        ListenerKind::WebSocket
    } else {
        ListenerKind::Http
    };
    let mut rig = Rig::new(&config(flags & 8 != 0, false), u64::from(*flags));
    rig.lose_cameras = flags & 16 != 0;
    let mut rng = seeded_rng(u64::from(*a) << 8 | u64::from(*b));
    let max_step = if flags & 2 != 0 { 30_000 } else { 1_000 };
    let conn = rig.accept(kind);
    for chunk in split3(*a, *b, s) {
        rig.advance(Duration::from_millis(rng.below(max_step)));
        if !chunk.is_empty() {
            rig.feed(conn, chunk);
        }
    }
    if flags & 4 != 0 && !s.is_empty() {
        let limit = MAX_REQUEST_HEAD + rig.max_http_body + 1024;
        let mut fed = s.len();
        while fed <= limit && !rig.is_closed(conn) && !rig.is_dropped(conn) {
            rig.feed(conn, s);
            fed += s.len();
        }
        let answered = rig.is_closed(conn) || rig.response(conn).is_some();
        // Empty lines before a request are dropped, not kept (the 10 s timeout closes such a
        // client).
        let blank = s.iter().all(|b| matches!(b, b'\r' | b'\n'));
        assert!(
            answered || blank || rig.is_upgraded(conn) || rig.camera_pending,
            "{fed} bytes of one request held without an answer"
        );
    }
    rig.check_no_secret(s);
    // The server still serves the next client.
    let next = rig.accept(kind);
    if kind == ListenerKind::WebSocket {
        rig.feed(next, UPGRADE.as_bytes());
        assert!(rig.is_upgraded(next), "the next client's upgrade failed");
    } else {
        rig.feed(next, b"GET /api/streams HTTP/1.1\r\nHost: x\r\n\r\n");
        let status = rig.response(next).map(|r| r.status);
        let expected = if flags & 8 != 0 { 401 } else { 200 };
        assert_eq!(status, Some(expected), "the next client is not served");
    }
    rig.drop_all();
}

// ---------------------------------------------------------------------------------------------
// websocket

/// A Chromium offer as the Flashphoner SDK sends it (no candidates), JSON-escaped.
pub const OFFER_SDP: &str = "v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n\
a=group:BUNDLE 0 1\\r\\na=extmap-allow-mixed\\r\\na=msid-semantic: WMS\\r\\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\\r\\nc=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 0.0.0.0\\r\\n\
a=ice-ufrag:Yb3F\\r\\na=ice-pwd:7Rk0Z8cXkH2xq1mJb1m0qk5Q\\r\\na=ice-options:trickle\\r\\n\
a=fingerprint:sha-256 5B:1E:5C:8B:0F:1A:27:9A:43:64:3E:2D:43:B2:C1:33:55:8C:55:1D:6E:7B:2C:96:0F:45:84:0C:9C:6C:2B:8D\\r\\n\
a=setup:actpass\\r\\na=mid:0\\r\\na=recvonly\\r\\na=rtcp-mux\\r\\n\
a=rtpmap:111 opus/48000/2\\r\\na=fmtp:111 minptime=10;useinbandfec=1\\r\\na=rtpmap:0 PCMU/8000\\r\\n\
a=rtpmap:8 PCMA/8000\\r\\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\\r\\nc=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 0.0.0.0\\r\\n\
a=ice-ufrag:Yb3F\\r\\na=ice-pwd:7Rk0Z8cXkH2xq1mJb1m0qk5Q\\r\\na=ice-options:trickle\\r\\n\
a=fingerprint:sha-256 5B:1E:5C:8B:0F:1A:27:9A:43:64:3E:2D:43:B2:C1:33:55:8C:55:1D:6E:7B:2C:96:0F:45:84:0C:9C:6C:2B:8D\\r\\n\
a=setup:actpass\\r\\na=mid:1\\r\\na=recvonly\\r\\na=rtcp-mux\\r\\na=rtcp-rsize\\r\\n\
a=rtpmap:96 VP8/90000\\r\\na=rtcp-fb:96 nack\\r\\na=rtcp-fb:96 nack pli\\r\\n\
a=rtpmap:102 H264/90000\\r\\na=rtcp-fb:102 nack pli\\r\\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\\r\\n\
a=rtpmap:103 H264/90000\\r\\n\
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\\r\\n";

/// The `mediaSessionId` of the templates.
const MSID: &str = "8d0bc4a0-8f3e-11ee-b9d1-0242ac120002";

/// Flashphoner SDK messages; `{X}` is replaced with fuzz bytes.
fn template(i: u8, x: &str) -> String {
    let viewer_token = if x == "VIEWER" {
        lobby_viewer_token()
    } else {
        String::new()
    };
    let t = match i % 8 {
        0 => r#"{"message":"connection","data":[{"appKey":"defaultApp","mediaProviders":["WebRTC","MSE","WSPlayer"],"clientVersion":"2.0","clientOSVersion":"5.0 (X11)","clientBrowserVersion":"Mozilla/5.0","msePacketizationVersion":2,"clientInfo":{},"authToken":"{X}"}]}"#.to_owned(),
        1 => format!(
            r#"{{"message":"playStream","data":[{{"mediaSessionId":"{MSID}","name":"rtsp://admin:secretpw@127.0.0.1:554/{{X}}","published":false,"hasVideo":true,"hasAudio":true,"status":"PENDING","record":false,"width":0,"height":0,"mediaProvider":"WebRTC","sdp":"{OFFER_SDP}","bitrate":0,"minBitrate":0,"maxBitrate":0,"quality":0}}]}}"#
        ),
        2 => format!(
            r#"{{"message":"playStream","data":[{{"mediaSessionId":"{MSID}","name":"{{X}}","published":false,"hasVideo":true,"hasAudio":true,"status":"PENDING","sdp":"{OFFER_SDP}"}}]}}"#
        ),
        3 => format!(
            r#"{{"message":"stopStream","data":[{{"mediaSessionId":"{MSID}","name":"{{X}}","published":false,"hasVideo":true,"hasAudio":true,"status":"PLAYING","record":false}}]}}"#
        ),
        4 => r#"{"message":"pong","data":[null]}"#.to_owned(),
        5 => r#"{"message":"{X}","data":[null]}"#.to_owned(),
        6 => format!(
            r#"{{"message":"playStream","data":[{{"mediaSessionId":"{{X}}","name":"lobby","published":false,"hasVideo":true,"hasAudio":false,"status":"PENDING","sdp":"{OFFER_SDP}"}}]}}"#
        ),
        _ => format!(
            r#"{{"message":"playStream","data":[{{"mediaSessionId":"{MSID}","name":"rtsp://admin:secretpw@203.0.113.9/{{X}}","sdp":"{{X}}"}}]}}"#
        ),
    };
    // `VIEWER` stands for a valid viewer token for `lobby` (the `websocket` target's bit 4).
    t.replace("{X}", if x == "VIEWER" { &viewer_token } else { x })
}

/// A viewer token for `lobby` under [`VIEWER_SECRET`], valid until 2100.
pub fn lobby_viewer_token() -> String {
    camgate_core::viewer_token::ViewerTokenKey::new(VIEWER_SECRET.as_bytes())
        .mint("lobby", 4_102_444_800)
}

fn json_escape(s: &str) -> String {
    let v = Value::from(s).to_string();
    v[1..v.len() - 1].to_owned()
}

/// One client frame built from fuzz bytes, and what the rig knows it must do to the session.
struct ClientFrame {
    bytes: Vec<u8>,
    /// A protocol error the server must close the session for.
    violation: bool,
    /// The frame's payload arrives whole (its declared length is what was sent).
    whole: bool,
    /// Declared payload length.
    declared: u64,
    opcode: u8,
    fin: bool,
    /// The payload, unmasked (as far as it was sent).
    payload: Vec<u8>,
}

/// Reads one record: `op` (bits 0-2: opcode continuation, text, binary, close, ping, pong,
/// SDK template text, reserved; bit 3: FIN clear; bit 4: unmasked; bit 5: an RSV bit; bit 6:
/// lie about the length, declaring the next 4 bytes' u32 instead; bit 7: drive the gateway and
/// the clock afterwards), `len: u16 LE`, payload (for templates: selector byte, then the `{X}`
/// text; selector bit 7 JSON-escapes it).
fn client_frame(r: &mut &[u8], rng: &mut Rng) -> Option<(ClientFrame, bool)> {
    let (&op, rest) = r.split_first()?;
    *r = rest;
    let mut declared_lie = None;
    if op & 0x40 != 0 {
        let (d, rest) = r.split_at_checked(4)?;
        declared_lie = Some(u64::from(u32::from_be_bytes(d.try_into().unwrap())));
        *r = rest;
    }
    let (l, rest) = r.split_at_checked(2)?;
    let len = usize::from(u16::from_le_bytes([l[0], l[1]])).min(rest.len());
    let (mut payload, rest) = rest.split_at(len);
    *r = rest;
    let templated;
    let opcode = match op & 7 {
        0 => 0x0,
        1 => 0x1,
        2 => 0x2,
        3 => 0x8,
        4 => 0x9,
        5 => 0xA,
        6 => {
            let (sel, x) = payload.split_first().map_or((0, &[][..]), |(s, x)| (*s, x));
            let x = String::from_utf8_lossy(x);
            let x = if sel & 0x80 != 0 {
                json_escape(&x)
            } else {
                x.into_owned()
            };
            templated = template(sel, &x).into_bytes();
            payload = &templated;
            0x1
        }
        _ => [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF][rng.below(10) as usize],
    };
    let fin = op & 8 == 0;
    let masked = op & 0x10 == 0;
    let rsv = op & 0x20 != 0;
    let declared = declared_lie.unwrap_or(payload.len() as u64);
    let mut bytes = vec![
        u8::from(fin) << 7 | u8::from(rsv) << 6 | opcode,
        u8::from(masked) << 7,
    ];
    match declared {
        0..=125 => bytes[1] |= declared as u8,
        126..=0xFFFF => {
            bytes[1] |= 126;
            bytes.extend_from_slice(&(declared as u16).to_be_bytes());
        }
        _ => {
            bytes[1] |= 127;
            bytes.extend_from_slice(&declared.to_be_bytes());
        }
    }
    let key = (rng.next_u64() as u32).to_be_bytes();
    if masked {
        bytes.extend_from_slice(&key);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        bytes.extend_from_slice(payload);
    }
    let control = opcode >= 8;
    let violation = !masked
        || rsv
        || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 0xA)
        || (control && (!fin || declared > 125));
    let frame = ClientFrame {
        bytes,
        violation,
        whole: declared == payload.len() as u64,
        declared,
        opcode,
        fin,
        payload: payload.to_vec(),
    };
    Some((frame, op & 0x80 != 0))
}

/// A WebSocket session on the signaling port: upgrade, then client frames built from the input
/// (after a flags byte: bit 0 = `auth_token` set, bit 1 = `allowed_hosts` set, bit 2 = camera
/// connections fail at once, bit 3 = clock steps up to 20 s instead of < 1 s, bit 4 =
/// `viewer_token_secret` too; a template's text `VIEWER` is then a viewer token for `lobby`), fed to
/// `Web::received` whole or in two pieces, with the gateway's output routed back through
/// `send_text`/`close_session`. Checks: every server frame is well-formed (unmasked, FIN, no RSV,
/// known opcode, text is UTF-8, nothing after its Close); protocol violations and frames or
/// messages over `max_ws_message` close the session; no server message holds a camera password;
/// with viewer tokens, a session that never sent the admin token gets a stream going (PENDING,
/// PLAYING, an SDP answer) only for `lobby` and only after sending the viewer token.
pub fn websocket(data: &[u8]) {
    let Some((&flags, mut r)) = data.split_first() else {
        return;
    };
    let viewers = flags & 16 != 0;
    let mut c = config(flags & 1 != 0 || viewers, flags & 2 != 0);
    if viewers {
        c.viewer_token_secret = Some(VIEWER_SECRET.into());
    }
    let mut rig = Rig::new(&c, u64::from(flags));
    rig.lose_cameras = flags & 4 != 0;
    let max_step = if flags & 8 != 0 { 20_000 } else { 1_000 };
    let mut rng = seeded_rng(u64::from(flags) ^ data.len() as u64);
    let conn = rig.accept(ListenerKind::WebSocket);
    rig.feed(conn, UPGRADE.as_bytes());
    assert!(rig.is_upgraded(conn), "the upgrade was refused");
    // The client's frames are still in step with what the server parses (no length lie yet).
    let mut in_step = true;
    // Bytes of the fragmented message in progress, by the rig's count.
    let mut message: Option<u64> = None;
    // Payloads of data frames, in order (a message's fragments are contiguous here), and
    // whether a length lie let the server parse bytes the rig did not mean as frames.
    let mut data_payloads = Vec::new();
    let mut desynced = false;
    while let Some((frame, drive)) = client_frame(&mut r, &mut rng) {
        if frame.opcode <= 2 {
            data_payloads.extend_from_slice(&frame.payload);
        }
        desynced |= !frame.whole;
        if rig.is_dropped(conn) {
            break;
        }
        let was_closed = rig.is_closed(conn);
        let cut = rng.below(frame.bytes.len() as u64 + 1) as usize;
        let (p1, p2) = frame
            .bytes
            .split_at(if rng.below(4) == 0 { cut } else { 0 });
        if !p1.is_empty() {
            rig.feed(conn, p1);
        }
        rig.feed(conn, p2);
        let too_big = frame.declared > rig.max_ws_message as u64;
        // The message this frame adds to, by RFC 6455 5.4 (only while nothing went wrong).
        let mut over = false;
        let mut broken = frame.violation;
        if frame.opcode < 8 {
            match (message, frame.opcode) {
                (Some(n), 0) => {
                    over = n + frame.declared > rig.max_ws_message as u64;
                    message = (!frame.fin).then_some(n + frame.declared);
                }
                (None, 1 | 2) => message = (!frame.fin).then_some(frame.declared),
                _ => broken = true, // continuation without a start, or a start inside one
            }
        }
        if in_step && !was_closed {
            // Size is checked on the header; the rest once the frame is whole.
            if frame.violation && frame.whole || too_big {
                assert!(
                    rig.is_closed(conn),
                    "a {} client frame (opcode {:#x}, declared {} bytes) left the session open",
                    if too_big { "too big" } else { "malformed" },
                    frame.opcode,
                    frame.declared
                );
            }
            if over && !broken {
                assert!(
                    rig.is_closed(conn),
                    "a fragmented message over max_ws_message left the session open"
                );
            }
        }
        if !frame.whole || broken || frame.opcode == 8 {
            in_step = false;
        }
        if drive {
            rig.advance(Duration::from_millis(rng.below(max_step)));
        }
    }
    rig.advance(Duration::from_millis(rng.below(max_step)));
    rig.check_no_secret(data);
    // With `auth_token`, a session that never sent the token gets nothing but the gateway's
    // pings: no getUserData, no stream status, no SDP.
    let has = |s: &[u8]| data_payloads.windows(s.len()).any(|w| w == s);
    if flags & 1 != 0 && !viewers && !desynced && !has(TOKEN.as_bytes()) && !has(b"\\u") {
        for text in rig.texts(conn) {
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(
                v["message"], "ping",
                "a session without the auth token got {text}"
            );
        }
    }
    if viewers && !desynced && !has(TOKEN.as_bytes()) && !has(b"\\u") {
        let sent_viewer_token = has(lobby_viewer_token().as_bytes());
        for text in rig.texts(conn) {
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            let first = &v["data"][0];
            let going = match v["message"].as_str() {
                Some("setRemoteSDP") => true,
                Some("notifyStreamStatusEvent") => {
                    matches!(first["status"].as_str(), Some("PENDING" | "PLAYING"))
                }
                _ => false,
            };
            if going {
                assert!(sent_viewer_token, "no token, yet {text}");
                if v["message"] == "notifyStreamStatusEvent" {
                    assert_eq!(first["name"], "lobby", "the lobby token played {text}");
                }
            }
        }
    }
    rig.drop_all();
}

// ---------------------------------------------------------------------------------------------
// rest_body

/// The paths of the `rest_body` target (`{S}`: the last WHEP session id, or fuzz text).
const REST_PATHS: [&str; 16] = [
    "/rest-api/rtsp/startup",
    "/rest-api/rtsp/find_all",
    "/rest-api/rtsp/find",
    "/rest-api/rtsp/terminate",
    "/api/streams",
    "/whep/lobby",
    "/whep/rtsp%3A%2F%2Fadmin%3Asecretpw%40127.0.0.1%2Fcam",
    "/whep/session/{S}",
    "/metrics",
    "/rest-api/rtsp/startup/",
    "/",
    "/rest-api/rtsp/other",
    "/whep/",
    "/rest-api/rtsp/find_all?x=1",
    "/whep/rtsp%3A%2F%2Fadmin%3Asecretpw%40203.0.113.9%2Fcam",
    "/api/streams/",
];
const METHODS: [&str; 8] = [
    "POST", "GET", "DELETE", "PATCH", "OPTIONS", "PUT", "POST", "GET",
];

/// Statuses docs/API.md documents for a request (after CORS preflight and the bearer check).
fn documented(method: &str, route: &str) -> &'static [u16] {
    let rest = route.trim_end_matches('/');
    match (method, rest) {
        ("POST", "/rest-api/rtsp/startup") => &[200, 400, 403, 409, 503],
        ("GET" | "POST", "/rest-api/rtsp/find_all") => &[200, 404],
        ("POST", "/rest-api/rtsp/find") => &[200, 400, 403, 404],
        ("POST", "/rest-api/rtsp/terminate") => &[200, 400, 403, 404],
        (
            _,
            "/rest-api/rtsp/startup"
            | "/rest-api/rtsp/find_all"
            | "/rest-api/rtsp/find"
            | "/rest-api/rtsp/terminate",
        ) => &[405],
        (_, r) if r.starts_with("/rest-api/") => &[404],
        ("GET", "/api/streams") if route == "/api/streams" => &[200],
        ("GET", "/metrics") => &[200],
        ("DELETE", _) if route.starts_with("/whep/session/") => &[200, 404],
        ("POST", _) if route.starts_with("/whep/") && !route.starts_with("/whep/session/") => {
            &[201, 400, 403, 404, 413, 415, 502]
        }
        (_, _) if route.starts_with("/whep/") => &[405],
        ("GET", "" | "/index.html") => &[200],
        ("GET", _) => &[404],
        _ => &[405],
    }
}

/// Whether a route is one of the APIs (token-protected, errors in JSON).
fn is_api(route: &str) -> bool {
    route.starts_with("/rest-api/")
        || route.starts_with("/whep/")
        || route == "/api/streams"
        || route == "/metrics"
}

/// A series of API requests, one per connection, on one gateway. After a flags byte (bit 0:
/// `auth_token` set, bit 1: `allowed_hosts` set, bit 2: camera connections fail at once, bit 3:
/// `viewer_token_secret` set too, and `hdr` bits 0+1 together send a viewer token for `lobby`:
/// admin-only calls answer exactly 403 to it, WHEP never 401, and a WHEP play of anything but
/// `lobby` 403 or 404), each
/// record is `sel` (bits 0-3: path, bits 4-6: method), `hdr` (bit 0: the right bearer token,
/// bit 1: a wrong one, bit 2: `Content-Type: application/sdp`, bits 3-4: body = raw, `{"uri":
/// URL with a password and the text as host/path}`, `{"uri": text}`, an SDP offer; bit 5:
/// time passes afterwards), `len: u16 LE`, the text. Checks: every answer's status is one
/// docs/API.md gives for the call, API answers other than the documented non-JSON ones are JSON
/// (errors `{"status": CODE, "error": "..."}`, lists arrays), and no answer carries a camera
/// password.
pub fn rest_body(data: &[u8]) {
    let Some((&flags, mut r)) = data.split_first() else {
        return;
    };
    let viewers = flags & 8 != 0;
    let auth = flags & 1 != 0 || viewers;
    let mut c = config(auth, flags & 2 != 0);
    if viewers {
        c.viewer_token_secret = Some(VIEWER_SECRET.into());
    }
    let mut rig = Rig::new(&c, u64::from(flags));
    rig.lose_cameras = flags & 4 != 0;
    let mut rng = seeded_rng(u64::from(flags) << 3 ^ data.len() as u64);
    let mut whep_id = String::from("0123456789abcdef0123456789abcdef");
    let mut sent: Vec<(ConnId, String, String, Cred)> = Vec::new();
    // Valid for a day on the server's wall clock.
    let viewer_token = camgate_core::viewer_token::ViewerTokenKey::new(VIEWER_SECRET.as_bytes())
        .mint("lobby", camgate::ice::unix_now() + 86_400);
    while let [sel, hdr, l0, l1, rest @ ..] = r {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(rest.len());
        let (text, rest) = rest.split_at(len);
        r = rest;
        let path = REST_PATHS[usize::from(sel & 15)].replace("{S}", &whep_id);
        let method = METHODS[usize::from(sel >> 4 & 7)];
        let text_s = String::from_utf8_lossy(text);
        let body: Vec<u8> = match hdr >> 3 & 3 {
            0 => text.to_vec(),
            1 => format!(
                r#"{{"uri":"rtsp://admin:secretpw@{}"}}"#,
                json_escape(&text_s)
            )
            .into_bytes(),
            2 => format!(r#"{{"uri":"{}"}}"#, json_escape(&text_s)).into_bytes(),
            _ => {
                let mut o = OFFER_SDP.replace("\\r\\n", "\r\n").into_bytes();
                o.extend_from_slice(text);
                o
            }
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n");
        let cred = match hdr & 3 {
            3 if viewers => Cred::Viewer,
            _ if !auth || hdr & 1 != 0 => Cred::Admin,
            _ => Cred::None,
        };
        match hdr & 3 {
            3 if viewers => req.push_str(&format!("Authorization: Bearer {viewer_token}\r\n")),
            1 | 3 => req.push_str(&format!("Authorization: Bearer {TOKEN}\r\n")),
            2 => req.push_str("Authorization: Bearer wrong\r\n"),
            _ => {}
        }
        if hdr & 4 != 0 {
            req.push_str("Content-Type: application/sdp\r\n");
        } else if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&body);
        let conn = rig.accept(ListenerKind::Http);
        rig.feed(conn, &bytes);
        sent.push((conn, method.to_owned(), path.clone(), cred));
        if hdr & 0x20 != 0 {
            rig.advance(Duration::from_millis(rng.below(5_000)));
        }
        if let Some(loc) = rig.response(conn).and_then(|x| x.header("location")) {
            if let Some(id) = loc.strip_prefix("/whep/session/") {
                whep_id = id.to_owned();
            }
        }
        if let Some(resp) = rig.response(conn).cloned() {
            check_rest_answer(&resp, method, &path, cred);
        }
    }
    // WHEP answers that waited for the gateway.
    for _ in 0..3 {
        rig.advance(Duration::from_secs(7));
    }
    for (conn, method, path, cred) in &sent {
        if let Some(resp) = rig.response(*conn).cloned() {
            check_rest_answer(&resp, method, path, *cred);
        }
    }
    rig.check_no_secret(data);
    rig.drop_all();
}

/// The `viewer_token_secret` of the `rest_body` configurations with viewer tokens.
pub const VIEWER_SECRET: &str = "fuzz-viewer-secret-0123456789abcdef";

/// What a `rest_body` request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    /// The admin token (or no access control at all).
    Admin,
    /// A valid viewer token for `lobby`.
    Viewer,
    /// No token, or a wrong one.
    None,
}

fn check_rest_answer(resp: &Response, method: &str, path: &str, cred: Cred) {
    let route = path.split_once('?').map_or(path, |(r, _)| r);
    let ctype = resp.header("content-type").unwrap_or("");
    let what = format!("{method} {path} → {}", resp.status);
    if method == "OPTIONS" {
        assert_eq!(resp.status, 204, "{what}: CORS preflight");
        return;
    }
    let authorized = cred == Cred::Admin;
    let mut viewer_refused = false;
    if cred == Cred::Viewer && is_api(route) {
        assert_ne!(
            resp.status, 401,
            "{what}: a valid viewer token is authenticated"
        );
        let whep_play =
            method == "POST" && route.starts_with("/whep/") && !route.starts_with("/whep/session/");
        if !route.starts_with("/whep/") {
            assert_eq!(
                resp.status, 403,
                "{what}: an admin-only call with a viewer token"
            );
        } else if whep_play && route != "/whep/lobby" {
            assert!(
                [403, 404].contains(&resp.status),
                "{what}: a viewer token for lobby plays another stream"
            );
        }
        viewer_refused = resp.status == 403;
    }
    if is_api(route) && cred == Cred::None {
        assert_eq!(resp.status, 401, "{what}: an API call without the token");
    }
    if resp.status == 401 {
        assert!(is_api(route) && !authorized, "{what}: 401 without a reason");
        assert!(
            resp.header("www-authenticate") == Some("Bearer"),
            "{what}: no WWW-Authenticate"
        );
    } else if !viewer_refused {
        let allowed = documented(method, route);
        assert!(
            allowed.contains(&resp.status),
            "{what}: not one of the documented {allowed:?}"
        );
    }
    let json_expected = is_api(route)
        && !(route == "/metrics" && resp.status == 200)
        && !(route.starts_with("/whep/")
            && (resp.status == 201 || method == "DELETE" && resp.status == 200));
    if json_expected {
        assert!(
            ctype.starts_with("application/json"),
            "{what}: Content-Type {ctype:?}, not JSON"
        );
    }
    if ctype.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e})"));
        if resp.status >= 400 {
            assert_eq!(
                v["status"].as_u64(),
                Some(u64::from(resp.status)),
                "{what}: error body {v}"
            );
            assert!(v["error"].is_string(), "{what}: error body {v}");
        } else if route.ends_with("find_all")
            || route.ends_with("/find")
            || route.starts_with("/api/streams")
        {
            let items = v
                .as_array()
                .unwrap_or_else(|| panic!("{what}: not a list: {v}"));
            for item in items {
                assert!(
                    item["uri"].is_string() && item["status"].is_string(),
                    "{what}: item {item}"
                );
            }
        } else if route.trim_end_matches('/') == "/rest-api/rtsp/startup" {
            assert!(
                v["uri"].is_string() && v["status"] == "PENDING",
                "{what}: {v}"
            );
        }
    }
    if resp.status == 201 {
        assert!(ctype == "application/sdp", "{what}: Content-Type {ctype:?}");
        assert!(
            resp.header("location")
                .is_some_and(|l| l.starts_with("/whep/session/")),
            "{what}: no Location"
        );
    }
}
