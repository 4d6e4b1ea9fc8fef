//! `oversell explore`: many trials of racing buyers, each checked.

use super::args::{ExploreArgs, GranularityArg, ScheduleArg, StoreArg};
use super::exit::{Fail, Outcome};
use super::progress::Bar;
use super::{outputs, start_harness, validate};
use crate::explore::{self, Checked, ExploreConfig};
use crate::report::{self, Finding, Report};
use crate::scenario::{Schedule, Span, Target, TrialSpace};
use crate::store::StoreMode;
use std::time::Duration;

pub(super) fn run(a: &ExploreArgs) -> Result<Outcome, Fail> {
    if let Some(k) = &a.keep {
        validate::keep(k)?;
    }
    let space = space_of(a)?;
    validate::outputs(&a.out)?;
    let trials = a.trials.unwrap_or(match space.schedule {
        Schedule::Exhaustive { .. } => u64::MAX,
        _ if a.time_budget.is_some() => u64::MAX,
        _ => 100,
    });
    let seed = a.seed.unwrap_or_else(default_seed);
    let harness = start_harness()?
        .with_timeout(Duration::from_millis(a.timeout_ms.max(1)))
        .with_keep(a.keep.clone())
        .with_fresh(a.fresh_processes);
    let mut cfg = ExploreConfig::new(space, trials, seed, harness);
    cfg.shrink = !a.no_shrink;
    cfg.explain = !a.no_explain;
    cfg.keep_going = a.keep_going;
    cfg.reduction = !a.no_reduction;
    cfg.time_budget = a.time_budget.map(Duration::from_secs_f64);
    cfg.shard = a.shard;
    cfg.jobs = a.jobs.count();
    let searched = matches!(cfg.space.schedule, Schedule::Exhaustive { .. });
    if !a.quiet
        && searched
        && cfg.jobs > crate::explore::same_seed_jobs(&cfg.space.target, cfg.jobs)
    {
        say!(
            "--jobs {}: a whole program's schedules run one at a time under exhaustive search: \
             each draws the same random names (the trial's seed), and two at once would \
             collide where names are shared (a named semaphore in /dev/shm)",
            cfg.jobs
        );
    }
    if let Some(path) = &a.checkpoint {
        validate::output("--checkpoint", path)?;
        cfg.checkpoint =
            Some(crate::explore::checkpoint::Checkpoint::open(path, &cfg).map_err(Fail::Usage)?);
    }
    if !a.quiet {
        header(a, &cfg, trials);
    }
    let (report, drawn) = search(a, &cfg, trials)?;
    outputs::write(
        &a.out,
        &report,
        drawn.as_ref().map(|(i, c)| (*i, c)),
        a.quiet,
    )?;
    if let Some(budget) = a.time_budget.filter(|_| !a.quiet) {
        if report.interrupted.is_none()
            && report.stopped_early.is_none()
            && report.trials_run < trials
        {
            say!(
                "time budget of {budget} s spent: {} ran",
                crate::report::count(report.trials_run, "trial")
            );
        }
    }
    outputs::finish(&report, a.expect, a.quiet)
}

/// Runs the search with its progress bar; also gives the trial to draw (the first
/// failing one, else the first) when a timeline is asked for.
fn search(
    a: &ExploreArgs,
    cfg: &ExploreConfig,
    trials: u64,
) -> Result<(Report, Option<(u64, Checked)>), Fail> {
    let exhaustive = matches!(cfg.space.schedule, Schedule::Exhaustive { .. });
    let mut cfg = cfg.clone();
    let search = exhaustive.then(|| std::sync::Arc::new(Default::default()));
    cfg.search_progress.clone_from(&search);
    let mut bar = Bar::searching(trials, a.quiet, search);
    let mut drawn: Option<(u64, Checked)> = None;
    if exhaustive {
        cfg.ticks = Some(bar.counter());
    }
    let result = explore::explore(
        &cfg,
        &mut |index, checked: &Checked, findings: &[Finding]| {
            if exhaustive {
                bar.found(findings.len());
            } else {
                bar.tick(findings.len());
            }
            if !findings.is_empty() {
                bar.say(&report::trial_text(findings));
                if let Some(shrunk) = &checked.shrunk {
                    bar.say(&format!("  {shrunk}\n"));
                }
            }
            let better = match &drawn {
                None => true,
                Some((_, d)) => d.violations.is_empty() && !checked.violations.is_empty(),
            };
            if a.out.timeline.is_some() && better {
                drawn = Some((index, checked.clone()));
            }
        },
    );
    // A setup failure ends the search early: the bar goes before its line is printed.
    bar.finish();
    Ok((result?, drawn))
}

/// The space of trials the options describe, refusing combinations that mean nothing.
fn space_of(a: &ExploreArgs) -> Result<TrialSpace, Fail> {
    let mut space = TrialSpace::new(a.lock);
    space.buyers = a.buyers;
    space.tickets = a.tickets;
    space.jitter_us = (a.jitter_ms * 1000.0).round() as u64;
    space.schedule = match a.schedule.unwrap_or(ScheduleArg::Jitter) {
        ScheduleArg::Jitter => Schedule::Jitter,
        ScheduleArg::Barrier => Schedule::Barrier,
        ScheduleArg::Random => Schedule::Random,
        ScheduleArg::Pct => Schedule::Pct {
            depth: a.depth.unwrap_or(2),
        },
        ScheduleArg::Exhaustive => Schedule::Exhaustive {
            preemptions: a.preemptions.unwrap_or(2),
        },
    };
    schedule_options(a, &space.schedule)?;
    space.store = match a.store {
        StoreArg::InPlace => StoreMode::InPlace,
        StoreArg::Atomic => StoreMode::Atomic,
        StoreArg::Durable => StoreMode::Durable,
    };
    space.faults = a.faults.unwrap_or_default();
    external(a, &mut space)?;
    granularity(a, &mut space)?;
    errno_fault(a, &space)?;
    let probe = space.trial(0, 1);
    if let Some(why) = probe.crash_refused() {
        return Err(Fail::Usage(why));
    }
    clock_fault(a, &space)?;
    redis(a, &space)?;
    Ok(space)
}

/// An errno fault needs calls the harness answers one by one: a controlled schedule at
/// system-call granularity.
fn errno_fault(a: &ExploreArgs, space: &TrialSpace) -> Result<(), Fail> {
    if space.faults.errno <= 0.0 {
        return Ok(());
    }
    let controlled = matches!(
        a.schedule,
        Some(ScheduleArg::Random | ScheduleArg::Pct | ScheduleArg::Exhaustive)
    );
    if controlled && (space.target.syscall_asked() || space.target.command().is_some()) {
        return Ok(());
    }
    Err(Fail::Usage(
        "--faults errno=… needs a call the harness answers: a controlled schedule at \
         system-call granularity; accepted: --schedule random, pct or exhaustive with \
         --lock-cmd, --buyer-cmd or --granularity syscall"
            .into(),
    ))
}

/// A skew or a jump needs processes that read the harness's clock: a user's command
/// under a controlled schedule (system-call granularity).
fn clock_fault(a: &ExploreArgs, space: &TrialSpace) -> Result<(), Fail> {
    if !space.faults.on_clock() {
        return Ok(());
    }
    let controlled = matches!(
        a.schedule,
        Some(ScheduleArg::Random | ScheduleArg::Pct | ScheduleArg::Exhaustive)
    );
    if controlled && space.target.command().is_some() {
        return Ok(());
    }
    Err(Fail::Usage(
        "--faults skew=… and jump=… need processes that read oversell's clock: a user's \
         command under a controlled schedule; accepted: --schedule random, pct or \
         exhaustive with --lock-cmd, --buyer-cmd or --program"
            .into(),
    ))
}

/// `--redis URL`, and a Redis lock refused up front when no server can be had.
fn redis(a: &ExploreArgs, space: &TrialSpace) -> Result<(), Fail> {
    let needs = space
        .lock()
        .needs_redis()
        .then(|| format!("--lock {}", space.lock()));
    let names_redis = space
        .target
        .command()
        .is_some_and(|c| c.contains("{redis}"));
    if names_redis {
        if a.redis.is_some() {
            return Err(Fail::Usage(
                "--redis URL with a command that names {redis}: {redis} is the socket of a \
                 server each trial starts; accepted: one or the other"
                    .into(),
            ));
        }
        if let Err(why) = crate::harness::redis::available() {
            return Err(Fail::Usage(format!(
                "a command that names {{redis}}: {why}"
            )));
        }
    }
    let names_pg = space.target.command().is_some_and(|c| c.contains("{pg}"))
        || a.store_cmd.as_ref().is_some_and(|c| c.contains("{pg}"));
    if let Some(c) = &a.pg {
        if !names_pg {
            return Err(Fail::Usage(
                "--pg without a command that names {pg}: accepted: --pg with a --buyer-cmd, \
                 --program or --store-cmd that uses {pg}"
                    .into(),
            ));
        }
        if !c.contains('=') || c.contains("://") || c.contains('\'') {
            return Err(Fail::Usage(format!(
                "--pg '{c}' is not in libpq's key=value form; accepted: a connection string \
                 such as 'host=/var/run/postgresql user=me'"
            )));
        }
        crate::harness::postgres::use_server(c);
    }
    if names_pg {
        if let Err(why) = crate::harness::postgres::available() {
            return Err(Fail::Usage(format!("a command that names {{pg}}: {why}")));
        }
    }
    validate::redis(a.redis.as_deref(), needs.as_deref())
}

/// Options that only apply to some schedules are refused with the others.
fn schedule_options(a: &ExploreArgs, schedule: &Schedule) -> Result<(), Fail> {
    let only = |given: bool, flag: &str, wanted: &str| {
        if given {
            Err(Fail::Usage(format!(
                "{flag} with --schedule {}: it only applies to {wanted}; accepted: --schedule {wanted}",
                schedule.name()
            )))
        } else {
            Ok(())
        }
    };
    only(
        a.depth.is_some() && a.schedule != Some(ScheduleArg::Pct),
        "--depth",
        "pct",
    )?;
    let exhaustive = a.schedule == Some(ScheduleArg::Exhaustive);
    only(
        a.preemptions.is_some() && !exhaustive,
        "--preemptions",
        "exhaustive",
    )?;
    only(
        a.no_reduction && !exhaustive,
        "--no-reduction",
        "exhaustive",
    )?;
    only(
        a.checkpoint.is_some() && !exhaustive,
        "--checkpoint",
        "exhaustive",
    )?;
    Ok(())
}

/// `--lock-cmd` and `--buyer-cmd`: a user's command under test.
fn external(a: &ExploreArgs, space: &mut TrialSpace) -> Result<(), Fail> {
    if a.store_cmd.is_some() && a.buyer_cmd.is_none() {
        return Err(Fail::Usage(
            "--store-cmd without --buyer-cmd: only a buyer program keeps its tickets \
             elsewhere; accepted: --store-cmd with --buyer-cmd"
                .into(),
        ));
    }
    if let Some(t) = &a.lock_cmd {
        validate::lock_cmd(t)?;
        space.target = Target::LockCmd(t.clone());
    }
    if let Some(t) = &a.buyer_cmd {
        let store_cmd = store_cmd(a, space)?;
        if a.store_cmd.is_none() {
            validate::buyer_cmd(t)?;
        }
        if space.faults.kill > 0.0 || space.faults.stop > 0.0 {
            return Err(Fail::Usage(
                "--faults kill or stop with --buyer-cmd: oversell cannot place them inside your \
                 program; accepted: errno=P:ERRNO with --buyer-cmd, every fault with --lock or \
                 --lock-cmd"
                    .into(),
            ));
        }
        space.target = Target::BuyerCmd {
            cmd: t.clone(),
            store_cmd,
        };
    }
    if let Some(cmd) = &a.program {
        let p = validate::whole_program(
            cmd,
            a.store_file.as_deref(),
            a.store_key.as_deref(),
            a.sold.as_deref(),
        )?;
        if space.faults.kill > 0.0 || space.faults.stop > 0.0 {
            return Err(Fail::Usage(
                "--faults kill or stop with --program: oversell cannot place them inside your \
                 program; accepted: errno=P:ERRNO with --program, every fault with --lock or \
                 --lock-cmd"
                    .into(),
            ));
        }
        space.target = Target::Program(p);
        if a.schedule.is_none() {
            space.schedule = Schedule::Pct {
                depth: a.depth.unwrap_or(2),
            };
        }
        if !space.schedule.is_controlled() {
            return Err(Fail::Usage(format!(
                "--program with --schedule {}: a whole program runs only under a controlled \
                 schedule, every process at its system calls; accepted: --schedule random, pct \
                 or exhaustive",
                space.schedule.name()
            )));
        }
        if let Err(why) = crate::harness::syscall_control_available() {
            return Err(Fail::Usage(format!(
                "--program needs system calls intercepted, and they cannot be here ({why})"
            )));
        }
    }
    if space.target.command().is_some() {
        if space.schedule == Schedule::Barrier {
            return Err(Fail::Usage(
                "--schedule barrier with --lock-cmd or --buyer-cmd: a user's command cannot report \
                 its read; accepted: --schedule jitter, random, pct or exhaustive"
                    .into(),
            ));
        }
        if space.schedule.is_controlled() {
            if let Err(why) = crate::harness::syscall_control_available() {
                say!("system calls cannot be intercepted here ({why}): running free (jitter) instead");
                space.schedule = Schedule::Jitter;
            }
        } else if a.schedule.is_none() && crate::harness::syscall_control_available().is_ok() {
            // The default for a user's command: what either search finds.
            space.alternate_pct = true;
        }
    }
    Ok(())
}

/// `--store-cmd`: names its operation and tickets; runs only under a controlled schedule
/// (the syscall-level harness runs it), so it refuses the others, and a host where
/// system calls cannot be intercepted, with one line.
fn store_cmd(a: &ExploreArgs, space: &TrialSpace) -> Result<Option<String>, Fail> {
    let Some(t) = &a.store_cmd else {
        return Ok(None);
    };
    const EXAMPLE: &str = "'python3 fixtures/stores/sqlite.py {dir} {op} {tickets}'";
    for part in ["{op}", "{tickets}"] {
        if !t.contains(part) {
            return Err(Fail::Usage(format!(
                "--store-cmd '{t}' has no {part}; accepted: a command such as {EXAMPLE}"
            )));
        }
    }
    validate::quotes("--store-cmd", t, EXAMPLE)?;
    if let Some(b) = &a.buyer_cmd {
        if !["{dir}", "{store}", "{pg}", "{redis}"]
            .iter()
            .any(|p| b.contains(p))
        {
            return Err(Fail::Usage(format!(
                "--buyer-cmd '{b}' names none of {{dir}}, {{store}}, {{pg}} or {{redis}}; \
                 accepted: a command such as 'python3 fixtures/buyers/sqlite_locked.py {{dir}}'"
            )));
        }
        validate::quotes(
            "--buyer-cmd",
            b,
            "'python3 fixtures/buyers/sqlite_locked.py {dir}'",
        )?;
    }
    if !space.schedule.is_controlled() {
        return Err(Fail::Usage(format!(
            "--store-cmd with --schedule {}: the store command runs under a controlled \
             schedule only; accepted: --schedule random, pct or exhaustive",
            space.schedule.name()
        )));
    }
    if let Err(why) = crate::harness::syscall_control_available() {
        return Err(Fail::Usage(format!(
            "--store-cmd: system calls cannot be intercepted here ({why}), and the store \
             command runs under a controlled schedule only"
        )));
    }
    Ok(Some(t.clone()))
}

/// `--granularity syscall`: oversell's buyer under the syscall-level scheduler.
fn granularity(a: &ExploreArgs, space: &mut TrialSpace) -> Result<(), Fail> {
    let controlled = space.schedule.is_controlled();
    let schedule = space.schedule.name();
    let Target::Lock { lock, syscall } = &mut space.target else {
        return Ok(());
    };
    if lock.acquire_spans_calls() && controlled {
        if !a.quiet {
            say!(
                "lock {lock}: its acquire is several system calls, which oversell's own steps \
                 would keep together; its controlled schedules run at system-call granularity"
            );
        }
        *syscall = true;
    }
    if a.granularity != GranularityArg::Syscall {
        return Ok(());
    }
    if !controlled {
        return Err(Fail::Usage(format!(
            "--granularity syscall with --schedule {schedule}: only a controlled schedule has \
             yield points; accepted: --schedule random, pct or exhaustive"
        )));
    }
    match crate::harness::syscall_control_available() {
        Ok(()) => *syscall = true,
        Err(why) => {
            say!("system calls cannot be intercepted here ({why}): steps stay oversell's own")
        }
    }
    Ok(())
}

/// The line that says what the run will do.
fn header(a: &ExploreArgs, cfg: &ExploreConfig, trials: u64) {
    let what = match cfg.space.schedule {
        Schedule::Jitter if cfg.space.alternate_pct => format!(
            "controlled pct trials (depth 2) and free-running trials with jitter up to {} ms in \
             turn (--schedule picks one)",
            a.jitter_ms
        ),
        Schedule::Jitter | Schedule::Barrier => {
            format!(
                "jitter up to {} ms, schedule {}",
                a.jitter_ms,
                cfg.space.schedule.name()
            )
        }
        Schedule::Exhaustive {
            preemptions: crate::schedule::UNBOUNDED,
        } => "schedule exhaustive, any number of preemptions".to_string(),
        Schedule::Exhaustive { preemptions } => {
            format!("schedule exhaustive, ≤ {preemptions} preemptions")
        }
        Schedule::Pct { depth } => format!("schedule pct, depth {depth}"),
        Schedule::Random => "schedule random".to_string(),
    };
    let mut trials = match (trials, a.time_budget) {
        (u64::MAX, Some(b)) => format!("trials for {b} s"),
        (u64::MAX, None)
            if a.no_reduction
                || a.faults
                    .is_some_and(|f| f.kill > 0.0 || f.stop > 0.0 || f.crash > 0.0) =>
        {
            "every schedule".to_string()
        }
        (u64::MAX, None) => "one schedule per class of reorderings".to_string(),
        (n, _) => crate::report::count(n, "trial"),
    };
    if let Some((k, n)) = a.shard {
        trials.push_str(&format!(" (shard {k}/{n})"));
    }
    say!(
        "explore: lock {}, {}, {}, {what}, {trials}, seed {}",
        cfg.space.lock_label(),
        span(a.buyers, "buyer"),
        span(a.tickets, "ticket"),
        cfg.seed,
    );
    if let Schedule::Pct { depth } = cfg.space.schedule {
        // As `Trial::steps_are_calls` decides for a pct trial of this space.
        let calls = cfg.space.target.syscall_asked()
            || cfg.space.target.command().is_some()
            || cfg.space.lock().acquire_spans_calls();
        if calls {
            say!(
                "pct at system-call granularity: seeded priorities and {}, placed among each \
                 buyer's first changes of shared state; a poll repeated twice while nothing \
                 changed is put off until something does (a lock that gives up after more \
                 tries is not reached there); no bound on the chance per trial is claimed, \
                 since a program's steps are not known in advance",
                crate::report::count(u64::from(depth.saturating_sub(1)), "change point")
            );
        } else {
            say!("{}", pct_bounds(a.buyers, depth));
        }
    }
}

/// `2..16 buyers`, `3 buyers`, `1 buyer`.
fn span(s: Span, thing: &str) -> String {
    if s.lo == s.hi {
        crate::report::count(u64::from(s.lo), thing)
    } else {
        format!("{s} {thing}s")
    }
}

fn pct_bounds(buyers: Span, depth: u32) -> String {
    let k = crate::schedule::POINTS_PER_BUYER;
    format!(
        "pct: seeded priorities and {}, each placed on one of a buyer's own {k} steps, so a \
         bug that needs one buyer held back at one step is met about as often with {} as \
         with {}",
        crate::report::count(u64::from(depth.saturating_sub(1)), "change point"),
        crate::report::count(u64::from(buyers.hi), "buyer"),
        crate::report::count(u64::from(buyers.lo), "buyer"),
    )
}

fn default_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::rng::Rng::new(t ^ ((std::process::id() as u64) << 32)).next_u64() % 1_000_000
}
