//! What a run that died (SIGKILL, a power cut of the terminal) left behind, found and
//! removed by the next run: trial directories, the SysV and POSIX semaphores they note,
//! and processes.
//!
//! Every process the harness starts carries [`RUN_ENV`] = `<pid>-<start time>` of the
//! harness's own process, and so does everything those processes start (a user's lock
//! command and its children inherit it). A process whose mark names a harness that is
//! gone, or whose pid now belongs to a process started at another time, is a leftover.
//! So is a process working in a dead run's trial directory whose parent is init or a
//! dead run's, marked or not (a PostgreSQL backend rewrites its environment for its
//! process title, the mark with it).

use super::{pid_alive, DIR_PREFIX, SEM_NOTE};
use crate::lock::sysv;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one sweep may spend killing leftovers and waiting for them to be gone (a
/// process stuck in an uninterruptible call must not stall every later command).
const ORPHAN_BUDGET: Duration = Duration::from_secs(2);

/// The environment variable that marks every process of a run.
pub const RUN_ENV: &str = "OVERSELL_RUN";

/// A live (not zombie) process's start time, in clock ticks since boot (field 22 of
/// `/proc/PID/stat`); `None` when there is no such process or it has exited.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses, which may hold spaces) start
    // at field 3 (state); the start time is field 22.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// This run's mark: `<pid>-<start time>`.
pub(crate) fn run_mark() -> &'static str {
    static MARK: OnceLock<String> = OnceLock::new();
    MARK.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}-{}", start_time(pid).unwrap_or(0))
    })
}

/// True while the harness that wrote `mark` still runs.
fn owner_alive(mark: &str) -> bool {
    let Some((pid, start)) = mark.split_once('-') else {
        return true;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return true;
    };
    if pid == std::process::id() {
        return true;
    }
    // The pid may have been handed to another process since: compare start times.
    start_time(pid).is_some_and(|t| t == start || start == 0)
}

/// The run mark in a process's environment, if it has one.
fn mark_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{RUN_ENV}=");
    raw.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// SIGKILLs every process marked by a run whose harness is gone, pass after pass until a
/// pass finds none, each pass waiting until those it killed are gone (SIGKILL lands
/// asynchronously: a call still running could create a file in a directory about to be
/// removed); returns how many.
fn kill_orphans() -> usize {
    let end = Instant::now() + ORPHAN_BUDGET;
    let mut total = 0;
    loop {
        let killed = kill_orphans_once();
        if killed.is_empty() {
            return total;
        }
        total += killed.len();
        // A leftover that forked just before it was killed leaves a child the next
        // pass finds.
        if !wait_gone(&killed, end) {
            return total;
        }
    }
}

/// The processes working in `dir` (a dead run's trial directory) that are that run's:
/// their working directory lies in it, and each was orphaned when the run died (its
/// parent is init), or its parent is a process of a dead run (marked), or another such
/// process working there. A shell someone `cd`'d into the directory (its parent a live
/// terminal) is left alone, and so is what it started, as are this process, its
/// ancestors and what carries the mark this process inherited. Each comes with its start
/// time, to be checked again before the signal (a pid may be handed on meanwhile).
fn dwellers(dir: &Path) -> Vec<(u32, u64)> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let inside: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .collect();
    let mine = ancestors();
    let inherited = std::env::var(RUN_ENV).ok();
    let ours =
        |pid: u32| !mine.contains(&pid) && (inherited.is_none() || mark_of(pid) != inherited);
    let dead_marked =
        |pid: u32| mark_of(pid).is_some_and(|m| Some(&m) != inherited.as_ref() && !owner_alive(&m));
    // A process is the run's when its parent is init, a dead run's, or (a few levels
    // up at most) another of the run's working there.
    let of_the_run = |pid: u32| {
        let mut at = pid;
        for _ in 0..8 {
            let Some(parent) = parent_of(at) else {
                return false;
            };
            if parent == 1 || dead_marked(parent) {
                return true;
            }
            if !inside.contains(&parent) || !ours(parent) {
                return false;
            }
            at = parent;
        }
        false
    };
    inside
        .iter()
        .copied()
        .filter(|&pid| ours(pid) && of_the_run(pid))
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect()
}

/// This process and its ancestors.
fn ancestors() -> Vec<u32> {
    let mut out = vec![std::process::id()];
    while let Some(p) = out.last().copied().and_then(parent_of).filter(|&p| p > 1) {
        if out.contains(&p) || out.len() > 64 {
            break;
        }
        out.push(p);
    }
    out
}

/// The parent of process `pid` (field 4 of its `stat`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Polls until every one of `pids` is a zombie or gone; false when `end` came first.
fn wait_gone(pids: &[u32], end: Instant) -> bool {
    while pids.iter().any(|&pid| start_time(pid).is_some()) {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// One pass of [`kill_orphans`]: the pids it sent SIGKILL to.
fn kill_orphans_once() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    // A process started by a dead run may itself run oversell: it and its own
    // ancestors carry the dead run's mark too, and are not ours to kill.
    let inherited = std::env::var(RUN_ENV).ok();
    let mut killed = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Some(mark) = mark_of(pid) else {
            continue;
        };
        if inherited.as_deref() == Some(mark.as_str()) || owner_alive(&mark) {
            continue;
        }
        if kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
            killed.push(pid);
        }
    }
    killed
}

/// Longest a guard waits for the run it guards to be gone once its pipe closed.
const RUN_EXIT_WAIT: Duration = Duration::from_secs(5);

/// [`sweep_stale`] for a guard whose run `run_pid` just ended: its pipe closes while the
/// dying process still shows in `/proc` as running, and a sweep then would take the run
/// for alive and leave everything; so wait until it is a zombie or gone (a bounded wait),
/// then sweep.
pub fn sweep_after(run_pid: u32, root: &Path) -> usize {
    wait_gone(&[run_pid], Instant::now() + RUN_EXIT_WAIT);
    sweep_stale(root)
}

/// Removes what runs that are no longer running left: trial directories in `root`
/// (and the SysV semaphores they note), POSIX semaphores, and processes still marked
/// with a dead run's `OVERSELL_RUN` mark. Returns how many things were removed.
pub fn sweep_stale(root: &Path) -> usize {
    let mut removed = kill_orphans();
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid == std::process::id() || (pid_alive(pid) && start_time(pid).is_some()) {
                continue;
            }
            let path = entry.path();
            if let Ok(id) = std::fs::read_to_string(path.join(SEM_NOTE)) {
                if let Ok(id) = id.trim().parse::<i32>() {
                    sysv::remove(id);
                }
            }
            // What still runs there is the dead trial's, marked or not: a PostgreSQL
            // backend rewrites its environment (its process title), and with it the
            // run's mark, and outlives its killed postmaster until it notices.
            let inside: Vec<u32> = dwellers(&path)
                .into_iter()
                .filter(|&(pid, start)| start_time(pid) == Some(start))
                .filter(|&(pid, _)| kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok())
                .map(|(pid, _)| pid)
                .collect();
            wait_gone(&inside, Instant::now() + ORPHAN_BUDGET);
            // A killed postgres leaves its SysV segment; its pid file names it. A
            // database on the user's server (`--pg`) is dropped there.
            super::postgres::remove_segment(&path);
            super::postgres::drop_stale(&path);
            // A process of the dead run still dying (past the sweep's budget) may be
            // finishing a call there: try again briefly.
            for attempt in 0..3 {
                if std::fs::remove_dir_all(&path).is_ok() {
                    removed += 1;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5 << attempt));
            }
        }
    }
    removed + crate::lock::sweep_stale(&pid_alive)
}
