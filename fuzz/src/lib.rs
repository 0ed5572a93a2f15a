//! Fuzz harnesses for camgate's network-facing parsers, one `pub fn(&[u8])` per target.
//!
//! This one file is used twice:
//! - by the cargo-fuzz binaries in `fuzz/fuzz_targets/` (crate `camgate-fuzz`), and
//! - by `core/tests/fuzz_regressions.rs` through `#[path]`, which replays the corpora and crash
//!   artifacts in a plain `cargo test` (no nightly, no cargo-fuzz).
//!
//! It may therefore only use `std` and `camgate_core`. A harness "finds a bug" by panicking:
//! either inside camgate-core, or in one of the invariant checks below.

use std::time::{Duration, Instant};

use camgate_core::h264::{Depacketizer, H264Relay, RelayPacket};
use camgate_core::rtp::{parse_sender_report, RtpPacket};
use camgate_core::rtsp::framing::{Frame, Framer, MAX_BODY_BYTES, MAX_HEADER_BYTES};
use camgate_core::rtsp::{sdp, RtspClient, RtspConfig, RtspError, RtspEvent, RtspUrl};
use camgate_core::signaling::ClientMessage;

/// A harness: panics on a bug.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its cargo-fuzz binary and corpus directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("rtsp_framing", rtsp_framing),
    ("rtsp_client", rtsp_client),
    ("camera_sdp", camera_sdp),
    ("rtp_parse", rtp_parse),
    ("h264_relay", h264_relay),
    ("h264_depacketize", h264_depacketize),
    ("signaling", signaling),
    ("rtsp_url", rtsp_url),
];

/// Deterministic xorshift, seeded from input bytes, for choices that must not disturb the
/// payload (chunk sizes, clock steps): seeds can then be plain recorded byte streams.
struct Rng(u64);

impl Rng {
    fn new(seed: u8) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(seed) << 17 | u64::from(seed)))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// rtsp_framing

/// What the framer produced, owned so that different splits can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Framed {
    Msg(String),
    Data(u8, Vec<u8>),
    Error,
}

fn frame_all(chunks: &[&[u8]]) -> Vec<Framed> {
    let mut framer = Framer::new();
    let mut out = Vec::new();
    for c in chunks {
        let res = framer.push(c, &mut |f| {
            out.push(match f {
                Frame::Message(m) => Framed::Msg(format!("{m:?}")),
                Frame::Interleaved { channel, data } => Framed::Data(channel, data.to_vec()),
            });
            true
        });
        // Memory stays bounded: only an incomplete header block or message is buffered.
        assert!(
            framer.buffered() <= MAX_HEADER_BYTES + MAX_BODY_BYTES + 4,
            "framer buffers {} bytes",
            framer.buffered()
        );
        if res.is_err() {
            out.push(Framed::Error);
            return out;
        }
    }
    out
}

/// `Framer::push` on the input whole and split at two fuzzer-chosen points (taken from the first
/// two bytes): every split must give the same frames, and the same error, as the whole input.
pub fn rtsp_framing(data: &[u8]) {
    let (a, b, s) = match data {
        [a, b, s @ ..] => (usize::from(*a), usize::from(*b), s),
        _ => return,
    };
    let whole = frame_all(&[s]);
    let i = if s.is_empty() { 0 } else { a * s.len() / 255 };
    let j = i + (s.len() - i) * b / 255;
    let split = frame_all(&[&s[..i], &s[i..j], &s[j..]]);
    assert_eq!(whole, split, "split at {i},{j} changes the frames");
    let bytes: Vec<&[u8]> = s.chunks(1).collect();
    if s.len() <= 4096 {
        assert_eq!(
            whole,
            frame_all(&bytes),
            "byte-by-byte feeding changes the frames"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// rtsp_client

/// The camera URL of the rtsp_client target.
pub const CLIENT_URL: &str = "rtsp://u:p@127.0.0.1/x";

/// An `RtspClient` for [`CLIENT_URL`], connected, fed the input (after its first byte, which
/// seeds chunk sizes and clock steps: bit 0 = chunks up to 2 KiB instead of 64 bytes, bit 1 =
/// clock jumps of up to 2 minutes instead of steps of < 50 ms) as the server's bytes in chunks, with `handle_timeout` at
/// increasing instants; then torn down. Checks that it never panics, never asks to be woken in
/// the past (a driver would spin), reports media only for announced tracks while playing, and
/// reports at most one terminal event, last.
pub fn rtsp_client(data: &[u8]) {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let mut rng = Rng::new(seed);
    let t0 = Instant::now();
    let mut now = t0;
    let config = RtspConfig::default();
    let mut c = RtspClient::new(CLIENT_URL, config, now).expect("valid URL");
    let mut ev = ClientEvents::default();
    c.handle_connected(now);
    ev.drain(&mut c);
    while !rest.is_empty() {
        let n = (1 + rng.below(if seed & 1 == 0 { 64 } else { 2048 }) as usize).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        // The Playing event may be queued by this very chunk, before its media: check after.
        let mut media_tracks = Vec::new();
        c.handle_input(now, chunk, &mut |m| media_tracks.push(m.track));
        ev.drain(&mut c);
        if let Some(&t) = media_tracks.iter().max() {
            assert!(ev.playing, "media before Playing");
            assert!(t < ev.tracks, "media for track {t} of {}", ev.tracks);
        }
        // Clock: small steps; with bit 1 of the seed also jumps to the next deadline or past it.
        match rng.below(8) | if seed & 2 == 0 { 2 } else { 0 } {
            0 => {
                if let Some(t) = c.poll_timeout() {
                    now = now.max(t);
                }
            }
            1 => now += Duration::from_secs(rng.below(120)),
            _ => now += Duration::from_millis(rng.below(50)),
        }
        c.handle_timeout(now);
        ev.drain(&mut c);
        if let Some(t) = c.poll_timeout() {
            assert!(t > now, "poll_timeout {:?} not after now", t - t0);
        }
    }
    // Run the timers out: the client must end up closed within a bounded number of wakeups.
    for _ in 0..64 {
        let Some(t) = c.poll_timeout() else { break };
        assert!(t > now, "poll_timeout not after now");
        now = t;
        c.handle_timeout(now);
        ev.drain(&mut c);
    }
    c.teardown(now);
    ev.drain(&mut c);
    assert!(c.is_closed());
    assert_eq!(ev.terminal, 1, "exactly one Failed/Closed event");
    assert_eq!(c.poll_timeout(), None);
}

#[derive(Default)]
struct ClientEvents {
    playing: bool,
    tracks: usize,
    terminal: usize,
}

impl ClientEvents {
    fn drain(&mut self, c: &mut RtspClient) {
        while let Some(tx) = c.poll_transmit() {
            assert!(!tx.is_empty());
            // Requests go to the camera: never the URL's userinfo in clear.
            assert!(!contains(&tx, b"u:p@"), "userinfo on the wire");
        }
        while let Some(e) = c.poll_event() {
            assert_eq!(self.terminal, 0, "event {e:?} after a terminal event");
            match e {
                RtspEvent::Playing { tracks } => {
                    assert!(!self.playing, "Playing twice");
                    assert!(!tracks.is_empty() && tracks.len() <= 2);
                    self.playing = true;
                    self.tracks = tracks.len();
                }
                RtspEvent::Failed(err) => {
                    assert!(!err.to_string().is_empty());
                    self.terminal += 1;
                }
                RtspEvent::Closed => self.terminal += 1,
            }
        }
        assert!(format!("{c:?}").contains("127.0.0.1"));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// camera_sdp

/// Base URL used when the input has no NUL byte.
const SDP_BASE: &str = "rtsp://127.0.0.1:554/test/";

/// `sdp::parse` + `sdp::select` on the input (`base NUL body`, or just a body). Checks that the
/// selection is a subset of the parsed tracks with at most one video and one audio track.
pub fn camera_sdp(data: &[u8]) {
    let (base, body) = match data.iter().position(|&b| b == 0) {
        Some(i) if i < 256 => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        _ => (SDP_BASE.to_owned(), data),
    };
    let Ok(p) = sdp::parse(body, &base) else {
        return;
    };
    let sel = sdp::select(&p.tracks);
    assert!(sel.len() <= 2);
    assert!(sel.iter().all(|t| p.tracks.contains(t)));
    if let [a, b] = &sel[..] {
        assert_ne!(a.kind, b.kind);
    }
    for t in &p.tracks {
        assert!(t.payload_type < 128);
        let _ = t.fmtp_param("packetization-mode");
        let _ = sdp::join_control(&p.aggregate_url, &t.control);
    }
}

// ---------------------------------------------------------------------------------------------
// rtp_parse

/// `RtpPacket::parse` and `parse_sender_report` on the input. A parsed payload must be a
/// sub-slice of the input after the 12-byte header, and survive a `write_to` round trip.
pub fn rtp_parse(data: &[u8]) {
    let _ = parse_sender_report(data);
    let Ok(p) = RtpPacket::parse(data) else {
        return;
    };
    assert!(p.payload.len() + 12 <= data.len());
    let inside = data.as_ptr_range();
    assert!(p.payload.is_empty() || inside.contains(&p.payload.as_ptr()));
    assert!(p.payload_type < 128);
    let mut buf = Vec::new();
    p.write_to(&mut buf);
    assert_eq!(RtpPacket::parse(&buf), Ok(p));
}

// ---------------------------------------------------------------------------------------------
// H.264 packet streams

/// The SDP fmtp of the recorded gst-rtsp-server stream (SPS/PPS in sprop-parameter-sets).
pub const GST_FMTP: &str = "packetization-mode=1;sprop-parameter-sets=Z0LAHtkAoC/5cBagwMDUoAAAAwAgAAAHkeLFyQ==,aMuMsg==;profile-level-id=42c01e;level-asymmetry-allowed=1";

/// Header byte of an H.264 packet stream: bit 6 = start with [`GST_FMTP`], bits 0..6 = max
/// payload - 3 (so 3..=66 bytes: everything bigger gets re-fragmented).
pub struct StreamHeader {
    pub with_fmtp: bool,
    pub max_payload: usize,
}

/// One RTP packet of a fuzzed stream.
pub struct StreamPacket<'a> {
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

impl StreamPacket<'_> {
    pub fn rtp(&self) -> RtpPacket<'_> {
        RtpPacket {
            payload_type: 96,
            marker: self.marker,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload: self.payload,
        }
    }
}

/// Decodes `header, (flags, len, payload[len])*` into packets. Flags: bit 0 marker; bits 1-2
/// sequence step (+1, +0 duplicate, +2..+9 loss, +5000 restart; the loss size from bits 5-7);
/// bit 3 next timestamp (+3000); bit 4 new SSRC.
pub fn packet_stream(data: &[u8]) -> Option<(StreamHeader, Vec<StreamPacket<'_>>)> {
    let (&h, mut rest) = data.split_first()?;
    let header = StreamHeader {
        with_fmtp: h & 0x40 != 0,
        max_payload: 3 + usize::from(h & 0x3F),
    };
    let (mut seq, mut ts, mut ssrc) = (0xFFF0u16, 0xFFFF_0000u32, 0x1234_5678u32);
    let mut out = Vec::new();
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        seq = seq.wrapping_add(match (flags >> 1) & 3 {
            0 => 1,
            1 => 0,
            2 => 2 + u16::from(flags >> 5),
            _ => 5000,
        });
        if flags & 8 != 0 {
            ts = ts.wrapping_add(3000);
        }
        if flags & 16 != 0 {
            ssrc = ssrc.wrapping_mul(31).wrapping_add(7);
        }
        out.push(StreamPacket {
            marker: flags & 1 != 0,
            sequence: seq,
            timestamp: ts,
            ssrc,
            payload,
        });
    }
    Some((header, out))
}

fn nal_type(b: u8) -> u8 {
    b & 0x1F
}

/// NAL types an output payload starts or carries, as a viewer's depacketizer would see them:
/// (type, starts a NAL unit).
fn payload_nals(p: &[u8]) -> Vec<(u8, bool)> {
    match nal_type(p[0]) {
        24 => {
            let mut v = Vec::new();
            let mut r = &p[1..];
            while let [hi, lo, tail @ ..] = r {
                let n = usize::from(u16::from_be_bytes([*hi, *lo]));
                let Some(unit) = tail.get(..n) else { break };
                if let Some(&h) = unit.first() {
                    v.push((nal_type(h), true));
                }
                r = &tail[n..];
            }
            v
        }
        28 => p
            .get(1)
            .map(|&fu| vec![(nal_type(fu), fu & 0x80 != 0)])
            .unwrap_or_default(),
        t => vec![(t, true)],
    }
}

/// A viewer that joined at the latest `keyframe_start`: it must see SPS and PPS before the first
/// IDR slice (README: "Every keyframe a viewer gets is preceded by SPS and PPS").
#[derive(Default)]
struct JoiningViewer {
    active: bool,
    sps: bool,
    pps: bool,
}

impl JoiningViewer {
    fn see(&mut self, pkt: &RelayPacket) {
        if pkt.keyframe_start {
            *self = JoiningViewer {
                active: true,
                ..JoiningViewer::default()
            };
        }
        if !self.active {
            return;
        }
        for (t, start) in payload_nals(&pkt.payload) {
            match t {
                7 if start => self.sps = true,
                8 if start => self.pps = true,
                5 if start => {
                    assert!(
                        self.sps && self.pps,
                        "viewer joining at keyframe_start gets an IDR without SPS+PPS first"
                    );
                    self.active = false;
                    return;
                }
                _ => {}
            }
        }
    }
}

/// `H264Relay::push` on a packet stream (see [`packet_stream`]). Checks every output packet:
/// payload non-empty and at most `max_payload` (clamped to 3), a valid RTP H.264 packet type,
/// FU-A with an FU header, sequence numbers moving forward, and that a viewer joining
/// at any `keyframe_start` gets SPS and PPS before its IDR.
pub fn h264_relay(data: &[u8]) {
    let Some((header, packets)) = packet_stream(data) else {
        return;
    };
    let fmtp = header.with_fmtp.then_some(GST_FMTP);
    let mut relay = H264Relay::new(fmtp, header.max_payload);
    let max = header.max_payload.max(3);
    let mut out = Vec::new();
    let mut last_seq: Option<u16> = None;
    let mut viewer = JoiningViewer::default();
    for p in &packets {
        out.clear();
        relay.push(&p.rtp(), &mut out);
        for (i, o) in out.iter().enumerate() {
            let len = o.payload.len();
            assert!(len > 0, "empty payload");
            assert!(len <= max, "payload of {len} bytes > max_payload {max}");
            let t = nal_type(o.payload[0]);
            assert!(
                (1..=24).contains(&t) || t == 28,
                "output packet type {t} (payload {:02x?})",
                &o.payload[..len.min(8)]
            );
            if t == 28 {
                // Not `>= 3`: a camera's FU-A without data bytes is forwarded as it came.
                assert!(len >= 2, "FU-A without FU header");
                assert!((1..=23).contains(&nal_type(o.payload[1])));
            }
            if t == 24 {
                assert!(camgate_core::h264::nal::stap_a_is_clean(&o.payload));
            }
            if let Some(l) = last_seq {
                assert_ne!(o.seq, l, "output sequence number repeated");
            }
            last_seq = Some(o.seq);
            assert!(
                o.marker <= (i + 1 == out.len()),
                "marker before the last packet of a push"
            );
            viewer.see(o);
        }
        if let Some(s) = relay.parameter_sets_packet() {
            assert!(s.len() >= 3);
        }
        let _ = (relay.profile_level_id(), relay.has_parameter_sets());
    }
}

/// `Depacketizer::push` on a packet stream (see [`packet_stream`]), then `flush`. Every access
/// unit must hold at least one NAL unit, each non-empty, of type 1..=23, within `MAX_NAL_SIZE`.
pub fn h264_depacketize(data: &[u8]) {
    let Some((_, packets)) = packet_stream(data) else {
        return;
    };
    let mut d = Depacketizer::new();
    let check = |au: &camgate_core::h264::AccessUnit| {
        assert!(!au.nals.is_empty(), "access unit without NAL units");
        for n in &au.nals {
            assert!(!n.is_empty(), "empty NAL unit");
            assert!(
                (1..=23).contains(&nal_type(n[0])),
                "NAL type {}",
                nal_type(n[0])
            );
            assert!(n.len() <= camgate_core::h264::depacketize::MAX_NAL_SIZE);
        }
        let _ = au.is_keyframe();
    };
    for p in &packets {
        let aus = d.push(&p.rtp());
        assert!(aus.len() <= 2, "{} access units from one packet", aus.len());
        aus.iter().for_each(check);
    }
    if let Some(au) = d.flush() {
        check(&au);
    }
    assert!(d.flush().is_none(), "flush twice");
}

// ---------------------------------------------------------------------------------------------
// signaling, URLs

/// `ClientMessage::parse` on the input as text (lossy UTF-8).
pub fn signaling(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match ClientMessage::parse(&text) {
        Ok(ClientMessage::Other(name)) => {
            assert!(text.contains(name.as_str()) || name.is_empty() || text.contains('\\'))
        }
        Ok(_) => {}
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Userinfo of a URL string, as written (between `://` and the last `@` of the authority).
fn userinfo(s: &str) -> Option<&str> {
    let rest = &s[s.find("://")? + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    Some(&authority[..authority.rfind('@')?])
}

/// `RtspUrl::parse` on the input (lossy UTF-8). For a URL with a password, `redacted()`,
/// `Display` and `Debug` must show `***` in its place, never the password; errors are fixed
/// reasons that never quote the URL; and the redacted form must parse again to the same host,
/// port and request URL.
pub fn rtsp_url(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let u = match RtspUrl::parse(&s) {
        Ok(u) => u,
        Err(e) => {
            // Errors never quote the URL (it may hold a password): only fixed reasons.
            const REASONS: &[&str] = &[
                "contains a space",
                "contains a character that must be percent-encoded",
                "not an rtsp:// URL",
                "invalid port",
                "missing host",
                "malformed URL",
                "bad user name",
                "bad password encoding",
            ];
            assert!(
                matches!(&e, RtspError::BadUri(r) if REASONS.contains(&r.as_str())),
                "unexpected URL error {e:?}"
            );
            return;
        }
    };
    assert!(!u.host().is_empty());
    assert_ne!(u.port(), 0);
    assert!(
        userinfo(u.request_url()).is_none(),
        "request URL has userinfo"
    );
    let red = u.redacted();
    let password_given = userinfo(&s)
        .and_then(|ui| ui.split_once(':'))
        .is_some_and(|(_, pw)| !pw.is_empty());
    match userinfo(&red).map(|ui| ui.split_once(':')) {
        Some(Some((_, shown))) => assert_eq!(shown, "***", "redacted {red:?} shows a password"),
        Some(None) | None => assert!(
            !password_given,
            "password given but redacted {red:?} shows no ***"
        ),
    }
    for shown in [format!("{u}"), format!("{u:?}")] {
        assert!(shown.contains(&red), "{shown:?} is not the redacted URL");
    }
    let again = RtspUrl::parse(&red).unwrap_or_else(|e| panic!("redacted {red:?} fails: {e}"));
    assert_eq!(again.host(), u.host());
    assert_eq!(again.port(), u.port());
    assert_eq!(again.request_url(), u.request_url());
    assert_eq!(again.redacted(), red);
}
