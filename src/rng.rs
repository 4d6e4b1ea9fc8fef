//! A tiny seeded generator (SplitMix64).
//!
//! Tokens must replay the same trial on any version of oversell that reads them, so the
//! generator is defined here rather than borrowed from a crate whose streams may change.
//!
//! ## Part of the token format
//!
//! A token carries a trial's seed, not its choices: every per-buyer choice is drawn again
//! from the seed when the token replays. So the generator's constants and the [`salt`]s
//! below, which keep the streams of different choices apart, are part of the token
//! format: changing any of them changes what every saved token replays (a new format
//! needs a new token prefix).

/// The salts that keep apart the streams drawn from one seed (part of the token format).
pub mod salt {
    /// Mixed into the index by [`Rng::derive`](super::Rng::derive): `seed ^ index · DERIVE`.
    pub const DERIVE: u64 = 0xA076_1D64_78BD_642F;
    /// XORed into a trial's seed for its fault plans (`Faults::plan`), so a buyer's
    /// faults are independent of its jitter (drawn from the unsalted seed).
    pub const FAULTS: u64 = 0xFA17;
    /// The index under a trial's seed of PCT's priorities and change points.
    pub const PCT: u64 = 0x9c7;
    /// The index under a trial's seed of the random strategy's choices.
    pub const RANDOM: u64 = 0x5eed;
    /// XORed into a failing trial's seed for the other seeds its shrink tries when kill
    /// faults are on (a shrunk trial's token carries the seed it ran with).
    pub const SHRINK: u64 = 0x5a1c;
    /// XORed into a trial's seed for its power cut: the step it falls at, and (with the
    /// step as index) what the disk kept of each file.
    pub const CRASH: u64 = 0xC2A5;
}

/// SplitMix64: 64 bits of state, good mixing, stable forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for the `index`th item under `seed`, independent of the others.
    pub fn derive(seed: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ index.wrapping_mul(salt::DERIVE));
        r.next_u64();
        Rng(r.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `lo..=hi` (returns `lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        if span == 0 {
            return self.next_u64();
        }
        // Rejection sampling keeps the choice exactly uniform.
        let zone = u64::MAX - (u64::MAX % span);
        loop {
            let x = self.next_u64();
            if x < zone {
                return lo + x % span;
            }
        }
    }

    /// A uniform index below `n` (`n` must be non-zero).
    pub fn below(&mut self, n: usize) -> usize {
        self.range(0, n.saturating_sub(1) as u64) as usize
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_stable() {
        // These numbers are part of the token format: a change breaks every saved token.
        let mut r = Rng::new(1);
        assert_eq!(r.next_u64(), 0x910a_2dec_8902_5cc1);
        assert_eq!(Rng::derive(7, 3).range(0, 9), Rng::derive(7, 3).range(0, 9));
    }

    #[test]
    fn range_stays_inside() {
        let mut r = Rng::new(42);
        for _ in 0..1000 {
            let x = r.range(3, 5);
            assert!((3..=5).contains(&x));
        }
        assert_eq!(r.range(4, 4), 4);
        assert_eq!(r.range(9, 2), 9);
    }
}
