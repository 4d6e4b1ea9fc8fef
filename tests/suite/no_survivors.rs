//! Every spawned process is accounted for: after a SIGKILL of the explorer itself, no
//! buyer and no lock server survives it, and the next run sweeps the directory it left.

use crate::common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Every oversell command sweeps what dead runs left when it starts: the tests here run
/// one at a time, so neither's explorer sweeps what the other's killed run must leave for
/// "the next run" to find.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Each process (pid, command line) whose `/proc/PID` directory satisfies `keep`.
fn processes_where(keep: impl Fn(&std::path::Path) -> bool) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let dir = e.path();
            if !keep(&dir) {
                return None;
            }
            let raw = std::fs::read(dir.join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&raw).replace('\0', " ")))
        })
        .collect()
}

/// Pids of live processes whose command line mentions `marker`.
fn processes_mentioning(marker: &str) -> Vec<(u32, String)> {
    processes_where(|dir| {
        std::fs::read(dir.join("cmdline")).is_ok_and(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .contains(marker)
        })
    })
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_killed_explorer_leaves_no_process_behind() {
    let _serial = one_at_a_time();
    let tmp = crate::common::tempdir().expect("tempdir");
    let marker = tmp.path().to_str().expect("utf-8 path").to_string();
    let mut explorer = common::oversell_command()
        .args([
            "explore",
            "--lock",
            "socket",
            "--trials",
            "100000",
            "--buyers",
            "6",
            "--jitter-ms",
            "300",
            "--seed",
            "1",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("explorer starts");

    // Mid-run: buyers and the lock server of this explorer are alive.
    let busy = wait_for(Duration::from_secs(20), || {
        let procs = processes_mentioning(&marker);
        procs.iter().any(|(_, c)| c.contains("__buyer"))
            && procs.iter().any(|(_, c)| c.contains("__lock-server"))
    });
    assert!(
        busy,
        "the explorer never got buyers and a lock server running"
    );

    kill(Pid::from_raw(explorer.id() as i32), Signal::SIGKILL).expect("kill explorer");
    explorer.wait().expect("reap explorer");

    let started = Instant::now();
    let gone = wait_for(Duration::from_secs(5), || {
        processes_mentioning(&marker).is_empty()
    });
    assert!(
        gone,
        "still running {:?} after the explorer was killed",
        processes_mentioning(&marker)
    );
    eprintln!("all children gone {:?} after SIGKILL", started.elapsed());

    // The dead explorer's trial directory is still there; the next run removes it.
    assert!(
        entries(tmp.path()) > 0,
        "expected the killed run's directory"
    );
    let out = common::oversell_command()
        .args(["explore", "--lock", "flock", "--trials", "1", "--quiet"])
        .env("TMPDIR", tmp.path())
        .output()
        .expect("second run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(entries(tmp.path()), 0, "the stale directory was not swept");
}

/// Pids of live processes whose environment carries `OVERSELL_RUN=<pid>-…` of `run`.
fn processes_of_run(run: u32) -> Vec<(u32, String)> {
    let mark = format!("OVERSELL_RUN={run}-");
    processes_where(|dir| {
        let marked = std::fs::read(dir.join("environ")).is_ok_and(|env| {
            env.split(|&b| b == 0)
                .any(|kv| kv.starts_with(mark.as_bytes()))
        });
        let zombie = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .map(|i| s[i + 1..].trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        marked && !zombie
    })
}

#[test]
fn the_next_run_kills_what_a_killed_explorers_lock_command_started() {
    let _serial = one_at_a_time();
    let tmp = crate::common::tempdir().expect("tempdir");
    let mut explorer = common::oversell_command()
        .args([
            "explore",
            "--lock-cmd",
            "sleep 7.77 && {}",
            "--schedule",
            "jitter",
            "--trials",
            "100",
            "--seed",
            "3",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("explorer starts");
    let run = explorer.id();
    // A `sleep` of the lock command runs: it is a grandchild, which the death signal of
    // the explorer's children does not reach.
    let sleeping = wait_for(Duration::from_secs(20), || {
        processes_of_run(run)
            .iter()
            .any(|(_, c)| c.starts_with("sleep 7.77"))
    });
    assert!(sleeping, "the lock command's sleep never started");
    kill(Pid::from_raw(run as i32), Signal::SIGKILL).expect("kill explorer");
    explorer.wait().expect("reap explorer");
    let survivors = processes_of_run(run);
    assert!(
        survivors.iter().any(|(_, c)| c.starts_with("sleep 7.77")),
        "expected the sleep to outlive the explorer: {survivors:?}"
    );

    let out = common::oversell_command()
        .args(["explore", "--lock", "flock", "--trials", "1", "--quiet"])
        .env("TMPDIR", tmp.path())
        .output()
        .expect("second run");
    assert_eq!(out.status.code(), Some(0));
    // SIGKILL is delivered before `kill` returns, but a killed process is gone from
    // /proc (or a zombie) only once the kernel has torn it down: poll for that.
    let gone = wait_for(Duration::from_secs(5), || processes_of_run(run).is_empty());
    assert!(gone, "still running: {:?}", processes_of_run(run));
    assert_eq!(entries(tmp.path()), 0, "the stale directory was not swept");
}

#[test]
fn a_process_someone_started_in_a_stale_directory_is_left_alone() {
    // The sweep kills what works in a dead run's directory only when it is the run's
    // (orphaned, or a dead run's child): a shell someone opened there, whose parent is
    // alive and no run's, is theirs.
    let _serial = one_at_a_time();
    let tmp = crate::common::tempdir().expect("tempdir");
    // A pid no process has: the run that made the directory is gone.
    let mut gone = std::process::Command::new("true").spawn().expect("true");
    let dead = gone.id();
    gone.wait().expect("reap");
    let stale = tmp.path().join(format!("oversell-{dead}-Xy12Ab"));
    std::fs::create_dir(&stale).expect("stale directory");
    let mut theirs = std::process::Command::new("sleep")
        .arg("30")
        .current_dir(&stale)
        .spawn()
        .expect("a process working in the stale directory");
    let out = common::oversell_command()
        .args(["explore", "--lock", "flock", "--trials", "1", "--quiet"])
        .env("TMPDIR", tmp.path())
        .output()
        .expect("a run that sweeps");
    assert_eq!(out.status.code(), Some(0));
    let alive = theirs.try_wait().expect("look at it").is_none();
    let _ = theirs.kill();
    let _ = theirs.wait();
    assert!(
        alive,
        "the sweep killed a process that was not the dead run's"
    );
    assert!(!stale.exists(), "the stale directory was not swept");
}
