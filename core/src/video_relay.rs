//! A stream's video on its way to browsers, whatever the camera's codec: H.264 (re-fragmented
//! where needed, SPS/PPS before every keyframe), H.265 (likewise, VPS/SPS/PPS) or VP8 (forwarded
//! as is). All hand out the same `VideoPacket`s, so the gateway, the GOP cache and the viewers
//! don't care which.

use crate::h264::H264Relay;
use crate::h265::H265Relay;
use crate::media::TrackInfo;
use crate::media::VideoPacket;
use crate::rtp::RtpPacket;
use crate::vp8::Vp8Relay;

/// What a browser must be able to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264, matched against the browser's offered profiles.
    H264 {
        /// profile_idc, constraint flags, level_idc of the camera's SPS (or SDP); `None`
        /// until either is known.
        profile_level_id: Option<[u8; 3]>,
    },
    /// H.265, matched against the browser's offered profile and tier.
    H265 {
        /// profile-id, tier-flag, level-id of the camera's SPS (or SDP); `None` until either
        /// is known.
        profile_tier_level: Option<[u8; 3]>,
    },
    /// VP8.
    Vp8,
}

/// What the camera's H.264 B-frames mean for viewers, and what to do about them.
pub const H264_B_FRAMES_WARNING: &str = "the camera's H.264 has B-frames, which browsers play \
jerkily over WebRTC: set the camera's encoder to a profile or GOP setting without B-frames (e.g. \
baseline profile)";

/// A stream's video relay, one variant per camera codec.
pub enum VideoRelay {
    /// H.264: re-fragments oversized packets, puts SPS/PPS before keyframes.
    H264(Box<H264Relay>),
    /// H.265: re-fragments oversized packets, puts VPS/SPS/PPS before keyframes.
    H265(Box<H265Relay>),
    /// VP8: forwards the camera's packets, renumbered.
    Vp8(Vp8Relay),
}

impl VideoRelay {
    /// The relay for a camera video track, or None for a codec camgate can't pass to browsers.
    pub fn for_track(track: &TrackInfo, max_payload: usize) -> Option<VideoRelay> {
        let fmtp = track.fmtp.as_deref();
        match track.encoding.to_ascii_uppercase().as_str() {
            "H264" => Some(Self::H264(Box::new(H264Relay::new(fmtp, max_payload)))),
            "H265" if Self::refusal(track).is_none() => {
                Some(Self::H265(Box::new(H265Relay::new(fmtp, max_payload))))
            }
            "VP8" => Some(Self::Vp8(Vp8Relay::new(max_payload))),
            _ => None,
        }
    }

    /// Why a video track of a codec camgate knows can't be relayed after all (H.265 with
    /// decoding order numbers).
    pub fn refusal(track: &TrackInfo) -> Option<String> {
        let h265 = track.encoding.eq_ignore_ascii_case("H265");
        h265.then(|| crate::h265::params::unsupported(track.fmtp.as_deref()))
            .flatten()
    }

    /// One camera RTP packet in; the packets for browsers it completes are appended to `out`.
    pub fn push(&mut self, packet: &RtpPacket<'_>, out: &mut Vec<VideoPacket>) {
        match self {
            Self::H264(r) => r.push(packet, out),
            Self::H265(r) => r.push(packet, out),
            Self::Vp8(r) => r.push(packet, out),
        }
    }

    /// What a browser must decode to take this stream, as far as known now.
    pub fn codec(&self) -> VideoCodec {
        match self {
            Self::H264(r) => VideoCodec::H264 {
                profile_level_id: r.profile_level_id().or_else(|| r.fmtp_profile_level_id()),
            },
            Self::H265(r) => VideoCodec::H265 {
                profile_tier_level: r.profile_tier_level(),
            },
            Self::Vp8(_) => VideoCodec::Vp8,
        }
    }

    /// B-frames can't be shown smoothly over WebRTC (browsers decode but mistime them).
    pub fn has_b_frames(&self) -> bool {
        match self {
            Self::H264(r) => r.has_b_frames(),
            Self::H265(r) => r.sps_info().is_some_and(|i| i.has_b_frames()),
            Self::Vp8(_) => false,
        }
    }

    /// What the camera's B-frames mean for viewers and what to do, once it has B-frames.
    pub fn b_frames_warning(&self) -> Option<String> {
        if !self.has_b_frames() {
            return None;
        }
        let Self::H265(r) = self else {
            return Some(H264_B_FRAMES_WARNING.to_owned());
        };
        let info = r.sps_info()?;
        let pyramid = if info.has_pyramid() {
            ", B-pyramid"
        } else {
            ""
        };
        Some(format!(
            "the camera's H.265 has B-frames ({} reordered{pyramid}), which browsers play \
             jerkily over WebRTC: set the camera's encoder to a GOP without B-frames",
            info.max_num_reorder_pics
        ))
    }

    /// What the camera's video is, as far as known now (for metrics).
    pub fn facts(&self) -> VideoFacts {
        match self {
            Self::H264(r) => {
                let pli = r.profile_level_id().or_else(|| r.fmtp_profile_level_id());
                VideoFacts {
                    codec: "H264",
                    profile: pli.map(|p| h264_profile_name(p[0], p[1])),
                    level: pli.map(|p| format!("{}.{}", p[2] / 10, p[2] % 10)),
                    // H.264 SPS sizes are not parsed; B-slices are seen, not counted.
                    size: None,
                    b_frames: r.has_b_frames(),
                    reorder: None,
                }
            }
            Self::H265(r) => {
                let sps = r.sps_info();
                VideoFacts {
                    codec: "H265",
                    profile: sps.map(|i| i.profile_name()),
                    level: sps.map(|i| i.level_name()),
                    size: sps.map(|i| (i.width, i.height)),
                    b_frames: sps.is_some_and(|i| i.has_b_frames()),
                    reorder: sps.map(|i| i.max_num_reorder_pics),
                }
            }
            Self::Vp8(r) => VideoFacts {
                codec: "VP8",
                profile: None,
                level: None,
                size: r
                    .last_keyframe_size()
                    .map(|(w, h)| (u32::from(w), u32::from(h))),
                b_frames: false,
                reorder: Some(0),
            },
        }
    }

    /// "H264 42c01e" / "VP8 640x360", for logs and stream info.
    pub fn describe(&self) -> String {
        match self {
            Self::H264(r) => match r.profile_level_id().or_else(|| r.fmtp_profile_level_id()) {
                Some(p) => format!("H264 {:02x}{:02x}{:02x}", p[0], p[1], p[2]),
                None => "H264".to_owned(),
            },
            Self::H265(r) => match r.sps_info() {
                Some(i) => format!("H265 {}", i.describe()),
                None => "H265".to_owned(),
            },
            Self::Vp8(r) => match r.last_keyframe_size() {
                Some((w, h)) => format!("VP8 {w}x{h}"),
                None => "VP8".to_owned(),
            },
        }
    }
}

/// What a camera's video is, for `/metrics`: what the SPS (or VP8 keyframe) says, as far as
/// known. `None`: not known (yet, or not parsed for this codec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFacts {
    /// "H264", "H265", "VP8".
    pub codec: &'static str,
    /// "High", "Constrained Baseline", "Main", "Main 10", …
    pub profile: Option<String>,
    /// "3.1", "4", …
    pub level: Option<String>,
    /// Width and height in pixels.
    pub size: Option<(u32, u32)>,
    /// The camera sends B-frames (H.264: a B-slice was seen; H.265: the SPS reorders).
    pub b_frames: bool,
    /// Pictures the decoder reorders (H.265: `sps_max_num_reorder_pics`).
    pub reorder: Option<u32>,
}

/// The H.264 profile of a profile_idc and its constraint flags byte (RFC 6184 profile-level-id).
fn h264_profile_name(profile_idc: u8, constraints: u8) -> String {
    let constrained = constraints & 0x40 != 0;
    match profile_idc {
        66 if constrained => "Constrained Baseline".into(),
        66 => "Baseline".into(),
        77 => "Main".into(),
        88 => "Extended".into(),
        100 => "High".into(),
        110 => "High 10".into(),
        122 => "High 4:2:2".into(),
        244 => "High 4:4:4".into(),
        p => format!("profile {p}"),
    }
}
