//! Assessing the figures: what each lock's cells expect, the per-lock summary, the
//! targets and the notes.

use super::{
    Aim, BenchReport, LockRow, LockSummary, Mode, Target, BROKEN_KILL, SOUND_KILL, TARGET_FIRST_MS,
    TARGET_RATIO, TARGET_SCHEDULES_PER_SEC, TARGET_SOUND_TRIALS, TARGET_STEPS_PER_SEC,
};
use crate::check::FindingKind;
use crate::lock::{LockKind, Soundness};
use std::collections::BTreeSet;

/// What a cell expects of its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Findings are the point.
    Caught,
    /// Any finding is false.
    Clean,
    /// Only `stale_lock` is expected (a lock sound until its holder dies, under kills).
    StaleOnly,
}

impl Expect {
    pub(super) fn of(lock: LockKind) -> Expect {
        match lock.soundness() {
            Soundness::Broken => Expect::Caught,
            Soundness::SoundUntilCrash => Expect::StaleOnly,
            // The bench injects no pauses: a lease must hold there.
            Soundness::Sound | Soundness::SoundUnlessPaused => Expect::Clean,
        }
    }

    /// What the lock's rows aim at, as reported.
    pub(super) fn aim(self) -> Aim {
        match self {
            Expect::Caught | Expect::StaleOnly => Aim::Caught,
            Expect::Clean => Aim::Clean,
        }
    }

    /// True when a trial with these finding kinds has a false finding.
    pub(super) fn is_false(self, kinds: &BTreeSet<FindingKind>) -> bool {
        match self {
            Expect::Caught => false,
            Expect::Clean => !kinds.is_empty(),
            Expect::StaleOnly => kinds.iter().any(|k| *k != FindingKind::StaleLock),
        }
    }
}

/// Every lock over its strategies: caught at all, best strategy, false findings.
pub(super) fn summarize(rows: &[LockRow]) -> Vec<LockSummary> {
    let mut out: Vec<LockSummary> = Vec::new();
    for row in rows {
        let i = match out.iter().position(|s| s.lock == row.lock) {
            Some(i) => i,
            None => {
                out.push(LockSummary {
                    lock: row.lock,
                    soundness: row.soundness,
                    expect: row.expect,
                    caught: false,
                    best_schedule: None,
                    best_first_ms: None,
                    best_trials_to_first: None,
                    trials: 0,
                    false_findings: row.false_findings.map(|_| 0),
                });
                out.len() - 1
            }
        };
        let s = &mut out[i];
        s.trials += row.trials;
        s.caught |= row.detected > 0;
        if let (Some(total), Some(n)) = (s.false_findings.as_mut(), row.false_findings) {
            *total += n;
        }
        if let Some(ms) = row.first_ms {
            if s.best_first_ms.is_none_or(|best| ms < best) {
                s.best_first_ms = Some(ms);
                s.best_schedule = Some(row.schedule.name());
                s.best_trials_to_first = row.trials_to_first;
            }
        }
    }
    out
}

/// The bench's targets, measured.
pub(super) fn targets(r: &BenchReport) -> Vec<Target> {
    let broken: Vec<&LockSummary> = r
        .summary
        .iter()
        .filter(|s| s.expect == Aim::Caught)
        .collect();
    let mut out = detection_targets(&broken);
    out.extend(speed_targets(r));
    let j = &r.jobs_speedup;
    if !j.rows.is_empty() {
        let least = j
            .rows
            .iter()
            .map(|r| r.speedup)
            .fold(f64::INFINITY, f64::min);
        out.push(Target {
            name: format!("jobs_speedup, each workload, 1 job vs {}", j.jobs),
            target: format!("≥ {:.1} × (with 2 jobs)", super::jobs::TARGET_SPEEDUP),
            measured: j
                .rows
                .iter()
                .map(|r| format!("{:.2} ×", r.speedup))
                .collect::<Vec<_>>()
                .join(", "),
            met: j.jobs >= 2 && least >= super::jobs::TARGET_SPEEDUP,
        });
    }
    let p = &r.paused_trial;
    if p.virtual_ms > 0.0 {
        out.push(Target {
            name: format!(
                "paused_trial: a {} ms pause, real time over virtual time",
                p.pause_ms
            ),
            target: format!("≥ {:.0} ×", super::pause::TARGET_RATIO),
            measured: format!(
                "{:.0} × ({:.0} ms vs {:.1} ms)",
                p.ratio, p.real_ms, p.virtual_ms
            ),
            met: p.ratio >= super::pause::TARGET_RATIO,
        });
    }
    out
}

/// Every broken lock caught, and soon.
fn detection_targets(broken: &[&LockSummary]) -> Vec<Target> {
    let mut out = Vec::new();
    let missed: Vec<&str> = broken
        .iter()
        .filter(|s| !s.caught)
        .map(|s| s.lock.name())
        .collect();
    out.push(Target {
        name: "every broken lock caught".into(),
        target: format!("{} of {}", broken.len(), broken.len()),
        measured: if missed.is_empty() {
            format!("{} of {}", broken.len(), broken.len())
        } else {
            format!(
                "{} of {} (missed: {})",
                broken.len() - missed.len(),
                broken.len(),
                missed.join(", ")
            )
        },
        met: missed.is_empty(),
    });
    let slow: Vec<String> = broken
        .iter()
        .filter(|s| s.best_first_ms.is_none_or(|ms| ms >= TARGET_FIRST_MS))
        .map(|s| match s.best_first_ms {
            Some(ms) => format!("{} {ms} ms", s.lock),
            None => format!("{} never", s.lock),
        })
        .collect();
    let worst = broken.iter().filter_map(|s| s.best_first_ms).max();
    out.push(Target {
        name: "median time to first finding, best strategy, each broken lock".into(),
        target: format!("< {TARGET_FIRST_MS} ms"),
        measured: if slow.is_empty() {
            format!("slowest {} ms", worst.unwrap_or(0))
        } else {
            format!("over: {}", slow.join(", "))
        },
        met: slow.is_empty(),
    });
    out
}

/// No false findings on sound locks; the speed figures against their aims.
fn speed_targets(r: &BenchReport) -> Vec<Target> {
    let mut out = Vec::new();
    let sound: Vec<&LockRow> = r
        .locks
        .iter()
        .filter(|l| l.false_findings.is_some())
        .collect();
    let sound_trials: u64 = sound.iter().map(|l| l.trials).sum();
    let false_findings: u64 = sound.iter().filter_map(|l| l.false_findings).sum();
    out.push(Target {
        name: "false findings on sound locks (kill faults included)".into(),
        target: format!("0 over ≥ {TARGET_SOUND_TRIALS} trials"),
        measured: format!("{false_findings} over {sound_trials} trials"),
        met: false_findings == 0 && sound_trials >= TARGET_SOUND_TRIALS,
    });
    let t = &r.throughput;
    out.push(Target {
        name: "jitter-mode cost per buyer (reused pool) / raw spawn-and-wait".into(),
        target: format!("≤ {TARGET_RATIO}×"),
        measured: format!(
            "{:.2}× ({:.0} µs vs {:.0} µs; fresh processes {:.2}×)",
            t.ratio, t.buyer_us, t.raw_spawn_us, t.fresh_ratio
        ),
        met: t.ratio > 0.0 && t.ratio <= TARGET_RATIO,
    });
    let c = &r.controlled;
    out.push(Target {
        name: "controlled steps per second".into(),
        target: format!("≥ {TARGET_STEPS_PER_SEC:.0}"),
        measured: format!("{:.0}", c.steps_per_sec),
        met: c.steps_per_sec >= TARGET_STEPS_PER_SEC,
    });
    out.push(Target {
        name: "two-buyer schedules per second".into(),
        target: format!("≥ {TARGET_SCHEDULES_PER_SEC:.0}"),
        measured: format!("{:.0}", c.schedules_per_sec),
        met: c.schedules_per_sec >= TARGET_SCHEDULES_PER_SEC,
    });
    out
}

/// What the numbers mean, and what could not be caught.
pub(super) fn notes(r: &BenchReport) -> Vec<String> {
    let mut out = vec![
        format!(
            "sound locks run half their trials without faults on the in-place store and \
             half with kill={SOUND_KILL} on the atomic store: a kill between truncate and \
             write tears the in-place store even under a sound lock, a real finding (a lock \
             does not make a write crash-safe), not a false one"
        ),
        format!(
            "lockfile and posix-sem fail only when a holder dies: they run with \
             kill={BROKEN_KILL}; under jitter and barrier each such finding waits out the \
             stale-lock delay (about 1.5 s), under random and pct it is immediate; for \
             lockfile any finding but stale_lock counts as false"
        ),
        "first_ms and trials_to_first are medians over seeds, counted from a fresh runner \
         (buyer processes included); a seed with no finding counts as never"
            .to_string(),
        "throughput: each round runs its trials on the reused pool (one runner across the \
         rounds, as one explore run keeps its pool), the same trials with fresh processes \
         (--fresh-processes), and as many `oversell __noop` spawns (one after another, \
         each waited for), in rotating order; figures are medians over rounds after one \
         warm-up; a trial's buyers run at once, on every core, while the raw spawns run \
         one at a time"
            .to_string(),
    ];
    let missed: Vec<String> = r
        .locks
        .iter()
        .filter(|l| l.expect == Aim::Caught && l.detected == 0)
        .map(|l| format!("{}/{}", l.lock.name(), l.schedule.name()))
        .collect();
    if !missed.is_empty() {
        out.push(format!(
            "not caught in this run: {} (see the per-lock best strategy)",
            missed.join(", ")
        ));
    }
    if r.locks
        .iter()
        .any(|l| l.lock == LockKind::Toctou && l.schedule.is_controlled())
    {
        out.push(
            "toctou's test-then-create happens inside one acquire step, so controlled \
             schedules (random, pct) at the default step granularity cannot interleave two \
             buyers inside its gap; free-running schedules catch it here, and \
             `--granularity syscall` makes the gap a schedule like any other"
                .to_string(),
        );
    }
    if r.mode == Mode::Quick {
        out.push(format!(
            "quick mode runs few trials: the {TARGET_SOUND_TRIALS}-trial target on sound \
             locks needs a full run"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_follow_soundness() {
        let stale: BTreeSet<_> = [FindingKind::StaleLock].into_iter().collect();
        let overlap: BTreeSet<_> = [FindingKind::Overlap].into_iter().collect();
        assert!(!Expect::of(LockKind::None).is_false(&overlap));
        assert!(Expect::of(LockKind::Flock).is_false(&stale));
        assert!(!Expect::of(LockKind::Lockfile).is_false(&stale));
        assert!(Expect::of(LockKind::Lockfile).is_false(&overlap));
        assert!(!Expect::of(LockKind::Flock).is_false(&BTreeSet::new()));
        assert_eq!(Expect::of(LockKind::Lockfile).aim(), Aim::Caught);
        assert_eq!(Expect::of(LockKind::Flock).aim(), Aim::Clean);
    }
}
