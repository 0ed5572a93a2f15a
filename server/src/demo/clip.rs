//! The demo clip: an H.264 Annex-B byte stream split into access units (frames).
//!
//! The file on disk has lost the per-frame boundaries of the encoder, so they are
//! rebuilt here with the rules of H.264 §7.4.1.2.3 (see [`Clip::parse`]).

use std::io;

/// Frames per second of the shipped clip (made by `scripts/make-demo-clip.sh`).
pub const FRAME_RATE: u32 = 30;

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;

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

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Splits an Annex-B byte stream at its start codes (3 or 4 bytes).
pub fn split_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                push_nal(&mut nals, &data[s..i]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_nal(&mut nals, &data[s..]);
    }
    nals
}

fn push_nal<'a>(nals: &mut Vec<&'a [u8]>, nal: &'a [u8]) {
    // A NAL never ends in 0x00 (its last byte holds the RBSP stop bit), so trailing
    // zeros are the first byte of a 4-byte start code or trailing_zero_8bits.
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    if end > 0 {
        nals.push(&nal[..end]);
    }
}

fn is_vcl(t: u8) -> bool {
    (1..=5).contains(&t)
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

        for nal in split_nals(data) {
            let t = nal_type(nal);
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
        format!("{},{}", base64(self.sps), base64(self.pps))
    }
}

/// Standard base64 with padding; small enough not to warrant a dependency.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .all(|au| au.nals.iter().any(|n| is_vcl(nal_type(n)))));
        // No delimiters leak into the RTP stream.
        assert!(clip
            .access_units
            .iter()
            .flat_map(|au| au.nals.iter())
            .all(|n| nal_type(n) != NAL_AUD));
    }

    #[test]
    fn first_au_is_idr_with_parameter_sets_and_gop_is_30() {
        let clip = clip();
        let first = &clip.access_units[0];
        assert!(first.idr);
        let types: Vec<u8> = first.nals.iter().map(|n| nal_type(n)).collect();
        assert!(
            types.contains(&NAL_SPS) && types.contains(&NAL_PPS),
            "{types:?}"
        );
        for (i, au) in clip.access_units.iter().enumerate() {
            assert_eq!(au.idr, i % 30 == 0, "AU {i}");
            if au.idr {
                // SPS/PPS repeated before every IDR so a late joiner can decode.
                let t: Vec<u8> = au.nals.iter().map(|n| nal_type(n)).collect();
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
    }

    #[test]
    fn split_handles_3_and_4_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0x88, 0,
        ];
        let nals = split_nals(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 0x88][..]]
        );
        assert!(split_nals(&[1, 2, 3]).is_empty());
        assert!(Clip::parse(&[]).is_err());
        assert!(
            Clip::parse(&[0, 0, 1, 0x41, 0x80]).is_err(),
            "no SPS / no IDR"
        );
    }

    #[test]
    fn base64_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
