//! Lock backends: one file each, behind the one [`Lock`] trait.
//!
//! A backend is opened inside each buyer process (after the harness has prepared whatever
//! the trial shares, such as a SysV semaphore or a lock server) by `LockKind::open`,
//! which calls [`Lock::attach`]; the buyer then calls [`Lock::try_lock`], [`Lock::lock`]
//! and [`Lock::unlock`] (see the trait for which, when). [`Lock::acquire`] and [`Guard`]
//! are for users of a lock, not for buyers.
//!
//! Adding a backend touches these places:
//! 1. a new file here and its `mod` line below;
//! 2. in `kind.rs`: a [`LockKind`] variant, its place in [`LockKind::ALL`], and its arms
//!    in `name`, `about`, `soundness` and `open`;
//! 3. if buyers share state the harness must create or remove (a semaphore, a server):
//!    `prepare_lock` in `harness/mod.rs`, and [`LockKind::cleanup`],
//!    `LockKind::needs_server` or `LockKind::fixed_membership`;
//! 4. if it is sound only until a holder dies: `needs_kills` in `bench.rs`;
//! 5. a test: `tests/suite/broken_locks.rs` for a known-broken one, and the soundness test
//!    at the end of `kind.rs`.

mod adapt;
mod early_release;
mod flock;
mod kind;
mod lease;
mod lease_fenced;
mod lockfile;
mod none;
mod ofd;
mod posix;
mod posix_close;
pub(crate) mod posix_sem;
pub(crate) mod redis_lease;
mod renamed_store;
mod shared;
pub(crate) mod socket;
pub(crate) mod sysv;
mod toctou;

pub use adapt::{lock_fn, GuardLock, HeldByThread, LockFn};
pub use kind::{LockKind, Soundness};
pub(crate) use lease::CLOCK_FILE;
pub(crate) use shared::{
    flock_exclusive, open_lock_file, FileFlagLock, Flocked, LockContext, RecordLock, RecordLockFile,
};

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

/// A lock that buyer processes use to guard the ticket store.
///
/// Implement the three required methods for your own lock and hand it to
/// [`crate::assert_sound`]; oversell calls them from separate processes, each buyer with
/// its own value of your type. Which method runs when:
///
/// - [`attach`](Lock::attach): once per buyer process, before its first round.
/// - [`lock`](Lock::lock): under a free-running trial (`Jitter`, `Barrier`), after
///   `try_lock` found the lock busy: buyers really block in it and contend. Under a
///   controlled trial, when the harness knows nobody holds the lock, so it must return
///   at once (one that blocks there is a `hang` naming `lock()`).
/// - [`try_lock`](Lock::try_lock): first, at every acquire of a free-running trial; and
///   under a controlled trial whenever another buyer may hold the lock, retried each time
///   the schedule lets this buyer run again.
/// - [`unlock`](Lock::unlock): once after every successful `lock` or `try_lock`, after the
///   buyer wrote the store.
///
/// A panic in any of them ends that buyer: the finding (`crash`) names the method and
/// the panic's message. Guard-shaped locks (a `lock()` that returns a guard borrowing the
/// lock) need no `unsafe`: see [`GuardLock`] and [`lock_fn`].
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

    /// How long a hold lasts without renewal, for a lease (`None`: held until given
    /// back). A buyer frozen while holding notes it, so a finding can say the pause
    /// outlived the lease.
    fn lease(&self) -> Option<Duration> {
        None
    }

    /// The fencing token of the current hold, for a lock that hands one out: the buyer
    /// passes it to the store with every access, and the store refuses an older one.
    fn fence(&self) -> Option<u64> {
        None
    }

    /// Takes the lock; the returned guard gives it back when dropped.
    ///
    /// ```
    /// use oversell::{Lock, LockError};
    /// # struct Flag(bool);
    /// # impl Lock for Flag {
    /// #     fn lock(&mut self) -> Result<(), LockError> { self.0 = true; Ok(()) }
    /// #     fn try_lock(&mut self) -> Result<bool, LockError> { Ok(!std::mem::replace(&mut self.0, true)) }
    /// #     fn unlock(&mut self) -> Result<(), LockError> { self.0 = false; Ok(()) }
    /// # }
    /// let mut lock = Flag(false);
    /// let guard = lock.acquire()?;
    /// guard.release()?; // or drop it
    /// assert!(lock.try_acquire()?.is_some());
    /// # Ok::<(), LockError>(())
    /// ```
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
    fn lease(&self) -> Option<Duration> {
        (**self).lease()
    }
    fn fence(&self) -> Option<u64> {
        (**self).fence()
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
///
/// What the methods of [`Lock`](crate::Lock) return; its docs have an example.
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
    /// A token names a user's lock (`user`), which only its own test binary can run.
    UserLock {
        /// The token.
        token: String,
    },
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
            LockError::UserLock { token } => write!(
                f,
                "token names a user lock (lock `user`); replay it in its test: \
                 oversell::replay_sound(\"{token}\", MyLock) or OVERSELL_REPLAY={token} cargo test NAME"
            ),
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
