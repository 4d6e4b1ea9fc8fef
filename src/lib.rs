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
//! ## Codemap
//!
//! - `cli` — argv → command; the only module that prints to stdout or picks an exit code.
//! - [`scenario`] — the [`Trial`] value and its token; the [`TrialSpace`] trials come from.
//! - [`store`] — the ticket store file. Knows nothing of locks.
//! - [`ledger`] — the append-only event log buyers write, merged into a [`History`].
//! - [`lock`] — one file per backend behind the one [`Lock`] trait.
//! - [`schedule`] — one file per controlled-schedule strategy behind [`schedule::Scheduler`].
//! - [`buyer`] — the body of a buyer process (the hidden `__buyer` subcommand).
//! - [`harness`] — the only code that spawns, signals or waits on processes.
//! - [`check`](mod@check) — pure invariants over a history and the final store. No I/O.
//! - [`explore`] — many trials, shrinking; findings gathered into a [`Report`].
//! - [`report`] — the report and its renderings: text, JSON, JUnit, timeline, merge.
//! - [`gate`] — the regression gate: tokens with the verdict each must keep.
//! - [`bench`](mod@bench) — detection power and speed, measured side by side.
//! - `sound` — [`trials`] and [`assert_sound`]: test your own [`Lock`] with proptest.
//!
//! ## Invariants
//!
//! - `check` does no I/O; `store` knows nothing of locks.
//! - Only `harness` spawns, waits on or kills processes. Every process of a trial is in
//!   the trial's process group (a user's command in one of its own) with
//!   `PR_SET_PDEATHSIG`, and the groups are killed and reaped when the trial ends,
//!   however it ends. Group leaders stay unreaped until then, so no group id is reused.
//! - The harness talks to each buyer over a Unix socket pair on the buyer's stdin, one
//!   byte per message: start barrier, blocking, the read barrier, stop faults, and under
//!   a controlled schedule every yield point. A closed socket is a dead buyer.
//! - Only `cli` prints to stdout or calls `exit` — with one exception: inside a test
//!   binary re-run as a buyer, [`check_sound`] runs the buyer and exits.
//! - The one signal sent outside `harness`: an injected kill fault under a free-running
//!   schedule, which the buyer raises on itself (and, inside a user's lock command, on
//!   its own process group) at its seeded step, exactly as a crash there would.
//! - Violations are data (`Vec<Violation>`), never errors; errors are small enums per
//!   boundary with `source()`.
//! - Every finding carries a token from which its trial is rebuilt exactly.

#[doc(hidden)]
pub mod cli;

pub mod bench;
pub mod buyer;
pub mod check;
pub mod explore;
mod faults;
pub mod gate;
pub mod harness;
pub mod ledger;
pub mod limits;
pub mod lock;
pub mod protocol;
pub mod report;
mod rng;
pub mod scenario;
pub mod schedule;
mod sound;
pub mod store;
mod token;

pub use check::{check, FindingKind, Observation, Violation};
pub use harness::HarnessConfig;
pub use ledger::History;
pub use lock::{lock_fn, Guard, GuardLock, HeldByThread, Lock, LockError, LockFn, LockKind};
pub use report::Report;
pub use scenario::{Trial, TrialSpace};
pub use sound::{
    assert_sound, check_sound, replay_sound, trials, trials_with_faults, trials_with_kills,
    Replayed, Unsound, REPLAY_ENV,
};
