//! Test your own lock from your own crate, with proptest.
//!
//! ```no_run
//! use oversell::{Lock, LockError};
//! use proptest::prelude::*;
//! use std::fs::File;
//! use std::path::Path;
//!
//! /// The lock under test: `flock(2)` through the standard library.
//! #[derive(Default)]
//! struct MyLock(Option<File>);
//!
//! impl Lock for MyLock {
//!     fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
//!         let f = File::options().create(true).append(true).open(dir.join("my.lock"))
//!             .map_err(|e| LockError::io("open", e))?;
//!         self.0 = Some(f);
//!         Ok(())
//!     }
//!     fn lock(&mut self) -> Result<(), LockError> {
//!         let f = self.0.as_ref().ok_or_else(|| LockError::Setup("not attached".into()))?;
//!         f.lock().map_err(|e| LockError::io("lock", e))
//!     }
//!     fn try_lock(&mut self) -> Result<bool, LockError> {
//!         let f = self.0.as_ref().ok_or_else(|| LockError::Setup("not attached".into()))?;
//!         match f.try_lock() {
//!             Ok(()) => Ok(true),
//!             Err(std::fs::TryLockError::WouldBlock) => Ok(false),
//!             Err(std::fs::TryLockError::Error(e)) => Err(LockError::io("try_lock", e)),
//!         }
//!     }
//!     fn unlock(&mut self) -> Result<(), LockError> {
//!         let f = self.0.as_ref().ok_or_else(|| LockError::Setup("not attached".into()))?;
//!         f.unlock().map_err(|e| LockError::io("unlock", e))
//!     }
//! }
//!
//! proptest! {
//!     #[test]
//!     fn my_lock_is_sound(t in oversell::trials()) {
//!         oversell::assert_sound(&t, MyLock::default())?;
//!     }
//! }
//! ```
//!
//! Each case runs real buyer processes: the test binary re-runs itself, filtered to this
//! one test, with the buyer's orders in `OVERSELL_BUYER`; inside that process
//! [`assert_sound`] becomes the buyer, drives your lock and exits. Trials use controlled
//! schedules, so a failure names a token that replays the same interleaving.

use crate::explore::Runner;
use crate::harness::{HarnessConfig, HarnessError, Launcher, BUYER_ENV};
use crate::lock::{Lock, LockKind};
use crate::scenario::{Schedule, Trial};
use crate::Violation;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::fmt;

/// Trials for [`assert_sound`]: 2 to 4 buyers, 0 to 3 tickets, a random or PCT
/// controlled schedule, any seed.
pub fn trials() -> impl Strategy<Value = Trial> {
    (
        2u32..=4,
        0u32..=3,
        any::<u64>(),
        prop_oneof![
            Just(Schedule::Random),
            Just(Schedule::Pct { depth: 2 }),
            Just(Schedule::Pct { depth: 3 }),
        ],
    )
        .prop_map(|(buyers, tickets, seed, schedule)| {
            let mut t = Trial::new(LockKind::None, buyers, tickets);
            t.seed = seed;
            t.schedule = schedule;
            t
        })
}

/// Why a lock was found unsound (or could not be tested).
#[derive(Debug)]
pub enum Unsound {
    /// The trial broke an invariant: the violations, and the trial's token.
    Violations {
        /// What broke.
        violations: Vec<Violation>,
        /// The token of the trial, with the steps it took.
        token: String,
    },
    /// The trial could not be run.
    Harness(HarnessError),
    /// This process is not a test binary whose current test can be re-run.
    NotInATest,
}

impl fmt::Display for Unsound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsound::Violations { violations, token } => {
                writeln!(f, "the lock is not sound (trial {token}):")?;
                for v in violations {
                    writeln!(f, "  {v}")?;
                }
                Ok(())
            }
            Unsound::Harness(e) => write!(f, "the trial could not run: {e}"),
            Unsound::NotInATest => write!(
                f,
                "assert_sound must be called from a #[test] function of a test binary"
            ),
        }
    }
}

impl std::error::Error for Unsound {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unsound::Harness(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs `trial` with buyers that use `lock`, and reports whether any invariant broke.
///
/// Inside a buyer process (the test binary re-run by the harness) this does not return:
/// it runs the buyer and exits, so the rest of the test never runs there.
pub fn check_sound<L: Lock>(trial: &Trial, mut lock: L) -> Result<(), Unsound> {
    if let Ok(spec) = std::env::var(BUYER_ENV) {
        std::process::exit(crate::buyer::run_from_spec(&spec, Some(&mut lock)));
    }
    let exe = std::env::current_exe().map_err(|_| Unsound::NotInATest)?;
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .ok_or(Unsound::NotInATest)?;
    let mut cfg = HarnessConfig::new(exe);
    cfg.launcher = Launcher::TestBinary { test };
    let mut trial = trial.clone();
    // The harness prepares nothing for a lock it does not know.
    trial.lock = LockKind::None;
    if !trial.schedule.is_controlled() {
        trial.schedule = Schedule::Random;
    }
    let mut runner = Runner::new(&cfg);
    let checked = runner.run(&trial, None).map_err(Unsound::Harness)?;
    if checked.violations.is_empty() {
        Ok(())
    } else {
        Err(Unsound::Violations {
            token: checked.trial.token(),
            violations: checked.violations,
        })
    }
}

/// [`check_sound`] as a proptest assertion.
pub fn assert_sound<L: Lock>(trial: &Trial, lock: L) -> Result<(), TestCaseError> {
    check_sound(trial, lock).map_err(|e| TestCaseError::fail(e.to_string()))
}
