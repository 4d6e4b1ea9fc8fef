//! The ledger: an append-only event log every buyer writes, merged into a [`History`].
//!
//! One line per event, `<ns> <buyer> <event> [value]`, written with a single `write(2)`
//! on a file opened `O_APPEND`, so lines from different processes never interleave.
//! Timestamps are `CLOCK_MONOTONIC` nanoseconds, comparable across processes.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The ledger's file name inside a trial directory.
pub const FILE_NAME: &str = "ledger";

/// The ledger's path inside `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The kinds of event a buyer records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The buyer passed the start barrier.
    Start,
    /// The unlocked look at the count (value: the count, or `torn`).
    Check,
    /// The buyer holds the lock.
    Acquired,
    /// The count read inside the critical section (value: the count). A read that does
    /// not parse is recorded as an `error corrupt_read` instead.
    Read,
    /// The store was truncated for an in-place write (value: the count about to be written).
    Truncated,
    /// The count written (value).
    Wrote,
    /// The buyer is about to release the lock.
    Released,
    /// The buyer claims it bought ticket number `value`.
    Bought,
    /// The buyer found no ticket left.
    SoldOut,
    /// Something failed (value: a word naming what; `fenced`: the store refused the
    /// buyer's fencing token, so it read or wrote nothing).
    Error,
    /// A stop fault froze the buyer (value: `lease=MS` when its lock is a lease).
    Stopped,
    /// The stopped buyer runs again.
    Resumed,
    /// The fencing token of the hold just taken (value), which the buyer hands the store.
    Fence,
}

impl EventKind {
    /// Every kind, for parsing.
    pub const ALL: &'static [EventKind] = &[
        EventKind::Start,
        EventKind::Check,
        EventKind::Acquired,
        EventKind::Read,
        EventKind::Truncated,
        EventKind::Wrote,
        EventKind::Released,
        EventKind::Bought,
        EventKind::SoldOut,
        EventKind::Error,
        EventKind::Stopped,
        EventKind::Resumed,
        EventKind::Fence,
    ];

    /// The word written in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Check => "check",
            EventKind::Acquired => "acquired",
            EventKind::Read => "read",
            EventKind::Truncated => "truncated",
            EventKind::Wrote => "wrote",
            EventKind::Released => "released",
            EventKind::Bought => "bought",
            EventKind::SoldOut => "sold_out",
            EventKind::Error => "error",
            EventKind::Stopped => "stopped",
            EventKind::Resumed => "resumed",
            EventKind::Fence => "fence",
        }
    }

    fn parse(word: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.name() == word)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub ns: u64,
    /// The buyer's index in the trial.
    pub buyer: u32,
    /// What happened.
    pub kind: EventKind,
    /// The value, if the event carries one.
    pub value: Option<String>,
}

impl Event {
    /// The value as a number, when it is one.
    pub fn num(&self) -> Option<i64> {
        self.value.as_deref().and_then(|v| v.parse().ok())
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buyer {} {}", self.buyer, self.kind)?;
        if let Some(v) = &self.value {
            write!(f, " {v}")?;
        }
        Ok(())
    }
}

/// Monotonic nanoseconds, comparable across processes on this machine: the machine's
/// clock, asked of the kernel itself, so a buyer inside a user's command (which reads
/// oversell's virtual clock through the clock shim) still stamps its lines in one order.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this frame.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clock_gettime,
            libc::CLOCK_MONOTONIC,
            &mut ts as *mut libc::timespec,
        )
    };
    if r != 0 {
        // CLOCK_MONOTONIC cannot fail on Linux; 0 keeps the ledger line rather than losing it.
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A buyer's handle on the ledger.
#[derive(Debug)]
pub struct Ledger {
    file: File,
    buyer: u32,
}

impl Ledger {
    /// Opens the ledger at `path` for appending as buyer `buyer`.
    pub fn open(path: &Path, buyer: u32) -> io::Result<Ledger> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Ledger { file, buyer })
    }

    /// Appends one event, with one `write(2)`.
    pub fn record(&mut self, kind: EventKind, value: Option<&str>) -> io::Result<()> {
        let line = match value {
            Some(v) => format!("{} {} {} {}\n", now_ns(), self.buyer, kind.name(), v),
            None => format!("{} {} {}\n", now_ns(), self.buyer, kind.name()),
        };
        let n = self.file.write(line.as_bytes())?;
        if n != line.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "a ledger line was written in part",
            ));
        }
        Ok(())
    }
}

/// How a buyer process ended, as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was ended by this signal.
    Signal(i32),
    /// The harness could not learn how it ended.
    Unknown,
}

/// What the harness knows about one buyer process beyond its ledger lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fate {
    /// How it ended.
    pub exit: Exit,
    /// The operating system's process id (never part of a snapshot).
    pub pid: u32,
    /// True when an injected fault killed it: its outcome is unknown, never a finding.
    pub killed_by_fault: bool,
    /// True when the harness killed it because the trial ran out of time.
    pub killed_by_timeout: bool,
    /// The last lines it wrote to stderr.
    pub stderr_tail: String,
}

impl Fate {
    /// A buyer that exited 0 normally.
    pub fn ok(pid: u32) -> Fate {
        Fate {
            exit: Exit::Code(0),
            pid,
            killed_by_fault: false,
            killed_by_timeout: false,
            stderr_tail: String::new(),
        }
    }
}

/// How a trial got stuck, as the harness saw it: under a controlled schedule, or a
/// free-running one whose live buyers all wait on a lock nobody alive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stuck {
    /// Every live buyer was blocked on the lock.
    Deadlock {
        /// The blocked buyers.
        waiting: Vec<u32>,
        /// The buyer last inside the critical section, if any.
        holder: Option<u32>,
    },
    /// A buyer did not reach its next yield point in time.
    Hang {
        /// The buyer.
        buyer: u32,
        /// The step it was released from.
        after: String,
    },
}

/// A span in which one buyer held the lock, as indices into [`History::events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The `acquired` event.
    pub from: usize,
    /// The `released` event, or the buyer's last event when it never released.
    pub to: usize,
    /// True when the span ends in `released`.
    pub released: bool,
}

/// Everything a trial left: the merged ledger and each buyer's fate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Events in time order (ties keep ledger order).
    pub events: Vec<Event>,
    /// One fate per buyer, by index (empty when the harness did not report any).
    pub fates: Vec<Fate>,
    /// True when the trial passed its timeout and was killed.
    pub timed_out: bool,
    /// How the trial got stuck, if the harness saw it (controlled and free-running
    /// schedules alike).
    pub stuck: Option<Stuck>,
    /// Ledger lines that did not parse.
    pub unparsed: Vec<String>,
    /// Under a syscall-level schedule: each step taken, as `buyer N CALL PATH → RESULT`.
    pub syscalls: Vec<String>,
    /// Under a syscall-level schedule: effects on shared state no step ordered
    /// (`buyer 0 maps /dev/shm/x shared`).
    pub unordered: Vec<String>,
    /// Calls the harness made fail on purpose (an errno fault).
    pub injected: Vec<Injected>,
    /// The power cut of the trial, when it had one (a crash fault).
    pub power_cut: Option<PowerCut>,
    /// What the harness did to buyers' clocks (`buyer 1's clock ran at 0.25×`), and the
    /// programs its clock could not reach (`buyer 0 ran /sbin/ldconfig on real time:
    /// statically linked`).
    pub clocks: Vec<String>,
    /// A free-running trial killed at its timeout: where the processes of each buyer
    /// not done were then (asleep in `flock`, stopped, running), by buyer.
    pub whereabouts: Vec<(u32, String)>,
}

/// A power cut: every buyer of the trial died at once, the store's files were left as a
/// crash may leave them, and fresh buyers went on from what the disk kept. The ledger
/// lives outside the crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerCut {
    /// The step the power was cut at, counted from 1.
    pub step: usize,
    /// `CLOCK_MONOTONIC` ns of the cut: every event before it was written before it.
    pub ns: u64,
    /// `CLOCK_MONOTONIC` ns at which each step of the run began, in order (the step of
    /// an event is the last one begun before it).
    pub step_ns: Vec<u64>,
    /// The store as the disk kept it (`None`: no store file was left).
    pub store_after: Option<crate::store::Contents>,
    /// Each buyer that was not done, and the fresh buyer that took its place.
    pub fresh: Vec<(u32, u32)>,
    /// What the cut did to each file it changed (`store.json: the rename undone`).
    pub disk: Vec<String>,
    /// How many disk states the cut could have left.
    pub outcomes: u64,
    /// The state it left, when a search chose it (`cK` in a token); `None` when the
    /// trial's seed drew it.
    pub state: Option<u32>,
}

impl std::fmt::Display for PowerCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::store::Contents;
        let store = match &self.store_after {
            Some(Contents::Count(n)) => format!("the store shows {n}"),
            Some(Contents::Corrupt(what)) => format!("the store is torn: {what}"),
            None => "the store is gone".to_string(),
        };
        write!(f, "power cut at step {}: {store}", self.step)?;
        if let Some(k) = self.state {
            write!(f, " (disk state {} of {})", k + 1, self.outcomes)?;
        }
        if !self.disk.is_empty() {
            write!(f, " ({})", self.disk.join("; "))?;
        }
        let fresh: Vec<String> = self
            .fresh
            .iter()
            .map(|(old, new)| format!("{new} for {old}"))
            .collect();
        if !fresh.is_empty() {
            write!(f, "; fresh buyers {}", fresh.join(", "))?;
        }
        Ok(())
    }
}

impl PowerCut {
    /// The step (from 1) during which an event written at `ns` was written.
    pub fn step_of(&self, ns: u64) -> usize {
        self.step_ns.iter().take_while(|&&s| s <= ns).count()
    }
}

/// A buyer's call the harness answered with an error instead of running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The buyer.
    pub buyer: u32,
    /// Its step number in the run, counted from 1.
    pub step: usize,
    /// `CLOCK_MONOTONIC` ns when it was answered: where it sits among the events.
    pub ns: u64,
    /// The call and what it touched (`write store.json`).
    pub call: String,
    /// The error it returned (`ENOSPC`).
    pub errno: String,
}

impl History {
    /// Parses ledger text into events, sorted by time.
    pub fn parse(text: &str) -> History {
        let mut h = History::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_line(line) {
                Some(e) => h.events.push(e),
                None => h.unparsed.push(line.to_string()),
            }
        }
        h.events.sort_by_key(|e| e.ns);
        h
    }

    /// Reads and parses the ledger file; a missing ledger is an empty history.
    pub fn read(path: &Path) -> io::Result<History> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(History::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(e),
        }
    }

    /// Reads and parses the ledger through an open handle, from its start (a session
    /// keeps its ledger open across rounds).
    pub fn read_file(file: &std::fs::File) -> io::Result<History> {
        use std::os::unix::fs::FileExt;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match file.read_at(&mut chunk, bytes.len() as u64) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(History::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Under a syscall-level schedule: the system call event `i`'s buyer made last
    /// before it (`read store.json → 11 bytes`), the ledger's own calls, closes and reads
    /// at the end of a file left out. The
    /// buyer writes its `k`-th event with its `k`-th write to the ledger; a buyer program,
    /// which writes none, gets its last call.
    pub fn step_before(&self, i: usize) -> Option<&str> {
        let e = self.events.get(i)?;
        let prefix = format!("buyer {} ", e.buyer);
        let k = self.events[..i]
            .iter()
            .filter(|x| x.buyer == e.buyer)
            .count();
        let (mut writes, mut last) = (0, None);
        for step in self.syscalls.iter().filter_map(|l| l.strip_prefix(&prefix)) {
            let ledger = step.split_whitespace().nth(1) == Some(FILE_NAME);
            if ledger && step.starts_with("write ") {
                if writes == k {
                    return last;
                }
                writes += 1;
            } else if !ledger && !step.starts_with("close ") && !step.ends_with("→ 0 bytes") {
                last = Some(step);
            }
        }
        last
    }

    /// The trace: every event as `buyer N kind [value]`, in order, without timestamps.
    /// Under a controlled schedule two runs of one token give the same trace.
    /// A power cut is a line of its own where it fell, with what the disk kept.
    pub fn trace(&self) -> Vec<String> {
        let mut out: Vec<String> = self.events.iter().map(|e| e.to_string()).collect();
        if let Some(cut) = &self.power_cut {
            let at = self.events.iter().take_while(|e| e.ns < cut.ns).count();
            out.insert(at, cut.to_string());
        }
        out
    }

    /// The spans in which `buyer` held the lock, in order: from each `acquired` to its
    /// `released`, or, for the last one never released, to the buyer's last event.
    pub fn held_spans(&self, buyer: u32) -> Vec<Held> {
        let mut spans = Vec::new();
        let mut from = None;
        let mut last = None;
        for (i, e) in self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.buyer == buyer)
        {
            last = Some(i);
            match e.kind {
                EventKind::Acquired => from = Some(i),
                EventKind::Released => {
                    if let Some(from) = from.take() {
                        spans.push(Held {
                            from,
                            to: i,
                            released: true,
                        });
                    }
                }
                _ => {}
            }
        }
        if let (Some(from), Some(to)) = (from, last) {
            spans.push(Held {
                from,
                to,
                released: false,
            });
        }
        spans
    }

    /// True when `buyer` took the lock and never gave it back.
    pub fn holds_at_end(&self, buyer: u32) -> bool {
        self.held_spans(buyer).last().is_some_and(|s| !s.released)
    }

    /// The events of one buyer, in order.
    pub fn of(&self, buyer: u32) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.buyer == buyer)
    }
}

fn parse_line(line: &str) -> Option<Event> {
    let mut parts = line.split_whitespace();
    let ns = parts.next()?.parse().ok()?;
    let buyer = parts.next()?.parse().ok()?;
    let kind = EventKind::parse(parts.next()?)?;
    let value = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some(Event {
        ns,
        buyer,
        kind,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_in_time_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        let mut a = Ledger::open(&p, 0).expect("open");
        let mut b = Ledger::open(&p, 1).expect("open");
        a.record(EventKind::Start, None).expect("write");
        b.record(EventKind::Read, Some("3")).expect("write");
        a.record(EventKind::Bought, Some("3")).expect("write");
        let mut text = std::fs::read_to_string(&p).expect("read");
        text.push_str("garbage line\n");
        let h = History::parse(&text);
        assert_eq!(h.events.len(), 3);
        assert_eq!(h.unparsed, vec!["garbage line".to_string()]);
        assert!(h.events.windows(2).all(|w| w[0].ns <= w[1].ns));
        assert_eq!(h.of(1).next().and_then(Event::num), Some(3));
    }

    #[test]
    fn held_spans_end_at_release_or_last_event() {
        let h = History::parse(
            "1 0 acquired\n2 1 start\n3 0 released\n4 0 acquired\n5 0 read 2\n6 1 check 2\n",
        );
        let spans = h.held_spans(0);
        assert_eq!(
            spans,
            vec![
                Held {
                    from: 0,
                    to: 2,
                    released: true
                },
                Held {
                    from: 3,
                    to: 4,
                    released: false
                },
            ]
        );
        assert!(h.holds_at_end(0));
        assert!(h.held_spans(1).is_empty() && !h.holds_at_end(1));
    }
}
