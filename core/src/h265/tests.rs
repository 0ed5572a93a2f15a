//! The H.265 relay on real RTP from x265 + rtph265pay (core/tests/data/h265, see its README).

use std::collections::BTreeMap;

use super::nal::{ap_units, is_irap, nal_type, NAL_AP, NAL_FU, NAL_PPS, NAL_SPS, NAL_VPS};
use super::relay::H265Relay;
use crate::media::VideoPacket;
use crate::rtp::RtpPacket;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/h265/");

/// A capture: its RTP packets, its fmtp, and RTP time → keyframe? per encoded frame.
struct Capture {
    packets: Vec<Vec<u8>>,
    fmtp: String,
    frames: BTreeMap<u32, bool>,
}

fn capture(name: &str) -> Capture {
    let data = std::fs::read(format!("{DIR}{name}.rtp")).unwrap();
    let packets = camgate_testkit::capture::rfc4571_packets(&data);
    // The frames are stamped with the encoder's PTS; RTP times start at 0 for the first frame.
    let rtp_start = RtpPacket::parse(&packets[0]).unwrap().timestamp;
    let meta = std::fs::read_to_string(format!("{DIR}{name}.meta")).unwrap();
    let frames = std::fs::read_to_string(format!("{DIR}{name}.frames")).unwrap();
    let first_pts: u32 = frames.split(' ').next().unwrap().parse().unwrap();
    Capture {
        packets,
        fmtp: meta
            .lines()
            .find_map(|l| l.strip_prefix("fmtp="))
            .unwrap()
            .to_owned(),
        frames: frames
            .lines()
            .map(|l| {
                let (ts, key) = l.split_once(' ').unwrap();
                let ts = ts.parse::<u32>().unwrap().wrapping_sub(first_pts);
                (ts.wrapping_add(rtp_start), key == "1")
            })
            .collect(),
    }
}

/// RFC 7798 depacketizing as a receiver does it: NAL units per RTP time, in arrival order.
/// Panics on anything a receiver would choke on (an FU continued without its start).
fn nal_units<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        match nal_type(p[0]) {
            NAL_AP => nals.extend(ap_units(p).map(<[u8]>::to_vec)),
            NAL_FU => {
                let h = p[2];
                if h & 0x80 != 0 {
                    assert!(fu.is_none(), "FU start inside an FU");
                    fu = Some(vec![(p[0] & 0x81) | ((h & 0x3F) << 1), p[1]]);
                }
                let unit = fu.as_mut().expect("FU continued without its start");
                assert_eq!(nal_type(unit[0]), h & 0x3F, "FU type changed");
                unit.extend_from_slice(&p[3..]);
                if h & 0x40 != 0 {
                    nals.push(fu.take().unwrap());
                }
            }
            _ => nals.push(p.to_vec()),
        }
    }
    assert!(fu.is_none(), "unfinished FU");
    nals
}

fn relay_all(c: &Capture, max_payload: usize) -> (H265Relay, Vec<VideoPacket>) {
    let mut relay = H265Relay::new(Some(&c.fmtp), max_payload);
    let mut out = Vec::new();
    for raw in &c.packets {
        relay.push(&RtpPacket::parse(raw).unwrap(), &mut out);
    }
    (relay, out)
}

fn types(nals: &[Vec<u8>]) -> Vec<u8> {
    nals.iter().map(|n| nal_type(n[0])).collect()
}

/// The camera's NAL units with [VPS, SPS, PPS] before the first unit of each IRAP picture.
fn expected(c: &Capture) -> Vec<Vec<u8>> {
    let input = nal_units(
        c.packets
            .iter()
            .map(|r| RtpPacket::parse(r).unwrap().payload),
    );
    let mut relay = H265Relay::new(Some(&c.fmtp), 1200);
    let sets: Vec<Vec<u8>> = {
        relay.push(&RtpPacket::parse(&c.packets[0]).unwrap(), &mut Vec::new());
        ap_units(relay.parameter_sets().ap().unwrap())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut want = Vec::new();
    let mut prev_irap = false;
    for n in input {
        let irap = is_irap(nal_type(n[0]));
        if irap && !prev_irap {
            want.extend(sets.iter().cloned());
        }
        prev_irap = irap || (prev_irap && nal_type(n[0]) >= 32);
        want.push(n);
    }
    want
}

#[test]
fn the_test_camera_is_relayed_with_parameter_sets_before_every_irap() {
    let c = capture("x265_zerolatency");
    let (relay, out) = relay_all(&c, 1200);
    assert!(out.iter().all(|p| p.payload.len() <= 1200));
    // The stream is the camera's, NAL unit for NAL unit, plus the injected parameter sets.
    let got = nal_units(out.iter().map(|p| &*p.payload));
    assert_eq!(types(&got), types(&expected(&c)));
    assert_eq!(got, expected(&c));
    // Keyframes are marked exactly where the encoder made them: the IDR and the CRA.
    let marked: Vec<u32> = (out.iter().filter(|p| p.keyframe_start))
        .map(|p| p.rtp_time)
        .collect();
    let keyframes: Vec<u32> = (c.frames.iter().filter(|(_, k)| **k))
        .map(|(ts, _)| *ts)
        .collect();
    assert_eq!(marked, keyframes);
    assert_eq!(marked.len(), 2);
    // A viewer starting at any mark decodes: VPS, SPS, PPS, then the IRAP picture (x265's
    // second keyframe is a CRA, which the camera sent without parameter sets).
    let mut irap_types = Vec::new();
    for start in out.iter().positions(|p| p.keyframe_start) {
        let nals = nal_units(out[start..].iter().map(|p| &*p.payload));
        assert_eq!(types(&nals[..3]), [NAL_VPS, NAL_SPS, NAL_PPS]);
        let first_vcl = nals.iter().find(|n| nal_type(n[0]) < 32).unwrap();
        irap_types.push(nal_type(first_vcl[0]));
    }
    assert_eq!(irap_types, [20, 21], "IDR_N_LP, then CRA");
    // Frames end where the camera's did, and numbering has no holes.
    let markers = out.iter().filter(|p| p.marker).count();
    assert_eq!(markers, c.frames.len());
    assert!(out.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
    let info = relay.sps_info().unwrap();
    assert_eq!(info.describe(), "Main L2.1 640x360");
    assert!(!info.has_b_frames());
}

#[test]
fn packets_that_fit_are_forwarded_unchanged() {
    let c = capture("x265_zerolatency");
    let (_, out) = relay_all(&c, 1400);
    let injected = out.len() - c.packets.len();
    assert_eq!(injected, 2, "one AP per keyframe");
    let mut camera = c.packets.iter().map(|r| RtpPacket::parse(r).unwrap());
    for p in out.iter().filter(|p| !p.keyframe_start) {
        let src = camera.next().unwrap();
        assert_eq!(&*p.payload, src.payload);
        assert_eq!((p.marker, p.rtp_time), (src.marker, src.timestamp));
    }
}

#[test]
fn b_frames_and_pyramid_are_read_from_the_sps() {
    let c = capture("x265_bframes");
    let (relay, out) = relay_all(&c, 1200);
    let info = relay.sps_info().unwrap();
    assert!(info.has_b_frames() && info.has_pyramid(), "{info:?}");
    assert_eq!((info.width, info.height), (320, 240));
    assert_eq!(nal_units(out.iter().map(|p| &*p.payload)), expected(&c));
    assert_eq!(out.iter().filter(|p| p.keyframe_start).count(), 2);
}

#[test]
fn a_loss_shows_as_a_gap_and_no_fragment_gains_a_start() {
    let c = capture("x265_zerolatency");
    let mut relay = H265Relay::new(Some(&c.fmtp), 1000);
    let mut out = Vec::new();
    // Drop the IDR's first fragment (packet 4: AP, SEI FU, SEI FU, AP, IDR FU start).
    for (i, raw) in c.packets.iter().enumerate().take(30) {
        if i != 4 {
            relay.push(&RtpPacket::parse(raw).unwrap(), &mut out);
        }
    }
    assert!(out.windows(2).any(|w| w[1].seq != w[0].seq.wrapping_add(1)));
    assert!(
        !out.iter().any(|p| p.keyframe_start),
        "no IRAP start was seen"
    );
    let starts = out
        .iter()
        .filter(|p| nal_type(p.payload[0]) == NAL_FU && p.payload[2] & 0x3F == 20)
        .filter(|p| p.payload[2] & 0x80 != 0)
        .count();
    assert_eq!(starts, 0);
}

/// Packets a relay at `max` bytes a payload needs for the camera's packets, at best: one per
/// packet that fits, and for each NAL unit that does not (an FU from the camera, or a single
/// NAL unit packet too big), its data cut into full FUs.
fn fewest_packets(c: &Capture, max: usize) -> usize {
    let (mut n, mut fu_data) = (0, 0);
    for raw in &c.packets {
        let p = RtpPacket::parse(raw).unwrap().payload;
        if nal_type(p[0]) == NAL_FU {
            fu_data += p.len() - 3;
            if p[2] & 0x40 != 0 {
                n += fu_data.div_ceil(max - 3);
                fu_data = 0;
            }
        } else if p.len() <= max {
            n += 1;
        } else {
            n += (p.len() - 2).div_ceil(max - 3);
        }
    }
    n
}

#[test]
fn camera_sized_fragments_are_recut_into_full_packets() {
    // The camera's 1,400-byte FUs through a 1,200-byte WebRTC payload: the tail of each is
    // carried into the next packet of its NAL unit instead of going out as a small packet.
    let c = capture("x265_zerolatency");
    let (_, out) = relay_all(&c, 1200);
    let big = (c.packets.iter()).filter(|r| RtpPacket::parse(r).unwrap().payload.len() > 1200);
    assert!(big.count() > 30, "the capture has oversized FUs");
    let injected = out.iter().filter(|p| p.keyframe_start).count();
    assert_eq!(out.len(), fewest_packets(&c, 1200) + injected);
    // Full: only the last FU of a NAL unit may be short.
    for p in out.iter().filter(|p| nal_type(p.payload[0]) == NAL_FU) {
        assert!(p.payload[2] & 0x40 != 0 || p.payload.len() == 1200);
    }
    // (The byte-for-byte stream, keyframes and markers: the test above at the same payload.)
}

#[test]
fn a_lost_fragment_drops_the_carried_tail_and_the_stream_resumes() {
    let c = capture("x265_zerolatency");
    let parsed: Vec<RtpPacket> = c
        .packets
        .iter()
        .map(|r| RtpPacket::parse(r).unwrap())
        .collect();
    // A middle fragment of the IDR (FU type 20): neither S nor E.
    let lost = (parsed.iter())
        .position(|p| nal_type(p.payload[0]) == NAL_FU && p.payload[2] == 20)
        .unwrap()
        + 2;
    assert_eq!(parsed[lost].payload[2], 20, "a middle fragment");
    let idr = nal_units(parsed.iter().map(|p| p.payload))
        .into_iter()
        .find(|n| nal_type(n[0]) == 20)
        .unwrap();
    let mut relay = H265Relay::new(Some(&c.fmtp), 1200);
    let mut out = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        if i != lost {
            relay.push(p, &mut out);
        }
    }
    let gap = out
        .windows(2)
        .position(|w| w[1].seq != w[0].seq.wrapping_add(1))
        .unwrap()
        + 1;
    assert_eq!(out[gap].seq, out[gap - 1].seq.wrapping_add(2), "one lost");
    // The IDR's FUs on either side of the loss: a start of its data before, an end after;
    // nothing glued across.
    let fu_data = |ps: &[VideoPacket]| -> Vec<u8> {
        ps.iter().flat_map(|p| p.payload[3..].to_vec()).collect()
    };
    let first = out[..gap]
        .iter()
        .rposition(|p| p.payload[2] & 0x80 != 0)
        .unwrap();
    let end = gap
        + out[gap..]
            .iter()
            .position(|p| p.payload[2] & 0x40 != 0)
            .unwrap();
    assert!(out[gap..=end].iter().all(|p| p.payload[2] & 0x80 == 0));
    let (before, after) = (fu_data(&out[first..gap]), fu_data(&out[gap..=end]));
    assert!(idr[2..].starts_with(&before));
    assert!(idr[2..].ends_with(&after));
    let sent_before: usize = parsed[..lost]
        .iter()
        .rev()
        .take_while(|p| nal_type(p.payload[0]) == NAL_FU && p.payload[2] & 0x3F == 20)
        .map(|p| p.payload.len() - 3)
        .sum();
    assert_eq!(
        before.len(),
        sent_before / 1197 * 1197,
        "the tail is dropped"
    );
    // From the next NAL unit on, the camera's stream, unit for unit.
    let rest = nal_units(out[end + 1..].iter().map(|p| &*p.payload));
    let want = expected(&c);
    let at = want.iter().position(|n| *n == idr).unwrap() + 1;
    assert_eq!(rest, want[at..]);
}

#[test]
fn oversized_aggregation_packets_are_split() {
    let sets = "sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA/lZQJ;\
        sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA/oAoIDxZZWVKTC//AAEAAWoMDAwIAAAMAAgAAAwA8EA==;\
        sprop-pps=RAHAc8GJ";
    let mut relay = H265Relay::new(Some(sets), 60);
    let mut out = Vec::new();
    // AP [IDR_W_RADL (40 bytes), TRAIL_R (40 bytes)] in one packet of 86 bytes.
    let mut ap = vec![0x60, 0x01];
    for h0 in [0x26, 0x02] {
        ap.extend_from_slice(&[0, 40, h0, 0x01]);
        ap.extend(std::iter::repeat_n(0xAB, 38));
    }
    let raw = crate::rtp::RtpPacket {
        payload_type: 96,
        marker: true,
        sequence: 7,
        timestamp: 9000,
        ssrc: 1,
        payload: &ap,
    };
    let mut bytes = Vec::new();
    raw.write_to(&mut bytes);
    relay.push(&RtpPacket::parse(&bytes).unwrap(), &mut out);
    assert!(out.iter().all(|p| p.payload.len() <= 60));
    let nals = nal_units(out.iter().map(|p| &*p.payload));
    // The injected sets (split too: the AP of all three is 90 bytes), then both units.
    assert_eq!(types(&nals), [NAL_VPS, NAL_SPS, NAL_PPS, 19, 1]);
    assert!(out[0].keyframe_start && out.last().unwrap().marker);
}

trait Positions: Iterator + Sized {
    fn positions(self, f: impl Fn(&Self::Item) -> bool) -> impl Iterator<Item = usize> {
        self.enumerate().filter(move |(_, x)| f(x)).map(|(i, _)| i)
    }
}
impl<I: Iterator> Positions for I {}

#[test]
fn the_stream_info_names_the_profile_and_warns_of_b_frames() {
    use crate::media::{MediaKind, TrackInfo};
    use crate::video_relay::{VideoCodec, VideoRelay};
    let track = |name: &str, fmtp: String| TrackInfo {
        kind: MediaKind::Video,
        encoding: "H265".into(),
        payload_type: 96,
        clock_rate: 90_000,
        channels: None,
        fmtp: Some(fmtp),
        control: format!("rtsp://cam/{name}"),
    };
    let plain = VideoRelay::for_track(&track("a", capture("x265_zerolatency").fmtp), 1200).unwrap();
    assert_eq!(plain.describe(), "H265 Main L2.1 640x360");
    assert_eq!(plain.b_frames_warning(), None);
    assert_eq!(
        plain.codec(),
        VideoCodec::H265 {
            profile_tier_level: Some([1, 0, 63])
        }
    );
    let b = VideoRelay::for_track(&track("b", capture("x265_bframes").fmtp), 1200).unwrap();
    let warning = b.b_frames_warning().unwrap();
    assert!(
        warning.contains("H.265 has B-frames (2 reordered, B-pyramid)"),
        "{warning}"
    );
    // Decoding order numbers: no relay, and the reason.
    let don = track("c", "sprop-max-don-diff=4".into());
    assert!(VideoRelay::for_track(&don, 1200).is_none());
    assert!(VideoRelay::refusal(&don)
        .unwrap()
        .contains("decoding order"));
}

#[test]
fn the_relay_survives_mutated_camera_streams() {
    // The fuzz harness (testkit::fuzz::h265_relay: output invariants, and VPS/SPS/PPS before
    // every IRAP a joining viewer gets) on the committed seeds with random bytes changed.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/h265_relay");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert_eq!(seeds.len(), 3);
    let mut rng = camgate_testkit::Rng::new(265);
    for i in 0..3000 {
        let mut data = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.pick(8) {
            let at = rng.pick(data.len());
            data[at] = rng.next_u64() as u8;
        }
        camgate_testkit::fuzz::h265_relay(&data);
    }
}

#[test]
fn an_fu_claiming_start_and_end_becomes_the_single_nal_unit_it_is() {
    let mut relay = H265Relay::new(None, 1200);
    let mut out = Vec::new();
    // FU of a TRAIL_R (type 1) with S and E: payload header 62 01, FU header c1.
    let fu = [0x62, 0x01, 0xC1, 0xAA, 0xBB];
    let mut bytes = Vec::new();
    let pkt = crate::rtp::RtpPacket {
        payload_type: 96,
        marker: true,
        sequence: 1,
        timestamp: 0,
        ssrc: 1,
        payload: &fu,
    };
    pkt.write_to(&mut bytes);
    relay.push(&RtpPacket::parse(&bytes).unwrap(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].payload, &[0x02, 0x01, 0xAA, 0xBB]);
    assert!(out[0].marker);
}

/// Frames libavcodec decodes from an H.265 byte stream (GStreamer's avdec_h265), each as 8-bit
/// luma; `None` when GStreamer or the decoder is not installed (scripts/test.sh installs both).
fn decoded_frames(annex_b: &[u8], name: &str) -> Option<usize> {
    let dir = std::env::temp_dir().join(format!("camgate-h265-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.h265"), dir.join("out.gray"));
    std::fs::write(&input, annex_b).unwrap();
    let status = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc", &format!("location={}", input.display())])
        .args(["!", "h265parse", "!", "avdec_h265", "!", "videoconvert"])
        .args(["!", "video/x-raw,format=GRAY8", "!", "filesink"])
        .arg(format!("location={}", output.display()))
        .status()
        .ok()?;
    let size = std::fs::metadata(&output).map(|m| m.len() as usize);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status.success(), "gst-launch-1.0 failed: {status}");
    let frame = 640 * 360;
    let size = size.unwrap();
    assert_eq!(size % frame, 0, "{size} bytes are not whole 640x360 frames");
    Some(size / frame)
}

#[test]
fn a_real_decoder_decodes_the_relayed_stream_from_the_start_and_from_the_cra() {
    // The camera's stream through the relay at a 1200-byte MTU (every keyframe re-fragmented),
    // as a viewer from the first packet and one joining at the second keyframe (the CRA) get it.
    let c = capture("x265_zerolatency");
    let (_, out) = relay_all(&c, 1200);
    let cra = out.iter().rposition(|p| p.keyframe_start).unwrap();
    for (name, from, frames) in [("start", 0, 60), ("cra", cra, 30)] {
        let mut annex_b = Vec::new();
        for n in nal_units(out[from..].iter().map(|p| &*p.payload)) {
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(&n);
        }
        match decoded_frames(&annex_b, name) {
            Some(n) => assert_eq!(n, frames, "{name}: frames decoded"),
            None => eprintln!("gst-launch-1.0 with avdec_h265 is not installed: not decoded"),
        }
    }
}
