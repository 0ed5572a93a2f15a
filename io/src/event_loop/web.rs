//! Web connections: the listeners, the web clients' connections, and the [`WebApp`] interface
//! through which the server crate sees them as bytes.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use camgate_core::gateway::{Gateway, SessionId};
pub use camgate_core::ids::ConnId;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::{contained, Endpoint, EventLoop};
use crate::tcp::{ReadOutcome, TcpConn};

/// Which listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The signaling port (8080): WebSocket upgrades.
    WebSocket,
    /// The HTTP port (8081): player page and APIs.
    Http,
    /// The secure signaling port (8443): WebSocket upgrades inside TLS.
    WssTls,
    /// The HTTPS port (8444): player page and APIs inside TLS.
    HttpsTls,
}

impl ListenerKind {
    /// TLS is terminated by the web app (sans-IO), so the loop still sees only bytes.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::WssTls | Self::HttpsTls)
    }
}

/// Writes and closes the web app asks for; the loop carries them out after each call.
#[derive(Default)]
pub struct WebIo {
    writes: Vec<(ConnId, Vec<u8>)>,
    closes: Vec<ConnId>,
}

impl WebIo {
    pub fn write(&mut self, conn: ConnId, data: Vec<u8>) {
        self.writes.push((conn, data));
    }

    /// Close after everything written so far has been flushed.
    pub fn close(&mut self, conn: ConnId) {
        self.closes.push(conn);
    }

    /// Takes the writes and closes asked for so far, for a driver other than the loop (the
    /// fuzz harnesses). Like the loop, apply the writes before the closes.
    pub fn take(&mut self) -> (Vec<(ConnId, Vec<u8>)>, Vec<ConnId>) {
        (
            std::mem::take(&mut self.writes),
            std::mem::take(&mut self.closes),
        )
    }
}

/// The server's web side: HTTP and WebSocket framing over the loop's connections.
pub trait WebApp {
    fn accepted(&mut self, conn: ConnId, kind: ListenerKind, peer: SocketAddr, now: Instant);
    fn received(
        &mut self,
        conn: ConnId,
        data: &[u8],
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    );
    /// The connection is gone (peer closed, error, or our close completed).
    fn closed(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway);
    /// Called about once a second, for the web side's own timeouts (slow or idle clients).
    fn tick(&mut self, _now: Instant, _io: &mut WebIo) {}
    /// The gateway has a signaling message for `session`: a WebSocket (`conn.session()`) or
    /// a session the web app opened itself (WHEP). The gateway is at hand so the app can
    /// answer at once (e.g. `pong` for a session that has no browser behind it).
    fn send_text(
        &mut self,
        session: SessionId,
        text: &str,
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    );
    /// The gateway gave up on `session` (no answer to pings): close whatever carries it.
    fn close_session(
        &mut self,
        session: SessionId,
        now: Instant,
        gateway: &mut Gateway,
        io: &mut WebIo,
    );
}

/// The web side of a worker without listeners (every worker but the first): it never gets a
/// connection; signaling for its viewers goes through the first worker's web app.
pub struct NoWeb;

impl WebApp for NoWeb {
    fn accepted(&mut self, _: ConnId, _: ListenerKind, _: SocketAddr, _: Instant) {}
    fn received(&mut self, _: ConnId, _: &[u8], _: Instant, _: &mut Gateway, _: &mut WebIo) {}
    fn closed(&mut self, _: ConnId, _: Instant, _: &mut Gateway) {}
    fn send_text(&mut self, _: SessionId, _: &str, _: Instant, _: &mut Gateway, _: &mut WebIo) {}
    fn close_session(&mut self, _: SessionId, _: Instant, _: &mut Gateway, _: &mut WebIo) {}
}

impl EventLoop {
    /// Binds a listener and registers it under its slab key.
    pub(super) fn listen(&mut self, kind: ListenerKind, addr: SocketAddr) -> io::Result<()> {
        let mut listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let key = self.endpoints.vacant_key();
        self.poll
            .registry()
            .register(&mut listener, Token(key), Interest::READABLE)?;
        self.endpoints.insert(Endpoint::Listener(kind, listener));
        Ok(())
    }

    /// Accepts every connection queued on listener `key` and hands each to the web app.
    pub(super) fn accept_web(&mut self, key: usize, now: Instant, web: &mut dyn WebApp) {
        let Some(Endpoint::Listener(kind, listener)) = self.endpoints.get(key) else {
            return;
        };
        let kind = *kind;
        let accepted = accept_queued(
            listener,
            kind,
            key,
            &mut self.accept_retry,
            &mut self.spare_fd,
        );
        for (mut stream, peer) in accepted {
            let _ = stream.set_nodelay(true);
            let key = self.endpoints.vacant_key();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!("register failed: {e}");
                continue;
            }
            self.endpoints.insert(Endpoint::Web(TcpConn::with_limit(
                stream,
                TcpConn::MAX_QUEUED_WEB,
            )));
            web.accepted(ConnId(key), kind, peer, now);
        }
    }

    /// Web connection `key` is readable or writable: hands what arrived to the web app and
    /// flushes what is queued.
    pub(super) fn read_web(
        &mut self,
        key: usize,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        io: &mut WebIo,
    ) {
        let Some(Endpoint::Web(conn)) = self.endpoints.get_mut(key) else {
            return;
        };
        let id = ConnId(key);
        let mut panicked = false;
        let outcome = conn.read_available(&mut self.read_buf, &mut |data| {
            // Last line of defence: a bug reached by one client's bytes ends that
            // client's connection, not the server (the other clients and every
            // viewer's media share this thread).
            panicked = panicked || !contained(|| web.received(id, data, now, gateway, io));
        });
        if panicked {
            tracing::error!(
                conn = key,
                "web side panicked on this client's input: connection dropped"
            );
            io.writes.retain(|(c, _)| *c != id);
            self.drop_web(key, now, gateway, web);
            return;
        }
        let flushed = conn.flush();
        if outcome == ReadOutcome::Closed
            || flushed.is_err()
            || (conn.closing && conn.pending() == 0)
        {
            self.drop_web(key, now, gateway, web);
        }
    }

    /// Carries out the writes and closes the web app asked for.
    pub(super) fn apply_web_io(
        &mut self,
        io: &mut WebIo,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
    ) {
        for (conn, data) in io.writes.drain(..) {
            if let Some(Endpoint::Web(c)) = self.endpoints.get_mut(conn.0) {
                if let Err(e) = c.send(&data) {
                    tracing::info!(conn = conn.0, "dropping web client: {e}");
                    c.closing = true;
                }
            }
        }
        let closes: Vec<ConnId> = io.closes.drain(..).collect();
        for conn in closes {
            if let Some(Endpoint::Web(c)) = self.endpoints.get_mut(conn.0) {
                c.closing = true;
                if c.flush().is_err() || c.pending() == 0 {
                    self.drop_web(conn.0, now, gateway, web);
                }
            }
        }
    }

    /// Sessions are the web app's to map onto connections: not every session is a WebSocket
    /// (WHEP sessions live beyond their HTTP request).
    pub(super) fn send_session_text(
        &mut self,
        session: SessionId,
        text: &str,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        io: &mut WebIo,
    ) {
        if !contained(|| web.send_text(session, text, now, gateway, io)) {
            tracing::error!(session = %session, "web side panicked sending a message");
        }
        self.apply_web_io(io, now, gateway, web);
    }

    pub(super) fn close_session(
        &mut self,
        session: SessionId,
        now: Instant,
        gateway: &mut Gateway,
        web: &mut dyn WebApp,
        io: &mut WebIo,
    ) {
        if !contained(|| web.close_session(session, now, gateway, io)) {
            tracing::error!(session = %session, "web side panicked closing a session");
        }
        self.apply_web_io(io, now, gateway, web);
    }

    fn drop_web(&mut self, key: usize, now: Instant, gateway: &mut Gateway, web: &mut dyn WebApp) {
        if let Some(Endpoint::Web(mut conn)) = self.endpoints.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if !contained(|| web.closed(ConnId(key), now, gateway)) {
                tracing::error!(conn = key, "web side panicked closing a connection");
            }
        }
    }
}

/// Takes every connection queued on `listener`. When `accept` fails for want of a descriptor
/// or memory, the listener's key goes into `accept_retry` until an accept succeeds again.
pub(super) fn accept_queued(
    listener: &TcpListener,
    kind: impl std::fmt::Debug,
    key: usize,
    accept_retry: &mut Vec<usize>,
    spare: &mut SpareFd,
) -> Vec<(TcpStream, SocketAddr)> {
    let mut accepted = Vec::new();
    loop {
        match listener.accept() {
            Ok(pair) => {
                if std::mem::take(&mut spare.refusing) {
                    tracing::info!(?kind, "accepting connections again");
                }
                accepted.push(pair)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if accept_retry.contains(&key) {
                    accept_retry.retain(|&k| k != key);
                    tracing::info!(?kind, "accepting connections again");
                }
                return accepted;
            }
            // The peer gave up before we took it: the next one may be fine.
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionAborted
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors: the spare one lets us take the connection and close
                // it, so the client learns at once instead of hanging in the listen queue.
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                // The connection is closed inside, before the spare is taken again.
                if out_of_fds && spare.released(|| listener.accept().is_ok()) == Some(true) {
                    if !std::mem::replace(&mut spare.refusing, true) {
                        tracing::warn!(
                            ?kind,
                            "accept failed: {e} (open files limit {}); new connections \
                             are closed at once until descriptors are free again",
                            open_files_limit()
                        );
                    }
                    continue;
                }
                // No spare (or out of memory): the connections wait in the listen queue.
                if !accept_retry.contains(&key) {
                    accept_retry.push(key);
                    tracing::warn!(
                        ?kind,
                        "accept failed: {e} (open files limit {}); new connections \
                         wait in the listen queue, retried every loop turn",
                        open_files_limit()
                    );
                }
                return accepted;
            }
        }
    }
}

/// One descriptor held in reserve (`/dev/null`): at the open files limit it is closed for the
/// moment it takes to accept a connection and close it (see `accept_queued`).
pub(super) struct SpareFd {
    file: Option<std::fs::File>,
    /// Connections are being refused for want of descriptors (logged once per episode).
    refusing: bool,
}

impl SpareFd {
    pub(super) fn new() -> Self {
        Self {
            file: std::fs::File::open("/dev/null").ok(),
            refusing: false,
        }
    }

    /// Runs `f` with the spare descriptor free, then takes it again (if it can: when another
    /// thread took the freed number meanwhile, the next call has no spare and returns `None`
    /// until one can be opened).
    pub(super) fn released<T>(&mut self, f: impl FnOnce() -> T) -> Option<T> {
        let spare = (self.file.take()).or_else(|| std::fs::File::open("/dev/null").ok())?;
        drop(spare);
        let out = f();
        self.file = std::fs::File::open("/dev/null").ok();
        Some(out)
    }
}

/// The process's open files limit (`ulimit -n`), for the log, "?" when unknown.
#[allow(unsafe_code)] // getrlimit through libc: std has no wrapper
fn open_files_limit() -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.to_string()
    } else {
        "?".to_owned()
    }
}
