//! Keeping a controlled session's processes on one CPU, where handing over between them
//! is a plain context switch rather than a wake-up across cores.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The CPU the calling thread runs on now.
pub(super) fn current_cpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
}

/// Pins the calling thread (and so every process it spawns meanwhile) to one CPU, and
/// restores its former CPU set when dropped.
pub(super) struct Pinned {
    saved: Option<CpuSet>,
}

impl Pinned {
    pub(super) fn to(cpu: Option<usize>) -> Pinned {
        let me = Pid::from_raw(0);
        let saved = cpu.and_then(|cpu| {
            let saved = sched_getaffinity(me).ok()?;
            let mut one = CpuSet::new();
            one.set(cpu).ok()?;
            sched_setaffinity(me, &one).ok()?;
            Some(saved)
        });
        Pinned { saved }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = sched_setaffinity(Pid::from_raw(0), saved);
        }
    }
}

/// Moves process `pid` (a buyer already started) to `cpu`; best effort, as pinning only
/// makes hand-overs cheaper.
pub(super) fn move_to(pid: u32, cpu: Option<usize>) {
    let Some(cpu) = cpu else {
        return;
    };
    let mut one = CpuSet::new();
    if one.set(cpu).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(pid as i32), &one);
    }
}

/// The CPU job `job` of a parallel run steps its controlled sessions on: the jobs take the
/// CPUs this process may use in turn, so two jobs do not share one while others idle.
pub fn job_cpu(job: usize) -> Option<usize> {
    let allowed = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| allowed.is_set(c).unwrap_or(false))
        .collect();
    if cpus.is_empty() {
        return None;
    }
    Some(cpus[job % cpus.len()])
}
