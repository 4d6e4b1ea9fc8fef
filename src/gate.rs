//! The regression gate: tokens that must keep their verdict.
//!
//! A gate directory (`fixtures/regressions/`) holds plain-text files, `*.gate` or
//! `*.txt`, read in name order. Each line is one entry:
//!
//! ```text
//! VERDICT TOKEN  # optional note
//! ```
//!
//! Blank lines and lines starting with `#` are skipped. `VERDICT` is `clean` (no finding),
//! `violation` (any finding) or a finding kind's stable name (`oversold`, `double_sale`,
//! ...) meaning "at least this kind is found". [`run`] replays every entry and reports
//! each one kept or CHANGED; the command line turns a change into exit status 1.
//!
//! How an entry is judged depends on its token's schedule:
//!
//! An attempt meets a `violation` or kind verdict when the expected kinds recur (see
//! [`crate::explore::verdict`]: `violation` asks for any finding); an attempt that finds
//! other kinds instead is *a different finding*, and never counts as reproduced.
//!
//! - A controlled token (`random`, `pct`, `exhaustive`) carries its steps (`.p…`) and is
//!   exact: each of the attempts must find the same kinds, and they must meet the verdict.
//!   When the steps no longer fit the program (a buyer the token runs cannot run), the
//!   entry is CHANGED: the token no longer fits the program.
//! - A free-running token (`jitter`, `barrier`) depends on the operating system's
//!   scheduling. `violation` or a kind is kept when ANY of the attempts shows it; `clean`
//!   is kept only when ALL attempts are clean. (`barrier` with the lock `none` is
//!   deterministic in practice: every buyer reads before any writes.)
//!
//! This module does not print; it returns values the command line prints.

mod entry;
mod judge;

pub use entry::{load, Entry, Expect, GateError};

use crate::check::FindingKind;
use crate::explore::{jobs, Runner};
use crate::harness::{HarnessConfig, HarnessError};
use std::path::Path;

/// Attempts per entry the command line uses unless told otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// One entry, replayed and judged.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The entry.
    pub entry: Entry,
    /// True when the entry kept its verdict.
    pub kept: bool,
    /// Every kind any attempt found, in the checker's order.
    pub found: Vec<FindingKind>,
    /// How many times the trial ran (a free-running `violation` stops at its first hit).
    pub attempts: u32,
    /// How many of those runs met the expected verdict.
    pub reproduced: u32,
    /// What was found, or, for a changed entry, what changed.
    pub message: String,
}

/// Every entry's outcome, in file and line order.
#[derive(Debug, Clone)]
pub struct GateReport {
    /// One outcome per entry.
    pub outcomes: Vec<Outcome>,
}

impl GateReport {
    /// The entries that did not keep their verdict.
    pub fn changed(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| !o.kept).collect()
    }

    /// True when every entry kept its verdict.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.kept)
    }

    /// One line per entry (see `line`).
    pub fn lines(&self) -> Vec<String> {
        self.outcomes.iter().map(line).collect()
    }

    /// `gate: N entries, K kept, C changed`.
    pub fn summary(&self) -> String {
        let changed = self.changed().len();
        format!(
            "gate: {}, {} kept, {changed} changed",
            crate::report::count(self.outcomes.len() as u64, "entry"),
            self.outcomes.len() - changed
        )
    }
}

/// One entry's line: `ok      VERDICT  TOKEN  file:line  found: KINDS in N of M runs` or
/// `CHANGED VERDICT  TOKEN  file:line: expected X, got Y  # note`.
pub fn line(o: &Outcome) -> String {
    let e = &o.entry;
    if o.kept {
        format!(
            "ok      {:<13} {}  {}  found: {}",
            e.expect.name(),
            e.token,
            e.place(),
            o.message
        )
    } else {
        let note = if e.note.is_empty() {
            String::new()
        } else {
            format!("  # {}", e.note)
        };
        format!(
            "CHANGED {:<13} {}  {}: {}{note}",
            e.expect.name(),
            e.token,
            e.place(),
            o.message
        )
    }
}

/// Loads `dir` and judges every entry, `attempts` runs each, entries side by side on
/// `jobs` jobs; `each` sees every outcome in file and line order (the command line prints
/// from there).
pub fn run(
    dir: &Path,
    harness: &HarnessConfig,
    attempts: u32,
    jobs: usize,
    each: &mut dyn FnMut(&Outcome),
) -> Result<GateReport, GateError> {
    let entries = load(dir)?;
    let work = |runner: &mut Runner<'_>, i: u64| {
        let entry = &entries[i as usize];
        if let Some(sig) = crate::harness::interrupt::pending() {
            return Err(GateError::Harness {
                file: entry.file.clone(),
                line: entry.line,
                source: HarnessError::Interrupted(sig),
            });
        }
        judge::judge(runner, entry, attempts)
    };
    let last = |r: &Result<Outcome, GateError>| r.is_err();
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut failure = None;
    let mut take = |_: u64, r: Result<Outcome, GateError>| match r {
        Ok(o) => {
            each(&o);
            outcomes.push(o);
            jobs::Flow::Go
        }
        Err(e) => {
            failure = Some(e);
            jobs::Flow::Stop
        }
    };
    jobs::ordered(jobs, harness, entries.len() as u64, &work, &last, &mut take);
    match failure {
        Some(e) => Err(e),
        None => Ok(GateReport { outcomes }),
    }
}
