//! `exhaustive` with partial-order reduction: one schedule per equivalence class.
//!
//! Two schedules are equivalent when one is the other with adjacent independent steps
//! swapped ([`Access::conflicts`] says which are independent): they are the same
//! execution, with the same values read, the same store at the end and the same verdict.
//! The search is source-set DPOR with sleep sets (Abdulla et al., POPL 2014), run
//! stateless: each schedule is a new round of the controlled harness that replays a
//! prefix of choices and then continues on its own.
//!
//! After each run the trace is analysed: for every race (two conflicting steps of
//! different buyers with nothing ordering them in between) the search makes sure the
//! state before the first one explores some buyer that can start the reversed order.
//! A buyer explored at a state sleeps in its later siblings' subtrees until a step
//! conflicting with its pending one runs; a run in which every runnable buyer sleeps
//! (sleep-set blocked) is redundant and finishes without adding anything.
//!
//! With a preemption bound P, a choice that would cost the run more than P preemptions
//! is not taken, as in [`super::Dfs`]. Bounding a partial-order search can hide a class
//! whose only bounded member needs the reversal to start earlier; as in bounded POR
//! (Coons et al., OOPSLA 2013) a buyer added at a state is also added where the run of
//! steps containing that state began, where switching costs no more. Sleep sets are off
//! under a bound (they too can hide the only bounded member of a class), so a bounded
//! search may run one execution more than once: every run is named by its execution (the
//! lowest ordering of its steps that keeps the conflicts in order) and
//! [`Dpor::executions`] counts distinct names.

use super::conflict::Access;
#[cfg(test)]
use super::{Dfs, UNBOUNDED};
use super::{Diverged, Scheduler};
use std::collections::HashSet;

#[derive(Debug, Clone)]
struct Frame {
    /// Runnable buyers at this state, sorted.
    enabled: Vec<u32>,
    /// The pending step of each buyer (by index) that is runnable here.
    pending: Vec<Option<Access>>,
    /// The buyer that ran the step before, when it could run again.
    current: Option<u32>,
    preemptions_before: u32,
    /// The buyer run from here in this schedule, and what its step touched.
    chosen: u32,
    executed: Access,
    /// The chosen buyer did not come back from its step: it conflicts with everything.
    died: bool,
    /// Buyers run from here in this or earlier schedules.
    done: Vec<u32>,
    /// Buyers to run from here.
    backtrack: Vec<u32>,
    /// Buyers whose step from here is covered elsewhere, with what that step touches.
    sleep: Vec<(u32, Access)>,
    /// What each buyer's step from here touched when it ran, as learned once it had run
    /// (it may be more than its pending step was said to touch: [`Scheduler::executed`]).
    explored: Vec<(u32, Access)>,
}

impl Frame {
    fn asleep(&self, b: u32) -> bool {
        self.sleep.iter().any(|&(q, _)| q == b)
    }
}

impl Frame {
    fn cost(&self, b: u32) -> u32 {
        u32::from(self.current.is_some_and(|c| c != b) && !crate::token::is_crash(b))
    }
}

/// A partial-order-reduced search; one value serves every schedule of one trial shape.
#[derive(Debug, Clone)]
pub struct Dpor {
    bound: Option<u32>,
    frames: Vec<Frame>,
    /// Frames followed as recorded in this run (the last one with its new choice).
    replay: usize,
    step: usize,
    preemptions: u32,
    /// What each buyer's pending step touches, as the harness last said.
    ahead: Vec<Option<Access>>,
    /// The first state of this run at which every runnable buyer slept.
    blocked_at: Option<usize>,
    runs: u64,
    executions: u64,
    /// The names of the executions run (see [`canonical`]).
    seen: HashSet<Vec<u8>>,
    /// A part of a search split by prefix: the choices of its first steps, never changed.
    fixed: Vec<u32>,
    /// For each fixed step, the buyers other parts run there (before this part's choice).
    siblings: Vec<Vec<u32>>,
}

impl Dpor {
    /// A search with at most `bound` preemptions per schedule (`None`: unbounded).
    pub fn new(bound: Option<u32>) -> Dpor {
        Dpor {
            bound,
            frames: Vec::new(),
            replay: 0,
            step: 0,
            preemptions: 0,
            ahead: Vec::new(),
            blocked_at: None,
            runs: 0,
            executions: 0,
            seen: HashSet::new(),
            fixed: Vec::new(),
            siblings: Vec::new(),
        }
    }

    /// One part of a search split by prefix: the schedules that begin with `fixed`.
    /// Every buyer that can run at a fixed step within the bound is some part's choice
    /// there, so this part adds nothing at those steps; `siblings[i]` are the buyers whose
    /// parts come before this one at step `i`, which (unbounded, where sleep sets are on)
    /// sleep in this part as they would in one search that ran them first.
    pub fn part(bound: Option<u32>, fixed: Vec<u32>, siblings: Vec<Vec<u32>>) -> Dpor {
        Dpor {
            fixed,
            siblings,
            ..Dpor::new(bound)
        }
    }

    /// Schedules run so far.
    #[cfg(test)]
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Distinct executions (equivalence classes) run so far, told apart by name.
    pub fn executions(&self) -> u64 {
        self.executions
    }

    fn within(&self, f: &Frame, b: u32) -> bool {
        self.bound
            .is_none_or(|p| f.preemptions_before + f.cost(b) <= p)
    }

    /// The sleep set of a new state after `parent`'s chosen step. A buyer's step is
    /// judged by what it touched when it ran from `parent` (its pending access where it
    /// ran in another part of a split search only).
    fn sleep_after(parent: &Frame) -> Vec<(u32, Access)> {
        let done = parent.done.iter().filter_map(|&q| {
            let ran = parent.explored.iter().find(|e| e.0 == q).map(|e| e.1);
            ran.or_else(|| pending(&parent.pending, q)).map(|a| (q, a))
        });
        let mut sleep: Vec<(u32, Access)> = Vec::new();
        for (q, a) in parent.sleep.iter().copied().chain(done) {
            if q != parent.chosen
                && !a.conflicts(parent.executed)
                && !sleep.iter().any(|e| e.0 == q)
            {
                sleep.push((q, a));
            }
        }
        sleep.sort_unstable_by_key(|e| e.0);
        sleep
    }

    fn new_frame(&mut self, step: usize, runnable: &[u32], current: Option<u32>) -> Frame {
        let sleep = match step {
            // Under a bound, sleep sets can hide the only bounded member of a class.
            _ if self.bound.is_some() => Vec::new(),
            0 => Vec::new(),
            _ => Self::sleep_after(&self.frames[step - 1]),
        };
        let mut f = Frame {
            enabled: runnable.to_vec(),
            pending: self.ahead.clone(),
            current,
            preemptions_before: self.preemptions,
            chosen: 0,
            executed: Access::NOTHING,
            died: false,
            done: Vec::new(),
            backtrack: Vec::new(),
            sleep,
            explored: Vec::new(),
        };
        let order = current
            .into_iter()
            .chain(runnable.iter().copied().filter(|&b| Some(b) != current));
        let awake = order.clone().find(|&b| !f.asleep(b) && self.within(&f, b));
        if let Some(&b) = self.fixed.get(step) {
            if f.asleep(b) {
                // Another part covers every schedule of this one.
                self.blocked_at.get_or_insert(step);
            }
            if self.bound.is_none() {
                f.done
                    .extend(self.siblings.get(step).into_iter().flatten().copied());
            }
            f.chosen = b;
            f.done.push(b);
            f.backtrack.push(b);
            return f;
        }
        let chosen = match awake {
            Some(b) => b,
            None => {
                // Sleep-set blocked: this run adds nothing; finish it without preempting.
                self.blocked_at.get_or_insert(step);
                order.clone().next().unwrap_or(runnable[0])
            }
        };
        f.chosen = chosen;
        f.done.push(chosen);
        f.backtrack.push(chosen);
        f
    }

    /// Ends a run: finds its races, then sets up the next schedule. False when the
    /// search is complete.
    pub fn advance(&mut self) -> bool {
        self.runs += 1;
        let limit = self
            .blocked_at
            .unwrap_or(self.frames.len())
            .min(self.frames.len());
        let (proc, hb) = self.happens_before(limit);
        if self.blocked_at.is_none() && self.seen.insert(canonical(&proc, &hb)) {
            self.executions += 1;
        }
        self.add_backtracks(&proc, &hb);
        // Only where a step touched other than it was said to (rare: a buyer of a whole
        // program, a process that ended) is there anything to keep.
        for f in &mut self.frames[..limit] {
            let said = pending(&f.pending, f.chosen);
            if said != Some(f.executed) && !f.explored.iter().any(|e| e.0 == f.chosen) {
                f.explored.push((f.chosen, f.executed));
            }
        }
        for i in (self.fixed.len().min(limit)..limit).rev() {
            let f = &self.frames[i];
            let alt = f.backtrack.iter().copied().find(|&b| {
                !f.done.contains(&b) && !f.asleep(b) && f.enabled.contains(&b) && self.within(f, b)
            });
            if let Some(b) = alt {
                self.frames.truncate(i + 1);
                let f = &mut self.frames[i];
                f.chosen = b;
                f.done.push(b);
                self.replay = i + 1;
                self.step = 0;
                self.preemptions = 0;
                self.blocked_at = None;
                return true;
            }
        }
        false
    }

    /// For each race in the run's first `n` steps, makes sure the state before the first
    /// step explores a buyer that can start the reversed order.
    fn add_backtracks(&mut self, proc: &[u32], hb: &[Vec<bool>]) {
        let n = proc.len();
        let acc: Vec<Access> = self.frames[..n].iter().map(|f| f.executed).collect();
        for j in 0..n {
            for i in 0..j {
                if proc[i] == proc[j] || !acc[i].conflicts(acc[j]) {
                    continue;
                }
                if (i + 1..j).any(|k| hb[k][i] && hb[j][k]) {
                    continue;
                }
                let first = initials(proc, hb, i, j);
                self.add_source(i, &first, proc[j], proc);
                for k in self.coenabled_races(proc, hb, &acc, i, j) {
                    let first = initials(proc, hb, k, j);
                    self.add_source(k, &first, proc[j], proc);
                }
            }
        }
    }

    /// A lock that blocks makes a race's reversal impossible where its taker waits: when
    /// `j` cannot be known to run before `i` (its buyer waited there, or took other steps
    /// in between, after which it may wait), the earlier steps that conflict with `j`,
    /// latest first, where its buyer could run and which its earlier steps do not
    /// follow, up to the first where running it stays within the bound: the step `j`
    /// must come before instead (the taking of the lock that `i` let go). Without them
    /// a lock that blocks hides every order in which another buyer takes it first.
    fn coenabled_races(
        &self,
        proc: &[u32],
        hb: &[Vec<bool>],
        acc: &[Access],
        i: usize,
        j: usize,
    ) -> Vec<usize> {
        let b = proc[j];
        let mut out = Vec::new();
        let f = &self.frames[i];
        if !proc[i + 1..j].contains(&b) && f.enabled.contains(&b) && self.within(f, b) {
            // Its buyer could take `j` there, within the bound: reversed there.
            return out;
        }
        let before = proc[..j].iter().rposition(|&p| p == b);
        for k in (0..i).rev() {
            if proc[k] == b
                || !acc[k].conflicts(acc[j])
                || !self.frames[k].enabled.contains(&b)
                || before.is_some_and(|p| hb[p][k])
            {
                continue;
            }
            out.push(k);
            // A reversal that can be taken here within the bound stands for the ones
            // further back.
            if self.within(&self.frames[k], b) {
                break;
            }
        }
        out
    }

    /// The buyers of the run's first `n` steps, and `hb[j][i]`: step `i` happens before
    /// step `j` (same buyer or conflicting, transitively).
    fn happens_before(&self, n: usize) -> (Vec<u32>, Vec<Vec<bool>>) {
        let proc: Vec<u32> = self.frames[..n].iter().map(|f| f.chosen).collect();
        let acc: Vec<Access> = self.frames[..n].iter().map(|f| f.executed).collect();
        let mut hb = vec![vec![false; n]; n];
        for j in 0..n {
            let (earlier, rest) = hb.split_at_mut(j);
            let row = &mut rest[0];
            for i in (0..j).rev() {
                if !row[i] && (proc[i] == proc[j] || acc[i].conflicts(acc[j])) {
                    row[i] = true;
                    for (m, &before) in earlier[i][..i].iter().enumerate() {
                        row[m] |= before;
                    }
                }
            }
        }
        (proc, hb)
    }

    /// Makes the state before step `i` explore one of `initials` (preferring `want`),
    /// unless one is explored there already; where none can run there, every buyer that
    /// can. Under a bound a choice that would exceed it covers nothing, and the buyer is
    /// also added where the run of steps containing `i` began, where switching costs no
    /// more.
    fn add_source(&mut self, i: usize, initials: &[u32], want: u32, proc: &[u32]) {
        let start = (1..=i).rev().find(|&s| proc[s - 1] != proc[s]).unwrap_or(0);
        for at in [i, start] {
            if (at != i && self.bound.is_none()) || at < self.fixed.len() {
                continue;
            }
            let f = &self.frames[at];
            let can = |q: &u32| f.enabled.contains(q) && self.within(f, *q);
            // Under a bound a class's one member within it may start with one initial
            // and not another, and where the run began the initials of the reversal
            // are not those at `i` (the run's own earlier steps come first): the racing
            // buyer itself, where it can run.
            let initials: &[u32] = if self.bound.is_some() && can(&want) {
                std::slice::from_ref(&want)
            } else {
                initials
            };
            let covered = initials
                .iter()
                .any(|q| (f.backtrack.contains(q) || f.done.contains(q)) && can(q));
            if covered {
                if at == i {
                    return;
                }
                continue;
            }
            let adds: Vec<u32> = if initials.contains(&want) && can(&want) {
                vec![want]
            } else if let Some(&q) = initials.iter().find(|q| can(q)) {
                vec![q]
            } else if initials.iter().any(|q| f.enabled.contains(q)) {
                // Only beyond the bound: nothing to add here.
                Vec::new()
            } else {
                f.enabled.iter().copied().filter(|q| can(q)).collect()
            };
            let f = &mut self.frames[at];
            for b in adds {
                if !f.backtrack.contains(&b) {
                    f.backtrack.push(b);
                }
            }
        }
    }
}

/// What buyer `b`'s pending step touches; `None` when the harness did not say (a
/// harness that reports no accesses gets a step that conflicts with everything, and so
/// a search that reduces nothing).
fn pending(all: &[Option<Access>], b: u32) -> Option<Access> {
    all.get(b as usize).copied().flatten()
}

/// The execution's name: its lowest ordering by buyer index that keeps every step after
/// those that happen before it. Two schedules are one execution exactly when they have
/// the same name.
fn canonical(proc: &[u32], hb: &[Vec<bool>]) -> Vec<u8> {
    let n = proc.len();
    let mut taken = vec![false; n];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let next = (0..n)
            .filter(|&k| !taken[k] && (0..k).all(|m| taken[m] || !hb[k][m]))
            .min_by_key(|&k| proc[k]);
        let Some(k) = next else { break };
        taken[k] = true;
        out.push(u8::try_from(proc[k]).unwrap_or(u8::MAX));
    }
    out
}

/// The buyers that can take the first step of `v`: the steps after `i` up to `j` that do
/// not happen after `i`, then `j`.
fn initials(proc: &[u32], hb: &[Vec<bool>], i: usize, j: usize) -> Vec<u32> {
    let v: Vec<usize> = (i + 1..j).filter(|&k| !hb[k][i]).chain([j]).collect();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (x, &k) in v.iter().enumerate() {
        if seen.contains(&proc[k]) {
            continue;
        }
        seen.push(proc[k]);
        if !v[..x].iter().any(|&m| hb[k][m]) {
            out.push(proc[k]);
        }
    }
    out
}

impl Scheduler for Dpor {
    fn places_crash(&self) -> bool {
        true
    }

    fn searches_disk_states(&self) -> bool {
        true
    }

    fn wants_accesses(&self) -> bool {
        true
    }

    fn ahead(&mut self, pending: &[Option<Access>]) {
        self.ahead.clear();
        self.ahead.extend_from_slice(pending);
    }

    fn pick(
        &mut self,
        step: usize,
        runnable: &[u32],
        current: Option<u32>,
    ) -> Result<u32, Diverged> {
        if step == 0 {
            self.preemptions = 0;
        }
        self.step = step;
        let chosen = if step < self.replay {
            let f = &mut self.frames[step];
            if f.enabled != runnable || !runnable.contains(&f.chosen) {
                return Err(Diverged {
                    step,
                    wanted: Some(f.chosen),
                    runnable: runnable.to_vec(),
                    recorded: f.enabled.clone(),
                });
            }
            f.pending.clone_from(&self.ahead);
            f.chosen
        } else {
            self.frames.truncate(step);
            let f = self.new_frame(step, runnable, current);
            if !runnable.contains(&f.chosen) {
                return Err(Diverged {
                    step,
                    wanted: Some(f.chosen),
                    runnable: runnable.to_vec(),
                    recorded: Vec::new(),
                });
            }
            self.frames.push(f);
            self.frames[step].chosen
        };
        let f = &mut self.frames[step];
        f.executed = pending(&f.pending, chosen).unwrap_or(Access::EVERYTHING);
        f.died = false;
        self.preemptions += f.cost(chosen);
        Ok(chosen)
    }

    fn ran(&mut self, buyer: u32, died: bool) {
        if let Some(f) = self.frames.get_mut(self.step) {
            if died && f.chosen == buyer {
                f.executed = Access::EVERYTHING;
                f.died = true;
            }
        }
    }

    fn executed(&mut self, buyer: u32, access: Access) {
        if let Some(f) = self.frames.get_mut(self.step) {
            // A buyer that died keeps its step conflicting with everything.
            if f.chosen == buyer && !f.died {
                f.executed = access;
            }
        }
    }

    fn blocked(&mut self, buyer: u32) {
        if let Some(f) = self.frames.get_mut(self.step) {
            if f.chosen == buyer {
                f.executed = f.executed.blocked();
            }
        }
    }
}

#[cfg(test)]
mod tests;
