//! Locks from crates people use, tested with `assert_sound` and no `unsafe`: fd-lock's
//! guard-returning `RwLock::write` through `GuardLock` + `HeldByThread`, fs4's lock calls
//! through `lock_fn`, and fslock's `LockFile`, which has `Lock`'s shape already.

#![forbid(unsafe_code)]

use oversell::{GuardLock, HeldByThread, Lock, LockError};
use proptest::prelude::*;
use std::fs::File;
use std::path::Path;

/// fd-lock's write lock: `write()` hands back a guard that borrows the lock.
#[derive(Default)]
struct FdLock(Option<fd_lock::RwLock<File>>);

impl FdLock {
    fn rw(&mut self) -> Result<&mut fd_lock::RwLock<File>, LockError> {
        self.0
            .as_mut()
            .ok_or_else(|| LockError::Setup("not attached".into()))
    }
}

impl GuardLock for FdLock {
    type Guard<'a> = fd_lock::RwLockWriteGuard<'a, File>;

    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let f = File::options()
            .create(true)
            .append(true)
            .open(dir.join("fd.lock"))
            .map_err(|e| LockError::io("opening fd.lock", e))?;
        self.0 = Some(fd_lock::RwLock::new(f));
        Ok(())
    }
    fn acquire(&mut self) -> Result<Self::Guard<'_>, LockError> {
        self.rw()?.write().map_err(|e| LockError::io("write", e))
    }
    fn try_acquire(&mut self) -> Result<Option<Self::Guard<'_>>, LockError> {
        match self.rw()?.try_write() {
            Ok(g) => Ok(Some(g)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(LockError::io("try_write", e)),
        }
    }
}

/// fs4's exclusive file lock, from four closures.
fn fs4_lock() -> impl Lock {
    oversell::lock_fn(
        |dir: &Path| {
            File::options()
                .create(true)
                .append(true)
                .open(dir.join("fs4.lock"))
                .map_err(|e| LockError::io("opening fs4.lock", e))
        },
        |f: &mut File| fs4::FileExt::lock(f).map_err(|e| LockError::io("lock", e)),
        |f: &mut File| match fs4::FileExt::try_lock(f) {
            Ok(()) => Ok(true),
            Err(fs4::TryLockError::WouldBlock) => Ok(false),
            Err(fs4::TryLockError::Error(e)) => Err(LockError::io("try_lock", e)),
        },
        |f: &mut File| fs4::FileExt::unlock(f).map_err(|e| LockError::io("unlock", e)),
    )
}

/// fslock's `LockFile`: lock, try_lock and unlock calls, so a plain `Lock`.
#[derive(Default)]
struct FsLock(Option<fslock::LockFile>);

impl FsLock {
    fn file(&mut self) -> Result<&mut fslock::LockFile, LockError> {
        self.0
            .as_mut()
            .ok_or_else(|| LockError::Setup("not attached".into()))
    }
}

impl Lock for FsLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let f = fslock::LockFile::open(&dir.join("fslock.lock"))
            .map_err(|e| LockError::io("opening fslock.lock", e))?;
        self.0 = Some(f);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.file()?.lock().map_err(|e| LockError::io("lock", e))
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.file()?
            .try_lock()
            .map_err(|e| LockError::io("try_lock", e))
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        self.file()?
            .unlock()
            .map_err(|e| LockError::io("unlock", e))
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
    fn fd_lock_is_sound(t in oversell::trials()) {
        oversell::assert_sound(&t, HeldByThread::new(FdLock::default()))?;
    }

    #[test]
    fn fs4_is_sound(t in oversell::trials()) {
        oversell::assert_sound(&t, fs4_lock())?;
    }

    #[test]
    fn fslock_is_sound(t in oversell::trials()) {
        oversell::assert_sound(&t, FsLock::default())?;
    }

    #[test]
    fn fd_lock_is_sound_under_kills(t in oversell::trials_with_kills(0.3)) {
        oversell::assert_sound(&t, HeldByThread::new(FdLock::default()))?;
    }
}

/// The guard is really held between `lock()` and `unlock()`: a second open file of the
/// same lock (flock conflicts between open files, even in one process) finds it busy.
#[test]
fn held_by_thread_holds_the_guard_until_unlock() {
    let dir = crate::common::tempdir().expect("a temporary directory");
    let mut a = HeldByThread::new(FdLock::default());
    let mut b = HeldByThread::new(FdLock::default());
    a.attach(dir.path()).expect("attach a");
    b.attach(dir.path()).expect("attach b");
    a.lock().expect("a takes the lock");
    assert!(!b.try_lock().expect("b tries"), "b took a held lock");
    assert!(
        a.try_lock().is_err(),
        "a second take by the holder is refused"
    );
    a.unlock().expect("a gives it back");
    assert!(
        b.try_lock().expect("b tries again"),
        "b could not take a free lock"
    );
    assert!(!a.try_lock().expect("a tries"), "a took b's lock");
    b.unlock().expect("b gives it back");
    a.lock().expect("a takes it again");
    a.unlock().expect("a gives it back again");
}

/// `acquire` and `try_acquire` hand back guards that give the lock back when released
/// or dropped.
#[test]
fn guards_give_the_lock_back() {
    let dir = crate::common::tempdir().expect("a temporary directory");
    let mut a = FsLock::default();
    let mut b = FsLock::default();
    a.attach(dir.path()).expect("attach a");
    b.attach(dir.path()).expect("attach b");
    let held = a.acquire().expect("a acquires");
    assert!(
        b.try_acquire().expect("b tries").is_none(),
        "b took a held lock"
    );
    held.release().expect("a releases");
    let held = b
        .try_acquire()
        .expect("b tries again")
        .expect("the lock is free");
    assert!(format!("{held:?}").contains("held: true"));
    assert!(!a.try_lock().expect("a tries"), "a took b's lock");
    drop(held);
    assert!(
        a.try_lock().expect("a tries again"),
        "dropping the guard freed nothing"
    );
    a.unlock().expect("a unlocks");
}

/// A closure lock used before `attach` says so rather than panicking.
#[test]
fn an_unattached_closure_lock_is_an_error() {
    let mut l = fs4_lock();
    assert!(l.lock().is_err());
    let mut g = HeldByThread::new(FdLock::default());
    assert!(g.try_lock().is_err());
}
