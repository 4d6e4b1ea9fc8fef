//! `replay`: follows a recorded schedule (a token's steps).
//!
//! A strict replay fails with [`Diverged`] the moment the schedule names a buyer that
//! cannot run, or ends early, or is left over. (Shrinking does not replay: it searches
//! each smaller shape afresh with [`super::Dfs`].) A lenient one ([`Replay::lenient`])
//! is how explaining a finding tries a reordered schedule: it keeps the order of what
//! still fits and lets the run finish without preempting anyone.

use super::{Diverged, Scheduler};

/// Follows a list of buyer indices.
#[derive(Debug, Clone)]
pub struct Replay {
    choices: Vec<u32>,
    lenient: bool,
    /// Lenient: the next choice not yet taken.
    next: usize,
    /// Lenient: choices skipped because their buyer could not run when they came up;
    /// each is taken the first time its buyer can run again.
    skipped: Vec<u32>,
}

impl Replay {
    /// Follows `choices`; fails on any mismatch.
    pub fn strict(choices: Vec<u32>) -> Replay {
        Replay {
            choices,
            lenient: false,
            next: 0,
            skipped: Vec::new(),
        }
    }

    /// Follows `choices` as far as they fit: a choice whose buyer cannot run is put off
    /// until it can (the others keep their order); once they are used up, the buyer that
    /// ran last goes on, else the lowest that can run. Never diverges.
    pub fn lenient(choices: Vec<u32>) -> Replay {
        Replay {
            lenient: true,
            ..Replay::strict(choices)
        }
    }

    fn pick_lenient(&mut self, ready: &[u32], current: Option<u32>) -> u32 {
        if let Some(i) = self.skipped.iter().position(|b| ready.contains(b)) {
            return self.skipped.remove(i);
        }
        while let Some(&b) = self.choices.get(self.next) {
            self.next += 1;
            if ready.contains(&b) {
                return b;
            }
            self.skipped.push(b);
        }
        current
            .filter(|c| ready.contains(c))
            .or_else(|| ready.first().copied())
            .unwrap_or(0)
    }
}

impl Scheduler for Replay {
    fn places_crash(&self) -> bool {
        true
    }

    fn pick(&mut self, at: usize, ready: &[u32], cur: Option<u32>) -> Result<u32, Diverged> {
        if self.lenient {
            return Ok(self.pick_lenient(ready, cur));
        }
        match self.choices.get(at) {
            Some(&b) if ready.contains(&b) => Ok(b),
            wanted => Err(Diverged {
                step: at,
                wanted: wanted.copied(),
                runnable: ready.to_vec(),
                recorded: Vec::new(),
            }),
        }
    }

    fn finish(&mut self, steps: usize) -> Result<(), Diverged> {
        if !self.lenient && steps < self.choices.len() {
            return Err(Diverged {
                step: steps,
                wanted: None,
                runnable: Vec::new(),
                recorded: Vec::new(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_puts_off_a_buyer_that_cannot_run_and_keeps_the_rest_in_order() {
        let mut r = Replay::lenient(vec![1, 0, 0, 1]);
        assert_eq!(r.pick(0, &[0], None), Ok(0)); // 1 cannot run: put off; 0 goes
        assert_eq!(r.pick(1, &[0, 1], Some(0)), Ok(1)); // the put-off 1 first
        assert_eq!(r.pick(2, &[0, 1], Some(1)), Ok(0));
        assert_eq!(r.pick(3, &[0, 1], Some(0)), Ok(1));
        // Used up: the last buyer goes on, else the lowest.
        assert_eq!(r.pick(4, &[0, 1], Some(1)), Ok(1));
        assert_eq!(r.pick(5, &[0, 2], Some(1)), Ok(0));
        assert_eq!(r.finish(3), Ok(()));
    }

    #[test]
    fn strict_diverges_where_lenient_does_not() {
        let mut r = Replay::strict(vec![1]);
        assert!(r.pick(0, &[0], None).is_err());
        assert!(Replay::strict(vec![0, 0]).finish(1).is_err());
    }
}
