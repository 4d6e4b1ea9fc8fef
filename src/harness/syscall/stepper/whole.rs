//! A whole program (`--program`): one listener for every process it starts, and each
//! task (a process, or a thread of one) a unit of the schedule of its own.
//!
//! The program's processes all carry the filter they inherited, so their calls reach one
//! listener; a call is routed to its unit by the task that made it. A task becomes a unit
//! at its first step. Units are numbered when the program is still (every task stopped at
//! a step or asleep in the kernel for another), in the order a walk of the process tree
//! meets them (a parent's children in the order it made them): the same numbering every
//! run, whatever order their first calls arrived in and whatever ids the kernel gave.

use super::{Halt, Stepper, Tracee};
use crate::seccomp::blocked::{self, Still};
use crate::seccomp::call::{self, Notif, Step};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

/// The program's side of a [`Stepper`].
pub(in crate::harness::syscall) struct Whole {
    pub listener: OwnedFd,
    /// The program's first process: every task it starts is in its tree (it is made a
    /// subreaper, so orphans stay).
    pub root: u32,
    /// The unit of each task seen so far.
    by_tid: HashMap<u32, usize>,
    /// Steps of tasks not yet numbered.
    fresh: Vec<(Notif, Step)>,
    /// A process mapped memory shared with others (a semaphore, a lock in shared
    /// memory): what it does there is seen only at a step, so every step of the program
    /// counts as a change of it.
    pub shared_memory: bool,
}

impl Whole {
    pub(in crate::harness::syscall) fn new(listener: OwnedFd, root: u32) -> Whole {
        Whole {
            listener,
            root,
            by_tid: HashMap::new(),
            fresh: Vec::new(),
            shared_memory: false,
        }
    }

    /// Steps of tasks not yet numbered.
    pub(super) fn fresh(&self) -> impl Iterator<Item = &(Notif, Step)> {
        self.fresh.iter()
    }

    /// A new task held at its first run ([`super::fork`]): numbered with the others.
    pub(super) fn hold(&mut self, step: (Notif, Step)) {
        self.fresh.push(step);
    }
}

impl Stepper {
    /// True while a process of the whole program is alive (not a zombie): with no unit
    /// left to run, the program is stuck rather than done.
    pub(super) fn program_alive(&self) -> bool {
        self.whole
            .as_ref()
            .is_some_and(|w| blocked::still_tree(w.root).is_none_or(|t| !t.is_empty()))
    }

    /// [`Stepper::settle`] for a whole program: waits until it is still, then numbers the
    /// new units and marks the units that ended or wait in the kernel.
    pub(super) fn settle_whole(&mut self) -> Result<(), Halt> {
        let Some(fd) = self.whole.as_ref().map(|w| w.listener.as_raw_fd()) else {
            return Ok(());
        };
        let mut quiet = 0u32;
        loop {
            self.still_on()?;
            let wait = if quiet == 0 { 0 } else { 1 };
            let mut fds = [libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: poll on one pollfd owned by this frame.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 1, wait) };
            if r > 0 && fds[0].revents & libc::POLLIN != 0 {
                quiet = 0;
                self.receive_whole(fd);
                continue;
            }
            // A hang-up says only that the processes that carried the filter are on
            // their way out: what is left is judged by the tree below.
            let hung_up = r > 0;
            if hung_up {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            quiet += 1;
            let Some(root) = self.whole.as_ref().map(|w| w.root) else {
                return Ok(());
            };
            self.note_limited_wait(0);
            // A task may sleep for a moment in a call that is no wait for another (a
            // page of a file read from disk): the program is judged still only after a
            // few quiet polls, and only then is its tree walked.
            if quiet < 3 {
                continue;
            }
            let Some(tasks) = blocked::still_tree(root) else {
                continue;
            };
            // A task stopped in a call not read yet: read it first.
            let known = |tid: u32, s: &Stepper| {
                s.whole.as_ref().is_some_and(|w| {
                    w.fresh.iter().any(|(n, _)| n.pid == tid)
                        || w.by_tid
                            .get(&tid)
                            .is_some_and(|&u| !s.buyers[u].parked.is_empty())
                })
            };
            if tasks
                .iter()
                .any(|&(tid, how)| how == Still::Notifying && !known(tid, self))
            {
                continue;
            }
            // The same view a moment later is still.
            if self.last_view.as_ref() != Some(&tasks) {
                self.last_view = Some(tasks);
                continue;
            }
            self.last_view = None;
            self.adopt(&tasks);
            return Ok(());
        }
    }

    /// Numbers the fresh units, and marks each unit ended (its task is gone) or asleep
    /// in the kernel, from `tasks` (what [`blocked::still_tree`] saw).
    fn adopt(&mut self, tasks: &[(u32, Still)]) {
        let Some(whole) = self.whole.as_mut() else {
            return;
        };
        let mut fresh = std::mem::take(&mut whole.fresh);
        // In the order the walk of the tree met them: children in the order they were
        // made (the kernel keeps a parent's children so), never by task id, which wraps
        // around (`pid_max`) and would number a parent after its children.
        let place = |tid: u32| {
            tasks
                .iter()
                .position(|&(t, _)| t == tid)
                .unwrap_or(usize::MAX)
        };
        let mut keyed: Vec<((usize, u32), Notif, Step)> = fresh
            .drain(..)
            .map(|(n, s)| ((place(n.pid), n.pid), n, s))
            .collect();
        keyed.sort_by_key(|(k, _, _)| *k);
        for (_, n, step) in keyed {
            let unit = match whole.by_tid.get(&n.pid) {
                Some(&u) => u,
                None => {
                    let mut t = Tracee::unit(n.pid);
                    t.fail_at = self.unit_faults.get(self.buyers.len()).copied().flatten();
                    self.buyers.push(t);
                    whole.by_tid.insert(n.pid, self.buyers.len() - 1);
                    self.buyers.len() - 1
                }
            };
            self.buyers[unit].parked.push_back((n, step));
        }
        let mut ended = false;
        for b in self.buyers.iter_mut().filter(|b| !b.done) {
            let Some(tid) = b.tid else { continue };
            match tasks.iter().find(|(t, _)| *t == tid) {
                Some((_, Still::Waiting)) => b.in_kernel = b.parked.is_empty(),
                Some((_, Still::Notifying)) => b.in_kernel = false,
                None if b.parked.is_empty() => {
                    b.done = true;
                    ended = true;
                }
                None => {}
            }
        }
        if !self.timers.is_empty() {
            if let Some(u) = self.buyers.iter().position(|b| !b.done && b.in_kernel) {
                self.note_timed_wait(u, "in the kernel");
            }
        }
        if ended {
            self.owned.forget();
        }
    }

    /// Reads one notification of the program: parks it with its unit (or as fresh) if it
    /// is a step, else lets it go on.
    fn receive_whole(&mut self, fd: i32) {
        let Ok(Some(n)) = call::recv(fd) else {
            return;
        };
        self.called = Instant::now();
        self.note_timer(0, &n);
        if let Some(what) = self.made.note(&n) {
            self.note_unordered(format!("the program {what}"));
        }
        let (to_server, request) = self.server_call(&n);
        if call::maps_anonymous(&n) {
            if let Some(w) = self.whole.as_mut() {
                w.shared_memory = true;
            }
        }
        if let Some(what) = call::unordered(&n, &self.real_dir).filter(|_| !to_server) {
            // Memory shared between its processes is ordered by its steps (only one
            // process runs between two steps); a server is not.
            let memory = what.starts_with("maps ") || what.starts_with("attaches ");
            let unit = self
                .whole
                .as_ref()
                .and_then(|w| w.by_tid.get(&n.pid).copied());
            if let Some(u) = unit {
                self.buyers[u].maps_shared |= memory;
            }
            if let Some(w) = self.whole.as_mut().filter(|_| memory) {
                w.shared_memory = true;
            } else {
                self.note_unordered(format!("the program {what}"));
            }
        }
        if let Some(what) = call::signalled_in_program(&n) {
            self.note_unordered(format!("the program {what}"));
        }
        let Some(mut step) = request.or_else(|| call::classify(fd, &n, &self.real_dir)) else {
            if let Some(what) = call::unreadable(&n) {
                self.unreadable = true;
                self.note_unordered(format!("the program {what}"));
            }
            return call::answer(fd, n.id, true);
        };
        if let Some(what) = call::unwatched_change(&step, &self.real_dir) {
            self.note_unordered(format!("the program {what}"));
        }
        if let Some(what) = self.note_outside(&step) {
            self.note_unordered(format!("the program {what}"));
        }
        // A whole program's units share one clock, at the trial's pace.
        self.stamp(usize::MAX, &mut step);
        let Some(whole) = self.whole.as_mut() else {
            return;
        };
        // A fork is a step only where the program's processes share memory.
        if step.effect == crate::seccomp::Effect::Spawn && !whole.shared_memory {
            return call::answer(fd, n.id, true);
        }
        match whole.by_tid.get(&n.pid) {
            Some(&u) => self.buyers[u].parked.push_back((n, step)),
            None => whole.fresh.push((n, step)),
        }
    }
}
