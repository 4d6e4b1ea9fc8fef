//! `renamed-store` (known broken): `flock(2)` on the store file, which is replaced by
//! write-to-temporary-and-rename.
//!
//! A flock belongs to an inode, not to a path. The first holder writes the new count to a
//! temporary file and renames it over the store, so the path now names a new inode. A
//! buyer that opened the store before the rename waits on (and then holds) the lock of
//! the old inode; a buyer that opens it after the rename locks the new inode, which
//! nobody holds. Both are inside at once. This is the bug of tools that lock the very
//! file they atomically replace (config and state files, package databases); the fix is
//! a separate lock file that is never renamed, as the `flock` backend uses.
//!
//! The backend forces the atomic store ([`super::LockKind::required_store`]): with the
//! in-place store the inode never changes and the lock would be sound.

use super::{flock_exclusive, Flocked, Lock, LockError};
use nix::fcntl::Flock;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// A flock on whatever inode `<dir>/store.json` names when the lock is taken.
#[derive(Debug, Default)]
pub(crate) struct RenamedStoreLock {
    path: Option<PathBuf>,
    held: Option<Flock<std::fs::File>>,
}

impl RenamedStoreLock {
    fn take(&mut self, wait: bool) -> Result<bool, LockError> {
        if self.held.is_some() {
            return Err(LockError::Setup("renamed-store: already held".into()));
        }
        let path = self
            .path
            .as_deref()
            .ok_or_else(|| LockError::Setup("renamed-store: not attached to a trial".into()))?;
        // The bug: the store is opened by path at each attempt, so the lock lands on
        // whichever inode the path names at that moment.
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|e| LockError::io("opening the store to lock it", e))?;
        match flock_exclusive(file, wait, "flock on the store") {
            Flocked::Held(held) => {
                self.held = Some(held);
                Ok(true)
            }
            Flocked::Busy(_) => Ok(false),
            Flocked::Failed(_, e) => Err(e),
        }
    }
}

impl Lock for RenamedStoreLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.path = Some(crate::store::path(dir));
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.take(true).map(|_| ())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.take(false)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        match self.held.take() {
            Some(held) => held
                .unlock()
                .map(drop)
                .map_err(|(_, e)| LockError::io("flock unlock", e)),
            None => Ok(()),
        }
    }
}
