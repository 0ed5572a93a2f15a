//! SPS/PPS store and the SDP fmtp parameters that carry them.

use std::sync::Arc;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::nal::{nal_type, split_annex_b, NAL_PPS, NAL_SPS, NAL_STAP_A};

/// Cameras are sloppy with base64 padding in sprop-parameter-sets, so accept it either way.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Looks up one `key=value` of an fmtp string (`a=fmtp:96 key=value;key=value`, without the
/// payload type), case-insensitively on the key.
pub fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// Decodes `sprop-parameter-sets` (comma-separated base64 NAL units). Undecodable entries are
/// skipped rather than failing the whole value; entries that decode to Annex-B data (a camera
/// quirk) are split into their NAL units.
pub fn parse_sprop_parameter_sets(value: &str) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    for item in value.split(',') {
        let item: String = item.chars().filter(|c| !c.is_whitespace()).collect();
        if item.is_empty() {
            continue;
        }
        if let Ok(bytes) = LENIENT_B64.decode(item.as_bytes()) {
            nals.extend(split_annex_b(&bytes).map(<[u8]>::to_vec));
        }
    }
    nals
}

/// Parses a 6-hex-digit `profile-level-id` ("42e01f").
pub fn parse_profile_level_id(hex: &str) -> Option<[u8; 3]> {
    let hex = hex.trim();
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The profile-level-id of an SPS NAL unit: profile_idc, constraint flags, level_idc are the
/// three bytes after the NAL header.
pub fn sps_profile_level_id(sps: &[u8]) -> Option<[u8; 3]> {
    match sps.get(1..4)? {
        &[a, b, c] => Some([a, b, c]),
        _ => None,
    }
}

/// Puts a parameter set NAL unit in `slot` unless it is the same already: `Some(changed)`, or
/// `None` for garbage (shorter than `min_len`, longer than an aggregation packet can carry, or
/// holding a start code).
pub(crate) fn store_parameter_set(slot: &mut Vec<u8>, nal: &[u8], min_len: usize) -> Option<bool> {
    if nal.len() < min_len || nal.len() > usize::from(u16::MAX) {
        return None;
    }
    // Emulation prevention keeps 00 00 00/01/02 out of every NAL unit; a "parameter set"
    // holding one is garbage, and re-splitting it at the start code would mangle the
    // parameter sets sent before keyframes (found by fuzzing).
    if nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2) {
        return None;
    }
    if slot.as_slice() == nal {
        return Some(false);
    }
    slot.clear();
    slot.extend_from_slice(nal);
    Some(true)
}

/// The latest SPS and PPS of a stream, plus a ready-made STAP-A carrying both.
///
/// Updates compare first, so the steady state (camera repeating the same SPS/PPS before every
/// IDR) neither allocates nor rebuilds the packet.
#[derive(Debug, Clone, Default)]
pub struct ParameterSets {
    sps: Vec<u8>,
    pps: Vec<u8>,
    stap_a: Option<Arc<[u8]>>,
}

impl ParameterSets {
    /// Knows no parameter set yet.
    pub fn new() -> ParameterSets {
        ParameterSets::default()
    }

    /// Learns the SPS/PPS found in an fmtp string's sprop-parameter-sets, if any.
    pub fn learn_fmtp(&mut self, fmtp: &str) {
        if let Some(v) = fmtp_param(fmtp, "sprop-parameter-sets") {
            for nal in parse_sprop_parameter_sets(v) {
                self.learn(&nal);
            }
        }
    }

    /// Offers a NAL unit; SPS and PPS are remembered, anything else ignored. Returns true if the
    /// unit was accepted as an SPS or PPS (new or unchanged).
    pub fn learn(&mut self, nal: &[u8]) -> bool {
        let (slot, min_len) = match nal.first().map(|&h| nal_type(h)) {
            // Shorter SPSs cannot even hold profile/level; treat them as garbage.
            Some(NAL_SPS) => (&mut self.sps, 4),
            Some(NAL_PPS) => (&mut self.pps, 2),
            _ => return false,
        };
        match store_parameter_set(slot, nal, min_len) {
            Some(true) => {
                self.rebuild();
                true
            }
            Some(false) => true,
            None => false,
        }
    }

    fn rebuild(&mut self) {
        self.stap_a = None;
        if self.sps.is_empty() || self.pps.is_empty() {
            return;
        }
        let mut p = Vec::with_capacity(5 + self.sps.len() + self.pps.len());
        // F is the OR and NRI the maximum of the units' (RFC 6184 5.7.1).
        let f = (self.sps[0] | self.pps[0]) & 0x80;
        let nri = (self.sps[0] & 0x60).max(self.pps[0] & 0x60);
        p.push(f | nri | NAL_STAP_A);
        for nal in [&self.sps, &self.pps] {
            // Lengths are bounded by u16::MAX in `learn`.
            p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            p.extend_from_slice(nal);
        }
        self.stap_a = Some(p.into());
    }

    /// The latest SPS (with its NAL header), if one was seen.
    pub fn sps(&self) -> Option<&[u8]> {
        (!self.sps.is_empty()).then_some(self.sps.as_slice())
    }

    /// The latest PPS (with its NAL header), if one was seen.
    pub fn pps(&self) -> Option<&[u8]> {
        (!self.pps.is_empty()).then_some(self.pps.as_slice())
    }

    /// Whether both SPS and PPS are known, so a decoder could start at the next IDR.
    pub fn is_complete(&self) -> bool {
        self.stap_a.is_some()
    }

    /// STAP-A [SPS, PPS], once both are known.
    pub fn stap_a(&self) -> Option<&Arc<[u8]>> {
        self.stap_a.as_ref()
    }

    /// The SPS's profile_idc, constraint flags and level_idc: the SDP `profile-level-id`.
    pub fn profile_level_id(&self) -> Option<[u8; 3]> {
        sps_profile_level_id(&self.sps)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_parameter_set_holding_a_start_code_is_refused() {
        let mut p = ParameterSets::new();
        assert!(!p.learn(&[0x67, 0x42, 0xc0, 0x1e, 0x00, 0x00, 0x01, 0x65]));
        assert!(!p.learn(&[0x68, 0x00, 0x00, 0x00]));
        assert!(
            p.learn(&[0x67, 0x42, 0xc0, 0x1e, 0x00, 0x00, 0x03, 0x01]),
            "emulation prevention is fine"
        );
    }

    use super::*;

    // A Raspberry-Pi-style camera's fmtp (Baseline, level 3.0).
    const FMTP: &str = "packetization-mode=1; profile-level-id=42C01E; \
                        sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAA8jxgyS,aM4yyA==";

    #[test]
    fn sprop_decodes_to_sps_and_pps() {
        let nals = parse_sprop_parameter_sets(fmtp_param(FMTP, "SPROP-parameter-sets").unwrap());
        assert_eq!(nals.len(), 2);
        // "Z0LA" = 011001 110100 001011 000000 → 0x67 0x42 0xC0; "Htk" → 0x1E 0xD9 ...
        // 28 base64 chars, no padding → 21 bytes.
        let sps = [
            0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x03, 0xC5, 0x68, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
            0x00, 0x00, 0x0F, 0x23, 0xC6, 0x0C, 0x92,
        ];
        assert_eq!(nals[0], sps);
        // "aM4yyA==" → 0x68 0xCE 0x32 0xC8
        assert_eq!(nals[1], vec![0x68, 0xCE, 0x32, 0xC8]);

        let mut ps = ParameterSets::new();
        assert!(!ps.is_complete());
        ps.learn_fmtp(FMTP);
        assert!(ps.is_complete());
        assert_eq!(ps.profile_level_id(), Some([0x42, 0xC0, 0x1E]));
        let stap = ps.stap_a().unwrap();
        assert_eq!(stap[0], 0x78); // NRI 3 (from 0x67/0x68), type 24
        assert_eq!(&stap[1..3], &[0, 21]);
        assert_eq!(&stap[3..24], &sps);
        assert_eq!(&stap[24..], &[0, 4, 0x68, 0xCE, 0x32, 0xC8]);
    }

    #[test]
    fn lenient_sprop() {
        // Missing padding, stray spaces, empty entries, Annex-B wrapped SPS, garbage entry.
        let nals = parse_sprop_parameter_sets(" aM4yyA , ,!!!,AAAAAWdCwB4= ");
        assert_eq!(
            nals,
            vec![vec![0x68, 0xCE, 0x32, 0xC8], vec![0x67, 0x42, 0xC0, 0x1E]]
        );
    }

    #[test]
    fn profile_level_id_hex() {
        assert_eq!(parse_profile_level_id("42e01f"), Some([0x42, 0xE0, 0x1F]));
        assert_eq!(parse_profile_level_id(" 640028 "), Some([0x64, 0x00, 0x28]));
        assert_eq!(parse_profile_level_id("42e01"), None);
        assert_eq!(parse_profile_level_id("zz0000"), None);
        assert_eq!(parse_profile_level_id("4é01"), None);
        assert_eq!(fmtp_param(FMTP, "profile-level-id"), Some("42C01E"));
        assert_eq!(fmtp_param(FMTP, "missing"), None);
    }

    #[test]
    fn learning_is_compare_first() {
        let mut ps = ParameterSets::new();
        assert!(!ps.learn(&[0x67, 0x42]));
        assert!(!ps.learn(&[0x65, 1, 2, 3]));
        assert!(ps.learn(&[0x67, 0x64, 0x00, 0x28]));
        assert!(ps.learn(&[0x68, 1]));
        let a = ps.stap_a().unwrap().clone();
        ps.learn(&[0x68, 1]);
        assert!(Arc::ptr_eq(&a, ps.stap_a().unwrap()));
        ps.learn(&[0x68, 2]);
        assert!(!Arc::ptr_eq(&a, ps.stap_a().unwrap()));
        assert_eq!(ps.profile_level_id(), Some([0x64, 0x00, 0x28]));
        assert_eq!(ps.pps(), Some(&[0x68, 2][..]));
    }
}
