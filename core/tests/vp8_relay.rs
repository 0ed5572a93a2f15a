//! VP8 relay (RFC 7741) on hand-built packets: payload descriptor parsing, keyframe starts,
//! keyframe size, sequence numbering, shared payloads and garbage.

use std::sync::Arc;

use camgate_core::media::VideoPacket;
use camgate_core::rtp::RtpPacket;
use camgate_core::vp8::{keyframe_size, PictureId, Vp8Descriptor, Vp8Relay};
use camgate_testkit::Rng;

/// Builds a payload descriptor.
#[derive(Default, Clone, Copy)]
struct Desc {
    non_reference: bool,
    start: bool,
    partition: u8,
    picture_id: Option<PictureId>,
    tl0: Option<u8>,
    tid: Option<(u8, bool)>,
    key_idx: Option<u8>,
}

impl Desc {
    fn bytes(&self) -> Vec<u8> {
        let ext = self.picture_id.is_some()
            || self.tl0.is_some()
            || self.tid.is_some()
            || self.key_idx.is_some();
        let mut v = vec![
            u8::from(ext) << 7
                | u8::from(self.non_reference) << 5
                | u8::from(self.start) << 4
                | self.partition,
        ];
        if ext {
            v.push(
                u8::from(self.picture_id.is_some()) << 7
                    | u8::from(self.tl0.is_some()) << 6
                    | u8::from(self.tid.is_some()) << 5
                    | u8::from(self.key_idx.is_some()) << 4,
            );
            match self.picture_id {
                Some(PictureId::Short(p)) => v.push(p & 0x7F),
                Some(PictureId::Long(p)) => v.extend_from_slice(&(p | 0x8000).to_be_bytes()),
                None => {}
            }
            v.extend(self.tl0);
            if self.tid.is_some() || self.key_idx.is_some() {
                let (tid, y) = self.tid.unwrap_or((0, false));
                v.push(tid << 6 | u8::from(y) << 5 | self.key_idx.unwrap_or(0));
            }
        }
        v
    }
}

/// Start of a keyframe's VP8 data: frame tag (P bit clear, show_frame), start code, size, then
/// some compressed bytes.
fn keyframe_data(width: u16, height: u16) -> Vec<u8> {
    let mut v = vec![0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A];
    v.extend_from_slice(&width.to_le_bytes());
    v.extend_from_slice(&height.to_le_bytes());
    v.extend_from_slice(&[0x00, 0x47, 0x08, 0x85, 0x85, 0x88]);
    v
}

/// Start of an interframe's VP8 data (P bit set).
fn interframe_data() -> Vec<u8> {
    vec![
        0x31, 0x05, 0x00, 0x9D, 0x01, 0x2A, 0x11, 0x22, 0x33, 0x44, 0x55,
    ]
}

/// Continuation bytes of a frame (no frame header).
fn middle_data() -> Vec<u8> {
    vec![
        0x9D, 0x01, 0x2A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
}

fn payload(d: Desc, data: &[u8]) -> Vec<u8> {
    let mut v = d.bytes();
    v.extend_from_slice(data);
    v
}

fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket<'_> {
    RtpPacket {
        payload_type: 96,
        marker,
        sequence: seq,
        timestamp: ts,
        ssrc: 0xCAFE,
        payload,
    }
}

fn push(relay: &mut Vp8Relay, pkt: &RtpPacket<'_>) -> Vec<VideoPacket> {
    let mut out = Vec::new();
    relay.push(pkt, &mut out);
    out
}

/// Descriptor variants: none, each extension alone, all together, 7- and 15-bit PictureIDs.
fn variants(start: bool, partition: u8) -> Vec<Desc> {
    let base = Desc {
        start,
        partition,
        ..Desc::default()
    };
    vec![
        base,
        Desc {
            picture_id: Some(PictureId::Short(0x55)),
            ..base
        },
        Desc {
            picture_id: Some(PictureId::Long(0x7FFF)),
            ..base
        },
        Desc {
            picture_id: Some(PictureId::Long(0x0123)),
            tl0: Some(200),
            ..base
        },
        Desc {
            tid: Some((2, true)),
            ..base
        },
        Desc {
            key_idx: Some(31),
            ..base
        },
        Desc {
            non_reference: true,
            picture_id: Some(PictureId::Short(0)),
            tl0: Some(0),
            tid: Some((3, false)),
            key_idx: Some(5),
            ..base
        },
    ]
}

#[test]
fn vp8_descriptor_fields_round_trip() {
    for d in variants(true, 0).into_iter().chain(variants(false, 7)) {
        let bytes = d.bytes();
        let p = payload(d, &[0xAA]);
        let parsed = Vp8Descriptor::parse(&p).expect("valid descriptor");
        assert_eq!(parsed.len, bytes.len());
        assert_eq!(parsed.start, d.start);
        assert_eq!(parsed.partition, d.partition);
        assert_eq!(parsed.non_reference, d.non_reference);
        assert_eq!(parsed.picture_id, d.picture_id);
        assert_eq!(parsed.tl0_pic_idx, d.tl0);
        assert_eq!(parsed.tid, d.tid);
        assert_eq!(parsed.key_idx, d.key_idx);
        assert_eq!(parsed.starts_frame(), d.start && d.partition == 0);
        // Every truncation, down to the bare descriptor without VP8 data, is rejected.
        for cut in 0..p.len() {
            assert_eq!(
                Vp8Descriptor::parse(&p[..cut]),
                None,
                "{p:02x?} cut at {cut}"
            );
        }
    }
    // Real descriptors from GStreamer's rtpvp8pay: 15-bit PictureID 0x4dd8 with S set, and a
    // 7-bit one.
    let d = Vp8Descriptor::parse(&[0x90, 0x80, 0xCD, 0xD8, 0x30]).unwrap();
    assert_eq!((d.start, d.partition, d.len), (true, 0, 4));
    assert_eq!(d.picture_id, Some(PictureId::Long(0x4DD8)));
    let d = Vp8Descriptor::parse(&[0x80, 0x80, 0x12, 0x30]).unwrap();
    assert_eq!(
        (d.start, d.len, d.picture_id),
        (false, 3, Some(PictureId::Short(0x12)))
    );
    // Reserved bits are ignored.
    let d = Vp8Descriptor::parse(&[0xD8 | 0x40, 0x0F, 0x30]).unwrap();
    assert_eq!((d.start, d.len, d.picture_id), (true, 2, None));
}

#[test]
fn vp8_keyframe_starts_with_and_without_extensions() {
    for d in variants(true, 0) {
        let mut relay = Vp8Relay::new(1200);
        let key = payload(d, &keyframe_data(640, 480));
        let mid = payload(Desc { start: false, ..d }, &middle_data());
        let inter = payload(d, &interframe_data());
        let out = push(&mut relay, &rtp(10, 0, false, &key));
        assert!(out[0].keyframe_start, "{:02x?}", d.bytes());
        assert!(!push(&mut relay, &rtp(11, 0, true, &mid))[0].keyframe_start);
        assert!(!push(&mut relay, &rtp(12, 3000, true, &inter))[0].keyframe_start);
        assert_eq!(relay.keyframes(), 1);
        assert_eq!(relay.last_keyframe_size(), Some((640, 480)));
    }
}

#[test]
fn vp8_only_the_first_packet_of_partition_0_can_start() {
    let key = keyframe_data(320, 240);
    for d in variants(true, 1).into_iter().chain(variants(false, 0)) {
        let mut relay = Vp8Relay::new(1200);
        // Keyframe-looking bytes in a later partition or a continuation are just data.
        assert!(!push(&mut relay, &rtp(1, 0, true, &payload(d, &key)))[0].keyframe_start);
        assert_eq!(relay.keyframes(), 0);
        assert_eq!(relay.last_keyframe_size(), None);
    }
}

#[test]
fn vp8_keyframe_without_start_code_is_not_a_start() {
    let mut relay = Vp8Relay::new(1200);
    let mut data = keyframe_data(320, 240);
    data[4] = 0x02;
    let out = push(
        &mut relay,
        &rtp(1, 0, true, &payload(variants(true, 0)[2], &data)),
    );
    assert_eq!(out.len(), 1, "still forwarded");
    assert!(!out[0].keyframe_start);
    // Too short for the 10-byte keyframe header.
    let out = push(
        &mut relay,
        &rtp(2, 0, true, &payload(variants(true, 0)[0], &data[..9])),
    );
    assert!(!out[0].keyframe_start);
    assert_eq!(relay.keyframes(), 0);
}

#[test]
fn vp8_keyframe_size_parse() {
    assert_eq!(keyframe_size(&keyframe_data(320, 240)), Some((320, 240)));
    assert_eq!(
        keyframe_size(&keyframe_data(1920, 1080)),
        Some((1920, 1080))
    );
    assert_eq!(keyframe_size(&keyframe_data(16383, 1)), Some((16383, 1)));
    // The top two bits of each are the scaling mode, not size.
    assert_eq!(
        keyframe_size(&keyframe_data(0xC000 | 1280, 0x4000 | 720)),
        Some((1280, 720))
    );
    assert_eq!(keyframe_size(&interframe_data()), None);
    assert_eq!(keyframe_size(&keyframe_data(320, 240)[..9]), None);
    assert_eq!(keyframe_size(&[]), None);
    // The size follows the latest keyframe.
    let mut relay = Vp8Relay::new(1200);
    let d = variants(true, 0)[1];
    push(
        &mut relay,
        &rtp(1, 0, true, &payload(d, &keyframe_data(320, 240))),
    );
    push(
        &mut relay,
        &rtp(2, 3000, true, &payload(d, &keyframe_data(1280, 720))),
    );
    assert_eq!(relay.last_keyframe_size(), Some((1280, 720)));
    assert_eq!(relay.keyframes(), 2);
}

#[test]
fn vp8_sequence_gaps_are_mirrored_and_late_packets_dropped() {
    let mut relay = Vp8Relay::new(1200);
    let d = variants(false, 0)[0];
    let p = payload(d, &middle_data());
    let seqs = |relay: &mut Vp8Relay, input: &[u16]| -> Vec<u16> {
        input
            .iter()
            .flat_map(|&s| push(relay, &rtp(s, 0, false, &p)))
            .map(|o| o.seq)
            .collect()
    };
    // Starts at the camera's numbers; a gap of 2 stays a gap of 2; wraps.
    assert_eq!(seqs(&mut relay, &[65533, 65534]), [65533, 65534]);
    assert_eq!(seqs(&mut relay, &[1, 2]), [1, 2]);
    // Duplicate and reordered: dropped.
    assert_eq!(seqs(&mut relay, &[2, 1, 3]), [3]);
    // Empty keepalive: dropped, no gap. Malformed: dropped, seen as a loss.
    push(&mut relay, &rtp(4, 0, false, &[]));
    assert_eq!(seqs(&mut relay, &[5]), [4]);
    push(&mut relay, &rtp(6, 0, false, &[0x90, 0x80]));
    assert_eq!(relay.malformed(), 1);
    assert_eq!(seqs(&mut relay, &[7]), [6]);
    // A sequence restart and an SSRC change each show as one lost packet.
    assert_eq!(seqs(&mut relay, &[40_000, 40_001]), [8, 9]);
    let out = push(
        &mut relay,
        &RtpPacket {
            ssrc: 1,
            ..rtp(123, 0, false, &p)
        },
    );
    assert_eq!(out[0].seq, 11);
}

#[test]
fn vp8_payloads_are_forwarded_unchanged_with_marker_and_time() {
    let mut relay = Vp8Relay::new(1200);
    let d = variants(true, 0)[3];
    let key = payload(d, &keyframe_data(320, 240));
    let out = push(&mut relay, &rtp(9, 123_456, true, &key));
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(&*o.payload, &key[..]);
    assert_eq!((o.marker, o.rtp_time, o.seq), (true, 123_456, 9));
    // One Arc per packet, shared by everyone who clones the VideoPacket (viewers, GOP cache).
    let copy = o.clone();
    assert!(Arc::ptr_eq(&o.payload, &copy.payload));
}

#[test]
fn vp8_oversized_packets_are_forwarded_and_counted() {
    let mut relay = Vp8Relay::new(100);
    let d = variants(false, 0)[0];
    let mut big = payload(d, &middle_data());
    big.resize(101, 0x77);
    let out = push(&mut relay, &rtp(1, 0, true, &big));
    assert_eq!(&*out[0].payload, &big[..]);
    big.truncate(100);
    push(&mut relay, &rtp(2, 0, true, &big));
    assert_eq!(relay.oversized(), 1);
}

#[test]
fn vp8_garbage_never_panics() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut relay = Vp8Relay::new(64);
    let mut out = Vec::new();
    let mut forwarded = 0usize;
    for i in 0..50_000u32 {
        let len = (rng.next_u64() % 40) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        // Bias toward plausible headers so the deep paths are reached too.
        match i % 4 {
            0 if len > 0 => buf[0] |= 0x80,
            1 if len > 1 => {
                buf[0] = 0x90;
                buf[1] |= 0xF0;
            }
            2 if len > 10 => {
                buf[0] = 0x10;
                buf[1] &= 0xFE;
                buf[4..7].copy_from_slice(&[0x9D, 0x01, 0x2A]);
            }
            _ => {}
        }
        let _ = Vp8Descriptor::parse(&buf);
        let _ = keyframe_size(&buf);
        let pkt = RtpPacket {
            ssrc: u32::from(rng.next_u64().is_multiple_of(3)),
            ..rtp(
                rng.next_u64() as u16,
                rng.next_u64() as u32,
                rng.next_u64() & 1 == 0,
                &buf,
            )
        };
        out.clear();
        relay.push(&pkt, &mut out);
        for o in &out {
            assert_eq!(&*o.payload, &buf[..], "forwarded as is");
        }
        forwarded += out.len();
    }
    assert!(forwarded > 1000, "{forwarded}");
    assert!(relay.keyframes() > 0);
    let _ = relay.last_keyframe_size();
}
