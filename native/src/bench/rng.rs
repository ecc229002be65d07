//! A tiny deterministic random number generator (SplitMix64): the bench
//! only needs uniform picks of document numbers, not cryptographic quality,
//! and a dependency-free generator keeps each pick to a few instructions.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0). The modulo bias is negligible
    /// for the bounds used here (far below 2^64).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_below_the_bound_and_varies() {
        let mut rng = Rng::new(7);
        let picks: Vec<u64> = (0..1000).map(|_| rng.below(10)).collect();
        assert!(picks.iter().all(|&n| n < 10));
        assert!((0..10).all(|n| picks.contains(&n)));
    }
}
