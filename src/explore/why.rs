//! Why a finding happened: the racing pair.
//!
//! A controlled trial is a list of steps, each taken by one buyer, and the harness records
//! what each step touched ([`Seen`]). Two steps of different buyers *race* when they
//! conflict (they touch the same thing and one changes it) and nothing between them
//! conflicts with the second: moving the second before the first reorders nothing else
//! that matters. For each racing pair, nearest first, the trial runs again with the
//! second step moved before the first and every other step kept in its order
//! ([`Replay::lenient`]); the first pair whose swap clears the finding is the
//! explanation. Cleared means: the swapped run no longer shows the finding's kind, and
//! shows no kind the original did not (a swap that trades an `oversold` for a torn read
//! explains nothing). Where no single swap clears it, pairs of swaps are tried; the
//! explanation then names the smallest set found, or says that none was.
//!
//! Every claim is one run: the pair is named only once the swapped run showed it, and
//! that run's token is kept so that anyone can replay it.

use super::{Checked, Runner};
use crate::check::FindingKind;
use crate::harness::{HarnessError, Seen};
use crate::ledger::{EventKind, History};
use crate::report::{Why, WhyStep};
use crate::scenario::{self, Trial};
use crate::schedule::Replay;
use std::collections::BTreeSet;

/// Most reordered runs one explanation may spend on single swaps.
const SINGLE_BUDGET: usize = 40;
/// Most reordered runs spent on pairs of swaps once no single one cleared the finding.
const DOUBLE_BUDGET: usize = 30;
/// The single swaps that pairs of swaps are drawn from (the nearest races).
const DOUBLE_FROM: usize = 8;

/// Explains the finding of `c`: the racing pair of a controlled trial, or the controlled
/// command that would show it for a free-running one. `None` when `c` found nothing.
pub fn explain(runner: &mut Runner<'_>, c: &Checked) -> Result<Option<Why>, HarnessError> {
    if c.violations.is_empty() {
        return Ok(None);
    }
    if !c.trial.schedule.is_controlled() {
        return Ok(Some(Why {
            pair: Vec::new(),
            swaps: Vec::new(),
            story: format!(
                "a free-running trial has no steps to swap; to see the racing pair, run it \
                 under a controlled schedule: {}",
                controlled_command(&c.trial)
            ),
            swapped_token: None,
            remains: Vec::new(),
            tried: 0,
        }));
    }
    let killed = c.run.history.fates.iter().any(|f| f.killed_by_fault);
    if let Some(cause) = not_a_race(c.violations[0].kind, killed) {
        return Ok(Some(Why {
            pair: Vec::new(),
            swaps: Vec::new(),
            story: format!(
                "no racing pair: a {} comes from {cause}, not from the order of two steps",
                gravest(c)
            ),
            swapped_token: None,
            remains: Vec::new(),
            tried: 0,
        }));
    }
    let (Some(choices), Some(rec)) = (&c.trial.choices, &c.run.schedule) else {
        return Ok(None);
    };
    if rec.steps.len() != choices.len() {
        return Ok(None);
    }
    let steps = Steps {
        choices,
        seen: &rec.steps,
        history: &c.run.history,
    };
    let races = steps.races();
    let target = Target {
        kind: c.violations[0].kind,
        allowed: c.violations.iter().map(|v| v.kind).collect(),
    };
    let mut tried = 0usize;
    for &(i, j) in races.iter().take(SINGLE_BUDGET) {
        tried += 1;
        let order = swapped(choices, &[(i, j)]);
        if let Some(swap) = target.cleared(runner, &c.trial, &steps.choices_in(&order))? {
            return Ok(Some(steps.single(i, j, swap, tried, c)));
        }
    }
    // No single swap: try two at once, drawn from the nearest races.
    let near: Vec<(usize, usize)> = races.iter().copied().take(DOUBLE_FROM).collect();
    let mut double_tried = 0usize;
    for (a, &first) in near.iter().enumerate() {
        for &second in near.iter().skip(a + 1) {
            if double_tried >= DOUBLE_BUDGET {
                break;
            }
            double_tried += 1;
            tried += 1;
            let order = swapped(choices, &[first, second]);
            if let Some(swap) = target.cleared(runner, &c.trial, &steps.choices_in(&order))? {
                return Ok(Some(steps.double(first, second, swap, tried, c)));
            }
        }
    }
    Ok(Some(Why {
        pair: Vec::new(),
        swaps: Vec::new(),
        story: format!(
            "no swap of one or two racing steps cleared the {} ({} of {} racing pairs \
             tried, {tried} reordered runs): it needs a longer reordering",
            gravest(c),
            races.len().min(SINGLE_BUDGET),
            races.len()
        ),
        swapped_token: None,
        remains: Vec::new(),
        tried,
    }))
}

/// What causes a kind of finding that no reordering of steps can clear; `None` for the
/// kinds an order of steps makes. `killed`: an injected fault killed a buyer in the run.
fn not_a_race(kind: FindingKind, killed: bool) -> Option<&'static str> {
    match kind {
        FindingKind::CorruptStore if killed => {
            Some("a buyer killed by an injected fault in the middle of its write")
        }
        FindingKind::StaleLock => Some("a holder killed by an injected fault"),
        FindingKind::Hang => Some("a buyer that stopped making progress"),
        FindingKind::Crash => Some("a buyer that died on its own"),
        FindingKind::LostSale => Some(
            "a power cut that undid a write the store had not made durable (--store durable \
             fsyncs the file and its directory)",
        ),
        FindingKind::LeakedProcess => Some("a process that outlived the trial"),
        FindingKind::Oversold
        | FindingKind::DoubleSale
        | FindingKind::LostUpdate
        | FindingKind::Overlap
        | FindingKind::CorruptStore
        | FindingKind::Deadlock => None,
    }
}

/// The finding kind a story names: the first violation's.
fn gravest(c: &Checked) -> &'static str {
    c.violations.first().map_or("finding", |v| v.kind.name())
}

/// The finding a swap must clear, and the kinds the swapped run may still show.
struct Target {
    kind: FindingKind,
    allowed: BTreeSet<FindingKind>,
}

/// A swapped run that cleared the finding: its token, and what it still showed.
struct Swap {
    token: String,
    remains: Vec<String>,
}

impl Target {
    /// Runs `trial` with `choices` as far as they fit; the run, when it cleared the
    /// finding.
    fn cleared(
        &self,
        runner: &mut Runner<'_>,
        trial: &Trial,
        choices: &[u32],
    ) -> Result<Option<Swap>, HarnessError> {
        let mut replay = Replay::lenient(choices.to_vec());
        let mut t = trial.clone();
        t.found.clear();
        // Once: a swapped run is a claim in itself, never a stall laundered by a second look.
        let run = runner.run_once(&t, Some(&mut replay))?;
        let kinds: BTreeSet<FindingKind> = run.violations.iter().map(|v| v.kind).collect();
        if run.diverged().is_some() || kinds.contains(&self.kind) || !kinds.is_subset(&self.allowed)
        {
            return Ok(None);
        }
        Ok(Some(Swap {
            token: run.trial.found_token(&run.violations),
            remains: kinds.iter().map(|k| k.name().to_string()).collect(),
        }))
    }
}

/// `and the trial is clean`, or `and the oversold is gone (an overlap remains)`.
fn outcome(kind: &str, remains: &[String]) -> String {
    if remains.is_empty() {
        return "and the trial is clean".to_string();
    }
    format!(
        "and the {kind} is gone (the run still shows {})",
        remains.join(", ")
    )
}

/// The order of steps (original indices) after, for each `(i, j)` in turn, moving step
/// `j` and the steps of its buyer between `i` and `j` to just before step `i` (a buyer's
/// own steps keep their order).
fn swapped(choices: &[u32], swaps: &[(usize, usize)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..choices.len()).collect();
    for &(i, j) in swaps {
        let (Some(pi), Some(pj)) = (
            order.iter().position(|&k| k == i),
            order.iter().position(|&k| k == j),
        ) else {
            continue;
        };
        if pj <= pi {
            continue;
        }
        let b = choices[j];
        let (moved, stay): (Vec<usize>, Vec<usize>) = order[pi..=pj]
            .iter()
            .partition(|&&k| k != i && choices[k] == b);
        let tail = order.split_off(pj + 1);
        order.truncate(pi);
        order.extend(moved);
        order.extend(stay);
        order.extend(tail);
    }
    order
}

/// A failing run's steps: who took each and what it touched.
struct Steps<'a> {
    choices: &'a [u32],
    seen: &'a [Seen],
    history: &'a History,
}

impl Steps<'_> {
    fn choices_in(&self, order: &[usize]) -> Vec<u32> {
        order.iter().map(|&k| self.choices[k]).collect()
    }

    /// Whether the order of steps `a` and `b` can matter.
    fn conflict(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.seen[a], &self.seen[b]);
        if x.point.is_some() || y.point.is_some() {
            return x.access.conflicts(y.access);
        }
        match (&x.object, &y.object) {
            (Some(p), Some(q)) => p == q && (x.changes || y.changes),
            (None, None) => x.changes && y.changes,
            (None, Some(_)) => x.changes,
            (Some(_), None) => y.changes,
        }
    }

    /// Whether steps `a` and `b` touch the same thing, whatever they do to it.
    fn shares(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.seen[a], &self.seen[b]);
        if x.point.is_some() || y.point.is_some() {
            return x.access.shares(y.access);
        }
        x.object.is_some() && x.object == y.object
    }

    /// Every racing pair `(i, j)`, `i < j`: steps of different buyers in conflict. Its
    /// swap runs `j` (with the steps of its buyer since `i`) before `i`. A look followed by
    /// a change first (the read a lost update overwrites, the test before another's take),
    /// then a change followed by a look, then two changes; within each, nearest first,
    /// then the latest first; pairs of two ledger appends last.
    fn races(&self) -> Vec<(usize, usize)> {
        let n = self.choices.len();
        let mut out = Vec::new();
        for j in 0..n {
            for i in 0..j {
                if self.choices[i] != self.choices[j] && self.conflict(i, j) {
                    out.push((i, j));
                }
            }
        }
        let ledger = |k: usize| {
            self.seen[k]
                .object
                .as_deref()
                .is_some_and(|p| p.ends_with(crate::ledger::FILE_NAME))
        };
        let shape = |i: usize, j: usize| match (self.changes(i), self.changes(j)) {
            (false, true) => 0,
            (true, false) => 1,
            _ => 2,
        };
        out.sort_by_key(|&(i, j)| {
            (
                ledger(i) && ledger(j),
                shape(i, j),
                j - i,
                std::cmp::Reverse(j),
            )
        });
        out
    }

    /// What step `k` did, in the user's terms.
    fn what(&self, k: usize) -> String {
        let b = self.choices[k];
        if let Some(line) = self.history.syscalls.get(k) {
            if self.seen[k].point.is_none() {
                let prefix = format!("buyer {b} ");
                return line.strip_prefix(&prefix).unwrap_or(line).to_string();
            }
        }
        let from = self.seen[k].ns;
        let to = self.seen.get(k + 1).map_or(u64::MAX, |s| s.ns);
        let said: Vec<String> = self
            .history
            .events
            .iter()
            .filter(|e| e.buyer == b && e.ns >= from && e.ns < to)
            .filter_map(|e| event_words(e.kind, e.value.as_deref()))
            .collect();
        if !said.is_empty() {
            return said.join(", then ");
        }
        match self.seen[k].point {
            Some(crate::protocol::Point::Acquire) => "found the lock busy".to_string(),
            Some(p) => format!("passed its {} point", p.name()),
            None => "took a step".to_string(),
        }
    }

    fn step(&self, k: usize) -> WhyStep {
        WhyStep {
            step: k + 1,
            buyer: self.choices[k],
            what: self.what(k),
        }
    }

    /// `buyer 1 read count=1 (step 5)`.
    fn told(&self, k: usize) -> String {
        format!(
            "buyer {} {} (step {})",
            self.choices[k],
            self.what(k),
            k + 1
        )
    }

    /// The last look of `j`'s buyer before `i` at what `i` touches: what the story
    /// starts from (the read that a lost update overwrites, the test before the touch).
    fn context(&self, i: usize, j: usize) -> Option<usize> {
        (0..i)
            .rev()
            .find(|&k| self.choices[k] == self.choices[j] && self.shares(k, i) && !self.changes(k))
    }

    /// Whether step `k` changes what it touches.
    fn changes(&self, k: usize) -> bool {
        let s = &self.seen[k];
        match s.point {
            Some(_) => s.access.changes(),
            None => s.changes,
        }
    }

    fn single(&self, i: usize, j: usize, swap: Swap, tried: usize, c: &Checked) -> Why {
        let mut story = String::new();
        if let Some(k) = self.context(i, j) {
            story.push_str(&self.told(k));
            story.push_str("; ");
        }
        let b = self.choices[j];
        let own = (i + 1..j).filter(|&k| self.choices[k] == b).count();
        let how = if j == i + 1 {
            format!("swap steps {} and {}", i + 1, j + 1)
        } else if own == 0 {
            format!("run step {} before step {}", j + 1, i + 1)
        } else {
            format!(
                "run buyer {b}'s steps up to step {} before step {}",
                j + 1,
                i + 1
            )
        };
        story.push_str(&format!(
            "{} before {}: {how} {}",
            self.told(i),
            self.told(j),
            outcome(gravest(c), &swap.remains)
        ));
        Why {
            pair: vec![self.step(i), self.step(j)],
            swaps: Vec::new(),
            story,
            swapped_token: Some(swap.token),
            remains: swap.remains,
            tried,
        }
    }

    fn double(
        &self,
        a: (usize, usize),
        b: (usize, usize),
        swap: Swap,
        tried: usize,
        c: &Checked,
    ) -> Why {
        let story = format!(
            "no single swap of racing steps clears the {}; two together do: {} before {}, \
             and {} before {} (run each second step first {})",
            gravest(c),
            self.told(a.0),
            self.told(a.1),
            self.told(b.0),
            self.told(b.1),
            outcome(gravest(c), &swap.remains)
        );
        Why {
            pair: Vec::new(),
            swaps: vec![[a.0 + 1, a.1 + 1], [b.0 + 1, b.1 + 1]],
            story,
            swapped_token: Some(swap.token),
            remains: swap.remains,
            tried,
        }
    }
}

/// A ledger event in words; `None` for events that say nothing about the race.
fn event_words(kind: EventKind, value: Option<&str>) -> Option<String> {
    let v = value.unwrap_or("?");
    Some(match kind {
        EventKind::Start => return None,
        EventKind::Check => format!("looked at count={v} without the lock"),
        EventKind::Acquired => "took the lock".to_string(),
        EventKind::Read => format!("read count={v}"),
        EventKind::Truncated => format!("emptied the store to write count={v}"),
        EventKind::Wrote => format!("wrote count={v}"),
        EventKind::Released => "released the lock".to_string(),
        EventKind::Bought => format!("recorded selling ticket {v}"),
        EventKind::SoldOut => "found no ticket left".to_string(),
        EventKind::Error => format!("failed ({v})"),
        EventKind::Stopped => "was stopped".to_string(),
        EventKind::Resumed => "resumed".to_string(),
        EventKind::Fence => format!("got fencing token {v}"),
    })
}

/// The `explore` command that runs a free-running trial's shape under a controlled
/// schedule.
pub fn controlled_command(t: &Trial) -> String {
    let mut cmd = String::from("oversell explore");
    match &t.target {
        scenario::Target::LockCmd(c) => cmd.push_str(&format!(" --lock-cmd {}", quote(c))),
        scenario::Target::BuyerCmd { cmd: c, store_cmd } => {
            cmd.push_str(&format!(" --buyer-cmd {}", quote(c)));
            if let Some(s) = store_cmd {
                cmd.push_str(&format!(" --store-cmd {}", quote(s)));
            }
        }
        scenario::Target::Program(p) => cmd.push_str(&format!(
            " --program {} --store-file {} --store-key {} --sold {}",
            quote(&p.cmd),
            quote(&p.store_file),
            quote(&p.store_key),
            quote(&p.sold)
        )),
        scenario::Target::Lock { lock, syscall } => {
            cmd.push_str(&format!(" --lock {}", lock.name()));
            if *syscall {
                cmd.push_str(" --granularity syscall");
            }
        }
    }
    cmd.push_str(&format!(" --buyers {} --tickets {}", t.buyers, t.tickets));
    if t.store != crate::store::StoreMode::default() {
        cmd.push_str(&format!(" --store {}", t.store.name()));
    }
    let mut faults = Vec::new();
    if t.faults.kill > 0.0 {
        faults.push(format!("kill={}", t.faults.kill));
    }
    if t.faults.stop > 0.0 {
        faults.push(format!("stop={}:{}", t.faults.stop, t.faults.stop_ms));
    }
    if t.faults.crash > 0.0 {
        faults.push(format!("crash={}", t.faults.crash));
    }
    if !faults.is_empty() {
        cmd.push_str(&format!(" --faults {}", faults.join(",")));
    }
    cmd.push_str(" --schedule pct --trials 100");
    cmd
}

/// `s` quoted for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapping_moves_the_second_step_before_the_first_and_keeps_the_rest() {
        let c = [0, 1, 0, 1, 0];
        assert_eq!(swapped(&c, &[(1, 2)]), vec![0, 2, 1, 3, 4]);
        // Buyer 0's steps 2 and 4 both go before step 1; buyer 1's step 3 stays after.
        assert_eq!(swapped(&c, &[(1, 4)]), vec![0, 2, 4, 1, 3]);
        assert_eq!(swapped(&c, &[(0, 1), (3, 4)]), vec![1, 0, 2, 4, 3]);
        let two = [0, 0, 1, 1];
        assert_eq!(swapped(&two, &[(1, 3)]), vec![0, 2, 3, 1]);
    }

    #[test]
    fn a_command_is_quoted_for_the_shell() {
        assert_eq!(quote("flock {dir}/l {}"), "'flock {dir}/l {}'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
