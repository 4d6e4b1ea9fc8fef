//! Errno faults (`--faults errno=P:ERRNO`): one seeded call of a buyer on a trial file
//! fails with that error instead of running, answered by the seccomp listener. A buyer
//! program that ignores a failed write and reports a sale is caught, and the finding
//! names the call that failed; one that checks its writes stays clean, and is verified by
//! exhaustive search. Bad input is refused before any trial.

use crate::common;

use common::{assert_code, fixture, text};
use serde_json::Value;
use std::process::Output;

fn oversell(args: &[&str]) -> (Output, tempfile::TempDir) {
    common::oversell_fresh(args, &[])
}

fn buyer(name: &str) -> String {
    format!(
        "sh '{}' {{store}}",
        fixture(&format!("buyers/{name}")).display()
    )
}

fn run(name: &str, schedule: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let cmd = buyer(name);
    let mut args = vec![
        "explore",
        "--buyer-cmd",
        &cmd,
        "--faults",
        "errno=1:ENOSPC",
        "--schedule",
        schedule,
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--seed",
        "1",
        "--no-explain",
    ];
    args.extend_from_slice(extra);
    oversell(&args)
}

#[test]
fn a_buyer_that_ignores_a_failed_write_is_caught_and_the_failed_call_named() {
    let (out, tmp) = run(
        "write-unchecked.sh",
        "pct",
        &["--trials", "20", "--expect", "violation"],
    );
    assert_code(&out, 0, "write-unchecked.sh under ENOSPC");
    let t = text(&out);
    assert!(t.contains("injected: buyer "), "{t}");
    assert!(t.contains("failed with ENOSPC"), "{t}");
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_buyer_that_checks_its_writes_stays_clean_and_is_verified() {
    let (out, _tmp) = run("write-checked.sh", "pct", &["--trials", "30"]);
    assert_code(&out, 0, "write-checked.sh under ENOSPC, pct");
    let (out, _tmp) = run("write-checked.sh", "exhaustive", &[]);
    assert_code(&out, 0, "write-checked.sh under ENOSPC, exhaustive");
    assert!(text(&out).contains("verified: all "), "{}", text(&out));
}

#[test]
fn exhaustive_search_finds_the_ignored_write_and_its_token_replays_exactly() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let json = tmp.path().join("r.json");
    let json_arg = json.display().to_string();
    let (out, _t) = run(
        "write-unchecked.sh",
        "exhaustive",
        &["--expect", "violation", "--json", &json_arg],
    );
    assert_code(&out, 0, "write-unchecked.sh under ENOSPC, exhaustive");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    let token = report["findings"][0]["token"]
        .as_str()
        .expect("a finding's token")
        .to_string();
    assert!(token.contains(".e1000-ENOSPC."), "{token}");
    let (out, _t) = oversell(&["replay", "--allow-cmd", &token]);
    assert_code(&out, 1, "the errno finding's replay");
    let t = text(&out);
    assert!(t.contains("reproduced in 10 of 10 attempts"), "{t}");
    assert!(t.contains("identical trace in 10 of 10 attempts"), "{t}");
}

#[test]
fn errno_faults_that_cannot_be_placed_are_refused_before_any_trial() {
    let cmd = buyer("write-checked.sh");
    for (args, says) in [
        (
            vec![
                "explore",
                "--buyer-cmd",
                &cmd,
                "--faults",
                "errno=0.5:EPERM",
            ],
            "does not inject 'EPERM'",
        ),
        (
            vec!["explore", "--buyer-cmd", &cmd, "--faults", "errno=0.5"],
            "lacks :ERRNO",
        ),
        (
            vec!["explore", "--lock", "flock", "--faults", "errno=0.5:EIO"],
            "--faults errno=… needs a call the harness answers",
        ),
        (
            vec![
                "explore",
                "--buyer-cmd",
                &cmd,
                "--faults",
                "kill=0.5",
                "--schedule",
                "pct",
            ],
            "--faults kill or stop with --buyer-cmd",
        ),
    ] {
        let (out, _t) = oversell(&args);
        assert_code(&out, 2, says);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn the_timeline_marks_the_call_that_failed() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let svg = tmp.path().join("t.svg");
    let svg_arg = svg.display().to_string();
    let (out, _t) = oversell(&[
        "explore",
        "--lock",
        "flock",
        "--granularity",
        "syscall",
        "--faults",
        "errno=1:ENOSPC",
        "--schedule",
        "pct",
        "--trials",
        "10",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--seed",
        "1",
        "--no-explain",
        "--timeline",
        &svg_arg,
    ]);
    // The in-place store is truncated before it is written: a failed write leaves it
    // torn, a finding of its own.
    assert_code(&out, 1, "flock, in place, under ENOSPC");
    let picture = std::fs::read_to_string(&svg).expect("the timeline");
    assert!(picture.contains("class=\"injected-error\""), "{picture}");
    assert!(
        picture.contains("failed with ENOSPC (injected)"),
        "{picture}"
    );
}
