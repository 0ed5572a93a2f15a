//! Round-trip and relay tests (hermetic, deterministic pseudo-random inputs).

use std::sync::Arc;

use super::nal::{nal_type, stap_a_units};
use super::packetize::Packetizer;
use super::params::parse_sprop_parameter_sets;
use super::{AccessUnit, Depacketizer, H264Relay};
use crate::media::VideoPacket;
use crate::rtp::RtpPacket;

use camgate_testkit::nal::random as nal;
use camgate_testkit::Rng;

fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket<'_> {
    RtpPacket {
        payload_type: 96,
        marker,
        sequence: seq,
        timestamp: ts,
        ssrc: 0x1234,
        payload,
    }
}

/// A camera: packetizes access units with a given packetizer and numbers the packets.
struct Camera {
    seq: u16,
    packetizer: Packetizer,
}

/// (payload, marker, timestamp, sequence)
type Wire = Vec<(Vec<u8>, bool, u32, u16)>;

impl Camera {
    fn new(seq: u16, max: usize) -> Camera {
        Camera {
            seq,
            packetizer: Packetizer::new(max),
        }
    }
    fn au(&mut self, ts: u32, nals: &[Vec<u8>]) -> Wire {
        let mut payloads = Vec::new();
        self.packetizer.packetize_au(nals, &mut payloads);
        let n = payloads.len();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let s = self.seq;
                self.seq = self.seq.wrapping_add(1);
                (p, i + 1 == n, ts, s)
            })
            .collect()
    }
}

fn relay_all(relay: &mut H264Relay, wire: &Wire) -> Vec<VideoPacket> {
    let mut all = Vec::new();
    let mut out = Vec::new();
    for (p, m, ts, seq) in wire {
        out.clear();
        relay.push(&rtp(*seq, *ts, *m, p), &mut out);
        all.append(&mut out);
    }
    all
}

fn depacketize(packets: &[VideoPacket]) -> Vec<AccessUnit> {
    let mut d = Depacketizer::new();
    let mut aus = Vec::new();
    for p in packets {
        aus.extend(d.push(&rtp(p.seq, p.rtp_time, p.marker, &p.payload)));
    }
    aus.extend(d.flush());
    aus
}

fn check_output_invariants(packets: &[VideoPacket], max: usize) {
    for w in packets.windows(2) {
        assert_ne!(w[1].seq.wrapping_sub(w[0].seq), 0, "sequence must advance");
        assert!(
            w[1].seq.wrapping_sub(w[0].seq) < 0x8000,
            "sequence must not go back"
        );
    }
    for p in packets {
        assert!(!p.payload.is_empty());
        assert!(p.payload.len() <= max, "{} > {max}", p.payload.len());
    }
}

const SPROP: &str = "packetization-mode=1;profile-level-id=42C01E;\
                     sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAA8jxgyS,aM4yyA==";

fn sprop_nals() -> (Vec<u8>, Vec<u8>) {
    let v = parse_sprop_parameter_sets("Z0LAHtkDxWhAAAADAEAAAA8jxgyS,aM4yyA==");
    (v[0].clone(), v[1].clone())
}

// ---- depacketize / packetize round trips ----------------------------------------------------

#[test]
fn packetize_depacketize_round_trip() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    for &max in &[3usize, 16, 100, 1200, 1400, 65_000] {
        for aggregate in [true, false] {
            let packetizer = if aggregate {
                Packetizer::new(max)
            } else {
                Packetizer::without_aggregation(max)
            };
            let mut d = Depacketizer::new();
            let mut got = Vec::new();
            let mut want = Vec::new();
            let mut seq = 65_000u16;
            for frame in 0..40u32 {
                let n = 1 + rng.pick(5);
                let nals: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        let t = [1, 5, 6, 7, 8][rng.pick(5)];
                        // Mostly small units, sometimes up to 20000 bytes.
                        let len = if rng.pick(4) == 0 {
                            1 + rng.pick(20_000)
                        } else {
                            1 + rng.pick(60)
                        };
                        nal(&mut rng, t, len)
                    })
                    .collect();
                let ts = frame * 3000;
                let mut payloads = Vec::new();
                packetizer.packetize_au(&nals, &mut payloads);
                let count = payloads.len();
                for (i, p) in payloads.iter().enumerate() {
                    assert!(p.len() <= max.max(3));
                    if !aggregate {
                        assert_ne!(nal_type(p[0]), 24);
                    }
                    got.extend(d.push(&rtp(seq, ts, i + 1 == count, p)));
                    seq = seq.wrapping_add(1);
                }
                want.push(AccessUnit {
                    rtp_time: ts,
                    nals,
                    damaged: false,
                });
            }
            assert_eq!(got, want, "max {max} aggregate {aggregate}");
        }
    }
}

#[test]
fn access_units_end_on_timestamp_change_without_marker() {
    let mut rng = Rng::new(7);
    let a = nal(&mut rng, 1, 3000);
    let b = nal(&mut rng, 1, 10);
    let mut d = Depacketizer::new();
    let mut payloads = Vec::new();
    Packetizer::new(1000).packetize_au(std::slice::from_ref(&a), &mut payloads);
    let mut seq = 0;
    for p in &payloads {
        // Camera never sets the marker bit.
        assert!(d.push(&rtp(seq, 1, false, p)).is_empty());
        seq += 1;
    }
    let aus = d.push(&rtp(seq, 2, false, &b));
    assert_eq!(aus.len(), 1);
    assert_eq!(aus[0].nals, vec![a]);
    assert_eq!(d.flush().unwrap().nals, vec![b]);
}

// ---- relay --------------------------------------------------------------------------------

#[test]
fn relay_forwards_in_mtu_packets_unchanged() {
    let mut rng = Rng::new(1);
    let mut cam = Camera::new(100, 1200);
    let mut relay = H264Relay::new(None, 1200);
    let mut wire = Vec::new();
    for f in 0..5u32 {
        let len = 50 + rng.pick(4000);
        wire.extend(cam.au(f * 3000, &[nal(&mut rng, 1, len)]));
    }
    let out = relay_all(&mut relay, &wire);
    assert_eq!(out.len(), wire.len());
    for (o, (p, m, ts, seq)) in out.iter().zip(&wire) {
        assert_eq!(&*o.payload, &p[..]);
        assert_eq!((o.marker, o.rtp_time, o.seq), (*m, *ts, *seq));
        assert!(!o.keyframe_start);
        // The relay keeps no reference: the one Arc can be handed to every viewer.
        assert_eq!(Arc::strong_count(&o.payload), 1);
        let viewer_copy = Arc::clone(&o.payload);
        assert!(Arc::ptr_eq(&viewer_copy, &o.payload));
    }
    assert_eq!(relay.profile_level_id(), None);
    assert!(!relay.has_parameter_sets());
}

#[test]
fn relay_refragments_oversized_single_nal_and_fu_a() {
    let mut rng = Rng::new(2);
    for &(cam_max, relay_max) in &[
        (65_000usize, 1200usize),
        (1400, 500),
        (1400, 3),
        (9000, 1200),
    ] {
        let mut cam = Camera::new(7, cam_max);
        let mut relay = H264Relay::new(None, relay_max);
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for f in 0..6u32 {
            let (a, b) = (1 + rng.pick(20_000), 1 + rng.pick(3000));
            let nals = vec![nal(&mut rng, 1, a), nal(&mut rng, 1, b)];
            wire.extend(cam.au(f * 3000, &nals));
            want.push(AccessUnit {
                rtp_time: f * 3000,
                nals,
                damaged: false,
            });
        }
        let out = relay_all(&mut relay, &wire);
        check_output_invariants(&out, relay_max);
        // No gaps in, none out.
        for w in out.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        }
        // Marker exactly on the last packet of each access unit.
        assert_eq!(out.iter().filter(|p| p.marker).count(), 6);
        assert_eq!(depacketize(&out), want, "cam {cam_max} relay {relay_max}");
    }
}

/// The FU-A fragments' data of `packets` (of one NAL unit), concatenated.
fn fu_data(packets: &[VideoPacket]) -> Vec<u8> {
    packets
        .iter()
        .flat_map(|p| p.payload[2..].to_vec())
        .collect()
}

/// Packets for a NAL unit of `len` bytes at `max` bytes a payload, as full as FU-A allows.
fn full_packets(len: usize, max: usize) -> usize {
    if len <= max {
        1
    } else {
        (len - 1).div_ceil(max - 2)
    }
}

#[test]
fn relay_recuts_camera_sized_fragments_into_full_packets() {
    // A camera's 1,400-byte FU-A fragments through a 1,200-byte WebRTC payload: each NAL unit
    // goes out in as few packets as its size allows (each fragment cut on its own would give
    // 2 per fragment: 1,198 + 202 bytes).
    let mut rng = Rng::new(21);
    let mut cam = Camera::new(65_000, 1400);
    cam.packetizer = Packetizer::without_aggregation(1400);
    let mut relay = H264Relay::new(None, 1200);
    let (mut wire, mut want, mut expect) = (Vec::new(), Vec::new(), 0);
    for f in 0..30u32 {
        let sizes = [1 + rng.pick(30_000), 1 + rng.pick(3000), 1 + rng.pick(200)];
        let nals: Vec<Vec<u8>> = sizes.iter().map(|&n| nal(&mut rng, 1, n)).collect();
        expect += sizes.iter().map(|&n| full_packets(n, 1200)).sum::<usize>();
        wire.extend(cam.au(f * 3000, &nals));
        want.push(AccessUnit {
            rtp_time: f * 3000,
            nals,
            damaged: false,
        });
    }
    let out = relay_all(&mut relay, &wire);
    check_output_invariants(&out, 1200);
    assert_eq!(
        depacketize(&out),
        want,
        "the camera's NAL units, byte for byte"
    );
    assert_eq!(out.len(), expect);
    assert!(out.len() < wire.len() * 3 / 2, "{} packets", out.len());
    // Full: only a unit's last packet may be short.
    for p in &out {
        let end = nal_type(p.payload[0]) != 28 || p.payload[1] & 0x40 != 0;
        assert!(end || p.payload.len() == 1200, "{} bytes", p.payload.len());
    }
    for w in out.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
    }
    // The marker on each access unit's last packet, nowhere else.
    let ends: Vec<usize> = (0..out.len()).filter(|&i| out[i].marker).collect();
    assert_eq!(ends.len(), 30);
    for e in ends {
        assert!(out.get(e + 1).is_none_or(|n| n.rtp_time != out[e].rtp_time));
    }
}

#[test]
fn relay_drops_the_carried_tail_at_a_lost_fragment() {
    let mut rng = Rng::new(22);
    let idr = nal(&mut rng, 5, 14_000);
    let next = nal(&mut rng, 1, 5000);
    let mut cam = Camera::new(10, 1400);
    let mut wire = cam.au(0, std::slice::from_ref(&idr));
    assert_eq!(wire.len(), 11);
    wire.extend(cam.au(3000, std::slice::from_ref(&next)));
    // Fragment 5 of the IDR (a middle one) is lost.
    wire.remove(5);
    let mut relay = H264Relay::new(Some(SPROP), 1200);
    let out = relay_all(&mut relay, &wire);
    check_output_invariants(&out, 1200);
    let gap = out
        .windows(2)
        .position(|w| w[1].seq.wrapping_sub(w[0].seq) != 1)
        .unwrap()
        + 1;
    assert_eq!(out[gap].seq.wrapping_sub(out[gap - 1].seq), 2, "one lost");
    // Nothing is glued across the loss: what went out before it is the start of the IDR, what
    // comes after it (up to the IDR's end) is its end; the carried tail before the loss is gone.
    let before = fu_data(&out[1..gap]);
    let end = gap
        + out[gap..]
            .iter()
            .position(|p| p.payload[1] & 0x40 != 0)
            .unwrap();
    let after = fu_data(&out[gap..=end]);
    assert!(idr[1..].starts_with(&before));
    assert!(idr[1..].ends_with(&after));
    assert_eq!(out[gap].payload[1] & 0x80, 0, "no invented start");
    // Five fragments of 1,398 bytes before the loss: five full packets, a 1,000-byte tail
    // dropped; all of the fragments after it.
    assert_eq!(before.len(), 5 * 1198);
    assert_eq!(after.len(), idr.len() - 1 - 6 * 1398);
    // A receiver drops the broken IDR and gets the next frame whole.
    let aus = depacketize(&out);
    assert!(aus[0].damaged && aus[0].nals.iter().all(|n| nal_type(n[0]) != 5));
    assert_eq!(aus[1].nals, vec![next]);
}

#[test]
fn relay_writes_out_the_carried_tail_of_an_unfinished_unit() {
    // A camera that starts a new NAL unit before the E of the last (no loss): the receiver gets
    // every byte the camera sent, the carried tail as a fragment of its own.
    let mut rng = Rng::new(23);
    let idr = nal(&mut rng, 5, 5000);
    let mut cam = Camera::new(0, 1400);
    let mut wire = cam.au(0, std::slice::from_ref(&idr));
    let end = wire.pop().unwrap();
    wire.extend(cam.au(0, &[nal(&mut rng, 1, 100)]));
    wire.last_mut().unwrap().3 = end.3;
    let mut relay = H264Relay::new(None, 1200);
    let out = relay_all(&mut relay, &wire);
    let sent: usize = wire[..wire.len() - 1].iter().map(|w| w.0.len() - 2).sum();
    let fus = out
        .iter()
        .take_while(|p| nal_type(p.payload[0]) == 28)
        .count();
    assert!(
        fu_data(&out[..fus]) == idr[1..1 + sent],
        "every byte sent, in order"
    );
    assert_eq!(fus, 4, "3 full packets and the tail");
    assert!(out[..fus].iter().all(|p| p.payload[1] & 0x40 == 0));
    assert_eq!(&*out[fus].payload, &wire.last().unwrap().0[..]);
    // A marker without E (another quirk) writes out the tail too: nothing waits past an AU.
    let mut relay = H264Relay::new(None, 1200);
    let mut wire = cam.au(3000, std::slice::from_ref(&idr));
    wire.truncate(2);
    wire[1].1 = true;
    let out = relay_all(&mut relay, &wire);
    assert!(fu_data(&out) == idr[1..1 + 2 * 1398]);
    assert!(out.last().unwrap().marker);
}

#[test]
fn relay_recuts_a_real_camera_stream() {
    // x264 through rtph264pay mtu=1400 (core/tests/data/h264/x264_mtu1400), relayed at 1200.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/h264/");
    let data = std::fs::read(format!("{dir}x264_mtu1400.rtp")).unwrap();
    let meta = std::fs::read_to_string(format!("{dir}x264_mtu1400.meta")).unwrap();
    let fmtp = meta.lines().find_map(|l| l.strip_prefix("fmtp=")).unwrap();
    let raw = camgate_testkit::capture::rfc4571_packets(&data);
    let wire: Wire = raw
        .iter()
        .map(|r| {
            let p = RtpPacket::parse(r).unwrap();
            (p.payload.to_vec(), p.marker, p.timestamp, p.sequence)
        })
        .collect();
    assert!(wire
        .iter()
        .any(|w| w.0.len() > 1300 && nal_type(w.0[0]) == 28));
    let mut relay = H264Relay::new(Some(fmtp), 1200);
    let out = relay_all(&mut relay, &wire);
    check_output_invariants(&out, 1200);
    let src: Vec<VideoPacket> = wire
        .iter()
        .map(|(p, m, ts, seq)| VideoPacket {
            payload: Arc::from(&p[..]),
            marker: *m,
            rtp_time: *ts,
            seq: *seq,
            keyframe_start: false,
        })
        .collect();
    let (got, want) = (depacketize(&out), depacketize(&src));
    assert_eq!(got, want, "the camera's access units, byte for byte");
    let expect: usize = want
        .iter()
        .flat_map(|au| &au.nals)
        .map(|n| full_packets(n.len(), 1200))
        .sum();
    // The camera aggregates nothing here but SPS+PPS (one STAP-A per keyframe, forwarded).
    let staps = wire.iter().filter(|w| nal_type(w.0[0]) == 24).count();
    assert_eq!(out.len(), expect - staps, "{} source packets", wire.len());
    let keyframes = got.iter().filter(|au| au.is_keyframe()).count();
    assert_eq!(out.iter().filter(|p| p.keyframe_start).count(), keyframes);
    assert!(keyframes >= 2);
}

#[test]
fn relay_splits_oversized_stap_a() {
    let mut rng = Rng::new(3);
    let nals: Vec<Vec<u8>> = (0..6).map(|_| nal(&mut rng, 6, 150)).collect();
    let mut cam = Camera::new(0, 1400);
    let mut wire = cam.au(0, &nals);
    wire.extend(cam.au(3000, &[nal(&mut rng, 1, 40)]));
    assert_eq!(nal_type(wire[0].0[0]), 24);
    let mut relay = H264Relay::new(None, 400);
    let out = relay_all(&mut relay, &wire);
    check_output_invariants(&out, 400);
    assert_eq!(&*out[0].payload, &nals[0][..]);
    assert_eq!(out.len(), 7);
    assert_eq!(depacketize(&out)[0].nals, nals);
}

#[test]
fn relay_injects_parameter_sets_before_idr() {
    let (sps, pps) = sprop_nals();
    let mut rng = Rng::new(4);
    let mut relay = H264Relay::new(Some(SPROP), 1200);
    assert!(relay.has_parameter_sets());
    assert_eq!(relay.profile_level_id(), Some([0x42, 0xC0, 0x1E]));
    assert_eq!(relay.fmtp_profile_level_id(), Some([0x42, 0xC0, 0x1E]));
    let stap = relay.parameter_sets_packet().unwrap();
    assert_eq!(
        stap_a_units(&stap).collect::<Vec<_>>(),
        vec![&sps[..], &pps[..]]
    );

    let mut cam = Camera::new(500, 1200);
    let mut wire = Vec::new();
    // IDR (fragmented), 3 P frames, IDR (single NAL, two slices), P.
    wire.extend(cam.au(0, &[nal(&mut rng, 5, 5000)]));
    for f in 1..4 {
        wire.extend(cam.au(f * 3000, &[nal(&mut rng, 1, 300)]));
    }
    wire.extend(cam.au(12_000, &[nal(&mut rng, 5, 200), nal(&mut rng, 5, 200)]));
    wire.extend(cam.au(15_000, &[nal(&mut rng, 1, 300)]));
    let out = relay_all(&mut relay, &wire);
    check_output_invariants(&out, 1200);
    assert_eq!(out.len(), wire.len() + 2);
    let starts: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, p)| p.keyframe_start)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2);
    for &i in &starts {
        assert!(
            Arc::ptr_eq(&out[i].payload, &stap),
            "injected packet is the cached STAP-A"
        );
        assert!(!out[i].marker);
        assert_eq!(out[i].rtp_time, out[i + 1].rtp_time);
    }
    // Output sequence is contiguous even with the injected packets.
    for w in out.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
    }
    let aus = depacketize(&out);
    assert_eq!(aus[0].nals[..2], [sps.clone(), pps.clone()]);
    assert_eq!(aus[4].nals.len(), 4);
    assert_eq!(aus[1].nals.len(), 1);
}

#[test]
fn relay_does_not_duplicate_camera_parameter_sets() {
    let mut rng = Rng::new(5);
    // In-band parameter sets that differ from sprop: the relay must learn and use the new ones.
    let sps = vec![0x67, 0x64, 0x00, 0x28, 0xAC, 0xD9];
    let pps = vec![0x68, 0xEE, 0x3C, 0x80];
    for aggregate in [false, true] {
        let mut relay = H264Relay::new(Some(SPROP), 1200);
        let mut cam = Camera::new(0, 1200);
        if !aggregate {
            cam.packetizer = Packetizer::without_aggregation(1200);
        }
        let mut wire = Vec::new();
        let aud = vec![0x09, 0xF0];
        for k in 0..3u32 {
            let ts = k * 30_000;
            wire.extend(cam.au(
                ts,
                &[
                    aud.clone(),
                    sps.clone(),
                    pps.clone(),
                    nal(&mut rng, 5, 3000),
                ],
            ));
            wire.extend(cam.au(ts + 3000, &[aud.clone(), nal(&mut rng, 1, 500)]));
        }
        let out = relay_all(&mut relay, &wire);
        check_output_invariants(&out, 1200);
        assert_eq!(out.len(), wire.len(), "nothing injected");
        for (o, w) in out.iter().zip(&wire) {
            assert_eq!(&*o.payload, &w.0[..], "forwarded unchanged, in order");
        }
        let starts: Vec<&VideoPacket> = out.iter().filter(|p| p.keyframe_start).collect();
        assert_eq!(starts.len(), 3);
        for s in starts {
            if aggregate {
                // STAP-A [AUD, SPS, PPS] (the IDR is too big to join): the packet holding them.
                assert_eq!(nal_type(s.payload[0]), 24);
            } else {
                assert_eq!(
                    &*s.payload,
                    &sps[..],
                    "the camera's SPS packet is the start"
                );
            }
        }
        assert_eq!(relay.profile_level_id(), Some([0x64, 0x00, 0x28]));
        assert_eq!(relay.fmtp_profile_level_id(), Some([0x42, 0xC0, 0x1E]));
        let stap = relay.parameter_sets_packet().unwrap();
        assert_eq!(
            stap_a_units(&stap).collect::<Vec<_>>(),
            vec![&sps[..], &pps[..]]
        );
    }
}

#[test]
fn relay_stap_a_with_idr_is_itself_the_start() {
    let (sps, pps) = sprop_nals();
    let mut rng = Rng::new(6);
    let idr = nal(&mut rng, 5, 100);
    let mut cam = Camera::new(0, 1200);
    let wire = cam.au(0, &[sps.clone(), pps.clone(), idr]);
    assert_eq!(wire.len(), 1);
    let mut relay = H264Relay::new(None, 1200);
    let out = relay_all(&mut relay, &wire);
    assert_eq!(out.len(), 1);
    assert!(out[0].keyframe_start && out[0].marker);
    assert_eq!(relay.profile_level_id(), Some([0x42, 0xC0, 0x1E]));
}

#[test]
fn relay_without_parameter_sets_marks_nothing() {
    let mut rng = Rng::new(8);
    let mut relay = H264Relay::new(Some("packetization-mode=1"), 1200);
    let mut cam = Camera::new(0, 1200);
    let mut wire = cam.au(0, &[nal(&mut rng, 5, 4000)]);
    wire.extend(cam.au(3000, &[nal(&mut rng, 1, 100)]));
    let out = relay_all(&mut relay, &wire);
    assert_eq!(out.len(), wire.len());
    assert!(out.iter().all(|p| !p.keyframe_start));
    assert_eq!(relay.parameter_sets_packet(), None);
    assert_eq!(relay.fmtp_profile_level_id(), None);
}

#[test]
fn relay_learns_parameter_sets_sent_as_fu_a() {
    let mut rng = Rng::new(9);
    let sps = nal(&mut rng, 7, 300);
    let pps = nal(&mut rng, 8, 10);
    let mut cam = Camera::new(0, 100);
    let wire = cam.au(0, &[sps.clone(), pps.clone(), nal(&mut rng, 5, 1000)]);
    assert_eq!(nal_type(wire[0].0[0]), 28);
    let mut relay = H264Relay::new(None, 1200);
    let out = relay_all(&mut relay, &wire);
    assert_eq!(out.len(), wire.len());
    assert!(out[0].keyframe_start, "the SPS's first fragment");
    assert_eq!(out.iter().filter(|p| p.keyframe_start).count(), 1);
    assert_eq!(relay.parameter_sets().sps(), Some(&sps[..]));
    assert_eq!(relay.parameter_sets().pps(), Some(&pps[..]));
}

#[test]
fn relay_mirrors_sequence_gaps() {
    let mut rng = Rng::new(10);
    let mut cam = Camera::new(65_530, 1200);
    let mut wire = Vec::new();
    for f in 0..4u32 {
        wire.extend(cam.au(f * 3000, &[nal(&mut rng, 1, 2000)]));
    }
    // Drop source packets 2 and 5,6 (by index).
    let lossy: Wire = wire
        .iter()
        .enumerate()
        .filter(|(i, _)| ![2, 5, 6].contains(i))
        .map(|(_, w)| w.clone())
        .collect();
    // Relay with a smaller MTU; fragments of 1198 and 801 bytes of data are re-cut into full
    // 698-byte ones, the tail of one carried into the next: frame 0 (source 0, 1) gives 3
    // packets; the lone end fragments of frames 1 and 3 (source 3, 7) 2 each; the start of
    // frame 2 (source 4) 1, its carried tail dropped at the loss that follows.
    let mut relay = H264Relay::new(None, 700);
    let out = relay_all(&mut relay, &lossy);
    let per_frame: Vec<usize> = (0..4)
        .map(|f| out.iter().filter(|p| p.rtp_time == f * 3000).count())
        .collect();
    assert_eq!(per_frame, [3, 2, 1, 2]);
    let deltas: Vec<u16> = out
        .windows(2)
        .map(|w| w[1].seq.wrapping_sub(w[0].seq))
        .collect();
    // Gaps after source index 1 (one lost) and after 4 (two lost).
    assert_eq!(deltas, vec![1, 1, 2, 1, 1, 3, 1]);
    // Late duplicate: ignored.
    let mut out2 = Vec::new();
    relay.push(&rtp(lossy[3].3, lossy[3].2, false, &lossy[3].0), &mut out2);
    assert!(out2.is_empty());
}

#[test]
fn relay_never_invents_a_start_after_mid_fu_loss() {
    let mut rng = Rng::new(11);
    let idr = nal(&mut rng, 5, 6000);
    let mut cam = Camera::new(0, 1400);
    let wire = cam.au(0, &[idr]);
    assert!(wire.len() >= 4);
    let mut relay = H264Relay::new(Some(SPROP), 500);
    // First fragment (with S) lost.
    let out = relay_all(&mut relay, &wire[1..].to_vec());
    check_output_invariants(&out, 500);
    assert!(
        out.iter().all(|p| p.payload[1] & 0x80 == 0),
        "no S bit anywhere"
    );
    assert!(out.iter().all(|p| !p.keyframe_start));
    assert_eq!(out.iter().filter(|p| p.payload[1] & 0x40 != 0).count(), 1);
    assert!(
        depacketize(&out).is_empty(),
        "the broken NAL unit is not reassembled"
    );
}

#[test]
fn relay_camera_quirks() {
    let (sps, pps) = sprop_nals();
    let mut relay = H264Relay::new(None, 1200);
    let mut out = Vec::new();
    // Empty payload: dropped.
    relay.push(&rtp(1, 0, false, &[]), &mut out);
    assert!(out.is_empty());
    // Annex-B framed SPS+PPS in one "single NAL" payload, then an IDR with the F bit set.
    let mut annexb = vec![0, 0, 0, 1];
    annexb.extend_from_slice(&sps);
    annexb.extend_from_slice(&[0, 0, 1]);
    annexb.extend_from_slice(&pps);
    relay.push(&rtp(2, 0, false, &annexb), &mut out);
    assert!(out.is_empty(), "held until the slice shows up");
    relay.push(&rtp(3, 0, true, &[0x80 | 0x65, 1, 2, 3]), &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(&*out[0].payload, &sps[..]);
    assert!(out[0].keyframe_start);
    assert_eq!(&*out[1].payload, &pps[..]);
    assert_eq!(
        &*out[2].payload,
        &[0xE5, 1, 2, 3],
        "F bit ignored, forwarded"
    );
    assert!(out[2].marker);
    // Numbering starts at the camera's first sequence number (the dropped empty packet's).
    assert_eq!((out[0].seq, out[1].seq, out[2].seq), (1, 2, 3));
    // FU-A with both S and E: becomes a single NAL unit packet.
    out.clear();
    relay.push(&rtp(4, 3000, true, &[0x5C, 0xC1, 9, 8, 7]), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].payload, &[0x41, 9, 8, 7]);
    // STAP-B / type 0 / truncated FU-A: dropped, no panic.
    out.clear();
    for p in [&[0x19, 1, 2][..], &[0x00, 1, 2], &[0x7C], &[0x7C, 0x98]] {
        relay.push(&rtp(5, 6000, false, p), &mut out);
    }
    assert!(out.is_empty());
}

#[test]
fn relay_survives_garbage() {
    let mut rng = Rng::new(12);
    for &max in &[3usize, 50, 1200] {
        let mut relay = H264Relay::new(
            Some("sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAA8jxgyS,aM4yyA=="),
            max,
        );
        let mut out = Vec::new();
        let mut all = Vec::new();
        let mut seq = 0u16;
        let mut ts = 0u32;
        for _ in 0..20_000 {
            let big = rng.pick(10) == 0;
            let len = rng.pick(if big { 3000 } else { 12 });
            let mut p = rng.bytes(len);
            // Bias toward interesting headers.
            if let Some(b) = p.first_mut() {
                *b = match rng.pick(6) {
                    0 => 0x7C,
                    1 => 0x78,
                    2 => 0x65,
                    3 => 0x67,
                    _ => *b,
                };
            }
            if rng.pick(8) == 0 {
                ts = ts.wrapping_add(3000);
            }
            seq = seq.wrapping_add(match rng.pick(20) {
                0 => 2,
                1 => 0,
                2 => rng.next_u64() as u16,
                _ => 1,
            });
            let ssrc = if rng.pick(500) == 0 { 99 } else { 0x1234 };
            out.clear();
            relay.push(
                &RtpPacket {
                    payload_type: 96,
                    marker: rng.pick(4) == 0,
                    sequence: seq,
                    timestamp: ts,
                    ssrc,
                    payload: &p,
                },
                &mut out,
            );
            all.append(&mut out);
        }
        check_output_invariants(&all, max);
        // What comes out is always parseable by the depacketizer without panicking.
        let _ = depacketize(&all);
    }
}

#[test]
fn relay_round_trip_random_streams() {
    let mut rng = Rng::new(13);
    let (sps, pps) = sprop_nals();
    for &(cam_max, relay_max) in &[
        (1400usize, 1200usize),
        (1200, 1200),
        (500, 1200),
        (60_000, 1000),
        (1400, 97),
    ] {
        let mut cam = Camera::new(rng.next_u64() as u16, cam_max);
        let mut relay = H264Relay::new(Some(SPROP), relay_max);
        let mut wire = Vec::new();
        let mut want = Vec::new();
        let mut keyframes = 0;
        for f in 0..60u32 {
            let ts = f.wrapping_mul(3003).wrapping_add(u32::MAX - 50_000);
            let key = f % 15 == 0;
            let mut nals = Vec::new();
            if key && rng.pick(2) == 0 {
                nals.push(sps.clone());
                nals.push(pps.clone());
            }
            let t = if key { 5 } else { 1 };
            for _ in 0..1 + rng.pick(3) {
                let len = 1 + rng.pick(20_000);
                nals.push(nal(&mut rng, t, len));
            }
            if key {
                keyframes += 1;
                if nals[0] != sps {
                    want.push(AccessUnit {
                        rtp_time: ts,
                        nals: [vec![sps.clone(), pps.clone()], nals.clone()].concat(),
                        damaged: false,
                    });
                } else {
                    want.push(AccessUnit {
                        rtp_time: ts,
                        nals: nals.clone(),
                        damaged: false,
                    });
                }
            } else {
                want.push(AccessUnit {
                    rtp_time: ts,
                    nals: nals.clone(),
                    damaged: false,
                });
            }
            wire.extend(cam.au(ts, &nals));
        }
        let out = relay_all(&mut relay, &wire);
        check_output_invariants(&out, relay_max);
        assert_eq!(out.iter().filter(|p| p.keyframe_start).count(), keyframes);
        let aus = depacketize(&out);
        assert_eq!(aus, want, "cam {cam_max} relay {relay_max}");
        // Every keyframe start is followed, within its access unit, by SPS, PPS and an IDR.
        for (i, p) in out.iter().enumerate().filter(|(_, p)| p.keyframe_start) {
            let au: Vec<VideoPacket> = out[i..]
                .iter()
                .take_while(|q| q.rtp_time == p.rtp_time)
                .cloned()
                .collect();
            let got = depacketize(&au);
            assert_eq!(got[0].nals[0], sps);
            assert_eq!(got[0].nals[1], pps);
            assert!(got[0].is_keyframe());
        }
    }
}
