//! `posix-close` (known broken): a classic `fcntl(F_SETLKW)` lock on the store itself.
//!
//! POSIX record locks belong to the process, not to the descriptor, and closing *any*
//! descriptor of a file drops every lock the process holds on that file. A buyer that
//! locks the store and then reads it through a fresh `open`/`close` (as every buyer does)
//! has silently given the lock back before its write. This is the long-standing trap of
//! `fcntl` locks: a library call that opens and closes the locked file (a config reader,
//! SQLite before it worked around it) unlocks it behind the caller's back. The `posix`
//! backend is sound only because it locks a separate file nobody else opens; `ofd` locks
//! do not have this flaw.

use super::{record_lock, Lock, LockError, RecordLock};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A POSIX record lock on `<dir>/store.json`.
#[derive(Debug, Default)]
pub(crate) struct PosixCloseLock {
    file: Option<File>,
}

impl PosixCloseLock {
    fn file(&self) -> Result<&File, LockError> {
        self.file
            .as_ref()
            .ok_or_else(|| LockError::Setup("posix-close: not attached to a trial".into()))
    }
}

impl Lock for PosixCloseLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        // A write lock needs a descriptor open for writing; the store already exists.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(crate::store::path(dir))
            .map_err(|e| LockError::io("opening the store to lock it", e))?;
        self.file = Some(file);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        record_lock(self.file()?, RecordLock::Process, libc::F_WRLCK as _, true).map(|_| ())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        record_lock(self.file()?, RecordLock::Process, libc::F_WRLCK as _, false)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        // Usually a no-op by now: the buyer's read closed a descriptor of the store.
        record_lock(self.file()?, RecordLock::Process, libc::F_UNLCK as _, true).map(|_| ())
    }
}
