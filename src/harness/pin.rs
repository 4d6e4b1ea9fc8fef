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

/// A CPU claimed among oversell's processes on this machine for one trial or session
/// ([`claim`]): while held, another oversell asking for a CPU takes another one, so two
/// runs side by side (two tests, two shards) do not pin their one-CPU trials to the same
/// core while the other idles. Held as an abstract socket's name, which the kernel frees
/// when this process closes it or dies: no file is left behind.
pub(super) struct Claim {
    _held: Option<std::os::unix::net::UnixDatagram>,
}

/// The CPU to step on: `preferred` (a job's, or else the one the caller runs on now)
/// when no other oversell process holds it, else the first allowed CPU none holds, else
/// `preferred` unclaimed (every CPU is taken: sharing one is all that is left).
pub(super) fn claim(preferred: Option<usize>) -> (Option<usize>, Claim) {
    let first = preferred.or_else(current_cpu);
    let allowed = allowed_cpus();
    let order = first
        .into_iter()
        .chain(allowed.into_iter().filter(|&c| Some(c) != first));
    for cpu in order {
        if let Some(held) = hold(cpu) {
            return (Some(cpu), Claim { _held: Some(held) });
        }
    }
    (first, Claim { _held: None })
}

/// The abstract socket that says CPU `cpu` is taken, bound by this process; `None` when
/// another holds it (or abstract sockets are not to be had).
fn hold(cpu: usize) -> Option<std::os::unix::net::UnixDatagram> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("oversell-cpu-{cpu}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    std::os::unix::net::UnixDatagram::bind_addr(&addr).ok()
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    let Ok(allowed) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&c| allowed.is_set(c).unwrap_or(false))
        .collect()
}

/// The CPU job `job` of a parallel run steps its controlled sessions on: the jobs take the
/// CPUs this process may use in turn, so two jobs do not share one while others idle.
pub fn job_cpu(job: usize) -> Option<usize> {
    let cpus = allowed_cpus();
    if cpus.is_empty() {
        return None;
    }
    Some(cpus[job % cpus.len()])
}
