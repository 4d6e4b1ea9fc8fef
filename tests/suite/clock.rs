//! Virtual time for a user's command: the clock shim reaches `date` and Python, sleeps cost
//! no wall time and move the trial's clock exactly, a skewed clock catches a lease that
//! trusts its own clock while the fenced lease stays clean, a statically linked program
//! is named, and bad clock faults are refused before any trial.

use crate::common;

use common::{assert_code, fixture, have, oversell_fresh, text};
use std::path::Path;

/// The `times` lines every kept trial of `keep` left: (before, after) readings.
fn readings(keep: &Path) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(keep).expect("kept").flatten() {
        let Ok(t) = std::fs::read_to_string(d.path().join("times")) else {
            continue;
        };
        for line in t.lines() {
            let w: Vec<f64> = line
                .split_whitespace()
                .map(|x| x.parse().expect("a reading"))
                .collect();
            out.push((w[0], w[1]));
        }
    }
    out
}

#[test]
fn date_and_sleep_read_the_trials_clock() {
    let keep = crate::common::tempdir().expect("tempdir");
    // Five seconds asleep on a real clock could never read as exactly 5.000000000 s.
    let cmd = "a=$(date +%s.%N); sleep 5; b=$(date +%s.%N); echo \"$a $b\" >> {dir}/times; flock {dir}/lock {}";
    let keep_arg = keep.path().to_string_lossy().into_owned();
    let (out, tmp) = oversell_fresh(
        &[
            "explore",
            "--lock-cmd",
            cmd,
            "--schedule",
            "random",
            "--trials",
            "2",
            "--buyers",
            "2",
            "--tickets",
            "1",
            "--seed",
            "1",
            "--keep",
            &keep_arg,
        ],
        &[],
    );
    assert_code(&out, 0, "a sleeping wrapper around flock");
    let r = readings(keep.path());
    assert_eq!(
        r.len(),
        4,
        "two buyers in two trials: {r:?}\n{}",
        text(&out)
    );
    for (a, b) in &r {
        assert!(
            (b - a - 5.0).abs() < 1e-6,
            "slept {} s, not exactly 5: {r:?}",
            b - a
        );
    }
    assert_eq!(
        common::leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}

#[test]
fn python_reads_the_trials_clock() {
    if !have("python3") {
        eprintln!("skipped: python3 is not on PATH");
        return;
    }
    let keep = crate::common::tempdir().expect("tempdir");
    let cmd = "python3 -c 'import sys,time; a=time.time(); m=time.monotonic(); time.sleep(3); \
               open(sys.argv[1]+\"/times\",\"a\").write(\"%r %r\\n\" % (time.monotonic()-m, \
               time.time()-a))' {dir}; {}";
    let keep_arg = keep.path().to_string_lossy().into_owned();
    let (out, _tmp) = oversell_fresh(
        &[
            "explore",
            "--lock-cmd",
            cmd,
            "--schedule",
            "random",
            "--trials",
            "1",
            "--buyers",
            "1",
            "--tickets",
            "1",
            "--seed",
            "1",
            "--keep",
            &keep_arg,
        ],
        &[],
    );
    assert_code(&out, 0, "python sleeping 3 s inside the command");
    let r = readings(keep.path());
    assert_eq!(r.len(), 1, "{r:?}\n{}", text(&out));
    assert!(
        (r[0].0 - 3.0).abs() < 1e-6 && (r[0].1 - 3.0).abs() < 1e-6,
        "{r:?}"
    );
}

/// `lease.py` (`--fenced` if `fenced`) under a skewed clock, `trials` pct trials.
fn lease(fenced: bool, seed: &str, trials: &str) -> std::process::Output {
    let wrapper = fixture("locks/lease.py");
    let cmd = format!(
        "python3 {}{} {{dir}} {{}}",
        wrapper.display(),
        if fenced { " --fenced" } else { "" }
    );
    oversell_fresh(
        &[
            "explore",
            "--lock-cmd",
            &cmd,
            "--faults",
            "skew=0.5:0.25",
            "--jitter-ms",
            "2000",
            "--schedule",
            "pct",
            "--trials",
            trials,
            "--buyers",
            "2",
            "--tickets",
            "1",
            "--seed",
            seed,
            "--no-explain",
            "--no-shrink",
            "--expect",
            if fenced { "clean" } else { "violation" },
        ],
        &[],
    )
    .0
}

#[test]
fn a_lease_that_trusts_its_own_clock_is_caught_under_skew() {
    if !have("python3") {
        eprintln!("skipped: python3 is not on PATH");
        return;
    }
    let out = lease(false, "2", "20");
    assert_code(&out, 0, "lease.py under skew=0.5:0.25: a finding expected");
    let t = text(&out);
    assert!(
        t.contains("held the critical section at once") || t.contains("claim"),
        "{t}"
    );
    assert!(
        t.contains("clock ran at 0.25×"),
        "the finding says whose clock: {t}"
    );
    // The skew is in the token, its steps too: a replay takes the same steps.
    let token = common::replay_token(&t);
    // Under a full suite on 2 busy cores an attempt once ran past a timeout counted from
    // the trial's start and ended as a hang; a stepped trial's timeout now counts from
    // its last step, and every attempt takes the same steps.
    // Its timeline (drawn by the same replay) draws the skewed clock on the buyer's lane.
    let dir = crate::common::tempdir().expect("tempdir");
    let svg = dir.path().join("t.svg");
    let svg_s = svg.to_string_lossy().into_owned();
    let (again, _) = oversell_fresh(
        // Three attempts (two Python starts each) show the same exactness as ten.
        &[
            "replay",
            "--allow-cmd",
            "--attempts",
            "3",
            "--timeline",
            &svg_s,
            &token,
        ],
        &[],
    );
    let r = text(&again);
    assert!(r.contains("reproduced in 3 of 3 attempts"), "{r}");
    assert!(r.contains("identical trace in 3 of 3 attempts"), "{r}");
    let picture = std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert!(
        picture.contains("class=\"skewed-clock\" data-buyer=\""),
        "{picture}"
    );
    assert!(picture.contains(">ran at 0.25×<"), "{picture}");
}

#[test]
fn a_fenced_lease_stays_clean_under_skew() {
    if !have("python3") {
        eprintln!("skipped: python3 is not on PATH");
        return;
    }
    let out = lease(true, "2", "8");
    assert_code(
        &out,
        0,
        "lease.py --fenced under skew=0.5:0.25: clean expected",
    );
}

/// What an exhaustive search of lock command `cmd` with one buyer and one ticket says.
fn one_buyer_searched(cmd: &str) -> String {
    let (out, _tmp) = oversell_fresh(
        &[
            "explore",
            "--lock-cmd",
            cmd,
            "--schedule",
            "exhaustive",
            "--buyers",
            "1",
            "--tickets",
            "1",
            "--seed",
            "1",
        ],
        &[],
    );
    text(&out)
}

#[test]
fn a_static_program_is_named_on_real_time() {
    let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(ldconfig) = ldconfig else {
        eprintln!("skipped: no statically linked ldconfig here");
        return;
    };
    let is_static = std::fs::read(ldconfig)
        .map(|b| {
            !b.windows(12)
                .any(|w| w == b"ld-linux-x86" || w == b"ld-linux-aar")
        })
        .unwrap_or(false);
    if !is_static {
        eprintln!("skipped: {ldconfig} is dynamically linked here");
        return;
    }
    let cmd = format!("{ldconfig} -p -C {{dir}}/ld.cache >/dev/null 2>&1; {{}}");
    let t = one_buyer_searched(&cmd);
    assert!(
        t.contains("ldconfig on real time (statically linked"),
        "{t}"
    );
    let named = t.lines().filter(|l| l.contains("on real time")).count();
    assert_eq!(named, 1, "named in one line: {t}");
    assert!(
        !t.contains("dash on real time") && !t.contains("sh on real time"),
        "{t}"
    );
}

/// A program started with its environment cleared (`env -i`) has no clock shim either,
/// and is named for that, not taken for a statically linked one.
#[test]
fn a_program_started_by_env_i_is_named_for_its_cleared_environment() {
    let t = one_buyer_searched("env -i /bin/ls -l {dir} >/dev/null; {}");
    assert!(
        t.contains("ls on real time (started without oversell's LD_PRELOAD, as after `env -i`"),
        "{t}"
    );
    assert!(!t.contains("statically linked"), "{t}");
}

#[test]
fn bad_clock_faults_exit_2_in_one_line() {
    for (faults, schedule) in [
        ("skew=0.5:0", "pct"),
        ("skew=0.5:-2", "pct"),
        ("skew=0.5", "pct"),
        ("jump=0.5:soon", "pct"),
        ("jump=0.5:99999999999", "pct"),
        ("drift=0.5", "pct"),
        // A skew needs processes that read oversell's clock under a controlled schedule.
        ("skew=0.5:2", "jitter"),
    ] {
        let (out, tmp) = oversell_fresh(
            &[
                "explore",
                "--lock-cmd",
                "flock {dir}/l {}",
                "--faults",
                faults,
                "--schedule",
                schedule,
            ],
            &[],
        );
        assert_code(&out, 2, faults);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{faults}: {err}");
        assert!(out.stdout.is_empty(), "{faults}: nothing before any trial");
        assert_eq!(common::leftover_count(tmp.path()), 0, "{faults}");
    }
}

#[test]
fn a_jump_is_placed_at_a_seeded_step() {
    let keep = crate::common::tempdir().expect("tempdir");
    // Each reading is taken after a step (the sleep), so the seeded jump shows in it.
    let cmd = "for i in 1 2 3 4 5 6 7 8 9; do sleep 1; done; date +%s >> {dir}/walls; {}";
    let run = || {
        let keep_arg = keep.path().to_string_lossy().into_owned();
        oversell_fresh(
            &[
                "explore",
                "--lock-cmd",
                cmd,
                "--faults",
                "jump=1:-100000",
                "--schedule",
                "random",
                "--trials",
                "1",
                "--buyers",
                "1",
                "--tickets",
                "1",
                "--seed",
                "7",
                "--keep",
                &keep_arg,
            ],
            &[],
        )
        .0
    };
    let out = run();
    assert_code(&out, 0, "a jumping wall clock around no lock");
    let walls: Vec<i64> = std::fs::read_dir(keep.path())
        .expect("kept")
        .flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("walls")).ok())
        .flat_map(|t| {
            t.lines()
                .map(|l| l.trim().parse::<i64>().expect("secs"))
                .collect::<Vec<_>>()
        })
        .collect();
    // Every trial's wall clock starts at 2026-01-01 00:00:00 UTC; nine seconds asleep,
    // and one step 100 s back, placed among the first steps (all before the reading).
    assert_eq!(walls, vec![1_767_225_600 + 9 - 100], "{}", text(&out));
    assert!(
        text(&out).is_empty() || !text(&out).contains("error"),
        "{}",
        text(&out)
    );
}

/// A stop fault's pause passes on the lease's clock (the built-in lease's file, or the
/// trial's `redis-server` through the clock shim): fenced leases stay clean, unfenced
/// ones are caught, under a free-running schedule.
fn stopped(lock: &str, expect: &str) {
    let (out, tmp) = oversell_fresh(
        &[
            "explore",
            "--lock",
            lock,
            "--faults",
            "stop=0.5:3000",
            "--trials",
            "40",
            "--seed",
            "1",
            "--no-explain",
            "--expect",
            expect,
        ],
        &[],
    );
    assert_code(
        &out,
        0,
        &format!("--lock {lock} under stop=0.5:3000: {expect}"),
    );
    assert_eq!(
        common::leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}

#[test]
fn a_paused_lease_holder_loses_the_lease_on_the_virtual_clock() {
    stopped("lease-fenced", "clean");
    stopped("lease", "violation");
}

#[test]
fn a_paused_redis_holder_loses_the_lease_on_the_servers_clock() {
    if !have("redis-server") {
        eprintln!("skipped: redis-server is not on PATH");
        return;
    }
    stopped("redis-fenced", "clean");
    stopped("redis", "violation");
}

/// A program's `sleep(0)` is still a call under the shim (a yield the schedule must see):
/// `mmap-flag.py` tests and sets a byte of shared memory with only a zero sleep between,
/// and pct finds two holders only if that sleep is a step. The shim once answered a sleep
/// already due by itself, and the broken lock came out clean.
#[test]
fn a_zero_sleep_is_a_step_of_the_schedule() {
    if !have("python3") {
        eprintln!("skipped: python3 is not on PATH");
        return;
    }
    let cmd = format!(
        "{} {{dir}} {{}}",
        fixture("locks/broken/mmap-flag.py").display()
    );
    let (out, tmp) = oversell_fresh(
        &[
            "explore",
            "--lock-cmd",
            &cmd,
            "--schedule",
            "pct",
            "--trials",
            "20",
            "--buyers",
            "2",
            "--tickets",
            "1",
            "--seed",
            "1",
            "--no-shrink",
            "--no-explain",
        ],
        &[],
    );
    assert_code(
        &out,
        1,
        "a test-and-set on shared memory around a zero sleep",
    );
    assert!(text(&out).contains("overlap"), "{}", text(&out));
    assert_eq!(
        common::leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}
