//! Just enough STUN (RFC 5389) to route a datagram from an address camgate has not seen yet,
//! and a Binding client ([`StunClient`]) that learns camgate's public (server-reflexive)
//! address for each media socket.
//!
//! Every viewer shares one UDP port. A browser's first datagram from a new address is always
//! an ICE connectivity check: a STUN Binding request whose USERNAME is
//! `<camgate's ufrag>:<browser's ufrag>`. Reading that ufrag finds the viewer with one map
//! lookup, so a flood of datagrams from unknown addresses costs the same whatever the number
//! of viewers (instead of asking every viewer's WebRTC stack in turn).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const USERNAME: u16 = 0x0006;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// Whether `data` looks like a STUN message (RFC 5389 6: two zero bits, the magic cookie).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER && data[0] & 0xC0 == 0 && data[4..8] == MAGIC_COOKIE
}

/// The local (camgate's) ufrag named by a STUN Binding request, if `data` is one.
pub fn local_ufrag(data: &[u8]) -> Option<&str> {
    if data.len() < HEADER || data[4..8] != MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([data[0], data[1]]) != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(HEADER..HEADER + length)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split_once(':').map(|(local, _)| local);
        }
        // Attributes are padded to 4 bytes.
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

/// A STUN server camgate asks for its public address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunServer {
    /// As configured ("stun:stun.example.net:3478"), for logs.
    pub url: String,
    /// Where requests go (the server resolved the name at start).
    pub addr: SocketAddr,
}

/// First retransmission after this; each next one waits twice as long (RFC 5389 7.2.1).
const RTO: Duration = Duration::from_millis(500);
/// Requests per server before the next server is tried (sent at 0, 0.5, 1.5, 3.5 s; given up
/// at 7.5 s).
const TRIES: u32 = 4;
/// How often a known mapping is checked again: notices a changed public address, and keeps the
/// NAT's mapping of the media port open (UDP mappings commonly expire after 30 s to 2 min).
pub const STUN_REFRESH: Duration = Duration::from_secs(25);
/// After every server failed: wait this long, doubling up to `FAILED_RETRY_MAX`.
const FAILED_RETRY: Duration = Duration::from_secs(30);
const FAILED_RETRY_MAX: Duration = Duration::from_secs(300);

/// What a [`StunClient`] learned, for the gateway to log and use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StunEvent {
    /// The public address of media socket `local` (first learned, or changed from `old`).
    Mapped {
        /// camgate's media socket (its host candidate).
        local: SocketAddr,
        /// Its address as the STUN server saw it.
        public: SocketAddr,
        /// The previous public address, when it changed.
        old: Option<SocketAddr>,
        /// The server that answered.
        server: String,
    },
    /// No server answered for `local` (the servers tried are listed in `servers`).
    Failed {
        /// camgate's media socket.
        local: SocketAddr,
        /// "stun:a:3478, stun:b:3478".
        servers: String,
        /// When the next round starts.
        retry_in: Duration,
    },
}

/// One media socket's discovery.
#[derive(Debug)]
struct Probe {
    local: SocketAddr,
    /// The server being asked (index in `servers`).
    server: usize,
    /// The outstanding request: its transaction id and how many times it was sent.
    txid: Option<[u8; 12]>,
    tries: u32,
    /// When to send (again), or give up on this server.
    due: Instant,
    mapped: Option<SocketAddr>,
    /// Wait after the next all-servers failure.
    backoff: Duration,
}

/// A request to send: from media socket `source` to STUN server `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunRequest {
    /// camgate's media socket: the request must leave from it, so that the mapping learned is
    /// the one browsers reach.
    pub source: SocketAddr,
    /// The STUN server.
    pub destination: SocketAddr,
    /// The Binding request.
    pub data: Vec<u8>,
}

/// Learns the public address of each media socket from STUN servers (sans-IO: time comes in,
/// requests go out, answers come in; transaction ids from the caller's seeded generator).
#[derive(Debug)]
pub struct StunClient {
    servers: Vec<StunServer>,
    probes: Vec<Probe>,
    requests: VecDeque<StunRequest>,
    events: VecDeque<StunEvent>,
}

impl StunClient {
    /// Discovery for each socket in `locals` (loopback ones only when a server is on loopback
    /// too: no other is reachable from them), starting at `now`. `None` without servers.
    pub fn new(servers: Vec<StunServer>, locals: &[SocketAddr], now: Instant) -> Option<Self> {
        if servers.is_empty() {
            return None;
        }
        let loopback_server = servers.iter().any(|s| s.addr.ip().is_loopback());
        let probes = locals
            .iter()
            .filter(|a| !a.ip().is_unspecified() && (loopback_server || !a.ip().is_loopback()))
            .map(|&local| Probe {
                local,
                server: 0,
                txid: None,
                tries: 0,
                due: now,
                mapped: None,
                backoff: FAILED_RETRY,
            })
            .collect();
        Some(Self {
            servers,
            probes,
            requests: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The public address learned for media socket `local`.
    pub fn mapped(&self, local: SocketAddr) -> Option<SocketAddr> {
        self.probes
            .iter()
            .find(|p| p.local == local)
            .and_then(|p| p.mapped)
    }

    /// Every (public address, media socket) learned so far.
    pub fn mappings(&self) -> impl Iterator<Item = (SocketAddr, SocketAddr)> + '_ {
        self.probes
            .iter()
            .filter_map(|p| p.mapped.map(|m| (m, p.local)))
    }

    /// When `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.probes.iter().map(|p| p.due).min()
    }

    /// Sends, resends, gives up on a server and moves to the next, as time says.
    pub fn handle_timeout(&mut self, now: Instant, next_u64: &mut dyn FnMut() -> u64) {
        let n = self.servers.len();
        for p in &mut self.probes {
            if p.due > now {
                continue;
            }
            if p.txid.is_some() && p.tries >= TRIES {
                // This server never answered: the next one, or the end of the round.
                p.txid = None;
                p.tries = 0;
                p.server += 1;
                if p.server >= n {
                    p.server = 0;
                    let retry_in = p.backoff;
                    p.backoff = (p.backoff * 2).min(FAILED_RETRY_MAX);
                    p.due = now + retry_in;
                    let servers = self.servers.iter().map(|s| s.url.as_str());
                    self.events.push_back(StunEvent::Failed {
                        local: p.local,
                        servers: servers.collect::<Vec<_>>().join(", "),
                        retry_in,
                    });
                    continue;
                }
            }
            let txid = *p.txid.get_or_insert_with(|| {
                let (a, b) = (next_u64(), next_u64());
                let mut id = [0; 12];
                id[..8].copy_from_slice(&a.to_be_bytes());
                id[8..].copy_from_slice(&b.to_be_bytes()[..4]);
                id
            });
            self.requests.push_back(StunRequest {
                source: p.local,
                destination: self.servers[p.server].addr,
                data: binding_request_bytes(&txid),
            });
            p.due = now + RTO * (1 << p.tries);
            p.tries += 1;
        }
    }

    /// Whether a datagram from `source` to media socket `local` is an answer to one of this
    /// client's requests (a STUN Binding response from a configured server with an
    /// outstanding transaction id). Cheap: the gateway asks for every datagram from a
    /// STUN server's address.
    pub fn is_server(&self, source: SocketAddr) -> bool {
        self.servers.iter().any(|s| s.addr == source)
    }

    /// A datagram from a STUN server's address to media socket `local`: true if it was a
    /// response to an outstanding request (taken, whatever its content), false if it is not
    /// ours (the caller handles it as viewer traffic).
    pub fn handle_response(
        &mut self,
        now: Instant,
        local: SocketAddr,
        source: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(p) = self.probes.iter_mut().find(|p| p.local == local) else {
            return false;
        };
        let (Some(txid), Some(server)) = (p.txid, self.servers.get(p.server)) else {
            return false;
        };
        if server.addr != source
            || data.len() < HEADER
            || data[4..8] != MAGIC_COOKIE
            || data[8..20] != txid
        {
            return false;
        }
        match u16::from_be_bytes([data[0], data[1]]) {
            BINDING_SUCCESS => {}
            BINDING_ERROR => {
                // Refused: give up on this server at once (next one on the next tick).
                p.tries = TRIES;
                p.due = now;
                return true;
            }
            _ => return false,
        }
        let Some(public) = mapped_address(data) else {
            // Ours but unreadable: the retransmissions go on (and the next server after them).
            tracing::debug!(%local, server = %server.url, "malformed STUN response ignored");
            return true;
        };
        let old = p.mapped.filter(|m| *m != public);
        if p.mapped != Some(public) {
            self.events.push_back(StunEvent::Mapped {
                local,
                public,
                old,
                server: server.url.clone(),
            });
        }
        p.mapped = Some(public);
        p.txid = None;
        p.tries = 0;
        p.backoff = FAILED_RETRY;
        p.due = now + STUN_REFRESH;
        true
    }

    /// The next request to send.
    pub fn poll_request(&mut self) -> Option<StunRequest> {
        self.requests.pop_front()
    }

    /// The next thing learned.
    pub fn poll_event(&mut self) -> Option<StunEvent> {
        self.events.pop_front()
    }
}

/// A Binding request with no attributes (RFC 5389: all a server-reflexive lookup needs).
fn binding_request_bytes(txid: &[u8; 12]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER);
    msg.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(&MAGIC_COOKIE);
    msg.extend_from_slice(txid);
    msg
}

/// The XOR-MAPPED-ADDRESS (or, from old servers, MAPPED-ADDRESS) of a Binding response.
fn mapped_address(data: &[u8]) -> Option<SocketAddr> {
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let mut rest = data.get(HEADER..HEADER + length)?;
    let mut plain = None;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        match kind {
            XOR_MAPPED_ADDRESS => return read_address(value, Some(&data[4..20])),
            MAPPED_ADDRESS => plain = read_address(value, None),
            _ => {}
        }
        rest = rest.get(4 + ((len + 3) & !3)..).unwrap_or(&[]);
    }
    plain
}

/// An address attribute's value; `xor`: the magic cookie and transaction id it is XORed with.
fn read_address(value: &[u8], xor: Option<&[u8]>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let mut port = [*value.get(2)?, *value.get(3)?];
    let mut ip: Vec<u8> = match family {
        1 => value.get(4..8)?.to_vec(),
        2 => value.get(4..20)?.to_vec(),
        _ => return None,
    };
    if let Some(key) = xor {
        port[0] ^= key[0];
        port[1] ^= key[1];
        for (b, k) in ip.iter_mut().zip(key) {
            *b ^= k;
        }
    }
    let port = u16::from_be_bytes(port);
    let ip: IpAddr = match family {
        1 => <[u8; 4]>::try_from(ip.as_slice()).ok()?.into(),
        _ => <[u8; 16]>::try_from(ip.as_slice()).ok()?.into(),
    };
    (port != 0 && !ip.is_unspecified()).then_some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request as Chromium sends it (attributes after USERNAME trimmed).
    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // PRIORITY first, as browsers do.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x7f, 0x1e, 0xff]);
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn the_local_ufrag_of_a_binding_request() {
        assert_eq!(local_ufrag(&binding_request("aB3d:xyZ9")), Some("aB3d"));
        assert_eq!(local_ufrag(&binding_request("abc:de")), Some("abc"));
        assert_eq!(local_ufrag(&binding_request("nocolon")), None);
    }

    #[test]
    fn anything_else_is_none() {
        let mut response = binding_request("a:b");
        response[1] = 0x01;
        response[0] = 0x01; // Binding success response
        assert_eq!(local_ufrag(&response), None);
        assert_eq!(local_ufrag(&[0x80, 0x60, 0, 1, 0, 0, 0, 0]), None, "RTP");
        assert_eq!(local_ufrag(&[22, 254, 253, 0, 0]), None, "DTLS");
        assert_eq!(local_ufrag(&[]), None);
        // Lengths that run past the end, at every cut.
        let full = binding_request("ufrag:peer");
        for cut in 0..full.len() {
            assert_eq!(local_ufrag(&full[..cut]), None, "cut at {cut}");
        }
        // Any bytes at all: never a panic (a cheap stand-in for fuzzing this 30-line parser).
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let mut data = full.clone();
            for _ in 0..3 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (x >> 8) as usize % data.len();
                data[i] = (x >> 20) as u8;
            }
            let _ = local_ufrag(&data);
        }
    }

    // The Binding client.

    fn server(n: u8) -> StunServer {
        StunServer {
            url: format!("stun:198.51.100.{n}:3478"),
            addr: format!("198.51.100.{n}:3478").parse().unwrap(),
        }
    }

    /// A success response to `request` naming `public`, as coturn sends it (SOFTWARE first,
    /// then XOR-MAPPED-ADDRESS).
    fn response(request: &[u8], public: SocketAddr) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&[0x80, 0x22, 0x00, 0x03, b'c', b'o', b't', 0]);
        let key = &request[4..20];
        let SocketAddr::V4(v4) = public else { panic!() };
        let port = public.port() ^ u16::from_be_bytes([key[0], key[1]]);
        attrs.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
        attrs.extend_from_slice(&8u16.to_be_bytes());
        attrs.extend_from_slice(&[0, 1]);
        attrs.extend_from_slice(&port.to_be_bytes());
        for (b, k) in v4.ip().octets().iter().zip(key) {
            attrs.push(b ^ k);
        }
        let mut msg = BINDING_SUCCESS.to_be_bytes().to_vec();
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&request[4..20]);
        msg.extend_from_slice(&attrs);
        msg
    }

    struct Rig {
        client: StunClient,
        rng: crate::rng::SplitMix64,
        t0: Instant,
    }

    const LOCAL: &str = "192.0.2.10:20000";

    impl Rig {
        fn new(servers: Vec<StunServer>) -> Rig {
            let t0 = Instant::now();
            let locals = ["127.0.0.1:20000".parse().unwrap(), LOCAL.parse().unwrap()];
            Rig {
                client: StunClient::new(servers, &locals, t0).unwrap(),
                rng: crate::rng::SplitMix64::new(7),
                t0,
            }
        }

        /// Runs the client's timers up to `ms` after start; the requests sent meanwhile.
        fn run_to(&mut self, ms: u64) -> Vec<(u64, StunRequest)> {
            let end = self.t0 + Duration::from_millis(ms);
            let mut sent = Vec::new();
            while let Some(t) = self.client.poll_timeout().filter(|t| *t <= end) {
                let rng = &mut self.rng;
                self.client.handle_timeout(t, &mut || rng.next_u64());
                while let Some(r) = self.client.poll_request() {
                    sent.push(((t - self.t0).as_millis() as u64, r));
                }
            }
            sent
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
    }

    #[test]
    fn a_binding_request_from_the_media_socket_and_its_answer() {
        let mut rig = Rig::new(vec![server(1)]);
        let sent = rig.run_to(0);
        assert_eq!(sent.len(), 1, "one request, none from the loopback socket");
        let (_, req) = &sent[0];
        assert_eq!(req.source, LOCAL.parse().unwrap());
        assert_eq!(req.destination, server(1).addr);
        assert_eq!(&req.data[..2], &[0, 1]);
        assert_eq!(
            local_ufrag(&req.data),
            None,
            "no USERNAME: never taken for a viewer's check"
        );
        let public: SocketAddr = "203.0.113.1:40000".parse().unwrap();
        let local = LOCAL.parse().unwrap();
        assert!(rig.client.handle_response(
            rig.at(30),
            local,
            server(1).addr,
            &response(&req.data, public)
        ));
        assert_eq!(rig.client.mapped(local), Some(public));
        assert_eq!(
            rig.client.poll_event(),
            Some(StunEvent::Mapped {
                local,
                public,
                old: None,
                server: server(1).url
            })
        );
        // The same answer again (a duplicate) is not ours any more.
        assert!(!rig.client.handle_response(
            rig.at(40),
            local,
            server(1).addr,
            &response(&req.data, public)
        ));
        // Next check after the refresh interval, with a new transaction id.
        let again = rig.run_to(30 + STUN_REFRESH.as_millis() as u64);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].0, 30 + STUN_REFRESH.as_millis() as u64);
        assert_ne!(again[0].1.data[8..20], req.data[8..20]);
    }

    #[test]
    fn an_answer_that_never_comes() {
        let mut rig = Rig::new(vec![server(1), server(2)]);
        let sent = rig.run_to(20_000);
        let shown: Vec<(u64, u8)> = sent
            .iter()
            .map(|(t, r)| {
                (
                    *t,
                    match r.destination.ip() {
                        IpAddr::V4(ip) => ip.octets()[3],
                        _ => 0,
                    },
                )
            })
            .collect();
        // Retransmitted with doubling waits, then the next server, then a failure.
        assert_eq!(
            shown,
            [
                (0, 1),
                (500, 1),
                (1500, 1),
                (3500, 1),
                (7500, 2),
                (8000, 2),
                (9000, 2),
                (11000, 2)
            ]
        );
        // A request keeps its transaction id through retransmissions, not across servers.
        assert_eq!(sent[0].1.data, sent[3].1.data);
        assert_ne!(sent[3].1.data[8..20], sent[4].1.data[8..20]);
        assert_eq!(
            rig.client.poll_event(),
            Some(StunEvent::Failed {
                local: LOCAL.parse().unwrap(),
                servers: "stun:198.51.100.1:3478, stun:198.51.100.2:3478".into(),
                retry_in: Duration::from_secs(30),
            })
        );
        assert_eq!(rig.client.mapped(LOCAL.parse().unwrap()), None);
        // The next round 30 s after giving up (15 s), and the one after that 60 s later.
        let sent = rig.run_to(200_000);
        let starts: Vec<u64> = sent
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| t % 500 == 0)
            .collect();
        assert_eq!(starts[0], 45_000);
        assert!(starts.contains(&(45_000 + 15_000 + 60_000)), "{starts:?}");
        let Some(StunEvent::Failed { retry_in, .. }) = rig.client.poll_event() else {
            panic!()
        };
        assert_eq!(retry_in, Duration::from_secs(60));
    }

    #[test]
    fn a_changed_mapping_is_noticed() {
        let mut rig = Rig::new(vec![server(1)]);
        let local: SocketAddr = LOCAL.parse().unwrap();
        let first: SocketAddr = "203.0.113.1:40000".parse().unwrap();
        let second: SocketAddr = "203.0.113.1:40123".parse().unwrap();
        let (_, req) = rig.run_to(0).remove(0);
        assert!(rig.client.handle_response(
            rig.at(10),
            local,
            server(1).addr,
            &response(&req.data, first)
        ));
        assert!(matches!(
            rig.client.poll_event(),
            Some(StunEvent::Mapped { old: None, .. })
        ));
        // The refresh: same mapping, nothing to tell.
        let t = 10 + STUN_REFRESH.as_millis() as u64;
        let (_, req) = rig.run_to(t).remove(0);
        assert!(rig.client.handle_response(
            rig.at(t + 10),
            local,
            server(1).addr,
            &response(&req.data, first)
        ));
        assert_eq!(rig.client.poll_event(), None);
        // The router rebooted: another port.
        let t = t + 10 + STUN_REFRESH.as_millis() as u64;
        let (_, req) = rig.run_to(t).remove(0);
        assert!(rig.client.handle_response(
            rig.at(t + 10),
            local,
            server(1).addr,
            &response(&req.data, second)
        ));
        assert_eq!(
            rig.client.poll_event(),
            Some(StunEvent::Mapped {
                local,
                public: second,
                old: Some(first),
                server: server(1).url
            })
        );
        assert_eq!(rig.client.mapped(local), Some(second));
    }

    #[test]
    fn malformed_or_foreign_responses() {
        let mut rig = Rig::new(vec![server(1), server(2)]);
        let local: SocketAddr = LOCAL.parse().unwrap();
        let public: SocketAddr = "203.0.113.1:40000".parse().unwrap();
        let (_, req) = rig.run_to(0).remove(0);
        let good = response(&req.data, public);
        // Not from the server asked, to another socket, another transaction: not ours.
        assert!(!rig
            .client
            .handle_response(rig.at(5), local, server(2).addr, &good));
        assert!(!rig.client.handle_response(
            rig.at(5),
            "127.0.0.1:20000".parse().unwrap(),
            server(1).addr,
            &good
        ));
        let mut other = good.clone();
        other[10] ^= 1;
        assert!(!rig
            .client
            .handle_response(rig.at(5), local, server(1).addr, &other));
        // Ours but cut anywhere, or with a bad family: taken, no mapping, and no panic.
        for cut in 0..good.len() {
            let taken = rig
                .client
                .handle_response(rig.at(5), local, server(1).addr, &good[..cut]);
            assert_eq!(taken, cut >= HEADER, "cut at {cut}");
        }
        let mut bad_family = good.clone();
        bad_family[HEADER + 8 + 5] = 7;
        assert!(rig
            .client
            .handle_response(rig.at(5), local, server(1).addr, &bad_family));
        assert_eq!(rig.client.mapped(local), None);
        assert_eq!(rig.client.poll_event(), None);
        // Random bytes with our transaction id: never a panic.
        let mut x: u32 = 99;
        for _ in 0..20_000 {
            let mut data = good.clone();
            for _ in 0..3 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = HEADER + (x >> 8) as usize % (data.len() - HEADER);
                data[i] = (x >> 20) as u8;
            }
            let _ = rig
                .client
                .handle_response(rig.at(5), local, server(1).addr, &data);
        }
        // Retransmissions went on regardless; an error response moves to the next server.
        let mut error = good.clone();
        error[..2].copy_from_slice(&BINDING_ERROR.to_be_bytes());
        let mut rig = Rig::new(vec![server(1), server(2)]);
        let (_, req) = rig.run_to(0).remove(0);
        error[4..20].copy_from_slice(&req.data[4..20]);
        assert!(rig
            .client
            .handle_response(rig.at(5), local, server(1).addr, &error));
        let next = rig.run_to(5);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1.destination, server(2).addr);
        // And the good answer still counts after all that.
        let ok = response(&next[0].1.data, public);
        assert!(rig
            .client
            .handle_response(rig.at(6), local, server(2).addr, &ok));
        assert_eq!(rig.client.mapped(local), Some(public));
    }
}
