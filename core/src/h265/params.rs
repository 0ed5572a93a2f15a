//! VPS/SPS/PPS store of an H.265 stream and the SDP fmtp parameters that carry them
//! (`sprop-vps`, `sprop-sps`, `sprop-pps`, RFC 7798 7.1).

use std::sync::Arc;

use super::nal::{nal_type, NAL_AP, NAL_PPS, NAL_SPS, NAL_VPS};
use super::sps::SpsInfo;
use crate::h264::params::{fmtp_param, parse_sprop_parameter_sets, store_parameter_set};

/// Why a camera's H.265 can't be relayed, from its fmtp: `sprop-max-don-diff` > 0 means its
/// packets carry decoding order numbers (DONL) and may be sent out of decoding order, which
/// browsers' depacketizers don't handle.
pub fn unsupported(fmtp: Option<&str>) -> Option<String> {
    let don_diff = fmtp_param(fmtp?, "sprop-max-don-diff")?;
    (don_diff.parse::<u32>().map_or(true, |d| d > 0)).then(|| {
        format!(
            "the camera's H.265 uses decoding order numbers (sprop-max-don-diff={don_diff}), \
             which WebRTC receivers can't take: set the camera to send H.265 in decoding order \
             (or use its H.264 stream)"
        )
    })
}

/// The latest VPS, SPS and PPS of a stream, what the SPS says, and a ready-made aggregation
/// packet [VPS, SPS, PPS] to send before keyframes. Updates compare first, so a camera
/// repeating the same sets neither allocates nor rebuilds anything.
#[derive(Debug, Clone, Default)]
pub struct ParameterSets {
    vps: Vec<u8>,
    sps: Vec<u8>,
    pps: Vec<u8>,
    info: Option<SpsInfo>,
    ap: Option<Arc<[u8]>>,
}

impl ParameterSets {
    /// Learns the parameter sets of an fmtp string's sprop-vps/sps/pps.
    pub fn learn_fmtp(&mut self, fmtp: &str) {
        for key in ["sprop-vps", "sprop-sps", "sprop-pps"] {
            let Some(value) = fmtp_param(fmtp, key) else {
                continue;
            };
            for nal in parse_sprop_parameter_sets(value) {
                self.learn(&nal);
            }
        }
    }

    /// Offers a NAL unit; VPS, SPS and PPS are kept. True if it was one (new or unchanged).
    pub fn learn(&mut self, nal: &[u8]) -> bool {
        let t = nal.first().map_or(u8::MAX, |&h| nal_type(h));
        let slot = match t {
            NAL_VPS => &mut self.vps,
            NAL_SPS => &mut self.sps,
            NAL_PPS => &mut self.pps,
            _ => return false,
        };
        match store_parameter_set(slot, nal, 3) {
            None => false,
            Some(false) => true,
            Some(true) => {
                if t == NAL_SPS {
                    self.info = SpsInfo::parse(nal);
                }
                self.ap = self.build_ap();
                true
            }
        }
    }

    fn build_ap(&self) -> Option<Arc<[u8]>> {
        let sets = [&self.vps, &self.sps, &self.pps];
        if sets.iter().any(|s| s.is_empty()) {
            return None;
        }
        // Payload header: F is the OR of the units' F, LayerId and TID the lowest (RFC 7798
        // 4.4.2); parameter sets have LayerId 0, and TID 0 (TID+1 = 1) in practice.
        let f = sets.iter().fold(0, |acc, s| acc | (s[0] & 0x80));
        let tid = sets.iter().map(|s| s[1] & 0x07).min().unwrap_or(1).max(1);
        let mut p = Vec::with_capacity(2 + sets.iter().map(|s| 2 + s.len()).sum::<usize>());
        p.extend_from_slice(&[f | (NAL_AP << 1), tid]);
        for s in sets {
            // Lengths are bounded by u16::MAX in `store_parameter_set`.
            p.extend_from_slice(&(s.len() as u16).to_be_bytes());
            p.extend_from_slice(s);
        }
        Some(p.into())
    }

    /// Aggregation packet [VPS, SPS, PPS], once all three are known.
    pub fn ap(&self) -> Option<&Arc<[u8]>> {
        self.ap.as_ref()
    }

    /// What the latest SPS says, if it could be parsed.
    pub fn sps_info(&self) -> Option<SpsInfo> {
        self.info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h265::nal::ap_units;

    /// rtph265pay's caps for x265's 640x360 Main stream (core/tests/data/h265/x265_zerolatency).
    const FMTP: &str = "sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA/ugJA;\
        sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA/oAUCAXHy5bpKTC//AAEAAWoMDAwIAAADAAgAAAMA8EA=;\
        sprop-pps=RAHAcYMS";

    #[test]
    fn sprop_gives_the_three_sets_and_the_sps_facts() {
        let mut ps = ParameterSets::default();
        ps.learn_fmtp(FMTP);
        let ap = ps.ap().expect("all three known").clone();
        assert_eq!(nal_type(ap[0]), NAL_AP);
        let types: Vec<u8> = ap_units(&ap).map(|n| nal_type(n[0])).collect();
        assert_eq!(types, [NAL_VPS, NAL_SPS, NAL_PPS]);
        let info = ps.sps_info().unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.describe(), "Main L2.1 640x360");
        assert!(!info.has_b_frames());
        // Repeating the same sets reuses the packet.
        ps.learn_fmtp(FMTP);
        assert!(Arc::ptr_eq(&ap, ps.ap().unwrap()));
        assert!(!ps.learn(&[0x26, 0x01, 0xAF]), "an IDR is no parameter set");
    }

    #[test]
    fn decoding_order_numbers_are_refused() {
        assert!(unsupported(Some(FMTP)).is_none());
        assert!(unsupported(Some("sprop-max-don-diff=0")).is_none());
        assert!(unsupported(None).is_none());
        let why = unsupported(Some("profile-id=1;sprop-max-don-diff=2")).unwrap();
        assert!(why.contains("sprop-max-don-diff=2"), "{why}");
    }
}
