//! `oversell replay TOKEN`: the trial a token describes, run again.

use super::args::ReplayArgs;
use super::exit::{Fail, Outcome};
use super::{outputs, start_harness, validate};
use crate::explore::verdict::{Tally, Verdict};
use crate::explore::{self, Checked};
use crate::report::{self, Report};
use crate::scenario::Trial;

pub(super) fn run(a: &ReplayArgs) -> Result<Outcome, Fail> {
    let trial = trial_of(a)?;
    validate::outputs(&a.out)?;
    let harness = start_harness()?.with_timeout(a.timeout.duration());
    say!(
        "replay: lock {}, {}, {}, schedule {}, {}",
        trial.lock_label(),
        report::count(trial.buyers, "buyer"),
        report::count(trial.tickets, "ticket"),
        trial.schedule.name(),
        report::count(a.attempts, "attempt")
    );
    let mut runs = explore::replay(&trial, a.attempts, &harness, a.jobs.count())?;
    if let Some(d) = runs
        .iter()
        .find_map(|c| c.run.schedule.as_ref().and_then(|r| r.diverged.clone()))
    {
        return Err(Fail::Usage(format!(
            "token '{}' does not fit this program: {d}",
            a.token
        )));
    }
    if a.explain {
        if let Some(c) = runs.iter_mut().find(|c| !c.violations.is_empty()) {
            c.why = explore::explain_one(c, &harness)?;
        }
    }
    let (report, verdict) = print(&trial, &runs);
    if a.explain && report.findings.is_empty() {
        say!("nothing to explain: no attempt showed a finding");
    }
    let drawn = runs
        .iter()
        .find(|c| !c.violations.is_empty())
        .or(runs.first());
    outputs::write(&a.out, &report, drawn.map(|c| (0, c)), false)?;
    Ok(match verdict {
        Verdict::Reproduced => Outcome::Mismatched,
        Verdict::Clean => Outcome::Matched,
        Verdict::Different => Outcome::Different,
    })
}

/// The token's trial, if this command may run it.
fn trial_of(a: &ReplayArgs) -> Result<Trial, Fail> {
    let trial = Trial::from_token(&a.token).map_err(|e| Fail::Usage(e.to_string()))?;
    trial
        .lock()
        .replayable(&a.token)
        .map_err(|e| Fail::Usage(e.to_string()))?;
    if let Some(t) = trial.command() {
        if !a.allow_cmd {
            return Err(Fail::Usage(format!(
                "the token runs a shell command ({}); accepted: the same replay with --allow-cmd once you trust it",
                trial.lock_label()
            )));
        }
        // Only the quotes and the program: an older token's buyer command may lack
        // `{store}` and still replay as it ran.
        validate::quotes("the token's command", t, "'flock {dir}/lock {}'")?;
        validate::program("the token's command", t, "'flock {dir}/lock {}'")?;
    }
    let needs = trial
        .lock()
        .needs_redis()
        .then(|| format!("the token's lock {}", trial.lock()));
    validate::redis(a.redis.as_deref(), needs.as_deref())?;
    if trial.schedule.is_controlled() && trial.choices.is_none() {
        return Err(Fail::Usage(format!(
            "token '{}' has a controlled schedule but no steps (.p…); accepted: a token printed by a finding",
            a.token
        )));
    }
    Ok(trial)
}

/// Prints the first failing attempt, the trace of a controlled trial and how often a
/// finding came back; gives the attempts as a report, with the verdict over them.
fn print(trial: &Trial, runs: &[Checked]) -> (Report, Verdict) {
    let mut report = Report::new(&trial.lock_label(), trial.schedule.name(), trial.seed);
    for (i, c) in runs.iter().enumerate() {
        let mut findings = trial.findings(&c.violations, i as u64);
        for f in &mut findings {
            f.why = c.why.clone();
        }
        report.trials_run += 1;
        report.elapsed_ms += c.run.elapsed.as_millis() as u64;
        if !findings.is_empty() {
            if report.trials_failed == 0 {
                say_raw!("{}", report::trial_text(&findings));
            }
            report.trials_failed += 1;
        }
        report.findings.extend(findings);
    }
    if trial.schedule.is_controlled() {
        let first = runs
            .first()
            .map(|c| c.run.history.trace())
            .unwrap_or_default();
        say!("trace ({} events):", first.len());
        for line in &first {
            say!("  {line}");
        }
        let steps = runs
            .first()
            .map(|c| c.run.history.syscalls.clone())
            .unwrap_or_default();
        if !steps.is_empty() {
            say!("system calls ({} steps):", steps.len());
            for line in &steps {
                say!("  {line}");
            }
        }
        let same = runs
            .iter()
            .filter(|c| c.run.history.trace() == first && c.run.history.syscalls == steps)
            .count();
        say!(
            "identical trace in {same} of {}",
            crate::report::count(runs.len() as u64, "attempt")
        );
        // Where the first attempt that went its own way left the first one's steps.
        let differs = runs.iter().enumerate().find_map(|(k, c)| {
            let (events, calls) = (c.run.history.trace(), &c.run.history.syscalls);
            let at = |a: &[String], b: &[String]| {
                (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
            };
            if let Some(i) = at(&calls[..], &steps[..]) {
                return Some((
                    k,
                    "system call",
                    i,
                    steps.get(i).cloned(),
                    calls.get(i).cloned(),
                ));
            }
            at(&events, &first)
                .map(|i| (k, "event", i, first.get(i).cloned(), events.get(i).cloned()))
        });
        if let Some((k, what, i, was, now)) = differs {
            let none = || "nothing".to_string();
            say!(
                "attempt {} differs from attempt 1 at {what} {}: `{}` where attempt 1 had `{}`",
                k + 1,
                i + 1,
                now.unwrap_or_else(none),
                was.unwrap_or_else(none)
            );
        }
    }
    // The kinds the token records (none for an older token: any finding counts).
    let mut tally = Tally::new(trial.found.iter().copied());
    for c in runs {
        tally.add(&c.violations.iter().map(|v| v.kind).collect());
    }
    say!("{tally}");
    (report, tally.verdict())
}
