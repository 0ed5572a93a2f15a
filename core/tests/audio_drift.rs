//! Transcoding adds no drift: two minutes of a real AAC capture (looped, timestamps continued)
//! go through the audio relay, and the Opus output's timeline still matches the camera's to
//! within one 20 ms packet at the end.

use camgate_core::audio_relay::AudioRelay;
use camgate_core::media::{MediaKind, TrackInfo};
use camgate_core::rtp::RtpPacket;

fn capture(name: &str) -> (String, Vec<Vec<u8>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/audio");
    let meta = std::fs::read_to_string(dir.join(format!("{name}.meta"))).unwrap();
    let fmtp = meta
        .lines()
        .find_map(|l| l.strip_prefix("fmtp="))
        .unwrap()
        .to_owned();
    let rtp = std::fs::read(dir.join(format!("{name}.rtp"))).unwrap();
    let packets = camgate_testkit::capture::rfc4571_packets(&rtp);
    (fmtp, packets)
}

#[test]
fn two_minutes_of_aac_to_opus_keep_the_camera_timeline() {
    let (fmtp, packets) = capture("aac_hbr_48000_mono");
    let track = TrackInfo {
        kind: MediaKind::Audio,
        encoding: "MPEG4-GENERIC".into(),
        payload_type: 96,
        clock_rate: 48_000,
        channels: Some(1),
        fmtp: Some(fmtp),
        control: "rtsp://cam/audio".into(),
    };
    let mut relay = AudioRelay::new(&track).unwrap();
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let first = ts(&packets[0]);
    let step = ts(&packets[1]).wrapping_sub(first);
    // One loop of the capture lasts up to its last packet plus one packet.
    let loop_len = ts(packets.last().unwrap()).wrapping_sub(first) + step;
    let loops = (120 * 48_000) / loop_len + 1;
    let (mut out, mut all) = (Vec::new(), Vec::new());
    let mut seq = 0u16;
    let mut last_in = 0u32;
    for l in 0..loops {
        for p in &packets {
            let mut p = p.clone();
            seq = seq.wrapping_add(1);
            last_in = ts(&p).wrapping_add(l * loop_len);
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[4..8].copy_from_slice(&last_in.to_be_bytes());
            out.clear();
            relay.push(&RtpPacket::parse(&p).unwrap(), &mut out);
            all.extend(out.iter().map(|o| o.rtp_time));
        }
    }
    let input_secs = f64::from(last_in.wrapping_sub(first)) / 48_000.0;
    assert!(input_secs >= 120.0, "{input_secs} s fed");
    // Opus packets are 20 ms apart, exactly.
    assert!(
        all.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 960),
        "a gap or overlap in the output"
    );
    // And the last one carries audio from where the camera's timeline says it should.
    let last_out = *all.last().unwrap();
    let mapped = relay.input_time(last_out).unwrap();
    let drift_ms = f64::from(last_in.wrapping_sub(mapped) as i32) / 48.0;
    println!(
        "{input_secs:.1} s of AAC → {} Opus packets; end-of-run offset {drift_ms:.1} ms",
        all.len()
    );
    assert!(
        drift_ms.abs() <= 40.0,
        "the output drifted {drift_ms:.1} ms from the camera's clock"
    );
}
