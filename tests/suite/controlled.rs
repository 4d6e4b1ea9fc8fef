//! Controlled schedules: exact replay, exhaustive counts derived by hand, PCT, shrinking.

use crate::common;

use oversell::testing::{HarnessConfig, Runner, StoreMode};
use oversell::{FindingKind, LockKind, Schedule, Trial};
use std::process::Output;

use common::BIN;

fn oversell(args: &[&str]) -> Output {
    let tmp = crate::common::tempdir().expect("tempdir");
    common::oversell(tmp.path(), args)
}

fn harness() -> HarnessConfig {
    HarnessConfig::new(BIN)
}

fn json_of(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("JSON")
}

/// The first finding of `explore --lock none --schedule pct --seed 3`, shrunk.
fn shrunk_none_race() -> serde_json::Value {
    let tmp = crate::common::tempdir().expect("tempdir");
    let json = tmp.path().join("r.json");
    let out = common::oversell_command()
        .args([
            "explore",
            "--lock",
            "none",
            "--schedule",
            "pct",
            "--trials",
            "20",
            "--seed",
            "3",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .env("TMPDIR", tmp.path())
        .output()
        .expect("explore");
    assert_eq!(
        out.status.code(),
        Some(1),
        "pct must find the none race in 20 trials"
    );
    json_of(&json)["findings"][0].clone()
}

#[test]
fn pct_finds_the_race_and_shrinks_it_to_two_buyers_and_one_ticket() {
    let first = shrunk_none_race();
    assert_eq!(first["kind"], "oversold", "{first}");
    assert_eq!(first["buyers"], 2);
    assert_eq!(first["tickets"], 1);
}

#[test]
fn a_token_replays_the_identical_trace_every_time() {
    let token = shrunk_none_race()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let trial = Trial::from_token(&token).expect("token decodes");
    let h = harness();
    let mut runner = Runner::new(&h);
    let first = runner.run(&trial, None).expect("run");
    assert!(first
        .violations
        .iter()
        .any(|v| v.kind == FindingKind::Oversold));
    let trace = first.run.history.trace();
    for i in 0..49 {
        let again = runner.run(&trial, None).expect("run");
        assert_eq!(
            again.run.history.trace(),
            trace,
            "attempt {} differs",
            i + 2
        );
        assert_eq!(again.violations, first.violations);
    }
    insta::assert_snapshot!("shrunk_none_race", trace.join("\n"));

    // The command line says the same: 10 identical traces, exit 1.
    let out = oversell(&["replay", &token]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("identical trace in 10 of 10 attempts"),
        "{text}"
    );
    assert!(text.contains("reproduced in 10 of 10 attempts"), "{text}");
}

#[test]
fn a_token_that_no_longer_fits_is_an_error_not_a_pass() {
    // Two buyers of one ticket take 12 steps with no lock; a schedule that runs buyer 0
    // forty times cannot be followed.
    let out = oversell(&["replay", "ov1.none.b2.t1.j0.r1.srandom.p0x40.c718234"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("diverges"), "{err}");
    // And one that stops short.
    let out = oversell(&["replay", "ov1.none.b2.t1.j0.r1.srandom.p0x2.c7e164d"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("diverges"));
}

/// Two buyers, two tickets, atomic store, no lock: each buyer takes exactly six steps
/// (check, acquire, read, write, release, record) and never blocks. A schedule with m
/// blocks of one buyer's steps has m − 2 preemptions (the last switch is free: the buyer
/// switched from has finished). So P = 0 allows 2 schedules, P = 1 adds the 2·5 ways to
/// split one buyer's 6 steps in two around the other's (12), P = 2 adds 2·5·5 (62).
#[test]
fn exhaustive_runs_exactly_the_schedules_derived_by_hand() {
    for (p, expected) in [(0, 2), (1, 12), (2, 62)] {
        let tmp = crate::common::tempdir().expect("tempdir");
        let json = tmp.path().join("e.json");
        let p_s = p.to_string();
        let out = common::oversell_command()
            .args([
                "explore",
                "--lock",
                "none",
                "--schedule",
                "exhaustive",
                "--buyers",
                "2",
                "--tickets",
                "2",
                "--store",
                "atomic",
                "--preemptions",
                &p_s,
                "--no-reduction",
                "--keep-going",
                "--quiet",
                "--json",
            ])
            .arg(&json)
            .env("TMPDIR", tmp.path())
            .output()
            .expect("explore");
        let r = json_of(&json);
        assert_eq!(r["trials_run"], expected, "P = {p}");
        // Serial schedules are clean; every preempting one in the critical section fails.
        let failed = r["trials_failed"].as_u64().expect("count");
        if p == 0 {
            assert_eq!(failed, 0);
            assert_eq!(out.status.code(), Some(0));
        } else {
            assert!(failed > 0, "none must fail under P = {p}");
            assert_eq!(out.status.code(), Some(1));
        }
    }
}

#[test]
fn exhaustive_verifies_every_sound_lock() {
    for lock in ["flock", "ofd", "posix", "lockfile", "socket", "sysv"] {
        let out = oversell(&[
            "explore",
            "--lock",
            lock,
            "--schedule",
            "exhaustive",
            "--buyers",
            "2",
            "--tickets",
            "1",
            "--preemptions",
            "2",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{lock}: {text}");
        assert!(
            text.contains("verified: all ")
                && text.contains(" of 2 buyers, 1 ticket, ≤ 2 preemptions"),
            "{lock}: {text}"
        );
    }
}

#[test]
fn every_sound_lock_passes_300_pct_trials() {
    let h = harness();
    let mut runner = Runner::new(&h);
    for lock in LockKind::ALL
        .iter()
        .copied()
        .filter(|k| k.is_sound() && !k.needs_redis())
    {
        for i in 0..300u64 {
            let mut t = Trial::new(lock, 2 + (i % 4) as u32, (i % 3) as u32);
            t.seed = i;
            t.schedule = Schedule::Pct {
                depth: 2 + (i % 2) as u32,
            };
            if i >= 150 {
                t.store = StoreMode::Atomic;
            }
            let c = runner.run(&t, None).expect("run");
            assert!(
                c.violations.is_empty(),
                "{}: {:?}",
                c.trial.token(),
                c.violations
            );
        }
    }
}

/// `explore --lock none --schedule pct --seed 3`, without --quiet: the printed text.
fn pct_none_run(extra: &[&str]) -> (Output, serde_json::Value) {
    let tmp = crate::common::tempdir().expect("tempdir");
    let json = tmp.path().join("r.json");
    let mut args = vec![
        "explore",
        "--lock",
        "none",
        "--schedule",
        "pct",
        "--trials",
        "20",
        "--seed",
        "3",
        "--buyers",
        "2..6",
        "--tickets",
        "1..3",
        "--json",
    ];
    let path = json.to_str().expect("utf-8 path").to_string();
    args.push(&path);
    args.extend(extra);
    let out = common::oversell_command()
        .args(&args)
        .env("TMPDIR", tmp.path())
        .output()
        .expect("explore");
    (out, json_of(&json))
}

#[test]
fn explore_stops_at_the_first_failing_trial_and_says_how_it_shrank_it() {
    let (out, report) = pct_none_run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // The run ends with its first failing trial: the last one that ran.
    let first = &report["findings"][0];
    let ran = first["trial"].as_u64().expect("trial") + 1;
    assert_eq!(report["trials_run"], ran, "{text}");
    assert_eq!(report["trials_failed"], 1, "{text}");
    assert_eq!(report["stopped_early"]["after"], ran);
    assert_eq!(report["stopped_early"]["of"], 20);
    let stop = format!(
        "stopped at the first finding, after {ran} of 20 trials; --keep-going runs them all"
    );
    assert!(text.contains(&stop), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("shrunk from "))
        .unwrap_or_else(|| panic!("no shrink line in {text}"));
    let want = format!("to {} buyers, {} ticket", first["buyers"], first["tickets"]);
    assert!(line.contains(&want), "{line} / {first}");
    assert!(
        line.contains("preemption") && line.contains("runs tried)"),
        "{line}"
    );

    let (out, report) = pct_none_run(&["--keep-going"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["trials_run"], 20);
    assert!(report["trials_failed"].as_u64().expect("count") > 1);
    assert!(report.get("stopped_early").is_none(), "{report}");
}
