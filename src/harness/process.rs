//! Spawning and reaping trial processes. The harness (this module, `baseline` and the
//! trial runners around it) is the only code in oversell that starts, signals or waits on
//! a process.
//!
//! Every process of a trial joins the trial's process group (the first one spawned leads
//! it), or, for a user's command, a group of its own that it leads; has
//! `PR_SET_PDEATHSIG = SIGKILL` so it dies with the harness's thread; carries the run's
//! mark (see `sweep`); and is owned by a [`Group`] whose `Drop` kills and reaps whatever
//! is left.

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::ledger::Exit;

/// The processes of one trial, in one process group.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// The trial's process group first; then one per member spawned `alone`.
    pgids: Vec<Pid>,
    children: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    child: Child,
    /// How it ended, once it has.
    status: Option<ExitStatus>,
    /// Leads a process group: its zombie is kept (not reaped) until the group is
    /// finished, so the group id cannot be handed to an unrelated process meanwhile.
    leader: bool,
    /// Spawned with `spawn_alone`: the leader of a group of its own, not the trial's.
    alone: bool,
    /// Someone else reaped it: how it ended is unknown.
    lost: bool,
}

impl Member {
    /// Notes how the member ended if it has, without reaping a leader.
    fn poll(&mut self) -> bool {
        if self.status.is_some() || self.lost {
            return true;
        }
        if self.leader {
            use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
            let pid = Pid::from_raw(self.child.id() as i32);
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            return match waitid(Id::Pid(pid), flags) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.status = Some(ExitStatus::from_raw((code & 0xff) << 8));
                    true
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.status = Some(ExitStatus::from_raw(sig as i32));
                    true
                }
                Ok(_) => false,
                Err(_) => {
                    self.lost = true;
                    true
                }
            };
        }
        match self.child.try_wait() {
            Ok(Some(st)) => {
                self.status = Some(st);
                true
            }
            Ok(None) => false,
            // ECHILD: someone else reaped it; there is nothing left to wait for.
            Err(_) => {
                self.lost = true;
                true
            }
        }
    }

    fn ended(&self) -> bool {
        self.status.is_some() || self.lost
    }
}

/// A handle on one member of a [`Group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberId(usize);

impl Group {
    /// Spawns `cmd` into the trial's process group, with the death signal set.
    pub(crate) fn spawn(&mut self, cmd: Command) -> io::Result<MemberId> {
        self.spawn_in(cmd, false)
    }

    /// Spawns `cmd` as the leader of a process group of its own (a user's command and
    /// whatever it starts, killed together), with the death signal set.
    pub(crate) fn spawn_alone(&mut self, cmd: Command) -> io::Result<MemberId> {
        self.spawn_in(cmd, true)
    }

    fn spawn_in(&mut self, mut cmd: Command, alone: bool) -> io::Result<MemberId> {
        let pgid = match (alone, self.pgids.first()) {
            (false, Some(p)) => p.as_raw(),
            _ => 0,
        };
        arm(&mut cmd, pgid);
        let child = {
            let _no_probe = crate::seccomp::probe::spawning();
            cmd.spawn()?
        };
        if pgid == 0 {
            self.pgids.push(Pid::from_raw(child.id() as i32));
        }
        self.children.push(Member {
            child,
            status: None,
            leader: pgid == 0,
            alone,
            lost: false,
        });
        Ok(MemberId(self.children.len() - 1))
    }

    /// The operating-system pid of a member.
    pub(crate) fn pid(&self, id: MemberId) -> u32 {
        self.children[id.0].child.id()
    }

    /// Sends `sig` to one member, if it has not been reaped.
    pub(crate) fn signal(&self, id: MemberId, sig: Signal) {
        let m = &self.children[id.0];
        if !m.ended() {
            let _ = kill(Pid::from_raw(m.child.id() as i32), sig);
        }
    }

    /// Sends `sig` to a member and everything it started: its own process group when it
    /// leads one (a user's command), else the member alone. A stop fault freezes the
    /// holder as a whole, as a kill fault kills it.
    pub(crate) fn signal_whole(&self, id: MemberId, sig: Signal) {
        let m = &self.children[id.0];
        if m.ended() {
            return;
        }
        let pid = Pid::from_raw(m.child.id() as i32);
        let _ = if m.alone {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        };
    }

    /// Sends `sig` to the whole group.
    pub(crate) fn signal_all(&self, sig: Signal) {
        for &pgid in &self.pgids {
            let _ = killpg(pgid, sig);
        }
    }

    fn reap_ready(&mut self) -> bool {
        let mut all = true;
        for m in &mut self.children {
            all &= m.poll();
        }
        all
    }

    /// Waits until every member has exited, or `limit` passes; true when all have.
    pub(crate) fn wait_all(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut pause = Duration::from_micros(50);
        loop {
            if self.reap_ready() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Waits for one member to exit, up to `limit`; true when it has.
    pub(crate) fn wait_one(&mut self, id: MemberId, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut pause = Duration::from_micros(20);
        loop {
            if self.children[id.0].poll() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// The one way a trial's processes end, all of them: a `helper` (a lock server) is
    /// killed first; then the rest are [terminated](Group::terminate) `how`; `between`
    /// runs once they are signalled and before they are reaped (a seccomp listener let go
    /// only after the calls it holds can no longer return); then everything is reaped,
    /// grandchildren included.
    pub(crate) fn end(
        &mut self,
        how: Ending,
        helper: Option<MemberId>,
        between: impl FnOnce(),
    ) -> Ended {
        if let Some(h) = helper {
            self.signal(h, Signal::SIGKILL);
        }
        let in_time = self.terminate(Whom::All, how);
        between();
        let clean = match how {
            Ending::Exited(_) => self.finish_exited(),
            _ => self.finish(),
        };
        Ended { clean, in_time }
    }

    /// [`Group::end`] for one member while the others go on (a buyer that died, or that a
    /// kill fault kills; a server that would not start): it is
    /// [terminated](Group::terminate) `how` and reaped (a group leader's end is noted, its
    /// zombie kept until the group ends). True when it ended within the grace, without a
    /// KILL.
    pub(crate) fn end_one(&mut self, id: MemberId, how: Ending) -> bool {
        self.terminate(Whom::One(id), how)
    }

    /// The one terminate path, for [`Group::end`] and [`Group::end_one`]: asked (CONT,
    /// TERM) when `how` says so, or KILLed at once; waited for up to the grace; then, unless
    /// they have exited already, KILLed and waited for until the kernel lets them go.
    /// True when they ended within the grace, without a KILL.
    fn terminate(&mut self, whom: Whom, how: Ending) -> bool {
        let in_time = match how {
            Ending::Awaited(grace) | Ending::Exited(grace) => self.wait_for(whom, grace),
            Ending::Asked(grace) => {
                self.signal_to(whom, Signal::SIGCONT);
                self.signal_to(whom, Signal::SIGTERM);
                self.wait_for(whom, grace)
            }
            Ending::Killed => false,
        };
        if !in_time && !matches!(how, Ending::Exited(_)) {
            self.signal_to(whom, Signal::SIGKILL);
            self.wait_for(whom, KILLED_WITHIN);
        }
        in_time
    }

    fn signal_to(&self, whom: Whom, sig: Signal) {
        match whom {
            Whom::All => self.signal_all(sig),
            Whom::One(id) => self.signal(id, sig),
        }
    }

    fn wait_for(&mut self, whom: Whom, limit: Duration) -> bool {
        match whom {
            Whom::All => self.wait_all(limit),
            Whom::One(id) => self.wait_one(id, limit),
        }
    }

    /// True when member `id` has died of `sig`. Looks without reaping (`waitid` with
    /// `WNOWAIT`), so its status is still there to reap and to read with [`Group::exit`].
    pub(crate) fn died_of(&self, id: MemberId, sig: Signal) -> bool {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let m = &self.children[id.0];
        if let Some(st) = m.status {
            return st.signal() == Some(sig as i32);
        }
        if m.lost {
            return false;
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        matches!(
            waitid(Id::Pid(Pid::from_raw(m.child.id() as i32)), flags),
            Ok(WaitStatus::Signaled(_, s, _)) if s == sig
        )
    }

    /// How a member ended (after it was reaped).
    pub(crate) fn exit(&self, id: MemberId) -> Exit {
        match self.children[id.0].status {
            Some(st) => match (st.code(), st.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                _ => Exit::Unknown,
            },
            None => Exit::Unknown,
        }
    }

    /// True while some process (ours or a grandchild) is still in the group.
    pub(crate) fn group_alive(&self) -> bool {
        self.pgids
            .iter()
            .any(|&pgid| !matches!(killpg(pgid, None), Err(Errno::ESRCH)) && has_live_member(pgid))
    }

    /// [`Group::finish`] for a caller that knows every process its members started has
    /// exited (a syscall-level trial whose every filter listener hung up: each process
    /// of a buyer carries the filter, and the listener hangs up once the last of them
    /// exits). Once the members themselves have ended, nothing is left to look for in
    /// `/proc`.
    pub(crate) fn finish_exited(&mut self) -> bool {
        if !self.children.iter_mut().all(|m| m.poll()) {
            // A member on its way out (a lock server killed here, a command whose last
            // process is exiting) is no leak; one that is not dying is a leak at once.
            let gone = self.outlast(Duration::ZERO, |g| {
                let left: Vec<u32> = g
                    .children
                    .iter_mut()
                    .filter_map(|m| (!m.poll()).then(|| m.child.id()))
                    .collect();
                (!left.is_empty()).then_some((left, Vec::new()))
            });
            if !gone {
                return self.finish();
            }
        }
        for m in &mut self.children {
            if let Ok(st) = m.child.wait() {
                m.status.get_or_insert(st);
            }
        }
        true
    }

    /// Kills and reaps everything; returns true when the group was already empty.
    ///
    /// Group leaders are still unreaped zombies here, so no group id can have been
    /// handed to an unrelated process: checking and killing the groups is safe. They
    /// are reaped last.
    pub(crate) fn finish(&mut self) -> bool {
        let mut clean = self.children.iter_mut().all(|m| m.poll());
        if clean && self.group_alive() {
            // Orphans of a killed command (its shell and wrapper went with it) may still
            // be on their way out: a moment, and longer while they are dying.
            let groups: Vec<u32> = self.pgids.iter().map(|p| p.as_raw() as u32).collect();
            self.outlast(Duration::from_secs(1), |g| {
                g.group_alive().then(|| (Vec::new(), groups.clone()))
            });
            clean = !self.group_alive();
        }
        if !clean {
            self.signal_all(Signal::SIGKILL);
            for m in &mut self.children {
                if !m.ended() {
                    let _ = m.child.kill();
                }
            }
        }
        for m in &mut self.children {
            if let Ok(st) = m.child.wait() {
                m.status.get_or_insert(st);
            }
        }
        clean
    }

    /// Waits while `left` names what of the trial is not gone yet (processes, process
    /// groups): for `grace`, then on while some of it is on its way out (killed, or
    /// exiting: a loaded machine may take longer than the grace to let it go), up to
    /// [`KILLED_WITHIN`]. True once nothing is left.
    fn outlast(
        &mut self,
        grace: Duration,
        mut left: impl FnMut(&mut Group) -> Option<(Vec<u32>, Vec<u32>)>,
    ) -> bool {
        let started = Instant::now();
        while let Some((roots, groups)) = left(self) {
            let waited = started.elapsed();
            if waited >= KILLED_WITHIN
                || (waited >= grace && !crate::seccomp::blocked::dying(&roots, &groups))
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// How long a KILLed process may take to become reapable before [`Group::terminate`]
/// stops waiting (the kernel's business, not a grace: a process in uninterruptible sleep
/// dies when it wakes; `finish` and `Drop` reap it then).
const KILLED_WITHIN: Duration = Duration::from_secs(5);

/// Which processes [`Group::terminate`] ends.
#[derive(Debug, Clone, Copy)]
enum Whom {
    /// Every process group of the trial.
    All,
    /// One member alone.
    One(MemberId),
}

/// How [`Group::end`] and [`Group::end_one`] end processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// They are on their way out (a finished trial, closed control sockets): wait up to
    /// the grace for them, then KILL.
    Awaited(Duration),
    /// Every process has exited already, as far as the caller can tell (every seccomp
    /// listener hung up; a buyer seen dead): wait up to the grace for the members
    /// themselves to be reapable, and KILL nothing.
    Exited(Duration),
    /// Ask first: CONT and TERM, the grace, then KILL.
    Asked(Duration),
    /// KILL at once (calls stopped by a seccomp filter never return: asking gains nothing).
    Killed,
}

/// What [`Group::end`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    /// Nothing was left in the group once its members were reaped.
    pub clean: bool,
    /// They ended within the grace, without a KILL.
    pub in_time: bool,
}

/// Sets up `cmd` the way every process of oversell starts: in process group `pgid` (0:
/// a new group it leads), marked with the run's [`super::RUN_ENV`] so a later run can
/// find it if this one dies, and with `PR_SET_PDEATHSIG = SIGKILL`.
pub(crate) fn arm(cmd: &mut Command, pgid: i32) {
    cmd.process_group(pgid)
        .env(super::RUN_ENV, super::sweep::run_mark());
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and only makes two
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || die_with(parent));
    }
}

/// In a child between fork and exec: `PR_SET_PDEATHSIG = SIGKILL`, and an error when
/// `parent` already died before it was armed. Two async-signal-safe calls, no allocation.
/// A child that installs a syscall filter does this first: once the filter is in place
/// its own calls before exec may wait on the harness, which must not outlive it.
pub(crate) fn die_with(parent: u32) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

impl Drop for Group {
    fn drop(&mut self) {
        self.finish();
    }
}

/// True when some process of group `pgid` is not a zombie. A zombie has exited; it only
/// waits for its parent (or init, for an orphan whose parent was killed with it) to reap
/// it, so it is no leak.
fn has_live_member(pgid: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    for e in entries.flatten() {
        if !e
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses and may hold spaces):
        // state, ppid, pgrp, ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        if pgrp == Some(pgid.as_raw()) && state != Some("Z") {
            return true;
        }
    }
    false
}

/// True when a process with this pid exists.
pub(crate) fn pid_alive(pid: u32) -> bool {
    !matches!(kill(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH))
}

/// Runs `cmd` to its end outside any group (a set-up step: `initdb`, `cp`, `psql`) and
/// gives what it printed: its standard output and error are piped unless set. Started
/// while no probe has a descriptor open ([`crate::seccomp::probe::spawning`]).
pub(crate) fn run_to_end(cmd: &mut Command) -> io::Result<std::process::Output> {
    let child = {
        let _no_probe = crate::seccomp::probe::spawning();
        cmd.spawn()?
    };
    child.wait_with_output()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn no_process_starts_while_a_probe_has_a_descriptor_open() {
        let probe = crate::seccomp::probe::probing();
        let (started, seen) = mpsc::channel();
        let spawner = std::thread::spawn(move || {
            let mut group = Group::default();
            let mut cmd = Command::new("true");
            cmd.stdin(std::process::Stdio::null());
            let member = group.spawn(cmd);
            let _ = started.send(member.is_ok());
            group.end(Ending::Awaited(Duration::from_secs(10)), None, || {});
        });
        // Held back for as long as the probe lasts, however long that is.
        assert!(
            seen.recv_timeout(Duration::from_millis(300)).is_err(),
            "a process started while a probe had a descriptor open"
        );
        drop(probe);
        assert_eq!(seen.recv_timeout(Duration::from_secs(30)), Ok(true));
        spawner.join().expect("the spawning thread");
    }
}
