//! AAC: the configuration records (AudioSpecificConfig, LATM StreamMuxConfig), the two RTP payload formats
//! (RFC 3640 mpeg4-generic, RFC 6416 MP4A-LATM with `cpresent=0`) and the AAC-LC decoder (symphonia).
//!
//! Only AAC-LC with one or two channels and 1024-sample frames is decoded; anything else is refused when the
//! [`super::Transcoder`] is built, with a message naming the profile, so an HE-AAC camera is reported instead of
//! producing silence.

use std::panic::{catch_unwind, AssertUnwindSafe};

use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};

use super::bits::{BitReader, BitWriter};
use super::AudioError;

/// Samples per channel in one AAC-LC access unit.
pub(crate) const AAC_FRAME: u32 = 1024;

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What camgate needs from an AudioSpecificConfig, once it has been checked to be decodable AAC-LC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AacConfig {
    pub sample_rate: u32,
    pub channels: u16,
}

fn profile_name(aot: u32) -> &'static str {
    match aot {
        1 => "AAC Main",
        2 => "AAC-LC",
        3 => "AAC SSR",
        4 => "AAC LTP",
        5 => "HE-AAC (SBR)",
        6 => "AAC Scalable",
        17 => "ER AAC-LC",
        19 => "ER AAC LTP",
        20 => "ER AAC Scalable",
        23 => "AAC-LD",
        29 => "HE-AAC v2 (SBR+PS)",
        39 => "AAC-ELD",
        42 => "xHE-AAC (USAC)",
        _ => "non-AAC MPEG-4 audio",
    }
}

fn unsupported_profile(aot: u32) -> AudioError {
    AudioError::Unsupported(format!(
        "AAC profile {} (audio object type {aot}) is not supported: camgate decodes AAC-LC only; \
         set the camera's audio encoder to AAC-LC (often called \"AAC\" or \"AAC-LC\", not \"HE-AAC\"/\"AAC+\")",
        profile_name(aot)
    ))
}

fn truncated(what: &str) -> AudioError {
    AudioError::InvalidConfig(format!("{what} is truncated"))
}

fn read_object_type(r: &mut BitReader<'_>) -> Option<u32> {
    let aot = r.read(5)?;
    if aot == 31 {
        Some(32 + r.read(6)?)
    } else {
        Some(aot)
    }
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<u32, AudioError> {
    let index = r.read(4).ok_or_else(|| truncated("AudioSpecificConfig"))?;
    if index == 15 {
        return r.read(24).ok_or_else(|| truncated("AudioSpecificConfig"));
    }
    SAMPLE_RATES.get(index as usize).copied().ok_or_else(|| {
        AudioError::InvalidConfig(format!(
            "AudioSpecificConfig has reserved sampling frequency index {index}"
        ))
    })
}

/// Parses an AudioSpecificConfig (ISO 14496-3 1.6.2.1) and checks it is AAC-LC that the decoder handles.
/// `standalone` is true when the config is a whole byte string (mpeg4-generic `config=`): then trailing bits may
/// carry the backward-compatible SBR signalling (sync extension 0x2b7), which marks HE-AAC.
pub(crate) fn parse_audio_specific_config(
    r: &mut BitReader<'_>,
    standalone: bool,
) -> Result<AacConfig, AudioError> {
    let aot = read_object_type(r).ok_or_else(|| truncated("AudioSpecificConfig"))?;
    let sample_rate = read_sample_rate(r)?;
    let channel_config = r.read(4).ok_or_else(|| truncated("AudioSpecificConfig"))?;
    if aot != 2 {
        return Err(unsupported_profile(aot));
    }
    // GASpecificConfig.
    let frame_length_flag = r
        .read_bool()
        .ok_or_else(|| truncated("AudioSpecificConfig"))?;
    let depends_on_core_coder = r
        .read_bool()
        .ok_or_else(|| truncated("AudioSpecificConfig"))?;
    if depends_on_core_coder {
        r.skip(14).ok_or_else(|| truncated("AudioSpecificConfig"))?;
    }
    let extension_flag = r
        .read_bool()
        .ok_or_else(|| truncated("AudioSpecificConfig"))?;
    if channel_config == 0 {
        return Err(AudioError::Unsupported(
            "AAC with its channel layout in a program config element is not supported; \
             use a mono or stereo AAC-LC stream"
                .into(),
        ));
    }
    if channel_config > 2 {
        let channels = match channel_config {
            3 => "3",
            4 => "4",
            5 => "5",
            6 => "5.1",
            7 => "7.1",
            _ => "multi-channel",
        };
        return Err(AudioError::Unsupported(format!(
            "AAC with {channels} channels (channel configuration {channel_config}) is not supported; \
             use a mono or stereo AAC-LC stream"
        )));
    }
    if frame_length_flag {
        return Err(AudioError::Unsupported(
            "AAC-LC with 960-sample frames is not supported; only 1024-sample frames are".into(),
        ));
    }
    if extension_flag {
        // extensionFlag3; nothing else is defined for AAC-LC.
        r.skip(1).ok_or_else(|| truncated("AudioSpecificConfig"))?;
    }
    if standalone && r.bits_left() >= 16 && r.peek(11) == Some(0x2b7) {
        r.skip(11);
        if read_object_type(r) == Some(5) && r.read_bool() == Some(true) {
            return Err(unsupported_profile(5));
        }
    }
    if !(7350..=96000).contains(&sample_rate) {
        return Err(AudioError::Unsupported(format!(
            "AAC sample rate {sample_rate} Hz is not supported"
        )));
    }
    Ok(AacConfig {
        sample_rate,
        channels: channel_config as u16,
    })
}

/// Parses an mpeg4-generic `config=` value (AudioSpecificConfig bytes).
pub(crate) fn parse_generic_config(config: &[u8]) -> Result<AacConfig, AudioError> {
    parse_audio_specific_config(&mut BitReader::new(config), true)
}

fn latm_get_value(r: &mut BitReader<'_>) -> Option<u32> {
    let bytes = r.read(2)?;
    let mut v = 0u32;
    for _ in 0..=bytes {
        v = (v << 8) | r.read(8)?;
    }
    Some(v)
}

/// Parses an MP4A-LATM `config=` value (StreamMuxConfig, ISO 14496-3 1.7.3.1). Returns the AAC config and
/// `numSubFrames` (AudioMuxElements carry `numSubFrames + 1` access units).
pub(crate) fn parse_stream_mux_config(config: &[u8]) -> Result<(AacConfig, u32), AudioError> {
    let r = &mut BitReader::new(config);
    let t = || truncated("StreamMuxConfig");
    let version = r.read(1).ok_or_else(t)?;
    let version_a = if version == 1 {
        r.read(1).ok_or_else(t)?
    } else {
        0
    };
    if version_a != 0 {
        return Err(AudioError::Unsupported(
            "LATM audioMuxVersionA 1 is not supported".into(),
        ));
    }
    if version == 1 {
        latm_get_value(r).ok_or_else(t)?; // taraBufferFullness
    }
    let _all_streams_same_time_framing = r.read(1).ok_or_else(t)?;
    let num_sub_frames = r.read(6).ok_or_else(t)?;
    let num_program = r.read(4).ok_or_else(t)?;
    let num_layer = r.read(3).ok_or_else(t)?;
    if num_program != 0 || num_layer != 0 {
        return Err(AudioError::Unsupported(format!(
            "LATM with {} programs and {} layers is not supported; only one program with one layer",
            num_program + 1,
            num_layer + 1
        )));
    }
    let aac = if version == 0 {
        parse_audio_specific_config(r, false)?
    } else {
        let asc_bits = latm_get_value(r).ok_or_else(t)? as usize;
        let start = r.position();
        let aac = parse_audio_specific_config(r, false)?;
        let used = r.position() - start;
        r.skip(asc_bits.saturating_sub(used)).ok_or_else(t)?;
        aac
    };
    // Many encoders (GStreamer's rtpmp4apay among them) cut the config right after the AudioSpecificConfig;
    // a missing frameLengthType means 0.
    let frame_length_type = r.read(3).unwrap_or(0);
    if frame_length_type != 0 {
        return Err(AudioError::Unsupported(format!(
            "LATM frameLengthType {frame_length_type} is not supported; only variable-length AAC frames (0)"
        )));
    }
    Ok((aac, num_sub_frames))
}

/// More AU headers than this in one packet is garbage (a 1500-byte packet holds a few dozen real AUs at most).
const MAX_AUS_PER_PACKET: usize = 64;

/// RFC 3640 (mpeg4-generic) depacketizer: AU headers, several AUs per packet, one AU fragmented over several
/// packets (reassembled by AU-size and timestamp, so it needs no marker bit; a lost fragment drops the AU).
pub(crate) struct Rfc3640 {
    size_length: u32,
    index_length: u32,
    index_delta_length: u32,
    /// Timestamp increment between AUs of one packet, in RTP clock units.
    au_duration: u32,
    frag: Vec<u8>,
    frag_size: usize,
    frag_ts: u32,
    sizes: Vec<usize>,
}

/// What a depacketizer did with one packet beyond the AUs it handed out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DepacketizeResult {
    pub malformed: bool,
    pub lost_fragments: bool,
}

impl Rfc3640 {
    pub(crate) fn new(
        size_length: u32,
        index_length: u32,
        index_delta_length: u32,
        au_duration: u32,
    ) -> Rfc3640 {
        Rfc3640 {
            size_length,
            index_length,
            index_delta_length,
            au_duration,
            frag: Vec::new(),
            frag_size: 0,
            frag_ts: 0,
            sizes: Vec::new(),
        }
    }

    pub(crate) fn push(
        &mut self,
        ts: u32,
        payload: &[u8],
        emit: &mut dyn FnMut(u32, &[u8]),
    ) -> DepacketizeResult {
        let mut res = DepacketizeResult::default();
        let bad = DepacketizeResult {
            malformed: true,
            ..res
        };
        if payload.len() < 2 {
            return bad;
        }
        let header_bits = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
        let header_bytes = header_bits.div_ceil(8);
        let Some(headers) = payload.get(2..2 + header_bytes) else {
            return bad;
        };
        let data = &payload[2 + header_bytes..];
        let per_au = (self.size_length + self.index_length) as usize;
        let r = &mut BitReader::new(headers);
        self.sizes.clear();
        while r.position() < header_bits && per_au > 0 {
            let index_bits = if self.sizes.is_empty() {
                self.index_length
            } else {
                self.index_delta_length
            };
            let (Some(size), Some(_index)) = (r.read(self.size_length), r.read(index_bits)) else {
                return bad;
            };
            self.sizes.push(size as usize);
            if self.sizes.len() > MAX_AUS_PER_PACKET {
                return bad;
            }
        }
        if self.sizes.is_empty() {
            return bad;
        }
        if self.sizes.len() == 1 && self.sizes[0] > data.len() {
            // A fragment of one AU. Continuations repeat the whole AU's size and timestamp.
            let size = self.sizes[0];
            if self.frag.is_empty() || self.frag_ts != ts || self.frag_size != size {
                res.lost_fragments = !self.frag.is_empty();
                self.frag.clear();
                self.frag_ts = ts;
                self.frag_size = size;
            }
            self.frag.extend_from_slice(data);
            if self.frag.len() == size {
                emit(ts, &self.frag);
                self.frag.clear();
            } else if self.frag.len() > size {
                self.frag.clear();
                res.lost_fragments = true;
            }
            return res;
        }
        if !self.frag.is_empty() {
            // The AU whose start we held never finished.
            self.frag.clear();
            res.lost_fragments = true;
        }
        let mut offset = 0usize;
        for (i, &size) in self.sizes.iter().enumerate() {
            let Some(au) = data.get(offset..offset + size) else {
                res.malformed = true;
                break;
            };
            emit(ts.wrapping_add(self.au_duration.wrapping_mul(i as u32)), au);
            offset += size;
        }
        res
    }
}

/// RFC 6416 MP4A-LATM depacketizer for `cpresent=0` (config out of band): each AudioMuxElement is
/// `numSubFrames + 1` times PayloadLengthInfo (runs of 0xFF) + PayloadMux. Several elements may share a packet;
/// one element may span packets of one timestamp (reassembled; dropped if the timestamp changes first).
pub(crate) struct Latm {
    num_sub_frames: u32,
    au_duration: u32,
    pending: Vec<u8>,
    pending_ts: u32,
}

const MAX_PENDING: usize = 1 << 16;

impl Latm {
    pub(crate) fn new(num_sub_frames: u32, au_duration: u32) -> Latm {
        Latm {
            num_sub_frames,
            au_duration,
            pending: Vec::new(),
            pending_ts: 0,
        }
    }

    /// Parses one AudioMuxElement at the start of `data`: `Some(consumed)` after emitting its AUs, or `None`
    /// when `data` ends before the element does.
    fn element(
        &self,
        data: &[u8],
        ts: &mut u32,
        emit: &mut dyn FnMut(u32, &[u8]),
    ) -> Option<usize> {
        // First check that the whole element is present, then emit, so a partial element emits nothing.
        let mut spans = [(0usize, 0usize); 64];
        let mut pos = 0usize;
        for span in spans.iter_mut().take(self.num_sub_frames as usize + 1) {
            let mut len = 0usize;
            loop {
                let b = *data.get(pos)?;
                pos += 1;
                len += usize::from(b);
                if b != 0xFF {
                    break;
                }
            }
            if data.len() - pos < len {
                return None;
            }
            *span = (pos, len);
            pos += len;
        }
        for &(start, len) in spans.iter().take(self.num_sub_frames as usize + 1) {
            if len > 0 {
                emit(*ts, &data[start..start + len]);
            }
            *ts = ts.wrapping_add(self.au_duration);
        }
        Some(pos)
    }

    pub(crate) fn push(
        &mut self,
        ts: u32,
        payload: &[u8],
        emit: &mut dyn FnMut(u32, &[u8]),
    ) -> DepacketizeResult {
        let mut res = DepacketizeResult::default();
        if !self.pending.is_empty() && self.pending_ts != ts {
            self.pending.clear();
            res.lost_fragments = true;
        }
        let joined;
        let data: &[u8] = if self.pending.is_empty() {
            payload
        } else {
            self.pending.extend_from_slice(payload);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let mut offset = 0;
        let mut au_ts = ts;
        while offset < data.len() {
            match self.element(&data[offset..], &mut au_ts, emit) {
                Some(n) => offset += n,
                None => {
                    if data.len() - offset <= MAX_PENDING {
                        self.pending.extend_from_slice(&data[offset..]);
                        self.pending_ts = ts;
                    } else {
                        res.malformed = true;
                    }
                    break;
                }
            }
        }
        res
    }
}

/// AAC-LC decoder: symphonia's, fed a normalized AudioSpecificConfig. Garbage access units are reported as
/// errors; a panic inside the decoder is contained and the decoder rebuilt.
pub(crate) struct AacDecoder {
    dec: symphonia_codec_aac::AacDecoder,
    params: AudioCodecParameters,
}

impl AacDecoder {
    pub(crate) fn new(config: AacConfig) -> Result<AacDecoder, AudioError> {
        let mut w = BitWriter::default();
        w.write(5, 2); // AAC-LC
        match SAMPLE_RATES.iter().position(|&r| r == config.sample_rate) {
            Some(index) => w.write(4, index as u32),
            None => {
                w.write(4, 15);
                w.write(24, config.sample_rate);
            }
        }
        w.write(4, u32::from(config.channels));
        w.write(3, 0); // 1024-sample frames, no core coder, no extension
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(w.finish().into_boxed_slice());
        let dec =
            symphonia_codec_aac::AacDecoder::try_new(&params, &AudioDecoderOptions::default())
                .map_err(|e| AudioError::Codec(format!("AAC decoder refused the config: {e}")))?;
        Ok(AacDecoder { dec, params })
    }

    /// Decodes one access unit into interleaved f32 samples (replacing `out`'s contents).
    pub(crate) fn decode(&mut self, au: &[u8], out: &mut Vec<f32>) -> bool {
        let packet = PacketRef::new(
            0,
            Timestamp::new(0),
            Duration::new(u64::from(AAC_FRAME)),
            au,
        );
        let dec = &mut self.dec;
        let ok = catch_unwind(AssertUnwindSafe(|| match dec.decode_ref(&packet) {
            Ok(buf) => {
                buf.copy_to_vec_interleaved(out);
                true
            }
            Err(_) => false,
        }));
        if !matches!(ok, Ok(true)) {
            // Rebuild after any failure: symphonia keeps the channel elements a bad frame announced (a CPE in a
            // mono stream, say), which would make every later good frame fail too.
            if let Ok(dec) = symphonia_codec_aac::AacDecoder::try_new(
                &self.params,
                &AudioDecoderOptions::default(),
            ) {
                self.dec = dec;
            }
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lc_configs() {
        assert_eq!(
            parse_generic_config(&[0x12, 0x08]).unwrap(),
            AacConfig {
                sample_rate: 44100,
                channels: 1
            }
        );
        assert_eq!(
            parse_generic_config(&[0x11, 0x90]).unwrap(),
            AacConfig {
                sample_rate: 48000,
                channels: 2
            }
        );
        let (cfg, subframes) = parse_stream_mux_config(&[0x40, 0x00, 0x24, 0x10]).unwrap();
        assert_eq!(
            (cfg, subframes),
            (
                AacConfig {
                    sample_rate: 44100,
                    channels: 1
                },
                0
            )
        );
        let (cfg, _) = parse_stream_mux_config(&[0x40, 0x00, 0x23, 0x20]).unwrap();
        assert_eq!(
            cfg,
            AacConfig {
                sample_rate: 48000,
                channels: 2
            }
        );
    }

    #[test]
    fn refuses_he_aac_and_surround() {
        // Explicit hierarchical HE-AAC: AOT 5, 24 kHz core, mono, ext rate 48 kHz, core AOT 2.
        let e = parse_generic_config(&[0x2B, 0x09, 0x88, 0x00]).unwrap_err();
        assert!(e.to_string().contains("HE-AAC"), "{e}");
        // Backward-compatible SBR signalling after an LC config.
        let e = parse_generic_config(&[0x13, 0x88, 0x56, 0xE5, 0x98]).unwrap_err();
        assert!(e.to_string().contains("HE-AAC"), "{e}");
        // 5.1 LC.
        let e = parse_generic_config(&[0x11, 0xB0]).unwrap_err();
        assert!(e.to_string().contains("5.1"), "{e}");
        assert!(parse_generic_config(&[0x12]).is_err());
    }

    #[test]
    fn rfc3640_splits_and_joins() {
        let mut d = Rfc3640::new(13, 3, 3, 1024);
        let mut got: Vec<(u32, Vec<u8>)> = Vec::new();
        // Two AUs of 3 and 2 bytes.
        let pkt = [0x00, 0x20, 0x00, 0x18, 0x00, 0x10, 1, 2, 3, 4, 5];
        d.push(100, &pkt, &mut |ts, au| got.push((ts, au.to_vec())));
        assert_eq!(got, vec![(100, vec![1, 2, 3]), (1124, vec![4, 5])]);
        got.clear();
        // One AU of 5 bytes in two fragments.
        d.push(2000, &[0x00, 0x10, 0x00, 0x28, 1, 2, 3], &mut |ts, au| {
            got.push((ts, au.to_vec()))
        });
        assert!(got.is_empty());
        d.push(2000, &[0x00, 0x10, 0x00, 0x28, 4, 5], &mut |ts, au| {
            got.push((ts, au.to_vec()))
        });
        assert_eq!(got, vec![(2000, vec![1, 2, 3, 4, 5])]);
        // Garbage never panics.
        for len in 0..12 {
            let r = d.push(1, &[0xFF; 12][..len], &mut |_, _| {});
            assert!(r.malformed || len >= 2, "len {len}");
        }
    }

    #[test]
    fn latm_lengths_and_fragments() {
        let mut d = Latm::new(0, 1024);
        let mut got: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut long = vec![0xFF, 0x01];
        long.extend((0..256).map(|i| i as u8));
        d.push(7, &long[..100], &mut |ts, au| got.push((ts, au.to_vec())));
        assert!(got.is_empty());
        d.push(7, &long[100..], &mut |ts, au| got.push((ts, au.to_vec())));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), 256);
        got.clear();
        d.push(9, &[2, 0xA, 0xB, 1, 0xC], &mut |ts, au| {
            got.push((ts, au.to_vec()))
        });
        assert_eq!(got, vec![(9, vec![0xA, 0xB]), (1033, vec![0xC])]);
    }
}
