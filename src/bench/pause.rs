//! `paused_trial`: what a paused lock holder costs in wall time, with the harness's
//! virtual time against real time, side by side.
//!
//! One trial of 2 buyers, each frozen for `pause_ms` ([`PAUSE_MS`]) at a seeded point (`--faults
//! stop=1:MS`): `lease` under a controlled schedule, where the frozen holder's lease runs
//! out in virtual time and the waiter takes over at once; and `flock` free running, where
//! nothing can shorten the pause (a lease free running moves its clock too, so the real
//! time side is a lock no clock governs): a real `SIGSTOP`, waited out on the clock. The
//! ratio is the second's wall time over the first's: reported, never asserted.

use crate::explore::{explore, ExploreConfig};
use crate::faults::Faults;
use crate::harness::HarnessError;
use crate::lock::LockKind;
use crate::scenario::{Schedule, Span, TrialSpace};
use serde::Serialize;
use std::time::Instant;

/// How long each buyer is frozen by default ([`super::BenchOptions::pause_ms`]).
pub const PAUSE_MS: u32 = 3_000;

/// Target: a paused trial under virtual time at least this many times cheaper.
pub const TARGET_RATIO: f64 = 100.0;

/// `paused_trial`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PausedTrial {
    /// How long each buyer was frozen, in milliseconds.
    pub pause_ms: u32,
    /// Wall time of the `lease` trial under a controlled schedule (virtual time).
    pub virtual_ms: f64,
    /// Wall time of the `flock` trial free running (real time).
    pub real_ms: f64,
    /// `real_ms / virtual_ms`.
    pub ratio: f64,
}

fn one_trial(
    opts: &super::BenchOptions,
    lock: LockKind,
    schedule: Schedule,
) -> Result<f64, HarnessError> {
    let mut space = TrialSpace::new(lock);
    space.buyers = Span::one(2);
    space.tickets = Span::one(1);
    space.schedule = schedule;
    space.faults = Faults {
        stop: 1.0,
        stop_ms: opts.pause_ms,
        ..Faults::default()
    };
    let mut cfg = ExploreConfig::new(space, 1, opts.seed, opts.harness.clone());
    cfg.keep_going = true;
    cfg.shrink = false;
    cfg.explain = false;
    cfg.jobs = 1;
    let started = Instant::now();
    let report = explore(&cfg, &mut |_, _, _| {})?;
    if let Some(sig) = report.interrupted {
        return Err(HarnessError::Interrupted(sig));
    }
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// Measures one paused trial each way.
pub fn measure(opts: &super::BenchOptions) -> Result<PausedTrial, HarnessError> {
    let virtual_ms = one_trial(opts, LockKind::Lease, Schedule::Pct { depth: 2 })?;
    let real_ms = one_trial(opts, LockKind::Flock, Schedule::Jitter)?;
    Ok(PausedTrial {
        pause_ms: opts.pause_ms,
        virtual_ms,
        real_ms,
        ratio: real_ms / virtual_ms.max(0.001),
    })
}
