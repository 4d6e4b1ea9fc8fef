//! A pool of reused buyer processes for free-running trials (`jitter`, `barrier`), as a
//! [`super::Session`] is for controlled ones: a trial no longer pays a spawn per buyer.
//!
//! The pool keeps one trial directory and its lock state. Each trial resets the store and
//! the ledger, spawns only the buyers it lacks, and releases its buyers through the start
//! barrier with this round's orders ([`RoundOrders`]: start delay, hold, faults, pace)
//! right after the `go`. From there the trial runs exactly as a fresh one (`free.rs`'s
//! driver: read barrier, stop faults, stale locks, the watchdog); a buyer whose round is
//! over says `ready` again instead of closing its socket. Buyers beyond a trial's count
//! wait at the start barrier. A round that ends in any way but every buyer finishing (a
//! death, a hang, a stale lock, an interrupt) poisons the pool, which is torn down: the
//! next trial starts with new processes, so a dead buyer is replaced and nothing a dead
//! holder left (a lock file, a taken lock) reaches another trial.

use super::free::{history, Conn, Driver, End, Wait};
use super::outcome::Parts;
use super::plan::Plan;
use super::process::{Ending, Group};
use super::{
    ensure_reused, prepare_lock, spawn_buyer_in, BuyerSpec, HarnessConfig, HarnessError, Launcher,
    LockState, Reused, TrialDir, TrialRun,
};
use crate::lock::LockKind;
use crate::protocol::{Pace, RoundOrders};
use crate::scenario::{Target, Trial};
use crate::store::{self, StoreMode};
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// True when `trial` may run on a [`FreePool`] under `cfg`: a free-running trial of a
/// built-in lock whose state a finished round leaves as it found it, with buyers of
/// oversell's own, not kept, and not `--fresh-processes`. A lock server, Redis, a lease
/// (its heartbeat and expiry span rounds) and `posix-sem` (fixed membership, a name
/// removed once all opened it) run fresh, as do a user's lock or buyer command.
pub(super) fn poolable(trial: &Trial, cfg: &HarnessConfig) -> bool {
    let lock_ok = matches!(
        trial.lock(),
        LockKind::None
            | LockKind::Flock
            | LockKind::Ofd
            | LockKind::Posix
            | LockKind::Lockfile
            | LockKind::Toctou
            | LockKind::EarlyRelease
            | LockKind::PosixClose
            | LockKind::RenamedStore
            | LockKind::Sysv
    );
    lock_ok
        && !cfg.fresh
        && cfg.keep.is_none()
        && cfg.launcher == Launcher::Subcommand
        && matches!(trial.target, Target::Lock { syscall: false, .. })
        && !trial.schedule.is_controlled()
}

/// A pool's buyer: a reused one over a Unix socket.
type PooledBuyer = Reused<UnixStream>;

/// Reused buyer processes for free-running trials of one lock and store mode.
pub struct FreePool {
    cfg: HarnessConfig,
    lock: LockKind,
    store: StoreMode,
    dir: TrialDir,
    group: Group,
    lock_state: LockState,
    slots: Vec<Option<PooledBuyer>>,
    poisoned: bool,
}

impl FreePool {
    /// A pool for `trial`'s lock and store, with no buyers yet.
    pub fn new(trial: &Trial, cfg: &HarnessConfig) -> Result<FreePool, HarnessError> {
        let dir = TrialDir::create(cfg.keep.as_deref())?;
        let mut group = Group::default();
        let deadline = Instant::now() + cfg.timeout;
        let lock_state = prepare_lock(trial.lock(), &dir.path, &mut group, &cfg.exe, deadline)?;
        super::free::virtual_lease_clock(trial.lock(), &dir.path)?;
        Ok(FreePool {
            cfg: cfg.clone(),
            lock: trial.lock(),
            store: trial.lock().required_store().unwrap_or(trial.store),
            dir,
            group,
            lock_state,
            slots: Vec::new(),
            poisoned: false,
        })
    }

    /// False once a round ended in a way that may have left state behind.
    pub fn healthy(&self) -> bool {
        !self.poisoned
    }

    /// True when this pool can run `trial`.
    pub fn fits(&self, trial: &Trial) -> bool {
        self.lock == trial.lock()
            && self.store == trial.lock().required_store().unwrap_or(trial.store)
    }

    fn ensure_buyer(&mut self, i: usize) -> Result<(), HarnessError> {
        let sem_id = self.lock_state.sem.as_ref().map(|s| s.id);
        let (lock, store) = (self.lock, self.store);
        ensure_reused(&mut self.slots, i, |index| {
            let dir = self.dir.path.clone();
            let spec = BuyerSpec::reused(lock, dir, index, store, Pace::Free, sem_id);
            spawn_buyer_in(&mut self.group, &self.cfg, &spec, None)
        })
    }

    /// This trial's connections, taken from the slots, each with its orders.
    fn connect(&mut self, plan: &Plan) -> Result<Vec<Conn>, HarnessError> {
        let mut conns = Vec::with_capacity(plan.buyers.len());
        for (i, b) in plan.buyers.iter().enumerate() {
            self.ensure_buyer(i)?;
            let Some(slot) = self.slots[i].take() else {
                return Err(HarnessError::Io(
                    "starting a pooled buyer",
                    std::io::Error::other("no slot"),
                ));
            };
            let orders = RoundOrders {
                start_us: b.start_us.min(RoundOrders::MAX_US),
                hold_us: b.hold_us.min(RoundOrders::MAX_US),
                kill_at: b.kill_at,
                stop_at: b.stop.map(|(p, _)| p),
                pace: plan.pace,
            };
            conns.push(Conn {
                sock: slot.sock,
                member: slot.member,
                open: true,
                ready: slot.idle,
                wait: Wait::Running,
                holding: false,
                stop_ms: b.stop.map_or(0, |(_, ms)| ms),
                done: false,
                orders: Some(orders.encode()),
            });
        }
        Ok(conns)
    }

    /// Runs one free-running trial on the pool.
    pub fn run(&mut self, trial: &Trial) -> Result<TrialRun, HarnessError> {
        let started = Instant::now();
        let plan = Plan::of(trial);
        store::create(&store::path(&self.dir.path), plan.tickets as i64)
            .map_err(|e| HarnessError::Io("writing the store", e))?;
        File::create(crate::ledger::path(&self.dir.path))
            .map_err(|e| HarnessError::Io("resetting the ledger", e))?;
        let conns = self.connect(&plan);
        let mut conns = match conns {
            Ok(c) => c,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        };
        let patience = self.cfg.timeout + plan.slack;
        let end = Driver::new(&mut conns, &self.group, &plan, &self.dir.path, patience).run();
        let finished = matches!(end, End::Done);
        let clean = finished && conns.iter().all(|c| c.done);
        let mut leaked = false;
        if finished {
            // Reap the buyers that died (a kill fault, a crash).
            for c in conns.iter().filter(|c| !c.done) {
                self.group
                    .end_one(c.member, Ending::Awaited(Duration::from_secs(2)));
            }
        } else {
            self.poisoned = true;
            leaked = !self
                .group
                .end(Ending::Asked(self.cfg.grace), None, || {})
                .clean;
        }
        if let End::Interrupted(sig) = end {
            return Err(HarnessError::Interrupted(sig));
        }
        let history = history(&self.dir.path, &conns, &self.group, &plan, end)?;
        if clean {
            for (i, c) in conns.into_iter().enumerate() {
                self.slots[i] = Some(Reused {
                    sock: c.sock,
                    member: c.member,
                    idle: true,
                });
            }
        } else if !self.poisoned {
            // A buyer died: end the others now, so the leak check below is final.
            self.poisoned = true;
            drop(conns);
            leaked = !self.teardown();
        }
        let parts = Parts {
            history,
            kept: self.dir.kept(),
            leaked,
            elapsed: started.elapsed(),
        };
        let result = parts.finish(&self.dir.path, false);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Closes every buyer's socket (a pooled buyer then exits cleanly), stops the lock's
    /// helper, and reaps everything; true when nothing was left in the group.
    fn teardown(&mut self) -> bool {
        for s in &mut self.slots {
            *s = None;
        }
        let server = self.lock_state.server.take();
        let ended = self
            .group
            .end(Ending::Awaited(Duration::from_millis(500)), server, || {});
        ended.clean && ended.in_time
    }
}

impl Drop for FreePool {
    fn drop(&mut self) {
        self.teardown();
        self.lock.cleanup(&self.dir.path);
    }
}
