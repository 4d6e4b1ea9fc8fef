//! Controlled trials: exactly one buyer runs between yield points.
//!
//! A [`Session`] owns a trial directory, its lock state and a pool of buyer processes
//! that run round after round, so a search over thousands of schedules does not pay a
//! spawn per buyer per schedule. Each round resets the store and the ledger, releases
//! the buyers through the start barrier, then at every step asks the [`Scheduler`] which
//! runnable buyer goes next, sends it `go`, and reads the point it stops at next. A busy
//! lock is a scheduling decision: the buyer reports `blocked` and becomes runnable again
//! after some buyer releases or dies. When every live buyer is blocked the round is a
//! deadlock; a buyer that does not report in time is a hang. A round that ends in any
//! way but cleanly poisons the session, which is then torn down.

use super::process::{Group, MemberId};
use super::{
    interrupt, prepare_lock, spawn_buyer, stderr_tail, BuyerSpec, HarnessConfig, HarnessError,
    LockState, ScheduleRecord, TrialDir, TrialRun,
};
use crate::buyer::{msg, Pace, Point};
use crate::ledger::{Exit, Fate, History, Stuck};
use crate::lock::{Lock, LockContext, LockKind};
use crate::scenario::{StoreMode, Trial};
use crate::schedule::Scheduler;
use crate::store;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::signal::Signal;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A pool of reusable buyer processes for one lock and store mode.
pub struct Session {
    cfg: HarnessConfig,
    lock: LockKind,
    store: StoreMode,
    dir: TrialDir,
    group: Group,
    lock_state: LockState,
    slots: Vec<Option<Slot>>,
    /// Buyers killed by a fault this round: (index, member), for their fates.
    dead: Vec<(usize, MemberId)>,
    /// The CPU the session's processes share (inherited from the thread that spawns).
    cpu: Option<usize>,
    /// For a lock server: the harness's own client, to see a dead holder's hold freed.
    prober: Option<Box<dyn Lock>>,
    poisoned: bool,
}

struct Slot {
    sock: UnixStream,
    member: MemberId,
    /// Sent `ready` and waits at the start barrier.
    idle: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Parked at a yield point, runnable.
    At(Point),
    /// Waiting for the lock.
    Blocked,
    /// Finished the round.
    Done,
    /// Exited or was killed.
    Dead,
}

/// Points at which a buyer is inside the critical section.
fn holds_lock(p: Point) -> bool {
    matches!(
        p,
        Point::Read | Point::Write | Point::Truncated | Point::Release
    )
}

fn current_cpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
}

/// Pins the calling thread (and so every process it spawns meanwhile) to one CPU, and
/// restores its former CPU set when dropped.
struct Pinned {
    saved: Option<CpuSet>,
}

impl Pinned {
    fn to(cpu: Option<usize>) -> Pinned {
        let me = nix::unistd::Pid::from_raw(0);
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
            let _ = sched_setaffinity(nix::unistd::Pid::from_raw(0), saved);
        }
    }
}

enum Reply {
    Byte(u8),
    Closed,
    TimedOut,
    Interrupted(i32),
}

fn read_reply(sock: &mut UnixStream) -> Reply {
    let mut b = [0u8; 1];
    loop {
        return match sock.read(&mut b) {
            Ok(1) => Reply::Byte(b[0]),
            Ok(_) => Reply::Closed,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => match interrupt::pending() {
                Some(sig) => Reply::Interrupted(sig),
                None => continue,
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Reply::TimedOut
            }
            Err(_) => Reply::Closed,
        };
    }
}

impl Session {
    /// A session for `lock` and `store`, with no buyers yet.
    pub fn new(
        lock: LockKind,
        store: StoreMode,
        cfg: &HarnessConfig,
    ) -> Result<Session, HarnessError> {
        let dir = TrialDir::create(cfg.keep.as_deref())?;
        let mut group = Group::default();
        let deadline = Instant::now() + cfg.timeout;
        let cpu = current_cpu();
        let lock_state = {
            let _pin = Pinned::to(cpu);
            prepare_lock(lock, &dir.path, &mut group, &cfg.exe, deadline)?
        };
        let prober = if lock.needs_server() {
            let ctx = LockContext {
                dir: dir.path.clone(),
                sem_id: None,
            };
            Some(lock.open(&ctx).map_err(HarnessError::Lock)?)
        } else {
            None
        };
        Ok(Session {
            cfg: cfg.clone(),
            lock,
            store: lock.required_store().unwrap_or(store),
            dir,
            group,
            lock_state,
            slots: Vec::new(),
            dead: Vec::new(),
            cpu,
            prober,
            poisoned: false,
        })
    }

    /// False once a round ended in a way that may have left state behind (a death, a
    /// deadlock, a hang): run the next trial in a new session.
    pub fn healthy(&self) -> bool {
        !self.poisoned
    }

    /// True when this session can run `trial`.
    pub fn fits(&self, trial: &Trial) -> bool {
        let joins = !self.lock.fixed_membership() || trial.buyers as usize <= self.slots.len();
        self.lock == trial.lock
            && self.store == trial.lock.required_store().unwrap_or(trial.store)
            && joins
    }

    fn step_timeout(&self) -> Duration {
        self.cfg.timeout
    }

    fn ensure_buyer(&mut self, index: u32) -> Result<(), HarnessError> {
        let i = index as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].is_some() {
            return Ok(());
        }
        let spec = BuyerSpec {
            lock: self.lock,
            dir: self.dir.path.clone(),
            index,
            start_us: 0,
            hold_us: 0,
            store: self.store,
            pace: Pace::Controlled,
            sem_id: self.lock_state.sem.as_ref().map(|s| s.id),
            reuse: true,
            kill_at: None,
            stop_at: None,
            start_barrier: true,
            kill_group: false,
        };
        let (sock, member) = spawn_buyer(&mut self.group, &self.cfg, &spec)?;
        sock.set_read_timeout(Some(self.step_timeout()))
            .map_err(|e| HarnessError::Io("setting a control timeout", e))?;
        self.slots[i] = Some(Slot {
            sock,
            member,
            idle: false,
        });
        Ok(())
    }

    /// Brings buyer `i` to the start barrier; false when it could not get there.
    fn make_idle(&mut self, i: usize) -> bool {
        let Some(slot) = self.slots[i].as_mut() else {
            return false;
        };
        if slot.idle {
            return true;
        }
        match read_reply(&mut slot.sock) {
            Reply::Byte(msg::READY) => {
                slot.idle = true;
                true
            }
            _ => false,
        }
    }

    /// SIGKILLs buyer `i` (a kill fault) and reaps it.
    fn kill(&mut self, i: usize) {
        if let Some(slot) = self.slots[i].take() {
            self.group.signal(slot.member, Signal::SIGKILL);
            self.group.wait_one(slot.member, Duration::from_secs(2));
            self.dead.push((i, slot.member));
        }
        self.poisoned = true;
    }

    /// After a holder was killed, waits until the lock server has freed its hold. The
    /// kernel frees a dead process's flock, fcntl or SysV lock before it can be reaped;
    /// the server notices only when it reads the dead connection's end. Without this a
    /// waiter scheduled next could still find the lock busy: a false stale lock.
    fn settle_release(&mut self) {
        let Some(prober) = self.prober.as_mut() else {
            return;
        };
        let end = Instant::now() + self.cfg.timeout;
        while Instant::now() < end {
            match prober.try_lock() {
                Ok(true) => {
                    let _ = prober.unlock();
                    return;
                }
                Ok(false) => std::thread::sleep(Duration::from_micros(200)),
                Err(_) => return,
            }
        }
    }

    /// Tears the session down after SIGINT or SIGTERM.
    fn interrupted(&mut self, sig: i32) -> HarnessError {
        self.poisoned = true;
        self.group.terminate(self.cfg.grace);
        self.group.finish();
        HarnessError::Interrupted(sig)
    }

    /// Runs one round of `trial` under `scheduler`.
    pub fn run(
        &mut self,
        trial: &Trial,
        scheduler: &mut dyn Scheduler,
    ) -> Result<TrialRun, HarnessError> {
        let started = Instant::now();
        let n = trial.buyers as usize;
        self.dead.clear();
        // One process runs at a time: keep them all on one CPU, where handing over is a
        // plain context switch rather than a wake-up across cores.
        let _pin = Pinned::to(self.cpu);
        store::create(&store::path(&self.dir.path), trial.tickets as i64)
            .map_err(|e| HarnessError::Io("writing the store", e))?;
        File::create(crate::ledger::path(&self.dir.path))
            .map_err(|e| HarnessError::Io("resetting the ledger", e))?;

        let mut state = vec![State::Dead; n];
        let mut stuck: Option<Stuck> = None;
        for i in 0..n {
            self.ensure_buyer(i as u32)?;
        }
        // Start barrier: all buyers idle, then all released to their first point.
        for (i, st) in state.iter_mut().enumerate() {
            if !self.make_idle(i) {
                self.poisoned = true;
                continue;
            }
            let Some(slot) = self.slots[i].as_mut() else {
                continue;
            };
            slot.idle = false;
            if slot.sock.write_all(&[msg::GO]).is_err() {
                self.poisoned = true;
                continue;
            }
            *st = match read_reply(&mut slot.sock) {
                Reply::Byte(b) => Point::from_code(b).map_or(State::Dead, State::At),
                Reply::Interrupted(sig) => return Err(self.interrupted(sig)),
                _ => State::Dead,
            };
            if *st == State::Dead {
                self.poisoned = true;
            }
        }
        let plans: Vec<_> = (0..trial.buyers).map(|b| trial.fault_plan(b)).collect();
        let mut killed = vec![false; n];
        for (i, st) in state.iter_mut().enumerate() {
            if let State::At(p) = *st {
                if plans[i].kill_at == Some(p) {
                    self.kill(i);
                    killed[i] = true;
                    *st = State::Dead;
                }
            }
        }

        let mut choices = Vec::new();
        let mut preemptions = 0u32;
        let mut current: Option<u32> = None;
        let mut holder: Option<u32> = None;
        let mut diverged = None;
        let mut timed_out = false;
        loop {
            let runnable: Vec<u32> = (0..n as u32)
                .filter(|&b| matches!(state[b as usize], State::At(_)))
                .collect();
            if runnable.is_empty() {
                let waiting: Vec<u32> = (0..n as u32)
                    .filter(|&b| state[b as usize] == State::Blocked)
                    .collect();
                if !waiting.is_empty() {
                    stuck = Some(Stuck::Deadlock { waiting, holder });
                    self.poisoned = true;
                }
                break;
            }
            let cur = current.filter(|c| runnable.contains(c));
            let b = match scheduler.pick(choices.len(), &runnable, cur) {
                Ok(b) => b,
                Err(d) => {
                    diverged = Some(d);
                    self.poisoned = true;
                    break;
                }
            };
            if cur.is_some_and(|c| c != b) {
                preemptions += 1;
            }
            choices.push(b);
            let bi = b as usize;
            let before = state[bi];
            let Some(slot) = self.slots[bi].as_mut() else {
                state[bi] = State::Dead;
                continue;
            };
            let reply = if slot.sock.write_all(&[msg::GO]).is_ok() {
                read_reply(&mut slot.sock)
            } else {
                Reply::Closed
            };
            state[bi] = match reply {
                Reply::Byte(msg::BLOCKED) => State::Blocked,
                Reply::Byte(msg::READY) => {
                    slot.idle = true;
                    State::Done
                }
                Reply::Byte(code) => match Point::from_code(code) {
                    Some(p) => State::At(p),
                    None => State::Dead,
                },
                Reply::Closed => State::Dead,
                Reply::Interrupted(sig) => return Err(self.interrupted(sig)),
                Reply::TimedOut => {
                    let after = match before {
                        State::At(p) => p.name().to_string(),
                        _ => "acquire".to_string(),
                    };
                    stuck = Some(Stuck::Hang { buyer: b, after });
                    timed_out = true;
                    self.poisoned = true;
                    break;
                }
            };
            // A kill fault is part of the schedule: the buyer dies the moment it parks
            // at its planned point, so a token replays the same death.
            if let State::At(p) = state[bi] {
                if plans[bi].kill_at == Some(p) {
                    self.kill(bi);
                    if holds_lock(p) {
                        self.settle_release();
                    }
                    killed[bi] = true;
                    if holds_lock(p) {
                        holder = Some(b);
                    }
                    state[bi] = State::Dead;
                }
            }
            match state[bi] {
                State::At(p) if holds_lock(p) => holder = Some(b),
                State::Dead => self.poisoned = true,
                _ => {}
            }
            // A release (or a death) may free the lock: blocked buyers may try again.
            let released = before == State::At(Point::Release) || state[bi] == State::Dead;
            if released {
                // It gave the lock back, unless it died still holding it.
                if holder == Some(b) && (before == State::At(Point::Release) || !killed[bi]) {
                    holder = None;
                }
                for s in state.iter_mut().filter(|s| **s == State::Blocked) {
                    *s = State::At(Point::Acquire);
                }
            }
            current = Some(b);
        }
        if diverged.is_none() {
            if let Err(d) = scheduler.finish(choices.len()) {
                diverged = Some(d);
            }
        }

        // Fates: finished buyers stay parked for the next round; the others are reaped.
        let mut fates = Vec::with_capacity(n);
        for (i, st) in state.iter().enumerate() {
            let member = self.slots[i]
                .as_ref()
                .map(|s| s.member)
                .or_else(|| self.dead.iter().find(|(d, _)| *d == i).map(|(_, m)| *m));
            let pid = member.map_or(0, |m| self.group.pid(m));
            let exit = match (st, member) {
                (State::Done, _) => Exit::Code(0),
                (State::Dead, Some(m)) => {
                    self.group.wait_one(m, Duration::from_secs(2));
                    self.group.exit(m)
                }
                _ => Exit::Unknown,
            };
            fates.push(Fate {
                exit,
                pid,
                killed_by_fault: killed[i],
                killed_by_timeout: !killed[i]
                    && (timed_out || (stuck.is_some() && *st != State::Done)),
                stderr_tail: stderr_tail(&self.dir.path, i as u32),
            });
        }
        let mut leaked = false;
        if self.poisoned {
            // Tear everything down now so the history below is final.
            self.group.terminate(self.cfg.grace);
            leaked = !self.group.finish();
            for s in &mut self.slots {
                *s = None;
            }
        }
        let mut history = History::read(&crate::ledger::path(&self.dir.path))
            .map_err(|e| HarnessError::Io("reading the ledger", e))?;
        history.fates = fates;
        history.timed_out = timed_out;
        history.stuck = stuck;
        if let Some(line) = super::outcome::setup_failure(&history, false) {
            self.poisoned = true;
            return Err(HarnessError::Setup(line));
        }
        let final_store = super::final_store(&self.dir.path)?;
        Ok(TrialRun {
            history,
            final_store,
            kept: self.dir.kept(),
            leaked,
            elapsed: started.elapsed(),
            schedule: Some(ScheduleRecord {
                choices,
                preemptions,
                diverged,
            }),
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the control sockets ends reused buyers cleanly; the group guard kills
        // whatever does not end in time.
        for s in &mut self.slots {
            *s = None;
        }
        if let Some(server) = self.lock_state.server {
            self.group.signal(server, Signal::SIGKILL);
        }
        self.lock.cleanup(&self.dir.path);
        if !self.group.wait_all(Duration::from_millis(500)) {
            self.group.signal_all(Signal::SIGKILL);
        }
        self.group.finish();
    }
}
