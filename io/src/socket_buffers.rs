//! Socket buffer sizes for the UDP sockets that carry media.
//!
//! A keyframe fanned out to many viewers is thousands of datagrams within a millisecond, and a
//! camera's keyframe over UDP arrives as a burst of about 100; the default buffers (about
//! 208 KiB on Linux) drop part of such bursts. The kernel caps what a socket may ask for at
//! `net.core.wmem_max` / `net.core.rmem_max`, unless the process may force more
//! (`SO_SNDBUFFORCE`/`SO_RCVBUFFORCE`, CAP_NET_ADMIN, e.g. root): camgate forces when it can
//! and otherwise takes what the cap allows, and says so in the log.

// setsockopt/getsockopt through libc: each block says why it is sound.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

/// What the kernel granted, in bytes (as it reports them: twice what was set, for its own
/// bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub send: usize,
    pub recv: usize,
}

/// Asks for `send` and `recv` bytes of buffer (0: leave that one as it is).
pub fn grow(socket: &impl AsRawFd, send: usize, recv: usize) -> Granted {
    let fd = socket.as_raw_fd();
    if send > 0 {
        set(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, send);
    }
    if recv > 0 {
        set(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, recv);
    }
    Granted {
        send: get(fd, libc::SO_SNDBUF),
        recv: get(fd, libc::SO_RCVBUF),
    }
}

fn set(fd: libc::c_int, force: libc::c_int, plain: libc::c_int, bytes: usize) {
    let value = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    for option in [force, plain] {
        // SAFETY: `value` outlives the call, and its size is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return; // forced, or (without the capability) capped at the sysctl maximum
        }
    }
}

fn get(fd: libc::c_int, option: libc::c_int) -> usize {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if rc == 0 {
        value.max(0) as usize
    } else {
        0
    }
}

/// `SO_MEMINFO` (asm-generic/socket.h; the libc crate has its `SK_MEMINFO_*` indices only).
const SO_MEMINFO: libc::c_int = 55;

/// Kernel memory the socket's receive queue holds, in bytes as the kernel counts them (each
/// datagram's buffer with its overhead, about 1.6 to 3 times its payload); 0 when it can't tell.
///
/// FIONREAD would give only the first datagram's size on UDP, so a camera's UDP backlog is
/// judged by this instead.
pub fn receive_queue_bytes(socket: &impl AsRawFd) -> usize {
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if rc == 0 && len as usize >= std::mem::size_of::<u32>() {
        info[libc::SK_MEMINFO_RMEM_ALLOC as usize] as usize
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receive_queue_is_measured_as_datagrams_wait_and_empties_when_read() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        grow(&socket, 0, 1 << 20);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(receive_queue_bytes(&socket), 0);
        let payload = [7u8; 1_000];
        for _ in 0..50 {
            sender
                .send_to(&payload, socket.local_addr().unwrap())
                .unwrap();
        }
        let queued = receive_queue_bytes(&socket);
        // Loopback delivers at once; each datagram costs its payload plus the kernel's overhead.
        assert!(queued >= 50 * 1_000, "{queued} bytes queued for 50 × 1,000");
        socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2_000];
        while socket.recv(&mut buf).is_ok() {}
        assert_eq!(receive_queue_bytes(&socket), 0);
    }

    #[test]
    fn buffers_grow_to_what_is_asked_or_the_cap() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = grow(&socket, 0, 0);
        let granted = grow(&socket, 1 << 20, 1 << 20);
        // Linux reports twice what was set; a capped request still grows the buffer unless the
        // cap is below the default.
        assert!(granted.send >= before.send && granted.recv >= before.recv);
        assert!(granted.send > 0 && granted.recv > 0);
    }
}
