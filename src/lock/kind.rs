//! What a [`LockKind`] does: opening its backend inside a buyer, cleaning up after a
//! trial, the lease it keeps. The kinds themselves, their names and how far each can be
//! trusted, are vocabulary (`vocab/lock_kind.rs`), so that values can name a lock without
//! reaching up into the backends.

use super::{
    early_release, flock, lease, lease_fenced, lockfile, none, ofd, posix, posix_close, posix_sem,
    redis_lease, renamed_store, socket, sysv, toctou, Lock, LockContext, LockError,
};
use crate::store::StoreMode;
pub use crate::vocab::{LockKind, Soundness};
use std::path::Path;

impl LockKind {
    /// `Ok` when oversell itself can run this lock; for [`LockKind::User`], the one-line
    /// error that says how to replay a user lock's token instead (`token` is quoted in it).
    pub fn replayable(self, token: &str) -> Result<(), LockError> {
        if self == LockKind::User {
            Err(user_lock_error(token))
        } else {
            Ok(())
        }
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

    /// True for a lease whose time the harness can move (its clock is
    /// [`lease::CLOCK_FILE`] in the trial directory, when there is one); false for a Redis
    /// lease, whose expiry runs on `redis-server`'s own clock.
    pub(crate) fn virtual_clock(self) -> bool {
        matches!(self, LockKind::Lease | LockKind::LeaseFenced)
    }

    /// True when the harness must start a lock server for the trial.
    pub(crate) fn needs_server(self) -> bool {
        self == LockKind::Socket
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
