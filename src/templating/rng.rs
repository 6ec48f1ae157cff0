//! A tiny, stable PRNG (SplitMix64). Its output must never change between
//! versions: previews and real sends computed by different builds must agree.

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser: a bijective 64-bit mix.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The alternative (in `0..n`) that spintax group `group` takes for `seed`.
///
/// Each group draws independently from `(seed, group)`, so editing one group
/// does not reshuffle the others. `n` must be at least 1.
#[inline]
pub(crate) fn pick(seed: u64, group: u64, n: usize) -> usize {
    let x = mix64(seed ^ mix64(group.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)));
    // Lemire's multiply-shift range reduction: result < n, no modulo bias worth noting.
    ((u128::from(x) * n as u128) >> 64) as usize
}

/// A stable seed from arbitrary bytes (e.g. a recipient UUID or
/// `"{campaign_id}:{contact_id}"`): FNV-1a then the SplitMix64 finaliser.
/// Unlike `std`'s hashers, the result never changes between builds.
pub fn seed_from_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h)
}

/// A SplitMix64 stream (used by tests and benches for reproducible randomness).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// A value in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}
