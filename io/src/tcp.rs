//! A non-blocking TCP connection with an outgoing queue.
//!
//! mio is edge-triggered: a connection is registered for both readable and writable once, and
//! after every event we read until `WouldBlock` and flush what is queued. Writes that don't fit
//! the socket wait in `out`, bounded so a client that stops reading can't exhaust memory.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// What one `read_available` call saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has no more data for now.
    WouldBlock,
    /// The peer closed its side, or the connection failed.
    Closed,
}

pub struct TcpConn {
    pub stream: TcpStream,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    out_pos: usize,
    /// Close once `out` is flushed.
    pub closing: bool,
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
        }
    }

    /// Reads until `WouldBlock`, handing each chunk to `on_data`; `buf` is the loop's shared
    /// read buffer, so reading allocates nothing.
    pub fn read_available(
        &mut self,
        buf: &mut [u8],
        on_data: &mut dyn FnMut(&[u8]),
    ) -> ReadOutcome {
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

    /// Queues `data` and writes as much as the socket takes. Err when the peer is gone or stuck.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
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

    pub fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }
}
