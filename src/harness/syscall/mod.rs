//! A controlled schedule whose yield points are system calls: a user's `--lock-cmd` or
//! `--buyer-cmd`, any program in any language, run one process at a time.
//!
//! Each buyer runs under a seccomp filter (`crate::seccomp`) that stops every process it
//! starts at the calls that can race on shared state and reports them to the harness: a
//! user's command from its exec on, oversell's own buyer from the start of its `main`
//! (it installs the filter itself). While a trial steps, its processes share one CPU,
//! where handing over from one to the next is a plain context switch.
//! A call is a *step* when it touches the trial's directory, or is a sleep (`call`);
//! any other call goes on at once. Between steps exactly one buyer runs: the harness
//! waits until every live buyer is stopped at a step (or has ended), asks the
//! [`Scheduler`] which one goes, and lets that one call run. So a schedule is the list of
//! buyers picked, as for oversell's own buyer, and it replays exactly.
//!
//! A lock call that would block (`flock`, `F_SETLKW`, `F_OFD_SETLKW`, probed before it
//! runs) leaves its buyer out of the runnable set until the lock is free; a conversion of
//! the caller's own `flock` first drops its lock, as the kernel does. A sleep returns at
//! once; a sleep or a failed try (a create that found the name taken: the busy loop with
//! no sleep) is a poll, and its buyer goes last until some step changes shared state; a
//! buyer that polled twice with nothing changed polls for something nobody will do (no
//! directory is read for this: the harness never opens a FIFO). When every live buyer is
//! blocked or polling like that, the trial is stuck: a `stale_lock` when a buyer was
//! killed by a fault, a `deadlock` otherwise — decided from these facts, at once.

mod stepper;
use crate::seccomp as filter;
use crate::seccomp::call;
mod program;
mod run;
mod store_cmd;

pub(super) use run::{run, run_with};

use std::sync::OnceLock;

/// Whether this kernel lets a process install a notifying seccomp filter: `Err` with
/// the reason when it does not (probed once, in a short-lived child).
pub fn available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

fn probe() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let mut cmd = std::process::Command::new("/bin/true");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let prog = filter::program(false).map_err(|e| format!("building the filter: {e}"))?;
    let (ours, theirs) =
        arm_filter(&mut cmd, &prog).map_err(|e| format!("making a socket: {e}"))?;
    let mut group = super::process::Group::default();
    let member = group
        .spawn(cmd)
        .map_err(|e| format!("seccomp refused: {e}"))?;
    drop(theirs);
    let listener = filter::recv_fd(ours.as_raw_fd()).map_err(|e| e.to_string());
    // /bin/true makes no yield-point call inside a trial directory: let it all go on.
    if let Ok(l) = &listener {
        while !group.wait_one(member, std::time::Duration::from_millis(5)) {
            if let Ok(Some(n)) = poll_recv(l.as_raw_fd()) {
                call::answer(l.as_raw_fd(), n.id, true);
            }
        }
    }
    group.finish();
    listener.map(|_| ())
}

/// Arms `cmd` to install the filter and send its listener over a fresh socket; gives
/// both ends: the harness's, and the child's, to be closed here once `cmd` is spawned.
pub(super) fn arm_filter(
    cmd: &mut std::process::Command,
    prog: &[libc::sock_filter],
) -> std::io::Result<(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let mut prog = prog.to_vec();
    let raw = theirs.as_raw_fd();
    let parent = std::process::id();
    // SAFETY: `die_with`, `handoff_fd` and `install` make only async-signal-safe calls
    // and allocate nothing. The death signal comes first: once the filter is in place, the child's
    // own calls before exec wait on this process, and would wait forever if it died.
    unsafe {
        cmd.pre_exec(move || {
            crate::harness::process::die_with(parent)?;
            filter::install(&mut prog, filter::handoff_fd(raw))
        });
    }
    Ok((ours, theirs))
}

/// Starts, once per run, `exe __guard ROOT` (ROOT: where trial directories go, the
/// [`scratch_root`](crate::harness::scratch_root)): it outlives this process and, when this
/// process ends (SIGKILL included, which no handler sees), kills what a syscall trial
/// left. Those are not only the buyers' direct children, which die with the harness
/// (`PR_SET_PDEATHSIG`): a lock command's own children stay, and with the listener gone
/// every call the filter stops fails with `ENOSYS`, so a polling loop would spin forever.
pub(super) fn guard(exe: &std::path::Path) {
    use std::process::{Child, ChildStdin, Command, Stdio};
    static GUARD: std::sync::Mutex<Option<(Child, ChildStdin)>> = std::sync::Mutex::new(None);
    let Ok(mut slot) = GUARD.lock() else {
        return;
    };
    if slot.is_some() {
        return;
    }
    let mut cmd = Command::new(exe);
    cmd.arg("__guard")
        .arg(crate::harness::scratch_root())
        .env_remove(super::sweep::RUN_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own group: a Ctrl-C meant for the run does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Ok(mut child) = cmd.spawn() {
        if let Some(stdin) = child.stdin.take() {
            *slot = Some((child, stdin));
        }
    }
}

/// One notification when one is waiting on `listener`.
fn poll_recv(listener: std::os::fd::RawFd) -> std::io::Result<Option<call::Notif>> {
    let mut fds = [libc::pollfd {
        fd: listener,
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: poll on one pollfd of this frame.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 1, 1) };
    if r > 0 && fds[0].revents & libc::POLLIN != 0 {
        call::recv(listener)
    } else {
        Ok(None)
    }
}
