//! The protocol between the harness and a buyer process: the yield points, the control
//! bytes, how a buyer paces itself, and its orders ([`BuyerSpec`], one JSON argument).
//!
//! Both ends are the same binary, so the JSON form is private to one build; it is typed
//! all the way through, and a spec that names an unknown lock, store, pace or point is
//! an error, never a silent default. This module depends only on the values below it
//! (lock kinds, store modes), never on the harness or the buyer.

use crate::store::StoreMode;
use crate::vocab::LockKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;

pub use crate::vocab::Point;

/// Control bytes other than points.
pub mod msg {
    /// Buyer → harness: set up and waiting at the start barrier. Under a controlled
    /// schedule the buyer is then parked at `check`: the `go` that ends the barrier is
    /// the go of that first step, and the buyer's next word is the point after it.
    pub const READY: u8 = b's';
    /// Buyer → harness: the lock is busy; waiting for it.
    pub const BLOCKED: u8 = b'b';
    /// Buyer → harness: read inside the critical section (barrier mode).
    pub const HAVE_READ: u8 = b'h';
    /// Buyer → harness (free running): took the lock.
    pub const ACQUIRED: u8 = b'A';
    /// Buyer → harness (free running): gave the lock back.
    pub const RELEASED: u8 = b'R';
    /// Buyer → harness: stop me now (a stop fault); the harness sends `go` after SIGCONT.
    pub const STOP_ME: u8 = b'z';
    /// Harness → buyer: go on.
    pub const GO: u8 = b'g';
    /// Harness → buyer (controlled, at `acquire` or after `blocked`): go on, and take the
    /// lock with the blocking `lock()`: nobody holds it, so it must return at once.
    pub const GO_LOCK: u8 = b'L';
}

/// The descriptor a buyer writes its replies to when its standard input is a pipe (a
/// controlled session's buyers: a pipe each way is cheaper than one socket).
pub const REPLY_FD: i32 = 3;

/// A second copy of a wrapped buyer's control socket (one run inside a user's lock
/// command), besides standard input: a wrapper that gives its command another standard
/// input (a here-document for `sqlite3`, `psql`) keeps this one, one that closes every
/// descriptor past 2 (Python's `subprocess`) keeps standard input. High, so that no
/// shell redirection (3–9) or saved descriptor (10 and up) of the wrapper meets it.
pub const CHANNEL_FD: i32 = 1000;

/// How the buyer waits between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// Sleep the seeded jitter; the OS schedules the rest.
    Free,
    /// Free, plus: report after reading and wait until every buyer that can read has.
    Barrier,
    /// Report before every step and wait for `go`.
    Controlled,
}

/// A buyer's orders: what the harness hands a buyer process (as one JSON argument, or in
/// [`BUYER_ENV`] for a test binary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyerSpec {
    /// The lock backend (for a user's lock in a test binary: `none`, unused).
    #[serde(with = "lock_name")]
    pub lock: LockKind,
    /// The trial's private directory (store, ledger, lock files).
    pub dir: PathBuf,
    /// This buyer's index in the trial.
    pub index: u32,
    /// Microseconds to wait after the start barrier.
    pub start_us: u64,
    /// Microseconds to hold between read and write.
    pub hold_us: u64,
    /// How the store is written.
    #[serde(with = "store_name")]
    pub store: StoreMode,
    /// How the buyer waits between steps.
    pub pace: Pace,
    /// The trial's SysV semaphore, for the `sysv` backend.
    pub sem_id: Option<i32>,
    /// Run round after round (each after a `go` at the start barrier) until the harness
    /// closes the control channel: controlled schedules reuse buyer processes.
    pub reuse: bool,
    /// A kill fault: SIGKILL this buyer when it reaches this point.
    pub kill_at: Option<Point>,
    /// A stop fault: ask the harness to SIGSTOP this buyer at this point.
    pub stop_at: Option<Point>,
    /// Wait at the start barrier. A buyer run inside a user's lock command cannot: it
    /// starts only once the command holds the lock.
    pub start_barrier: bool,
    /// A kill fault kills this buyer's whole process group (a user's lock command and
    /// everything it started), as a crash of the whole subtree would.
    pub kill_group: bool,
    /// Under a syscall-level schedule: install the seccomp filter first thing (oversell's
    /// own buyer, `--granularity syscall`) and send its listener over descriptor
    /// [`FILTER_FD`], so the loader's start-up calls are not stopped one by one.
    #[serde(default)]
    pub self_filter: bool,
}

/// The descriptor on which a buyer with [`BuyerSpec::self_filter`] sends the listener of
/// the seccomp filter it installs.
pub const FILTER_FD: i32 = 4;

/// The environment variable that carries a buyer's spec into a test binary.
pub const BUYER_ENV: &str = "OVERSELL_BUYER";

impl BuyerSpec {
    /// A buyer kept across rounds (the controlled session's, the free-running pool's):
    /// it waits at the start barrier and takes each round's orders there
    /// ([`RoundOrders`]), so nothing per trial is in its spec.
    pub fn reused(
        lock: LockKind,
        dir: PathBuf,
        index: u32,
        store: StoreMode,
        pace: Pace,
        sem_id: Option<i32>,
    ) -> BuyerSpec {
        BuyerSpec {
            lock,
            dir,
            index,
            start_us: 0,
            hold_us: 0,
            store,
            pace,
            sem_id,
            reuse: true,
            kill_at: None,
            stop_at: None,
            start_barrier: true,
            kill_group: false,
            self_filter: false,
        }
    }

    /// Decodes the spec a buyer process was given.
    pub fn parse(json: &str) -> Result<BuyerSpec, String> {
        serde_json::from_str(json).map_err(|e| format!("bad buyer spec: {e}"))
    }

    /// The spec as the one JSON argument a buyer process gets.
    pub fn encode(&self) -> String {
        // A struct of plain fields and names always encodes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One round's orders for a reused free-running buyer (a pool, see `harness/pool.rs`):
/// sent right after the `go` of the start barrier, a fixed [`RoundOrders::LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundOrders {
    /// Microseconds to wait after the start barrier.
    pub start_us: u64,
    /// Microseconds to hold between read and write.
    pub hold_us: u64,
    /// A kill fault's point.
    pub kill_at: Option<Point>,
    /// A stop fault's point.
    pub stop_at: Option<Point>,
    /// `Free` or `Barrier`.
    pub pace: Pace,
}

impl RoundOrders {
    /// The size of the encoded orders.
    pub const LEN: usize = 19;
    /// The longest wait an order may ask for (start delay or hold), in microseconds.
    pub const MAX_US: u64 = 2 * crate::limits::MAX_JITTER_US;

    /// The orders as bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.start_us.to_le_bytes());
        b[8..16].copy_from_slice(&self.hold_us.to_le_bytes());
        b[16] = self.kill_at.map_or(0, Point::code);
        b[17] = self.stop_at.map_or(0, Point::code);
        b[18] = u8::from(self.pace == Pace::Barrier);
        b
    }

    /// Orders from bytes; an error names what is out of bounds.
    pub fn decode(b: &[u8; Self::LEN]) -> Result<RoundOrders, String> {
        let us = |r: std::ops::Range<usize>, what: &str| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[r]);
            let v = u64::from_le_bytes(a);
            if v > Self::MAX_US {
                return Err(format!(
                    "{what} of {v} µs is out of range (at most {})",
                    Self::MAX_US
                ));
            }
            Ok(v)
        };
        let point = |c: u8| match c {
            0 => Ok(None),
            c => Point::from_code(c)
                .map(Some)
                .ok_or_else(|| format!("unknown point code {c}")),
        };
        let pace = match b[18] {
            0 => Pace::Free,
            1 => Pace::Barrier,
            p => return Err(format!("unknown pace code {p}")),
        };
        Ok(RoundOrders {
            start_us: us(0..8, "a start delay")?,
            hold_us: us(8..16, "a hold")?,
            kill_at: point(b[16])?,
            stop_at: point(b[17])?,
            pace,
        })
    }

    /// `spec` with these orders for this round.
    pub fn apply(&self, spec: &BuyerSpec) -> BuyerSpec {
        BuyerSpec {
            start_us: self.start_us,
            hold_us: self.hold_us,
            kill_at: self.kill_at,
            stop_at: self.stop_at,
            pace: self.pace,
            ..spec.clone()
        }
    }
}

mod lock_name {
    use super::*;

    pub fn serialize<S: Serializer>(lock: &LockKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(lock.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LockKind, D::Error> {
        let name = String::deserialize(d)?;
        LockKind::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown lock {name:?}")))
    }
}

mod store_name {
    use super::*;

    pub fn serialize<S: Serializer>(store: &StoreMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(store.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StoreMode, D::Error> {
        let name = String::deserialize(d)?;
        StoreMode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown store {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BuyerSpec {
        BuyerSpec {
            lock: LockKind::Lockfile,
            dir: PathBuf::from("/tmp/x"),
            index: 3,
            start_us: 5,
            hold_us: 7,
            store: StoreMode::Atomic,
            pace: Pace::Barrier,
            sem_id: None,
            reuse: false,
            kill_at: Some(Point::Truncated),
            stop_at: None,
            start_barrier: true,
            kill_group: false,
            self_filter: false,
        }
    }

    #[test]
    fn a_spec_round_trips() {
        assert_eq!(BuyerSpec::parse(&spec().encode()), Ok(spec()));
    }

    #[test]
    fn unknown_names_are_errors_not_defaults() {
        let json = spec().encode();
        for (from, to) in [
            ("\"atomic\"", "\"atomik\""),
            ("\"truncated\"", "\"truncate\""),
            ("\"lockfile\"", "\"lockfil\""),
            ("\"barrier\"", "\"barier\""),
        ] {
            let bad = json.replace(from, to);
            assert_ne!(bad, json);
            let err = BuyerSpec::parse(&bad).expect_err(&bad);
            assert!(err.contains("unknown"), "{err}");
        }
    }

    #[test]
    fn round_orders_round_trip_and_are_bounded() {
        let o = RoundOrders {
            start_us: 12,
            hold_us: 34,
            kill_at: Some(Point::Write),
            stop_at: None,
            pace: Pace::Barrier,
        };
        assert_eq!(RoundOrders::decode(&o.encode()), Ok(o));
        let mut big = o;
        big.hold_us = RoundOrders::MAX_US + 1;
        assert!(RoundOrders::decode(&big.encode()).is_err());
        let mut bad = o.encode();
        bad[18] = 7;
        assert!(RoundOrders::decode(&bad).is_err());
    }

    #[test]
    fn points_keep_their_names_and_codes() {
        for &p in Point::ALL {
            assert_eq!(Point::parse(p.name()), Some(p));
            assert_eq!(Point::from_code(p.code()), Some(p));
        }
    }
}
