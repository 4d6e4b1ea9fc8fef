//! Under a controlled schedule the harness tracks who holds the lock. A buyer it knows
//! may take the lock (nobody holds it) is told to call the blocking `lock()`, which must
//! return at once; otherwise the buyer calls `try_lock()`. So `lock()` is exercised, and
//! a `lock()` that does not lock, or that blocks on a free lock, is a finding.

use oversell::{FindingKind, Lock, LockError, LockKind, Schedule, Trial, Unsound};
use std::fs::File;
use std::path::Path;

/// `flock(2)` whose `try_lock()` is right; `lock()` is whatever the test says.
struct HalfLock {
    file: Option<File>,
    lock: fn(&File) -> Result<(), LockError>,
}

impl HalfLock {
    fn new(lock: fn(&File) -> Result<(), LockError>) -> HalfLock {
        HalfLock { file: None, lock }
    }
    fn file(&self) -> Result<&File, LockError> {
        self.file
            .as_ref()
            .ok_or_else(|| LockError::Setup("not attached".into()))
    }
}

impl Lock for HalfLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let f = File::options()
            .create(true)
            .append(true)
            .open(dir.join("half.lock"))
            .map_err(|e| LockError::io("opening half.lock", e))?;
        self.file = Some(f);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        (self.lock)(self.file()?)
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

/// Set in the process a test runs itself in.
const INNER: &str = "OVERSELL_TEST_INNER";

fn trial(seed: u64) -> Trial {
    let mut t = Trial::new(LockKind::None, 2, 1);
    t.schedule = Schedule::Random;
    t.seed = seed;
    t
}

fn kinds(u: &Unsound) -> Vec<FindingKind> {
    match u {
        Unsound::Violations { violations, .. } => violations.iter().map(|v| v.kind).collect(),
        other => panic!("not a finding: {other}"),
    }
}

#[test]
fn a_lock_whose_lock_does_nothing_is_caught() {
    // The first buyer to acquire is told the lock is free and calls `lock()`, which takes
    // nothing; some schedule then lets the other buyer's `try_lock()` in beside it.
    let found = (0..64u64)
        .find_map(|seed| oversell::check_sound(&trial(seed), HalfLock::new(|_| Ok(()))).err());
    let err = found.expect("a no-op lock() passed 64 schedules");
    let kinds = kinds(&err);
    assert!(
        kinds.contains(&FindingKind::Overlap) || kinds.contains(&FindingKind::Oversold),
        "{err}"
    );
}

#[test]
fn the_same_lock_with_a_real_lock_is_sound() {
    for seed in 0..8u64 {
        let got = oversell::check_sound(
            &trial(seed),
            HalfLock::new(|f| f.lock().map_err(|e| LockError::io("lock", e))),
        );
        assert!(
            got.is_ok(),
            "seed {seed}: {:?}",
            got.err().map(|e| e.to_string())
        );
    }
}

#[test]
fn a_lock_that_blocks_on_a_free_lock_is_a_finding_naming_lock() {
    // Run in a test process of its own, whose hang window (OVERSELL_TIMEOUT_MS, 2 s for
    // the default 10 s, given twice; it runs from the step that sends the buyer into
    // `lock()`) is no other test's: the buyers it starts (the same binary with
    // OVERSELL_BUYER set) and that process go on below.
    const NAME: &str = "a_lock_that_blocks_on_a_free_lock_is_a_finding_naming_lock";
    if std::env::var_os("OVERSELL_BUYER").is_none() && std::env::var_os(INNER).is_none() {
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                &crate::common::test_name(module_path!(), NAME),
                "--test-threads",
                "1",
                "--nocapture",
            ])
            .env(INNER, "1")
            .env("OVERSELL_TIMEOUT_MS", "2000")
            .output()
            .expect("running the test in a process of its own");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && said.contains("1 passed"), "{said}");
        return;
    }
    // `lock()` waits forever although nobody holds the lock.
    let err = oversell::check_sound(
        &trial(0),
        HalfLock::new(|_| loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }),
    )
    .expect_err("a lock() that never returns");
    assert_eq!(kinds(&err), vec![FindingKind::Hang], "{err}");
    assert!(err.to_string().contains("lock()"), "{err}");
}
