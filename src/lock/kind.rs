//! [`LockKind`]: every backend oversell ships, by name, with what it is and how far it
//! can be trusted; and `user`, the name a user's own lock goes by in tokens.

use super::{
    early_release, flock, lease, lease_fenced, lockfile, none, ofd, posix, posix_close, posix_sem,
    redis_lease, renamed_store, socket, sysv, toctou, Lock, LockContext, LockError,
};
use crate::store::StoreMode;
use std::fmt;
use std::path::Path;

/// How far a backend can be trusted.
///
/// The verdict a [`LockKind`](crate::LockKind) is expected to earn; `oversell locks` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Soundness {
    /// Mutual exclusion holds, also when a holder is killed.
    Sound,
    /// Mutual exclusion holds while every holder lives; a killed holder leaves it taken.
    SoundUntilCrash,
    /// Not a lock at all, or a known-broken one: oversell must catch it.
    Broken,
    /// A lease: mutual exclusion holds while no holder is frozen longer than the lease.
    SoundUnlessPaused,
}

impl Soundness {
    /// The one way a verdict prints: `sound`, `sound-until-crash`, `broken` or
    /// `sound-unless-paused`. (JSON
    /// keeps its snake_case field values.)
    pub fn name(self) -> &'static str {
        match self {
            Soundness::Sound => "sound",
            Soundness::SoundUntilCrash => "sound-until-crash",
            Soundness::Broken => "broken",
            Soundness::SoundUnlessPaused => "sound-unless-paused",
        }
    }
}

impl fmt::Display for Soundness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every lock backend oversell ships, by name.
///
/// Each has a [`Soundness`](crate::Soundness); `oversell locks` lists them (see the [crate docs](crate)).
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
    /// Sound until a holder dies: a POSIX named semaphore, left taken by a dead holder.
    PosixSem,
    /// A lease file renewed by a heartbeat, taken over once expired.
    Lease,
    /// The lease with a fencing token that the store checks.
    LeaseFenced,
    /// A lease on a real Redis server: `SET NX PX`, release by compare-and-delete.
    Redis,
    /// The Redis lease with a fencing token from `INCR`, checked by the store.
    RedisFenced,
    /// A user's own [`Lock`], tested with [`crate::assert_sound`]. Tokens name it `user`;
    /// it cannot run outside the user's test binary, so it is not in [`LockKind::ALL`]
    /// and `LockKind::open` refuses it with the way to replay it.
    User,
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
        LockKind::Lease,
        LockKind::LeaseFenced,
        LockKind::Redis,
        LockKind::RedisFenced,
    ];

    /// True when the backend's acquire is several system calls with a window between
    /// them (`toctou`: a test, then a create) that oversell's own yield points cannot
    /// split: under a controlled schedule it steps at system-call granularity
    /// ([`crate::Trial::syscall_level`]).
    pub fn acquire_spans_calls(self) -> bool {
        matches!(self, LockKind::Toctou)
    }

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
            LockKind::Lease => "lease",
            LockKind::LeaseFenced => "lease-fenced",
            LockKind::Redis => "redis",
            LockKind::RedisFenced => "redis-fenced",
            LockKind::User => "user",
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
            LockKind::Lease => {
                "a lease file (owner, expiry) renewed by a heartbeat, taken over once expired; \
                 a holder frozen past the lease (500 ms) wakes up and writes anyway"
            }
            LockKind::LeaseFenced => {
                "the lease plus a fencing token per acquisition, handed to the store, which \
                 refuses a token older than one it has seen"
            }
            LockKind::Redis => {
                "a key on a real redis-server: SET NX PX 500, renewed by a heartbeat, released \
                 by compare-and-delete; a holder frozen past the lease writes anyway"
            }
            LockKind::RedisFenced => {
                "the redis lease plus a fencing token from INCR, handed to the store, which \
                 refuses a token older than one it has seen"
            }
            LockKind::User => "a user's own lock, run by assert_sound inside its test binary",
        }
    }

    /// How far the backend can be trusted.
    pub fn soundness(self) -> Soundness {
        match self {
            LockKind::None
            | LockKind::Toctou
            | LockKind::EarlyRelease
            | LockKind::PosixClose
            | LockKind::RenamedStore => Soundness::Broken,
            LockKind::Lockfile | LockKind::PosixSem => Soundness::SoundUntilCrash,
            LockKind::Lease | LockKind::Redis => Soundness::SoundUnlessPaused,
            // What `assert_sound` claims of it, and tests.
            LockKind::User
            | LockKind::Flock
            | LockKind::Ofd
            | LockKind::Posix
            | LockKind::Socket
            | LockKind::Sysv
            | LockKind::LeaseFenced
            | LockKind::RedisFenced => Soundness::Sound,
        }
    }

    /// True for backends that keep mutual exclusion while every holder lives.
    pub fn is_sound(self) -> bool {
        self.soundness() != Soundness::Broken
    }

    /// The backend named `name`, if there is one (`user` included: tokens of a user's
    /// lock decode, and [`LockKind::replayable`] says why they cannot run here).
    pub fn parse(name: &str) -> Option<LockKind> {
        LockKind::ALL
            .iter()
            .copied()
            .chain([LockKind::User])
            .find(|k| k.name() == name)
    }

    /// `Ok` when oversell itself can run this lock; for [`LockKind::User`], the one-line
    /// error that says how to replay a user lock's token instead (`token` is quoted in it).
    pub fn replayable(self, token: &str) -> Result<(), LockError> {
        if self == LockKind::User {
            Err(user_lock_error(token))
        } else {
            Ok(())
        }
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

    /// How long a hold lasts without renewal, for the lease backends.
    pub(crate) fn lease(self) -> Option<std::time::Duration> {
        match self {
            LockKind::Lease | LockKind::LeaseFenced => Some(lease::LEASE),
            LockKind::Redis | LockKind::RedisFenced => Some(redis_lease::LEASE),
            _ => None,
        }
    }

    /// True when the harness must start a lock server for the trial.
    pub(crate) fn needs_server(self) -> bool {
        self == LockKind::Socket
    }

    /// True when the trial needs a Redis server (`redis-server`, or `--redis URL`).
    pub fn needs_redis(self) -> bool {
        matches!(self, LockKind::Redis | LockKind::RedisFenced)
    }

    /// Opens this backend inside a buyer process.
    pub(crate) fn open(self, ctx: &LockContext) -> Result<Box<dyn Lock>, LockError> {
        let mut lock: Box<dyn Lock> = match self {
            LockKind::User => return Err(user_lock_error("TOKEN")),
            LockKind::None => Box::new(none::NoLock),
            LockKind::Flock => Box::new(flock::FlockLock::default()),
            LockKind::Ofd => Box::new(ofd::lock()),
            LockKind::Posix => Box::new(posix::lock()),
            LockKind::Lockfile => Box::new(lockfile::lock()),
            LockKind::Toctou => Box::new(toctou::lock()),
            LockKind::EarlyRelease => Box::new(early_release::EarlyReleaseLock::default()),
            LockKind::PosixClose => Box::new(posix_close::lock()),
            LockKind::RenamedStore => Box::new(renamed_store::RenamedStoreLock::default()),
            LockKind::PosixSem => Box::new(posix_sem::PosixSemLock::default()),
            LockKind::Socket => Box::new(socket::SocketLock::default()),
            LockKind::Lease => Box::new(lease::LeaseLock::new(false)),
            LockKind::LeaseFenced => Box::new(lease_fenced::lock()),
            LockKind::Redis => Box::new(redis_lease::RedisLock::new(false)),
            LockKind::RedisFenced => Box::new(redis_lease::RedisLock::new(true)),
            LockKind::Sysv => Box::new(sysv::SysvLock::new(ctx.sem_id.ok_or_else(|| {
                LockError::Setup("the sysv lock needs the trial's semaphore id".into())
            })?)),
        };
        lock.attach(&ctx.dir)?;
        Ok(lock)
    }
}

/// Why a `user` token cannot run outside its test, and how to replay it there.
fn user_lock_error(token: &str) -> LockError {
    LockError::UserLock {
        token: token.to_string(),
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
        assert_eq!(LockKind::parse("user"), Some(LockKind::User));
        assert!(!LockKind::ALL.contains(&LockKind::User));
        assert_eq!(Soundness::SoundUntilCrash.to_string(), "sound-until-crash");
    }

    #[test]
    fn known_broken_locks_are_marked() {
        for name in [
            "none",
            "toctou",
            "early-release",
            "posix-close",
            "renamed-store",
        ] {
            let k = LockKind::parse(name).expect(name);
            assert_eq!(k.soundness(), Soundness::Broken, "{name}");
        }
        for k in [LockKind::Lockfile, LockKind::PosixSem] {
            assert_eq!(k.soundness(), Soundness::SoundUntilCrash, "{k}");
        }
        assert_eq!(
            LockKind::RenamedStore.required_store(),
            Some(StoreMode::Atomic)
        );
        assert_eq!(LockKind::Flock.required_store(), None);
    }
}

#[cfg(test)]
mod user_tests {
    use super::*;

    #[test]
    fn a_user_lock_is_refused_with_the_way_to_replay_it() {
        let err = LockKind::User
            .replayable("ov1.user.b2")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("token names a user lock (lock `user`)"),
            "{err}"
        );
        assert!(
            err.contains("oversell::replay_sound(\"ov1.user.b2\", MyLock)"),
            "{err}"
        );
        assert!(
            err.contains("OVERSELL_REPLAY=ov1.user.b2 cargo test NAME"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        assert!(LockKind::Flock.replayable("x").is_ok());
        let ctx = LockContext {
            dir: std::env::temp_dir(),
            sem_id: None,
        };
        assert!(LockKind::User.open(&ctx).is_err());
    }
}
