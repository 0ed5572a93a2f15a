//! Sending datagrams in batches, each from a chosen local address (`IP_PKTINFO` /
//! `IPV6_PKTINFO`).
//!
//! The RTSP server's UDP ports are bound to its listener's address, by default a wildcard
//! (0.0.0.0, or [::]). From a wildcard socket the kernel picks each datagram's source by route:
//! on a host with several addresses, a player that connected to one of them (an alias, or an
//! address reached through another interface) would get its media from another, which its NAT
//! or firewall drops (and `server_port` in the SETUP answer would name a port on an address it
//! never spoke to). Naming the source per datagram keeps it the address the player connected to.
//!
//! Datagrams leave as `io/src/udp.rs` sends the WebRTC viewers': up to `BATCH` messages per
//! `sendmmsg`, each message with its own control data (the source, and for a run of datagrams
//! to one destination of one size a `UDP_SEGMENT`: one GSO message). A message the socket
//! refuses (full buffer, a prohibit route to that destination) costs only its own datagrams.

// sendmmsg with control messages through libc: each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// Messages per `sendmmsg` call.
const BATCH: usize = 32;
/// Datagrams one `sendmmsg` call carries at most (GSO messages hold several).
const MAX_ITEMS: usize = BATCH * 8;
/// Segments in one GSO message (the kernel takes up to 64).
const MAX_SEGMENTS: usize = 64;
/// Bytes in one GSO message: a UDP datagram's limit, less room for headers.
const MAX_GSO_BYTES: usize = 65_000;
/// `UDP_SEGMENT` (linux/udp.h), which the libc crate leaves out for glibc targets.
const UDP_SEGMENT: libc::c_int = 103;
/// u64 words of one message's control data: CMSG_SPACE(sizeof(in6_pktinfo)) is 40 bytes and
/// CMSG_SPACE(2) 24 on 64-bit Linux.
const CONTROL_WORDS: usize = 8;

/// Sends batches of datagrams from one UDP socket, each from the local address it names.
#[derive(Debug)]
pub struct SourcedSender {
    /// An IPv6 socket (then an IPv4 source goes IPv4-mapped, for an IPv4-mapped destination).
    v6: bool,
    /// Runs to one destination go out as GSO messages (off after the kernel refused one).
    gso: bool,
    /// `sendmmsg` calls, and messages that carried several datagrams.
    pub send_calls: u64,
    pub gso_messages: u64,
}

/// Why a `sendmmsg` sent nothing: the error and the items of its first message.
struct SendFailure {
    error: io::Error,
    first_items: usize,
}

impl SourcedSender {
    /// `v6`: the socket is IPv6; `gso`: send runs to one destination as UDP GSO messages.
    pub fn new(v6: bool, gso: bool) -> Self {
        Self {
            v6,
            gso,
            send_calls: 0,
            gso_messages: 0,
        }
    }

    /// Runs to one destination go out as GSO messages (the kernel has not refused one).
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends every item of `items` on `socket` (non-blocking), `parts` giving each its
    /// source (`None`: the kernel picks), destination and bytes; calls `refused` with each
    /// item the socket did not take (its buffer full, or the send failed), which is then
    /// dropped: a datagram is never waited for. Consecutive items from one source to one
    /// destination with one size (the last may be shorter) leave as one GSO message; callers
    /// group each destination's datagrams, in their order, to make such runs.
    pub fn send_all<'d, T>(
        &mut self,
        socket: &impl AsRawFd,
        items: &'d [T],
        parts: impl Fn(&'d T) -> (Option<IpAddr>, SocketAddr, &'d [u8]),
        refused: &mut dyn FnMut(&'d T),
    ) {
        let mut rest = items;
        while !rest.is_empty() {
            match self.send_chunk(socket, rest, &parts) {
                Ok(n) => rest = &rest[n..],
                Err(failed) if failed.error.kind() == io::ErrorKind::Interrupted => {}
                Err(failed)
                    if self.gso
                        && failed.first_items > 1
                        && matches!(
                            failed.error.raw_os_error(),
                            Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP)
                        ) =>
                {
                    // The kernel or device can't segment (no UDP GSO, no checksum offload):
                    // plain datagrams from now on; this message is tried again.
                    tracing::info!(
                        "UDP GSO unavailable ({}): sending plain datagrams",
                        failed.error
                    );
                    self.gso = false;
                }
                Err(failed) => {
                    // The first message failed: a full buffer (it alone is dropped: the next
                    // call tries the next one), or its destination refused (a prohibit route).
                    let (dropped, left) = rest.split_at(failed.first_items);
                    dropped.iter().for_each(&mut *refused);
                    rest = left;
                }
            }
        }
    }

    /// One `sendmmsg` of at most `BATCH` messages (GSO runs or single datagrams) from the
    /// front of `items`; returns how many items left (at least one).
    fn send_chunk<'d, T>(
        &mut self,
        socket: &impl AsRawFd,
        items: &'d [T],
        parts: &impl Fn(&'d T) -> (Option<IpAddr>, SocketAddr, &'d [u8]),
    ) -> Result<usize, SendFailure> {
        // Everything lives on the stack: no allocation per call.
        let mut addrs: [MaybeUninit<SockAddr>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
        let mut iovecs: [MaybeUninit<libc::iovec>; MAX_ITEMS] =
            [const { MaybeUninit::uninit() }; MAX_ITEMS];
        let mut msgs: [MaybeUninit<libc::mmsghdr>; BATCH] =
            [const { MaybeUninit::uninit() }; BATCH];
        // Each message's control data (u64s for cmsghdr alignment), zeroed.
        let mut controls = [[0u64; CONTROL_WORDS]; BATCH];
        let mut counts = [0usize; BATCH];
        let (mut n_msgs, mut n_items) = (0, 0);
        // The item that ended the last message's run, its parts already asked for.
        let mut peeked = None;
        while n_items < items.len() && n_msgs < BATCH && n_items < MAX_ITEMS {
            let first = peeked.take().unwrap_or_else(|| parts(&items[n_items]));
            let (from, dest, size) = (first.0, first.1, first.2.len());
            let iov_start = n_items;
            let (mut segments, mut bytes) = (0, 0);
            let mut next = Some(first);
            while n_items < items.len() && n_items < MAX_ITEMS {
                let (f, d, data) = next.take().unwrap_or_else(|| parts(&items[n_items]));
                if segments > 0
                    && (!self.gso
                        || d != dest
                        || f != from
                        || data.len() > size
                        || segments == MAX_SEGMENTS
                        || bytes + data.len() > MAX_GSO_BYTES)
                {
                    peeked = Some((f, d, data));
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
            let control = &mut controls[n_msgs];
            let mut used = match from {
                Some(from) => write_source(control, self.v6, from),
                None => 0,
            };
            if segments > 1 {
                used += write_segment_size(&mut control[used / 8..], size as u16);
            }
            if used > 0 {
                hdr.msg_hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                hdr.msg_hdr.msg_controllen = used as _;
            }
            msgs[n_msgs].write(hdr);
            counts[n_msgs] = segments;
            n_msgs += 1;
        }
        // SAFETY: the first `n_msgs` entries of `msgs` were initialised above and point at
        // `addrs`, `iovecs` and `controls` entries and caller buffers that outlive this call.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr() as *mut libc::mmsghdr,
                n_msgs as libc::c_uint,
                0,
            )
        };
        self.send_calls += 1;
        if n <= 0 {
            let error = match n {
                0 => io::Error::from(io::ErrorKind::WouldBlock),
                _ => io::Error::last_os_error(),
            };
            return Err(SendFailure {
                error,
                first_items: counts[0],
            });
        }
        let n = n as usize;
        self.gso_messages += counts[..n].iter().filter(|c| **c > 1).count() as u64;
        Ok(counts[..n].iter().sum())
    }
}

/// Writes an `IP_PKTINFO` (IPv4 socket) or `IPV6_PKTINFO` control message naming source
/// `from` at the start of `control`; returns the bytes it takes (CMSG_SPACE), 0 for a source
/// an IPv4 socket can't name (an IPv6 address: the kernel then picks).
fn write_source(control: &mut [u64; CONTROL_WORDS], v6: bool, from: IpAddr) -> usize {
    let from_v4 = match (v6, from) {
        (false, IpAddr::V4(a)) => Some(a),
        (false, IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(a) => Some(a),
            None => return 0,
        },
        (true, _) => None,
    };
    let len = if v6 {
        size_of::<libc::in6_pktinfo>()
    } else {
        size_of::<libc::in_pktinfo>()
    };
    let c = control.as_mut_ptr() as *mut libc::cmsghdr;
    // SAFETY: `control` is zeroed, aligned for cmsghdr and CONTROL_WORDS long, which holds
    // CMSG_SPACE(len) bytes (40 for in6_pktinfo); the data is written unaligned.
    unsafe {
        (*c).cmsg_len = libc::CMSG_LEN(len as libc::c_uint) as _;
        let at = libc::CMSG_DATA(c);
        match from_v4 {
            Some(a) => {
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(at as *mut libc::in_pktinfo, info);
            }
            None => {
                (*c).cmsg_level = libc::IPPROTO_IPV6;
                (*c).cmsg_type = libc::IPV6_PKTINFO;
                let addr = match from {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                };
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: addr.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                std::ptr::write_unaligned(at as *mut libc::in6_pktinfo, info);
            }
        }
        libc::CMSG_SPACE(len as libc::c_uint) as usize
    }
}

/// Writes a `UDP_SEGMENT` control message (GSO segment size `size`) at the start of `control`
/// (u64-aligned, after any other control message); returns the bytes it takes.
fn write_segment_size(control: &mut [u64], size: u16) -> usize {
    // SAFETY: pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(2) } as usize;
    assert!(control.len() * 8 >= space, "room for UDP_SEGMENT");
    let c = control.as_mut_ptr() as *mut libc::cmsghdr;
    // SAFETY: `control` is zeroed, aligned for cmsghdr and (checked above) holds CMSG_SPACE(2)
    // bytes; the data is written unaligned.
    unsafe {
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(2) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, size);
    }
    space
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        r
    }

    /// Receives `n` datagrams: (bytes, source).
    fn receive(r: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut buf = [0u8; 2048];
        (0..n)
            .map(|_| {
                let (len, from) = r.recv_from(&mut buf).unwrap();
                (buf[..len].to_vec(), from)
            })
            .collect()
    }

    /// Sends `batch` of (source, destination, bytes); returns the indices refused.
    fn send(
        sender: &mut SourcedSender,
        socket: &UdpSocket,
        batch: &[(Option<IpAddr>, SocketAddr, Vec<u8>)],
    ) -> Vec<usize> {
        let index: Vec<usize> = (0..batch.len()).collect();
        let mut refused = Vec::new();
        sender.send_all(
            socket,
            &index,
            |&i| (batch[i].0, batch[i].1, &batch[i].2[..]),
            &mut |&i| refused.push(i),
        );
        refused
    }

    /// Loopback owns all of 127/8: a wildcard socket sends from 127.0.0.2 or 127.0.0.3 when
    /// told, where the kernel alone picks 127.0.0.1; in one batch, and in GSO runs.
    #[test]
    fn a_wildcard_socket_sends_each_datagram_from_the_address_it_names() {
        let (r1, r2) = (receiver(), receiver());
        let (to1, to2) = (r1.local_addr().unwrap(), r2.local_addr().unwrap());
        let v4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let (a2, a3): (IpAddr, IpAddr) = ([127, 0, 0, 2].into(), [127, 0, 0, 3].into());
        // To r1: three of a frame from .2 (one GSO message), one from .3, one unnamed;
        // to r2: two from .3.
        let batch = vec![
            (Some(a2), to1, vec![1; 1000]),
            (Some(a2), to1, vec![2; 1000]),
            (Some(a2), to1, vec![3; 400]),
            (Some(a3), to1, vec![4; 400]),
            (None, to1, vec![5; 400]),
            (Some(a3), to2, vec![6; 900]),
            (Some(a3), to2, vec![7; 900]),
        ];
        let mut sender = SourcedSender::new(false, true);
        assert!(send(&mut sender, &v4, &batch).is_empty());
        assert_eq!(sender.send_calls, 1, "one sendmmsg");
        assert!(
            sender.gso(),
            "loopback takes UDP GSO (Linux 4.18 and later)"
        );
        assert_eq!(
            sender.gso_messages, 2,
            "the runs from .2 to r1 and from .3 to r2"
        );
        let from = |a: [u8; 4]| SocketAddr::from((a, port));
        let want1 = vec![
            (vec![1; 1000], from([127, 0, 0, 2])),
            (vec![2; 1000], from([127, 0, 0, 2])),
            (vec![3; 400], from([127, 0, 0, 2])),
            (vec![4; 400], from([127, 0, 0, 3])),
            (vec![5; 400], from([127, 0, 0, 1])),
        ];
        assert_eq!(
            receive(&r1, 5),
            want1,
            "each whole, in order, from its source"
        );
        let want2 = vec![
            (vec![6; 900], from([127, 0, 0, 3])),
            (vec![7; 900], from([127, 0, 0, 3])),
        ];
        assert_eq!(receive(&r2, 2), want2);

        // A dual-stack socket, to an IPv4-mapped address: the source goes IPv4-mapped.
        let v6 = UdpSocket::bind("[::]:0").unwrap();
        let port = v6.local_addr().unwrap().port();
        let mapped = SocketAddr::new(
            std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
            to1.port(),
        );
        let mut sender = SourcedSender::new(true, true);
        let batch = vec![
            (Some(a3), mapped, vec![8; 700]),
            (Some(a3), mapped, vec![9; 700]),
        ];
        assert!(send(&mut sender, &v6, &batch).is_empty());
        let want = vec![
            (vec![8; 700], SocketAddr::from(([127, 0, 0, 3], port))),
            (vec![9; 700], SocketAddr::from(([127, 0, 0, 3], port))),
        ];
        assert_eq!(receive(&r1, 2), want);
    }

    /// Hundreds of datagrams to a few destinations, grouped per destination (as the loop
    /// orders them): several calls of `BATCH` messages, GSO runs cut at `MAX_SEGMENTS`, every
    /// datagram whole and each destination's in order; without GSO the same.
    #[test]
    fn large_batches_arrive_whole_and_in_order() {
        for gso in [true, false] {
            let receivers: Vec<UdpSocket> = (0..3).map(|_| receiver()).collect();
            for r in &receivers {
                socket2::SockRef::from(r)
                    .set_recv_buffer_size(4 << 20)
                    .unwrap();
            }
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut batch = Vec::new();
            for (k, r) in receivers.iter().enumerate() {
                for i in 0..150u16 {
                    // Equal sizes but every 70th shorter: runs end there.
                    let len = if i % 70 == 69 { 300 } else { 1200 };
                    let mut data = vec![k as u8; len];
                    data[..2].copy_from_slice(&i.to_be_bytes());
                    batch.push((None, r.local_addr().unwrap(), data));
                }
            }
            let mut sender = SourcedSender::new(false, gso);
            assert!(send(&mut sender, &socket, &batch).is_empty());
            if gso {
                assert!(sender.send_calls < 5, "{} calls", sender.send_calls);
                assert!(sender.gso_messages >= 9, "{}", sender.gso_messages);
            } else {
                assert_eq!(sender.send_calls, 450usize.div_ceil(BATCH) as u64);
                assert_eq!(sender.gso_messages, 0);
            }
            for (k, r) in receivers.iter().enumerate() {
                let got: Vec<Vec<u8>> = receive(r, 150).into_iter().map(|(d, _)| d).collect();
                let want: Vec<Vec<u8>> = batch[k * 150..(k + 1) * 150]
                    .iter()
                    .map(|(_, _, d)| d.clone())
                    .collect();
                assert_eq!(got, want, "receiver {k}, gso {gso}");
            }
        }
    }

    /// A destination the socket refuses (an IPv6 one on an IPv4 socket fails at once, as a
    /// prohibit route does) and a source not of this host cost only their own datagrams.
    #[test]
    fn a_refused_datagram_costs_only_itself() {
        let r = receiver();
        let to = r.local_addr().unwrap();
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let batch = vec![
            (None, to, vec![1; 500]),
            (None, v6, vec![2; 500]),
            (None, v6, vec![3; 500]),
            (None, to, vec![4; 500]),
            (Some([192, 0, 2, 99].into()), to, vec![5; 500]),
            (None, to, vec![6; 500]),
        ];
        let mut sender = SourcedSender::new(false, true);
        // The two to `v6` are one GSO message: refused together (EINVAL on a GSO message
        // first turns GSO off, then each is refused alone).
        assert_eq!(send(&mut sender, &socket, &batch), [1, 2, 4]);
        let got: Vec<Vec<u8>> = receive(&r, 3).into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, [vec![1; 500], vec![4; 500], vec![6; 500]]);
    }
}
