//! Waiting in the kernel: whether a buyer's processes all sleep in calls that only
//! another process can end (a `sem_wait` on a contended semaphore is a `futex` wait, a
//! SysV `semop`, a `read` of a socket or pipe, a FIFO's `open`, a `wait4` for a child
//! that waits too), so the buyer is *blocked*, not running toward its next step.
//!
//! The filter stops a buyer at the calls it knows; a call it lets through may still
//! sleep. Without this the harness would wait for that buyer to reach its next step
//! until the trial's timeout. Each process's state, wait channel and current call are
//! read from `/proc`: a process asleep in a seccomp notification is at a step (the
//! listener will say so), and a timed wait (a `select` with a timeout, a timed `futex`)
//! ends by itself, so neither is blocked. On the trial's one CPU, a process woken by
//! another's call is runnable before that other one reaches its next step, so reading
//! the state once every running buyer has settled gives the same answer every run.

use super::paths::read_proc;
use std::path::Path;

/// True when every live process of the tree rooted at `root` (its threads included)
/// sleeps in a call with no time limit that is no seccomp notification; false when one
/// runs, is at a step, waits with a time limit, or none is left.
pub(crate) fn waiting_in_kernel(root: u32) -> bool {
    waiting_view(root).is_some()
}

/// When every live task of the tree rooted at `root` sleeps in a call with no time limit
/// that is no seccomp notification ([`waiting_in_kernel`]): each task with the call it
/// sleeps in (its `/proc/…/syscall` line: number, arguments, stack and program
/// counter). A tree seen so twice, a moment apart, is asleep, not caught between a
/// child's exit and its parent's wakeup; `None` while one runs, or none is left.
pub(crate) fn waiting_view(root: u32) -> Option<Vec<(u32, String)>> {
    let mut view = Vec::new();
    // Without the children list (a kernel without it) a waiting parent cannot be told
    // from one whose child runs: not blocked.
    let whole = each_task(root, true, &mut |t| match t.state() {
        Task::Gone => Walk::Skip,
        Task::Waiting(call) => {
            let call = call
                .or_else(|| read_proc(t.path.join("syscall")))
                .unwrap_or_default();
            match t.tid() {
                Some(tid) => {
                    view.push((tid, call.trim().to_string()));
                    Walk::Go
                }
                None => Walk::Stop,
            }
        }
        Task::Notifying | Task::Busy => Walk::Stop,
    });
    (whole && !view.is_empty()).then_some(view)
}

/// True when no process of the tree rooted at `root` is alive past its exit: each is a
/// zombie or gone, so every file it held is closed and every lock on them let go.
pub(crate) fn exited(root: u32) -> bool {
    each_task(root, false, &mut |t| {
        let state = t.stat().map_or_else(|| "X".to_string(), |s| s.0);
        if matches!(state.as_str(), "Z" | "X" | "x") {
            Walk::Go
        } else {
            Walk::Stop
        }
    })
}

/// How many processes of the tree rooted at `root` are alive (not yet zombies).
pub(crate) fn live_processes(root: u32) -> usize {
    let mut live = 0;
    each_task(root, false, &mut |t| {
        // A process's first task has its pid for its id: count processes, not threads.
        let leader = t
            .path
            .parent()
            .and_then(|p| p.parent())
            .and_then(|p| p.file_name())
            == t.path.file_name();
        let state = t.stat().map_or_else(|| "X".to_string(), |s| s.0);
        if leader && !matches!(state.as_str(), "Z" | "X" | "x") {
            live += 1;
        }
        Walk::Go
    });
    live
}

/// What a task of a whole program does while the program is still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Still {
    /// Asleep in a call only another process can end.
    Waiting,
    /// Stopped in a notified system call.
    Notifying,
}

/// Each live task (thread) of the tree rooted at `root` with what it does, when none
/// runs: each waits in the kernel for another or is stopped in a notified call; `None`
/// while one runs, waits with a time limit, or the tree cannot be read whole.
pub(crate) fn still_tree(root: u32) -> Option<Vec<(u32, Still)>> {
    let mut tasks = Vec::new();
    let whole = each_task(root, true, &mut |t| {
        let Some(tid) = t.tid() else {
            return Walk::Stop;
        };
        match t.state() {
            Task::Gone => Walk::Skip,
            Task::Waiting(_) => {
                tasks.push((tid, Still::Waiting));
                Walk::Go
            }
            Task::Notifying => {
                tasks.push((tid, Still::Notifying));
                Walk::Go
            }
            // A task seen busy may be on its way into its next notification (its state
            // read as it went to sleep there, its wait channel not yet): one more look.
            Task::Busy if matches!(task_state(&t.path), Task::Notifying) => {
                tasks.push((tid, Still::Notifying));
                Walk::Go
            }
            Task::Busy => Walk::Stop,
        }
    });
    whole.then_some(tasks)
}

/// True when task `tid` sleeps in a seccomp notification of a call other than `nr`:
/// stopped at a later call than one of `nr` it was just let go from.
pub(crate) fn in_notification(tid: u32, nr: i64) -> bool {
    let task = Path::new("/proc").join(tid.to_string());
    in_seccomp(&task) && call_nr(&task).is_some_and(|c| c != nr)
}

/// True when the task sleeps in a seccomp notification.
fn in_seccomp(task: &Path) -> bool {
    stat_of(task).is_some_and(|(state, _, _)| state == "S" || state == "D") && seccomp_wait(task)
}

/// True when the task's wait channel is a seccomp notification's.
fn seccomp_wait(task: &Path) -> bool {
    read_proc(task.join("wchan")).is_some_and(|w| w.contains("seccomp"))
}

/// The number of the call the task is in (`/proc/PID/syscall`'s first field).
fn call_nr(task: &Path) -> Option<i64> {
    read_proc(task.join("syscall"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What [`each_task`] does after a task.
enum Walk {
    /// Go on, into the task's children.
    Go,
    /// Go on, but not into its children.
    Skip,
    /// Stop: the walk's answer is false.
    Stop,
}

/// A task met by [`each_task`]: its directory under `/proc` and its `stat` line, read
/// once as the walk met it (`None`: gone).
struct Met {
    path: std::path::PathBuf,
    stat: Option<String>,
}

impl Met {
    /// Its state letter, parent and process group, from the line the walk read.
    fn stat(&self) -> Option<(String, u32, u32)> {
        self.stat.as_deref().and_then(parse_stat)
    }

    /// What it does, from the walk's look at its state and, where the state leaves it
    /// open, a fresh look at its wait channel and call.
    fn state(&self) -> Task {
        state_of(&self.path, self.stat())
    }

    /// Its id (the last part of its path).
    fn tid(&self) -> Option<u32> {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
    }
}

/// Visits every task (thread) of the process tree rooted at `root`; false when `visit`
/// stopped it, or when `need_children` and a task's children list cannot be read. A
/// process of one thread, its leader (its leader's `stat` says so), is not listed: the
/// `stat` line read to learn that is the one its visit reads.
fn each_task(root: u32, need_children: bool, visit: &mut dyn FnMut(&Met) -> Walk) -> bool {
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        let leader = Path::new("/proc")
            .join(pid.to_string())
            .join("task")
            .join(pid.to_string());
        let stat = read_proc(leader.join("stat"));
        // One thread, and that the leader: a leader that ended before its other
        // threads is a zombie, and the count is theirs.
        let alone = stat.as_deref().is_some_and(|s| {
            threads(s) == Some(1) && parse_stat(s).is_some_and(|(state, _, _)| state != "Z")
        });
        let tasks: Vec<std::path::PathBuf> = if alone {
            vec![leader.clone()]
        } else {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            tasks.flatten().map(|t| t.path()).collect()
        };
        let mut leader_stat = Some(stat);
        for path in tasks {
            let stat = match leader_stat.take_if(|_| path == leader) {
                Some(stat) => stat,
                None => read_proc(path.join("stat")),
            };
            let t = Met { path, stat };
            match visit(&t) {
                Walk::Stop => return false,
                Walk::Skip => continue,
                Walk::Go => {}
            }
            match read_proc(t.path.join("children")) {
                Some(children) => pending.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                ),
                None if need_children => return false,
                None => {}
            }
        }
    }
    true
}

/// How many threads the process has, from a `stat` line of one of its tasks (the 20th
/// field).
fn threads(stat: &str) -> Option<u32> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(17)?
        .parse()
        .ok()
}

/// True when no process of the process group `pgid` is alive past its exit (a child
/// its parent's death left to another is still in the group, and may still hold what
/// the buyer held).
pub(crate) fn group_exited(pgid: u32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    for p in procs.flatten() {
        let numeric = p
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !numeric {
            continue;
        }
        let Some((state, _, group)) = stat_of(&p.path()) else {
            continue;
        };
        if group == pgid && !matches!(state.as_str(), "Z" | "X" | "x") {
            return false;
        }
    }
    true
}

/// True when a process of one of the trees rooted at `roots`, or of one of the process
/// groups `groups`, is on its way out but not yet a zombie: killed (a `SIGKILL`
/// pending) or exiting (`PF_EXITING`). Its files may still be open, so a lock it held
/// may still be let go: until none is, "nobody can go on" is not yet a fact.
pub(crate) fn dying(roots: &[u32], groups: &[u32]) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Some(stat) = read_proc(p.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        // After the command name: state, parent, group, session, tty, tpgid, flags.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let group = fields.get(2).and_then(|g| g.parse::<u32>().ok());
        let ours = roots.contains(&pid) || group.is_some_and(|g| groups.contains(&g));
        if !ours || matches!(fields.first(), Some(&("Z" | "X" | "x")) | None) {
            continue;
        }
        const PF_EXITING: u64 = 0x4;
        let flags = fields
            .get(6)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        if flags & PF_EXITING != 0 || kill_pending(pid) {
            return true;
        }
    }
    false
}

/// True when `SIGKILL` is pending for process `pid` (for it or its thread group).
fn kill_pending(pid: u32) -> bool {
    let Some(status) = read_proc(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (libc::SIGKILL - 1);
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .any(|mask| mask & bit != 0)
}

/// The process group of `pid`, when it leads one of its own.
pub(crate) fn own_group(pid: u32) -> Option<u32> {
    let (_, _, group) = stat_of(Path::new(&format!("/proc/{pid}")))?;
    (group == pid).then_some(group)
}

/// True when the process `pid` and its children (every thread) sleep in a call with no
/// time limit, or wait for events: a helper process (a lock or database server) that
/// has nothing left to do.
pub(crate) fn idle(pid: u32) -> bool {
    // Its children too: a database's backend, one per connection.
    each_task(pid, false, &mut |t| {
        if matches!(t.state(), Task::Busy | Task::Notifying) && !awaits_events(&t.path) {
            Walk::Stop
        } else {
            Walk::Go
        }
    })
}

/// True when the task sleeps in an event wait (`epoll_wait`, `poll`, `select`), with or
/// without a time limit: a server waiting for its clients, whose timer (a Redis server's
/// cron) changes nothing a client asked for.
fn awaits_events(task: &Path) -> bool {
    let asleep = stat_of(task).is_some_and(|(state, _, _)| state == "S");
    let Some(line) = read_proc(task.join("syscall")).filter(|_| asleep) else {
        return false;
    };
    let nr = line
        .split_whitespace()
        .next()
        .and_then(|w| w.parse::<i64>().ok());
    let events = [
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
        libc::SYS_ppoll,
        libc::SYS_pselect6,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_epoll_wait,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_poll,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_select,
    ];
    nr.is_some_and(|nr| events.contains(&nr))
}

/// A task's state letter, parent and process group, from its `stat` file (`path` is
/// `/proc/PID` or `/proc/PID/task/TID`); `None` when it is gone.
fn stat_of(path: &Path) -> Option<(String, u32, u32)> {
    parse_stat(&read_proc(path.join("stat"))?)
}

/// A `stat` line's state letter, parent and process group.
fn parse_stat(stat: &str) -> Option<(String, u32, u32)> {
    // The fields after the command name (in parentheses, which may hold spaces) start
    // with the state, then the parent, then the group.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.to_string();
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, parent, group))
}

/// Where the tasks of the tree rooted at `root` are, in words, for a trial killed at its
/// timeout: each task asleep in a call (`` asleep in `flock` ``), stopped (by a signal)
/// or running, the same ones counted (`` asleep in `futex` (×3) ``); `None` when none is
/// left.
pub(crate) fn whereabouts(root: u32) -> Option<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    each_task(root, false, &mut |t| {
        let Some((state, _, _)) = t.stat() else {
            return Walk::Skip;
        };
        // In which call, from the task's `/proc/…/syscall` line.
        let in_call = |how: &str| match call_nr(&t.path) {
            Some(nr) => match call_name(nr) {
                Some(name) => format!("{how} in `{name}`"),
                None => format!("{how} in call {nr}"),
            },
            None => how.to_string(),
        };
        let what = match state.as_str() {
            "Z" | "X" | "x" => return Walk::Skip,
            "T" | "t" => "stopped".to_string(),
            "R" => "running".to_string(),
            "D" if !vforking(&t.path) => in_call("waiting on the disk"),
            _ => in_call("asleep"),
        };
        match seen.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => seen.push((what, 1)),
        }
        Walk::Go
    });
    (!seen.is_empty()).then(|| {
        seen.iter()
            .map(|(w, n)| {
                if *n > 1 {
                    format!("{w} (×{n})")
                } else {
                    w.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// True when a task of the tree rooted at `root` is in the kernel's uninterruptible wait
/// (`D`: a write or a truncation the file system's journal holds up), a `vfork` parent
/// aside: the machine is working for it, however long that takes.
pub(crate) fn in_disk_wait(root: u32) -> bool {
    let mut found = false;
    each_task(root, false, &mut |t| {
        if t.stat().is_some_and(|(state, _, _)| state == "D") && !vforking(&t.path) {
            found = true;
            return Walk::Stop;
        }
        Walk::Go
    });
    found
}

/// A call's name, without `SYS_`, as the table of the filter or of common waits has it.
fn call_name(nr: i64) -> Option<&'static str> {
    waiting_call_name(nr)
        .or_else(|| super::calls::of(nr).map(|c| c.name))
        .map(|n| n.trim_start_matches("SYS_"))
}

/// The name of a call a process commonly sleeps in that the filter's table may not hold
/// (it lets them through).
#[allow(non_upper_case_globals)] // libc's call numbers, as patterns
fn waiting_call_name(nr: i64) -> Option<&'static str> {
    use libc::*;
    Some(match nr {
        SYS_wait4 => "wait4",
        SYS_waitid => "waitid",
        SYS_read => "read",
        SYS_write => "write",
        SYS_futex => "futex",
        SYS_clock_nanosleep => "clock_nanosleep",
        SYS_ppoll => "ppoll",
        SYS_pselect6 => "pselect6",
        SYS_epoll_pwait => "epoll_pwait",
        SYS_rt_sigsuspend => "rt_sigsuspend",
        SYS_rt_sigtimedwait => "rt_sigtimedwait",
        SYS_recvfrom => "recvfrom",
        SYS_recvmsg => "recvmsg",
        SYS_accept4 => "accept4",
        SYS_connect => "connect",
        SYS_openat => "openat",
        SYS_flock => "flock",
        SYS_fcntl => "fcntl",
        SYS_semtimedop => "semtimedop",
        SYS_msgrcv => "msgrcv",
        #[cfg(target_arch = "x86_64")]
        SYS_nanosleep => "nanosleep",
        #[cfg(target_arch = "x86_64")]
        SYS_poll => "poll",
        #[cfg(target_arch = "x86_64")]
        SYS_select => "select",
        #[cfg(target_arch = "x86_64")]
        SYS_epoll_wait => "epoll_wait",
        #[cfg(target_arch = "x86_64")]
        SYS_pause => "pause",
        #[cfg(target_arch = "x86_64")]
        SYS_semop => "semop",
        #[cfg(target_arch = "x86_64")]
        SYS_accept => "accept",
        _ => return None,
    })
}

/// The parent and process group of process `pid`; `None` when it is gone.
pub(crate) fn parent_and_group(pid: u32) -> Option<(u32, u32)> {
    stat_of(&Path::new("/proc").join(pid.to_string())).map(|(_, parent, group)| (parent, group))
}

/// What a task does, from one look at its files (its state, then, only where the state
/// leaves it open, its wait channel and its call).
enum Task {
    /// A zombie, or gone.
    Gone,
    /// Asleep in a call only another process can end, with its `/proc/…/syscall` line
    /// where the look read it.
    Waiting(Option<String>),
    /// Stopped in a notified call (asleep in a seccomp notification), or held stopped by
    /// the harness's `ptrace` after a fork (`t`): either way it waits for the schedule.
    Notifying,
    /// Running, runnable, or in a wait that ends by itself.
    Busy,
}

fn task_state(task: &Path) -> Task {
    state_of(task, stat_of(task))
}

/// [`task_state`], its `stat` line already read (`None`: gone).
fn state_of(task: &Path, stat: Option<(String, u32, u32)>) -> Task {
    let Some((state, _, _)) = stat else {
        return Task::Gone;
    };
    let asleep = match state.as_str() {
        "Z" | "X" | "x" => return Task::Gone,
        "t" => return Task::Notifying,
        // Stopped by a signal (SIGSTOP, SIGTSTP): it waits for another's SIGCONT.
        "T" => return Task::Waiting(None),
        // Only an interruptible sleep waits for another process; `D` is the kernel's
        // own short wait (disk, memory), but for a `vfork` parent's (it waits until its
        // child has called `execve` or ended) and a notification read by the harness
        // (it waits killable once a signal the task handles has come: a SIGSTOP, a
        // shell's SIGCHLD).
        "S" => true,
        "D" => false,
        _ => return Task::Busy,
    };
    let wchan = read_proc(task.join("wchan")).unwrap_or_default();
    if wchan.contains("seccomp") {
        return Task::Notifying;
    }
    if !asleep {
        return if vforking_in(task, &wchan) {
            Task::Waiting(None)
        } else {
            Task::Busy
        };
    }
    let Some(call) = read_proc(task.join("syscall")) else {
        return Task::Busy;
    };
    if untimed(&call) {
        Task::Waiting(Some(call))
    } else {
        Task::Busy
    }
}

/// The call a task of the tree rooted at `root` is asleep in with a time limit, waiting
/// on something another process may do: a `poll` or `select` on descriptors, a timed
/// `epoll_wait`, `semtimedop`, a timed wait on a shared futex, `rt_sigtimedwait`,
/// `mq_timedreceive`. The harness waits for such a call as for a running one (it ends by
/// itself), so only the way where the limit passes is taken: the other (what it waits for
/// comes in time) is a path no schedule takes. `None` when no task waits so.
pub(crate) fn timed_wait(root: u32) -> Option<&'static str> {
    let mut found = None;
    each_task(root, false, &mut |t| {
        if t.stat().is_none_or(|s| s.0 != "S") {
            return Walk::Go;
        }
        match read_proc(t.path.join("syscall")).and_then(|line| limited(&line)) {
            Some(call) => {
                found = Some(call);
                Walk::Stop
            }
            None => Walk::Go,
        }
    });
    found
}

/// The call `/proc/PID/syscall`'s line names when it waits on another process with a
/// time limit ([`timed_wait`]).
fn limited(line: &str) -> Option<&'static str> {
    let (nr, args) = syscall_line(line)?;
    limited_call(nr, &args)
}

/// The name of call `nr` when, with these arguments, it waits with a time limit on what
/// another process may do ([`timed_wait`]); `None` otherwise.
pub(crate) fn limited_call(nr: i64, args: &[u64]) -> Option<&'static str> {
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    let futex_wait = || {
        let op = arg(1) as i32;
        let cmd = op & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
        op & libc::FUTEX_PRIVATE_FLAG == 0
            && (cmd == libc::FUTEX_WAIT || cmd == libc::FUTEX_WAIT_BITSET)
            && arg(3) != 0
    };
    with_limit(nr, &arg, &futex_wait)
}

#[cfg(target_arch = "x86_64")]
#[allow(non_upper_case_globals)] // libc's call numbers, as patterns
fn with_limit(
    nr: i64,
    arg: &dyn Fn(usize) -> u64,
    futex_wait: &dyn Fn() -> bool,
) -> Option<&'static str> {
    use libc::*;
    // A poll of no descriptor is a sleep, which ends by itself whatever others do.
    let (name, timed) = match nr {
        SYS_poll => ("poll", arg(1) > 0 && (arg(2) as i32) > 0),
        SYS_select => ("select", arg(0) > 0 && arg(4) != 0),
        SYS_epoll_wait => ("epoll_wait", (arg(3) as i32) > 0),
        _ => return shared_with_limit(nr, arg, futex_wait),
    };
    timed.then_some(name)
}

#[cfg(not(target_arch = "x86_64"))]
fn with_limit(
    nr: i64,
    arg: &dyn Fn(usize) -> u64,
    futex_wait: &dyn Fn() -> bool,
) -> Option<&'static str> {
    shared_with_limit(nr, arg, futex_wait)
}

/// [`with_limit`] for the calls both architectures have.
#[allow(non_upper_case_globals)] // libc's call numbers, as patterns
fn shared_with_limit(
    nr: i64,
    arg: &dyn Fn(usize) -> u64,
    futex_wait: &dyn Fn() -> bool,
) -> Option<&'static str> {
    use libc::*;
    let (name, timed) = match nr {
        SYS_ppoll => ("ppoll", arg(1) > 0 && arg(2) != 0),
        SYS_pselect6 => ("pselect6", arg(0) > 0 && arg(4) != 0),
        SYS_epoll_pwait => ("epoll_pwait", (arg(3) as i32) > 0),
        SYS_epoll_pwait2 => ("epoll_pwait2", arg(3) != 0),
        SYS_semtimedop => ("semtimedop", arg(3) != 0),
        SYS_futex => ("futex", futex_wait()),
        SYS_rt_sigtimedwait => ("rt_sigtimedwait", arg(2) != 0),
        SYS_mq_timedreceive => ("mq_timedreceive", arg(4) != 0),
        SYS_mq_timedsend => ("mq_timedsend", arg(4) != 0),
        _ => return None,
    };
    timed.then_some(name)
}

/// True when the task is a parent in `vfork`, waiting for its child to call `execve`
/// or end (`kernel_clone`, in a call that makes a task).
fn vforking(task: &Path) -> bool {
    read_proc(task.join("wchan")).is_some_and(|w| vforking_in(task, &w))
}

/// [`vforking`], the task's wait channel `wchan` already read.
fn vforking_in(task: &Path, wchan: &str) -> bool {
    wchan.trim() == "kernel_clone"
        && call_nr(task)
            .and_then(crate::seccomp::of)
            .is_some_and(|c| c.effect == crate::seccomp::Effect::Spawn)
}

/// The call number and arguments `/proc/PID/syscall`'s line names (as many arguments as
/// it gives); `None` when the task is in no call (`running`).
fn syscall_line(line: &str) -> Option<(i64, Vec<u64>)> {
    let mut words = line.split_whitespace();
    let nr = words.next()?.parse::<i64>().ok()?;
    let args = words
        .take(6)
        .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
        .collect();
    Some((nr, args))
}

/// True when `/proc/PID/syscall`'s line names a call that sleeps with no time limit.
fn untimed(line: &str) -> bool {
    let Some((nr, args)) = syscall_line(line) else {
        return false;
    };
    let arg = |i: usize| args.get(i).copied().unwrap_or(1);
    no_limit(nr, &arg)
}

#[cfg(target_arch = "x86_64")]
#[allow(non_upper_case_globals)] // libc's call numbers, as patterns
fn no_limit(nr: i64, arg: &dyn Fn(usize) -> u64) -> bool {
    use libc::*;
    match nr {
        SYS_futex => {
            let cmd = (arg(1) as i32) & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
            let waits = [
                FUTEX_WAIT,
                FUTEX_WAIT_BITSET,
                FUTEX_LOCK_PI,
                FUTEX_WAIT_REQUEUE_PI,
            ];
            waits.contains(&cmd) && arg(3) == 0
        }
        SYS_semop | SYS_msgrcv | SYS_msgsnd | SYS_pause | SYS_wait4 | SYS_waitid
        | SYS_rt_sigsuspend | SYS_accept | SYS_accept4 | SYS_connect | SYS_read | SYS_readv
        | SYS_write | SYS_writev | SYS_recvfrom | SYS_recvmsg | SYS_sendto | SYS_sendmsg
        | SYS_open | SYS_openat | SYS_flock => true,
        SYS_fcntl => {
            let cmd = arg(1) as i32;
            cmd == F_SETLKW || cmd == F_OFD_SETLKW
        }
        SYS_semtimedop => arg(3) == 0,
        // A POSIX message queue's receive or send with no time limit (`mq_receive`).
        SYS_mq_timedreceive | SYS_mq_timedsend => arg(4) == 0,
        SYS_poll => arg(2) as i32 == -1,
        SYS_ppoll => arg(2) == 0,
        SYS_select | SYS_pselect6 => arg(4) == 0,
        SYS_epoll_wait | SYS_epoll_pwait => arg(3) as i32 == -1,
        SYS_rt_sigtimedwait => arg(2) == 0,
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(non_upper_case_globals)] // libc's call numbers, as patterns
fn no_limit(nr: i64, arg: &dyn Fn(usize) -> u64) -> bool {
    use libc::*;
    match nr {
        SYS_futex => {
            let cmd = (arg(1) as i32) & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
            (cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET) && arg(3) == 0
        }
        SYS_semop | SYS_read | SYS_write | SYS_recvfrom | SYS_openat | SYS_wait4 => true,
        SYS_mq_timedreceive | SYS_mq_timedsend => arg(4) == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_meets_each_thread_with_its_state_read() {
        // This test's process has several threads: each is met, each with its line.
        let mut met = Vec::new();
        each_task(std::process::id(), false, &mut |t| {
            met.push((t.tid(), t.stat().map(|s| s.0)));
            Walk::Skip
        });
        assert!(met.len() >= 2, "{met:?}");
        assert!(met
            .iter()
            .all(|(tid, state)| tid.is_some() && state.is_some()));
        // A process of one thread is its leader alone.
        let Ok(mut child) = std::process::Command::new("sleep").arg("5").spawn() else {
            return;
        };
        let pid = child.id();
        let mut met = Vec::new();
        each_task(pid, false, &mut |t| {
            met.push(t.tid());
            Walk::Go
        });
        assert_eq!(live_processes(pid), 1);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(met, vec![Some(pid)]);
        assert_eq!(
            threads("1 (a b) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0"),
            Some(3)
        );
    }

    #[test]
    fn an_untimed_futex_wait_blocks_and_a_timed_one_does_not() {
        let wait = format!(
            "{} 0x7f00 0x80 0x0 0x0 0x0 0x0 0x7ffe 0x7f01",
            libc::SYS_futex
        );
        assert!(untimed(&wait));
        let timed = format!(
            "{} 0x7f00 0x80 0x0 0x7ffd 0x0 0x0 0x7ffe 0x7f01",
            libc::SYS_futex
        );
        assert!(!untimed(&timed));
        let wake = format!(
            "{} 0x7f00 0x81 0x1 0x0 0x0 0x0 0x7ffe 0x7f01",
            libc::SYS_futex
        );
        assert!(!untimed(&wake));
        assert!(!untimed("running"));
    }

    #[test]
    fn a_message_queue_receive_without_a_limit_blocks() {
        // `mq_receive` is `mq_timedreceive` with no deadline: taken for running, a
        // waiter made a sound token lock a `hang`.
        let nr = libc::SYS_mq_timedreceive;
        assert!(untimed(&format!(
            "{nr} 0x3 0x7f00 0x1 0x0 0x0 0x0 0x7ffe 0x7f01"
        )));
        assert!(!untimed(&format!(
            "{nr} 0x3 0x7f00 0x1 0x0 0x7ffd 0x0 0x7ffe 0x7f01"
        )));
        assert_eq!(
            limited(&format!("{nr} 0x3 0x7f00 0x1 0x0 0x7ffd 0x0 0x7ffe 0x7f01")),
            Some("mq_timedreceive")
        );
    }

    #[test]
    fn a_poll_of_descriptors_with_a_limit_is_a_timed_wait_and_a_sleep_is_not() {
        let line = |nr: i64, args: [u64; 6]| {
            let a: Vec<String> = args.iter().map(|a| format!("{a:#x}")).collect();
            format!("{nr} {} 0x7ffe 0x7f01", a.join(" "))
        };
        let ppoll = libc::SYS_ppoll;
        assert_eq!(
            limited(&line(ppoll, [0x7f00, 1, 0x7ffd, 0, 8, 0])),
            Some("ppoll")
        );
        assert_eq!(limited(&line(ppoll, [0x7f00, 1, 0, 0, 8, 0])), None);
        assert_eq!(limited(&line(ppoll, [0, 0, 0x7ffd, 0, 8, 0])), None);
        let pselect = libc::SYS_pselect6;
        assert_eq!(
            limited(&line(pselect, [4, 0x7f00, 0, 0, 0x7ffd, 0])),
            Some("pselect6")
        );
        assert_eq!(limited(&line(pselect, [0, 0, 0, 0, 0x7ffd, 0])), None);
        let futex = libc::SYS_futex;
        assert_eq!(
            limited(&line(futex, [0x7f00, 0, 1, 0x7ffd, 0, 0])),
            Some("futex")
        );
        assert_eq!(limited(&line(futex, [0x7f00, 0x80, 1, 0x7ffd, 0, 0])), None);
        assert_eq!(limited("running"), None);
    }

    #[test]
    fn this_test_is_busy_not_waiting() {
        assert!(!waiting_in_kernel(std::process::id()));
    }
}
