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

use super::{LockError, RecordLock, RecordLockFile};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A POSIX record lock on `<dir>/store.json`. Its `unlock` is usually a no-op by then:
/// the buyer's read closed a descriptor of the store.
pub(crate) fn lock() -> RecordLockFile {
    RecordLockFile::new("posix-close", RecordLock::Process, open_store)
}

fn open_store(dir: &Path) -> Result<File, LockError> {
    // A write lock needs a descriptor open for writing; the store already exists.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(crate::store::path(dir))
        .map_err(|e| LockError::io("opening the store to lock it", e))
}
