//! Media descriptions shared by the RTSP client, the relays and the gateway.

use std::sync::Arc;

/// Whether a track carries pictures or sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// H.264 or VP8, relayed without decoding.
    Video,
    /// Passed through or transcoded to Opus by the audio relay.
    Audio,
}

/// One media section of a camera's SDP, as the RTSP client set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// From the `m=` line: which relay the track feeds.
    pub kind: MediaKind,
    /// Encoding name from `a=rtpmap`, upper-cased: "H264", "VP8", "MPEG4-GENERIC", "PCMU", ...
    /// Static payload types without rtpmap get their RFC 3551 name (0 → PCMU, 8 → PCMA).
    pub encoding: String,
    /// The camera's RTP payload type for this track.
    pub payload_type: u8,
    /// RTP timestamp ticks per second, from `a=rtpmap` (RFC 3551's for static types without it).
    pub clock_rate: u32,
    /// Audio channels from `a=rtpmap`, when given.
    pub channels: Option<u16>,
    /// The `a=fmtp` parameters after the payload type, e.g. "packetization-mode=1;sprop-parameter-sets=...".
    pub fmtp: Option<String>,
    /// Absolute control URL of the track (used in SETUP).
    pub control: String,
}

impl TrackInfo {
    /// Looks up one `key=value` of the fmtp line, case-insensitively on the key.
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.as_deref()?.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }
}

/// One packet of video leaving a relay (H.264: single NAL, STAP-A or FU-A; VP8: one
/// payload-descriptor packet), as the GOP cache, the viewers and the mirrors take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoPacket {
    /// RTP payload, ready to send.
    pub payload: Arc<[u8]>,
    /// RTP marker bit: set on the last packet of a picture.
    pub marker: bool,
    /// The camera's RTP timestamp, unchanged.
    pub rtp_time: u32,
    /// Relay-assigned sequence: +1 per output packet plus the size of any gap in the source
    /// sequence, so downstream sees losses as losses.
    pub seq: u16,
    /// A new viewer may start here: the first packet of a keyframe (H.264: an IDR access unit
    /// with SPS+PPS in front).
    pub keyframe_start: bool,
}
