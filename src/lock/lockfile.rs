//! `lockfile`: create `<dir>/lock.excl` with `O_CREAT|O_EXCL`, remove it to release.
//!
//! Mutual exclusion holds while holders live, but nothing removes the file when a holder
//! is killed: the lock stays taken (a `stale_lock`). The file holds the holder's pid so a
//! finding can name it.

use super::{Lock, LockError};
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The name of the exclusive lock file inside a trial directory.
pub(crate) const FILE_NAME: &str = "lock.excl";

/// An `O_EXCL` lock file.
#[derive(Debug, Default)]
pub(crate) struct LockFile {
    path: Option<PathBuf>,
}

impl LockFile {
    fn path(&self) -> Result<&Path, LockError> {
        self.path
            .as_deref()
            .ok_or_else(|| LockError::Setup("lockfile: not attached to a trial".into()))
    }

    fn attempt(&self) -> Result<bool, LockError> {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path()?)
        {
            Ok(mut f) => {
                // The pid is advisory: a reader of a half-written file sees no pid.
                let _ = writeln!(f, "{}", std::process::id());
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(LockError::io("creating the lock file", e)),
        }
    }
}

impl Lock for LockFile {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.path = Some(dir.join(FILE_NAME));
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        super::retry_with_backoff(|| self.attempt())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.attempt()
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        std::fs::remove_file(self.path()?).map_err(|e| LockError::io("removing the lock file", e))
    }
}
