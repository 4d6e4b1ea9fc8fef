//! Stop faults under a controlled schedule: a frozen buyer, and when it may run again.
//!
//! A buyer with a stop planned at point `p` is frozen the moment it parks there: the
//! harness writes `stopped` in the ledger for it (with its lock's lease), SIGSTOPs it
//! (and its process group, when it leads one) and takes it out of the runnable set.
//!
//! Determinism. A lease lock reads the real `CLOCK_MONOTONIC`, so what the others see
//! must not depend on how fast the schedule runs. The harness therefore lets the pause's
//! time pass at once, before any other buyer takes a step: `min(pause, lease + SETTLE)`
//! (on the virtual clock where there is one, below). After that a pause longer than the lease has let the
//! lease expire (a lease renewed at most one renewal interval before the stop expires
//! at most `lease` after it), and the frozen heartbeat cannot renew an expired lease;
//! a pause shorter than the lease is over, so the buyer is continued (SIGCONT, `resumed`)
//! and its heartbeat keeps the lease. Either way every later `try_lock` of a peer gets
//! the same answer in a replay. (A pause within one renewal interval below the lease,
//! e.g. 400–500 ms for the 500 ms lease, may go either way: that is the lease's own
//! margin.) The frozen buyer then stays out of the schedule, SIGSTOPped if its pause
//! is not over, until no other buyer can run; then every frozen buyer is continued,
//! blocked buyers may try the lock again, and the scheduler picks among all of them.
//! None of this is a scheduling choice, so tokens need no new field: the stop is in the
//! trial's fault plan.
//!
//! Virtual time. A `lease` or `lease-fenced` lock reads its time as `CLOCK_MONOTONIC`
//! plus the trial's virtual clock (`lease.clock` in the session's directory, which the
//! session creates before any buyer attaches): the harness moves that clock forward by
//! the span instead of sleeping, so a frozen holder's lease runs out at once and costs no
//! wall time. A Redis lease expires on `redis-server`'s own clock: the trial's own server
//! carries the clock shim on real time, which the harness moves forward the same way
//! (`clock::advance_server_clock`); only a server named with `--redis URL` makes the
//! span be slept.
//!
//! Real time past that is never spent: once a lease has surely expired (or at once, for
//! a buyer that holds no lease: outside its critical section, or under a lock without a
//! lease) nothing a buyer sees depends on the clock, and the frozen buyer runs again
//! only when nobody else can, however long its pause. So a 3 s stop
//! costs the lease and a little, not 3 s. The `stopped` event names the planned pause
//! (`lease=500,pause=3000`), which is what the report says the buyer was frozen for.

use super::controlled::Session;
use super::HarnessError;
use crate::ledger::{EventKind, Ledger};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Beyond the lease, how long the harness waits so the lease has surely expired.
const SETTLE: Duration = Duration::from_millis(50);

/// A buyer frozen by a stop fault under a controlled schedule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frozen {
    /// Still SIGSTOPped (its pause outlived the first wait).
    pub(super) stopped: bool,
}

/// The `stopped` event's value: the lock's lease and the planned pause, in ms
/// (`lease=500,pause=3000`); either may be absent.
pub(crate) fn stop_note(lease: Option<Duration>, pause_ms: Option<u32>) -> String {
    let lease = lease.map(|l| format!("lease={}", l.as_millis()));
    let pause = pause_ms.map(|ms| format!("pause={ms}"));
    lease.into_iter().chain(pause).collect::<Vec<_>>().join(",")
}

/// Moves the lease's virtual clock in `dir` ([`crate::lock::CLOCK_FILE`]) forward by
/// `span`: whole or not at all, so a lease reading it meanwhile sees one value or the
/// other.
pub(super) fn advance_lease_clock(
    dir: &std::path::Path,
    span: Duration,
) -> Result<(), HarnessError> {
    let clock = dir.join(crate::lock::CLOCK_FILE);
    let ahead = std::fs::read_to_string(&clock)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let moved = ahead.saturating_add(u64::try_from(span.as_nanos()).unwrap_or(u64::MAX));
    let next = clock.with_extension("clock.next");
    std::fs::write(&next, format!("{moved}\n"))
        .and_then(|()| std::fs::rename(&next, &clock))
        .map_err(|e| HarnessError::Io("moving the lease clock", e))
}

impl Session {
    fn note(&self, i: usize, kind: EventKind, value: Option<&str>) -> Result<(), HarnessError> {
        Ledger::open(&crate::ledger::path(&self.dir.path), i as u32)
            .and_then(|mut l| l.record(kind, value))
            .map_err(|e| HarnessError::Io("writing the ledger", e))
    }

    fn signal_buyer(&self, i: usize, sig: Signal) {
        if let Some(slot) = self.slots[i].as_ref() {
            self.group.signal_whole(slot.member, sig);
        }
    }

    /// Lets `span` pass for the lease: on its virtual clock when it has one (at once,
    /// no wall time spent), else in real time.
    fn let_pass(&mut self, span: Duration) -> Result<(), HarnessError> {
        if self.lock.virtual_clock() {
            return advance_lease_clock(&self.dir.path, span);
        }
        // A Redis lease expires on its server's clock, which the harness moves when the
        // server is its own and carries the clock shim.
        if self.lock.needs_redis()
            && super::clock::advance_server_clock(&self.dir.path, span).is_ok()
        {
            return Ok(());
        }
        self.sleep_until(Instant::now() + span)
    }

    /// Sleeps until `until`, in slices, giving up early on SIGINT or SIGTERM.
    fn sleep_until(&mut self, until: Instant) -> Result<(), HarnessError> {
        loop {
            if let Some(sig) = super::interrupt::pending() {
                return Err(self.interrupted(sig));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep((until - now).min(Duration::from_millis(20)));
        }
    }

    /// Freezes buyer `i` for a pause of `ms` milliseconds (see the module's notes);
    /// `lease` is its lock's lease, if it is one, and `holding` says whether the buyer
    /// is inside its critical section: only a held lease makes real time count.
    pub(super) fn freeze(
        &mut self,
        i: usize,
        ms: u32,
        lease: Option<Duration>,
        holding: bool,
    ) -> Result<Frozen, HarnessError> {
        let note = stop_note(lease, Some(ms));
        self.note(i, EventKind::Stopped, Some(&note))?;
        self.signal_buyer(i, Signal::SIGSTOP);
        let pause = Duration::from_millis(u64::from(ms));
        let held = lease.filter(|_| holding);
        let first = held.map_or(Duration::ZERO, |l| pause.min(l + SETTLE));
        self.let_pass(first)?;
        let mut frozen = Frozen { stopped: true };
        if held.is_some_and(|l| pause <= l) {
            // Over within the lease: it keeps it, and runs on when it is picked again.
            self.resume(i, &mut frozen)?;
        }
        Ok(frozen)
    }

    /// After a lease holder was killed: waits until its lease has surely expired (it was
    /// renewed at most at the kill), so every later `try_lock` of a peer takes it over,
    /// however fast the schedule runs. True for a lease lock; false (no wait) otherwise.
    pub(super) fn outlive_lease(&mut self) -> Result<bool, HarnessError> {
        let Some(lease) = self.lock.lease() else {
            return Ok(false);
        };
        self.let_pass(lease + SETTLE)?;
        Ok(true)
    }

    /// Continues buyer `i`.
    pub(super) fn resume(&mut self, i: usize, frozen: &mut Frozen) -> Result<(), HarnessError> {
        if frozen.stopped {
            self.signal_buyer(i, Signal::SIGCONT);
            self.note(i, EventKind::Resumed, None)?;
            frozen.stopped = false;
        }
        Ok(())
    }
}
