//! The RTSP server's sockets: its listener and the players' connections (ffmpeg, GStreamer,
//! an NVR, another camgate), in the loop like every other socket. The gateway owns each
//! player's RTSP session and send queue (`Gateway::player_pending`); this module only moves
//! the bytes.
//!
//! UDP players get their media from one RTP/RTCP port pair next to the listener, shared by
//! all of them (told apart by their addresses, which the gateway knows from SETUP). Datagrams
//! the socket does not take at once are dropped (and counted by the gateway): a UDP player
//! never holds anything up. What arrives on the pair (receiver reports) keeps sessions alive.
//! Bound to a wildcard address, the pair sends each player's datagrams from the address its
//! RTSP connection came to (`udp_source`), not whichever the route would pick.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use camgate_core::gateway::Gateway;
use camgate_core::ids::ConnId;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Token};

use super::{Endpoint, EventLoop};

/// Player hosts whose source address is kept after their last RTSP connection closed, before
/// those without an open connection are forgotten (the map stays bounded whatever connects).
const MAX_KEPT_SOURCES: usize = 4096;
/// SO_SNDBUF of a player's connection (the kernel doubles it): 0.5 MiB in flight carries
/// 40 Mbit/s at 100 ms round trip.
const PLAYER_SEND_BUFFER: usize = 256 * 1024;

/// One player's connection.
pub(super) struct PlayerConn {
    stream: TcpStream,
    /// Its peer, and the local address it connected to (its UDP media's source).
    peer: IpAddr,
    local: Option<IpAddr>,
}

/// The RTSP server's RTP or RTCP port for UDP players.
pub(super) struct PlayerUdp {
    socket: UdpSocket,
    /// An IPv6 socket (IPv4 players then have IPv4-mapped addresses).
    v6: bool,
    /// Bound to a wildcard address: each datagram names its source (see `sources`).
    wildcard: bool,
    /// (RTP socket's only.) Player host → the local address its RTSP connection came to, and
    /// how many of its connections are open (the latest connection's address wins); kept
    /// after the last one closes, for UDP sessions that outlive it (see `MAX_KEPT_SOURCES`).
    sources: HashMap<IpAddr, (IpAddr, usize)>,
}

impl PlayerUdp {
    /// Sends one datagram, from the address the player at `to` connected to if the socket is
    /// a wildcard one; false if the socket did not take it (full, or the send failed).
    fn send(
        &self,
        sources: &HashMap<IpAddr, (IpAddr, usize)>,
        to: SocketAddr,
        data: &[u8],
    ) -> bool {
        let from = self
            .wildcard
            .then(|| sources.get(&to.ip().to_canonical()))
            .flatten()
            .map(|(local, _)| *local);
        loop {
            let sent = match from {
                Some(from) => crate::udp_source::send_from(&self.socket, self.v6, from, to, data),
                None => self.socket.send_to(data, to),
            };
            match sent {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }
}

/// The slab keys of the server's RTP and RTCP sockets, and their ports.
#[derive(Debug, Clone, Copy)]
pub(super) struct PlayerUdpKeys {
    rtp: usize,
    rtcp: usize,
    pub(super) ports: (u16, u16),
}

/// Send buffer of the RTP port: a keyframe to many players leaves in one burst.
const PLAYER_UDP_SEND_BUFFER: usize = 4 << 20;

/// An even RTP port and the next one for RTCP (RFC 3550's convention): `fixed` (an even
/// port, so a firewall can be opened for it), or chosen by the system.
fn bind_pair(
    ip: IpAddr,
    fixed: Option<u16>,
) -> io::Result<(std::net::UdpSocket, std::net::UdpSocket)> {
    if let Some(port) = fixed {
        if port % 2 != 0 || port == u16::MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("RTP port {port} is not even"),
            ));
        }
        let rtp = std::net::UdpSocket::bind((ip, port))?;
        let rtcp = std::net::UdpSocket::bind((ip, port + 1))?;
        return Ok((rtp, rtcp));
    }
    for _ in 0..64 {
        let rtp = std::net::UdpSocket::bind((ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX - 1 {
            continue;
        }
        if let Ok(rtcp) = std::net::UdpSocket::bind((ip, port + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free pair of UDP ports",
    ))
}

impl EventLoop {
    /// Binds the RTSP server's listener, and its RTP/RTCP ports on the same address.
    pub(super) fn listen_rtsp(
        &mut self,
        addr: SocketAddr,
        udp_port: Option<u16>,
    ) -> io::Result<()> {
        let mut listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on RTSP {addr}: {e}")))?;
        let key = self.endpoints.vacant_key();
        self.poll
            .registry()
            .register(&mut listener, Token(key), Interest::READABLE)?;
        self.endpoints.insert(Endpoint::RtspListener(listener));
        let (rtp, rtcp) = bind_pair(addr.ip(), udp_port)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind RTSP UDP ports: {e}")))?;
        crate::socket_buffers::grow(&rtp, PLAYER_UDP_SEND_BUFFER, 0);
        let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        let mut keys = [0; 2];
        let (v6, wildcard) = (addr.is_ipv6(), addr.ip().is_unspecified());
        for (i, socket) in [rtp, rtcp].into_iter().enumerate() {
            socket.set_nonblocking(true)?;
            let mut socket = UdpSocket::from_std(socket);
            let key = self.endpoints.vacant_key();
            self.poll
                .registry()
                .register(&mut socket, Token(key), Interest::READABLE)?;
            self.endpoints.insert(Endpoint::PlayerUdp(PlayerUdp {
                socket,
                v6,
                wildcard,
                sources: HashMap::new(),
            }));
            keys[i] = key;
        }
        self.player_udp = Some(PlayerUdpKeys {
            rtp: keys[0],
            rtcp: keys[1],
            ports,
        });
        Ok(())
    }

    /// The RTSP server's RTP or RTCP port is readable: every datagram (a receiver report)
    /// keeps its sender's session alive; the contents are not needed.
    pub(super) fn read_player_udp(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        let Some(Endpoint::PlayerUdp(u)) = self.endpoints.get(key) else {
            return;
        };
        loop {
            match u.socket.recv_from(&mut self.read_buf) {
                Ok((_, source)) => {
                    gateway.handle_player_udp(now, source);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or an ICMP error of an earlier send: done for now.
                Err(_) => return,
            }
        }
    }

    /// Sends what the gateway queued for UDP players; what the socket does not take at once
    /// is dropped (the gateway counts it).
    pub(super) fn send_player_datagrams(&mut self, gateway: &mut Gateway) {
        if !gateway.player_datagrams_queued() {
            return;
        }
        let Some(keys) = self.player_udp else {
            return;
        };
        let (Some(Endpoint::PlayerUdp(rtp)), Some(Endpoint::PlayerUdp(rtcp))) =
            (self.endpoints.get(keys.rtp), self.endpoints.get(keys.rtcp))
        else {
            return;
        };
        gateway.send_player_datagrams(&mut |to, is_rtcp, data| {
            let socket = if is_rtcp { rtcp } else { rtp };
            socket.send(&rtp.sources, to, data)
        });
    }

    /// The RTSP listener is readable: accepts every queued player.
    pub(super) fn accept_players(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        let Some(Endpoint::RtspListener(listener)) = self.endpoints.get(key) else {
            return;
        };
        // Shared with the web and ICE-TCP listeners: at the open files limit the spare
        // descriptor lets a player be refused at once instead of hanging in the listen queue.
        let accepted = super::web::accept_queued(
            listener,
            "RTSP",
            key,
            &mut self.accept_retry,
            &mut self.spare_fd,
        );
        for (mut stream, peer) in accepted {
            let _ = stream.set_nodelay(true);
            // A fixed send buffer: with the kernel's autotuning a player that stops reading
            // absorbs megabytes before the gateway's queue (skip to a keyframe, then drop) sees
            // it fall behind.
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(PLAYER_SEND_BUFFER);
            let conn = self.endpoints.vacant_key();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(conn),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!("register failed: {e}");
                continue;
            }
            let local = stream.local_addr().ok().map(|a| a.ip().to_canonical());
            let peer_ip = peer.ip().to_canonical();
            self.endpoints.insert(Endpoint::Player(PlayerConn {
                stream,
                peer: peer_ip,
                local,
            }));
            if let Some(local) = local {
                self.note_player_source(peer_ip, local);
            }
            tracing::info!(%peer, conn, "RTSP player connected");
            // The gateway decides who may play what (users per stream, else loopback only).
            gateway.handle_player_opened(ConnId(conn), peer, now);
        }
    }

    /// A player's connection is readable or writable.
    pub(super) fn player_ready(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        let mut gone = false;
        loop {
            let Some(Endpoint::Player(p)) = self.endpoints.get_mut(key) else {
                return;
            };
            match p.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    gone = true;
                    break;
                }
                Ok(n) => gateway.handle_player_data(ConnId(key), now, &self.read_buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    gone = true;
                    break;
                }
            }
        }
        if gone {
            self.drop_player(key, now, gateway);
        } else {
            self.write_player(key, now, gateway);
        }
    }

    /// Writes what the gateway queued for the player, as far as the socket takes it.
    pub(super) fn write_player(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        let Some(Endpoint::Player(p)) = self.endpoints.get_mut(key) else {
            return;
        };
        let conn = ConnId(key);
        let mut failed = false;
        loop {
            let pending = gateway.player_pending(conn);
            if pending.is_empty() {
                break;
            }
            match p.stream.write(pending) {
                Ok(n) => gateway.player_written(conn, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            self.drop_player(key, now, gateway);
        }
    }

    /// The gateway closes player `conn`: what the socket takes at once is written (an error
    /// answer), then it closes; a player that stopped reading is not waited for.
    pub(super) fn close_player(&mut self, conn: ConnId, now: Instant, gateway: &mut Gateway) {
        self.write_player(conn.0, now, gateway);
        self.drop_player(conn.0, now, gateway);
    }

    /// A connection from `peer` came to `local`: its UDP media leaves from there.
    fn note_player_source(&mut self, peer: IpAddr, local: IpAddr) {
        if let Some(u) = self.player_rtp() {
            let entry = u.sources.entry(peer).or_insert((local, 0));
            *entry = (local, entry.1 + 1);
        }
    }

    fn forget_player_source(&mut self, peer: IpAddr) {
        let Some(u) = self.player_rtp() else { return };
        if let Some(entry) = u.sources.get_mut(&peer) {
            // Kept at 0 open connections: a UDP session outlives its RTSP connection and its
            // media must still leave from the address the player connected to. Hosts with no
            // open connection are forgotten only when many have gathered.
            entry.1 = entry.1.saturating_sub(1);
            if u.sources.len() > MAX_KEPT_SOURCES {
                u.sources.retain(|_, (_, open)| *open > 0);
            }
        }
    }

    /// The RTSP server's RTP socket (it holds the players' sources).
    fn player_rtp(&mut self) -> Option<&mut PlayerUdp> {
        let key = self.player_udp?.rtp;
        match self.endpoints.get_mut(key) {
            Some(Endpoint::PlayerUdp(u)) => Some(u),
            _ => None,
        }
    }

    fn drop_player(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        if let Some(Endpoint::Player(mut p)) = self.endpoints.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut p.stream);
            if p.local.is_some() {
                self.forget_player_source(p.peer);
            }
            gateway.handle_player_closed(ConnId(key), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_pair_is_exactly_that_port_and_the_next() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (rtp, rtcp) = bind_pair(ip, None).unwrap();
        let port = rtp.local_addr().unwrap().port();
        assert_eq!((port % 2, rtcp.local_addr().unwrap().port()), (0, port + 1));
        drop((rtp, rtcp));
        let (rtp, rtcp) = bind_pair(ip, Some(port)).unwrap();
        assert_eq!(rtp.local_addr().unwrap().port(), port);
        assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
        // Taken, or odd: refused rather than moved elsewhere.
        assert!(bind_pair(ip, Some(port)).is_err());
        assert_eq!(
            bind_pair(ip, Some(port + 1)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
