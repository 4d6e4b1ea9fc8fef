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

use super::pin::{claim, Claim, Pinned};
use super::process::{Ending, Group, MemberId};
use super::{
    ensure_reused, interrupt, prepare_lock, spawn_buyer_hooked, BuyerSpec, HarnessConfig,
    HarnessError, LockState, Reused, TrialDir,
};
use crate::lock::{Lock, LockContext, LockKind};
use crate::protocol::{msg, Pace, Point, REPLY_FD};
use crate::scenario::Trial;
use crate::store::StoreMode;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A pool of reusable buyer processes for one lock and store mode.
pub struct Session {
    pub(super) cfg: HarnessConfig,
    pub(super) lock: LockKind,
    pub(super) store: StoreMode,
    pub(super) dir: TrialDir,
    /// The trial directory's ledger, emptied each round and read after it.
    pub(super) ledger: File,
    pub(super) group: Group,
    lock_state: LockState,
    pub(super) slots: Vec<Option<SessionBuyer>>,
    /// Buyers killed by a fault this round: (index, member), for their fates.
    pub(super) dead: Vec<(usize, MemberId)>,
    /// The CPU the session's processes share (inherited from the thread that spawns).
    pub(super) cpu: Option<usize>,
    /// That CPU, claimed among oversell's processes for the session's life.
    _claim: Claim,
    /// For a lock server: the harness's own client, to see a dead holder's hold freed.
    prober: Option<Box<dyn Lock>>,
    pub(super) poisoned: bool,
}

/// A session's buyer: a reused one over [`Pipes`].
pub(super) type SessionBuyer = Reused<Pipes>;

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

/// A controlled buyer's control channel: a pipe each way (the buyer's standard input,
/// and [`REPLY_FD`] for its replies). A same-core round trip through two pipes costs
/// about half what one through a Unix socket does, and a session makes one per step.
pub(super) struct Pipes {
    to: File,
    from: File,
    timeout: PollTimeout,
}

impl Pipes {
    pub(super) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.to.write_all(bytes)
    }
}

/// A pipe whose ends are closed on exec.
fn pipe() -> Result<(File, File), HarnessError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| HarnessError::Io("making a control pipe", e.into()))?;
    Ok((File::from(r), File::from(w)))
}

/// Spawns a buyer of a session with [`Pipes`] for its control channel.
fn spawn_piped(
    group: &mut Group,
    cfg: &HarnessConfig,
    spec: &BuyerSpec,
    timeout: Duration,
) -> Result<(Pipes, MemberId), HarnessError> {
    let (their_in, to) = pipe()?;
    let (from, their_out) = pipe()?;
    nix::fcntl::fcntl(
        &from,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| HarnessError::Io("making a control pipe", e.into()))?;
    let mut their_in = Some(OwnedFd::from(their_in));
    let out = their_out.as_raw_fd();
    let mut hook = |cmd: &mut Command| {
        if let Some(fd) = their_in.take() {
            cmd.stdin(Stdio::from(fd));
        }
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // dup2 and fcntl, which are async-signal-safe; `out` stays open in the parent
        // until the spawn has returned.
        unsafe {
            cmd.pre_exec(move || dup_to(out, REPLY_FD));
        }
    };
    // The socket the spawn makes for standard input is replaced by the pipe above.
    let (_unused, member) = spawn_buyer_hooked(group, cfg, spec, None, &mut hook)?;
    drop(their_out);
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    Ok((Pipes { to, from, timeout }, member))
}

/// In the child: descriptor `fd` becomes `target`, kept open across exec.
pub(super) fn dup_to(fd: i32, target: i32) -> io::Result<()> {
    if fd == target {
        // SAFETY: fcntl on an open descriptor of this process, no memory passed.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        return Ok(());
    }
    // SAFETY: dup2 between two descriptor numbers, no memory passed; the new one does
    // not inherit close-on-exec.
    if unsafe { libc::dup2(fd, target) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads one reply. The reply end does not block: on one CPU the buyer has usually
/// answered by the time the harness looks, and then no `poll` is needed.
pub(super) fn read_reply(sock: &mut Pipes) -> Reply {
    let mut b = [0u8; 1];
    loop {
        match sock.from.read(&mut b) {
            Ok(1) => return Reply::Byte(b[0]),
            Ok(_) => return Reply::Closed,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => match interrupt::pending() {
                Some(sig) => return Reply::Interrupted(sig),
                None => continue,
            },
            Err(_) => return Reply::Closed,
        }
        let mut fds = [PollFd::new(sock.from.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, sock.timeout) {
            Ok(0) => return Reply::TimedOut,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {
                if let Some(sig) = interrupt::pending() {
                    return Reply::Interrupted(sig);
                }
            }
            Err(_) => return Reply::Closed,
        }
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
        let ledger = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(crate::ledger::path(&dir.path))
            .map_err(|e| HarnessError::Io("creating the ledger", e))?;
        if lock.virtual_clock() {
            // Before any buyer attaches: a lease sees the clock file only if it is there.
            std::fs::write(dir.path.join(crate::lock::CLOCK_FILE), "0\n")
                .map_err(|e| HarnessError::Io("creating the lease clock", e))?;
        }
        let mut group = Group::default();
        let deadline = Instant::now() + cfg.timeout;
        let (cpu, claim) = claim(cfg.cpu);
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
            ledger,
            group,
            lock_state,
            slots: Vec::new(),
            dead: Vec::new(),
            cpu,
            _claim: claim,
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
        self.lock == trial.lock()
            && self.store == trial.lock().required_store().unwrap_or(trial.store)
            && joins
    }

    fn step_timeout(&self) -> Duration {
        self.cfg.timeout
    }

    pub(super) fn ensure_buyer(&mut self, index: u32) -> Result<(), HarnessError> {
        let timeout = self.step_timeout();
        let sem_id = self.lock_state.sem.as_ref().map(|s| s.id);
        let (lock, store) = (self.lock, self.store);
        ensure_reused(&mut self.slots, index as usize, |index| {
            let dir = self.dir.path.clone();
            let spec = BuyerSpec::reused(lock, dir, index, store, Pace::Controlled, sem_id);
            spawn_piped(&mut self.group, &self.cfg, &spec, timeout)
        })
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
            self.group.end_one(slot.member, Ending::Killed);
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
        self.group.end(Ending::Asked(self.cfg.grace), None, || {});
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
        let server = self.lock_state.server;
        self.group
            .end(Ending::Awaited(Duration::from_millis(500)), server, || {});
        self.lock.cleanup(&self.dir.path);
    }
}
