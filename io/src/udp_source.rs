//! Sending a datagram from a chosen local address (`IP_PKTINFO` / `IPV6_PKTINFO`).
//!
//! The RTSP server's UDP ports are bound to its listener's address, by default a wildcard
//! (0.0.0.0, or [::]). From a wildcard socket the kernel picks each datagram's source by route:
//! on a host with several addresses, a player that connected to one of them (an alias, or an
//! address reached through another interface) would get its media from another, which its NAT
//! or firewall drops (and `server_port` in the SETUP answer would name a port on an address it
//! never spoke to). Naming the source per datagram keeps it the address the player connected to.

// sendmsg with a control message through libc: each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// u64 words of the control buffer: CMSG_SPACE(sizeof(in6_pktinfo)) is 40 bytes on 64-bit Linux.
const CONTROL_WORDS: usize = 8;

/// Sends `data` to `to` from local address `from`, on `socket` (non-blocking: `WouldBlock`
/// when its buffer is full). `v6`: the socket is IPv6 (then an IPv4 `from` goes IPv4-mapped,
/// for an IPv4-mapped `to`); on an IPv4 socket `from` must be IPv4.
pub fn send_from(
    socket: &impl AsRawFd,
    v6: bool,
    from: IpAddr,
    to: SocketAddr,
    data: &[u8],
) -> io::Result<usize> {
    let from_v4 = match (v6, from) {
        (false, IpAddr::V4(a)) => Some(a),
        (false, IpAddr::V6(a)) => Some(a.to_ipv4_mapped().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "IPv6 source on an IPv4 socket")
        })?),
        (true, _) => None,
    };
    let dest = SockAddr::from(to);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut control = [0u64; CONTROL_WORDS];
    let len = if v6 {
        size_of::<libc::in6_pktinfo>()
    } else {
        size_of::<libc::in_pktinfo>()
    };
    // SAFETY: msghdr is plain old data; zero is a valid "nothing" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = dest.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = dest.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    // SAFETY: pure arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(len as libc::c_uint) } as _;
    // SAFETY: `msg_control` points at `control`: zeroed, aligned for cmsghdr and larger than
    // CMSG_SPACE(len), so CMSG_FIRSTHDR is that buffer and its data has room for `len` bytes,
    // written unaligned.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
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
    }
    // SAFETY: `msg` points at `dest`, `iov` (over `data`) and `control`, all alive here.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
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

    /// Loopback owns all of 127/8: a wildcard socket sends from 127.0.0.2 or 127.0.0.3 when
    /// told, where the kernel alone picks 127.0.0.1.
    #[test]
    fn a_wildcard_socket_sends_from_the_address_it_is_told() {
        let r = receiver();
        let to = r.local_addr().unwrap();
        let mut buf = [0u8; 16];
        let v4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        v4.send_to(b"plain", to).unwrap();
        let (_, from) = r.recv_from(&mut buf).unwrap();
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], port)));
        send_from(&v4, false, [127, 0, 0, 2].into(), to, b"told").unwrap();
        let (n, from) = r.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"told"[..], ([127, 0, 0, 2], port).into())
        );

        // A dual-stack socket, to an IPv4-mapped address: the source goes IPv4-mapped.
        let v6 = UdpSocket::bind("[::]:0").unwrap();
        let port = v6.local_addr().unwrap().port();
        let mapped = SocketAddr::new(
            std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
            to.port(),
        );
        send_from(&v6, true, [127, 0, 0, 3].into(), mapped, b"mapped").unwrap();
        let (n, from) = r.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"mapped"[..], ([127, 0, 0, 3], port).into())
        );
    }

    #[test]
    fn an_address_not_of_this_host_is_refused() {
        let r = receiver();
        let v4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let e = send_from(
            &v4,
            false,
            [192, 0, 2, 99].into(),
            r.local_addr().unwrap(),
            b"x",
        );
        assert!(e.is_err());
    }
}
