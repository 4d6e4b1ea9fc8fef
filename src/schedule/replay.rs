//! `replay`: follows a recorded schedule (a token's steps).
//!
//! Replay fails with [`Diverged`] the moment the schedule names a buyer that cannot run,
//! or ends early, or is left over. (Shrinking does not replay: it searches each smaller
//! shape afresh with [`super::Dfs`].)

use super::{Diverged, Scheduler};

/// Follows a list of buyer indices.
#[derive(Debug, Clone)]
pub struct Replay {
    choices: Vec<u32>,
}

impl Replay {
    /// Follows `choices`; fails on any mismatch.
    pub fn strict(choices: Vec<u32>) -> Replay {
        Replay { choices }
    }
}

impl Scheduler for Replay {
    fn pick(&mut self, at: usize, ready: &[u32], _: Option<u32>) -> Result<u32, Diverged> {
        match self.choices.get(at) {
            Some(&b) if ready.contains(&b) => Ok(b),
            wanted => Err(Diverged {
                step: at,
                wanted: wanted.copied(),
                runnable: ready.to_vec(),
            }),
        }
    }

    fn finish(&mut self, steps: usize) -> Result<(), Diverged> {
        if steps < self.choices.len() {
            return Err(Diverged {
                step: steps,
                wanted: None,
                runnable: Vec::new(),
            });
        }
        Ok(())
    }
}
