//! AAC: the configuration records (AudioSpecificConfig, LATM StreamMuxConfig), the two RTP payload formats
//! (RFC 3640 mpeg4-generic, RFC 6416 MP4A-LATM with `cpresent=0`) and the AAC-LC decoder (symphonia).
//!
//! AAC-LC with one or two channels and 1024-sample frames is decoded, and so is the AAC-LC core of HE-AAC and
//! HE-AAC v2 (the SBR and PS data ride in fill elements that the decoder skips): audible, at the core's rate, band-
//! limited, and said so in the stream info. Anything else is refused when the [`super::Transcoder`] is built, with a
//! message naming the profile, so the camera is reported instead of producing silence.

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

/// How an AudioSpecificConfig signals SBR, the part of HE-AAC that an AAC-LC decoder skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sbr {
    /// Nothing said (`sbrPresentFlag` -1): plain AAC, or HE-AAC with implicit signalling (SBR data appears in
    /// the frames only); either way the frames decode as AAC-LC at the config's rate.
    NotSignalled,
    /// The sync extension says there is no SBR (`sbrPresentFlag` 0): what libavcodec's encoder writes.
    Absent,
    /// SBR doubles (or keeps, when downsampled) the core's rate to `output_rate`. `hierarchical`: signalled by
    /// audio object type 5/29 first; otherwise by the backward-compatible sync extension 0x2b7.
    Present {
        output_rate: u32,
        hierarchical: bool,
    },
}

/// An AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) as written, before deciding whether it can be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioSpecificConfig {
    /// The first audioObjectType: 5 or 29 for explicit hierarchical HE-AAC / HE-AAC v2, else the core's.
    pub signalled_type: u32,
    /// The audio object type of the core coder (after AOT 5/29, the one that follows the extension rate).
    pub object_type: u32,
    /// The core's sampling frequency.
    pub sample_rate: u32,
    pub channel_config: u32,
    /// Channels of the program config element when `channel_config` is 0.
    pub pce_channels: u32,
    /// 960-sample frames instead of 1024.
    pub frame_length_flag: bool,
    pub depends_on_core_coder: bool,
    pub extension_flag: bool,
    pub sbr: Sbr,
    /// `psPresentFlag`: `None` when not signalled (-1).
    pub ps: Option<bool>,
}

/// What camgate needs from an AudioSpecificConfig, once it has been checked to be decodable: the AAC-LC core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AacConfig {
    /// The core's rate and channels: what the AAC-LC decoder outputs.
    pub sample_rate: u32,
    pub channels: u16,
    /// Set for HE-AAC (signalled SBR): its SBR (and PS) data are skipped, only the core is decoded.
    pub he: Option<HeAac>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeAac {
    /// The rate SBR would output.
    pub output_rate: u32,
    /// HE-AAC v2: parametric stereo, whose mono core is what camgate plays.
    pub ps: bool,
}

impl AacConfig {
    /// What is decoded when it is not the whole stream, for the stream info; `None` for AAC-LC.
    pub(crate) fn note(&self) -> Option<String> {
        let he = self.he?;
        let profile = if he.ps {
            profile_name(29)
        } else {
            profile_name(5)
        };
        Some(format!(
            "{profile}, decoding its AAC-LC core at {} Hz {}",
            self.sample_rate,
            if self.channels == 1 { "mono" } else { "stereo" },
        ))
    }
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
        22 => "ER BSAC",
        23 => "AAC-LD",
        29 => "HE-AAC v2 (SBR+PS)",
        39 => "AAC-ELD",
        42 => "xHE-AAC (USAC)",
        _ => "non-AAC MPEG-4 audio",
    }
}

fn unsupported_profile(aot: u32) -> AudioError {
    AudioError::Unsupported(format!(
        "AAC profile {} (audio object type {aot}) is not supported: camgate decodes AAC-LC, and the AAC-LC core \
         of HE-AAC; set the camera's audio encoder to AAC-LC (often called \"AAC\" or \"AAC-LC\")",
        profile_name(aot)
    ))
}

fn truncated(what: &str) -> AudioError {
    AudioError::InvalidConfig(format!("{what} is truncated"))
}

fn asc_truncated() -> AudioError {
    truncated("AudioSpecificConfig")
}

/// GetAudioObjectType(): 5 bits, 31 escapes to 32 + 6 more bits.
fn read_object_type(r: &mut BitReader<'_>) -> Result<u32, AudioError> {
    let aot = r.read(5).ok_or_else(asc_truncated)?;
    if aot == 31 {
        Ok(32 + r.read(6).ok_or_else(asc_truncated)?)
    } else {
        Ok(aot)
    }
}

/// samplingFrequencyIndex, or 15 and an explicit 24-bit frequency.
fn read_sample_rate(r: &mut BitReader<'_>) -> Result<u32, AudioError> {
    let index = r.read(4).ok_or_else(asc_truncated)?;
    if index == 15 {
        return r.read(24).ok_or_else(asc_truncated);
    }
    SAMPLE_RATES.get(index as usize).copied().ok_or_else(|| {
        AudioError::InvalidConfig(format!(
            "AudioSpecificConfig has reserved sampling frequency index {index}"
        ))
    })
}

/// program_config_element() (14496-3 4.4.1.1) inside a GASpecificConfig: returns its channel count.
/// `asc_start` is where the AudioSpecificConfig began: the PCE's byte_alignment() is relative to it.
fn read_program_config_element(r: &mut BitReader<'_>, asc_start: usize) -> Result<u32, AudioError> {
    let mut read = |n: u32| r.read(n).ok_or_else(asc_truncated);
    let _element_instance_tag = read(4)?;
    let _object_type = read(2)?;
    let _sampling_frequency_index = read(4)?;
    let front = read(4)?;
    let side = read(4)?;
    let back = read(4)?;
    let lfe = read(2)?;
    let assoc_data = read(3)?;
    let valid_cc = read(4)?;
    for _ in 0..2 {
        // mono_mixdown_present, stereo_mixdown_present: an element number each.
        if read(1)? == 1 {
            read(4)?;
        }
    }
    if read(1)? == 1 {
        read(3)?; // matrix_mixdown_idx, pseudo_surround_enable
    }
    let mut channels = 0;
    for _ in 0..front + side + back {
        let is_cpe = read(1)?;
        read(4)?; // element_tag_select
        channels += 1 + is_cpe;
    }
    channels += lfe;
    for _ in 0..lfe + assoc_data {
        read(4)?;
    }
    for _ in 0..valid_cc {
        read(5)?; // cc_element_is_ind_sw, valid_cc_element_tag_select
    }
    let misalign = (r.position() - asc_start) % 8;
    if misalign != 0 {
        r.skip(8 - misalign).ok_or_else(asc_truncated)?;
    }
    let comment_bytes = r.read(8).ok_or_else(asc_truncated)? as usize;
    r.skip(comment_bytes * 8).ok_or_else(asc_truncated)?;
    Ok(channels)
}

impl AudioSpecificConfig {
    /// Reads one AudioSpecificConfig from `r`, consuming exactly its bits, so that in a LATM StreamMuxConfig
    /// (where its length is not given when audioMuxVersion is 0) the fields after it are read at the right place.
    ///
    /// The backward-compatible extension (syncExtensionType 0x2b7, and 0x548 for PS inside it) is read only when
    /// its sync word is there: the spec's `bits_to_decode()` condition, which in a StreamMuxConfig of version 0 has
    /// no length to count from. Peeking is safe there because what follows an AAC config in a StreamMuxConfig is
    /// frameLengthType, and 0x2b7 / 0x548 would start it with 2 (reserved) / 5 (CELP), never an AAC value (0, 1).
    /// Libavcodec's AAC encoder (GStreamer's avenc_aac) writes `…56e500` after AAC-LC (0x2b7, AOT 5, no SBR),
    /// and GStreamer's rtpmp4apay copies it into the StreamMuxConfig as is.
    pub(crate) fn parse(r: &mut BitReader<'_>) -> Result<AudioSpecificConfig, AudioError> {
        let start = r.position();
        let signalled_type = read_object_type(r)?;
        let sample_rate = read_sample_rate(r)?;
        let channel_config = r.read(4).ok_or_else(asc_truncated)?;
        let mut object_type = signalled_type;
        let mut sbr = Sbr::NotSignalled;
        let mut ps = None;
        if signalled_type == 5 || signalled_type == 29 {
            // Explicit hierarchical signalling: the SBR output rate, then the core's object type.
            let output_rate = read_sample_rate(r)?;
            sbr = Sbr::Present {
                output_rate,
                hierarchical: true,
            };
            if signalled_type == 29 {
                ps = Some(true);
            }
            object_type = read_object_type(r)?;
            if object_type == 22 {
                r.skip(4).ok_or_else(asc_truncated)?; // extensionChannelConfiguration
            }
        }
        let mut asc = AudioSpecificConfig {
            signalled_type,
            object_type,
            sample_rate,
            channel_config,
            pce_channels: 0,
            frame_length_flag: false,
            depends_on_core_coder: false,
            extension_flag: false,
            sbr,
            ps,
        };
        match object_type {
            1..=4 | 6 | 7 | 17 | 19..=23 => asc.read_ga_specific_config(r, start)?,
            // CELP, HVXC, TTSI, ELD, USAC...: their specific configs are not read, and none is decodable here.
            other => return Err(unsupported_profile(other)),
        }
        if matches!(object_type, 17 | 19..=27 | 39) {
            let ep_config = r.read(2).ok_or_else(asc_truncated)?;
            if ep_config >= 2 {
                return Err(AudioError::Unsupported(format!(
                    "AAC with error protection (epConfig {ep_config}) is not supported"
                )));
            }
        }
        if !matches!(asc.sbr, Sbr::Present { .. })
            && r.bits_left() >= 16
            && r.peek(11) == Some(0x2b7)
        {
            asc.read_sync_extension(r)?;
        }
        Ok(asc)
    }

    /// GASpecificConfig() (14496-3 4.4.1).
    fn read_ga_specific_config(
        &mut self,
        r: &mut BitReader<'_>,
        asc_start: usize,
    ) -> Result<(), AudioError> {
        self.frame_length_flag = r.read_bool().ok_or_else(asc_truncated)?;
        self.depends_on_core_coder = r.read_bool().ok_or_else(asc_truncated)?;
        if self.depends_on_core_coder {
            r.skip(14).ok_or_else(asc_truncated)?; // coreCoderDelay
        }
        self.extension_flag = r.read_bool().ok_or_else(asc_truncated)?;
        if self.channel_config == 0 {
            self.pce_channels = read_program_config_element(r, asc_start)?;
        }
        let aot = self.object_type;
        if aot == 6 || aot == 20 {
            r.skip(3).ok_or_else(asc_truncated)?; // layerNr
        }
        if self.extension_flag {
            if aot == 22 {
                r.skip(5 + 11).ok_or_else(asc_truncated)?; // numOfSubFrame, layer_length
            }
            if matches!(aot, 17 | 19 | 20 | 23) {
                r.skip(3).ok_or_else(asc_truncated)?; // the three resilience flags
            }
            r.skip(1).ok_or_else(asc_truncated)?; // extensionFlag3
        }
        Ok(())
    }

    /// The backward-compatible extension after the object's config; the caller has seen syncExtensionType 0x2b7.
    fn read_sync_extension(&mut self, r: &mut BitReader<'_>) -> Result<(), AudioError> {
        r.skip(11).ok_or_else(asc_truncated)?;
        match read_object_type(r)? {
            5 => {
                if !r.read_bool().ok_or_else(asc_truncated)? {
                    self.sbr = Sbr::Absent;
                    return Ok(());
                }
                let output_rate = read_sample_rate(r)?;
                self.sbr = Sbr::Present {
                    output_rate,
                    hierarchical: false,
                };
                if r.bits_left() >= 12 && r.peek(11) == Some(0x548) {
                    r.skip(11);
                    self.ps = Some(r.read_bool().ok_or_else(asc_truncated)?);
                }
            }
            22 => {
                // ER BSAC's own SBR flag, rate and channel configuration.
                if r.read_bool().ok_or_else(asc_truncated)? {
                    let output_rate = read_sample_rate(r)?;
                    self.sbr = Sbr::Present {
                        output_rate,
                        hierarchical: false,
                    };
                }
                r.skip(4).ok_or_else(asc_truncated)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the core is AAC-LC that the decoder handles (1 or 2 channels, 1024-sample frames) and returns it.
    pub(crate) fn decodable(&self) -> Result<AacConfig, AudioError> {
        if self.object_type != 2 {
            // HE-AAC over a core other than AAC-LC names the whole profile, which is what cameras show.
            let aot = if self.signalled_type == 5 || self.signalled_type == 29 {
                self.signalled_type
            } else {
                self.object_type
            };
            return Err(unsupported_profile(aot));
        }
        match self.channel_config {
            0 => {
                return Err(AudioError::Unsupported(format!(
                    "AAC with its channel layout in a program config element ({} channels) is not supported; \
                     use a mono or stereo AAC-LC stream",
                    self.pce_channels
                )))
            }
            1 | 2 => {}
            c => {
                let channels = match c {
                    3 => "3",
                    4 => "4",
                    5 => "5",
                    6 => "5.1",
                    7 => "7.1",
                    _ => "multi-channel",
                };
                return Err(AudioError::Unsupported(format!(
                    "AAC with {channels} channels (channel configuration {c}) is not supported; \
                     use a mono or stereo AAC-LC stream"
                )));
            }
        }
        if self.frame_length_flag {
            return Err(AudioError::Unsupported(
                "AAC-LC with 960-sample frames is not supported; only 1024-sample frames are"
                    .into(),
            ));
        }
        if !(7350..=96000).contains(&self.sample_rate) {
            return Err(AudioError::Unsupported(format!(
                "AAC sample rate {} Hz is not supported",
                self.sample_rate
            )));
        }
        let he = match self.sbr {
            Sbr::Present { output_rate, .. } => Some(HeAac {
                output_rate,
                ps: self.ps == Some(true),
            }),
            Sbr::NotSignalled | Sbr::Absent => None,
        };
        Ok(AacConfig {
            sample_rate: self.sample_rate,
            channels: self.channel_config as u16,
            he,
        })
    }
}

/// Parses an mpeg4-generic `config=` value (AudioSpecificConfig bytes).
pub(crate) fn parse_generic_config(config: &[u8]) -> Result<AacConfig, AudioError> {
    AudioSpecificConfig::parse(&mut BitReader::new(config))?.decodable()
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
    let asc = if version == 0 {
        AudioSpecificConfig::parse(r)?
    } else {
        // ascLen bounds the config (and its sync extension); a length past the end is taken as "to the end".
        let asc_bits = (latm_get_value(r).ok_or_else(t)? as usize).min(r.bits_left());
        let mut inner = r.limited(asc_bits).ok_or_else(t)?;
        let asc = AudioSpecificConfig::parse(&mut inner)?;
        r.skip(asc_bits).ok_or_else(t)?;
        asc
    };
    let aac = asc.decodable()?;
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

    fn hex(s: &str) -> Vec<u8> {
        super::super::hex_decode(s).unwrap()
    }

    fn lc(sample_rate: u32, channels: u16) -> AacConfig {
        AacConfig {
            sample_rate,
            channels,
            he: None,
        }
    }

    fn he(sample_rate: u32, channels: u16, output_rate: u32, ps: bool) -> AacConfig {
        AacConfig {
            sample_rate,
            channels,
            he: Some(HeAac { output_rate, ps }),
        }
    }

    /// (who wrote it, mpeg4-generic `config=`, MP4A-LATM `config=` (GStreamer's rtpmp4apay around the same
    /// AudioSpecificConfig), what camgate decodes, how SBR is signalled).
    fn real_configs() -> Vec<(&'static str, &'static str, &'static str, AacConfig, Sbr)> {
        let none = Sbr::NotSignalled;
        let hier = |output_rate| Sbr::Present {
            output_rate,
            hierarchical: true,
        };
        let compat = |output_rate| Sbr::Present {
            output_rate,
            hierarchical: false,
        };
        vec![
            // GStreamer 1.22 avenc_aac (libavcodec): AAC-LC + sync extension 0x2b7, AOT 5, sbrPresentFlag 0.
            (
                "avenc_aac 16k mono",
                "140856e500",
                "40002810adca00",
                lc(16000, 1),
                Sbr::Absent,
            ),
            (
                "avenc_aac 44.1k stereo",
                "121056e500",
                "40002420adca00",
                lc(44100, 2),
                Sbr::Absent,
            ),
            (
                "avenc_aac 48k stereo",
                "119056e500",
                "40002320adca00",
                lc(48000, 2),
                Sbr::Absent,
            ),
            (
                "avenc_aac 8k mono",
                "158856e500",
                "40002b10adca00",
                lc(8000, 1),
                Sbr::Absent,
            ),
            // GStreamer 1.22 voaacenc: plain AAC-LC, and rtpmp4apay's config stops right after it.
            ("voaacenc 16k mono", "1408", "40002810", lc(16000, 1), none),
            (
                "voaacenc 44.1k stereo",
                "1210",
                "40002420",
                lc(44100, 2),
                none,
            ),
            (
                "voaacenc 48k stereo",
                "1190",
                "40002320",
                lc(48000, 2),
                none,
            ),
            ("voaacenc 8k mono", "1588", "40002b10", lc(8000, 1), none),
            // fdk-aac (fdkaacenc is not in Debian: fdk-aac is non-free). GStreamer's fdkaacenc asks fdk-aac for
            // explicit hierarchical signalling on raw output (gst-plugins-bad ext/fdkaac/gstfdkaacenc.c,
            // AACENC_SIGNALING_MODE 2), so its AAC-LC configs are plain and its HE-AAC ones start with AOT 5 /
            // AOT 29. These are the configs fdk-aac writes (as listed by its users, e.g. Android FdkAAC wrappers'
            // "1188" 48k LC, "2B8A0800" 44.1k HE-AAC; "2b920800" HE-AAC and "eb098800" HE-AAC v2 in the RTSP
            // libraries' tests); the LATM forms are what rtpmp4apay makes of them (checked with GStreamer 1.22).
            (
                "fdk-aac LC 48k mono",
                "1188",
                "40002310",
                lc(48000, 1),
                none,
            ),
            (
                "fdk-aac LC 44.1k mono",
                "1208",
                "40002410",
                lc(44100, 1),
                none,
            ),
            (
                "fdk-aac HE-AAC 44.1k stereo (AOT 5)",
                "2b920800",
                "400057241000",
                he(22050, 2, 44100, false),
                hier(44100),
            ),
            (
                "fdk-aac HE-AAC 44.1k mono (AOT 5)",
                "2b8a0800",
                "400057141000",
                he(22050, 1, 44100, false),
                hier(44100),
            ),
            (
                "fdk-aac HE-AAC v2 48k (AOT 29)",
                "eb098800",
                "4001d6131000",
                he(24000, 1, 48000, true),
                hier(48000),
            ),
            // Backward-compatible signalling with SBR present (and PS, sync extension 0x548 nested in it).
            (
                "HE-AAC 48k->96k via 0x2b7",
                "119056e580",
                "40002320adcb00",
                he(48000, 2, 96000, false),
                compat(96000),
            ),
            (
                "HE-AAC v2 via 0x2b7 + 0x548",
                "130856e59d4880",
                "40002610adcb3a9100",
                he(24000, 1, 48000, true),
                compat(48000),
            ),
        ]
    }

    #[test]
    fn parses_real_configs_in_both_payload_formats() {
        for (who, generic, latm, want, sbr) in real_configs() {
            let asc = AudioSpecificConfig::parse(&mut BitReader::new(&hex(generic))).unwrap();
            assert_eq!(asc.sbr, sbr, "{who}: {asc:?}");
            assert_eq!(
                parse_generic_config(&hex(generic)),
                Ok(want),
                "{who} mpeg4-generic"
            );
            assert_eq!(
                parse_stream_mux_config(&hex(latm)),
                Ok((want, 0)),
                "{who} LATM"
            );
        }
        // What the stream info says about HE-AAC.
        let note = parse_generic_config(&hex("eb098800"))
            .unwrap()
            .note()
            .unwrap();
        assert_eq!(
            note,
            "HE-AAC v2 (SBR+PS), decoding its AAC-LC core at 24000 Hz mono"
        );
        let note = parse_generic_config(&hex("2b920800"))
            .unwrap()
            .note()
            .unwrap();
        assert_eq!(
            note,
            "HE-AAC (SBR), decoding its AAC-LC core at 22050 Hz stereo"
        );
        assert_eq!(
            parse_generic_config(&hex("140856e500")).unwrap().note(),
            None
        );
    }

    /// A StreamMuxConfig of audioMuxVersion 0 around `asc_bits` (written by `asc`), followed by `tail`.
    fn smc_v0(asc: impl Fn(&mut BitWriter), tail: impl Fn(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.write(1, 0); // audioMuxVersion
        w.write(1, 1); // allStreamsSameTimeFraming
        w.write(6, 0); // numSubFrames
        w.write(4, 0); // numProgram
        w.write(3, 0); // numLayer
        asc(&mut w);
        tail(&mut w);
        w.finish()
    }

    fn avenc_asc(w: &mut BitWriter) {
        w.write(16, 0x1408); // AAC-LC 16 kHz mono, GASpecificConfig 000
        w.write(11, 0x2b7);
        w.write(5, 5);
        w.write(1, 0); // sbrPresentFlag
    }

    #[test]
    fn latm_reads_frame_length_type_right_after_the_sync_extension() {
        // The full tail: frameLengthType 0, latmBufferFullness, otherDataPresent 0, crcCheckPresent 0.
        let full = smc_v0(avenc_asc, |w| {
            w.write(3, 0);
            w.write(8, 0xFF);
            w.write(2, 0);
        });
        assert_eq!(parse_stream_mux_config(&full), Ok((lc(16000, 1), 0)));
        // frameLengthType 1 right after the extension is seen as 1: the extension's bits were all consumed.
        let fixed = smc_v0(avenc_asc, |w| {
            w.write(3, 1);
            w.write(9, 100);
        });
        let e = parse_stream_mux_config(&fixed).unwrap_err();
        assert!(e.to_string().contains("frameLengthType 1"), "{e}");
        // SBR present with PS: both extensions consumed, frameLengthType 0 follows.
        let he_ps = smc_v0(
            |w| {
                w.write(16, 0x1308); // AAC-LC 24 kHz mono
                w.write(11, 0x2b7);
                w.write(5, 5);
                w.write(1, 1);
                w.write(4, 3); // 48 kHz
                w.write(11, 0x548);
                w.write(1, 1);
            },
            |w| {
                w.write(3, 0);
                w.write(8, 0xFF);
                w.write(2, 0);
            },
        );
        assert_eq!(
            parse_stream_mux_config(&he_ps),
            Ok((he(24000, 1, 48000, true), 0))
        );
        // An LC config with no extension, followed by frameLengthType 1: nothing is taken for an extension.
        let plain = smc_v0(|w| w.write(16, 0x1408), |w| w.write(12, 1 << 9));
        let e = parse_stream_mux_config(&plain).unwrap_err();
        assert!(e.to_string().contains("frameLengthType 1"), "{e}");
    }

    #[test]
    fn latm_version_1_bounds_the_config_by_its_length() {
        let smc = |asc_len: u32, asc: &[u8], frame_length_type: u32| {
            let mut w = BitWriter::default();
            w.write(1, 1); // audioMuxVersion
            w.write(1, 0); // audioMuxVersionA
            w.write(2, 0); // taraBufferFullness: LatmGetValue of one byte
            w.write(8, 0xFF);
            w.write(1, 1);
            w.write(6, 0);
            w.write(4, 0);
            w.write(3, 0);
            w.write(2, 0); // ascLen: LatmGetValue of one byte
            w.write(8, asc_len);
            for &b in asc {
                w.write(8, u32::from(b));
            }
            w.write(3, frame_length_type);
            w.write(8, 0xFF);
            w.write(2, 0);
            w.finish()
        };
        let avenc = hex("140856e500");
        // ascLen covers the sync extension and avenc_aac's padding bits: those are skipped, not read as fields.
        assert_eq!(
            parse_stream_mux_config(&smc(40, &avenc, 0)),
            Ok((lc(16000, 1), 0))
        );
        let e = parse_stream_mux_config(&smc(40, &avenc, 1)).unwrap_err();
        assert!(e.to_string().contains("frameLengthType 1"), "{e}");
        // HE-AAC v2 by backward-compatible signalling, inside its length.
        let v2 = hex("130856e59d4880");
        assert_eq!(
            parse_stream_mux_config(&smc(56, &v2, 0)),
            Ok((he(24000, 1, 48000, true), 0))
        );
        // A length that ends before the extension: the extension is not read past it.
        let mut w = BitWriter::default();
        for (n, v) in [
            (1, 1),
            (1, 0),
            (2, 0),
            (8, 0xFF),
            (1, 1),
            (6, 0),
            (4, 0),
            (3, 0),
            (2, 0),
            (8, 16),
        ] {
            w.write(n, v);
        }
        w.write(16, 0x1308);
        w.write(3, 0); // frameLengthType, where a config 16 bits long ends
        w.write(8, 0xFF);
        assert_eq!(parse_stream_mux_config(&w.finish()), Ok((lc(24000, 1), 0)));
    }

    #[test]
    fn parses_every_field_of_the_config() {
        // Explicit 24-bit sampling frequency (index 15).
        let mut w = BitWriter::default();
        w.write(5, 2);
        w.write(4, 15);
        w.write(24, 16000);
        w.write(4, 2);
        w.write(3, 0);
        assert_eq!(parse_generic_config(&w.finish()), Ok(lc(16000, 2)));
        // Explicit HE-AAC whose extension rate is explicit too.
        let mut w = BitWriter::default();
        w.write(5, 5);
        w.write(4, 6); // 24 kHz core
        w.write(4, 1);
        w.write(4, 15);
        w.write(24, 48000);
        w.write(5, 2);
        w.write(3, 0);
        assert_eq!(
            parse_generic_config(&w.finish()),
            Ok(he(24000, 1, 48000, false))
        );
        // Escaped object type 31: 32 + 10 = 42 (USAC), named.
        let e = parse_generic_config(&hex("f94640")).unwrap_err();
        assert!(
            e.to_string().contains("xHE-AAC") && e.to_string().contains("42"),
            "{e}"
        );
        // GASpecificConfig with dependsOnCoreCoder and extensionFlag: its bits are skipped, then a sync extension.
        let mut w = BitWriter::default();
        w.write(5, 2);
        w.write(4, 8);
        w.write(4, 1);
        w.write(1, 0); // frameLengthFlag
        w.write(1, 1); // dependsOnCoreCoder
        w.write(14, 0x2b7); // coreCoderDelay, a look-alike sync word that must not be taken for one
        w.write(1, 1); // extensionFlag
        w.write(1, 0); // extensionFlag3
        w.write(11, 0x2b7);
        w.write(5, 5);
        w.write(1, 1);
        w.write(4, 5); // 32 kHz
        let bytes = w.finish();
        let asc = AudioSpecificConfig::parse(&mut BitReader::new(&bytes)).unwrap();
        assert!(asc.depends_on_core_coder && asc.extension_flag, "{asc:?}");
        assert_eq!(asc.decodable(), Ok(he(16000, 1, 32000, false)));
        // channelConfiguration 0: a program config element (one front CPE = 2 channels), byte-aligned relative to
        // the config's start, with a 1-byte comment; all of it consumed.
        let mut w = BitWriter::default();
        w.write(5, 2);
        w.write(4, 4);
        w.write(4, 0);
        w.write(3, 0);
        for (n, v) in [
            (4, 0),
            (2, 1),
            (4, 4),
            (4, 1),
            (4, 0),
            (4, 0),
            (2, 0),
            (3, 0),
            (4, 0),
            (1, 0),
            (1, 0),
            (1, 0),
        ] {
            w.write(n, v);
        }
        w.write(1, 1); // front_element_is_cpe
        w.write(4, 0);
        w.write(1, 0); // byte_alignment
        w.write(8, 1);
        w.write(8, b'x'.into());
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        let asc = AudioSpecificConfig::parse(&mut r).unwrap();
        assert_eq!((asc.pce_channels, r.bits_left()), (2, 0), "{asc:?}");
        let e = asc.decodable().unwrap_err();
        assert!(
            e.to_string()
                .contains("program config element (2 channels)"),
            "{e}"
        );
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        // 5.1 LC.
        let e = parse_generic_config(&[0x11, 0xB0]).unwrap_err();
        assert!(e.to_string().contains("5.1"), "{e}");
        // AAC Main.
        let e = parse_generic_config(&hex("0990")).unwrap_err();
        assert!(e.to_string().contains("AAC Main"), "{e}");
        // HE-AAC over an AAC Main core: AOT 5, 24 kHz, mono, 48 kHz, core AOT 1.
        let e = parse_generic_config(&hex("2b098400")).unwrap_err();
        assert!(e.to_string().contains("HE-AAC (SBR)"), "{e}");
        // 960-sample frames.
        let e = parse_generic_config(&hex("140c")).unwrap_err();
        assert!(e.to_string().contains("960"), "{e}");
        assert!(matches!(
            parse_generic_config(&[0x12]),
            Err(AudioError::InvalidConfig(_))
        ));
        // Reserved sampling frequency index 13.
        assert!(matches!(
            parse_generic_config(&hex("1688")),
            Err(AudioError::InvalidConfig(_))
        ));
        // Every prefix of every real config: an answer, never a panic.
        for (_, generic, latm, _, _) in real_configs() {
            for config in [hex(generic), hex(latm)] {
                for len in 0..config.len() {
                    let _ = parse_generic_config(&config[..len]);
                    let _ = parse_stream_mux_config(&config[..len]);
                }
            }
        }
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
