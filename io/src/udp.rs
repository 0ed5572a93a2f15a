//! The shared WebRTC UDP socket(s): every viewer's ICE, DTLS and SRTP goes through one port.
//!
//! Datagrams leave in batches with `sendmmsg` (one system call for up to `BATCH` datagrams,
//! to any mix of viewers) and arrive in batches with `recvmmsg`. A full socket buffer drops
//! datagrams instead of blocking: a congested path loses packets as a network would, and
//! NACK/PLI recover, while the loop keeps serving everyone else.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use socket2::{SockAddr, SockAddrStorage};

/// Datagrams per `sendmmsg`/`recvmmsg` call.
pub const BATCH: usize = 32;
/// Largest datagram we receive (WebRTC stays under ~1300 bytes).
const RECV_SIZE: usize = 2048;
/// Socket buffers sized for bursts: a keyframe fanned out to many viewers is thousands of
/// datagrams queued within a millisecond.
const SOCKET_BUFFER: usize = 4 << 20;

pub struct UdpEndpoint {
    pub socket: UdpSocket,
    pub local: SocketAddr,
    /// The address browsers were told (the ICE host candidate).
    pub announced: SocketAddr,
    /// Datagrams dropped because the socket buffer was full or the send failed.
    pub dropped: u64,
    /// Datagrams and `sendmmsg` calls, for the batching ratio.
    pub sent: u64,
    pub send_calls: u64,
    recv_bufs: Vec<u8>,
}

impl UdpEndpoint {
    pub fn bind(addr: SocketAddr, announced: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let sock = socket2::SockRef::from(&socket);
        // Best effort: the kernel caps these at net.core.{w,r}mem_max.
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
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
            sent: 0,
            send_calls: 0,
            recv_bufs: vec![0; BATCH * RECV_SIZE],
        })
    }

    /// Sends every datagram of `batch`, `BATCH` per system call; `parts` gives each item's
    /// destination and bytes (so callers keep their own datagram type and allocate nothing).
    pub fn send_all<T>(&mut self, batch: &[T], parts: impl Fn(&T) -> (SocketAddr, &[u8])) {
        let mut rest = batch;
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(BATCH)];
            match self.send_chunk(chunk, &parts) {
                Ok(n) => rest = &rest[n.max(1)..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket buffer is full: drop this chunk, never wait.
                    self.dropped += chunk.len() as u64;
                    rest = &rest[chunk.len()..];
                }
                Err(e) => {
                    // The first datagram failed (e.g. unreachable destination): skip it alone.
                    tracing::debug!(destination = %parts(&chunk[0]).0, "udp send failed: {e}");
                    self.dropped += 1;
                    rest = &rest[1..];
                }
            }
        }
    }

    /// One `sendmmsg` for at most `BATCH` datagrams; returns how many left.
    fn send_chunk<T>(
        &mut self,
        chunk: &[T],
        parts: &impl Fn(&T) -> (SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        debug_assert!(chunk.len() <= BATCH);
        // Everything lives on the stack: no allocation per call.
        let mut addrs: [MaybeUninit<SockAddr>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
        let mut iovecs: [MaybeUninit<libc::iovec>; BATCH] =
            [const { MaybeUninit::uninit() }; BATCH];
        let mut msgs: [MaybeUninit<libc::mmsghdr>; BATCH] =
            [const { MaybeUninit::uninit() }; BATCH];
        for (i, item) in chunk.iter().enumerate() {
            let (dest, data) = parts(item);
            let addr = addrs[i].write(SockAddr::from(dest));
            let iov = iovecs[i].write(libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            });
            // SAFETY: mmsghdr is plain old data; zero is a valid "no control, no flags" value.
            let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
            hdr.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            hdr.msg_hdr.msg_namelen = addr.len();
            hdr.msg_hdr.msg_iov = iov as *mut libc::iovec;
            hdr.msg_hdr.msg_iovlen = 1;
            msgs[i].write(hdr);
        }
        // SAFETY: the first `chunk.len()` entries of `msgs` were initialised above and point
        // at `addrs`/`iovecs` entries and caller buffers that outlive this call.
        let n = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                msgs.as_mut_ptr() as *mut libc::mmsghdr,
                chunk.len() as libc::c_uint,
                0,
            )
        };
        self.send_calls += 1;
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.sent += n as u64;
        Ok(n as usize)
    }

    /// Receives up to `BATCH` datagrams per system call until the socket is empty, handing
    /// each to `on_datagram(source, bytes)`.
    pub fn recv_all(&mut self, on_datagram: &mut dyn FnMut(SocketAddr, &[u8])) {
        loop {
            // Zeroed, so reading a whole storage back is sound whatever length the kernel wrote.
            let mut addrs: [MaybeUninit<SockAddrStorage>; BATCH] =
                std::array::from_fn(|_| MaybeUninit::new(SockAddrStorage::zeroed()));
            let mut iovecs: [MaybeUninit<libc::iovec>; BATCH] =
                [const { MaybeUninit::uninit() }; BATCH];
            let mut msgs: [MaybeUninit<libc::mmsghdr>; BATCH] =
                [const { MaybeUninit::uninit() }; BATCH];
            for (i, buf) in self.recv_bufs.chunks_mut(RECV_SIZE).enumerate() {
                let iov = iovecs[i].write(libc::iovec {
                    iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                    iov_len: buf.len(),
                });
                // SAFETY: plain old data, zero is valid.
                let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
                hdr.msg_hdr.msg_name = addrs[i].as_mut_ptr() as *mut libc::c_void;
                hdr.msg_hdr.msg_namelen = std::mem::size_of::<SockAddrStorage>() as libc::socklen_t;
                hdr.msg_hdr.msg_iov = iov as *mut libc::iovec;
                hdr.msg_hdr.msg_iovlen = 1;
                msgs[i].write(hdr);
            }
            // SAFETY: all BATCH headers are initialised and point at live buffers of ours.
            let n = unsafe {
                libc::recvmmsg(
                    self.socket.as_raw_fd(),
                    msgs.as_mut_ptr() as *mut libc::mmsghdr,
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock {
                    // ICMP errors from a vanished viewer surface here; not fatal.
                    tracing::debug!("udp receive error: {e}");
                }
                return;
            }
            for i in 0..n as usize {
                // SAFETY: the kernel filled the first `n` headers and their addresses.
                let (hdr, storage) =
                    unsafe { (msgs[i].assume_init_ref(), addrs[i].assume_init_read()) };
                let len = hdr.msg_len as usize;
                // SAFETY: `storage` holds a socket address of `msg_namelen` bytes.
                let addr = unsafe { SockAddr::new(storage, hdr.msg_hdr.msg_namelen) };
                let Some(source) = addr.as_socket() else {
                    continue;
                };
                let data = &self.recv_bufs[i * RECV_SIZE..i * RECV_SIZE + len.min(RECV_SIZE)];
                on_datagram(source, data);
            }
            if (n as usize) < BATCH {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_go_out_and_come_back_in_order() {
        let mut a = UdpEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let mut b = UdpEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let payloads: Vec<Vec<u8>> = (0..70u8).map(|i| vec![i; 100 + i as usize]).collect();
        let batch: Vec<(SocketAddr, &[u8])> =
            payloads.iter().map(|p| (b.local, p.as_slice())).collect();
        a.send_all(&batch, |(d, p)| (*d, p));
        assert_eq!(a.sent, 70);
        assert_eq!(
            a.send_calls, 3,
            "70 datagrams in 3 calls of at most {BATCH}"
        );
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < 70 && std::time::Instant::now() < deadline {
            b.recv_all(&mut |source, data| {
                assert_eq!(source, a.local);
                got.push(data.to_vec());
            });
        }
        assert_eq!(got, payloads);
    }

    #[test]
    fn an_unreachable_destination_costs_only_its_own_datagram() {
        let mut a = UdpEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let b = UdpEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        // An IPv6 destination on an IPv4 socket fails at once (EAFNOSUPPORT/EINVAL).
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let batch: Vec<(SocketAddr, &[u8])> = vec![(v6, b"x"), (b.local, b"y"), (b.local, b"z")];
        a.send_all(&batch, |(d, p)| (*d, p));
        assert_eq!(a.dropped, 1);
        assert_eq!(a.sent, 2);
    }
}
