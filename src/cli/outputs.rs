//! What a run leaves for people and CI: the report files and the closing verdict.

use super::args::{Expect, OutArgs};
use super::exit::{Fail, Outcome};
use super::write_out;
use crate::explore::Checked;
use crate::report::{self, Report};
use std::path::Path;

/// Writes the JSON, JUnit and timeline files asked for; `drawn` is the trial to draw.
/// Each file written gets a line on stdout naming where it went (not under `quiet`).
pub(super) fn write(
    out: &OutArgs,
    report: &Report,
    drawn: Option<(u64, &Checked)>,
    quiet: bool,
) -> Result<(), Fail> {
    let wrote = |what: &str, p: &Path| {
        if !quiet {
            say!("wrote the {what} to {}", p.display());
        }
    };
    if let Some(p) = &out.json {
        write_out(p, &report.to_json(), "JSON report")?;
        wrote("JSON report", p);
    }
    if let Some(p) = &out.junit {
        let xml = report::junit::junit(std::slice::from_ref(report))
            .map_err(|e| Fail::Setup(format!("cannot render the JUnit report: {e}")))?;
        write_out(p, &xml, "JUnit report")?;
        wrote("JUnit report", p);
    }
    if let Some(p) = &out.timeline {
        let Some((index, c)) = drawn else {
            return Err(Fail::Setup(format!(
                "no trial ran, so there is nothing to draw in {}",
                p.display()
            )));
        };
        write_out(p, &timeline_of(index, c, p), "timeline")?;
        wrote("timeline", p);
    }
    Ok(())
}

fn timeline_of(index: u64, c: &Checked, path: &Path) -> String {
    use report::timeline::{self, Axis, TimelineInput};
    let verdict = match c.violations.first() {
        Some(v) => v.kind.name().to_string(),
        None => "clean".to_string(),
    };
    let input = TimelineInput {
        title: format!(
            "oversell · lock {} · trial {index} · {} · {verdict} · {}",
            c.trial.lock(),
            c.trial.schedule.name(),
            c.trial.found_token(&c.violations)
        ),
        buyers: c.trial.buyers,
        history: &c.run.history,
        findings: timeline::marks(&c.violations),
        axis: if c.trial.schedule.is_controlled() {
            Axis::Steps
        } else {
            Axis::Time
        },
        race: race_of(c),
    };
    // The extension was checked before the run: .svg or .html.
    let html = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html"));
    if html {
        timeline::html(&input)
    } else {
        timeline::svg(&input)
    }
}

/// The racing pair of an explained finding, placed by when its steps were let go.
fn race_of(c: &Checked) -> Option<report::timeline::RaceMark> {
    use report::timeline::{RaceMark, RaceStep};
    let why = c.why.as_ref()?;
    let steps = &c.run.schedule.as_ref()?.steps;
    let at = |k: usize| -> Option<RaceStep> {
        let s = why.pair.get(k)?;
        Some(RaceStep {
            step: s.step,
            buyer: s.buyer,
            ns: steps.get(s.step.checked_sub(1)?)?.ns,
            what: s.what.clone(),
        })
    };
    Some(RaceMark {
        first: at(0)?,
        second: at(1)?,
        story: why.story.clone(),
    })
}

/// Prints the verified bounds, the summary and the verdict, and judges it by `expect`.
/// Quiet keeps only a `not verified:` line: a clean exit status cannot say it.
pub(super) fn finish(report: &Report, expect: Expect, quiet: bool) -> Result<Outcome, Fail> {
    for v in report.verified.iter().filter(|v| !quiet || !v.verified) {
        match &report.shard {
            // A shard's count is its parts' only: `oversell merge` adds them up.
            Some(k) => say!(
                "{}",
                v.line()
                    .replacen("verified: all", &format!("verified in shard {k}: all"), 1)
            ),
            None => say!("{}", v.line()),
        }
    }
    // A stall the second run did not repeat: no finding, and no clean verdict either.
    for u in &report.unconfirmed {
        say!("not verified: {u}");
    }
    // A search says what it met in its own line; any other run, here, when it found
    // nothing (a finding stands whatever else was met).
    if report.verified.is_empty() && report.findings.is_empty() {
        if let Some((first, rest)) = report.unseen.split_first() {
            let more = match rest.len() {
                0 => String::new(),
                k => format!(" (and {k} more)"),
            };
            say!(
                "not verified: {first}{more}: an effect no step oversell orders, so no \
                 trial took that path"
            );
        }
    }
    if let Some(sig) = report.interrupted {
        return Err(Fail::Interrupted {
            sig,
            line: Some(format!(
                "interrupted by signal {sig} after {}; their processes are gone and the report holds what ran",
                report::count(report.trials_run, "trial")
            )),
        });
    }
    let found = !report.findings.is_empty();
    let matched = match expect {
        Expect::Clean => !found,
        Expect::Violation => found,
    };
    if !quiet {
        say!("{}", report.summary());
        let unproven = !report.unconfirmed.is_empty()
            || report.verified.iter().any(|v| !v.verified)
            || (report.verified.is_empty() && !report.unseen.is_empty());
        let verdict = match (found, matched) {
            (false, true) if unproven => "no finding, but not verified (see above)",
            (false, true) => "clean, as expected",
            (true, true) => "violation found, as expected",
            (false, false) => "no violation found, but --expect violation asked for one",
            (true, false) => "violation found",
        };
        say!("result: {verdict}");
    }
    Ok(Outcome::of(matched))
}
