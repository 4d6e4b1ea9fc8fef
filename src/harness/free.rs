//! Free-running trials (`jitter` and `barrier`): the OS schedules the buyers.
//!
//! The harness releases the buyers through the start barrier and then mostly listens:
//! buyers report when they block on the lock, take it and give it back, when they have
//! read (for the read barrier), and when a stop fault wants them stopped. From that it
//! runs the read barrier, carries out stop faults (SIGSTOP, wait, SIGCONT), and notices a
//! stale lock: a holder that died holding it while every live buyer waits, with no buyer
//! taking the lock for [`STALE_AFTER`].

use super::outcome::Parts;
use super::process::{Group, MemberId};
use super::{
    interrupt, prepare_lock, spawn_buyer_in, stderr_tail, BuyerSpec, HarnessConfig, HarnessError,
    LockState, TrialDir, TrialRun,
};
use crate::buyer::{msg, Pace};
use crate::ledger::{Exit, Fate, History, Stuck};
use crate::scenario::{External, Schedule, Trial};
use crate::store;
use nix::sys::signal::Signal;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long every live buyer must wait on a lock whose holder died, with nobody taking
/// it, before the trial is a stale lock. A kernel lock (flock, fcntl, SysV with undo) is
/// handed to a waiter within milliseconds of its holder's death; this leaves a wide
/// margin for a busy machine.
pub const STALE_AFTER: Duration = Duration::from_millis(1500);

/// One buyer's control connection.
struct Conn {
    sock: UnixStream,
    member: MemberId,
    open: bool,
    ready: bool,
    wait: Wait,
    holding: bool,
    stop_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Running,
    Blocked,
    AtBarrier,
    Stopped,
}

enum End {
    Done,
    TimedOut,
    Stale { waiting: Vec<u32>, holder: u32 },
    Interrupted(i32),
}

struct LockCleanup(crate::lock::LockKind, std::path::PathBuf);

impl Drop for LockCleanup {
    fn drop(&mut self) {
        self.0.cleanup(&self.1);
    }
}

/// Runs one free-running trial.
pub(super) fn run(trial: &Trial, cfg: &HarnessConfig) -> Result<TrialRun, HarnessError> {
    let started = Instant::now();
    let dir = TrialDir::create(cfg.keep.as_deref())?;
    let store_path = store::path(&dir.path);
    store::create(&store_path, trial.tickets as i64)
        .map_err(|e| HarnessError::Io("writing the store", e))?;
    File::create(crate::ledger::path(&dir.path))
        .map_err(|e| HarnessError::Io("creating the ledger", e))?;

    // Whatever the lock left outside the directory (a POSIX semaphore's name) goes
    // with the trial, on every path out of this function.
    let _cleanup = LockCleanup(trial.lock, dir.path.clone());
    let mut group = Group::default();
    let deadline = started + cfg.timeout;
    let LockState { sem, server } =
        prepare_lock(trial.lock, &dir.path, &mut group, &cfg.exe, deadline)?;

    let pace = match trial.schedule {
        Schedule::Barrier => Pace::Barrier,
        _ => Pace::Free,
    };
    let store_mode = trial.lock.required_store().unwrap_or(trial.store);
    // Under a user's lock command each buyer runs inside the command, which takes the
    // lock before the buyer even starts: no start barrier, and the lock itself is none.
    let wrap = match &trial.external {
        Some(External::LockCmd(t)) => Some(t.as_str()),
        _ => None,
    };
    let mut conns = Vec::with_capacity(trial.buyers as usize);
    let plans: Vec<_> = (0..trial.buyers).map(|b| trial.fault_plan(b)).collect();
    for index in 0..trial.buyers {
        let plan = trial.plan(index);
        let faults = plans[index as usize];
        let spec = BuyerSpec {
            lock: trial.lock.name().to_string(),
            dir: dir.path.clone(),
            index,
            start_us: plan.start_us,
            hold_us: plan.hold_us,
            store: store_mode.name().to_string(),
            pace: pace.name().to_string(),
            sem_id: sem.as_ref().map(|s| s.id),
            reuse: false,
            kill_at: faults.kill_at.map(|p| p.name().to_string()),
            stop_at: faults.stop_at.map(|(p, _)| p.name().to_string()),
            start_barrier: wrap.is_none(),
            kill_group: wrap.is_some(),
        };
        let (sock, member) = spawn_buyer_in(&mut group, cfg, &spec, wrap)?;
        conns.push(Conn {
            sock,
            member,
            open: true,
            ready: false,
            wait: Wait::Running,
            holding: false,
            stop_ms: faults.stop_at.map_or(0, |(_, ms)| ms),
        });
    }

    // The timeout is a watchdog: it runs from the last sign of progress (any message
    // from any buyer), plus the longest pause one buyer may take on purpose (its start
    // delay, its hold, a stop fault), so a long but moving trial is never a `hang`.
    let slack = Duration::from_micros(trial.jitter_us + trial.jitter_us / 4)
        + Duration::from_millis(u64::from(trial.faults.stop_ms));
    let end = drive(
        &mut conns,
        &group,
        pace,
        cfg.timeout + slack,
        wrap.is_none(),
    );
    let (timed_out, stuck) = match &end {
        End::Done => (false, None),
        End::TimedOut => (true, None),
        End::Stale { waiting, holder } => (
            false,
            Some(Stuck::Deadlock {
                waiting: waiting.clone(),
                holder: Some(*holder),
            }),
        ),
        End::Interrupted(_) => (false, None),
    };
    if matches!(end, End::Done) {
        for c in &conns {
            if !group.wait_one(c.member, Duration::from_secs(2)) {
                group.signal(c.member, Signal::SIGKILL);
                group.wait_one(c.member, Duration::from_secs(2));
            }
        }
    } else {
        group.terminate(cfg.grace);
    }
    if let Some(server) = server {
        group.signal(server, Signal::SIGKILL);
        group.wait_one(server, Duration::from_secs(2));
    }
    let leaked = !group.finish();
    if let End::Interrupted(sig) = end {
        return Err(HarnessError::Interrupted(sig));
    }

    let mut history = History::read(&crate::ledger::path(&dir.path))
        .map_err(|e| HarnessError::Io("reading the ledger", e))?;
    history.timed_out = timed_out;
    history.stuck = stuck.clone();
    history.fates = conns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let exit = group.exit(c.member);
            let killed_by_fault =
                plans[i].kill_at.is_some() && exit == Exit::Signal(Signal::SIGKILL as i32);
            Fate {
                pid: group.pid(c.member),
                killed_by_fault,
                killed_by_timeout: !killed_by_fault && (timed_out || stuck.is_some()),
                stderr_tail: stderr_tail(&dir.path, i as u32),
                exit,
            }
        })
        .collect();
    drop(sem);
    let parts = Parts {
        history,
        kept: dir.kept(),
        leaked,
        elapsed: started.elapsed(),
    };
    parts.finish(&dir.path, false)
}

/// Paces free-running buyers until every one has closed its control socket.
fn drive(
    conns: &mut [Conn],
    group: &Group,
    pace: Pace,
    patience: Duration,
    start_barrier: bool,
) -> End {
    let mut deadline = Instant::now() + patience;
    let mut started = !start_barrier;
    let mut barrier_open = false;
    let mut wakes: Vec<(Instant, usize)> = Vec::new();
    // A holder that died holding the lock, and when.
    let mut dead_holder: Option<(usize, Instant)> = None;
    // True when the last poll found nothing to read: only then is a quiet spell real,
    // not messages the harness has yet to read (on a busy machine it can lag behind).
    let mut drained = false;
    let mut last_change = Instant::now();
    loop {
        if let Some(sig) = interrupt::pending() {
            return End::Interrupted(sig);
        }
        let live: Vec<usize> = (0..conns.len()).filter(|&i| conns[i].open).collect();
        if live.is_empty() {
            return End::Done;
        }
        if !started && live.iter().all(|&i| conns[i].ready) {
            started = true;
            for &i in &live {
                send(&mut conns[i], msg::GO);
            }
        }
        if started && pace == Pace::Barrier && !barrier_open {
            let waiting = live
                .iter()
                .filter(|&&i| conns[i].wait == Wait::AtBarrier)
                .count();
            let settled = live
                .iter()
                .all(|&i| matches!(conns[i].wait, Wait::AtBarrier | Wait::Blocked));
            if waiting > 0 && settled {
                barrier_open = true;
                for &i in &live {
                    if conns[i].wait == Wait::AtBarrier {
                        conns[i].wait = Wait::Running;
                        send(&mut conns[i], msg::GO);
                    }
                }
            }
        }
        let now = Instant::now();
        // Stop faults whose time is up: continue the buyer, then let it go on.
        wakes.retain(|&(at, i)| {
            if at <= now {
                group.signal(conns[i].member, Signal::SIGCONT);
                conns[i].wait = Wait::Running;
                send(&mut conns[i], msg::GO);
                false
            } else {
                true
            }
        });
        if let Some((holder, since)) = dead_holder {
            let all_wait = live.iter().all(|&i| conns[i].wait == Wait::Blocked);
            let quiet_since = since.max(last_change);
            if drained && all_wait && now.duration_since(quiet_since) >= STALE_AFTER {
                return End::Stale {
                    waiting: live.iter().map(|&i| i as u32).collect(),
                    holder: holder as u32,
                };
            }
        }
        if now >= deadline {
            return End::TimedOut;
        }
        let mut until = deadline;
        if let Some(&(at, _)) = wakes.iter().min_by_key(|(at, _)| *at) {
            until = until.min(at);
        }
        if dead_holder.is_some() {
            until = until.min(now + Duration::from_millis(100));
        }
        let wait_ms = until
            .saturating_duration_since(now)
            .as_millis()
            .clamp(1, 1000) as u16;
        let readable = match poll_readable(conns, &live, wait_ms) {
            Ok(r) => r,
            Err(_) => continue,
        };
        drained = readable.is_empty();
        for i in readable {
            let mut buf = [0u8; 64];
            let n = match (&conns[i].sock).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            last_change = Instant::now();
            deadline = last_change + patience;
            if n == 0 {
                conns[i].open = false;
                if conns[i].holding {
                    dead_holder = Some((i, last_change));
                }
                continue;
            }
            for &b in &buf[..n] {
                match b {
                    msg::READY => conns[i].ready = true,
                    msg::BLOCKED => conns[i].wait = Wait::Blocked,
                    msg::ACQUIRED => {
                        conns[i].wait = Wait::Running;
                        conns[i].holding = true;
                        // Not a sign the dead holder's lock was freed: messages from
                        // different buyers are read out of order. A freed lock shows
                        // as a waiter that stops waiting.
                    }
                    msg::RELEASED => conns[i].holding = false,
                    msg::HAVE_READ => {
                        if barrier_open {
                            conns[i].wait = Wait::Running;
                            send(&mut conns[i], msg::GO);
                        } else {
                            conns[i].wait = Wait::AtBarrier;
                        }
                    }
                    msg::STOP_ME => {
                        group.signal(conns[i].member, Signal::SIGSTOP);
                        conns[i].wait = Wait::Stopped;
                        let ms = u64::from(conns[i].stop_ms);
                        wakes.push((Instant::now() + Duration::from_millis(ms), i));
                    }
                    _ => {}
                }
            }
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
