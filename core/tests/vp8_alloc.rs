//! The VP8 relay's allocation budget: one `Arc<[u8]>` per source packet, nothing else, once the
//! caller's output vector has capacity. Its own test binary because it needs a counting global
//! allocator.

use camgate_core::media::VideoPacket;
use camgate_core::rtp::RtpPacket;
use camgate_core::vp8::Vp8Relay;

mod counting_alloc;
use counting_alloc::allocs;

#[test]
fn vp8_push_allocates_only_the_shared_arc() {
    // Keyframe start (15-bit PictureID), continuation, interframe start, oversized packet.
    let mut key = vec![0x90, 0x80, 0x80, 0x01, 0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A];
    key.extend_from_slice(&[0x40, 0x01, 0xF0, 0x00]);
    key.resize(1000, 0x11);
    let mid = vec![0x80, 0x80, 0x80, 0x01, 0x22, 0x33];
    let inter = vec![0x90, 0x80, 0x80, 0x02, 0x31, 0x05, 0x00, 0x44];
    let big = vec![0x00; 1500];
    let inputs: Vec<(&[u8], u32)> = vec![(&key, 0), (&mid, 0), (&inter, 3000), (&big, 3000)];

    let mut relay = Vp8Relay::new(1200);
    let mut out: Vec<VideoPacket> = Vec::with_capacity(16);
    for round in 0..20u16 {
        for (i, (payload, ts)) in inputs.iter().enumerate() {
            // One sequence number skipped before each packet: gaps must not allocate either.
            let seq = round * 8 + i as u16 * 2;
            let pkt = RtpPacket {
                payload_type: 96,
                marker: true,
                sequence: seq,
                timestamp: u32::from(round) * 6000 + ts,
                ssrc: 1,
                payload,
            };
            out.clear();
            let before = allocs();
            relay.push(&pkt, &mut out);
            assert_eq!(allocs() - before, 1, "round {round} packet {i}");
            assert_eq!(out.len(), 1);
        }
    }
    assert_eq!(relay.keyframes(), 20);
    assert_eq!(relay.oversized(), 20);
    assert_eq!(relay.last_keyframe_size(), Some((320, 240)));
}
