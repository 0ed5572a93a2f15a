//! What the camera's audio is: its codec and parameters from the SDP (`AudioInput`), and whether a
//! browser can take it as it is or it must be transcoded to Opus (`needs_transcoding`).

use std::fmt;

use crate::media::TrackInfo;

/// How AAC access units are carried in RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AacPacketization {
    /// RFC 3640 `mpeg4-generic` with AU headers of `size_length` + `index_length` (first AU) or
    /// `index_delta_length` (later AUs) bits; `mode=AAC-hbr` is 13/3/3.
    Mpeg4Generic {
        /// Bits of each AU's size field (`sizelength`).
        size_length: u32,
        /// Bits of the first AU's index field (`indexlength`).
        index_length: u32,
        /// Bits of the later AUs' index-delta field (`indexdeltalength`).
        index_delta_length: u32,
    },
    /// RFC 6416 `MP4A-LATM` with `cpresent=0`; `config` is then the StreamMuxConfig.
    Latm,
}

/// The camera's audio encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioCodec {
    /// G.711 µ-law: relayed as is when the browser offered PCMU at 8 kHz mono, else decoded by table.
    Pcmu,
    /// G.711 A-law: relayed as is when the browser offered PCMA at 8 kHz mono, else decoded by table.
    Pcma,
    /// AAC-LC, decoded with symphonia.
    Aac {
        /// The SDP `config=` bytes: an AudioSpecificConfig for mpeg4-generic, a StreamMuxConfig for LATM.
        config: Vec<u8>,
        /// How the access units are framed in RTP.
        mode: AacPacketization,
    },
    /// Speex (RFC 5574), decoded with libspeex.
    Speex,
    /// Opus: browsers take it as is, so it is forwarded untouched.
    Opus,
    /// G.722 (16 kHz audio on an 8000 Hz RTP clock, RFC 3551): relayed as is when the browser offered G722,
    /// else decoded with libspandsp.
    G722,
    /// L16: 16-bit big-endian linear PCM (RFC 3551) at the RTP clock rate, mono or stereo.
    L16,
}

/// An audio track as the camera's SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInput {
    /// The encoding and its SDP parameters, which pick the decoder.
    pub codec: AudioCodec,
    /// RTP clock rate of the input timestamps.
    pub clock_rate: u32,
    /// Channels from the SDP (AAC takes its channel count from its config instead).
    pub channels: u16,
}

/// Why a track cannot be transcoded. `Display` gives a sentence fit for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioError {
    /// A valid stream camgate does not handle (HE-AAC, surround, in-band LATM config, ...).
    Unsupported(String),
    /// The SDP parameters or config bytes are missing or malformed.
    InvalidConfig(String),
    /// A codec library refused to start.
    Codec(String),
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioError::Unsupported(m) => write!(f, "unsupported camera audio: {m}"),
            AudioError::InvalidConfig(m) => write!(f, "invalid camera audio description: {m}"),
            AudioError::Codec(m) => write!(f, "audio codec error: {m}"),
        }
    }
}

impl std::error::Error for AudioError {}

pub(super) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn fmtp_u32(t: &TrackInfo, key: &str) -> Result<Option<u32>, AudioError> {
    match t.fmtp_param(key) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| AudioError::InvalidConfig(format!("fmtp {key}={v} is not a number"))),
    }
}

impl AudioInput {
    /// Reads the codec and its parameters from a track of the camera's SDP.
    pub fn from_track(t: &TrackInfo) -> Result<AudioInput, AudioError> {
        let encoding = t.encoding.to_ascii_uppercase();
        if t.clock_rate == 0 {
            return Err(AudioError::InvalidConfig(format!(
                "{encoding} track has clock rate 0"
            )));
        }
        let channels = t.channels.unwrap_or(1).max(1);
        let config = || -> Result<Vec<u8>, AudioError> {
            let hex = t.fmtp_param("config").ok_or_else(|| {
                AudioError::InvalidConfig(format!(
                    "{encoding} track has no config= in its fmtp line"
                ))
            })?;
            hex_decode(hex).ok_or_else(|| {
                AudioError::InvalidConfig(format!("{encoding} config={hex} is not hex"))
            })
        };
        let codec = match encoding.as_str() {
            "PCMU" => AudioCodec::Pcmu,
            "PCMA" => AudioCodec::Pcma,
            "SPEEX" => AudioCodec::Speex,
            "OPUS" => AudioCodec::Opus,
            "G722" => AudioCodec::G722,
            "L16" => AudioCodec::L16,
            "MPEG4-GENERIC" => {
                let mode = t.fmtp_param("mode").unwrap_or("").to_ascii_lowercase();
                let (s, i, d) = match mode.as_str() {
                    "aac-hbr" => (13, 3, 3),
                    "aac-lbr" => (6, 2, 2),
                    _ => (0, 0, 0),
                };
                let size_length = fmtp_u32(t, "sizelength")?.unwrap_or(s);
                let index_length = fmtp_u32(t, "indexlength")?.unwrap_or(i);
                let index_delta_length = fmtp_u32(t, "indexdeltalength")?.unwrap_or(d);
                if size_length == 0 || size_length > 16 || index_length > 16 || index_delta_length > 16 {
                    return Err(AudioError::Unsupported(format!(
                        "mpeg4-generic AU headers with sizelength={size_length} indexlength={index_length} \
                         indexdeltalength={index_delta_length} are not supported (constant-size AUs or oversized fields)"
                    )));
                }
                for key in
                    ["ctsdeltalength", "dtsdeltalength", "randomaccessindication", "streamstateindication", "auxiliarydatasizelength"]
                {
                    if fmtp_u32(t, key)?.unwrap_or(0) != 0 {
                        return Err(AudioError::Unsupported(format!("mpeg4-generic with {key} is not supported")));
                    }
                }
                AudioCodec::Aac {
                    config: config()?,
                    mode: AacPacketization::Mpeg4Generic { size_length, index_length, index_delta_length },
                }
            }
            "MP4A-LATM" => {
                let cpresent = t.fmtp_param("cpresent");
                if cpresent == Some("1") || (cpresent.is_none() && t.fmtp_param("config").is_none()) {
                    return Err(AudioError::Unsupported(
                        "MP4A-LATM with the configuration in-band (cpresent=1) is not supported; \
                         cameras must send config= with cpresent=0"
                            .into(),
                    ));
                }
                AudioCodec::Aac { config: config()?, mode: AacPacketization::Latm }
            }
            other => {
                return Err(AudioError::Unsupported(format!(
                    "camera audio encoding {other} is not supported (camgate handles PCMU, PCMA, G722, L16, AAC-LC, Speex, Opus)"
                )))
            }
        };
        Ok(AudioInput {
            codec,
            clock_rate: t.clock_rate,
            channels,
        })
    }

    /// Whether browsers that offered this codec can take the stream as is: Opus, G.711 at 8 kHz mono, G.722
    /// mono on its 8000 Hz RTP clock.
    pub fn can_pass_through(&self) -> bool {
        let plain = self.clock_rate == 8000 && self.channels == 1;
        match self.codec {
            AudioCodec::Pcmu | AudioCodec::Pcma | AudioCodec::G722 => plain,
            AudioCodec::Opus => true,
            AudioCodec::Aac { .. } | AudioCodec::Speex | AudioCodec::L16 => false,
        }
    }

    /// True unless the browser can take this stream as is: Opus, or G.711 at 8 kHz mono / G.722 that the
    /// browser offered.
    pub fn needs_transcoding(&self, browser: BrowserAudio) -> bool {
        !self.can_pass_through() || needs_transcoding(&self.codec, browser)
    }
}

/// Which of the codecs camgate can pass through a browser offered (Opus it always has).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BrowserAudio {
    /// G.711 µ-law (PCMU/8000).
    pub pcmu: bool,
    /// G.711 A-law (PCMA/8000).
    pub pcma: bool,
    /// G.722 (G722/8000).
    pub g722: bool,
}

/// Whether `codec` must go through a [`Transcoder`]: G.711 and G.722 pass through when the browser offered
/// them, Opus always does. Does not look at the clock rate: prefer [`AudioInput::needs_transcoding`], which also
/// sends G.711 at rates other than 8 kHz (or stereo) through the transcoder.
pub fn needs_transcoding(codec: &AudioCodec, browser: BrowserAudio) -> bool {
    match codec {
        AudioCodec::Pcmu => !browser.pcmu,
        AudioCodec::Pcma => !browser.pcma,
        AudioCodec::G722 => !browser.g722,
        AudioCodec::Opus => false,
        AudioCodec::Aac { .. } | AudioCodec::Speex | AudioCodec::L16 => true,
    }
}
