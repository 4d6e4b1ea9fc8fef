//! `pct`: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
//! ASPLOS 2010).
//!
//! Each buyer gets a distinct random priority above `d`; the highest-priority buyer that
//! can run always runs. At `d − 1` change points the buyer about to run drops to a
//! priority below every initial one. The paper draws the points uniformly from the first
//! `k` steps of the run, which gives a bug of depth `d` a chance of at least
//! `1 / (n · k^(d−1))` per run ([`bound`]); with `k = 7·n` that chance shrinks with the
//! square of the buyers. Here each point is drawn from a buyer's *own* steps instead: it
//! fires when the buyer on top is about to take its `j`-th step, `j` drawn from the
//! steps one buyer takes. The window of a lost update (between a buyer's read and its
//! write) is then hit as often with 16 buyers as with 2.

use super::{Diverged, Scheduler};
use crate::rng::Rng;

/// The PCT strategy for one run.
#[derive(Debug, Clone)]
pub struct Pct {
    priorities: Vec<u64>,
    /// Per point, the step of a buyer (its own count) it fires at; `usize::MAX` once fired.
    change_points: Vec<usize>,
    /// Steps each buyer took so far.
    taken: Vec<usize>,
}

impl Pct {
    /// PCT for `buyers` buyers, depth `depth`, change points among the first
    /// `per_buyer` steps of a buyer (its own count).
    pub fn new(seed: u64, buyers: u32, depth: u32, per_buyer: usize) -> Pct {
        let mut rng = Rng::derive(seed, crate::rng::salt::PCT);
        let priorities = initial_priorities(&mut rng, buyers, depth);
        let per_buyer = per_buyer.max(2) as u64;
        let change_points = (0..depth.saturating_sub(1))
            .map(|_| rng.range(1, per_buyer) as usize)
            .collect();
        Pct {
            priorities,
            change_points,
            taken: vec![0; buyers as usize],
        }
    }

    fn top(&self, runnable: &[u32]) -> u32 {
        highest(&self.priorities, runnable)
    }
}

/// The buyers' first priorities: a permutation of `d .. d + buyers` drawn from `rng`,
/// `d` the depth (at least 1), so that every change point can lower a buyer below them
/// all. Shared with the syscall-level PCT.
pub(crate) fn initial_priorities(rng: &mut Rng, buyers: u32, depth: u32) -> Vec<u64> {
    let d = depth.max(1) as u64;
    let mut priorities: Vec<u64> = (0..buyers as u64).map(|i| d + i).collect();
    for i in (1..priorities.len()).rev() {
        let j = rng.below(i + 1);
        priorities.swap(i, j);
    }
    priorities
}

/// The runnable buyer with the highest priority (the lower number on a tie); a buyer
/// without a priority counts as 0. Shared with the syscall-level PCT.
pub(crate) fn highest(priorities: &[u64], runnable: &[u32]) -> u32 {
    let prio = |b: u32| priorities.get(b as usize).copied().unwrap_or(0);
    runnable
        .iter()
        .copied()
        .max_by_key(|&b| (prio(b), std::cmp::Reverse(b)))
        .unwrap_or(runnable[0])
}

impl Scheduler for Pct {
    fn pick(
        &mut self,
        _step: usize,
        runnable: &[u32],
        _current: Option<u32>,
    ) -> Result<u32, Diverged> {
        let points = self.change_points.len();
        loop {
            let top = self.top(runnable) as usize;
            let at = self.taken.get(top).copied().unwrap_or(0);
            let Some(j) = self.change_points.iter().position(|&s| s == at) else {
                break;
            };
            self.change_points[j] = usize::MAX;
            if let Some(p) = self.priorities.get_mut(top) {
                // Below every initial priority (which start at d), later points lower.
                *p = (points - j) as u64 - 1;
            }
        }
        let top = self.top(runnable);
        if let Some(t) = self.taken.get_mut(top as usize) {
            *t += 1;
        }
        Ok(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_priority_runs_until_a_change_point() {
        let mut p = Pct::new(7, 3, 1, 7);
        let first = p.pick(0, &[0, 1, 2], None).expect("pick");
        for step in 1..10 {
            assert_eq!(p.pick(step, &[0, 1, 2], Some(first)).expect("pick"), first);
        }
    }

    #[test]
    fn a_change_point_falls_on_the_top_buyers_own_step_whatever_the_buyers() {
        for buyers in [2u32, 16] {
            for seed in 0..20 {
                let mut p = Pct::new(seed, buyers, 2, 7);
                let j = p.change_points[0];
                let all: Vec<u32> = (0..buyers).collect();
                let first = p.pick(0, &all, None).expect("pick");
                let mut step = 1;
                while step < j {
                    assert_eq!(p.pick(step, &all, Some(first)).expect("pick"), first);
                    step += 1;
                }
                // The j-th step of the first buyer goes to another.
                assert_ne!(p.pick(step, &all, Some(first)).expect("pick"), first);
            }
        }
    }
}
