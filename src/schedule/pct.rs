//! `pct`: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
//! ASPLOS 2010), the one PCT of every granularity.
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
//!
//! **Which steps count.** Among oversell's own yield points ([`Pct::new`]) every step
//! counts. Among system calls ([`Pct::over_changes`]) only the steps where a buyer's
//! effect on the others can show do: the changes of shared state and the sleeps, told by
//! the [`StepHint`]s the harness gives before each pick. A buyer's reads, stats and closes
//! between two of its changes are invisible to the others until the next change, so
//! lowering a buyer just before a change is what exposes a check-then-act gap; counting
//! over every call (a shell's start alone makes dozens) would spread the points too thin
//! to land there. A sleep is the one step of a program whose test and set are both plain
//! memory (a flag in a shared mapping): its gap holds no change, only, at best, the sleep
//! where it yields.
//!
//! Over system calls a change point lowers the buyer either for good (one point in four)
//! or only until another buyer is inside its critical section ([`BRIEF`]). The second
//! kind reaches with one point the races a lock wrapper hides behind two orderings: a
//! buyer checks, another checks, gets in and starts its critical section, then the first
//! gets in too. Inside is told by the store: a buyer changes it only in its critical
//! section, whatever its lock took before (a wrapper's `mkdir -p`, its failed tries, the
//! removal of a lock it took for stale), so the lowering lasts a seeded number of
//! changes of the store by others — not of changes of anything, whose number before the
//! critical section depends on the wrapper.

use super::{Diverged, Scheduler, StepHint};
use crate::rng::Rng;

/// Changes of shared state (and sleeps) one buyer makes, about: over system calls PCT
/// draws each change point from a buyer's first this many.
pub const CHANGES_PER_BUYER: usize = 5;

/// The fewest and the most changes of the store by others a brief lowering lasts: the
/// other buyer is then in its critical section (it truncated the store, or wrote it),
/// and the lowered one, back on top, goes in too before the other records that it left.
const BRIEF: (u64, u64) = (1, 2);

/// The PCT strategy for one run.
#[derive(Debug, Clone)]
pub struct Pct {
    priorities: Vec<u64>,
    /// Per point, the step of a buyer (its own count) it fires at; `usize::MAX` once fired.
    change_points: Vec<usize>,
    /// Per point: lowered only until other buyers changed the store this many times
    /// (0: for good, always so when every step counts).
    brief: Vec<u64>,
    /// A briefly lowered buyer, the priority it gets back, and the changes of the store
    /// by others still to come before it does.
    restore: Option<(u32, u64, u64)>,
    /// Steps that count each buyer took so far.
    taken: Vec<usize>,
    /// True when only the steps the hints mark count ([`Pct::over_changes`]).
    over_changes: bool,
    /// What each buyer's pending step is, from the last [`Scheduler::hints`].
    next: Vec<Option<StepHint>>,
}

impl Pct {
    /// PCT over oversell's yield points for `buyers` buyers, depth `depth`, change points
    /// among the first `per_buyer` steps of a buyer (its own count).
    pub fn new(seed: u64, buyers: u32, depth: u32, per_buyer: usize) -> Pct {
        let mut rng = Rng::derive(seed, crate::rng::salt::PCT);
        let priorities = initial_priorities(&mut rng, buyers, depth);
        let per_buyer = per_buyer.max(2) as u64;
        let change_points: Vec<usize> = (0..depth.saturating_sub(1))
            .map(|_| rng.range(1, per_buyer) as usize)
            .collect();
        Pct {
            priorities,
            brief: vec![0; change_points.len()],
            change_points,
            restore: None,
            taken: vec![0; buyers as usize],
            over_changes: false,
            next: Vec::new(),
        }
    }

    /// PCT over system calls for `units` units and depth `depth`: its change points fall
    /// on changes of shared state and sleeps (see the module's docs).
    pub fn over_changes(seed: u64, units: u32, depth: u32) -> Pct {
        let mut rng = Rng::derive(seed, crate::rng::salt::PCT);
        let priorities = initial_priorities(&mut rng, units, depth);
        let points = depth.saturating_sub(1) as usize;
        let change_points: Vec<usize> = (0..points).map(|_| rng.below(CHANGES_PER_BUYER)).collect();
        let brief = change_points
            .iter()
            .map(|_| {
                if rng.chance(0.25) {
                    0
                } else {
                    BRIEF.0 + rng.below((BRIEF.1 - BRIEF.0 + 1) as usize) as u64
                }
            })
            .collect();
        Pct {
            priorities,
            change_points,
            brief,
            restore: None,
            taken: vec![0; units as usize],
            over_changes: true,
            next: Vec::new(),
        }
    }

    fn top(&self, runnable: &[u32]) -> u32 {
        highest(&self.priorities, runnable)
    }

    /// What buyer `b`'s pending step is; every step counts when no hint says otherwise
    /// ([`Pct::new`]).
    fn hint(&self, b: u32) -> StepHint {
        if !self.over_changes {
            return StepHint {
                counts: true,
                store: false,
            };
        }
        self.next
            .get(b as usize)
            .copied()
            .flatten()
            .unwrap_or_default()
    }
}

/// The buyers' first priorities: a permutation of `d .. d + buyers` drawn from `rng`,
/// `d` the depth (at least 1), so that every change point can lower a buyer below them
/// all.
fn initial_priorities(rng: &mut Rng, buyers: u32, depth: u32) -> Vec<u64> {
    let d = depth.max(1) as u64;
    let mut priorities: Vec<u64> = (0..buyers as u64).map(|i| d + i).collect();
    for i in (1..priorities.len()).rev() {
        let j = rng.below(i + 1);
        priorities.swap(i, j);
    }
    priorities
}

/// The runnable buyer with the highest priority (the lower number on a tie); a buyer
/// without a priority counts as 0.
fn highest(priorities: &[u64], runnable: &[u32]) -> u32 {
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
            let top = self.top(runnable);
            if !self.hint(top).counts {
                break;
            }
            let at = self.taken.get(top as usize).copied().unwrap_or(0);
            let Some(j) = self.change_points.iter().position(|&s| s == at) else {
                break;
            };
            self.change_points[j] = usize::MAX;
            if let Some(p) = self.priorities.get_mut(top as usize) {
                if self.brief[j] > 0 {
                    self.restore = Some((top, *p, self.brief[j]));
                }
                // Below every initial priority (which start at d), later points lower.
                *p = (points - j) as u64 - 1;
            }
            // Over system calls one point fires per pick: another drawn at the same count
            // waits for the next buyer on top to get there (in a later pick), so that it
            // can still preempt the buyer it was drawn against.
            if self.over_changes {
                break;
            }
        }
        let pick = self.top(runnable);
        let hint = self.hint(pick);
        if hint.counts {
            if let Some(t) = self.taken.get_mut(pick as usize) {
                *t += 1;
            }
        }
        if hint.store {
            if let Some((b, p, left)) = self.restore.filter(|&(b, _, _)| b != pick) {
                self.restore = (left > 1).then_some((b, p, left - 1));
                if left <= 1 {
                    if let Some(q) = self.priorities.get_mut(b as usize) {
                        *q = p;
                    }
                }
            }
        }
        Ok(pick)
    }

    fn wants_hints(&self) -> bool {
        self.over_changes
    }

    fn hints(&mut self, next: &[Option<StepHint>]) {
        self.next.clear();
        self.next.extend_from_slice(next);
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

    /// Picks among buyers 0 and 1, both about to take a step like `hint`.
    fn pick_with(p: &mut Pct, hint: StepHint) -> u32 {
        p.hints(&[Some(hint), Some(hint)]);
        p.pick(0, &[0, 1], None).expect("pick")
    }

    const LOCK: StepHint = StepHint {
        counts: true,
        store: false,
    };
    const STORE: StepHint = StepHint {
        counts: true,
        store: true,
    };
    const LOOK: StepHint = StepHint {
        counts: false,
        store: false,
    };

    #[test]
    fn over_changes_a_change_point_lowers_the_buyer_about_to_change() {
        // Depth 2 over 2 buyers: one change point among each buyer's first 5 changes.
        let kinds: Vec<bool> = (1..20)
            .map(|seed| Pct::over_changes(seed, 2, 2).brief[0] > 0)
            .collect();
        assert!(
            kinds.contains(&true) && kinds.contains(&false),
            "both kinds drawn"
        );
        for seed in 1..20 {
            let mut p = Pct::over_changes(seed, 2, 2);
            assert!(p.wants_hints());
            let (at, brief) = (p.change_points[0], p.brief[0]);
            let first = p.top(&[0, 1]);
            for _ in 0..at {
                assert_eq!(pick_with(&mut p, LOCK), first);
            }
            assert_ne!(pick_with(&mut p, LOCK), first);
            // Changes by the other that leave the store alone (a wrapper's setup, its
            // lock) never bring the first buyer back.
            for _ in 0..20 {
                assert_ne!(pick_with(&mut p, LOCK), first);
            }
            // A brief point gives the first buyer its place back once the other changed
            // the store `brief` times; a lasting one never does.
            for _ in 0..brief {
                assert_ne!(pick_with(&mut p, STORE), first);
            }
            assert_eq!(pick_with(&mut p, STORE) == first, brief > 0);
            // Steps that change nothing never move a change point.
            let mut q = Pct::over_changes(seed, 2, 2);
            for _ in 0..50 {
                assert_eq!(pick_with(&mut q, LOOK), first);
            }
        }
    }

    #[test]
    fn over_changes_one_point_fires_per_pick() {
        // Depth 3, both points at the first change: the first lowers the buyer on top; the
        // second must wait for a later pick, not lower the next buyer at once.
        for seed in 1..10 {
            let mut p = Pct::over_changes(seed, 2, 3);
            p.change_points = vec![0, 0];
            p.brief = vec![0, 0];
            let first = p.top(&[0, 1]);
            let other = 1 - first;
            assert_eq!(pick_with(&mut p, LOCK), other, "seed {seed}");
            assert_eq!(pick_with(&mut p, LOCK), other, "seed {seed}");
            // The other blocks: the first, back on top at its first change, takes the
            // second point, and the other is preferred again once it can run.
            let mut next = [None, None];
            next[first as usize] = Some(LOCK);
            p.hints(&next);
            let alone = p.pick(0, &[first], None).expect("pick");
            assert_eq!(alone, first);
            assert_eq!(p.change_points, vec![usize::MAX, usize::MAX]);
            assert_eq!(pick_with(&mut p, LOCK), other, "seed {seed}");
        }
    }

    #[test]
    fn over_yield_points_every_step_counts_and_no_hint_is_wanted() {
        let p = Pct::new(3, 2, 2, 7);
        assert!(!p.wants_hints());
        assert!(p.brief.iter().all(|&b| b == 0));
    }
}
