//! `lease`: a lock file holding an owner, a fencing token and an expiry, renewed by a
//! heartbeat thread in the holder, taken over by anyone once it has expired.
//!
//! The lease file `<dir>/lease` holds one line, `OWNER TOKEN EXPIRY_NS` (owner 0: free;
//! the expiry on `CLOCK_MONOTONIC`, which every process of the machine shares). Every
//! change to it is a read-compare-write under `flock` on `<dir>/lease.latch`, held only
//! for that instant: the latch plays the part of a lease server's own atomicity, never
//! the lock itself. Each acquisition takes the next token.
//!
//! Sound while no holder pauses longer than the lease: a holder frozen past it (a
//! SIGSTOP, a GC pause) loses the lease to a peer, wakes up and writes anyway. With
//! fencing (`lease-fenced`, see `lease_fenced.rs`) the holder hands its token to the
//! store, which refuses anything older than what it has seen.

use super::{flock_exclusive, Flocked, Lock, LockError};
use crate::ledger::now_ns;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// The lease's file name inside a trial directory.
pub(crate) const FILE_NAME: &str = "lease";
/// How long a lease lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_millis(500);
/// How often the heartbeat renews it.
const RENEW_EVERY: Duration = Duration::from_millis(100);

/// A holder's heartbeat thread: calls `renew` every [`RENEW_EVERY`] until it returns
/// false (the lease is lost) or the heartbeat is dropped, which wakes and joins it at
/// once, not a renewal later. Shared by the lease backends.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Heartbeat {
    pub(crate) fn start(mut renew: impl FnMut() -> bool + Send + 'static) -> Heartbeat {
        let (stop, wake) = channel::<()>();
        let handle = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = wake.recv_timeout(RENEW_EVERY) {
                if !renew() {
                    break;
                }
            }
        });
        Heartbeat {
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Takes a lease backend's lock: `try_lock` again every 2 ms until it takes it (a lease
/// has no acquire that waits). Shared by the lease backends.
pub(crate) fn poll_lock(lock: &mut impl Lock) -> Result<(), LockError> {
    while !lock.try_lock()? {
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// What the lease file says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Record {
    owner: u32,
    token: u64,
    expiry_ns: u64,
}

impl Record {
    fn parse(text: &str) -> Record {
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
        match (it.next(), it.next(), it.next()) {
            (Some(Some(o)), Some(Some(t)), Some(Some(e))) => Record {
                owner: u32::try_from(o).unwrap_or(0),
                token: t,
                expiry_ns: e,
            },
            _ => Record::default(),
        }
    }
}

/// The file of the trial's virtual clock: nanoseconds (decimal) to add to
/// `CLOCK_MONOTONIC`. The harness creates it under a controlled schedule and moves it
/// forward where real time would pass (a frozen holder's pause); a lease reads its time
/// as real time plus it. Without the file, a lease runs on real time.
pub(crate) const CLOCK_FILE: &str = "lease.clock";

/// The lease file and its latch in one trial directory, and its clock.
#[derive(Debug, Clone)]
struct LeaseFile {
    path: PathBuf,
    latch: PathBuf,
    /// The virtual clock's file, when the harness keeps one (seen once, at attach).
    clock: Option<PathBuf>,
}

impl LeaseFile {
    fn new(dir: &Path) -> LeaseFile {
        let clock = dir.join(CLOCK_FILE);
        LeaseFile {
            path: dir.join(FILE_NAME),
            latch: dir.join("lease.latch"),
            clock: clock.exists().then_some(clock),
        }
    }

    /// The lease's time: `CLOCK_MONOTONIC`, plus the virtual clock's advance if any.
    fn now(&self) -> u64 {
        let ahead = self.clock.as_ref().map_or(0, |c| {
            std::fs::read_to_string(c)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        });
        now_ns().saturating_add(ahead)
    }

    /// When a lease taken or renewed now runs out.
    fn expiry(&self) -> u64 {
        self.now().saturating_add(LEASE.as_nanos() as u64)
    }

    /// Runs `change` on the record under the latch; writes back what it returns.
    fn update<T>(
        &self,
        change: impl FnOnce(Record) -> (Option<Record>, T),
    ) -> Result<T, LockError> {
        let latch = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.latch)
            .map_err(|e| LockError::io("opening the lease latch", e))?;
        let _held = match flock_exclusive(latch, true, "taking the lease latch") {
            Flocked::Held(h) => h,
            Flocked::Busy(_) => return Err(LockError::Protocol("lease latch busy".into())),
            Flocked::Failed(_, e) => return Err(e),
        };
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|e| LockError::io("opening the lease file", e))?;
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| LockError::io("reading the lease file", e))?;
        let (new, out) = change(Record::parse(&text));
        if let Some(r) = new {
            write_record(&mut f, r).map_err(|e| LockError::io("writing the lease file", e))?;
        }
        Ok(out)
    }
}

fn write_record(f: &mut File, r: Record) -> std::io::Result<()> {
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    writeln!(f, "{} {} {}", r.owner, r.token, r.expiry_ns)
}

/// A lease on the trial's lease file, renewed by a heartbeat thread while held.
#[derive(Debug, Default)]
pub(crate) struct LeaseLock {
    file: Option<LeaseFile>,
    /// The token of the current hold.
    token: Option<u64>,
    /// Hands the token to the store on every access (`lease-fenced`).
    fenced: bool,
    /// The heartbeat while held.
    beat: Option<Heartbeat>,
}

impl LeaseLock {
    /// A lease whose holder hands its token to the store when `fenced`.
    pub(crate) fn new(fenced: bool) -> LeaseLock {
        LeaseLock {
            file: None,
            token: None,
            fenced,
            beat: None,
        }
    }

    fn file(&self) -> Result<&LeaseFile, LockError> {
        self.file
            .as_ref()
            .ok_or_else(|| LockError::Setup("lease: not attached to a trial".into()))
    }

    fn start_heartbeat(&mut self, file: LeaseFile, token: u64) {
        let me = std::process::id();
        self.beat = Some(Heartbeat::start(move || {
            // Renew only a lease that is still ours and unexpired: an expired one is
            // lost, even before a peer takes it (as a key gone from a lock server).
            let ours = file.update(|r| {
                if r.owner == me && r.token == token && r.expiry_ns > file.now() {
                    let renewed = Record {
                        expiry_ns: file.expiry(),
                        ..r
                    };
                    (Some(renewed), true)
                } else {
                    (None, false)
                }
            });
            matches!(ours, Ok(true))
        }));
    }

    fn stop_heartbeat(&mut self) {
        self.beat = None;
    }
}

impl Lock for LeaseLock {
    fn attach(&mut self, dir: &Path) -> Result<(), LockError> {
        self.file = Some(LeaseFile::new(dir));
        Ok(())
    }

    fn lock(&mut self) -> Result<(), LockError> {
        poll_lock(self)
    }

    fn try_lock(&mut self) -> Result<bool, LockError> {
        let file = self.file()?.clone();
        let me = std::process::id();
        let taken = file.update(|r| {
            if r.owner != 0 && r.owner != me && r.expiry_ns > file.now() {
                return (None, None);
            }
            let mine = Record {
                owner: me,
                token: r.token + 1,
                expiry_ns: file.expiry(),
            };
            (Some(mine), Some(mine.token))
        })?;
        let Some(token) = taken else {
            return Ok(false);
        };
        self.token = Some(token);
        self.start_heartbeat(file, token);
        Ok(true)
    }

    fn unlock(&mut self) -> Result<(), LockError> {
        self.stop_heartbeat();
        let me = std::process::id();
        let token = self.token.take();
        // Give back only a lease that is still ours: a lost one belongs to its taker.
        self.file()?.update(|r| {
            if r.owner == me && Some(r.token) == token {
                (Some(Record { owner: 0, ..r }), ())
            } else {
                (None, ())
            }
        })
    }

    fn lease(&self) -> Option<Duration> {
        Some(LEASE)
    }

    fn fence(&self) -> Option<u64> {
        if self.fenced {
            self.token
        } else {
            None
        }
    }
}

impl Drop for LeaseLock {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_is_busy_and_an_expired_one_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = LeaseLock::new(true);
        a.attach(dir.path()).expect("attach");
        assert!(a.try_lock().expect("try"));
        assert_eq!(a.fence(), Some(1));
        // Same process, but a different owner: forge an expired record of another pid.
        let file = LeaseFile::new(dir.path());
        file.update(|r| (Some(Record { owner: 1, ..r }), ()))
            .expect("forge");
        a.stop_heartbeat();
        a.token = None;
        assert!(!a.try_lock().expect("busy while unexpired"));
        file.update(|r| (Some(Record { expiry_ns: 0, ..r }), ()))
            .expect("expire");
        assert!(a.try_lock().expect("taken over"));
        assert_eq!(a.fence(), Some(2), "each acquisition gets a larger token");
        a.unlock().expect("unlock");
        let r = file.update(|r| (None, r)).expect("read");
        assert_eq!((r.owner, r.token), (0, 2));
        assert_eq!(Record::parse("garbage"), Record::default());
    }
}
