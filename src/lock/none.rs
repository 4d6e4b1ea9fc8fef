//! `none`: no lock at all, the lesson with its `Lock()` taken away.

use super::{Lock, LockError};

/// Takes nothing and always succeeds: every buyer is in the critical section at once.
#[derive(Debug, Default)]
pub(crate) struct NoLock;

impl Lock for NoLock {
    fn lock(&mut self) -> Result<(), LockError> {
        Ok(())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        Ok(true)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        Ok(())
    }
}
