//! `jobs_speedup`: the same trials on one job and on N, wall time side by side.
//!
//! Three workloads, each run once with `--jobs 1` and once with `--jobs N` (N: the
//! bench's `--jobs`, by default the CPUs it may use): free-running jitter trials (mostly
//! asleep in their jitter: light on the CPU), controlled pct trials, and one exhaustive
//! shape (its parts on every job). Each keeps going past findings, neither shrinks nor
//! explains, and must count the same trials both ways; a speedup is one job's wall time
//! over N's. On a shared machine the figure is what the machine gave: it is reported,
//! never asserted.

use crate::explore::{explore, ExploreConfig};
use crate::harness::HarnessError;
use crate::lock::LockKind;
use crate::scenario::{Schedule, Span, TrialSpace};
use serde::Serialize;
use std::time::Instant;

/// Target: each workload's speedup with two jobs.
pub const TARGET_SPEEDUP: f64 = 1.7;

/// One workload on one job and on N.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpeedupRow {
    /// What ran.
    pub workload: String,
    /// Trials (schedules) run, the same on one job and on N.
    pub trials: u64,
    /// Wall time on one job.
    pub one_job_ms: u64,
    /// Wall time on N jobs.
    pub n_jobs_ms: u64,
    /// One job's time over N's.
    pub speedup: f64,
}

/// `jobs_speedup`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobsSpeedup {
    /// N.
    pub jobs: usize,
    /// One row per workload.
    pub rows: Vec<SpeedupRow>,
}

fn space(lock: LockKind, buyers: u32, tickets: u32, schedule: Schedule) -> TrialSpace {
    let mut s = TrialSpace::new(lock);
    s.buyers = Span::one(buyers);
    s.tickets = Span::one(tickets);
    s.schedule = schedule;
    s
}

/// Measures the three workloads on one job and on `jobs`.
pub fn measure(opts: &super::BenchOptions, jobs: usize) -> Result<JobsSpeedup, HarnessError> {
    let [jitter_trials, pct_trials, bound] = opts.speedup_sizes;
    let mut jitter = space(LockKind::Flock, 4, 2, Schedule::Jitter);
    jitter.jitter_us = 2_000;
    let work = [
        (
            "jitter trials (flock, 4 buyers, jitter ≤ 2 ms)",
            jitter,
            jitter_trials,
        ),
        (
            "pct trials (flock, 4 buyers, depth 3)",
            space(LockKind::Flock, 4, 2, Schedule::Pct { depth: 3 }),
            pct_trials,
        ),
        (
            "one exhaustive shape (flock, 4 buyers, 3 tickets)",
            space(
                LockKind::Flock,
                4,
                3,
                Schedule::Exhaustive {
                    preemptions: bound as u32,
                },
            ),
            u64::MAX,
        ),
    ];
    let mut out = JobsSpeedup {
        jobs,
        rows: Vec::new(),
    };
    for (name, space, trials) in work {
        let mut times = [0u64; 2];
        let mut counts = [0u64; 2];
        for (slot, n) in [1, jobs].into_iter().enumerate() {
            let mut cfg =
                ExploreConfig::new(space.clone(), trials, opts.seed, opts.harness.clone());
            cfg.keep_going = true;
            cfg.shrink = false;
            cfg.explain = false;
            cfg.jobs = n;
            let started = Instant::now();
            let report = explore(&cfg, &mut |_, _, _| {})?;
            if let Some(sig) = report.interrupted {
                return Err(HarnessError::Interrupted(sig));
            }
            times[slot] = super::measure::millis(started.elapsed());
            counts[slot] = report.trials_run;
        }
        let label = if counts[0] == counts[1] {
            name.to_string()
        } else {
            format!(
                "{name}: trial counts differ ({} vs {})",
                counts[0], counts[1]
            )
        };
        out.rows.push(SpeedupRow {
            workload: label,
            trials: counts[0],
            one_job_ms: times[0],
            n_jobs_ms: times[1],
            speedup: times[0] as f64 / (times[1].max(1)) as f64,
        });
    }
    Ok(out)
}
