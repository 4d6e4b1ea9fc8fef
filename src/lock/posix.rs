//! `posix`: a classic `fcntl(F_SETLKW)` record lock on a separate lock file.
//!
//! Sound as long as the process never opens and closes another descriptor of the lock
//! file: closing *any* descriptor of a file drops the process's POSIX locks on it. That is
//! why it lives on `<dir>/lock` and never on the store the buyer reads and writes.

use super::{open_lock_file, RecordLock, RecordLockFile};

/// A POSIX record lock on `<dir>/lock`.
pub(crate) fn lock() -> RecordLockFile {
    RecordLockFile::new("posix", RecordLock::Process, open_lock_file)
}
