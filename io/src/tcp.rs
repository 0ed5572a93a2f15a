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
}

impl TcpConn {
    /// Queued bytes beyond which the peer is considered stuck and is dropped.
    pub const MAX_QUEUED: usize = 8 << 20;

    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            out: Vec::new(),
            out_pos: 0,
            closing: false,
            tls: None,
            tls_error: None,
        }
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
        if self.tls.is_some() {
            return self.read_tls(buf, on_data);
        }
        loop {
            match self.stream.read(buf) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => on_data(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    fn read_tls(&mut self, buf: &mut [u8], on_data: &mut dyn FnMut(&[u8])) -> ReadOutcome {
        let Some(tls) = self.tls.as_deref_mut() else {
            return ReadOutcome::Closed;
        };
        loop {
            let eof = match tls.conn.read_tls(&mut self.stream) {
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
            // Drain the plaintext as it comes so rustls's buffer never fills up.
            loop {
                match tls.conn.reader().read(buf) {
                    Ok(0) => return ReadOutcome::Closed, // close_notify
                    Ok(n) => on_data(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return ReadOutcome::Closed, // EOF without close_notify
                }
            }
            if eof {
                return ReadOutcome::Closed;
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
        if self.pending() + data.len() > Self::MAX_QUEUED {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "peer is not reading",
            ));
        }
        if self.pending() == 0 {
            // Fast path: write straight from the caller's buffer, queue only the rest.
            let n = match self.stream.write(data) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            self.out.clear();
            self.out_pos = 0;
            self.out.extend_from_slice(&data[n..]);
            return Ok(());
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
        Ok(())
    }

    /// Bytes waiting for the socket; with TLS, 1 while rustls has any (it does not say how many).
    pub fn pending(&self) -> usize {
        match &self.tls {
            Some(tls) => usize::from(tls.conn.wants_write()),
            None => self.out.len() - self.out_pos,
        }
    }
}
