//! [`LockKind`]: every backend oversell ships, by name, with what it is and how far it
//! can be trusted; and `user`, the name a user's own lock goes by in tokens. What a
//! backend *does* (opening it, cleaning up after it) is `lock/kind.rs`; this file only
//! names.

use std::fmt;

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
    /// A user's own [`Lock`](crate::Lock), tested with [`crate::assert_sound`]. Tokens name it `user`;
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

    /// True when a power cut leaves nothing of the lock behind: a kernel lock freed
    /// with its dead holders, kept in no file (a crash fault's locks).
    pub fn forgotten_by_power_cut(self) -> bool {
        matches!(
            self,
            LockKind::None
                | LockKind::Flock
                | LockKind::Ofd
                | LockKind::Posix
                | LockKind::Sysv
                | LockKind::EarlyRelease
                | LockKind::PosixClose
        )
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

    /// The names of all backends, comma-separated, for error messages.
    pub fn names() -> String {
        LockKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// True when the trial needs a Redis server (`redis-server`, or `--redis URL`).
    pub fn needs_redis(self) -> bool {
        matches!(self, LockKind::Redis | LockKind::RedisFenced)
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
