//! The web side of camgate: the player page, the REST/metrics/WHEP APIs, and WebSocket
//! signaling, over plain TCP or TLS.
//!
//! The event loop hands us bytes per connection. On the TLS listeners those bytes go through a
//! sans-IO rustls `ServerConnection` first, so everything below it is the same for both. A
//! connection starts as HTTP (`http.rs`); a request with `Upgrade: websocket` turns it into a
//! signaling session (`ws.rs`), any other request is answered through the routing table
//! (`routes.rs`) by the player's files (`pages.rs`), the APIs (`rest.rs`, `metrics.rs`) or WHEP
//! (`whep.rs`).
//!
//! Handlers write plaintext into `Out`; `Web::commit` then encrypts what belongs to TLS
//! connections before it reaches the loop.

mod http;
mod metrics;
mod pages;
mod rest;
mod routes;
mod whep;
mod ws;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camgate_core::gateway::{Gateway, SessionId};
use camgate_io::{ConnId, ListenerKind, WebApp, WebIo};

use crate::access::Access;
use crate::auth_throttle::AuthThrottle;
use http::{NoRequest, RequestBuffer, Response};
use whep::Wheps;
use ws::WsConn;

/// Time a client gets to send a complete HTTP request (or WebSocket upgrade) after connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

enum State {
    Http(RequestBuffer),
    Ws(Box<WsConn>),
    /// A WHEP offer is with the gateway; the response goes out when it answers.
    WhepWait,
    /// The response is out; anything more from the client is ignored.
    Done,
}

struct Conn {
    /// The client's address: failed authentications are counted per address.
    peer: std::net::IpAddr,
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

/// What the web side is configured with.
pub struct WebSettings {
    pub default_url: String,
    pub max_ws_message: usize,
    pub max_http_body: usize,
    pub access: Access,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// STUN/TURN servers for browsers (player page, WHEP `Link`), credentials minted per session.
    pub ice_servers: Vec<crate::ice::IceServerConfig>,
}

pub struct Web {
    conns: HashMap<ConnId, Conn>,
    settings: WebSettings,
    wheps: Wheps,
    throttle: AuthThrottle,
}

impl Web {
    pub fn new(settings: WebSettings) -> Self {
        Self {
            conns: HashMap::new(),
            wheps: Wheps::new(settings.ice_servers.clone()),
            settings,
            throttle: AuthThrottle::default(),
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
                if let State::Http(_) = c.state {
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
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut c.state {
            State::Http(request) => {
                let ready = request.push(data);
                if ready {
                    self.handle_http(conn, now, gateway, out);
                }
            }
            State::Ws(wsc) => {
                let auth = ws::Auth {
                    access: &self.settings.access,
                    throttle: &mut self.throttle,
                    peer: c.peer,
                };
                wsc.received(conn, data, auth, now, gateway, out);
            }
            _ => {}
        }
    }

    /// Parses the request gathered on `conn` and answers it, or waits for more of it.
    fn handle_http(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway, out: &mut Out) {
        let Some(State::Http(request)) = self.conns.get_mut(&conn).map(|c| &mut c.state) else {
            return;
        };
        let bytes = std::mem::take(&mut request.bytes);
        let req = match http::parse(&bytes, self.settings.max_http_body) {
            Ok(req) => req,
            Err(NoRequest::Refused(r)) => return out.respond(conn, r),
            Err(NoRequest::Incomplete(wait_for)) => {
                *request = RequestBuffer { bytes, wait_for };
                return;
            }
        };
        let is_upgrade = req
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
        if !is_upgrade {
            if let Some(r) = self.route(conn, &req, now, gateway) {
                out.respond(conn, r);
            }
            return;
        }
        // Another site's page must not open a session with the browser's ambient access
        // (cross-site WebSocket hijacking), when `cors_origins` says which sites may.
        if let Err(refused) = self.check_origin(conn, &req) {
            return out.respond(conn, refused);
        }
        let access = &self.settings.access;
        let (wsc, answer) = match WsConn::upgrade(&req, self.settings.max_ws_message, access) {
            Ok(accepted) => accepted,
            Err(r) => return out.respond(conn, r),
        };
        out.write(conn, answer.into_bytes());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = State::Ws(Box::new(wsc));
        }
        gateway.handle_session_opened(conn.session(), now);
        // Frames may have come in the same read as the request.
        if !req.rest.is_empty() {
            self.on_plain(conn, req.rest, now, gateway, out);
        }
    }
}

/// Feeds TLS records from the client to rustls; the plaintext in them, or `Err` when the
/// connection must close.
fn decrypt(
    tls: &mut rustls::ServerConnection,
    mut data: &[u8],
    conn: ConnId,
    io: &mut WebIo,
) -> Result<Vec<u8>, ()> {
    let mut plain = Vec::new();
    let mut failed = false;
    while !data.is_empty() && !failed {
        match tls.read_tls(&mut data) {
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
        Err(())
    } else {
        Ok(plain)
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
        let c = Conn {
            peer: peer.ip(),
            tls,
            state: State::Http(RequestBuffer::default()),
            opened: now,
            closing: false,
        };
        self.conns.insert(conn, c);
    }

    fn tick(&mut self, now: Instant, io: &mut WebIo) {
        for (id, c) in &mut self.conns {
            let waiting = matches!(c.state, State::Http(_)) && !c.closing;
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
            Some(tls) => match decrypt(tls, data, conn, io) {
                Err(()) => return io.close(conn),
                Ok(plain) if plain.is_empty() => {}
                Ok(plain) => self.on_plain(conn, &plain, now, gateway, &mut out),
            },
        }
        self.commit(out, io);
    }

    fn closed(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway) {
        match self.conns.remove(&conn).map(|c| c.state) {
            Some(State::Ws(_)) => gateway.handle_session_closed(conn.session(), now),
            Some(State::WhepWait) => self.wheps.client_left(conn, now, gateway),
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
            SessionId::Whep(_) => self.wheps.message(session, text, now, gateway, &mut out),
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
                wsc.send(conn, text, &mut out);
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
            SessionId::Whep(_) => self
                .wheps
                .closed_by_gateway(session, now, gateway, &mut out),
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
