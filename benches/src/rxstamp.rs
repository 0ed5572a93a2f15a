//! Kernel receive timestamps (`SO_TIMESTAMPNS`) for the load generator's sockets: on loopback the
//! stamp is taken when the server's send hands the data to the loopback device, so it marks the
//! moment the server sent it, whatever the load generator's thread was busy with.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

/// Ask the kernel to stamp what this socket receives with its receive time (wall clock). UDP: each
/// datagram. TCP: a read gets the stamp of the last segment it took data from.
#[allow(unsafe_code)] // setsockopt through libc
pub fn enable_rx_timestamps(sock: &impl AsRawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `recv_from` that also returns the datagram's kernel receive stamp (wall clock), when there is one.
pub fn recv_stamped(
    sock: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<SystemTime>)> {
    let (n, src, stamp) = recvmsg(sock.as_raw_fd(), buf)?;
    let src = src.ok_or_else(|| io::Error::other("unknown address family"))?;
    Ok((n, src, stamp))
}

/// `read` of a TCP stream with the kernel stamp of the last segment read, when there is one.
/// `Ok((0, _))` is the end of the stream.
pub fn read_stamped(
    sock: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SystemTime>)> {
    let (n, _, stamp) = recvmsg(sock.as_raw_fd(), buf)?;
    Ok((n, stamp))
}

#[allow(unsafe_code)] // recvmsg and control messages through libc
fn recvmsg(
    fd: RawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, Option<SystemTime>)> {
    // SAFETY: every pointer handed to recvmsg points into locals that outlive the call, with their true sizes;
    // the control messages are read only within the length the kernel reported.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // A connected TCP socket fills in no address.
        let src = match addr.ss_family as libc::c_int {
            libc::AF_INET if msg.msg_namelen > 0 => {
                let a = &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                Some(SocketAddr::from((
                    u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if msg.msg_namelen > 0 => {
                let a = &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                Some(SocketAddr::from((
                    a.sin6_addr.s6_addr,
                    u16::from_be(a.sin6_port),
                )))
            }
            _ => None,
        };
        let mut stamp = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(
                    SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                );
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok((n as usize, src, stamp))
    }
}

/// A wall-clock kernel stamp as an `Instant`: `now` minus how long ago the stamp was. A stamp
/// in the future or over 10 s old is not a receive time (e.g. a TCP departure time on another
/// clock): `now` then.
pub fn kernel_instant(stamp: SystemTime, now: Instant) -> Instant {
    match SystemTime::now().duration_since(stamp) {
        Ok(age) if age < Duration::from_secs(10) => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}
