//! Camera audio → Opus for browsers (sans-IO: no threads, no clock reads; time comes from RTP timestamps).
//!
//! Browsers decode Opus, PCMU, PCMA and G.722 over WebRTC but not AAC, Speex or L16, which IP cameras send. A
//! [`Transcoder`] takes the camera's RTP payloads one by one ([`Transcoder::push`]) and appends finished 20 ms
//! Opus packets:
//!
//! ```text
//! RTP payload ─ depacketize ─ decode ──────── timeline ──── resample ──── Opus encode ─▶ OpusPacket
//!   RFC 3640 AU headers       AAC-LC (symphonia)  gaps → silence  any rate → 48 kHz   20 ms, 32/64 kbit/s
//!   RFC 6416 LATM             Speex (libspeex)    jumps → re-anchor (polyphase FIR)   (libopus)
//!   RFC 5574 Speex frames     G.711 (tables)
//!   RFC 3551 G.722, L16       G.722 (libspandsp), L16 (big-endian PCM)
//! ```
//!
//! Timestamps: the first input timestamp is mapped to the 48 kHz clock and every Opus packet's `rtp_time` is that
//! anchor plus the samples emitted since, so the output clock advances exactly with the camera's audio clock (no
//! drift, however long the stream). Lost packets are filled with silence so later packets keep their place; a
//! jump of more than one second (or a camera restart) re-anchors. The anchor is moved back by the resampler's and
//! the Opus encoder's delay, so a sound keeps the instant the camera stamped on it (lip sync with video).
//!
//! G.711 at 8 kHz mono and G.722 are best relayed untouched when the browser offers them: see
//! [`AudioInput::needs_transcoding`].
//! Garbage never panics: malformed payloads are dropped and counted in [`AudioStats`].

mod aac;
mod bits;
pub mod ffi;
mod g711;
mod input;
mod resample;

use std::fmt;

use aac::{AacDecoder, Latm, Rfc3640, AAC_FRAME};
use ffi::g722::G722Decoder;
use ffi::opus::OpusEncoder;
use ffi::speex::SpeexDecoder;
use resample::Resampler;

pub use ffi::opus::OpusDecoder;
pub use input::*;

/// Opus RTP clock rate (RFC 7587) and the rate everything is resampled to.
pub const OPUS_RATE: u32 = 48000;
/// Samples per channel in each emitted Opus packet (20 ms at 48 kHz).
pub const OPUS_FRAME: u32 = 960;
/// Opus encoder complexity: 5 of 10 keeps a 20 ms mono frame well under a millisecond on small ARM boxes.
const OPUS_COMPLEXITY: i32 = 5;
/// Opus encoder lookahead at 48 kHz (2.5 ms + 4 ms delay compensation), in samples.
const OPUS_LOOKAHEAD: u32 = 312;

/// One 20 ms Opus packet for the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// The encoded Opus frame, the RTP payload as is.
    pub payload: Vec<u8>,
    /// RTP timestamp at 48 kHz, derived from the camera's timestamps (see the module docs).
    pub rtp_time: u32,
    /// Samples per channel at 48 kHz (960 for what the transcoder encodes).
    pub samples: u32,
}

/// Counters of a [`Transcoder`], for metrics and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AudioStats {
    /// Payloads given to [`Transcoder::push`].
    pub packets_in: u64,
    /// Decoded codec frames (AAC access units, Speex frames, G.711, G.722 and L16 packets).
    pub frames_decoded: u64,
    /// Opus packets emitted.
    pub opus_packets: u64,
    /// Payloads that could not be parsed (truncated headers, sizes past the end, ...), dropped.
    pub malformed_packets: u64,
    /// Frames the decoder rejected, dropped.
    pub decode_errors: u64,
    /// Fragmented AUs / LATM elements that never completed, dropped.
    pub lost_fragments: u64,
    /// Frames stamped before the current position (duplicates, reordering), dropped.
    pub late_frames: u64,
    /// Timestamp gaps under a second filled with silence.
    pub gaps_filled: u64,
    /// 48 kHz samples of silence inserted for those gaps.
    pub silence_samples: u64,
    /// Timestamp jumps of more than a second (either way): the output timeline restarted there.
    pub reanchors: u64,
}

enum AacDepacketizer {
    Generic(Rfc3640),
    Latm(Latm),
}

enum Decoder {
    G711 {
        a_law: bool,
    },
    Aac {
        depack: AacDepacketizer,
        dec: Box<AacDecoder>,
    },
    Speex(SpeexDecoder),
    G722(G722Decoder),
    L16,
}

/// Everything after the decoder: timeline, resampler, Opus encoder.
struct Pipeline {
    clock_rate: u32,
    /// Sample rate of decoded audio (AAC's own rate may differ from the RTP clock rate).
    decoded_rate: u32,
    channels: usize,
    anchored: bool,
    in_anchor: u32,
    /// Decoded samples per channel fed since the anchor (including silence for gaps).
    in_pos: u64,
    out_anchor: u32,
    out_emitted: u64,
    /// Output delay of resampler + encoder at 48 kHz, subtracted from the anchor.
    delay: u32,
    resampler: Resampler,
    pcm48: Vec<f32>,
    silence: Vec<f32>,
    encoder: OpusEncoder,
}

impl Pipeline {
    fn anchor(&mut self, ts: u32) {
        self.resampler.reset();
        self.pcm48.clear();
        self.anchored = true;
        self.in_anchor = ts;
        self.in_pos = 0;
        let mapped = (u64::from(ts) * u64::from(OPUS_RATE) / u64::from(self.clock_rate)) as u32;
        self.out_anchor = mapped.wrapping_sub(self.delay);
        self.out_emitted = 0;
    }

    /// Input position (RTP clock units) of the next expected sample.
    fn expected_ts(&self) -> u32 {
        let elapsed =
            self.in_pos as u128 * u128::from(self.clock_rate) / u128::from(self.decoded_rate);
        self.in_anchor.wrapping_add(elapsed as u32)
    }

    /// Takes one decoded frame (interleaved) stamped `ts` in the input clock.
    fn frame(&mut self, ts: u32, pcm: &[f32], stats: &mut AudioStats, out: &mut Vec<OpusPacket>) {
        let frames = pcm.len() / self.channels;
        if frames == 0 {
            return;
        }
        stats.frames_decoded += 1;
        if !self.anchored {
            self.anchor(ts);
        } else {
            let diff = i64::from(ts.wrapping_sub(self.expected_ts()) as i32);
            let tolerance = i64::from((self.clock_rate / 100).max(1)); // 10 ms
            if diff.abs() > i64::from(self.clock_rate) {
                stats.reanchors += 1;
                self.anchor(ts);
            } else if diff > tolerance {
                let gap = (diff as u64 * u64::from(self.decoded_rate) / u64::from(self.clock_rate))
                    as usize;
                stats.gaps_filled += 1;
                stats.silence_samples +=
                    gap as u64 * u64::from(OPUS_RATE) / u64::from(self.decoded_rate);
                self.silence.clear();
                self.silence.resize(gap * self.channels, 0.0);
                self.resampler.process(&self.silence, &mut self.pcm48);
                self.in_pos += gap as u64;
                self.encode(stats, out);
            } else if diff < -tolerance {
                stats.late_frames += 1;
                return;
            }
        }
        self.resampler
            .process(&pcm[..frames * self.channels], &mut self.pcm48);
        self.in_pos += frames as u64;
        self.encode(stats, out);
    }

    fn encode(&mut self, stats: &mut AudioStats, out: &mut Vec<OpusPacket>) {
        let chunk = OPUS_FRAME as usize * self.channels;
        let mut start = 0;
        while self.pcm48.len() - start >= chunk {
            let mut payload = Vec::new();
            if self
                .encoder
                .encode(&self.pcm48[start..start + chunk], &mut payload)
                .is_ok()
            {
                out.push(OpusPacket {
                    payload,
                    rtp_time: self.out_anchor.wrapping_add(self.out_emitted as u32),
                    samples: OPUS_FRAME,
                });
                stats.opus_packets += 1;
            } else {
                stats.decode_errors += 1;
            }
            self.out_emitted += u64::from(OPUS_FRAME);
            start += chunk;
        }
        self.pcm48.drain(..start);
    }
}

enum Mode {
    /// Opus from the camera: forwarded as is.
    Passthrough,
    Transcode {
        decoder: Decoder,
        pipeline: Box<Pipeline>,
    },
}

/// Turns one camera audio track into 20 ms Opus packets. See the module docs.
pub struct Transcoder {
    mode: Mode,
    scratch: Vec<f32>,
    stats: AudioStats,
    out_channels: u16,
    /// What is decoded when it is not the whole stream (HE-AAC's core), for the stream info.
    note: Option<String>,
}

impl fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcoder")
            .field("out_channels", &self.out_channels)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Transcoder {
    /// Builds the decoder, resampler and Opus encoder for `input`, or says why this stream cannot be handled.
    pub fn new(input: AudioInput) -> Result<Transcoder, AudioError> {
        let clock_rate = input.clock_rate;
        if clock_rate == 0 {
            return Err(AudioError::InvalidConfig("clock rate 0".into()));
        }
        let mut note = None;
        let (decoder, decoded_rate, channels) = match &input.codec {
            AudioCodec::Opus => {
                return Ok(Transcoder {
                    mode: Mode::Passthrough,
                    scratch: Vec::new(),
                    stats: AudioStats::default(),
                    out_channels: input.channels.clamp(1, 2),
                    note: None,
                })
            }
            AudioCodec::Pcmu | AudioCodec::Pcma => {
                if input.channels > 2 {
                    return Err(AudioError::Unsupported(format!(
                        "G.711 with {} channels",
                        input.channels
                    )));
                }
                (
                    Decoder::G711 {
                        a_law: input.codec == AudioCodec::Pcma,
                    },
                    clock_rate,
                    input.channels.max(1),
                )
            }
            AudioCodec::Speex => {
                if input.channels != 1 {
                    return Err(AudioError::Unsupported(
                        "Speex with more than one channel".into(),
                    ));
                }
                (
                    Decoder::Speex(SpeexDecoder::new(clock_rate)?),
                    clock_rate,
                    1,
                )
            }
            AudioCodec::G722 => {
                if input.channels != 1 {
                    return Err(AudioError::Unsupported(format!(
                        "G.722 with {} channels",
                        input.channels
                    )));
                }
                // 16 kHz audio; the RTP clock (normally 8000 Hz) only stamps it.
                (Decoder::G722(G722Decoder::new()?), 16000, 1)
            }
            AudioCodec::L16 => {
                if input.channels > 2 {
                    return Err(AudioError::Unsupported(format!(
                        "L16 with {} channels",
                        input.channels
                    )));
                }
                (Decoder::L16, clock_rate, input.channels.max(1))
            }
            AudioCodec::Aac { config, mode } => {
                let (cfg, depack) = match mode {
                    AacPacketization::Mpeg4Generic {
                        size_length,
                        index_length,
                        index_delta_length,
                    } => {
                        let cfg = aac::parse_generic_config(config)?;
                        let au = au_duration(clock_rate, cfg.sample_rate);
                        let d = Rfc3640::new(*size_length, *index_length, *index_delta_length, au);
                        (cfg, AacDepacketizer::Generic(d))
                    }
                    AacPacketization::Latm => {
                        let (cfg, sub_frames) = aac::parse_stream_mux_config(config)?;
                        let au = au_duration(clock_rate, cfg.sample_rate);
                        (cfg, AacDepacketizer::Latm(Latm::new(sub_frames, au)))
                    }
                };
                let dec = Box::new(AacDecoder::new(cfg)?);
                note = cfg.note();
                (Decoder::Aac { depack, dec }, cfg.sample_rate, cfg.channels)
            }
        };
        if !(4000..=96000).contains(&decoded_rate) {
            return Err(AudioError::Unsupported(format!(
                "audio at {decoded_rate} Hz is not supported"
            )));
        }
        let resampler = Resampler::new(decoded_rate, OPUS_RATE, usize::from(channels))?;
        let bitrate = if channels == 2 { 64000 } else { 32000 };
        let encoder = OpusEncoder::new(channels, bitrate, OPUS_COMPLEXITY)?;
        let filter_delay = resampler.delay_out();
        let pipeline = Box::new(Pipeline {
            clock_rate,
            decoded_rate,
            channels: usize::from(channels),
            anchored: false,
            in_anchor: 0,
            in_pos: 0,
            out_anchor: 0,
            out_emitted: 0,
            delay: filter_delay + OPUS_LOOKAHEAD,
            resampler,
            pcm48: Vec::new(),
            silence: Vec::new(),
            encoder,
        });
        Ok(Transcoder {
            mode: Mode::Transcode { decoder, pipeline },
            scratch: Vec::new(),
            stats: AudioStats::default(),
            out_channels: channels,
            note,
        })
    }

    /// What is decoded when it is not the whole stream, e.g. "HE-AAC (SBR), decoding its AAC-LC core at 24000 Hz
    /// mono"; `None` when the whole stream is.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The input (camera) RTP timestamp whose audio an output packet stamped `out_ts` carries,
    /// so the output can be placed on the camera's wallclock (lip sync). None until the first
    /// packet anchored the timeline; passthrough maps 1:1.
    pub fn input_time(&self, out_ts: u32) -> Option<u32> {
        match &self.mode {
            Mode::Passthrough => Some(out_ts),
            Mode::Transcode { pipeline: p, .. } => {
                if !p.anchored {
                    return None;
                }
                // The input at `in_anchor` comes out at `out_anchor + delay` (see `anchor`).
                let offset =
                    i64::from(out_ts.wrapping_sub(p.out_anchor.wrapping_add(p.delay)) as i32);
                let input = offset * i64::from(p.clock_rate) / i64::from(OPUS_RATE);
                Some(p.in_anchor.wrapping_add(input as i32 as u32))
            }
        }
    }

    /// Channels of the Opus output (1 or 2): signal `stereo=1` in the browser's SDP when 2.
    pub fn output_channels(&self) -> u16 {
        self.out_channels
    }

    /// A copy of the counters, for metrics and logs.
    pub fn stats(&self) -> AudioStats {
        self.stats
    }

    /// Feed one camera RTP packet (payload + its RTP timestamp at the input clock rate). Appends finished 20 ms
    /// Opus packets to `out` (zero, one or several per call).
    ///
    /// Packets must come in sequence order (after any jitter buffer). The marker bit is not needed: fragmented
    /// AAC access units are reassembled from their AU size and timestamp, and an unfinished one is dropped when
    /// the timestamp moves on. Output is stamped on the 48 kHz clock derived from `rtp_timestamp`.
    pub fn push(&mut self, rtp_timestamp: u32, payload: &[u8], out: &mut Vec<OpusPacket>) {
        let Transcoder {
            mode,
            scratch,
            stats,
            ..
        } = self;
        stats.packets_in += 1;
        let (decoder, pipeline) = match mode {
            Mode::Passthrough => {
                match ffi::opus::packet_samples(payload) {
                    Some(samples) => {
                        stats.opus_packets += 1;
                        out.push(OpusPacket {
                            payload: payload.to_vec(),
                            rtp_time: rtp_timestamp,
                            samples,
                        });
                    }
                    None => stats.malformed_packets += 1,
                }
                return;
            }
            Mode::Transcode { decoder, pipeline } => (decoder, pipeline),
        };
        match decoder {
            Decoder::G711 { a_law } => {
                if payload.is_empty() {
                    stats.malformed_packets += 1;
                    return;
                }
                scratch.clear();
                g711::decode(*a_law, payload, scratch);
                pipeline.frame(rtp_timestamp, scratch, stats, out);
            }
            Decoder::G722(dec) => {
                scratch.clear();
                if dec.decode(payload, scratch) {
                    pipeline.frame(rtp_timestamp, scratch, stats, out);
                } else {
                    stats.malformed_packets += 1;
                }
            }
            Decoder::L16 => {
                // Whole sample frames only: a payload cut mid-frame is not L16 of this channel count.
                let frame_bytes = 2 * pipeline.channels;
                if payload.is_empty() || !payload.len().is_multiple_of(frame_bytes) {
                    stats.malformed_packets += 1;
                    return;
                }
                scratch.clear();
                scratch.extend(
                    payload
                        .chunks_exact(2)
                        .map(|b| f32::from(i16::from_be_bytes([b[0], b[1]])) / 32768.0),
                );
                pipeline.frame(rtp_timestamp, scratch, stats, out);
            }
            Decoder::Speex(dec) => {
                let step = dec.frame_size() as u32;
                let mut ts = rtp_timestamp;
                let ok = dec.decode(payload, &mut |pcm| {
                    pipeline.frame(ts, pcm, stats, out);
                    ts = ts.wrapping_add(step);
                });
                if !ok {
                    stats.decode_errors += 1;
                }
            }
            Decoder::Aac { depack, dec } => {
                let mut errors = 0u64;
                let mut emit = |ts: u32, au: &[u8]| {
                    if dec.decode(au, scratch) {
                        pipeline.frame(ts, scratch, stats, out);
                    } else {
                        errors += 1;
                    }
                };
                let res = match depack {
                    AacDepacketizer::Generic(d) => d.push(rtp_timestamp, payload, &mut emit),
                    AacDepacketizer::Latm(d) => d.push(rtp_timestamp, payload, &mut emit),
                };
                stats.decode_errors += errors;
                stats.malformed_packets += u64::from(res.malformed);
                stats.lost_fragments += u64::from(res.lost_fragments);
            }
        }
    }
}

/// Duration of one AAC access unit in RTP clock units.
fn au_duration(clock_rate: u32, sample_rate: u32) -> u32 {
    (u64::from(AAC_FRAME) * u64::from(clock_rate) / u64::from(sample_rate.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaKind;
    use crate::media::TrackInfo;

    fn track(encoding: &str, clock_rate: u32, fmtp: Option<&str>) -> TrackInfo {
        TrackInfo {
            kind: MediaKind::Audio,
            encoding: encoding.into(),
            payload_type: 96,
            clock_rate,
            channels: None,
            fmtp: fmtp.map(Into::into),
            control: String::new(),
        }
    }

    #[test]
    fn parses_sdp_tracks() {
        let t = track("MPEG4-GENERIC", 16000, Some("streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1408; SizeLength=13; IndexLength=3; IndexDeltaLength=3"));
        let i = AudioInput::from_track(&t).unwrap();
        assert_eq!(
            i.codec,
            AudioCodec::Aac {
                config: vec![0x14, 0x08],
                mode: AacPacketization::Mpeg4Generic {
                    size_length: 13,
                    index_length: 3,
                    index_delta_length: 3
                }
            }
        );
        let t = track(
            "MP4A-LATM",
            44100,
            Some("profile-level-id=15;object=2;cpresent=0;config=40002410"),
        );
        assert!(matches!(
            AudioInput::from_track(&t).unwrap().codec,
            AudioCodec::Aac {
                mode: AacPacketization::Latm,
                ..
            }
        ));
        let t = track("MP4A-LATM", 44100, Some("cpresent=1"));
        assert!(matches!(
            AudioInput::from_track(&t),
            Err(AudioError::Unsupported(_))
        ));
        let t = track("MPEG4-GENERIC", 16000, Some("mode=AAC-hbr"));
        assert!(matches!(
            AudioInput::from_track(&t),
            Err(AudioError::InvalidConfig(_))
        ));
        let t = track("G722", 8000, None);
        assert_eq!(AudioInput::from_track(&t).unwrap().codec, AudioCodec::G722);
        let mut t = track("L16", 16000, None);
        t.channels = Some(2);
        let i = AudioInput::from_track(&t).unwrap();
        assert_eq!(
            (i.codec, i.clock_rate, i.channels),
            (AudioCodec::L16, 16000, 2)
        );
        let t = track("G726-32", 8000, None);
        let e = AudioInput::from_track(&t).unwrap_err();
        assert!(e.to_string().contains("G726-32"), "{e}");
    }

    #[test]
    fn transcoder_can_move_to_a_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Transcoder>();
    }

    #[test]
    fn g711_passthrough_rules() {
        let pcmu = AudioInput {
            codec: AudioCodec::Pcmu,
            clock_rate: 8000,
            channels: 1,
        };
        let all = BrowserAudio {
            pcmu: true,
            pcma: true,
            g722: true,
        };
        let only = |pcmu, pcma, g722| BrowserAudio { pcmu, pcma, g722 };
        assert!(!pcmu.needs_transcoding(only(true, false, false)));
        assert!(pcmu.needs_transcoding(only(false, true, true)));
        assert!(AudioInput {
            clock_rate: 16000,
            ..pcmu.clone()
        }
        .needs_transcoding(all));
        assert!(!needs_transcoding(
            &AudioCodec::Pcma,
            only(false, true, false)
        ));
        assert!(needs_transcoding(&AudioCodec::Speex, all));
        assert!(!needs_transcoding(
            &AudioCodec::Opus,
            BrowserAudio::default()
        ));
        // G.722 (16 kHz audio, 8000 Hz RTP clock) passes through to browsers that offered it; L16 never does.
        let g722 = AudioInput {
            codec: AudioCodec::G722,
            clock_rate: 8000,
            channels: 1,
        };
        assert!(!g722.needs_transcoding(only(false, false, true)));
        assert!(g722.needs_transcoding(only(true, true, false)));
        let l16 = AudioInput {
            codec: AudioCodec::L16,
            clock_rate: 8000,
            channels: 1,
        };
        assert!(l16.needs_transcoding(all));
    }

    #[test]
    fn timeline_fills_gaps_and_reanchors() {
        let input = AudioInput {
            codec: AudioCodec::Pcmu,
            clock_rate: 8000,
            channels: 1,
        };
        let mut t = Transcoder::new(input).unwrap();
        let mut out = Vec::new();
        let payload = [0xFFu8; 160]; // 20 ms of silence
        let mut ts = 1000u32;
        for _ in 0..50 {
            t.push(ts, &payload, &mut out);
            ts += 160;
        }
        // Lose 5 packets, then continue: silence fills the hole, rtp_time stays continuous.
        ts += 5 * 160;
        for _ in 0..50 {
            t.push(ts, &payload, &mut out);
            ts += 160;
        }
        assert_eq!(t.stats().gaps_filled, 1);
        assert!(out
            .windows(2)
            .all(|w| w[1].rtp_time.wrapping_sub(w[0].rtp_time) == OPUS_FRAME));
        let first = out[0].rtp_time;
        let n = out.len();
        // 105 × 20 ms went in; the resampler holds back under one frame.
        assert!((103..=105).contains(&n), "{n} packets");
        // Expected anchor: 1000 × 6 minus the delays.
        assert_eq!(first, 6000 - 143 - OPUS_LOOKAHEAD);
        // A 10 s jump re-anchors.
        out.clear();
        t.push(ts + 80000, &payload, &mut out);
        t.push(ts + 80160, &payload, &mut out);
        t.push(ts + 80320, &payload, &mut out);
        assert_eq!(t.stats().reanchors, 1);
        assert_eq!(out[0].rtp_time, (ts + 80000) * 6 - 143 - OPUS_LOOKAHEAD);
        // A duplicate is dropped.
        t.push(ts + 80320, &payload, &mut out);
        assert_eq!(t.stats().late_frames, 1);
    }
}
