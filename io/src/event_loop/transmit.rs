//! Transmit batching: the gateway's datagrams leave in `sendmmsg` batches per socket, runs to
//! one viewer as GSO messages; packets for ICE-TCP viewers are framed into their connection's
//! queue and each connection written once per batch.

use std::collections::HashMap;
use std::net::SocketAddr;

use camgate_core::gateway::Gateway;
use camgate_core::str0m::net::{Protocol, Transmit};
use slab::Slab;

use super::Endpoint;

/// Datagrams taken from the gateway before they are sent: a few `sendmmsg` calls' worth, and
/// enough viewers (a P-frame is about 7 packets each) that each call carries many.
const TX_CHUNK: usize = 256;

/// The shared WebRTC UDP sockets by address, and the buffers of one batched send.
pub(super) struct TxBatch {
    /// UDP socket slab keys by local address, to send from the address str0m chose.
    udp_by_addr: HashMap<SocketAddr, usize>,
    /// Datagrams taken from the gateway for one batched send; capacity is reused.
    buf: Vec<Transmit>,
    /// Indices into `buf` grouped by destination, for GSO runs; capacity is reused.
    order: Vec<u32>,
    /// ICE-TCP connections' slab keys by the browser's address.
    tcp_by_remote: HashMap<SocketAddr, usize>,
    /// ICE-TCP connections given frames in this batch, to write at its end.
    tcp_dirty: Vec<usize>,
    /// Browsers whose ICE-TCP queue was full: a packet to them was dropped.
    tcp_backlog: Vec<SocketAddr>,
    /// ICE-TCP connections whose write failed, for the loop to close.
    tcp_dead: Vec<usize>,
}

impl TxBatch {
    pub(super) fn new() -> Self {
        Self {
            udp_by_addr: HashMap::new(),
            buf: Vec::with_capacity(1024),
            order: Vec::with_capacity(1024),
            tcp_by_remote: HashMap::new(),
            tcp_dirty: Vec::new(),
            tcp_backlog: Vec::new(),
            tcp_dead: Vec::new(),
        }
    }

    /// ICE-TCP connection `key` carries what str0m sends to `remote`.
    pub(super) fn add_tcp(&mut self, remote: SocketAddr, key: usize) {
        self.tcp_by_remote.insert(remote, key);
    }

    pub(super) fn remove_tcp(&mut self, remote: SocketAddr, key: usize) {
        if self.tcp_by_remote.get(&remote) == Some(&key) {
            self.tcp_by_remote.remove(&remote);
        }
        self.tcp_dead.retain(|k| *k != key);
        self.tcp_dirty.retain(|k| *k != key);
    }

    pub(super) fn has_dead(&self) -> bool {
        !self.tcp_dead.is_empty()
    }

    pub(super) fn take_dead(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.tcp_dead)
    }

    /// A shared UDP socket, bound at slab key `key`, sends what leaves from `addr`.
    pub(super) fn add_socket(&mut self, addr: SocketAddr, key: usize) {
        self.udp_by_addr.insert(addr, key);
    }

    /// Sends every datagram the gateway has, in chunks of about `TX_CHUNK`: the gateway
    /// encrypts viewer by viewer as datagrams are taken, so the first viewers' packets leave
    /// while the rest are still to be encrypted.
    pub(super) fn flush(&mut self, gateway: &mut Gateway, endpoints: &mut Slab<Endpoint>) {
        loop {
            self.buf.clear();
            while self.buf.len() < TX_CHUNK || gateway.transmit_queued() {
                let Some(t) = gateway.poll_transmit() else {
                    break;
                };
                self.buf.push(t);
            }
            if self.buf.is_empty() {
                return;
            }
            self.send_buf(endpoints);
            for remote in self.tcp_backlog.drain(..) {
                gateway.handle_tcp_backlog(remote);
            }
        }
    }

    /// Frames the TCP packets of `buf` into their connections' queues and takes them out of
    /// `buf`; writes each connection that got some once.
    fn queue_tcp(&mut self, endpoints: &mut Slab<Endpoint>) {
        if !self.buf.iter().any(|t| t.proto == Protocol::Tcp) {
            return;
        }
        for t in self.buf.iter().filter(|t| t.proto == Protocol::Tcp) {
            let conn = (self.tcp_by_remote.get(&t.destination))
                .and_then(|k| Some((*k, endpoints.get_mut(*k)?)));
            let Some((key, Endpoint::IceTcp(conn))) = conn else {
                continue; // closed meanwhile: nothing to send it on
            };
            if !conn.out.push(&t.contents) {
                // Whole packets are dropped, the framing stays intact; the viewer skips to
                // the next keyframe (once per batch is enough).
                if self.tcp_backlog.last() != Some(&t.destination) {
                    self.tcp_backlog.push(t.destination);
                }
                continue;
            }
            if !conn.dirty {
                conn.dirty = true;
                self.tcp_dirty.push(key);
            }
        }
        for key in self.tcp_dirty.drain(..) {
            if let Some(Endpoint::IceTcp(conn)) = endpoints.get_mut(key) {
                conn.dirty = false;
                if !conn.write_queued() && !conn.dead {
                    conn.dead = true;
                    self.tcp_dead.push(key);
                }
            }
        }
        self.buf.retain(|t| t.proto != Protocol::Tcp);
    }

    /// Sends the datagrams in `buf`, in `sendmmsg` batches per socket.
    fn send_buf(&mut self, endpoints: &mut Slab<Endpoint>) {
        self.queue_tcp(endpoints);
        let fallback = self.udp_by_addr.values().next().copied();
        let socket_of = |t: &Transmit| self.udp_by_addr.get(&t.source).copied().or(fallback);
        // Runs of datagrams leaving from the same socket go out together (with one socket,
        // which is the usual case, that is all of them).
        let mut start = 0;
        while start < self.buf.len() {
            let key = socket_of(&self.buf[start]);
            let mut end = start + 1;
            while end < self.buf.len() && socket_of(&self.buf[end]) == key {
                end += 1;
            }
            if let Some(Endpoint::Udp(udp)) = key.and_then(|k| endpoints.get_mut(k)) {
                // The gateway emits one datagram per viewer per camera packet; grouped by
                // viewer (each viewer's own order kept), a frame's packets to one viewer
                // become one GSO message.
                let tx = &self.buf;
                self.order.clear();
                self.order.extend(start as u32..end as u32);
                self.order
                    .sort_unstable_by_key(|&i| (tx[i as usize].destination, i));
                udp.send_all(&self.order, |&i| {
                    let t = &tx[i as usize];
                    (t.destination, &t.contents[..])
                });
            }
            start = end;
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    use camgate_core::ice_tcp::{Deframer, SEND_QUEUE_LIMIT};

    use super::super::ice_tcp::IceTcpConn;
    use super::*;

    /// A connected pair: camgate's accepted side (non-blocking, in the slab) and the browser's.
    fn connection(
        endpoints: &mut Slab<Endpoint>,
        tx: &mut TxBatch,
    ) -> (usize, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let browser = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, remote) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let conn = IceTcpConn::for_test(mio::net::TcpStream::from_std(ours), remote, local);
        let key = endpoints.insert(Endpoint::IceTcp(Box::new(conn)));
        tx.add_tcp(remote, key);
        (key, browser)
    }

    fn transmit(to: SocketAddr, n: u32) -> Transmit {
        let mut contents = vec![0x80u8; 1200];
        contents[..4].copy_from_slice(&n.to_be_bytes());
        Transmit {
            proto: Protocol::Tcp,
            source: "127.0.0.1:20000".parse().unwrap(),
            destination: to,
            contents: contents.into(),
        }
    }

    #[test]
    fn a_browser_that_stops_reading_loses_whole_packets_and_holds_up_no_one() {
        let mut endpoints = Slab::new();
        let mut tx = TxBatch::new();
        let (stalled_key, _stalled) = connection(&mut endpoints, &mut tx);
        let (_, mut reader) = connection(&mut endpoints, &mut tx);
        let remote = |key: usize, e: &Slab<Endpoint>| match &e[key] {
            Endpoint::IceTcp(c) => c.remote,
            _ => unreachable!(),
        };
        let stalled_addr = remote(stalled_key, &endpoints);
        let reader_addr = reader.local_addr().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut deframer = Deframer::new();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // 20000 batches of one packet to each: 24 MB each, far past socket buffers and the queue.
        let mut backlogged = 0;
        for n in 0..20_000u32 {
            tx.buf.push(transmit(stalled_addr, n));
            tx.buf.push(transmit(reader_addr, n));
            tx.send_buf(&mut endpoints);
            assert!(tx.buf.is_empty(), "TCP transmits never reach the UDP path");
            backlogged += tx
                .tcp_backlog
                .drain(..)
                .filter(|a| *a == stalled_addr)
                .count();
            // The reading browser keeps up.
            while got.len() <= n as usize {
                let r = reader.read(&mut buf).unwrap();
                assert!(r > 0);
                deframer
                    .feed(&buf[..r], |f| {
                        got.push(u32::from_be_bytes(f[..4].try_into().unwrap()));
                        true
                    })
                    .unwrap();
            }
        }
        assert_eq!(
            got,
            (0..20_000).collect::<Vec<_>>(),
            "every packet, in order"
        );
        let Endpoint::IceTcp(stalled) = &endpoints[stalled_key] else {
            unreachable!()
        };
        assert!(
            stalled.out.len() <= SEND_QUEUE_LIMIT,
            "{}",
            stalled.out.len()
        );
        assert!(
            backlogged > 1000,
            "the stalled viewer was reported behind: {backlogged}"
        );
        assert!(!tx.has_dead());
    }
}
