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

use super::pin::{current_cpu, Pinned};
use super::process::{Group, MemberId};
use super::{
    interrupt, prepare_lock, spawn_buyer, BuyerSpec, HarnessConfig, HarnessError, LockState,
    TrialDir,
};
use crate::lock::{Lock, LockContext, LockKind};
use crate::protocol::{msg, Pace, Point};
use crate::scenario::Trial;
use crate::store::StoreMode;
use nix::sys::signal::Signal;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A pool of reusable buyer processes for one lock and store mode.
pub struct Session {
    pub(super) cfg: HarnessConfig,
    pub(super) lock: LockKind,
    store: StoreMode,
    pub(super) dir: TrialDir,
    pub(super) group: Group,
    lock_state: LockState,
    pub(super) slots: Vec<Option<Slot>>,
    /// Buyers killed by a fault this round: (index, member), for their fates.
    pub(super) dead: Vec<(usize, MemberId)>,
    /// The CPU the session's processes share (inherited from the thread that spawns).
    pub(super) cpu: Option<usize>,
    /// For a lock server: the harness's own client, to see a dead holder's hold freed.
    prober: Option<Box<dyn Lock>>,
    pub(super) poisoned: bool,
}

pub(super) struct Slot {
    pub(super) sock: UnixStream,
    pub(super) member: MemberId,
    /// Sent `ready` and waits at the start barrier.
    pub(super) idle: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
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
pub(super) fn holds_lock(p: Point) -> bool {
    matches!(
        p,
        Point::Read | Point::Write | Point::Truncated | Point::Release
    )
}

pub(super) enum Reply {
    Byte(u8),
    Closed,
    TimedOut,
    Interrupted(i32),
}

pub(super) fn read_reply(sock: &mut UnixStream) -> Reply {
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

    pub(super) fn ensure_buyer(&mut self, index: u32) -> Result<(), HarnessError> {
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
    pub(super) fn make_idle(&mut self, i: usize) -> bool {
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
    pub(super) fn kill(&mut self, i: usize) {
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
    pub(super) fn settle_release(&mut self) {
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
    pub(super) fn interrupted(&mut self, sig: i32) -> HarnessError {
        self.poisoned = true;
        self.group.terminate(self.cfg.grace);
        self.group.finish();
        HarnessError::Interrupted(sig)
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
