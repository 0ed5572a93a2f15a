//! UDP sockets for cameras that send RTP over UDP: one even/odd port pair per track, from a
//! configured range, bound to the local address the camera's RTSP connection uses (so a camera
//! behind a VPN interface gets its media on that interface too).

use std::io;
use std::net::{IpAddr, SocketAddr};

use camgate_core::gateway::StreamId;
use mio::net::UdpSocket;

/// Receive buffer asked for a camera's RTP socket.
const RECV_BUFFER: usize = 4 << 20;

/// One camera track's RTP or RTCP socket.
pub struct CameraUdp {
    pub stream: StreamId,
    pub track: usize,
    pub rtcp: bool,
    pub socket: UdpSocket,
}

/// Hands out even/odd port pairs from `min..=max`, round robin, skipping ports in use.
pub struct PortRange {
    min: u16,
    max: u16,
    next: u16,
}

impl PortRange {
    pub fn new(min: u16, max: u16) -> Self {
        let min = min.max(1024) & !1;
        let max = max.max(min + 1);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// Binds an RTP socket on an even port and the RTCP socket on the next one.
    pub fn bind_pair(&mut self, ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket, u16)> {
        let pairs = usize::from((self.max - self.min) / 2 + 1);
        for _ in 0..pairs.min(512) {
            let port = self.next;
            self.next = if port + 3 > self.max {
                self.min
            } else {
                port + 2
            };
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(ip, port)) else {
                continue;
            };
            // A keyframe arrives as a burst of ~100 datagrams at 4 Mbit/s; the default buffer
            // (~200 KB) dropped some in the benchmark. Best effort: capped by rmem_max.
            crate::socket_buffers::grow(&rtp, 0, RECV_BUFFER);
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)) else {
                continue;
            };
            return Ok((rtp, rtcp, port));
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free UDP port pair in the configured range",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_odd_and_skip_ports_in_use() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut range = PortRange::new(41000, 41009);
        let (_a, _b, first) = range.bind_pair(ip).unwrap();
        assert_eq!(first % 2, 0);
        // Someone else holds the next pair's RTCP port: it is skipped.
        let _busy = std::net::UdpSocket::bind(SocketAddr::new(ip, first + 3)).unwrap();
        let (_c, _d, second) = range.bind_pair(ip).unwrap();
        assert_eq!(second, first + 4);
        // The range is exhausted after the remaining pairs.
        let mut held = Vec::new();
        while let Ok(pair) = range.bind_pair(ip) {
            held.push(pair);
            assert!(held.len() < 10, "bounded");
        }
    }
}
