//! The shared WebRTC UDP socket(s): every viewer's ICE, DTLS and SRTP goes through one port.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

pub struct UdpEndpoint {
    pub socket: UdpSocket,
    pub local: SocketAddr,
    /// The address browsers were told (the ICE host candidate).
    pub announced: SocketAddr,
    /// Datagrams dropped because the socket buffer was full: a congested path never blocks
    /// the loop, it loses packets like a network would (NACK/PLI recover).
    pub dropped: u64,
}

impl UdpEndpoint {
    pub fn bind(addr: SocketAddr, announced: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let local = socket.local_addr()?;
        // Port 0 asks the OS for one; the announced address must carry the real port.
        let announced = if announced.port() == 0 {
            SocketAddr::new(announced.ip(), local.port())
        } else {
            announced
        };
        Ok(Self {
            socket,
            local,
            announced,
            dropped: 0,
        })
    }

    pub fn send(&mut self, data: &[u8], destination: SocketAddr) {
        match self.socket.send_to(data, destination) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.dropped += 1,
            Err(e) => {
                self.dropped += 1;
                tracing::debug!(%destination, "udp send failed: {e}");
            }
        }
    }
}
