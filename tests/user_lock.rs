//! A user's own lock, tested the way the README shows: `oversell::trials()` and
//! `oversell::assert_sound` inside `proptest!`. Each case runs real buyer processes (this
//! test binary, re-run as buyers).

use oversell::scenario::{Schedule, Trial};
use oversell::{Lock, LockError, LockKind, Unsound};
use proptest::prelude::*;
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
            assert!(violations
                .iter()
                .any(|v| v.kind == oversell::FindingKind::Oversold));
            assert!(token.contains(".p0x3-1x7-0x4"), "{token}");
        }
        other => panic!("expected the race, got {other:?}"),
    }
}
