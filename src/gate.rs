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

use crate::check::FindingKind;
use crate::explore::{Checked, Runner};
use crate::harness::{HarnessConfig, HarnessError};
use crate::scenario::{TokenError, Trial};
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Attempts per entry the command line uses unless told otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// Every finding kind, in the order the checker ranks them.
const KINDS: [FindingKind; 10] = [
    FindingKind::Oversold,
    FindingKind::DoubleSale,
    FindingKind::LostUpdate,
    FindingKind::Overlap,
    FindingKind::CorruptStore,
    FindingKind::Hang,
    FindingKind::Deadlock,
    FindingKind::StaleLock,
    FindingKind::Crash,
    FindingKind::LeakedProcess,
];

/// Fails to compile when a finding kind is added without being listed in [`KINDS`].
const _: fn(FindingKind) = |k| match k {
    FindingKind::Oversold
    | FindingKind::DoubleSale
    | FindingKind::LostUpdate
    | FindingKind::Overlap
    | FindingKind::CorruptStore
    | FindingKind::Hang
    | FindingKind::Deadlock
    | FindingKind::StaleLock
    | FindingKind::Crash
    | FindingKind::LeakedProcess => {}
};

/// The verdict an entry must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No finding at all.
    Clean,
    /// At least one finding, of any kind.
    Violation,
    /// At least a finding of this kind (others may come with it).
    Kind(FindingKind),
}

impl Expect {
    /// Parses `clean`, `violation` or a finding kind's stable name.
    pub fn parse(text: &str) -> Option<Expect> {
        match text {
            "clean" => Some(Expect::Clean),
            "violation" => Some(Expect::Violation),
            _ => KINDS
                .iter()
                .find(|k| k.name() == text)
                .map(|&k| Expect::Kind(k)),
        }
    }

    /// The name as written in a gate file.
    pub fn name(&self) -> &'static str {
        match self {
            Expect::Clean => "clean",
            Expect::Violation => "violation",
            Expect::Kind(k) => k.name(),
        }
    }

    /// What a gate file accepts as a verdict, for error messages.
    pub fn accepted() -> String {
        let kinds: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        format!("clean, violation, or a finding kind ({})", kinds.join(", "))
    }

    /// True when one run that found `kinds` meets this verdict.
    pub fn met_by(&self, kinds: &BTreeSet<FindingKind>) -> bool {
        match self {
            Expect::Clean => kinds.is_empty(),
            Expect::Violation => !kinds.is_empty(),
            Expect::Kind(k) => kinds.contains(k),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of a gate file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file it was read from.
    pub file: PathBuf,
    /// Its line number (from 1).
    pub line: usize,
    /// The verdict it must keep.
    pub expect: Expect,
    /// The trial's token.
    pub token: String,
    /// The text after `#`, trimmed (empty when there is none).
    pub note: String,
}

impl Entry {
    /// `file:line`, for messages.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Why the gate could not judge its entries (a changed verdict is not an error: it is an
/// [`Outcome`] with `kept == false`).
#[derive(Debug)]
pub enum GateError {
    /// The directory or one of its files could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A line is not `VERDICT TOKEN  # note`.
    Parse {
        /// The file.
        file: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// The line's text.
        text: String,
        /// What is wrong and what is accepted.
        why: String,
    },
    /// A line's token does not decode.
    BadToken {
        /// The file.
        file: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// The decoding error.
        source: TokenError,
    },
    /// An entry's trial could not be run.
    Harness {
        /// The file.
        file: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// The harness's error.
        source: HarnessError,
    },
    /// The directory holds no entries.
    Empty {
        /// The directory (or file) given.
        dir: PathBuf,
    },
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::Io { path, source } => write!(f, "reading {}: {source}", path.display()),
            GateError::Parse {
                file,
                line,
                text,
                why,
            } => write!(f, "{}:{line}: '{text}': {why}", file.display()),
            GateError::BadToken { file, line, source } => {
                write!(f, "{}:{line}: {source}", file.display())
            }
            GateError::Harness { file, line, source } => {
                write!(f, "{}:{line}: running the trial: {source}", file.display())
            }
            GateError::Empty { dir } => write!(
                f,
                "{}: no gate entries; accepted: files *.gate or *.txt with lines 'VERDICT TOKEN  # note'",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for GateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GateError::Io { source, .. } => Some(source),
            GateError::BadToken { source, .. } => Some(source),
            GateError::Harness { source, .. } => Some(source),
            GateError::Parse { .. } | GateError::Empty { .. } => None,
        }
    }
}

/// True for the files a gate directory's entries live in.
fn is_gate_file(path: &Path) -> bool {
    let visible = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str());
    visible && matches!(ext, Some("gate" | "txt"))
}

/// Reads every `*.gate` and `*.txt` file in `dir` (in name order; other files such as a
/// README are skipped, and so are subdirectories) and parses its entries. `dir` may also
/// be one gate file. A bad line is an error naming its file and line.
pub fn load(dir: &Path) -> Result<Vec<Entry>, GateError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GateError::Io { path, source }
    };
    let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
    let files = if meta.is_file() {
        vec![dir.to_path_buf()]
    } else {
        let mut files = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let path = item.map_err(io_err(dir))?.path();
            if path.is_file() && is_gate_file(&path) {
                files.push(path);
            }
        }
        files.sort();
        files
    };
    let mut entries = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(io_err(&file))?;
        entries.extend(parse(&file, &text)?);
    }
    if entries.is_empty() {
        return Err(GateError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    Ok(entries)
}

/// Parses one gate file's text; `file` names it in entries and errors.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Entry>, GateError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let (body, note) = match raw.split_once('#') {
            Some((b, n)) => (b, n.trim()),
            None => (raw, ""),
        };
        let fields: Vec<&str> = body.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let bad = |why: String| GateError::Parse {
            file: file.to_path_buf(),
            line,
            text: raw.trim().to_string(),
            why,
        };
        const SHAPE: &str = "accepted: 'VERDICT TOKEN  # optional note'";
        let [verdict, token] = fields[..] else {
            return Err(bad(format!(
                "an entry is two fields, a verdict and a token, not {}; {SHAPE}",
                fields.len()
            )));
        };
        let expect = match Expect::parse(verdict) {
            Some(e) => e,
            None if verdict.starts_with("ov1.") => {
                return Err(bad(format!("the verdict comes first; {SHAPE}")))
            }
            None => {
                return Err(bad(format!(
                    "unknown verdict '{verdict}'; accepted: {}",
                    Expect::accepted()
                )))
            }
        };
        let trial = Trial::from_token(token).map_err(|source| GateError::BadToken {
            file: file.to_path_buf(),
            line,
            source,
        })?;
        if trial.schedule.is_controlled() && trial.choices.is_none() {
            return Err(bad(format!(
                "the token has a controlled schedule ({}) but no steps (.p…); accepted: a token \
                 with its steps, as a finding prints it",
                trial.schedule.name()
            )));
        }
        out.push(Entry {
            file: file.to_path_buf(),
            line,
            expect,
            token: token.to_string(),
            note: note.to_string(),
        });
    }
    Ok(out)
}

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

fn kinds_of(c: &Checked) -> BTreeSet<FindingKind> {
    c.violations.iter().map(|v| v.kind).collect()
}

fn names(kinds: &BTreeSet<FindingKind>) -> String {
    if kinds.is_empty() {
        "clean".to_string()
    } else {
        let v: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        v.join(", ")
    }
}

/// Replays one entry `attempts` times (at least once) and judges it (see the module
/// documentation for how controlled and free-running tokens differ).
pub fn check(entry: &Entry, harness: &HarnessConfig, attempts: u32) -> Result<Outcome, GateError> {
    check_with(&mut Runner::new(harness), entry, attempts)
}

fn check_with(runner: &mut Runner<'_>, entry: &Entry, attempts: u32) -> Result<Outcome, GateError> {
    let trial = Trial::from_token(&entry.token).map_err(|source| GateError::BadToken {
        file: entry.file.clone(),
        line: entry.line,
        source,
    })?;
    let exact = trial.schedule.is_controlled();
    let attempts = attempts.max(1);
    let mut runs: Vec<BTreeSet<FindingKind>> = Vec::new();
    let mut diverged = None;
    for _ in 0..attempts {
        let checked = runner
            .run(&trial, None)
            .map_err(|source| GateError::Harness {
                file: entry.file.clone(),
                line: entry.line,
                source,
            })?;
        if let Some(d) = checked
            .run
            .schedule
            .as_ref()
            .and_then(|r| r.diverged.clone())
        {
            diverged = Some(d);
            runs.push(kinds_of(&checked));
            break;
        }
        let kinds = kinds_of(&checked);
        let hit = entry.expect.met_by(&kinds);
        runs.push(kinds);
        if !exact && hit && entry.expect != Expect::Clean {
            break;
        }
    }
    let ran = runs.len() as u32;
    let reproduced = runs.iter().filter(|k| entry.expect.met_by(k)).count() as u32;
    let found: BTreeSet<FindingKind> = runs.iter().flatten().copied().collect();
    let expected = entry.expect.name();
    let (kept, message) = if let Some(d) = diverged {
        (false, format!("the token no longer fits the program: {d}"))
    } else if exact && runs.windows(2).any(|w| w[0] != w[1]) {
        let seen: Vec<String> = runs.iter().map(names).collect();
        (
            false,
            format!(
                "the attempts of a controlled token disagree: {}",
                seen.join(" / ")
            ),
        )
    } else if exact || entry.expect == Expect::Clean {
        // Exact: every run agrees. Free-running `clean`: every run must be clean.
        if reproduced == ran {
            let how = if exact { "exact" } else { "free-running" };
            (
                true,
                format!("{} in {ran} of {ran} runs, {how}", names(&found)),
            )
        } else {
            (
                false,
                format!(
                    "expected {expected}, got {} in {} of {ran} runs",
                    names(&found),
                    ran - reproduced
                ),
            )
        }
    } else if reproduced > 0 {
        (
            true,
            format!(
                "{} in {reproduced} of {ran} runs, free-running",
                names(&found)
            ),
        )
    } else {
        (
            false,
            format!(
                "expected {expected}, got {} in all {ran} runs",
                names(&found)
            ),
        )
    };
    Ok(Outcome {
        entry: entry.clone(),
        kept,
        found: found.into_iter().collect(),
        attempts: ran,
        reproduced,
        message,
    })
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

    /// One line per entry (see [`line()`]).
    pub fn lines(&self) -> Vec<String> {
        self.outcomes.iter().map(line).collect()
    }

    /// `gate: N entries, K kept, C changed`.
    pub fn summary(&self) -> String {
        let changed = self.changed().len();
        format!(
            "gate: {} entries, {} kept, {changed} changed",
            self.outcomes.len(),
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

/// Loads `dir` and judges every entry, `attempts` runs each; `each` sees every outcome as
/// it is decided (the command line prints from there).
pub fn run(
    dir: &Path,
    harness: &HarnessConfig,
    attempts: u32,
    each: &mut dyn FnMut(&Outcome),
) -> Result<GateReport, GateError> {
    let entries = load(dir)?;
    let mut runner = Runner::new(harness);
    let mut outcomes = Vec::with_capacity(entries.len());
    for entry in &entries {
        if let Some(sig) = crate::harness::interrupt::pending() {
            return Err(GateError::Harness {
                file: entry.file.clone(),
                line: entry.line,
                source: HarnessError::Interrupted(sig),
            });
        }
        let outcome = check_with(&mut runner, entry, attempts)?;
        each(&outcome);
        outcomes.push(outcome);
    }
    Ok(GateReport { outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<Entry>, GateError> {
        parse(Path::new("t.gate"), text)
    }

    #[test]
    fn verdicts_parse_and_name_themselves() {
        for k in KINDS {
            assert_eq!(Expect::parse(k.name()), Some(Expect::Kind(k)));
            assert_eq!(Expect::Kind(k).name(), k.name());
        }
        assert_eq!(Expect::parse("clean"), Some(Expect::Clean));
        assert_eq!(Expect::parse("violation"), Some(Expect::Violation));
        assert_eq!(Expect::parse("Oversold"), None);
        assert!(Expect::accepted().contains("leaked_process"));
    }

    #[test]
    fn verdicts_judge_one_run() {
        let none = BTreeSet::new();
        let some: BTreeSet<_> = [FindingKind::Overlap].into();
        assert!(Expect::Clean.met_by(&none) && !Expect::Clean.met_by(&some));
        assert!(Expect::Violation.met_by(&some) && !Expect::Violation.met_by(&none));
        assert!(Expect::Kind(FindingKind::Overlap).met_by(&some));
        assert!(!Expect::Kind(FindingKind::Oversold).met_by(&some));
    }

    #[test]
    fn lines_parse_with_comments_and_notes() {
        let text = "# header\n\n  oversold ov1.none.b2.t1.j0.r1.sbarrier  # the lesson\nclean ov1.flock.b2.t1.j0.r1.spct2.p0x7-1x5\n";
        let e = parsed(text).expect("parses");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 3);
        assert_eq!(e[0].expect, Expect::Kind(FindingKind::Oversold));
        assert_eq!(e[0].note, "the lesson");
        assert_eq!(e[1].expect, Expect::Clean);
        assert_eq!(e[1].note, "");
    }

    #[test]
    fn bad_lines_name_file_line_and_what_is_accepted() {
        let cases = [
            ("oversold", "two fields"),
            ("oversold ov1.none.b2.t1.j0.r1.sbarrier extra", "two fields"),
            (
                "ov1.none.b2.t1.j0.r1.sbarrier oversold",
                "verdict comes first",
            ),
            (
                "sold ov1.none.b2.t1.j0.r1.sbarrier",
                "accepted: clean, violation",
            ),
            ("clean ov1.flock.b2.t1.j0.r1.spct2", "no steps"),
        ];
        for (text, want) in cases {
            let err = parsed(&format!("\n{text}\n")).expect_err(text);
            let msg = err.to_string();
            assert!(msg.starts_with("t.gate:2: "), "{msg}");
            assert!(msg.contains(want), "{text}: {msg}");
        }
        let err = parsed("clean ov1.nolock.b2.t1").expect_err("bad token");
        assert!(matches!(err, GateError::BadToken { line: 1, .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
