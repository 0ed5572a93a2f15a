//! Transmit batching: the gateway's datagrams leave in `sendmmsg` batches per socket, runs to
//! one viewer as GSO messages.

use std::collections::HashMap;
use std::net::SocketAddr;

use camgate_core::gateway::Gateway;
use camgate_core::str0m::net::Transmit;
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
}

impl TxBatch {
    pub(super) fn new() -> Self {
        Self {
            udp_by_addr: HashMap::new(),
            buf: Vec::with_capacity(1024),
            order: Vec::with_capacity(1024),
        }
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
        }
    }

    /// Sends the datagrams in `buf`, in `sendmmsg` batches per socket.
    fn send_buf(&mut self, endpoints: &mut Slab<Endpoint>) {
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
