//! Random numbers from a seed: core draws no OS randomness (the server seeds it at start).

/// SplitMix64 (Steele, Lea and Flood, 2014): small, deterministic, and good enough for nonces
/// and SSRCs, which need to differ, not to be secret.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    /// Callers give neighbouring clients neighbouring seeds (`base + n`): the seed is mixed
    /// first so their sequences do not overlap.
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(Self::mix(seed.wrapping_add(Self::GAMMA)))
    }

    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        Self::mix(self.0)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}
