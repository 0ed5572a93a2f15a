//! What an H.265 SPS (ITU-T H.265 7.3.2.2) says that viewers and operators care about: profile,
//! tier and level (for the SDP's `profile-id`, `tier-flag`, `level-id`), the picture size after
//! cropping, and how much the decoder must reorder (B-frames).

use crate::h264::slice::RbspBits;

/// The name of a general_profile_idc (SDP `profile-id`): "Main", "Main 10", …
pub fn profile_name(profile_idc: u8) -> String {
    match profile_idc {
        1 => "Main".into(),
        2 => "Main 10".into(),
        3 => "Main Still".into(),
        4 => "RExt".into(),
        p => format!("profile {p}"),
    }
}

/// The SPS fields camgate reports and negotiates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// general_profile_idc (1 Main, 2 Main 10, 3 Main Still Picture, 4 range extensions…).
    pub profile_idc: u8,
    /// general_tier_flag: false Main tier, true High tier.
    pub high_tier: bool,
    /// general_level_idc: 30 × the level (93 = 3.1, 123 = 4.1).
    pub level_idc: u8,
    /// Luma width after the conformance window.
    pub width: u32,
    /// Luma height after the conformance window.
    pub height: u32,
    /// sps_max_num_reorder_pics of the highest sub-layer: frames shown after later-decoded ones
    /// (0: no B-frames).
    pub max_num_reorder_pics: u32,
    /// sps_max_dec_pic_buffering_minus1 + 1 of the highest sub-layer.
    pub max_dec_pic_buffering: u32,
}

impl SpsInfo {
    /// Parses an SPS NAL unit (with its 2-byte header). `None` if it is truncated or not an SPS
    /// camgate understands.
    pub fn parse(nal: &[u8]) -> Option<SpsInfo> {
        let mut r = RbspBits::new(nal.get(2..)?);
        let _vps_id = r.bits(4)?;
        let max_sub_layers_minus1 = r.bits(3)? as u8;
        let _temporal_id_nesting = r.bits(1)?;
        // profile_tier_level(1, max_sub_layers_minus1)
        let _profile_space = r.bits(2)?;
        let high_tier = r.bit()?;
        let profile_idc = r.bits(5)? as u8;
        let _compatibility_flags = r.bits(32)?;
        // progressive, interlaced, non-packed, frame-only flags and 43 + 1 bits of constraints.
        for _ in 0..48 {
            r.bit()?;
        }
        let level_idc = r.bits(8)? as u8;
        let mut present = [(false, false); 8];
        for p in present.iter_mut().take(usize::from(max_sub_layers_minus1)) {
            *p = (r.bit()?, r.bit()?);
        }
        if max_sub_layers_minus1 > 0 {
            for _ in max_sub_layers_minus1..8 {
                r.bits(2)?;
            }
        }
        for &(profile, level) in present.iter().take(usize::from(max_sub_layers_minus1)) {
            // sub_layer profile: 2+1+5+32+4+43+1 bits; level: 8 bits.
            let skip = if profile { 88 } else { 0 } + if level { 8 } else { 0 };
            for _ in 0..skip {
                r.bit()?;
            }
        }
        let _sps_id = r.ue()?;
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            let _separate_colour_plane = r.bit()?;
        }
        let coded_width = r.ue()?;
        let coded_height = r.ue()?;
        let (mut width, mut height) = (coded_width, coded_height);
        if r.bit()? {
            let (sub_w, sub_h) = match chroma_format_idc {
                1 => (2, 2),
                2 => (2, 1),
                _ => (1, 1),
            };
            let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
            let crop_w = sub_w * u64::from(left) + sub_w * u64::from(right);
            let crop_h = sub_h * u64::from(top) + sub_h * u64::from(bottom);
            width = u32::try_from(u64::from(coded_width).checked_sub(crop_w)?).ok()?;
            height = u32::try_from(u64::from(coded_height).checked_sub(crop_h)?).ok()?;
        }
        let _bit_depth_luma_minus8 = r.ue()?;
        let _bit_depth_chroma_minus8 = r.ue()?;
        let _log2_max_poc_lsb_minus4 = r.ue()?;
        let ordering_info_for_all = r.bit()?;
        let first = if ordering_info_for_all {
            0
        } else {
            max_sub_layers_minus1
        };
        let (mut dpb, mut reorder) = (0, 0);
        for _ in first..=max_sub_layers_minus1 {
            dpb = r.ue()?.saturating_add(1);
            reorder = r.ue()?;
            let _max_latency_increase_plus1 = r.ue()?;
        }
        Some(SpsInfo {
            profile_idc,
            high_tier,
            level_idc,
            width,
            height,
            max_num_reorder_pics: reorder,
            max_dec_pic_buffering: dpb,
        })
    }

    /// "Main", "Main 10", … as the SDP and camera menus name them.
    pub fn profile_name(&self) -> String {
        profile_name(self.profile_idc)
    }

    /// "4.1" from level_idc 123; "5" from 150.
    pub fn level_name(&self) -> String {
        let (major, minor) = (self.level_idc / 30, self.level_idc % 30 / 3);
        if minor == 0 {
            major.to_string()
        } else {
            format!("{major}.{minor}")
        }
    }

    /// The decoder reorders pictures: the camera sends B-frames.
    pub fn has_b_frames(&self) -> bool {
        self.max_num_reorder_pics > 0
    }

    /// More than one frame reordered: hierarchical B-frames (a B-pyramid).
    pub fn has_pyramid(&self) -> bool {
        self.max_num_reorder_pics > 1
    }

    /// "Main L4.1 1920x1080" (" High tier" after the level when so).
    pub fn describe(&self) -> String {
        let tier = if self.high_tier { " High tier" } else { "" };
        format!(
            "{} L{}{tier} {}x{}",
            self.profile_name(),
            self.level_name(),
            self.width,
            self.height
        )
    }
}
