//! # oversell
//!
//! Finds race conditions between real operating-system processes over real locks.
//!
//! The picture is the classic multiprocessing lesson: buyer processes grab train tickets
//! from a JSON file. With a working lock nobody oversells; without one, two buyers sell
//! the same ticket. oversell runs that race as real processes, over real `flock`, `fcntl`,
//! lock-file, socket and semaphore locks, checks every trial, and prints a token that
//! replays a failing one.
//!
//! ## Test your own lock
//!
//! Implement [`Lock`] (or [`GuardLock`] for a lock that hands back a guard, or build one
//! from closures with [`lock_fn`]) and check it with proptest:
//!
//! ```no_run
//! # use oversell::{Lock, LockError};
//! # use std::path::Path;
//! # #[derive(Default)] struct MyLock;
//! # impl Lock for MyLock {
//! #     fn attach(&mut self, _: &Path) -> Result<(), LockError> { Ok(()) }
//! #     fn lock(&mut self) -> Result<(), LockError> { Ok(()) }
//! #     fn try_lock(&mut self) -> Result<bool, LockError> { Ok(true) }
//! #     fn unlock(&mut self) -> Result<(), LockError> { Ok(()) }
//! # }
//! use proptest::prelude::*;
//! proptest! {
//!     #[test]
//!     fn my_lock_is_sound(t in oversell::trials()) {
//!         oversell::assert_sound(&t, MyLock::default())?;
//!     }
//! }
//! ```
//!
//! [`trials`] yields controlled and free-running [`Trial`]s; [`trials_with_kills`] and
//! [`trials_with_faults`] add injected crashes ([`Faults`]). A failure is an [`Unsound`]
//! naming each [`Violation`] (of a [`FindingKind`]) and a token; [`replay_sound`] re-runs
//! that token's interleaving exactly, against your lock, in your test binary.
//! [`LockKind`] and [`Soundness`] name the built-in backends; [`Report`] is what the
//! command line's `--json` writes; [`TrialSpace`] and [`Schedule`] describe the trials a
//! run draws.
//!
//! ## Inside
//!
//! The code map, the layers (no module uses one above it, and there is no circle) and the
//! invariants the code keeps are in `docs/ARCHITECTURE.md` in the repository. In short:
//! only `harness` spawns, signals or waits on processes; only `cli` prints to stdout or
//! exits (but a test binary re-run as a buyer, where [`check_sound`] runs the buyer and
//! exits); `check` does no I/O; every finding carries a token that rebuilds its trial.
//!
//! Every module but [`testing`] is private: the API is the items above and
//! [`command_line`], which the `oversell` binary runs. [`testing`] re-exports the few
//! internals this crate's own tests and benches name; it is not API and changes with the
//! code inside.

// Every unsafe operation carries its own `// SAFETY:` line, inside an `unsafe fn` too.
#![deny(unsafe_op_in_unsafe_fn)]

// The public face is the re-exports below, `command_line` and `testing` (support for the
// crate's own tests and benches, not API); every other module is private, and
// `tests/suite/face.rs` fails on a `pub mod` here other than `testing`, a module declared by a
// macro, or a `#[doc(hidden)]` item.

// By layer, top-down (docs/ARCHITECTURE.md): the support of the crate's own tests; the
// front; the drivers; the runner; the buyer and its protocol; the mechanisms; the values;
// at the bottom the vocabulary and the data.
mod bench;
mod buyer;
mod check;
mod cli;
mod explore;
mod faults;
mod gate;
mod harness;
mod ledger;
mod limits;
mod lock;
mod protocol;
mod report;
mod rng;
mod scenario;
mod schedule;
mod seccomp;
mod sound;
mod store;
pub mod testing;
mod token;
mod vocab;

pub use check::{FindingKind, Violation};
pub use lock::{
    lock_fn, Guard, GuardLock, HeldByThread, Lock, LockError, LockFn, LockKind, Soundness,
};
pub use report::Report;
pub use scenario::{Faults, InjectedErrno, Schedule, Target, Trial, TrialSpace};
pub use sound::{
    assert_sound, check_sound, replay_sound, trials, trials_with_faults, trials_with_kills,
    Replayed, Unsound,
};

/// The `oversell` command line: reads the process's arguments, runs the command and
/// returns the exit status (`0` the result matched `--expect`, `1` it did not, `2` bad
/// usage or setup; the README lists them all).
/// The `oversell` binary is `std::process::exit(oversell::command_line())`.
pub fn command_line() -> i32 {
    cli::main()
}
