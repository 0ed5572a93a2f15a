//! Fuzz harnesses for camgate's network-facing parsers, one `pub fn(&[u8])` per target.
//!
//! They are run by the cargo-fuzz binaries in `fuzz/fuzz_targets/` (crate `camgate-fuzz`) and
//! replayed over the seeds, corpora and crash artifacts by `core/tests/fuzz_regressions.rs` in
//! a plain `cargo test` (no nightly, no cargo-fuzz), both through [`TARGETS`]. The web side's
//! harnesses are in [`web`] (feature `web`).
//!
//! A harness "finds a bug" by panicking: either inside camgate-core, or in one of the
//! invariant checks below.

pub mod replay;
#[cfg(feature = "web")]
pub mod web;

use std::time::{Duration, Instant};

use std::net::SocketAddr;

use camgate_core::audio::{AudioInput, OpusPacket, Transcoder, OPUS_FRAME};
use camgate_core::audio_relay::{AudioOut, AudioPacket, AudioRelay};
use camgate_core::h264::slice::{slice_type, SliceType};
use camgate_core::h264::{Depacketizer, H264Relay};
use camgate_core::media::VideoPacket;
use camgate_core::media::{MediaKind, TrackInfo};
use camgate_core::rtp::{parse_sender_report, RtpPacket, SenderReport};
use camgate_core::rtp_reorder::{Pushed, RtpReorder};
use camgate_core::rtsp::framing::{Frame, Framer, MAX_BODY_BYTES, MAX_HEADER_BYTES};
use camgate_core::rtsp::{
    sdp, RtspClient, RtspConfig, RtspError, RtspEvent, RtspOutput, RtspTransport, RtspUrl,
};
use camgate_core::signaling::ClientMessage;
use camgate_core::vp8::{keyframe_size, Vp8Descriptor, Vp8Relay};

use crate::Rng;

/// A harness: panics on a bug.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its cargo-fuzz binary and corpus directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("rtsp_framing", rtsp_framing),
    ("rtsp_client", rtsp_client),
    ("camera_sdp", camera_sdp),
    ("rtp_parse", rtp_parse),
    ("h264_relay", h264_relay),
    ("h265_relay", h265_relay),
    ("h264_depacketize", h264_depacketize),
    ("signaling", signaling),
    ("rtsp_url", rtsp_url),
    ("vp8_relay", vp8_relay),
    ("audio_transcode", audio_transcode),
    ("rtcp", rtcp),
    ("rtp_reorder", rtp_reorder),
    ("h264_slice", h264_slice),
    ("camera_udp", camera_udp),
    ("stun_username", stun_username),
    ("rtsp_server", rtsp_server),
    ("viewer_token", viewer_token),
];

/// The generator for choices that must not disturb the payload (chunk sizes, clock steps),
/// seeded from one input byte: seeds can then be plain recorded byte streams.
fn seeded_rng(seed: u8) -> Rng {
    Rng::new(0x9E37_79B9_7F4A_7C15 ^ (u64::from(seed) << 17 | u64::from(seed)))
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
    let mut rng = seeded_rng(seed);
    let t0 = Instant::now();
    let mut now = t0;
    let config = RtspConfig::default();
    let mut c = RtspClient::new(CLIENT_URL, config, now).expect("valid URL");
    let mut ev = ClientEvents::default();
    c.handle_connected(now);
    ev.drain(&mut c, now);
    while !rest.is_empty() {
        let n = (1 + rng.below(if seed & 1 == 0 { 64 } else { 2048 }) as usize).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        // The Playing event may be queued by this very chunk, before its media: check after.
        let media_tracks: Vec<usize> = c.handle_input(now, chunk).map(|m| m.track).collect();
        ev.drain(&mut c, now);
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
        ev.drain(&mut c, now);
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
        ev.drain(&mut c, now);
    }
    c.teardown(now);
    ev.drain(&mut c, now);
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
    fn drain(&mut self, c: &mut RtspClient, now: Instant) {
        while let Some(output) = c.poll_output() {
            let e = match output {
                RtspOutput::Transmit(tx) => {
                    assert!(!tx.is_empty());
                    // Requests go to the camera: never the URL's userinfo in clear.
                    assert!(!contains(&tx, b"u:p@"), "userinfo on the wire");
                    continue;
                }
                // A driver that cannot bind ports: the client goes on over TCP.
                RtspOutput::OpenUdp(r) => {
                    c.handle_udp_ports_failed(now, r.track);
                    continue;
                }
                RtspOutput::UdpTransmit(_) | RtspOutput::Redirect(_) => continue,
                RtspOutput::Event(e) => e,
            };
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
/// selection is a subset of the parsed tracks with one video and one audio track exactly when
/// the SDP has one of that kind (whatever its encoding: RTSP players get any).
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
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let has = |tracks: &[TrackInfo]| tracks.iter().any(|t| t.kind == kind);
        assert_eq!(has(&p.tracks), has(&sel));
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
    fn see(&mut self, pkt: &VideoPacket) {
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

/// A relay's output packet in order: its sequence number is not the last one again, and only
/// the last packet of a push may carry the marker.
fn check_order(o: &VideoPacket, last_seq: &mut Option<u16>, last_of_push: bool) {
    if let Some(l) = *last_seq {
        assert_ne!(o.seq, l, "output sequence number repeated");
    }
    *last_seq = Some(o.seq);
    assert!(
        o.marker <= last_of_push,
        "marker before the last packet of a push"
    );
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
            check_order(o, &mut last_seq, i + 1 == out.len());
            viewer.see(o);
        }
        if let Some(s) = relay.parameter_sets_packet() {
            assert!(s.len() >= 3);
        }
        let _ = (relay.profile_level_id(), relay.has_parameter_sets());
    }
}

/// The SDP fmtp of the test camera's H.265 stream (x265 Main 640x360, core/tests/data/h265).
pub const H265_FMTP: &str = "sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA/ugJA;sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA/oAUCAXHy5bpKTC//AAEAAWoMDAwIAAADAAgAAAMA8EA=;sprop-pps=RAHAcYMS";

/// `H265Relay::push` on a packet stream (see [`packet_stream`]; bit 6 of the header starts with
/// [`H265_FMTP`]), and `SpsInfo::parse` on the whole input. Checks every output packet: payload
/// of 2 bytes or more and at most `max_payload` (clamped to 4), an RTP H.265 type (single NAL
/// unit, clean AP, FU of a non-aggregate type), sequence numbers moving forward, the marker only
/// on the last packet of a push, and that a viewer joining at any `keyframe_start` gets VPS,
/// SPS and PPS before its IRAP picture.
pub fn h265_relay(data: &[u8]) {
    use camgate_core::h265::nal::{ap_units, is_irap, nal_type as t265};
    let _ = camgate_core::h265::SpsInfo::parse(data);
    let Some((header, packets)) = packet_stream(data) else {
        return;
    };
    let fmtp = header.with_fmtp.then_some(H265_FMTP);
    let mut relay = camgate_core::h265::H265Relay::new(fmtp, header.max_payload);
    let max = header.max_payload.max(4);
    let mut out = Vec::new();
    let mut last_seq: Option<u16> = None;
    // A viewer that joined at the latest keyframe_start: the parameter sets it has seen.
    let mut joined: Option<[bool; 3]> = None;
    for p in &packets {
        out.clear();
        relay.push(&p.rtp(), &mut out);
        for (i, o) in out.iter().enumerate() {
            let len = o.payload.len();
            assert!(
                (2..=max).contains(&len),
                "payload of {len} bytes, max {max}"
            );
            let t = t265(o.payload[0]);
            // (type, starts a NAL unit) of what it carries.
            let units: Vec<(u8, bool)> = match t {
                48 => {
                    assert!(camgate_core::h264::nal::units_are_clean(ap_units(
                        &o.payload
                    )));
                    ap_units(&o.payload).map(|u| (t265(u[0]), true)).collect()
                }
                49 => {
                    assert!(len >= 3, "FU without FU header");
                    let fu = o.payload[2];
                    assert!(fu & 0x3F < 48, "FU of type {}", fu & 0x3F);
                    vec![(fu & 0x3F, fu & 0x80 != 0)]
                }
                0..=47 => vec![(t, true)],
                _ => panic!("output packet type {t}"),
            };
            check_order(o, &mut last_seq, i + 1 == out.len());
            if o.keyframe_start {
                joined = Some([false; 3]);
            }
            let Some(seen) = joined.as_mut() else {
                continue;
            };
            for (u, start) in units {
                if (32..=34).contains(&u) && start {
                    seen[usize::from(u - 32)] = true;
                }
                if is_irap(u) && start {
                    assert_eq!(*seen, [true; 3], "IRAP without VPS, SPS, PPS before it");
                    joined = None;
                    break;
                }
            }
        }
        let _ = (relay.sps_info(), relay.profile_tier_level());
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

// ---------------------------------------------------------------------------------------------
// vp8_relay

/// `Vp8Relay::push` on a packet stream (see [`packet_stream`]; the header's max payload only
/// decides what counts as oversized), and `Vp8Descriptor::parse` on every payload. Each output
/// packet must be the payload just pushed, unchanged and non-empty, with its marker and
/// timestamp; `keyframe_start` only on a frame start carrying a keyframe header; output sequence
/// numbers strictly move forward (by less than half the sequence space).
pub fn vp8_relay(data: &[u8]) {
    let _ = Vp8Descriptor::parse(data);
    let Some((header, packets)) = packet_stream(data) else {
        return;
    };
    let mut relay = Vp8Relay::new(header.max_payload);
    let mut out = Vec::new();
    let mut last_seq: Option<u16> = None;
    let mut forwarded = 0u64;
    let mut keyframes = 0u64;
    for p in &packets {
        let desc = Vp8Descriptor::parse(p.payload);
        if let Some(d) = desc {
            assert!(
                d.len < p.payload.len(),
                "descriptor covers the whole payload"
            );
            assert!(d.partition <= 7);
            assert!(d.key_idx.is_none_or(|k| k <= 31));
            assert!(d.tid.is_none_or(|(t, _)| t <= 3));
        }
        out.clear();
        relay.push(&p.rtp(), &mut out);
        assert!(out.len() <= 1, "{} packets out of one", out.len());
        let Some(o) = out.first() else { continue };
        forwarded += 1;
        assert!(!o.payload.is_empty(), "empty payload forwarded");
        assert_eq!(&o.payload[..], p.payload, "payload changed");
        assert_eq!((o.marker, o.rtp_time), (p.marker, p.timestamp));
        let d = desc.expect("forwarded a payload whose descriptor does not parse");
        if o.keyframe_start {
            keyframes += 1;
            assert!(d.starts_frame(), "keyframe_start not on a frame start");
            assert!(keyframe_size(&p.payload[d.len..]).is_some());
        }
        if let Some(l) = last_seq {
            let step = o.seq.wrapping_sub(l);
            assert!(
                (1..0x8000).contains(&step),
                "output sequence {l} -> {}",
                o.seq
            );
        }
        last_seq = Some(o.seq);
    }
    assert_eq!(relay.keyframes(), keyframes);
    assert!(relay.oversized() <= forwarded);
    let _ = (relay.last_keyframe_size(), relay.malformed());
}

// ---------------------------------------------------------------------------------------------
// audio_transcode

/// The camera audio tracks of the `audio_transcode` target: (encoding, clock rate, channels,
/// fmtp, nominal frame duration in clock units), as real cameras announce them (the fmtp lines
/// are those of `core/tests/data/audio/*.meta`).
pub const AUDIO_TRACKS: &[(&str, u32, u16, &str, u32)] = &[
    ("MPEG4-GENERIC", 16000, 1, "streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1408;sizelength=13;indexlength=3;indexdeltalength=3", 1024),
    ("MPEG4-GENERIC", 48000, 2, "streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1190;sizelength=13;indexlength=3;indexdeltalength=3", 1024),
    ("MP4A-LATM", 44100, 1, "cpresent=0;config=40002410", 1024),
    ("MP4A-LATM", 16000, 1, "cpresent=0;config=40002810", 1024),
    ("SPEEX", 8000, 1, "", 160),
    ("SPEEX", 16000, 1, "", 320),
    ("PCMU", 8000, 1, "", 160),
    ("PCMA", 8000, 1, "", 160),
    ("PCMA", 16000, 2, "", 320),
    ("OPUS", 48000, 2, "", 960),
];

/// The audio track for selector byte `sel` (see [`audio_transcode`]).
pub fn audio_track(sel: u8) -> (TrackInfo, u32) {
    let (enc, rate, ch, fmtp, frame) = AUDIO_TRACKS[usize::from(sel & 0x0F) % AUDIO_TRACKS.len()];
    let track = TrackInfo {
        kind: MediaKind::Audio,
        encoding: enc.into(),
        payload_type: 96,
        clock_rate: rate,
        channels: Some(ch),
        fmtp: (!fmtp.is_empty()).then(|| fmtp.into()),
        control: "rtsp://127.0.0.1/x/trackID=2".into(),
    };
    (track, frame)
}

/// One packet of an audio stream.
pub struct AudioRecord<'a> {
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Decodes `(dt_hi, dt_lo, len_hi, len_lo, payload[len])*`: `dt` is the signed timestamp step
/// (i16; `0x7FFF` means "one nominal frame", so recorded streams and fuzzed ones look alike);
/// the length has 11 bits; the top 3 bits of `len_hi` are the sequence step (0: +1, 1: +0
/// duplicate, 2: +3 loss, 3: -1 late, 4: +5000 restart, else +1); bit 3 is the marker.
pub fn audio_records(mut rest: &[u8], frame: u32) -> Vec<AudioRecord<'_>> {
    let (mut seq, mut ts) = (0xFFF8u16, 0xFFFF_F000u32);
    let mut out = Vec::new();
    while let [dh, dl, lh, ll, tail @ ..] = rest {
        let n = (usize::from(lh & 0x07) << 8 | usize::from(*ll)).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        let dt = i16::from_be_bytes([*dh, *dl]);
        ts = if dt == i16::MAX {
            ts.wrapping_add(frame)
        } else {
            ts.wrapping_add(i32::from(dt) as u32)
        };
        seq = seq.wrapping_add(match lh >> 5 {
            1 => 0,
            2 => 3,
            3 => u16::MAX,
            4 => 5000,
            _ => 1,
        });
        out.push(AudioRecord {
            sequence: seq,
            timestamp: ts,
            marker: lh & 0x08 != 0,
            payload,
        });
    }
    out
}

/// Output timestamps of one stream: strictly increasing (wrapping) except across a re-anchor.
#[derive(Default)]
struct Timeline {
    last: Option<u32>,
}

impl Timeline {
    fn see(&mut self, t: u32, what: &str) {
        if let Some(l) = self.last {
            let d = t.wrapping_sub(l);
            assert!((1..0x8000_0000).contains(&d), "{what}: rtp_time {l} -> {t}");
        }
        self.last = Some(t);
    }
}

/// A camera audio track chosen by the first byte (bits 0-3: [`AUDIO_TRACKS`] index; bit 4: through
/// `AudioRelay` instead of a bare `Transcoder`), then the rest as RTP payloads (see
/// [`audio_records`]). Checks: no panic; every Opus payload non-empty, 960 samples when
/// transcoded; output `rtp_time` strictly increasing (wrapping) while the transcoder does not
/// re-anchor; relay output sequence numbers +1 per packet (plus gaps when passed through) and
/// passed-through payloads unchanged.
pub fn audio_transcode(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (track, frame) = audio_track(sel);
    let records = audio_records(rest, frame);
    if sel & 0x10 != 0 {
        audio_relay(&track, &records);
        return;
    }
    let input = AudioInput::from_track(&track).expect("fixed track is valid");
    let passthrough = track.encoding == "OPUS";
    let mut t = Transcoder::new(input).expect("fixed track is supported");
    let mut out: Vec<OpusPacket> = Vec::new();
    let mut timeline = Timeline::default();
    for r in &records {
        out.clear();
        let reanchors = t.stats().reanchors;
        t.push(r.timestamp, r.payload, &mut out);
        let reanchored = t.stats().reanchors != reanchors;
        if reanchored {
            // Outputs before and after the re-anchor may be in this one push.
            timeline.last = out.last().map(|o| o.rtp_time);
        }
        for o in &out {
            assert!(!o.payload.is_empty(), "empty Opus payload");
            if passthrough {
                assert_eq!(o.payload, r.payload);
            } else {
                assert_eq!(o.samples, OPUS_FRAME);
                if !reanchored {
                    timeline.see(o.rtp_time, "transcoder");
                }
                let _ = t.input_time(o.rtp_time);
            }
        }
    }
    let s = t.stats();
    assert_eq!(s.packets_in, records.len() as u64);
    assert!(t.output_channels() == 1 || t.output_channels() == 2);
}

fn audio_relay(track: &TrackInfo, records: &[AudioRecord<'_>]) {
    let mut relay = AudioRelay::new(track).expect("fixed track is supported");
    let passthrough = relay.output() != AudioOut::Opus || track.encoding == "OPUS";
    let _ = relay.description();
    let mut out: Vec<AudioPacket> = Vec::new();
    let mut last_seq: Option<u16> = None;
    for r in records {
        let pkt = RtpPacket {
            payload_type: track.payload_type,
            marker: r.marker,
            sequence: r.sequence,
            timestamp: r.timestamp,
            ssrc: 0x0A0B_0C0D,
            payload: r.payload,
        };
        out.clear();
        relay.push(&pkt, &mut out);
        if passthrough {
            assert!(out.len() <= 1);
        }
        for o in &out {
            assert!(!o.payload.is_empty(), "empty audio payload");
            if passthrough {
                assert_eq!(&o.payload[..], r.payload, "passed-through payload changed");
                assert_eq!(o.rtp_time, r.timestamp);
            }
            if let Some(l) = last_seq {
                let step = o.seq.wrapping_sub(l);
                if passthrough {
                    assert!(
                        (1..0x8000).contains(&step),
                        "relay sequence {l} -> {}",
                        o.seq
                    );
                } else {
                    assert_eq!(step, 1, "relay sequence {l} -> {}", o.seq);
                }
            }
            last_seq = Some(o.seq);
            let _ = relay.input_time(o.rtp_time);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rtcp

/// The first sender report of a compound RTCP packet, written from RFC 3550 6.1/6.4.1 for
/// comparison: packets are walked by their length fields (version 2 each, whole), an SR is
/// taken if it has room for the sender info.
fn reference_sender_report(buf: &[u8]) -> Option<SenderReport> {
    let mut i = 0;
    while buf.len() - i >= 4 {
        let h = &buf[i..];
        if h[0] & 0xC0 != 0x80 {
            return None;
        }
        let len = 4 * (1 + usize::from(u16::from_be_bytes([h[2], h[3]])));
        if len > h.len() {
            return None;
        }
        if h[1] == 200 && len >= 28 {
            let w = |k: usize| u32::from_be_bytes([h[k], h[k + 1], h[k + 2], h[k + 3]]);
            return Some(SenderReport {
                ssrc: w(4),
                ntp_time: u64::from(w(8)) << 32 | u64::from(w(12)),
                rtp_time: w(16),
            });
        }
        i += len;
    }
    None
}

/// `parse_sender_report` on the input as a (compound) RTCP packet, compared with a reference
/// walk; then metamorphic checks: anything appended after a found SR changes nothing, and an
/// RR (or a too-short SR) put in front changes nothing.
pub fn rtcp(data: &[u8]) {
    let sr = parse_sender_report(data);
    assert_eq!(sr, reference_sender_report(data));
    if let Some(sr) = sr {
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[0x81, 200, 0, 6, 1, 2, 3, 4, 5, 6, 7, 8]);
        longer.extend_from_slice(data);
        assert_eq!(
            parse_sender_report(&longer),
            Some(sr),
            "appended bytes change the SR"
        );
    }
    // RR with one (truncated-away) block count 0, and an SR whose length leaves no sender info.
    let mut front = vec![0x80, 201, 0, 1, 0xDE, 0xAD, 0xBE, 0xEF];
    front.extend_from_slice(&[0x80, 200, 0, 2, 1, 1, 1, 1, 2, 2, 2, 2]);
    front.extend_from_slice(data);
    assert_eq!(
        parse_sender_report(&front),
        sr,
        "a leading RR changes the result"
    );
}

// ---------------------------------------------------------------------------------------------
// rtp_reorder

/// Depths of the `rtp_reorder` target (header bits 0-2).
const REORDER_DEPTHS: [usize; 8] = [0, 1, 2, 4, 8, 16, 64, 3000];
/// Windows of the `rtp_reorder` target in ms (header bits 3-4).
const REORDER_WINDOWS_MS: [u64; 4] = [0, 10, 100, 1000];

/// `RtpReorder` with a depth and window from the header byte, fed `(op, x, y)` records: op bits
/// 0-1 select 0: push `last + (x as i8)`, 1: push seq `x<<8|y`, 2: `handle_timeout` only, 3: push
/// `last + 1` (or `clear()` when x = 0); op bits 2-7 advance the clock by 4 ms each. The payload
/// is the sequence number followed by `y`.
///
/// Checks: released packets carry their own sequence number and strictly increase in extended
/// sequence (a `Reset` or `clear` starts a new run) matching `extended_highest`; never more than
/// the depth held; `poll_timeout` is after `now` once `handle_timeout(now)` ran; counters add up.
pub fn rtp_reorder(data: &[u8]) {
    let Some((&h, mut rest)) = data.split_first() else {
        return;
    };
    let depth = REORDER_DEPTHS[usize::from(h & 7)].max(1);
    let window = Duration::from_millis(REORDER_WINDOWS_MS[usize::from(h >> 3 & 3)]);
    let mut r = RtpReorder::new(REORDER_DEPTHS[usize::from(h & 7)], window);
    let t0 = Instant::now();
    let mut now = t0;
    let mut last = 0u16;
    // Released in the current run: last sequence number and its extended form.
    let mut run: Option<ReorderRun> = None;
    let mut released = 0u64;
    let mut pushed = 0u64;
    while let [op, x, y, tail @ ..] = rest {
        rest = tail;
        now += Duration::from_millis(u64::from(op >> 2) * 4);
        let seq = match op & 3 {
            0 => last.wrapping_add(i16::from(*x as i8) as u16),
            1 => u16::from_be_bytes([*x, *y]),
            2 => {
                let mut got = Vec::new();
                r.handle_timeout(now, &mut |s, d| got.push((s, d.to_vec())));
                released += got.len() as u64;
                check_run(&mut run, &got, r.extended_highest());
                if let Some(t) = r.poll_timeout() {
                    assert!(t > now, "poll_timeout {:?} not after now", t - t0);
                }
                continue;
            }
            _ if *x == 0 => {
                r.clear();
                assert_eq!(r.held(), 0);
                assert_eq!(r.poll_timeout(), None);
                run = None;
                continue;
            }
            _ => last.wrapping_add(1),
        };
        last = seq;
        let mut payload = seq.to_be_bytes().to_vec();
        payload.push(*y);
        // Release what timed out first, so that `got` holds only what this push released.
        let mut got = Vec::new();
        r.handle_timeout(now, &mut |s, d| got.push((s, d.to_vec())));
        released += got.len() as u64;
        check_run(&mut run, &got, r.extended_highest());
        got.clear();
        let res = r.push(now, seq, &payload, &mut |s, d| got.push((s, d.to_vec())));
        pushed += 1;
        released += got.len() as u64;
        match res {
            Pushed::Reset => {
                let (first, newest) = got.split_at(got.len() - 1);
                check_run(&mut run, first, None);
                assert_eq!(newest[0].0, seq, "Reset does not deliver the packet");
                run = None;
                check_run(&mut run, newest, r.extended_highest());
            }
            Pushed::Delivered => {
                assert!(
                    got.iter().any(|(s, _)| *s == seq),
                    "Delivered but not released"
                );
                check_run(&mut run, &got, r.extended_highest());
            }
            Pushed::Held | Pushed::Dropped => {
                assert!(got.iter().all(|(s, _)| *s != seq));
                check_run(&mut run, &got, r.extended_highest());
            }
        }
        assert!(r.held() <= depth, "{} held with depth {depth}", r.held());
        assert_eq!(r.held() == 0, r.poll_timeout().is_none());
    }
    assert_eq!(r.delivered(), released);
    assert!(r.dropped() <= pushed);
    assert!(released + r.dropped() + r.held() as u64 <= pushed);
}

/// The released packets of one run (between `Reset`s and `clear`s): the last sequence number,
/// its extended form counted here, and how far `extended_highest` is from it (constant in a run).
#[derive(Clone, Copy)]
struct ReorderRun {
    last: u16,
    ext: u32,
    offset: Option<u32>,
}

/// `extended`: `extended_highest` after `got` was released (`None`: not known, more followed).
fn check_run(run: &mut Option<ReorderRun>, got: &[(u16, Vec<u8>)], extended: Option<u32>) {
    for (s, d) in got {
        assert_eq!(
            d[..2],
            s.to_be_bytes(),
            "packet {s} released with another's data"
        );
        *run = Some(match *run {
            None => ReorderRun {
                last: *s,
                ext: u32::from(*s),
                offset: None,
            },
            Some(run) => {
                let step = s.wrapping_sub(run.last);
                assert!(
                    (1..0x8000).contains(&step),
                    "released {} then {s}: not in sequence order",
                    run.last
                );
                ReorderRun {
                    last: *s,
                    ext: run.ext.wrapping_add(u32::from(step)),
                    ..run
                }
            }
        });
    }
    if let (false, Some(run), Some(e)) = (got.is_empty(), run.as_mut(), extended) {
        assert_eq!(e as u16, run.last, "extended highest sequence");
        let offset = e.wrapping_sub(run.ext);
        assert_eq!(
            *run.offset.get_or_insert(offset),
            offset,
            "extended sequence went wrong"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// h264_slice

/// `slice_type` written naively: strip emulation prevention from the first 20 bytes, then read
/// two ue(v) (None past the data or beyond 32 bits).
fn reference_slice_type(data: &[u8]) -> Option<SliceType> {
    let mut rbsp = Vec::new();
    let mut zeros = 0;
    for &b in &data[..data.len().min(20)] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        rbsp.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    let mut pos = 0usize;
    let mut bit = || {
        let b = rbsp.get(pos / 8)? >> (7 - pos % 8) & 1;
        pos += 1;
        Some(b)
    };
    let mut ue = || -> Option<u32> {
        let mut n = 0;
        while bit()? == 0 {
            n += 1;
            if n > 32 {
                return None;
            }
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = v << 1 | u64::from(bit()?);
        }
        u32::try_from((1u64 << n) - 1 + v).ok()
    };
    let _first_mb = ue()?;
    match ue()? {
        c @ 0..=9 => Some(
            [
                SliceType::P,
                SliceType::B,
                SliceType::I,
                SliceType::Sp,
                SliceType::Si,
            ][c as usize % 5],
        ),
        _ => None,
    }
}

/// `h264::slice::slice_type` on the input, compared with a naive implementation; only a prefix
/// may matter (appending bytes to a 20-byte prefix changes nothing).
pub fn h264_slice(data: &[u8]) {
    let t = slice_type(data);
    assert_eq!(
        t,
        reference_slice_type(data),
        "slice_type differs from the reference"
    );
    if data.len() >= 20 {
        assert_eq!(slice_type(&data[..20]), t);
    }
    for code in [0u32, 4, 5, 9, 10, u32::MAX] {
        assert_eq!(SliceType::from_code(code).is_some(), code <= 9);
    }
}

// ---------------------------------------------------------------------------------------------
// camera_udp

/// The camera of the `camera_udp` target (an IP: its datagrams are checked against it).
pub const UDP_CAMERA: &str = "192.168.1.64";
const UDP_SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.168.1.64\r\ns=Media Presentation\r\nt=0 0\r\n\
a=control:rtsp://192.168.1.64:554/ch1/\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\n\
a=control:rtsp://192.168.1.64:554/ch1/trackID=1\r\na=rtpmap:96 H264/90000\r\n\
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z01AKI2NQDwBE/LCAAAOEAACvyAI,aO44gA==\r\n\
m=audio 0 RTP/AVP 8\r\nc=IN IP4 0.0.0.0\r\na=control:rtsp://192.168.1.64:554/ch1/trackID=2\r\na=rtpmap:8 PCMA/8000\r\n";

/// The camera's answer to one request of the client (Hikvision-style, see
/// `core/src/rtsp/testdata/udp_hikvision.txt`). `server_ports`: announce `server_port` (then
/// only those ports are accepted); `source`: announce `source=` on the audio track.
fn udp_camera_answer(req: &[u8], server_ports: bool, source: bool) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(req);
    let method = text.split(' ').next()?;
    let cseq = text
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))?
        .trim()
        .to_owned();
    let client_port = text
        .lines()
        .find_map(|l| l.split("client_port=").nth(1))
        .map(|p| p.split(';').next().unwrap_or("").trim().to_owned());
    let mut head = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n");
    let mut body = String::new();
    match method {
        "OPTIONS" => head += "Public: OPTIONS, DESCRIBE, PLAY, SETUP, TEARDOWN, GET_PARAMETER\r\n",
        "DESCRIBE" => {
            head += "Content-Type: application/sdp\r\nContent-Base: rtsp://192.168.1.64:554/ch1/\r\n";
            body = UDP_SDP.to_owned();
        }
        "SETUP" => {
            let audio = text.starts_with("SETUP rtsp://192.168.1.64:554/ch1/trackID=2");
            let (sp, ssrc) = if audio { ("8220-8221", "1F0E0D0C") } else { ("8218-8219", "5e2a4b3c") };
            head += "Session: 1273222592;timeout=60\r\n";
            head += &format!("Transport: RTP/AVP;unicast;client_port={}", client_port?);
            if source && audio {
                head += ";source=192.168.1.64";
            }
            if server_ports {
                head += &format!(";server_port={sp}");
            }
            head += &format!(";ssrc={ssrc};mode=\"play\"\r\n");
        }
        "PLAY" => head += "Session: 1273222592\r\nRTP-Info: url=rtsp://192.168.1.64:554/ch1/trackID=1;seq=100;rtptime=2385553848\r\n",
        _ => head += "Session: 1273222592\r\n",
    }
    head += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    Some(head.into_bytes())
}

/// Sources datagrams come from in the `camera_udp` target (flags bits 3-4).
fn udp_source(i: u8, port: u16) -> SocketAddr {
    match i & 3 {
        0 => SocketAddr::from(([192, 168, 1, 64], port)),
        1 => SocketAddr::from(([192, 168, 1, 64], port.wrapping_add(1))),
        2 => SocketAddr::from(([192, 168, 1, 99], port)),
        _ => format!("[::ffff:192.168.1.64]:{port}")
            .parse()
            .expect("valid address"),
    }
}

/// An `RtspClient` forced to UDP (`RtspTransport::Udp`), driven to Playing by a scripted camera
/// with two tracks (H.264 and PCMA); the header byte chooses whether the camera announces its
/// `server_port`s (bit 0) and a `source=` (bit 1). Then `(flags, len, datagram)` records go to
/// `handle_udp_input`: flags bit 0 = RTCP socket, bits 1-2 = track (2 and 3 do not exist), bits
/// 3-4 = source (camera RTP port, the port after it, another host, IPv4-mapped IPv6), bits 5-7
/// = clock step (7: up to the next deadline). Checks: no panic; media only for existing tracks
/// and only datagrams that were sent, RTP strictly in order per track between restarts; the
/// client's own datagrams are RTP/RTCP version 2 for existing tracks; `poll_timeout` after now.
pub fn camera_udp(data: &[u8]) {
    let Some((&h, mut rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let config = RtspConfig {
        transport: RtspTransport::Udp,
        ..RtspConfig::default()
    };
    let mut c = RtspClient::new("rtsp://192.168.1.64:554/ch1", config, now).expect("valid URL");
    c.handle_connected(now);
    let mut playing = false;
    let mut terminal = 0;
    let drain = |c: &mut RtspClient, playing: &mut bool, terminal: &mut usize, now: Instant| {
        for _ in 0..16 {
            let mut any = false;
            while let Some(output) = c.poll_output() {
                match output {
                    RtspOutput::OpenUdp(r) => {
                        any = true;
                        c.handle_udp_ports(now, r.track, 50000 + 2 * r.track as u16);
                    }
                    RtspOutput::Transmit(tx) => {
                        any = true;
                        if let Some(a) = udp_camera_answer(&tx, h & 1 == 0, h & 2 != 0) {
                            let media = c.handle_input(now, &a);
                            assert_eq!(media.count(), 0, "interleaved media over UDP");
                        }
                    }
                    RtspOutput::UdpTransmit(tx) => {
                        assert!(tx.track < 2, "datagram for track {}", tx.track);
                        assert!(
                            tx.data.len() >= 8 && tx.data[0] >> 6 == 2,
                            "bad datagram {:02x?}",
                            tx.data
                        );
                    }
                    RtspOutput::Redirect(_) => {}
                    RtspOutput::Event(e) => {
                        assert_eq!(*terminal, 0, "event {e:?} after a terminal event");
                        match e {
                            RtspEvent::Playing { tracks } => {
                                assert!(!*playing, "Playing twice");
                                assert_eq!(tracks.len(), 2);
                                *playing = true;
                            }
                            RtspEvent::Failed(_) | RtspEvent::Closed => *terminal += 1,
                        }
                    }
                }
            }
            if !any {
                break;
            }
        }
    };
    drain(&mut c, &mut playing, &mut terminal, now);
    assert!(playing, "the scripted camera did not get to Playing");
    assert_eq!(c.transport_in_use(), Some(RtspTransport::Udp));
    let ports: Vec<u16> = (0..2)
        .map(|t| c.udp_destination(t).map_or(9000, |d| d.rtp_port))
        .collect();
    let mut sent: Vec<&[u8]> = Vec::new();
    let mut last_seq: [Option<u16>; 2] = [None, None];
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (dgram, tail) = tail.split_at(n);
        rest = tail;
        match flags >> 5 {
            7 => {
                if let Some(t) = c.poll_timeout() {
                    now = now.max(t);
                }
            }
            s => now += Duration::from_millis(u64::from(s) * 20),
        }
        let track = usize::from(flags >> 1 & 3);
        let rtcp = flags & 1 != 0;
        let src = udp_source(flags >> 3, ports.get(track).copied().unwrap_or(9000));
        sent.push(dgram);
        let media: Vec<(usize, bool, Vec<u8>)> = c
            .handle_udp_input(now, track, rtcp, src, dgram)
            .map(|m| (m.track, m.rtcp, m.data.to_vec()))
            .collect();
        for (t, is_rtcp, d) in media {
            assert!(t < 2, "media for track {t}");
            assert!(sent.contains(&&d[..]), "media that was never received");
            if !is_rtcp {
                assert!(d.len() >= 12);
                let s = u16::from_be_bytes([d[2], d[3]]);
                if let Some(l) = last_seq[t] {
                    let step = s.wrapping_sub(l);
                    // Forward, or a restart; never a duplicate or a packet < 100 behind (late).
                    assert!(
                        step != 0 && step <= u16::MAX - 99,
                        "track {t}: RTP {l} then {s}"
                    );
                }
                last_seq[t] = Some(s);
            }
        }
        c.handle_timeout(now);
        drain(&mut c, &mut playing, &mut terminal, now);
        if let Some(t) = c.poll_timeout() {
            assert!(t > now, "poll_timeout {:?} not after now", t - t0);
        }
    }
    c.teardown(now);
    drain(&mut c, &mut playing, &mut terminal, now);
    assert!(c.is_closed());
    assert_eq!(terminal, 1, "exactly one Failed/Closed event");
}

/// `stun::local_ufrag`: which viewer a datagram from a new address asks for.
pub fn stun_username(data: &[u8]) {
    let Some(ufrag) = camgate_core::stun::local_ufrag(data) else {
        return;
    };
    // Only a Binding request with the magic cookie names a ufrag, and the name is the part
    // of a USERNAME attribute's value before its first colon.
    assert!(data.len() >= 20 && data[..2] == [0, 1] && data[4..8] == [0x21, 0x12, 0xA4, 0x42]);
    assert!(!ufrag.contains(':'));
    let needle = format!("{ufrag}:");
    assert!(
        data[20..]
            .windows(needle.len())
            .any(|w| w == needle.as_bytes()),
        "the ufrag is not in the message"
    );
}

// ---------------------------------------------------------------------------------------------
// rtsp_server

/// An `rtsp::server::ServerSession` fed a client's bytes. The first byte seeds chunk sizes and
/// clock steps (bit 0: chunks up to 2 KiB instead of 64 bytes; bit 1: clock jumps up to 2 min
/// instead of < 50 ms) and how look-ups are answered (bits 2-3: found, not found, unavailable,
/// or left pending; bit 4: UDP on; bit 5: found streams have a user, `admin`/`secretpw`). Checks: every `Send` frames as RTSP responses only; a
/// response's `Content-Base` holds no userinfo; nothing after `Close`; at most one look-up
/// pending; `Play` only once per set-up and routes only between `Play` and `Stop`;
/// `poll_timeout` after `now`.
pub fn rtsp_server(data: &[u8]) {
    use camgate_core::rtsp::server::{
        LookupError, ServerConfig, ServerOutput, ServerSession, TrackTransport,
    };
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let mut rng = seeded_rng(seed);
    let t0 = Instant::now();
    let mut now = t0;
    let config = ServerConfig {
        udp_server_ports: (seed & 16 != 0).then_some((8000, 8001)),
        ..ServerConfig::default()
    };
    let mut s = ServerSession::new(config, "0123abcd".into(), 7, now);
    let tracks = vec![
        TrackInfo {
            kind: MediaKind::Video,
            encoding: "H264".into(),
            payload_type: 96,
            clock_rate: 90000,
            channels: None,
            fmtp: Some(
                "packetization-mode=1;sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==".into(),
            ),
            control: "rtsp://10.0.0.5/x/trackID=1".into(),
        },
        TrackInfo {
            kind: MediaKind::Audio,
            encoding: "PCMA".into(),
            payload_type: 8,
            clock_rate: 8000,
            channels: Some(1),
            fmtp: None,
            control: "rtsp://10.0.0.5/x/trackID=2".into(),
        },
    ];
    let mut closed = false;
    let mut playing = false;
    let mut pending: Option<String> = None;
    let mut framer = Framer::new();
    let mut drain = |s: &mut ServerSession,
                     closed: &mut bool,
                     playing: &mut bool,
                     pending: &mut Option<String>| {
        while let Some(o) = s.poll_output() {
            assert!(!*closed, "output after Close: {o:?}");
            match o {
                ServerOutput::Send(b) => {
                    framer
                        .push(&b, &mut |f| {
                            match f {
                                Frame::Message(m) => {
                                    assert!(
                                        matches!(
                                            m.start,
                                            camgate_core::rtsp::framing::StartLine::Response { .. }
                                        ),
                                        "not a response: {m:?}"
                                    );
                                    if let Some(b) = m.header("Content-Base") {
                                        assert!(!b.contains('@'), "userinfo echoed: {b}");
                                    }
                                    // A challenge echoes nothing of the request but its CSeq.
                                    if let camgate_core::rtsp::framing::StartLine::Response {
                                        status: 401,
                                        ..
                                    } = m.start
                                    {
                                        let text = format!("{m:?}");
                                        assert!(!text.contains("secretpw"), "password in a 401");
                                    }
                                }
                                Frame::Interleaved { .. } => panic!("interleaved in an answer"),
                            }
                            true
                        })
                        .expect("answers frame");
                    assert_eq!(framer.buffered(), 0, "an answer split across Sends");
                }
                ServerOutput::Lookup { path } => {
                    assert!(pending.is_none(), "second look-up while one is pending");
                    assert!(!path.is_empty() && !path.starts_with('/') && !path.ends_with('/'));
                    *pending = Some(path);
                }
                ServerOutput::Play { tracks, .. } => {
                    assert!(!*playing, "Play twice");
                    assert!(!tracks.is_empty());
                    *playing = true;
                }
                ServerOutput::Stop => {
                    assert!(*playing, "Stop without Play");
                    *playing = false;
                }
                ServerOutput::Close(_) => *closed = true,
                // Another session's request: never this one's, and refused as the gateway
                // refuses one it does not know; handing it back must not loop.
                ServerOutput::Foreign { session, request } => {
                    assert_ne!(session, "0123abcd");
                    let refusal = s.refusal(&request);
                    assert!(refusal.starts_with(b"RTSP/1.0 454 "));
                    s.handle_foreign(t0, request); // names another session: ignored
                }
            }
        }
        for t in 0..3 {
            let r = s.route(t);
            assert!(r.is_none() || *playing, "route {t} while not playing");
            if let Some(TrackTransport::Udp { rtp_port, .. }) = r {
                assert!(rtp_port > 0);
            }
        }
    };
    while !rest.is_empty() {
        let max = if seed & 1 != 0 { 2048 } else { 64 };
        let n = (1 + rng.pick(max)).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        s.handle_input(now, chunk);
        drain(&mut s, &mut closed, &mut playing, &mut pending);
        if let Some(path) = pending.take() {
            match (seed >> 2) & 3 {
                0 if seed & 32 != 0 => {
                    let users = vec![camgate_core::rtsp::auth::Credentials::new(
                        "admin".into(),
                        "secretpw".into(),
                    )];
                    s.handle_stream_with_users(&path, Ok(tracks.clone()), users)
                }
                0 => s.handle_stream(&path, Ok(tracks.clone())),
                1 => s.handle_stream(&path, Err(LookupError::NotFound)),
                2 => s.handle_stream(&path, Err(LookupError::Unavailable)),
                _ => pending = Some(path),
            }
            drain(&mut s, &mut closed, &mut playing, &mut pending);
        }
        let step = if seed & 2 != 0 {
            Duration::from_millis(rng.below(120_000))
        } else {
            Duration::from_millis(rng.below(50))
        };
        now += step;
        if let Some(t) = s.poll_timeout() {
            assert!(t > t0, "timeout at the start");
            if t <= now {
                s.handle_timeout(now);
                drain(&mut s, &mut closed, &mut playing, &mut pending);
            }
            if let Some(t) = s.poll_timeout() {
                assert!(t > now, "asks to be woken in the past");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// viewer_token

/// The secret of the `viewer_token` target (seeds are minted with it).
pub const VIEWER_TOKEN_SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0123";
/// The clock of the `viewer_token` target: seeds expire after it.
pub const VIEWER_TOKEN_NOW: u64 = 1_800_000_000;

/// `viewer_token::ViewerTokenKey::verify`/`check` on a token a viewer sends. First byte: bit 0
/// set: the rest is a *payload* that the harness signs with the secret (so the fuzzer reaches the
/// parsing behind the MAC, which it cannot forge); clear: the rest is the token text as sent.
/// Checks: no panic; a signed payload is never `BadSignature`; a grant is current, re-mints to a
/// token that verifies to the same grant, and covers what `check` says it covers; changing any
/// one character of an accepted token refuses it.
pub fn viewer_token(data: &[u8]) {
    use camgate_core::viewer_token::{TokenError, ViewerTokenKey};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = ViewerTokenKey::new(VIEWER_TOKEN_SECRET);
    let now = VIEWER_TOKEN_NOW;
    let signed = mode & 1 == 1;
    let token = if signed {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = format!("v1.{}", b64.encode(rest));
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, VIEWER_TOKEN_SECRET),
            body.as_bytes(),
        );
        format!("{body}.{}", b64.encode(tag.as_ref()))
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let verdict = key.verify(&token, now);
    if signed && token.len() <= camgate_core::viewer_token::MAX_TOKEN_LEN {
        assert_ne!(
            verdict,
            Err(TokenError::BadSignature),
            "our own MAC refused"
        );
    }
    let Ok(grant) = verdict else {
        return;
    };
    assert!(grant.expires > now, "an expired grant");
    assert!(!grant.stream.is_empty());
    let again = key.mint(&grant.stream, grant.expires);
    assert_eq!(key.verify(&again, now).as_ref(), Ok(&grant), "re-minted");
    assert_eq!(key.verify(&token, grant.expires), Err(TokenError::Expired));
    // `check` agrees with `covers`, for the grant's own stream and a fuzzer-chosen one.
    let probe = grant.stream.trim_end_matches('*').to_owned() + "x";
    for stream in [grant.stream.as_str(), probe.as_str(), "other"] {
        let checked = key.check(Some(&token), stream, now);
        assert_eq!(checked.is_ok(), grant.covers(stream), "{stream:?}");
    }
    // Any one changed character refuses the token (bounded: long tokens get a sample).
    let bytes = token.as_bytes();
    let step = (bytes.len() / 64).max(1);
    for i in (0..bytes.len()).step_by(step) {
        let mut changed = bytes.to_vec();
        changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8_lossy(&changed).into_owned();
        assert!(
            key.verify(&changed, now).is_err(),
            "changed at {i} still accepted"
        );
    }
}
