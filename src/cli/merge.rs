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
    let merged = report::merge::merge(reports).map_err(|e| Fail::Usage(e.to_string()))?;
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
