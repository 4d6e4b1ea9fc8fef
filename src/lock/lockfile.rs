//! `lockfile`: create `<dir>/lock.excl` with `O_CREAT|O_EXCL`, remove it to release.
//!
//! Mutual exclusion holds while holders live, but nothing removes the file when a holder
//! is killed: the lock stays taken (a `stale_lock`). The file holds the holder's pid so a
//! finding can name it.

use super::{FileFlagLock, LockError};
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// The name of the exclusive lock file inside a trial directory.
pub(crate) const FILE_NAME: &str = "lock.excl";

/// An `O_EXCL` lock file.
pub(crate) fn lock() -> FileFlagLock {
    FileFlagLock::new("lockfile", FILE_NAME, create_exclusive, false)
}

/// Creates the file if nobody has: test and set in one system call.
fn create_exclusive(path: &Path) -> Result<bool, LockError> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut f) => {
            // The pid is advisory: a reader of a half-written file sees no pid.
            let _ = writeln!(f, "{}", std::process::id());
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(LockError::io("creating the lock file", e)),
    }
}
