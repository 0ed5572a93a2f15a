//! The relay path without sockets: `Gateway` fed a 2 Mbit/s camera's interleaved RTP with N str0m
//! viewers connected in memory (ICE, DTLS, SRTP done for real), on a simulated clock. Only the
//! time spent inside the gateway while it relays the camera's frames is measured.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camgate_core::gateway::{Gateway, GatewayConfig, GatewayOutput, SessionId, StreamId};
use camgate_core::ids::ConnId;
use camgate_core::rtsp::client::{RtspConfig, RtspTransport};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use camgate_core::h264::packetize::fu_a_fragments;
use camgate_core::rtp::RtpPacket;
use camgate_core::rtsp::framing::write_interleaved;
use camgate_testkit::Rng;

use crate::camera::{frame_size, MAX_PAYLOAD, PPS, SPS};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MicroResult {
    pub viewers: usize,
    pub datagrams: u64,
    pub ns_per_packet: f64,
}

struct Browser {
    session: SessionId,
    rtc: Rtc,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    connected: bool,
}

struct Cam {
    inbox: Vec<u8>,
    out: Vec<u8>,
    playing: bool,
    seq: u16,
    aseq: u16,
    rng: Rng,
    frame: u64,
}

impl Cam {
    fn receive(&mut self, data: &[u8]) {
        self.inbox.extend_from_slice(data);
        while let Some(end) = self.inbox.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.inbox[..end + 4]).into_owned();
            self.inbox.drain(..end + 4);
            let method = head.split(' ').next().unwrap_or("").to_string();
            if std::env::var_os("BENCH_DEBUG").is_some() {
                eprintln!("cam got: {}", head.lines().next().unwrap_or(""));
            }
            let cseq = head
                .lines()
                .find_map(|l| l.strip_prefix("CSeq:").map(|v| v.trim().to_owned()))
                .unwrap_or_default();
            let (headers, body) = match method.as_str() {
                "OPTIONS" => ("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n".to_string(), String::new()),
                "DESCRIBE" => (
                    "Content-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1:8554/cam/\r\n".into(),
                    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
                     a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n\
                     a=control:track1\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:track2\r\n"
                        .into(),
                ),
                "SETUP" if !head.contains("interleaved=") => {
                    // Interleaved only: camgate's `auto` transport falls back to TCP on 461.
                    self.out.extend_from_slice(
                        format!("RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n")
                            .as_bytes(),
                    );
                    continue;
                }
                "SETUP" => {
                    let t = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Transport:"))
                        .unwrap_or("RTP/AVP/TCP;unicast;interleaved=0-1")
                        .trim()
                        .to_owned();
                    (format!("Transport: {t}\r\nSession: 1234;timeout=60\r\n"), String::new())
                }
                "PLAY" => {
                    self.playing = true;
                    ("Session: 1234\r\n".into(), String::new())
                }
                _ => ("Session: 1234\r\n".into(), String::new()),
            };
            self.out.extend_from_slice(
                format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    }

    fn packet(&mut self, ch: u8, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        let seq = if ch == 0 {
            &mut self.seq
        } else {
            &mut self.aseq
        };
        *seq = seq.wrapping_add(1);
        let mut packet = Vec::with_capacity(12 + payload.len());
        RtpPacket {
            payload_type: pt,
            marker,
            sequence: *seq,
            timestamp: ts,
            ssrc: 0x1234_0000 + u32::from(ch),
            payload,
        }
        .write_to(&mut packet);
        write_interleaved(&mut self.out, ch, &packet);
    }

    /// One 1/30 s step: a video access unit and the PCMU packets due.
    fn frame(&mut self) {
        let f = self.frame;
        self.frame += 1;
        let ts = (f * 3000) as u32;
        let idr = f.is_multiple_of(30);
        if idr {
            self.packet(0, 96, false, ts, SPS);
            self.packet(0, 96, false, ts, PPS);
        }
        let mut nal = vec![0u8; frame_size(2_000_000, idr, &mut self.rng).max(64)];
        self.rng.fill(&mut nal);
        nal[0] = if idr { 0x65 } else { 0x41 };
        nal[1] = if idr { 0x88 } else { 0x9a };
        let mut fragments = fu_a_fragments(nal[0], &nal[1..], true, true, MAX_PAYLOAD)
            .map(|f| f.to_vec())
            .peekable();
        while let Some(p) = fragments.next() {
            self.packet(0, 96, fragments.peek().is_none(), ts, &p);
        }
        // 50 audio packets per 30 frames.
        let a0 = f * 5 / 3;
        let a1 = (f + 1) * 5 / 3;
        for a in a0..a1 {
            let mut pcm = [0u8; 160];
            self.rng.fill(&mut pcm);
            self.packet(2, 0, false, (a * 160) as u32, &pcm);
        }
    }
}

struct H {
    now: Instant,
    gw: Gateway,
    cam: Cam,
    stream: Option<StreamId>,
    browsers: Vec<Browser>,
}

impl H {
    fn play(&mut self) {
        let b = self.browsers.len();
        let addr: SocketAddr = format!("127.0.0.1:{}", 30000 + b).parse().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_pcmu(true, false)
            .set_rtp_mode(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let session = ConnId(100 + b).session();
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        self.browsers.push(Browser {
            session,
            rtc,
            addr,
            pending: Some(pending),
            connected: false,
        });
        self.gw.handle_session_opened(session, self.now);
        let msg = |m: &str, d: Value| json!({"message": m, "data": [d]}).to_string();
        self.gw.handle_session_message(
            session,
            self.now,
            &msg("connection", json!({"appKey": "defaultApp"})),
        );
        self.gw.handle_session_message(
            session,
            self.now,
            &msg(
                "playStream",
                json!({"mediaSessionId": format!("m{b}"), "name": "rtsp://127.0.0.1:8554/cam", "sdp": offer.to_sdp_string()}),
            ),
        );
    }

    /// Takes the gateway's datagrams; `held` keeps them (to deliver later, off the clock).
    fn outputs_held(&mut self, held: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) -> u64 {
        let mut n = 0;
        while let Some(out) = self.gw.poll_output() {
            if let GatewayOutput::RtspSend { data, .. } = out {
                self.cam.receive(&data);
            }
        }
        while let Some(t) = self.gw.poll_transmit() {
            n += 1;
            held.push((t.source, t.destination, t.contents.to_vec()));
        }
        n
    }

    /// Hands held datagrams to their browsers.
    fn deliver(&mut self, held: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        for (source, destination, data) in held.drain(..) {
            if let Some(b) = self.browsers.iter_mut().find(|b| b.addr == destination) {
                if let Ok(r) = Receive::new(Protocol::Udp, source, destination, &data) {
                    let _ = b.rtc.handle_input(Input::Receive(self.now, r));
                }
            }
        }
    }

    fn outputs(&mut self, deliver: bool) -> u64 {
        let mut n = 0;
        while let Some(out) = self.gw.poll_output() {
            match out {
                GatewayOutput::WsSend { session, text } => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if v["message"] == "setRemoteSDP" {
                        if let Some(b) = self.browsers.iter_mut().find(|b| b.session == session) {
                            let answer =
                                SdpAnswer::from_sdp_string(v["data"][1].as_str().unwrap()).unwrap();
                            if let Some(p) = b.pending.take() {
                                b.rtc.sdp_api().accept_answer(p, answer).unwrap();
                            }
                        }
                    }
                }
                GatewayOutput::RtspConnect { stream, .. } => {
                    self.stream = Some(stream);
                    self.gw.handle_rtsp_connected(stream, self.now);
                }
                GatewayOutput::RtspSend { data, .. } => self.cam.receive(&data),
                _ => {}
            }
        }
        while let Some(t) = self.gw.poll_transmit() {
            n += 1;
            if deliver {
                if let Some(b) = self.browsers.iter_mut().find(|b| b.addr == t.destination) {
                    if let Ok(r) = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                    {
                        let _ = b.rtc.handle_input(Input::Receive(self.now, r));
                    }
                }
            }
        }
        n
    }

    /// Browsers' timeouts and output (STUN, DTLS, RTCP) to the gateway.
    fn browsers_to_gateway(&mut self) -> bool {
        self.browsers_to_gateway_timed().0
    }

    /// As `browsers_to_gateway`, and the time the gateway took to handle what they sent.
    fn browsers_to_gateway_timed(&mut self) -> (bool, Duration) {
        let mut sent = Vec::new();
        for b in &mut self.browsers {
            let _ = b.rtc.handle_input(Input::Timeout(self.now));
            loop {
                match b.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        sent.push((t.source, t.destination, t.contents.to_vec()))
                    }
                    Ok(Output::Event(Event::Connected)) => b.connected = true,
                    Ok(Output::Event(_)) => {}
                    _ => break,
                }
            }
        }
        let t = Instant::now();
        for s in &sent {
            self.gw.handle_udp(self.now, s.0, s.1, &s.2);
        }
        (!sent.is_empty(), t.elapsed())
    }

    fn feed_camera(&mut self) {
        if !self.cam.out.is_empty() {
            if let Some(s) = self.stream {
                let data = std::mem::take(&mut self.cam.out);
                // No RTSP players here: all of it is taken.
                let _taken = self.gw.handle_rtsp_data(s, self.now, &data);
            }
        }
    }
}

/// For each viewer count: setup, then `frames` frames relayed and timed.
pub fn run(counts: &[usize], frames: u64) -> Vec<MicroResult> {
    counts.iter().map(|&n| run_one(n, frames)).collect()
}

fn run_one(n: usize, frames: u64) -> MicroResult {
    let now = Instant::now();
    let mut h = H {
        now,
        gw: Gateway::new(GatewayConfig {
            candidates: vec!["127.0.0.1:20000".parse().unwrap()],
            // In memory the camera speaks TCP-interleaved only (no UDP sockets here).
            rtsp: RtspConfig {
                transport: RtspTransport::Tcp,
                ..Default::default()
            },
            // As the server: one certificate for every viewer, made before they come.
            dtls_cert: camgate_core::str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
            ..Default::default()
        }),
        cam: Cam {
            inbox: Vec::new(),
            out: Vec::new(),
            playing: false,
            seq: 0,
            aseq: 0,
            rng: Rng::new(0x1234_5678_9abc_def1),
            frame: 0,
        },
        stream: None,
        browsers: Vec::new(),
    };
    for _ in 0..n {
        h.play();
    }
    // Setup on the simulated clock: signaling, RTSP, ICE, DTLS, first keyframe.
    for step in 0..300 {
        for _ in 0..20 {
            let mut moved = h.outputs(true) > 0;
            if !h.cam.out.is_empty() {
                moved = true;
                h.feed_camera();
            }
            moved |= h.browsers_to_gateway();
            if !moved {
                break;
            }
        }
        h.now += Duration::from_millis(10);
        h.gw.handle_timeout(h.now);
        if h.cam.playing && step % 3 == 0 {
            h.cam.frame();
        }
        if step > 100 && h.browsers.iter().all(|b| b.connected) {
            break;
        }
    }
    // Measured: frames at 30 fps; the viewers' datagrams are not delivered (not part of the cost).
    // `BENCH_MICRO_FEEDBACK=1`: they are, off the clock, and the browsers' RTCP (receiver
    // reports, transport-wide feedback every 50 ms) comes back every frame, its handling timed
    // as the gateway's, as with real browsers. `BENCH_MICRO_FRAMES=N` overrides the frame count
    // (two counts under `valgrind --tool=callgrind` give the instructions per frame, setup
    // excluded). Details (ticks, heap) go to stderr.
    let feedback = std::env::var_os("BENCH_MICRO_FEEDBACK").is_some();
    let frames = std::env::var("BENCH_MICRO_FRAMES")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(frames);
    let (stats0, heap0) = (h.gw.stats(), heap_in_use());
    let mut held = Vec::new();
    let mut busy = Duration::ZERO;
    let mut datagrams = 0u64;
    for f in 0..frames {
        h.now += Duration::from_micros(33_333);
        h.cam.frame();
        let data = std::mem::take(&mut h.cam.out);
        let t = Instant::now();
        if let Some(s) = h.stream {
            let _taken = h.gw.handle_rtsp_data(s, h.now, &data);
        }
        if h.gw.poll_timeout().is_some_and(|x| x <= h.now) {
            h.gw.handle_timeout(h.now);
        }
        if feedback {
            datagrams += h.outputs_held(&mut held);
            busy += t.elapsed();
            h.deliver(&mut held);
            busy += h.browsers_to_gateway_timed().1;
            let t = Instant::now();
            datagrams += h.outputs_held(&mut held);
            busy += t.elapsed();
            h.deliver(&mut held);
            continue;
        }
        datagrams += h.outputs(false);
        busy += t.elapsed();
        if f % 15 == 0 {
            // Keep the viewers alive (consent checks, RTCP), off the clock.
            h.browsers_to_gateway();
            h.outputs(false);
        }
    }
    let (stats, heap) = (h.gw.stats(), heap_in_use());
    eprintln!(
        "micro {n} viewers, {frames} frames{}: {datagrams} datagrams, {} viewer-packets; \
         str0m ticks {}; heap grew {} B per viewer over the frames, {} B in use per viewer \
         (browsers included)",
        if feedback { " with feedback" } else { "" },
        stats.viewer_packets_out - stats0.viewer_packets_out,
        stats.viewer_ticks - stats0.viewer_ticks,
        (heap as i64 - heap0 as i64) / n.max(1) as i64,
        heap / n.max(1) as u64,
    );
    MicroResult {
        viewers: n,
        datagrams,
        ns_per_packet: busy.as_nanos() as f64 / datagrams.max(1) as f64,
    }
}

/// Heap bytes in use (glibc's count over every arena).
#[allow(unsafe_code)] // mallinfo2 through libc
fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 takes no argument and only reads the allocator's own statistics.
    unsafe { libc::mallinfo2() }.uordblks as u64
}
