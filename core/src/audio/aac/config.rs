//! AAC's configuration records: the AudioSpecificConfig (ISO 14496-3 1.6.2.1) of mpeg4-generic's
//! `config=`, and LATM's StreamMuxConfig (MP4A-LATM's `config=`).

use super::super::bits::BitReader;
use super::AudioError;

/// Samples per channel in one AAC-LC access unit.
pub(crate) const AAC_FRAME: u32 = 1024;

pub(super) const SAMPLE_RATES: [u32; 13] = [
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
