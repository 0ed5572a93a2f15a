//! The cost of camera audio → Opus per stream: real captures (GStreamer-encoded test tones,
//! `core/tests/data/audio/`) looped with continuing timestamps through camgate's audio relay
//! for a minute of audio each, one thread, wall clock.

use std::path::Path;
use std::time::Instant;

use camgate_core::audio_relay::AudioRelay;
use camgate_core::media::{MediaKind, TrackInfo};
use camgate_core::rtp::RtpPacket;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TranscodeResult {
    pub capture: String,
    pub description: String,
    pub audio_secs: f64,
    /// Milliseconds of one core per second of camera audio.
    pub ms_per_audio_sec: f64,
}

const CAPTURES: [&str; 7] = [
    "aac_hbr_48000_mono",
    "aac_hbr_44100_mono",
    "aac_hbr_16000_mono",
    "aac_hbr_48000_stereo",
    "latm_44100_mono",
    "speex_wb",
    "speex_nb",
];

pub fn run(audio_secs: u32) -> Vec<TranscodeResult> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/audio");
    CAPTURES
        .iter()
        .filter_map(|name| measure(&dir, name, audio_secs))
        .collect()
}

fn measure(dir: &Path, name: &str, audio_secs: u32) -> Option<TranscodeResult> {
    let meta = std::fs::read_to_string(dir.join(format!("{name}.meta"))).ok()?;
    let field = |k: &str| {
        meta.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::to_owned)
    };
    let track = TrackInfo {
        kind: MediaKind::Audio,
        encoding: field("encoding=")?,
        payload_type: 96,
        clock_rate: field("clock_rate=")?.parse().ok()?,
        channels: field("channels=").and_then(|c| c.parse().ok()),
        fmtp: field("fmtp=").filter(|f| !f.is_empty()),
        control: String::new(),
    };
    let rtp = std::fs::read(dir.join(format!("{name}.rtp"))).ok()?;
    let packets = camgate_testkit::capture::rfc4571_packets(&rtp);
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let first = ts(packets.first()?);
    let step = ts(packets.get(1)?).wrapping_sub(first);
    let loop_len = ts(packets.last()?).wrapping_sub(first) + step;
    let loops = (audio_secs * track.clock_rate) / loop_len.max(1) + 1;
    let mut relay = AudioRelay::new(&track).ok()?;
    let mut out = Vec::new();
    let mut seq = 0u16;
    let started = Instant::now();
    for l in 0..loops {
        for p in &packets {
            let mut p = p.clone();
            seq = seq.wrapping_add(1);
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            let t = ts(&p).wrapping_add(l * loop_len);
            p[4..8].copy_from_slice(&t.to_be_bytes());
            out.clear();
            relay.push(&RtpPacket::parse(&p).ok()?, &mut out);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let secs = f64::from(loops * loop_len) / f64::from(track.clock_rate);
    Some(TranscodeResult {
        capture: name.to_owned(),
        description: relay.description().to_owned(),
        audio_secs: secs,
        ms_per_audio_sec: elapsed * 1000.0 / secs,
    })
}
