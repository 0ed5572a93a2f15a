//! The web side of camgate: the player page, the REST/metrics/WHEP APIs, and WebSocket
//! signaling, over plain TCP or TLS.
//!
//! The event loop hands us bytes per connection. On the TLS listeners those bytes go through a
//! sans-IO rustls `ServerConnection` first, so everything below it is the same for both. A
//! connection starts as HTTP; a request with `Upgrade: websocket` turns it into a signaling
//! session whose frames tungstenite decodes from an in-memory buffer (so tungstenite never
//! touches a socket and never blocks the loop).
//!
//! Handlers write plaintext into [`Out`]; [`Web::commit`] then encrypts what belongs to TLS
//! connections before it reaches the loop.
//!
//! WHEP sessions are gateway signaling sessions with no WebSocket: the server speaks the SDK
//! protocol to the gateway on the client's behalf and turns the answer into the HTTP response.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use camgate_core::hub::{Gateway, SessionId};
use camgate_core::signaling::{self, StreamStatus};
use camgate_io::{ConnId, ListenerKind, WebApp, WebIo};
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tungstenite::Message;

use crate::access::{Access, Refusal};
use crate::{metrics, rest};

/// Bytes tungstenite reads at a time into each WebSocket's buffer (allocated per connection).
const WS_READ_BUFFER: usize = 4096;

/// Largest HTTP request head we accept; bigger ones are answered 431 and closed.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

const INDEX_HTML: &str = include_str!("../static/index.html");
const CAMGATE_JS: &str = include_str!("../static/camgate.js");
const PLAYER_CSS: &str = include_str!("../static/player.css");

/// Bytes in from the socket, bytes out to it: the "stream" tungstenite works on.
#[derive(Default)]
struct MemStream {
    input: Vec<u8>,
    read_pos: usize,
    output: Vec<u8>,
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = &self.input[self.read_pos..];
        if available.is_empty() {
            self.input.clear();
            self.read_pos = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.read_pos += n;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plaintext writes and closes, encrypted (where needed) by `Web::commit`.
#[derive(Default)]
struct Out {
    writes: Vec<(ConnId, Vec<u8>)>,
    closes: Vec<ConnId>,
}

impl Out {
    fn write(&mut self, conn: ConnId, data: Vec<u8>) {
        self.writes.push((conn, data));
    }
    fn close(&mut self, conn: ConnId) {
        self.closes.push(conn);
    }
    /// Writes a complete response and closes: one request per connection keeps this simple.
    fn respond(&mut self, conn: ConnId, r: Response) {
        self.write(conn, r.into_bytes());
        self.close(conn);
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    fn json(status: u16, value: &Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }
    fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({"status": status, "error": message}))
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn into_bytes(self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Payload Too Large",
            415 => "Unsupported Media Type",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            502 => "Bad Gateway",
            504 => "Gateway Timeout",
            _ => "Error",
        };
        // CORS: WHEP players and dashboards live on other origins; the bearer token is never
        // an ambient credential, so `*` gives nothing away.
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\n\
             Access-Control-Expose-Headers: Location\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

struct WsConn {
    ws: WebSocket<MemStream>,
    /// A valid `authToken` came in the `connection` message (or none is required).
    authed: bool,
    /// mediaSessionId → the stream name the browser asked for, for streams played by name:
    /// statuses going back carry this name instead of the camera URL.
    names: HashMap<String, String>,
}

enum State {
    Http {
        head: Vec<u8>,
        /// Once the head is complete: the length head + body must reach before the request
        /// is parsed again.
        wait_for: Option<usize>,
    },
    Ws(Box<WsConn>),
    /// A WHEP offer is with the gateway; the response goes out when it answers.
    WhepWait,
    /// The response is out; anything more from the client is ignored.
    Done,
}

struct Conn {
    tls: Option<Box<rustls::ServerConnection>>,
    state: State,
    /// When the connection opened: a request (or TLS handshake) still incomplete after
    /// `REQUEST_TIMEOUT` is a slow or idle client holding a slot, and is closed.
    opened: Instant,
    /// We asked the loop to close it. The loop may still be flushing (and reading) for a
    /// while before `closed`; nothing more goes out meanwhile: no signaling (the gateway's
    /// pings and statuses for a WebSocket dropped on a protocol error went out after the
    /// close, found by the `websocket` fuzz target), no answer to late bytes.
    closing: bool,
}

/// Time a client gets to send a complete HTTP request (or WebSocket upgrade) after connecting.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Whep {
    /// The public id in `/whep/session/{id}`: random, so sessions can't be guessed.
    id: String,
    /// The HTTP request waiting for the answer (until it is sent).
    pending: Option<ConnId>,
    /// What the client asked for, for logs (a name, or a masked URL).
    shown: String,
}

/// What the web side is configured with.
pub struct WebSettings {
    pub default_url: String,
    pub max_ws_message: usize,
    pub max_http_body: usize,
    pub access: Access,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct Web {
    conns: HashMap<ConnId, Conn>,
    settings: WebSettings,
    wheps: HashMap<SessionId, Whep>,
    whep_ids: HashMap<String, SessionId>,
    next_whep: u64,
    rng: ring::rand::SystemRandom,
}

impl Web {
    pub fn new(settings: WebSettings) -> Self {
        Self {
            conns: HashMap::new(),
            settings,
            wheps: HashMap::new(),
            whep_ids: HashMap::new(),
            next_whep: 0,
            rng: ring::rand::SystemRandom::new(),
        }
    }

    /// Hands plaintext to the loop, through TLS for TLS connections.
    fn commit(&mut self, out: Out, io: &mut WebIo) {
        for (conn, data) in out.writes {
            match self.conns.get_mut(&conn).and_then(|c| c.tls.as_mut()) {
                Some(tls) => {
                    if tls.writer().write_all(&data).is_err() {
                        io.close(conn);
                    }
                    flush_tls(tls, conn, io);
                }
                None => io.write(conn, data),
            }
        }
        for conn in out.closes {
            if let Some(tls) = self.conns.get_mut(&conn).and_then(|c| c.tls.as_mut()) {
                tls.send_close_notify();
                flush_tls(tls, conn, io);
            }
            if let Some(c) = self.conns.get_mut(&conn) {
                if let State::Http { .. } = c.state {
                    c.state = State::Done;
                }
                c.closing = true;
            }
            io.close(conn);
        }
    }

    /// Decrypted (or plain) bytes from a client.
    fn on_plain(
        &mut self,
        conn: ConnId,
        data: &[u8],
        now: Instant,
        gateway: &mut Gateway,
        out: &mut Out,
    ) {
        match self.conns.get_mut(&conn).map(|c| &mut c.state) {
            Some(State::Http { head, wait_for }) => {
                head.extend_from_slice(data);
                // httparse skips empty lines before a request; drop them here so that a
                // stream of newlines is not rescanned on every read.
                let blank = head
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                head.drain(..blank);
                // Parse again only when that can change the answer: a line ended (the head
                // is still incomplete), the body is all there, or the head is over its limit.
                // Parsing the whole buffer on every read let a client trickling one byte per
                // segment cost the loop O(n²): ~1 s of CPU per 16 KiB of head, and a 16 KiB
                // head times a 64 KiB body when trickling the body (found by the slow
                // `http_request` fuzz inputs; test `trickled_request_costs_linear_time`).
                let ready = match *wait_for {
                    Some(total) => head.len() >= total,
                    None => data.contains(&b'\n') || head.len() > MAX_REQUEST_HEAD,
                };
                if ready {
                    self.handle_http(conn, now, gateway, out);
                }
            }
            Some(State::Ws(ws)) => {
                ws.ws.get_mut().input.extend_from_slice(data);
                self.handle_ws(conn, now, gateway, out);
            }
            _ => {}
        }
    }

    fn handle_http(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway, out: &mut Out) {
        let Some(State::Http { head, .. }) = self.conns.get_mut(&conn).map(|c| &mut c.state) else {
            return;
        };
        let head = std::mem::take(head);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&head) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if head.len() <= MAX_REQUEST_HEAD => {
                return self.keep_head(conn, head, None);
            }
            Ok(httparse::Status::Partial) => {
                let r = Response::new(431, "text/plain", "request header too large");
                return out.respond(conn, r);
            }
            Err(e) => {
                let r = Response::new(400, "text/plain", format!("bad request: {e}"));
                return out.respond(conn, r);
            }
        };
        let (method, path) = (req.method.unwrap_or(""), req.path.unwrap_or("/"));
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let content_length = header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if content_length > self.settings.max_http_body {
            return out.respond(conn, Response::error(413, "request body too large"));
        }
        if head.len() < head_len + content_length {
            // The body is still arriving.
            return self.keep_head(conn, head, Some(head_len + content_length));
        }
        let body = &head[head_len..head_len + content_length];
        let is_upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
        if is_upgrade {
            let Some(key) = header("sec-websocket-key") else {
                let r = Response::new(400, "text/plain", "missing Sec-WebSocket-Key");
                return out.respond(conn, r);
            };
            let accept = tungstenite::handshake::derive_accept_key(key);
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            out.write(conn, response.into_bytes());
            let max = self.settings.max_ws_message;
            // tungstenite allocates its read buffer up front, 128 KiB by default: that was a
            // fifth of a viewer's memory. Signaling messages are a few KiB (an SDP offer is
            // the largest); a longer one takes a few more reads from memory.
            let config = WebSocketConfig::default()
                .read_buffer_size(WS_READ_BUFFER)
                .max_message_size(Some(max))
                .max_frame_size(Some(max));
            let ws = WebSocket::from_raw_socket(MemStream::default(), Role::Server, Some(config));
            let authed = self.settings.access.token.is_none();
            if let Some(c) = self.conns.get_mut(&conn) {
                c.state = State::Ws(Box::new(WsConn {
                    ws,
                    authed,
                    names: HashMap::new(),
                }));
            }
            gateway.handle_session_opened(conn.session(), now);
            // Frames may have come in the same read as the request.
            let rest = head[head_len + content_length..].to_vec();
            if !rest.is_empty() {
                self.on_plain(conn, &rest, now, gateway, out);
            }
            return;
        }
        let (route, _query) = path.split_once('?').unwrap_or((path, ""));
        let authorized = self.settings.access.bearer_ok(header("authorization"));
        let is_api = route.starts_with("/rest-api/")
            || route.starts_with("/whep/")
            || route == "/api/streams"
            || route == "/metrics";
        if method == "OPTIONS" {
            // CORS preflight: answered without the token, which the real request must carry.
            let r = Response::new(204, "text/plain", "")
                .header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
                .header(
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type",
                )
                .header("Access-Control-Max-Age", "600");
            return out.respond(conn, r);
        }
        if is_api && !authorized {
            tracing::info!(conn = conn.0, %route, "API call refused: missing or wrong bearer token");
            let r = Response::error(401, "missing or wrong bearer token")
                .header("WWW-Authenticate", "Bearer");
            return out.respond(conn, r);
        }
        let r = match (method, route) {
            ("GET", "/") | ("GET", "/index.html") => {
                let page =
                    INDEX_HTML.replace("{{DEFAULT_URL}}", &html_escape(&self.settings.default_url));
                Response::new(200, "text/html; charset=utf-8", page)
            }
            ("GET", "/camgate.js") => {
                Response::new(200, "text/javascript; charset=utf-8", CAMGATE_JS)
            }
            ("GET", "/player.css") => Response::new(200, "text/css; charset=utf-8", PLAYER_CSS),
            ("GET", "/api/streams") => {
                let access = &self.settings.access;
                let list: Vec<_> = gateway
                    .streams()
                    .into_iter()
                    .map(|s| {
                        let uri = access.name_of(&s.url).unwrap_or(&s.url);
                        json!({"id": s.id.0, "uri": uri, "status": s.status(),
                            "viewers": s.viewers, "pinned": s.pinned, "info": s.info,
                            "dropped_tracks": s.dropped_tracks})
                    })
                    .collect();
                Response::json(200, &Value::from(list))
            }
            ("GET", "/metrics") => {
                let sessions = self
                    .conns
                    .values()
                    .filter(|c| matches!(c.state, State::Ws(_)))
                    .count()
                    + self.wheps.len();
                let text = metrics::render(&gateway.streams(), &gateway.stats(), sessions);
                Response::new(200, metrics::CONTENT_TYPE, text)
            }
            (_, route) if route.starts_with("/rest-api/") => {
                let (status, json) =
                    rest::handle(method, route, body, gateway, &self.settings.access, now);
                Response::json(status, &json)
            }
            ("DELETE", route) if route.starts_with("/whep/session/") => {
                let id = &route["/whep/session/".len()..];
                self.whep_delete(id, now, gateway)
            }
            ("POST", route)
                if route.starts_with("/whep/") && !route.starts_with("/whep/session/") =>
            {
                let stream = &route["/whep/".len()..];
                let sdp_type = header("content-type").is_some_and(|v| {
                    v.get(..15)
                        .is_some_and(|t| t.eq_ignore_ascii_case(b"application/sdp"))
                });
                if !sdp_type {
                    Response::error(415, "a WHEP offer is Content-Type: application/sdp")
                } else {
                    match self.whep_offer(conn, stream, body, now, gateway) {
                        Some(r) => r,
                        None => return, // answered when the gateway has the answer
                    }
                }
            }
            (_, route) if route.starts_with("/whep/") => {
                // Trickle ICE (PATCH) is optional in WHEP; our answer has every candidate.
                Response::error(405, "method not allowed").header("Allow", "POST, DELETE")
            }
            // API errors are JSON (docs/API.md), a wrong method too: `POST /api/streams` and
            // `POST /metrics` got text/plain (found by the `rest_body` fuzz target).
            _ if is_api => Response::error(405, "method not allowed"),
            ("GET", _) => Response::new(404, "text/plain", "not found"),
            _ => Response::new(405, "text/plain", "method not allowed"),
        };
        out.respond(conn, r);
    }

    fn keep_head(&mut self, conn: ConnId, head: Vec<u8>, wait_for: Option<usize>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = State::Http { head, wait_for };
        }
    }

    fn handle_ws(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway, out: &mut Out) {
        let access = &self.settings.access;
        let Some(State::Ws(wsc)) = self.conns.get_mut(&conn).map(|c| &mut c.state) else {
            return;
        };
        loop {
            match wsc.ws.read() {
                Ok(Message::Text(text)) => {
                    match inbound(wsc, access, conn, text.as_str()) {
                        Inbound::Forward(text) => {
                            gateway.handle_session_message(conn.session(), now, &text)
                        }
                        Inbound::Reply(text) => {
                            let _ = wsc.ws.send(Message::text(text));
                        }
                        Inbound::Refuse => {
                            // The SDK fails the session when the socket closes before
                            // `getUserData`; 1008 says why to anyone looking.
                            let _ = wsc.ws.close(Some(CloseFrame {
                                code: CloseCode::Policy,
                                reason: "Unauthorized".into(),
                            }));
                            let _ = wsc.ws.flush();
                            take_output(&mut wsc.ws, conn, out);
                            out.close(conn);
                            return;
                        }
                    }
                }
                Ok(Message::Close(_)) => {
                    out.close(conn);
                    break;
                }
                Ok(_) => {} // binary, ping, pong: tungstenite answers pings itself
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::info!(conn = conn.0, "websocket error: {e}");
                    out.close(conn);
                    break;
                }
            }
        }
        let _ = wsc.ws.flush();
        take_output(&mut wsc.ws, conn, out);
    }

    // ---- WHEP ------------------------------------------------------------------------------

    /// Starts a WHEP session; `None` when the response waits for the gateway's answer.
    fn whep_offer(
        &mut self,
        conn: ConnId,
        stream: &str,
        offer: &[u8],
        now: Instant,
        gateway: &mut Gateway,
    ) -> Option<Response> {
        let requested = percent_decode(stream);
        if requested.is_empty() {
            return Some(Response::error(404, "no stream in the WHEP URL"));
        }
        let Ok(offer) = std::str::from_utf8(offer) else {
            return Some(Response::error(400, "the offer is not UTF-8"));
        };
        let access = &self.settings.access;
        if !access.is_named(&requested) && !requested.contains("://") {
            return Some(Response::error(404, "no such stream"));
        }
        let shown = if access.is_named(&requested) {
            requested.clone()
        } else {
            mask(&requested)
        };
        let uri = match access.resolve(&requested) {
            Ok(uri) => uri,
            Err(Refusal::Restricted) => {
                tracing::info!(stream = %shown, "WHEP play refused: host not in allowed_hosts");
                return Some(Response::error(403, "Restricted access"));
            }
        };
        let mut raw = [0u8; 16];
        if ring::rand::SecureRandom::fill(&self.rng, &mut raw).is_err() {
            return Some(Response::error(500, "no randomness"));
        }
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let session = SessionId::Whep(self.next_whep);
        self.next_whep += 1;
        tracing::info!(session = %session, stream = %shown, "WHEP offer");
        self.wheps.insert(
            session,
            Whep {
                id: id.clone(),
                pending: Some(conn),
                shown,
            },
        );
        self.whep_ids.insert(id.clone(), session);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = State::WhepWait;
        }
        gateway.handle_session_opened(session, now);
        let hello = json!({"message": "connection", "data": [{"appKey": "whep",
            "authToken": access.token}]});
        gateway.handle_session_message(session, now, &hello.to_string());
        let play = json!({"message": "playStream", "data": [{"mediaSessionId": id,
            "name": uri, "published": false, "hasVideo": true, "hasAudio": true,
            "status": "PENDING", "sdp": offer}]});
        gateway.handle_session_message(session, now, &play.to_string());
        None
    }

    fn whep_delete(&mut self, id: &str, now: Instant, gateway: &mut Gateway) -> Response {
        let Some(session) = self.whep_ids.get(id).copied() else {
            return Response::error(404, "no such WHEP session");
        };
        let stop = json!({"message": "stopStream", "data": [{"mediaSessionId": id}]});
        gateway.handle_session_message(session, now, &stop.to_string());
        self.whep_end(session, now, gateway, "deleted by the client");
        Response::new(200, "text/plain", "")
    }

    /// Forgets a WHEP session and releases its viewer in the gateway.
    fn whep_end(&mut self, session: SessionId, now: Instant, gateway: &mut Gateway, why: &str) {
        if let Some(w) = self.wheps.remove(&session) {
            self.whep_ids.remove(&w.id);
            tracing::info!(session = %session, stream = %w.shown, "WHEP session ended: {why}");
            gateway.handle_session_closed(session, now);
        }
    }

    /// The gateway's signaling for a WHEP session: the answer, failures, pings.
    fn whep_message(
        &mut self,
        session: SessionId,
        text: &str,
        now: Instant,
        gateway: &mut Gateway,
        out: &mut Out,
    ) {
        let Some(whep) = self.wheps.get_mut(&session) else {
            return;
        };
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let data = &value["data"];
        match value["message"].as_str().unwrap_or("") {
            "setRemoteSDP" => {
                let sdp = data[1].as_str().unwrap_or("").to_owned();
                if let Some(conn) = whep.pending.take() {
                    let location = format!("/whep/session/{}", whep.id);
                    let r = Response::new(201, "application/sdp", sdp).header("Location", location);
                    out.respond(conn, r);
                }
            }
            "notifyStreamStatusEvent" => {
                let status = data[0]["status"].as_str().unwrap_or("");
                if status != StreamStatus::Failed.as_str()
                    && status != StreamStatus::Stopped.as_str()
                {
                    return;
                }
                let info = data[0]["info"].as_str().unwrap_or(status).to_owned();
                if let Some(conn) = whep.pending.take() {
                    out.respond(conn, Response::error(whep_failure_status(&info), &info));
                }
                self.whep_end(session, now, gateway, &info);
            }
            "ping" => {
                // Nobody is behind this session to answer; the viewer's own ICE consent
                // checks tell when the player is gone.
                gateway.handle_session_message(session, now, r#"{"message":"pong","data":[null]}"#);
            }
            _ => {}
        }
    }
}

/// What to do with a signaling message from a browser.
enum Inbound {
    Forward(String),
    /// Answer the browser directly; the gateway never sees the message.
    Reply(String),
    /// Close the session (bad token).
    Refuse,
}

/// Applies access control and stream names to a browser's message before the gateway sees it.
fn inbound(wsc: &mut WsConn, access: &Access, conn: ConnId, text: &str) -> Inbound {
    // Only `connection` and `playStream` concern us; everything else passes untouched
    // (once the session is authenticated).
    let interesting = text.contains("\"connection\"") || text.contains("\"playStream\"");
    let mut value = match interesting.then(|| serde_json::from_str::<Value>(text)) {
        Some(Ok(v)) => v,
        _ if wsc.authed => return Inbound::Forward(text.to_owned()),
        _ => return Inbound::Refuse,
    };
    let message = value["message"].as_str().unwrap_or("").to_owned();
    if !wsc.authed {
        let token = value["data"][0]["authToken"].as_str();
        if message == "connection" && access.token_ok(token) {
            wsc.authed = true;
            return Inbound::Forward(text.to_owned());
        }
        tracing::info!(
            conn = conn.0,
            "signaling session refused: missing or wrong authToken"
        );
        return Inbound::Refuse;
    }
    if message != "playStream" {
        return Inbound::Forward(text.to_owned());
    }
    // `get_mut`, not `value["data"][0]`: serde_json's `IndexMut` panics on a missing index, and
    // `{"message":"playStream","data":[]}` took the whole server down (found reviewing the
    // `websocket` fuzz target; test `ws_play_stream_without_data`).
    let Some(first) = value.get_mut("data").and_then(|d| d.get_mut(0)) else {
        return Inbound::Forward(text.to_owned()); // malformed: the gateway says why
    };
    let (Some(name), Some(msid)) = (first["name"].as_str(), first["mediaSessionId"].as_str())
    else {
        return Inbound::Forward(text.to_owned()); // malformed: the gateway says why
    };
    let (name, msid) = (name.to_owned(), msid.to_owned());
    match access.resolve(&name) {
        Ok(uri) if uri == name => Inbound::Forward(text.to_owned()),
        Ok(uri) => {
            tracing::info!(conn = conn.0, stream = %name, "playing a named stream");
            wsc.names.insert(msid, name);
            first["name"] = Value::from(uri);
            Inbound::Forward(value.to_string())
        }
        Err(Refusal::Restricted) => {
            tracing::info!(conn = conn.0, url = %mask(&name), "play refused: host not in allowed_hosts");
            Inbound::Reply(signaling::stream_status(
                &msid,
                &mask(&name),
                StreamStatus::Failed,
                Some("Restricted access"),
            ))
        }
    }
}

/// Statuses for a browser that played by name carry the name, never the camera URL.
fn outbound(wsc: &mut WsConn, text: &str) -> Option<String> {
    if wsc.names.is_empty() || !text.contains("notifyStreamStatusEvent") {
        return None;
    }
    let mut value: Value = serde_json::from_str(text).ok()?;
    let first = value.get_mut("data")?.get_mut(0)?; // no `IndexMut`: it panics (see `inbound`)
    let msid = first["mediaSessionId"].as_str()?;
    let name = wsc.names.get(msid)?.clone();
    let status = first["status"].as_str().unwrap_or("");
    if status == "FAILED" || status == "STOPPED" {
        wsc.names.remove(msid);
    }
    first["name"] = Value::from(name);
    Some(value.to_string())
}

/// The HTTP status a failed WHEP play is answered with.
fn whep_failure_status(info: &str) -> u16 {
    if info.starts_with("Bad URI") {
        400
    } else if info == "Restricted access" {
        403
    } else if info.contains("not found") || info.starts_with("404") {
        404
    } else {
        // The camera failed (unreachable, 401 from it, no H.264): our upstream's fault.
        502
    }
}

fn take_output(ws: &mut WebSocket<MemStream>, conn: ConnId, out: &mut Out) {
    let buf = &mut ws.get_mut().output;
    if !buf.is_empty() {
        out.write(conn, std::mem::take(buf));
    }
}

fn flush_tls(tls: &mut rustls::ServerConnection, conn: ConnId, io: &mut WebIo) {
    while tls.wants_write() {
        let mut buf = Vec::new();
        match tls.write_tls(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => io.write(conn, buf),
        }
    }
}

impl WebApp for Web {
    fn accepted(&mut self, conn: ConnId, kind: ListenerKind, peer: SocketAddr, now: Instant) {
        tracing::debug!(conn = conn.0, ?kind, %peer, "web client connected");
        let tls = if kind.is_tls() {
            let Some(config) = self.settings.tls.clone() else {
                return; // unreachable: TLS listeners exist only with a TLS config
            };
            match rustls::ServerConnection::new(config) {
                Ok(c) => Some(Box::new(c)),
                Err(e) => {
                    tracing::warn!("tls: {e}");
                    return;
                }
            }
        } else {
            None
        };
        let state = State::Http {
            head: Vec::new(),
            wait_for: None,
        };
        self.conns.insert(
            conn,
            Conn {
                tls,
                state,
                opened: now,
                closing: false,
            },
        );
    }

    fn tick(&mut self, now: Instant, io: &mut WebIo) {
        for (id, c) in &mut self.conns {
            let waiting = matches!(c.state, State::Http { .. }) && !c.closing;
            if waiting && now.saturating_duration_since(c.opened) > REQUEST_TIMEOUT {
                c.closing = true;
                tracing::info!(
                    conn = id.0,
                    "closing a client that sent no complete request in {REQUEST_TIMEOUT:?}"
                );
                io.close(*id);
            }
        }
    }

    fn received(
        &mut self,
        conn: ConnId,
        data: &[u8],
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    ) {
        let mut out = Out::default();
        let Some(c) = self.conns.get_mut(&conn) else {
            io.close(conn);
            return;
        };
        if c.closing {
            return; // late bytes from a client we are closing
        }
        match c.tls.as_mut() {
            None => self.on_plain(conn, data, now, gateway, &mut out),
            Some(tls) => {
                let mut plain = Vec::new();
                let mut failed = false;
                let mut rd = data;
                while !rd.is_empty() && !failed {
                    match tls.read_tls(&mut rd) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(_) => failed = true,
                    }
                    if let Err(e) = tls.process_new_packets() {
                        // Usually a browser refusing the self-signed certificate.
                        tracing::debug!(conn = conn.0, "tls: {e}");
                        failed = true;
                    }
                    // Drain plaintext as we go so rustls's buffer never fills up.
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        match tls.reader().read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => plain.extend_from_slice(&buf[..n]),
                            Err(_) => break, // WouldBlock: nothing more yet
                        }
                    }
                }
                flush_tls(tls, conn, io);
                if failed {
                    io.close(conn);
                    return;
                }
                if !plain.is_empty() {
                    self.on_plain(conn, &plain, now, gateway, &mut out);
                }
            }
        }
        self.commit(out, io);
    }

    fn closed(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway) {
        match self.conns.remove(&conn).map(|c| c.state) {
            Some(State::Ws(_)) => gateway.handle_session_closed(conn.session(), now),
            Some(State::WhepWait) => {
                // The client gave up before the answer: nothing will ever play.
                let waiting = self
                    .wheps
                    .iter()
                    .find(|(_, w)| w.pending == Some(conn))
                    .map(|(s, _)| *s);
                if let Some(session) = waiting {
                    self.whep_end(session, now, gateway, "client left before the answer");
                }
            }
            _ => {}
        }
    }

    fn send_text(
        &mut self,
        session: SessionId,
        text: &str,
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    ) {
        let mut out = Out::default();
        match session {
            SessionId::Whep(_) => self.whep_message(session, text, now, gateway, &mut out),
            // Remote sessions are the gateway's (their messages go to the worker of origin).
            SessionId::Remote(_) => {}
            SessionId::WebSocket(conn) => {
                let Some(State::Ws(wsc)) = self
                    .conns
                    .get_mut(&conn)
                    .filter(|c| !c.closing)
                    .map(|c| &mut c.state)
                else {
                    return;
                };
                let renamed = outbound(wsc, text);
                let text = renamed.as_deref().unwrap_or(text);
                if let Err(e) = wsc.ws.send(Message::text(text)) {
                    tracing::info!(conn = conn.0, "websocket send failed: {e}");
                    out.close(conn);
                }
                take_output(&mut wsc.ws, conn, &mut out);
            }
        }
        self.commit(out, io);
    }

    fn close_session(
        &mut self,
        session: SessionId,
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    ) {
        let mut out = Out::default();
        match session {
            SessionId::Whep(_) => {
                if let Some(conn) = self.wheps.get_mut(&session).and_then(|w| w.pending.take()) {
                    out.respond(conn, Response::error(504, "no answer from the gateway"));
                }
                self.whep_end(session, now, gateway, "closed by the gateway");
            }
            SessionId::Remote(_) => {}
            SessionId::WebSocket(conn) => out.close(conn),
        }
        self.commit(out, io);
    }
}

/// A URL with its password masked, for logs and messages (as the gateway masks them).
fn mask(url: &str) -> String {
    camgate_core::rtsp::RtspUrl::parse(url)
        .map(|u| u.redacted())
        .unwrap_or_else(|_| "(malformed URL)".into())
}

/// Decodes `%XX` escapes of a URL path segment (a stream name or an rtsp:// URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("rtsp%3A%2F%2Fu%3Ap%40cam%2Fx"),
            "rtsp://u:p@cam/x"
        );
        assert_eq!(percent_decode("lobby"), "lobby");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%41"), "aA");
    }
}
