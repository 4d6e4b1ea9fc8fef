//! A trial planned once: everything the harness will tell the buyers and every fault it
//! will inject, derived from the [`Trial`] in one place. The trial runners only execute
//! a plan.

use crate::lock::LockKind;
use crate::protocol::{Pace, Point};
use crate::scenario::{Schedule, Target, Trial};
use crate::store::StoreMode;
use std::time::Duration;

/// One buyer's part of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BuyerPlan {
    /// Microseconds to wait after the start barrier (free-running only).
    pub start_us: u64,
    /// Microseconds to hold between read and write (free-running only).
    pub hold_us: u64,
    /// A kill fault: the buyer dies when it reaches this point.
    pub kill_at: Option<Point>,
    /// A stop fault (free-running only): stopped at this point for this many ms.
    pub stop: Option<(Point, u32)>,
    /// An errno fault (system-call granularity only): the `k`th call that can fail with
    /// this error fails with it.
    pub fail_at: Option<(u32, crate::faults::InjectedErrno)>,
    /// A skew (a user's command under a controlled schedule): its clock's rate, in
    /// thousandths.
    pub skew: Option<u32>,
    /// A jump (likewise): its wall clock steps by this many ms at its `k`th step.
    pub jump_at: Option<(u32, i32)>,
}

/// A whole trial, planned.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The lock every buyer opens (`none` inside a user's lock command).
    pub lock: LockKind,
    /// How the store is written (a lock may require one way).
    pub store: StoreMode,
    /// How the buyers pace themselves.
    pub pace: Pace,
    /// Tickets in the store at the start.
    pub tickets: u32,
    /// `--lock-cmd`: each buyer runs inside this command, which holds the lock.
    pub wrap: Option<String>,
    /// One plan per buyer, by index.
    pub buyers: Vec<BuyerPlan>,
    /// The trial has clock faults (skew, jump).
    pub clock_faults: bool,
    /// The longest pause one free-running buyer takes on purpose (start delay, hold, a
    /// stop fault): the watchdog adds it to the trial's timeout.
    pub slack: Duration,
}

impl Plan {
    /// The plan of `trial`.
    pub(crate) fn of(trial: &Trial) -> Plan {
        let pace = if matches!(trial.schedule, Schedule::Barrier) {
            Pace::Barrier
        } else if trial.schedule.is_controlled() {
            Pace::Controlled
        } else {
            Pace::Free
        };
        let buyers = (0..trial.buyers)
            .map(|b| {
                let timing = trial.plan(b);
                let faults = trial.fault_plan(b);
                BuyerPlan {
                    start_us: timing.start_us,
                    hold_us: timing.hold_us,
                    kill_at: faults.kill_at,
                    stop: faults.stop_at,
                    fail_at: faults.fail_at,
                    skew: faults.skew,
                    jump_at: faults.jump_at,
                }
            })
            .collect();
        let wrap = match &trial.target {
            Target::LockCmd(t) => Some(t.clone()),
            _ => None,
        };
        Plan {
            lock: trial.lock(),
            store: trial.lock().required_store().unwrap_or(trial.store),
            pace,
            tickets: trial.tickets,
            wrap,
            buyers,
            clock_faults: trial.faults.on_clock(),
            slack: Duration::from_micros(trial.jitter_us + trial.jitter_us / 4)
                + Duration::from_millis(u64::from(trial.faults.stop_ms)),
        }
    }
}

/// The engine that runs a trial. Decided by [`Engine::of`] and nowhere else: the one-off
/// runner ([`crate::harness::run`]) and the explorer's reusing runner both match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A controlled trial whose yield points are system calls: a user's lock or buyer
    /// command, a program, or `--granularity syscall` (`syscall/`).
    SystemCalls,
    /// A user's buyer command running free (`external.rs`).
    BuyerCommand,
    /// A controlled trial of oversell's own buyer, step by step (`controlled.rs`).
    Steps,
    /// A free-running trial on reused buyer processes (`pool.rs`).
    Pool,
    /// A free-running trial on fresh processes (`free.rs`).
    Free,
}

impl Engine {
    /// The engine of `trial` under `cfg`.
    pub fn of(trial: &Trial, cfg: &crate::harness::HarnessConfig) -> Engine {
        let controlled = trial.schedule.is_controlled();
        if trial.steps_are_calls() {
            Engine::SystemCalls
        } else if matches!(trial.target, Target::BuyerCmd { .. }) {
            Engine::BuyerCommand
        } else if controlled {
            Engine::Steps
        } else if crate::harness::pool::poolable(trial, cfg) {
            Engine::Pool
        } else {
            Engine::Free
        }
    }
}
