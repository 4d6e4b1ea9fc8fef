//! `oversell` with no arguments (or `oversell demo`): the lesson, as a table.

use super::args::DemoArgs;
use super::exit::{Fail, Outcome};
use super::{start_harness, validate};
use crate::explore::{self, ExploreConfig};
use crate::harness::HarnessConfig;
use crate::lock::LockKind;
use crate::scenario::{Schedule, Span, TrialSpace};

pub(super) fn run(a: &DemoArgs) -> Result<Outcome, Fail> {
    // `--redis URL` serves the Redis rows; without it they need redis-server on PATH.
    validate::redis(a.redis.as_deref(), None)?;
    let harness = start_harness()?;
    say!("The lesson: 10 buyer processes race for 1 to 3 train tickets in a JSON file.");
    say!(
        "Each buyer reads the count, waits, then writes count-1; with a lock only one buyer\n\
         at a time may do that. {} trials per lock, every read made before any write where\n\
         the lock allows it (the lesson's long sleep).\n",
        a.trials
    );
    say!(
        "{:<12} {:>6} {:>9}  {:<52} replay",
        "lock",
        "trials",
        "findings",
        "example finding"
    );
    let mut ok = true;
    for &lock in LockKind::ALL
        .iter()
        .filter(|k| **k == LockKind::None || k.is_sound())
    {
        if lock.needs_redis() {
            if let Err(why) = crate::harness::redis::available() {
                say!("{:<12} skipped: {why}", lock.name());
                continue;
            }
        }
        ok &= row(a, lock, &harness)?;
    }
    say!("");
    if ok {
        say!("Without a lock the buyers oversell; every sound lock kept them honest.");
    } else {
        say!("Unexpected: a sound lock showed a finding, or no lock was not caught.");
    }
    Ok(Outcome::of(ok))
}

/// Runs one lock's trials and prints its row; true when it came out as the lesson says.
fn row(a: &DemoArgs, lock: LockKind, harness: &HarnessConfig) -> Result<bool, Fail> {
    let mut space = TrialSpace::new(lock);
    space.buyers = Span::one(10);
    space.tickets = Span { lo: 1, hi: 3 };
    space.jitter_us = 2_000;
    space.schedule = Schedule::Barrier;
    let mut cfg = ExploreConfig::new(space, a.trials, a.seed, harness.clone());
    cfg.keep_going = true;
    let report = explore::explore(&cfg, &mut |_, _, _| {})?;
    if let Some(sig) = report.interrupted {
        return Err(Fail::interrupted(sig));
    }
    let (example, replay) = match report.findings.first() {
        Some(f) => {
            let mut text = format!("{}: {}", f.kind, f.detail);
            if text.chars().count() > 52 {
                text = text.chars().take(49).collect::<String>() + "...";
            }
            (text, f.replay.clone())
        }
        None => ("-".to_string(), "-".to_string()),
    };
    say!(
        "{:<12} {:>6} {:>9}  {:<52} {}",
        lock.name(),
        report.trials_run,
        report.trials_failed,
        example,
        replay
    );
    Ok(if lock == LockKind::None {
        report.trials_failed > 0
    } else {
        report.trials_failed == 0
    })
}
