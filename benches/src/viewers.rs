//! WebRTC viewers: str0m peers in RTP mode, many per thread, one UDP socket (or, for ICE-TCP, one
//! TCP connection with RFC 4571 framing) each, driven by mio.
//! They count packets, loss (by the camera's packet ids) and latency per packet, twice: to the kernel's
//! receive timestamp of the datagram (when the server's send put it into the viewer's socket: the server's own
//! relay latency) and to when the viewer read it (which adds the load generator's own queueing).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use camgate_core::ice_tcp::{Deframer, SendQueue};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tungstenite::{Message, WebSocket};

use crate::camera::{packet_ids, SendLog, TRAILER};
use crate::rxstamp::{enable_rx_timestamps, kernel_instant, recv_stamped};

/// Latency histogram: 10 µs buckets up to 2 s.
pub const BUCKET_NS: u64 = 10_000;
pub const BUCKETS: usize = 200_000;

/// How a viewer reaches the server: its own UDP socket, or a TCP connection to the server's
/// ICE-TCP candidate (the server's address).
pub enum ViewerSocket {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpStream, SocketAddr),
}

/// A viewer whose signaling is done: its str0m peer has the remote description.
pub struct Ready {
    pub rtc: Rtc,
    pub sock: ViewerSocket,
    pub local: SocketAddr,
    /// camgate's signaling socket, kept open (and answering pings) while playing.
    pub ws: Option<WebSocket<TcpStream>>,
    /// When `playStream` / `watch` was sent.
    pub play_sent: Instant,
    /// Order of joining (0 = first): where the viewer sits in the server's viewer list.
    pub index: usize,
    /// Janus session and handle ids (for its admin API).
    pub janus_ids: Option<(u64, u64)>,
}

#[derive(Default)]
pub struct Window {
    /// ns since the send log's epoch; u64::MAX until set.
    pub w0: AtomicU64,
    pub w1: AtomicU64,
}

pub struct Shared {
    pub stop: AtomicBool,
    pub window: Window,
    pub log: Arc<SendLog>,
    /// Viewers that got a complete first keyframe.
    pub started: AtomicU64,
}

impl Shared {
    pub fn new(log: Arc<SendLog>) -> Arc<Shared> {
        Arc::new(Shared {
            stop: AtomicBool::new(false),
            window: Window {
                w0: AtomicU64::new(u64::MAX),
                w1: AtomicU64::new(u64::MAX),
            },
            log,
            started: AtomicU64::new(0),
        })
    }
}

#[derive(Debug, Default, Clone)]
pub struct ViewerStats {
    pub rx_total: u64,
    /// RTP packets that arrived inside the window (all kinds).
    pub rx_window: u64,
    /// Audio packets that arrived inside the window.
    pub audio_window: u64,
    /// Camera packets (with ids) sent inside the window and received (at any time).
    pub ids_window: u64,
    pub first_keyframe: Option<Duration>,
    /// `playStream`/`watch` → DTLS connected, → first RTP packet.
    pub connected_after: Option<Duration>,
    pub first_rtp: Option<Duration>,
    pub connected: bool,
    pub failed: bool,
    pub udp_rx: u64,
    pub udp_tx: u64,
    pub last_rx: Option<Instant>,
    /// Join order (see [`Ready::index`]).
    pub index: usize,
    /// Frame latency of every video frame sent inside the window, µs: the camera's last packet of
    /// the frame sent → the server's send of the frame's last packet to this viewer.
    pub frame_us: Vec<u32>,
    /// The SRTP protection profile in the DTLS ServerHello this viewer saw (RFC 5764 id).
    pub srtp_profile: Option<u16>,
}

pub struct WorkerResult {
    pub viewers: Vec<ViewerStats>,
    /// Camera send → viewer read.
    pub hist: Vec<u32>,
    /// Camera send → kernel receive timestamp (the server's send).
    pub relay_hist: Vec<u32>,
    /// Frame latency, all viewers.
    pub frame_hist: Vec<u32>,
    /// CPU time of the worker thread.
    pub cpu: Duration,
}

enum Sock {
    Udp(UdpSocket),
    Tcp {
        stream: mio::net::TcpStream,
        remote: SocketAddr,
        deframer: Deframer,
        out: SendQueue,
    },
}

struct Client {
    rtc: Rtc,
    sock: Sock,
    local: SocketAddr,
    ws: Option<WebSocket<TcpStream>>,
    play_sent: Instant,
    next_timeout: Instant,
    kf_ts: Option<u32>,
    /// Kernel receive time of the datagram being handled, for the packets it yields.
    rx_kernel: Option<Instant>,
    /// The last bytes of the previous FU-A fragment of an unfinished NAL unit: camgate re-cuts
    /// fragments, so a camera packet's id trailer can straddle two of its packets.
    fu_tail: Vec<u8>,
    stats: ViewerStats,
}

/// Histograms of one viewer thread.
struct Hists {
    read: Vec<u32>,
    relay: Vec<u32>,
    frame: Vec<u32>,
}

pub struct Worker {
    tx: Sender<Ready>,
    handle: JoinHandle<WorkerResult>,
}

impl Worker {
    pub fn spawn(shared: Arc<Shared>) -> Worker {
        let (tx, rx) = channel();
        let handle = thread::spawn(move || run(rx, &shared));
        Worker { tx, handle }
    }
    pub fn add(&self, r: Ready) {
        let _ = self.tx.send(r);
    }
    pub fn join(self) -> WorkerResult {
        drop(self.tx);
        self.handle.join().expect("viewer worker")
    }
}

#[allow(unsafe_code)] // clock_gettime through libc: std has no thread CPU clock
pub(crate) fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into; the clock id is a libc constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn run(rx: Receiver<Ready>, shared: &Shared) -> WorkerResult {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut clients: Vec<Client> = Vec::new();
    let mut hist = Hists {
        read: vec![0u32; BUCKETS],
        relay: vec![0u32; BUCKETS],
        frame: vec![0u32; BUCKETS],
    };
    let mut buf = vec![0u8; 64 * 1024];
    let cpu0 = thread_cpu();
    loop {
        while let Ok(r) = rx.try_recv() {
            let i = clients.len();
            let sock = match r.sock {
                ViewerSocket::Udp(s) => {
                    s.set_nonblocking(true).ok();
                    enable_rx_timestamps(&s);
                    let mut sock = UdpSocket::from_std(s);
                    poll.registry()
                        .register(&mut sock, Token(2 * i), Interest::READABLE)
                        .ok();
                    Sock::Udp(sock)
                }
                ViewerSocket::Tcp(s, remote) => {
                    s.set_nonblocking(true).ok();
                    let mut stream = mio::net::TcpStream::from_std(s);
                    poll.registry()
                        .register(
                            &mut stream,
                            Token(2 * i),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .ok();
                    Sock::Tcp {
                        stream,
                        remote,
                        deframer: Deframer::new(),
                        out: SendQueue::default(),
                    }
                }
            };
            let mut ws = r.ws;
            if let Some(ws) = ws.as_mut() {
                ws.get_ref().set_nonblocking(true).ok();
                let fd = std::os::fd::AsRawFd::as_raw_fd(ws.get_ref());
                poll.registry()
                    .register(
                        &mut mio::unix::SourceFd(&fd),
                        Token(2 * i + 1),
                        Interest::READABLE,
                    )
                    .ok();
            }
            let mut c = Client {
                rtc: r.rtc,
                sock,
                local: r.local,
                ws,
                play_sent: r.play_sent,
                next_timeout: Instant::now(),
                kf_ts: None,
                rx_kernel: None,
                fu_tail: Vec::with_capacity(TRAILER),
                stats: ViewerStats {
                    index: r.index,
                    ..ViewerStats::default()
                },
            };
            c.rtc.handle_input(Input::Timeout(Instant::now())).ok();
            drain(&mut c, shared, &mut hist);
            clients.push(c);
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        let cap = now + Duration::from_millis(5);
        let next = clients
            .iter()
            .map(|c| c.next_timeout)
            .min()
            .unwrap_or(cap)
            .min(cap);
        let _ = poll.poll(&mut events, Some(next.saturating_duration_since(now)));
        for ev in events.iter() {
            let i = ev.token().0 / 2;
            let Some(c) = clients.get_mut(i) else {
                continue;
            };
            if ev.token().0 % 2 == 1 {
                service_ws(c);
                continue;
            }
            if matches!(c.sock, Sock::Tcp { .. }) {
                read_tcp(c, shared, &mut hist, &mut buf);
                continue;
            }
            for _ in 0..10_000 {
                let Sock::Udp(sock) = &c.sock else { break };
                match recv_stamped(sock, &mut buf) {
                    Ok((n, src, stamp)) => {
                        c.stats.udp_rx += 1;
                        if c.stats.srtp_profile.is_none() {
                            c.stats.srtp_profile = srtp_profile(&buf[..n]);
                        }
                        let now = Instant::now();
                        c.rx_kernel = stamp.map(|t| kernel_instant(t, now));
                        if let Ok(r) = Receive::new(Protocol::Udp, src, c.local, &buf[..n]) {
                            if c.rtc.handle_input(Input::Receive(now, r)).is_err() {
                                c.stats.failed = true;
                            }
                        }
                        drain(c, shared, &mut hist);
                        c.rx_kernel = None;
                    }
                    Err(_) => break,
                }
            }
        }
        let now = Instant::now();
        for c in clients.iter_mut() {
            if c.next_timeout <= now && !c.stats.failed {
                c.rtc.handle_input(Input::Timeout(now)).ok();
                drain(c, shared, &mut hist);
            }
        }
    }
    let cpu = thread_cpu() - cpu0;
    WorkerResult {
        viewers: clients.into_iter().map(|c| c.stats).collect(),
        hist: hist.read,
        relay_hist: hist.relay,
        frame_hist: hist.frame,
        cpu,
    }
}

/// Reads what the server sent on an ICE-TCP viewer's connection, frame by frame into str0m,
/// and writes what is queued for it.
fn read_tcp(c: &mut Client, shared: &Shared, hist: &mut Hists, buf: &mut [u8]) {
    use std::io::Read;
    let Sock::Tcp {
        remote, deframer, ..
    } = &mut c.sock
    else {
        return;
    };
    let remote = *remote;
    let mut deframer = std::mem::take(deframer);
    while let Sock::Tcp { stream, .. } = &mut c.sock {
        let n = match stream.read(buf) {
            Ok(0) => {
                c.stats.failed = true;
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.stats.failed = true;
                break;
            }
        };
        let local = c.local;
        let fed = deframer.feed(&buf[..n], |frame| {
            c.stats.udp_rx += 1;
            if let Ok(r) = Receive::new(Protocol::Tcp, remote, local, frame) {
                if c.rtc
                    .handle_input(Input::Receive(Instant::now(), r))
                    .is_err()
                {
                    c.stats.failed = true;
                }
            }
            drain(c, shared, hist);
            true
        });
        if fed.is_err() {
            c.stats.failed = true;
            break;
        }
    }
    if let Sock::Tcp { deframer: d, .. } = &mut c.sock {
        *d = deframer;
    }
    flush_tcp(c);
}

/// Writes an ICE-TCP viewer's queued frames until the socket takes no more.
fn flush_tcp(c: &mut Client) {
    use std::io::Write;
    let Sock::Tcp { stream, out, .. } = &mut c.sock else {
        return;
    };
    while !out.is_empty() {
        match stream.write(out.unsent()) {
            Ok(0) => break,
            Ok(n) => out.consumed(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

fn service_ws(c: &mut Client) {
    let Some(ws) = c.ws.as_mut() else { return };
    for _ in 0..100 {
        match ws.read() {
            Ok(Message::Text(t)) => {
                if t.as_str().contains("\"ping\"") {
                    let _ = ws.send(Message::text(r#"{"message":"pong","data":[null]}"#));
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                c.ws = None;
                break;
            }
        }
    }
}

fn drain(c: &mut Client, shared: &Shared, hist: &mut Hists) {
    if c.stats.failed {
        return;
    }
    for _ in 0..100_000 {
        match c.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                c.next_timeout = t;
                return;
            }
            Ok(Output::Transmit(t)) => {
                c.stats.udp_tx += 1;
                if c.stats.srtp_profile.is_none() {
                    c.stats.srtp_profile = srtp_profile(&t.contents);
                }
                match &mut c.sock {
                    Sock::Udp(sock) => {
                        if let Err(e) = sock.send_to(&t.contents, t.destination) {
                            if c.stats.udp_tx < 3 && std::env::var_os("BENCH_DEBUG").is_some() {
                                eprintln!("    send to {}: {e}", t.destination);
                            }
                        }
                    }
                    Sock::Tcp { out, .. } => {
                        out.push(&t.contents);
                        flush_tcp(c);
                    }
                }
            }
            Ok(Output::Event(e)) => match e {
                Event::Connected => {
                    c.stats.connected = true;
                    c.stats.connected_after = Some(c.play_sent.elapsed());
                }
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    c.stats.failed = true
                }
                Event::RtpPacket(p) => account(c, shared, hist, &p),
                _ => {}
            },
            Err(_) => {
                c.stats.failed = true;
                return;
            }
        }
    }
}

fn account(c: &mut Client, shared: &Shared, hist: &mut Hists, p: &str0m::rtp::RtpPacket) {
    let now = p.timestamp;
    let log = &shared.log;
    let now_ns = log.ns(now);
    let w0 = shared.window.w0.load(Ordering::Relaxed);
    let w1 = shared.window.w1.load(Ordering::Relaxed);
    let s = &mut c.stats;
    s.rx_total += 1;
    let audio = is_audio(*p.header.payload_type);
    if !audio
        && s.first_keyframe.is_none()
        && s.rx_total < 400
        && std::env::var_os("BENCH_DEBUG_PKTS").is_some()
    {
        let pl = &p.payload;
        eprintln!(
            "    pkt {} pt {} seq {} ts {} m {} nal {:02x} {:02x} len {} at {:?}",
            s.rx_total,
            *p.header.payload_type,
            p.header.sequence_number,
            p.header.timestamp,
            p.header.marker,
            pl.first().copied().unwrap_or(0),
            pl.get(1).copied().unwrap_or(0),
            pl.len(),
            now.saturating_duration_since(c.play_sent)
        );
    }
    if s.first_rtp.is_none() {
        s.first_rtp = Some(now.saturating_duration_since(c.play_sent));
    }
    s.last_rx = Some(now);
    if now_ns >= w0 && now_ns < w1 {
        s.rx_window += 1;
        s.audio_window += u64::from(audio);
    }
    // The camera packets whose last bytes (their id trailer) this packet carries: one when
    // packets are forwarded or split, several or none when fragments are re-cut.
    let pl = &p.payload[..];
    let fu = !audio && pl.len() > 2 && pl[0] & 0x1f == 28;
    let continued = fu && pl[1] & 0x80 == 0;
    let data = if continued { &pl[2..] } else { pl };
    let mut count = |id: u64| {
        let Some(sent) = log.sent_ns(id) else { return };
        if sent >= w0 && sent < w1 {
            s.ids_window += 1;
            let bucket = |ns: u64| ((ns / BUCKET_NS) as usize).min(BUCKETS - 1);
            hist.read[bucket(now_ns.saturating_sub(sent))] += 1;
            if let Some(k) = c.rx_kernel {
                hist.relay[bucket(log.ns(k).saturating_sub(sent))] += 1;
            }
            if log.is_frame_end(id) {
                // The server's send (kernel stamp on UDP; the read on ICE-TCP, which has none).
                let out = c.rx_kernel.map_or(now_ns, |k| log.ns(k));
                let ns = out.saturating_sub(sent);
                hist.frame[bucket(ns)] += 1;
                s.frame_us.push((ns / 1000).min(u64::from(u32::MAX)) as u32);
            }
        }
    };
    if continued && !c.fu_tail.is_empty() {
        // Trailers straddling the previous fragment and this one.
        let mut buf = [0u8; 2 * TRAILER];
        let (n, m) = (c.fu_tail.len(), data.len().min(TRAILER - 1));
        buf[..n].copy_from_slice(&c.fu_tail);
        buf[n..n + m].copy_from_slice(&data[..m]);
        packet_ids(&buf[..n + m], |at, id| {
            if at < n {
                count(id)
            }
        });
    }
    packet_ids(data, |_, id| count(id));
    c.fu_tail.clear();
    if fu && pl[1] & 0x40 == 0 {
        let from = data.len().saturating_sub(TRAILER - 1);
        c.fu_tail.extend_from_slice(&data[from..]);
    }
    // Video (PCMU is PT 0): an IDR slice starts a keyframe, its marker packet completes it.
    if !audio && s.first_keyframe.is_none() {
        let pl = &p.payload;
        let t = pl.first().map_or(0, |b| b & 0x1f);
        let idr = t == 5 || (t == 28 && pl.get(1).is_some_and(|b| b & 0x1f == 5));
        if idr {
            c.kf_ts = Some(p.header.timestamp);
        }
        if p.header.marker && c.kf_ts == Some(p.header.timestamp) {
            s.first_keyframe = Some(now.saturating_duration_since(c.play_sent));
            shared.started.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// PCMU (0) or str0m's Opus payload type (111): everything else the viewers get is H.264.
fn is_audio(pt: u8) -> bool {
    pt == 0 || pt == 111
}

/// The SRTP protection profile (RFC 5764 id: 1 AES128_CM_SHA1_80, 7 AEAD_AES_128_GCM,
/// 8 AEAD_AES_256_GCM) from a DTLS 1.2 ServerHello's use_srtp extension in `datagram`, if it
/// carries one. Either end may be the DTLS server, so both directions are looked at.
pub fn srtp_profile(datagram: &[u8]) -> Option<u16> {
    if !(20..=63).contains(datagram.first()?) {
        return None;
    }
    let mut rec = datagram;
    while rec.len() >= 13 {
        let len = usize::from(u16::from_be_bytes([rec[11], rec[12]]));
        let body = rec.get(13..13 + len)?;
        // Handshake record, epoch 0 (plaintext), ServerHello.
        if rec[0] == 22 && rec[3..5] == [0, 0] && body.first() == Some(&2) && body.len() > 12 {
            return server_hello_srtp(&body[12..]);
        }
        rec = &rec[13 + len..];
    }
    None
}

fn server_hello_srtp(h: &[u8]) -> Option<u16> {
    // version(2) random(32) session id(1+n) cipher(2) compression(1) extensions(2+n)
    let sid = usize::from(*h.get(34)?);
    let mut at = 35 + sid + 3;
    let ext_len = usize::from(u16::from_be_bytes([*h.get(at)?, *h.get(at + 1)?]));
    at += 2;
    let end = (at + ext_len).min(h.len());
    while at + 4 <= end {
        let ty = u16::from_be_bytes([h[at], h[at + 1]]);
        let len = usize::from(u16::from_be_bytes([h[at + 2], h[at + 3]]));
        if ty == 14 {
            // profiles length(2), profile(2), mki
            return Some(u16::from_be_bytes([*h.get(at + 6)?, *h.get(at + 7)?]));
        }
        at += 4 + len;
    }
    None
}

pub fn srtp_profile_name(id: u16) -> String {
    match id {
        1 => "SRTP_AES128_CM_SHA1_80".into(),
        2 => "SRTP_AES128_CM_SHA1_32".into(),
        7 => "SRTP_AEAD_AES_128_GCM".into(),
        8 => "SRTP_AEAD_AES_256_GCM".into(),
        other => format!("0x{other:04x}"),
    }
}

/// A str0m peer as a browser would be: recvonly H.264 + PCMU, RTP mode, full ICE.
/// `opus`: also offer Opus (for a camera whose audio the server transcodes).
pub fn new_rtc(now: Instant, opus: bool) -> Rtc {
    Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_pcmu(true, false)
        .enable_opus(opus, false)
        .set_rtp_mode(true)
        .build(now)
}

/// Percentile (0..=1) of a histogram, in µs.
pub fn percentile(hist: &[u64], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let target = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (i, n) in hist.iter().enumerate() {
        acc += n;
        if acc >= target {
            return Some((i as f64 + 0.5) * BUCKET_NS as f64 / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DTLS 1.2 record holding a ServerHello whose only extension is use_srtp(`profile`).
    fn server_hello(profile: u16) -> Vec<u8> {
        let mut hello = vec![0xfe, 0xfd];
        hello.extend_from_slice(&[7; 32]); // random
        hello.push(0); // session id
        hello.extend_from_slice(&[0xc0, 0x2b, 0]); // cipher, compression
        let ext = [&[0, 14, 0, 5, 0, 2][..], &profile.to_be_bytes(), &[0]].concat();
        hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        hello.extend_from_slice(&ext);
        let len = hello.len() as u32;
        let mut hs = vec![
            2,
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            0,
            0,
            0,
            0,
            0,
        ];
        hs.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
        hs.extend_from_slice(&hello);
        let mut rec = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn srtp_profile_from_server_hello() {
        assert_eq!(srtp_profile(&server_hello(7)), Some(7));
        assert_eq!(srtp_profile(&server_hello(1)), Some(1));
        // A ClientHello (type 1), an SRTP packet and STUN carry none.
        let mut client = server_hello(7);
        client[13] = 1;
        assert_eq!(srtp_profile(&client), None);
        assert_eq!(srtp_profile(&[0x80, 0x60, 0, 1]), None);
        assert_eq!(srtp_profile(&[0, 1, 0, 0]), None);
        assert_eq!(srtp_profile_name(8), "SRTP_AEAD_AES_256_GCM");
    }
}
