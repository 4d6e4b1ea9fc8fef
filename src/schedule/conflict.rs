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
///
/// A step of our buyer touches the store as one object; a system call names what it
/// touches ([`Touch`]): each object (a name in a directory, a file, a directory's
/// listing, a file's locks) is a key hashed to one bit of a 64-bit set, so two steps on
/// different objects commute unless their keys share a bit, which only adds a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    bits: u8,
    /// Store objects looked at.
    reads: u64,
    /// Store objects changed.
    writes: u64,
    /// Store objects changed in a way that commutes with itself: an entry made or
    /// removed in a directory changes its listing, and two of them, of different names,
    /// give the same listing in either order (the names themselves are `writes`).
    adds: u64,
}

const LOCK: u8 = 4;
const EVERYTHING: u8 = 8;
/// Looks at the lock and changes nothing: an acquire attempt that found it busy.
const LOCK_TRY: u8 = 16;
/// Every object of the store: what a step of our buyer touches.
const WHOLE: u64 = u64::MAX;

/// The objects a system call touches, as keys ([`Touch::key`]); made into an
/// [`Access`] by [`Access::touching`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Touch {
    reads: u64,
    writes: u64,
    adds: u64,
}

impl Touch {
    /// The bit of object `key` (a hash of what names it).
    pub fn key(key: u64) -> u64 {
        // The high bits of a multiplicative hash: keys that differ in any bit spread.
        1u64 << ((key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as u32)
    }

    /// Looks at object `key`.
    pub fn read(&mut self, key: u64) {
        self.reads |= Touch::key(key);
    }

    /// Changes object `key`.
    pub fn write(&mut self, key: u64) {
        self.writes |= Touch::key(key);
    }

    /// Changes object `key` in a way that commutes with other such changes of it (an
    /// entry made or removed in a directory, for its listing).
    pub fn add(&mut self, key: u64) {
        self.adds |= Touch::key(key);
    }

    /// Looks at every object: a sleep, after which what a process reads of the clock
    /// may differ, orders itself before or after every change.
    pub fn read_everything(&mut self) {
        self.reads = WHOLE;
    }
}

impl Access {
    /// Touches nothing another buyer can see (ledger appends commute).
    pub const NOTHING: Access = Access {
        bits: 0,
        reads: 0,
        writes: 0,
        adds: 0,
    };
    /// Conflicts with every step: a death.
    pub const EVERYTHING: Access = Access {
        bits: EVERYTHING,
        reads: 0,
        writes: 0,
        adds: 0,
    };

    /// What a buyer parked at `point` touches when it runs its next step under `lock`.
    pub fn at(point: Point, lock: LockKind) -> Access {
        let (reads, writes, bits) = match point {
            Point::Check | Point::Read => (WHOLE, 0, 0),
            Point::Write | Point::Truncated => (0, WHOLE, 0),
            Point::Acquire | Point::Release => (0, 0, LOCK),
            Point::Record => (0, 0, 0),
        };
        if ((reads | writes) != 0 || bits != 0) && merged_with_store(lock) {
            return Access {
                bits: LOCK,
                writes: WHOLE,
                ..Access::NOTHING
            };
        }
        Access {
            bits,
            reads,
            writes,
            adds: 0,
        }
    }

    /// What a system call that names the objects it touches touches.
    pub fn touching(t: Touch) -> Access {
        Access {
            bits: 0,
            reads: t.reads,
            writes: t.writes,
            adds: t.adds,
        }
    }

    /// What an acquire step touched once it came back `blocked`: it found the lock busy
    /// and changed nothing. Where the lock lives on the store, or the step was no plain
    /// lock step, it stays what it was.
    pub fn blocked(self) -> Access {
        if self
            == (Access {
                bits: LOCK,
                ..Access::NOTHING
            })
        {
            Access {
                bits: LOCK_TRY,
                ..Access::NOTHING
            }
        } else {
            self
        }
    }

    /// True when the step changes what it touches (writes the store, takes or releases
    /// the lock, or dies); false for a look.
    pub fn changes(self) -> bool {
        self.bits & (LOCK | EVERYTHING) != 0 || (self.writes | self.adds) != 0
    }

    fn store(self) -> u64 {
        self.reads | self.writes | self.adds
    }

    /// True when both touch the same object (the store, or the lock), whatever they do to
    /// it: what explaining a finding names as a step's context.
    pub fn shares(self, other: Access) -> bool {
        let lock = LOCK | LOCK_TRY;
        let (a, b) = (self.bits, other.bits);
        (a | b) & EVERYTHING != 0
            || self.store() & other.store() != 0
            || (a & lock != 0 && b & lock != 0)
    }

    /// True when the order of `self` and `other` can change what either does or what
    /// the checker sees.
    pub fn conflicts(self, other: Access) -> bool {
        let (a, b) = (self.bits, other.bits);
        if (a | b) & EVERYTHING != 0 {
            return true;
        }
        let both_lock = a & b & LOCK != 0
            || (a & LOCK != 0 && b & LOCK_TRY != 0)
            || (a & LOCK_TRY != 0 && b & LOCK != 0);
        both_lock
            || self.writes & other.store() != 0
            || other.writes & self.store() != 0
            || self.adds & other.reads != 0
            || other.adds & self.reads != 0
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

    /// Keys far apart in hash, as the system-call steps name their objects.
    fn keyed(read: &[u64], write: &[u64], add: &[u64]) -> Access {
        let mut t = Touch::default();
        read.iter().for_each(|&k| t.read(k));
        write.iter().for_each(|&k| t.write(k));
        add.iter().for_each(|&k| t.add(k));
        Access::touching(t)
    }

    #[test]
    fn calls_on_different_objects_commute() {
        // Two keys on different bits (a collision would only add a conflict).
        let (a, b) = (1u64, 2u64);
        assert_ne!(Touch::key(a), Touch::key(b));
        assert!(!keyed(&[], &[a], &[]).conflicts(keyed(&[], &[b], &[])));
        assert!(!keyed(&[a], &[], &[]).conflicts(keyed(&[a], &[b], &[])));
        assert!(keyed(&[a], &[], &[]).conflicts(keyed(&[], &[a], &[])));
        assert!(keyed(&[], &[a], &[]).conflicts(keyed(&[], &[a], &[])));
        assert!(!keyed(&[a], &[], &[]).conflicts(keyed(&[a], &[], &[])));
    }

    #[test]
    fn entries_made_in_one_directory_commute_but_not_with_its_listing() {
        let (dir, x, y) = (7u64, 8u64, 9u64);
        let make_x = keyed(&[], &[x], &[dir]);
        let make_y = keyed(&[], &[y], &[dir]);
        assert!(!make_x.conflicts(make_y));
        assert!(make_x.conflicts(make_x));
        assert!(make_x.conflicts(keyed(&[dir], &[], &[])));
        assert!(make_x.changes() && !keyed(&[dir], &[], &[]).changes());
    }

    #[test]
    fn a_sleep_orders_itself_with_every_change_and_no_look() {
        let mut t = Touch::default();
        t.read_everything();
        let sleep = Access::touching(t);
        assert!(sleep.conflicts(keyed(&[], &[3], &[])));
        assert!(sleep.conflicts(keyed(&[], &[], &[3])));
        assert!(!sleep.conflicts(keyed(&[3], &[], &[])));
        assert!(!sleep.conflicts(sleep));
        assert!(sleep.conflicts(at(Point::Write)));
        assert!(!sleep.conflicts(at(Point::Read)));
    }

    #[test]
    fn the_keyed_relation_is_symmetric() {
        let all = [
            keyed(&[1], &[], &[]),
            keyed(&[], &[1], &[]),
            keyed(&[], &[], &[1]),
            keyed(&[2], &[1], &[3]),
            at(Point::Read),
            at(Point::Write),
            at(Point::Acquire),
            Access::EVERYTHING,
            Access::NOTHING,
        ];
        for &a in &all {
            for &b in &all {
                assert_eq!(a.conflicts(b), b.conflicts(a), "{a:?} {b:?}");
                assert_eq!(a.shares(b), b.shares(a), "{a:?} {b:?}");
            }
        }
    }
}
