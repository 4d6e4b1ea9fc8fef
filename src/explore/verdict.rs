//! Did a replayed finding come back? The one judgement `replay` and `gate` share.
//!
//! An attempt *reproduces* when every expected finding kind recurs (others may come with
//! them). With no expected kinds (a token that records none, or a gate entry that asks for
//! any `violation`) any finding counts. An attempt that finds something, but not the
//! expected kinds, is *a different finding* and is not counted as reproduced: a token that
//! found `oversold` and now finds only `crash` has not reproduced.
//!
//! `replay` exits 1 when the finding reproduced in at least one attempt, 0 when every
//! attempt was clean, 3 when the attempts found only different findings (2 stays bad
//! usage or setup). `gate` judges a different finding as a changed verdict.

use crate::check::FindingKind;
use std::collections::BTreeSet;
use std::fmt;

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Every expected kind recurred.
    Reproduced,
    /// Nothing was found.
    Clean,
    /// Something was found, but not the expected kinds: these kinds.
    Different(BTreeSet<FindingKind>),
}

/// Judges one attempt that found `found` against the `expected` kinds (empty: any
/// finding counts).
pub fn judge(expected: &BTreeSet<FindingKind>, found: &BTreeSet<FindingKind>) -> Attempt {
    if found.is_empty() {
        Attempt::Clean
    } else if expected.is_subset(found) {
        Attempt::Reproduced
    } else {
        Attempt::Different(found.clone())
    }
}

/// The verdict over every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one attempt reproduced the finding.
    Reproduced,
    /// Every attempt was clean.
    Clean,
    /// No attempt reproduced it, and at least one found something else.
    Different,
}

/// Attempts counted against the expected kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    expected: BTreeSet<FindingKind>,
    /// Attempts judged.
    pub attempts: u32,
    /// Attempts that reproduced.
    pub reproduced: u32,
    /// Attempts that found something else.
    pub different: u32,
    /// Every kind the different attempts found.
    pub other_kinds: BTreeSet<FindingKind>,
}

impl Tally {
    /// No attempt yet; `expected` empty means any finding counts.
    pub fn new(expected: impl IntoIterator<Item = FindingKind>) -> Tally {
        Tally {
            expected: expected.into_iter().collect(),
            attempts: 0,
            reproduced: 0,
            different: 0,
            other_kinds: BTreeSet::new(),
        }
    }

    /// Judges and counts one attempt.
    pub fn add(&mut self, found: &BTreeSet<FindingKind>) -> Attempt {
        let attempt = judge(&self.expected, found);
        self.attempts += 1;
        match &attempt {
            Attempt::Reproduced => self.reproduced += 1,
            Attempt::Clean => {}
            Attempt::Different(kinds) => {
                self.different += 1;
                self.other_kinds.extend(kinds);
            }
        }
        attempt
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Verdict {
        if self.reproduced > 0 {
            Verdict::Reproduced
        } else if self.different > 0 {
            Verdict::Different
        } else {
            Verdict::Clean
        }
    }
}

/// Kinds as `a, b`, or `clean` when there are none.
pub fn names(kinds: &BTreeSet<FindingKind>) -> String {
    if kinds.is_empty() {
        "clean".to_string()
    } else {
        let v: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        v.join(", ")
    }
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
    }
}

/// `replay`'s closing line: `reproduced in K of N attempts`, `not reproduced: clean in
/// N of N attempts` or `not reproduced: a different finding in K of N attempts: crash
/// (the token found oversold)`, and a note when the token records no kinds.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.attempts;
        let wanted = if self.expected.is_empty() {
            "the token records no finding kinds, so any finding counts".to_string()
        } else {
            format!("the token found {}", names(&self.expected))
        };
        match self.verdict() {
            Verdict::Reproduced => {
                write!(f, "reproduced in {} of {}", self.reproduced, attempts(n))?
            }
            Verdict::Clean => return write!(f, "not reproduced: clean in {n} of {}", attempts(n)),
            Verdict::Different => {
                return write!(
                    f,
                    "not reproduced: a different finding in {} of {}: {} ({wanted})",
                    self.different,
                    attempts(n),
                    names(&self.other_kinds)
                )
            }
        }
        if self.different > 0 {
            write!(
                f,
                "; a different finding in {}: {}",
                self.different,
                names(&self.other_kinds)
            )?;
        }
        if self.expected.is_empty() {
            write!(f, " ({wanted})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FindingKind::{Crash, DoubleSale, Oversold};

    fn set(kinds: &[FindingKind]) -> BTreeSet<FindingKind> {
        kinds.iter().copied().collect()
    }

    #[test]
    fn an_attempt_reproduces_only_when_every_expected_kind_recurs() {
        let want = set(&[Oversold, DoubleSale]);
        assert_eq!(
            judge(&want, &set(&[Oversold, DoubleSale, Crash])),
            Attempt::Reproduced
        );
        assert_eq!(
            judge(&want, &set(&[Oversold])),
            Attempt::Different(set(&[Oversold]))
        );
        assert_eq!(judge(&want, &set(&[])), Attempt::Clean);
        // No recorded kinds: any finding counts.
        assert_eq!(judge(&set(&[]), &set(&[Crash])), Attempt::Reproduced);
    }

    #[test]
    fn a_crash_in_place_of_an_oversold_is_a_different_finding() {
        let mut t = Tally::new([Oversold]);
        for _ in 0..10 {
            t.add(&set(&[Crash]));
        }
        assert_eq!(t.verdict(), Verdict::Different);
        assert_eq!(
            t.to_string(),
            "not reproduced: a different finding in 10 of 10 attempts: crash (the token found oversold)"
        );
    }

    #[test]
    fn the_tally_says_what_came_back() {
        let mut t = Tally::new([Oversold]);
        t.add(&set(&[Oversold]));
        t.add(&set(&[]));
        t.add(&set(&[Crash]));
        assert_eq!(t.verdict(), Verdict::Reproduced);
        assert_eq!(t.verdict(), Verdict::Reproduced);
        assert_eq!(
            t.to_string(),
            "reproduced in 1 of 3 attempts; a different finding in 1: crash"
        );

        let mut clean = Tally::new([]);
        clean.add(&set(&[]));
        assert_eq!(clean.verdict(), Verdict::Clean);
        assert_eq!(clean.to_string(), "not reproduced: clean in 1 of 1 attempt");

        let mut old = Tally::new([]);
        old.add(&set(&[Crash]));
        assert_eq!(
            old.to_string(),
            "reproduced in 1 of 1 attempt (the token records no finding kinds, so any finding counts)"
        );
    }
}
