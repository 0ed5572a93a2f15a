//! The demo clip: an H.264 Annex-B byte stream split into access units (frames).
//!
//! The file on disk has lost the per-frame boundaries of the encoder, so they are
//! rebuilt here with the rules of H.264 §7.4.1.2.3 (see [`Clip::parse`]).

use std::io;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use camgate_core::h264::nal::{
    is_vcl, nal_type, split_annex_b, NAL_AUD, NAL_FILLER, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS,
};

/// Frames per second of the shipped clip (made by `scripts/make-demo-clip.sh`).
pub const FRAME_RATE: u32 = 30;

/// One coded picture with the parameter sets / SEI that precede it.
#[derive(Debug, Clone)]
pub struct AccessUnit<'a> {
    /// NAL units without start codes, in decoding order.
    pub nals: Vec<&'a [u8]>,
    /// True when the picture is an IDR (a decoder can start here).
    pub idr: bool,
}

#[derive(Debug, Clone)]
pub struct Clip<'a> {
    pub access_units: Vec<AccessUnit<'a>>,
    /// First SPS / PPS of the stream, advertised out of band in the SDP.
    pub sps: &'a [u8],
    pub pps: &'a [u8],
}

impl<'a> Clip<'a> {
    /// Parses the clip and checks what the streamer relies on: it starts with an IDR
    /// (so looping is seamless and every client starts decodable) and has SPS/PPS.
    pub fn parse(data: &'a [u8]) -> io::Result<Clip<'a>> {
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("demo clip: {m}"));
        let mut access_units: Vec<AccessUnit<'a>> = Vec::new();
        let mut cur = AccessUnit {
            nals: Vec::new(),
            idr: false,
        };
        let mut cur_has_vcl = false;
        let (mut sps, mut pps) = (None, None);

        for nal in split_annex_b(data) {
            let t = nal_type(nal[0]);
            // §7.4.1.2.3: an AUD, SPS, PPS, SEI or types 14..=18 after a picture's slices
            // open the next access unit; so does a slice with first_mb_in_slice == 0
            // (ue(v) == 0 is the single bit '1'), i.e. the first slice of a new picture.
            // x264 writes several slices per picture, hence the slice check.
            let starts_au = match t {
                6..=9 | 14..=18 => true,
                NAL_SLICE | NAL_IDR => nal.get(1).is_some_and(|b| b & 0x80 != 0),
                _ => false,
            };
            if starts_au && cur_has_vcl {
                access_units.push(std::mem::replace(
                    &mut cur,
                    AccessUnit {
                        nals: Vec::new(),
                        idr: false,
                    },
                ));
                cur_has_vcl = false;
            }
            match t {
                // Delimiters and filler carry nothing useful over RTP (RFC 6184 §5.2 allows dropping them).
                NAL_AUD | NAL_FILLER => continue,
                NAL_SPS if sps.is_none() => sps = Some(nal),
                NAL_PPS if pps.is_none() => pps = Some(nal),
                _ => {}
            }
            if is_vcl(t) {
                cur_has_vcl = true;
                cur.idr |= t == NAL_IDR;
            }
            cur.nals.push(nal);
        }
        if cur_has_vcl {
            access_units.push(cur);
        }

        let sps = sps.ok_or_else(|| bad("no SPS"))?;
        let pps = pps.ok_or_else(|| bad("no PPS"))?;
        if sps.len() < 4 {
            return Err(bad("SPS too short"));
        }
        let first = access_units.first().ok_or_else(|| bad("no pictures"))?;
        if !first.idr {
            return Err(bad("does not start with an IDR"));
        }
        Ok(Clip {
            access_units,
            sps,
            pps,
        })
    }

    /// profile_idc, constraint flags and level_idc from the SPS as 6 hex digits (RFC 6184 §8.1).
    pub fn profile_level_id(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.sps[1], self.sps[2], self.sps[3])
    }

    /// `sprop-parameter-sets` value for the SDP fmtp line.
    pub fn sprop_parameter_sets(&self) -> String {
        format!("{},{}", BASE64.encode(self.sps), BASE64.encode(self.pps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camgate_core::h264::params::parse_sprop_parameter_sets;

    fn clip() -> Clip<'static> {
        Clip::parse(super::super::CLIP_BYTES).expect("shipped clip parses")
    }

    #[test]
    fn shipped_clip_is_ten_seconds_at_30fps() {
        let clip = clip();
        assert_eq!(clip.access_units.len(), 300);
        assert!(clip
            .access_units
            .iter()
            .all(|au| au.nals.iter().any(|n| is_vcl(nal_type(n[0])))));
        // No delimiters leak into the RTP stream.
        assert!(clip
            .access_units
            .iter()
            .flat_map(|au| au.nals.iter())
            .all(|n| nal_type(n[0]) != NAL_AUD));
    }

    #[test]
    fn first_au_is_idr_with_parameter_sets_and_gop_is_30() {
        let clip = clip();
        let first = &clip.access_units[0];
        assert!(first.idr);
        let types: Vec<u8> = first.nals.iter().map(|n| nal_type(n[0])).collect();
        assert!(
            types.contains(&NAL_SPS) && types.contains(&NAL_PPS),
            "{types:?}"
        );
        for (i, au) in clip.access_units.iter().enumerate() {
            assert_eq!(au.idr, i % 30 == 0, "AU {i}");
            if au.idr {
                // SPS/PPS repeated before every IDR so a late joiner can decode.
                let t: Vec<u8> = au.nals.iter().map(|n| nal_type(n[0])).collect();
                assert!(
                    t.contains(&NAL_SPS) && t.contains(&NAL_PPS),
                    "AU {i}: {t:?}"
                );
            }
        }
    }

    #[test]
    fn profile_level_id_is_constrained_baseline() {
        let clip = clip();
        let pli = clip.profile_level_id();
        assert_eq!(pli.len(), 6);
        assert_eq!(&pli[..2], "42", "baseline profile_idc");
        // constraint_set1_flag marks *constrained* baseline.
        let flags = u8::from_str_radix(&pli[2..4], 16).unwrap();
        assert!(flags & 0x40 != 0, "constraint_set1 in {pli}");
        assert!(matches!(&pli[4..], "1e" | "1f"), "level 3.0/3.1 in {pli}");
        assert!(clip.sprop_parameter_sets().starts_with("Z0"));
        // What the gateway will read back from the SDP.
        assert_eq!(
            parse_sprop_parameter_sets(&clip.sprop_parameter_sets()),
            vec![clip.sps.to_vec(), clip.pps.to_vec()]
        );
    }

    #[test]
    fn bad_clips_are_refused() {
        assert!(Clip::parse(&[]).is_err());
        assert!(
            Clip::parse(&[0, 0, 1, 0x41, 0x80]).is_err(),
            "no SPS / no IDR"
        );
    }
}
