//! The RTSP server's sockets: its listener and the players' connections (ffmpeg, GStreamer,
//! an NVR, another camgate), in the loop like every other socket. The gateway owns each
//! player's RTSP session and send queue (`Gateway::player_pending`); this module only moves
//! the bytes.
//!
//! UDP players get their media from one RTP/RTCP port pair next to the listener, shared by
//! all of them (told apart by their addresses, which the gateway knows from SETUP). They leave
//! in `sendmmsg` batches, each player's run of a frame's packets as one UDP GSO message
//! (`udp_source`). Datagrams the socket does not take at once are dropped (and counted by the
//! gateway): a UDP player never holds anything up. What arrives on the pair (receiver reports) keeps sessions alive.
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
use crate::udp_source::SourcedSender;

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

/// The RTSP server's RTP and RTCP ports for UDP players (outside the slab, which holds a
/// marker for each: a camera's read sends through them while its connection is borrowed).
pub(super) struct PlayerUdp {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Their slab keys (tokens).
    keys: (usize, usize),
    pub(super) ports: (u16, u16),
    /// Bound to a wildcard address: each datagram names its source (see `sources`).
    wildcard: bool,
    /// Player host → the local address its RTSP connection came to, and how many of its
    /// connections are open (the latest connection's address wins); kept after the last one
    /// closes, for UDP sessions that outlive it (see `MAX_KEPT_SOURCES`).
    sources: HashMap<IpAddr, (IpAddr, usize)>,
    /// Batched sending from each port.
    rtp_sender: SourcedSender,
    rtcp_sender: SourcedSender,
    /// The gateway's datagrams as sort keys (`send_order`): RTP's then RTCP's, each grouped
    /// by destination, in the gateway's order within one (GSO runs). Capacity is reused.
    order: Vec<u128>,
}

impl PlayerUdp {
    /// Sends every datagram the gateway queued for UDP players, in `sendmmsg` batches, each
    /// from the address its player connected to if the sockets are wildcard ones; what a
    /// socket does not take is dropped (the gateway counts it).
    pub(super) fn send(&mut self, gateway: &mut Gateway) {
        if !gateway.player_datagrams_queued() {
            return;
        }
        let Self {
            rtp,
            rtcp,
            wildcard,
            sources,
            rtp_sender,
            rtcp_sender,
            order,
            ..
        } = self;
        gateway.send_player_datagrams(&mut |datagrams, refused| {
            order.clear();
            order.extend((0..datagrams.len()).map(|i| {
                let (to, is_rtcp, _) = datagrams.get(i);
                send_order(to, is_rtcp, i as u32)
            }));
            // Plain integers: a few instructions a comparison (sorting by the addresses
            // themselves cost about 1,400 instructions per datagram at 100 players).
            order.sort_unstable();
            let rtcp_from = order.partition_point(|k| k >> 96 == 0);
            // Each destination's source, looked up once per run of datagrams to it.
            let last = std::cell::Cell::new(None);
            let parts = |k: &u128| {
                let (to, _, data) = datagrams.get(*k as u32 as usize);
                let from = match last.get() {
                    Some((ip, from)) if ip == to.ip() => from,
                    _ => {
                        let from = (*wildcard)
                            .then(|| sources.get(&to.ip().to_canonical()))
                            .flatten()
                            .map(|(local, _)| *local);
                        last.set(Some((to.ip(), from)));
                        from
                    }
                };
                (from, to, data)
            };
            let mut refused = |k: &u128| refused(*k as u32 as usize);
            let (rtp_order, rtcp_order) = order.split_at(rtcp_from);
            rtp_sender.send_all(rtp, rtp_order, parts, &mut refused);
            rtcp_sender.send_all(rtcp, rtcp_order, parts, &mut refused);
        });
    }
}

/// The sort key of the `i`-th datagram to `to`: RTCP last, then by destination (a 64-bit
/// digest of it: two destinations that share one only make fewer GSO runs), then the queue's
/// order, which each destination's datagrams keep.
fn send_order(to: SocketAddr, rtcp: bool, i: u32) -> u128 {
    let ip = match to.ip().to_canonical() {
        IpAddr::V4(a) => u64::from(a.to_bits()),
        IpAddr::V6(a) => {
            let bits = a.to_bits();
            // Folded and mixed; bit 63 keeps IPv6 digests apart from IPv4 addresses.
            ((bits as u64) ^ ((bits >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 << 63
        }
    };
    let destination = ip.rotate_left(16) ^ u64::from(to.port());
    u128::from(rtcp) << 96 | u128::from(destination) << 32 | u128::from(i)
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
    /// Binds the RTSP server's listener, and its RTP/RTCP ports on the same address (`gso`:
    /// runs of datagrams to one player leave as UDP GSO messages).
    pub(super) fn listen_rtsp(
        &mut self,
        addr: SocketAddr,
        udp_port: Option<u16>,
        gso: bool,
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
        let (v6, wildcard) = (addr.is_ipv6(), addr.ip().is_unspecified());
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        let mut sockets = [rtp, rtcp].map(UdpSocket::from_std);
        let mut keys = [0; 2];
        for (i, socket) in sockets.iter_mut().enumerate() {
            let key = self.endpoints.vacant_key();
            self.poll
                .registry()
                .register(socket, Token(key), Interest::READABLE)?;
            self.endpoints.insert(Endpoint::PlayerUdp);
            keys[i] = key;
        }
        let [rtp, rtcp] = sockets;
        self.player_udp = Some(PlayerUdp {
            rtp,
            rtcp,
            keys: (keys[0], keys[1]),
            ports,
            wildcard,
            sources: HashMap::new(),
            rtp_sender: SourcedSender::new(v6, gso),
            rtcp_sender: SourcedSender::new(v6, gso),
            order: Vec::new(),
        });
        Ok(())
    }

    /// The RTSP server's RTP or RTCP port is readable: every datagram (a receiver report)
    /// keeps its sender's session alive; the contents are not needed.
    pub(super) fn read_player_udp(&mut self, key: usize, now: Instant, gateway: &mut Gateway) {
        let Some(u) = &self.player_udp else {
            return;
        };
        let socket = if key == u.keys.0 { &u.rtp } else { &u.rtcp };
        loop {
            match socket.recv_from(&mut self.read_buf) {
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
        if let Some(u) = &mut self.player_udp {
            u.send(gateway);
        }
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
                Ok(n) => {
                    gateway.handle_player_data(ConnId(key), now, &self.read_buf[..n]);
                    // A PLAY starts a UDP player's GOP replay: many in one turn (a join storm)
                    // are sent as they come due.
                    if gateway.player_datagrams_due() {
                        self.send_player_datagrams(gateway);
                    }
                }
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
        if let Some(u) = &mut self.player_udp {
            let entry = u.sources.entry(peer).or_insert((local, 0));
            *entry = (local, entry.1 + 1);
        }
    }

    fn forget_player_source(&mut self, peer: IpAddr) {
        let Some(u) = &mut self.player_udp else {
            return;
        };
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
    fn the_send_order_puts_rtcp_last_and_keeps_each_destinations_order() {
        let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let c: SocketAddr = "192.0.2.1:5002".parse().unwrap();
        let queue = [
            (a, false),
            (b, false),
            (a, true),
            (c, false),
            (a, false),
            (b, false),
        ];
        let mut keys: Vec<u128> = (queue.iter().enumerate())
            .map(|(i, &(to, rtcp))| send_order(to, rtcp, i as u32))
            .collect();
        keys.sort_unstable();
        let order: Vec<usize> = keys.iter().map(|k| *k as u32 as usize).collect();
        assert_eq!(order.last(), Some(&2), "RTCP last: {order:?}");
        for to in [a, b, c] {
            let mine: Vec<usize> = (order.iter().copied())
                .filter(|&i| queue[i] == (to, false))
                .collect();
            assert!(mine.is_sorted(), "{to}: {mine:?}");
            let at = order.iter().position(|i| *i == mine[0]).unwrap();
            assert_eq!(
                order[at..at + mine.len()],
                mine,
                "{to}'s datagrams together"
            );
        }
    }

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
