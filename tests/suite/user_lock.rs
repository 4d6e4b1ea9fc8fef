//! A user's own lock, tested the way the README shows: `oversell::trials()` and
//! `oversell::assert_sound` inside `proptest!`. Each case runs real buyer processes (this
//! test binary, re-run as buyers), which become buyers at the first `check_sound`,
//! `assert_sound` or `replay_sound` their test reaches: one lock per test.
//!
//! Shown here: the blocking `lock()` is exercised (a `lock()` that does nothing, or
//! panics, fails, the panic named); a failing token says `user` and replays exactly, by
//! `replay_sound` or `OVERSELL_REPLAY`; kill faults fail a lock file left by a dead
//! holder and pass a flock-style lock.

use oversell::{FindingKind, Lock, LockError, LockKind, Schedule, Trial, Unsound};
use proptest::prelude::*;
use proptest::test_runner::{TestError, TestRunner};
use std::fs::File;
use std::path::Path;

/// A sound lock: `flock(2)` through the standard library, on a file of its own.
#[derive(Default)]
struct StdFileLock(Option<File>);

impl StdFileLock {
    fn file(&self) -> Result<&File, LockError> {
        self.0
            .as_ref()
            .ok_or_else(|| LockError::Setup("not attached".into()))
    }
}

impl Lock for StdFileLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let f = File::options()
            .create(true)
            .append(true)
            .open(dir.join("user.lock"))
            .map_err(|e| LockError::io("opening user.lock", e))?;
        self.0 = Some(f);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.file()?.lock().map_err(|e| LockError::io("lock", e))
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        match self.file()?.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(LockError::io("try_lock", e)),
        }
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        self.file()?
            .unlock()
            .map_err(|e| LockError::io("unlock", e))
    }
}

/// A lock that takes nothing: what a forgotten lock looks like.
struct Forgotten;

impl Lock for Forgotten {
    fn lock(&mut self) -> Result<(), LockError> {
        Ok(())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        Ok(true)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    })]

    #[test]
    fn my_lock_is_sound(t in oversell::trials()) {
        oversell::assert_sound(&t, StdFileLock::default())?;
    }
}

#[test]
fn a_forgotten_lock_is_caught_on_the_known_race() {
    // The shrunk race: buyer 0 reads, buyer 1 buys, buyer 0 writes over it.
    let mut t = Trial::new(LockKind::None, 2, 1);
    t.schedule = Schedule::Random;
    t.choices = Some(vec![0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    match oversell::check_sound(&t, Forgotten) {
        Err(Unsound::Violations { violations, token }) => {
            assert!(violations.iter().any(|v| v.kind == FindingKind::Oversold));
            assert!(token.contains(".p0x3-1x7-0x4"), "{token}");
            assert!(token.starts_with("ov1.user."), "{token}");
        }
        other => panic!("expected the race, got {other:?}"),
    }
}

/// A correct `try_lock` (the std flock) and a `lock()` that takes nothing.
#[derive(Default)]
struct LockDoesNothing(StdFileLock);

impl Lock for LockDoesNothing {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.0.attach(dir)
    }
    fn lock(&mut self) -> Result<(), LockError> {
        Ok(())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.0.try_lock()
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        // Only the buyer whose try_lock took it holds anything; flock unlock of an
        // unheld lock is a no-op.
        self.0.unlock()
    }
}

/// A correct `try_lock` and a `lock()` that panics.
#[derive(Default)]
struct LockPanics(StdFileLock);

impl Lock for LockPanics {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.0.attach(dir)
    }
    fn lock(&mut self) -> Result<(), LockError> {
        panic!("blocking path not written yet");
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.0.try_lock()
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        self.0.unlock()
    }
}

/// proptest's runner with the default number of cases, little shrinking and no files.
fn default_runner() -> TestRunner {
    TestRunner::new(ProptestConfig {
        max_shrink_iters: 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

/// The reason a property failed, or a panic saying it passed.
fn failure(result: Result<(), TestError<Trial>>) -> String {
    match result {
        Err(TestError::Fail(reason, trial)) => format!("{reason} [{}]", trial.token()),
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
        Ok(()) => panic!("the property passed"),
    }
}

/// A barrier trial: every buyer that can read does so before any writes, and a buyer
/// that finds the lock busy reports it and calls `lock()`: by construction, the buyers
/// after the first call `lock()`.
fn barrier_trial() -> Trial {
    let mut t = Trial::new(LockKind::None, 3, 2);
    t.schedule = Schedule::Barrier;
    t
}

#[test]
fn a_lock_that_does_nothing_fails_on_a_barrier_trial() {
    match oversell::check_sound(&barrier_trial(), LockDoesNothing::default()) {
        Err(Unsound::Violations { violations, .. }) => assert!(!violations.is_empty()),
        other => panic!("expected a finding, got {other:?}"),
    }
}

#[test]
fn a_lock_that_does_nothing_fails_assert_sound_within_the_default_cases() {
    let why = failure(default_runner().run(&oversell::trials(), |t| {
        oversell::assert_sound(&t, LockDoesNothing::default())
    }));
    assert!(why.contains("the lock is not sound"), "{why}");
}

#[test]
fn a_panicking_lock_is_named_on_a_barrier_trial() {
    match oversell::check_sound(&barrier_trial(), LockPanics::default()) {
        Err(Unsound::Violations { violations, .. }) => {
            let crash = violations
                .iter()
                .find(|v| v.kind == FindingKind::Crash)
                .unwrap_or_else(|| panic!("no crash in {violations:?}"));
            assert!(
                crash
                    .detail
                    .contains("panicked in lock(): blocking path not written yet"),
                "{}",
                crash.detail
            );
        }
        other => panic!("expected a crash, got {other:?}"),
    }
}

#[test]
fn a_panicking_lock_fails_assert_sound_with_the_panic_named() {
    let why = failure(default_runner().run(&oversell::trials(), |t| {
        oversell::assert_sound(&t, LockPanics::default())
    }));
    assert!(
        why.contains("panicked in lock(): blocking path not written yet"),
        "{why}"
    );
}

/// The known race of a forgotten lock, as `check_sound` reports it.
fn failing_token() -> String {
    let mut t = Trial::new(LockKind::None, 2, 1);
    t.schedule = Schedule::Random;
    t.choices = Some(vec![0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    match oversell::check_sound(&t, Forgotten) {
        Err(Unsound::Violations { token, .. }) => token,
        other => panic!("expected the race, got {other:?}"),
    }
}

#[test]
fn a_failing_token_replays_ten_of_ten_with_an_identical_trace() {
    let token = failing_token();
    let first = oversell::replay_sound(&token, Forgotten).expect("the replay runs");
    assert!(!first.trace.is_empty());
    assert!(first
        .violations
        .iter()
        .any(|v| v.kind == FindingKind::Oversold));
    for _ in 0..9 {
        let again = oversell::replay_sound(&token, Forgotten).expect("the replay runs");
        assert_eq!(again.trace, first.trace);
        assert_eq!(again.token, first.token);
        let kinds =
            |r: &oversell::Replayed| r.violations.iter().map(|v| v.kind).collect::<Vec<_>>();
        assert_eq!(kinds(&again), kinds(&first));
    }
}

#[test]
fn a_bad_token_is_an_error_not_a_trial() {
    match oversell::replay_sound("ov1.user.b2", Forgotten) {
        Err(Unsound::Token(_)) => {}
        other => panic!("expected a token error, got {other:?}"),
    }
}

/// A lock file made with `O_CREAT|O_EXCL`: sound while holders live, left taken by a
/// holder that dies.
#[derive(Default)]
struct ExclLockFile(Option<std::path::PathBuf>);

impl ExclLockFile {
    fn path(&self) -> Result<&Path, LockError> {
        self.0
            .as_deref()
            .ok_or_else(|| LockError::Setup("not attached".into()))
    }
}

impl Lock for ExclLockFile {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.0 = Some(dir.join("excl.lock"));
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        while !self.try_lock()? {
            std::thread::yield_now();
        }
        Ok(())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        match File::options()
            .write(true)
            .create_new(true)
            .open(self.path()?)
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(LockError::io("creating excl.lock", e)),
        }
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        std::fs::remove_file(self.path()?).map_err(|e| LockError::io("removing excl.lock", e))
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_flock_style_lock_is_sound_under_kills(t in oversell::trials_with_kills(0.5)) {
        oversell::assert_sound(&t, StdFileLock::default())?;
    }
}

#[test]
fn a_lock_file_is_stale_after_a_kill() {
    let mut runner = TestRunner::new(ProptestConfig {
        max_shrink_iters: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let why = failure(runner.run(&oversell::trials_with_kills(0.5), |t| {
        oversell::assert_sound(&t, ExclLockFile::default())
    }));
    assert!(why.contains("stale_lock"), "{why}");
}

/// `OVERSELL_REPLAY=TOKEN cargo test NAME`: the named test replays that token in place of
/// the trials it would generate, once, printing the trace.
#[test]
fn the_replay_variable_makes_a_test_replay_its_token() {
    let token = failing_token();
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            &crate::common::test_name(module_path!(), "my_lock_is_sound"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OVERSELL_REPLAY", &token)
        .env_remove("OVERSELL_BUYER")
        .output()
        .expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let header = format!("oversell: replaying {token}");
    assert_eq!(stderr.matches(&header).count(), 1, "{stderr}");
    assert!(stderr.contains("  buyer 0 start"), "{stderr}");
}
