//! What a trial left, gathered the same way for every kind of run: each buyer's fate
//! and stderr tail, the final store, and whether the trial failed before it began (a
//! setup failure, which is an error and not a finding).

use super::process::{Group, MemberId};
use super::{HarnessError, TrialRun};
use crate::ledger::{Event, EventKind, Exit, Fate, History};
use crate::store::Contents;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The store as a trial left it: `None` when the file is gone.
pub(super) fn final_store(dir: &Path) -> Result<Option<Contents>, HarnessError> {
    match crate::store::read(&crate::store::path(dir)) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HarnessError::Io("reading the final store", e)),
    }
}

/// What each buyer program claims by its exit status (0 bought, `SOLD_OUT` sold out),
/// pushed onto `history` with each one's fate. The harness does not learn when a program
/// bought, so events are stamped in buyer order, not in time order. `cut` says the trial
/// was cut short (timed out or stuck): a program that claimed nothing was killed by it.
pub(super) fn claims_by_exit(
    history: &mut History,
    dir: &Path,
    members: &[MemberId],
    group: &Group,
    cut: bool,
) {
    for (i, &m) in members.iter().enumerate() {
        let exit = group.exit(m);
        let kind = match exit {
            Exit::Code(0) => Some(EventKind::Bought),
            Exit::Code(super::external::SOLD_OUT) => Some(EventKind::SoldOut),
            _ => None,
        };
        if let Some(kind) = kind {
            history.events.push(Event {
                ns: i as u64,
                buyer: i as u32,
                kind,
                value: None,
            });
        }
        history.fates.push(Fate {
            killed_by_fault: false,
            killed_by_timeout: cut && kind.is_none(),
            pid: group.pid(m),
            stderr_tail: stderr_tail(dir, i as u32),
            exit,
        });
    }
}

/// The fate of buyer `index` (process `member`), as every engine tells it: killed by a
/// fault only when one was planned for it, by the timeout when the trial was `cut` (timed
/// out or stuck) and not by a fault.
pub(super) fn fate(
    group: &Group,
    member: MemberId,
    index: u32,
    exit: Exit,
    killed_by_fault: bool,
    cut: bool,
    dir: &Path,
) -> Fate {
    Fate {
        pid: group.pid(member),
        killed_by_fault,
        killed_by_timeout: !killed_by_fault && cut,
        stderr_tail: stderr_tail(dir, index),
        exit,
    }
}

/// The last five lines buyer `index` wrote to stderr.
pub(super) fn stderr_tail(dir: &Path, index: u32) -> String {
    let path = dir.join(format!("buyer-{index}.err"));
    // Most buyers write nothing: a look at the size spares opening and reading the file.
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(5);
    lines[from..].join("\n")
}

/// The parts of a free-running or external trial's result, assembled in one place.
pub(super) struct Parts {
    pub history: History,
    pub kept: Option<PathBuf>,
    pub leaked: bool,
    pub elapsed: Duration,
}

impl Parts {
    /// The trial's result, with the store read from `dir`; a setup failure is an error.
    pub(super) fn finish(self, dir: &Path, external: bool) -> Result<TrialRun, HarnessError> {
        if let Some(line) = setup_failure(&self.history, external) {
            return Err(HarnessError::Setup(line));
        }
        Ok(TrialRun {
            history: self.history,
            final_store: final_store(dir)?,
            kept: self.kept,
            leaked: self.leaked,
            elapsed: self.elapsed,
            schedule: None,
        })
    }
}

/// Exit statuses of `sh -c` that say the command itself is wrong: a usage or syntax
/// error, a program that cannot be run, a program that does not exist.
const SHELL_SETUP_CODES: [i32; 3] = [2, 126, 127];

/// When every buyer of a trial failed before it started, the first buyer's error line.
///
/// A buyer "started" once it wrote its `start` line. A buyer program (`external`) writes
/// no ledger: there every buyer must have ended with the same shell setup status (2, 126
/// or 127) and the same last stderr line. Buyers killed by a fault or the timeout never
/// count as setup failures, nor do trials with a call made to fail on purpose.
pub(super) fn setup_failure(history: &History, external: bool) -> Option<String> {
    let fates = &history.fates;
    // A call made to fail on purpose (an errno fault) is no mistake of the command's.
    if fates.is_empty() || history.timed_out || history.stuck.is_some() {
        return None;
    }
    if !history.injected.is_empty() {
        return None;
    }
    let failed =
        |f: &Fate| !f.killed_by_fault && !f.killed_by_timeout && !matches!(f.exit, Exit::Code(0));
    if !fates.iter().all(failed) {
        return None;
    }
    if external {
        let same = fates.iter().all(|f| {
            matches!(f.exit, Exit::Code(c) if SHELL_SETUP_CODES.contains(&c))
                && last_line(&f.stderr_tail) == last_line(&fates[0].stderr_tail)
        });
        if !same {
            return None;
        }
    } else if history.events.iter().any(|e| e.kind == EventKind::Start) {
        return None;
    }
    let first = &fates[0];
    let why = match last_line(&first.stderr_tail) {
        Some(line) => line.strip_prefix("error: ").unwrap_or(line).to_string(),
        None => match first.exit {
            Exit::Code(c) => format!("exited with status {c} and said nothing"),
            Exit::Signal(s) => format!("was ended by signal {s} and said nothing"),
            Exit::Unknown => "ended and said nothing".to_string(),
        },
    };
    // The buyer's own error line already names it.
    if why.starts_with("buyer 0:") {
        Some(why)
    } else {
        Some(format!("buyer 0: {why}"))
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}
