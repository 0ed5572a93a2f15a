//! B-slice detection by the relay: hand-built packets of every shape, and real x264 captures
//! (core/tests/data/h264, see its README).

use super::slice::{slice_type, SliceType};
use super::H264Relay;
use crate::media::VideoPacket;
use crate::rtp::RtpPacket;

/// Feeds single-packet access units, continuing the relay's sequence and timestamps.
fn push_all(relay: &mut Fed, payloads: &[&[u8]]) {
    let mut out: Vec<VideoPacket> = Vec::new();
    for p in payloads {
        let n = relay.packets_fed;
        relay.packets_fed += 1;
        let pkt = RtpPacket {
            payload_type: 96,
            marker: true,
            sequence: n as u16,
            timestamp: n as u32 * 3000,
            ssrc: 7,
            payload: p,
        };
        relay.relay.push(&pkt, &mut out);
    }
}

/// A relay and how many packets it has been fed.
struct Fed {
    relay: H264Relay,
    packets_fed: usize,
}

impl Fed {
    fn new() -> Fed {
        Fed {
            relay: H264Relay::new(None, 1200),
            packets_fed: 0,
        }
    }
    fn has_b_frames(&self) -> bool {
        self.relay.has_b_frames()
    }
}

// Slice headers after the NAL header byte: first_mb_in_slice = 0 then slice_type
// (7 = I, 5 = P, 6 = B, 1 = B), then pic_parameter_set_id and more data.
const I_SLICE: [u8; 4] = [0x88, 0x84, 0x00, 0x33];
const P_SLICE: [u8; 4] = [0x9A, 0x24, 0x6C, 0x42];
const B_SLICE: [u8; 4] = [0x9E, 0x42, 0x79, 0x11];
/// slice_type 1 (B, not "all slices"): ue '010', first_mb 0 → bits 1 010 1... = 0xA8.
const B1_SLICE: [u8; 3] = [0xA8, 0x20, 0x11];

fn nal(header: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![header];
    v.extend_from_slice(body);
    v
}

#[test]
fn i_and_p_slices_are_not_b() {
    let mut relay = Fed::new();
    let idr = nal(0x65, &I_SLICE);
    let p = nal(0x41, &P_SLICE);
    push_all(&mut relay, &[&idr, &p, &p]);
    assert!(!relay.has_b_frames());
}

#[test]
fn b_slice_in_a_single_nal_packet() {
    for body in [&B_SLICE[..], &B1_SLICE[..]] {
        let mut relay = Fed::new();
        let p = nal(0x41, &P_SLICE);
        push_all(&mut relay, &[&p]);
        assert!(!relay.has_b_frames());
        let b = nal(0x01, body);
        push_all(&mut relay, &[&p, &b]);
        assert!(relay.has_b_frames(), "{body:02x?}");
        // Sticky.
        push_all(&mut relay, &[&p, &p]);
        assert!(relay.has_b_frames());
    }
}

#[test]
fn b_slice_in_a_fu_a_start_fragment_only() {
    let mut relay = Fed::new();
    // A continuation fragment whose bytes look like a B header is not a slice start.
    let mut middle = vec![0x7C, 0x01];
    middle.extend_from_slice(&B_SLICE);
    push_all(&mut relay, &[&middle]);
    assert!(!relay.has_b_frames(), "only start fragments are parsed");
    let mut start = vec![0x7C, 0x81];
    start.extend_from_slice(&B_SLICE);
    push_all(&mut relay, &[&start]);
    assert!(relay.has_b_frames());
}

#[test]
fn b_slice_inside_a_stap_a() {
    let mut relay = Fed::new();
    let p = nal(0x41, &P_SLICE);
    let b = nal(0x01, &B_SLICE);
    let mut stap = vec![0x18];
    for n in [&p, &b] {
        stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
        stap.extend_from_slice(n);
    }
    push_all(&mut relay, &[&stap[..stap.len() - (b.len() + 2)]]);
    assert!(!relay.has_b_frames());
    push_all(&mut relay, &[&stap]);
    assert!(relay.has_b_frames());
}

#[test]
fn emulation_prevention_in_a_slice_header() {
    // first_mb_in_slice = 0x7FFF_FFFF (31 leading zero bits: 00 00 00 01 … in the RBSP, sent
    // as 00 00 03 00 01 …), then slice_type 1.
    let mut relay = Fed::new();
    let mut rbsp_bits: Vec<bool> = Vec::new();
    let put_ue = |v: u64, bits: &mut Vec<bool>| {
        let x = v + 1;
        let n = 64 - x.leading_zeros();
        bits.extend(std::iter::repeat_n(false, n as usize - 1));
        bits.extend((0..n).rev().map(|i| x >> i & 1 != 0));
    };
    put_ue(0x7FFF_FFFF, &mut rbsp_bits);
    put_ue(1, &mut rbsp_bits);
    rbsp_bits.push(true);
    let rbsp: Vec<u8> = rbsp_bits
        .chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &x)| b | u8::from(x) << (7 - i))
        })
        .collect();
    assert_eq!(&rbsp[..4], &[0, 0, 0, 1]);
    let mut body = vec![0, 0, 3];
    body.extend_from_slice(&rbsp[2..]);
    let b = nal(0x01, &body);
    push_all(&mut relay, &[&b]);
    assert!(relay.has_b_frames());
}

/// The RTP packets of an RFC 4571-framed capture, and its fmtp.
fn load(name: &str) -> (Vec<Vec<u8>>, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/h264/");
    let data = std::fs::read(format!("{dir}{name}.rtp")).unwrap();
    let meta = std::fs::read_to_string(format!("{dir}{name}.meta")).unwrap();
    let fmtp = meta
        .lines()
        .find_map(|l| l.strip_prefix("fmtp="))
        .unwrap()
        .to_string();
    let packets = camgate_testkit::capture::rfc4571_packets(&data);
    (packets, fmtp)
}

fn relay_capture(name: &str) -> H264Relay {
    let (packets, fmtp) = load(name);
    let mut relay = H264Relay::new(Some(&fmtp), 1200);
    let mut out = Vec::new();
    let mut keyframes = 0;
    for p in &packets {
        let pkt = RtpPacket::parse(p).unwrap();
        out.clear();
        relay.push(&pkt, &mut out);
        keyframes += out.iter().filter(|p| p.keyframe_start).count();
    }
    assert!(keyframes >= 2, "{name}: {keyframes} keyframes");
    relay
}

/// Slice starts of a capture by type (P, B, I), read straight from the packets (no relay).
fn slice_counts(name: &str) -> [usize; 3] {
    let mut counts = [0; 3];
    for p in load(name).0 {
        let payload = RtpPacket::parse(&p).unwrap().payload;
        let body = match (payload[0] & 0x1F, payload.get(1)) {
            (1 | 5, _) => &payload[1..],
            (28, Some(&fu)) if fu & 0x80 != 0 && matches!(fu & 0x1F, 1 | 5) => &payload[2..],
            _ => continue,
        };
        match slice_type(body) {
            Some(SliceType::P) => counts[0] += 1,
            Some(SliceType::B) => counts[1] += 1,
            Some(SliceType::I) => counts[2] += 1,
            t => panic!("{name}: unexpected slice type {t:?}"),
        }
    }
    counts
}

#[test]
fn x264_with_b_frames_is_detected() {
    let [p, b, i] = slice_counts("x264_bframes2");
    assert!(p > 0 && b > 0 && i >= 2, "P {p} B {b} I {i}");
    assert!(relay_capture("x264_bframes2").has_b_frames());
}

#[test]
fn x264_without_b_frames_is_not() {
    let [p, b, i] = slice_counts("x264_bframes0");
    assert!(p > 0 && b == 0 && i >= 2, "P {p} B {b} I {i}");
    assert!(!relay_capture("x264_bframes0").has_b_frames());
}
