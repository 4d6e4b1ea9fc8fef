//! Judging one gate entry: replay its token, then hold what came back against its verdict.

use super::{Entry, Expect, GateError, Outcome};
use crate::check::FindingKind;
use crate::explore::verdict::{self, names, Attempt, Tally};
use crate::explore::{Checked, Runner};
use crate::scenario::Trial;
use crate::schedule::Diverged;
use std::collections::BTreeSet;

/// What the attempts of one entry found.
struct Runs {
    /// Each attempt's kinds, in order.
    kinds: Vec<BTreeSet<FindingKind>>,
    /// Set when the token's steps stopped fitting the program.
    diverged: Option<Diverged>,
}

fn kinds_of(c: &Checked) -> BTreeSet<FindingKind> {
    c.violations.iter().map(|v| v.kind).collect()
}

/// What an entry expects to find: nothing (`clean`), or the kinds that must recur.
#[derive(Debug, Clone)]
struct Wanted {
    expect: Expect,
    /// The kinds that must recur (empty: any finding counts).
    kinds: BTreeSet<FindingKind>,
}

impl Wanted {
    /// The entry's verdict: a kind names itself; `violation` asks for the kinds the token
    /// records (any finding, for a token that records none).
    fn of(entry: &Entry, trial: &Trial) -> Wanted {
        let mut kinds = entry.expect.kinds();
        if entry.expect == Expect::Violation {
            kinds.extend(trial.found.iter().copied());
        }
        Wanted {
            expect: entry.expect,
            kinds,
        }
    }

    /// True when one run that found `kinds` meets the verdict.
    fn met_by(&self, kinds: &BTreeSet<FindingKind>) -> bool {
        match self.expect {
            Expect::Clean => kinds.is_empty(),
            _ => verdict::judge(&self.kinds, kinds) == Attempt::Reproduced,
        }
    }
}

/// Replays one entry `attempts` times (at least once) and judges it (see the module
/// documentation for how controlled and free-running tokens differ).
pub(super) fn judge(
    runner: &mut Runner<'_>,
    entry: &Entry,
    attempts: u32,
) -> Result<Outcome, GateError> {
    let trial = Trial::from_token(&entry.token).map_err(|source| GateError::BadToken {
        file: entry.file.clone(),
        line: entry.line,
        source,
    })?;
    let exact = trial.schedule.is_controlled();
    let wanted = Wanted::of(entry, &trial);
    let runs = attempt(runner, entry, &wanted, &trial, attempts.max(1))?;
    let ran = runs.kinds.len() as u32;
    let reproduced = runs.kinds.iter().filter(|k| wanted.met_by(k)).count() as u32;
    let found: BTreeSet<FindingKind> = runs.kinds.iter().flatten().copied().collect();
    let (kept, message) = decide(&wanted, exact, &runs, &found);
    Ok(Outcome {
        entry: entry.clone(),
        kept,
        found: found.into_iter().collect(),
        attempts: ran,
        reproduced,
        message,
    })
}

/// Runs the entry's trial until its attempts are spent, its steps stop fitting, or (free
/// running, expecting a finding) the finding came back.
fn attempt(
    runner: &mut Runner<'_>,
    entry: &Entry,
    wanted: &Wanted,
    trial: &Trial,
    attempts: u32,
) -> Result<Runs, GateError> {
    let exact = trial.schedule.is_controlled();
    let mut runs = Runs {
        kinds: Vec::new(),
        diverged: None,
    };
    for _ in 0..attempts {
        // Each attempt once: the gate counts recurrences itself.
        let checked = runner
            .run_once(trial, None)
            .map_err(|source| GateError::Harness {
                file: entry.file.clone(),
                line: entry.line,
                source,
            })?;
        let kinds = kinds_of(&checked);
        if let Some(d) = checked.diverged() {
            runs.diverged = Some(d.clone());
            runs.kinds.push(kinds);
            break;
        }
        let hit = wanted.met_by(&kinds);
        runs.kinds.push(kinds);
        if !exact && hit && entry.expect != Expect::Clean {
            break;
        }
    }
    Ok(runs)
}

/// Whether the entry kept its verdict, and the message saying what came back.
fn decide(
    wanted: &Wanted,
    exact: bool,
    runs: &Runs,
    found: &BTreeSet<FindingKind>,
) -> (bool, String) {
    let expect = wanted.expect;
    let ran = runs.kinds.len() as u32;
    let how = if exact { "exact" } else { "free-running" };
    if let Some(d) = &runs.diverged {
        return (false, format!("the token no longer fits the program: {d}"));
    }
    if exact && runs.kinds.windows(2).any(|w| w[0] != w[1]) {
        let seen: Vec<String> = runs.kinds.iter().map(names).collect();
        let why = format!(
            "the attempts of a controlled token disagree: {}",
            seen.join(" / ")
        );
        return (false, why);
    }
    if expect == Expect::Clean {
        let dirty = runs.kinds.iter().filter(|k| !k.is_empty()).count();
        return if dirty == 0 {
            (true, format!("clean in {ran} of {ran} runs, {how}"))
        } else {
            let why = format!(
                "expected clean, got {} in {dirty} of {ran} runs",
                names(found)
            );
            (false, why)
        };
    }
    let mut tally = Tally::new(wanted.kinds.iter().copied());
    for kinds in &runs.kinds {
        tally.add(kinds);
    }
    // Exact: every run agrees, so one reproduces when all do. Free running: one is enough.
    if tally.reproduced > 0 {
        let mut msg = format!(
            "{} in {} of {ran} runs, {how}",
            names(found),
            tally.reproduced
        );
        if tally.different > 0 {
            msg.push_str(&format!(
                "; a different finding in {}: {}",
                tally.different,
                names(&tally.other_kinds)
            ));
        }
        (true, msg)
    } else if tally.different > 0 {
        let why = format!(
            "expected {expect}, got a different finding: {} in {} of {ran} runs",
            names(&tally.other_kinds),
            tally.different
        );
        (false, why)
    } else {
        (
            false,
            format!("expected {expect}, got clean in all {ran} runs"),
        )
    }
}
