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
//! [`assert_sound`] becomes the buyer, drives your lock and exits.
//!
//! [`trials`] yields controlled trials (one buyer runs at a time, so a failure names a
//! token that replays the same interleaving) and free-running ones (`jitter`, `barrier`:
//! buyers block in your `lock()` and contend for real). [`trials_with_kills`] adds kill
//! faults, which a lock left taken by a dead holder fails (`stale_lock`).
//!
//! A failure prints a token such as `ov1.user.b2.t1.j0.r0.srandom.p0x3-1x7-0x4.caa56f9`; its lock
//! is `user`, since only your test binary has your lock. Replay it there:
//! [`replay_sound`]`(TOKEN, MyLock)`, or `OVERSELL_REPLAY=TOKEN cargo test NAME`, which
//! makes [`check_sound`] (and [`trials`]) run that trial instead. A replay prints the
//! trial's trace and verdict to stderr: the one place this library prints, and only in
//! a test. `oversell replay` refuses `user` tokens with that same advice.
//!
//! A lock whose `lock()` never returns is a `hang` once a trial makes no progress for 10
//! s (twice: a stalled trial gets a second look). `OVERSELL_TIMEOUT_MS=N` sets that
//! window, within the CLI's `--timeout-ms` limits; a value out of them or not a number is
//! a setup error, not a silent default.

mod buyer;

use crate::explore::{Checked, Runner};
use crate::harness::{HarnessConfig, HarnessError, Launcher};
use crate::lock::{Lock, LockKind};
use crate::protocol::BUYER_ENV;
use crate::scenario::{Faults, Schedule, Trial};
use crate::store::StoreMode;
use crate::token::TokenError;
use crate::Violation;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::fmt;
use std::sync::Mutex;

/// The environment variable that makes [`check_sound`] replay one token.
pub(crate) const REPLAY_ENV: &str = "OVERSELL_REPLAY";

/// The environment variable that sets how long a trial of [`check_sound`] may go
/// without progress before it is a `hang` (milliseconds, as `--timeout-ms`).
const TIMEOUT_ENV: &str = "OVERSELL_TIMEOUT_MS";

/// The timeout `OVERSELL_TIMEOUT_MS` asks for, if set: bounded as the CLI's.
fn timeout_asked() -> Result<Option<std::time::Duration>, Unsound> {
    let Ok(text) = std::env::var(TIMEOUT_ENV) else {
        return Ok(None);
    };
    let bad = || {
        Unsound::Harness(HarnessError::Refused(format!(
            "{TIMEOUT_ENV}={text}: not a whole number of milliseconds from {} to {}",
            crate::limits::MIN_TIMEOUT_MS,
            crate::limits::MAX_TIMEOUT_MS
        )))
    };
    let ms: u64 = text.trim().parse().map_err(|_| bad())?;
    if !(crate::limits::MIN_TIMEOUT_MS..=crate::limits::MAX_TIMEOUT_MS).contains(&ms) {
        return Err(bad());
    }
    Ok(Some(std::time::Duration::from_millis(ms)))
}

/// Trials for [`assert_sound`]: 2 to 4 buyers, 0 to 3 tickets, any seed; a random or PCT
/// controlled schedule, or a free-running one (`barrier`, or `jitter` with up to 2 ms of
/// hold) in which buyers call `lock()` and block in it.
///
/// With `OVERSELL_REPLAY=TOKEN` set, it yields only that token's trial.
pub fn trials() -> BoxedStrategy<Trial> {
    trials_with_faults(Faults::default())
}

/// [`trials`] in which each buyer is SIGKILLed, with probability `kill` (rounded to
/// thousandths, clamped to 0..=1), at a seeded point of its run: the holder of the lock
/// included. A lock that stays taken after its holder dies fails with `stale_lock`.
/// Trials with kills write the store atomically (`--store atomic`): a lock does not make
/// an in-place write crash-safe, and that is not the lock's finding.
pub fn trials_with_kills(kill: f64) -> BoxedStrategy<Trial> {
    let kill = if kill.is_nan() {
        0.0
    } else {
        kill.clamp(0.0, 1.0)
    };
    trials_with_faults(Faults {
        kill: (kill * 1000.0).round() / 1000.0,
        ..Faults::default()
    })
}

/// [`trials`] with these faults injected into every trial.
pub fn trials_with_faults(faults: Faults) -> BoxedStrategy<Trial> {
    if let Some(Ok(t)) = replay_token().map(|t| Trial::from_token(&t)) {
        return Just(t).boxed();
    }
    (
        2u32..=4,
        0u32..=3,
        any::<u64>(),
        prop_oneof![
            Just(Schedule::Random),
            Just(Schedule::Pct { depth: 2 }),
            Just(Schedule::Pct { depth: 3 }),
            Just(Schedule::Barrier),
            Just(Schedule::Jitter),
        ],
        0u64..=2_000,
    )
        .prop_map(move |(buyers, tickets, seed, schedule, jitter)| {
            let mut t = Trial::new(LockKind::User, buyers, tickets);
            t.seed = seed;
            if schedule == Schedule::Jitter {
                t.jitter_us = jitter;
            }
            t.schedule = schedule;
            t.faults = faults;
            if faults.kill > 0.0 {
                // A lock does not make an in-place write crash-safe: a buyer killed
                // between truncate and write would be a finding against the store.
                t.store = StoreMode::Atomic;
            }
            t
        })
        .boxed()
}

fn replay_token() -> Option<String> {
    std::env::var(REPLAY_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Why a lock was found unsound (or could not be tested).
///
/// The error of [`check_sound`](crate::check_sound); [`assert_sound`](crate::assert_sound) has an example.
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
    /// The token to replay does not decode.
    Token(TokenError),
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
                write!(
                    f,
                    "replay it: oversell::replay_sound(\"{token}\", MyLock) \
                     or {REPLAY_ENV}={token} cargo test NAME"
                )
            }
            Unsound::Harness(e) => write!(f, "the trial could not run: {e}"),
            Unsound::Token(e) => write!(f, "{e}"),
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
            Unsound::Token(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs `trial` with buyers that use `lock`, and reports whether any invariant broke.
///
/// Inside a buyer process (the test binary re-run by the harness) this does not return:
/// it runs the buyer and exits, so the rest of the test never runs there. With
/// `OVERSELL_REPLAY=TOKEN` set it runs that token's trial instead, printing its trace,
/// once per process (later calls give the same verdict).
///
/// The [crate docs](crate) show it in a proptest, through [`assert_sound`](crate::assert_sound).
pub fn check_sound<L: Lock>(trial: &Trial, lock: L) -> Result<(), Unsound> {
    let Some(token) = replay_token() else {
        let checked = run_in_test(trial, lock)?;
        return verdict(&checked.violations, || checked.trial.token());
    };
    static REPLAYED: Mutex<Option<Replayed>> = Mutex::new(None);
    let mut cached = REPLAYED.lock().unwrap_or_else(|e| e.into_inner());
    let replayed = match cached.as_ref() {
        Some(r) => r,
        None => cached.insert(replay_sound(&token, lock)?),
    };
    verdict(&replayed.violations, || replayed.token.clone())
}

/// [`check_sound`] as a proptest assertion.
pub fn assert_sound<L: Lock>(trial: &Trial, lock: L) -> Result<(), TestCaseError> {
    check_sound(trial, lock).map_err(|e| TestCaseError::fail(e.to_string()))
}

/// What a replay of a token found.
///
/// What [`replay_sound`](crate::replay_sound) gives back; its docs have an example.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The token of the trial as run (under a controlled schedule, with its steps).
    pub token: String,
    /// What broke; empty when the lock held.
    pub violations: Vec<Violation>,
    /// Every event as `buyer N kind [value]`, in order: under a controlled schedule two
    /// replays of one token give the same trace.
    pub trace: Vec<String>,
    /// Set when this lock's run left the token's interleaving (a buyer the token runs
    /// next is waiting on the lock, say): the trial was not run to its end, so nothing
    /// was checked. A fixed lock replaying its old failure usually ends here.
    pub diverged: Option<String>,
}

/// Re-runs the trial of `token` (as a failure of [`check_sound`] printed it) against
/// `lock`, inside this test binary, and prints its trace and verdict to stderr. Under a
/// controlled schedule the token carries its steps, so the replay follows exactly that
/// interleaving. `Err` only when the trial could not run; a broken lock is `Ok` with
/// [`Replayed::violations`].
///
/// ```no_run
/// # use oversell::{Lock, LockError};
/// # struct MyLock;
/// # impl Lock for MyLock {
/// #     fn lock(&mut self) -> Result<(), LockError> { Ok(()) }
/// #     fn try_lock(&mut self) -> Result<bool, LockError> { Ok(true) }
/// #     fn unlock(&mut self) -> Result<(), LockError> { Ok(()) }
/// # }
/// #[test]
/// fn replay_the_failure() {
///     let r = oversell::replay_sound("ov1.user.b2.t1.j0.r0.srandom.p0x3-1x7-0x4.caa56f9", MyLock)
///         .expect("the trial runs");
///     assert!(r.violations.is_empty(), "still broken");
/// }
/// ```
pub fn replay_sound<L: Lock>(token: &str, lock: L) -> Result<Replayed, Unsound> {
    let trial = Trial::from_token(token.trim()).map_err(Unsound::Token)?;
    let checked = run_in_test(&trial, lock)?;
    let replayed = Replayed {
        token: checked.trial.token(),
        trace: checked.run.history.trace(),
        diverged: checked
            .run
            .schedule
            .as_ref()
            .and_then(|s| s.diverged.as_ref())
            .map(|d| d.to_string()),
        violations: checked.violations,
    };
    eprintln!("oversell: replaying {}", replayed.token);
    for line in &replayed.trace {
        eprintln!("  {line}");
    }
    match &replayed.diverged {
        Some(d) => eprintln!("oversell: the run left the token's interleaving: {d}"),
        None if replayed.violations.is_empty() => eprintln!("oversell: the lock held"),
        None => {}
    }
    for v in &replayed.violations {
        eprintln!("oversell: {v}");
    }
    Ok(replayed)
}

/// Runs `trial` with this test binary as its buyers; in a buyer process, is the buyer
/// and exits.
fn run_in_test<L: Lock>(trial: &Trial, mut lock: L) -> Result<Checked, Unsound> {
    if let Ok(spec) = std::env::var(BUYER_ENV) {
        std::process::exit(buyer::be_the_buyer(&spec, &mut lock));
    }
    let exe = std::env::current_exe().map_err(|_| Unsound::NotInATest)?;
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .ok_or(Unsound::NotInATest)?;
    let mut cfg = HarnessConfig::new(exe);
    cfg.launcher = Launcher::TestBinary { test };
    if let Some(t) = timeout_asked()? {
        cfg.timeout = t;
    }
    let mut trial = trial.clone();
    // The harness prepares nothing for a user's lock, and its tokens say whose it is.
    trial.target = crate::scenario::Target::Lock {
        lock: LockKind::User,
        syscall: trial.target.syscall_asked(),
    };
    let mut runner = Runner::new(&cfg);
    // A token's steps are replayed once (`replay_sound` judges what came back); a trial
    // on its own strategy gets the second look at a stall.
    if trial.choices.is_some() {
        runner.run_once(&trial, None)
    } else {
        runner.run(&trial, None)
    }
    .map_err(Unsound::Harness)
}

/// `Ok` when nothing broke; otherwise the violations and the trial's token.
fn verdict(violations: &[Violation], token: impl FnOnce() -> String) -> Result<(), Unsound> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Unsound::Violations {
            violations: violations.to_vec(),
            token: token(),
        })
    }
}
