//! Reports as JUnit XML, for CI systems that show test results.
//!
//! One test suite, `oversell`, holds one test case per report, named `lock/schedule`
//! (with ` seed S` added when two reports share that name). A report with findings is a
//! failure: its message is the first finding's `kind: detail`, and its text lists every
//! finding with the command that replays it. A report that ran no trial is skipped, so a
//! run that tested nothing never shows as a pass; a clean report's output carries its
//! `not verified` lines.

use super::{count, Report};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// The JUnit XML could not be written.
#[derive(Debug)]
pub struct JunitError(quick_junit::SerializeError);

impl fmt::Display for JunitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write the JUnit report: {}", self.0)
    }
}

impl std::error::Error for JunitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The name of a report's test case: `lock/schedule`.
pub fn case_name(report: &Report) -> String {
    format!("{}/{}", report.lock, report.schedule)
}

/// The failure text: every finding, each with its replay command.
fn failure_text(report: &Report) -> String {
    let mut s = String::new();
    for f in &report.findings {
        s.push_str(&format!(
            "trial {} ({}, {}): {}: {}\n  replay: {}\n",
            f.trial,
            count(f.buyers, "buyer"),
            count(f.tickets, "ticket"),
            f.kind,
            f.detail,
            f.replay
        ));
        if let Some(why) = &f.why {
            s.push_str(&format!("  why: {}\n", why.story));
        }
    }
    s
}

fn case(report: &Report, name: String) -> TestCase {
    let status = if let Some(first) = report.findings.first() {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        st.set_message(format!("{}: {}", first.kind, first.detail))
            .set_type(first.kind.name())
            .set_description(failure_text(report));
        st
    } else if report.trials_run == 0 {
        let mut st = TestCaseStatus::skipped();
        st.set_message("no trial ran");
        st
    } else {
        TestCaseStatus::success()
    };
    let mut tc = TestCase::new(name, status);
    tc.set_classname(format!("oversell.{}", report.lock))
        .set_time(Duration::from_millis(report.elapsed_ms))
        .add_properties([
            Property::new("lock", report.lock.as_str()),
            Property::new("schedule", report.schedule.as_str()),
            Property::new("seed", report.seed.to_string()),
            Property::new("trials_run", report.trials_run.to_string()),
            Property::new("trials_failed", report.trials_failed.to_string()),
            Property::new("findings", report.findings.len().to_string()),
            Property::new("version", report.version.as_str()),
        ])
        .set_system_out(system_out(report));
    tc
}

/// The summary, then every line that says what the run could not verify (a clean case is
/// not a proof then, and a reader of the CI page sees why).
fn system_out(report: &Report) -> String {
    let mut s = report.summary();
    let lines = report
        .verified
        .iter()
        .filter(|v| !v.verified)
        .map(|v| v.line())
        .chain(
            report
                .unconfirmed
                .iter()
                .map(|u| format!("not verified: {u}")),
        );
    for line in lines {
        s.push('\n');
        s.push_str(&line);
    }
    s
}

/// The reports as one JUnit XML document (suite `oversell`, one case per report).
///
/// The suite's time is the sum of the reports' elapsed times.
pub fn junit(reports: &[Report]) -> Result<String, JunitError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in reports {
        *seen.entry(case_name(r)).or_default() += 1;
    }
    let mut suite = TestSuite::new("oversell");
    let mut total_ms = 0u64;
    for r in reports {
        let base = case_name(r);
        let name = if seen.get(&base).copied().unwrap_or(0) > 1 {
            format!("{base} seed {}", r.seed)
        } else {
            base
        };
        total_ms = total_ms.saturating_add(r.elapsed_ms);
        suite.add_test_case(case(r, name));
    }
    suite.set_time(Duration::from_millis(total_ms));
    let mut doc = quick_junit::Report::new("oversell");
    doc.set_time(Duration::from_millis(total_ms));
    doc.add_test_suite(suite);
    doc.to_string().map_err(JunitError)
}
