//! A most-significant-bit-first reader for the bit-packed AAC headers (AU headers, AudioSpecificConfig,
//! StreamMuxConfig). Every read is checked: running off the end yields `None`, never a panic.

#[derive(Clone, Copy)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    /// Bits at and past this position are out of reach (the end of `data`, or of a length-prefixed field).
    end: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader {
            data,
            pos: 0,
            end: data.len() * 8,
        }
    }

    /// A reader of the next `bits` bits only (a field whose length was given before it), or `None` when fewer
    /// are left. Reading it does not move `self`.
    pub(crate) fn limited(&self, bits: usize) -> Option<BitReader<'a>> {
        (bits <= self.bits_left()).then_some(BitReader {
            data: self.data,
            pos: self.pos,
            end: self.pos + bits,
        })
    }

    pub(crate) fn bits_left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Reads `n` bits (0..=32) as an unsigned big-endian number.
    pub(crate) fn read(&mut self, n: u32) -> Option<u32> {
        if n > 32 || (n as usize) > self.bits_left() {
            return None;
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        Some(v as u32)
    }

    pub(crate) fn read_bool(&mut self) -> Option<bool> {
        self.read(1).map(|b| b == 1)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        if n > self.bits_left() {
            return None;
        }
        self.pos += n;
        Some(())
    }

    /// Peeks `n` bits without consuming them.
    pub(crate) fn peek(&self, n: u32) -> Option<u32> {
        let mut copy = *self;
        copy.read(n)
    }
}

/// Collects bits into bytes, most significant first; used to re-emit a bit-aligned AudioSpecificConfig.
#[derive(Default)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    used: u32,
}

impl BitWriter {
    pub(crate) fn write(&mut self, n: u32, value: u32) {
        for i in (0..n).rev() {
            if self.used == 0 {
                self.out.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.out.last_mut() {
                *last |= bit << (7 - self.used);
            }
            self.used = (self.used + 1) % 8;
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_bytes_and_stops_at_the_end() {
        let mut r = BitReader::new(&[0b1010_1100, 0b0101_0011]);
        assert_eq!(r.read(3), Some(0b101));
        assert_eq!(r.read(7), Some(0b011_0001));
        assert_eq!(r.peek(6), Some(0b01_0011));
        assert_eq!(r.read(7), None);
        assert_eq!(r.read(6), Some(0b01_0011));
        assert_eq!(r.bits_left(), 0);
        assert_eq!(r.read(1), None);
    }

    #[test]
    fn limited_reader_stops_at_its_length() {
        let r = BitReader::new(&[0xFF, 0xFF]);
        let mut l = r.limited(5).unwrap();
        assert_eq!(l.read(6), None);
        assert_eq!(l.read(5), Some(0x1F));
        assert_eq!(l.bits_left(), 0);
        assert!(r.limited(17).is_none());
        assert_eq!(r.bits_left(), 16);
    }

    #[test]
    fn writer_round_trips() {
        let mut w = BitWriter::default();
        w.write(5, 2);
        w.write(4, 3);
        w.write(4, 1);
        w.write(3, 0);
        assert_eq!(w.finish(), vec![0x11, 0x88]);
    }
}
