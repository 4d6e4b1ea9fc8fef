//! Virtual time in a stepped trial: sleeps end in the order of their deadlines, and the
//! one answered moves the trial's clock to its deadline; a buyer's wall clock jumps at its
//! seeded step; a process the clock shim did not reach is named.
//!
//! A sleep is stopped as a step and answered at once, never slept. When it is stopped its
//! deadline is fixed: the trial's virtual time then plus what it asks for, stretched by its
//! buyer's rate (a clock at 0.25 asks for a quarter of the time it gets); answering it
//! moves the clock to its deadline (never back). Under clock faults the clock is strict:
//! it stands still while any step but a sleep still to come can be taken (a running
//! process takes no time), and when every buyer that can go waits in such a sleep, the
//! earliest ends. Without them sleeps end in the schedule's order, as with no clock. Nothing here reads the machine's clock, so a replay of the same steps reads
//! the same times.
//!
//! A file's times are the file system's, on the machine's clock, which a program on the
//! trial's clock compares with its own (a lock directory older than a few seconds taken
//! for a dead holder's). So what a step changes (a file, the directory it names an entry
//! in) has its access and modification times set to the trial's wall time of that step
//! before the next step runs: its age is what the trial's sleeps made it. A time a call
//! sets itself (`touch -d`) stays. Only the trial directory's files and those below a
//! scratch place are stamped: never a place of the system's (`/etc`, `/tmp` itself).

use super::{Step, Stepper};
use std::path::{Path, PathBuf};

/// The furthest ahead a sleep's deadline may lie, ns (an hour).
const MAX_AHEAD: u64 = 3_600 * 1_000_000_000;

impl Stepper {
    /// Notes what `step`, just let go, changes, at the trial's wall time now: the file it
    /// names and the directory its entry is in (for a call by path), or the file
    /// (through a descriptor). A call that sets times it was given is left alone.
    pub(super) fn note_changed(&mut self, step: &Step) {
        let Some(clock) = self.clock.as_ref() else {
            return;
        };
        if step.sets_times {
            return;
        }
        let at = clock.wall_ns();
        let mut paths = vec![PathBuf::from(&step.path)];
        if !step.by_fd {
            paths.extend(
                step.names
                    .iter()
                    .map(|p| crate::seccomp::paths::resolve(p.clone())),
            );
            let parents: Vec<PathBuf> = paths
                .iter()
                .filter_map(|p| p.parent().map(Path::to_path_buf))
                .collect();
            paths.extend(parents);
        }
        for p in paths {
            // Only the trial directory and below, or below a scratch place.
            let stampable = p.starts_with(&self.real_dir) || crate::seccomp::paths::scratch(&p);
            if stampable && !self.changed.iter().any(|(q, _)| *q == p) {
                self.changed.push((p, at));
            }
        }
    }

    /// Sets the times of what earlier steps changed to the trial's wall time of each
    /// change ([`Stepper::note_changed`]).
    pub(super) fn restamp(&mut self) {
        for (p, ns) in std::mem::take(&mut self.changed) {
            let t = nix::sys::time::TimeSpec::new(
                (ns / 1_000_000_000) as libc::time_t,
                (ns % 1_000_000_000) as libc::c_long,
            );
            let _ = nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &p,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
    }

    /// Fixes a sleep's deadline as it is stopped, for buyer `b`.
    pub(super) fn stamp(&self, b: usize, step: &mut Step) {
        let Some(clock) = self.clock.as_ref().filter(|_| step.sleep()) else {
            return;
        };
        if let Some(until) = step.until {
            // The shim fixed its deadline on the trial's clock (its rate applied), when
            // it was asked for: never in the past, and at most an hour ahead.
            let wake = until.saturating_sub(clock.base());
            step.wake = wake.clamp(clock.now(), clock.now().saturating_add(MAX_AHEAD));
            return;
        }
        let rate = self
            .buyers
            .get(b)
            .and_then(|t| t.rate)
            .unwrap_or(1000)
            .max(1);
        let span = (u128::from(step.span) * 1000 / u128::from(rate)).min(u128::from(u64::MAX));
        step.wake = clock.now().saturating_add(span as u64);
    }

    /// Puts each buyer's stopped calls in an order of their own: the calls that may go now
    /// (no sleep, or a sleep already due) first, then its sleeps still to come, earliest
    /// first; within each, by task (calls of several threads stopped at once came in the
    /// machine's order, not the schedule's; task ids are handed out in order).
    pub(super) fn order_parked(&mut self) {
        let Some(now) = self.clock.as_ref().map(|c| c.now()) else {
            return;
        };
        for t in self.buyers.iter_mut().filter(|t| t.parked.len() > 1) {
            t.parked.make_contiguous().sort_by_key(|(n, s)| {
                if s.sleep() && s.wake > now {
                    (1, s.wake, n.pid)
                } else {
                    (0, 0, n.pid)
                }
            });
        }
    }

    /// Of the buyers in `free`, those that may take the next step on the virtual clock.
    /// A step that is no sleep, or a sleep already due, may be taken at any time: the
    /// clock stands still while anything can run. Only when every one of them waits in a
    /// sleep still to come does time pass, to the earliest deadline, and only that sleep
    /// may end.
    ///
    /// Only under clock faults (`strict_time`): otherwise sleeps end in whatever order the
    /// schedule takes them (a process may be slow, as on a real machine), each moving the
    /// clock to its deadline if that is later, and the search orders steps as it would
    /// with no clock at all.
    pub(super) fn in_time_order(&mut self, free: Vec<usize>) -> Vec<usize> {
        let Some(now) = self.clock.as_ref().map(|c| c.now()) else {
            return free;
        };
        if !self.strict_time {
            return free;
        }

        let ahead = |i: usize| {
            let (_, s) = &self.buyers[i].parked[0];
            s.sleep().then_some(s.wake).filter(|&w| w > now)
        };
        let ready: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&i| ahead(i).is_none())
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        let Some(first) = free.iter().filter_map(|&i| ahead(i)).min() else {
            return free;
        };
        free.into_iter()
            .filter(|&i| ahead(i) == Some(first))
            .collect()
    }

    /// After buyer `b`'s step: a sleep moves the clock to its deadline; the buyer's wall
    /// clock jumps if this is its seeded step.
    pub(super) fn tick(&mut self, b: usize, step: &Step) {
        let Some(clock) = self.clock.as_mut() else {
            return;
        };
        if step.sleep() {
            clock.advance_to(step.wake);
        }
        let Some(t) = self.buyers.get_mut(b) else {
            return;
        };
        let k = t.taken;
        t.taken = t.taken.saturating_add(1);
        if let Some((at, ms)) = t.jump_at.filter(|&(at, _)| at == k) {
            let _ = at;
            clock.jump(b as u32, ms);
            let step_no = self.walk.choices.len();
            self.trace
                .push(format!("buyer {b}'s wall clock jumps {ms:+} ms"));
            self.clock_notes.push(format!(
                "buyer {b}'s wall clock jumped {ms:+} ms at step {step_no}"
            ));
        }
    }

    /// Names, once, a process of buyer `b` the clock shim did not reach (a statically
    /// linked program): it runs on the machine's clock, which no step orders.
    pub(super) fn check_shim(&mut self, b: usize, pid: u32) {
        let Some(clock) = self.clock.as_ref() else {
            return;
        };
        // Looked at once per process and program (an exec starts another), at a step:
        // by then the loader has mapped what it preloads.
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            return;
        };
        if !self.shim_checked.insert((pid, exe.clone())) {
            return;
        }
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return;
        };
        let shim = clock.shim_path().to_string_lossy();
        if maps.contains(shim.as_ref()) {
            return;
        }
        let exe = exe.display().to_string();
        // Why the loader did not preload it: the environment the program was started
        // with (what `/proc/PID/environ` keeps) had no `LD_PRELOAD` naming the shim, as
        // after `env -i`; or had it, and the program has no loader to read it.
        let preloaded = std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
            env.split(|&c| c == 0)
                .any(|v| v.starts_with(b"LD_PRELOAD=") && contains(v, shim.as_bytes()))
        });
        let why = if preloaded {
            "statically linked: no clock shim"
        } else {
            "started without oversell's LD_PRELOAD, as after `env -i`: no clock shim"
        };
        // Its clock is the machine's: what it does by the clock no step orders.
        let note = format!("buyer {b} ran {exe} on real time ({why})");
        if !self.unordered.contains(&note) {
            self.unordered.push(note);
        }
    }
}

/// True when `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
