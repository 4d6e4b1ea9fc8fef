//! Faults: each verdict placed by construction (a controlled schedule and a seed whose
//! fault plan puts the kill where the test needs it), never left to luck.

use crate::common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oversell::testing::{Checked, Dfs, EventKind, HarnessConfig, Point, Runner, StoreMode};
use oversell::{FindingKind, LockKind, Schedule, Trial};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::BIN;

fn harness() -> HarnessConfig {
    HarnessConfig::new(BIN)
}

/// A two-buyer, one-ticket trial under a non-preemptive controlled schedule (buyer 0
/// runs until it finishes or dies, then buyer 1) whose seed kills buyer 0 at `at` and
/// spares buyer 1.
fn kill_buyer0_at(lock: LockKind, at: Point, store: StoreMode) -> Trial {
    let mut t = Trial::new(lock, 2, 1);
    t.schedule = Schedule::Exhaustive { preemptions: 0 };
    t.store = store;
    t.faults.kill = 0.5;
    for seed in 0..100_000u64 {
        t.seed = seed;
        if t.fault_plan(0).kill_at == Some(at) && t.fault_plan(1).kill_at.is_none() {
            return t;
        }
    }
    panic!("no seed kills buyer 0 at {at:?}");
}

fn kinds(c: &Checked) -> Vec<FindingKind> {
    c.violations.iter().map(|v| v.kind).collect()
}

#[test]
fn a_dead_lockfile_holder_is_a_stale_lock_naming_its_pid() {
    let h = harness();
    let mut runner = Runner::new(&h);
    for at in [Point::Read, Point::Write, Point::Release] {
        let t = kill_buyer0_at(LockKind::Lockfile, at, StoreMode::Atomic);
        let c = runner.run(&t, None).expect("run");
        assert_eq!(
            kinds(&c),
            vec![FindingKind::StaleLock],
            "{at:?}: {:?}",
            c.violations
        );
        let pid = c.run.history.fates[0].pid;
        assert!(pid > 0);
        let detail = &c.violations[0].detail;
        assert!(detail.contains(&format!("buyer 0 (pid {pid})")), "{detail}");
        assert!(
            detail.contains("buyer 1 waits") || detail.contains("buyer 1 "),
            "{detail}"
        );
    }
}

#[test]
fn a_stale_lock_shrinks_to_two_buyers_and_one_ticket_and_its_token_replays() {
    // PCT with seed 3 first finds lockfile's dead holder in an 8-buyer trial; which buyer
    // dies where is drawn per buyer from the seed, and under this seed the 2-buyer trials
    // show no stale lock: the shrink must try other seeds to get down to 2 buyers.
    let tmp = crate::common::tempdir().expect("tempdir");
    let json = tmp.path().join("r.json");
    let json_arg = json.to_string_lossy().into_owned();
    let out = common::oversell(
        tmp.path(),
        &[
            "explore",
            "--lock",
            "lockfile",
            "--faults",
            "kill=0.5",
            "--schedule",
            "pct",
            "--seed",
            "4",
            "--quiet",
            "--json",
            &json_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let first = &report["findings"][0];
    assert_eq!(first["kind"], "stale_lock", "{first}");
    assert_eq!(
        (first["buyers"].as_u64(), first["tickets"].as_u64()),
        (Some(2), Some(1))
    );
    let token = first["token"].as_str().expect("token");
    let trial = Trial::from_token(token).expect("token decodes");
    let h = harness();
    let c = Runner::new(&h).run(&trial, None).expect("run");
    assert!(
        kinds(&c).contains(&FindingKind::StaleLock),
        "{:?}",
        c.violations
    );
}

#[test]
fn kernel_locks_survive_a_dead_holder() {
    let h = harness();
    let mut runner = Runner::new(&h);
    for lock in [
        LockKind::Flock,
        LockKind::Ofd,
        LockKind::Posix,
        LockKind::Socket,
        LockKind::Sysv,
    ] {
        for at in [Point::Read, Point::Write, Point::Release] {
            let t = kill_buyer0_at(lock, at, StoreMode::Atomic);
            let c = runner.run(&t, None).expect("run");
            assert!(
                c.violations.is_empty(),
                "{lock} killed at {at:?}: {:?}",
                c.violations
            );
            assert!(c.run.history.fates[0].killed_by_fault);
            // Buyer 1 still got the ticket, or found it sold by the dead buyer.
            assert!(c
                .run
                .history
                .of(1)
                .any(|e| matches!(e.kind, EventKind::Bought | EventKind::SoldOut)));
        }
    }
}

#[test]
fn a_waiter_blocked_before_the_holder_dies_gets_the_lock() {
    // Buyer 0 takes the lock, buyer 1 checks and blocks on it, then buyer 0 is killed
    // holding it. Every sound lock must hand it to buyer 1; the lock server frees a
    // dead client's hold asynchronously, so this runs many times.
    let h = harness();
    let mut runner = Runner::new(&h);
    for lock in [
        LockKind::Socket,
        LockKind::Flock,
        LockKind::Sysv,
        LockKind::Ofd,
    ] {
        let t = kill_buyer0_at(lock, Point::Write, StoreMode::Atomic);
        for _ in 0..if lock == LockKind::Socket { 30 } else { 3 } {
            let mut dfs = Dfs::new(vec![0, 0, 1, 1, 0], 2);
            let c = runner.run(&t, Some(&mut dfs)).expect("run");
            assert!(c.diverged().is_none());
            assert!(c.violations.is_empty(), "{lock}: {:?}", c.violations);
            assert!(c.run.history.of(1).any(|e| e.kind == EventKind::Bought));
        }
    }
}

#[test]
fn a_kill_between_truncate_and_write_tears_the_in_place_store_even_under_a_sound_lock() {
    let h = harness();
    let mut runner = Runner::new(&h);
    let t = kill_buyer0_at(LockKind::Flock, Point::Truncated, StoreMode::InPlace);
    let c = runner.run(&t, None).expect("run");
    assert!(
        kinds(&c).contains(&FindingKind::CorruptStore),
        "{:?}",
        c.violations
    );
    let text: String = c.violations.iter().map(|v| v.detail.clone()).collect();
    assert!(
        text.contains("a lock does not make a write crash-safe"),
        "{text}"
    );
    // Its token replays the same death and the same torn store.
    let again = Trial::from_token(&c.trial.token()).expect("token");
    let r = runner.run(&again, None).expect("replay");
    assert_eq!(r.run.history.trace(), c.run.history.trace());
    let shape = |c: &Checked| -> Vec<(FindingKind, Vec<u32>, Vec<usize>)> {
        c.violations
            .iter()
            .map(|v| (v.kind, v.buyers.clone(), v.events.clone()))
            .collect()
    };
    assert_eq!(shape(&r), shape(&c));
}

#[test]
fn the_atomic_store_is_never_torn_by_a_kill() {
    let h = harness();
    let mut runner = Runner::new(&h);
    for at in Point::ALL
        .iter()
        .copied()
        .filter(|p| *p != Point::Truncated)
    {
        let t = kill_buyer0_at(LockKind::Flock, at, StoreMode::Atomic);
        let c = runner.run(&t, None).expect("run");
        assert!(
            c.violations.is_empty(),
            "killed at {at:?}: {:?}",
            c.violations
        );
    }
}

#[test]
fn sound_locks_stay_clean_under_kill_and_stop_faults() {
    for lock in ["flock", "ofd", "posix", "socket", "sysv"] {
        // Stop faults only stall free-running buyers; a controlled schedule takes kills.
        for (schedule, faults) in [("jitter", "kill=0.3,stop=0.2:5"), ("pct", "kill=0.3")] {
            let tmp = crate::common::tempdir().expect("tempdir");
            let out = common::oversell_command()
                .args([
                    "explore",
                    "--lock",
                    lock,
                    "--schedule",
                    schedule,
                    "--store",
                    "atomic",
                    "--faults",
                    faults,
                    "--trials",
                    "15",
                    "--buyers",
                    "2..8",
                    "--seed",
                    "4",
                    "--jitter-ms",
                    "1",
                ])
                .env("TMPDIR", tmp.path())
                .output()
                .expect("explore");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{lock}/{schedule}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

#[test]
fn a_stalled_run_is_a_hang_that_names_who_was_unfinished_and_where() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let json = tmp.path().join("r.json");
    // A lock command that never gets its lock: no buyer makes progress for 300 ms.
    let out = common::oversell_command()
        .args([
            "explore",
            "--lock-cmd",
            "sleep 30; {}",
            "--schedule",
            "jitter",
            "--trials",
            "1",
            "--buyers",
            "2",
            "--timeout-ms",
            "300",
            "--expect",
            "violation",
            "--json",
        ])
        .arg(&json)
        .env("TMPDIR", tmp.path())
        .output()
        .expect("explore");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let hang = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["kind"] == "hang")
        .expect("a hang finding");
    let detail = hang["detail"].as_str().expect("detail");
    assert!(detail.contains("buyer "), "{hang}");
    // Where each unfinished buyer was when it was killed: its shell waiting for `sleep`,
    // asleep in its turn.
    assert!(
        detail.contains("when killed: buyer 0 asleep in `wait4`") && detail.contains("nanosleep`"),
        "{hang}"
    );
}

fn processes_mentioning(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(marker))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

fn interrupt_explorer(sig: Signal, expected: i32) {
    let tmp = crate::common::tempdir().expect("tempdir");
    let marker = tmp.path().to_str().expect("utf-8").to_string();
    let json = tmp.path().join("partial.json");
    let mut explorer = common::oversell_command()
        .args([
            "explore",
            "--lock",
            "flock",
            "--trials",
            "100000",
            "--buyers",
            "4",
            "--jitter-ms",
            "50",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("explorer");
    let end = Instant::now() + Duration::from_secs(20);
    while processes_mentioning(&marker) < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(Pid::from_raw(explorer.id() as i32), sig).expect("signal");
    let status = explorer.wait().expect("wait");
    assert_eq!(status.code(), Some(expected));
    assert_eq!(
        processes_mentioning(&marker),
        0,
        "processes left after {sig}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("partial.json")],
        "left {left:?}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("partial report"))
            .expect("JSON");
    assert_eq!(r["interrupted"], sig as i32);
}

#[test]
fn sigint_and_sigterm_stop_cleanly_with_a_partial_report() {
    interrupt_explorer(Signal::SIGINT, 130);
    interrupt_explorer(Signal::SIGTERM, 143);
}

/// A free-running trial of `buyers` buyers in which every buyer is killed inside the
/// critical section: whoever takes the lock first dies holding it. With a lock that a
/// death does not free, nobody else can ever take it: a stale lock by construction.
fn everyone_dies_holding(lock: LockKind, buyers: u32) -> Trial {
    let mut t = Trial::new(lock, buyers, 2);
    t.schedule = Schedule::Jitter;
    t.jitter_us = 1000;
    t.store = StoreMode::Atomic;
    t.faults.kill = 1.0;
    let inside = |p: Option<Point>| matches!(p, Some(Point::Read | Point::Write | Point::Release));
    for seed in 0..100_000u64 {
        t.seed = seed;
        if (0..buyers).all(|b| inside(t.fault_plan(b).kill_at) && t.fault_plan(b).stop_at.is_none())
        {
            return t;
        }
    }
    panic!("no seed kills every buyer inside the critical section");
}

#[test]
fn a_free_running_stale_lockfile_is_decided_from_the_holder_it_names() {
    let h = harness();
    let mut runner = Runner::new(&h);
    let t = everyone_dies_holding(LockKind::Lockfile, 3);
    let c = runner.run(&t, None).expect("run");
    assert_eq!(
        kinds(&c),
        vec![FindingKind::StaleLock],
        "{:?}",
        c.violations
    );
    // The holder it names is the buyer whose pid the lock file held: exactly one buyer
    // was killed, the others wait.
    let killed: Vec<usize> = (0..3)
        .filter(|&b| c.run.history.fates[b].killed_by_fault)
        .collect();
    assert_eq!(killed.len(), 1, "{:?}", c.run.history.fates);
    let pid = c.run.history.fates[killed[0]].pid;
    let detail = &c.violations[0].detail;
    assert!(
        detail.contains(&format!("buyer {} (pid {pid})", killed[0])),
        "{detail}"
    );
    assert!(!c.run.history.timed_out);
}

#[test]
fn a_kernel_lock_whose_every_holder_dies_is_never_stale() {
    let h = harness();
    let mut runner = Runner::new(&h);
    for lock in [LockKind::Flock, LockKind::Ofd, LockKind::Sysv] {
        let t = everyone_dies_holding(lock, 3);
        let c = runner.run(&t, None).expect("run");
        assert!(c.violations.is_empty(), "{lock}: {:?}", c.violations);
        assert!(c.run.history.fates.iter().all(|f| f.killed_by_fault));
    }
}

/// The first finding of `explore --lock-cmd` over the mkdir lock (a killed holder leaves
/// its directory behind) under `schedule`, with kill faults.
fn mkdir_lock_killed_holder(schedule: &str) -> (serde_json::Value, std::time::Duration) {
    let tmp = crate::common::tempdir().expect("tempdir");
    let json = tmp.path().join("r.json");
    let started = std::time::Instant::now();
    let out = common::oversell_command()
        .args([
            "explore",
            "--lock-cmd",
            "sh fixtures/locks/mkdir.sh {dir} {}",
        ])
        .args([
            "--faults",
            "kill=0.5",
            "--store",
            "atomic",
            "--schedule",
            schedule,
        ])
        .args([
            "--buyers",
            "3",
            "--tickets",
            "2",
            "--seed",
            "1",
            "--trials",
            "5",
        ])
        .args(["--no-shrink", "--expect", "violation", "--json"])
        .arg(&json)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp.path())
        .output()
        .expect("explore");
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{schedule}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    (r["findings"][0].clone(), took)
}

#[test]
fn a_lock_command_holder_killed_under_jitter_is_a_stale_lock_named_as_under_control() {
    let (free, took) = mkdir_lock_killed_holder("jitter");
    assert_eq!(free["kind"], "stale_lock", "{free}");
    // Told from the facts within seconds, not by the 10 s watchdog.
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
    let (controlled, _) = mkdir_lock_killed_holder("pct");
    assert_eq!(controlled["kind"], "stale_lock", "{controlled}");
    // The same sentence, whoever was killed: `buyer B (pid P) was killed holding the
    // lock, after `STEP`; buyers … wait for it forever`.
    let shape = |f: &serde_json::Value| {
        let d = f["detail"].as_str().expect("detail").to_string();
        let killed = d.contains(") was killed holding the lock, after `");
        let waits = d.ends_with("for it forever");
        (
            d.starts_with("buyer ") && d.contains(" (pid "),
            killed,
            waits,
        )
    };
    assert_eq!(shape(&free), (true, true, true), "{free}");
    assert_eq!(shape(&free), shape(&controlled), "{free} vs {controlled}");
}
