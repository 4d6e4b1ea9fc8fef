//! `flock`: `flock(2)` with `LOCK_EX` on a lock file beside the store.
//!
//! The kernel drops the lock when the holder dies, so a killed buyer never leaves it taken.

use super::{flock_exclusive, open_lock_file, Flocked, Lock, LockError};
use nix::fcntl::Flock;
use std::fs::File;
use std::path::Path;

#[derive(Debug, Default)]
enum State {
    #[default]
    Detached,
    Open(File),
    Held(Flock<File>),
}

/// A `flock(2)` lock on `<dir>/lock`.
#[derive(Debug, Default)]
pub(crate) struct FlockLock {
    state: State,
}

impl FlockLock {
    fn take(&mut self, wait: bool) -> Result<bool, LockError> {
        let file = match std::mem::take(&mut self.state) {
            State::Open(f) => f,
            State::Held(h) => {
                self.state = State::Held(h);
                return Err(LockError::Setup("flock: already held".into()));
            }
            State::Detached => {
                return Err(LockError::Setup("flock: not attached to a trial".into()))
            }
        };
        match flock_exclusive(file, wait, "flock") {
            Flocked::Held(held) => {
                self.state = State::Held(held);
                Ok(true)
            }
            Flocked::Busy(file) => {
                self.state = State::Open(file);
                Ok(false)
            }
            Flocked::Failed(file, e) => {
                self.state = State::Open(file);
                Err(e)
            }
        }
    }
}

impl Lock for FlockLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.state = State::Open(open_lock_file(dir)?);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.take(true).map(|_| ())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.take(false)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        match std::mem::take(&mut self.state) {
            State::Held(held) => match held.unlock() {
                Ok(file) => {
                    self.state = State::Open(file);
                    Ok(())
                }
                Err((held, e)) => {
                    self.state = State::Held(held);
                    Err(LockError::io("flock unlock", e))
                }
            },
            other => {
                self.state = other;
                Ok(())
            }
        }
    }
}
