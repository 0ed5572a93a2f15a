//! The shared WebRTC UDP socket(s): every viewer's ICE, DTLS and SRTP goes through one port.
//!
//! Datagrams leave in batches with `sendmmsg` (one system call for up to `BATCH` datagrams,
//! to any mix of viewers) and arrive in batches with `recvmmsg`. A full socket buffer drops
//! datagrams instead of blocking: a congested path loses packets as a network would, and
//! NACK/PLI recover, while the loop keeps serving everyone else.

// sendmmsg/recvmmsg and GSO control messages through libc: each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use socket2::{SockAddr, SockAddrStorage};

use crate::socket_buffers;

/// Messages per `sendmmsg` call, datagrams per `recvmmsg` call.
pub const BATCH: usize = 32;
/// Datagrams one `sendmmsg` call carries at most (GSO messages hold several).
const MAX_ITEMS: usize = BATCH * 8;
/// Segments in one GSO message: the kernel takes up to 64, and a 2 Mbit/s keyframe to one
/// viewer is about 50 packets.
const MAX_SEGMENTS: usize = 64;
/// Bytes in one GSO message: a UDP datagram's limit, less room for headers.
const MAX_GSO_BYTES: usize = 65_000;
/// `UDP_SEGMENT` (linux/udp.h), which the libc crate leaves out for glibc targets.
const UDP_SEGMENT: libc::c_int = 103;
/// u64 words of a control buffer: CMSG_SPACE(2) is 24 bytes on 64-bit Linux, 16 on 32-bit.
const CONTROL_WORDS: usize = 4;

/// Why a `sendmmsg` sent nothing: the error, the items of its first message and all its items.
struct SendFailure {
    error: io::Error,
    first_items: usize,
    items: usize,
}
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
    /// Messages that carried several datagrams (UDP GSO).
    pub gso_messages: u64,
    /// Runs to one destination go out as GSO messages (off after the kernel refused one).
    gso: bool,
    recv_bufs: Vec<u8>,
}

impl UdpEndpoint {
    /// `gso`: send runs to one destination as UDP GSO messages.
    pub fn bind(addr: SocketAddr, announced: SocketAddr, gso: bool) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let granted = socket_buffers::grow(&socket, SOCKET_BUFFER, SOCKET_BUFFER);
        let local = socket.local_addr()?;
        // The kernel reports twice what it granted.
        let (send_kib, recv_kib) = (granted.send / 2048, granted.recv / 2048);
        if granted.send / 2 < SOCKET_BUFFER {
            tracing::warn!(
                "UDP {local}: send buffer {send_kib} KiB, receive {recv_kib} KiB, below the {} KiB \
                 asked (bursts to many viewers may drop): raise net.core.wmem_max and \
                 net.core.rmem_max, or run with CAP_NET_ADMIN",
                SOCKET_BUFFER / 1024
            );
        } else {
            tracing::debug!("UDP {local}: send buffer {send_kib} KiB, receive {recv_kib} KiB");
        }
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
            gso_messages: 0,
            gso,
            recv_bufs: vec![0; BATCH * RECV_SIZE],
        })
    }

    /// Sends every datagram of `batch`, up to `BATCH` messages per system call; `parts` gives
    /// each item's destination and bytes (so callers keep their own datagram type and allocate
    /// nothing). Consecutive datagrams to the same destination with the same size (the last
    /// may be shorter) leave as one GSO message: one trip through the kernel's socket and IP
    /// layers for a whole video frame to one viewer. Callers group datagrams by destination
    /// (keeping each destination's order) to make such runs.
    pub fn send_all<'d, T>(
        &mut self,
        batch: &'d [T],
        parts: impl Fn(&'d T) -> (SocketAddr, &'d [u8]),
    ) {
        let mut rest = batch;
        while !rest.is_empty() {
            match self.send_chunk(rest, &parts) {
                Ok(n) => rest = &rest[n.max(1)..],
                Err(failed) if failed.error.kind() == io::ErrorKind::WouldBlock => {
                    // The socket buffer is full: drop what this call carried, never wait.
                    self.dropped += failed.items as u64;
                    rest = &rest[failed.items..];
                }
                Err(failed) if self.gso && failed.first_items > 1 => {
                    // EIO/EINVAL: the kernel or device can't segment (no UDP GSO, no checksum
                    // offload). Plain datagrams from now on; this message is tried again.
                    tracing::info!(
                        "UDP GSO unavailable ({}): sending plain datagrams",
                        failed.error
                    );
                    self.gso = false;
                }
                Err(failed) => {
                    // The first message failed (e.g. unreachable destination): skip it alone.
                    tracing::debug!(destination = %parts(&rest[0]).0, "udp send failed: {}", failed.error);
                    self.dropped += failed.first_items as u64;
                    rest = &rest[failed.first_items..];
                }
            }
        }
    }

    /// One `sendmmsg` of at most `BATCH` messages (GSO runs or single datagrams) from the
    /// front of `items`; returns how many items left.
    fn send_chunk<'d, T>(
        &mut self,
        items: &'d [T],
        parts: &impl Fn(&'d T) -> (SocketAddr, &'d [u8]),
    ) -> Result<usize, SendFailure> {
        // Everything lives on the stack: no allocation per call.
        let mut addrs: [MaybeUninit<SockAddr>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
        let mut iovecs: [MaybeUninit<libc::iovec>; MAX_ITEMS] =
            [const { MaybeUninit::uninit() }; MAX_ITEMS];
        let mut msgs: [MaybeUninit<libc::mmsghdr>; BATCH] =
            [const { MaybeUninit::uninit() }; BATCH];
        // One UDP_SEGMENT control message per GSO message (u64s for cmsghdr alignment).
        let mut controls = [[0u64; CONTROL_WORDS]; BATCH];
        let mut counts = [0usize; BATCH];
        let (mut n_msgs, mut n_items) = (0, 0);
        while n_items < items.len() && n_msgs < BATCH && n_items < MAX_ITEMS {
            let (dest, first) = parts(&items[n_items]);
            let size = first.len();
            let iov_start = n_items;
            let mut segments = 0;
            let mut bytes = 0;
            while n_items < items.len() && n_items < MAX_ITEMS {
                let (d, data) = parts(&items[n_items]);
                if segments > 0
                    && (!self.gso
                        || d != dest
                        || data.len() > size
                        || segments == MAX_SEGMENTS
                        || bytes + data.len() > MAX_GSO_BYTES)
                {
                    break;
                }
                iovecs[n_items].write(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
                segments += 1;
                bytes += data.len();
                n_items += 1;
                if data.len() < size {
                    break; // only the last segment may be shorter
                }
            }
            let addr = addrs[n_msgs].write(SockAddr::from(dest));
            // SAFETY: mmsghdr is plain old data; zero is a valid "no control, no flags" value.
            let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
            hdr.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            hdr.msg_hdr.msg_namelen = addr.len();
            hdr.msg_hdr.msg_iov = iovecs[iov_start].as_mut_ptr();
            hdr.msg_hdr.msg_iovlen = segments;
            if segments > 1 {
                let control = controls[n_msgs].as_mut_ptr() as *mut libc::cmsghdr;
                // SAFETY: `controls[n_msgs]` is zeroed, aligned for cmsghdr and CONTROL_WORDS
                // long, which holds CMSG_SPACE(2) bytes.
                unsafe {
                    (*control).cmsg_level = libc::SOL_UDP;
                    (*control).cmsg_type = UDP_SEGMENT;
                    (*control).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(control) as *mut u16, size as u16);
                }
                hdr.msg_hdr.msg_control = control as *mut libc::c_void;
                // SAFETY: pure arithmetic.
                hdr.msg_hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
            }
            msgs[n_msgs].write(hdr);
            counts[n_msgs] = segments;
            n_msgs += 1;
        }
        // SAFETY: the first `n_msgs` entries of `msgs` were initialised above and point at
        // `addrs`, `iovecs` and `controls` entries and caller buffers that outlive this call.
        let n = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                msgs.as_mut_ptr() as *mut libc::mmsghdr,
                n_msgs as libc::c_uint,
                0,
            )
        };
        self.send_calls += 1;
        if n < 0 {
            return Err(SendFailure {
                error: io::Error::last_os_error(),
                first_items: counts[0],
                items: n_items,
            });
        }
        let n = n as usize;
        let sent: usize = counts[..n].iter().sum();
        self.sent += sent as u64;
        self.gso_messages += counts[..n].iter().filter(|c| **c > 1).count() as u64;
        Ok(sent)
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
            true,
        )
        .unwrap();
        let mut b = UdpEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            true,
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
    fn runs_to_one_destination_leave_as_gso_messages_and_arrive_as_datagrams() {
        let bind = || {
            let any = "127.0.0.1:0".parse().unwrap();
            UdpEndpoint::bind(any, any, true).unwrap()
        };
        let (mut a, mut b, mut c) = (bind(), bind(), bind());
        // A frame to b (7 × 1200 bytes and a short last one), one datagram to c, then two
        // runs to b that must not merge: a longer datagram ends a run.
        let mut batch: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for i in 0..7u8 {
            batch.push((b.local, vec![i; 1200]));
        }
        batch.push((b.local, vec![7; 300]));
        batch.push((c.local, vec![8; 1200]));
        batch.push((b.local, vec![9; 500]));
        batch.push((b.local, vec![10; 900]));
        a.send_all(&batch, |(d, p)| (*d, p.as_slice()));
        assert_eq!((a.sent, a.send_calls, a.dropped), (11, 1, 0));
        assert!(a.gso, "loopback takes UDP GSO (Linux 4.18 and later)");
        assert_eq!(a.gso_messages, 1, "the frame to b went as one message");
        let mut got_b = Vec::new();
        let mut got_c = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while (got_b.len() < 10 || got_c.is_empty()) && std::time::Instant::now() < deadline {
            b.recv_all(&mut |_, data| got_b.push(data.to_vec()));
            c.recv_all(&mut |_, data| got_c.push(data.to_vec()));
        }
        let want_b: Vec<Vec<u8>> = batch
            .iter()
            .filter(|(d, _)| *d == b.local)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(got_b, want_b, "each datagram whole and in order");
        assert_eq!(got_c, [vec![8; 1200]]);
    }

    #[test]
    fn an_unreachable_destination_costs_only_its_own_datagram() {
        let mut a = UdpEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            true,
        )
        .unwrap();
        let b = UdpEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            true,
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
