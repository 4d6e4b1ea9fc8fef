//! The [`Trial`]: everything that decides one run of the race, and its token.
//!
//! A trial is a value: lock, number of buyers and tickets, the most jitter a buyer may
//! sleep, a seed from which every per-buyer choice is derived, the schedule, the store
//! mode and the faults. Its token is a short, shell-safe string that decodes to the same
//! value, so `oversell replay TOKEN` runs the same trial again.

use crate::buyer::Point;
use crate::lock::LockKind;
use crate::rng::Rng;
use std::fmt;

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

    fn token_part(&self) -> String {
        match self {
            Schedule::Pct { depth } => format!("pct{depth}"),
            Schedule::Exhaustive { preemptions } => format!("exhaustive{preemptions}"),
            other => other.name().to_string(),
        }
    }

    fn from_token_part(s: &str) -> Option<Schedule> {
        let num = |p: &str| s.strip_prefix(p).and_then(|n| n.parse::<u32>().ok());
        Some(match s {
            "jitter" => Schedule::Jitter,
            "barrier" => Schedule::Barrier,
            "random" => Schedule::Random,
            _ if s.starts_with("pct") => Schedule::Pct { depth: num("pct")? },
            _ if s.starts_with("exhaustive") => Schedule::Exhaustive {
                preemptions: num("exhaustive")?,
            },
            _ => return None,
        })
    }
}

/// Encodes a controlled schedule (the buyer chosen at each step) as runs: `0x3-1x2`.
pub fn encode_choices(choices: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &c in choices {
        match runs.last_mut() {
            Some((b, n)) if *b == c => *n += 1,
            _ => runs.push((c, 1)),
        }
    }
    runs.iter()
        .map(|(b, n)| {
            if *n == 1 {
                b.to_string()
            } else {
                format!("{b}x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Decodes [`encode_choices`]' runs.
pub fn decode_choices(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Some(out);
    }
    for run in s.split('-') {
        let (b, n) = match run.split_once('x') {
            Some((b, n)) => (b.parse::<u32>().ok()?, n.parse::<usize>().ok()?),
            None => (run.parse::<u32>().ok()?, 1),
        };
        if n == 0 || n > 1_000_000 {
            return None;
        }
        out.extend(std::iter::repeat_n(b, n));
    }
    Some(out)
}

/// Where the store's new count is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// Truncate the file, then write it: the lesson's way, which can be torn.
    #[default]
    InPlace,
    /// Write a temporary file, fsync it and rename it over the store.
    Atomic,
}

impl StoreMode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StoreMode::InPlace => "in-place",
            StoreMode::Atomic => "atomic",
        }
    }
}

/// A user's command in place of one of oversell's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum External {
    /// `--lock-cmd`: a shell command that runs `{}` (the critical section) while holding
    /// a lock, as `flock(1)` does; `{dir}` is the trial's directory.
    LockCmd(String),
    /// `--buyer-cmd`: a user's whole buyer program; `{store}` is the store's path and
    /// `{dir}` the trial's directory. Exit 0: bought; exit 3: sold out.
    BuyerCmd(String),
}

impl External {
    /// The label reports use for the lock under test.
    pub fn label(&self) -> String {
        match self {
            External::LockCmd(t) => format!("lock-cmd: {t}"),
            External::BuyerCmd(t) => format!("buyer-cmd: {t}"),
        }
    }

    fn token_part(&self) -> String {
        let (tag, t) = match self {
            External::LockCmd(t) => ('L', t),
            External::BuyerCmd(t) => ('B', t),
        };
        let hex: String = t.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{tag}{hex}")
    }

    fn from_token_part(tag: &str, hex: &str) -> Option<External> {
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        match tag {
            "L" => Some(External::LockCmd(text)),
            "B" => Some(External::BuyerCmd(text)),
            _ => None,
        }
    }
}

/// Quotes `s` for a POSIX shell: `'…'`, with `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Faults injected into buyers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Probability that a buyer is SIGKILLed at a seeded yield point.
    pub kill: f64,
    /// Probability that a buyer is SIGSTOPped at a seeded yield point, and for how many
    /// milliseconds before SIGCONT (free-running schedules only).
    pub stop: f64,
    /// How long a stopped buyer stays stopped, in milliseconds.
    pub stop_ms: u32,
}

impl Faults {
    /// True when no fault is injected.
    pub fn is_none(&self) -> bool {
        self.kill <= 0.0 && self.stop <= 0.0
    }

    /// Parses `kill=P`, `stop=P:MS`, comma-separated (`none` for no faults).
    pub fn parse(spec: &str) -> Result<Faults, String> {
        const ACCEPTED: &str = "accepted: kill=P and/or stop=P:MS, comma-separated, P from 0 to 1";
        let mut f = Faults::default();
        if spec.trim() == "none" {
            return Ok(f);
        }
        // Tokens carry probabilities in thousandths: more digits would not replay.
        let prob = |v: &str| match v.trim().parse::<f64>() {
            Ok(p)
                if (0.0..=1.0).contains(&p) && ((p * 1000.0).round() - p * 1000.0).abs() < 1e-9 =>
            {
                Ok(p)
            }
            _ => Err(format!(
                "'{v}' is not a probability with at most 3 decimals; {ACCEPTED}"
            )),
        };
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            match part.trim().split_once('=') {
                Some(("kill", v)) => f.kill = prob(v)?,
                Some(("stop", v)) => {
                    let (p, ms) = v
                        .split_once(':')
                        .ok_or_else(|| format!("'{part}' lacks :MS; {ACCEPTED}"))?;
                    f.stop = prob(p)?;
                    f.stop_ms = match ms.trim().parse::<u32>() {
                        Ok(ms) if ms <= 60_000 => ms,
                        _ => {
                            return Err(format!(
                                "'{ms}' is not milliseconds (0 to 60000); {ACCEPTED}"
                            ))
                        }
                    };
                }
                _ => return Err(format!("unknown fault '{part}'; {ACCEPTED}")),
            }
        }
        Ok(f)
    }
}

/// The faults one buyer suffers in one trial, drawn from the trial's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultPlan {
    /// SIGKILL the buyer when it reaches this point.
    pub kill_at: Option<Point>,
    /// SIGSTOP the buyer at this point for the given milliseconds, then SIGCONT.
    pub stop_at: Option<(Point, u32)>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The lock every buyer uses.
    pub lock: LockKind,
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
    /// A user's lock command or buyer program, in place of `lock`.
    pub external: Option<External>,
}

impl Trial {
    /// A trial with the given lock, buyers and tickets, no jitter and seed 0.
    pub fn new(lock: LockKind, buyers: u32, tickets: u32) -> Trial {
        Trial {
            lock,
            buyers,
            tickets,
            jitter_us: 0,
            seed: 0,
            schedule: Schedule::Jitter,
            store: StoreMode::InPlace,
            faults: Faults::default(),
            choices: None,
            external: None,
        }
    }

    /// The name reports give the lock under test.
    pub fn lock_label(&self) -> String {
        match &self.external {
            Some(e) => e.label(),
            None => self.lock.name().to_string(),
        }
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
        if self.faults.is_none() {
            return FaultPlan::default();
        }
        let mut rng = Rng::derive(self.seed ^ 0xFA17, index as u64 + 1);
        let mut plan = FaultPlan::default();
        if rng.chance(self.faults.kill) {
            plan.kill_at = Some(Point::ALL[rng.below(Point::ALL.len())]);
        }
        if rng.chance(self.faults.stop) && !self.schedule.is_controlled() {
            let at = Point::ALL[rng.below(Point::ALL.len())];
            if Some(at) != plan.kill_at {
                plan.stop_at = Some((at, self.faults.stop_ms));
            }
        }
        plan
    }

    /// The shell-safe token that decodes back to this trial.
    pub fn token(&self) -> String {
        let mut t = format!(
            "ov1.{}.b{}.t{}.j{}.r{:x}.s{}",
            self.lock.name(),
            self.buyers,
            self.tickets,
            self.jitter_us,
            self.seed,
            self.schedule.token_part()
        );
        if self.store == StoreMode::Atomic {
            t.push_str(".a");
        }
        if self.faults.kill > 0.0 {
            t.push_str(&format!(".k{}", (self.faults.kill * 1000.0).round() as u32));
        }
        if self.faults.stop > 0.0 {
            t.push_str(&format!(
                ".x{}-{}",
                (self.faults.stop * 1000.0).round() as u32,
                self.faults.stop_ms
            ));
        }
        if let Some(e) = &self.external {
            t.push('.');
            t.push_str(&e.token_part());
        }
        if let Some(c) = &self.choices {
            t.push_str(".p");
            t.push_str(&encode_choices(c));
        }
        t
    }

    /// Decodes a token made by [`Trial::token`].
    pub fn from_token(token: &str) -> Result<Trial, TokenError> {
        let bad = |why: String| TokenError {
            token: token.to_string(),
            why,
        };
        let mut parts = token.split('.');
        if parts.next() != Some("ov1") {
            return Err(bad("it does not start with 'ov1.'".into()));
        }
        let lock_name = parts.next().ok_or_else(|| bad("it names no lock".into()))?;
        let lock =
            LockKind::parse(lock_name).ok_or_else(|| bad(format!("unknown lock '{lock_name}'")))?;
        let mut trial = Trial::new(lock, 0, 0);
        let (mut seen_b, mut seen_t) = (false, false);
        for part in parts {
            let (key, value) = part.split_at(part.chars().next().map_or(0, char::len_utf8));
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("'{part}' does not end in a number")))
            };
            match key {
                "b" => {
                    trial.buyers = u32::try_from(num(value)?).unwrap_or(u32::MAX);
                    seen_b = true;
                }
                "t" => {
                    trial.tickets = u32::try_from(num(value)?).unwrap_or(u32::MAX);
                    seen_t = true;
                }
                "j" => trial.jitter_us = num(value)?,
                "r" => {
                    trial.seed = u64::from_str_radix(value, 16)
                        .map_err(|_| bad(format!("'{part}' is not a hex seed")))?
                }
                "s" => {
                    trial.schedule = Schedule::from_token_part(value)
                        .ok_or_else(|| bad(format!("unknown schedule '{value}'")))?
                }
                "p" => {
                    trial.choices = Some(
                        decode_choices(value)
                            .ok_or_else(|| bad(format!("'{part}' is not a schedule")))?,
                    )
                }
                "a" if value.is_empty() => trial.store = StoreMode::Atomic,
                "k" => trial.faults.kill = num(value)? as f64 / 1000.0,
                "L" | "B" => {
                    trial.external = Some(
                        External::from_token_part(key, value)
                            .ok_or_else(|| bad(format!("'{key}…' is not a command")))?,
                    )
                }
                "x" => {
                    let (p, ms) = value
                        .split_once('-')
                        .ok_or_else(|| bad(format!("'{part}' is not a stop fault")))?;
                    trial.faults.stop = num(p)? as f64 / 1000.0;
                    trial.faults.stop_ms = num(ms)? as u32;
                }
                _ => return Err(bad(format!("unknown part '{part}'"))),
            }
        }
        if !seen_b || !seen_t {
            return Err(bad("it lacks the buyer or ticket count".into()));
        }
        if trial.buyers == 0 {
            return Err(bad("it has no buyers".into()));
        }
        if trial.buyers > 256 || trial.tickets > 1_000_000 || trial.jitter_us > 10_000_000 {
            return Err(bad(
                "its buyers, tickets or jitter are out of range (1 to 256 buyers, at most 1000000 tickets, 10 s jitter)"
                    .into(),
            ));
        }
        if let Some(c) = &trial.choices {
            if !trial.schedule.is_controlled() {
                return Err(bad(
                    "it carries steps but its schedule is not controlled".into()
                ));
            }
            if let Some(b) = c.iter().find(|&&b| b >= trial.buyers) {
                return Err(bad(format!("its steps name buyer {b} of {}", trial.buyers)));
            }
        }
        Ok(trial)
    }
}

/// A token that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The token as given.
    pub token: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad token '{}': {} (tokens look like ov1.none.b3.t1.j5000.r2a.sjitter)",
            self.token, self.why
        )
    }
}

impl std::error::Error for TokenError {}

/// The space trials are drawn from: what `explore`'s options describe.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSpace {
    /// The lock under test.
    pub lock: LockKind,
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
    /// A user's lock command or buyer program, in place of `lock`.
    pub external: Option<External>,
}

impl TrialSpace {
    /// The defaults `explore` uses: 2..16 buyers, 1..8 tickets, up to 5 ms of jitter.
    pub fn new(lock: LockKind) -> TrialSpace {
        TrialSpace {
            lock,
            buyers: Span { lo: 2, hi: 16 },
            tickets: Span { lo: 1, hi: 8 },
            jitter_us: 5_000,
            schedule: Schedule::Jitter,
            store: StoreMode::InPlace,
            faults: Faults::default(),
            external: None,
        }
    }

    /// The name reports give the lock under test.
    pub fn lock_label(&self) -> String {
        match &self.external {
            Some(e) => e.label(),
            None => self.lock.name().to_string(),
        }
    }

    /// The `index`th trial of a run seeded with `seed`.
    pub fn trial(&self, seed: u64, index: u64) -> Trial {
        let mut rng = Rng::derive(seed, index);
        let buyers = self.buyers.pick(&mut rng);
        let tickets = self.tickets.pick(&mut rng);
        Trial {
            lock: self.lock,
            buyers,
            tickets,
            jitter_us: self.jitter_us,
            seed: rng.next_u64(),
            schedule: self.schedule.clone(),
            store: self.store,
            faults: self.faults,
            choices: None,
            external: self.external.clone(),
        }
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
    fn tokens_round_trip() {
        let space = TrialSpace::new(LockKind::Flock);
        for i in 0..50 {
            let mut t = space.trial(99, i);
            if i % 3 == 0 {
                t.schedule = Schedule::Barrier;
                t.store = StoreMode::Atomic;
                t.faults.kill = 0.3;
                t.faults.stop = 0.25;
                t.faults.stop_ms = 40;
            }
            if i % 5 == 2 {
                t.external = Some(External::LockCmd("flock {dir}/l {} # it's".into()));
            }
            if i % 5 == 4 {
                t.external = Some(External::BuyerCmd("python3 'a b.py' {store}".into()));
            }
            if i % 3 == 1 {
                t.schedule = Schedule::Pct { depth: 3 };
                t.choices = Some(vec![0, 0, 0, 1, 0, 1, 1]);
            }
            let back = Trial::from_token(&t.token()).expect("own token decodes");
            assert_eq!(back, t);
        }
    }

    #[test]
    fn faults_parse() {
        let f = Faults::parse("kill=0.3,stop=0.2:50").expect("parses");
        assert_eq!((f.kill, f.stop, f.stop_ms), (0.3, 0.2, 50));
        assert!(Faults::parse("none").expect("none").is_none());
        for bad in ["kill=2", "kill", "stop=0.1", "stop=0.1:x", "boom=1"] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
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
    fn choices_round_trip() {
        for c in [vec![], vec![0], vec![0, 0, 0, 1, 1, 0, 12, 12]] {
            assert_eq!(decode_choices(&encode_choices(&c)), Some(c));
        }
        assert_eq!(encode_choices(&[0, 0, 0, 1, 1, 0]), "0x3-1x2-0");
        assert_eq!(decode_choices("0x0"), None);
        assert_eq!(decode_choices("a"), None);
    }

    #[test]
    fn bad_tokens_say_why() {
        for bad in [
            "",
            "ov2.none.b1.t1",
            "ov1.nolock.b1.t1",
            "ov1.none.t1",
            "ov1.none.b1.t1.q9",
        ] {
            let e = Trial::from_token(bad).expect_err(bad);
            assert!(!e.why.is_empty());
        }
    }

    #[test]
    fn trials_are_seeded() {
        let space = TrialSpace::new(LockKind::None);
        assert_eq!(space.trial(5, 3), space.trial(5, 3));
        let t = space.trial(5, 3);
        assert!((2..=16).contains(&t.buyers) && (1..=8).contains(&t.tickets));
        assert!(t.plan(0).hold_us <= t.jitter_us);
    }
}
