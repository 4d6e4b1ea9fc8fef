//! `oversell gate DIR`: every regression token replayed, every verdict judged.

use super::args::GateArgs;
use super::exit::{Fail, Outcome};
use super::start_harness;
use crate::scenario::Trial;

pub(super) fn run(a: &GateArgs) -> Result<Outcome, Fail> {
    let entries = crate::gate::load(&a.dir).map_err(|e| Fail::Usage(e.to_string()))?;
    let trials: Vec<(String, Trial)> = entries
        .iter()
        .filter_map(|e| Some((e.place(), Trial::from_token(&e.token).ok()?)))
        .collect();
    if !a.allow_cmd {
        refuse_commands(&trials)?;
    }
    for (place, t) in &trials {
        if let Some(c) = t.command() {
            let what = format!("{place}: the token's command");
            super::validate::program(&what, c, "'flock {dir}/lock {}'")?;
        }
    }
    // A Redis entry without a server is refused up front, naming the first such entry.
    let needs = trials
        .iter()
        .find(|(_, t)| t.lock().needs_redis())
        .map(|(place, t)| format!("{place}: lock {}", t.lock()));
    super::validate::redis(a.redis.as_deref(), needs.as_deref())?;
    let h = start_harness()?.with_timeout(a.timeout.duration());
    let report = crate::gate::run(&a.dir, &h, a.attempts, a.jobs.count(), &mut |o| {
        say!("{}", crate::gate::line(o));
    })?;
    say!("{}", report.summary());
    Ok(Outcome::of(report.passed()))
}

/// Without `--allow-cmd`, an entry whose token runs a shell command stops the gate.
fn refuse_commands(trials: &[(String, Trial)]) -> Result<(), Fail> {
    for (place, t) in trials {
        if t.command().is_some() {
            return Err(Fail::Usage(format!(
                "{place}: the token runs a shell command ({}); accepted: gate --allow-cmd once you trust it",
                t.lock_label()
            )));
        }
    }
    Ok(())
}
