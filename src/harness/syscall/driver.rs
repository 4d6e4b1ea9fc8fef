//! The loop of a syscall-controlled trial: settle every running buyer at its next step,
//! pick one with the [`Scheduler`], let its call go on, repeat.

use super::call::{self, Notif, Step};
use super::pct::Pct;
use crate::harness::interrupt;
use crate::schedule::{Access, Diverged, Scheduler};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Steps one trial may take before it counts as a hang.
const MAX_STEPS: usize = 200_000;

/// One buyer: its listener and where it stands.
pub(super) struct Buyer {
    pub listener: OwnedFd,
    /// Calls of its processes stopped at a step; the first is the one scheduled.
    parked: VecDeque<(Notif, Step)>,
    pub done: bool,
    /// Sleeps in a row with the directory unchanged, and the directory then.
    spins: u32,
    spin_hash: u64,
}

impl Buyer {
    pub(super) fn new(listener: OwnedFd) -> Buyer {
        Buyer {
            listener,
            parked: VecDeque::new(),
            done: false,
            spins: 0,
            spin_hash: 0,
        }
    }
}

/// How the loop ended.
pub(super) enum End {
    Done,
    TimedOut,
    /// Every live buyer blocked on a lock or polling for a change nobody will make.
    Stuck(Vec<u32>),
    Diverged,
    Interrupted(i32),
}

pub(super) struct Driver<'a> {
    pub buyers: Vec<Buyer>,
    pub dir: &'a Path,
    pub deadline: Instant,
    pub choices: Vec<u32>,
    pub preemptions: u32,
    pub diverged: Option<Diverged>,
    /// `buyer 1 mkdir lock.d → EEXIST` for each step taken.
    pub trace: Vec<String>,
    /// PCT over changes of shared state, in place of the scheduler.
    pub pct: Option<Pct>,
    current: Option<u32>,
    /// `dir` resolved, as the calls' paths are.
    real_dir: std::path::PathBuf,
}

impl<'a> Driver<'a> {
    pub(super) fn new(buyers: Vec<Buyer>, dir: &'a Path, deadline: Instant) -> Driver<'a> {
        Driver {
            buyers,
            dir,
            deadline,
            choices: Vec::new(),
            preemptions: 0,
            diverged: None,
            trace: Vec::new(),
            pct: None,
            current: None,
            real_dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        }
    }

    pub(super) fn run(&mut self, scheduler: &mut dyn Scheduler) -> End {
        loop {
            if let Err(end) = self.settle() {
                return end;
            }
            let live: Vec<usize> = (0..self.buyers.len())
                .filter(|&i| !self.buyers[i].done)
                .collect();
            if live.is_empty() {
                self.diverged = scheduler.finish(self.choices.len()).err();
                return End::Done;
            }
            let Some(runnable) = self.runnable(&live) else {
                return End::Stuck(live.iter().map(|&i| i as u32).collect());
            };
            if self.choices.len() >= MAX_STEPS {
                return End::TimedOut;
            }
            let cur = self.current.filter(|c| runnable.contains(c));
            if scheduler.wants_accesses() {
                scheduler.ahead(&self.accesses(&runnable));
            }
            let picked = match self.pct.as_mut() {
                Some(p) => {
                    let buyers = &self.buyers;
                    Ok(p.pick(&runnable, |b| {
                        buyers[b as usize]
                            .parked
                            .front()
                            .is_some_and(|(_, s)| s.mutates)
                    }))
                }
                None => scheduler.pick(self.choices.len(), &runnable, cur),
            };
            let b = match picked {
                Ok(b) if runnable.contains(&b) => b,
                Ok(b) => {
                    self.diverged = Some(Diverged {
                        step: self.choices.len(),
                        wanted: Some(b),
                        runnable,
                    });
                    return End::Diverged;
                }
                Err(d) => {
                    self.diverged = Some(d);
                    return End::Diverged;
                }
            };
            if cur.is_some_and(|c| c != b) {
                self.preemptions += 1;
            }
            self.choices.push(b);
            self.current = Some(b);
            self.go(b as usize);
            if scheduler.wants_accesses() {
                scheduler.ran(b, false);
            }
        }
    }

    /// Waits until every live buyer is stopped at a step or has ended; calls that are
    /// no step go on at once.
    fn settle(&mut self) -> Result<(), End> {
        loop {
            let running: Vec<usize> = (0..self.buyers.len())
                .filter(|&i| !self.buyers[i].done && self.buyers[i].parked.is_empty())
                .collect();
            if running.is_empty() {
                return Ok(());
            }
            if let Some(sig) = interrupt::pending() {
                return Err(End::Interrupted(sig));
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(End::TimedOut);
            }
            let wait = self
                .deadline
                .duration_since(now)
                .min(Duration::from_millis(100));
            let mut fds: Vec<libc::pollfd> = running
                .iter()
                .map(|&i| libc::pollfd {
                    fd: self.buyers[i].listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: poll on a slice of pollfds owned by this frame.
            let r = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    wait.as_millis().max(1) as i32,
                )
            };
            if r <= 0 {
                continue;
            }
            for (k, &i) in running.iter().enumerate() {
                let ev = fds[k].revents;
                if ev & libc::POLLIN != 0 {
                    self.receive(i);
                } else if ev & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    // No process of this buyer is left.
                    self.buyers[i].done = true;
                }
            }
        }
    }

    /// Reads one notification of buyer `i`: parks it if it is a step, else lets it go on.
    fn receive(&mut self, i: usize) {
        let fd = self.buyers[i].listener.as_raw_fd();
        let Ok(Some(n)) = call::recv(fd) else {
            return;
        };
        match call::classify(fd, &n, &self.real_dir) {
            Some(step) => self.buyers[i].parked.push_back((n, step)),
            None => call::answer(fd, n.id, true),
        }
    }

    /// The buyers that may take the next step, or `None` when the trial is stuck.
    fn runnable(&mut self, live: &[usize]) -> Option<Vec<u32>> {
        if live.iter().any(|&i| self.buyers[i].spins > 0) {
            let h = dir_hash(self.dir);
            for &i in live {
                if self.buyers[i].spin_hash != h {
                    self.buyers[i].spins = 0;
                }
            }
        }
        let free: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| {
                let (n, step) = &self.buyers[i].parked[0];
                !step.lock.is_some_and(|l| call::would_block(n.pid, l))
            })
            .collect();
        // A buyer about to sleep again with nothing changed since it last slept is
        // polling: it goes after the others; one that so slept twice already waits for
        // the others. Its other calls (the test between two sleeps) are no poll: the
        // schedule places them like any step, so a test may fall before another's change.
        let tier = |i: usize| match &self.buyers[i].parked[0] {
            (_, step) if step.sleep => self.buyers[i].spins,
            _ => 0,
        };
        for spins in [0, 1] {
            let pick: Vec<u32> = free
                .iter()
                .filter(|&&i| tier(i) == spins)
                .map(|&i| i as u32)
                .collect();
            if !pick.is_empty() {
                return Some(pick);
            }
        }
        None
    }

    /// What the stopped call of each runnable buyer touches, for a partial-order
    /// reduction. Only calls that change nothing (a stat, an open for reading, a read, a
    /// sleep) commute with each other; a change, a lock call, a close (it may drop a
    /// lock) and a ledger line conflict with every step. The process exits and the
    /// calls that are no step which follow a step count as part of it, so a step that
    /// may be followed by a release never counts as a read alone: a buyer's last call
    /// before its processes exit is a close or a ledger line.
    fn accesses(&self, runnable: &[u32]) -> Vec<Option<Access>> {
        let reads = Access::at(crate::protocol::Point::Read, crate::lock::LockKind::None);
        (0..self.buyers.len() as u32)
            .map(|b| {
                if !runnable.contains(&b) {
                    return None;
                }
                let (_, step) = self.buyers[b as usize].parked.front()?;
                let only_reads = !step.mutates
                    && step.lock.is_none()
                    && step.name != "SYS_close"
                    && !step.path.ends_with(crate::ledger::FILE_NAME);
                Some(if only_reads { reads } else { Access::EVERYTHING })
            })
            .collect()
    }

    /// Lets buyer `b`'s first stopped call go on (a sleep returns at once instead).
    fn go(&mut self, b: usize) {
        let Some((n, step)) = self.buyers[b].parked.pop_front() else {
            return;
        };
        if step.lock.is_some_and(|l| call::begin_conversion(n.pid, l)) {
            // The first half of a conversion ran: the buyer's own lock is gone, and its
            // call now waits for the others like any acquire.
            self.trace.push(format!(
                "buyer {b} {} → its own lock dropped, waits",
                step.label(&self.real_dir)
            ));
            self.buyers[b].parked.push_front((n, step));
            return;
        }
        let result = call::result(&step, &n);
        self.trace
            .push(format!("buyer {b} {} → {result}", step.label(&self.real_dir)));
        let fd = self.buyers[b].listener.as_raw_fd();
        if step.sleep {
            let h = dir_hash(self.dir);
            let buyer = &mut self.buyers[b];
            if buyer.spins > 0 && buyer.spin_hash == h {
                buyer.spins += 1;
            } else {
                buyer.spins = 1;
                buyer.spin_hash = h;
            }
            call::answer(fd, n.id, false);
        } else {
            call::answer(fd, n.id, true);
        }
        // On the trial's one CPU the buyer just let go runs now, to its next call.
        let _ = nix::sched::sched_yield();
    }
}

/// A digest of the trial directory: names, kinds, sizes, and the bytes of small files
/// (the ledger and the buyers' stderr files left out). A polling buyer waits for this to change.
fn dir_hash(dir: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_into(dir, &mut h, 0);
    h.finish()
}

fn hash_into(dir: &Path, h: &mut impl Hasher, depth: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let own = name == crate::ledger::FILE_NAME
            || (name.starts_with("buyer-") && name.ends_with(".err"));
        if depth == 0 && own {
            continue;
        }
        name.hash(h);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            1u8.hash(h);
            if depth < 3 {
                hash_into(&p, h, depth + 1);
            }
        } else {
            meta.len().hash(h);
            meta.file_type().is_file().hash(h);
            // Regular files only, opened without blocking: a FIFO, socket or device in
            // the directory is named and sized, never opened.
            if meta.file_type().is_file() && meta.len() <= 4096 {
                small_file(&p).hash(h);
            }
        }
    }
}

/// The bytes of a small regular file, opened `O_NONBLOCK` (and not followed if it was
/// swapped for a link meanwhile), or nothing.
fn small_file(p: &Path) -> Vec<u8> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = Vec::new();
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(p)
    {
        let is_file = f.metadata().is_ok_and(|m| m.file_type().is_file());
        if is_file {
            let _ = f.take(4096).read_to_end(&mut out);
        }
    }
    out
}
