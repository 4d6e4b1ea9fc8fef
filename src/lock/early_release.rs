//! `early-release` (known broken): a real `flock(2)` that is given back too early.
//!
//! `lock` takes `LOCK_EX` on the lock file and drops it again before returning, so the
//! read and the write that follow run unprotected. It stands for code that unlocks before
//! it has written: a `with lock:` block that only wraps the read, a guard dropped at the
//! end of a helper that fetches the value, or an `unlock()` moved above the write. Every
//! call does take the real lock, so buyers do wait for each other for an instant — which
//! is why such code passes a casual test.

use super::{flock_exclusive, open_lock_file, Flocked, Lock, LockError};
use std::fs::File;
use std::path::Path;

/// A flock on `<dir>/lock` held only for the duration of the `lock` call.
#[derive(Debug, Default)]
pub(crate) struct EarlyReleaseLock {
    file: Option<File>,
}

impl EarlyReleaseLock {
    fn take_and_drop(&mut self, wait: bool) -> Result<bool, LockError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| LockError::Setup("early-release: not attached to a trial".into()))?;
        match flock_exclusive(file, wait, "flock") {
            // The bug: the lock is given back here, before the caller has read or
            // written anything.
            Flocked::Held(held) => match held.unlock() {
                Ok(file) => {
                    self.file = Some(file);
                    Ok(true)
                }
                Err((held, e)) => {
                    // Dropping the held lock unlocks it when the file is closed.
                    drop(held);
                    Err(LockError::io("flock unlock", e))
                }
            },
            Flocked::Busy(file) => {
                self.file = Some(file);
                Ok(false)
            }
            Flocked::Failed(file, e) => {
                self.file = Some(file);
                Err(e)
            }
        }
    }
}

impl Lock for EarlyReleaseLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.file = Some(open_lock_file(dir)?);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.take_and_drop(true).map(|_| ())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.take_and_drop(false)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        // Already given back in `lock`.
        Ok(())
    }
}
