//! The loop of a syscall-controlled trial: settle every running buyer at its next step,
//! pick one with the [`Scheduler`], let its call go on, repeat.

mod dead;
mod errno;
mod fork;
mod memory;
mod server;
mod time;
mod whole;

pub(super) use whole::Whole;

use crate::faults::InjectedErrno;
use crate::harness::interrupt;
use crate::harness::steps::{self, Ended, Moved, Steps, Walk};
use crate::ledger::Injected;
use crate::schedule::{Access, Scheduler, StepHint};
use crate::seccomp::blocked;
use crate::seccomp::call::{self, Notif, Step};
use crate::seccomp::objects;
use crate::seccomp::paths::process_of;
use crate::seccomp::probe;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Polls without a sleep (the same look again, a failed try) with nothing changed that a
/// buyer alone may make before it counts as waiting for something nobody will do.
const BUSY_POLLS: u32 = 32;

/// How many times its patience a trial may go without a step while its processes still
/// make calls ([`Stepper::still_on`]): a program that calls on and never steps is a hang.
const PATIENCE_STRETCH: u32 = 3;

/// Looks, each after a longer pause (20, 40, 80 ms), before a trial in which no buyer can
/// go on is called stuck.
const STUCK_LOOKS: u32 = 3;

/// The step let go last, while its buyer runs to its next: what its call touches, and
/// what tells whether it did more ([`Tracee::segment_access`]).
#[derive(Debug, Clone, Copy)]
struct Segment {
    buyer: u32,
    /// What its call alone touches.
    own: Access,
    /// In a program that shares memory, the task whose references were forgotten.
    tid: Option<u32>,
    /// How many processes of the buyer lived when it was let go.
    live: usize,
    /// Its buyer's [`Tracee::arrivals`] then.
    arrivals: u64,
}

/// One buyer: its listener and where it stands.
pub(super) struct Tracee {
    /// Its own listener; none for a unit of a whole program, which shares the program's.
    pub listener: Option<OwnedFd>,
    /// A unit of a whole program: the one task it is.
    pub tid: Option<u32>,
    /// Calls of its processes stopped at a step; the first is the one scheduled.
    parked: VecDeque<(Notif, Step)>,
    /// How many calls its processes have stopped at as steps so far: one stopped since
    /// a step was let go proves a process of the buyer alive after it.
    arrivals: u64,
    pub done: bool,
    /// Polls in a row (sleeps, and tries that failed: a create that found the name
    /// taken) with no change of shared state between them, and the change count then.
    spins: u32,
    spin_epoch: u64,
    /// How many changes of shared state were its own: a poller that writes as it waits
    /// (a line to a log each time round) changes nothing another waits for, and is
    /// still polling while another can go; only the others' changes end a poll.
    own_changes: u64,
    /// Polls in a row with no change of shared state at all, its own included: alone,
    /// a poller that keeps changing things (a lease's latch, opened to append, each
    /// time round while its clock runs to the expiry) is not stuck.
    lone_spins: u32,
    /// The looks and failed tries (`newfstatat lock`) it made since shared state last
    /// changed: the same look made a third time with nothing changed is a poll too (a
    /// busy test loop), and only a step that repeats one of these (or a sleep) may be
    /// put off for polling — with nothing changed it can only do what it did before.
    looks: Vec<String>,
    /// The calls it polled with (a failed try; a look repeated, by its process): only
    /// these, and sleeps, are put off as polls.
    polled: Vec<String>,
    /// The pid of its first process (the root of its process tree).
    pub root: u32,
    /// Asleep in the kernel in a call only another buyer's action ends.
    in_kernel: bool,
    /// It mapped a file shared: what it polls for may change with no step.
    maps_shared: bool,
    /// Ended, and its processes seen to have exited.
    reaped: bool,
    /// The process group it leads, when it has one of its own.
    pub group: Option<u32>,
    /// An errno fault: its `k`th call that can fail with this error fails with it.
    pub fail_at: Option<(u32, InjectedErrno)>,
    /// Its calls so far that could have failed with that error.
    failable: u32,
    /// A skew: its clock runs at this many thousandths of the trial's.
    pub rate: Option<u32>,
    /// A jump: its wall clock steps by this many ms at its `k`th step (from 0).
    pub jump_at: Option<(u32, i32)>,
    /// Steps it has taken.
    taken: u32,
    /// Its first stopped call (a POSIX `F_SETLKW`) closes a cycle of waits: when let go
    /// it is answered `EDEADLK`, as the kernel answers it ([`Stepper::deadlock`]).
    deadlocked: bool,
}

impl Tracee {
    pub(super) fn new(listener: OwnedFd) -> Tracee {
        Tracee {
            listener: Some(listener),
            tid: None,
            root: 0,
            ..Tracee::unit(0)
        }
    }

    /// A unit of a whole program: task `tid`, listened to through the program's listener.
    fn unit(tid: u32) -> Tracee {
        Tracee {
            listener: None,
            tid: Some(tid),
            parked: VecDeque::new(),
            arrivals: 0,
            done: false,
            spins: 0,
            spin_epoch: 0,
            own_changes: 0,
            lone_spins: 0,
            looks: Vec::new(),
            polled: Vec::new(),
            root: tid,
            in_kernel: false,
            maps_shared: false,
            reaped: false,
            group: None,
            fail_at: None,
            failable: 0,
            rate: None,
            jump_at: None,
            taken: 0,
            deadlocked: false,
        }
    }
}

/// True when no task of buyer `b`, which has calls stopped, still runs toward a step of
/// its own: each is stopped in a call already received or waits in the kernel for
/// another. Which of its threads reach a step first is the machine's timing; under the
/// trial's clock the schedule waits for them all, so a replay meets the same calls.
fn still(b: &Tracee) -> bool {
    blocked::still_tree(b.root).is_some_and(|tasks| {
        let stopped = tasks
            .iter()
            .filter(|(_, s)| *s == blocked::Still::Notifying)
            .count();
        stopped <= b.parked.len()
    })
}

/// How the loop ended.
pub(super) enum Halt {
    Done,
    TimedOut,
    /// Every live buyer blocked on a lock or polling for a change nobody will make.
    Stuck(Vec<u32>),
    Diverged,
    /// Stuck or out of time while a trial running beside it used an object by the same
    /// name: the wait may have been that trial's, so no hang or deadlock is said.
    Unjudged,
    Interrupted(i32),
}

pub(super) struct Stepper {
    pub buyers: Vec<Tracee>,
    /// When the trial is called a hang: `patience` after its last step (or its start).
    pub deadline: Instant,
    /// How long the trial may go without a step.
    patience: Duration,
    /// When the last step was let go (or the trial started).
    stepped: Instant,
    /// When a buyer's process last made a call the filter reports, a step or not.
    called: Instant,
    /// The choices, preemptions and divergence of the one step loop ([`steps`]).
    pub walk: Walk,
    /// What each step did, one per choice.
    pub steps: Vec<crate::harness::Seen>,
    /// `buyer 1 mkdir lock.d → EEXIST` for each step taken.
    pub trace: Vec<String>,
    /// Changes of shared state made so far (steps that changed something and did not
    /// fail): a polling buyer waits for this to move.
    epoch: u64,
    /// Helper processes of the trial (a lock server) that must be idle between steps.
    pub helpers: Vec<u32>,
    /// The kernel objects the trial's processes use by name (a message queue): those a
    /// trial made are removed once no running trial uses them.
    pub made: crate::seccomp::ipc::Made,
    /// A call named a file the harness could not find ([`call::unreadable`]): a lock
    /// kept there is taken and let go unseen, so a trial stuck after it is not judged.
    pub unreadable: bool,
    /// Effects on shared state that no step orders (`buyer 0 maps /dev/shm/x shared`):
    /// a search that met one cannot say "verified".
    pub unordered: Vec<String>,
    /// The timers armed by the buyers' processes, by buyer (0 for a whole program),
    /// process and timer ([`call::TimerCall`]), with the call that armed each: a wait of
    /// that buyer may be ended by the timer's signal (its own, or one sent by another of
    /// its processes, as `timeout(1)` does), a path no schedule takes.
    pub(super) timers: std::collections::HashMap<(usize, u32, u64), &'static str>,
    /// The owners of timers armed while a step was taken, with the call that armed one:
    /// its signal may come between any two steps, at a moment of the machine's clock
    /// (a holder whose handler lets the lock go while its command runs).
    timed_steps: Vec<(usize, &'static str)>,
    /// The owners a wait their timer may end was named for ([`Stepper::note_timed_wait`]).
    timed_waits: std::collections::HashSet<usize>,
    /// Calls made to fail by an errno fault.
    pub injected: Vec<Injected>,
    /// The flocks stopped calls' descriptors hold, as last read.
    owned: probe::Owned,
    /// `dir` resolved, as the calls' paths are.
    real_dir: std::path::PathBuf,
    /// A whole program (`--program`): its listener and units.
    pub whole: Option<Whole>,
    /// For a whole program: the errno fault of each unit, by number.
    pub unit_faults: Vec<Option<(u32, InjectedErrno)>>,
    /// For a whole program: the still view last seen, to be seen again.
    last_view: Option<Vec<(u32, blocked::Still)>>,
    /// The step let go last, when the scheduler asks what steps touch: what it touched
    /// is known only once its buyer is stopped again ([`Segment`]).
    segment: Option<Segment>,
    /// What each buyer's first stopped call touches, as [`Stepper::accesses`] read it
    /// for the scheduler's look ahead of this step (outside a program sharing memory):
    /// the step picked touches the same, nothing having run since.
    ahead: Vec<Option<Access>>,
    /// A directory was renamed in this trial: the descriptors and working directories in
    /// it moved with it, and every step is taken to touch everything ([`objects`]).
    moved: bool,
    /// Connections to the trial's own server (its Redis), by process and descriptor, with
    /// the task that connected it: what that task writes to them is a step.
    servers: std::collections::HashMap<(u32, i32), (u32, std::path::PathBuf)>,
    /// A process connected to the trial's own server under the filter.
    pub server_seen: bool,
    /// Tasks that sent a request through another task's connection to the trial's
    /// server: a lease's heartbeat, renewing on the server's clock ([`Stepper::server_call`]).
    heartbeats: std::collections::HashSet<u32>,
    /// The trial's clock, when its processes read oversell's (a user's command).
    pub clock: Option<crate::harness::clock::TrialClock>,
    /// What was done to buyers' clocks, and programs on real time (`History::clocks`).
    pub clock_notes: Vec<String>,
    /// Sleeps end in the order of their deadlines, and only when nothing else can go
    /// (under clock faults: `time.rs`).
    pub strict_time: bool,
    /// Processes already looked at for the clock shim, with the program each ran.
    shim_checked: std::collections::HashSet<(u32, std::path::PathBuf)>,
    /// Files and directories a step changed, with the trial's wall time then: their
    /// times are set to it before the next step (`time.rs`, [`Stepper::restamp`]).
    changed: Vec<(std::path::PathBuf, u64)>,
}

impl Stepper {
    /// Whether a wait for calls goes on: not once SIGINT or SIGTERM came
    /// (`Interrupted`), nor past the deadline (`TimedOut`); else the time now. A trial
    /// whose processes still make calls, none of them a step, is slowed (a loaded machine
    /// starting an interpreter), not hung: its deadline moves to `patience` after its
    /// last call, up to [`PATIENCE_STRETCH`] times `patience` after its last step.
    fn still_on(&mut self) -> Result<Instant, Halt> {
        if let Some(sig) = interrupt::pending() {
            return Err(Halt::Interrupted(sig));
        }
        let now = Instant::now();
        if now < self.deadline {
            return Ok(now);
        }
        let furthest = self.stepped + self.patience * PATIENCE_STRETCH;
        let moved = (self.called + self.patience).min(furthest);
        if moved > now {
            self.deadline = moved;
            return Ok(now);
        }
        Err(Halt::TimedOut)
    }

    /// A stepper over `buyers` in the trial directory `dir`, which calls the trial a hang
    /// once `patience` passes without a step (a loaded machine slows a trial, not its
    /// steps' order).
    pub(super) fn new(buyers: Vec<Tracee>, dir: &Path, patience: Duration) -> Stepper {
        Stepper {
            buyers,
            deadline: Instant::now() + patience,
            patience,
            stepped: Instant::now(),
            called: Instant::now(),
            walk: Walk::default(),
            steps: Vec::new(),
            trace: Vec::new(),
            epoch: 0,
            helpers: Vec::new(),
            made: crate::seccomp::ipc::Made::default(),
            unreadable: false,
            unordered: Vec::new(),
            timers: std::collections::HashMap::new(),
            timed_steps: Vec::new(),
            timed_waits: std::collections::HashSet::new(),
            injected: Vec::new(),
            owned: probe::Owned::default(),
            real_dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
            whole: None,
            unit_faults: Vec::new(),
            last_view: None,
            segment: None,
            ahead: Vec::new(),
            moved: false,
            servers: std::collections::HashMap::new(),
            heartbeats: std::collections::HashSet::new(),
            server_seen: false,
            clock: None,
            strict_time: false,
            clock_notes: Vec::new(),
            shim_checked: std::collections::HashSet::new(),
            changed: Vec::new(),
        }
    }

    /// The listener buyer `b`'s calls come through.
    fn fd(&self, b: usize) -> std::os::fd::RawFd {
        match (
            &self.whole,
            self.buyers.get(b).and_then(|t| t.listener.as_ref()),
        ) {
            (Some(w), _) => w.listener.as_raw_fd(),
            (None, Some(l)) => l.as_raw_fd(),
            (None, None) => -1,
        }
    }

    pub(super) fn run(&mut self, scheduler: &mut dyn Scheduler) -> Halt {
        match steps::run(self, scheduler) {
            Ended::Over => Halt::Done,
            Ended::Diverged => Halt::Diverged,
            Ended::TooLong => Halt::TimedOut,
            Ended::Stopped(halt) => halt,
        }
    }

    /// Waits until every live buyer is stopped at a step, has ended, or waits in the
    /// kernel for another's action ([`blocked`]), and every helper process (a lock
    /// server) is idle; calls that are no step go on at once.
    fn settle(&mut self) -> Result<(), Halt> {
        if self.whole.is_some() {
            return self.settle_whole();
        }
        let mut quiet_polls = 0u32;
        // What each buyer's tasks were last seen asleep in: a buyer is taken for asleep
        // in the kernel once seen so twice in a row, the same tasks in the same calls
        // (a pipeline's child just ended and its shell not yet woken looks asleep once).
        let mut asleep: Vec<Option<Vec<(u32, String)>>> = vec![None; self.buyers.len()];
        loop {
            // A buyer that waited in the kernel may have been woken by the step just
            // taken: it runs again until its next step.
            for b in self.buyers.iter_mut().filter(|b| b.in_kernel) {
                if !blocked::waiting_in_kernel(b.root) {
                    b.in_kernel = false;
                }
            }
            // Only under clock faults, where the order of sleeps follows the clock: a
            // look at every buyer's tasks at each step costs a trial of 15 shell lock
            // commands several times its time, and without them the schedule orders
            // sleeps like any step.
            let timed = self.clock.is_some() && self.strict_time;
            let running: Vec<usize> = (0..self.buyers.len())
                .filter(|&i| {
                    let b = &self.buyers[i];
                    !b.done && !b.in_kernel && (b.parked.is_empty() || (timed && !still(b)))
                })
                .collect();
            let helpers_busy = self.helpers.iter().any(|&h| !blocked::idle(h));
            if running.is_empty() && !helpers_busy {
                // Under the trial's clock, a buyer taken for asleep in the kernel may have
                // a task stopped in a call not read yet (a child just started while its
                // parent waits): read what is there before the schedule picks.
                if !timed {
                    // What the buyers already parked called meanwhile is read before the
                    // schedule picks: a call left unread can be cut short by a signal
                    // (see `pending_calls`).
                    if !self.pending_calls() {
                        return Ok(());
                    }
                    self.still_on()?;
                    continue;
                }
                // A task just let go may still look asleep in the call it was stopped in:
                // look again a moment later (200 µs: still twice), as for a whole program.
                std::thread::sleep(Duration::from_micros(200));
                let moved = self
                    .buyers
                    .iter()
                    .any(|b| !b.done && !b.in_kernel && !b.parked.is_empty() && !still(b));
                if !moved && !self.pending_calls() {
                    return Ok(());
                }
                continue;
            }
            let now = self.still_on()?;
            // A buyer is looked at for sleeping in the kernel only once it has let a few
            // milliseconds pass without a step (a process start takes longer than a
            // step): then every few milliseconds.
            let step_ms = if quiet_polls == 0 { 4 } else { 2 };
            let wait = self
                .deadline
                .duration_since(now)
                .min(Duration::from_millis(step_ms));
            // Buyers taken for asleep in the kernel are listened to as well: a step of
            // theirs proves them awake; and buyers stopped at a step, whose other
            // processes may still run (see `pending_calls`).
            let watched: Vec<usize> = running
                .iter()
                .copied()
                .chain((0..self.buyers.len()).filter(|&i| {
                    let b = &self.buyers[i];
                    !b.done && !running.contains(&i)
                }))
                .collect();
            let mut fds = self.listening(&watched);
            // SAFETY: poll on a slice of pollfds owned by this frame.
            let r = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    wait.as_millis().max(1) as i32,
                )
            };
            if r <= 0 {
                quiet_polls += 1;
                // Nothing to read: a buyer none of whose processes runs is blocked —
                // judged only once the helpers are idle, since a lock server's answer
                // may be what it waits for.
                if self.helpers.iter().any(|&h| !blocked::idle(h)) {
                    continue;
                }
                for &i in &running {
                    match blocked::waiting_view(self.buyers[i].root) {
                        Some(view) if asleep[i].as_ref() == Some(&view) => {
                            asleep[i] = None;
                            self.buyers[i].in_kernel = true;
                            if !self.timers.is_empty() {
                                self.note_timed_wait(i, "in the kernel");
                            }
                        }
                        Some(view) => asleep[i] = Some(view),
                        None => {
                            asleep[i] = None;
                            self.note_limited_wait(i);
                        }
                    }
                }
                continue;
            }
            quiet_polls = 0;
            for (k, &i) in watched.iter().enumerate() {
                let ev = fds[k].revents;
                if ev & libc::POLLIN != 0 {
                    self.buyers[i].in_kernel = false;
                    asleep[i] = None;
                    self.receive(i);
                } else if ev & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    // No process of this buyer is left.
                    self.buyers[i].done = true;
                    self.owned.forget();
                }
            }
        }
    }

    /// A `poll` entry for the listener of each buyer of `which`, waiting for a call.
    fn listening(&self, which: &[usize]) -> Vec<libc::pollfd> {
        which
            .iter()
            .map(|&i| libc::pollfd {
                fd: self.fd(i),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect()
    }

    /// Reads, without waiting, the calls waiting on the listeners of buyers taken for
    /// asleep in the kernel or stopped at a step; true when there was one.
    ///
    /// A buyer stopped at a step may have other processes still running (a shell's
    /// children), whose calls wait for the harness: each is read as soon as it comes, a
    /// step parked behind the first, any other call let go. Until the harness has read
    /// it, a stopped call can be cut short by a signal (a child's SIGCHLD), and a
    /// process whose handler lacks SA_RESTART then sees EINTR where run alone it could
    /// not; once read, only a fatal signal ends the wait (see `seccomp::install`).
    fn pending_calls(&mut self) -> bool {
        let waiting: Vec<usize> = (0..self.buyers.len())
            .filter(|&i| {
                let b = &self.buyers[i];
                !b.done && (b.in_kernel || !b.parked.is_empty())
            })
            .collect();
        let mut fds = self.listening(&waiting);
        if fds.is_empty() {
            return false;
        }
        // SAFETY: poll on a slice of pollfds owned by this frame, without waiting.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if r <= 0 {
            return false;
        }
        let mut any = false;
        for (k, &i) in waiting.iter().enumerate() {
            if fds[k].revents & libc::POLLIN != 0 {
                self.buyers[i].in_kernel = false;
                self.receive(i);
                any = true;
            }
        }
        any
    }

    /// Keeps buyer `i`'s call `n`, a step, until the schedule lets it go.
    fn park(&mut self, i: usize, n: Notif, step: Step) {
        let b = &mut self.buyers[i];
        b.arrivals += 1;
        b.parked.push_back((n, step));
    }

    /// Reads one notification of buyer `i`: parks it if it is a step, else lets it go on.
    fn receive(&mut self, i: usize) {
        let fd = self.fd(i);
        let Ok(Some(n)) = call::recv(fd) else {
            return;
        };
        self.called = Instant::now();
        self.note_timer(i, &n);
        if let Some(what) = self.made.note(&n) {
            self.note_unordered(format!("buyer {i} {what}"));
        }
        let (to_server, request) = self.server_call(&n);
        if let Some(step) = request {
            return self.park(i, n, step);
        }
        // A heartbeat's sleep runs on the machine's clock, as the server's expiry does:
        // held for the schedule, it would let the lease lapse while its holder waits its
        // turn, which a holder's heartbeat never does when run alone.
        if self.heartbeats.contains(&n.pid)
            && crate::seccomp::of(n.nr).is_some_and(|c| c.effect == crate::seccomp::Effect::Sleep)
        {
            return call::answer(fd, n.id, true);
        }
        if let Some(what) = call::unordered(&n, &self.real_dir).filter(|_| !to_server) {
            self.buyers[i].maps_shared = true;
            self.note_unordered(format!("buyer {i} {what}"));
        }
        match call::classify(fd, &n, &self.real_dir) {
            // A buyer's forks go on: its tasks are one unit.
            Some(step) if step.effect == crate::seccomp::Effect::Spawn => {
                call::answer(fd, n.id, true)
            }
            // So is a futex in its private memory: no other buyer can reach the word,
            // and when its own threads end (node's joins at exit) is no step to order.
            // (Under `--program` each task is a unit, and such a futex is a step.)
            Some(step) if step.name == "SYS_futex" && !call::shared_memory(n.pid, n.args[0]) => {
                call::answer(fd, n.id, true)
            }
            Some(mut step) => {
                if let Some(what) = call::unwatched_change(&step, &self.real_dir) {
                    self.note_unordered(format!("buyer {i} {what}"));
                }
                if let Some(what) = self.note_outside(&step) {
                    self.note_unordered(format!("buyer {i} {what}"));
                }
                self.check_shim(i, n.pid);
                self.stamp(i, &mut step);
                // A buyer's calls are one queue, whose first is the one scheduled: a
                // futex wait held back there would hold back every other thread of the
                // buyer (the one it waits for among them). It runs as a change, and
                // its sleep in the kernel is seen as such ([`blocked`]); only a whole
                // program's units, one task each, wait on a futex as on a lock.
                if matches!(step.lock, Some(call::LockCall::FutexWait { .. })) {
                    step.lock = None;
                    step.mutates = true;
                }
                self.note_side_by_side(i, n.pid);
                self.park(i, n, step)
            }
            None => {
                if let Some(what) = call::unreadable(&n) {
                    self.unreadable = true;
                    self.note_unordered(format!("buyer {i} {what}"));
                }
                call::answer(fd, n.id, true)
            }
        }
    }

    /// Notes the file outside the trial's directory that `step` names (a lock file at a
    /// fixed place), which a trial running beside this one may use too; says so when one
    /// does ([`crate::seccomp::ipc`]).
    pub(super) fn note_outside(&mut self, step: &call::Step) -> Option<String> {
        let path = Path::new(&step.path);
        // The places above the trial's directory (its scratch root) every trial looks at.
        if !path.is_absolute()
            || path.starts_with(&self.real_dir)
            || self.real_dir.starts_with(path)
        {
            return None;
        }
        self.made
            .note_path(path, step.mutates || step.lock.is_some())
    }

    /// Remembers what a call of buyer `b` does to its process's timers ([`call::timer`]).
    pub(super) fn note_timer(&mut self, b: usize, n: &Notif) {
        let b = self.timer_owner(b);
        match call::timer(n) {
            Some(call::TimerCall::Arms { key, by }) => {
                self.timers.insert((b, process_of(n.pid), key), by);
            }
            Some(call::TimerCall::Disarms { key }) => {
                self.timers.remove(&(b, process_of(n.pid), key));
            }
            None => {}
        }
    }

    /// Names buyer `b`, which waits (`how`: in a lock call that would block, or in the
    /// kernel) while one of its processes has a timer armed: the timer's signal may end
    /// the wait (`flock -w`, `timeout(1)`), which a schedule never does, so a search that
    /// met it cannot say `verified`.
    pub(super) fn note_timed_wait(&mut self, b: usize, how: &str) {
        let owner = self.timer_owner(b);
        let Some(by) = self
            .timers
            .iter()
            .find_map(|(&(o, _, _), by)| (o == owner).then_some(*by))
        else {
            return;
        };
        let who = self.who(b);
        self.timed_waits.insert(owner);
        self.note_unordered(format!(
            "{who} waits {how} with a timer armed ({by}), which may end the wait"
        ));
    }

    /// Names buyer `b` (or the program) when one of its tasks is asleep with a time limit
    /// on what another process may do ([`blocked::timed_wait`]): the harness waits for
    /// it to end, so only the way where the limit passes is taken.
    pub(super) fn note_limited_wait(&mut self, b: usize) {
        let root = match self.whole.as_ref() {
            Some(w) => w.root,
            None => self.buyers[b].root,
        };
        let Some(call) = blocked::timed_wait(root) else {
            return;
        };
        let who = self.who(b);
        self.note_unordered(format!("{who} {}", call::limited_wait(call)));
    }

    /// Whose timers a call of buyer `b` sets: its own, or the program's (one owner, 0).
    fn timer_owner(&self, b: usize) -> usize {
        if self.whole.is_some() {
            0
        } else {
            b
        }
    }

    /// Buyer `b` as a note names it: `buyer 1`, or `the program`.
    fn who(&self, b: usize) -> String {
        match self.whole {
            Some(_) => "the program".to_string(),
            None => format!("buyer {b}"),
        }
    }

    /// At the trial's end: names each buyer that had a timer armed while steps were
    /// taken, unless a wait of its was named for its timer already.
    pub(in crate::harness::syscall) fn note_timed_steps(&mut self) {
        for (owner, by) in std::mem::take(&mut self.timed_steps) {
            if !self.timed_waits.contains(&owner) {
                let who = self.who(owner);
                self.note_unordered(format!(
                    "{who} had a timer armed ({by}) while steps were taken, whose signal may \
                     come between any two of them"
                ));
            }
        }
    }

    /// How many changes of shared state buyer `b`'s poll counts were last reset by: the
    /// others' only (see `Tracee::own_changes`).
    fn others_epoch(&self, b: usize) -> u64 {
        self.epoch - self.buyers[b].own_changes
    }

    /// Names buyer `b` when task `tid` stops at a step while another process of the
    /// buyer is parked at one (a background job beside its command, `cmd &`): which of
    /// the two stops first is the kernel's timing, and the schedule takes a buyer's
    /// steps in the order they stop, so the order between them is never searched and a
    /// run may not repeat itself. (Threads of one process are one queue by design.)
    fn note_side_by_side(&mut self, b: usize, tid: u32) {
        let Some(other) = self.buyers[b]
            .parked
            .iter()
            .map(|(n, _)| n.pid)
            .find(|&p| p != tid)
        else {
            return;
        };
        let process = crate::seccomp::paths::process_of;
        if process(other) != process(tid) {
            self.note_unordered(format!(
                "buyer {b} runs two of its processes at once (a background job), whose \
                 steps the schedule takes in the order they stop"
            ));
        }
    }

    /// Keeps `note`, an effect no step orders, once.
    pub(super) fn note_unordered(&mut self, note: String) {
        if !self.unordered.contains(&note) {
            self.unordered.push(note);
        }
    }

    /// The buyers that may take the next step, or `None` when the trial is stuck.
    fn runnable(&mut self, live: &[usize]) -> Option<Vec<u32>> {
        self.order_parked();
        for &i in live {
            if self.buyers[i].spin_epoch != self.others_epoch(i) {
                self.buyers[i].spins = 0;
                self.buyers[i].lone_spins = 0;
                self.buyers[i].looks.clear();
                self.buyers[i].polled.clear();
            }
        }
        let mut blocked = Vec::new();
        let mut free: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| {
                self.buyers[i].deadlocked = false;
                let (n, step) = &self.buyers[i].parked[0];
                let blocks = step
                    .lock
                    .is_some_and(|l| probe::would_block(n.pid, l, &mut self.owned));
                if blocks {
                    blocked.push(i);
                }
                !blocks
            })
            .collect();
        if let Some(i) = self.deadlock(&blocked) {
            self.buyers[i].deadlocked = true;
            blocked.retain(|&b| b != i);
            free.push(i);
            free.sort_unstable();
        }
        if !self.timers.is_empty() {
            for i in blocked {
                let label = self.buyers[i].parked[0].1.label(&self.real_dir);
                self.note_timed_wait(i, &format!("in {label}"));
            }
        }
        let free = self.in_time_order(free);
        // A buyer about to sleep or try again with nothing changed since its last poll is
        // polling: it goes after the others; one that so polled twice already waits for
        // the others. Its looks (the test between two sleeps) are no poll: the schedule
        // places them like any step, so a test may fall before another's change. A busy
        // loop with no sleep (a create retried at once, a select timeout) polls by its
        // failed tries.
        let tier = |i: usize| {
            let buyer = &self.buyers[i];
            if buyer.spins == 0 {
                return 0;
            }
            let (n, step) = &buyer.parked[0];
            let label = step.label(&self.real_dir);
            let again = step.sleep()
                || buyer.polled.contains(&label)
                || buyer.polled.contains(&format!("{} {label}", n.pid));
            if again {
                buyer.spins
            } else {
                0
            }
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
        // Nobody else can go. A poller may be counting its tries, watching a child, or
        // reading memory that changes with no step: the first one goes on, alone (no
        // choice is made), until it has polled [`BUSY_POLLS`] times with nothing
        // changed; then it waits for something nobody will do.
        free.iter()
            .copied()
            .find(|&i| self.buyers[i].lone_spins < BUSY_POLLS)
            .map(|i| vec![i as u32])
    }

    /// Of the buyers `blocked` on a lock, the one whose POSIX `F_SETLKW` the kernel
    /// answers `EDEADLK` (two or three readers upgrading at once). The kernel checks each
    /// request about to wait: it follows, from the lock it waits on, what that lock's
    /// owner waits on in turn, and fails the request that would close a cycle (POSIX
    /// locks only, not flock nor OFD). The harness holds waiting requests back, so it
    /// answers for the kernel, where the answer does not depend on which lock the
    /// kernel follows: a set of waiters whose every blocking lock is held by a process of
    /// the set (none outside it can let go) always has one request failed — the one that
    /// blocked last, on a cycle. That is the buyer let go last, when it is on one, else
    /// the highest-numbered that is, one order the kernel may see. A waiter on a lock of
    /// a process that is not waiting with it may wait for ever: left alone.
    fn deadlock(&self, blocked: &[usize]) -> Option<usize> {
        if blocked.len() < 2 {
            return None;
        }
        // Each blocked buyer's process, read once.
        let processes: Vec<(usize, u32)> = blocked
            .iter()
            .map(|&j| (j, process_of(self.buyers[j].parked[0].0.pid)))
            .collect();
        // The blocked buyers each one waits for, when every holder is one of them.
        let waits: Vec<(usize, Vec<usize>)> = blocked
            .iter()
            .filter_map(|&i| {
                let (n, step) = &self.buyers[i].parked[0];
                let holders = probe::posix_waits_for(n.pid, step.lock?);
                if holders.is_empty() {
                    return None;
                }
                let on: Option<Vec<usize>> = holders
                    .iter()
                    .map(|&h| {
                        processes
                            .iter()
                            .find(|&&(j, p)| j != i && p == h)
                            .map(|&(j, _)| j)
                    })
                    .collect();
                Some((i, on?))
            })
            .collect();
        // The largest set closed under "waits for".
        let mut set: Vec<usize> = waits.iter().map(|(i, _)| *i).collect();
        loop {
            let keep: Vec<usize> = waits
                .iter()
                .filter(|(i, on)| set.contains(i) && on.iter().all(|j| set.contains(j)))
                .map(|(i, _)| *i)
                .collect();
            if keep.len() == set.len() {
                break;
            }
            set = keep;
        }
        let on = |i: usize| {
            waits
                .iter()
                .find(|(b, _)| *b == i)
                .map(|(_, on)| on.as_slice())
                .unwrap_or(&[])
        };
        // Those on a cycle: each reaches itself again.
        let on_cycle = |start: usize| {
            let mut seen = vec![start];
            let mut next: Vec<usize> = on(start).to_vec();
            while let Some(j) = next.pop() {
                if j == start {
                    return true;
                }
                if !seen.contains(&j) {
                    seen.push(j);
                    next.extend_from_slice(on(j));
                }
            }
            false
        };
        let cycle: Vec<usize> = set.iter().copied().filter(|&i| on_cycle(i)).collect();
        match self.walk.choices.last() {
            Some(&last) if cycle.contains(&(last as usize)) => Some(last as usize),
            _ => cycle.iter().copied().max(),
        }
    }

    /// What the stopped call of each runnable buyer touches, for a partial-order
    /// reduction. Only calls that change nothing (a stat, an open for reading, a read, a
    /// sleep) commute with each other; a change, a lock call, a close (it may drop a
    /// lock) and a ledger line conflict with every step. The process exits and the
    /// calls that are no step which follow a step count as part of it, so a step that
    /// may be followed by a release never counts as a read alone: a buyer's last call
    /// before its processes exit is a close or a ledger line.
    fn accesses(&mut self, runnable: &[u32]) -> Vec<Option<Access>> {
        let shared = self.whole.as_ref().is_some_and(|w| w.shared_memory);
        let ahead: Vec<Option<Access>> = (0..self.buyers.len() as u32)
            .map(|b| {
                if !runnable.contains(&b) {
                    return None;
                }
                self.buyers[b as usize].parked.front().map(|(n, s)| {
                    if shared {
                        Access::EVERYTHING
                    } else {
                        objects::access(n, s, &self.real_dir, self.moved)
                    }
                })
            })
            .collect();
        if !shared {
            self.ahead = ahead.clone();
        }
        ahead
    }

    /// What buyer `b`'s first stopped call touches, now (a held task's return or first
    /// run: only what it does next, which [`Segment`] reads).
    fn access_of(&mut self, b: u32) -> Access {
        let ahead = std::mem::take(&mut self.ahead)
            .get(b as usize)
            .copied()
            .flatten();
        match self.buyers.get(b as usize).and_then(|u| u.parked.front()) {
            Some((n, _)) if n.held => Access::NOTHING,
            Some((n, step)) => {
                ahead.unwrap_or_else(|| objects::access(n, step, &self.real_dir, self.moved))
            }
            None => Access::EVERYTHING,
        }
    }

    /// Before buyer `b`'s step (whose call touches `own`) is let go, when the scheduler
    /// asks what steps touch: how many of its processes live, and in a program that
    /// shares memory, its process's references forgotten, so that what it did before its
    /// next step can be read once it has run ([`memory`]).
    fn watch(&self, b: u32, own: Access, wanted: bool) -> Option<Segment> {
        if !wanted {
            return None;
        }
        let shared = self.whole.as_ref().is_some_and(|w| w.shared_memory);
        let unit = self.buyers.get(b as usize)?;
        let tid = unit
            .tid
            .filter(|&tid| shared && memory::forget_references(tid));
        Some(Segment {
            buyer: b,
            own,
            tid,
            live: blocked::live_processes(unit.root),
            arrivals: unit.arrivals,
        })
    }

    /// What the step of `seg` touched, its buyer stopped again or ended: everything when
    /// a process of the buyer ended meanwhile (its files closed, its locks let go,
    /// whatever call came before) or touched shared memory, else its call's own.
    fn segment_access(&self, seg: &Segment) -> Access {
        let Some(unit) = self.buyers.get(seg.buyer as usize) else {
            return Access::EVERYTHING;
        };
        // Of a buyer of one process, a call stopped since it was let go shows that
        // process alive (a task stopped in a notification has not exited): no count.
        let one_alive = seg.live <= 1 && unit.arrivals > seg.arrivals;
        if unit.done || (!one_alive && blocked::live_processes(unit.root) < seg.live) {
            return Access::EVERYTHING;
        }
        match seg.tid {
            Some(tid) => memory::executed(tid, seg.own),
            None => seg.own,
        }
    }

    /// Lets buyer `b`'s first stopped call go on (a sleep returns at once instead).
    fn go(&mut self, b: usize) {
        // What the steps before this one changed has happened: its times are the
        // trial's clock's, as this step may read them.
        self.restamp();
        let Some((n, step)) = self.buyers[b].parked.pop_front() else {
            return;
        };
        if objects::renames_a_directory(&step) {
            self.moved = true;
        }
        if n.held {
            return self.release(b, &n, &step);
        }
        if step.effect == crate::seccomp::Effect::Spawn {
            return self.fork(b, n, &step);
        }
        if self.fails_now(b, &step) {
            return self.fail(b, n, &step);
        }
        // A request that closes a cycle of waits fails as the kernel fails it: a failed
        // try, which a wrapper that starts over repeats (a poll).
        let deadlocked = std::mem::take(&mut self.buyers[b].deadlocked);
        // A lock call or a close let go may change who holds what.
        if step.lock.is_some() || step.effect == crate::seccomp::Effect::Release {
            self.owned.forget();
        }
        // Whether another holds the lock it asks for, asked once for this step.
        let rivals = step
            .lock
            .filter(|_| !deadlocked)
            .and_then(|l| probe::rivals(n.pid, l, &mut self.owned));
        let busy = rivals.is_some();
        if !deadlocked
            && step
                .lock
                .is_some_and(|l| probe::begin_conversion(n.pid, l, rivals))
        {
            // The first half of a conversion ran: the buyer's own lock is gone, and its
            // call now waits for the others like any acquire.
            self.trace.push(format!(
                "buyer {b} {} → its own lock dropped, waits",
                step.label(&self.real_dir)
            ));
            self.buyers[b].parked.push_front((n, step));
            self.owned.forget();
            return;
        }
        let result = if deadlocked {
            "EDEADLK (a cycle of waits, as the kernel answers it)".to_string()
        } else {
            call::result(&step, &n, busy)
        };
        let label = step.label(&self.real_dir);
        self.trace.push(format!("buyer {b} {label} → {result}"));
        self.tick(b, &step);
        for (&(owner, _, _), &by) in &self.timers {
            if !self.timed_steps.iter().any(|&(o, _)| o == owner) {
                self.timed_steps.push((owner, by));
            }
        }
        let fd = self.fd(b);
        let failed = result.starts_with('E');
        // A request to a server may change nothing (a `SET NX` refused): whether it did
        // is in its reply, which no step reads. It counts as no change, so a buyer that
        // retries one while sleeping is seen to poll.
        if step.mutates && !failed && !call::to_server(&step, &self.real_dir) {
            self.epoch += 1;
            self.buyers[b].own_changes += 1;
            self.buyers[b].lone_spins = 0;
        }
        let epoch = self.others_epoch(b);
        let buyer = &mut self.buyers[b];
        if buyer.spin_epoch != epoch {
            buyer.spins = 0;
            buyer.lone_spins = 0;
            buyer.looks.clear();
            buyer.polled.clear();
            buyer.spin_epoch = epoch;
        }
        // A look through a descriptor (`fstat` of a file just opened) is no poll: each
        // open is a new look at the file, which the open itself counts.
        // A seek to a file's end is a look at its size through a descriptor it keeps:
        // repeated with nothing changed, a poll.
        let looks_only =
            step.only_looks() && (!call::through_fd(&step, &n) || step.name == "SYS_lseek");
        // Looks are counted per process (a new process's first look repeats nothing);
        // failed tries per buyer (a retry loop may start a new process for each).
        let mut repeated = false;
        if looks_only {
            let look = format!("{} {label} → {result}", n.pid);
            repeated = buyer.looks.iter().filter(|l| **l == look).count() >= 2;
            buyer.looks.push(look);
        }
        let failed_try = step.mutates && failed;
        if repeated {
            buyer.polled.push(format!("{} {label}", n.pid));
        }
        if failed_try {
            buyer.polled.push(label);
        }
        if step.sleep() || failed_try || repeated {
            buyer.spins += 1;
            buyer.lone_spins += 1;
        }
        if deadlocked {
            call::fail(fd, n.id, libc::EDEADLK);
        } else {
            call::answer(fd, n.id, !step.sleep());
        }
        if step.mutates && !failed {
            self.note_changed(&step);
        }
        if step.lock.is_some() || step.effect == crate::seccomp::Effect::Release {
            // What the call just did is not what was read before it ran.
            self.owned.forget();
        }
        // On the trial's one CPU the buyer just let go runs now, to its next call.
        let _ = nix::sched::sched_yield();
    }
}

impl Steps for Stepper {
    type Stop = Halt;

    fn walk(&mut self) -> &mut Walk {
        &mut self.walk
    }

    fn ready(&mut self, done: &mut Option<(u32, Access)>) -> Result<Option<Vec<u32>>, Halt> {
        // How many times the trial was found stuck already at this step.
        let mut looks = 0u32;
        let mut dying_since: Option<Instant> = None;
        self.ahead.clear();
        loop {
            self.settle()?;
            if let Some(seg) = self.segment.take() {
                *done = Some((seg.buyer, self.segment_access(&seg)));
            }
            let live: Vec<usize> = (0..self.buyers.len())
                .filter(|&i| !self.buyers[i].done)
                .collect();
            if live.is_empty() && !self.program_alive() {
                return Ok(None);
            }
            let at_step: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| !self.buyers[i].in_kernel)
                .collect();
            let runnable = match self.runnable(&at_step) {
                Some(r) => Some(r),
                // A buyer's listener can hang up before its processes' files are closed:
                // a lock a dead buyer held is free only once they have exited. Wait for
                // that before calling the trial stuck.
                None if self.await_the_dead() => self.runnable(&at_step),
                None => None,
            };
            let Some(runnable) = runnable else {
                // Before calling it stuck, look again a moment later (20, 40, 80 ms) at
                // every buyer: one taken for asleep in the kernel, and every lock call
                // probed as blocking (a dead holder's lock is freed only once the kernel
                // has closed its files): a wrong reading must not end a trial.
                // A process of the trial still on its way out may yet let a lock go:
                // wait (a second at most) until none is; that is no look.
                if self.dying()
                    && dying_since.get_or_insert_with(Instant::now).elapsed()
                        < Duration::from_secs(1)
                {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                if looks < STUCK_LOOKS {
                    std::thread::sleep(Duration::from_millis(20 << looks));
                    looks += 1;
                    for b in self.buyers.iter_mut() {
                        b.in_kernel = false;
                    }
                    continue;
                }
                return Err(Halt::Stuck(live.iter().map(|&i| i as u32).collect()));
            };
            return Ok(Some(runnable));
        }
    }

    fn pending(&mut self, runnable: &[u32]) -> Vec<Option<Access>> {
        self.accesses(runnable)
    }

    fn hints(&mut self, runnable: &[u32]) -> Vec<Option<StepHint>> {
        let mut next = vec![None; self.buyers.len()];
        for &b in runnable {
            if let Some((_, step)) = self.buyers[b as usize].parked.front() {
                next[b as usize] = Some(step.hint());
            }
        }
        next
    }

    fn advance(&mut self, b: u32, watched: bool) -> Result<Moved, Halt> {
        let own = match self.buyers[b as usize].parked.front() {
            Some((_, step)) if !watched => step.class_access(),
            _ => self.access_of(b),
        };
        if let Some((_, step)) = self.buyers[b as usize].parked.front() {
            self.steps.push(seen(step, own));
        }
        self.segment = self.watch(b, own, watched);
        self.go(b as usize);
        self.stepped = Instant::now();
        self.deadline = self.stepped + self.patience;
        Ok(Moved::Ran)
    }
}

/// The record of `step` let go now, touching `access`, for explaining a finding.
fn seen(step: &Step, access: Access) -> crate::harness::Seen {
    crate::harness::Seen {
        ns: crate::ledger::now_ns(),
        access,
        point: None,
        object: (!step.path.is_empty()).then(|| step.path.clone()),
        changes: step.mutates
            || step.lock.is_some()
            || step.effect == crate::seccomp::Effect::Release,
    }
}
