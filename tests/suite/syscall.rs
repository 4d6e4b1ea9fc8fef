//! Anyone's lock under a controlled schedule at system-call granularity: the harness
//! stops every buyer at the system calls that touch the trial's directory and runs one
//! at a time, so a schedule decides the race and its token replays it exactly.

use std::path::Path;
use std::process::Output;

use crate::common;
use common::{leftover_count as leftovers, text};

fn oversell(args: &[&str]) -> (Output, tempfile::TempDir) {
    common::oversell_fresh(args, &[])
}

#[test]
fn every_schedule_of_a_flock_wrapper_is_verified() {
    let (out, tmp) = oversell(&[
        "explore",
        "--lock-cmd",
        "flock {dir}/lock {}",
        "--schedule",
        "exhaustive",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--preemptions",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verified: all"), "{}", text(&out));
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
}

/// The first `oversell replay …` token an explore printed.
fn token(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("replay: "))
        .unwrap_or_else(|| panic!("no replay line\n{}", text(out)));
    line.split_whitespace()
        .last()
        .expect("a token ends the line")
        .to_string()
}

#[test]
fn a_check_then_touch_race_replays_exactly() {
    let (found, _tmp) = oversell(&[
        "explore",
        "--lock-cmd",
        "fixtures/locks/test-then-touch.sh {dir} {}",
        "--schedule",
        "random",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--trials",
        "50",
        "--seed",
        "5",
        "--no-shrink",
    ]);
    assert_eq!(found.status.code(), Some(1), "{}", text(&found));
    let token = token(&found);
    let pictures = crate::common::tempdir().expect("tempdir");
    let svg = pictures.path().join("t.svg");
    let svg_arg = svg.to_string_lossy().into_owned();
    let (out, tmp) = oversell(&[
        "replay",
        "--allow-cmd",
        &token,
        "--attempts",
        "3",
        "--timeline",
        &svg_arg,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("identical trace in 3 of 3"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("reproduced in 3 of 3"), "{}", text(&out));
    // Each step names its call, its path and what it returned.
    assert!(stdout.contains("system calls ("), "{}", text(&out));
    assert!(
        stdout.contains("openat lock.t → created"),
        "the touch that takes the lock file\n{}",
        text(&out)
    );
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
    // The timeline's marks name the call before them: the first buyer's start follows
    // its wrapper's touch of the lock file, whose last call sets the file's times
    // through the descriptor it opened (`utimensat(fd, NULL, …)`).
    let picture = std::fs::read_to_string(&svg).expect("the timeline was drawn");
    assert!(
        picture.contains("start (after utimensat lock.t → ok)"),
        "no mark names its system call: {}",
        picture
            .lines()
            .filter(|l| l.contains("start ("))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_killed_mkdir_holder_is_a_stale_lock_not_a_hang() {
    let (out, tmp) = oversell(&[
        "explore",
        "--lock-cmd",
        "fixtures/locks/mkdir.sh {dir} {}",
        "--faults",
        "kill=0.5",
        "--schedule",
        "pct",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--trials",
        "20",
        "--seed",
        "7",
        "--no-shrink",
        "--expect",
        "violation",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stale_lock: buyer"), "{}", text(&out));
    assert!(
        !stdout
            .lines()
            .any(|l| l.contains("): hang") || l.trim_start().starts_with("also hang")),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
}

#[test]
fn barrier_with_a_lock_command_is_refused() {
    let (out, _tmp) = oversell(&[
        "explore",
        "--lock-cmd",
        "flock {dir}/lock {}",
        "--schedule",
        "barrier",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schedule barrier"));
}

/// toctou's acquire is several system calls: with no `--granularity` its controlled
/// schedules run at system-call granularity (oversell's own steps would keep them
/// together), and exhaustive search finds its race.
#[test]
fn toctou_is_caught_at_syscall_granularity_by_exhaustive_search() {
    let (out, tmp) = oversell(&[
        "explore",
        "--lock",
        "toctou",
        "--schedule",
        "exhaustive",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--preemptions",
        "2",
        "--no-shrink",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("run at system-call granularity") && stdout.contains("finding in"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("verified: all"), "{}", text(&out));
    assert!(
        stdout.contains(".g.p"),
        "the token carries the granularity and the steps\n{}",
        text(&out)
    );
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
}

/// Processes whose environment names `tmp` as TMPDIR and carries a run's mark.
fn marked(tmp: &Path) -> usize {
    let want = format!("TMPDIR={}", tmp.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("environ")).ok())
        .filter(|env| {
            let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
            vars.iter().any(|v| v.starts_with(b"OVERSELL_RUN=")) && vars.contains(&want.as_bytes())
        })
        .count()
}

/// Every path under `dir`, for a failure's message.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path().display().to_string());
        if e.path().is_dir() {
            out.extend(tree(&e.path()));
        }
    }
    out
}

/// Polls `done` every 20 ms for up to `secs` seconds.
fn eventually(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

#[test]
fn an_explorer_killed_with_sigkill_leaves_nothing_behind() {
    let tmp = crate::common::tempdir().expect("tempdir");
    let mut child = common::oversell_command()
        .args([
            "explore",
            "--lock-cmd",
            "fixtures/locks/mkdir.sh {dir} {}",
            "--schedule",
            "exhaustive",
            "--buyers",
            "3",
            "--tickets",
            "1",
            "--preemptions",
            "3",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("oversell runs");
    // Killed in the middle of a trial: its directory and its lock commands exist.
    let busy = eventually(30, || leftovers(tmp.path()) > 0 && marked(tmp.path()) > 0);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(busy, "no trial ever started");
    assert!(
        eventually(10, || leftovers(tmp.path()) == 0 && marked(tmp.path()) == 0),
        "left behind: {:?}, {} processes",
        tree(tmp.path()),
        marked(tmp.path())
    );
}

/// Runs oversell with a seccomp filter of its own that makes `seccomp(2)` fail with
/// EPERM, as a container that refuses filters does.
fn oversell_without_seccomp(args: &[&str]) -> (Output, tempfile::TempDir) {
    use std::os::unix::process::CommandExt;
    let tmp = crate::common::tempdir().expect("tempdir");
    let mut cmd = common::oversell_command();
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp.path());
    // seccomp_data.nr at 0: seccomp → ERRNO(EPERM), anything else allowed.
    let prog = [
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: libc::SYS_seccomp as u32,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    // SAFETY: between fork and exec, two prctl calls on a program owned by the closure.
    unsafe {
        cmd.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("oversell runs");
    (out, tmp)
}

#[test]
fn where_seccomp_is_refused_a_lock_command_runs_free_and_says_so() {
    let (out, tmp) = oversell_without_seccomp(&[
        "explore",
        "--lock-cmd",
        "flock {dir}/lock {}",
        "--schedule",
        "random",
        "--buyers",
        "2",
        "--tickets",
        "1",
        "--trials",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    assert_eq!(
        all.matches("system calls cannot be intercepted here")
            .count(),
        1,
        "{all}"
    );
    assert!(all.contains("running free (jitter) instead"), "{all}");
    assert!(all.contains("schedule jitter"), "{all}");
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
    // Our own buyer keeps its own steps; a store command cannot run at all.
    let (own, _tmp) = oversell_without_seccomp(&[
        "explore",
        "--lock",
        "flock",
        "--granularity",
        "syscall",
        "--schedule",
        "random",
        "--trials",
        "2",
    ]);
    assert_eq!(own.status.code(), Some(0), "{}", text(&own));
    assert!(
        text(&own).contains("steps stay oversell's own"),
        "{}",
        text(&own)
    );
    let (store, _tmp) = oversell_without_seccomp(&[
        "explore",
        "--buyer-cmd",
        "python3 b.py {dir}",
        "--store-cmd",
        "python3 s.py {dir} {op} {tickets}",
        "--schedule",
        "random",
    ]);
    assert_eq!(store.status.code(), Some(2), "{}", text(&store));
}

/// Runs `stall-once.sh` (2 buyers, 1 ticket, seed 1, one trial at a time, so the first
/// to run the fixture is trial 0's buyer) under pct unless `more` says otherwise, with
/// `env` (its stall mark, `OVERSELL_STALL_MARK`, and when to stall; none: it stalls
/// every time) and `more` arguments.
fn stalling(env: &[(&str, &str)], more: &[&str]) -> (Output, tempfile::TempDir) {
    let mut args = vec![
        "explore",
        "--lock-cmd",
        "fixtures/locks/stall-once.sh {dir} {}",
    ];
    args.extend("--buyers 2 --tickets 1 --seed 1 --jobs 1".split(' '));
    if !more.contains(&"--schedule") {
        args.extend(["--schedule", "pct"]);
    }
    args.extend_from_slice(more);
    common::oversell_fresh(&args, env)
}

/// `stall-once.sh` spins without a system call (so without a step) until the trial's
/// timeout, in the first buyer to run it only: the stall is the wall clock's, and the
/// same steps run again go on. oversell says "not verified", not `hang`, not clean.
#[test]
fn a_stall_that_does_not_come_back_is_not_verified_not_a_hang() {
    let marks = crate::common::tempdir().expect("tempdir");
    let mark = marks.path().join("stalled");
    let mark = mark.to_str().expect("a UTF-8 path");
    let env = [("OVERSELL_STALL_MARK", mark)];
    let (out, tmp) = stalling(&env, &["--trials", "2", "--timeout-ms", "2000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not verified: trial 0 stalled, and did not stall when it was run again: "),
        "{}",
        text(&out)
    );
    assert!(stdout.contains(", 0 findings in "), "{}", text(&out));
    assert!(
        stdout.contains("result: no finding, but not verified (see above)"),
        "{}",
        text(&out)
    );
    assert!(Path::new(mark).exists(), "the fixture never stalled");
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
}

/// The same fixture stalling every time: the second run stalls too, so it is a `hang`.
#[test]
fn a_stall_that_comes_back_is_a_hang() {
    let more = "--trials 1 --timeout-ms 1000 --no-shrink --no-explain --expect violation";
    let more: Vec<&str> = more.split(' ').collect();
    let (out, tmp) = stalling(&[], &more);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("finding in trial 0 (2 buyers, 1 ticket): hang: "),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("not verified"), "{}", text(&out));
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
}

/// The same stall in the middle of an exhaustive search (the fixture's 100th run of 150,
/// within 1 preemption): the schedules past it were not run, so the search is not
/// verified, and says why.
#[test]
fn a_stall_in_a_search_leaves_it_not_verified() {
    let marks = crate::common::tempdir().expect("tempdir");
    let mark = marks.path().join("stalled");
    let mark = mark.to_str().expect("a UTF-8 path");
    let env = [("OVERSELL_STALL_MARK", mark), ("OVERSELL_STALL_AT", "100")];
    let more = "--schedule exhaustive --preemptions 1 --timeout-ms 2000";
    let more: Vec<&str> = more.split(' ').collect();
    let (out, tmp) = stalling(&env, &more);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not verified: a trial stalled (a buyer did not reach its next step"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("\nverified: "), "{}", text(&out));
    let runs = std::fs::read_to_string(mark).expect("the fixture ran");
    assert!(
        runs.lines().any(|l| l == "stalled"),
        "the fixture never stalled: {runs}"
    );
    assert_eq!(leftovers(tmp.path()), 0, "trial directories left behind");
}
