//! PCT at system-call granularity: the priorities of [`crate::schedule::Pct`], with
//! its `d − 1` change points counted over the steps that change shared state.
//!
//! A change point lowers the buyer about to make a change, as in PCT, either for good or
//! (a seeded coin per point) only until another buyer has made one change. The second
//! kind reaches with one point the races a lock wrapper hides behind two orderings: a
//! buyer checks, another checks and gets in, then the first gets in too.
//!
//! A buyer's reads, stats and closes between two of its changes are invisible to the
//! others until the next change, so lowering a buyer just before a change is what
//! exposes a check-then-act gap; counting change points over every system call (a
//! shell's start alone makes dozens) would spread them too thin to land there.

use crate::rng::{salt, Rng};

/// Changes of shared state one buyer makes, about: PCT draws its change points from
/// the first `buyers ·` this many.
pub(super) const CHANGES_PER_BUYER: usize = 5;

/// The strategy for one run.
#[derive(Debug, Clone)]
pub(super) struct Pct {
    priorities: Vec<u64>,
    change_points: Vec<usize>,
    /// Per change point: lowered only until another buyer changes something.
    brief: Vec<bool>,
    /// A briefly lowered buyer and the priority it gets back.
    restore: Option<(u32, u64)>,
    /// Changes scheduled so far.
    changes: usize,
}

impl Pct {
    /// PCT for `buyers` buyers and depth `depth`, from `seed`.
    pub(super) fn new(seed: u64, buyers: u32, depth: u32) -> Pct {
        let mut rng = Rng::derive(seed, salt::PCT);
        let d = depth.max(1) as u64;
        let mut priorities: Vec<u64> = (0..buyers as u64).map(|i| d + i).collect();
        for i in (1..priorities.len()).rev() {
            let j = rng.below(i + 1);
            priorities.swap(i, j);
        }
        let k = (buyers as usize * CHANGES_PER_BUYER).max(1);
        let mut change_points = Vec::new();
        while change_points.len() < (depth.saturating_sub(1) as usize).min(k) {
            let s = rng.below(k);
            if !change_points.contains(&s) {
                change_points.push(s);
            }
        }
        let brief: Vec<bool> = change_points.iter().map(|_| rng.chance(0.5)).collect();
        Pct {
            priorities,
            change_points,
            brief,
            restore: None,
            changes: 0,
        }
    }

    fn top(&self, runnable: &[u32]) -> u32 {
        let prio = |b: u32| self.priorities.get(b as usize).copied().unwrap_or(0);
        runnable
            .iter()
            .copied()
            .max_by_key(|&b| (prio(b), std::cmp::Reverse(b)))
            .unwrap_or(runnable[0])
    }

    /// The buyer to run; `mutates(b)` says whether buyer `b`'s next step is a change.
    pub(super) fn pick(&mut self, runnable: &[u32], mutates: impl Fn(u32) -> bool) -> u32 {
        let top = self.top(runnable);
        if mutates(top) {
            if let Some(j) = self.change_points.iter().position(|&s| s == self.changes) {
                // Each point fires once, even when the next top's step is the same change.
                self.change_points[j] = usize::MAX;
                if let Some(p) = self.priorities.get_mut(top as usize) {
                    if self.brief[j] {
                        self.restore = Some((top, *p));
                    }
                    *p = (self.change_points.len() - j) as u64 - 1;
                }
            }
        }
        let pick = self.top(runnable);
        if mutates(pick) {
            self.changes += 1;
            if let Some((b, p)) = self.restore.filter(|&(b, _)| b != pick) {
                self.priorities[b as usize] = p;
                self.restore = None;
            }
        }
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_point_lowers_the_buyer_about_to_change() {
        // Depth 2 over 2 buyers: one change point among the first 10 changes.
        let mut p = Pct::new(1, 2, 2);
        let (at, brief) = (p.change_points[0], p.brief[0]);
        let first = p.top(&[0, 1]);
        for _ in 0..at {
            assert_eq!(p.pick(&[0, 1], |_| true), first);
        }
        assert_ne!(p.pick(&[0, 1], |_| true), first);
        // A brief point gives the first buyer its place back after one change.
        assert_eq!(p.pick(&[0, 1], |_| true) == first, brief);
        // Steps that change nothing never move a change point.
        let mut q = Pct::new(1, 2, 2);
        for _ in 0..50 {
            assert_eq!(q.pick(&[0, 1], |_| false), first);
        }
    }
}
