//! RTSP players: the load generator for camgate's RTSP server (`rtsp://127.0.0.1:PORT/NAME`).
//!
//! Each player is a minimal RTSP client (DESCRIBE, SETUP of every track, PLAY, GET_PARAMETER
//! keepalives) over TCP-interleaved RTP or UDP unicast (an RTP/RTCP port pair per track), set up
//! one after another on the calling thread and then handed to a mio thread that holds many. They
//! count what they receive the way the WebRTC viewers do (`viewers.rs`): packets, loss by the
//! camera's packet ids (the server passes camera payloads through unchanged, so every packet
//! still ends with its id), per-packet relay latency to the kernel's receive stamp and frame
//! latency. Over TCP the stamp is the one of the last segment a read took (see `rxstamp.rs`).
//!
//! The RTSP byte stream is split by core's `Framer`, the SDP read by core's `sdp::parse`. Per
//! packet nothing is allocated: reads go into one buffer per thread and interleaved frames are
//! borrowed from it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use camgate_core::media::MediaKind;
use camgate_core::rtp::RtpPacket;
use camgate_core::rtsp::framing::{Frame, Framer, Message, StartLine};
use camgate_core::rtsp::sdp;
use mio::{Events, Interest, Poll, Token};

use crate::camera::{MAGIC, TRAILER};
use crate::rxstamp::{enable_rx_timestamps, kernel_instant, read_stamped, recv_stamped};
use crate::targets::{set_rcvbuf, Res};
use crate::viewers::{thread_cpu, Shared, ViewerStats, WorkerResult, BUCKETS, BUCKET_NS};

/// Tokens per player: its RTSP connection, then one per track's RTP socket (UDP).
const TOKENS: usize = 4;
/// Tracks a player sets up at most (the bench camera has video and audio).
const MAX_TRACKS: usize = TOKENS - 1;
/// GET_PARAMETER this often: camgate's session timeout is 60 s, a run may be longer.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// UDP client ports are taken from here up (even RTP, odd RTCP): above camgate's camera ports
/// (30000–39999 by default), below the usual ephemeral range's top.
const UDP_PORT_FIRST: u16 = 50_000;
const UDP_PORT_LAST: u16 = 59_998;
static NEXT_UDP_PORT: AtomicU16 = AtomicU16::new(UDP_PORT_FIRST);

/// One track as set up: its kind, and for UDP its RTP and RTCP sockets (the RTCP one is only
/// held bound, so the server's sender reports are not answered with ICMP).
struct Track {
    audio: bool,
    udp: Option<(UdpSocket, UdpSocket)>,
}

/// A player whose PLAY was answered, ready for a worker thread.
pub struct Player {
    stream: TcpStream,
    framer: Framer,
    /// Interleaved frames that arrived with the answers (after PLAY's, media may follow at once).
    early: Vec<(u8, Vec<u8>)>,
    tracks: Vec<Track>,
    aggregate: String,
    session: String,
    cseq: u32,
    play_sent: Instant,
    play_answered: Duration,
    index: usize,
}

/// The session id of a `Session:` header (`id;timeout=60` → `id`).
pub fn session_id(header: &str) -> &str {
    header.split(';').next().unwrap_or("").trim()
}

/// The request line and headers of an RTSP request (no body).
fn request_text(method: &str, url: &str, cseq: u32, session: &str, extra: &str) -> String {
    let mut s = format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: camgate-bench\r\n");
    if !session.is_empty() {
        s.push_str(&format!("Session: {session}\r\n"));
    }
    s.push_str(extra);
    s.push_str("\r\n");
    s
}

/// The payload's packet id, when it ends with the camera's trailer (`CGBN` + u64).
pub fn trailer_id(payload: &[u8]) -> Option<u64> {
    let at = payload.len().checked_sub(TRAILER)?;
    (payload[at..at + 4] == MAGIC[..])
        .then(|| u64::from_be_bytes(payload[at + 4..].try_into().unwrap()))
}

/// Whether an H.264 payload starts an IDR picture (single NAL unit or first FU-A fragment).
fn starts_idr(payload: &[u8]) -> bool {
    let t = payload.first().map_or(0, |b| b & 0x1f);
    t == 5 || (t == 28 && payload.get(1).is_some_and(|b| b & 0x1f == 5))
}

/// Binds an RTP/RTCP pair on loopback: an even port and the next.
fn bind_pair() -> Res<(UdpSocket, UdpSocket, u16)> {
    for _ in 0..5000 {
        let mut p = NEXT_UDP_PORT.fetch_add(2, Ordering::Relaxed);
        if p > UDP_PORT_LAST {
            NEXT_UDP_PORT.store(UDP_PORT_FIRST, Ordering::Relaxed);
            p = UDP_PORT_FIRST;
        }
        let Ok(rtp) = UdpSocket::bind(("127.0.0.1", p)) else {
            continue;
        };
        let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", p + 1)) else {
            continue;
        };
        let _ = set_rcvbuf(&rtp, 1 << 20);
        return Ok((rtp, rtcp, p));
    }
    Err("no free UDP port pair in 50000-59999".into())
}

/// Sends one request and reads until its answer; interleaved frames read meanwhile are kept.
fn exchange(p: &mut Player, method: &str, url: &str, extra: &str) -> Res<Message> {
    p.cseq += 1;
    let cseq = p.cseq;
    let text = request_text(method, url, cseq, &p.session, extra);
    p.stream
        .write_all(text.as_bytes())
        .map_err(|e| format!("{method}: write: {e}"))?;
    let mut buf = [0u8; 16 * 1024];
    let mut answer = None;
    while answer.is_none() {
        let n = p
            .stream
            .read(&mut buf)
            .map_err(|e| format!("{method}: read: {e}"))?;
        if n == 0 {
            return Err(format!("{method}: connection closed"));
        }
        let early = &mut p.early;
        p.framer
            .push(&buf[..n], &mut |f| {
                match f {
                    Frame::Message(m) if m.cseq() == Some(cseq) => answer = Some(m),
                    Frame::Message(_) => {}
                    Frame::Interleaved { channel, data } => early.push((channel, data.to_vec())),
                }
                true
            })
            .map_err(|e| format!("{method}: {e}"))?;
    }
    let m = answer.unwrap();
    match &m.start {
        StartLine::Response { status: 200, .. } => Ok(m),
        StartLine::Response { status, reason } => Err(format!("{method}: {status} {reason}")),
        StartLine::Request { .. } => Err(format!("{method}: a request, not an answer")),
    }
}

/// Connects to `url` and plays every track over TCP-interleaved RTP (`tcp`) or UDP unicast.
pub fn connect(url: &str, tcp: bool, index: usize) -> Res<Player> {
    let addr: SocketAddr = url
        .strip_prefix("rtsp://")
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("not rtsp://IP:PORT/NAME: {url}"))?;
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).ok();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let mut p = Player {
        stream,
        framer: Framer::new(),
        early: Vec::new(),
        tracks: Vec::new(),
        aggregate: url.to_string(),
        session: String::new(),
        cseq: 0,
        play_sent: Instant::now(),
        play_answered: Duration::ZERO,
        index,
    };
    let d = exchange(&mut p, "DESCRIBE", url, "Accept: application/sdp\r\n")?;
    let base = d
        .header("Content-Base")
        .or_else(|| d.header("Content-Location"))
        .unwrap_or(url)
        .to_string();
    let pres = sdp::parse(&d.body, &base)?;
    if pres.tracks.is_empty() || pres.tracks.len() > MAX_TRACKS {
        return Err(format!("{} tracks described", pres.tracks.len()));
    }
    p.aggregate = pres.aggregate_url;
    for (i, t) in pres.tracks.iter().enumerate() {
        let (transport, udp) = if tcp {
            (
                format!(
                    "Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n",
                    2 * i,
                    2 * i + 1
                ),
                None,
            )
        } else {
            let (rtp, rtcp, port) = bind_pair()?;
            (
                format!(
                    "Transport: RTP/AVP;unicast;client_port={port}-{}\r\n",
                    port + 1
                ),
                Some((rtp, rtcp)),
            )
        };
        let s = exchange(&mut p, "SETUP", &t.control, &transport)?;
        if p.session.is_empty() {
            p.session = session_id(s.header("Session").ok_or("SETUP: no Session")?).to_string();
        }
        p.tracks.push(Track {
            audio: t.kind == MediaKind::Audio,
            udp,
        });
    }
    p.play_sent = Instant::now();
    let aggregate = p.aggregate.clone();
    exchange(&mut p, "PLAY", &aggregate, "Range: npt=0.000-\r\n")?;
    p.play_answered = p.play_sent.elapsed();
    Ok(p)
}

/// A player on a worker thread.
struct Live {
    stream: mio::net::TcpStream,
    framer: Framer,
    /// Per track: audio?, its RTP socket and its RTCP socket (UDP players).
    tracks: Vec<(bool, Option<mio::net::UdpSocket>, Option<UdpSocket>)>,
    aggregate: String,
    session: String,
    cseq: u32,
    play_sent: Instant,
    last_request: Instant,
    kf_ts: Option<u32>,
    stats: ViewerStats,
}

/// Histograms of one worker thread (see `viewers::WorkerResult`).
struct Hists {
    read: Vec<u32>,
    relay: Vec<u32>,
    frame: Vec<u32>,
}

pub struct Worker {
    tx: Sender<Player>,
    handle: JoinHandle<WorkerResult>,
}

impl Worker {
    pub fn spawn(shared: Arc<Shared>) -> Worker {
        let (tx, rx) = channel();
        let handle = thread::spawn(move || run(rx, &shared));
        Worker { tx, handle }
    }
    pub fn add(&self, p: Player) {
        let _ = self.tx.send(p);
    }
    pub fn join(self) -> WorkerResult {
        drop(self.tx);
        self.handle.join().expect("player worker")
    }
}

fn run(rx: Receiver<Player>, shared: &Shared) -> WorkerResult {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut players: Vec<Live> = Vec::new();
    let mut hist = Hists {
        read: vec![0u32; BUCKETS],
        relay: vec![0u32; BUCKETS],
        frame: vec![0u32; BUCKETS],
    };
    let mut buf = vec![0u8; 64 * 1024];
    let cpu0 = thread_cpu();
    let mut next_sweep = Instant::now();
    loop {
        while let Ok(p) = rx.try_recv() {
            let i = players.len();
            players.push(adopt(p, i, &poll, shared, &mut hist));
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
        for ev in events.iter() {
            let (i, k) = (ev.token().0 / TOKENS, ev.token().0 % TOKENS);
            let Some(p) = players.get_mut(i) else {
                continue;
            };
            if k == 0 {
                read_connection(p, shared, &mut hist, &mut buf);
            } else {
                read_udp(p, k - 1, shared, &mut hist, &mut buf);
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + Duration::from_secs(1);
            for p in players.iter_mut().filter(|p| !p.stats.failed) {
                if now - p.last_request >= KEEPALIVE {
                    keepalive(p, now);
                }
            }
        }
    }
    let cpu = thread_cpu() - cpu0;
    WorkerResult {
        viewers: players.into_iter().map(|p| p.stats).collect(),
        hist: hist.read,
        relay_hist: hist.relay,
        frame_hist: hist.frame,
        cpu,
    }
}

/// Registers a player's sockets with this thread's poll and accounts what came with its answers.
fn adopt(p: Player, i: usize, poll: &Poll, shared: &Shared, hist: &mut Hists) -> Live {
    p.stream.set_nonblocking(true).ok();
    enable_rx_timestamps(&p.stream);
    let mut stream = mio::net::TcpStream::from_std(p.stream);
    poll.registry()
        .register(&mut stream, Token(i * TOKENS), Interest::READABLE)
        .ok();
    let mut tracks = Vec::with_capacity(p.tracks.len());
    for (t, track) in p.tracks.into_iter().enumerate() {
        let (rtp, rtcp) = match track.udp {
            Some((rtp, rtcp)) => {
                rtp.set_nonblocking(true).ok();
                enable_rx_timestamps(&rtp);
                let mut rtp = mio::net::UdpSocket::from_std(rtp);
                poll.registry()
                    .register(&mut rtp, Token(i * TOKENS + 1 + t), Interest::READABLE)
                    .ok();
                (Some(rtp), Some(rtcp))
            }
            None => (None, None),
        };
        tracks.push((track.audio, rtp, rtcp));
    }
    let mut live = Live {
        stream,
        framer: p.framer,
        tracks,
        aggregate: p.aggregate,
        session: p.session,
        cseq: p.cseq,
        play_sent: p.play_sent,
        last_request: Instant::now(),
        kf_ts: None,
        stats: ViewerStats {
            index: p.index,
            connected: true,
            connected_after: Some(p.play_answered),
            ..ViewerStats::default()
        },
    };
    for (channel, data) in &p.early {
        on_interleaved(&mut live, *channel, data, None, shared, hist);
    }
    live
}

fn on_interleaved(
    p: &mut Live,
    channel: u8,
    data: &[u8],
    rx_kernel: Option<Instant>,
    shared: &Shared,
    hist: &mut Hists,
) {
    let track = usize::from(channel / 2);
    if channel.is_multiple_of(2) && track < p.tracks.len() {
        let audio = p.tracks[track].0;
        on_rtp(p, audio, data, rx_kernel, shared, hist);
    }
}

/// Reads the RTSP connection: answers (ignored) and, for TCP players, interleaved media.
fn read_connection(p: &mut Live, shared: &Shared, hist: &mut Hists, buf: &mut [u8]) {
    let mut framer = std::mem::take(&mut p.framer);
    loop {
        match read_stamped(&p.stream, buf) {
            Ok((0, _)) => {
                p.stats.failed = true;
                break;
            }
            Ok((n, stamp)) => {
                let now = Instant::now();
                let rx_kernel = stamp.map(|t| kernel_instant(t, now));
                let ok = framer.push(&buf[..n], &mut |f| {
                    if let Frame::Interleaved { channel, data } = f {
                        on_interleaved(p, channel, data, rx_kernel, shared, hist);
                    }
                    true
                });
                if ok.is_err() {
                    p.stats.failed = true;
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                p.stats.failed = true;
                break;
            }
        }
    }
    p.framer = framer;
}

fn read_udp(p: &mut Live, track: usize, shared: &Shared, hist: &mut Hists, buf: &mut [u8]) {
    let Some(audio) = p.tracks.get(track).map(|t| t.0) else {
        return;
    };
    for _ in 0..10_000 {
        let got = match p.tracks.get(track) {
            Some((_, Some(sock), _)) => recv_stamped(sock, buf),
            _ => return,
        };
        match got {
            Ok((n, _, stamp)) => {
                let now = Instant::now();
                let rx_kernel = stamp.map(|t| kernel_instant(t, now));
                on_rtp(p, audio, &buf[..n], rx_kernel, shared, hist);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// GET_PARAMETER on the session, as players keep it alive; a full socket skips a turn.
fn keepalive(p: &mut Live, now: Instant) {
    p.cseq += 1;
    let text = request_text("GET_PARAMETER", &p.aggregate, p.cseq, &p.session, "");
    if p.stream
        .write(text.as_bytes())
        .is_ok_and(|n| n == text.len())
    {
        p.last_request = now;
    }
}

/// Accounts one RTP packet: counts, loss by id, latency, first keyframe (as `viewers::account`).
fn on_rtp(
    p: &mut Live,
    audio: bool,
    data: &[u8],
    rx_kernel: Option<Instant>,
    shared: &Shared,
    hist: &mut Hists,
) {
    let Ok(rtp) = RtpPacket::parse(data) else {
        return;
    };
    let now = Instant::now();
    let log = &shared.log;
    let now_ns = log.ns(now);
    let w0 = shared.window.w0.load(Ordering::Relaxed);
    let w1 = shared.window.w1.load(Ordering::Relaxed);
    let s = &mut p.stats;
    s.rx_total += 1;
    s.udp_rx += 1;
    if s.first_rtp.is_none() {
        s.first_rtp = Some(now.saturating_duration_since(p.play_sent));
    }
    s.last_rx = Some(now);
    if now_ns >= w0 && now_ns < w1 {
        s.rx_window += 1;
        s.audio_window += u64::from(audio);
    }
    let id = trailer_id(rtp.payload);
    if let Some((id, sent)) = id.and_then(|id| log.sent_ns(id).map(|t| (id, t))) {
        if sent >= w0 && sent < w1 {
            s.ids_window += 1;
            let bucket = |ns: u64| ((ns / BUCKET_NS) as usize).min(BUCKETS - 1);
            hist.read[bucket(now_ns.saturating_sub(sent))] += 1;
            if let Some(k) = rx_kernel {
                hist.relay[bucket(log.ns(k).saturating_sub(sent))] += 1;
            }
            if log.is_frame_end(id) {
                let out = rx_kernel.map_or(now_ns, |k| log.ns(k));
                let ns = out.saturating_sub(sent);
                hist.frame[bucket(ns)] += 1;
                s.frame_us.push((ns / 1000).min(u64::from(u32::MAX)) as u32);
            }
        }
    }
    if !audio && s.first_keyframe.is_none() {
        if starts_idr(rtp.payload) {
            p.kf_ts = Some(rtp.timestamp);
        }
        if rtp.marker && p.kf_ts == Some(rtp.timestamp) {
            s.first_keyframe = Some(now.saturating_duration_since(p.play_sent));
            shared.started.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{new_log, Camera};

    #[test]
    fn session_header_and_request_text() {
        assert_eq!(session_id("12345678;timeout=60"), "12345678");
        assert_eq!(session_id(" abc "), "abc");
        assert_eq!(
            request_text("PLAY", "rtsp://h/s/", 4, "abc", "Range: npt=0.000-\r\n"),
            "PLAY rtsp://h/s/ RTSP/1.0\r\nCSeq: 4\r\nUser-Agent: camgate-bench\r\nSession: abc\r\nRange: npt=0.000-\r\n\r\n"
        );
        assert!(!request_text("DESCRIBE", "rtsp://h/s", 1, "", "").contains("Session"));
    }

    #[test]
    fn packet_id_from_the_trailer() {
        let mut payload = vec![0x7c, 0x85, 1, 2, 3];
        payload.extend_from_slice(MAGIC);
        payload.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(trailer_id(&payload), Some(42));
        // SPS/PPS and short packets carry none.
        assert_eq!(trailer_id(&payload[..payload.len() - 1]), None);
        assert_eq!(trailer_id(&[0x67, 0x42]), None);
        assert!(starts_idr(&[0x65, 0x88]));
        assert!(starts_idr(&[0x7c, 0x85]));
        assert!(!starts_idr(&[0x7c, 0x81]));
    }

    /// Both transports against the bench's own RTSP camera (synthetic H.264 + PCMU, ids on every
    /// slice packet): the player sets up both tracks, gets packets with ids inside the window and
    /// a complete first keyframe.
    #[test]
    fn plays_the_bench_camera_over_tcp_and_udp() {
        for tcp in [true, false] {
            let log = new_log();
            let cam = Camera::start(1_000_000, log.clone()).unwrap();
            let shared = Shared::new(log.clone());
            let worker = Worker::spawn(shared.clone());
            let player = connect(&cam.url("cam1"), tcp, 0).unwrap();
            assert_eq!(player.tracks.len(), 2, "video and audio set up");
            worker.add(player);
            let t0 = Instant::now();
            shared.window.w0.store(log.ns(t0), Ordering::Relaxed);
            thread::sleep(Duration::from_millis(1500));
            shared
                .window
                .w1
                .store(log.ns(Instant::now()), Ordering::Relaxed);
            thread::sleep(Duration::from_millis(300));
            shared.stop.store(true, Ordering::Relaxed);
            let res = worker.join();
            let s = &res.viewers[0];
            assert!(!s.failed, "tcp={tcp}");
            assert!(s.first_keyframe.is_some(), "tcp={tcp}: no keyframe");
            assert!(s.rx_window > 50, "tcp={tcp}: {} packets", s.rx_window);
            assert!(s.audio_window > 20, "tcp={tcp}: {} audio", s.audio_window);
            assert!(s.ids_window > 50, "tcp={tcp}: {} ids", s.ids_window);
            assert!(res.frame_hist.iter().sum::<u32>() > 10, "tcp={tcp}: frames");
            drop(cam);
        }
    }
}
