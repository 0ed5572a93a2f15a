//! G.711 μ-law and A-law expansion (ITU-T G.711), as 256-entry tables built at compile time.

const fn ulaw(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn table(a_law: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if a_law { alaw(i as u8) } else { ulaw(i as u8) };
        i += 1;
    }
    t
}

static ULAW: [i16; 256] = table(false);
static ALAW: [i16; 256] = table(true);

/// Expands G.711 bytes into f32 samples in [-1, 1), appending to `out`.
pub(crate) fn decode(a_law: bool, bytes: &[u8], out: &mut Vec<f32>) {
    let t = if a_law { &ALAW } else { &ULAW };
    out.extend(
        bytes
            .iter()
            .map(|&b| f32::from(t[usize::from(b)]) / 32768.0),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // μ-law: 0xFF and 0x7F are the two zeros, 0x00 is the negative full scale.
        assert_eq!(ULAW[0xFF], 0);
        assert_eq!(ULAW[0x7F], 0);
        assert_eq!(ULAW[0x00], -32124);
        assert_eq!(ULAW[0x80], 32124);
        // A-law: 0xD5 / 0x55 are the smallest magnitudes, 0xAA the positive full scale.
        assert_eq!(ALAW[0xD5], 8);
        assert_eq!(ALAW[0x55], -8);
        assert_eq!(ALAW[0xAA], 32256);
        assert_eq!(ALAW[0x2A], -32256);
    }
}
