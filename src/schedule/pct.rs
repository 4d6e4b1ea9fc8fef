//! `pct`: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
//! ASPLOS 2010).
//!
//! Each buyer gets a distinct random priority above `d`; the highest-priority buyer that
//! can run always runs. At `d − 1` change points, drawn uniformly from the first `k`
//! steps, the buyer about to run drops to a priority below every initial one. A bug of
//! depth `d` is then found by one run with probability at least `1 / (n · k^(d−1))`.

use super::{Diverged, Scheduler};
use crate::rng::Rng;

/// The PCT strategy for one run.
#[derive(Debug, Clone)]
pub struct Pct {
    priorities: Vec<u64>,
    change_points: Vec<usize>,
}

/// The guaranteed probability that one run finds a bug of depth `depth`, for `buyers`
/// processes and `steps` steps: `1 / (n · k^(d−1))`.
pub fn bound(buyers: u32, steps: usize, depth: u32) -> f64 {
    let n = buyers.max(1) as f64;
    let k = steps.max(1) as f64;
    1.0 / (n * k.powi(depth.saturating_sub(1) as i32))
}

impl Pct {
    /// PCT for `buyers` buyers, depth `depth`, change points among the first `steps` steps.
    pub fn new(seed: u64, buyers: u32, depth: u32, steps: usize) -> Pct {
        let mut rng = Rng::derive(seed, crate::rng::salt::PCT);
        let d = depth.max(1) as u64;
        // A random permutation of the priorities d .. d + n.
        let mut priorities: Vec<u64> = (0..buyers as u64).map(|i| d + i).collect();
        for i in (1..priorities.len()).rev() {
            let j = rng.below(i + 1);
            priorities.swap(i, j);
        }
        let mut change_points = Vec::new();
        let steps = steps.max(1);
        while change_points.len() < depth.saturating_sub(1) as usize && change_points.len() < steps
        {
            let s = rng.range(1, steps as u64) as usize;
            if !change_points.contains(&s) {
                change_points.push(s);
            }
        }
        Pct {
            priorities,
            change_points,
        }
    }

    fn top(&self, runnable: &[u32]) -> u32 {
        highest(&self.priorities, runnable)
    }
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
        step: usize,
        runnable: &[u32],
        _current: Option<u32>,
    ) -> Result<u32, Diverged> {
        if let Some(j) = self.change_points.iter().position(|&s| s == step) {
            let top = self.top(runnable) as usize;
            if let Some(p) = self.priorities.get_mut(top) {
                // Below every initial priority (which start at d), later points lower.
                *p = (self.change_points.len() - j) as u64 - 1;
            }
        }
        Ok(self.top(runnable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_matches_the_paper() {
        assert_eq!(bound(2, 14, 1), 0.5);
        assert!((bound(2, 14, 2) - 1.0 / 28.0).abs() < 1e-12);
        assert!((bound(3, 21, 3) - 1.0 / (3.0 * 441.0)).abs() < 1e-12);
    }

    #[test]
    fn highest_priority_runs_until_a_change_point() {
        let mut p = Pct::new(7, 3, 1, 21);
        let first = p.pick(0, &[0, 1, 2], None).expect("pick");
        for step in 1..10 {
            assert_eq!(p.pick(step, &[0, 1, 2], Some(first)).expect("pick"), first);
        }
    }
}
