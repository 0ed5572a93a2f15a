//! Media descriptions shared by the RTSP client, the depacketizers and the stream hub.

/// Whether a track carries pictures or sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

/// One media section of a camera's SDP, as the RTSP client set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub kind: MediaKind,
    /// Encoding name from `a=rtpmap`, upper-cased: "H264", "VP8", "MPEG4-GENERIC", "PCMU", ...
    /// Static payload types without rtpmap get their RFC 3551 name (0 → PCMU, 8 → PCMA).
    pub encoding: String,
    pub payload_type: u8,
    pub clock_rate: u32,
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
