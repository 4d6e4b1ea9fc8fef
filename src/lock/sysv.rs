//! `sysv`: a SysV semaphore with `SEM_UNDO`.
//!
//! The harness creates one private semaphore per trial (value 1) and removes it after the
//! trial; buyers get its id. `SEM_UNDO` makes the kernel give a dead holder's unit back.

use super::{Lock, LockError};
use std::io;

/// A SysV semaphore used as a mutex.
#[derive(Debug)]
pub(crate) struct SysvLock {
    id: i32,
}

impl SysvLock {
    pub(crate) fn new(id: i32) -> Self {
        SysvLock { id }
    }

    fn op(&self, delta: libc::c_short, wait: bool) -> Result<bool, LockError> {
        let flags = libc::SEM_UNDO as libc::c_short
            | if wait {
                0
            } else {
                libc::IPC_NOWAIT as libc::c_short
            };
        let mut buf = libc::sembuf {
            sem_num: 0,
            sem_op: delta,
            sem_flg: flags,
        };
        loop {
            // SAFETY: `buf` is a valid, initialised sembuf and we pass a count of one.
            let rc = unsafe { libc::semop(self.id, &mut buf, 1) };
            if rc == 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) if !wait => return Ok(false),
                _ => return Err(LockError::io("semop", err)),
            }
        }
    }
}

impl Lock for SysvLock {
    fn lock(&mut self) -> Result<(), LockError> {
        self.op(-1, true).map(|_| ())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.op(-1, false)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        self.op(1, true).map(|_| ())
    }
}

/// A trial's semaphore, owned by the harness: removed when dropped.
#[derive(Debug)]
pub(crate) struct Semaphore {
    pub id: i32,
}

impl Semaphore {
    /// Creates a private semaphore with value 1, readable only by this user.
    pub(crate) fn create() -> Result<Semaphore, LockError> {
        // SAFETY: semget takes plain integers and returns an id or -1.
        let id = unsafe { libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(LockError::io("semget", io::Error::last_os_error()));
        }
        let sem = Semaphore { id };
        // SAFETY: SETVAL takes the value as an int in place of the semun union.
        let rc = unsafe { libc::semctl(id, 0, libc::SETVAL, 1 as libc::c_int) };
        if rc < 0 {
            return Err(LockError::io("semctl SETVAL", io::Error::last_os_error()));
        }
        Ok(sem)
    }
}

/// Removes the semaphore with this id; a missing one is not an error.
pub(crate) fn remove(id: i32) {
    // SAFETY: IPC_RMID takes no fourth argument; a stale or foreign id just fails.
    unsafe {
        libc::semctl(id, 0, libc::IPC_RMID);
    }
}

impl Drop for Semaphore {
    fn drop(&mut self) {
        remove(self.id);
    }
}
