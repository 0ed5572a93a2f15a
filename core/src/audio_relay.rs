//! A stream's audio on its way to browsers: passed through when browsers can play the camera's
//! codec (Opus, G.711 at 8 kHz mono, G.722), transcoded to Opus otherwise (AAC, Speex, L16, odd
//! G.711).
//!
//! Like the video relay, it numbers its output packets itself (+1 per packet, plus any gap in
//! the camera's sequence) so each viewer can rebase the numbers without hiding losses.

use std::sync::Arc;

use crate::audio::{AudioCodec, AudioError, AudioInput, OpusPacket, Transcoder};
use crate::media::TrackInfo;
use crate::rtp::{RtpPacket, SeqStep, SeqTracker};

/// The codec browsers receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioOut {
    /// Opus at 48 kHz: the camera's own Opus, or what the transcoder makes.
    Opus,
    /// The camera's G.711 µ-law at 8 kHz mono, passed through.
    Pcmu,
    /// The camera's G.711 A-law at 8 kHz mono, passed through.
    Pcma,
    /// The camera's G.722 (8000 Hz RTP clock, 16 kHz audio) mono, passed through.
    G722,
}

impl AudioOut {
    /// The encoding name as an SDP `a=rtpmap` line writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
        }
    }
}

/// One audio packet leaving the relay; its payload is shared by every viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// The RTP payload in the output codec.
    pub payload: Arc<[u8]>,
    /// In the output codec's clock (48 kHz for Opus, 8 kHz for G.711 and G.722).
    pub rtp_time: u32,
    /// The relay's own sequence number, +1 per packet; passthrough also skips the camera's gaps.
    pub seq: u16,
}

enum Mode {
    /// The camera's payloads go out as they are.
    Passthrough,
    Transcode {
        transcoder: Box<Transcoder>,
        encoded: Vec<OpusPacket>,
    },
}

/// A stream's audio relay: takes the camera's RTP packets and gives one [`AudioPacket`] sequence
/// for all viewers (plus an Opus fallback for G.711 passthrough when some browser needs it).
pub struct AudioRelay {
    mode: Mode,
    out: AudioOut,
    source_seq: SeqTracker,
    out_seq: u16,
    description: String,
    /// The camera's track, kept to start the Opus fallback when a browser needs it.
    input: AudioInput,
    /// G.711/G.722 passed through, and also transcoded to Opus for browsers that lack the codec.
    fallback: Option<Fallback>,
}

/// The Opus version of a passed-through G.711/G.722 track, made only while a viewer needs it.
struct Fallback {
    transcoder: Box<Transcoder>,
    encoded: Vec<OpusPacket>,
    ready: Vec<AudioPacket>,
    seq: u16,
}

impl AudioRelay {
    /// Chooses passthrough or transcoding for the camera's track; an error says why the track
    /// can't be played (e.g. AAC Main, 5.1), for the stream info.
    pub fn new(track: &TrackInfo) -> Result<AudioRelay, AudioError> {
        let input = AudioInput::from_track(track)?;
        let kept = input.clone();
        let channels = input.channels;
        let source = format!(
            "{} {} Hz{}",
            track.encoding,
            input.clock_rate,
            if channels > 1 { " stereo" } else { "" }
        );
        let passthrough = match input.codec {
            _ if !input.can_pass_through() => None,
            AudioCodec::Pcmu => Some(AudioOut::Pcmu),
            AudioCodec::Pcma => Some(AudioOut::Pcma),
            AudioCodec::G722 => Some(AudioOut::G722),
            AudioCodec::Opus => Some(AudioOut::Opus),
            _ => None,
        };
        let (mode, out, description) = match passthrough {
            Some(out) => (Mode::Passthrough, out, format!("{source} (passed through)")),
            None => {
                let transcoder = Box::new(Transcoder::new(input)?);
                let note = transcoder
                    .note()
                    .map(|n| format!(", {n}"))
                    .unwrap_or_default();
                (
                    Mode::Transcode {
                        transcoder,
                        encoded: Vec::with_capacity(8),
                    },
                    AudioOut::Opus,
                    format!("{source}{note} → opus 48000 Hz"),
                )
            }
        };
        Ok(AudioRelay {
            mode,
            out,
            source_seq: SeqTracker::new(),
            out_seq: 0,
            description,
            input: kept,
            fallback: None,
        })
    }

    /// Also makes an Opus version of a passed-through G.711/G.722 track, for browsers that
    /// offered no PCMU/PCMA/G722. Does nothing when the output is Opus already.
    pub fn enable_opus_fallback(&mut self) -> Result<(), AudioError> {
        if self.out == AudioOut::Opus || self.fallback.is_some() {
            return Ok(());
        }
        let transcoder = Box::new(Transcoder::new(self.input.clone())?);
        self.fallback = Some(Fallback {
            transcoder,
            encoded: Vec::new(),
            ready: Vec::new(),
            seq: 0,
        });
        self.description
            .push_str(", and → opus 48000 Hz for browsers without it");
        Ok(())
    }

    /// Whether the Opus version of a G.711/G.722 track is being made (see `enable_opus_fallback`).
    pub fn has_opus_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// Moves the Opus fallback packets made by the last `push` into `out`.
    pub fn take_fallback(&mut self, out: &mut Vec<AudioPacket>) {
        if let Some(f) = &mut self.fallback {
            out.append(&mut f.ready);
        }
    }

    /// Like `input_time`, for the Opus fallback's packets.
    pub fn fallback_input_time(&self, out_ts: u32) -> Option<u32> {
        self.fallback.as_ref()?.transcoder.input_time(out_ts)
    }

    /// Whether packets are decoded and re-encoded (rather than passed through).
    pub fn is_transcoding(&self) -> bool {
        matches!(self.mode, Mode::Transcode { .. })
    }

    /// The codec of the main output, which browsers must accept to take this stream's audio.
    pub fn output(&self) -> AudioOut {
        self.out
    }

    /// "MPEG4-GENERIC 44100 Hz stereo → opus 48000 Hz", for logs and stream info; HE-AAC adds
    /// what is decoded ("…, HE-AAC (SBR), decoding its AAC-LC core at 24000 Hz mono → …").
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The camera RTP timestamp of the audio in an output packet stamped `out_ts` (lip sync).
    pub fn input_time(&self, out_ts: u32) -> Option<u32> {
        match &self.mode {
            Mode::Passthrough => Some(out_ts),
            Mode::Transcode { transcoder, .. } => transcoder.input_time(out_ts),
        }
    }

    /// One camera RTP packet in; 0..n packets for browsers out (appended to `out`).
    pub fn push(&mut self, packet: &RtpPacket<'_>, out: &mut Vec<AudioPacket>) {
        match self.source_seq.step(packet.sequence) {
            SeqStep::Late => return,
            SeqStep::Gap(missing) if matches!(self.mode, Mode::Passthrough) => {
                self.out_seq = self.out_seq.wrapping_add(missing);
            }
            _ => {}
        }
        match &mut self.mode {
            Mode::Passthrough => {
                if packet.payload.is_empty() {
                    return;
                }
                self.out_seq = self.out_seq.wrapping_add(1);
                out.push(AudioPacket {
                    payload: Arc::from(packet.payload),
                    rtp_time: packet.timestamp,
                    seq: self.out_seq,
                });
                if let Some(f) = &mut self.fallback {
                    f.encoded.clear();
                    f.transcoder
                        .push(packet.timestamp, packet.payload, &mut f.encoded);
                    for opus in f.encoded.drain(..) {
                        f.seq = f.seq.wrapping_add(1);
                        f.ready.push(AudioPacket {
                            payload: Arc::from(opus.payload),
                            rtp_time: opus.rtp_time,
                            seq: f.seq,
                        });
                    }
                }
            }
            Mode::Transcode {
                transcoder,
                encoded,
            } => {
                encoded.clear();
                transcoder.push(packet.timestamp, packet.payload, encoded);
                for opus in encoded.drain(..) {
                    self.out_seq = self.out_seq.wrapping_add(1);
                    out.push(AudioPacket {
                        payload: Arc::from(opus.payload),
                        rtp_time: opus.rtp_time,
                        seq: self.out_seq,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaKind;

    fn track(encoding: &str, pt: u8, clock_rate: u32, fmtp: Option<&str>) -> TrackInfo {
        TrackInfo {
            kind: MediaKind::Audio,
            encoding: encoding.into(),
            payload_type: pt,
            clock_rate,
            channels: None,
            fmtp: fmtp.map(str::to_owned),
            control: "rtsp://cam/audio".into(),
        }
    }

    fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, 0];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn g711_passes_through_with_gaps_kept() {
        let mut relay = AudioRelay::new(&track("PCMU", 0, 8000, None)).unwrap();
        assert_eq!(relay.output(), AudioOut::Pcmu);
        let mut out = Vec::new();
        for (seq, ts) in [(10u16, 0u32), (11, 160), (13, 480)] {
            let bytes = rtp(seq, ts, &[0xff; 160]);
            relay.push(&RtpPacket::parse(&bytes).unwrap(), &mut out);
        }
        let seqs: Vec<u16> = out.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [1, 2, 4], "the lost packet stays a gap");
        assert_eq!(out[2].rtp_time, 480);
        assert_eq!(&out[0].payload[..], &[0xff; 160][..]);
        assert!(relay.description().contains("passed through"));
    }

    #[test]
    fn g711_at_16_khz_is_transcoded_to_opus() {
        let relay = AudioRelay::new(&track("PCMA", 97, 16000, None)).unwrap();
        assert_eq!(relay.output(), AudioOut::Opus);
        assert!(
            relay.description().contains("→ opus"),
            "{}",
            relay.description()
        );
    }

    #[test]
    fn g722_passes_through_with_an_opus_fallback_and_l16_is_transcoded() {
        // Static PT 9, 8000 Hz RTP clock (RFC 3551) though the audio is 16 kHz.
        let mut relay = AudioRelay::new(&track("G722", 9, 8000, None)).unwrap();
        assert_eq!(relay.output(), AudioOut::G722);
        assert!(!relay.is_transcoding());
        relay.enable_opus_fallback().unwrap();
        let (mut out, mut opus) = (Vec::new(), Vec::new());
        for seq in 0..30u16 {
            let bytes = rtp(seq, u32::from(seq) * 160, &[0x5a; 160]);
            relay.push(&RtpPacket::parse(&bytes).unwrap(), &mut out);
            relay.take_fallback(&mut opus);
        }
        assert_eq!(out.len(), 30);
        assert_eq!(&out[5].payload[..], &[0x5a; 160][..], "untouched");
        assert_eq!(out[5].rtp_time, 800, "on the camera's 8000 Hz clock");
        assert!(opus.len() >= 25, "{} Opus packets", opus.len());
        assert!(relay
            .description()
            .starts_with("G722 8000 Hz (passed through), and → opus"));
        let relay = AudioRelay::new(&track("L16", 11, 44100, None)).unwrap();
        assert_eq!(relay.output(), AudioOut::Opus);
        assert!(relay.is_transcoding());
        assert_eq!(relay.description(), "L16 44100 Hz → opus 48000 Hz");
    }

    #[test]
    fn aac_becomes_opus_packets_at_48_khz() {
        // AAC-LC 8 kHz mono config (AudioSpecificConfig 0x1588) with silence would need a real
        // encoder; here only the decision and the description are checked. The audio module's
        // own tests transcode real AAC captures.
        let relay = AudioRelay::new(&track(
            "MPEG4-GENERIC",
            96,
            8000,
            Some("streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1588;sizelength=13;indexlength=3;indexdeltalength=3"),
        ))
        .unwrap();
        assert_eq!(relay.output(), AudioOut::Opus);
        assert!(
            relay.description().starts_with("MPEG4-GENERIC 8000 Hz"),
            "{}",
            relay.description()
        );
    }
}
