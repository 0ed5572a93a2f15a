//! Just enough of the slice header (ITU-T H.264 7.3.3) to tell the slice type: used by the relay
//! to notice cameras that send B-slices (browsers decode them, but they add reordering delay and
//! some WebRTC stacks mishandle them), at a cost of a few bit operations per slice start.

/// Slice header bytes looked at. The two fields read come first; a ue(v) takes at most 65 bits,
/// and real ones far fewer (`first_mb_in_slice` of a 4K picture is 31 bits, `slice_type` 7), so
/// this covers both even with emulation-prevention bytes in between.
const MAX_HEADER_BYTES: usize = 20;

/// `slice_type` (0..=9; 5..=9 mean "all slices of the picture have this type").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceType {
    /// Predicted from earlier pictures.
    P,
    /// Bi-predicted, possibly from later pictures: the decoder must reorder.
    B,
    /// Intra only.
    I,
    /// Switching P (Extended profile).
    Sp,
    /// Switching I (Extended profile).
    Si,
}

impl SliceType {
    /// The type of a `slice_type` code; `None` above 9.
    pub fn from_code(code: u32) -> Option<SliceType> {
        Some(match code % 5 {
            _ if code > 9 => return None,
            0 => SliceType::P,
            1 => SliceType::B,
            2 => SliceType::I,
            3 => SliceType::Sp,
            _ => SliceType::Si,
        })
    }
}

/// Reads bits from the start of an RBSP given as NAL unit payload bytes (emulation-prevention
/// bytes `00 00 03` are skipped on the fly, nothing is copied).
#[derive(Debug, Clone)]
pub struct RbspBits<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load.
    pos: usize,
    /// Zero bytes just loaded in a row (for emulation prevention).
    zeros: u8,
    /// Current byte and how many of its bits are still unread.
    byte: u8,
    left: u8,
}

impl<'a> RbspBits<'a> {
    /// `data`: the bytes after the NAL header byte (or after the FU header of a start fragment).
    pub fn new(data: &'a [u8]) -> RbspBits<'a> {
        RbspBits {
            data,
            pos: 0,
            zeros: 0,
            byte: 0,
            left: 0,
        }
    }

    /// The next bit; `None` once the data runs out.
    pub fn bit(&mut self) -> Option<bool> {
        if self.left == 0 {
            let mut b = *self.data.get(self.pos)?;
            self.pos += 1;
            if self.zeros >= 2 && b == 3 {
                // emulation_prevention_three_byte: not part of the RBSP.
                b = *self.data.get(self.pos)?;
                self.pos += 1;
                self.zeros = 0;
            }
            self.zeros = if b == 0 {
                self.zeros.saturating_add(1)
            } else {
                0
            };
            self.byte = b;
            self.left = 8;
        }
        self.left -= 1;
        Some(self.byte >> self.left & 1 != 0)
    }

    /// u(n): `n` (at most 32) bits as an unsigned number, first bit most significant.
    pub fn bits(&mut self, n: u8) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = v << 1 | u32::from(self.bit()?);
        }
        Some(v)
    }

    /// ue(v): unsigned exp-Golomb. `None` if the data ends or the value does not fit in 32 bits.
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 32 {
                return None;
            }
        }
        let mut v = 0u64;
        for _ in 0..zeros {
            v = v << 1 | u64::from(self.bit()?);
        }
        u32::try_from((1u64 << zeros) - 1 + v).ok()
    }
}

/// Slice type of a coded slice NAL unit (types 1 and 5), from the bytes after its NAL header
/// byte; only a prefix is needed. `None` for truncated or nonsensical headers.
pub fn slice_type(after_nal_header: &[u8]) -> Option<SliceType> {
    let head = &after_nal_header[..after_nal_header.len().min(MAX_HEADER_BYTES)];
    let mut r = RbspBits::new(head);
    let _first_mb_in_slice = r.ue()?;
    SliceType::from_code(r.ue()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes ue(v) values MSB first, then a stop bit, padded with zeros.
    fn encode(values: &[u32]) -> Vec<u8> {
        let mut bits = Vec::new();
        for &v in values {
            let x = u64::from(v) + 1;
            let n = 64 - x.leading_zeros();
            bits.extend(std::iter::repeat_n(false, n as usize - 1));
            bits.extend((0..n).rev().map(|i| x >> i & 1 != 0));
        }
        bits.push(true);
        bits.chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &x)| b | u8::from(x) << (7 - i))
            })
            .collect()
    }

    #[test]
    fn exp_golomb_values() {
        for v in [0, 1, 2, 3, 6, 7, 100, 8159, 65535, u32::MAX - 1, u32::MAX] {
            let bytes = encode(&[v, 7]);
            let mut r = RbspBits::new(&bytes);
            assert_eq!(r.ue(), Some(v), "{v}");
            assert_eq!(r.ue(), Some(7), "after {v}");
        }
    }

    #[test]
    fn slice_types_from_hand_built_headers() {
        // first_mb_in_slice = 0, slice_type, pic_parameter_set_id = 0.
        let cases = [
            (0, SliceType::P),
            (5, SliceType::P),
            (1, SliceType::B),
            (6, SliceType::B),
            (2, SliceType::I),
            (7, SliceType::I),
            (3, SliceType::Sp),
            (9, SliceType::Si),
        ];
        for (code, t) in cases {
            assert_eq!(slice_type(&encode(&[0, code, 0])), Some(t), "{code}");
            // A later slice of the picture (first_mb_in_slice > 0).
            assert_eq!(slice_type(&encode(&[1234, code, 0])), Some(t), "{code}");
        }
        // Real x264 headers: "88 84" (IDR, I), "9a 24" (P), "9e 42" (B), NAL header stripped.
        assert_eq!(slice_type(&[0x88, 0x84, 0x00]), Some(SliceType::I));
        assert_eq!(slice_type(&[0x9A, 0x24, 0x6C]), Some(SliceType::P));
        assert_eq!(slice_type(&[0x9E, 0x42, 0x79]), Some(SliceType::B));
        assert_eq!(slice_type(&encode(&[0, 10])), None, "slice_type > 9");
    }

    #[test]
    fn emulation_prevention_is_skipped() {
        // first_mb_in_slice = 0x7FFF_FFFF needs 31 leading zeros: the bytes begin 00 00 00 01,
        // which a NAL unit carries as 00 00 03 00 01.
        let raw = encode(&[0x7FFF_FFFF, 1]);
        assert_eq!(&raw[..3], &[0, 0, 0]);
        let mut escaped = vec![0, 0, 3];
        escaped.extend_from_slice(&raw[2..]);
        assert_eq!(slice_type(&escaped), Some(SliceType::B));
        // Without skipping, the 03 would have been read as data.
        assert_ne!(slice_type(&escaped), slice_type(&raw[1..]));
    }

    #[test]
    fn truncated_and_garbage_never_panic() {
        assert_eq!(slice_type(&[]), None);
        assert_eq!(slice_type(&[0x00]), None);
        assert_eq!(slice_type(&[0x00; 64]), None, "too many leading zeros");
        assert_eq!(slice_type(&[0x80]), None, "slice_type missing");
        let mut rng = camgate_testkit::Rng::new(0x1234_5678_9ABC_DEF0);
        for len in 0..50_000usize {
            let x = rng.next_u64();
            let bytes: Vec<u8> = (0..len % 24).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let _ = slice_type(&bytes);
        }
    }
}
