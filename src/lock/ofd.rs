//! `ofd`: an open-file-description record lock (`F_OFD_SETLKW`) on the lock file.
//!
//! Owned by the open file rather than the process, so closing another descriptor of the
//! same file does not drop it (unlike `posix`), and the kernel frees it when the holder dies.

use super::{open_lock_file, RecordLock, RecordLockFile};

/// An OFD lock on `<dir>/lock`.
pub(crate) fn lock() -> RecordLockFile {
    RecordLockFile::new("ofd", RecordLock::OpenFile, open_lock_file)
}
