//! The web side of camgate: the player page, a small JSON status API, and WebSocket signaling.
//!
//! The event loop hands us bytes per connection. A connection starts as HTTP; a request with
//! `Upgrade: websocket` turns it into a signaling session whose frames tungstenite decodes from
//! an in-memory buffer (so tungstenite never touches a socket and never blocks the loop).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use camgate_core::hub::Gateway;
use camgate_io::{ConnId, ListenerKind, WebApp, WebIo};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::Message;

use crate::rest;

/// Largest HTTP request head we accept; bigger ones are answered 431 and closed.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Largest HTTP request body (REST calls carry a URL or two).
const MAX_REQUEST_BODY: usize = 64 * 1024;
/// Largest signaling message (an SDP offer is ~5 KiB).
const MAX_WS_MESSAGE: usize = 256 * 1024;

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

enum Conn {
    Http { head: Vec<u8> },
    Ws(Box<WebSocket<MemStream>>),
}

pub struct Web {
    conns: HashMap<ConnId, Conn>,
    default_url: String,
}

impl Web {
    pub fn new(default_url: String) -> Self {
        Self {
            conns: HashMap::new(),
            default_url,
        }
    }

    fn handle_http(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway, io: &mut WebIo) {
        let Some(Conn::Http { head }) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(head) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if head.len() <= MAX_REQUEST_HEAD => return,
            Ok(httparse::Status::Partial) => {
                respond(io, conn, 431, "text/plain", b"request header too large");
                return;
            }
            Err(e) => {
                respond(
                    io,
                    conn,
                    400,
                    "text/plain",
                    format!("bad request: {e}").as_bytes(),
                );
                return;
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
        if content_length > MAX_REQUEST_BODY {
            respond(
                io,
                conn,
                413,
                "application/json",
                br#"{"error":"request body too large"}"#,
            );
            return;
        }
        if head.len() < head_len + content_length {
            return; // the body is still arriving
        }
        let body = &head[head_len..head_len + content_length];
        let is_upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
        if is_upgrade {
            let Some(key) = header("sec-websocket-key") else {
                respond(io, conn, 400, "text/plain", b"missing Sec-WebSocket-Key");
                return;
            };
            let accept = tungstenite::handshake::derive_accept_key(key);
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            io.write(conn, response.into_bytes());
            let config = WebSocketConfig::default()
                .max_message_size(Some(MAX_WS_MESSAGE))
                .max_frame_size(Some(MAX_WS_MESSAGE));
            let ws = WebSocket::from_raw_socket(MemStream::default(), Role::Server, Some(config));
            self.conns.insert(conn, Conn::Ws(Box::new(ws)));
            gateway.handle_session_opened(conn.session(), now);
            return;
        }
        let route = path.split('?').next().unwrap_or("/");
        match (method, route) {
            ("GET", "/") | ("GET", "/index.html") => {
                let page = INDEX_HTML.replace("{{DEFAULT_URL}}", &html_escape(&self.default_url));
                respond(io, conn, 200, "text/html; charset=utf-8", page.as_bytes())
            }
            ("GET", "/camgate.js") => respond(
                io,
                conn,
                200,
                "text/javascript; charset=utf-8",
                CAMGATE_JS.as_bytes(),
            ),
            ("GET", "/player.css") => respond(
                io,
                conn,
                200,
                "text/css; charset=utf-8",
                PLAYER_CSS.as_bytes(),
            ),
            ("GET", "/api/streams") => {
                let list: Vec<_> = gateway
                    .streams()
                    .into_iter()
                    .map(|s| {
                        serde_json::json!({"id": s.id.0, "uri": s.url, "status": s.status(),
                            "viewers": s.viewers, "pinned": s.pinned})
                    })
                    .collect();
                respond(
                    io,
                    conn,
                    200,
                    "application/json",
                    serde_json::Value::from(list).to_string().as_bytes(),
                )
            }
            (_, route) if route.starts_with("/rest-api/") => {
                let (status, json) = rest::handle(method, route, body, gateway, now);
                respond(
                    io,
                    conn,
                    status,
                    "application/json",
                    json.to_string().as_bytes(),
                )
            }
            ("GET", _) => respond(io, conn, 404, "text/plain", b"not found"),
            _ => respond(io, conn, 405, "text/plain", b"method not allowed"),
        }
    }

    fn handle_ws(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway, io: &mut WebIo) {
        let Some(Conn::Ws(ws)) = self.conns.get_mut(&conn) else {
            return;
        };
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    gateway.handle_session_message(conn.session(), now, text.as_str())
                }
                Ok(Message::Close(_)) => {
                    io.close(conn);
                    break;
                }
                Ok(_) => {} // binary, ping, pong: tungstenite answers pings itself
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::info!(conn = conn.0, "websocket error: {e}");
                    io.close(conn);
                    break;
                }
            }
        }
        let _ = ws.flush();
        take_output(ws, conn, io);
    }
}

fn take_output(ws: &mut WebSocket<MemStream>, conn: ConnId, io: &mut WebIo) {
    let out = &mut ws.get_mut().output;
    if !out.is_empty() {
        io.write(conn, std::mem::take(out));
    }
}

impl WebApp for Web {
    fn accepted(&mut self, conn: ConnId, kind: ListenerKind, peer: SocketAddr, _now: Instant) {
        tracing::debug!(conn = conn.0, ?kind, %peer, "web client connected");
        self.conns.insert(conn, Conn::Http { head: Vec::new() });
    }

    fn received(
        &mut self,
        conn: ConnId,
        data: &[u8],
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    ) {
        match self.conns.get_mut(&conn) {
            Some(Conn::Http { head }) => {
                head.extend_from_slice(data);
                self.handle_http(conn, now, gateway, io);
            }
            Some(Conn::Ws(ws)) => {
                ws.get_mut().input.extend_from_slice(data);
                self.handle_ws(conn, now, gateway, io);
            }
            None => {}
        }
    }

    fn closed(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway) {
        if let Some(Conn::Ws(_)) = self.conns.remove(&conn) {
            gateway.handle_session_closed(conn.session(), now);
        }
    }

    fn send_text(&mut self, conn: ConnId, text: &str, io: &mut WebIo) {
        let Some(Conn::Ws(ws)) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Err(e) = ws.send(Message::text(text)) {
            tracing::info!(conn = conn.0, "websocket send failed: {e}");
            io.close(conn);
        }
        take_output(ws, conn, io);
    }
}

/// Writes a complete response and closes: one request per connection keeps this simple.
fn respond(io: &mut WebIo, conn: ConnId, status: u16, content_type: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    io.write(conn, out);
    io.close(conn);
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
