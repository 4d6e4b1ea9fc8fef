//! `replay`: follows a recorded schedule.
//!
//! Strict replay (for tokens) fails with [`Diverged`] the moment the schedule names a
//! buyer that cannot run, or ends early, or is left over. Lenient replay (for shrinking)
//! follows the schedule where it fits and otherwise continues the current buyer.

use super::{Diverged, Scheduler};

/// Follows a list of buyer indices.
#[derive(Debug, Clone)]
pub struct Replay {
    choices: Vec<u32>,
    strict: bool,
}

impl Replay {
    /// Fails on any mismatch.
    pub fn strict(choices: Vec<u32>) -> Replay {
        Replay {
            choices,
            strict: true,
        }
    }

    /// Follows what fits, fills in the rest without preempting.
    pub fn lenient(choices: Vec<u32>) -> Replay {
        Replay {
            choices,
            strict: false,
        }
    }
}

impl Scheduler for Replay {
    fn pick(
        &mut self,
        step: usize,
        runnable: &[u32],
        current: Option<u32>,
    ) -> Result<u32, Diverged> {
        match self.choices.get(step) {
            Some(&b) if runnable.contains(&b) => Ok(b),
            wanted if self.strict => Err(Diverged {
                step,
                wanted: wanted.copied(),
                runnable: runnable.to_vec(),
            }),
            _ => Ok(current.unwrap_or(runnable[0])),
        }
    }

    fn finish(&mut self, steps: usize) -> Result<(), Diverged> {
        if self.strict && steps < self.choices.len() {
            return Err(Diverged {
                step: steps,
                wanted: None,
                runnable: Vec::new(),
            });
        }
        Ok(())
    }
}
