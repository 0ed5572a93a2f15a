//! The bench camera: an RTSP server (TCP-interleaved or UDP: camgate pulls it over UDP with its
//! default `rtsp_transport = "auto"`, over TCP with `BENCH_CAMGATE_ARGS="--rtsp-transport tcp"`;
//! Janus over UDP) that streams,
//! paced in real time, either a recorded encoder stream ([`Recorded`]: x264 through GStreamer's
//! `rtph264pay mtu=1400`, replayed packet for packet, looped with continuing timestamps) or
//! synthetic H.264-shaped RTP (valid NAL headers, FU-A, SPS/PPS + IDR every GOP, random content
//! with realistic frame sizes); audio is 20 ms PCMU packets or a recorded AAC (mpeg4-generic) track.
//!
//! Every media packet's payload ends with `MAGIC` + a u64 packet id, and the instant it was
//! sent is kept in [`SendLog`]: viewers in the same process measure relay latency and loss
//! per packet, whatever sequence numbers and timestamps the gateway rewrites.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use camgate_core::h264::packetize::fu_a_fragments;
use camgate_core::rtp::RtpPacket;
use camgate_core::rtsp::framing::{write_interleaved, Frame, Framer, StartLine};
use camgate_testkit::Rng;

pub const MAGIC: &[u8; 4] = b"CGBN";
pub const TRAILER: usize = 12;
/// RTP payload of the camera's packets: 1,400-byte packets (gst-rtsp-server's default MTU, what
/// IP cameras send) less the 12-byte header. Above the gateway's 1,200-byte WebRTC payload, so
/// re-fragmenting is on the measured path as with real cameras.
pub(crate) const MAX_PAYLOAD: usize = 1400 - 12;
const FPS: u32 = 30;
const GOP: u32 = 30;
const VIDEO_PT: u8 = 96;
const VIDEO_SSRC: u32 = 0x5eed_0001;
const AUDIO_SSRC: u32 = 0x5eed_0002;
const AUDIO_PT_RECORDED: u8 = 97;
const LOG_SIZE: usize = 1 << 21;

/// The demo clip's SPS (640x360) with profile-level-id rewritten to 42e01f, and its PPS.
pub(crate) const SPS: &[u8] = &[
    0x67, 0x42, 0xe0, 0x1f, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x16, 0xa0, 0x21, 0xa0, 0xc8, 0x00,
    0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0xe4, 0x78, 0xb1, 0x72, 0x40,
];
pub(crate) const PPS: &[u8] = &[0x68, 0xcb, 0x8c, 0xb2];

/// Send instants of every packet id: `(ns since epoch + 1) << 1 | last packet of a video frame`
/// (0 means unknown).
pub struct SendLog {
    pub epoch: Instant,
    slots: Box<[AtomicU64]>,
    next_id: AtomicU64,
}

impl SendLog {
    fn new(epoch: Instant) -> Self {
        SendLog {
            epoch,
            slots: (0..LOG_SIZE).map(|_| AtomicU64::new(0)).collect(),
            next_id: AtomicU64::new(0),
        }
    }
    pub fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }
    fn record(&self, now: Instant) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.slots[id as usize % LOG_SIZE].store((self.ns(now) + 1) << 1, Ordering::Relaxed);
        id
    }
    /// Marks `id` as the camera's last packet of a video frame (its RTP marker packet), stamped
    /// `now`: taken after the whole frame was handed to the kernel, so frame latency starts when
    /// the server could have the complete frame.
    fn mark_frame_end(&self, id: u64, now: Instant) {
        self.slots[id as usize % LOG_SIZE].store(((self.ns(now) + 1) << 1) | 1, Ordering::Relaxed);
    }
    /// Whether `id` was the last packet of a video frame.
    pub fn is_frame_end(&self, id: u64) -> bool {
        self.slots[id as usize % LOG_SIZE].load(Ordering::Relaxed) & 1 == 1
    }
    /// Send time (ns since epoch) of packet `id`, if known.
    pub fn sent_ns(&self, id: u64) -> Option<u64> {
        if id >= self.next_id.load(Ordering::Relaxed) {
            return None;
        }
        match self.slots[id as usize % LOG_SIZE].load(Ordering::Relaxed) >> 1 {
            0 => None,
            v => Some(v - 1),
        }
    }
    /// How many packets were sent with a send time in [from, to) ns.
    pub fn count_between(&self, from: u64, to: u64) -> u64 {
        let n = self.next_id.load(Ordering::Relaxed);
        let first = n.saturating_sub(LOG_SIZE as u64);
        (first..n)
            .filter(|&id| self.sent_ns(id).is_some_and(|t| t >= from && t < to))
            .count() as u64
    }
}

/// The packet ids of the whole trailers in `bytes`, with where each starts: at the end of a
/// forwarded payload, or anywhere in one re-cut from several camera packets.
pub fn packet_ids(bytes: &[u8], mut f: impl FnMut(usize, u64)) {
    for at in memchr::memmem::find_iter(bytes, MAGIC) {
        if let Some(id) = bytes.get(at + 4..at + TRAILER) {
            f(at, u64::from_be_bytes(id.try_into().unwrap()));
        }
    }
}

enum Sink {
    /// Interleaved channels (video, audio).
    Tcp(Arc<Mutex<TcpStream>>, u8, Option<u8>),
    Udp(UdpSocket, SocketAddr, Option<SocketAddr>),
}

struct Shared {
    stop: AtomicBool,
    sinks: Mutex<Vec<(u64, Sink)>>,
    log: Arc<SendLog>,
    bitrate: u32,
    video: Option<Arc<Recorded>>,
    audio: Option<Arc<RecordedAudio>>,
}

/// One RTP packet of a recording: marker bit and payload.
type RecPacket = (bool, Vec<u8>);

/// A recorded H.264 RTP stream (RFC 4571 framed, as `rtpstreampay` writes it), grouped in frames.
pub struct Recorded {
    /// (RTP timestamp offset from the first frame, packets).
    frames: Vec<(u32, Vec<RecPacket>)>,
    /// RTP ticks from the first frame of one loop to the first frame of the next.
    loop_ticks: u32,
    sps: Vec<u8>,
    pps: Vec<u8>,
    /// Mean frame size in bytes of RTP payload, for the report.
    pub mean_frame_bytes: f64,
    pub mean_idr_bytes: f64,
    pub packets_per_frame: f64,
    pub mean_packet_bytes: f64,
}

impl Recorded {
    pub fn load(path: &std::path::Path) -> Result<Recorded, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut frames: Vec<(u32, Vec<RecPacket>)> = Vec::new();
        let (mut sps, mut pps) = (Vec::new(), Vec::new());
        let mut first_ts = None;
        let mut rest = &data[..];
        while let [hi, lo, tail @ ..] = rest {
            let n = usize::from(u16::from_be_bytes([*hi, *lo]));
            let (pkt, next) = tail.split_at_checked(n).ok_or("truncated capture")?;
            rest = next;
            let p = RtpPacket::parse(pkt).map_err(|_| "not RTP")?;
            let t0 = *first_ts.get_or_insert(p.timestamp);
            let off = p.timestamp.wrapping_sub(t0);
            match p.payload.first().map(|b| b & 0x1f) {
                Some(7) if sps.is_empty() => sps = p.payload.to_vec(),
                Some(8) if pps.is_empty() => pps = p.payload.to_vec(),
                _ => {}
            }
            if frames.last().is_none_or(|f| f.0 != off) {
                frames.push((off, Vec::new()));
            }
            frames
                .last_mut()
                .unwrap()
                .1
                .push((p.marker, p.payload.to_vec()));
        }
        if frames.len() < 2 || sps.is_empty() || pps.is_empty() {
            return Err(format!("{}: no H.264 stream with SPS/PPS", path.display()));
        }
        let step = frames[1].0.wrapping_sub(frames[0].0);
        let loop_ticks = frames.last().unwrap().0 + step;
        let bytes = |f: &(u32, Vec<RecPacket>)| f.1.iter().map(|p| p.1.len()).sum::<usize>() as f64;
        let is_idr = |f: &(u32, Vec<RecPacket>)| {
            f.1.iter().any(|(_, pl)| {
                let t = pl[0] & 0x1f;
                t == 5 || (t == 28 && pl.get(1).is_some_and(|b| b & 0x1f == 5))
            })
        };
        let idr: Vec<f64> = frames.iter().filter(|f| is_idr(f)).map(bytes).collect();
        let npk: usize = frames.iter().map(|f| f.1.len()).sum();
        let total: f64 = frames.iter().map(bytes).sum();
        Ok(Recorded {
            mean_frame_bytes: total / frames.len() as f64,
            mean_idr_bytes: idr.iter().sum::<f64>() / idr.len().max(1) as f64,
            packets_per_frame: npk as f64 / frames.len() as f64,
            mean_packet_bytes: total / npk as f64 + 12.0,
            frames,
            loop_ticks,
            sps,
            pps,
        })
    }
}

/// A recorded audio track (RFC 4571 framed RTP) with its SDP description, looped.
pub struct RecordedAudio {
    packets: Vec<(u32, Vec<u8>)>,
    loop_ticks: u32,
    pub encoding: String,
    pub clock_rate: u32,
    channels: Option<u32>,
    fmtp: Option<String>,
}

impl RecordedAudio {
    /// `<name>.rtp` and `<name>.meta` (encoding=, clock_rate=, channels=, fmtp= lines), as in
    /// `core/tests/data/audio/`.
    pub fn load(base: &std::path::Path) -> Result<RecordedAudio, String> {
        let meta = std::fs::read_to_string(base.with_extension("meta"))
            .map_err(|e| format!("{}.meta: {e}", base.display()))?;
        let field = |k: &str| {
            meta.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::to_owned)
        };
        let data = std::fs::read(base.with_extension("rtp")).map_err(|e| e.to_string())?;
        let raw = camgate_testkit::capture::rfc4571_packets(&data);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let first = ts(raw.first().ok_or("empty audio capture")?);
        let packets: Vec<(u32, Vec<u8>)> = raw
            .iter()
            .filter_map(|p| {
                let r = RtpPacket::parse(p).ok()?;
                Some((ts(p).wrapping_sub(first), r.payload.to_vec()))
            })
            .collect();
        let step = packets.get(1).ok_or("short audio capture")?.0;
        Ok(RecordedAudio {
            loop_ticks: packets.last().unwrap().0 + step,
            packets,
            encoding: field("encoding=").ok_or("no encoding=")?,
            clock_rate: field("clock_rate=")
                .and_then(|v| v.parse().ok())
                .ok_or("no clock_rate=")?,
            channels: field("channels=").and_then(|v| v.parse().ok()),
            fmtp: field("fmtp=").filter(|f| !f.is_empty()),
        })
    }
}

/// What the camera streams.
#[derive(Clone, Default)]
pub struct Media {
    /// A recorded H.264 stream; None: synthetic.
    pub video: Option<Arc<Recorded>>,
    /// A recorded audio track; None: synthetic PCMU.
    pub audio: Option<Arc<RecordedAudio>>,
}

pub struct Camera {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Camera {
    /// Starts the camera on 127.0.0.1 (ephemeral port) at `bitrate` bit/s of video.
    pub fn start(bitrate: u32, log: Arc<SendLog>) -> io::Result<Camera> {
        Self::start_with(bitrate, Media::default(), log)
    }

    /// Starts the camera streaming `media` (synthetic video at `bitrate` where `media` has none).
    pub fn start_with(bitrate: u32, media: Media, log: Arc<SendLog>) -> io::Result<Camera> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            sinks: Mutex::new(Vec::new()),
            log,
            bitrate,
            video: media.video,
            audio: media.audio,
        });
        let s = shared.clone();
        let accept = thread::spawn(move || {
            let mut conns = Vec::new();
            let mut next_session = 1u64;
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s2 = s.clone();
                        let id = next_session;
                        next_session += 1;
                        conns.push(thread::spawn(move || {
                            let _ = serve(stream, &s2, id);
                            s2.sinks.lock().unwrap().retain(|(sid, _)| *sid != id);
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        let s = shared.clone();
        let pacer = thread::spawn(move || pace(&s));
        Ok(Camera {
            addr,
            shared,
            threads: vec![accept, pacer],
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{}", self.addr, path)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Frame sizes: a 1 s GOP whose keyframe is 9x a P-frame on average, summing to the bitrate.
pub(crate) fn frame_size(bitrate: u32, idr: bool, rng: &mut Rng) -> usize {
    let gop_bytes = f64::from(bitrate) / 8.0 * f64::from(GOP) / f64::from(FPS);
    let p = gop_bytes / (9.0 + f64::from(GOP - 1));
    let size = if idr {
        p * 9.0 * (0.9 + 0.2 * rng.unit())
    } else {
        p * (0.75 + 0.5 * rng.unit())
    };
    size as usize
}

struct Packetizer {
    seq: u16,
    pkt: Vec<u8>,
}

impl Packetizer {
    /// Starts the next packet in `pkt` with an RTP header; the payload is appended after it.
    fn header(&mut self, payload_type: u8, marker: bool, timestamp: u32, ssrc: u32) {
        self.pkt.clear();
        RtpPacket {
            payload_type,
            marker,
            sequence: self.seq,
            timestamp,
            ssrc,
            payload: &[],
        }
        .write_to(&mut self.pkt);
        self.seq = self.seq.wrapping_add(1);
    }
}

fn send_all(shared: &Shared, pkt: &[u8], audio: bool) {
    let mut sinks = shared.sinks.lock().unwrap();
    let mut dead = Vec::new();
    for (id, sink) in sinks.iter() {
        let ok = match sink {
            Sink::Tcp(s, v, a) => {
                let ch = if audio { *a } else { Some(*v) };
                match ch {
                    Some(ch) => {
                        let mut frame = Vec::with_capacity(4 + pkt.len());
                        write_interleaved(&mut frame, ch, pkt);
                        s.lock().unwrap().write_all(&frame).is_ok()
                    }
                    None => true,
                }
            }
            Sink::Udp(sock, v, a) => {
                let to = if audio { *a } else { Some(*v) };
                if let Some(to) = to {
                    let _ = sock.send_to(pkt, to);
                }
                true
            }
        };
        if !ok {
            dead.push(*id);
        }
    }
    sinks.retain(|(id, _)| !dead.contains(id));
}

/// Writes the id trailer over the last bytes of the packet in `pkt` and logs its send time.
fn stamp(shared: &Shared, pkt: &mut [u8]) -> u64 {
    let l = pkt.len();
    let id = shared.log.record(Instant::now());
    pkt[l - TRAILER..l - 8].copy_from_slice(MAGIC);
    pkt[l - 8..].copy_from_slice(&id.to_be_bytes());
    id
}

/// Whether a video payload can carry an id trailer: slice data (single NAL unit of a slice, or a
/// FU-A fragment) long enough. SPS, PPS, SEI and AUD stay intact (the gateway reads them).
fn stampable(payload: &[u8]) -> bool {
    let t = payload.first().map_or(0, |b| b & 0x1f);
    matches!(t, 1 | 5 | 28) && payload.len() > TRAILER + 2
}

/// Real-time pacing: one access unit every frame interval (sent as a burst, as cameras do) and
/// one audio packet at each of its timestamps.
fn pace(shared: &Shared) {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut video = Packetizer {
        seq: 1000,
        pkt: Vec::with_capacity(1500),
    };
    let mut audio = Packetizer {
        seq: 5000,
        pkt: Vec::with_capacity(2000),
    };
    let start = Instant::now();
    let (mut frame, mut apkt) = (0u64, 0u64);
    let mut nal = Vec::new();
    // RTP timestamp (90 kHz) of video frame `frame`.
    let video_ts = |frame: u64| -> u64 {
        match &shared.video {
            None => frame * 3000,
            Some(r) => {
                let n = r.frames.len() as u64;
                (frame / n) * u64::from(r.loop_ticks) + u64::from(r.frames[(frame % n) as usize].0)
            }
        }
    };
    let audio_ts = |apkt: u64| -> (u64, u32) {
        match &shared.audio {
            None => (apkt * 160, 8000),
            Some(a) => {
                let n = a.packets.len() as u64;
                (
                    (apkt / n) * u64::from(a.loop_ticks)
                        + u64::from(a.packets[(apkt % n) as usize].0),
                    a.clock_rate,
                )
            }
        }
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let t_video = start + Duration::from_nanos(video_ts(frame) * 1_000_000_000 / 90_000);
        let (ats, arate) = audio_ts(apkt);
        let t_audio = start + Duration::from_nanos(ats * 1_000_000_000 / u64::from(arate));
        let next = t_video.min(t_audio);
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        if t_audio <= t_video {
            match &shared.audio {
                None => {
                    audio.header(0, apkt == 0, ats as u32, AUDIO_SSRC);
                    let mut payload = [0xffu8; 160];
                    rng.fill(&mut payload[..148]);
                    let id = shared.log.record(Instant::now());
                    payload[148..152].copy_from_slice(MAGIC);
                    payload[152..].copy_from_slice(&id.to_be_bytes());
                    audio.pkt.extend_from_slice(&payload);
                }
                Some(a) => {
                    // No id trailer: the gateway decodes this audio (AAC → Opus).
                    let (_, payload) = &a.packets[(apkt % a.packets.len() as u64) as usize];
                    audio.header(AUDIO_PT_RECORDED, true, ats as u32, AUDIO_SSRC);
                    audio.pkt.extend_from_slice(payload);
                }
            }
            send_all(shared, &audio.pkt, true);
            apkt += 1;
            continue;
        }
        let ts = video_ts(frame) as u32;
        if let Some(r) = &shared.video {
            let (_, packets) = &r.frames[(frame % r.frames.len() as u64) as usize];
            let mut last_id = None;
            for (marker, payload) in packets {
                video.header(VIDEO_PT, *marker, ts, VIDEO_SSRC);
                video.pkt.extend_from_slice(payload);
                let id = stampable(payload).then(|| stamp(shared, &mut video.pkt));
                send_all(shared, &video.pkt, false);
                if *marker {
                    last_id = id;
                }
            }
            if let Some(id) = last_id {
                shared.log.mark_frame_end(id, Instant::now());
            }
            frame += 1;
            continue;
        }
        let idr = frame % u64::from(GOP) == 0;
        if idr {
            for ps in [SPS, PPS] {
                video.header(VIDEO_PT, false, ts, VIDEO_SSRC);
                video.pkt.extend_from_slice(ps);
                send_all(shared, &video.pkt, false);
            }
        }
        let size = frame_size(shared.bitrate, idr, &mut rng).max(64);
        nal.resize(size, 0);
        rng.fill(&mut nal);
        nal[0] = if idr { 0x65 } else { 0x41 };
        nal[1] = if idr { 0x88 } else { 0x9a };
        // FU-A with the id trailer as the last bytes of every fragment.
        let mut fragments = fu_a_fragments(nal[0], &nal[1..], true, true, MAX_PAYLOAD).peekable();
        let mut last_id = None;
        while let Some(frag) = fragments.next() {
            let last = fragments.peek().is_none();
            video.header(VIDEO_PT, last, ts, VIDEO_SSRC);
            video.pkt.extend_from_slice(frag.prefix());
            video.pkt.extend_from_slice(frag.body);
            let id = (frag.body.len() > TRAILER + 1).then(|| stamp(shared, &mut video.pkt));
            send_all(shared, &video.pkt, false);
            if last {
                last_id = id;
            }
        }
        if let Some(id) = last_id {
            shared.log.mark_frame_end(id, Instant::now());
        }
        frame += 1;
    }
}

fn serve(stream: TcpStream, shared: &Shared, session: u64) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = stream;
    let mut framer = Framer::new();
    let mut requests = Vec::new();
    let mut tmp = [0u8; 4096];
    // Per track: TCP channel or UDP client port.
    let mut tcp: [Option<u8>; 2] = [None, None];
    let mut udp: [Option<SocketAddr>; 2] = [None, None];
    let mut udp_sock: Option<UdpSocket> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        match reader.read(&mut tmp) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                // Interleaved RTCP from the client is skipped; a stream that is not RTSP ends
                // the connection.
                framer
                    .push(&tmp[..n], &mut |f| {
                        if let Frame::Message(m) = f {
                            requests.push(m);
                        }
                        true
                    })
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
        for req in requests.drain(..) {
            let StartLine::Request { method, uri } = &req.start else {
                continue;
            };
            let cseq = req.header("CSeq").unwrap_or("0").to_string();
            let mut extra = String::new();
            let mut body = String::new();
            let sess = format!("Session: {session};timeout=30\r\n");
            match method.as_str() {
                "OPTIONS" => extra.push_str(
                    "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n",
                ),
                "DESCRIBE" => {
                    let b64 = |d: &[u8]| BASE64.encode(d);
                    let (sps, pps) = match &shared.video {
                        Some(r) => (&r.sps[..], &r.pps[..]),
                        None => (SPS, PPS),
                    };
                    let audio = match &shared.audio {
                        None => "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n".to_string(),
                        Some(a) => format!(
                            "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} {}/{}{}\r\n{}",
                            a.encoding,
                            a.clock_rate,
                            a.channels.map(|c| format!("/{c}")).unwrap_or_default(),
                            a.fmtp
                                .as_ref()
                                .map(|f| format!("a=fmtp:{AUDIO_PT_RECORDED} {f}\r\n"))
                                .unwrap_or_default(),
                            pt = AUDIO_PT_RECORDED
                        ),
                    };
                    body = format!(
                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                         m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                         a=fmtp:96 packetization-mode=1;profile-level-id={:02x}{:02x}{:02x};sprop-parameter-sets={},{}\r\n\
                         a=control:track1\r\n\
                         {audio}a=control:track2\r\n",
                        sps[1],
                        sps[2],
                        sps[3],
                        b64(sps),
                        b64(pps)
                    );
                    let base = uri.trim_end_matches('/');
                    extra = format!("Content-Type: application/sdp\r\nContent-Base: {base}/\r\n");
                }
                "SETUP" => {
                    let track = usize::from(uri.ends_with("track2"));
                    let t = req.header("Transport").unwrap_or("").to_string();
                    if let Some(il) = t
                        .split(';')
                        .find_map(|p| p.trim().strip_prefix("interleaved="))
                    {
                        let ch: u8 = il.split('-').next().unwrap_or("0").parse().unwrap_or(0);
                        tcp[track] = Some(ch);
                        extra =
                            format!("Transport: RTP/AVP/TCP;unicast;interleaved={il}\r\n{sess}");
                    } else if let Some(cp) = t
                        .split(';')
                        .find_map(|p| p.trim().strip_prefix("client_port="))
                    {
                        let port: u16 = cp.split('-').next().unwrap_or("0").parse().unwrap_or(0);
                        udp[track] = Some(SocketAddr::new(peer.ip(), port));
                        if udp_sock.is_none() {
                            udp_sock = Some(UdpSocket::bind("127.0.0.1:0")?);
                        }
                        let sp = udp_sock.as_ref().unwrap().local_addr()?.port();
                        extra = format!(
                            "Transport: RTP/AVP;unicast;client_port={cp};server_port={sp}-{};source=127.0.0.1\r\n{sess}",
                            sp + 1
                        );
                    } else {
                        reply(&writer, "461 Unsupported Transport", &cseq, "", "")?;
                        continue;
                    }
                }
                "PLAY" => {
                    let sink = if let Some(v) = tcp[0] {
                        Some(Sink::Tcp(writer.clone(), v, tcp[1]))
                    } else if let (Some(v), Some(s)) = (udp[0], &udp_sock) {
                        Some(Sink::Udp(s.try_clone()?, v, udp[1]))
                    } else {
                        None
                    };
                    extra = format!("{sess}Range: npt=0.000-\r\n");
                    reply(&writer, "200 OK", &cseq, &extra, "")?;
                    if let Some(sink) = sink {
                        let mut sinks = shared.sinks.lock().unwrap();
                        sinks.retain(|(id, _)| *id != session);
                        sinks.push((session, sink));
                    }
                    continue;
                }
                "TEARDOWN" => {
                    shared
                        .sinks
                        .lock()
                        .unwrap()
                        .retain(|(id, _)| *id != session);
                    extra = sess;
                }
                _ => extra = sess,
            }
            reply(&writer, "200 OK", &cseq, &extra, &body)?;
        }
    }
    Ok(())
}

fn reply(
    w: &Mutex<TcpStream>,
    status: &str,
    cseq: &str,
    extra: &str,
    body: &str,
) -> io::Result<()> {
    let msg = format!(
        "RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.lock().unwrap().write_all(msg.as_bytes())
}

pub fn new_log() -> Arc<SendLog> {
    Arc::new(SendLog::new(Instant::now()))
}
