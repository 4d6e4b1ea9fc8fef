//! `posix`: a classic `fcntl(F_SETLKW)` record lock on a separate lock file.
//!
//! Sound as long as the process never opens and closes another descriptor of the lock
//! file: closing *any* descriptor of a file drops the process's POSIX locks on it. That is
//! why it lives on `<dir>/lock` and never on the store the buyer reads and writes.

use super::{open_lock_file, record_lock, Lock, LockError, RecordLock};
use std::fs::File;
use std::path::Path;

/// A POSIX record lock on `<dir>/lock`.
#[derive(Debug, Default)]
pub(crate) struct PosixLock {
    file: Option<File>,
}

impl PosixLock {
    fn file(&self) -> Result<&File, LockError> {
        self.file
            .as_ref()
            .ok_or_else(|| LockError::Setup("posix: not attached to a trial".into()))
    }
}

impl Lock for PosixLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.file = Some(open_lock_file(dir)?);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        record_lock(self.file()?, RecordLock::Process, libc::F_WRLCK as _, true).map(|_| ())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        record_lock(self.file()?, RecordLock::Process, libc::F_WRLCK as _, false)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        record_lock(self.file()?, RecordLock::Process, libc::F_UNLCK as _, true).map(|_| ())
    }
}
