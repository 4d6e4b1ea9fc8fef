//! What several backends share: the lock file, the backoff loop of locks without a wait
//! queue, the `flock(2)` call and the `fcntl` record lock.

use super::{Lock, LockError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// What a buyer process knows about the trial's shared lock state.
#[derive(Debug, Clone)]
pub(crate) struct LockContext {
    pub dir: PathBuf,
    pub sem_id: Option<i32>,
}

/// The lock file that file-based backends share, beside the store.
fn lock_file_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

pub(crate) fn open_lock_file(dir: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_file_path(dir))
        .map_err(|e| LockError::io("opening the lock file", e))
}

/// Repeats `attempt` until it takes the lock, sleeping 20 µs, then twice as long each
/// time up to 2 ms: how a lock without a kernel wait queue waits.
pub(crate) fn retry_with_backoff(
    mut attempt: impl FnMut() -> Result<bool, LockError>,
) -> Result<(), LockError> {
    let mut pause = std::time::Duration::from_micros(20);
    while !attempt()? {
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(2));
    }
    Ok(())
}

/// How one `flock(2)` `LOCK_EX` attempt ended. The file comes back whatever happened.
pub(crate) enum Flocked {
    /// Taken.
    Held(Flock<File>),
    /// Another holder has it (only when not waiting).
    Busy(File),
    /// The call failed.
    Failed(File, LockError),
}

/// Takes `LOCK_EX` on `file`, waiting for it when `wait`, and retrying after a signal.
/// `what` names the call in an error.
pub(crate) fn flock_exclusive(mut file: File, wait: bool, what: &'static str) -> Flocked {
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    loop {
        match Flock::lock(file, arg) {
            Ok(held) => return Flocked::Held(held),
            Err((back, Errno::EINTR)) => file = back,
            Err((back, Errno::EWOULDBLOCK)) if !wait => return Flocked::Busy(back),
            Err((back, e)) => return Flocked::Failed(back, LockError::io(what, e)),
        }
    }
}

/// Which `fcntl` record-lock family to use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecordLock {
    /// Classic POSIX locks: owned by the process, dropped when it closes any fd of the file.
    Process,
    /// Open-file-description locks: owned by the open file.
    OpenFile,
}

/// Takes (`l_type` = `F_WRLCK`) or drops (`F_UNLCK`) a whole-file record lock.
/// Returns `Ok(false)` when `wait` is false and another holder has it.
fn record_lock(
    file: &File,
    family: RecordLock,
    l_type: libc::c_short,
    wait: bool,
) -> Result<bool, LockError> {
    use nix::fcntl::{fcntl, FcntlArg};
    // SAFETY: `libc::flock` is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    fl.l_pid = 0;
    loop {
        let arg = match (family, wait) {
            (RecordLock::Process, true) => FcntlArg::F_SETLKW(&fl),
            (RecordLock::Process, false) => FcntlArg::F_SETLK(&fl),
            (RecordLock::OpenFile, true) => FcntlArg::F_OFD_SETLKW(&fl),
            (RecordLock::OpenFile, false) => FcntlArg::F_OFD_SETLK(&fl),
        };
        match fcntl(file.as_fd(), arg) {
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) | Err(Errno::EACCES) if !wait => return Ok(false),
            Err(e) => return Err(LockError::io("fcntl record lock", e)),
        }
    }
}

/// A whole-file `fcntl` record lock on a file the backend opens at attach: the one body
/// behind `posix`, `ofd` and `posix-close`, which differ in the family and the file.
pub(crate) struct RecordLockFile {
    /// The backend's name, for errors.
    name: &'static str,
    family: RecordLock,
    /// Opens the file to lock in a trial directory.
    open: fn(&Path) -> Result<File, LockError>,
    file: Option<File>,
}

impl RecordLockFile {
    pub(crate) fn new(
        name: &'static str,
        family: RecordLock,
        open: fn(&Path) -> Result<File, LockError>,
    ) -> RecordLockFile {
        RecordLockFile {
            name,
            family,
            open,
            file: None,
        }
    }

    fn set(&self, l_type: libc::c_int, wait: bool) -> Result<bool, LockError> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| LockError::Setup(format!("{}: not attached to a trial", self.name)))?;
        record_lock(file, self.family, l_type as libc::c_short, wait)
    }
}

impl Lock for RecordLockFile {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.file = Some((self.open)(dir)?);
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        self.set(libc::F_WRLCK, true).map(drop)
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.set(libc::F_WRLCK, false)
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        self.set(libc::F_UNLCK, true).map(drop)
    }
}

/// A lock that is a file's existence: taken by creating `<dir>/<file>`, given back by
/// removing it, waited for with [`retry_with_backoff`] (no kernel wait queue). The one
/// body behind `lockfile` and `toctou`, which differ in how they create the file.
pub(crate) struct FileFlagLock {
    /// The backend's name, for errors.
    name: &'static str,
    /// The file's name inside the trial directory.
    file: &'static str,
    /// One attempt: `Ok(true)` when this call created the file.
    create: fn(&Path) -> Result<bool, LockError>,
    /// Giving back a file that is already gone is fine (`rm -f`), not an error.
    gone_is_fine: bool,
    path: Option<PathBuf>,
}

impl FileFlagLock {
    pub(crate) fn new(
        name: &'static str,
        file: &'static str,
        create: fn(&Path) -> Result<bool, LockError>,
        gone_is_fine: bool,
    ) -> FileFlagLock {
        FileFlagLock {
            name,
            file,
            create,
            gone_is_fine,
            path: None,
        }
    }

    fn attempt(&self) -> Result<bool, LockError> {
        let path = self
            .path
            .as_deref()
            .ok_or_else(|| LockError::Setup(format!("{}: not attached to a trial", self.name)))?;
        (self.create)(path)
    }
}

impl Lock for FileFlagLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.path = Some(dir.join(self.file));
        Ok(())
    }
    fn lock(&mut self) -> Result<(), LockError> {
        retry_with_backoff(|| self.attempt())
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        self.attempt()
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        let path = self
            .path
            .as_deref()
            .ok_or_else(|| LockError::Setup(format!("{}: not attached to a trial", self.name)))?;
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound && self.gone_is_fine => Ok(()),
            Err(e) => Err(LockError::io("removing the lock file", e)),
        }
    }
}
