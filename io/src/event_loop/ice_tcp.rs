//! ICE over TCP (RFC 6544): browsers that cannot use UDP connect to a TCP listener on the
//! worker's WebRTC port and carry the same STUN, DTLS, SRTP and SRTCP packets in RFC 4571
//! frames. The framing is core's (`camgate_core::ice_tcp`); here are the sockets.
//!
//! A connection is routed like a UDP source address: its first frame must be a STUN check
//! naming one of this worker's viewers, else it is closed. Outgoing frames wait in a bounded
//! per-connection queue (`SendQueue`), filled by the batched transmit path and written once per
//! batch: a connection that falls behind loses whole packets and its viewer waits for the next
//! keyframe, without holding up anyone else.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camgate_core::gateway::Gateway;
use camgate_core::ice_tcp::{Deframer, SendQueue};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::{Endpoint, EventLoop};

/// A connection that has not sent a STUN check for a viewer by then is closed.
const UNROUTED_TIMEOUT: Duration = Duration::from_secs(10);
/// A routed connection silent this long is closed (browsers send consent checks every few
/// seconds; the viewer itself times out after `viewer::SILENCE_TIMEOUT`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// ICE-TCP connections per worker that may wait at once for their first STUN check. A browser
/// sends it within milliseconds of connecting, so a join storm stays far below; a flood of
/// connections that never send one (each a descriptor and buffers for `UNROUTED_TIMEOUT`) is
/// refused past it: new connections are closed at once until some name a viewer, close or time
/// out. Routed connections are bounded by the viewers themselves (`max_viewers`).
pub(super) const MAX_UNROUTED: usize = 256;
/// A refusal is logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// How many ICE-TCP connections wait for their first STUN check.
#[derive(Default)]
pub(super) struct Unrouted {
    count: usize,
    refused: u64,
    logged: Option<Instant>,
}

/// One browser's ICE-TCP connection.
pub(super) struct IceTcpConn {
    stream: TcpStream,
    /// The browser's address: what str0m's transmits name as destination.
    pub(super) remote: SocketAddr,
    /// The announced address of the listener it came in on (the candidate str0m matches).
    local: SocketAddr,
    deframer: Deframer,
    pub(super) out: SendQueue,
    /// A frame reached a viewer.
    routed: bool,
    last_read: Instant,
    /// In the transmit batch's list of connections to write.
    pub(super) dirty: bool,
    /// Failed: to be closed by the loop.
    pub(super) dead: bool,
}

impl IceTcpConn {
    #[cfg(test)]
    pub(super) fn for_test(stream: TcpStream, remote: SocketAddr, local: SocketAddr) -> Self {
        IceTcpConn {
            stream,
            remote,
            local,
            deframer: Deframer::new(),
            out: SendQueue::default(),
            routed: true,
            last_read: Instant::now(),
            dirty: false,
            dead: false,
        }
    }

    /// Writes what is queued until the socket takes no more; false when the connection failed.
    pub(super) fn write_queued(&mut self) -> bool {
        while !self.out.is_empty() {
            match self.stream.write(self.out.unsent()) {
                Ok(0) => return false,
                Ok(n) => self.out.consumed(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

impl EventLoop {
    /// Listens for ICE-TCP on `addr`, announced to browsers as `announced`.
    pub(super) fn listen_ice_tcp(
        &mut self,
        addr: SocketAddr,
        announced: SocketAddr,
    ) -> io::Result<()> {
        let mut listener = TcpListener::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on TCP {addr} (ICE-TCP): {e}"),
            )
        })?;
        // Port 0 asked: announce the port the OS chose.
        let announced = match announced.port() {
            0 => SocketAddr::new(announced.ip(), listener.local_addr()?.port()),
            _ => announced,
        };
        let key = self.endpoints.vacant_key();
        self.poll
            .registry()
            .register(&mut listener, Token(key), Interest::READABLE)?;
        self.endpoints.insert(Endpoint::IceListener {
            listener,
            announced,
        });
        Ok(())
    }

    /// Accepts every connection queued on ICE-TCP listener `key`.
    pub(super) fn accept_ice_tcp(&mut self, key: usize, now: Instant) {
        let Some(Endpoint::IceListener {
            listener,
            announced,
        }) = self.endpoints.get(key)
        else {
            return;
        };
        let local = *announced;
        let accepted = super::web::accept_queued(
            listener,
            "ICE-TCP",
            key,
            &mut self.accept_retry,
            &mut self.spare_fd,
        );
        for (mut stream, remote) in accepted {
            if self.ice_tcp_unrouted.count >= MAX_UNROUTED {
                // Dropping the stream closes it: the client sees the connection end at once.
                let u = &mut self.ice_tcp_unrouted;
                u.refused += 1;
                if u.logged
                    .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
                {
                    u.logged = Some(now);
                    tracing::warn!(
                        %remote,
                        refused = u.refused,
                        "ICE-TCP: {MAX_UNROUTED} connections are waiting for their first STUN check; refusing new ones until they name a viewer, close or time out"
                    );
                }
                continue;
            }
            // Media frames leave as soon as written, not held for coalescing.
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
            tracing::debug!(%remote, "ICE-TCP connection");
            self.tx.add_tcp(remote, key);
            self.ice_tcp_unrouted.count += 1;
            self.endpoints.insert(Endpoint::IceTcp(Box::new(IceTcpConn {
                stream,
                remote,
                local,
                deframer: Deframer::new(),
                out: SendQueue::default(),
                routed: false,
                last_read: now,
                dirty: false,
                dead: false,
            })));
        }
    }

    /// ICE-TCP connection `key` is readable or writable: hands its frames to the gateway and
    /// writes what is queued.
    pub(super) fn ready_ice_tcp(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        let Some(Endpoint::IceTcp(conn)) = self.endpoints.get_mut(key) else {
            return;
        };
        let mut failure = None;
        loop {
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    if conn.deframer.mid_frame() {
                        failure = Some("closed in the middle of a frame".to_string());
                    } else {
                        failure = Some(String::new());
                    }
                    break;
                }
                Ok(n) => {
                    conn.last_read = now;
                    let (remote, local) = (conn.remote, conn.local);
                    let was_routed = conn.routed;
                    let routed = &mut conn.routed;
                    let fed = conn.deframer.feed(&self.read_buf[..n], |frame| {
                        let ok = gateway.handle_tcp(now, remote, local, frame);
                        *routed |= ok;
                        ok
                    });
                    if conn.routed && !was_routed {
                        self.ice_tcp_unrouted.count -= 1;
                    }
                    if let Err(e) = fed {
                        failure = Some(e.to_string());
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if failure.is_none() && !conn.write_queued() {
            failure = Some("write failed".into());
        }
        if let Some(why) = failure {
            self.close_ice_tcp(key, gateway, &why);
        }
        self.flush_transmits(gateway);
    }

    /// Closes ICE-TCP connection `key`; `why` empty: the browser closed it.
    pub(super) fn close_ice_tcp(&mut self, key: usize, gateway: &mut Gateway, why: &str) {
        let Some(Endpoint::IceTcp(_)) = self.endpoints.get(key) else {
            return;
        };
        let Endpoint::IceTcp(mut conn) = self.endpoints.remove(key) else {
            unreachable!("checked above");
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if !conn.routed {
            self.ice_tcp_unrouted.count -= 1;
        }
        self.tx.remove_tcp(conn.remote, key);
        gateway.handle_tcp_closed(conn.remote);
        if why.is_empty() {
            tracing::debug!(remote = %conn.remote, "ICE-TCP connection closed by the browser");
        } else {
            tracing::info!(remote = %conn.remote, "ICE-TCP connection closed: {why}");
        }
    }

    /// Closes connections that failed while the transmit batch wrote to them.
    pub(super) fn close_dead_ice_tcp(&mut self, gateway: &mut Gateway) {
        for key in self.tx.take_dead() {
            self.close_ice_tcp(key, gateway, "write failed");
        }
    }

    /// Once a second: connections that never named a viewer, or went silent, are closed.
    pub(super) fn sweep_ice_tcp(&mut self, now: Instant, gateway: &mut Gateway) {
        let stale: Vec<usize> = self
            .endpoints
            .iter()
            .filter_map(|(key, e)| match e {
                Endpoint::IceTcp(c) => {
                    let limit = if c.routed {
                        IDLE_TIMEOUT
                    } else {
                        UNROUTED_TIMEOUT
                    };
                    (now.saturating_duration_since(c.last_read) > limit).then_some(key)
                }
                _ => None,
            })
            .collect();
        for key in stale {
            self.close_ice_tcp(key, gateway, "silent");
        }
    }
}
