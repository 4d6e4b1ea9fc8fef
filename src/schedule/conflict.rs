//! The conflict relation: which controlled steps touch the same thing, and which commute.
//! Stated here once; the partial-order reduction ([`super::Dpor`]) reads conflicts from
//! nowhere else.
//!
//! A step is what a buyer does between two yield points: parked at point `p`, told `go`,
//! it performs `p`'s action and parks at its next point. What the action touches is a
//! function of `p` and of the lock backend:
//!
//! | point | touches |
//! |---|---|
//! | `check` | reads the store (without the lock) |
//! | `acquire` | the lock: a `try_lock` that takes it, or one that fails (`blocked`) |
//! | `read` | reads the store |
//! | `write` | writes the store (truncates it in place, or writes a temp and renames) |
//! | `truncated` | writes the store |
//! | `release` | the lock |
//! | `record` | nothing shared (one ledger line) |
//!
//! Two steps conflict when both touch the lock, or both touch the store and one of them
//! writes it. So `check` conflicts with `write` (it reads without the lock); two reads
//! commute; an acquire attempt that fails and the release it waits for conflict (their
//! order decides whether it blocks), as do any two acquire attempts of which one takes
//! the lock. Two attempts that both fail commute: a failed attempt (`blocked`) changes
//! nothing, it only looks at the lock (see [`Access::blocked`]), so it conflicts only
//! with the steps that change the lock, a taking acquire and a release.
//!
//! **The ledger.** Every step appends to the ledger, and those appends commute: the
//! checker orders events by time, but its verdicts depend only on (a) each buyer's own
//! events, in program order whatever the schedule, (b) the values read and written,
//! which the store conflicts order, and (c) the order of different buyers' `acquired` and
//! `released` events (the `overlap` check), which come from lock steps, and lock steps
//! always conflict, even under `none` whose lock does nothing. With a kill fault a held
//! span ends at the dead buyer's last event, whatever step wrote it, so a trial with kill
//! faults is searched without reduction (the explorer's choice, see `explore`).
//!
//! **Locks on the store.** `posix-close` locks the store file itself (any close of it,
//! the buyer's own read included, drops the lock) and `renamed-store` locks the store's
//! inode that a write replaces; a user's lock may do anything; a lease expires with real
//! time, not with steps, and a fenced store checks the lease's number on every write. For those the lock and
//! the store are one object: every step but `record` conflicts with every other.
//!
//! A step that ends in a death conflicts with everything: a kernel lock is freed, a lock
//! file stays, the ledger ends.

use crate::vocab::{LockKind, Point};

/// What one step touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    bits: u8,
}

const READS_STORE: u8 = 1;
const WRITES_STORE: u8 = 2;
const LOCK: u8 = 4;
const EVERYTHING: u8 = 8;
/// Looks at the lock and changes nothing: an acquire attempt that found it busy.
const LOCK_TRY: u8 = 16;

impl Access {
    /// Touches nothing another buyer can see (ledger appends commute).
    pub const NOTHING: Access = Access { bits: 0 };
    /// Conflicts with every step: a death.
    pub const EVERYTHING: Access = Access { bits: EVERYTHING };

    /// What a buyer parked at `point` touches when it runs its next step under `lock`.
    pub fn at(point: Point, lock: LockKind) -> Access {
        let bits = match point {
            Point::Check | Point::Read => READS_STORE,
            Point::Write | Point::Truncated => WRITES_STORE,
            Point::Acquire | Point::Release => LOCK,
            Point::Record => 0,
        };
        if bits != 0 && merged_with_store(lock) {
            return Access {
                bits: LOCK | WRITES_STORE,
            };
        }
        Access { bits }
    }

    /// What an acquire step touched once it came back `blocked`: it found the lock busy
    /// and changed nothing. Where the lock lives on the store, or the step was no plain
    /// lock step, it stays what it was.
    pub fn blocked(self) -> Access {
        if self.bits == LOCK {
            Access { bits: LOCK_TRY }
        } else {
            self
        }
    }

    /// True when the step changes what it touches (writes the store, takes or releases
    /// the lock, or dies); false for a look.
    pub fn changes(self) -> bool {
        self.bits & (WRITES_STORE | LOCK | EVERYTHING) != 0
    }

    /// True when both touch the same object (the store, or the lock), whatever they do to
    /// it: what explaining a finding names as a step's context.
    pub fn shares(self, other: Access) -> bool {
        let store = READS_STORE | WRITES_STORE;
        let lock = LOCK | LOCK_TRY;
        let (a, b) = (self.bits, other.bits);
        (a | b) & EVERYTHING != 0 || (a & store != 0 && b & store != 0) || (a & lock != 0 && b & lock != 0)
    }

    /// True when the order of `self` and `other` can change what either does or what
    /// the checker sees.
    pub fn conflicts(self, other: Access) -> bool {
        let (a, b) = (self.bits, other.bits);
        if (a | b) & EVERYTHING != 0 {
            return true;
        }
        let store = READS_STORE | WRITES_STORE;
        let both_lock =
            a & b & LOCK != 0 || (a & LOCK != 0 && b & LOCK_TRY != 0) || (a & LOCK_TRY != 0 && b & LOCK != 0);
        let both_store = a & store != 0 && b & store != 0;
        both_lock || (both_store && (a | b) & WRITES_STORE != 0)
    }
}

/// Backends whose lock and store are taken as one object: the lock lives on the store
/// file (`posix-close`, `renamed-store`), is unknown (a user's), or its hold depends on
/// more than its steps (a lease's expiry, a Redis server's state) — by caution, which
/// only adds conflicts.
fn merged_with_store(lock: LockKind) -> bool {
    match lock {
        LockKind::None
        | LockKind::Flock
        | LockKind::Ofd
        | LockKind::Posix
        | LockKind::Lockfile
        | LockKind::Socket
        | LockKind::Sysv
        | LockKind::Toctou
        | LockKind::EarlyRelease
        | LockKind::PosixSem => false,
        LockKind::PosixClose
        | LockKind::RenamedStore
        | LockKind::User
        | LockKind::Lease
        | LockKind::LeaseFenced
        | LockKind::Redis
        | LockKind::RedisFenced => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(p: Point) -> Access {
        Access::at(p, LockKind::Flock)
    }

    #[test]
    fn the_relation_is_symmetric() {
        let all: Vec<Access> = Point::ALL
            .iter()
            .flat_map(|&p| {
                [
                    Access::at(p, LockKind::Flock),
                    Access::at(p, LockKind::PosixClose),
                ]
            })
            .chain([
                Access::NOTHING,
                Access::EVERYTHING,
                Access::at(Point::Acquire, LockKind::Flock).blocked(),
            ])
            .collect();
        for &a in &all {
            for &b in &all {
                assert_eq!(a.conflicts(b), b.conflicts(a), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn reads_commute_writes_do_not() {
        assert!(!at(Point::Check).conflicts(at(Point::Read)));
        assert!(at(Point::Check).conflicts(at(Point::Write)));
        assert!(at(Point::Read).conflicts(at(Point::Truncated)));
        assert!(at(Point::Write).conflicts(at(Point::Write)));
    }

    #[test]
    fn lock_steps_conflict_and_nothing_else_touches_the_lock() {
        assert!(at(Point::Acquire).conflicts(at(Point::Release)));
        assert!(at(Point::Acquire).conflicts(at(Point::Acquire)));
        assert!(!at(Point::Acquire).conflicts(at(Point::Read)));
        assert!(!at(Point::Release).conflicts(at(Point::Write)));
        assert!(!at(Point::Record).conflicts(at(Point::Record)));
        assert!(Access::EVERYTHING.conflicts(at(Point::Record)));
    }

    #[test]
    fn failed_attempts_commute_with_each_other_only() {
        let failed = at(Point::Acquire).blocked();
        assert!(!failed.conflicts(failed));
        assert!(failed.conflicts(at(Point::Acquire)));
        assert!(failed.conflicts(at(Point::Release)));
        assert!(!failed.conflicts(at(Point::Read)));
        assert!(!failed.conflicts(at(Point::Write)));
        assert!(failed.conflicts(Access::EVERYTHING));
        let on_store = Access::at(Point::Acquire, LockKind::PosixClose);
        assert_eq!(on_store.blocked(), on_store);
    }

    #[test]
    fn a_lock_on_the_store_is_the_store() {
        let read = Access::at(Point::Read, LockKind::PosixClose);
        let acquire = Access::at(Point::Acquire, LockKind::PosixClose);
        assert!(read.conflicts(acquire));
        assert!(read.conflicts(Access::at(Point::Check, LockKind::PosixClose)));
        assert!(!Access::at(Point::Record, LockKind::RenamedStore).conflicts(acquire));
    }
}
