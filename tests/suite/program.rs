//! `--program`: the lesson's own programs, unmodified but for their sleeps' scale, run
//! whole. Every process `multiprocessing` starts is under the controlled schedule, its
//! `multiprocessing.Lock` (a semaphore in shared memory) is seen through its `futex`
//! waits, sales are counted on the program's output, and the tickets live in the file
//! the lesson reads. Without its lock the lesson oversells in the first trial and
//! replays exactly; with it, it stays clean. Bad input is refused before any trial.

use crate::common;

use common::{assert_code, fixture, text};
use std::process::Output;

/// True when `python3` can be run; else says in one line why the test is skipped.
fn python() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: python3 is not on PATH, and the lesson's programs are Python");
    }
    ok
}

fn lesson(n: u32, method: &str, lock: &str) -> String {
    format!(
        "python3 {} {{buyers}} {method} {lock}",
        fixture(&format!("programs/lesson{n}.py")).display()
    )
}

/// The lesson's store and sale line for program `n`.
fn store_of(n: u32) -> [&'static str; 6] {
    match n {
        1 => [
            "--store-file",
            "db.txt",
            "--store-key",
            "count",
            "--sold",
            "购票成功",
        ],
        _ => [
            "--store-file",
            "ticket",
            "--store-key",
            "ticket",
            "--sold",
            "买到票了",
        ],
    }
}

fn explore(program: &str, n: u32, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let mut args = vec!["explore", "--program", program];
    args.extend_from_slice(&store_of(n));
    args.extend_from_slice(&["--buyers", "2", "--tickets", "1", "--no-explain"]);
    args.extend_from_slice(extra);
    common::oversell_fresh(&args, &[("LESSON_SLEEP", "0.01")])
}

#[test]
fn the_lessons_first_program_without_its_lock_oversells_at_once_and_replays_exactly() {
    if !python() {
        return;
    }
    let cmd = lesson(1, "fork", "nolock");
    let (out, tmp) = explore(&cmd, 1, &["--trials", "1", "--seed", "7"]);
    let t = text(&out);
    assert_code(&out, 1, "lesson 1 without its lock");
    assert!(
        t.contains("finding in trial 0 (2 buyers, 1 ticket): oversold"),
        "{t}"
    );
    common::assert_replays_exactly(&common::replay_token(&t));
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn the_lessons_first_program_with_its_lock_stays_clean() {
    if !python() {
        return;
    }
    let cmd = lesson(1, "fork", "lock");
    let (out, tmp) = explore(
        &cmd,
        1,
        &["--trials", "8", "--seed", "3", "--expect", "clean"],
    );
    assert_code(&out, 0, "lesson 1 with its lock");
    assert!(
        text(&out).contains("8 trials, 0 failed, 0 findings"),
        "{}",
        text(&out)
    );
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn the_lessons_second_program_under_spawn_oversells_without_its_lock_and_not_with_it() {
    if !python() {
        return;
    }
    let broken = lesson(2, "spawn", "nolock");
    let (out, _) = explore(&broken, 2, &["--trials", "3", "--seed", "7", "--no-shrink"]);
    let t = text(&out);
    assert_code(&out, 1, "lesson 2 under spawn without its lock");
    assert!(t.contains(": oversold"), "{t}");
    let sound = lesson(2, "spawn", "lock");
    let (out, tmp) = explore(
        &sound,
        2,
        &["--trials", "3", "--seed", "7", "--expect", "clean"],
    );
    assert_code(&out, 0, "lesson 2 under spawn with its lock");
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

/// `shell_buyers.sh` with `lock` (`none` or `flock`) as a whole program: 2 buyers, 1
/// ticket, seed 1, and `more` arguments.
fn shell_buyers(lock: &str, more: &[&str]) -> (Output, tempfile::TempDir) {
    let cmd = format!(
        "sh {} {{buyers}} {lock}",
        fixture("programs/shell_buyers.sh").display()
    );
    let mut args = vec!["explore", "--program", &cmd, "--store-file", "db.json"];
    args.extend("--store-key count --sold ^sold$ --buyers 2 --tickets 1 --seed 1".split(' '));
    args.extend_from_slice(more);
    common::oversell_fresh(&args, &[])
}

#[test]
fn a_shell_program_of_background_subshells_oversells_without_flock_and_not_with_it() {
    let run = |lock: &str, expect: &str| {
        let mut more: Vec<&str> = "--trials 30 --no-explain --no-shrink --expect"
            .split(' ')
            .collect();
        more.push(expect);
        shell_buyers(lock, &more)
    };
    let (out, _) = run("none", "violation");
    assert_code(&out, 0, "shell buyers without flock");
    assert!(text(&out).contains(": oversold"), "{}", text(&out));
    let (out, tmp) = run("flock", "clean");
    assert_code(&out, 0, "shell buyers with flock");
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}

/// Every schedule of one search draws the same random names (the trial's seed): a whole
/// program's run one at a time, and the run says so.
#[test]
fn a_whole_programs_search_runs_its_schedules_one_at_a_time() {
    let (out, _tmp) = shell_buyers(
        "flock",
        &["--schedule", "exhaustive", "--trials", "2", "--jobs", "2"],
    );
    assert_code(&out, 0, "a capped search of shell buyers with flock");
    assert!(
        text(&out).contains("--jobs 2: a whole program's schedules run one at a time"),
        "{}",
        text(&out)
    );
}

#[test]
fn bad_program_input_is_refused_in_one_line_before_any_trial() {
    let cmd = "python3 fixtures/programs/lesson1.py {buyers}";
    let cases: [(&[&str], &str); 5] = [
        (&["--program", cmd], "--sold"),
        (
            &["--program", cmd, "--sold", "bought("],
            "not a regular expression",
        ),
        (
            &["--program", cmd, "--sold", "x", "--store-file", "../db.txt"],
            "not inside",
        ),
        (
            &["--program", cmd, "--sold", "x", "--lock", "flock"],
            "cannot be used with",
        ),
        (
            &["--program", cmd, "--sold", "x", "--schedule", "jitter"],
            "controlled schedule",
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["explore"];
        args.extend_from_slice(extra);
        let (out, _) = common::oversell_fresh(&args, &[]);
        assert_code(&out, 2, says);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!text(&out).contains("trial 0"), "{args:?}");
    }
}

/// `fork_memory.py`: a parent and the child it forks write one word of anonymous shared
/// memory with no system call between the fork and the write. The fork is a step, and
/// the parent's return and the child's first run are steps of their own, so which runs
/// first is the schedule's choice, not the kernel's: the search meets the order in which
/// the parent's write lands last (an oversell), and a replay of it repeats it exactly.
/// The parent that waits for its child first is verified, and so is one that also starts
/// a program with `subprocess` (a `vfork`, whose parent sleeps until the child's `execve`).
#[test]
fn a_fork_in_shared_memory_is_scheduled_both_ways() {
    if !python() {
        return;
    }
    let run = |mode: &str, expect: &str| {
        let program = format!(
            "python3 {} {mode}",
            fixture("programs/fork_memory.py").display()
        );
        let args = [
            "explore",
            "--program",
            &program,
            "--store-file",
            "ticket",
            "--store-key",
            "ticket",
            "--sold",
            "^sold",
            "--buyers",
            "2",
            "--tickets",
            "1",
            "--schedule",
            "exhaustive",
            "--seed",
            "1",
            "--no-explain",
            "--expect",
            expect,
        ];
        common::oversell_fresh(&args, &[])
    };
    let (out, tmp) = run("wait", "clean");
    let t = text(&out);
    assert_code(&out, 0, "the parent that waits for its child");
    assert!(t.contains("verified: all executions"), "{t}");
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
    let (out, _) = run("spawn", "clean");
    let t = text(&out);
    assert_code(
        &out,
        0,
        "the parent that starts a program with vfork, then waits",
    );
    assert!(t.contains("verified: all executions"), "{t}");
    let (out, tmp) = run("race", "violation");
    let t = text(&out);
    assert_code(&out, 0, "the parent that writes at once");
    assert!(t.contains(": oversold"), "{t}");
    common::assert_replays_exactly(&common::replay_token(&t));
    assert_eq!(common::leftovers(tmp.path()), Vec::<String>::new());
}
