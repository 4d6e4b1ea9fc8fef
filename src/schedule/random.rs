//! `random`: a uniform choice among the buyers that can run.

use super::{Diverged, Scheduler};
use crate::rng::Rng;

/// Picks uniformly at random, seeded.
#[derive(Debug, Clone)]
pub struct Random {
    rng: Rng,
}

impl Random {
    /// A random strategy whose picks are fixed by `seed`.
    pub fn new(seed: u64) -> Random {
        Random {
            rng: Rng::derive(seed, crate::rng::salt::RANDOM),
        }
    }
}

impl Scheduler for Random {
    fn pick(
        &mut self,
        _step: usize,
        runnable: &[u32],
        _current: Option<u32>,
    ) -> Result<u32, Diverged> {
        Ok(runnable[self.rng.below(runnable.len())])
    }
}
