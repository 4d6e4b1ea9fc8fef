//! `oversell merge`: the JSON reports of shards, combined into one run's report.

use super::args::MergeArgs;
use super::exit::{Fail, Outcome};
use super::{outputs, validate};
use crate::report;

pub(super) fn run(a: &MergeArgs) -> Result<Outcome, Fail> {
    if a.out.timeline.is_some() {
        return Err(Fail::Usage(
            "--timeline with merge: a merged report holds no ledger to draw; accepted: --json, --junit"
                .into(),
        ));
    }
    validate::outputs(&a.out)?;
    let mut reports = Vec::new();
    for p in &a.reports {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", p.display())))?;
        let r = report::merge::parse(&text).map_err(|e| {
            Fail::Usage(format!(
                "{}: {e}; accepted: JSON reports written by explore --json",
                p.display()
            ))
        })?;
        reports.push(r);
    }
    if let Some(outcome) = across(&reports) {
        if outcome != Outcome::Matched {
            return Ok(outcome);
        }
    }
    let n = reports.len();
    let exhaustive = reports.first().is_some_and(report::merge::exhaustive)
        && reports.iter().all(|r| r.shard.is_some());
    let merged = report::merge::merge(reports).map_err(|e| Fail::Usage(e.to_string()))?;
    if exhaustive {
        for v in &merged.verified {
            let line = v.line();
            let rest = line.strip_prefix("verified: ").unwrap_or(&line);
            say!("verified across {n} shards: {rest}");
        }
    }
    outputs::write(&a.out, &merged, None, false)?;
    for f in &merged.findings {
        say!(
            "trial {}: {}: {}  ({})",
            f.trial,
            f.kind,
            f.detail,
            f.replay
        );
    }
    outputs::finish(&merged, a.expect, false)
}

/// The shards of an exhaustive search: `Some(exit 1)` with a line naming the shard
/// missing or not verified; `Some(Matched)` when every shard is present and verified;
/// `None` for reports that are not shards of an exhaustive search.
fn across(reports: &[report::Report]) -> Option<Outcome> {
    if !reports.first().is_some_and(report::merge::exhaustive)
        || reports.iter().any(|r| r.shard.is_none())
    {
        return None;
    }
    let (missing, given) = report::merge::missing_shards(reports)?;
    let n = given
        .first()
        .and_then(|s| s.split_once('/'))
        .map_or(String::new(), |(_, n)| n.to_string());
    if !missing.is_empty() {
        say!(
            "not verified across {n} shards: {}",
            report::merge::missing_text(&missing, &given)
        );
        return Some(Outcome::Mismatched);
    }
    for r in reports {
        let shard = r.shard.clone().unwrap_or_default();
        let why = if let Some(f) = r.findings.first() {
            Some(format!(
                "found {} in trial {} ({})",
                f.kind, f.trial, f.replay
            ))
        } else if let Some(sig) = r.interrupted {
            Some(format!(
                "was stopped by signal {sig} before its search ended"
            ))
        } else if r.verified.is_empty() || r.verified.iter().any(|v| !v.verified) {
            Some("did not verify every shape (cut short, or an effect no step orders)".into())
        } else {
            None
        };
        if let Some(why) = why {
            say!("not verified across {n} shards: shard {shard} {why}");
            return Some(Outcome::Mismatched);
        }
    }
    Some(Outcome::Matched)
}
