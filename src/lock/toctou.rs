//! `toctou` (known broken): test that the lock file is absent, then create it.
//!
//! This is the bug of shell scripts that do `[ -e lock ] || touch lock` and of code that
//! calls `Path::exists` before `File::create`: the test and the set are two system calls,
//! and two processes can both pass the test before either creates the file. `O_EXCL`
//! (the `lockfile` backend) makes them one step; this backend does not.
//!
//! Between the test and the create it yields the processor and sleeps a few
//! microseconds. That pause stands for the gap that exists in real code (a context switch,
//! a page fault, a log line); it only makes the window wide enough to be hit in a short
//! run, and never closes or opens a window the real code lacks.

use super::{FileFlagLock, LockError};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// The lock file's name inside a trial directory.
const FILE_NAME: &str = "lock.toctou";

/// How long the gap between test and set is held open, on top of a yield.
const GAP: Duration = Duration::from_micros(5);

/// A test-then-create lock file. Two holders share one file: the second to leave finds
/// it already gone, as `rm -f` would.
pub(crate) fn lock() -> FileFlagLock {
    FileFlagLock::new("toctou", FILE_NAME, test_then_create, true)
}

fn test_then_create(path: &Path) -> Result<bool, LockError> {
    // The test...
    let taken = path
        .try_exists()
        .map_err(|e| LockError::io("testing for the lock file", e))?;
    if taken {
        return Ok(false);
    }
    // ...the gap...
    std::thread::yield_now();
    std::thread::sleep(GAP);
    // ...and the set, which succeeds whether or not someone created it meanwhile.
    File::create(path).map_err(|e| LockError::io("creating the lock file", e))?;
    Ok(true)
}
