//! The [`Trial`]: everything that decides one run of the race, and its token.
//!
//! A trial is a value: what is under test (a [`Target`]: oversell's buyer and one of its
//! locks, or a user's lock command, buyer program or whole program — one enum, so that a
//! combination that means nothing cannot be built), number of buyers and tickets, the
//! most jitter a buyer may sleep, a seed from which every per-buyer choice is derived,
//! the schedule, the store mode and the faults. Its token is a short, shell-safe string that decodes to the same
//! value (the `token` module encodes and decodes it: [`Trial::token`], [`Trial::from_token`]), so `oversell replay TOKEN` runs the same
//! trial again. The faults live in the `faults` module.

use crate::check::{FindingKind, Violation};
use crate::report::Finding;
use crate::rng::Rng;
use crate::store::StoreMode;
use crate::vocab::LockKind;
use std::fmt;

pub use crate::faults::{FaultPlan, Faults, InjectedErrno};

/// An inclusive range of whole numbers, written `N` or `A..B` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Smallest value.
    pub lo: u32,
    /// Largest value (inclusive).
    pub hi: u32,
}

impl Span {
    /// A span holding only `n`.
    pub fn one(n: u32) -> Span {
        Span { lo: n, hi: n }
    }

    /// Parses `N`, `A..B` or `A..=B` (both ends included).
    pub fn parse(text: &str) -> Result<Span, String> {
        let number = |s: &str| -> Result<u32, String> {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{s}' is not a whole number"))
        };
        let span = if let Some((a, b)) = text.split_once("..") {
            let b = b.strip_prefix('=').unwrap_or(b);
            Span {
                lo: number(a)?,
                hi: number(b)?,
            }
        } else {
            Span::one(number(text)?)
        };
        if span.lo > span.hi {
            return Err(format!(
                "'{text}' is an empty range: the first end must not exceed the second"
            ));
        }
        Ok(span)
    }

    /// A seeded choice inside the span.
    pub fn pick(&self, rng: &mut Rng) -> u32 {
        rng.range(self.lo as u64, self.hi as u64) as u32
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}..{}", self.lo, self.hi)
        }
    }
}

/// How the buyers' steps are interleaved.
///
/// Part of each [`Trial`](crate::Trial); [`trials`](crate::trials) draws controlled and free-running ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Free running: each buyer sleeps its seeded jitter between read and write and the
    /// operating system decides the rest.
    Jitter,
    /// Like `Jitter`, but every buyer that can read the store does so before any buyer
    /// writes: the lesson's long sleep, made exact by a barrier.
    Barrier,
    /// Controlled: one buyer runs between yield points, chosen uniformly at random.
    Random,
    /// Controlled: probabilistic concurrency testing with `depth` priority levels.
    Pct {
        /// The bug depth searched for (d); d − 1 priority change points.
        depth: u32,
    },
    /// Controlled: every schedule with at most `preemptions` preemptions.
    Exhaustive {
        /// The preemption bound.
        preemptions: u32,
    },
}

impl Schedule {
    /// The name used on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Jitter => "jitter",
            Schedule::Barrier => "barrier",
            Schedule::Random => "random",
            Schedule::Pct { .. } => "pct",
            Schedule::Exhaustive { .. } => "exhaustive",
        }
    }

    /// True when the harness decides every step (one buyer runs at a time).
    pub fn is_controlled(&self) -> bool {
        !matches!(self, Schedule::Jitter | Schedule::Barrier)
    }
}

/// What a trial puts under test: oversell's buyer around one of its locks, or a user's
/// command in place of a part. One value, so that what means nothing cannot be said: a
/// user's command has no built-in lock, only oversell's own buyer steps at its system
/// calls on request, and only a buyer program keeps its tickets elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// oversell's buyer and lock `lock`. `syscall`: `--granularity syscall` (token part
    /// `.g`): under a controlled schedule its yield points are its system calls.
    Lock {
        /// The lock every buyer uses.
        lock: LockKind,
        /// Stepped at its system calls on request.
        syscall: bool,
    },
    /// `--lock-cmd`: a shell command that runs `{}` (the critical section) while holding
    /// a lock, as `flock(1)` does; `{dir}` is the trial's directory. oversell's buyer
    /// runs inside it, with no lock of its own.
    LockCmd(String),
    /// `--buyer-cmd`: a user's whole buyer program; `{store}` is the store's path and
    /// `{dir}` the trial's directory. Exit 0: bought; exit 3: sold out.
    BuyerCmd {
        /// The program's command.
        cmd: String,
        /// `--store-cmd` (token part `.S`): the command that keeps its tickets, run with
        /// `{op}` = `init` before the buyers (`{tickets}` the count), and with `{op}` =
        /// `count` after them, printing the final count. `None`: the JSON store.
        store_cmd: Option<String>,
    },
    /// `--program`: a whole program that starts its own buyer processes.
    Program(Program),
}

impl Target {
    /// oversell's buyer and `lock`, stepped at oversell's own yield points.
    pub fn lock(lock: LockKind) -> Target {
        Target::Lock {
            lock,
            syscall: false,
        }
    }

    /// The label reports use for the lock under test.
    pub fn label(&self) -> String {
        match self {
            Target::Lock { lock, .. } => lock.name().to_string(),
            Target::LockCmd(t) => format!("lock-cmd: {t}"),
            Target::BuyerCmd { cmd, .. } => format!("buyer-cmd: {cmd}"),
            Target::Program(p) => format!("program: {}", p.cmd),
        }
    }

    /// The user's command it runs (`None`: oversell's buyer and lock only).
    pub fn command(&self) -> Option<&str> {
        match self {
            Target::Lock { .. } => None,
            Target::LockCmd(t) | Target::BuyerCmd { cmd: t, .. } => Some(t),
            Target::Program(p) => Some(&p.cmd),
        }
    }

    /// The built-in lock oversell's buyer takes: the target's, or `none` around or in
    /// place of a user's command (which takes its own, or none).
    pub fn builtin_lock(&self) -> LockKind {
        match self {
            Target::Lock { lock, .. } => *lock,
            _ => LockKind::None,
        }
    }

    /// True for `--granularity syscall` on oversell's own buyer.
    pub fn syscall_asked(&self) -> bool {
        matches!(self, Target::Lock { syscall: true, .. })
    }

    /// `--store-cmd`, for a buyer program that keeps its tickets elsewhere.
    pub fn store_cmd(&self) -> Option<&str> {
        match self {
            Target::BuyerCmd { store_cmd, .. } => store_cmd.as_deref(),
            _ => None,
        }
    }
}

/// Units of a whole program's schedule besides its buyers that get a place of their own
/// in PCT's priorities (its shell, its main process, a helper it starts); later ones
/// share the lowest.
pub(crate) const PROGRAM_UNITS: u32 = 4;

/// A whole program under test (`--program`): it starts its own processes, keeps its
/// tickets in a JSON file of its working directory, and says each sale on its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The shell command; `{buyers}`, `{tickets}` and `{dir}` are filled in.
    pub cmd: String,
    /// The JSON file, relative to the working directory (the trial's directory), that
    /// oversell fills with `{key: tickets}` before the program starts.
    pub store_file: String,
    /// The key of the count in that file.
    pub store_key: String,
    /// A regular expression: each match on the program's output is one sale.
    pub sold: String,
}

impl Program {
    /// The program's four parts joined by NUL, as a token carries them.
    pub fn joined(&self) -> String {
        [&self.cmd, &self.store_file, &self.store_key, &self.sold]
            .map(|s| s.as_str())
            .join("\0")
    }

    /// The inverse of [`Program::joined`].
    pub fn split(text: &str) -> Option<Program> {
        let mut parts = text.split('\0');
        let p = Program {
            cmd: parts.next()?.to_string(),
            store_file: parts.next()?.to_string(),
            store_key: parts.next()?.to_string(),
            sold: parts.next()?.to_string(),
        };
        parts.next().is_none().then_some(p)
    }
}

/// Quotes `s` for a POSIX shell: `'…'`, with `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Per-buyer choices derived from the trial's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuyerPlan {
    /// Microseconds to wait after the start barrier, before `check`.
    pub start_us: u64,
    /// Microseconds to sleep between `read` and `write`.
    pub hold_us: u64,
}

/// One run of the race, fully described.
///
/// [`trials`](crate::trials) draws them; the [crate docs](crate) show one under test.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// What is under test: oversell's buyer and lock, or a user's command.
    pub target: Target,
    /// How many buyer processes race.
    pub buyers: u32,
    /// How many tickets the store holds at the start.
    pub tickets: u32,
    /// The most a buyer sleeps between read and write, in microseconds.
    pub jitter_us: u64,
    /// The seed every per-buyer choice derives from.
    pub seed: u64,
    /// How steps are interleaved.
    pub schedule: Schedule,
    /// How the store is written.
    pub store: StoreMode,
    /// Faults injected into buyers.
    pub faults: Faults,
    /// Under a controlled schedule: the buyer to run at each step. When present the
    /// trial replays exactly these steps; when absent the strategy chooses (and the run
    /// records its choices here).
    pub choices: Option<Vec<u32>>,
    /// The kinds of finding this trial showed when its token was printed (empty: none
    /// recorded, as in tokens from before the field existed). Running the trial ignores
    /// it; a replay compares what it finds against it.
    pub found: Vec<FindingKind>,
}

impl Trial {
    /// The findings of this trial (run `index`), one per violation, each carrying
    /// [`Trial::found_token`] and the command that replays it.
    pub fn findings(&self, violations: &[Violation], index: u64) -> Vec<Finding> {
        let token = self.found_token(violations);
        let replay = replay_command(&token);
        violations
            .iter()
            .map(|v| Finding::new(v, index, (self.buyers, self.tickets), &token, &replay))
            .collect()
    }

    /// The token of this trial recording the kinds of `violations` (its `f` field,
    /// sorted, each once); with no violations, the trial's token as it is.
    pub fn found_token(&self, violations: &[Violation]) -> String {
        if violations.is_empty() {
            return self.token();
        }
        let mut t = self.clone();
        t.found = violations.iter().map(|v| v.kind).collect();
        t.found.sort_unstable();
        t.found.dedup();
        t.token()
    }

    /// A trial with the given lock, buyers and tickets, no jitter and seed 0.
    pub fn new(lock: LockKind, buyers: u32, tickets: u32) -> Trial {
        Trial {
            target: Target::lock(lock),
            buyers,
            tickets,
            jitter_us: 0,
            seed: 0,
            schedule: Schedule::Jitter,
            store: StoreMode::InPlace,
            faults: Faults::default(),
            choices: None,
            found: Vec::new(),
        }
    }

    /// The built-in lock oversell's buyer takes ([`Target::builtin_lock`]).
    pub fn lock(&self) -> LockKind {
        self.target.builtin_lock()
    }

    /// The user's command under test, if any ([`Target::command`]).
    pub fn command(&self) -> Option<&str> {
        self.target.command()
    }

    /// The name reports give the lock under test.
    pub fn lock_label(&self) -> String {
        self.target.label()
    }

    /// True when the trial steps at system-call granularity: asked for
    /// (`--granularity syscall`, [`Target::Lock`]'s `syscall`), or a controlled schedule of a
    /// built-in lock whose acquire is several system calls that oversell's own steps
    /// would keep together ([`LockKind::acquire_spans_calls`]): at step granularity
    /// such a lock could only ever be "verified".
    pub fn syscall_level(&self) -> bool {
        match self.target {
            Target::Lock { lock, syscall } => {
                syscall || (self.schedule.is_controlled() && lock.acquire_spans_calls())
            }
            _ => false,
        }
    }

    /// True when a controlled schedule of this trial orders system calls (the seccomp
    /// driver runs it): a user's command or program, or [`Trial::syscall_level`].
    pub(crate) fn steps_are_calls(&self) -> bool {
        self.schedule.is_controlled() && (self.command().is_some() || self.syscall_level())
    }

    /// The units a controlled schedule of this trial orders: its buyers, and for a whole
    /// program also [`PROGRAM_UNITS`] of its own first processes.
    pub(crate) fn schedule_units(&self) -> u32 {
        match self.target {
            Target::Program(_) => self.buyers.saturating_add(PROGRAM_UNITS),
            _ => self.buyers,
        }
    }

    /// Why a crash fault cannot be placed in this trial (`None`: it can, or it has none):
    /// a power cut falls at a step of oversell's own buyer under a controlled schedule,
    /// with a lock that leaves nothing behind.
    pub fn crash_refused(&self) -> Option<String> {
        if self.faults.crash <= 0.0 {
            return None;
        }
        let accepted = "accepted: --schedule random, pct or exhaustive with --lock none, \
                        flock, ofd, posix, sysv, early-release or posix-close";
        if !self.schedule.is_controlled() {
            return Some(format!(
                "--faults crash=… with --schedule {}: a power cut falls at a step the harness \
                 places; {accepted}",
                self.schedule.name()
            ));
        }
        let why = match &self.target {
            Target::Lock { syscall: true, .. } => Some("--granularity syscall".to_string()),
            Target::Lock { lock, .. } if self.syscall_level() => Some(format!(
                "--lock {}, which steps at system-call granularity",
                lock.name()
            )),
            Target::Lock { .. } => None,
            t => Some(t.label()),
        };
        if let Some(why) = why {
            return Some(format!(
                "--faults crash=… at system-call granularity ({why}): not supported yet; \
                 {accepted}"
            ));
        }
        if !self.lock().forgotten_by_power_cut() {
            return Some(format!(
                "--faults crash=… with --lock {}: its state outlives a power cut in ways the \
                 disk model does not cover; {accepted}",
                self.lock().name()
            ));
        }
        None
    }

    /// Buyer `index`'s seeded choices.
    pub fn plan(&self, index: u32) -> BuyerPlan {
        let mut rng = Rng::derive(self.seed, index as u64 + 1);
        BuyerPlan {
            start_us: rng.range(0, self.jitter_us / 4),
            hold_us: rng.range(0, self.jitter_us),
        }
    }

    /// Buyer `index`'s faults: a kill at a seeded yield point with probability `kill`
    /// (inside the critical section included), and, under free-running schedules, a stop.
    pub fn fault_plan(&self, index: u32) -> FaultPlan {
        self.faults
            .plan(self.seed, index, self.schedule.is_controlled())
    }
}

/// The space trials are drawn from: what `explore`'s options describe.
///
/// The space [`trials`](crate::trials) and the command line draw a [`Trial`](crate::Trial) from; see the [crate docs](crate).
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSpace {
    /// What is under test.
    pub target: Target,
    /// Buyers per trial.
    pub buyers: Span,
    /// Tickets per trial.
    pub tickets: Span,
    /// The most jitter, in microseconds.
    pub jitter_us: u64,
    /// How steps are interleaved.
    pub schedule: Schedule,
    /// How the store is written.
    pub store: StoreMode,
    /// Faults injected into buyers.
    pub faults: Faults,
    /// With a `Jitter` schedule: every other trial (the even ones) runs controlled, under
    /// `pct` of depth 2 — the default for a user's command, so the default search finds
    /// what either search finds.
    pub alternate_pct: bool,
}

impl TrialSpace {
    /// The defaults `explore` uses: 2..16 buyers, 1..8 tickets, up to 5 ms of jitter.
    pub fn new(lock: LockKind) -> TrialSpace {
        TrialSpace {
            target: Target::lock(lock),
            buyers: Span { lo: 2, hi: 16 },
            tickets: Span { lo: 1, hi: 8 },
            jitter_us: 5_000,
            schedule: Schedule::Jitter,
            store: StoreMode::InPlace,
            faults: Faults::default(),
            alternate_pct: false,
        }
    }

    /// The name reports give the schedule: `pct+jitter` when controlled pct trials and
    /// free-running jitter trials alternate ([`TrialSpace::alternate_pct`]).
    pub fn schedule_label(&self) -> &'static str {
        if self.alternate_pct && self.schedule == Schedule::Jitter {
            "pct+jitter"
        } else {
            self.schedule.name()
        }
    }

    /// The name reports give the lock under test.
    pub fn lock_label(&self) -> String {
        self.target.label()
    }

    /// The built-in lock oversell's buyer takes ([`Target::builtin_lock`]).
    pub fn lock(&self) -> LockKind {
        self.target.builtin_lock()
    }

    /// The `index`th trial of a run seeded with `seed`.
    pub fn trial(&self, seed: u64, index: u64) -> Trial {
        let mut rng = Rng::derive(seed, index);
        let buyers = self.buyers.pick(&mut rng);
        let tickets = self.tickets.pick(&mut rng);
        Trial {
            target: self.target.clone(),
            buyers,
            tickets,
            jitter_us: self.jitter_us,
            seed: rng.next_u64(),
            schedule: if self.alternate_pct
                && self.schedule == Schedule::Jitter
                && index.is_multiple_of(2)
            {
                Schedule::Pct { depth: 2 }
            } else {
                self.schedule.clone()
            },
            store: self.store,
            faults: self.faults,
            choices: None,
            found: Vec::new(),
        }
    }
}

/// The shell command that replays a token (with `--allow-cmd` when the token carries a
/// user's command, which replay runs only when asked to).
pub fn replay_command(token: &str) -> String {
    let runs_a_command = Trial::from_token(token).is_ok_and(|t| t.command().is_some());
    if runs_a_command {
        format!("oversell replay --allow-cmd {token}")
    } else {
        format!("oversell replay {token}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse() {
        assert_eq!(Span::parse("3"), Ok(Span::one(3)));
        assert_eq!(Span::parse("2..16"), Ok(Span { lo: 2, hi: 16 }));
        assert_eq!(Span::parse("2..=4"), Ok(Span { lo: 2, hi: 4 }));
        assert!(Span::parse("5..2").is_err());
        assert!(Span::parse("x").is_err());
        assert!(Span::parse("-1").is_err());
    }

    #[test]
    fn fault_plans_follow_the_seed() {
        let mut t = Trial::new(LockKind::Flock, 8, 2);
        t.faults.kill = 1.0;
        t.seed = 11;
        let plans: Vec<FaultPlan> = (0..8).map(|b| t.fault_plan(b)).collect();
        assert!(plans.iter().all(|p| p.kill_at.is_some()));
        assert_eq!(plans, (0..8).map(|b| t.fault_plan(b)).collect::<Vec<_>>());
        t.faults.kill = 0.0;
        assert_eq!(t.fault_plan(0), FaultPlan::default());
    }

    #[test]
    fn trials_are_seeded() {
        let space = TrialSpace::new(LockKind::None);
        assert_eq!(space.trial(5, 3), space.trial(5, 3));
        let t = space.trial(5, 3);
        assert!((2..=16).contains(&t.buyers) && (1..=8).contains(&t.tickets));
        assert!(t.plan(0).hold_us <= t.jitter_us);
    }

    const PINNED_FAULTS: [&str; 4] = [
        "kill - stop release:40",
        "kill - stop write:40",
        "kill release stop write:40",
        "kill truncated stop release:40",
    ];

    #[test]
    fn seeded_choices_are_pinned() {
        // Part of the token format (see `rng::salt`): a change here changes what every
        // saved token replays.
        let mut t = Trial::new(LockKind::Flock, 4, 2);
        t.seed = 0x5d90_d27a_47a4_35e5;
        t.jitter_us = 5_000;
        t.faults.kill = 0.5;
        t.faults.stop = 0.5;
        t.faults.stop_ms = 40;
        let plans: Vec<(u64, u64)> = (0..4)
            .map(|b| (t.plan(b).start_us, t.plan(b).hold_us))
            .collect();
        let faults: Vec<String> = (0..4)
            .map(|b| {
                let f = t.fault_plan(b);
                let kill = f.kill_at.map_or("-", |p| p.name());
                let stop = f
                    .stop_at
                    .map_or("-".to_string(), |(p, ms)| format!("{}:{ms}", p.name()));
                format!("kill {kill} stop {stop}")
            })
            .collect();
        assert_eq!(
            plans,
            vec![(533, 4743), (302, 1311), (15, 4885), (1039, 3337)]
        );
        assert_eq!(faults, PINNED_FAULTS);
    }
}
