//! A fork in a whole program whose processes share memory: the parent and the new task
//! held apart until each is scheduled.
//!
//! A `fork` is no point at which a process waits: once it returns, parent and child both
//! run on, side by side, until each reaches its next stopped call. Between those calls
//! they may touch the memory they share (an uncontended `multiprocessing.Lock` acquire is
//! a store to it and no call), so which of them takes the lock first would be the
//! kernel's choice, not the schedule's: a search would not repeat itself, and would miss
//! the order it never saw. So the call that makes a task is a step; when it is let go the
//! parent is traced (`ptrace`, for the span of the call only, with its new tasks traced
//! from birth), both stop once the task exists, and each becomes a held step of its own
//! unit: the parent's return from the fork and the child's first run. Letting one of them
//! go detaches it, and it runs alone to its next call.

use super::Stepper;
use crate::seccomp::blocked;
use crate::seccomp::call::{Notif, Step};
use crate::seccomp::Effect;
use std::time::{Duration, Instant};

/// What a traced task did when waited for.
enum Stop {
    /// It made a task, which is traced and stopped too; with `vfork` semantics (the
    /// parent sleeps until the task has called `execve` or ended) when true.
    Forked(u32, bool),
    /// It stopped for another reason: a signal on its way in (its number), or a stop
    /// of its own (0).
    Other(i32),
    /// It is gone.
    Gone,
}

/// A held step: a traced task stopped where `name` says.
fn held(pid: u32, name: &'static str) -> (Notif, Step) {
    (
        Notif {
            held: true,
            id: 0,
            pid,
            nr: -1,
            args: [0; 6],
        },
        Step::new(name, String::new(), Effect::Spawn, true),
    )
}

/// `ptrace(request, pid, 0, data)`; false when the kernel refused.
fn trace(request: libc::c_uint, pid: u32, data: usize) -> bool {
    // SAFETY: these requests (seize, detach, continue, interrupt) take no pointer: the
    // address is 0 and `data` is a number (options or a signal).
    unsafe { libc::ptrace(request, pid as libc::pid_t, 0usize, data) == 0 }
}

/// The task a traced parent just made (`PTRACE_GETEVENTMSG`).
fn new_task(pid: u32) -> Option<u32> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: GETEVENTMSG writes one unsigned long to the address given, a local here.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            pid as libc::pid_t,
            0usize,
            &mut msg as *mut libc::c_ulong,
        )
    };
    (r == 0).then_some(msg as u32)
}

/// Waits (without blocking) for traced task `pid`: what it did, or `None` when it has
/// not stopped yet.
fn wait(pid: u32) -> Option<Stop> {
    let mut status = 0;
    // SAFETY: waitpid writes the status to a local; `__WALL` waits for a traced thread
    // as for a process.
    let r = unsafe {
        libc::waitpid(
            pid as libc::pid_t,
            &mut status,
            libc::__WALL | libc::WNOHANG,
        )
    };
    if r == 0 {
        return None;
    }
    if r < 0 || libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
        return Some(Stop::Gone);
    }
    let (sig, event) = (libc::WSTOPSIG(status), status >> 16);
    let forked = [
        libc::PTRACE_EVENT_FORK,
        libc::PTRACE_EVENT_VFORK,
        libc::PTRACE_EVENT_CLONE,
    ];
    if sig == libc::SIGTRAP && forked.contains(&event) {
        let vfork = event == libc::PTRACE_EVENT_VFORK;
        return Some(new_task(pid).map_or(Stop::Other(0), |t| Stop::Forked(t, vfork)));
    }
    let signal = if event == 0 && sig != libc::SIGTRAP {
        sig
    } else {
        0
    };
    Some(Stop::Other(signal))
}

/// Waits until traced task `pid` stops (for a fork, when `fork` names the call that
/// makes it: any other stop is let go on, its signal passed on), or is gone; `None`
/// when `until` passes first or, for a fork, when the task is seen stopped at a later
/// call instead (the fork failed, and made no task).
fn wait_for(pid: u32, until: Instant, fork: Option<i64>) -> Option<Stop> {
    loop {
        match wait(pid) {
            Some(Stop::Other(sig)) if fork.is_some() => {
                trace(libc::PTRACE_CONT, pid, sig as usize);
            }
            Some(s) => return Some(s),
            None if fork.is_some_and(|nr| blocked::in_notification(pid, nr)) => {
                // Its fork is over: an event reported meanwhile is still to be read.
                return match wait(pid) {
                    Some(Stop::Forked(t, v)) => Some(Stop::Forked(t, v)),
                    _ => None,
                };
            }
            None => {}
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

impl Stepper {
    /// Lets buyer `b`'s stopped fork `n` go on with its parent traced, and holds the
    /// parent and the new task, each a step of its own unit. A fork that fails, or a
    /// parent that cannot be traced, goes on untraced.
    pub(super) fn fork(&mut self, b: usize, n: Notif, step: &Step) {
        let fd = self.fd(b);
        let label = step.label(&self.real_dir);
        let options = libc::PTRACE_O_TRACEFORK
            | libc::PTRACE_O_TRACEVFORK
            | libc::PTRACE_O_TRACECLONE
            | libc::PTRACE_O_EXITKILL;
        if !trace(libc::PTRACE_SEIZE, n.pid, options as usize) {
            self.trace
                .push(format!("buyer {b} {label} → ok (untraced)"));
            return crate::seccomp::call::answer(fd, n.id, true);
        }
        crate::seccomp::call::answer(fd, n.id, true);
        self.epoch += 1;
        match wait_for(n.pid, self.deadline, Some(n.nr)) {
            Some(Stop::Forked(child, vfork)) => {
                // The new task starts stopped; wait for that stop before counting on it
                // (it is sure to come: only the trial's end cuts it short).
                let _ = wait_for(child, self.deadline, None);
                if vfork {
                    // The parent can run on only once the task has called `execve` or
                    // ended: there is no order to choose. It goes on (into that wait,
                    // which `blocked` sees as a wait for another) and the task is held.
                    trace(libc::PTRACE_DETACH, n.pid, 0);
                    self.trace
                        .push(format!("buyer {b} {label} → a task made, held"));
                } else {
                    self.trace
                        .push(format!("buyer {b} {label} → a task made, both held"));
                    self.buyers[b].parked.push_front(held(n.pid, "return"));
                }
                if let Some(w) = self.whole.as_mut() {
                    w.hold(held(child, "start"));
                }
            }
            Some(Stop::Gone) => {
                self.trace.push(format!("buyer {b} {label} → died"));
            }
            Some(Stop::Other(_)) | None => {
                // No task was made: stop the parent where it is and let it go.
                trace(libc::PTRACE_INTERRUPT, n.pid, 0);
                let _ = wait_for(n.pid, Instant::now() + Duration::from_secs(1), None);
                trace(libc::PTRACE_DETACH, n.pid, 0);
                self.trace.push(format!("buyer {b} {label} → no task made"));
            }
        }
    }

    /// Lets a held task go: it is detached and runs alone to its next call.
    pub(super) fn release(&mut self, b: usize, n: &Notif, step: &Step) {
        trace(libc::PTRACE_DETACH, n.pid, 0);
        self.epoch += 1;
        self.trace
            .push(format!("buyer {b} {} → runs", step.label(&self.real_dir)));
        let _ = nix::sched::sched_yield();
    }

    /// Lets every task still held go (the trial is over): a traced task that is then
    /// killed would stay a zombie until its tracer waited for it.
    pub(in crate::harness::syscall) fn release_held(&mut self) {
        let parked = self.buyers.iter().flat_map(|b| b.parked.iter());
        let pids: Vec<u32> = parked
            .chain(self.whole.iter().flat_map(|w| w.fresh()))
            .filter(|(n, _)| n.held)
            .map(|(n, _)| n.pid)
            .collect();
        for pid in pids {
            trace(libc::PTRACE_DETACH, pid, 0);
        }
    }
}
