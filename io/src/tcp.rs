//! A non-blocking TCP connection with an outgoing queue.
//!
//! mio is edge-triggered: a connection is registered for both readable and writable once, and
//! after every event we read until `WouldBlock` and flush what is queued. Writes that don't fit
//! the socket wait in `out`, bounded so a client that stops reading can't exhaust memory.
//!
//! A camera connection may run TLS (`rtsps://`): then what goes in and out of the connection
//! is plaintext, and rustls's own buffers stand in for `out`.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::camera_tls::CameraTlsSession;

/// What one `read_available` call saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has no more data for now.
    WouldBlock,
    /// The byte budget was used up: more may be waiting (the caller must come back, as
    /// edge-triggered polling will not report it again).
    More,
    /// The peer closed its side, or the connection failed.
    Closed,
    /// The TLS session failed (handshake, certificate, a bad record): see `TcpConn::tls_error`.
    TlsFailed,
}

pub struct TcpConn {
    pub stream: TcpStream,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    out_pos: usize,
    /// Close once `out` is flushed.
    pub closing: bool,
    /// TLS session of an `rtsps://` camera.
    tls: Option<Box<CameraTlsSession>>,
    /// Why the TLS session failed, for the operator.
    tls_error: Option<String>,
    /// Queued bytes beyond which the peer is considered stuck (`MAX_QUEUED` unless set).
    limit: usize,
}

impl TcpConn {
    /// Queued bytes beyond which the peer is considered stuck and is dropped.
    pub const MAX_QUEUED: usize = 8 << 20;
    /// What a browser's connection (HTTP, signaling) may have queued: its messages are a few
    /// KiB, the largest answers (REST lists, `/metrics`) well under this once the socket took
    /// its share.
    pub const MAX_QUEUED_WEB: usize = 1 << 20;
    /// Queue capacity kept after it drained; a burst's larger buffer is given back.
    pub const KEEP_CAPACITY: usize = 64 << 10;

    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            out: Vec::new(),
            out_pos: 0,
            closing: false,
            tls: None,
            tls_error: None,
            limit: Self::MAX_QUEUED,
        }
    }

    /// A connection whose queue may hold at most `limit` bytes.
    pub fn with_limit(stream: TcpStream, limit: usize) -> Self {
        let mut conn = Self::new(stream);
        conn.limit = limit;
        conn
    }

    /// A connection that runs `tls` over `stream`: reads and sends are plaintext.
    pub fn with_tls(stream: TcpStream, mut tls: CameraTlsSession) -> Self {
        // rustls's buffers hold what the socket does not take yet: bound them like `out`.
        tls.conn.set_buffer_limit(Some(Self::MAX_QUEUED));
        let mut conn = Self::new(stream);
        conn.tls = Some(Box::new(tls));
        conn
    }

    /// Still in the TLS handshake (false for plain TCP).
    pub fn tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.is_handshaking())
    }

    /// Why the TLS session failed, after `ReadOutcome::TlsFailed`.
    pub fn tls_error(&self) -> Option<&str> {
        self.tls_error.as_deref()
    }

    /// Queues a TLS close_notify (nothing for plain TCP), sent by the next `flush`.
    pub fn close_tls(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.conn.send_close_notify();
        }
    }

    /// Reads until `WouldBlock`, handing each chunk to `on_data`; `buf` is the loop's shared
    /// read buffer, so reading allocates nothing.
    pub fn read_available(
        &mut self,
        buf: &mut [u8],
        on_data: &mut dyn FnMut(&[u8]),
    ) -> ReadOutcome {
        self.read_upto(buf, usize::MAX, on_data)
    }

    /// Like `read_available`, but stops with `More` once `budget` bytes were handed over, so
    /// a caller can act on a slice (send what it produced) before reading the next.
    pub fn read_upto(
        &mut self,
        buf: &mut [u8],
        budget: usize,
        on_data: &mut dyn FnMut(&[u8]),
    ) -> ReadOutcome {
        if self.tls.is_some() {
            return self.read_tls(buf, budget, on_data);
        }
        let mut got = 0;
        loop {
            if got >= budget {
                return ReadOutcome::More;
            }
            let want = buf.len().min(budget - got);
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    got += n;
                    on_data(&buf[..n])
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    fn read_tls(
        &mut self,
        buf: &mut [u8],
        budget: usize,
        on_data: &mut dyn FnMut(&[u8]),
    ) -> ReadOutcome {
        let Some(tls) = self.tls.as_deref_mut() else {
            return ReadOutcome::Closed;
        };
        let mut got = 0;
        let mut eof = false;
        loop {
            // Plaintext first: rustls may hold some left by a read that stopped at its budget.
            loop {
                if got >= budget {
                    return ReadOutcome::More;
                }
                let want = buf.len().min(budget - got);
                match tls.conn.reader().read(&mut buf[..want]) {
                    Ok(0) => return ReadOutcome::Closed, // close_notify
                    Ok(n) => {
                        got += n;
                        on_data(&buf[..n])
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return ReadOutcome::Closed, // EOF without close_notify
                }
            }
            if eof {
                return ReadOutcome::Closed;
            }
            eof = match tls.conn.read_tls(&mut self.stream) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            };
            if let Err(e) = tls.conn.process_new_packets() {
                self.tls_error = Some(tls.describe_failure(&e));
                // Tell the camera why (an alert), as far as the socket takes it.
                let _ = tls.conn.write_tls(&mut self.stream);
                return ReadOutcome::TlsFailed;
            }
        }
    }

    /// Queues `data` and writes as much as the socket takes. Err when the peer is gone or stuck.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(tls) = self.tls.as_deref_mut() {
            // Before the handshake is done rustls holds the plaintext and sends it after.
            let n = tls.conn.writer().write(data)?;
            if n < data.len() {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "peer is not reading",
                ));
            }
            return self.flush();
        }
        let stuck = || io::Error::new(io::ErrorKind::OutOfMemory, "peer is not reading");
        if self.pending() == 0 {
            // Fast path: write straight from the caller's buffer, queue only the rest.
            let n = match self.stream.write(data) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if data.len() - n > self.limit {
                return Err(stuck());
            }
            self.out.clear();
            self.out_pos = 0;
            self.out.extend_from_slice(&data[n..]);
            return Ok(());
        }
        if self.pending() + data.len() > self.limit {
            return Err(stuck());
        }
        self.out.extend_from_slice(data);
        self.flush()
    }

    /// Writes queued bytes until the socket would block.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_deref_mut() {
            while tls.conn.wants_write() {
                match tls.conn.write_tls(&mut self.stream) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > Self::KEEP_CAPACITY {
            // A burst is over: its buffer goes back rather than staying with the connection.
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Bytes the kernel holds for reading on this connection (0 when it can't tell).
    #[allow(unsafe_code)] // ioctl through libc: std has no FIONREAD
    pub fn queued_in(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int into `n`, which outlives the call; the fd is open.
        let r = unsafe { libc::ioctl(self.stream.as_raw_fd(), libc::FIONREAD, &mut n) };
        if r == 0 {
            n.max(0) as usize
        } else {
            0
        }
    }

    /// Capacity of the outgoing queue (for tests of what a burst leaves behind).
    pub fn queue_capacity(&self) -> usize {
        self.out.capacity()
    }

    /// Bytes waiting for the socket; with TLS, 1 while rustls has any (it does not say how many).
    pub fn pending(&self) -> usize {
        match &self.tls {
            Some(tls) => usize::from(tls.conn.wants_write()),
            None => self.out.len() - self.out_pos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair: our `TcpConn` and the peer's blocking socket.
    fn pair(limit: usize) -> (TcpConn, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        // Small socket buffers, so what a test sends queues up on our side.
        socket2::SockRef::from(&ours)
            .set_send_buffer_size(16 << 10)
            .unwrap();
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(16 << 10)
            .unwrap();
        ours.set_nonblocking(true).unwrap();
        let conn = TcpConn::with_limit(TcpStream::from_std(ours), limit);
        (conn, peer)
    }

    #[test]
    fn a_burst_queued_for_a_slow_peer_gives_its_buffer_back_once_sent() {
        let (mut conn, mut peer) = pair(TcpConn::MAX_QUEUED_WEB);
        // More than the socket takes at once: the rest waits in the queue.
        let burst = vec![7u8; 900 << 10];
        for _ in 0..8 {
            if conn.pending() > 0 {
                break;
            }
            conn.send(&burst).unwrap();
        }
        assert!(conn.pending() > 0, "the socket took everything");
        assert!(conn.queue_capacity() > TcpConn::KEEP_CAPACITY);
        // The peer reads it all: the queue drains and its burst-sized buffer is released.
        peer.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut sink = vec![0u8; 1 << 20];
        while conn.pending() > 0 {
            let _ = peer.read(&mut sink);
            conn.flush().unwrap();
        }
        assert!(
            conn.queue_capacity() <= TcpConn::KEEP_CAPACITY,
            "kept {} bytes after the burst",
            conn.queue_capacity()
        );
    }

    #[test]
    fn a_peer_that_does_not_read_is_dropped_at_the_connection_limit() {
        let (mut conn, _peer) = pair(256 << 10);
        let chunk = vec![1u8; 64 << 10];
        let mut sent = 0usize;
        let err = loop {
            match conn.send(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(e) => break e,
            }
            assert!(sent < 64 << 20, "never refused");
        };
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(conn.pending() <= 256 << 10, "queued {}", conn.pending());
    }

    #[test]
    fn reading_stops_at_the_budget_and_goes_on_where_it_stopped() {
        let (mut conn, mut peer) = pair(TcpConn::MAX_QUEUED);
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        peer.write_all(&data).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut buf = vec![0u8; 64 << 10];
        let mut got = Vec::new();
        let outcome = conn.read_upto(&mut buf, 30_000, &mut |d| got.extend_from_slice(d));
        assert_eq!(outcome, ReadOutcome::More);
        assert_eq!(got.len(), 30_000);
        let outcome = conn.read_upto(&mut buf, usize::MAX, &mut |d| got.extend_from_slice(d));
        assert_eq!(outcome, ReadOutcome::WouldBlock);
        assert_eq!(got, data);
    }
}
