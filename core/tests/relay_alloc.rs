//! Proves the relay's allocation budget: one `Arc<[u8]>` per in-MTU source packet, nothing else,
//! once the caller's output vector has capacity. Lives in its own test binary because it needs a
//! counting global allocator.

use camgate_core::h264::H264Relay;
use camgate_core::media::VideoPacket;
use camgate_core::rtp::RtpPacket;

mod counting_alloc;
use counting_alloc::allocs;

const FMTP: &str =
    "packetization-mode=1;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAA8jxgyS,aM4yyA==";
const SPS: [u8; 21] = [
    0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x03, 0xC5, 0x68, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00,
    0x0F, 0x23, 0xC6, 0x0C, 0x92,
];
const PPS: [u8; 4] = [0x68, 0xCE, 0x32, 0xC8];

/// One camera access unit: (payload, marker).
fn access_units(frame: u32) -> Vec<(Vec<u8>, bool)> {
    let fu = |s: bool, e: bool, t: u8| {
        let mut p = vec![0x7C, (u8::from(s) << 7) | (u8::from(e) << 6) | t];
        p.resize(1000, 0xAB);
        (p, e)
    };
    match frame % 4 {
        // Keyframe with in-band SPS/PPS (held back, then forwarded with the first one marked).
        0 => vec![
            (SPS.to_vec(), false),
            (PPS.to_vec(), false),
            fu(true, false, 5),
            fu(false, true, 5),
        ],
        // Keyframe without SPS/PPS: the cached STAP-A is injected (shared, no allocation).
        1 => vec![fu(true, false, 5), fu(false, false, 5), fu(false, true, 5)],
        _ => vec![fu(true, false, 1), fu(false, true, 1)],
    }
}

#[test]
fn push_allocates_only_the_shared_arc() {
    let mut relay = H264Relay::new(Some(FMTP), 1200);
    let mut out: Vec<VideoPacket> = Vec::with_capacity(16);
    let mut seq = 0u16;
    // Build all inputs up front so the measured loop does nothing but relay.
    let frames: Vec<Vec<(Vec<u8>, bool)>> = (0..40).map(access_units).collect();

    for (f, au) in frames.iter().enumerate() {
        for (payload, marker) in au {
            let pkt = RtpPacket {
                payload_type: 96,
                marker: *marker,
                sequence: seq,
                timestamp: f as u32 * 3000,
                ssrc: 1,
                payload,
            };
            seq = seq.wrapping_add(1);
            out.clear();
            let before = allocs();
            relay.push(&pkt, &mut out);
            let n = allocs() - before;
            assert_eq!(
                n, 1,
                "frame {f}: one Arc per in-MTU packet, got {n} allocations"
            );
        }
    }

    // And a plain single-NAL P slice, the most common packet of all.
    let p = [0x41u8, 1, 2, 3, 4];
    let pkt = RtpPacket {
        payload_type: 96,
        marker: true,
        sequence: seq,
        timestamp: 999_000,
        ssrc: 1,
        payload: &p,
    };
    out.clear();
    let before = allocs();
    relay.push(&pkt, &mut out);
    assert_eq!(allocs() - before, 1);
    assert_eq!(&*out[0].payload, &p);
}

#[test]
fn refragmenting_allocates_one_arc_per_output_packet() {
    let mut relay = H264Relay::new(None, 500);
    let mut out: Vec<VideoPacket> = Vec::with_capacity(16);
    let mut nal = vec![0x41u8];
    nal.resize(2000, 0x11);
    let pkt = RtpPacket {
        payload_type: 96,
        marker: true,
        sequence: 1,
        timestamp: 0,
        ssrc: 1,
        payload: &nal,
    };
    let before = allocs();
    relay.push(&pkt, &mut out);
    let n = allocs() - before;
    assert_eq!(out.len(), 5);
    assert_eq!(n, out.len(), "each fragment is built straight into its Arc");
}

#[test]
fn recutting_camera_fragments_allocates_one_arc_per_output_packet() {
    // FU-A fragments of 1,400 bytes relayed at 1,200: the carried tail lives in a buffer made
    // with the relay; pushing allocates exactly the packets written (none when all is carried).
    let mut relay = H264Relay::new(None, 1200);
    let mut out: Vec<VideoPacket> = Vec::with_capacity(16);
    let fu = |s: bool, e: bool| {
        let mut p = vec![0x7C, (u8::from(s) << 7) | (u8::from(e) << 6) | 1];
        p.resize(1400, 0xAB);
        p
    };
    let mut seq = 0u16;
    let mut written = 0;
    for frame in 0..10u32 {
        for i in 0..8 {
            let payload = fu(i == 0, i == 7);
            let pkt = RtpPacket {
                payload_type: 96,
                marker: i == 7,
                sequence: seq,
                timestamp: frame * 3000,
                ssrc: 1,
                payload: &payload,
            };
            seq = seq.wrapping_add(1);
            out.clear();
            let before = allocs();
            relay.push(&pkt, &mut out);
            assert_eq!(allocs() - before, out.len(), "frame {frame} fragment {i}");
            written += out.len();
        }
    }
    // 8 × 1,398 bytes a frame at 1,198 a packet: 10 packets, not 16.
    assert_eq!(written, 100);
}

#[test]
fn h265_push_allocates_only_the_shared_arc() {
    // The test camera's real stream (x265 + rtph265pay, MTU 1400): parameter set APs, SEI, IDR,
    // CRA and P-frame FUs. All fit a 1400-byte payload, and the AP injected before each keyframe
    // is the cached one.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/h265/");
    let meta = std::fs::read_to_string(format!("{dir}x265_zerolatency.meta")).unwrap();
    let fmtp = meta.lines().find_map(|l| l.strip_prefix("fmtp=")).unwrap();
    let data = std::fs::read(format!("{dir}x265_zerolatency.rtp")).unwrap();
    let packets = camgate_testkit::capture::rfc4571_packets(&data);
    let mut relay = camgate_core::h265::H265Relay::new(Some(fmtp), 1400);
    let mut out: Vec<VideoPacket> = Vec::with_capacity(16);
    let mut keyframes = 0;
    for (i, raw) in packets.iter().enumerate() {
        let pkt = RtpPacket::parse(raw).unwrap();
        out.clear();
        let before = allocs();
        relay.push(&pkt, &mut out);
        let n = allocs() - before;
        assert_eq!(n, 1, "packet {i}: one Arc per in-MTU packet, got {n}");
        keyframes += out.iter().filter(|p| p.keyframe_start).count();
    }
    assert_eq!(keyframes, 2);
}
