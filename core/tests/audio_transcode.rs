//! Camera audio → Opus, end to end on real encoded captures (core/tests/data/audio, made by generate.sh):
//! every capture is 1 s of a 1 kHz sine at -12 dBFS peak (-15.05 dBFS RMS). Each test transcodes the RTP
//! payloads, decodes the Opus back with libopus and measures the tone's frequency, level and purity.

use std::path::PathBuf;

use camgate_core::audio::{
    AudioError, AudioInput, OpusDecoder, OpusPacket, Transcoder, OPUS_FRAME,
};
use camgate_core::audio_relay::AudioRelay;
use camgate_core::media::{MediaKind, TrackInfo};
use camgate_core::rtp::RtpPacket;
use camgate_testkit::capture::rfc4571_packets;
use camgate_testkit::Rng;

struct Capture {
    track: TrackInfo,
    /// (RTP timestamp, marker, payload) per packet, in capture order.
    packets: Vec<(u32, bool, Vec<u8>)>,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/audio")
}

fn load(name: &str) -> Capture {
    let meta = std::fs::read_to_string(data_dir().join(format!("{name}.meta"))).unwrap();
    let field = |key: &str| {
        meta.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("")
            .to_string()
    };
    let fmtp = field("fmtp");
    let track = TrackInfo {
        kind: MediaKind::Audio,
        encoding: field("encoding"),
        payload_type: 96,
        clock_rate: field("clock_rate").parse().unwrap(),
        channels: field("channels").parse().ok(),
        fmtp: (!fmtp.is_empty()).then_some(fmtp),
        control: String::new(),
    };
    let bytes = std::fs::read(data_dir().join(format!("{name}.rtp"))).unwrap();
    let packets: Vec<(u32, bool, Vec<u8>)> = rfc4571_packets(&bytes)
        .iter()
        .map(|p| {
            let rtp = RtpPacket::parse(p).unwrap();
            (rtp.timestamp, rtp.marker, rtp.payload.to_vec())
        })
        .collect();
    assert!(!packets.is_empty(), "{name}: empty capture");
    Capture { track, packets }
}

fn transcode(t: &mut Transcoder, packets: &[(u32, bool, Vec<u8>)]) -> Vec<OpusPacket> {
    let mut out = Vec::new();
    for (ts, _, payload) in packets {
        t.push(*ts, payload, &mut out);
    }
    out
}

/// Decodes the Opus packets (checking their timestamps are contiguous) into one interleaved 48 kHz signal.
fn decode(packets: &[OpusPacket], channels: u16) -> Vec<f32> {
    let mut dec = OpusDecoder::new(channels).unwrap();
    let mut pcm = Vec::new();
    for w in packets.windows(2) {
        assert_eq!(
            w[1].rtp_time.wrapping_sub(w[0].rtp_time),
            OPUS_FRAME,
            "rtp_time must advance by 960"
        );
    }
    for p in packets {
        assert_eq!(p.samples, OPUS_FRAME);
        assert!(
            !p.payload.is_empty() && p.payload.len() < 400,
            "{} bytes",
            p.payload.len()
        );
        let n = dec.decode(&p.payload, &mut pcm).unwrap();
        assert_eq!(n, OPUS_FRAME as usize);
    }
    pcm
}

struct Tone {
    /// Frequency from interpolated zero crossings, Hz.
    freq: f64,
    /// RMS level, dBFS.
    level_db: f64,
    /// Power at `expected` Hz vs everything else, dB.
    snr_db: f64,
}

/// Measures channel `ch` of `pcm` over 0.5 s starting 0.25 s in (away from codec start-up and the end).
fn measure(pcm: &[f32], channels: usize, ch: usize, expected: f64) -> Tone {
    let x: Vec<f64> = pcm
        .iter()
        .skip(ch)
        .step_by(channels)
        .map(|&s| f64::from(s))
        .collect();
    assert!(x.len() >= 36000, "only {} samples decoded", x.len());
    let x = &x[12000..36000];
    let rate = 48000.0;
    // Zero crossings (rising), linearly interpolated.
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        if x[i - 1] < 0.0 && x[i] >= 0.0 {
            crossings.push((i - 1) as f64 + x[i - 1] / (x[i - 1] - x[i]));
        }
    }
    let freq = if crossings.len() >= 2 {
        (crossings.len() - 1) as f64 * rate / (crossings[crossings.len() - 1] - crossings[0])
    } else {
        0.0
    };
    let power: f64 = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    // Goertzel / single-bin DFT at the expected frequency (0.5 s holds a whole number of periods).
    let (mut re, mut im) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let w = 2.0 * std::f64::consts::PI * expected * i as f64 / rate;
        re += v * w.cos();
        im += v * w.sin();
    }
    let amplitude = 2.0 * (re * re + im * im).sqrt() / x.len() as f64;
    let tone_power = amplitude * amplitude / 2.0;
    Tone {
        freq,
        level_db: 10.0 * power.log10(),
        snr_db: 10.0 * (tone_power / (power - tone_power).max(1e-12)).log10(),
    }
}

const EXPECTED_DB: f64 = -15.05; // 0.25 peak sine

fn check_tone(name: &str, pcm: &[f32], channels: usize, ch: usize, expected: f64) -> Tone {
    let t = measure(pcm, channels, ch, expected);
    eprintln!(
        "{name} ch{ch}: {:.2} Hz, {:.2} dBFS (expected {EXPECTED_DB}), tone/rest {:.1} dB",
        t.freq, t.level_db, t.snr_db
    );
    assert!(
        (t.freq - expected).abs() < expected * 0.005,
        "{name}: frequency {:.2} Hz",
        t.freq
    );
    assert!(
        (t.level_db - EXPECTED_DB).abs() < 2.0,
        "{name}: level {:.2} dBFS",
        t.level_db
    );
    assert!(
        t.snr_db > 20.0,
        "{name}: tone only {:.1} dB above the rest",
        t.snr_db
    );
    t
}

/// Transcodes a capture and checks the 1 kHz tone (and, for stereo captures, 500 Hz on the right).
fn run(name: &str) -> (Transcoder, Vec<OpusPacket>) {
    let cap = load(name);
    run_track(name, &cap.track, &cap.packets)
}

/// `run` for a track and packets the test made (e.g. a capture relabelled).
fn run_track(
    name: &str,
    track: &TrackInfo,
    packets: &[(u32, bool, Vec<u8>)],
) -> (Transcoder, Vec<OpusPacket>) {
    let cap = Capture {
        track: track.clone(),
        packets: packets.to_vec(),
    };
    let input = AudioInput::from_track(&cap.track).unwrap();
    let mut t = Transcoder::new(input).unwrap();
    let start = std::time::Instant::now();
    let out = transcode(&mut t, &cap.packets);
    let took = start.elapsed();
    let channels = t.output_channels();
    eprintln!(
        "{name}: {} packets in, {} Opus packets out, {took:?} wall time to transcode 1 s of audio",
        cap.packets.len(),
        out.len(),
    );
    // 1 s of input: 50 packets of 20 ms minus what the filters hold back (and AAC's last partial frame);
    // avenc_aac sends one 1024-sample frame more (its priming), 17 AUs at 16 kHz: 54 packets.
    assert!(
        (44..=55).contains(&out.len()),
        "{name}: {} Opus packets",
        out.len()
    );
    // Output timestamps start where the first input timestamp maps to, less the small filter delay.
    let first_in = u64::from(cap.packets[0].0);
    let mapped = (first_in * 48000 / u64::from(cap.track.clock_rate)) as u32;
    let lead = mapped.wrapping_sub(out[0].rtp_time);
    assert!(
        lead < 48 * 15,
        "{name}: first rtp_time {} is {lead} samples before the mapped input",
        out[0].rtp_time
    );
    let pcm = decode(&out, channels);
    check_tone(name, &pcm, usize::from(channels), 0, 1000.0);
    if channels == 2 {
        check_tone(name, &pcm, 2, 1, 500.0);
    }
    let s = t.stats();
    assert_eq!(
        (
            s.malformed_packets,
            s.decode_errors,
            s.lost_fragments,
            s.late_frames,
            s.reanchors
        ),
        (0, 0, 0, 0, 0),
        "{name}: {s:?}"
    );
    (t, out)
}

#[test]
fn audio_aac_hbr_all_camera_rates() {
    for rate in [8000, 11025, 16000, 22050, 44100, 48000] {
        let (t, _) = run(&format!("aac_hbr_{rate}_mono"));
        assert_eq!(t.output_channels(), 1);
    }
}

#[test]
fn audio_aac_hbr_fragmented_aus() {
    let cap = load("aac_hbr_48000_mono_frag");
    let (t, _) = run("aac_hbr_48000_mono_frag");
    // More packets than AUs: fragments were joined.
    assert!(
        cap.packets.len() as u64 > t.stats().frames_decoded,
        "{:?}",
        t.stats()
    );

    // Lose one middle fragment: that AU is dropped (counted), the rest still decodes, silence fills the hole.
    let mut lossy = cap.packets.clone();
    let victim = (10..lossy.len() - 1)
        .find(|&i| lossy[i].0 == lossy[i + 1].0)
        .unwrap();
    lossy.remove(victim); // the first fragment of an AU
    let mut t = Transcoder::new(AudioInput::from_track(&cap.track).unwrap()).unwrap();
    let out = transcode(&mut t, &lossy);
    let s = t.stats();
    assert_eq!(s.lost_fragments, 1, "{s:?}");
    assert_eq!(s.gaps_filled, 1, "{s:?}");
    decode(&out, 1);
}

#[test]
fn audio_aac_hbr_several_aus_per_packet() {
    // Re-packetize pairs of single-AU packets as one RFC 3640 packet with two AU headers.
    let cap = load("aac_hbr_44100_mono");
    let mut packets = Vec::new();
    for pair in cap.packets.chunks(2) {
        let mut headers = Vec::new();
        let mut aus = Vec::new();
        for (_, _, p) in pair {
            assert_eq!(&p[..2], &[0, 16]);
            let size = usize::from(u16::from_be_bytes([p[2], p[3]]) >> 3);
            assert_eq!(size, p.len() - 4);
            headers.extend_from_slice(&((size as u16) << 3).to_be_bytes()); // index(-delta) 0
            aus.extend_from_slice(&p[4..]);
        }
        let mut payload = ((headers.len() * 8) as u16).to_be_bytes().to_vec();
        payload.extend(headers);
        payload.extend(aus);
        packets.push((pair[0].0, true, payload));
    }
    let mut t = Transcoder::new(AudioInput::from_track(&cap.track).unwrap()).unwrap();
    let out = transcode(&mut t, &packets);
    assert_eq!(t.stats().frames_decoded, cap.packets.len() as u64);
    assert_eq!(t.stats().gaps_filled, 0);
    let pcm = decode(&out, 1);
    check_tone("aac_hbr_44100 2 AUs/packet", &pcm, 1, 0, 1000.0);
}

#[test]
fn audio_aac_hbr_stereo_keeps_channels_apart() {
    let (t, _) = run("aac_hbr_48000_stereo");
    assert_eq!(t.output_channels(), 2);
}

#[test]
fn audio_latm() {
    run("latm_44100_mono");
    let (t, _) = run("latm_48000_stereo");
    assert_eq!(
        t.output_channels(),
        2,
        "channels come from the StreamMuxConfig, not the SDP"
    );
    let cap = load("latm_16000_mono_frag");
    let (t, _) = run("latm_16000_mono_frag");
    assert!(cap.packets.len() as u64 > t.stats().frames_decoded);
}

#[test]
fn audio_aac_from_libavcodec() {
    // avenc_aac's AudioSpecificConfig `140856e500` ends in the sync extension 0x2b7 (AOT 5, sbrPresentFlag 0):
    // plain AAC-LC. Over LATM (`40002810adca00`) the extension must not be read as frameLengthType 2
    // (which would refuse the stream).
    for name in ["aac_hbr_avenc_16000_mono", "latm_avenc_16000_mono"] {
        let (t, _) = run(name);
        assert_eq!(t.output_channels(), 1);
        assert_eq!(t.note(), None, "{name}: AAC-LC is decoded whole");
    }
}

/// HE-AAC frames are AAC-LC frames plus SBR (and PS) data in fill elements, which the AAC-LC decoder skips.
/// Debian has no HE-AAC encoder (fdk-aac is non-free), so voaacenc's 22.05 kHz AAC-LC frames stand in for an
/// HE-AAC stream's core: labelled with the configs of HE-AAC at 44.1 kHz over a 22.05 kHz mono core (explicit
/// AOT 5 as fdk-aac writes it, AOT 29, and backward-compatible 0x2b7), on the 44.1 kHz RTP clock such a camera
/// uses (2048 ticks per access unit), in both payload formats.
#[test]
fn audio_he_aac_plays_its_aac_lc_core() {
    let cap = load("aac_hbr_22050_mono");
    let first = cap.packets[0].0;
    let generic = |config: &str| {
        format!("mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={config}")
    };
    let latm = |config: &str| format!("cpresent=0;config={config}");
    let cases = [
        ("MPEG4-GENERIC", generic("2b8a0800"), "HE-AAC (SBR)"),
        ("MPEG4-GENERIC", generic("eb8a0800"), "HE-AAC v2 (SBR+PS)"),
        ("MPEG4-GENERIC", generic("138856e5a0"), "HE-AAC (SBR)"),
        // The same configs in StreamMuxConfigs, as GStreamer's rtpmp4apay writes them.
        ("MP4A-LATM", latm("400057141000"), "HE-AAC (SBR)"),
        ("MP4A-LATM", latm("4001d7141000"), "HE-AAC v2 (SBR+PS)"),
        ("MP4A-LATM", latm("40002710adcb40"), "HE-AAC (SBR)"),
    ];
    for (encoding, fmtp, profile) in cases {
        let name = format!("{encoding} {fmtp}");
        let track = TrackInfo {
            encoding: encoding.into(),
            clock_rate: 44100,
            fmtp: Some(fmtp),
            ..cap.track.clone()
        };
        let packets: Vec<_> = cap
            .packets
            .iter()
            .map(|(ts, marker, p)| {
                let ts = first.wrapping_add(ts.wrapping_sub(first).wrapping_mul(2));
                let payload = if encoding == "MP4A-LATM" {
                    // One AU per RFC 3640 packet here: PayloadLengthInfo (0xFF runs, then the rest) + the AU.
                    assert_eq!(&p[..2], &[0, 16]);
                    let au = &p[4..];
                    let mut v = vec![0xFF; au.len() / 255];
                    v.push((au.len() % 255) as u8);
                    v.extend_from_slice(au);
                    v
                } else {
                    p.clone()
                };
                (ts, *marker, payload)
            })
            .collect();
        let relay = AudioRelay::new(&track).unwrap();
        let info = format!("{profile}, decoding its AAC-LC core at 22050 Hz mono");
        assert!(
            relay.description().contains(&info),
            "{name}: {}",
            relay.description()
        );
        let (t, _) = run_track(&name, &track, &packets);
        assert_eq!(t.output_channels(), 1);
    }
}

#[test]
fn audio_speex_narrowband_and_wideband() {
    run("speex_nb");
    run("speex_wb");
    let (t, _) = run("speex_nb_2frames");
    let cap = load("speex_nb_2frames");
    assert_eq!(t.stats().frames_decoded, 2 * cap.packets.len() as u64);
}

#[test]
fn audio_g711_transcoded() {
    run("pcmu_8000");
    run("pcma_8000");
}

#[test]
fn audio_packet_loss_is_filled_and_timestamps_stay_on_the_input_clock() {
    let cap = load("aac_hbr_44100_mono");
    let mut lossy = cap.packets.clone();
    lossy.remove(20);
    lossy.remove(30);
    let mut t = Transcoder::new(AudioInput::from_track(&cap.track).unwrap()).unwrap();
    let out = transcode(&mut t, &lossy);
    assert_eq!(t.stats().gaps_filled, 2);
    decode(&out, 1); // contiguous rtp_time
                     // Same number of output packets as without loss: the holes became silence, not a shift.
    let mut t2 = Transcoder::new(AudioInput::from_track(&cap.track).unwrap()).unwrap();
    assert_eq!(out.len(), transcode(&mut t2, &cap.packets).len());
}

#[test]
fn audio_timestamps_wrap_and_never_drift() {
    // PCMU, 20 s starting 5 s before the 32-bit timestamp wraps: rtp_time stays contiguous, and after N ms of
    // input exactly N × 48 samples have been stamped.
    let cap = load("pcmu_8000");
    let track = cap.track.clone();
    let mut t = Transcoder::new(AudioInput::from_track(&track).unwrap()).unwrap();
    let mut out = Vec::new();
    let start = u32::MAX - 5 * 8000;
    let payload = &cap.packets[10].2;
    assert_eq!(payload.len(), 160);
    for i in 0..1000u32 {
        t.push(start.wrapping_add(i * 160), payload, &mut out);
    }
    assert_eq!(t.stats().reanchors, 0);
    for w in out.windows(2) {
        assert_eq!(w[1].rtp_time.wrapping_sub(w[0].rtp_time), 960);
    }
    // 1000 packets = 20 s in; out is 20 s less the filter hold-back (< 1 frame).
    assert!(out.len() == 999 || out.len() == 1000, "{}", out.len());
    let first = out[0].rtp_time;
    let expected_first = (u64::from(start) * 6) as u32;
    assert!(expected_first.wrapping_sub(first) < 1000);
}

#[test]
fn audio_unsupported_streams_are_refused_with_a_reason() {
    let track = |encoding: &str, fmtp: &str| TrackInfo {
        kind: MediaKind::Audio,
        encoding: encoding.into(),
        payload_type: 96,
        clock_rate: 48000,
        channels: Some(2),
        fmtp: Some(fmtp.into()),
        control: String::new(),
    };
    let err = |t: TrackInfo| -> AudioError {
        match AudioInput::from_track(&t).and_then(Transcoder::new) {
            Ok(_) => panic!("{t:?} accepted"),
            Err(e) => e,
        }
    };
    // HE-AAC over an AAC Main core (AOT 5, then AOT 1): the core is not AAC-LC.
    let e = err(track("MPEG4-GENERIC", "streamtype=5;profile-level-id=44;mode=AAC-hbr;config=2b098400;sizelength=13;indexlength=3;indexdeltalength=3"));
    assert!(matches!(e, AudioError::Unsupported(_)));
    let text = e.to_string();
    eprintln!("{text}");
    assert!(text.contains("HE-AAC") && text.contains("AAC-LC"), "{text}");
    // xHE-AAC (USAC, escaped object type 42) via LATM.
    let e = err(track("MP4A-LATM", "cpresent=0;config=4001f28c80"));
    assert!(e.to_string().contains("xHE-AAC"), "{e}");
    // 5.1 AAC-LC.
    let e = err(track("MPEG4-GENERIC", "mode=AAC-hbr;config=11B0"));
    assert!(e.to_string().contains("5.1"), "{e}");
    // AAC Main.
    let e = err(track("MPEG4-GENERIC", "mode=AAC-hbr;config=0990"));
    assert!(e.to_string().contains("AAC Main"), "{e}");
    // In-band LATM config.
    let e = err(track("MP4A-LATM", "cpresent=1"));
    assert!(e.to_string().contains("cpresent"), "{e}");
    // Garbage config.
    assert!(matches!(
        err(track("MPEG4-GENERIC", "mode=AAC-hbr;config=zz")),
        AudioError::InvalidConfig(_)
    ));
    assert!(matches!(
        err(track("MPEG4-GENERIC", "mode=AAC-hbr;config=12")),
        AudioError::InvalidConfig(_)
    ));
    // Speex at a non-Speex rate.
    assert!(matches!(
        err(track("SPEEX", "")),
        AudioError::Unsupported(_)
    ));
}

#[test]
fn audio_garbage_never_panics() {
    let mut rng = Rng::new(7);
    for name in [
        "aac_hbr_44100_mono",
        "latm_44100_mono",
        "speex_nb",
        "speex_wb",
        "pcma_8000",
        "g722_16000",
        "l16_48000_stereo",
    ] {
        let cap = load(name);
        let mut t = Transcoder::new(AudioInput::from_track(&cap.track).unwrap()).unwrap();
        let mut out = Vec::new();
        let mut ts = 0u32;
        for i in 0..400 {
            let len = usize::from((rng.next_u64() >> 56) as u8) * (1 + i % 3);
            let mut payload: Vec<u8> = rng.bytes(len);
            if i % 4 == 0 {
                // Keep a plausible AU header so the garbage reaches the decoder.
                let real = &cap.packets[i % cap.packets.len()].2;
                let n = real.len().min(4).min(payload.len());
                payload[..n].copy_from_slice(&real[..n]);
            }
            ts = ts.wrapping_add(if i % 50 == 0 {
                u32::from((rng.next_u64() >> 56) as u8)
            } else {
                1024
            });
            t.push(ts, &payload, &mut out);
        }
        // Real packets after the garbage still come through.
        let before = out.len();
        let base = ts.wrapping_add(10_000_000);
        let first = cap.packets[0].0;
        for (pts, _, p) in &cap.packets {
            t.push(base.wrapping_add(pts.wrapping_sub(first)), p, &mut out);
        }
        let s = t.stats();
        eprintln!("{name}: {s:?}");
        assert!(
            out.len() - before >= 40,
            "{name}: {} packets after garbage",
            out.len() - before
        );
        assert!(s.malformed_packets + s.decode_errors > 0, "{name}: {s:?}");
    }
}

#[test]
fn audio_g722_decoded_at_16_khz_on_its_8000_hz_clock() {
    // rtpg722pay stamps 16 kHz audio on an 8000 Hz clock (RFC 3551): the tone must come out at 1 kHz
    // (not 2 kHz or 500 Hz) and 1 s in must give 1 s out.
    let cap = load("g722_16000");
    assert_eq!(
        (cap.track.encoding.as_str(), cap.track.clock_rate),
        ("G722", 8000)
    );
    let (t, out) = run("g722_16000");
    assert_eq!(t.output_channels(), 1);
    assert_eq!(t.stats().frames_decoded, cap.packets.len() as u64);
    // The output clock follows the input's: 8000 Hz ticks × 6 = 48 kHz ticks.
    let span_in = cap.packets.last().unwrap().0.wrapping_sub(cap.packets[0].0);
    let span_out = out.last().unwrap().rtp_time.wrapping_sub(out[0].rtp_time);
    assert!(
        (i64::from(span_out) - i64::from(span_in) * 6).abs() <= i64::from(OPUS_FRAME),
        "in {span_in} ticks at 8 kHz, out {span_out} ticks at 48 kHz"
    );
}

#[test]
fn audio_l16_mono_and_stereo() {
    run("l16_8000_mono");
    run("l16_16000_mono");
    let (t, _) = run("l16_48000_stereo");
    assert_eq!(t.output_channels(), 2);
    // A payload cut mid-sample is counted as malformed, never decoded.
    let cap = load("l16_48000_stereo");
    let mut t = Transcoder::new(AudioInput::from_track(&cap.track).unwrap()).unwrap();
    let mut out = Vec::new();
    t.push(cap.packets[0].0, &cap.packets[0].2[..6], &mut out);
    assert_eq!(t.stats().malformed_packets, 1);
    assert_eq!(t.stats().frames_decoded, 0);
}
