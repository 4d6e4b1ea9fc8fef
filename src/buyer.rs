//! The buyer: the body of one buyer process (`oversell __buyer`, a hidden subcommand).
//!
//! It walks the lesson's protocol — check, acquire, read, hold, write, release, record —
//! writing one ledger line per step. Every step passes through a `Pacer`, which decides
//! how the buyer waits: free running (sleep the seeded jitter), a read barrier, or a
//! controlled schedule in which the harness says `go` before each step. The buyer itself
//! never changes between modes.
//!
//! The control channel is a Unix socket on the buyer's standard input: one byte per
//! message each way.

use crate::ledger::{EventKind, Ledger};
use crate::lock::{Lock, LockError};
use crate::scenario::StoreMode;
use crate::store::{self, Contents};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// A yield point: a place in the protocol where the schedule may switch buyers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Point {
    /// Before the unlocked look at the count.
    Check,
    /// Before taking the lock.
    Acquire,
    /// Before reading the count inside the critical section.
    Read,
    /// Before writing the new count.
    Write,
    /// Between truncating the store and writing it (in-place store only).
    Truncated,
    /// Before releasing the lock.
    Release,
    /// Before recording the outcome.
    Record,
}

impl Point {
    /// Every point, in protocol order.
    pub const ALL: &'static [Point] = &[
        Point::Check,
        Point::Acquire,
        Point::Read,
        Point::Write,
        Point::Truncated,
        Point::Release,
        Point::Record,
    ];

    /// The byte sent on the control channel.
    pub fn code(self) -> u8 {
        match self {
            Point::Check => b'c',
            Point::Acquire => b'a',
            Point::Read => b'r',
            Point::Write => b'w',
            Point::Truncated => b't',
            Point::Release => b'l',
            Point::Record => b'o',
        }
    }

    /// The point with this name.
    pub fn parse(name: &str) -> Option<Point> {
        Point::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// The point a control byte names.
    pub fn from_code(code: u8) -> Option<Point> {
        Point::ALL.iter().copied().find(|p| p.code() == code)
    }

    /// The name used in traces and findings.
    pub fn name(self) -> &'static str {
        match self {
            Point::Check => "check",
            Point::Acquire => "acquire",
            Point::Read => "read",
            Point::Write => "write",
            Point::Truncated => "truncated",
            Point::Release => "release",
            Point::Record => "record",
        }
    }
}

/// Control bytes other than points.
pub(crate) mod msg {
    /// Buyer → harness: set up and waiting at the start barrier.
    pub const READY: u8 = b's';
    /// Buyer → harness: the lock is busy; waiting for it.
    pub const BLOCKED: u8 = b'b';
    /// Buyer → harness: read inside the critical section (barrier mode).
    pub const HAVE_READ: u8 = b'h';
    /// Buyer → harness (free running): took the lock.
    pub const ACQUIRED: u8 = b'A';
    /// Buyer → harness (free running): gave the lock back.
    pub const RELEASED: u8 = b'R';
    /// Buyer → harness: stop me now (a stop fault); the harness sends `go` after SIGCONT.
    pub const STOP_ME: u8 = b'z';
    /// Harness → buyer: go on.
    pub const GO: u8 = b'g';
}

/// How the buyer waits between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Sleep the seeded jitter; the OS schedules the rest.
    Free,
    /// Free, plus: report after reading and wait until every buyer that can read has.
    Barrier,
    /// Report before every step and wait for `go`.
    Controlled,
}

impl Pace {
    /// The name used on the hidden command line.
    pub fn name(self) -> &'static str {
        match self {
            Pace::Free => "free",
            Pace::Barrier => "barrier",
            Pace::Controlled => "controlled",
        }
    }

    /// The pace with this name.
    pub fn parse(s: &str) -> Option<Pace> {
        [Pace::Free, Pace::Barrier, Pace::Controlled]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// What one buyer process needs to know.
#[derive(Debug, Clone)]
pub struct BuyerArgs {
    /// The trial's private directory (store, ledger, lock files).
    pub dir: PathBuf,
    /// This buyer's index in the trial.
    pub index: u32,
    /// Microseconds to wait after the start barrier.
    pub start_us: u64,
    /// Microseconds to hold between read and write.
    pub hold_us: u64,
    /// How the store is written.
    pub store: StoreMode,
    /// How the buyer waits between steps.
    pub pace: Pace,
    /// Run round after round (each after a `go` at the start barrier) until the harness
    /// closes the control channel: controlled schedules reuse buyer processes.
    pub reuse: bool,
    /// A kill fault: SIGKILL this buyer when it reaches this point.
    pub kill_at: Option<Point>,
    /// A stop fault: ask the harness to SIGSTOP this buyer at this point.
    pub stop_at: Option<Point>,
    /// Wait at the start barrier. A buyer run inside a user's lock command cannot: it
    /// starts only once the command holds the lock.
    pub start_barrier: bool,
    /// A kill fault kills this buyer's whole process group (a user's lock command and
    /// everything it started), as a crash of the whole subtree would.
    pub kill_group: bool,
}

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

/// The control channel to the harness.
struct Channel {
    sock: UnixStream,
}

impl Channel {
    fn from_stdin() -> Result<Channel, BuyerError> {
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| BuyerError::Io("duplicating the control channel", e))?;
        Ok(Channel {
            sock: UnixStream::from(fd),
        })
    }

    fn send(&mut self, byte: u8) -> Result<(), BuyerError> {
        self.sock
            .write_all(&[byte])
            .map_err(|e| BuyerError::Control(format!("send: {e}")))
    }

    fn wait_go(&mut self) -> Result<(), BuyerError> {
        let mut b = [0u8; 1];
        match self.sock.read(&mut b) {
            Ok(1) if b[0] == msg::GO => Ok(()),
            Ok(0) => Err(BuyerError::Control("the harness went away".into())),
            Ok(_) => Err(BuyerError::Control(format!(
                "unexpected byte {:?}",
                b[0] as char
            ))),
            Err(e) => Err(BuyerError::Control(format!("receive: {e}"))),
        }
    }

    fn ask(&mut self, byte: u8) -> Result<(), BuyerError> {
        self.send(byte)?;
        self.wait_go()
    }

    /// Like `ask`, but a closed channel is a clean `false`: the harness is done with us.
    fn ask_or_done(&mut self, byte: u8) -> Result<bool, BuyerError> {
        if self.sock.write_all(&[byte]).is_err() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        match self.sock.read(&mut b) {
            Ok(1) if b[0] == msg::GO => Ok(true),
            Ok(0) | Err(_) => Ok(false),
            Ok(_) => Err(BuyerError::Control(format!(
                "unexpected byte {:?}",
                b[0] as char
            ))),
        }
    }
}

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
        self.channel.ask(msg::STOP_ME)
    }
}

struct ControlledPacer<'c> {
    channel: &'c mut Channel,
}

impl Pacer for ControlledPacer<'_> {
    fn at(&mut self, point: Point) -> Result<(), BuyerError> {
        self.channel.ask(point.code())
    }
    fn acquire(&mut self, lock: &mut dyn Lock) -> Result<(), BuyerError> {
        // A busy lock is a scheduling decision: report it and let the harness say when
        // to try again, so exactly one buyer runs at a time.
        while !lock.try_lock()? {
            self.channel.ask(msg::BLOCKED)?;
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

/// Reaches a yield point: injected faults first, then the pace.
fn reach(args: &BuyerArgs, pacer: &mut dyn Pacer, point: Point) -> Result<(), BuyerError> {
    if args.kill_at == Some(point) {
        // An injected crash: nothing after this runs, exactly as if the OS killed us.
        if args.kill_group {
            let _ =
                nix::sys::signal::killpg(nix::unistd::getpgrp(), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    if args.stop_at == Some(point) {
        pacer.stop()?;
    }
    pacer.at(point)
}

/// Runs one buyer process with the given lock (already attached to the trial): one
/// round, or under `reuse` round after round until the harness closes the channel.
pub fn run(args: &BuyerArgs, lock: &mut dyn Lock) -> Result<(), BuyerError> {
    let mut channel = Channel::from_stdin()?;
    let mut ledger = Ledger::open(&crate::ledger::path(&args.dir), args.index)
        .map_err(|e| BuyerError::Io("opening the ledger", e))?;
    // Start barrier: every buyer is spawned and set up before any begins. Under reuse
    // the same message also tells the harness the previous round is over.
    if !args.start_barrier {
        return round(args, lock, &mut channel, &mut ledger);
    }
    while channel.ask_or_done(msg::READY)? {
        round(args, lock, &mut channel, &mut ledger)?;
        if !args.reuse {
            break;
        }
    }
    Ok(())
}

fn round(
    args: &BuyerArgs,
    lock: &mut dyn Lock,
    channel: &mut Channel,
    ledger: &mut Ledger,
) -> Result<(), BuyerError> {
    let mut pacer: Box<dyn Pacer + '_> = match args.pace {
        Pace::Free | Pace::Barrier => Box::new(FreePacer {
            channel,
            hold: Duration::from_micros(args.hold_us),
            barrier: args.pace == Pace::Barrier,
        }),
        Pace::Controlled => Box::new(ControlledPacer { channel }),
    };
    if args.pace != Pace::Controlled && args.start_us > 0 {
        std::thread::sleep(Duration::from_micros(args.start_us));
    }
    let rec = |ledger: &mut Ledger, kind: EventKind, value: Option<&str>| {
        ledger
            .record(kind, value)
            .map_err(|e| BuyerError::Io("writing the ledger", e))
    };
    // 1. check: the unlocked look; a torn read here is recorded, never trusted. Under a
    //    controlled schedule `start` is part of the first step, so traces replay exactly.
    reach(args, &mut *pacer, Point::Check)?;
    rec(ledger, EventKind::Start, None)?;
    let store_path = store::path(&args.dir);

    let seen = match store::read(&store_path) {
        Ok(Contents::Count(n)) => n.to_string(),
        Ok(Contents::Corrupt(_)) => "torn".to_string(),
        Err(e) => return Err(BuyerError::Io("reading the store", e)),
    };
    rec(ledger, EventKind::Check, Some(&seen))?;

    // 2. acquire.
    reach(args, &mut *pacer, Point::Acquire)?;
    pacer.acquire(lock)?;
    rec(ledger, EventKind::Acquired, None)?;

    // 3. read inside the critical section.
    reach(args, &mut *pacer, Point::Read)?;
    let count = match store::read(&store_path) {
        Ok(Contents::Count(n)) => Some(n),
        Ok(Contents::Corrupt(_)) => None,
        Err(e) => return Err(BuyerError::Io("reading the store", e)),
    };
    match count {
        Some(n) => rec(ledger, EventKind::Read, Some(&n.to_string()))?,
        None => rec(ledger, EventKind::Error, Some("corrupt_read"))?,
    }

    // 4. hold: the lesson's network delay between read and write.
    pacer.hold()?;

    // 5. write, if there was a ticket.
    let bought = match count {
        Some(n) if n > 0 => {
            reach(args, &mut *pacer, Point::Write)?;
            let left = n - 1;
            let left_s = left.to_string();
            match args.store {
                StoreMode::InPlace => {
                    let mut between_result = Ok(());
                    let mut between = || {
                        between_result = rec(ledger, EventKind::Truncated, Some(&left_s))
                            .and_then(|_| reach(args, &mut *pacer, Point::Truncated));
                    };
                    store::write_in_place(&store_path, left, &mut between)
                        .map_err(|e| BuyerError::Io("writing the store", e))?;
                    between_result?;
                }
                StoreMode::Atomic => store::write_atomic(&store_path, left)
                    .map_err(|e| BuyerError::Io("writing the store", e))?,
            }
            rec(ledger, EventKind::Wrote, Some(&left_s))?;
            Some(n)
        }
        _ => None,
    };

    // 6. release: recorded before the lock is given back, so a sound lock never shows
    //    two buyers' critical sections overlapping in the ledger.
    reach(args, &mut *pacer, Point::Release)?;
    rec(ledger, EventKind::Released, None)?;
    lock.unlock()?;
    pacer.released()?;

    // 7. record the outcome.
    reach(args, &mut *pacer, Point::Record)?;
    match (bought, count) {
        (Some(n), _) => rec(ledger, EventKind::Bought, Some(&n.to_string()))?,
        (None, Some(_)) => rec(ledger, EventKind::SoldOut, None)?,
        // A corrupt read: the buyer knows nothing and claims nothing.
        (None, None) => {}
    }
    Ok(())
}
