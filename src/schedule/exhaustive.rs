//! `exhaustive`: every schedule with at most P preemptions, depth first.
//!
//! A preemption is a switch away from the buyer that ran the last step while it could
//! still run; switching away from a buyer that blocked on the lock or finished is free.
//! Each run follows a prefix of choices and then continues without preempting (the
//! current buyer, else the lowest runnable one). After the run, [`Dfs::next`] backtracks
//! to the deepest step with an untried alternative inside the bound. Every schedule
//! within the bound is run exactly once.

use super::{Diverged, Scheduler};

#[derive(Debug, Clone)]
struct Frame {
    order: Vec<u32>,
    chosen: u32,
    current: Option<u32>,
    preemptions_before: u32,
}

/// One run of a depth-first, preemption-bounded search.
#[derive(Debug, Clone)]
pub struct Dfs {
    prefix: Vec<u32>,
    bound: u32,
    trail: Vec<Frame>,
    preemptions: u32,
    /// Steps before this one are fixed: [`Dfs::next`] does not backtrack into them.
    floor: usize,
}

fn order(runnable: &[u32], current: Option<u32>) -> Vec<u32> {
    let mut o = Vec::with_capacity(runnable.len());
    if let Some(c) = current.filter(|c| runnable.contains(c)) {
        o.push(c);
    }
    o.extend(runnable.iter().copied().filter(|&b| Some(b) != current));
    o
}

/// A preemption: another buyer than the one that could go on. A power cut preempts no
/// one (every buyer dies with it), so a bounded search tries it at every step.
fn cost(choice: u32, current: Option<u32>) -> u32 {
    u32::from(current.is_some_and(|c| c != choice) && !crate::token::is_crash(choice))
}

impl Dfs {
    /// A run that follows `prefix`, then never preempts; `bound` is P.
    pub fn new(prefix: Vec<u32>, bound: u32) -> Dfs {
        Dfs {
            prefix,
            bound,
            trail: Vec::new(),
            preemptions: 0,
            floor: 0,
        }
    }

    /// A run that follows `prefix` and, as a search, never changes the choices it made
    /// before step `floor` (a part of a search split by prefix).
    pub fn within(prefix: Vec<u32>, bound: u32, floor: usize) -> Dfs {
        Dfs {
            floor,
            ..Dfs::new(prefix, bound)
        }
    }

    /// The buyers that could run at `step` of this run within the bound, the one it ran
    /// first, each with the preemptions a schedule has made once it ran; `None` when the
    /// run ended before `step`.
    pub fn choices(&self, step: usize) -> Option<Vec<(u32, u32)>> {
        let f = self.trail.get(step)?;
        Some(
            f.order
                .iter()
                .map(|&b| (b, f.preemptions_before + cost(b, f.current)))
                .filter(|&(_, p)| p <= self.bound)
                .collect(),
        )
    }

    /// Preemptions this run made.
    pub fn preemptions(&self) -> u32 {
        self.preemptions
    }

    /// The prefix of the next schedule to run, or `None` when the search is complete.
    pub fn next(&self) -> Option<Vec<u32>> {
        for i in (self.floor..self.trail.len()).rev() {
            let f = &self.trail[i];
            let pos = f.order.iter().position(|&b| b == f.chosen)?;
            if let Some(&alt) = f.order[pos + 1..]
                .iter()
                .find(|&&b| f.preemptions_before + cost(b, f.current) <= self.bound)
            {
                let mut prefix: Vec<u32> = self.trail[..i].iter().map(|f| f.chosen).collect();
                prefix.push(alt);
                return Some(prefix);
            }
        }
        None
    }
}

impl Scheduler for Dfs {
    fn places_crash(&self) -> bool {
        true
    }

    fn searches_disk_states(&self) -> bool {
        true
    }

    fn pick(
        &mut self,
        step: usize,
        runnable: &[u32],
        current: Option<u32>,
    ) -> Result<u32, Diverged> {
        let order = order(runnable, current);
        let chosen = match self.prefix.get(step) {
            Some(&b) if runnable.contains(&b) => b,
            Some(&b) => {
                return Err(Diverged {
                    step,
                    wanted: Some(b),
                    runnable: runnable.to_vec(),
                    recorded: Vec::new(),
                })
            }
            None => order[0],
        };
        let before = self.preemptions;
        self.preemptions += cost(chosen, current);
        self.trail.push(Frame {
            order,
            chosen,
            current,
            preemptions_before: before,
        });
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates two buyers of `n` steps each that never block, counting the schedules
    /// the search runs: 2, 2 + 2(n−1) and 2 + 2(n−1) + 2(n−1)² for P = 0, 1, 2.
    fn count(n: usize, bound: u32) -> usize {
        let mut prefix = Some(Vec::new());
        let mut runs = 0;
        while let Some(p) = prefix {
            let mut dfs = Dfs::new(p, bound);
            let mut left = [n, n];
            let mut current = None;
            let mut step = 0;
            while left.iter().any(|&l| l > 0) {
                let runnable: Vec<u32> = (0..2).filter(|&b| left[b as usize] > 0).collect();
                let cur = current.filter(|c: &u32| left[*c as usize] > 0);
                let b = dfs.pick(step, &runnable, cur).expect("pick");
                left[b as usize] -= 1;
                current = Some(b);
                step += 1;
            }
            runs += 1;
            prefix = dfs.next();
        }
        runs
    }

    #[test]
    fn two_buyers_by_hand() {
        for n in [1usize, 3, 6] {
            let m = n - 1;
            assert_eq!(count(n, 0), 2);
            assert_eq!(count(n, 1), 2 + 2 * m);
            assert_eq!(count(n, 2), 2 + 2 * m + 2 * m * m);
        }
    }
}
