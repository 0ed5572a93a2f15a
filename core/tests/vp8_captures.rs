//! The VP8 relay on real RTP from GStreamer's vp8enc + rtpvp8pay (core/tests/data/vp8, see its
//! README): keyframes are found exactly where the encoder put them, with the right size, and every
//! payload is forwarded unchanged.

use std::collections::BTreeMap;

use camgate_core::rtp::RtpPacket;
use camgate_core::vp8::{PictureId, Vp8Descriptor, Vp8Relay};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vp8/");

/// RFC 4571 framing: 2-byte big-endian length, then one RTP packet.
fn packets(name: &str) -> Vec<Vec<u8>> {
    let data = std::fs::read(format!("{DIR}{name}.rtp")).unwrap();
    camgate_testkit::capture::rfc4571_packets(&data)
}

/// RTP timestamp → keyframe?, for every encoded frame.
fn frames(name: &str) -> BTreeMap<u32, bool> {
    std::fs::read_to_string(format!("{DIR}{name}.frames"))
        .unwrap()
        .lines()
        .map(|l| {
            let (ts, key) = l.split_once(' ').unwrap();
            (ts.parse().unwrap(), key == "1")
        })
        .collect()
}

fn check(name: &str, size: (u16, u16), long_picture_id: bool) {
    let packets = packets(name);
    let frames = frames(name);
    let mut relay = Vp8Relay::new(1200);
    let mut out = Vec::new();
    let mut started = BTreeMap::new();
    let mut multi_packet_frames = 0;
    let mut last_ts = None;
    for (i, raw) in packets.iter().enumerate() {
        let pkt = RtpPacket::parse(raw).unwrap();
        let d = Vp8Descriptor::parse(pkt.payload).unwrap();
        assert_eq!(
            matches!(d.picture_id, Some(PictureId::Long(_))),
            long_picture_id
        );
        if last_ts == Some(pkt.timestamp) && !d.start {
            multi_packet_frames += 1;
        }
        last_ts = Some(pkt.timestamp);
        out.clear();
        relay.push(&pkt, &mut out);
        assert_eq!(out.len(), 1, "{name}: packet {i} forwarded");
        let o = &out[0];
        assert_eq!(&*o.payload, pkt.payload, "unchanged");
        assert_eq!(
            (o.marker, o.rtp_time, o.seq),
            (pkt.marker, pkt.timestamp, pkt.sequence)
        );
        if o.keyframe_start {
            assert!(
                started.insert(o.rtp_time, i).is_none(),
                "{name}: one start per keyframe"
            );
        }
    }
    let expected: Vec<u32> = frames.iter().filter(|f| *f.1).map(|f| *f.0).collect();
    let found: Vec<u32> = started.keys().copied().collect();
    assert!(expected.len() >= 2, "{name}: {expected:?}");
    assert_eq!(found, expected, "{name}: keyframes where vp8enc put them");
    for (ts, &i) in &started {
        // The start is the frame's first packet.
        let first = packets
            .iter()
            .position(|p| RtpPacket::parse(p).unwrap().timestamp == *ts)
            .unwrap();
        assert_eq!(first, i, "{name}: keyframe at {ts}");
    }
    assert!(
        multi_packet_frames > 0,
        "{name}: frames over several packets"
    );
    assert_eq!(relay.keyframes() as usize, expected.len());
    assert_eq!(relay.last_keyframe_size(), Some(size));
    assert_eq!(relay.oversized(), 0);
    assert_eq!(relay.malformed(), 0);
}

#[test]
fn vp8_320x240_15_bit_picture_id() {
    check("vp8_320x240", (320, 240), true);
}

#[test]
fn vp8_176x144_7_bit_picture_id() {
    check("vp8_176x144_pid7", (176, 144), false);
}

#[test]
fn vp8_a_lost_packet_is_a_gap_and_the_next_keyframe_still_starts() {
    let packets = packets("vp8_320x240");
    let mut relay = Vp8Relay::new(1200);
    let mut out = Vec::new();
    for (i, raw) in packets.iter().enumerate() {
        if i == 5 || i == 6 {
            continue;
        }
        relay.push(&RtpPacket::parse(raw).unwrap(), &mut out);
    }
    assert_eq!(out.len(), packets.len() - 2);
    assert_eq!(out[5].seq, out[4].seq.wrapping_add(3));
    assert_eq!(out.iter().filter(|o| o.keyframe_start).count(), 2);
}
