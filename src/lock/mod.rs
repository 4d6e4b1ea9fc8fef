//! Lock backends: one file each, behind the one [`Lock`] trait.
//!
//! A backend is opened inside each buyer process (after the harness has prepared whatever
//! the trial shares, such as a SysV semaphore or a lock server) and driven through
//! [`Lock::acquire`] / [`Lock::try_acquire`], which hand back a [`Guard`] that releases
//! the lock when dropped. Adding a backend means one new file here and one line in
//! [`LockKind`].

mod early_release;
mod flock;
mod lockfile;
mod none;
mod ofd;
mod posix;
mod posix_close;
pub(crate) mod posix_sem;
mod renamed_store;
pub(crate) mod socket;
pub(crate) mod sysv;
mod toctou;

use crate::store::StoreMode;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// A lock that buyer processes use to guard the ticket store.
///
/// Implement the three required methods for your own lock and hand it to
/// [`crate::assert_sound`]; oversell calls them from separate processes.
pub trait Lock {
    /// Called once in each buyer process before the race starts, with the trial's
    /// private directory (where a lock file or socket may live).
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        let _ = dir;
        Ok(())
    }

    /// Takes the lock, waiting as long as another process holds it.
    fn lock(&mut self) -> Result<(), LockError>;

    /// Takes the lock if it is free now: `Ok(false)` when another process holds it.
    fn try_lock(&mut self) -> Result<bool, LockError>;

    /// Gives the lock back.
    fn unlock(&mut self) -> Result<(), LockError>;

    /// Takes the lock; the returned guard gives it back when dropped.
    fn acquire(&mut self) -> Result<Guard<'_>, LockError>
    where
        Self: Sized,
    {
        self.lock()?;
        Ok(Guard { lock: Some(self) })
    }

    /// Takes the lock if it is free now; `None` when another process holds it.
    fn try_acquire(&mut self) -> Result<Option<Guard<'_>>, LockError>
    where
        Self: Sized,
    {
        if self.try_lock()? {
            Ok(Some(Guard { lock: Some(self) }))
        } else {
            Ok(None)
        }
    }
}

impl Lock for Box<dyn Lock> {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        (**self).attach(dir)
    }
    fn lock(&mut self) -> Result<(), LockError> {
        (**self).lock()
    }
    fn try_lock(&mut self) -> Result<bool, LockError> {
        (**self).try_lock()
    }
    fn unlock(&mut self) -> Result<(), LockError> {
        (**self).unlock()
    }
}

/// A held lock. Dropping it releases the lock; [`Guard::release`] does the same and
/// reports a failure instead of ignoring it.
pub struct Guard<'a> {
    lock: Option<&'a mut dyn Lock>,
}

impl Guard<'_> {
    /// Releases the lock now, reporting whether that worked.
    pub fn release(mut self) -> Result<(), LockError> {
        match self.lock.take() {
            Some(lock) => lock.unlock(),
            None => Ok(()),
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            // A failure here has nowhere to go; `release` is the reporting path.
            let _ = lock.unlock();
        }
    }
}

impl fmt::Debug for Guard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("held", &self.lock.is_some())
            .finish()
    }
}

/// What went wrong while taking or giving back a lock.
#[derive(Debug)]
pub enum LockError {
    /// A system call failed.
    Io {
        /// What the backend was doing.
        what: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The lock server broke the protocol or went away.
    Protocol(String),
    /// The backend needs something the trial did not provide.
    Setup(String),
}

impl LockError {
    /// A failed system call, with what the lock was doing.
    pub fn io(what: &'static str, source: impl Into<io::Error>) -> Self {
        LockError::Io {
            what,
            source: source.into(),
        }
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Io { what, source } => write!(f, "{what}: {source}"),
            LockError::Protocol(m) => write!(f, "lock server: {m}"),
            LockError::Setup(m) => write!(f, "lock setup: {m}"),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// How far a backend can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Soundness {
    /// Mutual exclusion holds, also when a holder is killed.
    Sound,
    /// Mutual exclusion holds while every holder lives; a killed holder leaves it taken.
    SoundUntilCrash,
    /// Not a lock at all, or a known-broken one: oversell must catch it.
    Broken,
}

/// Every lock backend oversell ships, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockKind {
    /// No lock: the lesson without its `Lock()`.
    None,
    /// `flock(2)` on a lock file beside the store.
    Flock,
    /// Open-file-description record lock (`F_OFD_SETLKW`) on the lock file.
    Ofd,
    /// Classic POSIX record lock (`F_SETLKW`) on the lock file.
    Posix,
    /// `O_CREAT|O_EXCL` lock file with backoff.
    Lockfile,
    /// A lock server over a local socket.
    Socket,
    /// A SysV semaphore with `SEM_UNDO`.
    Sysv,
    /// Known broken: tests that the lock file is absent, then creates it.
    Toctou,
    /// Known broken: takes a real `flock` and gives it back before the read and write.
    EarlyRelease,
    /// Known broken: a POSIX record lock on the store, dropped when the store is closed.
    PosixClose,
    /// Known broken: `flock` on the store, which write-and-rename replaces.
    RenamedStore,
    /// Known broken under kills: a POSIX named semaphore, left taken by a dead holder.
    PosixSem,
}

impl LockKind {
    /// Every backend, in the order `oversell locks` lists them.
    pub const ALL: &'static [LockKind] = &[
        LockKind::None,
        LockKind::Flock,
        LockKind::Ofd,
        LockKind::Posix,
        LockKind::Lockfile,
        LockKind::Socket,
        LockKind::Sysv,
        LockKind::Toctou,
        LockKind::EarlyRelease,
        LockKind::PosixClose,
        LockKind::RenamedStore,
        LockKind::PosixSem,
    ];

    /// The name used on the command line and in tokens.
    pub fn name(self) -> &'static str {
        match self {
            LockKind::None => "none",
            LockKind::Flock => "flock",
            LockKind::Ofd => "ofd",
            LockKind::Posix => "posix",
            LockKind::Lockfile => "lockfile",
            LockKind::Socket => "socket",
            LockKind::Sysv => "sysv",
            LockKind::Toctou => "toctou",
            LockKind::EarlyRelease => "early-release",
            LockKind::PosixClose => "posix-close",
            LockKind::RenamedStore => "renamed-store",
            LockKind::PosixSem => "posix-sem",
        }
    }

    /// One line on what the backend is.
    pub fn about(self) -> &'static str {
        match self {
            LockKind::None => "no lock at all: the lesson without its Lock(); oversells",
            LockKind::Flock => "flock(2) LOCK_EX on a lock file beside the store",
            LockKind::Ofd => "fcntl F_OFD_SETLKW open-file-description lock on the lock file",
            LockKind::Posix => "fcntl F_SETLKW classic record lock on a separate lock file",
            LockKind::Lockfile => {
                "O_CREAT|O_EXCL lock file with backoff; stays taken if its holder dies"
            }
            LockKind::Socket => {
                "a lock server on a local socket in the trial directory; a dead client's hold is freed"
            }
            LockKind::Sysv => "SysV semaphore with SEM_UNDO, removed after the trial",
            LockKind::Toctou => {
                "time-of-check to time-of-use: tests the lock file is absent, then creates it \
                 (`[ -e lock ] || touch lock`)"
            }
            LockKind::EarlyRelease => {
                "unlock too early: takes flock(2) and gives it back before the read and write"
            }
            LockKind::PosixClose => {
                "fcntl F_SETLKW on the store itself: closing any fd of the file (the buyer's \
                 read) drops the process's lock"
            }
            LockKind::RenamedStore => {
                "flock(2) on the store, replaced by write-temp-and-rename: later buyers lock \
                 a new inode"
            }
            LockKind::PosixSem => {
                "POSIX named semaphore (sem_open): a holder that dies never posts it, so it \
                 stays taken"
            }
        }
    }

    /// How far the backend can be trusted.
    pub fn soundness(self) -> Soundness {
        match self {
            LockKind::None
            | LockKind::Toctou
            | LockKind::EarlyRelease
            | LockKind::PosixClose
            | LockKind::RenamedStore
            | LockKind::PosixSem => Soundness::Broken,
            LockKind::Lockfile => Soundness::SoundUntilCrash,
            LockKind::Flock
            | LockKind::Ofd
            | LockKind::Posix
            | LockKind::Socket
            | LockKind::Sysv => Soundness::Sound,
        }
    }

    /// True for backends that keep mutual exclusion while every holder lives.
    pub fn is_sound(self) -> bool {
        self.soundness() != Soundness::Broken
    }

    /// The backend named `name`, if there is one.
    pub fn parse(name: &str) -> Option<LockKind> {
        LockKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The names of all backends, comma-separated, for error messages.
    pub fn names() -> String {
        LockKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The store mode this backend forces, whatever the trial asked for (a backend
    /// that stands for a bug in write-and-rename code needs the atomic store).
    pub(crate) fn required_store(self) -> Option<StoreMode> {
        match self {
            // The bug needs the store's inode to change under the lock.
            LockKind::RenamedStore => Some(StoreMode::Atomic),
            _ => None,
        }
    }

    /// Removes whatever a trial in `dir` left outside that directory (a named
    /// semaphore). Call it after every trial, however the trial ended; it does nothing
    /// for backends that leave nothing behind.
    pub fn cleanup(self, dir: &Path) {
        if self == LockKind::PosixSem {
            posix_sem::cleanup(dir);
        }
    }

    /// True when buyers cannot join after the first acquire: the `posix-sem` backend
    /// removes its semaphore's name once every buyer has opened it, so a buyer spawned
    /// later would make a semaphore of its own. Sessions that reuse buyers must start
    /// afresh to add one.
    pub(crate) fn fixed_membership(self) -> bool {
        self == LockKind::PosixSem
    }

    /// True when the harness must start a lock server for the trial.
    pub(crate) fn needs_server(self) -> bool {
        self == LockKind::Socket
    }

    /// Opens this backend inside a buyer process.
    pub(crate) fn open(self, ctx: &LockContext) -> Result<Box<dyn Lock>, LockError> {
        let mut lock: Box<dyn Lock> = match self {
            LockKind::None => Box::new(none::NoLock),
            LockKind::Flock => Box::new(flock::FlockLock::default()),
            LockKind::Ofd => Box::new(ofd::OfdLock::default()),
            LockKind::Posix => Box::new(posix::PosixLock::default()),
            LockKind::Lockfile => Box::new(lockfile::LockFile::default()),
            LockKind::Toctou => Box::new(toctou::ToctouLock::default()),
            LockKind::EarlyRelease => Box::new(early_release::EarlyReleaseLock::default()),
            LockKind::PosixClose => Box::new(posix_close::PosixCloseLock::default()),
            LockKind::RenamedStore => Box::new(renamed_store::RenamedStoreLock::default()),
            LockKind::PosixSem => Box::new(posix_sem::PosixSemLock::default()),
            LockKind::Socket => Box::new(socket::SocketLock::default()),
            LockKind::Sysv => Box::new(sysv::SysvLock::new(ctx.sem_id.ok_or_else(|| {
                LockError::Setup("the sysv lock needs the trial's semaphore id".into())
            })?)),
        };
        lock.attach(&ctx.dir)?;
        Ok(lock)
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Removes what trials of an oversell process that is no longer running left outside
/// their directories (named semaphores); `alive` says whether a pid still runs. Returns
/// how many leftovers were removed.
pub fn sweep_stale(alive: &dyn Fn(u32) -> bool) -> usize {
    posix_sem::sweep_stale(alive)
}

/// Who a lock names as its holder in trial directory `dir`: `None` when the backend
/// records no holder; `Some(None)` when it does but names nobody now (free, or a holder
/// still writing its name); `Some(Some(pid))` the holder (`lockfile` writes its holder's
/// pid into the lock file).
pub(crate) fn named_holder(kind: LockKind, dir: &Path) -> Option<Option<u32>> {
    match kind {
        LockKind::Lockfile => Some(
            std::fs::read_to_string(dir.join(lockfile::FILE_NAME))
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        ),
        _ => None,
    }
}

/// What a buyer process knows about the trial's shared lock state.
#[derive(Debug, Clone)]
pub(crate) struct LockContext {
    pub dir: PathBuf,
    pub sem_id: Option<i32>,
}

/// The lock file that file-based backends share, beside the store.
pub(crate) fn lock_file_path(dir: &Path) -> PathBuf {
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
pub(crate) fn record_lock(
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
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EACCES) if !wait => {
                return Ok(false)
            }
            Err(e) => return Err(LockError::io("fcntl record lock", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in LockKind::ALL {
            assert_eq!(LockKind::parse(k.name()), Some(*k));
            assert!(!k.about().is_empty());
        }
        assert_eq!(LockKind::parse("nope"), None);
    }

    #[test]
    fn known_broken_locks_are_marked() {
        for name in [
            "none",
            "toctou",
            "early-release",
            "posix-close",
            "renamed-store",
            "posix-sem",
        ] {
            let k = LockKind::parse(name).expect(name);
            assert_eq!(k.soundness(), Soundness::Broken, "{name}");
        }
        assert_eq!(LockKind::Lockfile.soundness(), Soundness::SoundUntilCrash);
        assert_eq!(
            LockKind::RenamedStore.required_store(),
            Some(StoreMode::Atomic)
        );
        assert_eq!(LockKind::Flock.required_store(), None);
    }
}
