//! Gate files: entries `VERDICT TOKEN  # note`, read and parsed.

use crate::check::FindingKind;
use crate::explore::verdict;
use crate::harness::HarnessError;
use crate::scenario::Trial;
use crate::token::TokenError;
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

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
            _ => FindingKind::ALL
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
        let kinds: Vec<&str> = FindingKind::ALL.iter().map(|k| k.name()).collect();
        format!("clean, violation, or a finding kind ({})", kinds.join(", "))
    }

    /// The kinds a run must show to meet a `violation` or kind verdict (empty: any
    /// finding counts); `clean` asks for none.
    pub fn kinds(&self) -> BTreeSet<FindingKind> {
        match self {
            Expect::Clean | Expect::Violation => BTreeSet::new(),
            Expect::Kind(k) => [*k].into(),
        }
    }

    /// True when one run that found `kinds` meets this verdict.
    pub fn met_by(&self, kinds: &BTreeSet<FindingKind>) -> bool {
        match self {
            Expect::Clean => kinds.is_empty(),
            _ => verdict::judge(&self.kinds(), kinds) == verdict::Attempt::Reproduced,
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
/// `gate::Outcome` with `kept == false`).
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
        if let Err(e) = trial.lock().replayable(token) {
            return Err(bad(e.to_string()));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<Entry>, GateError> {
        parse(Path::new("t.gate"), text)
    }

    #[test]
    fn verdicts_parse_and_name_themselves() {
        for &k in FindingKind::ALL {
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
        let text = "# header\n\n  oversold ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8  # the lesson\nclean ov1.flock.b2.t1.j0.r1.spct2.p0x7-1x5.c3a00e8\n";
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
            (
                "oversold ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8 extra",
                "two fields",
            ),
            (
                "ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8 oversold",
                "verdict comes first",
            ),
            (
                "sold ov1.none.b2.t1.j0.r1.sbarrier.c6a6fc8",
                "accepted: clean, violation",
            ),
            ("clean ov1.flock.b2.t1.j0.r1.spct2.c53b4ad", "no steps"),
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
