//! One round of a controlled trial on a [`Session`]: reset the store and the ledger,
//! release the buyers through the start barrier, then step by step let the scheduler
//! pick one runnable buyer, send it `go` (or `go-lock`, see below) and read the point it
//! parks at next.
//!
//! The harness tracks who holds the lock. When it knows nobody does (no live buyer is
//! inside the critical section and no buyer died in or next to it this round), a buyer
//! at `acquire` is told `go-lock`: it takes the lock with the blocking `lock()`, which
//! must return at once; a buyer that stays in it is a finding naming `lock()`. Otherwise
//! the buyer uses `try_lock()` and reports `blocked` when the lock is busy.

use super::controlled::{holds_lock, read_reply, Reply, Session, State};
use super::disk::{Choose, Disk};
use super::pause::Frozen;
use super::pin::Pinned;
use super::plan::Plan;
use super::process::Ending;
use super::steps::{self, Ended, Moved, Steps, Walk};
use super::{stderr_tail, HarnessError, ScheduleRecord, Seen, TrialRun};
use crate::ledger::{Exit, Fate, History, PowerCut, Stuck};
use crate::lock::LockKind;
use crate::protocol::{msg, Point};
use crate::scenario::Trial;
use crate::schedule::{Access, Scheduler};
use crate::store;
use crate::token::{crash_in_state, crash_state, is_crash, CRASH_CHOICE};
use std::time::{Duration, Instant};

/// What the harness says after a buyer blocked in `lock()` although nobody held it.
const STUCK_IN_LOCK: &str = "acquire: blocked in lock() while no buyer held the lock";

/// The state of one round.
struct Round {
    plan: Plan,
    state: Vec<State>,
    killed: Vec<bool>,
    /// Choices, preemptions and divergence, kept by the one step loop ([`steps`]).
    walk: Walk,
    steps: Vec<Seen>,
    /// The buyer last inside the critical section.
    holder: Option<u32>,
    /// A buyer died while it held, or may have held, the lock: it may stay taken.
    holder_died: bool,
    timed_out: bool,
    stuck: Option<Stuck>,
    /// Buyers frozen by a stop fault: out of the schedule (see `pause.rs`).
    frozen: Vec<Option<Frozen>>,
    /// Every live buyer waited on a lease whose holder died, and the harness waited the
    /// lease out; cleared by the next step that does not block.
    lease_waited: bool,
    /// A crash fault's power cut, when the trial may have one.
    crash: Option<Crash>,
}

/// A power cut to come, or the one that came.
struct Crash {
    /// The trial's seed: what the disk keeps is drawn from it and the cut's step.
    seed: u64,
    /// The scheduler places the cut (one more choice at each step, [`CRASH_CHOICE`]);
    /// else it falls at `at`.
    chosen: bool,
    /// The scheduler searches: a cut is offered once per state the disk could be left
    /// in ([`crash_in_state`]), the seed's draw only when there are too many.
    states: bool,
    /// The seeded step (the count of steps taken before it), if the seed drew one.
    at: Option<usize>,
    /// The disk model, until the cut.
    disk: Disk,
    /// The cut, once it came.
    cut: Option<PowerCut>,
}

impl Crash {
    fn pending(&self) -> bool {
        self.cut.is_none()
    }
}

impl Round {
    fn new(plan: Plan) -> Round {
        let n = plan.buyers.len();
        Round {
            plan,
            state: vec![State::Dead; n],
            killed: vec![false; n],
            walk: Walk::default(),
            steps: Vec::with_capacity(n * crate::schedule::POINTS_PER_BUYER),
            holder: None,
            holder_died: false,
            timed_out: false,
            stuck: None,
            frozen: vec![None; n],
            lease_waited: false,
            crash: None,
        }
    }

    fn runnable(&self) -> Vec<u32> {
        (0..self.state.len() as u32)
            .filter(|&b| matches!(self.state[b as usize], State::At(_)))
            .filter(|&b| self.frozen[b as usize].is_none())
            .collect()
    }

    /// What each buyer's pending step touches (`None`: it cannot run).
    fn pending(&self, lock: LockKind) -> Vec<Option<Access>> {
        self.state
            .iter()
            .map(|s| match s {
                State::At(p) => Some(Access::at(*p, lock)),
                _ => None,
            })
            .collect()
    }

    /// True when the harness knows the lock is free.
    fn lock_free(&self) -> bool {
        !self.holder_died
            && !self
                .state
                .iter()
                .any(|s| matches!(s, State::At(p) if holds_lock(*p)))
    }
}

impl Session {
    /// Runs one round of `trial` under `scheduler`.
    pub fn run(
        &mut self,
        trial: &Trial,
        scheduler: &mut dyn Scheduler,
    ) -> Result<TrialRun, HarnessError> {
        if let Some(why) = trial.crash_refused() {
            return Err(HarnessError::Refused(why));
        }
        let started = Instant::now();
        self.dead.clear();
        // One process runs at a time: keep them all on one CPU, where handing over is a
        // plain context switch rather than a wake-up across cores.
        let _pin = Pinned::to(self.cpu);
        let mut round = Round::new(Plan::of(trial));
        self.reset(&round.plan)?;
        if trial.faults.crash > 0.0 {
            let chosen = scheduler.places_crash();
            round.crash = Some(Crash {
                seed: trial.seed,
                chosen,
                states: scheduler.searches_disk_states(),
                at: if chosen {
                    None
                } else {
                    trial.faults.crash_step(trial.seed, trial.buyers)
                },
                disk: Disk::synced(&self.dir.path)
                    .map_err(|e| HarnessError::Io("reading the store's files", e))?,
                cut: None,
            });
        }
        self.release_all(&mut round);
        for i in 0..round.state.len() {
            if let State::At(p) = round.state[i] {
                self.kill_if_planned(&mut round, i, p)?;
                self.freeze_if_planned(&mut round, i)?;
            }
        }
        let ended = steps::run(
            &mut Stepping {
                session: self,
                round: &mut round,
            },
            scheduler,
        );
        match ended {
            Ended::Over => {}
            Ended::Diverged => self.poisoned = true,
            // Oversell's buyer passes a few points per ticket: this many steps is a buyer
            // that never stops, a hang.
            Ended::TooLong => {
                round.timed_out = true;
                self.poisoned = true;
            }
            Ended::Stopped(e) => return Err(e),
        }
        self.record(round, started)
    }

    /// A fresh store and an empty ledger; a buyer process for every index.
    fn reset(&mut self, plan: &Plan) -> Result<(), HarnessError> {
        store::reset(&store::path(&self.dir.path), plan.tickets as i64)
            .map_err(|e| HarnessError::Io("writing the store", e))?;
        self.ledger
            .set_len(0)
            .map_err(|e| HarnessError::Io("resetting the ledger", e))?;
        for i in 0..plan.buyers.len() {
            self.ensure_buyer(i as u32)?;
        }
        Ok(())
    }

    /// Start barrier: every buyer idle, parked at `check`. Each round starts there, so
    /// the barrier's `go` is sent as the go of that first step (see the buyer's pacer).
    fn release_all(&mut self, round: &mut Round) {
        for i in 0..round.state.len() {
            if !self.make_idle(i) {
                self.poisoned = true;
                continue;
            }
            if let Some(slot) = self.slots[i].as_mut() {
                slot.idle = false;
                round.state[i] = State::At(Point::Check);
            }
        }
    }

    /// A kill fault is part of the schedule: the buyer dies the moment it parks at its
    /// planned point, so a token replays the same death.
    fn kill_if_planned(
        &mut self,
        round: &mut Round,
        i: usize,
        p: Point,
    ) -> Result<(), HarnessError> {
        if round.plan.buyers[i].kill_at != Some(p) {
            return Ok(());
        }
        self.kill(i);
        if holds_lock(p) {
            self.settle_release();
            round.holder = Some(i as u32);
            // A lease is taken over once it expires: wait that out (see `pause.rs`).
            round.holder_died = !self.outlive_lease()?;
        }
        round.killed[i] = true;
        round.state[i] = State::Dead;
        Ok(())
    }

    /// A stop fault is part of the trial: the buyer freezes the moment it parks at its
    /// planned point (see `pause.rs`).
    fn freeze_if_planned(&mut self, round: &mut Round, i: usize) -> Result<(), HarnessError> {
        let planned = round.plan.buyers[i].stop;
        if let (State::At(p), Some((at, ms))) = (round.state[i], planned) {
            if p == at {
                let lease = round.plan.lock.lease();
                round.frozen[i] = Some(self.freeze(i, ms, lease, holds_lock(p))?);
            }
        }
        Ok(())
    }

    /// Nobody else can run: every frozen buyer runs again once its pause is over, and
    /// blocked buyers may try the lock again (a lease may have expired meanwhile).
    fn thaw(&mut self, round: &mut Round) -> Result<bool, HarnessError> {
        let mut any = false;
        for i in 0..round.frozen.len() {
            if let Some(mut f) = round.frozen[i].take() {
                self.resume(i, &mut f)?;
                any = true;
            }
        }
        if any {
            for s in round.state.iter_mut().filter(|s| **s == State::Blocked) {
                *s = State::At(Point::Acquire);
            }
        }
        Ok(any)
    }

    /// Nobody can run, a holder died, and the lock is a lease: it expires at most one
    /// lease after the death, however fast the steps came. Waits that out once, then lets
    /// the blocked buyers try again; blocked again, they are deadlocked.
    fn outwait_lease(&mut self, round: &mut Round) -> Result<bool, HarnessError> {
        if round.lease_waited || !round.holder_died || !round.state.contains(&State::Blocked) {
            return Ok(false);
        }
        // The same wait as after a planned kill of a holder (see `pause.rs`).
        if !self.outlive_lease()? {
            return Ok(false);
        }
        round.lease_waited = true;
        for s in round.state.iter_mut().filter(|s| **s == State::Blocked) {
            *s = State::At(Point::Acquire);
        }
        Ok(true)
    }

    /// Sends buyer `b` on and notes where it parks.
    fn advance(&mut self, round: &mut Round, b: u32) -> Result<(), HarnessError> {
        let bi = b as usize;
        let before = round.state[bi];
        let go = if before == State::At(Point::Acquire) && round.lock_free() {
            msg::GO_LOCK
        } else {
            msg::GO
        };
        let Some(slot) = self.slots[bi].as_mut() else {
            round.state[bi] = State::Dead;
            return Ok(());
        };
        let reply = if slot.sock.write_all(&[go]).is_ok() {
            // On the one CPU the buyer just woken runs now, not after the harness has
            // gone round to wait for it: one switch there and one back per step.
            let _ = nix::sched::sched_yield();
            read_reply(&mut slot.sock)
        } else {
            Reply::Closed
        };
        round.state[bi] = match reply {
            Reply::Byte(msg::BLOCKED) => State::Blocked,
            Reply::Byte(msg::READY) => {
                slot.idle = true;
                State::Done
            }
            Reply::Byte(code) => Point::from_code(code).map_or(State::Dead, State::At),
            Reply::Closed => State::Dead,
            Reply::Interrupted(sig) => return Err(self.interrupted(sig)),
            Reply::TimedOut => {
                let after = match before {
                    _ if go == msg::GO_LOCK => STUCK_IN_LOCK.to_string(),
                    State::At(p) => p.name().to_string(),
                    _ => "acquire".to_string(),
                };
                round.stuck = Some(Stuck::Hang { buyer: b, after });
                round.timed_out = true;
                self.poisoned = true;
                return Ok(());
            }
        };
        let wrote = matches!(before, State::At(Point::Write | Point::Truncated));
        if let Some(c) = round.crash.as_mut().filter(|c| c.pending() && wrote) {
            c.disk
                .wrote(&self.dir.path, self.store.durability())
                .map_err(|e| HarnessError::Io("reading the store's files", e))?;
        }
        if let State::At(p) = round.state[bi] {
            self.kill_if_planned(round, bi, p)?;
            self.freeze_if_planned(round, bi)?;
        }
        if round.state[bi] != State::Blocked {
            round.lease_waited = false;
        }
        self.after_step(round, b, before);
        Ok(())
    }

    /// Bookkeeping after buyer `b` moved on from `before`: who holds the lock, and who
    /// may try for it again.
    fn after_step(&mut self, round: &mut Round, b: u32, before: State) {
        let bi = b as usize;
        match round.state[bi] {
            State::At(p) if holds_lock(p) => round.holder = Some(b),
            State::Dead => {
                self.poisoned = true;
                // A crash between `acquire` and `release` may leave the lock taken.
                let near = matches!(before, State::At(p) if p == Point::Acquire || holds_lock(p));
                if !round.killed[bi] && near {
                    round.holder_died = true;
                }
            }
            _ => {}
        }
        // A release (or a death) may free the lock: blocked buyers may try again.
        let released = before == State::At(Point::Release);
        if released || round.state[bi] == State::Dead {
            // It gave the lock back, unless it died still holding it.
            if round.holder == Some(b) && (released || !round.killed[bi]) {
                round.holder = None;
            }
            for s in round.state.iter_mut().filter(|s| **s == State::Blocked) {
                *s = State::At(Point::Acquire);
            }
        }
    }

    /// The power cut, as step `round.choices.len()`: every buyer of the trial dies at
    /// once (the kernel frees the locks they held), the store's files are left as the
    /// disk may have kept them, and a fresh buyer takes the place of each that was not
    /// done, numbered after the others and parked at `check`.
    fn power_cut(&mut self, round: &mut Round, choice: u32) -> Result<(), HarnessError> {
        let step = round.walk.choices.len();
        let started = crate::ledger::now_ns();
        round.walk.choices.push(choice);
        round.steps.push(Seen {
            ns: started,
            access: crate::schedule::Access::EVERYTHING,
            point: None,
            object: None,
            changes: true,
        });
        let n = round.state.len();
        let mut unfinished = Vec::new();
        for i in 0..n {
            round.frozen[i] = None;
            let alive = matches!(round.state[i], State::At(_) | State::Blocked);
            if self.slots[i].is_some() {
                self.kill(i);
            }
            if alive {
                round.killed[i] = true;
                round.state[i] = State::Dead;
                unfinished.push(i as u32);
            }
        }
        round.holder = None;
        round.holder_died = false;
        round.walk.current = None;
        let ns = crate::ledger::now_ns();
        let Some(crash) = round.crash.as_mut() else {
            return Ok(());
        };
        let io = |e| HarnessError::Io("cutting the power of the store's files", e);
        let mut rng =
            crate::rng::Rng::derive(crash.seed ^ crate::rng::salt::CRASH, step as u64 + 2);
        let state = crash_state(choice);
        let mut choose = match state {
            Some(k) => Choose::State(u64::from(k)),
            None => Choose::Seeded(&mut rng),
        };
        let cut = crash.disk.cut(&self.dir.path, &mut choose).map_err(io)?;
        let store_after = match store::read(&store::path(&self.dir.path)) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        crash.disk = Disk::synced(&self.dir.path).map_err(io)?;
        let fresh: Vec<(u32, u32)> = unfinished
            .iter()
            .enumerate()
            .map(|(k, &old)| (old, (n + k) as u32))
            .collect();
        crash.cut = Some(PowerCut {
            step: step + 1,
            ns,
            step_ns: Vec::new(),
            store_after,
            fresh: fresh.clone(),
            disk: cut.notes,
            outcomes: cut.outcomes,
            state,
        });
        for &(_, b) in &fresh {
            round.state.push(State::Dead);
            round.killed.push(false);
            round.frozen.push(None);
            round.plan.buyers.push(Default::default());
            self.ensure_buyer(b)?;
            let i = b as usize;
            if self.make_idle(i) {
                if let Some(slot) = self.slots[i].as_mut() {
                    slot.idle = false;
                    round.state[i] = State::At(Point::Check);
                }
            }
        }
        Ok(())
    }

    /// Each buyer's fate: finished buyers stay parked for the next round; the others are
    /// reaped.
    fn fates(&mut self, round: &Round) -> Vec<Fate> {
        let mut fates = Vec::with_capacity(round.state.len());
        for (i, st) in round.state.iter().enumerate() {
            let member = self.slots[i]
                .as_ref()
                .map(|s| s.member)
                .or_else(|| self.dead.iter().find(|(d, _)| *d == i).map(|(_, m)| *m));
            let pid = member.map_or(0, |m| self.group.pid(m));
            let exit = match (st, member) {
                (State::Done, _) => Exit::Code(0),
                (State::Dead, Some(m)) => {
                    self.group
                        .end_one(m, Ending::Exited(Duration::from_secs(2)));
                    self.group.exit(m)
                }
                _ => Exit::Unknown,
            };
            let killed = round.killed[i];
            fates.push(Fate {
                exit,
                pid,
                killed_by_fault: killed,
                killed_by_timeout: !killed
                    && (round.timed_out || (round.stuck.is_some() && *st != State::Done)),
                stderr_tail: stderr_tail(&self.dir.path, i as u32),
            });
        }
        fates
    }

    /// The round's result; a round whose every buyer failed before it started is a setup
    /// error.
    fn record(&mut self, round: Round, started: Instant) -> Result<TrialRun, HarnessError> {
        let fates = self.fates(&round);
        let mut leaked = false;
        if self.poisoned {
            // Tear everything down now so the history below is final.
            leaked = !self
                .group
                .end(Ending::Asked(self.cfg.grace), None, || {})
                .clean;
            for s in &mut self.slots {
                *s = None;
            }
        }
        let mut history = History::read_file(&self.ledger)
            .map_err(|e| HarnessError::Io("reading the ledger", e))?;
        history.fates = fates;
        history.timed_out = round.timed_out;
        history.stuck = round.stuck;
        history.power_cut = round.crash.and_then(|c| c.cut).map(|mut cut| {
            cut.step_ns = round.steps.iter().map(|s| s.ns).collect();
            cut
        });
        if let Some(line) = super::outcome::setup_failure(&history, false) {
            self.poisoned = true;
            return Err(HarnessError::Setup(line));
        }
        Ok(TrialRun {
            history,
            final_store: super::final_store(&self.dir.path)?,
            kept: self.dir.kept(),
            leaked,
            elapsed: started.elapsed(),
            schedule: Some(ScheduleRecord {
                choices: round.walk.choices,
                preemptions: round.walk.preemptions,
                diverged: round.walk.diverged,
                steps: round.steps,
            }),
        })
    }
}

/// A round as the one step loop sees it: oversell's buyers, each step a yield point.
struct Stepping<'a> {
    session: &'a mut Session,
    round: &'a mut Round,
}

impl Steps for Stepping<'_> {
    type Stop = HarnessError;

    fn walk(&mut self) -> &mut Walk {
        &mut self.round.walk
    }

    fn ready(
        &mut self,
        _done: &mut Option<(u32, Access)>,
    ) -> Result<Option<Vec<u32>>, HarnessError> {
        let (session, round) = (&mut *self.session, &mut *self.round);
        loop {
            // A buyer that hung in its step ended the round.
            if round.timed_out {
                return Ok(None);
            }
            let mut runnable = round.runnable();
            if runnable.is_empty() && (session.thaw(round)? || session.outwait_lease(round)?) {
                continue;
            }
            if runnable.is_empty() {
                let waiting: Vec<u32> = (0..round.state.len() as u32)
                    .filter(|&b| round.state[b as usize] == State::Blocked)
                    .collect();
                if !waiting.is_empty() {
                    round.stuck = Some(Stuck::Deadlock {
                        waiting,
                        holder: round.holder,
                    });
                    session.poisoned = true;
                }
                return Ok(None);
            }
            if let Some(c) = round.crash.as_ref().filter(|c| c.pending()) {
                if c.at == Some(round.walk.choices.len()) {
                    session.power_cut(round, CRASH_CHOICE)?;
                    continue;
                }
                if c.chosen {
                    let io = |e| HarnessError::Io("reading the store's files", e);
                    let states = c.disk.states(&session.dir.path).map_err(io)?;
                    let max = crate::limits::MAX_CRASH_OUTCOMES;
                    let listed = u32::try_from(states).unwrap_or(u32::MAX).min(max);
                    // A search runs each state (the seed's draw when there are too many); a
                    // replay follows whichever its token names.
                    let few = states <= u64::from(max);
                    if !c.states || !few {
                        runnable.push(CRASH_CHOICE);
                    }
                    if !c.states || few {
                        runnable.extend((0..listed).map(crash_in_state));
                    }
                }
            }
            return Ok(Some(runnable));
        }
    }

    fn pending(&mut self, _runnable: &[u32]) -> Vec<Option<Access>> {
        self.round.pending(self.session.lock)
    }

    fn is_virtual(&self, choice: u32) -> bool {
        is_crash(choice)
    }

    fn advance(&mut self, b: u32, _watched: bool) -> Result<Moved, HarnessError> {
        let (session, round) = (&mut *self.session, &mut *self.round);
        if is_crash(b) {
            session.power_cut(round, b)?;
            return Ok(Moved::Ran);
        }
        let point = match round.state[b as usize] {
            State::At(p) => Some(p),
            _ => None,
        };
        let ns = crate::ledger::now_ns();
        session.advance(round, b)?;
        let after = round.state[b as usize];
        let access = match (point, after) {
            (_, State::Dead) => Access::EVERYTHING,
            (Some(p), State::Blocked) => Access::at(p, session.lock).blocked(),
            (Some(p), _) => Access::at(p, session.lock),
            (None, _) => Access::EVERYTHING,
        };
        round.steps.push(Seen {
            ns,
            access,
            point,
            object: None,
            changes: false,
        });
        Ok(match after {
            State::Dead => Moved::Died,
            State::Blocked => Moved::Blocked,
            _ => Moved::Ran,
        })
    }
}
