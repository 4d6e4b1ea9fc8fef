//! `exhaustive`: every trial shape in the space, every schedule within the preemption
//! bound, or (the default) one schedule per class of schedules that differ only in the
//! order of independent steps ([`crate::schedule::Dpor`]; the relation is in
//! `schedule::conflict`).
//!
//! The preemption bound deepens: every shape is searched with no preemption, then with
//! at most one, and so on up to the asked bound ([`bounds`]), so a shallow bug comes
//! first; a shape is reported verified only at the full bound. Under `--keep-going`,
//! which runs every schedule, each shape is searched once, at the full bound.
//!
//! Each shape's search is split into parts by schedule prefix ([`split`]); the parts run
//! on every job (`--jobs`), are dealt out to shards (`--shard K/N`: part `p` of the whole
//! run when `p mod N = K − 1`), and are what a checkpoint remembers. Their results are
//! taken in part order, so the first finding, its index and its token do not depend on
//! how many jobs ran.
//!
//! A trial with kill or stop faults runs the plain search: a dead holder's span ends at
//! whatever step it last took, and a frozen one's lease runs out in real time; the
//! conflict relation orders neither. So does one with a crash fault: the power cut is one
//! more choice at every step (it kills every buyer and starts fresh ones), and the
//! reduction's argument does not cover a step that ends other buyers.

use super::checkpoint::{Checkpoint, Done, PartKey};
use super::jobs::{self, Flow};
use super::split::{self, Part, PartEnd, PartRun, Shared};
use super::{explained, interrupted, planned, record, shrink_or_keep, ExploreConfig, Runner};
use crate::harness::HarnessError;
use crate::report::{Finding, Report, StoppedEarly, Verified};
use crate::scenario::Trial;
use crate::schedule::UNBOUNDED;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The preemption bounds searched in turn up to `bound`: 0, 1, … `bound`, so a shallow
/// bug is met before the deep searches start; `--preemptions unbounded` deepens through
/// 0, 1 and 2 before the search without a bound.
pub(super) fn bounds(bound: u32) -> Vec<u32> {
    if bound == UNBOUNDED {
        vec![0, 1, 2, UNBOUNDED]
    } else {
        (0..=bound).collect()
    }
}

/// Where the search stands, across shapes.
struct Walk<'a> {
    cfg: &'a ExploreConfig,
    /// Runs probes, shrinks and explains, on the calling thread.
    runner: Runner<'a>,
    /// Schedules recorded so far: the next run's index.
    index: u64,
    /// Parts of the whole run met so far, by the preemptions their prefix makes (every
    /// shard counts them all): shard K of N gets each N-th of each count.
    dealt: std::collections::BTreeMap<u32, u64>,
    ran: &'a AtomicU64,
    checkpoint: Option<Checkpoint>,
    /// Set when `--trials` or the time budget cut the search short.
    cut: bool,
    /// True once the time budget is spent.
    out_of_time: &'a (dyn Fn() -> bool + Sync),
    /// When the time budget ends, if there is one.
    deadline: Option<Instant>,
}

/// How one shape's search ended.
enum Ended {
    Complete {
        schedules: u64,
        executions: Option<u64>,
        unordered: Vec<String>,
    },
    Failed,
    Cut,
}

pub(super) fn exhaustive(
    cfg: &ExploreConfig,
    bound: u32,
    report: &mut Report,
    each: &mut dyn FnMut(u64, &super::Checked, &[Finding]),
    out_of_time: &(dyn Fn() -> bool + Sync),
    deadline: Option<Instant>,
) -> Result<(), HarnessError> {
    let ran = AtomicU64::new(0);
    let mut walk = Walk {
        cfg,
        runner: Runner::new(&cfg.harness),
        index: 0,
        dealt: std::collections::BTreeMap::new(),
        ran: &ran,
        checkpoint: cfg.checkpoint.clone(),
        cut: false,
        out_of_time,
        deadline,
    };
    let result = walk.all(bound, report, each);
    if let Some(c) = &mut walk.checkpoint {
        match &result {
            // Stopped by a signal (or a failing harness): the frontier stays for a resume.
            Err(_) => c.save()?,
            Ok(()) if walk.cut => c.save()?,
            Ok(()) => c.finish()?,
        }
    }
    result
}

impl Walk<'_> {
    fn all(
        &mut self,
        bound: u32,
        report: &mut Report,
        each: &mut dyn FnMut(u64, &super::Checked, &[Finding]),
    ) -> Result<(), HarnessError> {
        let cfg = self.cfg;
        let out_of_time = self.out_of_time;
        // Deepening pays where the search stops at its first finding; `--keep-going`
        // wants every schedule once, at the full bound.
        let levels = if cfg.keep_going {
            vec![bound]
        } else {
            bounds(bound)
        };
        let mut shape_no = 0u64;
        let shapes = u64::from(cfg.space.buyers.hi - cfg.space.buyers.lo + 1)
            * u64::from(cfg.space.tickets.hi - cfg.space.tickets.lo + 1)
            * levels.len() as u64;
        if let Some(p) = &cfg.search_progress {
            p.shapes.store(shapes, Ordering::Relaxed);
        }
        for level in levels {
            for buyers in cfg.space.buyers.lo..=cfg.space.buyers.hi {
                for tickets in cfg.space.tickets.lo..=cfg.space.tickets.hi {
                    let mut trial = cfg.space.trial(cfg.seed, shape_no);
                    shape_no += 1;
                    trial.buyers = buyers;
                    trial.tickets = tickets;
                    let key = (level, buyers, tickets);
                    if let Some(t0) = same_as(cfg, &trial) {
                        // Searched already, at the same bound: every buyer finds a ticket.
                        if let Some(p) = &cfg.search_progress {
                            p.shapes_done.fetch_add(1, Ordering::Relaxed);
                        }
                        let rep = report
                            .verified
                            .iter()
                            .find(|v| v.buyers == buyers && v.tickets == t0 && level == bound)
                            .cloned();
                        if let Some(mut v) = rep {
                            v.tickets = tickets;
                            v.same_as = Some(t0);
                            v.schedules = 0;
                            v.executions = v.executions.map(|_| 0);
                            report.verified.push(v);
                        }
                        continue;
                    }
                    let shared = Shared {
                        ran: self.ran,
                        out_of_time,
                    };
                    match self.shape(&trial, key, &shared, report, each)? {
                        Ended::Failed if !cfg.keep_going => {
                            report.stopped_early = Some(StoppedEarly {
                                after: report.trials_run,
                                of: planned(cfg),
                            });
                            return Ok(());
                        }
                        Ended::Complete {
                            schedules,
                            executions,
                            unordered,
                        } if level == bound => report.verified.push(Verified {
                            buyers,
                            tickets,
                            preemptions: bound,
                            schedules,
                            executions,
                            granularity: granularity(&trial),
                            verified: unordered.is_empty(),
                            unordered,
                            same_as: None,
                            power_cut: trial.faults.crash > 0.0,
                        }),
                        Ended::Cut => {
                            self.cut = true;
                            return Ok(());
                        }
                        _ => {}
                    }
                    if self.index >= cfg.trials || out_of_time() {
                        self.cut = true;
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Searches one shape at one bound: its parts (this shard's), on every job.
    fn shape(
        &mut self,
        trial: &Trial,
        (level, buyers, tickets): (u32, u32, u32),
        shared: &Shared<'_>,
        report: &mut Report,
        each: &mut dyn FnMut(u64, &super::Checked, &[Finding]),
    ) -> Result<Ended, HarnessError> {
        let cfg = self.cfg;
        let all = split::parts(&mut self.runner, trial, level)?;
        let mut mine: Vec<(usize, &Part)> = Vec::new();
        for (p, part) in all.iter().enumerate() {
            let dealt = self.dealt.entry(part.preemptions).or_insert(0);
            if cfg.shard.is_none_or(|(k, n)| *dealt % n == k - 1) {
                mine.push((p, part));
            }
            *dealt += 1;
        }
        let key = |p: usize| PartKey {
            level,
            buyers,
            tickets,
            part: p as u64,
        };
        let done = self.checkpoint.as_ref().map(|c| c.done.clone());
        if let Some(progress) = &cfg.search_progress {
            let bound = if level == UNBOUNDED {
                "any number of preemptions".to_string()
            } else {
                format!("≤ {}", crate::report::count(level, "preemption"))
            };
            progress.start_shape(
                format!(
                    "{}, {}, {bound}",
                    crate::report::count(buyers, "buyer"),
                    crate::report::count(tickets, "ticket")
                ),
                mine.len() as u64,
            );
        }
        let work = |runner: &mut Runner<'_>, item: u64| -> PartRun {
            let (p, part) = mine[item as usize];
            if let Some(d) = done.as_ref().and_then(|d| d.get(&key(p))) {
                return d.as_run();
            }
            split::search(cfg, runner, trial, level, part, shared)
        };
        let last = |r: &PartRun| match r.end {
            PartEnd::Complete => false,
            PartEnd::Failed => !cfg.keep_going,
            PartEnd::Cut | PartEnd::Error(_) => true,
        };
        // A cap on schedules cuts the search at the same run whatever the jobs: one job.
        // And a whole program's schedules, one at a time (`same_seed_jobs`).
        let jobs = if cfg.trials == u64::MAX {
            super::same_seed_jobs(&cfg.space.target, cfg.jobs)
        } else {
            1
        };
        let mut ended = Ended::Complete {
            schedules: 0,
            executions: Some(0),
            unordered: Vec::new(),
        };
        let mut failure: Option<HarnessError> = None;
        let mut take = |item: u64, r: PartRun| -> Flow {
            let p = mine[item as usize].0;
            match self.take(key(p), r, report, each, &mut ended) {
                Ok(flow) => flow,
                Err(e) => {
                    failure = Some(e);
                    Flow::Stop
                }
            }
        };
        jobs::ordered(
            jobs,
            &cfg.harness,
            mine.len() as u64,
            &work,
            &last,
            &mut take,
        );
        if let Some(p) = &cfg.search_progress {
            p.shapes_done.fetch_add(1, Ordering::Relaxed);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(ended),
        }
    }

    /// Takes one part's result, in part order.
    fn take(
        &mut self,
        key: PartKey,
        r: PartRun,
        report: &mut Report,
        each: &mut dyn FnMut(u64, &super::Checked, &[Finding]),
        ended: &mut Ended,
    ) -> Result<Flow, HarnessError> {
        let cfg = self.cfg;
        let base = self.index;
        let mut recorded = 0u64;
        if let Some(first) = r.first.as_ref().filter(|_| base == 0) {
            each(base, first, &[]);
        }
        for (local, checked) in r.failing {
            let index = base + local;
            let mut checked = checked;
            if !cfg.keep_going {
                if cfg.shrink {
                    checked = shrink_or_keep(
                        &mut self.runner,
                        checked,
                        cfg,
                        report,
                        index,
                        each,
                        self.deadline,
                    )?;
                }
                checked = explained(&mut self.runner, checked, cfg);
            }
            record(report, index, &checked, each);
            recorded += 1;
        }
        report.trials_run += r.schedules.saturating_sub(recorded);
        if let Some(p) = &cfg.search_progress {
            p.parts_done.fetch_add(1, Ordering::Relaxed);
            p.executions
                .fetch_add(r.executions.unwrap_or(r.schedules), Ordering::Relaxed);
        }
        self.index += r.schedules;
        match r.end {
            PartEnd::Error(e) => return Err(e),
            PartEnd::Cut => {
                *ended = Ended::Cut;
                return Ok(Flow::Stop);
            }
            PartEnd::Failed if !cfg.keep_going => {
                interrupted()?;
                *ended = Ended::Failed;
                return Ok(Flow::Stop);
            }
            _ => {}
        }
        if recorded > 0 {
            *ended = Ended::Failed;
        }
        if let Ended::Complete {
            schedules,
            executions,
            unordered,
        } = ended
        {
            *schedules += r.schedules;
            *executions = executions.zip(r.executions).map(|(a, b)| a + b);
            for u in &r.unordered {
                if !unordered.contains(u) {
                    unordered.push(u.clone());
                }
            }
            if let Some(c) = &mut self.checkpoint {
                c.done.insert(
                    key,
                    Done {
                        schedules: r.schedules,
                        executions: r.executions,
                        unordered: r.unordered,
                    },
                );
                c.tick()?;
            }
        }
        Ok(Flow::Go)
    }
}

/// The ticket count of the shape `trial`'s shape is the same as, when there is one: with
/// at least as many tickets as buyers, no buyer ever finds the store empty (each sees at
/// most the others' sales taken off), so every buyer takes the same steps whatever the
/// count, and the schedules, their classes and their verdicts are those of the fewest
/// such tickets the space holds, as long as every count the store can hold is written
/// with as many digits (a write in place of a shorter number over a longer one is a
/// different write). Only oversell's own buyer at step granularity, without faults,
/// and not under `--keep-going` (which reports every shape's own findings).
fn same_as(cfg: &ExploreConfig, trial: &Trial) -> Option<u32> {
    let plain = trial.faults.is_none() && trial.command().is_none() && !trial.syscall_level();
    if !plain || cfg.keep_going {
        return None;
    }
    let b = trial.buyers;
    // The digits every count from t − b to t is written with, when they agree.
    let digits = |t: u32| {
        let d = |n: u32| n.checked_ilog10().unwrap_or(0);
        (t >= b && d(t - b) == d(t)).then(|| d(t))
    };
    let mine = digits(trial.tickets)?;
    (cfg.space.tickets.lo.max(b)..trial.tickets).find(|&t| digits(t) == Some(mine))
}

/// The yield points a verified search stepped between, as its line names them.
fn granularity(trial: &Trial) -> String {
    if trial.steps_are_calls() {
        "system-call".into()
    } else {
        "step".into()
    }
}
