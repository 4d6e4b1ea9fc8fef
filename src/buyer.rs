//! The buyer: the body of one buyer process (`oversell __buyer`, a hidden subcommand).
//!
//! It walks the lesson's protocol — check, acquire, read, hold, write, release, record —
//! writing one ledger line per step. Every step passes through a `Pacer`, which decides
//! how the buyer waits: free running (sleep the seeded jitter), a read barrier, or a
//! controlled schedule in which the harness says `go` before each step. The buyer itself
//! never changes between modes.
//!
//! The control channel is a Unix socket on the buyer's standard input, or, for a buyer
//! of a controlled session, a pipe on standard input and another on descriptor 3 (half
//! the cost of a socket per step): one byte per message each way.

use crate::ledger::{EventKind, Ledger};
use crate::lock::{Lock, LockContext, LockError};
use crate::protocol::{BuyerSpec, FILTER_FD};
use crate::store::StoreMode;
use crate::store::{self, Contents, Fenced};
use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

mod channel;

pub(crate) use crate::protocol::msg;
pub use crate::protocol::{Pace, Point};
use channel::Channel;

/// Why a buyer could not finish.
#[derive(Debug)]
pub enum BuyerError {
    /// The ledger or store could not be used.
    Io(&'static str, io::Error),
    /// The lock failed.
    Lock(LockError),
    /// The harness went away or sent nonsense.
    Control(String),
}

impl fmt::Display for BuyerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuyerError::Io(what, e) => write!(f, "{what}: {e}"),
            BuyerError::Lock(e) => write!(f, "lock: {e}"),
            BuyerError::Control(m) => write!(f, "control channel: {m}"),
        }
    }
}

impl std::error::Error for BuyerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuyerError::Io(_, e) => Some(e),
            BuyerError::Lock(e) => Some(e),
            BuyerError::Control(_) => None,
        }
    }
}

impl From<LockError> for BuyerError {
    fn from(e: LockError) -> Self {
        BuyerError::Lock(e)
    }
}

/// The environment variable a user's lock command sets to hand its buyer a fencing token
/// (a number that grows with each acquisition): the store refuses an access with a
/// smaller token than one it has seen.
pub const FENCE_ENV: &str = "OVERSELL_FENCE";

/// Decides how the buyer waits at each step.
trait Pacer {
    /// Called before each step.
    fn at(&mut self, point: Point) -> Result<(), BuyerError>;
    /// Takes the lock, however this pace waits for a busy one.
    fn acquire(&mut self, lock: &mut dyn Lock) -> Result<(), BuyerError>;
    /// Called once the lock is given back.
    fn released(&mut self) -> Result<(), BuyerError>;
    /// Called between read and write: the lesson's network delay.
    fn hold(&mut self) -> Result<(), BuyerError>;
    /// A stop fault: have the harness stop this process for a while.
    fn stop(&mut self) -> Result<(), BuyerError>;
}

struct FreePacer<'c> {
    channel: &'c mut Channel,
    hold: Duration,
    barrier: bool,
}

impl Pacer for FreePacer<'_> {
    fn at(&mut self, _point: Point) -> Result<(), BuyerError> {
        Ok(())
    }
    fn acquire(&mut self, lock: &mut dyn Lock) -> Result<(), BuyerError> {
        if !lock.try_lock()? {
            // Tell the harness this buyer waits on the lock: the read barrier does not
            // wait for it, and a waiter whose holder died is a stale lock.
            self.channel.send(msg::BLOCKED)?;
            lock.lock()?;
        }
        self.channel.send(msg::ACQUIRED)
    }
    fn released(&mut self) -> Result<(), BuyerError> {
        self.channel.send(msg::RELEASED)
    }
    fn hold(&mut self) -> Result<(), BuyerError> {
        if self.barrier {
            self.channel.ask(msg::HAVE_READ)?;
        }
        if !self.hold.is_zero() {
            std::thread::sleep(self.hold);
        }
        Ok(())
    }
    fn stop(&mut self) -> Result<(), BuyerError> {
        self.channel.ask(msg::STOP_ME).map(drop)
    }
}

struct ControlledPacer<'c> {
    channel: &'c mut Channel,
    /// The harness's last word: `go-lock` at `acquire` says nobody holds the lock.
    last: u8,
    /// The `go` that ended the start barrier is also the go for the round's first point
    /// (`check`): the harness knows every round starts there, and saves a round trip.
    first_given: bool,
}

impl Pacer for ControlledPacer<'_> {
    fn at(&mut self, point: Point) -> Result<(), BuyerError> {
        if std::mem::take(&mut self.first_given) && point == Point::Check {
            return Ok(());
        }
        self.last = self.channel.ask(point.code())?;
        Ok(())
    }
    fn acquire(&mut self, lock: &mut dyn Lock) -> Result<(), BuyerError> {
        // The harness knows nobody holds the lock: the blocking `lock()` must return at
        // once (the harness calls a buyer stuck in it a finding).
        if self.last == msg::GO_LOCK {
            return Ok(lock.lock()?);
        }
        // A busy lock is a scheduling decision: report it and let the harness say when
        // to try again, so exactly one buyer runs at a time.
        while !lock.try_lock()? {
            self.last = self.channel.ask(msg::BLOCKED)?;
            if self.last == msg::GO_LOCK {
                return Ok(lock.lock()?);
            }
        }
        Ok(())
    }
    fn released(&mut self) -> Result<(), BuyerError> {
        Ok(())
    }
    fn hold(&mut self) -> Result<(), BuyerError> {
        Ok(())
    }
    fn stop(&mut self) -> Result<(), BuyerError> {
        // Under a controlled schedule time does not order anything: a stall is a no-op.
        Ok(())
    }
}

/// Reaches a yield point: injected faults first, then the pace. A stop is written to
/// the ledger around it (`stopped`, with the lock's lease, and `resumed`), so the checker
/// can tell how long a holder was frozen.
fn reach(
    spec: &BuyerSpec,
    pacer: &mut dyn Pacer,
    ledger: &mut Ledger,
    lease: Option<Duration>,
    point: Point,
) -> Result<(), BuyerError> {
    if spec.kill_at == Some(point) {
        // An injected crash: nothing after this runs, exactly as if the OS killed us.
        if spec.kill_group {
            let _ =
                nix::sys::signal::killpg(nix::unistd::getpgrp(), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    if spec.stop_at == Some(point) {
        let lease = lease.map(|l| format!("lease={}", l.as_millis()));
        rec(ledger, EventKind::Stopped, lease.as_deref())?;
        pacer.stop()?;
        rec(ledger, EventKind::Resumed, None)?;
    }
    pacer.at(point)
}

/// The body of a buyer process over a built-in backend, from the spec the harness passed
/// it (the `__buyer` argument). A user's lock in a test binary goes through `sound`,
/// which also names a panic in the lock. Returns the process's exit status: 0, or 2
/// after one line on stderr.
pub fn run_from_spec(spec: &str) -> i32 {
    let spec = match BuyerSpec::parse(spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let ctx = LockContext {
        dir: spec.dir.clone(),
        sem_id: spec.sem_id,
    };
    // The lock is opened (attached to the trial) before the filter goes in, as every
    // buyer attaches before the start barrier under oversell's own steps: a lock that
    // needs every buyer attached before the first acquire (`posix-sem` unlinks its name
    // then) holds under system-call steps too, since the harness takes every buyer's
    // listener before the first step.
    let mut lock = match spec.lock.open(&ctx) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: buyer {}: opening the lock: {e}", spec.index);
            return 2;
        }
    };
    if spec.self_filter {
        // Before the buyer's steps touch the trial: from here on every yield-point call
        // waits for the harness. Descriptor FILTER_FD stays open (closing it would be a
        // call to stop too); it goes with the process.
        let installed = crate::seccomp::program(false)
            .and_then(|mut prog| crate::seccomp::install(&mut prog, FILTER_FD));
        if let Err(e) = installed {
            eprintln!(
                "error: buyer {}: installing the system-call filter: {e}",
                spec.index
            );
            return 2;
        }
    }
    match run(&spec, &mut *lock) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: buyer {}: {e}", spec.index);
            2
        }
    }
}

/// Runs one buyer process with the given lock (already attached to the trial): one
/// round, or under `reuse` round after round until the harness closes the channel.
pub fn run(spec: &BuyerSpec, lock: &mut dyn Lock) -> Result<(), BuyerError> {
    let mut channel = Channel::from_stdin()?;
    let mut ledger = Ledger::open(&crate::ledger::path(&spec.dir), spec.index)
        .map_err(|e| BuyerError::Io("opening the ledger", e))?;
    // Start barrier: every buyer is spawned and set up before any begins. Under reuse
    // the same message also tells the harness the previous round is over.
    if !spec.start_barrier {
        return round(spec, lock, &mut channel, &mut ledger);
    }
    let pooled = spec.reuse && spec.pace != Pace::Controlled;
    while channel.ask_or_done(msg::READY)? {
        if pooled {
            // A free-running pool's buyer: this round's orders follow the `go`.
            let orders = channel.orders()?;
            round(&orders.apply(spec), lock, &mut channel, &mut ledger)?;
            continue;
        }
        round(spec, lock, &mut channel, &mut ledger)?;
        if !spec.reuse {
            break;
        }
    }
    Ok(())
}

fn rec(ledger: &mut Ledger, kind: EventKind, value: Option<&str>) -> Result<(), BuyerError> {
    ledger
        .record(kind, value)
        .map_err(|e| BuyerError::Io("writing the ledger", e))
}

/// One buyer's one round, step by step.
struct Round<'a> {
    spec: &'a BuyerSpec,
    ledger: &'a mut Ledger,
    pacer: Box<dyn Pacer + 'a>,
    /// The lock's lease, if it is one.
    lease: Option<Duration>,
    /// The fencing token of the current hold, if the lock hands them out.
    fence: Option<u64>,
}

fn round(
    spec: &BuyerSpec,
    lock: &mut dyn Lock,
    channel: &mut Channel,
    ledger: &mut Ledger,
) -> Result<(), BuyerError> {
    let pacer: Box<dyn Pacer + '_> = match spec.pace {
        Pace::Free | Pace::Barrier => Box::new(FreePacer {
            channel,
            hold: Duration::from_micros(spec.hold_us),
            barrier: spec.pace == Pace::Barrier,
        }),
        Pace::Controlled => Box::new(ControlledPacer {
            channel,
            last: msg::GO,
            first_given: spec.start_barrier,
        }),
    };
    if spec.pace != Pace::Controlled && spec.start_us > 0 {
        std::thread::sleep(Duration::from_micros(spec.start_us));
    }
    let mut r = Round {
        spec,
        ledger,
        pacer,
        lease: lock.lease(),
        fence: None,
    };
    let store_path = store::path(&spec.dir);
    r.check(&store_path)?;
    // 2. acquire.
    r.reach(Point::Acquire)?;
    r.pacer.acquire(lock)?;
    rec(r.ledger, EventKind::Acquired, None)?;
    // Inside a user's lock command, the command may hand its fencing token down
    // ([`FENCE_ENV`]), which the store then checks as it checks a built-in lease's.
    r.fence = lock.fence().or_else(|| {
        spec.kill_group
            .then(|| std::env::var(FENCE_ENV).ok()?.trim().parse::<u64>().ok())
            .flatten()
    });
    if let Some(token) = r.fence {
        rec(r.ledger, EventKind::Fence, Some(&token.to_string()))?;
    }
    let count = r.read(&store_path)?;
    // 4. hold: the lesson's network delay between read and write.
    r.pacer.hold()?;
    let bought = match count {
        Some(n) if n > 0 => r.write(&store_path, n)?,
        _ => None,
    };
    // 6. release: recorded before the lock is given back, so a sound lock never shows
    //    two buyers' critical sections overlapping in the ledger.
    r.reach(Point::Release)?;
    rec(r.ledger, EventKind::Released, None)?;
    lock.unlock()?;
    r.pacer.released()?;
    // 7. record the outcome.
    r.reach(Point::Record)?;
    match (bought, count) {
        (Some(n), _) => rec(r.ledger, EventKind::Bought, Some(&n.to_string())),
        // Refused by the store's fence: it wrote nothing and claims nothing.
        (None, Some(n)) if n > 0 => Ok(()),
        (None, Some(_)) => rec(r.ledger, EventKind::SoldOut, None),
        // A corrupt read: the buyer knows nothing and claims nothing.
        (None, None) => Ok(()),
    }
}

impl Round<'_> {
    fn reach(&mut self, point: Point) -> Result<(), BuyerError> {
        reach(self.spec, &mut *self.pacer, self.ledger, self.lease, point)
    }

    /// Notes that the store refused this hold's fencing token.
    fn refused(&mut self) -> Result<(), BuyerError> {
        rec(self.ledger, EventKind::Error, Some("fenced"))
    }

    /// 1. check: the unlocked look; a torn read here is recorded, never trusted. Under a
    ///    controlled schedule `start` is part of the first step, so traces replay exactly.
    fn check(&mut self, store_path: &Path) -> Result<(), BuyerError> {
        self.reach(Point::Check)?;
        rec(self.ledger, EventKind::Start, None)?;
        let seen = match store::read(store_path) {
            Ok(Contents::Count(n)) => n.to_string(),
            Ok(Contents::Corrupt(_)) => "torn".to_string(),
            Err(e) => return Err(BuyerError::Io("reading the store", e)),
        };
        rec(self.ledger, EventKind::Check, Some(&seen))
    }

    /// 3. read inside the critical section; `None` when the store is corrupt.
    fn read(&mut self, store_path: &Path) -> Result<Option<i64>, BuyerError> {
        self.reach(Point::Read)?;
        let note = |ledger: &mut Ledger, c: &Contents| match c {
            Contents::Count(n) => rec(ledger, EventKind::Read, Some(&n.to_string())),
            Contents::Corrupt(_) => rec(ledger, EventKind::Error, Some("corrupt_read")),
        };
        let read = match self.fence {
            None => store::read(store_path).map(|c| (note(self.ledger, &c), c)),
            // Noted while the store holds its fence, so the ledger has the accesses in
            // the order the store took them (see `check::pause::effective`).
            Some(token) => {
                let mut noted = Ok(());
                let ledger = &mut *self.ledger;
                match store::read_fenced(store_path, token, |c| noted = note(ledger, c)) {
                    Ok(Fenced::Accepted(c)) => Ok((noted, c)),
                    Ok(Fenced::Refused { .. }) => return self.refused().map(|()| None),
                    Err(e) => Err(e),
                }
            }
        };
        let (noted, contents) = read.map_err(|e| BuyerError::Io("reading the store", e))?;
        noted?;
        Ok(match contents {
            Contents::Count(n) => Some(n),
            Contents::Corrupt(_) => None,
        })
    }

    /// 5. write `n - 1`, the ticket bought being `n`; returns `n`, or `None` when the
    ///    store refused the hold's fencing token.
    fn write(&mut self, store_path: &Path, n: i64) -> Result<Option<i64>, BuyerError> {
        self.reach(Point::Write)?;
        let left = n - 1;
        let left_s = left.to_string();
        let mut between_result = Ok(());
        let (spec, lease, mode) = (self.spec, self.lease, self.spec.store);
        let ledger = &mut *self.ledger;
        let pacer = &mut *self.pacer;
        let mut between = || {
            between_result = rec(ledger, EventKind::Truncated, Some(&left_s))
                .and_then(|_| reach(spec, pacer, ledger, lease, Point::Truncated));
        };
        // A fenced write is noted while the store holds its fence (as a fenced read).
        let mut wrote = None;
        let done = match (self.fence, mode) {
            (Some(token), _) => store::write_fenced(store_path, left, token, mode, |()| {
                wrote = Some(rec(ledger, EventKind::Wrote, Some(&left_s)));
            }),
            (None, StoreMode::InPlace) => {
                store::write_in_place(store_path, left, &mut between).map(Fenced::Accepted)
            }
            (None, StoreMode::Atomic) => {
                store::write_atomic(store_path, left).map(Fenced::Accepted)
            }
            (None, StoreMode::Durable) => {
                store::write_durable(store_path, left).map(Fenced::Accepted)
            }
        }
        .map_err(|e| BuyerError::Io("writing the store", e))?;
        between_result?;
        if let Fenced::Refused { .. } = done {
            self.refused()?;
            return Ok(None);
        }
        match wrote {
            Some(noted) => noted?,
            None => rec(self.ledger, EventKind::Wrote, Some(&left_s))?,
        }
        Ok(Some(n))
    }
}
