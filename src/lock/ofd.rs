//! `ofd`: an open-file-description record lock (`F_OFD_SETLKW`) on the lock file.
//!
//! Owned by the open file rather than the process, so closing another descriptor of the
//! same file does not drop it (unlike `posix`), and the kernel frees it when the holder dies.

use super::{open_lock_file, record_lock, Lock, LockError, RecordLock};
use std::fs::File;
use std::path::Path;

/// An OFD lock on `<dir>/lock`.
#[derive(Debug, Default)]
pub(crate) struct OfdLock {
    file: Option<File>,
}

impl OfdLock {
    fn file(&self) -> Result<&File, LockError> {
        self.file
            .as_ref()
            .ok_or_else(|| LockError::Setup("ofd: not attached to a trial".into()))
    }
}

impl Lock for OfdLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.file = Some(open_lock_file(dir)?);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        record_lock(self.file()?, RecordLock::OpenFile, libc::F_WRLCK as _, true).map(|_| ())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        record_lock(
            self.file()?,
            RecordLock::OpenFile,
            libc::F_WRLCK as _,
            false,
        )
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        record_lock(self.file()?, RecordLock::OpenFile, libc::F_UNLCK as _, true).map(|_| ())
    }
}
