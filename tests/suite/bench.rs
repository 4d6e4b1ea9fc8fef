//! `bench::run` on a small budget: the report has every field the JSON report promises, every
//! broken lock is caught by some strategy, sound locks have no false findings, and the
//! measurements are positive. Speed targets are reported by the bench, never asserted.

use oversell::testing::{bench_strategies, run_bench, BenchOptions, HarnessConfig};
use oversell::LockKind;
use serde_json::Value;
use std::time::Duration;

/// The quick settings, cut down further so the test stays short.
fn small() -> BenchOptions {
    let harness = HarnessConfig::new(env!("CARGO_BIN_EXE_oversell"));
    let mut opts = BenchOptions {
        seeds: 1,
        slow_seeds: 1,
        // One free-running trial per broken cell (a lock broken only by a dead holder
        // waits out the stale-lock delay in each): the controlled cells catch them all.
        free_trials: 1,
        controlled_trials: 30,
        // Trial counts, not time, bound the detection cells: a loaded machine runs the
        // same seeded trials, only slower. Controlled cells are then deterministic.
        seed_budget: Duration::from_secs(120),
        sound_free_trials: 2,
        sound_controlled_trials: 10,
        sound_budget: Duration::from_secs(120),
        throughput_rounds: 2,
        throughput_trials: 1,
        throughput_buyers: 4,
        speed_budget: Duration::from_millis(300),
        speedup_sizes: [6, 40, 0],
        // Long enough that free running it dwarfs a controlled trial (a few ms).
        pause_ms: 500,
        ..BenchOptions::new(true, 1, harness)
    };
    // Redis locks need a server; tests/suite/redis.rs runs them where one is installed.
    opts.locks.retain(|k| !k.needs_redis());
    opts
}

fn num(v: &Value, path: &str) -> f64 {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {at}"))
}

#[test]
fn the_bench_reports_detection_and_speed() {
    let opts = small();
    let mut lines = Vec::new();
    // Trial directories go to the scratch root (`/dev/shm` where it is a writable
    // tmpfs), each removed as its trial ends. (`TMPDIR` is not set here: the tests
    // beside this one in the process make their directories by it.)
    let report = run_bench(&opts, &mut |l| lines.push(l.to_string())).expect("bench runs");
    assert!(report.interrupted.is_none());
    // Progress names each step as it starts, once; the figures are the report's, so the
    // table is not printed twice (once on stderr, once on stdout).
    let cells = opts.locks.len() * bench_strategies().len();
    assert_eq!(lines.len(), 4 + cells, "{lines:#?}");
    assert!(lines.iter().all(|l| l.starts_with("bench: ")), "{lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(" of ") || l.contains("detection")),
        "{lines:#?}"
    );

    let json: Value = serde_json::from_str(&report.to_json()).expect("JSON parses");
    for path in [
        "throughput.buyer_us",
        "throughput.raw_spawn_us",
        "throughput.ratio",
        "controlled.steps_per_sec",
        "controlled.schedules_per_sec",
        "paused_trial.virtual_ms",
        "paused_trial.real_ms",
    ] {
        assert!(num(&json, path) > 0.0, "{path} is not positive");
    }
    // The free-running trial waits its pause out; the controlled one does not.
    let pause = num(&json, "paused_trial.pause_ms");
    assert!(num(&json, "paused_trial.real_ms") >= pause, "{json}");
    assert!(num(&json, "paused_trial.virtual_ms") < pause, "{json}");
    assert_eq!(num(&json, "throughput.findings"), 0.0, "flock oversold");
    // jobs_speedup: three workloads, each the same trials on one job and on N.
    let speedup = json["jobs_speedup"]["rows"]
        .as_array()
        .expect("jobs_speedup.rows");
    assert_eq!(speedup.len(), 3, "{speedup:?}");
    for row in speedup {
        let name = row["workload"].as_str().expect("workload");
        assert!(!name.contains("differ"), "{name}");
        assert!(
            num(row, "trials") > 0.0 && num(row, "speedup") > 0.0,
            "{row}"
        );
    }

    let rows = json["locks"].as_array().expect("locks[]");
    assert_eq!(rows.len(), opts.locks.len() * bench_strategies().len());
    for row in rows {
        for key in [
            "lock",
            "schedule",
            "trials",
            "detected",
            "first_ms",
            "false_findings",
            "detection_rate",
            "trials_to_first",
        ] {
            assert!(row.get(key).is_some(), "a row lacks {key}: {row}");
        }
        assert!(row["trials"].as_u64().is_some_and(|t| t > 0), "{row}");
    }

    for lock in &opts.locks {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["lock"] == lock.name()).collect();
        let detected: u64 = mine.iter().filter_map(|r| r["detected"].as_u64()).sum();
        let expect_caught = !lock.is_sound() || *lock == LockKind::Lockfile;
        if expect_caught {
            assert!(detected > 0, "{lock} was not caught: {mine:?}");
        }
        if lock.is_sound() {
            for r in &mine {
                assert_eq!(r["false_findings"], 0, "false findings on {lock}: {r}");
            }
        } else {
            for r in &mine {
                assert!(r["false_findings"].is_null(), "{r}");
            }
        }
    }

    let summary = json["summary"].as_array().expect("summary[]");
    assert_eq!(summary.len(), opts.locks.len());
    for s in summary.iter().filter(|s| s["expect"] == "caught") {
        assert_eq!(s["caught"], true, "{s}");
        assert!(s["best_schedule"].is_string(), "{s}");
        assert!(s["best_first_ms"].is_u64(), "{s}");
    }
    assert!(json["targets"].as_array().is_some_and(|t| t.len() >= 6));

    let text = report.to_text();
    for needle in [
        "throughput",
        "ratio",
        "steps per second",
        "renamed-store",
        "targets",
    ] {
        assert!(text.contains(needle), "the text lacks {needle}:\n{text}");
    }
}
