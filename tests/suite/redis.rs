//! The Redis backends against a real `redis-server` that the harness starts for each
//! trial directory. The tests that need the server run whenever `redis-server` is on
//! PATH (`.ci/run` installs it first); without it each prints one line saying it was
//! skipped and why, and passes. Pauses are placed by construction, as in
//! `tests/suite/pause.rs`; the lease is 500 ms.

use crate::common;

use oversell::testing::{Checked, HarnessConfig, Point, Runner, StoreMode};
use oversell::{FindingKind, LockKind, Schedule, Trial};
use std::process::Command;

use common::{oversell_env, BIN};

/// Two buyers, one ticket, buyer 0 stopped for `ms` at `read` (holding the lock), under
/// a non-preemptive schedule.
fn stop_buyer0_holding(lock: LockKind, ms: u32) -> Trial {
    let mut t = Trial::new(lock, 2, 1);
    t.schedule = Schedule::Exhaustive { preemptions: 0 };
    t.store = StoreMode::Atomic;
    t.faults.stop = 0.5;
    t.faults.stop_ms = ms;
    for seed in 0..100_000u64 {
        t.seed = seed;
        if t.fault_plan(0).stop_at == Some((Point::Read, ms)) && t.fault_plan(1).stop_at.is_none() {
            return t;
        }
    }
    panic!("no seed stops buyer 0 at read");
}

/// False, after one line saying the test was skipped and why, when `redis-server` is not
/// on PATH.
fn have_server(test: &str) -> bool {
    let found = oversell::testing::redis_server_on_path().is_some();
    if !found {
        // Straight to the stream: the test harness captures `eprintln!` of a passing test.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: redis-server is not on PATH (install it to run the Redis tests)"
        );
    }
    found
}

fn run(t: &Trial) -> Checked {
    let h = HarnessConfig::new(BIN);
    Runner::new(&h).run(t, None).expect("run")
}

/// Pids of live `redis-server` processes whose run mark names harness `pid`.
fn servers_of(pid: u32) -> Vec<u32> {
    let mark = format!("OVERSELL_RUN={pid}-");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let marked = env
            .split(|&b| b == 0)
            .any(|kv| kv.starts_with(mark.as_bytes()));
        if comm.trim() == "redis-server" && marked {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_redis_holder_frozen_past_its_lease_is_an_overlap() {
    if !have_server("a_redis_holder_frozen_past_its_lease_is_an_overlap") {
        return;
    }
    let c = run(&stop_buyer0_holding(LockKind::Redis, 700));
    let overlap = c
        .violations
        .iter()
        .find(|v| v.kind == FindingKind::Overlap)
        .unwrap_or_else(|| panic!("no overlap: {:?}", c.violations));
    assert!(
        overlap
            .detail
            .contains("buyer 0 was frozen for 700 ms while holding, past its lease of 500 ms"),
        "{}",
        overlap.detail
    );
    let again = run(&Trial::from_token(&c.trial.token()).expect("token"));
    assert_eq!(again.run.history.trace(), c.run.history.trace());
}

#[test]
fn redis_fenced_refuses_the_frozen_holder_and_a_short_pause_is_no_finding() {
    if !have_server("redis_fenced_refuses_the_frozen_holder_and_a_short_pause_is_no_finding") {
        return;
    }
    let c = run(&stop_buyer0_holding(LockKind::RedisFenced, 700));
    assert!(c.violations.is_empty(), "{:?}", c.violations);
    let trace = c.run.history.trace();
    assert!(
        trace.iter().any(|l| l == "buyer 0 error fenced"),
        "{trace:#?}"
    );
    for lock in [LockKind::Redis, LockKind::RedisFenced] {
        let c = run(&stop_buyer0_holding(lock, 100));
        assert!(c.violations.is_empty(), "{lock}: {:?}", c.violations);
    }
}

#[test]
fn explore_starts_and_stops_its_servers() {
    if !have_server("explore_starts_and_stops_its_servers") {
        return;
    }
    let tmp = crate::common::tempdir().expect("tempdir");
    for (lock, expect) in [("redis", "violation"), ("redis-fenced", "clean")] {
        let child = common::oversell_command()
            .args([
                "explore",
                "--lock",
                lock,
                "--schedule",
                "pct",
                "--seed",
                "7",
            ])
            .args([
                "--faults",
                "stop=0.5:700",
                "--buyers",
                "2..4",
                "--tickets",
                "1",
            ])
            .args(["--trials", "30", "--quiet", "--expect", expect])
            .env("TMPDIR", tmp.path())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{lock}");
        assert_eq!(servers_of(pid), Vec::<u32>::new(), "{lock}: servers left");
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_redis_lock_without_a_server_is_refused_before_any_trial() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let out = oversell_env(
        tmp.path(),
        &["explore", "--lock", "redis-fenced", "--trials", "1"],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("redis-server is not on PATH") && err.contains("--redis URL"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_committed_redis_gate_entries_keep_their_verdicts() {
    if !have_server("the_committed_redis_gate_entries_keep_their_verdicts") {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/regressions/redis");
    let h = HarnessConfig::new(BIN);
    let report = oversell::testing::run_gate(&dir, &h, 2, 1, &mut |_| {}).expect("gate runs");
    assert_eq!(report.outcomes.len(), 5, "{}", report.lines().join("\n"));
    assert!(report.passed(), "{}", report.lines().join("\n"));
}

#[test]
fn demo_runs_its_redis_rows_on_the_server_named_by_redis() {
    let Some(server) = oversell::testing::redis_server_on_path() else {
        have_server("demo_runs_its_redis_rows_on_the_server_named_by_redis");
        return;
    };
    let tmp = crate::common::tempdir().expect("tempdir");
    let sock = tmp.path().join("r.sock");
    let mut child = Command::new(server)
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocket",
        ])
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let started = std::time::Instant::now();
    while !sock.exists() && started.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("redis+unix://{}", sock.display());
    // No redis-server on PATH: only --redis can serve the Redis rows.
    let run = crate::common::tempdir().expect("tempdir");
    let out = oversell_env(
        run.path(),
        &["demo", "--trials", "1", "--redis", &url],
        &[("PATH", "/nonexistent")],
    );
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for lock in ["redis ", "redis-fenced "] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(lock))
            .unwrap_or_else(|| panic!("no {lock}row: {stdout}"));
        assert!(!row.contains("skipped"), "{row}");
    }
}

/// `explore` with `args`, from the repository, in a fresh TMPDIR whose leftovers are
/// returned with the output.
fn explore_cmd(args: &[&str]) -> (std::process::Output, Vec<String>) {
    let (out, tmp) = common::oversell_fresh(args, &[]);
    let left = common::leftovers(tmp.path());
    (out, left)
}

#[test]
fn the_redis_lease_is_verified_at_system_call_granularity_its_requests_being_steps() {
    if !have_server("the_redis_lease_is_verified_at_system_call_granularity") {
        return;
    }
    let (out, left) = explore_cmd(&[
        "explore",
        "--lock",
        "redis",
        "--granularity",
        "syscall",
        "--schedule",
        "exhaustive",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--preemptions",
        "1",
        "--no-shrink",
    ]);
    let t = common::text(&out);
    common::assert_code(&out, 0, "--lock redis --granularity syscall exhaustive");
    assert!(t.contains("verified: all executions"), "{t}");
    assert!(!t.contains("redis-server, whose state"), "{t}");
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn a_redis_lock_command_that_gets_then_sets_is_found_and_replayed_and_one_that_sets_nx_is_not() {
    if !have_server("a_redis_lock_command_that_gets_then_sets") {
        return;
    }
    let broken = "fixtures/locks/broken/redis-get-set.sh {redis} {}";
    let (out, _) = explore_cmd(&[
        "explore",
        "--lock-cmd",
        broken,
        "--schedule",
        "pct",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--trials",
        "100",
        "--seed",
        "1",
        "--no-shrink",
        "--no-explain",
    ]);
    let t = common::text(&out);
    common::assert_code(&out, 1, "redis-get-set.sh under pct");
    assert!(t.contains(": overlap") || t.contains(": oversold"), "{t}");
    common::assert_replays_exactly(&common::replay_token(&t));
    let sound = "fixtures/locks/sound/redis-setnx.sh {redis} {}";
    let (out, left) = explore_cmd(&[
        "explore",
        "--lock-cmd",
        sound,
        "--schedule",
        "pct",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--trials",
        "30",
        "--seed",
        "1",
        "--expect",
        "clean",
    ]);
    common::assert_code(&out, 0, "redis-setnx.sh under pct");
    assert_eq!(left, Vec::<String>::new());
}
