//! Faults injected into buyers: what a run asks for ([`Faults`]) and what one buyer of
//! one trial suffers ([`FaultPlan`]), drawn from the trial's seed.

use crate::limits;
use crate::rng::{salt, Rng};
use crate::vocab::Point;

/// Faults injected into buyers.
///
/// The faults of [`trials_with_faults`](crate::trials_with_faults), whose docs show them in use.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Probability that a buyer is SIGKILLed at a seeded yield point.
    pub kill: f64,
    /// Probability that a buyer is SIGSTOPped at a seeded yield point, and for how many
    /// milliseconds before SIGCONT.
    pub stop: f64,
    /// How long a stopped buyer stays stopped, in milliseconds.
    pub stop_ms: u32,
    /// Probability that one seeded system call of a buyer on a trial file fails with
    /// [`Faults::errno_code`] instead of running (controlled schedules at system-call
    /// granularity, where the harness answers each call).
    pub errno: f64,
    /// The error an injected failure returns.
    pub errno_code: InjectedErrno,
    /// Probability of a power cut in a trial: at a seeded step every buyer dies at once,
    /// the trial's store files are left as a crash may leave them, and fresh buyers go
    /// on (controlled schedules at step granularity).
    pub crash: f64,
    /// Probability that a buyer's clock runs at [`Faults::skew_rate`] (controlled
    /// schedules at system-call granularity, whose processes read the harness's clock).
    pub skew: f64,
    /// How fast a skewed buyer's clock runs against the trial's (0.5: half as fast).
    pub skew_rate: f64,
    /// Probability that a buyer's wall clock steps once, at a seeded step, by
    /// [`Faults::jump_ms`].
    pub jump: f64,
    /// How far a jumping wall clock steps, in milliseconds (negative: back).
    pub jump_ms: i32,
}

/// An error oversell can make a buyer's call fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectedErrno {
    /// No space left on the device: a write or a create.
    #[default]
    Enospc,
    /// An I/O error: a read, a write, an `fsync`.
    Eio,
    /// Interrupted by a signal: any call that may block (a lock, a read, a write).
    Eintr,
    /// Permission denied: an open or a change of a path.
    Eacces,
}

impl InjectedErrno {
    /// Every error, in token order.
    pub const ALL: [InjectedErrno; 4] = [
        InjectedErrno::Enospc,
        InjectedErrno::Eio,
        InjectedErrno::Eintr,
        InjectedErrno::Eacces,
    ];

    /// Its name, as `errno(3)` spells it.
    pub fn name(self) -> &'static str {
        match self {
            InjectedErrno::Enospc => "ENOSPC",
            InjectedErrno::Eio => "EIO",
            InjectedErrno::Eintr => "EINTR",
            InjectedErrno::Eacces => "EACCES",
        }
    }

    /// Its number on this system.
    pub fn raw(self) -> i32 {
        match self {
            InjectedErrno::Enospc => libc::ENOSPC,
            InjectedErrno::Eio => libc::EIO,
            InjectedErrno::Eintr => libc::EINTR,
            InjectedErrno::Eacces => libc::EACCES,
        }
    }

    /// The error by its name (any case).
    pub fn from_name(name: &str) -> Option<InjectedErrno> {
        Self::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(name.trim()))
    }
}

const ACCEPTED: &str = "accepted: kill=P, stop=P:MS, errno=P:ENOSPC|EIO|EINTR|EACCES, \
                        skew=P:RATE, jump=P:±MS and/or crash=P, comma-separated, P above 0 \
                        and at most 1 (or none)";

/// A rate above 0 with at most 3 decimals: tokens carry thousandths, more would not
/// replay, and a fault that never happens is asked for by leaving it out.
fn probability(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(p) if p <= 0.0 && p > -1e-12 => Err(format!(
            "'{v}': a fault's rate must be above 0 (leave the fault out for none); {ACCEPTED}"
        )),
        Ok(p) if (0.0..=1.0).contains(&p) && ((p * 1000.0).round() - p * 1000.0).abs() < 1e-9 => {
            Ok(p)
        }
        _ => Err(format!(
            "'{v}' is not a probability with at most 3 decimals; {ACCEPTED}"
        )),
    }
}

/// A fault's `P:VALUE` (`v`, of `part`): the probability P, and the VALUE after it, named
/// `what` (`MS`, `ERRNO`, …) when it is missing.
fn rate_and<'a>(part: &str, v: &'a str, what: &str) -> Result<(f64, &'a str), String> {
    let (p, value) = v
        .split_once(':')
        .ok_or_else(|| format!("'{part}' lacks :{what}; {ACCEPTED}"))?;
    Ok((probability(p)?, value))
}

impl Faults {
    /// True when no fault is injected.
    pub fn is_none(&self) -> bool {
        self.kill <= 0.0
            && self.stop <= 0.0
            && self.errno <= 0.0
            && self.skew <= 0.0
            && self.jump <= 0.0
            && self.crash <= 0.0
    }

    /// True when a buyer's clock may be skewed or jump: faults only the harness's clock
    /// (a controlled schedule at system-call granularity) can make.
    pub fn on_clock(&self) -> bool {
        self.skew > 0.0 || self.jump > 0.0
    }

    /// Parses `kill=P`, `stop=P:MS`, comma-separated (`none` for no faults).
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        if spec.trim() == "none" {
            return Ok(f);
        }
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            match part.trim().split_once('=') {
                Some(("kill", v)) => f.kill = probability(v)?,
                Some(("stop", v)) => {
                    let (p, ms) = rate_and(part, v, "MS")?;
                    f.stop = p;
                    f.stop_ms = match ms.trim().parse::<u32>() {
                        Ok(ms) if ms <= limits::MAX_STOP_MS => ms,
                        _ => {
                            return Err(format!(
                                "'{ms}' is not milliseconds (0 to {}); {ACCEPTED}",
                                limits::MAX_STOP_MS
                            ))
                        }
                    };
                }
                Some(("errno", v)) => {
                    let (p, name) = rate_and(part, v, "ERRNO")?;
                    f.errno = p;
                    f.errno_code = InjectedErrno::from_name(name).ok_or_else(|| {
                        format!("oversell does not inject '{}'; {ACCEPTED}", name.trim())
                    })?;
                }
                Some(("crash", v)) => f.crash = probability(v)?,
                Some(("skew", v)) => {
                    let (p, rate) = rate_and(part, v, "RATE")?;
                    f.skew = p;
                    f.skew_rate = skew_rate(rate)?;
                }
                Some(("jump", v)) => {
                    let (p, ms) = rate_and(part, v, "±MS")?;
                    f.jump = p;
                    f.jump_ms = ms
                        .trim()
                        .trim_start_matches('+')
                        .parse::<i64>()
                        .map_err(|_| format!("'{}' is not milliseconds; {ACCEPTED}", ms.trim()))
                        .and_then(|ms| {
                            limits::jump_ms(ms).map_err(|e| format!("{e}; {ACCEPTED}"))
                        })?;
                }
                _ => return Err(format!("unknown fault '{part}'; {ACCEPTED}")),
            }
        }
        Ok(f)
    }

    /// The step at which a trial seeded `seed` of `buyers` buyers loses power, if it
    /// does: with probability `crash`, a step drawn from the steps the buyers take at
    /// most. Drawn from a generator of its own, so no other plan changes with it.
    pub fn crash_step(&self, seed: u64, buyers: u32) -> Option<usize> {
        if self.crash <= 0.0 {
            return None;
        }
        let mut rng = Rng::derive(seed ^ salt::CRASH, 1);
        let reach = (buyers.max(1) as usize) * Point::ALL.len();
        rng.chance(self.crash).then(|| 1 + rng.below(reach))
    }

    /// Buyer `index`'s faults in a trial seeded `seed`: a kill at a seeded yield point
    /// with probability `kill` (inside the critical section included), and a stop with
    /// probability `stop` (`controlled` no longer changes the plan).
    pub fn plan(&self, seed: u64, index: u32, controlled: bool) -> FaultPlan {
        if self.is_none() {
            return FaultPlan::default();
        }
        let mut rng = Rng::derive(seed ^ salt::FAULTS, index as u64 + 1);
        let mut plan = FaultPlan::default();
        if rng.chance(self.kill) {
            plan.kill_at = Some(Point::ALL[rng.below(Point::ALL.len())]);
        }
        // Under a controlled schedule the harness freezes the buyer itself (the draw is
        // the same either way, so tokens of either kind keep their plans).
        let _ = controlled;
        if rng.chance(self.stop) {
            let at = Point::ALL[rng.below(Point::ALL.len())];
            if Some(at) != plan.kill_at {
                plan.stop_at = Some((at, self.stop_ms));
            }
        }
        // Drawn last and only when asked for, so plans of tokens without it are unchanged.
        if self.errno > 0.0 && rng.chance(self.errno) {
            plan.fail_at = Some((rng.below(ERRNO_REACH) as u32, self.errno_code));
        }
        // The clock's faults come after, on their own, for the same reason.
        if self.skew > 0.0 && rng.chance(self.skew) {
            plan.skew = Some(limits::rate_thousandths(self.skew_rate));
        }
        if self.jump > 0.0 && rng.chance(self.jump) {
            plan.jump_at = Some((rng.below(JUMP_REACH) as u32, self.jump_ms));
        }
        plan
    }
}

/// An injected failure falls on one of a buyer's first this many calls that can fail
/// with its error.
pub const ERRNO_REACH: usize = 4;

/// A wall clock's jump falls on one of a buyer's first this many steps.
pub const JUMP_REACH: usize = 8;

/// A rate of at most 3 decimals, above 0 and at most [`limits::MAX_SKEW_RATE`].
fn skew_rate(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && ((r * 1000.0).round() - r * 1000.0).abs() < 1e-9 => {
            limits::skew_rate((r * 1000.0).round() as i64)
                .map(|t| t as f64 / 1000.0)
                .map_err(|e| format!("{e}; {ACCEPTED}"))
        }
        _ => Err(format!(
            "'{}' is not a rate with at most 3 decimals; {ACCEPTED}",
            v.trim()
        )),
    }
}

/// The faults one buyer suffers in one trial, drawn from the trial's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultPlan {
    /// SIGKILL the buyer when it reaches this point.
    pub kill_at: Option<Point>,
    /// SIGSTOP the buyer at this point for the given milliseconds, then SIGCONT.
    pub stop_at: Option<(Point, u32)>,
    /// Fail the buyer's `k`th call (from 0) on a trial file that can fail with this
    /// error, instead of running it.
    pub fail_at: Option<(u32, InjectedErrno)>,
    /// Its clock runs at this many thousandths of the trial's (a skew).
    pub skew: Option<u32>,
    /// Its wall clock steps by this many milliseconds at its `k`th step (from 0).
    pub jump_at: Option<(u32, i32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        let f = Faults::parse("kill=0.3,stop=0.2:50").expect("parses");
        assert_eq!((f.kill, f.stop, f.stop_ms), (0.3, 0.2, 50));
        assert!(Faults::parse("none").expect("none").is_none());
        let f = Faults::parse("errno=0.25:eio").expect("parses");
        assert_eq!((f.errno, f.errno_code), (0.25, InjectedErrno::Eio));
        let f = Faults::parse("stop=0.3:5000,crash=0.1").expect("parses");
        assert_eq!((f.stop, f.stop_ms, f.crash), (0.3, 5000, 0.1));
        let f = Faults::parse("skew=0.5:0.25,jump=1:-3000").expect("parses");
        assert_eq!(
            (f.skew, f.skew_rate, f.jump, f.jump_ms),
            (0.5, 0.25, 1.0, -3000)
        );
        assert!(f.on_clock() && !f.is_none());
        assert_eq!(Faults::parse("jump=1:+250").expect("parses").jump_ms, 250);
        for bad in [
            "kill=2",
            "kill",
            "stop=0.1",
            "stop=0.1:x",
            "boom=1",
            "kill=0.0001",
            "stop=0.5:60001",
            "errno=0.5",
            "errno=0.5:EPERM",
            "errno=2:EIO",
            "crash=0",
            "crash=-1",
            "kill=0",
            "stop=0:10",
            "errno=0.0:EIO",
            "crash=1.5",
            "skew=0.5",
            "skew=0.5:0",
            "skew=0.5:-1",
            "skew=0.5:0.0001",
            "skew=0.5:x",
            "jump=0.5",
            "jump=0.5:1e9",
            "jump=0.5:soon",
            "drift=1",
        ] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fault_with_a_value_names_the_value_it_lacks() {
        for (spec, what) in [
            ("stop=0.5", ":MS;"),
            ("errno=0.5", ":ERRNO;"),
            ("skew=0.5", ":RATE;"),
            ("jump=0.5", ":±MS;"),
        ] {
            let e = Faults::parse(spec).expect_err(spec);
            assert!(e.starts_with(&format!("'{spec}' lacks {what}")), "{e}");
        }
        // The probability is judged before the value after it.
        let e = Faults::parse("stop=2:x").expect_err("a rate above 1");
        assert!(e.starts_with("'2' is not a probability"), "{e}");
    }

    #[test]
    fn plans_follow_the_seed() {
        let f = Faults {
            kill: 1.0,
            stop: 1.0,
            stop_ms: 5,
            ..Faults::default()
        };
        let plans: Vec<FaultPlan> = (0..8).map(|b| f.plan(11, b, false)).collect();
        assert!(plans.iter().all(|p| p.kill_at.is_some()));
        assert_eq!(
            plans,
            (0..8).map(|b| f.plan(11, b, false)).collect::<Vec<_>>()
        );
        assert!((0..8).all(|b| f.plan(11, b, true) == f.plan(11, b, false)));
        assert_eq!(Faults::default().plan(11, 0, false), FaultPlan::default());
    }
}
