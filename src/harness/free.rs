//! Free-running trials (`jitter` and `barrier`): the OS schedules the buyers.
//!
//! The harness releases the buyers through the start barrier and then mostly listens:
//! buyers report when they block on the lock, take it and give it back, when they have
//! read (for the read barrier), and when a stop fault wants them stopped. From that it
//! runs the read barrier, carries out stop faults (SIGSTOP, wait, SIGCONT), and notices a
//! stale lock: a holder that died holding it while every live buyer waits for it.
//!
//! A stale lock is decided from facts where the lock can be probed: the lock itself names
//! its holder (a `lockfile` holds its holder's pid), that holder is a buyer that died
//! holding it, and every live buyer is blocked. Where no probe is possible the harness
//! falls back to silence: nobody took the lock for [`STALE_AFTER`]. A user's lock command
//! cannot be probed either: a buyer runs only inside it, so one killed there died holding
//! its lock, and every other buyer still waiting to start through that silence is a
//! stale lock too, named as a controlled schedule names it.

use super::outcome::Parts;
use super::plan::Plan;
use super::process::{Ending, Group, MemberId};
use super::{
    interrupt, prepare_lock, spawn_buyer_in, BuyerSpec, HarnessConfig, HarnessError, LockState,
    TrialDir, TrialRun,
};
use crate::ledger::{Exit, History, Stuck};
use crate::protocol::{msg, Pace};
use crate::scenario::Trial;
use crate::store;
use nix::sys::signal::Signal;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// For a lock that cannot be probed: how long every live buyer must wait on a lock whose
/// holder died, with nobody taking it, before the trial is a stale lock. A kernel lock
/// (flock, fcntl, SysV with undo) is handed to a waiter within milliseconds of its
/// holder's death; this leaves a wide margin for a busy machine.
pub const STALE_AFTER: Duration = Duration::from_millis(1500);

/// How many times its patience a free-running trial waits, from its last sign of
/// progress, while a buyer is in the kernel's disk wait ([`Driver::in_disk_wait`]).
const DISK_STRETCH: u32 = 4;

/// One buyer's control connection.
pub(super) struct Conn {
    pub(super) sock: UnixStream,
    pub(super) member: MemberId,
    pub(super) open: bool,
    pub(super) ready: bool,
    pub(super) wait: Wait,
    pub(super) holding: bool,
    pub(super) stop_ms: u32,
    /// A pooled buyer said `ready` again: its round is over and it waits for the next.
    pub(super) done: bool,
    /// A pooled buyer's orders, sent right after the start barrier's `go`.
    pub(super) orders: Option<[u8; crate::protocol::RoundOrders::LEN]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    Running,
    Blocked,
    AtBarrier,
    Stopped,
}

pub(super) enum End {
    Done,
    /// The timeout passed: where each unfinished buyer's processes were then.
    TimedOut(Vec<(u32, String)>),
    Stale {
        waiting: Vec<u32>,
        holder: u32,
    },
    Interrupted(i32),
}

struct LockCleanup(crate::lock::LockKind, PathBuf);

impl Drop for LockCleanup {
    fn drop(&mut self) {
        self.0.cleanup(&self.1);
    }
}

/// Runs one free-running trial.
pub(super) fn run(trial: &Trial, cfg: &HarnessConfig) -> Result<TrialRun, HarnessError> {
    let started = Instant::now();
    let plan = Plan::of(trial);
    let dir = TrialDir::create(cfg.keep.as_deref())?;
    store::create(&store::path(&dir.path), plan.tickets as i64)
        .map_err(|e| HarnessError::Io("writing the store", e))?;
    File::create(crate::ledger::path(&dir.path))
        .map_err(|e| HarnessError::Io("creating the ledger", e))?;

    // Whatever the lock left outside the directory (a POSIX semaphore's name) goes
    // with the trial, on every path out of this function.
    let _cleanup = LockCleanup(plan.lock, dir.path.clone());
    let mut group = Group::default();
    let LockState { sem, server } = prepare_lock(
        plan.lock,
        &dir.path,
        &mut group,
        &cfg.exe,
        started + cfg.timeout,
    )?;
    virtual_lease_clock(plan.lock, &dir.path)?;
    let sem_id = sem.as_ref().map(|s| s.id);
    let mut conns = spawn_all(&plan, &dir.path, sem_id, &mut group, cfg)?;

    // The timeout is a watchdog: it runs from the last sign of progress (any message
    // from any buyer), plus the longest pause one buyer may take on purpose, so a long
    // but moving trial is never a `hang`.
    let end = Driver::new(
        &mut conns,
        &group,
        &plan,
        &dir.path,
        cfg.timeout + plan.slack,
    )
    .run();
    let how = match end {
        End::Done => Ending::Awaited(Duration::from_secs(2)),
        _ => Ending::Asked(cfg.grace),
    };
    let leaked = !group.end(how, server, || {}).clean;
    if let End::Interrupted(sig) = end {
        return Err(HarnessError::Interrupted(sig));
    }
    let history = history(&dir.path, &conns, &group, &plan, end)?;
    drop(sem);
    let parts = Parts {
        history,
        kept: dir.kept(),
        leaked,
        elapsed: started.elapsed(),
    };
    parts.finish(&dir.path, false)
}

/// Spawns every buyer of `plan`, each with its orders.
fn spawn_all(
    plan: &Plan,
    dir: &Path,
    sem_id: Option<i32>,
    group: &mut Group,
    cfg: &HarnessConfig,
) -> Result<Vec<Conn>, HarnessError> {
    // Under a user's lock command each buyer runs inside the command, which takes the
    // lock before the buyer even starts: no start barrier, and the lock itself is none.
    let wrap = plan.wrap.as_deref();
    let mut conns = Vec::with_capacity(plan.buyers.len());
    for (index, b) in plan.buyers.iter().enumerate() {
        let spec = BuyerSpec {
            lock: plan.lock,
            dir: dir.to_path_buf(),
            index: index as u32,
            start_us: b.start_us,
            hold_us: b.hold_us,
            store: plan.store,
            pace: plan.pace,
            sem_id,
            reuse: false,
            kill_at: b.kill_at,
            stop_at: b.stop.map(|(p, _)| p),
            start_barrier: wrap.is_none(),
            kill_group: wrap.is_some(),
            self_filter: false,
        };
        let (sock, member) = spawn_buyer_in(group, cfg, &spec, wrap)?;
        conns.push(Conn {
            sock,
            member,
            open: true,
            ready: false,
            wait: Wait::Running,
            holding: false,
            stop_ms: b.stop.map_or(0, |(_, ms)| ms),
            done: false,
            orders: None,
        });
    }
    Ok(conns)
}

/// The merged ledger, with how the trial ended and each buyer's fate.
pub(super) fn history(
    dir: &Path,
    conns: &[Conn],
    group: &Group,
    plan: &Plan,
    end: End,
) -> Result<History, HarnessError> {
    let (timed_out, stuck, whereabouts) = match end {
        End::TimedOut(at) => (true, None, at),
        End::Stale { waiting, holder } => (
            false,
            Some(Stuck::Deadlock {
                waiting,
                holder: Some(holder),
            }),
            Vec::new(),
        ),
        End::Done | End::Interrupted(_) => (false, None, Vec::new()),
    };
    let mut history = History::read(&crate::ledger::path(dir))
        .map_err(|e| HarnessError::Io("reading the ledger", e))?;
    history.whereabouts = whereabouts;
    history.fates = conns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let exit = if c.done {
                Exit::Code(0)
            } else {
                group.exit(c.member)
            };
            let killed_by_fault =
                plan.buyers[i].kill_at.is_some() && exit == Exit::Signal(Signal::SIGKILL as i32);
            let cut = timed_out || stuck.is_some();
            super::outcome::fate(group, c.member, i as u32, exit, killed_by_fault, cut, dir)
        })
        .collect();
    history.timed_out = timed_out;
    history.stuck = stuck;
    Ok(history)
}

/// A lease the harness can move ([`LockKind::virtual_clock`]) gets its clock file before
/// any buyer opens the lock: a stop fault's pause then passes on it at once.
pub(super) fn virtual_lease_clock(
    lock: crate::vocab::LockKind,
    dir: &Path,
) -> Result<(), HarnessError> {
    if !lock.virtual_clock() {
        return Ok(());
    }
    std::fs::write(dir.join(crate::lock::CLOCK_FILE), "0\n")
        .map_err(|e| HarnessError::Io("making the lease clock", e))
}

/// Paces free-running buyers until every one has closed its control socket.
pub(super) struct Driver<'a> {
    conns: &'a mut [Conn],
    group: &'a Group,
    plan: &'a Plan,
    dir: &'a Path,
    patience: Duration,
    deadline: Instant,
    started: bool,
    barrier_open: bool,
    /// Stop faults to end: when, and whom.
    wakes: Vec<(Instant, usize)>,
    /// Stopped buyers whose pause passed on the lease's virtual clock: continued once
    /// another buyer held the lock and let it go, or no other can take it.
    virtual_stops: Vec<usize>,
    /// Buyers that died holding the lock, and when. Under a user's lock command: buyers
    /// given a kill fault whose connection closed (a buyer runs only inside the command,
    /// so one killed died holding the command's lock; [`Driver::stale_in_command`] checks
    /// it was killed).
    dead_holders: Vec<(usize, Instant)>,
    /// Under a user's lock command: which buyers have said anything, that is have started
    /// inside the command; one that has not is waiting for the command's lock.
    spoke: Vec<bool>,
    /// True when the last poll found nothing to read: only then is a quiet spell real,
    /// not messages the harness has yet to read (on a busy machine it can lag behind).
    drained: bool,
    last_change: Instant,
}

impl<'a> Driver<'a> {
    pub(super) fn new(
        conns: &'a mut [Conn],
        group: &'a Group,
        plan: &'a Plan,
        dir: &'a Path,
        patience: Duration,
    ) -> Driver<'a> {
        let now = Instant::now();
        let spoke = vec![false; conns.len()];
        Driver {
            conns,
            group,
            plan,
            dir,
            patience,
            deadline: now + patience,
            started: plan.wrap.is_some(),
            barrier_open: false,
            wakes: Vec::new(),
            virtual_stops: Vec::new(),
            dead_holders: Vec::new(),
            spoke,
            drained: false,
            last_change: now,
        }
    }

    pub(super) fn run(mut self) -> End {
        loop {
            if let Some(sig) = interrupt::pending() {
                return End::Interrupted(sig);
            }
            let live: Vec<usize> = (0..self.conns.len())
                .filter(|&i| self.conns[i].open && !self.conns[i].done)
                .collect();
            if live.is_empty() {
                return End::Done;
            }
            self.start(&live);
            self.open_barrier(&live);
            let now = Instant::now();
            self.wake_stopped(now);
            if let Some(end) = self.stale(&live, now) {
                return end;
            }
            if now >= self.deadline {
                // What came while this thread did not run is progress, not silence: a
                // loaded machine may keep the harness from its poll past the deadline.
                match poll_readable(self.conns, &live, 0) {
                    Ok(readable) if !readable.is_empty() => {
                        for i in readable {
                            self.read_from(i);
                        }
                        continue;
                    }
                    // A buyer in the kernel's disk wait (a truncation the file
                    // system's journal holds up on a loaded machine) is the machine's
                    // delay, not the lock's: wait on, up to DISK_STRETCH patiences past
                    // the last sign of progress.
                    _ if self.in_disk_wait()
                        && now < self.last_change + self.patience * DISK_STRETCH =>
                    {
                        self.deadline = now + Duration::from_millis(100);
                        continue;
                    }
                    _ => return End::TimedOut(self.whereabouts()),
                }
            }
            let wait_ms = self.poll_wait(now);
            let Ok(readable) = poll_readable(self.conns, &live, wait_ms) else {
                continue;
            };
            self.drained = readable.is_empty();
            for i in readable {
                self.read_from(i);
            }
        }
    }

    /// The start barrier: once every buyer is ready, all go together.
    fn start(&mut self, live: &[usize]) {
        if !self.started && live.iter().all(|&i| self.conns[i].ready) {
            self.started = true;
            for &i in live {
                send(&mut self.conns[i], msg::GO);
                if let Some(orders) = self.conns[i].orders {
                    let _ = self.conns[i].sock.write_all(&orders);
                }
            }
        }
    }

    /// The read barrier: once every buyer that can read has read, all go on.
    fn open_barrier(&mut self, live: &[usize]) {
        if !self.started || self.plan.pace != Pace::Barrier || self.barrier_open {
            return;
        }
        let conns = &mut *self.conns;
        let waiting = live
            .iter()
            .filter(|&&i| conns[i].wait == Wait::AtBarrier)
            .count();
        let settled = live
            .iter()
            .all(|&i| matches!(conns[i].wait, Wait::AtBarrier | Wait::Blocked));
        if waiting > 0 && settled {
            self.barrier_open = true;
            for &i in live {
                if conns[i].wait == Wait::AtBarrier {
                    conns[i].wait = Wait::Running;
                    send(&mut conns[i], msg::GO);
                }
            }
        }
    }

    /// Makes the stop faults of the buyers `which` picks among [`Driver::virtual_stops`]
    /// due now.
    fn end_virtual_stops(&mut self, which: impl Fn(usize) -> bool) {
        let now = Instant::now();
        let ending: Vec<usize> = self
            .virtual_stops
            .iter()
            .copied()
            .filter(|&j| which(j))
            .collect();
        self.virtual_stops.retain(|j| !ending.contains(j));
        for (at, j) in self.wakes.iter_mut() {
            if ending.contains(j) {
                *at = now;
            }
        }
    }

    /// Stop faults whose time is up: continue the buyer, then let it go on. A buyer
    /// stopped on the virtual clock is due as soon as no other buyer is left that could
    /// take the lock (all ended, or stopped too).
    fn wake_stopped(&mut self, now: Instant) {
        if !self.virtual_stops.is_empty() {
            let conns = &*self.conns;
            let others_gone = |j: usize| {
                (0..conns.len()).all(|k| {
                    k == j || !conns[k].open || conns[k].done || conns[k].wait == Wait::Stopped
                })
            };
            let lone: Vec<usize> = self
                .virtual_stops
                .iter()
                .copied()
                .filter(|&j| others_gone(j))
                .collect();
            if !lone.is_empty() {
                self.end_virtual_stops(|j| lone.contains(&j));
            }
        }
        let (conns, group) = (&mut *self.conns, self.group);
        self.wakes.retain(|&(at, i)| {
            if at > now {
                return true;
            }
            group.signal_whole(conns[i].member, Signal::SIGCONT);
            conns[i].wait = Wait::Running;
            send(&mut conns[i], msg::GO);
            false
        });
    }

    /// A stale lock, when the facts (or, for a lock that cannot be probed, a long
    /// silence) say so.
    fn stale(&self, live: &[usize], now: Instant) -> Option<End> {
        if self.plan.wrap.is_some() {
            return self.stale_in_command(live, now);
        }
        let &(last_dead, since) = self.dead_holders.last()?;
        if !live.iter().all(|&i| self.conns[i].wait == Wait::Blocked) {
            return None;
        }
        let waiting = || live.iter().map(|&i| i as u32).collect();
        // The lock names its holder: if that is a buyer that died, nobody can free it.
        if let Some(named) = crate::lock::named_holder(self.plan.lock, self.dir) {
            let dead = self
                .dead_holders
                .iter()
                .find(|&&(h, _)| Some(self.group.pid(self.conns[h].member)) == named);
            return dead.map(|&(h, _)| End::Stale {
                waiting: waiting(),
                holder: h as u32,
            });
        }
        let quiet_since = since.max(self.last_change);
        (self.drained && now.duration_since(quiet_since) >= STALE_AFTER).then(|| End::Stale {
            waiting: waiting(),
            holder: last_dead as u32,
        })
    }

    /// A stale lock of a user's lock command, which cannot be probed: a buyer was killed
    /// inside the command (so holding its lock), and for [`STALE_AFTER`] (plus the pauses
    /// the plan allows) every live buyer has been waiting to start, each inside its own
    /// command, with nothing said. A lock the kernel frees with its holder (flock(1))
    /// lets the next buyer start well within that.
    fn stale_in_command(&self, live: &[usize], now: Instant) -> Option<End> {
        if live.iter().any(|&i| self.spoke[i]) {
            return None;
        }
        let &(holder, since) = self
            .dead_holders
            .iter()
            .rev()
            .find(|&&(h, _)| self.group.died_of(self.conns[h].member, Signal::SIGKILL))?;
        let quiet_since = since.max(self.last_change);
        let quiet = now.duration_since(quiet_since) >= STALE_AFTER + self.plan.slack;
        (self.drained && quiet).then(|| End::Stale {
            waiting: live.iter().map(|&i| i as u32).collect(),
            holder: holder as u32,
        })
    }

    /// True when a process of a buyer not done is in the kernel's disk wait.
    fn in_disk_wait(&self) -> bool {
        self.conns
            .iter()
            .filter(|c| c.open && !c.done)
            .any(|c| crate::seccomp::blocked::in_disk_wait(self.group.pid(c.member)))
    }

    /// Where the processes of each buyer not done are, before the trial is killed: what
    /// a `hang` names, so the one that kept the others waiting can be told.
    fn whereabouts(&self) -> Vec<(u32, String)> {
        (0..self.conns.len())
            .filter(|&i| self.conns[i].open && !self.conns[i].done)
            .filter_map(|i| {
                let pid = self.group.pid(self.conns[i].member);
                let at = crate::seccomp::blocked::whereabouts(pid)?;
                Some((i as u32, at))
            })
            .collect()
    }

    /// How long the next poll may wait, in milliseconds.
    fn poll_wait(&self, now: Instant) -> u16 {
        let mut until = self.deadline;
        if let Some(&(at, _)) = self.wakes.iter().min_by_key(|(at, _)| *at) {
            until = until.min(at);
        }
        if !self.dead_holders.is_empty() {
            until = until.min(now + Duration::from_millis(5));
        }
        until
            .saturating_duration_since(now)
            .as_millis()
            .clamp(1, 1000) as u16
    }

    /// Reads what buyer `i` said and acts on it.
    fn read_from(&mut self, i: usize) {
        let mut buf = [0u8; 64];
        let n = match (&self.conns[i].sock).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        self.last_change = Instant::now();
        self.deadline = self.last_change + self.patience;
        if n == 0 {
            self.conns[i].open = false;
            // A buyer runs only inside the user's command: killed, it died holding its lock.
            let in_command = self.plan.wrap.is_some() && self.plan.buyers[i].kill_at.is_some();
            if self.conns[i].holding || in_command {
                self.dead_holders.push((i, self.last_change));
            }
            return;
        }
        self.spoke[i] = true;
        for &b in &buf[..n] {
            self.on_message(i, b);
        }
    }

    fn on_message(&mut self, i: usize, b: u8) {
        let c = &mut self.conns[i];
        match b {
            // Once started, only a pooled buyer says `ready`: its round is over.
            msg::READY if self.started => c.done = true,
            msg::READY => c.ready = true,
            msg::BLOCKED => c.wait = Wait::Blocked,
            // Not a sign a dead holder's lock was freed: messages from different buyers
            // are read out of order. A freed lock shows as a waiter that stops waiting.
            msg::ACQUIRED => {
                c.wait = Wait::Running;
                c.holding = true;
            }
            msg::RELEASED => {
                c.holding = false;
                // Another held the lock and let it go: a frozen holder whose pause passed
                // on the virtual clock lost the lease to it, and runs on after it, as it
                // would after a pause longer than that holder's turn.
                self.end_virtual_stops(|j| j != i);
            }
            msg::HAVE_READ if self.barrier_open => {
                c.wait = Wait::Running;
                send(c, msg::GO);
            }
            msg::HAVE_READ => c.wait = Wait::AtBarrier,
            msg::STOP_ME => {
                self.group.signal_whole(c.member, Signal::SIGSTOP);
                c.wait = Wait::Stopped;
                let pause = Duration::from_millis(u64::from(c.stop_ms));
                // A lease on a clock the harness moves: the pause passes on it at once, so
                // the holder's lease runs out now; the holder is continued once another
                // buyer held the lock and let it go, or nobody is left to take it (never
                // later than the pause itself).
                // Only a held lease makes the pause count (as under a controlled schedule):
                // a buyer frozen outside its critical section moves no clock.
                let holding = c.holding;
                let movable = if self.plan.lock.virtual_clock() {
                    !holding || super::pause::advance_lease_clock(self.dir, pause).is_ok()
                } else {
                    self.plan.lock.needs_redis()
                        && self.dir.join(super::clock::SERVER_FILE).exists()
                        && (!holding || super::clock::advance_server_clock(self.dir, pause).is_ok())
                };
                if movable {
                    self.virtual_stops.push(i);
                }
                self.wakes.push((Instant::now() + pause, i));
            }
            _ => {}
        }
    }
}

fn send(conn: &mut Conn, byte: u8) {
    // A buyer that died cannot be told anything; its EOF is noticed by the poll.
    let _ = conn.sock.write_all(&[byte]);
}

fn poll_readable(conns: &[Conn], live: &[usize], wait_ms: u16) -> io::Result<Vec<usize>> {
    use nix::poll::{poll, PollFd, PollFlags};
    let mut fds: Vec<PollFd> = live
        .iter()
        .map(|&i| PollFd::new(conns[i].sock.as_fd(), PollFlags::POLLIN))
        .collect();
    poll(&mut fds, wait_ms).map_err(io::Error::from)?;
    Ok(live
        .iter()
        .zip(&fds)
        .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
        .map(|(&i, _)| i)
        .collect())
}
